//! Logs and traces.
//!
//! Logs: one JSON object per line (or text) on stdout, level from the configuration. Lines are
//! written by a dedicated thread, so a slow stdout reader (a container log driver) does not stall
//! the HTTP workers while the queue has room; none is dropped (a full queue waits). Once the
//! writer thread is stopped (at exit), lines that threads still shutting down emit go to stdout
//! directly.
//!
//! Traces (OpenTelemetry, off unless a collector is configured): a server span per request that
//! continues the caller's W3C `traceparent`, a child span per target and per lookup, exported in
//! batches over OTLP/HTTP by a background thread whose queue is bounded — a collector that is
//! down or slow costs a request nothing and only drops spans.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::writer::MakeWriterExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use serde::{Deserialize, Serialize};
use url::Url;
use utoipa::ToSchema;

/// `[telemetry]`: logs and traces.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetrySettings {
    /// `tracing` filter directive, e.g. `info` or `clients_gateway=debug,info`.
    pub log_level: String,
    /// `json` (one JSON object per line) or `text`.
    pub log_format: LogFormat,
    /// OTLP/HTTP collector (`http://collector:4318`): traces are exported there. Absent: no
    /// traces, unless `OTEL_EXPORTER_OTLP_ENDPOINT` (or `..._TRACES_ENDPOINT`) is set.
    #[schema(value_type = Option<String>)]
    pub otlp_endpoint: Option<Url>,
    /// The service name of the traces (`OTEL_SERVICE_NAME` wins).
    pub service_name: String,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        Self {
            log_level: "info".into(),
            log_format: LogFormat::Json,
            otlp_endpoint: None,
            service_name: "clients-gateway".into(),
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Text,
}

impl TelemetrySettings {
    pub fn check(&self) -> Result<(), String> {
        if let Some(url) = &self.otlp_endpoint {
            // The exporter speaks plain HTTP: a collector in the cluster or a sidecar. A URL with
            // credentials would put them where a URL is shown.
            if url.scheme() != "http" || !url.username().is_empty() || url.password().is_some() {
                return Err(
                    "telemetry.otlp_endpoint must be an http:// URL without credentials \
                     (an OTLP/HTTP collector in the cluster or a sidecar)"
                        .into(),
                );
            }
        }
        if let Err(e) = EnvFilter::try_new(&self.log_level) {
            return Err(format!(
                "telemetry.log_level is not a log filter (`info`, `warn,clients_gateway=debug`): {e}"
            ));
        }
        if self.service_name.trim().is_empty() || self.service_name.len() > 255 {
            return Err("telemetry.service_name must have 1 to 255 characters".into());
        }
        Ok(())
    }
}

/// Whether spans are exported (a collector is configured).
static TRACES: AtomicBool = AtomicBool::new(false);

/// Whether spans are exported: the gateway's spans are then `info` (sent whatever the log
/// level), else `debug` (free at the default log level).
pub fn traces_on() -> bool {
    TRACES.load(Ordering::Relaxed)
}

/// A span of the gateway's own (request, target, lookup): `info` when traces are exported,
/// `debug` otherwise, so that logs at `info` pay nothing for it.
#[macro_export]
macro_rules! gateway_span {
    ($name:literal, $($fields:tt)*) => {
        if $crate::telemetry::traces_on() {
            tracing::info_span!($name, $($fields)*)
        } else {
            tracing::debug_span!($name, $($fields)*)
        }
    };
}

/// How long one export to the collector may take (it runs off the request path).
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// Lines queued for the writer thread at most; past it, the logging thread waits (a bound on
/// memory when stdout is slower than the traffic).
const LINES_IN_FLIGHT: usize = 1024;

/// Set when the writer thread stops: later lines bypass the queue.
static WRITER_STOPPED: AtomicBool = AtomicBool::new(false);

/// A caller-supplied text as a log field: control characters (a newline, an ANSI escape) written
/// as `\u{..}` escapes, so it cannot forge a line or recolour a terminal.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return text.into();
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect::<String>()
        .into()
}

/// Keeps the log writer thread and the trace exporter; dropping it exports the last spans,
/// writes out the queued lines and stops both.
pub struct LogGuard {
    writer: Option<WorkerGuard>,
    traces: Option<SdkTracerProvider>,
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.traces.take() {
            if let Err(e) = provider.shutdown() {
                tracing::warn!(error = %e, "the last spans could not be exported");
            }
        }
        // Threads that are still stopping (the HTTP workers, their connections) may log after
        // this point: their lines go to stdout directly rather than to a closed queue.
        WRITER_STOPPED.store(true, Ordering::Release);
        drop(self.writer.take());
    }
}

