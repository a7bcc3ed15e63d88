//! Clockify adapter, against a mock of its documented API.

use clients_gateway::catalog::ProviderId;
use serde_json::{json, Value};
use wiremock::matchers::{body_json, header, method, path, query_param};
use wiremock::{Mock, ResponseTemplate};

use secrecy::SecretString;

use crate::helpers::*;

fn path_of(workspace: &str) -> String {
    format!("/api/v1/workspaces/{workspace}/clients")
}

fn created() -> ResponseTemplate {
    ResponseTemplate::new(201).set_body_json(json!({
        "address": "Ground Floor, ABC Bldg., Palo Alto, California, USA 94020",
        "archived": false,
        "ccEmails": "clientx@example.com",
        "currencyCode": "USD",
        "currencyId": "33t687e29ae1f428e7ebe505",
        "email": "clientx@example.com",
        "id": "44a687e29ae1f428e7ebe305",
        "name": "Client X",
        "note": "This is a sample note for the client.",
        "workspaceId": "64a687e29ae1f428e7ebe303"
    }))
}

#[tokio::test]
async fn full_request_is_the_documented_one() {
    let app = spawn_app().await;
    let workspace = "5f0000000000000000000001";
    Mock::given(method("POST"))
        .and(path(path_of(workspace)))
        .and(header("x-api-key", CLOCKIFY_KEY))
        .and(header("content-type", "application/json"))
        .and(body_json(json!({
            "name": "Nova Consulting Ltd",
            "email": "billing@nova.example",
            "address": "Ground Floor, ABC Bldg., Palo Alto, CA 94020",
            "note": "Signed 2026-11-20"
        })))
        .respond_with(created())
        .expect(1)
        .mount(&app.mocks.clockify)
        .await;
    let mut body = full_body();
    body["targets"] = json!({ "clockify": { "workspace_id": workspace } });

    let answer = app.create(&body).await;

    let r = &answer["results"]["clockify"];
    assert_eq!(r["status"], "created");
    assert_eq!(r["provider_status"], 201);
    assert_eq!(r["provider_client_id"], "44a687e29ae1f428e7ebe305");
    let request = only_request(&app.mocks.clockify, &path_of(workspace)).await;
    assert_auth_header(&request, ("x-api-key", CLOCKIFY_KEY));
}

#[tokio::test]
async fn minimal_request_uses_the_configured_workspace() {
    let app = spawn_app().await;
    Mock::given(method("POST"))
        .and(path(path_of(CLOCKIFY_WORKSPACE)))
        .and(header("x-api-key", CLOCKIFY_KEY))
        .and(body_json(json!({ "name": "Nova Consulting Ltd" })))
        .respond_with(created())
        .expect(1)
        .mount(&app.mocks.clockify)
        .await;

    let answer = app
        .create(&json!({"client": {"name": "Nova Consulting Ltd"}, "targets": {"clockify": {}}}))
        .await;

    assert_eq!(answer["results"]["clockify"]["status"], "created");
}

/// A workspace id goes into the URL path: only one that looks like a Clockify id is sent (`.`,
/// `..` or `..;` would change the path the provider sees).
#[tokio::test]
async fn a_workspace_id_that_is_not_an_id_is_refused_and_nothing_is_sent() {
    let app = spawn_app().await;
    app.mocks.expect_no_calls().await;
    for bad in [
        ".",
        "..",
        "..;",
        "a/b",
        "%2e%2e",
        "64a687e29ae1f428e7ebe30",
        " 64a687e29ae1f428e7ebe303",
    ] {
        let response = app
            .post_clients(&one_target("clockify", json!({"workspace_id": bad})))
            .await;
        let problem = assert_problem(response, 422).await;
        assert_eq!(
            pointers(&problem),
            ["/targets/clockify/workspace_id"],
            "{bad:?}"
        );
    }
}

async fn answer_with(response: ResponseTemplate) -> Value {
    let app = spawn_app().await;
    answer_with_on(&app, response).await
}

#[tokio::test]
async fn duplicate_name_is_a_conflict() {
    let r = answer_with(ResponseTemplate::new(400).set_body_json(
        json!({"message": "Client with that name already exists on workspace", "code": 501}),
    ))
    .await;
    assert_eq!(r["status"], "failed");
    assert_eq!(r["error"]["kind"], "conflict");
    assert_eq!(
        r["error"]["message"],
        "Client with that name already exists on workspace"
    );
    assert_eq!(r["error"]["provider_error"]["code"], 501);
}

