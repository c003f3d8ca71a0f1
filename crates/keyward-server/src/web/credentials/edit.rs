//! What may change on a credential after it is made: the networks it may be used from, and
//! the platform's external id and meta.

use askama::Template;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use keyward_core::{ExternalId, Meta, Networks};
use keyward_store::CredentialChanges;

use super::Target;
use crate::AppState;
use crate::services::credentials::{self, CredentialEntry, parse_external_id, parse_meta};
use crate::web::form::FormData;
use crate::web::page::{FormErrors, Layout};
use crate::web::response::{WebError, render};

/// The form as shown, or as sent back with its errors.
#[derive(Default)]
struct Entered {
    networks: String,
    external_id: String,
    meta: String,
}

#[derive(Template)]
#[template(path = "credential_edit.html")]
struct EditPage {
    layout: Layout,
    title: String,
    action: String,
    entered: Entered,
    errors: FormErrors,
    cancel_url: String,
}

pub(in crate::web) async fn edit(
    State(state): State<AppState>,
    target: Target,
) -> Result<Response, WebError> {
    edit_page(&state, &target, None, FormErrors::default()).await
}

pub(in crate::web) async fn save(
    State(state): State<AppState>,
    target: Target,
    form: FormData,
) -> Result<Response, WebError> {
    let Target { person, place, .. } = &target;
    person.check_csrf(form.csrf_token())?;
    let CredentialEntry { view, allowed } = target.entry(&state).await?;
    if !allowed.edit {
        return edit_page(&state, &target, None, FormErrors::default()).await;
    }
    let entered = Entered {
        networks: form.text("allowed_cidrs").to_owned(),
        external_id: form.text("external_id").to_owned(),
        meta: form.text("meta").to_owned(),
    };
    let mut errors = FormErrors::default();
    let networks = form_networks(&entered.networks)
        .map_err(|message| errors.push("allowed_cidrs", message))
        .ok();
    // A field the form did not send stays as it is.
    let external_id = form
        .get("external_id")
        .map(form_external_id)
        .transpose()
        .map_err(|e| errors.0.push(e))
        .ok();
    let meta = form
        .get("meta")
        .map(form_meta)
        .transpose()
        .map_err(|e| errors.0.push(e))
        .ok();
    let (Some(networks), Some(external_id), Some(meta)) = (networks, external_id, meta) else {
        return edit_page(&state, &target, Some(entered), errors).await;
    };
    let changes = CredentialChanges {
        allowed_cidrs: Some(networks),
        external_id,
        meta,
        ..CredentialChanges::default()
    };
    let caller = person.caller(&state);
    if let Err(error) =
        credentials::update(&state, &caller, view.id, place.project_id(), changes).await
    {
        errors.absorb(error)?;
        return edit_page(&state, &target, Some(entered), errors).await;
    }
    Ok(Redirect::to(&format!("{}?notice=saved", place.url())).into_response())
}

/// The form, filled from the credential, or with what was `entered` and its `errors`.
async fn edit_page(
    state: &AppState,
    target: &Target,
    entered: Option<Entered>,
    errors: FormErrors,
) -> Result<Response, WebError> {
    let CredentialEntry { view, allowed } = target.entry(state).await?;
    let Target { person, place, .. } = target;
    if !allowed.edit {
        return Err(WebError::forbidden(format!(
            "You cannot change this {}: it is not active, or was created by someone else.",
            place.label()
        )));
    }
    let entered = entered.unwrap_or_else(|| Entered {
        networks: view
            .allowed_cidrs
            .as_ref()
            .map(|networks| networks.to_strings().join("\n"))
            .unwrap_or_default(),
        external_id: view
            .external_id
            .as_ref()
            .map(ExternalId::to_string)
            .unwrap_or_default(),
        meta: view
            .meta
            .as_ref()
            .map(|meta| meta.as_str().to_owned())
            .unwrap_or_default(),
    });
    let template = EditPage {
        layout: Layout::new(state, person, place.section()).await?,
        title: format!("Edit {} ({})", view.name, view.hint),
        action: format!("{}/{}/edit", place.url(), view.id),
        entered,
        cancel_url: place.url(),
        errors,
    };
    Ok(render(template.errors.status(), &template))
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

/// An external id typed in a form; none when left empty.
pub(super) fn form_external_id(
    text: &str,
) -> Result<Option<ExternalId>, crate::field_error::FieldError> {
    match text.trim() {
        "" => Ok(None),
        id => parse_external_id(id).map(Some),
    }
}

/// A JSON object typed in a form; none when left empty.
pub(super) fn form_meta(text: &str) -> Result<Option<Meta>, crate::field_error::FieldError> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    let value: serde_json::Value = serde_json::from_str(text).map_err(|_| {
        crate::field_error::FieldError::new(
            "meta",
            "must be a JSON object, such as {\"plan\": \"pro\"}",
        )
    })?;
    parse_meta(&value).map(Some)
}
