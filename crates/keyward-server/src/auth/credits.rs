//! Credits spent from memory: a node takes a credential's credits from the database in
//! leases, spends them with an atomic compare-and-swap per request, and gives back what it did
//! not spend once the credential goes idle or the node stops. No node spends credits it has
//! not taken, so together the nodes never allow more than the credits (over-spend: zero); a
//! node that dies loses what its leases held.
//!
//! The lease adapts to the credential's rate on this node: about one second of its requests
//! (at least what the request needs, at most [`MAX_LEASE`], growing by doubling), so a busy
//! credential costs about one database write a second per node, and a crash loses about one
//! second of its credits.
//!
//! A lease belongs to the generation of the credits it was taken from (set again by `PATCH`:
//! a new generation, and what leases held no longer counts) and to the refill period it was
//! taken in: at the period's end what it holds is void, and the next request takes from the
//! refilled balance.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use keyward_core::{CredentialId, Timestamp};
use keyward_store::{CreditLease, Store, StoreError};

/// The most credits one lease takes.
pub const MAX_LEASE: i64 = 100_000;
/// How long a node that found the credits spent waits before asking the database again (other
/// nodes may give some back, or someone may add some).
const EXHAUSTED_RETRY_NANOS: u64 = 1_000_000_000;
/// How long a lease goes unused before what it holds is given back.
pub const IDLE_NANOS: u64 = 2_000_000_000;
/// How much of a second of requests a lease takes.
const LEASE_NANOS: u64 = 1_000_000_000;
/// The shortest time a rate is measured over.
const MIN_MEASURE_NANOS: u64 = 100_000_000;

/// One credential's credits on this node.
#[derive(Debug)]
pub struct CreditAccount {
    credential: CredentialId,
    /// Unspent credits of the lease.
    available: AtomicI64,
    /// The generation and period the lease belongs to.
    generation: AtomicI64,
    period_start: AtomicI64,
    /// When what the lease holds becomes void (Unix seconds; `i64::MAX` without a refill).
    period_end: AtomicI64,
    /// What the database had left after the last take.
    stored: AtomicI64,
    /// Credits asked for since the last take (spent or refused), for the lease's size.
    demand: AtomicI64,
    /// When the last spend happened (monotonic nanoseconds), for giving back idle leases.
    last_spent: AtomicU64,
    /// Until when (monotonic nanoseconds; 0 for not) the database is known to have nothing
    /// for this node.
    exhausted_until: AtomicU64,
    /// Takes from the database, one at a time, and when (monotonic) the last was.
    taking: tokio::sync::Mutex<Taking>,
}

#[derive(Debug, Default)]
struct Taking {
    last_take: Option<u64>,
    /// The size the last lease asked for.
    last_size: i64,
}

/// What a spend answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Spent {
    /// Allowed: what is left, as this node knows it (its lease and the database's balance at
    /// its last take; other nodes' leases count as spent).
    Allowed { remaining: i64 },
    /// Refused, nothing spent: the credits ran out. `retry_after` is the seconds until the
    /// next refill, if there is one.
    Exhausted { retry_after: Option<u64> },
    /// The credential has no credits (they were removed since it was read).
    Unlimited,
}

impl CreditAccount {
    fn new(credential: CredentialId, generation: i64) -> Self {
        Self {
            credential,
            available: AtomicI64::new(0),
            generation: AtomicI64::new(generation),
            period_start: AtomicI64::new(0),
            // No lease yet: the first spend takes one.
            period_end: AtomicI64::new(i64::MIN),
            stored: AtomicI64::new(0),
            demand: AtomicI64::new(0),
            last_spent: AtomicU64::new(0),
            exhausted_until: AtomicU64::new(0),
            taking: tokio::sync::Mutex::default(),
        }
    }

    /// What is left as this node knows it: its lease and what the database had after its last
    /// take (or when the credential was read, before any).
    pub fn peek(&self) -> i64 {
        self.available.load(Ordering::Acquire) + self.stored.load(Ordering::Relaxed)
    }

