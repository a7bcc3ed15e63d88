//! Every metric the gateway exports at `GET /metrics` (Prometheus text format; on the ops
//! listener too, with `server.ops_bind`), recorded through the `metrics` facade.
//!
//! | name | type | labels | what it counts |
//! |---|---|---|---|
//! | `http_requests_total` | counter | `route`, `method`, `status` | answers, by route and status |
//! | `http_request_duration_seconds` | histogram | `route`, `method` | time to answer |
//! | `clients_gateway_provider_results_total` | counter | `provider`, `status`, `kind` | per-target results (`created`, `failed`, ...; the error kind) |
//! | `clients_gateway_provider_duration_seconds` | histogram | `provider`, `status` | a target's time, its attempts and lookups included |
//! | `clients_gateway_fanouts_in_flight` | gauge | – | fan-outs running |
//! | `clients_gateway_circuit_state` | gauge | `provider` | the circuit breaker: 0 closed, 1 half-open, 2 open |
//! | `clients_gateway_idempotency_keys` | gauge | – | keys held by the in-process store |
//! | `clients_gateway_shed_total` | counter | `reason` (`budget`, `memory`) | requests shed with `503 overloaded` |
//! | `clients_gateway_shed_duration_seconds` | histogram | – | a shed answer's time in the gateway |
//! | `clients_gateway_requests_in_flight` | gauge | – | admitted requests being handled |
//! | `clients_gateway_provider_calls_in_flight` | gauge | `provider` | calls to a provider in flight |
//! | `clients_gateway_inbound_connections` | gauge | – | open inbound connections |
//! | `clients_gateway_memory_limit_bytes` | gauge | – | the memory limit (cgroup or `server.memory_budget_mb`) |
//! | `clients_gateway_memory_budget_bytes` | gauge | – | what admission may fill (80 % of the limit) |
//! | `clients_gateway_memory_in_use_bytes` | gauge | – | the cgroup's working set (what the OOM killer compares) |
//! | `clients_gateway_memory_allocated_bytes` | gauge | – | the allocator's bytes in use (jemalloc) |
//! | `clients_gateway_memory_reserved_bytes` | gauge | – | the budget's account: connections and admitted requests |
//! | `clients_gateway_admission_capacity` | gauge | – | requests to every provider that fit at once |
//! | `clients_gateway_idempotency_records_total` | counter | `result` (`recorded`, `retried`, `lost`, `given_up`) | idempotency record writes |
//! | `clients_gateway_fleet_total` | counter | `what`, `outcome` | guards (`taken`, `busy`, `unreachable`) and quotas (`fleet`, `local`) |
//! | `clients_gateway_redis_usable` | gauge | – | 1 when Redis is a master the gateway may write to, 0 when it is unreachable or misconfigured |
//! | `clients_gateway_inbound_protocol_errors_total` | counter | – | malformed requests from peers (counted, not logged as errors) |
//! | `clients_gateway_operations_total` | counter | `event` (`accepted`, `succeeded`, `partial`, `failed`, `cancelled`) | asynchronous operations accepted, and done by final state |
//! | `clients_gateway_operation_attempts_total` | counter | `provider`, `status` | attempts of operations' targets (re-drives included), by the status they left the target in |
//! | `clients_gateway_operation_targets_pending` | gauge | `provider` | the queue's depth: targets pending, fleet-wide (every replica reports it) |
//! | `clients_gateway_operation_oldest_pending_seconds` | gauge | `provider` | how long the oldest pending target has been waiting |
//! | `clients_gateway_webhook_deliveries_total` | counter | `webhook` (a configured name), `result` (`delivered`, `gone`, `rate_limited`, `http_error`, `timeout`, `unreachable`, `not_configured`) | completion events' delivery attempts |
//!
//! Labels come from closed sets: route patterns (or `unmatched`), standard methods (or `OTHER`),
//! status codes, providers, result statuses and error kinds.

use std::sync::OnceLock;
use std::time::Duration;

use actix_web::{web, HttpResponse};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::catalog::ProviderId;
use crate::results::TargetResult;

