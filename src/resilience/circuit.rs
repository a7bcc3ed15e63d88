//! The circuit breaker of one provider.

use parking_lot::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::catalog::ProviderId;
use crate::provider_error::ErrorKind;
use crate::results::TargetResult;

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

/// Which kind a permit is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PermitKind {
    Call,
    Probe,
}

/// PermitKind to call the provider. It settles on every path: [`Permit::record`] says what the call
/// told; dropped unrecorded (an early return, a cancelled future, a panic unwinding), it records
/// that nothing was learnt, so a probe that never finished lets the next call probe again.
#[derive(Debug)]
#[must_use = "a permit records what the call told"]
pub struct Permit<'a> {
    breaker: &'a CircuitBreaker,
    kind: PermitKind,
    settled: bool,
}

impl Permit<'_> {
    pub fn kind(&self) -> PermitKind {
        self.kind
    }

    /// Records what the call told about the provider.
    pub fn record(mut self, health: Health) {
        self.settled = true;
        self.breaker.record(self.kind, health);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.breaker.record(self.kind, Health::Unknown);
        }
    }
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
    pub fn acquire(&self) -> Result<Permit<'_>, Duration> {
        let kind = self.kind()?;
        Ok(Permit {
            breaker: self,
            kind,
            settled: false,
        })
    }

    fn kind(&self) -> Result<PermitKind, Duration> {
        // A panic elsewhere while the lock was held leaves a state that is still whole.
        let mut state = self.state.lock();
        match *state {
            State::Closed { .. } => Ok(PermitKind::Call),
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
                Ok(PermitKind::Probe)
            }
            State::HalfOpen { probing: true } => Err(Duration::from_secs(1)),
            State::HalfOpen { probing: false } => {
                *state = State::HalfOpen { probing: true };
                Ok(PermitKind::Probe)
            }
        }
    }

    fn record(&self, kind: PermitKind, health: Health) {
        let mut state = self.state.lock();
        let next = match (*state, kind, health) {
            (_, _, Health::Up) => State::Closed { failures: 0 },
            (State::Closed { failures }, PermitKind::Call, Health::Down) => {
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
            (State::HalfOpen { .. }, PermitKind::Probe, Health::Down) => {
                tracing::warn!(
                    provider = self.provider.as_str(),
                    "probe failed: circuit open again"
                );
                State::Open {
                    until: Instant::now() + self.cooldown,
                }
            }
            (State::HalfOpen { .. }, PermitKind::Probe, Health::Unknown) => {
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
        metrics::gauge!(crate::metrics::CIRCUIT_STATE, "provider" => self.provider.as_str())
            .set(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(b: &CircuitBreaker) -> Result<PermitKind, Duration> {
        b.acquire().map(|p| {
            let kind = p.kind();
            // Settled by the caller below; this one says nothing.
            std::mem::forget(p);
            kind
        })
    }

    #[tokio::test(start_paused = true)]
    async fn the_circuit_opens_then_probes_then_closes() {
        let b = CircuitBreaker::new(ProviderId::Lucca, 3, Duration::from_secs(10));
        for _ in 0..2 {
            b.acquire().unwrap().record(Health::Down);
        }
        let p = b.acquire().unwrap();
        assert_eq!(p.kind(), PermitKind::Call, "two failures: still closed");
        p.record(Health::Down);
        let wait = b.acquire().unwrap_err();
        assert!(wait <= Duration::from_secs(10) && wait > Duration::from_secs(9));

        tokio::time::advance(Duration::from_secs(11)).await;
        let probe = b.acquire().unwrap();
        assert_eq!(probe.kind(), PermitKind::Probe);
        assert!(b.acquire().is_err(), "one probe at a time");
        probe.record(Health::Down);
        assert!(b.acquire().is_err(), "a failed probe opens it again");

        tokio::time::advance(Duration::from_secs(11)).await;
        let probe = b.acquire().unwrap();
        assert_eq!(probe.kind(), PermitKind::Probe);
        probe.record(Health::Up);
        assert_eq!(kind(&b), Ok(PermitKind::Call), "a good probe closes it");
    }

    /// Opened, cooled down: the next permit is the probe.
    async fn half_open(b: &CircuitBreaker) {
        b.acquire().unwrap().record(Health::Down);
        tokio::time::advance(Duration::from_secs(11)).await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_dropped_unrecorded_lets_the_next_call_probe() {
        let b = CircuitBreaker::new(ProviderId::Lucca, 1, Duration::from_secs(10));
        half_open(&b).await;
        let probe = b.acquire().unwrap();
        assert_eq!(probe.kind(), PermitKind::Probe);
        drop(probe);
        assert_eq!(kind(&b), Ok(PermitKind::Probe), "not jammed");
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_whose_call_panics_lets_the_next_call_probe() {
        let b = CircuitBreaker::new(ProviderId::Lucca, 1, Duration::from_secs(10));
        half_open(&b).await;
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _probe = b.acquire().unwrap();
            panic!("the call panicked");
        }));
        assert!(panicked.is_err());
        let probe = b.acquire().unwrap();
        assert_eq!(probe.kind(), PermitKind::Probe, "not jammed");
        probe.record(Health::Up);
        assert_eq!(kind(&b), Ok(PermitKind::Call));
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
        b.acquire().unwrap().record(Health::Down);
        b.acquire().unwrap().record(Health::Up);
        b.acquire().unwrap().record(Health::Down);
        assert_eq!(kind(&b), Ok(PermitKind::Call));
    }
}
