//! The circuit state metric. A binary of its own: the metrics recorder is process-wide, and in
//! the `api` binary other tests' gateways would write the same series concurrently.

#[path = "api/helpers.rs"]
#[allow(dead_code)]
mod helpers;

use std::time::Duration;

use helpers::*;
use serde_json::json;
use wiremock::ResponseTemplate;

async fn circuit_state(app: &TestApp) -> Option<String> {
    let text = app
        .http
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find(|l| l.starts_with(r#"clients_gateway_circuit_state{provider="clockify"}"#))
        .map(|l| l.rsplit(' ').next().unwrap().to_owned())
}

#[tokio::test]
async fn the_circuit_state_is_exported() {
    let app = spawn_app_with(|s| {
        let c = &mut s.providers.clockify;
        c.circuit_failure_threshold = 1;
        c.circuit_cooldown_ms = 300;
    })
    .await;
    answer_first_then(
        &app.mocks.clockify,
        None,
        ResponseTemplate::new(500),
        1,
        ResponseTemplate::new(201).set_body_json(json!({"id": "c1"})),
        1,
    )
    .await;
    let body = one_target("clockify", json!({}));

    assert_eq!(circuit_state(&app).await.as_deref(), Some("0"), "closed");
    app.create(&body).await;
    assert_eq!(circuit_state(&app).await.as_deref(), Some("2"), "open");
    tokio::time::sleep(Duration::from_millis(400)).await;
    app.create(&body).await;
    assert_eq!(
        circuit_state(&app).await.as_deref(),
        Some("0"),
        "closed again"
    );
}