#[tokio::test]
async fn message_and_code_errors_map_to_kinds() {
    for (status, kind) in [
        (400, "validation"),
        (401, "unauthorized"),
        (403, "forbidden"),
        (404, "not_found"),
        (500, "unavailable"),
    ] {
        let r = answer_with(
            ResponseTemplate::new(status).set_body_json(json!({"message": "Nope", "code": 42})),
        )
        .await;
        assert_eq!(r["status"], "failed", "{status}");
        assert_eq!(r["error"]["kind"], kind, "{status}");
        assert_eq!(r["error"]["message"], "Nope");
        assert_eq!(
            r["error"]["provider_error"],
            json!({"message": "Nope", "code": 42})
        );
    }
}

#[tokio::test]
async fn an_error_without_a_body_is_still_read() {
    let r = answer_with(ResponseTemplate::new(400)).await;
    assert_eq!(r["status"], "failed");
    assert_eq!(r["error"]["kind"], "validation");
    assert_eq!(
        r["error"]["message"],
        "answered HTTP 400 with an empty body"
    );
    assert!(r["error"].get("provider_error").is_none());
}

#[tokio::test]
async fn rate_limits_carry_retry_after() {
    let r = answer_with(
        ResponseTemplate::new(429)
            .insert_header("retry-after", "30")
            .set_body_json(json!({"message": "Too many requests", "code": 429})),
    )
    .await;
    assert_eq!(r["status"], "failed");
    assert_eq!(r["error"]["kind"], "rate_limited");
    assert_eq!(r["error"]["retryable"], true);
    assert_eq!(r["error"]["retry_after_s"], 30);
}

#[tokio::test]
async fn a_redirect_is_reported_not_followed() {
    let app = spawn_app().await;
    // Following the redirect would get /elsewhere. (A lookup, made because a 3xx does not prove
    // that nothing was created, finds nothing.)
    Mock::given(method("GET"))
        .and(path("/elsewhere"))
        .respond_with(created())
        .expect(0)
        .mount(&app.mocks.clockify)
        .await;
    let location = format!("{}/elsewhere", app.mocks.clockify.uri());
    let r = answer_with_on(
        &app,
        ResponseTemplate::new(301).insert_header("location", location.as_str()),
    )
    .await;
    assert_eq!(r["status"], "failed");
    assert_eq!(r["error"]["kind"], "invalid_response");
    assert_eq!(r["provider_status"], 301);
}

async fn answer_with_on(app: &TestApp, response: ResponseTemplate) -> Value {
    Mock::given(method("POST"))
        .respond_with(response)
        .expect(1)
        .mount(&app.mocks.clockify)
        .await;
    // A 5xx is read as `failed` once a lookup shows nothing was created.
    fixture(ProviderId::Clockify)
        .mount_not_found(&app.mocks)
        .await;
    let answer = app.create(&one_target("clockify", json!({}))).await;
    answer["results"]["clockify"].clone()
}

fn adopt_nova() -> Value {
    let mut body = full_body();
    body["targets"] = json!({ "clockify": {} });
    body["if_exists"] = json!("adopt");
    body
}

async fn duplicate_name(app: &TestApp) {
    Mock::given(method("POST"))
        .and(path(path_of(CLOCKIFY_WORKSPACE)))
        .respond_with(ResponseTemplate::new(400).set_body_json(
            json!({"message": "Client with that name already exists on workspace", "code": 501}),
        ))
        .expect(1)
        .mount(&app.mocks.clockify)
        .await;
}

#[tokio::test]
async fn adopt_looks_the_name_up_exactly_page_by_page() {
    let app = spawn_app().await;
    duplicate_name(&app).await;
    let list = |page: &str| {
        Mock::given(method("GET"))
            .and(path(path_of(CLOCKIFY_WORKSPACE)))
            .and(header("x-api-key", CLOCKIFY_KEY))
            .and(query_param("name", "Nova Consulting Ltd"))
            .and(query_param("page", page))
            .and(query_param("page-size", "50"))
    };
    // The filter's match mode is not documented: near misses come back, and are not taken.
    list("1")
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("Last-Page", "false")
                .set_body_json(json!([
                    {"id": "a1", "name": "Nova Consulting Ltd.", "workspaceId": CLOCKIFY_WORKSPACE},
                    {"id": "a2", "name": "nova consulting ltd", "workspaceId": CLOCKIFY_WORKSPACE}
                ])),
        )
        .expect(1)
        .mount(&app.mocks.clockify)
        .await;
    list("2")
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("Last-Page", "true")
                .set_body_json(json!([
                    {"id": "a3", "name": "Nova Consulting Ltd", "workspaceId": CLOCKIFY_WORKSPACE}
                ])),
        )
        .expect(1)
        .mount(&app.mocks.clockify)
        .await;

    let r = &app.create(&adopt_nova()).await["results"]["clockify"];

    assert_eq!(r["status"], "existing", "{r}");
    assert_eq!(r["provider_client_id"], "a3");
}

