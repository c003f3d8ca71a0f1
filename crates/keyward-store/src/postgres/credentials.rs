//! API keys and project tokens: one table, told apart by `kind`. Every change that must
//! reach other nodes' caches publishes the credential's digest with `pg_notify` inside its
//! own transaction, so the notification goes out exactly when the change commits.

use keyward_core::{CredentialId, KeyDigest, Name, OrganizationId, ProjectId, Timestamp, UserId};
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Postgres, Row, Transaction};
use uuid::Uuid;

use super::{INVALIDATION_CHANNEL, timestamp};
use crate::decode;
use crate::error::credential_insert_error;
use crate::{
    Creator, CredentialChanges, CredentialFilter, CredentialRecord, NewCredential, Page, Paged,
    StoreError, UsageUpdate,
};

macro_rules! select_credentials {
    ($($tail:literal)*) => {
        concat!(
            "SELECT id, kind, organization_id, project_id, name, secret_sha256, hint, scopes, \
             created_at, expires_at, ",
            // A token of a deleted project reads as revoked when its project was deleted,
            // whatever its own row says.
            "COALESCE(revoked_at, (SELECT deleted_at FROM projects \
             WHERE projects.id = credentials.project_id)) AS revoked_at, ",
            "last_used_at, rate_limit_requests, rate_limit_per_seconds, created_by_user \
             FROM credentials ",
            $($tail),*
        )
    };
}

fn from_row(row: &PgRow) -> Result<CredentialRecord, StoreError> {
    let kind = decode::kind(&row.try_get::<String, _>("kind")?)?;
    let scopes = decode::scopes(&row.try_get::<String, _>("scopes")?)?;
    let rate_limit = decode::rate_limit(
        row.try_get("rate_limit_requests")?,
        row.try_get("rate_limit_per_seconds")?,
    )?;
    Ok(CredentialRecord {
        id: CredentialId::from_uuid(row.try_get("id")?, kind),
        digest: decode::digest(row.try_get("secret_sha256")?)?,
        organization_id: OrganizationId::from_uuid(row.try_get("organization_id")?),
        project_id: row
            .try_get::<Option<Uuid>, _>("project_id")?
            .map(ProjectId::from_uuid),
        name: Name::from_trusted(row.try_get("name")?),
        hint: row.try_get("hint")?,
        scopes,
        created_at: timestamp(row.try_get("created_at")?),
        expires_at: row.try_get::<Option<i64>, _>("expires_at")?.map(timestamp),
        revoked_at: row.try_get::<Option<i64>, _>("revoked_at")?.map(timestamp),
        last_used_at: row
            .try_get::<Option<i64>, _>("last_used_at")?
            .map(timestamp),
        rate_limit,
        created_by_user: row
            .try_get::<Option<Uuid>, _>("created_by_user")?
            .map(UserId::from_uuid),
    })
}

