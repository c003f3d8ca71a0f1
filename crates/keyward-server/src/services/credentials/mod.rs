//! API keys and project tokens, as the REST API and the dashboard both manage them: create,
//! list, show, update and revoke, with the views they return. Both front ends call these
//! same functions, so a key revoked in the dashboard is revoked exactly as through the API.

use keyward_core::{
    CredentialId, CredentialKind, CredentialStatus, ExternalId, GrantError, Meta, Metadata, Name,
    Networks, OrganizationId, PlaintextKey, ProjectId, RateLimit, ScopeCatalog, ScopeSet,
    Timestamp,
};
use keyward_store::{CredentialChanges, CredentialFilter, NewCredential, OrganizationPolicy, Page};

mod view;

pub use view::{
    AddressView, Allowed, CreatedCredential, CredentialEntry, CredentialView, CreditsView,
    ExposureView, RotationView,
};

use super::caller::{Caller, CallerKind};
use super::{Conflict, ServiceError, store_error};
use crate::AppState;
use crate::field_error::FieldError;
use crate::pagination::List;
use view::created;

/// A validated request for a new credential.
pub struct CredentialInput {
    pub name: Name,
    pub scopes: ScopeSet,
    pub expires_at: Option<Timestamp>,
    pub rate_limit: Option<RateLimit>,
    pub allowed_cidrs: Option<Networks>,
    /// The platform's external id and meta: kept, and given back where the key is checked.
    pub metadata: Metadata,
    /// Its credits, if it has any.
    pub credits: Option<keyward_core::CreditSettings>,
}

pub fn parse_name(raw: &str) -> Result<Name, FieldError> {
    Name::parse(raw).map_err(|e| FieldError::new("name", e))
}

pub fn parse_external_id(raw: &str) -> Result<ExternalId, FieldError> {
    ExternalId::parse(raw).map_err(|e| FieldError::new("external_id", e))
}

pub fn parse_meta(value: &serde_json::Value) -> Result<Meta, FieldError> {
    Meta::from_value(value).map_err(|e| FieldError::new("meta", e))
}

/// Scope names of `catalog` (the one in force), at least one.
pub fn parse_scopes(catalog: &ScopeCatalog, names: &[String]) -> Result<ScopeSet, FieldError> {
    let scopes = catalog
        .parse(names)
        .map_err(|e| FieldError::new("scopes", e))?;
    if scopes.is_empty() {
        return Err(FieldError::new("scopes", "choose at least one scope"));
    }
    Ok(scopes)
}

/// An RFC 3339 expiry from the API, which must lie in the future.
pub fn parse_expiry(raw: Option<&str>, now: Timestamp) -> Result<Option<Timestamp>, FieldError> {
    let Some(raw) = raw else { return Ok(None) };
    let expires_at = Timestamp::parse(raw).map_err(|e| FieldError::new("expires_at", e))?;
    check_expiry(Some(expires_at), now)
}

/// An expiry must lie in the future.
pub fn check_expiry(
    expires_at: Option<Timestamp>,
    now: Timestamp,
) -> Result<Option<Timestamp>, FieldError> {
    match expires_at {
        Some(at) if at <= now => Err(FieldError::new("expires_at", "must be in the future")),
        other => Ok(other),
    }
}

/// Checks a new credential against what the caller may grant (every scope it grants held,
/// via `ScopeCatalog::check_grant`; an expiry no later than its own end; a rate limit and
/// networks no looser than its own) and makes its key.
fn prepare(
    state: &AppState,
    caller: &Caller,
    kind: CredentialKind,
    project: Option<ProjectId>,
    input: CredentialInput,
    id: CredentialId,
) -> Result<(NewCredential, PlaintextKey), ServiceError> {
    let catalog = &state.config.scopes;
    catalog
        .check_grant(&caller.grants.scopes, kind, &input.scopes)
        .map_err(|error| match error {
            GrantError::NotForKind { .. } => ServiceError::invalid("scopes", error),
            GrantError::NotHeld { scope } => ServiceError::CannotGrant { scope },
        })?;
    if let Some(limit) = caller.grants.usable_until
        && input.expires_at.is_none_or(|asked| asked > limit)
    {
        return Err(ServiceError::invalid(
            "expires_at",
            format!("must be set and no later than {limit}, when the creating credential expires"),
        ));
    }
    check_rate_limit_grant(caller, input.rate_limit)?;
    check_network_grant(caller, input.allowed_cidrs.as_ref())?;
    let key = PlaintextKey::generate(&state.config.brand, kind).map_err(ServiceError::internal)?;
    let new = NewCredential {
        id,
        organization_id: caller.organization_id,
        project_id: project,
        name: input.name,
        digest: key.digest(),
        hint: key.hint(),
        scopes: catalog.to_names(&input.scopes),
        created_at: state.config.clock.now(),
        expires_at: input.expires_at,
        rate_limit: input.rate_limit,
        allowed_cidrs: input.allowed_cidrs,
        created_by: caller.creator(),
        rotated_from: None,
        metadata: input.metadata,
        credits: input.credits,
    };
    Ok((new, key))
}

