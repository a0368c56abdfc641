//! `POST /api/v1/eval`: a CEL expression against the current data, as `orch eval --json`
//! (admin only: an expression can read any vault value; the value comes back redacted).

use crate::serve::auth::Caller;
use crate::serve::{ApiError, AppState};
use crate::tokens::Scope;
use axum::Json;
use axum::extract::{Extension, State};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::sync::Arc;

/// Body of `POST /api/v1/eval`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalBody {
    expression: String,
    #[serde(default)]
    inputs: Map<String, Value>,
}

/// `POST /api/v1/eval` → `{"value": …}`.
pub async fn eval(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    body: Result<Json<EvalBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Scope::Admin, "eval")?;
    let Json(body) = body.map_err(|e| {
        ApiError::bad_request(format!("{}; send {{\"expression\": \"…\"}}", e.body_text()))
    })?;
    let repo = state.ctx.load_repo().map_err(ApiError::from_cli)?;
    let value = crate::cli::eval::evaluate(&state.ctx, &repo, &body.expression, body.inputs)
        .map_err(|e| ApiError::bad_request(e.message))?;
    Ok(Json(json!({ "value": value })))
}
