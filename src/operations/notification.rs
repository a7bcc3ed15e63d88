//! An operation's completion event as the operation shows it (`notification`), and what the
//! store keeps of it between attempts (`t:notify`): the view, without the delivery
//! ([`super::webhooks`]).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::store::{rfc3339, Fields, Mark, TargetWrite};

/// Attempts shown on the operation at most (the latest); `attempt_count` counts them all.
pub const SHOWN: usize = 20;

/// The event's id (`webhook-id`): one event per operation, the same on every attempt.
pub fn event_id(operation_id: &str) -> String {
    format!("msg_{operation_id}")
}

/// What an attempt's answer was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryResult {
    /// A `2xx`: delivered.
    Delivered,
    /// `410 Gone`: the receiver wants no more; not retried.
    Gone,
    /// `429`: retried, not before its `Retry-After`.
    RateLimited,
    /// Another status: retried.
    HttpError,
    /// No answer within 15 s: retried.
    Timeout,
    /// No connection (refused, reset, DNS, TLS): retried.
    Unreachable,
    /// The request names a webhook the configuration no longer has: retried, in case it
    /// comes back.
    NotConfigured,
}

impl DeliveryResult {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryResult::Delivered => "delivered",
            DeliveryResult::Gone => "gone",
            DeliveryResult::RateLimited => "rate_limited",
            DeliveryResult::HttpError => "http_error",
            DeliveryResult::Timeout => "timeout",
            DeliveryResult::Unreachable => "unreachable",
            DeliveryResult::NotConfigured => "not_configured",
        }
    }
}

/// One delivery attempt, as the operation shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeliveryAttempt {
    /// When it was sent.
    #[schema(example = "2026-12-06T10:03:13Z")]
    pub at: String,
    pub result: DeliveryResult,
    /// The receiver's status, when it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// The receiver's `Retry-After` (seconds), when it gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_s: Option<u64>,
    /// How long the attempt took.
    pub duration_ms: u64,
}

/// Where the completion event stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NotificationStatus {
    /// The operation is not done: nothing to send yet.
    Waiting,
    /// Being delivered, or retried at `next_attempt_at`.
    Pending,
    /// A receiver answered `2xx`.
    Delivered,
    /// The receiver answered `410 Gone`: no more attempts.
    Stopped,
    /// No `2xx` within 24 h of the first attempt.
    Failed,
}

impl NotificationStatus {
    fn parse(s: &str) -> Self {
        match s {
            "delivered" => Self::Delivered,
            "stopped" => Self::Stopped,
            "failed" => Self::Failed,
            _ => Self::Pending,
        }
    }
}

/// The completion event of an operation, as the operation shows it (`notification`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Notification {
    /// The webhook the request named (`notify`).
    pub webhook: String,
    /// The event's `webhook-id`, the same on every attempt: receivers deduplicate on it.
    #[schema(example = "msg_01936f0e-6a8b-7c1d-9e2f-3a4b5c6d7e8f")]
    pub event_id: String,
    pub status: NotificationStatus,
    /// Attempts made.
    pub attempt_count: u32,
    /// The next attempt, while `pending` after a failed one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<String>,
    /// The latest attempts (at most 20), oldest first.
    pub attempts: Vec<DeliveryAttempt>,
}

/// What the notification keeps between attempts (`t:notify`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NotifyRecord {
    #[serde(rename = "a", default)]
    pub attempts: Vec<DeliveryAttempt>,
    #[serde(rename = "n", default)]
    pub count: u32,
    /// The first attempt (store clock, ms): the retry window's start.
    #[serde(rename = "f", default, skip_serializing_if = "Option::is_none")]
    pub first_ms: Option<u64>,
    #[serde(rename = "x", default, skip_serializing_if = "Option::is_none")]
    pub next_ms: Option<u64>,
}

pub fn notify_record(fields: &Fields) -> NotifyRecord {
    fields
        .get("t:notify")
        .and_then(|r| serde_json::from_str(r).ok())
        .unwrap_or_default()
}

/// The operation's `notification`, when it names a webhook.
pub fn shown(id: &str, fields: &Fields) -> Option<Notification> {
    let webhook = fields.get("w")?.clone();
    let record = notify_record(fields);
    let status = match fields.get("s:notify") {
        Some(s) => NotificationStatus::parse(s),
        None => NotificationStatus::Waiting,
    };
    Some(Notification {
        webhook,
        event_id: event_id(id),
        status,
        attempt_count: record.count,
        next_attempt_at: record
            .next_ms
            .filter(|_| status == NotificationStatus::Pending)
            .map(rfc3339),
        attempts: record.attempts,
    })
}

/// Why the event of an operation (its fields) cannot be sent again now, if it cannot: it names
/// no webhook, it is not done, or its event is being delivered.
pub fn not_resendable(fields: &Fields) -> Option<&'static str> {
    if !fields.contains_key("w") {
        return Some("the operation names no webhook (`notify`): it has no event to send");
    }
    match fields.get("s:notify").map(String::as_str) {
        None => Some("the operation is not done: its event is sent when it is"),
        Some("pending") => Some("its event is being delivered: see `notification`"),
        Some(_) => None,
    }
}

/// The write that queues the event again now, with a new retry window; the attempts made so
/// far are kept. `mark`: the notification's in-flight mark as read (none, as it is not pending).
pub fn resend(fields: &Fields, mark: Option<u64>, ttl_ms: u64) -> TargetWrite {
    let record = NotifyRecord {
        first_ms: None,
        next_ms: None,
        ..notify_record(fields)
    };
    TargetWrite {
        status: "pending",
        record: serde_json::to_string(&record).expect("a record serializes"),
        delay_ms: Some(0),
        credentials: None,
        ttl_ms,
        mark: Mark::Unchanged(mark),
    }
}
