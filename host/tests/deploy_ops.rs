//! The homelab deploy and monitoring workflows through the real `orch` binary: deploy-grafana
//! (dashboards and alert rules from repository files, then annotations) against the Grafana
//! simulator, and setup-game-metrics + configure-monitoring for a fleet VM (the Proxmox
//! simulator gives its IP) over real SSH, with a real node_exporter and a real Prometheus.

mod support;

use grafana_sim::{SimConfig, Simulator};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use support::prometheus::{NODE_EXPORTER, free_port, poll, prometheus};
use support::sshd::{Sshd, TestHost};
use support::{Run, TestRepo, contains_bytes};

const TOKEN: &str = "glsa_deploy_ops_right_token_2718";
const WRONG_TOKEN: &str = "glsa_deploy_ops_wrong_token_3141";
const WEBHOOK: &str = "https://discord.example/api/webhooks/deploy-ops-secret-77";

fn homelab() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../workflows/homelab")
}

/// Copies the homelab repository (orch.yaml, models, workflows, dashboards, alerts) into `repo`.
fn copy_homelab(repo: &TestRepo) {
    let example = homelab();
    for dir in ["models", "workflows", "dashboards", "alerts"] {
        std::fs::create_dir_all(repo.path().join(dir)).unwrap();
        for e in std::fs::read_dir(example.join(dir)).unwrap().flatten() {
            std::fs::copy(e.path(), repo.path().join(dir).join(e.file_name())).unwrap();
        }
    }
    std::fs::copy(example.join("orch.yaml"), repo.path().join("orch.yaml")).unwrap();
}

/// The homelab repository with the grafana plugin, talking to a Grafana simulator.
struct GrafanaLab {
    repo: TestRepo,
    sim: Simulator,
}

impl GrafanaLab {
    /// The vault holds `token` (the simulator accepts only [`TOKEN`]) and the Discord webhook.
    fn new(token: &str) -> GrafanaLab {
        Self::with_plugins(token, &["grafana"])
    }

    /// The same with every plugin the homelab's `plugins.txt` lists, so `orch check` can run.
    fn with_every_plugin(token: &str) -> GrafanaLab {
        let listed = std::fs::read_to_string(homelab().join("plugins.txt")).unwrap();
        let plugins: Vec<&str> = listed
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
        Self::with_plugins(token, &plugins)
    }

    fn with_plugins(token: &str, plugins: &[&str]) -> GrafanaLab {
        let sim = Simulator::start_blocking(SimConfig {
            token: TOKEN.into(),
            port: 0,
        })
        .expect("grafana simulator");
        let repo = TestRepo::new(plugins);
        copy_homelab(&repo);
        repo.orch_stdin(&["vault", "put", "grafana-vault", "token"], token)
            .ok();
        repo.orch_stdin(
            &["vault", "put", "grafana-vault", "discord-webhook"],
            WEBHOOK,
        )
        .ok();
        GrafanaLab { repo, sim }
    }

    fn orch(&self, args: &[&str]) -> Run {
        let mut cmd = self.repo.command(args);
        cmd.env("GRAFANA_URL", self.sim.url());
        Run::from_output(cmd.output().unwrap())
    }

    /// (method, path) of every write Grafana received, in order.
    fn writes(&self) -> Vec<(String, String)> {
        self.sim
            .writes()
            .into_iter()
            .map(|r| (r.method, r.path))
            .collect()
    }
}

fn is_annotation(w: &(String, String)) -> bool {
    w.0 == "POST" && w.1 == "/api/annotations"
}

fn tags(annotation: &Value) -> Value {
    annotation["tags"].clone()
}

