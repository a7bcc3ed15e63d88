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
use crate::fleet::Link;
use crate::idempotency::memory::MemoryStore;
use crate::idempotency::redis::RedisStore;
use crate::idempotency::Store;
use crate::middleware::{self, HeaderLimit, Pressure};
use crate::openapi::ApiDoc;
use crate::operations::crypto::KeyRing;
use crate::operations::Operations;
use crate::outbound::{BuildContext, Registry};
use crate::overload::{self, Admission};
use crate::routes::clients::admission::Gate;
use crate::routes::ops::Readiness;
use crate::routes::{self, clients::ClientsState};

pub type StartError = Box<dyn std::error::Error + Send + Sync>;

pub struct Application {
    server: Server,
    port: u16,
    /// The listener of `/healthz`, `/readyz` and `/metrics` alone (`server.ops_bind`).
    ops: Option<(Server, u16)>,
    draining: Arc<AtomicBool>,
    operations: Arc<Operations>,
    /// How long the attempts under way may take to record on SIGTERM.
    grace: Duration,
}

/// Everything the gateway builds from its settings before it listens: what `check-config`
/// builds too, so that a configuration it accepts is one the gateway starts with.
pub struct Prepared {
    pub registry: Registry,
    pub authenticator: Authenticator,
    pub link: Option<Arc<Link>>,
    pub egress: crate::egress::Egress,
    pub limit: overload::Limit,
    pub max_keys: usize,
    pub budget: overload::Budget,
    /// The key ring of the operations' sealed values.
    /// The operations' keys, and the webhooks completion events go to (their secrets read).
    pub sealing: (KeyRing, crate::operations::webhooks::Webhooks),
}

/// Builds the adapters, the caller authentication, the link to Redis (not connected yet) and
/// the memory budget.
pub fn prepare(settings: &Settings) -> Result<Prepared, StartError> {
    let egress = settings.egress()?;
    let link = Link::from_settings(&settings.idempotency.redis(), &egress)?;
    let context = BuildContext {
        egress: &egress,
        link: link.as_ref(),
    };
    let registry = settings.providers.targets(&context)?;
    let authenticator = Authenticator::from_settings(&settings.auth, &egress)?;
    let limit = overload::find_limit(settings.server.memory_budget_mb)?;
    let max_keys = settings
        .idempotency
        .max_keys
        .unwrap_or_else(|| default_max_keys(limit.bytes));
    let budget = budget(settings, limit.bytes, max_keys)?;
    let operations = &settings.operations;
    let keys = operations.key_ring(operations.enabled && link.is_some())?;
    let webhooks =
        crate::operations::webhooks::Webhooks::from_settings(&operations.webhooks, &egress)?;
    Ok(Prepared {
        registry,
        authenticator,
        link,
        egress,
        limit,
        max_keys,
        budget,
        sealing: (keys, webhooks),
    })
}

