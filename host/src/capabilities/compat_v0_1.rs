//! `orch:plugin@0.1.0` served by the 0.2 implementations: each 0.1 import converts its
//! arguments to 0.2 types, calls the capability's 0.2 host trait and converts the answer back.
//! No capability logic lives here.

use super::{DataCapability, HttpCapability, LogCapability, SshCapability};
use crate::runtime::wit::convert;
use crate::runtime::wit::v0_1::orch::plugin as old;
use crate::runtime::wit::v0_2::orch::plugin as new;
use wasmtime::component::Resource;

/// The 0.1 `types` interface has no functions.
impl old::types::Host for DataCapability {}

impl old::log::Host for LogCapability {
    async fn log(&mut self, level: old::log::Level, message: String) -> wasmtime::Result<()> {
        new::log::Host::log(self, convert::level_up(level), message).await
    }
}

impl old::data::Host for DataCapability {
    async fn write_resource(
        &mut self,
        spec: String,
        name: String,
        attributes: String,
    ) -> wasmtime::Result<Result<u64, old::types::Error>> {
        let r = new::data::Host::write_resource(self, spec, name, attributes).await?;
        Ok(r.map_err(convert::error_down))
    }

    async fn read_resource(
        &mut self,
        spec: String,
        name: String,
    ) -> wasmtime::Result<Result<Option<String>, old::types::Error>> {
        let r = new::data::Host::read_resource(self, spec, name).await?;
        Ok(r.map_err(convert::error_down))
    }

    async fn list_resources(
        &mut self,
        spec: String,
    ) -> wasmtime::Result<Result<Vec<String>, old::types::Error>> {
        let r = new::data::Host::list_resources(self, spec).await?;
        Ok(r.map_err(convert::error_down))
    }
}

impl old::http::Host for HttpCapability {
    async fn send(
        &mut self,
        request: old::http::Request,
    ) -> wasmtime::Result<Result<old::http::Response, old::types::Error>> {
        let r = new::http::Host::send(self, convert::request_up(request)).await?;
        Ok(r.map(convert::response_down).map_err(convert::error_down))
    }
}

/// The same session handle under the other version's resource type: both index the one
/// session table the 0.2 implementation keeps.
fn session_up(s: &Resource<old::ssh::Session>) -> Resource<new::ssh::Session> {
    if s.owned() {
        Resource::new_own(s.rep())
    } else {
        Resource::new_borrow(s.rep())
    }
}

impl old::ssh::Host for SshCapability {}

impl old::ssh::HostSession for SshCapability {
    async fn open(
        &mut self,
        target: old::ssh::Target,
    ) -> wasmtime::Result<Result<Resource<old::ssh::Session>, old::types::Error>> {
        let r = new::ssh::HostSession::open(self, convert::target_up(target)).await?;
        Ok(r.map(|s| Resource::new_own(s.rep()))
            .map_err(convert::error_down))
    }

    async fn exec(
        &mut self,
        session: Resource<old::ssh::Session>,
        command: String,
        stdin: Option<Vec<u8>>,
        timeout_ms: Option<u32>,
    ) -> wasmtime::Result<Result<old::ssh::ExecResult, old::types::Error>> {
        let session = session_up(&session);
        let r = new::ssh::HostSession::exec(self, session, command, stdin, timeout_ms).await?;
        Ok(r.map(convert::exec_result_down)
            .map_err(convert::error_down))
    }

    async fn upload(
        &mut self,
        session: Resource<old::ssh::Session>,
        path: String,
        contents: Vec<u8>,
        mode: u32,
    ) -> wasmtime::Result<Result<(), old::types::Error>> {
        let session = session_up(&session);
        let r = new::ssh::HostSession::upload(self, session, path, contents, mode).await?;
        Ok(r.map_err(convert::error_down))
    }

    async fn download(
        &mut self,
        session: Resource<old::ssh::Session>,
        path: String,
    ) -> wasmtime::Result<Result<Vec<u8>, old::types::Error>> {
        let session = session_up(&session);
        let r = new::ssh::HostSession::download(self, session, path).await?;
        Ok(r.map_err(convert::error_down))
    }

    async fn drop(&mut self, session: Resource<old::ssh::Session>) -> wasmtime::Result<()> {
        new::ssh::HostSession::drop(self, session_up(&session)).await
    }
}
