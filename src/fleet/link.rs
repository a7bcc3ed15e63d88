//! The one connection to Redis that the replicas share things through, and the policy for
//! writing to it that every promise rests on (records, claims, adoption guards, quotas):
//!
//! - **Only a master is written to.** Every new connection first inspects its server: `ROLE`
//!   (a replica — a demoted master behind an endpoint that moved, a Sentinel master being
//!   reconfigured — is never used), a one-line script (a user that may not run scripts is a
//!   configuration error), and `maxmemory-policy` (a Redis that may evict the gateway's keys is
//!   a configuration error: an evicted record would let a retry create a client again). The
//!   server is inspected again at least every [`RECHECK_EVERY`], and by every readiness probe.
//! - **Durable writes wait for a replica.** A claim, a record or a guard is written with `WAIT`
//!   in the same round trip: when the master has replicas (or `redis_wait_replicas` says so),
//!   a write no replica acknowledged within its time fails, and the connection is made anew.
//!   This is what closes a planned failover's window, during which the old master still takes
//!   writes that its resync will throw away.
//! - **A broken connection is made again**, and the command that could not run (a connection
//!   the server closed while idle, `READONLY` after a failover) is sent again once, within its
//!   time; every command the gateway sends is safe to send twice.
//!
//! `redis://` or `rediss://` (TLS with the gateway's trust, `tls.*`), an ACL user and a password
//! from a secret file, or a Sentinel set-up whose master is asked of the sentinels whenever a
//! connection is made. Every command is bounded (`idempotency.redis_command_timeout_ms`,
//! connecting included).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
    Cmd, ConnectionAddr, FromRedisValue, IntoConnectionInfo, ServerErrorKind, TlsCertificates,
    TlsMode,
};
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
    /// Replicas a durable write waits for; absent: one when the master has replicas.
    pub wait_replicas: Option<u32>,
}

/// Redis could not be used, and why, in words (never a URL or a password).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct LinkError {
    pub message: String,
    /// A configuration error (the server is not one the gateway can keep its promises on, or
    /// refuses its commands), not an outage: it lasts until someone changes the configuration.
    pub misconfigured: bool,
}

impl LinkError {
    fn unreachable(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            misconfigured: false,
        }
    }

    fn misconfigured(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            misconfigured: true,
        }
    }
}

/// The server is inspected again at least this often (a policy changed with `CONFIG SET`, a
/// master demoted without the connection noticing).
pub const RECHECK_EVERY: Duration = Duration::from_secs(10);

/// What the inspection of a server found.
#[derive(Debug, Clone)]
pub struct ServerFacts {
    /// Replicas a durable write waits for.
    pub wait_for: u32,
    /// Its `maxmemory-policy`, when the user may read it.
    pub policy: Option<String>,
    /// Whether its role could be read (`ROLE` may be refused to a restricted user; a replica
    /// then still refuses every write with `READONLY`).
    pub role_known: bool,
}

impl ServerFacts {
    /// In words, for `check-config` and the start's log.
    pub fn describe(&self) -> String {
        let role = if self.role_known {
            "a master"
        } else {
            "a server whose role the user may not read"
        };
        let policy = self.policy.as_deref().map_or_else(
            || "maxmemory-policy unknown (INFO not allowed)".to_owned(),
            |p| format!("maxmemory-policy {p}"),
        );
        format!(
            "{role}, {policy}, durable writes acknowledged by {} replica(s)",
            self.wait_for
        )
    }
}

/// Where the connection comes from.
enum Source {
    /// One Redis (a URL; a managed service's endpoint, which moves to the promoted replica in
    /// a failover): each new connection resolves it again.
    Direct(Box<redis::Client>),
    /// The master of a Sentinel set-up: asked of the sentinels for each new connection.
    Sentinel(Box<tokio::sync::Mutex<SentinelClient>>),
}

