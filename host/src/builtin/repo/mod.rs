//! `orch/repo` (swamp's `swamp/repo`): deploys this orch repository to a remote host over SSH,
//! so that `orch run` works there: its files (`syncCode`), the running orch binary
//! (`syncBinary`), its vaults re-encrypted for the remote's key (`syncSecrets`) and a systemd
//! unit running `orch serve` (`installService`).

mod binary;
mod code;
mod remote;
mod secrets;
mod service;

use super::BuiltinContext;
use crate::capabilities::CallCapabilities;
use crate::runtime::wit::v0_2::orch::plugin::data::Host as DataHost;
use crate::runtime::wit::v0_2::{Call, PluginError};
use crate::runtime::{MethodInfo, ResourceSpecInfo, TypeDescription};
use remote::Remote;
use serde::Deserialize;
use serde_json::{Value, json};

/// The type's name.
pub const TYPE_NAME: &str = "orch/repo";

/// The SSH target a call may open: exactly the one its global arguments name.
pub const SSH_RULE: &str =
    "{{ globalArguments.user }}@{{ globalArguments.host }}:{{ globalArguments.port }}";

/// The global arguments (never `Debug`: it holds the SSH key).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Globals {
    host: String,
    port: u16,
    user: String,
    ssh_key: String,
    #[serde(default)]
    ssh_key_passphrase: Option<String>,
    dir: String,
    sha256_command: String,
    /// Repository paths syncCode leaves alone, here and there.
    #[serde(default)]
    exclude: Vec<String>,
}

impl Globals {
    /// `dir` without a trailing slash.
    fn dir(&self) -> &str {
        match self.dir.trim_end_matches('/') {
            "" => "/",
            d => d,
        }
    }

    /// True when `rel` (a `/`-separated repository path) is, or is under, an `exclude` entry.
    fn excluded(&self, rel: &str) -> bool {
        self.exclude.iter().any(|e| {
            let e = e.trim_end_matches('/');
            rel == e
                || rel
                    .strip_prefix(e)
                    .is_some_and(|rest| rest.starts_with('/'))
        })
    }

    /// `<dir>/<rel>`.
    fn path(&self, rel: &str) -> String {
        match self.dir() {
            "/" => format!("/{rel}"),
            d => format!("{d}/{rel}"),
        }
    }
}

