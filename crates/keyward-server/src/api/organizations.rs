//! `/v1/organizations`: the installation's organizations, managed by the platform's backend
//! with an admin key (`organizations:read`, `organizations:write`). An organization is
//! named in paths by its id (`org_…`) or by the platform's id for it (`ext:<external id>`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use keyward_core::{Email, ExternalId, Name, OrganizationId, Scope};
use keyward_store::{OrganizationChanges, OrganizationFilter, PolicyChanges};
use serde::Deserialize;

use utoipa_axum::routes;

use super::ApiRoutes;
use super::credential_body::present;
use super::members::{MemberList, MemberView, parse_role};
use crate::AppState;
use crate::audit::Origin;
use crate::auth::Authenticated;
use crate::error::{ApiError, validate};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::field_error::FieldError;
use crate::pagination::{List, page_from};
use crate::services::organization::{OrganizationView, parse_leak_action};
use crate::services::organizations::{self, OrganizationInput, PersonInput};

pub fn router() -> ApiRoutes {
    ApiRoutes::new()
        .routes(routes!(list_organizations, create_organization))
        .routes(routes!(
            show_platform_organization,
            update_platform_organization,
            delete_organization
        ))
        .routes(routes!(list_organization_members, add_organization_member))
}

/// A policy for new credentials; each field left out stays as it is (the defaults at
/// creation: no maximum, no expiry required, leaks revoked).
#[derive(Deserialize, utoipa::ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct PolicyBody {
    /// 1 to 3650; `null` for no maximum.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u32>, minimum = 1, maximum = 3650)]
    max_lifetime_days: Option<Option<u32>>,
    #[serde(default)]
    require_expiry: Option<bool>,
    /// `revoke` or `flag`.
    #[serde(default)]
    #[schema(example = "revoke")]
    leak_action: Option<String>,
}

impl PolicyBody {
    fn parse(self) -> Result<PolicyChanges, ApiError> {
        Ok(PolicyChanges {
            max_lifetime_days: self.max_lifetime_days,
            require_expiry: self.require_expiry,
            leak_action: self
                .leak_action
                .as_deref()
                .map(parse_leak_action)
                .transpose()?,
        })
    }
}

/// A person: found by email, or created without a password (they sign in through the
/// platform).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct PersonBody {
    #[schema(example = "ada@example.com")]
    email: String,
    /// The platform's id for the person (kept when the person is created).
    #[serde(default)]
    #[schema(example = "user_8412", min_length = 1, max_length = 255)]
    external_id: Option<String>,
    /// A display name (kept when the person is created).
    #[serde(default)]
    #[schema(example = "Ada Lovelace", min_length = 1, max_length = 100)]
    name: Option<String>,
}

impl PersonBody {
    fn parse(self, prefix: &'static str) -> Result<PersonInput, Vec<FieldError>> {
        let field = |name: &'static str| -> &'static str {
            match (prefix, name) {
                ("owner", "email") => "owner.email",
                ("owner", "external_id") => "owner.external_id",
                ("owner", _) => "owner.name",
                (_, name) => name,
            }
        };
        let email = Email::parse(&self.email).map_err(|e| FieldError::new(field("email"), e));
        let external_id = self
            .external_id
            .as_deref()
            .map(ExternalId::parse)
            .transpose()
            .map_err(|e| FieldError::new(field("external_id"), e));
        let name = self
            .name
            .as_deref()
            .map(Name::parse)
            .transpose()
            .map_err(|e| FieldError::new(field("name"), e));
        let errors: Vec<FieldError> = [
            email.as_ref().err(),
            external_id.as_ref().err(),
            name.as_ref().err(),
        ]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
        match (email, external_id, name) {
            (Ok(email), Ok(external_id), Ok(name)) => Ok(PersonInput {
                email,
                external_id,
                name,
            }),
            _ => Err(errors),
        }
    }
}

