//! One field of a request that is not valid, and why: what services refuse a value with, and
//! what both front ends show (a problem's `errors`, a form's message beside the field).

use serde::Serialize;

/// One field that failed validation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    #[schema(value_type = String, example = "scopes")]
    pub field: &'static str,
    #[schema(example = "unknown scope \"instances:admin\"")]
    pub message: String,
}

impl FieldError {
    pub fn new(field: &'static str, message: impl ToString) -> Self {
        Self {
            field,
            message: message.to_string(),
        }
    }
}
