//! Key verification, the hot path of every API request.
//!
//! header → format and checksum (rejected without any look-up) → SHA-256 → cache → revoked /
//! expired against the coarse clock → rate limit from this node's lease → last use noted in
//! an atomic → done. Only a cache miss reads the database, once per digest however many
//! requests wait for it, and only a rate-limited key whose lease cannot decide writes to it
//! (one take for all the requests waiting; see [`super::rates`]).

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use keyward_core::credential::check_format;
use keyward_core::{
    Brand, CredentialStatus, KeyDigest, KeyFormatError, OrganizationId, RateLimit, Timestamp,
};
use keyward_store::Store;

use super::UsageRecorder;
use super::cache::{CachedCredential, Loaded, Lookup, VerificationCache};
use super::failures::{FailureReason, FailureRecorder};
use super::rates::{Held, RateAccount};
use crate::Config;
use crate::metrics::{Metrics, Outcome};
use crate::rate_limit::RateStatus;
use keyward_store::Clock;

/// A credential accepted for this request.
pub struct Verified {
    pub credential: Arc<CachedCredential>,
    pub rate: Option<RateStatus>,
}

/// Which credentials a verification accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accept {
    /// Any, admin keys included: the API's own authentication.
    Any,
    /// Organizations' credentials only: to forward authentication an admin key is unknown.
    Customers,
    /// This organization's credentials only (`POST /v1/keys/verify`, introspection): any
    /// other, admin keys included, is unknown and not touched.
    Organization(OrganizationId),
}

/// Why a presented key was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    Malformed(KeyFormatError),
    NotFound,
    Revoked,
    Expired(Timestamp),
    RateLimited(RateStatus),
    /// The credential is limited to networks the client's address (if known) is not in.
    IpNotAllowed(Option<IpAddr>),
    /// The credential's organization is suspended.
    Suspended,
    /// The database could not be asked; the key may well be valid.
    Unavailable,
    Internal,
}

pub struct Verifier {
    store: Arc<dyn Store>,
    brand: Brand,
    cache: VerificationCache,
    usage: Arc<UsageRecorder>,
    metrics: Arc<Metrics>,
    clock: Clock,
    failures: FailureRecorder,
    /// Whether rate limits are counted on this node alone because the database is away.
    rates_alone: AtomicBool,
}

/// What memory decides about a request.
enum Step {
    Done(Result<Verified, Refusal>),
    /// Accepted so far, at this time; one of its rate limits needs a take from the database.
    /// (Boxed: the common answers stay small.)
    Ask(Box<(Arc<CachedCredential>, Timestamp, Pending)>),
}

/// Where a request stands against the rate limits it must pass (see
/// [`CachedCredential::rate_limits`]).
enum Rates {
    /// All passed; the strictest's status, for the response's headers.
    Allowed(Option<RateStatus>),
    Refused(RateStatus),
    /// Those before the limit at this index passed: it needs a take from the database.
    Ask(Pending),
}

#[derive(Clone, Copy)]
struct Pending {
    index: usize,
    strictest: Option<RateStatus>,
    /// Which limits before it allowed the request from their lease (to put back if a later
    /// one refuses; one decided by this node alone has nothing to put back).
    leased: [bool; 2],
}

/// Puts back what the rate limits before `index` allowed a request from their leases
/// (`leased`), when a later one refused it.
fn refund_before(entry: &CachedCredential, index: usize, monotonic: u64, leased: [bool; 2]) {
    for (slot, limit) in entry.rate_limits().into_iter().enumerate().take(index) {
        if let (Some((limit, account)), true) = (limit, leased[slot]) {
            account.refund(limit, monotonic);
        }
    }
}

/// The status that says less is left.
fn stricter(kept: Option<RateStatus>, next: RateStatus) -> Option<RateStatus> {
    match kept {
        Some(kept) if kept.remaining <= next.remaining => Some(kept),
        _ => Some(next),
    }
}

impl Verifier {
    /// A verifier by `config`'s brand, cache ages, clock and scope catalog.
    pub fn new(
        store: Arc<dyn Store>,
        config: &Config,
        usage: Arc<UsageRecorder>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let seconds = |duration: Duration| i64::try_from(duration.as_secs()).unwrap_or(i64::MAX);
        Self {
            store,
            brand: config.brand.clone(),
            cache: VerificationCache::new(
                seconds(config.cache_max_age),
                config.outage_grace,
                config.scopes.clone(),
            ),
            usage,
            metrics,
            clock: config.clock.clone(),
            failures: FailureRecorder::default(),
            rates_alone: AtomicBool::new(false),
        }
    }

