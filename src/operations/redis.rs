//! Operations in Redis, shared by the fleet: a hash per operation, and the queue of targets to
//! attempt as a Redis Stream read by one consumer group (`workers`), each replica a consumer of
//! its own name. Targets due later wait in a sorted set (due time on Redis's clock) until a
//! replica moves them into the stream. A target a replica took and never finished (SIGKILL, OOM,
//! a node lost) stays in the group's pending entries; once idle past its lease another replica
//! claims it (`XAUTOCLAIM`) and settles it by a lookup before anything is sent again.
//!
//! Streams, used directly through the gateway's own Redis link, rather than a queue crate: every
//! write a promise rests on goes through [`Link::durable`] (only a master, acknowledged by a
//! replica), which a crate's own connection would not; a target is due at a time of its own (a
//! backoff, the quota's next free slot, a settle wait), which the sorted set gives; and the
//! consumer group gives per-replica consumers and takeover after a lease (`XAUTOCLAIM`), which
//! a list-based queue would have to write again. Scripts touch several keys: one Redis (or a
//! Sentinel set-up), not a cluster.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use redis::Value;

use super::store::{
    Begun, Created, Depth, Fields, NewOp, OpStore, OpStoreError, TargetWrite, Task, Work,
};
use crate::catalog::ProviderId;
use crate::fleet::{eval_keys, evicting, Link, REFUSE_IF_EVICTING};

const PREFIX: &str = "clients-gateway:op:";
const KEY_PREFIX: &str = "clients-gateway:opkey:";
const DUE: &str = "clients-gateway:ops:due";
const READY: &str = "clients-gateway:ops:ready";
const PENDING_PREFIX: &str = "clients-gateway:ops:pending:";
const SLOT_PREFIX: &str = "clients-gateway:ops:slot:";
const GROUP: &str = "workers";

/// Redis's clock, in unix ms, as every script reads it.
const NOW: &str = "local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
";

/// KEYS: the operation, its key (or the operation again), the due set. ARGV: id, has a key,
/// the key's ttl (ms), most pending, its targets (csv), every provider (csv), the pending
/// sets' prefix, then field/value pairs.
const CREATE: &str = "
if ARGV[2] == '1' then
  local existing = redis.call('GET', KEYS[2])
  if existing then return {'existing', existing} end
end
local targets = {}
for p in string.gmatch(ARGV[5], '[^,]+') do table.insert(targets, p) end
local pending = 0
for p in string.gmatch(ARGV[6], '[^,]+') do pending = pending + redis.call('ZCARD', ARGV[7] .. p) end
if pending + #targets > tonumber(ARGV[4]) then return {'full'} end
if ARGV[2] == '1' then redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[3]) end
redis.call('HSET', KEYS[1], 'created', now, 'targets', ARGV[5], unpack(ARGV, 8))
for _, p in ipairs(targets) do
  redis.call('ZADD', KEYS[3], now, ARGV[1] .. '/' .. p)
  redis.call('ZADD', ARGV[7] .. p, now, ARGV[1])
end
return {'new', tostring(now)}
";

const READ: &str = "
return {tostring(now), redis.call('HGETALL', KEYS[1])}
";

/// KEYS: the operation. ARGV: the task (a target, or `notify`), the lease (ms). An attempt
/// begun less than a lease ago and not recorded is under way: no second one begins beside it.
/// Cancelling stops targets, not the notification.
const BEGIN: &str = "
local p = ARGV[1]
if redis.call('HGET', KEYS[1], 's:' .. p) ~= 'pending' then return {'stop'} end
if p ~= 'notify' and redis.call('HEXISTS', KEYS[1], 'x') == 1 then return {'stop'} end
local before = redis.call('HGET', KEYS[1], 'f:' .. p) or ''
if before ~= '' and now - tonumber(before) < tonumber(ARGV[2]) then return {'busy'} end
redis.call('HSET', KEYS[1], 'f:' .. p, now)
return {'go', tostring(now), before}
";

