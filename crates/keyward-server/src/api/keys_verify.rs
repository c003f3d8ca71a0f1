//! `POST /v1/keys/verify`: the platform's other services ask whether a key is good, through
//! the same cache and checks as Bearer authentication. The caller needs `keys:verify`, and
//! only its own organization's keys can be found: another organization's key is `NOT_FOUND`,
//! and verifying it neither counts as its use nor spends its rate limit.

use axum::extract::State;
use keyward_core::{
    CredentialId, CredentialKind, ExternalId, Meta, OrganizationId, ProjectId, Scope, ScopeSet,
    Timestamp,
};
use serde::{Deserialize, Serialize};

use utoipa_axum::routes;

use super::ApiRoutes;
use crate::AppState;
use crate::auth::{Accept, Principal, Refusal, Verified};
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::rate_limit::RateStatus;
use crate::services::credentials::parse_scopes;

pub fn router() -> ApiRoutes {
    ApiRoutes::new().routes(routes!(verify_key))
}

/// A key to check, and optionally scopes it must hold.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct VerifyRequest {
    #[schema(example = "kwk_yNGeILriJDLhr8P3NkdZNttxm0A3sDgP4DLnXc")]
    key: String,
    /// Scopes the key must hold; none means any valid key.
    #[serde(default)]
    #[schema(value_type = Vec<crate::services::schema::ScopeName>)]
    scopes: Vec<String>,
    /// The address the key was presented from (your client's, not yours): checked against
    /// the key's networks and kept among its last addresses. A key limited to networks is
    /// refused (`IP_NOT_ALLOWED`) without it.
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "192.0.2.7")]
    client_ip: Option<String>,
    /// The credits this request spends of a key that has credits, 0 to 1000000 (default 1):
    /// spent only when the key is valid and holds the scopes; refused whole
    /// (`CREDITS_EXHAUSTED`) when fewer are left.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 1000000, example = 1)]
    cost: Option<i64>,
}

/// How a verification ended.
#[derive(Serialize, Clone, Copy, PartialEq, Eq, Debug, utoipa::ToSchema)]
#[schema(as = VerificationCode)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(super) enum Code {
    Valid,
    NotFound,
    Expired,
    Revoked,
    InsufficientScope,
    RateLimited,
    IpNotAllowed,
    OrganizationSuspended,
    CreditsExhausted,
}

/// Whether a key is good; its details only when `code` is `VALID` or `INSUFFICIENT_SCOPE`.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Verification)]
pub(super) struct VerifyResponse {
    valid: bool,
    code: Code,
    #[schema(value_type = Option<String>)]
    key_id: Option<CredentialId>,
    #[schema(value_type = Option<crate::services::schema::KindName>)]
    kind: Option<CredentialKind>,
    #[schema(value_type = Option<String>)]
    organization_id: Option<OrganizationId>,
    #[schema(value_type = Option<String>)]
    project_id: Option<ProjectId>,
    #[schema(value_type = Option<Vec<crate::services::schema::ScopeName>>)]
    scopes: Option<Vec<String>>,
    #[schema(value_type = Option<String>, format = DateTime)]
    expires_at: Option<Timestamp>,
    /// The platform's id for whoever uses the key, if it gave one.
    #[schema(value_type = Option<String>, example = "user_8412")]
    external_id: Option<ExternalId>,
    /// The platform's meta on the key, if it gave any.
    #[schema(value_type = Option<Object>, example = json!({"plan": "pro"}))]
    meta: Option<Meta>,
    /// Set when `code` is `RATE_LIMITED`, or `CREDITS_EXHAUSTED` with a refill: seconds until
    /// the key may be used again.
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_after: Option<u64>,
    /// For a key with credits: what is left after this request, as the answering node knows
    /// it (other nodes' leases count as spent).
    #[serde(skip_serializing_if = "Option::is_none")]
    credits_remaining: Option<i64>,
    /// Whether the caller may keep this answer (following `GET /v1/keys/events` to forget it
    /// when the key changes): true for a valid key without a rate limit, credits, identity
    /// limits or networks, whose uses need not be counted one by one (unless the node
    /// answering is cut off from its database, and so from other nodes' changes), and for an
    /// unknown, revoked or expired key; false otherwise.
    cacheable: bool,
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
            external_id: None,
            meta: None,
            retry_after: None,
            credits_remaining: None,
            cacheable: matches!(code, Code::NotFound | Code::Revoked | Code::Expired),
        }
    }
}

