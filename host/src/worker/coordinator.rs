//! The coordinator's side: a step with `runsOn` is put in the queue instead of being run here,
//! and the coordinator waits for its result row. It also notices a worker that stopped renewing
//! its lease: the step goes back to the queue if its method only reads (read, list, converge),
//! and is marked `outcome unknown` otherwise.

use super::queue::{self, Connection, DONE_CHANNEL, READY_CHANNEL};
use crate::capabilities::LogLevel;
use crate::method::{MethodCall, MethodOutput, MethodRunner};
use crate::output::Event;
use crate::repo::DEFAULT_COORDINATOR_LEASE_SECONDS;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// The run's queue connection, made when its first `runsOn` step starts.
pub type QueueSlot = tokio::sync::OnceCell<Result<Arc<Connection>, String>>;

/// How often a waiting coordinator looks at its step without a wake-up (lease expiry).
const POLL: Duration = Duration::from_millis(500);

/// How a step sent to the workers ended.
pub struct RemoteOutcome {
    /// The worker that ran it last (or was running it when it was lost).
    pub worker: Option<String>,
    /// The worker was lost mid-call and the method might have changed something.
    pub unknown: bool,
    /// The method's output, or why it failed.
    pub result: Result<MethodOutput, String>,
    /// The plugin's log lines on the worker (redacted there).
    pub logs: Vec<(LogLevel, String)>,
}

impl RemoteOutcome {
    fn failed(message: String) -> Self {
        RemoteOutcome {
            worker: None,
            unknown: false,
            result: Err(message),
            logs: Vec::new(),
        }
    }
}

/// Sends `call` to a worker whose labels include `labels` and waits for its result.
pub async fn run_remote(
    runner: &MethodRunner,
    slot: &QueueSlot,
    labels: &[String],
    call: &MethodCall,
) -> RemoteOutcome {
    let outcome = match enqueue_and_wait(runner, slot, labels, call).await {
        Ok(outcome) => outcome,
        Err(message) => RemoteOutcome::failed(message),
    };
    // The run's event stream shows the step's log lines, where it ran and what it wrote, as
    // for a local step.
    for (level, message) in &outcome.logs {
        runner.events.emit(Event::Log {
            step: call.step.clone(),
            level: *level,
            message: message.clone(),
        });
    }
    if let Some(worker) = &outcome.worker {
        runner.events.emit(Event::Log {
            step: call.step.clone(),
            level: LogLevel::Info,
            message: format!("ran on worker `{worker}`"),
        });
    }
    if let Ok(out) = &outcome.result {
        for written in &out.resources {
            let Some((key, version)) = written.rsplit_once("@v") else {
                continue;
            };
            let (Some((spec, name)), Ok(version)) = (key.split_once('/'), version.parse()) else {
                continue;
            };
            runner.events.emit(Event::ResourceWritten {
                step: call.step.clone(),
                model: call.model.clone(),
                spec: spec.to_string(),
                name: name.to_string(),
                version,
            });
        }
    }
    outcome
}

