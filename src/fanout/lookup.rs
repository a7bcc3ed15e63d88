//! Finding a client at a provider: the adapter's list request, its pages and candidates read
//! through the same exchange as a create (authentication, quota, connection slots, retries —
//! a lookup is safe to send again), under the target's circuit breaker and a time budget. The
//! pages and candidates read are bounded.

use std::time::{Duration, SystemTime};

use tokio::time::Instant;
use tracing::Instrument;

use crate::adapter::{Found, LookupKey, Page, Request};
use crate::outbound::exchange::{exchange, Answer, Exchanged, Outbound, Progress};
use crate::outbound::Target;
use crate::provider_error::{ErrorKind, ProviderError};
use crate::resilience::Health;

/// Most list pages read by one lookup.
pub const MAX_PAGES: usize = 20;
/// Most candidates whose details one lookup reads.
pub const MAX_CANDIDATES: usize = 20;

/// What a lookup told.
#[derive(Debug)]
pub enum LookupOutcome {
    /// The client is there.
    Found(Found),
    /// Every page was read and the client is not there.
    NotFound,
    /// The lookup could not tell (an error, an unreadable page, more pages than read).
    Failed(ProviderError),
}

/// Looks the client up within `budget`. `since`: a time before the client can have been created.
pub async fn look_up(
    target: &Target,
    key: &LookupKey,
    since: Option<SystemTime>,
    budget: Duration,
) -> LookupOutcome {
    let span = crate::gateway_span!(
        "lookup",
        otel.name = %format_args!("lookup {}", target.id),
        otel.kind = "client",
        otel.status_code = tracing::field::Empty,
        provider = target.id.as_str(),
        outcome = tracing::field::Empty,
        error.kind = tracing::field::Empty,
    );
    let looked = Box::pin(guarded(target, key, since, budget).instrument(span.clone())).await;
    let outcome = match &looked {
        LookupOutcome::Found(_) => "found",
        LookupOutcome::NotFound => "not_found",
        LookupOutcome::Failed(e) => {
            span.record("error.kind", e.kind.as_str());
            span.record("otel.status_code", "ERROR");
            "failed"
        }
    };
    span.record("outcome", outcome);
    looked
}

/// The lookup under the circuit breaker and the budget.
async fn guarded(
    target: &Target,
    key: &LookupKey,
    since: Option<SystemTime>,
    budget: Duration,
) -> LookupOutcome {
    let permit = match target.breaker.acquire() {
        Ok(permit) => permit,
        Err(_) => {
            return LookupOutcome::Failed(ProviderError::new(
                ErrorKind::CircuitOpen,
                "the provider failed repeatedly; calls are paused (circuit open)",
            ))
        }
    };
    let until = Instant::now() + budget;
    let looked = tokio::time::timeout(budget, pages(target, key, since, until))
        .await
        .unwrap_or_else(|_| {
            LookupOutcome::Failed(ProviderError::new(
                ErrorKind::Timeout,
                format!("the lookup did not finish within {} ms", budget.as_millis()),
            ))
        });
    // A provider that cannot answer a list is down; one that can still says nothing about its
    // creates (they may be what fails): a lookup never closes the circuit.
    let health = match &looked {
        LookupOutcome::Failed(e)
            if matches!(e.kind, ErrorKind::Unavailable | ErrorKind::Timeout) =>
        {
            Health::Down
        }
        _ => Health::Unknown,
    };
    permit.record(health);
    looked
}

