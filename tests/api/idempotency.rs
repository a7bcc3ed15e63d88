//! `Idempotency-Key`: retries never create twice, with the in-process store and with Redis shared
//! by two gateway instances.

use std::time::Duration;

use clients_gateway::catalog::ProviderId;
use futures_util::future::join_all;
use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::helpers::*;

const LUCCA: &str = "/timmi-project/api/v4/clients";
const CLOCKIFY: &str = "/api/v1/workspaces/64a687e29ae1f428e7ebe303/clients";
const PLUSVIBE: &str = "/api/v1/client";
const CHATDASH: &str = "/v1/public/clients";

/// Each provider creates exactly once (checked when the mocks drop), after `delay`.
async fn each_creates_once(mocks: &Mocks, delay: Duration) {
    each_creates(mocks, delay, 1).await;
}

/// 50 identical requests at once, spread over `addresses`: one run, the others 409 or replayed.
async fn fifty_at_once(addresses: &[String], token: &str) {
    let http = reqwest::Client::new();
    let body = full_body();
    let answers = join_all((0..50).map(|i| {
        let address = &addresses[i % addresses.len()];
        post_keyed(&http, address, token, Some("order-4711"), &body)
    }))
    .await;
    let mut fresh = 0;
    for (status, answer) in &answers {
        match status {
            207 => {
                assert_eq!(answer["outcome"], "succeeded", "{answer}");
                let replayed: Vec<bool> = answer["results"]
                    .as_object()
                    .unwrap()
                    .values()
                    .map(|r| r["replayed"].as_bool().unwrap())
                    .collect();
                assert_eq!(replayed.len(), fixtures().len());
                if replayed.iter().all(|r| !r) {
                    fresh += 1;
                } else {
                    assert!(replayed.iter().all(|r| *r), "{answer}");
                }
            }
            409 => assert_eq!(
                answer["type"],
                "urn:clients-gateway:problem:idempotency-key-in-flight"
            ),
            other => panic!("unexpected {other}: {answer}"),
        }
    }
    assert_eq!(fresh, 1, "exactly one request ran the fan-out");
    let conflicts = answers.iter().filter(|(s, _)| *s == 409).count();
    assert!(
        conflicts > 0,
        "requests during the first one's fan-out get 409"
    );
}

#[tokio::test]
async fn fifty_concurrent_requests_with_one_key_create_once_in_process() {
    let app = spawn_app().await;
    each_creates_once(&app.mocks, Duration::from_millis(400)).await;
    fifty_at_once(std::slice::from_ref(&app.address), &app.token).await;
}

#[tokio::test]
async fn fifty_concurrent_requests_on_two_replicas_sharing_redis_create_once() {
    let redis = RedisServer::start().await;
    let url = redis.url.clone();
    let app = spawn_app_with(|s| s.idempotency.redis_url = Some(url.into())).await;
    let mut settings = test_settings(&app.mocks);
    settings.idempotency.redis_url = Some(redis.url.clone().into());
    let second = spawn_gateway(&settings).await;
    each_creates_once(&app.mocks, Duration::from_millis(400)).await;

    fifty_at_once(&[app.address.clone(), second.clone()], &app.token).await;

    // After the run, either replica replays the record.
    let http = reqwest::Client::new();
    let (status, answer) =
        post_keyed(&http, &second, &app.token, Some("order-4711"), &full_body()).await;
    assert_eq!(status, 207);
    assert_eq!(answer["results"]["lucca"]["replayed"], true);
}

