//! How a dashboard request is answered: a page rendered from its template, or a
//! [`WebError`] shown as a page that says what went wrong (or a redirect).

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};

use crate::branding::Branding;
use crate::services::{Conflict, ServiceError};

/// Renders a template as an HTML response.
pub fn render(status: StatusCode, template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(error) => WebError::internal(error).into_response(),
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    title: &'static str,
    message: &'a str,
    branding: &'a Branding,
}

/// What an error page says, kept on its response so that [`brand_error_pages`] can render it
/// again in the installation's branding (a [`WebError`] is answered without the state).
#[derive(Clone)]
struct ErrorContent {
    title: &'static str,
    message: String,
}

fn error_page(status: StatusCode, content: ErrorContent, branding: &Branding) -> Response {
    let page = ErrorPage {
        title: content.title,
        message: &content.message,
        branding,
    };
    let mut response = render(status, &page);
    response.extensions_mut().insert(content);
    response
}

/// Renders error pages in the installation's branding.
pub async fn brand_error_pages(
    axum::extract::State(state): axum::extract::State<crate::AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let response = next.run(request).await;
    let branding = &state.config.branding;
    let Some(content) = response.extensions().get::<ErrorContent>().cloned() else {
        return response;
    };
    if **branding == Branding::default() {
        return response;
    }
    let (mut parts, _) = response.into_parts();
    let fresh = error_page(parts.status, content, branding);
    let (fresh_parts, body) = fresh.into_parts();
    parts.headers.insert(
        axum::http::header::CONTENT_TYPE,
        fresh_parts
            .headers
            .get(axum::http::header::CONTENT_TYPE)
            .cloned()
            .unwrap_or(axum::http::HeaderValue::from_static(
                "text/html; charset=utf-8",
            )),
    );
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    Response::from_parts(parts, body)
}

/// Why a dashboard request did not get its page.
#[derive(Debug)]
pub enum WebError {
    /// Not signed in, or somewhere else to go: 303 to this path.
    Redirect(String),
    /// A page that explains what went wrong.
    Page { status: StatusCode, message: String },
    /// Too many tries, or too busy for now: the page, with `Retry-After`.
    TryLater {
        status: StatusCode,
        retry_after_seconds: u64,
        message: String,
    },
}

impl WebError {
    pub fn page(status: StatusCode, message: impl ToString) -> Self {
        Self::Page {
            status,
            message: message.to_string(),
        }
    }

    pub fn forbidden(message: impl ToString) -> Self {
        Self::page(StatusCode::FORBIDDEN, message)
    }

    pub fn not_found(what: &str) -> Self {
        Self::page(
            StatusCode::NOT_FOUND,
            format!("No such {what} in this organization."),
        )
    }
}

impl WebError {
    /// A failure of ours: logged with its cause, shown as nothing internal.
    pub fn internal(error: impl std::error::Error) -> Self {
        tracing::error!(%error, cause = ?error.source(), "request failed");
        Self::page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong on our side. Please try again.",
        )
    }
}

/// A clause (`"only owners can add owners"`) as a sentence.
fn sentence(clause: &str) -> String {
    let mut chars = clause.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect::<String>() + ".",
        None => String::new(),
    }
}

impl From<ServiceError> for WebError {
    fn from(error: ServiceError) -> Self {
        match error {
            ServiceError::Invalid(fields) => Self::page(
                StatusCode::UNPROCESSABLE_ENTITY,
                fields
                    .iter()
                    .map(|field| sentence(&format!("{}: {}", field.field, field.message)))
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            ServiceError::NotFound(what) => Self::not_found(what),
            ServiceError::Conflict(Conflict::ProjectHasInstances) => Self::page(
                StatusCode::CONFLICT,
                "The project still has instances: delete them first.",
            ),
            ServiceError::Conflict(conflict) => {
                Self::page(StatusCode::CONFLICT, sentence(&conflict.to_string()))
            }
            ServiceError::CannotGrant { scope } => {
                Self::forbidden(format!("Your role cannot grant {scope}."))
            }
            ServiceError::Forbidden { message, .. } => Self::forbidden(sentence(message)),
            ServiceError::Throttled {
                message,
                retry_after_seconds,
            } => Self::TryLater {
                status: StatusCode::TOO_MANY_REQUESTS,
                retry_after_seconds,
                message: sentence(&format!(
                    "{message}; try again in {}",
                    match retry_after_seconds {
                        s if s < 120 => format!("{s} seconds"),
                        s if s < 7_200 => format!("{} minutes", s.div_ceil(60)),
                        s => format!("{} hours", s.div_ceil(3_600)),
                    }
                )),
            },
            ServiceError::Store(error) => error.into(),
            ServiceError::Internal(error) => Self::internal(&*error),
        }
    }
}

impl From<keyward_store::StoreError> for WebError {
    fn from(error: keyward_store::StoreError) -> Self {
        use keyward_store::StoreError;
        match error {
            StoreError::NotFound(what) => Self::not_found(what),
            StoreError::Suspended => Self::forbidden(
                "This organization is suspended: nothing can be created in it until the \
                 platform resumes it.",
            ),
            StoreError::Unavailable(_) => {
                tracing::warn!(%error, "database unavailable");
                Self::page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The database is unavailable; try again shortly.",
                )
            }
            StoreError::Unwritable(reason) => {
                tracing::error!(%error, "database cannot write");
                Self::page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("The database cannot write ({reason}); try again once it can."),
                )
            }
            other => Self::internal(other),
        }
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        match self {
            Self::Redirect(to) => Redirect::to(&to).into_response(),
            Self::Page { status, message } => {
                let title = status.canonical_reason().unwrap_or("Error");
                error_page(
                    status,
                    ErrorContent { title, message },
                    &Branding::default(),
                )
            }
            Self::TryLater {
                status,
                retry_after_seconds,
                message,
            } => {
                let title = status.canonical_reason().unwrap_or("Error");
                let content = ErrorContent { title, message };
                let mut response = error_page(status, content, &Branding::default());
                response.headers_mut().insert(
                    axum::http::header::RETRY_AFTER,
                    axum::http::HeaderValue::from(retry_after_seconds),
                );
                response
            }
        }
    }
}
