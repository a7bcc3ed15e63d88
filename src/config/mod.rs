//! Settings: a TOML file, then `CLIENTS_GATEWAY__SECTION__KEY` environment overrides, then
//! `*_file` secrets read from disk (mounted Kubernetes secrets).
//!
//! Every key is documented in the configuration reference (`docs/reference/configuration.md`, generated from these types); unknown keys are refused so a
//! typo cannot silently fall back to a default.

use std::path::{Path, PathBuf};

pub mod env;
pub mod schema;

use figment::providers::{Format, Serialized, Toml};
use figment::Figment;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use crate::auth::AuthSettings;
use crate::egress::{Egress, ProxySettings, TlsSettings};
use crate::fleet::RedisSettings;
use crate::providers::ProvidersSettings;
use crate::secret::{read_secret_file, SecretFileError};
pub use crate::telemetry::{LogFormat, TelemetrySettings};

/// The largest configuration file read.
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

pub use env::ENV_PREFIX;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Secret(#[from] SecretFileError),
    #[error("configuration: {0}")]
    Invalid(String),
}

#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(default)]
    pub server: ServerSettings,
    #[serde(default)]
    pub auth: AuthSettings,
    #[serde(default)]
    pub idempotency: IdempotencySettings,
    #[serde(default)]
    pub providers: ProvidersSettings,
    #[serde(default)]
    pub telemetry: TelemetrySettings,
    #[serde(default)]
    pub tls: TlsSettings,
    #[serde(default)]
    pub proxy: ProxySettings,
    #[serde(default)]
    pub operations: crate::operations::OperationsSettings,
}

/// `[server]`: the listeners, request limits, the deadline and the memory budget.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    /// Address the HTTP server listens on.
    pub bind: String,
    /// Largest accepted request body; larger bodies get 413.
    #[schema(minimum = 1024, maximum = 16777216)]
    pub body_limit_bytes: usize,
    /// Overall deadline of one fan-out, all targets included.
    #[schema(minimum = 1, maximum = 600000)]
    pub deadline_ms: u64,
    /// HTTP worker threads; absent: one per core.
    #[schema(minimum = 1, maximum = 1024)]
    pub workers: Option<usize>,
    /// On SIGTERM: how long in-flight requests may take to finish before the process exits.
    #[schema(minimum = 0, maximum = 3600)]
    pub shutdown_grace_s: u64,
    /// Largest accepted request head (all header names and values); larger gets 431.
    #[schema(minimum = 1024, maximum = 1048576)]
    pub header_limit_bytes: usize,
    /// A request body must arrive within this long once the headers are read; else 408 and the
    /// connection is closed.
    #[schema(minimum = 1, maximum = 600000)]
    pub body_timeout_ms: u64,
    /// Connections served at once at most (all workers together); more wait to be accepted.
    /// Absent: what the memory budget holds (half of its room, at an open connection's cost).
    /// Keep it under the process's open-file limit (raised to its hard limit at start).
    #[schema(minimum = 1, maximum = 1000000)]
    pub max_connections: Option<usize>,
    /// The memory the process may use, in MiB. Absent: the container's limit (cgroup v2
    /// `memory.max`, v1 `memory.limit_in_bytes`), else the machine's memory.
    #[schema(minimum = 64, maximum = 1048576)]
    pub memory_budget_mb: Option<u64>,
    /// A second listener serving only `/healthz`, `/readyz` and `/metrics`, on a thread of its
    /// own: the probes and the scraper are never queued behind the callers.
    pub ops_bind: Option<String>,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            bind: "0.0.0.0:8080".into(),
            body_limit_bytes: 64 * 1024,
            deadline_ms: 10_000,
            workers: None,
            shutdown_grace_s: 30,
            header_limit_bytes: 16 * 1024,
            body_timeout_ms: 10_000,
            max_connections: None,
            memory_budget_mb: None,
            ops_bind: None,
        }
    }
}

