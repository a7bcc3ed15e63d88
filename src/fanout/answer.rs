//! What a create exchange means for its target: the provider's answer read through the adapter
//! (created with its id, or a normalized error), or what the transport says about the chance
//! that the client exists.

use std::time::Duration;

use crate::adapter::{DynAdapter, Reply};
use crate::provider_error::{ErrorKind, ProviderError};
use crate::results::{provider_id_problem, TargetResult, TargetStatus};
use crate::secret::{redact, Credentials};

use crate::outbound::exchange::{Answer, Exchanged};

/// A create not sent: the circuit is open, for `wait` more.
pub fn circuit_open(wait: Duration) -> TargetResult {
    let mut err = ProviderError::new(
        ErrorKind::CircuitOpen,
        "the provider failed repeatedly; calls are paused (circuit open); nothing was sent",
    );
    err.retry_after_s = Some(wait.as_secs().max(1));
    TargetResult::failed(TargetStatus::Failed, err)
}

/// A create whose `budget` ran out: `unknown` if it was on its way (`in_flight`), else failed,
/// nothing sent.
pub fn timed_out(budget: Duration, in_flight: bool) -> TargetResult {
    let ms = budget.as_millis();
    if in_flight {
        TargetResult::failed(
            TargetStatus::Unknown,
            ProviderError::new(
                ErrorKind::Timeout,
                format!("no answer within {ms} ms; the client may have been created"),
            ),
        )
    } else {
        TargetResult::failed(
            TargetStatus::Failed,
            ProviderError::new(
                ErrorKind::Timeout,
                format!("no request could be completed within {ms} ms; nothing was sent"),
            ),
        )
    }
}

/// The result of a create exchange. `credentials` are those the gateway generated for it.
pub fn create_result(
    adapter: &dyn DynAdapter,
    exchanged: Exchanged,
    credentials: &Option<Credentials>,
) -> TargetResult {
    match exchanged {
        // Nothing reached the provider: whatever answered (a token endpoint) is not its answer.
        Exchanged::NotSent(err) => TargetResult::failed(
            TargetStatus::Failed,
            ProviderError {
                provider_status: None,
                ..err
            },
        ),
        Exchanged::Lost(cause) => TargetResult::failed(
            TargetStatus::Unknown,
            ProviderError::new(
                ErrorKind::Unavailable,
                format!("connection lost after the request was sent ({cause}); the client may have been created"),
            ),
        ),
        Exchanged::Answered(answer) => answered(adapter, answer, credentials),
    }
}

fn answered(
    adapter: &dyn DynAdapter,
    answer: Answer,
    credentials: &Option<Credentials>,
) -> TargetResult {
    let json = answer.json();
    let reply = answer.reply(json.as_ref());
    if answer.status.is_success() {
        return created(adapter, &reply, credentials);
    }
    let mut err = adapter.error(&reply);
    err.provider_status = Some(reply.status.as_u16());
    err.retry_after_s = answer.retry_after.map(|d: Duration| d.as_secs());
    let status = if err.kind == ErrorKind::Timeout {
        // 408/504: the provider gave up, possibly after acting.
        TargetStatus::Unknown
    } else {
        TargetStatus::Failed
    };
    TargetResult::failed(status, err)
}

/// A 2xx answer to a create: the adapter reads its id; one it cannot read leaves the target
/// `unknown` (the client was probably created).
fn created(
    adapter: &dyn DynAdapter,
    reply: &Reply,
    credentials: &Option<Credentials>,
) -> TargetResult {
    let code = reply.status.as_u16();
    let unreadable = |why: String| {
        let mut err = ProviderError::new(
            ErrorKind::InvalidResponse,
            format!("answered HTTP {code} but {why}; the client was probably created, check before sending it again"),
        );
        err.provider_status = Some(code);
        err.retryable = false;
        TargetResult::failed(TargetStatus::Unknown, err)
    };
    let Some(json) = reply.json else {
        return unreadable(reply.described());
    };
    let created = adapter.created(json).and_then(|created| {
        match created.id.as_deref().and_then(provider_id_problem) {
            Some(problem) => Err(format!("answered {problem}")),
            None => Ok(created),
        }
    });
    match created {
        Ok(created) => TargetResult {
            provider_status: Some(code),
            provider_client_id: created.id,
            credentials: created.credentials.or_else(|| credentials.clone()),
            response: Some(redact(json.clone(), adapter.response_secrets())),
            ..TargetResult::new(TargetStatus::Created)
        },
        Err(why) => unreadable(why),
    }
}
