//! Settings > Members: owners and admins see who belongs to the organization, invite people
//! by email (they join by accepting), resend or cancel invitations, change roles and remove
//! members. Owners alone manage
//! owners (`Role::may_assign`), and the store never lets the last owner go.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use keyward_core::{Email, InvitationId, Role, UserId};
use keyward_store::MemberRecord;
use serde::Deserialize;

use super::form::FormData;
use super::page::{ConfirmPage, DateCell, FormErrors, Layout};
use super::response::{WebError, render};
use super::session::Person;
use crate::AppState;
use crate::services::{Conflict, ServiceError, members};

const ROLES: [Role; 3] = [Role::Owner, Role::Admin, Role::Member];

fn require_manager(state: &AppState, person: &Person) -> Result<(), WebError> {
    if members::may_manage(&person.caller(state)) {
        Ok(())
    } else {
        Err(WebError::forbidden(
            "Only owners and admins manage members.",
        ))
    }
}

struct RoleChoice {
    value: &'static str,
    selected: bool,
}

struct MemberRow {
    id: String,
    email: String,
    role: &'static str,
    joined: DateCell,
    is_you: bool,
    /// Roles this member may be given by the viewer; empty when they cannot change it.
    roles: Vec<RoleChoice>,
    can_remove: bool,
}

struct InvitationRow {
    id: String,
    email: String,
    role: &'static str,
    invited: DateCell,
    expires: DateCell,
    expired: bool,
    emailed: bool,
    /// Whether the viewer may resend or cancel it.
    manage: bool,
}

#[derive(Template)]
#[template(path = "members.html")]
struct MembersPage {
    layout: Layout,
    rows: Vec<MemberRow>,
    invitations: Vec<InvitationRow>,
    /// Whether invitations are emailed (`[smtp]`).
    emails: bool,
    add_roles: Vec<RoleChoice>,
    email: String,
    errors: FormErrors,
    notice: Option<&'static str>,
}

#[derive(Deserialize)]
pub struct Params {
    notice: Option<String>,
}

fn row(state: &AppState, viewer: &Person, member: MemberRecord) -> MemberRow {
    let role = viewer.membership.role;
    let roles = if ROLES
        .iter()
        .any(|&r| r != member.role && role.may_assign(Some(member.role), Some(r)))
    {
        ROLES
            .iter()
            .filter(|&&r| r == member.role || role.may_assign(Some(member.role), Some(r)))
            .map(|&r| RoleChoice {
                value: r.as_str(),
                selected: r == member.role,
            })
            .collect()
    } else {
        Vec::new()
    };
    MemberRow {
        id: member.user_id.to_string(),
        email: member.email.to_string(),
        role: member.role.as_str(),
        joined: DateCell::new(member.joined_at),
        is_you: member.user_id == viewer.user_id,
        roles,
        can_remove: members::may_remove(&viewer.caller(state), &member),
    }
}

async fn members_page(
    state: &AppState,
    person: &Person,
    email: String,
    errors: FormErrors,
    notice: Option<&'static str>,
) -> Result<Response, WebError> {
    let caller = person.caller(state);
    let members = members::list(state, &caller).await?;
    let now = state.config.clock.now();
    let invitations = members::invitations(state, &caller)
        .await?
        .into_iter()
        .map(|invitation| InvitationRow {
            id: invitation.id.to_string(),
            email: invitation.email.to_string(),
            role: invitation.role.as_str(),
            invited: DateCell::new(invitation.created_at),
            expires: DateCell::new(invitation.expires_at),
            expired: invitation.expires_at <= now,
            emailed: invitation.emailed,
            manage: members::may_answer_for(&caller, &invitation),
        })
        .collect();
    let role = person.membership.role;
    let status = errors.status();
    let template = MembersPage {
        layout: Layout::new(state, person, "members").await?,
        rows: members.into_iter().map(|m| row(state, person, m)).collect(),
        invitations,
        emails: crate::email::sends_links(state),
        add_roles: ROLES
            .iter()
            .filter(|&&r| role.may_assign(None, Some(r)))
            .map(|&r| RoleChoice {
                value: r.as_str(),
                selected: r == Role::Member,
            })
            .collect(),
        email,
        errors,
        notice,
    };
    Ok(render(status, &template))
}