async fn pages(
    target: &Target,
    key: &LookupKey,
    since: Option<SystemTime>,
    until: Instant,
) -> LookupOutcome {
    let adapter = target.adapter.as_ref();
    let sent_ago = since.map(|s| SystemTime::now().duration_since(s).unwrap_or_default());
    // A provider that refuses duplicates has one client with the key: the first found is it.
    // One that takes them may list several: every page is read, and the oldest adopted.
    let every_match = adapter.accepts_duplicates();
    let mut matched: Vec<Found> = Vec::new();
    let mut request = adapter.list(key, since);
    for _ in 0..MAX_PAGES {
        let (outbound, answer) = match fetch(target, &request, until).await {
            Ok(fetched) => fetched,
            Err(e) => return LookupOutcome::Failed(e),
        };
        let listed = match read_page(&outbound, &answer, sent_ago, |page| {
            adapter.read_list(key, page)
        }) {
            Ok(listed) => listed,
            Err(e) => return LookupOutcome::Failed(e),
        };
        matched.extend(listed.found);
        if !matched.is_empty() && !every_match {
            return oldest(matched);
        }
        if listed.candidates.len() > MAX_CANDIDATES {
            return LookupOutcome::Failed(ProviderError::new(
                ErrorKind::InvalidResponse,
                format!("more than {MAX_CANDIDATES} clients could be this one; not all were read"),
            ));
        }
        for candidate in &listed.candidates {
            match Box::pin(read_candidate(target, key, candidate, until)).await {
                Ok(Some(found)) if !every_match => return oldest(vec![found]),
                Ok(Some(found)) => matched.push(found),
                Ok(None) => {}
                Err(e) => return LookupOutcome::Failed(e),
            }
        }
        match listed.next {
            Some(next) => request = next,
            None if matched.is_empty() => return LookupOutcome::NotFound,
            None => return oldest(matched),
        }
    }
    if matched.is_empty() {
        return LookupOutcome::Failed(ProviderError::new(
            ErrorKind::InvalidResponse,
            format!("the list has more than {MAX_PAGES} pages; not all were read"),
        ));
    }
    oldest(matched)
}

/// One candidate's details: the client, if it is this one.
async fn read_candidate(
    target: &Target,
    key: &LookupKey,
    candidate: &crate::adapter::Candidate,
    until: Instant,
) -> Result<Option<Found>, ProviderError> {
    let (outbound, answer) = fetch(target, &candidate.request, until).await?;
    read_page(&outbound, &answer, None, |page| {
        target.adapter.read_candidate(key, &candidate.record, page)
    })
}

/// Of the clients found with the key, the oldest (by the provider's creation time, else in the
/// provider's order), with how many there were.
fn oldest(mut matched: Vec<Found>) -> LookupOutcome {
    let count = u32::try_from(matched.len()).unwrap_or(u32::MAX);
    let first = (0..matched.len())
        .min_by_key(|i| (matched[*i].created_ms.unwrap_or(u64::MAX), *i))
        .unwrap_or(0);
    let mut found = matched.swap_remove(first);
    found.matches = count;
    found_or_not(found)
}

/// The client found, if its id is one (bounded, printable); a lookup that found an id that is
/// not one cannot tell.
fn found_or_not(found: Found) -> LookupOutcome {
    match crate::results::provider_id_problem(&found.id) {
        None => LookupOutcome::Found(found),
        Some(problem) => LookupOutcome::Failed(ProviderError::new(
            ErrorKind::InvalidResponse,
            format!("the lookup's answer cannot be read: it lists {problem}"),
        )),
    }
}

/// Sends one lookup request; a non-2xx answer is the provider's error.
async fn fetch(
    target: &Target,
    request: &Request,
    until: Instant,
) -> Result<(Outbound, Answer), ProviderError> {
    let outbound = Outbound::from(request);
    let mut progress = Progress::default();
    match exchange(target, &outbound, until, &mut progress, true).await {
        Exchanged::Answered(answer) if answer.status.is_success() => Ok((outbound, answer)),
        Exchanged::Answered(answer) => {
            let json = answer.json();
            let reply = answer.reply(json.as_ref());
            let mut err = target.adapter.error(&reply);
            err.provider_status = Some(answer.status.as_u16());
            Err(err)
        }
        Exchanged::NotSent(err) => Err(err),
        Exchanged::Lost(cause) => Err(ProviderError::new(
            ErrorKind::Unavailable,
            format!("connection lost during the lookup ({cause})"),
        )),
    }
}

/// Reads a 2xx answer as JSON and hands it to the adapter.
fn read_page<T>(
    outbound: &Outbound,
    answer: &Answer,
    sent_ago: Option<std::time::Duration>,
    adapter: impl FnOnce(&Page) -> Result<T, String>,
) -> Result<T, ProviderError> {
    let unreadable = |why: String| {
        let mut err = ProviderError::new(
            ErrorKind::InvalidResponse,
            format!("the lookup's answer cannot be read: {why}"),
        );
        err.provider_status = Some(answer.status.as_u16());
        err
    };
    if let Some(incomplete) = &answer.incomplete {
        return Err(unreadable(format!("the body was {incomplete}")));
    }
    let body: serde_json::Value =
        serde_json::from_slice(&answer.body).map_err(|e| unreadable(e.to_string()))?;
    adapter(&Page {
        url: outbound.url(),
        headers: &answer.headers,
        body: &body,
        sent_ago,
    })
    .map_err(unreadable)
}
