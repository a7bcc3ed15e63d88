//! Asynchronous operations: `POST /clients` with `Prefer: respond-async` hands the gateway the
//! job. The request is checked as always, then the operation is stored (durably, with Redis)
//! and answered `202`; every replica works the queue of its targets (`worker`), attempting each
//! through the same state machine as a replay — an unknown or 5xx create is looked up before
//! anything is sent again — on a capped, jittered backoff that honours every `Retry-After`, a
//! fleet quota waited for rather than failed, for up to `operations.redrive_for_s`. The caller
//! reads it back (`GET /clients/operations/{id}`) or cancels what has not been sent (`DELETE`).
//!
//! What an operation keeps at rest (the body, generated passwords) is sealed ([`crypto`]).

pub mod crypto;
mod model;
pub mod notification;
mod redis;
mod store;
pub mod webhooks;
mod worker;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use utoipa::ToSchema;

pub use model::{Operation, OperationState};
pub use redis::RedisOps;
pub use store::{Begun, Created, Mark, MemoryOps, NewOp, OpStore, OpStoreError, TargetWrite, Task};

use crate::catalog::ProviderId;
use crate::domain::IfExists;
use crate::fanout::Call;
use crate::results::TargetStatus;
use crate::secret::Credentials;
use crypto::KeyRing;
use model::Meta;
use secrecy::ExposeSecret;

/// `[operations]`: asynchronous operations (`Prefer: respond-async`).
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct OperationsSettings {
    /// Accept `Prefer: respond-async`. Off: the preference is ignored and every request is
    /// answered synchronously.
    pub enabled: bool,
    /// How long an operation is kept once done, then 404 (seconds).
    #[schema(minimum = 60, maximum = 7776000)]
    pub ttl_s: u64,
    /// How long a target is attempted again before it ends `failed` with its last error
    /// (seconds).
    #[schema(minimum = 1, maximum = 2592000)]
    pub redrive_for_s: u64,
    /// Target attempts one replica runs at once.
    #[schema(minimum = 1, maximum = 1024)]
    pub concurrency: usize,
    /// Pending targets kept at most (all operations, fleet-wide with Redis): past it, a new
    /// operation is refused with 503 until some finish.
    #[schema(minimum = 1, maximum = 100000000)]
    pub max_pending: u64,
    /// Operations kept in the process at most (without Redis).
    #[schema(minimum = 1, maximum = 10000000)]
    pub max_operations: usize,
    /// The key that seals what operations keep at rest (the request, generated passwords): 32
    /// random bytes in base64 (`openssl rand -base64 32`). Required with Redis; without Redis
    /// (one replica, in process) a key is made at start. A secret: never shown;
    /// `encryption_key_file` reads it from a file.
    #[schema(value_type = Option<String>, format = Password, default = json!(null))]
    #[serde(serialize_with = "crate::secret::serialize_redacted")]
    pub encryption_key: Option<SecretString>,
    /// A file holding `encryption_key` (a mounted Kubernetes secret).
    #[schema(value_type = Option<String>)]
    pub encryption_key_file: Option<PathBuf>,
    /// Earlier keys, kept to open what they sealed (a rotation): files like
    /// `encryption_key_file`.
    #[schema(value_type = Vec<String>)]
    pub previous_key_files: Vec<PathBuf>,
    /// Receivers of completion events, by name: a request names one with `"notify"`
    /// (never a URL).
    pub webhooks: BTreeMap<String, webhooks::WebhookSettings>,
}

impl Default for OperationsSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            ttl_s: 7 * 86_400,
            redrive_for_s: 86_400,
            concurrency: 16,
            max_pending: 1_000_000,
            max_operations: 10_000,
            encryption_key: None,
            encryption_key_file: None,
            previous_key_files: Vec::new(),
            webhooks: BTreeMap::new(),
        }
    }
}

impl OperationsSettings {
    /// The key ring from the keys given; `required`: with Redis, where sealed values outlive
    /// the process.
    pub fn key_ring(&self, required: bool) -> Result<KeyRing, String> {
        use secrecy::ExposeSecret;
        let read = |key: &str, value: Option<&SecretString>, file: &Option<PathBuf>| {
            let mut value = value.cloned();
            crate::secret::read_secret_file(&format!("operations.{key}"), &mut value, file)
                .map_err(|e| e.to_string())?;
            Ok::<_, String>(value.map(|v| v.expose_secret().to_owned()))
        };
        let Some(current) = read(
            "encryption_key",
            self.encryption_key.as_ref(),
            &self.encryption_key_file,
        )?
        else {
            if required {
                return Err("operations.encryption_key_file (or operations.encryption_key) is required with Redis: operations keep the request (names, e-mails) at rest, sealed with it; make one with `openssl rand -base64 32` (or set operations.enabled = false)".into());
            }
            return Ok(KeyRing::ephemeral());
        };
        let previous = self
            .previous_key_files
            .iter()
            .map(|p| {
                read("previous_key_files", None, &Some(p.clone())).map(Option::unwrap_or_default)
            })
            .collect::<Result<Vec<_>, _>>()?;
        KeyRing::from_base64(&current, &previous)
            .map_err(|e| format!("operations.encryption_key: {e}"))
    }
}

