//! Finds and loads an orch repository: `orch.yaml`, `models/`, `workflows/`, `plugins/`.
//!
//! Loading reads every file and collects every problem before giving up, so a user fixes
//! all their typos in one pass instead of one per run.

mod config;
mod definition;
mod diagnostic;
mod init;
mod lines;
mod yaml;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use crate::workflow::Workflow;

pub use config::{DEFAULT_CONCURRENCY, DEFAULT_LOCK_WAIT_SECONDS, EnvVar, Grant, RepoConfig};
pub use definition::{Definition, MethodArgs};
pub use diagnostic::{Diagnostic, closest, did_you_mean, list_names, sort_diagnostics};
pub use lines::{LineIndex, join_index, join_key, parent_path};
pub use yaml::{deserialize_via, null_default, parse_yaml, yaml_error};

/// The file that marks a repository root.
pub const CONFIG_FILE: &str = "orch.yaml";
/// Directory of model definitions.
pub const MODELS_DIR: &str = "models";
/// Directory of workflows.
pub const WORKFLOWS_DIR: &str = "workflows";
/// Default directory of installed plugin bundles.
pub const PLUGINS_DIR: &str = "plugins";
/// Runtime state directory (git-ignored).
pub const STATE_DIR: &str = ".orch";

/// Why a repository could not be found, created or loaded.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    /// No `orch.yaml` in the directory or any parent.
    #[error(
        "no orch repository found in {} or any parent directory (looked for {CONFIG_FILE}); \
         run `orch init` to create one here, or pass --repo <dir>",
        start.display()
    )]
    NotFound {
        /// Where the search started.
        start: PathBuf,
    },
    /// `orch init` on a directory that already is a repository.
    #[error(
        "{} already exists; this directory is already an orch repository, nothing to do",
        path.display()
    )]
    AlreadyInitialized {
        /// The existing `orch.yaml`.
        path: PathBuf,
    },
    /// A file or directory could not be read or written.
    #[error("{}: {action}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What orch was doing, e.g. "cannot create directory".
        action: &'static str,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// One or more files are invalid; every problem found is listed.
    #[error("{}", display_diagnostics(.0))]
    Invalid(Vec<Diagnostic>),
    /// A model name that has no definition.
    #[error("{}", unknown_name("model", MODELS_DIR, name, suggestion.as_deref(), available))]
    UnknownModel {
        /// The name asked for.
        name: String,
        /// The closest existing name, if any.
        suggestion: Option<String>,
        /// Every model name.
        available: Vec<String>,
    },
    /// A workflow name that has no file.
    #[error("{}", unknown_name("workflow", WORKFLOWS_DIR, name, suggestion.as_deref(), available))]
    UnknownWorkflow {
        /// The name asked for.
        name: String,
        /// The closest existing name, if any.
        suggestion: Option<String>,
        /// Every workflow name.
        available: Vec<String>,
    },
}

