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

use keyward_core::{Email, OrganizationId, Role, ScopeCatalog, ScopeSet, Timestamp, UserId};
use keyward_store::{MemberRecord, MembershipChange};

use super::{Conflict, ServiceError, store_error};
use crate::AppState;
use keyward_store::AuditContext;

/// Who manages members: in `organization_id`, as `grantor`.
#[derive(Clone, Copy, Debug)]
pub struct Manager {
    pub organization_id: OrganizationId,
    pub grantor: Grantor,
}

/// Whose rights bound a change of membership.
#[derive(Clone, Copy, Debug)]
pub enum Grantor {
    /// A member of the organization, with their role.
    Person(Role),
    /// A credential holding `members:write` (see the module's rule).
    Credential {
        scopes: ScopeSet,
        /// When it stops working (expiry or end of rotation), if ever.
        usable_until: Option<Timestamp>,
        limited_to_networks: bool,
    },
}

impl Manager {
    /// The role whose rules this manager follows: a credential's are an admin's.
    fn role(self) -> Role {
        match self.grantor {
            Grantor::Person(role) => role,
            Grantor::Credential { .. } => Role::Admin,
        }
    }

    /// Whether this manager manages members at all (owners, admins, credentials).
    pub fn may_manage(self) -> bool {
        self.role().manages_members()
    }

    fn check(
        &self,
        catalog: &ScopeCatalog,
        current: Option<Role>,
        new: Option<Role>,
    ) -> Result<(), ServiceError> {
        self.check_role(current, new)?;
        if let Grantor::Credential {
            scopes,
            usable_until,
            limited_to_networks,
        } = self.grantor
        {
            credential_may_assign(
                catalog,
                scopes,
                usable_until,
                limited_to_networks,
                current,
                new,
            )?;
        }
        Ok(())
    }

    /// The role's part of [`Self::check`], all there is to removing someone.
    fn check_role(&self, current: Option<Role>, new: Option<Role>) -> Result<(), ServiceError> {
        let role = self.role();
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
}

/// The rule of the module for a credential moving a member from `current` to `new`.
fn credential_may_assign(
    catalog: &ScopeCatalog,
    scopes: ScopeSet,
    usable_until: Option<Timestamp>,
    limited_to_networks: bool,
    current: Option<Role>,
    new: Option<Role>,
) -> Result<(), ServiceError> {
    let refuse = |message| {
        Err(ServiceError::Forbidden {
            field: Some("role"),
            message,
        })
    };
    if new.is_some() && limited_to_networks {
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
        if usable_until.is_some() {
            return refuse(
                "a key that expires cannot add members: they would outlast it; add them with a \
                 key that does not expire, or in the dashboard",
            );
        }
        if !catalog.role_cap(Role::Member).is_subset_of(&scopes) {
            return refuse(
                "a key adds members only when it holds every scope a member may grant (see \
                 GET /v1/scopes); add them in the dashboard",
            );
        }
    }
    Ok(())
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
    manager.check(&state.config.scopes, None, Some(role))?;
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
    manager.check(&state.config.scopes, Some(member.role), Some(to))?;
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
    manager.check(&state.config.scopes, Some(member.role), None)?;
    let change = state
        .store
        .remove_member(audit, manager.organization_id, member.user_id, member.role)
        .await?;
    outcome(change)
}

/// Whether `manager` may remove `member` (for showing the button).
pub fn may_remove(manager: Manager, member: &MemberRecord) -> bool {
    manager.check_role(Some(member.role), None).is_ok()
}

fn outcome(change: MembershipChange) -> Result<(), ServiceError> {
    match change {
        MembershipChange::Done => Ok(()),
        MembershipChange::LastOwner => Err(ServiceError::Conflict(Conflict::LastOwner)),
        MembershipChange::Stale => Err(ServiceError::Conflict(Conflict::StaleRole)),
        MembershipChange::NotFound => Err(ServiceError::NotFound("member")),
    }
}
