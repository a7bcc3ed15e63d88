//! clients-gateway: one `POST /clients` that creates a client in several SaaS tools at once and
//! answers 207 Multi-Status.

pub mod auth;
pub mod config;
pub mod domain;
pub mod fanout;
pub mod idempotency;
pub mod ids;
pub mod metrics;
pub mod openapi;
pub mod problem;
pub mod providers;
pub mod request_id;
pub mod resilience;
pub mod results;
pub mod routes;
pub mod sandbox;
pub mod startup;
pub mod telemetry;
