//! Contract tests: each provider's contract (`tests/contracts/<provider>.yaml`, written from
//! the provider's own reference) judges the requests our adapters build. Prism, a
//! spec-validating mock server, serves the document and refuses any request that breaks it; the
//! gateway is pointed at it and must get the documented success.
//!
//! Prism comes from npm (`bash .ci/install-tools` puts it in `.tools/`); `PRISM` may name
//! another binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use url::Url;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::*;

fn prism() -> PathBuf {
    if let Some(p) = std::env::var_os("PRISM") {
        return p.into();
    }
    let local = Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/node_modules/.bin/prism");
    if local.exists() {
        return local;
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("prism"))
        .find(|p| p.exists());
    on_path.unwrap_or_else(|| {
        panic!("Prism is needed for the contract tests: run `bash .ci/install-tools` (npm install of @stoplight/prism-cli@5.14.2 into .tools/), or set PRISM")
    })
}

/// A provider's contract, in the repository.
fn contract(provider: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/contracts/{provider}.yaml"))
}

/// A Prism mock of one document, killed when dropped.
struct PrismMock {
    _child: Spawned,
    url: String,
    _dir: tempfile::TempDir,
}

async fn start_prism(provider: &str) -> PrismMock {
    let dir = tempfile::tempdir().unwrap();
    let spec = contract(provider);
    let port = free_port();
    let log = std::fs::File::create(dir.path().join("prism.log")).unwrap();
    let child = Spawned::start(
        Command::new(prism())
            .args(["mock", "-h", "127.0.0.1", "-p", &port.to_string()])
            .arg(&spec)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null()),
    )
    .expect("Prism starts");
    let mock = PrismMock {
        _child: child,
        url: format!("http://127.0.0.1:{port}"),
        _dir: dir,
    };
    assert!(
        listens_within(port, Duration::from_secs(60)).await,
        "Prism did not listen within 60 s: {}",
        std::fs::read_to_string(mock._dir.path().join("prism.log")).unwrap_or_default()
    );
    mock
}

/// Proves the judge judges: a request breaking the document is refused.
async fn assert_refuses(mock: &PrismMock, path: &str, headers: &[(&str, &str)], body: Value) {
    let mut request = reqwest::Client::new()
        .post(format!("{}{path}", mock.url))
        .json(&body);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = request.send().await.unwrap();
    assert!(
        !response.status().is_success(),
        "Prism accepted a request that breaks the document: {body}"
    );
}

async fn assert_created(app: &TestApp, provider: &str, body: &Value) -> Value {
    let answer = app.create(body).await;
    let r = answer["results"][provider].clone();
    assert_eq!(
        r["status"], "created",
        "{provider}'s own document refused our request {body}: {r}"
    );
    r
}

#[tokio::test]
async fn lucca_requests_match_lucca_s_contract() {
    let mock = start_prism("lucca").await;
    let path = "/timmi-project/api/v4/clients";
    let auth = [("authorization", "lucca application=k")];
    assert_refuses(&mock, path, &auth, json!({"name": "N", "code": "N"})).await;
    assert_refuses(
        &mock,
        path,
        &[],
        json!({"name": "N", "code": "N", "organizationId": 1}),
    )
    .await;

    let app = spawn_app_with(|s| s.providers.lucca.base_url = Url::parse(&mock.url).unwrap()).await;
    let mut full = full_body();
    full["targets"] = json!({"lucca": {"organization_id": 12, "owner_id": 7}});
    let r = assert_created(&app, "lucca", &full).await;
    assert!(r["provider_client_id"].is_string());
    assert_created(
        &app,
        "lucca",
        &json!({"client": {"name": "Nova"}, "targets": {"lucca": {}}}),
    )
    .await;
}

#[tokio::test]
async fn clockify_requests_match_clockify_s_contract() {
    let mock = start_prism("clockify").await;
    let path = format!("/v1/workspaces/{CLOCKIFY_WORKSPACE}/clients");
    assert_refuses(&mock, &path, &[], json!({"name": "N"})).await;
    assert_refuses(
        &mock,
        &path,
        &[("x-api-key", "k")],
        json!({"name": "N", "currency": "EUR"}),
    )
    .await;

    let app =
        spawn_app_with(|s| s.providers.clockify.base_url = Url::parse(&mock.url).unwrap()).await;
    let mut full = full_body();
    full["targets"] = json!({"clockify": full["targets"]["clockify"].clone()});
    let r = assert_created(&app, "clockify", &full).await;
    assert_eq!(r["provider_client_id"], "44a687e29ae1f428e7ebe305");
    assert_created(&app, "clockify", &one_target("clockify", json!({}))).await;
}

