//! Rotation: the confirmation with its choice of overlap, and the new credential shown once.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use super::{Place, Target, created_page};
use crate::AppState;
use crate::services::credentials::{self, CredentialEntry};
use crate::web::form::FormData;
use crate::web::page::Layout;
use crate::web::response::{WebError, render};

fn cannot_rotate(place: &Place) -> WebError {
    WebError::forbidden(format!(
        "You cannot rotate this {}: it is not active, is already being rotated, or was \
         created by someone else.",
        place.label()
    ))
}

/// The overlaps the dashboard offers.
const GRACE_CHOICES: [(i64, &str); 4] = [
    (0, "Now: the old one stops at once"),
    (3_600, "In 1 hour"),
    (86_400, "In 24 hours"),
    (604_800, "In 7 days"),
];

#[derive(Template)]
#[template(path = "rotate.html")]
struct RotatePage {
    layout: Layout,
    title: String,
    message: String,
    action: String,
    choices: Vec<(i64, &'static str)>,
    cancel_url: String,
}

pub(in crate::web) async fn confirm(
    State(state): State<AppState>,
    target: Target,
) -> Result<Response, WebError> {
    let CredentialEntry { view, allowed } = target.entry(&state).await?;
    let Target { person, place, .. } = target;
    if !allowed.rotate {
        return Err(cannot_rotate(&place));
    }
    let template = RotatePage {
        layout: Layout::new(&state, &person, place.section()).await?,
        title: format!("Rotate {}?", view.name),
        message: format!(
            "A new {} with the same name, scopes and limits is shown once. When should {} ({}) \
             stop working?",
            place.label(),
            view.name,
            view.hint
        ),
        action: format!("{}/{}/rotate", place.url(), view.id),
        choices: GRACE_CHOICES.to_vec(),
        cancel_url: place.url(),
    };
    Ok(render(StatusCode::OK, &template))
}

pub(in crate::web) async fn rotate(
    State(state): State<AppState>,
    target: Target,
    form: FormData,
) -> Result<Response, WebError> {
    target.person.check_csrf(form.csrf_token())?;
    let CredentialEntry { view, allowed } = target.entry(&state).await?;
    let Target { person, place, .. } = target;
    if !allowed.rotate {
        return Err(cannot_rotate(&place));
    }
    let grace = form
        .text("grace_seconds")
        .parse::<i64>()
        .ok()
        .filter(|g| GRACE_CHOICES.iter().any(|(choice, _)| choice == g))
        .ok_or_else(|| {
            WebError::page(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Choose when the old one stops.",
            )
        })?;
    let created = credentials::rotate(
        &state,
        &person.caller(&state),
        view.id,
        place.project_id(),
        grace,
        None,
    )
    .await?;
    created_page(&state, &person, &place, created, "rotated").await
}
