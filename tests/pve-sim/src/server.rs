//! The HTTPS server: a self-signed certificate, hyper over rustls, and the `Simulator` handle.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{AbortHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

use crate::api::{Api, ApiError, ApiRequest, JSON, Reply};
use crate::{SimConfig, WorldChange};

/// The admin path for world changes, outside `/api2/json`.
pub(crate) const CHANGE_PATH: &str = "/_sim/change";

/// Request bodies above this are refused; PVE's own limit is in the same range.
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// A client that connects but never finishes the TLS handshake is dropped after this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// State shared by the server tasks and the `Simulator` handle.
struct Shared {
    api: Mutex<Api>,
    log_requests: AtomicBool,
}

impl Shared {
    fn api(&self) -> MutexGuard<'_, Api> {
        // A panic while holding the lock cannot leave the API half-updated in a way that
        // matters to tests, so keep serving rather than cascade the panic.
        self.api.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// How a `Simulator` stops its server.
#[derive(Debug)]
enum Stopper {
    /// Server task on the caller's runtime: abort it.
    Task(AbortHandle),
    /// Server on its own thread and runtime: tell it to stop, then join it.
    Thread {
        stop: Option<tokio::sync::oneshot::Sender<()>>,
        thread: Option<JoinHandle<()>>,
    },
}

/// A running Proxmox VE API simulator; the server stops when this is dropped.
pub struct Simulator {
    addr: SocketAddr,
    cert_sha256: String,
    shared: Arc<Shared>,
    stopper: Stopper,
}

/// Generates a self-signed certificate for `localhost` and `127.0.0.1` and a TLS config using it.
fn tls_config() -> io::Result<(ServerConfig, Vec<u8>)> {
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .map_err(io::Error::other)?;
    let mut subject = rcgen::DistinguishedName::new();
    subject.push(rcgen::DnType::CommonName, "localhost");
    // The organisation fields PVE puts in its node certificates.
    subject.push(rcgen::DnType::OrganizationName, "PVE Cluster Node");
    subject.push(
        rcgen::DnType::OrganizationalUnitName,
        "Proxmox Virtual Environment",
    );
    params.distinguished_name = subject;
    let key = rcgen::KeyPair::generate().map_err(io::Error::other)?;
    let cert = params.self_signed(&key).map_err(io::Error::other)?;
    let der = cert.der().to_vec();
    // An explicit provider, so nothing depends on which crypto backend another crate installed.
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(der.clone())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .map_err(io::Error::other)?;
    // pveproxy speaks HTTP/1.1 only.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((config, der))
}

impl Simulator {
    /// Starts the server on the current tokio runtime and returns once it is listening.
    pub async fn start(config: SimConfig) -> io::Result<Simulator> {
        let (tls, der) = tls_config()?;
        let listener = TcpListener::bind(("127.0.0.1", config.port)).await?;
        let addr = listener.local_addr()?;
        let cert_sha256 = hex::encode(Sha256::digest(&der));
        let shared = Arc::new(Shared {
            api: Mutex::new(Api::new(&config, &cert_sha256)),
            log_requests: AtomicBool::new(false),
        });
        let acceptor = TlsAcceptor::from(Arc::new(tls));
        let server = tokio::spawn(serve(listener, acceptor, Arc::clone(&shared)));
        Ok(Simulator {
            addr,
            cert_sha256,
            shared,
            stopper: Stopper::Task(server.abort_handle()),
        })
    }

