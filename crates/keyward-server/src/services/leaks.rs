//! Reports of exposed keys, from anyone (the public revocation endpoint, and `keyward scan
//! --revoke` through it) or a scanning partner (GitHub's secret scanning): each usable key
//! reported is marked exposed and revoked (or, when the report leaves it to the
//! organization's policy, perhaps only flagged), its organization is told in the same
//! transaction (audit log, webhook), and this node forgets it at once.

use keyward_core::KeyDigest;
use keyward_core::credential::check_format;
use keyward_store::{AuditContext, CredentialRecord};

use super::ServiceError;
use crate::AppState;

/// What a report does to a usable key it names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Revoke it, whatever the organization's policy (and even if a report only flagged it
    /// before).
    Revoke,
    /// As the organization's policy says: revoke, or flag for its owners to replace.
    ByPolicy,
}

/// The digest of `text` if it has this installation's key format and checksum: anything
/// else is no key of ours, and is dropped without a database read.
pub fn digest_of(state: &AppState, text: &str) -> Option<KeyDigest> {
    let text = text.trim();
    check_format(&state.config.brand, text)
        .is_ok()
        .then(|| KeyDigest::of(text))
}

/// Reports the keys with these digests as found at `source`; returns the credentials it
/// changed (a report sent again changes nothing).
pub async fn report(
    state: &AppState,
    audit: &AuditContext,
    digests: &[KeyDigest],
    source: &str,
    action: Action,
) -> Result<Vec<CredentialRecord>, ServiceError> {
    let revoke = match action {
        Action::Revoke => Some(true),
        Action::ByPolicy => None,
    };
    let changed = state
        .store
        .report_exposed(
            audit,
            digests,
            source,
            revoke,
            state.config.clock.now(),
            state.config.smtp.is_some(),
        )
        .await?;
    // Committed: this node stops (or re-reads) them now; other nodes are told by the store.
    for record in &changed {
        state.verifier.invalidate(&record.digest);
    }
    if changed.iter().any(|record| record.revoked_at.is_some()) {
        tracing::warn!(keys = changed.len(), "acted on keys reported as exposed");
    }
    Ok(changed)
}

/// Whether a key with this digest was ever issued here (live or not).
pub async fn is_ours(state: &AppState, digest: &KeyDigest) -> Result<bool, ServiceError> {
    Ok(state
        .store
        .find_credential_by_digest(digest)
        .await?
        .is_some())
}
