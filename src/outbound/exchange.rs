//! One request to one provider, in named steps: take the quota, get the authorization, wait for
//! a connection slot, send, refresh a refused token once, read the answer within bounds, and ask
//! the retry policy whether to send again. What the answer means is for the caller to read.

use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{
    HeaderMap, HeaderName, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER,
};
use reqwest::{Method, StatusCode};
use tokio::time::Instant;
use url::Url;

use super::{connecting_by, Authorizer, Target};
use crate::adapter::{Reply, Request};
use crate::net::{describe_transport, read_limited, unprocessed, Incomplete};
use crate::provider_error::{ErrorKind, ProviderError};
use crate::resilience::{Attempt, Decision, QuotaRefusal};

/// How much before the request's time runs out a connection it makes must be there.
const CONNECT_MARGIN: Duration = Duration::from_millis(50);

/// Largest provider answer read; a larger one is cut (and reported as such).
pub const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// A request as it goes on the wire: the body serialized once, the JSON tree dropped (a call
/// may wait for a connection slot; what it keeps meanwhile should be small).
pub struct Outbound {
    method: Method,
    url: Url,
    body: Option<Bytes>,
}

impl Outbound {
    pub fn url(&self) -> &Url {
        &self.url
    }
}

impl From<&Request> for Outbound {
    fn from(request: &Request) -> Self {
        Self {
            method: request.method.clone(),
            url: request.url.clone(),
            body: request
                .body
                .as_ref()
                .map(|b| Bytes::from(serde_json::to_vec(b).expect("a JSON value serializes"))),
        }
    }
}

/// What a provider answered, read within [`MAX_ANSWER_BYTES`].
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// Its `Retry-After`, from now.
    pub retry_after: Option<Duration>,
    pub content_type: String,
    pub body: Vec<u8>,
    /// Why the body is incomplete, if it is (too large, connection cut).
    pub incomplete: Option<Incomplete>,
}

impl Answer {
    /// Its body as JSON, when the body is whole, not empty, and JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        match (&self.incomplete, self.body.is_empty()) {
            (None, false) => serde_json::from_slice(&self.body).ok(),
            _ => None,
        }
    }

    /// The answer as an adapter reads it (`json`: from [`Answer::json`]).
    pub fn reply<'a>(&'a self, json: Option<&'a serde_json::Value>) -> Reply<'a> {
        Reply {
            status: self.status,
            content_type: &self.content_type,
            body: &self.body,
            json,
            incomplete: self.incomplete.as_ref(),
        }
    }
}

/// How an exchange ended.
pub enum Exchanged {
    /// The provider answered (a final answer: not one to retry, or no attempt or time left).
    Answered(Answer),
    /// Nothing reached the provider: refused connection, quota, token endpoint.
    NotSent(ProviderError),
    /// The request was sent and the connection failed before an answer.
    Lost(String),
}

/// Where an exchange stands, kept outside it so that a timeout can read it.
#[derive(Default)]
pub struct Progress {
    /// A request is on its way and may be acted on.
    pub in_flight: bool,
    /// Requests sent.
    pub attempts: u32,
}

/// Sends `request` until the retry policy says stop, never past `until`. `safe`: the request
/// changes nothing at the provider (a lookup), so it may be sent again whatever happened.
pub async fn exchange(
    target: &Target,
    request: &Outbound,
    until: Instant,
    progress: &mut Progress,
    safe: bool,
) -> Exchanged {
    let mut token_refreshed = false;
    loop {
        // What an attempt gave is dropped before the pause: a call waiting to be sent again
        // keeps no answer.
        let pause = {
            let (attempt, last) =
                match Box::pin(once(target, request, until, progress, token_refreshed)).await {
                    Once::Ended(attempt, last) => (attempt, last),
                    Once::Early(exchanged) => return exchanged,
                    // The token was refused, so nothing was created: send again with a new one.
                    Once::TokenRefreshed => {
                        token_refreshed = true;
                        continue;
                    }
                };
            let remaining = until.saturating_duration_since(Instant::now());
            match target
                .retry
                .decide(attempt, progress.attempts, remaining, rand::random(), safe)
            {
                Decision::Stop => return last,
                Decision::RetryAfter(pause) => pause,
            }
        };
        tracing::debug!(
            attempt = progress.attempts,
            pause_ms = u64::try_from(pause.as_millis()).unwrap_or(u64::MAX),
            "retrying"
        );
        Box::pin(tokio::time::sleep(pause)).await;
    }
}

