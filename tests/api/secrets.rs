//! Secret hygiene end to end: the real binary, every secret set to a recognizable marker, logs at
//! `trace`; no marker may appear in a log line or in a dry-run answer, and generated passwords
//! appear only in the one answer that created them.

use std::time::Duration;

use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::helpers::*;

const MARKERS: [&str; 9] = [
    "MARKER-LUCCA-KEY-7f3a",
    "MARKER-CLOCKIFY-KEY-81bc",
    "MARKER-PLUSVIBE-KEY-2d4e",
    "MARKER-CHATDASH-KEY-9a0f",
    "MARKER-MISSIONX-SECRET-55e1",
    "MARKER-MISSIONX-TOKEN-c3d2",
    "MARKER-HS256-KEY-0123456789abcdef0123",
    "MARKER-REDIS-PASS-66aa",
    "MARKER-PLUSVIBE-PASSWORD-4b4b",
];

#[tokio::test]
async fn no_secret_reaches_a_log_line_or_a_dry_run() {
    let [lucca_key, clockify_key, plusvibe_key, chatdash_key, mx_secret, mx_token, hs256, redis_pass, pv_password] =
        MARKERS;
    let redis = RedisServer::start_with(&["--requirepass", redis_pass]).await;
    let redis_url = redis
        .url
        .replace("redis://", &format!("redis://:{redis_pass}@"));
    let mocks = Mocks::start().await;
    let ok = |status: u16, body: Value| ResponseTemplate::new(status).set_body_json(body);
    Mock::given(method("POST"))
        .respond_with(ok(201, json!({"id": 1})))
        .mount(&mocks.lucca)
        .await;
    Mock::given(method("POST"))
        .respond_with(ok(201, json!({"id": "c"})))
        .mount(&mocks.clockify)
        .await;
    Mock::given(method("POST"))
        .respond_with(ok(
            200,
            json!({"client_id": "p", "email": "nova.smith@nova.example", "password": pv_password}),
        ))
        .mount(&mocks.plusvibe)
        .await;
    Mock::given(method("POST"))
        .respond_with(ok(200, json!({"message": "ok"})))
        .mount(&mocks.chatdash)
        .await;
    Mock::given(method("POST"))
        .and(path("/v2/auth/token"))
        .respond_with(ok(
            200,
            json!({"access_token": mx_token, "expires_in": 3600}),
        ))
        .mount(&mocks.missionx)
        .await;
    Mock::given(method("POST"))
        .and(path("/v2/clients"))
        .respond_with(ok(200, json!({"_id": "m"})))
        .mount(&mocks.missionx)
        .await;

    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("chatdash.key"), format!("{chatdash_key}\n")).unwrap();
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[server]
bind = "127.0.0.1:{port}"
workers = 1
[auth]
hs256_secret = "{hs256}"
[idempotency]
redis_url = "{redis_url}"
[telemetry]
log_level = "trace"
[providers.lucca]
base_url = "{lucca}"
api_key = "{lucca_key}"
organization_id = 12
[providers.clockify]
base_url = "{clockify}/api"
api_key = "{clockify_key}"
workspace_id = "64a687e29ae1f428e7ebe303"
[providers.plusvibe]
base_url = "{plusvibe}/api/v1"
api_key = "{plusvibe_key}"
workspace_id = "65f99a0dd96fae8ab61130c0"
[providers.chatdash]
base_url = "{chatdash}/v1/public"
api_key_file = "{chatdash_file}"
[providers.missionx]
base_url = "{missionx}/v2"
token_url = "{missionx}/v2/auth/token"
client_id = "gateway"
client_secret = "{mx_secret}"
org_id = "org"
"#,
            lucca = mocks.lucca.uri(),
            clockify = mocks.clockify.uri(),
            plusvibe = mocks.plusvibe.uri(),
            chatdash = mocks.chatdash.uri(),
            missionx = mocks.missionx.uri(),
            chatdash_file = dir.path().join("chatdash.key").display(),
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.path().join("gateway.log")).unwrap();
    let mut child = start_binary(&config, port, Some(log)).await;

    let address = format!("http://127.0.0.1:{port}");
    let token = clients_gateway::auth::mint(
        &hs256.to_owned().into(),
        &Default::default(),
        "hygiene",
        "clients:write",
        Duration::from_secs(60),
    )
    .unwrap();
    let http = reqwest::Client::new();
    let body = full_body();

    let (status, dry) = {
        let response = http
            .post(format!("{address}/clients?dry_run=true"))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    };
    assert_eq!(status, 207);
    let (status, first) = post_keyed(&http, &address, &token, Some("hygiene-1"), &body).await;
    assert_eq!(status, 207, "{first}");
    assert_eq!(first["outcome"], "succeeded", "{first}");
    let (_, replay) = post_keyed(&http, &address, &token, Some("hygiene-1"), &body).await;
    let (status, _) = post_keyed(&http, &address, &format!("{token}x"), None, &body).await;
    assert_eq!(status, 401);

    let generated = first["results"]["chatdash"]["credentials"]["password"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        first["results"]["plusvibe"]["credentials"]["password"], pv_password,
        "shown once"
    );

    terminate(&mut child).await;
    let logs = std::fs::read_to_string(dir.path().join("gateway.log")).unwrap();
    assert!(
        logs.contains("clients request finished"),
        "the logs were captured"
    );
    assert!(logs.lines().count() > 50, "trace level logs a lot");
    assert!(
        !logs.contains("Unable to write an event"),
        "every line, the shutdown's included, reaches the log; the end of the log:\n{}",
        logs.lines().rev().take(12).collect::<Vec<_>>().join("\n")
    );

    let mut secrets: Vec<&str> = MARKERS.to_vec();
    secrets.push(&generated);
    secrets.push(&token);
    for secret in &secrets {
        assert!(!logs.contains(secret), "{secret} appears in the logs");
        assert!(!dry.contains(secret), "{secret} appears in the dry run");
    }
    let replay = replay.to_string();
    for secret in [generated.as_str(), pv_password] {
        assert!(!replay.contains(secret), "{secret} appears in the replay");
    }
}
