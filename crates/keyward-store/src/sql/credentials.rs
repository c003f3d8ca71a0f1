//! API keys and project tokens: one table, told apart by `kind`. Every change that other
//! nodes' caches must follow calls [`Write::forget_on_commit`] inside its own transaction.

use keyward_core::{
    CredentialId, ExternalId, KeyDigest, Meta, Metadata, Name, Networks, OrganizationId, ProjectId,
    ScopeNames, Timestamp, UserId,
};

use super::{Columns, Query, Read, Write, locking};
use crate::decode::{self, corrupt, timestamp};
use crate::error::credential_insert_error;
use crate::{
    Creator, CredentialChanges, CredentialFilter, CredentialRecord, CreditChange, KeyChange,
    KeyChangeKind, NewCredential, Page, Paged, Rotation, StoreError, UsageUpdate,
};

macro_rules! select_credentials {
    ($($tail:expr),+) => {
        concat!(
            "SELECT id, kind, organization_id, project_id, name, secret_sha256, hint, scopes, \
             created_at, expires_at, ",
            // A token of a deleted project reads as revoked when its project was deleted,
            // whatever its own row says.
            "COALESCE(revoked_at, (SELECT deleted_at FROM projects \
             WHERE projects.id = credentials.project_id)) AS revoked_at, ",
            "last_used_at, rate_limit_requests, rate_limit_per_seconds, allowed_cidrs, \
             created_by_user, rotation_ends_at, rotated_to, rotated_from, exposed_at, \
             exposed_source, external_id, meta, \
             (SELECT suspended_at FROM organizations \
             WHERE organizations.id = credentials.organization_id) AS organization_suspended_at, \
             cb.remaining AS credits_remaining, cb.refill_amount AS credits_refill_amount, \
             cb.refill_every AS credits_refill_every, cb.refill_on_day AS credits_refill_on_day, \
             cb.generation AS credits_generation, cb.period AS credits_period, \
             identity_id, identity_rate_limit_requests, identity_rate_limit_per_seconds, \
             ib.remaining AS identity_credits_remaining, \
             ib.refill_amount AS identity_credits_refill_amount, \
             ib.refill_every AS identity_credits_refill_every, \
             ib.refill_on_day AS identity_credits_refill_on_day, \
             ib.generation AS identity_credits_generation, ib.period AS identity_credits_period \
             FROM credentials LEFT JOIN credit_balances cb ON cb.credential_id = credentials.id ",
            // The identity's limits: their columns are named apart from the credentials' (the
            // tail may name those unqualified).
            "LEFT JOIN identity_limits ON identity_organization_id = credentials.organization_id \
             AND identity_external_id = credentials.external_id \
             LEFT JOIN credit_balances ib ON ib.credential_id = identity_id ",
            $($tail),+
        )
    };
}
pub(crate) use select_credentials;

