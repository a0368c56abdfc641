//! What a method sees of its call and of the host: globals, logging and its own resources.

use crate::bindings::orch::plugin::{log::Level, types as wit};
use crate::host;
use crate::{Http, Result, error};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The context of one method call, typed by the model's global arguments `G`.
pub struct Ctx<G> {
    /// The definition's `globalArguments`, resolved and validated by the host.
    pub globals: G,
    /// The name of the model (definition) being run.
    pub model_name: String,
    /// True when the caller asked for a dry run: describe, do not change anything.
    pub dry_run: bool,
}

impl<G> Ctx<G> {
    pub(crate) fn new(globals: G, call: &wit::Call) -> Self {
        Ctx {
            globals,
            model_name: call.model_name.clone(),
            dry_run: call.dry_run,
        }
    }

    /// Logs at info level into the run's event stream.
    pub fn info(&self, message: impl AsRef<str>) {
        host::log(Level::Info, message.as_ref());
    }

    /// Logs at warn level.
    pub fn warn(&self, message: impl AsRef<str>) {
        host::log(Level::Warn, message.as_ref());
    }

    /// Logs at debug level.
    pub fn debug(&self, message: impl AsRef<str>) {
        host::log(Level::Debug, message.as_ref());
    }

    /// Writes a new version of resource `name` of kind `spec`; returns its version number.
    pub fn write_resource(
        &self,
        spec: &str,
        name: &str,
        attributes: &impl Serialize,
    ) -> Result<u64> {
        let json = serde_json::to_string(attributes)
            .map_err(|e| error::failed(format!("cannot serialize resource {spec}/{name}: {e}")))?;
        host::write_resource(spec, name, &json)
    }

    /// Reads the latest version of one of this model's resources.
    pub fn read_resource<T: DeserializeOwned>(&self, spec: &str, name: &str) -> Result<Option<T>> {
        match host::read_resource(spec, name)? {
            None => Ok(None),
            Some(json) => serde_json::from_str(&json).map(Some).map_err(|e| {
                error::failed(format!(
                    "resource {spec}/{name} has an unexpected shape: {e}"
                ))
            }),
        }
    }

    /// Records that resource `name` of kind `spec` is gone (a tombstone version, returned like a
    /// write's); reads and lists no longer show it. `not-found` when it is not live.
    pub fn retire_resource(&self, spec: &str, name: &str) -> Result<u64> {
        host::retire_resource(spec, name)
    }

    /// Names of this model's resources of kind `spec`.
    pub fn list_resources(&self, spec: &str) -> Result<Vec<String>> {
        host::list_resources(spec)
    }

    /// The host's HTTP client (every request is checked against the plugin's grants).
    pub fn http(&self) -> Http {
        Http::default()
    }
}
