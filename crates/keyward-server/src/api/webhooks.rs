//! `/v1/webhooks`: the organization's webhook endpoints (Standard Webhooks), their deliveries
//! and attempts, and manual redelivery.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use keyward_core::{MessageId, Scope, WebhookId};
use keyward_store::WebhookChanges;
use serde::Deserialize;

use utoipa_axum::routes;

use super::ApiRoutes;
use super::credential_body::present;
use crate::AppState;
use crate::audit::Origin;
use crate::auth::Principal;
use crate::error::{ApiError, validate};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::pagination::{List, ListQuery, page_from};
use crate::services::caller::Caller;
use crate::services::webhooks::{
    self, CreatedWebhook, DeliveryDetail, DeliveryView, WebhookInput, WebhookView,
};

pub fn router() -> ApiRoutes {
    ApiRoutes::new()
        .routes(routes!(list_webhooks, create_webhook))
        .routes(routes!(show_webhook, update_webhook, delete_webhook))
        .routes(routes!(list_deliveries))
        .routes(routes!(show_delivery))
        .routes(routes!(redeliver))
}

fn parse_id(raw: &str) -> Result<WebhookId, ApiError> {
    WebhookId::parse(raw).map_err(|_| ApiError::NotFound("webhook endpoint"))
}

fn parse_message(raw: &str) -> Result<MessageId, ApiError> {
    MessageId::parse(raw).map_err(|_| ApiError::NotFound("delivery"))
}

/// `{url, events, description?}`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateWebhook {
    /// An https:// (or http://) URL whose host resolves to public addresses only.
    #[schema(example = "https://hooks.example.com/keyward", max_length = 2048)]
    url: String,
    /// The events it receives, at least one.
    #[schema(example = json!(["api_key.revoked", "api_key.expiring"]), min_items = 1)]
    events: Vec<String>,
    /// At most 200 characters.
    #[serde(default)]
    #[schema(example = "Security alerts", max_length = 200)]
    description: String,
}

/// `{url?, events?, description?, enabled?}`, at least one.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct UpdateWebhook {
    #[serde(default)]
    #[schema(max_length = 2048)]
    url: Option<String>,
    #[serde(default)]
    events: Option<Vec<String>>,
    #[serde(default)]
    #[schema(max_length = 200)]
    description: Option<String>,
    /// A disabled endpoint receives nothing: no messages for what happens meanwhile; its
    /// pending deliveries wait until it is enabled again.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<bool>)]
    enabled: Option<Option<bool>>,
}

/// List webhook endpoints
///
/// The organization's endpoints, newest first (at most 20).
#[utoipa::path(
    get, path = "/v1/webhooks", tag = "Webhooks",
    responses((status = 200, description = "The endpoints", body = List<WebhookView>)),
    security(("bearer" = ["webhooks:read"]))
)]
pub(super) async fn list_webhooks(
    State(state): State<AppState>,
    principal: Principal,
    origin: Origin,
) -> Result<ApiJson<List<WebhookView>>, ApiError> {
    principal.require(Scope::WEBHOOKS_READ)?;
    let data = webhooks::list(&state, &Caller::credential(&principal, &origin)).await?;
    Ok(ApiJson(List {
        data,
        next_cursor: None,
    }))
}

/// Register a webhook endpoint
///
/// The answer holds the endpoint's signing secret, which no other answer shows again.
#[utoipa::path(
    post, path = "/v1/webhooks", tag = "Webhooks",
    request_body = CreateWebhook,
    responses((status = 201, description = "Registered; the secret is shown this once", body = CreatedWebhook)),
    security(("bearer" = ["webhooks:write"]))
)]
pub(super) async fn create_webhook(
    State(state): State<AppState>,
    principal: Principal,
    origin: Origin,
    body: Result<ApiJson<CreateWebhook>, ApiError>,
) -> Result<impl IntoResponse, ApiError> {
    principal.require(Scope::WEBHOOKS_WRITE)?;
    let ApiJson(body) = body?;
    let url = webhooks::check_destination(&state, &body.url).await;
    let events = webhooks::check_events(&body.events);
    let description = webhooks::check_description(&body.description);
    validate!(url, events, description);
    let input = WebhookInput {
        url,
        events,
        description,
    };
    let created = webhooks::create(&state, &Caller::credential(&principal, &origin), input).await?;
    let location = format!("/v1/webhooks/{}", created.webhook.id);
    Ok(super::created_with_secret(
        "webhook endpoint (and its signing secret)",
        location,
        created,
    ))
}

/// Show a webhook endpoint
#[utoipa::path(
    get, path = "/v1/webhooks/{webhook_id}", tag = "Webhooks",
    params(("webhook_id" = String, Path, description = "The endpoint's id, `whk_…`")),
    responses((status = 200, description = "The endpoint", body = WebhookView)),
    security(("bearer" = ["webhooks:read"]))
)]
pub(super) async fn show_webhook(
    State(state): State<AppState>,
    principal: Principal,
    origin: Origin,
    ApiPath(id): ApiPath<String>,
) -> Result<ApiJson<WebhookView>, ApiError> {
    principal.require(Scope::WEBHOOKS_READ)?;
    let view = webhooks::show(
        &state,
        &Caller::credential(&principal, &origin),
        parse_id(&id)?,
    )
    .await?;
    Ok(ApiJson(view))
}

