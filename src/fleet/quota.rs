//! A provider's `max_per_minute` as one budget for the fleet: GCRA (as redis-cell and
//! go-redis/redis_rate do it) in one Lua script on Redis's clock, a burst of the whole minute's
//! allowance, then one request every `60 s / max_per_minute`.
//!
//! Each answer also tells where the fleet's budget stands, which the replica's own limiter
//! ([`crate::resilience::Quota`]) takes over: when Redis does not answer within
//! [`DECIDE_WITHIN`], the replica goes on from the fleet's last known state instead of a full
//! allowance of its own. The providers' quotas are recoverable (a provider's 429 is answered
//! `rate_limited`, retryable), while refusing every create for as long as Redis is away would
//! stop the gateway for everyone. The adoption guard makes the opposite choice, because a
//! duplicate client cannot be taken back. A Redis that refuses the script for good (a user
//! without `+@scripting`) is a configuration error: nothing is sent.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::{eval, Link};

/// KEYS[1] the theoretical arrival time (TAT); ARGV: the emission interval (ms), the burst window
/// (ms). Returns `{wait_ms, ahead_ms}`: `wait_ms` 0 when allowed, else the milliseconds until a
/// request is allowed; `ahead_ms` how far the TAT is ahead of now once decided.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local interval = tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local new_tat = tat + interval
local allowed_at = new_tat - tonumber(ARGV[2])
if allowed_at > now then return {math.max(1, math.ceil(allowed_at - now)), math.ceil(tat - now)} end
redis.call('SET', KEYS[1], string.format('%.3f', new_tat), 'PX', math.max(1, math.ceil(new_tat - now)))
return {0, math.ceil(new_tat - now)}
";

/// The quota's window: a minute's allowance, in milliseconds.
pub const WINDOW_MS: u64 = 60_000;

/// The most a quota decision waits for Redis before the replica's own limit decides.
pub const DECIDE_WITHIN: Duration = Duration::from_millis(250);

/// Logged at most this often while Redis is unanswered.
const WARN_EVERY_MS: u64 = 10_000;

/// The fleet-wide side of one provider's quota.
pub struct FleetQuota {
    link: Arc<Link>,
    key: String,
    interval_ms: f64,
    last_warned: AtomicU64,
}

/// What the fleet decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decided {
    /// Allowed; the fleet's budget is now `ahead` in debt (the TAT ahead of now).
    Allowed { ahead: Duration },
    /// Not before `wait`; the fleet's budget is `ahead` in debt.
    Wait { wait: Duration, ahead: Duration },
    /// Redis did not answer: the replica decides.
    Unanswered,
    /// Redis refuses the quota's script for good: a configuration error; nothing may be sent.
    Misconfigured(String),
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
            last_warned: AtomicU64::new(0),
        }
    }

    /// Takes one request from the fleet's allowance.
    pub async fn take(&self) -> Decided {
        let mut command = eval(GCRA, &self.key);
        command.arg(self.interval_ms).arg(WINDOW_MS);
        let decided =
            tokio::time::timeout(DECIDE_WITHIN, self.link.query::<(u64, i64)>(&command)).await;
        // Numbers read from Redis are bounded by the window: never a longer wait or debt.
        let bounded = |ms: u64| Duration::from_millis(ms.min(WINDOW_MS));
        match decided {
            Ok(Ok((wait_ms, ahead_ms))) => {
                crate::metrics::fleet("quota", "fleet");
                let ahead = bounded(u64::try_from(ahead_ms).unwrap_or(0));
                match wait_ms {
                    0 => Decided::Allowed { ahead },
                    wait => Decided::Wait {
                        wait: bounded(wait),
                        ahead,
                    },
                }
            }
            Ok(Err(e)) if e.misconfigured => {
                crate::metrics::fleet("quota", "refused");
                if self.time_to_warn() {
                    tracing::error!(error = %e, "Redis refuses the fleet-wide quota: nothing is sent to this provider until the configuration is fixed");
                }
                Decided::Misconfigured(e.message)
            }
            Ok(Err(e)) => self.unanswered(&e.message),
            Err(_) => self.unanswered(&format!(
                "no answer within {} ms",
                DECIDE_WITHIN.as_millis()
            )),
        }
    }

    fn unanswered(&self, why: &str) -> Decided {
        crate::metrics::fleet("quota", "local");
        if self.time_to_warn() {
            tracing::warn!(
                error = why,
                "the fleet-wide quota (Redis) is unanswered: this replica goes on from the fleet's last known state with its own max_per_minute"
            );
        }
        Decided::Unanswered
    }

    /// Whether a warning may be logged now (at most one every [`WARN_EVERY_MS`]).
    fn time_to_warn(&self) -> bool {
        let now = crate::ids::unix_ms();
        let last = self.last_warned.load(Ordering::Relaxed);
        now.saturating_sub(last) >= WARN_EVERY_MS
            && self
                .last_warned
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }
}