    /// Spends `cost` from the lease if it holds enough and is current; what is left then.
    fn spend_held(&self, cost: i64, now: i64, monotonic: u64) -> Option<i64> {
        if now >= self.period_end.load(Ordering::Acquire) {
            return None;
        }
        let mut held = self.available.load(Ordering::Acquire);
        loop {
            if held < cost {
                return None;
            }
            match self.available.compare_exchange_weak(
                held,
                held - cost,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    self.last_spent.store(monotonic, Ordering::Relaxed);
                    return Some(held - cost + self.stored.load(Ordering::Relaxed));
                }
                Err(now_held) => held = now_held,
            }
        }
    }

    /// Spends `cost` credits (refused whole if there are not enough), from the lease while it
    /// holds enough and from a new take of the database otherwise.
    pub async fn spend(
        &self,
        cost: i64,
        now: Timestamp,
        monotonic: u64,
        store: &dyn Store,
    ) -> Result<Spent, StoreError> {
        if cost == 0 {
            return Ok(Spent::Allowed {
                remaining: self.peek(),
            });
        }
        let seconds = now.unix_seconds();
        self.demand.fetch_add(cost, Ordering::Relaxed);
        if let Some(remaining) = self.spend_held(cost, seconds, monotonic) {
            return Ok(Spent::Allowed { remaining });
        }
        let mut taking = self.taking.lock().await;
        // Another request may have taken a lease while this one waited.
        if let Some(remaining) = self.spend_held(cost, seconds, monotonic) {
            return Ok(Spent::Allowed { remaining });
        }
        let period_over = seconds >= self.period_end.load(Ordering::Acquire);
        if period_over {
            // What the lease held belonged to a period that is over: void.
            self.available.store(0, Ordering::Release);
            self.exhausted_until.store(0, Ordering::Release);
        }
        let period_end = self.period_end.load(Ordering::Acquire);
        if monotonic < self.exhausted_until.load(Ordering::Acquire) {
            return Ok(Spent::Exhausted {
                retry_after: retry_after(period_end, seconds),
            });
        }
        let held = self.available.load(Ordering::Acquire);
        let needed = (cost - held).max(0);
        let want = self.lease_size(&mut taking, monotonic).max(needed);
        let Some(lease) = store.take_credits(self.credential, want, needed).await? else {
            return Ok(Spent::Unlimited);
        };
        self.receive(lease);
        match self.spend_held(cost, seconds, monotonic) {
            Some(remaining) => {
                self.exhausted_until.store(0, Ordering::Release);
                Ok(Spent::Allowed { remaining })
            }
            None => {
                self.exhausted_until
                    .store(monotonic + EXHAUSTED_RETRY_NANOS, Ordering::Release);
                Ok(Spent::Exhausted {
                    retry_after: retry_after(lease.period_end, seconds),
                })
            }
        }
    }

    /// About a second of this node's demand since the last take, within bounds: measured over
    /// at least [`MIN_MEASURE_NANOS`] (so that a burst right after a take does not read as a
    /// huge rate), and at most twice the last lease (so that it grows by doubling).
    fn lease_size(&self, taking: &mut Taking, monotonic: u64) -> i64 {
        let demand = self.demand.swap(0, Ordering::Relaxed).max(1);
        let size = match taking.last_take {
            // The first: whatever is asked for now.
            None => demand,
            Some(last) => {
                let elapsed = monotonic.saturating_sub(last).max(MIN_MEASURE_NANOS);
                let per_lease = u128::from(LEASE_NANOS) * u128::from(demand.unsigned_abs())
                    / u128::from(elapsed);
                i64::try_from(per_lease)
                    .unwrap_or(MAX_LEASE)
                    .min(taking.last_size.saturating_mul(2))
            }
        };
        let size = size.clamp(1, MAX_LEASE);
        taking.last_take = Some(monotonic);
        taking.last_size = size;
        size
    }

    /// Adds a lease's credits, voiding what the lease held if the credits were set since.
    fn receive(&self, lease: CreditLease) {
        if self.generation.swap(lease.generation, Ordering::AcqRel) != lease.generation
            || self.period_start.swap(lease.period_start, Ordering::AcqRel) != lease.period_start
        {
            self.available.store(0, Ordering::Release);
        }
        self.period_end.store(lease.period_end, Ordering::Release);
        self.stored.store(lease.remaining, Ordering::Relaxed);
        self.available.fetch_add(lease.taken, Ordering::AcqRel);
    }

    /// The credits were read again (the entry reloaded), `stored` left in the database: if
    /// they were set since the lease was taken, what it holds is void.
    pub fn observe(&self, generation: i64, stored: i64) {
        if self.generation.swap(generation, Ordering::AcqRel) != generation {
            self.available.store(0, Ordering::Release);
            self.period_end.store(i64::MIN, Ordering::Release);
        }
        if self.period_end.load(Ordering::Acquire) == i64::MIN {
            self.stored.store(stored, Ordering::Relaxed);
        }
        // Set or added to since this node found them spent: worth asking again at once.
        if stored > 0 {
            self.exhausted_until.store(0, Ordering::Release);
        }
    }

    /// Puts back credits spent for a request that was then refused (a scope it lacks).
    pub fn refund(&self, cost: i64) {
        self.available.fetch_add(cost, Ordering::AcqRel);
    }

    /// Takes what the lease holds out of it, to give back: `(amount, generation, period)`.
    fn take_unspent(&self) -> Option<(i64, i64, i64)> {
        let amount = self.available.swap(0, Ordering::AcqRel);
        (amount > 0).then(|| {
            (
                amount,
                self.generation.load(Ordering::Acquire),
                self.period_start.load(Ordering::Acquire),
            )
        })
    }
}

