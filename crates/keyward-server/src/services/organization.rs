//! The organization's policy for new credentials: a longest lifetime and whether an expiry is
//! required. The store checks it inside the transaction that inserts a credential (every way
//! of making one: the API, the dashboard, rotation); existing credentials are not changed,
//! and lists show those that exceed it.

use keyward_core::{ExternalId, OrganizationId, Timestamp};
use keyward_store::{LeakAction, OrganizationPolicy, OrganizationRecord, PolicyChanges};
use serde::Serialize;

use super::ServiceError;
use super::caller::Caller;
use crate::AppState;

/// The longest `max_lifetime_days`.
pub const MAX_LIFETIME_DAYS: u32 = 3650;

/// The organization as the API shows it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct OrganizationView {
    #[schema(value_type = String, example = "org_01m8dz95x5e4w8stdkzcqeqr73")]
    pub id: OrganizationId,
    #[schema(value_type = String, example = "Acme")]
    pub name: String,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// New credentials must expire within this many days (then an expiry is required).
    pub max_lifetime_days: Option<u32>,
    /// New credentials must have an expiry.
    pub require_expiry: bool,
    /// What a scanning partner's (GitHub's) report of an exposed key does: `revoke` it at
    /// once (the default) or `flag` it for its owners to replace.
    #[schema(example = "revoke")]
    pub leak_action: &'static str,
    /// The platform's own id for the organization, if it gave one.
    #[schema(value_type = Option<String>, example = "cus_8412")]
    pub external_id: Option<ExternalId>,
    /// `active`, or `suspended`: every credential refused until it is resumed.
    #[schema(example = "active")]
    pub status: &'static str,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub suspended_at: Option<Timestamp>,
}

impl From<OrganizationRecord> for OrganizationView {
    fn from(record: OrganizationRecord) -> Self {
        Self {
            id: record.id,
            name: record.name.to_string(),
            created_at: record.created_at,
            max_lifetime_days: record.policy.max_lifetime_days,
            require_expiry: record.policy.require_expiry,
            leak_action: record.policy.leak_action.as_str(),
            external_id: record.external_id,
            status: match record.suspended_at {
                Some(_) => "suspended",
                None => "active",
            },
            suspended_at: record.suspended_at,
        }
    }
}

/// What a refusal says: the rule, with the maximum.
pub fn refusal(policy: OrganizationPolicy) -> String {
    match policy.max_lifetime_days {
        Some(days) => format!(
            "this organization's policy requires an expiry at most {days} days after creation"
        ),
        None => "this organization's policy requires an expiry".to_owned(),
    }
}

pub async fn get(state: &AppState, caller: &Caller) -> Result<OrganizationRecord, ServiceError> {
    state
        .store
        .get_organization(caller.organization_id)
        .await?
        .ok_or(ServiceError::NotFound("organization"))
}

/// Reads a leak action: `revoke` or `flag`.
pub fn parse_leak_action(text: &str) -> Result<LeakAction, ServiceError> {
    LeakAction::parse(text)
        .ok_or_else(|| ServiceError::invalid("leak_action", "must be \"revoke\" or \"flag\""))
}

/// Changes the policy: `max_lifetime_days` (`Some(None)` clears it), `require_expiry` and
/// `leak_action`, each left as it is when `None`.
pub async fn set_policy(
    state: &AppState,
    caller: &Caller,
    changes: PolicyChanges,
) -> Result<OrganizationRecord, ServiceError> {
    if let Some(Some(days)) = changes.max_lifetime_days
        && !(1..=MAX_LIFETIME_DAYS).contains(&days)
    {
        return Err(ServiceError::invalid(
            "max_lifetime_days",
            "must be between 1 and 3650, or null for no maximum",
        ));
    }
    state
        .store
        .set_organization_policy(&caller.audit, caller.organization_id, changes)
        .await?
        .ok_or(ServiceError::NotFound("organization"))
}
