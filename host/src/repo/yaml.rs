//! Deserializes one YAML file and turns serde's errors into diagnostics that name the line and
//! field and say what to do.

use std::path::Path;

use std::fmt;
use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{self, DeserializeOwned, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::diagnostic::{Diagnostic, closest, did_you_mean};
use super::lines::{LineIndex, join_key};
use super::source::strip_bom;
use crate::excerpt::excerpt;

/// Deserializes `text`, the contents of `file` (relative to the repo root). `lines` must be
/// [`LineIndex::parse`] of the same text: text it refused (too deep, duplicate keys) is refused
/// here before any deserializer sees it.
pub fn parse_yaml<T: DeserializeOwned>(
    text: &str,
    file: &Path,
    lines: &LineIndex,
) -> Result<T, Diagnostic> {
    if let Some(refusal) = lines.refusal() {
        return Err(Diagnostic {
            line: Some(refusal.line),
            column: Some(refusal.column),
            ..Diagnostic::file(file, refusal.message.clone())
        });
    }
    let text = strip_bom(text);
    // A file that deserializes has no syntax error (serde_yaml_ng reports the parser's error
    // even after a typed pass succeeds), so a good file is parsed once. Only a failed one is
    // parsed again for its syntax alone: a syntax error can surface as a misleading type error
    // when the typed pass meets the broken node first, so it is reported before any type error.
    serde_yaml_ng::from_str(text).map_err(|typed| {
        syntax_error(text, file, lines).unwrap_or_else(|| yaml_error(&typed, file, lines))
    })
}

/// The syntax error of `text`, read without any types, if it has one.
fn syntax_error(text: &str, file: &Path, lines: &LineIndex) -> Option<Diagnostic> {
    let err = serde_yaml_ng::from_str::<IgnoredAny>(text).err()?;
    let mut diag = yaml_error(&err, file, lines);
    let line_text = diag
        .line
        .and_then(|l| text.lines().nth(l.saturating_sub(1)));
    if diag.column.is_some() && line_text.is_some_and(|t| t.contains('\t')) {
        // libyaml's wording for tabs ("cannot start any token") does not say what is wrong.
        diag.message = "invalid YAML: this line contains a tab; YAML indentation must use \
                        spaces"
            .to_string();
    } else if diag.column.is_some() && line_text.is_some_and(|t| t.contains("${{")) {
        // Braces in an unquoted template end a flow mapping early; the fix is quoting.
        diag.message = format!(
            "{}; a `${{{{ … }}}}` template inside `{{ … }}` or `[ … ]` must be quoted: \
             '${{{{ … }}}}'",
            diag.message
                .trim_end_matches("; check indentation and quoting here")
        );
    }
    Some(diag)
}

/// Deserializes a field that may be written but left empty (`methods:`) as its default.
pub fn null_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// Deserializes a mapping as `R`, then converts it to `T` with `TryFrom`.
///
/// serde's `try_from` attribute reports conversion errors at the enclosing value; doing the
/// conversion inside the visitor keeps the path and line of the mapping itself.
pub fn deserialize_via<'de, D, R, T>(
    deserializer: D,
    expecting: &'static str,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    R: Deserialize<'de>,
    T: TryFrom<R, Error = String>,
{
    struct Via<R, T>(PhantomData<fn() -> (R, T)>, &'static str);

    impl<'de, R, T> Visitor<'de> for Via<R, T>
    where
        R: Deserialize<'de>,
        T: TryFrom<R, Error = String>,
    {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.1)
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
            let raw = R::deserialize(MapAccessDeserializer::new(map))?;
            T::try_from(raw).map_err(de::Error::custom)
        }
    }

    deserializer.deserialize_map(Via(PhantomData, expecting))
}

