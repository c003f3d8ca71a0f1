//! Limits shared by an identity: every credential of an organization that carries one external
//! id. Their rate limit's state is a bucket of `rate_buckets` and their credits a balance of
//! `credit_balances`, both named by the limits' id; every credential read carries them (see
//! `select_credentials!`), and every node forgets the identity's credentials when they change.

use keyward_core::{CredentialId, ExternalId, KeyDigest, OrganizationId, Timestamp};
use uuid::Uuid;

use super::{Columns, Query, Read, Write, locking};
use crate::decode::{self, timestamp};
use crate::{
    CreditOwner, IdentityLimits, IdentityLimitsRecord, KeyChange, KeyChangeKind, StoreError,
};

/// The row, without its credits.
struct Row {
    id: Uuid,
    rate_limit: Option<keyward_core::RateLimit>,
    created_at: Timestamp,
    updated_at: Timestamp,
}

fn row(columns: &dyn Columns) -> Result<Row, StoreError> {
    Ok(Row {
        id: columns.uuid("identity_id")?,
        rate_limit: decode::rate_limit(
            columns.opt_int("identity_rate_limit_requests")?,
            columns.opt_int("identity_rate_limit_per_seconds")?,
        )?,
        created_at: timestamp(columns.int("identity_created_at")?),
        updated_at: timestamp(columns.int("identity_updated_at")?),
    })
}

async fn find(
    db: &mut impl Read,
    organization: OrganizationId,
    external_id: &ExternalId,
) -> Result<Option<Row>, StoreError> {
    let query = Query::new(
        "SELECT identity_id, identity_rate_limit_requests, identity_rate_limit_per_seconds, \
         identity_created_at, identity_updated_at FROM identity_limits \
         WHERE identity_organization_id = $1 AND identity_external_id = $2",
    )
    .bind(organization.as_uuid())
    .bind(external_id.as_str());
    db.optional(query, row).await
}

/// Locks the organization's row until the transaction ends (first, before any row of the
/// identity's, so that changes of it never deadlock), so that no credential comes to carry
/// `external_id` (a creation, or a change of external id, which lock it too) between
/// the change of the identity's limits and the list of credentials every node forgets.
pub(crate) async fn lock_organization(
    tx: &mut impl Write,
    organization: OrganizationId,
) -> Result<(), StoreError> {
    let query = locking!("FOR UPDATE", "SELECT 1 FROM organizations WHERE id = $1")
        .bind(organization.as_uuid());
    tx.optional(query, super::exists).await?;
    Ok(())
}

/// The identity's limits with what is left of their credits (refilled if due).
pub(crate) async fn get(
    tx: &mut impl Write,
    organization: OrganizationId,
    external_id: &ExternalId,
) -> Result<Option<IdentityLimitsRecord>, StoreError> {
    let Some(found) = find(tx, organization, external_id).await? else {
        return Ok(None);
    };
    let credits = super::credits::current(tx, CreditOwner::Identity(found.id)).await?;
    Ok(Some(IdentityLimitsRecord {
        id: found.id,
        organization_id: organization,
        external_id: external_id.clone(),
        rate_limit: found.rate_limit,
        credits,
        created_at: found.created_at,
        updated_at: found.updated_at,
    }))
}

/// Share-locks the organization's row until the transaction ends, for a change of a
/// credential's external id: a change of the identity's limits waits for it, or it for that.
pub(crate) async fn hold_organization(
    tx: &mut impl Write,
    organization: OrganizationId,
) -> Result<(), StoreError> {
    let query = locking!("FOR SHARE", "SELECT 1 FROM organizations WHERE id = $1")
        .bind(organization.as_uuid());
    tx.optional(query, super::exists).await?;
    Ok(())
}

