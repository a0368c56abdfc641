//! `orch runs list|show`.

use super::{CliError, CmdResult, Ctx};
use crate::run::Liveness;
use crate::store::{RunOwner, RunStatus, RunSummary};

/// ` (on host X)` for a running run whose process this machine cannot check.
fn elsewhere(status: RunStatus, owner: Option<&RunOwner>) -> String {
    match owner {
        Some(owner)
            if status == RunStatus::Running
                && crate::run::liveness(Some(owner)) == Liveness::Unknown =>
        {
            format!("  (on host {}, pid {})", owner.host, owner.pid)
        }
        _ => String::new(),
    }
}

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
    /// Delete the runs that finished before a cutoff, then compact the file.
    ///
    /// A running or waiting run is never deleted, nor the resource versions a run wrote.
    /// --json: {"deleted": [run summaries], "dryRun", "sizeBefore", "sizeAfter"} (bytes).
    Gc {
        /// How long ago the cutoff is: 90m, 12h, 30d, 2w.
        #[arg(long, value_name = "DURATION")]
        older_than: String,
        /// List what would be deleted and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// Runs an `orch runs` subcommand.
pub fn exec(cmd: Cmd, ctx: &Ctx) -> CmdResult {
    let repo = ctx.repo()?;
    let store = ctx.store(&repo);
    match cmd {
        Cmd::Gc {
            older_than,
            dry_run,
        } => {
            let cutoff = crate::repo::parse_duration(&older_than)
                .and_then(|secs| i64::try_from(secs).ok())
                .map(|secs| {
                    time::OffsetDateTime::now_utc()
                        .checked_sub(time::Duration::seconds(secs))
                        .map(crate::store::rfc3339)
                        .unwrap_or_default()
                })
                .ok_or_else(|| {
                    CliError::usage(format!(
                        "--older-than {older_than:?} is not a duration; write a whole number and a unit, such as 90m, 12h or 30d"
                    ))
                })?;
            let before = store.file_size();
            let deleted = store.gc_runs(&cutoff, dry_run).map_err(CliError::failed)?;
            if !dry_run {
                super::data::compact(ctx, &store, deleted.len())?;
            }
            let after = store.file_size();
            super::data::print_gc(ctx, "run", &deleted, dry_run, before, after, |r| {
                format!(
                    "{}  {:<9} {:<24} finished {}",
                    r.id,
                    r.status.as_str(),
                    r.target,
                    r.finished_at.as_deref().unwrap_or("-")
                )
            });
            Ok(0)
        }
        Cmd::List { limit } => {
            // Summaries only: a run still marked running is read in full to settle whether its
            // process is alive.
            let runs: Vec<RunSummary> = store
                .list_run_summaries(limit)
                .map_err(CliError::failed)?
                .into_iter()
                .map(|s| match s.status {
                    RunStatus::Running => match store.get_run(&s.id) {
                        Ok(Some(record)) => RunSummary::of(&crate::run::settle(&store, record)),
                        _ => s,
                    },
                    _ => s,
                })
                .collect();
            let value: Vec<serde_json::Value> = runs
                .iter()
                .map(|r| {
                    let mut row = serde_json::json!({"id": r.id, "kind": r.kind, "target": r.target, "status": r.status, "startedAt": r.started_at, "durationMs": r.duration_ms});
                    if let Some(owner) = &r.owner {
                        row["host"] = owner.host.clone().into();
                        row["pid"] = owner.pid.into();
                    }
                    row
                })
                .collect();
            ctx.printer.result(&value, || {
                runs.iter()
                    .map(|r| {
                        format!(
                            "{}  {:<9} {:<8} {:<24} {}{}",
                            r.id,
                            r.status.as_str(),
                            r.kind,
                            r.target,
                            r.started_at,
                            elsewhere(r.status, r.owner.as_ref())
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
            let run = crate::run::settle(&store, run);
            ctx.printer.result(&run, || {
                let mut out = format!(
                    "run {} — {} {} — {}{}\n",
                    run.id,
                    run.kind,
                    run.target,
                    run.status.as_str(),
                    elsewhere(run.status, run.owner.as_ref())
                );
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
