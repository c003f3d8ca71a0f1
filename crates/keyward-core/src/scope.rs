//! Scopes: what a credential may do, as `resource:action`.
//!
//! Deny by default: a credential may do exactly what its scopes name. The catalog in force is
//! Keyward's own scopes, built in and fixed, followed by the scopes the platform defines in its
//! configuration file (`[[scopes]]`). Credentials store scope *names*, never positions in a
//! catalog: a name the catalog in force does not define grants nothing, and is shown as unknown,
//! until a catalog defines it again.

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{CredentialKind, Role};

/// The most scopes a catalog holds, Keyward's own included: a [`ScopeSet`] is a fixed bit set.
pub const MAX_SCOPES: usize = 256;
/// The longest scope name.
pub const MAX_NAME_LENGTH: usize = 64;
/// The longest scope description.
pub const MAX_DESCRIPTION_LENGTH: usize = 200;

/// One scope, as its position in a [`ScopeCatalog`]. Keyward's own scopes have the same
/// position in every catalog (the constants below); a platform scope's position is only
/// meaningful in the catalog that made it, and is never stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scope(u8);

/// Who may hold a scope: `project` scopes may be held by project tokens, `organization` scopes
/// only by organization keys (and admin keys, for the organization they act for),
/// `installation` scopes only by admin keys. Platform scopes are `project` or `organization`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScopeLevel {
    Project,
    Organization,
    Installation,
}

impl ScopeLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Project => "project",
            Self::Organization => "organization",
            Self::Installation => "installation",
        }
    }
}

struct Builtin {
    name: &'static str,
    level: ScopeLevel,
    min_role: Role,
    description: &'static str,
}

macro_rules! builtin {
    ($($konst:ident = $index:literal, $name:literal, $level:ident, $role:ident, $doc:literal;)*) => {
        impl Scope {
            $(#[doc = $doc] pub const $konst: Scope = Scope($index);)*
        }
        const BUILTIN: &[Builtin] = &[$(Builtin {
            name: $name,
            level: ScopeLevel::$level,
            min_role: Role::$role,
            description: $doc,
        },)*];
    };
}

// The least role is what a person needs to put the scope on a credential (see
// `ScopeCatalog::role_cap`): members work with projects and instances and read the lists;
// admins everything but `members:write` (a credential that can change memberships could make
// anyone an owner, so only owners may mint one).
builtin! {
    INSTANCES_READ = 0, "instances:read", Project, Member, "List and read instances.";
    INSTANCES_WRITE = 1, "instances:write", Project, Member, "Create and delete instances.";
    PROJECTS_READ = 2, "projects:read", Project, Member, "List and read projects.";
    PROJECTS_WRITE = 3, "projects:write", Organization, Admin, "Create, rename and delete projects.";
    API_KEYS_READ = 4, "api_keys:read", Organization, Member, "List and read the organization's API keys.";
    API_KEYS_WRITE = 5, "api_keys:write", Organization, Admin, "Create and revoke the organization's API keys.";
    TOKENS_READ = 6, "tokens:read", Organization, Member, "List and read project tokens.";
    TOKENS_WRITE = 7, "tokens:write", Organization, Admin, "Create and revoke project tokens.";
    MEMBERS_READ = 8, "members:read", Organization, Admin, "List the organization's members.";
    MEMBERS_WRITE = 9, "members:write", Organization, Owner, "Add and remove members and change their roles.";
    AUDIT_READ = 10, "audit:read", Organization, Admin, "Read the organization's audit log.";
    KEYS_VERIFY = 11, "keys:verify", Organization, Admin, "Verify the organization's keys on behalf of another service.";
    ORGANIZATION_WRITE = 12, "organization:write", Organization, Owner, "Change the organization's policy for new credentials.";
    WEBHOOKS_READ = 13, "webhooks:read", Organization, Admin, "List webhook endpoints and their deliveries.";
    WEBHOOKS_WRITE = 14, "webhooks:write", Organization, Admin, "Register, change and delete webhook endpoints; redeliver messages.";
    ORGANIZATIONS_READ = 15, "organizations:read", Installation, Owner, "List and read the installation's organizations and its audit log (admin keys only).";
    ORGANIZATIONS_WRITE = 16, "organizations:write", Installation, Owner, "Create, change, suspend and delete organizations and add their members (admin keys only).";
    ORGANIZATIONS_ACT = 17, "organizations:act", Installation, Owner, "Act for one organization with the Keyward-Organization header, within the key's organization scopes (admin keys only).";
    ADMIN_KEYS_READ = 18, "admin_keys:read", Installation, Owner, "List and read admin keys (admin keys only).";
    ADMIN_KEYS_WRITE = 19, "admin_keys:write", Installation, Owner, "Create, rotate and revoke admin keys (admin keys only).";
    PORTAL_WRITE = 20, "portal:write", Organization, Owner, "Open the dashboard for a person of the organization through a one-time portal link.";
}

impl Scope {
    /// The name of one of Keyward's own scopes, the same in every catalog.
    pub fn builtin_name(self) -> Option<&'static str> {
        BUILTIN.get(usize::from(self.0)).map(|b| b.name)
    }

    /// Whether a person with `role` may use and grant this scope, if it is one of Keyward's
    /// own (the same in every catalog). No role allows an installation scope.
    pub fn builtin_allows(self, role: Role) -> bool {
        BUILTIN
            .get(usize::from(self.0))
            .is_some_and(|b| b.level != ScopeLevel::Installation && role >= b.min_role)
    }
}

