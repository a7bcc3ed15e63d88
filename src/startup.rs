//! Builds the application from settings: adapters, authenticator, routes, Swagger UI. Binds the
//! listener first so that tests can ask for port 0 and read the port back.

use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use crate::auth::Authenticator;
use crate::config::Settings;
use crate::idempotency::memory::MemoryStore;
use crate::idempotency::redis::RedisStore;
use crate::idempotency::Store;
use crate::middleware::{self, HeaderLimit};
use crate::openapi::ApiDoc;
use crate::providers::Registry;
use crate::routes::ops::Readiness;
use crate::routes::{self, clients::ClientsState};
use secrecy::ExposeSecret;

pub type StartError = Box<dyn std::error::Error + Send + Sync>;

pub struct Application {
    server: Server,
    port: u16,
    draining: Arc<AtomicBool>,
}

impl Application {
    pub fn build(settings: &Settings) -> Result<Self, StartError> {
        raise_open_files_limit();
        // First: what is built next (the circuit breakers) exports its state.
        let metrics = web::Data::new(crate::metrics::handle());
        let egress = settings.egress()?;
        tracing::info!(egress = %egress.describe(), "outbound HTTPS");
        let registry = Registry::from_settings(&settings.providers, &egress)?;
        let authenticator = Authenticator::from_settings(&settings.auth, &egress)?;
        if matches!(authenticator, Authenticator::Disabled) {
            tracing::warn!("CALLER AUTHENTICATION IS DISABLED (auth.disabled = true): anyone who reaches this gateway can create clients");
        }
        let available: Vec<&str> = registry.available().map(|p| p.as_str()).collect();
        tracing::info!(providers = ?available, "adapters ready");

        let listener = TcpListener::bind(&settings.server.bind)
            .map_err(|e| format!("cannot listen on {}: {e}", settings.server.bind))?;
        let port = listener.local_addr()?.port();
        let store: Arc<dyn Store> = match &settings.idempotency.redis_url {
            Some(url) => {
                tracing::info!("idempotency records in Redis");
                Arc::new(RedisStore::new(url.expose_secret())?)
            }
            None => {
                tracing::info!("idempotency records in process (one replica only)");
                Arc::new(MemoryStore::new(
                    settings.idempotency.max_keys,
                    Duration::from_secs(settings.idempotency.retain_s),
                ))
            }
        };
        let draining = Arc::new(AtomicBool::new(false));
        let readiness = web::Data::new(Readiness {
            store: store.clone(),
            draining: draining.clone(),
        });
        let state = web::Data::new(ClientsState {
            registry,
            body_limit: settings.server.body_limit_bytes,
            body_timeout: Duration::from_millis(settings.server.body_timeout_ms),
            deadline: Duration::from_millis(settings.server.deadline_ms),
            store,
            idempotency_ttl: Duration::from_secs(settings.idempotency.ttl_s),
        });
        let authenticator = web::Data::new(authenticator);
        let openapi = ApiDoc::openapi();
        let header_limit = HeaderLimit(settings.server.header_limit_bytes);
        let mut server = HttpServer::new(move || {
            App::new()
                .wrap(from_fn(middleware::request_id))
                .app_data(state.clone())
                .app_data(authenticator.clone())
                .app_data(metrics.clone())
                .app_data(readiness.clone())
                .app_data(header_limit)
                .configure(routes::configure)
                .service(SwaggerUi::new("/swagger-ui/{_:.*}").url("/openapi.json", openapi.clone()))
                .default_service(web::to(routes::not_found))
        })
        .listen(listener)?
        .disable_signals()
        .shutdown_timeout(settings.server.shutdown_grace_s)
        // The request head must arrive within this long (the body: server.body_timeout_ms).
        .client_request_timeout(Duration::from_secs(5))
        .client_disconnect_timeout(Duration::from_secs(1));
        let workers = settings
            .server
            .workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        server = server
            .workers(workers)
            // Each answer leaves at once, whatever the number of writes it takes.
            .tcp_nodelay(true)
            .max_connections(settings.server.max_connections.div_ceil(workers));
        Ok(Self {
            server: server.run(),
            port,
            draining,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until SIGTERM or SIGINT, then drains: `/readyz` turns 503, no new connection is
    /// accepted, and in-flight requests (their fan-outs and records included) may finish within
    /// `server.shutdown_grace_s`.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let handle = self.server.handle();
        let draining = self.draining.clone();
        tokio::spawn(async move {
            shutdown_signal().await;
            tracing::info!("shutdown signal: draining in-flight requests");
            draining.store(true, Ordering::Relaxed);
            handle.stop(true).await;
        });
        self.server.await
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops gracefully");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Raises the soft limit on open files to the hard one: each connection, in and out, is one.
fn raise_open_files_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::debug!(limit, "open files limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open files limit"),
    }
}
