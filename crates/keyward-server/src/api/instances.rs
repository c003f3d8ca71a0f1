//! `/v1/instances`: the platform resource the help page's example lists. Each instance
//! belongs to a project of the organization.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use keyward_core::{
    InstanceId, InstanceStatus, Name, OrganizationId, ProjectId, Region, Scope, Timestamp,
};
use keyward_store::InstanceRecord;
use serde::{Deserialize, Serialize};

use utoipa_axum::routes;

use super::ApiRoutes;
use crate::AppState;
use crate::audit::Origin;
use crate::auth::Principal;
use crate::error::{ApiError, validate};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::field_error::FieldError;
use crate::pagination::{List, page_from};
use crate::services::caller::Caller;
use crate::services::instances::{self, InstanceInput};

pub fn router() -> ApiRoutes {
    ApiRoutes::new()
        .routes(routes!(list_instances, create_instance))
        .routes(routes!(show_instance, delete_instance))
}

/// An instance: the platform resource that belongs to a project.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Instance)]
pub(super) struct InstanceView {
    #[schema(value_type = String, example = "ins_01m8dz968yez2sm2rg58r2payh")]
    id: InstanceId,
    #[schema(value_type = String, example = "web-1")]
    name: Name,
    #[schema(value_type = String, example = "org_01m8dz95x5e4w8stdkz9nzcgw8")]
    organization_id: OrganizationId,
    #[schema(value_type = String, example = "prj_01m8dz968yez2sm2rg58r2payg")]
    project_id: ProjectId,
    #[schema(value_type = String, example = "eu-west-1")]
    region: Region,
    #[schema(value_type = crate::services::schema::InstanceStatusName)]
    status: InstanceStatus,
    #[schema(value_type = String, format = DateTime, example = "2026-11-27T07:24:06Z")]
    created_at: Timestamp,
}

impl From<InstanceRecord> for InstanceView {
    fn from(record: InstanceRecord) -> Self {
        Self {
            id: record.id,
            name: record.name,
            organization_id: record.organization_id,
            project_id: record.project_id,
            region: record.region,
            status: record.status,
            created_at: record.created_at,
        }
    }
}

/// A new instance in one of the organization's projects.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateInstance {
    /// Unique in the project, ignoring case.
    #[schema(
        example = "web-1",
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    name: String,
    #[schema(
        example = "prj_01m8dz968yez2sm2rg58r2payg",
        pattern = r"^prj_[0-7][0-9a-hjkmnp-tv-z]{25}$"
    )]
    project_id: String,
    /// 1 to 32 lowercase letters, digits or hyphens, starting with a letter.
    #[schema(example = "eu-west-1", pattern = r"^[a-z]([a-z0-9-]{0,30}[a-z0-9])?$")]
    region: String,
    /// `running` when left out.
    #[serde(default)]
    #[schema(value_type = Option<crate::services::schema::InstanceStatusName>)]
    status: Option<String>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct InstanceListQuery {
    /// Only this project's instances.
    project_id: Option<String>,
    /// Items per page, 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

fn parse_id(raw: &str) -> Result<InstanceId, ApiError> {
    InstanceId::parse(raw).map_err(|_| ApiError::NotFound("instance"))
}

fn parse_status(raw: Option<&str>) -> Result<InstanceStatus, FieldError> {
    raw.map_or(Ok(InstanceStatus::default()), str::parse)
        .map_err(|e| FieldError::new("status", e))
}

/// List instances
///
/// Newest first, optionally of one project. A project token sees its own project's only.
#[utoipa::path(
    get, path = "/v1/instances", tag = "Instances",
    params(InstanceListQuery),
    responses((status = 200, description = "A page of instances", body = List<InstanceView>)),
    security(("bearer" = ["instances:read"]))
)]
pub(super) async fn list_instances(
    State(state): State<AppState>,
    principal: Principal,
    origin: Origin,
    query: Result<ApiQuery<InstanceListQuery>, ApiError>,
) -> Result<ApiJson<List<InstanceView>>, ApiError> {
    principal.require(Scope::INSTANCES_READ)?;
    let ApiQuery(query) = query?;
    let project = query
        .project_id
        .as_deref()
        .map(ProjectId::parse)
        .transpose()
        .map_err(|e| ApiError::invalid("project_id", e))?;
    let page = page_from(query.limit, query.cursor.as_deref(), |text| {
        InstanceId::parse(text).ok().map(|id| id.as_uuid())
    })?;
    let caller = Caller::credential(&principal, &origin);
    let paged = instances::list(&state, &caller, project, page).await?;
    Ok(ApiJson(List::from_paged(
        paged,
        |record| record.id.to_string(),
        InstanceView::from,
    )))
}

/// Create an instance
///
/// In another organization's project, or for a project token in another project: 404.
#[utoipa::path(
    post, path = "/v1/instances", tag = "Instances",
    request_body = CreateInstance,
    responses((status = 201, description = "Created", body = InstanceView)),
    security(("bearer" = ["instances:write"]))
)]
pub(super) async fn create_instance(
    State(state): State<AppState>,
    principal: Principal,
    origin: Origin,
    body: Result<ApiJson<CreateInstance>, ApiError>,
) -> Result<impl IntoResponse, ApiError> {
    principal.require(Scope::INSTANCES_WRITE)?;
    let ApiJson(body) = body?;
    let name = Name::parse(&body.name).map_err(|e| FieldError::new("name", e));
    let project_id =
        ProjectId::parse(&body.project_id).map_err(|e| FieldError::new("project_id", e));
    let region = Region::parse(&body.region).map_err(|e| FieldError::new("region", e));
    let status = parse_status(body.status.as_deref());
    validate!(name, project_id, region, status);
    let input = InstanceInput {
        project_id,
        name,
        region,
        status,
    };
    let caller = Caller::credential(&principal, &origin);
    let record = instances::create(&state, &caller, input).await?;
    let location = format!("/v1/instances/{}", record.id);
    Ok(super::created(location, InstanceView::from(record)))
}

/// Show an instance
#[utoipa::path(
    get, path = "/v1/instances/{instance_id}", tag = "Instances",
    params(("instance_id" = String, Path, description = "The instance's id, `ins_…`")),
    responses((status = 200, description = "The instance", body = InstanceView)),
    security(("bearer" = ["instances:read"]))
)]
pub(super) async fn show_instance(
    State(state): State<AppState>,
    principal: Principal,
    origin: Origin,
    ApiPath(id): ApiPath<String>,
) -> Result<ApiJson<InstanceView>, ApiError> {
    principal.require(Scope::INSTANCES_READ)?;
    let id = parse_id(&id)?;
    let caller = Caller::credential(&principal, &origin);
    let record = instances::get(&state, &caller, id, None).await?;
    Ok(ApiJson(record.into()))
}

/// Delete an instance
#[utoipa::path(
    delete, path = "/v1/instances/{instance_id}", tag = "Instances",
    params(("instance_id" = String, Path, description = "The instance's id, `ins_…`")),
    responses((status = 204, description = "Deleted")),
    security(("bearer" = ["instances:write"]))
)]
pub(super) async fn delete_instance(
    State(state): State<AppState>,
    principal: Principal,
    origin: Origin,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    principal.require(Scope::INSTANCES_WRITE)?;
    let id = parse_id(&id)?;
    let caller = Caller::credential(&principal, &origin);
    instances::delete(&state, &caller, id, None).await?;
    Ok(StatusCode::NO_CONTENT)
}
