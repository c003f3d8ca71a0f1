//! Settings > Webhooks: admins register endpoints (the secret shown once), see each
//! endpoint's deliveries and their attempts, redeliver, and delete, through the same
//! services as `/v1/webhooks`.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use keyward_core::webhook::EventType;
use keyward_core::{MessageId, Scope, WebhookId};
use keyward_store::Page;

use super::form::FormData;
use super::page::{DateCell, FormErrors, Layout};
use super::response::{WebError, render};
use super::session::Person;
use crate::AppState;
use crate::services::webhooks::{self, WebhookInput};

struct EventChoice {
    name: &'static str,
    description: &'static str,
    checked: bool,
}

fn event_choices(checked: &[String]) -> Vec<EventChoice> {
    EventType::ALL
        .iter()
        .map(|event| EventChoice {
            name: event.as_str(),
            description: event.description(),
            checked: checked.iter().any(|name| name == event.as_str()),
        })
        .collect()
}

struct EndpointRow {
    id: String,
    url: String,
    description: String,
    events: Vec<&'static str>,
    enabled: bool,
    created: DateCell,
}

#[derive(Template)]
#[template(path = "webhooks.html")]
struct WebhooksPage {
    layout: Layout,
    rows: Vec<EndpointRow>,
    url: String,
    description: String,
    events: Vec<EventChoice>,
    errors: FormErrors,
    notice: Option<&'static str>,
}

async fn list_page(
    state: &AppState,
    person: &Person,
    entered: (String, String, Vec<String>),
    errors: FormErrors,
    notice: Option<&'static str>,
) -> Result<Response, WebError> {
    let endpoints = webhooks::list(state, &person.caller(state)).await?;
    let rows = endpoints
        .into_iter()
        .map(|view| EndpointRow {
            id: view.id.to_string(),
            url: view.url,
            description: view.description,
            events: view.events,
            enabled: view.enabled,
            created: DateCell::new(view.created_at),
        })
        .collect();
    let status = errors.status();
    let (url, description, checked) = entered;
    let page = WebhooksPage {
        layout: Layout::new(state, person, "webhooks").await?,
        rows,
        url,
        description,
        events: event_choices(&checked),
        errors,
        notice,
    };
    Ok(render(status, &page))
}

