//! Per-provider protection: a circuit breaker, an outbound quota, the retry policy (the pure
//! decision whether to send again, and after how long), and per-key locks.

mod circuit;
mod keyed;
mod quota;
mod retry;

pub use circuit::{CircuitBreaker, Health, Leave, Permit, CIRCUIT_STATE};
pub use keyed::KeyedLocks;
pub use quota::Quota;
pub use retry::{Attempt, Decision, RetryPolicy};
