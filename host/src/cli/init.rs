//! `orch init`.

use super::{CliError, CmdResult, Ctx};
use crate::repo::Repo;
use std::path::PathBuf;

/// Arguments of `orch init`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where to create the repository (default: here).
    dir: Option<PathBuf>,
    /// Also write AGENTS.md: how an AI agent should use orch (`orch mcp`, verify before
    /// destroy, CEL wiring); the same text as docs/agents.md of orch's repository.
    #[arg(long)]
    agent: bool,
}

/// The agent guide `orch init --agent` writes (docs/agents.md).
pub const AGENTS_MD: &str = include_str!("../../../docs/agents.md");

/// Creates orch.yaml, models/, workflows/, plugins/ and a git-ignored .orch/.
pub fn exec(args: Args, ctx: &Ctx) -> CmdResult {
    let dir = match args.dir {
        Some(d) => d,
        None => std::env::current_dir()
            .map_err(|e| CliError::failed(format!("cannot read the current directory: {e}")))?,
    };
    Repo::init(&dir).map_err(CliError::usage)?;
    let agents = dir.join("AGENTS.md");
    if args.agent {
        if agents.exists() {
            ctx.printer.warn(&format!(
                "{} exists already and was left as it is; orch's agent guide is docs/agents.md in orch's repository",
                agents.display()
            ));
        } else {
            std::fs::write(&agents, AGENTS_MD)
                .map_err(|e| CliError::failed(format!("cannot write {}: {e}", agents.display())))?;
        }
    }
    let mut value = serde_json::json!({ "initialized": dir });
    if args.agent {
        value["agentGuide"] = serde_json::json!(agents);
    }
    ctx.printer.result(&value, || {
        let mut text = format!(
            "Initialized an orch repository in {}\n  next: add a definition under models/ and a workflow under workflows/",
            dir.display()
        );
        if args.agent {
            text.push_str(&format!(
                "\n  agents: read {} and connect with `orch mcp`",
                agents.display()
            ));
        }
        text
    });
    Ok(0)
}
