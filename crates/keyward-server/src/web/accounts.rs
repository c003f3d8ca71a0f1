//! Sign-up, log-in, log-out and the organization switcher.
//!
//! Passwords are hashed with Argon2id on the bounded password workers ([`crate::passwords`]):
//! too much at once gets 503 with `Retry-After`. One address may sign up
//! [`crate::throttle::SIGNUPS_PER_ADDRESS`] and try to log in [`crate::throttle::LOGINS_PER_ADDRESS`], whatever the emails. After
//! [`MAX_FAILURES`] failed log-ins for one email from one address, further tries for that pair
//! are refused without checking the password until [`LOCKOUT_SECONDS`] have passed since the
//! last failure; a success clears the count. Each attempt is counted before its password is
//! checked, so concurrent attempts share the same limit.

use std::net::IpAddr;

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use keyward_core::password::{HashMemory, Password};
use keyward_core::{Email, Name, OrganizationId, UserId};
use keyward_store::{LoginAttempt, NewOrganization, NewOwner, StoreError};

use super::form::FormData;
use super::page::FormErrors;
use super::response::{WebError, render};
use super::session::{
    AnonymousCsrf, ClientIp, Person, SESSION_COOKIE, set_cookie, signed_in, start_session,
};
use crate::AppState;
use crate::audit::Origin;
use crate::throttle::AddressThrottle;

pub const MAX_FAILURES: u32 = 5;
pub const LOCKOUT_SECONDS: i64 = 60;

/// A real Argon2id hash of a random password, checked when the email has no account, so that
/// a wrong email takes as long as a wrong password. Made once, on first use.
async fn decoy_hash(state: &AppState) -> Result<String, WebError> {
    static DECOY: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    DECOY
        .get_or_try_init(|| async {
            let password = Password::generate().map_err(WebError::internal)?;
            hash_password(state, password).await
        })
        .await
        .cloned()
}

fn sso_name(state: &AppState) -> Option<String> {
    state
        .config
        .oidc
        .as_ref()
        .map(|oidc| oidc.settings.name.clone())
}

/// Whether people may sign up and log in with a password (`[oidc] password_login`).
pub(super) fn password_login(state: &AppState) -> bool {
    state
        .config
        .oidc
        .as_ref()
        .is_none_or(|oidc| oidc.settings.password_login)
}

/// Whether "Forgot your password?" is offered: with email, where passwords are used.
pub(super) fn reset_offered(state: &AppState) -> bool {
    state.config.smtp.is_some() && password_login(state)
}

fn single_sign_on_only() -> WebError {
    WebError::forbidden(
        "This installation signs people in through its identity provider only: use the \
         single sign-on button on the log-in page.",
    )
}

pub async fn home(State(state): State<AppState>, headers: HeaderMap) -> Redirect {
    if signed_in(&state, &headers).await {
        Redirect::to("/settings/api-keys")
    } else {
        Redirect::to("/login")
    }
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    branding: std::sync::Arc<crate::branding::Branding>,
    /// "Sign in with <name>", with single sign-on.
    sso_name: Option<String>,
    /// Whether the password form is offered.
    password_login: bool,
    /// Whether "Forgot your password?" is offered.
    forgot: bool,
    notice: Option<&'static str>,
    csrf_token: String,
    email: String,
    errors: FormErrors,
}

#[derive(Template)]
#[template(path = "signup.html")]
struct SignupPage {
    branding: std::sync::Arc<crate::branding::Branding>,
    csrf_token: String,
    email: String,
    organization: String,
    errors: FormErrors,
}