/// The `credentials` row.
pub(crate) fn decode(row: &dyn Columns) -> Result<CredentialRecord, StoreError> {
    let kind = decode::kind(&row.text("kind")?)?;
    Ok(CredentialRecord {
        id: CredentialId::from_uuid(row.uuid("id")?, kind),
        digest: decode::digest(row.bytes("secret_sha256")?)?,
        rate_limit: decode::rate_limit(
            row.opt_int("rate_limit_requests")?,
            row.opt_int("rate_limit_per_seconds")?,
        )?,
        allowed_cidrs: row
            .opt_text("allowed_cidrs")?
            .map(|text| Networks::from_storage(&text).map_err(|_| corrupt("credential networks")))
            .transpose()?,
        organization_id: OrganizationId::from_uuid(row.uuid("organization_id")?),
        project_id: row.opt_uuid("project_id")?.map(ProjectId::from_uuid),
        name: Name::from_trusted(row.text("name")?),
        hint: row.text("hint")?,
        scopes: decode::scopes(&row.text("scopes")?)?,
        created_at: timestamp(row.int("created_at")?),
        expires_at: row.opt_int("expires_at")?.map(timestamp),
        revoked_at: row.opt_int("revoked_at")?.map(timestamp),
        last_used_at: row.opt_int("last_used_at")?.map(timestamp),
        created_by_user: row.opt_uuid("created_by_user")?.map(UserId::from_uuid),
        rotation: match (
            row.opt_int("rotation_ends_at")?,
            row.opt_uuid("rotated_to")?,
        ) {
            (Some(ends_at), Some(replaced_by)) => Some(Rotation {
                ends_at: timestamp(ends_at),
                replaced_by: CredentialId::from_uuid(replaced_by, kind),
            }),
            _ => None,
        },
        rotated_from: row
            .opt_uuid("rotated_from")?
            .map(|id| CredentialId::from_uuid(id, kind)),
        exposure: match (row.opt_int("exposed_at")?, row.opt_text("exposed_source")?) {
            (Some(at), Some(source)) => Some(crate::Exposure {
                at: timestamp(at),
                source,
            }),
            _ => None,
        },
        metadata: Metadata {
            external_id: row.opt_text("external_id")?.map(ExternalId::from_trusted),
            meta: row.opt_text("meta")?.map(Meta::from_trusted),
        },
        organization_suspended: row.opt_int("organization_suspended_at")?.is_some(),
        credits: super::credits::stored(row, "credits_")?,
        identity_limits: match row.opt_uuid("identity_id")? {
            None => None,
            Some(id) => Some(crate::IdentityLimitsState {
                id,
                rate_limit: decode::rate_limit(
                    row.opt_int("identity_rate_limit_requests")?,
                    row.opt_int("identity_rate_limit_per_seconds")?,
                )?,
                credits: super::credits::stored(row, "identity_credits_")?,
            }),
        },
    })
}

pub(crate) async fn find_by_digest(
    db: &mut impl Read,
    digest: &KeyDigest,
) -> Result<Option<CredentialRecord>, StoreError> {
    let query = Query::new(select_credentials!("WHERE secret_sha256 = $1")).bind(digest);
    db.optional(query, decode).await
}

pub(crate) async fn insert(
    tx: &mut impl Write,
    new: &NewCredential,
) -> Result<CredentialRecord, StoreError> {
    insert_checked(tx, new, None).await
}

/// Inserts `new`, refusing it when a credential with credits creates it, unless that is
/// `successor_of` (a key rotating itself hands on only its own credits).
async fn insert_checked(
    tx: &mut impl Write,
    new: &NewCredential,
    successor_of: Option<CredentialId>,
) -> Result<CredentialRecord, StoreError> {
    let (by_user, by_credential) = match new.created_by {
        Creator::User(user) => (Some(user.as_uuid()), None),
        Creator::Host => (None, None),
        Creator::Credential(credential) => (None, Some(credential.as_uuid())),
    };
    if let Creator::Credential(creator) = new.created_by
        && Some(creator) != successor_of
    {
        super::credits::refuse_if_limited(tx, Some(creator)).await?;
    }
    let policy = super::organizations::active_policy(tx, new.organization_id).await?;
    if !policy.allows(new.created_at, new.expires_at) {
        return Err(StoreError::Policy(policy));
    }
    let query = Query::new(
        "INSERT INTO credentials (id, kind, organization_id, project_id, name, secret_sha256, \
         hint, scopes, created_at, expires_at, created_by_user, created_by_credential, \
         rate_limit_requests, rate_limit_per_seconds, rotated_from, allowed_cidrs, external_id, \
         meta) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
         $18)",
    )
    .bind(new.id.as_uuid())
    .bind(new.id.kind().as_str())
    .bind(new.organization_id.as_uuid())
    .bind(new.project_id.map(|p| p.as_uuid()))
    .bind(new.name.as_str())
    .bind(&new.digest)
    .bind(new.hint.as_str())
    .bind(new.scopes.to_storage())
    .bind(new.created_at.unix_seconds())
    .bind(new.expires_at.map(Timestamp::unix_seconds))
    .bind(by_user)
    .bind(by_credential)
    .bind(new.rate_limit.map(|limit| i64::from(limit.requests)))
    .bind(new.rate_limit.map(|limit| i64::from(limit.per_seconds)))
    .bind(new.rotated_from.map(|id| id.as_uuid()))
    .bind(new.allowed_cidrs.as_ref().map(Networks::to_storage))
    .bind(new.metadata.external_id.as_ref().map(ExternalId::as_str))
    .bind(new.metadata.meta.as_ref().map(Meta::as_str));
    tx.execute(query).await.map_err(credential_insert_error)?;
    if new.credits.is_some() {
        super::credits::set(tx, new.id, new.credits).await?;
    }
    Ok(CredentialRecord {
        id: new.id,
        digest: new.digest,
        rate_limit: new.rate_limit,
        allowed_cidrs: new.allowed_cidrs.clone(),
        organization_id: new.organization_id,
        project_id: new.project_id,
        name: new.name.clone(),
        hint: new.hint.clone(),
        scopes: new.scopes.clone(),
        created_at: new.created_at,
        expires_at: new.expires_at,
        revoked_at: None,
        last_used_at: None,
        created_by_user: by_user.map(UserId::from_uuid),
        rotation: None,
        rotated_from: new.rotated_from,
        exposure: None,
        metadata: new.metadata.clone(),
        // `active_policy` refused it otherwise.
        organization_suspended: false,
        credits: new.credits.map(|settings| crate::StoredCredits {
            settings,
            generation: 0,
            period: settings.period(new.created_at).0,
        }),
        // Read with the credential; not needed by those who insert it.
        identity_limits: None,
    })
}

