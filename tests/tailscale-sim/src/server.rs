//! The `Simulator` handle over the shared HTTP server (`sim-http`).

use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use sim_http::Server;

use crate::SimConfig;
use crate::api::{Api, Device, LoggedRequest};

/// Request bodies above this are refused (the device API takes no large bodies).
const MAX_BODY_BYTES: usize = 1024 * 1024;

type Shared = Arc<Mutex<Api>>;

fn lock(shared: &Shared) -> MutexGuard<'_, Api> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running Tailscale simulator; the server stops when this is dropped.
pub struct Simulator {
    server: Server,
    api: Shared,
}

impl Simulator {
    /// Starts the server on its own thread and tokio runtime and returns once it listens.
    pub fn start_blocking(config: SimConfig) -> io::Result<Simulator> {
        let api: Shared = Arc::new(Mutex::new(Api::new(&config.api_key, &config.tailnet)));
        let server = Server::start(
            config.port,
            "tailscale-sim",
            MAX_BODY_BYTES,
            Arc::clone(&api),
        )?;
        Ok(Simulator { server, api })
    }

    /// The base URL, `http://127.0.0.1:PORT` (the API is under `/api/v2`).
    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.server.addr().port()
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
