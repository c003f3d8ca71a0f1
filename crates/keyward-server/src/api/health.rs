//! `/healthz` (the process answers) and `/readyz` (the database answers too), for load
//! balancers and orchestrators. Neither needs a credential.

use axum::extract::State;
use axum::routing::get;
use serde_json::{Value, json};

use super::ApiRoutes;
use crate::AppState;
use crate::error::ApiError;
use crate::extract::ApiJson;

pub fn router() -> ApiRoutes {
    ApiRoutes::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

async fn healthz() -> ApiJson<Value> {
    ApiJson(json!({ "status": "ok" }))
}

async fn readyz(State(state): State<AppState>) -> Result<ApiJson<Value>, ApiError> {
    state.store.ping().await.map_err(|error| {
        tracing::warn!(%error, "readiness check failed");
        ApiError::Unavailable
    })?;
    Ok(ApiJson(json!({ "status": "ready" })))
}
