//! OpenTelemetry traces, from the real binary to a local OTLP/HTTP receiver (wiremock, the spans
//! decoded with the `opentelemetry-proto` types): the caller's trace continued, a span per
//! target, nothing secret in any attribute, and a collector that is down costs nothing.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::*;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attributes(span: &Span) -> HashMap<String, String> {
    span.attributes
        .iter()
        .map(|kv| {
            let value = match kv.value.as_ref().and_then(|v| v.value.clone()) {
                Some(Any::StringValue(s)) => s,
                Some(Any::IntValue(i)) => i.to_string(),
                Some(Any::BoolValue(b)) => b.to_string(),
                Some(Any::DoubleValue(d)) => d.to_string(),
                other => format!("{other:?}"),
            };
            (kv.key.clone(), value)
        })
        .collect()
}

/// Every span the collector received so far.
async fn spans(collector: &MockServer) -> Vec<Span> {
    let mut out = Vec::new();
    for request in collector.received_requests().await.unwrap_or_default() {
        let export =
            ExportTraceServiceRequest::decode(request.body.as_slice()).expect("OTLP protobuf");
        for resource in export.resource_spans {
            for scope in resource.scope_spans {
                out.extend(scope.spans);
            }
        }
    }
    out
}

fn config(port: u16, mocks: &Mocks, otlp: &str) -> String {
    binary_config(
        port,
        &format!(
            r#"
[telemetry]
log_level = "info"
otlp_endpoint = "{otlp}"
service_name = "gateway-under-test"
[providers.lucca]
base_url = "{}"
api_key = "{LUCCA_KEY}"
organization_id = 12
[providers.clockify]
base_url = "{}/api"
api_key = "{CLOCKIFY_KEY}"
workspace_id = "{CLOCKIFY_WORKSPACE}"
"#,
            mocks.lucca.uri(),
            mocks.clockify.uri()
        ),
    )
}

/// A local OTLP/HTTP receiver that accepts every export.
async fn collector() -> MockServer {
    let collector = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/traces"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&collector)
        .await;
    collector
}

async fn start(
    config_text: &str,
    log: Option<std::fs::File>,
    port: u16,
) -> (Spawned, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), config_text);
    // Batches every 100 ms, for the test not to wait.
    let child = start_binary_with(&config, port, log, &[("OTEL_BSP_SCHEDULE_DELAY", "100")]).await;
    (child, dir)
}

#[tokio::test]
async fn each_request_continues_the_callers_trace_with_a_span_per_target() {
    let collector = collector().await;
    let mocks = Mocks::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 1})))
        .mount(&mocks.lucca)
        .await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(400).set_body_json(json!({"message": "bad", "code": 1})),
        )
        .mount(&mocks.clockify)
        .await;
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let log = std::fs::File::create(dir.path().join("gateway.log")).unwrap();
    let (mut child, _config) =
        start(&config(port, &mocks, &collector.uri()), Some(log), port).await;

    // Five callers at once, each in its own trace.
    let token = token_for("traced-caller");
    let body = json!({"client": {"name": "Nova"}, "targets": {"lucca": {}, "clockify": {}}});
    let traces: Vec<(String, String)> = (0..5)
        .map(|i| {
            (
                format!("4bf92f3577b34da6a3ce929d0e0e47{i:02x}"),
                format!("00f067aa0ba902b{i}"),
            )
        })
        .collect();
    let http = reqwest::Client::new();
    let answers = join_all(traces.iter().map(|(trace, parent)| {
        http.post(format!("http://127.0.0.1:{port}/clients"))
            .bearer_auth(&token)
            .header("traceparent", format!("00-{trace}-{parent}-01"))
            .json(&body)
            .send()
    }))
    .await;
    for (answer, (trace, _)) in answers.into_iter().zip(&traces) {
        let answer = answer.unwrap();
        assert_eq!(answer.status(), 207);
        let traceparent = answer.headers()["traceparent"].to_str().unwrap().to_owned();
        assert!(
            traceparent.starts_with(&format!("00-{trace}-")),
            "{traceparent}"
        );
    }
    // The trace stays inside: providers are third parties and get no trace context.
    for server in [&mocks.lucca, &mocks.clockify] {
        let received = server.received_requests().await.unwrap();
        assert_eq!(received.len(), 5);
        for request in received {
            assert!(!request.headers.contains_key("traceparent"));
            assert!(!request.headers.contains_key("tracestate"));
        }
    }

    // The spans arrive in batches, off the request path: every target's and every request's
    // (a request's span ends after its targets', and may come in a later batch).
    let started = Instant::now();
    let mut all = spans(&collector).await;
    let complete = |all: &[Span]| {
        all.iter().filter(|s| s.name.starts_with("create ")).count() >= 10
            && all
                .iter()
                .filter(|s| s.kind == SpanKind::Server as i32)
                .count()
                >= 5
    };
    while !complete(&all) {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "spans never exported: {all:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        all = spans(&collector).await;
    }
    for (trace, parent) in &traces {
        let server: Vec<&Span> = all
            .iter()
            .filter(|s| hex(&s.trace_id) == *trace && s.kind == SpanKind::Server as i32)
            .collect();
        assert_eq!(server.len(), 1, "one server span in trace {trace}");
        let server = server[0];
        assert_eq!(server.name, "POST /clients");
        assert_eq!(
            hex(&server.parent_span_id),
            *parent,
            "the caller's span is its parent"
        );
        let a = attributes(server);
        assert_eq!(a["http.response.status_code"], "207");
        assert_eq!(a["http.route"], "/clients");
        let children: Vec<&Span> = all
            .iter()
            .filter(|s| s.parent_span_id == server.span_id && s.name.starts_with("create "))
            .collect();
        assert_eq!(children.len(), 2, "a span per target in trace {trace}");
        for child in children {
            assert_eq!(child.trace_id, server.trace_id);
            let a = attributes(child);
            match a["provider"].as_str() {
                "lucca" => {
                    assert_eq!(a["status"], "created");
                    assert_eq!(a["attempts"], "1");
                    assert!(!a.contains_key("error.kind"));
                }
                "clockify" => {
                    assert_eq!(a["status"], "failed");
                    assert_eq!(a["error.kind"], "validation");
                    assert_eq!(a["http.response.status_code"], "400");
                }
                other => panic!("unexpected provider {other}"),
            }
        }
    }
    // Nothing secret in any span.
    for span in &all {
        for (key, value) in attributes(span) {
            for secret in [LUCCA_KEY, CLOCKIFY_KEY, JWT_SECRET, token.as_str()] {
                assert!(
                    !value.contains(secret),
                    "{key} of {} holds a secret",
                    span.name
                );
            }
        }
    }
    terminate(&mut child).await;

    // The log line names the request and its trace.
    let logs = std::fs::read_to_string(dir.path().join("gateway.log")).unwrap();
    let lines: Vec<Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|l: &Value| l["message"] == "clients request finished")
        .collect();
    assert_eq!(lines.len(), 5);
    for line in lines {
        let trace = line["trace_id"].as_str().expect("trace_id in the log line");
        assert!(traces.iter().any(|(t, _)| t == trace), "{line}");
        assert!(line["request_id"].is_string());
    }
}