/// Starts the rotation of the credential `old` (locked, live, not rotating) to `new`, which
/// is inserted: `old` works until `ends_at`. `None` when `old` is not one of the
/// organization's; `Conflict` when it is revoked or already rotating.
pub(crate) async fn rotate(
    tx: &mut impl Write,
    organization: OrganizationId,
    old: CredentialId,
    new: &NewCredential,
    ends_at: Timestamp,
) -> Result<Option<(CredentialRecord, CredentialRecord)>, StoreError> {
    lock(tx, organization, old).await?;
    let Some(before) = get(tx, organization, old).await? else {
        return Ok(None);
    };
    if before.revoked_at.is_some() || before.rotation.is_some() {
        return Err(StoreError::Conflict("rotation"));
    }
    let mut replacement = insert_checked(tx, new, Some(old)).await?;
    // Credits move to the successor: rotating never makes more of them.
    if let Some(credits) = super::credits::current(tx, old).await? {
        super::credits::set(tx, replacement.id, Some(credits.settings)).await?;
        super::credits::drain(tx, old).await?;
        replacement.credits = Some(crate::StoredCredits {
            settings: credits.settings,
            generation: 0,
            period: credits.period,
        });
    }
    let query = Query::new(
        "UPDATE credentials SET rotation_ends_at = $1, rotated_to = $2 \
         WHERE organization_id = $3 AND id = $4 AND revoked_at IS NULL \
         AND rotation_ends_at IS NULL",
    )
    .bind(ends_at.unix_seconds())
    .bind(replacement.id.as_uuid())
    .bind(organization.as_uuid())
    .bind(old.as_uuid());
    tx.execute(query).await?;
    let Some(rotated) = changed(tx, organization, old, KeyChangeKind::Rotated).await? else {
        return Ok(None);
    };
    Ok(Some((rotated, replacement)))
}

pub(crate) async fn list(
    db: &mut impl Read,
    organization: OrganizationId,
    filter: &CredentialFilter,
    page: Page,
) -> Result<Paged<CredentialRecord>, StoreError> {
    let query = Query::new(select_credentials!(
        "WHERE organization_id = $1 AND kind = $2 AND ($3 IS NULL OR project_id = $3) \
         AND ($4 IS NULL OR external_id = $4) AND ($5 IS NULL OR id < $5) \
         ORDER BY id DESC LIMIT $6"
    ))
    .bind(organization.as_uuid())
    .bind(filter.kind.as_str())
    .bind(filter.project.map(|p| p.as_uuid()))
    .bind(filter.external_id.as_ref().map(ExternalId::as_str));
    super::page(db, query, decode, page).await
}