/// Once every target of KEYS[1] is final: its body and generated create bodies dropped, its
/// completion event queued (in the due set KEYS[2]) when it names a webhook, kept `ttl` ms.
const DONE_IF_FINAL: &str = "
local function done_if_final(ttl, id)
  local targets = redis.call('HGET', KEYS[1], 'targets') or ''
  for q in string.gmatch(targets, '[^,]+') do
    if redis.call('HGET', KEYS[1], 's:' .. q) == 'pending' then return 0 end
  end
  if redis.call('HEXISTS', KEYS[1], 'done') == 0 then
    redis.call('HSET', KEYS[1], 'done', now)
    redis.call('HDEL', KEYS[1], 'body')
    for q in string.gmatch(targets, '[^,]+') do redis.call('HDEL', KEYS[1], 'pb:' .. q) end
    if redis.call('HEXISTS', KEYS[1], 'w') == 1 then
      redis.call('HSET', KEYS[1], 's:notify', 'pending')
      redis.call('ZADD', KEYS[2], now, id .. '/notify')
    end
  end
  redis.call('PEXPIRE', KEYS[1], ttl)
  return 1
end
";

/// KEYS: the operation, the due set, the target's pending set. ARGV: the task, its status,
/// its record, its delay (ms), sealed credentials or '', the ttl once done (ms), the id, the
/// in-flight mark expected ('' none), '1' to clear it. Nothing is written unless the mark is
/// the one expected (`Mark`).
const SETTLE: &str = "
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local p = ARGV[1]
if (redis.call('HGET', KEYS[1], 'f:' .. p) or '') ~= ARGV[8] then return 0 end
local status = ARGV[2]
if status == 'pending' and p ~= 'notify' and redis.call('HEXISTS', KEYS[1], 'x') == 1 then
  status = 'cancelled'
end
redis.call('HSET', KEYS[1], 's:' .. p, status, 't:' .. p, ARGV[3])
if ARGV[9] == '1' then redis.call('HDEL', KEYS[1], 'f:' .. p) end
if ARGV[5] ~= '' then redis.call('HSET', KEYS[1], 'c:' .. p, ARGV[5]) end
local member = ARGV[7] .. '/' .. p
if status == 'pending' then
  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[4]), member)
else
  redis.call('ZREM', KEYS[2], member)
  redis.call('ZREM', KEYS[3], ARGV[7])
end
return done_if_final(ARGV[6], ARGV[7])
";

/// KEYS: the operation, the due set. ARGV: the id, the ttl once done (ms), the pending sets'
/// prefix.
const CANCEL: &str = "
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
redis.call('HSET', KEYS[1], 'x', '1')
local targets = redis.call('HGET', KEYS[1], 'targets') or ''
for q in string.gmatch(targets, '[^,]+') do
  if redis.call('HGET', KEYS[1], 's:' .. q) == 'pending' and redis.call('HEXISTS', KEYS[1], 'f:' .. q) == 0 then
    redis.call('HSET', KEYS[1], 's:' .. q, 'cancelled')
    redis.call('ZREM', KEYS[2], ARGV[1] .. '/' .. q)
    redis.call('ZREM', ARGV[3] .. q, ARGV[1])
  end
end
return done_if_final(ARGV[2], ARGV[1])
";

const SWAP: &str = "
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
";

/// KEYS: the due set, the stream. ARGV: most to move. Moves the due targets into the stream.
const PROMOTE: &str = "
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
for _, m in ipairs(due) do
  local slash = string.find(m, '/', 1, true)
  if slash then
    redis.call('XADD', KEYS[2], '*', 'op', string.sub(m, 1, slash - 1), 'p', string.sub(m, slash + 1))
  end
  redis.call('ZREM', KEYS[1], m)
end
return #due
";

/// KEYS: the slot. ARGV: the interval (ms), the earliest (ms from now).
const NEXT_SLOT: &str = "
local next = tonumber(redis.call('GET', KEYS[1]) or '0')
local slot = math.max(next, now + tonumber(ARGV[2]))
local after = slot + tonumber(ARGV[1])
redis.call('SET', KEYS[1], string.format('%d', after), 'PX', math.max(1, after - now + 60000))
return slot - now
";

/// ARGV: the pending sets' prefix, every provider (csv). Per provider: how many, the oldest's
/// creation (or -1).
const DEPTH: &str = "
local out = {tostring(now)}
for p in string.gmatch(ARGV[2], '[^,]+') do
  local key = ARGV[1] .. p
  local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  table.insert(out, redis.call('ZCARD', key))
  table.insert(out, oldest[2] or '-1')
end
return out
";

pub struct RedisOps {
    link: Arc<Link>,
    scripts: Scripts,
}

/// Every script as sent (Redis's clock read first), and the provider list they take: composed
/// once, not per command.
struct Scripts {
    create: String,
    read: String,
    begin: String,
    settle: String,
    cancel: String,
    promote: String,
    next_slot: String,
    depth: String,
    providers: String,
}

