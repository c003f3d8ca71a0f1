//! `/healthz` (the process answers) and `/readyz` (the database answers too), for load
//! balancers and orchestrators. Neither needs a credential.

use axum::extract::State;
use serde::Serialize;

use utoipa_axum::routes;

use super::ApiRoutes;
use crate::AppState;
use crate::error::ApiError;
use crate::extract::ApiJson;

pub fn router() -> ApiRoutes {
    ApiRoutes::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
}

/// `{"status": "ok"}` or `{"status": "ready"}`.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct Health {
    #[schema(example = "ok")]
    status: &'static str,
}

/// The process answers
#[utoipa::path(
    get, path = "/healthz", tag = "Health",
    responses((status = 200, description = "Up", body = Health))
)]
pub(super) async fn healthz() -> ApiJson<Health> {
    ApiJson(Health { status: "ok" })
}

/// The database answers, and can write
#[utoipa::path(
    get, path = "/readyz", tag = "Health",
    responses(
        (status = 200, description = "Ready", body = Health),
        (status = 503, description = "The database does not answer, or cannot write (the detail says why)", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
pub(super) async fn readyz(State(state): State<AppState>) -> Result<ApiJson<Health>, ApiError> {
    state.store.ping().await.map_err(|error| {
        tracing::warn!(%error, "readiness check failed");
        match error {
            // The reason (a full disk, say) is what an operator needs to see.
            keyward_store::StoreError::Unwritable(reason) => ApiError::Unwritable(reason),
            _ => ApiError::Unavailable,
        }
    })?;
    Ok(ApiJson(Health { status: "ready" }))
}
