//! The adapters: one file per provider, each mapping the canonical client to that provider's
//! documented request, and its documented answers back to a normalized result.
//!
//! An adapter is pure (no I/O): [`Adapter::plan`] builds the request, [`Adapter::created`] reads a
//! success body, [`Adapter::error`] reads an error body. The HTTP exchange itself, the timeouts and
//! the authentication live in [`crate::fanout`], the same for all providers.

pub mod chatdash;
pub mod clockify;
pub mod lucca;
pub mod missionx;
mod oauth;
pub mod plusvibe;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderName, HeaderValue};
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;
use utoipa::ToSchema;

pub use oauth::TokenSource;

use crate::config::{Common, Settings};
use crate::domain::NewClient;
use crate::problem::FieldError;
use crate::resilience::{CircuitBreaker, Quota, RetryPolicy};

/// What replaces a secret wherever a request or response is shown.
pub const REDACTED: &str = "[redacted]";

/// The five providers, in the order results are listed.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ProviderId {
    Lucca,
    Clockify,
    Plusvibe,
    Chatdash,
    Missionx,
}

impl ProviderId {
    pub const ALL: [ProviderId; 5] = [
        ProviderId::Lucca,
        ProviderId::Clockify,
        ProviderId::Plusvibe,
        ProviderId::Chatdash,
        ProviderId::Missionx,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ProviderId::Lucca => "lucca",
            ProviderId::Clockify => "clockify",
            ProviderId::Plusvibe => "plusvibe",
            ProviderId::Chatdash => "chatdash",
            ProviderId::Missionx => "missionx",
        }
    }

    pub fn display_name(self) -> &'static str {
        match self {
            ProviderId::Lucca => "Lucca Project",
            ProviderId::Clockify => "Clockify",
            ProviderId::Plusvibe => "PlusVibe",
            ProviderId::Chatdash => "ChatDash",
            ProviderId::Missionx => "missionX",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == name)
    }
}

impl fmt::Display for ProviderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The normalized error kinds, the same for every provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    Validation,
    Conflict,
    Unauthorized,
    Forbidden,
    NotFound,
    RateLimited,
    Timeout,
    Unavailable,
    InvalidResponse,
    CircuitOpen,
    Internal,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Validation => "validation",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::NotFound => "not_found",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::InvalidResponse => "invalid_response",
            ErrorKind::CircuitOpen => "circuit_open",
            ErrorKind::Internal => "internal",
        }
    }
}

/// A provider's "no" (or silence), normalized.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ProviderError {
    pub kind: ErrorKind,
    /// Human-readable, from the provider's own message where it gave one.
    pub message: String,
    /// Whether the same request may succeed later without change.
    pub retryable: bool,
    /// Seconds the provider asked to wait (its `Retry-After`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_s: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_status: Option<u16>,
    /// The provider's error body, parsed, when it was JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub provider_error: Option<Value>,
}

impl ProviderError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        let retryable = matches!(
            kind,
            ErrorKind::RateLimited
                | ErrorKind::Timeout
                | ErrorKind::Unavailable
                | ErrorKind::CircuitOpen
        );
        Self {
            kind,
            message: message.into(),
            retryable,
            retry_after_s: None,
            provider_status: None,
            provider_error: None,
        }
    }

    /// The default reading of an HTTP error status; adapters refine it (conflicts) from the body.
    pub fn from_status(status: StatusCode, body: Option<&Value>) -> Self {
        let kind = match status.as_u16() {
            401 => ErrorKind::Unauthorized,
            403 => ErrorKind::Forbidden,
            404 => ErrorKind::NotFound,
            408 | 504 => ErrorKind::Timeout,
            409 => ErrorKind::Conflict,
            429 => ErrorKind::RateLimited,
            400..=499 => ErrorKind::Validation,
            300..=399 => ErrorKind::InvalidResponse,
            _ => ErrorKind::Unavailable,
        };
        let message = body
            .and_then(message_of)
            .unwrap_or_else(|| format!("answered HTTP {}", status.as_u16()));
        Self {
            provider_status: Some(status.as_u16()),
            provider_error: body.cloned(),
            ..Self::new(kind, message)
        }
    }

    pub fn with_kind(mut self, kind: ErrorKind) -> Self {
        self.retryable = ProviderError::new(kind, "").retryable;
        self.kind = kind;
        self
    }
}

