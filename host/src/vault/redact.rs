use std::sync::{Arc, PoisonError, RwLock};

use serde_json::Value;

/// What a secret is replaced with.
pub const REDACTED: &str = "***";

/// Replaces secret values with `***` in text and JSON.
///
/// Clones share one set, so a secret added anywhere is redacted everywhere.
#[derive(Clone, Default)]
pub struct Redactor {
    // Longest first, so a secret that contains another is replaced whole.
    secrets: Arc<RwLock<Vec<String>>>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor")
            .field("secrets", &self.read().len())
            .finish()
    }
}

impl Redactor {
    /// Adds a secret to the set; empty strings are ignored.
    pub fn add(&self, secret: &str) {
        if secret.is_empty() {
            return;
        }
        // The JSON-escaped form too, so a secret with quotes, backslashes or newlines is also
        // caught in already-serialized JSON text.
        let escaped = serde_json::to_string(secret)
            .ok()
            .and_then(|quoted| Some(quoted.get(1..quoted.len().checked_sub(1)?)?.to_string()));
        let mut secrets = self.secrets.write().unwrap_or_else(PoisonError::into_inner);
        secrets.push(secret.to_string());
        if let Some(escaped) = escaped.filter(|e| e != secret) {
            secrets.push(escaped);
        }
        secrets.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        secrets.dedup();
    }

    /// `text` with every secret replaced by `***`.
    pub fn redact(&self, text: &str) -> String {
        let secrets = self.read();
        redact_with(&secrets, text).unwrap_or_else(|| text.to_string())
    }

    /// Replaces secrets in every string of `v`, map keys included.
    pub fn redact_json(&self, v: &mut Value) {
        let secrets = self.read();
        if !secrets.is_empty() {
            redact_value(&secrets, v);
        }
    }

    /// Whether no secret has been added yet.
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<String>> {
        self.secrets.read().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The redacted text, or `None` when `text` contains no secret (the common case, kept allocation-free).
fn redact_with(secrets: &[String], text: &str) -> Option<String> {
    let present: Vec<&str> = secrets
        .iter()
        .map(String::as_str)
        .filter(|s| text.contains(s))
        .collect();
    if present.is_empty() {
        return None;
    }
    // One left-to-right pass, so a replacement is never matched again by a shorter secret.
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    'scan: while !rest.is_empty() {
        for secret in &present {
            if let Some(after) = rest.strip_prefix(secret) {
                out.push_str(REDACTED);
                rest = after;
                continue 'scan;
            }
        }
        let mut chars = rest.chars();
        if let Some(c) = chars.next() {
            out.push(c);
        }
        rest = chars.as_str();
    }
    Some(out)
}

fn redact_value(secrets: &[String], v: &mut Value) {
    match v {
        Value::String(s) => {
            if let Some(redacted) = redact_with(secrets, s) {
                *s = redacted;
            }
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|item| redact_value(secrets, item)),
        Value::Object(map) => {
            let keys_need_it = map
                .keys()
                .any(|k| secrets.iter().any(|s| k.contains(s.as_str())));
            if keys_need_it {
                // Rebuilt rather than renamed in place, to keep the keys' order.
                let old = std::mem::take(map);
                for (key, mut value) in old {
                    redact_value(secrets, &mut value);
                    let key = redact_with(secrets, &key).unwrap_or(key);
                    map.insert(key, value);
                }
            } else {
                map.values_mut()
                    .for_each(|value| redact_value(secrets, value));
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn secrets_in_text_become_stars() {
        let redactor = Redactor::default();
        assert!(redactor.is_empty());
        assert_eq!(redactor.redact("nothing to hide"), "nothing to hide");
        redactor.add("hunter2");
        assert!(!redactor.is_empty());
        assert_eq!(
            redactor.redact("login with hunter2, again hunter2!"),
            "login with ***, again ***!"
        );
        assert_eq!(redactor.redact("no secret here"), "no secret here");
    }

    #[test]
    fn the_longest_secret_wins() {
        let redactor = Redactor::default();
        redactor.add("pass");
        redactor.add("password123");
        assert_eq!(redactor.redact("x=password123 y=pass"), "x=*** y=***");
    }

    #[test]
    fn a_replacement_is_not_matched_again() {
        let redactor = Redactor::default();
        redactor.add("*");
        redactor.add("abc");
        assert_eq!(redactor.redact("abc"), "***");
    }

    #[test]
    fn empty_secrets_are_ignored() {
        let redactor = Redactor::default();
        redactor.add("");
        assert!(redactor.is_empty());
        assert_eq!(redactor.redact("text"), "text");
    }

    #[test]
    fn multibyte_text_around_secrets_survives() {
        let redactor = Redactor::default();
        redactor.add("geheim");
        assert_eq!(redactor.redact("ünï geheim ✓"), "ünï *** ✓");
    }

    #[test]
    fn clones_share_one_set() {
        let redactor = Redactor::default();
        let clone = redactor.clone();
        clone.add("s3cr3t");
        assert_eq!(redactor.redact("s3cr3t"), "***");
        let shown = format!("{redactor:?}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
    }

    #[test]
    fn nested_json_strings_and_keys_are_redacted_in_order() {
        let redactor = Redactor::default();
        redactor.add("tok-123");
        let mut value = json!({
            "a": "Bearer tok-123",
            "tok-123": {"nested": ["x", "tok-123", 5, true, null]},
            "z": {"deep": {"deeper": "tok-123tok-123"}}
        });
        redactor.redact_json(&mut value);
        assert_eq!(
            value,
            json!({
                "a": "Bearer ***",
                "***": {"nested": ["x", "***", 5, true, null]},
                "z": {"deep": {"deeper": "******"}}
            })
        );
        let keys: Vec<&String> = value
            .as_object()
            .map(|m| m.keys().collect())
            .unwrap_or_default();
        assert_eq!(keys, vec!["a", "***", "z"]);
    }

    #[test]
    fn a_secret_is_caught_in_serialized_json_too() {
        let redactor = Redactor::default();
        redactor.add("pa\"ss\nword");
        let text = serde_json::to_string(&json!({"p": "pa\"ss\nword"})).unwrap_or_default();
        assert_eq!(redactor.redact(&text), r#"{"p":"***"}"#);
    }
}
