//! HTML form bodies (`application/x-www-form-urlencoded`), read as name/value pairs so that
//! repeated names (one per checked scope) keep every value.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};

use super::response::WebError;

pub struct FormData(Vec<(String, String)>);

impl FormData {
    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The first value of `name`, or an empty string.
    pub fn text(&self, name: &str) -> &str {
        self.get(name).unwrap_or_default()
    }

    /// The value of a multi-line field (a textarea): browsers send every line break as CRLF
    /// (the HTML form encoding), which is turned back into `\n` here. A lone `\r` is left
    /// for validation to refuse.
    pub fn lines(&self, name: &str) -> String {
        self.text(name).replace("\r\n", "\n")
    }

    /// Every value of `name`, in order.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
            .collect()
    }

    /// The submitted CSRF token.
    pub fn csrf_token(&self) -> Option<&str> {
        self.get("csrf_token")
    }
}

impl<S: Send + Sync> FromRequest<S> for FormData {
    type Rejection = WebError;

    async fn from_request(request: Request, state: &S) -> Result<Self, WebError> {
        let is_form = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("application/x-www-form-urlencoded"));
        if !is_form {
            return Err(WebError::page(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "This page accepts only form submissions.",
            ));
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                WebError::page(rejection.status(), "The form could not be read.")
            })?;
        Ok(Self(form_urlencoded::parse(&bytes).into_owned().collect()))
    }
}
