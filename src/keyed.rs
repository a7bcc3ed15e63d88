//! Every request with an `Idempotency-Key`, the first with its key as much as a replay: claim
//! the key, answer what an earlier request's record already settled, run only what is left
//! (settling the unanswered creates of an earlier request by a lookup first), record the
//! outcome.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use crate::catalog::ProviderId;
use crate::domain::IfExists;
use crate::fanout::life::{self, Resume};
use crate::fanout::{self, Call, Finished};
use crate::idempotency::{Claim, Lease, Record, Store, StoreError};
use crate::request_id::RequestId;
use crate::results::TargetResult;

/// Why a keyed request was refused before anything was sent.
#[derive(Debug)]
pub enum Refusal {
    InFlight,
    Mismatch,
    Full,
    Store(StoreError),
}

pub struct Keyed {
    pub store: Arc<dyn Store>,
    /// The scoped store key (caller and key hashed).
    pub key: String,
    pub fingerprint: String,
    /// How long the claim holds if this process stops before recording.
    pub lease: Duration,
    pub ttl: Duration,
}

/// How long a claim that failed is given to be given up before the 503.
const RELEASE_WITHIN: Duration = Duration::from_secs(2);

/// Times in records are on the store's clock (Redis's, shared by the replicas): this process's
/// clock plus `offset_ms`.
#[derive(Debug, Clone, Copy)]
pub struct StoreClock {
    offset_ms: i64,
}

impl StoreClock {
    fn of(store: &dyn Store) -> Self {
        Self {
            offset_ms: store.clock_offset_ms(),
        }
    }

    /// The store's clock from its time now (`store_now_ms`, unix ms) against this process's.
    pub fn at(store_now_ms: u64) -> Self {
        let local = i64::try_from(crate::ids::unix_ms()).unwrap_or(i64::MAX);
        Self {
            offset_ms: i64::try_from(store_now_ms).unwrap_or(i64::MAX) - local,
        }
    }

    /// `at` (this process's clock) on the store's.
    pub fn stored(self, at: SystemTime) -> u64 {
        let local = at
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        u64::try_from(local.saturating_add(self.offset_ms)).unwrap_or(0)
    }

    /// A time from a record, on this process's clock (a corrupt one cannot overflow the clock:
    /// it reads as now).
    pub fn local(self, ms: u64) -> SystemTime {
        let local = i64::try_from(ms)
            .unwrap_or(i64::MAX)
            .saturating_sub(self.offset_ms);
        u64::try_from(local)
            .ok()
            .and_then(|ms| UNIX_EPOCH.checked_add(Duration::from_millis(ms)))
            .unwrap_or_else(SystemTime::now)
    }
}

/// Runs `calls` under the key. Targets the record already settled are answered from it; the
/// others are sent, or, when an earlier request's create went unanswered, settled first. The
/// fan-out and the recording run in their own task, so a caller that hangs up cannot leave the
/// record unfinished.
pub async fn run(
    keyed: Keyed,
    calls: Vec<Call>,
    if_exists: IfExists,
    deadline: Instant,
    request_id: RequestId,
) -> Result<(uuid::Uuid, BTreeMap<ProviderId, TargetResult>), Refusal> {
    let holder = Lease::new();
    let claimed_at = Instant::now();
    let (operation_id, record, interrupted) = claim(&keyed, &holder).await?;
    let clock = StoreClock::of(keyed.store.as_ref());
    let resumed = resume_all(calls, record.as_ref(), interrupted, clock, claimed_at);
    let providers: Vec<ProviderId> = resumed
        .settled
        .keys()
        .copied()
        .chain(resumed.calls.iter().map(|c| c.provider))
        .collect();
    let task = tokio::spawn(run_and_record(
        keyed,
        holder,
        resumed,
        operation_id,
        if_exists,
        deadline,
        request_id,
    ));
    let results = task.await.unwrap_or_else(|e| {
        tracing::error!(error = %e, "keyed fan-out task failed");
        // A bug: still one result per target, none of them claiming to know.
        providers
            .into_iter()
            .map(|p| (p, fanout::panicked()))
            .collect()
    });
    Ok((operation_id, results))
}

/// Claims the key: the operation id, the earlier request's record (if any) and, if that
/// request was interrupted before recording, since when; or why the request is refused.
async fn claim(
    keyed: &Keyed,
    holder: &Lease,
) -> Result<(uuid::Uuid, Option<Record>, Option<SystemTime>), Refusal> {
    let claimed = keyed
        .store
        .claim(
            &keyed.key,
            &keyed.fingerprint,
            holder,
            keyed.lease,
            keyed.ttl,
        )
        .await;
    let claim = match claimed {
        Ok(claim) => claim,
        Err(e) => {
            give_up(keyed, holder).await;
            return Err(Refusal::Store(e));
        }
    };
    Ok(match claim {
        Claim::InFlight => return Err(Refusal::InFlight),
        Claim::Mismatch => return Err(Refusal::Mismatch),
        Claim::Full => return Err(Refusal::Full),
        Claim::New => (crate::ids::v7(), None, None),
        Claim::Finished(record) => (record.operation_id, Some(record), None),
        Claim::Abandoned(record, since) => {
            let id = record
                .as_ref()
                .map_or_else(crate::ids::v7, |r| r.operation_id);
            // Its start is when its targets may have been sent; unknown: from now on, which is
            // later than any of them, so waits at least as long.
            let clock = StoreClock::of(keyed.store.as_ref());
            let since = since.map_or_else(SystemTime::now, |ms| clock.local(ms));
            (id, record, Some(since))
        }
    })
}

