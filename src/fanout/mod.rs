//! Concurrent fan-out: every target is called at once, in its own task, under its own timeout
//! inside the overall deadline. Whatever one provider does (slow, reset, HTML, panic in parsing),
//! the other targets' results are kept.
//!
//! [`exchange`] sends one request in named steps (quota, authorization, slot, send, token
//! refresh, bounded read, retry decision); [`answer`] reads what a create exchange means.

mod answer;
mod exchange;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tracing::Instrument;

use crate::catalog::ProviderId;
use crate::provider_error::{ErrorKind, ProviderError};
use crate::providers::{Plan, Target};
use crate::request_id::RequestId;
use crate::resilience::Health;
use crate::results::{PlannedRequest, TargetResult, TargetStatus};
use crate::secret::{redact, Credentials};

use exchange::{exchange, Outbound, Progress};

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
            let request = Outbound::from(&call.plan.create);
            let credentials = call.plan.credentials;
            (
                provider,
                tokio::spawn(create(call.target, request, credentials, deadline).instrument(span)),
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
    let request = &plan.create;
    let (auth_name, auth_shown) = target.auth.shown();
    let mut headers = BTreeMap::from([
        (auth_name.to_owned(), auth_shown),
        ("accept".to_owned(), "application/json".to_owned()),
    ]);
    if request.body.is_some() {
        headers.insert("content-type".to_owned(), "application/json".to_owned());
    }
    TargetResult {
        request: Some(PlannedRequest {
            method: request.method.to_string(),
            url: request.url.to_string(),
            headers,
            body: redact(
                request.body.clone().unwrap_or_default(),
                request.secret_pointers,
            ),
        }),
        ..TargetResult::new(TargetStatus::Planned)
    }
}

/// Creates the client at one target: circuit breaker, then the exchange under the target's
/// budget, then what the answer means.
async fn create(
    target: Arc<Target>,
    request: Outbound,
    credentials: Option<Credentials>,
    deadline: Instant,
) -> TargetResult {
    let started = Instant::now();
    let budget = target
        .timeout
        .min(deadline.saturating_duration_since(started));
    let mut result = match target.breaker.acquire() {
        Err(wait) => circuit_open(wait),
        Ok(permit) => {
            let mut progress = Progress::default();
            let until = started + budget;
            let exchanged =
                tokio::time::timeout(budget, exchange(&target, &request, until, &mut progress))
                    .await;
            let mut result = match exchanged {
                Ok(exchanged) => {
                    answer::create_result(target.adapter.as_ref(), exchanged, &credentials)
                }
                Err(_) => timed_out(budget, progress.in_flight),
            };
            result.attempts = progress.attempts;
            target.breaker.record(permit, Health::of(&result));
            result
        }
    };
    result.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    if result.status == TargetStatus::Unknown && result.credentials.is_none() {
        // The member may exist with the password the gateway chose: the caller needs it.
        result.credentials = credentials;
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

fn circuit_open(wait: Duration) -> TargetResult {
    let mut err = ProviderError::new(
        ErrorKind::CircuitOpen,
        "the provider failed repeatedly; calls are paused (circuit open); nothing was sent",
    );
    err.retry_after_s = Some(wait.as_secs().max(1));
    TargetResult::failed(TargetStatus::Failed, err)
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
