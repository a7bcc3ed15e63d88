//! The five providers simulated in-process on loopback, each at its documented path under a
//! prefix (`http://127.0.0.1:PORT/lucca/timmi-project/api/v4/clients`, ...), checking its own auth
//! header, required fields and uniqueness rules, and answering with its documented bodies and
//! errors. Used by `--sandbox`, by the tests and by the benchmark.

mod chatdash;
mod clockify;
mod lucca;
mod missionx;
mod plusvibe;

use std::collections::HashSet;
use std::net::TcpListener;
use std::sync::Mutex;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::http::StatusCode;
use actix_web::{web, App, HttpResponse, HttpServer};
use rand::Rng;
use secrecy::SecretString;
use serde_json::Value;
use url::Url;

use crate::config::Settings;
use crate::providers::ProviderId;

/// The sandbox tenants' credentials. They open nothing outside this process.
pub mod credentials {
    pub const LUCCA_API_KEY: &str = "sandbox-lucca-api-key";
    pub const CLOCKIFY_API_KEY: &str = "sandbox-clockify-api-key";
    pub const PLUSVIBE_API_KEY: &str = "sandbox-plusvibe-api-key";
    pub const CHATDASH_API_KEY: &str = "sandbox-chatdash-agency-key";
    pub const MISSIONX_CLIENT_ID: &str = "sandbox-missionx-client";
    pub const MISSIONX_CLIENT_SECRET: &str = "sandbox-missionx-secret";
    pub const MISSIONX_ORG_ID: &str = "6650c0ffee00000000000001";
}

/// The sandbox tenants' defaults (the ids of DESIGN's example request).
pub mod defaults {
    pub const LUCCA_ORGANIZATION_ID: u64 = 12;
    pub const CLOCKIFY_WORKSPACE_ID: &str = "64a687e29ae1f428e7ebe303";
    pub const PLUSVIBE_WORKSPACE_ID: &str = "65f99a0dd96fae8ab61130c0";
    pub const MISSIONX_DEPARTMENT: &str = "6650c0ffee0000000000abcd";
}

#[derive(Debug, Clone)]
pub struct SandboxOptions {
    /// Added before every answer (latency of a real provider).
    pub delay: Duration,
    /// HTTP worker threads of the sandbox server (default 1).
    pub workers: Option<usize>,
    /// Listen address; default `127.0.0.1:0` (a free port).
    pub bind: String,
    /// Enforce the providers' uniqueness rules (duplicate Lucca code, Clockify name, ChatDash
    /// login id). Off for load tests that send the same body again and again.
    pub unique: bool,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        Self {
            delay: Duration::ZERO,
            workers: None,
            bind: "127.0.0.1:0".into(),
            unique: true,
        }
    }
}

/// What the simulated tenants remember, for their uniqueness rules.
#[derive(Default)]
struct State {
    delay: Duration,
    unique: bool,
    lucca_codes: Mutex<HashSet<String>>,
    lucca_next_id: std::sync::atomic::AtomicU64,
    clockify_names: Mutex<HashSet<(String, String)>>,
    chatdash_logins: Mutex<HashSet<String>>,
    missionx_tokens: Mutex<HashSet<String>>,
}

pub struct Sandbox {
    port: u16,
    handle: ServerHandle,
}

