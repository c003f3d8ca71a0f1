//! `GET /portal/{code}`: redeems a portal link, once, and starts the confined session it
//! opens (see `crate::portal`). Any failure is the same page, and no session.

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use keyward_core::KeyDigest;

use super::response::WebError;
use super::session::start_portal_session;
use crate::AppState;
use crate::audit::Origin;
use crate::portal::PortalPages;

pub async fn redeem(
    State(state): State<AppState>,
    origin: Origin,
    Path(code): Path<String>,
) -> Result<Response, WebError> {
    let refused = || {
        WebError::page(
            StatusCode::GONE,
            "This link has been used already or has expired: a link opens one session, once, \
             within a minute of being made. Go back and open the page again.",
        )
    };
    if code.len() != 32 || !code.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(refused());
    }
    let now = state.config.clock.now();
    let redemption = state
        .store
        .redeem_portal_link(&KeyDigest::of(&code), now)
        .await?
        .ok_or_else(refused)?;
    let audit = origin.by_person(redemption.user_id, &redemption.email);
    let cookie = start_portal_session(&state, &audit, &redemption).await?;
    let first = PortalPages::from_storage(&redemption.confinement.pages).first_path();
    let mut response = Redirect::to(first).into_response();
    response.headers_mut().append(header::SET_COOKIE, cookie);
    Ok(response)
}