/// `[idempotency]`: where the `Idempotency-Key` records live (and, with Redis, everything the
/// replicas share: adoption guards, quotas), and for how long.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct IdempotencySettings {
    /// Redis shared by the replicas (`redis://host:6379/0`, `rediss://` for TLS); absent: an
    /// in-process store, right for a single replica only.
    #[schema(value_type = Option<String>, format = Password, default = json!(null))]
    #[serde(serialize_with = "crate::secret::serialize_redacted")]
    pub redis_url: Option<SecretString>,
    /// A file holding `redis_url` (a mounted Kubernetes secret).
    #[schema(value_type = Option<String>)]
    pub redis_url_file: Option<PathBuf>,
    /// The ACL user (Redis 6+); absent: the URL's, or the default user.
    pub redis_username: Option<String>,
    /// The password (of `redis_username`, or the default user); absent: the URL's, if any.
    #[schema(value_type = Option<String>, format = Password, default = json!(null))]
    #[serde(serialize_with = "crate::secret::serialize_redacted")]
    pub redis_password: Option<SecretString>,
    /// A file holding `redis_password`.
    #[schema(value_type = Option<String>)]
    pub redis_password_file: Option<PathBuf>,
    /// Redis Sentinel: the sentinels (`host:port`, or `redis://`/`rediss://` URLs) that name the
    /// master of `redis_master_name`. With them, `redis_url` is not set: the master is found
    /// through the sentinels, and found again after a failover.
    pub redis_sentinels: Vec<String>,
    /// Sentinel only: the name the sentinels know the master by.
    pub redis_master_name: Option<String>,
    /// Sentinel only: the master speaks TLS (`rediss://`), with the gateway's trust (`tls.*`).
    pub redis_tls: bool,
    /// Connecting (TCP, TLS, AUTH) may take this long.
    #[schema(minimum = 10, maximum = 60000)]
    pub redis_connect_timeout_ms: u64,
    /// Each command may take this long, connecting included: then the request is answered
    /// without Redis (a keyed request 503, an adoption failed with nothing sent).
    #[schema(minimum = 10, maximum = 60000)]
    pub redis_command_timeout_ms: u64,
    /// Replicas that must acknowledge a claim, a record or a guard (`WAIT`, within a third of
    /// `redis_command_timeout_ms`) before it counts: a write no replica holds is lost when a
    /// failover promotes one. Absent: 1 with Sentinel, and with a `redis_url` whose master has
    /// been seen with replicas; else 0. 0: never wait.
    #[schema(minimum = 0, maximum = 16)]
    pub redis_wait_replicas: Option<u32>,
    /// How long a key's record is kept (at least a claim's lease: `server.deadline_ms` and
    /// 30 s).
    #[schema(minimum = 1, maximum = 2592000)]
    pub ttl_s: u64,
    /// In-process store only: keys kept at most. When it is full, the record least recently
    /// used is forgotten, but never one used within `retain_s` (its request may still run or be
    /// retried): a new key is then refused with 503 until one ages out. Absent: 20,000, or
    /// fewer when 5 % of the memory limit holds fewer.
    #[schema(minimum = 1, maximum = 10000000)]
    pub max_keys: Option<usize>,
    /// In-process store only: a record used (claimed or finished) within this long is never
    /// forgotten to make room (at least a claim's lease: `server.deadline_ms` and 30 s).
    #[schema(minimum = 1, maximum = 2592000)]
    pub retain_s: u64,
}

impl Default for IdempotencySettings {
    fn default() -> Self {
        Self {
            redis_url: None,
            redis_url_file: None,
            redis_username: None,
            redis_password: None,
            redis_password_file: None,
            redis_sentinels: Vec::new(),
            redis_master_name: None,
            redis_tls: false,
            redis_connect_timeout_ms: 1_000,
            redis_command_timeout_ms: 1_000,
            redis_wait_replicas: None,
            ttl_s: 86_400,
            max_keys: None,
            retain_s: 3_600,
        }
    }
}

