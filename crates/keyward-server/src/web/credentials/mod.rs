//! Settings > API Keys and Settings > Project > Tokens: the same table, create form, "shown
//! once" page, rotation, edit form and revoke confirmation, for the organization's keys or one
//! project's tokens, one module per flow. Each handler serves both: the [`Target`] extractor
//! reads from the path which credentials a page is about, after the person's session. Everything they change goes through
//! `crate::services::credentials`, the API's own code path, which also says what the person
//! may do to each credential.

mod create;
mod edit;
mod list;
mod revoke;
mod rotate;
mod usage;

use askama::Template;
use axum::Router;
use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::Response;
use axum::routing::get;
use keyward_core::{CredentialId, CredentialKind, ProjectId};
use keyward_store::ProjectRecord;

use super::page::{DateCell, Layout, project_of};
use super::response::{WebError, render};
use super::session::Person;
use crate::AppState;
use crate::services::credentials;

/// The pages of both places: the organization's keys under `/settings/api-keys`, a project's
/// tokens under `/settings/projects/{project_id}/tokens`.
pub fn router() -> Router<AppState> {
    let mut router = Router::new();
    for (base, id) in [
        ("/settings/api-keys", "{key_id}"),
        ("/settings/projects/{project_id}/tokens", "{token_id}"),
    ] {
        router = router
            .route(base, get(list::list).post(create::create))
            .route(&format!("{base}/new"), get(create::new_form))
            .route(
                &format!("{base}/{id}/revoke"),
                get(revoke::confirm).post(revoke::revoke),
            )
            .route(
                &format!("{base}/{id}/rotate"),
                get(rotate::confirm).post(rotate::rotate),
            )
            .route(
                &format!("{base}/{id}/edit"),
                get(edit::edit).post(edit::save),
            )
            .route(&format!("{base}/{id}/usage"), get(usage::usage));
    }
    router
}

/// What a page is about, read from its path once the person's session is known: the place
/// (a live project's tokens when the path names a `{project_id}`, else the organization's API
/// keys) and the credential it names (`{key_id}`, `{token_id}`), if any.
pub(super) struct Target {
    person: Person,
    place: Place,
    credential: Option<String>,
}

impl FromRequestParts<AppState> for Target {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, WebError> {
        let person = Person::from_request_parts(parts, state).await?;
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| WebError::not_found("page"))?;
        let (mut project, mut credential) = (None, None);
        for (name, value) in &params {
            match name {
                "project_id" => project = Some(value.to_owned()),
                "key_id" | "token_id" => credential = Some(value.to_owned()),
                _ => {}
            }
        }
        let place = Place::of(state, &person, project.as_deref()).await?;
        Ok(Self {
            person,
            place,
            credential,
        })
    }
}

impl Target {
    /// The credential the path names, if it is of this place's kind.
    fn credential_id(&self) -> Result<CredentialId, WebError> {
        self.place
            .parse_id(self.credential.as_deref().unwrap_or_default())
    }

    /// The credential the path names as the person sees it, with what they may do to it.
    async fn entry(&self, state: &AppState) -> Result<credentials::CredentialEntry, WebError> {
        let id = self.credential_id()?;
        let caller = self.person.caller(state);
        Ok(credentials::show(state, &caller, id, self.place.project_id()).await?)
    }
}

/// The organization's API keys, or one project's tokens.
pub(super) struct Place {
    kind: CredentialKind,
    project: Option<ProjectRecord>,
}

impl Place {
    /// The place a page's path names: a live project's tokens, or the organization's keys.
    async fn of(
        state: &AppState,
        person: &Person,
        project: Option<&str>,
    ) -> Result<Self, WebError> {
        Ok(match project {
            None => Self {
                kind: CredentialKind::ApiKey,
                project: None,
            },
            Some(raw) => Self {
                kind: CredentialKind::ProjectToken,
                project: Some(project_of(state, person, raw).await?),
            },
        })
    }

    pub(super) fn project_id(&self) -> Option<ProjectId> {
        self.project.as_ref().map(|p| p.id)
    }

    pub(super) fn url(&self) -> String {
        match &self.project {
            None => "/settings/api-keys".to_owned(),
            Some(project) => format!("/settings/projects/{}/tokens", project.id),
        }
    }

    pub(super) fn title(&self) -> String {
        match &self.project {
            None => "API Keys".to_owned(),
            Some(project) => format!("Tokens of {}", project.name),
        }
    }

    pub(super) fn label(&self) -> &'static str {
        self.kind.label()
    }

    pub(super) fn section(&self) -> &'static str {
        match self.kind {
            // The dashboard never shows admin keys: they are the platform's backend's.
            CredentialKind::ApiKey | CredentialKind::AdminKey => "keys",
            CredentialKind::ProjectToken => "tokens",
        }
    }

    pub(super) fn parse_id(&self, raw: &str) -> Result<CredentialId, WebError> {
        CredentialId::parse(raw, self.kind).map_err(|_| WebError::not_found(self.label()))
    }
}

pub(super) fn title_case(label: &str) -> String {
    label
        .split(' ')
        .map(|word| {
            if word == "API" {
                return word.to_owned();
            }
            let mut chars = word.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_uppercase().chain(chars).collect()
            })
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[derive(Template)]
#[template(path = "credential_created.html")]
struct CreatedPage {
    layout: Layout,
    title: String,
    kind_label: &'static str,
    key: String,
    name: String,
    hint: String,
    scopes: Vec<String>,
    expires: Option<DateCell>,
    curl: String,
    list_url: String,
}

/// The page that shows a new credential's key, once.
pub(super) async fn created_page(
    state: &AppState,
    person: &Person,
    place: &Place,
    created: credentials::CreatedCredential,
    verb: &str,
) -> Result<Response, WebError> {
    let curl = format!(
        "curl -X GET \"{}/v1/instances\" -H \"Authorization: Bearer {}\"",
        state.config.public_url.trim_end_matches('/'),
        created.key
    );
    let template = CreatedPage {
        layout: Layout::new(state, person, place.section()).await?,
        title: format!("{} {verb}", title_case(place.label())),
        kind_label: place.label(),
        key: created.key,
        name: created.name.to_string(),
        hint: created.hint,
        scopes: created.scopes,
        expires: created.expires_at.map(DateCell::new),
        curl,
        list_url: place.url(),
    };
    Ok(render(StatusCode::OK, &template))
}