/// Creates a credential of `kind` (for `project`, a live project within the caller's reach,
/// if a token) with the given `id`, within what the caller may grant (see [`prepare`]); a
/// repeated `id` is a 409, so a form submitted twice creates one credential.
pub async fn create(
    state: &AppState,
    caller: &Caller,
    kind: CredentialKind,
    project: Option<ProjectId>,
    input: CredentialInput,
    id: CredentialId,
) -> Result<CreatedCredential, ServiceError> {
    if let Some(project) = project {
        super::projects::get(state, caller, project).await?;
    }
    let (new, key) = prepare(state, caller, kind, project, input, id)?;
    let record = state
        .store
        .insert_credential(&caller.audit, new)
        .await
        .map_err(store_error(Conflict::AlreadyCreated(kind)))?;
    Ok(created(record, &key))
}

/// The longest overlap of a rotation: seven days.
pub const MAX_GRACE_SECONDS: i64 = 7 * 86_400;

/// Rotates the credential `id` (of `project`, if a token): a new one with the same name,
/// scopes, project, rate limit, network rules, external id and meta, and the old one's expiry unless `expires_at` gives
/// another, shown once; the old one keeps working for `grace_seconds` (0 to 7 days), then is
/// refused as if revoked, on every node. The caller must be allowed to change the old one
/// and to create the new one, and it must meet the organization's policy.
pub async fn rotate(
    state: &AppState,
    caller: &Caller,
    id: CredentialId,
    project: Option<ProjectId>,
    grace_seconds: i64,
    expires_at: Option<Timestamp>,
) -> Result<CreatedCredential, ServiceError> {
    if !(0..=MAX_GRACE_SECONDS).contains(&grace_seconds) {
        return Err(ServiceError::invalid(
            "grace_seconds",
            "must be between 0 and 604800 (seven days)",
        ));
    }
    let kind = id.kind();
    let CredentialEntry { view: old, allowed } = find(state, caller, id, project).await?;
    if !allowed.change {
        return Err(only_their_own(kind));
    }
    if !allowed.rotate {
        return Err(ServiceError::Conflict(Conflict::NotRotatable(kind)));
    }
    let now = state.config.clock.now();
    if old.expires_at.is_some_and(|at| at <= now) {
        return Err(ServiceError::Conflict(Conflict::NotRotatable(kind)));
    }
    let scopes = state
        .config
        .scopes
        .parse(&old.scopes)
        .map_err(|e| ServiceError::invalid("scopes", e))?;
    let input = CredentialInput {
        name: old.name,
        scopes,
        expires_at: expires_at.or(old.expires_at),
        rate_limit: old.rate_limit,
        allowed_cidrs: old.allowed_cidrs,
        metadata: Metadata {
            external_id: old.external_id,
            meta: old.meta,
        },
        // The store moves the old one's balance over, inside the rotation's transaction.
        credits: None,
    };
    let (mut new, key) = prepare(
        state,
        caller,
        kind,
        project,
        input,
        CredentialId::generate(kind),
    )?;
    new.rotated_from = Some(id);
    // Its credits move to the successor: what this node holds of them goes back first (what
    // other nodes hold in leases stays spent).
    state
        .verifier
        .credit_accounts()
        .give_back_one(state.store.as_ref(), id)
        .await;
    let (rotated, replacement) = state
        .store
        .rotate_credential(
            &caller.audit,
            caller.organization_id,
            id,
            new,
            now.plus_seconds(grace_seconds),
        )
        .await
        .map_err(store_error(Conflict::NotRotatable(kind)))?
        .ok_or(ServiceError::NotFound(kind.label()))?;
    // Committed: this node reads the old one again (other nodes are told by the store).
    state.verifier.invalidate(&rotated.digest);
    Ok(created(replacement, &key))
}

