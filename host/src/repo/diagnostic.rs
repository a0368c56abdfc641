//! One problem in one file, pointing at a line and a field, plus "did you mean" suggestions.

use std::fmt;
use std::path::{Path, PathBuf};

use super::lines::LineIndex;
use crate::excerpt::{clip_message, excerpt};

/// A user-facing problem: `file:line: field: message`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// File relative to the repository root, e.g. `workflows/sync-fleet.yaml`.
    pub file: PathBuf,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column; only YAML syntax errors know it.
    pub column: Option<usize>,
    /// Dotted path of the field, e.g. `jobs[0].steps[1].dependsOn[0].step`.
    pub field: Option<String>,
    /// What is wrong and what to do about it.
    pub message: String,
}

impl Diagnostic {
    /// A diagnostic about the whole file.
    pub fn file(file: impl Into<PathBuf>, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            file: file.into(),
            line: None,
            column: None,
            field: None,
            message: message.into(),
        }
    }

    /// A diagnostic about `field`, with the line looked up in `lines` (nearest ancestor).
    pub fn at(
        file: impl Into<PathBuf>,
        lines: &LineIndex,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Diagnostic {
        let field = field.into();
        Diagnostic {
            file: file.into(),
            line: lines.line_of(&field),
            column: None,
            field: (!field.is_empty()).then_some(field),
            message: message.into(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        f.write_str(": ")?;
        // Fields and messages may quote user text of any size; keep the output readable.
        if let Some(field) = &self.field {
            write!(f, "{}: ", excerpt(field))?;
        }
        f.write_str(&clip_message(&self.message))
    }
}

/// Sorts diagnostics by file, then line, so output reads top to bottom.
pub fn sort_diagnostics(diags: &mut [Diagnostic]) {
    diags.sort_by(|a, b| {
        (a.file.as_path(), a.line.unwrap_or(0), a.column.unwrap_or(0)).cmp(&(
            b.file.as_path(),
            b.line.unwrap_or(0),
            b.column.unwrap_or(0),
        ))
    });
}

/// The candidate closest to `wanted`, if it is close enough to be a plausible typo.
pub fn closest<'a, I>(wanted: &str, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let wanted_lower = wanted.to_lowercase();
    // Short names tolerate fewer edits, or every three-letter word would match every other.
    let limit = match wanted.chars().count() {
        0..=2 => 1,
        3..=5 => 2,
        n => 2 + n / 6,
    };
    // Lower score is better. Edit distance catches typos; Jaro-Winkler (prefix-weighted)
    // catches abbreviations such as `globalArgs` for `globalArguments`, ranked after typos.
    let mut best: Option<(usize, &'a str)> = None;
    for candidate in candidates {
        if candidate == wanted {
            continue;
        }
        let candidate_lower = candidate.to_lowercase();
        let distance = strsim::osa_distance(&wanted_lower, &candidate_lower);
        let score = if distance <= limit {
            distance
        } else if wanted.chars().count() >= 6
            && strsim::jaro_winkler(&wanted_lower, &candidate_lower) >= 0.9
        {
            // Scaled so closer abbreviations still win over looser ones.
            1000 + distance
        } else {
            continue;
        };
        if best.is_none_or(|(b, _)| score < b) {
            best = Some((score, candidate));
        }
    }
    best.map(|(_, c)| c)
}

/// `; did you mean `x`?` or the empty string, ready to append to a message.
pub fn did_you_mean<'a, I>(wanted: &str, candidates: I) -> String
where
    I: IntoIterator<Item = &'a str>,
{
    match closest(wanted, candidates) {
        Some(c) => format!("; did you mean `{c}`?"),
        None => String::new(),
    }
}

/// `a, b, c` (at most 15 names, then `… and N more`), or `none` when empty.
pub fn list_names<'a, I>(names: I) -> String
where
    I: IntoIterator<Item = &'a str>,
{
    const SHOWN: usize = 15;
    let names: Vec<&str> = names.into_iter().collect();
    if names.is_empty() {
        return "none".to_string();
    }
    let mut out = names[..names.len().min(SHOWN)].join(", ");
    if names.len() > SHOWN {
        out.push_str(&format!(" … and {} more", names.len() - SHOWN));
    }
    out
}

/// The path of `file` relative to `root`, for display.
pub(crate) fn relative(root: &Path, file: &Path) -> PathBuf {
    file.strip_prefix(root).unwrap_or(file).to_path_buf()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_file_line_field_and_message() {
        let d = Diagnostic {
            file: "workflows/sync-fleet.yaml".into(),
            line: Some(14),
            column: None,
            field: Some("jobs[0].steps[1].dependsOn[0].step".into()),
            message: "unknown step `auht`; did you mean `auth`?".into(),
        };
        assert_eq!(
            d.to_string(),
            "workflows/sync-fleet.yaml:14: jobs[0].steps[1].dependsOn[0].step: unknown step `auht`; did you mean `auth`?"
        );
    }

    #[test]
    fn display_without_line_or_field_stays_readable() {
        let d = Diagnostic::file("orch.yaml", "cannot read file");
        assert_eq!(d.to_string(), "orch.yaml: cannot read file");
    }

    #[test]
    fn display_with_column_shows_line_and_column() {
        let d = Diagnostic {
            column: Some(6),
            line: Some(2),
            ..Diagnostic::file("orch.yaml", "bad")
        };
        assert_eq!(d.to_string(), "orch.yaml:2:6: bad");
    }

    #[test]
    fn huge_fields_and_messages_are_cut_when_shown() {
        let d = Diagnostic {
            field: Some(format!("globalArguments.{}", "k".repeat(1_000_000))),
            message: format!(
                "expected an integer, found string \"{}\"",
                "v".repeat(5_000_000)
            ),
            ..Diagnostic::file("models/x.yaml", "")
        };
        let shown = d.to_string();
        assert!(shown.len() < 3_000, "{}", shown.len());
        assert!(shown.contains("(1000016 bytes)"), "{shown}");
        assert!(shown.contains("bytes cut"), "{shown}");
    }

    #[test]
    fn transposed_letters_are_suggested() {
        assert_eq!(closest("auht", ["auth", "sync"]), Some("auth"));
        assert_eq!(closest("flet", ["fleet", "keebDev02"]), Some("fleet"));
    }

    #[test]
    fn case_differences_are_suggested_first() {
        assert_eq!(closest("Fleet", ["flee", "fleet"]), Some("fleet"));
    }

    #[test]
    fn abbreviations_are_suggested() {
        assert_eq!(
            closest("globalArgs", ["name", "type", "globalArguments", "methods"]),
            Some("globalArguments")
        );
    }

    #[test]
    fn unrelated_names_are_not_suggested() {
        assert_eq!(closest("deploy", ["auth", "sync"]), None);
        assert_eq!(did_you_mean("xy", ["abc"]), "");
    }

    #[test]
    fn long_lists_are_shortened() {
        let names: Vec<String> = (0..20).map(|i| format!("m{i}")).collect();
        let listed = list_names(names.iter().map(String::as_str));
        assert!(listed.ends_with("… and 5 more"), "{listed}");
        assert_eq!(list_names([]), "none");
    }
}
