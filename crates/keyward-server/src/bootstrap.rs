//! The first credential of a fresh install: an organization, its owner, and one API key named
//! `bootstrap` that holds every scope. `keyward bootstrap` calls this; so do the tests.

use keyward_core::password::{Password, PasswordError};
use keyward_core::{
    Brand, CredentialId, CredentialKind, Email, InvalidValue, Name, OrganizationId, PlaintextKey,
    Role, ScopeCatalog, Timestamp, UserId,
};
use keyward_store::{
    AuditContext, Creator, NewCredential, NewOrganization, NewOwner, Store, StoreError,
};

/// What bootstrapping created. `key` and `generated_password` are secrets to show once.
#[derive(Debug)]
pub struct Bootstrapped {
    pub organization_id: OrganizationId,
    pub user_id: UserId,
    /// False when the email already had an account, which now also owns this organization.
    pub user_created: bool,
    /// Set when a new user was created without a password being given.
    pub generated_password: Option<Password>,
    pub key_id: CredentialId,
    pub key: PlaintextKey,
}

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("organization name {0}")]
    InvalidOrganizationName(InvalidValue),
    #[error("email {0}")]
    InvalidEmail(InvalidValue),
    #[error("{0}")]
    InvalidPassword(PasswordError),
    #[error("an organization with this name already exists")]
    OrganizationExists,
    #[error(
        "{0} already has an account, whose password stays as it is; run again without a password"
    )]
    PasswordForExistingUser(String),
    #[error(transparent)]
    Store(StoreError),
    #[error("the operating system's random number generator failed")]
    Random,
}

/// Creates an organization, its owner (unless the account exists) and its first key, which
/// holds every scope of `catalog` an owner may grant, at `now`.
pub async fn bootstrap_organization(
    store: &dyn Store,
    brand: &Brand,
    catalog: &ScopeCatalog,
    organization_name: &str,
    email: &str,
    password: Option<Password>,
    now: Timestamp,
) -> Result<Bootstrapped, BootstrapError> {
    let name = Name::parse(organization_name).map_err(BootstrapError::InvalidOrganizationName)?;
    let email = Email::parse(email).map_err(BootstrapError::InvalidEmail)?;

    let existing = store
        .find_user_by_email(&email)
        .await
        .map_err(BootstrapError::Store)?;
    let (owner, user_id, generated_password) = match existing {
        Some(user) if password.is_some() => {
            return Err(BootstrapError::PasswordForExistingUser(
                user.email.to_string(),
            ));
        }
        Some(user) => (NewOwner::Existing(user.id), user.id, None),
        None => {
            let (password, generated) = match password {
                Some(password) => (password, None),
                None => {
                    let generated =
                        Password::generate().map_err(BootstrapError::InvalidPassword)?;
                    (generated.clone(), Some(generated))
                }
            };
            let password_hash = password.hash().map_err(BootstrapError::InvalidPassword)?;
            let id = UserId::generate();
            (
                NewOwner::Create {
                    id,
                    email,
                    password_hash,
                },
                id,
                generated,
            )
        }
    };

    let organization_id = OrganizationId::generate();
    let key = PlaintextKey::generate(brand, CredentialKind::ApiKey)
        .map_err(|_| BootstrapError::Random)?;
    let key_id = CredentialId::generate(CredentialKind::ApiKey);
    let first_key = NewCredential {
        id: key_id,
        organization_id,
        project_id: None,
        name: Name::parse("bootstrap").map_err(BootstrapError::InvalidOrganizationName)?,
        digest: key.digest(),
        hint: key.hint(),
        scopes: catalog.to_names(&catalog.role_cap(Role::Owner)),
        created_at: now,
        expires_at: None,
        rate_limit: None,
        allowed_cidrs: None,
        created_by: Creator::User(user_id),
        rotated_from: None,
        credits: None,
        metadata: keyward_core::Metadata::default(),
    };
    let user_created = matches!(owner, NewOwner::Create { .. });
    store
        .create_organization(
            &AuditContext::SYSTEM,
            NewOrganization {
                id: organization_id,
                name,
                created_at: now,
                external_id: None,
                policy: Default::default(),
                // A guard for the person typing it: names are not unique otherwise.
                unique_name: true,
            },
            owner,
            Some(first_key),
        )
        .await
        .map_err(|error| match error {
            StoreError::Conflict("organization name") => BootstrapError::OrganizationExists,
            other => BootstrapError::Store(other),
        })?;

    Ok(Bootstrapped {
        organization_id,
        user_id,
        user_created,
        generated_password,
        key_id,
        key,
    })
}