#[tokio::test]
async fn a_collector_that_is_down_or_hung_costs_the_requests_nothing() {
    // One that accepts connections and never answers, one where nothing listens.
    let hung = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hung_address = format!("http://{}", hung.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = hung.accept().await {
            held.push(socket);
        }
    });
    for collector in [hung_address, closed_address()] {
        let mocks = Mocks::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 1})))
            .mount(&mocks.lucca)
            .await;
        let port = free_port();
        let (mut child, _config) = start(&config(port, &mocks, &collector), None, port).await;
        let token = token_for("traced-caller");
        let http = reqwest::Client::new();
        let address = format!("http://127.0.0.1:{port}");
        for _ in 0..30 {
            let started = Instant::now();
            let (status, answer) = post_keyed(
                &http,
                &address,
                &token,
                None,
                &one_target("lucca", json!({})),
            )
            .await;
            assert_eq!(status, 207, "{answer}");
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "a request waited for the collector ({collector}): {:?}",
                started.elapsed()
            );
        }
        terminate(&mut child).await;
    }
}

#[tokio::test]
async fn a_lookup_is_a_child_span_of_its_target() {
    let collector = collector().await;
    let mocks = Mocks::start().await;
    let lucca = fixture(clients_gateway::catalog::ProviderId::Lucca);
    Mock::given(method("POST"))
        .respond_with((lucca.duplicate.unwrap())())
        .mount(&mocks.lucca)
        .await;
    for mock in (lucca.lookup)(true) {
        mock.mount(&mocks.lucca).await;
    }
    let port = free_port();
    let (mut child, _config) = start(&config(port, &mocks, &collector.uri()), None, port).await;

    let trace = "0af7651916cd43dd8448eb211c80319c";
    let mut body = lucca.findable_request();
    body["if_exists"] = json!("adopt");
    let answer = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/clients"))
        .bearer_auth(token_for("traced-caller"))
        .header("traceparent", format!("00-{trace}-b7ad6b7169203331-01"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 207);
    let answer: Value = answer.json().await.unwrap();
    assert_eq!(answer["results"]["lucca"]["status"], "existing", "{answer}");

    let started = Instant::now();
    let mut all = spans(&collector).await;
    while !all.iter().any(|s| s.name == "lookup lucca") {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "no lookup span exported: {all:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        all = spans(&collector).await;
    }
    terminate(&mut child).await;
    let named = |name: &str| {
        all.iter()
            .find(|s| s.name == name && hex(&s.trace_id) == trace)
            .unwrap_or_else(|| panic!("no span {name} in trace {trace}: {all:?}"))
    };
    let create = named("create lucca");
    let lookup = named("lookup lucca");
    assert_eq!(lookup.parent_span_id, create.span_id);
    assert_eq!(lookup.kind, SpanKind::Client as i32);
    let a = attributes(lookup);
    assert_eq!(a["provider"], "lucca");
    assert_eq!(a["outcome"], "found");
    let a = attributes(create);
    assert_eq!(a["status"], "existing");
    assert_eq!(a["attempts"], "1");

    // The spans name the service configured.
    let services: Vec<String> = collector
        .received_requests()
        .await
        .unwrap()
        .iter()
        .flat_map(|r| {
            ExportTraceServiceRequest::decode(r.body.as_slice())
                .unwrap()
                .resource_spans
        })
        .filter_map(|r| r.resource)
        .flat_map(|r| r.attributes)
        .filter(|kv| kv.key == "service.name")
        .filter_map(|kv| match kv.value.and_then(|v| v.value) {
            Some(Any::StringValue(s)) => Some(s),
            _ => None,
        })
        .collect();
    assert!(!services.is_empty());
    assert!(
        services.iter().all(|s| s == "gateway-under-test"),
        "{services:?}"
    );
}
