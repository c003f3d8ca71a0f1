//! `/v1/audit-events`: the organization's audit log.

use axum::extract::State;
use keyward_core::{EventId, Scope};
use serde::Deserialize;

use utoipa_axum::routes;

use super::ApiRoutes;
use crate::AppState;
use crate::audit::Origin;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery};
use crate::pagination::{List, page_from};
use crate::services::audit::{self, AuditEventView, FilterInput};
use crate::services::caller::Caller;

pub fn router() -> ApiRoutes {
    ApiRoutes::new().routes(routes!(list_audit_events))
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
    /// Only what this actor did: `usr_…`, `key_…` or `tok_…`.
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
    let filter = FilterInput {
        action: query.action.as_deref(),
        actor: query.actor.as_deref(),
        target: query.target.as_deref(),
        since: query.since.as_deref(),
        until: query.until.as_deref(),
    }
    .parse();
    let page = page_from(query.limit, query.cursor.as_deref(), |text| {
        EventId::parse(text).ok().map(|id| id.as_uuid())
    });
    let (filter, page) = match (filter, page) {
        (Ok(filter), Ok(page)) => (filter, page),
        (Err(mut errors), Err(ApiError::Validation(more))) => {
            errors.extend(more);
            return Err(ApiError::Validation(errors));
        }
        (Err(errors), _) => return Err(ApiError::Validation(errors)),
        (_, Err(error)) => return Err(error),
    };
    let list = audit::list(
        &state,
        &Caller::credential(&principal, &origin),
        &filter,
        page,
    )
    .await?;
    Ok(ApiJson(list))
}
