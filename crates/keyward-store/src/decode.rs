//! Reading stored columns back into domain values, the same way on every backend: stored
//! data that no longer parses is `StoreError::Corrupt`, never a panic.

use keyward_core::{CredentialKind, KeyDigest, RateLimit, Role, ScopeNames, Timestamp};

use crate::StoreError;

pub(crate) fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(what.to_owned())
}

/// A stored time (whole UTC seconds).
pub(crate) fn timestamp(seconds: i64) -> Timestamp {
    Timestamp::from_unix_seconds(seconds)
}

pub(crate) fn digest(bytes: Vec<u8>) -> Result<KeyDigest, StoreError> {
    Ok(KeyDigest(
        bytes.try_into().map_err(|_| corrupt("credential digest"))?,
    ))
}

pub(crate) fn kind(stored: &str) -> Result<CredentialKind, StoreError> {
    CredentialKind::from_storage(stored).ok_or_else(|| corrupt("credential kind"))
}

pub(crate) fn scopes(stored: &str) -> Result<ScopeNames, StoreError> {
    ScopeNames::from_storage(stored).map_err(StoreError::Corrupt)
}

pub(crate) fn role(stored: &str) -> Result<Role, StoreError> {
    Role::from_storage(stored).ok_or_else(|| corrupt("membership role"))
}

/// The two rate-limit columns: both set, or neither.
pub(crate) fn rate_limit(
    requests: Option<i64>,
    per_seconds: Option<i64>,
) -> Result<Option<RateLimit>, StoreError> {
    match (requests, per_seconds) {
        (Some(requests), Some(per_seconds)) => u32::try_from(requests)
            .ok()
            .zip(u32::try_from(per_seconds).ok())
            .and_then(|(r, p)| RateLimit::new(r, p).ok())
            .map(Some)
            .ok_or_else(|| corrupt("credential rate limit")),
        _ => Ok(None),
    }
}
