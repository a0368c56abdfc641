//! Output formats and the quoting that keeps Mermaid and dot valid for any name.
//!
//! Model and step names come from file names and YAML, so they may hold `-`, `.`, spaces,
//! quotes or a keyword of the target language. dot quotes such ids; Mermaid cannot quote an
//! id, so such a node gets a generated id and its name as a quoted label.

use std::collections::BTreeSet;

/// How a graph is drawn.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One line per node in order, with what it waits for (`fleet  ← keebDev02`).
    #[default]
    Text,
    /// A Mermaid flowchart (`graph TD`); `B --> A` means A waits for B.
    Mermaid,
    /// A Graphviz `digraph`; `B -> A` means A waits for B.
    Dot,
}

/// `name` padded to `width`, then `  ← deps` when there are any.
pub(super) fn text_line(name: &str, width: usize, deps: &[&str]) -> String {
    if deps.is_empty() {
        return name.to_string();
    }
    let pad = width.saturating_sub(name.chars().count());
    format!("{name}{}  ← {}", " ".repeat(pad), deps.join(", "))
}

/// Letters, digits and `_`, not starting with a digit.
fn is_plain_id(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

const DOT_KEYWORDS: &[&str] = &["node", "edge", "graph", "digraph", "subgraph", "strict"];

/// A dot id: the name itself when it is a plain identifier, else a quoted string.
pub(super) fn dot_id(name: &str) -> String {
    let keyword = DOT_KEYWORDS.iter().any(|k| k.eq_ignore_ascii_case(name));
    if is_plain_id(name) && !keyword {
        name.to_string()
    } else {
        dot_string(name)
    }
}

/// A dot double-quoted string: `"` and `\` escaped, control characters made spaces.
pub(super) fn dot_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Words that end or restyle a Mermaid flowchart when used as a node id.
const MERMAID_KEYWORDS: &[&str] = &[
    "end",
    "graph",
    "flowchart",
    "subgraph",
    "style",
    "class",
    "classDef",
    "click",
    "linkStyle",
    "direction",
    "default",
    "call",
    "href",
    "accTitle",
    "accDescr",
    // Directions, read as such in some positions.
    "TB",
    "TD",
    "BT",
    "RL",
    "LR",
];

/// A Mermaid quoted label: `["…"]` with `"`, `#`, `<` and `>` written as entity codes.
pub(super) fn mermaid_label(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 4);
    out.push_str("[\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("#quot;"),
            '#' => out.push_str("#35;"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out.push_str("\"]");
    out
}

/// Mermaid ids for `names` (in order): a plain name is its own id; any other gets `n<i>`
/// (made unique against every name), and must be declared with [`mermaid_label`].
pub(super) fn mermaid_ids(names: &[&str]) -> Vec<(String, bool)> {
    let mut taken: BTreeSet<String> = names
        .iter()
        .filter(|n| plain_mermaid(n))
        .map(|n| n.to_string())
        .collect();
    names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            if plain_mermaid(name) {
                return (name.to_string(), false);
            }
            let mut id = format!("n{i}");
            while taken.contains(&id) {
                id.push('_');
            }
            taken.insert(id.clone());
            (id, true)
        })
        .collect()
}

fn plain_mermaid(name: &str) -> bool {
    is_plain_id(name)
        && !MERMAID_KEYWORDS
            .iter()
            .any(|k| k.eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_quotes_anything_but_plain_identifiers() {
        assert_eq!(dot_id("keebDev02"), "keebDev02");
        assert_eq!(dot_id("keeb-dev"), "\"keeb-dev\"");
        assert_eq!(dot_id("a.b"), "\"a.b\"");
        assert_eq!(dot_id("two words"), "\"two words\"");
        assert_eq!(dot_id("say \"hi\"\\"), "\"say \\\"hi\\\"\\\\\"");
        assert_eq!(dot_id("Node"), "\"Node\"");
        assert_eq!(dot_id("2fast"), "\"2fast\"");
    }

    #[test]
    fn mermaid_gives_unsafe_names_generated_ids_and_escaped_labels() {
        let ids = mermaid_ids(&["fleet", "keeb-dev", "n1", "end"]);
        assert_eq!(
            ids,
            [
                ("fleet".to_string(), false),
                ("n1_".to_string(), true),
                ("n1".to_string(), false),
                ("n3".to_string(), true),
            ]
        );
        assert_eq!(
            mermaid_label("a \"b\" #c <d>"),
            "[\"a #quot;b#quot; #35;c #lt;d#gt;\"]"
        );
    }

    #[test]
    fn text_line_pads_names_that_wait() {
        assert_eq!(text_line("fleet", 9, &[]), "fleet");
        assert_eq!(text_line("fleet", 9, &["a", "b"]), "fleet      ← a, b");
    }
}
