//! What an import did and what is left for the user, as JSON and as text.

use std::path::PathBuf;

use serde::Serialize;

use crate::repo::Diagnostic;

/// The outcome of `orch import swamp`.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportReport {
    /// The swamp repository read.
    pub source: PathBuf,
    /// The orch repository written (or that would be, with `--dry-run`).
    pub into: PathBuf,
    /// Nothing was written.
    pub dry_run: bool,
    /// Definitions written, in name order.
    pub models: Vec<Written>,
    /// Workflows written, in name order.
    pub workflows: Vec<Written>,
    /// swamp types taken over by an orch plugin.
    pub types_mapped: Vec<TypeMapped>,
    /// swamp extension types orch has no plugin for (their definitions are still written).
    pub unmapped_types: Vec<Unmapped>,
    /// Literal secrets replaced by vault references.
    pub secrets_replaced: Vec<SecretReplaced>,
    /// Every vault key the imported repository reads, with the command that fills it.
    pub vault_keys: Vec<VaultKey>,
    /// Expressions written unchanged because they use what orch's expressions lack.
    pub not_converted: Vec<Problem>,
    /// Other changes worth a look: fields dropped or added, duplicate copies skipped.
    pub notes: Vec<Problem>,
    /// Files that could not be imported at all (malformed YAML, no type, …).
    pub errors: Vec<Problem>,
    /// What to run next, in order.
    pub next_steps: Vec<String>,
}

/// One file written.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Written {
    /// Model or workflow name.
    pub name: String,
    /// The swamp file it came from, relative to the swamp repository.
    pub from: PathBuf,
    /// The orch file, relative to the orch repository.
    pub to: PathBuf,
    /// The orch model type (definitions only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub type_name: Option<String>,
}

/// A swamp type and the orch type that replaces it.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TypeMapped {
    /// As the swamp repository writes it.
    pub swamp: String,
    /// The orch type.
    pub orch: String,
    /// The plugin providing it.
    pub plugin: String,
    /// The models using it.
    pub models: Vec<String>,
}

/// A swamp extension type orch cannot map.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Unmapped {
    /// As the swamp repository writes it.
    pub swamp: String,
    /// The type written into the orch definitions (the namespace dropped).
    pub orch: String,
    /// `file:line` of every definition using it, in the swamp repository.
    pub definitions: Vec<String>,
    /// The extension's TypeScript source in the swamp repository, when found.
    pub extension_source: Option<PathBuf>,
    /// How to port it.
    pub hint: String,
}

/// One literal secret replaced.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretReplaced {
    /// `file:line: field` in the swamp repository (never the value).
    pub at: String,
    /// Vault now read.
    pub vault: String,
    /// Key now read.
    pub key: String,
    /// The command that stores the secret.
    pub command: String,
}

/// A vault key the imported repository reads.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VaultKey {
    /// Vault name.
    pub vault: String,
    /// Key name.
    pub key: String,
    /// The command that stores it (the value is read from stdin).
    pub command: String,
}

/// A problem at a place in the swamp repository.
#[derive(Clone, Debug, Serialize)]
pub struct Problem {
    /// File relative to the swamp repository.
    pub file: PathBuf,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// Dotted field path, when known.
    pub field: Option<String>,
    /// What happened and what to do.
    pub message: String,
    /// `file:line: field: message`.
    pub text: String,
}

impl From<Diagnostic> for Problem {
    fn from(d: Diagnostic) -> Self {
        Problem {
            text: d.to_string(),
            file: d.file,
            line: d.line,
            field: d.field,
            message: d.message,
        }
    }
}

impl ImportReport {
    /// True when every swamp file was imported.
    pub fn complete(&self) -> bool {
        self.errors.is_empty()
    }

    /// The report for people.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        let verb = if self.dry_run {
            "would import"
        } else {
            "imported"
        };
        out.push(format!(
            "{verb} {} model(s) and {} workflow(s) from {} into {}",
            self.models.len(),
            self.workflows.len(),
            self.source.display(),
            self.into.display()
        ));
        section(&mut out, "models", &self.models, |w| {
            format!(
                "{} ({}) ← {}",
                w.to.display(),
                w.type_name.as_deref().unwrap_or("?"),
                w.from.display()
            )
        });
        section(&mut out, "workflows", &self.workflows, |w| {
            format!("{} ← {}", w.to.display(), w.from.display())
        });
        section(&mut out, "types mapped", &self.types_mapped, |t| {
            format!(
                "{} → {} (plugin {}): {}",
                t.swamp,
                t.orch,
                t.plugin,
                t.models.join(", ")
            )
        });
        section(&mut out, "unmapped types", &self.unmapped_types, |u| {
            let source = u.extension_source.as_ref().map_or(
                "source not found under extensions/models/".to_string(),
                |p| format!("source {}", p.display()),
            );
            format!(
                "{}: used by {}; {source}; {}",
                u.swamp,
                u.definitions.join(", "),
                u.hint
            )
        });
        section(&mut out, "secrets replaced", &self.secrets_replaced, |s| {
            format!("{} → vault {}/{}", s.at, s.vault, s.key)
        });
        section(&mut out, "vault keys to fill", &self.vault_keys, |v| {
            format!("{}/{}: {}", v.vault, v.key, v.command)
        });
        section(&mut out, "not converted", &self.not_converted, |p| {
            p.text.clone()
        });
        section(&mut out, "notes", &self.notes, |p| p.text.clone());
        section(&mut out, "not imported", &self.errors, |p| p.text.clone());
        section(&mut out, "next", &self.next_steps, Clone::clone);
        out.join("\n")
    }
}

fn section<T>(out: &mut Vec<String>, title: &str, items: &[T], line: impl Fn(&T) -> String) {
    if items.is_empty() {
        return;
    }
    out.push(format!("{title}:"));
    out.extend(items.iter().map(|i| format!("  {}", line(i))));
}