/// Sets the identity's limits (made if it had none): the rate limit in place (its state
/// carries on), the credits in a new generation. Returns them, and the digests of the
/// credentials they apply to, which every node forgets.
pub(crate) async fn set(
    tx: &mut impl Write,
    organization: OrganizationId,
    external_id: &ExternalId,
    limits: IdentityLimits,
) -> Result<(IdentityLimitsRecord, Vec<KeyDigest>), StoreError> {
    let now = tx.now();
    let requests = limits.rate_limit.map(|limit| i64::from(limit.requests));
    let per_seconds = limits.rate_limit.map(|limit| i64::from(limit.per_seconds));
    lock_organization(tx, organization).await?;
    // Made or changed in one statement (a concurrent first setting or removal is waited for).
    let upsert = Query::new(
        "INSERT INTO identity_limits (identity_id, identity_organization_id, \
         identity_external_id, identity_rate_limit_requests, identity_rate_limit_per_seconds, \
         identity_created_at, identity_updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6) \
         ON CONFLICT (identity_organization_id, identity_external_id) DO UPDATE SET \
         identity_rate_limit_requests = excluded.identity_rate_limit_requests, \
         identity_rate_limit_per_seconds = excluded.identity_rate_limit_per_seconds, \
         identity_updated_at = excluded.identity_updated_at RETURNING identity_id",
    )
    .bind(Uuid::now_v7())
    .bind(organization.as_uuid())
    .bind(external_id.as_str())
    .bind(requests)
    .bind(per_seconds)
    .bind(now.unix_seconds());
    let id = tx
        .optional(upsert, |row| row.uuid("identity_id"))
        .await?
        .ok_or_else(|| decode::corrupt("identity limits just written"))?;
    super::credits::set(tx, CreditOwner::Identity(id), limits.credits).await?;
    let affected = forget_credentials(tx, organization, external_id).await?;
    let record = get(tx, organization, external_id)
        .await?
        .ok_or_else(|| decode::corrupt("identity limits just written"))?;
    Ok((record, affected))
}

/// Removes the identity's limits; what they were (`None` if there were none), and the
/// digests of the credentials they applied to.
pub(crate) async fn delete(
    tx: &mut impl Write,
    organization: OrganizationId,
    external_id: &ExternalId,
) -> Result<Option<(IdentityLimitsRecord, Vec<KeyDigest>)>, StoreError> {
    lock_organization(tx, organization).await?;
    let Some(record) = get(tx, organization, external_id).await? else {
        return Ok(None);
    };
    // A take waiting on the balance finds no row: no credits, which is what they now are.
    tx.execute(Query::new("DELETE FROM credit_balances WHERE credential_id = $1").bind(record.id))
        .await?;
    let delete = Query::new("DELETE FROM identity_limits WHERE identity_id = $1").bind(record.id);
    tx.execute(delete).await?;
    tx.execute(
        Query::new("DELETE FROM rate_buckets WHERE bucket = $1")
            .bind(crate::RateBucket::identity(record.id).as_str().to_owned()),
    )
    .await?;
    let affected = forget_credentials(tx, organization, external_id).await?;
    Ok(Some((record, affected)))
}

/// The digests of the organization's credentials that carry `external_id`, each to be
/// forgotten by every node once the transaction commits.
async fn forget_credentials(
    tx: &mut impl Write,
    organization: OrganizationId,
    external_id: &ExternalId,
) -> Result<Vec<KeyDigest>, StoreError> {
    let query = Query::new(
        "SELECT id, kind, secret_sha256 FROM credentials \
         WHERE organization_id = $1 AND external_id = $2",
    )
    .bind(organization.as_uuid())
    .bind(external_id.as_str());
    let credentials = tx
        .all(query, |row| {
            let kind = decode::kind(&row.text("kind")?)?;
            Ok((
                CredentialId::from_uuid(row.uuid("id")?, kind),
                decode::digest(row.bytes("secret_sha256")?)?,
            ))
        })
        .await?;
    for (credential, digest) in &credentials {
        tx.forget_on_commit(KeyChange {
            organization,
            credential: *credential,
            digest,
            kind: KeyChangeKind::IdentityLimits,
        })
        .await?;
    }
    Ok(credentials.into_iter().map(|(_, digest)| digest).collect())
}

/// Whether `credential` is held by any limit (its own rate limit or credits, or its
/// identity's): such a credential cannot change an identity's limits, which could free the
/// credentials it shares them with, or itself. (The organization's row, locked by the change,
/// keeps a credential from coming to carry an external id meanwhile.)
pub(crate) async fn is_limited(
    tx: &mut impl Write,
    credential: CredentialId,
) -> Result<bool, StoreError> {
    let query = Query::new(
        "SELECT 1 FROM credentials c WHERE c.id = $1 AND (c.rate_limit_requests IS NOT NULL \
         OR EXISTS (SELECT 1 FROM credit_balances b WHERE b.credential_id = c.id \
         AND b.remaining IS NOT NULL) \
         OR EXISTS (SELECT 1 FROM identity_limits WHERE identity_organization_id = \
         c.organization_id AND identity_external_id = c.external_id))",
    )
    .bind(credential.as_uuid());
    Ok(tx.optional(query, super::exists).await?.is_some())
}
