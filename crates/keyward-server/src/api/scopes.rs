//! `GET /v1/scopes`: the scope catalog in force, Keyward's own and the platform's, so that a
//! program (or a person writing one) can see what a key may be granted.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use keyward_core::{Role, ScopeLevel};
use serde::Serialize;

use utoipa_axum::routes;

use super::ApiRoutes;
use crate::AppState;
use crate::auth::Principal;
use crate::extract::ApiJson;

pub fn router() -> ApiRoutes {
    ApiRoutes::new().routes(routes!(list_scopes))
}

/// One scope of the catalog.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ScopeDescription)]
pub(super) struct ScopeEntry<'a> {
    #[schema(value_type = String, example = "instances:read")]
    name: &'a str,
    #[schema(example = "List and read instances.")]
    description: &'a str,
    /// `project`: project tokens may hold it too; `organization`: only organization keys.
    #[schema(value_type = crate::services::schema::ScopeLevelName)]
    level: ScopeLevel,
    /// The least organization role that may grant it in the dashboard; `null` for the
    /// installation's scopes, which only admin keys grant.
    #[schema(value_type = Option<crate::services::schema::RoleName>)]
    min_role: Option<Role>,
    /// One of Keyward's own scopes (rather than one the platform defines).
    builtin: bool,
}

/// The scope catalog.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ScopeCatalog)]
pub(super) struct ScopeList<'a> {
    /// Keyward's own scopes, then the platform's, in the configuration file's order.
    data: Vec<ScopeEntry<'a>>,
}

/// List the scopes
///
/// Every scope a key may be granted on this installation, with what it allows. Needs no
/// scope: any valid key or token may read it.
#[utoipa::path(
    get, path = "/v1/scopes", tag = "Verification",
    responses((status = 200, description = "The scope catalog", body = ScopeList)),
    security(("bearer" = []))
)]
pub(super) async fn list_scopes(State(state): State<AppState>, _principal: Principal) -> Response {
    let data = state
        .config
        .scopes
        .iter()
        .map(|(_, info)| ScopeEntry {
            name: &info.name,
            description: &info.description,
            level: info.level,
            min_role: (info.level != keyward_core::ScopeLevel::Installation)
                .then_some(info.min_role),
            builtin: info.builtin,
        })
        .collect();
    ApiJson(ScopeList { data }).into_response()
}