/// The configuration file's text: at most [`MAX_CONFIG_BYTES`], UTF-8.
fn read_config_file(path: &Path) -> Result<String, ConfigError> {
    let shown = path.display();
    if !path.exists() {
        return Err(ConfigError::Invalid(format!(
            "config file {shown} does not exist"
        )));
    }
    match crate::secret::read_bounded(path, MAX_CONFIG_BYTES) {
        Ok(bytes) => String::from_utf8(bytes)
            .map_err(|_| ConfigError::Invalid(format!("config file {shown} is not UTF-8 text"))),
        Err(crate::secret::FileReadError::TooLarge(limit)) => Err(ConfigError::Invalid(format!(
            "config file {shown} is larger than {limit} bytes"
        ))),
        Err(crate::secret::FileReadError::Io(e)) => {
            Err(ConfigError::Invalid(format!("config file {shown}: {e}")))
        }
    }
}

impl Settings {
    /// Loads the optional TOML file, then the environment overrides (`CLIENTS_GATEWAY__…`),
    /// then the `*_file` secrets, and checks the result: what `serve` starts with is what
    /// `check-config` accepts.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_from(file, std::env::vars_os())
    }

    /// As [`Settings::load`], with the environment given.
    pub fn load_from(
        file: Option<&Path>,
        vars: impl IntoIterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
    ) -> Result<Self, ConfigError> {
        let mut figment = Figment::new();
        if let Some(path) = file {
            figment = figment.merge(Toml::string(&read_config_file(path)?));
        }
        let overrides =
            env::overrides(vars, &schema::SettingsSchema::new()).map_err(ConfigError::Invalid)?;
        let figment = figment.merge(Serialized::defaults(overrides));
        let mut settings: Settings = figment
            .extract()
            .map_err(|e| ConfigError::Invalid(env::describe(&e)))?;
        settings.resolve_secret_files()?;
        settings.check()?;
        Ok(settings)
    }

    fn resolve_secret_files(&mut self) -> Result<(), ConfigError> {
        if let Some(path) = &self.auth.public_key_pem_file {
            if self.auth.public_key_pem.is_some() {
                return Err(SecretFileError::Twice {
                    key: "auth.public_key_pem".into(),
                }
                .into());
            }
            let mut pem = None;
            read_secret_file("auth.public_key_pem", &mut pem, &Some(path.clone()))?;
            self.auth.public_key_pem = pem.map(|p| p.expose_secret().to_owned());
        }
        read_secret_file(
            "idempotency.redis_url",
            &mut self.idempotency.redis_url,
            &self.idempotency.redis_url_file,
        )?;
        read_secret_file(
            "idempotency.redis_password",
            &mut self.idempotency.redis_password,
            &self.idempotency.redis_password_file,
        )?;
        read_secret_file(
            "auth.hs256_secret",
            &mut self.auth.hs256_secret,
            &self.auth.hs256_secret_file,
        )?;
        self.providers.resolve_secret_files()?;
        self.proxy.resolve_secret_files()?;
        Ok(())
    }

    /// The outbound trust and proxy (reads the CA bundle).
    pub fn egress(&self) -> Result<Egress, String> {
        Egress::from_settings(&self.tls, &self.proxy)
    }

    /// Every number within its bounds (no setting can overflow a clock or exhaust memory): the
    /// bounds its type declares (the configuration reference shows them); and what depends on
    /// more than one key.
    fn check(&self) -> Result<(), ConfigError> {
        if let Some(problem) = schema::SettingsSchema::new().out_of_bounds(&schema::as_json(self)) {
            return Err(ConfigError::Invalid(problem));
        }
        // A running request's record must not be forgotten: it is kept at least as long as a
        // claim holds (the deadline and its margin).
        let lease_s = self.server.deadline_ms.div_ceil(1000) + 30;
        if self.idempotency.retain_s < lease_s {
            return Err(ConfigError::Invalid(format!(
                "idempotency.retain_s must be at least server.deadline_ms + 30 s ({lease_s} s)"
            )));
        }
        self.server
            .check_listeners()
            .map_err(ConfigError::Invalid)?;
        let lease_s_ttl = lease_s;
        if self.idempotency.ttl_s < lease_s_ttl {
            return Err(ConfigError::Invalid(format!(
                "idempotency.ttl_s must be at least server.deadline_ms + 30 s ({lease_s_ttl} s): a record that expires while its request runs lets the same key run twice"
            )));
        }
        self.telemetry.check().map_err(ConfigError::Invalid)?;
        if let Some(url) = &self.auth.jwks_url {
            // The keys are fetched over the network, from the identity provider: a file or
            // any other scheme is a mistake (every request would then be refused).
            if let Some(problem) = crate::net::url_problem("auth.jwks_url", url) {
                return Err(ConfigError::Invalid(problem));
            }
        }
        for (id, common) in self.providers.commons() {
            if let Some(problem) = common.problem() {
                return Err(ConfigError::Invalid(format!("providers.{id}.{problem}")));
            }
        }
        Ok(())
    }
}

