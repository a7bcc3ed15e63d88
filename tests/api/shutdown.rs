//! SIGTERM during a slow fan-out: the in-flight request still gets its 207, then the process
//! exits cleanly. Runs the real binary.

use std::time::Duration;

use serde_json::json;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::*;

#[tokio::test]
async fn sigterm_lets_the_in_flight_fan_out_finish() {
    let lucca = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(json!({"id": 42}))
                .set_delay(Duration::from_millis(1500)),
        )
        .expect(1)
        .mount(&lucca)
        .await;
    let port = free_port();
    let (_dir, config) = binary_config_file(
        port,
        &format!(
            r#"
shutdown_grace_s = 10
[telemetry]
log_level = "warn"
[providers.lucca]
base_url = "{}"
api_key = "{LUCCA_KEY}"
organization_id = 12
"#,
            lucca.uri()
        ),
    );
    let mut child = start_binary(&config, port, None).await;

    let address = format!("http://127.0.0.1:{port}");
    let request = tokio::spawn(async move {
        post_keyed(
            &reqwest::Client::new(),
            &address,
            &token_for("test-caller"),
            None,
            &one_target("lucca", json!({})),
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let exit = tokio::spawn(async move { terminate(&mut child).await });

    let (status, answer) = request.await.unwrap();
    assert_eq!(status, 207, "{answer}");
    assert_eq!(answer["results"]["lucca"]["status"], "created");

    let exit = exit.await.unwrap();
    assert!(exit.success(), "{exit:?}");
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err(),
        "no longer accepting"
    );
}

#[tokio::test]
async fn the_healthcheck_command_probes_liveness() {
    let app = spawn_app().await;
    // An async child process: the gateway under test runs on this test's runtime.
    let probe = |url: String| async move {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_clients-gateway"))
            .args(["healthcheck", "--url", &url])
            .output()
            .await
            .unwrap()
    };
    let up = probe(format!("{}/healthz", app.address)).await;
    assert!(up.status.success(), "{up:?}");
    let down = probe(format!("{}/healthz", closed_address())).await;
    assert!(!down.status.success());
    let wrong = probe(format!("{}/nowhere", app.address)).await;
    assert!(!wrong.status.success(), "a 404 is not healthy");
}
