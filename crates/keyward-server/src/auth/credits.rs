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
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use keyward_core::Timestamp;
use keyward_store::{CreditLease, CreditOwner, Store, StoreError};

use super::lease::{Demand, Taking};

/// The most credits one lease takes.
const MAX_LEASE: i64 = 100_000;
/// How long a node that found the credits spent waits before asking the database again (other
/// nodes may give some back, or someone may add some).
const EXHAUSTED_RETRY_NANOS: u64 = 1_000_000_000;
/// How long a lease goes unused before what it holds is given back.
const IDLE_NANOS: u64 = 2_000_000_000;
/// How much of a second of requests a lease takes.
const LEASE_NANOS: u64 = 1_000_000_000;

/// One credential's credits on this node, or one identity's.
#[derive(Debug)]
pub struct CreditAccount {
    owner: CreditOwner,
    /// The lease: what it holds and what it belongs to, changed together under one lock (a
    /// spend holds it for a compare and a subtraction).
    lease: Mutex<Lease>,
    /// Credits asked for since the last take (spent or refused), for the lease's size.
    demand: Demand,
    /// When the last spend happened (monotonic nanoseconds), for giving back idle leases.
    last_spent: AtomicU64,
    /// Until when (monotonic nanoseconds; 0 for not) the database is known to have nothing
    /// for this node.
    exhausted_until: AtomicU64,
    /// Takes from the database, one at a time, and when (monotonic) the last was.
    taking: tokio::sync::Mutex<Taking>,
}

#[derive(Debug)]
struct Lease {
    /// Unspent credits.
    available: i64,
    /// The generation and refill period they belong to.
    generation: i64,
    period_start: i64,
    /// When they become void (Unix seconds; `i64::MAX` without a refill; `i64::MIN` before
    /// the first take, or once voided).
    period_end: i64,
    /// What the database had left after the last take (or when the credential was read).
    stored: i64,
}

impl Lease {
    /// Voids what it holds.
    fn void(&mut self) {
        self.available = 0;
        self.period_end = i64::MIN;
    }
}

/// Credits one request spent, to put back if it is refused afterwards: only into the lease
/// they came from.
#[derive(Clone, Debug)]
pub struct Charge {
    account: Arc<CreditAccount>,
    cost: i64,
    generation: i64,
    period_start: i64,
}

impl Charge {
    /// Puts the credits back, if the lease they came from is still the current one.
    pub fn refund(self) {
        let mut lease = self.account.lease();
        if lease.generation == self.generation
            && lease.period_start == self.period_start
            && lease.period_end != i64::MIN
        {
            lease.available += self.cost;
        }
    }
}

/// What a spend answers.
#[derive(Clone, Debug)]
pub enum Spent {
    /// Allowed: what is left, as this node knows it (its lease and the database's balance at
    /// its last take; other nodes' leases count as spent), and what was charged.
    Allowed {
        remaining: i64,
        charge: Option<Charge>,
    },
    /// Refused, nothing spent: the credits ran out. `remaining` is what is left as this node
    /// knows it; `retry_after` the seconds until the next refill, if there is one.
    Exhausted {
        remaining: i64,
        retry_after: Option<u64>,
    },
    /// The credential has no credits (they were removed since it was read).
    Unlimited,
}

impl CreditAccount {
    /// A fresh account of `credential`, whose credits were read at `generation` with `stored`
    /// left in the database (benchmarks and tests; the cache shares one per credential).
    pub fn read(owner: impl Into<CreditOwner>, generation: i64, stored: i64) -> Arc<Self> {
        let account = Arc::new(Self::new(owner.into(), generation));
        account.observe(generation, stored);
        account
    }

    fn new(owner: CreditOwner, generation: i64) -> Self {
        Self {
            owner,
            lease: Mutex::new(Lease {
                available: 0,
                generation,
                period_start: 0,
                period_end: i64::MIN,
                stored: 0,
            }),
            demand: Demand::default(),
            last_spent: AtomicU64::new(0),
            exhausted_until: AtomicU64::new(0),
            taking: tokio::sync::Mutex::default(),
        }
    }

    fn lease(&self) -> std::sync::MutexGuard<'_, Lease> {
        // A panic while holding it cannot leave the lease half changed: keep using it.
        self.lease
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// What is left as this node knows it: its lease and what the database had after its last
    /// take (or when the credential was read, before any).
    pub fn peek(&self) -> i64 {
        let lease = self.lease();
        lease.available + lease.stored
    }

    /// Spends `cost` from the lease if it holds enough and is current: what is left then, and
    /// the lease's generation and period.
    fn spend_held(&self, cost: i64, now: i64, monotonic: u64) -> Option<(i64, i64, i64)> {
        let mut lease = self.lease();
        if now >= lease.period_end || lease.available < cost {
            return None;
        }
        lease.available -= cost;
        self.last_spent.store(monotonic, Ordering::Relaxed);
        Some((
            lease.available + lease.stored,
            lease.generation,
            lease.period_start,
        ))
    }

