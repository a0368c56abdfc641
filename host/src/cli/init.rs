//! `orch init`.

use super::{CliError, CmdResult, Ctx};
use crate::repo::Repo;
use std::path::PathBuf;

/// Arguments of `orch init`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where to create the repository (default: here).
    dir: Option<PathBuf>,
}

/// Creates orch.yaml, models/, workflows/, plugins/ and a git-ignored .orch/.
pub fn exec(args: Args, ctx: &Ctx) -> CmdResult {
    let dir = match args.dir {
        Some(d) => d,
        None => std::env::current_dir()
            .map_err(|e| CliError::failed(format!("cannot read the current directory: {e}")))?,
    };
    Repo::init(&dir).map_err(CliError::usage)?;
    ctx.printer.result(&serde_json::json!({ "initialized": dir }), || {
        format!(
            "Initialized an orch repository in {}\n  next: add a definition under models/ and a workflow under workflows/",
            dir.display()
        )
    });
    Ok(0)
}