/// The first human-readable message in a JSON error body (`message`, `error`, `title`, `detail`).
pub fn message_of(body: &Value) -> Option<String> {
    ["message", "error", "title", "detail", "error_description"]
        .iter()
        .find_map(|k| body.get(k).and_then(Value::as_str))
        .filter(|s| !s.trim().is_empty())
        .map(str::to_owned)
}

/// A login and password shown once to the caller (PlusVibe's generated password, or the ChatDash
/// member password the gateway generated).
#[derive(Clone, ToSchema)]
pub struct Credentials {
    #[schema(example = "nova.smith@nova.example")]
    pub login: String,
    #[schema(value_type = String, example = "Xp9#Ld2!ak")]
    pub password: SecretString,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("login", &self.login)
            .field("password", &REDACTED)
            .finish()
    }
}

impl<'de> Deserialize<'de> for Credentials {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Wire {
            login: String,
            password: String,
        }
        let w = Wire::deserialize(d)?;
        Ok(Credentials {
            login: w.login,
            password: SecretString::from(w.password),
        })
    }
}

impl Credentials {
    /// The same login with the password replaced by [`REDACTED`] (what a record keeps).
    pub fn redacted(&self) -> Self {
        Credentials {
            login: self.login.clone(),
            password: SecretString::from(REDACTED),
        }
    }
}

impl Serialize for Credentials {
    /// The password in clear: this is only ever serialized into the one 207 answer that created it.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Credentials", 2)?;
        st.serialize_field("login", &self.login)?;
        st.serialize_field("password", self.password.expose_secret())?;
        st.end()
    }
}

/// The request an adapter wants sent: always a JSON `POST`.
#[derive(Debug)]
pub struct Plan {
    pub url: Url,
    pub body: Value,
    /// JSON pointers of secrets inside `body`, redacted wherever the request is shown.
    pub secret_pointers: &'static [&'static str],
    /// Credentials the gateway generated for this request, returned once on success.
    pub credentials: Option<Credentials>,
}

/// What a success body told.
#[derive(Debug, Default)]
pub struct Created {
    pub id: Option<String>,
    pub credentials: Option<Credentials>,
}

/// One provider's mapping. Implementations are pure and live in one file each.
pub trait Adapter: Send + Sync + 'static {
    fn id(&self) -> ProviderId;

    /// Builds the provider request from the canonical client and this target's options (already
    /// merged with the configured defaults). Faults carry absolute pointers (`/targets/<id>/...`
    /// or `/client/...`); every fault is reported, not just the first.
    fn plan(&self, client: &NewClient, options: &Value) -> Result<Plan, Vec<FieldError>>;

    /// Reads a 2xx JSON body: the provider-assigned id and any generated credentials. An `Err`
    /// says why the body does not look like the documented success.
    fn created(&self, body: &Value) -> Result<Created, String>;

    /// Maps a non-2xx answer to the normalized error.
    fn error(&self, status: StatusCode, body: Option<&Value>) -> ProviderError {
        ProviderError::from_status(status, body)
    }

    /// JSON pointers of secrets inside the success body, redacted before it is returned as
    /// `response`.
    fn response_secrets(&self) -> &'static [&'static str] {
        &[]
    }
}

/// How a provider authenticates the gateway.
pub enum Auth {
    /// A fixed header (API key or static bearer token); the value is marked sensitive. The
    /// `&str` is the non-secret prefix of the value (the scheme), shown in dry runs.
    Header(HeaderName, HeaderValue, &'static str),
    /// OAuth2 client credentials: a bearer token fetched, cached and refreshed.
    OAuth2(Arc<TokenSource>),
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::Header(name, _, prefix) => write!(f, "Header({name}: {prefix}{REDACTED})"),
            Auth::OAuth2(_) => f.write_str("OAuth2"),
        }
    }
}

impl Auth {
    /// A header `name: {prefix}{secret}`, e.g. `authorization: lucca application=KEY`.
    pub fn header(name: &'static str, prefix: &'static str, secret: &str) -> Result<Self, String> {
        let mut value = HeaderValue::from_str(&format!("{prefix}{secret}"))
            .map_err(|_| "the credential is not a valid HTTP header value".to_owned())?;
        value.set_sensitive(true);
        Ok(Auth::Header(HeaderName::from_static(name), value, prefix))
    }

    /// The header as a dry run shows it: name and scheme, the secret redacted.
    pub fn shown(&self) -> (&str, String) {
        match self {
            Auth::Header(name, _, prefix) => (name.as_str(), format!("{prefix}{REDACTED}")),
            Auth::OAuth2(_) => ("authorization", format!("Bearer {REDACTED}")),
        }
    }
}

