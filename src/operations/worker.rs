//! Every replica works the queue: it takes due targets (and targets a replica took and never
//! finished, once their lease has passed), attempts each once through the fan-out's state
//! machine, and writes the outcome — final, or pending again after a backoff.
//!
//! The schedule: exponential backoff with full jitter from 1 s, ×2 per attempt, at most 10 min,
//! never earlier than the `Retry-After` a tool (or the gateway's own quota) gave; the gateway's
//! quota is waited for at its next free slot, so that a bulk import drains at the quota,
//! fleet-wide; an unknown create is looked up first, and sent again only once the tool has had
//! `settle_s`. After `operations.redrive_for_s` a target ends with its last error.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::Notify;
use tokio::time::Instant;
use tracing::Instrument;

use super::model::{self, TargetRecord};
use super::store::{Begun, Entry, Mark, OpStoreError, Read, TargetWrite, Task, Work};
use super::{place, Operations};
use crate::catalog::ProviderId;
use crate::fanout::{self, life, Call};
use crate::keyed::StoreClock;
use crate::provider_error::{ErrorKind, ProviderError};
use crate::request_id::RequestId;
use crate::results::{TargetResult, TargetStatus};

/// How often a replica looks for due work when it has not been woken.
const POLL_EVERY: Duration = Duration::from_millis(250);
/// The first backoff, and the longest.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MOST_BACKOFF: Duration = Duration::from_secs(600);
/// A target taken and never finished is taken over after the deadline and this margin.
const LEASE_MARGIN: Duration = Duration::from_secs(30);
/// How late a quota's slot may be used (a poll's and a move into the stream's delay); later,
/// another is taken.
const SLOT_LATENESS_MS: u64 = 1_000;
/// How often the queue's depth is read for the metrics.
const DEPTH_EVERY: Duration = Duration::from_secs(5);

/// The worker's own state.
#[derive(Default)]
pub struct State {
    stopping: AtomicBool,
    running: AtomicUsize,
    /// Notified whenever an attempt recorded (waiters for an operation look again).
    pub finished: Notify,
}

pub fn start(ops: Arc<Operations>) {
    let worker = ops.clone();
    tokio::spawn(async move { run(worker).await });
    tokio::spawn(async move { depth(ops).await });
}

