//! Webhook endpoints, the outbox of messages, deliveries and attempts, and the notices of the
//! expiry scanner.
//!
//! A message is written by [`enqueue`] inside the transaction of the change it reports, with
//! one pending delivery per endpoint of the organization that chose its event: the change and
//! its message commit together or not at all. Nodes [`claim`] due deliveries (on PostgreSQL
//! `FOR UPDATE SKIP LOCKED`, then a lease), so one node sends a given delivery at a time.

use keyward_core::webhook::{EventType, EventTypes};
use keyward_core::{MessageId, OrganizationId, Timestamp, WebhookId};
use serde_json::{Map, Value, json};

use std::collections::HashMap;

use super::{Columns, Query, Read, Write};
use crate::decode::{corrupt, timestamp};
use crate::{
    AttemptRecord, ClaimedDelivery, CredentialRecord, DeliveryRecord, DeliveryState,
    InFlightLimits, NewWebhook, NextStep, Page, Paged, StoreError, WebhookChanges, WebhookRecord,
};

macro_rules! select_endpoints {
    ($tail:literal) => {
        concat!(
            "SELECT id, organization_id, url, description, events, secret_check, enabled, \
             created_at, updated_at FROM webhook_endpoints ",
            $tail
        )
    };
}

fn decode_endpoint(row: &dyn Columns) -> Result<WebhookRecord, StoreError> {
    let events: Vec<String> = row
        .text("events")?
        .split_ascii_whitespace()
        .map(str::to_owned)
        .collect();
    Ok(WebhookRecord {
        id: WebhookId::from_uuid(row.uuid("id")?),
        organization_id: OrganizationId::from_uuid(row.uuid("organization_id")?),
        url: row.text("url")?,
        description: row.text("description")?,
        events: EventTypes::parse(&events).map_err(|_| corrupt("webhook events"))?,
        secret_check: row.text("secret_check")?,
        enabled: row.int("enabled")? != 0,
        created_at: timestamp(row.int("created_at")?),
        updated_at: timestamp(row.int("updated_at")?),
    })
}

/// Inserts an endpoint, unless the organization has [`crate::MAX_WEBHOOKS`] already.
pub(crate) async fn insert(
    tx: &mut impl Write,
    new: &NewWebhook,
) -> Result<WebhookRecord, StoreError> {
    // The organization's row, locked: two registrations at once count one after the other.
    super::organizations::active_policy(tx, new.organization_id).await?;
    let count =
        Query::new("SELECT COUNT(*) AS n FROM webhook_endpoints WHERE organization_id = $1")
            .bind(new.organization_id.as_uuid());
    let count = tx
        .optional(count, |row| row.int("n"))
        .await?
        .unwrap_or_default();
    if count >= crate::MAX_WEBHOOKS {
        return Err(StoreError::Conflict("webhook limit"));
    }
    let query = Query::new(
        "INSERT INTO webhook_endpoints (id, organization_id, url, description, events, \
         secret_check, enabled, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $7)",
    )
    .bind(new.id.as_uuid())
    .bind(new.organization_id.as_uuid())
    .bind(new.url.as_str())
    .bind(new.description.as_str())
    .bind(new.events.to_storage())
    .bind(new.secret_check.as_str())
    .bind(new.created_at.unix_seconds());
    tx.execute(query).await?;
    Ok(WebhookRecord {
        id: new.id,
        organization_id: new.organization_id,
        url: new.url.clone(),
        description: new.description.clone(),
        events: new.events,
        secret_check: new.secret_check.clone(),
        enabled: true,
        created_at: new.created_at,
        updated_at: new.created_at,
    })
}

pub(crate) async fn list(
    db: &mut impl Read,
    organization: OrganizationId,
) -> Result<Vec<WebhookRecord>, StoreError> {
    let query = Query::new(select_endpoints!(
        "WHERE organization_id = $1 ORDER BY id DESC"
    ))
    .bind(organization.as_uuid());
    db.all(query, decode_endpoint).await
}

pub(crate) async fn get(
    db: &mut impl Read,
    organization: OrganizationId,
    id: WebhookId,
) -> Result<Option<WebhookRecord>, StoreError> {
    let query = Query {
        sql: select_endpoints!("WHERE organization_id = $1 AND id = $2"),
        locking_sql: Some(select_endpoints!(
            "WHERE organization_id = $1 AND id = $2 FOR UPDATE"
        )),
        params: Vec::new(),
    }
    .bind(organization.as_uuid())
    .bind(id.as_uuid());
    db.optional(query, decode_endpoint).await
}