async fn enqueue_and_wait(
    runner: &MethodRunner,
    slot: &QueueSlot,
    labels: &[String],
    call: &MethodCall,
) -> Result<RemoteOutcome, String> {
    let def = runner.repo.model(&call.model).map_err(|e| e.to_string())?;
    let provided = runner
        .registry
        .get(&def.type_name)
        .map_err(|e| format!("{}: type: {e}", def.file.display()))?;
    let manifest = &provided.plugin.manifest;
    let kind = runner.kind_of(&call.model, &call.method).ok_or_else(|| {
        format!(
            "model `{}` (type {}) has no method `{}`",
            call.model, def.type_name, call.method
        )
    })?;
    let payload = json!({
        "inputs": call.inputs,
        "workflowInputs": call.workflow_inputs.json(),
        "self": call.self_vars,
        "dryRun": call.dry_run,
        "tags": call.tags,
    });
    // Nothing the coordinator resolved from its vault may reach the database: a worker
    // resolves vault values itself, from its own vault, when the definition's expressions run.
    if let Some(found) = runner.events.redactor().find_in_json(&payload) {
        return Err(format!(
            "step {}: its inputs hold {} (at {}), and steps with runsOn go to the workers \
             through the database, which never holds a secret; nothing was queued. Take the \
             secret with vault.get in the model's definition instead: the worker resolves it \
             from its own vault",
            call.step, found.source, found.path
        ));
    }
    let connection = slot
        .get_or_init(|| async {
            let config = queue::config(&runner.repo, &runner.vault)?;
            let connection = Arc::new(queue::connect(&config, &[DONE_CHANNEL]).await?);
            let lease = runner
                .repo
                .config
                .datastore
                .as_ref()
                .map_or(DEFAULT_COORDINATOR_LEASE_SECONDS, |d| {
                    d.coordinator_lease_seconds
                });
            register(&connection, &runner.run_id, lease).await?;
            Ok(connection)
        })
        .await
        .clone()?;
    // A version must never name a run the store has no record of.
    let started = runner.started.clone();
    if let Ok(Some(e)) = tokio::task::spawn_blocking(move || started.wait()).await {
        return Err(e);
    }
    let client = &connection.client;
    let pg = |e: tokio_postgres::Error| format!("step {}: the queue failed: {e}", call.step);
    let labels: Vec<String> = labels.to_vec();
    let id: i64 = client
        .query_one(
            "WITH queued AS (INSERT INTO orch_queue (run_id, step, model, method, kind, labels, \
             plugin, plugin_version, call) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             RETURNING id) SELECT id, pg_notify($10, id::text) FROM queued",
            &[
                &runner.run_id,
                &call.step,
                &call.model,
                &call.method,
                &kind,
                &labels,
                &manifest.id,
                &manifest.version,
                &payload.to_string(),
                &READY_CHANNEL,
            ],
        )
        .await
        .map_err(pg)?
        .get(0);
    // A run cancelled while its step waits takes the step back out of the queue.
    let mut guard = Withdraw {
        connection: Some(connection.clone()),
        id,
    };
    let outcome = wait(&connection, id, call).await;
    guard.connection = None;
    connection.forget(&id.to_string());
    // The run record keeps the outcome; the finished row goes, so the queue does not grow.
    if outcome.is_ok() {
        let _ = connection
            .client
            .execute(
                "DELETE FROM orch_queue WHERE id = $1 AND state IN ('done', 'unknown')",
                &[&id],
            )
            .await;
    }
    outcome
}

/// Says in `orch_coordinators` that this run's coordinator is alive, and keeps saying it every
/// third of `lease` seconds while the run holds its queue connection; then removes the row.
/// Workers take a run's steps only while its row is fresh, and drop the steps of a run whose
/// coordinator stopped renewing it (see `SWEEP` in the worker).
async fn register(connection: &Arc<Connection>, run_id: &str, lease: u64) -> Result<(), String> {
    let seconds = i32::try_from(lease).unwrap_or(i32::MAX);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    connection
        .client
        .execute(
            "INSERT INTO orch_coordinators (run_id, host, pid, lease_seconds) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (run_id) DO UPDATE SET host = $2, pid = $3, \
             lease_seconds = $4, heartbeat = now()",
            &[&run_id, &host, &(std::process::id() as i32), &seconds],
        )
        .await
        .map_err(|e| format!("cannot register the run as a coordinator in the queue: {e}"))?;
    let connection = connection.clone();
    let run_id = run_id.to_string();
    let every = Duration::from_millis(lease.saturating_mul(1000) / 3);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            // The run let go of its queue connection: it ended.
            if Arc::strong_count(&connection) == 1 || connection.client.is_closed() {
                break;
            }
            let renewed = connection
                .client
                .execute(
                    "UPDATE orch_coordinators SET heartbeat = now() WHERE run_id = $1",
                    &[&run_id],
                )
                .await;
            if let Err(e) = renewed {
                tracing::warn!(error = %e, "renewing the coordinator's lease failed");
            }
        }
        let _ = connection
            .client
            .batch_execute(&format!(
                "DELETE FROM orch_queue WHERE run_id = {id} AND state IN ('ready', 'done', \
                 'unknown'); DELETE FROM orch_coordinators WHERE run_id = {id}",
                id = quote(&run_id)
            ))
            .await;
    });
    Ok(())
}

/// A SQL string literal of `text`.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The log lines a worker kept with a step's result (`[{level, message}]`).
fn parse_logs(text: Option<String>) -> Vec<(LogLevel, String)> {
    #[derive(serde::Deserialize)]
    struct Line {
        level: LogLevel,
        message: String,
    }
    text.and_then(|t| serde_json::from_str::<Vec<Line>>(&t).ok())
        .unwrap_or_default()
        .into_iter()
        .map(|l| (l.level, crate::output::escape_line(&l.message).into_owned()))
        .collect()
}

/// Withdraws a queued step that no worker took yet when its coordinator stops waiting.
struct Withdraw {
    connection: Option<Arc<Connection>>,
    id: i64,
}

impl Drop for Withdraw {
    fn drop(&mut self) {
        let (Some(connection), Ok(runtime)) = (
            self.connection.take(),
            tokio::runtime::Handle::try_current(),
        ) else {
            return;
        };
        let id = self.id;
        connection.forget(&id.to_string());
        runtime.spawn(async move {
            let _ = connection
                .client
                .execute(
                    "DELETE FROM orch_queue WHERE id = $1 AND state = 'ready'",
                    &[&id],
                )
                .await;
        });
    }
}

