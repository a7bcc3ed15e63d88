//! Where operations are kept and queued: the [`OpStore`] primitives both stores give — Redis
//! (shared by the fleet, durable: [`super::redis::RedisOps`]) and the process
//! ([`MemoryOps`]: one replica, lost on restart).
//!
//! An operation is a map of fields, as a Redis hash holds it: `m` (its meta), `targets`, `body`
//! (the request, sealed), and per target `s:<p>` (its status), `t:<p>` (its record), `f:<p>`
//! (an attempt under way since), `c:<p>` (credentials, sealed), `pb:<p>` (the create body the
//! gateway generated credentials into, sealed); `x` once cancelled, `done` once every target
//! is final. Times are the store's clock (Redis's `TIME`, or this process's), in unix ms; the
//! gateway passes delays, never its own times, so that replicas' clocks never meet.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use futures_util::future::BoxFuture;
use parking_lot::Mutex;

use crate::catalog::ProviderId;

/// The fields of one operation.
pub type Fields = HashMap<String, String>;

/// The store could not be used, and why (never a value it holds).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct OpStoreError(pub String);

impl From<crate::fleet::LinkError> for OpStoreError {
    fn from(e: crate::fleet::LinkError) -> Self {
        OpStoreError(e.message)
    }
}

/// A new operation.
pub struct NewOp {
    pub id: String,
    /// The scoped `Idempotency-Key` (caller and key hashed) that names it, if any.
    pub key: Option<String>,
    pub targets: Vec<ProviderId>,
    /// Its fields (`m`, `body`, the targets' `s:`/`t:`, sealed credentials).
    pub fields: Vec<(String, String)>,
    /// How long its key names it (its whole life: re-drive and retention).
    pub key_ttl: Duration,
    /// Pending targets the store holds at most (all operations): past it, nothing is accepted.
    pub max_pending: u64,
}

/// What became of a new operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    /// Stored, every target due now (`now_ms`, the store's clock).
    New { now_ms: u64 },
    /// Its key already names this operation.
    Existing(String),
    /// The store holds its most pending targets.
    Full,
}

/// One operation as read, with the store's clock then.
#[derive(Debug, Clone)]
pub struct Read {
    pub fields: Fields,
    pub now_ms: u64,
}

impl Read {
    /// When the task's last attempt began, if it has not recorded (its in-flight mark).
    pub fn began(&self, task: Task) -> Option<u64> {
        self.fields
            .get(&format!("f:{task}"))
            .and_then(|f| f.parse().ok())
    }

    /// Whether an attempt of `task` began less than `lease` ago and has not recorded: its queue
    /// entry was delivered twice (a takeover, an acknowledgement lost in a failover), and this
    /// delivery neither waits for a slot nor begins beside it.
    pub fn under_way(&self, task: Task, lease: Duration) -> bool {
        let lease_ms = u64::try_from(lease.as_millis()).unwrap_or(u64::MAX);
        self.began(task)
            .is_some_and(|at| self.now_ms.saturating_sub(at) < lease_ms)
    }
}

/// What becomes of a queue entry once handled.
pub enum Entry {
    /// Done with: acknowledged.
    Finished,
    /// An attempt of its task is under way elsewhere: left for a later claim.
    Kept,
}

/// Unix ms (the store's clock) as RFC 3339 (seconds).
pub fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// Whether an attempt may start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begun {
    /// It may; `interrupted`: an earlier attempt began at this time and never recorded.
    Go {
        interrupted: Option<u64>,
        now_ms: u64,
    },
    /// The target is not pending any more (finished, cancelled, gone).
    Stop,
    /// An attempt begun less than a lease ago is under way.
    Busy,
}

