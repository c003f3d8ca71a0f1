//! Answering an invitation. Nobody joins an organization without accepting:
//! - `/invitations/{token}`, the emailed link (seven days; it stops working once answered,
//!   cancelled or resent): a person without an account sets a password and joins; a person
//!   with one signs in as that email (and comes back here), then accepts or declines;
//! - `/invitations`, a signed-in person's open invitations. Where the installation sends no
//!   email, they are accepted there: the invitation waits for that email's next sign-in or
//!   sign-up. Where it sends email, only the link accepts, since it proves the address.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use keyward_core::password::Password;
use keyward_core::{Email, InvitationId, KeyDigest, UserId};
use keyward_store::{
    InvitationAnswer, InvitationKey, InvitationRefusal, Joined, NewOwner, OpenInvitation,
};
use serde::Deserialize;

use super::accounts::{anonymous_page, hash_password, password_login, throttle};
use super::form::FormData;
use super::page::FormErrors;
use super::response::WebError;
use super::session::{
    Account, AnonymousCsrf, ClientIp, INVITATION_COOKIE as RETURN_COOKIE, account, cookie,
    link_token_shape as well_formed, set_cookie, start_session,
};
use crate::AppState;
use crate::audit::Origin;
use crate::email::sends_links;

/// How long the way back to a link is kept while its person signs in.
const RETURN_SECONDS: i64 = 3_600;

/// What the link page shows.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Signed in as the invitation's email: accept or decline.
    Answer,
    /// Signed in as someone else.
    OtherAccount,
    /// An account has the email: sign in as it first.
    LogIn,
    /// No account has it: choose a password.
    SetPassword,
    /// No account has it, and people sign in only through the provider.
    SingleSignOn,
}

#[derive(Template)]
#[template(path = "invitation.html")]
struct LinkPage {
    branding: std::sync::Arc<crate::branding::Branding>,
    token: String,
    organization: String,
    role: &'static str,
    email: String,
    signed_in_as: String,
    step: Step,
    sso_name: Option<String>,
    csrf_token: String,
    errors: FormErrors,
}

fn gone() -> WebError {
    WebError::page(
        StatusCode::GONE,
        "This invitation has been answered, cancelled, replaced by a newer one or has expired \
         (a link works for seven days). Ask the person who invited you to send it again.",
    )
}

/// The page for a refusal; `email` is the invitation's, when the visitor may see it (they
/// hold its link).
fn refused(refusal: InvitationRefusal, email: Option<&Email>) -> WebError {
    match refusal {
        InvitationRefusal::Gone => gone(),
        InvitationRefusal::NotYours => WebError::forbidden(match email {
            Some(email) => {
                format!(
                    "This invitation is for {email}. Log out, then log in as {email} to accept it."
                )
            }
            None => "This invitation is for another email address than yours.".to_owned(),
        }),
        InvitationRefusal::AccountExists => WebError::page(
            StatusCode::CONFLICT,
            match email {
                Some(email) => {
                    format!("An account with the email {email} exists: log in as it to accept.")
                }
                None => "An account with this email exists: log in as it to accept.".to_owned(),
            },
        ),
        InvitationRefusal::InviterMayNot => WebError::page(
            StatusCode::GONE,
            "Whoever invited you can no longer give this role (they left, their role changed, \
             or their key was revoked), so the invitation no longer holds. Ask an owner or \
             admin of the organization to invite you again.",
        ),
        InvitationRefusal::OrganizationGone => WebError::page(
            StatusCode::GONE,
            "The organization was deleted or suspended: it takes no new members now.",
        ),
    }
}

/// The open invitation a link is for.
async fn open(state: &AppState, token: &str) -> Result<(KeyDigest, OpenInvitation), WebError> {
    if !well_formed(token) {
        return Err(gone());
    }
    let digest = KeyDigest::of(token);
    let open = state
        .store
        .invitation_by_link(&digest, state.config.clock.now())
        .await?
        .ok_or_else(gone)?;
    Ok((digest, open))
}

