//! What API keys and project tokens share: the create body, the views, and the create, list,
//! show and revoke operations. The resource modules add routes and the scope checks.

use keyward_core::{
    CredentialId, CredentialKind, CredentialStatus, Name, PlaintextKey, ProjectId, ScopeSet,
    Timestamp,
};
use keyward_store::{Creator, CredentialFilter, CredentialRecord, NewCredential};
use serde::{Deserialize, Serialize};

use super::pagination::{List, page_from};
use crate::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, FieldError, validate};

/// `{name, scopes, expires_at?}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateCredential {
    pub name: String,
    pub scopes: Vec<String>,
    #[serde(default)]
    pub expires_at: Option<String>,
}

/// The one response that contains the key itself.
#[derive(Serialize)]
pub struct CreatedCredential {
    pub id: CredentialId,
    pub name: Name,
    /// The secret. Shown here once; Keyward keeps only its SHA-256.
    pub key: String,
    pub hint: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project_id: Option<ProjectId>,
    pub scopes: ScopeSet,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
}

/// A credential as lists and `GET` show it: never the key.
#[derive(Serialize)]
pub struct CredentialView {
    pub id: CredentialId,
    pub name: Name,
    pub hint: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project_id: Option<ProjectId>,
    pub scopes: ScopeSet,
    pub created_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
    pub expires_at: Option<Timestamp>,
    pub status: CredentialStatus,
    pub revoked_at: Option<Timestamp>,
}

impl CredentialView {
    /// Adds this node's last use that is not yet written to the database.
    fn new(record: CredentialRecord, state: &AppState, now: Timestamp) -> Self {
        let last_used_at = record.last_used_at.max(state.usage.pending_use(record.id));
        Self {
            status: record.status(now),
            id: record.id,
            name: record.name,
            hint: record.hint,
            project_id: record.project_id,
            scopes: record.scopes,
            created_at: record.created_at,
            last_used_at,
            expires_at: record.expires_at,
            revoked_at: record.revoked_at,
        }
    }
}

fn parse_scopes(names: &[String]) -> Result<ScopeSet, FieldError> {
    let scopes = ScopeSet::parse_names(names).map_err(|e| FieldError::new("scopes", e))?;
    if scopes.is_empty() {
        return Err(FieldError::new("scopes", "choose at least one scope"));
    }
    Ok(scopes)
}

fn parse_expiry(raw: Option<&str>, now: Timestamp) -> Result<Option<Timestamp>, FieldError> {
    let Some(raw) = raw else { return Ok(None) };
    let expires_at = Timestamp::parse(raw).map_err(|e| FieldError::new("expires_at", e))?;
    if expires_at <= now {
        return Err(FieldError::new("expires_at", "must be in the future"));
    }
    Ok(Some(expires_at))
}

/// Creates a credential of `kind` (for `project`, if a token) on behalf of `principal`, who
/// must hold every scope it grants.
pub async fn create(
    state: &AppState,
    principal: &Principal,
    kind: CredentialKind,
    project: Option<ProjectId>,
    body: CreateCredential,
) -> Result<CreatedCredential, ApiError> {
    let now = Timestamp::now();
    let name = Name::parse(&body.name).map_err(|e| FieldError::new("name", e));
    let scopes = parse_scopes(&body.scopes);
    let expires_at = parse_expiry(body.expires_at.as_deref(), now);
    validate!(name, scopes, expires_at);
    principal.authorize_grant(kind, scopes)?;

    let key = PlaintextKey::generate(&state.config.brand, kind).map_err(ApiError::internal)?;
    let record = state
        .store
        .insert_credential(NewCredential {
            id: CredentialId::generate(kind),
            organization_id: principal.organization_id,
            project_id: project,
            name,
            digest: key.digest(),
            hint: key.hint(),
            scopes,
            created_at: now,
            expires_at,
            created_by: Creator::Credential(principal.credential_id),
        })
        .await?;
    Ok(CreatedCredential {
        id: record.id,
        name: record.name,
        key: key.expose_secret().to_owned(),
        hint: record.hint,
        project_id: record.project_id,
        scopes: record.scopes,
        created_at: record.created_at,
        expires_at: record.expires_at,
    })
}

pub async fn list(
    state: &AppState,
    principal: &Principal,
    filter: CredentialFilter,
    limit: Option<u32>,
    cursor: Option<&str>,
) -> Result<List<CredentialView>, ApiError> {
    let page = page_from(limit, cursor, |text| {
        CredentialId::parse(text, filter.kind)
            .ok()
            .map(|id| id.as_uuid())
    })?;
    let paged = state
        .store
        .list_credentials(principal.organization_id, filter, page)
        .await?;
    let now = Timestamp::now();
    Ok(List::from_paged(
        paged,
        |record| record.id.to_string(),
        |record| CredentialView::new(record, state, now),
    ))
}

/// The credential `id` of the principal's organization, if it matches `project`.
pub async fn show(
    state: &AppState,
    principal: &Principal,
    id: CredentialId,
    project: Option<ProjectId>,
) -> Result<CredentialView, ApiError> {
    let record = state
        .store
        .get_credential(principal.organization_id, id)
        .await?
        .filter(|record| record.project_id == project)
        .ok_or(ApiError::NotFound(not_found_label(id.kind())))?;
    Ok(CredentialView::new(record, state, Timestamp::now()))
}

/// Revokes at once and for good. Revoking a revoked credential changes nothing and succeeds.
pub async fn revoke(
    state: &AppState,
    principal: &Principal,
    id: CredentialId,
    project: Option<ProjectId>,
) -> Result<(), ApiError> {
    // Check the project before revoking: a token is revoked only through its own project.
    show(state, principal, id, project).await?;
    state
        .store
        .revoke_credential(principal.organization_id, id, Timestamp::now())
        .await?
        .ok_or(ApiError::NotFound(not_found_label(id.kind())))?;
    Ok(())
}

pub fn not_found_label(kind: CredentialKind) -> &'static str {
    match kind {
        CredentialKind::ApiKey => "API key",
        CredentialKind::ProjectToken => "project token",
    }
}
