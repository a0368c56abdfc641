//! `orch worker`: takes ready steps whose labels it has from the queue (`FOR UPDATE SKIP
//! LOCKED`, so two workers never take the same step), runs each method call with its own
//! repository, plugins, grants and vault, writes the versions through the shared store, and
//! puts the result in the step's row. A heartbeat renews its leases; a worker that stops
//! renewing them loses its steps (see the coordinator).

use super::queue::{self, Connection, DONE_CHANNEL, READY_CHANNEL};
use crate::capabilities::LogLevel;
use crate::capabilities::{KnownHosts, SshSessionPool};
use crate::expr::{Evaluator, SharedInputs};
use crate::method::{MethodCall, MethodRunner};
use crate::output::{Event, EventSink, Printer};
use crate::run::{RunEnv, StartRecord};
use crate::store::QueueClaim;
use crate::vault::Redactor;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How a worker runs.
#[derive(Clone, Debug)]
pub struct WorkerOptions {
    /// Its name in `orch worker list` and in run records.
    pub name: String,
    /// Its labels: it takes steps whose `runsOn` labels it all has.
    pub labels: Vec<String>,
    /// Steps it runs at once.
    pub concurrency: usize,
    /// How long a step stays its own without a heartbeat.
    pub lease: Duration,
}

/// The default worker name: `host-pid`.
pub fn default_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "worker".to_string());
    format!("{host}-{}", std::process::id())
}

/// One step taken from the queue.
struct Taken {
    id: i64,
    run_id: String,
    step: String,
    model: String,
    method: String,
    plugin: String,
    plugin_version: String,
    call: String,
}

/// Runs the worker until `stop` is set (then it finishes the steps it holds).
pub async fn run(env: RunEnv, options: WorkerOptions, stop: Arc<AtomicBool>) -> Result<(), String> {
    if !env.store.is_postgres() {
        return Err(
            "`orch worker` needs the PostgreSQL datastore: add `datastore: { postgres: \
             postgres://user@host:5432/db }` to orch.yaml (see README, Workers)"
                .to_string(),
        );
    }
    let config = queue::config(&env.repo, &env.vault)?;
    let listener = Arc::new(queue::connect(&config, &[READY_CHANNEL]).await?);
    let heartbeat = queue::connect(&config, &[]).await?;
    let seconds = options.lease.as_secs().max(1) as i32;
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    let concurrency = options.concurrency.max(1) as i32;
    heartbeat
        .client
        .execute(
            "INSERT INTO orch_workers (name, labels, concurrency, host, pid, lease_seconds) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name) DO UPDATE SET labels = $2, \
             concurrency = $3, host = $4, pid = $5, lease_seconds = $6, started_at = now(), \
             heartbeat = now(), stopped = false",
            &[
                &options.name,
                &options.labels,
                &concurrency,
                &host,
                &(std::process::id() as i32),
                &seconds,
            ],
        )
        .await
        .map_err(|e| format!("cannot register worker `{}`: {e}", options.name))?;
    env.printer.note(&format!(
        "worker `{}` ready: labels [{}], concurrency {}",
        options.name,
        options.labels.join(", "),
        concurrency
    ));
    // The heartbeat: renews the worker's row and the leases of the steps it holds.
    let beat = {
        let name = options.name.clone();
        let every = options.lease / 3;
        tokio::spawn(async move {
            loop {
                let renewed = heartbeat
                    .client
                    .batch_execute(&format!(
                        "UPDATE orch_workers SET heartbeat = now() WHERE name = {name}; \
                         UPDATE orch_queue SET lease_until = now() + interval '{seconds} seconds' \
                         WHERE worker = {name} AND state IN ('running', 'committed')",
                        name = quote(&name)
                    ))
                    .await;
                if let Err(e) = renewed {
                    tracing::warn!(error = %e, "heartbeat failed");
                }
                if let Err(e) = heartbeat.client.batch_execute(SWEEP).await {
                    tracing::warn!(error = %e, "sweeping the steps of ended coordinators failed");
                }
                tokio::time::sleep(every).await;
            }
        })
    };
    let mut slots = Vec::new();
    for _ in 0..concurrency {
        let (env, options, stop, listener) =
            (env.clone(), options.clone(), stop.clone(), listener.clone());
        let config = config.clone();
        slots.push(tokio::spawn(async move {
            let own = queue::connect(&config, &[]).await?;
            slot(&env, &options, &stop, &listener, &own).await
        }));
    }
    let mut result = Ok(());
    for s in slots {
        match s.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => result = Err(e),
            Err(e) => result = Err(format!("a worker slot ended: {e}")),
        }
    }
    beat.abort();
    let _ = listener
        .client
        .execute(
            "UPDATE orch_workers SET stopped = true WHERE name = $1",
            &[&options.name],
        )
        .await;
    result
}