async fn link_page(
    state: &AppState,
    headers: &HeaderMap,
    token: String,
    open: &OpenInvitation,
    errors: FormErrors,
) -> Result<Response, WebError> {
    let invitation = &open.invitation;
    let signed_in = account(state, headers).await?;
    let step = match &signed_in {
        Some(account) if account.email == invitation.email => Step::Answer,
        Some(_) => Step::OtherAccount,
        None if open.account_exists => Step::LogIn,
        None if password_login(state) => Step::SetPassword,
        None => Step::SingleSignOn,
    };
    let status = errors.status();
    let mut page = LinkPage {
        branding: state.config.branding.clone(),
        organization: open.organization_name.clone(),
        role: invitation.role.as_str(),
        email: invitation.email.to_string(),
        signed_in_as: signed_in
            .as_ref()
            .map_or(String::new(), |a| a.email.to_string()),
        step,
        sso_name: state.config.oidc.as_ref().map(|o| o.settings.name.clone()),
        csrf_token: String::new(),
        errors,
        token: token.clone(),
    };
    let mut response = match signed_in {
        Some(account) => {
            page.csrf_token = account.csrf_token;
            super::response::render(status, &page)
        }
        None => {
            let csrf = AnonymousCsrf::from_headers(state, headers)?;
            page.csrf_token = csrf.token.clone();
            anonymous_page(status, csrf, &page)
        }
    };
    // The token is in this page's address: no request from it names it, even to Keyward.
    response.headers_mut().insert(
        header::REFERRER_POLICY,
        axum::http::HeaderValue::from_static("no-referrer"),
    );
    if matches!(step, Step::LogIn | Step::SingleSignOn | Step::OtherAccount) {
        // Back here once signed in.
        response.headers_mut().append(
            header::SET_COOKIE,
            set_cookie(state, RETURN_COOKIE, &token, RETURN_SECONDS),
        );
    }
    Ok(response)
}

pub async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Result<Response, WebError> {
    let (_, open) = open(&state, &token).await?;
    link_page(&state, &headers, token, &open, FormErrors::default()).await
}

/// Into the organization just joined.
async fn joined(
    state: &AppState,
    account: &Account,
    joined: &Joined,
) -> Result<Response, WebError> {
    state
        .store
        .set_session_organization(&account.session, joined.organization)
        .await?;
    Ok(Redirect::to("/settings/api-keys").into_response())
}

pub async fn answer(
    State(state): State<AppState>,
    ClientIp(client_ip): ClientIp,
    origin: Origin,
    headers: HeaderMap,
    Path(token): Path<String>,
    form: FormData,
) -> Result<Response, WebError> {
    let (digest, open) = open(&state, &token).await?;
    let email = open.invitation.email.clone();
    let now = state.config.clock.now();
    let action = form.text("action");
    if !["create", "accept", "decline"].contains(&action) {
        return Err(WebError::page(
            StatusCode::BAD_REQUEST,
            "Choose to accept or decline the invitation.",
        ));
    }
    if action == "create" {
        AnonymousCsrf::check(&headers, form.csrf_token())?;
        if !password_login(&state) {
            return Err(WebError::forbidden(
                "People sign in through single sign-on here: sign in, then open the link again.",
            ));
        }
        throttle(&state.signup_throttle, &client_ip, "sign-ups")?;
        let password = match Password::parse_new(form.text("password").to_owned(), &email) {
            Ok(password) => password,
            Err(error) => {
                let mut errors = FormErrors::default();
                errors.push("password", error);
                return link_page(&state, &headers, token, &open, errors).await;
            }
        };
        let password_hash = hash_password(&state, password).await?;
        let user = UserId::generate();
        let audit = origin.by_person(user, &email);
        let person = NewOwner::Create {
            id: user,
            email: email.clone(),
            password_hash,
        };
        let answered = state
            .store
            .answer_invitation(
                &audit,
                InvitationKey::Link(digest),
                InvitationAnswer::Accept(person),
                now,
            )
            .await;
        let joined = match answered {
            Ok(Ok(joined)) => joined,
            // An account appeared meanwhile: the page now says to log in.
            Ok(Err(InvitationRefusal::AccountExists))
            | Err(keyward_store::StoreError::Conflict(_)) => {
                return link_page(&state, &headers, token, &open, FormErrors::default()).await;
            }
            Ok(Err(refusal)) => return Err(refused(refusal, Some(&email))),
            Err(other) => return Err(other.into()),
        };
        let session = start_session(&state, &audit, user, Some(joined.organization), false).await?;
        let mut response = Redirect::to("/settings/api-keys").into_response();
        response.headers_mut().append(header::SET_COOKIE, session);
        return Ok(forget_return(&state, &headers, response));
    }
    let account = account(&state, &headers)
        .await?
        .ok_or_else(|| WebError::Redirect(format!("/invitations/{token}")))?;
    account.check_csrf(form.csrf_token())?;
    let audit = origin.by_person(account.user_id, &account.email);
    let decline = action == "decline";
    let reply = if decline {
        InvitationAnswer::Decline(account.user_id)
    } else {
        InvitationAnswer::Accept(NewOwner::Existing(account.user_id))
    };
    let joined_or_declined = state
        .store
        .answer_invitation(&audit, InvitationKey::Link(digest), reply, now)
        .await?
        .map_err(|refusal| refused(refusal, Some(&email)))?;
    let response = if decline {
        Redirect::to("/invitations?notice=declined").into_response()
    } else {
        joined(&state, &account, &joined_or_declined).await?
    };
    Ok(forget_return(&state, &headers, response))
}

