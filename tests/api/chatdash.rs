//! ChatDash adapter, against a mock of its documented API.

use clients_gateway::catalog::ProviderId;
use serde_json::{json, Value};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, ResponseTemplate};

use secrecy::SecretString;

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
    // A 5xx is read as `failed` once a lookup shows nothing was created.
    fixture(ProviderId::Chatdash)
        .mount_not_found(&app.mocks)
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

fn clients(list: Value) -> Mock {
    Mock::given(method("GET"))
        .and(path(PATH))
        .and(header("authorization", CHATDASH_KEY))
        .respond_with(ResponseTemplate::new(200).set_body_json(list))
}

fn members(client: &str, logins: &[&str]) -> Mock {
    let members: Vec<Value> = logins
        .iter()
        .map(|l| json!({"_id": format!("m-{l}"), "clientId": client, "isAdmin": true, "name": "N", "loginId": l}))
        .collect();
    Mock::given(method("GET"))
        .and(path(format!("{PATH}/{client}/members")))
        .and(header("authorization", CHATDASH_KEY))
        .respond_with(ResponseTemplate::new(200).set_body_json(members))
}

/// ChatDash's create answers no id: the clients of the same name are listed, then their members,
/// and the one with the member's login id (case-insensitive) is the client.
#[tokio::test]
async fn the_id_is_read_by_a_lookup_after_the_create() {
    let app = spawn_app().await;
    Mock::given(method("POST"))
        .and(path(PATH))
        .respond_with(created())
        .expect(1)
        .mount(&app.mocks.chatdash)
        .await;
    clients(json!([
        {"_id": "a", "name": "Nova Consulting Ltd", "language": "en"},
        {"_id": "b", "name": "Nova Consulting Ltd", "language": "en"},
        {"_id": "c", "name": "Nova Consulting", "language": "en"}
    ]))
    .expect(1)
    .mount(&app.mocks.chatdash)
    .await;
    members("a", &["nova2", "nov"])
        .expect(1)
        .mount(&app.mocks.chatdash)
        .await;
    members("b", &["NOVA"])
        .expect(1)
        .mount(&app.mocks.chatdash)
        .await;
    members("c", &["nova"])
        .expect(0)
        .named("a client of another name is not read")
        .mount(&app.mocks.chatdash)
        .await;

    let body = one_target("chatdash", json!({"member": {"login_id": "nova"}}));
    let r = &app.create(&body).await["results"]["chatdash"];

    assert_eq!(r["status"], "created", "{r}");
    assert_eq!(r["provider_client_id"], "b");
    assert_eq!(r["response"]["message"], "Client created successfully");
}

#[tokio::test]
async fn an_older_list_with_login_ids_is_matched_directly() {
    let app = spawn_app().await;
    Mock::given(method("POST"))
        .respond_with(created())
        .mount(&app.mocks.chatdash)
        .await;
    clients(json!([
        {"_id": "x", "name": "Nova Consulting Ltd", "loginId": "nova-old", "email": "a@b.example", "language": "en", "type": "member"},
        {"_id": "y", "name": "Another name", "loginId": "Nova", "email": "a@b.example", "language": "en", "type": "member"}
    ]))
    .mount(&app.mocks.chatdash)
    .await;
    let body = one_target("chatdash", json!({"member": {"login_id": "nova"}}));
    let r = &app.create(&body).await["results"]["chatdash"];
    assert_eq!(r["provider_client_id"], "y");
}

#[tokio::test]
async fn a_failed_lookup_leaves_the_client_created_without_an_id() {
    let app = spawn_app().await;
    Mock::given(method("POST"))
        .respond_with(created())
        .expect(1)
        .mount(&app.mocks.chatdash)
        .await;
    clients(json!([{"_id": "a", "name": "Nova Consulting Ltd"}]))
        .mount(&app.mocks.chatdash)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{PATH}/a/members")))
        .respond_with(ResponseTemplate::new(500).set_body_json(json!({"error": "db down"})))
        .mount(&app.mocks.chatdash)
        .await;
    let body = one_target("chatdash", json!({"member": {"login_id": "nova"}}));
    let r = &app.create(&body).await["results"]["chatdash"];
    assert_eq!(r["status"], "created", "{r}");
    assert!(r.get("provider_client_id").is_none());
    assert!(r.get("error").is_none());
}

#[tokio::test]
async fn resolve_id_can_be_turned_off() {
    let app = spawn_app_with(|s| s.providers.chatdash.resolve_id = false).await;
    Mock::given(method("POST"))
        .respond_with(created())
        .expect(1)
        .mount(&app.mocks.chatdash)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .expect(0)
        .mount(&app.mocks.chatdash)
        .await;
    let body = one_target("chatdash", json!({"member": {"login_id": "nova"}}));
    assert_eq!(
        app.create(&body).await["results"]["chatdash"]["status"],
        "created"
    );
}

/// An `_id` from ChatDash's list goes into a path only if it looks like an id: `..` would turn
/// `/clients/../members` into another path.
#[tokio::test]
async fn a_listed_id_that_is_not_an_id_is_never_put_in_a_path() {
    let app = spawn_app().await;
    Mock::given(method("POST"))
        .respond_with(created())
        .expect(1)
        .mount(&app.mocks.chatdash)
        .await;
    clients(json!([{"_id": "..", "name": "Nova Consulting Ltd"}]))
        .expect(1)
        .mount(&app.mocks.chatdash)
        .await;
    Mock::given(method("GET"))
        .and(wiremock::matchers::path_regex("members"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([{"loginId": "nova"}])))
        .expect(0)
        .mount(&app.mocks.chatdash)
        .await;
    let body = one_target("chatdash", json!({"member": {"login_id": "nova"}}));
    let r = &app.create(&body).await["results"]["chatdash"];
    assert_eq!(r["status"], "created", "{r}");
    assert!(r.get("provider_client_id").is_none());
}

/// ChatDash as the tests see it: its row of the harness's table of providers.
pub fn as_tested() -> Fixture {
    Fixture {
        id: ProviderId::Chatdash,
        name: "chatdash",
        base_path: "/v1/public",
        create_path: "/v1/public/clients",
        created_status: 200,
        created_body: || json!({"message": "Client created successfully"}),
        created_id: None,
        generated_password: None,
        minimal_options: || json!({"member": {"login_id": "nova"}}),
        secret: ("api_key", CHATDASH_KEY),
        toml: |uri| format!("base_url = \"{uri}/v1/public\"\n"),
        configure: |p, url| {
            p.chatdash.base_url = url;
            p.chatdash.api_key = Some(SecretString::from(CHATDASH_KEY));
        },
        break_credentials: |p| p.chatdash.api_key = Some("wrong".to_owned().into()),
        support: no_support,
        issued: &[],
        lookup: |found| {
            let clients = if found {
                json!([{"_id": "6650c0ffee00000000000077", "name": "Nova Consulting Ltd", "language": "en", "isSaasClient": false}])
            } else {
                json!([])
            };
            vec![
                listing("/v1/public/clients", clients),
                listing(
                    "/v1/public/clients/6650c0ffee00000000000077/members",
                    json!([{"_id": "m1", "clientId": "6650c0ffee00000000000077", "isAdmin": true, "name": "Nova Smith", "loginId": "nova"}]),
                ),
            ]
        },
        found_id: "6650c0ffee00000000000077",
        duplicate: Some(|| {
            ResponseTemplate::new(400).set_body_json(json!({"error": "Login ID already in use"}))
        }),
        wrong_credentials: "unauthorized",
        name_alone: false,
    }
}