/// A page for a visitor who is not signed in, setting their CSRF cookie if they had none.
pub(super) fn anonymous_page(
    status: StatusCode,
    csrf: AnonymousCsrf,
    page: &impl Template,
) -> Response {
    let mut response = render(status, page);
    if let Some(cookie) = csrf.set_cookie {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

pub async fn login_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Result<Response, WebError> {
    if signed_in(&state, &headers).await {
        return Ok(Redirect::to("/settings/api-keys").into_response());
    }
    let csrf = AnonymousCsrf::from_headers(&state, &headers)?;
    let page = LoginPage {
        sso_name: sso_name(&state),
        password_login: password_login(&state),
        forgot: reset_offered(&state),
        notice: (query.as_deref() == Some("notice=password_changed")).then_some(
            "Your password is changed, and every session of yours ended: log in with the new one.",
        ),
        branding: state.config.branding.clone(),
        csrf_token: csrf.token.clone(),
        email: String::new(),
        errors: FormErrors::default(),
    };
    Ok(anonymous_page(StatusCode::OK, csrf, &page))
}

pub async fn signup_page(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    if !password_login(&state) {
        return Err(single_sign_on_only());
    }
    if signed_in(&state, &headers).await {
        return Ok(Redirect::to("/settings/api-keys").into_response());
    }
    let csrf = AnonymousCsrf::from_headers(&state, &headers)?;
    let page = SignupPage {
        branding: state.config.branding.clone(),
        csrf_token: csrf.token.clone(),
        email: String::new(),
        organization: String::new(),
        errors: FormErrors::default(),
    };
    Ok(anonymous_page(StatusCode::OK, csrf, &page))
}

/// One argon2 run on the bounded password workers.
async fn with_password_worker<T: Send + 'static>(
    state: &AppState,
    work: impl FnOnce(&mut HashMemory) -> T + Send + 'static,
) -> Result<T, WebError> {
    state
        .passwords
        .run(work)
        .await
        .map_err(|_| WebError::TryLater {
            status: StatusCode::SERVICE_UNAVAILABLE,
            retry_after_seconds: 1,
            message: "The server is busy checking passwords. Please try again in a moment.".into(),
        })
}

pub(super) async fn hash_password(
    state: &AppState,
    password: Password,
) -> Result<String, WebError> {
    with_password_worker(state, move |memory| password.hash_in(memory))
        .await?
        .map_err(WebError::internal)
}

async fn verify_password(
    state: &AppState,
    password: Password,
    hash: String,
) -> Result<bool, WebError> {
    with_password_worker(state, move |memory| password.verify_in(&hash, memory)).await
}

/// Counts a try from the client's address against `throttle`.
pub(super) fn throttle(
    throttle: &AddressThrottle,
    client_ip: &str,
    what: &str,
) -> Result<(), WebError> {
    let address = client_ip
        .parse()
        .unwrap_or(IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED));
    throttle
        .try_once(address)
        .map_err(|retry_after_seconds| WebError::TryLater {
            status: StatusCode::TOO_MANY_REQUESTS,
            retry_after_seconds,
            message: format!(
                "Too many {what} from your address. Try again in {retry_after_seconds} s."
            ),
        })
}

pub async fn signup(
    State(state): State<AppState>,
    ClientIp(client_ip): ClientIp,
    origin: Origin,
    headers: HeaderMap,
    form: FormData,
) -> Result<Response, WebError> {
    if !password_login(&state) {
        return Err(single_sign_on_only());
    }
    AnonymousCsrf::check(&headers, form.csrf_token())?;
    throttle(&state.signup_throttle, &client_ip, "sign-ups")?;
    let mut errors = FormErrors::default();
    let email = Email::parse(form.text("email"))
        .map_err(|e| errors.push("email", e))
        .ok();
    let raw_password = form.text("password").to_owned();
    let password = match &email {
        Some(email) => Password::parse_new(raw_password, email),
        None => Password::parse(raw_password),
    }
    .map_err(|e| errors.push("password", e))
    .ok();
    let organization = Name::parse(form.text("organization"))
        .map_err(|e| errors.push("organization", e))
        .ok();
    let page_again = |errors: FormErrors| -> Result<Response, WebError> {
        let csrf = AnonymousCsrf::from_headers(&state, &headers)?;
        let page = SignupPage {
            branding: state.config.branding.clone(),
            csrf_token: csrf.token.clone(),
            email: form.text("email").to_owned(),
            organization: form.text("organization").to_owned(),
            errors,
        };
        Ok(anonymous_page(
            StatusCode::UNPROCESSABLE_ENTITY,
            csrf,
            &page,
        ))
    };
    let (Some(email), Some(password), Some(organization)) = (email, password, organization) else {
        return page_again(errors);
    };
    if state.store.find_user_by_email(&email).await?.is_some() {
        errors.push(
            "email",
            "an account with this email already exists; log in instead",
        );
        return page_again(errors);
    }
    let password_hash = hash_password(&state, password).await?;
    let user = UserId::generate();
    let organization_id = OrganizationId::generate();
    let audit = origin.by_person(user, &email);
    let address = email.clone();
    let created = state
        .store
        .create_organization(
            &audit,
            NewOrganization {
                id: organization_id,
                name: organization,
                created_at: state.config.clock.now(),
                external_id: None,
                policy: Default::default(),
                unique_name: false,
            },
            NewOwner::Create {
                id: user,
                email,
                password_hash,
            },
            None,
        )
        .await;
    match created {
        Ok(()) => {}
        Err(StoreError::Conflict(_)) => {
            errors.push(
                "email",
                "an account with this email already exists; log in instead",
            );
            return page_again(errors);
        }
        Err(other) => return Err(other.into()),
    }
    let cookie = start_session(&state, &audit, user, Some(organization_id), false).await?;
    super::session::enter(&state, &headers, &address, cookie).await
}

