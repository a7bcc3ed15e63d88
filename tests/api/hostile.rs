//! A hostile world: mistyped queries, ids that are not ids, numbers and bodies from providers
//! without bounds, slow callers, floods of method names and keys, 5xx after creating, a slow
//! Redis, providers echoing credentials, duplicate keys, invisible names, forged log lines.
//! Each test asserts a bound or a refusal, through the real server (the real binary where the
//! resource is the process's).

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::*;

/// 1. A typo in the query never sends for real.
#[tokio::test]
async fn an_unknown_or_repeated_query_parameter_is_a_400_and_sends_nothing() {
    let app = spawn_app().await;
    app.mocks.expect_no_calls().await;
    for (query, named) in [
        ("?dryrun=true", "dryrun"),
        ("?dry-run=true", "dry-run"),
        ("?DRY_RUN=true", "DRY_RUN"),
        ("?dry_run[]=true", "dry_run[]"),
        ("?dry_run=true&dry_run=false", "dry_run"),
        ("?dry_run=false&verbose=1", "verbose"),
    ] {
        let response = app.post_clients_query(&full_body(), query).await;
        let problem = assert_problem(response, 400).await;
        let detail = problem["detail"].as_str().unwrap();
        assert!(detail.contains(&format!("`{named}`")), "{query}: {detail}");
    }
}

/// 3. `Retry-After: 18446744073709551615`: compared and reported, bounded, never added to a clock.
#[tokio::test]
async fn a_provider_s_huge_retry_after_is_bounded() {
    let app = spawn_app().await;
    let huge = "18446744073709551615";
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", huge))
        .expect(1)
        .mount(&app.mocks.clockify)
        .await;
    let r = &app.create(&one_target("clockify", json!({}))).await["results"]["clockify"];
    assert_eq!(r["status"], "failed", "{r}");
    assert_eq!(r["error"]["kind"], "rate_limited");
    assert_eq!(r["error"]["retry_after_s"], 86_400, "bounded to a day");
    assert_eq!(r["attempts"], 1);

    // A 503 too: it created nothing (a lookup says so), and it is not waited for.
    let app = spawn_app().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503).insert_header("retry-after", huge))
        .expect(1)
        .mount(&app.mocks.lucca)
        .await;
    fixture(clients_gateway::catalog::ProviderId::Lucca)
        .mount_not_found(&app.mocks)
        .await;
    let body = fixture(clients_gateway::catalog::ProviderId::Lucca).findable_request();
    let r = &app.create(&body).await["results"]["lucca"];
    assert_eq!(r["status"], "failed", "{r}");
    assert_eq!(r["error"]["kind"], "unavailable");
    assert_eq!(r["error"]["retry_after_s"], 86_400);
}

