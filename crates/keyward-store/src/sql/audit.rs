//! The audit log: [`record`] writes an event inside the transaction of the change it
//! describes, so a change without its event (or an event without its change) cannot be
//! committed; [`list`] reads an organization's events newest first.

use keyward_core::{CredentialId, CredentialKind, EventId, OrganizationId, Timestamp, UserId};
use serde_json::{Map, Value, json};

use super::{Columns, Query, Read, Write};
use crate::decode::timestamp;
use crate::{
    Actor, AuditContext, AuditEventRecord, AuditFilter, CredentialRecord, Page, Paged, StoreError,
};

/// The longest user agent kept; the rest is cut.
const MAX_USER_AGENT: usize = 256;

/// What changed, for [`record`].
pub(crate) struct Event {
    pub organization: Option<OrganizationId>,
    pub action: String,
    pub target_type: &'static str,
    pub target_id: String,
    /// Field → `{"before": …, "after": …}`.
    pub changes: Map<String, Value>,
}

/// Each field as created: `{"after": value}`.
pub(crate) fn created(fields: Vec<(&str, Value)>) -> Map<String, Value> {
    fields
        .into_iter()
        .map(|(name, value)| (name.to_owned(), json!({ "after": value })))
        .collect()
}

/// Each field as it was before going: `{"before": value}`.
pub(crate) fn removed(fields: Vec<(&str, Value)>) -> Map<String, Value> {
    fields
        .into_iter()
        .map(|(name, value)| (name.to_owned(), json!({ "before": value })))
        .collect()
}

/// The fields whose value differs: `{"before": …, "after": …}`.
pub(crate) fn changed(fields: Vec<(&str, Value, Value)>) -> Map<String, Value> {
    fields
        .into_iter()
        .filter(|(_, before, after)| before != after)
        .map(|(name, before, after)| (name.to_owned(), json!({ "before": before, "after": after })))
        .collect()
}

/// A value as text, or `null`.
pub(crate) fn text(value: Option<&impl std::fmt::Display>) -> Value {
    value.map_or(Value::Null, |value| Value::String(value.to_string()))
}

pub(crate) fn time(at: Option<Timestamp>) -> Value {
    at.map_or(Value::Null, |at| Value::String(at.to_string()))
}

/// What a person can see of a credential: never its secret or digest.
pub(crate) fn credential_fields(record: &CredentialRecord) -> Vec<(&'static str, Value)> {
    vec![
        ("name", Value::String(record.name.to_string())),
        ("hint", Value::String(record.hint.clone())),
        (
            "scopes",
            Value::Array(
                record
                    .scopes
                    .iter()
                    .map(|s| Value::String(s.to_owned()))
                    .collect(),
            ),
        ),
        (
            "project_id",
            record
                .project_id
                .map_or(Value::Null, |p| Value::String(p.to_string())),
        ),
        ("expires_at", time(record.expires_at)),
        ("rate_limit", rate_limit(record)),
        ("allowed_cidrs", allowed_cidrs(record)),
        ("external_id", external_id(record)),
        ("meta", meta(record)),
    ]
}

pub(crate) fn rate_limit(record: &CredentialRecord) -> Value {
    rate_limit_value(record.rate_limit)
}

pub(crate) fn rate_limit_value(limit: Option<keyward_core::RateLimit>) -> Value {
    limit.map_or(
        Value::Null,
        |limit| json!({ "requests": limit.requests, "per_seconds": limit.per_seconds }),
    )
}

/// A credential's credits, with their generation: setting them again (even to the same
/// values) starts a new one, and is recorded as a change.
pub(crate) fn credits(record: &CredentialRecord) -> Value {
    credits_value(record.credits.as_ref())
}

/// Credits, with their generation (see [`credits`]).
pub(crate) fn credits_value(credits: Option<&crate::StoredCredits>) -> Value {
    credits.map_or(Value::Null, |credits| {
        let mut value = serde_json::to_value(credits.settings).unwrap_or(Value::Null);
        if let Value::Object(fields) = &mut value {
            fields.insert("generation".into(), Value::from(credits.generation));
        }
        value
    })
}

