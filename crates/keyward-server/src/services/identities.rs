//! Limits shared by an identity: every key and token of an organization that carries one
//! external id. A request with any of them passes its own limits and its identity's; the
//! stricter wins. Changing them makes every node forget those credentials, so the next
//! request reads the new limits.

use keyward_core::{ExternalId, RateLimit, Timestamp};
use keyward_store::{IdentityLimits, IdentityLimitsRecord};
use serde::Serialize;

use super::ServiceError;
use super::caller::Caller;
use super::credentials::CreditsView;
use crate::AppState;

/// An identity's limits.
#[derive(Serialize, utoipa::ToSchema)]
pub struct IdentityLimitsView {
    /// The external id its keys and tokens carry.
    #[schema(value_type = String, example = "customer_000042")]
    pub external_id: ExternalId,
    /// Shared by all of them, across every node; `null` for none.
    #[schema(value_type = Option<crate::services::schema::RateLimitSchema>)]
    pub rate_limit: Option<RateLimit>,
    /// Shared by all of them; `null` for none.
    pub credits: Option<CreditsView>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

impl IdentityLimitsView {
    fn new(record: IdentityLimitsRecord, now: Timestamp) -> Self {
        Self {
            external_id: record.external_id,
            rate_limit: record.rate_limit,
            credits: record.credits.map(|credits| CreditsView::new(credits, now)),
            created_at: record.created_at,
            updated_at: record.updated_at,
        }
    }
}

/// Sets the identity's limits (both: what is not given is removed).
pub async fn set(
    state: &AppState,
    caller: &Caller,
    external_id: &ExternalId,
    limits: IdentityLimits,
) -> Result<IdentityLimitsView, ServiceError> {
    let (record, affected) = state
        .store
        .set_identity_limits(&caller.audit, caller.organization_id, external_id, limits)
        .await?;
    // Other nodes forget them through the store; this one, before answering.
    for digest in &affected {
        state.verifier.invalidate(digest);
    }
    Ok(IdentityLimitsView::new(record, state.config.clock.now()))
}

pub async fn get(
    state: &AppState,
    caller: &Caller,
    external_id: &ExternalId,
) -> Result<IdentityLimitsView, ServiceError> {
    let record = state
        .store
        .identity_limits(caller.organization_id, external_id)
        .await?
        .ok_or(ServiceError::NotFound("identity limits"))?;
    Ok(IdentityLimitsView::new(record, state.config.clock.now()))
}

pub async fn delete(
    state: &AppState,
    caller: &Caller,
    external_id: &ExternalId,
) -> Result<(), ServiceError> {
    let affected = state
        .store
        .delete_identity_limits(&caller.audit, caller.organization_id, external_id)
        .await?
        .ok_or(ServiceError::NotFound("identity limits"))?;
    for digest in &affected {
        state.verifier.invalidate(digest);
    }
    Ok(())
}
