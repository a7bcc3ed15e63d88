//! Telling the caller: when an operation that names a webhook (`"notify"`) is done, its
//! completion event `client.operation.completed` is delivered per the Standard Webhooks
//! specification — `webhook-id` stable across retries, `webhook-timestamp`, `webhook-signature`
//! (`v1,` HMAC-SHA256 over `{id}.{timestamp}.{body}`, one per configured secret).
//!
//! The delivery is a task of the operations' durable queue (queued in the same step that makes
//! the operation done), so a replica's death never loses it: another replica takes it over.
//! One attempt is in flight per operation (the task's in-flight mark). An attempt ends within
//! [`TIMEOUT`]; a `2xx` delivers, a `410` stops; anything else is retried on a backoff
//! ([`next_delay`]) that honours `Retry-After`, for up to [`RETRY_FOR`] from the first attempt.
//! The event's body is built from what the done operation holds, so every attempt sends the
//! same bytes.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use ring::hmac;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::model;
use super::notification::{event_id, notify_record, DeliveryAttempt, DeliveryResult, SHOWN};
use super::store::{rfc3339, Begun, Entry, Mark, OpStoreError, Read, TargetWrite, Task, Work};
use super::Operations;
use crate::egress::Egress;

/// An attempt ends after this long, answered or not.
pub const TIMEOUT: Duration = Duration::from_secs(15);
/// How long after its first attempt an event is retried.
pub const RETRY_FOR: Duration = Duration::from_secs(24 * 3600);
/// The first retry's backoff, and the longest.
const FIRST_BACKOFF: Duration = Duration::from_secs(5);
const MOST_BACKOFF: Duration = Duration::from_secs(3600);
/// An attempt begun this long ago and not recorded is taken for dead (its replica gone).
const LEASE: Duration = Duration::from_secs(TIMEOUT.as_secs() + 15);
/// Secrets of one webhook at most (a rotation needs two).
const MOST_SECRETS: usize = 8;
/// The event's type.
pub const EVENT_TYPE: &str = "client.operation.completed";

/// `[operations.webhooks.<name>]`: a receiver of completion events, named by a request's
/// `"notify"`.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// Where events are sent (`POST`): `https://`, or `http://` inside the cluster, without
    /// credentials in it (the signature authenticates the gateway). Sent through the gateway's
    /// egress trust and proxy; redirects are not followed.
    #[schema(value_type = String, format = "uri", example = "https://crm.internal.example/hooks/clients")]
    pub url: url::Url,
    /// A file holding the webhook's Standard Webhooks secret: `whsec_` then the base64 of 24–64
    /// random bytes. Several lines: each signs (a rotation: add the new line, move the
    /// receiver, remove the old).
    #[schema(value_type = Option<String>)]
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// The secret itself (lines as in `secret_file`): never shown.
    #[schema(value_type = Option<String>, format = Password, default = json!(null))]
    #[serde(default, serialize_with = "crate::secret::serialize_redacted")]
    pub secret: Option<SecretString>,
    /// `true`: a password a tool or the gateway generated is in the event, and never in a
    /// `GET` (unless the event could not be delivered); `false`: it is shown once by the first
    /// `GET` after its target is created, and redacted in the event.
    #[serde(default)]
    #[schema(default = false)]
    pub include_credentials: bool,
}

/// One configured webhook, its secrets read.
struct Webhook {
    url: url::Url,
    keys: Vec<hmac::Key>,
    include_credentials: bool,
}

impl fmt::Debug for Webhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Webhook")
            .field("url", &self.url.origin().ascii_serialization())
            .field("secrets", &self.keys.len())
            .field("include_credentials", &self.include_credentials)
            .finish()
    }
}

/// The configured webhooks and the client that delivers to them.
pub struct Webhooks {
    hooks: BTreeMap<String, Webhook>,
    client: reqwest::Client,
}

impl fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.hooks.iter()).finish()
    }
}

