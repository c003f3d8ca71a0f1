//! Where a credential stands against its rate limit, and how an answer says so: the
//! `RateLimit-Policy`, `RateLimit` and `Retry-After` headers. Verification computes it; every
//! answer (a success, or the 429) carries it.

use axum::http::{HeaderMap, HeaderValue, header};
use keyward_core::RateLimit;

/// Where a credential stands against its rate limit after a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateStatus {
    pub limit: RateLimit,
    pub remaining: u32,
    /// Seconds until the quota is whole again.
    pub reset_seconds: u64,
    /// When refused: seconds until a request would be allowed.
    pub retry_after_seconds: u64,
}

/// `RateLimit-Policy` and `RateLimit` as draft-ietf-httpapi-ratelimit-headers-10 defines
/// them: the policy's quota and window, the requests left and the seconds until it is whole.
pub fn add_headers(headers: &mut HeaderMap, rate: &RateStatus) {
    let policy = format!(
        "\"key\";q={};w={}",
        rate.limit.requests, rate.limit.per_seconds
    );
    let current = format!("\"key\";r={};t={}", rate.remaining, rate.reset_seconds);
    if let (Ok(policy), Ok(current)) = (
        HeaderValue::try_from(policy),
        HeaderValue::try_from(current),
    ) {
        headers.insert("ratelimit-policy", policy);
        headers.insert("ratelimit", current);
    }
    if rate.retry_after_seconds > 0 {
        headers.insert(
            header::RETRY_AFTER,
            HeaderValue::from(rate.retry_after_seconds),
        );
    }
}
