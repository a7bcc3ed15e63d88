//! Black-box tests through the real HTTP server, one binary.

mod auth;
mod chatdash;
mod clients;
mod clockify;
mod contract;
mod helpers;
mod idempotency;
mod lucca;
mod metrics;
mod missionx;
mod openapi;
mod plusvibe;
mod problems;
mod resilience;
mod robustness;
mod sandbox;
mod secrets;
mod shutdown;
