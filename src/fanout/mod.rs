//! Concurrent fan-out: every target is handled at once, in its own task, under its own timeouts
//! inside the overall deadline. Whatever one provider does (slow, reset, HTML, panic in parsing),
//! the other targets' results are kept.
//!
//! A target's life is decided by the pure state machine in [`life`]; [`Executor::run`] is its
//! executor: it does what the machine says (take the adoption guard, look the client up, send the
//! create, wait) and hands back what happened, knowing no status code. Each request goes through
//! [`crate::outbound::exchange`]; [`answer`] reads what a create's answer means; [`lookup`] finds
//! the client.

mod answer;
pub mod life;
mod lookup;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;
use tracing::Instrument;

use crate::adapter::{LookupKey, Plan, Request};
use crate::catalog::ProviderId;
use crate::domain::IfExists;
use crate::outbound::exchange::{exchange, Outbound, Progress};
use crate::outbound::Target;
use crate::provider_error::{ErrorKind, ProviderError};
use crate::request_id::RequestId;
use crate::resilience::Health;
use crate::results::{PlannedRequest, TargetResult, TargetStatus};
use crate::secret::{redact, Credentials};

use life::{Action, Event, Life, Now, TargetProfile};
pub use life::{Finished, Job};
use lookup::look_up;

/// How long a fleet-wide guard outlives the request's deadline at most (a replica that stops
/// holding one frees it then).
const GUARD_MARGIN: Duration = Duration::from_secs(5);

/// One target to handle: the adapter with its plan, and what to do.
pub struct Call {
    pub provider: ProviderId,
    pub target: Arc<Target>,
    pub plan: Plan,
    pub job: Job,
    /// How this call's requests are retried, when not as its provider's are (an operation's
    /// attempt at a tool with a quota sends once: a send again takes a quota slot of its own).
    pub retry: Option<crate::resilience::RetryPolicy>,
}

/// Handles every target concurrently and waits for all of them (each bounded by its timeouts
/// and by `deadline`). Each runs in its own task: a panic becomes that target's `internal`
/// error and a caller that disconnects does not cancel calls already under way.
pub async fn fan_out(
    calls: Vec<Call>,
    if_exists: IfExists,
    deadline: Instant,
    request_id: &RequestId,
) -> BTreeMap<ProviderId, Finished> {
    let tasks: Vec<_> = calls
        .into_iter()
        .map(|call| {
            let provider = call.provider;
            let span = call_span(provider, call.job, request_id);
            let (work, life) = Executor::start(call, if_exists, deadline);
            (
                provider,
                tokio::spawn(async move { work.run(life).await }.instrument(span)),
            )
        })
        .collect();
    let _in_flight = crate::metrics::InFlight::start();
    let mut results = BTreeMap::new();
    for (provider, task) in tasks {
        let done = task.await.unwrap_or_else(|e| {
            tracing::error!(provider = %provider, error = %e, "provider call panicked");
            Finished {
                result: panicked(),
                sent: None,
                keep_guard: false,
            }
        });
        crate::metrics::provider_result(provider, &done.result);
        results.insert(provider, done);
    }
    results
}

