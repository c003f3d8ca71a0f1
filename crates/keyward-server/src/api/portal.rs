//! `POST /v1/portal-sessions`: a one-time link that opens the dashboard for one of the
//! platform's people, confined to the organization and some of its pages (see
//! `services::portal` for who may open what).

use axum::extract::State;
use axum::response::IntoResponse;
use keyward_core::{CredentialKind, Email, ExternalId, Name, Scope, Timestamp, UserId};
use serde::{Deserialize, Serialize};
use utoipa_axum::routes;

use super::ApiRoutes;
use crate::AppState;
use crate::audit::Origin;
use crate::auth::Principal;
use crate::error::{ApiError, validate};
use crate::extract::ApiJson;
use crate::field_error::FieldError;
use crate::portal::{PortalPage, PortalPages};
use crate::services::caller::Caller;
use crate::services::portal::{self, PortalLinkInput};

pub fn router() -> ApiRoutes {
    ApiRoutes::new().routes(routes!(create_portal_session))
}

/// The person the link is for, as the platform knows them.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct PortalUser {
    /// The platform's id for the person: the same person on every link (and in single
    /// sign-on, whose `sub` it is).
    #[schema(example = "user_8412", min_length = 1, max_length = 255)]
    external_id: String,
    #[schema(example = "ada@example.com")]
    email: String,
    #[serde(default)]
    #[schema(example = "Ada Lovelace", min_length = 1, max_length = 100)]
    name: Option<String>,
}

/// `{user, role, return_url, pages?, expires_in_seconds?}`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CreatePortalSession {
    user: PortalUser,
    /// The person's role in the organization from now on.
    #[schema(value_type = crate::services::schema::RoleName)]
    role: String,
    /// Where "Back" goes: an https URL (http on loopback) whose origin is in
    /// `[portal] return_origins`.
    #[schema(example = "https://console.example.com/settings")]
    return_url: String,
    /// The pages the session shows; `["api_keys", "tokens"]` if left out.
    #[serde(default)]
    #[schema(value_type = Option<Vec<String>>, example = json!(["api_keys", "tokens"]))]
    pages: Option<Vec<String>>,
    /// How long the session lasts once opened: 60 seconds up to `[portal] session_minutes`
    /// (the default), and never past the key's own expiry.
    #[serde(default)]
    #[schema(example = 1800)]
    expires_in_seconds: Option<i64>,
}

/// The link to send the person to: once, within `expires_at`.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct PortalSessionLink {
    /// Opens the session. It carries a one-time code: send the person's browser there (or
    /// make it an iframe's `src`), and do not log it.
    #[schema(example = "https://keys.example.com/portal/6Pq2…")]
    url: String,
    /// The link works until then (60 seconds).
    #[schema(value_type = String, format = DateTime)]
    expires_at: Timestamp,
    /// How long the session lasts once opened.
    session_expires_in_seconds: i64,
    /// The person, found or created by external id.
    #[schema(value_type = String, example = "usr_01m8dz95x5e4w8stdkzcqeqr73")]
    user_id: UserId,
}

fn parse_pages(pages: Option<Vec<String>>) -> Result<PortalPages, FieldError> {
    let Some(names) = pages else {
        return Ok(PortalPages(PortalPage::DEFAULT.to_vec()));
    };
    let mut parsed = Vec::new();
    for name in &names {
        let page = PortalPage::parse(name).ok_or_else(|| {
            FieldError::new(
                "pages",
                format!(
                    "`{name}` is not a page; the pages are api_keys, tokens, audit_log, \
                     webhooks, members and usage"
                ),
            )
        })?;
        if !parsed.contains(&page) {
            parsed.push(page);
        }
    }
    if parsed.is_empty() {
        return Err(FieldError::new("pages", "name at least one page"));
    }
    Ok(PortalPages(parsed))
}

/// Open a portal session
///
/// Makes a one-time link (valid 60 seconds, redeemed once) that signs the person in to this
/// organization's dashboard, confined to `pages`, with "Back" to `return_url`. The person is
/// found by `external_id` or created without a password, and gets `role` in the
/// organization. The key must hold every scope `role` may grant and not be limited to
/// networks. An admin key acting for the organization may also link an existing account
/// that has the email but no external id; an organization's key gets 409 for it.
#[utoipa::path(
    post, path = "/v1/portal-sessions", tag = "Portal",
    request_body = CreatePortalSession,
    responses((status = 201, description = "The link", body = PortalSessionLink)),
    extensions(("x-keyward-grants" = json!("The key must also hold every scope the role may grant."))),
    security(("bearer" = ["portal:write"]))
)]
pub(super) async fn create_portal_session(
    State(state): State<AppState>,
    principal: Principal,
    origin: Origin,
    body: Result<ApiJson<CreatePortalSession>, ApiError>,
) -> Result<impl IntoResponse, ApiError> {
    principal.require(Scope::PORTAL_WRITE)?;
    let ApiJson(body) = body?;
    let external_id = ExternalId::parse(&body.user.external_id)
        .map_err(|e| FieldError::new("user.external_id", e));
    let email = Email::parse(&body.user.email).map_err(|e| FieldError::new("user.email", e));
    let name = body
        .user
        .name
        .as_deref()
        .map(Name::parse)
        .transpose()
        .map_err(|e| FieldError::new("user.name", e));
    let role = super::members::parse_role(&body.role);
    let pages = parse_pages(body.pages);
    validate!(external_id, email, name, role, pages);
    let caller = Caller::credential(&principal, &origin);
    let input = PortalLinkInput {
        external_id,
        email,
        name,
        role,
        return_url: body.return_url,
        pages,
        session_seconds: body.expires_in_seconds,
    };
    let admin_key = principal.kind() == CredentialKind::AdminKey;
    let link = portal::create(&state, &caller, admin_key, input).await?;
    // The URL carries a one-time code: an idempotent retry never shows it again (and it is
    // never stored with the answer).
    let location = format!("/v1/members/{}", link.user_id);
    Ok(super::created_with_secret(
        "portal link",
        location,
        PortalSessionLink {
            url: link.url,
            expires_at: link.expires_at,
            session_expires_in_seconds: link.session_seconds,
            user_id: link.user_id,
        },
    ))
}