/// Resources whose scopes are Keyward's: those of its own scopes, and those it keeps for
/// scopes it may add (so that a platform scope never turns into a built-in one when Keyward
/// grows: a stored name means one thing for good).
pub const RESERVED_RESOURCES: &[&str] = &[
    "instances",
    "projects",
    "api_keys",
    "tokens",
    "members",
    "audit",
    "keys",
    "keyward",
    "organization",
    "organizations",
    "credentials",
    "webhooks",
    "policies",
    "sessions",
    "users",
    "admin_keys",
    "identities",
    "usage",
    "portal",
];

/// Checks the `resource:action` grammar: each part a lower-case letter followed by lower-case
/// letters, digits and underscores; at most [`MAX_NAME_LENGTH`] bytes in all.
pub fn check_name(name: &str) -> Result<(), String> {
    let part = |s: &str| {
        s.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    };
    match name.split_once(':') {
        Some((resource, action)) if part(resource) && part(action) => {
            if name.len() > MAX_NAME_LENGTH {
                Err(format!(
                    "scope name {name:?} is longer than {MAX_NAME_LENGTH} bytes"
                ))
            } else {
                Ok(())
            }
        }
        _ => Err(format!(
            "{name:?} is not a scope name: write resource:action in lower case, \
             letters, digits and underscores, each part starting with a letter"
        )),
    }
}

/// A name the catalog in force does not define.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown scope {0:?}")]
pub struct UnknownScope(pub String);

/// A set of scopes of one catalog, as a bit set: membership tests cost one AND.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ScopeSet([u64; MAX_SCOPES / 64]);

impl ScopeSet {
    pub const EMPTY: ScopeSet = ScopeSet([0; MAX_SCOPES / 64]);

    fn word_bit(scope: Scope) -> (usize, u64) {
        (usize::from(scope.0 / 64), 1 << (scope.0 % 64))
    }

    pub fn contains(&self, scope: Scope) -> bool {
        let (word, bit) = Self::word_bit(scope);
        self.0[word] & bit != 0
    }

    pub fn insert(&mut self, scope: Scope) {
        let (word, bit) = Self::word_bit(scope);
        self.0[word] |= bit;
    }

    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|&w| w == 0)
    }

    pub fn len(&self) -> usize {
        self.0.iter().map(|w| w.count_ones() as usize).sum()
    }

    pub fn is_subset_of(&self, other: &ScopeSet) -> bool {
        self.0.iter().zip(other.0).all(|(a, b)| a & !b == 0)
    }

    /// The scopes of `self` that `other` lacks.
    pub fn difference(&self, other: &ScopeSet) -> ScopeSet {
        let mut out = *self;
        for (a, b) in out.0.iter_mut().zip(other.0) {
            *a &= !b;
        }
        out
    }

    /// The scopes in both.
    pub fn intersection(&self, other: &ScopeSet) -> ScopeSet {
        let mut out = *self;
        for (a, b) in out.0.iter_mut().zip(other.0) {
            *a &= b;
        }
        out
    }

    /// The scopes in catalog order: one step per scope held, whatever the catalog's size.
    pub fn iter(&self) -> impl Iterator<Item = Scope> + '_ {
        self.0.iter().enumerate().flat_map(|(word, &bits)| {
            let mut rest = bits;
            std::iter::from_fn(move || {
                if rest == 0 {
                    return None;
                }
                let bit = rest.trailing_zeros() as usize;
                rest &= rest - 1;
                // A word holds 64 positions and there are four: the position fits in a u8.
                u8::try_from(word * 64 + bit).ok().map(Scope)
            })
        })
    }
}

