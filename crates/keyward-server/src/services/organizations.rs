//! The installation's organizations, as the platform's backend manages them with an admin
//! key: create one per customer (with the platform's id for it, its owner and its policy),
//! list and find them, rename, re-identify, suspend, resume and delete them, and add people.
//! Every change is in the organization's audit log and the installation's.

use keyward_core::{Email, ExternalId, Name, OrganizationId, OrganizationRef, Role, UserId};
use keyward_store::{
    NewOrganization, NewOwner, OrganizationChanges, OrganizationFilter, OrganizationRecord, Page,
    PolicyChanges, StoreError,
};

use super::{Conflict, ServiceError, organization::MAX_LIFETIME_DAYS};
use crate::AppState;
use crate::pagination::List;
use keyward_store::AuditContext;

/// A person the platform names: found by email, else created without a password.
pub struct PersonInput {
    pub email: Email,
    pub external_id: Option<ExternalId>,
    pub name: Option<Name>,
}

/// A new organization.
pub struct OrganizationInput {
    pub name: Name,
    pub external_id: Option<ExternalId>,
    pub owner: Option<PersonInput>,
    pub policy: PolicyChanges,
}

/// Refuses a maximum lifetime out of range.
pub fn check_policy(policy: &PolicyChanges) -> Result<(), ServiceError> {
    match policy.max_lifetime_days {
        Some(Some(days)) if !(1..=MAX_LIFETIME_DAYS).contains(&days) => Err(ServiceError::invalid(
            "policy.max_lifetime_days",
            "must be between 1 and 3650, or null for no maximum",
        )),
        _ => Ok(()),
    }
}

/// The person the platform's id names, else the account with the person's email, else a new
/// one the platform provisions.
async fn person(state: &AppState, input: PersonInput) -> Result<NewOwner, ServiceError> {
    if let Some(external_id) = &input.external_id
        && let Some(user) = state.store.find_user_by_external_id(external_id).await?
    {
        return Ok(NewOwner::Existing(user.id));
    }
    Ok(match state.store.find_user_by_email(&input.email).await? {
        Some(user) => NewOwner::Existing(user.id),
        None => NewOwner::Provision {
            id: UserId::generate(),
            email: input.email,
            external_id: input.external_id,
            name: input.name,
        },
    })
}

fn external_id_taken(error: StoreError) -> ServiceError {
    match error {
        StoreError::Conflict("organization external id") => {
            ServiceError::Conflict(Conflict::ExternalIdTaken)
        }
        other => other.into(),
    }
}

pub async fn create(
    state: &AppState,
    audit: &AuditContext,
    input: OrganizationInput,
) -> Result<OrganizationRecord, ServiceError> {
    check_policy(&input.policy)?;
    let owner = match input.owner {
        Some(owner) => Some(person(state, owner).await?),
        None => None,
    };
    let mut organization = NewOrganization {
        id: OrganizationId::generate(),
        name: input.name,
        created_at: state.config.clock.now(),
        external_id: input.external_id,
        policy: input.policy.apply(Default::default()),
        unique_name: false,
    };
    let owner_email = match &owner {
        Some(NewOwner::Provision { email, .. }) => Some(email.clone()),
        _ => None,
    };
    match state
        .store
        .provision_organization(audit, organization.clone(), owner)
        .await
    {
        // Someone made an account with the owner's email meanwhile: it becomes the owner.
        Err(StoreError::Conflict("user")) => {
            let email = owner_email.ok_or(ServiceError::NotFound("user"))?;
            let user = state
                .store
                .find_user_by_email(&email)
                .await?
                .ok_or(ServiceError::NotFound("user"))?;
            organization.id = OrganizationId::generate();
            state
                .store
                .provision_organization(audit, organization, Some(NewOwner::Existing(user.id)))
                .await
                .map_err(external_id_taken)
        }
        other => other.map_err(external_id_taken),
    }
}

/// The live organization a path names (`org_…` or `ext:<external id>`); 404 otherwise.
pub async fn find(state: &AppState, name: &str) -> Result<OrganizationRecord, ServiceError> {
    let found = match OrganizationRef::parse(name) {
        Some(reference) => state.store.find_organization(&reference).await?,
        None => None,
    };
    found.ok_or(ServiceError::NotFound("organization"))
}

pub async fn list(
    state: &AppState,
    filter: &OrganizationFilter,
    page: Page,
) -> Result<List<OrganizationRecord>, ServiceError> {
    let paged = state.store.list_organizations(filter, page).await?;
    Ok(List::from_paged(
        paged,
        |record| record.id.to_string(),
        |record| record,
    ))
}

/// Applies `changes`; a suspension or resumption takes effect on every node before this
/// returns (this node forgets the credentials itself; the store tells the others).
pub async fn update(
    state: &AppState,
    audit: &AuditContext,
    id: OrganizationId,
    changes: OrganizationChanges,
) -> Result<OrganizationRecord, ServiceError> {
    check_policy(&changes.policy)?;
    let change = state
        .store
        .update_organization(audit, id, changes, state.config.clock.now())
        .await
        .map_err(external_id_taken)?
        .ok_or(ServiceError::NotFound("organization"))?;
    for digest in &change.affected {
        state.verifier.invalidate(digest);
    }
    Ok(change.record)
}

/// Deletes the organization: every credential revoked (on every node before this returns),
/// projects and instances deleted, members removed; its audit log stays.
pub async fn delete(
    state: &AppState,
    audit: &AuditContext,
    id: OrganizationId,
) -> Result<(), ServiceError> {
    let change = state
        .store
        .delete_organization(audit, id, state.config.clock.now())
        .await?
        .ok_or(ServiceError::NotFound("organization"))?;
    for digest in &change.affected {
        state.verifier.invalidate(digest);
    }
    Ok(())
}

/// Adds the person (any role: the installation stands above the organization), creating
/// them without a password if no account has the email.
pub async fn add_member(
    state: &AppState,
    audit: &AuditContext,
    id: OrganizationId,
    person_input: PersonInput,
    role: Role,
) -> Result<UserId, ServiceError> {
    let email = person_input.email.clone();
    let person = person(state, person_input).await?;
    let now = state.config.clock.now();
    match state
        .store
        .add_organization_member(audit, id, person, role, now)
        .await
    {
        Err(StoreError::Conflict("member")) => Err(ServiceError::Conflict(Conflict::AlreadyMember)),
        // The account was made meanwhile (by another request): add it as it is.
        Err(StoreError::Conflict("user")) => {
            let user = state
                .store
                .find_user_by_email(&email)
                .await?
                .ok_or(ServiceError::NotFound("user"))?;
            state
                .store
                .add_organization_member(audit, id, NewOwner::Existing(user.id), role, now)
                .await
                .map_err(|error| match error {
                    StoreError::Conflict(_) => ServiceError::Conflict(Conflict::AlreadyMember),
                    other => other.into(),
                })
        }
        other => Ok(other?),
    }
}