/// A shared, lazily connected, bounded link to Redis.
pub struct Link {
    source: Source,
    /// The current connection and what its server is, made on first use.
    current: Mutex<Option<Current>>,
    /// One connection is made at a time.
    connecting: tokio::sync::Mutex<()>,
    config: ConnectionManagerConfig,
    command_timeout: Duration,
    wait_replicas: Option<u32>,
    /// When the current server was last inspected (ms since `epoch`).
    inspected_ms: AtomicU64,
    /// When Redis last answered a command (ms since `epoch`).
    answered_ms: AtomicU64,
    /// A master of this link was seen with replicas: durable writes wait for one from then on
    /// (a master whose replica was just promoted away has none, and must not be written to
    /// unacknowledged).
    seen_replicas: std::sync::atomic::AtomicBool,
    epoch: Instant,
}

#[derive(Clone)]
struct Current {
    connection: ConnectionManager,
    facts: ServerFacts,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("redis::Link")
    }
}

/// A URL's error, without echoing the URL (it may hold a password).
fn invalid(key: &str, e: &redis::RedisError) -> String {
    format!("{key} is not a usable Redis address ({:?})", e.kind())
}

/// Whether a failed command can be sent again on a new connection: it cannot have run (the
/// connection was closed or refused it unprocessed: `READONLY`, `MASTERDOWN`, `LOADING`).
fn worth_reconnecting(e: &redis::RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || matches!(
            e.kind(),
            redis::ErrorKind::Server(
                ServerErrorKind::ReadOnly
                    | ServerErrorKind::MasterDown
                    | ServerErrorKind::BusyLoading
            )
        )
}

/// A server's refusal that lasts until the configuration changes.
fn refused_for_good(e: &redis::RedisError) -> bool {
    matches!(
        e.kind(),
        redis::ErrorKind::Server(ServerErrorKind::NoPerm) | redis::ErrorKind::AuthenticationFailed
    ) || e.code() == Some("WRONGPASS")
}

fn failed(e: &redis::RedisError) -> LinkError {
    if refused_for_good(e) {
        LinkError::misconfigured(format!(
            "Redis refuses the gateway's commands ({}): grant its user the commands it needs (see the Redis page of the documentation)",
            e.code().unwrap_or("refused")
        ))
    } else {
        LinkError::unreachable(e.to_string())
    }
}

/// How a command is sent.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Write {
    /// As is.
    Plain,
    /// With `WAIT` for the server's replicas, in the same round trip.
    Durable,
}

