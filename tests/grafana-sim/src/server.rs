//! The `Simulator` handle over the shared HTTP server (`sim-http`).

use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde_json::Value;
use sim_http::Server;

use crate::SimConfig;
use crate::api::{Api, LoggedRequest};

/// Request bodies above this are refused (a large dashboard is a few hundred KB).
const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

type Shared = Arc<Mutex<Api>>;

fn lock(shared: &Shared) -> MutexGuard<'_, Api> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running Grafana simulator; the server stops when this is dropped.
pub struct Simulator {
    server: Server,
    api: Shared,
}

impl Simulator {
    /// Starts the server on its own thread and tokio runtime and returns once it listens.
    pub fn start_blocking(config: SimConfig) -> io::Result<Simulator> {
        let api: Shared = Arc::new(Mutex::new(Api::new(&config.token)));
        let server = Server::start(config.port, "grafana-sim", MAX_BODY_BYTES, Arc::clone(&api))?;
        Ok(Simulator { server, api })
    }

    /// The base URL, `http://127.0.0.1:PORT` (the API is under `/api`).
    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.server.addr().port()
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
