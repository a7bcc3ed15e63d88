//! Black-box tests through the real HTTP server, one binary. Each provider's adapter tests are
//! in the file named after it (declared from the provider list, so none can be missing).

mod auth;
mod clients;
mod contract;
mod egress;
mod fleet;
mod helpers;
mod hostile;
mod hostile_two;
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

        /// A provider as the tests see it, from its own test file (`<name>::as_tested`).
        pub fn fixture(id: clients_gateway::catalog::ProviderId) -> helpers::Fixture {
            match id {
                $(clients_gateway::catalog::ProviderId::$variant => $module::as_tested(),)*
            }
        }

        /// The mock providers, one server each.
        pub struct Mocks {
            $(pub $module: wiremock::MockServer,)*
        }

        impl Mocks {
            pub async fn start() -> Self {
                Self {
                    $($module: wiremock::MockServer::start().await,)*
                }
            }

            /// The mock of one provider.
            pub fn of(&self, id: clients_gateway::catalog::ProviderId) -> &wiremock::MockServer {
                match id {
                    $(clients_gateway::catalog::ProviderId::$variant => &self.$module,)*
                }
            }
        }
    };
}

clients_gateway::for_each_provider!(adapter_tests);