#[test]
fn deploy_grafana_provisions_dashboards_and_rules_then_annotates_and_a_second_deploy_writes_no_dashboard()
 {
    let lab = GrafanaLab::new(TOKEN);
    let run = lab.orch(&["--json", "run", "deploy-grafana"]).ok().json();
    assert_eq!(run["status"], "succeeded", "{run}");

    // The dashboards from dashboards/*.json, returned by uid.
    assert_eq!(
        lab.sim.dashboard("game-servers").expect("game-servers")["title"],
        "Game Servers"
    );
    assert_eq!(
        lab.sim.dashboard("node-exporter").expect("node-exporter")["title"],
        "Node Exporter"
    );
    // The alert rules from alerts/*.json, the contact point (its secret URL) and the policy.
    let mut rules: Vec<String> = lab
        .sim
        .alert_rules()
        .iter()
        .map(|r| r["uid"].as_str().unwrap().to_string())
        .collect();
    rules.sort();
    assert_eq!(rules, ["game-server-down", "node-exporter-down"]);
    let point = lab
        .sim
        .contact_points()
        .into_iter()
        .find(|p| p["name"] == "discord-clankers")
        .expect("contact point");
    assert_eq!(point["settings"]["url"], WEBHOOK);
    assert_eq!(lab.sim.policies()["receiver"], "discord-clankers");

    // One annotation per deploy, with the reference's tags; the whole deploy's is the last write.
    let annotations = lab.sim.annotations();
    let mut all: Vec<Value> = annotations.iter().map(tags).collect();
    all.sort_by_key(|t| t.to_string());
    assert_eq!(
        all,
        [
            json!(["deploy", "alerts"]),
            json!(["deploy", "dashboards"]),
            json!(["deploy", "grafana"])
        ]
    );
    assert_eq!(
        tags(annotations.last().unwrap()),
        json!(["deploy", "grafana"])
    );
    let writes = lab.writes();
    assert!(is_annotation(writes.last().unwrap()), "{writes:?}");
    // The webhook URL (a vault secret) is not in the run's output or anything orch stored.
    assert!(!contains_bytes(&lab.repo.orch_dir_bytes(), WEBHOOK));

    // Again: every dashboard and rule is up to date, only the annotations are new.
    let before = writes.len();
    let run = lab.orch(&["--json", "run", "deploy-grafana"]).ok().json();
    assert_eq!(run["status"], "succeeded", "{run}");
    let again = lab.writes()[before..].to_vec();
    assert!(
        !again.iter().any(|w| w.1.starts_with("/api/dashboards")),
        "a second deploy wrote a dashboard: {again:?}"
    );
    assert!(
        !again.iter().any(|w| w.1.contains("alert-rules")),
        "a second deploy wrote an alert rule: {again:?}"
    );
    assert_eq!(again.iter().filter(|w| is_annotation(w)).count(), 3);
}

#[test]
fn deploy_dashboards_annotates_after_the_last_push() {
    let lab = GrafanaLab::new(TOKEN);
    lab.orch(&["run", "deploy-dashboards"]).ok();
    let writes = lab.writes();
    let pushes: Vec<usize> = (0..writes.len())
        .filter(|&i| writes[i].1 == "/api/dashboards/db")
        .collect();
    assert_eq!(pushes.len(), 2, "{writes:?}");
    assert_eq!(writes.len(), 3, "{writes:?}");
    assert!(is_annotation(&writes[2]), "{writes:?}");
    assert_eq!(
        tags(&lab.sim.annotations()[0]),
        json!(["deploy", "dashboards"])
    );
}

#[test]
fn a_dashboard_file_that_is_not_json_fails_naming_the_file_and_line_and_is_not_annotated() {
    let lab = GrafanaLab::new(TOKEN);
    lab.repo.write(
        "dashboards/broken.json",
        "{\n  \"uid\": \"broken\",\n  \"title\": \"Broken\",\n  oops\n}\n",
    );
    let run = lab
        .orch(&[
            "run",
            "deploy-dashboards",
            "--input",
            r#"files=["dashboards/broken.json"]"#,
        ])
        .code(1);
    let all = run.all();
    assert!(all.contains("dashboards/broken.json:4:3"), "{all}");
    assert!(all.contains("not valid JSON"), "{all}");
    assert!(lab.sim.dashboard_uids().is_empty());
    assert!(
        lab.sim.annotations().is_empty(),
        "a failed deploy is not annotated"
    );

    // An alert rule file that is not JSON: named by file.json, with its line.
    lab.repo
        .write("alerts/broken.json", "{\n  \"uid\": \"broken\",\n  ,\n}\n");
    let run = lab
        .orch(&[
            "run",
            "deploy-alerts",
            "--input",
            r#"rules=["alerts/broken.json"]"#,
        ])
        .code(1);
    let all = run.all();
    assert!(
        all.contains("alerts/broken.json:3:3: not valid JSON"),
        "{all}"
    );
    assert!(lab.sim.alert_rules().is_empty());
}

#[test]
fn a_dashboard_path_outside_the_repository_is_refused() {
    let lab = GrafanaLab::new(TOKEN);
    let run = lab
        .orch(&[
            "run",
            "deploy-dashboards",
            "--input",
            r#"files=["../../../etc/passwd"]"#,
        ])
        .code(1);
    let all = run.all();
    assert!(all.contains("`..` is not allowed"), "{all}");
    assert!(!all.contains("root:x:0"), "{all}");
    assert!(lab.sim.writes().is_empty());
}

/// A dashboard deploy naming a file that is not there.
const MISSING_FILE_WORKFLOW: &str = r#"name: push-missing
jobs:
  - name: deploy
    steps:
      - name: push
        task:
          type: model_method
          modelIdOrName: grafanaHub
          methodName: pushDashboard
          inputs: { dashboard: '${{ file.contents("dashboards/missing.json") }}' }