pub async fn list_members(
    State(state): State<AppState>,
    person: Person,
    params: Result<Query<Params>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, WebError> {
    require_manager(&state, &person)?;
    let notice = match params.ok().and_then(|Query(p)| p.notice).as_deref() {
        Some("invited") if crate::email::sends_links(&state) => {
            Some("Invitation sent. They join when they accept it.")
        }
        Some("invited") => Some(
            "Invitation saved. They join when they accept it, the next time they sign in or \
             sign up with that email.",
        ),
        Some("resent") if crate::email::sends_links(&state) => {
            Some("Invitation sent again, with a new link valid for seven days.")
        }
        Some("resent") => Some("Invitation renewed for seven days."),
        Some("cancelled") => Some("Invitation cancelled."),
        Some("changed") => Some("Role changed."),
        Some("removed") => Some("Member removed."),
        Some("last-owner") => {
            Some("An organization keeps at least one owner: make someone else owner first.")
        }
        Some("stale") => Some("Their role changed meanwhile: look again before changing it."),
        _ => None,
    };
    members_page(
        &state,
        &person,
        String::new(),
        FormErrors::default(),
        notice,
    )
    .await
}

fn parse_role(raw: &str) -> Option<Role> {
    Role::from_storage(raw)
}

pub async fn add_member(
    State(state): State<AppState>,
    person: Person,
    form: FormData,
) -> Result<Response, WebError> {
    person.check_csrf(form.csrf_token())?;
    require_manager(&state, &person)?;
    let mut errors = FormErrors::default();
    let email = Email::parse(form.text("email"))
        .map_err(|e| errors.push("email", e))
        .ok();
    let role = parse_role(form.text("role"));
    if role.is_none() {
        errors.push("role", "choose a role");
    }
    let entered = form.text("email").to_owned();
    let (Some(email), Some(role)) = (email, role) else {
        return members_page(&state, &person, entered, errors, None).await;
    };
    match members::invite(&state, &person.caller(&state), &email, role).await {
        Ok(_) => Ok(Redirect::to("/settings/members?notice=invited").into_response()),
        Err(error) => {
            errors.absorb(error)?;
            members_page(&state, &person, entered, errors, None).await
        }
    }
}

fn invitation_id(raw: &str) -> Result<InvitationId, WebError> {
    InvitationId::parse(raw).map_err(|_| WebError::not_found("invitation"))
}

/// Resends or cancels an open invitation.
pub async fn invitation_action(
    State(state): State<AppState>,
    person: Person,
    Path((id, action)): Path<(String, String)>,
    form: FormData,
) -> Result<Response, WebError> {
    person.check_csrf(form.csrf_token())?;
    require_manager(&state, &person)?;
    let id = invitation_id(&id)?;
    let caller = person.caller(&state);
    let notice = match action.as_str() {
        "resend" => members::resend(&state, &caller, id)
            .await
            .map(|_| "resent")?,
        "cancel" => members::cancel(&state, &caller, id)
            .await
            .map(|()| "cancelled")?,
        _ => return Err(WebError::not_found("page")),
    };
    Ok(Redirect::to(&format!("/settings/members?notice={notice}")).into_response())
}

async fn member_of(state: &AppState, person: &Person, raw: &str) -> Result<MemberRecord, WebError> {
    let id = UserId::parse(raw).map_err(|_| WebError::not_found("member"))?;
    Ok(members::get(state, &person.caller(state), id).await?)
}

/// Where a change of membership leads: back to the list, with a notice.
fn outcome(result: Result<(), ServiceError>, done: &str) -> Result<Response, WebError> {
    let notice = match result {
        Ok(()) => done,
        Err(ServiceError::Conflict(Conflict::LastOwner)) => "last-owner",
        Err(ServiceError::Conflict(Conflict::StaleRole)) => "stale",
        Err(other) => return Err(other.into()),
    };
    Ok(Redirect::to(&format!("/settings/members?notice={notice}")).into_response())
}

pub async fn change_role(
    State(state): State<AppState>,
    person: Person,
    Path(user_id): Path<String>,
    form: FormData,
) -> Result<Response, WebError> {
    person.check_csrf(form.csrf_token())?;
    require_manager(&state, &person)?;
    let member = member_of(&state, &person, &user_id).await?;
    let role = parse_role(form.text("role")).ok_or_else(|| {
        WebError::page(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Choose owner, admin or member.",
        )
    })?;
    let changed = members::change_role(&state, &person.caller(&state), &member, role).await;
    outcome(changed, "changed")
}

pub async fn confirm_remove(
    State(state): State<AppState>,
    person: Person,
    Path(user_id): Path<String>,
) -> Result<Response, WebError> {
    require_manager(&state, &person)?;
    let member = member_of(&state, &person, &user_id).await?;
    if !members::may_remove(&person.caller(&state), &member) {
        return Err(WebError::forbidden("Only owners can remove owners."));
    }
    let template = ConfirmPage {
        layout: Layout::new(&state, &person, "members").await?,
        title: format!("Remove {}?", member.email),
        message: format!(
            "{} will lose access to {} at once.",
            member.email, person.membership.organization_name
        ),
        details: vec!["API keys they created stay valid until someone revokes them.".into()],
        action: format!("/settings/members/{}/remove", member.user_id),
        button: "Remove member".into(),
        cancel_url: "/settings/members".into(),
    };
    Ok(render(StatusCode::OK, &template))
}

pub async fn remove(
    State(state): State<AppState>,
    person: Person,
    Path(user_id): Path<String>,
    form: FormData,
) -> Result<Response, WebError> {
    person.check_csrf(form.csrf_token())?;
    require_manager(&state, &person)?;
    let member = member_of(&state, &person, &user_id).await?;
    let removed = members::remove(&state, &person.caller(&state), &member).await;
    outcome(removed, "removed")
}
