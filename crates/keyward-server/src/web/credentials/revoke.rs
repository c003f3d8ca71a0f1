//! Revocation: the confirmation and the revocation, immediate and permanent.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use keyward_core::CredentialStatus;

use super::{Place, Target};
use crate::AppState;
use crate::services::credentials::{self, CredentialEntry};
use crate::web::form::FormData;
use crate::web::page::{ConfirmPage, Layout};
use crate::web::response::{WebError, render};
use crate::web::session::Person;

pub(in crate::web) async fn confirm(
    State(state): State<AppState>,
    person: Person,
    target: Target,
) -> Result<Response, WebError> {
    let place = Place::of(&state, &person, &target).await?;
    confirm_revoke(&state, &person, place, target.credential()).await
}

pub(in crate::web) async fn revoke(
    State(state): State<AppState>,
    person: Person,
    target: Target,
    form: FormData,
) -> Result<Response, WebError> {
    let place = Place::of(&state, &person, &target).await?;
    revoke_now(&state, &person, place, target.credential(), form).await
}

async fn confirm_revoke(
    state: &AppState,
    person: &Person,
    place: Place,
    raw_id: &str,
) -> Result<Response, WebError> {
    let id = place.parse_id(raw_id)?;
    let CredentialEntry { view, allowed } =
        credentials::show(state, &person.caller(state), id, place.project_id()).await?;
    if !allowed.revoke {
        return Err(WebError::forbidden(format!(
            "You cannot revoke this {}: members revoke only what they created.",
            place.label()
        )));
    }
    let template = ConfirmPage {
        layout: Layout::new(state, person, place.section()).await?,
        title: format!("Revoke {}?", view.name),
        message: format!(
            "Any application using the {} {} ({}) will lose access at once.",
            place.label(),
            view.name,
            view.hint
        ),
        details: vec!["Revoking is permanent: it cannot be undone.".to_owned()],
        action: format!("{}/{}/revoke", place.url(), view.id),
        button: format!("Revoke {}", place.label()),
        cancel_url: place.url(),
    };
    Ok(render(StatusCode::OK, &template))
}

async fn revoke_now(
    state: &AppState,
    person: &Person,
    place: Place,
    raw_id: &str,
    form: FormData,
) -> Result<Response, WebError> {
    person.check_csrf(form.csrf_token())?;
    let id = place.parse_id(raw_id)?;
    let caller = person.caller(state);
    let CredentialEntry { view, allowed } =
        credentials::show(state, &caller, id, place.project_id()).await?;
    if view.status == CredentialStatus::Revoked {
        return Ok(Redirect::to(&place.url()).into_response());
    }
    if !allowed.revoke {
        return Err(WebError::forbidden(format!(
            "You cannot revoke this {}: members revoke only what they created.",
            place.label()
        )));
    }
    credentials::revoke(state, &caller, id, place.project_id()).await?;
    Ok(Redirect::to(&format!("{}?notice=revoked", place.url())).into_response())
}
