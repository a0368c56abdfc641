//! `orch serve`: the HTTP API (axum on the process's tokio runtime), bearer-token auth, live
//! run events as Server-Sent Events. One process, the same repository and store as the CLI:
//! runs started here are recorded like `orch run`'s and show in `orch runs list`.
//!
//! Shutting down (SIGTERM or SIGINT): the listener closes, runs in flight get up to the grace
//! period to finish, then are cancelled (recorded `cancelled`). Nothing is locked on disk, so
//! a server killed with SIGKILL leaves nothing that stops the next start; its runs are marked
//! `abandoned` (the run's process is gone) by the next start.

pub mod api;
pub mod auth;
pub mod dashboard;
pub mod hub;
pub mod triggers;

use crate::cli::CliError;
use crate::cli::context::Ctx;
use crate::run::RunEnv;
use crate::tokens::TokenStore;
use axum::Json;
use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use hub::Hub;
use serde_json::json;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Under `.orch/`: `serve/<pid>.pid` for each server running on this repository, and
/// `serve/cancel/<run id>` for each run `orch runs cancel` asks a server to cancel (a signal
/// would stop the whole server). Only hints: a file a killed server left stops nothing.
const SERVE_DIR: &str = "serve";

/// A request to a server to cancel one run; the file goes when this is dropped.
#[derive(Debug)]
pub struct CancelRequest(PathBuf);

impl Drop for CancelRequest {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// If `owner` is an `orch serve` of the repository whose state directory is
/// `orch_dir`, asks it to cancel run `id` and returns the request; `None` otherwise.
pub fn request_cancel(
    orch_dir: &std::path::Path,
    owner: &crate::store::RunOwner,
    id: &str,
) -> Result<Option<CancelRequest>, String> {
    let dir = orch_dir.join(SERVE_DIR);
    let pid = owner.pid;
    // The marker names the server's process exactly (start time, boot): a pid reused by
    // another process after a server was killed is not taken for the server.
    let marked = std::fs::read(dir.join(format!("{pid}.pid")))
        .ok()
        .and_then(|b| serde_json::from_slice::<crate::store::RunOwner>(&b).ok());
    if marked.as_ref() != Some(owner) {
        return Ok(None);
    }
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(format!("run id {id:?} is not a run id"));
    }
    let requests = dir.join("cancel");
    std::fs::create_dir_all(&requests)
        .map_err(|e| format!("cannot create {}: {e}", requests.display()))?;
    let path = requests.join(id);
    std::fs::write(&path, b"").map_err(|e| {
        format!(
            "cannot ask orch serve (pid {pid}) to cancel run {id}: {}: {e}",
            path.display()
        )
    })?;
    Ok(Some(CancelRequest(path)))
}

/// This server's `serve/<pid>.pid`, removed when the server returns.
struct ServerMarker(PathBuf);

impl ServerMarker {
    fn create(orch_dir: &std::path::Path) -> ServerMarker {
        let dir = orch_dir.join(SERVE_DIR);
        let path = dir.join(format!("{}.pid", std::process::id()));
        let me = serde_json::to_vec(&crate::run::current_owner()).unwrap_or_default();
        if let Err(e) = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, me)) {
            tracing::warn!(error = %e, "cannot mark the server; `orch runs cancel` of a served run stops the server");
        }
        ServerMarker(path)
    }
}

impl Drop for ServerMarker {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Cancels the runs in flight that `orch runs cancel` asked to (see [`request_cancel`]).
async fn watch_cancel_requests(orch_dir: PathBuf, hub: Hub) {
    let requests = orch_dir.join(SERVE_DIR).join("cancel");
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if hub.is_empty() {
            continue;
        }
        let Ok(entries) = std::fs::read_dir(&requests) else {
            continue;
        };
        for entry in entries.flatten() {
            if let Some(run) = entry.file_name().to_str().and_then(|id| hub.get(id)) {
                run.cancel.cancel();
            }
        }
    }
}

/// The hand-written OpenAPI 3.1 description of every route.
pub const OPENAPI: &str = include_str!("openapi.json");

/// How `orch serve` listens and stops.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The address to listen on (port 0: any free port; the real one is printed).
    pub listen: SocketAddr,
    /// PEM certificate chain and private key: serve HTTPS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// How long runs in flight may go on after SIGTERM/SIGINT before they are cancelled.
    pub grace: Duration,
    /// Also print the listening line as JSON on stdout.
    pub json: bool,
    /// Fire the workflows' schedules (`--no-schedules` turns it off).
    pub schedules: bool,
}

