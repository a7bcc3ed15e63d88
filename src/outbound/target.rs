//! An adapter with what it takes to call it ([`Target`]): HTTP clients, timeout,
//! authentication, retry policy, circuit breaker, quota; and the [`Registry`] of every provider.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderName, HeaderValue};
use secrecy::{ExposeSecret, SecretString};

use super::http::{http_client, ClientSpec, Connections};
use super::oauth::TokenSource;
use crate::adapter::{Adapter, Common, DynAdapter, ProviderAuth, ProviderSettings, StaticHeader};
use crate::catalog::ProviderId;
use crate::fleet::{Guard, Link};
use crate::resilience::{CircuitBreaker, Quota, RetryPolicy};
use crate::results::TargetResult;
use crate::secret::{scrub_text, scrub_value};

/// An adapter with what it needs to be called: its HTTP clients (keep-alive), its timeout, its
/// credentials and its protections.
pub struct Target {
    pub id: ProviderId,
    pub adapter: Box<dyn DynAdapter>,
    /// Where its options are in a request (`/targets/<name>`).
    pub options_at: String,
    /// One set of outbound clients per worker thread, built on first use: a worker's calls go
    /// through connections driven by its own runtime, without waking another thread.
    connections: thread_local::ThreadLocal<Connections>,
    /// How those clients are built (trust, proxy, idle connections kept, HTTP/2).
    spec: ClientSpec,
    pub timeout: Duration,
    pub auth: Authorizer,
    /// Headers sent on every request besides the authentication.
    pub headers: Vec<StaticHeader>,
    pub retry: RetryPolicy,
    pub breaker: CircuitBreaker,
    pub quota: Option<Quota>,
    /// Slots for calls in flight to this provider.
    slots: Slots,
    /// How long after an unanswered create a replay may send it again (`settle_s`).
    pub settle: Duration,
    /// Where a create could duplicate (adopt, settle, recheck), requests for one client take
    /// turns: by natural key, fleet-wide with Redis.
    pub guard: Guard,
    /// The configured secrets (and the proxy's credentials), scrubbed from anything relayed
    /// from the provider.
    secrets: Vec<SecretString>,
}

impl Target {
    /// Removes the provider's credentials (configured, as sent, or a token it issued lately) from
    /// what is relayed from it: its error messages and bodies, its records. Never waits (a token
    /// being fetched holds nothing it needs).
    pub fn scrub(&self, result: &mut TargetResult) {
        let tokens = match &self.auth {
            Authorizer::Token(source) => source.issued_tokens(),
            Authorizer::Fixed { .. } => Vec::new(),
        };
        let mut secrets: Vec<&str> = self.secrets.iter().map(|s| s.expose_secret()).collect();
        secrets.extend(tokens.iter().map(|t| t.expose_secret()));
        if let Some(e) = result.error.as_mut() {
            scrub_text(&mut e.message, &secrets);
            if let Some(body) = e.provider_error.as_mut() {
                scrub_value(body, &secrets);
            }
        }
        if let Some(body) = result.response.as_mut() {
            scrub_value(body, &secrets);
        }
    }

    /// A slot for a call in flight; waiting for it sends nothing. Over HTTP/2 (as this thread
    /// knows the provider) there are `max_connections` × `http2_max_streams` slots, over
    /// HTTP/1.1 (or until the protocol is known) `max_connections`.
    pub async fn slot(&self) -> Slot<'_> {
        let semaphore = if self.speaks_h2() {
            &self.slots.h2
        } else {
            &self.slots.h1
        };
        let permit = semaphore
            .acquire()
            .await
            .expect("the semaphore is never closed");
        Slot {
            _permit: permit,
            _counted: crate::metrics::CallInFlight::start(self.id),
        }
    }

    /// Whether this thread has learnt that the provider speaks HTTP/2.
    pub fn speaks_h2(&self) -> bool {
        self.connections().protocol() == Some(reqwest::Version::HTTP_2)
    }

    /// Connections at most to the provider (`max_connections`).
    pub fn max_connections(&self) -> usize {
        self.spec.max_connections
    }

    /// This thread's outbound clients for the provider.
    pub fn connections(&self) -> &Connections {
        self.connections.get_or(|| {
            Connections::new(&self.spec).expect("the HTTP clients were built once at start")
        })
    }
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Target")
            .field("provider", &self.id)
            .field("timeout", &self.timeout)
            .field("auth", &self.auth)
            .finish()
    }
}

