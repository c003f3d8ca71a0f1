//! The one error type of the HTTP layer and its problem+json form (RFC 9457).
//!
//! Every failure a client can see goes through [`ApiError`], so every one has the same shape:
//! `{type, title, status, detail, code}` plus `errors` (422) or `scope` (403). Authentication
//! failures also carry the RFC 6750 `WWW-Authenticate` header. A 500 logs its cause and shows
//! the client nothing internal.

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use keyward_core::{CredentialId, OrganizationId};
use keyward_store::StoreError;
use serde::Serialize;

use crate::field_error::FieldError;

/// The realm of every `WWW-Authenticate` challenge.
pub const REALM: &str = "keyward";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No credentials at all (or another scheme than Bearer): RFC 6750 §3.1 says no error code.
    #[error("this endpoint needs an API key: send Authorization: Bearer <key>")]
    MissingCredentials,
    /// The Authorization header is malformed (RFC 6750 `invalid_request`).
    #[error("{0}")]
    InvalidRequest(&'static str),
    /// The credential is malformed, unknown, revoked or expired (RFC 6750 `invalid_token`).
    #[error("{0}")]
    InvalidToken(String),
    /// The credential lacks a scope (RFC 6750 `insufficient_scope`).
    #[error("{detail}")]
    InsufficientScope {
        scope: String,
        detail: String,
        /// The organization and credential refused, for the audit log's failure counts.
        who: Option<(OrganizationId, CredentialId)>,
    },
    /// A request that must be signed (GitHub's secret-scanning reports) is not, or not by a
    /// key Keyward knows.
    #[error("{0}")]
    InvalidSignature(&'static str),
    /// The credential is limited to networks the client's address is not in.
    #[error("{}", ip_refusal(*.0))]
    IpNotAllowed(Option<std::net::IpAddr>),
    /// The caller may not do this, whatever its scopes (a role rule, say).
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(String),
    #[error("the request is not valid: {}", summary(.0))]
    Validation(Vec<FieldError>),
    /// The request could not be read (malformed JSON, query string or path).
    #[error("{detail}")]
    Unreadable { status: StatusCode, detail: String },
    #[error("no such endpoint")]
    NoSuchEndpoint,
    #[error("this endpoint does not accept this method")]
    MethodNotAllowed,
    /// The credential's rate limit is spent for now.
    #[error("rate limit exceeded: try again in {} s", .0.retry_after_seconds)]
    RateLimited(crate::rate_limit::RateStatus),
    /// The credential's credits are spent (nothing of this request was spent); they refill
    /// in `retry_after_seconds`, if they ever do.
    #[error("{}", credits_refusal(*.0))]
    CreditsExhausted(Option<u64>),
    /// Too many of something for now (invitation emails), whatever the key's own limit.
    #[error("{message}; try again in {retry_after_seconds} s")]
    Throttled {
        message: &'static str,
        retry_after_seconds: u64,
    },
    /// The request (its body, or its handling) took longer than the request timeout.
    #[error("the request took longer than {0} s; the connection is closed")]
    RequestTimeout(u64),
    #[error("the database is unavailable; try again shortly")]
    Unavailable,
    /// Gateway mode: the upstream could not be reached, or broke off its answer.
    #[error("the upstream service could not be reached")]
    BadGateway,
    /// Gateway mode: the upstream sent no answer within this many seconds.
    #[error("the upstream service did not answer within {0} s")]
    GatewayTimeout(u64),
    /// The database answers but cannot write; the reason is safe to show.
    #[error("the database cannot write ({0}); try again once it can")]
    Unwritable(&'static str),
    /// An admin key called an organization's endpoint without saying for which organization.
    #[error(
        "an admin key acts for one organization here: send Keyward-Organization: org_… or \
         ext:<the organization's external id>"
    )]
    OrganizationRequired,
    /// `Keyward-Organization` names no live organization.
    #[error("no organization {0} (Keyward-Organization)")]
    OrganizationNotFound(String),
    /// The credential's organization (or the one acted for) is suspended.
    #[error("{0}")]
    OrganizationSuspended(&'static str),
    /// An `Idempotency-Key` that cannot be honoured.
    #[error("{0}")]
    Idempotency(IdempotencyRefusal),
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Why a request with an `Idempotency-Key` was not run.
#[derive(Debug, thiserror::Error)]
pub enum IdempotencyRefusal {
    #[error("Idempotency-Key {0}")]
    Malformed(&'static str),
    #[error(
        "this Idempotency-Key was used for another request (another method, path or body) \
         in the last 24 hours: use a new key for a new request"
    )]
    Reused,
    #[error("a request with this Idempotency-Key is still running: try again shortly")]
    InFlight,
    #[error(
        "this request already created the {what} at {location}; its secret was shown once, \
         in that answer, and is not kept: if the answer was lost, revoke it and create another"
    )]
    SecretShown { what: String, location: String },
}

