//! The outbound quota of one provider (`max_per_minute`).

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota as GovernorQuota, RateLimiter};

/// At most `max_per_minute` outbound requests, spread over the minute (GCRA, bursts up to the
/// whole minute's allowance).
pub struct Quota {
    limiter: DefaultDirectRateLimiter,
    per_minute: u32,
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
        }
    }

    /// Takes one request from the allowance, or says how long until one is free.
    pub fn take(&self) -> Result<(), Duration> {
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
        assert!(q.take().is_ok());
        assert!(q.take().is_ok());
        let wait = q.take().unwrap_err();
        assert!(
            wait > Duration::from_secs(20) && wait <= Duration::from_secs(30),
            "{wait:?}"
        );
    }
}
