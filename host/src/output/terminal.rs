//! Text from plugins and stored data made inert before it reaches a terminal.
//!
//! A plugin's log line or error message could carry terminal controls: OSC 52 writes the
//! clipboard, CSI sequences erase lines and move the cursor, a carriage return or a newline
//! starts what looks like orch's own `✓ succeeded` line, and bidirectional overrides reorder
//! what is shown. Every such character is shown as an escape (`\x1b`, `\r`, `\n`,
//! `\u{202e}`) instead. Tabs are harmless and kept.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Whether `c` must not reach a terminal raw. Newlines are decided by the caller.
fn is_unsafe(c: char) -> bool {
    (c.is_control() && c != '\t' && c != '\n')
        || matches!(c,
            // Bidirectional marks, embeddings, overrides and isolates.
            '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
            // Line and paragraph separators, which some terminals break lines at.
            | '\u{2028}' | '\u{2029}')
}

fn escape(text: &str, keep_newlines: bool) -> Cow<'_, str> {
    let must = |c: char| is_unsafe(c) || (c == '\n' && !keep_newlines);
    if !text.chars().any(must) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if !must(c) {
            out.push(c);
            continue;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x80 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
        }
    }
    Cow::Owned(out)
}

/// One line for a terminal: every control character, newlines included, shown escaped.
/// For text a plugin wrote that is embedded in a message of orch's own.
pub fn escape_line(text: &str) -> Cow<'_, str> {
    escape(text, false)
}

/// Text for a terminal that keeps its line breaks: every other control character escaped.
/// For orch's own multi-line messages, in which plugin text has already been made one line.
pub fn escape_text(text: &str) -> Cow<'_, str> {
    escape(text, true)
}

/// Serialized JSON for a terminal: the characters serde leaves raw (DEL, C1 controls such as
/// the one-byte CSI `\u{9b}`, bidirectional overrides) written as `\uXXXX`. The JSON stays
/// valid and means the same: such characters can only occur inside strings.
pub fn escape_json(json: &str) -> Cow<'_, str> {
    if !json.chars().any(is_unsafe) {
        return Cow::Borrowed(json);
    }
    let mut out = String::with_capacity(json.len() + 8);
    for c in json.chars() {
        if is_unsafe(c) {
            // All of them are in the Basic Multilingual Plane: one `\uXXXX` each.
            let _ = write!(out, "\\u{:04x}", c as u32);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn osc_52_clipboard_writes_are_shown_not_run() {
        let hostile = "copied\x1b]52;c;cm0gLXJmIH4K\x07 done";
        let shown = escape_line(hostile);
        assert_eq!(shown, "copied\\x1b]52;c;cm0gLXJmIH4K\\x07 done");
        assert!(!shown.contains('\x1b') && !shown.contains('\x07'));
    }

    #[test]
    fn line_erasing_and_a_fake_success_line_stay_on_the_plugin_s_line() {
        let hostile =
            "working\x1b[2K\r  ✓ deploy                          succeeded  1ms\n  ✓ all done";
        let shown = escape_line(hostile);
        assert_eq!(
            shown,
            "working\\x1b[2K\\r  ✓ deploy                          succeeded  1ms\\n  ✓ all done"
        );
        assert!(!shown.contains(['\x1b', '\r', '\n']));
        // Multi-line text keeps its line breaks but loses the controls.
        let kept = escape_text("a\x1b[1A\nb\tc");
        assert_eq!(kept, "a\\x1b[1A\nb\tc");
    }

    #[test]
    fn c1_controls_and_bidi_overrides_are_escaped() {
        assert_eq!(escape_line("a\u{9b}2Jb"), "a\\u{9b}2Jb");
        assert_eq!(escape_line("x\u{202e}gnp.exe"), "x\\u{202e}gnp.exe");
        assert_eq!(escape_line("del\x7f"), "del\\x7f");
        assert!(matches!(escape_line("plain ünïcode ✓"), Cow::Borrowed(_)));
    }

    #[test]
    fn escaped_json_stays_valid_and_equal() {
        let value = serde_json::json!({"m": "a\u{9b}2J\u{202e}b\x1b[0m\x7f"});
        let text = serde_json::to_string(&value).unwrap();
        let shown = escape_json(&text);
        assert!(
            !shown.contains(['\u{9b}', '\u{202e}', '\x1b', '\x7f']),
            "{shown}"
        );
        let back: serde_json::Value = serde_json::from_str(&shown).unwrap();
        assert_eq!(back, value);
    }
}
