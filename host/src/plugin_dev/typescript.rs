//! The TypeScript side of `orch plugin build`: the dispatch point for packages with a
//! `package.json`. This build has no TypeScript toolchain wired in yet.

use super::build::BuildError;
use std::path::{Path, PathBuf};

/// Builds the TypeScript plugin package in `dir` into `<dir>/dist/<id>/`.
pub fn build_typescript(dir: &Path) -> Result<PathBuf, BuildError> {
    Err(BuildError::TypeScriptUnsupported {
        dir: dir.to_path_buf(),
    })
}

/// Writes a new TypeScript plugin package (`orch plugin new --lang ts`).
pub fn scaffold_typescript_plugin(
    _options: &super::ScaffoldOptions,
) -> Result<super::scaffold::GeneratedPlugin, super::ScaffoldError> {
    Err(super::ScaffoldError::TypeScriptUnsupported)
}