/// What one attempt gave.
enum Once {
    /// Sent (or not): what it gave, for the retry policy, and what it is.
    Ended(Attempt, Exchanged),
    /// Nothing could be sent, and no attempt will do better (quota, token endpoint, slots).
    Early(Exchanged),
    /// The token was refused and dropped: the next attempt fetches a new one.
    TokenRefreshed,
}

/// One attempt: the quota, the authorization, a connection slot, the request, the answer read.
async fn once(
    target: &Target,
    request: &Outbound,
    until: Instant,
    progress: &mut Progress,
    token_refreshed: bool,
) -> Once {
    if let Err(e) = Box::pin(take_quota(target)).await {
        return Once::Early(Exchanged::NotSent(e));
    }
    let (auth_name, auth_value) = match authorization(target).await {
        Ok(auth) => auth,
        Err(e) => return Once::Early(Exchanged::NotSent(e)),
    };
    // A burst waits for a slot, but at most half of what is left: a call sent with too
    // little time for the provider to answer would only end unknown.
    let wait = until.saturating_duration_since(Instant::now()) / 2;
    let Ok(_slot) = Box::pin(tokio::time::timeout(wait, target.slot())).await else {
        return Once::Early(Exchanged::NotSent(all_busy(target)));
    };
    // Waiting for the client (while the provider's protocol is learnt) sends nothing either.
    let connections = target.connections();
    let lane = Box::pin(connections.choose()).await;
    progress.in_flight = true;
    progress.attempts += 1;
    // The connection (if one is made) must be there a little before the request's time runs
    // out: a connection still being made then is a connection error, nothing sent, rather than
    // a request that may have reached the provider.
    let connect_by = until.checked_sub(CONNECT_MARGIN).unwrap_or(until);
    let sent = connecting_by(
        connect_by,
        send(lane.http, target, request, auth_name, auth_value.clone()),
    )
    .await;
    connections.learn(sent.as_ref().map(reqwest::Response::version));
    drop(lane);
    let ended = Box::pin(outcome(target, sent, &auth_value, token_refreshed)).await;
    // The provider answered or was never reached: nothing is in flight any more.
    progress.in_flight = false;
    ended
}

/// What an attempt's send gave: not sent (no connection, a stream refused unprocessed), lost
/// (the request may have reached the provider), a refused token dropped, or the answer read.
async fn outcome(
    target: &Target,
    sent: reqwest::Result<reqwest::Response>,
    auth_value: &HeaderValue,
    token_refreshed: bool,
) -> Once {
    match sent {
        Err(e) if e.is_connect() => {
            Once::Ended(Attempt::NotConnected, Exchanged::NotSent(not_connected(&e)))
        }
        Err(e) if unprocessed(&e) => {
            Once::Ended(Attempt::NotConnected, Exchanged::NotSent(refused(&e)))
        }
        Err(e) => Once::Ended(Attempt::Lost, Exchanged::Lost(describe_transport(&e))),
        Ok(response) => {
            let status = response.status().as_u16();
            if let (Authorizer::Token(source), true) = (
                &target.auth,
                target.retry.refresh_token(status, token_refreshed),
            ) {
                Box::pin(source.invalidate(auth_value)).await;
                return Once::TokenRefreshed;
            }
            let answer = Box::pin(read_answer(response)).await;
            let attempt = Attempt::Answered {
                status: answer.status.as_u16(),
                retry_after: answer.retry_after,
            };
            Once::Ended(attempt, Exchanged::Answered(answer))
        }
    }
}

/// The gateway's own outbound limit for the provider. Earlier attempts, if any, were ones the
/// provider cannot have acted on (that is when a request is sent again), so nothing was created.
async fn take_quota(target: &Target) -> Result<(), ProviderError> {
    let Some(quota) = &target.quota else {
        return Ok(());
    };
    quota.take().await.map_err(|refusal| match refusal {
        QuotaRefusal::Spent(wait) => {
            let mut err = ProviderError::new(
                ErrorKind::RateLimited,
                "the gateway's outbound limit for this provider is reached (providers.<name>.max_per_minute); nothing was sent",
            );
            err.retry_after_s = Some(wait.as_secs().max(1));
            err
        }
        QuotaRefusal::Misconfigured(why) => not_acted_on(format!(
            "the fleet-wide outbound limit cannot be taken: {why}; nothing was sent"
        )),
    })
}