/// An adapter with what it needs to be called: its HTTP clients (keep-alive), its timeout and
/// its credentials.
pub struct Target {
    pub adapter: Box<dyn Adapter>,
    /// One outbound client per worker thread, built on first use: a worker's calls go through
    /// connections driven by its own runtime, without waking another thread.
    http: thread_local::ThreadLocal<reqwest::Client>,
    /// Idle keep-alive connections kept per worker thread.
    max_idle: usize,
    pub timeout: Duration,
    pub auth: Auth,
    pub retry: RetryPolicy,
    pub breaker: CircuitBreaker,
    pub quota: Option<Quota>,
    /// Slots for requests in flight to this provider (`max_connections`).
    pub slots: tokio::sync::Semaphore,
}

impl Target {
    /// This thread's outbound client for the provider.
    pub fn http(&self) -> &reqwest::Client {
        self.http
            .get_or(|| http_client(self.max_idle).expect("the HTTP client was built once at start"))
    }
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Target")
            .field("provider", &self.adapter.id())
            .field("timeout", &self.timeout)
            .field("auth", &self.auth)
            .finish()
    }
}

/// Why a provider cannot be selected on this gateway.
#[derive(Debug, Clone)]
pub struct Unavailable(pub String);

/// Every provider, available or not (and why not).
#[derive(Debug)]
pub struct Registry {
    targets: BTreeMap<ProviderId, Result<Arc<Target>, Unavailable>>,
}

impl Registry {
    /// Builds every adapter once from the settings.
    pub fn from_settings(settings: &Settings) -> Result<Self, String> {
        let p = &settings.providers;
        let mut targets = BTreeMap::new();
        targets.insert(ProviderId::Lucca, lucca::target(&p.lucca)?);
        targets.insert(ProviderId::Clockify, clockify::target(&p.clockify)?);
        targets.insert(ProviderId::Plusvibe, plusvibe::target(&p.plusvibe)?);
        targets.insert(ProviderId::Chatdash, chatdash::target(&p.chatdash)?);
        targets.insert(ProviderId::Missionx, missionx::target(&p.missionx)?);
        Ok(Self {
            targets: targets
                .into_iter()
                .map(|(id, t)| (id, t.map(Arc::new)))
                .collect(),
        })
    }

    pub fn get(&self, id: ProviderId) -> Result<&Arc<Target>, &Unavailable> {
        self.targets
            .get(&id)
            .expect("every provider is registered")
            .as_ref()
    }

    /// The providers that can be selected.
    pub fn available(&self) -> impl Iterator<Item = ProviderId> + '_ {
        self.targets
            .iter()
            .filter(|(_, t)| t.is_ok())
            .map(|(id, _)| *id)
    }
}

/// The outbound HTTP client of one provider, built once.
pub fn http_client(max_idle: usize) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .user_agent(concat!("clients-gateway/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(3))
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(max_idle)
        .tcp_nodelay(true)
        // A create call is never replayed elsewhere: a redirect (usually a wrong base_url)
        // is reported, not followed.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// Common construction: disabled or missing credentials make the provider unavailable.
pub fn build_target(
    adapter: impl Adapter,
    common: Common,
    auth: Option<Result<Auth, String>>,
) -> Result<Result<Target, Unavailable>, String> {
    let id = adapter.id();
    if !common.enabled {
        return Ok(Err(Unavailable(format!(
            "{} is disabled on this gateway (providers.{id}.enabled = false)",
            id.display_name()
        ))));
    }
    let Some(auth) = auth else {
        return Ok(Err(Unavailable(format!(
            "{} has no credentials configured on this gateway (providers.{id})",
            id.display_name()
        ))));
    };
    let auth = auth.map_err(|e| format!("providers.{id}: {e}"))?;
    // One client built here, and dropped: a client that cannot be built stops the start, not
    // a worker's first call.
    http_client(common.max_connections)?;
    Ok(Ok(Target {
        adapter: Box::new(adapter),
        http: thread_local::ThreadLocal::new(),
        max_idle: common.max_connections,
        timeout: Duration::from_millis(common.timeout_ms),
        auth,
        retry: RetryPolicy {
            max_attempts: common.max_attempts,
            base: Duration::from_millis(common.retry_base_delay_ms),
            max: Duration::from_millis(common.retry_max_delay_ms),
        },
        breaker: CircuitBreaker::new(
            id,
            common.circuit_failure_threshold,
            Duration::from_millis(common.circuit_cooldown_ms),
        ),
        quota: common
            .max_per_minute
            .and_then(std::num::NonZeroU32::new)
            .map(Quota::per_minute),
        slots: tokio::sync::Semaphore::new(common.max_connections),
    }))
}

/// Joins a base URL (the prefix before the documented path) with path segments, each
/// percent-encoded as one segment.
pub fn join_url(base: &Url, segments: &[&str]) -> Url {
    let mut url = base.clone();
    {
        let mut path = url
            .path_segments_mut()
            .expect("base URLs are checked at start to be http(s)");
        path.pop_if_empty();
        for s in segments {
            path.push(s);
        }
    }
    url
}

/// Documentation of `targets`: one optional member per provider, at least one, no other.
/// Written by hand because the derive cannot state `minProperties`.
pub struct TargetsSchema;

impl utoipa::PartialSchema for TargetsSchema {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Type};
        use utoipa::openapi::Ref;
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "The providers to create the client in: a key present means \"create it there\". \
                 At least one. Each value holds that provider's options; `{}` uses the gateway's \
                 configured defaults.",
            ))
            .property("lucca", Ref::from_schema_name("LuccaOptions"))
            .property("clockify", Ref::from_schema_name("ClockifyOptions"))
            .property("plusvibe", Ref::from_schema_name("PlusvibeOptions"))
            .property("chatdash", Ref::from_schema_name("ChatdashOptions"))
            .property("missionx", Ref::from_schema_name("MissionxOptions"))
            .min_properties(Some(1))
            .additional_properties(Some(AdditionalProperties::FreeForm(false)))
            .into()
    }
}

