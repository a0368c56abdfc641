//! The workflows' `triggers:` in the server: schedules fire on the system clock, signed
//! webhooks arrive at `POST /hooks/<path>`, and `GET /api/v1/schedules` shows both. The
//! firing and checking rules live in [`crate::triggers`]; this is the HTTP and run-start glue.

use crate::method::StoreDataSource;
use crate::serve::api::runs::{Started, start_workflow};
use crate::serve::{ApiError, AppState};
use crate::triggers::{BoxFuture, Launched, Launcher, Origin, Scheduler, Webhooks};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use std::sync::{Arc, Weak};

/// What the server knows of the repository's triggers, loaded once at start.
pub struct Triggers {
    /// The schedules (empty when no workflow has one).
    pub scheduler: Scheduler,
    /// The webhooks by path.
    pub webhooks: Webhooks,
}

impl Triggers {
    /// The repository's triggers, with schedule state shared with `orch triggers run-due`.
    pub fn load(env: &crate::run::RunEnv) -> Result<Triggers, String> {
        let scheduler = Scheduler::load(&env.repo, crate::triggers::Zone::Local)?
            .with_run_lookup(crate::triggers::store_lookup(env.store.clone()));
        Ok(Triggers {
            scheduler,
            webhooks: Webhooks::from_repo(&env.repo),
        })
    }
}

/// Starts scheduled runs in this server. Holds the state weakly: a schedule never keeps a
/// stopped server alive.
pub struct ServeLauncher(pub Weak<AppState>);

impl Launcher for ServeLauncher {
    fn launch(
        &self,
        workflow: &str,
        inputs: Map<String, Value>,
        origin: Origin,
    ) -> BoxFuture<'static, Result<Launched, String>> {
        let started = match self.0.upgrade() {
            Some(state) => start_workflow(&state, workflow, inputs).map_err(|e| e.message),
            None => Err("the server is stopping".to_string()),
        };
        if let Ok(started) = &started {
            tracing::info!(workflow, run = %started.id, origin = ?origin, "trigger started a run");
        }
        Box::pin(async move {
            let Started { id, done, .. } = started?;
            Ok(Launched { id, done })
        })
    }
}

/// `GET /api/v1/schedules`: every schedule with its last and next run.
pub async fn schedules(State(state): State<Arc<AppState>>) -> Json<Value> {
    let now = chrono::Utc::now();
    Json(json!(state.triggers.scheduler.status(now)))
}

/// `POST /hooks/{*path}`: a signed webhook. A bad or missing signature is 401 and nothing
/// runs; a good one starts the hook's workflow with the body as `inputs.body` (202 with the
/// run's id).
pub async fn hook(
    State(state): State<Arc<AppState>>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let data = StoreDataSource::new(
        state.env.store.clone(),
        state.env.vault.clone(),
        &state.env.repo,
    );
    let headers = headers
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_bytes()));
    let (workflow, inputs) = state
        .triggers
        .webhooks
        .handle(&path, headers, &body, &data)
        .map_err(|e| {
            let status =
                StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            ApiError::new(status, e.message)
        })?;
    let id = start_workflow(&state, &workflow, inputs)?
        .recorded()
        .await?;
    tracing::info!(path, workflow, run = %id, "webhook started a run");
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "id": id, "workflow": workflow })),
    )
        .into_response())
}
