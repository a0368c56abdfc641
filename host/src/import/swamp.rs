//! Reads a swamp repository: every definition and workflow file, parsed with line numbers.
//! A file that cannot be read or parsed becomes a diagnostic; the others are still read.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::repo::{Diagnostic, LineIndex, parse_yaml, read_text};

/// One parsed YAML mapping from the swamp repository.
pub struct SourceFile {
    /// Relative to the swamp repository.
    pub rel: PathBuf,
    /// Where each field is written.
    pub lines: LineIndex,
    /// The top-level mapping.
    pub value: Map<String, Value>,
}

/// A swamp definition (model).
pub struct SwampDefinition {
    /// The file.
    pub file: SourceFile,
    /// swamp's uuid, when written.
    pub id: Option<String>,
    /// The model name.
    pub name: String,
    /// The swamp type, e.g. `@user/proxmox/vm`.
    pub type_name: String,
}

/// A swamp workflow.
pub struct SwampWorkflow {
    /// The file.
    pub file: SourceFile,
    /// swamp's uuid, when written.
    pub id: Option<String>,
    /// The workflow name.
    pub name: String,
}

/// Everything read from a swamp repository.
#[derive(Default)]
pub struct SwampRepo {
    /// Definitions, first occurrence of each name kept.
    pub definitions: Vec<SwampDefinition>,
    /// Workflows, first occurrence of each name kept.
    pub workflows: Vec<SwampWorkflow>,
    /// Files not imported.
    pub errors: Vec<Diagnostic>,
    /// Files skipped on purpose (duplicates), for the report.
    pub notes: Vec<Diagnostic>,
}

/// How deep the directory walk goes; swamp's layouts are at most a few levels deep.
const MAX_WALK_DEPTH: usize = 8;

/// True when `dir` has any of swamp's markers.
pub fn looks_like_swamp(dir: &Path) -> bool {
    [".swamp.yaml", ".swamp", "models", "workflows"]
        .iter()
        .any(|m| dir.join(m).exists())
}

/// True for a uuid-shaped string (swamp's ids).
pub fn looks_like_id(text: &str) -> bool {
    let parts: Vec<&str> = text.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.chars().all(|c| c.is_ascii_hexdigit()))
}

/// The extension's TypeScript source, e.g. `extensions/models/unifi_controller.ts`.
pub fn extension_source(root: &Path, swamp_type: &str) -> Option<PathBuf> {
    let short = super::types::strip_namespace(swamp_type);
    let dir = Path::new("extensions").join("models");
    let conventional = dir.join(format!("{}.ts", short.replace(['/', '-'], "_")));
    if root.join(&conventional).is_file() {
        return Some(conventional);
    }
    // Otherwise the file that declares the type (`type: "@user/unifi/controller"`).
    let mut files = Vec::new();
    walk(&root.join(&dir), 0, &mut files, &|p| {
        p.extension().is_some_and(|e| e == "ts")
    });
    files.into_iter().find_map(|path| {
        let text = fs::read_to_string(&path).ok()?;
        let declares = [swamp_type, short]
            .iter()
            .any(|t| text.contains(&format!("\"{t}\"")) || text.contains(&format!("'{t}'")));
        declares.then(|| path.strip_prefix(root).unwrap_or(&path).to_path_buf())
    })
}

impl SwampRepo {
    /// Reads every definition and workflow under `root`.
    pub fn read(root: &Path) -> SwampRepo {
        let mut repo = SwampRepo::default();
        let yaml = |p: &Path| p.extension().is_some_and(|e| e == "yaml" || e == "yml");
        // New layout and flat files first: they win over the older copies of the same model.
        let mut files = Vec::new();
        walk(&root.join("models"), 0, &mut files, &yaml);
        walk(
            &root.join(".swamp").join("definitions"),
            0,
            &mut files,
            &yaml,
        );
        for path in files {
            repo.add_definition(root, &path);
        }
        let mut files = Vec::new();
        if let Ok(entries) = sorted_entries(&root.join("workflows")) {
            for path in entries {
                let Ok(meta) = fs::symlink_metadata(&path) else {
                    continue;
                };
                if meta.is_file() && yaml(&path) {
                    files.push(path);
                } else if meta.is_dir() {
                    for name in ["workflow.yaml", "workflow.yml"] {
                        if path.join(name).is_file() {
                            files.push(path.join(name));
                        }
                    }
                }
            }
        }
        walk(&root.join(".swamp").join("workflows"), 0, &mut files, &yaml);
        for path in files {
            repo.add_workflow(root, &path);
        }
        repo
    }