/// Where traces go: the configured collector, or the standard `OTEL_EXPORTER_OTLP_*` variables;
/// `None` when neither says.
fn trace_exporter(settings: &TelemetrySettings) -> Result<Option<SdkTracerProvider>, String> {
    use opentelemetry_otlp::{Protocol, WithExportConfig};
    let from_env = [
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ]
    .iter()
    .any(|v| std::env::var_os(v).is_some_and(|v| !v.is_empty()));
    let mut builder = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_timeout(EXPORT_TIMEOUT);
    match &settings.otlp_endpoint {
        Some(url) => {
            let traces = if url.path().ends_with("/v1/traces") {
                url.to_string()
            } else {
                format!("{}/v1/traces", url.as_str().trim_end_matches('/'))
            };
            builder = builder.with_endpoint(traces);
        }
        None if from_env => {}
        None => return Ok(None),
    }
    let exporter = builder
        .build()
        .map_err(|e| format!("telemetry.otlp_endpoint: {e}"))?;
    let mut resource = opentelemetry_sdk::Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name(settings.service_name.clone());
    }
    Ok(Some(
        SdkTracerProvider::builder()
            .with_resource(resource.build())
            .with_batch_exporter(exporter)
            .build(),
    ))
}

/// A W3C `traceparent` read from request headers.
struct Headers<'a>(&'a actix_web::http::header::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// Makes `span` continue the trace of the caller's `traceparent`, if it sent a valid one.
pub fn continue_trace(span: &tracing::Span, headers: &actix_web::http::header::HeaderMap) {
    if !traces_on() {
        return;
    }
    let parent = TraceContextPropagator::new().extract(&Headers(headers));
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
}

/// The `traceparent` of `span` (to answer with), when traces are on.
pub fn traceparent(span: &tracing::Span) -> Option<String> {
    if !traces_on() {
        return None;
    }
    let context = span.context();
    let span_context = context.span().span_context().clone();
    span_context.is_valid().then(|| {
        format!(
            "00-{}-{}-{:02x}",
            span_context.trace_id(),
            span_context.span_id(),
            span_context.trace_flags().to_u8()
        )
    })
}

/// The trace id of the current span, when traces are on (for the request's log line).
pub fn trace_id() -> Option<String> {
    if !traces_on() {
        return None;
    }
    let context = tracing::Span::current().context();
    let span_context = context.span().span_context().clone();
    span_context
        .is_valid()
        .then(|| span_context.trace_id().to_string())
}

/// Installs the global subscriber; `RUST_LOG`, when set, wins over `telemetry.log_level`.
/// Keep the guard until the process ends: dropping it flushes the last lines.
pub fn init(settings: &TelemetrySettings) -> Result<LogGuard, String> {
    let traces = trace_exporter(settings)?;
    let filter = log_filter(settings)?;
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(LINES_IN_FLIGHT)
        // The writer thread writes every line it finds queued, then flushes: one write for a
        // burst of lines, not one per line.
        .finish(std::io::BufWriter::with_capacity(
            64 * 1024,
            std::io::stdout(),
        ));
    let writer = writer
        .with_filter(|_| !WRITER_STOPPED.load(Ordering::Acquire))
        .or_else(std::io::stdout);
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let logs = match settings.log_format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(writer)
            .with_filter(filter)
            .boxed(),
        // Colours only for a terminal: a log file or a collector gets plain text.
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_ansi(ansi)
            .with_writer(writer)
            .with_filter(filter)
            .boxed(),
    };
    // The gateway's own spans (requests, targets, lookups), whatever the log level.
    let spans = traces.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("clients-gateway"))
            .with_filter(Targets::new().with_target("clients_gateway", tracing::Level::INFO))
    });
    let protocol_errors = ProtocolErrors.with_filter(
        Targets::new().with_target("actix_http::h1::dispatcher", tracing::Level::ERROR),
    );
    tracing_subscriber::registry()
        .with(logs)
        .with(spans)
        .with(protocol_errors)
        .try_init()
        .map_err(|e| format!("cannot install the log subscriber: {e}"))?;
    if traces.is_some() {
        TRACES.store(true, Ordering::Relaxed);
        tracing::info!("traces exported over OTLP/HTTP");
    }
    Ok(LogGuard {
        writer: Some(guard),
        traces,
    })
}

/// What is logged: `RUST_LOG` when set, else `telemetry.log_level`; the HTTP server's complaints
/// about its peers (a malformed request head, a connection cut by its peer) only when asked for
/// by name — any client could raise them at will; they are counted instead
/// (`clients_gateway_inbound_protocol_errors_total`).
fn log_filter(settings: &TelemetrySettings) -> Result<EnvFilter, String> {
    let directive = match std::env::var("RUST_LOG") {
        Ok(directive) if !directive.is_empty() => directive,
        _ => settings.log_level.clone(),
    };
    let filter = EnvFilter::try_new(&directive).map_err(|e| format!("telemetry.log_level: {e}"))?;
    if directive.contains("actix_http") {
        return Ok(filter);
    }
    Ok(filter.add_directive(
        "actix_http::h1::dispatcher=off"
            .parse()
            .expect("a valid directive"),
    ))
}

/// Counts the HTTP server's complaints about its peers (malformed request heads, connections
/// cut mid-request), which are not logged as errors.
struct ProtocolErrors;

impl<S: tracing::Subscriber> Layer<S> for ProtocolErrors {
    fn on_event(
        &self,
        _event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        crate::metrics::inbound_protocol_error();
    }
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(printable("alice"), "alice");
        assert_eq!(printable("a\nb"), "a\\u{a}b");
        assert_eq!(printable("\u{1b}[31mred"), "\\u{1b}[31mred");
    }
}
