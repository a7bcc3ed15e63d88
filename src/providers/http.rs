//! The outbound HTTP client of one provider, and how it learns the provider's protocol.
//!
//! Over TLS the client offers HTTP/2 and HTTP/1.1 (ALPN) and the provider picks. With HTTP/2
//! every call shares one connection (per worker thread). But a connection is chosen when it is
//! made: a burst of calls with no live connection would each open one before the first one
//! tells that the provider speaks HTTP/2. So while the protocol is not known — the first call,
//! after the connection may have closed (no answer for [`IDLE`]), or after a connection could
//! not be made — calls go one at a time (each waiting at most [`LEARNING_WAIT`]); once an answer
//! came in HTTP/2, they all go at once over its connection. HTTP/1.1 needs a connection per call
//! in flight anyway, and is never held back.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, SemaphorePermit};

use crate::egress::Egress;

/// How long a call waits for the call that is learning the protocol; past it, it goes on its
/// own connection.
pub const LEARNING_WAIT: Duration = Duration::from_millis(500);

/// An idle connection is closed after this long (so with no answer for this long, there may be
/// no live connection).
pub const IDLE: Duration = Duration::from_secs(60);

/// How an outbound client of a provider is built.
#[derive(Debug, Clone)]
pub struct ClientSpec {
    /// The proxy.
    pub egress: Egress,
    /// Trust (the gateway's, and the provider's own `ca_file`) and ALPN; shared by the clients
    /// of every worker (one session cache).
    pub tls: rustls::ClientConfig,
    /// Idle keep-alive connections kept (HTTP/1.1).
    pub max_idle: usize,
    /// Offer HTTP/2 (`providers.<name>.http2`).
    pub http2: bool,
}

/// An outbound client built from `spec`.
pub fn http_client(spec: &ClientSpec) -> Result<reqwest::Client, String> {
    let mut builder = spec
        .egress
        .builder(&spec.tls)
        .user_agent(concat!("clients-gateway/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(3))
        .pool_idle_timeout(IDLE)
        .pool_max_idle_per_host(spec.max_idle)
        .tcp_nodelay(true)
        // HTTP/2: the window grows with the bandwidth-delay product; pings find a dead shared
        // connection before a call does.
        .http2_adaptive_window(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .http2_keep_alive_timeout(Duration::from_secs(10))
        // A create call is never replayed elsewhere: a redirect (usually a wrong base_url)
        // is reported, not followed.
        .redirect(reqwest::redirect::Policy::none());
    if !spec.http2 {
        builder = builder.http1_only();
    }
    builder
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

const UNKNOWN: u8 = 0;
const HTTP1: u8 = 1;
const HTTP2: u8 = 2;

/// One worker thread's client for one provider, and the protocol learnt.
pub struct Connections {
    http: reqwest::Client,
    protocol: AtomicU8,
    /// When the last answer came (milliseconds since `epoch`).
    answered_ms: AtomicU64,
    epoch: Instant,
    /// Held by the call that is learning the protocol.
    learning: Semaphore,
}

/// The client a call goes through (and, for the call learning the protocol, its turn).
pub struct Pick<'a> {
    pub http: &'a reqwest::Client,
    _learning: Option<SemaphorePermit<'a>>,
}

impl Connections {
    pub fn new(spec: &ClientSpec) -> Result<Self, String> {
        Ok(Self {
            http: http_client(spec)?,
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
                let idle_ms = u64::try_from(IDLE.as_millis()).unwrap_or(u64::MAX);
                self.now_ms()
                    .saturating_sub(self.answered_ms.load(Ordering::Acquire))
                    < idle_ms
            }
            _ => false,
        }
    }

    /// The client for the next call; while the protocol is being learnt, one call at a time
    /// (each waiting at most [`LEARNING_WAIT`]).
    pub async fn pick(&self) -> Pick<'_> {
        if self.settled() {
            return Pick {
                http: &self.http,
                _learning: None,
            };
        }
        let permit = tokio::time::timeout(LEARNING_WAIT, self.learning.acquire())
            .await
            .ok()
            .and_then(Result::ok);
        // Learnt while this call waited: no need to hold the others back.
        let permit = permit.filter(|_| !self.settled());
        Pick {
            http: &self.http,
            _learning: permit,
        }
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
