//! The outbound quota of one provider (`max_per_minute`).

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

use crate::fleet::{Decided, FleetQuota, Link};

/// At most `max_per_minute` outbound requests, spread over the minute (GCRA, bursts up to the
/// whole minute's allowance): for the fleet when the replicas share Redis, else (and while Redis
/// is unanswered) for this replica.
///
/// The replica's own limiter is charged for every request it sends, and follows the fleet's
/// state while Redis answers: when Redis stops answering, the replica goes on from where the
/// fleet stood, never from a fresh allowance (a Redis latency blip gives no replica a second
/// minute's worth).
pub struct Quota {
    local: Gcra,
    per_minute: u32,
    fleet: Option<FleetQuota>,
    /// The provider and its tenant (its base URL): what the allowance is of.
    scope: String,
}

/// Why nothing may be sent now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The allowance is spent: the next request is allowed after this long.
    Spent(Duration),
    /// The fleet-wide quota cannot be taken for good (Redis refuses its script): why.
    Misconfigured(String),
}

impl std::fmt::Debug for Quota {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Quota({}/min)", self.per_minute)
    }
}

impl Quota {
    /// `n` requests a minute to the provider at `base_url` (its tenant), for this replica.
    pub fn per_minute(n: NonZeroU32, provider: &str, base_url: &str) -> Self {
        Self {
            local: Gcra::new(n),
            per_minute: n.get(),
            fleet: None,
            scope: format!("{provider} {base_url}"),
        }
    }

    /// The same allowance, shared by the fleet through Redis.
    pub fn shared(n: NonZeroU32, link: Arc<Link>, provider: &str, base_url: &str) -> Self {
        Self {
            fleet: Some(FleetQuota::new(link, provider, base_url, n.get())),
            ..Self::per_minute(n, provider, base_url)
        }
    }

    /// One request is allowed every this long, once the burst is spent.
    pub fn interval(&self) -> Duration {
        self.local.interval
    }

    /// What the allowance is of: the provider and its base URL.
    pub fn scope(&self) -> &str {
        &self.scope
    }

    /// Takes one request from the allowance, or says why not (and until when).
    pub async fn take(&self) -> Result<(), Refusal> {
        let Some(fleet) = &self.fleet else {
            return self.local.take(Instant::now()).map_err(Refusal::Spent);
        };
        let now = Instant::now();
        match fleet.take().await {
            Decided::Allowed { ahead } => {
                self.local.follow(now, ahead);
                Ok(())
            }
            Decided::Wait { wait, ahead } => {
                self.local.follow(now, ahead);
                Err(Refusal::Spent(wait))
            }
            Decided::Unanswered => self.local.take(Instant::now()).map_err(Refusal::Spent),
            Decided::Misconfigured(why) => Err(Refusal::Misconfigured(why)),
        }
    }
}

/// The replica's own limiter: GCRA on this process's monotonic clock.
struct Gcra {
    /// The theoretical arrival time of the next request.
    tat: Mutex<Instant>,
    interval: Duration,
    /// The burst: a whole minute's allowance.
    window: Duration,
}

impl Gcra {
    fn new(per_minute: NonZeroU32) -> Self {
        let window = Duration::from_millis(crate::fleet::QUOTA_WINDOW_MS);
        Self {
            tat: Mutex::new(Instant::now()),
            interval: window / per_minute.get(),
            window,
        }
    }

    /// Takes one request at `now`, or says how long until one is allowed.
    fn take(&self, now: Instant) -> Result<(), Duration> {
        let mut tat = self.tat.lock();
        let base = (*tat).max(now);
        let next = base + self.interval;
        let allowed_at = next.checked_sub(self.window).unwrap_or(now);
        if allowed_at > now {
            return Err(allowed_at - now);
        }
        *tat = next;
        Ok(())
    }

    /// The fleet's budget stands `ahead` in debt at `now`: this limiter is at least as far.
    fn follow(&self, now: Instant, ahead: Duration) {
        let mut tat = self.tat.lock();
        *tat = (*tat).max(now + ahead);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_quota_refuses_past_its_allowance() {
        let q = Gcra::new(NonZeroU32::new(2).unwrap());
        let now = Instant::now();
        assert!(q.take(now).is_ok());
        assert!(q.take(now).is_ok());
        let wait = q.take(now).unwrap_err();
        assert!(
            wait > Duration::from_secs(20) && wait <= Duration::from_secs(30),
            "{wait:?}"
        );
        assert!(
            q.take(now + Duration::from_secs(30)).is_ok(),
            "one more after 30 s"
        );
    }

    #[test]
    fn the_local_limiter_goes_on_from_the_fleet_s_state() {
        let q = Gcra::new(NonZeroU32::new(4).unwrap());
        let now = Instant::now();
        // The fleet allowed four requests: its TAT is a minute ahead.
        q.follow(now, Duration::from_secs(60));
        assert!(
            q.take(now).is_err(),
            "no fresh allowance when Redis stops answering"
        );
        assert!(
            q.take(now + Duration::from_secs(15)).is_ok(),
            "one every 15 s"
        );
    }
}
