//! Maps dotted field paths (`jobs[0].steps[1].name`) to the line they are written on.
//!
//! serde forgets where a value came from once it is deserialized, so every file is also parsed
//! with yaml-rust2's marked event parser and the key positions are kept here. Validation that
//! runs long after parsing can still point at the exact line.
//!
//! This pass runs before serde sees the text, so it is also where structure a deserializer must
//! never meet is refused: nesting deeper than [`MAX_DEPTH`] and duplicate keys. It reads events
//! one at a time (never yaml-rust2's recursive `load`), so no input can exhaust the stack.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::Marker;

use super::nesting::{MAX_DEPTH, flow_too_deep};
use super::source::strip_bom;

/// Line numbers (1-based) of every key and sequence item in one YAML file, by dotted path.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LineIndex {
    lines: HashMap<String, usize>,
    /// Paths in document order, so searches return the first match a reader would see.
    order: Vec<String>,
    /// Why the text must not be deserialized, when indexing found a reason.
    refusal: Option<Refusal>,
}

/// A structural problem found while indexing: the text is refused before deserializing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong and what to do.
    pub message: String,
}

impl LineIndex {
    /// Indexes `text`; on a syntax error it keeps whatever was read before the error.
    pub fn parse(text: &str) -> LineIndex {
        let text = strip_bom(text);
        let mut builder = Builder::default();
        // libyaml's time grows with flow depth on every token: refuse deep brackets unparsed.
        if let Some((line, column)) = flow_too_deep(text, MAX_DEPTH) {
            builder.index.refusal = Some(too_deep(line, column));
            return builder.index;
        }
        // yaml-rust2 is a dependency's parser; if it ever panics on some input, the file is
        // still deserialized (and its errors reported), only without line numbers.
        let built = std::panic::catch_unwind(move || {
            let mut parser = Parser::new_from_str(text);
            while !builder.done {
                match parser.next_token() {
                    Ok((Event::StreamEnd, _)) => break,
                    Ok((event, mark)) => builder.on_event(event, mark),
                    // A syntax error is reported separately by serde with its own position;
                    // the partial index is still useful for everything before the error.
                    Err(e) => {
                        if e.info().contains("recursion limit") {
                            let mark = e.marker();
                            builder.refuse(too_deep(mark.line(), mark.col() + 1));
                        }
                        break;
                    }
                }
            }
            builder.index
        });
        built.unwrap_or_default()
    }

    /// Why the text must not be deserialized (too deep, duplicate keys), if it must not.
    pub fn refusal(&self) -> Option<&Refusal> {
        self.refusal.as_ref()
    }

    /// The line of exactly this path, if it is written in the file.
    pub fn exact(&self, path: &str) -> Option<usize> {
        self.lines.get(path).copied()
    }

    /// The line of `path`, or of its nearest ancestor present in the file.
    pub fn line_of(&self, path: &str) -> Option<usize> {
        let mut current = path;
        loop {
            if let Some(line) = self.lines.get(current) {
                return Some(*line);
            }
            if current.is_empty() {
                return None;
            }
            current = parent_path(current);
        }
    }

    /// The first path (in document order) at or below `prefix` whose last key is `key`.
    ///
    /// serde reports errors inside internally tagged enums at the enclosing struct, so the
    /// offending key has to be searched for beneath the reported path.
    pub fn find_key_under(&self, prefix: &str, key: &str) -> Option<(&str, usize)> {
        self.order.iter().find_map(|path| {
            let below = prefix.is_empty()
                || path
                    .strip_prefix(prefix)
                    .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['));
            let last = path.rsplit('.').next().unwrap_or(path);
            (below && last == key).then(|| (path.as_str(), self.lines[path]))
        })
    }

    /// True when nothing was indexed (empty file or a syntax error on the first line).
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }
}

