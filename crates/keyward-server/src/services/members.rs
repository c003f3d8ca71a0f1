//! An organization's members: add people who have an account, change roles, remove. Owners
//! alone make, change or remove owners (`Role::may_assign`), only owners and admins manage
//! members at all, and the store never lets the last owner go.

use keyward_core::{Email, OrganizationId, Role, UserId};
use keyward_store::{MemberRecord, MembershipChange};

use super::{Conflict, ServiceError, store_error};
use crate::AppState;
use keyward_store::AuditContext;

/// Who manages members: a member of `organization_id` with `role`.
#[derive(Clone, Copy, Debug)]
pub struct Manager {
    pub organization_id: OrganizationId,
    pub role: Role,
}

impl Manager {
    /// Whether this member manages members at all (owners and admins).
    pub fn may_manage(self) -> bool {
        self.role.manages_members()
    }

    fn check(&self, current: Option<Role>, new: Option<Role>) -> Result<(), ServiceError> {
        if !self.role.manages_members() {
            return Err(ServiceError::Forbidden {
                field: None,
                message: "only owners and admins manage members",
            });
        }
        if !self.role.may_assign(current, new) {
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
}

/// Owners first, then by email.
pub async fn list(
    state: &AppState,
    organization: OrganizationId,
) -> Result<Vec<MemberRecord>, ServiceError> {
    Ok(state.store.members(organization).await?)
}

pub async fn get(
    state: &AppState,
    organization: OrganizationId,
    user: UserId,
) -> Result<MemberRecord, ServiceError> {
    list(state, organization)
        .await?
        .into_iter()
        .find(|member| member.user_id == user)
        .ok_or(ServiceError::NotFound("member"))
}

/// Adds the person with this email (who must have signed up) with `role`.
pub async fn add(
    state: &AppState,
    audit: &AuditContext,
    manager: Manager,
    email: &Email,
    role: Role,
) -> Result<(), ServiceError> {
    manager.check(None, Some(role))?;
    let Some(user) = state.store.find_user_by_email(email).await? else {
        return Err(ServiceError::invalid(
            "email",
            "no Keyward account has this email; they must sign up first",
        ));
    };
    state
        .store
        .add_member(
            audit,
            manager.organization_id,
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
    audit: &AuditContext,
    manager: Manager,
    member: &MemberRecord,
    to: Role,
) -> Result<(), ServiceError> {
    manager.check(Some(member.role), Some(to))?;
    let change = state
        .store
        .change_member_role(
            audit,
            manager.organization_id,
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
    audit: &AuditContext,
    manager: Manager,
    member: &MemberRecord,
) -> Result<(), ServiceError> {
    manager.check(Some(member.role), None)?;
    let change = state
        .store
        .remove_member(audit, manager.organization_id, member.user_id, member.role)
        .await?;
    outcome(change)
}

/// Whether `manager` may remove `member` (for showing the button).
pub fn may_remove(manager: Manager, member: &MemberRecord) -> bool {
    manager.check(Some(member.role), None).is_ok()
}

fn outcome(change: MembershipChange) -> Result<(), ServiceError> {
    match change {
        MembershipChange::Done => Ok(()),
        MembershipChange::LastOwner => Err(ServiceError::Conflict(Conflict::LastOwner)),
        MembershipChange::Stale => Err(ServiceError::Conflict(Conflict::StaleRole)),
        MembershipChange::NotFound => Err(ServiceError::NotFound("member")),
    }
}
