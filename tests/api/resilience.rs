//! Retries only where the provider cannot have acted; circuit breaker; outbound quota;
//! connection slots.

use std::time::{Duration, Instant};

use clients_gateway::catalog::ProviderId;
use futures_util::future::join_all;
use serde_json::json;
use url::Url;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::*;

const CLOCKIFY: &str = "/api/v1/workspaces/64a687e29ae1f428e7ebe303/clients";

fn clockify_body() -> serde_json::Value {
    one_target("clockify", json!({}))
}

#[tokio::test]
async fn a_refused_connection_is_retried_and_then_succeeds() {
    // The provider's port is closed at first and opens while the gateway backs off.
    let address = format!("127.0.0.1:{}", free_port());
    let app = spawn_app_with(|s| {
        let c = &mut s.providers.clockify;
        c.base_url = Url::parse(&format!("http://{address}/api")).unwrap();
        c.max_attempts = 6;
        c.retry_base_delay_ms = 150;
        c.retry_max_delay_ms = 400;
    })
    .await;
    let opener = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let listener = std::net::TcpListener::bind(address).unwrap();
        let server = MockServer::builder().listener(listener).start().await;
        Mock::given(method("POST"))
            .and(path(CLOCKIFY))
            .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": "c1"})))
            .expect(1)
            .mount(&server)
            .await;
        server
    });

    let answer = app.create(&clockify_body()).await;
    let server = opener.await.unwrap();

    let r = &answer["results"]["clockify"];
    assert_eq!(r["status"], "created", "{r}");
    assert!(r["attempts"].as_u64().unwrap() >= 2, "{r}");
    drop(server);
}

#[tokio::test]
async fn a_503_with_retry_after_is_retried_after_the_delay() {
    let app = spawn_app().await;
    // Sent again once a lookup shows the 503 created nothing.
    fixture(ProviderId::Clockify)
        .mount_not_found(&app.mocks)
        .await;
    answer_first_then(
        &app.mocks.clockify,
        Some(CLOCKIFY),
        ResponseTemplate::new(503).insert_header("retry-after", "1"),
        1,
        ResponseTemplate::new(201).set_body_json(json!({"id": "c1"})),
        1,
    )
    .await;

    let started = Instant::now();
    let answer = app.create(&clockify_body()).await;

    let r = &answer["results"]["clockify"];
    assert_eq!(r["status"], "created", "{r}");
    assert_eq!(r["attempts"], 2);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After honoured"
    );
}

#[tokio::test]
async fn a_429_whose_retry_after_exceeds_the_budget_is_not_waited_for() {
    let app = spawn_app().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "60"))
        .expect(1)
        .mount(&app.mocks.clockify)
        .await;
    let started = Instant::now();
    let answer = app.create(&clockify_body()).await;
    let r = &answer["results"]["clockify"];
    assert_eq!(r["status"], "failed");
    assert_eq!(r["error"]["kind"], "rate_limited");
    assert_eq!(r["error"]["retry_after_s"], 60);
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn a_timeout_is_not_retried() {
    let app = spawn_app_with(|s| {
        s.providers.clockify.timeout_ms = 300;
        s.providers.clockify.max_attempts = 5;
    })
    .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201).set_delay(Duration::from_secs(2)))
        .expect(1)
        .mount(&app.mocks.clockify)
        .await;
    let answer = app.create(&clockify_body()).await;
    let r = &answer["results"]["clockify"];
    assert_eq!(r["status"], "unknown");
    assert_eq!(r["attempts"], 1);
}

#[tokio::test]
async fn a_400_is_not_retried() {
    let app = spawn_app_with(|s| s.providers.clockify.max_attempts = 5).await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(400).set_body_json(json!({"message": "bad", "code": 1})),
        )
        .expect(1)
        .mount(&app.mocks.clockify)
        .await;
    let answer = app.create(&clockify_body()).await;
    assert_eq!(answer["results"]["clockify"]["attempts"], 1);
    assert_eq!(answer["results"]["clockify"]["error"]["kind"], "validation");
}

#[tokio::test]
async fn the_circuit_opens_after_the_threshold_and_closes_after_a_good_probe() {
    let app = spawn_app_with(|s| {
        let c = &mut s.providers.clockify;
        c.circuit_failure_threshold = 2;
        c.circuit_cooldown_ms = 500;
        c.max_attempts = 1;
    })
    .await;
    fixture(ProviderId::Clockify)
        .mount_not_found(&app.mocks)
        .await;
    answer_first_then(
        &app.mocks.clockify,
        None,
        ResponseTemplate::new(500),
        2,
        ResponseTemplate::new(201).set_body_json(json!({"id": "c1"})),
        2,
    )
    .await;

    for _ in 0..2 {
        let answer = app.create(&clockify_body()).await;
        assert_eq!(
            answer["results"]["clockify"]["error"]["kind"],
            "unavailable"
        );
    }
    let open = app.create(&clockify_body()).await;
    let r = &open["results"]["clockify"];
    assert_eq!(r["error"]["kind"], "circuit_open", "{r}");
    assert_eq!(r["attempts"], 0, "nothing sent while open");
    assert!(r["error"]["retry_after_s"].as_u64().unwrap() >= 1);

    tokio::time::sleep(Duration::from_millis(600)).await;
    let probe = app.create(&clockify_body()).await;
    assert_eq!(
        probe["results"]["clockify"]["status"], "created",
        "the probe went through"
    );
    let closed = app.create(&clockify_body()).await;
    assert_eq!(closed["results"]["clockify"]["status"], "created");
}

#[tokio::test]
async fn the_outbound_quota_refuses_past_its_allowance() {
    let app = spawn_app_with(|s| s.providers.clockify.max_per_minute = Some(2)).await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": "c1"})))
        .expect(2)
        .mount(&app.mocks.clockify)
        .await;
    for _ in 0..2 {
        let answer = app.create(&clockify_body()).await;
        assert_eq!(answer["results"]["clockify"]["status"], "created");
    }
    let answer = app.create(&clockify_body()).await;
    let r = &answer["results"]["clockify"];
    assert_eq!(r["status"], "failed");
    assert_eq!(r["error"]["kind"], "rate_limited");
    assert_eq!(r["attempts"], 0);
    assert!(r["error"]["retry_after_s"].as_u64().unwrap() >= 1);
}

#[tokio::test]
async fn max_connections_queues_the_requests_beyond_it() {
    let app = spawn_app_with(|s| s.providers.clockify.max_connections = 1).await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(json!({"id": "c1"}))
                .set_delay(Duration::from_millis(250)),
        )
        .expect(3)
        .mount(&app.mocks.clockify)
        .await;
    let body = clockify_body();
    let started = Instant::now();
    let answers = join_all((0..3).map(|_| app.create(&body))).await;
    for a in &answers {
        assert_eq!(a["results"]["clockify"]["status"], "created");
    }
    assert!(
        started.elapsed() >= Duration::from_millis(750),
        "one call at a time: {:?}",
        started.elapsed()
    );
}
