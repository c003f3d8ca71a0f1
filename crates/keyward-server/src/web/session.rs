//! Dashboard sessions and CSRF protection.
//!
//! A session cookie holds 32 random base62 characters; the database keeps only their SHA-256,
//! so a copy of the database opens no session. The cookie is HttpOnly and SameSite=Lax, and
//! Secure when the public URL is https. Every form carries a CSRF token: the session's own
//! once signed in, and before that (log-in and sign-up) a random value that must match a
//! cookie of its own (the double-submit pattern).

use std::net::IpAddr;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use keyward_core::credential::random_token;
use keyward_core::{Email, KeyDigest, Scope, UserId};
use keyward_store::{MembershipRecord, NewSession};

use super::response::WebError;
use crate::AppState;

pub const SESSION_COOKIE: &str = "keyward_session";
/// A portal session's cookie: apart from the dashboard's own, so that a portal session shown
/// in a platform's frame never replaces a person's own session, and a request that carries it
/// is a portal request (framing allowed, pages confined) or none at all.
pub const PORTAL_COOKIE: &str = "keyward_portal";
pub const CSRF_COOKIE: &str = "keyward_csrf";
/// Holds an invitation link's token while its person signs in, to bring them back to it.
pub const INVITATION_COOKIE: &str = "keyward_invitation";
/// How long a session lasts after signing in.
pub const SESSION_SECONDS: i64 = 7 * 24 * 3600;

/// The value of cookie `name`, if the request carries it.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// A `Set-Cookie` value with the attributes every Keyward cookie has.
pub fn set_cookie(state: &AppState, name: &str, value: &str, max_age: i64) -> HeaderValue {
    set_cookie_at(state, "/", name, value, max_age)
}

