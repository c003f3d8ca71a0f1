//! Who makes a change, and from where: the [`Origin`] of a request, which every change
//! records in the audit log with its actor (a credential, a person, or Keyward itself).

use std::convert::Infallible;

use axum::extract::FromRequestParts;
use axum::http::header::USER_AGENT;
use axum::http::request::Parts;
use keyward_core::credential::hint_of;
use keyward_core::{Email, RequestId, UserId};
use keyward_store::{Actor, AuditContext};

use crate::auth::{Principal, bearer_token};

/// Where a request comes from: its client address, user agent and id, and the hint of the
/// key it presents (never the key).
#[derive(Clone, Debug, Default)]
pub struct Origin {
    client_ip: Option<std::net::IpAddr>,
    user_agent: Option<String>,
    request_id: Option<String>,
    key_hint: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for Origin {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(Self {
            client_ip: crate::client_address::of(parts),
            user_agent: parts
                .headers
                .get(USER_AGENT)
                .and_then(|value| value.to_str().ok())
                // The store keeps at most 256 characters of it.
                .map(str::to_owned),
            request_id: parts
                .extensions
                .get::<RequestId>()
                .map(RequestId::to_string),
            key_hint: bearer_token(&parts.headers).ok().map(hint_of),
        })
    }
}

impl Origin {
    fn context(&self, actor: Actor) -> AuditContext {
        AuditContext {
            actor,
            client_ip: self.client_ip.map(|address| address.to_string()),
            user_agent: self.user_agent.clone(),
            request_id: self.request_id.clone(),
        }
    }

    /// A change made with the request's credential.
    pub fn by(&self, principal: &Principal) -> AuditContext {
        self.context(Actor::Credential {
            id: principal.credential_id,
            hint: self.key_hint.clone().unwrap_or_default(),
        })
    }

    /// The client's address, as resolved for the request.
    pub fn client_address(&self) -> Option<std::net::IpAddr> {
        self.client_ip
    }

    /// A change made by a person in the dashboard.
    pub fn by_person(&self, user: UserId, email: &Email) -> AuditContext {
        self.context(Actor::User {
            id: user,
            email: email.as_str().to_owned(),
        })
    }

    /// Something no known actor did (a log-in for an unknown email).
    pub fn by_nobody(&self) -> AuditContext {
        self.context(Actor::System)
    }
}
