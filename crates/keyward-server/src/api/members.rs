//! `/v1/members`: the organization's members, managed by the same service and rules as
//! Settings > Members. A key with `members:write` manages members as an admin does, but never
//! raises anyone (see `services::members`): it adds members only, never admins or owners, so
//! no key, whoever made it and whatever became of them, can take an organization over or
//! outlive itself as a person.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use keyward_core::{Email, Role, Scope, Timestamp, UserId};
use keyward_store::MemberRecord;
use serde::{Deserialize, Serialize};

use utoipa_axum::routes;

use super::ApiRoutes;
use crate::AppState;
use crate::audit::Origin;
use crate::auth::Principal;
use crate::error::{ApiError, validate};
use crate::extract::{ApiJson, ApiPath};
use crate::field_error::FieldError;
use crate::services::caller::Caller;
use crate::services::members;

pub fn router() -> ApiRoutes {
    ApiRoutes::new()
        .routes(routes!(list_members, add_member))
        .routes(routes!(show_member, change_member_role, remove_member))
}

/// A member of the organization.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct MemberView {
    #[schema(value_type = String, example = "usr_01m8dz95x5e4w8stdkzcqeqr73")]
    user_id: UserId,
    #[schema(value_type = String, example = "ada@example.com")]
    email: Email,
    #[schema(value_type = crate::services::schema::RoleName)]
    role: Role,
    #[schema(value_type = String, format = DateTime)]
    joined_at: Timestamp,
}

impl From<MemberRecord> for MemberView {
    fn from(member: MemberRecord) -> Self {
        Self {
            user_id: member.user_id,
            email: member.email,
            role: member.role,
            joined_at: member.joined_at,
        }
    }
}

/// The members, owners first, then by email.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct MemberList {
    data: Vec<MemberView>,
}

impl MemberList {
    pub(super) fn of(members: Vec<MemberRecord>) -> Self {
        Self {
            data: members.into_iter().map(MemberView::from).collect(),
        }
    }
}

/// A person to add: they must have signed up.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct AddMember {
    #[schema(example = "grace@example.com")]
    email: String,
    #[schema(value_type = crate::services::schema::RoleName)]
    role: String,
}

/// A new role.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ChangeRole {
    #[schema(value_type = crate::services::schema::RoleName)]
    role: String,
}

pub(super) fn parse_role(raw: &str) -> Result<Role, FieldError> {
    Role::from_storage(raw).ok_or_else(|| FieldError::new("role", "must be owner, admin or member"))
}

fn parse_user(raw: &str) -> Result<UserId, ApiError> {
    UserId::parse(raw).map_err(|_| ApiError::NotFound("member"))
}

/// List members
#[utoipa::path(
    get, path = "/v1/members", tag = "Members",
    responses((status = 200, description = "Every member", body = MemberList)),
    security(("bearer" = ["members:read"]))
)]
pub(super) async fn list_members(
    State(state): State<AppState>,
    principal: Principal,
    origin: Origin,
) -> Result<ApiJson<MemberList>, ApiError> {
    principal.require(Scope::MEMBERS_READ)?;
    let caller = Caller::credential(&principal, &origin);
    let members = members::list(&state, &caller).await?;
    Ok(ApiJson(MemberList {
        data: members.into_iter().map(MemberView::from).collect(),
    }))
}

/// Add a member
///
/// Adds a person who has signed up, by email, as a member. A key adds members only (403 for
/// `admin` or `owner`), and only when it does not expire, holds every scope a member may
/// grant and is not limited to networks.
#[utoipa::path(
    post, path = "/v1/members", tag = "Members",
    request_body = AddMember,
    responses((status = 201, description = "Added", body = MemberView)),
    extensions(("x-keyward-grants" = json!("The key must also hold every scope it grants."))),
    security(("bearer" = ["members:write"]))
)]
pub(super) async fn add_member(
    State(state): State<AppState>,
    principal: Principal,
    origin: Origin,
    body: Result<ApiJson<AddMember>, ApiError>,
) -> Result<impl IntoResponse, ApiError> {
    principal.require(Scope::MEMBERS_WRITE)?;
    let ApiJson(body) = body?;
    let email = Email::parse(&body.email).map_err(|e| FieldError::new("email", e));
    let role = parse_role(&body.role);
    validate!(email, role);
    let caller = Caller::credential(&principal, &origin);
    members::add(&state, &caller, &email, role).await?;
    let added = members::list(&state, &caller)
        .await?
        .into_iter()
        .find(|member| member.email == email)
        .ok_or(ApiError::NotFound("member"))?;
    let location = format!("/v1/members/{}", added.user_id);
    Ok(super::created(location, MemberView::from(added)))
}

/// Show a member
#[utoipa::path(
    get, path = "/v1/members/{user_id}", tag = "Members",
    params(("user_id" = String, Path, description = "The member's user id, `usr_…`")),
    responses((status = 200, description = "The member", body = MemberView)),
    security(("bearer" = ["members:read"]))
)]
pub(super) async fn show_member(
    State(state): State<AppState>,
    principal: Principal,
    origin: Origin,
    ApiPath(user): ApiPath<String>,
) -> Result<ApiJson<MemberView>, ApiError> {
    principal.require(Scope::MEMBERS_READ)?;
    let user = parse_user(&user)?;
    let caller = Caller::credential(&principal, &origin);
    let member = members::get(&state, &caller, user).await?;
    Ok(ApiJson(member.into()))
}

/// Change a member's role
///
/// A key may lower an admin to member; it never makes an admin or touches an owner.
#[utoipa::path(
    patch, path = "/v1/members/{user_id}", tag = "Members",
    params(("user_id" = String, Path, description = "The member's user id, `usr_…`")),
    request_body = ChangeRole,
    responses((status = 200, description = "The member with the new role", body = MemberView)),
    security(("bearer" = ["members:write"]))
)]
pub(super) async fn change_member_role(
    State(state): State<AppState>,
    principal: Principal,
    origin: Origin,
    ApiPath(user): ApiPath<String>,
    body: Result<ApiJson<ChangeRole>, ApiError>,
) -> Result<ApiJson<MemberView>, ApiError> {
    principal.require(Scope::MEMBERS_WRITE)?;
    let user = parse_user(&user)?;
    let ApiJson(body) = body?;
    let role = parse_role(&body.role).map_err(|e| ApiError::Validation(vec![e]))?;
    let caller = Caller::credential(&principal, &origin);
    let member = members::get(&state, &caller, user).await?;
    members::change_role(&state, &caller, &member, role).await?;
    let member = members::get(&state, &caller, user).await?;
    Ok(ApiJson(member.into()))
}

/// Remove a member
///
/// The organization keeps at least one owner.
#[utoipa::path(
    delete, path = "/v1/members/{user_id}", tag = "Members",
    params(("user_id" = String, Path, description = "The member's user id, `usr_…`")),
    responses((status = 204, description = "Removed")),
    security(("bearer" = ["members:write"]))
)]
pub(super) async fn remove_member(
    State(state): State<AppState>,
    principal: Principal,
    origin: Origin,
    ApiPath(user): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    principal.require(Scope::MEMBERS_WRITE)?;
    let user = parse_user(&user)?;
    let caller = Caller::credential(&principal, &origin);
    let member = members::get(&state, &caller, user).await?;
    members::remove(&state, &caller, &member).await?;
    Ok(StatusCode::NO_CONTENT)
}
