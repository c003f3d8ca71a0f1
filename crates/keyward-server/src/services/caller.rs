//! Who is asking: the one value every service decides with. The API makes it from the
//! verified credential ([`Caller::credential`]), the dashboard from the signed-in person
//! ([`Caller::person`]); the services then decide reach (which projects), ownership (whose
//! credentials), role caps and grants themselves, so that the two front ends cannot differ.

use keyward_core::{
    CredentialId, Networks, OrganizationId, RateLimit, Reach, Role, ScopeSet, Timestamp, UserId,
};
use keyward_store::{AuditContext, Creator};

use crate::AppState;
use crate::audit::Origin;
use crate::auth::Principal;

/// Who is asking, in which organization, how far they reach and what they may grant.
pub struct Caller {
    pub organization_id: OrganizationId,
    /// The projects it may touch: all, or a project token's own.
    pub reach: Reach,
    /// The most it may put on a credential it creates.
    pub grants: Grants,
    pub actor: CallerKind,
    /// Who makes a change, and from where, for the audit log.
    pub audit: AuditContext,
}

/// A person in the dashboard, or a credential through the API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallerKind {
    Person { user_id: UserId, role: Role },
    Credential { id: CredentialId },
}

/// What a caller may grant: a credential its own scopes, lifetime and limits; a person their
/// role's cap.
#[derive(Clone, Debug)]
pub struct Grants {
    pub scopes: ScopeSet,
    /// A credential that stops working (expiry, end of rotation) grants nothing that lasts
    /// longer.
    pub usable_until: Option<Timestamp>,
    /// A rate-limited credential grants only limits within its own.
    pub rate_limit: Option<RateLimit>,
    /// A credential limited to networks grants only ranges within its own.
    pub networks: Option<Networks>,
    /// A credential with credits (or whose identity has limits) hands on no calls: it cannot
    /// make keys, members or portal sessions (whose people could make keys without its limit).
    pub credits: bool,
}

impl Caller {
    /// A request with a verified credential.
    pub fn credential(principal: &Principal, origin: &Origin) -> Self {
        let credential = &principal.credential;
        Self {
            organization_id: principal.organization_id,
            reach: principal.reach(),
            grants: Grants {
                scopes: principal.scopes,
                usable_until: credential.usable_until(),
                rate_limit: credential.rate_limit(),
                networks: credential.networks().cloned(),
                credits: credential.credits().is_some() || credential.identity_limited(),
            },
            actor: CallerKind::Credential {
                id: principal.credential_id,
            },
            audit: origin.by(principal),
        }
    }

    /// A person, with `role` in `organization`, whose change is recorded as `audit`.
    pub fn person(
        state: &AppState,
        organization_id: OrganizationId,
        user_id: UserId,
        role: Role,
        audit: AuditContext,
    ) -> Self {
        Self {
            organization_id,
            reach: Reach::Organization,
            grants: Grants {
                scopes: state.config.scopes.role_cap(role),
                usable_until: None,
                rate_limit: None,
                networks: None,
                credits: false,
            },
            actor: CallerKind::Person { user_id, role },
            audit,
        }
    }

    /// Who a credential it creates is created by.
    pub fn creator(&self) -> Creator {
        match self.actor {
            CallerKind::Person { user_id, .. } => Creator::User(user_id),
            CallerKind::Credential { id } => Creator::Credential(id),
        }
    }

    /// Whether the caller may change (revoke, rotate, limit) a credential created by
    /// `created_by` (a person, or `None` for one made by a credential): owners, admins and
    /// credentials may change any; members only those they created.
    pub fn may_change_credential_of(&self, created_by: Option<UserId>) -> bool {
        match self.actor {
            CallerKind::Person { user_id, role } => {
                role >= Role::Admin || created_by == Some(user_id)
            }
            CallerKind::Credential { .. } => true,
        }
    }
}
