//! `POST /clients` end to end: fan-out, outcomes, validation before any call, dry run.

use std::time::{Duration, Instant};

use clients_gateway::catalog::ProviderId;
use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::*;

const LUCCA: &str = "/timmi-project/api/v4/clients";
const CLOCKIFY: &str = "/api/v1/workspaces/64a687e29ae1f428e7ebe303/clients";
const PLUSVIBE: &str = "/api/v1/client";
const CHATDASH: &str = "/v1/public/clients";

async fn answer(server: &MockServer, at: &str, response: ResponseTemplate) {
    Mock::given(method("POST"))
        .and(path(at))
        .respond_with(response)
        .expect(1)
        .mount(server)
        .await;
}

#[tokio::test]
async fn every_provider_creates_it() {
    let app = spawn_app().await;
    each_creates(&app.mocks, Duration::ZERO, 1).await;

    let response = app.post_clients(&full_body()).await;
    assert!(response.headers().get("x-request-id").is_some());
    let body = assert_207(response).await;

    assert_eq!(body["outcome"], "succeeded");
    assert_eq!(body["dry_run"], false);
    assert!(uuid::Uuid::parse_str(body["operation_id"].as_str().unwrap()).is_ok());
    let results = body["results"].as_object().unwrap();
    let mut names: Vec<&str> = results.keys().map(String::as_str).collect();
    let mut expected: Vec<&str> = fixtures().iter().map(|f| f.name).collect();
    names.sort_unstable();
    expected.sort_unstable();
    assert_eq!(names, expected);
    for f in fixtures() {
        let r = &results[f.name];
        assert_eq!(r["status"], "created", "{}", f.name);
        assert_eq!(r["replayed"], false);
        assert_eq!(r["provider_status"], f.created_status, "{}", f.name);
        assert_eq!(
            r.get("provider_client_id").and_then(Value::as_str),
            f.created_id,
            "{}",
            f.name
        );
        if let Some(password) = f.generated_password {
            assert_eq!(r["credentials"]["password"], password, "{}", f.name);
        }
    }
    assert_eq!(results["chatdash"]["credentials"]["login"], "nova");
}

#[tokio::test]
async fn a_partial_outcome_keeps_every_target_result() {
    let app = spawn_app_with(|s| s.providers.plusvibe.timeout_ms = 300).await;
    answer(
        &app.mocks.lucca,
        LUCCA,
        ResponseTemplate::new(201).set_body_json(json!({"id": 1})),
    )
    .await;
    answer(
        &app.mocks.clockify,
        CLOCKIFY,
        ResponseTemplate::new(400).set_body_json(
            json!({"message": "Client with that name already exists on workspace", "code": 501}),
        ),
    )
    .await;
    answer(
        &app.mocks.plusvibe,
        PLUSVIBE,
        ResponseTemplate::new(200).set_delay(Duration::from_secs(3)),
    )
    .await;
    answer(
        &app.mocks.chatdash,
        CHATDASH,
        ResponseTemplate::new(502).set_body_raw("<html>Bad Gateway</html>", "text/html"),
    )
    .await;
    // The 502 is read as `failed` once a lookup shows nothing was created.
    fixture(ProviderId::Chatdash)
        .mount_not_found(&app.mocks)
        .await;
    // The other providers create it.
    let named = ["lucca", "clockify", "plusvibe", "chatdash"];
    let others: Vec<Fixture> = fixtures()
        .into_iter()
        .filter(|f| !named.contains(&f.name))
        .collect();
    for f in &others {
        answer(app.mocks.of(f.id), f.create_path, f.created()).await;
    }
    app.mocks.mount_support().await;

    let body = app.create(&full_body()).await;

    assert_eq!(body["outcome"], "partial");
    let r = &body["results"];
    assert_eq!(r["lucca"]["status"], "created");
    assert_eq!(r["clockify"]["status"], "failed");
    assert_eq!(r["clockify"]["error"]["kind"], "conflict");
    assert_eq!(r["plusvibe"]["status"], "unknown");
    assert_eq!(r["plusvibe"]["error"]["kind"], "timeout");
    assert_eq!(r["chatdash"]["status"], "failed");
    assert_eq!(r["chatdash"]["error"]["kind"], "unavailable");
    for f in &others {
        assert_eq!(r[f.name]["status"], "created", "{}", f.name);
        assert_eq!(
            r[f.name].get("provider_client_id").and_then(Value::as_str),
            f.created_id
        );
    }
}

#[tokio::test]
async fn none_created_is_a_failed_outcome_still_207() {
    let app = spawn_app().await;
    answer(
        &app.mocks.lucca,
        LUCCA,
        ResponseTemplate::new(401).set_body_json(json!({"title": "Unauthorized", "status": 401})),
    )
    .await;
    let body = app.create(&one_target("lucca", json!({}))).await;
    assert_eq!(body["outcome"], "failed");
    assert_eq!(body["results"]["lucca"]["error"]["kind"], "unauthorized");
}

