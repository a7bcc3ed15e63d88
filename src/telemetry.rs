//! Logs: one JSON object per line (or text for a terminal) on stdout, level from the
//! configuration. Lines are written by a dedicated thread, so a slow stdout reader (a container
//! log driver) does not stall the HTTP workers while the queue has room; none is dropped (a full
//! queue waits). Once the writer thread is stopped (at exit), lines that threads still shutting
//! down emit go to stdout directly.

use std::sync::atomic::{AtomicBool, Ordering};

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::fmt::writer::MakeWriterExt;
use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, TelemetrySettings};

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

/// Keeps the writer thread; dropping it writes out the queued lines and stops the thread.
pub struct LogGuard(Option<WorkerGuard>);

impl Drop for LogGuard {
    fn drop(&mut self) {
        // Threads that are still stopping (the HTTP workers, their connections) may log after
        // this point: their lines go to stdout directly rather than to a closed queue.
        WRITER_STOPPED.store(true, Ordering::Release);
        drop(self.0.take());
    }
}

/// Installs the global subscriber; `RUST_LOG`, when set, wins over `telemetry.log_level`.
/// Keep the guard until the process ends: dropping it flushes the last lines.
pub fn init(settings: &TelemetrySettings) -> Result<LogGuard, String> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(directive) if !directive.is_empty() => EnvFilter::try_new(directive),
        _ => EnvFilter::try_new(&settings.log_level),
    }
    .map_err(|e| format!("telemetry.log_level: {e}"))?;
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
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colours only for a terminal: a log file or a collector gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .with_writer(writer);
    let installed = match settings.log_format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
    installed.map_err(|e| format!("cannot install the log subscriber: {e}"))?;
    Ok(LogGuard(Some(guard)))
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
