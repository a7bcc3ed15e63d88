//! Asynchronous operations (`Prefer: respond-async`) against real gateways (in this process, and
//! the real binary where a replica must die), a real Redis and a tool that acts as Clockify
//! does — it keeps what it creates, lists it, and may be down or never answer: accepted with
//! its headers and read back by its caller only, re-driven through an outage and an unanswered
//! create, a fleet quota waited for across two replicas, a replica killed while it holds
//! targets, a Sentinel failover, cancelled, sealed at rest, given up after `redrive_for_s`.
//! Each counts what the tool received: never a client twice.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clients_gateway::catalog::ProviderId;
use clients_gateway::config::Settings;
use serde_json::{json, Value};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::helpers::*;

/// What the tool does with a create.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Act {
    /// Creates it and answers 201.
    Create,
    /// Creates it and answers 201 after this long.
    CreateSlowly(Duration),
    /// Creates nothing: 503 with `Retry-After: 1`.
    Unavailable,
    /// Creates it and never answers (within any test).
    CreateUnanswered,
}

/// A Clockify that keeps what it creates: its list endpoint answers every client it holds.
#[derive(Clone)]
pub(crate) struct Tool {
    state: Arc<Mutex<ToolState>>,
    act: Arc<dyn Fn(usize) -> Act + Send + Sync>,
    /// How long a client it created is missing from its list (an index that lags).
    listed_after: Duration,
}

#[derive(Default)]
struct ToolState {
    /// Each client, and when it was created.
    clients: Vec<(Instant, Value)>,
    /// Every create received: when, and the client's name.
    posts: Vec<(Instant, String)>,
}

impl Tool {
    /// A tool doing `act(n)` with its n-th create (from 0).
    pub(crate) fn new(act: impl Fn(usize) -> Act + Send + Sync + 'static) -> Self {
        Self {
            state: Arc::default(),
            act: Arc::new(act),
            listed_after: Duration::ZERO,
        }
    }

    pub(crate) async fn mount(&self, server: &MockServer) {
        Mock::given(wiremock::matchers::path_regex(
            "^/api/v1/workspaces/[0-9a-f]+/clients$",
        ))
        .respond_with(self.clone())
        .mount(server)
        .await;
    }

    /// A tool that answers 503 until the flag it returns is set, then creates.
    fn down_until_up() -> (Self, Arc<AtomicBool>) {
        let up = Arc::new(AtomicBool::new(false));
        let flag = up.clone();
        let tool = Tool::new(move |_| match flag.load(Ordering::SeqCst) {
            true => Act::Create,
            false => Act::Unavailable,
        });
        (tool, up)
    }

    pub(crate) fn posts(&self) -> Vec<(Instant, String)> {
        self.state.lock().unwrap().posts.clone()
    }

    /// How many clients it holds, by name.
    fn clients(&self) -> BTreeMap<String, usize> {
        let mut by_name = BTreeMap::new();
        for (_, c) in &self.state.lock().unwrap().clients {
            *by_name
                .entry(c["name"].as_str().unwrap().to_owned())
                .or_insert(0) += 1;
        }
        by_name
    }
}

impl Respond for Tool {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let mut state = self.state.lock().unwrap();
        if request.method.as_str() == "GET" {
            let listed: Vec<&Value> = state
                .clients
                .iter()
                .filter(|(at, _)| at.elapsed() >= self.listed_after)
                .map(|(_, c)| c)
                .collect();
            return ResponseTemplate::new(200).set_body_json(listed);
        }
        let sent: Value = serde_json::from_slice(&request.body).unwrap();
        let name = sent["name"].as_str().unwrap().to_owned();
        let n = state.posts.len();
        state.posts.push((Instant::now(), name.clone()));
        let act = (self.act)(n);
        if act == Act::Unavailable {
            return ResponseTemplate::new(503)
                .insert_header("retry-after", "1")
                .set_body_json(json!({"message": "Service unavailable", "code": 503}));
        }
        let client = json!({
            "id": format!("{:024x}", state.clients.len() + 1),
            "name": name, "workspaceId": CLOCKIFY_WORKSPACE, "archived": false
        });
        state.clients.push((Instant::now(), client.clone()));
        let answer = ResponseTemplate::new(201).set_body_json(client);
        match act {
            Act::CreateSlowly(delay) => answer.set_delay(delay),
            Act::CreateUnanswered => answer.set_delay(Duration::from_secs(600)),
            _ => answer,
        }
    }
}

