//! Concurrent fan-out: every target is handled at once, in its own task, under its own timeouts
//! inside the overall deadline. Whatever one provider does (slow, reset, HTML, panic in parsing),
//! the other targets' results are kept.
//!
//! Per target ([`Job`]): create the client — adopting an existing one first or on a conflict
//! when `if_exists` is `adopt`, settling an unanswered create by a lookup, reading an id the
//! create does not answer — or settle the unanswered create of an earlier request with the same
//! `Idempotency-Key`. [`exchange`] sends one request in named steps (quota, authorization, slot,
//! send, token refresh, bounded read, retry decision); [`answer`] reads what a create answer
//! means; [`lookup`] finds the client.

mod answer;
mod exchange;
mod lookup;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;
use tracing::Instrument;

use crate::catalog::ProviderId;
use crate::domain::IfExists;
use crate::provider_error::{ErrorKind, ProviderError};
use crate::providers::{Found, Plan, Request, Target};
use crate::request_id::RequestId;
use crate::resilience::{Attempt, Decision, Health};
use crate::results::{PlannedRequest, TargetResult, TargetStatus};
use crate::secret::{redact, Credentials};

use exchange::{exchange, Outbound, Progress};
use lookup::{look_up, Looked};

/// A reconciliation lookup is not started with less time than this left before the deadline.
const MIN_LOOKUP_TIME: Duration = Duration::from_millis(100);

/// One target to handle: the adapter with its plan, and what to do.
pub struct Call {
    pub provider: ProviderId,
    pub target: Arc<Target>,
    pub plan: Plan,
    pub job: Job,
}

/// What to do at a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    /// Create the client (adopting it first, with `if_exists: adopt`).
    Create,
    /// An earlier request with the same `Idempotency-Key` sent the create at `started` and got
    /// no answer (or was interrupted, its replica gone): find it, or send it again once the
    /// provider has had `settle_s` to act.
    Settle {
        started: SystemTime,
        interrupted: bool,
    },
    /// An earlier request with the same `Idempotency-Key` got a 5xx at `started` (and a lookup
    /// then did not find the client): look again before creating it.
    Recheck { started: SystemTime },
}

/// A target's result, and when the create it is about was first sent (what a later lookup
/// needs).
#[derive(Debug, Clone)]
pub struct Done {
    pub result: TargetResult,
    pub sent: Option<SystemTime>,
}

