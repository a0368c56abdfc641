//! `orch graph [model…] [--format text|mermaid|dot]`: the order in which models are converged.

use super::{CliError, CmdResult, Ctx};
use crate::graph::{Format, ModelGraph};

/// `orch graph` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Models to show, with every model they read (default: all).
    models: Vec<String>,
    /// text: one line per model in converge order with what it reads; mermaid or dot: a
    /// drawing where `B --> A` means A reads B.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

/// Builds and validates the graph of `${{ model.… }}` references between definitions and
/// prints it; a loop or an undefined model is a validation error (exit 2).
pub fn exec(args: Args, ctx: &Ctx) -> CmdResult {
    let repo = ctx.load_repo()?;
    // Named models: only they and what they read are checked, so a broken file elsewhere
    // does not hide their order.
    let graph = if args.models.is_empty() {
        ModelGraph::of(&repo)
    } else {
        ModelGraph::of_models(&repo, &args.models)
    }
    .map_err(CliError::usage)?;
    ctx.printer
        .result(&graph.to_json(), || graph.render(args.format));
    Ok(0)
}