impl Scripts {
    fn new() -> Self {
        Self {
            create: format!("{REFUSE_IF_EVICTING}{}", script(CREATE)),
            read: script(READ),
            begin: script(BEGIN),
            settle: script(&format!("{DONE_IF_FINAL}{SETTLE}")),
            cancel: script(&format!("{DONE_IF_FINAL}{CANCEL}")),
            promote: script(PROMOTE),
            next_slot: script(NEXT_SLOT),
            depth: script(DEPTH),
            providers: providers_csv(),
        }
    }
}

fn op_key(id: &str) -> String {
    format!("{PREFIX}{id}")
}

fn script(body: &str) -> String {
    format!("{NOW}{body}")
}

fn providers_csv() -> String {
    ProviderId::ALL
        .iter()
        .map(|p| p.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(n) => Some(n.to_string()),
        _ => None,
    }
}

fn items(v: Value) -> Vec<Value> {
    match v {
        Value::Array(items) => items,
        Value::Map(pairs) => pairs.into_iter().flat_map(|(k, v)| [k, v]).collect(),
        _ => Vec::new(),
    }
}

/// Stream entries (`[[id, [field, value, ...]], ...]`) as work; entries deleted meanwhile
/// (`nil`) are skipped.
fn entries(v: Value) -> Vec<Work> {
    items(v)
        .into_iter()
        .filter_map(|entry| {
            let mut parts = items(entry).into_iter();
            let entry = text(&parts.next()?)?;
            let fields = items(parts.next()?);
            let mut id = None;
            let mut task = None;
            for pair in fields.chunks(2) {
                match (
                    pair.first().and_then(text).as_deref(),
                    pair.get(1).and_then(text),
                ) {
                    (Some("op"), Some(v)) => id = Some(v),
                    (Some("p"), Some(v)) => task = Task::parse(&v),
                    _ => {}
                }
            }
            Some(Work {
                entry,
                id: id?,
                task: task?,
            })
        })
        .collect()
}

impl RedisOps {
    pub fn new(link: Arc<Link>) -> Self {
        Self {
            link,
            scripts: Scripts::new(),
        }
    }

