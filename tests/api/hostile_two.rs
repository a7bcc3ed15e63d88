//! A hostile world, round two: tokens and proxy credentials echoed back, credentials in URLs,
//! answers that are neither a success nor a refusal, a hung token endpoint, files that never
//! end, ids that are not ids, a Redis that never answers, signals. Each test fails without its
//! fix.

use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::*;

/// The missionX token endpoint handing out `first`, then `then` on every later request.
async fn tokens(server: &MockServer, first: &str, then: &str) {
    for (token, priority, times) in [(first, 1, Some(1)), (then, 2, None)] {
        let mock = Mock::given(method("POST"))
            .and(path("/v2/auth/token"))
            .respond_with(ResponseTemplate::new(200).set_body_json(
                json!({"access_token": token, "token_type": "Bearer", "expires_in": 14400}),
            ))
            .with_priority(priority);
        match times {
            Some(n) => mock.up_to_n_times(n).mount(server).await,
            None => mock.mount(server).await,
        }
    }
}

/// An OAuth token echoed back is scrubbed even when it is not the current one any more: what
/// was sent is scrubbed, not only what is cached.
#[tokio::test]
async fn an_earlier_token_echoed_back_is_scrubbed() {
    let app = spawn_app().await;
    let server = &app.mocks.missionx;
    tokens(server, "first-token-9f3a", "second-token-7c1e").await;
    // The first token is refused (401): the gateway fetches the second and sends again; that
    // answer echoes both tokens.
    Mock::given(method("POST"))
        .and(path("/v2/clients"))
        .and(header("authorization", "Bearer first-token-9f3a"))
        .respond_with(ResponseTemplate::new(401))
        .mount(server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v2/clients"))
        .and(header("authorization", "Bearer second-token-7c1e"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "message": "rejected; earlier you sent first-token-9f3a, now second-token-7c1e"
        })))
        .mount(server)
        .await;
    let answer = app.create(&one_target("missionx", json!({}))).await;
    let text = answer.to_string();
    assert_eq!(
        answer["results"]["missionx"]["status"], "failed",
        "{answer}"
    );
    assert!(
        !text.contains("first-token-9f3a") && !text.contains("second-token-7c1e"),
        "{text}"
    );
}

/// A forward proxy (plain HTTP) that answers every request 400 with the request's headers as
/// its body, as a misconfigured proxy may.
async fn echoing_proxy() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut chunk = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&chunk[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&head).into_owned();
                let body = json!({ "message": format!("bad request: {text}") }).to_string();
                let answer = format!(
                    "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(answer.as_bytes()).await;
            });
        }
    });
    port
}

/// The proxy's credentials are scrubbed in every form a proxy may echo: the `Basic` credential
/// of `Proxy-Authorization` too.
#[tokio::test]
async fn a_proxy_echoing_its_credentials_base64_encoded_is_scrubbed() {
    let proxy = echoing_proxy().await;
    let port = free_port();
    let (_dir, config) = binary_config_file(
        port,
        &format!(
            "[proxy]\nurl = \"http://gw:Pr0xy-Secret@127.0.0.1:{proxy}\"\n\
                 [providers.lucca]\nbase_url = \"http://lucca.example.invalid\"\n\
                 api_key = \"{LUCCA_KEY}\"\norganization_id = 12\n"
        ),
    );
    let mut child = start_binary(&config, port, None).await;
    let http = reqwest::Client::new();
    let (status, answer) = post_keyed(
        &http,
        &format!("http://127.0.0.1:{port}"),
        &token_for("proxied"),
        None,
        &one_target("lucca", json!({})),
    )
    .await;
    assert_eq!(status, 207, "{answer}");
    let text = answer.to_string();
    assert!(
        text.contains("Proxy-Authorization") || text.contains("proxy-authorization"),
        "the proxy echoed its request headers: {text}"
    );
    // base64("gw:Pr0xy-Secret")
    assert!(!text.contains("Z3c6UHIweHktU2VjcmV0"), "{text}");
    assert!(!text.contains("Pr0xy-Secret"), "{text}");
    assert!(!text.contains(LUCCA_KEY), "{text}");
    terminate(&mut child).await;
}

