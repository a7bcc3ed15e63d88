//! The Redis store, shared by replicas. One hash per key (`fp`, `state`, `lease`, `owner`,
//! `started`, `record`), claimed and finished by Lua scripts so that each step is atomic; Redis
//! expires the keys. A Redis that does not answer within its command timeout (a second by
//! default) fails the request (503), never silently runs it unprotected. Leases are compared on
//! Redis's clock. Claims and records are durable writes ([`Link::durable`]: acknowledged by a
//! replica when there is one), and each script gives the same answer when its owner sends it
//! again (its first answer lost with a connection), so that the link may send it twice.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::future::BoxFuture;

use crate::fleet::{eval, evicting, Link, REFUSE_IF_EVICTING};

use super::{Claim, Lease, Record, Store, StoreError};

/// KEYS[1] the record; ARGV: fingerprint, lease (ms), owner, ttl (ms). Times are Redis's own
/// (`TIME`), never a replica's: a replica whose clock is ahead cannot take over a running key.
/// The first element of every reply is Redis's clock (unix ms). The claim remembers how it was
/// made (`claimed_as`, and the earlier request's start, `before`), so that its owner sending it
/// again gets the same answer.
const CLAIM: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local at = tostring(now)
local h = redis.call('HMGET', KEYS[1], 'fp', 'state', 'lease', 'record', 'started', 'owner', 'claimed_as', 'before')
if not h[1] then
  redis.call('HSET', KEYS[1], 'fp', ARGV[1], 'state', 'running', 'lease', now + tonumber(ARGV[2]), 'owner', ARGV[3], 'started', now, 'claimed_as', 'new', 'before', '')
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  return {at, 'new'}
end
if h[1] ~= ARGV[1] then return {at, 'mismatch'} end
if h[2] == 'running' and h[6] == ARGV[3] then
  if h[7] == 'abandoned' then return {at, 'abandoned', h[4] or '', h[8] or ''} end
  if h[7] == 'finished' then return {at, 'finished', h[4] or ''} end
  return {at, 'new'}
end
if h[2] == 'running' and tonumber(h[3]) > now then return {at, 'in_flight'} end
local claimed_as = 'finished'
if h[2] == 'running' then claimed_as = 'abandoned' end
redis.call('HSET', KEYS[1], 'state', 'running', 'lease', now + tonumber(ARGV[2]), 'owner', ARGV[3], 'started', now, 'claimed_as', claimed_as, 'before', h[5] or '')
redis.call('PEXPIRE', KEYS[1], ARGV[4])
if claimed_as == 'abandoned' then return {at, 'abandoned', h[4] or '', h[5] or ''} end
return {at, 'finished', h[4] or ''}
";

const FINISH: &str = r"
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'state', 'finished', 'record', ARGV[2], 'lease', '0')
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
";

const RELEASE: &str = r"
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return 0 end
if redis.call('HEXISTS', KEYS[1], 'record') == 1 then
  redis.call('HSET', KEYS[1], 'state', 'finished', 'lease', '0')
else
  redis.call('DEL', KEYS[1])
end
return 1
";

/// The claim, refused when Redis may evict keys.
fn claim_script() -> String {
    format!("{REFUSE_IF_EVICTING}{CLAIM}")
}

pub struct RedisStore {
    link: Arc<Link>,
    /// Redis's clock minus this replica's (ms), as the last claim saw it.
    offset_ms: AtomicI64,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl RedisStore {
    pub fn new(link: Arc<Link>) -> Self {
        Self {
            link,
            offset_ms: AtomicI64::new(0),
        }
    }

    /// Notes Redis's clock as read at about the middle of a round trip.
    fn observe_clock(&self, server_ms: &str, sent_at: i64) {
        if let Ok(server) = server_ms.parse::<i64>() {
            let middle = sent_at + (now_ms() - sent_at) / 2;
            self.offset_ms.store(server - middle, Ordering::Relaxed);
        }
    }
}

impl Store for RedisStore {
    fn claim<'a>(
        &'a self,
        key: &'a str,
        fingerprint: &'a str,
        holder: &'a Lease,
        lease: Duration,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Claim, StoreError>> {
        Box::pin(async move {
            let sent_at = now_ms();
            let mut command = eval(&claim_script(), key);
            command
                .arg(fingerprint)
                .arg(lease.as_millis() as u64)
                .arg(&holder.owner)
                .arg(ttl.as_millis() as u64);
            let mut reply: Vec<String> = self.link.durable(&command).await?;
            if reply.first().map(String::as_str) == Some("evicting") {
                let policy = reply.get(1).map_or("unknown", String::as_str);
                return Err(evicting(policy).into());
            }
            if reply.is_empty() {
                return Err(StoreError("empty claim reply".into()));
            }
            self.observe_clock(&reply.remove(0), sent_at);
            let record = |i: usize| -> Result<Option<Record>, StoreError> {
                match reply.get(i).map(String::as_str) {
                    None | Some("") => Ok(None),
                    Some(json) => serde_json::from_str(json)
                        .map(Some)
                        .map_err(|e| StoreError(format!("unreadable record: {e}"))),
                }
            };
            match reply.first().map(String::as_str) {
                Some("new") => Ok(Claim::New),
                Some("mismatch") => Ok(Claim::Mismatch),
                Some("in_flight") => Ok(Claim::InFlight),
                Some("abandoned") => {
                    let since = reply.get(2).and_then(|s| s.parse().ok());
                    Ok(Claim::Abandoned(record(1)?, since))
                }
                Some("finished") => match record(1)? {
                    Some(r) => Ok(Claim::Finished(r)),
                    None => Ok(Claim::Abandoned(None, None)),
                },
                other => Err(StoreError(format!("unexpected claim reply {other:?}"))),
            }
        })
    }

    fn finish<'a>(
        &'a self,
        key: &'a str,
        holder: &'a Lease,
        record: &'a Record,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let json = serde_json::to_string(record).map_err(|e| StoreError(e.to_string()))?;
            let mut command = eval(FINISH, key);
            command
                .arg(&holder.owner)
                .arg(json)
                .arg(ttl.as_millis() as u64);
            let done: i64 = self.link.durable(&command).await?;
            Ok(done == 1)
        })
    }

    fn release<'a>(
        &'a self,
        key: &'a str,
        holder: &'a Lease,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let mut command = eval(RELEASE, key);
            command.arg(&holder.owner);
            let _: i64 = self.link.query(&command).await?;
            Ok(())
        })
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            self.link
                .readiness()
                .await
                .map(|_| ())
                .map_err(StoreError::from)
        })
    }

    fn clock_offset_ms(&self) -> i64 {
        self.offset_ms.load(Ordering::Relaxed)
    }
}