/// How the gateway authenticates each request to a provider: a fixed header, or a token from
/// the provider's token endpoint (fetched, cached, refreshed).
pub enum Authorizer {
    Fixed {
        name: HeaderName,
        value: HeaderValue,
        /// The value's non-secret beginning (the scheme), shown in dry runs.
        prefix: &'static str,
    },
    Token(Arc<TokenSource>),
}

impl fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Authorizer::Fixed { name, prefix, .. } => {
                write!(f, "Fixed({name}: {prefix}{})", crate::secret::REDACTED)
            }
            Authorizer::Token(_) => f.write_str("Token"),
        }
    }
}

impl Authorizer {
    /// What the adapter declared, with `http` for a token endpoint.
    fn new(declared: ProviderAuth, http: &reqwest::Client) -> Self {
        match declared {
            ProviderAuth::Header {
                name,
                value,
                prefix,
            } => Authorizer::Fixed {
                name,
                value,
                prefix,
            },
            ProviderAuth::ClientCredentials(grant) => {
                Authorizer::Token(Arc::new(TokenSource::new(http.clone(), grant)))
            }
        }
    }

    /// The header as a dry run shows it: name and scheme, the secret redacted.
    pub fn shown(&self) -> (&str, String) {
        let redacted = crate::secret::REDACTED;
        match self {
            Authorizer::Fixed { name, prefix, .. } => {
                (name.as_str(), format!("{prefix}{redacted}"))
            }
            Authorizer::Token(_) => ("authorization", format!("Bearer {redacted}")),
        }
    }
}

/// The slots of calls in flight, by protocol.
struct Slots {
    h1: tokio::sync::Semaphore,
    h2: tokio::sync::Semaphore,
}

impl Slots {
    /// `max_connections` over HTTP/1.1, `http2_max_streams` each over HTTP/2.
    fn new(common: &Common) -> Self {
        let h2 = common
            .max_connections
            .saturating_mul(common.http2_max_streams);
        Self {
            h1: tokio::sync::Semaphore::new(common.max_connections),
            h2: tokio::sync::Semaphore::new(h2),
        }
    }
}

/// A call's slot, held while it is in flight.
pub struct Slot<'a> {
    _permit: tokio::sync::SemaphorePermit<'a>,
    _counted: crate::metrics::CallInFlight,
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
    /// Every provider's target, built once at start ([`build`]).
    pub fn new(targets: Vec<(ProviderId, Result<Target, Unavailable>)>) -> Self {
        Self {
            targets: targets
                .into_iter()
                .map(|(id, t)| (id, t.map(Arc::new)))
                .collect(),
        }
    }

    pub fn get(&self, id: ProviderId) -> Result<&Arc<Target>, &Unavailable> {
        self.targets
            .get(&id)
            .expect("every provider is registered")
            .as_ref()
    }

    /// The targets that can be selected.
    pub fn available_targets(&self) -> impl Iterator<Item = &Arc<Target>> + '_ {
        self.targets.values().filter_map(|t| t.as_ref().ok())
    }

    /// The providers that can be selected.
    pub fn available(&self) -> impl Iterator<Item = ProviderId> + '_ {
        self.targets
            .iter()
            .filter(|(_, t)| t.is_ok())
            .map(|(id, _)| *id)
    }
}

