//! Who may grant which scopes: the one check that every way of creating a credential (the
//! API with a key, the dashboard with a person's role) goes through.
//!
//! Two rules, in this order:
//! 1. A project token may hold only project-level scopes (`Scope::is_project_level`).
//! 2. The grantor must hold every scope it grants: a credential its own scopes, a person the
//!    cap of their organization role ([`Role::scope_cap`]). So no chain of credentials can
//!    end up with more than it started with.

use crate::{CredentialKind, Role, Scope, ScopeSet};

/// Why a grant is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    /// The scope is not one this kind of credential may hold (the request is invalid).
    #[error("{scope} is not a project-level scope, so a project token cannot hold it")]
    NotForKind { scope: Scope },
    /// The grantor does not hold the scope itself (the grantor is not allowed).
    #[error("the {scope} scope cannot be granted by someone who does not hold it")]
    NotHeld { scope: Scope },
}

/// Checks that a grantor holding `allowed` may create a credential of `kind` with `requested`.
pub fn check_grant(
    allowed: ScopeSet,
    kind: CredentialKind,
    requested: ScopeSet,
) -> Result<(), GrantError> {
    if kind == CredentialKind::ProjectToken
        && let Some(scope) = requested.iter().find(|s| !s.is_project_level())
    {
        return Err(GrantError::NotForKind { scope });
    }
    match requested.difference(allowed).iter().next() {
        Some(scope) => Err(GrantError::NotHeld { scope }),
        None => Ok(()),
    }
}

/// The scopes a credential of `kind` may hold at all.
pub fn holdable_scopes(kind: CredentialKind) -> ScopeSet {
    match kind {
        CredentialKind::ApiKey => ScopeSet::all(),
        CredentialKind::ProjectToken => Scope::ALL
            .iter()
            .copied()
            .filter(|s| s.is_project_level())
            .collect(),
    }
}

impl Role {
    /// The most a person with this role may put on a credential they create.
    ///
    /// - `owner`: every scope.
    /// - `admin`: every scope but `members:write`: a credential that can change memberships
    ///   could make anyone an owner, so only owners may mint one.
    /// - `member`: work with projects and instances, and read the key and token lists; no
    ///   managing credentials, members, audit or verification for others.
    pub fn scope_cap(self) -> ScopeSet {
        match self {
            Role::Owner => ScopeSet::all(),
            Role::Admin => Scope::ALL
                .iter()
                .copied()
                .filter(|&s| s != Scope::MembersWrite)
                .collect(),
            Role::Member => [
                Scope::InstancesRead,
                Scope::InstancesWrite,
                Scope::ProjectsRead,
                Scope::ApiKeysRead,
                Scope::TokensRead,
            ]
            .into_iter()
            .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(names: &[&str]) -> ScopeSet {
        ScopeSet::parse_names(names).unwrap()
    }

    #[test]
    fn project_tokens_hold_only_project_level_scopes() {
        let everything = ScopeSet::all();
        assert_eq!(
            check_grant(
                everything,
                CredentialKind::ProjectToken,
                set(&["instances:read", "projects:read"])
            ),
            Ok(())
        );
        assert_eq!(
            check_grant(
                everything,
                CredentialKind::ProjectToken,
                set(&["instances:read", "tokens:write", "api_keys:read"])
            ),
            Err(GrantError::NotForKind {
                scope: Scope::ApiKeysRead
            })
        );
        assert_eq!(
            holdable_scopes(CredentialKind::ProjectToken),
            set(&["instances:read", "instances:write", "projects:read"])
        );
        assert_eq!(holdable_scopes(CredentialKind::ApiKey), everything);
    }

    #[test]
    fn grantors_cannot_grant_what_they_lack() {
        let reader = set(&["instances:read", "api_keys:write"]);
        assert_eq!(
            check_grant(reader, CredentialKind::ApiKey, set(&["instances:read"])),
            Ok(())
        );
        assert_eq!(
            check_grant(
                reader,
                CredentialKind::ApiKey,
                set(&["instances:read", "instances:write"])
            ),
            Err(GrantError::NotHeld {
                scope: Scope::InstancesWrite
            })
        );
        // The kind rule comes first: the request itself is invalid.
        assert_eq!(
            check_grant(
                ScopeSet::EMPTY,
                CredentialKind::ProjectToken,
                set(&["audit:read"])
            ),
            Err(GrantError::NotForKind {
                scope: Scope::AuditRead
            })
        );
    }

    #[test]
    fn a_chain_of_grants_never_gains_a_scope() {
        // Whatever each link asks for, what it gets is within what the previous link held.
        let mut held = ScopeSet::all();
        let requests = [
            set(&["instances:read", "instances:write", "api_keys:write"]),
            set(&["instances:read", "api_keys:write", "projects:write"]),
            set(&["instances:read", "api_keys:write"]),
        ];
        for requested in requests {
            match check_grant(held, CredentialKind::ApiKey, requested) {
                Ok(()) => {
                    assert!(requested.is_subset_of(held));
                    held = requested;
                }
                Err(GrantError::NotHeld { scope }) => assert!(!held.contains(scope)),
                Err(other) => panic!("{other:?}"),
            }
        }
        assert_eq!(held, set(&["instances:read", "api_keys:write"]));
    }

    #[test]
    fn role_caps_are_ordered() {
        let (owner, admin, member) = (
            Role::Owner.scope_cap(),
            Role::Admin.scope_cap(),
            Role::Member.scope_cap(),
        );
        assert_eq!(owner, ScopeSet::all());
        assert!(member.is_subset_of(admin) && admin.is_subset_of(owner));
        assert!(!admin.contains(Scope::MembersWrite));
        assert!(!member.contains(Scope::ApiKeysWrite));
        assert!(!member.contains(Scope::TokensWrite));
        assert!(member.contains(Scope::InstancesWrite));
    }
}