/// What every request handler shares.
pub struct AppState {
    /// The command context, with the repository and plugins loaded once.
    pub ctx: Ctx,
    /// What runs need; its observer feeds [`AppState::hub`].
    pub env: RunEnv,
    /// The API tokens (read again on every request, so a revoke takes effect at once).
    pub tokens: TokenStore,
    /// Runs in flight and their events.
    pub hub: Hub,
    /// Set once a signal asked the server to stop: no new runs.
    pub stopping: AtomicBool,
    /// The workflows' schedules and webhooks.
    pub triggers: triggers::Triggers,
}

/// An API error: `{"error": "..."}` with its status.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    /// An error with this status.
    pub fn new(status: StatusCode, message: impl std::fmt::Display) -> Self {
        ApiError {
            status,
            message: message.to_string(),
        }
    }
    /// 400.
    pub fn bad_request(message: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    /// 401.
    pub fn unauthorized(message: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }
    /// 403.
    pub fn forbidden(message: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }
    /// 404.
    pub fn not_found(message: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
    /// 500.
    pub fn internal(message: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
    /// The message said in the response.
    pub fn message(&self) -> &str {
        &self.message
    }
    /// A CLI error as the API says it: a usage error is 400, a missing thing 404, else 500.
    pub fn from_cli(e: CliError) -> Self {
        let missing = [
            "no run `",
            " has no ",
            "no resource",
            "unknown model",
            "no model",
        ]
        .iter()
        .any(|m| e.message.contains(m));
        let status = if e.code == 2 {
            StatusCode::BAD_REQUEST
        } else if missing {
            StatusCode::NOT_FOUND
        } else {
            StatusCode::INTERNAL_SERVER_ERROR
        };
        Self::new(status, e.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

async fn readyz() -> Json<serde_json::Value> {
    // The router serves only once the repository and plugins are loaded.
    Json(json!({"status": "ready"}))
}

async fn openapi() -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        OPENAPI,
    )
        .into_response()
}

async fn whoami(
    axum::extract::Extension(caller): axum::extract::Extension<auth::Caller>,
) -> Json<serde_json::Value> {
    let t = caller.0;
    Json(json!({"name": t.name, "scope": t.scope.as_str(), "workflows": t.workflows}))
}

/// One route: how it is matched, the OpenAPI paths that document it, and its handler.
pub struct Route {
    /// `get` or `post`, as OpenAPI spells it.
    pub method: &'static str,
    /// The axum path.
    pub path: &'static str,
    /// The OpenAPI paths it serves (a wildcard route serves several).
    pub documented_as: &'static [&'static str],
    handler: MethodRouter<Arc<AppState>>,
}

fn route(
    method: &'static str,
    path: &'static str,
    documented_as: &'static [&'static str],
    handler: MethodRouter<Arc<AppState>>,
) -> Route {
    Route {
        method,
        path,
        documented_as,
        handler,
    }
}

/// The routes that need no token.
pub fn public_routes() -> Vec<Route> {
    vec![
        route("get", "/healthz", &["/healthz"], get(healthz)),
        route("get", "/readyz", &["/readyz"], get(readyz)),
        // Signed with the hook's secret instead of a token (see crate::triggers::Webhooks).
        route(
            "post",
            "/hooks/{*path}",
            &["/hooks/{path}"],
            post(triggers::hook).layer(axum::extract::DefaultBodyLimit::max(
                crate::triggers::MAX_BODY_BYTES + 1,
            )),
        ),
        // Signed by Discord (Ed25519) instead of a token (see crate::chat).
        route(
            "post",
            "/chat/discord/interactions",
            &["/chat/discord/interactions"],
            post(crate::chat::interactions).layer(axum::extract::DefaultBodyLimit::max(
                crate::chat::MAX_BODY_BYTES + 1,
            )),
        ),
    ]
}

/// The routes under `/api/v1` (every one needs a token).
pub fn api_routes() -> Vec<Route> {
    use api::{catalog, data, eval, runs};
    vec![
        route(
            "get",
            "/api/v1/openapi.json",
            &["/api/v1/openapi.json"],
            get(openapi),
        ),
        route("get", "/api/v1/whoami", &["/api/v1/whoami"], get(whoami)),
        route("get", "/api/v1/runs", &["/api/v1/runs"], get(runs::list)),
        route("post", "/api/v1/runs", &["/api/v1/runs"], post(runs::start)),
        route(
            "get",
            "/api/v1/runs/{id}",
            &["/api/v1/runs/{id}"],
            get(runs::show),
        ),
        route(
            "post",
            "/api/v1/runs/{id}/cancel",
            &["/api/v1/runs/{id}/cancel"],
            post(runs::cancel),
        ),
        route(
            "get",
            "/api/v1/runs/{id}/events",
            &["/api/v1/runs/{id}/events"],
            get(runs::events),
        ),
        route(
            "get",
            "/api/v1/data/{model}",
            &["/api/v1/data/{model}"],
            get(data::list),
        ),
        route(
            "get",
            "/api/v1/data/{model}/{*name}",
            &[
                "/api/v1/data/{model}/{name}",
                "/api/v1/data/{model}/{name}/versions",
                "/api/v1/data/{model}/{name}/diff",
            ],
            get(data::resource),
        ),
        route(
            "get",
            "/api/v1/changes",
            &["/api/v1/changes"],
            get(data::changes),
        ),
        route(
            "get",
            "/api/v1/types",
            &["/api/v1/types"],
            get(catalog::types),
        ),
        route(
            "get",
            "/api/v1/types/{*name}",
            &["/api/v1/types/{name}"],
            get(catalog::type_),
        ),
        route(
            "get",
            "/api/v1/models",
            &["/api/v1/models"],
            get(catalog::models),
        ),
        route(
            "get",
            "/api/v1/models/{name}",
            &["/api/v1/models/{name}"],
            get(catalog::model),
        ),
        route(
            "get",
            "/api/v1/workflows",
            &["/api/v1/workflows"],
            get(catalog::workflows),
        ),
        route(
            "get",
            "/api/v1/workflows/{name}",
            &["/api/v1/workflows/{name}"],
            get(catalog::workflow),
        ),
        route("post", "/api/v1/eval", &["/api/v1/eval"], post(eval::eval)),
        route(
            "get",
            "/api/v1/schedules",
            &["/api/v1/schedules"],
            get(triggers::schedules),
        ),
    ]
}

fn add(router: Router<Arc<AppState>>, routes: Vec<Route>) -> Router<Arc<AppState>> {
    routes
        .into_iter()
        .fold(router, |r, route| r.route(route.path, route.handler))
}

/// The whole router: public health routes, and the API behind the token check.
pub fn router(state: Arc<AppState>) -> Router {
    let api = add(Router::new(), api_routes()).layer(axum::middleware::from_fn_with_state(
        state.clone(),
        auth::require_token,
    ));
    add(Router::new(), public_routes())
        .merge(api)
        .merge(dashboard::routes())
        .fallback(|| async { ApiError::not_found("no such route (see GET /api/v1/openapi.json)") })
        .with_state(state)
}

fn tls_acceptor(cert: &PathBuf, key: &PathBuf) -> Result<tokio_rustls::TlsAcceptor, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            format!(
                "--tls-cert {}: {e}; give a PEM certificate chain",
                cert.display()
            )
        })?;
    if certs.is_empty() {
        return Err(format!(
            "--tls-cert {}: no certificate in it; give a PEM certificate chain",
            cert.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("--tls-key {}: {e}; give a PEM private key", key.display()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("--tls-cert/--tls-key: {e}"))?;
    // The server speaks HTTP/1.1 only.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Resolves on the first SIGTERM or SIGINT.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            (Ok(mut int), Ok(mut term)) => {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
            }
            _ => std::future::pending::<()>().await,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Serves the API until SIGTERM/SIGINT, then lets runs in flight finish (up to the grace
/// period), cancels the rest and returns once every run is recorded.
pub async fn serve(options: ServeOptions, ctx: Ctx, mut env: RunEnv) -> Result<(), String> {
    let tls = match &options.tls {
        Some((cert, key)) => Some(tls_acceptor(cert, key)?),
        None => None,
    };
    // Runs a killed server left `running` are marked abandoned now, not at the first run.
    if let Err(e) = crate::run::reap_abandoned(&env.store) {
        ctx.printer
            .warn(&format!("could not check for abandoned runs: {e}"));
    }
    // For the stop messages, after `ctx` has gone to the request handlers.
    let printer = ctx.printer.clone();
    let hub = Hub::default();
    let publish = hub.clone();
    env.observer = Some(Arc::new(move |id: &str, event: &serde_json::Value| {
        publish.publish(id, event)
    }));
    let orch_dir = env.repo.orch_dir();
    let _marker = ServerMarker::create(&orch_dir);
    tokio::spawn(watch_cancel_requests(orch_dir.clone(), hub.clone()));
    let tokens = TokenStore::in_dir(&orch_dir);
    let loaded_triggers = triggers::Triggers::load(&env)?;
    let state = Arc::new(AppState {
        ctx,
        env,
        tokens,
        hub: hub.clone(),
        stopping: AtomicBool::new(false),
        triggers: loaded_triggers,
    });
    // Schedules fire until the server stops; times missed while it was down are reported now.
    let (stop_schedules, mut schedules_stopped) = tokio::sync::watch::channel(false);
    if options.schedules && !state.triggers.scheduler.is_empty() {
        // Reported before the server listens (the scheduler's own check then finds nothing).
        state.triggers.scheduler.missed_at_start(chrono::Utc::now());
        let scheduling = state.clone();
        let launcher = Arc::new(triggers::ServeLauncher(Arc::downgrade(&state)));
        tokio::spawn(async move {
            let stopped = async move {
                let _ = schedules_stopped.wait_for(|stopped| *stopped).await;
            };
            let clock = Arc::new(crate::triggers::SystemClock);
            scheduling
                .triggers
                .scheduler
                .run(launcher, clock, stopped)
                .await;
        });
    }
    let app = router(state.clone());
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", options.listen))?;
    let local = listener
        .local_addr()
        .map_err(|e| format!("cannot read the listening address: {e}"))?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    eprintln!("listening on {scheme}://{local}");
    if options.json {
        println!(
            "{}",
            json!({"listening": format!("{scheme}://{local}"), "address": local.to_string()})
        );
    }
    let stop = stop_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                // Answers and SSE events are small writes: without this, Nagle's algorithm
                // holds one back until the client's delayed ACK (~40 ms) arrives.
                let _ = stream.set_nodelay(true);
                let app = app.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let service = hyper_util::service::TowerToHyperService::new(app);
                    let builder = hyper_util::server::conn::auto::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    );
                    let _ = match tls {
                        Some(acceptor) => match acceptor.accept(stream).await {
                            Ok(s) => builder
                                .serve_connection_with_upgrades(hyper_util::rt::TokioIo::new(s), service)
                                .await,
                            Err(_) => return,
                        },
                        None => builder
                            .serve_connection_with_upgrades(hyper_util::rt::TokioIo::new(stream), service)
                            .await,
                    };
                });
            }
            () = &mut stop => break,
        }
    }
    drop(listener);
    state.stopping.store(true, Ordering::SeqCst);
    let _ = stop_schedules.send(true);
    let in_flight = hub.len();
    if in_flight > 0 {
        printer.note(&format!(
            "stopping: waiting up to {}s for {in_flight} run(s) in flight",
            options.grace.as_secs()
        ));
    }
    let all_ended = |hub: Hub| async move {
        for run in hub.in_flight() {
            run.wait_past(usize::MAX).await;
        }
    };
    let second = stop_signal();
    tokio::select! {
        _ = tokio::time::timeout(options.grace, all_ended(hub.clone())) => {}
        () = second => {}
    }
    if !hub.is_empty() {
        printer.note(&format!(
            "stopping: cancelling {} run(s) still in flight",
            hub.len()
        ));
        for run in hub.in_flight() {
            run.cancel.cancel();
        }
        all_ended(hub.clone()).await;
    }
    printer.note("stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_served_route_is_in_the_openapi_file() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).expect("openapi.json is JSON");
        assert_eq!(doc["openapi"], "3.1.0");
        let routes: Vec<Route> = public_routes().into_iter().chain(api_routes()).collect();
        let mut documented = 0;
        for route in &routes {
            for path in route.documented_as {
                assert!(
                    doc["paths"][path][route.method].is_object(),
                    "{} {path} is served but not in openapi.json",
                    route.method
                );
                documented += 1;
            }
        }
        let in_file: usize = doc["paths"]
            .as_object()
            .unwrap()
            .values()
            .map(|ops| ops.as_object().unwrap().len())
            .sum();
        assert_eq!(
            in_file, documented,
            "openapi.json documents a route nobody serves"
        );
    }
}