#[tokio::test]
async fn fan_out_takes_the_slowest_target_not_the_sum() {
    let app = spawn_app().await;
    let delay = Duration::from_millis(200);
    each_creates(&app.mocks, delay, 1).await;
    // One warm-up request opens the connections and fetches any token.
    let _ = app.create(&full_body()).await;
    for server in app.mocks.all() {
        server.reset().await;
    }
    each_creates(&app.mocks, delay, 1).await;

    let started = Instant::now();
    let mut body = full_body();
    body["targets"]["chatdash"]["member"]["login_id"] = json!("nova2");
    let body = app.create(&body).await;
    let elapsed = started.elapsed();

    assert_eq!(body["outcome"], "succeeded", "{body}");
    for (p, r) in body["results"].as_object().unwrap() {
        assert!(
            r["duration_ms"].as_u64().unwrap() >= 200,
            "{p} waited for its answer"
        );
    }
    assert!(
        elapsed < 2 * delay,
        "five targets of {delay:?} each took {elapsed:?}: they ran one after the other"
    );
}

#[tokio::test]
async fn dry_run_sends_nothing_and_shows_the_exact_requests() {
    let app = spawn_app().await;
    app.mocks.expect_no_calls().await;

    let response = app.post_clients_query(&full_body(), "?dry_run=true").await;
    let text = assert_207(response).await.to_string();
    let body: Value = serde_json::from_str(&text).unwrap();

    assert_eq!(body["dry_run"], true);
    assert_eq!(body["outcome"], "planned");
    let r = &body["results"];
    for f in fixtures() {
        let p = f.name;
        assert_eq!(r[p]["status"], "planned", "{p}");
        assert_eq!(r[p]["attempts"], 0);
        assert_eq!(r[p]["request"]["method"], "POST");
        let url = format!("{}{}", app.mocks.of(f.id).uri(), f.create_path);
        assert_eq!(r[p]["request"]["url"], url, "{p}");
        let auth = r[p]["request"]["headers"]
            .as_object()
            .unwrap()
            .iter()
            .find(|(name, _)| ["authorization", "x-api-key"].contains(&name.as_str()))
            .map(|(_, v)| v.as_str().unwrap().to_owned())
            .unwrap_or_else(|| panic!("{p} shows its auth header"));
        assert!(auth.ends_with("[redacted]"), "{p}: {auth}");
    }
    let lucca = &r["lucca"]["request"];
    assert_eq!(lucca["url"], format!("{}{LUCCA}", app.mocks.lucca.uri()));
    assert_eq!(
        lucca["headers"]["authorization"],
        "lucca application=[redacted]"
    );
    assert_eq!(
        lucca["body"],
        json!({"name": "Nova Consulting Ltd", "code": "NOVA", "externalCode": "crm-4711", "ownerId": 7, "organizationId": 12})
    );
    assert_eq!(
        r["clockify"]["request"]["headers"]["x-api-key"],
        "[redacted]"
    );
    assert_eq!(
        r["chatdash"]["request"]["body"]["member"]["password"],
        "[redacted]"
    );
    assert!(r["chatdash"].get("credentials").is_none());
    for f in fixtures() {
        let (_, secret) = f.secret;
        assert!(!text.contains(secret), "{secret} leaked into the dry run");
    }
}

#[tokio::test]
async fn a_dry_run_redacts_a_password_the_caller_gave() {
    let app = spawn_app().await;
    app.mocks.expect_no_calls().await;
    let body = one_target(
        "chatdash",
        json!({"member": {"login_id": "nova", "password": "my-own-secret-pass"}}),
    );
    let text = assert_207(app.post_clients_query(&body, "?dry_run=true").await)
        .await
        .to_string();
    assert!(!text.contains("my-own-secret-pass"));
    assert!(text.contains("[redacted]"));
}

