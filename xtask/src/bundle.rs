//! Builds plugin crates for wasm32-wasip2 and turns each into a bundle: `plugin.toml` (from the
//! crate's `bundle.toml`, with the wasm's SHA-256 filled in) beside `plugin.wasm` and
//! `types.json` (its describe() answer, written by the host's packer).

use crate::{root, run, target_dir};
use anyhow::{Context, Result, bail};
use orch::runtime::bundle_types::TYPES_FILE;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where every built bundle lands: `plugins/dist/<id>/`.
pub fn dist_dir() -> PathBuf {
    root().join("plugins").join("dist")
}

/// Plugin crates: directories with a `bundle.toml` under plugins/ and tests/hostile/.
fn plugin_crates() -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for base in ["plugins", "tests/hostile"] {
        let dir = root().join(base);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            // TypeScript plugins have a bundle.toml too, but no Cargo.toml.
            if e.path().join("bundle.toml").is_file() && e.path().join("Cargo.toml").is_file() {
                found.push(e.path());
            }
        }
    }
    found.sort();
    Ok(found)
}

/// Package names of the hostile test plugins (excluded from native test runs).
pub fn hostile_crates() -> Result<Vec<String>> {
    let mut names = Vec::new();
    for dir in plugin_crates()? {
        if dir.starts_with(root().join("tests")) {
            names.push(package_name(&dir)?);
        }
    }
    Ok(names)
}

fn package_name(dir: &Path) -> Result<String> {
    let text = std::fs::read_to_string(dir.join("Cargo.toml"))?;
    let value: toml::Table = text
        .parse()
        .with_context(|| format!("{}/Cargo.toml", dir.display()))?;
    value
        .get("package")
        .and_then(|p| p.get("name"))
        .and_then(|n| n.as_str())
        .map(String::from)
        .with_context(|| format!("{}/Cargo.toml has no package.name", dir.display()))
}

/// Builds every plugin crate and writes its bundle; returns the bundle directories.
pub fn build_all() -> Result<Vec<PathBuf>> {
    let crates = plugin_crates()?;
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root())
        .args(["build", "--target", "wasm32-wasip2", "--profile", "plugin"]);
    for dir in &crates {
        cmd.args(["-p", &package_name(dir)?]);
    }
    run(&mut cmd)?;
    let mut bundles = Vec::new();
    for dir in &crates {
        bundles.push(make_bundle(dir)?);
    }
    install_into_examples(&bundles)?;
    Ok(bundles)
}

/// Packs one crate's component with the host's packer (the code `orch plugin build` uses).
fn make_bundle(crate_dir: &Path) -> Result<PathBuf> {
    let package = package_name(crate_dir)?;
    let wasm = target_dir()
        .join("wasm32-wasip2")
        .join("plugin")
        .join(format!("{}.wasm", package.replace('-', "_")));
    let out = orch::plugin_dev::pack_bundle(crate_dir, &wasm, &dist_dir(), "cargo xtask build")?;
    let size = std::fs::metadata(out.join("plugin.wasm"))?.len();
    // types.json lets a cold repo list the plugin's types without compiling it.
    let types = match out.join(TYPES_FILE).is_file() {
        true => "with types.json",
        false => "no types.json: it cannot be described",
    };
    eprintln!(
        "xtask: bundle {} ({} KiB, {types})",
        out.display(),
        size / 1024
    );
    Ok(out)
}

/// Copies bundles into each example repository that lists them in `plugins.txt`.
fn install_into_examples(bundles: &[PathBuf]) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(root().join("workflows")) else {
        return Ok(());
    };
    for e in entries.flatten() {
        let wanted = e.path().join("plugins.txt");
        let Ok(list) = std::fs::read_to_string(&wanted) else {
            continue;
        };
        for id in list
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            let Some(src) = bundles
                .iter()
                .find(|b| b.file_name().is_some_and(|n| n == id))
            else {
                bail!(
                    "{} names plugin `{id}`, which no crate builds",
                    wanted.display()
                );
            };
            let dst = e.path().join("plugins").join(id);
            std::fs::create_dir_all(&dst)?;
            for f in ["plugin.toml", "plugin.wasm"] {
                std::fs::copy(src.join(f), dst.join(f))?;
            }
            let _ = std::fs::remove_file(dst.join(TYPES_FILE));
            if src.join(TYPES_FILE).is_file() {
                std::fs::copy(src.join(TYPES_FILE), dst.join(TYPES_FILE))?;
            }
        }
    }
    Ok(())
}
