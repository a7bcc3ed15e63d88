//! One field at fault in a request body, named by a JSON pointer (RFC 6901).

use serde::Serialize;
use utoipa::ToSchema;

/// One field at fault: a JSON pointer (RFC 6901) into the request body and what is wrong there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// JSON pointer to the field at fault, e.g. `/targets/chatdash/member/login_id`.
    #[schema(example = "/client/name")]
    pub pointer: String,
    /// What is wrong with it.
    #[schema(example = "must not be empty")]
    pub detail: String,
}

impl FieldError {
    pub fn new(pointer: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            pointer: pointer.into(),
            detail: detail.into(),
        }
    }
}

/// Appends one reference token to a pointer, escaping `~` and `/`.
pub fn push(pointer: &str, token: &str) -> String {
    let escaped = token.replace('~', "~0").replace('/', "~1");
    format!("{pointer}/{escaped}")
}
