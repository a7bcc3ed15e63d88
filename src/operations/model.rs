//! The operation as its caller reads it, and what the store keeps of it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::store::{record_field, rfc3339, status_field, Fields, OpStoreError, Read};
use super::OperationsSettings;
use crate::catalog::ProviderId;
use crate::results::{TargetResult, TargetStatus};
use crate::secret::Credentials;

/// Where an operation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OperationState {
    /// Nothing sent yet.
    Accepted,
    /// Some targets attempted, some still pending.
    Running,
    /// Every target `created` or `existing`.
    Succeeded,
    /// Done, some targets `created` or `existing`, others not.
    Partial,
    /// Done, no target `created` or `existing`.
    Failed,
    /// Cancelled: the targets not sent yet are `cancelled`.
    Cancelled,
}

impl OperationState {
    pub fn as_str(self) -> &'static str {
        match self {
            OperationState::Accepted => "accepted",
            OperationState::Running => "running",
            OperationState::Succeeded => "succeeded",
            OperationState::Partial => "partial",
            OperationState::Failed => "failed",
            OperationState::Cancelled => "cancelled",
        }
    }

    pub fn done(self) -> bool {
        !matches!(self, OperationState::Accepted | OperationState::Running)
    }
}

/// An asynchronous operation: `POST /clients` with `Prefer: respond-async`, finished by the
/// gateway.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Operation {
    #[schema(example = "01936f0e-6a8b-7c1d-9e2f-3a4b5c6d7e8f")]
    pub operation_id: String,
    pub state: OperationState,
    /// `true` once nothing more will happen (`succeeded`, `partial`, `failed`, `cancelled`).
    pub done: bool,
    #[schema(example = "2026-12-06T10:00:00Z")]
    pub created_at: String,
    #[schema(example = "2026-12-06T10:03:12Z")]
    pub updated_at: String,
    /// After this time the operation is forgotten (404): `operations.ttl_s` after it is done.
    #[schema(example = "2026-12-13T10:00:00Z")]
    pub expires_at: String,
    /// One result per target, as in the 207 (without the tools' bodies), with `pending` and
    /// `cancelled` besides.
    #[schema(value_type = BTreeMap<String, TargetResult>)]
    pub results: BTreeMap<ProviderId, TargetResult>,
    /// The completion event, when the request named a webhook (`notify`): each delivery
    /// attempt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notification: Option<super::notification::Notification>,
    /// Seconds until another read is worth it, while not done.
    #[serde(skip)]
    pub retry_after_s: Option<u64>,
}

/// What an operation keeps besides its targets.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Meta {
    /// The caller (`sub`) that created it: the only one who may read it.
    #[serde(rename = "c")]
    pub caller: String,
    /// The body's fingerprint (its `Idempotency-Key` names one body).
    #[serde(rename = "f")]
    pub fingerprint: String,
    /// The accepting request's `traceparent`.
    #[serde(rename = "t", default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<String>,
    #[serde(rename = "r", default)]
    pub request_id: String,
}

/// What a target keeps between attempts.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TargetRecord {
    /// The last attempt's result (as a record keeps it), none before the first.
    #[serde(rename = "r", default, skip_serializing_if = "Option::is_none")]
    pub result: Option<TargetResult>,
    /// Create requests sent, every attempt counted.
    #[serde(rename = "a", default)]
    pub attempts: u32,
    /// Attempts made (the backoff's exponent).
    #[serde(rename = "w", default)]
    pub tries: u32,
    /// When the create was first sent (store clock, ms).
    #[serde(rename = "s", default, skip_serializing_if = "Option::is_none")]
    pub sent_ms: Option<u64>,
    /// When it is attempted next (store clock, ms).
    #[serde(rename = "n", default, skip_serializing_if = "Option::is_none")]
    pub next_ms: Option<u64>,
    /// A slot of the provider's quota taken for the next attempt (store clock, ms): that
    /// attempt sends without taking another.
    #[serde(rename = "q", default, skip_serializing_if = "Option::is_none")]
    pub slot_ms: Option<u64>,
    #[serde(rename = "u", default)]
    pub updated_ms: u64,
}

impl TargetRecord {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a record serializes")
    }
}

pub fn meta(fields: &Fields) -> Result<Meta, OpStoreError> {
    fields
        .get("m")
        .and_then(|m| serde_json::from_str(m).ok())
        .ok_or_else(|| OpStoreError("an operation without its meta".into()))
}

pub fn targets(fields: &Fields) -> Vec<ProviderId> {
    fields
        .get("targets")
        .map(|t| t.split(',').filter_map(ProviderId::parse).collect())
        .unwrap_or_else(|| {
            ProviderId::ALL
                .iter()
                .copied()
                .filter(|p| fields.contains_key(&status_field(*p)))
                .collect()
        })
}

pub fn status(fields: &Fields, p: ProviderId) -> TargetStatus {
    fields
        .get(&status_field(p))
        .and_then(|s| TargetStatus::parse(s))
        .unwrap_or(TargetStatus::Pending)
}

pub fn record(fields: &Fields, p: ProviderId) -> TargetRecord {
    fields
        .get(&record_field(p))
        .and_then(|r| serde_json::from_str(r).ok())
        .unwrap_or_default()
}