pub(crate) async fn get(
    db: &mut impl Read,
    organization: OrganizationId,
    id: CredentialId,
) -> Result<Option<CredentialRecord>, StoreError> {
    let query = Query::new(select_credentials!(
        "WHERE organization_id = $1 AND id = $2 AND kind = $3"
    ))
    .bind(organization.as_uuid())
    .bind(id.as_uuid())
    .bind(id.kind().as_str());
    db.optional(query, decode).await
}

/// The credential with this id, whichever its organization.
pub(crate) async fn by_id(
    db: &mut impl Read,
    id: CredentialId,
) -> Result<Option<CredentialRecord>, StoreError> {
    let query = Query::new(select_credentials!("WHERE id = $1")).bind(id.as_uuid());
    db.optional(query, decode).await
}

/// Reads the credential again after a change and, if it exists, has every node forget it
/// and logs the change.
async fn changed(
    tx: &mut impl Write,
    organization: OrganizationId,
    id: CredentialId,
    kind: KeyChangeKind,
) -> Result<Option<CredentialRecord>, StoreError> {
    let record = get(tx, organization, id).await?;
    if let Some(record) = &record {
        tx.forget_on_commit(KeyChange {
            organization,
            credential: id,
            digest: &record.digest,
            kind,
        })
        .await?;
    }
    Ok(record)
}

/// Locks the credential's row until the transaction ends (PostgreSQL; SQLite has one
/// writer), so that what a change reads before it is what it changes.
pub(crate) async fn lock(
    tx: &mut impl Write,
    organization: OrganizationId,
    id: CredentialId,
) -> Result<(), StoreError> {
    let query = locking!(
        "FOR UPDATE",
        "SELECT 1 FROM credentials WHERE organization_id = $1 AND id = $2"
    )
    .bind(organization.as_uuid())
    .bind(id.as_uuid());
    tx.optional(query, super::exists).await?;
    Ok(())
}

pub(crate) async fn update(
    tx: &mut impl Write,
    organization: OrganizationId,
    id: CredentialId,
    changes: CredentialChanges,
) -> Result<Option<CredentialRecord>, StoreError> {
    let (set_limit, limit) = match changes.rate_limit {
        None => (false, None),
        Some(limit) => (true, limit),
    };
    let (set_networks, networks) = match changes.allowed_cidrs {
        None => (false, None),
        Some(networks) => (true, networks.as_ref().map(Networks::to_storage)),
    };
    let (set_external_id, external_id) = match &changes.external_id {
        None => (false, None),
        Some(id) => (true, id.as_ref().map(ExternalId::as_str)),
    };
    let (set_meta, meta) = match &changes.meta {
        None => (false, None),
        Some(meta) => (true, meta.as_ref().map(Meta::as_str)),
    };
    let query = Query::new(
        "UPDATE credentials SET name = COALESCE($4, name), \
         rate_limit_requests = CASE WHEN $5 THEN $6 ELSE rate_limit_requests END, \
         rate_limit_per_seconds = CASE WHEN $5 THEN $7 ELSE rate_limit_per_seconds END, \
         allowed_cidrs = CASE WHEN $8 THEN $9 ELSE allowed_cidrs END, \
         external_id = CASE WHEN $10 THEN $11 ELSE external_id END, \
         meta = CASE WHEN $12 THEN $13 ELSE meta END \
         WHERE organization_id = $1 AND id = $2 AND kind = $3",
    )
    .bind(organization.as_uuid())
    .bind(id.as_uuid())
    .bind(id.kind().as_str())
    .bind(changes.name.as_ref().map(Name::as_str))
    .bind(set_limit)
    .bind(limit.map(|l| i64::from(l.requests)))
    .bind(limit.map(|l| i64::from(l.per_seconds)))
    .bind(set_networks)
    .bind(networks)
    .bind(set_external_id)
    .bind(external_id)
    .bind(set_meta)
    .bind(meta);
    if tx.execute(query).await? == 0 {
        return Ok(None);
    }
    match changes.credits {
        None => {}
        Some(CreditChange::Set(credits)) => super::credits::set(tx, id, credits).await?,
        Some(CreditChange::Add(amount)) if !super::credits::add(tx, id, amount).await? => {
            return Err(StoreError::Invalid {
                field: "credits",
                message: "it has no credits to add to: set them with `remaining`",
            });
        }
        Some(CreditChange::Add(_)) => {}
    }
    changed(tx, organization, id, KeyChangeKind::Changed).await
}

