//! The networks a credential may be used from: the form and the change.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use keyward_core::Networks;
use keyward_store::CredentialChanges;

use super::Target;
use crate::AppState;
use crate::services::credentials::{self, CredentialEntry};
use crate::web::form::FormData;
use crate::web::page::Layout;
use crate::web::response::{WebError, render};

pub(in crate::web) async fn edit(
    State(state): State<AppState>,
    target: Target,
) -> Result<Response, WebError> {
    networks_page(&state, &target, None).await
}

pub(in crate::web) async fn change(
    State(state): State<AppState>,
    target: Target,
    form: FormData,
) -> Result<Response, WebError> {
    let Target { person, place, .. } = &target;
    person.check_csrf(form.csrf_token())?;
    let CredentialEntry { view, allowed } = target.entry(&state).await?;
    if !allowed.change_networks {
        return networks_page(&state, &target, None).await;
    }
    let entered = form.text("allowed_cidrs").to_owned();
    let networks = match form_networks(&entered) {
        Ok(networks) => networks,
        Err(message) => return networks_page(&state, &target, Some((entered, message))).await,
    };
    let changes = CredentialChanges {
        allowed_cidrs: Some(networks),
        ..CredentialChanges::default()
    };
    credentials::update(
        &state,
        &person.caller(&state),
        view.id,
        place.project_id(),
        changes,
    )
    .await?;
    Ok(Redirect::to(&format!("{}?notice=networks", place.url())).into_response())
}

#[derive(Template)]
#[template(path = "networks.html")]
struct NetworksPage {
    layout: Layout,
    title: String,
    action: String,
    networks: String,
    error: Option<String>,
    cancel_url: String,
}

/// The form that changes the networks a credential may be used from; with `entered` (and
/// its error) when sent back.
async fn networks_page(
    state: &AppState,
    target: &Target,
    entered: Option<(String, String)>,
) -> Result<Response, WebError> {
    let CredentialEntry { view, allowed } = target.entry(state).await?;
    let Target { person, place, .. } = target;
    if !allowed.change_networks {
        return Err(WebError::forbidden(format!(
            "You cannot change this {}: it is not active, or was created by someone else.",
            place.label()
        )));
    }
    let (networks, error, status) = match entered {
        Some((networks, error)) => (networks, Some(error), StatusCode::UNPROCESSABLE_ENTITY),
        None => (
            view.allowed_cidrs
                .as_ref()
                .map(|networks| networks.to_strings().join("\n"))
                .unwrap_or_default(),
            None,
            StatusCode::OK,
        ),
    };
    let template = NetworksPage {
        layout: Layout::new(state, person, place.section()).await?,
        title: format!("Networks of {} ({})", view.name, view.hint),
        action: format!("{}/{}/networks", place.url(), view.id),
        networks,
        error,
        cancel_url: place.url(),
    };
    Ok(render(status, &template))
}

/// The ranges typed in a form, one per line or separated by commas or spaces; none for any
/// address.
pub(super) fn form_networks(text: &str) -> Result<Option<Networks>, String> {
    let ranges: Vec<&str> = text
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|part| !part.is_empty())
        .collect();
    if ranges.is_empty() {
        return Ok(None);
    }
    Networks::parse(&ranges)
        .map(Some)
        .map_err(|e| e.to_string())
}
