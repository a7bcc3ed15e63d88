//! Lucca Project adapter, against a mock of its documented API.

use clients_gateway::catalog::ProviderId;
use serde_json::{json, Value};
use wiremock::matchers::{body_json, header, method, path, query_param};
use wiremock::{Mock, ResponseTemplate};

use secrecy::SecretString;

use crate::helpers::*;

const PATH: &str = "/timmi-project/api/v4/clients";
const AUTH: &str = "lucca application=test-lucca-key";

fn created(id: u64) -> ResponseTemplate {
    ResponseTemplate::new(201).set_body_json(json!({
        "id": id, "name": "Nova Consulting Ltd", "code": "NOVA", "externalCode": "crm-4711", "owner": null
    }))
}

#[tokio::test]
async fn full_request_is_the_documented_one() {
    let app = spawn_app().await;
    Mock::given(method("POST"))
        .and(path(PATH))
        .and(header("authorization", AUTH))
        .and(header("content-type", "application/json"))
        .and(body_json(json!({
            "name": "Nova Consulting Ltd",
            "code": "NOVA",
            "externalCode": "crm-4711",
            "ownerId": 7,
            "organizationId": 12
        })))
        .respond_with(created(123))
        .expect(1)
        .mount(&app.mocks.lucca)
        .await;
    let mut body = full_body();
    body["targets"] = json!({ "lucca": { "organization_id": 12, "owner_id": 7 } });

    let answer = app.create(&body).await;

    let r = &answer["results"]["lucca"];
    assert_eq!(r["status"], "created");
    assert_eq!(r["provider_status"], 201);
    assert_eq!(
        r["provider_client_id"], "123",
        "the numeric id, as a string"
    );
    assert_eq!(r["response"]["id"], 123);
    assert_eq!(r["attempts"], 1);
    assert_eq!(answer["outcome"], "succeeded");
    assert_auth_header(
        &only_request(&app.mocks.lucca, PATH).await,
        ("authorization", AUTH),
    );
}

#[tokio::test]
async fn minimal_request_uses_the_configured_organization_and_a_derived_code() {
    let app = spawn_app().await;
    Mock::given(method("POST"))
        .and(path(PATH))
        .and(header("authorization", AUTH))
        .and(body_json(json!({
            "name": "Nova Consulting Ltd",
            "code": "NOVA-CONSULTING-LTD",
            "organizationId": 12
        })))
        .respond_with(created(9))
        .expect(1)
        .mount(&app.mocks.lucca)
        .await;

    let answer = app
        .create(&json!({"client": {"name": "Nova Consulting Ltd"}, "targets": {"lucca": {}}}))
        .await;

    assert_eq!(answer["results"]["lucca"]["provider_client_id"], "9");
}

async fn answer_with(status: u16, body: Value) -> Value {
    let app = spawn_app().await;
    Mock::given(method("POST"))
        .and(path(PATH))
        .respond_with(ResponseTemplate::new(status).set_body_json(body))
        .expect(1)
        .mount(&app.mocks.lucca)
        .await;
    // A 5xx is read as `failed` once a lookup shows nothing was created.
    fixture(ProviderId::Lucca).mount_not_found(&app.mocks).await;
    let answer = app.create(&one_target("lucca", json!({}))).await;
    answer["results"]["lucca"].clone()
}

fn problem(status: u16, title: &str, errors: Value) -> Value {
    json!({
        "type": "https://tools.ietf.org/html/rfc7231#section-6.5.1",
        "title": title,
        "status": status,
        "traceId": "00-da6c8638331d052ea1c8c0087705b797-56ea5435c7c46706-00",
        "errors": errors
    })
}

#[tokio::test]
async fn duplicate_code_is_a_conflict() {
    let r = answer_with(
        400,
        problem(
            400,
            "One or more validation errors occurred.",
            json!({"code": ["The code 'NOVA' is already used: client codes must be unique."]}),
        ),
    )
    .await;
    assert_eq!(r["status"], "failed");
    assert_eq!(r["error"]["kind"], "conflict");
    assert_eq!(r["error"]["retryable"], false);
    assert_eq!(r["error"]["provider_status"], 400);
    let message = r["error"]["provider_error"]["errors"]["code"][0]
        .as_str()
        .unwrap();
    assert!(message.contains("unique"), "{message}");
}

#[tokio::test]
async fn the_documented_validation_problem_is_a_validation_error() {
    let r = answer_with(
        400,
        problem(
            400,
            "One or more validation errors occurred.",
            json!({"organizationId": ["A value for the 'organizationId' parameter or property was not provided."]}),
        ),
    )
    .await;
    assert_eq!(r["status"], "failed");
    assert_eq!(r["error"]["kind"], "validation");
    assert!(r["error"]["message"]
        .as_str()
        .unwrap()
        .contains("organizationId"));
}

#[tokio::test]
async fn documented_problem_statuses_map_to_kinds() {
    for (status, kind, outcome) in [
        (401, "unauthorized", "failed"),
        (403, "forbidden", "failed"),
        (404, "not_found", "failed"),
        (500, "unavailable", "failed"),
        (408, "timeout", "unknown"),
    ] {
        let r = answer_with(status, problem(status, "Problem", json!({}))).await;
        assert_eq!(r["status"], outcome, "{status}");
        assert_eq!(r["error"]["kind"], kind, "{status}");
        assert_eq!(r["error"]["provider_status"], status);
        assert_eq!(r["error"]["message"], "Problem");
    }
}

