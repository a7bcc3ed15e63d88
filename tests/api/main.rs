//! Black-box tests through the real HTTP server, one binary. Each provider's adapter tests are
//! in the file named after it (declared from the provider list, so none can be missing).

mod auth;
mod clients;
mod contract;
mod egress;
mod helpers;
mod hostile;
mod idempotency;
mod lookups;
mod metrics;
mod openapi;
mod overload;
mod problems;
mod resilience;
mod robustness;
mod sandbox;
mod secrets;
mod shutdown;
mod traces;

macro_rules! adapter_tests {
    ($(($variant:ident, $module:ident, $display:literal)),* $(,)?) => {
        $(mod $module;)*
    };
}

clients_gateway::for_each_provider!(adapter_tests);
