//! What a create exchange means for its target: the provider's answer read through the adapter
//! (created with its id, or a normalized error), or what the transport says about the chance
//! that the client exists.

use std::time::Duration;

use crate::provider_error::{ErrorKind, ProviderError};
use crate::providers::DynAdapter;
use crate::results::{TargetResult, TargetStatus};
use crate::secret::{redact, Credentials};

use super::exchange::{Answer, Exchanged};

/// The result of a create exchange. `credentials` are those the gateway generated for it.
pub fn create_result(
    adapter: &dyn DynAdapter,
    exchanged: Exchanged,
    credentials: &Option<Credentials>,
) -> TargetResult {
    match exchanged {
        Exchanged::NotSent(err) => TargetResult::failed(TargetStatus::Failed, err),
        Exchanged::Lost(cause) => TargetResult::failed(
            TargetStatus::Unknown,
            ProviderError::new(
                ErrorKind::Unavailable,
                format!("connection lost after the request was sent ({cause}); the client may have been created"),
            ),
        ),
        Exchanged::Answered(answer) => answered(adapter, answer, credentials),
    }
}

fn answered(
    adapter: &dyn DynAdapter,
    answer: Answer,
    credentials: &Option<Credentials>,
) -> TargetResult {
    let json: Option<serde_json::Value> = match (&answer.cut, answer.body.is_empty()) {
        (None, false) => serde_json::from_slice(&answer.body).ok(),
        _ => None,
    };
    let code = answer.status.as_u16();
    if answer.status.is_success() {
        let unreadable = |why: String| {
            let mut err = ProviderError::new(
                ErrorKind::InvalidResponse,
                format!("answered HTTP {code} but {why}; the client was probably created, check before sending it again"),
            );
            err.provider_status = Some(code);
            err.retryable = false;
            TargetResult::failed(TargetStatus::Unknown, err)
        };
        let Some(json) = json else {
            let why = match &answer.cut {
                Some(c) => format!("the body was {c}"),
                None => format!("with {}", describe_body(&answer.content_type, &answer.body)),
            };
            return unreadable(why);
        };
        return match adapter.created(&json) {
            Ok(created) => TargetResult {
                provider_status: Some(code),
                provider_client_id: created.id,
                credentials: created.credentials.or_else(|| credentials.clone()),
                response: Some(redact(json, adapter.response_secrets())),
                ..TargetResult::new(TargetStatus::Created)
            },
            Err(why) => unreadable(why),
        };
    }
    let mut err = adapter.error(answer.status, json.as_ref());
    if json.is_none() {
        err.message = match &answer.cut {
            Some(c) => format!("answered HTTP {code}; the body was {c}"),
            None => format!(
                "answered HTTP {code} with {}",
                describe_body(&answer.content_type, &answer.body)
            ),
        };
    }
    err.provider_status = Some(code);
    err.retry_after_s = answer.retry_after.map(|d: Duration| d.as_secs());
    let status = if err.kind == ErrorKind::Timeout {
        // 408/504: the provider gave up, possibly after acting.
        TargetStatus::Unknown
    } else {
        TargetStatus::Failed
    };
    TargetResult::failed(status, err)
}

/// A body that is not the JSON expected, in words.
fn describe_body(content_type: &str, bytes: &[u8]) -> String {
    let ct = content_type.to_ascii_lowercase();
    if bytes.is_empty() {
        "an empty body".into()
    } else if ct.contains("html") || bytes.trim_ascii_start().starts_with(b"<") {
        format!("an HTML body ({} bytes)", bytes.len())
    } else if ct.contains("json") {
        format!("invalid JSON ({} bytes)", bytes.len())
    } else {
        format!(
            "a non-JSON body ({}, {} bytes)",
            if ct.is_empty() {
                "no content type"
            } else {
                &ct
            },
            bytes.len()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_described() {
        assert_eq!(describe_body("text/html", b""), "an empty body");
        assert_eq!(describe_body("", b"<html>"), "an HTML body (6 bytes)");
        assert_eq!(
            describe_body("application/json", b"{"),
            "invalid JSON (1 bytes)"
        );
        assert_eq!(
            describe_body("text/plain", b"oops"),
            "a non-JSON body (text/plain, 4 bytes)"
        );
    }
}
