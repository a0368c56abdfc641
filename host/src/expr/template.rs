//! Finding `${{ }}` templates in strings and JSON trees.

use serde_json::Value;

const OPEN: &str = "${{";

/// One piece of a template string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Segment<'s> {
    /// Literal text, copied as is.
    Text(&'s str),
    /// The CEL expression between `${{` and `}}`, trimmed.
    Expr(&'s str),
}

/// A template string that cannot be split into segments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct TemplateError {
    /// The offending template exactly as written, from its `${{` (to its `}}` if it has one).
    pub text: String,
    /// What is wrong.
    pub message: String,
}

/// True when `s` contains at least one `${{`.
pub fn contains_template(s: &str) -> bool {
    s.contains(OPEN)
}

/// Splits `s` into text and expression segments.
pub(super) fn parse(s: &str) -> Result<Vec<Segment<'_>>, TemplateError> {
    let mut segments = Vec::new();
    let mut rest = s;
    while let Some(start) = rest.find(OPEN) {
        if start > 0 {
            segments.push(Segment::Text(&rest[..start]));
        }
        let body = &rest[start + OPEN.len()..];
        let Some(end) = find_close(body) else {
            return Err(TemplateError {
                text: rest[start..].trim_end().to_string(),
                message: "unterminated `${{`: no matching `}}`; close it with `}}`".to_string(),
            });
        };
        let written = &rest[start..start + OPEN.len() + end + 2];
        let expr = body[..end].trim();
        if expr.is_empty() {
            return Err(TemplateError {
                text: written.to_string(),
                message: "empty expression in `${{ }}`; write an expression or remove it"
                    .to_string(),
            });
        }
        if opens_template(expr) {
            return Err(TemplateError {
                text: written.to_string(),
                message: "a template cannot contain another `${{`; write the inner expression \
                          directly, e.g. `${{ env.X }}` instead of `${{ ${{ env.X }} }}`"
                    .to_string(),
            });
        }
        segments.push(Segment::Expr(expr));
        rest = &body[end + 2..];
    }
    if !rest.is_empty() {
        segments.push(Segment::Text(rest));
    }
    Ok(segments)
}

/// True when `expr` has a `${{` outside its string literals.
fn opens_template(expr: &str) -> bool {
    let bytes = expr.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            quote @ (b'"' | b'\'') => match skip_string(bytes, i, quote, is_raw(bytes, i)) {
                Some(next) => i = next,
                None => return false,
            },
            b'$' if bytes[i..].starts_with(OPEN.as_bytes()) => return true,
            _ => i += 1,
        }
    }
    false
}

/// True when the quote at `i` opens a raw string (`r'…'`), i.e. follows a lone `r`.
pub(super) fn is_raw(bytes: &[u8], i: usize) -> bool {
    i > 0
        && matches!(bytes[i - 1], b'r' | b'R')
        && !(i > 1 && (bytes[i - 2].is_ascii_alphanumeric() || bytes[i - 2] == b'_'))
}

/// The expression when `s` is exactly one template, surrounding whitespace allowed.
pub(super) fn whole_expr<'s>(segments: &[Segment<'s>]) -> Option<&'s str> {
    let mut found = None;
    for segment in segments {
        match *segment {
            Segment::Text(t) if t.trim().is_empty() => {}
            Segment::Text(_) => return None,
            Segment::Expr(e) if found.is_none() => found = Some(e),
            Segment::Expr(_) => return None,
        }
    }
    found
}

/// Offset of the `}}` closing a template body, skipping braces and `}}` inside CEL
/// string literals and map literals such as `{'a': {'b': 1}}`.
fn find_close(body: &str) -> Option<usize> {
    let bytes = body.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            quote @ (b'"' | b'\'') => {
                i = skip_string(bytes, i, quote, is_raw(bytes, i))?;
                continue;
            }
            b'{' => depth += 1,
            b'}' if depth == 0 && bytes.get(i + 1) == Some(&b'}') => return Some(i),
            b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    None
}

/// Index just past the string literal opening at `start`, or None when it never closes.
pub(super) fn skip_string(bytes: &[u8], start: usize, quote: u8, raw: bool) -> Option<usize> {
    let triple = bytes.get(start + 1) == Some(&quote) && bytes.get(start + 2) == Some(&quote);
    let mut i = start + if triple { 3 } else { 1 };
    if !triple && bytes.get(start + 1) == Some(&quote) {
        // An empty string literal, '' or "".
        return Some(start + 2);
    }
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'\\' && !raw {
            i += 2;
            continue;
        }
        if b == quote {
            if !triple {
                return Some(i + 1);
            }
            if bytes.get(i + 1) == Some(&quote) && bytes.get(i + 2) == Some(&quote) {
                return Some(i + 3);
            }
        }
        i += 1;
    }
    None
}

