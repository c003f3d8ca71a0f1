//! `/v1/identities/{external_id}/limits`: a rate limit and credits shared by every key and
//! token of the organization that carries the external id.

use axum::extract::State;
use axum::http::StatusCode;
use keyward_core::{ExternalId, RateLimit, Scope};
use keyward_store::IdentityLimits;
use serde::Deserialize;
use utoipa_axum::routes;

use super::ApiRoutes;
use super::credential_body::CreditsBody;
use crate::AppState;
use crate::audit::Origin;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath};
use crate::field_error::FieldError;
use crate::services::caller::Caller;
use crate::services::identities::{self, IdentityLimitsView};

pub fn router() -> ApiRoutes {
    ApiRoutes::new().routes(routes!(set_limits, get_limits, delete_limits))
}

/// `{rate_limit?, credits?}`, at least one, in the shapes a key's take.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct IdentityLimitsBody {
    /// `{requests, per_seconds}`, shared by the identity's keys across every node. Without
    /// it, none.
    #[serde(default)]
    #[schema(value_type = Option<crate::services::schema::RateLimitSchema>)]
    rate_limit: Option<RateLimit>,
    /// `{remaining, refill?}`, set anew (what nodes hold in leases no longer counts). Without
    /// it, none.
    #[serde(default)]
    #[schema(value_type = Option<crate::services::schema::CreditsSchema>)]
    credits: Option<CreditsBody>,
}

impl IdentityLimitsBody {
    fn limits(self) -> Result<IdentityLimits, ApiError> {
        if self.rate_limit.is_none() && self.credits.is_none() {
            return Err(ApiError::Validation(vec![FieldError::new(
                "rate_limit",
                "send rate_limit, credits or both; DELETE removes an identity's limits",
            )]));
        }
        let rate_limit = self
            .rate_limit
            .map(|limit| RateLimit::new(limit.requests, limit.per_seconds))
            .transpose()
            .map_err(|e| ApiError::Validation(vec![FieldError::new("rate_limit", e)]))?;
        let credits = self
            .credits
            .as_ref()
            .map(CreditsBody::settings)
            .transpose()
            .map_err(|e| ApiError::Validation(vec![e]))?;
        Ok(IdentityLimits {
            rate_limit,
            credits,
        })
    }
}

fn external_id(raw: &str) -> Result<ExternalId, ApiError> {
    ExternalId::parse(raw).map_err(|e| ApiError::invalid("external_id", e))
}

/// Set an identity's limits
///
/// A rate limit and credits shared by every key and token of the organization whose
/// `external_id` is this one (percent-encode a `/` in it as `%2F`), on every node, as exactly
/// as a key's own. A request with one of them must pass its own limits and the identity's:
/// the stricter wins. Replaces both: what the body leaves out is removed; credits are set
/// anew. A key that is itself limited (its own rate limit or credits, or its identity's)
/// cannot change an identity's limits (422).
#[utoipa::path(
    put, path = "/v1/identities/{external_id}/limits", tag = "API keys",
    params(("external_id" = String, Path, description = "The external id the keys carry")),
    request_body = IdentityLimitsBody,
    responses((status = 200, description = "The identity's limits", body = IdentityLimitsView)),
    security(("bearer" = ["api_keys:write"]))
)]
pub(super) async fn set_limits(
    State(state): State<AppState>,
    principal: Principal,
    origin: Origin,
    ApiPath(raw): ApiPath<String>,
    body: Result<ApiJson<IdentityLimitsBody>, ApiError>,
) -> Result<ApiJson<IdentityLimitsView>, ApiError> {
    principal.require(Scope::API_KEYS_WRITE)?;
    let external_id = external_id(&raw)?;
    let ApiJson(body) = body?;
    let limits = body.limits()?;
    let caller = Caller::credential(&principal, &origin);
    let view = identities::set(&state, &caller, &external_id, limits).await?;
    Ok(ApiJson(view))
}

/// Show an identity's limits
///
/// With what is left of its credits (what nodes hold in leases counts as spent).
#[utoipa::path(
    get, path = "/v1/identities/{external_id}/limits", tag = "API keys",
    params(("external_id" = String, Path, description = "The external id the keys carry")),
    responses(
        (status = 200, description = "The identity's limits", body = IdentityLimitsView),
        (status = 404, description = "The identity has no limits", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "The external id is not a valid one", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["api_keys:write"]))
)]
pub(super) async fn get_limits(
    State(state): State<AppState>,
    principal: Principal,
    origin: Origin,
    ApiPath(raw): ApiPath<String>,
) -> Result<ApiJson<IdentityLimitsView>, ApiError> {
    principal.require(Scope::API_KEYS_WRITE)?;
    let external_id = external_id(&raw)?;
    let caller = Caller::credential(&principal, &origin);
    Ok(ApiJson(
        identities::get(&state, &caller, &external_id).await?,
    ))
}

/// Remove an identity's limits
///
/// Its keys and tokens keep their own limits only, from the next request on every node.
#[utoipa::path(
    delete, path = "/v1/identities/{external_id}/limits", tag = "API keys",
    params(("external_id" = String, Path, description = "The external id the keys carry")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "The identity had no limits", body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 422, description = "The external id is not a valid one, or the key is held by a limit itself", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["api_keys:write"]))
)]
pub(super) async fn delete_limits(
    State(state): State<AppState>,
    principal: Principal,
    origin: Origin,
    ApiPath(raw): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    principal.require(Scope::API_KEYS_WRITE)?;
    let external_id = external_id(&raw)?;
    let caller = Caller::credential(&principal, &origin);
    identities::delete(&state, &caller, &external_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
