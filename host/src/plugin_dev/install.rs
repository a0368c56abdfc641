//! `orch plugin install`: copies a bundle (a directory or a `.tar` of one) into a repository's
//! plugin directory. The bundle is staged under `plugins/.orch-staging/`, validated there with
//! the same checks as `orch plugin validate`, and only then renamed into place, so a refused or
//! interrupted install never leaves a half-written `plugins/<id>/`.

use crate::runtime::validate::{ValidationReport, validate};
use crate::runtime::{PluginManifest, PluginRuntime, files};
use serde::Serialize;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// The staging directory under a plugin directory; the registry never looks inside it because
/// it holds no `plugin.toml` itself.
pub const STAGING_DIR: &str = ".orch-staging";

/// A bundle that was installed.
#[derive(Debug, Serialize)]
pub struct InstalledBundle {
    /// Plugin id.
    pub id: String,
    /// Plugin version.
    pub version: String,
    /// `orch:plugin` API version.
    pub api: String,
    /// Where it now lives.
    pub dir: PathBuf,
    /// Whether an older bundle with the same id was replaced.
    pub replaced: bool,
    /// The model types it provides.
    pub types: Vec<String>,
}

/// Why a bundle was not installed.
#[derive(Debug, Error)]
pub enum InstallError {
    /// A file could not be read or written.
    #[error("{path}: {action}: {message}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The cause.
        message: String,
    },
    /// The source is neither a bundle directory nor a .tar.
    #[error(
        "{0}: not a bundle: expected a directory holding plugin.toml and its wasm, or a .tar of one (`orch plugin build` writes dist/<id>/)"
    )]
    NotABundle(PathBuf),
    /// The archive holds something other than regular files and directories.
    #[error(
        "{path}: entry `{entry}` is not a regular file; a bundle archive holds only plugin.toml and its wasm"
    )]
    BadArchiveEntry {
        /// The archive.
        path: PathBuf,
        /// The entry's path.
        entry: String,
    },
    /// The bundle failed validation (a tampered wasm, forbidden imports, a bad manifest...).
    #[error(
        "{path}: refused, the bundle is not valid: {problems}; run `orch plugin validate {path}` for the full report"
    )]
    Invalid {
        /// The source bundle.
        path: PathBuf,
        /// The failed checks.
        problems: String,
    },
    /// A bundle with this id is installed already.
    #[error(
        "{dir}: plugin `{id}` is already installed (version {version}); pass --replace to replace it"
    )]
    AlreadyInstalled {
        /// The plugin id.
        id: String,
        /// The installed version.
        version: String,
        /// The installed bundle's directory.
        dir: PathBuf,
    },
}

fn io(path: &Path, action: &'static str) -> impl FnOnce(std::io::Error) -> InstallError {
    let path = path.to_path_buf();
    move |e| InstallError::Io {
        path,
        action,
        message: e.to_string(),
    }
}

/// Removes its directory when dropped, so every early return cleans the staging area.
struct Staging {
    dir: PathBuf,
    root: PathBuf,
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        // Only succeeds when no other install is staging at the same time.
        let _ = std::fs::remove_dir(&self.root);
    }
}

fn new_staging(plugins_dir: &Path) -> Result<Staging, InstallError> {
    let root = plugins_dir.join(STAGING_DIR);
    std::fs::create_dir_all(&root).map_err(io(&root, "cannot create directory"))?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let dir = root.join(format!("{}-{nanos}", std::process::id()));
    std::fs::create_dir(&dir).map_err(io(&dir, "cannot create directory"))?;
    Ok(Staging { dir, root })
}

/// Copies the bundle at `source` into a fresh directory under `staging` and returns it.
fn stage(source: &Path, staging: &Path) -> Result<PathBuf, InstallError> {
    let meta = std::fs::metadata(source).map_err(io(source, "cannot read"))?;
    let staged = staging.join("bundle");
    if meta.is_dir() {
        let manifest_path = source.join("plugin.toml");
        if !manifest_path.is_file() {
            return Err(InstallError::NotABundle(source.to_path_buf()));
        }
        let manifest = PluginManifest::load(&manifest_path).map_err(|e| InstallError::Invalid {
            path: source.to_path_buf(),
            problems: e.to_string(),
        })?;
        std::fs::create_dir(&staged).map_err(io(&staged, "cannot create directory"))?;
        for name in ["plugin.toml", manifest.wasm.as_str()] {
            // Only plain file names: a manifest cannot pull in files from elsewhere.
            if Path::new(name).components().count() != 1 || name.starts_with('.') {
                return Err(InstallError::Invalid {
                    path: source.to_path_buf(),
                    problems: format!(
                        "plugin.toml: field `wasm`: `{name}` must be a file name beside plugin.toml"
                    ),
                });
            }
            let from = source.join(name);
            let bytes = files::read_regular(&from, files::MAX_WASM_BYTES).map_err(|message| {
                InstallError::Io {
                    path: from.clone(),
                    action: "cannot read",
                    message,
                }
            })?;
            let to = staged.join(name);
            std::fs::write(&to, bytes).map_err(io(&to, "cannot write file"))?;
        }
        // The types the bundle claims, so a cold registry need not compile it; optional, and
        // checked against the wasm's digest and a real describe() by the host.
        let types = source.join(crate::runtime::bundle_types::TYPES_FILE);
        if types.symlink_metadata().is_ok()
            && let Ok(bytes) = files::read_regular(&types, files::MAX_WASM_BYTES)
        {
            let to = staged.join(crate::runtime::bundle_types::TYPES_FILE);
            std::fs::write(&to, bytes).map_err(io(&to, "cannot write file"))?;
        }
        Ok(staged)
    } else if source.extension().is_some_and(|e| e == "tar") {
        unpack_tar(source, &staged)?;
        if staged.join("plugin.toml").is_file() {
            return Ok(staged);
        }
        // A tar of the bundle directory itself: `<id>/plugin.toml`.
        let subdirs: Vec<PathBuf> = std::fs::read_dir(&staged)
            .map_err(io(&staged, "cannot read directory"))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect();
        match subdirs.as_slice() {
            [one] if one.join("plugin.toml").is_file() => Ok(one.clone()),
            _ => Err(InstallError::NotABundle(source.to_path_buf())),
        }
    } else {
        Err(InstallError::NotABundle(source.to_path_buf()))
    }
}

