//! The audit log as the API and the dashboard show it: an organization's events, newest
//! first, filtered by action, actor, target and time.

use keyward_core::{CredentialKind, EventId, OrganizationId, Timestamp};
use keyward_store::{Actor, AuditEventRecord, AuditFilter, Page};
use serde::Serialize;
use serde_json::Value;

use super::ServiceError;
use super::caller::Caller;
use crate::AppState;
use crate::field_error::FieldError;
use crate::pagination::List;

/// The longest filter value accepted.
const MAX_FILTER: usize = 100;

/// Who did it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ActorView {
    /// `user`, `credential` or `system`.
    #[serde(rename = "type")]
    #[schema(example = "credential")]
    pub kind: &'static str,
    /// `usr_…`, `key_…`, `tok_…` or `adk_…`; absent for `system`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// A person's email.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// A credential's hint (never the key).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "kwk_…LnXc")]
    pub hint: Option<String>,
}

/// What it was done to.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TargetView {
    #[serde(rename = "type")]
    #[schema(example = "api_key")]
    pub kind: String,
    #[schema(example = "key_01m8dz95x5e4w8stdkzcqeqr73")]
    pub id: String,
}

/// One event of the audit log.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AuditEventView {
    #[schema(value_type = String, example = "evt_01m8dz95x5e4w8stdkzcqeqr73")]
    pub id: EventId,
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    #[schema(example = "api_key.revoked")]
    pub action: String,
    pub actor: ActorView,
    /// The organization whose log it is in; absent for the installation's own events (admin
    /// keys').
    #[schema(value_type = Option<String>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub organization_id: Option<OrganizationId>,
    /// When an admin key did it for an organization (`Keyward-Organization`): that
    /// organization.
    #[schema(value_type = Option<String>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acting_for: Option<OrganizationId>,
    pub target: TargetView,
    /// Each changed field with its value `before` and `after`.
    #[schema(value_type = Object)]
    pub changes: Value,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
    /// The `X-Request-Id` of the request that made the change.
    pub request_id: Option<String>,
}

impl From<AuditEventRecord> for AuditEventView {
    fn from(event: AuditEventRecord) -> Self {
        let acting_for = match &event.actor {
            Actor::Credential { id, .. } if id.kind() == CredentialKind::AdminKey => {
                event.organization_id
            }
            _ => None,
        };
        let actor = match event.actor {
            Actor::System => ActorView {
                kind: "system",
                id: None,
                email: None,
                hint: None,
            },
            Actor::User { id, email } => ActorView {
                kind: "user",
                id: Some(id.to_string()),
                email: Some(email),
                hint: None,
            },
            Actor::Credential { id, hint } => ActorView {
                kind: "credential",
                id: Some(id.to_string()),
                email: None,
                hint: Some(hint),
            },
        };
        Self {
            id: event.id,
            at: event.at,
            action: event.action,
            actor,
            organization_id: event.organization_id,
            acting_for,
            target: TargetView {
                kind: event.target_type,
                id: event.target_id,
            },
            changes: serde_json::from_str(&event.changes).unwrap_or(Value::Null),
            client_ip: event.client_ip,
            user_agent: event.user_agent,
            request_id: event.request_id,
        }
    }
}

/// The filters as given (query string or form), checked.
#[derive(Default)]
pub struct FilterInput<'a> {
    pub action: Option<&'a str>,
    pub actor: Option<&'a str>,
    pub target: Option<&'a str>,
    pub since: Option<&'a str>,
    pub until: Option<&'a str>,
}

impl FilterInput<'_> {
    /// Every invalid field at once.
    pub fn parse(&self) -> Result<AuditFilter, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut text = |field: &'static str, value: Option<&str>| {
            let value = value.map(str::trim).filter(|v| !v.is_empty())?;
            if value.len() > MAX_FILTER {
                errors.push(FieldError::new(field, "must be at most 100 characters"));
                return None;
            }
            Some(value.to_owned())
        };
        let action = text("action", self.action);
        let actor = text("actor", self.actor);
        let target = text("target", self.target);
        let mut time = |field: &'static str, value: Option<&str>| {
            let value = value.map(str::trim).filter(|v| !v.is_empty())?;
            Timestamp::parse(value)
                .map_err(|_| {
                    errors.push(FieldError::new(
                        field,
                        "must be a time such as 2026-11-27T00:00:00Z",
                    ))
                })
                .ok()
        };
        let since = time("since", self.since);
        let until = time("until", self.until);
        if errors.is_empty() {
            Ok(AuditFilter {
                action,
                actor,
                target,
                since,
                until,
            })
        } else {
            Err(errors)
        }
    }
}

pub async fn list(
    state: &AppState,
    caller: &Caller,
    filter: &AuditFilter,
    page: Page,
) -> Result<List<AuditEventView>, ServiceError> {
    let paged = state
        .store
        .list_audit_events(caller.organization_id, filter, page)
        .await?;
    Ok(List::from_paged(
        paged,
        |event| event.id.to_string(),
        AuditEventView::from,
    ))
}

/// A page of the installation's own log: admin keys' events, and organizations' creation,
/// changes, suspension and deletion.
pub async fn list_installation(
    state: &AppState,
    filter: &AuditFilter,
    page: Page,
) -> Result<List<AuditEventView>, ServiceError> {
    let paged = state.store.list_installation_events(filter, page).await?;
    Ok(List::from_paged(
        paged,
        |event| event.id.to_string(),
        AuditEventView::from,
    ))
}