impl Link {
    /// The link the settings ask for, if any: `redis_url`, or `redis_sentinels` with
    /// `redis_master_name`. Connects lazily: a Redis that is down at start makes the gateway not
    /// ready, not dead.
    pub fn from_settings(
        settings: &RedisSettings<'_>,
        egress: &Egress,
    ) -> Result<Option<Arc<Self>>, String> {
        // No response timeout of the connection's own: every command is bounded here, and a
        // slow answer must not make the connection anew (what was sent on it, such as a claim
        // and the release right behind it, runs in order).
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(settings.connect_timeout))
            .set_response_timeout(None)
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
            current: Mutex::new(None),
            connecting: tokio::sync::Mutex::new(()),
            config,
            command_timeout: settings.command_timeout,
            wait_replicas: settings.wait_replicas,
            inspected_ms: AtomicU64::new(0),
            answered_ms: AtomicU64::new(0),
            seen_replicas: std::sync::atomic::AtomicBool::new(false),
            epoch: Instant::now(),
        })))
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Sends `command` (within the command timeout, connecting included; once more on a new
    /// connection if it cannot have run).
    pub async fn query<T: FromRedisValue>(&self, command: &Cmd) -> Result<T, LinkError> {
        self.bounded(command, Write::Plain).await
    }

    /// Sends a write a promise rests on (a claim, a record, a guard): [`Link::query`], and the
    /// write must be acknowledged by the server's replicas (`WAIT`, in the same round trip)
    /// before it counts.
    pub async fn durable<T: FromRedisValue>(&self, command: &Cmd) -> Result<T, LinkError> {
        self.bounded(command, Write::Durable).await
    }

    async fn bounded<T: FromRedisValue>(
        &self,
        command: &Cmd,
        write: Write,
    ) -> Result<T, LinkError> {
        let within = self.command_timeout;
        let outcome = tokio::time::timeout(within, self.twice(command, write)).await;
        match outcome {
            Ok(Ok(reply)) => {
                self.answered_ms.store(self.now_ms(), Ordering::Relaxed);
                Ok(reply)
            }
            Ok(Err(e)) => Err(e),
            Err(_) => {
                // A slow answer is not a broken connection (what was sent on it still runs: a
                // claim given up right after lands behind the claim); one that has answered
                // nothing for two timeouts is, and is made anew (a master gone silent).
                let silent = self
                    .now_ms()
                    .saturating_sub(self.answered_ms.load(Ordering::Relaxed));
                if silent >= 2 * u64::try_from(within.as_millis()).unwrap_or(u64::MAX) {
                    self.forget();
                }
                Err(LinkError::unreachable(format!(
                    "Redis did not answer within {} ms",
                    within.as_millis()
                )))
            }
        }
    }

    /// The command, sent again once on a new connection if the first could not run.
    async fn twice<T: FromRedisValue>(&self, command: &Cmd, write: Write) -> Result<T, LinkError> {
        match self.once(command, write).await {
            Err(Attempt::Again(first)) => match self.once(command, write).await {
                Ok(reply) => Ok(reply),
                Err(Attempt::Again(_)) => Err(first),
                Err(Attempt::Failed(e)) => Err(e),
            },
            Err(Attempt::Failed(e)) => Err(e),
            Ok(reply) => Ok(reply),
        }
    }

    async fn once<T: FromRedisValue>(&self, command: &Cmd, write: Write) -> Result<T, Attempt> {
        let current = self.connection().await.map_err(|e| match e.misconfigured {
            true => Attempt::Failed(e),
            false => Attempt::Again(e),
        })?;
        let wait_for = match write {
            Write::Durable => current.facts.wait_for,
            Write::Plain => 0,
        };
        let mut connection = current.connection;
        let sent = if wait_for == 0 {
            command.query_async::<redis::Value>(&mut connection).await
        } else {
            self.with_wait(command, wait_for, &mut connection).await
        };
        match sent {
            Ok(reply) => T::from_redis_value(reply).map_err(|e| Attempt::Failed(failed(&e.into()))),
            Err(e) if worth_reconnecting(&e) => {
                self.forget();
                Err(Attempt::Again(LinkError::unreachable(e.to_string())))
            }
            Err(e)
                if e.kind() == redis::ErrorKind::Client && e.detail() == Some(NOT_ACKNOWLEDGED) =>
            {
                // Not known to survive a failover: made again on a new connection (the
                // sentinels may name another master by now).
                self.forget();
                Err(Attempt::Again(LinkError::unreachable(format!(
                    "a write was not acknowledged by {wait_for} replica(s) within {} ms (a failover under way, or replicas down)",
                    self.wait_timeout().as_millis()
                ))))
            }
            Err(e) => Err(Attempt::Failed(failed(&e))),
        }
    }

    /// How long a durable write waits for its replicas: a third of the command's time, so that
    /// a second attempt fits.
    fn wait_timeout(&self) -> Duration {
        (self.command_timeout / 3).max(Duration::from_millis(10))
    }

    /// `command`, then `WAIT` for `replicas`, in one round trip on one connection; the
    /// command's reply, or an error when too few replicas acknowledged.
    async fn with_wait(
        &self,
        command: &Cmd,
        replicas: u32,
        connection: &mut ConnectionManager,
    ) -> redis::RedisResult<redis::Value> {
        let mut pipe = redis::pipe();
        pipe.add_command(command.clone())
            .cmd("WAIT")
            .arg(replicas)
            .arg(u64::try_from(self.wait_timeout().as_millis()).unwrap_or(u64::MAX));
        let (reply, acknowledged): (redis::Value, u32) = pipe.query_async(connection).await?;
        if acknowledged < replicas {
            return Err(redis::RedisError::from((
                redis::ErrorKind::Client,
                "write not acknowledged",
                NOT_ACKNOWLEDGED.to_owned(),
            )));
        }
        Ok(reply)
    }

    /// Forgets the connection: the next command makes a new one (Sentinel: to the master the
    /// sentinels name then; a URL: resolved again).
    fn forget(&self) {
        *self.current.lock() = None;
    }

    /// The connection to use now, made and its server inspected if there is none; the server
    /// inspected again when its last inspection is older than [`RECHECK_EVERY`].
    async fn connection(&self) -> Result<Current, LinkError> {
        let existing = self.current.lock().clone();
        if let Some(current) = existing {
            return self.rechecked(current).await;
        }
        let _one_at_a_time = self.connecting.lock().await;
        let made_meanwhile = self.current.lock().clone();
        if let Some(current) = made_meanwhile {
            return Ok(current);
        }
        let client = self.client().await?;
        let connection = ConnectionManager::new_with_config(client, self.config.clone())
            .await
            .map_err(|e| failed(&e))?;
        let facts = self.inspect(&connection).await?;
        let current = Current { connection, facts };
        self.inspected_ms.store(self.now_ms(), Ordering::Relaxed);
        *self.current.lock() = Some(current.clone());
        Ok(current)
    }

    /// `current`, its server inspected again if that is due (by one caller at a time).
    async fn rechecked(&self, current: Current) -> Result<Current, LinkError> {
        let last = self.inspected_ms.load(Ordering::Relaxed);
        let now = self.now_ms();
        let due = now.saturating_sub(last) >= RECHECK_EVERY.as_millis() as u64;
        if !due
            || self
                .inspected_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return Ok(current);
        }
        match self.inspect(&current.connection).await {
            Ok(facts) => {
                let current = Current { facts, ..current };
                *self.current.lock() = Some(current.clone());
                Ok(current)
            }
            Err(e) => {
                self.forget();
                Err(e)
            }
        }
    }

    /// A client of the server to connect to now.
    async fn client(&self) -> Result<redis::Client, LinkError> {
        match &self.source {
            Source::Direct(client) => Ok((**client).clone()),
            Source::Sentinel(sentinel) => {
                sentinel.lock().await.async_get_client().await.map_err(|e| {
                    LinkError::unreachable(format!("no Redis master from the sentinels: {e}"))
                })
            }
        }
    }

    /// What the server is: a master (never a replica), one that runs the gateway's scripts,
    /// one that never evicts its keys; and how many replicas a durable write waits for.
    async fn inspect(&self, connection: &ConnectionManager) -> Result<ServerFacts, LinkError> {
        let mut c = connection.clone();
        let role: redis::RedisResult<redis::Value> = redis::cmd("ROLE").query_async(&mut c).await;
        let (role_known, replicas) = match role {
            Ok(role) => match read_role(&role) {
                Some(Role::Master { replicas }) => (true, Some(replicas)),
                Some(Role::Replica) => {
                    return Err(LinkError::unreachable(
                        "the Redis server is a replica (read-only): its master moved (a failover); connecting again",
                    ))
                }
                None => (false, None),
            },
            Err(e) if refused_for_good(&e) => (false, None),
            Err(e) => return Err(failed(&e)),
        };
        let script: redis::RedisResult<i64> = redis::cmd("EVAL")
            .arg("return 1")
            .arg(0)
            .query_async(&mut c)
            .await;
        if let Err(e) = script {
            return Err(match refused_for_good(&e) {
                true => LinkError::misconfigured(
                    "the Redis user may not run scripts (NOPERM on EVAL): the gateway's claims, guards and quotas are scripts; grant it +@scripting",
                ),
                false => failed(&e),
            });
        }
        let policy = read_policy(&mut c).await?;
        if let Some(policy) = policy.as_deref().filter(|p| *p != "noeviction") {
            return Err(evicting(policy));
        }
        // A Sentinel set-up has replicas by design; a URL's master once seen with replicas is
        // expected to keep one.
        if replicas.is_some_and(|r| r > 0) || matches!(self.source, Source::Sentinel(_)) {
            self.seen_replicas.store(true, Ordering::Relaxed);
        }
        let wait_for = self
            .wait_replicas
            .unwrap_or_else(|| u32::from(self.seen_replicas.load(Ordering::Relaxed)));
        Ok(ServerFacts {
            wait_for,
            policy,
            role_known,
        })
    }

    /// Whether Redis can be used now (readiness): it answers, and its server (inspected anew)
    /// is one the gateway can keep its promises on.
    pub async fn readiness(&self) -> Result<ServerFacts, LinkError> {
        let checked = tokio::time::timeout(self.command_timeout, async {
            let current = self.connection().await?;
            match self.inspect(&current.connection).await {
                Ok(facts) => {
                    self.inspected_ms.store(self.now_ms(), Ordering::Relaxed);
                    Ok(facts)
                }
                Err(e) => {
                    self.forget();
                    Err(e)
                }
            }
        })
        .await
        .unwrap_or_else(|_| {
            Err(LinkError::unreachable(format!(
                "Redis did not answer within {} ms",
                self.command_timeout.as_millis()
            )))
        });
        crate::metrics::redis_usable(checked.is_ok());
        checked
    }
}

