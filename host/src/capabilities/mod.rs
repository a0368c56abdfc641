//! The host side of each WIT import, one folder per capability (`http/`, `ssh/`, `data/`,
//! `log/`). Each folder owns its per-call state and its host-trait implementation; grant rules
//! share one module ([`grant_rules`]) and one address guard ([`egress`]). Everything is registered in
//! [`add_to_linker`], so adding a capability is a new folder plus one line there.

mod compat_v0_1;
pub mod data;
pub mod egress;
pub mod grant_rules;
pub mod http;
pub mod log;
pub mod ssh;

pub use data::DataCapability;
pub use http::HttpCapability;
pub use log::{LogCapability, LogLevel, LogSink};
pub use ssh::{KnownHosts, SshCapability, SshSessionPool};

use crate::runtime::wit::v0_1::orch::plugin as v0_1;
use crate::runtime::wit::v0_2::orch::plugin as v0_2;
use wasmtime::component::{HasSelf, Linker};

/// The `types` interface has no functions; its host trait is empty.
impl v0_2::types::Host for DataCapability {}

/// What a call is granted; built by the method runner from the manifest, orch.yaml and the call.
pub struct CallCapabilities {
    /// Logging.
    pub log: LogCapability,
    /// The calling model's resources.
    pub data: DataCapability,
    /// Outbound HTTP.
    pub http: HttpCapability,
    /// SSH sessions (from the run's pool).
    pub ssh: SshCapability,
}

impl CallCapabilities {
    /// No capabilities at all (describe() gets these).
    pub fn none() -> Self {
        CallCapabilities {
            log: LogCapability::to_tracing(),
            data: DataCapability::none(),
            http: HttpCapability::none(),
            ssh: SshCapability::none(),
        }
    }
}

/// A store's state that carries a call's capabilities.
pub trait CapabilityHost: Send + 'static {
    /// The capabilities granted to the call this store runs.
    fn capabilities(&mut self) -> &mut CallCapabilities;
}

/// Adds every capability's imports, in every contract version the host speaks, to `linker`:
/// the one place capabilities are registered. 0.1 imports are served by the 0.2
/// implementations through `compat_v0_1`'s mapping.
pub fn add_to_linker<T: CapabilityHost>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    v0_2::types::add_to_linker::<T, HasSelf<DataCapability>>(linker, |s| {
        &mut s.capabilities().data
    })?;
    v0_2::log::add_to_linker::<T, HasSelf<LogCapability>>(linker, |s| &mut s.capabilities().log)?;
    v0_2::data::add_to_linker::<T, HasSelf<DataCapability>>(linker, |s| {
        &mut s.capabilities().data
    })?;
    v0_2::http::add_to_linker::<T, HasSelf<HttpCapability>>(linker, |s| {
        &mut s.capabilities().http
    })?;
    v0_2::ssh::add_to_linker::<T, HasSelf<SshCapability>>(linker, |s| &mut s.capabilities().ssh)?;

    v0_1::types::add_to_linker::<T, HasSelf<DataCapability>>(linker, |s| {
        &mut s.capabilities().data
    })?;
    v0_1::log::add_to_linker::<T, HasSelf<LogCapability>>(linker, |s| &mut s.capabilities().log)?;
    v0_1::data::add_to_linker::<T, HasSelf<DataCapability>>(linker, |s| {
        &mut s.capabilities().data
    })?;
    v0_1::http::add_to_linker::<T, HasSelf<HttpCapability>>(linker, |s| {
        &mut s.capabilities().http
    })?;
    v0_1::ssh::add_to_linker::<T, HasSelf<SshCapability>>(linker, |s| &mut s.capabilities().ssh)?;
    Ok(())
}
