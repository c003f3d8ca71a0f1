//! Cursor pagination: `limit` (1–100, default 50) and `cursor` in, `next_cursor` out. A cursor
//! is the id of the last item of the previous page, so pages stay stable while items are
//! added.

use keyward_store::{MAX_PAGE_SIZE, Page, Paged};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::ApiError;
use crate::field_error::FieldError;

pub const DEFAULT_PAGE_SIZE: u32 = 50;

/// A page request from `limit` and `cursor`; `parse_cursor` turns a cursor into the id it
/// names, and must refuse ids of another type.
pub fn page_from(
    limit: Option<u32>,
    cursor: Option<&str>,
    parse_cursor: impl Fn(&str) -> Option<Uuid>,
) -> Result<Page, ApiError> {
    let limit = limit.unwrap_or(DEFAULT_PAGE_SIZE);
    let mut errors = Vec::new();
    if !(1..=MAX_PAGE_SIZE).contains(&limit) {
        errors.push(FieldError::new("limit", "must be between 1 and 100"));
    }
    let before = match cursor {
        None => None,
        Some(text) => {
            let parsed = parse_cursor(text);
            if parsed.is_none() {
                errors.push(FieldError::new(
                    "cursor",
                    "is not a cursor from a previous page's next_cursor",
                ));
            }
            parsed
        }
    };
    if errors.is_empty() {
        Ok(Page { limit, before })
    } else {
        Err(ApiError::Validation(errors))
    }
}

/// One page of a list: `{data, next_cursor}`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct List<T> {
    pub data: Vec<T>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

impl<T> List<T> {
    /// The same page, each item seen another way.
    pub fn map<U>(self, view: impl FnMut(T) -> U) -> List<U> {
        List {
            data: self.data.into_iter().map(view).collect(),
            next_cursor: self.next_cursor,
        }
    }

    pub fn from_paged<R>(
        paged: Paged<R>,
        cursor_of: impl Fn(&R) -> String,
        view: impl FnMut(R) -> T,
    ) -> Self {
        let next_cursor = if paged.has_more {
            paged.items.last().map(cursor_of)
        } else {
            None
        };
        Self {
            data: paged.items.into_iter().map(view).collect(),
            next_cursor,
        }
    }
}

/// `limit` and `cursor` of every list.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Items per page, 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}
