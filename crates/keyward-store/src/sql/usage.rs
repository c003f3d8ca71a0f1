//! Usage: hourly counts of verifications by credential, outcome and named route rule.

use keyward_core::{CredentialId, Name, OrganizationId, ProjectId, Timestamp};

use super::{Columns, Query, Read, Write};
use crate::decode::{kind, timestamp};
use crate::{CredentialUsageRow, StoreError, UsageCount, UsageRow};

/// Adds each count to its row (made if new), in the order given: callers sort batches the
/// same way on every node, so two nodes' batches never wait on each other's rows.
pub(crate) async fn add(tx: &mut impl Write, batch: &[UsageCount]) -> Result<(), StoreError> {
    for count in batch {
        let query = Query::new(
            "INSERT INTO usage_hours (credential_id, organization_id, hour, outcome, route, count) \
             SELECT id, organization_id, $2, $3, $4, $5 FROM credentials WHERE id = $1 \
             ON CONFLICT (credential_id, hour, outcome, route) \
             DO UPDATE SET count = usage_hours.count + excluded.count",
        )
        .bind(count.credential.as_uuid())
        .bind(count.hour.unix_seconds())
        .bind(count.outcome)
        .bind(count.route.as_deref().unwrap_or(""))
        .bind(count.count);
        tx.execute(query).await?;
    }
    Ok(())
}

pub(crate) async fn of_credential(
    db: &mut impl Read,
    organization: OrganizationId,
    credential: CredentialId,
    from: Timestamp,
    to: Timestamp,
) -> Result<Vec<UsageRow>, StoreError> {
    let query = Query::new(
        "SELECT hour, outcome, route, count FROM usage_hours \
         WHERE organization_id = $1 AND credential_id = $2 AND hour >= $3 AND hour < $4 \
         ORDER BY hour, outcome, route",
    )
    .bind(organization.as_uuid())
    .bind(credential.as_uuid())
    .bind(from.unix_seconds())
    .bind(to.unix_seconds());
    db.all(query, usage_row).await
}

/// A count read back; one below zero (a correction that reached its hour first) is none.
fn count(row: &dyn Columns) -> Result<u64, StoreError> {
    Ok(u64::try_from(row.int("count")?).unwrap_or(0))
}

fn usage_row(row: &dyn Columns) -> Result<UsageRow, StoreError> {
    Ok(UsageRow {
        hour: timestamp(row.int("hour")?),
        outcome: row.text("outcome")?,
        route: Some(row.text("route")?).filter(|route| !route.is_empty()),
        count: count(row)?,
    })
}

pub(crate) async fn of_organization(
    db: &mut impl Read,
    organization: OrganizationId,
    from: Timestamp,
    to: Timestamp,
) -> Result<Vec<UsageRow>, StoreError> {
    // PostgreSQL sums BIGINT to NUMERIC: cast back.
    let query = Query::new(
        "SELECT hour, outcome, route, CAST(SUM(count) AS BIGINT) AS count FROM usage_hours \
         WHERE organization_id = $1 AND hour >= $2 AND hour < $3 \
         GROUP BY hour, outcome, route ORDER BY hour, outcome, route",
    )
    .bind(organization.as_uuid())
    .bind(from.unix_seconds())
    .bind(to.unix_seconds());
    db.all(query, usage_row).await
}

pub(crate) async fn by_credential(
    db: &mut impl Read,
    organization: OrganizationId,
    from: Timestamp,
    to: Timestamp,
) -> Result<Vec<CredentialUsageRow>, StoreError> {
    let query = Query::new(
        "SELECT u.credential_id, c.kind, c.project_id, c.name, u.outcome, \
         CAST(SUM(u.count) AS BIGINT) AS count \
         FROM usage_hours u JOIN credentials c ON c.id = u.credential_id \
         WHERE u.organization_id = $1 AND u.hour >= $2 AND u.hour < $3 \
         GROUP BY u.credential_id, c.kind, c.project_id, c.name, u.outcome",
    )
    .bind(organization.as_uuid())
    .bind(from.unix_seconds())
    .bind(to.unix_seconds());
    db.all(query, |row| {
        Ok(CredentialUsageRow {
            credential: CredentialId::from_uuid(
                row.uuid("credential_id")?,
                kind(&row.text("kind")?)?,
            ),
            project: row.opt_uuid("project_id")?.map(ProjectId::from_uuid),
            name: Name::from_trusted(row.text("name")?),
            outcome: row.text("outcome")?,
            count: count(row)?,
        })
    })
    .await
}

/// Deletes up to `limit` rows of hours before `before`, oldest first; returns how many went.
pub(crate) async fn prune(
    tx: &mut impl Write,
    before: Timestamp,
    limit: i64,
) -> Result<u64, StoreError> {
    let query = Query::new(
        "DELETE FROM usage_hours WHERE (credential_id, hour, outcome, route) IN \
         (SELECT credential_id, hour, outcome, route FROM usage_hours WHERE hour < $1 \
         ORDER BY hour LIMIT $2)",
    )
    .bind(before.unix_seconds())
    .bind(limit);
    Ok(tx.execute(query).await?)
}
