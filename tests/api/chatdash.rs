//! ChatDash adapter, against a mock of its documented API.

use serde_json::{json, Value};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::helpers::*;

const PATH: &str = "/v1/public/clients";

fn created() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({"message": "Client created successfully"}))
}

#[tokio::test]
async fn full_request_is_the_documented_one() {
    let app = spawn_app().await;
    Mock::given(method("POST"))
        .and(path(PATH))
        .and(header("authorization", CHATDASH_KEY))
        .respond_with(created())
        .expect(1)
        .mount(&app.mocks.chatdash)
        .await;
    let mut body = full_body();
    body["client"]["language"] = json!("fr");
    body["targets"] = json!({ "chatdash": { "member": {
        "login_id": "nova", "name": "N. Smith", "email": "n@nova.example", "password": "correct horse battery"
    }}});

    let answer = app.create(&body).await;

    let r = &answer["results"]["chatdash"];
    assert_eq!(r["status"], "created");
    assert_eq!(r["provider_status"], 200);
    assert!(
        r.get("provider_client_id").is_none(),
        "ChatDash assigns no id"
    );
    assert!(
        r.get("credentials").is_none(),
        "the caller's own password is not echoed"
    );
    let request = only_request(&app.mocks.chatdash, PATH).await;
    assert_auth_header(&request, ("authorization", CHATDASH_KEY));
    let sent: Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(
        sent,
        json!({
            "client": { "name": "Nova Consulting Ltd", "language": "fr" },
            "member": { "name": "N. Smith", "loginId": "nova", "email": "n@nova.example", "password": "correct horse battery" }
        })
    );
}

#[tokio::test]
async fn minimal_request_derives_the_member_and_generates_a_password() {
    let app = spawn_app().await;
    Mock::given(method("POST"))
        .and(path(PATH))
        .respond_with(created())
        .expect(1)
        .mount(&app.mocks.chatdash)
        .await;

    let answer = app
        .create(&one_target(
            "chatdash",
            json!({"member": {"login_id": "nova"}}),
        ))
        .await;

    let r = &answer["results"]["chatdash"];
    assert_eq!(r["status"], "created");
    let password = r["credentials"]["password"].as_str().unwrap();
    assert_eq!(r["credentials"]["login"], "nova");
    assert_eq!(password.len(), 20);
    let sent: Value =
        serde_json::from_slice(&only_request(&app.mocks.chatdash, PATH).await.body).unwrap();
    assert_eq!(
        sent,
        json!({
            "client": { "name": "Nova Consulting Ltd", "language": "en" },
            "member": { "name": "Nova Smith", "loginId": "nova", "email": "nova.smith@nova.example", "password": password }
        }),
        "name and e-mail from the contact, ChatDash's default language, the generated password"
    );
}

async fn answer_with(response: ResponseTemplate) -> Value {
    let app = spawn_app().await;
    Mock::given(method("POST"))
        .respond_with(response)
        .expect(1)
        .mount(&app.mocks.chatdash)
        .await;
    let answer = app
        .create(&one_target(
            "chatdash",
            json!({"member": {"login_id": "nova"}}),
        ))
        .await;
    answer["results"]["chatdash"].clone()
}

#[tokio::test]
async fn login_id_in_use_is_a_conflict() {
    let r = answer_with(
        ResponseTemplate::new(400).set_body_json(json!({"error": "Login ID already in use"})),
    )
    .await;
    assert_eq!(r["status"], "failed");
    assert_eq!(r["error"]["kind"], "conflict");
    assert_eq!(r["error"]["message"], "Login ID already in use");
    assert_eq!(
        r["error"]["provider_error"],
        json!({"error": "Login ID already in use"})
    );
    assert!(
        r.get("credentials").is_none(),
        "nothing was created: no password to show"
    );
}

#[tokio::test]
async fn other_documented_errors() {
    let r = answer_with(
        ResponseTemplate::new(400).set_body_json(json!({"error": "member.name is required"})),
    )
    .await;
    assert_eq!(r["error"]["kind"], "validation");
    let r = answer_with(
        ResponseTemplate::new(500).set_body_json(json!({"error": "An unexpected error occurred"})),
    )
    .await;
    assert_eq!(r["status"], "failed");
    assert_eq!(r["error"]["kind"], "unavailable");
    assert_eq!(r["error"]["retryable"], true);
    assert_eq!(r["error"]["message"], "An unexpected error occurred");
}
