//! An organization's members: invite people by email (they join by accepting), change roles,
//! remove. Owners
//! alone make, change or remove owners (`Role::may_assign`), only owners and admins manage
//! members at all, and the store never lets the last owner go.
//!
//! A credential with `members:write` manages members as an admin does, and never raises
//! anyone: a person outlives the key that added them and makes keys of their own, so a key
//! could otherwise turn itself into a person with more than it holds, for longer. It adds
//! people as members only, and only when it holds every scope a member may grant, does not
//! expire and is not limited to networks; it may lower an admin to member and remove
//! members and admins; it never makes an admin. Admins and owners are made by people.

use keyward_core::{Email, InvitationId, KeyDigest, Role, ScopeCatalog, UserId};
use keyward_store::{
    Actor, InvitationRecord, InvitationStatus, MemberRecord, MembershipChange, NewEmail,
    NewInvitation, StoreError,
};

use super::caller::{Caller, CallerKind};
use super::{Conflict, ServiceError};
use crate::AppState;
use crate::email::{INVITATION, new_email};

/// The role whose rules the caller follows: a person's own, an admin's for a credential.
fn role_of(caller: &Caller) -> Role {
    match caller.actor {
        CallerKind::Person { role, .. } => role,
        CallerKind::Credential { .. } => Role::Admin,
    }
}

/// Whether the caller manages members at all (owners, admins, credentials).
pub fn may_manage(caller: &Caller) -> bool {
    role_of(caller).manages_members()
}

fn check(
    caller: &Caller,
    catalog: &ScopeCatalog,
    current: Option<Role>,
    new: Option<Role>,
) -> Result<(), ServiceError> {
    check_role(caller, current, new)?;
    if let CallerKind::Credential { .. } = caller.actor {
        credential_may_assign(caller, catalog, current, new)?;
    }
    Ok(())
}

/// The role's part of [`check`], all there is to removing someone.
fn check_role(
    caller: &Caller,
    current: Option<Role>,
    new: Option<Role>,
) -> Result<(), ServiceError> {
    let role = role_of(caller);
    if !role.manages_members() {
        return Err(ServiceError::Forbidden {
            field: None,
            message: "only owners and admins manage members",
        });
    }
    if !role.may_assign(current, new) {
        let message = match (current, new) {
            (None, _) => "only owners can add owners",
            (_, None) => "only owners can remove owners",
            _ => "only owners can make or change owners",
        };
        return Err(ServiceError::Forbidden {
            field: Some("role"),
            message,
        });
    }
    Ok(())
}

/// The rule of the module for a credential moving a member from `current` to `new`.
fn credential_may_assign(
    caller: &Caller,
    catalog: &ScopeCatalog,
    current: Option<Role>,
    new: Option<Role>,
) -> Result<(), ServiceError> {
    let grants = &caller.grants;
    let refuse = |message| {
        Err(ServiceError::Forbidden {
            field: Some("role"),
            message,
        })
    };
    if new.is_some() && grants.networks.is_some() {
        return refuse(
            "a key limited to networks cannot add members or change roles: they could act from \
             any address",
        );
    }
    if new.is_some() && grants.credits {
        return refuse(
            "a key with credits or identity limits cannot add members or change roles: they could \
             make keys without its limits",
        );
    }
    if new == Some(Role::Admin) && current != Some(Role::Admin) {
        return refuse(
            "a key cannot make admins: an owner or admin does that in the dashboard, as a person",
        );
    }
    if current.is_none() && new.is_some() {
        if grants.usable_until.is_some() {
            return refuse(
                "a key that expires cannot add members: they would outlast it; add them with a \
                 key that does not expire, or in the dashboard",
            );
        }
        if !catalog.role_cap(Role::Member).is_subset_of(&grants.scopes) {
            return refuse(
                "a key adds members only when it holds every scope a member may grant (see \
                 GET /v1/scopes); add them in the dashboard",
            );
        }
    }
    Ok(())
}

/// Owners first, then by email.
pub async fn list(state: &AppState, caller: &Caller) -> Result<Vec<MemberRecord>, ServiceError> {
    Ok(state.store.members(caller.organization_id).await?)
}

pub async fn get(
    state: &AppState,
    caller: &Caller,
    user: UserId,
) -> Result<MemberRecord, ServiceError> {
    list(state, caller)
        .await?
        .into_iter()
        .find(|member| member.user_id == user)
        .ok_or(ServiceError::NotFound("member"))
}

/// How long an invitation (and its link) can be accepted.
pub const INVITATION_SECONDS: i64 = 7 * 24 * 3_600;

/// Invites the person with this email to join with `role`: the same answer whether or not an
/// account has the email, and nobody joins until they accept. With `[smtp]` the invitation
/// is emailed with its link; without, it waits for the person's next sign-in or sign-up.
pub async fn invite(
    state: &AppState,
    caller: &Caller,
    email: &Email,
    role: Role,
) -> Result<InvitationRecord, ServiceError> {
    check(caller, &state.config.scopes, None, Some(role))?;
    let now = state.config.clock.now();
    let id = InvitationId::generate();
    let invitation = NewInvitation {
        id,
        organization_id: caller.organization_id,
        email: email.clone(),
        role,
        created_at: now,
        expires_at: now.plus_seconds(INVITATION_SECONDS),
        link: link(state, caller, email, role).await?,
    };
    state
        .store
        .create_invitation(&caller.audit, invitation)
        .await
        .map_err(|error| match error {
            StoreError::Conflict("member") => ServiceError::Conflict(Conflict::AlreadyMember),
            StoreError::Conflict(_) => ServiceError::Conflict(Conflict::AlreadyInvited),
            other => other.into(),
        })
}