pub const HTTP_REQUESTS: &str = "http_requests_total";
pub const HTTP_DURATION: &str = "http_request_duration_seconds";
pub const PROVIDER_RESULTS: &str = "clients_gateway_provider_results_total";
pub const PROVIDER_DURATION: &str = "clients_gateway_provider_duration_seconds";
pub const FANOUTS_IN_FLIGHT: &str = "clients_gateway_fanouts_in_flight";
/// A provider's circuit breaker (0 closed, 1 half-open, 2 open), set by `resilience::circuit`.
pub const CIRCUIT_STATE: &str = "clients_gateway_circuit_state";
pub const IDEMPOTENCY_KEYS: &str = "clients_gateway_idempotency_keys";
pub const SHED: &str = "clients_gateway_shed_total";
pub const SHED_DURATION: &str = "clients_gateway_shed_duration_seconds";
pub const REQUESTS_IN_FLIGHT: &str = "clients_gateway_requests_in_flight";
pub const PROVIDER_CALLS_IN_FLIGHT: &str = "clients_gateway_provider_calls_in_flight";
pub const INBOUND_CONNECTIONS: &str = "clients_gateway_inbound_connections";
pub const MEMORY_LIMIT: &str = "clients_gateway_memory_limit_bytes";
pub const MEMORY_BUDGET: &str = "clients_gateway_memory_budget_bytes";
pub const MEMORY_IN_USE: &str = "clients_gateway_memory_in_use_bytes";
pub const MEMORY_ALLOCATED: &str = "clients_gateway_memory_allocated_bytes";
pub const MEMORY_RESERVED: &str = "clients_gateway_memory_reserved_bytes";
pub const ADMISSION_CAPACITY: &str = "clients_gateway_admission_capacity";
pub const RECORDS: &str = "clients_gateway_idempotency_records_total";
pub const FLEET: &str = "clients_gateway_fleet_total";
pub const REDIS_USABLE: &str = "clients_gateway_redis_usable";
pub const INBOUND_PROTOCOL_ERRORS: &str = "clients_gateway_inbound_protocol_errors_total";
pub const OPERATIONS: &str = "clients_gateway_operations_total";
pub const OPERATION_ATTEMPTS: &str = "clients_gateway_operation_attempts_total";
pub const WEBHOOK_DELIVERIES: &str = "clients_gateway_webhook_deliveries_total";
pub const OPERATIONS_PENDING: &str = "clients_gateway_operation_targets_pending";
pub const OPERATIONS_OLDEST: &str = "clients_gateway_operation_oldest_pending_seconds";

const BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder once and returns the handle that renders it.
pub fn handle() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
                .expect("the buckets are not empty")
                .build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics may be empty");
            }
            describe();
            // Histogram samples are folded into their buckets on upkeep; without a regular
            // upkeep they would pile up between scrapes (or forever, if nobody scrapes).
            let upkeep = handle.clone();
            if let Err(e) = std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || loop {
                    std::thread::sleep(UPKEEP_EVERY);
                    upkeep.run_upkeep();
                })
            {
                tracing::warn!(error = %e, "cannot start the metrics upkeep thread");
            }
            handle
        })
        .clone()
}

/// How often recorded samples are folded into the histograms.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

fn describe() {
    metrics::describe_counter!(HTTP_REQUESTS, "HTTP requests answered, by route and status");
    metrics::describe_histogram!(
        HTTP_DURATION,
        metrics::Unit::Seconds,
        "HTTP request duration"
    );
    metrics::describe_counter!(
        PROVIDER_RESULTS,
        "Per-provider results: status created/failed/unknown, kind the error kind or none"
    );
    metrics::describe_histogram!(
        PROVIDER_DURATION,
        metrics::Unit::Seconds,
        "Time spent on one provider for one request"
    );
    metrics::describe_gauge!(FANOUTS_IN_FLIGHT, "Fan-outs under way");
    metrics::describe_gauge!(
        IDEMPOTENCY_KEYS,
        "Idempotency keys held by the in-process store (idempotency.max_keys at most)"
    );
    metrics::describe_counter!(
        RECORDS,
        "Outcomes written to the idempotency store: result recorded (at once), retried (after a failed write), lost (the claim ran out first), given_up (every write failed within the lease)"
    );
    metrics::describe_counter!(
        FLEET,
        "What the replicas share through Redis, by what (guard, quota) and outcome: guard taken/refused (Redis unanswered: fails closed, nothing sent); quota fleet (decided in Redis) or local (Redis unanswered: this replica's own limit)"
    );
    metrics::describe_gauge!(
        REDIS_USABLE,
        "1 when the last readiness check found Redis usable (it answers, is a master, runs the gateway's scripts, never evicts its keys), else 0"
    );
    metrics::describe_counter!(
        INBOUND_PROTOCOL_ERRORS,
        "Inbound HTTP/1 connections closed for their peer's fault (a malformed request head, a connection cut mid-request): counted, not logged as errors"
    );
    describe_operations();
    describe_load();
}