#[tokio::test]
async fn a_non_numeric_id_is_an_invalid_response_not_a_creation() {
    let r = answer_with(201, json!({"id": "abc", "name": "Nova"})).await;
    assert_eq!(
        r["status"], "unknown",
        "a 201 means it was probably created"
    );
    assert_eq!(r["error"]["kind"], "invalid_response");
}

/// `if_exists: adopt` on Lucca's duplicate-code answer: the code looked up in the organization.
fn adopt_nova() -> Value {
    let mut body = full_body();
    body["targets"] = json!({ "lucca": { "organization_id": 12 } });
    body["if_exists"] = json!("adopt");
    body
}

async fn duplicate_code(app: &TestApp) {
    Mock::given(method("POST"))
        .and(path(PATH))
        .respond_with((fixture(ProviderId::Lucca).duplicate.unwrap())())
        .expect(1)
        .mount(&app.mocks.lucca)
        .await;
}

#[tokio::test]
async fn adopt_looks_the_code_up_exactly_page_by_page() {
    let app = spawn_app().await;
    duplicate_code(&app).await;
    let list = |page: &str| {
        Mock::given(method("GET"))
            .and(path(PATH))
            .and(header("authorization", AUTH))
            .and(query_param("organizationId", "12"))
            .and(query_param("code", "NOVA"))
            .and(query_param("page", page))
    };
    // A near miss (the code in another case) on page 1, then the client on page 2.
    list("1")
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "items": [{"id": 5, "name": "Nova", "code": "nova", "externalCode": null, "owner": null}],
            "next": "/timmi-project/api/v4/clients?organizationId=12&code=NOVA&page=2", "prev": null
        })))
        .expect(1)
        .mount(&app.mocks.lucca)
        .await;
    list("2")
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "items": [{"id": 123, "name": "Nova Consulting Ltd", "code": "NOVA", "externalCode": "crm-4711", "owner": null}],
            "next": null, "prev": "/timmi-project/api/v4/clients?page=1"
        })))
        .expect(1)
        .mount(&app.mocks.lucca)
        .await;

    let answer = app.create(&adopt_nova()).await;

    let r = &answer["results"]["lucca"];
    assert_eq!(r["status"], "existing", "{r}");
    assert_eq!(r["provider_client_id"], "123");
    assert_eq!(r["response"]["code"], "NOVA");
    assert_eq!(answer["outcome"], "succeeded");
}

#[tokio::test]
async fn adopt_takes_no_near_miss() {
    let app = spawn_app().await;
    duplicate_code(&app).await;
    Mock::given(method("GET"))
        .and(path(PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "items": [{"id": 5, "code": "nova"}, {"id": 6, "code": "NOVA-2"}, {"id": 7, "code": " NOVA"}],
            "next": null
        })))
        .expect(1)
        .mount(&app.mocks.lucca)
        .await;
    let r = &app.create(&adopt_nova()).await["results"]["lucca"];
    assert_eq!(r["status"], "failed", "{r}");
    assert_eq!(r["error"]["kind"], "conflict");
    assert!(r["error"]["message"]
        .as_str()
        .unwrap()
        .contains("no client with this key was found"));
}

#[tokio::test]
async fn an_error_during_the_lookup_keeps_the_conflict() {
    let app = spawn_app().await;
    duplicate_code(&app).await;
    Mock::given(method("GET"))
        .and(path(PATH))
        .respond_with(ResponseTemplate::new(403).set_body_json(problem(
            403,
            "Forbidden",
            json!({}),
        )))
        .expect(1)
        .mount(&app.mocks.lucca)
        .await;
    let r = &app.create(&adopt_nova()).await["results"]["lucca"];
    assert_eq!(r["status"], "failed", "{r}");
    assert_eq!(r["error"]["kind"], "conflict");
    assert!(r["error"]["message"]
        .as_str()
        .unwrap()
        .contains("a lookup could not find the existing client: Forbidden"));
}

/// Lucca Project as the tests see it: its row of the harness's table of providers.
pub fn as_tested() -> Fixture {
    Fixture {
        id: ProviderId::Lucca,
        name: "lucca",
        base_path: "",
        create_path: "/timmi-project/api/v4/clients",
        created_status: 201,
        created_body: || json!({"id": 123, "name": "Nova Consulting Ltd", "code": "NOVA", "externalCode": null, "owner": null}),
        created_id: Some("123"),
        generated_password: None,
        minimal_options: || json!({}),
        secret: ("api_key", LUCCA_KEY),
        toml: |uri| format!("base_url = \"{uri}\"\norganization_id = 12\n"),
        configure: |p, url| {
            p.lucca.base_url = url;
            p.lucca.api_key = Some(SecretString::from(LUCCA_KEY));
            p.lucca.organization_id = Some(12);
        },
        break_credentials: |p| p.lucca.api_key = Some("wrong".to_owned().into()),
        support: no_support,
        issued: &[],
        lookup: |found| {
            let items = if found {
                json!([{"id": 123, "name": "Nova Consulting Ltd", "code": "NOVA", "externalCode": "crm-4711", "owner": null}])
            } else {
                json!([])
            };
            vec![listing(
                "/timmi-project/api/v4/clients",
                json!({"items": items, "next": null, "prev": null}),
            )]
        },
        found_id: "123",
        duplicate: Some(|| {
            ResponseTemplate::new(400).set_body_json(json!({"type": "https://tools.ietf.org/html/rfc7231#section-6.5.1",
                "title": "One or more validation errors occurred.", "status": 400,
                "errors": {"code": ["The code 'NOVA' is already used by another client: client codes must be unique."]}}))
        }),
        wrong_credentials: "unauthorized",
        name_alone: true,
    }
}