/// The cores this process may use (the default number of workers).
fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl Application {
    pub fn build(settings: &Settings) -> Result<Self, StartError> {
        raise_open_files_limit();
        // First: what is built next (the circuit breakers) exports its state.
        let metrics = web::Data::new(crate::metrics::Exposition::new(crate::metrics::handle()));
        let Prepared {
            registry,
            authenticator,
            link,
            egress,
            limit,
            max_keys,
            budget,
            sealing,
        } = prepare(settings)?;
        let registry = Arc::new(registry);
        let operations = operations(settings, &registry, link.clone(), sealing);
        announce(settings, &registry, &authenticator, &egress, link.as_ref());

        let listener = TcpListener::bind(&settings.server.bind)
            .map_err(|e| format!("cannot listen on {}: {e}", settings.server.bind))?;
        let port = listener.local_addr()?.port();
        let workers = settings.server.workers.unwrap_or_else(available_cores);
        let store = store(settings, link, max_keys);
        let admission = admission(settings, limit, budget)?;
        let draining = Arc::new(AtomicBool::new(false));
        let readiness = web::Data::new(Readiness {
            store: store.clone(),
            draining: draining.clone(),
        });
        let ops = settings
            .server
            .ops_bind
            .as_ref()
            .map(|bind| ops_server(bind, metrics.clone(), readiness.clone(), settings))
            .transpose()?;
        let shared = Shared {
            state: web::Data::new(ClientsState {
                registry,
                operations: operations.clone(),
                body_limit: settings.server.body_limit_bytes,
                body_timeout: Duration::from_millis(settings.server.body_timeout_ms),
                deadline: Duration::from_millis(settings.server.deadline_ms),
                store,
                idempotency_ttl: Duration::from_secs(settings.idempotency.ttl_s),
            }),
            authenticator: web::Data::new(authenticator),
            metrics,
            readiness,
            header_limit: HeaderLimit(settings.server.header_limit_bytes),
            admission,
        };
        Ok(Self {
            server: main_server(listener, shared, settings, workers)?,
            port,
            ops,
            draining,
            operations,
            grace: Duration::from_secs(settings.server.shutdown_grace_s),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port of `server.ops_bind`'s listener, if there is one.
    pub fn ops_port(&self) -> Option<u16> {
        self.ops.as_ref().map(|(_, port)| *port)
    }

    /// Serves until SIGTERM or SIGINT, then drains: `/readyz` turns 503, no new connection is
    /// accepted, and in-flight requests (their fan-outs and records included) may finish within
    /// `server.shutdown_grace_s`.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let handle = self.server.handle();
        let ops = self.ops.map(|(server, _)| server);
        let ops_handle = ops.as_ref().map(Server::handle);
        let draining = self.draining.clone();
        let operations = self.operations.clone();
        let grace = self.grace;
        ignore_hangups();
        if operations.enabled() {
            operations.start();
        }
        tokio::spawn(async move {
            shutdown_signal().await;
            tracing::info!("shutdown signal: draining in-flight requests");
            draining.store(true, Ordering::Relaxed);
            // The operations' attempts under way record their outcome; the rest of the queue
            // is left to the other replicas (or to this one's restart).
            let (_, ()) = tokio::join!(handle.stop(true), operations.drain(grace));
            // The probes answer (not ready) until the requests have drained.
            if let Some(ops) = ops_handle {
                ops.stop(true).await;
            }
        });
        match ops {
            Some(ops) => futures_util::try_join!(self.server, ops).map(|_| ()),
            None => self.server.await,
        }
    }
}

/// The start's log of what was built; Redis is inspected in the background (a Redis that is
/// down at start makes the gateway not ready, not dead).
fn announce(
    settings: &Settings,
    registry: &Registry,
    authenticator: &Authenticator,
    egress: &crate::egress::Egress,
    link: Option<&Arc<Link>>,
) {
    tracing::info!(egress = %egress.describe(), "outbound HTTPS");
    if matches!(authenticator, Authenticator::Disabled) {
        tracing::warn!("CALLER AUTHENTICATION IS DISABLED (auth.disabled = true): anyone who reaches this gateway can create clients");
    }
    let available: Vec<&str> = registry.available().map(|p| p.as_str()).collect();
    tracing::info!(providers = ?available, "adapters ready");
    if let (Some(link), Ok(runtime)) = (link, tokio::runtime::Handle::try_current()) {
        let link = link.clone();
        let sentinel = !settings.idempotency.redis_sentinels.is_empty();
        runtime.spawn(async move {
            match link.readiness().await {
                Ok(facts) => tracing::info!(sentinel, redis = %facts.describe(), "Redis checked"),
                Err(e) if e.misconfigured => tracing::error!(error = %e, "Redis cannot be used as configured: keyed requests and adoptions are refused, and the gateway is not ready, until it is fixed"),
                Err(e) => tracing::warn!(error = %e, "Redis does not answer yet: the gateway is not ready until it does"),
            }
        });
    }
}

/// What every worker's application shares.
struct Shared {
    state: web::Data<ClientsState>,
    authenticator: web::Data<Authenticator>,
    metrics: web::Data<crate::metrics::Exposition>,
    readiness: web::Data<Readiness>,
    header_limit: HeaderLimit,
    admission: Arc<Admission>,
}

/// The server of every route, on `listener`.
fn main_server(
    listener: TcpListener,
    shared: Shared,
    settings: &Settings,
    workers: usize,
) -> Result<Server, StartError> {
    let max_connections = settings
        .server
        .max_connections
        .unwrap_or_else(|| shared.admission.budget().max_connections());
    let openapi = ApiDoc::openapi();
    let counted = shared.admission.clone();
    let gate = Gate(shared.admission.clone());
    let pressure = Pressure(shared.admission.clone());
    let server = HttpServer::new(move || {
        App::new()
            .wrap(from_fn(middleware::request_id))
            .app_data(shared.state.clone())
            .app_data(shared.authenticator.clone())
            .app_data(shared.metrics.clone())
            .app_data(shared.readiness.clone())
            .app_data(shared.header_limit)
            .app_data(gate.clone())
            .app_data(pressure.clone())
            .configure(routes::configure)
            .service(SwaggerUi::new("/swagger-ui/{_:.*}").url("/openapi.json", openapi.clone()))
            .default_service(web::to(routes::not_found))
    })
    // Every open connection counts against the memory budget until it closes.
    .on_connect(move |_, extensions| {
        extensions.insert(counted.connection());
    })
    .listen(listener)?
    .disable_signals()
    .shutdown_timeout(settings.server.shutdown_grace_s)
    // The request head must arrive within this long (the body: server.body_timeout_ms).
    .client_request_timeout(Duration::from_secs(5))
    .client_disconnect_timeout(Duration::from_secs(1))
    .workers(workers)
    // Each answer leaves at once, whatever the number of writes it takes.
    .tcp_nodelay(true)
    .max_connections(max_connections.div_ceil(workers));
    Ok(server.run())
}

/// The operations (their store: Redis when the replicas share one, else the process), planning
/// again with the gateway's own validation.
fn operations(
    settings: &Settings,
    registry: &Arc<Registry>,
    link: Option<Arc<Link>>,
    (keys, webhooks): (KeyRing, crate::operations::webhooks::Webhooks),
) -> Arc<Operations> {
    let quotas = registry
        .available_targets()
        .filter_map(|t| {
            let q = t.quota.as_ref()?;
            Some((t.id, (q.interval(), q.scope().to_owned())))
        })
        .collect();
    let planner = Arc::new(routes::clients::RegistryPlanner(registry.clone()));
    Arc::new(Operations::new(
        crate::operations::store(link, &settings.operations),
        keys,
        settings.operations.clone(),
        planner,
        Duration::from_millis(settings.server.deadline_ms),
        quotas,
        webhooks,
    ))
}

/// The idempotency store: Redis when configured, else in process with `max_keys` keys.
fn store(settings: &Settings, link: Option<Arc<Link>>, max_keys: usize) -> Arc<dyn Store> {
    match link {
        Some(link) => {
            tracing::info!(
                sentinel = !settings.idempotency.redis_sentinels.is_empty(),
                "idempotency records, adoption guards and quotas in Redis (fleet-wide)"
            );
            Arc::new(RedisStore::new(link))
        }
        None => {
            tracing::info!(
                max_keys,
                "idempotency records in process (one replica only)"
            );
            Arc::new(MemoryStore::new(
                max_keys,
                Duration::from_secs(settings.idempotency.retain_s),
            ))
        }
    }
}

/// The in-process store's default cap: 20,000 keys, or what 5 % of the memory limit holds.
fn default_max_keys(limit: u64) -> usize {
    let fits = limit / 20 / overload::MEASURED.store_key;
    usize::try_from(fits)
        .unwrap_or(usize::MAX)
        .clamp(100, 20_000)
}

/// The memory budget from the limit and what the settings fix, logged; its account starts
/// watching the working set.
fn admission(
    settings: &Settings,
    limit: overload::Limit,
    budget: overload::Budget,
) -> Result<Arc<Admission>, StartError> {
    if matches!(limit.source, overload::LimitSource::ConfiguredAbove { .. }) {
        tracing::warn!(limit = %limit.source, "server.memory_budget_mb is above the memory there is");
    }
    let mib = overload::budget::mib;
    tracing::info!(
        limit_mib = mib(limit.bytes),
        source = %limit.source,
        budget_mib = mib(budget.admit_until),
        fixed_mib = mib(budget.fixed.total()),
        store_mib = mib(budget.fixed.store),
        max_connections = settings.server.max_connections.unwrap_or_else(|| budget.max_connections()),
        five_target_requests_h2 = five_target_requests(&budget, budget.costs.call_h2),
        five_target_requests_h1 = five_target_requests(&budget, budget.costs.call_h1),
        "memory budget"
    );
    let admission = Admission::new(budget);
    admission.watch(limit.cgroup)?;
    Ok(admission)
}

/// The budget for a limit of `limit` bytes, what the settings set aside taken off.
fn budget(settings: &Settings, limit: u64, max_keys: usize) -> Result<overload::Budget, String> {
    let costs = costs(settings);
    let shared = settings.idempotency.redis_url.is_some()
        || !settings.idempotency.redis_sentinels.is_empty();
    let store = if shared {
        0
    } else {
        max_keys as u64 * costs.store_key
    };
    let fixed = overload::Fixed {
        baseline: overload::memory::resident()
            .unwrap_or(BASELINE)
            .max(BASELINE),
        store,
        caches: CACHES,
    };
    overload::Budget::new(limit, fixed, costs)
}

/// The measured costs, a connection charged what it may read ahead of its handler under these
/// limits of heads and bodies.
fn costs(settings: &Settings) -> overload::Costs {
    let server = &settings.server;
    overload::MEASURED.with_read_ahead(
        server.header_limit_bytes as u64,
        server.body_limit_bytes as u64,
    )
}

/// How many five-target requests (2 KiB bodies) fit, each call costing `call`.
fn five_target_requests(budget: &overload::Budget, call: u64) -> u64 {
    budget.capacity(budget.request_cost(2048, &[call; 5]))
}

impl Prepared {
    /// The memory budget, in words (`check-config`).
    pub fn describe_budget(&self) -> String {
        format!(
            "memory limit {} MiB ({}): about {} five-target requests in flight to HTTP/2 providers, {} to HTTP/1.1 ones",
            overload::budget::mib(self.limit.bytes),
            self.limit.source,
            five_target_requests(&self.budget, self.budget.costs.call_h2),
            five_target_requests(&self.budget, self.budget.costs.call_h1),
        )
    }
}

/// The process at rest, at least (what the start measures is often less: the workers have not
/// started yet).
const BASELINE: u64 = 20 << 20;
/// The caches at their bounds: verified tokens (2,048 of at most 2 KiB), the JWKS (256 KiB
/// read, 64 keys), provider tokens.
const CACHES: u64 = 6 << 20;

/// Connections the ops listener serves at once, at most.
const OPS_CONNECTIONS: usize = 1024;

/// `/healthz`, `/readyz` and `/metrics` alone, on their own listener and worker thread.
fn ops_server(
    bind: &str,
    metrics: web::Data<crate::metrics::Exposition>,
    readiness: web::Data<Readiness>,
    settings: &Settings,
) -> Result<(Server, u16), StartError> {
    let header_limit = HeaderLimit(settings.server.header_limit_bytes);
    let listener = TcpListener::bind(bind)
        .map_err(|e| format!("cannot listen on {bind} (server.ops_bind): {e}"))?;
    let port = listener.local_addr()?.port();
    let server = HttpServer::new(move || {
        App::new()
            .wrap(from_fn(middleware::request_id))
            .app_data(metrics.clone())
            .app_data(readiness.clone())
            .app_data(header_limit)
            .configure(routes::configure_ops)
            .default_service(web::to(routes::not_found))
    })
    .listen(listener)?
    .disable_signals()
    .workers(1)
    // Probes come on a connection of their own and send their head at once: a connection
    // that has sent no complete head within a second (idle, or a byte a second) is closed, and
    // so is one kept alive past a second, so that a few hundred of them cannot fill the
    // listener or keep the probes waiting.
    .max_connections(OPS_CONNECTIONS)
    .client_request_timeout(Duration::from_secs(1))
    .client_disconnect_timeout(Duration::from_secs(1))
    .keep_alive(Duration::from_secs(1))
    .run();
    Ok((server, port))
}

/// SIGHUP (a closed terminal, a reload request) would end the process and cut the requests in
/// flight: it is ignored, and logged. The configuration is read at start; a restart (SIGTERM,
/// which drains) applies a new one.
fn ignore_hangups() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::hangup()) {
        Ok(mut hup) => {
            tokio::spawn(async move {
                while hup.recv().await.is_some() {
                    tracing::info!(
                        "SIGHUP ignored: the configuration is read at start; restart to change it"
                    );
                }
            });
        }
        Err(e) => tracing::warn!(error = %e, "cannot listen for SIGHUP"),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// What the open connections may hold before their requests are admitted or refused — a
    /// head and a body each, sent together — stays within the room of the budget, for the
    /// chart's limit and the default limits of heads and bodies.
    #[test]
    fn bodies_read_ahead_of_admission_fit_the_budget() {
        let settings = Settings::default();
        let (head, body) = (
            settings.server.header_limit_bytes as u64,
            settings.server.body_limit_bytes as u64,
        );
        for limit_mib in [64u64, 256, 1024] {
            let limit = limit_mib << 20;
            let fixed = overload::Fixed {
                baseline: BASELINE,
                store: default_max_keys(limit) as u64 * overload::MEASURED.store_key,
                caches: CACHES,
            };
            let budget = overload::Budget::new(limit, fixed, costs(&settings)).expect("a budget");
            let read_ahead = (head + body).min(overload::budget::READ_AHEAD_CAP);
            let held = budget.max_connections() as u64 * read_ahead;
            assert!(
                held <= budget.room(),
                "{limit_mib} MiB: {} connections may hold {} MiB read ahead, the room is {} MiB",
                budget.max_connections(),
                held >> 20,
                budget.room() >> 20
            );
        }
    }
}