/// Members change only the credentials they created.
fn only_their_own(kind: CredentialKind) -> ServiceError {
    ServiceError::Forbidden {
        field: None,
        message: match kind {
            CredentialKind::ApiKey => "members change only the API keys they created",
            CredentialKind::ProjectToken => "members change only the project tokens they created",
            // Admin keys are managed by admin keys only, never by a person's role.
            CredentialKind::AdminKey => "admin keys are changed by admin keys only",
        },
    }
}

/// Refuses a project out of the caller's reach, live or not (a token of a deleted project is
/// still revoked by its id).
fn within_reach(caller: &Caller, project: Option<ProjectId>) -> Result<(), ServiceError> {
    match project {
        Some(project) if !caller.reach.allows(project) => Err(ServiceError::NotFound("project")),
        _ => Ok(()),
    }
}

/// A page of the caller's API keys, or of a project's tokens (a live project within reach).
pub async fn list(
    state: &AppState,
    caller: &Caller,
    filter: &CredentialFilter,
    page: Page,
) -> Result<List<CredentialEntry>, ServiceError> {
    if let Some(project) = filter.project {
        super::projects::get(state, caller, project).await?;
    }
    let paged = state
        .store
        .list_credentials(caller.organization_id, filter, page)
        .await?;
    let now = state.config.clock.now();
    let policy = policy_of(state, caller.organization_id).await?;
    Ok(List::from_paged(
        paged,
        |record| record.id.to_string(),
        |record| CredentialEntry::new(caller, record, state, now, &policy),
    ))
}

/// The credential `id` of the organization, if it belongs to `project` (`None`: an API key)
/// and `project` is within reach.
async fn find(
    state: &AppState,
    caller: &Caller,
    id: CredentialId,
    project: Option<ProjectId>,
) -> Result<CredentialEntry, ServiceError> {
    within_reach(caller, project)?;
    let record = state
        .store
        .get_credential(caller.organization_id, id)
        .await?
        .filter(|record| record.project_id == project)
        .ok_or(ServiceError::NotFound(id.kind().label()))?;
    let policy = policy_of(state, caller.organization_id).await?;
    let now = state.config.clock.now();
    Ok(CredentialEntry::new(caller, record, state, now, &policy))
}

/// The credential `id` (of `project`, a live project within reach, if a token).
pub async fn show(
    state: &AppState,
    caller: &Caller,
    id: CredentialId,
    project: Option<ProjectId>,
) -> Result<CredentialEntry, ServiceError> {
    if let Some(project) = project {
        super::projects::get(state, caller, project).await?;
    }
    find(state, caller, id, project).await
}

/// The organization's policy for new credentials.
async fn policy_of(
    state: &AppState,
    organization: OrganizationId,
) -> Result<OrganizationPolicy, ServiceError> {
    Ok(state
        .store
        .get_organization(organization)
        .await?
        .map(|record| record.policy)
        .unwrap_or_default())
}

/// As [`show`], with the credential's last client addresses.
pub async fn show_with_addresses(
    state: &AppState,
    caller: &Caller,
    id: CredentialId,
    project: Option<ProjectId>,
) -> Result<CredentialView, ServiceError> {
    let mut view = show(state, caller, id, project).await?.view;
    view.last_addresses = Some(addresses(state, caller, id).await?);
    Ok(view)
}

/// The credential's last client addresses, most recent first.
pub async fn addresses(
    state: &AppState,
    caller: &Caller,
    id: CredentialId,
) -> Result<Vec<AddressView>, ServiceError> {
    Ok(state
        .store
        .credential_addresses(caller.organization_id, id)
        .await?
        .into_iter()
        .map(|(ip, last_used_at)| AddressView { ip, last_used_at })
        .collect())
}

