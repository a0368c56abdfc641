//! `syncSecrets`: vaults re-encrypted here for the remote's vault key (`orch vault export
//! --for`, in memory) and imported there from stdin (`orch vault import NAME -`). Only
//! ciphertext crosses the wire (inside SSH) and reaches the remote's disk.

use super::remote::{Remote, quote};
use super::{BuiltinContext, Globals};
use crate::runtime::wit::v0_2::PluginError;
use serde_json::{Map, Value, json};
use std::path::PathBuf;

/// Runs `syncSecrets`; with `dry_run`, only lists the keys it would import.
pub(super) async fn sync(
    ctx: &BuiltinContext<'_>,
    g: &Globals,
    args: &Value,
    remote: &mut Remote<'_>,
    dry_run: bool,
) -> Result<(&'static str, Value), PluginError> {
    let vaults: Vec<String> = args
        .get("vaults")
        .and_then(Value::as_array)
        .map(|v| {
            v.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    let Some(first) = vaults.first() else {
        return Err(PluginError::InvalidArguments(
            "arguments.vaults: name at least one vault to sync".into(),
        ));
    };
    if dry_run {
        let mut keys = Map::new();
        for name in &vaults {
            let listed = ctx
                .vault
                .list(name)
                .map_err(|e| PluginError::Failed(e.to_string()))?;
            keys.insert(name.clone(), json!(listed));
        }
        return Ok(("secrets", json!({ "vaults": keys })));
    }
    let cd = format!("cd -- {}", quote(g.dir()));
    // The remote's key is created on its first vault use, as `orch vault put` there would.
    remote
        .run(
            "opening the remote's vault (run syncBinary and syncCode first)",
            &format!("{cd} && ./bin/orch vault list {} >/dev/null", quote(first)),
            None,
        )
        .await?;
    let key_path = g.path(".orch/vault.key");
    let key = remote.download(&key_path).await.map_err(|e| match e {
        PluginError::NotFound(m) => PluginError::NotFound(format!(
            "{m}; the remote keeps no vault key file (does it set ORCH_VAULT_KEY?): \
             syncSecrets seals the vaults for {key_path}"
        )),
        other => other,
    })?;
    let shown = PathBuf::from(format!("{}:{key_path}", remote.shown));
    let mut imported = Map::new();
    for name in &vaults {
        let sealed = ctx
            .vault
            .export_for_key_bytes(name, &key, &shown)
            .map_err(|e| PluginError::Failed(ctx.redactor.redact(&e.to_string())))?;
        let out = remote
            .run(
                &format!("importing vault {name}"),
                &format!("{cd} && ./bin/orch --json vault import {} -", quote(name)),
                Some(sealed),
            )
            .await?;
        let keys = serde_json::from_slice::<Value>(&out)
            .ok()
            .and_then(|v| v.get("keys").cloned())
            .unwrap_or(Value::Null);
        imported.insert(name.clone(), keys);
    }
    Ok(("secrets", json!({ "vaults": imported })))
}
