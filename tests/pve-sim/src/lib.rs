//! A Proxmox VE API simulator: real `/api2/json` paths and shapes over HTTPS, state in memory.
//!
//! It issues tickets and CSRF tokens, checks them (or API tokens) on every call, lists and
//! changes VMs, and runs tasks whose status is `running` on the first poll and `stopped` from
//! the second on — deterministic, never time-based. A task's change (VM started, created,
//! deleted, reconfigured) becomes visible when the task is first reported stopped. This is the
//! Proxmox part of "Testing with real parts" in `DESIGN.md`.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use pve_sim::{Fleet, SimConfig, Simulator};
//!
//! let sim = Simulator::start(SimConfig { fleet: Fleet::generated(100), ..SimConfig::default() }).await?;
//! println!("{} pinned by {}", sim.url(), sim.cert_sha256());
//! # Ok(()) }
//! ```
//!
//! From synchronous code, `Simulator::start_blocking` runs the server on its own thread.

#![warn(missing_docs)]

mod api;
mod auth;
mod fleet;
mod network;
mod server;
mod tasks;
mod vm;

pub use fleet::{Fleet, VmSeed};
pub use server::Simulator;

/// How to start a simulator (its `Debug` output hides the password and token secrets).
#[derive(Clone)]
pub struct SimConfig {
    /// The node name, as in `/nodes/{node}` and in UPIDs.
    pub node: String,
    /// The one user that can log in, with its realm: `root@pam`.
    pub username: String,
    /// That user's password.
    pub password: String,
    /// API tokens as (`USER@REALM!TOKENID`, secret).
    pub api_tokens: Vec<(String, String)>,
    /// The VMs the node starts with.
    pub fleet: Fleet,
    /// The port to bind on 127.0.0.1; 0 picks a free one.
    pub port: u16,
}

impl std::fmt::Debug for SimConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let token_ids: Vec<&str> = self.api_tokens.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("SimConfig")
            .field("node", &self.node)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("api_tokens", &token_ids)
            .field("fleet", &format_args!("{} VMs", self.fleet.len()))
            .field("port", &self.port)
            .finish()
    }
}

impl Default for SimConfig {
    fn default() -> SimConfig {
        SimConfig {
            node: "keeb-dev-02".to_string(),
            username: "root@pam".to_string(),
            password: "simulator-password".to_string(),
            api_tokens: Vec::new(),
            fleet: Fleet::reference(),
            port: 0,
        }
    }
}
