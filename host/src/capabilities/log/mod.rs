//! `orch:plugin/log`: plugin log lines go into the run's event stream, capped per call.

use crate::runtime::wit::v0_2::orch::plugin::log as wit;
use std::sync::Arc;

/// Severity of a plugin log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Very chatty.
    Trace,
    /// Diagnostic.
    Debug,
    /// Normal progress.
    Info,
    /// Something to look at.
    Warn,
    /// Something failed.
    Error,
}

/// Where log lines go; the method runner turns them into events (and redacts them there).
pub type LogSink = Arc<dyn Fn(LogLevel, &str) + Send + Sync>;

/// Per-call logging state.
pub struct LogCapability {
    sink: LogSink,
    lines: u64,
    max_lines: u64,
    bytes: usize,
}

/// Longest log line kept; longer ones are cut so a plugin cannot flood memory.
const MAX_LINE_BYTES: usize = 16 * 1024;

/// Log bytes kept per call, all lines together: the run record holds every line until the run
/// ends, so lines × line length alone would allow far too much.
const MAX_BYTES_PER_CALL: usize = 4 * 1024 * 1024;

impl LogCapability {
    /// Logging into `sink`, keeping at most `max_lines` lines.
    pub fn new(sink: LogSink, max_lines: u64) -> Self {
        LogCapability {
            sink,
            lines: 0,
            max_lines,
            bytes: 0,
        }
    }

    /// Logging to the host's tracing output (used for `describe`).
    pub fn to_tracing() -> Self {
        Self::new(
            Arc::new(|level, msg| tracing::debug!(?level, "plugin: {msg}")),
            1000,
        )
    }

    fn emit(&mut self, level: LogLevel, message: &str) {
        self.lines = self.lines.saturating_add(1);
        if self.lines > self.max_lines {
            if self.lines == self.max_lines.saturating_add(1) {
                (self.sink)(
                    LogLevel::Warn,
                    &format!(
                        "log limit of {} lines reached; further lines dropped",
                        self.max_lines
                    ),
                );
            }
            return;
        }
        let kept = message.len().min(MAX_LINE_BYTES);
        if self.bytes.saturating_add(kept) > MAX_BYTES_PER_CALL {
            if self.bytes <= MAX_BYTES_PER_CALL {
                // Push the count past the cap so the warning is given once.
                self.bytes = MAX_BYTES_PER_CALL + 1;
                (self.sink)(
                    LogLevel::Warn,
                    &format!(
                        "log limit of {MAX_BYTES_PER_CALL} bytes per call reached; further lines dropped"
                    ),
                );
            }
            return;
        }
        self.bytes += kept;
        if message.len() > MAX_LINE_BYTES {
            let mut cut = MAX_LINE_BYTES;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            (self.sink)(
                level,
                &format!("{}… (cut at {MAX_LINE_BYTES} bytes)", &message[..cut]),
            );
        } else {
            (self.sink)(level, message);
        }
    }
}

impl wit::Host for LogCapability {
    async fn log(&mut self, level: wit::Level, message: String) -> wasmtime::Result<()> {
        let level = match level {
            wit::Level::Trace => LogLevel::Trace,
            wit::Level::Debug => LogLevel::Debug,
            wit::Level::Info => LogLevel::Info,
            wit::Level::Warn => LogLevel::Warn,
            wit::Level::Error => LogLevel::Error,
        };
        self.emit(level, &message);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn lines_past_the_limit_are_dropped_with_one_warning() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let mut cap = LogCapability::new(
            Arc::new(move |_, m| s.lock().unwrap().push(m.to_string())),
            2,
        );
        for i in 0..10 {
            cap.emit(LogLevel::Info, &format!("line {i}"));
        }
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 3);
        assert!(seen[2].contains("log limit of 2 lines"));
    }

    #[test]
    fn bytes_past_the_per_call_limit_are_dropped_with_one_warning() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let mut cap = LogCapability::new(
            Arc::new(move |_, m: &str| s.lock().unwrap().push(m.len())),
            100_000,
        );
        let line = "x".repeat(MAX_LINE_BYTES);
        for _ in 0..1000 {
            cap.emit(LogLevel::Info, &line);
        }
        let seen = seen.lock().unwrap();
        let total: usize = seen.iter().sum();
        assert!(total <= MAX_BYTES_PER_CALL + 200, "{total}");
        assert_eq!(seen.len(), MAX_BYTES_PER_CALL / MAX_LINE_BYTES + 1);
    }

    #[test]
    fn long_lines_are_cut() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let mut cap = LogCapability::new(
            Arc::new(move |_, m| s.lock().unwrap().push(m.to_string())),
            10,
        );
        cap.emit(LogLevel::Info, &"é".repeat(MAX_LINE_BYTES));
        assert!(seen.lock().unwrap()[0].len() < MAX_LINE_BYTES + 64);
    }
}
