//! Webhook endpoints, as the API and the dashboard manage them: register (the secret shown
//! once), list, change, delete, and read and redeliver their deliveries.

use keyward_core::webhook::EventTypes;
use keyward_core::{MessageId, Timestamp, WebhookId};
use keyward_store::{
    AttemptRecord, DeliveryRecord, DeliveryState, NewWebhook, Page, WebhookChanges, WebhookRecord,
};
use serde::Serialize;

use super::caller::Caller;
use super::{Conflict, ServiceError, store_error};
use crate::AppState;
use crate::field_error::FieldError;
use crate::pagination::List;

/// Longest description.
pub const MAX_DESCRIPTION: usize = 200;

/// A validated request for a new endpoint.
pub struct WebhookInput {
    pub url: String,
    pub description: String,
    pub events: EventTypes,
}

/// An endpoint as lists and `GET` show it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct WebhookView {
    #[schema(value_type = String, example = "whk_01m8dz95x5e4w8stdkzcqeqr73")]
    pub id: WebhookId,
    #[schema(example = "https://hooks.example.com/keyward")]
    pub url: String,
    pub description: String,
    /// The events it receives.
    #[schema(value_type = Vec<String>, example = json!(["api_key.revoked", "api_key.expiring"]))]
    pub events: Vec<&'static str>,
    /// A disabled endpoint receives nothing until enabled again: it gets no messages for what
    /// happens meanwhile, and its pending deliveries wait.
    pub enabled: bool,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

impl From<WebhookRecord> for WebhookView {
    fn from(record: WebhookRecord) -> Self {
        Self {
            id: record.id,
            url: record.url,
            description: record.description,
            events: record.events.names(),
            enabled: record.enabled,
            created_at: record.created_at,
            updated_at: record.updated_at,
        }
    }
}

/// A new endpoint, with its signing secret: the one answer that shows it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatedWebhook {
    #[serde(flatten)]
    pub webhook: WebhookView,
    /// The signing secret (Standard Webhooks `whsec_…`). Shown here once; Keyward does not
    /// store it (it derives it from the installation's signing key).
    #[schema(example = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwUm4T1pDZ9PI=")]
    pub secret: String,
}

/// One message to an endpoint.
#[derive(Serialize, utoipa::ToSchema)]
pub struct DeliveryView {
    /// The `webhook-id`: the same on every attempt.
    #[schema(value_type = String, example = "msg_01m8dz95x5e4w8stdkzcqeqr73")]
    pub message_id: MessageId,
    #[schema(example = "api_key.revoked")]
    pub event_type: String,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// `pending` (waiting for its next attempt), `delivered` (answered 2xx) or `failed`
    /// (every attempt failed; redeliver to try again).
    #[schema(example = "delivered")]
    pub state: &'static str,
    pub attempts: u32,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub next_attempt_at: Option<Timestamp>,
    /// The status of the last answer, if there was one.
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
}

impl From<DeliveryRecord> for DeliveryView {
    fn from(record: DeliveryRecord) -> Self {
        Self {
            message_id: record.message_id,
            event_type: record.event_type,
            created_at: record.created_at,
            state: record.state.as_str(),
            attempts: record.attempts,
            next_attempt_at: (record.state == DeliveryState::Pending)
                .then_some(record.next_attempt_at)
                .flatten(),
            last_status: record.last_status,
            last_error: record.last_error,
        }
    }
}

/// One attempt.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AttemptView {
    #[schema(value_type = String, format = DateTime)]
    pub attempted_at: Timestamp,
    /// The HTTP status, if the endpoint answered.
    pub status: Option<u16>,
    pub latency_ms: u64,
    /// Why it failed without an answer: refused address, timeout, connection error.
    pub error: Option<String>,
}

impl From<AttemptRecord> for AttemptView {
    fn from(record: AttemptRecord) -> Self {
        Self {
            attempted_at: record.attempted_at,
            status: record.status,
            latency_ms: record.latency_ms,
            error: record.error,
        }
    }
}

/// A delivery with its attempts and the payload sent.
#[derive(Serialize, utoipa::ToSchema)]
pub struct DeliveryDetail {
    #[serde(flatten)]
    pub delivery: DeliveryView,
    pub attempts_made: Vec<AttemptView>,
    /// The body sent, as JSON.
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
}

/// Checks a URL: its form, then where its host resolves (public addresses only, unless the
/// operator allows private networks).
pub async fn check_destination(state: &AppState, raw: &str) -> Result<String, FieldError> {
    let url = crate::webhooks::check_url(raw.trim()).map_err(|e| FieldError::new("url", e))?;
    crate::webhooks::resolve_checked(&url, state.config.webhooks_allow_private_networks)
        .await
        .map_err(|e| FieldError::new("url", e))?;
    Ok(url.to_string())
}

