//! Per-provider protection: a circuit breaker, an outbound quota and the retry backoff.

use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota as GovernorQuota, RateLimiter};
use rand::Rng;
use tokio::time::Instant;

use crate::providers::{ErrorKind, ProviderId};
use crate::results::TargetResult;

pub const CIRCUIT_STATE: &str = "clients_gateway_circuit_state";

/// What a call told about the provider's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// It answered (whatever it said).
    Up,
    /// It failed to answer usefully: unreachable, 5xx, timeout.
    Down,
    /// Nothing was learnt (the call was never made).
    Unknown,
}

impl Health {
    pub fn of(result: &TargetResult) -> Self {
        match &result.error {
            None => Health::Up,
            // Nothing reached the provider (a wait for a connection slot, the quota, the token
            // request): nothing was learnt about it.
            Some(_) if result.attempts == 0 => Health::Unknown,
            Some(e) if matches!(e.kind, ErrorKind::Unavailable | ErrorKind::Timeout) => {
                Health::Down
            }
            Some(_) => Health::Up,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probing: bool },
}

/// Opens after `threshold` consecutive [`Health::Down`] results; while open, calls are refused
/// at once; after `cooldown`, one probe call is let through: up closes it, down opens it again.
#[derive(Debug)]
pub struct CircuitBreaker {
    provider: ProviderId,
    threshold: u32,
    cooldown: Duration,
    state: Mutex<State>,
}

/// Leave to call the provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permit {
    Call,
    Probe,
}

impl CircuitBreaker {
    pub fn new(provider: ProviderId, threshold: u32, cooldown: Duration) -> Self {
        let breaker = Self {
            provider,
            threshold,
            cooldown,
            state: Mutex::new(State::Closed { failures: 0 }),
        };
        breaker.export(State::Closed { failures: 0 });
        breaker
    }

    /// A permit, or how long until a call may be tried again.
    pub fn acquire(&self) -> Result<Permit, Duration> {
        let mut state = self.state.lock().expect("breaker lock");
        match *state {
            State::Closed { .. } => Ok(Permit::Call),
            State::Open { until } => {
                let now = Instant::now();
                if now < until {
                    return Err(until - now);
                }
                *state = State::HalfOpen { probing: true };
                self.export(*state);
                tracing::info!(
                    provider = self.provider.as_str(),
                    "circuit half-open: probing"
                );
                Ok(Permit::Probe)
            }
            State::HalfOpen { probing: true } => Err(Duration::from_secs(1)),
            State::HalfOpen { probing: false } => {
                *state = State::HalfOpen { probing: true };
                Ok(Permit::Probe)
            }
        }
    }

    pub fn record(&self, permit: Permit, health: Health) {
        let mut state = self.state.lock().expect("breaker lock");
        let next = match (*state, permit, health) {
            (_, _, Health::Up) => State::Closed { failures: 0 },
            (State::Closed { failures }, Permit::Call, Health::Down) => {
                if failures + 1 >= self.threshold {
                    tracing::warn!(
                        provider = self.provider.as_str(),
                        failures = failures + 1,
                        cooldown_ms = self.cooldown.as_millis() as u64,
                        "circuit opened"
                    );
                    State::Open {
                        until: Instant::now() + self.cooldown,
                    }
                } else {
                    State::Closed {
                        failures: failures + 1,
                    }
                }
            }
            (State::HalfOpen { .. }, Permit::Probe, Health::Down) => {
                tracing::warn!(
                    provider = self.provider.as_str(),
                    "probe failed: circuit open again"
                );
                State::Open {
                    until: Instant::now() + self.cooldown,
                }
            }
            (State::HalfOpen { .. }, Permit::Probe, Health::Unknown) => {
                State::HalfOpen { probing: false }
            }
            (current, _, _) => current,
        };
        if matches!(
            (*state, next),
            (
                State::HalfOpen { .. } | State::Open { .. },
                State::Closed { .. }
            )
        ) {
            tracing::info!(provider = self.provider.as_str(), "circuit closed");
        }
        *state = next;
        self.export(next);
    }

