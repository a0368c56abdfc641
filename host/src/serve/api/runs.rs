//! `/api/v1/runs`: start a workflow or method run (202 with its id at once; it goes on in the
//! background), list, show, cancel, and stream a run's events (SSE).

use crate::cli::runs as cli_runs;
use crate::run::RunHandle;
use crate::serve::auth::Caller;
use crate::serve::{ApiError, AppState};
use crate::store::RunStatus;
use crate::tokens::Scope;
use axum::Json;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Body of `POST /api/v1/runs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartRun {
    workflow: Option<String>,
    model: Option<String>,
    method: Option<String>,
    #[serde(default)]
    inputs: Map<String, Value>,
}

/// `POST /api/v1/runs`. Answers 202 once the run's start record is committed, so the id it
/// returns is at once found by `GET /api/v1/runs/{id}` and by `orch runs show`.
pub async fn start(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    body: Result<Json<StartRun>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body.map_err(|e| {
        ApiError::bad_request(format!(
            "{}; send {{\"workflow\": NAME, \"inputs\": {{…}}}} or {{\"model\": NAME, \"method\": NAME, \"inputs\": {{…}}}}",
            e.body_text()
        ))
    })?;
    caller.require(Scope::Run, "starting a run")?;
    let started = match (body.workflow, body.model, body.method) {
        (Some(workflow), None, None) => {
            if !caller.0.may_run_workflow(&workflow) {
                return Err(ApiError::forbidden(format!(
                    "token `{}` may start only the workflows {}; not `{workflow}`",
                    caller.0.name,
                    caller.0.workflows.as_deref().unwrap_or_default().join(", ")
                )));
            }
            start_workflow(&state, &workflow, body.inputs)?
        }
        (None, Some(model), Some(method)) => {
            if !caller.0.may_run_method() {
                return Err(ApiError::forbidden(format!(
                    "token `{}` may start only workflows ({}); a method run needs a `run` token without --workflows or an `admin` token",
                    caller.0.name,
                    caller.0.workflows.as_deref().unwrap_or_default().join(", ")
                )));
            }
            start_method(&state, &model, &method, body.inputs)?
        }
        _ => {
            return Err(ApiError::bad_request(
                "give either \"workflow\" or both \"model\" and \"method\" (with \"inputs\")",
            ));
        }
    };
    let id = started.recorded().await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "id": id }))).into_response())
}

fn refuse_while_stopping(state: &AppState) -> Result<(), ApiError> {
    if state.stopping.load(Ordering::SeqCst) {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is shutting down; start the run again once it is back",
        ));
    }
    Ok(())
}

/// A run started in the background by [`start_workflow`] or [`start_method`].
pub(crate) struct Started {
    /// The run's id.
    pub id: String,
    /// Resolves with the run's final status (a dropped sender: the run's task ended early).
    pub done: tokio::sync::oneshot::Receiver<RunStatus>,
    /// Resolves once the run's start record is committed: `None`, or why it could not be.
    recorded: tokio::sync::oneshot::Receiver<Option<String>>,
}

impl Started {
    /// Waits until the run's start record is committed, then gives its id: from then on
    /// `GET /api/v1/runs/{id}` and `orch runs show` find the run.
    pub async fn recorded(self) -> Result<String, ApiError> {
        match self.recorded.await {
            Ok(None) => Ok(self.id),
            Ok(Some(why)) => Err(ApiError::internal(format!("run {}: {why}", self.id))),
            Err(_) => Err(ApiError::internal(format!(
                "run {} ended before its start was recorded; see the server's log",
                self.id
            ))),
        }
    }
}

/// A handle for a new run whose start record's commit is told to the returned receiver.
fn recorded_handle() -> (RunHandle, tokio::sync::oneshot::Receiver<Option<String>>) {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let tx = std::sync::Mutex::new(Some(tx));
    let handle = RunHandle {
        on_recorded: Some(Arc::new(move |why| {
            if let Some(tx) = tx.lock().unwrap_or_else(|p| p.into_inner()).take() {
                let _ = tx.send(why);
            }
        })),
        ..RunHandle::new()
    };
    (handle, rx)
}

/// Starts workflow `workflow` in the background after the checks `orch run` makes (the
/// workflow and its models check clean, inputs fit the schema, defaults applied); the caller's
/// rights are checked before. `POST /api/v1/runs`, schedules, webhooks and chat commands all
/// start workflows here.
pub(crate) fn start_workflow(
    state: &Arc<AppState>,
    workflow: &str,
    mut inputs: Map<String, Value>,
) -> Result<Started, ApiError> {
    refuse_while_stopping(state)?;
    let env = state.env.clone();
    let wf = env.repo.workflow(workflow).map_err(ApiError::not_found)?;
    crate::cli::workflow::check_before_run(&state.ctx, &env, workflow)
        .map_err(ApiError::from_cli)?;
    crate::workflow::apply_input_defaults(wf, &mut inputs);
    crate::workflow::validate_inputs(wf, &Value::Object(inputs.clone())).map_err(|problems| {
        ApiError::bad_request(format!(
            "{}: inputs: {}",
            wf.file.display(),
            problems.join("\n  ")
        ))
    })?;
    let (handle, recorded) = recorded_handle();
    let id = handle.id.clone();
    state.hub.register(&id, workflow, handle.cancel.clone());
    let ended = Ended(state.hub.clone(), id.clone());
    let (done_tx, done) = tokio::sync::oneshot::channel();
    let workflow = workflow.to_string();
    tokio::spawn(async move {
        let record = env.run_workflow_as(handle, &workflow, inputs, false).await;
        drop(ended);
        let _ = done_tx.send(record.status);
    });
    Ok(Started { id, done, recorded })
}

/// Starts method `method` of model `model` as a run of its own in the background, after the
/// checks `orch model method run` makes (the model exists, checks clean, and has the method);
/// the caller's rights are checked before. `POST /api/v1/runs` and chat commands start
/// method runs here.
pub(crate) fn start_method(
    state: &Arc<AppState>,
    model: &str,
    method: &str,
    inputs: Map<String, Value>,
) -> Result<Started, ApiError> {
    refuse_while_stopping(state)?;
    let env = state.env.clone();
    let def = env.repo.model(model).map_err(ApiError::not_found)?;
    if !def.methods.contains_key(method)
        && env
            .registry
            .get(&def.type_name)
            .ok()
            .is_none_or(|t| !t.description.methods.iter().any(|m| m.name == method))
    {
        return Err(ApiError::not_found(format!(
            "model `{model}` ({}) has no method `{method}` (see `GET /api/v1/types/{}`)",
            def.type_name, def.type_name
        )));
    }
    crate::workflow::check_model(&env.repo, model).map_err(ApiError::bad_request)?;
    let (handle, recorded) = recorded_handle();
    let id = handle.id.clone();
    state
        .hub
        .register(&id, &format!("{model}.{method}"), handle.cancel.clone());
    let ended = Ended(state.hub.clone(), id.clone());
    let (done_tx, done) = tokio::sync::oneshot::channel();
    let (model, method) = (model.to_string(), method.to_string());
    tokio::spawn(async move {
        let (record, _) = env
            .run_method_as(handle, &model, &method, inputs, false)
            .await;
        drop(ended);
        let _ = done_tx.send(record.status);
    });
    Ok(Started { id, done, recorded })
}

/// Takes a run out of the hub when its task ends, however it ends (a panic included), so
/// streams end and a shutdown does not wait for it forever.
struct Ended(crate::serve::hub::Hub, String);

impl Drop for Ended {
    fn drop(&mut self) {
        self.0.finish(&self.1);
    }
}

/// Query of `GET /api/v1/runs`.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    limit: Option<usize>,
}

/// `GET /api/v1/runs?limit=N`.
pub async fn list(
    State(state): State<Arc<AppState>>,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let shown =
        cli_runs::list(&state.env.store, query.limit.unwrap_or(20)).map_err(ApiError::from_cli)?;
    Ok(Json(shown.value))
}

/// `GET /api/v1/runs/{id}`.
pub async fn show(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    // A run is recorded before its id is handed out (see [`Started::recorded`]).
    let run = cli_runs::show(&state.env.store, &id).map_err(ApiError::from_cli)?;
    Ok(Json(serde_json::to_value(run).map_err(ApiError::internal)?))
}

/// `POST /api/v1/runs/{id}/cancel`: cancels a run this server runs (or a waiting run).
pub async fn cancel(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Run, "cancelling a run")?;
    if let Some(live) = state.hub.get(&id) {
        if !caller.0.may_run_workflow(&live.target) && !caller.0.may_run_method() {
            return Err(ApiError::forbidden(format!(
                "token `{}` may not cancel a run of `{}`",
                caller.0.name, live.target
            )));
        }
        live.cancel.cancel();
        return Ok((
            StatusCode::ACCEPTED,
            Json(json!({"id": id, "status": "cancelling"})),
        )
            .into_response());
    }
    let run = cli_runs::show(&state.env.store, &id).map_err(ApiError::from_cli)?;
    if !caller.0.may_run_workflow(&run.target) && !caller.0.may_run_method() {
        return Err(ApiError::forbidden(format!(
            "token `{}` may not cancel a run of `{}`",
            caller.0.name, run.target
        )));
    }
    match run.status {
        RunStatus::Waiting => {
            let who = format!("token {}", caller.0.name);
            let run = crate::run::cancel_waiting(&state.env.store, &run.id, &who)
                .map_err(ApiError::internal)?;
            Ok((
                StatusCode::ACCEPTED,
                Json(json!({"id": run.id, "status": run.status})),
            )
                .into_response())
        }
        RunStatus::Running => Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "run {} is run by another orch process, not this server; cancel it with `orch runs cancel {}`",
                run.id, run.id
            ),
        )),
        other => Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "run {} is {}: only a running or waiting run can be cancelled",
                run.id,
                other.as_str()
            ),
        )),
    }
}

fn sse_event(event: &Value) -> SseEvent {
    let name = event
        .get("event")
        .and_then(Value::as_str)
        .unwrap_or("message");
    SseEvent::default().event(name).data(event.to_string())
}

/// `GET /api/v1/runs/{id}/events`: the run's events so far, then live ones; ends after
/// `runFinished`. A run this server does not run is replayed from its record once it ended.
pub async fn events(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    if let Some(live) = state.hub.get(&id) {
        let stream =
            futures_util::stream::unfold((live, 0usize, false), |(live, seen, done)| async move {
                if done {
                    return None;
                }
                loop {
                    let (batch, ended) = live.events_from(seen);
                    if !batch.is_empty() {
                        let next = seen + batch.len();
                        let events: Vec<Result<SseEvent, Infallible>> =
                            batch.iter().map(|e| Ok(sse_event(e))).collect();
                        return Some((futures_util::stream::iter(events), (live, next, ended)));
                    }
                    if ended {
                        return None;
                    }
                    live.wait_past(seen).await;
                }
            });
        use futures_util::StreamExt as _;
        return Ok(Sse::new(stream.flatten())
            .keep_alive(axum::response::sse::KeepAlive::default())
            .into_response());
    }
    let store = state.env.store.clone();
    let mut run = cli_runs::show(&store, &id).map_err(ApiError::from_cli)?;
    // A run of another process: its events are recorded when it ends.
    while run.status == RunStatus::Running {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        run = cli_runs::show(&store, &id).map_err(ApiError::from_cli)?;
    }
    let events: Vec<Result<SseEvent, Infallible>> =
        run.events.iter().map(|e| Ok(sse_event(e))).collect();
    Ok(Sse::new(futures_util::stream::iter(events)).into_response())
}
