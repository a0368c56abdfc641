//! `monitoring/agent` and `monitoring/hub` through the real `orch` binary over real SSH (OpenSSH
//! on loopback), against a real Prometheus (one per test binary, scraping every second) and a
//! real node_exporter that the agent's restartCommand starts on a loopback port.

mod support;

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use support::TestRepo;
use support::prometheus::{NODE_EXPORTER, free_port, get_json, poll, prometheus};
use support::sshd::Sshd;

/// A repo with the monitoring plugin, the user key in the vault and the host key trusted.
fn repo_for(sshd: &Sshd) -> TestRepo {
    let repo = TestRepo::new(&["monitoring"]);
    repo.orch_stdin(
        &["vault", "put", "ssh-vault", "private-key"],
        &sshd.user_key(),
    )
    .ok();
    repo.orch(&["ssh", "trust", &format!("{}:{}", sshd.listen, sshd.port)])
        .ok();
    repo
}

fn ssh_globals(sshd: &Sshd) -> String {
    format!(
        "  sshHost: {}\n  sshPort: {}\n  sshUser: {}\n  sshKey: ${{{{ vault.get(\"ssh-vault\", \"private-key\") }}}}\n",
        sshd.listen, sshd.port, sshd.user
    )
}

fn run(repo: &TestRepo, model: &str, method: &str, inputs: &[&str]) -> support::Run {
    let mut args = vec!["--json", "model", "run", model, method];
    for i in inputs {
        args.push("--input");
        args.push(i);
    }
    repo.orch(&args)
}

/// (Re)starts node_exporter with the flags file's ARGS, as `systemctl restart` would, and
/// counts restarts.
const RESTART: &str = r#"#!/bin/sh
d=$(dirname "$0")
. "$d/flags"
if [ -f "$d/exporter.pid" ]; then
  old=$(cat "$d/exporter.pid")
  kill "$old" 2>/dev/null
  i=0; while kill -0 "$old" 2>/dev/null && [ $i -lt 100 ]; do i=$((i + 1)); sleep 0.05; done
fi
echo restart >> "$d/restarts"
setsid prometheus-node-exporter $ARGS </dev/null >"$d/exporter.log" 2>&1 &
echo $! > "$d/exporter.pid"
"#;

/// The agent's VM: its flags file, restart script and textfile dir; stops the exporter on drop.
struct Vm {
    dir: tempfile::TempDir,
}

