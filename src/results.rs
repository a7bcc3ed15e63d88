//! The 207 Multi-Status body: one result per selected target.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::provider_error::ProviderError;
use crate::secret::Credentials;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TargetStatus {
    /// The provider created the client (`reconciled`: found there after an unanswered create).
    Created,
    /// The client was already there (`if_exists: adopt`): adopted, nothing created.
    Existing,
    /// The provider said no, or was never reached: nothing was created.
    Failed,
    /// The request may have reached the provider but no answer came (timeout, connection cut):
    /// the client may exist. Check in the provider before sending it again.
    Unknown,
    /// Dry run: what would be sent.
    Planned,
    /// An operation's target not finished yet: waiting for its turn, a quota, a backoff, or an
    /// unknown create to settle (asynchronous operations only).
    Pending,
    /// An operation's target cancelled before it was sent (asynchronous operations only).
    Cancelled,
}

/// `succeeded`: every target created or existing; `failed`: none; `partial`: anything else;
/// `planned`: a dry run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Succeeded,
    Partial,
    Failed,
    Planned,
}

/// The request a target would send (dry run), secrets redacted.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PlannedRequest {
    #[schema(example = "POST")]
    pub method: String,
    #[schema(
        example = "https://api.clockify.me/api/v1/workspaces/64a687e29ae1f428e7ebe303/clients"
    )]
    pub url: String,
    /// Headers that would be sent; credentials show as `[redacted]`.
    pub headers: BTreeMap<String, String>,
    /// The JSON body that would be sent (none for a `GET`); passwords show as `[redacted]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub body: Option<Value>,
}

/// What happened at one provider.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TargetResult {
    pub status: TargetStatus,
    /// The provider's HTTP status, when it answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_status: Option<u16>,
    /// The provider-assigned id, as a string (ChatDash assigns none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_client_id: Option<String>,
    /// A password the provider or the gateway generated: shown in this answer only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credentials: Option<Credentials>,
    /// HTTP requests made to the provider for this target.
    pub attempts: u32,
    pub duration_ms: u64,
    /// Taken from an earlier request with the same `Idempotency-Key`, not sent again.
    pub replayed: bool,
    /// A create that went unanswered, then found at the provider by a lookup (in this request
    /// or in a replay with the same `Idempotency-Key`).
    #[serde(default)]
    pub reconciled: bool,
    /// For a client a lookup found (`existing`, `reconciled`): how many clients the tool holds
    /// with its natural key. More than one: the tool holds duplicates, and the oldest is the one
    /// answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1)]
    pub matches: Option<u32>,
    /// The provider's success body, parsed (secrets redacted); for `existing` or `reconciled`,
    /// the record the lookup found.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub response: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ProviderError>,
    /// Dry run only: the request that would be sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<PlannedRequest>,
    /// A `pending` target of an operation: when it is attempted next (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "2026-12-06T10:05:00Z")]
    pub next_attempt_at: Option<String>,
    /// Dry run only: the first request of the lookup that finds the client at the provider
    /// (to adopt it, to settle an unanswered create, or to read an id the create does not
    /// answer). Later pages follow the provider's paging.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lookup: Option<Vec<PlannedRequest>>,
}

/// The longest provider-assigned id believed (ids go into every answer and record).
pub const MAX_PROVIDER_ID: usize = 255;

/// What is wrong with an id a provider assigned, if anything: it is shown to callers and stored
/// in records, so it is bounded and holds no control or bidirectional-text character.
pub fn provider_id_problem(id: &str) -> Option<String> {
    let bidi = |c: char| matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}');
    if id.is_empty() {
        Some("an empty id".into())
    } else if id.len() > MAX_PROVIDER_ID {
        Some(format!(
            "an id of {} bytes (at most {MAX_PROVIDER_ID})",
            id.len()
        ))
    } else if id.chars().any(|c| c.is_control() || bidi(c)) {
        Some("an id with control or bidirectional-text characters".into())
    } else {
        None
    }
}

/// Longest error message a record keeps.
const MAX_RECORDED_MESSAGE: usize = 512;

impl TargetResult {
    /// What a record keeps of a result (an idempotency record, an operation): small, and no
    /// password. The provider's bodies (`response`, `provider_error`) are not kept — a record
    /// answers the status, the id, the error kind and message, not the bodies.
    pub fn recorded(&self) -> TargetResult {
        let mut r = self.clone();
        r.credentials = r.credentials.as_ref().map(|c| c.redacted());
        r.response = None;
        if let Some(e) = r.error.as_mut() {
            e.provider_error = None;
            if e.message.len() > MAX_RECORDED_MESSAGE {
                let mut end = MAX_RECORDED_MESSAGE;
                while !e.message.is_char_boundary(end) {
                    end -= 1;
                }
                e.message.truncate(end);
                e.message.push('…');
            }
        }
        r
    }

