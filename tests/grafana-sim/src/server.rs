//! The HTTP server (hyper, HTTP/1.1) and the `Simulator` handle.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;

use crate::SimConfig;
use crate::api::{Api, ApiRequest, LoggedRequest, Reply};

/// Request bodies above this are refused (a large dashboard is a few hundred KB).
const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

type Shared = Arc<Mutex<Api>>;

fn lock(shared: &Shared) -> MutexGuard<'_, Api> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running Grafana simulator; the server stops when this is dropped.
pub struct Simulator {
    addr: SocketAddr,
    api: Shared,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Simulator {
    /// Starts the server on its own thread and tokio runtime and returns once it listens.
    pub fn start_blocking(config: SimConfig) -> io::Result<Simulator> {
        let std_listener = std::net::TcpListener::bind(("127.0.0.1", config.port))?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let api: Shared = Arc::new(Mutex::new(Api::new(&config.token)));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let served = Arc::clone(&api);
        let thread = std::thread::Builder::new()
            .name("grafana-sim".to_string())
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = TcpListener::from_std(std_listener) else {
                        return;
                    };
                    tokio::select! {
                        _ = serve(listener, served) => {}
                        _ = stop_rx => {}
                    }
                });
            })?;
        Ok(Simulator {
            addr,
            api,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// The base URL, `http://127.0.0.1:PORT` (the API is under `/api`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Every request in arrival order (method, path, query, status; never token or body).
    pub fn requests(&self) -> Vec<LoggedRequest> {
        lock(&self.api).requests()
    }

    /// The requests that may change something: `requests()` without `GET`.
    pub fn writes(&self) -> Vec<LoggedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.method != "GET")
            .collect()
    }

    /// The stored JSON of dashboard `uid` (with its `id` and `version`), if any.
    pub fn dashboard(&self, uid: &str) -> Option<Value> {
        lock(&self.api).dashboard(uid)
    }

    /// The uids of every dashboard, sorted.
    pub fn dashboard_uids(&self) -> Vec<String> {
        lock(&self.api).dashboard_uids()
    }

    /// Every provisioned alert rule, by uid.
    pub fn alert_rules(&self) -> Vec<Value> {
        lock(&self.api).alert_rules()
    }

    /// Every contact point, by uid (a fresh simulator has `grafana-default-email`).
    pub fn contact_points(&self) -> Vec<Value> {
        lock(&self.api).contact_points()
    }

    /// The notification policy tree.
    pub fn policies(&self) -> Value {
        lock(&self.api).policies()
    }

    /// Every annotation, oldest first.
    pub fn annotations(&self) -> Vec<Value> {
        lock(&self.api).annotations()
    }

    /// The next authenticated request is answered with `status` and changes nothing.
    pub fn fail_next(&self, status: u16) {
        lock(&self.api).fail_next(status);
    }
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator")
            .field("url", &self.url())
            .finish_non_exhaustive()
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn serve(listener: TcpListener, api: Shared) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let api = Arc::clone(&api);
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let api = Arc::clone(&api);
                async move { Ok::<_, Infallible>(respond(&api, request).await) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn respond(api: &Shared, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return to_response(Reply {
                status: 413,
                body: serde_json::json!({"message": "request body too large"}),
            });
        }
    };
    let request = ApiRequest {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query(),
        authorization: parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok()),
        body: &body,
    };
    let reply = lock(api).handle(&request);
    to_response(reply)
}

fn to_response(reply: Reply) -> Response<Full<Bytes>> {
    let bytes = serde_json::to_vec(&reply.body).unwrap_or_default();
    let mut response = Response::new(Full::new(Bytes::from(bytes)));
    *response.status_mut() =
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
