//! The dashboard: server-rendered pages for people (sign-up and log-in, Settings > API Keys,
//! Settings > Project > Tokens, projects, instances, members, webhooks, the audit log, the
//! organization's policy), over the same services as the API. Every page works without
//! JavaScript; the one script only adds copy-to-clipboard and local times. No asset comes
//! from elsewhere.

mod accounts;
mod audit;
mod credentials;
mod form;
mod invitations;
mod members;
mod oidc;
mod organization;
mod page;
mod password;
mod portal;
mod projects;
mod response;
mod session;
mod usage;
mod webhooks;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::AppState;

pub fn router(state: &AppState) -> Router<AppState> {
    let pages = Router::new()
        .merge(credentials::router())
        .route("/", get(accounts::home))
        .route("/signup", get(accounts::signup_page).post(accounts::signup))
        .route("/login", get(accounts::login_page).post(accounts::login))
        .route("/portal/{code}", get(portal::redeem))
        .route("/login/oidc", get(oidc::begin))
        .route(
            "/password/forgot",
            get(password::forgot_page).post(password::forgot),
        )
        .route(
            "/password/reset/{token}",
            get(password::reset_page).post(password::reset),
        )
        .route("/login/oidc/callback", get(oidc::callback))
        .route("/invitations", get(invitations::list))
        .route(
            "/invitations/{token}",
            get(invitations::show).post(invitations::answer),
        )
        .route(
            "/invitations/{invitation_id}/{action}",
            post(invitations::answer_by_id),
        )
        .route("/logout", post(accounts::logout))
        .route(
            "/settings/organization",
            post(accounts::switch_organization),
        )
        .route("/settings/tokens", get(projects::pick_project_for_tokens))
        .route(
            "/settings/webhooks",
            get(webhooks::list).post(webhooks::create),
        )
        .route("/settings/webhooks/{webhook_id}", get(webhooks::show))
        .route(
            "/settings/webhooks/{webhook_id}/delete",
            axum::routing::post(webhooks::delete),
        )
        .route(
            "/settings/webhooks/{webhook_id}/deliveries/{message_id}",
            get(webhooks::show_delivery),
        )
        .route(
            "/settings/webhooks/{webhook_id}/deliveries/{message_id}/redeliver",
            axum::routing::post(webhooks::redeliver),
        )
        .route("/settings/audit-log", get(audit::audit_log))
        .route("/settings/usage", get(usage::organization))
        .route(
            "/settings/organization/policy",
            get(organization::show).post(organization::update),
        )
        .route(
            "/settings/projects",
            get(projects::list_projects).post(projects::create_project),
        )
        .route(
            "/settings/projects/{project_id}/edit",
            get(projects::edit_project).post(projects::update_project),
        )
        .route(
            "/settings/projects/{project_id}/delete",
            get(projects::confirm_delete_project).post(projects::delete_project),
        )
        .route(
            "/settings/projects/{project_id}/instances",
            get(projects::list_instances).post(projects::create_instance),
        )
        .route(
            "/settings/projects/{project_id}/instances/{instance_id}/delete",
            get(projects::confirm_delete_instance).post(projects::delete_instance),
        )
        .route(
            "/settings/members",
            get(members::list_members).post(members::add_member),
        )
        .route(
            "/settings/members/{user_id}/role",
            post(members::change_role),
        )
        .route(
            "/settings/members/invitations/{invitation_id}/{action}",
            post(members::invitation_action),
        )
        .route(
            "/settings/members/{user_id}/remove",
            get(members::confirm_remove).post(members::remove),
        )
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            page_headers,
        ));
    Router::new()
        .merge(pages)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            suspended_is_read_only,
        ))
        .route("/assets/app.css", get(stylesheet))
        .route("/assets/app.js", get(script))
        .route("/assets/brand.css", get(brand_stylesheet))
        .route("/assets/logo", get(logo))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            response::brand_error_pages,
        ))
}

/// A suspended organization is read-only in the dashboard: its people may look, revoke,
/// delete and remove (the cleaning up the platform may want), not create or change, until the
/// platform resumes it.
async fn suspended_is_read_only(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let path = request.uri().path();
    let writes = request.method() == axum::http::Method::POST
        && path.starts_with("/settings/")
        && path != "/settings/organization"
        && !["/revoke", "/delete", "/remove", "/cancel"]
            .iter()
            .any(|end| path.ends_with(end));
    if !writes {
        return next.run(request).await;
    }
    let (mut parts, body) = request.into_parts();
    if let Ok(person) =
        <session::Person as axum::extract::FromRequestParts<AppState>>::from_request_parts(
            &mut parts, &state,
        )
        .await
    {
        let organization = match state
            .store
            .get_organization(person.membership.organization_id)
            .await
        {
            Ok(organization) => organization,
            // Unknown whether it is suspended: refuse rather than let a write through.
            Err(error) => return response::WebError::from(error).into_response(),
        };
        if organization.is_some_and(|organization| organization.suspended_at.is_some()) {
            return response::WebError::forbidden(
                "This organization is suspended: nothing can be created or changed in it until \
                 the platform resumes it. You can still look, and revoke.",
            )
            .into_response();
        }
    }
    next.run(axum::extract::Request::from_parts(parts, body))
        .await
}

/// Pages are per person and may show a secret once: never cached, never framed, no script
/// or style from anywhere but here. Portal pages (a portal link, or a page of a live portal
/// session) alone may be framed, and only by `[portal] frame_ancestors`.
async fn page_headers(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let path = request.uri().path().to_owned();
    let ancestors = &state.config.portal.frame_ancestors;
    // Only when framing is allowed at all is a portal session looked up.
    let portal = !ancestors.is_empty()
        && (path.starts_with("/portal/")
            || session::on_portal_page(&state, request.headers(), &path).await);
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let framed = portal;
    // Log-out of a single sign-on session is a form whose answer goes on to the provider.
    let provider = state
        .config
        .oidc
        .as_ref()
        .and_then(|oidc| url::Url::parse(&oidc.settings.issuer).ok())
        .map(|issuer| format!(" {}", issuer.origin().ascii_serialization()))
        .unwrap_or_default();
    let policy = format!(
        "default-src 'self'; frame-ancestors {}; form-action 'self'{provider}; base-uri 'none'",
        if framed {
            state.config.portal.frame_ancestors_policy()
        } else {
            "'none'".to_owned()
        }
    );
    if let Ok(policy) = HeaderValue::try_from(policy) {
        headers.insert(header::CONTENT_SECURITY_POLICY, policy);
    }
    if !framed {
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    // A page may be stricter (one with a secret in its address says `no-referrer`).
    headers
        .entry(header::REFERRER_POLICY)
        .or_insert(HeaderValue::from_static("same-origin"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

async fn stylesheet() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../../assets/app.css"),
    )
}

/// The installation's accent colour (`[branding] accent_color`) over the stylesheet's own.
async fn brand_stylesheet(axum::extract::State(state): axum::extract::State<AppState>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        state.config.branding.stylesheet(),
    )
        .into_response()
}

/// The installation's logo (`[branding] logo_file`). An SVG opened on its own runs nothing:
/// it is sandboxed and may load nothing.
async fn logo(axum::extract::State(state): axum::extract::State<AppState>) -> Response {
    let Some(logo) = &state.config.branding.logo else {
        return response::WebError::page(axum::http::StatusCode::NOT_FOUND, "No logo is set.")
            .into_response();
    };
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(logo.content_type),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=300"),
            ),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; sandbox"),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        logo.bytes.clone(),
    )
        .into_response()
}

async fn script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../../assets/app.js"),
    )
}
