//! When to send a request again: a pure decision from what the last attempt gave to "retry
//! after this long" or "stop". The loop that sleeps and sends again (`crate::fanout`) knows
//! nothing of status codes; this knows nothing of sockets.

use std::time::Duration;

/// How a provider's requests are retried (`providers.<name>.max_attempts`, `retry_*_delay_ms`).
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Requests at most, the first included.
    pub max_attempts: u32,
    /// The first backoff; doubled at each retry.
    pub base: Duration,
    /// The longest backoff (a provider's `Retry-After` may ask for more).
    pub max: Duration,
}

/// What one attempt gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// No connection was made (refused, DNS, TLS): the provider cannot have acted.
    NotConnected,
    /// The request was sent and the connection failed before an answer: the provider may
    /// have acted.
    Lost,
    /// The provider answered with this status (and this `Retry-After`, if any).
    Answered {
        status: u16,
        retry_after: Option<Duration>,
    },
}

/// What to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Send the same request again after this pause.
    RetryAfter(Duration),
    /// Keep what the last attempt gave.
    Stop,
}

impl RetryPolicy {
    /// The decision after `attempts` requests, the last of which gave `attempt`, with
    /// `remaining` time left in the target's budget. A create is sent again blindly only where
    /// the provider cannot have acted: no connection, or a 429 (after its `Retry-After` when it
    /// sent one, else a jittered backoff). A 5xx does not prove that nothing was created: a
    /// create is sent again after one only once a lookup showed the client is not there (then it
    /// is as `safe` as a lookup). A `safe` request (a lookup, which changes nothing) is sent
    /// again also after a lost connection, a 408 or a 5xx. A pause that would not end within the
    /// budget is not taken. `jitter` in `[0, 1]` scales the backoff ("full jitter").
    pub fn decide(
        &self,
        attempt: Attempt,
        attempts: u32,
        remaining: Duration,
        jitter: f64,
        safe: bool,
    ) -> Decision {
        let provider_asked = match attempt {
            Attempt::NotConnected => None,
            Attempt::Answered {
                status: 429,
                retry_after,
            } => retry_after,
            Attempt::Lost if safe => None,
            Attempt::Answered {
                status: 408 | 500..=599,
                retry_after,
            } if safe => retry_after,
            Attempt::Lost | Attempt::Answered { .. } => return Decision::Stop,
        };
        if attempts >= self.max_attempts {
            return Decision::Stop;
        }
        let pause = provider_asked.unwrap_or_else(|| self.backoff(attempts, jitter));
        if pause >= remaining {
            Decision::Stop
        } else {
            Decision::RetryAfter(pause)
        }
    }

    /// Whether an answer with `status` to a request sent with an OAuth2 token means the token
    /// was refused (a 401), so that the request is sent again with a new one — once per
    /// exchange (`refreshed`: it was already). A refused token created nothing.
    pub fn refresh_token(&self, status: u16, refreshed: bool) -> bool {
        status == 401 && !refreshed
    }