#[tokio::test]
async fn a_replay_sends_only_the_failed_targets_again() {
    let app = spawn_app().await;
    Mock::given(method("POST"))
        .and(path(LUCCA))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 7})))
        .expect(1)
        .mount(&app.mocks.lucca)
        .await;
    answer_first_then(
        &app.mocks.clockify,
        Some(CLOCKIFY),
        ResponseTemplate::new(500).set_body_json(json!({"message": "boom", "code": 1})),
        1,
        ResponseTemplate::new(201).set_body_json(json!({"id": "c2"})),
        1,
    )
    .await;
    // The 500 does not prove nothing was created: a lookup shows it, before the replay sends
    // the create again.
    fixture(ProviderId::Clockify)
        .mount_not_found(&app.mocks)
        .await;
    let body = json!({"client": minimal_client(), "targets": {"lucca": {}, "clockify": {}}});

    let send = || {
        post_keyed(
            &app.http,
            &app.address,
            &app.token,
            Some("k-partial"),
            &body,
        )
    };
    let (s1, first) = send().await;
    let (s2, second) = send().await;
    let (s3, third) = send().await;

    assert_eq!((s1, s2, s3), (207, 207, 207));
    assert_eq!(first["outcome"], "partial");
    assert_eq!(first["results"]["clockify"]["status"], "failed");
    assert_eq!(second["outcome"], "succeeded");
    assert_eq!(
        second["operation_id"], first["operation_id"],
        "the same operation"
    );
    assert_eq!(second["results"]["lucca"]["replayed"], true);
    assert_eq!(second["results"]["lucca"]["provider_client_id"], "7");
    assert_eq!(second["results"]["clockify"]["replayed"], false);
    assert_eq!(second["results"]["clockify"]["provider_client_id"], "c2");
    assert_eq!(
        third["results"]["clockify"]["replayed"], true,
        "now settled"
    );
}

#[tokio::test]
async fn an_unknown_target_is_not_sent_again() {
    let app = spawn_app_with(|s| s.providers.plusvibe.timeout_ms = 300).await;
    Mock::given(method("POST"))
        .and(path(PLUSVIBE))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(2)))
        .expect(1)
        .mount(&app.mocks.plusvibe)
        .await;
    let body = one_target("plusvibe", json!({}));
    let (_, first) = post_keyed(
        &app.http,
        &app.address,
        &app.token,
        Some("k-unknown"),
        &body,
    )
    .await;
    let (status, again) = post_keyed(
        &app.http,
        &app.address,
        &app.token,
        Some("k-unknown"),
        &body,
    )
    .await;
    assert_eq!(first["results"]["plusvibe"]["status"], "unknown");
    assert_eq!(status, 207);
    let r = &again["results"]["plusvibe"];
    assert_eq!(r["status"], "unknown");
    assert_eq!(r["replayed"], true);
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not sent again"),
        "{r}"
    );
}

#[tokio::test]
async fn generated_passwords_are_shown_once_and_redacted_on_replay() {
    let app = spawn_app().await;
    Mock::given(method("POST"))
        .and(path(CHATDASH))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"message": "ok"})))
        .expect(1)
        .mount(&app.mocks.chatdash)
        .await;
    let body = one_target("chatdash", json!({"member": {"login_id": "nova"}}));
    let (_, first) = post_keyed(&app.http, &app.address, &app.token, Some("k-pw"), &body).await;
    let (_, replay) = post_keyed(&app.http, &app.address, &app.token, Some("k-pw"), &body).await;
    let password = first["results"]["chatdash"]["credentials"]["password"]
        .as_str()
        .unwrap();
    assert_eq!(password.len(), 20);
    assert_eq!(
        replay["results"]["chatdash"]["credentials"]["password"],
        "[redacted]"
    );
    assert!(!replay.to_string().contains(password));
}

#[tokio::test]
async fn the_same_key_with_another_body_is_a_422() {
    let app = spawn_app().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 1})))
        .expect(1)
        .mount(&app.mocks.lucca)
        .await;
    let body = json!({"client": {"name": "A"}, "targets": {"lucca": {}}});
    let (s1, _) = post_keyed(&app.http, &app.address, &app.token, Some("k-body"), &body).await;
    let other = json!({"client": {"name": "B"}, "targets": {"lucca": {}}});
    let (s2, problem) =
        post_keyed(&app.http, &app.address, &app.token, Some("k-body"), &other).await;
    assert_eq!((s1, s2), (207, 422));
    assert_eq!(
        problem["type"],
        "urn:clients-gateway:problem:idempotency-key-reused"
    );
    // Key order and formatting do not make another body.
    let reordered: Value =
        serde_json::from_str(r#"{"targets":{"lucca":{}},"client":{"name":"A"}}"#).unwrap();
    let (s3, _) = post_keyed(
        &app.http,
        &app.address,
        &app.token,
        Some("k-body"),
        &reordered,
    )
    .await;
    assert_eq!(s3, 207);
}

