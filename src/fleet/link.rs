//! The one connection to Redis that the replicas share things through: `redis://` or `rediss://`
//! (TLS with the gateway's trust, `tls.*`), an ACL user and a password from a secret file, or a
//! Sentinel set-up whose master is found again after a failover. Every command is bounded
//! (`idempotency.redis_command_timeout_ms`, connecting included).

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{ConnectionAddr, IntoConnectionInfo, TlsCertificates, TlsMode};
use secrecy::{ExposeSecret, SecretString};

use crate::egress::Egress;

/// Where Redis is and how to reach it (`[idempotency]`'s `redis_*` keys).
#[derive(Debug, Clone, Copy)]
pub struct RedisSettings<'a> {
    /// One Redis (`redis://`, `rediss://`).
    pub url: Option<&'a SecretString>,
    /// The ACL user, over the URL's.
    pub username: Option<&'a str>,
    /// The password, over the URL's.
    pub password: Option<&'a SecretString>,
    /// Or a Sentinel set-up: the sentinels and the master's name.
    pub sentinels: &'a [String],
    pub master_name: Option<&'a str>,
    /// Sentinel only: the master speaks TLS.
    pub tls: bool,
    pub connect_timeout: Duration,
    pub command_timeout: Duration,
}

/// Redis could not be used: why, in words (never a URL or a password).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct LinkError(pub String);

/// Where the connection comes from.
enum Source {
    /// One Redis (a URL): the connection manager reconnects to it.
    Direct(Box<redis::Client>),
    /// The master of a Sentinel set-up: asked of the sentinels again after an error.
    Sentinel(Box<tokio::sync::Mutex<SentinelClient>>),
}

/// A shared, lazily connected, bounded link to Redis.
pub struct Link {
    source: Source,
    /// The current connection, made on first use (Sentinel: to the master last named).
    connection: Mutex<Option<ConnectionManager>>,
    config: ConnectionManagerConfig,
    command_timeout: Duration,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("redis::Link")
    }
}

fn unavailable(e: impl std::fmt::Display) -> LinkError {
    LinkError(e.to_string())
}

/// A URL's error, without echoing the URL (it may hold a password).
fn invalid(key: &str, e: &redis::RedisError) -> String {
    format!("{key} is not a usable Redis address ({:?})", e.kind())
}

impl Link {
    /// The link the settings ask for, if any: `redis_url`, or `redis_sentinels` with
    /// `redis_master_name`. Connects lazily: a Redis that is down at start makes the gateway not
    /// ready, not dead.
    pub fn from_settings(
        settings: &RedisSettings<'_>,
        egress: &Egress,
    ) -> Result<Option<Arc<Self>>, String> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(settings.connect_timeout))
            .set_response_timeout(Some(settings.command_timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let source = match (settings.url, settings.sentinels.is_empty()) {
            (None, true) => return Ok(None),
            (Some(_), false) => {
                return Err("idempotency: set redis_url or redis_sentinels, not both".into())
            }
            (Some(url), true) => Source::Direct(Box::new(direct_client(
                url.expose_secret(),
                settings,
                egress,
            )?)),
            (None, false) => Source::Sentinel(Box::new(tokio::sync::Mutex::new(sentinel_client(
                settings, egress,
            )?))),
        };
        Ok(Some(Arc::new(Self {
            source,
            connection: Mutex::new(None),
            config,
            command_timeout: settings.command_timeout,
        })))
    }

    /// The connection to use now (Sentinel: the master, asked of the sentinels when unknown).
    async fn connection(&self) -> Result<ConnectionManager, LinkError> {
        if let Some(connection) = self.connection.lock().clone() {
            return Ok(connection);
        }
        let client = match &self.source {
            Source::Direct(client) => (**client).clone(),
            Source::Sentinel(sentinel) => {
                let mut sentinel = sentinel.lock().await;
                // Another request may have asked while this one waited.
                if let Some(connection) = self.connection.lock().clone() {
                    return Ok(connection);
                }
                sentinel
                    .async_get_client()
                    .await
                    .map_err(|e| LinkError(format!("no Redis master from the sentinels: {e}")))?
            }
        };
        let manager = ConnectionManager::new_lazy_with_config(client, self.config.clone())
            .map_err(unavailable)?;
        *self.connection.lock() = Some(manager.clone());
        Ok(manager)
    }

    /// Runs `command` on the connection within the command timeout (connecting included). With
    /// Sentinel, an error forgets the master, so that the next command asks the sentinels which
    /// one it is now (a failover, or a master demoted to a replica: `READONLY`).
    pub async fn run<T, F, Fut>(&self, command: F) -> Result<T, LinkError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let within = self.command_timeout;
        let outcome = tokio::time::timeout(within, async {
            let connection = self.connection().await?;
            command(connection).await.map_err(unavailable)
        })
        .await
        .unwrap_or_else(|_| {
            Err(LinkError(format!(
                "Redis did not answer within {} ms",
                within.as_millis()
            )))
        });
        if outcome.is_err() && matches!(self.source, Source::Sentinel(_)) {
            *self.connection.lock() = None;
        }
        outcome
    }
}

