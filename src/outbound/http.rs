//! The outbound HTTP clients of one provider, and how they learn the provider's protocol.
//!
//! Over TLS a client offers HTTP/2 and HTTP/1.1 (ALPN) and the provider picks. With HTTP/2 the
//! calls share a connection as streams, at most `http2_max_streams` at a time (default 100: under
//! the stream limit servers commonly set — nginx allows 128 — and few enough that the request
//! bodies in flight fit the peer's first flow-control window, so each leaves in one DATA frame);
//! past that, another connection (a *lane*: its own client, one HTTP/2 connection) is opened.
//! HTTP/1.1 needs a connection per call in flight anyway: one client, its pool.
//!
//! A connection is chosen when it is made: a burst of calls with no live connection would each
//! open one before the first handshake tells that the provider speaks HTTP/2. So while the
//! protocol is not known — the first call, after the connection may have closed (no answer for
//! the idle timeout), after a connection could not be made — calls go one at a time (each
//! waiting at most [`LEARNING_WAIT`]). Lanes opened once HTTP/2 is known offer HTTP/2 alone, and make one
//! connection at a time.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, SemaphorePermit};

use crate::egress::Egress;

/// How long a call waits for the call that is learning the protocol; past it, it goes on its
/// own connection.
pub const LEARNING_WAIT: Duration = Duration::from_millis(500);

/// How an outbound client of a provider is built.
#[derive(Debug, Clone)]
pub struct ClientSpec {
    /// The proxy.
    pub egress: Egress,
    /// Trust (the gateway's, and the provider's own `ca_file`) and ALPN; shared by the clients
    /// of every worker (one session cache).
    pub tls: rustls::ClientConfig,
    /// Offer HTTP/2 (`providers.<name>.http2`).
    pub http2: bool,
    /// Calls in flight at most on one HTTP/2 connection (`providers.<name>.http2_max_streams`).
    pub max_streams: usize,
    /// Connections at most to the provider (`providers.<name>.max_connections`); as many idle
    /// HTTP/1.1 connections are kept.
    pub max_connections: usize,
    /// An idle connection is closed after this long (`providers.<name>.idle_timeout_ms`); with
    /// no answer for this long, there may be no live connection.
    pub idle: Duration,
}

/// An outbound client built from `spec`, offering what it allows.
pub fn http_client(spec: &ClientSpec) -> Result<reqwest::Client, String> {
    client(spec, false)
}

