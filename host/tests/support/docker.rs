//! docker/compose end to end, shared by the Rust plugin (services.rs) and its TypeScript port
//! (typescript.rs): a recording `docker` shim driven over real SSH.

use super::TestRepo;
use super::sshd::Sshd;
use serde_json::Value;

const DOCKER_SHIM: &str = r#"#!/bin/sh
# Records every command, answers `compose ps` with real `docker compose ps --format json` output.
echo "$*" >> "$(dirname "$0")/docker.log"
case "$*" in
  *"ps"*) cat <<'JSON'
{"Command":"\"/docker-entrypoint.sh\"","CreatedAt":"2026-11-21 10:00:00 +0000 UTC","ExitCode":0,"Health":"","ID":"a1b2c3","Image":"ryshe/terraria:latest","Labels":"","LocalVolumes":"1","Mounts":"world","Name":"calamity-terraria-1","Names":"calamity-terraria-1","Networks":"calamity_default","Ports":"0.0.0.0:7777->7777/tcp","Project":"calamity","Publishers":[{"URL":"0.0.0.0","TargetPort":7777,"PublishedPort":7777,"Protocol":"tcp"}],"RunningFor":"2 hours ago","Service":"terraria","Size":"0B","State":"running","Status":"Up 2 hours"}
{"Command":"\"/bin/exporter\"","CreatedAt":"2026-11-21 10:00:00 +0000 UTC","ExitCode":1,"Health":"","ID":"d4e5f6","Image":"exporter:1","Labels":"","LocalVolumes":"0","Mounts":"","Name":"calamity-exporter-1","Names":"calamity-exporter-1","Networks":"calamity_default","Ports":"","Project":"calamity","Publishers":[],"RunningFor":"2 hours ago","Service":"exporter","Size":"0B","State":"exited","Status":"Exited (1) 5 minutes ago"}
JSON
  ;;
esac
"#;

/// Drives start, update, stop and status of a `docker/compose` model (whichever plugin provides
/// the type) through the real binary against a recording docker shim over real SSH.
pub fn compose_sends_the_right_commands_and_parses_ps(repo: &TestRepo, sshd: &Sshd) {
    let dir = tempfile::tempdir().unwrap();
    let shim = dir.path().join("docker");
    std::fs::write(&shim, DOCKER_SHIM).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&shim, std::fs::Permissions::from_mode(0o755)).unwrap();
    repo.write(
        "models/calamity.yaml",
        &format!(
            "type: docker/compose\nglobalArguments:\n{}  projectDir: {}\n  dockerBin: {}\n",
            ssh_globals(sshd),
            dir.path().display(),
            shim.display()
        ),
    );
    run(repo, "calamity", "start").ok();
    run(repo, "calamity", "update").ok();
    run(repo, "calamity", "stop").ok();
    let status: Value = run(repo, "calamity", "status").ok().json()["output"].clone();
    let log = std::fs::read_to_string(dir.path().join("docker.log")).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert!(
        lines[0].contains("compose") && lines[0].contains("up -d"),
        "{log}"
    );
    assert!(lines.iter().any(|l| l.contains("pull")), "{log}");
    assert!(lines.iter().any(|l| l.contains("down")), "{log}");
    assert_eq!(status["running"], 1, "{status}");
    assert_eq!(status["total"], 2, "{status}");
    let text = status.to_string();
    assert!(
        text.contains("terraria") && text.contains("running"),
        "{status}"
    );
    assert!(
        text.contains("exporter") && text.contains("exited"),
        "{status}"
    );
}

fn ssh_globals(sshd: &Sshd) -> String {
    format!(
        "  sshHost: {}\n  sshPort: {}\n  sshUser: {}\n  sshKey: ${{{{ vault.get(\"ssh-vault\", \"private-key\") }}}}\n",
        sshd.listen, sshd.port, sshd.user
    )
}

fn run(repo: &TestRepo, model: &str, method: &str) -> super::Run {
    repo.orch(&["--json", "model", "run", model, method])
}
