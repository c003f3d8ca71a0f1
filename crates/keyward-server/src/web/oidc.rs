//! Single sign-on: `GET /login/oidc` sends the browser to the provider, `GET
//! /login/oidc/callback` takes it back (see `crate::oidc` for what is checked). The sign-in
//! under way is a cookie of its own (state, nonce, PKCE verifier), for ten minutes, on these
//! paths only; every refusal is a page that says why, and no session.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use keyward_core::{Email, ExternalId, Name, Role};
use keyward_store::{SsoPerson, SsoRefusal};

use super::response::WebError;
use super::session::{cookie, same_secret, set_cookie_at, start_session};
use crate::AppState;
use crate::audit::Origin;
use crate::oidc::{LOGIN_SECONDS, Oidc, OidcError, Pending};

const PENDING_COOKIE: &str = "keyward_oidc";

fn oidc(state: &AppState) -> Result<&Oidc, WebError> {
    state.config.oidc.as_deref().ok_or_else(|| {
        WebError::page(
            StatusCode::NOT_FOUND,
            "Single sign-on is not set up on this installation.",
        )
    })
}

fn redirect_uri(state: &AppState) -> String {
    format!("{}/login/oidc/callback", state.config.public_url)
}

fn pending_cookie(state: &AppState, value: &str, max_age: i64) -> HeaderValue {
    set_cookie_at(state, "/login/oidc", PENDING_COOKIE, value, max_age)
}

fn refused(error: OidcError) -> WebError {
    match &error {
        OidcError::Unreachable(_) => {
            tracing::warn!(%error, "single sign-on failed");
            WebError::page(
                StatusCode::BAD_GATEWAY,
                format!("Sign-in failed: {error}. Try again in a moment."),
            )
        }
        _ => {
            tracing::info!(%error, "single sign-on refused");
            WebError::page(
                StatusCode::UNAUTHORIZED,
                format!("Sign-in failed: {error}."),
            )
        }
    }
}

pub async fn begin(State(state): State<AppState>) -> Result<Response, WebError> {
    let oidc = oidc(&state)?;
    let (url, pending) = oidc.begin(&redirect_uri(&state)).await.map_err(refused)?;
    let mut response = Redirect::to(url.as_str()).into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        pending_cookie(&state, &pending.to_cookie(), LOGIN_SECONDS),
    );
    Ok(response)
}

pub async fn callback(
    State(state): State<AppState>,
    origin: Origin,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, WebError> {
    let oidc = oidc(&state)?;
    // Whatever happens, the sign-in under way is over.
    let forget = pending_cookie(&state, "", 0);
    let answer = finish(&state, oidc, &origin, &headers, &query).await;
    let mut response = match answer {
        Ok(response) => response,
        Err(error) => error.into_response(),
    };
    response.headers_mut().append(header::SET_COOKIE, forget);
    Ok(response)
}

async fn finish(
    state: &AppState,
    oidc: &Oidc,
    origin: &Origin,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
) -> Result<Response, WebError> {
    let pending = cookie(headers, PENDING_COOKIE)
        .and_then(Pending::from_cookie)
        .ok_or_else(|| refused(OidcError::State))?;
    let state_matches = query
        .get("state")
        .is_some_and(|given| same_secret(given, &pending.state));
    if !state_matches {
        return Err(refused(OidcError::State));
    }
    if let Some(error) = query.get("error") {
        let description = query
            .get("error_description")
            .map_or(String::new(), |d| format!(": {d}"));
        return Err(refused(OidcError::Provider(format!(
            "{error}{description}"
        ))));
    }
    let code = query
        .get("code")
        .ok_or_else(|| refused(OidcError::Provider("no code in the answer".into())))?;
    let now = state.config.clock.now();
    let identity = oidc
        .finish(code, &pending, &redirect_uri(state), now.unix_seconds())
        .await
        .map_err(refused)?;

    let subject = ExternalId::parse(&identity.subject).map_err(|_| {
        refused(OidcError::Token(
            "its subject is not 1 to 255 printable ASCII characters".into(),
        ))
    })?;
    let email = identity
        .email
        .as_deref()
        .and_then(|email| Email::parse(email).ok())
        .ok_or_else(|| {
            refused(OidcError::Token(
                "it gave no usable email address (ask for the `email` scope)".into(),
            ))
        })?;
    let person = SsoPerson {
        subject,
        email,
        email_verified: identity.email_verified,
        name: identity
            .name
            .as_deref()
            .and_then(|name| Name::parse(name).ok()),
    };
    let claimed = oidc.settings.organization_claim.as_ref().map(|_| {
        let role = identity
            .role
            .as_deref()
            .and_then(Role::from_storage)
            .unwrap_or(Role::Member);
        identity
            .organizations
            .iter()
            .flatten()
            .filter_map(|id| ExternalId::parse(id).ok())
            .map(|id| (id, role))
            .collect::<Vec<_>>()
    });
    let signed_in = state
        .store
        .sign_in_with_provider(&origin.by_nobody(), person, claimed, now)
        .await?;
    let provider = &oidc.settings.name;
    let signed_in = match signed_in {
        Ok(signed_in) => signed_in,
        Err(SsoRefusal::EmailUnverified) => {
            return Err(WebError::forbidden(format!(
                "{provider} has not verified that your email address is yours, so it cannot \
                 be yours here yet (if an account has it, log in with its password). Have \
                 {provider} verify your email, then sign in again."
            )));
        }
        Err(SsoRefusal::EmailTaken) => {
            return Err(WebError::forbidden(format!(
                "Another account already uses the email {provider} gave. Ask an owner of \
                 this installation for help."
            )));
        }
    };
    let organization = match signed_in.claimed.as_ref().and_then(|c| c.first()) {
        Some(first) => Some(*first),
        None => state
            .store
            .memberships_of(signed_in.user_id)
            .await?
            .first()
            .map(|m| m.organization_id),
    };
    let audit = origin.by_person(signed_in.user_id, &signed_in.email);
    let session = start_session(state, &audit, signed_in.user_id, organization, true).await?;
    super::session::enter(state, headers, &signed_in.email, session).await
}
