//! Every adapter against a provider that misbehaves: slow, 5xx, HTML, empty, invalid JSON,
//! connection reset, connection refused. Each becomes a normalized per-target result.

use std::time::Duration;

use serde_json::{json, Value};
use url::Url;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::*;

/// (target, create path on its mock, options)
const PROVIDERS: [(&str, &str); 5] = [
    ("lucca", "/timmi-project/api/v4/clients"),
    (
        "clockify",
        "/api/v1/workspaces/64a687e29ae1f428e7ebe303/clients",
    ),
    ("plusvibe", "/api/v1/client"),
    ("chatdash", "/v1/public/clients"),
    ("missionx", "/v2/clients"),
];

fn options(provider: &str) -> Value {
    match provider {
        "chatdash" => json!({"member": {"login_id": "nova"}}),
        _ => json!({}),
    }
}

fn server<'a>(app: &'a TestApp, provider: &str) -> &'a MockServer {
    match provider {
        "lucca" => &app.mocks.lucca,
        "clockify" => &app.mocks.clockify,
        "plusvibe" => &app.mocks.plusvibe,
        "chatdash" => &app.mocks.chatdash,
        _ => &app.mocks.missionx,
    }
}

/// Each provider answering `response`; returns each provider's result.
async fn each_answering(response: ResponseTemplate, timeout_ms: u64) -> Vec<(&'static str, Value)> {
    let mut out = Vec::new();
    for (provider, create_path) in PROVIDERS {
        let app = spawn_app_with(|s| {
            let p = &mut s.providers;
            p.lucca.timeout_ms = timeout_ms;
            p.clockify.timeout_ms = timeout_ms;
            p.plusvibe.timeout_ms = timeout_ms;
            p.chatdash.timeout_ms = timeout_ms;
            p.missionx.timeout_ms = timeout_ms;
        })
        .await;
        mount_missionx_token(&app.mocks.missionx).await;
        Mock::given(method("POST"))
            .and(path(create_path))
            .respond_with(response.clone())
            .expect(1)
            .mount(server(&app, provider))
            .await;
        let answer = app.create(&one_target(provider, options(provider))).await;
        out.push((provider, answer["results"][provider].clone()));
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

fn point(settings: &mut clients_gateway::config::Settings, provider: &str, base: &str) {
    let url = |suffix: &str| Url::parse(&format!("{base}{suffix}")).unwrap();
    let p = &mut settings.providers;
    match provider {
        "lucca" => p.lucca.base_url = url(""),
        "clockify" => p.clockify.base_url = url("/api"),
        "plusvibe" => p.plusvibe.base_url = url("/api/v1"),
        "chatdash" => p.chatdash.base_url = url("/v1/public"),
        _ => p.missionx.base_url = url("/v2"),
    }
}

#[tokio::test]
async fn a_connection_cut_after_sending_is_unknown() {
    for (provider, _) in PROVIDERS {
        let (address, seen) = hang_up_server().await;
        let app = spawn_app_with(|s| point(s, provider, &address)).await;
        mount_missionx_token(&app.mocks.missionx).await;
        let answer = app.create(&one_target(provider, options(provider))).await;
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
    for (provider, _) in PROVIDERS {
        let address = closed_address();
        let app = spawn_app_with(|s| point(s, provider, &address)).await;
        mount_missionx_token(&app.mocks.missionx).await;
        let answer = app.create(&one_target(provider, options(provider))).await;
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
