//! `/v1/organization`: the organization of the presented credential, and its policy for new
//! credentials.

use axum::extract::State;
use keyward_core::Scope;
use serde::Deserialize;

use utoipa_axum::routes;

use super::ApiRoutes;
use super::credential_body::present;
use crate::AppState;
use crate::audit::Origin;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::services::caller::Caller;
use crate::services::organization::{self, OrganizationView};

pub fn router() -> ApiRoutes {
    ApiRoutes::new().routes(routes!(show_organization, update_organization))
}

/// `{max_lifetime_days?, require_expiry?}`; `"max_lifetime_days": null` removes the maximum.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct UpdateOrganization {
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u32>, minimum = 1, maximum = 3650)]
    max_lifetime_days: Option<Option<u32>>,
    #[serde(default)]
    require_expiry: Option<bool>,
    /// `revoke` (the default) or `flag`: what GitHub's report of an exposed key does.
    #[serde(default)]
    #[schema(example = "flag")]
    leak_action: Option<String>,
}

/// Show the organization
///
/// The organization of the presented credential, with its policy for new credentials. Any
/// valid key or token may read it.
#[utoipa::path(
    get, path = "/v1/organization", tag = "Organization",
    responses((status = 200, description = "The organization", body = OrganizationView)),
    security(("bearer" = []))
)]
pub(super) async fn show_organization(
    State(state): State<AppState>,
    principal: Principal,
    origin: Origin,
) -> Result<ApiJson<OrganizationView>, ApiError> {
    let record = organization::get(&state, &Caller::credential(&principal, &origin)).await?;
    Ok(ApiJson(record.into()))
}

/// Change the policy for new credentials
///
/// With a maximum lifetime, a new credential without an expiry, or expiring later, is refused
/// with a 422 that says the maximum. Existing credentials are not changed; lists mark those
/// that exceed the policy.
#[utoipa::path(
    patch, path = "/v1/organization", tag = "Organization",
    request_body = UpdateOrganization,
    responses((status = 200, description = "The organization as changed", body = OrganizationView)),
    security(("bearer" = ["organization:write"]))
)]
pub(super) async fn update_organization(
    State(state): State<AppState>,
    principal: Principal,
    origin: Origin,
    body: Result<ApiJson<UpdateOrganization>, ApiError>,
) -> Result<ApiJson<OrganizationView>, ApiError> {
    principal.require(Scope::ORGANIZATION_WRITE)?;
    let ApiJson(body) = body?;
    let changes = keyward_store::PolicyChanges {
        max_lifetime_days: body.max_lifetime_days,
        require_expiry: body.require_expiry,
        leak_action: body
            .leak_action
            .as_deref()
            .map(organization::parse_leak_action)
            .transpose()?,
    };
    let record =
        organization::set_policy(&state, &Caller::credential(&principal, &origin), changes).await?;
    Ok(ApiJson(record.into()))
}
