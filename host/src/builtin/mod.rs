//! Model types built into the host rather than provided by a plugin.
//!
//! A built-in type needs what no plugin may be granted: `orch/repo` reads the repository's
//! files, the running orch binary and the vault to deploy orch itself. Everything else is as
//! for a plugin type: the registry lists it beside plugin types (as provided by the pseudo
//! plugin `orch`), the method runner resolves, validates, confirms and grants its calls the
//! same way, and it reaches the outside only through the call's capabilities (SSH under
//! `grants.orch.ssh` in orch.yaml, which it cannot do without) and writes only its own
//! resources through the data capability.

pub mod repo;

use crate::capabilities::CallCapabilities;
use crate::runtime::manifest::{Capabilities, Limits, PluginManifest};
use crate::runtime::wit::v0_2::{Call, PluginError};
use crate::runtime::{CallOutcome, TypeDescription};
use crate::vault::{LocalVault, Redactor};
use std::path::Path;

/// The plugin id built-in types are listed under, and the key of their grants in orch.yaml
/// (`grants: { orch: { ssh: [...] } }`).
pub const BUILTIN_PLUGIN_ID: &str = "orch";

/// What `orch type describe` shows as the directory of a built-in type.
pub const BUILTIN_DIR: &str = "<built into orch>";

/// The manifest built-in types run under: SSH only to the target a call's global arguments
/// name (and, since the method runner requires it for built-in types, that orch.yaml grants).
pub fn manifest() -> PluginManifest {
    PluginManifest {
        id: BUILTIN_PLUGIN_ID.into(),
        version: env!("CARGO_PKG_VERSION").into(),
        api: "0.2.0".into(),
        description: "Model types built into orch (orch/repo)".into(),
        wasm: String::new(),
        sha256: "built-in".into(),
        capabilities: Capabilities {
            http: Vec::new(),
            ssh: vec![repo::SSH_RULE.into()],
        },
        limits: Limits {
            // One SSH command (a binary chunk, an import) may take this long.
            timeout_ms: 600_000,
            ..Limits::default()
        },
    }
}

/// Every built-in type's description.
pub fn descriptions() -> Vec<TypeDescription> {
    vec![repo::description()]
}

/// What a built-in method may use besides its capabilities.
pub struct BuiltinContext<'a> {
    /// The repository's root directory.
    pub repo_root: &'a Path,
    /// The repository's vault.
    pub vault: &'a LocalVault,
    /// The run's redaction set.
    pub redactor: &'a Redactor,
}

/// Runs one built-in method; the writes it buffered are returned for the runner to commit
/// only when it succeeded.
pub async fn execute(
    ctx: BuiltinContext<'_>,
    call: Call,
    mut caps: CallCapabilities,
) -> CallOutcome {
    let result = match call.type_name.as_str() {
        repo::TYPE_NAME => repo::execute(&ctx, &call, &mut caps).await,
        other => Err(PluginError::NotFound(format!(
            "`{other}` is not a built-in type"
        ))),
    };
    let writes = match result {
        Ok(_) => caps.data.into_pending(),
        Err(_) => Vec::new(),
    };
    CallOutcome { result, writes }
}