"#;

#[test]
fn check_only_parses_file_contents_and_evaluate_names_the_missing_file() {
    let lab = GrafanaLab::with_every_plugin(TOKEN);
    lab.repo
        .write("workflows/push-missing.yaml", MISSING_FILE_WORKFLOW);
    let check = lab.orch(&["check"]).ok();
    assert!(check.all().contains("no problems"), "{}", check.all());
    // evaluate shows each step's inputs, or why they do not resolve (file, line, field).
    let all = lab
        .orch(&["workflow", "evaluate", "push-missing"])
        .ok()
        .all();
    assert!(
        all.contains(
            "workflows/push-missing.yaml:10: field `jobs[0].steps[0].task.inputs.dashboard`"
        ),
        "{all}"
    );
    assert!(
        all.contains("file `dashboards/missing.json` does not exist"),
        "{all}"
    );
    assert!(
        all.contains(r#"${{ file.contents("dashboards/missing.json") }}"#),
        "{all}"
    );
    let all = lab.orch(&["run", "push-missing"]).code(1).all();
    assert!(all.contains("dashboards/missing.json"), "{all}");
    assert!(lab.sim.writes().is_empty());
}

#[test]
fn a_wrong_grafana_token_is_denied_and_never_shown_or_stored() {
    let lab = GrafanaLab::new(WRONG_TOKEN);
    let run = lab.orch(&["--json", "run", "deploy-grafana"]).code(1);
    let all = run.all();
    assert!(all.contains("denied"), "{all}");
    assert!(!all.contains(WRONG_TOKEN), "{all}");
    assert!(!all.contains(TOKEN));
    let runs = lab.orch(&["--json", "runs", "list"]).ok();
    assert!(!runs.all().contains(WRONG_TOKEN));
    assert!(!contains_bytes(&lab.repo.orch_dir_bytes(), WRONG_TOKEN));
    assert!(lab.sim.dashboard_uids().is_empty());
    assert!(lab.sim.writes().is_empty());
}

// ---- monitoring: a fleet VM, its node_exporter and the Prometheus hub ----

/// (Re)starts node_exporter with the flags file's ARGS, as `systemctl restart` would.
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

/// The homelab repository with the proxmox and monitoring plugins; the fleet VM `game-vm` is a
/// test host (its own network namespace) running sshd, which also stands in for the hub.
struct MonitoringLab {
    repo: TestRepo,
    pve: pve_sim::Simulator,
    sshd: Sshd,
    /// The VM's files: node_exporter's flags file, restart script and textfile dir.
    vm: tempfile::TempDir,
    file_sd: PathBuf,
    _host: TestHost,
}

impl MonitoringLab {
    fn new() -> MonitoringLab {
        assert!(
            Path::new(NODE_EXPORTER).is_file(),
            "{NODE_EXPORTER} is missing: install prometheus-node-exporter (cargo xtask test does)"
        );
        let host = TestHost::create();
        let seed = pve_sim::VmSeed::new(210, "game-vm").running_at(host.addr.parse().unwrap());
        let pve = pve_sim::Simulator::start_blocking(pve_sim::SimConfig {
            password: "pve-pass".into(),
            fleet: pve_sim::Fleet::reference().with(seed),
            ..Default::default()
        })
        .unwrap();
        let sshd = Sshd::start_on(&host);
        let repo = TestRepo::new(&["proxmox", "monitoring"]);
        copy_homelab(&repo);
        repo.orch_stdin(&["vault", "put", "proxmox-vault", "password"], "pve-pass")
            .ok();
        repo.orch_stdin(
            &["vault", "put", "ssh-vault", "private-key"],
            &sshd.user_key(),
        )
        .ok();
        repo.orch(&["ssh", "trust", &format!("{}:{}", sshd.listen, sshd.port)])
            .ok();
        let vm = tempfile::tempdir().unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(vm.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(vm.path().join("restart.sh"), RESTART).unwrap();
        std::fs::write(
            vm.path().join("flags"),
            "ARGS=\"--collector.disable-defaults --collector.textfile\"\n",
        )
        .unwrap();
        let file_sd = prometheus()
            .dir
            .join(format!("file_sd/deploy-ops-{}.json", std::process::id()));
        MonitoringLab {
            repo,
            pve,
            sshd,
            vm,
            file_sd,
            _host: host,
        }
    }

    fn orch_with(&self, args: &[&str], prometheus_url: &str) -> Run {
        let mut cmd = self.repo.command(args);
        cmd.env("PROXMOX_API_URL", self.pve.url())
            .env("SSH_PORT", self.sshd.port.to_string())
            .env("SSH_USER", &self.sshd.user)
            .env("PROMETHEUS_URL", prometheus_url)
            .env("PROMETHEUS_SSH_HOST", &self.sshd.listen)
            .env("PROMETHEUS_FILE_SD", &self.file_sd)
            .env("NODE_EXPORTER_FLAGS_FILE", self.vm.path().join("flags"))
            .env(
                "NODE_EXPORTER_RESTART",
                format!("sh {}/restart.sh", self.vm.path().display()),
            );
        Run::from_output(cmd.output().unwrap())
    }

    fn orch(&self, args: &[&str]) -> Run {
        self.orch_with(args, &format!("http://127.0.0.1:{}", prometheus().port))
    }
}

impl Drop for MonitoringLab {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.vm.path().join("exporter.pid")) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
        let _ = std::fs::remove_file(&self.file_sd);
    }
}

