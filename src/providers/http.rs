//! The outbound HTTP client and what its errors say.

use std::time::Duration;

/// The outbound HTTP client of one provider.
pub fn http_client(max_idle: usize) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .user_agent(concat!("clients-gateway/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(3))
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(max_idle)
        .tcp_nodelay(true)
        // A create call is never replayed elsewhere: a redirect (usually a wrong base_url)
        // is reported, not followed.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}
