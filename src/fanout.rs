//! Concurrent fan-out: every target is called at once, in its own task, under its own timeout
//! inside the overall deadline. Whatever one provider does (slow, reset, HTML, panic in parsing),
//! the other targets' results are kept.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use reqwest::StatusCode;
use tokio::time::Instant;
use tracing::Instrument;

use crate::providers::{
    describe_transport, redact, Auth, Credentials, ErrorKind, Plan, ProviderError, ProviderId,
    Target,
};
use crate::request_id::RequestId;
use crate::resilience::Health;
use crate::results::{PlannedRequest, TargetResult, TargetStatus};

/// Largest provider answer read; a larger one is an `invalid_response`.
const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// One target to call: the adapter with its plan.
pub struct Call {
    pub provider: ProviderId,
    pub target: Arc<Target>,
    pub plan: Plan,
}

/// Calls every target concurrently and waits for all of them (each bounded by its timeout and
/// by `deadline`). Each call runs in its own task: a panic becomes that target's `internal`
/// error and a caller that disconnects does not cancel calls already under way.
pub async fn fan_out(
    calls: Vec<Call>,
    deadline: Instant,
    request_id: &RequestId,
) -> BTreeMap<ProviderId, TargetResult> {
    let tasks: Vec<_> = calls
        .into_iter()
        .map(|call| {
            let provider = call.provider;
            let span = tracing::debug_span!(
                "provider_call",
                provider = provider.as_str(),
                request_id = request_id.as_str()
            );
            let request = Outbound::from(call.plan);
            (
                provider,
                tokio::spawn(run(call.target, request, deadline).instrument(span)),
            )
        })
        .collect();
    let _in_flight = crate::metrics::InFlight::start();
    let mut results = BTreeMap::new();
    for (provider, task) in tasks {
        let result = task.await.unwrap_or_else(|e| {
            tracing::error!(provider = %provider, error = %e, "provider call panicked");
            panicked()
        });
        crate::metrics::provider_result(provider, &result);
        results.insert(provider, result);
    }
    results
}

/// The result of a target whose call ended in a bug (a panic): it may have been sent.
pub fn panicked() -> TargetResult {
    TargetResult::failed(
        TargetStatus::Unknown,
        ProviderError::new(
            ErrorKind::Internal,
            "internal error while calling the provider; the client may have been created",
        ),
    )
}

/// What a dry run shows for a target: the request it would send, secrets redacted.
pub fn planned(target: &Target, plan: &Plan) -> TargetResult {
    let (auth_name, auth_shown) = target.auth.shown();
    let headers = BTreeMap::from([
        (auth_name.to_owned(), auth_shown),
        ("content-type".to_owned(), "application/json".to_owned()),
        ("accept".to_owned(), "application/json".to_owned()),
    ]);
    TargetResult {
        request: Some(PlannedRequest {
            method: "POST".into(),
            url: plan.url.to_string(),
            headers,
            body: redact(plan.body.clone(), plan.secret_pointers),
        }),
        ..TargetResult::new(TargetStatus::Planned)
    }
}

/// A plan as it goes on the wire: the body serialized once, the JSON tree dropped (a call may
/// wait for a connection slot; what it keeps meanwhile should be small).
struct Outbound {
    url: url::Url,
    body: Bytes,
    credentials: Option<Credentials>,
}

impl From<Plan> for Outbound {
    fn from(plan: Plan) -> Self {
        Self {
            body: Bytes::from(serde_json::to_vec(&plan.body).expect("a JSON value serializes")),
            url: plan.url,
            credentials: plan.credentials,
        }
    }
}

#[derive(Default)]
struct Progress {
    /// A request is on its way to the provider's create endpoint and may be acted on.
    in_flight: bool,
    attempts: u32,
}