    /// Spends `cost` credits (refused whole if there are not enough), from the lease while it
    /// holds enough and from a new take of the database otherwise.
    pub async fn spend(
        self: &Arc<Self>,
        cost: i64,
        now: Timestamp,
        monotonic: u64,
        store: &dyn Store,
    ) -> Result<Spent, StoreError> {
        if cost == 0 {
            return Ok(Spent::Allowed {
                remaining: self.peek(),
                charge: None,
            });
        }
        let seconds = now.unix_seconds();
        self.demand.add(cost);
        if let Some(spent) = self.spend_held(cost, seconds, monotonic) {
            return Ok(self.allowed(cost, spent));
        }
        let mut taking = self.taking.lock().await;
        // Takes until the request is covered, or a take gets less than it asked for.
        for _ in 0..3 {
            // Another request may have taken a lease while this one waited.
            if let Some(spent) = self.spend_held(cost, seconds, monotonic) {
                return Ok(self.allowed(cost, spent));
            }
            let (held, period_end) = {
                let mut lease = self.lease();
                if seconds >= lease.period_end {
                    // What it held belonged to a period that is over: void.
                    lease.void();
                    self.exhausted_until.store(0, Ordering::Release);
                }
                (lease.available, lease.period_end)
            };
            if monotonic < self.exhausted_until.load(Ordering::Acquire) {
                return Ok(Spent::Exhausted {
                    remaining: self.peek(),
                    retry_after: retry_after(period_end, seconds),
                });
            }
            let needed = (cost - held).max(1);
            let want = self
                .demand
                .size(&mut taking, monotonic, LEASE_NANOS, MAX_LEASE)
                .max(needed);
            let Some(lease) = store.take_credits(self.owner, want, needed).await? else {
                return Ok(Spent::Unlimited);
            };
            self.receive(lease);
            if lease.taken < needed {
                if let Some(spent) = self.spend_held(cost, seconds, monotonic) {
                    return Ok(self.allowed(cost, spent));
                }
                self.exhausted_until
                    .store(monotonic + EXHAUSTED_RETRY_NANOS, Ordering::Release);
                return Ok(Spent::Exhausted {
                    remaining: self.peek(),
                    retry_after: retry_after(lease.period_end, seconds),
                });
            }
        }
        // Other requests kept spending what each take brought: try once more from the lease.
        match self.spend_held(cost, seconds, monotonic) {
            Some(spent) => Ok(self.allowed(cost, spent)),
            None => Ok(Spent::Exhausted {
                remaining: self.peek(),
                retry_after: None,
            }),
        }
    }

    fn allowed(self: &Arc<Self>, cost: i64, spent: (i64, i64, i64)) -> Spent {
        let (remaining, generation, period_start) = spent;
        self.exhausted_until.store(0, Ordering::Release);
        Spent::Allowed {
            remaining,
            charge: Some(Charge {
                account: self.clone(),
                cost,
                generation,
                period_start,
            }),
        }
    }

    /// Adds a lease's credits, voiding what the lease held if the credits were set since or
    /// the period changed.
    fn receive(&self, taken: CreditLease) {
        let mut lease = self.lease();
        if lease.generation != taken.generation || lease.period_start != taken.period_start {
            lease.available = 0;
        }
        lease.generation = taken.generation;
        lease.period_start = taken.period_start;
        lease.period_end = taken.period_end;
        lease.stored = taken.remaining;
        lease.available += taken.taken;
    }

    /// The credits were read again (the entry reloaded), `stored` left in the database: if
    /// they were set since the lease was taken, what it holds is void.
    pub fn observe(&self, generation: i64, stored: i64) {
        let mut lease = self.lease();
        if lease.generation != generation {
            lease.void();
            lease.generation = generation;
        }
        if lease.period_end == i64::MIN {
            lease.stored = stored;
        }
        // Set or added to since this node found them spent: worth asking again at once.
        if stored > 0 {
            self.exhausted_until.store(0, Ordering::Release);
        }
    }

    /// Gives back to the database what the lease holds unspent, to the generation and period
    /// it was taken from; returns how many went back.
    async fn give_back(&self, store: &dyn Store) -> i64 {
        let (amount, generation, period) = {
            let mut lease = self.lease();
            let amount = std::mem::take(&mut lease.available);
            (amount, lease.generation, lease.period_start)
        };
        if amount <= 0 {
            return 0;
        }
        match store
            .give_back_credits(self.owner, amount, generation, period)
            .await
        {
            Ok(true) => amount,
            // Set again, or the period is over: what it held no longer counts.
            Ok(false) => 0,
            Err(error) => {
                // Not knowing whether it was applied, they are dropped, as a crash would:
                // putting them back could spend them twice.
                tracing::warn!(%error, lost = amount, "giving back unspent credits failed");
                0
            }
        }
    }
}

fn retry_after(period_end: i64, now: i64) -> Option<u64> {
    (period_end != i64::MAX && period_end > i64::MIN)
        .then(|| u64::try_from(period_end - now).unwrap_or(0).max(1))
}

/// The credit accounts of this node, by owner: shared by every cache entry of a credential
/// (and by every credential of an identity), so that a reload of an entry keeps the lease.
#[derive(Default)]
pub struct CreditAccounts {
    accounts: Mutex<HashMap<CreditOwner, Arc<CreditAccount>>>,
}

impl CreditAccounts {
    fn accounts(&self) -> std::sync::MutexGuard<'_, HashMap<CreditOwner, Arc<CreditAccount>>> {
        self.accounts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The account of `owner`, whose credits were read at `generation` with `stored` left in
    /// the database.
    pub fn account(&self, owner: CreditOwner, generation: i64, stored: i64) -> Arc<CreditAccount> {
        let account = self
            .accounts()
            .entry(owner)
            .or_insert_with(|| Arc::new(CreditAccount::new(owner, generation)))
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
                Arc::strong_count(account) > 1 || account.lease().available > 0
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
            given += account.give_back(store).await;
        }
        given
    }

    /// Gives back what this node's lease of `credential` holds now (before its credits move).
    pub async fn give_back_one(&self, store: &dyn Store, credential: keyward_core::CredentialId) {
        let account = self.accounts().get(&credential.into()).cloned();
        if let Some(account) = account {
            account.give_back(store).await;
        }
    }
}
