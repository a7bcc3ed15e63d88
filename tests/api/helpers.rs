//! The test harness: the real gateway on a free port, one wiremock server per provider, a real
//! JWT minted from the test configuration, and the one table of the providers as the tests see
//! them ([`fixture`]): each one's mock paths, documented success and minimal options. A test that
//! loops over the providers loops over [`fixtures`].

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use clients_gateway::auth;
use clients_gateway::catalog::ProviderId;
use clients_gateway::config::Settings;
use clients_gateway::providers::ProvidersSettings;
use clients_gateway::startup::Application;
use secrecy::SecretString;
use serde_json::{json, Value};
use url::Url;
use wiremock::matchers::{any, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

pub const LUCCA_KEY: &str = "test-lucca-key";
pub const CLOCKIFY_KEY: &str = "test-clockify-key";
/// The key that seals what operations keep at rest, in the tests (32 bytes, base64).
pub const OPERATIONS_KEY: &str = "dGVzdC1vcGVyYXRpb25zLWtleS0zMi1ieXRlcyEhISE=";
pub const PLUSVIBE_KEY: &str = "test-plusvibe-key";
pub const CHATDASH_KEY: &str = "test-chatdash-key";
pub const MISSIONX_CLIENT_ID: &str = "test-missionx-client";
pub const MISSIONX_SECRET: &str = "test-missionx-secret";
pub const MISSIONX_ORG: &str = "test-org";
pub const MISSIONX_TOKEN: &str = "test-missionx-access-token";
pub const JWT_SECRET: &str = "test-hs256-secret-of-at-least-32-bytes!";

pub const CLOCKIFY_WORKSPACE: &str = "64a687e29ae1f428e7ebe303";
pub const PLUSVIBE_WORKSPACE: &str = "65f99a0dd96fae8ab61130c0";
pub const PLUSVIBE_PASSWORD: &str = "test-plusvibe-generated-password";
pub const DEPARTMENT: &str = "6650c0ffee0000000000abcd";

/// One provider as the tests see it.
pub struct Fixture {
    pub id: ProviderId,
    /// Its name in `targets` and `results`.
    pub name: &'static str,
    /// Where its base URL is on its mock server.
    pub base_path: &'static str,
    /// Its create endpoint on its mock (with the test defaults).
    pub create_path: &'static str,
    /// Its documented success: status and body.
    pub created_status: u16,
    pub created_body: fn() -> Value,
    /// The id the gateway reads from `created_body` (`None`: the provider assigns none).
    pub created_id: Option<&'static str>,
    /// A password the provider generates and answers in `created_body`.
    pub generated_password: Option<&'static str>,
    /// The smallest options that plan with the test defaults and [`minimal_client`].
    pub minimal_options: fn() -> Value,
    /// The test secret of its configuration, and the key that holds it.
    pub secret: (&'static str, &'static str),
    /// Its configuration besides the secret, in TOML, for a provider at `uri`.
    pub toml: fn(uri: &str) -> String,
    /// Points it at `base_url` with the test credentials and defaults.
    pub configure: fn(&mut ProvidersSettings, Url),
    /// Gives it credentials its sandbox refuses.
    pub break_credentials: fn(&mut ProvidersSettings),
    /// What its mock must answer besides the create (e.g. a token endpoint).
    pub support: fn() -> Vec<Mock>,
    /// Secrets its `support` hands out (tokens): never to be shown either.
    pub issued: &'static [&'static str],
    /// Its lookup of [`full_body`]'s client on its mock: the list (and details) answering that
    /// the client is there, or not.
    pub lookup: fn(found: bool) -> Vec<Mock>,
    /// The id its lookup finds.
    pub found_id: &'static str,
    /// Its answer to a create of a client it already has, if it refuses duplicates.
    pub duplicate: Option<fn() -> ResponseTemplate>,
    /// The error kind its sandbox answers to wrong credentials.
    pub wrong_credentials: &'static str,
    /// Whether it creates a client from a name alone, with `{}` options.
    pub name_alone: bool,
}

