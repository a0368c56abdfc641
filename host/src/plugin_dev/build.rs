//! `orch plugin build`: compiles a plugin crate to a component and packs `<dir>/dist/<id>/`.
//! A Rust crate (Cargo.toml + bundle.toml) is built with cargo; a directory with a
//! `package.json` goes to [`super::typescript::build_typescript`].

use super::pack::{BUNDLE_TEMPLATE, PackError, pack_bundle};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use thiserror::Error;

/// The directory under a plugin crate that receives its bundle.
pub const DIST_DIR: &str = "dist";

/// The wasm target every plugin is compiled for.
pub const WASM_TARGET: &str = "wasm32-wasip2";

/// What to build.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// The plugin's directory (Cargo.toml + bundle.toml, or package.json).
    pub dir: PathBuf,
}

/// Why a plugin could not be built.
#[derive(Debug, Error)]
pub enum BuildError {
    /// The directory holds neither a Rust crate nor a TypeScript package.
    #[error(
        "{dir}: not a plugin directory: expected Cargo.toml and {BUNDLE_TEMPLATE} (Rust) or package.json (TypeScript); `orch plugin new {dir}` creates one"
    )]
    NotAPlugin {
        /// The directory.
        dir: PathBuf,
    },
    /// A Rust crate without a bundle template.
    #[error(
        "{dir}/{BUNDLE_TEMPLATE}: missing; it holds the plugin's id, version, api and capabilities (see `orch plugin new`)"
    )]
    NoTemplate {
        /// The crate directory.
        dir: PathBuf,
    },
    /// A TypeScript plugin did not build.
    #[error(transparent)]
    TypeScript(Box<super::typescript::TsBuildError>),
    /// cargo could not be started.
    #[error(
        "cannot start cargo: {0}; install Rust (https://rustup.rs) and `rustup target add {WASM_TARGET}`"
    )]
    NoCargo(std::io::Error),
    /// cargo failed; its diagnostics went to stderr.
    #[error(
        "{manifest}: cargo build failed ({status}); the compiler's messages are above (is the target installed? `rustup target add {WASM_TARGET}`)"
    )]
    CargoFailed {
        /// The crate's Cargo.toml.
        manifest: PathBuf,
        /// cargo's exit status.
        status: std::process::ExitStatus,
    },
    /// cargo succeeded but produced no component.
    #[error("{manifest}: cargo built no .wasm; the crate needs `[lib] crate-type = [\"cdylib\"]`")]
    NoWasm {
        /// The crate's Cargo.toml.
        manifest: PathBuf,
    },
    /// Packing the bundle failed.
    #[error(transparent)]
    Pack(#[from] PackError),
}

/// Builds the plugin in `options.dir` and returns the bundle directory `<dir>/dist/<id>/`.
pub fn build_plugin(options: &BuildOptions) -> Result<PathBuf, BuildError> {
    let dir = &options.dir;
    if dir.join("package.json").is_file() {
        return super::typescript::build_bundle(dir);
    }
    if !dir.join("Cargo.toml").is_file() {
        return Err(BuildError::NotAPlugin { dir: dir.clone() });
    }
    if !dir.join(BUNDLE_TEMPLATE).is_file() {
        return Err(BuildError::NoTemplate { dir: dir.clone() });
    }
    let wasm = cargo_build(dir)?;
    Ok(pack_bundle(
        dir,
        &wasm,
        &dir.join(DIST_DIR),
        "orch plugin build",
    )?)
}

/// The profile plugins are compiled with: `plugin` (small, stripped) when the crate or its
/// workspace defines it, else `release`.
fn profile_for(dir: &Path) -> &'static str {
    for d in dir.ancestors() {
        let Ok(text) = std::fs::read_to_string(d.join("Cargo.toml")) else {
            continue;
        };
        let Ok(table) = text.parse::<toml::Table>() else {
            continue;
        };
        if table.get("profile").and_then(|p| p.get("plugin")).is_some() {
            return "plugin";
        }
        if table.contains_key("workspace") {
            break;
        }
    }
    "release"
}

/// Runs cargo for the crate in `dir` and returns the component it wrote.
fn cargo_build(dir: &Path) -> Result<PathBuf, BuildError> {
    let manifest = dir.join("Cargo.toml");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .arg("build")
        .arg("--manifest-path")
        .arg(&manifest)
        .args(["--target", WASM_TARGET, "--profile", profile_for(dir)])
        .arg("--message-format=json-render-diagnostics")
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(BuildError::NoCargo)?;
    if !output.status.success() {
        return Err(BuildError::CargoFailed {
            manifest,
            status: output.status,
        });
    }
    let wanted = manifest.canonicalize().unwrap_or_else(|_| manifest.clone());
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|msg| msg["reason"] == "compiler-artifact")
        .filter(|msg| {
            msg["manifest_path"]
                .as_str()
                .is_some_and(|p| Path::new(p).canonicalize().is_ok_and(|p| p == wanted))
        })
        .flat_map(|msg| {
            msg["filenames"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter_map(|f| f.as_str().map(PathBuf::from))
        })
        .find(|f| f.extension().is_some_and(|e| e == "wasm"))
        .ok_or(BuildError::NoWasm { manifest })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_without_a_crate_or_package_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let err = build_plugin(&BuildOptions {
            dir: dir.path().to_path_buf(),
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("not a plugin directory"), "{err}");
    }

    #[test]
    fn a_typescript_package_goes_to_the_typescript_builder() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("package.json"), "{}").unwrap();
        // No Cargo.toml, yet not "not a plugin directory": the TypeScript path asks for the
        // bundle template before it starts any npm work.
        let err = build_plugin(&BuildOptions {
            dir: dir.path().to_path_buf(),
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("bundle.toml"), "{err}");
        assert!(!err.contains("not a plugin directory"), "{err}");
    }

    #[test]
    fn the_plugin_profile_is_used_when_the_crate_defines_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("Cargo.toml"),
            "[package]\nname = \"x\"\n[profile.plugin]\ninherits = \"release\"\n",
        )
        .unwrap();
        assert_eq!(profile_for(dir.path()), "plugin");
        std::fs::write(dir.path().join("Cargo.toml"), "[package]\nname = \"x\"\n").unwrap();
        assert_eq!(profile_for(dir.path()), "release");
    }
}
