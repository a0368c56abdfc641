//! The run's redaction set: the secrets a run has seen, kept out of everything it shows.
//!
//! Only real secrets enter it: values from `vault.get`, and SSH credentials a granted server
//! accepted. Shown text (logs, errors, outputs, run records) has them replaced by `***`.
//! Stored data is never rewritten: the method runner refuses a write that holds one
//! ([`Redactor::find_in_json`]), so a resource is either stored as the plugin wrote it or not
//! at all.
//!
//! A secret of at least [`MIN_SUBSTRING_CHARS`] characters is found anywhere. A shorter one
//! (a PIN, a short password) would also be found inside ordinary data by chance (`143` in
//! `10.0.0.143`), so it is found only as a whole word: not preceded or followed by a letter or
//! digit. It still never shows where it stands alone (`password=abc`, `"abc"`).

use std::sync::{Arc, PoisonError, RwLock};

use serde_json::Value;

/// What a secret is replaced with.
pub const REDACTED: &str = "***";

/// Secrets at least this long are found anywhere in a text; shorter ones only as whole words.
/// Six characters: below that, accidental matches in IP addresses, ids, versions and dates are
/// common (`0.143`, `2026`), and each would refuse an ordinary write or hide a log word.
pub const MIN_SUBSTRING_CHARS: usize = 6;

/// Where a secret came from, as error messages name it (never the secret itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretSource {
    /// A `vault.get(...)` value.
    Vault,
    /// A password, key or passphrase a granted SSH server accepted in this run.
    SshCredential,
}

impl std::fmt::Display for SecretSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SecretSource::Vault => "a value from the vault",
            SecretSource::SshCredential => "an SSH credential used in this run",
        })
    }
}

/// Where a secret was found in a JSON value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretFound {
    /// The path to it, e.g. `.auth.token` or `[2]["x y"]` (keys holding a secret are redacted).
    pub path: String,
    /// What kind of secret it is.
    pub source: SecretSource,
}

#[derive(Debug, Clone)]
struct Secret {
    text: String,
    whole_word: bool,
    source: SecretSource,
}

/// Replaces secret values with `***` in text and JSON, and finds them in data to be stored.
///
/// Clones share one set, so a secret added anywhere is redacted everywhere.
#[derive(Clone, Default)]
pub struct Redactor {
    // Longest first, so a secret that contains another is replaced whole.
    secrets: Arc<RwLock<Vec<Secret>>>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor")
            .field("secrets", &self.read().len())
            .finish()
    }
}

impl Redactor {
    /// Adds a value from the vault; empty strings are ignored.
    pub fn add(&self, secret: &str) {
        self.add_from(secret, SecretSource::Vault);
    }

    /// Adds a secret of the given kind; empty strings are ignored.
    pub fn add_from(&self, secret: &str, source: SecretSource) {
        if secret.is_empty() {
            return;
        }
        let whole_word = secret.chars().count() < MIN_SUBSTRING_CHARS;
        // The JSON-escaped form too, so a secret with quotes, backslashes or newlines is also
        // caught in already-serialized JSON text.
        let escaped = serde_json::to_string(secret)
            .ok()
            .and_then(|quoted| Some(quoted.get(1..quoted.len().checked_sub(1)?)?.to_string()));
        let mut secrets = self.secrets.write().unwrap_or_else(PoisonError::into_inner);
        for text in std::iter::once(secret.to_string()).chain(escaped.filter(|e| e != secret)) {
            if !secrets.iter().any(|s| s.text == text) {
                secrets.push(Secret {
                    text,
                    whole_word,
                    source,
                });
            }
        }
        secrets.sort_by(|a, b| {
            b.text
                .len()
                .cmp(&a.text.len())
                .then_with(|| a.text.cmp(&b.text))
        });
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

    /// The kind of the first secret in `text`, if it holds one.
    pub fn find(&self, text: &str) -> Option<SecretSource> {
        let secrets = self.read();
        first_match(&secrets, text).map(|(_, _, s)| s.source)
    }

    /// Where `v` holds a secret (in a string, a number's digits or a key), if it does.
    pub fn find_in_json(&self, v: &Value) -> Option<SecretFound> {
        let secrets = self.read();
        if secrets.is_empty() {
            return None;
        }
        let mut path = String::new();
        find_in_value(&secrets, v, &mut path).map(|source| SecretFound { path, source })
    }

    /// Whether no secret has been added yet.
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<Secret>> {
        self.secrets.read().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Whether the secret at `text[start..end]` counts: always for a long secret, and for a short
/// one only when no letter or digit touches it.
fn stands_alone(secret: &Secret, text: &str, start: usize, end: usize) -> bool {
    if !secret.whole_word {
        return true;
    }
    let before = text[..start].chars().next_back();
    let after = text[end..].chars().next();
    !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
}

/// Every secret occurrence in `text`, left to right and not overlapping, the longest secret
/// first at each position: `(start, end, secret)`.
fn matches<'a>(secrets: &'a [Secret], text: &str) -> Vec<(usize, usize, &'a Secret)> {
    let present: Vec<&Secret> = secrets
        .iter()
        .filter(|s| text.contains(s.text.as_str()))
        .collect();
    let mut found = Vec::new();
    if present.is_empty() {
        return found;
    }
    let mut i = 0;
    'scan: while i < text.len() {
        for secret in &present {
            let end = i + secret.text.len();
            if text[i..].starts_with(secret.text.as_str()) && stands_alone(secret, text, i, end) {
                found.push((i, end, *secret));
                i = end;
                continue 'scan;
            }
        }
        i += text[i..].chars().next().map_or(1, char::len_utf8);
    }
    found
}

fn first_match<'a>(secrets: &'a [Secret], text: &str) -> Option<(usize, usize, &'a Secret)> {
    matches(secrets, text).into_iter().next()
}

