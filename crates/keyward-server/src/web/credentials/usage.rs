//! A key's or token's usage page: its last 30 days by day and its last 48 hours by hour (see
//! [`crate::web::usage`]).

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use keyward_core::{CredentialKind, Scope};

use super::Target;
use crate::AppState;
use crate::services::usage::{self, Granularity, Period};
use crate::web::page::Layout;
use crate::web::response::{WebError, render};
use crate::web::usage::{Charts, charts};

#[derive(Template)]
#[template(path = "credential_usage.html")]
struct UsagePage {
    layout: Layout,
    title: String,
    list_url: String,
    charts: Charts,
}

pub(in crate::web) async fn usage(
    State(state): State<AppState>,
    target: Target,
) -> Result<Response, WebError> {
    let Target { person, place, .. } = &target;
    person.require(match place.kind {
        CredentialKind::ProjectToken => Scope::TOKENS_READ,
        _ => Scope::API_KEYS_READ,
    })?;
    // Found within the person's reach once; both periods are then read for it.
    let entry = target.entry(&state).await?;
    let caller = person.caller(&state);
    let now = state.config.clock.now();
    let id = entry.view.id;
    let recent = |granularity| Period::recent(granularity, now);
    let days = usage::of_shown(&state, &caller, id, recent(Granularity::Day), None).await?;
    let hours = usage::of_shown(&state, &caller, id, recent(Granularity::Hour), None).await?;
    let page = UsagePage {
        layout: Layout::new(&state, person, place.section()).await?,
        title: format!("Usage of {}", entry.view.name),
        list_url: place.url(),
        charts: charts(&days, &hours),
    };
    Ok(render(axum::http::StatusCode::OK, &page))
}