/// Stops taking work; waits at most `within` for the attempts under way.
pub async fn drain(ops: &Operations, within: Duration) {
    ops.worker.stopping.store(true, Ordering::Relaxed);
    let until = Instant::now() + within;
    while ops.worker.running.load(Ordering::Relaxed) > 0 && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn run(ops: Arc<Operations>) {
    let lease = ops.deadline + LEASE_MARGIN;
    let mut warned = None::<Instant>;
    while !ops.worker.stopping.load(Ordering::Relaxed) {
        let running = ops.worker.running.load(Ordering::Relaxed);
        let free = ops.settings.concurrency.saturating_sub(running);
        let mut busy = false;
        if free > 0 {
            match ops.store.poll(&ops.consumer, free, lease).await {
                Ok(works) => {
                    busy = works.len() == free;
                    for work in works {
                        ops.worker.running.fetch_add(1, Ordering::Relaxed);
                        let ops = ops.clone();
                        tokio::spawn(async move {
                            attempt(&ops, &work).await;
                            ops.worker.running.fetch_sub(1, Ordering::Relaxed);
                            ops.worker.finished.notify_waiters();
                        });
                    }
                }
                Err(e) => {
                    if warned.is_none_or(|at| at.elapsed() > Duration::from_secs(10)) {
                        tracing::warn!(error = %e, "operations: the queue cannot be read; retrying");
                        warned = Some(Instant::now());
                    }
                }
            }
        }
        if !busy {
            tokio::select! {
                () = tokio::time::sleep(POLL_EVERY) => {}
                () = ops.nudge.notified() => {}
            }
        }
    }
}

/// One target, attempted once; its queue entry finished unless the store failed (then another
/// replica takes it over after its lease).
async fn attempt(ops: &Operations, work: &Work) {
    let handled = match work.task {
        Task::Target(p) => attempt_once(ops, work, p).await,
        Task::Notify => super::webhooks::deliver(ops, work).await,
    };
    match handled {
        Ok(Entry::Finished) => {
            if let Err(e) = ops.store.ack(work).await {
                tracing::warn!(error = %e, operation_id = %work.id, "operations: could not finish a queue entry; it is taken over after its lease");
            }
        }
        // Kept: claimed again after another lease, by when the attempt under way has recorded,
        // or is taken over.
        Ok(Entry::Kept) => {}
        Err(e) => {
            tracing::warn!(error = %e, operation_id = %work.id, task = %work.task, "operations: an attempt could not be recorded; it is taken over after its lease");
        }
    }
}

async fn attempt_once(ops: &Operations, work: &Work, p: ProviderId) -> Result<Entry, OpStoreError> {
    let id = work.id.as_str();
    let Some(read) = ops.store.read(id).await? else {
        return Ok(Entry::Finished);
    };
    if model::status(&read.fields, p) != TargetStatus::Pending {
        return Ok(Entry::Finished);
    }
    let record = model::record(&read.fields, p);
    // A queue entry left behind by an attempt whose outcome is written (its replica died
    // between the two): the target is queued again already.
    if record.next_ms.is_some_and(|next| next > read.now_ms + 1000) {
        return Ok(Entry::Finished);
    }
    let lease = ops.deadline + LEASE_MARGIN;
    if read.under_way(Task::Target(p), lease) {
        return Ok(Entry::Kept);
    }
    if let Some(wait) = quota_turn(ops, p, &record, read.now_ms).await? {
        let mark = Mark::Unchanged(read.began(Task::Target(p)));
        wait_for_slot(ops, (id, p, mark), record, read.now_ms + wait, wait).await?;
        return Ok(Entry::Finished);
    }
    let (interrupted, began_ms) = match ops.store.begin(id, Task::Target(p), lease).await? {
        Begun::Go {
            interrupted,
            now_ms,
        } => (interrupted, now_ms),
        Begun::Busy => return Ok(Entry::Kept),
        Begun::Stop => return Ok(Entry::Finished),
    };
    let clock = StoreClock::at(began_ms);
    let meta = model::meta(&read.fields)?;
    let span = attempt_span(id, p, meta.trace.as_deref());
    let here = Here {
        ops,
        id,
        p,
        read: &read,
        clock,
        began_ms,
    };
    let interrupted = interrupted.map(|ms| clock.local(ms));
    let outcome = run_target(&here, &record, interrupted, &meta.request_id)
        .instrument(span)
        .await;
    let write = next_step(&here, record, outcome).await;
    let final_status = write.status;
    let done = ops.store.settle(id, Task::Target(p), write).await?;
    crate::metrics::operation_attempt(p, final_status);
    if done {
        if let Some(read) = ops.store.read(id).await? {
            let operation = model::operation(id, &read, &Default::default(), &ops.settings)?;
            crate::metrics::operation(operation.state.as_str());
        }
    }
    Ok(Entry::Finished)
}

/// Puts the target back until the quota's slot it took (`at`, in `wait` ms), unattempted.
async fn wait_for_slot(
    ops: &Operations,
    (id, p, mark): (&str, ProviderId, Mark),
    mut record: TargetRecord,
    at: u64,
    wait: u64,
) -> Result<(), OpStoreError> {
    (record.slot_ms, record.next_ms) = (Some(at), Some(at));
    let write = TargetWrite {
        status: TargetStatus::Pending.as_str(),
        record: record.to_json(),
        delay_ms: Some(wait),
        credentials: None,
        ttl_ms: ops.settings.ttl_s * 1000,
        mark,
    };
    ops.store.settle(id, Task::Target(p), write).await?;
    Ok(())
}

/// An attempt's span, continuing the accepting request's trace.
fn attempt_span(id: &str, p: ProviderId, trace: Option<&str>) -> tracing::Span {
    let span = crate::gateway_span!(
        "operation_attempt",
        otel.name = %format_args!("attempt {p}"),
        otel.kind = "internal",
        operation_id = id,
        provider = p.as_str(),
    );
    if let Some(value) = trace.and_then(|t| t.parse().ok()) {
        let mut headers = actix_web::http::header::HeaderMap::new();
        headers.insert(
            actix_web::http::header::HeaderName::from_static("traceparent"),
            value,
        );
        crate::telemetry::continue_trace(&span, &headers);
    }
    span
}

/// Sends to a provider with a quota (`max_per_minute`) are spaced at it, fleet-wide: an
/// attempt takes the quota's next free slot first, and waits for it (`Some(ms)`) unless it is
/// now or was taken already. The quota is the tool's, shared with synchronous requests, whose
/// own check still applies when the attempt sends.
async fn quota_turn(
    ops: &Operations,
    p: ProviderId,
    record: &TargetRecord,
    now_ms: u64,
) -> Result<Option<u64>, OpStoreError> {
    let Some((interval, scope)) = ops.quotas.get(&p) else {
        return Ok(None);
    };
    // A slot is used when it comes; one missed (Redis unreachable, the replica gone) is not
    // made up for later, or the targets that missed theirs would all be sent at once.
    if record
        .slot_ms
        .is_some_and(|slot| now_ms <= slot + SLOT_LATENESS_MS)
    {
        return Ok(None);
    }
    let wait = ops
        .store
        .next_slot(scope, *interval, Duration::ZERO)
        .await?;
    let wait = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
    // A slot due within a poll is as good as now.
    Ok((wait > POLL_EVERY.as_millis() as u64 / 5).then_some(wait))
}

/// What an attempt gave: the target's result, when its create was sent, whether it can be
/// looked up.
struct Outcome {
    result: TargetResult,
    sent: Option<SystemTime>,
    findable: bool,
    /// Nothing was sent because what the operation keeps does not open with this gateway's
    /// keys (a key missing from its configuration): attempted again, once the keys are right.
    unopened: bool,
}

/// The target an attempt is about, and what it read.
struct Here<'a> {
    ops: &'a Operations,
    id: &'a str,
    p: ProviderId,
    read: &'a Read,
    clock: StoreClock,
    /// When this attempt began (its in-flight mark).
    began_ms: u64,
}