/// The redacted text, or `None` when `text` contains no secret (the common case, kept allocation-free).
fn redact_with(secrets: &[Secret], text: &str) -> Option<String> {
    let found = matches(secrets, text);
    if found.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (start, end, _) in found {
        out.push_str(&text[last..start]);
        out.push_str(REDACTED);
        last = end;
    }
    out.push_str(&text[last..]);
    Some(out)
}

fn redact_value(secrets: &[Secret], v: &mut Value) {
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
            let keys_need_it = map.keys().any(|k| first_match(secrets, k).is_some());
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

/// A key as a path segment: `.name` when it reads as one, else `["…"]`; secrets in it redacted.
fn push_key(secrets: &[Secret], path: &mut String, key: &str) {
    let key = redact_with(secrets, key).unwrap_or_else(|| key.to_string());
    let plain = key
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if plain {
        path.push('.');
        path.push_str(&key);
    } else {
        path.push('[');
        path.push_str(&serde_json::to_string(&key).unwrap_or_default());
        path.push(']');
    }
}

fn find_in_value(secrets: &[Secret], v: &Value, path: &mut String) -> Option<SecretSource> {
    match v {
        Value::String(s) => first_match(secrets, s).map(|(_, _, s)| s.source),
        // A PIN stored as a number is still the PIN.
        Value::Number(n) => first_match(secrets, &n.to_string()).map(|(_, _, s)| s.source),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                if let Some(found) = find_in_value(secrets, item, path) {
                    return Some(found);
                }
                path.truncate(len);
            }
            None
        }
        Value::Object(map) => {
            for (key, value) in map {
                let len = path.len();
                push_key(secrets, path, key);
                if let Some((_, _, s)) = first_match(secrets, key) {
                    return Some(s.source);
                }
                if let Some(found) = find_in_value(secrets, value, path) {
                    return Some(found);
                }
                path.truncate(len);
            }
            None
        }
        Value::Null | Value::Bool(_) => None,
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
        redactor.add("passwd");
        redactor.add("passwd123");
        assert_eq!(redactor.redact("x=passwd123 y=passwd"), "x=*** y=***");
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
        assert_eq!(redactor.redact("ünïgeheimé"), "ünï***é");
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

    #[test]
    fn a_short_secret_is_found_only_as_a_whole_word() {
        let redactor = Redactor::default();
        redactor.add("143");
        assert_eq!(redactor.redact("10.0.0.143"), "10.0.0.***");
        assert_eq!(redactor.redact("pin=143; again 143"), "pin=***; again ***");
        assert_eq!(redactor.redact("id 91432 and a143b"), "id 91432 and a143b");
        assert!(redactor.find("port 14300").is_none());
        assert_eq!(redactor.find("pin: 143"), Some(SecretSource::Vault));
        let mut v = json!({"pin": 143, "id": 1143, "text": "x-143"});
        assert_eq!(
            redactor.find_in_json(&v).map(|f| f.path),
            Some(".pin".to_string())
        );
        redactor.redact_json(&mut v);
        assert_eq!(v["text"], "x-***");
    }

    #[test]
    fn a_long_secret_is_found_anywhere() {
        let redactor = Redactor::default();
        redactor.add("s3cr3t-value");
        assert_eq!(redactor.redact("xs3cr3t-valuey"), "x***y");
        redactor.add("10.0.0");
        assert_eq!(redactor.redact("10.0.0.143"), "***.143");
    }

    #[test]
    fn the_path_to_a_secret_names_the_field_and_never_the_secret() {
        let redactor = Redactor::default();
        redactor.add_from("tok-123456", SecretSource::SshCredential);
        let v = json!({
            "a": "fine",
            "list": [1, {"deep": "Bearer tok-123456"}],
        });
        let found = redactor.find_in_json(&v).unwrap();
        assert_eq!(found.path, ".list[1].deep");
        assert_eq!(found.source, SecretSource::SshCredential);
        let v = json!({"ok": {"x tok-123456 y": 1}});
        let found = redactor.find_in_json(&v).unwrap();
        assert_eq!(found.path, r#".ok["x *** y"]"#);
        assert!(
            redactor
                .find_in_json(&json!({"a": ["b", 2, null]}))
                .is_none()
        );
        assert!(
            Redactor::default()
                .find_in_json(&json!("tok-123456"))
                .is_none()
        );
    }
}
