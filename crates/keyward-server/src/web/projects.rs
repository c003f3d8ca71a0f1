//! Settings > Projects, each project's instances, and the project picker of Settings >
//! Project > Tokens.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use keyward_core::{Description, InstanceId, InstanceStatus, Name, Region, Scope};
use keyward_store::{CredentialFilter, Page, ProjectRecord};

use super::form::FormData;
use super::page::{ConfirmPage, DateCell, FormErrors, Layout, project_of};
use super::response::{WebError, render};
use super::session::Person;
use crate::AppState;
use crate::services::instances::{self, InstanceInput};
use crate::services::{Conflict, ServiceError, credentials, projects};

/// Projects and instances shown on one page; more is rare for a dashboard and the API pages.
const LIST_LIMIT: u32 = 100;

struct ProjectRow {
    id: String,
    name: String,
    description: String,
    created: DateCell,
}

#[derive(Template)]
#[template(path = "projects.html")]
struct ProjectsPage {
    layout: Layout,
    rows: Vec<ProjectRow>,
    can_write: bool,
    name: String,
    description: String,
    errors: FormErrors,
    notice: Option<String>,
    /// `instances` or `tokens`: which page each project links to first.
    purpose: &'static str,
}

async fn projects_page(
    state: &AppState,
    person: &Person,
    purpose: &'static str,
    name: String,
    description: String,
    errors: FormErrors,
    notice: Option<String>,
) -> Result<Response, WebError> {
    let projects = projects::list(state, &person.caller(state), Page::first(LIST_LIMIT)).await?;
    let rows = projects
        .items
        .into_iter()
        .map(|p| ProjectRow {
            id: p.id.to_string(),
            name: p.name.to_string(),
            description: p.description,
            created: DateCell::new(p.created_at),
        })
        .collect();
    let status = errors.status();
    let section = if purpose == "tokens" {
        "tokens"
    } else {
        "projects"
    };
    let template = ProjectsPage {
        layout: Layout::new(state, person, section).await?,
        rows,
        can_write: purpose == "instances" && person.can(Scope::PROJECTS_WRITE),
        name,
        description,
        errors,
        notice,
        purpose,
    };
    Ok(render(status, &template))
}

pub async fn list_projects(
    State(state): State<AppState>,
    person: Person,
) -> Result<Response, WebError> {
    projects_page(
        &state,
        &person,
        "instances",
        String::new(),
        String::new(),
        FormErrors::default(),
        None,
    )
    .await
}

/// Settings > Project > Tokens starts by picking a project.
pub async fn pick_project_for_tokens(
    State(state): State<AppState>,
    person: Person,
) -> Result<Response, WebError> {
    projects_page(
        &state,
        &person,
        "tokens",
        String::new(),
        String::new(),
        FormErrors::default(),
        None,
    )
    .await
}

pub async fn create_project(
    State(state): State<AppState>,
    person: Person,
    form: FormData,
) -> Result<Response, WebError> {
    person.check_csrf(form.csrf_token())?;
    person.require(Scope::PROJECTS_WRITE)?;
    let mut errors = FormErrors::default();
    let name = Name::parse(form.text("name"))
        .map_err(|e| errors.push("name", e))
        .ok();
    let description = Description::parse(&form.lines("description"))
        .map_err(|e| errors.push("description", e))
        .ok();
    let again = |errors| {
        projects_page(
            &state,
            &person,
            "instances",
            form.text("name").to_owned(),
            form.text("description").to_owned(),
            errors,
            None,
        )
    };
    let (Some(name), Some(description)) = (name, description) else {
        return again(errors).await;
    };
    match projects::create(&state, &person.caller(&state), name, description).await {
        Ok(_) => Ok(Redirect::to("/settings/projects").into_response()),
        Err(error) => {
            errors.absorb(error)?;
            again(errors).await
        }
    }
}

#[derive(Template)]
#[template(path = "project_edit.html")]
struct ProjectEditPage {
    layout: Layout,
    id: String,
    current_name: String,
    name: String,
    description: String,
    errors: FormErrors,
}

async fn edit_page(
    state: &AppState,
    person: &Person,
    project: &ProjectRecord,
    name: String,
    description: String,
    errors: FormErrors,
) -> Result<Response, WebError> {
    let status = errors.status();
    let template = ProjectEditPage {
        layout: Layout::new(state, person, "projects").await?,
        id: project.id.to_string(),
        current_name: project.name.to_string(),
        name,
        description,
        errors,
    };
    Ok(render(status, &template))
}

