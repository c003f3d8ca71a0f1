//! Keyward's domain: the credential format, scopes, typed ids, validated names and times.
//!
//! Everything here is pure computation: no I/O, no async, no clock reads except through
//! [`Timestamp::now`]. The server and the stores build on these types, so a value that has
//! passed one of the `parse` functions here is known good everywhere past the edge of the
//! system.

pub mod credential;
pub mod credits;
pub mod id;
pub mod metadata;
pub mod names;
pub mod network;
pub mod password;
pub mod rate_limit;
pub mod reach;
pub mod role;
pub mod route;
pub mod scope;
pub mod timestamp;
pub mod webhook;

pub use credential::{
    Brand, CredentialKind, CredentialStatus, KeyDigest, KeyFormatError, Lifetime, PlaintextKey,
};
pub use credits::{CreditSettings, Every, InvalidCredits, Refill};
pub use id::{
    CredentialId, EventId, IdError, InstanceId, InvitationId, MessageId, OrganizationId, ProjectId,
    RequestId, UserId, WebhookId,
};
pub use metadata::{ExternalId, Meta, Metadata, OrganizationRef};
pub use names::{Description, Email, InstanceStatus, InvalidValue, Name, Region};
pub use network::{Cidr, InvalidNetwork, Networks};
pub use rate_limit::RateLimit;
pub use reach::Reach;
pub use role::Role;
pub use scope::{
    GrantError, Scope, ScopeCatalog, ScopeDefinition, ScopeInfo, ScopeLevel, ScopeNames, ScopeSet,
    UnknownScope,
};
pub use timestamp::Timestamp;
