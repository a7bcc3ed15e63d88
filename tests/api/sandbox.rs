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
    for p in ["lucca", "clockify", "plusvibe", "chatdash", "missionx"] {
        assert_eq!(first["results"][p]["status"], "created", "{p}");
    }

    let second = post(&address, &token, &full_body()).await;
    assert_eq!(second["outcome"], "partial");
    for p in ["lucca", "clockify", "chatdash"] {
        assert_eq!(second["results"][p]["status"], "failed", "{p}");
        assert_eq!(second["results"][p]["error"]["kind"], "conflict", "{p}");
    }
    for p in ["plusvibe", "missionx"] {
        assert_eq!(
            second["results"][p]["status"], "created",
            "{p} documents no uniqueness rule"
        );
    }
}

#[tokio::test]
async fn wrong_credentials_get_each_providers_own_401() {
    let (address, token, _sandbox) = sandbox_app(|s| {
        let p = &mut s.providers;
        p.lucca.api_key = Some("wrong".to_owned().into());
        p.clockify.api_key = Some("wrong".to_owned().into());
        p.plusvibe.api_key = Some("wrong".to_owned().into());
        p.chatdash.api_key = Some("wrong".to_owned().into());
        p.missionx.client_secret = Some("wrong".to_owned().into());
    })
    .await;
    let body = post(&address, &token, &full_body()).await;
    assert_eq!(body["outcome"], "failed");
    for p in ["lucca", "clockify", "plusvibe", "chatdash", "missionx"] {
        let r = &body["results"][p];
        assert_eq!(r["status"], "failed", "{p}: {r}");
        assert_eq!(r["error"]["kind"], "unauthorized", "{p}");
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
    let body = json!({"client": {"name": "Solo"}, "targets": {"missionx": {}, "lucca": {}}});
    let answer = post(&address, &token, &body).await;
    assert_eq!(answer["outcome"], "succeeded", "{answer}");
    assert_eq!(answer["results"]["lucca"]["response"]["code"], "SOLO");
}