/// The start of every script whose write a promise rests on (a claim, a guard): when Redis may
/// evict keys (`maxmemory-policy` other than `noeviction`), it stops there and answers
/// `{'evicting', policy}`, so that a record evicted since cannot be read as never written. A user
/// that may not run `INFO` skips the check (the link's inspection says so).
pub const REFUSE_IF_EVICTING: &str = r"
local memory = redis.pcall('INFO', 'memory')
if type(memory) == 'string' then
  local policy = string.match(memory, 'maxmemory_policy:([%w%-]+)')
  if policy and policy ~= 'noeviction' then return {'evicting', policy} end
end
";

/// What a script guarded by [`REFUSE_IF_EVICTING`] answered, in words, when it refused.
pub fn evicting(policy: &str) -> LinkError {
    LinkError::misconfigured(format!(
        "Redis may evict the gateway's keys (maxmemory-policy {policy}): an evicted record would let a retry create a client again; set maxmemory-policy noeviction, or give the gateway a Redis of its own"
    ))
}

/// `EVAL script 1 key` (arguments to add): the script sent whole every time, so that no
/// `NOSCRIPT` (a failover to a replica that never saw it, `SCRIPT FLUSH`) can stand between a
/// request and its claim.
pub fn eval(script: &str, key: &str) -> Cmd {
    let mut command = redis::cmd("EVAL");
    command.arg(script).arg(1).arg(key);
    command
}

