//! Every adapter against a provider that misbehaves: slow, 5xx, HTML, empty, invalid JSON,
//! connection reset, connection refused. Each becomes a normalized per-target result.

use std::time::Duration;

use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::helpers::*;

/// Each provider answering `response`; returns each provider's result.
async fn each_answering(response: ResponseTemplate, timeout_ms: u64) -> Vec<(&'static str, Value)> {
    let mut out = Vec::new();
    for f in fixtures() {
        let app = spawn_app_with(|s| set_timeouts(s, timeout_ms)).await;
        app.mocks.mount_support().await;
        Mock::given(method("POST"))
            .and(path(f.create_path))
            .respond_with(response.clone())
            .expect(1)
            .mount(app.mocks.of(f.id))
            .await;
        // A client its lookup can look for; the lookup finds nothing (a 5xx then created
        // nothing).
        f.mount_not_found(&app.mocks).await;
        let answer = app.create(&f.findable_request()).await;
        out.push((f.name, answer["results"][f.name].clone()));
    }
    out
}

#[tokio::test]
async fn a_slow_answer_is_unknown_after_the_target_timeout() {
    let slow = ResponseTemplate::new(201)
        .set_body_json(json!({"id": 1}))
        .set_delay(Duration::from_secs(3));
    for (provider, r) in each_answering(slow, 300).await {
        assert_eq!(r["status"], "unknown", "{provider}: {r}");
        assert_eq!(r["error"]["kind"], "timeout", "{provider}");
        assert_eq!(r["error"]["retryable"], true, "{provider}");
        assert!(
            r["error"]["message"]
                .as_str()
                .unwrap()
                .contains("may have been created"),
            "{provider}"
        );
        let ms = r["duration_ms"].as_u64().unwrap();
        assert!((300..1500).contains(&ms), "{provider}: {ms} ms");
        assert_eq!(r["attempts"], 1);
    }
}

#[tokio::test]
async fn a_5xx_without_json_is_unavailable_and_not_resent() {
    for (provider, r) in each_answering(ResponseTemplate::new(500), 2000).await {
        assert_eq!(r["status"], "failed", "{provider}: {r}");
        assert_eq!(r["error"]["kind"], "unavailable", "{provider}");
        assert_eq!(r["error"]["retryable"], true);
        assert_eq!(r["provider_status"], 500);
        assert_eq!(
            r["error"]["message"],
            "answered HTTP 500 with an empty body"
        );
        assert_eq!(r["attempts"], 1, "a 500 may have acted: never re-sent");
    }
}

#[tokio::test]
async fn an_html_error_page_is_read_as_such() {
    let html = ResponseTemplate::new(502).set_body_raw(
        "<html><body><h1>502 Bad Gateway</h1></body></html>",
        "text/html",
    );
    for (provider, r) in each_answering(html, 2000).await {
        assert_eq!(r["status"], "failed", "{provider}: {r}");
        assert_eq!(r["error"]["kind"], "unavailable");
        assert_eq!(r["provider_status"], 502);
        assert!(
            r["error"]["message"]
                .as_str()
                .unwrap()
                .contains("HTML body"),
            "{provider}: {}",
            r["error"]["message"]
        );
        assert!(r["error"].get("provider_error").is_none());
    }
}

#[tokio::test]
async fn an_empty_success_is_unknown() {
    for (provider, r) in each_answering(ResponseTemplate::new(200), 2000).await {
        assert_eq!(r["status"], "unknown", "{provider}: {r}");
        assert_eq!(r["error"]["kind"], "invalid_response");
        assert_eq!(r["provider_status"], 200);
        assert!(r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("empty body"));
    }
}

#[tokio::test]
async fn an_html_or_broken_json_success_is_unknown() {
    let html = ResponseTemplate::new(200).set_body_raw("<html>ok</html>", "text/html");
    for (provider, r) in each_answering(html, 2000).await {
        assert_eq!(r["status"], "unknown", "{provider}: {r}");
        assert_eq!(r["error"]["kind"], "invalid_response");
    }
    let broken = ResponseTemplate::new(201).set_body_raw("{\"id\": ", "application/json");
    for (provider, r) in each_answering(broken, 2000).await {
        assert_eq!(r["status"], "unknown", "{provider}: {r}");
        assert_eq!(r["error"]["kind"], "invalid_response");
        assert!(r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("invalid JSON"));
    }
}

#[tokio::test]
async fn a_connection_cut_after_sending_is_unknown() {
    for f in fixtures() {
        let provider = f.name;
        let (address, seen) = hang_up_server().await;
        let app = spawn_app_with(|s| point(s, &f, &address)).await;
        app.mocks.mount_support().await;
        let answer = app.create(&f.minimal_request()).await;
        let r = &answer["results"][provider];
        assert_eq!(r["status"], "unknown", "{provider}: {r}");
        assert_eq!(r["error"]["kind"], "unavailable");
        assert!(r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("may have been created"));
        assert!(
            *seen.lock().unwrap() >= 1,
            "{provider}: the request reached the server"
        );
    }
}

#[tokio::test]
async fn a_refused_connection_failed_and_sent_nothing() {
    for f in fixtures() {
        let provider = f.name;
        let address = closed_address();
        let app = spawn_app_with(|s| point(s, &f, &address)).await;
        app.mocks.mount_support().await;
        let answer = app.create(&f.minimal_request()).await;
        let r = &answer["results"][provider];
        assert_eq!(r["status"], "failed", "{provider}: {r}");
        assert_eq!(r["error"]["kind"], "unavailable");
        assert_eq!(r["error"]["retryable"], true);
        assert!(r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("nothing was sent"));
        assert_eq!(answer["outcome"], "failed");
    }
}
