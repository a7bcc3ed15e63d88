//! Outbound HTTPS as production runs it: providers behind TLS with a private CA (trusted only when
//! configured), HTTP/2 when the provider offers it and HTTP/1.1 otherwise, a burst sharing one
//! HTTP/2 connection, and an egress proxy (CONNECT) whose password is never shown.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use clients_gateway::catalog::ProviderId;
use futures_util::future::join_all;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::helpers::*;

/// A provider over TLS offering `alpn`, answering every request with `status` and `body` after
/// `delay`; it counts the TCP connections it accepted and notes each request's HTTP version.
struct TlsProvider {
    port: u16,
    connections: Arc<AtomicUsize>,
    versions: Arc<Mutex<Vec<hyper::Version>>>,
}

impl TlsProvider {
    async fn start(pki: &Pki, alpn: &[&str], status: u16, body: Value, delay: Duration) -> Self {
        let acceptor = acceptor(pki, alpn);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let versions = Arc::new(Mutex::new(Vec::new()));
        let body = Bytes::from(body.to_string());
        let (counted, noted) = (connections.clone(), versions.clone());
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                let (acceptor, noted, body) = (acceptor.clone(), noted.clone(), body.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = service_fn(move |request: hyper::Request<Incoming>| {
                        noted.lock().unwrap().push(request.version());
                        let body = body.clone();
                        async move {
                            tokio::time::sleep(delay).await;
                            Ok::<_, Infallible>(
                                hyper::Response::builder()
                                    .status(status)
                                    .header("content-type", "application/json")
                                    .body(Full::new(body))
                                    .unwrap(),
                            )
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Self {
            port,
            connections,
            versions,
        }
    }

    /// A provider answering as `id`'s create does.
    async fn of(pki: &Pki, id: ProviderId, alpn: &[&str], delay: Duration) -> Self {
        let f = fixture(id);
        Self::start(pki, alpn, f.created_status, (f.created_body)(), delay).await
    }

    fn versions(&self) -> Vec<hyper::Version> {
        self.versions.lock().unwrap().clone()
    }
}

/// TLS with the test CA's certificate, offering `alpn`.
fn acceptor(pki: &Pki, alpn: &[&str]) -> tokio_rustls::TlsAcceptor {
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![pki.cert.clone()], pki.key.clone_key())
    .unwrap();
    config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

/// An HTTP/2 provider (TLS, `h2` only) that refuses its first `refuse` streams unprocessed
/// (`RST_STREAM REFUSED_STREAM`, RFC 9113 §8.7) and answers the others as Lucca's create; it
/// counts the streams it was sent.
async fn refusing_provider(pki: &Pki, refuse: usize) -> (u16, Arc<AtomicUsize>) {
    let acceptor = acceptor(pki, &["h2"]);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let streams = Arc::new(AtomicUsize::new(0));
    let counted = streams.clone();
    let f = fixture(ProviderId::Lucca);
    let created = Bytes::from((f.created_body)().to_string());
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, counted, created) = (acceptor.clone(), counted.clone(), created.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut connection) = h2::server::handshake(tls).await else {
                    return;
                };
                while let Some(Ok((_request, mut respond))) = connection.accept().await {
                    if counted.fetch_add(1, Ordering::SeqCst) < refuse {
                        respond.send_reset(h2::Reason::REFUSED_STREAM);
                        continue;
                    }
                    let answer = hyper::Response::builder()
                        .status(f.created_status)
                        .header("content-type", "application/json")
                        .body(())
                        .unwrap();
                    if let Ok(mut body) = respond.send_response(answer, false) {
                        let _ = body.send_data(created.clone(), true);
                    }
                }
            });
        }
    });
    (port, streams)
}

const BOTH: &[&str] = &["h2", "http/1.1"];

fn lucca_at(settings: &mut clients_gateway::config::Settings, base: &str) {
    point(settings, &fixture(ProviderId::Lucca), base);
}