    /// The consumer group, made if it is not there (a new Redis, or one restarted empty).
    async fn ensure_group(&self) -> Result<(), OpStoreError> {
        let mut command = redis::cmd("XGROUP");
        command
            .arg("CREATE")
            .arg(READY)
            .arg(GROUP)
            .arg("0")
            .arg("MKSTREAM");
        match self.link.query::<Value>(&command).await {
            Ok(_) => Ok(()),
            Err(e) if e.message.contains("BUSYGROUP") => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn read_group(&self, consumer: &str, max: usize) -> Result<Vec<Work>, OpStoreError> {
        let mut command = redis::cmd("XREADGROUP");
        command
            .arg("GROUP")
            .arg(GROUP)
            .arg(consumer)
            .arg("COUNT")
            .arg(max)
            .arg("STREAMS")
            .arg(READY)
            .arg(">");
        let reply = match self.link.query::<Value>(&command).await {
            Err(e) if e.message.contains("NOGROUP") => {
                self.ensure_group().await?;
                self.link.query::<Value>(&command).await?
            }
            other => other?,
        };
        // [[stream, entries]] or nil.
        Ok(items(reply)
            .into_iter()
            .flat_map(|stream| items(stream).into_iter().nth(1).map(entries))
            .flatten()
            .collect())
    }

    async fn reclaim(
        &self,
        consumer: &str,
        max: usize,
        lease: Duration,
    ) -> Result<Vec<Work>, OpStoreError> {
        let mut command = redis::cmd("XAUTOCLAIM");
        command
            .arg(READY)
            .arg(GROUP)
            .arg(consumer)
            .arg(u64::try_from(lease.as_millis()).unwrap_or(u64::MAX))
            .arg("0-0")
            .arg("COUNT")
            .arg(max);
        let reply = match self.link.query::<Value>(&command).await {
            Err(e) if e.message.contains("NOGROUP") => return Ok(Vec::new()),
            other => other?,
        };
        // [next, entries, deleted]
        Ok(items(reply)
            .into_iter()
            .nth(1)
            .map(entries)
            .unwrap_or_default())
    }
}

impl OpStore for RedisOps {
    fn create<'a>(&'a self, new: &'a NewOp) -> BoxFuture<'a, Result<Created, OpStoreError>> {
        Box::pin(async move {
            let key = op_key(&new.id);
            let named_by = new.key.as_ref().map(|k| format!("{KEY_PREFIX}{k}"));
            let mut command = eval_keys(
                &self.scripts.create,
                &[&key, named_by.as_deref().unwrap_or(&key), DUE],
            );
            let targets: Vec<&str> = new.targets.iter().map(|p| p.as_str()).collect();
            command
                .arg(&new.id)
                .arg(if named_by.is_some() { "1" } else { "0" })
                .arg(u64::try_from(new.key_ttl.as_millis()).unwrap_or(u64::MAX))
                .arg(new.max_pending)
                .arg(targets.join(","))
                .arg(&self.scripts.providers)
                .arg(PENDING_PREFIX);
            for (field, value) in &new.fields {
                command.arg(field).arg(value);
            }
            let reply: Vec<String> = self.link.durable(&command).await?;
            match reply.first().map(String::as_str) {
                Some("new") => Ok(Created::New {
                    now_ms: reply.get(1).and_then(|n| n.parse().ok()).unwrap_or(0),
                }),
                Some("existing") => {
                    Ok(Created::Existing(reply.get(1).cloned().unwrap_or_default()))
                }
                Some("full") => Ok(Created::Full),
                Some("evicting") => {
                    Err(evicting(reply.get(1).map_or("unknown", String::as_str)).into())
                }
                other => Err(OpStoreError(format!("unexpected reply {other:?}"))),
            }
        })
    }

    fn read<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<super::store::Read>, OpStoreError>> {
        Box::pin(async move {
            let command = eval_keys(&self.scripts.read, &[&op_key(id)]);
            let reply: Value = self.link.query(&command).await?;
            let mut parts = items(reply).into_iter();
            let now_ms = parts
                .next()
                .and_then(|v| text(&v))
                .and_then(|t| t.parse().ok())
                .unwrap_or_else(crate::ids::unix_ms);
            let flat = parts.next().map(items).unwrap_or_default();
            if flat.is_empty() {
                return Ok(None);
            }
            let fields: Fields = flat
                .chunks(2)
                .filter_map(|pair| Some((text(pair.first()?)?, text(pair.get(1)?)?)))
                .collect();
            Ok(Some(super::store::Read { fields, now_ms }))
        })
    }

    fn begin<'a>(
        &'a self,
        id: &'a str,
        p: Task,
        lease: Duration,
    ) -> BoxFuture<'a, Result<Begun, OpStoreError>> {
        Box::pin(async move {
            let mut command = eval_keys(&self.scripts.begin, &[&op_key(id)]);
            command
                .arg(p.as_str())
                .arg(u64::try_from(lease.as_millis()).unwrap_or(u64::MAX));
            let reply: Vec<String> = self.link.durable(&command).await?;
            match reply.first().map(String::as_str) {
                Some("go") => Ok(Begun::Go {
                    now_ms: reply.get(1).and_then(|t| t.parse().ok()).unwrap_or(0),
                    interrupted: reply.get(2).and_then(|t| t.parse().ok()),
                }),
                Some("busy") => Ok(Begun::Busy),
                _ => Ok(Begun::Stop),
            }
        })
    }

