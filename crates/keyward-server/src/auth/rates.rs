//! Rate limits that hold across every node: the nodes share each credential's GCRA state in
//! the database and take requests from it in leases, which they allow from memory.
//!
//! - A take asks for about one lease span of the credential's demand on this node and gets
//!   what GCRA allows at that moment, whatever the other nodes took: the shared state never
//!   allows more than one burst plus the sustained rate.
//! - What a lease holds is void [`RateLimit::lease_nanos`] after its take (a tenth of the
//!   window, at most a second). So every request allowed in an interval was taken at most
//!   that long before it: over any interval, the nodes together allow at most what GCRA allows
//!   over the interval and one lease span before it, the allowance plus the burst plus a
//!   tenth.
//! - What a void lease did not allow goes back with the node's next take, or at the flush
//!   tick, but only if no take came since its own (see [`RateReturn`]): then it is exactly as
//!   if the lease had taken less. Otherwise it is dropped, as spent.
//! - A node that found the shared state spent refuses from memory until the next request
//!   conforms (at least a quarter of a lease span), then asks again.
//! - While the database is away, each node falls back to its own GCRA state, as if it were
//!   alone (the verifier logs the change both ways).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use keyward_core::RateLimit;
use keyward_store::{Clock, RateBucket, RateReturn, Store, StoreError};

use super::lease::{Demand, Taking};
use crate::rate_limit::RateStatus;

/// One credential's rate limit on this node.
#[derive(Debug)]
pub struct RateAccount {
    bucket: RateBucket,
    /// What this node took, under one lock (a request holds it for a compare and a
    /// subtraction).
    lease: Mutex<RateLease>,
    /// Requests seen since the last take, for the size of the next.
    demand: Demand,
    /// Takes from the database, one at a time.
    taking: tokio::sync::Mutex<Taking>,
    /// This node's own GCRA state (monotonic nanoseconds), used while the database is away.
    local_tat: AtomicU64,
    /// Until when (monotonic) to decide locally without asking, after a take failed: so that
    /// requests do not queue behind a failing database, one timeout after another.
    failing_until: AtomicU64,
}

/// How long a node decides locally after a take failed, before asking again.
const FAILED_TAKE_BACKOFF_NANOS: u64 = 1_000_000_000;

#[derive(Debug, Default)]
struct RateLease {
    /// The limit its requests were taken under; `None` before the first take.
    limit: Option<RateLimit>,
    /// Requests taken and not allowed yet.
    available: u32,
    /// The shared state its take left, to give back against.
    taken_to: i64,
    /// When (monotonic nanoseconds) what it holds becomes void.
    until: u64,
    /// What the shared state had left after the last take.
    stored: u32,
    /// When (monotonic) the shared quota is whole again, as of the last take.
    whole_at: u64,
    /// Until when (monotonic) the shared state is known to have nothing.
    empty_until: u64,
}

/// What memory alone decides about a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Held {
    Allowed(RateStatus),
    Refused(RateStatus),
    /// The lease cannot decide: take from the database.
    Ask,
}

fn ceil_seconds(nanos: u64) -> u64 {
    nanos.div_ceil(1_000_000_000)
}

impl RateAccount {
    pub fn new(bucket: RateBucket) -> Self {
        Self {
            bucket,
            lease: Mutex::default(),
            demand: Demand::default(),
            taking: tokio::sync::Mutex::default(),
            local_tat: AtomicU64::new(0),
            failing_until: AtomicU64::new(0),
        }
    }

    /// Whether a take failed less than a moment ago: decide locally meanwhile.
    pub fn failing(&self, monotonic: u64) -> bool {
        monotonic < self.failing_until.load(Ordering::Relaxed)
    }