/// A coordinator is alive while its last heartbeat is younger than its lease.
const COORDINATOR_ALIVE: &str = "EXISTS (SELECT 1 FROM orch_coordinators c WHERE c.run_id = \
     q.run_id AND c.heartbeat > now() - make_interval(secs => c.lease_seconds))";

/// Drops what coordinators that stopped renewing their lease (killed, or cut off) left in the
/// queue: steps no worker took (never run now), and results nobody will read. A step a worker
/// is running stays until that worker ends it, or its own lease runs out too.
const SWEEP: &str = "DELETE FROM orch_queue q WHERE (q.state IN ('ready', 'done', 'unknown') \
     OR (q.state IN ('running', 'committed') AND q.lease_until < now())) \
     AND NOT EXISTS (SELECT 1 FROM orch_coordinators c WHERE c.run_id = q.run_id \
       AND c.heartbeat > now() - make_interval(secs => c.lease_seconds)); \
     DELETE FROM orch_coordinators c WHERE c.heartbeat < now() - make_interval(secs => \
     c.lease_seconds) AND NOT EXISTS (SELECT 1 FROM orch_queue q WHERE q.run_id = c.run_id)";

/// A SQL string literal of `text`.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

async fn slot(
    env: &RunEnv,
    options: &WorkerOptions,
    stop: &AtomicBool,
    listener: &Connection,
    own: &Connection,
) -> Result<(), String> {
    let seconds = options.lease.as_secs().max(1) as i32;
    let ssh = SshSessionPool::new(KnownHosts::in_dir(&env.repo.orch_dir()));
    while !stop.load(Ordering::SeqCst) {
        let woken = listener.wake.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let row = own
            .client
            .query_opt(
                &format!(
                    "UPDATE orch_queue SET state = 'running', worker = $1, \
                     attempts = attempts + 1, lease_until = now() + make_interval(secs => $3) \
                     WHERE id = (SELECT q.id FROM orch_queue q WHERE q.state = 'ready' \
                                 AND q.labels <@ $2 AND {COORDINATOR_ALIVE} \
                                 ORDER BY q.id LIMIT 1 FOR UPDATE OF q SKIP LOCKED) \
                     RETURNING id, run_id, step, model, method, plugin, plugin_version, call"
                ),
                &[&options.name, &options.labels, &f64::from(seconds)],
            )
            .await
            .map_err(|e| format!("cannot take a step from the queue: {e}"))?;
        let Some(row) = row else {
            let _ = tokio::time::timeout(Duration::from_secs(2), woken).await;
            continue;
        };
        let taken = Taken {
            id: row.get(0),
            run_id: row.get(1),
            step: row.get(2),
            model: row.get(3),
            method: row.get(4),
            plugin: row.get(5),
            plugin_version: row.get(6),
            call: row.get(7),
        };
        let logs = Logs::default();
        let (result, error) = match execute(env, options, &ssh, &taken, &logs).await {
            Ok(v) => (Some(v.to_string()), None),
            Err(e) => (None, Some(e)),
        };
        let logs = logs.to_json();
        // The step's lines are out before its result is: whoever sees the result and then
        // this worker's output finds them there.
        crate::output::progress::flush();
        // Only while the step is still this worker's: a lost lease gave it to someone else
        // (and then none of its writes was committed either, see `QueueClaim`).
        let recorded = own
            .client
            .query(
                "WITH done AS (UPDATE orch_queue SET state = 'done', result = $3, error = $4, \
                 logs = $6, finished_at = now(), lease_until = NULL \
                 WHERE id = $1 AND worker = $2 AND state IN ('running', 'committed') \
                 RETURNING id) SELECT pg_notify($5, id::text) FROM done",
                &[
                    &taken.id,
                    &options.name,
                    &result,
                    &error,
                    &DONE_CHANNEL,
                    &logs,
                ],
            )
            .await
            .map_err(|e| format!("cannot record the result of step {}: {e}", taken.step))?;
        if recorded.is_empty() {
            env.printer.warn(&format!(
                "step {} (run {}): its result is discarded: {}",
                taken.step,
                taken.run_id,
                error.unwrap_or_else(|| format!(
                    "worker `{}` no longer holds queued step {}: its lease ran out and the \
                     coordinator took the step back",
                    options.name, taken.id
                ))
            ));
        }
    }
    Ok(())
}

