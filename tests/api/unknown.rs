//! `unknown` means "the request may have reached the tool": only a create whose bytes may have
//! been written can end `unknown`. A token endpoint that fails, a connection never made (SYNs
//! dropped by a firewall), a proxy silent after its `200` to `CONNECT`: `failed`, nothing sent,
//! and sent on the next attempt.

use std::time::Duration;

use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::*;

/// A missionX request without `external_id`: a create that cannot be looked up, so an
/// `unknown` would never be sent again.
fn missionx_without_key() -> serde_json::Value {
    one_target("missionx", json!({}))
}

#[tokio::test]
async fn a_token_endpoint_answering_a_redirect_or_a_5xx_fails_the_target_and_sends_nothing() {
    for status in [302, 503] {
        let app = spawn_app().await;
        Mock::given(method("POST"))
            .and(path("/v2/auth/token"))
            .respond_with(
                ResponseTemplate::new(status)
                    .insert_header("location", "https://elsewhere.example/"),
            )
            .up_to_n_times(1)
            .mount(&app.mocks.missionx)
            .await;
        let f = crate::fixture(clients_gateway::catalog::ProviderId::Missionx);
        Mock::given(method("POST"))
            .and(path("/v2/clients"))
            .respond_with(f.created())
            .expect(1)
            .mount(&app.mocks.missionx)
            .await;
        let first = post_keyed(
            &app.http,
            &app.address,
            &app.token,
            Some(&format!("token-{status}")),
            &missionx_without_key(),
        )
        .await;
        assert_eq!(first.0, 207, "{}", first.1);
        let r = &first.1["results"]["missionx"];
        assert_eq!(r["status"], "failed", "{status}: {r}");
        assert_eq!(r["attempts"], 0, "{r}");
        assert!(
            r.get("provider_status").is_none(),
            "the token endpoint's is not the create's: {r}"
        );
        assert!(
            r["error"]["message"]
                .as_str()
                .unwrap()
                .contains("token endpoint"),
            "{r}"
        );
        // The token endpoint works again: the replay sends the create (it was never sent).
        app.mocks.mount_support().await;
        let replay = post_keyed(
            &app.http,
            &app.address,
            &app.token,
            Some(&format!("token-{status}")),
            &missionx_without_key(),
        )
        .await;
        assert_eq!(
            replay.1["results"]["missionx"]["status"], "created",
            "{}",
            replay.1
        );
    }
}

/// A listening socket whose accept queue is full: connections to it are never made (their SYNs
/// are dropped), as behind a firewall that drops them. Its port is free again once dropped.
struct BlackHole {
    port: u16,
    _listener: tokio::net::TcpListener,
    _queued: Vec<tokio::net::TcpStream>,
}

impl BlackHole {
    async fn new() -> Self {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = socket.listen(0).unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut queued = Vec::new();
        // Fill the accept queue (never accepted).
        for _ in 0..3 {
            if let Ok(Ok(stream)) = tokio::time::timeout(
                Duration::from_millis(200),
                tokio::net::TcpStream::connect(("127.0.0.1", port)),
            )
            .await
            {
                queued.push(stream);
            }
        }
        Self {
            port,
            _listener: listener,
            _queued: queued,
        }
    }
}

#[tokio::test]
async fn a_connection_never_made_fails_the_target_and_the_replay_sends_it() {
    let hole = BlackHole::new().await;
    let port = hole.port;
    let app = spawn_app_with(|s| {
        let f = crate::fixture(clients_gateway::catalog::ProviderId::Missionx);
        point(s, &f, &format!("http://127.0.0.1:{port}"));
        s.providers.missionx.timeout_ms = 1_500;
        s.providers.lucca.timeout_ms = 1_500;
        let lucca = crate::fixture(clients_gateway::catalog::ProviderId::Lucca);
        point(s, &lucca, &format!("http://127.0.0.1:{port}"));
    })
    .await;
    // The token endpoint is elsewhere (the missionX mock): only the API is black-holed.
    app.mocks.mount_support().await;
    let body = json!({ "client": minimal_client(), "targets": { "missionx": {}, "lucca": {} } });
    let (status, first) =
        post_keyed(&app.http, &app.address, &app.token, Some("hole-1"), &body).await;
    assert_eq!(status, 207, "{first}");
    for provider in ["missionx", "lucca"] {
        let r = &first["results"][provider];
        assert_eq!(r["status"], "failed", "{provider}: {r}");
        assert!(
            r["error"]["message"]
                .as_str()
                .unwrap()
                .contains("nothing was sent"),
            "{provider}: {r}"
        );
    }

    // The address answers now: the replay sends both creates, at once (no settle wait, no
    // lookup: nothing was sent before).
    drop(hole);
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let provider = MockServer::builder().listener(listener).start().await;
    for (at, answer) in [
        ("/v2/clients", json!({"_id": "6650c0ffee00000000000042"})),
        ("/timmi-project/api/v4/clients", json!({"id": 7})),
    ] {
        Mock::given(method("POST"))
            .and(path(at))
            .respond_with(ResponseTemplate::new(201).set_body_json(answer))
            .expect(1)
            .mount(&provider)
            .await;
    }
    let (status, replay) =
        post_keyed(&app.http, &app.address, &app.token, Some("hole-1"), &body).await;
    assert_eq!(status, 207, "{replay}");
    for provider in ["missionx", "lucca"] {
        assert_eq!(replay["results"][provider]["status"], "created", "{replay}");
    }
}

/// A proxy that answers `200` to `CONNECT`, then never passes a byte: the TLS handshake with
/// the provider never completes.
async fn silent_proxy() -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = socket
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .await;
                tokio::time::sleep(Duration::from_secs(60)).await;
                drop(socket);
            });
        }
    });
    port
}

#[tokio::test]
async fn a_proxy_silent_after_connect_fails_the_target_and_sends_nothing() {
    let proxy = silent_proxy().await;
    let app = spawn_app_with(|s| {
        s.proxy.url = Some(format!("http://127.0.0.1:{proxy}").into());
        s.providers.lucca.base_url = url::Url::parse("https://lucca.example").unwrap();
        s.providers.lucca.timeout_ms = 1_500;
    })
    .await;
    let answer = app.create(&one_target("lucca", json!({}))).await;
    let r = &answer["results"]["lucca"];
    assert_eq!(r["status"], "failed", "{r}");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("nothing was sent"),
        "{r}"
    );
}