/// Plans the target again from the stored request and runs it once, as a replay would.
async fn run_target(
    here: &Here<'_>,
    record: &TargetRecord,
    interrupted: Option<SystemTime>,
    request_id: &str,
) -> Outcome {
    let Here {
        ops,
        id,
        p,
        read,
        clock,
        ..
    } = *here;
    let (mut call, if_exists) = match plan(ops, id, p, read) {
        Ok(planned) => planned,
        Err(Unplanned { why, unopened }) => {
            if unopened {
                tracing::error!(operation_id = id, provider = %p, error = %why, "operations: a stored value does not open with this gateway's keys; nothing sent, attempted again later");
            }
            let error = ProviderError::new(ErrorKind::Internal, why);
            return Outcome {
                result: TargetResult::failed(TargetStatus::Failed, error),
                sent: None,
                findable: false,
                unopened,
            };
        }
    };
    let findable = call.plan.lookup.is_some();
    let sent = record.sent_ms.map(|ms| clock.local(ms));
    match life::resume(record.result.as_ref(), sent, interrupted, SystemTime::now()) {
        life::Resume::Settled(result) => {
            return Outcome {
                result: *result,
                sent: None,
                findable,
                unopened: false,
            }
        }
        life::Resume::Run(job) => call.job = job,
    }
    let request_id = RequestId::parse(request_id).unwrap_or_else(RequestId::generate);
    let deadline = Instant::now() + ops.deadline;
    let mut done = fanout::fan_out(vec![call], if_exists, deadline, &request_id).await;
    match done.remove(&p) {
        Some(finished) => Outcome {
            result: finished.result,
            sent: finished.sent,
            findable,
            unopened: false,
        },
        None => Outcome {
            result: fanout::panicked(),
            sent: None,
            findable,
            unopened: false,
        },
    }
}