/// A description: at most [`MAX_DESCRIPTION`] characters, no control characters, no
/// invisible formatting characters (as names).
pub fn check_description(raw: &str) -> Result<String, FieldError> {
    let text = raw.trim();
    if text.chars().count() > MAX_DESCRIPTION || text.chars().any(char::is_control) {
        return Err(FieldError::new(
            "description",
            "at most 200 characters, on one line",
        ));
    }
    keyward_core::names::refuse_invisible(text).map_err(|e| FieldError::new("description", e))?;
    Ok(text.to_owned())
}

/// Event names: at least one, each known.
pub fn check_events<S: AsRef<str>>(names: &[S]) -> Result<EventTypes, FieldError> {
    let events = EventTypes::parse(names).map_err(|e| FieldError::new("events", e))?;
    if events.is_empty() {
        return Err(FieldError::new("events", "choose at least one event"));
    }
    Ok(events)
}

/// Registers an endpoint and returns it with its secret, shown this once.
pub async fn create(
    state: &AppState,
    caller: &Caller,
    input: WebhookInput,
) -> Result<CreatedWebhook, ServiceError> {
    let key = state.config.webhook_signing_key.as_ref().ok_or_else(|| {
        ServiceError::internal(std::io::Error::other(
            "this server has no webhook signing key (--webhooks-key-file)",
        ))
    })?;
    let id = WebhookId::generate();
    let secret = key.secret_for(id);
    let record = state
        .store
        .insert_webhook(
            &caller.audit,
            NewWebhook {
                id,
                organization_id: caller.organization_id,
                url: input.url,
                description: input.description,
                events: input.events,
                secret_check: secret.check_value(),
                created_at: state.config.clock.now(),
            },
        )
        .await
        .map_err(store_error(Conflict::TooManyWebhooks))?;
    Ok(CreatedWebhook {
        webhook: record.into(),
        secret: secret.expose().to_string(),
    })
}

pub async fn list(state: &AppState, caller: &Caller) -> Result<Vec<WebhookView>, ServiceError> {
    let records = state.store.list_webhooks(caller.organization_id).await?;
    Ok(records.into_iter().map(WebhookView::from).collect())
}

pub async fn show(
    state: &AppState,
    caller: &Caller,
    id: WebhookId,
) -> Result<WebhookView, ServiceError> {
    state
        .store
        .get_webhook(caller.organization_id, id)
        .await?
        .map(WebhookView::from)
        .ok_or(ServiceError::NotFound("webhook endpoint"))
}

pub async fn update(
    state: &AppState,
    caller: &Caller,
    id: WebhookId,
    changes: WebhookChanges,
) -> Result<WebhookView, ServiceError> {
    state
        .store
        .update_webhook(&caller.audit, caller.organization_id, id, changes)
        .await?
        .map(WebhookView::from)
        .ok_or(ServiceError::NotFound("webhook endpoint"))
}

pub async fn delete(state: &AppState, caller: &Caller, id: WebhookId) -> Result<(), ServiceError> {
    if state
        .store
        .delete_webhook(&caller.audit, caller.organization_id, id)
        .await?
    {
        Ok(())
    } else {
        Err(ServiceError::NotFound("webhook endpoint"))
    }
}

pub async fn deliveries(
    state: &AppState,
    caller: &Caller,
    id: WebhookId,
    page: Page,
) -> Result<List<DeliveryView>, ServiceError> {
    show(state, caller, id).await?;
    let paged = state
        .store
        .list_webhook_deliveries(caller.organization_id, id, page)
        .await?;
    Ok(List::from_paged(
        paged,
        |record| record.message_id.to_string(),
        DeliveryView::from,
    ))
}

pub async fn delivery(
    state: &AppState,
    caller: &Caller,
    id: WebhookId,
    message: MessageId,
) -> Result<DeliveryDetail, ServiceError> {
    let (delivery, attempts, payload) = state
        .store
        .get_webhook_delivery(caller.organization_id, id, message)
        .await?
        .ok_or(ServiceError::NotFound("delivery"))?;
    Ok(DeliveryDetail {
        delivery: delivery.into(),
        attempts_made: attempts.into_iter().map(AttemptView::from).collect(),
        payload: serde_json::from_str(&payload).unwrap_or(serde_json::Value::Null),
    })
}

/// Makes a delivery due now, whatever its state.
pub async fn redeliver(
    state: &AppState,
    caller: &Caller,
    id: WebhookId,
    message: MessageId,
) -> Result<(), ServiceError> {
    if !show(state, caller, id).await?.enabled {
        return Err(ServiceError::Conflict(Conflict::WebhookDisabled));
    }
    let now = state.config.clock.now();
    if state
        .store
        .redeliver_webhook(&caller.audit, caller.organization_id, id, message, now)
        .await?
    {
        Ok(())
    } else {
        Err(ServiceError::NotFound("delivery"))
    }
}