async fn run(target: Arc<Target>, request: Outbound, deadline: Instant) -> TargetResult {
    let started = Instant::now();
    let budget = target
        .timeout
        .min(deadline.saturating_duration_since(started));
    let mut result = match target.breaker.acquire() {
        Err(wait) => {
            let mut err = ProviderError::new(
                ErrorKind::CircuitOpen,
                "the provider failed repeatedly; calls are paused (circuit open); nothing was sent",
            );
            err.retry_after_s = Some(wait.as_secs().max(1));
            TargetResult::failed(TargetStatus::Failed, err)
        }
        Ok(permit) => {
            let mut progress = Progress::default();
            let until = started + budget;
            let outcome =
                tokio::time::timeout(budget, exchange(&target, &request, until, &mut progress))
                    .await;
            let mut result = outcome.unwrap_or_else(|_| timed_out(budget, progress.in_flight));
            result.attempts = progress.attempts;
            target.breaker.record(permit, Health::of(&result));
            result
        }
    };
    result.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    if result.status == TargetStatus::Unknown && result.credentials.is_none() {
        // The member may exist with the password the gateway chose: the caller needs it.
        result.credentials = request.credentials.clone();
    }
    let error_kind = result.error.as_ref().map(|e| e.kind.as_str());
    tracing::debug!(
        status = result.status.as_str(),
        provider_status = result.provider_status,
        error_kind,
        attempts = result.attempts,
        duration_ms = result.duration_ms,
        "provider call finished"
    );
    result
}

fn timed_out(budget: Duration, in_flight: bool) -> TargetResult {
    let ms = budget.as_millis();
    if in_flight {
        TargetResult::failed(
            TargetStatus::Unknown,
            ProviderError::new(
                ErrorKind::Timeout,
                format!("no answer within {ms} ms; the client may have been created"),
            ),
        )
    } else {
        TargetResult::failed(
            TargetStatus::Failed,
            ProviderError::new(
                ErrorKind::Timeout,
                format!("no request could be completed within {ms} ms; nothing was sent"),
            ),
        )
    }
}

/// Sends the plan, retrying only where the provider cannot have acted (no connection; a
/// 429 or 503 answer), with jittered backoff or the provider's `Retry-After`, never past `until`.
async fn exchange(
    target: &Target,
    request: &Outbound,
    until: Instant,
    progress: &mut Progress,
) -> TargetResult {
    let mut token_refreshed = false;
    loop {
        if let Some(quota) = &target.quota {
            if let Err(wait) = quota.take() {
                return over_quota(wait);
            }
        }
        let (auth_name, auth_value) = match &target.auth {
            Auth::Header(name, value, _) => (name.clone(), value.clone()),
            Auth::OAuth2(source) => match Box::pin(source.authorization()).await {
                Ok(value) => (AUTHORIZATION, value),
                Err(e) => return TargetResult::failed(TargetStatus::Failed, e),
            },
        };
        // A slot among `max_connections`; waiting for it sends nothing.
        let slot = target
            .slots
            .acquire()
            .await
            .expect("the semaphore is never closed");
        progress.in_flight = true;
        progress.attempts += 1;
        // The exchange itself is boxed: only calls under way hold its (large) state, not the
        // ones waiting for a slot.
        let sent = Box::pin(
            target
                .http()
                .post(request.url.clone())
                .header(auth_name, auth_value.clone())
                .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                .header(ACCEPT, HeaderValue::from_static("application/json"))
                .body(request.body.clone())
                .send(),
        )
        .await;
        let (result, retry_after) = match sent {
            Err(e) => {
                let result = transport_failure(&e);
                if result.status == TargetStatus::Unknown {
                    return result;
                }
                (result, None)
            }
            Ok(response) => {
                let status = response.status();
                if status == StatusCode::UNAUTHORIZED && !token_refreshed {
                    if let Auth::OAuth2(source) = &target.auth {
                        // The token was refused, so nothing was created: refresh it once.
                        progress.in_flight = false;
                        Box::pin(source.invalidate(&auth_value)).await;
                        token_refreshed = true;
                        continue;
                    }
                }
                let retry_after = retry_after(response.headers());
                let result = Box::pin(read_answer(target, &request.credentials, response)).await;
                if !matches!(
                    status,
                    StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
                ) {
                    return result;
                }
                (result, retry_after)
            }
        };
        // Here the provider cannot have acted: nothing is in flight.
        progress.in_flight = false;
        drop(slot);
        if progress.attempts >= target.retry.max_attempts {
            return result;
        }
        let pause = retry_after
            .map(Duration::from_secs)
            .unwrap_or_else(|| target.retry.backoff(progress.attempts));
        if Instant::now() + pause >= until {
            return result;
        }
        tracing::debug!(
            attempt = progress.attempts,
            pause_ms = pause.as_millis() as u64,
            "retrying"
        );
        Box::pin(tokio::time::sleep(pause)).await;
    }
}

