//! One request under an `Idempotency-Key`: claim the key, answer what the record already
//! settled, run only what is left, record the outcome.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::catalog::ProviderId;
use crate::fanout::{self, Call};
use crate::idempotency::{Claim, Lease, Record, Store, StoreError};
use crate::provider_error::{ErrorKind, ProviderError};
use crate::request_id::RequestId;
use crate::results::{TargetResult, TargetStatus};

/// Why a keyed request was refused before anything was sent.
#[derive(Debug)]
pub enum Refusal {
    InFlight,
    Mismatch,
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

/// The result a record gives for a target that is not sent again.
fn replayed(previous: &TargetResult) -> TargetResult {
    let mut r = previous.clone();
    r.replayed = true;
    if r.status == TargetStatus::Unknown {
        if let Some(e) = r.error.as_mut() {
            e.message.push_str(
                " — not sent again under this Idempotency-Key: check whether the client exists in this provider; \
                 to create it there, send a request with a new key selecting only this target",
            );
        }
    }
    r
}

fn interrupted() -> TargetResult {
    let mut r = TargetResult::failed(
        TargetStatus::Unknown,
        ProviderError::new(
            ErrorKind::Internal,
            "an earlier request with this Idempotency-Key was interrupted before recording this target; \
             the client may have been created — not sent again: check in the provider, then use a new key \
             for the targets still missing",
        ),
    );
    r.replayed = true;
    r
}

/// What a record keeps of a result: everything but the password.
fn to_record(result: &TargetResult) -> TargetResult {
    let mut r = result.clone();
    r.credentials = r.credentials.as_ref().map(|c| c.redacted());
    r
}

/// Runs `calls` under the key. Targets the record already settled are answered from it; the
/// others are sent. The fan-out and the recording run in their own task, so a caller that hangs
/// up cannot leave the record unfinished.
pub async fn run(
    keyed: Keyed,
    calls: Vec<Call>,
    deadline: Instant,
    request_id: RequestId,
) -> Result<(uuid::Uuid, BTreeMap<ProviderId, TargetResult>), Refusal> {
    let holder = Lease::new();
    let claim = keyed
        .store
        .claim(
            &keyed.key,
            &keyed.fingerprint,
            &holder,
            keyed.lease,
            keyed.ttl,
        )
        .await
        .map_err(Refusal::Store)?;
    let mut settled = BTreeMap::new();
    let (operation_id, to_send) = match claim {
        Claim::InFlight => return Err(Refusal::InFlight),
        Claim::Mismatch => return Err(Refusal::Mismatch),
        Claim::New => (crate::ids::v7(), calls),
        Claim::Finished(record) => {
            let mut to_send = Vec::new();
            for call in calls {
                match record.results.get(&call.provider) {
                    Some(r) if r.status != TargetStatus::Failed => {
                        settled.insert(call.provider, replayed(r));
                    }
                    _ => to_send.push(call),
                }
            }
            (record.operation_id, to_send)
        }
        Claim::Abandoned(record) => {
            for call in &calls {
                let previous = record.as_ref().and_then(|r| r.results.get(&call.provider));
                let result = match previous {
                    Some(r) if r.status == TargetStatus::Created => replayed(r),
                    _ => interrupted(),
                };
                settled.insert(call.provider, result);
            }
            let id = record.map_or_else(crate::ids::v7, |r| r.operation_id);
            (id, Vec::new())
        }
    };
    let providers: Vec<ProviderId> = settled
        .keys()
        .copied()
        .chain(to_send.iter().map(|c| c.provider))
        .collect();
    let task = tokio::spawn(async move {
        let fresh = if to_send.is_empty() {
            BTreeMap::new()
        } else {
            fanout::fan_out(to_send, deadline, &request_id).await
        };
        let mut results = settled;
        results.extend(fresh);
        let record = Record {
            operation_id,
            results: results.iter().map(|(p, r)| (*p, to_record(r))).collect(),
        };
        match keyed
            .store
            .finish(&keyed.key, &holder, &record, keyed.ttl)
            .await
        {
            Ok(true) => {}
            Ok(false) => tracing::warn!(
                request_id = request_id.as_str(),
                "idempotency claim lost before recording (lease ran out)"
            ),
            Err(e) => tracing::error!(
                request_id = request_id.as_str(),
                error = %e,
                "could not record the outcome; a retry with this key will report the targets as unknown"
            ),
        }
        results
    });
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
