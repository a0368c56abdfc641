//! `orch mcp`: serve the Model Context Protocol on stdin/stdout (see [`crate::mcp`]).

use super::{CliError, CmdResult, Ctx};
use crate::mcp::OrchMcp;
use crate::output::{ColorChoice, Printer};

/// Arguments of `orch mcp`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// List and run only the tools that change nothing (no run_workflow, no run_method).
    #[arg(long)]
    read_only: bool,
}

/// Loads the repository and its plugins once, then serves MCP until the client disconnects.
pub async fn exec(args: Args, ctx: &Ctx) -> CmdResult {
    let repo = ctx.repo()?;
    let registry = ctx.registry_with_notices(&repo).await?;
    for p in registry.problems() {
        ctx.printer.warn(p);
    }
    // stdout carries the protocol: this printer writes only to stderr (warnings, run
    // progress), never a result.
    let printer = Printer::new(false, ColorChoice::Never, ctx.printer.verbose());
    let served = Ctx::preloaded(printer, repo, registry);
    let env = served.run_env().await?;
    // Boxed: the protocol's future nests deep enough to pass the compiler's layout limit.
    Box::pin(crate::mcp::serve_stdio(OrchMcp::new(
        served,
        env,
        args.read_only,
    )))
    .await
    .map_err(CliError::failed)?;
    Ok(0)
}
