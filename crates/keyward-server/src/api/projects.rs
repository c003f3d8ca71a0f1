//! `/v1/projects`: the organization's projects.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use keyward_core::{Description, Name, OrganizationId, ProjectId, Scope, Timestamp};
use keyward_store::ProjectRecord;
use serde::{Deserialize, Serialize};

use utoipa_axum::routes;

use super::ApiRoutes;
use crate::AppState;
use crate::audit::Origin;
use crate::auth::Principal;
use crate::error::{ApiError, validate};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::field_error::FieldError;
use crate::pagination::{List, ListQuery, page_from};
use crate::services::caller::Caller;
use crate::services::projects;

pub fn router() -> ApiRoutes {
    ApiRoutes::new()
        .routes(routes!(list_projects, create_project))
        .routes(routes!(show_project, update_project, delete_project))
}

/// A project.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Project)]
pub(super) struct ProjectView {
    #[schema(value_type = String, example = "prj_01m8dz968yez2sm2rg58r2payg")]
    id: ProjectId,
    #[schema(value_type = String, example = "org_01m8dz95x5e4w8stdkz9nzcgw8")]
    organization_id: OrganizationId,
    #[schema(value_type = String, example = "Web")]
    name: Name,
    description: String,
    #[schema(value_type = String, format = DateTime, example = "2026-11-27T07:24:06Z")]
    created_at: Timestamp,
    #[schema(value_type = String, format = DateTime, example = "2026-11-27T07:24:06Z")]
    updated_at: Timestamp,
}

impl From<ProjectRecord> for ProjectView {
    fn from(record: ProjectRecord) -> Self {
        Self {
            id: record.id,
            organization_id: record.organization_id,
            name: record.name,
            description: record.description,
            created_at: record.created_at,
            updated_at: record.updated_at,
        }
    }
}

/// A new project: a name unique in the organization (ignoring case), 1 to 100 characters.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateProject {
    #[schema(
        example = "Web",
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    name: String,
    /// Up to 1000 characters.
    #[serde(default)]
    #[schema(max_length = 1000)]
    description: Option<String>,
}

/// A new name, a new description, or both.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct UpdateProject {
    #[serde(default)]
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    name: Option<String>,
    #[serde(default)]
    #[schema(max_length = 1000)]
    description: Option<String>,
}

pub(super) fn parse_id(raw: &str) -> Result<ProjectId, ApiError> {
    ProjectId::parse(raw).map_err(|_| ApiError::NotFound("project"))
}

fn parse_description(raw: Option<&str>) -> Result<Option<Description>, FieldError> {
    raw.map(Description::parse)
        .transpose()
        .map_err(|e| FieldError::new("description", e))
}

/// List projects
///
/// Newest first. A project token sees its own project only.
#[utoipa::path(
    get, path = "/v1/projects", tag = "Projects",
    params(ListQuery),
    responses((status = 200, description = "A page of projects", body = List<ProjectView>)),
    security(("bearer" = ["projects:read"]))
)]
pub(super) async fn list_projects(
    State(state): State<AppState>,
    principal: Principal,
    origin: Origin,
    query: Result<ApiQuery<ListQuery>, ApiError>,
) -> Result<ApiJson<List<ProjectView>>, ApiError> {
    principal.require(Scope::PROJECTS_READ)?;
    let ApiQuery(query) = query?;
    let page = page_from(query.limit, query.cursor.as_deref(), |text| {
        ProjectId::parse(text).ok().map(|id| id.as_uuid())
    })?;
    let caller = Caller::credential(&principal, &origin);
    let paged = projects::list(&state, &caller, page).await?;
    Ok(ApiJson(List::from_paged(
        paged,
        |record| record.id.to_string(),
        ProjectView::from,
    )))
}

/// Create a project
#[utoipa::path(
    post, path = "/v1/projects", tag = "Projects",
    request_body = CreateProject,
    responses((status = 201, description = "Created", body = ProjectView)),
    security(("bearer" = ["projects:write"]))
)]
pub(super) async fn create_project(
    State(state): State<AppState>,
    principal: Principal,
    origin: Origin,
    body: Result<ApiJson<CreateProject>, ApiError>,
) -> Result<impl IntoResponse, ApiError> {
    principal.require(Scope::PROJECTS_WRITE)?;
    let ApiJson(body) = body?;
    let name = Name::parse(&body.name).map_err(|e| FieldError::new("name", e));
    let description = parse_description(body.description.as_deref());
    validate!(name, description);
    let record = projects::create(
        &state,
        &Caller::credential(&principal, &origin),
        name,
        description.unwrap_or_default(),
    )
    .await?;
    let location = format!("/v1/projects/{}", record.id);
    Ok(super::created(location, ProjectView::from(record)))
}

/// Show a project
#[utoipa::path(
    get, path = "/v1/projects/{project_id}", tag = "Projects",
    params(("project_id" = String, Path, description = "The project's id, `prj_…`")),
    responses((status = 200, description = "The project", body = ProjectView)),
    security(("bearer" = ["projects:read"]))
)]
pub(super) async fn show_project(
    State(state): State<AppState>,
    principal: Principal,
    origin: Origin,
    ApiPath(id): ApiPath<String>,
) -> Result<ApiJson<ProjectView>, ApiError> {
    principal.require(Scope::PROJECTS_READ)?;
    let id = parse_id(&id)?;
    let caller = Caller::credential(&principal, &origin);
    let record = projects::get(&state, &caller, id).await?;
    Ok(ApiJson(record.into()))
}

/// Rename a project or change its description
#[utoipa::path(
    patch, path = "/v1/projects/{project_id}", tag = "Projects",
    params(("project_id" = String, Path, description = "The project's id, `prj_…`")),
    request_body = UpdateProject,
    responses((status = 200, description = "The project as changed", body = ProjectView)),
    security(("bearer" = ["projects:write"]))
)]
pub(super) async fn update_project(
    State(state): State<AppState>,
    principal: Principal,
    origin: Origin,
    ApiPath(id): ApiPath<String>,
    body: Result<ApiJson<UpdateProject>, ApiError>,
) -> Result<ApiJson<ProjectView>, ApiError> {
    principal.require(Scope::PROJECTS_WRITE)?;
    let ApiJson(body) = body?;
    let id = parse_id(&id)?;
    let name = body
        .name
        .as_deref()
        .map(Name::parse)
        .transpose()
        .map_err(|e| FieldError::new("name", e));
    let description = parse_description(body.description.as_deref());
    validate!(name, description);
    let record = projects::update(
        &state,
        &Caller::credential(&principal, &origin),
        id,
        name,
        description,
    )
    .await?;
    Ok(ApiJson(record.into()))
}

/// Delete a project
///
/// Only an empty project (409 while it has instances). All its project tokens are revoked in
/// the same transaction.
#[utoipa::path(
    delete, path = "/v1/projects/{project_id}", tag = "Projects",
    params(("project_id" = String, Path, description = "The project's id, `prj_…`")),
    responses((status = 204, description = "Deleted; its tokens are revoked")),
    security(("bearer" = ["projects:write"]))
)]
pub(super) async fn delete_project(
    State(state): State<AppState>,
    principal: Principal,
    origin: Origin,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    principal.require(Scope::PROJECTS_WRITE)?;
    let id = parse_id(&id)?;
    let caller = Caller::credential(&principal, &origin);
    projects::delete(&state, &caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
