//! `GET /api/v1/data/...` and `/api/v1/changes`: as `orch data list|get|versions|diff|changes
//! --json`.

use crate::cli::data as cli_data;
use crate::serve::{ApiError, AppState};
use axum::Json;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;

/// `GET /api/v1/data/{model}`.
pub async fn list(
    State(state): State<Arc<AppState>>,
    Path(model): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let repo = state.ctx.load_repo().map_err(ApiError::from_cli)?;
    let shown = cli_data::list(
        &repo,
        &state.env.store,
        Some(&model),
        false,
        &Default::default(),
    )
    .map_err(ApiError::from_cli)?;
    Ok(Json(shown.value))
}

/// Query of a resource route.
#[derive(Debug, Deserialize)]
pub struct ResourceQuery {
    version: Option<u64>,
    from: Option<u64>,
    to: Option<u64>,
}

/// `GET /api/v1/data/{model}/{*name}`: `name` (or `spec/name`), then `/versions` or `/diff`.
pub async fn resource(
    State(state): State<Arc<AppState>>,
    Path((model, rest)): Path<(String, String)>,
    Query(query): Query<ResourceQuery>,
) -> Result<Json<Value>, ApiError> {
    let (path, view) = match rest.rsplit_once('/') {
        Some((path, "versions")) => (path, "versions"),
        Some((path, "diff")) => (path, "diff"),
        _ => (rest.as_str(), "get"),
    };
    let (spec, name) = match path.split_once('/') {
        Some((spec, name)) => (Some(spec.to_string()), name),
        None => (None, path),
    };
    let repo = state.ctx.load_repo().map_err(ApiError::from_cli)?;
    let (ctx, store) = (&state.ctx, &state.env.store);
    let shown = match view {
        "versions" => cli_data::versions(ctx, &repo, store, &model, name, spec).await,
        "diff" => cli_data::diff(ctx, &repo, store, &model, name, query.from, query.to, spec).await,
        _ => cli_data::get(ctx, &repo, store, &model, name, query.version, spec).await,
    }
    .map_err(ApiError::from_cli)?;
    Ok(Json(shown.value))
}

/// Query of `/api/v1/changes`.
#[derive(Debug, Deserialize)]
pub struct ChangesQuery {
    since: Option<String>,
    model: Option<String>,
}

/// `GET /api/v1/changes[?since=…&model=…]`.
pub async fn changes(
    State(state): State<Arc<AppState>>,
    Query(query): Query<ChangesQuery>,
) -> Result<Json<Value>, ApiError> {
    let repo = state.ctx.load_repo().map_err(ApiError::from_cli)?;
    let shown = cli_data::changes(
        &state.ctx,
        &repo,
        &state.env.store,
        query.model,
        query.since,
    )
    .await
    .map_err(ApiError::from_cli)?;
    Ok(Json(shown.value))
}
