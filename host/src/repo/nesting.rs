//! A linear scan for `[ … ]` / `{ … }` nesting, run before any YAML parser sees the text.
//!
//! libyaml (behind serde_yaml_ng) spends time proportional to the flow depth on every token, so
//! a file of a few MB of `[` keeps it busy for hours, and yaml-rust2 gives up at 256 levels with
//! a message that names no cause. This scan finds the first bracket deeper than the limit
//! without parsing: it knows just enough YAML (quoted scalars, comments, block scalars, where a
//! node may start) never to miss a bracket a parser would open. It may count a bracket a parser
//! would not (inside an unusual plain scalar); that only matters past the limit.

/// Deepest nesting of mappings and sequences accepted in a YAML file. Real files stay far
/// below: a workflow step's inputs sit about eight levels down.
pub const MAX_DEPTH: usize = 64;

/// Where a flow collection first opens deeper than `max`: 1-based line and column (characters).
pub(crate) fn flow_too_deep(text: &str, max: usize) -> Option<(usize, usize)> {
    Scan::new(text).run(max)
}

struct Scan<'t> {
    bytes: &'t [u8],
    pos: usize,
    line: usize,
    /// Byte offset where the current line starts, for columns.
    line_start: usize,
}

fn is_blank(b: Option<u8>) -> bool {
    matches!(b, None | Some(b' ' | b'\t' | b'\r' | b'\n'))
}

impl<'t> Scan<'t> {
    fn new(text: &'t str) -> Self {
        Scan {
            bytes: text.as_bytes(),
            pos: 0,
            line: 1,
            line_start: 0,
        }
    }

    fn peek(&self, ahead: usize) -> Option<u8> {
        self.bytes.get(self.pos + ahead).copied()
    }

    /// 1-based column of `pos` in characters.
    fn column(&self) -> usize {
        let prefix = &self.bytes[self.line_start..self.pos];
        prefix.iter().filter(|&&b| b & 0xc0 != 0x80).count() + 1
    }

    /// Moves one byte forward, keeping the line count.
    fn bump(&mut self) {
        if self.bytes[self.pos] == b'\n' {
            self.line += 1;
            self.line_start = self.pos + 1;
        }
        self.pos += 1;
    }

    fn skip_to_line_end(&mut self) {
        while let Some(b) = self.peek(0) {
            if b == b'\n' {
                return;
            }
            self.pos += 1;
        }
    }

    /// Skips a quoted scalar starting at `pos`; false when it never closes.
    fn skip_quoted(&mut self) -> bool {
        let quote = self.bytes[self.pos];
        self.bump();
        while let Some(b) = self.peek(0) {
            if quote == b'"' && b == b'\\' {
                self.bump();
                if self.peek(0).is_some() {
                    self.bump();
                }
                continue;
            }
            if b == quote {
                if quote == b'\'' && self.peek(1) == Some(b'\'') {
                    self.pos += 2;
                    continue;
                }
                self.pos += 1;
                return true;
            }
            self.bump();
        }
        false
    }

    /// Leading spaces of the line starting at `start`, or None when it is blank.
    fn indent_at(&self, start: usize) -> Option<usize> {
        let rest = &self.bytes[start..];
        let spaces = rest.iter().take_while(|&&b| b == b' ').count();
        match rest.get(spaces) {
            None | Some(b'\n') => None,
            Some(b'\r') if rest.get(spaces + 1) == Some(&b'\n') => None,
            Some(_) => Some(spaces),
        }
    }

    /// Skips the header and content of a block scalar (`|` or `>`) whose parent node starts at
    /// column `parent` (0-based). Content is every following line indented like the first
    /// non-blank one, when that is deeper than the parent; a parser reads those lines as text.
    fn skip_block_scalar(&mut self, parent: usize) {
        self.skip_to_line_end();
        // The first non-blank line fixes the content's indentation.
        let mut probe = self.pos + 1;
        let content_indent = loop {
            if probe > self.bytes.len() {
                return;
            }
            match self.indent_at(probe) {
                Some(indent) => break indent,
                None => match self.bytes[probe..].iter().position(|&b| b == b'\n') {
                    Some(nl) => probe += nl + 1,
                    None => return,
                },
            }
        };
        if content_indent <= parent {
            return;
        }
        while self.peek(0) == Some(b'\n') {
            let next = self.pos + 1;
            if let Some(indent) = self.indent_at(next)
                && indent < content_indent
            {
                return;
            }
            self.bump();
            self.skip_to_line_end();
        }
    }

