//! `orch:plugin/log`: plugin log lines go into the run's event stream, capped per call.

use crate::runtime::bindings::orch::plugin::log as wit;
use std::sync::Arc;

/// Severity of a plugin log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
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
    lines: u32,
    max_lines: u32,
}

/// Longest log line kept; longer ones are cut so a plugin cannot flood memory.
const MAX_LINE_BYTES: usize = 16 * 1024;

impl LogCapability {
    /// Logging into `sink`, keeping at most `max_lines` lines.
    pub fn new(sink: LogSink, max_lines: u32) -> Self {
        LogCapability {
            sink,
            lines: 0,
            max_lines,
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
            if self.lines == self.max_lines + 1 {
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