    fn lease(&self) -> std::sync::MutexGuard<'_, RateLease> {
        // A panic while holding it cannot leave the lease half changed: keep using it.
        self.lease
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Decides a request from the lease if it can (counting it towards the next lease's
    /// size): allowed while the lease holds one, refused while the shared state is known to be
    /// spent.
    pub fn spend_held(&self, limit: RateLimit, monotonic: u64) -> Held {
        self.demand.add(1);
        self.decide_held(limit, monotonic)
    }

    fn decide_held(&self, limit: RateLimit, monotonic: u64) -> Held {
        let mut lease = self.lease();
        if lease.limit != Some(limit) {
            return Held::Ask;
        }
        let reset_seconds = ceil_seconds(lease.whole_at.saturating_sub(monotonic));
        if monotonic < lease.until && lease.available > 0 {
            lease.available -= 1;
            return Held::Allowed(RateStatus {
                limit,
                remaining: lease.available.saturating_add(lease.stored),
                reset_seconds,
                retry_after_seconds: 0,
            });
        }
        if monotonic < lease.empty_until {
            return Held::Refused(RateStatus {
                limit,
                remaining: 0,
                reset_seconds,
                retry_after_seconds: ceil_seconds(lease.empty_until - monotonic).max(1),
            });
        }
        Held::Ask
    }

    /// Decides a request the lease could not: gives back what a void lease holds and takes a
    /// new one in one statement, then decides from it: whether the request is allowed (from
    /// the lease), and where the limit stands. The clock is read once the take is this
    /// request's to make, not before it waited.
    pub async fn take(
        &self,
        limit: RateLimit,
        clock: &Clock,
        store: &dyn Store,
    ) -> Result<(bool, RateStatus), StoreError> {
        let mut taking = self.taking.lock().await;
        let monotonic = clock.monotonic_nanos();
        // Another request may have taken a lease while this one waited.
        match self.decide_held(limit, monotonic) {
            Held::Allowed(status) => return Ok((true, status)),
            Held::Refused(status) => return Ok((false, status)),
            Held::Ask => {}
        }
        let give_back = self.empty(|_| true);
        let span = limit.lease_nanos();
        let want = self
            .demand
            .size(&mut taking, monotonic, span, i64::from(limit.requests));
        let want = u32::try_from(want).unwrap_or(limit.requests);
        let taken = store
            .take_rate(&self.bucket, limit, want, give_back, clock.unix_nanos())
            .await;
        let take = match taken {
            Ok(take) => take,
            Err(error) => {
                self.failing_until
                    .store(monotonic + FAILED_TAKE_BACKOFF_NANOS, Ordering::Relaxed);
                return Err(error);
            }
        };
        {
            let mut lease = self.lease();
            *lease = RateLease {
                limit: Some(limit),
                available: take.taken,
                taken_to: take.new_tat,
                until: monotonic + span,
                stored: take.remaining,
                whole_at: monotonic + take.reset_nanos,
                // Asking again before the next request conforms would find nothing; nor
                // sooner than a quarter span, so that a spent limit costs at most four takes
                // a span (the shared state keeps what accrues meanwhile).
                empty_until: if take.remaining == 0 {
                    monotonic + take.retry_after_nanos.max(span / 4)
                } else {
                    0
                },
            };
        }
        Ok(match self.decide_held(limit, monotonic) {
            Held::Allowed(status) => (true, status),
            Held::Refused(status) => (false, status),
            // Nothing taken and the state not spent cannot happen (a take of at least one
            // gets one unless none conforms); refuse rather than loop.
            Held::Ask => (
                false,
                RateStatus {
                    limit,
                    remaining: 0,
                    reset_seconds: ceil_seconds(take.reset_nanos),
                    retry_after_seconds: 1,
                },
            ),
        })
    }

    /// Puts back one request allowed from the lease of `limit` that another limit then refused
    /// (the stricter wins, and the request was not made), if that lease is still current.
    pub fn refund(&self, limit: RateLimit, monotonic: u64) {
        let mut lease = self.lease();
        if lease.limit == Some(limit) && monotonic < lease.until {
            lease.available = lease.available.saturating_add(1);
        }
    }

    /// Empties the lease if `when` says so, under one lock: what it held, to give back.
    fn empty(&self, when: impl FnOnce(&RateLease) -> bool) -> Option<RateReturn> {
        let mut lease = self.lease();
        if lease.available == 0 || !when(&lease) {
            return None;
        }
        let unspent = std::mem::take(&mut lease.available);
        let interval = lease.limit.map_or(0, RateLimit::emission_interval_nanos);
        Some(RateReturn {
            taken_to: lease.taken_to,
            unspent_nanos: i64::try_from(u64::from(unspent) * interval).unwrap_or(i64::MAX),
        })
    }

    /// One step of this node's own GCRA state, for while the database is away: whether the
    /// request is allowed, and where the credential stands.
    pub fn decide_locally(&self, limit: RateLimit, monotonic: u64) -> (bool, RateStatus) {
        let state = &self.local_tat;
        let mut tat = state.load(Ordering::Relaxed);
        loop {
            let decision = limit.decide(tat, monotonic);
            let status = RateStatus {
                limit,
                remaining: decision.remaining,
                reset_seconds: ceil_seconds(decision.reset_nanos),
                retry_after_seconds: ceil_seconds(decision.retry_after_nanos),
            };
            if !decision.allowed {
                if decision.new_tat < tat {
                    // A limit was loosened: keep the state within the new window.
                    let _ = state.compare_exchange(
                        tat,
                        decision.new_tat,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    );
                }
                return (false, status);
            }
            match state.compare_exchange_weak(
                tat,
                decision.new_tat,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return (true, status),
                Err(current) => tat = current,
            }
        }
    }

    /// Gives back what the lease holds, if it is void (or `all`, as the node stops).
    async fn give_back(&self, store: &dyn Store, clock: &Clock, all: bool) {
        // One take or give-back at a time: a take in between could install a new lease that
        // this would then empty.
        let _taking = self.taking.lock().await;
        let monotonic = clock.monotonic_nanos();
        let limit = self.lease().limit;
        let Some(limit) = limit else {
            return;
        };
        let Some(back) = self.empty(|lease| all || monotonic >= lease.until) else {
            return;
        };
        let given = store
            .take_rate(&self.bucket, limit, 0, Some(back), clock.unix_nanos())
            .await;
        if let Err(error) = given {
            // Dropped, as a crash would drop them: they count as allowed, which errs strict.
            tracing::debug!(%error, "could not give back a rate limit's unused requests");
        }
    }
}

/// The rate accounts of this node, by bucket: shared by every cache entry of a credential
/// (and by every credential of an identity), so that a reload of an entry keeps its lease
/// and its local state.
#[derive(Default)]
pub struct RateAccounts {
    accounts: Mutex<HashMap<RateBucket, Arc<RateAccount>>>,
}

impl RateAccounts {
    fn accounts(&self) -> std::sync::MutexGuard<'_, HashMap<RateBucket, Arc<RateAccount>>> {
        self.accounts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The account of `bucket`, made on first use.
    pub fn account(&self, bucket: RateBucket) -> Arc<RateAccount> {
        self.accounts()
            .entry(bucket.clone())
            .or_insert_with(|| Arc::new(RateAccount::new(bucket)))
            .clone()
    }

    /// Accounts held, for tests and metrics.
    pub fn len(&self) -> usize {
        self.accounts().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets accounts that no entry holds, whose lease holds nothing and whose local window
    /// has run out: a missing account is a whole local quota and an empty lease, which is what
    /// they would be anyway.
    pub fn sweep(&self, monotonic: u64) {
        self.accounts().retain(|_, account| {
            Arc::strong_count(account) > 1
                || account.lease().available > 0
                || account.local_tat.load(Ordering::Relaxed) > monotonic
        });
    }

    /// Gives back what void leases hold (all leases when `all`, as the node stops).
    pub async fn give_back(&self, store: &dyn Store, clock: &Clock, all: bool) {
        let holding: Vec<Arc<RateAccount>> = self
            .accounts()
            .values()
            .filter(|account| account.lease().available > 0)
            .cloned()
            .collect();
        for account in holding {
            account.give_back(store, clock, all).await;
        }
    }
}