impl Sandbox {
    /// Starts the five simulated providers on `127.0.0.1` at a free port.
    pub fn start(options: SandboxOptions) -> std::io::Result<Self> {
        let listener = TcpListener::bind(&options.bind)?;
        let port = listener.local_addr()?.port();
        let state = web::Data::new(State {
            delay: options.delay,
            unique: options.unique,
            lucca_next_id: 1000.into(),
            ..State::default()
        });
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(web::PayloadConfig::new(1024 * 1024))
                .configure(lucca::routes)
                .configure(clockify::routes)
                .configure(plusvibe::routes)
                .configure(chatdash::routes)
                .configure(missionx::routes)
        })
        .workers(options.workers.unwrap_or(1))
        .disable_signals()
        .listen(listener)?
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Ok(Self { port, handle })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The `base_url` of one simulated provider.
    pub fn base_url(&self, provider: ProviderId) -> Url {
        let path = match provider {
            ProviderId::Lucca => "lucca",
            ProviderId::Clockify => "clockify/api",
            ProviderId::Plusvibe => "plusvibe/api/v1",
            ProviderId::Chatdash => "chatdash/v1/public",
            ProviderId::Missionx => "missionx/v2",
        };
        Url::parse(&format!("http://127.0.0.1:{}/{path}", self.port)).expect("valid URL")
    }

    /// Points every provider of `settings` at the sandbox, with the sandbox credentials, and
    /// fills the provider defaults the settings leave unset.
    pub fn configure(&self, settings: &mut Settings) {
        use credentials as c;
        let p = &mut settings.providers;
        let secret = |s: &str| Some(SecretString::from(s));

        p.lucca.enabled = true;
        p.lucca.base_url = self.base_url(ProviderId::Lucca);
        p.lucca.api_key = secret(c::LUCCA_API_KEY);
        p.lucca.api_key_file = None;
        p.lucca.organization_id = p
            .lucca
            .organization_id
            .or(Some(defaults::LUCCA_ORGANIZATION_ID));

        p.clockify.enabled = true;
        p.clockify.base_url = self.base_url(ProviderId::Clockify);
        p.clockify.api_key = secret(c::CLOCKIFY_API_KEY);
        p.clockify.api_key_file = None;
        p.clockify
            .workspace_id
            .get_or_insert_with(|| defaults::CLOCKIFY_WORKSPACE_ID.into());

        p.plusvibe.enabled = true;
        p.plusvibe.base_url = self.base_url(ProviderId::Plusvibe);
        p.plusvibe.api_key = secret(c::PLUSVIBE_API_KEY);
        p.plusvibe.api_key_file = None;
        p.plusvibe
            .workspace_id
            .get_or_insert_with(|| defaults::PLUSVIBE_WORKSPACE_ID.into());

        p.chatdash.enabled = true;
        p.chatdash.base_url = self.base_url(ProviderId::Chatdash);
        p.chatdash.api_key = secret(c::CHATDASH_API_KEY);
        p.chatdash.api_key_file = None;

        let m = &mut p.missionx;
        m.enabled = true;
        m.base_url = self.base_url(ProviderId::Missionx);
        m.token_url = Url::parse(&format!("{}/auth/token", m.base_url)).expect("valid URL");
        m.client_id = Some(c::MISSIONX_CLIENT_ID.into());
        m.client_secret = secret(c::MISSIONX_CLIENT_SECRET);
        m.client_secret_file = None;
        m.org_id = Some(c::MISSIONX_ORG_ID.into());
        m.access_token = None;
        m.access_token_file = None;
        if m.departments.is_empty() {
            m.departments = vec![defaults::MISSIONX_DEPARTMENT.into()];
        }
    }

    pub async fn stop(self) {
        self.handle.stop(true).await;
    }
}

impl State {
    /// Records `key` in `set`; false when it was there already and uniqueness is enforced.
    fn first_use<K: std::hash::Hash + Eq>(&self, set: &Mutex<HashSet<K>>, key: K) -> bool {
        !self.unique || set.lock().expect("sandbox state").insert(key)
    }
}

/// A JSON answer after the configured delay.
async fn answer(state: &State, status: StatusCode, body: Value) -> HttpResponse {
    if !state.delay.is_zero() {
        tokio::time::sleep(state.delay).await;
    }
    HttpResponse::build(status).json(body)
}

/// A random 24-hex id, like the MongoDB ObjectIds Clockify, PlusVibe and missionX use.
fn object_id() -> String {
    let mut rng = rand::rng();
    (0..24)
        .map(|_| char::from_digit(rng.random_range(0..16), 16).expect("hex digit"))
        .collect()
}

/// A string member of a JSON object, if present and not blank.
fn text<'a>(body: &'a Value, pointer: &str) -> Option<&'a str> {
    body.pointer(pointer)
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
}

fn header<'a>(req: &'a actix_web::HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}