#[test]
fn setup_game_metrics_and_configure_monitoring_make_the_fleet_vm_an_up_prometheus_target() {
    let lab = MonitoringLab::new();
    lab.orch(&["run", "sync-fleet"]).ok();
    let port = free_port();
    let textfile = lab.vm.path().join("textfile_collector");
    let inputs = format!(
        r#"{{"vmName": "game-vm", "exporterPort": {port}, "textfileDir": "{}"}}"#,
        textfile.display()
    );
    let run = lab
        .orch(&["--json", "run", "setup-game-metrics", "--input", &inputs])
        .ok()
        .json();
    assert_eq!(run["status"], "succeeded", "{run}");
    assert!(textfile.is_dir());
    let flags = std::fs::read_to_string(lab.vm.path().join("flags")).unwrap();
    assert!(
        flags.contains(&format!(
            "--collector.textfile.directory={}",
            textfile.display()
        )),
        "{flags}"
    );
    assert!(
        flags.contains(&format!("--web.listen-address=0.0.0.0:{port}")),
        "{flags}"
    );

    let vm_inputs = format!(r#"{{"vmName": "game-vm", "exporterPort": {port}}}"#);
    let run = lab
        .orch(&[
            "--json",
            "run",
            "configure-monitoring",
            "--input",
            &vm_inputs,
        ])
        .ok()
        .json();
    assert_eq!(run["status"], "succeeded", "{run}");
    let groups: Value =
        serde_json::from_str(&std::fs::read_to_string(&lab.file_sd).unwrap()).unwrap();
    let address = format!("{}:{port}", lab.sshd.listen);
    assert_eq!(
        groups,
        json!([{"targets": [address], "labels": {"name": "game-vm", "role": "game"}}])
    );
    let prom = prometheus();
    let up = poll(300, || {
        prom.targets_named("game-vm")
            .into_iter()
            .find(|t| t["health"] == "up")
    });
    assert!(
        up.is_some(),
        "target never up: {:?}\nexporter log:\n{}",
        prom.targets_named("game-vm"),
        std::fs::read_to_string(lab.vm.path().join("exporter.log")).unwrap_or_default()
    );

    // setup-monitoring (both, for the same VM) again: nothing changes, nothing restarts.
    let before = std::fs::read(&lab.file_sd).unwrap();
    let restarts = || {
        std::fs::read_to_string(lab.vm.path().join("restarts"))
            .unwrap_or_default()
            .lines()
            .count()
    };
    let restarted = restarts();
    assert_eq!(
        restarted, 2,
        "setup-game-metrics restarted the exporter once per flag"
    );
    let run = lab
        .orch(&["--json", "run", "setup-monitoring", "--input", &inputs])
        .ok()
        .json();
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(restarts(), restarted, "unchanged flags: no restart");
    assert_eq!(std::fs::read(&lab.file_sd).unwrap(), before);

    // A stopped fleet VM (no IP): refused before the hub is touched.
    let run = lab
        .orch(&[
            "run",
            "configure-monitoring",
            "--input",
            r#"{"vmName": "atm10"}"#,
        ])
        .code(1);
    assert!(
        run.all().contains("the VM has an IP in the fleet"),
        "{}",
        run.all()
    );
    assert_eq!(std::fs::read(&lab.file_sd).unwrap(), before);

    // Prometheus unreachable: configure-monitoring fails naming it; the file is unchanged.
    let dead = format!("http://127.0.0.1:{}", free_port());
    let other = r#"{"vmName": "game-vm", "exporterPort": 9999}"#;
    let run = lab.orch_with(&["run", "configure-monitoring", "--input", other], &dead);
    let run = run.code(1);
    assert!(run.all().contains(&dead), "{}", run.all());
    assert_eq!(std::fs::read(&lab.file_sd).unwrap(), before);
}
