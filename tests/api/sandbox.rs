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

/// One spelling at the edge: a name sent decomposed (NFD), or with a byte-order mark or a
/// zero-width space at its edges, is the same client as the one created composed (NFC): adopt
/// finds it at every tool, and Lucca's derived code is the same.
#[tokio::test]
async fn a_name_spelt_otherwise_invisibly_is_the_same_client() {
    let (address, token, _sandbox) = sandbox_app(|_| {}).await;
    // Every provider, with the smallest options its sandbox takes.
    let targets: serde_json::Map<String, serde_json::Value> = fixtures()
        .iter()
        .map(|f| (f.name.to_owned(), (f.minimal_options)()))
        .collect();
    let body = |name: &str| {
        json!({
            "client": { "name": name, "external_id": "crm-cafe",
                "contact": { "first_name": "Nova", "last_name": "Smith", "email": "cafe@nova.example" } },
            "targets": targets,
            "if_exists": "adopt"
        })
    };
    let nfc = "Caf\u{e9} Cr\u{e8}me Ltd";
    let first = post(&address, &token, &body(nfc)).await;
    assert_eq!(first["outcome"], "succeeded", "{first}");
    let code = first["results"]["lucca"]["response"]["code"].clone();
    assert_eq!(code, "CAFÉ-CRÈME-LTD");
    for spelling in [
        "Cafe\u{301} Cre\u{300}me Ltd",
        "\u{FEFF}Caf\u{e9} Cr\u{e8}me Ltd",
        "Caf\u{e9} Cr\u{e8}me Ltd\u{200B}",
    ] {
        let again = post(&address, &token, &body(spelling)).await;
        for f in fixtures() {
            let r = &again["results"][f.name];
            assert_eq!(r["status"], "existing", "{spelling:?} at {}: {r}", f.name);
            assert_eq!(
                r["provider_client_id"], first["results"][f.name]["provider_client_id"],
                "{spelling:?} at {}",
                f.name
            );
        }
        assert_eq!(again["results"]["lucca"]["response"]["code"], code);
    }
}

/// The first request's own sequence (README): the same body twice without adopt (PlusVibe and missionX, which
/// take duplicates, then hold two), then adopt: the first client is answered, and `matches`
/// says the tool holds two.
#[tokio::test]
async fn adopt_answers_the_oldest_of_duplicates_and_how_many_there_are() {
    let (address, token, _sandbox) = sandbox_app(|_| {}).await;
    let mut body = full_body();
    body["targets"] = json!({ "plusvibe": body["targets"]["plusvibe"].clone(), "missionx": {} });
    let first = post(&address, &token, &body).await;
    // One second apart: the creation times (missionX's ids) differ.
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let second = post(&address, &token, &body).await;
    for p in ["plusvibe", "missionx"] {
        assert_ne!(
            first["results"][p]["provider_client_id"], second["results"][p]["provider_client_id"],
            "{p} took a duplicate"
        );
    }
    body["if_exists"] = json!("adopt");
    let adopted = post(&address, &token, &body).await;
    for p in ["plusvibe", "missionx"] {
        let r = &adopted["results"][p];
        assert_eq!(r["status"], "existing", "{p}: {r}");
        assert_eq!(
            r["provider_client_id"], first["results"][p]["provider_client_id"],
            "{p}: the oldest"
        );
        assert_eq!(r["matches"], 2, "{p}: {r}");
    }
}