pub(crate) async fn update(
    tx: &mut impl Write,
    organization: OrganizationId,
    id: WebhookId,
    changes: &WebhookChanges,
    now: Timestamp,
) -> Result<Option<WebhookRecord>, StoreError> {
    let query = Query::new(
        "UPDATE webhook_endpoints SET url = COALESCE($3, url), \
         description = COALESCE($4, description), events = COALESCE($5, events), \
         enabled = COALESCE($6, enabled), updated_at = $7 \
         WHERE organization_id = $1 AND id = $2",
    )
    .bind(organization.as_uuid())
    .bind(id.as_uuid())
    .bind(changes.url.clone())
    .bind(changes.description.clone())
    .bind(changes.events.map(EventTypes::to_storage))
    .bind(changes.enabled.map(i64::from))
    .bind(now.unix_seconds());
    tx.execute(query).await?;
    get(tx, organization, id).await
}

/// Deletes an endpoint with its deliveries and attempts.
pub(crate) async fn delete(
    tx: &mut impl Write,
    organization: OrganizationId,
    id: WebhookId,
) -> Result<bool, StoreError> {
    if get(tx, organization, id).await?.is_none() {
        return Ok(false);
    }
    for sql in [
        "DELETE FROM webhook_attempts WHERE endpoint_id = $1",
        "DELETE FROM webhook_deliveries WHERE endpoint_id = $1",
        "DELETE FROM webhook_endpoints WHERE id = $1",
    ] {
        tx.execute(Query::new(sql).bind(id.as_uuid())).await?;
    }
    Ok(true)
}

/// What a message says about a credential: what lists (and the audit log) show, never the
/// key.
fn credential_data(record: &CredentialRecord) -> Map<String, Value> {
    let mut data = Map::new();
    data.insert("id".into(), Value::String(record.id.to_string()));
    data.insert(
        "type".into(),
        Value::String(record.id.kind().as_str().into()),
    );
    data.insert(
        "organization_id".into(),
        Value::String(record.organization_id.to_string()),
    );
    for (name, value) in super::audit::credential_fields(record) {
        data.insert(name.into(), value);
    }
    data.insert(
        "created_at".into(),
        super::audit::time(Some(record.created_at)),
    );
    data.insert("revoked_at".into(), super::audit::time(record.revoked_at));
    if let Some(rotation) = record.rotation {
        data.insert(
            "rotation".into(),
            json!({
                "ends_at": rotation.ends_at.to_string(),
                "replaced_by": rotation.replaced_by.to_string(),
            }),
        );
    }
    if let Some(from) = record.rotated_from {
        data.insert("rotated_from".into(), Value::String(from.to_string()));
    }
    data
}