/// A target's span, a child of the request's (it carries no credential: names, counts, kinds).
fn call_span(provider: ProviderId, job: Job, request_id: &RequestId) -> tracing::Span {
    let job = job.name();
    crate::gateway_span!(
        "provider_call",
        otel.name = %format_args!("{job} {provider}"),
        otel.kind = "internal",
        otel.status_code = tracing::field::Empty,
        provider = provider.as_str(),
        job,
        request_id = request_id.as_str(),
        status = tracing::field::Empty,
        attempts = tracing::field::Empty,
        reconciled = tracing::field::Empty,
        error.kind = tracing::field::Empty,
        http.response.status_code = tracing::field::Empty,
        network.protocol.version = tracing::field::Empty,
    )
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

/// What a dry run shows for a target: the request it would send and the lookup that finds the
/// client, secrets redacted.
pub fn planned(target: &Target, plan: &Plan) -> TargetResult {
    TargetResult {
        request: Some(shown(target, &plan.create)),
        lookup: plan
            .lookup
            .as_ref()
            .map(|key| vec![shown(target, &target.adapter.list(key, None))]),
        ..TargetResult::new(TargetStatus::Planned)
    }
}

/// A request as a dry run shows it.
fn shown(target: &Target, request: &Request) -> PlannedRequest {
    let (auth_name, auth_shown) = target.auth.shown();
    let mut headers = BTreeMap::from([
        (auth_name.to_owned(), auth_shown),
        ("accept".to_owned(), "application/json".to_owned()),
    ]);
    for header in &target.headers {
        headers.insert(header.name.to_string(), header.shown());
    }
    if request.body.is_some() {
        headers.insert("content-type".to_owned(), "application/json".to_owned());
    }
    PlannedRequest {
        method: request.method.to_string(),
        url: request.url.to_string(),
        headers,
        body: request
            .body
            .clone()
            .map(|body| redact(body, request.secret_pointers)),
    }
}

/// One target's work: what its executor needs to do the I/O.
struct Executor {
    target: Arc<Target>,
    create: Outbound,
    credentials: Option<Credentials>,
    lookup: Option<LookupKey>,
    deadline: Instant,
}

impl Executor {
    /// A call's work and its life: what the executor needs (the request serialized once, the
    /// plan's JSON dropped) and what the state machine knows.
    fn start(call: Call, if_exists: IfExists, deadline: Instant) -> (Self, Life) {
        let profile = TargetProfile {
            if_exists,
            findable: call.plan.lookup.is_some(),
            accepts_duplicates: call.target.adapter.accepts_duplicates(),
            resolves_id: call.target.adapter.resolves_id(),
            settle: call.target.settle,
            retry: call.retry.unwrap_or_else(|| call.target.retry.clone()),
            credentials: call.plan.credentials.clone(),
        };
        let work = Executor {
            target: call.target,
            create: Outbound::from(&call.plan.create),
            credentials: call.plan.credentials,
            lookup: call.plan.lookup,
            deadline,
        };
        (work, Life::new(call.job, profile))
    }

    /// Does what `life` says until it finishes. Each step's future is boxed: a call in flight
    /// holds the futures of the step under way, nothing more.
    async fn run(self, mut life: Life) -> Finished {
        let started = Instant::now();
        let mut event = Event::Began;
        let mut turn = None;
        let done = loop {
            let action = life.next(event, self.now());
            tracing::trace!(action = action.name(), "next");
            event = match action {
                Action::Guard => match Box::pin(self.take_turn()).await {
                    Ok(taken) => {
                        turn = Some(taken);
                        Event::Guarded(Ok(()))
                    }
                    Err(refused) => Event::Guarded(Err(refused)),
                },
                Action::LookUp { since } => {
                    let key = self
                        .lookup
                        .as_ref()
                        .expect("a looked-up target is findable");
                    let budget = self.budget();
                    Event::LookedUp(Box::pin(look_up(&self.target, key, since, budget)).await)
                }
                Action::Send => Event::Sent(Box::new(Box::pin(self.send_create()).await)),
                Action::Wait(pause) => {
                    Box::pin(tokio::time::sleep(pause)).await;
                    Event::Waited
                }
                Action::Finish(done) => {
                    if let (true, Some(turn)) = (done.keep_guard, turn.as_mut()) {
                        turn.keep(self.target.settle);
                    }
                    break *done;
                }
            };
        };
        self.finished(done, started)
    }

    /// The turn at the client's natural key: waited for at most half the time left (the rest is
    /// for the lookup and the create), held (fleet-wide) until the deadline and a margin at most.
    async fn take_turn(&self) -> Result<crate::fleet::Turn, crate::fleet::Refused> {
        let key = self.lookup.as_ref().expect("a guarded target is findable");
        let text = self.target.adapter.key_text(key);
        let wait_until = Instant::now() + self.budget() / 2;
        let hold = self.deadline.saturating_duration_since(Instant::now()) + GUARD_MARGIN;
        let taken = self.target.guard.take(&text, hold, wait_until).await;
        let outcome = match &taken {
            Ok(_) => "taken",
            Err(crate::fleet::Refused::Busy) => "busy",
            Err(crate::fleet::Refused::Unreachable(_)) => "unreachable",
        };
        crate::metrics::fleet("guard", outcome);
        taken
    }

    /// The clock and the time the next step has.
    fn now(&self) -> Now {
        Now {
            at: SystemTime::now(),
            left: self.budget(),
            jitter: rand::random(),
        }
    }

    /// The time left for one step: the target's timeout, within the deadline.
    fn budget(&self) -> Duration {
        self.target
            .timeout
            .min(self.deadline.saturating_duration_since(Instant::now()))
    }

    /// One create exchange, under the circuit breaker and the target's budget, read by the
    /// adapter.
    async fn send_create(&self) -> TargetResult {
        let target = &self.target;
        let budget = self.budget();
        let permit = match target.breaker.acquire() {
            Ok(permit) => permit,
            Err(wait) => return answer::circuit_open(wait),
        };
        let mut progress = Progress::default();
        let until = Instant::now() + budget;
        let exchanged = Box::pin(tokio::time::timeout(
            budget,
            exchange(target, &self.create, until, &mut progress, false),
        ))
        .await;
        let mut result = match exchanged {
            Ok(exchanged) => {
                answer::create_result(target.adapter.as_ref(), exchanged, &self.credentials)
            }
            Err(_) => answer::timed_out(budget, progress.in_flight),
        };
        result.attempts = progress.attempts;
        permit.record(Health::of(&result));
        result
    }

    /// The finished target: what it relays scrubbed of the provider's secrets, its duration,
    /// its span's fields.
    fn finished(&self, mut done: Finished, started: Instant) -> Finished {
        self.target.scrub(&mut done.result);
        let result = &mut done.result;
        result.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let error_kind = result.error.as_ref().map(|e| e.kind.as_str());
        let span = tracing::Span::current();
        span.record("status", result.status.as_str());
        span.record("attempts", result.attempts);
        span.record("reconciled", result.reconciled);
        if let Some(kind) = error_kind {
            span.record("error.kind", kind);
        }
        if let Some(code) = result.provider_status {
            span.record("http.response.status_code", code);
        }
        if let Some(version) = self.target.connections().protocol() {
            let shown = if version == reqwest::Version::HTTP_2 {
                "2"
            } else {
                "1.1"
            };
            span.record("network.protocol.version", shown);
        }
        if matches!(result.status, TargetStatus::Failed | TargetStatus::Unknown) {
            span.record("otel.status_code", "ERROR");
        }
        tracing::debug!(
            status = result.status.as_str(),
            provider_status = result.provider_status,
            error_kind,
            attempts = result.attempts,
            reconciled = result.reconciled,
            duration_ms = result.duration_ms,
            "provider call finished"
        );
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a provider call in flight holds of the gateway's own state: its task's future (every
    /// step's future is boxed, a result waiting in the state machine is boxed) and its
    /// exchange's (an answer is dropped before a pause). A step's future un-boxed, or a result
    /// held inline, shows here: each of the thousands of calls in flight would carry it
    /// (docs/benchmarks/overload.md).
    #[test]
    fn a_call_in_flight_holds_small_futures() {
        fn size<A, B, R>(_: impl FnOnce(A, B) -> R) -> usize {
            std::mem::size_of::<R>()
        }
        let task = size(|work: Executor, life: Life| work.run(life));
        assert!(task <= 1_200, "a target's task: {task} bytes");
        let life = std::mem::size_of::<Life>();
        assert!(life <= 256, "the state machine: {life} bytes");
        let exchange = size(|t: &'static Target, r: &'static Outbound| {
            let progress = Box::leak(Box::default());
            exchange(t, r, Instant::now(), progress, false)
        });
        assert!(exchange <= 160, "an exchange: {exchange} bytes");
    }
}