/// A target's attempt written.
#[derive(Debug, Clone)]
pub struct TargetWrite {
    /// Its status: a target's (`TargetStatus`), or the notification's (`pending`, `delivered`,
    /// `failed`, `stopped`).
    pub status: &'static str,
    /// Its record (`t:<p>`).
    pub record: String,
    /// Pending: attempted again this long from now.
    pub delay_ms: Option<u64>,
    /// Sealed credentials to keep (shown once).
    pub credentials: Option<String>,
    /// Once every target is final, the operation is kept this long.
    pub ttl_ms: u64,
    /// Whose write it is, checked against the target's in-flight mark in the same step.
    pub mark: Mark,
}

/// Which attempt a write belongs to, checked against the target's in-flight mark (`f:<p>`)
/// in the same step as the write. A write of an attempt that no longer holds its target (its
/// lease ran out and another attempt began) is dropped: the other attempt writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// The attempt begun at this time (its `BEGIN`): written while the mark is still this
    /// time, and the mark cleared.
    Own(u64),
    /// No attempt (a target put back to wait for its quota slot): written only if the mark is
    /// still as it was read, and left as it is, so that an interrupted attempt's mark still
    /// makes the next attempt look up before it sends.
    Unchanged(Option<u64>),
}

impl Mark {
    /// The mark the write expects (`""`: none) and whether it clears it.
    pub fn expects(self) -> (String, bool) {
        match self {
            Mark::Own(at) => (at.to_string(), true),
            Mark::Unchanged(at) => (at.map(|t| t.to_string()).unwrap_or_default(), false),
        }
    }
}

/// What a queue entry asks of an operation: attempt one of its targets, or deliver its
/// completion event (`notify`, once it is done and names a webhook).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Task {
    Target(ProviderId),
    Notify,
}

impl Task {
    /// Its name in the store's fields (`s:<name>`, `t:<name>`, `f:<name>`) and queue entries.
    pub fn as_str(self) -> &'static str {
        match self {
            Task::Target(p) => p.as_str(),
            Task::Notify => "notify",
        }
    }

    pub fn parse(name: &str) -> Option<Task> {
        match name {
            "notify" => Some(Task::Notify),
            other => ProviderId::parse(other).map(Task::Target),
        }
    }
}

impl std::fmt::Display for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<ProviderId> for Task {
    fn from(p: ProviderId) -> Self {
        Task::Target(p)
    }
}

/// The work a replica took: one task of one operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Work {
    /// Its queue entry.
    pub entry: String,
    pub id: String,
    pub task: Task,
}

/// Pending targets of one provider, fleet-wide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Depth {
    pub provider: ProviderId,
    pub pending: u64,
    /// How long the oldest of them has been pending.
    pub oldest_ms: Option<u64>,
}

/// The store's primitives. Each is atomic; each gives the same result when sent twice (a
/// connection lost with its answer).
pub trait OpStore: Send + Sync {
    /// Stores `new` and queues every target now, unless its key names an operation already or
    /// the store is full.
    fn create<'a>(&'a self, new: &'a NewOp) -> BoxFuture<'a, Result<Created, OpStoreError>>;

    fn read<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<Read>, OpStoreError>>;

