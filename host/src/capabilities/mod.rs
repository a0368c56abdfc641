//! The host side of each WIT import. Each capability owns its grant check, its per-call state
//! and its host-trait implementation, so adding one is a new file, not a change across the tree.

pub mod data;
pub mod egress;
pub mod grants;
pub mod http;
pub mod log;
pub mod pinning;
pub mod ssh;
mod ssh_known_hosts;
mod ssh_session;

pub use data::DataCapability;
pub use http::HttpCapability;
pub use log::{LogCapability, LogLevel, LogSink};
pub use ssh::{KnownHosts, SshCapability, SshSessionPool};

use crate::runtime::bindings::orch::plugin::types;

/// The `types` interface has no functions; its host trait is empty.
impl types::Host for DataCapability {}