fn describe_operations() {
    metrics::describe_counter!(
        OPERATIONS,
        "Asynchronous operations: accepted, then done by final state (succeeded, partial, failed, cancelled)"
    );
    metrics::describe_counter!(
        OPERATION_ATTEMPTS,
        "Attempts of operations' targets, by provider and the status they left the target in (pending: attempted again later)"
    );
    metrics::describe_counter!(
        WEBHOOK_DELIVERIES,
        "Completion events' delivery attempts, by webhook (its configured name) and result: delivered, gone (410: stopped), rate_limited, http_error, timeout, unreachable, not_configured"
    );
    metrics::describe_gauge!(
        OPERATIONS_PENDING,
        "Operations' targets pending, by provider, fleet-wide"
    );
    metrics::describe_gauge!(
        OPERATIONS_OLDEST,
        metrics::Unit::Seconds,
        "How long the oldest pending target of each provider has been waiting (0: none)"
    );
}

/// The load's metrics: shedding, what is in flight, the memory budget.
fn describe_load() {
    metrics::describe_counter!(
        SHED,
        "POST /clients refused with 503 overloaded before its body was read: reason budget (the requests in flight fill the memory budget) or memory (the working set is near the limit)"
    );
    metrics::describe_histogram!(
        SHED_DURATION,
        metrics::Unit::Seconds,
        "From a shed request's head read to its 503 built"
    );
    metrics::describe_gauge!(
        REQUESTS_IN_FLIGHT,
        "POST /clients admitted and not answered yet"
    );
    metrics::describe_gauge!(
        PROVIDER_CALLS_IN_FLIGHT,
        "Requests sent to a provider and not answered yet"
    );
    metrics::describe_gauge!(INBOUND_CONNECTIONS, "Open inbound connections");
    metrics::describe_gauge!(
        MEMORY_LIMIT,
        metrics::Unit::Bytes,
        "The memory limit: the container's cgroup limit, server.memory_budget_mb, or the machine's memory"
    );
    metrics::describe_gauge!(
        MEMORY_BUDGET,
        metrics::Unit::Bytes,
        "What the requests, connections and fixed costs may hold together (a share of the limit)"
    );
    metrics::describe_gauge!(
        MEMORY_IN_USE,
        metrics::Unit::Bytes,
        "The working set of the container's cgroup (else the process's resident set)"
    );
    metrics::describe_gauge!(
        MEMORY_ALLOCATED,
        metrics::Unit::Bytes,
        "The allocator's bytes allocated and not freed (jemalloc stats.allocated)"
    );
    metrics::describe_gauge!(
        MEMORY_RESERVED,
        metrics::Unit::Bytes,
        "What the budget's account holds: fixed costs, open connections, requests in flight"
    );
    metrics::describe_gauge!(
        ADMISSION_CAPACITY,
        "Requests to every available provider that fit in the budget at once (with the providers' protocols as known now)"
    );
}

/// The `method` label: the standard methods, any other folded into `OTHER` (a method is any token
/// a caller sends, authenticated or not).
pub fn method_label(method: &str) -> &'static str {
    const KNOWN: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE",
    ];
    KNOWN
        .into_iter()
        .find(|known| *known == method)
        .unwrap_or("OTHER")
}

