//! clients-gateway: one `POST /clients` that creates a client in several SaaS tools at once and
//! answers 207 Multi-Status.

// The vocabulary: leaf modules that import nothing else from the crate.
pub mod catalog;
pub mod field_error;
pub mod ids;
pub mod json_number;
pub mod net;
pub mod provider_error;
pub mod results;
pub mod secret;

pub mod auth;
pub mod config;
pub mod domain;
pub mod egress;
pub mod fanout;
pub mod fleet;
pub mod idempotency;
pub mod metrics;
pub mod middleware;
pub mod openapi;
pub mod overload;
pub mod problem;
pub mod providers;
pub mod replay;
pub mod request_id;
pub mod resilience;
pub mod routes;
pub mod sandbox;
pub mod startup;
pub mod telemetry;