    /// Marks an attempt of `task` under way, if it is pending and (a target) not cancelled.
    fn begin<'a>(
        &'a self,
        id: &'a str,
        task: Task,
        lease: Duration,
    ) -> BoxFuture<'a, Result<Begun, OpStoreError>>;

    /// Writes an attempt's outcome: the target's status and record, queued again after its delay
    /// when pending (cancelled instead, when the operation was cancelled meanwhile); the
    /// operation's body and generated create bodies dropped once every target is final, and the
    /// operation kept `ttl_ms` then. Whether the operation is done.
    fn settle<'a>(
        &'a self,
        id: &'a str,
        task: Task,
        write: TargetWrite,
    ) -> BoxFuture<'a, Result<bool, OpStoreError>>;

    /// Cancels every pending target no attempt is under way for; `None` when there is no such
    /// operation.
    fn cancel<'a>(
        &'a self,
        id: &'a str,
        ttl_ms: u64,
    ) -> BoxFuture<'a, Result<Option<()>, OpStoreError>>;

    /// Replaces `field` by `new` if it still holds `old` (credentials shown once).
    fn swap<'a>(
        &'a self,
        id: &'a str,
        field: &'a str,
        old: &'a str,
        new: &'a str,
    ) -> BoxFuture<'a, Result<bool, OpStoreError>>;

    /// Takes at most `max` due targets for `consumer`, including those a consumer took more
    /// than `lease` ago and never finished (its replica gone).
    fn poll<'a>(
        &'a self,
        consumer: &'a str,
        max: usize,
        lease: Duration,
    ) -> BoxFuture<'a, Result<Vec<Work>, OpStoreError>>;

    /// The work is finished (its outcome written, or nothing to do).
    fn ack<'a>(&'a self, work: &'a Work) -> BoxFuture<'a, Result<(), OpStoreError>>;

    /// The next free slot of a quota (`scope`) that allows one request every `interval`, at
    /// least `earliest` from now: how long from now (each call takes one slot).
    fn next_slot<'a>(
        &'a self,
        scope: &'a str,
        interval: Duration,
        earliest: Duration,
    ) -> BoxFuture<'a, Result<Duration, OpStoreError>>;

    /// The pending targets of every provider.
    fn depth(&self) -> BoxFuture<'_, Result<Vec<Depth>, OpStoreError>>;

    /// Whether the operations survive this process (Redis).
    fn durable(&self) -> bool;
}

/// The status field of a target (or of the notification).
pub fn status_field(task: impl Into<Task>) -> String {
    format!("s:{}", task.into())
}

/// The record field of a target (or of the notification).
pub fn record_field(task: impl Into<Task>) -> String {
    format!("t:{}", task.into())
}

/// Operations in the process: one replica; lost on restart.
pub struct MemoryOps {
    inner: Mutex<Memory>,
    max_operations: usize,
}

#[derive(Default)]
struct Memory {
    ops: HashMap<String, Op>,
    keys: HashMap<String, (String, u64)>,
    /// (due ms, operation, task).
    due: BTreeSet<(u64, String, Task)>,
    slots: HashMap<String, u64>,
}

struct Op {
    fields: Fields,
    targets: Vec<ProviderId>,
    created_ms: u64,
    /// Once done: forgotten at this time.
    expires_ms: Option<u64>,
}

impl MemoryOps {
    pub fn new(max_operations: usize) -> Self {
        Self {
            inner: Mutex::new(Memory::default()),
            max_operations,
        }
    }
}

fn now_ms() -> u64 {
    crate::ids::unix_ms()
}

impl Memory {
    /// Forgets what has expired.
    fn purge(&mut self, now: u64) {
        self.ops
            .retain(|_, op| op.expires_ms.is_none_or(|at| at > now));
        self.keys.retain(|_, (_, until)| *until > now);
    }

    fn pending(&self) -> usize {
        self.ops
            .values()
            .map(|op| {
                op.targets
                    .iter()
                    .filter(|p| {
                        op.fields.get(&status_field(**p)).map(String::as_str) == Some("pending")
                    })
                    .count()
            })
            .sum()
    }

    /// When every target is final: the body and generated create bodies dropped, kept `ttl`.
    fn finish_if_done(&mut self, id: &str, now: u64, ttl_ms: u64) -> bool {
        let Some(op) = self.ops.get_mut(id) else {
            return false;
        };
        let done = op
            .targets
            .iter()
            .all(|p| op.fields.get(&status_field(*p)).map(String::as_str) != Some("pending"));
        if done && !op.fields.contains_key("done") {
            op.fields.insert("done".into(), now.to_string());
            op.fields.remove("body");
            op.fields.retain(|k, _| !k.starts_with("pb:"));
            op.expires_ms = Some(now + ttl_ms);
            // Its completion event, when it names a webhook: queued in the same step.
            if op.fields.contains_key("w") {
                op.fields
                    .insert(status_field(Task::Notify), "pending".into());
                self.due.insert((now, id.to_owned(), Task::Notify));
            }
        }
        done
    }
}

