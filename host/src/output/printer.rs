//! The one printer: knows about colour, `--json` and verbosity. Everything it writes passes
//! through [`super::terminal`], so no text from a plugin or from stored data can drive the
//! terminal.

use super::Event;
use super::terminal::{escape_json, escape_line, escape_text};
use serde::Serialize;
use std::io::{IsTerminal, Write};

/// When to colour human output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColorChoice {
    /// Colour when stderr is a terminal and NO_COLOR is unset.
    Auto,
    /// Never colour.
    Never,
}

/// Prints results to stdout and progress and errors to stderr.
#[derive(Debug, Clone)]
pub struct Printer {
    json: bool,
    color: bool,
    verbose: u8,
}

impl Printer {
    /// A printer for `--json` or human output.
    pub fn new(json: bool, color: ColorChoice, verbose: u8) -> Self {
        let color = color == ColorChoice::Auto
            && std::env::var_os("NO_COLOR").is_none()
            && std::io::stderr().is_terminal();
        Printer {
            json,
            color,
            verbose,
        }
    }

    /// True in `--json` mode.
    pub fn is_json(&self) -> bool {
        self.json
    }

    /// How many `-v` were given.
    pub fn verbose(&self) -> u8 {
        self.verbose
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    /// Prints a command's result: `value` as JSON, or the human text.
    pub fn result<T: Serialize>(&self, value: &T, human: impl FnOnce() -> String) {
        super::progress::flush();
        let mut out = std::io::stdout().lock();
        if self.json {
            let text = serde_json::to_string_pretty(value)
                .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
            let _ = writeln!(out, "{}", escape_json(&text));
        } else {
            let text = human();
            if !text.is_empty() {
                let _ = writeln!(out, "{}", escape_text(text.trim_end()));
            }
        }
    }

    /// Prints an error (to stderr; in `--json` mode as a JSON object on stdout too).
    pub fn error(&self, message: &str, code: i32) {
        super::progress::flush();
        if self.json {
            let v = serde_json::json!({ "error": message, "exitCode": code });
            let _ = writeln!(
                std::io::stdout().lock(),
                "{}",
                escape_json(&serde_json::to_string_pretty(&v).unwrap_or_default())
            );
        }
        to_stderr(format!(
            "{} {}",
            self.paint("1;31", "error:"),
            escape_text(message)
        ));
    }

    /// Prints a warning to stderr.
    pub fn warn(&self, message: &str) {
        to_stderr(format!(
            "{} {}",
            self.paint("1;33", "warning:"),
            escape_text(message)
        ));
    }

    /// Prints a progress note to stderr (in `--json` mode too: stdout stays the result).
    pub fn note(&self, message: &str) {
        to_stderr(escape_text(message).into_owned());
    }

    /// Shows one live event (human mode only; `--json` prints the record at the end).
    pub fn event(&self, event: &Event) {
        if self.json && self.verbose == 0 {
            return;
        }
        let line = match event {
            Event::RunStarted {
                kind,
                target,
                run_id,
            } => {
                format!(
                    "{} {kind} {} (run {run_id})",
                    self.paint("1", "▶"),
                    escape_line(target)
                )
            }
            Event::StepStarted {
                step,
                model,
                method,
            } => {
                if self.verbose == 0 {
                    return;
                }
                let what = match (model, method) {
                    (Some(m), Some(me)) => format!(" {m}.{me}"),
                    _ => String::new(),
                };
                format!(
                    "  {} {}",
                    self.paint("2", "…"),
                    escape_line(&format!("{step}{what}"))
                )
            }
            Event::Log {
                step,
                level,
                message,
            } => {
                let min = if self.verbose > 0 { 0 } else { 2 };
                let rank = match level {
                    crate::capabilities::LogLevel::Trace => 0,
                    crate::capabilities::LogLevel::Debug => 1,
                    crate::capabilities::LogLevel::Info => 2,
                    crate::capabilities::LogLevel::Warn => 3,
                    crate::capabilities::LogLevel::Error => 4,
                };
                if rank < min {
                    return;
                }
                // Each line of a multi-line message carries the step's prefix, so a plugin
                // cannot start a line that reads as orch's own.
                let prefix = self.paint("2", &format!("{} │", escape_line(step)));
                message
                    .split('\n')
                    .map(|line| format!("    {prefix} {}", escape_line(line)))
                    .collect::<Vec<_>>()
                    .join("\n")
            }
            Event::ResourceWritten {
                model,
                spec,
                name,
                version,
                ..
            } => {
                if self.verbose == 0 {
                    return;
                }
                format!(
                    "    {} {} v{version}",
                    self.paint("2", "wrote"),
                    escape_line(&format!("{model}/{spec}/{name}"))
                )
            }
            Event::StepFinished {
                step,
                status,
                duration_ms,
                error,
            } => {
                let mark = match status.as_str() {
                    "succeeded" => self.paint("32", "✓"),
                    "skipped" => self.paint("2", "○"),
                    "waiting" => self.paint("33", "…"),
                    _ => self.paint("31", "✗"),
                };
                let step = escape_line(step);
                let mut line = format!("  {mark} {step:<32} {status:<9} {}", fmt_ms(*duration_ms));
                if let Some(e) = error {
                    let e = escape_text(e);
                    line.push_str(&format!("\n      {}", e.replace('\n', "\n      ")));
                }
                line
            }
            Event::RunFinished {
                status,
                duration_ms,
                ..
            } => {
                let s = if status == "succeeded" {
                    self.paint("1;32", status)
                } else if status == "waiting" {
                    self.paint("1;33", status)
                } else {
                    self.paint("1;31", status)
                };
                format!("{s} in {}", fmt_ms(*duration_ms))
            }
        };
        super::progress::line(&line);
    }
}

/// Writes the progress held so far, then `line` and its newline in one write (stderr is
/// unbuffered: `writeln!` would make a write of each piece).
fn to_stderr(line: String) {
    super::progress::flush();
    let _ = write_line(&mut std::io::stderr().lock(), line);
}

fn write_line(out: &mut impl Write, mut line: String) -> std::io::Result<()> {
    line.push('\n');
    out.write_all(line.as_bytes())
}

/// Formats a duration compactly.
pub fn fmt_ms(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms}ms")
    } else {
        format!("{:.1}s", ms as f64 / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::progress::tests::Writes;

    #[test]
    fn a_line_and_its_newline_are_one_write() {
        let mut out = Writes::default();
        write_line(&mut out, "  ✓ main.noop-i1 succeeded 0ms".to_string()).unwrap();
        assert_eq!(out.calls, 1);
        assert_eq!(out.bytes, "  ✓ main.noop-i1 succeeded 0ms\n".as_bytes());
    }
}
