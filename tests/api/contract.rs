//! Contract tests: the providers' own OpenAPI documents judge the requests our adapters build.
//! Each document (`../shared/providers/000` Lucca, `002` PlusVibe, `003` ChatDash) is cut out of
//! its markdown fence and served by Prism, a spec-validating mock server that refuses a request
//! breaking the document. The gateway is pointed at it and must get the documented success.
//!
//! Prism comes from npm (`bash .ci/install-tools` puts it in `.tools/`); `PRISM` may name
//! another binary. `PROVIDER_DOCS` may name another folder of provider documents.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use url::Url;

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

fn provider_docs() -> PathBuf {
    let dir = std::env::var_os("PROVIDER_DOCS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/providers"));
    assert!(
        dir.is_dir(),
        "the provider documents are expected in {} (or set PROVIDER_DOCS)",
        dir.display()
    );
    dir
}

/// The OpenAPI document inside the first ```yaml (or ````yaml) fence of a provider file.
fn openapi_of(file: &str) -> String {
    let text = std::fs::read_to_string(provider_docs().join(file)).unwrap();
    let mut lines = text.lines();
    let fence = lines
        .by_ref()
        .find_map(|l| {
            let t = l.trim_start();
            let ticks = t.len() - t.trim_start_matches('`').len();
            (ticks >= 3 && t[ticks..].starts_with("yaml")).then(|| "`".repeat(ticks))
        })
        .unwrap_or_else(|| panic!("{file} has no yaml fence"));
    let doc: Vec<&str> = lines.take_while(|l| l.trim_end() != fence).collect();
    doc.join("\n")
}

/// A Prism mock of one document, killed when dropped.
struct PrismMock {
    _child: Spawned,
    url: String,
    _dir: tempfile::TempDir,
}

async fn start_prism(file: &str) -> PrismMock {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("openapi.yaml");
    std::fs::write(&spec, openapi_of(file)).unwrap();
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
async fn lucca_requests_match_lucca_s_openapi_document() {
    let mock = start_prism("000_e54ed4c89bd81cf7.txt").await;
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
async fn plusvibe_requests_match_plusvibe_s_openapi_document() {
    let mock = start_prism("002_6657c5504a693131.txt").await;
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
}

#[tokio::test]
async fn chatdash_requests_match_chatdash_s_openapi_document() {
    let mock = start_prism("003_40b266e7f0f6b3c6.txt").await;
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
    assert_created(&app, "chatdash", &full).await;
    assert_created(
        &app,
        "chatdash",
        &json!({"client": {"name": "Nova", "contact": {"last_name": "Smith"}}, "targets": {"chatdash": {"member": {"login_id": "n"}}}}),
    )
    .await;
}
