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

fn cannot_revoke(place: &Place) -> WebError {
    WebError::forbidden(format!(
        "You cannot revoke this {}: members revoke only what they created.",
        place.label()
    ))
}

pub(in crate::web) async fn confirm(
    State(state): State<AppState>,
    target: Target,
) -> Result<Response, WebError> {
    let CredentialEntry { view, allowed } = target.entry(&state).await?;
    let Target { person, place, .. } = target;
    if !allowed.revoke {
        return Err(cannot_revoke(&place));
    }
    let template = ConfirmPage {
        layout: Layout::new(&state, &person, place.section()).await?,
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

pub(in crate::web) async fn revoke(
    State(state): State<AppState>,
    target: Target,
    form: FormData,
) -> Result<Response, WebError> {
    target.person.check_csrf(form.csrf_token())?;
    let CredentialEntry { view, allowed } = target.entry(&state).await?;
    let Target { person, place, .. } = target;
    if view.status == CredentialStatus::Revoked {
        return Ok(Redirect::to(&place.url()).into_response());
    }
    if !allowed.revoke {
        return Err(cannot_revoke(&place));
    }
    credentials::revoke(&state, &person.caller(&state), view.id, place.project_id()).await?;
    Ok(Redirect::to(&format!("{}?notice=revoked", place.url())).into_response())
}
