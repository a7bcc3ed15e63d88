//! The HTTP error boundary: every request stopped before fan-out gets one RFC 9457 problem
//! (`application/problem+json`) built here, with the request id for support.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

use crate::field_error::FieldError;
use crate::request_id::RequestId;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// Why a request was refused before anything was sent to a provider.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("the request body is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{detail}")]
    Unauthorized {
        detail: String,
        /// Value of the `WWW-Authenticate` header.
        challenge: String,
    },
    #[error("{detail}")]
    Forbidden { detail: String, challenge: String },
    /// The request's credentials cannot be read as one (RFC 6750 `invalid_request`): 400.
    #[error("{detail}")]
    InvalidAuthorization { detail: String },
    #[error("the request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("the request body did not arrive within {ms} ms; nothing was sent")]
    BodyTimeout { ms: u128 },
    #[error("the request headers are larger than the limit of {limit} bytes")]
    HeadersTooLarge { limit: usize },
    #[error("the request body must be JSON: send `Content-Type: application/json`")]
    UnsupportedMediaType,
    #[error("the request has {} invalid field(s)", .0.len())]
    Validation(Vec<FieldError>),
    #[error("a request with this Idempotency-Key is still running; retry when it has finished")]
    IdempotencyInFlight,
    #[error(
        "this Idempotency-Key was used with a different body; use a new key for a new request"
    )]
    IdempotencyMismatch,
    #[error("the idempotency store is unavailable; nothing was sent (retry later)")]
    StoreUnavailable,
    #[error("the idempotency store holds as many recent keys as it may (idempotency.max_keys); nothing was sent (retry later)")]
    StoreFull,
    #[error("the gateway is at its capacity ({reason}); nothing was read or sent: retry after {retry_after_s} s")]
    Overloaded {
        /// What is full, in words.
        reason: &'static str,
        retry_after_s: u64,
    },
    #[error("the operations store is unavailable; nothing was stored or sent (retry later)")]
    OperationsUnavailable,
    #[error("the gateway holds as many pending operation targets as it may (operations.max_pending); nothing was stored or sent (retry later)")]
    OperationsFull,
    /// The operation's completion event cannot be sent again now (why, in words): 409.
    #[error("{0}")]
    NotificationNotResendable(&'static str),
    #[error("no route for this method and path")]
    NotFound,
    #[error("method not allowed on this path; allowed: {allow}")]
    MethodNotAllowed { allow: &'static str },
    #[error("an internal error occurred; the request id identifies it in the logs")]
    Internal,
}

impl ApiError {
    fn slug_and_title(&self) -> (&'static str, &'static str) {
        match self {
            ApiError::MalformedJson(_) => ("malformed-json", "Malformed JSON"),
            ApiError::BadRequest(_) => ("bad-request", "Bad request"),
            ApiError::Unauthorized { .. } => ("unauthorized", "Unauthorized"),
            ApiError::Forbidden { .. } => ("forbidden", "Insufficient scope"),
            ApiError::InvalidAuthorization { .. } => {
                ("invalid-authorization", "Invalid authorization")
            }
            ApiError::PayloadTooLarge { .. } => ("payload-too-large", "Request body too large"),
            ApiError::BodyTimeout { .. } => ("request-timeout", "Request body too slow"),
            ApiError::UnsupportedMediaType => ("unsupported-media-type", "Unsupported media type"),
            ApiError::HeadersTooLarge { .. } => {
                ("headers-too-large", "Request header fields too large")
            }
            ApiError::Validation(_) => ("validation", "The request is invalid"),
            ApiError::IdempotencyInFlight => ("idempotency-key-in-flight", "Request in progress"),
            ApiError::IdempotencyMismatch => ("idempotency-key-reused", "Idempotency-Key reused"),
            ApiError::StoreUnavailable => ("store-unavailable", "Service unavailable"),
            ApiError::StoreFull => ("store-full", "Service unavailable"),
            ApiError::Overloaded { .. } => ("overloaded", "Overloaded"),
            ApiError::OperationsUnavailable => ("operations-unavailable", "Service unavailable"),
            ApiError::OperationsFull => ("operations-full", "Service unavailable"),
            ApiError::NotificationNotResendable(_) => {
                ("notification-not-resendable", "Event not resendable")
            }
            ApiError::NotFound => ("not-found", "Not found"),
            ApiError::MethodNotAllowed { .. } => ("method-not-allowed", "Method not allowed"),
            ApiError::Internal => ("internal", "Internal error"),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::MalformedJson(_)
            | ApiError::BadRequest(_)
            | ApiError::InvalidAuthorization { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::HeadersTooLarge { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::IdempotencyInFlight | ApiError::NotificationNotResendable(_) => {
                StatusCode::CONFLICT
            }
            ApiError::IdempotencyMismatch => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::StoreUnavailable
            | ApiError::StoreFull
            | ApiError::Overloaded { .. }
            | ApiError::OperationsUnavailable
            | ApiError::OperationsFull => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Attaches the request id so the problem body can name it.
    pub fn with_request(self, request_id: &RequestId) -> Problem {
        Problem {
            error: self,
            request_id: request_id.as_str().to_owned(),
        }
    }
}

/// RFC 9457 problem details, as sent.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProblemBody {
    /// A URI naming the problem type, e.g. `urn:clients-gateway:problem:validation`.
    #[schema(example = "urn:clients-gateway:problem:validation")]
    #[serde(rename = "type")]
    pub type_: String,
    #[schema(example = "The request is invalid")]
    pub title: String,
    #[schema(example = 422)]
    pub status: u16,
    #[schema(example = "the request has 1 invalid field(s)")]
    pub detail: String,
    /// The request id (also in the `X-Request-Id` response header).
    pub request_id: String,
    /// Every field at fault (422 only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
}

/// An [`ApiError`] bound to its request: what handlers and extractors return.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct Problem {
    pub error: ApiError,
    pub request_id: String,
}

impl Problem {
    pub fn body(&self) -> ProblemBody {
        let (slug, title) = self.error.slug_and_title();
        let errors = match &self.error {
            ApiError::Validation(errors) => Some(errors.clone()),
            _ => None,
        };
        ProblemBody {
            type_: format!("urn:clients-gateway:problem:{slug}"),
            title: title.into(),
            status: self.error.status().as_u16(),
            detail: self.error.to_string(),
            request_id: self.request_id.clone(),
            errors,
        }
    }
}

impl ResponseError for Problem {
    fn status_code(&self) -> StatusCode {
        self.error.status()
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        response.insert_header((header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON)));
        match &self.error {
            ApiError::InvalidAuthorization { .. } => {
                response.insert_header((
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(r#"Bearer error="invalid_request""#),
                ));
            }
            ApiError::Unauthorized { challenge, .. } | ApiError::Forbidden { challenge, .. } => {
                if let Ok(value) = HeaderValue::from_str(challenge) {
                    response.insert_header((header::WWW_AUTHENTICATE, value));
                }
            }
            ApiError::MethodNotAllowed { allow } => {
                response.insert_header((header::ALLOW, HeaderValue::from_static(allow)));
            }
            // The rest of the body may still be trickling in: the connection is not kept.
            ApiError::BodyTimeout { .. } | ApiError::PayloadTooLarge { .. } => {
                response.force_close();
            }
            // A refused caller keeps nothing, not even its connection.
            ApiError::Overloaded { retry_after_s, .. } => {
                response.insert_header((header::RETRY_AFTER, retry_after_s.to_string()));
                response.force_close();
            }
            _ => {}
        }
        let body = serde_json::to_vec(&self.body()).unwrap_or_else(|_| b"{}".to_vec());
        response.body(body)
    }
}
