//! `POST /clients` with `Prefer: respond-async` (RFC 7240): checked as always, then stored as an
//! operation and answered `202` with its `Location` — or, with `wait=N`, the usual 207 when
//! every target settled within N seconds.

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};

use crate::auth::Caller;
use crate::catalog::ProviderId;
use crate::domain::IfExists;
use crate::fanout::Call;
use crate::operations::{Accept, Accepted, Operation, Operations, Planner};
use crate::outbound::Registry;
use crate::problem::{ApiError, Problem};
use crate::request_id::RequestId;
use crate::results::Outcome;

use super::response::MultiStatus;

/// What the caller prefers, from its `Prefer` headers.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Prefer {
    pub respond_async: bool,
    /// `wait=N`: the most the caller is willing to wait for a synchronous answer.
    pub wait: Option<Duration>,
}

impl Prefer {
    /// The preferences of every `Prefer` header (`token[=value][; params]`, comma-separated,
    /// tokens case-insensitive); what is not understood is ignored, as RFC 7240 asks.
    pub fn of(req: &HttpRequest) -> Self {
        let mut prefer = Prefer::default();
        for value in req.headers().get_all("prefer") {
            let Ok(value) = value.to_str() else { continue };
            for preference in value.split(',') {
                let main = preference.split(';').next().unwrap_or_default();
                let (token, argument) = match main.split_once('=') {
                    Some((t, v)) => (t.trim(), Some(v.trim().trim_matches('"'))),
                    None => (main.trim(), None),
                };
                if token.eq_ignore_ascii_case("respond-async") {
                    prefer.respond_async = true;
                } else if token.eq_ignore_ascii_case("wait") {
                    let seconds = argument.and_then(|a| a.parse::<u64>().ok());
                    prefer.wait = seconds.map(|s| Duration::from_secs(s.min(3_600)));
                }
            }
        }
        prefer
    }
}

/// Plans a stored request's target again: the gateway's validation and planning, as on
/// arrival.
pub struct RegistryPlanner(pub Arc<Registry>);

impl Planner for RegistryPlanner {
    fn call(&self, body: &[u8], provider: ProviderId) -> Result<(Call, IfExists), String> {
        let (request, unknown) = super::parse(body).map_err(|e| e.to_string())?;
        let if_exists = request.if_exists.unwrap_or_default();
        let calls =
            super::validate(&request, if_exists, unknown, &self.0).map_err(|e| match e {
                ApiError::Validation(errors) => format!(
                "the stored request no longer passes validation (the configuration changed?): {}",
                errors
                    .iter()
                    .map(|e| format!("{} {}", e.pointer, e.detail))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
                other => other.to_string(),
            })?;
        let call = calls
            .into_iter()
            .find(|c| c.provider == provider)
            .ok_or_else(|| format!("the stored request has no target {provider}"))?;
        Ok((call, if_exists))
    }
}

/// What an asynchronous request hands over.
pub struct Handed<'a> {
    pub caller: &'a Caller,
    pub request_id: &'a RequestId,
    pub prefer: Prefer,
    pub key: Option<String>,
    pub fingerprint: String,
    pub body: &'a [u8],
    pub calls: Vec<Call>,
    /// The request's deadline (`wait` is at most this).
    pub deadline: Duration,
    /// The webhook told when it is done.
    pub notify: Option<&'a str>,
}

/// Stores the operation and answers it: `202` (or `200` for a done operation its key names),
/// or the 207 when `wait` saw every target settle.
pub async fn accept(operations: &Operations, h: Handed<'_>) -> Result<HttpResponse, Problem> {
    let fail = |e: ApiError| e.with_request(h.request_id);
    let traceparent = crate::telemetry::traceparent(&tracing::Span::current());
    let accepted = operations
        .accept(Accept {
            caller: &h.caller.subject,
            key: h.key,
            fingerprint: h.fingerprint,
            body: h.body,
            calls: &h.calls,
            traceparent,
            request_id: h.request_id.as_str(),
            notify: h.notify,
        })
        .await
        .map_err(|e| {
            tracing::error!(request_id = %h.request_id, error = %e, "operations store unavailable");
            fail(ApiError::OperationsUnavailable)
        })?;
    drop(h.calls);
    let (operation, new) = match accepted {
        Accepted::Operation { operation, new } => (*operation, new),
        Accepted::Mismatch => return Err(fail(ApiError::IdempotencyMismatch)),
        Accepted::Full => return Err(fail(ApiError::OperationsFull)),
    };
    let operation = match h.prefer.wait.filter(|w| !w.is_zero() && !operation.done) {
        Some(wait) => operations
            .wait(
                &operation.operation_id,
                &h.caller.subject,
                wait.min(h.deadline),
            )
            .await
            .ok()
            .flatten()
            .unwrap_or(operation),
        None => operation,
    };
    tracing::info!(
        request_id = %h.request_id,
        caller = %crate::telemetry::printable(&h.caller.subject),
        operation_id = %operation.operation_id,
        state = operation.state.as_str(),
        new,
        "clients operation accepted"
    );
    if h.prefer.wait.is_some() && operation.done {
        return Ok(completed(operation));
    }
    let status = if operation.done && !new {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok(answer(status, &operation, true))
}

/// The operation as an answer: its `Location`, and `Retry-After` while it is not done.
pub fn answer(status: StatusCode, operation: &Operation, applied: bool) -> HttpResponse {
    let mut response = HttpResponse::build(status);
    response.insert_header((
        header::LOCATION,
        format!("/clients/operations/{}", operation.operation_id),
    ));
    if applied {
        response.insert_header((
            "Preference-Applied",
            HeaderValue::from_static("respond-async"),
        ));
    }
    if let Some(seconds) = operation.retry_after_s {
        response.insert_header((header::RETRY_AFTER, seconds.to_string()));
    }
    response.json(operation)
}

/// A done operation as the synchronous 207.
fn completed(operation: Operation) -> HttpResponse {
    let results = operation.results;
    let answer = MultiStatus {
        operation_id: operation
            .operation_id
            .parse()
            .unwrap_or_else(|_| crate::ids::v7()),
        outcome: Outcome::of(results.values()),
        dry_run: false,
        results,
    };
    HttpResponse::build(StatusCode::MULTI_STATUS).json(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefer(values: &[&str]) -> Prefer {
        let mut req = actix_web::test::TestRequest::default();
        for v in values {
            req = req.append_header(("Prefer", *v));
        }
        Prefer::of(&req.to_http_request())
    }

    #[test]
    fn preferences_are_read_as_rfc_7240_writes_them() {
        assert_eq!(prefer(&[]), Prefer::default());
        assert!(prefer(&["respond-async"]).respond_async);
        assert!(prefer(&["Respond-Async; foo=bar"]).respond_async);
        let both = prefer(&["handling=lenient, respond-async, wait=5"]);
        assert!(both.respond_async);
        assert_eq!(both.wait, Some(Duration::from_secs(5)));
        let split = prefer(&["wait=\"3\"", "respond-async"]);
        assert_eq!(split.wait, Some(Duration::from_secs(3)));
        assert!(split.respond_async);
        assert_eq!(prefer(&["wait=soon, respond-async"]).wait, None);
        assert!(!prefer(&["respond-asynchronously"]).respond_async);
    }
}