    fn settle<'a>(
        &'a self,
        id: &'a str,
        p: Task,
        write: TargetWrite,
    ) -> BoxFuture<'a, Result<bool, OpStoreError>> {
        Box::pin(async move {
            let pending = format!("{PENDING_PREFIX}{p}");
            let (expected, clears) = write.mark.expects();
            let mut command = eval_keys(&self.scripts.settle, &[&op_key(id), DUE, &pending]);
            command
                .arg(p.as_str())
                .arg(write.status)
                .arg(write.record)
                .arg(write.delay_ms.unwrap_or(0))
                .arg(write.credentials.unwrap_or_default())
                .arg(write.ttl_ms)
                .arg(id)
                .arg(expected)
                .arg(if clears { "1" } else { "0" });
            let done: i64 = self.link.durable(&command).await?;
            Ok(done == 1)
        })
    }

    fn cancel<'a>(
        &'a self,
        id: &'a str,
        ttl_ms: u64,
    ) -> BoxFuture<'a, Result<Option<()>, OpStoreError>> {
        Box::pin(async move {
            let mut command = eval_keys(&self.scripts.cancel, &[&op_key(id), DUE]);
            command.arg(id).arg(ttl_ms).arg(PENDING_PREFIX);
            let found: i64 = self.link.durable(&command).await?;
            Ok((found >= 0).then_some(()))
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
            let mut command = eval_keys(SWAP, &[&op_key(id)]);
            command.arg(field).arg(old).arg(new);
            let swapped: i64 = self.link.durable(&command).await?;
            Ok(swapped == 1)
        })
    }

    fn poll<'a>(
        &'a self,
        consumer: &'a str,
        max: usize,
        lease: Duration,
    ) -> BoxFuture<'a, Result<Vec<Work>, OpStoreError>> {
        Box::pin(async move {
            let mut promote = eval_keys(&self.scripts.promote, &[DUE, READY]);
            promote.arg(max.max(1) * 4);
            let _: i64 = self.link.query(&promote).await?;
            let mut taken = self.reclaim(consumer, max, lease).await?;
            if taken.len() < max {
                taken.extend(self.read_group(consumer, max - taken.len()).await?);
            }
            Ok(taken)
        })
    }

    fn ack<'a>(&'a self, work: &'a Work) -> BoxFuture<'a, Result<(), OpStoreError>> {
        Box::pin(async move {
            let mut ack = redis::cmd("XACK");
            ack.arg(READY).arg(GROUP).arg(&work.entry);
            let _: i64 = self.link.query(&ack).await?;
            let mut del = redis::cmd("XDEL");
            del.arg(READY).arg(&work.entry);
            let _: i64 = self.link.query(&del).await?;
            Ok(())
        })
    }

    fn next_slot<'a>(
        &'a self,
        scope: &'a str,
        interval: Duration,
        earliest: Duration,
    ) -> BoxFuture<'a, Result<Duration, OpStoreError>> {
        Box::pin(async move {
            use sha2::{Digest, Sha256};
            let key = format!("{SLOT_PREFIX}{:x}", Sha256::digest(scope.as_bytes()));
            let mut command = eval_keys(&self.scripts.next_slot, &[&key]);
            command
                .arg(u64::try_from(interval.as_millis()).unwrap_or(u64::MAX))
                .arg(u64::try_from(earliest.as_millis()).unwrap_or(u64::MAX));
            let wait: i64 = self.link.query(&command).await?;
            Ok(Duration::from_millis(u64::try_from(wait).unwrap_or(0)))
        })
    }

    fn depth(&self) -> BoxFuture<'_, Result<Vec<Depth>, OpStoreError>> {
        Box::pin(async move {
            let mut command = eval_keys(&self.scripts.depth, &[]);
            command.arg(PENDING_PREFIX).arg(&self.scripts.providers);
            let reply: Vec<Value> = self.link.query(&command).await?;
            let number = |v: Option<&Value>| {
                v.and_then(text)
                    .and_then(|t| t.split('.').next().and_then(|n| n.parse::<i64>().ok()))
            };
            let now = number(reply.first()).unwrap_or(0);
            Ok(ProviderId::ALL
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let pending = number(reply.get(1 + 2 * i)).unwrap_or(0);
                    let oldest = number(reply.get(2 + 2 * i)).filter(|o| *o >= 0);
                    Depth {
                        provider: *p,
                        pending: u64::try_from(pending).unwrap_or(0),
                        oldest_ms: oldest.map(|o| u64::try_from(now - o).unwrap_or(0)),
                    }
                })
                .collect())
        })
    }

    fn durable(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_entries_are_read_and_deleted_ones_skipped() {
        let entry = |id: &str, op: &str, p: &str| {
            Value::Array(vec![
                Value::BulkString(id.as_bytes().to_vec()),
                Value::Array(vec![
                    Value::BulkString(b"op".to_vec()),
                    Value::BulkString(op.as_bytes().to_vec()),
                    Value::BulkString(b"p".to_vec()),
                    Value::BulkString(p.as_bytes().to_vec()),
                ]),
            ])
        };
        let read = entries(Value::Array(vec![
            entry("1-0", "a", "lucca"),
            Value::Nil,
            entry("2-0", "b", "nope"),
            entry("3-0", "c", "notify"),
        ]));
        assert_eq!(
            read,
            vec![
                Work {
                    entry: "1-0".into(),
                    id: "a".into(),
                    task: Task::Target(ProviderId::Lucca)
                },
                Work {
                    entry: "3-0".into(),
                    id: "c".into(),
                    task: Task::Notify
                }
            ]
        );
    }
}