#[tokio::test]
async fn the_last_page_ends_the_lookup_and_a_near_miss_is_not_taken() {
    let app = spawn_app().await;
    duplicate_name(&app).await;
    Mock::given(method("GET"))
        .and(path(path_of(CLOCKIFY_WORKSPACE)))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("Last-Page", "true")
                .set_body_json(json!([{"id": "a1", "name": "Nova Consulting Ltd 2"}])),
        )
        .expect(1)
        .mount(&app.mocks.clockify)
        .await;
    let r = &app.create(&adopt_nova()).await["results"]["clockify"];
    assert_eq!(r["status"], "failed", "{r}");
    assert_eq!(r["error"]["kind"], "conflict");
}

#[tokio::test]
async fn an_error_during_the_lookup_keeps_the_conflict() {
    let app = spawn_app().await;
    duplicate_name(&app).await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(401)
                .set_body_json(json!({"message": "Api key does not exist", "code": 4003})),
        )
        .expect(1)
        .mount(&app.mocks.clockify)
        .await;
    let r = &app.create(&adopt_nova()).await["results"]["clockify"];
    assert_eq!(r["status"], "failed", "{r}");
    assert_eq!(r["error"]["kind"], "conflict");
    assert!(r["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Api key does not exist"));
}

/// The adapter reads the whole answer: a duplicate said in plain text, or as a JSON string, is a
/// conflict too.
#[tokio::test]
async fn a_duplicate_said_in_plain_text_or_a_json_string_is_a_conflict() {
    for response in [
        ResponseTemplate::new(400).set_body_raw(
            "Client with that name already exists on workspace",
            "text/plain",
        ),
        ResponseTemplate::new(400)
            .set_body_json(json!("Client with that name already exists on workspace")),
    ] {
        let r = answer_with(response).await;
        assert_eq!(r["status"], "failed", "{r}");
        assert_eq!(r["error"]["kind"], "conflict", "{r}");
        assert_eq!(
            r["error"]["message"],
            "answered HTTP 400: Client with that name already exists on workspace"
        );
    }
}

/// Clockify as the tests see it: its row of the harness's table of providers.
pub fn as_tested() -> Fixture {
    Fixture {
        id: ProviderId::Clockify,
        name: "clockify",
        base_path: "/api",
        create_path: "/api/v1/workspaces/64a687e29ae1f428e7ebe303/clients",
        created_status: 201,
        created_body: || json!({"id": "44a687e29ae1f428e7ebe305", "name": "Nova Consulting Ltd", "workspaceId": CLOCKIFY_WORKSPACE, "archived": false}),
        created_id: Some("44a687e29ae1f428e7ebe305"),
        generated_password: None,
        minimal_options: || json!({}),
        secret: ("api_key", CLOCKIFY_KEY),
        toml: |uri| format!("base_url = \"{uri}/api\"\nworkspace_id = \"{CLOCKIFY_WORKSPACE}\"\n"),
        configure: |p, url| {
            p.clockify.base_url = url;
            p.clockify.api_key = Some(SecretString::from(CLOCKIFY_KEY));
            p.clockify.workspace_id = Some(CLOCKIFY_WORKSPACE.into());
        },
        break_credentials: |p| p.clockify.api_key = Some("wrong".to_owned().into()),
        support: no_support,
        issued: &[],
        lookup: |found| {
            let items = if found {
                json!([{"id": "44a687e29ae1f428e7ebe305", "name": "Nova Consulting Ltd", "workspaceId": CLOCKIFY_WORKSPACE, "archived": false}])
            } else {
                json!([])
            };
            vec![listing(
                "/api/v1/workspaces/64a687e29ae1f428e7ebe303/clients",
                items,
            )]
        },
        found_id: "44a687e29ae1f428e7ebe305",
        duplicate: Some(|| {
            ResponseTemplate::new(400).set_body_json(
                json!({"message": "Client with that name already exists on workspace", "code": 501}),
            )
        }),
        wrong_credentials: "unauthorized",
        name_alone: true,
    }
}