impl Fixture {
    /// Its documented success.
    pub fn created(&self) -> ResponseTemplate {
        ResponseTemplate::new(self.created_status).set_body_json((self.created_body)())
    }

    /// A request for this provider alone, with its minimal options.
    pub fn minimal_request(&self) -> Value {
        one_target(self.name, (self.minimal_options)())
    }

    /// [`full_body`] for this provider alone: a client its lookup can find (`lookup`).
    pub fn findable_request(&self) -> Value {
        let mut body = full_body();
        let options = body["targets"][self.name].take();
        body["targets"] = json!({ self.name: options });
        body
    }

    /// Mounts its lookup on `mocks`, answering that the client is not there (what proves a 5xx
    /// created nothing).
    pub async fn mount_not_found(&self, mocks: &Mocks) {
        for mock in (self.lookup)(false) {
            mock.mount(mocks.of(self.id)).await;
        }
    }
}

/// No support mock (most providers need none).
pub fn no_support() -> Vec<Mock> {
    Vec::new()
}

/// `GET path` answering `body` (JSON).
pub fn listing(at: &str, body: Value) -> Mock {
    Mock::given(method("GET"))
        .and(path(at))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
}

pub use crate::{fixture, Mocks};

/// Every provider's fixture, in the order results are listed.
pub fn fixtures() -> Vec<Fixture> {
    ProviderId::ALL.iter().map(|id| fixture(*id)).collect()
}

/// The missionX token endpoint answering the test token.
pub fn missionx_token() -> Mock {
    Mock::given(method("POST"))
        .and(path("/v2/auth/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": MISSIONX_TOKEN, "token_type": "Bearer", "expires_in": 14400
        })))
}

impl Mocks {
    pub fn all(&self) -> Vec<&MockServer> {
        ProviderId::ALL.iter().map(|id| self.of(*id)).collect()
    }

    /// Mounts what every provider needs answered besides its create (token endpoints).
    pub async fn mount_support(&self) {
        for f in fixtures() {
            for mock in (f.support)() {
                mock.mount(self.of(f.id)).await;
            }
        }
    }

    /// Every provider must receive nothing (checked when the mocks are dropped).
    pub async fn expect_no_calls(&self) {
        for server in self.all() {
            Mock::given(any())
                .respond_with(ResponseTemplate::new(500))
                .expect(0)
                .named("no provider may be called")
                .mount(server)
                .await;
        }
    }
}

pub struct TestApp {
    pub address: String,
    pub mocks: Mocks,
    pub token: String,
    pub http: reqwest::Client,
}

/// The URL of a provider's mock (its base path included).
pub fn mock_url(mocks: &Mocks, f: &Fixture) -> Url {
    Url::parse(&format!("{}{}", mocks.of(f.id).uri(), f.base_path)).unwrap()
}

/// Settings pointing every provider at its mock, with test credentials and defaults.
pub fn test_settings(mocks: &Mocks) -> Settings {
    let mut s = Settings::default();
    s.server.bind = "127.0.0.1:0".into();
    s.server.workers = Some(1);
    s.auth.hs256_secret = Some(SecretString::from(JWT_SECRET));
    s.operations.encryption_key = Some(SecretString::from(OPERATIONS_KEY));
    for f in fixtures() {
        (f.configure)(&mut s.providers, mock_url(mocks, &f));
    }
    s
}

/// Points one provider at `base` (a server root) instead of its mock.
pub fn point(settings: &mut Settings, f: &Fixture, base: &str) {
    let url = Url::parse(&format!("{base}{}", f.base_path)).unwrap();
    settings.providers.update_common(f.id, |c| c.base_url = url);
}