/// A request for Clockify alone, for a client named `name`.
pub(crate) fn clockify(name: &str) -> Value {
    json!({
        "client": { "name": name,
            "contact": { "first_name": "Nova", "last_name": "Smith", "email": "nova.smith@nova.example" } },
        "targets": { "clockify": {} }
    })
}

/// Settings for a gateway on `mocks` sharing the Redis at `redis` (if any), Clockify settling
/// an unknown create after 1 s.
pub(crate) fn settings(mocks: &Mocks, redis: Option<&str>) -> Settings {
    let mut s = test_settings(mocks);
    s.idempotency.redis_url = redis.map(|r| r.to_owned().into());
    s.providers
        .update_common(ProviderId::Clockify, |c| c.settle_s = 1);
    s
}

/// `POST /clients` with `Prefer` (and an `Idempotency-Key`, if given).
pub(crate) async fn post_async(
    address: &str,
    token: &str,
    prefer: &str,
    key: Option<&str>,
    body: &Value,
) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(format!("{address}/clients"))
        .bearer_auth(token)
        .header("prefer", prefer)
        .json(body);
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    request.send().await.expect("the gateway answers")
}

/// Accepts `body` asynchronously, asserting a 202; the operation's `Location`.
pub(crate) async fn accept(address: &str, token: &str, body: &Value) -> String {
    let response = post_async(address, token, "respond-async", None, body).await;
    assert_eq!(response.status().as_u16(), 202);
    response.headers()["location"].to_str().unwrap().to_owned()
}