impl FromIterator<Scope> for ScopeSet {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        let mut set = ScopeSet::EMPTY;
        for scope in iter {
            set.insert(scope);
        }
        set
    }
}

impl fmt::Debug for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter().map(|s| s.0)).finish()
    }
}

/// Scope names as a credential holds them: each in the `resource:action` grammar, in the order
/// of the catalog that granted them, but not necessarily defined by the catalog in force.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScopeNames(Vec<String>);

impl ScopeNames {
    /// The storage form: names separated by single spaces.
    pub fn to_storage(&self) -> String {
        self.0.join(" ")
    }

    /// Reads the storage form; the error names the first name outside the grammar.
    pub fn from_storage(stored: &str) -> Result<Self, String> {
        stored
            .split_whitespace()
            .map(|name| check_name(name).map(|()| name.to_owned()))
            .collect::<Result<_, _>>()
            .map(Self)
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// One scope of a catalog.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ScopeInfo {
    pub name: String,
    pub description: String,
    pub level: ScopeLevel,
    /// The least organization role that may put it on a credential.
    pub min_role: Role,
    /// One of Keyward's own scopes (rather than the platform's).
    pub builtin: bool,
}

/// A scope the platform defines, as its configuration file writes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScopeDefinition {
    pub name: String,
    pub description: String,
    /// `organization` unless said.
    pub level: Option<ScopeLevel>,
    /// Unless said: `member` for project-level scopes (members work within projects), `admin`
    /// for organization-level ones.
    pub min_role: Option<Role>,
}

/// Why a platform scope definition is refused, and which one (its index in the list).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CatalogError {
    pub index: usize,
    pub message: String,
}

fn not_for_kind(scope: &str, kind: CredentialKind) -> String {
    match kind {
        CredentialKind::ProjectToken => {
            format!("{scope} is not a project-level scope, so a project token cannot hold it")
        }
        _ => format!(
            "{scope} is an installation scope, which only admin keys hold, not an {}",
            kind.label()
        ),
    }
}

/// Why a grant is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    /// The scope is not one this kind of credential may hold (the request is invalid).
    #[error("{}", not_for_kind(scope, *kind))]
    NotForKind { scope: String, kind: CredentialKind },
    /// The grantor does not hold the scope itself (the grantor is not allowed).
    #[error("the {scope} scope cannot be granted by someone who does not hold it")]
    NotHeld { scope: String },
}

/// The scopes in force: Keyward's own, then the platform's in the order of its file.
#[derive(Clone, Debug)]
pub struct ScopeCatalog {
    scopes: Vec<ScopeInfo>,
    by_name: HashMap<String, Scope>,
    all: ScopeSet,
    project_level: ScopeSet,
    installation_level: ScopeSet,
    /// By role: member, admin, owner.
    caps: [ScopeSet; 3],
}

impl Default for ScopeCatalog {
    fn default() -> Self {
        Self::builtin()
    }
}

fn role_index(role: Role) -> usize {
    match role {
        Role::Member => 0,
        Role::Admin => 1,
        Role::Owner => 2,
    }
}

impl ScopeCatalog {
    /// Keyward's own scopes alone.
    pub fn builtin() -> Self {
        Self::build(
            BUILTIN
                .iter()
                .map(|b| ScopeInfo {
                    name: b.name.to_owned(),
                    description: b.description.to_owned(),
                    level: b.level,
                    min_role: b.min_role,
                    builtin: true,
                })
                .collect(),
        )
    }

