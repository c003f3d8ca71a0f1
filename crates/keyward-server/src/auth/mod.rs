//! Bearer authentication: who is calling, and may they do this?
//!
//! The order of checks is the contract: header syntax → key format and checksum (rejected
//! without any look-up) → SHA-256 → one indexed look-up by digest → revoked / expired → use
//! recorded in memory. Nothing is cached between requests, so a revocation committed by one
//! request is seen by the very next one. Unknown and revoked keys get the same answer, so the
//! response never tells whether a key ever existed.

mod usage;

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use keyward_core::credential::check_format;
use keyward_core::{
    CredentialId, CredentialKind, CredentialStatus, KeyDigest, Name, OrganizationId, ProjectId,
    Scope, ScopeSet, Timestamp,
};
use keyward_store::CredentialRecord;

pub use usage::UsageRecorder;

use crate::AppState;
use crate::error::ApiError;

/// The verified credential behind a request.
#[derive(Clone, Debug)]
pub struct Principal {
    pub credential_id: CredentialId,
    pub organization_id: OrganizationId,
    pub project_id: Option<ProjectId>,
    pub name: Name,
    pub scopes: ScopeSet,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
}

impl Principal {
    pub fn kind(&self) -> CredentialKind {
        self.credential_id.kind()
    }

    /// The one authorization check of a handler: deny unless the credential holds `scope`.
    /// A project token is also denied every scope that is not project-level, whatever is
    /// stored for it.
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        let holdable = self.kind() == CredentialKind::ApiKey || scope.is_project_level();
        if holdable && self.scopes.contains(scope) {
            Ok(())
        } else {
            Err(ApiError::insufficient_scope(scope))
        }
    }

    /// Whether resources of `project` are within reach: always for organization keys, only
    /// their own project for project tokens.
    pub fn can_reach(&self, project: ProjectId) -> bool {
        self.project_id.is_none_or(|own| own == project)
    }

    fn from_record(record: CredentialRecord) -> Self {
        Self {
            credential_id: record.id,
            organization_id: record.organization_id,
            project_id: record.project_id,
            name: record.name,
            scopes: record.scopes,
            created_at: record.created_at,
            expires_at: record.expires_at,
        }
    }
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let presented = bearer_token(&parts.headers)?;
        let client_ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0.ip());
        authenticate(state, presented, client_ip).await
    }
}

/// The token of `Authorization: Bearer <token>` (RFC 6750 §2.1).
fn bearer_token(headers: &HeaderMap) -> Result<&str, ApiError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Err(ApiError::MissingCredentials);
    };
    if values.next().is_some() {
        return Err(ApiError::InvalidRequest(
            "send one Authorization header, not several",
        ));
    }
    let value = value.to_str().map_err(|_| {
        ApiError::InvalidRequest("the Authorization header must be printable ASCII")
    })?;
    let (scheme, credentials) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(ApiError::MissingCredentials);
    }
    let token = credentials.trim_matches(' ');
    if token.is_empty() {
        return Err(ApiError::InvalidRequest(
            "the Authorization header has the Bearer scheme but no key",
        ));
    }
    Ok(token)
}

const NOT_VALID: &str = "the key is not valid";

async fn authenticate(
    state: &AppState,
    presented: &str,
    client_ip: Option<IpAddr>,
) -> Result<Principal, ApiError> {
    check_format(&state.config.brand, presented)
        .map_err(|e| ApiError::InvalidToken(format!("the key is malformed: {e}")))?;
    let digest = KeyDigest::of(presented);
    let record = state
        .store
        .find_credential_by_digest(&digest)
        .await?
        .ok_or_else(|| ApiError::InvalidToken(NOT_VALID.into()))?;
    let now = Timestamp::now();
    match record.status(now) {
        CredentialStatus::Active => {}
        CredentialStatus::Revoked => return Err(ApiError::InvalidToken(NOT_VALID.into())),
        CredentialStatus::Expired => {
            let expired_at = record.expires_at.unwrap_or(now);
            return Err(ApiError::InvalidToken(format!(
                "the key expired at {expired_at}"
            )));
        }
    }
    state.usage.record(record.id, now, client_ip);
    Ok(Principal::from_record(record))
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(values: &[&[u8]]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in values {
            map.append(
                header::AUTHORIZATION,
                HeaderValue::from_bytes(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn bearer_tokens_are_taken_from_one_header() {
        assert_eq!(bearer_token(&headers(&[b"Bearer abc"])).unwrap(), "abc");
        assert_eq!(bearer_token(&headers(&[b"bearer  abc "])).unwrap(), "abc");
        assert!(matches!(
            bearer_token(&headers(&[])),
            Err(ApiError::MissingCredentials)
        ));
        assert!(matches!(
            bearer_token(&headers(&[b"Basic dXNlcjpwYXNz"])),
            Err(ApiError::MissingCredentials)
        ));
        for empty in [&b"Bearer"[..], b"Bearer ", b"Bearer    "] {
            assert!(matches!(
                bearer_token(&headers(&[empty])),
                Err(ApiError::InvalidRequest(_))
            ));
        }
        assert!(matches!(
            bearer_token(&headers(&[b"Bearer a", b"Bearer b"])),
            Err(ApiError::InvalidRequest(_))
        ));
        assert!(matches!(
            bearer_token(&headers(&[b"Bearer \xff\xfe"])),
            Err(ApiError::InvalidRequest(_))
        ));
    }

    fn principal(project: Option<ProjectId>, scopes: &[&str]) -> Principal {
        let kind = if project.is_some() {
            CredentialKind::ProjectToken
        } else {
            CredentialKind::ApiKey
        };
        Principal {
            credential_id: CredentialId::generate(kind),
            organization_id: OrganizationId::generate(),
            project_id: project,
            name: Name::parse("test").unwrap(),
            scopes: ScopeSet::parse_names(scopes).unwrap(),
            created_at: Timestamp::now(),
            expires_at: None,
        }
    }

    #[test]
    fn principals_need_every_scope_they_use() {
        let key = principal(None, &["instances:read", "api_keys:write"]);
        assert!(key.require(Scope::InstancesRead).is_ok());
        let Err(ApiError::InsufficientScope { scope, .. }) = key.require(Scope::InstancesWrite)
        else {
            panic!("instances:write must be refused");
        };
        assert_eq!(scope, Scope::InstancesWrite);
    }

    #[test]
    fn project_tokens_are_confined_whatever_their_stored_scopes() {
        let own = ProjectId::generate();
        // A token row that somehow holds organization scopes still cannot use them.
        let token = principal(
            Some(own),
            &["instances:read", "api_keys:read", "tokens:write"],
        );
        assert!(token.require(Scope::InstancesRead).is_ok());
        assert!(token.require(Scope::ApiKeysRead).is_err());
        assert!(token.require(Scope::TokensWrite).is_err());
        assert!(token.can_reach(own));
        assert!(!token.can_reach(ProjectId::generate()));
        let key = principal(None, &["instances:read"]);
        assert!(key.can_reach(own));
    }
}