/// `{name, external_id?, owner?, policy?}`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateOrganization {
    /// 1 to 100 characters; not unique (two customers may both be "Acme").
    #[schema(example = "Acme", min_length = 1, max_length = 100)]
    name: String,
    /// The platform's own id for the customer: 1 to 255 printable ASCII characters, unique
    /// among live organizations.
    #[serde(default)]
    #[schema(example = "cus_8412", min_length = 1, max_length = 255)]
    external_id: Option<String>,
    /// Made the owner: the account with this email, or a new person without a password.
    #[serde(default)]
    owner: Option<PersonBody>,
    #[serde(default)]
    policy: Option<PolicyBody>,
}

/// `{name?, external_id?, policy?, status?}`; `"external_id": null` removes it.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct UpdatePlatformOrganization {
    #[serde(default)]
    #[schema(example = "Acme Corp", min_length = 1, max_length = 100)]
    name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, example = "cus_8412", min_length = 1, max_length = 255)]
    external_id: Option<Option<String>>,
    #[serde(default)]
    policy: Option<PolicyBody>,
    /// `suspended` refuses every credential of the organization at once, on every node
    /// (`403 organization_suspended`); `active` accepts them again (those not revoked or
    /// expired meanwhile).
    #[serde(default)]
    #[schema(example = "suspended")]
    status: Option<String>,
}

/// `{email, external_id?, name?, role}`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct AddOrganizationMember {
    #[schema(example = "grace@example.com")]
    email: String,
    #[serde(default)]
    #[schema(example = "user_9001", min_length = 1, max_length = 255)]
    external_id: Option<String>,
    #[serde(default)]
    #[schema(example = "Grace Hopper", min_length = 1, max_length = 100)]
    name: Option<String>,
    /// Any role, `owner` included: the installation stands above the organization.
    #[schema(value_type = crate::services::schema::RoleName)]
    role: String,
}

/// Filters of the list, with `limit` and `cursor`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct OrganizationQuery {
    /// Items per page, 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Only the organization with this external id.
    #[param(min_length = 1, max_length = 255)]
    external_id: Option<String>,
    /// Only names starting with this, whatever the case.
    #[param(max_length = 100)]
    name_prefix: Option<String>,
    /// `active` or `suspended`.
    status: Option<String>,
}

fn parse_status(raw: &str) -> Result<bool, FieldError> {
    match raw {
        "active" => Ok(false),
        "suspended" => Ok(true),
        _ => Err(FieldError::new(
            "status",
            "must be \"active\" or \"suspended\"",
        )),
    }
}

fn parse_external_id(raw: &str) -> Result<ExternalId, FieldError> {
    ExternalId::parse(raw).map_err(|e| FieldError::new("external_id", e))
}

/// The organization a path names (`org_…` or `ext:<external id>`).
async fn named(state: &AppState, raw: &str) -> Result<OrganizationId, ApiError> {
    Ok(organizations::find(state, raw).await?.id)
}

/// List organizations
///
/// Live organizations, newest first.
#[utoipa::path(
    get, path = "/v1/organizations", tag = "Installation",
    params(OrganizationQuery),
    responses((status = 200, description = "A page of organizations", body = List<OrganizationView>)),
    security(("bearer" = ["organizations:read"]))
)]
pub(super) async fn list_organizations(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    query: Result<ApiQuery<OrganizationQuery>, ApiError>,
) -> Result<ApiJson<List<OrganizationView>>, ApiError> {
    principal.require(Scope::ORGANIZATIONS_READ)?;
    let ApiQuery(query) = query?;
    let page = page_from(query.limit, query.cursor.as_deref(), |text| {
        OrganizationId::parse(text).ok().map(|id| id.as_uuid())
    });
    let external_id = query
        .external_id
        .as_deref()
        .map(parse_external_id)
        .transpose();
    let status = query.status.as_deref().map(parse_status).transpose();
    let name_prefix = match query.name_prefix {
        Some(prefix) if prefix.chars().count() > 100 => Err(FieldError::new(
            "name_prefix",
            "must be at most 100 characters",
        )),
        other => Ok(other),
    };
    let page = page.map_err(|error| match error {
        ApiError::Validation(mut errors) => errors.remove(0),
        _ => FieldError::new("cursor", "is not valid"),
    });
    validate!(page, external_id, status, name_prefix);
    let filter = OrganizationFilter {
        external_id,
        name_prefix,
        suspended: status,
    };
    let list = organizations::list(&state, &filter, page).await?;
    Ok(ApiJson(list.map(OrganizationView::from)))
}