    /// 0 closed, 1 half-open, 2 open.
    fn export(&self, state: State) {
        let value = match state {
            State::Closed { .. } => 0.0,
            State::HalfOpen { .. } => 1.0,
            State::Open { .. } => 2.0,
        };
        metrics::gauge!(CIRCUIT_STATE, "provider" => self.provider.as_str()).set(value);
    }
}

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

/// Jittered exponential backoff ("full jitter").
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base: Duration,
    pub max: Duration,
}

impl RetryPolicy {
    /// The pause before attempt `attempt + 1`, `attempt` ≥ 1.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .base
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
            .min(self.max);
        let ms = exp.as_millis() as u64;
        Duration::from_millis(if ms == 0 {
            0
        } else {
            rand::rng().random_range(0..=ms)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_circuit_opens_then_probes_then_closes() {
        let b = CircuitBreaker::new(ProviderId::Lucca, 3, Duration::from_secs(10));
        for _ in 0..2 {
            let p = b.acquire().unwrap();
            b.record(p, Health::Down);
        }
        assert_eq!(b.acquire(), Ok(Permit::Call), "two failures: still closed");
        b.record(Permit::Call, Health::Down);
        let wait = b.acquire().unwrap_err();
        assert!(wait <= Duration::from_secs(10) && wait > Duration::from_secs(9));

        tokio::time::advance(Duration::from_secs(11)).await;
        assert_eq!(b.acquire(), Ok(Permit::Probe));
        assert!(b.acquire().is_err(), "one probe at a time");
        b.record(Permit::Probe, Health::Down);
        assert!(b.acquire().is_err(), "a failed probe opens it again");

        tokio::time::advance(Duration::from_secs(11)).await;
        assert_eq!(b.acquire(), Ok(Permit::Probe));
        b.record(Permit::Probe, Health::Up);
        assert_eq!(b.acquire(), Ok(Permit::Call), "a good probe closes it");
    }

    #[test]
    fn only_what_reached_the_provider_tells_its_health() {
        use crate::providers::ProviderError;
        use crate::results::TargetStatus;
        let result = |kind: ErrorKind, attempts: u32| TargetResult {
            attempts,
            ..TargetResult::failed(TargetStatus::Failed, ProviderError::new(kind, "x"))
        };
        assert_eq!(Health::of(&result(ErrorKind::Timeout, 1)), Health::Down);
        assert_eq!(Health::of(&result(ErrorKind::Unavailable, 2)), Health::Down);
        assert_eq!(
            Health::of(&result(ErrorKind::Timeout, 0)),
            Health::Unknown,
            "a wait for a connection slot that timed out says nothing about the provider"
        );
        assert_eq!(
            Health::of(&result(ErrorKind::RateLimited, 0)),
            Health::Unknown
        );
        assert_eq!(Health::of(&result(ErrorKind::Conflict, 1)), Health::Up);
        assert_eq!(
            Health::of(&TargetResult::new(TargetStatus::Created)),
            Health::Up
        );
    }

    #[test]
    fn an_answer_resets_the_failure_count() {
        let b = CircuitBreaker::new(ProviderId::Lucca, 2, Duration::from_secs(10));
        b.record(Permit::Call, Health::Down);
        b.record(Permit::Call, Health::Up);
        b.record(Permit::Call, Health::Down);
        assert_eq!(b.acquire(), Ok(Permit::Call));
    }

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

    #[test]
    fn backoff_is_jittered_and_capped() {
        let p = RetryPolicy {
            max_attempts: 5,
            base: Duration::from_millis(100),
            max: Duration::from_millis(300),
        };
        for attempt in 1..6 {
            let d = p.backoff(attempt);
            let cap = (100u64 << (attempt - 1)).min(300);
            assert!(d <= Duration::from_millis(cap), "{attempt}: {d:?}");
        }
    }
}