fn retry_after(period_end: i64, now: i64) -> Option<u64> {
    (period_end != i64::MAX && period_end > i64::MIN)
        .then(|| u64::try_from(period_end - now).unwrap_or(0).max(1))
}

/// The credit accounts of this node, by credential: shared by every cache entry of a
/// credential, so that a reload of the entry keeps the lease.
#[derive(Default)]
pub struct CreditAccounts {
    accounts: Mutex<HashMap<CredentialId, Arc<CreditAccount>>>,
}

impl CreditAccounts {
    fn accounts(&self) -> std::sync::MutexGuard<'_, HashMap<CredentialId, Arc<CreditAccount>>> {
        self.accounts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The account of `credential`, whose credits were read at `generation` with `stored`
    /// left in the database.
    pub fn account(
        &self,
        credential: CredentialId,
        generation: i64,
        stored: i64,
    ) -> Arc<CreditAccount> {
        let account = self
            .accounts()
            .entry(credential)
            .or_insert_with(|| Arc::new(CreditAccount::new(credential, generation)))
            .clone();
        account.observe(generation, stored);
        account
    }

    /// Gives back what leases hold unspent: those idle since `IDLE_NANOS` (all of them when
    /// `all`, as the node stops); forgets accounts no entry holds and that hold nothing.
    /// Returns how many credits went back.
    pub async fn give_back(&self, store: &dyn Store, monotonic: u64, all: bool) -> i64 {
        let idle: Vec<Arc<CreditAccount>> = {
            let mut accounts = self.accounts();
            accounts.retain(|_, account| {
                Arc::strong_count(account) > 1 || account.available.load(Ordering::Acquire) > 0
            });
            accounts
                .values()
                .filter(|account| {
                    all || monotonic.saturating_sub(account.last_spent.load(Ordering::Relaxed))
                        >= IDLE_NANOS
                })
                .cloned()
                .collect()
        };
        let mut given = 0;
        for account in idle {
            let Some((amount, generation, period)) = account.take_unspent() else {
                continue;
            };
            match store
                .give_back_credits(account.credential, amount, generation, period)
                .await
            {
                Ok(true) => given += amount,
                // Set again, or the period is over: what it held no longer counts.
                Ok(false) => {}
                Err(error) => {
                    // Kept for the next try, unless the lease changed meanwhile.
                    if account.generation.load(Ordering::Acquire) == generation
                        && account.period_start.load(Ordering::Acquire) == period
                    {
                        account.available.fetch_add(amount, Ordering::AcqRel);
                    }
                    tracing::warn!(%error, "giving back unspent credits failed");
                }
            }
        }
        given
    }

    /// Credits held in leases on this node, for tests and metrics.
    pub fn held(&self) -> i64 {
        self.accounts()
            .values()
            .map(|account| account.available.load(Ordering::Acquire))
            .sum()
    }
}