/// Sets every provider's timeout.
pub fn set_timeouts(settings: &mut Settings, timeout_ms: u64) {
    for id in ProviderId::ALL {
        settings
            .providers
            .update_common(*id, |c| c.timeout_ms = timeout_ms);
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts the gateway with the test settings, changed by `change`.
pub async fn spawn_app_with(change: impl FnOnce(&mut Settings)) -> TestApp {
    init_logs();
    let mocks = Mocks::start().await;
    let mut settings = test_settings(&mocks);
    change(&mut settings);
    let app = Application::build(&settings).expect("the application builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    let token = auth::mint(
        &SecretString::from(JWT_SECRET),
        &settings.auth,
        "test-caller",
        "clients:write",
        Duration::from_secs(600),
    )
    .unwrap();
    TestApp {
        address,
        mocks,
        token,
        http: reqwest::Client::new(),
    }
}

impl TestApp {
    /// `POST /clients` with the test token.
    pub async fn post_clients(&self, body: &Value) -> reqwest::Response {
        self.post_clients_query(body, "").await
    }

    pub async fn post_clients_query(&self, body: &Value, query: &str) -> reqwest::Response {
        self.http
            .post(format!("{}/clients{query}", self.address))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .expect("the gateway answers")
    }

    /// `POST /clients`, asserting a 207, returning the body.
    pub async fn create(&self, body: &Value) -> Value {
        let response = self.post_clients(body).await;
        assert_207(response).await
    }
}

pub async fn assert_207(response: reqwest::Response) -> Value {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    assert_eq!(status, 207, "expected 207, got {status}: {text}");
    serde_json::from_str(&text).unwrap()
}

/// Asserts a problem answer with `status`, returning its body.
pub async fn assert_problem(response: reqwest::Response, status: u16) -> Value {
    let got = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = response.text().await.unwrap();
    assert_eq!(got, status, "expected {status}, got {got}: {text}");
    assert_eq!(content_type.as_deref(), Some("application/problem+json"));
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["status"], status);
    assert!(body["type"]
        .as_str()
        .unwrap()
        .starts_with("urn:clients-gateway:problem:"));
    assert!(!body["request_id"].as_str().unwrap().is_empty());
    body
}

/// The pointers of a 422 problem, in order.
pub fn pointers(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .expect("a 422 lists its errors")
        .iter()
        .map(|e| e["pointer"].as_str().unwrap().to_owned())
        .collect()
}

/// The smallest request that every provider accepts with the test defaults.
pub fn minimal_client() -> Value {
    json!({
        "name": "Nova Consulting Ltd",
        "contact": { "first_name": "Nova", "last_name": "Smith", "email": "nova.smith@nova.example" }
    })
}

/// DESIGN's full example request, every target.
pub fn full_body() -> Value {
    clients_gateway::routes::clients::examples::all_targets_body()
}

/// A request for one target with the given options.
pub fn one_target(provider: &str, options: Value) -> Value {
    json!({ "client": minimal_client(), "targets": { provider: options } })
}

/// Mounts the missionX token endpoint answering the test token.
pub async fn mount_missionx_token(server: &MockServer) {
    missionx_token().mount(server).await;
}

/// Each provider answers its documented success (after `delay`), `times` times exactly
/// (checked when the mocks drop); the support endpoints are mounted too.
pub async fn each_creates(mocks: &Mocks, delay: Duration, times: u64) {
    for f in fixtures() {
        Mock::given(method("POST"))
            .and(path(f.create_path))
            .respond_with(f.created().set_delay(delay))
            .expect(times)
            .named(format!("{} creates", f.name))
            .mount(mocks.of(f.id))
            .await;
    }
    mocks.mount_support().await;
}

/// The one create (`POST`) a mock received on `path` (lookups are `GET`s).
pub async fn only_request(server: &MockServer, path: &str) -> Request {
    let mut requests: Vec<Request> = server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.url.path() == path && r.method.as_str() == "POST")
        .collect();
    assert_eq!(requests.len(), 1, "expected one POST to {path}");
    requests.remove(0)
}