fn ip_refusal(address: Option<std::net::IpAddr>) -> String {
    match address {
        Some(address) => format!("this key may not be used from {address}"),
        None => "this key may only be used from its allowed networks".into(),
    }
}

fn credits_refusal(retry_after: Option<u64>) -> String {
    match retry_after {
        Some(seconds) => format!(
            "this key's credits (or its identity's) are spent; they are refilled in {seconds} s \
             (nothing of this request was spent)"
        ),
        None => "this key's credits (or its identity's) are spent (nothing of this request was \
                 spent)"
            .into(),
    }
}

fn summary(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect::<Vec<_>>()
        .join("; ")
}

/// On a 403 `insufficient_scope` answer: whose credential lacked the scope, for the failure
/// counts of the audit log (see `every_request`).
#[derive(Clone, Copy, Debug)]
pub struct ScopeRefusal {
    pub organization: OrganizationId,
    pub credential: CredentialId,
}

impl ApiError {
    /// The credential `who` (its organization and id) lacks the scope called `scope`.
    pub fn insufficient_scope(scope: &str, who: Option<(OrganizationId, CredentialId)>) -> Self {
        Self::InsufficientScope {
            scope: scope.to_owned(),
            detail: format!("this credential lacks the {scope} scope"),
            who,
        }
    }

    pub fn invalid(field: &'static str, message: impl ToString) -> Self {
        Self::Validation(vec![FieldError::new(field, message)])
    }

    pub fn internal(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Internal(Box::new(error))
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::MissingCredentials | Self::InvalidToken(_) | Self::InvalidSignature(_) => {
                StatusCode::UNAUTHORIZED
            }
            Self::InvalidRequest(_) | Self::OrganizationRequired => StatusCode::BAD_REQUEST,
            Self::InsufficientScope { .. }
            | Self::Forbidden(_)
            | Self::IpNotAllowed(_)
            | Self::OrganizationSuspended(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) | Self::NoSuchEndpoint | Self::OrganizationNotFound(_) => {
                StatusCode::NOT_FOUND
            }
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unreadable { status, .. } => *status,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::RateLimited(_) | Self::Throttled { .. } | Self::CreditsExhausted(_) => {
                StatusCode::TOO_MANY_REQUESTS
            }
            Self::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::BadGateway => StatusCode::BAD_GATEWAY,
            Self::GatewayTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            Self::Unavailable | Self::Unwritable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Idempotency(refusal) => match refusal {
                IdempotencyRefusal::Malformed(_) => StatusCode::BAD_REQUEST,
                IdempotencyRefusal::Reused => StatusCode::UNPROCESSABLE_ENTITY,
                IdempotencyRefusal::InFlight | IdempotencyRefusal::SecretShown { .. } => {
                    StatusCode::CONFLICT
                }
            },
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A stable, machine-readable name for the problem.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingCredentials => "missing_credentials",
            Self::InvalidRequest(_) => "invalid_request",
            Self::InvalidToken(_) => "invalid_token",
            Self::InvalidSignature(_) => "invalid_signature",
            Self::InsufficientScope { .. } => "insufficient_scope",
            Self::Forbidden(_) => "forbidden",
            Self::IpNotAllowed(_) => "ip_not_allowed",
            Self::NotFound(_) => "not_found",
            Self::OrganizationRequired => "organization_required",
            Self::OrganizationNotFound(_) => "organization_not_found",
            Self::OrganizationSuspended(_) => "organization_suspended",
            Self::Conflict(_) => "conflict",
            Self::Validation(_) => "validation_failed",
            Self::Unreadable { status, .. } => match *status {
                StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
                StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
                StatusCode::UNPROCESSABLE_ENTITY => "validation_failed",
                _ => "malformed_request",
            },
            Self::NoSuchEndpoint => "no_such_endpoint",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::RateLimited(_) => "rate_limited",
            Self::CreditsExhausted(_) => "credits_exhausted",
            Self::Throttled { .. } => "throttled",
            Self::RequestTimeout(_) => "request_timeout",
            Self::BadGateway => "bad_gateway",
            Self::GatewayTimeout(_) => "gateway_timeout",
            Self::Unavailable | Self::Unwritable(_) => "unavailable",
            Self::Idempotency(refusal) => match refusal {
                IdempotencyRefusal::Malformed(_) => "invalid_idempotency_key",
                IdempotencyRefusal::Reused => "idempotency_key_reused",
                IdempotencyRefusal::InFlight => "idempotency_in_flight",
                IdempotencyRefusal::SecretShown { .. } => "secret_already_shown",
            },
            Self::Internal(_) => "internal_error",
        }
    }

    fn challenge(&self) -> Option<String> {
        match self {
            Self::MissingCredentials => Some(format!("Bearer realm=\"{REALM}\"")),
            Self::InvalidRequest(detail) => Some(format!(
                "Bearer realm=\"{REALM}\", error=\"invalid_request\", error_description=\"{detail}\""
            )),
            Self::InvalidToken(detail) => Some(format!(
                "Bearer realm=\"{REALM}\", error=\"invalid_token\", error_description=\"{detail}\""
            )),
            Self::InsufficientScope { scope, .. } => Some(format!(
                "Bearer realm=\"{REALM}\", error=\"insufficient_scope\", scope=\"{scope}\""
            )),
            _ => None,
        }
    }
}