    /// Starts the server on its own thread and tokio runtime, for synchronous callers.
    pub fn start_blocking(config: SimConfig) -> io::Result<Simulator> {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("pve-sim".to_string())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("pve-sim-worker")
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(error) => {
                        let _ = ready_tx.send(Err(error));
                        return;
                    }
                };
                runtime.block_on(async move {
                    match Simulator::start(config).await {
                        Ok(simulator) => {
                            let parts = (
                                simulator.addr,
                                simulator.cert_sha256.clone(),
                                Arc::clone(&simulator.shared),
                            );
                            let _ = ready_tx.send(Ok(parts));
                            // Either a stop signal or the handle being dropped ends the wait.
                            let _ = stop_rx.await;
                            drop(simulator);
                        }
                        Err(error) => {
                            let _ = ready_tx.send(Err(error));
                        }
                    }
                });
            })?;
        let started = ready_rx
            .recv()
            .unwrap_or_else(|_| Err(io::Error::other("the simulator thread exited early")));
        match started {
            Ok((addr, cert_sha256, shared)) => Ok(Simulator {
                addr,
                cert_sha256,
                shared,
                stopper: Stopper::Thread {
                    stop: Some(stop_tx),
                    thread: Some(thread),
                },
            }),
            Err(error) => {
                let _ = thread.join();
                Err(error)
            }
        }
    }

    /// The base URL, `https://127.0.0.1:PORT` (the API is under `/api2/json`).
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Hex SHA-256 of the leaf certificate's DER, for certificate pinning.
    pub fn cert_sha256(&self) -> String {
        self.cert_sha256.clone()
    }

    /// Makes every ticket issued so far invalid, so the next request with one gets 401.
    pub fn expire_tickets(&self) {
        self.shared.api().expire_tickets();
    }

    /// How many requests the server has received.
    pub fn request_count(&self) -> usize {
        self.shared.api().request_count()
    }

    /// `METHOD /path` of every request in arrival order (percent-decoded, no query, no bodies).
    pub fn requests(&self) -> Vec<String> {
        self.shared.api().requests()
    }

    /// The requests that may change something, in arrival order: `requests()` without `GET`
    /// and without logins (`POST /api2/json/access/ticket`). Empty after a no-op apply.
    pub fn writes(&self) -> Vec<String> {
        self.shared.api().writes()
    }

    /// `running` or `stopped` for the VM PVE lists under `name`.
    pub fn vm_status(&self, name: &str) -> Option<String> {
        self.shared.api().vm_status(name)
    }

    /// The IPv4 address the guest agent of VM `name` currently reports, if any.
    pub fn vm_ip(&self, name: &str) -> Option<String> {
        self.shared.api().vm_ip(name)
    }

    /// `running` or `stopped` for guest `vmid` (VM or container), `None` if there is none.
    pub fn guest_status(&self, vmid: u32) -> Option<String> {
        self.shared.api().guest_status(vmid)
    }

    /// The config of guest `vmid` (VM or container) key by key as PVE stores it, without
    /// `digest`; `None` if there is none (a clone or create appears once its task stops).
    pub fn guest_config(&self, vmid: u32) -> Option<std::collections::BTreeMap<String, String>> {
        self.shared.api().guest_config(vmid)
    }

    /// Changes the simulated world at once, as `POST /_sim/change` does; the error says why
    /// the change cannot be made.
    pub fn change(&self, change: WorldChange) -> Result<(), String> {
        self.shared.api().change(change)
    }

    /// Writes one line per request to stderr while `on` (the binary's `-v`).
    pub fn log_requests(&self, on: bool) {
        self.shared.log_requests.store(on, Ordering::Relaxed);
    }

    /// Stops the server and waits for its thread, if it has one.
    pub fn shutdown(self) {
        drop(self);
    }
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator")
            .field("url", &self.url())
            .field("cert_sha256", &self.cert_sha256)
            .finish_non_exhaustive()
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        match &mut self.stopper {
            Stopper::Task(handle) => handle.abort(),
            Stopper::Thread { stop, thread } => {
                if let Some(stop) = stop.take() {
                    let _ = stop.send(());
                }
                if let Some(thread) = thread.take() {
                    let _ = thread.join();
                }
            }
        }
    }
}

/// Accepts connections until aborted; aborting drops the listener and every connection task.
async fn serve(listener: TcpListener, acceptor: TlsAcceptor, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    connections.spawn(connection(stream, peer, acceptor.clone(), Arc::clone(&shared)));
                }
                // Out of file descriptors and the like: back off instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    shared: Arc<Shared>,
) {
    let _ = stream.set_nodelay(true);
    let Ok(Ok(tls)) = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await else {
        return;
    };
    let service = service_fn(move |request| {
        let shared = Arc::clone(&shared);
        async move { Ok::<_, Infallible>(respond(&shared, peer, request).await) }
    });
    let _ = http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(tls), service)
        .await;
}

