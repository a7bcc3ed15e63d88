//! `/metrics` in the Prometheus text format, with the per-provider series after a request.

use clients_gateway::catalog::ProviderId;
use serde_json::json;
use wiremock::matchers::method;
use wiremock::{Mock, ResponseTemplate};

use crate::helpers::*;

#[tokio::test]
async fn per_provider_series_appear_after_a_request() {
    let app = spawn_app().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 5})))
        .mount(&app.mocks.lucca)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&app.mocks.clockify)
        .await;
    // Its 503s are read as `failed` once a lookup shows nothing was created.
    fixture(ProviderId::Clockify)
        .mount_not_found(&app.mocks)
        .await;
    let body = json!({"client": {"name": "Metrics Co"}, "targets": {"lucca": {}, "clockify": {}}});
    app.create(&body).await;

    let response = app
        .http
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let text = response.text().await.unwrap();
    for series in [
        r#"clients_gateway_provider_results_total{provider="lucca",status="created",kind="none"}"#,
        r#"clients_gateway_provider_results_total{provider="clockify",status="failed",kind="unavailable"}"#,
        r#"clients_gateway_provider_duration_seconds_bucket{provider="lucca",status="created",le="0.005"}"#,
        r#"clients_gateway_provider_duration_seconds_count{provider="clockify",status="failed"}"#,
        r#"http_requests_total{route="/clients",method="POST",status="207"}"#,
        "clients_gateway_fanouts_in_flight",
        "# TYPE clients_gateway_provider_duration_seconds histogram",
    ] {
        assert!(text.contains(series), "{series} missing from:\n{text}");
    }
}

/// The circuit state of one provider, as the real binary exports it (the metrics recorder is the
/// process's own, so no other test's gateway writes the same series).
#[tokio::test]
async fn the_circuit_state_is_exported() {
    let clockify = wiremock::MockServer::start().await;
    answer_first_then(
        &clockify,
        None,
        ResponseTemplate::new(500),
        1,
        ResponseTemplate::new(201).set_body_json(json!({"id": "c1"})),
        1,
    )
    .await;
    let port = free_port();
    let (_dir, config) = binary_config_file(
        port,
        &format!(
            "[providers.clockify]\nbase_url = \"{}/api\"\napi_key = \"{CLOCKIFY_KEY}\"\n\
                 workspace_id = \"{CLOCKIFY_WORKSPACE}\"\ncircuit_failure_threshold = 1\n\
                 circuit_cooldown_ms = 300\n",
            clockify.uri()
        ),
    );
    let mut child = start_binary(&config, port, None).await;
    let address = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let state = || async {
        let text = http
            .get(format!("{address}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find(|l| l.starts_with(r#"clients_gateway_circuit_state{provider="clockify"}"#))
            .map(|l| l.rsplit(' ').next().unwrap().to_owned())
    };
    let token = token_for("circuit");
    let body = one_target("clockify", json!({}));

    assert_eq!(state().await.as_deref(), Some("0"), "closed");
    post_keyed(&http, &address, &token, None, &body).await;
    assert_eq!(state().await.as_deref(), Some("2"), "open");
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    post_keyed(&http, &address, &token, None, &body).await;
    assert_eq!(state().await.as_deref(), Some("0"), "closed again");
    terminate(&mut child).await;
}
