//! `POST /v1/secret-scanning/github`: GitHub's secret-scanning partner endpoint. GitHub
//! sends the strings it found in public code that match this installation's pattern, signed
//! with its key; every usable Keyward key among them is revoked and reported to its
//! organization with the URL where it was found. The answer labels each string for GitHub's
//! false-positive feedback.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use keyward_core::KeyDigest;
use serde::{Deserialize, Serialize};

use utoipa_axum::routes;

use super::ApiRoutes;
use crate::AppState;
use crate::audit::Origin;
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::services::leaks::{self, Action};

pub fn router() -> ApiRoutes {
    ApiRoutes::new().routes(routes!(github_report))
}

/// One match GitHub found.
#[derive(Deserialize, utoipa::ToSchema)]
pub(super) struct GithubMatch {
    #[schema(example = "kwk_yNGeILriJDLhr8P3NkdZNttxm0A3sDgP4DLnXc")]
    token: String,
    /// The token type registered with GitHub.
    #[serde(rename = "type")]
    #[schema(example = "keyward_api_key")]
    kind: String,
    /// Where it was found.
    #[serde(default)]
    #[schema(
        example = "https://github.com/octocat/Hello-World/blob/12345600b9cbe38a219f39a9941c9319b600c002/foo/bar.txt"
    )]
    url: String,
    #[serde(default)]
    #[schema(example = "content")]
    source: String,
}

/// GitHub's false-positive feedback for one match.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct GithubLabel {
    /// SHA-256 of the token, in hex.
    token_hash: String,
    token_type: String,
    /// `true_positive` for a Keyward key of this installation (live or not), else
    /// `false_positive`.
    #[schema(example = "true_positive")]
    label: &'static str,
}

const IDENTIFIER: &str = "github-public-key-identifier";
const SIGNATURE: &str = "github-public-key-signature";
/// The source recorded when GitHub gives no URL.
const GITHUB: &str = "found by GitHub secret scanning";

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

/// Report from GitHub secret scanning
///
/// Verified with GitHub's public keys (`--github-keys-file`): the signature in
/// `Github-Public-Key-Signature` (base64 DER ECDSA P-256 with SHA-256, over the raw body)
/// must be that of the current key named in `Github-Public-Key-Identifier`; otherwise 401 and
/// nothing changes. Every usable key reported is revoked and marked exposed with its URL; the
/// same report again changes nothing.
#[utoipa::path(
    post, path = "/v1/secret-scanning/github", tag = "Leaked keys",
    request_body = Vec<GithubMatch>,
    responses(
        (status = 200, description = "One label per match", body = Vec<GithubLabel>),
        (status = 400, description = "Not a list of matches", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Unknown key identifier or bad signature", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("github_signature" = []))
)]
pub(super) async fn github_report(
    State(state): State<AppState>,
    origin: Origin,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, ApiJson<Vec<GithubLabel>>), ApiError> {
    let verified = match (
        state.config.github_keys.as_ref(),
        header(&headers, IDENTIFIER),
        header(&headers, SIGNATURE),
    ) {
        (Some(keys), Some(identifier), Some(signature)) => {
            keys.verify(identifier, signature, &body)
        }
        _ => false,
    };
    if !verified {
        return Err(ApiError::InvalidSignature(
            "the report is not signed by a current GitHub key",
        ));
    }
    let matches: Vec<GithubMatch> =
        serde_json::from_slice(&body).map_err(|error| ApiError::Unreadable {
            status: StatusCode::BAD_REQUEST,
            detail: format!("not GitHub's list of matches: {error}"),
        })?;
    let audit = origin.by_nobody();
    let mut labels = Vec::with_capacity(matches.len());
    for found in matches {
        let real = match leaks::digest_of(&state, &found.token) {
            Some(digest) => {
                let source = if found.url.trim().is_empty() {
                    GITHUB.to_owned()
                } else {
                    found.url.trim().chars().take(500).collect()
                };
                // The organization's policy decides: revoke (the default) or flag.
                let changed =
                    leaks::report(&state, &audit, &[digest], &source, Action::ByPolicy).await?;
                !changed.is_empty() || leaks::is_ours(&state, &digest).await?
            }
            None => false,
        };
        tracing::debug!(source = %found.source, real, "GitHub secret scanning match");
        labels.push(GithubLabel {
            // SHA-256 of the token as GitHub sent it.
            token_hash: KeyDigest::of(&found.token)
                .as_bytes()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
            token_type: found.kind,
            label: if real {
                "true_positive"
            } else {
                "false_positive"
            },
        });
    }
    Ok((StatusCode::OK, ApiJson(labels)))
}
