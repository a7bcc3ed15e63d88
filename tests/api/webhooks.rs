//! Completion events (Standard Webhooks) against real gateways and real receivers: every
//! signature checked by the specification's reference library for Python (installed by
//! `.ci/install-tools`), during a rotation too; a receiver answering 500 then 200, 410, 429 with
//! `Retry-After`, hanging; a replica killed while a delivery is due; credentials in the event
//! or not; `notify` naming no webhook.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clients_gateway::config::Settings;
use clients_gateway::operations::webhooks::WebhookSettings;
use serde_json::{json, Value};
use wiremock::{MockServer, Request, Respond, ResponseTemplate};

use crate::helpers::*;
use crate::operations::{
    accept, clockify, on_operation, post_async, replica_config, settings, until_done, Act, Tool,
};

/// The Standard Webhooks specification's example secret (24 bytes).
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// The secret a rotation adds (32 bytes).
const NEW_SECRET: &str = "whsec_c2Vjb25kLXdlYmhvb2stc2VjcmV0LW9mLTMyLWJ5dGU=";
/// A secret the gateway does not have.
const OTHER_SECRET: &str = "whsec_YW4tdW5yZWxhdGVkLXNlY3JldC1vZi0zMi1ieXRlcyE=";

/// One request a receiver got.
#[derive(Clone, Debug)]
struct Delivery {
    at: Instant,
    id: String,
    timestamp: String,
    signature: String,
    content_type: String,
    body: Vec<u8>,
}

impl Delivery {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// A receiver answering its n-th delivery (from 0) with `answer(n)`, keeping each.
#[derive(Clone)]
struct Receiver {
    got: Arc<Mutex<Vec<Delivery>>>,
    answer: Arc<dyn Fn(usize) -> ResponseTemplate + Send + Sync>,
}

impl Receiver {
    async fn start(
        answer: impl Fn(usize) -> ResponseTemplate + Send + Sync + 'static,
    ) -> (Self, MockServer) {
        let receiver = Self {
            got: Arc::default(),
            answer: Arc::new(answer),
        };
        let server = MockServer::start().await;
        wiremock::Mock::given(wiremock::matchers::method("POST"))
            .and(wiremock::matchers::path("/hooks/clients"))
            .respond_with(receiver.clone())
            .mount(&server)
            .await;
        (receiver, server)
    }

    fn got(&self) -> Vec<Delivery> {
        self.got.lock().unwrap().clone()
    }

    /// Waits (at most `within`) for `n` deliveries; those received.
    async fn until(&self, n: usize, within: Duration) -> Vec<Delivery> {
        let until = Instant::now() + within;
        while self.got().len() < n && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let got = self.got();
        assert!(
            got.len() >= n,
            "{} of {n} deliveries within {within:?}",
            got.len()
        );
        got
    }
}

impl Respond for Receiver {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let header = |name: &str| {
            request
                .headers
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default()
        };
        let mut got = self.got.lock().unwrap();
        got.push(Delivery {
            at: Instant::now(),
            id: header("webhook-id"),
            timestamp: header("webhook-timestamp"),
            signature: header("webhook-signature"),
            content_type: header("content-type"),
            body: request.body.clone(),
        });
        (self.answer)(got.len() - 1)
    }
}