/// Converts a serde_yaml_ng error into a diagnostic.
pub fn yaml_error(err: &serde_yaml_ng::Error, file: &Path, lines: &LineIndex) -> Diagnostic {
    let location = err.location();
    let full = err.to_string();
    // serde_yaml_ng appends " at line L column C" itself, and libyaml may follow it with
    // ", while parsing … at line A column B"; the location is kept separately.
    let (text, context) = match &location {
        Some(loc) => {
            let mark = format!(" at line {} column {}", loc.line(), loc.column());
            match full.find(&mark) {
                Some(pos) => (
                    &full[..pos],
                    full[pos + mark.len()..].strip_prefix(", ").unwrap_or(""),
                ),
                None => (full.as_str(), ""),
            }
        }
        None => (full.as_str(), ""),
    };
    let (path, message) = split_path(text);
    let serde_line = location.as_ref().map(|l| l.line());

    let mut diag = Diagnostic {
        file: file.to_path_buf(),
        line: serde_line,
        column: None,
        field: path.map(str::to_string),
        message: message.to_string(),
    };

    if path.is_none() && !is_serde_message(message) {
        // No path and not a data error: libyaml's syntax errors; the column matters there.
        diag.column = location.as_ref().map(|l| l.column());
        let context = match context.split_once(" at line ") {
            Some((what, at)) => {
                let line = at.split_whitespace().next().unwrap_or("?");
                format!(" ({what} that starts at line {line})")
            }
            None if !context.is_empty() => format!(" ({context})"),
            None => String::new(),
        };
        diag.message =
            format!("invalid YAML: {message}{context}; check indentation and quoting here");
        return diag;
    }

    let at = path.unwrap_or("");
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let (name, expected) = split_backticked(rest);
        let shown = excerpt(name);
        let (field, line) = match lines.find_key_under(at, name) {
            Some((p, l)) => (p.to_string(), Some(l)),
            None => (join_key(at, name), serde_line),
        };
        diag.field = Some(field);
        diag.line = line.or(serde_line);
        diag.message = match closest(name, expected.iter().map(String::as_str)) {
            Some(best) => format!("unknown field `{shown}`; did you mean `{best}`?"),
            None if expected.is_empty() => {
                format!("unknown field `{shown}`; this mapping takes no fields, remove it")
            }
            None => format!(
                "unknown field `{shown}`; remove it or use one of: {}",
                expected.join(", ")
            ),
        };
    } else if let Some(rest) = message.strip_prefix("unknown variant `") {
        let (name, expected) = split_backticked(rest);
        let hint = did_you_mean(name, expected.iter().map(String::as_str));
        diag.message = format!(
            "unknown value `{}`{hint} (expected one of: {})",
            excerpt(name),
            expected.join(", ")
        );
    } else if let Some(rest) = message.strip_prefix("missing field `") {
        let (name, _) = split_backticked(rest);
        let field = join_key(at, name);
        diag.line = lines.line_of(&field).or(serde_line);
        diag.field = Some(field);
        // Our own `try_from` checks explain themselves after the name; serde's do not.
        let explained = rest.split_once('`').map(|(_, t)| t).unwrap_or("");
        diag.message = if explained.starts_with(';') {
            format!("missing required field `{name}`{explained}")
        } else {
            format!("missing required field `{name}`; add `{name}: …` here")
        };
    } else if let Some(rest) = message.strip_prefix("duplicate field `") {
        let (name, _) = split_backticked(rest);
        diag.field = Some(join_key(at, name));
        diag.message = format!("field `{name}` is given twice; keep only one");
    } else if message.starts_with("duplicate entry with key") {
        diag.message = format!("{message}; keys must be unique, keep only one");
    } else if message.starts_with("invalid type: ") || message.starts_with("invalid value: ") {
        diag.message = rewrite_invalid(message);
    } else if let Some(rest) = message.strip_prefix('`') {
        // Our own checks name the offending key first; point at that key's line.
        let (name, _) = split_backticked(rest);
        if let Some((field, line)) = lines.find_key_under(at, name) {
            diag.field = Some(field.to_string());
            diag.line = Some(line);
        }
    } else if message == "EOF while parsing a value" {
        diag.message = "the file is empty; see the documentation for its fields".to_string();
    }
    diag
}

/// Splits serde_yaml_ng's `path: message` form. Paths never contain spaces; serde's own
/// message prefixes (`invalid type: …`) always do.
fn split_path(text: &str) -> (Option<&str>, &str) {
    if let Some((head, tail)) = text.split_once(": ")
        && !head.is_empty()
        && !head.contains(char::is_whitespace)
    {
        // A path of "." means the document root.
        let head = if head == "." { "" } else { head };
        return (Some(head), tail);
    }
    (None, text)
}

fn is_serde_message(message: &str) -> bool {
    const PREFIXES: [&str; 9] = [
        "unknown field",
        "unknown variant",
        "missing field",
        "duplicate field",
        "invalid type",
        "invalid value",
        "invalid length",
        "EOF while parsing",
        "duplicate entry",
    ];
    PREFIXES.iter().any(|p| message.starts_with(p))
}

/// From "x`, expected one of `a`, `b`" returns ("x", ["a", "b"]).
fn split_backticked(rest: &str) -> (&str, Vec<String>) {
    let (name, tail) = rest.split_once('`').unwrap_or((rest, ""));
    let expected = tail
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    (name, expected)
}