/// Why nothing is created in a suspended organization.
pub const SUSPENDED_NO_CREATION: &str = "the organization is suspended: its credentials, projects and webhooks can be read and \
     revoked, but nothing is created in it until it is resumed";

/// `Retry-After` of a 503 while the database is unreachable, in seconds.
pub const RETRY_UNAVAILABLE_SECONDS: u64 = 5;

/// An RFC 9457 problem: every error the API answers.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Problem<'a> {
    #[serde(rename = "type")]
    #[schema(value_type = String, example = "about:blank")]
    kind: &'static str,
    #[schema(value_type = String, example = "Forbidden")]
    title: &'static str,
    #[schema(example = 403)]
    status: u16,
    #[schema(example = "this credential lacks the instances:write scope")]
    detail: String,
    /// A stable, machine-readable name for the problem.
    #[schema(value_type = String, example = "insufficient_scope")]
    code: &'static str,
    /// With 422: every invalid field.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<FieldError>>)]
    errors: Option<&'a [FieldError]>,
    /// With 403 `insufficient_scope`: the scope that is missing.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "instances:write")]
    scope: Option<&'a str>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let Self::Internal(source) = &self {
            tracing::error!(error = %source, cause = ?source.source(), "request failed");
        }
        let problem = Problem {
            kind: "about:blank",
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail: self.to_string(),
            code: self.code(),
            errors: match &self {
                Self::Validation(errors) => Some(errors),
                _ => None,
            },
            scope: match &self {
                Self::InsufficientScope { scope, .. } => Some(scope),
                _ => None,
            },
        };
        let mut response = (status, Json(problem)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(challenge) = self.challenge().and_then(|c| HeaderValue::try_from(c).ok()) {
            headers.insert(header::WWW_AUTHENTICATE, challenge);
        }
        if let Self::RateLimited(status) = &self {
            crate::rate_limit::add_headers(headers, status);
        }
        if let Self::Throttled {
            retry_after_seconds,
            ..
        } = &self
        {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_seconds));
        }
        if let Self::CreditsExhausted(Some(seconds)) = &self {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(*seconds));
        }
        if let Self::Idempotency(IdempotencyRefusal::SecretShown { location, .. }) = &self
            && let Ok(location) = HeaderValue::try_from(location.as_str())
        {
            headers.insert(header::LOCATION, location);
        }
        if let Self::Unavailable = &self {
            // A database away is usually back within seconds (a restart, a failover).
            headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from(RETRY_UNAVAILABLE_SECONDS),
            );
        }
        if let Self::InsufficientScope {
            who: Some((organization, credential)),
            ..
        } = &self
        {
            response.extensions_mut().insert(ScopeRefusal {
                organization: *organization,
                credential: *credential,
            });
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict(what) => {
                Self::Conflict(format!("a {what} with this name already exists"))
            }
            StoreError::NotFound(what) => Self::NotFound(what),
            StoreError::Invalid { field, message } => {
                Self::Validation(vec![crate::field_error::FieldError::new(field, message)])
            }
            StoreError::Suspended => Self::OrganizationSuspended(SUSPENDED_NO_CREATION),
            StoreError::Unavailable(_) => {
                tracing::warn!(error = %error, "database unavailable");
                Self::Unavailable
            }
            StoreError::Unwritable(reason) => {
                tracing::error!(error = %error, "database cannot write");
                Self::Unwritable(reason)
            }
            other => Self::internal(other),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::Unreadable {
            status: StatusCode::BAD_REQUEST,
            detail: rejection.body_text(),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self::Unreadable {
            status: StatusCode::BAD_REQUEST,
            detail: rejection.body_text(),
        }
    }
}

/// Checks several parsed fields at once, so that a client learns of every invalid field in
/// one 422. Each argument is a `Result<T, FieldError>` variable; on success each is rebound to
/// its value.
macro_rules! validate {
    ($($field:ident),+ $(,)?) => {
        let errors: Vec<crate::field_error::FieldError> = [$($field.as_ref().err()),+]
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        if !errors.is_empty() {
            return Err(crate::error::ApiError::Validation(errors));
        }
        let ($(Ok($field)),+) = ($($field),+) else {
            return Err(crate::error::ApiError::Validation(Vec::new()));
        };
    };
}

pub(crate) use validate;