/// Why a target could not be planned again.
struct Unplanned {
    why: String,
    /// A stored value did not open (a key this gateway lacks): not the request's fault.
    unopened: bool,
}

impl From<String> for Unplanned {
    fn from(why: String) -> Self {
        Self {
            why,
            unopened: false,
        }
    }
}

/// The call for target `p` from the stored request, with the credentials and create body the
/// gateway generated at accept time (the same password on every attempt).
fn plan(
    ops: &Operations,
    id: &str,
    p: ProviderId,
    read: &Read,
) -> Result<(Call, crate::domain::IfExists), Unplanned> {
    let open = |field: &str| -> Result<Option<Vec<u8>>, Unplanned> {
        read.fields
            .get(field)
            .map(|sealed| {
                ops.keys
                    .open(sealed, &place(id, field))
                    .map_err(|e| Unplanned {
                        why: format!("the operation's stored request cannot be read: {}", e.0),
                        unopened: true,
                    })
            })
            .transpose()
    };
    let body = open("body")?.ok_or_else(|| "the operation's request is gone".to_owned())?;
    let (mut call, if_exists) = ops.planner.call(&body, p)?;
    if ops.quotas.contains_key(&p) {
        // Sent once per attempt: sending again is another attempt, at another quota slot.
        call.retry = Some(crate::resilience::RetryPolicy {
            max_attempts: 1,
            ..call.target.retry.clone()
        });
    }
    if let Some(credentials) = open(&format!("c:{p}"))? {
        call.plan.credentials = Some(
            serde_json::from_slice(&credentials).map_err(|e| format!("stored credentials: {e}"))?,
        );
    }
    if let Some(create) = open(&format!("pb:{p}"))? {
        call.plan.create.body =
            Some(serde_json::from_slice(&create).map_err(|e| format!("stored create body: {e}"))?);
    }
    Ok((call, if_exists))
}

/// Whether a failed attempt may succeed later without change.
fn redrivable(result: &TargetResult) -> bool {
    let kind = result.error.as_ref().map(|e| e.kind);
    matches!(
        kind,
        Some(
            ErrorKind::Unavailable
                | ErrorKind::Timeout
                | ErrorKind::RateLimited
                | ErrorKind::CircuitOpen
        )
    ) || result.answered_unsure().is_some()
}

/// The backoff before attempt `tries + 1`: full jitter over 1 s × 2^(tries − 1), at most 10 min.
fn backoff(tries: u32) -> Duration {
    let ceiling = FIRST_BACKOFF
        .saturating_mul(2u32.saturating_pow(tries.saturating_sub(1).min(20)))
        .min(MOST_BACKOFF);
    ceiling.mul_f64(rand::random::<f64>())
}

