//! Admin keys made and managed on the host, as `keyward admin-keys` does: the first admin key
//! of an installation can only come from someone who can open its database.

use keyward_core::{
    Brand, CredentialId, CredentialKind, InvalidValue, Name, OrganizationId, PlaintextKey,
    ScopeCatalog, Timestamp,
};
use keyward_store::{
    AuditContext, Creator, CredentialFilter, CredentialRecord, NewCredential, Page, Paged, Store,
    StoreError,
};

/// The admin key the host made: `key` is a secret to show once.
#[derive(Debug)]
pub struct CreatedAdminKey {
    pub record: CredentialRecord,
    pub key: PlaintextKey,
}

#[derive(Debug, thiserror::Error)]
pub enum AdminKeyError {
    #[error("name {0}")]
    InvalidName(InvalidValue),
    #[error("choose at least one --scope (see `keyward scopes`, or docs/authorization.md)")]
    NoScope,
    #[error("unknown scope {0}")]
    UnknownScope(String),
    #[error("--expires-at must be in the future")]
    ExpiryPassed,
    #[error("no admin key {0}")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the operating system's random number generator failed")]
    Random,
}

/// Creates an admin key holding `scopes` (installation and organization scopes of
/// `catalog`), recorded in the installation's audit log as done by the system.
pub async fn create_admin_key(
    store: &dyn Store,
    brand: &Brand,
    catalog: &ScopeCatalog,
    name: &str,
    scopes: &[String],
    expires_at: Option<Timestamp>,
    now: Timestamp,
) -> Result<CreatedAdminKey, AdminKeyError> {
    let name = Name::parse(name).map_err(AdminKeyError::InvalidName)?;
    if scopes.is_empty() {
        return Err(AdminKeyError::NoScope);
    }
    let scopes = catalog
        .parse(scopes)
        .map_err(|unknown| AdminKeyError::UnknownScope(unknown.0))?;
    if expires_at.is_some_and(|at| at <= now) {
        return Err(AdminKeyError::ExpiryPassed);
    }
    let kind = CredentialKind::AdminKey;
    let key = PlaintextKey::generate(brand, kind).map_err(|_| AdminKeyError::Random)?;
    let id = CredentialId::generate(kind);
    let new = NewCredential {
        id,
        organization_id: OrganizationId::INSTALLATION,
        project_id: None,
        name,
        digest: key.digest(),
        hint: key.hint(),
        scopes: catalog.to_names(&scopes),
        created_at: now,
        expires_at,
        rate_limit: None,
        allowed_cidrs: None,
        created_by: Creator::Host,
        rotated_from: None,
        credits: None,
        metadata: keyward_core::Metadata::default(),
    };
    let record = store.insert_credential(&AuditContext::SYSTEM, new).await?;
    Ok(CreatedAdminKey { record, key })
}

/// A page of the installation's admin keys, newest first.
pub async fn list_admin_keys(
    store: &dyn Store,
    page: Page,
) -> Result<Paged<CredentialRecord>, AdminKeyError> {
    let filter = CredentialFilter {
        kind: CredentialKind::AdminKey,
        project: None,
        external_id: None,
    };
    Ok(store
        .list_credentials(OrganizationId::INSTALLATION, &filter, page)
        .await?)
}

/// Revokes the admin key `id` (`adk_…`) for good; revoking a revoked one changes nothing.
pub async fn revoke_admin_key(
    store: &dyn Store,
    id: &str,
    now: Timestamp,
) -> Result<CredentialRecord, AdminKeyError> {
    let not_found = || AdminKeyError::NotFound(id.to_owned());
    let parsed = CredentialId::parse(id, CredentialKind::AdminKey).map_err(|_| not_found())?;
    store
        .revoke_credential(
            &AuditContext::SYSTEM,
            OrganizationId::INSTALLATION,
            parsed,
            now,
        )
        .await?
        .ok_or_else(not_found)
}
