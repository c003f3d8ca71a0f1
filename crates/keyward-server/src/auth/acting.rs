//! Acting for an organization: an admin key holding `organizations:act` calls an
//! organization's endpoints for the organization that `Keyward-Organization` names (`org_…`,
//! or `ext:<external id>`), with its own organization-level scopes, which cap what it may do
//! there. Every change it makes is recorded in that organization's audit log with the admin
//! key as actor.

use axum::http::request::Parts;
use keyward_core::{CredentialKind, OrganizationId, OrganizationRef, Scope};

use super::Principal;
use crate::AppState;
use crate::error::ApiError;

/// The header naming the organization an admin key acts for.
pub const ORGANIZATION_HEADER: &str = "keyward-organization";

/// `principal` in the organization it works in: its own for an organization's credential,
/// the named one for an admin key (refused without `organizations:act`, or without the
/// header, or for an organization that does not exist).
pub(super) async fn for_organization(
    parts: &Parts,
    state: &AppState,
    principal: Principal,
) -> Result<Principal, ApiError> {
    let named = named(parts)?;
    if principal.kind() != CredentialKind::AdminKey {
        if named.is_some() {
            return Err(ApiError::InvalidRequest(
                "Keyward-Organization is for admin keys; an organization's key or token \
                 works in its own organization only",
            ));
        }
        return Ok(principal);
    }
    let Some(named) = named else {
        return Err(ApiError::OrganizationRequired);
    };
    principal.require(Scope::ORGANIZATIONS_ACT)?;
    let organization = resolve(state, named).await?;
    let catalog = &state.config.scopes;
    Ok(Principal {
        organization_id: organization,
        // Its organization-level scopes (and project-level ones); its installation scopes
        // mean nothing inside an organization.
        scopes: principal
            .scopes
            .intersection(&catalog.holdable(CredentialKind::ApiKey)),
        ..principal
    })
}

/// The header's value, if sent once.
pub(crate) fn named(parts: &Parts) -> Result<Option<&str>, ApiError> {
    let mut values = parts.headers.get_all(ORGANIZATION_HEADER).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ApiError::InvalidRequest(
            "send one Keyward-Organization header, not several",
        ));
    }
    let value = value
        .to_str()
        .map_err(|_| ApiError::InvalidRequest("Keyward-Organization must be printable ASCII"))?
        .trim();
    Ok(Some(value))
}

/// The live organization `named` (`org_…` or `ext:<external id>`) stands for.
pub(crate) async fn resolve(state: &AppState, named: &str) -> Result<OrganizationId, ApiError> {
    let found = match OrganizationRef::parse(named) {
        Some(reference) => state.store.find_organization(&reference).await?,
        None => None,
    };
    found
        .map(|organization| organization.id)
        .ok_or_else(|| ApiError::OrganizationNotFound(named.to_owned()))
}