#[tokio::test]
async fn https_is_trusted_only_with_the_ca_and_speaks_http2_when_offered() {
    let pki = Pki::new();
    let provider = TlsProvider::of(&pki, ProviderId::Lucca, BOTH, Duration::ZERO).await;
    let base = format!("https://localhost:{}", provider.port);

    // The test CA is not among the bundled roots: the handshake fails, nothing is sent.
    let app = spawn_app_with(|s| lucca_at(s, &base)).await;
    let answer = app.create(&one_target("lucca", json!({}))).await;
    let lucca = &answer["results"]["lucca"];
    assert_eq!(lucca["status"], "failed", "{answer}");
    assert_eq!(lucca["error"]["kind"], "unavailable", "{answer}");
    assert!(
        lucca["error"]["message"]
            .as_str()
            .unwrap()
            .contains("nothing was sent"),
        "{answer}"
    );
    assert!(provider.versions().is_empty());

    // Trusted through [tls] ca_file, or through the provider's own ca_file.
    let ca = pki.ca_file();
    let global = spawn_app_with(|s| {
        lucca_at(s, &base);
        s.tls.ca_file = Some(ca.clone());
    })
    .await;
    let own = spawn_app_with(|s| {
        lucca_at(s, &base);
        s.providers
            .update_common(ProviderId::Lucca, |c| c.ca_file = Some(ca.clone()));
    })
    .await;
    for app in [global, own] {
        let answer = app.create(&one_target("lucca", json!({}))).await;
        assert_eq!(answer["results"]["lucca"]["status"], "created", "{answer}");
        assert_eq!(answer["results"]["lucca"]["provider_client_id"], "123");
    }
    // Offered HTTP/2 (ALPN), the gateway spoke it.
    assert_eq!(
        provider.versions(),
        [hyper::Version::HTTP_2, hyper::Version::HTTP_2]
    );
}

#[tokio::test]
async fn http1_when_http2_is_not_offered_or_turned_off() {
    let pki = Pki::new();
    let ca = pki.ca_file();
    let h1_only = TlsProvider::of(&pki, ProviderId::Lucca, &["http/1.1"], Duration::ZERO).await;
    let app = spawn_app_with(|s| {
        lucca_at(s, &format!("https://localhost:{}", h1_only.port));
        s.tls.ca_file = Some(ca.clone());
    })
    .await;
    for _ in 0..2 {
        let answer = app.create(&one_target("lucca", json!({}))).await;
        assert_eq!(answer["results"]["lucca"]["status"], "created", "{answer}");
    }
    assert_eq!(
        h1_only.versions(),
        [hyper::Version::HTTP_11, hyper::Version::HTTP_11]
    );

    // A provider offering both, with `http2 = false`.
    let both = TlsProvider::of(&pki, ProviderId::Lucca, BOTH, Duration::ZERO).await;
    let app = spawn_app_with(|s| {
        lucca_at(s, &format!("https://localhost:{}", both.port));
        s.tls.ca_file = Some(ca.clone());
        s.providers
            .update_common(ProviderId::Lucca, |c| c.http2 = false);
    })
    .await;
    let answer = app.create(&one_target("lucca", json!({}))).await;
    assert_eq!(answer["results"]["lucca"]["status"], "created", "{answer}");
    assert_eq!(both.versions(), [hyper::Version::HTTP_11]);
}

#[tokio::test]
async fn a_burst_to_an_http2_provider_shares_one_connection() {
    let pki = Pki::new();
    let ca = pki.ca_file();
    let provider = TlsProvider::of(&pki, ProviderId::Lucca, BOTH, Duration::from_millis(100)).await;
    // One worker thread: its calls share its client.
    let app = spawn_app_with(|s| {
        lucca_at(s, &format!("https://localhost:{}", provider.port));
        s.tls.ca_file = Some(ca.clone());
    })
    .await;
    let body = one_target("lucca", json!({}));
    for burst in 0..2 {
        let answers = join_all((0..40).map(|_| app.create(&body))).await;
        for answer in answers {
            assert_eq!(answer["results"]["lucca"]["status"], "created", "{answer}");
        }
        assert_eq!(provider.versions().len(), 40 * (burst + 1));
    }
    assert!(provider
        .versions()
        .iter()
        .all(|v| *v == hyper::Version::HTTP_2));
    // 80 calls, 40 at a time, over one connection (a cold burst does not open one per call).
    assert_eq!(provider.connections.load(Ordering::SeqCst), 1);
}

/// A tunnel asked of the proxy: its target and its `Proxy-Authorization`.
type Tunnel = (String, Option<String>);