impl ToSchema for TargetsSchema {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        fn add<T: ToSchema>(
            schemas: &mut Vec<(
                String,
                utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
            )>,
        ) {
            schemas.push((T::name().into(), T::schema()));
            T::schemas(schemas);
        }
        add::<lucca::LuccaOptions>(schemas);
        add::<clockify::ClockifyOptions>(schemas);
        add::<plusvibe::PlusvibeOptions>(schemas);
        add::<chatdash::ChatdashOptions>(schemas);
        add::<missionx::MissionxOptions>(schemas);
    }
}

/// Replaces the values at `pointers` (where present) by [`REDACTED`].
pub fn redact(mut value: Value, pointers: &[&str]) -> Value {
    for p in pointers {
        if let Some(v) = value.pointer_mut(p) {
            if !v.is_null() {
                *v = Value::String(REDACTED.into());
            }
        }
    }
    value
}

/// A transport error in words, without the URL: the innermost cause says what went wrong
/// ("Connection refused", "connection reset").
pub fn describe_transport(e: &reqwest::Error) -> String {
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
    let mut last = None;
    while let Some(s) = source {
        last = Some(s.to_string());
        source = s.source();
    }
    last.unwrap_or_else(|| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_url_keeps_the_base_path_and_encodes_segments() {
        let base = Url::parse("https://api.clockify.me/api").unwrap();
        let url = join_url(&base, &["v1", "workspaces", "a/b c", "clients"]);
        assert_eq!(
            url.as_str(),
            "https://api.clockify.me/api/v1/workspaces/a%2Fb%20c/clients"
        );
        let base = Url::parse("http://127.0.0.1:9/").unwrap();
        assert_eq!(
            join_url(&base, &["client"]).as_str(),
            "http://127.0.0.1:9/client"
        );
    }

    #[test]
    fn status_mapping() {
        let k = |s: u16| ProviderError::from_status(StatusCode::from_u16(s).unwrap(), None).kind;
        assert_eq!(k(400), ErrorKind::Validation);
        assert_eq!(k(401), ErrorKind::Unauthorized);
        assert_eq!(k(403), ErrorKind::Forbidden);
        assert_eq!(k(404), ErrorKind::NotFound);
        assert_eq!(k(408), ErrorKind::Timeout);
        assert_eq!(k(409), ErrorKind::Conflict);
        assert_eq!(k(422), ErrorKind::Validation);
        assert_eq!(k(429), ErrorKind::RateLimited);
        assert_eq!(k(500), ErrorKind::Unavailable);
        assert_eq!(k(503), ErrorKind::Unavailable);
        assert_eq!(k(504), ErrorKind::Timeout);
        assert_eq!(k(301), ErrorKind::InvalidResponse);
    }

    #[test]
    fn credentials_debug_is_redacted() {
        let c = Credentials {
            login: "l".into(),
            password: SecretString::from("hunter2"),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