/// Bad bodies: each gets a 422 naming every field at fault, and no provider is called.
#[tokio::test]
async fn validation_failures_list_every_field_and_call_no_provider() {
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (json!({}), vec!["/client", "/targets"]),
        (
            json!({"client": {}, "targets": {"lucca": {}}}),
            vec!["/client/name"],
        ),
        (
            json!({"client": {"name": "  "}, "targets": {"lucca": {}}}),
            vec!["/client/name"],
        ),
        (
            json!({"client": {"name": "a".repeat(256)}, "targets": {"lucca": {}}}),
            vec!["/client/name"],
        ),
        (
            json!({"client": {"name": "Nova"}, "targets": {}}),
            vec!["/targets"],
        ),
        (
            json!({"client": {"name": "Nova"}, "targets": {"asana": {}}}),
            vec!["/targets/asana"],
        ),
        (
            json!({"client": {"name": "Nova", "colour": "red"}, "targets": {"lucca": {}}}),
            vec!["/client/colour"],
        ),
        (
            json!({"client": {"name": 42}, "targets": {"lucca": {}}}),
            vec!["/client/name"],
        ),
        (
            json!({"client": {"name": "Nova", "email": "not-an-email"}, "targets": {"clockify": {}}}),
            vec!["/client/email"],
        ),
        (
            json!({"client": {"name": "Nova", "language": "english"}, "targets": {"chatdash": {"member": {"login_id": "n", "name": "N"}}}}),
            vec!["/client/language"],
        ),
        (
            json!({"client": {"name": "Nova", "email_domains": ["ok.example", "no@pe"]}, "targets": {"lucca": {}}}),
            vec!["/client/email_domains/1"],
        ),
        (
            json!({"client": {"name": "Nova"}, "targets": {"lucca": "yes"}}),
            vec!["/targets/lucca"],
        ),
        (
            json!({"client": {"name": "Nova"}, "targets": {"lucca": {"organization_id": "twelve"}}}),
            vec!["/targets/lucca/organization_id"],
        ),
        (
            json!({"client": {"name": "Nova"}, "targets": {"lucca": {"organisation_id": 1}}}),
            vec!["/targets/lucca/organisation_id"],
        ),
        (
            json!({"client": {"name": "Nova"}, "targets": {"chatdash": {}}}),
            vec![
                "/targets/chatdash/member/login_id",
                "/targets/chatdash/member/name",
            ],
        ),
        (
            json!({"client": {"name": "Nova"}, "targets": {"chatdash": {"member": {"login_id": "n", "name": "N", "password": "short"}}}}),
            vec!["/targets/chatdash/member/password"],
        ),
        (
            json!({"client": {"name": "Nova"}, "targets": {"plusvibe": {}}}),
            vec![
                "/client/contact/first_name",
                "/client/contact/last_name",
                "/client/contact/email",
            ],
        ),
        (
            json!({"client": minimal_client(), "targets": {"plusvibe": {"workspaces": [{"id": "w", "permission": "ADMIN", "hide_labels": []}]}}}),
            vec!["/targets/plusvibe/workspaces/0/permission"],
        ),
        // Every selected target is checked before anything is sent: one bad target stops all.
        (
            json!({"client": minimal_client(), "targets": {"lucca": {}, "clockify": {}, "chatdash": {"member": {}}}}),
            vec!["/targets/chatdash/member/login_id"],
        ),
        (
            json!({"client": {"name": "Nova", "email": "bad"}, "targets": {"chatdash": {}, "plusvibe": {"workspaces": [1]}}}),
            vec![
                "/client/email",
                "/targets/chatdash/member/login_id",
                "/targets/chatdash/member/name",
                "/targets/plusvibe/workspaces/0",
            ],
        ),
    ];
    let app = spawn_app_with(|s| s.providers.lucca.organization_id = None).await;
    app.mocks.expect_no_calls().await;
    for (body, expected) in cases {
        let mut body = body;
        if body["targets"].get("lucca").is_some_and(Value::is_object) {
            body["targets"]["lucca"]
                .as_object_mut()
                .unwrap()
                .entry("organization_id")
                .or_insert(json!(12));
        }
        let problem = assert_problem(app.post_clients(&body).await, 422).await;
        assert_eq!(pointers(&problem), expected, "body {body}");
        for e in problem["errors"].as_array().unwrap() {
            assert!(!e["detail"].as_str().unwrap().is_empty());
        }
    }
}

#[tokio::test]
async fn a_target_without_its_required_default_is_a_422() {
    let app = spawn_app_with(|s| {
        s.providers.lucca.organization_id = None;
        s.providers.clockify.workspace_id = None;
        s.providers.plusvibe.workspace_id = None;
    })
    .await;
    app.mocks.expect_no_calls().await;
    let body = json!({"client": minimal_client(), "targets": {"lucca": {}, "clockify": {}, "plusvibe": {}}});
    let problem = assert_problem(app.post_clients(&body).await, 422).await;
    assert_eq!(
        pointers(&problem),
        [
            "/targets/clockify/workspace_id",
            "/targets/lucca/organization_id",
            "/targets/plusvibe/workspace_id"
        ]
    );
}

#[tokio::test]
async fn a_provider_without_credentials_cannot_be_selected() {
    let app = spawn_app_with(|s| {
        s.providers.clockify.api_key = None;
        s.providers.chatdash.enabled = false;
    })
    .await;
    app.mocks.expect_no_calls().await;
    let body = json!({"client": minimal_client(), "targets": {"clockify": {}, "chatdash": {"member": {"login_id": "n"}}, "lucca": {}}});
    let problem = assert_problem(app.post_clients(&body).await, 422).await;
    assert_eq!(
        pointers(&problem),
        ["/targets/chatdash", "/targets/clockify"]
    );
    let details = problem["errors"].to_string();
    assert!(details.contains("no credentials configured"), "{details}");
    assert!(details.contains("disabled"), "{details}");
}