/// Plans one target of an accepted request again (the request as stored, the target's name):
/// the gateway's own validation and planning, given to the operations by the routes.
pub trait Planner: Send + Sync {
    fn call(&self, body: &[u8], provider: ProviderId) -> Result<(Call, IfExists), String>;
}

/// What a new operation is made of.
pub struct Accept<'a> {
    /// The caller (`sub`): only it may read the operation.
    pub caller: &'a str,
    /// The scoped `Idempotency-Key`, if one was given.
    pub key: Option<String>,
    pub fingerprint: String,
    /// The request body, as received.
    pub body: &'a [u8],
    /// Its planned calls.
    pub calls: &'a [Call],
    /// The accepting request's trace, which every later attempt continues.
    pub traceparent: Option<String>,
    pub request_id: &'a str,
    /// The webhook told when it is done (`notify`, a configured name).
    pub notify: Option<&'a str>,
}

/// What became of an asynchronous request.
pub enum Accepted {
    /// A new operation, or the one its key names already.
    Operation {
        operation: Box<Operation>,
        new: bool,
    },
    /// Its key names an operation of another body.
    Mismatch,
    /// The store holds `operations.max_pending` pending targets.
    Full,
}

/// The operations of this gateway: accepting, reading, cancelling, and the worker.
pub struct Operations {
    store: Arc<dyn OpStore>,
    keys: KeyRing,
    settings: OperationsSettings,
    planner: Arc<dyn Planner>,
    deadline: Duration,
    /// Wakes this replica's worker (an operation was accepted here).
    nudge: Notify,
    /// This replica's consumer name.
    consumer: String,
    /// Each provider's quota interval (`60 s / max_per_minute`), where one is set.
    quotas: BTreeMap<ProviderId, (Duration, String)>,
    worker: worker::State,
    webhooks: webhooks::Webhooks,
}

/// Where a sealed value of operation `id` lives (its associated data).
fn place(id: &str, field: &str) -> String {
    format!("{id}/{field}")
}