#[derive(serde::Deserialize, Default)]
pub struct Params {
    notice: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    person: Person,
    params: Result<axum::extract::Query<Params>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, WebError> {
    person.require(Scope::WEBHOOKS_READ)?;
    let notice = match params.ok().and_then(|p| p.0.notice).as_deref() {
        Some("deleted") => Some("Endpoint deleted: nothing more is sent to it."),
        _ => None,
    };
    let entered = (String::new(), String::new(), Vec::new());
    list_page(&state, &person, entered, FormErrors::default(), notice).await
}

#[derive(Template)]
#[template(path = "webhook_created.html")]
struct CreatedPage {
    layout: Layout,
    id: String,
    url: String,
    secret: String,
}

pub async fn create(
    State(state): State<AppState>,
    person: Person,
    form: FormData,
) -> Result<Response, WebError> {
    person.check_csrf(form.csrf_token())?;
    person.require(Scope::WEBHOOKS_WRITE)?;
    let entered = (
        form.text("url").trim().to_owned(),
        form.text("description").to_owned(),
        form.all("events"),
    );
    let mut errors = FormErrors::default();
    let url = webhooks::check_destination(&state, &entered.0).await;
    let events = webhooks::check_events(&entered.2);
    let description = webhooks::check_description(&entered.1);
    let (url, events, description) = match (url, events, description) {
        (Ok(url), Ok(events), Ok(description)) => (url, events, description),
        (url, events, description) => {
            errors.0.extend(
                [url.err(), events.err(), description.err()]
                    .into_iter()
                    .flatten(),
            );
            return list_page(&state, &person, entered, errors, None).await;
        }
    };
    let input = WebhookInput {
        url,
        events,
        description,
    };
    let created = match webhooks::create(&state, &person.caller(&state), input).await {
        Ok(created) => created,
        Err(error) => {
            errors.absorb(error)?;
            return list_page(&state, &person, entered, errors, None).await;
        }
    };
    let page = CreatedPage {
        layout: Layout::new(&state, &person, "webhooks").await?,
        id: created.webhook.id.to_string(),
        url: created.webhook.url,
        secret: created.secret,
    };
    Ok(render(StatusCode::OK, &page))
}

struct DeliveryRow {
    message_id: String,
    event_type: String,
    created: DateCell,
    state: &'static str,
    attempts: u32,
    last: String,
}

#[derive(Template)]
#[template(path = "webhook.html")]
struct EndpointPage {
    layout: Layout,
    id: String,
    url: String,
    description: String,
    events: Vec<&'static str>,
    enabled: bool,
    deliveries: Vec<DeliveryRow>,
    notice: Option<&'static str>,
    may_write: bool,
}

fn parse_id(raw: &str) -> Result<WebhookId, WebError> {
    WebhookId::parse(raw).map_err(|_| WebError::not_found("webhook endpoint"))
}

pub async fn show(
    State(state): State<AppState>,
    person: Person,
    Path(raw): Path<String>,
    params: Result<axum::extract::Query<Params>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, WebError> {
    person.require(Scope::WEBHOOKS_READ)?;
    let id = parse_id(&raw)?;
    let caller = person.caller(&state);
    let view = webhooks::show(&state, &caller, id).await?;
    let list = webhooks::deliveries(&state, &caller, id, Page::first(50)).await?;
    let deliveries = list
        .data
        .into_iter()
        .map(|delivery| DeliveryRow {
            message_id: delivery.message_id.to_string(),
            event_type: delivery.event_type,
            created: DateCell::new(delivery.created_at),
            state: delivery.state,
            attempts: delivery.attempts,
            last: match (delivery.last_status, delivery.last_error) {
                (Some(status), _) => format!("HTTP {status}"),
                (None, Some(error)) => error,
                (None, None) => "—".into(),
            },
        })
        .collect();
    let notice = match params.ok().and_then(|p| p.0.notice).as_deref() {
        Some("redeliver") => Some("Queued: it is sent again shortly, with the same webhook-id."),
        _ => None,
    };
    let page = EndpointPage {
        layout: Layout::new(&state, &person, "webhooks").await?,
        id: view.id.to_string(),
        url: view.url,
        description: view.description,
        events: view.events,
        enabled: view.enabled,
        deliveries,
        notice,
        may_write: person.can(Scope::WEBHOOKS_WRITE),
    };
    Ok(render(StatusCode::OK, &page))
}

struct AttemptRow {
    at: DateCell,
    result: String,
    latency_ms: u64,
}

#[derive(Template)]
#[template(path = "webhook_delivery.html")]
struct DeliveryPage {
    layout: Layout,
    endpoint_id: String,
    message_id: String,
    event_type: String,
    state: &'static str,
    attempts: Vec<AttemptRow>,
    payload: String,
    may_write: bool,
}

pub async fn show_delivery(
    State(state): State<AppState>,
    person: Person,
    Path((raw, message)): Path<(String, String)>,
) -> Result<Response, WebError> {
    person.require(Scope::WEBHOOKS_READ)?;
    let id = parse_id(&raw)?;
    let message = MessageId::parse(&message).map_err(|_| WebError::not_found("delivery"))?;
    let detail = webhooks::delivery(&state, &person.caller(&state), id, message).await?;
    let page = DeliveryPage {
        layout: Layout::new(&state, &person, "webhooks").await?,
        endpoint_id: id.to_string(),
        message_id: message.to_string(),
        event_type: detail.delivery.event_type,
        state: detail.delivery.state,
        attempts: detail
            .attempts_made
            .into_iter()
            .map(|attempt| AttemptRow {
                at: DateCell::new(attempt.attempted_at),
                result: match (attempt.status, attempt.error) {
                    (Some(status), _) => format!("HTTP {status}"),
                    (None, Some(error)) => error,
                    (None, None) => "—".into(),
                },
                latency_ms: attempt.latency_ms,
            })
            .collect(),
        payload: serde_json::to_string_pretty(&detail.payload).unwrap_or_default(),
        may_write: person.can(Scope::WEBHOOKS_WRITE),
    };
    Ok(render(StatusCode::OK, &page))
}

pub async fn redeliver(
    State(state): State<AppState>,
    person: Person,
    Path((raw, message)): Path<(String, String)>,
    form: FormData,
) -> Result<Response, WebError> {
    person.check_csrf(form.csrf_token())?;
    person.require(Scope::WEBHOOKS_WRITE)?;
    let id = parse_id(&raw)?;
    let message = MessageId::parse(&message).map_err(|_| WebError::not_found("delivery"))?;
    webhooks::redeliver(&state, &person.caller(&state), id, message).await?;
    Ok(Redirect::to(&format!("/settings/webhooks/{id}?notice=redeliver")).into_response())
}

pub async fn delete(
    State(state): State<AppState>,
    person: Person,
    Path(raw): Path<String>,
    form: FormData,
) -> Result<Response, WebError> {
    person.check_csrf(form.csrf_token())?;
    person.require(Scope::WEBHOOKS_WRITE)?;
    let id = parse_id(&raw)?;
    webhooks::delete(&state, &person.caller(&state), id).await?;
    Ok(Redirect::to("/settings/webhooks?notice=deleted").into_response())
}