/// As [`set_cookie`], sent only to paths under `path`.
pub fn set_cookie_at(
    state: &AppState,
    path: &str,
    name: &str,
    value: &str,
    max_age: i64,
) -> HeaderValue {
    let secure = if state.config.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let text =
        format!("{name}={value}; Path={path}; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}");
    HeaderValue::try_from(text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Compares secrets in time that does not depend on where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The client's address, for the failed-login throttle.
pub struct ClientIp(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let ip = crate::client_address::of(parts)
            .map_or_else(|| "unknown".to_owned(), |ip: IpAddr| ip.to_string());
        Ok(Self(ip))
    }
}

/// What kind of session to begin, besides whose and where.
struct Kind {
    seconds: i64,
    portal: Option<keyward_store::PortalConfinement>,
    single_sign_on: bool,
    /// The key whose portal link opened it: the session ends when the key stops working.
    opened_by: Option<uuid::Uuid>,
}

/// Records a new session and returns its cookie's value (a secret the database never sees).
async fn begin(
    state: &AppState,
    audit: &keyward_store::AuditContext,
    user: UserId,
    organization: Option<keyward_core::OrganizationId>,
    kind: Kind,
) -> Result<String, WebError> {
    let token = random_token().map_err(WebError::internal)?;
    let csrf_token = random_token().map_err(WebError::internal)?;
    let now = state.config.clock.now();
    state
        .store
        .create_session(
            audit,
            NewSession {
                token_digest: KeyDigest::of(&token),
                user_id: user,
                organization_id: organization,
                csrf_token,
                created_at: now,
                expires_at: now.plus_seconds(kind.seconds),
                portal: kind.portal,
                single_sign_on: kind.single_sign_on,
                opened_by: kind.opened_by,
            },
        )
        .await?;
    Ok(token)
}

/// Starts a session for `user` in `organization` and returns the `Set-Cookie` value;
/// `single_sign_on` when it begins at the OpenID provider.
pub async fn start_session(
    state: &AppState,
    audit: &keyward_store::AuditContext,
    user: UserId,
    organization: Option<keyward_core::OrganizationId>,
    single_sign_on: bool,
) -> Result<HeaderValue, WebError> {
    let kind = Kind {
        seconds: SESSION_SECONDS,
        portal: None,
        single_sign_on,
        opened_by: None,
    };
    let token = begin(state, audit, user, organization, kind).await?;
    Ok(set_cookie(state, SESSION_COOKIE, &token, SESSION_SECONDS))
}

/// The `Set-Cookie` value of a portal session. Where the portal may be framed by another
/// site, the cookie must reach Keyward inside that site's page: `SameSite=None; Secure`,
/// partitioned by the top-level site (CHIPS), so it is never sent in any other site's
/// frames nor at the top level. Forms stay protected by the session's CSRF token.
pub fn portal_cookie(state: &AppState, value: &str, max_age: i64) -> HeaderValue {
    if state.config.portal.frame_ancestors.is_empty() {
        return set_cookie(state, PORTAL_COOKIE, value, max_age);
    }
    let text = format!(
        "{PORTAL_COOKIE}={value}; Path=/; HttpOnly; SameSite=None; Secure; Partitioned; \
         Max-Age={max_age}"
    );
    HeaderValue::try_from(text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Starts a portal session as `redemption` says and returns its `Set-Cookie` value.
pub async fn start_portal_session(
    state: &AppState,
    audit: &keyward_store::AuditContext,
    redemption: &keyward_store::PortalRedemption,
) -> Result<HeaderValue, WebError> {
    let kind = Kind {
        seconds: redemption.session_seconds,
        portal: Some(redemption.confinement.clone()),
        single_sign_on: false,
        opened_by: Some(redemption.credential),
    };
    let organization = Some(redemption.organization);
    let token = begin(state, audit, redemption.user_id, organization, kind).await?;
    Ok(portal_cookie(state, &token, redemption.session_seconds))
}

/// What a portal session is confined to, as a page needs it.
#[derive(Clone, Debug)]
pub struct PortalView {
    pub pages: crate::portal::PortalPages,
    pub return_url: String,
}

impl PortalView {
    /// "Back to console.example.com": the return URL's host.
    pub fn return_label(&self) -> String {
        url::Url::parse(&self.return_url)
            .ok()
            .and_then(|url| url.host_str().map(str::to_owned))
            .unwrap_or_else(|| "the console".to_owned())
    }
}

/// A signed-in person working in one of their organizations.
pub struct Person {
    pub user_id: UserId,
    pub email: Email,
    pub membership: MembershipRecord,
    pub csrf_token: String,
    pub session: KeyDigest,
    /// Where the request comes from, for the audit log.
    pub origin: crate::audit::Origin,
    /// Set in a portal session: its pages and the way back to the platform.
    pub portal: Option<PortalView>,
}

impl Person {
    /// Who changes something, from where: this person.
    pub fn audit(&self) -> keyward_store::AuditContext {
        self.origin.by_person(self.user_id, &self.email)
    }

    /// Whether the person's role holds `scope`: what the dashboard lets them do, as a key's
    /// scopes do in the API.
    pub fn can(&self, scope: Scope) -> bool {
        scope.builtin_allows(self.membership.role)
    }

    /// The dashboard's permission check, the counterpart of `Principal::require`: a 403 page
    /// unless the person's role holds `scope`.
    pub fn require(&self, scope: Scope) -> Result<(), WebError> {
        if self.can(scope) {
            Ok(())
        } else {
            Err(WebError::forbidden(format!(
                "Your role ({}) cannot do this: it needs the {} permission.",
                self.membership.role.as_str(),
                scope.builtin_name().unwrap_or_default()
            )))
        }
    }

    /// The person as the services see them: their organization, role and grants.
    pub fn caller(&self, state: &crate::AppState) -> crate::services::caller::Caller {
        crate::services::caller::Caller::person(
            state,
            self.membership.organization_id,
            self.user_id,
            self.membership.role,
            self.audit(),
        )
    }

    /// Refuses a form whose CSRF token is not this session's.
    pub fn check_csrf(&self, submitted: Option<&str>) -> Result<(), WebError> {
        match submitted {
            Some(token) if same_secret(token, &self.csrf_token) => Ok(()),
            _ => Err(csrf_refused()),
        }
    }
}

pub fn csrf_refused() -> WebError {
    WebError::forbidden(
        "This form was not sent from this page or has expired. Go back, reload the page and \
         try again.",
    )
}

impl FromRequestParts<AppState> for Person {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, WebError> {
        if let Some(token) = cookie(&parts.headers, PORTAL_COOKIE).map(str::to_owned) {
            match portal_person(parts, state, &token).await {
                Ok(person) => return Ok(person),
                // Outside the portal's pages, or once it ended, a person's own session (never
                // sent inside another site's frame: it is SameSite=Lax), so that a portal link
                // someone else sent never locks anyone out of their own dashboard.
                Err(refusal) if cookie(&parts.headers, SESSION_COOKIE).is_none() => {
                    return Err(refusal);
                }
                Err(_) => {}
            }
        }
        let Some(token) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(WebError::Redirect("/login".into()));
        };
        let digest = KeyDigest::of(token);
        let session = state
            .store
            .find_session(&digest, state.config.clock.now())
            .await?
            .filter(|session| session.portal.is_none())
            .ok_or_else(|| WebError::Redirect("/login".into()))?;
        let membership = match session.membership {
            Some(membership) => membership,
            // Removed from the organization they were working in: move to another one.
            None => {
                let first = state
                    .store
                    .memberships_of(session.user_id)
                    .await?
                    .into_iter()
                    .next();
                // No organization left, but invitations to answer here: those first.
                if first.is_none()
                    && !crate::email::sends_links(state)
                    && !state
                        .store
                        .invitations_for(&session.email, state.config.clock.now())
                        .await?
                        .is_empty()
                {
                    return Err(WebError::Redirect("/invitations".into()));
                }
                let first = first.ok_or_else(|| {
                    WebError::forbidden(
                        "You no longer belong to any organization. Ask an owner to add you \
                             again, or sign up with a new organization.",
                    )
                })?;
                state
                    .store
                    .set_session_organization(&digest, first.organization_id)
                    .await?;
                first
            }
        };
        let Ok(origin) = crate::audit::Origin::from_request_parts(parts, state).await;
        Ok(Person {
            user_id: session.user_id,
            email: session.email,
            membership,
            csrf_token: session.csrf_token,
            session: digest,
            origin,
            portal: None,
        })
    }
}

/// The person of a portal session, on one of its pages; never anywhere else, and never
/// another session instead.
async fn portal_person(
    parts: &mut Parts,
    state: &AppState,
    token: &str,
) -> Result<Person, WebError> {
    let ended = || {
        WebError::forbidden(
            "This session has ended. Go back to where you came from and open this page again.",
        )
    };
    let digest = KeyDigest::of(token);
    let session = state
        .store
        .find_session(&digest, state.config.clock.now())
        .await?
        .ok_or_else(ended)?;
    let (Some(confinement), Some(membership)) = (session.portal, session.membership) else {
        return Err(ended());
    };
    let portal = PortalView {
        pages: crate::portal::PortalPages::from_storage(&confinement.pages),
        return_url: confinement.return_url,
    };
    if !portal.pages.allow(parts.uri.path()) {
        return Err(WebError::forbidden(
            "This page is not part of this session. Use the links at the top of the page.",
        ));
    }
    let Ok(origin) = crate::audit::Origin::from_request_parts(parts, state).await;
    Ok(Person {
        user_id: session.user_id,
        email: session.email,
        membership,
        csrf_token: session.csrf_token,
        session: digest,
        origin,
        portal: Some(portal),
    })
}

/// Whether the request is for a page of a live portal session (which alone may be framed).
pub async fn on_portal_page(state: &AppState, headers: &HeaderMap, path: &str) -> bool {
    let Some(token) = cookie(headers, PORTAL_COOKIE) else {
        return false;
    };
    match state
        .store
        .find_session(&KeyDigest::of(token), state.config.clock.now())
        .await
    {
        Ok(Some(session)) => session.portal.is_some_and(|portal| {
            crate::portal::PortalPages::from_storage(&portal.pages).allow(path)
        }),
        _ => false,
    }
}

/// Whether the request carries a live session (for pages that only redirect).
pub async fn signed_in(state: &AppState, headers: &HeaderMap) -> bool {
    let Some(token) = cookie(headers, SESSION_COOKIE) else {
        return false;
    };
    matches!(
        state
            .store
            .find_session(&KeyDigest::of(token), state.config.clock.now())
            .await,
        Ok(Some(_))
    )
}

/// The CSRF token of a visitor who is not signed in: the value of their CSRF cookie, or a
/// new one to set.
pub struct AnonymousCsrf {
    pub token: String,
    pub set_cookie: Option<HeaderValue>,
}

impl AnonymousCsrf {
    pub fn from_headers(state: &AppState, headers: &HeaderMap) -> Result<Self, WebError> {
        match cookie(headers, CSRF_COOKIE).filter(|value| value.len() == 32) {
            Some(existing) => Ok(Self {
                token: existing.to_owned(),
                set_cookie: None,
            }),
            None => {
                let token = random_token().map_err(WebError::internal)?;
                let set_cookie = Some(set_cookie(state, CSRF_COOKIE, &token, SESSION_SECONDS));
                Ok(Self { token, set_cookie })
            }
        }
    }

    /// Refuses a form whose token does not match the visitor's CSRF cookie.
    pub fn check(headers: &HeaderMap, submitted: Option<&str>) -> Result<(), WebError> {
        match (cookie(headers, CSRF_COOKIE), submitted) {
            (Some(expected), Some(token)) if !token.is_empty() && same_secret(expected, token) => {
                Ok(())
            }
            _ => Err(csrf_refused()),
        }
    }
}

/// A person signed in with their own session (not a portal's), whether or not they belong to
/// any organization.
pub struct Account {
    pub user_id: UserId,
    pub email: Email,
    pub csrf_token: String,
    pub session: KeyDigest,
    /// The session began at the OpenID provider.
    pub single_sign_on: bool,
}

pub async fn account(state: &AppState, headers: &HeaderMap) -> Result<Option<Account>, WebError> {
    let Some(token) = cookie(headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    let digest = KeyDigest::of(token);
    let session = state
        .store
        .find_session(&digest, state.config.clock.now())
        .await?
        .filter(|session| session.portal.is_none());
    Ok(session.map(|session| Account {
        user_id: session.user_id,
        email: session.email,
        csrf_token: session.csrf_token,
        session: digest,
        single_sign_on: session.single_sign_on,
    }))
}

impl Account {
    pub fn check_csrf(&self, submitted: Option<&str>) -> Result<(), WebError> {
        match submitted {
            Some(token) if same_secret(token, &self.csrf_token) => Ok(()),
            _ => Err(csrf_refused()),
        }
    }
}

/// Whether `token` could be an emailed link's token (43 characters of base64url: a reset
/// link's, an invitation's).
pub fn link_token_shape(token: &str) -> bool {
    token.len() == 43
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Where a person goes once signed in: back to the invitation link they opened before, else
/// to their open invitations where those are accepted on sign-in, else Settings > API Keys.
/// With the cookie that forgets the link, when there was one.
async fn after_sign_in(
    state: &AppState,
    headers: &HeaderMap,
    email: &Email,
) -> Result<(String, Option<HeaderValue>), WebError> {
    let now = state.config.clock.now();
    let returning = cookie(headers, INVITATION_COOKIE);
    // Forgotten once used, whatever it held.
    let forget = returning.map(|_| set_cookie(state, INVITATION_COOKIE, "", 0));
    if let Some(token) = returning.filter(|token| link_token_shape(token))
        && state
            .store
            .invitation_by_link(&KeyDigest::of(token), now)
            .await?
            .is_some()
    {
        return Ok((format!("/invitations/{token}"), forget));
    }
    if !crate::email::sends_links(state)
        && !state.store.invitations_for(email, now).await?.is_empty()
    {
        return Ok(("/invitations".to_owned(), forget));
    }
    Ok(("/settings/api-keys".to_owned(), forget))
}

/// A redirect to where a person goes once signed in, with their session cookie.
pub async fn enter(
    state: &AppState,
    headers: &HeaderMap,
    email: &Email,
    session: HeaderValue,
) -> Result<axum::response::Response, WebError> {
    use axum::response::IntoResponse;
    let (to, forget) = after_sign_in(state, headers, email).await?;
    let mut response = axum::response::Redirect::to(&to).into_response();
    response.headers_mut().append(header::SET_COOKIE, session);
    if let Some(forget) = forget {
        response.headers_mut().append(header::SET_COOKIE, forget);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_by_exact_name() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; keyward_session_x=2; keyward_session=abc"),
        );
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&headers, "a"), Some("1"));
        assert_eq!(cookie(&headers, CSRF_COOKIE), None);
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "ab"));
        assert!(!same_secret("", "a"));
    }
}
