//! Finds and loads an orch repository: `orch.yaml`, `models/`, `workflows/`, `plugins/`.
//!
//! Loading reads every file and keeps every problem, so a user fixes all their typos in one
//! pass instead of one per run. A broken definition or workflow does not stop loading: it is
//! set aside in [`BrokenFiles`], and only a command that needs it fails ([`Repo::require`]);
//! the others show it as a warning. `orch.yaml` is different: it holds the grants and the
//! plugin path, and guessing them would widen what plugins may do, so its problems stop every
//! command.

mod config;
mod definition;
mod diagnostic;
mod init;
mod lines;
mod nesting;
mod source;
mod usage;
mod yaml;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use crate::workflow::Workflow;

pub use config::{
    DEFAULT_CONCURRENCY, DEFAULT_COORDINATOR_LEASE_SECONDS, DEFAULT_LOCK_WAIT_SECONDS,
    DatastoreConfig, EnvVar, Grant, RepoConfig,
};
pub use definition::{Definition, Lifetime, MethodArgs, ResourcePolicy, Retention, parse_duration};
pub use diagnostic::{Diagnostic, closest, did_you_mean, list_names, sort_diagnostics};
pub use lines::{LineIndex, Refusal, join_index, join_key, parent_path};
pub use nesting::MAX_DEPTH;
pub use source::{MAX_FILE_BYTES, decode, read_text, strip_bom};
pub use usage::Usage;
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
    // The name comes from the command line or a file and may be of any length.
    let name = crate::excerpt::excerpt(name);
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
    /// Files under `models/` and `workflows/` that could not be loaded.
    pub broken: BrokenFiles,
}

/// Definitions and workflows that could not be loaded, with every problem found in them.
#[derive(Clone, Debug, Default)]
pub struct BrokenFiles {
    /// Problems of each model whose file is broken, by model name.
    pub models: BTreeMap<String, Vec<Diagnostic>>,
    /// Problems of each workflow whose file is broken, by workflow name.
    pub workflows: BTreeMap<String, Vec<Diagnostic>>,
    /// Problems that belong to no one name, such as a directory that cannot be read.
    pub other: Vec<Diagnostic>,
}

impl BrokenFiles {
    /// True when every file loaded.
    pub fn is_empty(&self) -> bool {
        self.models.is_empty() && self.workflows.is_empty() && self.other.is_empty()
    }

    /// Every problem, sorted by file and line.
    pub fn all(&self) -> Vec<Diagnostic> {
        let mut diags: Vec<Diagnostic> = self
            .models
            .values()
            .chain(self.workflows.values())
            .flatten()
            .chain(&self.other)
            .cloned()
            .collect();
        sort_diagnostics(&mut diags);
        diags
    }
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

    /// Loads `orch.yaml`, every definition and every workflow under `root`. Broken
    /// definitions and workflows are kept in [`Repo::broken`]; only a broken `orch.yaml` fails.
    pub fn load(root: &Path) -> Result<Repo, RepoError> {
        let mut repo = Repo::load_models(root)?;
        repo.workflows = load_dir(
            &repo.root,
            WORKFLOWS_DIR,
            Workflow::parse,
            &mut repo.broken.workflows,
            &mut repo.broken.other,
        );
        Ok(repo)
    }

    /// Like [`Repo::load`] for running workflow `name`: every definition, and of the
    /// workflows `name` and those it nests, at any depth. Other workflow files are only
    /// checked for problems (to warn about them), and a file whose exact content parsed
    /// cleanly before is not parsed again (see [`PARSED_WORKFLOWS`]), so a large unrelated
    /// workflow costs a run one read and one hash. When a needed workflow has no file,
    /// everything is loaded, so the error names and suggests exactly what [`Repo::load`] would.
    pub fn load_for_workflow(root: &Path, name: &str) -> Result<Repo, RepoError> {
        let mut repo = Repo::load_models(root)?;
        let files: BTreeMap<String, Vec<PathBuf>> =
            yaml_files(&repo.root, WORKFLOWS_DIR, &mut repo.broken.other)
                .into_iter()
                .collect();
        let mut queue = vec![name.to_string()];
        // The files this run parses cleanly are known too: a run of another workflow next
        // need not parse them again (alternating two workflows parsed each one every time).
        let mut clean = BTreeSet::new();
        while let Some(current) = queue.pop() {
            if repo.workflows.contains_key(&current) || repo.broken.workflows.contains_key(&current)
            {
                continue;
            }
            let Some(group) = files.get(&current) else {
                return Repo::load(root);
            };
            let loaded = load_one(
                &repo.root,
                &current,
                group,
                Workflow::parse,
                |file, text| {
                    clean.insert(parsed_key(file, text));
                },
            );
            match loaded {
                Ok(wf) => {
                    queue.extend(wf.nested_workflows().map(String::from));
                    repo.workflows.insert(current, wf);
                }
                Err(diags) => {
                    repo.broken.workflows.insert(current, diags);
                }
            }
        }
        repo.check_unused_workflows(&files, clean);
        Ok(repo)
    }