/// Counts an answered HTTP request. `route` is the matched route pattern or `unmatched`; the
/// method is folded by [`method_label`]: every label comes from a closed set.
pub fn http_request(route: &str, method: &str, status: u16, duration: Duration) {
    let (route, method) = (route.to_owned(), method_label(method));
    metrics::counter!(HTTP_REQUESTS, "route" => route.clone(), "method" => method, "status" => status.to_string())
        .increment(1);
    metrics::histogram!(HTTP_DURATION, "route" => route, "method" => method)
        .record(duration.as_secs_f64());
}

pub fn provider_result(provider: ProviderId, result: &TargetResult) {
    let status = result.status.as_str();
    let kind = result.error.as_ref().map_or("none", |e| e.kind.as_str());
    metrics::counter!(PROVIDER_RESULTS, "provider" => provider.as_str(), "status" => status, "kind" => kind)
        .increment(1);
    metrics::histogram!(PROVIDER_DURATION, "provider" => provider.as_str(), "status" => status)
        .record(Duration::from_millis(result.duration_ms).as_secs_f64());
}

/// The in-process store's key count.
pub fn idempotency_keys(count: usize) {
    metrics::gauge!(IDEMPOTENCY_KEYS).set(count as f64);
}

/// Counts an outcome written to the idempotency store (`result`: a closed set).
pub fn record(result: &'static str) {
    metrics::counter!(RECORDS, "result" => result).increment(1);
}

/// Counts a fleet-wide decision (`what`, `outcome`: closed sets).
pub fn fleet(what: &'static str, outcome: &'static str) {
    metrics::counter!(FLEET, "what" => what, "outcome" => outcome).increment(1);
}

/// Counts an inbound connection closed for its peer's fault.
pub fn inbound_protocol_error() {
    metrics::counter!(INBOUND_PROTOCOL_ERRORS).increment(1);
}

/// Counts an operation's event (`event`: a closed set, see [`OPERATIONS`]).
pub fn operation(event: &'static str) {
    metrics::counter!(OPERATIONS, "event" => event).increment(1);
}

/// Counts an attempt of an operation's target, by the status it left the target in.
pub fn operation_attempt(provider: ProviderId, status: &'static str) {
    metrics::counter!(OPERATION_ATTEMPTS, "provider" => provider.as_str(), "status" => status)
        .increment(1);
}

/// Counts a completion event's delivery attempt to webhook `name` (a configured name, else
/// `other`) by result (a closed set, see [`WEBHOOK_DELIVERIES`]).
pub fn webhook_delivery<'a>(
    name: &str,
    mut configured: impl Iterator<Item = &'a str>,
    result: &'static str,
) {
    let webhook = configured
        .find(|c| *c == name)
        .unwrap_or("other")
        .to_owned();
    metrics::counter!(WEBHOOK_DELIVERIES, "webhook" => webhook, "result" => result).increment(1);
}

/// The queue's depth for `provider`.
pub fn operations_pending(provider: ProviderId, pending: u64, oldest_ms: Option<u64>) {
    metrics::gauge!(OPERATIONS_PENDING, "provider" => provider.as_str()).set(pending as f64);
    let oldest = oldest_ms.map_or(0.0, |ms| ms as f64 / 1000.0);
    metrics::gauge!(OPERATIONS_OLDEST, "provider" => provider.as_str()).set(oldest);
}

/// Whether Redis was found usable by the last readiness check.
pub fn redis_usable(usable: bool) {
    metrics::gauge!(REDIS_USABLE).set(if usable { 1.0 } else { 0.0 });
}

/// Counts a request shed for `reason` (a closed set: `budget`, `memory`).
pub fn shed(reason: &'static str) {
    metrics::counter!(SHED, "reason" => reason).increment(1);
}

/// How long shedding a request took in the gateway.
pub fn shed_took(took: Duration) {
    metrics::histogram!(SHED_DURATION).record(took.as_secs_f64());
}

/// The admission's account, as sampled.
pub struct AdmissionFigures {
    pub allocated: Option<u64>,
    pub limit: u64,
    pub budget: u64,
    pub in_use: u64,
    pub held: u64,
    pub requests: u64,
    pub connections: u64,
    pub capacity: Option<u64>,
}

