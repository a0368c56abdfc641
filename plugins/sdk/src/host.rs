//! The one place the SDK calls the host. On wasm32 these are the wit-bindgen imports; in native
//! builds (`cargo test`) they go to the thread's [`crate::testing::FakeHost`], so a plugin's
//! methods run as plain unit tests without wasmtime.

use crate::Result;
use crate::bindings::orch::plugin::{http, log::Level, ssh};

#[cfg(target_arch = "wasm32")]
mod imp {
    use super::*;
    use crate::bindings::orch::plugin::{data, log};

    /// An open SSH session.
    pub type SessionHandle = ssh::Session;

    pub fn log(level: Level, message: &str) {
        log::log(level, message)
    }
    pub fn write_resource(spec: &str, name: &str, attributes: &str) -> Result<u64> {
        data::write_resource(spec, name, attributes)
    }
    pub fn read_resource(spec: &str, name: &str) -> Result<Option<String>> {
        data::read_resource(spec, name)
    }
    pub fn list_resources(spec: &str) -> Result<Vec<String>> {
        data::list_resources(spec)
    }
    pub fn retire_resource(spec: &str, name: &str) -> Result<u64> {
        data::retire_resource(spec, name)
    }
    pub fn http_send(request: &http::Request) -> Result<http::Response> {
        http::send(request)
    }
    pub fn http_send_batch(
        requests: &[http::Request],
        max_concurrency: u32,
    ) -> Vec<Result<http::Response>> {
        http::send_batch(requests, max_concurrency)
    }
    pub fn ssh_open(target: &ssh::Target) -> Result<SessionHandle> {
        ssh::Session::open(target)
    }
    pub fn ssh_exec(
        session: &SessionHandle,
        command: &str,
        stdin: Option<&[u8]>,
        timeout_ms: Option<u32>,
    ) -> Result<ssh::ExecResult> {
        session.exec(command, stdin, timeout_ms)
    }
    pub fn ssh_upload(
        session: &SessionHandle,
        path: &str,
        contents: &[u8],
        mode: u32,
    ) -> Result<()> {
        session.upload(path, contents, mode)
    }
    pub fn ssh_download(session: &SessionHandle, path: &str) -> Result<Vec<u8>> {
        session.download(path)
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    use super::*;
    use crate::testing::with_fake;

    /// An open SSH session: in tests, the target it was opened to (`user@host:port`).
    pub type SessionHandle = String;

    pub fn log(level: Level, message: &str) {
        with_fake(|f| f.log(level, message))
    }
    pub fn write_resource(spec: &str, name: &str, attributes: &str) -> Result<u64> {
        with_fake(|f| f.write_resource(spec, name, attributes))
    }
    pub fn read_resource(spec: &str, name: &str) -> Result<Option<String>> {
        with_fake(|f| f.read_resource(spec, name))
    }
    pub fn list_resources(spec: &str) -> Result<Vec<String>> {
        with_fake(|f| f.list_resources(spec))
    }
    pub fn retire_resource(spec: &str, name: &str) -> Result<u64> {
        with_fake(|f| f.retire_resource(spec, name))
    }
    pub fn http_send(request: &http::Request) -> Result<http::Response> {
        with_fake(|f| f.http_send(request))
    }
    pub fn http_send_batch(
        requests: &[http::Request],
        _max_concurrency: u32,
    ) -> Vec<Result<http::Response>> {
        with_fake(|f| f.http_send_batch(requests))
    }
    pub fn ssh_open(target: &ssh::Target) -> Result<SessionHandle> {
        with_fake(|f| f.ssh_open(target))
    }
    pub fn ssh_exec(
        session: &SessionHandle,
        command: &str,
        stdin: Option<&[u8]>,
        _timeout_ms: Option<u32>,
    ) -> Result<ssh::ExecResult> {
        with_fake(|f| f.ssh_exec(session, command, stdin))
    }
    pub fn ssh_upload(
        session: &SessionHandle,
        path: &str,
        contents: &[u8],
        _mode: u32,
    ) -> Result<()> {
        with_fake(|f| f.ssh_upload(session, path, contents))
    }
    pub fn ssh_download(session: &SessionHandle, path: &str) -> Result<Vec<u8>> {
        with_fake(|f| f.ssh_download(session, path))
    }
}

pub(crate) use imp::*;