/// A forward proxy (HTTP CONNECT) noting each tunnel asked for; it refuses (403) tunnels to the
/// ports in `refused`.
struct ConnectProxy {
    port: u16,
    tunnels: Arc<Mutex<Vec<Tunnel>>>,
}

impl ConnectProxy {
    async fn start(refused: Vec<u16>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let tunnels = Arc::new(Mutex::new(Vec::new()));
        let noted = tunnels.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let (noted, refused) = (noted.clone(), refused.clone());
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
                        if client.read(&mut byte).await.unwrap_or(0) == 0 {
                            return;
                        }
                        head.push(byte[0]);
                    }
                    let head = String::from_utf8_lossy(&head).into_owned();
                    let mut lines = head.lines();
                    let target = lines
                        .next()
                        .and_then(|l| l.strip_prefix("CONNECT "))
                        .and_then(|l| l.split(' ').next())
                        .unwrap_or("")
                        .to_owned();
                    let headers: HashMap<String, String> = lines
                        .filter_map(|l| l.split_once(':'))
                        .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_owned()))
                        .collect();
                    noted
                        .lock()
                        .unwrap()
                        .push((target.clone(), headers.get("proxy-authorization").cloned()));
                    let port: u16 = target
                        .rsplit(':')
                        .next()
                        .and_then(|p| p.parse().ok())
                        .unwrap_or(0);
                    if refused.contains(&port) {
                        let _ = client.write_all(b"HTTP/1.1 403 Forbidden\r\n\r\n").await;
                        return;
                    }
                    let Ok(mut upstream) = TcpStream::connect(("127.0.0.1", port)).await else {
                        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
                        return;
                    };
                    let _ = client
                        .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
                        .await;
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                });
            }
        });
        Self { port, tunnels }
    }

    fn tunnels(&self) -> Vec<Tunnel> {
        self.tunnels.lock().unwrap().clone()
    }
}

const PROXY_USER: &str = "gateway-egress";
const PROXY_PASSWORD: &str = "proxy-Pa55word-never-shown";