impl Vm {
    fn new() -> Vm {
        let dir = tempfile::tempdir().unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(dir.path().join("restart.sh"), RESTART).unwrap();
        // Only the textfile collector: the other flags must survive orch's edits.
        std::fs::write(
            dir.path().join("flags"),
            "# node_exporter flags (test)\nARGS=\"--collector.disable-defaults --collector.textfile\"\n",
        )
        .unwrap();
        Vm { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn restarts(&self) -> usize {
        std::fs::read_to_string(self.path("restarts"))
            .unwrap_or_default()
            .lines()
            .count()
    }

    fn model(&self, sshd: &Sshd) -> String {
        let d = self.dir.path().display();
        format!(
            "type: monitoring/agent\nglobalArguments:\n{}  installCommand: echo must-not-run; exit 1\n  \
             exporterBin: prometheus-node-exporter\n  flagsFile: {d}/flags\n  restartCommand: sh {d}/restart.sh\n",
            ssh_globals(sshd)
        )
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.path("exporter.pid")) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
    }
}

fn hub_model(sshd: &Sshd, api_url: &str, file_sd: &Path, extra: &str) -> String {
    format!(
        "type: monitoring/hub\nglobalArguments:\n{}  apiUrl: {api_url}\n  fileSdPath: {}\n  confirmIntervalMs: 100\n  confirmAttempts: 100\n{extra}",
        ssh_globals(sshd),
        file_sd.display()
    )
}

#[test]
fn textfile_gauge_reaches_prometheus_after_the_agent_is_set_up_and_registered() {
    assert!(
        Path::new(NODE_EXPORTER).is_file(),
        "{NODE_EXPORTER} is missing: install prometheus-node-exporter (cargo xtask test does)"
    );
    let prom = prometheus();
    let sshd = Sshd::start();
    let repo = repo_for(&sshd);
    let vm = Vm::new();
    repo.write("models/agent.yaml", &vm.model(&sshd));

    // Already installed: installCommand (which would fail) is not run.
    let out = run(&repo, "agent", "install", &[]).ok().json()["output"].clone();
    assert_eq!(out["changed"], false, "{out}");
    assert!(
        out["path"]
            .as_str()
            .unwrap()
            .ends_with("prometheus-node-exporter")
    );

    // configure: one write and one restart; the same call again touches nothing.
    let port = free_port();
    let listen = [
        "listenAddress=127.0.0.1".to_string(),
        format!("port={port}"),
    ];
    let listen: Vec<&str> = listen.iter().map(String::as_str).collect();
    let out = run(&repo, "agent", "configure", &listen).ok().json()["output"].clone();
    assert_eq!(out["changed"], true, "{out}");
    assert_eq!(vm.restarts(), 1);
    let flags = std::fs::read_to_string(vm.path("flags")).unwrap();
    assert!(
        flags.starts_with("# node_exporter flags (test)\n"),
        "{flags}"
    );
    assert!(
        flags.contains(&format!(
            "ARGS=\"--collector.disable-defaults --collector.textfile --web.listen-address=127.0.0.1:{port}\""
        )),
        "{flags}"
    );
    let out = run(&repo, "agent", "configure", &listen).ok().json()["output"].clone();
    assert_eq!(out["changed"], false, "{out}");
    assert_eq!(vm.restarts(), 1, "unchanged config: no restart");

    // The textfile collector: created, set, restarted once; again is a no-op.
    let textfile = vm.path("textfile");
    let dir_input = format!("dir={}", textfile.display());
    let out = run(&repo, "agent", "enableTextfileCollector", &[&dir_input])
        .ok()
        .json()["output"]
        .clone();
    assert_eq!(out["changed"], true, "{out}");
    assert!(textfile.is_dir());
    assert_eq!(vm.restarts(), 2);
    let out = run(&repo, "agent", "enableTextfileCollector", &[&dir_input])
        .ok()
        .json()["output"]
        .clone();
    assert_eq!(out["changed"], false, "{out}");
    assert_eq!(vm.restarts(), 2);

    // A player gauge as a game server's collectMetrics writes it.
    let server = format!("mon-test-{}", std::process::id());
    std::fs::write(
        textfile.join("game_test.prom"),
        format!(
            "# HELP game_players_online Players online on the game server.\n# TYPE game_players_online gauge\ngame_players_online{{server=\"{server}\"}} 3\n"
        ),
    )
    .unwrap();

    // register through POST /-/reload; the output is Prometheus's view of the target.
    let file_sd = prom.file_sd("gauge");
    repo.write(
        "models/hub.yaml",
        &hub_model(&sshd, &prom.api_url(), &file_sd, ""),
    );
    let vm_name = format!("gauge-vm-{}", std::process::id());
    let address = format!("127.0.0.1:{port}");
    let out = run(
        &repo,
        "hub",
        "register",
        &[
            &format!("name={vm_name}"),
            &format!("address={address}"),
            "labels={\"role\": \"game\"}",
        ],
    )
    .ok()
    .json()["output"]
        .clone();
    assert_eq!(out["changed"], true, "{out}");
    assert_eq!(out["target"]["instance"], address.as_str(), "{out}");
    assert_eq!(out["target"]["labels"]["role"], "game", "{out}");
    let groups: Value = serde_json::from_str(&std::fs::read_to_string(&file_sd).unwrap()).unwrap();
    assert_eq!(
        groups,
        json!([{"targets": [address], "labels": {"name": vm_name, "role": "game"}}])
    );

    // Prometheus scrapes node_exporter: the target is up and the gauge is queryable.
    let up = poll(300, || {
        prom.targets_named(&vm_name)
            .into_iter()
            .find(|t| t["health"] == "up")
    });
    assert!(
        up.is_some(),
        "target never up: {:?}\nexporter log:\n{}",
        prom.targets_named(&vm_name),
        std::fs::read_to_string(vm.path("exporter.log")).unwrap_or_default()
    );
    let value = poll(300, || {
        let reply = get_json(prom.port, "/api/v1/query?query=game_players_online");
        reply["data"]["result"]
            .as_array()?
            .iter()
            .find(|r| r["metric"]["server"] == server.as_str())
            .map(|r| r["value"][1].clone())
    });
    assert_eq!(value, Some(json!("3")));

    // discover lists it, as a `target` resource named job/instance.
    let out = run(&repo, "hub", "discover", &[]).ok().json()["output"].clone();
    let listed: Vec<&Value> = out["targets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["labels"]["name"] == vm_name.as_str())
        .collect();
    assert_eq!(listed.len(), 1, "{out}");
    assert_eq!(listed[0]["job"], "node");
    assert_eq!(listed[0]["health"], "up");
    let data = repo
        .orch(&["--json", "data", "get", "hub", &format!("node/{address}")])
        .ok();
    assert!(data.stdout.contains(&vm_name), "{}", data.stdout);
}

#[test]
fn registering_twice_keeps_one_target_and_does_not_write_or_reload_again() {
    let prom = prometheus();
    let sshd = Sshd::start();
    let repo = repo_for(&sshd);
    let lab = tempfile::tempdir().unwrap();
    let reloads = lab.path().join("reloads");
    let file_sd = prom.file_sd("twice");
    // A group orch did not write stays as it is.
    std::fs::write(
        &file_sd,
        "[{\"targets\": [\"127.0.0.1:1\"], \"labels\": {\"owner\": \"hand\"}}]",
    )
    .unwrap();
    let reload = format!(
        "  reloadCommand: echo reload >> {} && kill -HUP {}\n",
        reloads.display(),
        prom.pid
    );
    repo.write(
        "models/hub.yaml",
        &hub_model(&sshd, &prom.api_url(), &file_sd, &reload),
    );
    let name = format!("twice-vm-{}", std::process::id());
    let inputs = [format!("name={name}"), "address=127.0.0.1:2".to_string()];
    let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();

    let first = run(&repo, "hub", "register", &inputs).ok().json()["output"].clone();
    assert_eq!(first["changed"], true, "{first}");
    let count = |p: &Path| {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .lines()
            .count()
    };
    assert_eq!(count(&reloads), 1);
    use std::os::unix::fs::MetadataExt;
    let written = std::fs::metadata(&file_sd).unwrap();
    let text = std::fs::read_to_string(&file_sd).unwrap();

    let second = run(&repo, "hub", "register", &inputs).ok().json()["output"].clone();
    assert_eq!(second["changed"], false, "{second}");
    assert_eq!(count(&reloads), 1, "already present: no reload");
    let after = std::fs::metadata(&file_sd).unwrap();
    assert_eq!(
        (after.ino(), after.mtime_nsec()),
        (written.ino(), written.mtime_nsec()),
        "no second write"
    );
    assert_eq!(std::fs::read_to_string(&file_sd).unwrap(), text);
    let groups: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        groups,
        json!([
            {"targets": ["127.0.0.1:1"], "labels": {"owner": "hand"}},
            {"targets": ["127.0.0.1:2"], "labels": {"name": name}},
        ])
    );
    assert_eq!(prom.targets_named(&name).len(), 1, "one target");
}

#[test]
fn an_unreachable_prometheus_fails_register_clearly_and_leaves_the_file_alone() {
    let sshd = Sshd::start();
    let repo = repo_for(&sshd);
    let lab = tempfile::tempdir().unwrap();
    let file_sd = lab.path().join("orch.json");
    let before = "[{\"targets\": [\"10.0.0.9:9100\"], \"labels\": {\"name\": \"old\"}}]\n";
    std::fs::write(&file_sd, before).unwrap();
    let dead = format!("http://127.0.0.1:{}", free_port());
    repo.write("models/hub.yaml", &hub_model(&sshd, &dead, &file_sd, ""));
    let logins = sshd.logins();

    let failed = run(
        &repo,
        "hub",
        "register",
        &["name=new", "address=10.0.0.10:9100"],
    );
    assert_ne!(failed.code, 0, "{}", failed.all());
    let all = failed.all();
    assert!(
        all.contains(&format!("Prometheus at {dead} did not answer")),
        "{all}"
    );
    assert!(
        all.contains(&format!("{} was not changed", file_sd.display())),
        "{all}"
    );
    assert_eq!(std::fs::read_to_string(&file_sd).unwrap(), before);
    assert!(!lab.path().join("orch.json.orch-new").exists());
    assert_eq!(
        sshd.logins(),
        logins,
        "no SSH connection before the API answered"
    );

    // discover says the same, naming the URL.
    let failed = run(&repo, "hub", "discover", &[]);
    assert_ne!(failed.code, 0, "{}", failed.all());
    assert!(failed.all().contains(&dead), "{}", failed.all());
}

#[test]
fn a_failed_reload_puts_the_file_sd_file_back() {
    let prom = prometheus();
    let sshd = Sshd::start();
    let repo = repo_for(&sshd);
    let file_sd = prom.file_sd("badreload");
    let before = "[{\"targets\": [\"127.0.0.1:3\"], \"labels\": {\"name\": \"kept\"}}]\n";
    std::fs::write(&file_sd, before).unwrap();
    let reload = "  reloadCommand: echo reload refused >&2; exit 7\n";
    repo.write(
        "models/hub.yaml",
        &hub_model(&sshd, &prom.api_url(), &file_sd, reload),
    );
    let failed = run(
        &repo,
        "hub",
        "register",
        &["name=newcomer", "address=127.0.0.1:4"],
    );
    assert_ne!(failed.code, 0, "{}", failed.all());
    let all = failed.all();
    assert!(all.contains("reload refused"), "{all}");
    assert!(all.contains("was put back as it was"), "{all}");
    assert_eq!(std::fs::read_to_string(&file_sd).unwrap(), before);
}

#[test]
fn discover_retires_the_targets_prometheus_no_longer_has() {
    let prom = prometheus();
    let sshd = Sshd::start();
    let repo = repo_for(&sshd);
    let file_sd = prom.file_sd("retire");
    let reload = format!("  reloadCommand: kill -HUP {}\n", prom.pid);
    repo.write(
        "models/hub.yaml",
        &hub_model(&sshd, &prom.api_url(), &file_sd, &reload),
    );
    let name = format!("retire-vm-{}", std::process::id());
    run(
        &repo,
        "hub",
        "register",
        &[&format!("name={name}"), "address=127.0.0.1:5"],
    )
    .ok();
    let resource = "node/127.0.0.1:5";
    let out = run(&repo, "hub", "discover", &[]).ok().json()["output"].clone();
    assert!(
        out["targets"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["labels"]["name"] == name.as_str()),
        "{out}"
    );
    repo.orch(&["data", "get", "hub", resource]).ok();

    // The target leaves Prometheus (its file emptied by hand, then a reload).
    std::fs::write(&file_sd, "[]\n").unwrap();
    Command::new("kill")
        .args(["-HUP", &prom.pid.to_string()])
        .status()
        .unwrap();
    let gone = poll(300, || prom.targets_named(&name).is_empty().then_some(()));
    assert!(gone.is_some(), "Prometheus still lists {name}");
    let out = run(&repo, "hub", "discover", &[]).ok().json()["output"].clone();
    assert!(
        out["retired"]
            .as_array()
            .unwrap()
            .contains(&json!(resource)),
        "{out}"
    );
    let listed = repo.orch(&["--json", "data", "list", "hub"]).ok();
    assert!(!listed.stdout.contains(resource), "{}", listed.stdout);
}

#[test]
fn a_stopped_vm_fails_cleanly_and_a_dry_run_register_writes_nothing() {
    let sshd = Sshd::start();
    let repo = repo_for(&sshd);
    repo.write(
        "models/agent.yaml",
        "type: monitoring/agent\nglobalArguments:\n  sshHost: null\n  sshPort: 22\n  sshKey: k\n",
    );
    let failed = run(&repo, "agent", "configure", &["port=9100"]);
    assert_ne!(failed.code, 0, "{}", failed.all());
    assert!(
        failed.all().contains("is the VM running?"),
        "{}",
        failed.all()
    );

    let lab = tempfile::tempdir().unwrap();
    let file_sd = lab.path().join("orch.json");
    let dead = format!("http://127.0.0.1:{}", free_port());
    repo.write("models/hub.yaml", &hub_model(&sshd, &dead, &file_sd, ""));
    let logins = sshd.logins();
    let out = repo
        .orch(&[
            "--json",
            "model",
            "run",
            "hub",
            "register",
            "--dry-run",
            "--input",
            "name=vm1",
            "--input",
            "address=10.0.0.21:9100",
        ])
        .ok()
        .json()["output"]
        .clone();
    assert_eq!(out["group"]["targets"], json!(["10.0.0.21:9100"]), "{out}");
    assert!(!file_sd.exists());
    assert_eq!(sshd.logins(), logins);
}