pub async fn edit_project(
    State(state): State<AppState>,
    person: Person,
    Path(project_id): Path<String>,
) -> Result<Response, WebError> {
    person.require(Scope::PROJECTS_WRITE)?;
    let project = project_of(&state, &person, &project_id).await?;
    let (name, description) = (project.name.to_string(), project.description.clone());
    edit_page(
        &state,
        &person,
        &project,
        name,
        description,
        FormErrors::default(),
    )
    .await
}

pub async fn update_project(
    State(state): State<AppState>,
    person: Person,
    Path(project_id): Path<String>,
    form: FormData,
) -> Result<Response, WebError> {
    person.check_csrf(form.csrf_token())?;
    person.require(Scope::PROJECTS_WRITE)?;
    let project = project_of(&state, &person, &project_id).await?;
    let mut errors = FormErrors::default();
    let name = Name::parse(form.text("name"))
        .map_err(|e| errors.push("name", e))
        .ok();
    let description = Description::parse(&form.lines("description"))
        .map_err(|e| errors.push("description", e))
        .ok();
    let entered = (
        form.text("name").to_owned(),
        form.text("description").to_owned(),
    );
    let (Some(name), Some(description)) = (name, description) else {
        return edit_page(&state, &person, &project, entered.0, entered.1, errors).await;
    };
    match projects::update(
        &state,
        &person.caller(&state),
        project.id,
        Some(name),
        Some(description),
    )
    .await
    {
        Ok(_) => Ok(Redirect::to("/settings/projects").into_response()),
        Err(error) => {
            errors.absorb(error)?;
            edit_page(&state, &person, &project, entered.0, entered.1, errors).await
        }
    }
}

pub async fn confirm_delete_project(
    State(state): State<AppState>,
    person: Person,
    Path(project_id): Path<String>,
) -> Result<Response, WebError> {
    person.require(Scope::PROJECTS_WRITE)?;
    let project = project_of(&state, &person, &project_id).await?;
    let filter = CredentialFilter {
        kind: keyward_core::CredentialKind::ProjectToken,
        project: Some(project.id),
        external_id: None,
    };
    let tokens = credentials::list(&state, &person.caller(&state), &filter, Page::first(100))
        .await?
        .data
        .iter()
        .filter(|t| t.view.revoked_at.is_none())
        .count();
    let template = ConfirmPage {
        layout: Layout::new(&state, &person, "projects").await?,
        title: format!("Delete {}?", project.name),
        message: format!(
            "Deleting the project {} revokes its {tokens} active project token(s) at once: any \
             application using them loses access.",
            project.name
        ),
        details: vec![
            "A project that still has instances cannot be deleted; delete them first.".into(),
            "Deleting is permanent.".into(),
        ],
        action: format!("/settings/projects/{}/delete", project.id),
        button: "Delete project".into(),
        cancel_url: "/settings/projects".into(),
    };
    Ok(render(StatusCode::OK, &template))
}

pub async fn delete_project(
    State(state): State<AppState>,
    person: Person,
    Path(project_id): Path<String>,
    form: FormData,
) -> Result<Response, WebError> {
    person.check_csrf(form.csrf_token())?;
    person.require(Scope::PROJECTS_WRITE)?;
    let project = project_of(&state, &person, &project_id).await?;
    match projects::delete(&state, &person.caller(&state), project.id).await {
        Ok(()) => Ok(Redirect::to("/settings/projects").into_response()),
        Err(ServiceError::Conflict(Conflict::ProjectHasInstances)) => Err(WebError::page(
            StatusCode::CONFLICT,
            format!(
                "The project {} still has instances: delete them first.",
                project.name
            ),
        )),
        Err(other) => Err(other.into()),
    }
}

struct InstanceRow {
    id: String,
    name: String,
    region: String,
    status: &'static str,
    created: DateCell,
}

struct StatusChoice {
    value: &'static str,
    selected: bool,
}

#[derive(Template)]
#[template(path = "instances.html")]
struct InstancesPage {
    layout: Layout,
    project_id: String,
    project_name: String,
    rows: Vec<InstanceRow>,
    can_write: bool,
    name: String,
    region: String,
    statuses: Vec<StatusChoice>,
    errors: FormErrors,
}

