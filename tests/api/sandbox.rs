//! The sandbox providers through the real gateway: what a new user sees with `--sandbox`.

use clients_gateway::config::Settings;
use clients_gateway::sandbox::{Sandbox, SandboxOptions};
use clients_gateway::startup::Application;
use secrecy::SecretString;
use serde_json::json;

use crate::helpers::*;

pub async fn sandbox_app(change: impl FnOnce(&mut Settings)) -> (String, String, Sandbox) {
    let sandbox = Sandbox::start(SandboxOptions::default()).unwrap();
    let mut settings = Settings::default();
    settings.server.bind = "127.0.0.1:0".into();
    settings.server.workers = Some(1);
    settings.auth.hs256_secret = Some(SecretString::from(JWT_SECRET));
    sandbox.configure(&mut settings);
    change(&mut settings);
    let app = Application::build(&settings).unwrap();
    let address = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    let token = clients_gateway::auth::mint(
        &SecretString::from(JWT_SECRET),
        &settings.auth,
        "sandbox-test",
        "clients:write",
        std::time::Duration::from_secs(60),
    )
    .unwrap();
    (address, token, sandbox)
}

pub async fn post(address: &str, token: &str, body: &serde_json::Value) -> serde_json::Value {
    let response = reqwest::Client::new()
        .post(format!("{address}/clients"))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap();
    assert_207(response).await
}

#[tokio::test]
async fn creates_in_all_five_then_reports_the_documented_duplicates() {
    let (address, token, _sandbox) = sandbox_app(|_| {}).await;

    let first = post(&address, &token, &full_body()).await;
    assert_eq!(first["outcome"], "succeeded", "{first}");
    for f in fixtures() {
        assert_eq!(first["results"][f.name]["status"], "created", "{}", f.name);
    }

    let second = post(&address, &token, &full_body()).await;
    assert_eq!(second["outcome"], "partial");
    for f in fixtures().iter().filter(|f| f.duplicate.is_some()) {
        let p = f.name;
        assert_eq!(second["results"][p]["status"], "failed", "{p}");
        assert_eq!(second["results"][p]["error"]["kind"], "conflict", "{p}");
    }
    for f in fixtures().iter().filter(|f| f.duplicate.is_none()) {
        assert_eq!(
            second["results"][f.name]["status"], "created",
            "{} documents no uniqueness rule",
            f.name
        );
    }
}

#[tokio::test]
async fn wrong_credentials_get_each_providers_own_401() {
    let (address, token, _sandbox) = sandbox_app(|s| {
        for f in fixtures() {
            (f.break_credentials)(&mut s.providers);
        }
    })
    .await;
    let body = post(&address, &token, &full_body()).await;
    assert_eq!(body["outcome"], "failed");
    for f in fixtures() {
        let p = f.name;
        let r = &body["results"][p];
        assert_eq!(r["status"], "failed", "{p}: {r}");
        assert_eq!(r["error"]["kind"], f.wrong_credentials, "{p}");
    }
    assert_eq!(
        body["results"]["lucca"]["error"]["provider_error"]["status"],
        401
    );
    assert_eq!(
        body["results"]["clockify"]["error"]["provider_error"]["code"],
        4003
    );
    assert_eq!(
        body["results"]["chatdash"]["error"]["provider_error"]["error"],
        "Invalid API key"
    );
}

#[tokio::test]
async fn the_sandbox_enforces_required_fields_the_gateway_does_not_know() {
    let (address, token, _sandbox) = sandbox_app(|_| {}).await;
    let targets: serde_json::Map<String, serde_json::Value> = fixtures()
        .iter()
        .filter(|f| f.name_alone)
        .map(|f| (f.name.to_owned(), json!({})))
        .collect();
    let body = json!({"client": {"name": "Solo"}, "targets": targets});
    let answer = post(&address, &token, &body).await;
    assert_eq!(answer["outcome"], "succeeded", "{answer}");
    assert_eq!(answer["results"]["lucca"]["response"]["code"], "SOLO");
}
