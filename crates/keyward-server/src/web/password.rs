//! "Forgot your password?": a link by email (one hour, one use) to choose a new password.
//! The page answers the same whether or not an account has the address; requests are
//! throttled per client address and per account; a reset ends every session of the person.
//! Offered only with `[smtp]`, and where passwords are (`[oidc] password_login`).

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use keyward_core::password::Password;
use keyward_core::{Email, KeyDigest};
use serde_json::json;

use super::accounts::{anonymous_page, hash_password, reset_offered as offered, throttle};
use super::form::FormData;
use super::page::FormErrors;
use super::response::WebError;
use super::session::{AnonymousCsrf, ClientIp};
use crate::AppState;
use crate::audit::Origin;
use crate::email::{PASSWORD_RESET, new_email};
use crate::throttle::RESETS_PER_EMAIL_PER_HOUR;

/// How long a reset link works.
pub const RESET_SECONDS: i64 = 3_600;

#[derive(Template)]
#[template(path = "forgot.html")]
struct ForgotPage {
    branding: std::sync::Arc<crate::branding::Branding>,
    csrf_token: String,
    email: String,
    sent: bool,
    errors: FormErrors,
}

#[derive(Template)]
#[template(path = "reset.html")]
struct ResetPage {
    branding: std::sync::Arc<crate::branding::Branding>,
    csrf_token: String,
    token: String,
    errors: FormErrors,
}

fn not_offered() -> WebError {
    WebError::page(
        StatusCode::NOT_FOUND,
        "Passwords cannot be reset by email on this installation. Ask an owner of your \
         organization for help.",
    )
}

fn gone() -> WebError {
    WebError::page(
        StatusCode::GONE,
        "This link has been used already or has expired: a reset link works once, within an \
         hour. Ask for a new one from the log-in page.",
    )
}

pub async fn forgot_page(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    if !offered(&state) {
        return Err(not_offered());
    }
    let csrf = AnonymousCsrf::from_headers(&state, &headers)?;
    let page = ForgotPage {
        branding: state.config.branding.clone(),
        csrf_token: csrf.token.clone(),
        email: String::new(),
        sent: false,
        errors: FormErrors::default(),
    };
    Ok(anonymous_page(StatusCode::OK, csrf, &page))
}

pub async fn forgot(
    State(state): State<AppState>,
    ClientIp(client_ip): ClientIp,
    origin: Origin,
    headers: HeaderMap,
    form: FormData,
) -> Result<Response, WebError> {
    if !offered(&state) {
        return Err(not_offered());
    }
    AnonymousCsrf::check(&headers, form.csrf_token())?;
    throttle(&state.reset_throttle, &client_ip, "password reset requests")?;
    let csrf = AnonymousCsrf::from_headers(&state, &headers)?;
    let email = match Email::parse(form.text("email")) {
        Ok(email) => email,
        Err(error) => {
            let mut errors = FormErrors::default();
            errors.push("email", error);
            let page = ForgotPage {
                branding: state.config.branding.clone(),
                csrf_token: csrf.token.clone(),
                email: form.text("email").to_owned(),
                sent: false,
                errors,
            };
            return Ok(anonymous_page(
                StatusCode::UNPROCESSABLE_ENTITY,
                csrf,
                &page,
            ));
        }
    };
    let key = state
        .config
        .webhook_signing_key
        .as_ref()
        .ok_or_else(not_offered)?;
    let now = state.config.clock.now();
    let message = new_email(email.clone(), "password_reset", json!({}), now);
    let token = key.link_token(PASSWORD_RESET, message.id.as_bytes());
    // Queued, no account, or asked too often: the same page all the same.
    state
        .store
        .request_password_reset(
            &origin.by_nobody(),
            &email,
            message,
            KeyDigest::of(&token),
            now.plus_seconds(RESET_SECONDS),
            RESETS_PER_EMAIL_PER_HOUR,
        )
        .await?;
    let page = ForgotPage {
        branding: state.config.branding.clone(),
        csrf_token: csrf.token.clone(),
        email: email.to_string(),
        sent: true,
        errors: FormErrors::default(),
    };
    Ok(anonymous_page(StatusCode::OK, csrf, &page))
}

/// The account a live link is for.
async fn account_of(state: &AppState, token: &str) -> Result<(KeyDigest, Email), WebError> {
    if !super::session::link_token_shape(token) {
        return Err(gone());
    }
    let digest = KeyDigest::of(token);
    let email = state
        .store
        .password_reset_email(&digest, state.config.clock.now())
        .await?
        .ok_or_else(gone)?;
    Ok((digest, email))
}

pub async fn reset_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Result<Response, WebError> {
    account_of(&state, &token).await?;
    let csrf = AnonymousCsrf::from_headers(&state, &headers)?;
    let page = ResetPage {
        branding: state.config.branding.clone(),
        csrf_token: csrf.token.clone(),
        token,
        errors: FormErrors::default(),
    };
    Ok(anonymous_page(StatusCode::OK, csrf, &page))
}

pub async fn reset(
    State(state): State<AppState>,
    origin: Origin,
    headers: HeaderMap,
    Path(token): Path<String>,
    form: FormData,
) -> Result<Response, WebError> {
    AnonymousCsrf::check(&headers, form.csrf_token())?;
    let (digest, email) = account_of(&state, &token).await?;
    let password = match Password::parse_new(form.text("password").to_owned(), &email) {
        Ok(password) => password,
        Err(error) => {
            let csrf = AnonymousCsrf::from_headers(&state, &headers)?;
            let mut errors = FormErrors::default();
            errors.push("password", error);
            let page = ResetPage {
                branding: state.config.branding.clone(),
                csrf_token: csrf.token.clone(),
                token,
                errors,
            };
            return Ok(anonymous_page(
                StatusCode::UNPROCESSABLE_ENTITY,
                csrf,
                &page,
            ));
        }
    };
    let hash = hash_password(&state, password).await?;
    state
        .store
        .reset_password(&origin.by_nobody(), &digest, hash, state.config.clock.now())
        .await?
        .ok_or_else(gone)?;
    Ok(Redirect::to("/login?notice=password_changed").into_response())
}
