//! `GET /api/v1/types`, `/models`, `/workflows`: as `orch type list|describe`, `orch model
//! list|show` and `orch workflow graph` give them, with each workflow's inputs schema.

use crate::cli::{model as cli_model, type_ as cli_type};
use crate::graph::WorkflowGraph;
use crate::repo::Repo;
use crate::serve::{ApiError, AppState};
use crate::workflow::Workflow;
use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Value, json};
use std::sync::Arc;

/// `GET /api/v1/types`.
pub async fn types(State(state): State<Arc<AppState>>) -> Json<Value> {
    Json(Value::Array(cli_type::list(&state.env.registry)))
}

/// `GET /api/v1/types/{*name}` (type names hold a `/`, e.g. `proxmox/vm`).
pub async fn type_(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    cli_type::describe(&state.env.registry, &name)
        .map(Json)
        .map_err(|e| ApiError::not_found(e.message))
}

/// `GET /api/v1/models`.
pub async fn models(State(state): State<Arc<AppState>>) -> Json<Value> {
    Json(Value::Array(cli_model::list(&state.env.repo)))
}

/// `GET /api/v1/models/{name}`.
pub async fn model(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    cli_model::show(&state.env.repo, &name)
        .map(Json)
        .map_err(|e| ApiError::not_found(e.message))
}

/// A workflow's inputs as JSON Schema (an object with no properties when it takes none).
fn inputs_schema(wf: &Workflow) -> Value {
    wf.inputs
        .clone()
        .unwrap_or_else(|| json!({"type": "object", "properties": {}}))
}

/// `GET /api/v1/workflows` → `[{"name", "description", "inputs"}]`.
pub async fn workflows(State(state): State<Arc<AppState>>) -> Json<Value> {
    Json(workflow_list(&state.env.repo))
}

/// Every workflow's name, description and inputs schema (also `orch mcp`'s `list_workflows`).
pub(crate) fn workflow_list(repo: &Repo) -> Value {
    repo.workflows
        .values()
        .map(|w| json!({"name": w.name, "description": w.description, "inputs": inputs_schema(w)}))
        .collect()
}

/// `GET /api/v1/workflows/{name}`: jobs, steps and the DAG as `orch workflow graph --json`,
/// plus `inputs` and `triggers`.
pub async fn workflow(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let wf = state
        .env
        .repo
        .workflow(&name)
        .map_err(ApiError::not_found)?;
    workflow_detail(&state.env.repo, wf)
        .map(Json)
        .map_err(ApiError::bad_request)
}

/// One workflow's graph, description, inputs schema and triggers (also `orch mcp`'s
/// `show_workflow`).
pub(crate) fn workflow_detail(repo: &Repo, wf: &Workflow) -> Result<Value, String> {
    let graph = WorkflowGraph::of(repo, &wf.name).map_err(|e| e.to_string())?;
    let mut value = serde_json::to_value(&graph).map_err(|e| e.to_string())?;
    let written = serde_json::to_value(wf).unwrap_or_default();
    if let Some(fields) = value.as_object_mut() {
        fields.insert("description".into(), json!(wf.description));
        fields.insert("inputs".into(), inputs_schema(wf));
        fields.insert(
            "triggers".into(),
            written.get("triggers").cloned().unwrap_or(json!([])),
        );
    }
    Ok(value)
}
