//! What Keyward does to its resources, once for both front ends: the REST API and the
//! dashboard call these services with a [`caller::Caller`] (who asks, in which organization,
//! how far they reach, what they may grant) and values already parsed by the core types
//! (`Name::parse`, `Description::parse` …), and each turns a [`ServiceError`] into its own
//! answer: a problem+json document, or a form shown again with the message beside the field.
//! Handlers parse, call a service and render; they decide nothing.
//!
//! Where each rule lives:
//! - a project token's reach: `keyward_core::Reach::allows`, applied here to projects,
//!   instances and tokens (and by forward authentication to the project a request names);
//! - whose credentials a caller may change (members only their own): `Caller`, with what it
//!   may do to each credential in `credentials::Allowed`;
//! - what a credential may grant (scopes, expiry, rate limit, networks): `credentials`;
//! - who may add, change or remove whom: `members`;
//! - the organization's policy for new credentials: checked by the store, in the writing
//!   transaction;
//! - reports of exposed keys: `leaks`;
//! - where a credential stands (active, expired, revoked, rotating): `keyward_core::Lifetime`.
//!
//! Every rule that guards a write lives here or in the store's transaction, never in a
//! handler, so that the two front ends cannot drift apart.

pub mod audit;
pub mod caller;
pub mod credentials;
pub mod identities;
pub mod instances;
pub mod leaks;
pub mod members;
pub mod organization;
pub mod organizations;
pub mod portal;
pub mod projects;
pub mod schema;
pub mod usage;
pub mod webhooks;

use keyward_core::CredentialKind;
use keyward_store::StoreError;

use crate::field_error::FieldError;

/// Why a service refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// Fields that are not valid.
    #[error("invalid fields")]
    Invalid(Vec<FieldError>),
    /// Nothing of this kind (`"project"`, `"API key"` …) with this id that the caller can
    /// reach.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The change conflicts with what exists.
    #[error("{0}")]
    Conflict(Conflict),
    /// A credential cannot grant a scope it does not hold.
    #[error("cannot grant {scope}")]
    CannotGrant { scope: String },
    /// The caller's role does not allow this; the message says why.
    #[error("{message}")]
    Forbidden {
        field: Option<&'static str>,
        message: &'static str,
    },
    /// Too many of something for now (invitation emails); the message says what.
    #[error("{message}")]
    Throttled {
        message: &'static str,
        retry_after_seconds: u64,
    },
    /// The store failed (unavailable, cannot write, or worse).
    #[error(transparent)]
    Store(StoreError),
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// What a change conflicted with. Each front end words it its own way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conflict {
    /// The name is taken: by a project in the organization, or an instance in the project.
    NameTaken(&'static str),
    /// A credential with this id exists: the same creation (a form, say) was sent twice.
    AlreadyCreated(CredentialKind),
    /// A project with instances cannot be deleted.
    ProjectHasInstances,
    /// The person belongs to the organization already.
    AlreadyMember,
    /// An unexpired invitation for this email is open.
    AlreadyInvited,
    /// The change would leave the organization without an owner.
    LastOwner,
    /// The member's role changed since the caller looked.
    StaleRole,
    /// The credential is revoked, expired or already being rotated.
    NotRotatable(CredentialKind),
    /// A live organization has this external id already.
    ExternalIdTaken,
    /// The organization has as many webhook endpoints as it may.
    TooManyWebhooks,
    /// The webhook endpoint is disabled: it is sent nothing.
    WebhookDisabled,
    /// Another account has the email a portal link names (under another external id).
    EmailInUse,
    /// An organization's key named a person of another organization.
    PersonElsewhere,
}

impl Conflict {
    /// The field a form marks for it, if any.
    pub fn field(self) -> Option<&'static str> {
        match self {
            Self::NameTaken(_) => Some("name"),
            Self::AlreadyMember | Self::AlreadyInvited => Some("email"),
            Self::ExternalIdTaken => Some("external_id"),
            _ => None,
        }
    }
}

impl std::fmt::Display for Conflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NameTaken("instance") => {
                f.write_str("an instance with this name already exists in the project")
            }
            Self::NameTaken(what) => write!(f, "a {what} with this name already exists"),
            Self::AlreadyCreated(kind) => {
                write!(f, "{} with this id was already created", kind.label())
            }
            Self::ProjectHasInstances => {
                f.write_str("the project still has instances; delete them first")
            }
            Self::AlreadyMember => f.write_str("this person is already a member"),
            Self::AlreadyInvited => f.write_str(
                "an invitation for this email is open already; resend or cancel it instead",
            ),
            Self::ExternalIdTaken => {
                f.write_str("an organization with this external id exists already")
            }
            Self::LastOwner => f.write_str("the organization must keep at least one owner"),
            Self::StaleRole => f.write_str("the member's role changed meanwhile; look again"),
            Self::NotRotatable(kind) => write!(
                f,
                "this {} is revoked, expired or already being rotated; create a new one instead",
                kind.label()
            ),
            Self::WebhookDisabled => {
                f.write_str("the endpoint is disabled; enable it first, then redeliver")
            }
            Self::PersonElsewhere => f.write_str(
                "this external id names a person who is not a member of this organization; only \
                 the installation's admin keys may add them",
            ),
            Self::EmailInUse => f.write_str(
                "another account has this email under another external id (or none); use that \
                 person's external id, or another email",
            ),
            Self::TooManyWebhooks => write!(
                f,
                "an organization has at most {} webhook endpoints; delete one first",
                keyward_store::MAX_WEBHOOKS
            ),
        }
    }
}

impl ServiceError {
    pub fn invalid(field: &'static str, message: impl ToString) -> Self {
        Self::Invalid(vec![FieldError::new(field, message)])
    }

    pub fn internal(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Internal(Box::new(error))
    }
}

impl From<StoreError> for ServiceError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound(what) => Self::NotFound(what),
            StoreError::Throttled {
                message,
                retry_after_seconds,
            } => Self::Throttled {
                message,
                retry_after_seconds,
            },
            StoreError::Policy(policy) => {
                Self::invalid("expires_at", organization::refusal(policy))
            }
            StoreError::Invalid { field, message } => Self::invalid(field, message),
            other => Self::Store(other),
        }
    }
}

/// A store error, with the store's `Conflict` (a unique constraint) read as `on_conflict`.
pub(crate) fn store_error(on_conflict: Conflict) -> impl FnOnce(StoreError) -> ServiceError {
    move |error| match error {
        StoreError::Conflict(_) => ServiceError::Conflict(on_conflict),
        other => ServiceError::from(other),
    }
}