#[tokio::test]
async fn calls_go_through_the_proxy_except_no_proxy_hosts_and_its_password_is_never_shown() {
    let pki = Pki::new();
    let lucca = TlsProvider::of(&pki, ProviderId::Lucca, BOTH, Duration::ZERO).await;
    let clockify = TlsProvider::of(&pki, ProviderId::Clockify, BOTH, Duration::ZERO).await;
    let plusvibe = TlsProvider::of(&pki, ProviderId::Plusvibe, BOTH, Duration::ZERO).await;
    // The proxy from the configuration, then from the standard variables.
    for from_env in [false, true] {
        // This proxy refuses the tunnel to PlusVibe.
        let proxy = ConnectProxy::start(vec![plusvibe.port]).await;
        let proxy_url = format!(
            "http://{PROXY_USER}:{PROXY_PASSWORD}@127.0.0.1:{}",
            proxy.port
        );
        let port = free_port();
        let proxy_section = if from_env {
            String::new()
        } else {
            format!("[proxy]\nurl = \"{proxy_url}\"\nno_proxy = \"127.0.0.1\"\n")
        };
        let config = binary_config(
            port,
            &format!(
                r#"
[telemetry]
log_level = "info,clients_gateway::fanout=debug"
[tls]
ca_file = "{ca}"
{proxy_section}
[providers.lucca]
base_url = "https://localhost:{lucca}"
api_key = "{LUCCA_KEY}"
organization_id = 12
[providers.clockify]
base_url = "https://127.0.0.1:{clockify}/api"
api_key = "{CLOCKIFY_KEY}"
workspace_id = "{CLOCKIFY_WORKSPACE}"
[providers.plusvibe]
base_url = "https://localhost:{plusvibe}/api/v1"
api_key = "{PLUSVIBE_KEY}"
workspace_id = "{PLUSVIBE_WORKSPACE}"
"#,
                ca = pki.ca_file().display(),
                lucca = lucca.port,
                clockify = clockify.port,
                plusvibe = plusvibe.port,
            ),
        );
        let dir = tempfile::tempdir().unwrap();
        let config_path = write_config(dir.path(), &config);
        let log_path = dir.path().join("gateway.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let env: Vec<(&str, &str)> = if from_env {
            vec![("HTTPS_PROXY", &proxy_url), ("NO_PROXY", "127.0.0.1")]
        } else {
            vec![]
        };
        let mut child = start_binary_with(&config_path, port, Some(log), &env).await;
        let http = reqwest::Client::new();
        let address = format!("http://127.0.0.1:{port}");
        let token = token_for("egress-test");
        let body = json!({"client": minimal_client(), "targets": {"lucca": {}, "clockify": {}, "plusvibe": {}}});
        let (status, answer) = post_keyed(&http, &address, &token, None, &body).await;
        assert_eq!(status, 207, "{answer}");
        let results = &answer["results"];
        assert_eq!(results["lucca"]["status"], "created", "{answer}");
        assert_eq!(results["clockify"]["status"], "created", "{answer}");
        assert_eq!(results["plusvibe"]["status"], "failed", "{answer}");
        assert_eq!(
            results["plusvibe"]["error"]["kind"], "unavailable",
            "{answer}"
        );

        // Lucca and PlusVibe through the proxy, with its credentials; Clockify (NO_PROXY) not.
        let expected_auth = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD
                .encode(format!("{PROXY_USER}:{PROXY_PASSWORD}"))
        );
        let tunnels = proxy.tunnels();
        assert!(
            tunnels.contains(&(
                format!("localhost:{}", lucca.port),
                Some(expected_auth.clone())
            )),
            "{tunnels:?}"
        );
        assert!(
            tunnels
                .iter()
                .any(|(t, _)| *t == format!("localhost:{}", plusvibe.port)),
            "{tunnels:?}"
        );
        assert!(
            !tunnels
                .iter()
                .any(|(t, _)| t.contains(&clockify.port.to_string())),
            "{tunnels:?}"
        );
        assert_eq!(plusvibe.versions(), []);

        // A dry run shows no proxy credential either.
        let dry = http
            .post(format!("{address}/clients?dry_run=true"))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        terminate(&mut child).await;
        let logs = std::fs::read_to_string(&log_path).unwrap();
        // The start line names the proxy, without its credentials.
        assert!(
            logs.contains(&format!("proxy: http://127.0.0.1:{}", proxy.port)),
            "{logs}"
        );
        for shown in [answer.to_string(), dry, logs] {
            assert!(!shown.contains(PROXY_PASSWORD), "{shown}");
            assert!(!shown.contains(PROXY_USER), "{shown}");
        }
    }
    assert_eq!(clockify.versions().len(), 2);
    assert_eq!(lucca.versions().len(), 2);
}

#[tokio::test]
async fn past_its_stream_limit_a_burst_opens_another_connection_not_one_per_call() {
    let pki = Pki::new();
    let ca = pki.ca_file();
    let provider = TlsProvider::of(&pki, ProviderId::Lucca, BOTH, Duration::from_millis(200)).await;
    let app = spawn_app_with(|s| {
        lucca_at(s, &format!("https://localhost:{}", provider.port));
        s.tls.ca_file = Some(ca.clone());
        s.providers
            .update_common(ProviderId::Lucca, |c| c.http2_max_streams = 10);
    })
    .await;
    let body = one_target("lucca", json!({}));
    let answers = join_all((0..40).map(|_| app.create(&body))).await;
    for answer in answers {
        assert_eq!(answer["results"]["lucca"]["status"], "created", "{answer}");
    }
    assert!(provider
        .versions()
        .iter()
        .all(|v| *v == hyper::Version::HTTP_2));
    // 40 calls at once, at most 10 per connection: 4 connections.
    let connections = provider.connections.load(Ordering::SeqCst);
    assert!((2..=4).contains(&connections), "{connections} connections");
}

/// The distroless image sets SSL_CERT_FILE to its system bundle: with the bundled roots off and
/// no CA file, that is nothing to trust (the start refuses), unless the system store is asked for.
#[test]
fn ssl_cert_file_is_trusted_only_as_part_of_the_system_store() {
    let dir = tempfile::tempdir().unwrap();
    let check = |tls: &str| {
        let config = write_config(
            dir.path(),
            &binary_config(free_port(), &format!("[tls]\n{tls}")),
        );
        check_config(
            config,
            &[("SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt")],
        )
    };
    let out = check("bundled_roots = false\n");
    assert!(!out.status.success(), "nothing but SSL_CERT_FILE: refused");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("nothing would be trusted"), "{stderr}");
    if std::path::Path::new("/etc/ssl/certs/ca-certificates.crt").exists() {
        let out = check("bundled_roots = false\nnative_roots = true\n");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("from the system store"), "{stdout}");
    }
}

