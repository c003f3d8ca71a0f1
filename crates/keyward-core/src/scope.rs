//! The scope catalog: what a credential may do, as `resource:action`.
//!
//! Deny by default: a credential may do exactly what its scopes name. Adding a scope is a code
//! change with a test; renaming one never happens, because stored credentials carry the names.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! catalog {
    ($($variant:ident = $name:literal, project_level: $project:literal, $doc:literal;)*) => {
        /// One permission. The catalog order is the order of lists and storage.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Scope {
            $(#[doc = $doc] $variant,)*
        }

        impl Scope {
            /// Every scope, in catalog order.
            pub const ALL: &'static [Scope] = &[$(Scope::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(Scope::$variant => $name,)*
                }
            }

            /// Whether a project token may hold this scope.
            pub fn is_project_level(self) -> bool {
                match self {
                    $(Scope::$variant => $project,)*
                }
            }

            /// One sentence on what the scope allows.
            pub fn description(self) -> &'static str {
                match self {
                    $(Scope::$variant => $doc,)*
                }
            }
        }

        impl FromStr for Scope {
            type Err = UnknownScope;
            fn from_str(s: &str) -> Result<Self, UnknownScope> {
                match s {
                    $($name => Ok(Scope::$variant),)*
                    other => Err(UnknownScope(other.to_owned())),
                }
            }
        }
    };
}

catalog! {
    InstancesRead = "instances:read", project_level: true, "List and read instances.";
    InstancesWrite = "instances:write", project_level: true, "Create and delete instances.";
    ProjectsRead = "projects:read", project_level: true, "List and read projects.";
    ProjectsWrite = "projects:write", project_level: false, "Create, rename and delete projects.";
    ApiKeysRead = "api_keys:read", project_level: false, "List and read the organization's API keys.";
    ApiKeysWrite = "api_keys:write", project_level: false, "Create and revoke the organization's API keys.";
    TokensRead = "tokens:read", project_level: false, "List and read project tokens.";
    TokensWrite = "tokens:write", project_level: false, "Create and revoke project tokens.";
    MembersRead = "members:read", project_level: false, "List the organization's members.";
    MembersWrite = "members:write", project_level: false, "Add and remove members and change their roles.";
    AuditRead = "audit:read", project_level: false, "Read the organization's audit log.";
    KeysVerify = "keys:verify", project_level: false, "Verify the organization's keys on behalf of another service.";
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not in the catalog.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown scope {0:?}")]
pub struct UnknownScope(pub String);

/// A set of scopes, as a bit set in catalog order: membership tests cost one AND.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ScopeSet(u32);

impl ScopeSet {
    pub const EMPTY: ScopeSet = ScopeSet(0);

    pub fn all() -> Self {
        Scope::ALL.iter().copied().collect()
    }

    fn bit(scope: Scope) -> u32 {
        1 << (scope as u32)
    }

    pub fn contains(self, scope: Scope) -> bool {
        self.0 & Self::bit(scope) != 0
    }

    pub fn insert(&mut self, scope: Scope) {
        self.0 |= Self::bit(scope);
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn is_subset_of(self, other: ScopeSet) -> bool {
        self.0 & !other.0 == 0
    }

    /// The scopes of `self` that `other` lacks, in catalog order.
    pub fn difference(self, other: ScopeSet) -> ScopeSet {
        ScopeSet(self.0 & !other.0)
    }

    /// The scopes in catalog order.
    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL
            .iter()
            .copied()
            .filter(move |&s| self.contains(s))
    }

    /// Parses a list of names; the error names the first unknown one.
    pub fn parse_names<S: AsRef<str>>(names: &[S]) -> Result<Self, UnknownScope> {
        names.iter().map(|n| n.as_ref().parse::<Scope>()).collect()
    }

    /// The storage form: names separated by single spaces, in catalog order.
    pub fn to_storage(self) -> String {
        self.iter().map(Scope::as_str).collect::<Vec<_>>().join(" ")
    }

    /// Reads the storage form.
    pub fn from_storage(s: &str) -> Result<Self, UnknownScope> {
        s.split_whitespace().map(str::parse::<Scope>).collect()
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
        f.debug_set()
            .entries(self.iter().map(Scope::as_str))
            .finish()
    }
}

impl Serialize for ScopeSet {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter().map(Scope::as_str))
    }
}

impl<'de> Deserialize<'de> for ScopeSet {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let names = Vec::<String>::deserialize(deserializer)?;
        ScopeSet::parse_names(&names).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalog_is_the_documented_one() {
        let names: Vec<_> = Scope::ALL.iter().map(|s| s.as_str()).collect();
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
            ]
        );
        let project_level: Vec<_> = Scope::ALL
            .iter()
            .filter(|s| s.is_project_level())
            .map(|s| s.as_str())
            .collect();
        assert_eq!(
            project_level,
            ["instances:read", "instances:write", "projects:read"]
        );
    }

    #[test]
    fn names_round_trip_and_unknown_names_are_named() {
        for &scope in Scope::ALL {
            assert_eq!(scope.as_str().parse::<Scope>(), Ok(scope));
        }
        assert_eq!(
            "instances:admin".parse::<Scope>(),
            Err(UnknownScope("instances:admin".into()))
        );
        assert!("Instances:Read".parse::<Scope>().is_err());
        assert!(" instances:read".parse::<Scope>().is_err());
        assert_eq!(
            ScopeSet::parse_names(&["instances:read", "nope", "worse"]),
            Err(UnknownScope("nope".into()))
        );
    }

    #[test]
    fn sets_are_ordered_deduplicated_and_stored_as_text() {
        let set =
            ScopeSet::parse_names(&["projects:read", "instances:read", "projects:read"]).unwrap();
        assert_eq!(set.to_storage(), "instances:read projects:read");
        assert_eq!(ScopeSet::from_storage(&set.to_storage()), Ok(set));
        assert_eq!(ScopeSet::from_storage(""), Ok(ScopeSet::EMPTY));
        assert_eq!(
            serde_json::to_string(&set).unwrap(),
            r#"["instances:read","projects:read"]"#
        );
        let parsed: ScopeSet =
            serde_json::from_str(r#"["projects:read","instances:read"]"#).unwrap();
        assert_eq!(parsed, set);
        assert!(serde_json::from_str::<ScopeSet>(r#"["root"]"#).is_err());
    }

    #[test]
    fn subset_and_difference() {
        let read = ScopeSet::parse_names(&["instances:read"]).unwrap();
        let both = ScopeSet::parse_names(&["instances:read", "instances:write"]).unwrap();
        assert!(read.is_subset_of(both));
        assert!(!both.is_subset_of(read));
        assert_eq!(
            both.difference(read).iter().collect::<Vec<_>>(),
            [Scope::InstancesWrite]
        );
        assert!(ScopeSet::EMPTY.is_subset_of(read));
        assert_eq!(ScopeSet::all().iter().count(), Scope::ALL.len());
    }
}
