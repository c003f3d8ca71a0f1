//! The example service (`examples/service.rs`): a small database service protected by
//! [`VerifyLayer`]. Its routes are here, so that the tests run exactly what it serves.
//!
//! - `GET /databases` needs `databases:read` and answers who is calling;
//! - `POST /databases/{project_id}` needs `databases:write` and a key that reaches the
//!   project (any of its organization's for an API key, its own for a project token).

use axum::extract::Path;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::{Caller, Refusal, Verifier, VerifyLayer};

/// The example service's routes, every one behind `verifier`.
pub fn router(verifier: Verifier) -> Router {
    Router::new()
        .route("/databases", get(list))
        .route("/databases/{project_id}", post(create))
        .layer(VerifyLayer::new(verifier))
}

async fn list(caller: Caller) -> Result<Json<Value>, Refusal> {
    caller.require("databases:read")?;
    Ok(Json(json!({
        "key_id": caller.key_id,
        "organization_id": caller.organization_id,
        "databases": [],
    })))
}

async fn create(caller: Caller, Path(project): Path<String>) -> Result<Json<Value>, Refusal> {
    caller.require("databases:write")?;
    if !caller.reaches(&project) {
        return Err(Refusal::Forbidden(
            "this project token is for another project".into(),
        ));
    }
    Ok(Json(json!({ "project_id": project, "created": true })))
}
