//! `POST /v1/credentials/revoke`: anyone who finds a Keyward key (in a public repository, a
//! paste, a log) reports it here, without authentication: holding the key proves it is
//! exposed. Every usable key in the report is revoked and reported to its organization
//! (audit event, `credential.leaked` webhook, "exposed" mark).
//!
//! The answer tells nothing: always 202 with the same body, whatever the keys were (live,
//! revoked, unknown, or strings that are not keys), and the work is done after the answer,
//! so its time says nothing either. Reports are rate-limited per client address.

use std::collections::BTreeSet;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use keyward_core::KeyDigest;
use serde::{Deserialize, Serialize};

use utoipa_axum::routes;

use super::ApiRoutes;
use crate::AppState;
use crate::audit::Origin;
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::rate_limit::RateStatus;
use crate::services::leaks::{self, Action};

pub fn router() -> ApiRoutes {
    ApiRoutes::new().routes(routes!(revoke_reported))
}

/// Most keys in one report.
pub const MAX_REPORTED: usize = 1_000;
/// What the audit log and the "exposed" mark say about where a key was found.
pub const PUBLIC_REPORT: &str = "reported to the public revocation endpoint";

/// Keys found exposed.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RevocationReport {
    /// The keys found, whole; at most 1,000.
    #[schema(example = json!(["kwk_yNGeILriJDLhr8P3NkdZNttxm0A3sDgP4DLnXc"]), max_items = 1000)]
    credentials: Vec<String>,
}

/// The one answer, whatever the report held.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct ReportAccepted {
    #[schema(example = "accepted")]
    status: &'static str,
}

/// Report exposed keys
///
/// No authentication: possession of a key proves it is exposed. Every usable key in the
/// report is revoked within moments and reported to its organization. The answer is always
/// the same 202, so it tells nothing about which keys existed. A body that is not
/// `{"credentials": [strings]}` with at most 1,000 strings is refused with 400.
#[utoipa::path(
    post, path = "/v1/credentials/revoke", tag = "Leaked keys",
    request_body = RevocationReport,
    responses(
        (status = 202, description = "Accepted (whatever the keys were)", body = ReportAccepted),
        (status = 400, description = "Not a report", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many reports from this address", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
pub(super) async fn revoke_reported(
    State(state): State<AppState>,
    origin: Origin,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    if let Some(address) = origin.client_address()
        && let Err(wait) = state.report_throttle.try_once(address)
    {
        return Err(ApiError::RateLimited(RateStatus {
            limit: crate::throttle::REPORTS_PER_ADDRESS,
            remaining: 0,
            reset_seconds: wait,
            retry_after_seconds: wait,
        }));
    }
    let report: RevocationReport =
        serde_json::from_slice(&body).map_err(|error| ApiError::Unreadable {
            status: StatusCode::BAD_REQUEST,
            detail: format!("send {{\"credentials\": [\"<key>\", …]}}: {error}"),
        })?;
    if report.credentials.len() > MAX_REPORTED {
        return Err(ApiError::Unreadable {
            status: StatusCode::BAD_REQUEST,
            detail: format!("at most {MAX_REPORTED} credentials per report"),
        });
    }
    // Only what has this installation's format and checksum can be a key: the rest is
    // dropped without a database read.
    let digests: BTreeSet<[u8; 32]> = report
        .credentials
        .iter()
        .filter_map(|text| leaks::digest_of(&state, text))
        .map(|digest| *digest.as_bytes())
        .collect();
    if !digests.is_empty() {
        let audit = origin.by_nobody();
        let digests: Vec<KeyDigest> = digests.into_iter().map(KeyDigest).collect();
        let state = state.clone();
        tokio::spawn(async move {
            let reported =
                leaks::report(&state, &audit, &digests, PUBLIC_REPORT, Action::Revoke).await;
            if let Err(error) = reported {
                tracing::error!(%error, "could not act on a report of exposed keys");
            }
        });
    }
    Ok((
        StatusCode::ACCEPTED,
        ApiJson(ReportAccepted { status: "accepted" }),
    ))
}