/// What to write after an attempt: the target final, or pending again after its delay.
async fn next_step(here: &Here<'_>, mut record: TargetRecord, outcome: Outcome) -> TargetWrite {
    let Here {
        ops,
        id,
        p,
        read,
        clock,
        ..
    } = *here;
    let Outcome {
        mut result,
        sent,
        findable,
        unopened,
    } = outcome;
    record.attempts += result.attempts;
    record.tries += 1;
    if let Some(sent) = sent {
        record.sent_ms.get_or_insert(clock.stored(sent));
    }
    result.attempts = record.attempts;
    let now = read.now_ms;
    let again = match result.status {
        TargetStatus::Unknown => findable,
        TargetStatus::Failed => unopened || redrivable(&result),
        _ => false,
    };
    record.slot_ms = None;
    let delay = match again {
        true => schedule(here, &mut record, &mut result).await,
        false => None,
    };
    let credentials = result.credentials.take().map(|c| {
        let field = format!("c:{p}");
        let plain = serde_json::to_vec(&c).expect("credentials serialize");
        ops.keys.seal(&plain, &place(id, &field))
    });
    let status = if delay.is_some() {
        TargetStatus::Pending
    } else {
        result.status
    };
    record.next_ms = delay.map(|d| now + u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    record.updated_ms = now;
    record.result = Some(result.recorded());
    TargetWrite {
        status: status.as_str(),
        record: record.to_json(),
        delay_ms: delay.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        credentials,
        ttl_ms: ops.settings.ttl_s * 1000,
        mark: Mark::Own(here.began_ms),
    }
}

/// When to attempt the target again (`None`: it is final now, `operations.redrive_for_s`
/// spent, which `result` then says); a quota slot it took noted on `record`.
async fn schedule(
    here: &Here<'_>,
    record: &mut TargetRecord,
    result: &mut TargetResult,
) -> Option<Duration> {
    let Here { ops, p, read, .. } = *here;
    let now = read.now_ms;
    let (wait, slot) = delay_for(ops, p, record, result).await;
    let wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
    let created = read
        .fields
        .get("created")
        .and_then(|c| c.parse().ok())
        .unwrap_or(now);
    if now.saturating_add(wait_ms) > created + ops.settings.redrive_for_s * 1000 {
        *result = result.clone().with_note(&format!(
            "given up after operations.redrive_for_s ({} s)",
            ops.settings.redrive_for_s
        ));
        return None;
    }
    if slot {
        record.slot_ms = Some(now + wait_ms);
    }
    Some(wait)
}

/// How long until the next attempt: the gateway's own quota at its next free slot (then
/// `true`: the slot is taken); else the backoff, never before the tool's `Retry-After` (or a
/// settle wait).
async fn delay_for(
    ops: &Operations,
    p: ProviderId,
    record: &TargetRecord,
    result: &TargetResult,
) -> (Duration, bool) {
    let retry_after = result
        .error
        .as_ref()
        .and_then(|e| e.retry_after_s)
        .map_or(Duration::ZERO, Duration::from_secs);
    let own_quota = result
        .error
        .as_ref()
        .is_some_and(|e| e.kind == ErrorKind::RateLimited && e.provider_status.is_none());
    if let (true, Some((interval, scope))) = (own_quota, ops.quotas.get(&p)) {
        match ops.store.next_slot(scope, *interval, retry_after).await {
            Ok(wait) => return (wait, true),
            Err(e) => {
                tracing::warn!(error = %e, "operations: the quota's next slot cannot be taken; backing off")
            }
        }
    }
    (backoff(record.tries).max(retry_after), false)
}

/// The queue's depth per provider, for the metrics, every few seconds.
async fn depth(ops: Arc<Operations>) {
    while !ops.worker.stopping.load(Ordering::Relaxed) {
        if let Ok(depths) = ops.store.depth().await {
            for d in depths {
                crate::metrics::operations_pending(d.provider, d.pending, d.oldest_ms);
            }
        }
        tokio::time::sleep(DEPTH_EVERY).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_from_a_second_to_ten_minutes_with_full_jitter() {
        for _ in 0..200 {
            assert!(backoff(1) <= Duration::from_secs(1));
            assert!(backoff(4) <= Duration::from_secs(8));
            assert!(backoff(40) <= MOST_BACKOFF);
        }
        let spread: Vec<Duration> = (0..50).map(|_| backoff(10)).collect();
        assert!(
            spread.iter().any(|d| *d < Duration::from_secs(256)),
            "jittered below its ceiling"
        );
    }

    #[test]
    fn only_what_may_succeed_later_is_attempted_again() {
        let failed = |kind, status| {
            let mut e = ProviderError::new(kind, "x");
            e.provider_status = status;
            let mut r = TargetResult::failed(TargetStatus::Failed, e);
            r.attempts = 1;
            r
        };
        assert!(redrivable(&failed(ErrorKind::Unavailable, Some(503))));
        assert!(redrivable(&failed(ErrorKind::RateLimited, None)));
        assert!(redrivable(&failed(ErrorKind::CircuitOpen, None)));
        assert!(!redrivable(&failed(ErrorKind::Validation, Some(400))));
        assert!(!redrivable(&failed(ErrorKind::Conflict, Some(409))));
        assert!(!redrivable(&failed(ErrorKind::Unauthorized, Some(401))));
        assert!(!redrivable(&failed(ErrorKind::InvalidResponse, Some(200))));
    }
}
