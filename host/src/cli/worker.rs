//! `orch worker`: take steps from the PostgreSQL queue; `orch worker list`: the workers.

use super::{CliError, CmdResult, Ctx};
use crate::worker::{WorkerOptions, default_name, queue};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// `orch worker [--labels a,b] [--concurrency N] [--name X]`, or `orch worker list`.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    /// Labels of this worker: it takes the steps whose `runsOn` labels it all has.
    #[arg(long, value_delimiter = ',')]
    labels: Vec<String>,
    /// Steps this worker runs at once.
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// Name shown in `orch worker list` and in run records (default: host-pid).
    #[arg(long)]
    name: Option<String>,
    /// Seconds a step stays this worker's without a heartbeat (heartbeats every third of it).
    #[arg(long, default_value_t = 15)]
    lease_seconds: u64,
}

/// `orch worker` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Cmd {
    /// The workers that registered: labels, steps they run now, last heartbeat.
    List,
}

/// Runs `orch worker` or one of its subcommands.
pub async fn exec(args: Args, ctx: &Ctx) -> CmdResult {
    match args.cmd {
        Some(Cmd::List) => list(ctx).await,
        None => serve(args, ctx).await,
    }
}

async fn serve(args: Args, ctx: &Ctx) -> CmdResult {
    if args.lease_seconds < 3 {
        return Err(CliError::usage("--lease-seconds must be at least 3"));
    }
    let env = ctx.run_env().await?;
    let options = WorkerOptions {
        name: args.name.unwrap_or_else(default_name),
        labels: args.labels,
        concurrency: args.concurrency.max(1),
        lease: Duration::from_secs(args.lease_seconds),
    };
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{SignalKind, signal};
            if let Ok(mut term) = signal(SignalKind::terminate()) {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
                stop.store(true, Ordering::SeqCst);
            }
        });
    }
    crate::worker::process::run(env, options, stop)
        .await
        .map_err(CliError::failed)?;
    Ok(0)
}

async fn list(ctx: &Ctx) -> CmdResult {
    let repo = ctx.repo()?;
    let vault = ctx.vault(&repo)?;
    let config = queue::config(&repo, &vault).map_err(CliError::usage)?;
    let conn = queue::connect(&config, &[])
        .await
        .map_err(CliError::failed)?;
    let rows = conn
        .client
        .query(
            "SELECT w.name, w.labels, w.concurrency, \
               to_char(w.heartbeat AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), \
               w.stopped OR w.heartbeat < now() - make_interval(secs => w.lease_seconds), \
               coalesce((SELECT array_agg(q.run_id || ' ' || q.step ORDER BY q.id) FROM orch_queue q \
                         WHERE q.worker = w.name AND q.state = 'running'), '{}') \
             FROM orch_workers w ORDER BY w.name",
            &[],
        )
        .await
        .map_err(|e| CliError::failed(format!("cannot list the workers: {e}")))?;
    let workers: Vec<Value> = rows
        .iter()
        .map(|r| {
            let current: Vec<String> = r.get(5);
            let steps: Vec<Value> = current
                .iter()
                .map(|s| {
                    let (run, step) = s.split_once(' ').unwrap_or(("", s));
                    json!({"run": run, "step": step})
                })
                .collect();
            json!({
                "name": r.get::<_, String>(0),
                "labels": r.get::<_, Vec<String>>(1),
                "concurrency": r.get::<_, i32>(2),
                "lastHeartbeat": r.get::<_, String>(3),
                "connected": !r.get::<_, bool>(4),
                "steps": steps,
            })
        })
        .collect();
    let value = Value::Array(workers.clone());
    ctx.printer.result(&value, || {
        if workers.is_empty() {
            return "no workers have registered".to_string();
        }
        let mut out = String::from("NAME  LABELS  CONNECTED  LAST HEARTBEAT  STEPS\n");
        for w in &workers {
            let labels: Vec<&str> = w["labels"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let steps: Vec<&str> = w["steps"]
                .as_array()
                .map(|a| a.iter().filter_map(|s| s["step"].as_str()).collect())
                .unwrap_or_default();
            out.push_str(&format!(
                "{}  [{}]  {}  {}  {}\n",
                w["name"].as_str().unwrap_or(""),
                labels.join(","),
                if w["connected"] == true { "yes" } else { "no" },
                w["lastHeartbeat"].as_str().unwrap_or(""),
                if steps.is_empty() {
                    "-".to_string()
                } else {
                    steps.join(",")
                }
            ));
        }
        out.trim_end().to_string()
    });
    Ok(0)
}
