//! `/v1/members` and `/v1/invitations`: the organization's members and the people invited to
//! join, managed by the same service and rules as Settings > Members. A key with `members:write` manages members as an admin does, but never
//! raises anyone (see `services::members`): it adds members only, never admins or owners, so
//! no key, whoever made it and whatever became of them, can take an organization over or
//! outlive itself as a person.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use keyward_core::{Email, InvitationId, Role, Scope, Timestamp, UserId};
use keyward_store::{InvitationRecord, InvitationStatus, Inviter, MemberRecord};
use serde::{Deserialize, Serialize};
use serde_json::json;

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
        .routes(routes!(list_invitations))
        .routes(routes!(show_invitation, cancel_invitation))
        .routes(routes!(resend_invitation))
}

/// An invitation to join the organization. The person joins when they accept it: through the
/// emailed link, or (without email) at their next sign-in or sign-up with that address.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct InvitationView {
    /// Named for what it is: `POST /v1/members` answers an invitation, whose id is no
    /// member's.
    #[schema(value_type = String, example = "inv_01m8dz95x5e4w8stdkzcqeqr73")]
    invitation_id: InvitationId,
    #[schema(value_type = String, example = "grace@example.com")]
    email: Email,
    #[schema(value_type = crate::services::schema::RoleName)]
    role: Role,
    /// `pending` (waiting), `expired` (resend it to renew it), `accepted`, `declined` or
    /// `cancelled`.
    #[schema(example = "pending")]
    status: &'static str,
    /// Whether a link was emailed (only with `[smtp]`).
    emailed: bool,
    /// Who invited: `{user_id, email}` for a person, `{credential_id}` for a key, `null` for
    /// Keyward itself.
    #[schema(value_type = Option<Object>)]
    invited_by: serde_json::Value,
    #[schema(value_type = String, format = DateTime)]
    created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    expires_at: Timestamp,
}

impl InvitationView {
    fn new(invitation: InvitationRecord, now: Timestamp) -> Self {
        let status = match invitation.status {
            InvitationStatus::Pending if invitation.expires_at <= now => "expired",
            other => other.as_str(),
        };
        let invited_by = match &invitation.invited_by {
            Inviter::Person { id, email } => json!({ "user_id": id, "email": email }),
            Inviter::Credential(id) => json!({ "credential_id": id }),
            Inviter::Keyward => serde_json::Value::Null,
        };
        Self {
            invitation_id: invitation.id,
            email: invitation.email,
            role: invitation.role,
            status,
            emailed: invitation.emailed,
            invited_by,
            created_at: invitation.created_at,
            expires_at: invitation.expires_at,
        }
    }
}

/// The open invitations, newest first.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct InvitationList {
    data: Vec<InvitationView>,
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

/// A person to invite, whether or not they have an account.
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

/// Invite a member
///
/// Invites the person with this email: `201` with the invitation whether or not an account
/// has the email, so the answer tells nothing about who has one. They join when they accept
/// (with `[smtp]`, through the emailed link, valid seven days; without, at their next
/// sign-in or sign-up). `409` when they are a member already or an unexpired invitation is
/// open for them; `429` past the limits on invitation emails (five an hour to one address,
/// 200 a day from one organization). A key invites members only (403 for `admin` or `owner`), and only when it
/// does not expire, holds every scope a member may grant and is not limited to networks;
/// the invitation lapses if the key is revoked before it is accepted.
#[utoipa::path(
    post, path = "/v1/members", tag = "Members",
    request_body = AddMember,
    responses(
        (status = 201, description = "Invited", body = InvitationView),
        (status = 429, description = "Too many invitation emails for now (`throttled`, with `Retry-After`)"),
    ),
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
    let invitation = members::invite(&state, &caller, &email, role).await?;
    let location = format!("/v1/invitations/{}", invitation.id);
    let view = InvitationView::new(invitation, state.config.clock.now());
    Ok(super::created(location, view))
}