/// Waits for queued step `id` to end (or its worker to be lost).
async fn wait(
    connection: &Connection,
    id: i64,
    call: &MethodCall,
) -> Result<RemoteOutcome, String> {
    let client = &connection.client;
    let pg = |e: tokio_postgres::Error| format!("step {}: the queue failed: {e}", call.step);
    // Woken by the worker's notification for this step (a stored permit: none is lost).
    let mine = connection.waiter(&id.to_string());
    loop {
        let row = client
            .query_opt(
                "SELECT state, worker, result, error, lost_workers, logs FROM orch_queue \
                 WHERE id = $1",
                &[&id],
            )
            .await
            .map_err(pg)?
            .ok_or_else(|| {
                format!(
                    "step {}: its row left the queue (id {id}) before it ended: the workers \
                     dropped this run's steps because its coordinator had not renewed its lease \
                     for datastore.coordinatorLeaseSeconds (was this process stopped or cut off \
                     from the database?); check the target, then run the workflow again",
                    call.step
                )
            })?;
        let logs = parse_logs(row.get(5));
        let state: String = row.get(0);
        let worker: Option<String> = row.get(1);
        let lost: Vec<String> = row.get(4);
        match state.as_str() {
            "done" => {
                let result: Option<String> = row.get(2);
                let error: Option<String> = row.get(3);
                let result = match (error, result) {
                    (Some(e), _) => Err(e),
                    (None, Some(text)) => {
                        let v: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
                        Ok(MethodOutput {
                            output: v["output"].clone(),
                            resources: v["resources"]
                                .as_array()
                                .map(|a| {
                                    a.iter()
                                        .filter_map(|r| r.as_str().map(str::to_string))
                                        .collect()
                                })
                                .unwrap_or_default(),
                        })
                    }
                    (None, None) => Err("the worker returned no result".to_string()),
                };
                return Ok(RemoteOutcome {
                    worker,
                    unknown: false,
                    result,
                    logs,
                });
            }
            "unknown" => {
                let error: Option<String> = row.get(3);
                return Ok(RemoteOutcome {
                    worker: lost.last().cloned(),
                    unknown: true,
                    result: Err(error.unwrap_or_else(|| "outcome unknown".to_string())),
                    logs,
                });
            }
            _ => {}
        }
        // A lease that ran out: the worker died or lost the database mid-call. A read, list or
        // converge step runs again elsewhere, even one whose writes were committed (repeating
        // it is safe: unchanged writes store no new version). Any other `committed` step's
        // writes are stored, so it never runs again; only its output was lost.
        let requeued = client
            .query(
                "UPDATE orch_queue SET \
                   state = CASE WHEN kind IN ('read', 'list', 'converge') THEN 'ready' \
                     WHEN state = 'committed' THEN 'done' ELSE 'unknown' END, \
                   error = CASE WHEN kind IN ('read', 'list', 'converge') THEN NULL \
                     WHEN state = 'committed' THEN \
                     'worker `' || worker || '` stopped renewing its lease after it committed \
                     this step''s writes (they are stored) and before it returned the step''s \
                     output, so the step fails and is not run again; run the workflow again' \
                     ELSE \
                     'outcome unknown: worker `' || worker || '` stopped renewing its lease while it ran this ' \
                     || kind || ' method, which may or may not have taken effect; it is not run again. \
                     Check the target, then run the workflow again' END, \
                   lost_workers = CASE WHEN state = 'committed' \
                     AND kind NOT IN ('read', 'list', 'converge') THEN lost_workers \
                     ELSE array_append(lost_workers, worker) END, \
                   worker = CASE WHEN state = 'committed' \
                     AND kind NOT IN ('read', 'list', 'converge') THEN worker END, \
                   lease_until = NULL \
                 WHERE id = $1 AND state IN ('running', 'committed') AND lease_until < now() \
                 RETURNING state",
                &[&id],
            )
            .await
            .map_err(pg)?
            .first()
            .map(|r| r.get::<_, String>(0) == "ready")
            .unwrap_or(false);
        if requeued {
            client
                .execute(
                    "SELECT pg_notify($1, $2)",
                    &[&READY_CHANNEL, &id.to_string()],
                )
                .await
                .map_err(pg)?;
            continue;
        }
        if connection.client.is_closed() {
            return Err(format!(
                "step {}: the connection to the queue was lost while the step was queued or \
                 running (queue id {id})",
                call.step
            ));
        }
        let _ = tokio::time::timeout(POLL, mine.notified()).await;
    }
}