/// Revokes at once and for good. Revoking a revoked credential changes nothing and succeeds.
/// A token is revoked through its own project, live or deleted.
pub async fn revoke(
    state: &AppState,
    caller: &Caller,
    id: CredentialId,
    project: Option<ProjectId>,
) -> Result<(), ServiceError> {
    let entry = find(state, caller, id, project).await?;
    if entry.view.status == CredentialStatus::Revoked {
        return Ok(());
    }
    if !entry.allowed.change {
        return Err(only_their_own(id.kind()));
    }
    let record = state
        .store
        .revoke_credential(
            &caller.audit,
            caller.organization_id,
            id,
            state.config.clock.now(),
        )
        .await?
        .ok_or(ServiceError::NotFound(id.kind().label()))?;
    // Committed: now make every verification on this node see it.
    state.verifier.invalidate(&record.digest);
    Ok(())
}

/// A limit the caller may set on a credential: any, unless the caller is limited itself;
/// then one no looser than its own.
fn check_rate_limit_grant(caller: &Caller, asked: Option<RateLimit>) -> Result<(), ServiceError> {
    match (caller.grants.rate_limit, asked) {
        (Some(cap), asked) if asked.is_none_or(|asked| !asked.is_within(cap)) => {
            Err(ServiceError::invalid(
                "rate_limit",
                format!(
                    "must be set and no looser than {} requests per {} seconds, the creating \
                     credential's own limit",
                    cap.requests, cap.per_seconds
                ),
            ))
        }
        _ => Ok(()),
    }
}

/// Ranges the caller may limit a credential to: any (or none), unless the caller is limited
/// itself; then ranges inside its own.
fn check_network_grant(caller: &Caller, asked: Option<&Networks>) -> Result<(), ServiceError> {
    match (&caller.grants.networks, asked) {
        (Some(own), asked) if asked.is_none_or(|asked| !asked.is_within(own)) => {
            Err(ServiceError::invalid(
                "allowed_cidrs",
                format!("must be set and inside the creating credential's own ranges ({own})"),
            ))
        }
        _ => Ok(()),
    }
}

/// Renames a credential or changes its rate limit, networks, external id or meta; takes
/// effect on the next request. A credential cannot change its own limits, a limited one sets only limits within
/// its own, and a member changes only what they created.
pub async fn update(
    state: &AppState,
    caller: &Caller,
    id: CredentialId,
    project: Option<ProjectId>,
    changes: CredentialChanges,
) -> Result<CredentialView, ServiceError> {
    let itself = caller.actor == CallerKind::Credential { id };
    if let Some(asked) = changes.rate_limit {
        if itself {
            return Err(ServiceError::invalid(
                "rate_limit",
                "a credential cannot change its own rate limit",
            ));
        }
        check_rate_limit_grant(caller, asked)?;
    }
    if let Some(asked) = &changes.allowed_cidrs {
        if itself {
            return Err(ServiceError::invalid(
                "allowed_cidrs",
                "a credential cannot change its own allowed networks",
            ));
        }
        check_network_grant(caller, asked.as_ref())?;
    }
    if changes.credits.is_some() && itself {
        return Err(ServiceError::invalid(
            "credits",
            "a credential cannot change its own credits",
        ));
    }
    let entry = show(state, caller, id, project).await?;
    if !entry.allowed.change {
        return Err(only_their_own(id.kind()));
    }
    let organization = caller.organization_id;
    let record = state
        .store
        .update_credential(&caller.audit, organization, id, changes)
        .await?
        .ok_or(ServiceError::NotFound(id.kind().label()))?;
    state.verifier.invalidate(&record.digest);
    let policy = policy_of(state, organization).await?;
    Ok(CredentialView::new(
        record,
        state,
        state.config.clock.now(),
        &policy,
    ))
}

/// Each scope that usable credentials (neither revoked nor expired) hold but the catalog in
/// force does not define, with how many hold it, by name.
pub async fn unknown_scope_holders(state: &AppState) -> Result<Vec<(String, u64)>, ServiceError> {
    let usage = state.store.scope_usage(state.config.clock.now()).await?;
    let mut unknown = std::collections::BTreeMap::<String, u64>::new();
    for (names, holders) in &usage {
        for name in state.config.scopes.unknown(names) {
            *unknown.entry(name.to_owned()).or_default() += holders;
        }
    }
    Ok(unknown.into_iter().collect())
}