pub fn admission(f: AdmissionFigures) {
    metrics::gauge!(MEMORY_LIMIT).set(f.limit as f64);
    metrics::gauge!(MEMORY_BUDGET).set(f.budget as f64);
    metrics::gauge!(MEMORY_IN_USE).set(f.in_use as f64);
    metrics::gauge!(MEMORY_RESERVED).set(f.held as f64);
    metrics::gauge!(REQUESTS_IN_FLIGHT).set(f.requests as f64);
    metrics::gauge!(INBOUND_CONNECTIONS).set(f.connections as f64);
    if let Some(allocated) = f.allocated {
        metrics::gauge!(MEMORY_ALLOCATED).set(allocated as f64);
    }
    if let Some(capacity) = f.capacity {
        metrics::gauge!(ADMISSION_CAPACITY).set(capacity as f64);
    }
}

/// A call to `provider` in flight until dropped.
pub struct CallInFlight(ProviderId);

impl CallInFlight {
    pub fn start(provider: ProviderId) -> Self {
        metrics::gauge!(PROVIDER_CALLS_IN_FLIGHT, "provider" => provider.as_str()).increment(1.0);
        CallInFlight(provider)
    }
}

impl Drop for CallInFlight {
    fn drop(&mut self) {
        metrics::gauge!(PROVIDER_CALLS_IN_FLIGHT, "provider" => self.0.as_str()).decrement(1.0);
    }
}

/// Counts a fan-out as under way until dropped.
pub struct InFlight;

impl InFlight {
    pub fn start() -> Self {
        metrics::gauge!(FANOUTS_IN_FLIGHT).increment(1.0);
        InFlight
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        metrics::gauge!(FANOUTS_IN_FLIGHT).decrement(1.0);
    }
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "operations", operation_id = "metrics",
    responses((status = 200, description = "Prometheus text exposition format",
        content_type = "text/plain; version=0.0.4", body = String)))]
pub async fn render(exposition: web::Data<Exposition>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(exposition.current().await)
}

/// The metrics as `/metrics` serves them. Rendering thousands of series takes milliseconds of
/// CPU: it runs on the blocking pool, one render at a time, so that the thread that answers the
/// probes is never behind it (a connection pipelining `/metrics` delayed `/healthz` past a
/// kubelet's timeout). Callers that asked while a render was under way share the next one; each
/// answer is a render that started after its request arrived.
pub struct Exposition {
    handle: PrometheusHandle,
    latest: parking_lot::Mutex<Option<(std::time::Instant, bytes::Bytes)>>,
    rendering: tokio::sync::Mutex<()>,
}

impl Exposition {
    pub fn new(handle: PrometheusHandle) -> Self {
        Self {
            handle,
            latest: parking_lot::Mutex::new(None),
            rendering: tokio::sync::Mutex::new(()),
        }
    }

    async fn current(&self) -> bytes::Bytes {
        let asked = std::time::Instant::now();
        let _one_at_a_time = self.rendering.lock().await;
        if let Some((started, rendered)) = self.latest.lock().clone() {
            if started >= asked {
                return rendered;
            }
        }
        let started = std::time::Instant::now();
        let handle = self.handle.clone();
        let rendered = web::block(move || bytes::Bytes::from(handle.render()))
            .await
            .unwrap_or_default();
        *self.latest.lock() = Some((started, rendered.clone()));
        rendered
    }
}

#[cfg(test)]
mod tests {
    /// Every metric this module exports is in the table of its documentation (from which
    /// `docs/reference/metrics.md` is generated).
    #[test]
    fn every_metric_is_documented() {
        let source = include_str!("metrics.rs");
        let documented: Vec<&str> = source
            .lines()
            .filter_map(|l| l.strip_prefix("//! | `"))
            .filter_map(|l| l.split('`').next())
            .collect();
        let exported: Vec<&str> = source
            .lines()
            .filter_map(|l| l.strip_prefix("pub const "))
            .filter_map(|l| l.split('"').nth(1))
            .collect();
        for name in exported {
            assert!(documented.contains(&name), "{name} is not in the table");
        }
    }

    use super::*;

    #[test]
    fn methods_fold_into_a_closed_set() {
        assert_eq!(method_label("POST"), "POST");
        assert_eq!(method_label("post"), "OTHER");
        assert_eq!(method_label("BREW"), "OTHER");
        assert_eq!(method_label(&"X".repeat(8000)), "OTHER");
    }
}
