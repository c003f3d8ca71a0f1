//! An organization's members: add people who have an account, change roles, remove. Owners
//! alone make, change or remove owners (`Role::may_assign`), only owners and admins manage
//! members at all, and the store never lets the last owner go.
//!
//! A credential with `members:write` manages members as an admin does, and never raises
//! anyone: a person outlives the key that added them and makes keys of their own, so a key
//! could otherwise turn itself into a person with more than it holds, for longer. It adds
//! people as members only, and only when it holds every scope a member may grant, does not
//! expire and is not limited to networks; it may lower an admin to member and remove
//! members and admins; it never makes an admin. Admins and owners are made by people.

use keyward_core::{Email, Role, ScopeCatalog, UserId};
use keyward_store::{MemberRecord, MembershipChange};

use super::caller::{Caller, CallerKind};
use super::{Conflict, ServiceError, store_error};
use crate::AppState;

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

/// Adds the person with this email (who must have signed up) with `role`.
pub async fn add(
    state: &AppState,
    caller: &Caller,
    email: &Email,
    role: Role,
) -> Result<(), ServiceError> {
    check(caller, &state.config.scopes, None, Some(role))?;
    let Some(user) = state.store.find_user_by_email(email).await? else {
        return Err(ServiceError::invalid(
            "email",
            "no Keyward account has this email; they must sign up first",
        ));
    };
    state
        .store
        .add_member(
            &caller.audit,
            caller.organization_id,
            user.id,
            role,
            state.config.clock.now(),
        )
        .await
        .map_err(store_error(Conflict::AlreadyMember))
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