fn parse_invitation(raw: &str) -> Result<InvitationId, ApiError> {
    InvitationId::parse(raw).map_err(|_| ApiError::NotFound("invitation"))
}

/// List invitations
///
/// The open invitations, newest first: those still waiting, and expired ones (which can be
/// resent) until they are cancelled or the address is invited again.
#[utoipa::path(
    get, path = "/v1/invitations", tag = "Members",
    responses((status = 200, description = "The open invitations", body = InvitationList)),
    security(("bearer" = ["members:read"]))
)]
pub(super) async fn list_invitations(
    State(state): State<AppState>,
    principal: Principal,
    origin: Origin,
) -> Result<ApiJson<InvitationList>, ApiError> {
    principal.require(Scope::MEMBERS_READ)?;
    let caller = Caller::credential(&principal, &origin);
    let now = state.config.clock.now();
    let data = members::invitations(&state, &caller)
        .await?
        .into_iter()
        .map(|invitation| InvitationView::new(invitation, now))
        .collect();
    Ok(ApiJson(InvitationList { data }))
}

/// Show an invitation
///
/// Any invitation of the organization, whatever became of it.
#[utoipa::path(
    get, path = "/v1/invitations/{invitation_id}", tag = "Members",
    params(("invitation_id" = String, Path, description = "The invitation's id, `inv_…`")),
    responses((status = 200, description = "The invitation", body = InvitationView)),
    security(("bearer" = ["members:read"]))
)]
pub(super) async fn show_invitation(
    State(state): State<AppState>,
    principal: Principal,
    origin: Origin,
    ApiPath(id): ApiPath<String>,
) -> Result<ApiJson<InvitationView>, ApiError> {
    principal.require(Scope::MEMBERS_READ)?;
    let id = parse_invitation(&id)?;
    let caller = Caller::credential(&principal, &origin);
    let invitation = members::invitation(&state, &caller, id).await?;
    Ok(ApiJson(InvitationView::new(
        invitation,
        state.config.clock.now(),
    )))
}

/// Cancel an invitation
///
/// Its link stops working at once. `404` unless it is open.
#[utoipa::path(
    delete, path = "/v1/invitations/{invitation_id}", tag = "Members",
    params(("invitation_id" = String, Path, description = "The invitation's id, `inv_…`")),
    responses((status = 204, description = "Cancelled")),
    security(("bearer" = ["members:write"]))
)]
pub(super) async fn cancel_invitation(
    State(state): State<AppState>,
    principal: Principal,
    origin: Origin,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    principal.require(Scope::MEMBERS_WRITE)?;
    let id = parse_invitation(&id)?;
    let caller = Caller::credential(&principal, &origin);
    members::cancel(&state, &caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Resend an invitation
///
/// Gives an open invitation (expired or not) seven more days and, with `[smtp]`, emails a
/// new link (at most once a minute); the link sent before stops working. The caller becomes
/// its inviter, under the same rules as a new invitation.
#[utoipa::path(
    post, path = "/v1/invitations/{invitation_id}/resend", tag = "Members",
    params(("invitation_id" = String, Path, description = "The invitation's id, `inv_…`")),
    responses(
        (status = 200, description = "The invitation, renewed", body = InvitationView),
        (status = 429, description = "Emailed less than a minute ago, or too many invitation emails for now (`throttled`, with `Retry-After`)"),
    ),
    extensions(("x-keyward-grants" = json!("The key must also hold every scope it grants."))),
    security(("bearer" = ["members:write"]))
)]
pub(super) async fn resend_invitation(
    State(state): State<AppState>,
    principal: Principal,
    origin: Origin,
    ApiPath(id): ApiPath<String>,
) -> Result<ApiJson<InvitationView>, ApiError> {
    principal.require(Scope::MEMBERS_WRITE)?;
    let id = parse_invitation(&id)?;
    let caller = Caller::credential(&principal, &origin);
    let invitation = members::resend(&state, &caller, id).await?;
    Ok(ApiJson(InvitationView::new(
        invitation,
        state.config.clock.now(),
    )))
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
