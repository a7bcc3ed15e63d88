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
