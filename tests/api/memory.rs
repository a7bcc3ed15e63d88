//! The real binary in a memory cgroup (as a Kubernetes pod's limit is), against callers that
//! send a body of 60 KB with every request head, by the thousand: it is never OOM-killed, every
//! caller is answered (refused, shed or served), its memory stays within its budget (80 % of the
//! limit), and the probes on the ops listener answer.
//! Needs root and a memory cgroup controller (v1 or v2), as CI has.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::*;

/// A memory cgroup with a limit (cgroup v1's memory controller, or v2 where it is unified),
/// removed when dropped (after its processes are gone).
struct MemoryCgroup {
    path: PathBuf,
    v2: bool,
}

impl MemoryCgroup {
    fn new(limit_mib: u64) -> Self {
        let unified = PathBuf::from("/sys/fs/cgroup");
        let v2 = std::fs::read_to_string(unified.join("cgroup.controllers"))
            .is_ok_and(|c| c.split_whitespace().any(|c| c == "memory"));
        let root = if v2 {
            let _ = std::fs::write(unified.join("cgroup.subtree_control"), "+memory");
            unified
        } else {
            unified.join("memory")
        };
        assert!(
            v2 || root.join("memory.limit_in_bytes").exists(),
            "a memory cgroup controller is needed (cgroup v1 /sys/fs/cgroup/memory or v2), as root"
        );
        let path = root.join(format!("clients-gateway-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir(&path).expect("a cgroup can be made (root)");
        let limit = (limit_mib << 20).to_string();
        if v2 {
            std::fs::write(path.join("memory.max"), limit).unwrap();
            let _ = std::fs::write(path.join("memory.swap.max"), "0");
        } else {
            std::fs::write(path.join("memory.limit_in_bytes"), limit).unwrap();
            let _ = std::fs::write(path.join("memory.swappiness"), "0");
        }
        Self { path, v2 }
    }

    /// `command`, started inside this cgroup.
    fn start(&self, command: &str, args: &[&str]) -> Spawned {
        let procs = self.path.join("cgroup.procs");
        let script = format!("echo $$ > {} && exec \"$0\" \"$@\"", procs.display());
        Spawned::start(
            std::process::Command::new("sh")
                .arg("-c")
                .arg(script)
                .arg(command)
                .args(args)
                .stdout(std::process::Stdio::null()),
        )
        .unwrap()
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path.join(name)).unwrap_or_default()
    }

    fn oom_kills(&self) -> u64 {
        self.read(if self.v2 {
            "memory.events"
        } else {
            "memory.oom_control"
        })
        .lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
    }

    fn peak_mib(&self) -> u64 {
        self.read(if self.v2 {
            "memory.peak"
        } else {
            "memory.max_usage_in_bytes"
        })
        .trim()
        .parse::<u64>()
        .map_or(0, |b| b >> 20)
    }
}

impl Drop for MemoryCgroup {
    fn drop(&mut self) {
        for _ in 0..50 {
            if std::fs::remove_dir(&self.path).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// What the callers got.
#[derive(Default)]
struct Tally {
    answered: AtomicUsize,
    by_status: [AtomicUsize; 6],
    unanswered: AtomicUsize,
}

impl Tally {
    fn note(&self, status: u16) {
        self.answered.fetch_add(1, Ordering::Relaxed);
        let i = match status {
            207 => 0,
            401 => 1,
            422 => 2,
            503 => 3,
            413 => 4,
            _ => 5,
        };
        self.by_status[i].fetch_add(1, Ordering::Relaxed);
    }
}

/// `callers` callers for `during`, each sending `POST /clients` with a 60 KB body in the same
/// write as its head, again and again, on one connection while the gateway keeps it open.
async fn flood(port: u16, callers: usize, caller: Caller, during: Duration) -> Arc<Tally> {
    let token = match caller {
        Caller::Unauthenticated => "not.a.token".to_owned(),
        _ => token_for("flood"),
    };
    let body = match caller {
        // A note far above its 3,000 characters: refused (422) once read.
        Caller::Refused => json!({
            "client": { "name": "Nova", "note": "n".repeat(60_000) },
            "targets": { "lucca": {} }
        })
        .to_string(),
        // A valid request made 60 KB by the whitespace JSON allows.
        _ => format!(
            "{}{}",
            json!({ "client": { "name": "Nova" }, "targets": { "lucca": {} } }),
            " ".repeat(60_000)
        ),
    };
    let request = Arc::new(
        format!(
            "POST /clients HTTP/1.1\r\nhost: gw\r\nauthorization: Bearer {token}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    );
    let tally = Arc::new(Tally::default());
    let until = Instant::now() + during;
    let tasks: Vec<_> = (0..callers)
        .map(|_| {
            let (request, tally) = (request.clone(), tally.clone());
            tokio::spawn(async move {
                // One connection kept open while the gateway keeps it, as a pool would.
                let mut stream: Option<TcpStream> = None;
                while Instant::now() < until {
                    let once = async {
                        if stream.is_none() {
                            stream = Some(TcpStream::connect(("127.0.0.1", port)).await.ok()?);
                        }
                        let s = stream.as_mut()?;
                        s.write_all(&request).await.ok()?;
                        read_answer(s).await
                    };
                    match tokio::time::timeout(Duration::from_secs(30), once).await {
                        Ok(Some((status, close))) => {
                            tally.note(status);
                            if close {
                                stream = None;
                            }
                        }
                        _ => {
                            stream = None;
                            tally.unanswered.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        let _ = task.await;
    }
    tally
}

/// One answer read whole from `s`: its status, and whether the gateway closes the connection.
async fn read_answer(s: &mut TcpStream) -> Option<(u16, bool)> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        if buf.len() > 16 * 1024 {
            return None;
        }
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = std::str::from_utf8(&buf[..head_end])
        .ok()?
        .to_ascii_lowercase();
    let status = head.get(9..12)?.parse().ok()?;
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|n| n.trim().parse().ok())?;
    let close = head.lines().any(|l| l.trim() == "connection: close");
    let mut rest = vec![0u8; (head_end + length).saturating_sub(buf.len())];
    s.read_exact(&mut rest).await.ok()?;
    Some((status, close))
}

/// Probes `/healthz` on `port` every 200 ms for `during`, each on a new connection within 2 s:
/// the failures.
async fn probe_during(port: u16, during: Duration) -> usize {
    let until = Instant::now() + during;
    let mut failed = 0;
    while Instant::now() < until {
        let probe = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .pool_max_idle_per_host(0)
            .build()
            .unwrap()
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await;
        if !probe.is_ok_and(|r| r.status() == 200) {
            failed += 1;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    failed
}

/// Who floods the gateway.
#[derive(Clone, Copy, PartialEq)]
enum Caller {
    /// A caller whose token is refused (401).
    Unauthenticated,
    /// An authenticated caller whose bodies are refused (422).
    Refused,
    /// An authenticated caller with valid requests, more than the budget holds at once while
    /// Lucca takes 2 s.
    Valid,
}

async fn run(limit_mib: u64, callers: usize, caller: Caller) {
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let lucca = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(json!({"id": 1}))
                .set_delay(Duration::from_secs(2)),
        )
        .mount(&lucca)
        .await;
    let cgroup = MemoryCgroup::new(limit_mib);
    let (port, ops) = (free_port(), free_port());
    let (_dir, config) = binary_config_file(
        port,
        &format!(
            "ops_bind = \"127.0.0.1:{ops}\"\n[telemetry]\nlog_level = \"warn\"\n\
             [providers.lucca]\nbase_url = \"{}\"\napi_key = \"{LUCCA_KEY}\"\norganization_id = 12\n",
            lucca.uri()
        ),
    );
    let config = config.to_str().unwrap().to_owned();
    let mut gateway = cgroup.start(
        env!("CARGO_BIN_EXE_clients-gateway"),
        &["--config", &config],
    );
    assert!(listens_within(ops, Duration::from_secs(10)).await);
    let during = Duration::from_secs(8);
    let (tally, probe_failures) = tokio::join!(
        flood(port, callers, caller, during),
        probe_during(ops, during)
    );
    let alive = gateway.try_wait().unwrap().is_none();
    let (oom_kills, peak) = (cgroup.oom_kills(), cgroup.peak_mib());
    let counts: Vec<usize> = tally
        .by_status
        .iter()
        .map(|c| c.load(Ordering::Relaxed))
        .collect();
    let summary = format!(
        "{limit_mib} MiB, {callers} callers: peak {peak} MiB, {} answered (207/401/422/503/413/other {counts:?}), {} unanswered, {probe_failures} probes failed",
        tally.answered.load(Ordering::Relaxed),
        tally.unanswered.load(Ordering::Relaxed)
    );
    eprintln!("{summary}");
    drop(gateway);
    assert!(alive && oom_kills == 0, "killed: {summary}");
    // What the connections hold before admission is counted: the process stays within the
    // budget (80 % of the limit), short of the working set that sheds everything (85 %).
    assert!(
        peak * 100 <= limit_mib * 80,
        "the peak passed the budget (80 % of the limit): {summary}"
    );
    assert_eq!(probe_failures, 0, "{summary}");
    assert!(tally.answered.load(Ordering::Relaxed) > 0, "{summary}");
    match caller {
        Caller::Unauthenticated => assert!(counts[1] > 0 && counts[0] == 0, "{summary}"),
        Caller::Refused => assert!(counts[2] > 0 && counts[0] == 0, "{summary}"),
        Caller::Valid => assert!(
            counts[3] > 0,
            "past the budget, callers are shed: {summary}"
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_sent_with_their_heads_by_unauthenticated_callers_never_kill_the_pod() {
    run(256, 5_000, Caller::Unauthenticated).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_bodies_sent_with_their_heads_on_kept_connections_never_kill_the_pod() {
    run(64, 3_000, Caller::Refused).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_sent_with_their_heads_by_callers_past_the_budget_are_shed_and_the_pod_lives() {
    run(64, 3_000, Caller::Valid).await;
}
