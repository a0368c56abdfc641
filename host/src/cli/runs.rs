//! `orch runs list|show|approve|reject|cancel|resume`.

use super::run::{exit_code, print_record};
use super::{CliError, CmdResult, Ctx};
use crate::run::Liveness;
use crate::store::{Decision, ResourceStore, RunOwner, RunRecord, RunStatus, RunSummary};
use std::time::{Duration, Instant};

/// How long `orch runs cancel` waits for a running run's process to record its end.
const CANCEL_WAIT: Duration = Duration::from_secs(30);

/// Who decides or cancels: `$USER`, or `unknown` when it is not set.
fn who() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "unknown".to_string())
}

fn find_run(store: &ResourceStore, id: &str) -> Result<RunRecord, CliError> {
    store
        .get_run(id)
        .map_err(CliError::failed)?
        .ok_or_else(|| CliError::failed(format!("no run `{id}` (see `orch runs list`)")))
}

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

/// `  waiting: job.step (message)` for a waiting run's line in `runs list`.
fn waiting_on(waiting: &[crate::store::WaitingStep]) -> String {
    if waiting.is_empty() {
        return String::new();
    }
    let steps: Vec<String> = waiting
        .iter()
        .map(|w| {
            format!(
                "{}.{}{}",
                w.job,
                w.step,
                w.message
                    .as_deref()
                    .map(|m| format!(" ({m})"))
                    .unwrap_or_default()
            )
        })
        .collect();
    format!("  waiting: {}", steps.join(", "))
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
    /// Approve a waiting `manual_approval` step; the run goes on in this process (exit code
    /// as `orch run`: 0, 1, 3 waiting again, 130 cancelled).
    Approve(Decide),
    /// Reject a waiting `manual_approval` step: it fails, and the run goes on as its
    /// dependencies' conditions say.
    Reject(Decide),
    /// Cancel a waiting run, or a running one whose process is on this host.
    Cancel {
        /// Run id (or a unique prefix).
        id: String,
    },
    /// Run a failed (or cancelled) workflow run again as a new run, from a step: the steps
    /// before it keep their recorded outcomes.
    Resume {
        /// Run id (or a unique prefix).
        id: String,
        /// The step to start from: `job.step`, or a step name unique in the workflow.
        #[arg(long)]
        from: String,
    },
}

/// Arguments of `orch runs approve|reject`.
#[derive(Debug, clap::Args)]
pub struct Decide {
    /// Run id (or a unique prefix).
    id: String,
    /// The waiting step (`job.step` or its name); needed only when several wait.
    #[arg(long)]
    step: Option<String>,
    /// Why, recorded with the decision.
    #[arg(long)]
    comment: Option<String>,
}

/// Approves or rejects a waiting step and runs the rest of the run.
async fn decide(args: Decide, approved: bool, ctx: &Ctx) -> CmdResult {
    let target = {
        let repo = ctx.repo()?;
        let store = ctx.store(&repo);
        let record = find_run(&store, &args.id)?;
        crate::run::find_waiting_step(&record, args.step.as_deref()).map_err(CliError::failed)?;
        record.target
    };
    let env = ctx.run_env_for_workflow(&target).await?;
    let usage = super::workflow::check_before_run(ctx, &env, &target)?;
    env.prepare_plugins(&usage.called)
        .await
        .map_err(CliError::failed)?;
    crate::run::cancel_on_signals();
    let decision = Decision {
        approved,
        by: who(),
        at: crate::store::now_rfc3339(),
        comment: args.comment,
    };
    let record = env
        .decide(&args.id, args.step.as_deref(), decision)
        .await
        .map_err(CliError::failed)?;
    print_record(ctx, &record);
    Ok(exit_code(record.status))
}

