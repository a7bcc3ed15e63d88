//! A provider's "no" (or silence), normalized: the same error kinds for every provider.

use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// The normalized error kinds, the same for every provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    Validation,
    Conflict,
    Unauthorized,
    Forbidden,
    NotFound,
    RateLimited,
    Timeout,
    Unavailable,
    InvalidResponse,
    CircuitOpen,
    Internal,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Validation => "validation",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::NotFound => "not_found",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::InvalidResponse => "invalid_response",
            ErrorKind::CircuitOpen => "circuit_open",
            ErrorKind::Internal => "internal",
        }
    }

    /// Whether the same request may succeed later without change.
    pub fn retryable(self) -> bool {
        matches!(
            self,
            ErrorKind::RateLimited
                | ErrorKind::Timeout
                | ErrorKind::Unavailable
                | ErrorKind::CircuitOpen
        )
    }
}

/// A provider's "no" (or silence), normalized.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ProviderError {
    pub kind: ErrorKind,
    /// Human-readable, from the provider's own message where it gave one.
    pub message: String,
    /// Whether the same request may succeed later without change.
    pub retryable: bool,
    /// Seconds the provider asked to wait (its `Retry-After`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_s: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_status: Option<u16>,
    /// The provider's error body, parsed, when it was JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub provider_error: Option<Value>,
}

impl ProviderError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            retryable: kind.retryable(),
            retry_after_s: None,
            provider_status: None,
            provider_error: None,
        }
    }

    /// The default reading of an HTTP error status; adapters refine it (conflicts, messages)
    /// from their own error bodies.
    pub fn from_status(status: StatusCode, body: Option<&Value>) -> Self {
        let kind = match status.as_u16() {
            401 => ErrorKind::Unauthorized,
            403 => ErrorKind::Forbidden,
            404 => ErrorKind::NotFound,
            408 | 504 => ErrorKind::Timeout,
            409 => ErrorKind::Conflict,
            429 => ErrorKind::RateLimited,
            400..=499 => ErrorKind::Validation,
            300..=399 => ErrorKind::InvalidResponse,
            _ => ErrorKind::Unavailable,
        };
        let message = body
            .and_then(message_of)
            .unwrap_or_else(|| format!("answered HTTP {}", status.as_u16()));
        Self {
            provider_status: Some(status.as_u16()),
            provider_error: body.cloned(),
            ..Self::new(kind, message)
        }
    }

    pub fn with_kind(mut self, kind: ErrorKind) -> Self {
        self.retryable = kind.retryable();
        self.kind = kind;
        self
    }

    /// Replaces the message with the provider's own, when it gave a non-blank one.
    pub fn with_message(mut self, message: Option<String>) -> Self {
        if let Some(m) = message.filter(|m| !m.trim().is_empty()) {
            self.message = m;
        }
        self
    }
}

/// The members of a JSON error body read for its message when a provider documents no error
/// shape, in order.
pub const USUAL_MESSAGE_MEMBERS: &[&str] =
    &["message", "error", "title", "detail", "error_description"];

/// The first human-readable message in a JSON error body, from its usual members
/// ([`USUAL_MESSAGE_MEMBERS`]).
pub fn message_of(body: &Value) -> Option<String> {
    message_in(body, USUAL_MESSAGE_MEMBERS)
}

/// The first non-blank string among `members` of a JSON error body, in their order.
pub fn message_in(body: &Value, members: &[&str]) -> Option<String> {
    members
        .iter()
        .find_map(|k| body.get(k).and_then(Value::as_str))
        .filter(|s| !s.trim().is_empty())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_mapping() {
        let k = |s: u16| ProviderError::from_status(StatusCode::from_u16(s).unwrap(), None).kind;
        assert_eq!(k(400), ErrorKind::Validation);
        assert_eq!(k(401), ErrorKind::Unauthorized);
        assert_eq!(k(403), ErrorKind::Forbidden);
        assert_eq!(k(404), ErrorKind::NotFound);
        assert_eq!(k(408), ErrorKind::Timeout);
        assert_eq!(k(409), ErrorKind::Conflict);
        assert_eq!(k(422), ErrorKind::Validation);
        assert_eq!(k(429), ErrorKind::RateLimited);
        assert_eq!(k(500), ErrorKind::Unavailable);
        assert_eq!(k(503), ErrorKind::Unavailable);
        assert_eq!(k(504), ErrorKind::Timeout);
        assert_eq!(k(301), ErrorKind::InvalidResponse);
    }

    #[test]
    fn a_message_is_read_from_the_usual_members() {
        let body = serde_json::json!({"error": "Login ID already in use"});
        let e = ProviderError::from_status(StatusCode::BAD_REQUEST, Some(&body));
        assert_eq!(e.message, "Login ID already in use");
        assert_eq!(e.provider_error, Some(body));
        let e = ProviderError::from_status(StatusCode::BAD_GATEWAY, None);
        assert_eq!(e.message, "answered HTTP 502");
        assert!(e.retryable);
    }
}
