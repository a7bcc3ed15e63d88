//! The providers simulated in-process on loopback, each at its documented path under a prefix
//! named after it (`http://127.0.0.1:PORT/lucca/timmi-project/api/v4/clients`, ...), checking its
//! own auth header, required fields and uniqueness rules, answering with its documented bodies
//! and errors, and listing the clients it holds through its documented list endpoints (paging
//! included). Used by `--sandbox`, by the tests and by the benchmark.
//!
//! One file per provider (`<name>.rs`, generated into this module from [`crate::catalog`]), each
//! with its `BASE_PATH` (its base URL's path, under `/<name>`), its tenant's state (`Tenant`), its
//! `routes` (the documented paths, under the base URL) and how it `configure`s the gateway's
//! settings to use it.

use parking_lot::Mutex;
use std::collections::{HashSet, VecDeque};
use std::net::TcpListener;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::http::StatusCode;
use actix_web::{web, App, HttpResponse, HttpServer};
use rand::Rng;
use serde_json::Value;
use url::Url;

use crate::catalog::ProviderId;
use crate::config::Settings;
use crate::providers::ProvidersSettings;

macro_rules! simulated {
    ($(($variant:ident, $module:ident, $display:literal)),* $(,)?) => {
        $(mod $module;)*

        /// Every simulated tenant's state, shared by the sandbox's workers.
        #[derive(Clone)]
        struct Tenants {
            $($module: web::Data<$module::Tenant>,)*
        }

        impl Tenants {
            fn new() -> Self {
                Self { $($module: web::Data::new($module::Tenant::default()),)* }
            }

            /// Each provider's routes under its base URL, with its tenant.
            fn register(&self, cfg: &mut web::ServiceConfig) {
                $(cfg.service(
                    web::scope(&prefix(ProviderId::$variant))
                        .app_data(self.$module.clone())
                        .configure($module::routes),
                );)*
            }
        }

        /// Where a provider's base URL is, under the sandbox's root.
        pub fn prefix(id: ProviderId) -> String {
            match id {
                $(ProviderId::$variant => format!("/{}{}", id, $module::BASE_PATH),)*
            }
        }

        fn configure_all(sandbox: &Sandbox, p: &mut ProvidersSettings) {
            $($module::configure(&mut p.$module, sandbox.base_url(ProviderId::$variant));)*
        }
    };
}

crate::for_each_provider!(simulated);

#[derive(Debug, Clone)]
pub struct SandboxOptions {
    /// Added before every answer (latency of a real provider).
    pub delay: Duration,
    /// HTTP worker threads of the sandbox server (default 1).
    pub workers: Option<usize>,
    /// Listen address; default `127.0.0.1:0` (a free port).
    pub bind: String,
    /// Enforce the providers' documented uniqueness rules (each refuses a duplicate of its
    /// natural key as its document says). Off for load tests that send the same body again and
    /// again.
    pub unique: bool,
    /// This provider creates the client and then never answers (to show how the gateway
    /// settles an unanswered create).
    pub unanswered: Option<ProviderId>,
    /// Serve HTTPS (HTTP/2 and HTTP/1.1, by ALPN) with this configuration.
    pub tls: Option<rustls::ServerConfig>,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        Self {
            delay: Duration::ZERO,
            workers: None,
            bind: "127.0.0.1:0".into(),
            unique: true,
            unanswered: None,
            tls: None,
        }
    }
}

/// How every simulated provider behaves.
struct Behaviour {
    delay: Duration,
    unique: bool,
    unanswered: Option<ProviderId>,
}

impl Behaviour {
    /// The answer to a create that stored the client: after the delay, or never (the
    /// connection is held until the gateway gives up) for the `unanswered` provider.
    async fn created(&self, provider: ProviderId, status: StatusCode, body: Value) -> HttpResponse {
        if self.unanswered == Some(provider) {
            tokio::time::sleep(NEVER).await;
        }
        answer(self, status, body).await
    }

    /// Records `key` in `set`; false when it was there already and uniqueness is enforced.
    fn first_use<K: std::hash::Hash + Eq>(&self, set: &Mutex<HashSet<K>>, key: K) -> bool {
        !self.unique || set.lock().insert(key)
    }
}

pub struct Sandbox {
    port: u16,
    scheme: &'static str,
    handle: ServerHandle,
}

/// A TLS server configuration from a PEM certificate chain and its PEM private key.
pub fn tls_server_config(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<rustls::ServerConfig, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
    rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .map_err(|e| format!("the certificate and key do not fit: {e}"))
}

