//! `GET /v1/api-keys/{key_id}/usage` and `GET /v1/projects/{project_id}/tokens/{token_id}/usage`:
//! a credential's verifications by hour or day and outcome; `GET /v1/usage`: the whole
//! organization's, with its most used credentials (see `services::usage`).

use std::collections::BTreeMap;

use axum::extract::State;
use keyward_core::{CredentialId, CredentialKind, Scope, Timestamp};
use serde::{Deserialize, Serialize};
use utoipa_axum::routes;

use super::ApiRoutes;
use super::credential_endpoints::Collection;
use crate::AppState;
use crate::audit::Origin;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::services::caller::Caller;
use crate::services::usage::{self, Period, Usage};

pub fn router() -> ApiRoutes {
    ApiRoutes::new()
        .routes(routes!(api_key_usage))
        .routes(routes!(project_token_usage))
        .routes(routes!(organization_usage))
}

/// The period and grouping of usage.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct UsageQuery {
    /// The period's start (RFC 3339), rounded down to its bucket; default 30 days (48 hours
    /// by the hour) before `to`.
    from: Option<String>,
    /// The period's end (RFC 3339, not included), rounded up to its bucket; default the end
    /// of the current bucket.
    to: Option<String>,
    /// `day` (the default; days in UTC, at most 400) or `hour` (at most 744).
    granularity: Option<String>,
    /// Count only the verifications of forward authentication that matched route rules
    /// with this `name`; by default every verification.
    route: Option<String>,
}

/// One bucket of usage.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct UsageBucket {
    #[schema(value_type = String, format = DateTime)]
    start: Timestamp,
    total: u64,
    /// Verifications by outcome: `allowed`, or the refusal's code (`revoked`, `expired`,
    /// `rate_limited`, `insufficient_scope`, `ip_not_allowed`, `forbidden` (forward
    /// authentication: no rule allows it), `organization_suspended`);
    /// outcomes with none are left out.
    #[schema(value_type = BTreeMap<String, u64>)]
    outcomes: BTreeMap<String, u64>,
}

/// A credential's usage over a period: every bucket, empty ones too, oldest first. Counts
/// come from every node, at most one flush period late (5 s by default).
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct UsageView {
    /// The credential (absent for an organization's usage).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "key_01m8dz95x5e4w8stdkzcqeqr73")]
    credential_id: Option<CredentialId>,
    #[schema(example = "day")]
    granularity: &'static str,
    #[schema(value_type = String, format = DateTime)]
    from: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    to: Timestamp,
    total: u64,
    /// The period's verifications by outcome.
    #[schema(value_type = BTreeMap<String, u64>)]
    totals: BTreeMap<String, u64>,
    /// The route the counts are of, when the query named one.
    #[serde(skip_serializing_if = "Option::is_none")]
    route: Option<String>,
    /// The period's verifications by named route rule (those forward authentication matched
    /// and have a `name`), then by outcome; whichever `route` the query asked for.
    #[schema(value_type = BTreeMap<String, BTreeMap<String, u64>>)]
    routes: BTreeMap<String, BTreeMap<String, u64>>,
    data: Vec<UsageBucket>,
}

impl From<Usage> for UsageView {
    fn from(usage: Usage) -> Self {
        let totals = usage.totals();
        Self {
            credential_id: usage.credential,
            granularity: usage.period.granularity.as_str(),
            from: usage.period.from,
            to: usage.period.to,
            total: totals.values().sum(),
            totals,
            route: usage.route,
            routes: usage.routes,
            data: usage
                .buckets
                .into_iter()
                .map(|bucket| UsageBucket {
                    start: bucket.start,
                    total: bucket.total(),
                    outcomes: bucket.outcomes,
                })
                .collect(),
        }
    }
}

/// One of the organization's most used credentials over the period.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct TopCredential {
    #[schema(value_type = String, example = "key_01m8dz95x5e4w8stdkzcqeqr73")]
    credential_id: CredentialId,
    name: String,
    total: u64,
    #[schema(value_type = BTreeMap<String, u64>)]
    totals: BTreeMap<String, u64>,
}

/// The organization's usage: all its credentials' verifications together, and the ten most
/// used credentials.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct OrganizationUsageView {
    #[serde(flatten)]
    usage: UsageView,
    /// The credentials with the most verifications in the period, most first (at most 10).
    top: Vec<TopCredential>,
}

