//! Lucca Project adapter, against a mock of its documented API.

use serde_json::{json, Value};
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, ResponseTemplate};

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