async fn respond(
    shared: &Shared,
    peer: SocketAddr,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            shared.api().record(parts.method.as_str(), parts.uri.path());
            return to_response(
                ApiError::new(413, "request body too large or unreadable").into_reply(),
            );
        }
    };
    if parts.uri.path() == CHANGE_PATH {
        return to_response(admin_change(shared, peer, parts.method.as_str(), &body));
    }
    let header = |name: header::HeaderName| {
        parts
            .headers
            .get(name)
            .and_then(|value| value.to_str().ok())
    };
    let api_request = ApiRequest {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query(),
        content_type: header(header::CONTENT_TYPE),
        cookies: parts
            .headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .collect(),
        authorization: header(header::AUTHORIZATION),
        csrf_token: parts
            .headers
            .get("csrfpreventiontoken")
            .and_then(|value| value.to_str().ok()),
        body: &body,
    };
    let reply = shared.api().handle(&api_request);
    if shared.log_requests.load(Ordering::Relaxed) {
        eprintln!(
            "pve-sim: {} {} -> {} {}",
            parts.method,
            parts.uri.path(),
            reply.status,
            reply.reason
        );
    }
    to_response(reply)
}

/// `POST /_sim/change` with a JSON `WorldChange` or a list of them (applied in order, stopping
/// at the first that fails): 200 `{"data":null}`, or an error whose message says what is wrong.
/// Loopback peers only; not logged in `requests()`.
fn admin_change(shared: &Shared, peer: SocketAddr, method: &str, body: &[u8]) -> Reply {
    if !peer.ip().is_loopback() {
        return ApiError::new(403, "the admin API answers loopback clients only").into_reply();
    }
    if method != "POST" {
        return ApiError::new(
            405,
            format!("{CHANGE_PATH} takes POST with a JSON world change, not {method}"),
        )
        .into_reply();
    }
    let is_list = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
    let parsed = if is_list {
        serde_json::from_slice::<Vec<WorldChange>>(body)
    } else {
        serde_json::from_slice::<WorldChange>(body).map(|change| vec![change])
    };
    let changes = match parsed {
        Ok(changes) => changes,
        Err(error) => {
            return ApiError::new(
                400,
                format!("{CHANGE_PATH}: the body is not a world change ({error}); see tests/pve-sim/README.md"),
            )
            .into_reply();
        }
    };
    let mut api = shared.api();
    let outcome = changes
        .into_iter()
        .enumerate()
        .try_for_each(|(index, change)| {
            api.change(change).map_err(|message| {
                if is_list {
                    format!("change {index} of the list: {message}")
                } else {
                    message
                }
            })
        });
    drop(api);
    match outcome {
        Ok(()) => Reply {
            status: 200,
            reason: "OK".to_string(),
            body: b"{\"data\":null}".to_vec(),
            set_cookie: None,
            content_type: JSON,
        },
        Err(message) => ApiError::new(400, format!("{CHANGE_PATH}: {message}")).into_reply(),
    }
}

fn to_response(reply: Reply) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(reply.body)));
    *response.status_mut() =
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    // pveproxy puts the error message in the status line, e.g. "HTTP/1.1 401 No ticket".
    if let Ok(reason) = hyper::ext::ReasonPhrase::try_from(reply.reason) {
        response.extensions_mut().insert(reason);
    }
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(reply.content_type),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("max-age=0"));
    headers.insert(
        header::SERVER,
        HeaderValue::from_static("pve-api-daemon/3.0"),
    );
    if let Some(cookie) = reply
        .set_cookie
        .and_then(|cookie| HeaderValue::try_from(cookie).ok())
    {
        headers.insert(header::SET_COOKIE, cookie);
    }
    response
}