/// The type's description, as `orch type describe orch/repo` shows it.
pub fn description() -> TypeDescription {
    let none = json!({"type": "object", "properties": {}, "additionalProperties": false});
    let method = |name: &str, description: &str, schema: Value| MethodInfo {
        name: name.into(),
        description: description.into(),
        kind: "action".into(),
        destructive: false,
        arguments_schema: schema,
    };
    let resource = |name: &str, description: &str, schema: Value| ResourceSpecInfo {
        name: name.into(),
        description: description.into(),
        schema,
        volatile: Vec::new(),
    };
    TypeDescription {
        name: TYPE_NAME.into(),
        version: "2026.11.30".into(),
        description:
            "Deploys this orch repository to a remote host over SSH (built into orch; the \
                      target must be granted in orch.yaml under grants.orch.ssh)"
                .into(),
        global_arguments_schema: json!({
            "type": "object",
            "properties": {
                "host": {"type": "string", "minLength": 1, "description": "SSH host of the remote"},
                "port": {"type": "integer", "minimum": 1, "maximum": 65535, "default": 22},
                "user": {"type": "string", "minLength": 1, "description": "SSH login"},
                "sshKey": {"type": "string", "minLength": 1, "writeOnly": true,
                           "description": "OpenSSH private key text, from a vault"},
                "sshKeyPassphrase": {"type": "string", "writeOnly": true},
                "dir": {"type": "string", "pattern": "^/[^\\s]*$",
                        "description": "Absolute directory of the repository on the remote (no whitespace)"},
                "sha256Command": {"type": "string", "minLength": 1, "default": "sha256sum",
                                  "description": "Remote command printing `HASH  FILE` for files (`shasum -a 256` on macOS)"},
                "exclude": {"type": "array", "uniqueItems": true, "default": [],
                            "items": {"type": "string", "pattern": "^[^/\\s][^\\s]*$", "not": {"pattern": "(^|/)\\.\\.(/|$)"}},
                            "description": "Repository paths syncCode neither uploads nor removes on the remote (a directory covers what is under it), e.g. `target`, `notes/private`"}
            },
            "required": ["host", "port", "user", "sshKey", "dir", "sha256Command"],
            "additionalProperties": false
        }),
        resources: vec![
            resource(
                "code",
                "The repository files last synced (never .orch/)",
                json!({"type": "object", "properties": {
                    "dir": {"type": "string"}, "files": {"type": "integer"},
                    "uploaded": {"type": "integer"}, "removed": {"type": "integer"},
                    "digest": {"type": "string"}}}),
            ),
            resource(
                "binary",
                "The orch binary last synced to <dir>/bin/orch",
                json!({"type": "object", "properties": {
                    "path": {"type": "string"}, "bytes": {"type": "integer"},
                    "sha256": {"type": "string"}, "uploaded": {"type": "boolean"}}}),
            ),
            resource(
                "secrets",
                "The vaults last imported on the remote (key names only)",
                json!({"type": "object", "properties": {"vaults": {"type": "object"}}}),
            ),
            resource(
                "service",
                "The systemd unit running `orch serve` on the remote",
                json!({"type": "object", "properties": {
                    "unit": {"type": "string"}, "path": {"type": "string"},
                    "sha256": {"type": "string"}}}),
            ),
        ],
        methods: vec![
            method(
                "syncCode",
                "Uploads the repository's files that differ from the remote's (by sha256), through a \
                 temp name and a rename, and removes those deleted here; never .orch/, .git/ or bin/",
                none.clone(),
            ),
            method(
                "syncBinary",
                "Uploads the running orch binary to <dir>/bin/orch (0755) in chunks; the remote's \
                 sha256 must match, or the upload is removed and the method fails",
                none,
            ),
            method(
                "syncSecrets",
                "Re-encrypts the named vaults for the remote's vault key and imports them there with \
                 <dir>/bin/orch vault import (needs syncBinary and syncCode first)",
                json!({
                    "type": "object",
                    "properties": {"vaults": {"type": "array", "minItems": 1, "uniqueItems": true,
                        "items": {"type": "string", "minLength": 1}}},
                    "required": ["vaults"],
                    "additionalProperties": false
                }),
            ),
            method(
                "installService",
                "Writes a systemd unit running <dir>/bin/orch serve and runs `systemctl daemon-reload` \
                 and `systemctl enable --now` for it",
                json!({
                    "type": "object",
                    "properties": {
                        "unit": {"type": "string", "pattern": "^[A-Za-z0-9_.@-]+\\.service$",
                                 "default": "orch.service"},
                        "unitDir": {"type": "string", "pattern": "^/[^\\s]*$",
                                    "default": "/etc/systemd/system"},
                        "systemctl": {"type": "string", "minLength": 1, "default": "systemctl",
                                      "description": "The systemctl command (e.g. `sudo systemctl`)"}
                    },
                    "additionalProperties": false
                }),
            ),
        ],
    }
}

/// Runs one `orch/repo` method.
pub(super) async fn execute(
    ctx: &BuiltinContext<'_>,
    call: &Call,
    caps: &mut CallCapabilities,
) -> Result<String, PluginError> {
    let globals: Globals = serde_json::from_str(&call.global_arguments)
        .map_err(|e| PluginError::InvalidArguments(format!("globalArguments: {e}")))?;
    let args: Value = serde_json::from_str(&call.arguments)
        .map_err(|e| PluginError::InvalidArguments(format!("arguments: {e}")))?;
    if !matches!(
        call.method.as_str(),
        "syncCode" | "syncBinary" | "syncSecrets" | "installService"
    ) {
        return Err(PluginError::NotFound(format!(
            "orch/repo has no method `{}`",
            call.method
        )));
    }
    // A dry run connects (so the grant and the host key are checked) and reads, but changes
    // nothing there and stores nothing here.
    let dry_run = call.dry_run;
    let mut remote = Remote::open(&mut caps.ssh, &globals).await?;
    let outcome = match call.method.as_str() {
        "syncCode" => code::sync(ctx, &globals, &mut remote, dry_run).await,
        "syncBinary" => binary::sync(&globals, &mut remote, dry_run).await,
        "syncSecrets" => secrets::sync(ctx, &globals, &args, &mut remote, dry_run).await,
        _ => service::install(&globals, &args, &mut remote, dry_run).await,
    };
    remote.close().await;
    let (spec, attributes) = outcome?;
    if dry_run {
        let mut output = serde_json::Map::new();
        output.insert("dryRun".into(), Value::Bool(true));
        output.insert(spec.into(), attributes);
        return Ok(Value::Object(output).to_string());
    }
    DataHost::write_resource(
        &mut caps.data,
        spec.to_string(),
        spec.to_string(),
        attributes.to_string(),
    )
    .await
    .map_err(|e| PluginError::Failed(format!("writing resource {spec}: {e}")))??;
    Ok(attributes.to_string())
}