    /// Finds the problems of workflow files not loaded, for warnings, without keeping them.
    /// Files known to parse (by path and content, for this orch version) are skipped. The
    /// list written back holds them and `clean`, the keys of the files loaded.
    fn check_unused_workflows(
        &mut self,
        files: &BTreeMap<String, Vec<PathBuf>>,
        clean: BTreeSet<String>,
    ) {
        let list = self.orch_dir().join(PARSED_WORKFLOWS);
        let known: BTreeSet<String> = fs::read_to_string(&list)
            .map(|text| text.lines().map(str::to_string).collect())
            .unwrap_or_default();
        let mut parsed = clean;
        for (name, group) in files {
            if self.workflows.contains_key(name) || self.broken.workflows.contains_key(name) {
                continue;
            }
            let [file] = group.as_slice() else {
                if let Err(diags) = load_one(&self.root, name, group, Workflow::parse, |_, _| {}) {
                    self.broken.workflows.insert(name.clone(), diags);
                }
                continue;
            };
            let text = match read_text(&self.root, &self.root.join(file)) {
                Ok(text) => text,
                Err(d) => {
                    self.broken.workflows.insert(name.clone(), vec![d]);
                    continue;
                }
            };
            let key = parsed_key(file, &text);
            if known.contains(&key) {
                parsed.insert(key);
                continue;
            }
            match Workflow::parse(&text, file) {
                Ok(_) => {
                    parsed.insert(key);
                }
                Err(mut diags) => {
                    sort_diagnostics(&mut diags);
                    self.broken.workflows.insert(name.clone(), diags);
                }
            }
        }
        if parsed != known && self.orch_dir().is_dir() {
            // Written whole and renamed into place, so a concurrent run reads the old list or
            // the new one; a lost update only costs a later run one parse.
            let text: String = parsed.iter().map(|k| format!("{k}\n")).collect();
            let tmp = list.with_extension(format!("tmp{}", std::process::id()));
            if fs::write(&tmp, text)
                .and_then(|()| fs::rename(&tmp, &list))
                .is_err()
            {
                let _ = fs::remove_file(&tmp);
            }
        }
    }

    /// `orch.yaml` and every definition; no workflows yet.
    fn load_models(root: &Path) -> Result<Repo, RepoError> {
        let root = absolute(root);
        let config_path = root.join(CONFIG_FILE);
        if fs::symlink_metadata(&config_path).is_err() {
            return Err(RepoError::NotFound { start: root });
        }
        let read_config = || {
            read_text(&root, &config_path)
                .map_err(|d| vec![d])
                .and_then(|text| RepoConfig::parse(&text, Path::new(CONFIG_FILE)))
        };
        let mut broken = BrokenFiles::default();
        // `orch.yaml` is parsed on the other core while the definitions are parsed here (a
        // home lab's is a third of its YAML); its problems still come first.
        let (config, models) = std::thread::scope(|s| {
            let config = std::thread::Builder::new()
                .name("orch-yaml".into())
                .spawn_scoped(s, read_config);
            let models = load_dir(
                &root,
                MODELS_DIR,
                Definition::parse,
                &mut broken.models,
                &mut broken.other,
            );
            let config = match config {
                Ok(handle) => handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                Err(_) => read_config(),
            };
            (config, models)
        });
        let config = config.map_err(|mut diags| {
            sort_diagnostics(&mut diags);
            RepoError::Invalid(diags)
        })?;
        Ok(Repo {
            root,
            config,
            models,
            workflows: BTreeMap::new(),
            broken,
        })
    }

