//! PlusVibe adapter, against a mock of its documented API.

use clients_gateway::catalog::ProviderId;
use serde_json::{json, Value};
use wiremock::matchers::{body_json, header, method, path, query_param};
use wiremock::{Mock, ResponseTemplate};

use secrecy::SecretString;

use crate::helpers::*;

const PATH: &str = "/api/v1/client";

fn created() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "client_id": "70218d5e05561a3877dcb77f",
        "email": "nova.smith@nova.example",
        "password": "Xp9#Ld2!ak"
    }))
}

#[tokio::test]
async fn full_request_is_the_documented_one() {
    let app = spawn_app().await;
    Mock::given(method("POST"))
        .and(path(PATH))
        .and(header("x-api-key", PLUSVIBE_KEY))
        .and(header("content-type", "application/json"))
        .and(body_json(json!({
            "workspace_id": "65f99a0dd96fae8ab61130c0",
            "client_email": "nova.smith@nova.example",
            "client_first_name": "Nova",
            "client_last_name": "Smith",
            "client_business_name": "Nova Consulting Ltd",
            "workspaces": [
                { "id": "65f99a0dd96fae8ab61130c0", "permissions": ["FULL_ACCESS"], "hide_labels": [] },
                { "id": "65f99a0dd96fae8ab61130c1", "permissions": ["UNIBOX_FULL_ACCESS"], "hide_labels": ["NOT_INTERESTED"] }
            ]
        })))
        .respond_with(created())
        .expect(1)
        .mount(&app.mocks.plusvibe)
        .await;
    let mut body = full_body();
    body["targets"] = json!({ "plusvibe": {
        "workspace_id": "65f99a0dd96fae8ab61130c0",
        "workspaces": [
            { "id": "65f99a0dd96fae8ab61130c0", "permission": "FULL_ACCESS", "hide_labels": [] },
            { "id": "65f99a0dd96fae8ab61130c1", "permission": "UNIBOX_FULL_ACCESS", "hide_labels": ["NOT_INTERESTED"] }
        ]
    }});

    let answer = app.create(&body).await;

    let r = &answer["results"]["plusvibe"];
    assert_eq!(r["status"], "created");
    assert_eq!(r["provider_status"], 200);
    assert_eq!(r["provider_client_id"], "70218d5e05561a3877dcb77f");
    assert_eq!(
        r["credentials"],
        json!({"login": "nova.smith@nova.example", "password": "Xp9#Ld2!ak"}),
        "the generated password is shown once, under credentials"
    );
    assert_eq!(r["response"]["password"], "[redacted]", "and not twice");
    assert_auth_header(
        &only_request(&app.mocks.plusvibe, PATH).await,
        ("x-api-key", PLUSVIBE_KEY),
    );
}

#[tokio::test]
async fn minimal_request_defaults_the_workspaces_and_falls_back_to_the_company_email() {
    let app = spawn_app().await;
    Mock::given(method("POST"))
        .and(path(PATH))
        .and(header("x-api-key", PLUSVIBE_KEY))
        .and(body_json(json!({
            "workspace_id": PLUSVIBE_WORKSPACE,
            "client_email": "billing@nova.example",
            "client_first_name": "Nova",
            "client_last_name": "Smith",
            "client_business_name": "Nova",
            "workspaces": [{ "id": PLUSVIBE_WORKSPACE, "permissions": ["FULL_ACCESS"], "hide_labels": [] }]
        })))
        .respond_with(created())
        .expect(1)
        .mount(&app.mocks.plusvibe)
        .await;

    let answer = app
        .create(&json!({
            "client": { "name": "Nova", "email": "billing@nova.example",
                        "contact": { "first_name": "Nova", "last_name": "Smith" } },
            "targets": { "plusvibe": {} }
        }))
        .await;

    assert_eq!(answer["results"]["plusvibe"]["status"], "created");
}

async fn answer_with(response: ResponseTemplate) -> Value {
    let app = spawn_app().await;
    Mock::given(method("POST"))
        .respond_with(response)
        .expect(1)
        .mount(&app.mocks.plusvibe)
        .await;
    // A 5xx is read as `failed` once a lookup shows nothing was created.
    fixture(ProviderId::Plusvibe)
        .mount_not_found(&app.mocks)
        .await;
    let answer = app.create(&one_target("plusvibe", json!({}))).await;
    answer["results"]["plusvibe"].clone()
}

#[tokio::test]
async fn undocumented_errors_are_read_by_status_and_message() {
    for (status, kind) in [
        (400, "validation"),
        (401, "unauthorized"),
        (500, "unavailable"),
    ] {
        let r = answer_with(
            ResponseTemplate::new(status)
                .set_body_json(json!({"status": "error", "message": "\"api_key\" is invalid"})),
        )
        .await;
        assert_eq!(r["status"], "failed");
        assert_eq!(r["error"]["kind"], kind);
        assert_eq!(r["error"]["message"], "\"api_key\" is invalid");
    }
}

#[tokio::test]
async fn a_success_without_client_id_is_unknown() {
    let r = answer_with(ResponseTemplate::new(200).set_body_json(json!({"email": "x@y.example"})))
        .await;
    assert_eq!(r["status"], "unknown");
    assert_eq!(r["error"]["kind"], "invalid_response");
    assert_eq!(r["provider_status"], 200);
}