/// The user and password of the settings, over the URL's own.
fn with_credentials(
    mut redis: redis::RedisConnectionInfo,
    settings: &RedisSettings<'_>,
) -> redis::RedisConnectionInfo {
    if let Some(user) = settings.username {
        redis = redis.set_username(user);
    }
    if let Some(password) = settings.password {
        redis = redis.set_password(password.expose_secret());
    }
    redis
}

/// A client of the Redis at `url`, with the settings' credentials and, for `rediss://`, the
/// gateway's trust.
fn direct_client(
    url: &str,
    settings: &RedisSettings<'_>,
    egress: &Egress,
) -> Result<redis::Client, String> {
    let key = "idempotency.redis_url";
    let info = url.into_connection_info().map_err(|e| invalid(key, &e))?;
    let tls = matches!(info.addr(), ConnectionAddr::TcpTls { .. });
    let redis = with_credentials(info.redis_settings().clone(), settings);
    let info = info.set_redis_settings(redis);
    let client = if tls {
        redis::Client::build_with_tls(info, certificates(egress))
    } else {
        redis::Client::open(info)
    };
    client.map_err(|e| invalid(key, &e))
}

/// The gateway's trust for Redis's TLS: what `tls.*` trusts, as PEM.
fn certificates(egress: &Egress) -> TlsCertificates {
    TlsCertificates {
        client_tls: None,
        root_cert: Some(egress.roots_pem()),
    }
}

/// The Sentinel client of the settings: sentinels and master both with the settings'
/// credentials and, with `redis_tls`, TLS under the gateway's trust.
fn sentinel_client(
    settings: &RedisSettings<'_>,
    egress: &Egress,
) -> Result<SentinelClient, String> {
    let key = "idempotency.redis_sentinels";
    let Some(master) = settings.master_name else {
        return Err("idempotency.redis_sentinels needs idempotency.redis_master_name".into());
    };
    let scheme = if settings.tls { "rediss" } else { "redis" };
    let addresses = settings
        .sentinels
        .iter()
        .map(|s| {
            let url = if s.contains("://") {
                s.clone()
            } else {
                format!("{scheme}://{s}")
            };
            url.into_connection_info()
                .map(|info| info.addr().clone())
                .map_err(|e| invalid(key, &e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut builder = SentinelClientBuilder::new(addresses, master, SentinelServerType::Master)
        .map_err(|e| invalid(key, &e))?;
    if let Some(user) = settings.username {
        builder = builder.set_client_to_redis_username(user);
    }
    if let Some(password) = settings.password {
        builder = builder.set_client_to_redis_password(password.expose_secret());
    }
    if settings.tls {
        builder = builder
            .set_client_to_redis_tls_mode(TlsMode::Secure)
            .set_client_to_redis_certificates(certificates(egress))
            .set_client_to_sentinel_tls_mode(TlsMode::Secure)
            .set_client_to_sentinel_certificates(certificates(egress));
    }
    builder.build().map_err(|e| invalid(key, &e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::egress::{ProxySettings, TlsSettings};

    /// The configured keys a test sets.
    #[derive(Default)]
    struct Keys {
        url: Option<SecretString>,
        sentinels: Vec<String>,
        master_name: Option<&'static str>,
        tls: bool,
    }

    fn link(change: impl FnOnce(&mut Keys)) -> Result<Option<Arc<Link>>, String> {
        let mut keys = Keys::default();
        change(&mut keys);
        let settings = RedisSettings {
            url: keys.url.as_ref(),
            username: None,
            password: None,
            sentinels: &keys.sentinels,
            master_name: keys.master_name,
            tls: keys.tls,
            connect_timeout: Duration::from_secs(1),
            command_timeout: Duration::from_secs(1),
        };
        let egress = Egress::from_settings(&TlsSettings::default(), &ProxySettings::default())?;
        Link::from_settings(&settings, &egress)
    }

    #[test]
    fn redis_is_configured_one_way_with_clear_errors() {
        assert!(link(|_| {}).unwrap().is_none(), "no Redis: in process");
        assert!(
            link(|s| s.url = Some("rediss://:pw@redis:6380/0".to_owned().into()))
                .unwrap()
                .is_some()
        );
        let e = link(|s| {
            s.url = Some("redis://redis:6379".to_owned().into());
            s.sentinels = vec!["sentinel:26379".into()];
        })
        .unwrap_err();
        assert!(e.contains("not both"), "{e}");
        let e = link(|s| s.sentinels = vec!["sentinel:26379".into()]).unwrap_err();
        assert!(e.contains("redis_master_name"), "{e}");
        assert!(link(|s| {
            s.sentinels = vec!["sentinel:26379".into()];
            s.master_name = Some("gateway");
            s.tls = true;
        })
        .unwrap()
        .is_some());
        let e =
            link(|s| s.url = Some("http://user:Secr3t@redis:6379".to_owned().into())).unwrap_err();
        assert!(
            e.contains("idempotency.redis_url") && !e.contains("Secr3t"),
            "{e}"
        );
    }
}
