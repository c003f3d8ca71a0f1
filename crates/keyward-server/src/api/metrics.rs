//! `GET /metrics`: Prometheus text. Open like the health checks: expose it to the scraper
//! only (it shows counts, never keys or names).

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use utoipa_axum::routes;

use super::ApiRoutes;
use crate::AppState;

pub fn router() -> ApiRoutes {
    ApiRoutes::new().routes(routes!(metrics))
}

/// Prometheus metrics
///
/// Verifications by outcome, cache hits, misses and entries, last-use flushes, database writes
/// and reads, and a request latency histogram, in the Prometheus text format.
#[utoipa::path(
    get, path = "/metrics", tag = "Health",
    responses((status = 200, description = "Prometheus text", body = String, content_type = "text/plain"))
)]
pub(super) async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let text = state
        .metrics
        .render(state.verifier.cache().entries(), state.store.stats());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
}