/// The message that carries an invitation's link, and the digest of the link's token: the
/// token is derived again when the message is sent, and kept nowhere. `None` without email.
async fn link(
    state: &AppState,
    caller: &Caller,
    email: &Email,
    role: Role,
) -> Result<Option<(NewEmail, KeyDigest)>, ServiceError> {
    let (Some(_), Some(key)) = (&state.config.smtp, &state.config.webhook_signing_key) else {
        return Ok(None);
    };
    let organization = state
        .store
        .get_organization(caller.organization_id)
        .await?
        .ok_or(ServiceError::NotFound("organization"))?;
    // A person is named; a key speaks for the organization, which the message names anyway.
    let inviter = match &caller.audit.actor {
        Actor::User { email, .. } => email.clone(),
        _ => String::new(),
    };
    let params = serde_json::json!({
        "organization": organization.name.as_str(),
        "role": role.as_str(),
        "inviter": inviter,
    });
    let message = new_email(
        email.clone(),
        "invitation",
        params,
        state.config.clock.now(),
    );
    let token = key.link_token(INVITATION, message.id.as_bytes());
    Ok(Some((message, KeyDigest::of(&token))))
}

/// The organization's open invitations, newest first.
pub async fn invitations(
    state: &AppState,
    caller: &Caller,
) -> Result<Vec<InvitationRecord>, ServiceError> {
    Ok(state.store.list_invitations(caller.organization_id).await?)
}

pub async fn invitation(
    state: &AppState,
    caller: &Caller,
    id: InvitationId,
) -> Result<InvitationRecord, ServiceError> {
    state
        .store
        .get_invitation(caller.organization_id, id)
        .await?
        .ok_or(ServiceError::NotFound("invitation"))
}

/// An open invitation of the organization.
async fn open_invitation(
    state: &AppState,
    caller: &Caller,
    id: InvitationId,
) -> Result<InvitationRecord, ServiceError> {
    let invitation = invitation(state, caller, id).await?;
    if invitation.status != InvitationStatus::Pending {
        return Err(ServiceError::NotFound("invitation"));
    }
    Ok(invitation)
}

/// Cancels an open invitation: its link stops working.
pub async fn cancel(
    state: &AppState,
    caller: &Caller,
    id: InvitationId,
) -> Result<(), ServiceError> {
    let invitation = open_invitation(state, caller, id).await?;
    // Whoever may give the role may take the offer back.
    check_role(caller, None, Some(invitation.role))?;
    let cancelled = state
        .store
        .cancel_invitation(
            &caller.audit,
            caller.organization_id,
            id,
            state.config.clock.now(),
        )
        .await?;
    if cancelled {
        Ok(())
    } else {
        Err(ServiceError::NotFound("invitation"))
    }
}

/// Gives an open invitation (expired or not) seven more days and, with email, a new link;
/// the link sent before stops working. The caller makes it anew: they must be able to
/// invite with its role, as for a new one, and acceptance checks their rights from now on.
pub async fn resend(
    state: &AppState,
    caller: &Caller,
    id: InvitationId,
) -> Result<InvitationRecord, ServiceError> {
    let invitation = open_invitation(state, caller, id).await?;
    check(caller, &state.config.scopes, None, Some(invitation.role))?;
    let link = link(state, caller, &invitation.email, invitation.role).await?;
    let expires_at = state.config.clock.now().plus_seconds(INVITATION_SECONDS);
    state
        .store
        .resend_invitation(&caller.audit, caller.organization_id, id, expires_at, link)
        .await?
        .ok_or(ServiceError::NotFound("invitation"))
}

/// Whether the caller may cancel and resend `invitation` (for showing the buttons).
pub fn may_answer_for(caller: &Caller, invitation: &InvitationRecord) -> bool {
    check_role(caller, None, Some(invitation.role)).is_ok()
}

/// Gives `member` (as the caller saw it) the role `to`.
pub async fn change_role(
    state: &AppState,
    caller: &Caller,
    member: &MemberRecord,
    to: Role,
) -> Result<(), ServiceError> {
    check(caller, &state.config.scopes, Some(member.role), Some(to))?;
    let change = state
        .store
        .change_member_role(
            &caller.audit,
            caller.organization_id,
            member.user_id,
            member.role,
            to,
        )
        .await?;
    outcome(change)
}

/// Removes `member` (as the caller saw it) from the organization.
pub async fn remove(
    state: &AppState,
    caller: &Caller,
    member: &MemberRecord,
) -> Result<(), ServiceError> {
    check(caller, &state.config.scopes, Some(member.role), None)?;
    let change = state
        .store
        .remove_member(
            &caller.audit,
            caller.organization_id,
            member.user_id,
            member.role,
        )
        .await?;
    outcome(change)
}

/// Whether the caller may remove `member` (for showing the button).
pub fn may_remove(caller: &Caller, member: &MemberRecord) -> bool {
    check_role(caller, Some(member.role), None).is_ok()
}

fn outcome(change: MembershipChange) -> Result<(), ServiceError> {
    match change {
        MembershipChange::Done => Ok(()),
        MembershipChange::LastOwner => Err(ServiceError::Conflict(Conflict::LastOwner)),
        MembershipChange::Stale => Err(ServiceError::Conflict(Conflict::StaleRole)),
        MembershipChange::NotFound => Err(ServiceError::NotFound("member")),
    }
}