/// Refused by the gateway's own outbound limit. Earlier attempts, if any, were ones the provider
/// cannot have acted on (that is when the loop retries), so nothing was created.
fn over_quota(wait: Duration) -> TargetResult {
    let mut err = ProviderError::new(
        ErrorKind::RateLimited,
        "the gateway's outbound limit for this provider is reached (providers.<name>.max_per_minute); nothing was sent",
    );
    err.retry_after_s = Some(wait.as_secs().max(1));
    TargetResult::failed(TargetStatus::Failed, err)
}

fn transport_failure(e: &reqwest::Error) -> TargetResult {
    let cause = describe_transport(e);
    if e.is_connect() {
        let mut err = ProviderError::new(
            ErrorKind::Unavailable,
            format!("could not connect: {cause}; nothing was sent"),
        );
        err.retryable = true;
        TargetResult::failed(TargetStatus::Failed, err)
    } else {
        TargetResult::failed(
            TargetStatus::Unknown,
            ProviderError::new(
                ErrorKind::Unavailable,
                format!("connection lost after the request was sent ({cause}); the client may have been created"),
            ),
        )
    }
}

async fn read_answer(
    target: &Target,
    credentials: &Option<Credentials>,
    mut response: reqwest::Response,
) -> TargetResult {
    let status = response.status();
    let retry_after_s = retry_after(response.headers());
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let mut bytes = Vec::new();
    let mut cut = None;
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) if bytes.len() + chunk.len() > MAX_ANSWER_BYTES => {
                cut = Some(format!("over {MAX_ANSWER_BYTES} bytes"));
                break;
            }
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            Ok(None) => break,
            Err(e) => {
                cut = Some(format!("cut: {}", describe_transport(&e)));
                break;
            }
        }
    }
    let json: Option<serde_json::Value> = match (&cut, bytes.is_empty()) {
        (None, false) => serde_json::from_slice(&bytes).ok(),
        _ => None,
    };
    let code = status.as_u16();
    let adapter = &target.adapter;
    if status.is_success() {
        let unreadable = |why: String| {
            let mut r = TargetResult::failed(
                TargetStatus::Unknown,
                ProviderError::new(
                    ErrorKind::InvalidResponse,
                    format!("answered HTTP {code} but {why}; the client was probably created, check before sending it again"),
                ),
            );
            r.provider_status = Some(code);
            if let Some(e) = r.error.as_mut() {
                e.provider_status = Some(code);
                e.retryable = false;
            }
            r
        };
        let Some(json) = json else {
            let why = match &cut {
                Some(c) => format!("the body was {c}"),
                None => format!("with {}", describe_body(&content_type, &bytes)),
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
    let mut err = adapter.error(status, json.as_ref());
    if json.is_none() {
        err.message = match &cut {
            Some(c) => format!("answered HTTP {code}; the body was {c}"),
            None => format!(
                "answered HTTP {code} with {}",
                describe_body(&content_type, &bytes)
            ),
        };
    }
    err.provider_status = Some(code);
    err.retry_after_s = retry_after_s;
    let status = if err.kind == ErrorKind::Timeout {
        // 408/504: the provider gave up, possibly after acting.
        TargetStatus::Unknown
    } else {
        TargetStatus::Failed
    };
    TargetResult::failed(status, err)
}

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

/// `Retry-After` as seconds from now: delta-seconds or an HTTP date.
pub fn retry_after(headers: &HeaderMap) -> Option<u64> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(seconds);
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .map_or(0, |d| d.as_secs()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_and_dates() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h), Some(7));
        let later = std::time::SystemTime::now() + Duration::from_secs(120);
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_str(&httpdate::fmt_http_date(later)).unwrap(),
        );
        let s = retry_after(&h).unwrap();
        assert!((118..=120).contains(&s), "{s}");
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h), Some(0));
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
    }

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
