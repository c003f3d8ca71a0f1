//! The table of the organization's keys or a project's tokens.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use keyward_core::{CredentialId, CredentialStatus, Every, Networks};
use keyward_store::{CredentialFilter, Page};
use serde::Deserialize;

use super::{Place, Target, title_case};
use crate::AppState;
use crate::pagination::page_from;
use crate::services::credentials::{self, CredentialEntry, CreditsView};
use crate::services::usage::{self, Period};
use crate::web::page::{DateCell, Layout};
use crate::web::response::{WebError, render};
use crate::web::session::Person;
use crate::web::usage::{SPARKLINE_DAYS, Sparkline};

/// Rows per page of the dashboard's tables.
const ROWS_PER_PAGE: u32 = 50;

pub(in crate::web) async fn list(
    State(state): State<AppState>,
    target: Target,
    query: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, WebError> {
    let Target { person, place, .. } = &target;
    let params = query.map(|Query(params)| params).unwrap_or(ListParams {
        cursor: None,
        notice: None,
    });
    list_page(&state, person, place, params).await
}

#[derive(Deserialize)]
pub struct ListParams {
    cursor: Option<String>,
    notice: Option<String>,
}

struct CredentialRow {
    id: String,
    name: String,
    hint: String,
    scopes: Vec<String>,
    /// Granted, but no longer defined: they grant nothing.
    unknown_scopes: Vec<String>,
    created: DateCell,
    last_used: Option<DateCell>,
    expires: Option<DateCell>,
    expired: bool,
    revoked: bool,
    revoke_url: Option<String>,
    /// For an active credential not being rotated, that the person may revoke.
    rotate_url: Option<String>,
    /// Being rotated: works until then.
    rotating_until: Option<DateCell>,
    /// The ranges it may be used from, if limited.
    networks: Option<String>,
    /// Where it was found exposed, if it was.
    exposed: Option<String>,
    /// Where the person may change its networks, external id and meta (an active credential
    /// they may revoke).
    edit_url: Option<String>,
    /// Its usage page.
    usage_url: String,
    /// The platform's id for whoever uses it.
    external_id: Option<String>,
    /// The platform's meta, as compact JSON.
    meta: Option<String>,
    /// The last client addresses it was used from, with when.
    addresses: Vec<(String, DateCell)>,
    /// Active, but beyond the organization's policy.
    exceeds_policy: bool,
    /// Its last 7 days.
    recent: Sparkline,
    /// Its credits, in words, if it has any.
    credits: Option<String>,
}

/// A credential's credits in words: what is left, and its refill.
fn credits_text(credits: &CreditsView) -> String {
    let left = format!("{} credits left", credits.remaining);
    match credits.refill {
        None => left,
        Some(refill) => match (refill.every, refill.on_day) {
            (Every::Day, _) => format!("{left}, back to {} each day (UTC)", refill.amount),
            (Every::Month, day) => format!(
                "{left}, back to {} on day {} of each month (UTC)",
                refill.amount,
                day.unwrap_or(1)
            ),
        },
    }
}

#[derive(Template)]
#[template(path = "credentials.html")]
struct CredentialsPage {
    layout: Layout,
    title: String,
    intro: String,
    create_label: String,
    new_url: String,
    notice: Option<&'static str>,
    rows: Vec<CredentialRow>,
    empty_text: String,
    first_url: Option<String>,
    next_url: Option<String>,
}

async fn list_page(
    state: &AppState,
    person: &Person,
    place: &Place,
    params: ListParams,
) -> Result<Response, WebError> {
    let page = page_from(Some(ROWS_PER_PAGE), params.cursor.as_deref(), |text| {
        CredentialId::parse(text, place.kind)
            .ok()
            .map(|id| id.as_uuid())
    })
    .unwrap_or(Page::first(ROWS_PER_PAGE));
    let filter = CredentialFilter {
        kind: place.kind,
        project: place.project_id(),
        external_id: None,
    };
    let caller = person.caller(state);
    let list = credentials::list(state, &caller, &filter, page).await?;
    let base = place.url();
    let week = Period::last_days(SPARKLINE_DAYS, state.config.clock.now());
    let mut rows = Vec::with_capacity(list.data.len());
    for CredentialEntry { view, allowed } in list.data {
        let addresses = credentials::addresses(state, &caller, view.id)
            .await?
            .into_iter()
            .map(|address| (address.ip, DateCell::new(address.last_used_at)))
            .collect();
        let recent = usage::of_shown(state, &caller, view.id, week, None).await?;
        rows.push(CredentialRow {
            recent: Sparkline::of(&recent),
            credits: view.credits.as_ref().map(credits_text),
            addresses,
            exceeds_policy: view.exceeds_policy,
            revoke_url: allowed.revoke.then(|| format!("{base}/{}/revoke", view.id)),
            rotate_url: allowed.rotate.then(|| format!("{base}/{}/rotate", view.id)),
            edit_url: allowed.edit.then(|| format!("{base}/{}/edit", view.id)),
            usage_url: format!("{base}/{}/usage", view.id),
            external_id: view.external_id.as_ref().map(ToString::to_string),
            meta: view.meta.as_ref().map(|meta| meta.as_str().to_owned()),
            networks: view.allowed_cidrs.as_ref().map(Networks::to_string),
            exposed: view
                .exposure
                .as_ref()
                .map(|exposure| exposure.source.clone()),
            rotating_until: view
                .rotation
                .as_ref()
                .filter(|_| view.status == CredentialStatus::Active)
                .map(|rotation| DateCell::new(rotation.ends_at)),
            id: view.id.to_string(),
            name: view.name.to_string(),
            hint: view.hint,
            scopes: view.scopes,
            unknown_scopes: view.unknown_scopes,
            created: DateCell::new(view.created_at),
            last_used: view.last_used_at.map(DateCell::new),
            expires: view.expires_at.map(DateCell::new),
            expired: view.status == CredentialStatus::Expired,
            revoked: view.status == CredentialStatus::Revoked,
        });
    }
    let intro = match &place.project {
        None => "Keys act for the whole organization. Send one as Authorization: Bearer <key>. \
                 Revoking a key is immediate and permanent."
            .to_owned(),
        Some(project) => format!(
            "Tokens reach only the project {} and hold only project-level scopes. Revoking a \
             token is immediate and permanent.",
            project.name
        ),
    };
    let notice = match params.notice.as_deref() {
        Some("revoked") => Some("Revoked. Applications using it have lost access."),
        Some("saved") => Some("Saved. Changes apply from the next request."),
        _ => None,
    };
    let template = CredentialsPage {
        layout: Layout::new(state, person, place.section()).await?,
        title: place.title(),
        intro,
        create_label: format!("Create {}", title_case(place.label())),
        new_url: format!("{base}/new"),
        notice,
        rows,
        empty_text: format!("No {}s yet.", place.label()),
        first_url: params.cursor.is_some().then(|| base.clone()),
        next_url: list
            .next_cursor
            .map(|cursor| format!("{base}?cursor={cursor}")),
    };
    Ok(render(StatusCode::OK, &template))
}
