//! OAuth2 client-credentials tokens: fetched once however many requests need one at the same
//! moment, cached until shortly before `expires_in`, dropped when the provider answers 401.

use std::time::Duration;

use reqwest::header::{HeaderValue, ACCEPT};
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::adapter::ClientCredentials;
use crate::net::{describe_transport, read_limited, Incomplete};
use crate::provider_error::{message_of, ErrorKind, ProviderError};

/// Lifetime assumed when the token endpoint gives no `expires_in`.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);
/// Longest lifetime believed: a token is fetched again after a day whatever `expires_in` says
/// (and no number from the endpoint can overflow a clock).
const MAX_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// Largest token endpoint answer read.
const MAX_TOKEN_ANSWER_BYTES: usize = 64 * 1024;
/// A token request that takes longer is given up: the cache is not held by a hung endpoint,
/// and the next call asks again.
const TOKEN_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// A token is renewed this long before it expires (at most a tenth of its lifetime).
const RENEW_MARGIN: Duration = Duration::from_secs(60);

/// A client-credentials grant: the token endpoint and what to send it.
pub struct TokenSource {
    http: reqwest::Client,
    grant: ClientCredentials,
    cache: Mutex<Option<Cached>>,
    /// Every token issued lately (the newest last), whether still cached or not: what may have
    /// been sent, so what is scrubbed from what the provider relays. Never held across an await.
    issued: parking_lot::Mutex<std::collections::VecDeque<SecretString>>,
}

/// Tokens remembered for scrubbing (a 401 drops one; a day's lifetime ends another).
const ISSUED_KEPT: usize = 16;

/// The token endpoint's success (RFC 6749 §5.1).
#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    /// Seconds; read leniently (a token with an odd lifetime still works, for the default one).
    #[serde(default)]
    expires_in: Option<Value>,
}

struct Cached {
    header: HeaderValue,
    token: SecretString,
    renew_at: Instant,
}

impl TokenSource {
    pub fn new(http: reqwest::Client, grant: ClientCredentials) -> Self {
        Self {
            http,
            grant,
            cache: Mutex::new(None),
            issued: parking_lot::Mutex::new(std::collections::VecDeque::new()),
        }
    }

    /// The `Authorization: Bearer ...` value to send. Concurrent callers wait on one fetch.
    pub async fn authorization(&self) -> Result<HeaderValue, ProviderError> {
        let mut cache = self.cache.lock().await;
        if let Some(c) = cache.as_ref() {
            if Instant::now() < c.renew_at {
                return Ok(c.header.clone());
            }
        }
        let fresh = self.fetch().await?;
        let header = fresh.header.clone();
        {
            let mut issued = self.issued.lock();
            if issued.len() == ISSUED_KEPT {
                issued.pop_front();
            }
            issued.push_back(fresh.token.clone());
        }
        *cache = Some(fresh);
        Ok(header)
    }

    /// Every token issued lately, the one cached now included: those a request may have sent
    /// (to scrub them from what the provider relays). Never waits for a token being fetched.
    pub fn issued_tokens(&self) -> Vec<SecretString> {
        self.issued.lock().iter().cloned().collect()
    }

    /// Forgets `rejected` (the provider answered 401 to it), unless a newer token replaced it.
    pub async fn invalidate(&self, rejected: &HeaderValue) {
        let mut cache = self.cache.lock().await;
        if cache.as_ref().is_some_and(|c| c.header == rejected) {
            *cache = None;
        }
    }

    async fn fetch(&self) -> Result<Cached, ProviderError> {
        let (status, body) = Box::pin(self.ask()).await?;
        if !status.is_success() {
            return Err(refused(status, body.as_ref()));
        }
        let answer = body
            .as_ref()
            .and_then(|b| TokenAnswer::deserialize(b).ok())
            .filter(|a| !a.access_token.is_empty());
        let Some(answer) = answer else {
            return Err(ProviderError::new(
                ErrorKind::InvalidResponse,
                "token endpoint answered without an `access_token`",
            ));
        };
        let token = answer.access_token;
        let mut header = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
            ProviderError::new(
                ErrorKind::InvalidResponse,
                "token endpoint answered an access token that is not a valid header value",
            )
        })?;
        header.set_sensitive(true);
        let lifetime = answer
            .expires_in
            .as_ref()
            .and_then(Value::as_u64)
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_LIFETIME)
            .min(MAX_LIFETIME);
        let margin = RENEW_MARGIN.min(lifetime / 10);
        Ok(Cached {
            header,
            token: SecretString::from(token),
            renew_at: Instant::now() + lifetime - margin,
        })
    }

    /// The client-credentials grant, sent: the token endpoint's status and its JSON body (read
    /// within [`MAX_TOKEN_ANSWER_BYTES`]).
    async fn ask(&self) -> Result<(StatusCode, Option<Value>), ProviderError> {
        let grant = &self.grant;
        let mut form = vec![
            ("grant_type", "client_credentials"),
            ("client_id", grant.client_id.as_str()),
            ("client_secret", grant.client_secret.expose_secret()),
        ];
        if let Some(scope) = &grant.scope {
            form.push(("scope", scope));
        }
        let mut request = self
            .http
            .post(grant.token_url.clone())
            .header(ACCEPT, "application/json")
            .timeout(TOKEN_REQUEST_TIMEOUT)
            .form(&form);
        for (name, value) in &grant.headers {
            request = request.header(name, value);
        }
        let response = request.send().await.map_err(|e| {
            let mut err = ProviderError::new(
                ErrorKind::Unavailable,
                format!("token endpoint unreachable: {}", describe_transport(&e)),
            );
            err.retryable = true;
            err
        })?;
        let status = response.status();
        let (bytes, cut) = read_limited(response, MAX_TOKEN_ANSWER_BYTES).await;
        if let Some(cut) = cut {
            let kind = match cut {
                Incomplete::TooLarge(_) => ErrorKind::InvalidResponse,
                Incomplete::Broken(_) => ErrorKind::Unavailable,
            };
            return Err(ProviderError::new(
                kind,
                format!("token endpoint answer {cut}"),
            ));
        }
        Ok((status, serde_json::from_slice(&bytes).ok()))
    }
}

/// The token endpoint's refusal: the client credentials are not accepted (400, 401, 403), or it
/// failed otherwise (a redirect, a 5xx: worth asking again later). Its status is in the
/// message, never the target's `provider_status`: the create was not sent.
fn refused(status: StatusCode, body: Option<&Value>) -> ProviderError {
    let code = status.as_u16();
    let (kind, what) = match code {
        400 | 401 | 403 => (ErrorKind::Unauthorized, "refused the client credentials"),
        429 => (ErrorKind::RateLimited, "asked to wait"),
        _ => (ErrorKind::Unavailable, "failed"),
    };
    let reason = body
        .and_then(message_of)
        .map_or_else(|| format!("HTTP {code}"), |m| format!("HTTP {code}: {m}"));
    ProviderError::new(
        kind,
        format!("the token endpoint {what} ({reason}); the create was not sent"),
    )
}