impl OpStore for MemoryOps {
    fn create<'a>(&'a self, new: &'a NewOp) -> BoxFuture<'a, Result<Created, OpStoreError>> {
        Box::pin(async move {
            let now = now_ms();
            let mut m = self.inner.lock();
            m.purge(now);
            if let Some(key) = &new.key {
                if let Some((id, _)) = m.keys.get(key) {
                    return Ok(Created::Existing(id.clone()));
                }
            }
            let pending = m.pending() as u64;
            if m.ops.len() >= self.max_operations
                || pending + new.targets.len() as u64 > new.max_pending
            {
                return Ok(Created::Full);
            }
            if let Some(key) = &new.key {
                let until = now + u64::try_from(new.key_ttl.as_millis()).unwrap_or(u64::MAX);
                m.keys.insert(key.clone(), (new.id.clone(), until));
            }
            let mut fields: Fields = new.fields.iter().cloned().collect();
            fields.insert("created".into(), now.to_string());
            for p in &new.targets {
                m.due.insert((now, new.id.clone(), Task::Target(*p)));
            }
            m.ops.insert(
                new.id.clone(),
                Op {
                    fields,
                    targets: new.targets.clone(),
                    created_ms: now,
                    expires_ms: None,
                },
            );
            Ok(Created::New { now_ms: now })
        })
    }

    fn read<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<Read>, OpStoreError>> {
        Box::pin(async move {
            let now = now_ms();
            let mut m = self.inner.lock();
            m.purge(now);
            Ok(m.ops.get(id).map(|op| Read {
                fields: op.fields.clone(),
                now_ms: now,
            }))
        })
    }