    /// The pause before attempt `attempt + 1` (`attempt` ≥ 1): `base` doubled per retry, capped
    /// at `max`, scaled by `jitter` in `[0, 1]`.
    pub fn backoff(&self, attempt: u32, jitter: f64) -> Duration {
        let exp = self
            .base
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
            .min(self.max);
        exp.mul_f64(jitter.clamp(0.0, 1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl RetryPolicy {
        fn decide_create(&self, a: Attempt, n: u32, remaining: Duration, jitter: f64) -> Decision {
            self.decide(a, n, remaining, jitter, false)
        }
    }

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 3,
            base: Duration::from_millis(100),
            max: Duration::from_millis(300),
        }
    }

    const BUDGET: Duration = Duration::from_secs(5);
    const MS: fn(u64) -> Duration = Duration::from_millis;

    fn answered(status: u16, retry_after: Option<u64>) -> Attempt {
        Attempt::Answered {
            status,
            retry_after: retry_after.map(Duration::from_secs),
        }
    }

    #[test]
    fn a_refused_token_is_refreshed_once() {
        let p = policy();
        assert!(p.refresh_token(401, false));
        assert!(!p.refresh_token(401, true), "once per exchange");
        for status in [200, 400, 403, 500] {
            assert!(!p.refresh_token(status, false), "{status}");
        }
    }

    #[test]
    fn only_what_the_provider_cannot_have_acted_on_is_retried() {
        let p = policy();
        assert_eq!(
            p.decide_create(Attempt::NotConnected, 1, BUDGET, 1.0),
            Decision::RetryAfter(MS(100))
        );
        assert_eq!(
            p.decide_create(answered(429, None), 1, BUDGET, 0.5),
            Decision::RetryAfter(MS(50))
        );
        assert_eq!(
            p.decide_create(answered(429, None), 2, BUDGET, 1.0),
            Decision::RetryAfter(MS(200))
        );
        for stop in [
            Attempt::Lost,
            answered(500, None),
            answered(502, None),
            answered(503, None),
            answered(504, None),
            answered(400, None),
            answered(201, None),
        ] {
            assert_eq!(
                p.decide_create(stop, 1, BUDGET, 1.0),
                Decision::Stop,
                "{stop:?}"
            );
        }
    }

    #[test]
    fn retry_after_is_honoured_within_the_budget_only() {
        let p = policy();
        assert_eq!(
            p.decide_create(answered(429, Some(2)), 1, BUDGET, 0.0),
            Decision::RetryAfter(Duration::from_secs(2)),
            "the provider's delay, not the backoff"
        );
        assert_eq!(
            p.decide_create(answered(429, Some(60)), 1, BUDGET, 1.0),
            Decision::Stop
        );
        assert_eq!(
            p.decide_create(answered(429, Some(u64::MAX)), 1, BUDGET, 1.0),
            Decision::Stop,
            "any number a provider sends is only compared"
        );
        assert_eq!(
            p.decide_create(Attempt::NotConnected, 1, MS(100), 1.0),
            Decision::Stop,
            "a pause that would end past the budget"
        );
    }

    #[test]
    fn a_lookup_is_also_sent_again_after_a_lost_connection_or_a_5xx() {
        let p = policy();
        for again in [
            Attempt::Lost,
            answered(500, None),
            answered(502, None),
            answered(503, None),
            answered(408, None),
        ] {
            assert_eq!(
                p.decide(again, 1, BUDGET, 1.0, true),
                Decision::RetryAfter(MS(100)),
                "{again:?}"
            );
        }
        for stop in [
            answered(400, None),
            answered(404, None),
            answered(200, None),
        ] {
            assert_eq!(
                p.decide(stop, 1, BUDGET, 1.0, true),
                Decision::Stop,
                "{stop:?}"
            );
        }
        assert_eq!(
            p.decide(Attempt::Lost, 3, BUDGET, 1.0, true),
            Decision::Stop
        );
    }

    #[test]
    fn attempts_are_bounded() {
        let p = policy();
        assert!(matches!(
            p.decide_create(Attempt::NotConnected, 2, BUDGET, 1.0),
            Decision::RetryAfter(_)
        ));
        assert_eq!(
            p.decide_create(Attempt::NotConnected, 3, BUDGET, 1.0),
            Decision::Stop
        );
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let p = policy();
        assert_eq!(p.backoff(1, 1.0), MS(100));
        assert_eq!(p.backoff(2, 1.0), MS(200));
        assert_eq!(p.backoff(3, 1.0), MS(300));
        assert_eq!(p.backoff(40, 1.0), MS(300));
        assert_eq!(p.backoff(2, 0.25), MS(50));
        assert_eq!(p.backoff(2, 7.0), MS(200), "jitter is clamped");
    }
}
