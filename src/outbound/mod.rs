//! How the gateway calls any provider at run time, whatever its adapter: the [`Target`] (an
//! adapter with its HTTP clients, authentication, timeout and protections) and the
//! [`Registry`] of every provider, the outbound HTTP clients and their lanes ([`http`]), OAuth2
//! tokens ([`oauth`]), and one request exchanged with a provider in named steps ([`exchange`]).
//! Nothing here knows a provider by name.

pub mod exchange;
pub mod http;
pub mod oauth;
mod target;

pub use http::{connecting_by, http_client, ChosenLane, ClientSpec, Connections};
pub use oauth::TokenSource;
pub use target::{build, Authorizer, BuildContext, Registry, Target, Unavailable};