    pub fn new(status: TargetStatus) -> Self {
        Self {
            status,
            provider_status: None,
            provider_client_id: None,
            credentials: None,
            attempts: 0,
            duration_ms: 0,
            replayed: false,
            reconciled: false,
            response: None,
            error: None,
            request: None,
            lookup: None,
            matches: None,
            next_attempt_at: None,
        }
    }

    pub fn failed(status: TargetStatus, error: ProviderError) -> Self {
        Self {
            provider_status: error.provider_status,
            error: Some(error),
            ..Self::new(status)
        }
    }

    /// A client found at the provider by a lookup (its id, the record listed, how many had its
    /// key), as `status`.
    pub fn found(status: TargetStatus, id: String, record: Value, matches: u32) -> Self {
        Self {
            provider_client_id: Some(id),
            response: Some(record),
            matches: Some(matches),
            ..Self::new(status)
        }
    }

    /// An unanswered (or 5xx-answered) create whose client a lookup found: `created`,
    /// `reconciled`.
    pub fn reconciled(id: String, record: Value, matches: u32) -> Self {
        Self {
            reconciled: true,
            ..Self::found(TargetStatus::Created, id, record, matches)
        }
    }

    /// The same result, its error's message completed with `note`.
    pub fn with_note(mut self, note: &str) -> Self {
        if let Some(e) = self.error.as_mut() {
            e.message = format!("{}; {note}", e.message);
        }
        self
    }

    /// A 5xx answer no lookup could settle (`why`): `unknown`, the client may exist.
    pub fn may_exist(mut self, why: &str) -> Self {
        self.status = TargetStatus::Unknown;
        self.with_note(&format!(
            "the client may have been created ({why}): not sent again"
        ))
    }

    /// Whether the provider refused it as a duplicate.
    pub fn is_conflict(&self) -> bool {
        self.error
            .as_ref()
            .is_some_and(|e| e.kind == crate::provider_error::ErrorKind::Conflict)
    }

    /// The HTTP status of an answer that failed the target without proving that nothing was
    /// created — neither a success nor a refusal (4xx): a 5xx, a 3xx, an unasked 1xx — if it is
    /// one.
    pub fn answered_unsure(&self) -> Option<u16> {
        // A create never sent was never answered, whatever answered instead (a token endpoint).
        if self.status != TargetStatus::Failed || self.attempts == 0 {
            return None;
        }
        self.provider_status
            .filter(|s| !(200..300).contains(s) && !(400..500).contains(s))
    }
}

impl TargetStatus {
    /// Whether nothing more will happen to the target (an operation's target: anything but
    /// `pending`).
    pub fn is_final(self) -> bool {
        self != TargetStatus::Pending
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            TargetStatus::Created,
            TargetStatus::Existing,
            TargetStatus::Failed,
            TargetStatus::Unknown,
            TargetStatus::Planned,
            TargetStatus::Pending,
            TargetStatus::Cancelled,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TargetStatus::Created => "created",
            TargetStatus::Existing => "existing",
            TargetStatus::Failed => "failed",
            TargetStatus::Unknown => "unknown",
            TargetStatus::Planned => "planned",
            TargetStatus::Pending => "pending",
            TargetStatus::Cancelled => "cancelled",
        }
    }
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Partial => "partial",
            Outcome::Failed => "failed",
            Outcome::Planned => "planned",
        }
    }

    pub fn of<'a>(results: impl IntoIterator<Item = &'a TargetResult>) -> Self {
        let (mut created, mut other, mut planned) = (0, 0, 0);
        for r in results {
            match r.status {
                TargetStatus::Created | TargetStatus::Existing => created += 1,
                TargetStatus::Planned => planned += 1,
                TargetStatus::Failed
                | TargetStatus::Unknown
                | TargetStatus::Pending
                | TargetStatus::Cancelled => other += 1,
            }
        }
        match (created, other, planned) {
            (_, _, p) if p > 0 => Outcome::Planned,
            (c, 0, _) if c > 0 => Outcome::Succeeded,
            (0, _, _) => Outcome::Failed,
            _ => Outcome::Partial,
        }
    }
}