impl Sandbox {
    /// Starts every simulated provider on `options.bind`.
    pub fn start(options: SandboxOptions) -> std::io::Result<Self> {
        let listener = TcpListener::bind(&options.bind)?;
        let port = listener.local_addr()?.port();
        let behaviour = web::Data::new(Behaviour {
            delay: options.delay,
            unique: options.unique,
            unanswered: options.unanswered,
        });
        let tenants = Tenants::new();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(behaviour.clone())
                .app_data(web::PayloadConfig::new(1024 * 1024))
                .configure(|cfg| tenants.register(cfg))
        })
        .workers(options.workers.unwrap_or(1))
        // Answers leave at once (an HTTP/2 answer is several writes: Nagle would hold the last).
        .tcp_nodelay(true)
        .disable_signals();
        let (server, scheme) = match options.tls {
            Some(tls) => (server.listen_rustls_0_23(listener, tls)?, "https"),
            None => (server.listen(listener)?, "http"),
        };
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        Ok(Self {
            port,
            scheme,
            handle,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The `base_url` of one simulated provider.
    pub fn base_url(&self, provider: ProviderId) -> Url {
        Url::parse(&format!(
            "{}://127.0.0.1:{}{}",
            self.scheme,
            self.port,
            prefix(provider)
        ))
        .expect("valid URL")
    }

    /// Points every provider of `settings` at the sandbox, with the sandbox credentials, and
    /// fills the provider defaults the settings leave unset.
    pub fn configure(&self, settings: &mut Settings) {
        configure_all(self, &mut settings.providers);
    }

    pub async fn stop(self) {
        self.handle.stop(true).await;
    }
}

/// How long "never" is for an unanswered create.
const NEVER: Duration = Duration::from_secs(3600);

/// Most clients a simulated tenant keeps (the oldest go first): the sandbox also serves load
/// tests.
const KEPT: usize = 10_000;

/// The clients a simulated tenant holds, newest last, at most [`KEPT`].
struct Stored<T> {
    items: Mutex<VecDeque<T>>,
}

impl<T> Default for Stored<T> {
    fn default() -> Self {
        Self {
            items: Mutex::new(VecDeque::new()),
        }
    }
}

impl<T: Clone> Stored<T> {
    fn push(&self, item: T) {
        let mut items = self.items.lock();
        if items.len() == KEPT {
            items.pop_front();
        }
        items.push_back(item);
    }

    /// The items that pass `keep`, oldest first.
    fn filtered(&self, keep: impl Fn(&T) -> bool) -> Vec<T> {
        let items = self.items.lock();
        items.iter().filter(|i| keep(i)).cloned().collect()
    }
}

/// Page `page` (from 1) of `size` items, and whether another follows.
fn page_of<T: Clone>(items: &[T], page: usize, size: usize) -> (Vec<T>, bool) {
    let start = page.saturating_sub(1).saturating_mul(size);
    let end = start.saturating_add(size).min(items.len());
    let slice = items.get(start..end).unwrap_or_default().to_vec();
    (slice, end < items.len())
}

/// The query parameters of a request.
fn query(req: &actix_web::HttpRequest) -> std::collections::HashMap<String, String> {
    url::form_urlencoded::parse(req.query_string().as_bytes())
        .into_owned()
        .collect()
}

/// A JSON answer after the configured delay.
async fn answer(behaviour: &Behaviour, status: StatusCode, body: Value) -> HttpResponse {
    if !behaviour.delay.is_zero() {
        tokio::time::sleep(behaviour.delay).await;
    }
    HttpResponse::build(status).json(body)
}

/// A plain-text answer (for a provider that documents its errors as text), after the delay.
#[cfg_attr(not(test), allow(dead_code))]
async fn answer_text(behaviour: &Behaviour, status: StatusCode, text: &str) -> HttpResponse {
    if !behaviour.delay.is_zero() {
        tokio::time::sleep(behaviour.delay).await;
    }
    HttpResponse::build(status)
        .content_type("text/plain; charset=utf-8")
        .body(text.to_owned())
}

/// A random 24-hex id, like the MongoDB ObjectIds several providers use.
fn object_id() -> String {
    let mut rng = rand::rng();
    (0..24)
        .map(|_| char::from_digit(rng.random_range(0..16), 16).expect("hex digit"))
        .collect()
}

/// A string member of a JSON object, if present and not blank.
fn text<'a>(body: &'a Value, pointer: &str) -> Option<&'a str> {
    body.pointer(pointer)
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
}

fn header<'a>(req: &'a actix_web::HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_web::test]
    async fn a_text_answer_is_plain_text() {
        let behaviour = Behaviour {
            delay: Duration::ZERO,
            unique: true,
            unanswered: None,
        };
        let response = answer_text(&behaviour, StatusCode::BAD_REQUEST, "name taken").await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            response.headers().get("content-type").unwrap(),
            "text/plain; charset=utf-8"
        );
        let body = actix_web::body::to_bytes(response.into_body())
            .await
            .unwrap();
        assert_eq!(&body[..], b"name taken");
    }
}
