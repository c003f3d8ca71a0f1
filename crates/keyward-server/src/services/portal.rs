//! Portal links: what a platform's key may open for one of its people, and the one-time code
//! that opens it.
//!
//! The key must hold every scope the role it gives may grant (the person makes keys of their
//! own, and must not get more than the key that let them in), must not be limited to
//! networks (the person could act from anywhere), and the session ends no later than the key
//! stops working. Only the installation's admin keys vouch for people: link an existing
//! account found by its email, add a person of another organization, change a person's
//! email. An organization's own key names new people and its own members only.

use keyward_core::credential::random_token;
use keyward_core::{Email, ExternalId, KeyDigest, Name, Role, Timestamp, UserId};
use keyward_store::{NewPortalLink, PortalConfinement, PortalPerson, StoreError};

use super::caller::Caller;
use super::{Conflict, ServiceError};
use crate::AppState;
use crate::portal::PortalPages;

/// How long a portal link may be redeemed.
pub const LINK_SECONDS: i64 = 60;

/// A link to make, its fields already parsed.
pub struct PortalLinkInput {
    pub external_id: ExternalId,
    pub email: Email,
    pub name: Option<Name>,
    pub role: Role,
    /// Checked against `[portal] return_origins`.
    pub return_url: String,
    pub pages: PortalPages,
    /// The session's length, at most `[portal]`'s.
    pub session_seconds: Option<i64>,
}

/// A link made: the URL to send the person to (once, within a minute).
pub struct PortalLink {
    pub url: String,
    pub expires_at: Timestamp,
    pub session_seconds: i64,
    pub user_id: UserId,
}

pub async fn create(
    state: &AppState,
    caller: &Caller,
    admin_key: bool,
    input: PortalLinkInput,
) -> Result<PortalLink, ServiceError> {
    let settings = &state.config.portal;
    let return_url = settings
        .check_return_url(&input.return_url)
        .map_err(|message| ServiceError::invalid("return_url", message))?;
    let longest = i64::try_from(settings.session_length.as_secs()).unwrap_or(i64::MAX);
    let mut session_seconds = match input.session_seconds {
        Some(seconds) if !(60..=longest).contains(&seconds) => {
            return Err(ServiceError::invalid(
                "expires_in_seconds",
                format!("must be between 60 and {longest} (`[portal] session_minutes`)"),
            ));
        }
        Some(seconds) => seconds,
        None => longest,
    };
    let grants = &caller.grants;
    let cap = state.config.scopes.role_cap(input.role);
    if let Some(scope) = state
        .config
        .scopes
        .names(&cap.difference(&grants.scopes))
        .next()
    {
        return Err(ServiceError::CannotGrant {
            scope: format!(
                "the {} role: it may grant {scope}, which this key does not hold",
                input.role.as_str()
            ),
        });
    }
    if grants.networks.is_some() {
        return Err(ServiceError::Forbidden {
            field: Some("role"),
            message: "a key limited to networks cannot open portal sessions: the person could \
                      act from any address",
        });
    }
    if grants.credits {
        return Err(ServiceError::Forbidden {
            field: Some("role"),
            message: "a key with credits or identity limits cannot open portal sessions: the \
                      person could make keys without its limits",
        });
    }
    let now = state.config.clock.now();
    if let Some(until) = grants.usable_until {
        session_seconds = session_seconds.min(until.unix_seconds() - now.unix_seconds());
        if session_seconds < 1 {
            return Err(ServiceError::Forbidden {
                field: None,
                message: "this key stops working now: it cannot open a portal session",
            });
        }
    }
    // An organization's own key names people in a namespace of its own: it can never name
    // a person of the platform's (whose external id is the provider's `sub`).
    let external_id = if admin_key {
        input.external_id
    } else {
        let scoped = format!("{}:{}", caller.organization_id, input.external_id.as_str());
        keyward_core::ExternalId::parse(&scoped).map_err(|_| {
            ServiceError::invalid(
                "user.external_id",
                "with an organization's key, at most 224 characters",
            )
        })?
    };
    let code = random_token().map_err(ServiceError::internal)?;
    let expires_at = now.plus_seconds(LINK_SECONDS);
    let super::caller::CallerKind::Credential { id: credential } = caller.actor else {
        return Err(ServiceError::Forbidden {
            field: None,
            message: "portal links are made with a key",
        });
    };
    let link = NewPortalLink {
        code_digest: KeyDigest::of(&code),
        credential,
        organization: caller.organization_id,
        person: PortalPerson {
            external_id,
            email: input.email,
            name: input.name,
            vouched: admin_key,
        },
        role: input.role,
        confinement: PortalConfinement {
            pages: input.pages.to_storage(),
            return_url,
        },
        session_seconds,
        created_at: now,
        expires_at,
    };
    let user_id = state
        .store
        .create_portal_link(&caller.audit, link)
        .await
        .map_err(|error| match error {
            StoreError::Conflict("person email") => ServiceError::Conflict(Conflict::EmailInUse),
            StoreError::Conflict("person elsewhere") => {
                ServiceError::Conflict(Conflict::PersonElsewhere)
            }
            StoreError::Conflict("last owner") => ServiceError::Conflict(Conflict::LastOwner),
            StoreError::Conflict(_) => ServiceError::Conflict(Conflict::StaleRole),
            other => other.into(),
        })?;
    Ok(PortalLink {
        url: format!("{}/portal/{code}", state.config.public_url),
        expires_at,
        session_seconds,
        user_id,
    })
}
