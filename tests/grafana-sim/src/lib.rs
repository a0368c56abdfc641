//! A Grafana HTTP API simulator for orch's tests: real paths and shapes over plain HTTP, state
//! in memory.
//!
//! It checks `Authorization: Bearer <token>` (a service-account token) on every call and
//! answers 401 `{"message":"Invalid API key"}` otherwise, as Grafana does. It keeps dashboards
//! (with versions), alerting provisioning (alert rules, contact points, the notification policy
//! tree) and annotations. Tests read its state with the getters, see every request in
//! `requests()` (never the token or the body) and make the next call fail with `fail_next`.
//!
//! ```no_run
//! use grafana_sim::{SimConfig, Simulator};
//!
//! let sim = Simulator::start_blocking(SimConfig { token: "glsa_x".into(), ..SimConfig::default() })?;
//! println!("Grafana at {}", sim.url());
//! # Ok::<(), std::io::Error>(())
//! ```

#![warn(missing_docs)]

mod api;
mod server;

pub use api::LoggedRequest;
pub use server::Simulator;

/// How to start a simulator (its `Debug` output hides the token).
#[derive(Clone)]
pub struct SimConfig {
    /// The one service-account token the simulator accepts.
    pub token: String,
    /// The port to bind on 127.0.0.1; 0 picks a free one.
    pub port: u16,
}

impl std::fmt::Debug for SimConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimConfig")
            .field("token", &"<redacted>")
            .field("port", &self.port)
            .finish()
    }
}

impl Default for SimConfig {
    /// Token `glsa_simulator_token`, a free port.
    fn default() -> SimConfig {
        SimConfig {
            token: "glsa_simulator_token".to_string(),
            port: 0,
        }
    }
}
