//! Counters for `/metrics`, in the Prometheus text format. Plain atomics: updating one costs
//! an uncontended add, so the hot path can afford them.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use keyward_store::StoreStats;

/// How a verification ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Valid,
    Malformed,
    NotFound,
    Revoked,
    Expired,
    RateLimited,
    IpNotAllowed,
    Suspended,
    Unavailable,
}

const OUTCOMES: [(Outcome, &str); 9] = [
    (Outcome::Valid, "valid"),
    (Outcome::Malformed, "malformed"),
    (Outcome::NotFound, "not_found"),
    (Outcome::Revoked, "revoked"),
    (Outcome::Expired, "expired"),
    (Outcome::RateLimited, "rate_limited"),
    (Outcome::IpNotAllowed, "ip_not_allowed"),
    (Outcome::Suspended, "organization_suspended"),
    (Outcome::Unavailable, "unavailable"),
];

/// Upper bounds of the request latency buckets, in seconds.
const LATENCY_BUCKETS: [f64; 12] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 1.0,
];

#[derive(Default)]
pub struct Metrics {
    verifications: [AtomicU64; OUTCOMES.len()],
    pub cache_hits: AtomicU64,
    pub cache_misses: AtomicU64,
    pub flush_batches: AtomicU64,
    pub flush_rows: AtomicU64,
    /// Writes of failed-authentication counts, and the audit events they made.
    pub failure_batches: AtomicU64,
    pub failure_events: AtomicU64,
    /// Runs of the periodic pruning (audit log, webhook messages, idempotency keys), done or
    /// failed.
    pub prune_runs: AtomicU64,
    pub open_connections: AtomicU64,
    pub connection_limit_reached: AtomicU64,
    latency_buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_nanos: AtomicU64,
}

impl Metrics {
    pub fn verification(&self, outcome: Outcome) {
        let index = OUTCOMES
            .iter()
            .position(|(o, _)| *o == outcome)
            .unwrap_or(0);
        self.verifications[index].fetch_add(1, Ordering::Relaxed);
    }

    pub fn request(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        if let Some(bucket) = LATENCY_BUCKETS.iter().position(|&upper| seconds <= upper) {
            self.latency_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.latency_sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// The exposition text.
    pub fn render(&self, cache_entries: usize, store: StoreStats) -> String {
        let mut out = String::with_capacity(4096);
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "# HELP keyward_verifications_total Key verifications by outcome."
        );
        let _ = writeln!(out, "# TYPE keyward_verifications_total counter");
        for (index, (_, name)) in OUTCOMES.iter().enumerate() {
            let count = load(&self.verifications[index]);
            let _ = writeln!(
                out,
                "keyward_verifications_total{{outcome=\"{name}\"}} {count}"
            );
        }
        for (name, help, value) in [
            (
                "keyward_verification_cache_hits_total",
                "Verifications answered from memory.",
                load(&self.cache_hits),
            ),
            (
                "keyward_verification_cache_misses_total",
                "Verifications that read the database.",
                load(&self.cache_misses),
            ),
            (
                "keyward_last_used_flush_batches_total",
                "Batches of last-use times written.",
                load(&self.flush_batches),
            ),
            (
                "keyward_last_used_flush_rows_total",
                "Credentials whose last use a batch moved forward.",
                load(&self.flush_rows),
            ),
            (
                "keyward_auth_failure_batches_total",
                "Batches of failed-authentication counts written to the audit log.",
                load(&self.failure_batches),
            ),
            (
                "keyward_auth_failure_events_total",
                "Audit events those batches wrote (one per organization, credential, address and reason).",
                load(&self.failure_events),
            ),
            (
                "keyward_prune_runs_total",
                "Runs of the pruning of old audit events, webhook messages and idempotency keys.",
                load(&self.prune_runs),
            ),
            (
                "keyward_connection_limit_reached_total",
                "Times every connection slot was taken and new connections had to wait.",
                load(&self.connection_limit_reached),
            ),
            (
                "keyward_store_write_transactions_total",
                "Write transactions sent to the database.",
                store.write_transactions,
            ),
            (
                "keyward_store_credential_lookups_total",
                "Credential reads by digest.",
                store.credential_lookups,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP keyward_open_connections Client connections open now.\n\
             # TYPE keyward_open_connections gauge\n\
             keyward_open_connections {}",
            load(&self.open_connections)
        );
        let _ = writeln!(
            out,
            "# HELP keyward_verification_cache_entries Digests held in memory.\n\
             # TYPE keyward_verification_cache_entries gauge\n\
             keyward_verification_cache_entries {cache_entries}"
        );
        let _ = writeln!(
            out,
            "# HELP keyward_http_request_duration_seconds Time to answer a request."
        );
        let _ = writeln!(
            out,
            "# TYPE keyward_http_request_duration_seconds histogram"
        );
        let mut cumulative = 0;
        for (index, upper) in LATENCY_BUCKETS.iter().enumerate() {
            cumulative += load(&self.latency_buckets[index]);
            let _ = writeln!(
                out,
                "keyward_http_request_duration_seconds_bucket{{le=\"{upper}\"}} {cumulative}"
            );
        }
        let count = load(&self.latency_count);
        let _ = writeln!(
            out,
            "keyward_http_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let sum = load(&self.latency_sum_nanos) as f64 / 1e9;
        let _ = writeln!(out, "keyward_http_request_duration_seconds_sum {sum}");
        let _ = writeln!(out, "keyward_http_request_duration_seconds_count {count}");
        out
    }
}