#[tokio::test]
async fn plusvibe_requests_match_plusvibe_s_contract() {
    let mock = start_prism("plusvibe").await;
    let key = [("x-api-key", "k")];
    assert_refuses(&mock, "/client", &key, json!({"workspace_id": "w"})).await;
    assert_refuses(
        &mock,
        "/client",
        &key,
        json!({"workspace_id": "w", "client_email": "a@b.example", "client_first_name": "A",
               "client_last_name": "B", "client_business_name": "C",
               "workspaces": [{"id": "w", "permissions": "FULL_ACCESS", "hide_labels": []}]}),
    )
    .await;

    let app =
        spawn_app_with(|s| s.providers.plusvibe.base_url = Url::parse(&mock.url).unwrap()).await;
    let mut full = full_body();
    full["targets"] = json!({"plusvibe": full["targets"]["plusvibe"].clone()});
    let r = assert_created(&app, "plusvibe", &full).await;
    assert_eq!(r["provider_client_id"], "70218d5e05561a3877dcb77f");
    assert_eq!(r["credentials"]["password"], "Xp9#Ld2!ak");
    assert_created(&app, "plusvibe", &one_target("plusvibe", json!({}))).await;
    // Adopting looks the workspace up first: the list request passes the contract too (the
    // mock's example lists no client, so it is then created).
    full["if_exists"] = json!("adopt");
    assert_created(&app, "plusvibe", &full).await;
}

#[tokio::test]
async fn chatdash_requests_match_chatdash_s_contract() {
    let mock = start_prism("chatdash").await;
    let auth = [("authorization", "k")];
    let member = json!({"name": "n", "loginId": "l", "password": "p"});
    assert_refuses(
        &mock,
        "/clients",
        &auth,
        json!({"client": {"name": "n"}, "member": member}),
    )
    .await;
    assert_refuses(
        &mock,
        "/clients",
        &[],
        json!({"client": {"name": "n", "language": "en"}, "member": member}),
    )
    .await;

    let app =
        spawn_app_with(|s| s.providers.chatdash.base_url = Url::parse(&mock.url).unwrap()).await;
    let mut full = full_body();
    full["targets"] = json!({"chatdash": full["targets"]["chatdash"].clone()});
    // The create, then the list its id is resolved from (the mock's example lists no client).
    assert_created(&app, "chatdash", &full).await;
    assert_created(
        &app,
        "chatdash",
        &json!({"client": {"name": "Nova", "contact": {"last_name": "Smith"}}, "targets": {"chatdash": {"member": {"login_id": "n"}}}}),
    )
    .await;
}

#[tokio::test]
async fn missionx_requests_match_missionx_s_contract() {
    let mock = start_prism("missionx").await;
    assert_refuses(&mock, "/clients", &[], json!({"title": "N"})).await;
    assert_refuses(
        &mock,
        "/clients",
        &[("authorization", "Bearer t")],
        json!({"title": "N", "departments": ["not-an-id"]}),
    )
    .await;

    // The token endpoint's request is not documented: a mock stands in for it.
    let tokens = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v2/auth/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": MISSIONX_TOKEN, "token_type": "Bearer", "expires_in": 14400
        })))
        .mount(&tokens)
        .await;
    let app = spawn_app_with(|s| {
        s.providers.missionx.base_url = Url::parse(&mock.url).unwrap();
        s.providers.missionx.token_url =
            Url::parse(&format!("{}/v2/auth/token", tokens.uri())).unwrap();
    })
    .await;
    let mut full = full_body();
    full["targets"] = json!({"missionx": full["targets"]["missionx"].clone()});
    let r = assert_created(&app, "missionx", &full).await;
    assert_eq!(r["provider_client_id"], "6650c0ffee00000000000042");
    // Adopting looks the client up first, by the documented list.
    full["if_exists"] = json!("adopt");
    assert_created(&app, "missionx", &full).await;
}