/// Verify a key for another service
///
/// Uses the same cache and checks as Bearer authentication. Only the caller's organization's
/// keys can be found; another organization's key is `NOT_FOUND` and is not touched.
#[utoipa::path(
    post, path = "/v1/keys/verify", tag = "Verification",
    request_body = VerifyRequest,
    responses((status = 200, description = "The verdict", body = VerifyResponse)),
    security(("bearer" = ["keys:verify"]))
)]
pub(super) async fn verify_key(
    State(state): State<AppState>,
    principal: Principal,
    body: Result<ApiJson<VerifyRequest>, ApiError>,
) -> Result<ApiJson<VerifyResponse>, ApiError> {
    principal.require(Scope::KEYS_VERIFY)?;
    let ApiJson(body) = body?;
    let cost = body.cost.unwrap_or(1);
    if !(0..=keyward_core::route::MAX_COST).contains(&cost) {
        return Err(ApiError::invalid("cost", "must be 0 to 1000000"));
    }
    let required = if body.scopes.is_empty() {
        ScopeSet::EMPTY
    } else {
        parse_scopes(&state.config.scopes, &body.scopes)
            .map_err(|e| ApiError::Validation(vec![e]))?
    };
    let client_ip = body
        .client_ip
        .as_deref()
        .map(|text| {
            text.trim()
                .parse::<std::net::IpAddr>()
                .map_err(|_| ApiError::invalid("client_ip", "must be an IPv4 or IPv6 address"))
        })
        .transpose()?;
    let outcome = state
        .verifier
        .verify(
            &body.key,
            client_ip,
            Accept::Organization(principal.organization_id),
        )
        .await;
    let answer = match outcome {
        Ok(Verified { credential, .. }) => {
            let missing = required.difference(&credential.scopes);
            let mut credits_remaining = None;
            let mut retry_after = None;
            let code = if missing.is_empty() {
                match crate::auth::spend_credits(&state, &credential, cost, None).await {
                    Ok(credited) => {
                        credits_remaining = credited.map(|credited| credited.remaining);
                        Code::Valid
                    }
                    Err(ApiError::CreditsExhausted(refill)) => {
                        retry_after = refill;
                        credits_remaining = credential.credits_left();
                        Code::CreditsExhausted
                    }
                    Err(other) => return Err(other),
                }
            } else {
                // Counted as allowed when it was verified.
                state.verifier.usage_counts().reclassify(
                    credential.id,
                    crate::auth::FailureReason::InsufficientScope.as_str(),
                    None,
                    state.config.clock.now(),
                );
                Code::InsufficientScope
            };
            VerifyResponse {
                valid: code == Code::Valid,
                code,
                key_id: Some(credential.id),
                kind: Some(credential.id.kind()),
                organization_id: Some(credential.organization_id),
                project_id: credential.project_id,
                scopes: Some(
                    state
                        .config
                        .scopes
                        .names(&credential.scopes)
                        .map(str::to_owned)
                        .collect(),
                ),
                expires_at: credential.usable_until(),
                external_id: credential.external_id().cloned(),
                meta: credential.meta().cloned(),
                retry_after,
                credits_remaining,
                // Not while this node is cut off from the database: it hears of no change
                // then, and answers from its own cache a key other nodes already revoked.
                cacheable: code == Code::Valid
                    && state.store.state().down_for.is_none()
                    && !credential.rate_limited()
                    && credential.credits_left().is_none()
                    && !credential.identity_limited()
                    && credential.networks().is_none(),
            }
        }
        Err(Refusal::Malformed(_) | Refusal::NotFound) => VerifyResponse::refused(Code::NotFound),
        Err(Refusal::Revoked) => VerifyResponse::refused(Code::Revoked),
        Err(Refusal::Expired(_)) => VerifyResponse::refused(Code::Expired),
        Err(Refusal::IpNotAllowed(_)) => VerifyResponse::refused(Code::IpNotAllowed),
        Err(Refusal::Suspended) => VerifyResponse::refused(Code::OrganizationSuspended),
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
