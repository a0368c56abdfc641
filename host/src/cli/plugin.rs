//! `orch plugin validate`.

use super::{CliError, CmdResult, Ctx};
use crate::runtime::PluginRuntime;
use std::path::PathBuf;

/// `orch plugin` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Cmd {
    /// Check a bundle directory or a .wasm: manifest, hash, imports and describe() schemas.
    /// Exits 0 when valid, 2 when not; `--json` prints the full report.
    Validate {
        /// A bundle directory (plugin.toml + wasm) or a component .wasm file.
        path: PathBuf,
    },
}

/// Runs an `orch plugin` subcommand.
pub async fn exec(cmd: Cmd, ctx: &Ctx) -> CmdResult {
    match cmd {
        Cmd::Validate { path } => {
            if !path.exists() {
                return Err(CliError::usage(format!(
                    "{}: no such file or directory",
                    path.display()
                )));
            }
            let runtime = PluginRuntime::new(None).map_err(CliError::failed)?;
            let report = crate::runtime::validate::validate(&runtime, &path).await;
            ctx.printer.result(&report, || {
                let mut out = String::new();
                for c in &report.checks {
                    let mark = if c.ok { "✓" } else { "✗" };
                    out.push_str(&format!("{mark} {:<10} {}\n", c.name, c.message));
                }
                out.push_str(if report.ok { "valid\n" } else { "invalid\n" });
                out
            });
            Ok(if report.ok { 0 } else { 2 })
        }
    }
}