pub(crate) fn allowed_cidrs(record: &CredentialRecord) -> Value {
    record
        .allowed_cidrs
        .as_ref()
        .map_or(Value::Null, |networks| {
            Value::Array(
                networks
                    .to_strings()
                    .into_iter()
                    .map(Value::String)
                    .collect(),
            )
        })
}

pub(crate) fn external_id(record: &CredentialRecord) -> Value {
    text(record.metadata.external_id.as_ref())
}

/// The object itself, as the API shows it.
pub(crate) fn meta(record: &CredentialRecord) -> Value {
    record
        .metadata
        .meta
        .as_ref()
        .map_or(Value::Null, keyward_core::Meta::to_value)
}

/// `api_key` or `project_token`.
pub(crate) fn credential_type(id: CredentialId) -> &'static str {
    id.kind().as_str()
}

/// Who did it, as a webhook tells it: the audit log's actor (never a key, only its hint), and
/// the organization an admin key acted for.
pub(crate) fn actor_view(actor: &Actor, organization: OrganizationId) -> Value {
    match actor {
        Actor::System => json!({ "type": "system" }),
        Actor::User { id, email } => json!({ "type": "user", "id": id, "email": email }),
        Actor::Credential { id, hint } if id.kind() == CredentialKind::AdminKey => json!({
            "type": "credential", "id": id, "hint": hint, "acting_for": organization,
        }),
        Actor::Credential { id, hint } => json!({ "type": "credential", "id": id, "hint": hint }),
    }
}

fn actor_columns(actor: &Actor) -> (&'static str, Option<String>, Option<String>) {
    match actor {
        Actor::System => ("system", None, None),
        Actor::User { id, email } => ("user", Some(id.to_string()), Some(email.clone())),
        Actor::Credential { id, hint } => ("credential", Some(id.to_string()), Some(hint.clone())),
    }
}

/// Whether the event is in the installation's log as well: an admin key's (whose
/// organization is the installation), or one of an organization's lifecycle.
fn of_installation(event: &Event) -> bool {
    event
        .organization
        .is_some_and(|organization| organization.is_installation())
        || (event.target_type == "organization"
            && matches!(
                event.action.as_str(),
                "organization.created"
                    | "organization.updated"
                    | "organization.suspended"
                    | "organization.resumed"
                    | "organization.deleted"
            ))
}