    /// Keyward's own scopes followed by `platform`'s, each checked: the grammar, a description,
    /// no name twice, no redefinition of Keyward's scopes or use of their resources.
    pub fn new(platform: &[ScopeDefinition]) -> Result<Self, CatalogError> {
        let mut scopes = Self::builtin().scopes;
        for (index, definition) in platform.iter().enumerate() {
            let refuse = |message: String| CatalogError { index, message };
            let name = definition.name.as_str();
            check_name(name).map_err(refuse)?;
            let resource = name.split_once(':').map_or(name, |(r, _)| r);
            if BUILTIN.iter().any(|b| b.name == name) {
                return Err(refuse(format!(
                    "{name} is one of Keyward's own scopes, which cannot be redefined"
                )));
            }
            if RESERVED_RESOURCES.contains(&resource) {
                return Err(refuse(format!(
                    "the resource {resource:?} is reserved for Keyward's own scopes; \
                     choose another name for the platform's"
                )));
            }
            if scopes.iter().any(|s| s.name == name) {
                return Err(refuse(format!("the scope {name} is defined twice")));
            }
            let description = definition.description.trim();
            if description.is_empty() || description.chars().count() > MAX_DESCRIPTION_LENGTH {
                return Err(refuse(format!(
                    "the scope {name} needs a description of 1 to {MAX_DESCRIPTION_LENGTH} \
                     characters"
                )));
            }
            if scopes.len() == MAX_SCOPES {
                return Err(refuse(format!(
                    "at most {} platform scopes can be defined",
                    MAX_SCOPES - BUILTIN.len()
                )));
            }
            let level = definition.level.unwrap_or(ScopeLevel::Organization);
            if level == ScopeLevel::Installation {
                return Err(refuse(format!(
                    "the scope {name} cannot be installation-level: those are Keyward's own"
                )));
            }
            scopes.push(ScopeInfo {
                name: name.to_owned(),
                description: description.to_owned(),
                level,
                min_role: definition.min_role.unwrap_or(match level {
                    ScopeLevel::Project => Role::Member,
                    ScopeLevel::Organization | ScopeLevel::Installation => Role::Admin,
                }),
                builtin: false,
            });
        }
        Ok(Self::build(scopes))
    }

    fn build(scopes: Vec<ScopeInfo>) -> Self {
        let mut catalog = Self {
            by_name: HashMap::with_capacity(scopes.len()),
            all: ScopeSet::EMPTY,
            project_level: ScopeSet::EMPTY,
            installation_level: ScopeSet::EMPTY,
            caps: [ScopeSet::EMPTY; 3],
            scopes,
        };
        for (index, info) in catalog.scopes.iter().enumerate() {
            // `new` keeps the catalog within MAX_SCOPES, so every index fits.
            let Ok(position) = u8::try_from(index) else {
                break;
            };
            let scope = Scope(position);
            catalog.by_name.insert(info.name.clone(), scope);
            catalog.all.insert(scope);
            match info.level {
                ScopeLevel::Project => catalog.project_level.insert(scope),
                ScopeLevel::Installation => {
                    // No person's role grants it.
                    catalog.installation_level.insert(scope);
                    continue;
                }
                ScopeLevel::Organization => {}
            }
            for role in [Role::Member, Role::Admin, Role::Owner] {
                if role >= info.min_role {
                    catalog.caps[role_index(role)].insert(scope);
                }
            }
        }
        catalog
    }

    /// Every scope, in catalog order.
    pub fn iter(&self) -> impl Iterator<Item = (Scope, &ScopeInfo)> {
        self.scopes
            .iter()
            .enumerate()
            .filter_map(|(i, info)| u8::try_from(i).ok().map(|i| (Scope(i), info)))
    }

    pub fn len(&self) -> usize {
        self.scopes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.scopes.is_empty()
    }

    /// The scope a name stands for, if the catalog defines it.
    pub fn lookup(&self, name: &str) -> Option<Scope> {
        self.by_name.get(name).copied()
    }

    /// What the catalog says of `scope` (of this catalog).
    pub fn info(&self, scope: Scope) -> Option<&ScopeInfo> {
        self.scopes.get(usize::from(scope.0))
    }

    /// The name of `scope` (of this catalog).
    pub fn name(&self, scope: Scope) -> &str {
        self.info(scope).map_or("", |info| info.name.as_str())
    }

    pub fn all(&self) -> ScopeSet {
        self.all
    }

    /// The scopes a credential of `kind` may hold at all.
    pub fn holdable(&self, kind: CredentialKind) -> ScopeSet {
        match kind {
            CredentialKind::AdminKey => self.all,
            CredentialKind::ApiKey => self.all.difference(&self.installation_level),
            CredentialKind::ProjectToken => self.project_level,
        }
    }

    /// The installation's own scopes, which only admin keys hold.
    pub fn installation_level(&self) -> ScopeSet {
        self.installation_level
    }