/// Handles every target concurrently and waits for all of them (each bounded by its timeouts
/// and by `deadline`). Each runs in its own task: a panic becomes that target's `internal`
/// error and a caller that disconnects does not cancel calls already under way.
pub async fn fan_out(
    calls: Vec<Call>,
    if_exists: IfExists,
    deadline: Instant,
    request_id: &RequestId,
) -> BTreeMap<ProviderId, Done> {
    let tasks: Vec<_> = calls
        .into_iter()
        .map(|call| {
            let provider = call.provider;
            let job = match call.job {
                Job::Create => "create",
                Job::Settle { .. } => "settle",
                Job::Recheck { .. } => "recheck",
            };
            // A child of the request's span (it carries no credential: names, counts, kinds).
            let span = crate::gateway_span!(
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
            );
            let work = Work {
                target: call.target,
                create: Outbound::from(&call.plan.create),
                credentials: call.plan.credentials,
                lookup: call.plan.lookup,
                if_exists,
                deadline,
            };
            let job = call.job;
            (
                provider,
                tokio::spawn(async move { work.run(job).await }.instrument(span)),
            )
        })
        .collect();
    let _in_flight = crate::metrics::InFlight::start();
    let mut results = BTreeMap::new();
    for (provider, task) in tasks {
        let done = task.await.unwrap_or_else(|e| {
            tracing::error!(provider = %provider, error = %e, "provider call panicked");
            Done {
                result: panicked(),
                sent: None,
            }
        });
        crate::metrics::provider_result(provider, &done.result);
        results.insert(provider, done);
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

/// One target's work.
struct Work {
    target: Arc<Target>,
    create: Outbound,
    credentials: Option<Credentials>,
    lookup: Option<crate::providers::LookupKey>,
    if_exists: IfExists,
    deadline: Instant,
}

impl Work {
    async fn run(self, job: Job) -> Done {
        let started = Instant::now();
        // Each step is boxed: a call in flight holds the futures of the steps under way, not
        // room for the largest step it could take.
        let mut done = match job {
            Job::Create => Box::pin(self.create_adopting()).await,
            Job::Settle {
                started,
                interrupted,
            } => Box::pin(self.settle(started, interrupted)).await,
            Job::Recheck { started } => Box::pin(self.recheck(started)).await,
        };
        Box::pin(self.target.scrub(&mut done.result)).await;
        let result = &mut done.result;
        result.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        if result.status == TargetStatus::Unknown && result.credentials.is_none() {
            // The member may exist with the password the gateway chose: the caller needs it.
            result.credentials = self.credentials.clone();
        }
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

    /// The time left for one step: the target's timeout, within the deadline.
    fn budget(&self) -> Duration {
        self.target
            .timeout
            .min(self.deadline.saturating_duration_since(Instant::now()))
    }

    fn adopt(&self) -> bool {
        self.if_exists == IfExists::Adopt
    }

    /// Creates the client. With `if_exists: adopt`, a provider that accepts duplicates is
    /// looked up first (one adoption at a time per client), so that nothing is created when the
    /// client is there.
    async fn create_adopting(&self) -> Done {
        let (Some(key), true) = (&self.lookup, self.adopt()) else {
            return Box::pin(self.create()).await;
        };
        if !self.target.adapter.accepts_duplicates() {
            return Box::pin(self.create()).await;
        }
        let _turn = Box::pin(
            self.target
                .adopting
                .lock(&self.target.adapter.key_text(key)),
        )
        .await;
        match Box::pin(look_up(&self.target, key, None, self.budget())).await {
            Looked::Found(found) => Done {
                result: existing(found, TargetStatus::Existing),
                sent: None,
            },
            Looked::NotFound => Box::pin(self.create()).await,
            Looked::Failed(e) => Done {
                result: TargetResult::failed(
                    TargetStatus::Failed,
                    ProviderError {
                        message: format!(
                            "could not check whether the client already exists (if_exists: adopt); nothing was created: {}",
                            e.message
                        ),
                        ..e
                    },
                ),
                sent: None,
            },
        }
    }

    /// Sends the create, then: a conflict is looked up (`adopt`), an unanswered create is looked
    /// up if time is left, a created client whose id the create does not answer is looked up.
    async fn create(&self) -> Done {
        let sent = SystemTime::now();
        let mut result = Box::pin(self.send_checked(sent)).await;
        let conflict = result
            .error
            .as_ref()
            .is_some_and(|e| e.kind == ErrorKind::Conflict);
        if conflict && self.adopt() {
            result = Box::pin(self.adopt_on_conflict(result, TargetStatus::Existing)).await;
        } else if result.status == TargetStatus::Unknown {
            result = Box::pin(self.reconcile(result, sent)).await;
        } else if result.status == TargetStatus::Created
            && result.provider_client_id.is_none()
            && self.target.adapter.resolves_id()
        {
            result = Box::pin(self.resolve_id(result, sent)).await;
        }
        Done {
            result,
            sent: Some(sent),
        }
    }

    /// Settles an earlier unanswered create: found → `created`, `reconciled`; not found → sent
    /// again once the provider has had `settle_s` to act, `unknown` (with when to come back)
    /// before.
    async fn settle(&self, started: SystemTime, interrupted: bool) -> Done {
        let unsettled = |message: String| {
            let kind = if interrupted {
                ErrorKind::Internal
            } else {
                ErrorKind::Timeout
            };
            let prefix = if interrupted {
                "an earlier request with this Idempotency-Key was interrupted before recording this target"
            } else {
                "an earlier request with this Idempotency-Key got no answer from this provider"
            };
            let mut err = ProviderError::new(kind, format!("{prefix}; {message}"));
            err.retryable = true;
            TargetResult::failed(TargetStatus::Unknown, err)
        };
        let Some(key) = &self.lookup else {
            let mut result = unsettled(
                "the client may have been created; not sent again, and it cannot be looked up without its natural key: check in the provider, then use a new key for the targets still missing"
                    .into(),
            );
            result.replayed = true;
            return Done {
                result,
                sent: Some(started),
            };
        };
        let mut result = match Box::pin(look_up(&self.target, key, Some(started), self.budget())).await {
            Looked::Found(found) => reconciled(found),
            Looked::Failed(e) => unsettled(format!(
                "the client may have been created; a lookup could not tell ({}), so it was not sent again: retry later",
                e.message
            )),
            Looked::NotFound => {
                let settled_at = started + self.target.settle;
                match settled_at.duration_since(SystemTime::now()) {
                    Err(_) => return Box::pin(self.create_again()).await,
                    Ok(wait) => {
                        let mut result = unsettled(format!(
                            "the client is not found at the provider yet, which may still be acting on it; sent again only {} s after the first attempt: retry after that",
                            self.target.settle.as_secs()
                        ));
                        if let Some(e) = result.error.as_mut() {
                            e.retry_after_s = Some(wait.as_secs().max(1));
                        }
                        result
                    }
                }
            }
        };
        // Nothing was sent in this request: what it says comes from the earlier one's create.
        result.replayed = true;
        Done {
            result,
            sent: Some(started),
        }
    }

    /// Before sending a create again after a 5xx: found → `created` (`reconciled`); not found →
    /// created now; the lookup failing → not sent.
    async fn recheck(&self, started: SystemTime) -> Done {
        let Some(key) = &self.lookup else {
            return Box::pin(self.create()).await;
        };
        let mut result = match Box::pin(look_up(&self.target, key, Some(started), self.budget())).await {
            Looked::Found(found) => reconciled(found),
            Looked::NotFound => return Box::pin(self.create()).await,
            Looked::Failed(e) => TargetResult::failed(
                TargetStatus::Failed,
                ProviderError {
                    message: format!(
                        "not sent again: a lookup could not tell whether an earlier attempt (answered with a 5xx) created the client ({}); retry later",
                        e.message
                    ),
                    retryable: true,
                    ..e
                },
            ),
        };
        result.replayed = true;
        Done {
            result,
            sent: Some(started),
        }
    }

    /// The create of a settled, not found client, sent again. A conflict now means the
    /// earlier create did land after all: the lookup then finds it (`created`, `reconciled`).
    async fn create_again(&self) -> Done {
        let sent = SystemTime::now();
        let mut result = Box::pin(self.send_checked(sent)).await;
        let conflict = result
            .error
            .as_ref()
            .is_some_and(|e| e.kind == ErrorKind::Conflict);
        if conflict {
            result = Box::pin(self.adopt_on_conflict(result, TargetStatus::Created)).await;
        } else if result.status == TargetStatus::Unknown {
            result = Box::pin(self.reconcile(result, sent)).await;
        }
        Done {
            result,
            sent: Some(sent),
        }
    }

    /// A lookup of the client whose create was sent at `sent`, when it has a natural key and
    /// the budget leaves time for one; else why not.
    async fn look_up_sent(&self, sent: SystemTime) -> Result<Looked, &'static str> {
        let Some(key) = &self.lookup else {
            return Err("it cannot be looked up without its natural key");
        };
        let budget = self.budget();
        if budget < MIN_LOOKUP_TIME {
            return Err("no time was left to look it up");
        }
        Ok(Box::pin(look_up(&self.target, key, Some(sent), budget)).await)
    }

    /// Sends the create. A 5xx answer does not prove that nothing was created: the client is
    /// looked up — found, it is `created` (`reconciled`); not found, the target failed, and a
    /// 503 is sent again (after its `Retry-After` or a backoff, within the attempts and the
    /// budget); when no lookup can tell, it is `unknown`.
    async fn send_checked(&self, sent: SystemTime) -> TargetResult {
        let mut attempts = 0;
        loop {
            let mut result = Box::pin(self.send_create()).await;
            attempts += result.attempts;
            result.attempts = attempts;
            let Some(code) = answered_5xx(&result) else {
                return result;
            };
            let looked = match Box::pin(self.look_up_sent(sent)).await {
                Ok(looked) => looked,
                Err(why) => return may_exist(result, why),
            };
            match looked {
                Looked::Found(found) => {
                    return TargetResult {
                        attempts,
                        credentials: self.credentials.clone(),
                        ..reconciled(found)
                    }
                }
                Looked::Failed(e) => {
                    return may_exist(result, &format!("a lookup could not tell ({})", e.message))
                }
                Looked::NotFound => {}
            }
            // Not created: a lookup says so. Now a 503 may be sent again like any safe request.
            let retry_after = result
                .error
                .as_ref()
                .and_then(|e| e.retry_after_s)
                .map(Duration::from_secs);
            let attempt = Attempt::Answered {
                status: code,
                retry_after,
            };
            let remaining = self.budget();
            let decision =
                self.target
                    .retry
                    .decide(attempt, attempts, remaining, rand::random(), true);
            match (code, decision) {
                (503, Decision::RetryAfter(pause)) => Box::pin(tokio::time::sleep(pause)).await,
                _ => return result,
            }
        }
    }

    /// The create exchange, under the circuit breaker and the target's budget.
    async fn send_create(&self) -> TargetResult {
        let target = &self.target;
        let budget = self.budget();
        let permit = match target.breaker.acquire() {
            Ok(permit) => permit,
            Err(wait) => return circuit_open(wait),
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
            Err(_) => timed_out(budget, progress.in_flight),
        };
        result.attempts = progress.attempts;
        permit.record(Health::of(&result));
        result
    }

    /// After a conflict: the client is there; found → `as_status` with its id.
    async fn adopt_on_conflict(
        &self,
        conflict: TargetResult,
        as_status: TargetStatus,
    ) -> TargetResult {
        let Some(key) = &self.lookup else {
            return conflict;
        };
        match Box::pin(look_up(&self.target, key, None, self.budget())).await {
            Looked::Found(found) => TargetResult {
                attempts: conflict.attempts,
                reconciled: as_status == TargetStatus::Created,
                ..existing(found, as_status)
            },
            Looked::NotFound => with_note(
                conflict,
                "the provider refused it as a duplicate, and no client with this key was found by a lookup (it may be elsewhere than the request names, or differ in case)",
            ),
            Looked::Failed(e) => with_note(
                conflict,
                &format!("a lookup could not find the existing client: {}", e.message),
            ),
        }
    }

    /// After an unanswered create, if the deadline leaves time: found → `created`,
    /// `reconciled`; else it stays `unknown`.
    async fn reconcile(&self, unknown: TargetResult, sent: SystemTime) -> TargetResult {
        let Ok(looked) = Box::pin(self.look_up_sent(sent)).await else {
            return unknown;
        };
        match looked {
            // Created with the password the gateway chose, if it chose one.
            Looked::Found(found) => TargetResult {
                attempts: unknown.attempts,
                credentials: self.credentials.clone(),
                ..reconciled(found)
            },
            // Still unknown: the provider may be acting on it yet. A replay with the same
            // Idempotency-Key settles it.
            Looked::NotFound => {
                tracing::debug!("unanswered create: not found by a lookup yet");
                unknown
            }
            Looked::Failed(e) => {
                tracing::debug!(error = %e.message, "unanswered create: the lookup failed");
                unknown
            }
        }
    }

    /// Fills the id a create does not answer, from a lookup; the client stays `created` either
    /// way.
    async fn resolve_id(&self, mut created: TargetResult, sent: SystemTime) -> TargetResult {
        let Ok(looked) = Box::pin(self.look_up_sent(sent)).await else {
            return created;
        };
        match looked {
            Looked::Found(found) => created.provider_client_id = Some(found.id),
            Looked::NotFound => tracing::debug!("the created client's id: not found by a lookup"),
            Looked::Failed(e) => {
                tracing::debug!(error = %e.message, "the created client's id: the lookup failed")
            }
        }
        created
    }
}

/// The client found at the provider, as a result.
fn existing(found: Found, status: TargetStatus) -> TargetResult {
    TargetResult {
        provider_status: None,
        provider_client_id: Some(found.id),
        response: Some(found.record),
        ..TargetResult::new(status)
    }
}

/// An unanswered create, found by a lookup.
fn reconciled(found: Found) -> TargetResult {
    TargetResult {
        reconciled: true,
        ..existing(found, TargetStatus::Created)
    }
}

/// The HTTP status of a 5xx answer to a create, if the result is one.
fn answered_5xx(result: &TargetResult) -> Option<u16> {
    if result.status != TargetStatus::Failed {
        return None;
    }
    result.provider_status.filter(|s| (500..=599).contains(s))
}

/// A 5xx answer no lookup could settle: the client may exist.
fn may_exist(mut result: TargetResult, why: &str) -> TargetResult {
    result.status = TargetStatus::Unknown;
    if let Some(e) = result.error.as_mut() {
        e.message = format!(
            "{}; the client may have been created ({why}): not sent again",
            e.message
        );
    }
    result
}

/// The same result, its error message completed.
fn with_note(mut result: TargetResult, note: &str) -> TargetResult {
    if let Some(e) = result.error.as_mut() {
        e.message = format!("{}; {note}", e.message);
    }
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