    /// Failed verifications not yet written to the audit log.
    pub fn failures(&self) -> &FailureRecorder {
        &self.failures
    }

    /// Verifications of known credentials by hour and outcome, not yet written.
    /// Takes what every cached entry counted into the usage counts, before a flush.
    pub fn absorb_usage(&self) {
        self.cache.absorb_usage();
    }

    /// This node's credit accounts.
    pub fn credit_accounts(&self) -> &super::CreditAccounts {
        self.cache.credit_accounts()
    }

    pub fn usage_counts(&self) -> &super::UsageCounts {
        self.cache.usage_counts()
    }

    fn failed(
        &self,
        refusal: Refusal,
        entry: Option<&CachedCredential>,
        client_ip: Option<IpAddr>,
    ) -> Refusal {
        let reason = match &refusal {
            Refusal::Malformed(_) => FailureReason::Malformed,
            Refusal::NotFound => FailureReason::Unknown,
            Refusal::Revoked => FailureReason::Revoked,
            Refusal::Expired(_) => FailureReason::Expired,
            Refusal::RateLimited(_) => FailureReason::RateLimited,
            Refusal::IpNotAllowed(_) => FailureReason::IpNotAllowed,
            Refusal::Suspended => FailureReason::Suspended,
            Refusal::Unavailable | Refusal::Internal => return refusal,
        };
        let now = self.clock.now();
        if let Some(entry) = entry {
            self.cache
                .usage_counts()
                .refused(entry.id, reason.as_str(), now);
        }
        self.failures.record(
            entry.map(|e| e.organization_id),
            entry.map(|e| e.id),
            client_ip,
            reason,
            now,
        );
        refusal
    }

    /// The clock verification reads.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Drops what the cache can no longer serve (see [`VerificationCache::sweep`]).
    pub fn sweep(&self) {
        self.cache.sweep(
            self.clock.now(),
            self.clock.monotonic_nanos(),
            self.store.state(),
        );
    }

    pub fn cache(&self) -> &VerificationCache {
        &self.cache
    }

    /// The whole in-memory path: `None` when memory cannot decide (it does not know the key,
    /// or the key's rate limit needs a take from the database). A key `accept` does not take
    /// is not found and not touched.
    pub fn verify_cached(
        &self,
        presented: &str,
        client_ip: Option<IpAddr>,
        accept: Accept,
    ) -> Option<Result<Verified, Refusal>> {
        match self.in_memory(presented, client_ip, accept)? {
            Step::Done(result) => Some(self.counted(result)),
            Step::Ask(..) => None,
        }
    }

    fn in_memory(
        &self,
        presented: &str,
        client_ip: Option<IpAddr>,
        accept: Accept,
    ) -> Option<Step> {
        if let Err(error) = check_format(&self.brand, presented) {
            let refusal = self.failed(Refusal::Malformed(error), None, client_ip);
            return Some(Step::Done(Err(refusal)));
        }
        let digest = KeyDigest::of(presented);
        let now = self.clock.now();
        let step = match self.cache.get(&digest, now, self.store.state()) {
            Lookup::Found(entry) => self.evaluate(entry, now, client_ip, accept),
            Lookup::Missing => Step::Done(Err(self.failed(Refusal::NotFound, None, client_ip))),
            Lookup::Absent => return None,
        };
        self.metrics.cache_hits.fetch_add(1, Ordering::Relaxed);
        Some(step)
    }