/// What a report of an exposed key changed.
pub(crate) enum Exposure {
    /// First reported now: marked (and revoked, if the report or the policy says so).
    Marked(CredentialRecord),
    /// Marked by an earlier report that only flagged it; revoked now.
    Revoked(CredentialRecord),
}

/// Marks the live credential with this digest as exposed at `source` (the first report only)
/// and, when `revoke` (or, for `None`, when its organization's policy says so), revokes it,
/// even if an earlier report only flagged it. `None` when there is no such credential, when
/// it is not usable (revoked, expired, ended by rotation), or when the report changes nothing
/// (a flagging report of a key flagged before).
pub(crate) async fn expose(
    tx: &mut impl Write,
    digest: &KeyDigest,
    source: &str,
    at: Timestamp,
    revoke: Option<bool>,
) -> Result<Option<Exposure>, StoreError> {
    let lock = locking!(
        "FOR UPDATE",
        "SELECT 1 FROM credentials WHERE secret_sha256 = $1"
    )
    .bind(digest);
    tx.optional(lock, super::exists).await?;
    let Some(before) = find_by_digest(tx, digest).await? else {
        return Ok(None);
    };
    if before.status(at) != keyward_core::CredentialStatus::Active {
        return Ok(None);
    }
    // An admin key reaches every organization: revoked at once, whatever was asked.
    let revoke = match revoke {
        _ if before.id.kind() == keyward_core::CredentialKind::AdminKey => true,
        Some(revoke) => revoke,
        None => {
            let policy =
                super::organizations::policy_for_insert(tx, before.organization_id).await?;
            policy.leak_action == crate::LeakAction::Revoke
        }
    };
    let flagged_before = before.exposure.is_some();
    if flagged_before && !revoke {
        return Ok(None);
    }
    // The first report's source and time stay: it is when the key was known to be out.
    let query = Query::new(
        "UPDATE credentials SET exposed_at = COALESCE(exposed_at, $1), \
         exposed_source = COALESCE(exposed_source, $2), \
         revoked_at = CASE WHEN $3 THEN $1 ELSE revoked_at END \
         WHERE id = $4 AND revoked_at IS NULL",
    )
    .bind(at.unix_seconds())
    .bind(source)
    .bind(revoke)
    .bind(before.id.as_uuid());
    tx.execute(query).await?;
    let kind = match revoke {
        true => KeyChangeKind::Revoked,
        false => KeyChangeKind::Changed,
    };
    let after = changed(tx, before.organization_id, before.id, kind).await?;
    Ok(after.map(|record| match flagged_before {
        true => Exposure::Revoked(record),
        false => Exposure::Marked(record),
    }))
}

pub(crate) async fn count_exposed(
    db: &mut impl Read,
    organization: OrganizationId,
    since: Timestamp,
) -> Result<u64, StoreError> {
    let query = Query::new(
        "SELECT COUNT(*) AS exposed FROM credentials \
         WHERE organization_id = $1 AND exposed_at >= $2",
    )
    .bind(organization.as_uuid())
    .bind(since.unix_seconds());
    let count = db.optional(query, |row| row.int("exposed")).await?;
    Ok(count
        .and_then(|n| u64::try_from(n).ok())
        .unwrap_or_default())
}