    fn parse(&mut self, root: &Path, path: &Path) -> Option<SourceFile> {
        let rel = path.strip_prefix(root).unwrap_or(path).to_path_buf();
        let text = match read_text(root, path) {
            Ok(t) => t,
            Err(d) => {
                self.errors.push(d);
                return None;
            }
        };
        let lines = LineIndex::parse(&text);
        match parse_yaml::<Value>(&text, &rel, &lines) {
            Ok(Value::Object(value)) => Some(SourceFile { rel, lines, value }),
            Ok(_) => {
                self.errors.push(Diagnostic::file(
                    &rel,
                    "expected a YAML mapping (`type: …`, `globalArguments: …` or `jobs: …`); \
                     this file was not imported",
                ));
                None
            }
            Err(mut d) => {
                d.message = format!("{}; this file was not imported", d.message);
                self.errors.push(d);
                None
            }
        }
    }

    fn add_definition(&mut self, root: &Path, path: &Path) {
        let Some(file) = self.parse(root, path) else {
            return;
        };
        let text_field = |k: &str| {
            file.value
                .get(k)
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let id = text_field("id");
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let legacy = file.rel.starts_with(".swamp");
        // In the older layout the file is named by id; the name is only inside.
        let name =
            text_field("name").or_else(|| (!legacy || !looks_like_id(&stem)).then_some(stem));
        let type_dir = || {
            let base = if legacy {
                Path::new(".swamp").join("definitions")
            } else {
                PathBuf::from("models")
            };
            let dir = file.rel.parent()?.strip_prefix(&base).ok()?;
            let t = dir.to_string_lossy().replace('\\', "/");
            (t.contains('/')).then_some(t)
        };
        let type_name = text_field("type").or_else(type_dir);
        let (Some(name), Some(type_name)) = (name, type_name) else {
            let field = if text_field("type").is_none() {
                "type"
            } else {
                "name"
            };
            self.errors.push(Diagnostic::at(
                &file.rel,
                &file.lines,
                field,
                format!("no `{field}`; add it (swamp writes both) and import again; this file was not imported"),
            ));
            return;
        };
        if !valid_name(&name) {
            self.errors.push(Diagnostic::at(
                &file.rel,
                &file.lines,
                "name",
                format!(
                    "model name `{name}` cannot be a file name; use letters, digits, `-`, `_` and `.`; \
                     this file was not imported"
                ),
            ));
            return;
        }
        if let Some(kept) = self
            .definitions
            .iter()
            .find(|d| d.name == name || (id.is_some() && d.id == id))
        {
            self.notes.push(Diagnostic::at(
                &file.rel,
                &file.lines,
                "name",
                format!(
                    "model `{name}` is also defined in {}; that copy was imported and this one skipped",
                    kept.file.rel.display()
                ),
            ));
            return;
        }
        self.definitions.push(SwampDefinition {
            file,
            id,
            name,
            type_name,
        });
    }

    fn add_workflow(&mut self, root: &Path, path: &Path) {
        let Some(file) = self.parse(root, path) else {
            return;
        };
        let id = file
            .value
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_string);
        let fallback = match path.file_stem().map(|s| s.to_string_lossy().into_owned()) {
            Some(stem) if stem == "workflow" => path
                .parent()
                .and_then(Path::file_name)
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or(stem),
            Some(stem) => stem,
            None => String::new(),
        };
        let name = file
            .value
            .get("name")
            .and_then(Value::as_str)
            .map_or(fallback, str::to_string);
        if !valid_name(&name) || !file.value.contains_key("jobs") {
            let (field, message) = if file.value.contains_key("jobs") {
                (
                    "name",
                    format!(
                        "workflow name `{name}` cannot be a file name; use letters, digits, `-`, `_` and `.`"
                    ),
                )
            } else {
                (
                    "jobs",
                    "no `jobs`; a workflow needs `jobs: [ { name, steps } ]`".to_string(),
                )
            };
            self.errors.push(Diagnostic::at(
                &file.rel,
                &file.lines,
                field,
                format!("{message}; this file was not imported"),
            ));
            return;
        }
        if let Some(kept) = self
            .workflows
            .iter()
            .find(|w| w.name == name || (id.is_some() && w.id == id))
        {
            self.notes.push(Diagnostic::at(
                &file.rel,
                &file.lines,
                "name",
                format!(
                    "workflow `{name}` is also defined in {}; that copy was imported and this one skipped",
                    kept.file.rel.display()
                ),
            ));
            return;
        }
        self.workflows.push(SwampWorkflow { file, id, name });
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn sorted_entries(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)?.flatten().map(|e| e.path()).collect();
    entries.sort();
    Ok(entries)
}

/// Regular files under `dir` matching `keep`, sorted; symlinks (swamp's views) are skipped.
fn walk(dir: &Path, depth: usize, out: &mut Vec<PathBuf>, keep: &dyn Fn(&Path) -> bool) {
    if depth > MAX_WALK_DEPTH {
        return;
    }
    let Ok(entries) = sorted_entries(dir) else {
        return;
    };
    let mut dirs = BTreeMap::new();
    for path in entries {
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            dirs.insert(path.clone(), ());
        } else if meta.is_file() && keep(&path) {
            out.push(path);
        }
    }
    for d in dirs.keys() {
        walk(d, depth + 1, out, keep);
    }
}