    /// Every problem in `models/` and `workflows/`, sorted by file and line.
    pub fn problems(&self) -> Vec<Diagnostic> {
        self.broken.all()
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

    /// The definition named `name`; a broken file gives its problems, an unknown name
    /// suggests the closest one.
    pub fn model(&self, name: &str) -> Result<&Definition, RepoError> {
        if let Some(diags) = self.broken.models.get(name) {
            return Err(RepoError::Invalid(diags.clone()));
        }
        self.models.get(name).ok_or_else(|| {
            let available: Vec<String> = self.models.keys().cloned().collect();
            RepoError::UnknownModel {
                name: name.to_string(),
                suggestion: closest(name, available.iter().map(String::as_str)).map(String::from),
                available,
            }
        })
    }

    /// The workflow named `name`; a broken file gives its problems, an unknown name suggests
    /// the closest one.
    pub fn workflow(&self, name: &str) -> Result<&Workflow, RepoError> {
        if let Some(diags) = self.broken.workflows.get(name) {
            return Err(RepoError::Invalid(diags.clone()));
        }
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

/// In `.orch/`: one line per workflow file known to parse cleanly, a digest of this orch
/// version, the file's path and its content. It only lets `orch run` skip parsing workflow
/// files it does not use; a wrong line can at most hide a warning that `orch check` still gives.
pub const PARSED_WORKFLOWS: &str = "parsed-workflows";

/// The line for `file` with content `text` in [`PARSED_WORKFLOWS`].
fn parsed_key(file: &Path, text: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    hasher.update(env!("CARGO_PKG_VERSION").as_bytes());
    hasher.update([0]);
    hasher.update(file.to_string_lossy().as_bytes());
    hasher.update([0]);
    hasher.update(text.as_bytes());
    hex::encode(hasher.finalize())
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Loads every `.yaml`/`.yml` file in `root/dir` with `parse`; files that fail go to `broken`
/// under their name, so one bad file never hides the others.
fn load_dir<T>(
    root: &Path,
    dir: &str,
    parse: fn(&str, &Path) -> Result<T, Vec<Diagnostic>>,
    broken: &mut BTreeMap<String, Vec<Diagnostic>>,
    other: &mut Vec<Diagnostic>,
) -> BTreeMap<String, T> {
    let mut loaded = BTreeMap::new();
    for (name, files) in yaml_files(root, dir, other) {
        match load_one(root, &name, &files, parse, |_, _| {}) {
            Ok(value) => {
                loaded.insert(name, value);
            }
            Err(diags) => {
                broken.insert(name, diags);
            }
        }
    }
    loaded
}

/// Parses the one file named `name` (`files` are every file with that stem), or gives its
/// problems, sorted. `parsed` sees the file and the exact text that parsed cleanly.
fn load_one<T>(
    root: &Path,
    name: &str,
    files: &[PathBuf],
    parse: fn(&str, &Path) -> Result<T, Vec<Diagnostic>>,
    parsed: impl FnOnce(&Path, &str),
) -> Result<T, Vec<Diagnostic>> {
    let [file, rest @ ..] = files else {
        return Err(Vec::new());
    };
    if !rest.is_empty() {
        // Which one is meant cannot be known: the name is broken until one is removed.
        return Err(rest
            .iter()
            .map(|other| {
                Diagnostic::file(
                    other,
                    format!(
                        "`{name}` is also defined by {}; names must be unique, remove or \
                         rename one",
                        file.display()
                    ),
                )
            })
            .collect());
    }
    read_text(root, &root.join(file))
        .map_err(|d| vec![d])
        .and_then(|text| {
            let value = parse(&text, file)?;
            parsed(file, &text);
            Ok(value)
        })
        .map_err(|mut diags| {
            sort_diagnostics(&mut diags);
            diags
        })
}

/// Every `.yaml`/`.yml` entry directly in `root/dir`, relative to `root`, grouped by name
/// (the file stem) and sorted. Entries that are not regular files are listed too, so reading
/// them reports what they are. A missing directory is simply empty: a new repository may have
/// no workflows yet.
fn yaml_files(root: &Path, dir: &str, other: &mut Vec<Diagnostic>) -> Vec<(String, Vec<PathBuf>)> {
    let entries = match fs::read_dir(root.join(dir)) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            other.push(Diagnostic::file(
                dir,
                format!("cannot read the directory: {e}; check its permissions"),
            ));
            return Vec::new();
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            let yaml = matches!(
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

    let mut grouped: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for file in files {
        grouped
            .entry(definition::file_stem(&file))
            .or_default()
            .push(file);
    }
    grouped.into_iter().collect()
}

#[cfg(test)]
mod tests;
