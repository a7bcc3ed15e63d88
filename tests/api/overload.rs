//! Overload, against the real binary: a memory budget from the configuration, a burst above it
//! against slow providers, refused callers that keep sending, the probes on their own listener.
//! Each test asserts a bound (requests admitted at once, connections held), not a duration.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::*;

/// A metric's value in `/metrics` at `address`.
async fn metric(http: &reqwest::Client, address: &str, name: &str) -> Option<f64> {
    let text = http
        .get(format!("{address}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find(|l| l.starts_with(name) && !l.starts_with('#'))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// A Lucca mock that creates after `delay`.
async fn slow_lucca(delay: Duration) -> MockServer {
    let lucca = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(json!({"id": 7, "name": "Nova"}))
                .set_delay(delay),
        )
        .mount(&lucca)
        .await;
    lucca
}

/// Lucca at `lucca`, with time enough for a burst to wait for its connections.
/// The creates `server` received.
async fn posts(server: &MockServer) -> usize {
    let received = server.received_requests().await.unwrap();
    received
        .iter()
        .filter(|r| r.method.as_str() == "POST")
        .count()
}

fn lucca_section(lucca: &MockServer) -> String {
    format!(
        "[providers.lucca]\nbase_url = \"{}\"\napi_key = \"{LUCCA_KEY}\"\norganization_id = 12\n\
         max_connections = 250\ntimeout_ms = 9000\n",
        lucca.uri()
    )
}

/// A burst above the budget: some requests get `503 overloaded` with `Retry-After`, decided
/// before anything is read or sent; those admitted never exceed the capacity the gateway
/// computed; the probes answer meanwhile; after the burst every request is admitted again.
#[tokio::test]
async fn a_burst_above_the_budget_is_shed_and_the_admitted_never_exceed_the_capacity() {
    let lucca = slow_lucca(Duration::from_millis(1500)).await;
    let (port, ops) = (free_port(), free_port());
    let (_dir, config) = binary_config_file(
        port,
        &format!(
            // Small heads and bodies: a connection holds less than a request in flight, so
            // the requests, not the connection cap, fill the budget.
            "memory_budget_mb = 64\nops_bind = \"127.0.0.1:{ops}\"\n\
                 body_limit_bytes = 4096\nheader_limit_bytes = 4096\n\
                 [idempotency]\nmax_keys = 100\n[telemetry]\nlog_level = \"warn\"\n{}",
            lucca_section(&lucca)
        ),
    );
    let mut child = start_binary(&config, port, None).await;
    let address = format!("http://127.0.0.1:{port}");
    let ops_address = format!("http://127.0.0.1:{ops}");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let token = token_for("burst");
    let body = one_target("lucca", json!({}));

    // One request teaches the gateway the cost of such a request: the capacity follows.
    let (status, _) = post_keyed(&http, &address, &token, None, &body).await;
    assert_eq!(status, 207);
    let capacity = metric(&http, &ops_address, "clients_gateway_admission_capacity")
        .await
        .expect("the capacity is exported") as usize;
    assert!(
        (16..2_000).contains(&capacity),
        "a 64 MiB budget holds some requests: {capacity}"
    );
    let before = posts(&lucca).await;

    // The burst: more callers than the capacity, each on its own connection.
    let burst = capacity + 150;
    let sends = (0..burst).map(|_| {
        let (address, token, body) = (address.clone(), token.clone(), body.clone());
        async move {
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .pool_max_idle_per_host(0)
                .build()
                .unwrap();
            let response = http
                .post(format!("{address}/clients"))
                .bearer_auth(&token)
                .json(&body)
                .send()
                .await
                .expect("every caller is answered");
            let status = response.status().as_u16();
            let retry_after = response.headers().get("retry-after").cloned();
            let closes = response
                .headers()
                .get("connection")
                .is_some_and(|v| v == "close");
            let body: Value = response.json().await.unwrap_or(Value::Null);
            (status, retry_after, closes, body)
        }
    });
    let burst_task = tokio::spawn(futures_util::future::join_all(sends));
    // The requests in flight, sampled every 50 ms while the burst lasts.
    let sampling = {
        let (http, ops_address) = (http.clone(), ops_address.clone());
        tokio::spawn(async move {
            let mut most = 0.0f64;
            for _ in 0..100 {
                if let Some(n) =
                    metric(&http, &ops_address, "clients_gateway_requests_in_flight").await
                {
                    most = most.max(n);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            most
        })
    };

    // While the admitted requests wait for Lucca, the probes answer (on the ops listener and
    // on the main one).
    tokio::time::sleep(Duration::from_millis(600)).await;
    for at in [&ops_address, &address] {
        let health = http.get(format!("{at}/healthz")).send().await.unwrap();
        assert_eq!(health.status(), 200, "{at}/healthz during the burst");
    }
    let ready = http
        .get(format!("{ops_address}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        ready.status(),
        200,
        "shedding does not make the pod unready"
    );

    let answers = burst_task.await.unwrap();
    let in_flight_at_most = sampling.await.unwrap() as usize;
    let admitted = answers.iter().filter(|a| a.0 == 207).count();
    let shed: Vec<_> = answers.iter().filter(|a| a.0 == 503).collect();
    assert_eq!(
        admitted + shed.len(),
        burst,
        "every caller got a 207 or a 503: {:?}",
        answers.iter().map(|a| a.0).collect::<Vec<_>>()
    );
    // Callers past the connection cap wait to be accepted (the cap keeps the bodies they may
    // send with their heads within the budget): some are admitted later, never more at once.
    assert!(
        in_flight_at_most <= capacity,
        "in flight at once {in_flight_at_most}, capacity {capacity}"
    );
    assert!(
        admitted < burst && !shed.is_empty(),
        "a burst above the capacity is not all admitted: {admitted} of {burst}"
    );
    for (_, retry_after, closes, problem) in &shed {
        assert_eq!(problem["type"], "urn:clients-gateway:problem:overloaded");
        assert_eq!(problem["status"], 503);
        let seconds: u64 = retry_after
            .as_ref()
            .expect("Retry-After")
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=30).contains(&seconds), "{seconds}");
        assert!(*closes, "a shed caller's connection is closed");
    }
    let received = posts(&lucca).await - before;
    for (_, _, _, answer) in answers.iter().filter(|a| a.0 == 207) {
        assert_eq!(answer["results"]["lucca"]["status"], "created", "{answer}");
    }
    assert_eq!(
        received,
        admitted,
        "Lucca received exactly the admitted requests, nothing for the shed ones ({} shed)",
        shed.len()
    );
    let shed_total = metric(&http, &ops_address, "clients_gateway_shed_total")
        .await
        .unwrap();
    assert_eq!(shed_total as usize, shed.len());

    // After the burst, everything is admitted again.
    let after = futures_util::future::join_all(
        (0..20).map(|_| post_keyed(&http, &address, &token, None, &body)),
    )
    .await;
    assert!(after.iter().all(|(s, _)| *s == 207), "{after:?}");
    terminate(&mut child).await;
}

/// The ops listener serves the probes and the metrics, nothing else; the metrics carry the
/// budget.
#[tokio::test]
async fn the_ops_listener_serves_probes_and_metrics_only() {
    let lucca = slow_lucca(Duration::ZERO).await;
    let (port, ops) = (free_port(), free_port());
    let (_dir, config) = binary_config_file(
        port,
        &format!(
            "memory_budget_mb = 128\nops_bind = \"127.0.0.1:{ops}\"\n{}",
            lucca_section(&lucca)
        ),
    );
    let mut child = start_binary(&config, port, None).await;
    let ops_address = format!("http://127.0.0.1:{ops}");
    let http = reqwest::Client::new();
    for path in ["/healthz", "/readyz", "/metrics"] {
        let r = http
            .get(format!("{ops_address}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
    for path in ["/clients", "/openapi.json", "/swagger-ui/"] {
        let r = http
            .get(format!("{ops_address}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{path} is not on the ops listener");
    }
    let limit = metric(&http, &ops_address, "clients_gateway_memory_limit_bytes")
        .await
        .unwrap();
    assert_eq!(limit, (128u64 << 20) as f64, "the configured budget");
    let budget = metric(&http, &ops_address, "clients_gateway_memory_budget_bytes")
        .await
        .unwrap();
    assert!(budget < limit);
    assert!(
        metric(&http, &ops_address, "clients_gateway_memory_in_use_bytes")
            .await
            .unwrap()
            > 0.0
    );
    terminate(&mut child).await;
}

/// A start whose budget leaves no room for requests is refused, with the figures.
#[tokio::test]
async fn a_budget_the_fixed_costs_fill_is_refused_at_start() {
    let (_dir, config) = binary_config_file(
        free_port(),
        "memory_budget_mb = 64\n[idempotency]\nmax_keys = 30000\n",
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_clients-gateway"))
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("leaves no room for requests") && err.contains("idempotency.max_keys"),
        "{err}"
    );
}

/// What a refused caller that keeps sending its chunked body sees: its answer, then the end of
/// the connection (or a reset) — how long after the answer it came, `None` if it did not come
/// within `wait`.
async fn refused_while_sending(
    address: &str,
    head: &str,
    wait: Duration,
) -> (String, Option<Duration>) {
    let stream = TcpStream::connect(address).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    writer.write_all(head.as_bytes()).await.unwrap();
    let sender = tokio::spawn(async move {
        // A body that never ends: a chunk every 50 ms.
        let chunk = format!("400\r\n{}\r\n", "x".repeat(1024));
        for _ in 0..400 {
            if writer.write_all(chunk.as_bytes()).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let mut answer = Vec::new();
    let mut answered_at = None;
    let started = tokio::time::Instant::now();
    let mut buf = [0u8; 4096];
    let closed = loop {
        let left = (started + wait + Duration::from_secs(3))
            .saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, reader.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(n)) => {
                answer.extend_from_slice(&buf[..n]);
                if answered_at.is_none() && answer.windows(4).any(|w| w == b"\r\n\r\n") {
                    answered_at = Some(tokio::time::Instant::now());
                }
            }
            Err(_) => break false,
        }
    };
    sender.abort();
    let text = String::from_utf8_lossy(&answer).into_owned();
    let after = answered_at.map(|at| at.elapsed());
    (
        text,
        closed.then_some(after).flatten().filter(|d| *d <= wait),
    )
}

fn chunked_head(content_type: &str, token: Option<&str>) -> String {
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    format!(
        "POST /clients HTTP/1.1\r\nHost: gateway\r\n{auth}Content-Type: {content_type}\r\n\
         Transfer-Encoding: chunked\r\n\r\n"
    )
}

/// Refused callers (401, 413, 415, 503) that keep sending a chunked body are cut off within
/// `body_timeout_ms` of their answer, and hold no connection slot: with `max_connections`
/// refused callers, the next connection is served.
#[tokio::test]
async fn refused_callers_that_keep_sending_are_cut_off_and_hold_no_slot() {
    let lucca = slow_lucca(Duration::ZERO).await;
    let body_timeout = Duration::from_millis(2000);
    let dir = tempfile::tempdir().unwrap();
    // One gateway refusing with 401, 413 and 415; another whose budget cannot hold a chunked
    // body of its (huge) limit, which sheds every chunked request with 503.
    let small = (free_port(), "body_limit_bytes = 1024\n");
    let shedding = (
        free_port(),
        "memory_budget_mb = 64\nbody_limit_bytes = 16777216\n",
    );
    let mut children = Vec::new();
    for (i, (port, server)) in [small, shedding].into_iter().enumerate() {
        let dir = dir.path().join(i.to_string());
        std::fs::create_dir(&dir).unwrap();
        let config = write_config(
            &dir,
            &binary_config(
                port,
                &format!(
                    "{server}max_connections = 4\nbody_timeout_ms = {}\n[idempotency]\nmax_keys = 100\n{}",
                    body_timeout.as_millis(),
                    lucca_section(&lucca)
                ),
            ),
        );
        children.push(start_binary(&config, port, None).await);
    }
    let token = token_for("sender");
    let cases = [
        (small.0, chunked_head("application/json", None), "401"),
        (
            small.0,
            chunked_head("application/json", Some(&token)),
            "413",
        ),
        (small.0, chunked_head("text/plain", Some(&token)), "415"),
        (
            shedding.0,
            chunked_head("application/json", Some(&token)),
            "503",
        ),
    ];
    for (port, head, status) in &cases {
        let address = format!("127.0.0.1:{port}");
        // As many refused callers as there are connection slots, at once.
        let refused = futures_util::future::join_all(
            (0..4).map(|_| refused_while_sending(&address, head, body_timeout)),
        )
        .await;
        for (answer, closed_after) in &refused {
            assert!(
                answer.starts_with(&format!("HTTP/1.1 {status}")),
                "{status}: {answer}"
            );
            assert!(
                closed_after.is_some(),
                "{status}: the connection was closed within {body_timeout:?} of the answer"
            );
        }
        // No slot is held: the next connection is served.
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        let health = http
            .get(format!("http://{address}/healthz"))
            .send()
            .await
            .expect("a connection slot is free");
        assert_eq!(health.status(), 200, "{status}");
    }
    for child in &mut children {
        terminate(child).await;
    }
}

/// A burst to a provider whose connections are all busy waits for one, but at most half of the
/// time left: what cannot be sent in time fails as not sent (retryable), and nothing that was
/// sent ends unknown because it waited.
#[tokio::test]
async fn a_burst_waits_for_a_provider_connection_within_its_budget_and_none_ends_unknown() {
    let app = spawn_app_with(|s| {
        s.providers.lucca.max_connections = 2;
        s.providers.lucca.timeout_ms = 2_000;
    })
    .await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(json!({"id": 7, "name": "Nova"}))
                .set_delay(Duration::from_millis(600)),
        )
        .mount(&app.mocks.lucca)
        .await;
    let body = one_target("lucca", json!({}));
    let answers = futures_util::future::join_all((0..8).map(|_| app.create(&body))).await;
    let results: Vec<&Value> = answers.iter().map(|a| &a["results"]["lucca"]).collect();
    let created = results.iter().filter(|r| r["status"] == "created").count();
    assert!(
        (2..8).contains(&created),
        "two connections: some created, the rest not sent: {results:?}"
    );
    for r in results.iter().filter(|r| r["status"] != "created") {
        assert_eq!(r["status"], "failed", "none unknown: {r}");
        assert_eq!(r["error"]["kind"], "unavailable", "{r}");
        assert_eq!(r["error"]["retryable"], true, "{r}");
        assert_eq!(r["attempts"], 0, "nothing was sent: {r}");
        let message = r["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("max_connections = 2") && message.contains("nothing was sent"),
            "{message}"
        );
    }
    assert_eq!(
        posts(&app.mocks.lucca).await,
        created,
        "only what was created was sent"
    );
}

/// A Lucca stand-in over HTTP/1.1 with keep-alive that treats a connection idle for `closes_after`
/// as closed: a request arriving on it is dropped unanswered (as when its keep-alive timer fires
/// just as the request arrives). How many connections it accepted.
async fn keep_alive_server(closes_after: Duration) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let counted = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut last = tokio::time::Instant::now();
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Ok(n) = socket.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    if buf.is_empty() && last.elapsed() >= closes_after {
                        return; // its keep-alive ended: dropped unanswered
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                    let length: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    if buf.len() < end + 4 + length {
                        continue;
                    }
                    buf.clear();
                    let body = r#"{"id": 7, "name": "Nova"}"#;
                    let answer = format!(
                        "HTTP/1.1 201 Created\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if socket.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                    last = tokio::time::Instant::now();
                }
            });
        }
    });
    (address, accepted)
}

/// An outbound connection idle for `idle_timeout_ms` is closed by the gateway: a provider whose
/// own keep-alive is longer never gets a call on a connection it is closing (which would end
/// `unknown`), however the calls are spaced.
#[tokio::test]
async fn an_idle_provider_connection_is_closed_before_the_provider_closes_it() {
    let (address, accepted) = keep_alive_server(Duration::from_millis(400)).await;
    let app = spawn_app_with(|s| {
        let f = fixture(clients_gateway::catalog::ProviderId::Lucca);
        point(s, &f, &address);
        s.providers.lucca.idle_timeout_ms = 250;
    })
    .await;
    let body = one_target("lucca", json!({}));
    for pause_ms in [0, 100, 500, 100, 600] {
        tokio::time::sleep(Duration::from_millis(pause_ms)).await;
        let r = &app.create(&body).await["results"]["lucca"];
        assert_eq!(r["status"], "created", "after {pause_ms} ms idle: {r}");
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        3,
        "a new connection after each pause longer than the idle timeout, the same one otherwise"
    );

    // The same calls with connections kept past the provider's keep-alive: the call after a
    // long pause goes on a connection the provider has closed, and cannot be known to be created.
    let (address, _) = keep_alive_server(Duration::from_millis(400)).await;
    let app = spawn_app_with(|s| {
        let f = fixture(clients_gateway::catalog::ProviderId::Lucca);
        point(s, &f, &address);
        s.providers.lucca.idle_timeout_ms = 60_000;
    })
    .await;
    app.create(&body).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let r = &app.create(&body).await["results"]["lucca"];
    assert_ne!(
        r["status"], "created",
        "the stand-in drops a call on a connection idle past its keep-alive: {r}"
    );
}
