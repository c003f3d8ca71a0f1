//! The body of `POST /v1/api-keys` and `POST /v1/projects/{project_id}/tokens`.

use keyward_core::Timestamp;
use keyward_store::Creator;
use serde::Deserialize;

use crate::auth::Principal;
use crate::credentials::{CredentialInput, Grantor, parse_expiry, parse_name, parse_scopes};
use crate::error::{ApiError, validate};

/// `{name, scopes, expires_at?}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateCredential {
    pub name: String,
    pub scopes: Vec<String>,
    #[serde(default)]
    pub expires_at: Option<String>,
}

impl CreateCredential {
    /// Validates every field, reporting all invalid ones at once.
    pub fn parse(self) -> Result<CredentialInput, ApiError> {
        let name = parse_name(&self.name);
        let scopes = parse_scopes(&self.scopes);
        let expires_at = parse_expiry(self.expires_at.as_deref(), Timestamp::now());
        validate!(name, scopes, expires_at);
        Ok(CredentialInput {
            name,
            scopes,
            expires_at,
        })
    }
}

/// A credential grants at most its own scopes.
pub fn grantor(principal: &Principal) -> Grantor {
    Grantor {
        organization_id: principal.organization_id,
        allowed: principal.scopes,
        expires_at: principal.expires_at,
        created_by: Creator::Credential(principal.credential_id),
    }
}