impl ServerSettings {
    /// `bind` and `ops_bind` are addresses to listen on (`host:port`), and not the same one.
    fn check_listeners(&self) -> Result<(), String> {
        let bind = listen_address("server.bind", &self.bind)?;
        let Some(ops_bind) = &self.ops_bind else {
            return Ok(());
        };
        let ops = listen_address("server.ops_bind", ops_bind)?;
        let same_port = bind.1 == ops.1 && bind.1 != 0;
        let unspecified = |host: &str| matches!(host, "0.0.0.0" | "::" | "[::]");
        if same_port && (bind.0 == ops.0 || unspecified(&bind.0) || unspecified(&ops.0)) {
            return Err(format!(
                "server.ops_bind ({ops_bind}) must listen elsewhere than server.bind ({}): another port",
                self.bind
            ));
        }
        Ok(())
    }
}

/// A listening address `host:port` (`[v6]:port` for IPv6), its host and port.
fn listen_address(key: &str, address: &str) -> Result<(String, u16), String> {
    let bad = || {
        format!(
            "{key} must be host:port (0.0.0.0:8080, 127.0.0.1:8081, [::]:8080), got `{}`",
            address.escape_debug()
        )
    };
    let (host, port) = address.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    let host_ok = if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        v6.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        host.parse::<std::net::Ipv4Addr>().is_ok()
            || (!host.is_empty()
                && host.split('.').all(|label| {
                    !label.is_empty()
                        && label.len() <= 63
                        && label
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                }))
    };
    if !host_ok {
        return Err(bad());
    }
    Ok((host.to_owned(), port))
}

impl IdempotencySettings {
    /// Where Redis is, as the link to it reads it.
    pub fn redis(&self) -> RedisSettings<'_> {
        RedisSettings {
            url: self.redis_url.as_ref(),
            username: self.redis_username.as_deref(),
            password: self.redis_password.as_ref(),
            sentinels: &self.redis_sentinels,
            master_name: self.redis_master_name.as_deref(),
            tls: self.redis_tls,
            connect_timeout: std::time::Duration::from_millis(self.redis_connect_timeout_ms),
            command_timeout: std::time::Duration::from_millis(self.redis_command_timeout_ms),
            wait_replicas: self.redis_wait_replicas,
        }
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment's Jail closures return figment::Error
mod tests {
    use super::*;
    use figment::Jail;
    use secrecy::ExposeSecret;

    fn load(jail: &Jail, file: Option<&str>) -> Result<Settings, ConfigError> {
        Settings::load(file.map(|f| jail.directory().join(f)).as_deref())
    }

    #[test]
    fn defaults_are_the_production_urls() {
        Jail::expect_with(|jail| {
            let s = load(jail, None).unwrap();
            assert_eq!(s.server.bind, "0.0.0.0:8080");
            assert_eq!(s.server.body_limit_bytes, 65536);
            assert_eq!(s.server.deadline_ms, 10_000);
            // Each adapter's tests check its own production URL.
            for (id, common) in s.providers.commons() {
                assert_eq!(common.base_url.scheme(), "https", "{id}");
                assert_eq!(common.timeout_ms, 5000, "{id}");
                assert!(common.enabled, "{id}");
            }
            assert_eq!(s.auth.required_scope, "clients:write");
            Ok(())
        });
    }