/// "invalid type: string \"x\", expected u64" → "expected a non-negative integer, found string \"x\"".
fn rewrite_invalid(message: &str) -> String {
    let body = message
        .strip_prefix("invalid type: ")
        .or_else(|| message.strip_prefix("invalid value: "))
        .unwrap_or(message);
    let Some((found, expected)) = body.rsplit_once(", expected ") else {
        return message.to_string();
    };
    let expected = match expected {
        "u8" | "u16" | "u32" | "u64" | "usize" => "a non-negative integer",
        "i8" | "i16" | "i32" | "i64" | "isize" => "an integer",
        "f32" | "f64" => "a number",
        "a boolean" | "bool" => "true or false",
        "a string" => "a string (quote it if it looks like a number or boolean)",
        "a sequence" => "a list (`- item` lines or `[a, b]`)",
        "a map" | "struct" => "a mapping (`key: value` lines)",
        other if other.starts_with("struct ") => "a mapping (`key: value` lines)",
        other if other.starts_with("internally tagged enum") => {
            "a mapping with a `type` field (`{ type: … }`)"
        }
        other => other,
    };
    let found = if found == "unit value" {
        "nothing (the value is empty)".into()
    } else {
        excerpt(found)
    };
    format!("expected {expected}, found {found}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    #[allow(dead_code)]
    struct Doc {
        name: String,
        #[serde(default)]
        lock_wait_seconds: u64,
        #[serde(default)]
        items: Vec<Item>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Item {
        weight: i64,
    }

    fn parse(text: &str) -> Diagnostic {
        let lines = LineIndex::parse(text);
        parse_yaml::<Doc>(text, Path::new("x.yaml"), &lines).unwrap_err()
    }

    #[test]
    fn unknown_field_suggests_the_closest_and_points_at_its_line() {
        let d = parse("name: a\nitems:\n  - weight: 1\n    wieght: 2\n");
        assert_eq!(
            d.to_string(),
            "x.yaml:4: items[0].wieght: unknown field `wieght`; did you mean `weight`?"
        );
    }

    #[test]
    fn unknown_field_without_close_match_lists_the_fields() {
        let d = parse("name: a\nzzzzzz: 1\n");
        assert_eq!(d.line, Some(2));
        assert_eq!(d.field.as_deref(), Some("zzzzzz"));
        assert!(
            d.message.contains("one of: name, lockWaitSeconds, items"),
            "{d}"
        );
    }

    #[test]
    fn syntax_error_has_line_and_column() {
        let d = parse("name: a\n  bad: indent\n");
        assert_eq!((d.line, d.column), (Some(2), Some(6)));
        assert!(d.message.starts_with("invalid YAML: "), "{d}");
    }

    #[test]
    fn unquoted_template_in_flow_mapping_says_to_quote_it() {
        let d = parse("name: a\nitems: [{ weight: ${{ x }} }]\n");
        assert_eq!(d.line, Some(2));
        assert!(
            d.message.ends_with(
                "a `${{ … }}` template inside `{ … }` or `[ … ]` must be quoted: '${{ … }}'"
            ),
            "{d}"
        );
    }

    #[test]
    fn tab_indentation_is_named() {
        let d = parse("name: a\nitems:\n\t- weight: 1\n");
        assert_eq!(
            d.to_string(),
            "x.yaml:3:1: invalid YAML: this line contains a tab; YAML indentation must use spaces"
        );
    }

    #[test]
    fn a_syntax_error_is_reported_before_a_type_error_met_earlier() {
        // The typed pass meets the wrong type on line 2 before the broken line 3.
        let d = parse("name: a\nlockWaitSeconds: soon\nitems: [\n");
        assert!(d.message.starts_with("invalid YAML: "), "{d}");
        assert_ne!(d.line, Some(2), "{d}");
    }

    #[test]
    fn wrong_type_says_what_was_expected() {
        let d = parse("name: a\nlockWaitSeconds: soon\n");
        assert_eq!(
            d.to_string(),
            "x.yaml:2: lockWaitSeconds: expected a non-negative integer, found string \"soon\""
        );
    }

    #[test]
    fn missing_field_says_to_add_it() {
        let d = parse("items: []\n");
        assert_eq!(d.field.as_deref(), Some("name"));
        assert!(d.message.contains("add `name: …`"), "{d}");
    }

    #[test]
    fn path_splitting_ignores_serde_prefixes() {
        assert_eq!(split_path("a.b[0]: msg: x"), (Some("a.b[0]"), "msg: x"));
        assert_eq!(split_path("invalid type: map"), (None, "invalid type: map"));
        assert_eq!(split_path(".: x"), (Some(""), "x"));
    }
}