async fn instances_page(
    state: &AppState,
    person: &Person,
    project: &ProjectRecord,
    entered: (String, String, String),
    errors: FormErrors,
) -> Result<Response, WebError> {
    let instances = instances::list(
        state,
        &person.caller(state),
        Some(project.id),
        Page::first(LIST_LIMIT),
    )
    .await?;
    let rows = instances
        .items
        .into_iter()
        .map(|i| InstanceRow {
            id: i.id.to_string(),
            name: i.name.to_string(),
            region: i.region.as_str().to_owned(),
            status: i.status.as_str(),
            created: DateCell::new(i.created_at),
        })
        .collect();
    let status = errors.status();
    let chosen = if entered.2.is_empty() {
        "running".to_owned()
    } else {
        entered.2
    };
    let template = InstancesPage {
        layout: Layout::new(state, person, "projects").await?,
        project_id: project.id.to_string(),
        project_name: project.name.to_string(),
        rows,
        can_write: person.can(Scope::INSTANCES_WRITE),
        name: entered.0,
        region: entered.1,
        statuses: InstanceStatus::ALL
            .into_iter()
            .map(|status| StatusChoice {
                value: status.as_str(),
                selected: status.as_str() == chosen,
            })
            .collect(),
        errors,
    };
    Ok(render(status, &template))
}

pub async fn list_instances(
    State(state): State<AppState>,
    person: Person,
    Path(project_id): Path<String>,
) -> Result<Response, WebError> {
    let project = project_of(&state, &person, &project_id).await?;
    let entered = (String::new(), "eu-west-1".to_owned(), String::new());
    instances_page(&state, &person, &project, entered, FormErrors::default()).await
}

pub async fn create_instance(
    State(state): State<AppState>,
    person: Person,
    Path(project_id): Path<String>,
    form: FormData,
) -> Result<Response, WebError> {
    person.check_csrf(form.csrf_token())?;
    person.require(Scope::INSTANCES_WRITE)?;
    let project = project_of(&state, &person, &project_id).await?;
    let mut errors = FormErrors::default();
    let name = Name::parse(form.text("name"))
        .map_err(|e| errors.push("name", e))
        .ok();
    let region = Region::parse(form.text("region"))
        .map_err(|e| errors.push("region", e))
        .ok();
    let status = form
        .text("status")
        .parse::<InstanceStatus>()
        .map_err(|e| errors.push("status", e))
        .ok();
    let entered = (
        form.text("name").to_owned(),
        form.text("region").to_owned(),
        form.text("status").to_owned(),
    );
    let (Some(name), Some(region), Some(status)) = (name, region, status) else {
        return instances_page(&state, &person, &project, entered, errors).await;
    };
    let input = InstanceInput {
        project_id: project.id,
        name,
        region,
        status,
    };
    match instances::create(&state, &person.caller(&state), input).await {
        Ok(_) => Ok(
            Redirect::to(&format!("/settings/projects/{}/instances", project.id)).into_response(),
        ),
        Err(error) => {
            errors.absorb(error)?;
            instances_page(&state, &person, &project, entered, errors).await
        }
    }
}

async fn instance_of(
    state: &AppState,
    person: &Person,
    project: &ProjectRecord,
    raw: &str,
) -> Result<keyward_store::InstanceRecord, WebError> {
    let id = InstanceId::parse(raw).map_err(|_| WebError::not_found("instance"))?;
    Ok(instances::get(state, &person.caller(state), id, Some(project.id)).await?)
}

pub async fn confirm_delete_instance(
    State(state): State<AppState>,
    person: Person,
    Path((project_id, instance_id)): Path<(String, String)>,
) -> Result<Response, WebError> {
    person.require(Scope::INSTANCES_WRITE)?;
    let project = project_of(&state, &person, &project_id).await?;
    let instance = instance_of(&state, &person, &project, &instance_id).await?;
    let template = ConfirmPage {
        layout: Layout::new(&state, &person, "projects").await?,
        title: format!("Delete {}?", instance.name),
        message: format!(
            "The instance {} of the project {} will be deleted.",
            instance.name, project.name
        ),
        details: vec!["Deleting is permanent.".into()],
        action: format!(
            "/settings/projects/{}/instances/{}/delete",
            project.id, instance.id
        ),
        button: "Delete instance".into(),
        cancel_url: format!("/settings/projects/{}/instances", project.id),
    };
    Ok(render(StatusCode::OK, &template))
}

pub async fn delete_instance(
    State(state): State<AppState>,
    person: Person,
    Path((project_id, instance_id)): Path<(String, String)>,
    form: FormData,
) -> Result<Response, WebError> {
    person.check_csrf(form.csrf_token())?;
    person.require(Scope::INSTANCES_WRITE)?;
    let project = project_of(&state, &person, &project_id).await?;
    let instance = instance_of(&state, &person, &project, &instance_id).await?;
    instances::delete(
        &state,
        &person.caller(&state),
        instance.id,
        Some(project.id),
    )
    .await?;
    Ok(Redirect::to(&format!("/settings/projects/{}/instances", project.id)).into_response())
}
