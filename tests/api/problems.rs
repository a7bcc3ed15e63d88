//! Requests refused before fan-out: problem JSON with the right status, and no provider called.

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn malformed_json_is_400() {
    let app = spawn_app().await;
    app.mocks.expect_no_calls().await;
    for raw in ["{\"client\": ", "{'client': 1}", "", "{} {}"] {
        let response = app
            .http
            .post(format!("{}/clients", app.address))
            .bearer_auth(&app.token)
            .header("content-type", "application/json")
            .body(raw)
            .send()
            .await
            .unwrap();
        let problem = assert_problem(response, 400).await;
        assert_eq!(
            problem["type"], "urn:clients-gateway:problem:malformed-json",
            "{raw}"
        );
    }
}

#[tokio::test]
async fn a_body_that_is_not_an_object_is_422_at_the_root() {
    let app = spawn_app().await;
    app.mocks.expect_no_calls().await;
    for body in [json!([]), json!("client"), json!(5), json!(null)] {
        let problem = assert_problem(app.post_clients(&body).await, 422).await;
        assert_eq!(pointers(&problem), [""], "{body}");
    }
}

#[tokio::test]
async fn not_json_is_415() {
    let app = spawn_app().await;
    app.mocks.expect_no_calls().await;
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let mut request = app
            .http
            .post(format!("{}/clients", app.address))
            .bearer_auth(&app.token)
            .body(full_body().to_string());
        if let Some(ct) = content_type {
            request = request.header("content-type", ct);
        }
        assert_problem(request.send().await.unwrap(), 415).await;
    }
    let response = app
        .http
        .post(format!("{}/clients", app.address))
        .bearer_auth(&app.token)
        .header(
            "content-type",
            "application/merge-patch+json; charset=utf-8",
        )
        .body("[]")
        .send()
        .await
        .unwrap();
    assert_problem(response, 422).await;
}

#[tokio::test]
async fn a_body_over_the_limit_is_413() {
    let app = spawn_app_with(|s| s.server.body_limit_bytes = 4096).await;
    app.mocks.expect_no_calls().await;
    let mut body = full_body();
    body["client"]["note"] = json!("x".repeat(5000));
    let problem = assert_problem(app.post_clients(&body).await, 413).await;
    assert!(problem["detail"].as_str().unwrap().contains("4096"));

    // Without a Content-Length (chunked), the limit holds as the body streams in.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = vec![
        Ok(b"{\"client\":{\"note\":\"".to_vec()),
        Ok(vec![b'x'; 5000]),
        Ok(b"\"}}".to_vec()),
    ];
    let response = app
        .http
        .post(format!("{}/clients", app.address))
        .bearer_auth(&app.token)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert_problem(response, 413).await;
}

#[tokio::test]
async fn a_missing_or_bad_token_is_401_before_the_body_is_read() {
    let app = spawn_app().await;
    app.mocks.expect_no_calls().await;
    let url = format!("{}/clients", app.address);
    let response = app.http.post(&url).json(&full_body()).send().await.unwrap();
    assert_eq!(
        response.headers()["www-authenticate"],
        "Bearer realm=\"clients-gateway\""
    );
    assert_problem(response, 401).await;

    for auth in ["Basic dXNlcjpwYXNz", "Bearer garbage", "Bearer "] {
        let response = app
            .http
            .post(&url)
            .header("authorization", auth)
            .header("content-type", "text/plain")
            .body("not even json")
            .send()
            .await
            .unwrap();
        let challenge = response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            challenge.starts_with("Bearer error=\"invalid_token\""),
            "{auth}: {challenge}"
        );
        assert_problem(response, 401).await;
    }
}

#[tokio::test]
async fn a_token_without_the_scope_is_403() {
    let app = spawn_app().await;
    app.mocks.expect_no_calls().await;
    let token = clients_gateway::auth::mint(
        &JWT_SECRET.to_owned().into(),
        &Default::default(),
        "reader",
        "clients:read",
        std::time::Duration::from_secs(60),
    )
    .unwrap();
    let response = app
        .http
        .post(format!("{}/clients", app.address))
        .bearer_auth(token)
        .json(&full_body())
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["www-authenticate"],
        "Bearer error=\"insufficient_scope\", scope=\"clients:write\""
    );
    assert_problem(response, 403).await;
}

#[tokio::test]
async fn unknown_paths_and_methods_are_problems() {
    let app = spawn_app().await;
    let response = app
        .http
        .get(format!("{}/nowhere", app.address))
        .send()
        .await
        .unwrap();
    assert_problem(response, 404).await;
    let response = app
        .http
        .get(format!("{}/clients", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["allow"], "POST");
    assert_problem(response, 405).await;
    let response = app
        .http
        .post(format!("{}/healthz", app.address))
        .send()
        .await
        .unwrap();
    assert_problem(response, 405).await;
}

#[tokio::test]
async fn a_bad_query_is_400() {
    let app = spawn_app().await;
    app.mocks.expect_no_calls().await;
    let response = app.post_clients_query(&full_body(), "?dry_run=maybe").await;
    assert_problem(response, 400).await;
}

#[tokio::test]
async fn the_request_id_is_echoed_or_generated() {
    let app = spawn_app().await;
    let response = app
        .http
        .post(format!("{}/clients", app.address))
        .header("x-request-id", "req-42")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "req-42");
    let problem = assert_problem(response, 401).await;
    assert_eq!(problem["request_id"], "req-42");

    let response = app
        .http
        .get(format!("{}/healthz", app.address))
        .header("x-request-id", "bad id with spaces")
        .send()
        .await
        .unwrap();
    let generated = response.headers()["x-request-id"].to_str().unwrap();
    assert_ne!(generated, "bad id with spaces");
    assert_eq!(generated.len(), 36);
}

#[tokio::test]
async fn probes_answer() {
    let app = spawn_app().await;
    for (path, status) in [("/healthz", "ok"), ("/readyz", "ready")] {
        let response = app
            .http
            .get(format!("{}{path}", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["status"], status);
    }
}

/// An unknown field is one fault among the others: every field at fault is listed in one answer
/// (an unknown field used to hide the rest).
#[tokio::test]
async fn an_unknown_field_does_not_hide_the_other_faults() {
    let app = spawn_app().await;
    app.mocks.expect_no_calls().await;
    let body = json!({
        "client": {
            "name": " ",
            "emial": "billing@nova.example",
            "email": "not-an-email",
            "language": "EN",
            "contact": { "email": "nope", "nickname": "N" }
        },
        "targets": { "lucca": {}, "acme": {} },
        "if_exist": "adopt"
    });
    let problem = assert_problem(app.post_clients(&body).await, 422).await;
    let mut got = pointers(&problem);
    got.sort();
    let mut expected = vec![
        "/client/emial",
        "/client/contact/nickname",
        "/if_exist",
        "/client/name",
        "/client/email",
        "/client/language",
        "/client/contact/email",
        "/targets/acme",
    ];
    expected.sort();
    assert_eq!(got, expected, "{problem}");
}
