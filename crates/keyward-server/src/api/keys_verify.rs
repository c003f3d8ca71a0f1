//! `POST /v1/keys/verify`: the platform's other services ask whether a key is good, through
//! the same cache and checks as Bearer authentication. The caller needs `keys:verify`, and
//! only its own organization's keys can be found: another organization's key is `NOT_FOUND`,
//! and verifying it neither counts as its use nor spends its rate limit.

use axum::extract::State;
use axum::routing::post;
use keyward_core::{
    CredentialId, CredentialKind, OrganizationId, ProjectId, Scope, ScopeSet, Timestamp,
};
use serde::{Deserialize, Serialize};

use super::ApiRoutes;
use crate::AppState;
use crate::auth::{Principal, RateStatus, Refusal, Verified};
use crate::credentials::parse_scopes;
use crate::error::ApiError;
use crate::extract::ApiJson;

pub fn router() -> ApiRoutes {
    ApiRoutes::new().route("/v1/keys/verify", post(verify_key))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyRequest {
    key: String,
    /// Scopes the key must hold; none means any valid key.
    #[serde(default)]
    scopes: Vec<String>,
}

#[derive(Serialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
enum Code {
    Valid,
    NotFound,
    Expired,
    Revoked,
    InsufficientScope,
    RateLimited,
}

#[derive(Serialize)]
struct VerifyResponse {
    valid: bool,
    code: Code,
    key_id: Option<CredentialId>,
    kind: Option<CredentialKind>,
    organization_id: Option<OrganizationId>,
    project_id: Option<ProjectId>,
    scopes: Option<ScopeSet>,
    expires_at: Option<Timestamp>,
    /// Set when `code` is `RATE_LIMITED`: seconds until the key may be used again.
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_after: Option<u64>,
}

impl VerifyResponse {
    fn refused(code: Code) -> Self {
        Self {
            valid: false,
            code,
            key_id: None,
            kind: None,
            organization_id: None,
            project_id: None,
            scopes: None,
            expires_at: None,
            retry_after: None,
        }
    }
}

async fn verify_key(
    State(state): State<AppState>,
    principal: Principal,
    body: Result<ApiJson<VerifyRequest>, ApiError>,
) -> Result<ApiJson<VerifyResponse>, ApiError> {
    principal.require(Scope::KeysVerify)?;
    let ApiJson(body) = body?;
    let required = if body.scopes.is_empty() {
        ScopeSet::EMPTY
    } else {
        parse_scopes(&body.scopes).map_err(|e| ApiError::Validation(vec![e]))?
    };
    let outcome = state
        .verifier
        .verify(&body.key, None, Some(principal.organization_id))
        .await;
    let answer = match outcome {
        Ok(Verified { credential, .. }) => {
            let missing = required.difference(credential.scopes);
            let code = if missing.is_empty() {
                Code::Valid
            } else {
                Code::InsufficientScope
            };
            VerifyResponse {
                valid: code == Code::Valid,
                code,
                key_id: Some(credential.id),
                kind: Some(credential.id.kind()),
                organization_id: Some(credential.organization_id),
                project_id: credential.project_id,
                scopes: Some(credential.scopes),
                expires_at: credential.expires_at,
                retry_after: None,
            }
        }
        Err(Refusal::Malformed(_) | Refusal::NotFound) => VerifyResponse::refused(Code::NotFound),
        Err(Refusal::Revoked) => VerifyResponse::refused(Code::Revoked),
        Err(Refusal::Expired(_)) => VerifyResponse::refused(Code::Expired),
        Err(Refusal::RateLimited(RateStatus {
            retry_after_seconds,
            ..
        })) => VerifyResponse {
            retry_after: Some(retry_after_seconds),
            ..VerifyResponse::refused(Code::RateLimited)
        },
        Err(other) => return Err(other.into()),
    };
    Ok(ApiJson(answer))
}