/// Most used credentials listed by `GET /v1/usage`.
const TOP: usize = 10;

fn period(state: &AppState, query: &UsageQuery) -> Result<Period, ApiError> {
    Period::parse(
        query.from.as_deref(),
        query.to.as_deref(),
        query.granularity.as_deref(),
        state.config.clock.now(),
    )
    .map_err(ApiError::Validation)
}

/// Show the organization's usage
///
/// Every verification of the organization's keys and tokens, by hour or day and outcome,
/// with the ten credentials used most in the period.
#[utoipa::path(
    get, path = "/v1/usage", tag = "API keys",
    params(UsageQuery),
    responses((status = 200, description = "The organization's usage", body = OrganizationUsageView)),
    security(("bearer" = ["api_keys:read"]))
)]
pub(super) async fn organization_usage(
    State(state): State<AppState>,
    principal: Principal,
    origin: Origin,
    query: Result<ApiQuery<UsageQuery>, ApiError>,
) -> Result<ApiJson<OrganizationUsageView>, ApiError> {
    principal.require(Scope::API_KEYS_READ)?;
    let ApiQuery(query) = query?;
    let period = period(&state, &query)?;
    let caller = Caller::credential(&principal, &origin);
    let route = query.route.as_deref();
    let found = usage::of_organization(&state, &caller, period, route, TOP).await?;
    Ok(ApiJson(OrganizationUsageView {
        usage: found.usage.into(),
        top: found
            .top
            .into_iter()
            .map(|credential| TopCredential {
                credential_id: credential.credential,
                name: credential.name.clone(),
                total: credential.total(),
                totals: credential.outcomes,
            })
            .collect(),
    }))
}

async fn usage_of(
    state: &AppState,
    caller: &Caller,
    collection: Collection,
    id: &str,
    query: UsageQuery,
) -> Result<ApiJson<UsageView>, ApiError> {
    let id = collection.parse_id(id)?;
    let period = period(state, &query)?;
    let route = query.route.as_deref();
    let usage = usage::of_credential(state, caller, id, collection.project, period, route).await?;
    Ok(ApiJson(usage.into()))
}

/// Show an API key's usage
///
/// Its verifications (by the API, `/v1/keys/verify`, forward authentication and
/// introspection) by hour or day and outcome.
#[utoipa::path(
    get, path = "/v1/api-keys/{key_id}/usage", tag = "API keys",
    params(("key_id" = String, Path, description = "The key's id, `key_…`"), UsageQuery),
    responses((status = 200, description = "The key's usage", body = UsageView)),
    security(("bearer" = ["api_keys:read"]))
)]
pub(super) async fn api_key_usage(
    State(state): State<AppState>,
    principal: Principal,
    origin: Origin,
    ApiPath(id): ApiPath<String>,
    query: Result<ApiQuery<UsageQuery>, ApiError>,
) -> Result<ApiJson<UsageView>, ApiError> {
    principal.require(Scope::API_KEYS_READ)?;
    let ApiQuery(query) = query?;
    let caller = Caller::credential(&principal, &origin);
    let keys = Collection {
        kind: CredentialKind::ApiKey,
        project: None,
    };
    usage_of(&state, &caller, keys, &id, query).await
}

/// Show a project token's usage
///
/// Its verifications by hour or day and outcome, as for an API key.
#[utoipa::path(
    get, path = "/v1/projects/{project_id}/tokens/{token_id}/usage", tag = "Project tokens",
    params(
        ("project_id" = String, Path, description = "The project's id, `prj_…`"),
        ("token_id" = String, Path, description = "The token's id, `tok_…`"),
        UsageQuery
    ),
    responses((status = 200, description = "The token's usage", body = UsageView)),
    security(("bearer" = ["tokens:read"]))
)]
pub(super) async fn project_token_usage(
    State(state): State<AppState>,
    principal: Principal,
    origin: Origin,
    ApiPath((project, token)): ApiPath<(String, String)>,
    query: Result<ApiQuery<UsageQuery>, ApiError>,
) -> Result<ApiJson<UsageView>, ApiError> {
    principal.require(Scope::TOKENS_READ)?;
    let ApiQuery(query) = query?;
    let tokens = Collection::tokens(super::projects::parse_id(&project)?);
    let caller = Caller::credential(&principal, &origin);
    usage_of(&state, &caller, tokens, &token, query).await
}