/// The log lines of one step, kept (redacted) for its coordinator's event stream.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<Value>>>);

impl Logs {
    /// At most this many lines of one step go back to the coordinator (all show here).
    const MAX: usize = 1_000;

    fn push(&self, level: LogLevel, message: &str) {
        let mut lines = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match lines.len() {
            n if n < Self::MAX => lines.push(json!({"level": level, "message": message})),
            n if n == Self::MAX => lines.push(json!({
                "level": LogLevel::Warn,
                "message": format!(
                    "more than {} log lines: the rest are in the worker's own output",
                    Self::MAX
                ),
            })),
            _ => {}
        }
    }

    fn to_json(&self) -> Option<String> {
        let lines = self.0.lock().unwrap_or_else(|p| p.into_inner());
        (!lines.is_empty()).then(|| Value::Array(lines.clone()).to_string())
    }
}

/// Runs one taken step with this worker's repository, plugins and vault.
async fn execute(
    env: &RunEnv,
    options: &WorkerOptions,
    ssh: &SshSessionPool,
    taken: &Taken,
    logs: &Logs,
) -> Result<Value, String> {
    let def = env.repo.model(&taken.model).map_err(|e| {
        format!(
            "worker `{}` cannot run step {}: {e} (its repository lacks the model)",
            options.name, taken.step
        )
    })?;
    let have = env.registry.get(&def.type_name).ok().map(|p| {
        (
            p.plugin.manifest.id.clone(),
            p.plugin.manifest.version.clone(),
        )
    });
    if have.as_ref() != Some(&(taken.plugin.clone(), taken.plugin_version.clone())) {
        let has = match have {
            Some((id, version)) => format!("it has plugin `{id}` {version}"),
            None => format!("it has no plugin providing type {}", def.type_name),
        };
        return Err(format!(
            "worker `{}` refused step {}: it needs plugin `{}` {} for type {}, and {has}; \
             install that version on the worker (orch plugin install) or give the step \
             runsOn labels of a worker that has it",
            options.name, taken.step, taken.plugin, taken.plugin_version, def.type_name
        ));
    }
    let payload: Value = serde_json::from_str(&taken.call).map_err(|e| e.to_string())?;
    let object = |key: &str| payload[key].as_object().cloned().unwrap_or_default();
    let tags: crate::store::Tags =
        serde_json::from_value(payload["tags"].clone()).unwrap_or_default();
    let call = MethodCall {
        model: taken.model.clone(),
        method: taken.method.clone(),
        step: taken.step.clone(),
        inputs: object("inputs"),
        workflow_inputs: SharedInputs::new(object("workflowInputs")),
        self_vars: object("self"),
        dry_run: payload["dryRun"].as_bool().unwrap_or(false),
        tags,
    };
    let printer: Printer = env.printer.clone();
    let redactor = Redactor::default();
    let kept = logs.clone();
    // Shown here, and (already redacted by the sink) sent back with the step's result.
    let events = EventSink::new(
        redactor,
        Arc::new(move |e| {
            printer.event(e);
            if let Event::Log { level, message, .. } = e {
                kept.push(*level, message);
            }
        }),
    );
    let runner = MethodRunner {
        repo: env.repo.clone(),
        registry: env.registry.clone(),
        store: env.store.clone(),
        evaluator: Arc::new(Evaluator::new()),
        vault: env.vault.clone(),
        events,
        run_id: taken.run_id.clone(),
        ssh: ssh.clone(),
        // The coordinator recorded the run before it queued the step.
        started: StartRecord::committed(),
        tags: env.tags.clone(),
        claim: Some(QueueClaim {
            id: taken.id,
            worker: options.name.clone(),
        }),
    };
    let out = runner.run(&call).await.map_err(|e| e.to_string())?;
    Ok(json!({"output": out.output, "resources": out.resources}))
}