const LIST: &str = "/api/v1/client/";

fn adopt_nova() -> Value {
    let mut body = full_body();
    body["targets"] = json!({ "plusvibe": {} });
    body["if_exists"] = json!("adopt");
    body
}

fn listed(emails: &[&str]) -> ResponseTemplate {
    let clients: Vec<Value> = emails
        .iter()
        .enumerate()
        .map(|(i, e)| json!({"client_id": format!("c{i}"), "first_name": "N", "last_name": "S", "client_email": e,
                             "client_business_name": "Nova Consulting Ltd", "status": "ACTIVE"}))
        .collect();
    ResponseTemplate::new(200).set_body_json(json!({ "clients": clients }))
}

/// PlusVibe accepts duplicates: with adopt, the workspace's clients are listed before any create.
#[tokio::test]
async fn adopt_looks_the_email_up_before_creating_case_insensitively() {
    let app = spawn_app().await;
    Mock::given(method("GET"))
        .and(path(LIST))
        .and(header("x-api-key", PLUSVIBE_KEY))
        .and(query_param("workspace_id", PLUSVIBE_WORKSPACE))
        .respond_with(listed(&[
            "nova.smith@nova.example.org",
            "Nova.Smith@NOVA.example",
        ]))
        .expect(1)
        .mount(&app.mocks.plusvibe)
        .await;
    Mock::given(method("POST"))
        .respond_with(created())
        .expect(0)
        .named("nothing is created")
        .mount(&app.mocks.plusvibe)
        .await;

    let answer = app.create(&adopt_nova()).await;

    let r = &answer["results"]["plusvibe"];
    assert_eq!(r["status"], "existing", "{r}");
    assert_eq!(r["provider_client_id"], "c1");
    assert_eq!(r["attempts"], 0, "no create sent");
    assert!(r.get("credentials").is_none());
}

#[tokio::test]
async fn a_near_miss_is_not_taken_and_the_client_is_created_once() {
    let app = spawn_app().await;
    Mock::given(method("GET"))
        .and(path(LIST))
        .respond_with(listed(&[
            "nova.smith@nova.example.org",
            "smith@nova.example",
        ]))
        .mount(&app.mocks.plusvibe)
        .await;
    Mock::given(method("POST"))
        .and(path(PATH))
        .respond_with(created())
        .expect(1)
        .mount(&app.mocks.plusvibe)
        .await;
    let r = &app.create(&adopt_nova()).await["results"]["plusvibe"];
    assert_eq!(r["status"], "created", "{r}");
    assert_eq!(r["provider_client_id"], "70218d5e05561a3877dcb77f");
}

#[tokio::test]
async fn a_failed_lookup_creates_nothing_and_says_why() {
    let app = spawn_app().await;
    Mock::given(method("GET"))
        .and(path(LIST))
        .respond_with(
            ResponseTemplate::new(200).set_body_raw("<html>maintenance</html>", "text/html"),
        )
        .mount(&app.mocks.plusvibe)
        .await;
    Mock::given(method("POST"))
        .respond_with(created())
        .expect(0)
        .mount(&app.mocks.plusvibe)
        .await;
    let r = &app.create(&adopt_nova()).await["results"]["plusvibe"];
    assert_eq!(r["status"], "failed", "{r}");
    assert_eq!(r["error"]["kind"], "invalid_response");
    assert!(r["error"]["message"]
        .as_str()
        .unwrap()
        .contains("nothing was created"));
    assert_eq!(r["attempts"], 0);
}

/// PlusVibe as the tests see it: its row of the harness's table of providers.
pub fn as_tested() -> Fixture {
    Fixture {
        id: ProviderId::Plusvibe,
        name: "plusvibe",
        base_path: "/api/v1",
        create_path: "/api/v1/client",
        created_status: 200,
        created_body: || json!({"client_id": "70218d5e05561a3877dcb77f", "email": "nova.smith@nova.example", "password": PLUSVIBE_PASSWORD}),
        created_id: Some("70218d5e05561a3877dcb77f"),
        generated_password: Some(PLUSVIBE_PASSWORD),
        minimal_options: || json!({}),
        secret: ("api_key", PLUSVIBE_KEY),
        toml: |uri| {
            format!("base_url = \"{uri}/api/v1\"\nworkspace_id = \"{PLUSVIBE_WORKSPACE}\"\n")
        },
        configure: |p, url| {
            p.plusvibe.base_url = url;
            p.plusvibe.api_key = Some(SecretString::from(PLUSVIBE_KEY));
            p.plusvibe.workspace_id = Some(PLUSVIBE_WORKSPACE.into());
        },
        break_credentials: |p| p.plusvibe.api_key = Some("wrong".to_owned().into()),
        support: no_support,
        issued: &[],
        lookup: |found| {
            let clients = if found {
                json!([{"client_id": "70218d5e05561a3877dcb77f", "first_name": "Nova", "last_name": "Smith",
                        "client_email": "nova.smith@nova.example", "client_business_name": "Nova Consulting Ltd", "status": "ACTIVE"}])
            } else {
                json!([])
            };
            vec![listing("/api/v1/client/", json!({"clients": clients}))]
        },
        found_id: "70218d5e05561a3877dcb77f",
        duplicate: None,
        wrong_credentials: "unauthorized",
        name_alone: false,
    }
}