/// `GET` (or another method) on an operation: status and body.
pub(crate) async fn on_operation(
    method: &str,
    address: &str,
    token: &str,
    location: &str,
) -> (u16, Value) {
    let response = reqwest::Client::new()
        .request(method.parse().unwrap(), format!("{address}{location}"))
        .bearer_auth(token)
        .send()
        .await
        .expect("the gateway answers");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// Reads the operation every 200 ms until it is done (at most `within`), every answer seen
/// passed to `seen`; the last.
pub(crate) async fn until_done(
    address: &str,
    token: &str,
    location: &str,
    within: Duration,
    mut seen: impl FnMut(&Value),
) -> Value {
    let until = Instant::now() + within;
    loop {
        let (status, operation) = on_operation("GET", address, token, location).await;
        assert_eq!(status, 200, "{operation}");
        seen(&operation);
        if operation["done"] == true {
            return operation;
        }
        assert!(
            Instant::now() < until,
            "not done within {within:?}: {operation}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The id of a `Location`.
pub(crate) fn id_of(location: &str) -> &str {
    location.trim_start_matches("/clients/operations/")
}

#[tokio::test]
async fn an_operation_is_accepted_with_its_headers_read_back_by_its_caller_only_and_finished() {
    let redis = RedisServer::start().await;
    let mocks = Mocks::start().await;
    let tool = Tool::new(|_| Act::CreateSlowly(Duration::from_millis(1500)));
    tool.mount(&mocks.clockify).await;
    let address = spawn_gateway(&settings(&mocks, Some(&redis.url))).await;
    let token = token_for("test-caller");
    let body = clockify("Nova Consulting Ltd");

    let response = post_async(&address, &token, "respond-async", Some("op-1"), &body).await;
    assert_eq!(response.status().as_u16(), 202);
    let headers = response.headers().clone();
    let location = headers["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with("/clients/operations/"), "{location}");
    assert_eq!(headers["preference-applied"], "respond-async");
    let retry_after: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let accepted: Value = response.json().await.unwrap();
    assert_eq!(accepted["operation_id"], id_of(&location));
    assert_eq!(accepted["done"], false);
    assert!(
        ["accepted", "running"].contains(&accepted["state"].as_str().unwrap()),
        "{accepted}"
    );
    assert_eq!(
        accepted["results"]["clockify"]["status"], "pending",
        "{accepted}"
    );

    // Another caller, and an id nobody was given: 404, the same problem.
    let stranger = token_for("another-caller");
    for (token, at) in [
        (&stranger, location.clone()),
        (
            &token,
            format!("/clients/operations/{}", uuid::Uuid::now_v7()),
        ),
    ] {
        for method in ["GET", "DELETE"] {
            let (status, problem) = on_operation(method, &address, token, &at).await;
            assert_eq!(status, 404, "{method} {at}: {problem}");
            assert_eq!(
                problem["type"], "urn:clients-gateway:problem:not-found",
                "{problem}"
            );
        }
    }

    let mut states = Vec::new();
    let done = until_done(&address, &token, &location, Duration::from_secs(20), |o| {
        states.push(o["state"].as_str().unwrap().to_owned());
    })
    .await;
    assert!(states.contains(&"running".to_owned()), "{states:?}");
    assert_eq!(done["state"], "succeeded", "{done}");
    let result = &done["results"]["clockify"];
    assert_eq!(result["status"], "created", "{result}");
    assert_eq!(result["provider_client_id"], "000000000000000000000001");
    assert_eq!(result["attempts"], 1);

    // Its key names it: the same operation, answered 200 now that it is done; another body is
    // refused; nothing more is sent.
    let again = post_async(&address, &token, "respond-async", Some("op-1"), &body).await;
    assert_eq!(again.status().as_u16(), 200);
    assert_eq!(again.headers()["location"].to_str().unwrap(), location);
    let other = post_async(
        &address,
        &token,
        "respond-async",
        Some("op-1"),
        &clockify("Other Ltd"),
    )
    .await;
    assert_eq!(other.status().as_u16(), 422);
    assert_eq!(tool.posts().len(), 1);
}

#[tokio::test]
async fn waiting_answers_the_207_when_the_tools_are_fast() {
    let mocks = Mocks::start().await;
    let tool = Tool::new(|_| Act::Create);
    tool.mount(&mocks.clockify).await;
    let address = spawn_gateway(&settings(&mocks, None)).await;

    let response = post_async(
        &address,
        &token_for("test-caller"),
        "respond-async, wait=5",
        None,
        &clockify("Nova Consulting Ltd"),
    )
    .await;

    assert!(response.headers().get("preference-applied").is_none());
    let answer = assert_207(response).await;
    assert_eq!(
        answer["results"]["clockify"]["status"], "created",
        "{answer}"
    );
    assert_eq!(tool.posts().len(), 1);
}

#[tokio::test]
async fn a_tool_down_for_a_while_is_attempted_again_until_it_creates_the_client_once() {
    let redis = RedisServer::start().await;
    let mocks = Mocks::start().await;
    let tool = Tool::new(|n| if n < 3 { Act::Unavailable } else { Act::Create });
    tool.mount(&mocks.clockify).await;
    let address = spawn_gateway(&settings(&mocks, Some(&redis.url))).await;
    let token = token_for("test-caller");

    let location = accept(&address, &token, &clockify("Nova Consulting Ltd")).await;

    let mut waiting = None;
    let done = until_done(&address, &token, &location, Duration::from_secs(30), |o| {
        let r = &o["results"]["clockify"];
        if r["status"] == "pending" && r["error"]["kind"] == "unavailable" {
            waiting.get_or_insert_with(|| r.clone());
        }
    })
    .await;
    let waiting = waiting.expect("seen pending after a 503");
    assert!(
        waiting["next_attempt_at"].as_str().unwrap().ends_with('Z'),
        "{waiting}"
    );
    assert_eq!(waiting["error"]["provider_status"], 503, "{waiting}");
    let result = &done["results"]["clockify"];
    assert_eq!(result["status"], "created", "{done}");
    assert_eq!(result["attempts"], 4, "{result}");
    assert_eq!(tool.posts().len(), 4);
    assert_eq!(tool.clients().len(), 1, "one client, created once");
}

#[tokio::test]
async fn a_create_the_tool_performs_but_never_answers_is_settled_by_a_lookup() {
    let redis = RedisServer::start().await;
    let mocks = Mocks::start().await;
    let mut tool = Tool::new(|n| {
        if n == 0 {
            Act::CreateUnanswered
        } else {
            Act::Create
        }
    });
    // Listed 2 s after it is created: the first attempt's own lookup does not find it; the
    // tool's list is complete after settle_s (4 s), as the setting promises.
    tool.listed_after = Duration::from_secs(2);
    tool.mount(&mocks.clockify).await;
    let mut s = settings(&mocks, Some(&redis.url));
    s.providers
        .update_common(ProviderId::Clockify, |c| c.settle_s = 4);
    set_timeouts(&mut s, 500);
    let address = spawn_gateway(&s).await;
    let token = token_for("test-caller");

    let location = accept(&address, &token, &clockify("Nova Consulting Ltd")).await;

    let mut errors = Vec::new();
    let done = until_done(&address, &token, &location, Duration::from_secs(30), |o| {
        errors.push(o["results"]["clockify"].clone());
    })
    .await;
    assert!(
        errors
            .iter()
            .any(|r| r["status"] == "pending" && r["attempts"] == 1 && r["error"].is_object()),
        "the first attempt left it unsettled: {errors:?}"
    );
    let result = &done["results"]["clockify"];
    assert!(
        ["created", "existing"].contains(&result["status"].as_str().unwrap()),
        "{result}"
    );
    assert_eq!(result["provider_client_id"], "000000000000000000000001");
    assert_eq!(result["reconciled"], true, "{result}");
    assert_eq!(tool.posts().len(), 1, "never sent again");
}

#[tokio::test]
async fn a_fleet_quota_is_waited_for_and_the_sends_are_spaced_at_it_across_two_replicas() {
    let redis = RedisServer::start().await;
    let mocks = Mocks::start().await;
    // One 503 (`Retry-After: 1`) mid-drain: sent again at a slot of its own, not a second later.
    let tool = Tool::new(|n| {
        if n == 6 {
            Act::Unavailable
        } else {
            Act::Create
        }
    });
    tool.mount(&mocks.clockify).await;
    let mut replicas = Vec::new();
    for _ in 0..2 {
        let mut s = settings(&mocks, Some(&redis.url));
        s.providers
            .update_common(ProviderId::Clockify, |c| c.max_per_minute = Some(20));
        replicas.push(spawn_gateway(&s).await);
    }
    let token = token_for("test-caller");

    let mut locations = Vec::new();
    for i in 0..22 {
        let at = &replicas[i % 2];
        locations.push((
            at.clone(),
            accept(at, &token, &clockify(&format!("Nova {i}"))).await,
        ));
    }
    // Redis unreachable for 7 s mid-drain: the slots that pass meanwhile are not made up for
    // by a burst afterwards.
    while tool.posts().len() < 4 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _: () = redis.run(&["CLIENT", "PAUSE", "7000", "ALL"]).await;
    tokio::time::sleep(Duration::from_millis(7500)).await;
    for (at, location) in &locations {
        let done = until_done(at, &token, location, Duration::from_secs(120), |_| {}).await;
        assert_eq!(done["state"], "succeeded", "{done}");
        assert_eq!(done["results"]["clockify"]["status"], "created", "{done}");
    }

    let posts: Vec<Instant> = tool.posts().into_iter().map(|(at, _)| at).collect();
    assert_eq!(
        posts.len(),
        23,
        "each sent once, the one the tool refused twice: nothing refused by the quota"
    );
    assert!(tool.clients().values().all(|n| *n == 1));
    // One every 3 s, fleet-wide: never more than the quota in a minute. (A send may leave up
    // to a second after its slot on a loaded machine: the gap's bound leaves room for that; a
    // send again within an attempt was 1.0 s after the first, a burst after a pause 3 ms.)
    for pair in posts.windows(2) {
        let gap = pair[1].duration_since(pair[0]);
        assert!(gap >= Duration::from_millis(1500), "sends {gap:?} apart");
    }
    for (i, first) in posts.iter().enumerate() {
        let within = posts[i..]
            .iter()
            .filter(|at| at.duration_since(*first) < Duration::from_millis(59_500));
        assert!(within.count() <= 20, "more than 20 sends in a minute");
    }
}

/// The real binary's configuration for Clockify at `tool`, Redis at `redis`, a 2 s deadline,
/// `extra` sections besides.
pub(crate) fn replica_config(port: u16, tool: &MockServer, redis: &str, extra: &str) -> String {
    binary_config(
        port,
        &format!(
            r#"deadline_ms = 2000
[telemetry]
log_level = "warn"
[idempotency]
redis_url = "{redis}"
{extra}
[providers.clockify]
base_url = "{}/api"
api_key = "{CLOCKIFY_KEY}"
workspace_id = "{CLOCKIFY_WORKSPACE}"
timeout_ms = 1000
settle_s = 1
"#,
            tool.uri()
        ),
    )
}

#[tokio::test]
async fn a_replica_killed_while_it_holds_targets_is_taken_over_without_a_duplicate() {
    let redis = RedisServer::start().await;
    let tool_server = MockServer::start().await;
    let tool = Tool::new(|n| {
        if n < 3 {
            Act::CreateUnanswered
        } else {
            Act::Create
        }
    });
    tool.mount(&tool_server).await;
    let token = token_for("test-caller");
    let dir = tempfile::tempdir().unwrap();
    let start = |name: &str| {
        let port = free_port();
        let config = dir.path().join(format!("{name}.toml"));
        std::fs::write(&config, replica_config(port, &tool_server, &redis.url, "")).unwrap();
        (port, config)
    };

    let (port, config) = start("first");
    let mut first = start_binary(&config, port, None).await;
    let first_at = format!("http://127.0.0.1:{port}");
    let mut locations = Vec::new();
    for i in 0..3 {
        locations.push(accept(&first_at, &token, &clockify(&format!("Nova {i}"))).await);
    }
    // Each create is at the tool, unanswered, when the replica dies.
    for _ in 0..100 {
        if tool.posts().len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(tool.posts().len(), 3);
    first.signal("KILL");
    let _ = first.wait();

    let (port, config) = start("second");
    let _second = start_binary(&config, port, None).await;
    let second_at = format!("http://127.0.0.1:{port}");
    for location in &locations {
        // Taken over once its lease (the deadline and 30 s) has passed.
        let done = until_done(
            &second_at,
            &token,
            location,
            Duration::from_secs(60),
            |_| {},
        )
        .await;
        let result = &done["results"]["clockify"];
        assert!(
            ["created", "existing"].contains(&result["status"].as_str().unwrap()),
            "{done}"
        );
    }
    assert_eq!(tool.posts().len(), 3, "nothing sent again");
    let clients = tool.clients();
    assert_eq!(clients.len(), 3);
    assert!(clients.values().all(|n| *n == 1), "{clients:?}");
}

#[tokio::test]
async fn a_sentinel_failover_while_operations_are_pending_loses_none_and_duplicates_none() {
    let master = RedisServer::start().await;
    let replica = RedisServer::replica_of(&master).await;
    let dir = tempfile::tempdir().unwrap();
    let (_sentinel, sentinel_port) = sentinel(dir.path(), &master.port().to_string()).await;
    let mocks = Mocks::start().await;
    let (tool, up) = Tool::down_until_up();
    tool.mount(&mocks.clockify).await;
    let mut s = settings(&mocks, None);
    s.idempotency.redis_sentinels = vec![format!("127.0.0.1:{sentinel_port}")];
    s.idempotency.redis_master_name = Some("gateway".into());
    let address = spawn_gateway(&s).await;
    let token = token_for("test-caller");

    let mut locations = Vec::new();
    for i in 0..5 {
        locations.push(accept(&address, &token, &clockify(&format!("Nova {i}"))).await);
    }
    for _ in 0..100 {
        if tool.posts().len() >= 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // As soon as the sentinel knows the replica (it asks the master every few seconds).
    let mut to_sentinel = redis::Client::open(format!("redis://127.0.0.1:{sentinel_port}"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let mut failover = Err(String::new());
    for _ in 0..100 {
        failover = redis::cmd("SENTINEL")
            .arg("FAILOVER")
            .arg("gateway")
            .query_async::<String>(&mut to_sentinel)
            .await
            .map_err(|e| e.to_string());
        if failover.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(failover, Ok("OK".to_owned()));
    tokio::time::sleep(Duration::from_secs(2)).await;
    up.store(true, Ordering::SeqCst);

    for location in &locations {
        let done = until_done(&address, &token, location, Duration::from_secs(60), |_| {}).await;
        assert_eq!(done["state"], "succeeded", "{done}");
    }
    let role: Vec<redis::Value> = replica.run(&["ROLE"]).await;
    assert_eq!(
        role[0],
        redis::Value::BulkString(b"master".to_vec()),
        "the replica was promoted"
    );
    let clients = tool.clients();
    assert_eq!(clients.len(), 5, "{clients:?}");
    assert!(
        clients.values().all(|n| *n == 1),
        "a client created twice: {clients:?}"
    );
}

#[tokio::test]
async fn cancelling_ends_the_pending_targets_and_nothing_more_is_sent() {
    let redis = RedisServer::start().await;
    let mocks = Mocks::start().await;
    let tool = Tool::new(|_| Act::Unavailable);
    tool.mount(&mocks.clockify).await;
    let address = spawn_gateway(&settings(&mocks, Some(&redis.url))).await;
    let token = token_for("test-caller");
    let location = accept(&address, &token, &clockify("Nova Consulting Ltd")).await;
    // Its first attempt answered 503 and recorded: pending, due again within a second or two.
    for _ in 0..100 {
        let (_, o) = on_operation("GET", &address, &token, &location).await;
        if o["results"]["clockify"]["error"]["kind"] == "unavailable" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let (status, cancelled) = on_operation("DELETE", &address, &token, &location).await;

    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["state"], "cancelled", "{cancelled}");
    assert_eq!(cancelled["done"], true);
    assert_eq!(
        cancelled["results"]["clockify"]["status"], "cancelled",
        "{cancelled}"
    );
    let sent = tool.posts().len();
    // Attempts were due every second or two (`Retry-After: 1`, a backoff from 1 s).
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(tool.posts().len(), sent, "nothing sent after the cancel");
    let (_, read) = on_operation("GET", &address, &token, &location).await;
    assert_eq!(read["results"]["clockify"]["status"], "cancelled", "{read}");
}

#[tokio::test]
async fn after_redrive_for_s_a_target_ends_failed_with_its_last_error() {
    let redis = RedisServer::start().await;
    let mocks = Mocks::start().await;
    let mut s = settings(&mocks, Some(&redis.url));
    // Nothing listens: every attempt fails before anything is sent.
    point(
        &mut s,
        &crate::fixture(ProviderId::Clockify),
        &closed_address(),
    );
    s.operations.redrive_for_s = 3;
    let address = spawn_gateway(&s).await;
    let token = token_for("test-caller");

    let location = accept(&address, &token, &clockify("Nova Consulting Ltd")).await;
    let mut tries = 0;
    let done = until_done(&address, &token, &location, Duration::from_secs(30), |o| {
        tries += usize::from(o["results"]["clockify"]["status"] == "pending");
    })
    .await;

    assert_eq!(done["state"], "failed", "{done}");
    let result = &done["results"]["clockify"];
    assert_eq!(result["status"], "failed", "{result}");
    // The tool refused connections (and then its circuit opened): its last error.
    let kind = result["error"]["kind"].as_str().unwrap();
    assert!(["unavailable", "circuit_open"].contains(&kind), "{result}");
    let message = result["error"]["message"].as_str().unwrap();
    assert!(message.contains("nothing was sent"), "{message}");
    assert!(
        message.contains("given up after operations.redrive_for_s (3 s)"),
        "{message}"
    );
    assert!(tries >= 2, "read pending while it was attempted again");
}

/// Every value in the Redis at `redis`, as text: strings, hashes, sorted sets, streams.
async fn everything_in(redis: &RedisServer) -> String {
    let keys: Vec<String> = redis.run(&["KEYS", "*"]).await;
    assert!(!keys.is_empty());
    let mut all = String::new();
    for key in keys {
        let kind: String = redis.run(&["TYPE", &key]).await;
        let value: redis::Value = match kind.as_str() {
            "string" => redis.run(&["GET", &key]).await,
            "hash" => redis.run(&["HGETALL", &key]).await,
            "zset" => redis.run(&["ZRANGE", &key, "0", "-1", "WITHSCORES"]).await,
            "stream" => redis.run(&["XRANGE", &key, "-", "+"]).await,
            "set" => redis.run(&["SMEMBERS", &key]).await,
            "list" => redis.run(&["LRANGE", &key, "0", "-1"]).await,
            other => panic!("{key}: a {other}"),
        };
        all.push_str(&format!("{key} {value:?}\n"));
    }
    all
}

#[tokio::test]
async fn nothing_personal_is_kept_in_clear_a_rotated_key_reads_older_operations_and_a_wrong_key_says_so(
) {
    let redis = RedisServer::start().await;
    let tool_server = MockServer::start().await;
    let (tool, up) = Tool::down_until_up();
    tool.mount(&tool_server).await;
    let plusvibe = MockServer::start().await;
    Mock::given(wiremock::matchers::method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "client_id": "70218d5e05561a3877dcb77f", "email": "zorblat@unusual.example",
            "password": PLUSVIBE_PASSWORD
        })))
        .mount(&plusvibe)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let keys = [
        OPERATIONS_KEY,
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
    ];
    let key_files: Vec<_> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let file = dir.path().join(format!("key-{i}"));
            std::fs::write(&file, k).unwrap();
            file.display().to_string()
        })
        .collect();
    let token = token_for("test-caller");
    let run = |name: &'static str, operations: String| {
        let port = free_port();
        let extra = format!(
            "{operations}\n[providers.plusvibe]\nbase_url = \"{}\"\napi_key = \"{PLUSVIBE_KEY}\"\nworkspace_id = \"{PLUSVIBE_WORKSPACE}\"\n",
            plusvibe.uri()
        );
        let config = dir.path().join(format!("{name}.toml"));
        std::fs::write(
            &config,
            replica_config(port, &tool_server, &redis.url, &extra),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join(format!("{name}.log"))).unwrap();
        async move {
            (
                start_binary(&config, port, Some(log)).await,
                format!("http://127.0.0.1:{port}"),
            )
        }
    };

    // Sealed with the first key.
    let (mut first, at) = run(
        "first",
        format!("[operations]\nencryption_key_file = \"{}\"", key_files[0]),
    )
    .await;
    let mut body = clockify("Zorblat Quixotic Holdings");
    body["client"]["contact"]["email"] = json!("zorblat@unusual.example");
    body["targets"]["plusvibe"] = json!({});
    let location = accept(&at, &token, &body).await;
    let mut shown = None;
    for _ in 0..100 {
        let (_, o) = on_operation("GET", &at, &token, &location).await;
        if o["results"]["plusvibe"]["status"] == "created" && !tool.posts().is_empty() {
            shown = Some(o);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let shown = shown.expect("plusvibe created, clockify attempted");
    assert_eq!(
        shown["results"]["plusvibe"]["credentials"]["password"], PLUSVIBE_PASSWORD,
        "shown once"
    );
    let (_, again) = on_operation("GET", &at, &token, &location).await;
    assert_eq!(
        again["results"]["plusvibe"]["credentials"]["password"], "[redacted]",
        "then redacted"
    );

    let raw = everything_in(&redis).await;
    for personal in [
        "Zorblat",
        "zorblat",
        "unusual.example",
        "Smith",
        PLUSVIBE_PASSWORD,
    ] {
        assert!(
            !raw.contains(personal),
            "{personal} in clear in Redis:\n{raw}"
        );
    }
    terminate(&mut first).await;

    // A gateway without that key: nothing sent, the target still pending, the error clear.
    let sent = tool.posts().len();
    up.store(true, Ordering::SeqCst);
    let (mut wrong, at) = run(
        "wrong",
        format!("[operations]\nencryption_key_file = \"{}\"", key_files[1]),
    )
    .await;
    let mut said = None;
    for _ in 0..60 {
        let (_, o) = on_operation("GET", &at, &token, &location).await;
        let error = o["results"]["clockify"]["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if error.contains("previous_key_files") {
            said = Some(o);
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let said = said.unwrap_or_else(|| {
        let log = std::fs::read_to_string(dir.path().join("wrong.log")).unwrap();
        panic!("the target does not say which key it needs: {log}")
    });
    assert_eq!(said["results"]["clockify"]["status"], "pending", "{said}");
    assert_eq!(tool.posts().len(), sent, "nothing sent without the key");
    terminate(&mut wrong).await;
    let log = std::fs::read_to_string(dir.path().join("wrong.log")).unwrap();
    assert!(
        log.contains("does not open with this gateway's keys"),
        "{log}"
    );

    // The key rotated: the new key seals, the old one still opens what it sealed.
    let (_rotated, at) = run(
        "rotated",
        format!(
            "[operations]\nencryption_key_file = \"{}\"\nprevious_key_files = [\"{}\"]",
            key_files[1], key_files[0]
        ),
    )
    .await;
    let done = until_done(&at, &token, &location, Duration::from_secs(30), |_| {}).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(tool.clients().len(), 1);
}

#[test]
fn check_config_warns_that_operations_without_redis_are_not_durable() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &binary_config(free_port(), ""));

    let output = check_config(&config, &[]);

    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stdout.contains("operations in process (not durable)"),
        "{stdout}"
    );
    assert!(
        stderr.contains("warning:") && stderr.contains("lost when the process stops"),
        "{stderr}"
    );

    let off = write_config(
        dir.path(),
        &binary_config(free_port(), "[operations]\nenabled = false\n"),
    );
    let output = check_config(&off, &[]);
    assert!(String::from_utf8_lossy(&output.stdout).contains("operations off"));
    assert!(!String::from_utf8_lossy(&output.stderr).contains("warning:"));
}

#[tokio::test]
async fn no_second_attempt_of_a_target_begins_while_one_is_under_way() {
    use clients_gateway::operations::{
        Begun, Created, Mark, NewOp, OpStore, RedisOps, TargetWrite, Task,
    };
    use clients_gateway::results::TargetStatus;
    let redis = RedisServer::start().await;
    let url = secrecy::SecretString::from(redis.url.clone());
    let settings = clients_gateway::fleet::RedisSettings {
        url: Some(&url),
        username: None,
        password: None,
        sentinels: &[],
        master_name: None,
        tls: false,
        connect_timeout: Duration::from_secs(1),
        command_timeout: Duration::from_secs(1),
        wait_replicas: Some(0),
    };
    let egress =
        clients_gateway::egress::Egress::from_settings(&Default::default(), &Default::default())
            .unwrap();
    let link = clients_gateway::fleet::Link::from_settings(&settings, &egress)
        .unwrap()
        .unwrap();
    let memory = clients_gateway::operations::MemoryOps::new(10);
    let redis_ops = RedisOps::new(link);
    let stores: [&dyn OpStore; 2] = [&redis_ops, &memory];
    for store in stores {
        let new = NewOp {
            id: "op-1".into(),
            key: None,
            targets: vec![ProviderId::Clockify],
            fields: vec![("s:clockify".into(), "pending".into())],
            key_ttl: Duration::from_secs(60),
            max_pending: 100,
        };
        assert!(matches!(
            store.create(&new).await.unwrap(),
            Created::New { .. }
        ));
        let lease = Duration::from_millis(800);
        let clock = Task::Target(ProviderId::Clockify);

        // A queue entry delivered twice (a takeover, an acknowledgement lost in a failover):
        // the second finds the first under way and does not begin.
        let first = store.begin("op-1", clock, lease).await.unwrap();
        assert!(
            matches!(
                first,
                Begun::Go {
                    interrupted: None,
                    ..
                }
            ),
            "{first:?}"
        );
        let second = store.begin("op-1", clock, lease).await.unwrap();
        assert_eq!(second, Begun::Busy, "a second attempt beside the first");

        // Past the lease, the first is taken for dead: the next begins, told when it began.
        tokio::time::sleep(lease + Duration::from_millis(200)).await;
        let taken_over = store.begin("op-1", clock, lease).await.unwrap();
        assert!(
            matches!(
                taken_over,
                Begun::Go {
                    interrupted: Some(_),
                    ..
                }
            ),
            "{taken_over:?}"
        );
        let (
            Begun::Go {
                now_ms: first_at, ..
            },
            Begun::Go {
                now_ms: over_at, ..
            },
        ) = (first, taken_over)
        else {
            unreachable!()
        };
        let write = |status: TargetStatus, mark: Mark| TargetWrite {
            status: status.as_str(),
            record: format!("{{\"by\":\"{mark:?}\"}}"),
            delay_ms: Some(60_000),
            credentials: None,
            ttl_ms: 60_000,
            mark,
        };
        let fields = || async { store.read("op-1").await.unwrap().unwrap().fields };
        let settle = |status: TargetStatus, mark: Mark| async move {
            store
                .settle("op-1", clock, write(status, mark))
                .await
                .unwrap()
        };

        // The first attempt, taken for dead, answers late: its write is dropped, and the
        // target stays the takeover's (a further delivery is still busy).
        settle(TargetStatus::Created, Mark::Own(first_at)).await;
        // A further delivery puts the target back for its quota slot, having read before the
        // takeover began: dropped too, the takeover's mark kept.
        settle(TargetStatus::Pending, Mark::Unchanged(None)).await;
        let now = fields().await;
        assert_eq!(now.get("s:clockify").map(String::as_str), Some("pending"));
        assert_eq!(now.get("f:clockify"), Some(&over_at.to_string()), "{now:?}");
        assert_eq!(
            store.begin("op-1", clock, lease).await.unwrap(),
            Begun::Busy,
            "a late write cleared the attempt under way"
        );

        // The takeover's own write applies and clears its mark.
        settle(TargetStatus::Pending, Mark::Own(over_at)).await;
        let now = fields().await;
        assert!(!now.contains_key("f:clockify"), "{now:?}");
        assert!(now["t:clockify"].contains("Own"), "{now:?}");

        // A stale mark (an attempt that died) is kept by a quota wait's write, so that the next
        // attempt still looks up before it sends.
        let dead = store.begin("op-1", clock, lease).await.unwrap();
        let Begun::Go {
            now_ms: dead_at, ..
        } = dead
        else {
            panic!("{dead:?}")
        };
        tokio::time::sleep(lease + Duration::from_millis(200)).await;
        settle(TargetStatus::Pending, Mark::Unchanged(Some(dead_at))).await;
        assert!(fields().await["t:clockify"].contains("Unchanged"));
        let next = store.begin("op-1", clock, lease).await.unwrap();
        assert!(
            matches!(next, Begun::Go { interrupted: Some(at), .. } if at == dead_at),
            "{next:?}"
        );
    }
}
