//! Cutting user values short before a message quotes them: a 5 MB value in an error must not
//! become a 5 MB error (or ten of them).
//!
//! Every message that quotes a value the user (or a plugin) supplied goes through [`excerpt`]
//! or [`json_excerpt`]; whole messages that may have picked up long text elsewhere go through
//! [`clip_message`].

use std::borrow::Cow;
use std::io::{self, Write};

use serde::Serialize;

/// Longest quoted value shown whole, in characters.
pub const MAX_SHOWN: usize = 120;
/// Longest message shown whole, in characters; longer ones keep both ends.
pub const MAX_MESSAGE: usize = 2000;

/// `text` when it is short; otherwise its first [`MAX_SHOWN`] characters and `… (N bytes)`.
pub fn excerpt(text: &str) -> Cow<'_, str> {
    excerpt_to(text, MAX_SHOWN)
}

/// Like [`excerpt`] with a chosen limit in characters.
pub fn excerpt_to(text: &str, max_chars: usize) -> Cow<'_, str> {
    match text.char_indices().nth(max_chars) {
        None => Cow::Borrowed(text),
        Some((cut, _)) => Cow::Owned(format!("{}… ({} bytes)", &text[..cut], text.len())),
    }
}

/// A value as compact JSON, cut like [`excerpt`]. Only the shown part is kept in memory while
/// serializing, so quoting a 50 MB value costs no 50 MB string.
pub fn json_excerpt<T: Serialize + ?Sized>(value: &T) -> String {
    let limit = MAX_SHOWN * 4; // bytes: enough for MAX_SHOWN characters of any width
    let mut head = Head {
        kept: Vec::new(),
        limit,
        total: 0,
    };
    if serde_json::to_writer(&mut head, value).is_err() {
        return "(a value that cannot be shown as JSON)".to_string();
    }
    // The byte limit may have split a character; keep only whole ones.
    let valid = match std::str::from_utf8(&head.kept) {
        Ok(_) => head.kept.len(),
        Err(e) => e.valid_up_to(),
    };
    let text = String::from_utf8_lossy(&head.kept[..valid]);
    match text.char_indices().nth(MAX_SHOWN) {
        None if head.total <= head.kept.len() => text.into_owned(),
        None => format!("{text}… ({} bytes)", head.total),
        Some((cut, _)) => format!("{}… ({} bytes)", &text[..cut], head.total),
    }
}

/// `message` when it is at most [`MAX_MESSAGE`] characters; otherwise its beginning and end
/// with `… (N bytes cut) …` between, so what went wrong and what to do both stay visible.
pub fn clip_message(message: &str) -> Cow<'_, str> {
    let chars = message.chars().count();
    if chars <= MAX_MESSAGE {
        return Cow::Borrowed(message);
    }
    let tail_chars = MAX_MESSAGE / 4;
    let head_end = message
        .char_indices()
        .nth(MAX_MESSAGE - tail_chars)
        .map_or(message.len(), |(i, _)| i);
    let tail_start = message
        .char_indices()
        .nth(chars - tail_chars)
        .map_or(message.len(), |(i, _)| i);
    Cow::Owned(format!(
        "{} … ({} bytes cut) … {}",
        &message[..head_end],
        tail_start - head_end,
        &message[tail_start..]
    ))
}

/// A writer that keeps the first `limit` bytes and counts the rest.
struct Head {
    kept: Vec<u8>,
    limit: usize,
    total: usize,
}

impl Write for Head {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = self.limit.saturating_sub(self.kept.len());
        self.kept.extend_from_slice(&buf[..buf.len().min(room)]);
        self.total += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn short_text_is_shown_whole() {
        assert_eq!(excerpt("hello"), "hello");
        assert!(matches!(excerpt("hello"), Cow::Borrowed(_)));
    }

    #[test]
    fn long_text_is_cut_and_says_its_size() {
        let long = "x".repeat(5_000_000);
        let shown = excerpt(&long);
        assert_eq!(shown, format!("{}… (5000000 bytes)", "x".repeat(MAX_SHOWN)));
    }

    #[test]
    fn cuts_fall_on_character_boundaries() {
        let long = "é".repeat(500);
        let shown = excerpt_to(&long, 3);
        assert_eq!(shown, "ééé… (1000 bytes)");
    }

    #[test]
    fn json_values_are_cut_without_serializing_them_whole() {
        assert_eq!(json_excerpt(&json!({"a": 1})), r#"{"a":1}"#);
        let big = json!({ "blob": "y".repeat(1_000_000) });
        let shown = json_excerpt(&big);
        assert!(shown.starts_with(r#"{"blob":"yyy"#), "{shown}");
        assert!(shown.ends_with("… (1000011 bytes)"), "{shown}");
        assert!(shown.len() < 200, "{}", shown.len());
    }

    #[test]
    fn json_exactly_at_the_byte_limit_is_not_marked_cut() {
        let exact = json!("z".repeat(MAX_SHOWN - 2));
        assert_eq!(json_excerpt(&exact), exact.to_string());
    }

    #[test]
    fn long_messages_keep_both_ends() {
        let message = format!("start {} end: do this", "m".repeat(10_000));
        let clipped = clip_message(&message);
        assert!(clipped.starts_with("start mmm"), "{clipped}");
        assert!(clipped.ends_with("end: do this"), "{clipped}");
        assert!(clipped.contains("bytes cut"), "{clipped}");
        assert!(clipped.chars().count() < MAX_MESSAGE + 50);
        assert_eq!(clip_message("short"), "short");
    }
}
