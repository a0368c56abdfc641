//! `orch init`: lays out a new repository.

use std::fs;
use std::io::Write;
use std::path::Path;

use super::{CONFIG_FILE, MODELS_DIR, PLUGINS_DIR, RepoError, STATE_DIR, WORKFLOWS_DIR};

/// The commented `orch.yaml` written by `orch init`; it must load as the default settings.
pub(crate) const CONFIG_TEMPLATE: &str = r#"# orch repository settings. Every field is optional; the values below are the defaults.

# Directories searched for plugin bundles (plugin.toml + plugin.wasm), relative to this file.
pluginPath: [plugins]

# Maximum number of workflow steps running at once.
concurrency: 8

# Seconds to wait for another orch process that is using the data store.
lockWaitSeconds: 30

# Variables exposed to expressions as env.NAME. The process environment overrides the default.
# env:
#   PROXMOX_API_URL: { default: "https://10.0.0.4:8006", description: "Proxmox API endpoint" }
#   PROXMOX_NODE: keeb-dev-02        # shorthand: just the default

# Narrow what installed plugins may do, keyed by plugin id.
# grants:
#   proxmox:
#     http: ["https://10.0.0.4:8006"]
#     ssh: ["root@10.0.0.4:22"]
"#;

const GITIGNORE_ENTRY: &str = ".orch/";

pub(crate) fn init(dir: &Path) -> Result<(), RepoError> {
    let config = dir.join(CONFIG_FILE);
    if config.exists() {
        return Err(RepoError::AlreadyInitialized { path: config });
    }
    create_dir(dir)?;
    for sub in [MODELS_DIR, WORKFLOWS_DIR, PLUGINS_DIR, STATE_DIR] {
        create_dir(&dir.join(sub))?;
    }
    ensure_gitignore(&dir.join(".gitignore"))?;
    // Written last: its presence is what marks the directory as a repository, so a failure
    // above leaves something `orch init` can simply be run again on.
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&config)
        .map_err(|source| {
            if source.kind() == std::io::ErrorKind::AlreadyExists {
                RepoError::AlreadyInitialized {
                    path: config.clone(),
                }
            } else {
                io_error(&config, "cannot create file", source)
            }
        })?;
    file.write_all(CONFIG_TEMPLATE.as_bytes())
        .map_err(|source| io_error(&config, "cannot write file", source))
}

fn create_dir(path: &Path) -> Result<(), RepoError> {
    fs::create_dir_all(path).map_err(|source| io_error(path, "cannot create directory", source))
}

fn io_error(path: &Path, action: &'static str, source: std::io::Error) -> RepoError {
    RepoError::Io {
        path: path.to_path_buf(),
        action,
        source,
    }
}

/// Adds `.orch/` unless some line already ignores the state directory.
fn ensure_gitignore(path: &Path) -> Result<(), RepoError> {
    let existing = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(source) => return Err(io_error(path, "cannot read file", source)),
    };
    let ignored = existing
        .lines()
        .map(str::trim)
        .any(|l| matches!(l, ".orch" | ".orch/" | "/.orch" | "/.orch/"));
    if ignored {
        return Ok(());
    }
    let mut addition = String::new();
    if !existing.is_empty() && !existing.ends_with('\n') {
        addition.push('\n');
    }
    addition.push_str(GITIGNORE_ENTRY);
    addition.push('\n');
    let mut file = fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .map_err(|source| io_error(path, "cannot open file", source))?;
    file.write_all(addition.as_bytes())
        .map_err(|source| io_error(path, "cannot write file", source))
}
