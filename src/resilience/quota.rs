//! The outbound quota of one provider (`max_per_minute`).

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use crate::fleet::{Decided, FleetQuota, Link};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota as GovernorQuota, RateLimiter};

/// At most `max_per_minute` outbound requests, spread over the minute (GCRA, bursts up to the
/// whole minute's allowance): for the fleet when the replicas share Redis, else (and while Redis
/// is unanswered) for this replica.
pub struct Quota {
    limiter: DefaultDirectRateLimiter,
    per_minute: u32,
    fleet: Option<FleetQuota>,
}

impl std::fmt::Debug for Quota {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Quota({}/min)", self.per_minute)
    }
}

impl Quota {
    pub fn per_minute(n: NonZeroU32) -> Self {
        Self {
            limiter: RateLimiter::direct(GovernorQuota::per_minute(n)),
            per_minute: n.get(),
            fleet: None,
        }
    }

    /// The same allowance, shared by the fleet through Redis (`scope`: the provider and its base
    /// URL).
    pub fn shared(n: NonZeroU32, link: Arc<Link>, provider: &str, base_url: &str) -> Self {
        Self {
            fleet: Some(FleetQuota::new(link, provider, base_url, n.get())),
            ..Self::per_minute(n)
        }
    }

    /// Takes one request from the allowance, or says how long until one is free.
    pub async fn take(&self) -> Result<(), Duration> {
        if let Some(fleet) = &self.fleet {
            match fleet.take().await {
                Decided::Allowed => return Ok(()),
                Decided::Wait(wait) => return Err(wait),
                Decided::Unanswered => {}
            }
        }
        self.take_here()
    }

    /// This replica's own allowance.
    fn take_here(&self) -> Result<(), Duration> {
        self.limiter
            .check()
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_quota_refuses_past_its_allowance() {
        let q = Quota::per_minute(NonZeroU32::new(2).unwrap());
        assert!(q.take_here().is_ok());
        assert!(q.take_here().is_ok());
        let wait = q.take_here().unwrap_err();
        assert!(
            wait > Duration::from_secs(20) && wait <= Duration::from_secs(30),
            "{wait:?}"
        );
    }
}
