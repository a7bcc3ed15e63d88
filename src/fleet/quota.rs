//! A provider's `max_per_minute` as one budget for the fleet: GCRA (as redis-cell and
//! go-redis/redis_rate do it) in one Lua script on Redis's clock, a burst of the whole minute's
//! allowance, then one request every `60 s / max_per_minute`.
//!
//! When Redis does not answer within [`DECIDE_WITHIN`], the replica's own limit decides (each
//! replica then allows `max_per_minute` by itself): the providers' quotas are recoverable (a
//! provider's 429 is answered `rate_limited`, retryable), while refusing every create for as
//! long as Redis is away would stop the gateway for everyone. The adoption guard makes the
//! opposite choice, because a duplicate client cannot be taken back.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::Script;
use sha2::{Digest, Sha256};

use super::Link;

/// KEYS[1] the theoretical arrival time; ARGV: the emission interval (ms), the burst window (ms).
/// Returns 0 when allowed, else the milliseconds until a request is allowed.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local interval = tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local new_tat = tat + interval
local allowed_at = new_tat - tonumber(ARGV[2])
if allowed_at > now then return math.max(1, math.ceil(allowed_at - now)) end
redis.call('SET', KEYS[1], string.format('%.3f', new_tat), 'PX', math.max(1, math.ceil(new_tat - now)))
return 0
";

/// The quota's window: a minute's allowance, in milliseconds.
const WINDOW_MS: u64 = 60_000;

/// The most a quota decision waits for Redis before the replica's own limit decides.
pub const DECIDE_WITHIN: Duration = Duration::from_millis(250);

/// Logged at most this often while Redis is unanswered.
const WARN_EVERY_MS: u64 = 10_000;

/// The fleet-wide side of one provider's quota.
pub struct FleetQuota {
    link: Arc<Link>,
    key: String,
    interval_ms: f64,
    script: Script,
    last_warned: AtomicU64,
}

/// What the fleet decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decided {
    Allowed,
    /// Not before this long.
    Wait(Duration),
    /// Redis did not answer: the replica decides.
    Unanswered,
}

impl FleetQuota {
    /// `per_minute` requests to the provider at `base_url` (its tenant), for the whole fleet.
    pub fn new(link: Arc<Link>, provider: &str, base_url: &str, per_minute: u32) -> Self {
        let mut hash = Sha256::new();
        hash.update(provider.as_bytes());
        hash.update([0]);
        hash.update(base_url.as_bytes());
        Self {
            link,
            key: format!("clients-gateway:quota:{:x}", hash.finalize()),
            interval_ms: WINDOW_MS as f64 / f64::from(per_minute.max(1)),
            script: Script::new(GCRA),
            last_warned: AtomicU64::new(0),
        }
    }

    /// Takes one request from the fleet's allowance.
    pub async fn take(&self) -> Decided {
        let mut invocation = self.script.key(&self.key);
        invocation.arg(self.interval_ms).arg(WINDOW_MS);
        let decided = tokio::time::timeout(
            DECIDE_WITHIN,
            self.link
                .run(|mut c| async move { invocation.invoke_async::<u64>(&mut c).await }),
        )
        .await;
        match decided {
            Ok(Ok(0)) => {
                crate::metrics::fleet("quota", "fleet");
                Decided::Allowed
            }
            Ok(Ok(wait_ms)) => {
                crate::metrics::fleet("quota", "fleet");
                // At most the window: a number read from Redis never becomes a longer wait.
                Decided::Wait(Duration::from_millis(wait_ms.min(WINDOW_MS)))
            }
            Ok(Err(e)) => self.unanswered(&e.0),
            Err(_) => self.unanswered(&format!(
                "no answer within {} ms",
                DECIDE_WITHIN.as_millis()
            )),
        }
    }

    fn unanswered(&self, why: &str) -> Decided {
        crate::metrics::fleet("quota", "local");
        let now = crate::ids::unix_ms();
        let last = self.last_warned.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= WARN_EVERY_MS
            && self
                .last_warned
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                error = why,
                "the fleet-wide quota (Redis) is unanswered: this replica's own max_per_minute decides"
            );
        }
        Decided::Unanswered
    }
}