/// Whether `name` may name a webhook: it becomes a metric's label value.
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.len() <= 64
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// The secrets of webhook `name` from their text (one per line); errors name the line, never
/// its value.
fn signing_keys(name: &str, text: &str) -> Result<Vec<hmac::Key>, String> {
    let at = format!("operations.webhooks.{name}.secret");
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if lines.is_empty() {
        return Err(format!("{at}: no secret (one `whsec_…` per line)"));
    }
    if lines.len() > MOST_SECRETS {
        return Err(format!("{at}: at most {MOST_SECRETS} secrets"));
    }
    lines
        .iter()
        .enumerate()
        .map(|(i, line)| {
            let bad = |why: &str| format!("{at}: line {} {why}", i + 1);
            let encoded = line
                .strip_prefix("whsec_")
                .ok_or_else(|| bad("does not start with `whsec_`"))?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map_err(|_| bad("is not `whsec_` then base64"))?;
            if !(24..=64).contains(&bytes.len()) {
                return Err(bad(&format!(
                    "holds {} bytes: a secret is 24 to 64 random bytes",
                    bytes.len()
                )));
            }
            Ok(hmac::Key::new(hmac::HMAC_SHA256, &bytes))
        })
        .collect()
}

impl Webhooks {
    /// The webhooks of the configuration, their secrets read; an error names the key.
    pub fn from_settings(
        settings: &BTreeMap<String, WebhookSettings>,
        egress: &Egress,
    ) -> Result<Self, String> {
        let mut hooks = BTreeMap::new();
        for (name, hook) in settings {
            if !valid_name(name) {
                return Err(format!("operations.webhooks.{name}: a webhook's name is 1–64 lowercase letters, digits, `-` and `_`, starting with a letter or digit"));
            }
            if !matches!(hook.url.scheme(), "https" | "http") {
                return Err(format!(
                    "operations.webhooks.{name}.url: an http:// or https:// URL"
                ));
            }
            if !hook.url.username().is_empty() || hook.url.password().is_some() {
                return Err(format!("operations.webhooks.{name}.url: credentials in the URL are refused (they would travel in configuration and logs); the receiver authenticates the gateway by the signature"));
            }
            let mut secret = hook.secret.clone();
            crate::secret::read_secret_file(
                &format!("operations.webhooks.{name}.secret"),
                &mut secret,
                &hook.secret_file,
            )
            .map_err(|e| e.to_string())?;
            let Some(secret) = secret else {
                return Err(format!("operations.webhooks.{name}.secret_file (or .secret) is required: the Standard Webhooks secret events are signed with"));
            };
            let keys = signing_keys(name, secret.expose_secret())?;
            hooks.insert(
                name.clone(),
                Webhook {
                    url: hook.url.clone(),
                    keys,
                    include_credentials: hook.include_credentials,
                },
            );
        }
        let client = egress
            .client()?
            .timeout(TIMEOUT)
            .connect_timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("clients-gateway/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("operations.webhooks: {e}"))?;
        Ok(Self { hooks, client })
    }

    pub fn knows(&self, name: &str) -> bool {
        self.hooks.contains_key(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.hooks.keys().map(String::as_str)
    }

    /// Whether webhook `name`'s events carry generated passwords.
    pub fn includes_credentials(&self, name: &str) -> bool {
        self.hooks.get(name).is_some_and(|h| h.include_credentials)
    }
}

/// The `webhook-signature` header: `v1,<base64 HMAC-SHA256 of {id}.{timestamp}.{body}>` per
/// key, space-separated.
pub fn signature(keys: &[hmac::Key], id: &str, timestamp: u64, body: &[u8]) -> String {
    let signed = [
        id.as_bytes(),
        b".",
        timestamp.to_string().as_bytes(),
        b".",
        body,
    ]
    .concat();
    keys.iter()
        .map(|key| {
            let tag = hmac::sign(key, &signed);
            format!(
                "v1,{}",
                base64::engine::general_purpose::STANDARD.encode(tag.as_ref())
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The backoff before retry `n` (1 for the first retry): between half and all of
/// `5 s × 2^(n-1)`, at most 1 h — never earlier than `retry_after`.
pub fn next_delay(n: u32, retry_after: Option<Duration>) -> Duration {
    let ceiling = FIRST_BACKOFF
        .saturating_mul(2u32.saturating_pow(n.saturating_sub(1).min(20)))
        .min(MOST_BACKOFF);
    let backoff = ceiling / 2 + (ceiling / 2).mul_f64(rand::random::<f64>());
    backoff.max(retry_after.unwrap_or_default())
}

/// The event's body: `{type, timestamp, data: the operation}`, from the done operation (the
/// same bytes on every attempt).
fn event_body(
    ops: &Operations,
    id: &str,
    read: &Read,
    with_credentials: bool,
) -> Result<Vec<u8>, OpStoreError> {
    let mut shown = ops.credentials(id, read);
    if !with_credentials {
        shown.values_mut().for_each(|c| *c = c.redacted());
    }
    let mut operation = model::operation(id, read, &shown, &ops.settings)?;
    operation.notification = None;
    let done = read
        .fields
        .get("done")
        .and_then(|d| d.parse().ok())
        .unwrap_or(read.now_ms);
    let event = serde_json::json!({
        "type": EVENT_TYPE,
        "timestamp": rfc3339(done),
        "data": operation,
    });
    Ok(serde_json::to_vec(&event).expect("an event serializes"))
}

/// What one attempt gave.
struct Sent {
    result: DeliveryResult,
    status: Option<u16>,
    retry_after: Option<Duration>,
}

/// Sends the event once.
async fn send(hooks: &Webhooks, name: &str, id: &str, body: Vec<u8>) -> Sent {
    let Some(hook) = hooks.hooks.get(name) else {
        return Sent {
            result: DeliveryResult::NotConfigured,
            status: None,
            retry_after: None,
        };
    };
    let event = event_id(id);
    let timestamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let signature = signature(&hook.keys, &event, timestamp, &body);
    let answer = hooks
        .client
        .post(hook.url.clone())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("webhook-id", &event)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(body)
        .send()
        .await;
    match answer {
        Ok(answer) => {
            let status = answer.status().as_u16();
            let result = match status {
                200..=299 => DeliveryResult::Delivered,
                410 => DeliveryResult::Gone,
                429 => DeliveryResult::RateLimited,
                _ => DeliveryResult::HttpError,
            };
            Sent {
                result,
                status: Some(status),
                retry_after: crate::outbound::exchange::retry_after(answer.headers()),
            }
        }
        Err(e) => Sent {
            result: match e.is_timeout() {
                true => DeliveryResult::Timeout,
                false => DeliveryResult::Unreachable,
            },
            status: None,
            retry_after: None,
        },
    }
}

/// Delivers an operation's completion event once; retried later unless delivered, stopped or
/// out of time.
pub(super) async fn deliver(ops: &Operations, work: &Work) -> Result<Entry, OpStoreError> {
    let id = work.id.as_str();
    let Some(read) = ops.store.read(id).await? else {
        return Ok(Entry::Finished);
    };
    if read.fields.get("s:notify").map(String::as_str) != Some("pending") {
        return Ok(Entry::Finished);
    }
    let mut record = notify_record(&read.fields);
    // An entry left behind by an attempt whose outcome is written: queued again already.
    if record.next_ms.is_some_and(|next| next > read.now_ms + 1000) {
        return Ok(Entry::Finished);
    }
    if read.under_way(Task::Notify, LEASE) {
        return Ok(Entry::Kept);
    }
    let began_ms = match ops.store.begin(id, Task::Notify, LEASE).await? {
        Begun::Go { now_ms, .. } => now_ms,
        Begun::Busy => return Ok(Entry::Kept),
        Begun::Stop => return Ok(Entry::Finished),
    };
    let name = read.fields.get("w").cloned().unwrap_or_default();
    let with_credentials = ops.webhooks.includes_credentials(&name);
    // A store that cannot give the operation back: the entry is taken over after its lease.
    let body = event_body(ops, id, &read, with_credentials)?;
    let started = std::time::Instant::now();
    let sent = send(&ops.webhooks, &name, id, body).await;
    let elapsed = started.elapsed();
    crate::metrics::webhook_delivery(&name, ops.webhooks.names(), sent.result.as_str());
    log(id, &name, &sent);
    record.attempts.push(DeliveryAttempt {
        at: rfc3339(began_ms),
        result: sent.result,
        http_status: sent.status,
        retry_after_s: sent.retry_after.map(|d| d.as_secs()),
        duration_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
    });
    if record.attempts.len() > SHOWN {
        record.attempts.remove(0);
    }
    record.count += 1;
    let first = *record.first_ms.get_or_insert(began_ms);
    let (status, delay) = outcome(&sent, record.count, first, began_ms + elapsed_ms(elapsed));
    record.next_ms = delay.map(|d| began_ms + elapsed_ms(elapsed) + elapsed_ms(d));
    let write = TargetWrite {
        status,
        record: serde_json::to_string(&record).expect("a record serializes"),
        delay_ms: delay.map(elapsed_ms),
        credentials: None,
        ttl_ms: ops.settings.ttl_s * 1000,
        mark: Mark::Own(began_ms),
    };
    record_outcome(ops, id, write, LEASE.saturating_sub(elapsed)).await?;
    if status == "delivered" && with_credentials {
        ops.forget_credentials(id, &read).await;
    }
    Ok(Entry::Finished)
}

/// Writes an attempt's outcome, trying again for most of what is left of its lease: an event
/// sent but not recorded (Redis failing over, say) would be sent again once the lease ran out.
async fn record_outcome(
    ops: &Operations,
    id: &str,
    write: TargetWrite,
    left: Duration,
) -> Result<(), OpStoreError> {
    let until = std::time::Instant::now() + left.saturating_sub(Duration::from_secs(2));
    loop {
        match ops.store.settle(id, Task::Notify, write.clone()).await {
            Ok(_) => return Ok(()),
            Err(_) if std::time::Instant::now() < until => {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

fn elapsed_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The notification's status after an attempt, and when it is attempted again.
fn outcome(
    sent: &Sent,
    count: u32,
    first_ms: u64,
    now_ms: u64,
) -> (&'static str, Option<Duration>) {
    match sent.result {
        DeliveryResult::Delivered => ("delivered", None),
        DeliveryResult::Gone => ("stopped", None),
        _ => {
            let delay = next_delay(count, sent.retry_after);
            let until = first_ms + elapsed_ms(RETRY_FOR);
            if now_ms + elapsed_ms(delay) > until {
                ("failed", None)
            } else {
                ("pending", Some(delay))
            }
        }
    }
}

/// One line per attempt: the webhook's name and the answer, never its URL or secret.
fn log(id: &str, name: &str, sent: &Sent) {
    let result = sent.result.as_str();
    match sent.result {
        DeliveryResult::Delivered => {
            tracing::info!(
                operation_id = id,
                webhook = name,
                result,
                status = sent.status,
                "webhooks: completion event delivered"
            );
        }
        _ => {
            tracing::warn!(
                operation_id = id,
                webhook = name,
                result,
                status = sent.status,
                "webhooks: completion event not delivered"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_whsec_base64_of_24_to_64_bytes_and_errors_never_show_them() {
        let ok = format!(
            "whsec_{}\n\n  whsec_{}  \n",
            base64::engine::general_purpose::STANDARD.encode([7u8; 24]),
            base64::engine::general_purpose::STANDARD.encode([9u8; 64])
        );
        assert_eq!(signing_keys("crm", &ok).unwrap().len(), 2);
        for bad in [
            "",
            "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0",
            "whsec_not base64!",
            "whsec_c2hvcnQ=",
        ] {
            let e = signing_keys("crm", bad).expect_err(bad);
            assert!(e.starts_with("operations.webhooks.crm.secret"), "{e}");
            if !bad.is_empty() {
                assert!(!e.contains(bad.trim_start_matches("whsec_")), "{e}");
            }
        }
    }

    #[test]
    fn the_signature_is_the_specifications_example() {
        // The Standard Webhooks specification's own example.
        let secret = base64::engine::general_purpose::STANDARD
            .decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .unwrap();
        let key = hmac::Key::new(hmac::HMAC_SHA256, &secret);
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            signature(&[key], "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn retries_back_off_and_honour_retry_after() {
        for n in 1..=12 {
            let ceiling = FIRST_BACKOFF * 2u32.pow(n - 1);
            let d = next_delay(n, None);
            assert!(d >= ceiling.min(MOST_BACKOFF) / 2 && d <= ceiling.min(MOST_BACKOFF));
        }
        assert!(next_delay(1, Some(Duration::from_secs(120))) >= Duration::from_secs(120));
        let sent = |result| Sent {
            result,
            status: None,
            retry_after: None,
        };
        assert_eq!(
            outcome(&sent(DeliveryResult::Gone), 1, 0, 0),
            ("stopped", None)
        );
        assert_eq!(
            outcome(&sent(DeliveryResult::Delivered), 1, 0, 0).0,
            "delivered"
        );
        assert_eq!(
            outcome(&sent(DeliveryResult::HttpError), 3, 0, 1000).0,
            "pending"
        );
        let late = elapsed_ms(RETRY_FOR);
        assert_eq!(
            outcome(&sent(DeliveryResult::Timeout), 30, 0, late),
            ("failed", None)
        );
    }

    #[test]
    fn names_are_bounded_label_values() {
        assert!(valid_name("crm") && valid_name("crm-2_b"));
        assert!(!valid_name("") && !valid_name("CRM") && !valid_name("-x"));
        assert!(!valid_name(&"a".repeat(65)));
    }
}