    /// Verifies a presented key, reading the database on a cache miss.
    pub async fn verify(
        &self,
        presented: &str,
        client_ip: Option<IpAddr>,
        accept: Accept,
    ) -> Result<Verified, Refusal> {
        let step = match self.in_memory(presented, client_ip, accept) {
            Some(step) => step,
            None => {
                self.metrics.cache_misses.fetch_add(1, Ordering::Relaxed);
                let digest = KeyDigest::of(presented);
                let now = self.clock.now();
                match self.cache.load(&digest, now, self.store.as_ref()).await {
                    Loaded::Found(entry) => self.evaluate(entry, now, client_ip, accept),
                    Loaded::Missing => {
                        Step::Done(Err(self.failed(Refusal::NotFound, None, client_ip)))
                    }
                    Loaded::Unavailable => Step::Done(Err(Refusal::Unavailable)),
                    Loaded::Failed => Step::Done(Err(Refusal::Internal)),
                }
            }
        };
        let result = match step {
            Step::Done(result) => result,
            Step::Ask(asking) => {
                let (entry, now, pending) = *asking;
                self.take_rate(entry, now, client_ip, pending).await
            }
        };
        self.counted(result)
    }

    /// Forgets a credential, so that the next request reads its current state.
    pub fn invalidate(&self, digest: &KeyDigest) {
        self.cache.invalidate(digest);
    }

    fn counted(&self, result: Result<Verified, Refusal>) -> Result<Verified, Refusal> {
        self.metrics.verification(match &result {
            Ok(_) => Outcome::Valid,
            Err(Refusal::Malformed(_)) => Outcome::Malformed,
            Err(Refusal::NotFound) => Outcome::NotFound,
            Err(Refusal::Revoked) => Outcome::Revoked,
            Err(Refusal::Expired(_)) => Outcome::Expired,
            Err(Refusal::RateLimited(_)) => Outcome::RateLimited,
            Err(Refusal::IpNotAllowed(_)) => Outcome::IpNotAllowed,
            Err(Refusal::Suspended) => Outcome::Suspended,
            Err(Refusal::Unavailable | Refusal::Internal) => Outcome::Unavailable,
        });
        result
    }

    fn evaluate(
        &self,
        entry: Arc<CachedCredential>,
        now: Timestamp,
        client_ip: Option<IpAddr>,
        accept: Accept,
    ) -> Step {
        if let Err(refusal) = self.check(&entry, now, client_ip, accept) {
            return Step::Done(Err(refusal));
        }
        if !entry.rate_limited() {
            // Most keys: no clock read, nothing to spend.
            return Step::Done(Ok(self.accepted(entry, now, client_ip, None)));
        }
        let from = Pending {
            index: 0,
            strictest: None,
            leased: [false; 2],
        };
        match self.rates_held(&entry, from) {
            Rates::Allowed(rate) => Step::Done(Ok(self.accepted(entry, now, client_ip, rate))),
            Rates::Refused(status) => {
                let refusal = Refusal::RateLimited(status);
                Step::Done(Err(self.failed(refusal, Some(&entry), client_ip)))
            }
            Rates::Ask(pending) => Step::Ask(Box::new((entry, now, pending))),
        }
    }

    /// Passes the request through its rate limits from `from.index` on, from the leases while
    /// they can decide. The stricter wins: a refusal puts back what the limits before it
    /// allowed.
    fn rates_held(&self, entry: &CachedCredential, from: Pending) -> Rates {
        let limits = entry.rate_limits();
        let monotonic = self.clock.monotonic_nanos();
        let Pending {
            mut strictest,
            mut leased,
            ..
        } = from;
        for (index, limit) in limits.into_iter().enumerate().skip(from.index) {
            let Some((limit, account)) = limit else {
                continue;
            };
            match account.spend_held(limit, monotonic) {
                Held::Allowed(status) => {
                    strictest = stricter(strictest, status);
                    leased[index] = true;
                }
                Held::Refused(status) => {
                    refund_before(entry, index, monotonic, leased);
                    return Rates::Refused(status);
                }
                Held::Ask => {
                    return Rates::Ask(Pending {
                        index,
                        strictest,
                        leased,
                    });
                }
            }
        }
        Rates::Allowed(strictest)
    }