/// Writes `event`, done by `context`'s actor, inside `tx`.
pub(crate) async fn record(
    tx: &mut impl Write,
    context: &AuditContext,
    event: Event,
) -> Result<(), StoreError> {
    let (actor_type, actor_id, actor_label) = actor_columns(&context.actor);
    let user_agent = context
        .user_agent
        .as_deref()
        .map(|agent| agent.chars().take(MAX_USER_AGENT).collect::<String>());
    let installation = of_installation(&event);
    let query = Query::new(
        "INSERT INTO audit_events (id, organization_id, at, action, actor_type, actor_id, \
         actor_label, target_type, target_id, changes, client_ip, user_agent, request_id, \
         installation) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(EventId::generate().as_uuid())
    .bind(event.organization.map(|o| o.as_uuid()))
    .bind(tx.now().unix_seconds())
    .bind(event.action)
    .bind(actor_type)
    .bind(actor_id)
    .bind(actor_label)
    .bind(event.target_type)
    .bind(event.target_id)
    .bind(Value::Object(event.changes).to_string())
    .bind(context.client_ip.clone())
    .bind(user_agent)
    .bind(context.request_id.clone())
    .bind(installation);
    tx.execute(query).await?;
    Ok(())
}

fn decode(row: &dyn Columns) -> Result<AuditEventRecord, StoreError> {
    let actor_id = row.opt_text("actor_id")?.unwrap_or_default();
    let label = row.opt_text("actor_label")?.unwrap_or_default();
    let corrupt = || StoreError::Corrupt(format!("audit actor {actor_id:?}"));
    let actor = match row.text("actor_type")?.as_str() {
        "user" => Actor::User {
            id: UserId::parse(&actor_id).map_err(|_| corrupt())?,
            email: label,
        },
        "credential" => Actor::Credential {
            id: [
                CredentialKind::ApiKey,
                CredentialKind::ProjectToken,
                CredentialKind::AdminKey,
            ]
            .into_iter()
            .find_map(|kind| CredentialId::parse(&actor_id, kind).ok())
            .ok_or_else(corrupt)?,
            hint: label,
        },
        _ => Actor::System,
    };
    Ok(AuditEventRecord {
        id: EventId::from_uuid(row.uuid("id")?),
        at: timestamp(row.int("at")?),
        // The installation is no organization to anyone reading the log.
        organization_id: row
            .opt_uuid("organization_id")?
            .map(OrganizationId::from_uuid)
            .filter(|organization| !organization.is_installation()),
        action: row.text("action")?,
        actor,
        target_type: row.text("target_type")?,
        target_id: row.text("target_id")?,
        changes: row.text("changes")?,
        client_ip: row.opt_text("client_ip")?,
        user_agent: row.opt_text("user_agent")?,
        request_id: row.opt_text("request_id")?,
    })
}

macro_rules! select_events {
    ($log:literal) => {
        concat!(
            "SELECT id, organization_id, at, action, actor_type, actor_id, actor_label, \
             target_type, target_id, changes, client_ip, user_agent, request_id FROM audit_events \
             WHERE ",
            $log,
            " AND ($2 IS NULL OR action = $2) \
             AND ($3 IS NULL OR actor_id = $3) AND ($4 IS NULL OR target_id = $4) \
             AND ($5 IS NULL OR at >= $5) AND ($6 IS NULL OR at < $6) \
             AND ($7 IS NULL OR id < $7) ORDER BY id DESC LIMIT $8"
        )
    };
}

/// The events of the organization's log (`Some`) or of the installation's (`None`) that pass
/// `filter`, newest first.
pub(crate) async fn list(
    db: &mut impl Read,
    organization: Option<OrganizationId>,
    filter: &AuditFilter,
    page: Page,
) -> Result<Paged<AuditEventRecord>, StoreError> {
    let query = match organization {
        Some(organization) => {
            Query::new(select_events!("organization_id = $1")).bind(organization.as_uuid())
        }
        // `$1` is unused but bound, so that both queries number their parameters alike.
        None => Query::new(select_events!("installation = TRUE AND $1 IS NULL"))
            .bind(None::<uuid::Uuid>),
    };
    let query = query
        .bind(filter.action.clone())
        .bind(filter.actor.clone())
        .bind(filter.target.clone())
        .bind(filter.since.map(Timestamp::unix_seconds))
        .bind(filter.until.map(Timestamp::unix_seconds));
    super::page(db, query, decode, page).await
}

/// Any number; the same on every node.
const PRUNE_LOCK: i64 = 0x006b_7761_7564_6974;

/// Deletes the events older than `before`, at most `limit` of them; returns how many went.
/// One node at a time: on PostgreSQL the transaction first takes an advisory lock, and
/// deletes nothing if another node holds it (SQLite has one writer anyway).
pub(crate) async fn prune(
    tx: &mut impl Write,
    before: Timestamp,
    limit: i64,
) -> Result<u64, StoreError> {
    let lock = Query {
        sql: "SELECT CAST($1 AS INTEGER) * 0 + 1 AS locked",
        locking_sql: Some(
            "SELECT CAST(CASE WHEN pg_try_advisory_xact_lock($1) THEN 1 ELSE 0 END AS BIGINT) \
             AS locked",
        ),
        params: Vec::new(),
    }
    .bind(PRUNE_LOCK);
    let locked = tx.optional(lock, |row| row.int("locked")).await?;
    if locked != Some(1) {
        return Ok(0);
    }
    let query = Query::new(
        "DELETE FROM audit_events WHERE id IN \
         (SELECT id FROM audit_events WHERE at < $1 ORDER BY at LIMIT $2)",
    )
    .bind(before.unix_seconds())
    .bind(limit);
    Ok(tx.execute(query).await?)
}