    fn begin<'a>(
        &'a self,
        id: &'a str,
        p: Task,
        lease: Duration,
    ) -> BoxFuture<'a, Result<Begun, OpStoreError>> {
        Box::pin(async move {
            let now = now_ms();
            let mut m = self.inner.lock();
            let Some(op) = m.ops.get_mut(id) else {
                return Ok(Begun::Stop);
            };
            let pending = op.fields.get(&status_field(p)).map(String::as_str) == Some("pending");
            let cancelled = p != Task::Notify && op.fields.contains_key("x");
            if !pending || cancelled {
                return Ok(Begun::Stop);
            }
            let lease = u64::try_from(lease.as_millis()).unwrap_or(u64::MAX);
            let under_way = op
                .fields
                .get(&format!("f:{p}"))
                .and_then(|s| s.parse::<u64>().ok())
                .is_some_and(|began| now.saturating_sub(began) < lease);
            if under_way {
                return Ok(Begun::Busy);
            }
            let interrupted = op
                .fields
                .insert(format!("f:{p}"), now.to_string())
                .and_then(|s| s.parse().ok());
            Ok(Begun::Go {
                interrupted,
                now_ms: now,
            })
        })
    }

    fn settle<'a>(
        &'a self,
        id: &'a str,
        p: Task,
        write: TargetWrite,
    ) -> BoxFuture<'a, Result<bool, OpStoreError>> {
        Box::pin(async move {
            let now = now_ms();
            let mut m = self.inner.lock();
            let Some(op) = m.ops.get_mut(id) else {
                return Ok(false);
            };
            let (expected, clears) = write.mark.expects();
            let mark = op
                .fields
                .get(&format!("f:{p}"))
                .cloned()
                .unwrap_or_default();
            if mark != expected {
                return Ok(false);
            }
            let mut status = write.status;
            if status == "pending" && p != Task::Notify && op.fields.contains_key("x") {
                status = "cancelled";
            }
            op.fields.insert(status_field(p), status.to_owned());
            op.fields.insert(record_field(p), write.record);
            if clears {
                op.fields.remove(&format!("f:{p}"));
            }
            if let Some(c) = write.credentials {
                op.fields.insert(format!("c:{p}"), c);
            }
            if status == "pending" {
                let delay = write.delay_ms.unwrap_or(0);
                m.due.insert((now + delay, id.to_owned(), p));
            }
            Ok(m.finish_if_done(id, now, write.ttl_ms))
        })
    }

    fn cancel<'a>(
        &'a self,
        id: &'a str,
        ttl_ms: u64,
    ) -> BoxFuture<'a, Result<Option<()>, OpStoreError>> {
        Box::pin(async move {
            let now = now_ms();
            let mut m = self.inner.lock();
            let Some(op) = m.ops.get_mut(id) else {
                return Ok(None);
            };
            op.fields.insert("x".into(), "1".into());
            let targets = op.targets.clone();
            for p in targets {
                let pending =
                    op.fields.get(&status_field(p)).map(String::as_str) == Some("pending");
                if pending && !op.fields.contains_key(&format!("f:{p}")) {
                    op.fields.insert(status_field(p), "cancelled".into());
                }
            }
            m.due
                .retain(|(_, due_id, task)| due_id != id || *task == Task::Notify);
            m.finish_if_done(id, now, ttl_ms);
            Ok(Some(()))
        })
    }

    fn swap<'a>(
        &'a self,
        id: &'a str,
        field: &'a str,
        old: &'a str,
        new: &'a str,
    ) -> BoxFuture<'a, Result<bool, OpStoreError>> {
        Box::pin(async move {
            let mut m = self.inner.lock();
            let Some(value) = m.ops.get_mut(id).and_then(|op| op.fields.get_mut(field)) else {
                return Ok(false);
            };
            if value != old {
                return Ok(false);
            }
            *value = new.to_owned();
            Ok(true)
        })
    }

    fn poll<'a>(
        &'a self,
        _consumer: &'a str,
        max: usize,
        _lease: Duration,
    ) -> BoxFuture<'a, Result<Vec<Work>, OpStoreError>> {
        Box::pin(async move {
            let now = now_ms();
            let mut m = self.inner.lock();
            let mut taken = Vec::new();
            while taken.len() < max {
                let Some(first) = m.due.first().cloned() else {
                    break;
                };
                if first.0 > now {
                    break;
                }
                m.due.pop_first();
                let (at, id, task) = first;
                taken.push(Work {
                    entry: format!("{at}-{id}-{task}"),
                    id,
                    task,
                });
            }
            Ok(taken)
        })
    }

    fn ack<'a>(&'a self, _work: &'a Work) -> BoxFuture<'a, Result<(), OpStoreError>> {
        Box::pin(async { Ok(()) })
    }

    fn next_slot<'a>(
        &'a self,
        scope: &'a str,
        interval: Duration,
        earliest: Duration,
    ) -> BoxFuture<'a, Result<Duration, OpStoreError>> {
        Box::pin(async move {
            let now = now_ms();
            let interval = u64::try_from(interval.as_millis()).unwrap_or(u64::MAX);
            let earliest = now + u64::try_from(earliest.as_millis()).unwrap_or(u64::MAX);
            let mut m = self.inner.lock();
            let next = m.slots.entry(scope.to_owned()).or_insert(0);
            let slot = (*next).max(earliest);
            *next = slot.saturating_add(interval);
            Ok(Duration::from_millis(slot - now))
        })
    }

    fn depth(&self) -> BoxFuture<'_, Result<Vec<Depth>, OpStoreError>> {
        Box::pin(async move {
            let now = now_ms();
            let m = self.inner.lock();
            Ok(ProviderId::ALL
                .iter()
                .map(|p| {
                    let ages = m.ops.values().filter(|op| {
                        op.fields.get(&status_field(*p)).map(String::as_str) == Some("pending")
                    });
                    let (pending, oldest) = ages.fold((0u64, None::<u64>), |(n, oldest), op| {
                        (
                            n + 1,
                            Some(oldest.map_or(op.created_ms, |o| o.min(op.created_ms))),
                        )
                    });
                    Depth {
                        provider: *p,
                        pending,
                        oldest_ms: oldest.map(|c| now.saturating_sub(c)),
                    }
                })
                .collect())
        })
    }

    fn durable(&self) -> bool {
        false
    }
}