/// Create an organization
///
/// One per customer, with the platform's id for it. With `owner`, the account with that
/// email becomes its owner, or a new person is created without a password (they sign in
/// through the platform). Its audit log and the installation's record the creation.
#[utoipa::path(
    post, path = "/v1/organizations", tag = "Installation",
    request_body = CreateOrganization,
    responses((status = 201, description = "Created", body = OrganizationView)),
    security(("bearer" = ["organizations:write"]))
)]
pub(super) async fn create_organization(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    origin: Origin,
    body: Result<ApiJson<CreateOrganization>, ApiError>,
) -> Result<impl IntoResponse, ApiError> {
    principal.require(Scope::ORGANIZATIONS_WRITE)?;
    let ApiJson(body) = body?;
    let mut errors = Vec::new();
    let name = Name::parse(&body.name)
        .map_err(|e| errors.push(FieldError::new("name", e)))
        .ok();
    let external_id = body
        .external_id
        .as_deref()
        .map(parse_external_id)
        .transpose()
        .map_err(|e| errors.push(e))
        .ok()
        .flatten();
    let owner = body
        .owner
        .map(|owner| owner.parse("owner"))
        .transpose()
        .map_err(|e| errors.extend(e))
        .ok()
        .flatten();
    let policy = body.policy.unwrap_or_default().parse()?;
    let Some(name) = name.filter(|_| errors.is_empty()) else {
        return Err(ApiError::Validation(errors));
    };
    let input = OrganizationInput {
        name,
        external_id,
        owner,
        policy,
    };
    let record = organizations::create(&state, &origin.by(&principal), input).await?;
    let location = format!("/v1/organizations/{}", record.id);
    Ok(super::created(location, OrganizationView::from(record)))
}

/// Show an organization
#[utoipa::path(
    get, path = "/v1/organizations/{organization_id}", tag = "Installation",
    params(("organization_id" = String, Path, description = "`org_…`, or `ext:<external id>`")),
    responses((status = 200, description = "The organization", body = OrganizationView)),
    security(("bearer" = ["organizations:read"]))
)]
pub(super) async fn show_platform_organization(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    ApiPath(id): ApiPath<String>,
) -> Result<ApiJson<OrganizationView>, ApiError> {
    principal.require(Scope::ORGANIZATIONS_READ)?;
    let record = organizations::find(&state, &id).await?;
    Ok(ApiJson(record.into()))
}

/// Change, suspend or resume an organization
///
/// `status: "suspended"` refuses every credential of the organization at once, on every
/// node, before this answers; `"active"` accepts them again.
#[utoipa::path(
    patch, path = "/v1/organizations/{organization_id}", tag = "Installation",
    params(("organization_id" = String, Path, description = "`org_…`, or `ext:<external id>`")),
    request_body = UpdatePlatformOrganization,
    responses((status = 200, description = "The organization as changed", body = OrganizationView)),
    security(("bearer" = ["organizations:write"]))
)]
pub(super) async fn update_platform_organization(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    origin: Origin,
    ApiPath(id): ApiPath<String>,
    body: Result<ApiJson<UpdatePlatformOrganization>, ApiError>,
) -> Result<ApiJson<OrganizationView>, ApiError> {
    principal.require(Scope::ORGANIZATIONS_WRITE)?;
    let ApiJson(body) = body?;
    let name = body
        .name
        .as_deref()
        .map(Name::parse)
        .transpose()
        .map_err(|e| FieldError::new("name", e));
    let external_id = match body.external_id {
        None => Ok(None),
        Some(None) => Ok(Some(None)),
        Some(Some(raw)) => parse_external_id(&raw).map(|id| Some(Some(id))),
    };
    let suspended = body.status.as_deref().map(parse_status).transpose();
    validate!(name, external_id, suspended);
    let policy = body.policy.unwrap_or_default().parse()?;
    let id = named(&state, &id).await?;
    let changes = OrganizationChanges {
        name,
        external_id,
        policy,
        suspended,
    };
    let record = organizations::update(&state, &origin.by(&principal), id, changes).await?;
    Ok(ApiJson(record.into()))
}

