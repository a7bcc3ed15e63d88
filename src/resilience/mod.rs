//! Per-provider protection: a circuit breaker, an outbound quota, and the retry policy (the pure
//! decision whether to send again, and after how long).

mod circuit;
mod quota;
mod retry;

pub use circuit::{CircuitBreaker, Health, Permit, PermitKind};
pub use quota::{Quota, Refusal as QuotaRefusal};
pub use retry::{Attempt, Decision, RetryPolicy};