/// Change a webhook endpoint
///
/// Its URL (checked again), events, description, or whether it is enabled.
#[utoipa::path(
    patch, path = "/v1/webhooks/{webhook_id}", tag = "Webhooks",
    params(("webhook_id" = String, Path, description = "The endpoint's id, `whk_…`")),
    request_body = UpdateWebhook,
    responses((status = 200, description = "The endpoint", body = WebhookView)),
    security(("bearer" = ["webhooks:write"]))
)]
pub(super) async fn update_webhook(
    State(state): State<AppState>,
    principal: Principal,
    origin: Origin,
    ApiPath(id): ApiPath<String>,
    body: Result<ApiJson<UpdateWebhook>, ApiError>,
) -> Result<ApiJson<WebhookView>, ApiError> {
    principal.require(Scope::WEBHOOKS_WRITE)?;
    let id = parse_id(&id)?;
    let ApiJson(body) = body?;
    if body.url.is_none()
        && body.events.is_none()
        && body.description.is_none()
        && body.enabled.is_none()
    {
        return Err(ApiError::invalid(
            "url",
            "send at least one of url, events, description and enabled",
        ));
    }
    let enabled = match body.enabled {
        Some(None) => return Err(ApiError::invalid("enabled", "must be true or false")),
        Some(Some(enabled)) => Some(enabled),
        None => None,
    };
    let url = match &body.url {
        Some(url) => Some(webhooks::check_destination(&state, url).await).transpose(),
        None => Ok(None),
    };
    let events = body
        .events
        .as_deref()
        .map(webhooks::check_events)
        .transpose();
    let description = body
        .description
        .as_deref()
        .map(webhooks::check_description)
        .transpose();
    validate!(url, events, description);
    let changes = WebhookChanges {
        url,
        events,
        description,
        enabled,
    };
    let view = webhooks::update(
        &state,
        &Caller::credential(&principal, &origin),
        id,
        changes,
    )
    .await?;
    Ok(ApiJson(view))
}

/// Delete a webhook endpoint
///
/// With its deliveries; nothing more is sent to it.
#[utoipa::path(
    delete, path = "/v1/webhooks/{webhook_id}", tag = "Webhooks",
    params(("webhook_id" = String, Path, description = "The endpoint's id, `whk_…`")),
    responses((status = 204, description = "Deleted")),
    security(("bearer" = ["webhooks:write"]))
)]
pub(super) async fn delete_webhook(
    State(state): State<AppState>,
    principal: Principal,
    origin: Origin,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    principal.require(Scope::WEBHOOKS_WRITE)?;
    let id = parse_id(&id)?;
    webhooks::delete(&state, &Caller::credential(&principal, &origin), id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// List an endpoint's deliveries
///
/// Newest first, with each one's state, attempts and last answer.
#[utoipa::path(
    get, path = "/v1/webhooks/{webhook_id}/deliveries", tag = "Webhooks",
    params(("webhook_id" = String, Path, description = "The endpoint's id, `whk_…`"), ListQuery),
    responses((status = 200, description = "A page of deliveries", body = List<DeliveryView>)),
    security(("bearer" = ["webhooks:read"]))
)]
pub(super) async fn list_deliveries(
    State(state): State<AppState>,
    principal: Principal,
    origin: Origin,
    ApiPath(id): ApiPath<String>,
    query: Result<ApiQuery<ListQuery>, ApiError>,
) -> Result<ApiJson<List<DeliveryView>>, ApiError> {
    principal.require(Scope::WEBHOOKS_READ)?;
    let id = parse_id(&id)?;
    let ApiQuery(query) = query?;
    let page = page_from(query.limit, query.cursor.as_deref(), |text| {
        MessageId::parse(text).ok().map(|id| id.as_uuid())
    })?;
    let list =
        webhooks::deliveries(&state, &Caller::credential(&principal, &origin), id, page).await?;
    Ok(ApiJson(list))
}

/// Show a delivery
///
/// Its attempts (time, status, latency, error) and the payload sent.
#[utoipa::path(
    get, path = "/v1/webhooks/{webhook_id}/deliveries/{message_id}", tag = "Webhooks",
    params(
        ("webhook_id" = String, Path, description = "The endpoint's id, `whk_…`"),
        ("message_id" = String, Path, description = "The message's id, `msg_…` (its `webhook-id`)"),
    ),
    responses((status = 200, description = "The delivery", body = DeliveryDetail)),
    security(("bearer" = ["webhooks:read"]))
)]
pub(super) async fn show_delivery(
    State(state): State<AppState>,
    principal: Principal,
    origin: Origin,
    ApiPath((id, message)): ApiPath<(String, String)>,
) -> Result<ApiJson<DeliveryDetail>, ApiError> {
    principal.require(Scope::WEBHOOKS_READ)?;
    let (id, message) = (parse_id(&id)?, parse_message(&message)?);
    let detail = webhooks::delivery(
        &state,
        &Caller::credential(&principal, &origin),
        id,
        message,
    )
    .await?;
    Ok(ApiJson(detail))
}

/// Redeliver a message
///
/// Makes the delivery due now, whatever its state; it is sent again with the same
/// `webhook-id` (and a new timestamp and signature).
#[utoipa::path(
    post, path = "/v1/webhooks/{webhook_id}/deliveries/{message_id}/redeliver", tag = "Webhooks",
    params(
        ("webhook_id" = String, Path, description = "The endpoint's id, `whk_…`"),
        ("message_id" = String, Path, description = "The message's id, `msg_…`"),
    ),
    responses((status = 202, description = "Queued")),
    security(("bearer" = ["webhooks:write"]))
)]
pub(super) async fn redeliver(
    State(state): State<AppState>,
    principal: Principal,
    origin: Origin,
    ApiPath((id, message)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    principal.require(Scope::WEBHOOKS_WRITE)?;
    let (id, message) = (parse_id(&id)?, parse_message(&message)?);
    webhooks::redeliver(
        &state,
        &Caller::credential(&principal, &origin),
        id,
        message,
    )
    .await?;
    Ok(StatusCode::ACCEPTED)
}
