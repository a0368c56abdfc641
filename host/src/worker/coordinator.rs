//! The coordinator's side: a step with `runsOn` is put in the queue instead of being run here,
//! and the coordinator waits for its result row. It also notices a worker that stopped renewing
//! its lease: the step goes back to the queue if its method only reads (read, list, converge),
//! and is marked `outcome unknown` otherwise.

use super::queue::{self, Connection, DONE_CHANNEL, READY_CHANNEL};
use crate::capabilities::LogLevel;
use crate::method::{MethodCall, MethodOutput, MethodRunner};
use crate::output::Event;
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
}

impl RemoteOutcome {
    fn failed(message: String) -> Self {
        RemoteOutcome {
            worker: None,
            unknown: false,
            result: Err(message),
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
    // The run's event stream shows where the step ran and what it wrote, as for a local step.
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
            queue::connect(&config, &[DONE_CHANNEL]).await.map(Arc::new)
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
            .query_one(
                "SELECT state, worker, result, error, lost_workers FROM orch_queue WHERE id = $1",
                &[&id],
            )
            .await
            .map_err(pg)?;
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
                });
            }
            "unknown" => {
                let error: Option<String> = row.get(3);
                return Ok(RemoteOutcome {
                    worker: lost.last().cloned(),
                    unknown: true,
                    result: Err(error.unwrap_or_else(|| "outcome unknown".to_string())),
                });
            }
            _ => {}
        }
        // A lease that ran out: the worker died or lost the database mid-call.
        let requeued = client
            .execute(
                "UPDATE orch_queue SET \
                   state = CASE WHEN kind IN ('read', 'list', 'converge') THEN 'ready' ELSE 'unknown' END, \
                   error = CASE WHEN kind IN ('read', 'list', 'converge') THEN NULL ELSE \
                     'outcome unknown: worker `' || worker || '` stopped renewing its lease while it ran this ' \
                     || kind || ' method, which may or may not have taken effect; it is not run again. \
                     Check the target, then run the workflow again' END, \
                   lost_workers = array_append(lost_workers, worker), \
                   worker = NULL, lease_until = NULL \
                 WHERE id = $1 AND state = 'running' AND lease_until < now()",
                &[&id],
            )
            .await
            .map_err(pg)?;
        if requeued > 0 {
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
