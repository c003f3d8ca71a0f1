//! Settings > Audit log: owners and admins (who hold `audit:read` in their role) read the
//! organization's events, newest first, with the API's filters; the days of `since` and
//! `until` are whole UTC days.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use keyward_core::{EventId, Scope, Timestamp};
use keyward_store::Page;
use serde::Deserialize;

use super::page::{DateCell, FormErrors, Layout};
use super::response::{WebError, render};
use super::session::Person;
use crate::AppState;
use crate::services::audit::{self, AuditEventView, FilterInput};

const ROWS_PER_PAGE: u32 = 50;

#[derive(Deserialize, Default)]
pub struct Params {
    action: Option<String>,
    actor: Option<String>,
    target: Option<String>,
    /// A day, `2026-11-27`.
    since: Option<String>,
    until: Option<String>,
    cursor: Option<String>,
}

struct EventRow {
    at: DateCell,
    action: String,
    actor: String,
    target: String,
    changes: String,
    client_ip: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    layout: Layout,
    rows: Vec<EventRow>,
    action: String,
    actor: String,
    target: String,
    since: String,
    until: String,
    errors: FormErrors,
    older_url: Option<String>,
}

/// `day` as the time it starts, `later` days on, as RFC 3339 (or as given, to be refused
/// with the filter's message).
fn day_start(day: Option<&str>, later: i64) -> Option<String> {
    let day = day.map(str::trim).filter(|d| !d.is_empty())?;
    Some(
        Timestamp::parse(&format!("{day}T00:00:00Z"))
            .map(|at| at.plus_seconds(later * 86_400).to_string())
            .unwrap_or_else(|_| day.to_owned()),
    )
}

fn row(event: AuditEventView) -> EventRow {
    let actor = match event.actor.kind {
        "user" => event.actor.email.unwrap_or_default(),
        "credential" => format!(
            "{} ({})",
            event.actor.hint.unwrap_or_default(),
            event.actor.id.unwrap_or_default()
        ),
        _ => "Keyward".to_owned(),
    };
    let changes = event
        .changes
        .as_object()
        .map(|fields| {
            fields
                .iter()
                .map(|(field, change)| {
                    let text = |v: &serde_json::Value| match v {
                        serde_json::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    match (change.get("before"), change.get("after")) {
                        (Some(before), Some(after)) => {
                            format!("{field}: {} → {}", text(before), text(after))
                        }
                        (None, Some(after)) => format!("{field}: {}", text(after)),
                        (Some(before), None) => format!("{field} was {}", text(before)),
                        (None, None) => field.clone(),
                    }
                })
                .collect::<Vec<_>>()
                .join("; ")
        })
        .unwrap_or_default();
    EventRow {
        at: DateCell::new(event.at),
        action: event.action,
        actor,
        target: format!("{} {}", event.target.kind, event.target.id),
        changes,
        client_ip: event.client_ip.unwrap_or_default(),
    }
}

pub async fn audit_log(
    State(state): State<AppState>,
    person: Person,
    params: Result<Query<Params>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, WebError> {
    person.require(Scope::AUDIT_READ)?;
    let params = params.map(|Query(p)| p).unwrap_or_default();
    let since = day_start(params.since.as_deref(), 0);
    let until = day_start(params.until.as_deref(), 1);
    let filter = FilterInput {
        action: params.action.as_deref(),
        actor: params.actor.as_deref(),
        target: params.target.as_deref(),
        since: since.as_deref(),
        until: until.as_deref(),
    }
    .parse();
    let page = Page {
        limit: ROWS_PER_PAGE,
        before: params
            .cursor
            .as_deref()
            .and_then(|c| EventId::parse(c).ok())
            .map(|id| id.as_uuid()),
    };
    let (rows, older_url, errors, status) = match filter {
        Ok(filter) => {
            let list = audit::list(&state, &person.caller(&state), &filter, page).await?;
            let older_url = list.next_cursor.map(|cursor| {
                let mut query = form_urlencoded::Serializer::new(String::new());
                for (name, value) in [
                    ("action", &params.action),
                    ("actor", &params.actor),
                    ("target", &params.target),
                    ("since", &params.since),
                    ("until", &params.until),
                ] {
                    if let Some(value) = value.as_deref().filter(|v| !v.is_empty()) {
                        query.append_pair(name, value);
                    }
                }
                query.append_pair("cursor", &cursor);
                format!("/settings/audit-log?{}", query.finish())
            });
            let rows = list.data.into_iter().map(row).collect();
            (rows, older_url, FormErrors::default(), StatusCode::OK)
        }
        Err(errors) => (
            Vec::new(),
            None,
            FormErrors(errors),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    };
    let page = AuditPage {
        layout: Layout::new(&state, &person, "audit").await?,
        rows,
        action: params.action.unwrap_or_default(),
        actor: params.actor.unwrap_or_default(),
        target: params.target.unwrap_or_default(),
        since: params.since.unwrap_or_default(),
        until: params.until.unwrap_or_default(),
        errors,
        older_url,
    };
    Ok(render(status, &page))
}