/// Sends SIGTERM to the process running a run on this host (or, for a run of `orch serve`,
/// asks the server to cancel that run alone) and waits until its record says it ended.
fn cancel_running(
    store: &ResourceStore,
    record: RunRecord,
    orch_dir: &std::path::Path,
) -> Result<RunRecord, CliError> {
    let Some(owner) = record.owner.clone() else {
        return Err(CliError::failed(format!(
            "run {} records no process to cancel",
            record.id
        )));
    };
    match crate::run::liveness(Some(&owner)) {
        Liveness::Unknown => {
            return Err(CliError::failed(format!(
                "run {} runs on host {} (pid {}); cancel it there with `orch runs cancel {}`",
                record.id, owner.host, owner.pid, record.id
            )));
        }
        Liveness::Dead(_) => return Ok(crate::run::settle(store, record)),
        Liveness::Alive => {}
    }
    // A run of `orch serve` is cancelled by asking the server: a signal would stop it whole.
    let request =
        crate::serve::request_cancel(orch_dir, &owner, &record.id).map_err(CliError::failed)?;
    let Ok(pid) = i32::try_from(owner.pid) else {
        return Err(CliError::failed(format!(
            "run {}: bad pid {}",
            record.id, owner.pid
        )));
    };
    // SAFETY: kill(2) with a pid checked alive above (same start time) and a valid signal.
    if request.is_none() && unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
        return Err(CliError::failed(format!(
            "cannot signal process {pid} of run {}: {}",
            record.id,
            std::io::Error::last_os_error()
        )));
    }
    let deadline = Instant::now() + CANCEL_WAIT;
    loop {
        let now = find_run(store, &record.id)?;
        if now.status != RunStatus::Running {
            return Ok(now);
        }
        if let Liveness::Dead(_) = crate::run::liveness(Some(&owner)) {
            // Ended by the signal without recording it (a process that does not handle it).
            return Ok(crate::run::settle(store, now));
        }
        if Instant::now() >= deadline {
            return Err(CliError::failed(format!(
                "run {} still runs {}s after SIGTERM to process {pid}; \
                 `kill -KILL {pid}` ends it (the run is then marked abandoned)",
                record.id,
                CANCEL_WAIT.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs an `orch runs` subcommand.
pub async fn exec(cmd: Cmd, ctx: &Ctx) -> CmdResult {
    match cmd {
        Cmd::Approve(args) => return decide(args, true, ctx).await,
        Cmd::Reject(args) => return decide(args, false, ctx).await,
        Cmd::Resume { id, from } => {
            let target = {
                let repo = ctx.repo()?;
                find_run(&ctx.store(&repo), &id)?.target
            };
            let env = ctx.run_env_for_workflow(&target).await?;
            let usage = super::workflow::check_before_run(ctx, &env, &target)?;
            env.prepare_plugins(&usage.called)
                .await
                .map_err(CliError::failed)?;
            crate::run::cancel_on_signals();
            let record = env.resume(&id, &from).await.map_err(CliError::failed)?;
            print_record(ctx, &record);
            return Ok(exit_code(record.status));
        }
        _ => {}
    }
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
        Cmd::Approve(_) | Cmd::Reject(_) | Cmd::Resume { .. } => unreachable!("handled above"),
        Cmd::Cancel { id } => {
            let record = find_run(&store, &id)?;
            let record = match record.status {
                RunStatus::Waiting => crate::run::cancel_waiting(&store, &record.id, &who())
                    .map_err(CliError::failed)?,
                RunStatus::Running => cancel_running(&store, record, &repo.orch_dir())?,
                other => {
                    return Err(CliError::failed(format!(
                        "run {} is {}: only a running or waiting run can be cancelled",
                        record.id,
                        other.as_str()
                    )));
                }
            };
            ctx.printer.result(&record, || {
                format!("run {} is {}\n", record.id, record.status.as_str())
            });
            Ok(0)
        }
        Cmd::List { limit } => {
            let shown = list(&store, limit)?;
            ctx.printer.result(&shown.value, || shown.text.clone());
            Ok(0)
        }
        Cmd::Show { id } => {
            let run = show(&store, &id)?;
            ctx.printer.result(&run, || show_text(&run));
            Ok(0)
        }
    }
}

/// `orch runs list`: the newest runs first, a run still marked running settled (a run whose
/// process died is marked abandoned).
pub(crate) fn list(store: &ResourceStore, limit: usize) -> Result<super::data::Shown, CliError> {
    // Summaries only: a run still marked running is read in full to settle whether its
    // process is alive.
    let runs: Vec<RunSummary> = store
        .list_run_summaries(limit)
        .map_err(CliError::failed)?
        .into_iter()
        .map(|s| match s.status {
            RunStatus::Running => match store.get_run(&s.id) {
                Ok(Some(record)) => RunSummary::of(&crate::run::settle(store, record)),
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
            if !r.waiting.is_empty() {
                row["waiting"] = serde_json::to_value(&r.waiting).unwrap_or_default();
            }
            row
        })
        .collect();
    let text = runs
        .iter()
        .map(|r| {
            format!(
                "{}  {:<9} {:<8} {:<24} {}{}{}",
                r.id,
                r.status.as_str(),
                r.kind,
                r.target,
                r.started_at,
                elsewhere(r.status, r.owner.as_ref()),
                waiting_on(&r.waiting)
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    Ok(super::data::Shown {
        value: serde_json::Value::Array(value),
        text,
    })
}

/// `orch runs show`: the run's record, settled (see [`list`]).
pub(crate) fn show(store: &ResourceStore, id: &str) -> Result<RunRecord, CliError> {
    let run = store
        .get_run(id)
        .map_err(CliError::failed)?
        .ok_or_else(|| CliError::failed(format!("no run `{id}` (see `orch runs list`)")))?;
    Ok(crate::run::settle(store, run))
}

/// `orch runs show` as text: the run, each step with its error, warning (a `warn` assert that
/// did not hold), approval question and decision, and the run it was resumed from.
fn show_text(run: &RunRecord) -> String {
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
        if let Some(w) = &s.warning {
            out.push_str(&format!("      warning: {w}\n"));
        }
        if let Some(m) = &s.message {
            out.push_str(&format!("      asks: {m}\n"));
        }
        if let Some(d) = &s.decision {
            out.push_str(&format!(
                "      {} by {} at {}{}\n",
                if d.approved { "approved" } else { "rejected" },
                d.by,
                d.at,
                d.comment
                    .as_deref()
                    .map(|c| format!(": {c}"))
                    .unwrap_or_default()
            ));
        }
    }
    if let Some(e) = &run.error {
        out.push_str(&format!("{e}\n"));
    }
    if let Some(from) = &run.resumed_from {
        out.push_str(&format!("resumed from run {from}\n"));
    }
    if !run.waiting.is_empty() {
        out.push_str(&format!(
            "waiting for approval: orch runs approve {} / orch runs reject {}\n",
            run.id, run.id
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StepRecord;

    fn record(steps: Vec<StepRecord>) -> RunRecord {
        RunRecord {
            id: "r2".into(),
            kind: "workflow".into(),
            target: "deploy".into(),
            status: RunStatus::Succeeded,
            started_at: "2026-01-01T00:00:00.000Z".into(),
            finished_at: None,
            duration_ms: Some(5),
            inputs: serde_json::json!({}),
            steps,
            events: Vec::new(),
            error: None,
            owner: None,
            outcomes: Vec::new(),
            waiting: Vec::new(),
            resumed_from: Some("r1".into()),
        }
    }

    #[test]
    fn runs_show_text_has_warnings_approvals_and_the_run_resumed_from() {
        let text = show_text(&record(vec![
            StepRecord {
                job: "main".into(),
                name: "check".into(),
                status: "succeeded".into(),
                warning: Some("disk above 80%".into()),
                ..Default::default()
            },
            StepRecord {
                job: "main".into(),
                name: "gate".into(),
                status: "succeeded".into(),
                message: Some("ship to prod?".into()),
                decision: Some(Decision {
                    approved: true,
                    by: "ann".into(),
                    at: "2026-01-01T00:01:00.000Z".into(),
                    comment: Some("go".into()),
                }),
                ..Default::default()
            },
        ]));
        assert!(text.contains("warning: disk above 80%"), "{text}");
        assert!(text.contains("asks: ship to prod?"), "{text}");
        assert!(
            text.contains("approved by ann at 2026-01-01T00:01:00.000Z: go"),
            "{text}"
        );
        assert!(text.contains("resumed from run r1"), "{text}");
    }

    #[test]
    fn runs_show_text_says_a_rejection() {
        let mut run = record(vec![StepRecord {
            job: "main".into(),
            name: "gate".into(),
            status: "failed".into(),
            decision: Some(Decision {
                approved: false,
                by: "bob".into(),
                at: "t".into(),
                comment: None,
            }),
            ..Default::default()
        }]);
        run.resumed_from = None;
        let text = show_text(&run);
        assert!(text.contains("rejected by bob at t\n"), "{text}");
        assert!(!text.contains("resumed from"), "{text}");
    }
}