#[tokio::test]
async fn keys_are_scoped_by_caller() {
    let app = spawn_app().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 1})))
        .expect(2)
        .mount(&app.mocks.lucca)
        .await;
    let body = json!({"client": {"name": "A"}, "targets": {"lucca": {}}});
    let (a, first) = post_keyed(&app.http, &app.address, &app.token, Some("shared"), &body).await;
    let (b, second) = post_keyed(
        &app.http,
        &app.address,
        &token_for("other-app"),
        Some("shared"),
        &body,
    )
    .await;
    assert_eq!((a, b), (207, 207));
    assert_eq!(first["results"]["lucca"]["replayed"], false);
    assert_eq!(
        second["results"]["lucca"]["replayed"], false,
        "another caller's key is another key"
    );
}

#[tokio::test]
async fn a_malformed_key_is_a_400() {
    let app = spawn_app().await;
    app.mocks.expect_no_calls().await;
    let body = one_target("lucca", json!({}));
    for key in [String::new(), "x".repeat(256)] {
        let (status, problem) =
            post_keyed(&app.http, &app.address, &app.token, Some(&key), &body).await;
        assert_eq!(status, 400, "{key:?}: {problem}");
    }
}

#[tokio::test]
async fn a_redis_outage_refuses_keyed_requests_and_serves_the_others() {
    let dead = closed_address().replace("http", "redis");
    let app = spawn_app_with(|s| s.idempotency.redis_url = Some(dead.into())).await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 1})))
        .expect(1)
        .mount(&app.mocks.lucca)
        .await;
    let body = one_target("lucca", json!({}));

    let started = std::time::Instant::now();
    let (status, problem) = post_keyed(&app.http, &app.address, &app.token, Some("k"), &body).await;
    assert_eq!(status, 503, "{problem}");
    assert_eq!(
        problem["type"],
        "urn:clients-gateway:problem:store-unavailable"
    );
    assert!(started.elapsed() < Duration::from_secs(5), "fails fast");

    let (status, answer) = post_keyed(&app.http, &app.address, &app.token, None, &body).await;
    assert_eq!(status, 207, "without a key the gateway works: {answer}");

    let ready = app
        .http
        .get(format!("{}/readyz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
}

#[tokio::test]
async fn a_replica_that_died_mid_fan_out_leaves_unknowns_not_duplicates() {
    let redis = RedisServer::start().await;
    let mocks = Mocks::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 1})))
        .expect(0)
        .mount(&mocks.lucca)
        .await;
    // A claim left running by a replica that stopped: its lease has run out. The Lucca mock
    // expects no call: nothing may be re-sent blindly.
    let client = redis::Client::open(redis.url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let key = clients_gateway::idempotency::IdempotencyKey::parse(b"k-dead")
        .unwrap()
        .scoped("test-caller");
    let body = one_target("lucca", json!({}));
    let fp = clients_gateway::idempotency::fingerprint(&body);
    let _: () = redis::cmd("HSET")
        .arg(&key)
        .arg(&[
            "fp",
            fp.as_str(),
            "state",
            "running",
            "lease",
            "1",
            "owner",
            "gone",
        ])
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut settings = test_settings(&mocks);
    settings.idempotency.redis_url = Some(redis.url.clone().into());
    let address = spawn_gateway(&settings).await;

    let (status, answer) = post_keyed(
        &reqwest::Client::new(),
        &address,
        &token_for("test-caller"),
        Some("k-dead"),
        &body,
    )
    .await;

    assert_eq!(status, 207, "{answer}");
    let r = &answer["results"]["lucca"];
    assert_eq!(r["status"], "unknown");
    assert_eq!(r["error"]["kind"], "internal");
    assert!(r["error"]["message"]
        .as_str()
        .unwrap()
        .contains("interrupted"));
}

/// One key per request: two `Idempotency-Key` lines, or two keys folded into one (`k1, k2`, a
/// list), are a 400 and nothing is sent — the first-one-wins reading created a client under a
/// key the caller did not mean.
#[tokio::test]
async fn two_idempotency_keys_or_a_list_of_them_are_refused() {
    let app = spawn_app().await;
    app.mocks.expect_no_calls().await;
    let body = one_target("lucca", json!({}));
    for keys in [vec!["k1", "k2"], vec!["k1, k2"], vec![r#""k1", "k2""#]] {
        let mut request = app
            .http
            .post(format!("{}/clients", app.address))
            .bearer_auth(&app.token)
            .json(&body);
        for key in &keys {
            request = request.header("idempotency-key", *key);
        }
        let problem = assert_problem(request.send().await.unwrap(), 400).await;
        assert!(
            problem["detail"].as_str().unwrap().contains("one key"),
            "{keys:?}: {problem}"
        );
    }
}