fn number(fields: &Fields, field: &str) -> Option<u64> {
    fields.get(field).and_then(|v| v.parse().ok())
}

/// A target as its caller reads it.
fn shown_target(
    status: TargetStatus,
    record: &TargetRecord,
    credentials: Option<&Credentials>,
) -> TargetResult {
    let mut result = record
        .result
        .clone()
        .unwrap_or_else(|| TargetResult::new(status));
    result.status = status;
    result.attempts = record.attempts;
    if status == TargetStatus::Pending {
        result.next_attempt_at = record.next_ms.map(rfc3339);
    } else {
        result.next_attempt_at = None;
    }
    if let Some(c) = credentials {
        result.credentials = Some(c.clone());
    }
    result
}

/// The operation from what the store holds.
pub fn operation(
    id: &str,
    read: &Read,
    shown: &BTreeMap<ProviderId, Credentials>,
    settings: &OperationsSettings,
) -> Result<Operation, OpStoreError> {
    let fields = &read.fields;
    let created = number(fields, "created").unwrap_or(read.now_ms);
    let done_ms = number(fields, "done");
    let mut results = BTreeMap::new();
    let mut updated = created;
    let mut next = None::<u64>;
    for p in targets(fields) {
        let status = status(fields, p);
        let record = record(fields, p);
        updated = updated.max(record.updated_ms);
        if status == TargetStatus::Pending {
            let at = record.next_ms.unwrap_or(read.now_ms);
            next = Some(next.map_or(at, |n| n.min(at)));
        }
        results.insert(p, shown_target(status, &record, shown.get(&p)));
    }
    let started = fields
        .keys()
        .any(|k| k.starts_with("f:") && k != "f:notify");
    let mut state = state_of(&results, fields.contains_key("x"));
    if state == OperationState::Accepted && started {
        // An attempt is under way: something may be on its way to a tool.
        state = OperationState::Running;
    }
    let expires = match done_ms {
        Some(done) => done + settings.ttl_s * 1000,
        None => created + (settings.redrive_for_s + settings.ttl_s) * 1000,
    };
    let retry_after_s = (!state.done()).then(|| {
        let wait = next.map_or(1, |n| n.saturating_sub(read.now_ms).div_ceil(1000));
        wait.clamp(1, 60)
    });
    Ok(Operation {
        operation_id: id.to_owned(),
        state,
        done: state.done(),
        created_at: rfc3339(created),
        updated_at: rfc3339(done_ms.unwrap_or(updated).max(updated)),
        expires_at: rfc3339(expires),
        results,
        notification: super::notification::shown(id, fields),
        retry_after_s,
    })
}

/// Where the operation stands, from its targets.
pub fn state_of(results: &BTreeMap<ProviderId, TargetResult>, cancelled: bool) -> OperationState {
    let statuses: Vec<TargetStatus> = results.values().map(|r| r.status).collect();
    if statuses.contains(&TargetStatus::Pending) {
        let untouched = results
            .values()
            .all(|r| r.status == TargetStatus::Pending && r.attempts == 0 && r.error.is_none());
        return if untouched {
            OperationState::Accepted
        } else {
            OperationState::Running
        };
    }
    if cancelled && statuses.contains(&TargetStatus::Cancelled) {
        return OperationState::Cancelled;
    }
    let ok = |s: &TargetStatus| matches!(s, TargetStatus::Created | TargetStatus::Existing);
    match statuses.iter().filter(|s| ok(s)).count() {
        n if n == statuses.len() => OperationState::Succeeded,
        0 => OperationState::Failed,
        _ => OperationState::Partial,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn results(statuses: &[(ProviderId, TargetStatus, u32)]) -> BTreeMap<ProviderId, TargetResult> {
        statuses
            .iter()
            .map(|(p, s, attempts)| {
                let mut r = TargetResult::new(*s);
                r.attempts = *attempts;
                (*p, r)
            })
            .collect()
    }

    #[test]
    fn the_state_follows_the_targets() {
        use ProviderId::*;
        use TargetStatus::*;
        let state = |s: &[(ProviderId, TargetStatus, u32)], x| state_of(&results(s), x);
        assert_eq!(
            state(&[(Lucca, Pending, 0), (Clockify, Pending, 0)], false),
            OperationState::Accepted
        );
        assert_eq!(
            state(&[(Lucca, Created, 1), (Clockify, Pending, 0)], false),
            OperationState::Running
        );
        assert_eq!(
            state(&[(Lucca, Pending, 2)], false),
            OperationState::Running
        );
        assert_eq!(
            state(&[(Lucca, Created, 1), (Clockify, Existing, 0)], false),
            OperationState::Succeeded
        );
        assert_eq!(
            state(&[(Lucca, Created, 1), (Clockify, Failed, 1)], false),
            OperationState::Partial
        );
        assert_eq!(
            state(&[(Lucca, Failed, 1), (Clockify, Unknown, 1)], false),
            OperationState::Failed
        );
        assert_eq!(
            state(&[(Lucca, Created, 1), (Clockify, Cancelled, 0)], true),
            OperationState::Cancelled
        );
        assert!(!OperationState::Running.done() && OperationState::Cancelled.done());
    }
}