#[tokio::test]
async fn a_stream_an_http2_provider_refused_unprocessed_is_sent_again_and_counted() {
    let pki = Pki::new();
    let ca = pki.ca_file();
    let (port, streams) = refusing_provider(&pki, 1).await;
    let app = spawn_app_with(|s| {
        lucca_at(s, &format!("https://localhost:{port}"));
        s.tls.ca_file = Some(ca.clone());
    })
    .await;
    let answer = app.create(&one_target("lucca", json!({}))).await;
    let r = &answer["results"]["lucca"];
    assert_eq!(r["status"], "created", "{r}");
    // The gateway's own retry sent it again (reqwest's, which would resend it unseen, is off).
    assert_eq!(r["attempts"], 2, "{r}");
    assert_eq!(streams.load(Ordering::SeqCst), 2);

    // Refused every time: failed, nothing created (not unknown), retryable.
    let (port, streams) = refusing_provider(&pki, usize::MAX).await;
    let app = spawn_app_with(|s| {
        lucca_at(s, &format!("https://localhost:{port}"));
        s.tls.ca_file = Some(ca.clone());
        s.providers
            .update_common(ProviderId::Lucca, |c| c.max_attempts = 3);
    })
    .await;
    let answer = app.create(&one_target("lucca", json!({}))).await;
    let r = &answer["results"]["lucca"];
    assert_eq!(r["status"], "failed", "{r}");
    assert_eq!(r["error"]["kind"], "unavailable", "{r}");
    assert_eq!(r["error"]["retryable"], true, "{r}");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("refused the request unprocessed"),
        "{r}"
    );
    assert_eq!(r["attempts"], 3, "{r}");
    assert_eq!(streams.load(Ordering::SeqCst), 3);
}

/// A proxy that refuses everything, echoing the credentials it was sent (a proxy's error page
/// may show the request's headers).
async fn echoing_proxy() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
                    if client.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let credential = head
                    .lines()
                    .find_map(|l| l.strip_prefix("proxy-authorization: "))
                    .or_else(|| {
                        head.lines()
                            .find_map(|l| l.strip_prefix("Proxy-Authorization: "))
                    })
                    .unwrap_or("none")
                    .to_owned();
                let decoded = credential
                    .strip_prefix("Basic ")
                    .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default();
                let body = json!({"message": format!("proxy refused {credential} ({decoded})")})
                    .to_string();
                let answer = format!(
                    "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = client.write_all(answer.as_bytes()).await;
            });
        }
    });
    port
}

/// `HTTP_PROXY=user:password@host:port` (no scheme) is used as `http://…` by the HTTP client:
/// its credentials are scrubbed from what is relayed, and the start log names it properly.
#[tokio::test]
async fn a_proxy_variable_without_a_scheme_is_used_and_its_credentials_never_shown() {
    let proxy = echoing_proxy().await;
    let port = free_port();
    let config = binary_config(
        port,
        &format!(
            "[providers.lucca]\nbase_url = \"http://lucca.example\"\napi_key = \"{LUCCA_KEY}\"\norganization_id = 12\n"
        ),
    );
    let dir = tempfile::tempdir().unwrap();
    let config_path = write_config(dir.path(), &config);
    let log_path = dir.path().join("gateway.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let variable = format!("{PROXY_USER}:{PROXY_PASSWORD}@127.0.0.1:{proxy}");
    let mut child =
        start_binary_with(&config_path, port, Some(log), &[("HTTP_PROXY", &variable)]).await;
    let (status, answer) = post_keyed(
        &reqwest::Client::new(),
        &format!("http://127.0.0.1:{port}"),
        &token_for("egress-test"),
        None,
        &one_target("lucca", json!({})),
    )
    .await;
    terminate(&mut child).await;
    assert_eq!(status, 207, "{answer}");
    let lucca = &answer["results"]["lucca"];
    assert_eq!(
        lucca["status"], "failed",
        "the call went through the proxy: {lucca}"
    );
    assert!(
        lucca["error"]["message"]
            .as_str()
            .unwrap()
            .contains("proxy refused"),
        "{lucca}"
    );
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("{PROXY_USER}:{PROXY_PASSWORD}"));
    let logs = std::fs::read_to_string(&log_path).unwrap();
    for shown in [answer.to_string(), logs.clone()] {
        assert!(!shown.contains(PROXY_PASSWORD), "{shown}");
        assert!(!shown.contains(&basic), "{shown}");
    }
    assert!(
        logs.contains(&format!("proxy: http://127.0.0.1:{proxy} (HTTP_PROXY)")),
        "{logs}"
    );
}

