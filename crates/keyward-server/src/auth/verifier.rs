//! Key verification, the hot path of every API request.
//!
//! header → format and checksum (rejected without any look-up) → SHA-256 → cache → revoked /
//! expired / rate limit against the coarse clock → last use noted in an atomic → done. Only a
//! cache miss reads the database, once per digest however many requests wait for it; nothing
//! on this path writes to the database.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use keyward_core::credential::check_format;
use keyward_core::{
    Brand, CredentialStatus, KeyDigest, KeyFormatError, OrganizationId, RateLimit, Timestamp,
};
use keyward_store::Store;

use super::UsageRecorder;
use super::cache::{CachedCredential, Loaded, Lookup, VerificationCache};
use super::failures::{FailureReason, FailureRecorder};
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
}

fn ceil_seconds(nanos: u64) -> u64 {
    nanos.div_ceil(1_000_000_000)
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

    /// The whole in-memory path: `None` when memory does not know the key. A key `accept`
    /// does not take is not found and not touched.
    pub fn verify_cached(
        &self,
        presented: &str,
        client_ip: Option<IpAddr>,
        accept: Accept,
    ) -> Option<Result<Verified, Refusal>> {
        if let Err(error) = check_format(&self.brand, presented) {
            let refusal = self.failed(Refusal::Malformed(error), None, client_ip);
            return Some(self.counted(Err(refusal)));
        }
        let digest = KeyDigest::of(presented);
        let now = self.clock.now();
        let result = match self.cache.get(&digest, now, self.store.state()) {
            Lookup::Found(entry) => self.evaluate(entry, now, client_ip, accept),
            Lookup::Missing => Err(self.failed(Refusal::NotFound, None, client_ip)),
            Lookup::Absent => return None,
        };
        self.metrics.cache_hits.fetch_add(1, Ordering::Relaxed);
        Some(self.counted(result))
    }

    /// Verifies a presented key, reading the database on a cache miss.
    pub async fn verify(
        &self,
        presented: &str,
        client_ip: Option<IpAddr>,
        accept: Accept,
    ) -> Result<Verified, Refusal> {
        if let Some(result) = self.verify_cached(presented, client_ip, accept) {
            return result;
        }
        self.metrics.cache_misses.fetch_add(1, Ordering::Relaxed);
        let digest = KeyDigest::of(presented);
        let now = self.clock.now();
        let result = match self.cache.load(&digest, now, self.store.as_ref()).await {
            Loaded::Found(entry) => self.evaluate(entry, now, client_ip, accept),
            Loaded::Missing => Err(self.failed(Refusal::NotFound, None, client_ip)),
            Loaded::Unavailable => Err(Refusal::Unavailable),
            Loaded::Failed => Err(Refusal::Internal),
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
    ) -> Result<Verified, Refusal> {
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
                return Err(self.failed(Refusal::Revoked, Some(&entry), client_ip));
            }
            CredentialStatus::Expired => {
                let expired = Refusal::Expired(entry.expires_at().unwrap_or(now));
                return Err(self.failed(expired, Some(&entry), client_ip));
            }
        }
        if entry.suspended {
            return Err(self.failed(Refusal::Suspended, Some(&entry), client_ip));
        }
        if let Some(networks) = entry.networks()
            && !client_ip.is_some_and(|ip| networks.allows(ip))
        {
            let refusal = Refusal::IpNotAllowed(client_ip);
            return Err(self.failed(refusal, Some(&entry), client_ip));
        }
        let rate = match entry.rate_limit() {
            None => None,
            Some(limit) => {
                let status = take_token(&entry, limit, self.clock.monotonic_nanos());
                if status.retry_after_seconds > 0 {
                    let refusal = Refusal::RateLimited(status);
                    return Err(self.failed(refusal, Some(&entry), client_ip));
                }
                Some(status)
            }
        };
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
        Ok(Verified {
            credential: entry,
            rate,
        })
    }
}

/// One GCRA step on the credential's shared state, at `now` (monotonic nanoseconds).
fn take_token(entry: &CachedCredential, limit: RateLimit, now: u64) -> RateStatus {
    // Every entry with a limit has a state; one without would start a whole quota, which is
    // what a missing state means.
    let fresh;
    let state = match entry.rate_state() {
        Some(state) => state.as_ref(),
        None => {
            fresh = AtomicU64::new(0);
            &fresh
        }
    };
    let mut tat = state.load(Ordering::Relaxed);
    loop {
        let decision = limit.decide(tat, now);
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
            return status;
        }
        match state.compare_exchange_weak(
            tat,
            decision.new_tat,
            Ordering::Relaxed,
            Ordering::Relaxed,
        ) {
            Ok(_) => return status,
            Err(current) => tat = current,
        }
    }
}