    #[test]
    fn file_then_environment_then_secret_files() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "gateway.toml",
                r#"
                [server]
                deadline_ms = 2000
                [providers.clockify]
                api_key = "from-file"
                workspace_id = "w1"
                [providers.lucca]
                api_key_file = "lucca.key"
                organization_id = 12
                "#,
            )?;
            jail.create_file("lucca.key", "lucca-secret\n")?;
            jail.set_env(
                "CLIENTS_GATEWAY__PROVIDERS__CLOCKIFY__BASE_URL",
                "http://127.0.0.1:9/api",
            );
            jail.set_env("CLIENTS_GATEWAY__SERVER__DEADLINE_MS", "3000");
            jail.set_env("CLIENTS_GATEWAY__PROVIDERS__CLOCKIFY__WORKSPACE_ID", "w2");
            let s = load(jail, Some("gateway.toml")).unwrap();
            assert_eq!(
                s.server.deadline_ms, 3000,
                "the environment wins over the file"
            );
            let c = &s.providers.clockify;
            assert_eq!(c.base_url.as_str(), "http://127.0.0.1:9/api");
            assert_eq!(c.workspace_id.as_deref(), Some("w2"));
            assert_eq!(c.api_key.as_ref().unwrap().expose_secret(), "from-file");
            let l = &s.providers.lucca;
            assert_eq!(
                l.api_key.as_ref().unwrap().expose_secret(),
                "lucca-secret",
                "read from the file, trailing newline trimmed"
            );
            assert_eq!(l.organization_id, Some(12));
            let debug = format!("{s:?}");
            assert!(!debug.contains("lucca-secret") && !debug.contains("from-file"));
            Ok(())
        });
    }

    #[test]
    fn mistakes_are_refused_with_their_key() {
        Jail::expect_with(|jail| {
            jail.create_file("typo.toml", "[providers.clockify]\napi_kye = \"x\"\n")?;
            let e = load(jail, Some("typo.toml")).unwrap_err().to_string();
            assert!(e.contains("api_kye"), "{e}");

            jail.create_file(
                "twice.toml",
                "[providers.chatdash]\napi_key = \"a\"\napi_key_file = \"k\"\n",
            )?;
            let e = load(jail, Some("twice.toml")).unwrap_err().to_string();
            assert!(e.contains("providers.chatdash.api_key"), "{e}");

            jail.create_file(
                "missing.toml",
                "[auth]\nhs256_secret_file = \"/nonexistent/key\"\n",
            )?;
            let e = load(jail, Some("missing.toml")).unwrap_err().to_string();
            assert!(
                e.contains("auth.hs256_secret") && e.contains("/nonexistent/key"),
                "{e}"
            );

            jail.create_file("url.toml", "[providers.plusvibe]\nbase_url = \"ftp://x\"\n")?;
            let e = load(jail, Some("url.toml")).unwrap_err().to_string();
            assert!(e.contains("providers.plusvibe.base_url"), "{e}");

            let e = load(jail, Some("absent.toml")).unwrap_err().to_string();
            assert!(e.contains("does not exist"), "{e}");

            for endpoint in ["https://collector:4318", "http://user:pw@collector:4318"] {
                jail.create_file(
                    "otlp.toml",
                    &format!("[telemetry]\notlp_endpoint = \"{endpoint}\"\n"),
                )?;
                let e = load(jail, Some("otlp.toml")).unwrap_err().to_string();
                assert!(e.contains("telemetry.otlp_endpoint"), "{e}");
                assert!(!e.contains("pw@"), "{e}");
            }
            jail.create_file("name.toml", "[telemetry]\nservice_name = \" \"\n")?;
            let e = load(jail, Some("name.toml")).unwrap_err().to_string();
            assert!(e.contains("telemetry.service_name"), "{e}");
            Ok(())
        });
    }
}