/// Tells every node to forget `digest`, when the transaction commits.
pub(super) async fn notify(
    tx: &mut Transaction<'static, Postgres>,
    digest: &KeyDigest,
) -> Result<(), StoreError> {
    let hex: String = digest
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(INVALIDATION_CHANNEL)
        .bind(hex)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

pub(super) async fn find_by_digest(
    pool: &PgPool,
    digest: &KeyDigest,
) -> Result<Option<CredentialRecord>, StoreError> {
    sqlx::query(select_credentials!("WHERE secret_sha256 = $1"))
        .bind(digest.as_bytes().to_vec())
        .fetch_optional(pool)
        .await?
        .as_ref()
        .map(from_row)
        .transpose()
}

pub(super) async fn insert(
    tx: &mut Transaction<'static, Postgres>,
    new: &NewCredential,
) -> Result<CredentialRecord, StoreError> {
    let (by_user, by_credential) = match new.created_by {
        Creator::User(user) => (Some(user.as_uuid()), None),
        Creator::Credential(credential) => (None, Some(credential.as_uuid())),
    };
    sqlx::query(
        "INSERT INTO credentials (id, kind, organization_id, project_id, name, secret_sha256, \
         hint, scopes, created_at, expires_at, created_by_user, created_by_credential, \
         rate_limit_requests, rate_limit_per_seconds) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(new.id.as_uuid())
    .bind(new.id.kind().as_str())
    .bind(new.organization_id.as_uuid())
    .bind(new.project_id.map(|p| p.as_uuid()))
    .bind(new.name.as_str())
    .bind(new.digest.as_bytes().to_vec())
    .bind(&new.hint)
    .bind(new.scopes.to_storage())
    .bind(new.created_at.unix_seconds())
    .bind(new.expires_at.map(Timestamp::unix_seconds))
    .bind(by_user)
    .bind(by_credential)
    .bind(new.rate_limit.map(|limit| i64::from(limit.requests)))
    .bind(new.rate_limit.map(|limit| i64::from(limit.per_seconds)))
    .execute(&mut **tx)
    .await
    .map_err(credential_insert_error)?;
    Ok(CredentialRecord {
        id: new.id,
        digest: new.digest,
        organization_id: new.organization_id,
        project_id: new.project_id,
        name: new.name.clone(),
        hint: new.hint.clone(),
        scopes: new.scopes,
        created_at: new.created_at,
        expires_at: new.expires_at,
        revoked_at: None,
        last_used_at: None,
        rate_limit: new.rate_limit,
        created_by_user: by_user.map(UserId::from_uuid),
    })
}

pub(super) async fn list(
    pool: &PgPool,
    organization: OrganizationId,
    filter: CredentialFilter,
    page: Page,
) -> Result<Paged<CredentialRecord>, StoreError> {
    let rows = sqlx::query(select_credentials!(
        "WHERE organization_id = $1 AND kind = $2 AND ($3::uuid IS NULL OR project_id = $3) "
        "AND ($4::uuid IS NULL OR id < $4) ORDER BY id DESC LIMIT $5"
    ))
    .bind(organization.as_uuid())
    .bind(filter.kind.as_str())
    .bind(filter.project.map(|p| p.as_uuid()))
    .bind(page.before)
    .bind(page.fetch_limit())
    .fetch_all(pool)
    .await?;
    let items = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
    Ok(Paged::from_rows(items, page))
}

async fn select_one<'e, E: sqlx::PgExecutor<'e>>(
    executor: E,
    organization: OrganizationId,
    id: CredentialId,
) -> Result<Option<CredentialRecord>, StoreError> {
    sqlx::query(select_credentials!(
        "WHERE organization_id = $1 AND id = $2 AND kind = $3"
    ))
    .bind(organization.as_uuid())
    .bind(id.as_uuid())
    .bind(id.kind().as_str())
    .fetch_optional(executor)
    .await?
    .as_ref()
    .map(from_row)
    .transpose()
}

pub(super) async fn get(
    pool: &PgPool,
    organization: OrganizationId,
    id: CredentialId,
) -> Result<Option<CredentialRecord>, StoreError> {
    select_one(pool, organization, id).await
}

pub(super) async fn update(
    tx: &mut Transaction<'static, Postgres>,
    organization: OrganizationId,
    id: CredentialId,
    changes: CredentialChanges,
) -> Result<Option<CredentialRecord>, StoreError> {
    let (set_limit, limit) = match changes.rate_limit {
        None => (false, None),
        Some(limit) => (true, limit),
    };
    sqlx::query(
        "UPDATE credentials SET name = COALESCE($4, name), \
         rate_limit_requests = CASE WHEN $5 THEN $6 ELSE rate_limit_requests END, \
         rate_limit_per_seconds = CASE WHEN $5 THEN $7 ELSE rate_limit_per_seconds END \
         WHERE organization_id = $1 AND id = $2 AND kind = $3",
    )
    .bind(organization.as_uuid())
    .bind(id.as_uuid())
    .bind(id.kind().as_str())
    .bind(changes.name.as_ref().map(Name::as_str))
    .bind(set_limit)
    .bind(limit.map(|l| i64::from(l.requests)))
    .bind(limit.map(|l| i64::from(l.per_seconds)))
    .execute(&mut **tx)
    .await?;
    let record = select_one(&mut **tx, organization, id).await?;
    if let Some(record) = &record {
        notify(tx, &record.digest).await?;
    }
    Ok(record)
}

pub(super) async fn revoke(
    tx: &mut Transaction<'static, Postgres>,
    organization: OrganizationId,
    id: CredentialId,
    at: Timestamp,
) -> Result<Option<CredentialRecord>, StoreError> {
    sqlx::query(
        "UPDATE credentials SET revoked_at = $1 \
         WHERE organization_id = $2 AND id = $3 AND kind = $4 AND revoked_at IS NULL",
    )
    .bind(at.unix_seconds())
    .bind(organization.as_uuid())
    .bind(id.as_uuid())
    .bind(id.kind().as_str())
    .execute(&mut **tx)
    .await?;
    let record = select_one(&mut **tx, organization, id).await?;
    if let Some(record) = &record {
        notify(tx, &record.digest).await?;
    }
    Ok(record)
}

pub(super) async fn record_usage(
    tx: &mut Transaction<'static, Postgres>,
    batch: &[UsageUpdate],
) -> Result<u64, StoreError> {
    let mut changed = 0;
    for update in batch {
        let result = sqlx::query(
            "UPDATE credentials SET last_used_at = $1, last_used_ip = $2 \
             WHERE id = $3 AND (last_used_at IS NULL OR last_used_at < $1)",
        )
        .bind(update.at.unix_seconds())
        .bind(update.ip.map(|ip| ip.to_string()))
        .bind(update.credential.as_uuid())
        .execute(&mut **tx)
        .await?;
        changed += result.rows_affected();
    }
    Ok(changed)
}
