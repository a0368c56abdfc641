//! `orch import swamp` end to end: the real binary imports a swamp-style copy of the home lab
//! (`tests/fixtures/swamp-homelab`, built from the reference documents), the result passes
//! `orch check` apart from the extension type orch has no plugin for, and the imported
//! `sync-fleet` runs against the Proxmox VE simulator.

mod support;

use pve_sim::{SimConfig, Simulator};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::lab::PASSWORD;
use support::{Run, contains_bytes, dist};

/// The fixture's node id: the workflows name `keebDev02` by it.
const KEEB_ID: &str = "5b1f0c3e-7a2d-4e8f-9c6b-1a2b3c4d5e6f";
/// The node URL written in the fixture, as in the reference documents.
const REFERENCE_URL: &str = "https://10.0.0.4:8006";

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/swamp-homelab")
}

/// Copies a directory, keeping symlinks as symlinks (swamp's model views are symlinks).
fn copy_tree(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap().flatten() {
        let (from, to) = (e.path(), dst.join(e.file_name()));
        let meta = std::fs::symlink_metadata(&from).unwrap();
        if meta.file_type().is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&from).unwrap(), &to).unwrap();
        } else if meta.is_dir() {
            copy_tree(&from, &to);
        } else {
            std::fs::copy(&from, &to).unwrap();
        }
    }
}