/// 6. A body that never ends: 408 within the body deadline, the connection closed; meanwhile the
/// probes and other callers are served. The real binary, 300 such connections.
#[tokio::test]
async fn bodies_that_never_end_are_cut_off_and_the_gateway_keeps_serving() {
    let upstream = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 1})))
        .mount(&upstream)
        .await;
    let port = free_port();
    let (_dir, config) = binary_config_file(
        port,
        &format!(
            r#"
body_timeout_ms = 1000
[telemetry]
log_level = "error"
[providers.lucca]
base_url = "{}"
api_key = "{LUCCA_KEY}"
organization_id = 12
"#,
            upstream.uri()
        ),
    );
    let mut child = start_binary(&config, port, None).await;
    let token = token_for("slow-caller");

    // 300 callers that send their headers and 10 bytes of a 1,000-byte body, then nothing.
    let attack_started = Instant::now();
    let mut stalled = Vec::new();
    for _ in 0..300 {
        let mut socket = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(
            socket,
            "POST /clients HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"client\":"
        )
        .unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(6)))
            .unwrap();
        stalled.push(socket);
    }

    // While they hang: the probe and a real caller are answered.
    let address = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    let health = http.get(format!("{address}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let (status, answer) = post_keyed(
        &http,
        &address,
        &token,
        None,
        &one_target("lucca", json!({})),
    )
    .await;
    assert_eq!(status, 207, "{answer}");

    // Each stalled caller gets its 408 and the connection is closed, within the bound.
    let answers = tokio::task::spawn_blocking(move || {
        stalled
            .into_iter()
            .map(|mut socket| {
                let mut answer = String::new();
                let read = socket.read_to_string(&mut answer);
                (read.is_ok(), answer)
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    let closed_within = attack_started.elapsed();
    for (closed, answer) in &answers {
        assert!(
            *closed,
            "the connection was closed (not left open past the bound)"
        );
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("request-timeout"), "{answer}");
    }
    assert!(
        closed_within < Duration::from_secs(6),
        "300 stalled bodies all answered within the 1 s body deadline plus margin: {closed_within:?}"
    );
    terminate(&mut child).await;
}

/// 7. Any method string is a label value no more: labels come from closed sets.
#[tokio::test]
async fn metric_labels_come_from_closed_sets_whatever_the_callers_send() {
    let app = spawn_app().await;
    // The series of methods folded into `OTHER` (other tests, running at once in this process,
    // add series of the standard methods only).
    let series = |text: &str| {
        text.lines()
            .filter(|l| l.starts_with("http_requests_total{") && l.contains("method=\"OTHER\""))
            .count()
    };
    let metrics = || async {
        app.http
            .get(format!("{}/metrics", app.address))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    // One of each: the series every test here may produce.
    for method_name in ["BREW", "PROPFIND"] {
        let m = reqwest::Method::from_bytes(method_name.as_bytes()).unwrap();
        let _ = app
            .http
            .request(m, format!("{}/clients", app.address))
            .send()
            .await;
    }
    let before = series(&metrics().await);
    for i in 0..300 {
        let name = format!("X{i}{}", "Q".repeat(i % 50));
        let m = reqwest::Method::from_bytes(name.as_bytes()).unwrap();
        for at in ["/clients", "/nowhere", "/healthz"] {
            let _ = app
                .http
                .request(m.clone(), format!("{}{at}", app.address))
                .send()
                .await;
        }
    }
    let text = metrics().await;
    assert!(!text.contains("X299"), "a method became a label value");
    let after = series(&text);
    assert!(
        after <= before + 3,
        "300 random methods on 3 routes add at most the `OTHER` series of the routes: {before} → {after}"
    );
    for line in text.lines().filter(|l| l.contains("method=\"")) {
        let method = line
            .split("method=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        assert!(
            [
                "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE",
                "OTHER"
            ]
            .contains(&method),
            "{line}"
        );
    }
}

/// 8. The in-process store is capped: past `max_keys` recent keys a new key is refused (503,
/// nothing sent), no recent key is forgotten, and the count stays at the cap. The real binary.
#[tokio::test]
async fn the_in_process_store_holds_at_most_max_keys_and_forgets_no_recent_key() {
    let upstream = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(json!({"id": 1, "name": "x".repeat(2000), "code": "C"})),
        )
        .expect(100)
        .mount(&upstream)
        .await;
    let port = free_port();
    let (_dir, config) = binary_config_file(
        port,
        &format!(
            r#"
[idempotency]
max_keys = 100
retain_s = 3600
[telemetry]
log_level = "error"
[providers.lucca]
base_url = "{}"
api_key = "{LUCCA_KEY}"
organization_id = 12
"#,
            upstream.uri()
        ),
    );
    let mut child = start_binary(&config, port, None).await;
    let address = format!("http://127.0.0.1:{port}");
    let (http, token) = (reqwest::Client::new(), token_for("many-keys"));
    let body = one_target("lucca", json!({}));

    let mut statuses = Vec::new();
    for i in 0..150 {
        let key = format!("key-{i}");
        let (status, answer) = post_keyed(&http, &address, &token, Some(&key), &body).await;
        if status == 503 {
            assert_eq!(
                answer["type"], "urn:clients-gateway:problem:store-full",
                "{answer}"
            );
        }
        statuses.push(status);
    }
    assert!(statuses[..100].iter().all(|s| *s == 207));
    assert!(
        statuses[100..].iter().all(|s| *s == 503),
        "nothing sent past the cap"
    );

    // The first key is recent: not forgotten, replayed (without the provider's body: records
    // are small).
    let (status, replay) = post_keyed(&http, &address, &token, Some("key-0"), &body).await;
    assert_eq!(status, 207);
    assert_eq!(replay["results"]["lucca"]["replayed"], true);
    assert!(replay["results"]["lucca"].get("response").is_none());

    let metrics = http
        .get(format!("{address}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let held = metrics
        .lines()
        .find(|l| l.starts_with("clients_gateway_idempotency_keys "))
        .expect("the key count is exported");
    assert_eq!(held, "clients_gateway_idempotency_keys 100");
    terminate(&mut child).await;
}

/// 9. A provider that creates the client and then answers a 5xx: found by a lookup, reported
/// `created`; never sent again, by the gateway or by a replay.
#[tokio::test]
async fn a_5xx_after_creating_is_found_and_never_sent_again() {
    for status in [500, 502, 503] {
        let app = spawn_app().await;
        app.mocks.mount_support().await;
        for f in fixtures() {
            Mock::given(method("POST"))
                .and(path(f.create_path))
                .respond_with(
                    ResponseTemplate::new(status).set_body_json(json!({"message": "oops"})),
                )
                .expect(1)
                .named(format!("{}: one create", f.name))
                .mount(app.mocks.of(f.id))
                .await;
            for mock in (f.lookup)(true) {
                mock.mount(app.mocks.of(f.id)).await;
            }
        }
        let body = full_body();
        let (_, first) =
            post_keyed(&app.http, &app.address, &app.token, Some("k-5xx"), &body).await;
        let (_, replay) =
            post_keyed(&app.http, &app.address, &app.token, Some("k-5xx"), &body).await;
        for f in fixtures() {
            let r = &first["results"][f.name];
            assert_eq!(r["status"], "created", "{status} {}: {r}", f.name);
            assert_eq!(r["reconciled"], true);
            assert_eq!(r["provider_client_id"], f.found_id);
            assert_eq!(replay["results"][f.name]["replayed"], true);
        }
    }
}

/// 9. After a 5xx, a create is sent again only once a lookup shows it is not there — by the
/// gateway (a 503) or by a replay (any 5xx).
#[tokio::test]
async fn after_a_5xx_a_create_is_sent_again_only_when_a_lookup_does_not_find_it() {
    let app = spawn_app().await;
    app.mocks.mount_support().await;
    let mut failed_on_502 = Vec::new();
    for f in fixtures() {
        // 503 then created: sent twice, the lookup in between finding nothing.
        answer_first_then(
            app.mocks.of(f.id),
            Some(f.create_path),
            ResponseTemplate::new(503),
            1,
            f.created(),
            1,
        )
        .await;
        f.mount_not_found(&app.mocks).await;
        failed_on_502.push(f.name);
    }
    let first = app.create(&full_body()).await;
    for f in fixtures() {
        let r = &first["results"][f.name];
        assert_eq!(r["status"], "created", "{}: {r}", f.name);
        assert_eq!(r["attempts"], 2, "{}", f.name);
        assert_eq!(r["reconciled"], false);
    }

    // A 502, nothing found: failed. On the replay the provider has the client after all (it
    // acted late): found, not sent again.
    let app = spawn_app().await;
    app.mocks.mount_support().await;
    for f in fixtures() {
        Mock::given(method("POST"))
            .and(path(f.create_path))
            .respond_with(ResponseTemplate::new(502))
            .expect(1)
            .mount(app.mocks.of(f.id))
            .await;
        for mock in (f.lookup)(false) {
            mock.up_to_n_times(1)
                .with_priority(1)
                .mount(app.mocks.of(f.id))
                .await;
        }
        for mock in (f.lookup)(true) {
            mock.with_priority(2).mount(app.mocks.of(f.id)).await;
        }
    }
    let body = full_body();
    let (_, first) = post_keyed(&app.http, &app.address, &app.token, Some("k-502"), &body).await;
    let (_, replay) = post_keyed(&app.http, &app.address, &app.token, Some("k-502"), &body).await;
    for f in fixtures() {
        assert_eq!(first["results"][f.name]["status"], "failed", "{}", f.name);
        let r = &replay["results"][f.name];
        assert_eq!(r["status"], "created", "{}: {r}", f.name);
        assert_eq!(r["reconciled"], true);
        assert_eq!(r["provider_client_id"], f.found_id);
    }
}

/// 10. A Redis slower than the claim's timeout: 503, nothing sent — and the claim that landed
/// anyway is given up, so the retry runs at once (not 409, not unknown).
#[tokio::test]
async fn a_claim_that_timed_out_does_not_strand_its_key() {
    let redis = RedisServer::start().await;
    let proxy = TcpProxy::to(redis.port()).await;
    let app = spawn_app_with(|s| {
        s.idempotency.redis_url = Some(proxy.url().into());
    })
    .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 7})))
        .expect(2)
        .mount(&app.mocks.lucca)
        .await;
    let body = one_target("lucca", json!({}));
    let ready = || async {
        let url = format!("{}/readyz", app.address);
        app.http.get(url).send().await.unwrap().status() == 200
    };
    // While Redis is fast: the connection is opened, the scripts are loaded (so that the slow
    // claim below does land in Redis).
    assert!(ready().await);
    let warm = post_keyed(&app.http, &app.address, &app.token, Some("k-warm"), &body).await;
    assert_eq!(warm.0, 207);

    proxy.delay(Duration::from_millis(1500));
    let (status, problem) =
        post_keyed(&app.http, &app.address, &app.token, Some("k-slow"), &body).await;
    assert_eq!(status, 503, "{problem}");
    assert_eq!(
        problem["type"],
        "urn:clients-gateway:problem:store-unavailable"
    );
    proxy.delay(Duration::ZERO);
    // Redis answers promptly again (the answers held back have drained).
    let started = Instant::now();
    while !ready().await {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "Redis never answered again"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let (status, answer) =
        post_keyed(&app.http, &app.address, &app.token, Some("k-slow"), &body).await;
    assert_eq!(status, 207, "the retry runs: {answer}");
    assert_eq!(answer["results"]["lucca"]["status"], "created");
}

/// 11. A provider that puts a credential in its error: it is relayed redacted.
#[tokio::test]
async fn a_credential_a_provider_echoes_is_not_relayed() {
    for f in fixtures() {
        let app = spawn_app().await;
        app.mocks.mount_support().await;
        let (_, secret) = f.secret;
        let echo = format!("invalid credential {secret}");
        Mock::given(method("POST"))
            .and(path(f.create_path))
            .respond_with(ResponseTemplate::new(400).set_body_json(json!({
                "message": echo, "error": echo, "title": echo, "detail": {"key": secret, secret: 1}
            })))
            .expect(1)
            .mount(app.mocks.of(f.id))
            .await;
        let answer = app.create(&f.minimal_request()).await;
        let r = &answer["results"][f.name];
        assert_eq!(r["status"], "failed", "{}: {r}", f.name);
        let text = answer.to_string();
        assert!(!text.contains(secret), "{}: {text}", f.name);
        assert!(
            r["error"]["message"]
                .as_str()
                .unwrap()
                .contains("[redacted]"),
            "{}: {r}",
            f.name
        );
        assert_eq!(r["error"]["provider_error"]["detail"]["key"], "[redacted]");
    }
}

/// Duplicate keys are refused everywhere in the body, options included; a name made of
/// invisible characters or carrying bidirectional controls is refused.
#[tokio::test]
async fn duplicate_keys_and_invisible_names_are_refused() {
    let app = spawn_app().await;
    app.mocks.expect_no_calls().await;
    let cases: [(&str, &str); 6] = [
        (
            r#"{"client": {"name": "A", "name": "B"}, "targets": {"lucca": {}}}"#,
            "/client/name",
        ),
        (
            r#"{"client": {"name": "A"}, "targets": {"lucca": {"organization_id": 12, "organization_id": 13}}}"#,
            "/targets/lucca/organization_id",
        ),
        (
            r#"{"client": {"name": "A"}, "targets": {"lucca": {}, "lucca": {}}}"#,
            "/targets/lucca",
        ),
        (
            r#"{"client": {"name": "A"}, "targets": {"chatdash": {"member": {"login_id": "a", "login_id": "b"}}}}"#,
            "/targets/chatdash/member/login_id",
        ),
        (
            r#"{"client": {"name": "\u200b\u2060\ufeff "}, "targets": {"lucca": {}}}"#,
            "/client/name",
        ),
        (
            r#"{"client": {"name": "Nova\u202e Ltd"}, "targets": {"lucca": {}}}"#,
            "/client/name",
        ),
    ];
    for (body, pointer) in cases {
        let response = app
            .http
            .post(format!("{}/clients", app.address))
            .bearer_auth(&app.token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let problem = assert_problem(response, 422).await;
        assert_eq!(pointers(&problem), [pointer], "{body}");
    }
}

/// A caller's `sub` with a newline and an ANSI escape cannot forge or recolour a text log line.
#[tokio::test]
async fn a_subject_cannot_forge_a_text_log_line() {
    let port = free_port();
    let (dir, config) = binary_config_file(
        port,
        &format!(
            r#"
[telemetry]
log_level = "info"
log_format = "text"
[providers.lucca]
api_key = "{LUCCA_KEY}"
organization_id = 12
"#
        ),
    );
    let log = std::fs::File::create(dir.path().join("gateway.log")).unwrap();
    let mut child = start_binary(&config, port, Some(log)).await;
    let forged = "mallory\n2026-01-01T00:00:00Z  INFO FORGED admin logged in \u{1b}[31m";
    // A dry run: it passes validation and gets its log line, and sends nothing.
    let response = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/clients?dry_run=true"))
        .bearer_auth(token_for(forged))
        .json(&json!({"client": {"name": "A"}, "targets": {"lucca": {}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 207);
    terminate(&mut child).await;
    let logs = std::fs::read_to_string(dir.path().join("gateway.log")).unwrap();
    let finished: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("clients request finished"))
        .collect();
    assert_eq!(finished.len(), 1, "{logs}");
    assert!(
        finished[0].contains("mallory\\u{a}"),
        "escaped on its line: {}",
        finished[0]
    );
    assert!(
        !logs.lines().any(|l| l
            .trim_start()
            .starts_with("2026-01-01T00:00:00Z  INFO FORGED")),
        "no forged line: {logs}"
    );
    assert!(!logs.contains('\u{1b}'), "no raw escape reaches the log");
}

/// 9b. An answer that is neither a success nor a refusal (a 303, a 307, an unasked 101) does not
/// prove that nothing was created either: found by a lookup, reported `created`, never sent
/// again, by the gateway or by a replay.
#[tokio::test]
async fn a_redirect_or_an_unasked_101_after_creating_is_found_and_never_sent_again() {
    for status in [303, 307, 101] {
        let app = spawn_app().await;
        app.mocks.mount_support().await;
        for f in fixtures() {
            Mock::given(method("POST"))
                .and(path(f.create_path))
                .respond_with(ResponseTemplate::new(status).insert_header("location", "/elsewhere"))
                .expect(1)
                .named(format!("{}: one create", f.name))
                .mount(app.mocks.of(f.id))
                .await;
            for mock in (f.lookup)(true) {
                mock.mount(app.mocks.of(f.id)).await;
            }
        }
        let body = full_body();
        let key = format!("k-{status}");
        let (_, first) = post_keyed(&app.http, &app.address, &app.token, Some(&key), &body).await;
        let (_, replay) = post_keyed(&app.http, &app.address, &app.token, Some(&key), &body).await;
        for f in fixtures() {
            let r = &first["results"][f.name];
            assert_eq!(r["status"], "created", "{status} {}: {r}", f.name);
            assert_eq!(r["reconciled"], true, "{status} {}", f.name);
            assert_eq!(r["provider_client_id"], f.found_id);
            assert_eq!(replay["results"][f.name]["replayed"], true);
        }
    }
}