/// A proxy variable that is no usable proxy URL is refused at start and by check-config,
/// naming the variable, never showing its value.
#[test]
fn an_unusable_proxy_variable_is_refused_without_being_shown() {
    let (_dir, config) = binary_config_file(free_port(), "");
    for value in [
        "http://127.0.0.1:99999",
        "http://ops:pw-Secr3t@[::1",
        "socks5://ops:pw-Secr3t@proxy:1080",
    ] {
        let out = check_config(&config, &[("HTTPS_PROXY", value)]);
        let text = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{value}: {text}");
        assert!(text.contains("HTTPS_PROXY"), "{text}");
        assert!(!text.contains("pw-Secr3t"), "{text}");
    }
}

#[tokio::test]
async fn completion_events_go_through_the_proxy_and_trust_only_the_configured_roots() {
    use crate::operations::{accept, clockify, on_operation, settings, Act, Tool};
    let pki = Pki::new();
    let receiver = TlsProvider::start(&pki, &["http/1.1"], 204, json!({}), Duration::ZERO).await;
    let stranger_pki = Pki::new();
    let stranger =
        TlsProvider::start(&stranger_pki, &["http/1.1"], 204, json!({}), Duration::ZERO).await;
    let proxy = ConnectProxy::start(Vec::new()).await;
    let mocks = Mocks::start().await;
    Tool::new(|_| Act::Create).mount(&mocks.clockify).await;
    let mut s = settings(&mocks, None);
    s.tls.ca_file = Some(pki.ca_file());
    s.proxy.url = Some(
        format!(
            "http://{PROXY_USER}:{PROXY_PASSWORD}@127.0.0.1:{}",
            proxy.port
        )
        .into(),
    );
    // The tools' stand-ins are reached directly; the receivers (localhost) through the proxy.
    s.proxy.no_proxy = Some("127.0.0.1".into());
    for (name, port) in [("crm", receiver.port), ("stranger", stranger.port)] {
        s.operations.webhooks.insert(
            name.into(),
            clients_gateway::operations::webhooks::WebhookSettings {
                url: format!("https://localhost:{port}/hooks").parse().unwrap(),
                secret_file: None,
                secret: Some("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_owned().into()),
                include_credentials: false,
            },
        );
    }
    let address = spawn_gateway(&s).await;
    let token = token_for("test-caller");
    let mut locations = Vec::new();
    for name in ["crm", "stranger"] {
        let mut body = clockify(&format!("Nova for {name}"));
        body["notify"] = json!(name);
        locations.push(accept(&address, &token, &body).await);
    }

    let mut attempts = Vec::new();
    for _ in 0..100 {
        attempts.clear();
        for location in &locations {
            let (_, read) = on_operation("GET", &address, &token, location).await;
            attempts.push(read["notification"]["attempts"][0]["result"].clone());
        }
        if attempts.iter().all(|a| a.is_string()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        attempts,
        [json!("delivered"), json!("unreachable")],
        "a receiver's certificate from another CA is refused"
    );
    assert_eq!(receiver.versions.lock().unwrap().len(), 1);
    assert!(stranger.versions.lock().unwrap().is_empty());
    let tunnels: Vec<String> = proxy
        .tunnels()
        .into_iter()
        .map(|(target, _)| target)
        .collect();
    assert!(
        tunnels.contains(&format!("localhost:{}", receiver.port)),
        "{tunnels:?}"
    );
    assert!(
        tunnels.contains(&format!("localhost:{}", stranger.port)),
        "{tunnels:?}"
    );
}
