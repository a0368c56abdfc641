//! `installService`: a systemd unit running `<dir>/bin/orch serve` in the repository, enabled and
//! started.

use super::Globals;
use super::remote::{Remote, quote};
use crate::runtime::wit::v0_2::PluginError;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The unit file for a repository at `dir`.
fn unit_text(dir: &str) -> String {
    format!(
        "# Written by orch (orch/repo installService).\n\
         [Unit]\n\
         Description=orch serve ({dir})\n\
         Wants=network-online.target\n\
         After=network-online.target\n\
         \n\
         [Service]\n\
         WorkingDirectory={dir}\n\
         ExecStart={dir}/bin/orch serve\n\
         Restart=on-failure\n\
         \n\
         [Install]\n\
         WantedBy=multi-user.target\n"
    )
}

/// Runs `installService`; with `dry_run`, only says which unit it would write.
pub(super) async fn install(
    g: &Globals,
    args: &Value,
    remote: &mut Remote<'_>,
    dry_run: bool,
) -> Result<(&'static str, Value), PluginError> {
    let arg = |name: &str, default: &str| {
        args.get(name)
            .and_then(Value::as_str)
            .unwrap_or(default)
            .to_string()
    };
    let unit = arg("unit", "orch.service");
    let unit_dir = arg("unitDir", "/etc/systemd/system");
    let systemctl = arg("systemctl", "systemctl");
    let text = unit_text(g.dir());
    let path = format!("{}/{unit}", unit_dir.trim_end_matches('/'));
    let resource = json!({
        "unit": unit,
        "path": path,
        "sha256": hex::encode(Sha256::digest(text.as_bytes())),
    });
    if dry_run {
        return Ok(("service", resource));
    }
    remote
        .run(
            "creating the unit directory",
            &format!("mkdir -p -- {}", quote(&unit_dir)),
            None,
        )
        .await?;
    remote
        .upload(&path, text.clone().into_bytes(), 0o644)
        .await?;
    remote
        .run(
            &format!("enabling {unit}"),
            &format!(
                "{systemctl} daemon-reload && {systemctl} enable --now {}",
                quote(&unit)
            ),
            None,
        )
        .await?;
    Ok(("service", resource))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unit_runs_orch_serve_in_the_repository() {
        let text = unit_text("/opt/orch-bot");
        assert!(
            text.contains("\nWorkingDirectory=/opt/orch-bot\n"),
            "{text}"
        );
        assert!(
            text.contains("\nExecStart=/opt/orch-bot/bin/orch serve\n"),
            "{text}"
        );
        assert!(text.contains("\nWantedBy=multi-user.target\n"), "{text}");
    }
}
