//! The Redis store, shared by replicas. One hash per key (`fp`, `state`, `lease`, `owner`,
//! `started`, `record`), claimed and finished by Lua scripts so that each step is atomic; Redis
//! expires the keys. A Redis that does not answer within a second fails the request (503), never
//! silently runs it unprotected.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::future::BoxFuture;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Script;

use super::{Claim, Lease, Record, Store, StoreError};

const CLAIM: &str = r"
local h = redis.call('HMGET', KEYS[1], 'fp', 'state', 'lease', 'record', 'started')
if not h[1] then
  redis.call('HSET', KEYS[1], 'fp', ARGV[1], 'state', 'running', 'lease', ARGV[3], 'owner', ARGV[4], 'started', ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
  return {'new'}
end
if h[1] ~= ARGV[1] then return {'mismatch'} end
if h[2] == 'running' and tonumber(h[3]) > tonumber(ARGV[2]) then return {'in_flight'} end
local was = h[2]
redis.call('HSET', KEYS[1], 'state', 'running', 'lease', ARGV[3], 'owner', ARGV[4], 'started', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
if was == 'running' then return {'abandoned', h[4] or '', h[5] or ''} end
return {'finished', h[4] or ''}
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

pub struct RedisStore {
    connection: ConnectionManager,
    claim: Script,
    finish: Script,
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError(e.to_string())
}

/// Every command answered within this long, connecting and retrying included, or the request
/// fails fast (503): a Redis black-holed, or something else on its port, costs a second.
const ANSWER_WITHIN: Duration = Duration::from_millis(1000);

/// `command` within [`ANSWER_WITHIN`].
async fn within<T>(
    command: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    tokio::time::timeout(ANSWER_WITHIN, command)
        .await
        .unwrap_or_else(|_| {
            Err(StoreError(format!(
                "Redis did not answer within {} ms",
                ANSWER_WITHIN.as_millis()
            )))
        })
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl RedisStore {
    /// Connects lazily: a Redis that is down at start makes the gateway not ready, not dead.
    pub fn new(url: &str) -> Result<Self, StoreError> {
        let client = redis::Client::open(url).map_err(|e| {
            // The URL may hold a password: say what is wrong without echoing it.
            StoreError(format!(
                "idempotency.redis_url is not a valid Redis URL ({:?})",
                e.kind()
            ))
        })?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(1000)))
            .set_response_timeout(Some(Duration::from_millis(1000)))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let connection =
            ConnectionManager::new_lazy_with_config(client, config).map_err(unavailable)?;
        Ok(Self {
            connection,
            claim: Script::new(CLAIM),
            finish: Script::new(FINISH),
        })
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
            let now = now_ms();
            let mut conn = self.connection.clone();
            let reply: Vec<String> = within(async {
                self.claim
                    .key(key)
                    .arg(fingerprint)
                    .arg(now)
                    .arg(now + lease.as_millis() as u64)
                    .arg(&holder.owner)
                    .arg(ttl.as_millis() as u64)
                    .invoke_async(&mut conn)
                    .await
                    .map_err(unavailable)
            })
            .await?;
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
            let json = serde_json::to_string(record).map_err(unavailable)?;
            let mut conn = self.connection.clone();
            let done: i64 = within(async {
                self.finish
                    .key(key)
                    .arg(&holder.owner)
                    .arg(json)
                    .arg(ttl.as_millis() as u64)
                    .invoke_async(&mut conn)
                    .await
                    .map_err(unavailable)
            })
            .await?;
            Ok(done == 1)
        })
    }

    fn release<'a>(
        &'a self,
        key: &'a str,
        holder: &'a Lease,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let mut conn = self.connection.clone();
            // EVAL, not EVALSHA: one round trip that runs even when its answer comes too late
            // (a release happens when Redis is slow).
            let _: i64 = within(async {
                redis::cmd("EVAL")
                    .arg(RELEASE)
                    .arg(1)
                    .arg(key)
                    .arg(&holder.owner)
                    .query_async(&mut conn)
                    .await
                    .map_err(unavailable)
            })
            .await?;
            Ok(())
        })
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let mut conn = self.connection.clone();
            within(async {
                redis::cmd("PING")
                    .query_async::<String>(&mut conn)
                    .await
                    .map(|_| ())
                    .map_err(unavailable)
            })
            .await
        })
    }
}