/// The authorization header: the configured one, or a (cached) OAuth2 token.
async fn authorization(target: &Target) -> Result<(HeaderName, HeaderValue), ProviderError> {
    match &target.auth {
        Authorizer::Fixed { name, value, .. } => Ok((name.clone(), value.clone())),
        Authorizer::Token(source) => Box::pin(source.authorization())
            .await
            .map(|value| (AUTHORIZATION, value)),
    }
}

async fn send(
    http: &reqwest::Client,
    target: &Target,
    request: &Outbound,
    auth_name: HeaderName,
    auth_value: HeaderValue,
) -> Result<reqwest::Response, reqwest::Error> {
    let mut builder = http
        .request(request.method.clone(), request.url.clone())
        .header(auth_name, auth_value)
        .header(ACCEPT, HeaderValue::from_static("application/json"));
    for header in &target.headers {
        builder = builder.header(header.name.clone(), header.value.clone());
    }
    if let Some(body) = &request.body {
        builder = builder
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(body.clone());
    }
    // Boxed: only calls under way hold the exchange's (large) state, not the ones waiting for a
    // slot.
    Box::pin(builder.send()).await
}

fn all_busy(target: &Target) -> ProviderError {
    let mut err = not_acted_on(format!(
        "every connection to the provider was busy (providers.{}.max_connections = {}) for half of the time left; nothing was sent",
        target.id,
        target.max_connections()
    ));
    err.retry_after_s = Some(1);
    err
}

fn not_connected(e: &reqwest::Error) -> ProviderError {
    not_acted_on(format!(
        "could not connect: {}; nothing was sent",
        describe_transport(e)
    ))
}

fn refused(e: &reqwest::Error) -> ProviderError {
    not_acted_on(format!(
        "the provider refused the request unprocessed: {}; nothing was created",
        describe_transport(e)
    ))
}

/// The provider did not act on the request: `unavailable`, and worth sending again.
fn not_acted_on(message: String) -> ProviderError {
    let mut err = ProviderError::new(ErrorKind::Unavailable, message);
    err.retryable = true;
    err
}

/// Reads the answer's body, at most [`MAX_ANSWER_BYTES`]; a cut or an oversized body is noted,
/// not an error.
async fn read_answer(response: reqwest::Response) -> Answer {
    let status = response.status();
    let headers = response.headers().clone();
    let retry_after = retry_after(&headers);
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let (body, incomplete) = read_limited(response, MAX_ANSWER_BYTES).await;
    Answer {
        status,
        headers,
        retry_after,
        content_type,
        body,
        incomplete,
    }
}

/// Longest `Retry-After` believed (a provider's number goes into the answer and into
/// comparisons, never unbounded).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// `Retry-After` as a duration from now: delta-seconds or an HTTP date, at most
/// [`MAX_RETRY_AFTER`].
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let after = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => {
            let at = httpdate::parse_http_date(value).ok()?;
            at.duration_since(std::time::SystemTime::now())
                .unwrap_or(Duration::ZERO)
        }
    };
    Some(after.min(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_and_dates() {
        let secs = |h: &HeaderMap| retry_after(h).map(|d| d.as_secs());
        let mut h = HeaderMap::new();
        assert_eq!(secs(&h), None);
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(secs(&h), Some(7));
        let later = std::time::SystemTime::now() + Duration::from_secs(120);
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_str(&httpdate::fmt_http_date(later)).unwrap(),
        );
        let s = secs(&h).unwrap();
        assert!((118..=120).contains(&s), "{s}");
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(secs(&h), Some(0));
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(secs(&h), None);
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("18446744073709551615"),
        );
        assert_eq!(secs(&h), Some(86_400), "bounded");
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Fri, 31 Dec 9999 23:59:59 GMT"),
        );
        assert_eq!(secs(&h), Some(86_400), "bounded");
    }
}