fn display_diagnostics(diags: &[Diagnostic]) -> String {
    diags
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// "unknown model `flet`; did you mean `fleet`? (models/ has: fleet, keebDev02)".
pub fn unknown_name(
    kind: &str,
    dir: &str,
    name: &str,
    suggestion: Option<&str>,
    available: &[String],
) -> String {
    let listed = list_names(available.iter().map(String::as_str));
    match suggestion {
        Some(s) => format!("unknown {kind} `{name}`; did you mean `{s}`? ({dir}/ has: {listed})"),
        None => format!(
            "unknown {kind} `{name}`; add {dir}/{name}.yaml or use an existing one ({dir}/ has: {listed})"
        ),
    }
}

/// A loaded repository.
#[derive(Clone, Debug)]
pub struct Repo {
    /// Absolute path of the directory holding `orch.yaml`.
    pub root: PathBuf,
    /// Settings from `orch.yaml`.
    pub config: RepoConfig,
    /// Definitions by model name.
    pub models: BTreeMap<String, Definition>,
    /// Workflows by name.
    pub workflows: BTreeMap<String, Workflow>,
}

impl Repo {
    /// Walks up from `start` to the nearest directory holding `orch.yaml`.
    pub fn discover(start: &Path) -> Result<PathBuf, RepoError> {
        let start = absolute(start);
        for dir in start.ancestors() {
            if dir.join(CONFIG_FILE).is_file() {
                return Ok(dir.to_path_buf());
            }
        }
        Err(RepoError::NotFound { start })
    }

    /// Loads `orch.yaml`, every definition and every workflow under `root`.
    pub fn load(root: &Path) -> Result<Repo, RepoError> {
        let root = absolute(root);
        let config_path = root.join(CONFIG_FILE);
        if !config_path.is_file() {
            return Err(RepoError::NotFound { start: root });
        }
        let mut diags = Vec::new();

        let config = match read(&root, &config_path) {
            Ok(text) => RepoConfig::parse(&text, Path::new(CONFIG_FILE)).unwrap_or_else(|d| {
                diags.extend(d);
                RepoConfig::default()
            }),
            Err(d) => {
                diags.push(d);
                RepoConfig::default()
            }
        };

        let mut models = BTreeMap::new();
        for (name, file) in yaml_files(&root, MODELS_DIR, &mut diags) {
            let text = match read(&root, &root.join(&file)) {
                Ok(text) => text,
                Err(d) => {
                    diags.push(d);
                    continue;
                }
            };
            match Definition::parse(&text, &file) {
                Ok(def) => {
                    models.insert(name, def);
                }
                Err(d) => diags.extend(d),
            }
        }

        let mut workflows = BTreeMap::new();
        for (name, file) in yaml_files(&root, WORKFLOWS_DIR, &mut diags) {
            let text = match read(&root, &root.join(&file)) {
                Ok(text) => text,
                Err(d) => {
                    diags.push(d);
                    continue;
                }
            };
            match Workflow::parse(&text, &file) {
                Ok(wf) => {
                    workflows.insert(name, wf);
                }
                Err(d) => diags.extend(d),
            }
        }

        if !diags.is_empty() {
            sort_diagnostics(&mut diags);
            return Err(RepoError::Invalid(diags));
        }
        Ok(Repo {
            root,
            config,
            models,
            workflows,
        })
    }

    /// Creates a new repository in `dir` (made if missing); refuses if `orch.yaml` exists.
    pub fn init(dir: &Path) -> Result<(), RepoError> {
        init::init(dir)
    }

    /// `root/.orch`, where runtime state lives.
    pub fn orch_dir(&self) -> PathBuf {
        self.root.join(STATE_DIR)
    }

    /// Absolute directories searched for plugin bundles, in order.
    pub fn plugin_dirs(&self) -> Vec<PathBuf> {
        self.config
            .plugin_path
            .iter()
            .map(|p| self.root.join(p))
            .collect()
    }

    /// Values of the declared `env` variables: the process environment wins over the default.
    /// Variables with neither are left out, so CEL reports them as missing.
    pub fn env_values(&self) -> BTreeMap<String, String> {
        self.env_values_from(|name| std::env::var(name).ok())
    }

    /// Like [`Repo::env_values`], reading the environment through `lookup`.
    pub fn env_values_from(
        &self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> BTreeMap<String, String> {
        self.config
            .env
            .iter()
            .filter_map(|(name, var)| {
                let value = lookup(name).or_else(|| var.default.clone())?;
                Some((name.clone(), value))
            })
            .collect()
    }

    /// The definition named `name`; an unknown name suggests the closest one.
    pub fn model(&self, name: &str) -> Result<&Definition, RepoError> {
        self.models.get(name).ok_or_else(|| {
            let available: Vec<String> = self.models.keys().cloned().collect();
            RepoError::UnknownModel {
                name: name.to_string(),
                suggestion: closest(name, available.iter().map(String::as_str)).map(String::from),
                available,
            }
        })
    }

    /// The workflow named `name`; an unknown name suggests the closest one.
    pub fn workflow(&self, name: &str) -> Result<&Workflow, RepoError> {
        self.workflows.get(name).ok_or_else(|| {
            let available: Vec<String> = self.workflows.keys().cloned().collect();
            RepoError::UnknownWorkflow {
                name: name.to_string(),
                suggestion: closest(name, available.iter().map(String::as_str)).map(String::from),
                available,
            }
        })
    }
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

fn read(root: &Path, path: &Path) -> Result<String, Diagnostic> {
    fs::read_to_string(path).map_err(|e| {
        Diagnostic::file(
            diagnostic::relative(root, path),
            format!("cannot read the file: {e}; check that it exists, is readable and is UTF-8"),
        )
    })
}

/// `(stem, relative path)` of every `.yaml`/`.yml` file directly in `root/dir`, sorted.
/// A missing directory is simply empty: a new repository may have no workflows yet.
fn yaml_files(root: &Path, dir: &str, diags: &mut Vec<Diagnostic>) -> Vec<(String, PathBuf)> {
    let entries = match fs::read_dir(root.join(dir)) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            diags.push(Diagnostic::file(
                dir,
                format!("cannot read the directory: {e}"),
            ));
            return Vec::new();
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            let yaml = p.is_file()
                && matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("yaml") | Some("yml")
                );
            if !yaml {
                // READMEs and subdirectories are normal here; only say so when debugging.
                tracing::debug!(path = %p.display(), "ignored: not a .yaml file");
            }
            yaml
        })
        .map(|p| diagnostic::relative(root, &p))
        .collect();
    files.sort();

    let mut seen: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut out = Vec::new();
    for file in files {
        let stem = definition::file_stem(&file);
        if let Some(first) = seen.get(&stem) {
            diags.push(Diagnostic::file(
                &file,
                format!(
                    "`{stem}` is also defined by {}; names must be unique, remove or rename one",
                    first.display()
                ),
            ));
            continue;
        }
        seen.insert(stem.clone(), file.clone());
        out.push((stem, file));
    }
    out
}

#[cfg(test)]
mod tests;