/// A password in a provider's `base_url` (or `token_url`, or the JWKS URL) is refused at start:
/// a URL is shown in dry runs and errors, credentials belong in `*_file` secrets.
#[tokio::test]
async fn credentials_in_a_url_are_refused_at_start_without_being_shown() {
    for (section, key) in [
        (
            "[providers.clockify]\napi_key = \"k\"\nbase_url",
            "providers.clockify.base_url",
        ),
        (
            "[providers.missionx]\naccess_token = \"t\"\ntoken_url",
            "token_url",
        ),
        ("[auth]\njwks_url", "auth.jwks_url"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let text = format!("{section} = \"https://user:S3cret-Pw@api.example/x\"\n");
        let config = dir.path().join("gateway.toml");
        std::fs::write(&config, text).unwrap();
        let out = check_config(&config, &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{key}");
        assert!(
            err.contains(key) && err.contains("credentials"),
            "{key}: {err}"
        );
        assert!(!err.contains("S3cret-Pw"), "{err}");
    }
}

/// Files read at start are bounded (`/dev/zero` is refused, not read), an empty secret file is
/// refused, a JWKS that is a file is refused: each a clear error at start.
#[tokio::test]
async fn start_up_files_are_bounded_and_blank_secrets_refused() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\n").unwrap();
    let cases = [
        (
            "[providers.lucca]\napi_key_file = \"/dev/zero\"\n".to_owned(),
            "larger than",
        ),
        (
            "[auth]\npublic_key_pem_file = \"/dev/zero\"\n".to_owned(),
            "larger than",
        ),
        (
            format!(
                "[providers.lucca]\napi_key_file = \"{}\"\n",
                empty.display()
            ),
            "is empty",
        ),
        (
            "[auth]\njwks_url = \"file:///etc/passwd\"\n".to_owned(),
            "auth.jwks_url must be an http(s) URL",
        ),
    ];
    for (text, expected) in cases {
        let config = dir.path().join("gateway.toml");
        std::fs::write(&config, &text).unwrap();
        let started = Instant::now();
        let out = check_config(&config, &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{text}");
        assert!(err.contains(expected), "{text}: {err}");
        assert!(started.elapsed() < Duration::from_secs(5), "{text}");
    }
    let out = check_config("/dev/zero", &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("larger than"));
}

/// A token's lifetime that would wrap its `exp` is refused.
#[tokio::test]
async fn a_token_lifetime_past_the_bound_is_refused() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_clients-gateway"))
        .args(["token", "--sub", "a", "--ttl", "18446744073709551615s"])
        .env("CLIENTS_GATEWAY__AUTH__HS256_SECRET", JWT_SECRET)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("lifetime must be between"));
    assert!(out.stdout.is_empty(), "no token printed");
}

/// An id a provider answers is bounded and printable: a huge one, or one with control or
/// bidirectional-text characters, is not an id (the target is `unknown`: it was probably
/// created), and never comes back to the caller as it came.
#[tokio::test]
async fn an_id_that_is_not_one_is_refused_as_an_invalid_answer() {
    for id in [
        "x".repeat(300_000),
        "a\r\nSet-Cookie: b".into(),
        "abc\u{1b}[2J".into(),
        "ab\u{202E}cd".into(),
    ] {
        let app = spawn_app().await;
        Mock::given(method("POST"))
            .respond_with(
                ResponseTemplate::new(201).set_body_json(json!({"id": id, "name": "Nova"})),
            )
            .mount(&app.mocks.clockify)
            .await;
        let answer = app.create(&one_target("clockify", json!({}))).await;
        let r = &answer["results"]["clockify"];
        assert_eq!(r["status"], "unknown", "{r}");
        assert_eq!(r["error"]["kind"], "invalid_response");
        assert!(r.get("provider_client_id").is_none());
        assert!(!answer.to_string().contains(&id), "the id is not answered");
    }
}

/// However the missionX token endpoint hangs, every answer comes within the deadline (the
/// scrubbing step never waits for a token being fetched).
#[tokio::test]
async fn a_hung_token_endpoint_never_makes_an_answer_overrun_its_deadline() {
    let app = spawn_app_with(|s| {
        s.server.deadline_ms = 1_500;
        s.providers.missionx.timeout_ms = 1_500;
    })
    .await;
    Mock::given(method("POST"))
        .and(path("/v2/auth/token"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(30)))
        .mount(&app.mocks.missionx)
        .await;
    let body = one_target("missionx", json!({}));
    let sends = (0..8).map(|i| {
        let app = &app;
        let body = body.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(180 * i)).await;
            let started = Instant::now();
            let answer = app.create(&body).await;
            (started.elapsed(), answer)
        }
    });
    for (took, answer) in futures_util::future::join_all(sends).await {
        assert!(
            took < Duration::from_millis(1_900),
            "answered after {took:?} (deadline 1.5 s): {answer}"
        );
        assert_eq!(
            answer["results"]["missionx"]["status"], "failed",
            "{answer}"
        );
    }
}

/// A Redis that accepts connections and never answers (or something else on its port) gets a
/// keyed request its 503 within about a second, nothing sent.
#[tokio::test]
async fn a_black_holed_redis_fails_a_keyed_request_within_a_second() {
    let hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = hole.local_addr().unwrap().port();
    let _held = std::thread::spawn(move || {
        let mut open = Vec::new();
        for socket in hole.incoming().flatten() {
            open.push(socket);
        }
    });
    let app = spawn_app_with(|s| {
        s.idempotency.redis_url = Some(format!("redis://127.0.0.1:{port}/0").into());
    })
    .await;
    app.mocks.expect_no_calls().await;
    let started = Instant::now();
    let (status, problem) = post_keyed(
        &app.http,
        &app.address,
        &app.token,
        Some("k-black-hole"),
        &one_target("lucca", json!({})),
    )
    .await;
    assert_eq!(status, 503, "{problem}");
    assert!(
        started.elapsed() < Duration::from_millis(2_500),
        "{:?}",
        started.elapsed()
    );
}

/// SIGHUP does not end the process: it is ignored (and logged), requests go on.
#[tokio::test]
async fn sighup_is_ignored() {
    let port = free_port();
    let (_dir, config) = binary_config_file(port, "");
    let mut child = start_binary(&config, port, None).await;
    child.signal("HUP");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(child.try_wait().unwrap().is_none(), "the process lives");
    let health = reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    terminate(&mut child).await;
}