/// Every template expression in a JSON tree, with the dotted field path of the string holding it.
///
/// Map keys are not templated. A string whose templates cannot be parsed (for example an
/// unterminated `${{`) is returned whole, so that passing it to
/// [`Evaluator::check_syntax`](super::Evaluator::check_syntax) reports the problem.
pub fn templates_in(value: &Value, field: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    walk(value, field, &mut |path, s| {
        if !contains_template(s) {
            return;
        }
        match parse(s) {
            Ok(segments) => {
                for segment in segments {
                    if let Segment::Expr(e) = segment {
                        out.push((path.to_string(), e.to_string()));
                    }
                }
            }
            Err(_) => out.push((path.to_string(), s.to_string())),
        }
    });
    out
}

/// Calls `f` with every string in the tree and its field path, in document order, without
/// recursing (the tree comes from user files).
pub(super) fn walk(value: &Value, field: &str, f: &mut dyn FnMut(&str, &str)) {
    let mut stack = vec![(value, field.to_string())];
    while let Some((value, path)) = stack.pop() {
        match value {
            Value::String(s) => f(&path, s),
            Value::Array(items) => stack.extend(
                items
                    .iter()
                    .enumerate()
                    .rev()
                    .map(|(i, item)| (item, index_path(&path, i))),
            ),
            Value::Object(map) => stack.extend(
                map.iter()
                    .rev()
                    .map(|(key, item)| (item, key_path(&path, key))),
            ),
            _ => {}
        }
    }
}

/// `parent.key`, or just `key` at the root.
pub(super) fn key_path(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// `parent[i]`.
pub(super) fn index_path(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn splits_text_and_expressions() {
        let segments = parse("http://${{ a.b }}:${{c}}/x").unwrap();
        assert_eq!(
            segments,
            vec![
                Segment::Text("http://"),
                Segment::Expr("a.b"),
                Segment::Text(":"),
                Segment::Expr("c"),
                Segment::Text("/x"),
            ]
        );
        assert_eq!(whole_expr(&segments), None);
    }

    #[test]
    fn whole_value_allows_surrounding_whitespace() {
        let segments = parse("  ${{ 1 + 2 }}\n").unwrap();
        assert_eq!(whole_expr(&segments), Some("1 + 2"));
    }

    #[test]
    fn braces_and_strings_inside_expression() {
        let segments = parse("${{ {'a': {'b': '}}'}} }}").unwrap();
        assert_eq!(segments, vec![Segment::Expr("{'a': {'b': '}}'}}")]);
        let segments = parse(r#"${{ "x\"}}" + r'\' }}"#).unwrap();
        assert_eq!(segments, vec![Segment::Expr(r#""x\"}}" + r'\'"#)]);
        let segments = parse("${{ '''a}}''' }}").unwrap();
        assert_eq!(segments, vec![Segment::Expr("'''a}}'''")]);
        let segments = parse("${{ '' }}${{\"\"}}").unwrap();
        assert_eq!(segments, vec![Segment::Expr("''"), Segment::Expr("\"\"")]);
    }

    #[test]
    fn unterminated_and_empty() {
        let err = parse("a ${{ model.x").unwrap_err();
        assert_eq!(err.text, "${{ model.x", "quoted as written, not closed");
        assert!(err.message.contains("unterminated"));
        let err = parse("${{ 'abc }}").unwrap_err();
        assert!(err.message.contains("unterminated"));
        let err = parse("x ${{  }} y").unwrap_err();
        assert!(err.message.contains("empty"));
        assert_eq!(err.text, "${{  }}");
    }

    #[test]
    fn a_template_inside_a_template_is_refused_and_quoted_as_written() {
        let err = parse("a ${{ ${{ env.X }} }} b").unwrap_err();
        assert_eq!(err.text, "${{ ${{ env.X }} }}");
        assert!(
            err.message.contains("cannot contain another `${{`"),
            "{}",
            err.message
        );
        let err = parse("${{ ${{ env.X }}").unwrap_err();
        assert_eq!(err.text, "${{ ${{ env.X }}");
        assert!(err.message.contains("unterminated"), "{}", err.message);
        // Inside a string literal it is just text.
        assert_eq!(
            parse("${{ 'a ${{ b' }}").unwrap(),
            vec![Segment::Expr("'a ${{ b'")]
        );
    }

    #[test]
    fn no_template_is_one_text_segment() {
        assert_eq!(
            parse("plain $ {{x}}").unwrap(),
            vec![Segment::Text("plain $ {{x}}")]
        );
        assert!(!contains_template("plain $ {{x}}"));
        assert!(contains_template("a${{"));
    }

    #[test]
    fn templates_in_reports_paths() {
        let value = json!({
            "globalArguments": {"ticket": "${{ model.a.x }}", "n": 1},
            "args": ["x", "${{ inputs.a }}-${{ env.B }}", {"${{ key }}": "v"}],
            "bad": "${{ oops",
        });
        let found = templates_in(&value, "");
        assert_eq!(
            found,
            vec![
                ("globalArguments.ticket".into(), "model.a.x".into()),
                ("args[1]".into(), "inputs.a".into()),
                ("args[1]".into(), "env.B".into()),
                ("bad".into(), "${{ oops".into()),
            ]
        );
        let nested = templates_in(&json!(["${{ 1 }}"]), "list");
        assert_eq!(nested, vec![("list[0]".into(), "1".into())]);
    }
}
