//! `Idempotency-Key` on the requests that create something (the authenticated `POST`s the
//! API declares with a 201 answer), as Stripe and the IETF's
//! `draft-ietf-httpapi-idempotency-key-header` have it: the same key with the same method,
//! path and body within 24 hours gets the first answer again, with `Idempotent-Replayed:
//! true`, instead of creating a second resource; the same key with another request is 422,
//! and while the first still runs, 409.
//!
//! A key belongs to the credential that sent it. Its claim is a row written in one
//! transaction before the handler runs, so of concurrent requests with one key, on any node,
//! exactly one runs. Only a successful answer is kept; after a refusal the key is given back
//! and a retry runs again. An answer that showed a secret (a key, a token, a signing secret)
//! is never kept: a replay answers 409 `secret_already_shown` with where the created resource
//! is, so that a caller that lost the answer can revoke it and create another.

use std::collections::HashSet;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use keyward_store::{IdempotencyClaim, IdempotentAnswer};
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::auth::{Accept, authenticate};
use crate::error::{ApiError, IdempotencyRefusal};

/// The request header.
pub const HEADER: &str = "idempotency-key";
/// Set on a replayed answer.
pub const REPLAYED: &str = "idempotent-replayed";
/// How long a key and its answer are kept.
pub const KEEP_SECONDS: i64 = 24 * 3600;
/// How long a claim holds while its request runs; a claim left longer (its node died) is
/// taken over by the next request with the key.
const LEASE_SECONDS: i64 = 60;