/// `EVAL script N keys...`: [`eval`] for a script that touches several keys (one Redis, not a
/// cluster: every gateway key may be touched by one script).
pub fn eval_keys(script: &str, keys: &[&str]) -> Cmd {
    let mut command = redis::cmd("EVAL");
    command.arg(script).arg(keys.len()).arg(keys);
    command
}

/// The detail of a write no replica acknowledged in time.
const NOT_ACKNOWLEDGED: &str = "not acknowledged by the replicas";

/// How one attempt failed.
enum Attempt {
    /// It cannot have run: worth one more attempt on a new connection.
    Again(LinkError),
    Failed(LinkError),
}

/// A server's role, from `ROLE`.
enum Role {
    Master { replicas: u32 },
    Replica,
}

fn read_role(reply: &redis::Value) -> Option<Role> {
    let redis::Value::Array(items) = reply else {
        return None;
    };
    let name = match items.first()? {
        redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        redis::Value::SimpleString(s) => s.clone(),
        _ => return None,
    };
    match name.as_str() {
        "master" => {
            let replicas = match items.get(2) {
                Some(redis::Value::Array(r)) => u32::try_from(r.len()).unwrap_or(u32::MAX),
                _ => 0,
            };
            Some(Role::Master { replicas })
        }
        "slave" | "replica" => Some(Role::Replica),
        _ => None,
    }
}

/// The server's `maxmemory-policy` (`INFO memory`), `None` when the user may not read it.
async fn read_policy(c: &mut ConnectionManager) -> Result<Option<String>, LinkError> {
    let info: redis::RedisResult<String> = redis::cmd("INFO").arg("memory").query_async(c).await;
    match info {
        Ok(info) => Ok(info
            .lines()
            .find_map(|l| l.strip_prefix("maxmemory_policy:"))
            .map(|p| p.trim().to_owned())),
        Err(e) if refused_for_good(&e) => Ok(None),
        Err(e) => Err(failed(&e)),
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
            wait_replicas: None,
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