/// Writes a message about `record` for `event`, with `extra` fields and who did it (the
/// audit log's actor, with `acting_for` when an admin key acted for the organization) in its
/// data, and a pending delivery for each enabled endpoint of the organization that chose the
/// event; nothing at all when none did. Inside the transaction of the change.
pub(crate) async fn enqueue(
    tx: &mut impl Write,
    audit: &crate::AuditContext,
    record: &CredentialRecord,
    event: EventType,
    extra: Vec<(&str, Value)>,
) -> Result<(), StoreError> {
    let organization = record.organization_id;
    if organization.is_installation() {
        // Admin keys belong to no organization, so to no organization's endpoints.
        return Ok(());
    }
    let pattern = format!("% {} %", event.as_str());
    let subscribed = Query::new(
        "SELECT CAST(1 AS BIGINT) AS found FROM webhook_endpoints WHERE organization_id = $1 \
         AND enabled = 1 AND (' ' || events || ' ') LIKE $2 LIMIT 1",
    )
    .bind(organization.as_uuid())
    .bind(pattern.as_str());
    if tx
        .optional(subscribed, |row| row.int("found"))
        .await?
        .is_none()
    {
        return Ok(());
    }
    let now = tx.now();
    let mut data = credential_data(record);
    for (name, value) in extra {
        data.insert(name.to_owned(), value);
    }
    data.insert(
        "actor".into(),
        super::audit::actor_view(&audit.actor, organization),
    );
    let payload = json!({
        "type": event.as_str(),
        "timestamp": now.to_string(),
        "data": data,
    });
    let id = MessageId::generate();
    let message = Query::new(
        "INSERT INTO webhook_messages (id, organization_id, event_type, payload, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id.as_uuid())
    .bind(organization.as_uuid())
    .bind(event.as_str())
    .bind(payload.to_string())
    .bind(now.unix_seconds());
    tx.execute(message).await?;
    let deliveries = Query::new(
        "INSERT INTO webhook_deliveries (message_id, endpoint_id, state, attempts, \
         next_attempt_at, updated_at) \
         SELECT $1, id, 'pending', 0, $2, $2 FROM webhook_endpoints \
         WHERE organization_id = $3 AND enabled = 1 AND (' ' || events || ' ') LIKE $4",
    )
    .bind(id.as_uuid())
    .bind(now.unix_seconds())
    .bind(organization.as_uuid())
    .bind(pattern.as_str());
    tx.execute(deliveries).await?;
    Ok(())
}

macro_rules! select_deliveries {
    ($tail:literal) => {
        concat!(
            "SELECT d.message_id, d.endpoint_id, m.event_type, m.created_at, d.state, \
             d.attempts, d.next_attempt_at, d.last_status, d.last_error, d.updated_at \
             FROM webhook_deliveries d JOIN webhook_messages m ON m.id = d.message_id \
             JOIN webhook_endpoints e ON e.id = d.endpoint_id ",
            $tail
        )
    };
}

fn decode_delivery(row: &dyn Columns) -> Result<DeliveryRecord, StoreError> {
    Ok(DeliveryRecord {
        message_id: MessageId::from_uuid(row.uuid("message_id")?),
        endpoint_id: WebhookId::from_uuid(row.uuid("endpoint_id")?),
        event_type: row.text("event_type")?,
        created_at: timestamp(row.int("created_at")?),
        state: DeliveryState::from_storage(&row.text("state")?)
            .ok_or_else(|| corrupt("delivery state"))?,
        attempts: u32::try_from(row.int("attempts")?).unwrap_or(u32::MAX),
        next_attempt_at: row.opt_int("next_attempt_at")?.map(timestamp),
        last_status: row
            .opt_int("last_status")?
            .and_then(|s| u16::try_from(s).ok()),
        last_error: row.opt_text("last_error")?,
        updated_at: timestamp(row.int("updated_at")?),
    })
}

/// The endpoint's deliveries, newest message first.
pub(crate) async fn deliveries(
    db: &mut impl Read,
    organization: OrganizationId,
    endpoint: WebhookId,
    page: Page,
) -> Result<Paged<DeliveryRecord>, StoreError> {
    let query = Query::new(select_deliveries!(
        "WHERE e.organization_id = $1 AND d.endpoint_id = $2 \
         AND ($3 IS NULL OR d.message_id < $3) ORDER BY d.message_id DESC LIMIT $4"
    ))
    .bind(organization.as_uuid())
    .bind(endpoint.as_uuid());
    super::page(db, query, decode_delivery, page).await
}

/// One delivery, its attempts (oldest first, the last 50) and its payload.
pub(crate) async fn delivery(
    db: &mut impl Read,
    organization: OrganizationId,
    endpoint: WebhookId,
    message: MessageId,
) -> Result<Option<(DeliveryRecord, Vec<AttemptRecord>, String)>, StoreError> {
    let query = Query::new(select_deliveries!(
        "WHERE e.organization_id = $1 AND d.endpoint_id = $2 AND d.message_id = $3"
    ))
    .bind(organization.as_uuid())
    .bind(endpoint.as_uuid())
    .bind(message.as_uuid());
    let Some(delivery) = db.optional(query, decode_delivery).await? else {
        return Ok(None);
    };
    let attempts = Query::new(
        "SELECT attempted_at, status, latency_ms, error FROM webhook_attempts \
         WHERE endpoint_id = $1 AND message_id = $2 ORDER BY attempted_at DESC LIMIT 50",
    )
    .bind(endpoint.as_uuid())
    .bind(message.as_uuid());
    let mut attempts = db
        .all(attempts, |row| {
            Ok(AttemptRecord {
                attempted_at: timestamp(row.int("attempted_at")?),
                status: row.opt_int("status")?.and_then(|s| u16::try_from(s).ok()),
                latency_ms: u64::try_from(row.int("latency_ms")?).unwrap_or_default(),
                error: row.opt_text("error")?,
            })
        })
        .await?;
    attempts.reverse();
    let payload =
        Query::new("SELECT payload FROM webhook_messages WHERE id = $1").bind(message.as_uuid());
    let payload = db
        .optional(payload, |row| row.text("payload"))
        .await?
        .unwrap_or_default();
    Ok(Some((delivery, attempts, payload)))
}

/// Makes a delivery due now again, whatever its state; `false` if there is no such delivery.
pub(crate) async fn redeliver(
    tx: &mut impl Write,
    organization: OrganizationId,
    endpoint: WebhookId,
    message: MessageId,
    now: Timestamp,
) -> Result<bool, StoreError> {
    if get(tx, organization, endpoint).await?.is_none() {
        return Ok(false);
    }
    let query = Query::new(
        // A lease in force stays: the node holding it is sending it right now.
        "UPDATE webhook_deliveries SET state = 'pending', next_attempt_at = $1, \
         updated_at = $1 WHERE endpoint_id = $2 AND message_id = $3",
    )
    .bind(now.unix_seconds())
    .bind(endpoint.as_uuid())
    .bind(message.as_uuid());
    Ok(tx.execute(query).await? > 0)
}

/// The deliveries of `d`'s endpoint that a claim holds at `$1` (pending, lease not over).
macro_rules! in_flight {
    () => {
        "(SELECT COUNT(*) FROM webhook_deliveries b WHERE b.endpoint_id = d.endpoint_id \
         AND b.state = 'pending' AND b.locked_until > $1)"
    };
}

/// The same for every endpoint of `e`'s organization (at most [`crate::MAX_WEBHOOKS`]).
macro_rules! organization_in_flight {
    () => {
        "(SELECT COUNT(*) FROM webhook_endpoints oe \
         JOIN webhook_deliveries ob ON ob.endpoint_id = oe.id \
         WHERE oe.organization_id = e.organization_id \
         AND ob.state = 'pending' AND ob.locked_until > $1)"
    };
}

/// The deliveries `d` that may be claimed at `$1`: pending, due, not leased, of an enabled
/// endpoint with fewer than `$2` in flight, of an organization with fewer than `$3`.
macro_rules! claimable {
    () => {
        concat!(
            "FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id \
             JOIN webhook_messages m ON m.id = d.message_id \
             WHERE d.state = 'pending' AND e.enabled = 1 AND d.next_attempt_at <= $1 \
             AND (d.locked_until IS NULL OR d.locked_until <= $1) AND ",
            in_flight!(),
            " < $2 AND ",
            organization_in_flight!(),
            " < $3 "
        )
    };
}

/// Whether any delivery may be claimed at `now` within `limits`: a read, so that an idle
/// node's poll (or one whose only due deliveries wait for busy endpoints) opens no write
/// transaction.
pub(crate) async fn any_due(
    db: &mut impl Read,
    now: Timestamp,
    limits: InFlightLimits,
) -> Result<bool, StoreError> {
    let query = Query::new(concat!(
        "SELECT CAST(1 AS BIGINT) AS due ",
        claimable!(),
        "LIMIT 1"
    ))
    .bind(now.unix_seconds())
    .bind(limits.per_endpoint)
    .bind(limits.per_organization);
    Ok(db.optional(query, |row| row.int("due")).await?.is_some())
}

/// The credentials with an expiry notice due at `$1` that was not written yet: neither
/// revoked nor ending by rotation first, expiring within 7 days or expired within the last 7.
macro_rules! notice_due {
    () => {
        "WHERE revoked_at IS NULL AND expires_at IS NOT NULL \
         AND expires_at <= $1 + 604800 AND expires_at > $1 - 604800 \
         AND (rotation_ends_at IS NULL OR rotation_ends_at > expires_at) \
         AND NOT EXISTS (SELECT 1 FROM credential_notices n \
         WHERE n.credential_id = credentials.id AND n.notice = CASE \
         WHEN credentials.expires_at <= $1 THEN 'expired' \
         WHEN credentials.expires_at <= $1 + 86400 THEN 'expiring_1d' \
         ELSE 'expiring_7d' END) "
    };
}

/// Whether the expiry scan has anything to write at `now` (a read; see [`scan_expiring`]).
pub(crate) async fn any_expiring(db: &mut impl Read, now: Timestamp) -> Result<bool, StoreError> {
    let query = Query::new(concat!(
        "SELECT CAST(1 AS BIGINT) AS due FROM credentials ",
        notice_due!(),
        "LIMIT 1"
    ))
    .bind(now.unix_seconds());
    Ok(db.optional(query, |row| row.int("due")).await?.is_some())
}

/// Claims up to `limit` due deliveries for `lease_seconds`: no other node claims them until
/// the lease ends (or this node reports the attempt, or releases it). An endpoint, and an
/// organization, never has more in flight than `limits` allow from claims that did not
/// overlap (two nodes claiming at the same instant may each take a share), so receivers that
/// hang hold that many deliveries and delay nobody else's.
pub(crate) async fn claim(
    tx: &mut impl Write,
    now: Timestamp,
    lease_seconds: i64,
    limit: i64,
    limits: InFlightLimits,
) -> Result<Vec<ClaimedDelivery>, StoreError> {
    macro_rules! due {
        () => {
            concat!(
                "SELECT d.message_id, d.endpoint_id, d.attempts, e.organization_id, e.url, \
                 e.secret_check, m.payload, ",
                in_flight!(),
                " AS in_flight, ",
                organization_in_flight!(),
                " AS organization_in_flight ",
                claimable!(),
                "ORDER BY d.next_attempt_at LIMIT $4"
            )
        };
    }
    let query = Query {
        sql: due!(),
        // Rows another node is claiming are skipped, not waited for.
        locking_sql: Some(concat!(due!(), " FOR UPDATE OF d SKIP LOCKED")),
        params: Vec::new(),
    }
    .bind(now.unix_seconds())
    .bind(limits.per_endpoint)
    .bind(limits.per_organization)
    .bind(limit);
    let lease_until = now.plus_seconds(lease_seconds);
    let candidates = tx
        .all(query, |row| {
            let delivery = ClaimedDelivery {
                message_id: MessageId::from_uuid(row.uuid("message_id")?),
                endpoint_id: WebhookId::from_uuid(row.uuid("endpoint_id")?),
                organization_id: OrganizationId::from_uuid(row.uuid("organization_id")?),
                url: row.text("url")?,
                secret_check: row.text("secret_check")?,
                payload: row.text("payload")?,
                attempts: u32::try_from(row.int("attempts")?).unwrap_or(u32::MAX),
                // Set below: decoding reads no outside value.
                lease_until: Timestamp::from_unix_seconds(0),
            };
            let in_flight = (row.int("in_flight")?, row.int("organization_in_flight")?);
            Ok((delivery, in_flight))
        })
        .await?;
    // Within this claim too, each endpoint and organization gets only what it has room for.
    let mut endpoints: HashMap<WebhookId, i64> = HashMap::new();
    let mut organizations: HashMap<OrganizationId, i64> = HashMap::new();
    let mut claimed = Vec::new();
    for (mut delivery, (endpoint_in_flight, organization_in_flight)) in candidates {
        let endpoint = *endpoints
            .entry(delivery.endpoint_id)
            .or_insert(endpoint_in_flight);
        let organization = *organizations
            .entry(delivery.organization_id)
            .or_insert(organization_in_flight);
        if endpoint >= limits.per_endpoint || organization >= limits.per_organization {
            continue;
        }
        endpoints.insert(delivery.endpoint_id, endpoint + 1);
        organizations.insert(delivery.organization_id, organization + 1);
        delivery.lease_until = lease_until;
        claimed.push(delivery);
    }
    for delivery in &claimed {
        let lease = Query::new(
            "UPDATE webhook_deliveries SET locked_until = $1 \
             WHERE message_id = $2 AND endpoint_id = $3",
        )
        .bind(delivery.lease_until.unix_seconds())
        .bind(delivery.message_id.as_uuid())
        .bind(delivery.endpoint_id.as_uuid());
        tx.execute(lease).await?;
    }
    Ok(claimed)
}

/// Gives claimed deliveries back without an attempt (a node stopping): due again at once,
/// unless the claim's lease is no longer theirs.
pub(crate) async fn release(
    tx: &mut impl Write,
    deliveries: &[ClaimedDelivery],
) -> Result<(), StoreError> {
    for delivery in deliveries {
        let query = Query::new(
            "UPDATE webhook_deliveries SET locked_until = NULL \
             WHERE message_id = $1 AND endpoint_id = $2 AND locked_until = $3",
        )
        .bind(delivery.message_id.as_uuid())
        .bind(delivery.endpoint_id.as_uuid())
        .bind(delivery.lease_until.unix_seconds());
        tx.execute(query).await?;
    }
    Ok(())
}

/// Records an attempt and what follows it. What follows is written only while the claim's
/// lease is the delivery's: a node whose lease ran out (another node took the delivery over)
/// records its attempt, and changes nothing else.
pub(crate) async fn finish(
    tx: &mut impl Write,
    delivery: &ClaimedDelivery,
    attempt: &AttemptRecord,
    next: NextStep,
) -> Result<(), StoreError> {
    let key = (
        delivery.message_id.as_uuid(),
        delivery.endpoint_id.as_uuid(),
    );
    if let NextStep::Release(at) = next {
        // Postponed, not held: a lease would count as in flight and keep the endpoint's
        // other deliveries from every node.
        let query = Query::new(
            "UPDATE webhook_deliveries SET locked_until = NULL, next_attempt_at = $1 \
             WHERE message_id = $2 AND endpoint_id = $3 AND locked_until = $4",
        )
        .bind(at.unix_seconds())
        .bind(key.0)
        .bind(key.1)
        .bind(delivery.lease_until.unix_seconds());
        tx.execute(query).await?;
        return Ok(());
    }
    let record = Query::new(
        "INSERT INTO webhook_attempts (message_id, endpoint_id, attempted_at, status, \
         latency_ms, error) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(key.0)
    .bind(key.1)
    .bind(attempt.attempted_at.unix_seconds())
    .bind(attempt.status.map(i64::from))
    .bind(i64::try_from(attempt.latency_ms).unwrap_or(i64::MAX))
    .bind(attempt.error.clone());
    tx.execute(record).await?;
    let (state, next_at) = match next {
        NextStep::Delivered => ("delivered", None),
        NextStep::RetryAt(at) => ("pending", Some(at.unix_seconds())),
        NextStep::GiveUp | NextStep::Release(_) => ("failed", None),
    };
    let update = Query::new(
        "UPDATE webhook_deliveries SET state = $1, attempts = attempts + 1, \
         next_attempt_at = $2, locked_until = NULL, last_status = $3, last_error = $4, \
         updated_at = $5 WHERE message_id = $6 AND endpoint_id = $7 AND locked_until = $8",
    )
    .bind(state)
    .bind(next_at)
    .bind(attempt.status.map(i64::from))
    .bind(attempt.error.clone())
    .bind(attempt.attempted_at.unix_seconds())
    .bind(key.0)
    .bind(key.1)
    .bind(delivery.lease_until.unix_seconds());
    tx.execute(update).await?;
    Ok(())
}

/// Seconds before expiry of each warning, latest first.
const WARNINGS: [(&str, i64); 2] = [("expiring_1d", 86_400), ("expiring_7d", 7 * 86_400)];

/// Writes, once each, the expiry notices now due (`.expiring` 7 days and 1 day before, then
/// `.expired`), with their messages; at most `limit` credentials per call. Returns how many
/// notices were sent. Every node may run it at any time: a notice row is inserted once, and
/// only the transaction that inserts it writes its message (and, with `email`, the emails of
/// the 7-day and 1-day warnings to the credential's maker, or its organization's owners).
pub(crate) async fn scan_expiring(
    tx: &mut impl Write,
    now: Timestamp,
    limit: i64,
    email: bool,
) -> Result<u64, StoreError> {
    let query = Query::new(crate::sql::credentials::select_credentials!(
        notice_due!(),
        "ORDER BY expires_at, id LIMIT $2"
    ))
    .bind(now.unix_seconds())
    .bind(limit);
    let due = tx.all(query, super::credentials::decode).await?;
    let mut sent = 0;
    for record in due {
        // A token of a deleted project reads as revoked.
        if record.revoked_at.is_some() {
            continue;
        }
        let Some(expires_at) = record.expires_at else {
            continue;
        };
        let left = expires_at.unix_seconds() - now.unix_seconds();
        let (notice, event) = if left <= 0 {
            ("expired", expired_event(&record))
        } else {
            let notice = WARNINGS
                .iter()
                .find(|(_, before)| left <= *before)
                .map_or("expiring_7d", |(notice, _)| *notice);
            (notice, expiring_event(&record))
        };
        if !insert_notice(tx, &record, notice, now).await? {
            continue;
        }
        // The earlier warnings are moot now.
        for (earlier, before) in WARNINGS {
            if left <= before && earlier != notice {
                insert_notice(tx, &record, earlier, now).await?;
            }
        }
        let extra = if left > 0 {
            vec![("expires_in_seconds", Value::from(left))]
        } else {
            Vec::new()
        };
        enqueue(tx, &crate::AuditContext::SYSTEM, &record, event, extra).await?;
        // The people who hear of it by email: before it expires (7 days, 1 day).
        if email && left > 0 {
            let when = if notice == "expiring_1d" {
                "within a day"
            } else {
                "within a week"
            };
            let mut extra = serde_json::Map::new();
            extra.insert("expires_at".into(), Value::String(expires_at.to_string()));
            extra.insert("when".into(), Value::String(when.into()));
            super::email::notify_about(tx, &record, "credential_expiring", extra, now).await?;
        }
        sent += 1;
    }
    Ok(sent)
}

async fn insert_notice(
    tx: &mut impl Write,
    record: &CredentialRecord,
    notice: &str,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let query = Query::new(
        "INSERT INTO credential_notices (credential_id, notice, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (credential_id, notice) DO NOTHING",
    )
    .bind(record.id.as_uuid())
    .bind(notice)
    .bind(now.unix_seconds());
    Ok(tx.execute(query).await? == 1)
}

fn expiring_event(record: &CredentialRecord) -> EventType {
    match record.id.kind() {
        // Admin keys' events are never sent: see `enqueue`.
        keyward_core::CredentialKind::ApiKey | keyward_core::CredentialKind::AdminKey => {
            EventType::ApiKeyExpiring
        }
        keyward_core::CredentialKind::ProjectToken => EventType::ProjectTokenExpiring,
    }
}

fn expired_event(record: &CredentialRecord) -> EventType {
    match record.id.kind() {
        keyward_core::CredentialKind::ApiKey | keyward_core::CredentialKind::AdminKey => {
            EventType::ApiKeyExpired
        }
        keyward_core::CredentialKind::ProjectToken => EventType::ProjectTokenExpired,
    }
}

/// The event of a credential's kind: `api_key.<verb>` or `project_token.<verb>`.
pub(crate) fn credential_event(record: &CredentialRecord, verb: Verb) -> EventType {
    use keyward_core::CredentialKind::{AdminKey, ApiKey, ProjectToken};
    match (record.id.kind(), verb) {
        // Never sent: see `enqueue`.
        (AdminKey, _) => EventType::ApiKeyRevoked,
        (ApiKey, Verb::Created) => EventType::ApiKeyCreated,
        (ApiKey, Verb::Revoked) => EventType::ApiKeyRevoked,
        (ApiKey, Verb::Rotated) => EventType::ApiKeyRotated,
        (ProjectToken, Verb::Created) => EventType::ProjectTokenCreated,
        (ProjectToken, Verb::Revoked) => EventType::ProjectTokenRevoked,
        (ProjectToken, Verb::Rotated) => EventType::ProjectTokenRotated,
    }
}

#[derive(Clone, Copy)]
pub(crate) enum Verb {
    Created,
    Revoked,
    Rotated,
}

/// Deletes delivered and failed messages older than `before` (their deliveries and
/// attempts with them), at most `limit` messages; pending ones are kept.
pub(crate) async fn prune(
    tx: &mut impl Write,
    before: Timestamp,
    limit: i64,
) -> Result<u64, StoreError> {
    let old = Query::new(
        "SELECT id FROM webhook_messages m WHERE created_at < $1 AND NOT EXISTS \
         (SELECT 1 FROM webhook_deliveries d WHERE d.message_id = m.id AND d.state = 'pending') \
         ORDER BY created_at LIMIT $2",
    )
    .bind(before.unix_seconds())
    .bind(limit);
    let ids = tx.all(old, |row| row.uuid("id")).await?;
    for id in &ids {
        for sql in [
            "DELETE FROM webhook_attempts WHERE message_id = $1",
            "DELETE FROM webhook_deliveries WHERE message_id = $1",
            "DELETE FROM webhook_messages WHERE id = $1",
        ] {
            tx.execute(Query::new(sql).bind(*id)).await?;
        }
    }
    Ok(ids.len() as u64)
}