/// Every regular file under `dir` with its bytes, sorted by path.
fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let meta = std::fs::symlink_metadata(e.path()).unwrap();
            if meta.is_dir() {
                stack.push(e.path());
            } else if meta.is_file() {
                out.push((e.path(), std::fs::read(e.path()).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// A copy of the fixture in a temporary directory, its node URL replaced by `url`.
fn swamp_copy(url: Option<&str>) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("swamp-homelab");
    copy_tree(&fixture(), &repo);
    if let Some(url) = url {
        for (path, bytes) in files(&repo) {
            let text = String::from_utf8(bytes).unwrap();
            if text.contains(REFERENCE_URL) {
                std::fs::write(&path, text.replace(REFERENCE_URL, url)).unwrap();
            }
        }
    }
    (tmp, repo)
}

/// Runs the real `orch` in `dir`.
fn orch(dir: &Path, args: &[&str], stdin: Option<&str>) -> Run {
    use std::io::Write;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_orch"));
    cmd.args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("ORCH_VAULT_KEY")
        .env_remove("ORCH_REPO")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("spawn orch");
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    Run::from_output(child.wait_with_output().unwrap())
}

#[test]
fn imported_home_lab_checks_and_syncs_the_fleet_against_the_simulator() {
    let sim = Simulator::start_blocking(SimConfig {
        password: PASSWORD.into(),
        ..SimConfig::default()
    })
    .expect("simulator");
    let (tmp, swamp) = swamp_copy(Some(&sim.url()));
    let before = files(&swamp);

    let import = orch(
        tmp.path(),
        &["--json", "import", "swamp", "swamp-homelab"],
        None,
    )
    .ok();
    assert!(!import.all().contains(PASSWORD), "{}", import.all());
    let report = import.json();
    let into = tmp.path().join("swamp-homelab-orch");
    assert_eq!(files(&swamp), before, "the swamp repository was changed");

    let names = |list: &Value| -> Vec<String> {
        list.as_array()
            .unwrap()
            .iter()
            .map(|m| m["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        names(&report["models"]),
        [
            "allthemonsMinecraft",
            "calamityTerraria",
            "fleet",
            "grafanaHub",
            "hancockMonitoring",
            "keebDev02",
            "monitoringAgent",
            "streamProxy",
            "tailscaleNode",
            "testVmSsh",
            "unifiGateway"
        ]
    );
    assert_eq!(
        names(&report["workflows"]),
        [
            "configure-proxy",
            "deploy-grafana",
            "setup-tailscale",
            "start-minecraft",
            "start-vm",
            "sync-fleet"
        ]
    );
    // The older layout's definition is found by its name inside, not its uuid file name.
    let keeb = &report["models"].as_array().unwrap()[5];
    assert_eq!(
        keeb["from"],
        format!(".swamp/definitions/@user/proxmox/node/{KEEB_ID}.yaml")
    );
    let unmapped = &report["unmappedTypes"][0];
    assert_eq!(unmapped["swamp"], "@user/unifi/controller");
    assert_eq!(
        unmapped["extensionSource"],
        "extensions/models/unifi_controller.ts"
    );
    assert_eq!(
        unmapped["definitions"][0],
        "models/@user/unifi/controller/unifiGateway.yaml:3"
    );
    assert_eq!(report["unmappedTypes"].as_array().unwrap().len(), 1);
    let secret = &report["secretsReplaced"][0];
    assert_eq!(
        secret["at"],
        format!(".swamp/definitions/@user/proxmox/node/{KEEB_ID}.yaml:9: globalArguments.password")
    );
    assert_eq!(
        secret["command"],
        "printf %s \"$SECRET\" | orch vault put keebDev02 password"
    );
    // swamp's data.findBySpec has no orch equivalent: written unchanged and listed.
    let unconverted = &report["notConverted"];
    assert_eq!(unconverted.as_array().unwrap().len(), 1, "{unconverted:#}");
    assert_eq!(unconverted[0]["file"], "workflows/setup-tailscale.yaml");
    assert_eq!(unconverted[0]["line"], 19);
    assert!(
        unconverted[0]["message"]
            .as_str()
            .unwrap()
            .contains("`data.findBySpec()`"),
        "{unconverted:#}"
    );
    assert!(
        report["nextSteps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == "orch check")
    );

    // No plaintext secret of the swamp repository reached any file of the result.
    for (path, bytes) in files(&into) {
        assert!(
            !contains_bytes(&bytes, PASSWORD),
            "{} holds the plaintext password",
            path.display()
        );
    }
    let sync = std::fs::read_to_string(into.join("workflows/sync-fleet.yaml")).unwrap();
    assert!(sync.contains("modelIdOrName: keebDev02"), "{sync}");
    // The uuid stays only in the provenance comment on the first line.
    assert!(!sync.lines().skip(1).any(|l| l.contains(KEEB_ID)), "{sync}");

    // Install the plugins the import lists, as a user would.
    let plugins = std::fs::read_to_string(into.join("plugins.txt")).unwrap();
    let wanted: Vec<&str> = plugins
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .collect();
    assert_eq!(
        wanted,
        [
            "grafana",
            "minecraft",
            "monitoring",
            "nginx",
            "proxmox",
            "ssh",
            "tailscale",
            "terraria"
        ]
    );
    for plugin in &wanted {
        let bundle = dist().join(plugin);
        orch(
            &into,
            &["plugin", "install", bundle.to_str().unwrap()],
            None,
        )
        .ok();
    }

    // orch check: only the extension type orch cannot map and the expression it could not convert.
    let check = orch(&into, &["--json", "check"], None).code(2).json();
    let problems = check["problems"].as_array().unwrap();
    assert!(
        problems
            .iter()
            .any(|p| p["file"] == "models/unifiGateway.yaml"
                && p["message"]
                    .as_str()
                    .unwrap()
                    .contains("unknown model type `unifi/controller`")),
        "{check:#}"
    );
    for p in problems {
        let text = p["text"].as_str().unwrap();
        assert!(
            text.contains("unifi") || text.contains("findBySpec"),
            "unexpected problem: {p:#}"
        );
    }

    // Fill the vault the way the report says, then run the imported sync-fleet.
    orch(
        &into,
        &["vault", "put", "keebDev02", "password"],
        Some(PASSWORD),
    )
    .ok();
    let run = orch(&into, &["--json", "run", "sync-fleet"], None)
        .ok()
        .json();
    assert_eq!(run["status"], "succeeded");
    let list = orch(&into, &["--json", "data", "list", "fleet"], None)
        .ok()
        .json();
    let text = list.to_string();
    assert_eq!(list.as_array().unwrap().len(), 10, "{list:#}");
    for vm in ["allthemons", "gold-image", "slate", "VM 102"] {
        assert!(text.contains(vm), "{vm} missing from {list:#}");
    }
    // The workflow's and the definition's swamp tags flow onto the data the run wrote.
    let tagged = orch(
        &into,
        &[
            "--json",
            "data",
            "list",
            "fleet",
            "--tag",
            "env=lab",
            "--tag",
            "owner=homelab",
        ],
        None,
    )
    .ok()
    .json();
    assert_eq!(tagged.as_array().unwrap().len(), 10, "{tagged:#}");
    assert_eq!(tagged[0]["tags"]["env"], "lab", "{tagged:#}");
    assert_eq!(tagged[0]["tags"]["owner"], "homelab", "{tagged:#}");

    // swamp's approval gates and asserts came across as orch steps (and `orch check` above
    // found nothing wrong with them).
    let deploy: Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(into.join("workflows/deploy-grafana.yaml")).unwrap(),
    )
    .unwrap();
    let steps =
        |job: usize| -> Vec<Value> { deploy["jobs"][job]["steps"].as_array().unwrap().clone() };
    let names = |job: usize| -> Vec<String> {
        steps(job)
            .iter()
            .map(|s| s["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        names(0),
        ["discover", "have-dashboards", "push-approval", "push"]
    );
    assert_eq!(
        names(1),
        ["alerting-approval", "confirm-alerts", "few-dashboards"]
    );
    assert_eq!(steps(0)[2]["task"]["type"], "manual_approval");
    assert_eq!(steps(0)[3]["dependsOn"][0]["step"], "push-approval");
    assert_eq!(
        steps(0)[1]["task"]["expression"],
        "size(inputs.dashboards) > 0"
    );
    assert_eq!(
        steps(1)[1]["task"]["message"],
        "Push the alert rules to Grafana?"
    );
    assert_eq!(steps(1)[1]["dependsOn"][0]["step"], "alerting-approval");
    assert_eq!(deploy["tags"]["area"], "monitoring");
    assert_eq!(deploy["jobs"][0]["concurrency"], 1);

    for (path, bytes) in files(&into.join(".orch")) {
        assert!(
            !contains_bytes(&bytes, PASSWORD),
            "{} holds the plaintext password",
            path.display()
        );
    }
}

#[test]
fn malformed_yaml_is_reported_with_file_and_line_and_the_rest_is_imported() {
    let (tmp, swamp) = swamp_copy(None);
    std::fs::write(
        swamp.join("workflows/broken.yaml"),
        "name: broken\njobs:\n  - name: a\n    steps:\n      - name: x\n        task: {type: model_method\n",
    )
    .unwrap();
    let run = orch(
        tmp.path(),
        &["--json", "import", "swamp", "swamp-homelab"],
        None,
    )
    .code(2);
    let report = run.json();
    let errors = report["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{report:#}");
    assert_eq!(errors[0]["file"], "workflows/broken.yaml");
    assert!(errors[0]["line"].as_u64().is_some(), "{report:#}");
    assert!(
        errors[0]["text"]
            .as_str()
            .unwrap()
            .starts_with("workflows/broken.yaml:"),
        "{report:#}"
    );
    assert_eq!(report["workflows"].as_array().unwrap().len(), 6);
    let into = tmp.path().join("swamp-homelab-orch");
    assert!(into.join("workflows/sync-fleet.yaml").is_file());
    assert!(!into.join("workflows/broken.yaml").exists());

    // The human report names the file too.
    let again = tempfile::tempdir().unwrap();
    let target = again.path().join("out");
    let human = orch(
        tmp.path(),
        &[
            "import",
            "swamp",
            "swamp-homelab",
            "--into",
            target.to_str().unwrap(),
        ],
        None,
    )
    .code(2);
    assert!(
        human
            .stdout
            .contains("not imported:\n  workflows/broken.yaml:"),
        "{}",
        human.all()
    );
}

#[test]
fn into_a_non_empty_directory_is_refused_and_an_orch_repo_needs_force() {
    let (tmp, _swamp) = swamp_copy(None);
    let busy = tmp.path().join("busy");
    std::fs::create_dir(&busy).unwrap();
    std::fs::write(busy.join("notes.txt"), "mine\n").unwrap();
    let run = orch(
        tmp.path(),
        &["import", "swamp", "swamp-homelab", "--into", "busy"],
        None,
    )
    .code(2);
    assert!(run.stderr.contains("not empty"), "{}", run.all());
    assert_eq!(std::fs::read_dir(&busy).unwrap().count(), 1);

    // Into the swamp repository itself: refused, nothing written there.
    let before = files(&tmp.path().join("swamp-homelab"));
    let run = orch(
        tmp.path(),
        &[
            "import",
            "swamp",
            "swamp-homelab",
            "--into",
            "swamp-homelab/orch",
        ],
        None,
    )
    .code(2);
    assert!(
        run.stderr.contains("inside the swamp repository"),
        "{}",
        run.all()
    );
    assert_eq!(files(&tmp.path().join("swamp-homelab")), before);

    // A second import into the first one's result needs --force.
    orch(tmp.path(), &["import", "swamp", "swamp-homelab"], None).ok();
    let run = orch(tmp.path(), &["import", "swamp", "swamp-homelab"], None).code(2);
    assert!(run.stderr.contains("--force"), "{}", run.all());
    orch(
        tmp.path(),
        &["import", "swamp", "swamp-homelab", "--force"],
        None,
    )
    .ok();
}

#[test]
fn dry_run_writes_nothing() {
    let (tmp, _swamp) = swamp_copy(None);
    let report = orch(
        tmp.path(),
        &["--json", "import", "swamp", "swamp-homelab", "--dry-run"],
        None,
    )
    .ok()
    .json();
    assert_eq!(report["dryRun"], true);
    assert_eq!(report["models"].as_array().unwrap().len(), 11);
    assert!(!tmp.path().join("swamp-homelab-orch").exists());
}