    fn run(mut self, max: usize) -> Option<(usize, usize)> {
        // Outside brackets ("block context"): may a node start here, and where did the last
        // node on this line start (a block scalar's content must be indented deeper).
        let mut node_may_start = true;
        let mut line_indent = 0usize;
        let mut at_line_start = true;
        let mut node_col: Option<usize> = None;
        // Inside brackets ("flow context").
        let mut depth = 0usize;
        let mut in_plain = false;

        while let Some(b) = self.peek(0) {
            if b == b'\n' {
                self.bump();
                if depth == 0 {
                    node_may_start = true;
                    at_line_start = true;
                    line_indent = 0;
                    node_col = None;
                }
                continue;
            }
            let after_blank = self.pos == self.line_start
                || matches!(self.bytes[self.pos - 1], b' ' | b'\t' | b'\r');
            if b == b'#' && after_blank {
                self.skip_to_line_end();
                if depth > 0 {
                    in_plain = false;
                }
                continue;
            }

            if depth > 0 {
                match b {
                    b'[' | b'{' => {
                        depth += 1;
                        if depth > max {
                            return Some((self.line, self.column()));
                        }
                        in_plain = false;
                    }
                    b']' | b'}' => {
                        depth -= 1;
                        in_plain = false;
                        if depth == 0 {
                            // Whatever follows a closed collection on this line is not a node.
                            node_may_start = false;
                        }
                    }
                    b',' => in_plain = false,
                    b':' | b'?'
                        if is_blank(self.peek(1))
                            || matches!(self.peek(1), Some(b',' | b'[' | b']' | b'{' | b'}')) =>
                    {
                        in_plain = false
                    }
                    b'"' | b'\'' if !in_plain => {
                        if !self.skip_quoted() {
                            return None;
                        }
                        continue;
                    }
                    b' ' | b'\t' | b'\r' => {}
                    _ => in_plain = true,
                }
                self.pos += 1;
                continue;
            }

            // Block context.
            if at_line_start {
                if b == b' ' {
                    line_indent += 1;
                    self.pos += 1;
                    continue;
                }
                at_line_start = false;
                let marker = &self.bytes[self.pos..];
                if self.pos == self.line_start
                    && (marker.starts_with(b"---") || marker.starts_with(b"..."))
                    && is_blank(marker.get(3).copied())
                {
                    // A document marker; a node may follow it on the same line.
                    self.pos += 3;
                    continue;
                }
            }
            if !node_may_start {
                if b == b':' && is_blank(self.peek(1)) {
                    node_may_start = true;
                }
                self.pos += 1;
                continue;
            }
            // Bytes, not characters: never less than the column a parser counts, so a block
            // scalar's content is never taken for more than it is.
            let col = self.pos - self.line_start;
            match b {
                b'[' | b'{' => {
                    depth = 1;
                    in_plain = false;
                    if depth > max {
                        return Some((self.line, self.column()));
                    }
                    self.pos += 1;
                }
                b'"' | b'\'' => {
                    node_col = Some(col);
                    if !self.skip_quoted() {
                        return None;
                    }
                    node_may_start = false;
                }
                b'|' | b'>' => {
                    let parent = node_col.unwrap_or(line_indent).max(line_indent);
                    self.skip_block_scalar(parent);
                    node_may_start = false;
                }
                b'-' | b'?' | b':' if is_blank(self.peek(1)) => {
                    if b != b':' {
                        node_col = Some(col);
                    }
                    self.pos += 1;
                }
                b'&' | b'!' => {
                    // An anchor or tag; the node itself follows.
                    while !is_blank(self.peek(0)) {
                        self.pos += 1;
                    }
                }
                b' ' | b'\t' | b'\r' => self.pos += 1,
                _ => {
                    node_col = Some(col);
                    node_may_start = false;
                    self.pos += 1;
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deep(text: &str) -> Option<(usize, usize)> {
        flow_too_deep(text, 3)
    }

    #[test]
    fn brackets_within_the_limit_pass() {
        assert_eq!(deep("a: [[[1]]]\nb: {c: [d]}\n"), None);
        assert_eq!(deep("- [[[x]]]\n- [[[y]]]\n"), None);
    }

    #[test]
    fn the_first_bracket_past_the_limit_is_named() {
        assert_eq!(deep("a: 1\nb: [[[[x]]]]\n"), Some((2, 7)));
        assert_eq!(deep("a:\n  - - [ {\n   [ [ 1 ] ] } ]\n"), Some((3, 6)));
        assert_eq!(deep("--- [[[[\n"), Some((1, 8)));
        assert_eq!(deep("? [[[[\n"), Some((1, 6)));
        assert_eq!(deep("k: !tag &a [[[[\n"), Some((1, 15)));
    }

    #[test]
    fn brackets_in_text_do_not_count() {
        assert_eq!(deep("a: '[[[[['\nb: \"{{{{{\"\n"), None);
        assert_eq!(deep("a: x[[[[[\n# [[[[[[\n"), None);
        assert_eq!(deep("a: [\"[[[[[\", '[[[[''[[[[', x # [[[[[[\n]\n"), None);
        assert_eq!(deep("a: \"multi\n  line [[[[[ \\\" [[[[\"\n"), None);
    }

    #[test]
    fn block_scalars_are_text() {
        assert_eq!(deep("a: |\n  [[[[[\n  {{{{{\nb: 1\n"), None);
        assert_eq!(deep("- k: >-\n    [[[[[\n\n    [[[[[\n"), None);
    }

    #[test]
    fn lines_after_a_block_scalar_are_scanned() {
        assert_eq!(deep("a: |\n  text\nb: [[[[\n"), Some((3, 7)));
        // Less indented than the key: not content, whatever the line's own indentation.
        assert_eq!(deep("- k: |\n  [[[[\n"), Some((2, 6)));
        // Less indented than the first content line: the scalar has ended.
        assert_eq!(deep("a: |\n    text\n  [[[[\n"), Some((3, 6)));
    }

    #[test]
    fn a_quote_inside_a_flow_plain_scalar_is_not_a_string() {
        assert_eq!(deep("a: [b 'c [[[[\n"), Some((1, 12)));
        assert_eq!(deep("a: [don't, [[[x]]]]\n"), Some((1, 14)));
    }

    #[test]
    fn unterminated_quotes_end_the_scan() {
        assert_eq!(deep("a: '[[[[[\n"), None);
    }

    #[test]
    fn a_huge_file_is_scanned_in_linear_time() {
        let text = format!("a: {}", "[".repeat(4_000_000));
        assert_eq!(flow_too_deep(&text, MAX_DEPTH), Some((1, 4 + MAX_DEPTH)));
        let balanced = "x: [[1, 2], {a: b}]\n".repeat(200_000);
        assert_eq!(flow_too_deep(&balanced, MAX_DEPTH), None);
    }
}