pub(crate) async fn revoke(
    tx: &mut impl Write,
    organization: OrganizationId,
    id: CredentialId,
    at: Timestamp,
) -> Result<Option<CredentialRecord>, StoreError> {
    let query = Query::new(
        "UPDATE credentials SET revoked_at = $1 \
         WHERE organization_id = $2 AND id = $3 AND kind = $4 AND revoked_at IS NULL",
    )
    .bind(at.unix_seconds())
    .bind(organization.as_uuid())
    .bind(id.as_uuid())
    .bind(id.kind().as_str());
    tx.execute(query).await?;
    changed(tx, organization, id, KeyChangeKind::Revoked).await
}

pub(crate) async fn scope_usage(
    db: &mut impl Read,
    now: Timestamp,
) -> Result<Vec<(ScopeNames, u64)>, StoreError> {
    let query = Query::new(
        "SELECT scopes, COUNT(*) AS holders FROM credentials \
         WHERE revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $1) \
         AND (rotation_ends_at IS NULL OR rotation_ends_at > $1) GROUP BY scopes",
    )
    .bind(now.unix_seconds());
    db.all(query, |row| {
        let holders = u64::try_from(row.int("holders")?).unwrap_or_default();
        Ok((decode::scopes(&row.text("scopes")?)?, holders))
    })
    .await
}

pub(crate) async fn record_usage(
    tx: &mut impl Write,
    batch: &[UsageUpdate],
) -> Result<u64, StoreError> {
    let mut changed = 0;
    for update in batch {
        let query = Query::new(
            "UPDATE credentials SET last_used_at = $1, last_used_ip = $2 \
             WHERE id = $3 AND (last_used_at IS NULL OR last_used_at < $1)",
        )
        .bind(update.at.unix_seconds())
        .bind(update.ip.map(|ip| ip.to_string()))
        .bind(update.credential.as_uuid());
        changed += tx.execute(query).await?;
        let Some(ip) = update.ip else { continue };
        // The address, and the time of the last use from it; then only the five most recent.
        let query = Query::new(
            "INSERT INTO credential_addresses (credential_id, ip, last_used_at) \
             VALUES ($1, $2, $3) ON CONFLICT (credential_id, ip) DO UPDATE SET last_used_at = \
             CASE WHEN excluded.last_used_at > credential_addresses.last_used_at \
             THEN excluded.last_used_at ELSE credential_addresses.last_used_at END",
        )
        .bind(update.credential.as_uuid())
        .bind(ip.to_string())
        .bind(update.at.unix_seconds());
        tx.execute(query).await?;
        let query = Query::new(
            "DELETE FROM credential_addresses WHERE credential_id = $1 AND ip NOT IN \
             (SELECT ip FROM credential_addresses WHERE credential_id = $1 \
             ORDER BY last_used_at DESC, ip LIMIT $2)",
        )
        .bind(update.credential.as_uuid())
        .bind(LAST_ADDRESSES);
        tx.execute(query).await?;
    }
    Ok(changed)
}

/// How many distinct client addresses a credential keeps.
pub(crate) const LAST_ADDRESSES: i64 = 5;

/// The credential's last client addresses, most recent first, if it is the organization's.
pub(crate) async fn addresses(
    db: &mut impl Read,
    organization: OrganizationId,
    id: CredentialId,
) -> Result<Vec<(String, Timestamp)>, StoreError> {
    let query = Query::new(
        "SELECT a.ip, a.last_used_at FROM credential_addresses a \
         JOIN credentials c ON c.id = a.credential_id \
         WHERE c.organization_id = $1 AND a.credential_id = $2 \
         ORDER BY a.last_used_at DESC, a.ip LIMIT $3",
    )
    .bind(organization.as_uuid())
    .bind(id.as_uuid())
    .bind(LAST_ADDRESSES);
    db.all(query, |row| {
        Ok((row.text("ip")?, timestamp(row.int("last_used_at")?)))
    })
    .await
}
