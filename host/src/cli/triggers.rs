//! `orch triggers list | run-due`: the workflows' schedules and webhooks, without a server.
//! `run-due` is what a system cron (or a test) calls every minute.

use std::sync::Arc;

use chrono::Utc;
use serde_json::{Map, Value, json};

use super::workflow::RegistryCatalog;
use super::{CliError, CmdResult, Ctx};
use crate::run::RunEnv;
use crate::store::RunStatus;
use crate::triggers::{
    BoxFuture, FiredOutcome, Launched, Launcher, Origin, Scheduler, Webhooks, Zone, parse_time,
};

/// `orch triggers …`.
#[derive(Debug, clap::Subcommand)]
pub enum Cmd {
    /// Every trigger: schedules with their last and next run and skipped count, and webhooks.
    List,
    /// Fire, in the foreground, the schedules due now since their last fire; wait for the runs.
    RunDue(RunDueArgs),
}

/// Arguments of `orch triggers run-due`.
#[derive(Debug, clap::Args)]
pub struct RunDueArgs {
    /// The time to fire for (RFC 3339, e.g. 2026-01-31T12:00:00Z); default: now.
    #[arg(long, value_name = "TIME")]
    now: Option<String>,
}

/// Runs an `orch triggers` subcommand.
pub async fn exec(cmd: Cmd, ctx: &Ctx) -> CmdResult {
    match cmd {
        Cmd::List => list(ctx),
        Cmd::RunDue(args) => run_due(args, ctx).await,
    }
}

fn list(ctx: &Ctx) -> CmdResult {
    let repo = ctx.repo()?;
    let scheduler = Scheduler::load(&repo, Zone::Local).map_err(CliError::failed)?;
    let schedules = scheduler.status(Utc::now());
    let webhooks: Vec<Value> = Webhooks::from_repo(&repo)
        .list()
        .into_iter()
        .map(|(path, workflow, trigger)| {
            json!({ "workflow": workflow, "trigger": trigger, "path": format!("/hooks/{path}") })
        })
        .collect();
    let value = json!({ "schedules": schedules, "webhooks": webhooks });
    ctx.printer.result(&value, || {
        let mut out = Vec::new();
        for s in &schedules {
            out.push(format!(
                "{} {} schedule \"{}\": next {}, last {}{}, skipped {}",
                s.workflow,
                s.trigger,
                s.schedule,
                s.next_run.as_deref().unwrap_or("never"),
                s.last_run.as_deref().unwrap_or("never"),
                match (&s.last_run_id, &s.last_status) {
                    (Some(id), Some(st)) => format!(" (run {id}: {st})"),
                    (None, Some(st)) => format!(" ({st})"),
                    _ => String::new(),
                },
                s.skipped
            ));
        }
        for w in &webhooks {
            out.push(format!(
                "{} {} webhook POST {}",
                w["workflow"].as_str().unwrap_or_default(),
                w["trigger"].as_str().unwrap_or_default(),
                w["path"].as_str().unwrap_or_default()
            ));
        }
        if out.is_empty() {
            out.push("no triggers (add `triggers:` to a workflow)".to_string());
        }
        out.join("\n")
    });
    Ok(0)
}

async fn run_due(args: RunDueArgs, ctx: &Ctx) -> CmdResult {
    let now = match &args.now {
        Some(text) => parse_time(text).map_err(|e| CliError::usage(format!("--now: {e}")))?,
        None => Utc::now(),
    };
    let env = ctx.run_env().await?;
    let scheduler = Scheduler::load(&env.repo, Zone::Local)
        .map_err(CliError::failed)?
        .with_run_lookup(crate::triggers::store_lookup(env.store.clone()));
    // Times that passed unrun since the last `run-due` are reported, never run late.
    let missed = scheduler.missed_at_start(now);
    let due = scheduler.due(now);
    crate::run::cancel_on_signals();
    let launcher = Arc::new(CliLauncher { env });
    let fired = scheduler.fire(due, launcher).await;
    let mut shown = Vec::new();
    let mut failed = false;
    for mut f in fired {
        let status = match f.finished.take() {
            Some(handle) => Some(handle.await.unwrap_or(RunStatus::Failed)),
            None => None,
        };
        failed |= matches!(f.outcome, FiredOutcome::Failed { .. })
            || status.is_some_and(|s| s != RunStatus::Succeeded);
        let mut entry = serde_json::to_value(&f.due).unwrap_or_default();
        if let (Value::Object(map), Value::Object(outcome)) = (
            &mut entry,
            serde_json::to_value(&f.outcome).unwrap_or_default(),
        ) {
            map.remove("inputs");
            map.extend(outcome);
            if let Some(s) = status {
                map.insert("status".into(), json!(s.as_str()));
            }
        }
        shown.push(entry);
    }
    let value = json!({ "now": crate::triggers::rfc3339(now), "missed": missed, "fired": shown });
    ctx.printer.result(&value, || {
        let mut out = Vec::new();
        for m in &missed {
            out.push(format!(
                "{} {}: missed {}{} scheduled time(s) from {} to {} (not run late)",
                m.workflow,
                m.trigger,
                if m.more { "more than " } else { "" },
                m.count,
                m.first,
                m.last
            ));
        }
        for f in &shown {
            let head = format!(
                "{} {} at {}",
                f["workflow"].as_str().unwrap_or_default(),
                f["trigger"].as_str().unwrap_or_default(),
                f["at"].as_str().unwrap_or_default()
            );
            out.push(match f["outcome"].as_str() {
                Some("started") => format!(
                    "{head}: run {} {}",
                    f["runId"].as_str().unwrap_or_default(),
                    f["status"].as_str().unwrap_or("?")
                ),
                Some("skipped") => format!(
                    "{head}: skipped, the previous run{} is still running",
                    f["running"]
                        .as_str()
                        .map(|id| format!(" ({id})"))
                        .unwrap_or_default()
                ),
                _ => format!(
                    "{head}: not started: {}",
                    f["error"].as_str().unwrap_or_default()
                ),
            });
        }
        if out.is_empty() {
            out.push(format!("nothing due at {}", crate::triggers::rfc3339(now)));
        }
        out.join("\n")
    });
    Ok(if failed { 1 } else { 0 })
}

/// Runs scheduled workflows in this process, as `orch run` would.
struct CliLauncher {
    env: RunEnv,
}

impl Launcher for CliLauncher {
    fn launch(
        &self,
        workflow: &str,
        inputs: Map<String, Value>,
        _origin: Origin,
    ) -> BoxFuture<'static, Result<Launched, String>> {
        let env = self.env.clone();
        let name = workflow.to_string();
        let checked = {
            let catalog = RegistryCatalog::new(&env.repo, &env.registry);
            crate::workflow::check_workflow(&env.repo, &catalog, &name)
                .map_err(|e| e.to_string())
                .and_then(|_| env.repo.workflow(&name).map_err(|e| e.to_string()))
                .and_then(|wf| {
                    crate::workflow::validate_inputs(wf, &Value::Object(inputs.clone())).map_err(
                        |problems| {
                            format!("{}: inputs: {}", wf.file.display(), problems.join("; "))
                        },
                    )
                })
        };
        Box::pin(async move {
            checked?;
            // The run goes on in this process: `run-due` waits for it, so its id is known when
            // it ends, and the end is all `done` reports.
            let record = env.run_workflow(&name, inputs).await;
            let (tx, done) = tokio::sync::oneshot::channel();
            let _ = tx.send(record.status);
            Ok(Launched {
                id: record.id,
                done,
            })
        })
    }
}
