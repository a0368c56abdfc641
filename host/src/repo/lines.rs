//! Maps dotted field paths (`jobs[0].steps[1].name`) to the line they are written on.
//!
//! serde forgets where a value came from once it is deserialized, so every file is also parsed
//! with yaml-rust2's marked event parser and the key positions are kept here. Validation that
//! runs long after parsing can still point at the exact line.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// Line numbers (1-based) of every key and sequence item in one YAML file, by dotted path.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LineIndex {
    lines: HashMap<String, usize>,
    /// Paths in document order, so searches return the first match a reader would see.
    order: Vec<String>,
}

impl LineIndex {
    /// Indexes `text`; on a syntax error it keeps whatever was read before the error.
    pub fn parse(text: &str) -> LineIndex {
        let mut builder = Builder::default();
        let mut parser = Parser::new_from_str(text);
        // A syntax error is reported separately by serde with its own position; the partial
        // index is still useful for everything before the error.
        let _ = parser.load(&mut builder, false);
        builder.index
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

#[derive(Debug)]
enum Frame {
    /// `path` is None inside nodes that have no addressable path (complex keys).
    Map {
        path: Option<String>,
        key: Option<Option<String>>,
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
    /// Only the first document is indexed; serde rejects the rest anyway.
    done: bool,
}

impl Builder {
    fn record(&mut self, path: &str, line: usize) {
        if !self.index.lines.contains_key(path) {
            self.index.lines.insert(path.to_string(), line);
            self.index.order.push(path.to_string());
        }
    }

    /// Works out the path of the node that starts now, updating the parent frame.
    /// Returns None for nodes that cannot be addressed, and whether the node is a mapping key.
    fn node_path(&mut self, scalar_key: Option<&str>, line: usize) -> (Option<String>, bool) {
        let Some(top) = self.stack.last_mut() else {
            return (Some(String::new()), false);
        };
        match top {
            Frame::Map { path, key } => match key.take() {
                None => {
                    // This node is a key.
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
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.done {
            return;
        }
        let line = mark.line().max(1);
        match ev {
            Event::Scalar(value, ..) => {
                let (path, _) = self.node_path(Some(&value), line);
                if let Some(path) = path {
                    self.record(&path, line);
                }
            }
            Event::Alias(_) => {
                let (path, _) = self.node_path(None, line);
                if let Some(path) = path {
                    self.record(&path, line);
                }
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                let (path, is_key) = self.node_path(None, line);
                // A collection used as a key makes the following value unaddressable; the
                // parent frame already holds `Some(None)` for it.
                let path = if is_key { None } else { path };
                if let Some(path) = &path {
                    self.record(path, line);
                }
                self.stack.push(if matches!(ev, Event::MappingStart(..)) {
                    Frame::Map { path, key: None }
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
}