/// A claim whose answer did not come may have landed after all (a slow store): nothing was sent
/// under it, so it is given up before answering, for a retry to run at once rather than find it
/// in flight.
async fn give_up(keyed: &Keyed, holder: &Lease) {
    let released =
        tokio::time::timeout(RELEASE_WITHIN, keyed.store.release(&keyed.key, holder)).await;
    if !matches!(released, Ok(Ok(()))) {
        tracing::warn!(
            "could not give up an unanswered idempotency claim; it expires with its lease"
        );
    }
}

/// The targets as the earlier request left them: those it settled, and the calls still to run
/// (each with the job [`life::resume`] gives it).
struct Resumed {
    settled: BTreeMap<ProviderId, TargetResult>,
    calls: Vec<Call>,
    /// When the earlier request sent each create.
    sent_ms: BTreeMap<ProviderId, u64>,
    /// When this request claimed the key (its lease counts from then).
    claimed_at: Instant,
}

fn resume_all(
    calls: Vec<Call>,
    record: Option<&Record>,
    interrupted: Option<SystemTime>,
    clock: StoreClock,
    claimed_at: Instant,
) -> Resumed {
    let mut resumed = Resumed {
        settled: BTreeMap::new(),
        calls: Vec::new(),
        sent_ms: BTreeMap::new(),
        claimed_at,
    };
    let now = SystemTime::now();
    for mut call in calls {
        let p = call.provider;
        let previous = record.and_then(|r| r.results.get(&p));
        let previous_sent = record.and_then(|r| r.sent_ms.get(&p).copied());
        if let Some(ms) = previous_sent {
            resumed.sent_ms.insert(p, ms);
        }
        let previous_sent = previous_sent.map(|ms| clock.local(ms));
        match life::resume(previous, previous_sent, interrupted, now) {
            Resume::Settled(result) => {
                resumed.settled.insert(p, *result);
            }
            Resume::Run(job) => {
                call.job = job;
                resumed.calls.push(call);
            }
        }
    }
    resumed
}

/// Runs what is left, then records every target's result under the key.
async fn run_and_record(
    keyed: Keyed,
    holder: Lease,
    resumed: Resumed,
    operation_id: uuid::Uuid,
    if_exists: IfExists,
    deadline: Instant,
    request_id: RequestId,
) -> BTreeMap<ProviderId, TargetResult> {
    let Resumed {
        settled,
        calls,
        mut sent_ms,
        claimed_at,
    } = resumed;
    let fresh = if calls.is_empty() {
        BTreeMap::new()
    } else {
        fanout::fan_out(calls, if_exists, deadline, &request_id).await
    };
    let clock = StoreClock::of(keyed.store.as_ref());
    let mut results = settled;
    for (p, Finished { result, sent, .. }) in fresh {
        if let Some(sent) = sent {
            sent_ms.insert(p, clock.stored(sent));
        }
        results.insert(p, result);
    }
    let record = Record {
        operation_id,
        results: results.iter().map(|(p, r)| (*p, r.recorded())).collect(),
        sent_ms,
    };
    save(keyed, holder, record, claimed_at, request_id).await;
    results
}

/// How long the answer waits for a record write that failed to be retried; later retries go on
/// in the background until the claim's lease ends.
const RECORD_INLINE: Duration = Duration::from_secs(2);

/// Writes the record; a failed write (Redis restarted: the connection is re-established on the
/// next command) is retried with backoff, within [`RECORD_INLINE`] before answering, then in the
/// background until the lease ends. Only then is it given up, loudly.
async fn save(
    keyed: Keyed,
    holder: Lease,
    record: Record,
    claimed_at: Instant,
    request_id: RequestId,
) {
    let lease_end = claimed_at + keyed.lease;
    let inline_end = lease_end.min(Instant::now() + RECORD_INLINE);
    let mut pause = Duration::from_millis(50);
    let mut retried = false;
    loop {
        let Some(e) = write(&keyed, &holder, &record, retried, &request_id).await else {
            return;
        };
        if Instant::now() + pause >= lease_end {
            return given_up(&e, &request_id);
        }
        tracing::warn!(
            request_id = request_id.as_str(),
            error = %e,
            retry_in_ms = pause.as_millis() as u64,
            "could not record the outcome; retrying"
        );
        retried = true;
        if Instant::now() + pause >= inline_end {
            // The answer leaves now; the record is still written before the lease ends.
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(1));
                    let Some(e) = write(&keyed, &holder, &record, true, &request_id).await else {
                        return;
                    };
                    if Instant::now() + pause >= lease_end {
                        return given_up(&e, &request_id);
                    }
                }
            });
            return;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(400));
    }
}

/// One write of the record: `None` when it is settled (written, or the claim was lost), else
/// why it failed.
async fn write(
    keyed: &Keyed,
    holder: &Lease,
    record: &Record,
    retried: bool,
    request_id: &RequestId,
) -> Option<StoreError> {
    match keyed
        .store
        .finish(&keyed.key, holder, record, keyed.ttl)
        .await
    {
        Ok(true) => {
            crate::metrics::record(if retried { "retried" } else { "recorded" });
            if retried {
                tracing::info!(
                    request_id = request_id.as_str(),
                    "outcome recorded after retries"
                );
            }
            None
        }
        Ok(false) => {
            crate::metrics::record("lost");
            tracing::warn!(
                request_id = request_id.as_str(),
                "idempotency claim lost before recording (lease ran out)"
            );
            None
        }
        Err(e) => Some(e),
    }
}

fn given_up(e: &StoreError, request_id: &RequestId) {
    crate::metrics::record("given_up");
    tracing::error!(
        request_id = request_id.as_str(),
        error = %e,
        "could not record the outcome within the claim's lease; a retry with this key will settle the targets by lookups"
    );
}
