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
use tokio::net::TcpListener;

use crate::SimConfig;
use crate::api::{Api, ApiRequest, Device, LoggedRequest, Reply};

/// Request bodies above this are refused (the device API takes no large bodies).
const MAX_BODY_BYTES: usize = 1024 * 1024;

type Shared = Arc<Mutex<Api>>;

fn lock(shared: &Shared) -> MutexGuard<'_, Api> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running Tailscale simulator; the server stops when this is dropped.
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
        let api: Shared = Arc::new(Mutex::new(Api::new(&config.api_key, &config.tailnet)));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let served = Arc::clone(&api);
        let thread = std::thread::Builder::new()
            .name("tailscale-sim".to_string())
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

    /// The base URL, `http://127.0.0.1:PORT` (the API is under `/api/v2`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Every request in arrival order (method, path, query, auth scheme, status; never the key).
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

    /// Every device, by id.
    pub fn devices(&self) -> Vec<Device> {
        lock(&self.api).devices()
    }

    /// Replaces every device.
    pub fn set_devices(&self, devices: Vec<Device>) {
        lock(&self.api).set_devices(devices);
    }

    /// Adds (or replaces, by id) one device.
    pub fn add_device(&self, device: Device) {
        lock(&self.api).add_device(device);
    }

    /// Removes the devices with this host name; whether there was one.
    pub fn remove_device(&self, hostname: &str) -> bool {
        lock(&self.api).remove_device(hostname)
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
