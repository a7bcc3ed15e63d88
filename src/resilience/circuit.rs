//! The circuit breaker of one provider.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::catalog::ProviderId;
use crate::provider_error::ErrorKind;
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
        use crate::provider_error::ProviderError;
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
}