    /// Decides a request its leases could not: from takes of the shared limits, or from this
    /// node's own state while the database is away (logged when that starts and ends).
    async fn take_rate(
        &self,
        entry: Arc<CachedCredential>,
        now: Timestamp,
        client_ip: Option<IpAddr>,
        mut pending: Pending,
    ) -> Result<Verified, Refusal> {
        loop {
            let Some((limit, account)) = entry.rate_limits()[pending.index] else {
                return Err(Refusal::Internal);
            };
            let account = account.clone();
            match self.take_one(&account, limit).await {
                (true, status, leased) => {
                    pending.strictest = stricter(pending.strictest, status);
                    pending.leased[pending.index] = leased;
                }
                (false, status, _) => {
                    let monotonic = self.clock.monotonic_nanos();
                    refund_before(&entry, pending.index, monotonic, pending.leased);
                    let refusal = Refusal::RateLimited(status);
                    return Err(self.failed(refusal, Some(&entry), client_ip));
                }
            }
            let next = Pending {
                index: pending.index + 1,
                ..pending
            };
            match self.rates_held(&entry, next) {
                Rates::Allowed(rate) => return Ok(self.accepted(entry, now, client_ip, rate)),
                Rates::Refused(status) => {
                    let refusal = Refusal::RateLimited(status);
                    return Err(self.failed(refusal, Some(&entry), client_ip));
                }
                Rates::Ask(next) => pending = next,
            }
        }
    }

    /// One limit's decision from a take of the shared state, or from this node's own state
    /// while the database is away or a take failed a moment ago (so that requests do not wait
    /// for it): whether the request is allowed, where the limit stands, and whether the
    /// request came out of the lease.
    async fn take_one(&self, account: &RateAccount, limit: RateLimit) -> (bool, RateStatus, bool) {
        let taken = if self.store.state().down_for.is_some() {
            Err("the database is away".to_owned())
        } else if account.failing(self.clock.monotonic_nanos()) {
            Err("a take of the shared rate limit failed a moment ago".to_owned())
        } else {
            account
                .take(limit, &self.clock, self.store.as_ref())
                .await
                .map_err(|error| error.to_string())
        };
        match taken {
            Ok((allowed, status)) => {
                if self.rates_alone.swap(false, Ordering::Relaxed) {
                    tracing::info!("rate limits are shared by every node again");
                }
                // Allowed by a take: out of the lease.
                (allowed, status, allowed)
            }
            Err(error) => {
                if !self.rates_alone.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        error,
                        "rate limits are counted on this node alone until the database is back"
                    );
                }
                let (allowed, status) = account.decide_locally(limit, self.clock.monotonic_nanos());
                (allowed, status, false)
            }
        }
    }

    /// Every check but the rate limit.
    #[inline]
    fn check(
        &self,
        entry: &Arc<CachedCredential>,
        now: Timestamp,
        client_ip: Option<IpAddr>,
        accept: Accept,
    ) -> Result<(), Refusal> {
        let accepted = match accept {
            Accept::Any => true,
            Accept::Customers => !entry.organization_id.is_installation(),
            Accept::Organization(wanted) => wanted == entry.organization_id,
        };
        if !accepted {
            // Another organization's key, or an admin key: to the caller it does not exist.
            return Err(self.failed(Refusal::NotFound, None, client_ip));
        }
        match entry.lifetime.status(now) {
            CredentialStatus::Active => {}
            CredentialStatus::Revoked => {
                return Err(self.failed(Refusal::Revoked, Some(entry), client_ip));
            }
            CredentialStatus::Expired => {
                let expired = Refusal::Expired(entry.expires_at().unwrap_or(now));
                return Err(self.failed(expired, Some(entry), client_ip));
            }
        }
        if entry.suspended {
            return Err(self.failed(Refusal::Suspended, Some(entry), client_ip));
        }
        if let Some(networks) = entry.networks()
            && !client_ip.is_some_and(|ip| networks.allows(ip))
        {
            let refusal = Refusal::IpNotAllowed(client_ip);
            return Err(self.failed(refusal, Some(entry), client_ip));
        }
        Ok(())
    }

    /// A request accepted: counted, and its last use noted.
    fn accepted(
        &self,
        entry: Arc<CachedCredential>,
        now: Timestamp,
        client_ip: Option<IpAddr>,
        rate: Option<RateStatus>,
    ) -> Verified {
        self.cache
            .usage_counts()
            .allowed(entry.id, &entry.usage, now);
        // Written only when the second changes: at most once a second per credential.
        let seconds = now.unix_seconds();
        if entry.last_used.load(Ordering::Relaxed) < seconds
            && entry.last_used.fetch_max(seconds, Ordering::Relaxed) < seconds
        {
            self.usage.record(entry.id, now, client_ip);
        }
        Verified {
            credential: entry,
            rate,
        }
    }
}
