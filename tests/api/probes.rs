//! The probes on the ops listener as a kubelet sends them (a new connection each, a 2 s
//! timeout), whatever else reaches that listener: idle and one-byte-a-second connections by the
//! hundred, a connection pipelining `/metrics`. And a peer's malformed request is counted, not
//! logged as the gateway's error.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;

/// The kubelet's timeout.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// One probe: a new connection, `GET /healthz`, the whole answer within the kubelet's timeout.
async fn probe(port: u16) -> Result<(), String> {
    let attempt = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| e.to_string())?;
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nhost: probe\r\nconnection: close\r\n\r\n")
            .await
            .map_err(|e| e.to_string())?;
        let mut answer = Vec::new();
        stream
            .read_to_end(&mut answer)
            .await
            .map_err(|e| e.to_string())?;
        match answer.starts_with(b"HTTP/1.1 200") {
            true => Ok(()),
            false => Err(String::from_utf8_lossy(&answer).into_owned()),
        }
    };
    tokio::time::timeout(PROBE_TIMEOUT, attempt)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {PROBE_TIMEOUT:?}")))
}

/// Probes every 100 ms for `during`: the failures.
async fn probes_during(port: u16, during: Duration) -> (usize, Vec<String>) {
    let started = Instant::now();
    let mut tasks = Vec::new();
    while started.elapsed() < during {
        tasks.push(tokio::spawn(probe(port)));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let total = tasks.len();
    let mut failures = Vec::new();
    for task in tasks {
        if let Err(e) = task.await.unwrap() {
            failures.push(e);
        }
    }
    (total, failures)
}

async fn gateway_with_ops() -> (Spawned, u16, tempfile::TempDir) {
    let (port, ops) = (free_port(), free_port());
    let (dir, config) = binary_config_file(port, &format!("ops_bind = \"127.0.0.1:{ops}\"\n"));
    let child = start_binary(&config, port, None).await;
    assert!(listens_within(ops, Duration::from_secs(10)).await);
    (child, ops, dir)
}

#[tokio::test]
async fn idle_and_slowloris_connections_never_keep_the_probes_waiting() {
    let (mut child, ops, _dir) = gateway_with_ops().await;
    let mut held = Vec::new();
    for _ in 0..300 {
        held.push(TcpStream::connect(("127.0.0.1", ops)).await.unwrap());
    }
    // 300 more sending their head a byte a second.
    let slowloris: Vec<_> = (0..300)
        .map(|_| {
            tokio::spawn(async move {
                let Ok(mut stream) = TcpStream::connect(("127.0.0.1", ops)).await else {
                    return;
                };
                for byte in b"GET /healthz HTTP/1.1\r\nhost: slow\r\n" {
                    if stream.write_all(&[*byte]).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            })
        })
        .collect();
    let (total, failures) = probes_during(ops, Duration::from_secs(5)).await;
    for task in slowloris {
        task.abort();
    }
    drop(held);
    terminate(&mut child).await;
    assert!(
        failures.is_empty(),
        "{} of {total} probes failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(3)]
    );
}

#[tokio::test]
async fn a_connection_pipelining_metrics_never_delays_the_probes() {
    let (mut child, ops, _dir) = gateway_with_ops().await;
    // Series to render: every route and method.
    let http = reqwest::Client::new();
    for path in [
        "/clients",
        "/healthz",
        "/readyz",
        "/nowhere",
        "/openapi.json",
    ] {
        for method in ["GET", "POST", "PUT", "DELETE", "PATCH", "BREW"] {
            let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
            let _ = http
                .request(method, format!("http://127.0.0.1:{ops}{path}"))
                .send()
                .await;
        }
    }
    let pipelining = tokio::spawn(async move {
        let mut stream = TcpStream::connect(("127.0.0.1", ops)).await.unwrap();
        let request = b"GET /metrics HTTP/1.1\r\nhost: scraper\r\n\r\n".repeat(400);
        let (mut read, mut write) = stream.split();
        let sending = async {
            let _ = write.write_all(&request).await;
        };
        let draining = async {
            let mut sink = vec![0u8; 64 * 1024];
            while let Ok(n) = read.read(&mut sink).await {
                if n == 0 {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(20), async {
            tokio::join!(sending, draining)
        })
        .await;
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (total, failures) = probes_during(ops, Duration::from_secs(4)).await;
    pipelining.abort();
    terminate(&mut child).await;
    assert!(
        failures.is_empty(),
        "{} of {total} probes failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(3)]
    );
}

#[tokio::test]
async fn a_malformed_request_is_counted_not_logged_as_an_error() {
    let port = free_port();
    let (dir, config) = binary_config_file(port, "");
    let log_path = dir.path().join("gateway.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = start_binary(&config, port, Some(log)).await;
    for garbage in [
        &b"GET / HTTP/1.1\r\nbad header line\r\n\r\n"[..],
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http\r\n\r\n",
        b"GET /healthz HTTP/9.9\r\n\r\n",
    ] {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let _ = stream.write_all(garbage).await;
        let mut sink = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut sink)).await;
    }
    let metrics = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    terminate(&mut child).await;
    let counted = metrics
        .lines()
        .find_map(|l| l.strip_prefix("clients_gateway_inbound_protocol_errors_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(counted >= 1.0, "{metrics}");
    let logs = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        !logs.lines().any(|l| l.contains("\"level\":\"ERROR\"")),
        "no error line for a peer's fault: {logs}"
    );
}
