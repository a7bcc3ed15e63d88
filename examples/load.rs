//! The overload benchmark's load generator (`bench/overload.py` runs it): `--connections` callers,
//! each sending the same HTTP/1.1 request again and again on its connection (reconnecting when the
//! server closes it, the connect time counted in the latency), for `--duration-s`; latency kept
//! per answered status. Beside them, a liveness probe on a new connection every `--probe-every-ms`,
//! as a kubelet sends it, with its own timeout. Prints one JSON summary on stdout.
//!
//! ```sh
//! cargo run --release --example load -- --addr 127.0.0.1:8080 --connections 2000 \
//!   --duration-s 20 --body body.json --header "Authorization: Bearer $TOKEN"
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Parser, Clone)]
struct Args {
    /// The server, host:port.
    #[arg(long)]
    addr: String,
    #[arg(long, default_value_t = 100)]
    connections: usize,
    #[arg(long, default_value_t = 10)]
    duration_s: u64,
    /// The connections are opened over this long (0: all at once).
    #[arg(long, default_value_t = 0)]
    ramp_ms: u64,
    #[arg(long, default_value = "/clients")]
    path: String,
    /// The JSON body of every request (POST); absent: GET.
    #[arg(long)]
    body: Option<PathBuf>,
    /// Extra request headers, `Name: value`.
    #[arg(long)]
    header: Vec<String>,
    /// An answer not complete within this long counts as a timeout (the connection is dropped).
    #[arg(long, default_value_t = 60_000)]
    timeout_ms: u64,
    /// The probes' servers (default: --addr), each probed on its own.
    #[arg(long)]
    probe_addr: Vec<String>,
    #[arg(long, default_value = "/healthz")]
    probe_path: String,
    /// 0: no probe.
    #[arg(long, default_value_t = 200)]
    probe_every_ms: u64,
    #[arg(long, default_value_t = 2_000)]
    probe_timeout_ms: u64,
    /// Connect and send nothing (what an open, idle connection costs the server).
    #[arg(long)]
    idle: bool,
    /// After a `503` with `Retry-After: N`, wait N seconds (± half, at random) before sending
    /// again, as a well-behaved client does; without it, callers send again at once.
    #[arg(long)]
    honour_retry_after: bool,
}

/// What one caller (or the probe) saw.
#[derive(Default)]
struct Seen {
    /// Latencies in microseconds, by status.
    latencies: BTreeMap<u16, Vec<u32>>,
    errors: BTreeMap<&'static str, u64>,
    /// Target statuses counted in the answers' bodies.
    targets: BTreeMap<&'static str, u64>,
    /// 503 answers without `Retry-After`.
    shed_without_retry_after: u64,
    /// Answers that closed the connection, by status.
    closed_after: BTreeMap<u16, u64>,
}

impl Seen {
    fn merge(&mut self, other: Seen) {
        for (status, mut l) in other.latencies {
            self.latencies.entry(status).or_default().append(&mut l);
        }
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
        for (k, v) in other.targets {
            *self.targets.entry(k).or_default() += v;
        }
        for (k, v) in other.closed_after {
            *self.closed_after.entry(k).or_default() += v;
        }
        self.shed_without_retry_after += other.shed_without_retry_after;
    }

    fn error(&mut self, kind: &'static str) {
        *self.errors.entry(kind).or_default() += 1;
    }
}

/// One parsed answer.
struct Answer {
    status: u16,
    close: bool,
    /// Its `Retry-After`, in seconds (0 when not a number).
    retry_after: Option<u64>,
    body: Vec<u8>,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let body = args
        .body
        .as_ref()
        .map(|p| std::fs::read(p).expect("the body file"));
    let request = build_request(&args, body.as_deref());
    let started = Instant::now();
    let until = started + Duration::from_secs(args.duration_s);
    let timeout = Duration::from_millis(args.timeout_ms);

    let probed = if args.probe_addr.is_empty() {
        vec![args.addr.clone()]
    } else {
        args.probe_addr.clone()
    };
    let probes: Vec<_> = probed
        .iter()
        .filter(|_| args.probe_every_ms > 0)
        .map(|addr| {
            let request = format!(
                "GET {} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n",
                args.probe_path
            )
            .into_bytes();
            let task = tokio::spawn(probe_loop(
                addr.clone(),
                request,
                Duration::from_millis(args.probe_every_ms),
                Duration::from_millis(args.probe_timeout_ms),
                until,
            ));
            (addr.clone(), task)
        })
        .collect();