/// Exactly one of the auth headers the providers use is present, and it is `expected`.
pub fn assert_auth_header(request: &Request, expected: (&str, &str)) {
    for name in ["authorization", "x-api-key"] {
        let got = request.headers.get(name).map(|v| v.to_str().unwrap());
        if name == expected.0 {
            assert_eq!(got, Some(expected.1), "header {name}");
        } else {
            assert_eq!(got, None, "no {name} header may be sent");
        }
    }
    assert_eq!(
        request.headers.get("content-type").unwrap(),
        "application/json"
    );
    assert_eq!(request.method.as_str(), "POST");
}

static LOGS: OnceLock<()> = OnceLock::new();

/// Logs to the test output when `TEST_LOG` is set.
fn init_logs() {
    LOGS.get_or_init(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            let _ = tracing_subscriber::fmt().with_env_filter("info").try_init();
        }
    });
}

/// A server that accepts connections, reads the request, then closes without answering
/// (a connection reset after the request was sent). Counts the connections it saw.
pub async fn hang_up_server() -> (String, Arc<Mutex<usize>>) {
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(0));
    let counter = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            *counter.lock().unwrap() += 1;
            let mut buf = [0u8; 4096];
            let _ = socket.read(&mut buf).await;
            drop(socket);
        }
    });
    (address, seen)
}

/// A loopback port nothing listens on (at the time of the call), never handed out before in
/// this run: a server slow to start (Prism, a gateway) cannot find its port taken by another
/// test's (a Redis) that was given the same one meanwhile.
pub fn free_port() -> u16 {
    static GIVEN: Mutex<std::collections::BTreeSet<u16>> =
        Mutex::new(std::collections::BTreeSet::new());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if GIVEN.lock().unwrap().insert(port) {
            return port;
        }
    }
}

/// An address where nothing listens (connection refused).
pub fn closed_address() -> String {
    format!("http://127.0.0.1:{}", free_port())
}

