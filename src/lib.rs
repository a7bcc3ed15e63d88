//! clients-gateway: one `POST /clients` that creates a client in several SaaS tools at once and
//! answers 207 Multi-Status.
//!
//! The modules are listed bottom-up: each imports only modules listed above it
//! (`python3 .ci/import-cycles.py` checks it, in CI). `docs/building/architecture.md` walks a
//! request through them.

// The vocabulary: leaf modules that import nothing else from the crate.
pub mod catalog;
pub mod field_error;
pub mod ids;
pub mod json_number;
pub mod net;
pub mod provider_error;
pub mod secret;
// Words built from the vocabulary: request ids, per-target results.
pub mod request_id;
pub mod results;

// Cross-cutting: metrics, logs and traces, outbound trust and proxy, RFC 9457 problems.
pub mod egress;
pub mod metrics;
pub mod problem;
pub mod telemetry;

// The canonical client, parsed once.
pub mod domain;

// What the replicas share through Redis, and the per-provider protections built on it.
pub mod fleet;
pub mod resilience;

// Providers: the adapter contract, the outbound runtime, the adapters themselves.
pub mod adapter;
pub mod outbound;
pub mod providers;

// One request's work: the targets' lives, idempotency records, a keyed request's run.
pub mod fanout;
pub mod idempotency;
pub mod keyed;
pub mod operations;

// The inbound edge: the memory budget, callers' tokens, HTTP middleware.
pub mod overload;

pub mod auth;
pub mod middleware;

// Configuration, the routes and their OpenAPI document, the simulated providers, the start.
pub mod config;
pub mod routes;

pub mod openapi;
pub mod sandbox;
pub mod startup;