fn unpack_tar(source: &Path, into: &Path) -> Result<(), InstallError> {
    let file = std::fs::File::open(source).map_err(io(source, "cannot open"))?;
    let mut archive = tar::Archive::new(file);
    std::fs::create_dir(into).map_err(io(into, "cannot create directory"))?;
    let entries = archive
        .entries()
        .map_err(io(source, "cannot read the archive"))?;
    for entry in entries {
        let mut entry = entry.map_err(io(source, "cannot read the archive"))?;
        let kind = entry.header().entry_type();
        let name = entry
            .path()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        if !(kind.is_file() || kind.is_dir()) {
            return Err(InstallError::BadArchiveEntry {
                path: source.to_path_buf(),
                entry: name,
            });
        }
        // `unpack_in` refuses entries that would land outside `into` (`..`, absolute paths).
        let inside = entry
            .unpack_in(into)
            .map_err(io(source, "cannot unpack the archive"))?;
        if !inside {
            return Err(InstallError::BadArchiveEntry {
                path: source.to_path_buf(),
                entry: name,
            });
        }
    }
    Ok(())
}

fn failed_checks(report: &ValidationReport) -> String {
    report
        .checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| format!("{}: {}", c.name, c.message))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Validates the bundle at `source` (a directory or a `.tar`) and installs it as
/// `<plugins_dir>/<id>/`. An installed bundle with the same id is refused unless `replace`.
pub async fn install_bundle(
    runtime: &PluginRuntime,
    source: &Path,
    plugins_dir: &Path,
    replace: bool,
) -> Result<InstalledBundle, InstallError> {
    if !source.exists() {
        return Err(InstallError::Io {
            path: source.to_path_buf(),
            action: "cannot read",
            message: "no such file or directory".into(),
        });
    }
    let staging = new_staging(plugins_dir)?;
    let staged = stage(source, &staging.dir)?;
    let report = validate(runtime, &staged).await;
    if !report.ok {
        return Err(InstallError::Invalid {
            path: source.to_path_buf(),
            problems: failed_checks(&report),
        });
    }
    let manifest =
        PluginManifest::load(&staged.join("plugin.toml")).map_err(|e| InstallError::Invalid {
            path: source.to_path_buf(),
            problems: e.to_string(),
        })?;
    if manifest.id.is_empty()
        || !manifest
            .id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(InstallError::Invalid {
            path: source.to_path_buf(),
            problems: format!(
                "plugin.toml: field `id`: `{}` must be letters, digits, `-` and `_`",
                manifest.id
            ),
        });
    }
    let target = plugins_dir.join(&manifest.id);
    let existing = target.symlink_metadata().is_ok();
    if existing && !replace {
        let version = PluginManifest::load(&target.join("plugin.toml"))
            .map(|m| m.version)
            .unwrap_or_else(|_| "unknown".into());
        return Err(InstallError::AlreadyInstalled {
            id: manifest.id,
            version,
            dir: target,
        });
    }
    if existing {
        // Move the old bundle aside first; it is deleted with the staging directory.
        let old = staging.dir.join("replaced");
        std::fs::rename(&target, &old).map_err(io(&target, "cannot move the old bundle aside"))?;
        if let Err(e) = std::fs::rename(&staged, &target) {
            let _ = std::fs::rename(&old, &target);
            return Err(io(&target, "cannot move the new bundle into place")(e));
        }
    } else {
        std::fs::rename(&staged, &target)
            .map_err(io(&target, "cannot move the new bundle into place"))?;
    }
    Ok(InstalledBundle {
        id: manifest.id,
        version: manifest.version,
        api: manifest.api,
        dir: target,
        replaced: existing,
        types: report.types.iter().map(|t| t.name.clone()).collect(),
    })
}