    /// The most a person with `role` may put on a credential they create: every scope whose
    /// least role is at most theirs.
    pub fn role_cap(&self, role: Role) -> ScopeSet {
        self.caps[role_index(role)]
    }

    /// Parses a list of names; the error names the first the catalog does not define.
    pub fn parse<S: AsRef<str>>(&self, names: &[S]) -> Result<ScopeSet, UnknownScope> {
        names
            .iter()
            .map(|name| {
                let name = name.as_ref();
                self.lookup(name)
                    .ok_or_else(|| UnknownScope(name.to_owned()))
            })
            .collect()
    }

    /// The names of `set`, in catalog order.
    pub fn names<'a>(&'a self, set: &'a ScopeSet) -> impl Iterator<Item = &'a str> + 'a {
        set.iter().map(|scope| self.name(scope))
    }

    /// `set` as a credential stores it.
    pub fn to_names(&self, set: &ScopeSet) -> ScopeNames {
        ScopeNames(self.names(set).map(str::to_owned).collect())
    }

    /// `set`'s names separated by single spaces (the form of OAuth's `scope`).
    pub fn joined(&self, set: &ScopeSet) -> String {
        let mut text = String::with_capacity(set.len() * 16);
        for name in self.names(set) {
            if !text.is_empty() {
                text.push(' ');
            }
            text.push_str(name);
        }
        text
    }

    /// What stored names grant a credential of `kind`: the names this catalog defines that the
    /// kind may hold. Anything else grants nothing.
    pub fn granted(&self, names: &ScopeNames, kind: CredentialKind) -> ScopeSet {
        names
            .iter()
            .filter_map(|name| self.lookup(name))
            .collect::<ScopeSet>()
            .intersection(&self.holdable(kind))
    }

    /// The stored names this catalog does not define.
    pub fn unknown<'a>(&'a self, names: &'a ScopeNames) -> impl Iterator<Item = &'a str> + 'a {
        names.iter().filter(|name| self.lookup(name).is_none())
    }

    /// Checks that a grantor holding `allowed` may create a credential of `kind` with
    /// `requested`. Two rules, in this order:
    /// 1. A project token may hold only project-level scopes.
    /// 2. The grantor must hold every scope it grants: a credential its own scopes, a person
    ///    the cap of their organization role ([`Self::role_cap`]). So no chain of credentials
    ///    can end up with more than it started with.
    pub fn check_grant(
        &self,
        allowed: &ScopeSet,
        kind: CredentialKind,
        requested: &ScopeSet,
    ) -> Result<(), GrantError> {
        if let Some(scope) = requested.difference(&self.holdable(kind)).iter().next() {
            return Err(GrantError::NotForKind {
                scope: self.name(scope).to_owned(),
                kind,
            });
        }
        match requested.difference(allowed).iter().next() {
            Some(scope) => Err(GrantError::NotHeld {
                scope: self.name(scope).to_owned(),
            }),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn platform(name: &str, level: Option<ScopeLevel>) -> ScopeDefinition {
        ScopeDefinition {
            name: name.into(),
            description: format!("Use {name}."),
            level,
            min_role: None,
        }
    }

    fn set(catalog: &ScopeCatalog, names: &[&str]) -> ScopeSet {
        catalog.parse(names).unwrap()
    }

    #[test]
    fn the_builtin_catalog_is_the_documented_one() {
        let catalog = ScopeCatalog::builtin();
        let names: Vec<_> = catalog.iter().map(|(_, info)| info.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "instances:read",
                "instances:write",
                "projects:read",
                "projects:write",
                "api_keys:read",
                "api_keys:write",
                "tokens:read",
                "tokens:write",
                "members:read",
                "members:write",
                "audit:read",
                "keys:verify",
                "organization:write",
                "webhooks:read",
                "webhooks:write",
                "organizations:read",
                "organizations:write",
                "organizations:act",
                "admin_keys:read",
                "admin_keys:write",
                "portal:write",
            ]
        );
        let project_level = catalog.holdable(CredentialKind::ProjectToken);
        assert_eq!(
            catalog.names(&project_level).collect::<Vec<_>>(),
            ["instances:read", "instances:write", "projects:read"]
        );
        for (scope, info) in catalog.iter() {
            assert_eq!(scope.builtin_name(), Some(info.name.as_str()));
            assert_eq!(catalog.lookup(&info.name), Some(scope));
            assert!(info.builtin);
            let resource = info.name.split(':').next().unwrap();
            assert!(RESERVED_RESOURCES.contains(&resource), "{resource}");
        }
        assert_eq!(catalog.name(Scope::KEYS_VERIFY), "keys:verify");
    }

    #[test]
    fn names_follow_the_grammar() {
        for good in ["databases:read", "a:b", "db_2:read_all"] {
            assert_eq!(check_name(good), Ok(()), "{good}");
        }
        for bad in [
            "databases",
            "Databases:read",
            ":read",
            "db:",
            "db:read:all",
            "db-x:read",
            "2db:read",
            "db:2read",
            " db:read",
            "",
        ] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        assert!(check_name(&format!("a:{}", "b".repeat(63))).is_err());
        assert!(check_name(&format!("a:{}", "b".repeat(62))).is_ok());
    }

    #[test]
    fn platform_scopes_follow_the_builtin_ones_and_are_checked() {
        let catalog = ScopeCatalog::new(&[
            platform("databases:read", Some(ScopeLevel::Project)),
            platform("billing:read", None),
        ])
        .unwrap();
        let read = catalog.lookup("databases:read").unwrap();
        let billing = catalog.lookup("billing:read").unwrap();
        assert_eq!(catalog.len(), BUILTIN.len() + 2);
        assert!(read > Scope::KEYS_VERIFY && billing > read);
        assert_eq!(read.builtin_name(), None);
        assert!(
            catalog
                .holdable(CredentialKind::ProjectToken)
                .contains(read)
        );
        assert!(
            !catalog
                .holdable(CredentialKind::ProjectToken)
                .contains(billing)
        );
        // Members may grant project-level platform scopes; organization-level need an admin.
        assert!(catalog.role_cap(Role::Member).contains(read));
        assert!(!catalog.role_cap(Role::Member).contains(billing));
        assert!(catalog.role_cap(Role::Admin).contains(billing));
        assert_eq!(
            catalog.info(billing).unwrap().level,
            ScopeLevel::Organization
        );

        let refusals = [
            (platform("instances:read", None), "cannot be redefined"),
            (platform("instances:admin", None), "reserved for Keyward"),
            (platform("webhooks:admin", None), "reserved for Keyward"),
            (platform("Databases:read", None), "not a scope name"),
            (
                ScopeDefinition {
                    description: "  ".into(),
                    ..platform("databases:write", None)
                },
                "needs a description",
            ),
        ];
        for (definition, expected) in refusals {
            let error = ScopeCatalog::new(&[platform("a:b", None), definition]).unwrap_err();
            assert_eq!(error.index, 1);
            assert!(error.message.contains(expected), "{}", error.message);
        }
        let twice = ScopeCatalog::new(&[platform("a:b", None), platform("a:b", None)]);
        assert!(twice.unwrap_err().message.contains("defined twice"));
        let many: Vec<_> = (0..=MAX_SCOPES - BUILTIN.len())
            .map(|i| platform(&format!("r:s{i}"), None))
            .collect();
        let error = ScopeCatalog::new(&many).unwrap_err();
        assert_eq!(error.index, MAX_SCOPES - BUILTIN.len());
        assert!(ScopeCatalog::new(&many[..many.len() - 1]).is_ok());
    }

    #[test]
    fn a_full_catalog_keeps_its_last_scope() {
        let many: Vec<_> = (0..MAX_SCOPES - BUILTIN.len())
            .map(|i| platform(&format!("r:s{i}"), None))
            .collect();
        let catalog = ScopeCatalog::new(&many).unwrap();
        let name = format!("r:s{}", MAX_SCOPES - BUILTIN.len() - 1);
        let last = catalog.lookup(&name).unwrap();
        let only = set(&catalog, &[name.as_str()]);
        assert!(only.contains(last) && only.len() == 1);
        assert_eq!(catalog.all().len(), MAX_SCOPES);
        assert_eq!(catalog.all().iter().count(), MAX_SCOPES);
        assert!(
            catalog
                .all()
                .iter()
                .zip(catalog.all().iter().skip(1))
                .all(|(a, b)| a < b)
        );
        assert_eq!(catalog.names(&only).collect::<Vec<_>>(), [name.as_str()]);
    }

    #[test]
    fn stored_names_grant_only_what_the_catalog_defines() {
        let with =
            ScopeCatalog::new(&[platform("databases:read", Some(ScopeLevel::Project))]).unwrap();
        let granted = set(
            &with,
            &["databases:read", "instances:read", "api_keys:read"],
        );
        let stored = with.to_names(&granted);
        assert_eq!(
            stored.to_storage(),
            "instances:read api_keys:read databases:read"
        );
        assert_eq!(
            ScopeNames::from_storage(&stored.to_storage()),
            Ok(stored.clone())
        );
        assert!(ScopeNames::from_storage("instances:read NOPE").is_err());

        // The same names under a catalog that no longer defines databases:read.
        let without = ScopeCatalog::builtin();
        let key = without.granted(&stored, CredentialKind::ApiKey);
        assert_eq!(
            without.names(&key).collect::<Vec<_>>(),
            ["instances:read", "api_keys:read"]
        );
        assert_eq!(
            without.unknown(&stored).collect::<Vec<_>>(),
            ["databases:read"]
        );
        assert_eq!(with.unknown(&stored).count(), 0);
        // A project token is granted only project-level scopes, whatever is stored.
        let token = with.granted(&stored, CredentialKind::ProjectToken);
        assert_eq!(with.joined(&token), "instances:read databases:read");
    }

    #[test]
    fn unknown_names_are_named() {
        let catalog = ScopeCatalog::builtin();
        assert_eq!(
            catalog.parse(&["instances:read", "nope", "worse"]),
            Err(UnknownScope("nope".into()))
        );
        assert!(catalog.parse(&["Instances:Read"]).is_err());
        let both = set(
            &catalog,
            &["projects:read", "instances:read", "projects:read"],
        );
        assert_eq!(both.len(), 2);
        assert_eq!(catalog.joined(&both), "instances:read projects:read");
    }

    #[test]
    fn subset_difference_and_intersection() {
        let catalog = ScopeCatalog::builtin();
        let read = set(&catalog, &["instances:read"]);
        let both = set(&catalog, &["instances:read", "instances:write"]);
        assert!(read.is_subset_of(&both));
        assert!(!both.is_subset_of(&read));
        assert_eq!(
            both.difference(&read).iter().collect::<Vec<_>>(),
            [Scope::INSTANCES_WRITE]
        );
        assert_eq!(both.intersection(&read), read);
        assert!(ScopeSet::EMPTY.is_subset_of(&read));
        assert!(ScopeSet::EMPTY.is_empty() && !read.is_empty());
    }

    #[test]
    fn project_tokens_hold_only_project_level_scopes() {
        let catalog = ScopeCatalog::builtin();
        let everything = catalog.all();
        let token = CredentialKind::ProjectToken;
        let ok = set(&catalog, &["instances:read", "projects:read"]);
        assert_eq!(catalog.check_grant(&everything, token, &ok), Ok(()));
        let bad = set(
            &catalog,
            &["instances:read", "tokens:write", "api_keys:read"],
        );
        assert_eq!(
            catalog.check_grant(&everything, token, &bad),
            Err(GrantError::NotForKind {
                scope: "api_keys:read".into(),
                kind: token,
            })
        );
        assert_eq!(catalog.holdable(CredentialKind::AdminKey), everything);
        let installation = catalog.installation_level();
        assert_eq!(
            catalog.holdable(CredentialKind::ApiKey),
            everything.difference(&installation)
        );
    }

    #[test]
    fn grantors_cannot_grant_what_they_lack() {
        let catalog = ScopeCatalog::builtin();
        let key = CredentialKind::ApiKey;
        let reader = set(&catalog, &["instances:read", "api_keys:write"]);
        let read = set(&catalog, &["instances:read"]);
        assert_eq!(catalog.check_grant(&reader, key, &read), Ok(()));
        let more = set(&catalog, &["instances:read", "instances:write"]);
        assert_eq!(
            catalog.check_grant(&reader, key, &more),
            Err(GrantError::NotHeld {
                scope: "instances:write".into()
            })
        );
        // The kind rule comes first: the request itself is invalid.
        let audit = set(&catalog, &["audit:read"]);
        assert_eq!(
            catalog.check_grant(&ScopeSet::EMPTY, CredentialKind::ProjectToken, &audit),
            Err(GrantError::NotForKind {
                scope: "audit:read".into(),
                kind: CredentialKind::ProjectToken,
            })
        );
    }

    #[test]
    fn installation_scopes_are_admin_keys_alone() {
        let catalog = ScopeCatalog::builtin();
        let installation = catalog.installation_level();
        assert_eq!(
            catalog.names(&installation).collect::<Vec<_>>(),
            [
                "organizations:read",
                "organizations:write",
                "organizations:act",
                "admin_keys:read",
                "admin_keys:write",
            ]
        );
        // No person's role grants them, not even an owner's.
        assert!(
            catalog
                .role_cap(Role::Owner)
                .intersection(&installation)
                .is_empty()
        );
        // An organization's key cannot hold one, whoever grants it.
        let act = set(&catalog, &["organizations:act"]);
        let error = catalog
            .check_grant(&catalog.all(), CredentialKind::ApiKey, &act)
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "organizations:act is an installation scope, which only admin keys hold, not an API key"
        );
        // An admin key may hold them and organization scopes, if its grantor holds them.
        let mixed = set(&catalog, &["organizations:act", "api_keys:write"]);
        assert_eq!(
            catalog.check_grant(&mixed, CredentialKind::AdminKey, &mixed),
            Ok(())
        );
        assert!(
            catalog
                .check_grant(&act, CredentialKind::AdminKey, &mixed)
                .is_err()
        );
        // A stored name on an organization's key grants nothing.
        let stored = ScopeNames::from_storage("organizations:act api_keys:read").unwrap();
        assert_eq!(
            catalog.granted(&stored, CredentialKind::ApiKey),
            set(&catalog, &["api_keys:read"])
        );
        // Nor can the platform define one.
        let refused =
            ScopeCatalog::new(&[platform("billing:read", Some(ScopeLevel::Installation))]);
        assert!(refused.is_err());
        for reserved in ["admin_keys", "identities", "usage", "portal"] {
            let name = format!("{reserved}:read");
            assert!(
                ScopeCatalog::new(&[platform(&name, None)]).is_err(),
                "{name}"
            );
        }
    }

    #[test]
    fn a_chain_of_grants_never_gains_a_scope() {
        // Whatever each link asks for, what it gets is within what the previous link held.
        let catalog = ScopeCatalog::new(&[platform("databases:read", None)]).unwrap();
        let mut held = catalog.all();
        let requests = [
            set(
                &catalog,
                &["instances:read", "databases:read", "api_keys:write"],
            ),
            set(
                &catalog,
                &["instances:read", "api_keys:write", "projects:write"],
            ),
            set(&catalog, &["instances:read", "api_keys:write"]),
        ];
        for requested in requests {
            match catalog.check_grant(&held, CredentialKind::ApiKey, &requested) {
                Ok(()) => {
                    assert!(requested.is_subset_of(&held));
                    held = requested;
                }
                Err(GrantError::NotHeld { scope }) => {
                    assert!(!held.contains(catalog.lookup(&scope).unwrap()))
                }
                Err(other) => panic!("{other:?}"),
            }
        }
        assert_eq!(held, set(&catalog, &["instances:read", "api_keys:write"]));
    }

    #[test]
    fn role_caps_are_ordered() {
        let catalog = ScopeCatalog::builtin();
        let (owner, admin, member) = (
            catalog.role_cap(Role::Owner),
            catalog.role_cap(Role::Admin),
            catalog.role_cap(Role::Member),
        );
        assert_eq!(owner, catalog.holdable(CredentialKind::ApiKey));
        assert!(member.is_subset_of(&admin) && admin.is_subset_of(&owner));
        assert_eq!(
            catalog.names(&owner.difference(&admin)).collect::<Vec<_>>(),
            ["members:write", "organization:write", "portal:write"]
        );
        assert_eq!(
            catalog.names(&member).collect::<Vec<_>>(),
            [
                "instances:read",
                "instances:write",
                "projects:read",
                "api_keys:read",
                "tokens:read"
            ]
        );
        // An explicit least role overrides the level's default.
        let owned = ScopeCatalog::new(&[ScopeDefinition {
            min_role: Some(Role::Owner),
            ..platform("billing:write", Some(ScopeLevel::Project))
        }])
        .unwrap();
        let billing = owned.lookup("billing:write").unwrap();
        assert!(!owned.role_cap(Role::Admin).contains(billing));
        assert!(owned.role_cap(Role::Owner).contains(billing));
    }
}