impl Operations {
    pub fn new(
        store: Arc<dyn OpStore>,
        keys: KeyRing,
        settings: OperationsSettings,
        planner: Arc<dyn Planner>,
        deadline: Duration,
        quotas: BTreeMap<ProviderId, (Duration, String)>,
        webhooks: webhooks::Webhooks,
    ) -> Self {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "gateway".into());
        let consumer = format!(
            "{}-{}-{}",
            host,
            std::process::id(),
            &crate::ids::v4().simple().to_string()[..8]
        );
        Self {
            store,
            keys,
            settings,
            planner,
            deadline,
            nudge: Notify::new(),
            consumer,
            quotas,
            worker: worker::State::default(),
            webhooks,
        }
    }

    pub fn enabled(&self) -> bool {
        self.settings.enabled
    }

    /// The configured webhooks (a request's `notify` names one).
    pub fn webhooks(&self) -> &webhooks::Webhooks {
        &self.webhooks
    }

    pub fn durable(&self) -> bool {
        self.store.durable()
    }

    /// The id of the key that seals (for the start's log line).
    pub fn key_id(&self) -> &str {
        self.keys.current_id()
    }

    /// What the store keeps of a new operation `id`: its metadata, the request and each
    /// target's first state, sealed where personal.
    fn fields_of(&self, id: &str, a: &Accept<'_>) -> Vec<(String, String)> {
        let meta = Meta {
            caller: a.caller.to_owned(),
            fingerprint: a.fingerprint.clone(),
            trace: a.traceparent.clone(),
            request_id: a.request_id.to_owned(),
        };
        let mut fields = vec![
            (
                "m".to_owned(),
                serde_json::to_string(&meta).expect("meta serializes"),
            ),
            (
                "body".to_owned(),
                self.keys.seal(a.body, &place(id, "body")),
            ),
        ];
        if let Some(name) = a.notify {
            fields.push(("w".to_owned(), name.to_owned()));
        }
        for call in a.calls {
            let p = call.provider;
            fields.push((
                store::status_field(p),
                TargetStatus::Pending.as_str().to_owned(),
            ));
            if let Some(credentials) = &call.plan.credentials {
                // A password the gateway generated goes with every attempt of the create, and
                // to the caller once: both kept sealed.
                let c = serde_json::to_vec(credentials).expect("credentials serialize");
                fields.push((
                    format!("c:{p}"),
                    self.keys.seal(&c, &place(id, &format!("c:{p}"))),
                ));
                if let Some(body) = &call.plan.create.body {
                    let b = serde_json::to_vec(body).expect("a body serializes");
                    fields.push((
                        format!("pb:{p}"),
                        self.keys.seal(&b, &place(id, &format!("pb:{p}"))),
                    ));
                }
            }
        }
        fields
    }

    /// Stores a new operation (durably, with Redis) and queues its targets, or finds the one its
    /// key names.
    pub async fn accept(&self, a: Accept<'_>) -> Result<Accepted, OpStoreError> {
        let id = crate::ids::v7().to_string();
        let fields = self.fields_of(&id, &a);
        let new = NewOp {
            id: id.clone(),
            key: a.key.clone(),
            targets: a.calls.iter().map(|c| c.provider).collect(),
            fields,
            key_ttl: Duration::from_secs(self.settings.redrive_for_s + self.settings.ttl_s),
            max_pending: self.settings.max_pending,
        };
        let (id, new) = match self.store.create(&new).await? {
            Created::New { now_ms } => {
                crate::metrics::operation("accepted");
                self.nudge.notify_one();
                // What was just written is the operation: no need to read it back.
                let mut fields: store::Fields = new.fields.into_iter().collect();
                let targets: Vec<&str> = new.targets.iter().map(|p| p.as_str()).collect();
                fields.insert("targets".into(), targets.join(","));
                fields.insert("created".into(), now_ms.to_string());
                let read = store::Read { fields, now_ms };
                let operation = model::operation(&id, &read, &BTreeMap::new(), &self.settings)?;
                return Ok(Accepted::Operation {
                    operation: Box::new(operation),
                    new: true,
                });
            }
            Created::Existing(existing) => (existing, false),
            Created::Full => return Ok(Accepted::Full),
        };
        let Some(read) = self.store.read(&id).await? else {
            return Err(OpStoreError(
                "the operation vanished as it was accepted".into(),
            ));
        };
        let meta = model::meta(&read.fields)?;
        if meta.caller != a.caller || meta.fingerprint != a.fingerprint {
            return Ok(Accepted::Mismatch);
        }
        let operation = self.present(&id, read).await?;
        Ok(Accepted::Operation {
            operation: Box::new(operation),
            new,
        })
    }

    /// The operation, for its caller; `None` for anyone else, or when there is none.
    pub async fn get(&self, id: &str, caller: &str) -> Result<Option<Operation>, OpStoreError> {
        let Some(read) = self.store.read(id).await? else {
            return Ok(None);
        };
        if model::meta(&read.fields)?.caller != caller {
            return Ok(None);
        }
        Ok(Some(self.present(id, read).await?))
    }

    /// Cancels what has not been sent, for the operation's caller.
    pub async fn cancel(&self, id: &str, caller: &str) -> Result<Option<Operation>, OpStoreError> {
        if self.get(id, caller).await?.is_none() {
            return Ok(None);
        }
        let ttl_ms = self.settings.ttl_s * 1000;
        if self.store.cancel(id, ttl_ms).await?.is_some() {
            crate::metrics::operation("cancelled");
        }
        self.get(id, caller).await
    }

    /// Queues the operation's completion event again, for its caller: `Ok(Ok(operation))`,
    /// `Ok(Err(why))` when it cannot be sent again now, `None` when there is no such operation.
    pub async fn resend(
        &self,
        id: &str,
        caller: &str,
    ) -> Result<Option<Result<Operation, &'static str>>, OpStoreError> {
        let Some(read) = self.store.read(id).await? else {
            return Ok(None);
        };
        if model::meta(&read.fields)?.caller != caller {
            return Ok(None);
        }
        if let Some(why) = notification::not_resendable(&read.fields) {
            return Ok(Some(Err(why)));
        }
        let mark = read.began(Task::Notify);
        let write = notification::resend(&read.fields, mark, self.settings.ttl_s * 1000);
        self.store.settle(id, Task::Notify, write).await?;
        self.nudge.notify_one();
        Ok(self.get(id, caller).await?.map(Ok))
    }

    /// Waits at most `within` for the operation to be done: the operation then, done or not.
    pub async fn wait(
        &self,
        id: &str,
        caller: &str,
        within: Duration,
    ) -> Result<Option<Operation>, OpStoreError> {
        let until = tokio::time::Instant::now() + within;
        loop {
            let operation = self.get(id, caller).await?;
            let done = operation.as_ref().is_none_or(|o| o.done);
            if done || tokio::time::Instant::now() >= until {
                return Ok(operation);
            }
            let next = (tokio::time::Instant::now() + Duration::from_millis(100)).min(until);
            tokio::select! {
                () = tokio::time::sleep_until(next) => {}
                () = self.worker.finished.notified() => {}
            }
        }
    }

    /// The operation as its caller sees it. Credentials a tool or the gateway generated are
    /// shown in the first answer after the target is created, then redacted (the login stays
    /// sealed) — unless they go in the completion event (`include_credentials`), which shows
    /// them instead, while it can still be delivered.
    async fn present(&self, id: &str, read: store::Read) -> Result<Operation, OpStoreError> {
        let opened = self.credentials(id, &read);
        let mut shown: BTreeMap<_, _> = opened.iter().map(|(p, c)| (*p, c.redacted())).collect();
        let to_event = read
            .fields
            .get("w")
            .is_some_and(|w| self.webhooks.includes_credentials(w))
            && !matches!(
                read.fields.get("s:notify").map(String::as_str),
                Some("failed" | "stopped")
            );
        if !to_event {
            for (p, plain) in opened {
                if plain.password.expose_secret() != crate::secret::REDACTED
                    && self.redact_kept(id, &read, p, &plain).await?
                {
                    shown.insert(p, plain);
                }
            }
        }
        model::operation(id, &read, &shown, &self.settings)
    }

    /// The credentials of the targets that settled, opened once (callers redact what they
    /// show).
    fn credentials(&self, id: &str, read: &store::Read) -> BTreeMap<ProviderId, Credentials> {
        let mut out = BTreeMap::new();
        for p in model::targets(&read.fields) {
            let field = format!("c:{p}");
            let settled = matches!(
                model::status(&read.fields, p),
                TargetStatus::Created | TargetStatus::Existing | TargetStatus::Unknown
            );
            let Some(sealed) = read.fields.get(&field).filter(|_| settled) else {
                continue;
            };
            let plain = match self.keys.open(sealed, &place(id, &field)) {
                Ok(plain) => plain,
                Err(e) => {
                    // The operation is still shown; its credentials wait for the right key.
                    tracing::error!(operation_id = id, provider = %p, error = %e, "operations: stored credentials do not open with this gateway's keys");
                    continue;
                }
            };
            if let Ok(credentials) = serde_json::from_slice::<Credentials>(&plain) {
                out.insert(p, credentials);
            }
        }
        out
    }

    /// Replaces target `p`'s kept credentials (as read) by their redacted form: whether this
    /// call did it (a password is shown once, by whoever redacts it).
    async fn redact_kept(
        &self,
        id: &str,
        read: &store::Read,
        p: ProviderId,
        plain: &Credentials,
    ) -> Result<bool, OpStoreError> {
        let field = format!("c:{p}");
        let Some(sealed) = read.fields.get(&field) else {
            return Ok(false);
        };
        let stored = serde_json::to_vec(&plain.redacted()).expect("credentials serialize");
        let redacted = self.keys.seal(&stored, &place(id, &field));
        self.store.swap(id, &field, sealed, &redacted).await
    }

    /// Redacts the kept credentials once the completion event delivered them (shown once).
    async fn forget_credentials(&self, id: &str, read: &store::Read) {
        for (p, plain) in self.credentials(id, read) {
            if let Err(e) = self.redact_kept(id, read, p, &plain).await {
                tracing::warn!(operation_id = id, error = %e, "webhooks: delivered credentials could not be redacted; the operation keeps them sealed until it expires");
            }
        }
    }

    /// Starts this replica's worker and the queue's metrics.
    pub fn start(self: &Arc<Self>) {
        worker::start(self.clone());
    }

    /// Stops taking work, and waits (at most `within`) for the attempts under way to record.
    pub async fn drain(&self, within: Duration) {
        worker::drain(self, within).await;
    }
}

/// What an operator is told when operations are enabled without Redis.
pub const NOT_DURABLE: &str = "asynchronous operations (Prefer: respond-async) are kept in this process only: an operation accepted and not finished is lost when the process stops; configure Redis (idempotency.redis_url or redis_sentinels) for operations that survive it, or set operations.enabled = false";

/// The store of operations for the settings: Redis when the replicas share one, else the
/// process.
pub fn store(
    link: Option<Arc<crate::fleet::Link>>,
    settings: &OperationsSettings,
) -> Arc<dyn OpStore> {
    match link {
        Some(link) => Arc::new(RedisOps::new(link)),
        None => {
            if settings.enabled {
                tracing::warn!("{NOT_DURABLE}");
            }
            Arc::new(MemoryOps::new(settings.max_operations))
        }
    }
}