/// Put by a handler on an answer that shows a secret once, naming what it created ("API
/// key"); such an answer is never kept for a replay.
#[derive(Clone, Copy, Debug)]
pub struct ShowsSecret(pub &'static str);

/// What the guard needs: the server, and which requests create.
#[derive(Clone)]
pub struct Guard {
    pub state: AppState,
    /// The paths (as declared, with `{placeholders}`) whose `POST` creates something.
    pub creating_paths: Arc<HashSet<String>>,
    /// Those of them that are an organization's, where an admin key acts for one.
    pub acting_paths: Arc<HashSet<String>>,
    /// The largest body a request may have.
    pub max_body_bytes: usize,
}

/// Around every route of the API: honours `Idempotency-Key` on the requests that create.
pub async fn guard(State(guard): State<Guard>, request: Request, next: Next) -> Response {
    let applies = request.method() == Method::POST
        && request.headers().contains_key(HEADER)
        && request
            .extensions()
            .get::<MatchedPath>()
            .is_some_and(|path| guard.creating_paths.contains(path.as_str()));
    if !applies {
        return next.run(request).await;
    }
    guarded(guard, request, next)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn guarded(guard: Guard, request: Request, next: Next) -> Result<Response, ApiError> {
    let Guard {
        state,
        max_body_bytes,
        acting_paths,
        ..
    } = guard;
    let key = idempotency_key(request.headers())?;
    let (mut parts, body) = request.into_parts();
    let principal = authenticate(&parts, &state, Accept::Any).await?;
    // An admin key's keys are its own per organization it acts for (resolved, so that `org_…`
    // and `ext:…` of one organization are one): the same key sent for two customers is two
    // requests. An organization that cannot be resolved is refused before anything is kept.
    let organizations = parts
        .extensions
        .get::<MatchedPath>()
        .is_some_and(|path| acting_paths.contains(path.as_str()));
    let acting_for = if organizations && principal.kind() == keyward_core::CredentialKind::AdminKey
    {
        match crate::auth::organization_named(&parts)? {
            Some(named) => Some(crate::auth::resolve_organization(&state, named).await?),
            None => None,
        }
    } else {
        None
    };
    let caller = match acting_for {
        Some(organization) => format!("{}@{organization}", principal.credential_id),
        None => principal.credential_id.to_string(),
    };
    let body = axum::body::to_bytes(body, max_body_bytes)
        .await
        .map_err(|_| ApiError::Unreadable {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            detail: format!("the body is over {} KiB", max_body_bytes / 1024),
        })?;
    let fingerprint = fingerprint(&parts.method, &parts.uri, &body);
    let now = state.config.clock.now();
    let claim = state
        .store
        .claim_idempotency_key(
            &caller,
            &key,
            &fingerprint,
            now.plus_seconds(LEASE_SECONDS),
            now.plus_seconds(-KEEP_SECONDS),
        )
        .await?;
    match claim {
        IdempotencyClaim::Claimed => {}
        IdempotencyClaim::InFlight => {
            return Err(ApiError::Idempotency(IdempotencyRefusal::InFlight));
        }
        IdempotencyClaim::Reused => {
            return Err(ApiError::Idempotency(IdempotencyRefusal::Reused));
        }
        IdempotencyClaim::Answered(answer) => return replay(answer),
    }
    // The handler's `Principal` is this one: the key is verified (and its use counted) once.
    parts.extensions.insert(principal);
    let response = next.run(Request::from_parts(parts, Body::from(body))).await;
    if !response.status().is_success() {
        if let Err(error) = state.store.release_idempotency_key(&caller, &key).await {
            // The claim then lapses with its lease.
            tracing::warn!(%error, "could not give back an idempotency key");
        }
        return Ok(response);
    }
    let secret = response
        .extensions()
        .get::<ShowsSecret>()
        .map(|shows| shows.0);
    let (parts, body) = response.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .map_err(ApiError::internal)?;
    let answer = IdempotentAnswer {
        status: parts.status.as_u16(),
        location: parts
            .headers
            .get(header::LOCATION)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned),
        body: match secret {
            Some(_) => None,
            None => Some(String::from_utf8_lossy(&body).into_owned()),
        },
        secret: secret.map(str::to_owned),
    };
    if let Err(error) = state
        .store
        .answer_idempotency_key(&caller, &key, &answer)
        .await
    {
        // What was created stays created; a retry after the lease would create again.
        tracing::warn!(%error, "could not keep an idempotent answer");
    }
    Ok(Response::from_parts(parts, Body::from(body)))
}

/// The key: 1 to 255 printable ASCII characters, sent once, as is or as a structured-field
/// string (`"…"`, as the IETF draft writes it).
fn idempotency_key(headers: &HeaderMap) -> Result<String, ApiError> {
    let refuse = |why| ApiError::Idempotency(IdempotencyRefusal::Malformed(why));
    let mut values = headers.get_all(HEADER).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return Err(refuse("must be sent once"));
    };
    let text = value
        .to_str()
        .map_err(|_| refuse("must be printable ASCII"))?;
    let text = text
        .strip_prefix('"')
        .and_then(|inner| inner.strip_suffix('"'))
        .unwrap_or(text);
    if text.is_empty() || text.len() > 255 {
        return Err(refuse("must be 1 to 255 characters"));
    }
    if !text.bytes().all(|b| (b' '..=b'~').contains(&b)) {
        return Err(refuse("must be printable ASCII"));
    }
    Ok(text.to_owned())
}

/// SHA-256 of what makes two requests the same one: method, path and query, body.
fn fingerprint(method: &Method, uri: &axum::http::Uri, body: &Bytes) -> [u8; 32] {
    let mut hash = Sha256::new();
    for part in [
        method.as_str().as_bytes(),
        uri.path_and_query().map_or("", |p| p.as_str()).as_bytes(),
        body,
    ] {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part);
    }
    hash.finalize().into()
}

/// The first answer again, or, if it showed a secret, where what it created is.
fn replay(answer: IdempotentAnswer) -> Result<Response, ApiError> {
    let location = answer.location.unwrap_or_default();
    if let Some(what) = answer.secret {
        return Err(ApiError::Idempotency(IdempotencyRefusal::SecretShown {
            what,
            location,
        }));
    }
    let status = StatusCode::from_u16(answer.status).map_err(ApiError::internal)?;
    let mut response = (status, answer.body.unwrap_or_default()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(location) = HeaderValue::try_from(location) {
        headers.insert(header::LOCATION, location);
    }
    headers.insert(REPLAYED, HeaderValue::from_static("true"));
    Ok(response)
}
