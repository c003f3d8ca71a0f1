//! The key-event log: the changes verification must follow, numbered in commit order, for
//! services that keep caches of their own (see the migration that makes it).

use keyward_core::{CredentialId, OrganizationId, Timestamp};

use super::{Columns, Query, Read, Write};
use crate::{KeyChange, KeyChangeKind, KeyEventPage, KeyEventRecord, StoreError, decode};

/// A change a transaction will log when it commits.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Pending {
    pub organization: OrganizationId,
    pub credential: CredentialId,
    pub kind: KeyChangeKind,
}

impl From<&KeyChange<'_>> for Pending {
    fn from(change: &KeyChange<'_>) -> Self {
        Self {
            organization: change.organization,
            credential: change.credential,
            kind: change.kind,
        }
    }
}

/// Logs `pending` at `at`, in order. The caller makes sure this is the transaction's last
/// write before its commit, and (on PostgreSQL) that no other transaction takes ids between
/// this and the commit.
pub(crate) async fn insert(
    tx: &mut impl Write,
    pending: &[Pending],
    at: Timestamp,
) -> Result<(), StoreError> {
    for event in pending {
        let query = Query::new(
            "INSERT INTO key_events \
             (organization_id, credential_id, credential_kind, change, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(event.organization.as_uuid())
        .bind(event.credential.as_uuid())
        .bind(event.credential.kind().as_str())
        .bind(event.kind.as_str())
        .bind(at.unix_seconds());
        tx.execute(query).await?;
    }
    Ok(())
}

/// The organizations of `pending`, each once.
pub(crate) fn organizations(pending: &[Pending]) -> Vec<OrganizationId> {
    let mut organizations: Vec<OrganizationId> = Vec::new();
    for event in pending {
        if !organizations.contains(&event.organization) {
            organizations.push(event.organization);
        }
    }
    organizations
}

fn decode(row: &dyn Columns) -> Result<KeyEventRecord, StoreError> {
    let kind = decode::kind(&row.text("credential_kind")?)?;
    let change = row.text("change")?;
    Ok(KeyEventRecord {
        id: row.int("id")?,
        credential_id: CredentialId::from_uuid(row.uuid("credential_id")?, kind),
        change: KeyChangeKind::parse(&change).ok_or_else(|| decode::corrupt("key event change"))?,
        at: decode::timestamp(row.int("created_at")?),
    })
}

pub(crate) async fn page(
    db: &mut impl Read,
    organization: OrganizationId,
    after: i64,
    limit: i64,
) -> Result<KeyEventPage, StoreError> {
    // The latest id first: an event committed after it is read is then ahead of it. The
    // horizon last: a prune commits its deletions and its horizon together, so if the events
    // read miss some it deleted, the horizon read after them has moved past them (read
    // before, it could show the old horizon while the events were gone).
    let latest = Query::new(
        "SELECT COALESCE((SELECT MAX(id) FROM key_events), \
         (SELECT pruned_through FROM key_event_horizon WHERE id = 1)) AS latest",
    );
    let latest = db
        .optional(latest, |row| row.opt_int("latest"))
        .await?
        .flatten()
        .ok_or_else(|| decode::corrupt("key event horizon"))?;
    let query = Query::new(
        "SELECT id, credential_id, credential_kind, change, created_at FROM key_events \
         WHERE organization_id = $1 AND id > $2 ORDER BY id LIMIT $3",
    )
    .bind(organization.as_uuid())
    .bind(after)
    .bind(limit);
    let events = db.all(query, decode).await?;
    let horizon = Query::new("SELECT pruned_through FROM key_event_horizon WHERE id = 1");
    let pruned_through = db
        .optional(horizon, |row| row.int("pruned_through"))
        .await?
        .ok_or_else(|| decode::corrupt("key event horizon"))?;
    Ok(KeyEventPage {
        events,
        pruned_through,
        latest,
    })
}

/// Deletes up to `limit` events older than `before`, oldest first, and moves the horizon to
/// the last one deleted.
pub(crate) async fn prune(
    tx: &mut impl Write,
    before: Timestamp,
    limit: i64,
) -> Result<u64, StoreError> {
    let last = Query::new(
        "SELECT MAX(id) AS last FROM (SELECT id FROM key_events WHERE created_at < $1 \
         ORDER BY id LIMIT $2) AS old",
    )
    .bind(before.unix_seconds())
    .bind(limit);
    let Some(last) = tx
        .optional(last, |row| row.opt_int("last"))
        .await?
        .flatten()
    else {
        return Ok(0);
    };
    let deleted = tx
        .execute(Query::new("DELETE FROM key_events WHERE id <= $1").bind(last))
        .await?;
    let horizon = Query::new(
        "UPDATE key_event_horizon SET pruned_through = $1 WHERE id = 1 AND pruned_through < $1",
    )
    .bind(last);
    tx.execute(horizon).await?;
    Ok(deleted)
}