/// `parent.key`, or just `key` at the root.
pub fn join_key(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// `parent[index]`.
pub fn join_index(parent: &str, index: usize) -> String {
    format!("{parent}[{index}]")
}

/// The path one level up: `a.b[2]` → `a.b` → `a` → ``.
pub fn parent_path(path: &str) -> &str {
    if let Some(stripped) = path.strip_suffix(']')
        && let Some(open) = stripped.rfind('[')
    {
        return &path[..open];
    }
    match path.rfind('.') {
        Some(dot) => &path[..dot],
        None => "",
    }
}

fn too_deep(line: usize, column: usize) -> Refusal {
    Refusal {
        line: line.max(1),
        column: column.max(1),
        message: format!(
            "mappings and lists nest deeper than {MAX_DEPTH} levels here; flatten the data \
             (orch refuses deeper nesting so that no file can exhaust the parser)"
        ),
    }
}

#[derive(Debug)]
enum Frame {
    /// `path` is None inside nodes that have no addressable path (complex keys).
    Map {
        path: Option<String>,
        key: Option<Option<String>>,
        /// Scalar keys seen so far, with their lines, to refuse duplicates.
        seen: HashMap<String, usize>,
    },
    Seq {
        path: Option<String>,
        next: usize,
    },
}

#[derive(Default)]
struct Builder {
    index: LineIndex,
    stack: Vec<Frame>,
    /// Only the first document is indexed; serde rejects the rest anyway. Also set once the
    /// text is refused: nothing after that point matters.
    done: bool,
}

impl Builder {
    fn record(&mut self, path: &str, line: usize) {
        if !self.index.lines.contains_key(path) {
            self.index.lines.insert(path.to_string(), line);
            self.index.order.push(path.to_string());
        }
    }

    fn refuse(&mut self, refusal: Refusal) {
        self.index.refusal = Some(refusal);
        self.done = true;
    }

    /// Works out the path of the node that starts now, updating the parent frame.
    /// Returns None for nodes that cannot be addressed, and whether the node is a mapping key.
    fn node_path(&mut self, scalar_key: Option<&str>, mark: Marker) -> (Option<String>, bool) {
        let line = mark.line().max(1);
        let Some(top) = self.stack.last_mut() else {
            return (Some(String::new()), false);
        };
        match top {
            Frame::Map { path, key, seen } => match key.take() {
                None => {
                    // This node is a key.
                    if let Some(k) = scalar_key
                        && let Some(first) = seen.insert(k.to_string(), line)
                    {
                        let shown = crate::excerpt::excerpt(k);
                        self.refuse(Refusal {
                            line,
                            column: mark.col() + 1,
                            message: format!(
                                "duplicate key `{shown}` (first at line {first}); keys must be \
                                 unique, keep only one"
                            ),
                        });
                        return (None, true);
                    }
                    let child = match (path.as_deref(), scalar_key) {
                        (Some(p), Some(k)) => Some(join_key(p, k)),
                        _ => None,
                    };
                    *key = Some(child.clone());
                    if let Some(child) = &child {
                        self.record(child, line);
                    }
                    (None, true)
                }
                Some(value_path) => (value_path, false),
            },
            Frame::Seq { path, next } => {
                let child = path.as_deref().map(|p| join_index(p, *next));
                *next += 1;
                if let Some(child) = &child {
                    self.record(child, line);
                }
                (child, false)
            }
        }
    }

    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.done {
            return;
        }
        match ev {
            Event::Scalar(value, ..) => {
                let (path, _) = self.node_path(Some(&value), mark);
                if let Some(path) = path {
                    self.record(&path, mark.line().max(1));
                }
            }
            Event::Alias(_) => {
                let (path, _) = self.node_path(None, mark);
                if let Some(path) = path {
                    self.record(&path, mark.line().max(1));
                }
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                if self.stack.len() >= MAX_DEPTH {
                    self.refuse(too_deep(mark.line(), mark.col() + 1));
                    return;
                }
                let (path, is_key) = self.node_path(None, mark);
                // A collection used as a key makes the following value unaddressable; the
                // parent frame already holds `Some(None)` for it.
                let path = if is_key { None } else { path };
                if let Some(path) = &path {
                    self.record(path, mark.line().max(1));
                }
                self.stack.push(if matches!(ev, Event::MappingStart(..)) {
                    Frame::Map {
                        path,
                        key: None,
                        seen: HashMap::new(),
                    }
                } else {
                    Frame::Seq { path, next: 0 }
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            Event::DocumentEnd => self.done = true,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
name: sync-fleet
jobs:
  - name: sync
    steps:
      - name: auth
        task: { type: model_method, modelIdOrName: keebDev02, methodName: auth }
      - name: sync
        dependsOn:
          - step: auth
globalArguments:
  apiUrl: https://x
methods:
  sync:
    arguments:
      x: 1
";

    #[test]
    fn keys_and_items_map_to_their_lines() {
        let idx = LineIndex::parse(SAMPLE);
        assert_eq!(idx.exact("name"), Some(1));
        assert_eq!(idx.exact("jobs"), Some(2));
        assert_eq!(idx.exact("jobs[0]"), Some(3));
        assert_eq!(idx.exact("jobs[0].name"), Some(3));
        assert_eq!(idx.exact("jobs[0].steps[1].name"), Some(7));
        assert_eq!(idx.exact("jobs[0].steps[0].task.methodName"), Some(6));
        assert_eq!(idx.exact("jobs[0].steps[1].dependsOn[0].step"), Some(9));
        assert_eq!(idx.exact("globalArguments.apiUrl"), Some(11));
        assert_eq!(idx.exact("methods.sync.arguments.x"), Some(15));
    }

    #[test]
    fn missing_path_falls_back_to_nearest_ancestor() {
        let idx = LineIndex::parse(SAMPLE);
        assert_eq!(
            idx.line_of("jobs[0].steps[1].dependsOn[0].condition"),
            Some(9)
        );
        assert_eq!(idx.line_of("jobs[0].steps[1].guard"), Some(7));
        assert_eq!(idx.line_of("nothing.here"), Some(1));
    }

    #[test]
    fn key_is_found_beneath_a_prefix() {
        let idx = LineIndex::parse(SAMPLE);
        assert_eq!(
            idx.find_key_under("jobs[0].steps[0]", "methodName"),
            Some(("jobs[0].steps[0].task.methodName", 6))
        );
        assert_eq!(idx.find_key_under("jobs[0].steps[1]", "methodName"), None);
    }

    #[test]
    fn parent_path_strips_keys_and_indices() {
        assert_eq!(parent_path("a.b[2]"), "a.b");
        assert_eq!(parent_path("a.b"), "a");
        assert_eq!(parent_path("a"), "");
        assert_eq!(parent_path("a[0][1]"), "a[0]");
    }

    #[test]
    fn syntax_error_keeps_the_lines_before_it() {
        let idx = LineIndex::parse("a: 1\nb: [\n");
        assert_eq!(idx.exact("a"), Some(1));
    }

    #[test]
    fn complex_keys_do_not_confuse_the_index() {
        let idx = LineIndex::parse("? [a, b]\n: value\nafter: 1\n");
        assert_eq!(idx.exact("after"), Some(3));
    }

    #[test]
    fn empty_text_gives_empty_index() {
        assert!(LineIndex::parse("").is_empty());
        assert_eq!(LineIndex::parse("").line_of("x"), None);
    }

    #[test]
    fn deep_block_nesting_is_refused_at_its_line_without_recursing() {
        // Thousands of compact block sequences: yaml-rust2's recursive loader overflowed here.
        let text = format!("a: 1\nb:\n  {}x\n", "- ".repeat(5000));
        let idx = LineIndex::parse(&text);
        let refusal = idx.refusal().expect("refused");
        assert_eq!(refusal.line, 3);
        assert!(
            refusal.message.contains("deeper than 64"),
            "{}",
            refusal.message
        );
        assert_eq!(idx.exact("a"), Some(1));
    }

    #[test]
    fn deep_flow_nesting_is_refused_before_parsing() {
        let text = format!("a: 1\nb: {}\n", "[".repeat(100_000));
        let refusal = LineIndex::parse(&text).refusal().cloned().expect("refused");
        assert_eq!((refusal.line, refusal.column), (2, 4 + MAX_DEPTH));
    }

    #[test]
    fn nesting_at_the_limit_is_accepted() {
        let text = format!("{}x{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert_eq!(LineIndex::parse(&text).refusal(), None);
        let text = format!(
            "{}x{}",
            "[".repeat(MAX_DEPTH + 1),
            "]".repeat(MAX_DEPTH + 1)
        );
        assert!(LineIndex::parse(&text).refusal().is_some());
    }

    #[test]
    fn duplicate_keys_are_refused_with_both_lines() {
        let idx = LineIndex::parse("a: 1\nm:\n  k: 1\n  j: 2\n  k: 3\n");
        let refusal = idx.refusal().expect("refused");
        assert_eq!(refusal.line, 5);
        assert_eq!(
            refusal.message,
            "duplicate key `k` (first at line 3); keys must be unique, keep only one"
        );
        // The same key in different mappings is fine.
        assert_eq!(LineIndex::parse("a: {k: 1}\nb: {k: 2}\n").refusal(), None);
    }

    #[test]
    fn byte_order_mark_does_not_shift_or_rename_keys() {
        let idx = LineIndex::parse("\u{feff}name: x\njobs: []\n");
        assert_eq!(idx.exact("name"), Some(1));
        assert_eq!(idx.exact("jobs"), Some(2));
    }
}
