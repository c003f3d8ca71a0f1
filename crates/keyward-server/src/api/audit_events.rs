//! `/v1/audit-events`: the organization's audit log.

use axum::extract::State;
use keyward_core::{EventId, Scope};
use serde::Deserialize;

use utoipa_axum::routes;

use super::ApiRoutes;
use crate::AppState;
use crate::audit::Origin;
use crate::auth::{Authenticated, Principal};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery};
use crate::pagination::{List, page_from};
use crate::services::audit::{self, AuditEventView, FilterInput};
use crate::services::caller::Caller;

pub fn router() -> ApiRoutes {
    ApiRoutes::new()
        .routes(routes!(list_audit_events))
        .routes(routes!(list_installation_events))
}

/// Filters of the audit log, with `limit` and `cursor`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct AuditQuery {
    /// Items per page, 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Only this action, such as `api_key.revoked`.
    action: Option<String>,
    /// Only what this actor did: `usr_…`, `key_…`, `tok_…` or `adk_…`.
    actor: Option<String>,
    /// Only what was done to this: `key_…`, `prj_…`, `usr_…` …
    target: Option<String>,
    /// At or after this time (RFC 3339).
    since: Option<String>,
    /// Before this time (RFC 3339).
    until: Option<String>,
}

/// List audit events
///
/// Every change to the organization's credentials, projects, instances and members, its
/// creation, and log-ins, log-in failures and log-outs: who (a person, a credential or
/// Keyward), from where, what changed. Newest first.
#[utoipa::path(
    get, path = "/v1/audit-events", tag = "Audit log",
    params(AuditQuery),
    responses((status = 200, description = "A page of events", body = List<AuditEventView>)),
    security(("bearer" = ["audit:read"]))
)]
pub(super) async fn list_audit_events(
    State(state): State<AppState>,
    principal: Principal,
    origin: Origin,
    query: Result<ApiQuery<AuditQuery>, ApiError>,
) -> Result<ApiJson<List<AuditEventView>>, ApiError> {
    principal.require(Scope::AUDIT_READ)?;
    let ApiQuery(query) = query?;
    let (filter, page) = query.parse()?;
    let list = audit::list(
        &state,
        &Caller::credential(&principal, &origin),
        &filter,
        page,
    )
    .await?;
    Ok(ApiJson(list))
}

/// List the installation's audit events
///
/// Admin keys' events (created, rotated, revoked, reported leaked) and organizations'
/// (created, changed, suspended, resumed, deleted; these are in the organization's own log
/// as well). Newest first. Admin keys only.
#[utoipa::path(
    get, path = "/v1/admin/audit-events", tag = "Installation",
    params(AuditQuery),
    responses((status = 200, description = "A page of events", body = List<AuditEventView>)),
    security(("bearer" = ["organizations:read"]))
)]
pub(super) async fn list_installation_events(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    query: Result<ApiQuery<AuditQuery>, ApiError>,
) -> Result<ApiJson<List<AuditEventView>>, ApiError> {
    principal.require(Scope::ORGANIZATIONS_READ)?;
    let ApiQuery(query) = query?;
    let (filter, page) = query.parse()?;
    Ok(ApiJson(
        audit::list_installation(&state, &filter, page).await?,
    ))
}

impl AuditQuery {
    /// The filter and page, with every invalid field at once.
    fn parse(self) -> Result<(keyward_store::AuditFilter, keyward_store::Page), ApiError> {
        let filter = FilterInput {
            action: self.action.as_deref(),
            actor: self.actor.as_deref(),
            target: self.target.as_deref(),
            since: self.since.as_deref(),
            until: self.until.as_deref(),
        }
        .parse();
        let page = page_from(self.limit, self.cursor.as_deref(), |text| {
            EventId::parse(text).ok().map(|id| id.as_uuid())
        });
        match (filter, page) {
            (Ok(filter), Ok(page)) => Ok((filter, page)),
            (Err(mut errors), Err(ApiError::Validation(more))) => {
                errors.extend(more);
                Err(ApiError::Validation(errors))
            }
            (Err(errors), _) => Err(ApiError::Validation(errors)),
            (_, Err(error)) => Err(error),
        }
    }
}