/// Whether the Standard Webhooks reference library (Python) verifies `delivery` with `secret`;
/// its error when it does not.
fn reference_verifies(secret: &str, delivery: &Delivery) -> Result<(), String> {
    use std::io::Write;
    let python =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/webhooks/bin/python");
    let headers = json!({
        "webhook-id": delivery.id,
        "webhook-timestamp": delivery.timestamp,
        "webhook-signature": delivery.signature,
    });
    let mut child = std::process::Command::new(&python)
        .args([
            "-c",
            "import json, sys\nfrom standardwebhooks.webhooks import Webhook\n\
             Webhook(sys.argv[1]).verify(sys.stdin.buffer.read(), json.loads(sys.argv[2]))",
            secret,
            &headers.to_string(),
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: run `bash .ci/install-tools`: {e}", python.display()));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&delivery.body)
        .unwrap();
    let out = child.wait_with_output().unwrap();
    match out.status.success() {
        true => Ok(()),
        false => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
    }
}

/// Adds webhook `name` to `settings`: `url`'s receiver, signed with `secrets` (lines).
fn hook(settings: &mut Settings, name: &str, url: &str, secrets: &str, include_credentials: bool) {
    settings.operations.webhooks.insert(
        name.into(),
        WebhookSettings {
            url: format!("{url}/hooks/clients").parse().unwrap(),
            secret_file: None,
            secret: Some(secrets.to_owned().into()),
            include_credentials,
        },
    );
}

/// A Clockify that creates every client, and settings for a gateway on it (in process, no
/// Redis) with `change` applied.
async fn gateway(change: impl FnOnce(&mut Settings)) -> (String, Mocks) {
    let mocks = Mocks::start().await;
    Tool::new(|_| Act::Create).mount(&mocks.clockify).await;
    let mut s = settings(&mocks, None);
    change(&mut s);
    (spawn_gateway(&s).await, mocks)
}

fn notifying(name: &str, webhook: &str) -> Value {
    let mut body = clockify(name);
    body["notify"] = json!(webhook);
    body
}

/// A gateway with one webhook (`crm`) whose receiver answers `first` to the first delivery
/// and 200 after, and one operation accepted that names it.
struct OneHook {
    receiver: Receiver,
    _server: MockServer,
    address: String,
    _mocks: Mocks,
    token: String,
    location: String,
}

impl OneHook {
    /// What a test reads (the servers stay with `self`, alive while it is).
    fn parts(&self) -> (&Receiver, &str, &str, &str) {
        (&self.receiver, &self.address, &self.token, &self.location)
    }
}

async fn one_hook(first: ResponseTemplate) -> OneHook {
    let (receiver, server) = Receiver::start(move |n| match n {
        0 => first.clone(),
        _ => ResponseTemplate::new(200),
    })
    .await;
    let (address, mocks) = gateway(|s| hook(s, "crm", &server.uri(), SECRET, false)).await;
    let token = token_for("test-caller");
    let location = accept(&address, &token, &notifying("Nova Consulting Ltd", "crm")).await;
    OneHook {
        receiver,
        _server: server,
        address,
        _mocks: mocks,
        token,
        location,
    }
}

#[tokio::test]
async fn the_event_is_signed_as_the_reference_library_verifies_with_each_secret_of_a_rotation() {
    let (receiver, server) = Receiver::start(|_| ResponseTemplate::new(204)).await;
    let secrets = format!("{SECRET}\n{NEW_SECRET}\n");
    let (address, _mocks) = gateway(|s| hook(s, "crm", &server.uri(), &secrets, false)).await;
    let token = token_for("test-caller");

    let location = accept(&address, &token, &notifying("Nova Consulting Ltd", "crm")).await;
    let operation_id = location.trim_start_matches("/clients/operations/");
    let delivery = receiver.until(1, Duration::from_secs(10)).await.remove(0);

    assert_eq!(delivery.id, format!("msg_{operation_id}"));
    assert_eq!(delivery.content_type, "application/json");
    assert_eq!(
        delivery.signature.split(' ').count(),
        2,
        "{}",
        delivery.signature
    );
    assert!(delivery.signature.split(' ').all(|s| s.starts_with("v1,")));
    for secret in [SECRET, NEW_SECRET] {
        reference_verifies(secret, &delivery)
            .unwrap_or_else(|e| panic!("the reference library refused: {e}"));
    }
    // The same library refuses what it should: another secret, a byte changed.
    assert!(reference_verifies(OTHER_SECRET, &delivery).is_err());
    let mut tampered = delivery.clone();
    tampered.body.insert(1, b' ');
    assert!(reference_verifies(SECRET, &tampered).is_err());

    let event = delivery.json();
    assert_eq!(event["type"], "client.operation.completed");
    assert!(
        event["timestamp"].as_str().unwrap().ends_with('Z'),
        "{event}"
    );
    let data = &event["data"];
    assert_eq!(data["operation_id"], operation_id);
    assert_eq!(
        (data["state"].as_str(), data["done"].as_bool()),
        (Some("succeeded"), Some(true))
    );
    assert_eq!(data["results"]["clockify"]["status"], "created");
    assert!(data.get("notification").is_none(), "{data}");

    let (_, read) = on_operation("GET", &address, &token, &location).await;
    let notification = &read["notification"];
    assert_eq!(notification["webhook"], "crm");
    assert_eq!(notification["event_id"], delivery.id);
    assert_eq!(notification["status"], "delivered", "{read}");
    assert_eq!(notification["attempt_count"], 1);
    assert_eq!(notification["attempts"][0]["result"], "delivered");
    assert_eq!(notification["attempts"][0]["http_status"], 204);
}

#[tokio::test]
async fn a_500_is_delivered_again_with_the_same_id_and_a_410_stops_the_deliveries() {
    let (retried, retried_at) = Receiver::start(|n| match n {
        0 => ResponseTemplate::new(500),
        _ => ResponseTemplate::new(200),
    })
    .await;
    let (gone, gone_at) = Receiver::start(|_| ResponseTemplate::new(410)).await;
    let (address, _mocks) = gateway(|s| {
        hook(s, "retried", &retried_at.uri(), SECRET, false);
        hook(s, "gone", &gone_at.uri(), SECRET, false);
    })
    .await;
    let token = token_for("test-caller");
    let first = accept(
        &address,
        &token,
        &notifying("Nova Consulting Ltd", "retried"),
    )
    .await;
    let second = accept(&address, &token, &notifying("Orbit Analytics", "gone")).await;

    let got = retried.until(2, Duration::from_secs(15)).await;
    assert_eq!(got[0].id, got[1].id, "one event, one id");
    assert_eq!(got[0].body, got[1].body, "the same bytes");
    for delivery in &got {
        reference_verifies(SECRET, delivery).unwrap();
    }
    let waited = got[1].at - got[0].at;
    assert!(
        waited >= Duration::from_millis(2_500),
        "retried after {waited:?}, documented 2.5–5 s"
    );

    // Past the first retry's latest time (5 s), a 410 has had no second attempt, and a
    // delivered event none either.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(gone.got().len(), 1, "a 410 stops the deliveries");
    assert_eq!(retried.got().len(), 2, "delivered once, then no more");

    let (_, read) = on_operation("GET", &address, &token, &first).await;
    let attempts: Vec<(&str, u64)> = read["notification"]["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["result"].as_str().unwrap(),
                a["http_status"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        attempts,
        [("http_error", 500), ("delivered", 200)],
        "{read}"
    );
    let (_, read) = on_operation("GET", &address, &token, &second).await;
    assert_eq!(read["notification"]["status"], "stopped", "{read}");
    assert_eq!(read["notification"]["attempts"][0]["result"], "gone");

    let metrics = reqwest::get(format!("{address}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let series = |webhook: &str, result: &str| {
        metrics.lines().any(|l| {
            l.starts_with("clients_gateway_webhook_deliveries_total{")
                && l.contains(&format!("webhook=\"{webhook}\""))
                && l.contains(&format!("result=\"{result}\""))
        })
    };
    assert!(
        series("retried", "http_error") && series("retried", "delivered"),
        "{metrics}"
    );
    assert!(series("gone", "gone"), "{metrics}");
}

#[tokio::test]
async fn a_429_with_retry_after_is_not_delivered_again_before_it() {
    let hook = one_hook(ResponseTemplate::new(429).insert_header("retry-after", "8")).await;
    let (receiver, address, token, location) = hook.parts();

    receiver.until(1, Duration::from_secs(10)).await;
    let (_, read) = on_operation("GET", address, token, location).await;
    let first = &read["notification"]["attempts"][0];
    assert_eq!(
        (first["result"].as_str(), first["retry_after_s"].as_u64()),
        (Some("rate_limited"), Some(8))
    );
    assert!(
        read["notification"]["next_attempt_at"].is_string(),
        "{read}"
    );

    let got = receiver.until(2, Duration::from_secs(20)).await;
    let waited = got[1].at - got[0].at;
    assert!(
        waited >= Duration::from_secs(8),
        "delivered again after {waited:?}, before Retry-After: 8"
    );
    assert_eq!(got[0].id, got[1].id);
}

#[tokio::test]
async fn a_receiver_that_hangs_is_given_up_at_15_s_and_holds_no_operation_up() {
    let hook = one_hook(ResponseTemplate::new(200).set_delay(Duration::from_secs(60))).await;
    let (receiver, address, token, location) = hook.parts();
    receiver.until(1, Duration::from_secs(10)).await;

    // While the receiver hangs: the operation reads done, and another finishes.
    let (_, read) = on_operation("GET", address, token, location).await;
    assert_eq!(
        (
            read["done"].as_bool(),
            read["notification"]["status"].as_str()
        ),
        (Some(true), Some("pending")),
        "{read}"
    );
    let other = accept(address, token, &clockify("Orbit Analytics")).await;
    let other = until_done(address, token, &other, Duration::from_secs(10), |_| {}).await;
    assert_eq!(other["state"], "succeeded");
    assert_eq!(receiver.got().len(), 1, "the first attempt still hangs");

    // The attempt ends at the 15 s timeout, and the next one delivers.
    receiver.until(2, Duration::from_secs(30)).await;
    let done = until_delivered(address, token, location).await;
    let first = &done["notification"]["attempts"][0];
    assert_eq!(first["result"], "timeout", "{done}");
    assert!(first.get("http_status").is_none());
    let took = first["duration_ms"].as_u64().unwrap();
    assert!(
        (15_000..20_000).contains(&took),
        "the attempt took {took} ms: the timeout is 15 s"
    );
}

/// Reads the operation until its event is delivered (at most 10 s).
async fn until_delivered(address: &str, token: &str, location: &str) -> Value {
    for _ in 0..100 {
        let (_, read) = on_operation("GET", address, token, location).await;
        if read["notification"]["status"] == "delivered" {
            return read;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("not delivered within 10 s");
}

#[tokio::test]
async fn a_replica_killed_while_a_delivery_is_due_is_relieved_by_another_that_delivers_it() {
    let redis = RedisServer::start().await;
    let tool_server = MockServer::start().await;
    Tool::new(|_| Act::Create).mount(&tool_server).await;
    let (receiver, server) = Receiver::start(|n| match n {
        0 => ResponseTemplate::new(503),
        _ => ResponseTemplate::new(200),
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("webhook-secret");
    std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
    let token = token_for("test-caller");
    let start = |name: &str| {
        let port = free_port();
        let extra = format!(
            "[operations]\nencryption_key = \"{OPERATIONS_KEY}\"\n[operations.webhooks.crm]\nurl = \"{}/hooks/clients\"\nsecret_file = \"{}\"\n",
            server.uri(),
            secret_file.display()
        );
        let config = dir.path().join(format!("{name}.toml"));
        std::fs::write(
            &config,
            replica_config(port, &tool_server, &redis.url, &extra),
        )
        .unwrap();
        (port, config)
    };

    let (port, config) = start("first");
    let mut first = start_binary(&config, port, None).await;
    let first_at = format!("http://127.0.0.1:{port}");
    let location = accept(&first_at, &token, &notifying("Nova Consulting Ltd", "crm")).await;
    receiver.until(1, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    first.signal("KILL");
    let _ = first.wait();

    let (port, config) = start("second");
    let _second = start_binary(&config, port, None).await;
    let second_at = format!("http://127.0.0.1:{port}");
    // Due 2.5–5 s after the first attempt; or, if the replica died before it recorded it,
    // taken over after the queue's lease (the deadline and 30 s).
    let got = receiver.until(2, Duration::from_secs(60)).await;
    assert_eq!(got[0].id, got[1].id);
    reference_verifies(SECRET, &got[1]).unwrap();
    let read = until_delivered(&second_at, &token, &location).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(receiver.got().len(), 2, "delivered once: {read}");
}

#[tokio::test]
async fn a_generated_password_is_in_the_event_once_with_include_credentials_and_never_without() {
    let (plain, plain_at) = Receiver::start(|_| ResponseTemplate::new(200)).await;
    let (with, with_at) = Receiver::start(|_| ResponseTemplate::new(200)).await;
    let mocks = Mocks::start().await;
    let plusvibe = fixtures()
        .into_iter()
        .find(|f| f.name == "plusvibe")
        .unwrap();
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(plusvibe.created())
        .mount(mocks.of(plusvibe.id))
        .await;
    let password = plusvibe.generated_password.unwrap();
    let mut s = settings(&mocks, None);
    hook(&mut s, "plain", &plain_at.uri(), SECRET, false);
    hook(&mut s, "with", &with_at.uri(), SECRET, true);
    let address = spawn_gateway(&s).await;
    let token = token_for("test-caller");
    let body = |webhook: &str| {
        let mut body = plusvibe.minimal_request();
        body["notify"] = json!(webhook);
        body
    };

    // Without: redacted in the event, shown by the first GET.
    let location = accept(&address, &token, &body("plain")).await;
    let event = plain.until(1, Duration::from_secs(10)).await.remove(0);
    let text = String::from_utf8(event.body.clone()).unwrap();
    assert!(!text.contains(password), "{text}");
    assert_eq!(
        event.json()["data"]["results"]["plusvibe"]["credentials"]["password"],
        "[redacted]"
    );
    let (_, read) = on_operation("GET", &address, &token, &location).await;
    assert_eq!(
        read["results"]["plusvibe"]["credentials"]["password"],
        password
    );

    // With: in the event once, never in a GET, before or after it is delivered.
    let location = accept(&address, &token, &body("with")).await;
    let mut reads = Vec::new();
    while with.got().is_empty() {
        reads.push(on_operation("GET", &address, &token, &location).await.1);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let event = with.until(1, Duration::from_secs(10)).await.remove(0);
    reference_verifies(SECRET, &event).unwrap();
    let text = String::from_utf8(event.body.clone()).unwrap();
    assert_eq!(text.matches(password).count(), 1, "{text}");
    assert_eq!(
        event.json()["data"]["results"]["plusvibe"]["credentials"]["password"],
        password
    );
    reads.push(until_delivered(&address, &token, &location).await);
    reads.push(on_operation("GET", &address, &token, &location).await.1);
    for read in &reads {
        assert!(!read.to_string().contains(password), "{read}");
    }
}

#[tokio::test]
async fn notify_naming_no_configured_webhook_is_a_422_and_nothing_is_accepted() {
    let redis = RedisServer::start().await;
    let (receiver, server) = Receiver::start(|_| ResponseTemplate::new(200)).await;
    let mocks = Mocks::start().await;
    let mut s = settings(&mocks, Some(&redis.url));
    hook(&mut s, "crm", &server.uri(), SECRET, false);
    let address = spawn_gateway(&s).await;
    let token = token_for("test-caller");
    mocks.expect_no_calls().await;

    let cases = [
        (
            "respond-async",
            json!("https://attacker.example/hook"),
            "names no configured webhook: one of crm",
        ),
        ("respond-async", json!("CRM"), "names no configured webhook"),
        ("respond-async", json!(5), "invalid type"),
        ("", json!("crm"), "Prefer: respond-async"),
    ];
    for (prefer, notify, detail) in cases {
        let mut body = clockify("Nova Consulting Ltd");
        body["notify"] = notify.clone();
        let response = post_async(&address, &token, prefer, None, &body).await;
        let problem = assert_problem(response, 422).await;
        assert_eq!(pointers(&problem), ["/notify"], "{notify}: {problem}");
        assert!(problem.to_string().contains(detail), "{notify}: {problem}");
    }
    let kept: Vec<String> = redis.run(&["KEYS", "clients-gateway:op:*"]).await;
    assert!(kept.is_empty(), "an operation was stored: {kept:?}");
    assert!(receiver.got().is_empty());

    // Without webhooks, the problem says none is configured.
    let (address, _mocks) = gateway(|_| {}).await;
    let response = post_async(
        &address,
        &token,
        "respond-async",
        None,
        &notifying("Nova", "crm"),
    )
    .await;
    let problem = assert_problem(response, 422).await;
    assert!(problem.to_string().contains("none configured"), "{problem}");
}

#[test]
fn check_config_refuses_a_malformed_secret_naming_the_key_and_never_the_value() {
    let webhook = |secret: &str| {
        format!("[operations.webhooks.crm]\nurl = \"https://crm.example/hooks\"\nsecret = \"{secret}\"\n")
    };
    // 16 bytes (too short), and no `whsec_` prefix.
    for (secret, shown) in [
        ("whsec_dG9vLXNob3J0LXNlY3JldA==", "dG9vLXNob3J0LXNlY3JldA"),
        ("my-webhook-password-1234567890", "my-webhook-password"),
    ] {
        let (_dir, config) = binary_config_file(free_port(), &webhook(secret));
        let out = check_config(&config, &[]);
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.status.success(), "{said}");
        assert!(
            said.contains("operations.webhooks.crm.secret: line 1"),
            "{said}"
        );
        assert!(!said.contains(shown), "the secret shown: {said}");
    }
    // Credentials in the URL: refused, not shown.
    let with_password =
        webhook(SECRET).replace("https://crm.example", "https://crm:Hunter2pw@crm.example");
    let (_dir, config) = binary_config_file(free_port(), &with_password);
    let out = check_config(&config, &[]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && said.contains("operations.webhooks.crm.url: credentials"),
        "{said}"
    );
    assert!(!said.contains("Hunter2pw"), "{said}");
    let (_dir, config) = binary_config_file(free_port(), &webhook(SECRET));
    let out = check_config(&config, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("(webhooks: crm)"), "{said}");
    assert!(
        !said.contains(SECRET.trim_start_matches("whsec_")),
        "{said}"
    );
}

#[tokio::test]
async fn an_event_stopped_or_delivered_is_sent_again_on_request_with_the_same_id() {
    let hook = one_hook(ResponseTemplate::new(410)).await;
    let (receiver, address, token, location) = hook.parts();
    let (token, location) = (token.to_owned(), location.to_owned());
    let resend = |token: String, location: String| {
        let address = address.to_owned();
        async move {
            reqwest::Client::new()
                .post(format!("{address}{location}/notification"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
        }
    };
    receiver.until(1, Duration::from_secs(10)).await;
    let mut read = Value::Null;
    for _ in 0..50 {
        read = on_operation("GET", address, &token, &location).await.1;
        if read["notification"]["status"] == "stopped" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(read["notification"]["status"], "stopped", "{read}");

    // Stopped by a 410: sent again on request, the same event, its attempts kept.
    let response = resend(token.clone(), location.clone()).await;
    assert_eq!(response.status().as_u16(), 202);
    let queued: Value = response.json().await.unwrap();
    assert_eq!(queued["notification"]["status"], "pending", "{queued}");
    let got = receiver.until(2, Duration::from_secs(10)).await;
    assert_eq!(got[0].id, got[1].id);
    assert_eq!(got[0].body, got[1].body);
    reference_verifies(SECRET, &got[1]).unwrap();
    let done = until_delivered(address, &token, &location).await;
    assert_eq!(done["notification"]["attempt_count"], 2, "{done}");
    assert_eq!(done["notification"]["attempts"][0]["result"], "gone");

    // Delivered: sent again too (a receiver that lost it); another caller, or an id nobody
    // was given, gets 404; an operation without a webhook, 409.
    assert_eq!(
        resend(token.clone(), location.clone())
            .await
            .status()
            .as_u16(),
        202
    );
    receiver.until(3, Duration::from_secs(10)).await;
    let stranger = resend(token_for("another-caller"), location.clone()).await;
    assert_problem(stranger, 404).await;
    let unknown = format!("/clients/operations/{}", uuid::Uuid::now_v7());
    assert_problem(resend(token.clone(), unknown).await, 404).await;
    let plain = accept(address, &token, &clockify("Orbit Analytics")).await;
    let problem = assert_problem(resend(token.clone(), plain).await, 409).await;
    assert_eq!(
        problem["type"],
        "urn:clients-gateway:problem:notification-not-resendable"
    );
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("names no webhook"),
        "{problem}"
    );
}
