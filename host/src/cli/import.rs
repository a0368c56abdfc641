//! `orch import swamp`: brings a swamp repository over as an orch repository.

use std::path::PathBuf;

use super::{CliError, CmdResult, Ctx};
use crate::import::{ImportOptions, import_swamp};

/// `orch import` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Cmd {
    /// Convert a swamp repository (definitions, workflows, vault references) into an orch
    /// repository; the swamp repository is only read. Exit 0 when every file was imported,
    /// 2 when some file could not be (each named with file:line).
    Swamp(SwampArgs),
}

/// Arguments of `orch import swamp`.
#[derive(Debug, clap::Args)]
pub struct SwampArgs {
    /// The swamp repository (the directory holding .swamp.yaml, models/, workflows/).
    source: PathBuf,
    /// Where to write the orch repository (default: `<source>-orch` beside it). Must be empty
    /// or absent, or an orch repository with --force.
    #[arg(long)]
    into: Option<PathBuf>,
    /// Report what would be written, and write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Write into an existing orch repository, replacing files of the same name.
    #[arg(long)]
    force: bool,
}

/// Runs an `orch import` subcommand.
pub fn exec(cmd: Cmd, ctx: &Ctx) -> CmdResult {
    match cmd {
        Cmd::Swamp(args) => {
            let report = import_swamp(&ImportOptions {
                source: args.source,
                into: args.into,
                dry_run: args.dry_run,
                force: args.force,
            })
            .map_err(CliError::usage)?;
            ctx.printer.result(&report, || report.render());
            Ok(if report.complete() { 0 } else { 2 })
        }
    }
}