/// What the targets are built with besides their settings: the outbound trust and proxy, and
/// the link to Redis the replicas share (their guards and quotas are then fleet-wide).
pub struct BuildContext<'a> {
    pub egress: &'a crate::egress::Egress,
    pub link: Option<&'a Arc<Link>>,
}

/// Builds one provider's target: disabled or without credentials, it is unavailable; settings
/// it cannot work with stop the start.
pub fn build<A: Adapter>(
    id: ProviderId,
    settings: &A::Settings,
    context: &BuildContext<'_>,
) -> Result<Result<Target, Unavailable>, String> {
    let egress = context.egress;
    let common = settings.common();
    if !common.enabled {
        return Ok(Err(Unavailable(format!(
            "{} is disabled on this gateway (providers.{id}.enabled = false)",
            id.display_name()
        ))));
    }
    let at = |e: String| format!("providers.{id}: {e}");
    let adapter = A::new(settings).map_err(at)?;
    let spec = client_spec(id, &common, egress)?;
    // Built here, as every worker's first client is: a client that cannot be built stops the
    // start, not a worker's first call. A token endpoint, if any, is called through it.
    let http = http_client(&spec).map_err(at)?;
    let Some(auth) = A::auth(settings).map_err(at)? else {
        return Ok(Err(Unavailable(format!(
            "{} has no credentials configured on this gateway (providers.{id})",
            id.display_name()
        ))));
    };
    let headers = A::headers(settings).map_err(at)?;
    let secrets = scrubbed(settings.secrets(), &auth, &headers, egress);
    let auth = Authorizer::new(auth, &http);
    Ok(Ok(Target {
        id,
        adapter: Box::new(adapter),
        options_at: format!("/targets/{id}"),
        connections: thread_local::ThreadLocal::new(),
        spec,
        timeout: Duration::from_millis(common.timeout_ms),
        auth,
        headers,
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
            .map(|n| match context.link {
                Some(link) => Quota::shared(n, link.clone(), id.as_str(), common.base_url.as_str()),
                None => Quota::per_minute(n, id.as_str(), common.base_url.as_str()),
            }),
        slots: Slots::new(&common),
        settle: Duration::from_secs(common.settle_s),
        guard: Guard::new(id.as_str(), common.base_url.as_str(), context.link.cloned()),
        secrets,
    }))
}

/// What is scrubbed from what the provider relays: the configured secrets, the header as sent
/// (a Basic credential encoded), the secret static headers, the proxy's credentials.
fn scrubbed(
    configured: Vec<&SecretString>,
    auth: &ProviderAuth,
    headers: &[StaticHeader],
    egress: &crate::egress::Egress,
) -> Vec<SecretString> {
    let secret_headers = headers
        .iter()
        .filter(|h| h.secret)
        .filter_map(|h| h.value.to_str().ok())
        .map(|v| SecretString::from(v.to_owned()));
    configured
        .into_iter()
        .cloned()
        .chain(auth.sent_secret())
        .chain(secret_headers)
        .chain(egress.secrets().iter().cloned())
        .collect()
}

/// How the provider's outbound clients are built: the gateway's trust and the provider's own
/// CA, the proxy, HTTP/2, the connection caps and idle timeout.
fn client_spec(
    id: ProviderId,
    common: &Common,
    egress: &crate::egress::Egress,
) -> Result<ClientSpec, String> {
    let extra_roots = match &common.ca_file {
        Some(path) => crate::egress::read_ca_file(&format!("providers.{id}.ca_file"), path)?,
        None => Vec::new(),
    };
    Ok(ClientSpec {
        egress: egress.clone(),
        tls: egress
            .tls_config(&extra_roots, common.http2)
            .map_err(|e| format!("providers.{id}: {e}"))?,
        http2: common.http2,
        max_streams: common.http2_max_streams,
        max_connections: common.max_connections,
        idle: Duration::from_millis(common.idle_timeout_ms),
    })
}
