//! Settings > Organization: owners set the policy for new credentials, a longest lifetime
//! in days and whether an expiry is required (the same service as `PATCH /v1/organization`).

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use keyward_core::Scope;
use serde::Deserialize;

use super::form::FormData;
use super::page::{FormErrors, Layout};
use super::response::{WebError, render};
use super::session::Person;
use crate::AppState;
use crate::services::organization;

#[derive(Template)]
#[template(path = "organization.html")]
struct OrganizationPage {
    layout: Layout,
    name: String,
    max_lifetime_days: String,
    require_expiry: bool,
    /// What GitHub's report of an exposed key does: `revoke` or `flag`.
    flag_leaks: bool,
    errors: FormErrors,
    saved: bool,
}

#[derive(Deserialize, Default)]
pub struct Params {
    notice: Option<String>,
}

pub async fn show(
    State(state): State<AppState>,
    person: Person,
    params: Result<Query<Params>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, WebError> {
    person.require(Scope::ORGANIZATION_WRITE)?;
    let record = organization::get(&state, &person.caller(&state)).await?;
    let saved = params
        .ok()
        .and_then(|Query(p)| p.notice)
        .is_some_and(|n| n == "saved");
    let page = OrganizationPage {
        layout: Layout::new(&state, &person, "organization").await?,
        name: record.name.to_string(),
        max_lifetime_days: record
            .policy
            .max_lifetime_days
            .map(|d| d.to_string())
            .unwrap_or_default(),
        require_expiry: record.policy.require_expiry,
        flag_leaks: record.policy.leak_action == keyward_store::LeakAction::Flag,
        errors: FormErrors::default(),
        saved,
    };
    Ok(render(StatusCode::OK, &page))
}

pub async fn update(
    State(state): State<AppState>,
    person: Person,
    form: FormData,
) -> Result<Response, WebError> {
    person.check_csrf(form.csrf_token())?;
    person.require(Scope::ORGANIZATION_WRITE)?;
    let entered = form.text("max_lifetime_days").trim().to_owned();
    let require_expiry = form.text("require_expiry") == "on";
    let leak_action = if form.text("leak_action") == "flag" {
        keyward_store::LeakAction::Flag
    } else {
        keyward_store::LeakAction::Revoke
    };
    let mut errors = FormErrors::default();
    let days = if entered.is_empty() {
        Some(None)
    } else {
        match entered.parse::<u32>() {
            Ok(days) => Some(Some(days)),
            Err(_) => {
                errors.push(
                    "max_lifetime_days",
                    "enter a number of days, or leave it empty",
                );
                None
            }
        }
    };
    if let Some(days) = days {
        let changes = keyward_store::PolicyChanges {
            max_lifetime_days: Some(days),
            require_expiry: Some(require_expiry),
            leak_action: Some(leak_action),
        };
        match organization::set_policy(&state, &person.caller(&state), changes).await {
            Ok(_) => {
                return Ok(
                    Redirect::to("/settings/organization/policy?notice=saved").into_response()
                );
            }
            Err(error) => errors.absorb(error)?,
        }
    }
    let record = organization::get(&state, &person.caller(&state)).await?;
    let page = OrganizationPage {
        layout: Layout::new(&state, &person, "organization").await?,
        name: record.name.to_string(),
        max_lifetime_days: entered,
        require_expiry,
        flag_leaks: leak_action == keyward_store::LeakAction::Flag,
        errors,
        saved: false,
    };
    Ok(render(StatusCode::UNPROCESSABLE_ENTITY, &page))
}