/// Waits until something accepts connections on loopback `port`; `false` after `within`.
pub async fn listens_within(port: u16, within: Duration) -> bool {
    let started = std::time::Instant::now();
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        if started.elapsed() > within {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    true
}

/// Starts another gateway with `settings` (e.g. a second replica on the same mocks).
pub async fn spawn_gateway(settings: &Settings) -> String {
    let app = Application::build(settings).expect("the application builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    address
}

/// A token for another caller (`sub`), from the test key.
pub fn token_for(sub: &str) -> String {
    auth::mint(
        &SecretString::from(JWT_SECRET),
        &Default::default(),
        sub,
        "clients:write",
        Duration::from_secs(600),
    )
    .unwrap()
}

/// The environment variable that marks every process the tests start, with the test run's
/// mark: `.ci/test` sets it and fails when a process carrying it outlives the run.
pub const TEST_RUN: &str = "CLIENTS_GATEWAY_TEST_RUN";

/// A process a test started, in a process group of its own: dropping it (or a failing test
/// unwinding) kills the whole group, so that nothing it started outlives the test — `faketime`
/// runs the gateway in a child of its own, which killing the wrapper alone would leave running.
pub struct Spawned {
    child: std::process::Child,
}

impl Spawned {
    /// Starts `command` in a new process group, marked as started by this test run.
    pub fn start(command: &mut std::process::Command) -> std::io::Result<Self> {
        use std::os::unix::process::CommandExt;
        let mark = std::env::var(TEST_RUN).unwrap_or_else(|_| "cargo-test".to_owned());
        let child = command.process_group(0).env(TEST_RUN, mark).spawn()?;
        Ok(Self { child })
    }

    /// Sends `signal` (`TERM`, `KILL`, `HUP`...) to the process alone.
    pub fn signal(&self, signal: &str) {
        let sent = std::process::Command::new("kill")
            .args([format!("-{signal}"), self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "kill -{signal} {}", self.child.id());
    }
}

impl std::ops::Deref for Spawned {
    type Target = std::process::Child;

    fn deref(&self) -> &Self::Target {
        &self.child
    }
}

impl std::ops::DerefMut for Spawned {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.child
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        // The group's id is the leader's pid; the leader may have exited, its children not.
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(std::process::Stdio::null())
            .status();
        let _ = self.child.wait();
    }
}

/// A real Redis server on a free port, stopped when dropped. Needs `redis-server` on the PATH
/// (`bash .ci/install-tools` installs Debian's).
pub struct RedisServer {
    _child: Spawned,
    pub url: String,
    /// Its own directory: what it writes (a replica's full sync) is no other server's start.
    _dir: Option<tempfile::TempDir>,
}

impl RedisServer {
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// Starts it with extra `redis-server` arguments (e.g. `--requirepass`).
    pub async fn start_with(extra: &[&str]) -> Self {
        Self::on(free_port(), &["--appendonly", "no"], extra).await
    }

    /// One that writes every change to its append-only file in `dir`, on `port` (so that it can
    /// be killed and started again there, its data kept).
    pub async fn durable(port: u16, dir: &std::path::Path) -> Self {
        let dir = dir.to_str().unwrap();
        let aof = [
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--dir",
            dir,
        ];
        Self::on(port, &aof, &[]).await
    }

    async fn on(port: u16, persistence: &[&str], extra: &[&str]) -> Self {
        // A directory of its own (where a replica's full sync writes its snapshot, which a
        // Redis started later in the same directory would load), unless it persists in one.
        let own = (!persistence.contains(&"--dir")).then(|| tempfile::tempdir().unwrap());
        let mut command = std::process::Command::new("redis-server");
        if let Some(dir) = &own {
            command.current_dir(dir.path()).arg("--dir").arg(dir.path());
        }
        let child = Spawned::start(
            command
                .args([
                    "--port",
                    &port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                ])
                .args(persistence)
                .args(extra)
                .stdout(std::process::Stdio::null()),
        )
        .expect("redis-server is needed for the Redis tests: run `bash .ci/install-tools`");
        assert!(
            listens_within(port, Duration::from_secs(10)).await,
            "redis-server did not start"
        );
        Self {
            _child: child,
            _dir: own,
            url: format!("redis://127.0.0.1:{port}/0"),
        }
    }
}

impl RedisServer {
    /// Its port.
    pub fn port(&self) -> u16 {
        self.url
            .trim_start_matches("redis://127.0.0.1:")
            .trim_end_matches("/0")
            .parse()
            .expect("a test Redis URL")
    }

    /// A replica of `master` (its only one), in sync when this returns.
    pub async fn replica_of(master: &RedisServer) -> Self {
        Self::replica_of_with(master, 1).await
    }

    /// A replica of `master`, which then has `replicas` in sync when this returns.
    pub async fn replica_of_with(master: &RedisServer, replicas: usize) -> Self {
        let port = master.port().to_string();
        let replica = Self::start_with(&["--replicaof", "127.0.0.1", &port]).await;
        for _ in 0..100 {
            if replicas_in_sync(&master.url).await == replicas {
                return replica;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the replica did not sync");
    }

    /// A connection to it, for a test to look inside.
    pub async fn connection(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url.as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .expect("the test's Redis answers")
    }

    /// Runs a command on it (`CONFIG SET ...`, `ROLE`...), its reply.
    pub async fn run<T: redis::FromRedisValue>(&self, args: &[&str]) -> T {
        let mut command = redis::cmd(args[0]);
        for arg in &args[1..] {
            command.arg(*arg);
        }
        command
            .query_async(&mut self.connection().await)
            .await
            .unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }
}

/// The replicas in sync (`state=online`) in `INFO replication` of the Redis at `url`.
pub async fn replicas_in_sync(url: &str) -> usize {
    let Ok(client) = redis::Client::open(url) else {
        return 0;
    };
    let Ok(mut c) = client.get_multiplexed_async_connection().await else {
        return 0;
    };
    let info: String = redis::cmd("INFO")
        .arg("replication")
        .query_async(&mut c)
        .await
        .unwrap_or_default();
    info.matches("state=online").count()
}

/// A sentinel watching the master on `master_port` (quorum 1, down after 500 ms); its port.
pub async fn sentinel(dir: &std::path::Path, master_port: &str) -> (Spawned, u16) {
    let port = free_port();
    let conf = dir.join("sentinel.conf");
    std::fs::write(
        &conf,
        format!(
            "port {port}\nbind 127.0.0.1\nsentinel monitor gateway 127.0.0.1 {master_port} 1\n\
             sentinel down-after-milliseconds gateway 500\nsentinel failover-timeout gateway 5000\n"
        ),
    )
    .unwrap();
    let child = Spawned::start(
        std::process::Command::new("redis-sentinel")
            .current_dir(dir)
            .arg(&conf)
            .stdout(std::process::Stdio::null()),
    )
    .expect("redis-sentinel is needed: run `bash .ci/install-tools`");
    assert!(listens_within(port, Duration::from_secs(10)).await);
    (child, port)
}

/// A TCP proxy in front of a server, as a load balancer or a managed service's endpoint is:
/// new connections go where `target` says now (connections made earlier stay where they
/// went), and answers may be held back `delay_ms` each.
pub struct TcpProxy {
    pub port: u16,
    target: Arc<Mutex<u16>>,
    delay_ms: Arc<std::sync::atomic::AtomicU64>,
}

impl TcpProxy {
    pub async fn to(target: u16) -> Self {
        use std::sync::atomic::Ordering;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let target = Arc::new(Mutex::new(target));
        let delay_ms = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (to, delay) = (target.clone(), delay_ms.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let upstream = *to.lock().unwrap();
                let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                else {
                    continue;
                };
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
                });
                let delay = delay.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 16 * 1024];
                    loop {
                        let n = match server_read.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        let ms = delay.load(Ordering::SeqCst);
                        if ms > 0 {
                            tokio::time::sleep(Duration::from_millis(ms)).await;
                        }
                        if client_write.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Self {
            port,
            target,
            delay_ms,
        }
    }

    /// New connections go to `port` from now on.
    pub fn point_to(&self, port: u16) {
        *self.target.lock().unwrap() = port;
    }

    /// Each answer is held back this long from now on.
    pub fn delay(&self, delay: Duration) {
        self.delay_ms.store(
            u64::try_from(delay.as_millis()).unwrap(),
            std::sync::atomic::Ordering::SeqCst,
        );
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }
}

/// `POST /clients` to `address` with a token and optional Idempotency-Key; status and body.
pub async fn post_keyed(
    http: &reqwest::Client,
    address: &str,
    token: &str,
    key: Option<&str>,
    body: &Value,
) -> (u16, Value) {
    let mut request = http
        .post(format!("{address}/clients"))
        .bearer_auth(token)
        .json(body);
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    let response = request.send().await.expect("the gateway answers");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// A configuration for the real binary: the test key, then `[server]` listening on `port` with
/// one worker; `rest` may begin with more `[server]` keys, then other sections.
pub fn binary_config(port: u16, rest: &str) -> String {
    // The operations' key (required with Redis), unless the test writes its own section.
    let operations = match rest.contains("[operations]") {
        true => String::new(),
        false => format!("[operations]\nencryption_key = \"{OPERATIONS_KEY}\"\n"),
    };
    format!(
        "[auth]\nhs256_secret = \"{JWT_SECRET}\"\n{operations}[server]\nbind = \"127.0.0.1:{port}\"\nworkers = 1\n{rest}"
    )
}

/// [`binary_config`] written as `gateway.toml` in a new temporary directory: the directory (the
/// file lives as long as it) and the file's path.
pub fn binary_config_file(port: u16, rest: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &binary_config(port, rest));
    (dir, config)
}

/// Runs `clients-gateway check-config --config <config>`, the environment given added; its
/// output.
pub fn check_config(
    config: impl AsRef<std::ffi::OsStr>,
    env: &[(&str, &str)],
) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_clients-gateway"))
        .args(["check-config", "--config"])
        .arg(config)
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

/// Writes `text` as `gateway.toml` in `dir`; its path.
pub fn write_config(dir: &std::path::Path, text: &str) -> std::path::PathBuf {
    let config = dir.join("gateway.toml");
    std::fs::write(&config, text).unwrap();
    config
}

/// Runs the real binary with `--config`, output to `log` (or nowhere), and waits until it
/// listens on `port`.
pub async fn start_binary(
    config: &std::path::Path,
    port: u16,
    log: Option<std::fs::File>,
) -> Spawned {
    start_binary_with(config, port, log, &[]).await
}

/// [`start_binary`] with environment variables for the gateway.
pub async fn start_binary_with(
    config: &std::path::Path,
    port: u16,
    log: Option<std::fs::File>,
    env: &[(&str, &str)],
) -> Spawned {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_clients-gateway"));
    command
        .arg("--config")
        .arg(config)
        .env_remove("RUST_LOG")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .env_remove("SSL_CERT_FILE");
    for variable in ["HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY"] {
        command
            .env_remove(variable)
            .env_remove(variable.to_lowercase());
    }
    command.envs(env.iter().copied());
    match log {
        Some(file) => command.stdout(file.try_clone().unwrap()).stderr(file),
        None => command.stdout(std::process::Stdio::null()),
    };
    let child = Spawned::start(&mut command).unwrap();
    assert!(
        listens_within(port, Duration::from_secs(10)).await,
        "the gateway did not start"
    );
    child
}

/// Sends SIGTERM and waits (at most 10 s) for the process to exit.
pub async fn terminate(child: &mut Spawned) -> std::process::ExitStatus {
    child.signal("TERM");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(exit) = child.try_wait().unwrap() {
            return exit;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the gateway did not exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// POST mocks on `server` (at `at`, or any path): `first` for the first `n` calls, `then` after;
/// each expects exactly `n` and `then_calls` calls.
pub async fn answer_first_then(
    server: &MockServer,
    at: Option<&str>,
    first: ResponseTemplate,
    n: u64,
    then: ResponseTemplate,
    then_calls: u64,
) {
    for (response, priority, times) in [(first, 1, Some(n)), (then, 2, None)] {
        let mut mock = match at {
            Some(at) => Mock::given(method("POST")).and(path(at)),
            None => Mock::given(method("POST")),
        }
        .respond_with(response)
        .with_priority(priority);
        mock = match times {
            Some(n) => mock.up_to_n_times(n).expect(n),
            None => mock.expect(then_calls),
        };
        mock.mount(server).await;
    }
}

/// A test CA and a server certificate it signed (for `localhost` and `127.0.0.1`), on disk.
pub struct Pki {
    dir: tempfile::TempDir,
    pub cert: rustls_pki_types::CertificateDer<'static>,
    pub key: rustls_pki_types::PrivateKeyDer<'static>,
}

impl Pki {
    pub fn new() -> Self {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "clients-gateway test CA");
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);
        let key = KeyPair::generate().unwrap();
        let server = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca_cert.pem()).unwrap();
        std::fs::write(dir.path().join("server.pem"), server.pem()).unwrap();
        std::fs::write(dir.path().join("server.key"), key.serialize_pem()).unwrap();
        Self {
            dir,
            cert: server.der().clone(),
            key: rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        }
    }

    pub fn ca_file(&self) -> std::path::PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The server certificate and its key, PEM files (for a server that reads files).
    pub fn server_files(&self) -> (std::path::PathBuf, std::path::PathBuf) {
        (
            self.dir.path().join("server.pem"),
            self.dir.path().join("server.key"),
        )
    }
}