/// `response`, forgetting the way back to a link once it is answered.
fn forget_return(state: &AppState, headers: &HeaderMap, mut response: Response) -> Response {
    if cookie(headers, RETURN_COOKIE).is_some() {
        response
            .headers_mut()
            .append(header::SET_COOKIE, set_cookie(state, RETURN_COOKIE, "", 0));
    }
    response
}

struct OpenRow {
    id: String,
    organization: String,
    role: &'static str,
    inviter: String,
}

#[derive(Template)]
#[template(path = "invitations.html")]
struct ListPage {
    branding: std::sync::Arc<crate::branding::Branding>,
    csrf_token: String,
    email: String,
    rows: Vec<OpenRow>,
    /// Accepted here (no email), or only through the emailed link.
    accept_here: bool,
    /// Whether the person belongs to any organization (else the way on is an invitation).
    member: bool,
    notice: Option<&'static str>,
}

#[derive(Deserialize)]
pub struct ListParams {
    notice: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    params: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, WebError> {
    let account = account(&state, &headers)
        .await?
        .ok_or_else(|| WebError::Redirect("/login".into()))?;
    // Where links are emailed, signing up with an address does not show it is one's own:
    // the list is only for installations that accept here.
    let open = if sends_links(&state) {
        Vec::new()
    } else {
        state
            .store
            .invitations_for(&account.email, state.config.clock.now())
            .await?
    };
    let member = !state
        .store
        .memberships_of(account.user_id)
        .await?
        .is_empty();
    let notice = match params.ok().and_then(|Query(p)| p.notice).as_deref() {
        Some("declined") => Some("Invitation declined."),
        _ => None,
    };
    let page = ListPage {
        branding: state.config.branding.clone(),
        csrf_token: account.csrf_token,
        email: account.email.to_string(),
        rows: open
            .into_iter()
            .map(|open| OpenRow {
                id: open.invitation.id.to_string(),
                organization: open.organization_name,
                role: open.invitation.role.as_str(),
                inviter: match open.invitation.invited_by {
                    keyward_store::Inviter::Person { email, .. } => email.to_string(),
                    _ => String::new(),
                },
            })
            .collect(),
        accept_here: !sends_links(&state),
        member,
        notice,
    };
    Ok(super::response::render(StatusCode::OK, &page))
}

/// Accepts or declines an invitation by id, for the signed-in person whose email it names:
/// only where the installation sends no email (else the emailed link does it).
pub async fn answer_by_id(
    State(state): State<AppState>,
    origin: Origin,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    form: FormData,
) -> Result<Response, WebError> {
    let account = account(&state, &headers)
        .await?
        .ok_or_else(|| WebError::Redirect("/login".into()))?;
    account.check_csrf(form.csrf_token())?;
    if sends_links(&state) {
        return Err(WebError::page(
            StatusCode::NOT_FOUND,
            format!(
                "Invitations are accepted through the link emailed to {}: it shows the address \
                 is yours.",
                account.email
            ),
        ));
    }
    let id = InvitationId::parse(&id).map_err(|_| WebError::not_found("invitation"))?;
    let reply = match action.as_str() {
        "accept" => InvitationAnswer::Accept(NewOwner::Existing(account.user_id)),
        "decline" => InvitationAnswer::Decline(account.user_id),
        _ => return Err(WebError::not_found("page")),
    };
    let audit = origin.by_person(account.user_id, &account.email);
    let answered = state
        .store
        .answer_invitation(
            &audit,
            InvitationKey::Id(id),
            reply,
            state.config.clock.now(),
        )
        .await?
        .map_err(|refusal| refused(refusal, None))?;
    if action == "decline" {
        return Ok(Redirect::to("/invitations?notice=declined").into_response());
    }
    joined(&state, &account, &answered).await
}