    let mut callers = Vec::with_capacity(args.connections);
    for i in 0..args.connections {
        let delay = if args.connections > 1 {
            Duration::from_millis(args.ramp_ms * i as u64 / (args.connections as u64 - 1))
        } else {
            Duration::ZERO
        };
        if args.idle {
            callers.push(tokio::spawn(idle(
                args.addr.clone(),
                started + delay,
                until,
            )));
            continue;
        }
        callers.push(tokio::spawn(caller(
            args.addr.clone(),
            request.clone(),
            started + delay,
            until,
            timeout,
            args.honour_retry_after,
        )));
    }
    let mut seen = Seen::default();
    for caller in callers {
        if let Ok(s) = caller.await {
            seen.merge(s);
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let mut probe_results = Vec::new();
    for (addr, task) in probes {
        if let Ok(seen) = task.await {
            probe_results.push((addr, seen));
        }
    }
    let statuses: BTreeMap<String, serde_json::Value> = seen
        .latencies
        .iter_mut()
        .map(|(status, l)| (status.to_string(), summary(l, elapsed)))
        .collect();
    let probes: BTreeMap<String, serde_json::Value> = probe_results.into_iter().map(|(addr, p)| {
        let ok: usize = p
            .latencies
            .iter()
            .filter(|(s, _)| **s == 200)
            .map(|(_, l)| l.len())
            .sum();
        let mut all: Vec<u32> = p.latencies.values().flatten().copied().collect();
        let failed: u64 = p.errors.values().sum::<u64>() + (all.len() - ok) as u64;
        (addr, json!({"ok": ok, "failed": failed, "errors": p.errors, "latency": summary(&mut all, elapsed)}))
    }).collect();
    let out = json!({
        "connections": args.connections,
        "elapsed_s": elapsed,
        "statuses": statuses,
        "errors": seen.errors,
        "targets": seen.targets,
        "shed_without_retry_after": seen.shed_without_retry_after,
        "closed_after": seen.closed_after.iter().map(|(k, v)| (k.to_string(), *v)).collect::<BTreeMap<_, _>>(),
        "probes": probes,
    });
    println!("{out}");
}

fn build_request(args: &Args, body: Option<&[u8]>) -> Vec<u8> {
    let method = if body.is_some() { "POST" } else { "GET" };
    let mut head = format!("{method} {} HTTP/1.1\r\nHost: {}\r\n", args.path, args.addr);
    for h in &args.header {
        head.push_str(h);
        head.push_str("\r\n");
    }
    if let Some(body) = body {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    head.push_str("\r\n");
    let mut request = head.into_bytes();
    request.extend_from_slice(body.unwrap_or_default());
    request
}

fn summary(latencies: &mut [u32], elapsed: f64) -> serde_json::Value {
    latencies.sort_unstable();
    let at = |q: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let i = ((latencies.len() as f64 - 1.0) * q).round() as usize;
        f64::from(latencies[i]) / 1000.0
    };
    json!({
        "count": latencies.len(),
        "per_s": latencies.len() as f64 / elapsed,
        "p50_ms": at(0.5),
        "p99_ms": at(0.99),
        "max_ms": at(1.0),
    })
}

async fn caller(
    addr: String,
    request: Vec<u8>,
    start_at: Instant,
    until: Instant,
    timeout: Duration,
    honour_retry_after: bool,
) -> Seen {
    tokio::time::sleep_until(start_at.into()).await;
    let mut seen = Seen::default();
    let mut stream: Option<TcpStream> = None;
    let mut buf = Vec::with_capacity(16 * 1024);
    while Instant::now() < until {
        let sent_at = Instant::now();
        let left = until.saturating_duration_since(sent_at) + timeout;
        let exchange = async {
            if stream.is_none() {
                let s = TcpStream::connect(&addr).await.map_err(|_| "connect")?;
                let _ = s.set_nodelay(true);
                stream = Some(s);
            }
            let s = stream.as_mut().expect("connected above");
            s.write_all(&request).await.map_err(|_| "write")?;
            read_answer(s, &mut buf).await
        };
        match tokio::time::timeout(timeout.min(left), exchange).await {
            Ok(Ok(answer)) => {
                let us = u32::try_from(sent_at.elapsed().as_micros()).unwrap_or(u32::MAX);
                seen.latencies.entry(answer.status).or_default().push(us);
                if answer.status == 503 && answer.retry_after.is_none() {
                    seen.shed_without_retry_after += 1;
                }
                count_targets(&answer.body, &mut seen);
                if answer.close {
                    *seen.closed_after.entry(answer.status).or_default() += 1;
                    stream = None;
                }
                if let (true, 503, Some(wait)) =
                    (honour_retry_after, answer.status, answer.retry_after)
                {
                    // Believed up to the run's length (a bigger number waits the run out).
                    let wait =
                        Duration::from_secs(wait.min(3_600)).mul_f64(0.5 + rand::random::<f64>());
                    tokio::time::sleep(wait.min(until.saturating_duration_since(Instant::now())))
                        .await;
                }
            }
            Ok(Err(kind)) => {
                seen.error(kind);
                stream = None;
                if kind == "connect" {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            Err(_) => {
                seen.error("timeout");
                stream = None;
            }
        }
    }
    seen
}

/// Holds a connection open, sending nothing.
async fn idle(addr: String, start_at: Instant, until: Instant) -> Seen {
    tokio::time::sleep_until(start_at.into()).await;
    let mut seen = Seen::default();
    match TcpStream::connect(&addr).await {
        Ok(_stream) => tokio::time::sleep_until(until.into()).await,
        Err(_) => seen.error("connect"),
    }
    seen
}

/// Counts the target statuses of a 207 body.
fn count_targets(body: &[u8], seen: &mut Seen) {
    for status in ["created", "existing", "failed", "unknown"] {
        let needle = format!("\"status\":\"{status}\"");
        let n = body
            .windows(needle.len())
            .filter(|w| *w == needle.as_bytes())
            .count() as u64;
        if n > 0 {
            *seen.targets.entry(status).or_default() += n;
        }
    }
}

/// Reads one answer: its head, then a `Content-Length` or chunked body.
async fn read_answer(s: &mut TcpStream, buf: &mut Vec<u8>) -> Result<Answer, &'static str> {
    buf.clear();
    let head_end = loop {
        if let Some(i) = find(buf, b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 64 * 1024 {
            return Err("head too large");
        }
        read_more(s, buf).await?;
    };
    let head = std::str::from_utf8(&buf[..head_end]).map_err(|_| "head not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or("status line")?;
    let (mut length, mut chunked, mut close, mut retry_after) = (None, false, false, None);
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
        match name.as_str() {
            "content-length" => length = value.parse::<usize>().ok(),
            "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
            "connection" => close = value.eq_ignore_ascii_case("close"),
            "retry-after" => retry_after = Some(value.parse().unwrap_or(0)),
            _ => {}
        }
    }
    let body = if chunked {
        loop {
            if find(&buf[head_end..], b"0\r\n\r\n").is_some() {
                break buf[head_end..].to_vec();
            }
            read_more(s, buf).await?;
        }
    } else {
        let length = length.unwrap_or(0);
        while buf.len() < head_end + length {
            read_more(s, buf).await?;
        }
        buf[head_end..head_end + length].to_vec()
    };
    Ok(Answer {
        status,
        close,
        retry_after,
        body,
    })
}

async fn read_more(s: &mut TcpStream, buf: &mut Vec<u8>) -> Result<(), &'static str> {
    let mut chunk = [0u8; 8192];
    match s.read(&mut chunk).await {
        Ok(0) => Err("closed before an answer"),
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            Ok(())
        }
        Err(_) => Err("read"),
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

async fn probe_loop(
    addr: String,
    request: Vec<u8>,
    every: Duration,
    timeout: Duration,
    until: Instant,
) -> Seen {
    let mut probes = Vec::new();
    let mut tick = tokio::time::interval(every);
    while Instant::now() < until {
        tick.tick().await;
        let (addr, request) = (addr.clone(), request.clone());
        probes.push(tokio::spawn(async move {
            let started = Instant::now();
            let mut buf = Vec::new();
            let probe = async {
                let mut s = TcpStream::connect(&addr).await.map_err(|_| "connect")?;
                s.write_all(&request).await.map_err(|_| "write")?;
                read_answer(&mut s, &mut buf).await
            };
            let result = tokio::time::timeout(timeout, probe).await;
            (result, started.elapsed())
        }));
    }
    let mut seen = Seen::default();
    for probe in probes {
        match probe.await {
            Ok((Ok(Ok(answer)), took)) => seen
                .latencies
                .entry(answer.status)
                .or_default()
                .push(u32::try_from(took.as_micros()).unwrap_or(u32::MAX)),
            Ok((Ok(Err(kind)), _)) => seen.error(kind),
            Ok((Err(_), _)) => seen.error("timeout"),
            Err(_) => seen.error("panicked"),
        }
    }
    seen
}
