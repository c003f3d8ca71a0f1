//! Extractors whose rejections are [`ApiError`]s, so that a malformed body, query string or
//! path gets the same problem+json answer as every other error.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// The media type of a request's body (`Content-Type` without its parameters), if any.
pub fn media_type(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .map(str::trim)
}

/// JSON request bodies and responses. A body must be `Content-Type: application/json`, at
/// most 64 KiB, and a JSON object: serde would otherwise read a struct from an array by
/// position, which no client means.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let is_json = media_type(request.headers()).is_some_and(|media| {
            media.eq_ignore_ascii_case("application/json") || media.ends_with("+json")
        });
        if !is_json {
            return Err(ApiError::Unreadable {
                status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                detail: "the body must be JSON: send Content-Type: application/json".into(),
            });
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| ApiError::Unreadable {
                status: rejection.status(),
                detail: rejection.body_text(),
            })?;
        let unreadable = |status, detail: String| ApiError::Unreadable { status, detail };
        match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'{') => {}
            Some(_) if serde_json::from_slice::<serde_json::Value>(&bytes).is_ok() => {
                return Err(unreadable(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "the body must be a JSON object".into(),
                ));
            }
            _ => {
                return Err(unreadable(
                    StatusCode::BAD_REQUEST,
                    "the body is not JSON".into(),
                ));
            }
        }
        serde_json::from_slice(&bytes)
            .map(ApiJson)
            .map_err(|error| {
                let status = if error.is_data() {
                    StatusCode::UNPROCESSABLE_ENTITY
                } else {
                    StatusCode::BAD_REQUEST
                };
                unreadable(status, format!("the body is not valid: {error}"))
            })
    }
}

impl<T: Serialize> IntoResponse for ApiJson<T> {
    /// Serializes into one buffer big enough for most answers, so it rarely grows.
    fn into_response(self) -> Response {
        let mut body = Vec::with_capacity(1024);
        match serde_json::to_writer(&mut body, &self.0) {
            Ok(()) => (
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                body,
            )
                .into_response(),
            Err(error) => crate::error::ApiError::internal(error).into_response(),
        }
    }
}

/// Query strings.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

/// Path parameters.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);