/// `h2_only`: offer HTTP/2 alone (ALPN), and make one connection at a time.
fn client(spec: &ClientSpec, h2_only: bool) -> Result<reqwest::Client, String> {
    let h2_tls;
    let tls = if h2_only {
        let mut tls = spec.tls.clone();
        tls.alpn_protocols = vec![b"h2".to_vec()];
        h2_tls = tls;
        &h2_tls
    } else {
        &spec.tls
    };
    let mut builder = spec
        .egress
        .builder(tls)
        .user_agent(concat!("clients-gateway/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(3))
        .pool_idle_timeout(spec.idle)
        .pool_max_idle_per_host(spec.max_connections)
        .tcp_nodelay(true)
        // HTTP/2: the window grows with the bandwidth-delay product; pings find a dead shared
        // connection before a call does.
        .http2_adaptive_window(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .http2_keep_alive_timeout(Duration::from_secs(10))
        // A create call is never replayed elsewhere: a redirect (usually a wrong base_url)
        // is reported, not followed.
        .redirect(reqwest::redirect::Policy::none())
        // The gateway's own retry policy decides what is sent again (src/resilience/retry.rs,
        // which also resends what an HTTP/2 provider refused unprocessed): reqwest's would keep
        // a copy of every request in flight to resend it unseen.
        .retry(reqwest::retry::never().max_retries_per_request(0))
        // A connection the request makes is made within the request's time, or it is a
        // connection error: nothing was written.
        .connector_layer(ConnectDeadlineLayer);
    if h2_only {
        builder = builder.http2_prior_knowledge();
    } else if !spec.http2 {
        builder = builder.http1_only();
    }
    builder
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

tokio::task_local! {
    /// When a connection the current request makes must be made by.
    static CONNECT_BY: tokio::time::Instant;
}

/// Runs `request`, the connections it makes (TCP, a proxy's tunnel, TLS) bounded by `by`: one
/// not made by then fails as a connection error, before anything of the request is written.
/// So a request whose time runs out while its connection is being made (SYNs dropped by a
/// firewall, a proxy silent after its `200` to `CONNECT`) is known not to have been sent; one
/// that runs out once a connection is there may have been.
pub async fn connecting_by<F: Future>(by: tokio::time::Instant, request: F) -> F::Output {
    CONNECT_BY.scope(by, request).await
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The connector layer of [`connecting_by`].
#[derive(Clone)]
struct ConnectDeadlineLayer;

impl<S> tower_layer::Layer<S> for ConnectDeadlineLayer {
    type Service = ConnectDeadline<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ConnectDeadline { inner }
    }
}

#[derive(Clone)]
struct ConnectDeadline<S> {
    inner: S,
}

impl<S, R> tower_service::Service<R> for ConnectDeadline<S>
where
    S: tower_service::Service<R, Error = BoxError>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        // Read where the request is being polled: the connection is made for it.
        let by = CONNECT_BY.try_with(|by| *by).ok();
        let connecting = self.inner.call(request);
        Box::pin(async move {
            match by {
                Some(by) => tokio::time::timeout_at(by, connecting)
                    .await
                    .unwrap_or_else(|_| {
                        Err("no connection could be made within the request's time".into())
                    }),
                None => connecting.await,
            }
        })
    }
}

const UNKNOWN: u8 = 0;
const HTTP1: u8 = 1;
const HTTP2: u8 = 2;

/// Lanes at most per worker thread and provider.
const MAX_LANES: usize = 64;

/// One client and its calls in flight.
struct Lane {
    http: reqwest::Client,
    in_flight: AtomicUsize,
}

impl Lane {
    fn new(http: reqwest::Client) -> Self {
        Self {
            http,
            in_flight: AtomicUsize::new(0),
        }
    }
}

/// One worker thread's clients for one provider, and the protocol learnt.
pub struct Connections {
    spec: ClientSpec,
    /// Lane 0 offers what the settings allow; the others, HTTP/2 alone.
    lanes: Box<[OnceLock<Lane>]>,
    protocol: AtomicU8,
    /// When the last answer came (milliseconds since `epoch`).
    answered_ms: AtomicU64,
    epoch: Instant,
    /// Held by the call that is learning the protocol.
    learning: Semaphore,
}

/// The client a call goes through (and, for the call learning the protocol, its turn).
pub struct ChosenLane<'a> {
    pub http: &'a reqwest::Client,
    lane: &'a Lane,
    _learning: Option<SemaphorePermit<'a>>,
}

impl Drop for ChosenLane<'_> {
    fn drop(&mut self) {
        self.lane.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Connections {
    pub fn new(spec: &ClientSpec) -> Result<Self, String> {
        let first = OnceLock::new();
        let _ = first.set(Lane::new(http_client(spec)?));
        // A lane per connection allowed, each at its stream limit.
        let lanes = spec.max_connections.clamp(1, MAX_LANES);
        let mut all = vec![first];
        all.extend((1..lanes).map(|_| OnceLock::new()));
        Ok(Self {
            spec: spec.clone(),
            lanes: all.into_boxed_slice(),
            protocol: AtomicU8::new(if spec.http2 { UNKNOWN } else { HTTP1 }),
            answered_ms: AtomicU64::new(0),
            epoch: Instant::now(),
            learning: Semaphore::new(1),
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether calls may go at once (the protocol is known, and its connection likely alive).
    fn settled(&self) -> bool {
        match self.protocol.load(Ordering::Acquire) {
            HTTP1 => true,
            HTTP2 => {
                let idle_ms = u64::try_from(self.spec.idle.as_millis()).unwrap_or(u64::MAX);
                self.now_ms()
                    .saturating_sub(self.answered_ms.load(Ordering::Acquire))
                    < idle_ms
            }
            _ => false,
        }
    }

    fn first(&self) -> &Lane {
        self.lanes[0].get().expect("lane 0 is built at start")
    }

    fn take<'a>(&'a self, lane: &'a Lane, learning: Option<SemaphorePermit<'a>>) -> ChosenLane<'a> {
        lane.in_flight.fetch_add(1, Ordering::AcqRel);
        ChosenLane {
            http: &lane.http,
            lane,
            _learning: learning,
        }
    }

    /// The HTTP/2 lane for the next call: the first one under its stream limit, opening one if
    /// all are at it (or the least busy, when every lane is open and full).
    fn h2_lane(&self) -> &Lane {
        let mut least: Option<&Lane> = None;
        for slot in self.lanes.iter() {
            let lane = match slot.get() {
                Some(lane) => lane,
                None => match client(&self.spec, true) {
                    Ok(http) => slot.get_or_init(|| Lane::new(http)),
                    // Cannot happen with settings that built lane 0; stay on the open lanes.
                    Err(_) => break,
                },
            };
            let busy = lane.in_flight.load(Ordering::Acquire);
            if busy < self.spec.max_streams {
                return lane;
            }
            if least.is_none_or(|l| busy < l.in_flight.load(Ordering::Acquire)) {
                least = Some(lane);
            }
        }
        least.unwrap_or_else(|| self.first())
    }

    /// The client for the next call; while the protocol is being learnt, one call at a time
    /// (each waiting at most [`LEARNING_WAIT`]).
    pub async fn choose(&self) -> ChosenLane<'_> {
        if self.settled() {
            let lane = match self.protocol.load(Ordering::Acquire) {
                HTTP2 => self.h2_lane(),
                _ => self.first(),
            };
            return self.take(lane, None);
        }
        let permit = tokio::time::timeout(LEARNING_WAIT, self.learning.acquire())
            .await
            .ok()
            .and_then(Result::ok);
        // Learnt while this call waited: no need to hold the others back.
        if self.settled() {
            drop(permit);
            return Box::pin(self.choose()).await;
        }
        self.take(self.first(), permit)
    }

    /// Notes what a call said about the protocol.
    pub fn learn(&self, outcome: Result<reqwest::Version, &reqwest::Error>) {
        match outcome {
            Ok(version) => {
                self.answered_ms.store(self.now_ms(), Ordering::Release);
                let protocol = if version == reqwest::Version::HTTP_2 {
                    HTTP2
                } else {
                    HTTP1
                };
                self.protocol.store(protocol, Ordering::Release);
            }
            // No connection: whatever is learnt next decides.
            Err(e) if e.is_connect() && self.protocol.load(Ordering::Acquire) == HTTP2 => {
                self.protocol.store(UNKNOWN, Ordering::Release);
            }
            Err(_) => {}
        }
    }

    /// The protocol of the last answer (`None`: none yet).
    pub fn protocol(&self) -> Option<reqwest::Version> {
        match self.protocol.load(Ordering::Acquire) {
            HTTP1 => Some(reqwest::Version::HTTP_11),
            HTTP2 => Some(reqwest::Version::HTTP_2),
            _ => None,
        }
    }
}
