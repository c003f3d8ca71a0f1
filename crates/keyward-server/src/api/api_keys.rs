//! `/v1/api-keys`: the organization's API keys (Settings > API Keys).

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use keyward_core::{CredentialId, CredentialKind, Scope};
use keyward_store::CredentialFilter;
use serde::Deserialize;

use super::ApiRoutes;
use super::credential_body::{CreateCredential, UpdateCredential, grantor};
use crate::AppState;
use crate::auth::Principal;
use crate::credentials::{self, CredentialView, not_found_label};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::pagination::{List, page_from};

pub fn router() -> ApiRoutes {
    ApiRoutes::new()
        .route("/v1/api-keys", get(list_api_keys).post(create_api_key))
        .route(
            "/v1/api-keys/{key_id}",
            get(show_api_key)
                .patch(update_api_key)
                .delete(revoke_api_key),
        )
}

const API_KEYS: CredentialFilter = CredentialFilter {
    kind: CredentialKind::ApiKey,
    project: None,
};

fn parse_id(raw: &str) -> Result<CredentialId, ApiError> {
    CredentialId::parse(raw, CredentialKind::ApiKey)
        .map_err(|_| ApiError::NotFound(not_found_label(CredentialKind::ApiKey)))
}

#[derive(Deserialize)]
struct ListQuery {
    limit: Option<u32>,
    cursor: Option<String>,
}

async fn list_api_keys(
    State(state): State<AppState>,
    principal: Principal,
    query: Result<ApiQuery<ListQuery>, ApiError>,
) -> Result<ApiJson<List<CredentialView>>, ApiError> {
    principal.require(Scope::ApiKeysRead)?;
    let ApiQuery(query) = query?;
    let page = page_from(query.limit, query.cursor.as_deref(), |text| {
        CredentialId::parse(text, CredentialKind::ApiKey)
            .ok()
            .map(|id| id.as_uuid())
    })?;
    let list = credentials::list(&state, principal.organization_id, API_KEYS, page).await?;
    Ok(ApiJson(list))
}

async fn create_api_key(
    State(state): State<AppState>,
    principal: Principal,
    body: Result<ApiJson<CreateCredential>, ApiError>,
) -> Result<impl IntoResponse, ApiError> {
    principal.require(Scope::ApiKeysWrite)?;
    let ApiJson(body) = body?;
    let input = body.parse()?;
    let created = credentials::create(
        &state,
        &grantor(&principal),
        CredentialKind::ApiKey,
        None,
        input,
        CredentialId::generate(CredentialKind::ApiKey),
    )
    .await?;
    let location = format!("/v1/api-keys/{}", created.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        ApiJson(created),
    ))
}

async fn show_api_key(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<ApiJson<CredentialView>, ApiError> {
    principal.require(Scope::ApiKeysRead)?;
    let view = credentials::show(&state, principal.organization_id, parse_id(&id)?, None).await?;
    Ok(ApiJson(view))
}

async fn revoke_api_key(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    principal.require(Scope::ApiKeysWrite)?;
    credentials::revoke(&state, principal.organization_id, parse_id(&id)?, None).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Renames a key or changes its rate limit; the next request sees the change.
async fn update_api_key(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    body: Result<ApiJson<UpdateCredential>, ApiError>,
) -> Result<ApiJson<CredentialView>, ApiError> {
    principal.require(Scope::ApiKeysWrite)?;
    let ApiJson(body) = body?;
    let changes = body.parse()?;
    let view = credentials::update(
        &state,
        principal.organization_id,
        parse_id(&id)?,
        None,
        changes,
    )
    .await?;
    Ok(ApiJson(view))
}
