//! `orch runs list|show`.

use super::{CliError, CmdResult, Ctx};

/// `orch runs` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Cmd {
    /// List recent runs, newest first.
    List {
        /// How many.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Show one run (its id or a unique prefix).
    Show {
        /// Run id.
        id: String,
    },
}

/// Runs an `orch runs` subcommand.
pub fn exec(cmd: Cmd, ctx: &Ctx) -> CmdResult {
    let repo = ctx.repo()?;
    let store = ctx.store(&repo);
    match cmd {
        Cmd::List { limit } => {
            let runs = store.list_runs(limit).map_err(CliError::failed)?;
            let value: Vec<serde_json::Value> = runs
                .iter()
                .map(|r| serde_json::json!({"id": r.id, "kind": r.kind, "target": r.target, "status": r.status, "startedAt": r.started_at, "durationMs": r.duration_ms}))
                .collect();
            ctx.printer.result(&value, || {
                runs.iter()
                    .map(|r| {
                        let status = serde_json::to_value(r.status)
                            .ok()
                            .and_then(|v| v.as_str().map(String::from))
                            .unwrap_or_default();
                        format!(
                            "{}  {:<9} {:<8} {:<24} {}",
                            r.id, status, r.kind, r.target, r.started_at
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
            Ok(0)
        }
        Cmd::Show { id } => {
            let run = store
                .get_run(&id)
                .map_err(CliError::failed)?
                .ok_or_else(|| CliError::failed(format!("no run `{id}` (see `orch runs list`)")))?;
            ctx.printer.result(&run, || {
                let status = serde_json::to_value(run.status)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default();
                let mut out = format!("run {} — {} {} — {status}\n", run.id, run.kind, run.target);
                for s in &run.steps {
                    out.push_str(&format!(
                        "  {:<32} {:<9} {}\n",
                        format!("{}.{}", s.job, s.name),
                        s.status,
                        s.duration_ms.map(crate::output::fmt_ms).unwrap_or_default()
                    ));
                    if let Some(e) = &s.error {
                        out.push_str(&format!("      {e}\n"));
                    }
                }
                if let Some(e) = &run.error {
                    out.push_str(&format!("{e}\n"));
                }
                out
            });
            Ok(0)
        }
    }
}