/// Delete an organization
///
/// In one transaction: every credential revoked (on every node before this answers), its
/// projects and instances deleted, its members removed; the revocations go to its webhooks.
/// Its audit log stays for its retention.
#[utoipa::path(
    delete, path = "/v1/organizations/{organization_id}", tag = "Installation",
    params(("organization_id" = String, Path, description = "`org_…`, or `ext:<external id>`")),
    responses((status = 204, description = "Deleted")),
    security(("bearer" = ["organizations:write"]))
)]
pub(super) async fn delete_organization(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    origin: Origin,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    principal.require(Scope::ORGANIZATIONS_WRITE)?;
    let id = named(&state, &id).await?;
    organizations::delete(&state, &origin.by(&principal), id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// List an organization's members
#[utoipa::path(
    get, path = "/v1/organizations/{organization_id}/members", tag = "Installation",
    params(("organization_id" = String, Path, description = "`org_…`, or `ext:<external id>`")),
    responses((status = 200, description = "Every member, owners first", body = MemberList)),
    security(("bearer" = ["organizations:read"]))
)]
pub(super) async fn list_organization_members(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    ApiPath(id): ApiPath<String>,
) -> Result<ApiJson<MemberList>, ApiError> {
    principal.require(Scope::ORGANIZATIONS_READ)?;
    let id = named(&state, &id).await?;
    let members = state.store.members(id).await?;
    Ok(ApiJson(MemberList::of(members)))
}

/// Add a person to an organization
///
/// The account with the email, or a new person without a password; any role, `owner`
/// included. (An organization's own `POST /v1/members` keeps its stricter rules.)
#[utoipa::path(
    post, path = "/v1/organizations/{organization_id}/members", tag = "Installation",
    params(("organization_id" = String, Path, description = "`org_…`, or `ext:<external id>`")),
    request_body = AddOrganizationMember,
    responses((status = 201, description = "Added", body = MemberView)),
    security(("bearer" = ["organizations:write"]))
)]
pub(super) async fn add_organization_member(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    origin: Origin,
    ApiPath(id): ApiPath<String>,
    body: Result<ApiJson<AddOrganizationMember>, ApiError>,
) -> Result<impl IntoResponse, ApiError> {
    principal.require(Scope::ORGANIZATIONS_WRITE)?;
    let ApiJson(body) = body?;
    let role = parse_role(&body.role);
    let person = PersonBody {
        email: body.email,
        external_id: body.external_id,
        name: body.name,
    }
    .parse("");
    let (person, role) = match (person, role) {
        (Ok(person), Ok(role)) => (person, role),
        (person, role) => {
            let mut errors = person.err().unwrap_or_default();
            errors.extend(role.err());
            return Err(ApiError::Validation(errors));
        }
    };
    let id = named(&state, &id).await?;
    let email = person.email.clone();
    organizations::add_member(&state, &origin.by(&principal), id, person, role).await?;
    let added = state
        .store
        .members(id)
        .await?
        .into_iter()
        .find(|member| member.email == email)
        .ok_or(ApiError::NotFound("member"))?;
    let location = format!("/v1/organizations/{id}/members");
    Ok(super::created(location, MemberView::from(added)))
}