pub async fn login(
    State(state): State<AppState>,
    ClientIp(client_ip): ClientIp,
    origin: Origin,
    headers: HeaderMap,
    form: FormData,
) -> Result<Response, WebError> {
    if !password_login(&state) {
        return Err(single_sign_on_only());
    }
    AnonymousCsrf::check(&headers, form.csrf_token())?;
    let refuse = |status: StatusCode, field: &'static str, message: String| {
        let csrf = AnonymousCsrf::from_headers(&state, &headers)?;
        let mut errors = FormErrors::default();
        errors.push(field, message);
        let page = LoginPage {
            sso_name: sso_name(&state),
            password_login: password_login(&state),
            forgot: reset_offered(&state),
            notice: None,
            branding: state.config.branding.clone(),
            csrf_token: csrf.token.clone(),
            email: form.text("email").to_owned(),
            errors,
        };
        Ok::<_, WebError>(anonymous_page(status, csrf, &page))
    };
    let email = match Email::parse(form.text("email")) {
        Ok(email) => email,
        Err(error) => return refuse(StatusCode::UNPROCESSABLE_ENTITY, "email", error.to_string()),
    };
    throttle(&state.login_throttle, &client_ip, "log-in attempts")?;
    let now = state.config.clock.now();
    // The attempt counts as a failure before the password is checked, so parallel tries
    // cannot all get in under the limit; a success clears it.
    let attempt = state
        .store
        .begin_login_attempt(&email, &client_ip, now, MAX_FAILURES, LOCKOUT_SECONDS)
        .await?;
    if let LoginAttempt::Locked {
        retry_after_seconds,
    } = attempt
    {
        return refuse(
            StatusCode::TOO_MANY_REQUESTS,
            "form",
            format!(
                "Too many failed log-ins for this email from your address. Wait a minute \
                 ({retry_after_seconds} s) and try again."
            ),
        );
    }
    let password = Password::parse(form.text("password").to_owned());
    let user = state.store.find_user_by_email(&email).await?;
    let verified = match (&password, &user) {
        (Ok(password), Some(user)) if user.password_hash.is_some() => {
            let hash = user.password_hash.clone().unwrap_or_default();
            verify_password(&state, password.clone(), hash).await?
        }
        // No account, or one the platform provisioned, which has no password: the same work
        // and the same answer as a wrong password.
        (Ok(password), _) => {
            verify_password(&state, password.clone(), decoy_hash(&state).await?).await?;
            false
        }
        (Err(_), _) => false,
    };
    let organization_of = async |user: &keyward_store::UserRecord| {
        Ok::<_, WebError>(
            state
                .store
                .memberships_of(user.id)
                .await?
                .first()
                .map(|m| m.organization_id),
        )
    };
    let Some(user) = user.clone().filter(|_| verified) else {
        // Recorded for the person whose account was tried, in the organization they would
        // have worked in; done by nobody known (anyone can type an email). An email with no
        // account belongs to no organization, so nobody could read its event: none is kept.
        if let Some(user) = &user {
            let organization = organization_of(user).await?;
            state
                .store
                .record_audit_event(
                    &origin.by_nobody(),
                    organization,
                    "user.login_failed",
                    "user",
                    &user.id.to_string(),
                )
                .await?;
        }
        return refuse(
            StatusCode::UNAUTHORIZED,
            "form",
            "The email or the password is not right.".to_owned(),
        );
    };
    state.store.clear_login_failures(&email, &client_ip).await?;
    let organization = organization_of(&user).await?;
    let audit = origin.by_person(user.id, &user.email);
    let cookie = start_session(&state, &audit, user.id, organization, false).await?;
    super::session::enter(&state, &headers, &user.email, cookie).await
}

/// Ends the person's own session: whether or not they still belong to an organization.
pub async fn logout(
    State(state): State<AppState>,
    origin: Origin,
    headers: HeaderMap,
    form: FormData,
) -> Result<Response, WebError> {
    let account = super::session::account(&state, &headers)
        .await?
        .ok_or_else(|| WebError::Redirect("/login".into()))?;
    account.check_csrf(form.csrf_token())?;
    state
        .store
        .delete_session(
            &origin.by_person(account.user_id, &account.email),
            &account.session,
        )
        .await?;
    // Begun at the provider: ended there too, when it offers RP-initiated log-out.
    let mut after = "/login".to_owned();
    if account.single_sign_on
        && let Some(oidc) = &state.config.oidc
        && let Some(url) = oidc
            .logout_url(&format!("{}/login", state.config.public_url))
            .await
    {
        after = url.to_string();
    }
    let mut response = Redirect::to(&after).into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&state, SESSION_COOKIE, "", 0),
    );
    if super::session::cookie(&headers, super::session::INVITATION_COOKIE).is_some() {
        response.headers_mut().append(
            header::SET_COOKIE,
            set_cookie(&state, super::session::INVITATION_COOKIE, "", 0),
        );
    }
    // A portal session this browser holds ends with it (the cookie is forgotten; the
    // session itself ends at its time).
    if super::session::cookie(&headers, super::session::PORTAL_COOKIE).is_some() {
        response.headers_mut().append(
            header::SET_COOKIE,
            super::session::portal_cookie(&state, "", 0),
        );
    }
    Ok(response)
}

pub async fn switch_organization(
    State(state): State<AppState>,
    person: Person,
    form: FormData,
) -> Result<Response, WebError> {
    person.check_csrf(form.csrf_token())?;
    let wanted = OrganizationId::parse(form.text("organization_id"))
        .map_err(|_| WebError::not_found("organization"))?;
    let member = state
        .store
        .memberships_of(person.user_id)
        .await?
        .iter()
        .any(|m| m.organization_id == wanted);
    if !member {
        return Err(WebError::not_found("organization"));
    }
    state
        .store
        .set_session_organization(&person.session, wanted)
        .await?;
    Ok(Redirect::to("/settings/api-keys").into_response())
}
