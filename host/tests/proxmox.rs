//! Proxmox end to end: the real `orch` binary runs the homelab example repository against the
//! Proxmox VE simulator over HTTPS.

mod support;

use pve_sim::SimConfig;
use support::lab::{Lab, PASSWORD};

fn lab() -> Lab {
    Lab::with_config(SimConfig::default())
}

#[test]
fn sync_fleet_writes_one_resource_per_vm_and_wires_cel() {
    let lab = lab();
    let record = lab.orch(&["--json", "run", "sync-fleet"]).ok().json();
    assert_eq!(record["status"], "succeeded");
    let list = lab.orch(&["--json", "data", "list", "fleet"]).ok().json();
    assert_eq!(list.as_array().unwrap().len(), 10);
    let ip = lab
        .orch(&[
            "--json",
            "eval",
            r#"model.fleet.resource.vm["gold-image"].attributes.ip"#,
        ])
        .ok()
        .json();
    assert_eq!(ip, "10.0.0.143");
    let gold = lab.resource("fleet", "gold-image");
    assert_eq!(gold["vmid"], 109);
    assert_eq!(gold["status"], "running");
    assert_eq!(
        lab.resource("fleet", "VM 102")["vmid"],
        102,
        "names with spaces are identities too"
    );
    let ticket = lab
        .orch(&[
            "--json",
            "eval",
            "model.keebDev02.resource.node.attributes.username",
        ])
        .ok()
        .json();
    assert_eq!(ticket, "root@pam", "the single-instance shorthand works");
}

#[test]
fn stopped_vms_and_vms_without_an_agent_have_a_null_ip() {
    let lab = lab();
    lab.orch(&["run", "sync-fleet"]).ok();
    assert!(lab.resource("fleet", "atm10")["ip"].is_null());
    assert_eq!(lab.resource("fleet", "atm10")["status"], "stopped");
    assert!(
        lab.resource("fleet", "tftp-server")["ip"].is_null(),
        "running, but the guest agent is not"
    );
    assert_eq!(
        lab.resource("fleet", "allthemons")["ip"],
        "10.0.0.96",
        "lo and link-local are skipped"
    );
}

#[test]
fn a_second_sync_versions_what_changed_and_keeps_version_one() {
    let lab = lab();
    lab.orch(&["run", "sync-fleet"]).ok();
    lab.orch(&["run", "start-vm", "--input", "vmName=atm10"])
        .ok();
    lab.orch(&["run", "sync-fleet"]).ok();
    // gold-image did not change; only its `timestamp`, which proxmox/vm declares volatile,
    // moved: no second version, and the first keeps the time of the first sync.
    let versions = lab
        .orch(&["--json", "data", "versions", "fleet", "gold-image"])
        .ok()
        .json();
    assert_eq!(versions.as_array().unwrap().len(), 1, "{versions}");
    let list = lab.orch(&["--json", "data", "list", "fleet"]).ok().json();
    let latest: Vec<u64> = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["name"] != "atm10")
        .map(|r| r["latest"].as_u64().unwrap())
        .collect();
    assert!(
        latest.iter().all(|v| *v == 1),
        "an unchanged fleet adds no versions: {list}"
    );
    let atm = lab
        .orch(&["--json", "data", "versions", "fleet", "atm10"])
        .ok()
        .json();
    let atm = atm.as_array().unwrap();
    assert_eq!(
        atm[0]["attributes"]["status"], "stopped",
        "version 1 is intact"
    );
    assert_eq!(atm.last().unwrap()["attributes"]["status"], "running");
    assert_eq!(lab.sim.vm_status("atm10").as_deref(), Some("running"));
}

#[test]
fn the_lifecycle_workflow_creates_starts_stops_and_deletes() {
    let lab = lab();
    let record = lab
        .orch(&[
            "--json",
            "run",
            "vm-lifecycle-test",
            "--input",
            "vmName=lifecycle-test",
        ])
        .ok()
        .json();
    assert_eq!(record["status"], "succeeded", "{record}");
    let versions = lab
        .orch(&["--json", "data", "versions", "fleet", "lifecycle-test"])
        .ok()
        .json();
    let statuses: Vec<&str> = versions
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["attributes"]["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["stopped", "running", "stopped", "deleted"]);
    assert_eq!(
        lab.sim.vm_status("lifecycle-test"),
        None,
        "gone from the node"
    );
}

#[test]
fn a_wrong_password_is_a_clear_error_and_writes_nothing() {
    let lab = lab();
    lab.repo
        .orch_stdin(&["vault", "put", "proxmox-vault", "password"], "wrong")
        .ok();
    let run = lab.orch(&["run", "sync-fleet"]).code(1);
    assert!(
        run.all().contains("authentication failure"),
        "{}",
        run.all()
    );
    assert!(!run.all().contains("wrong\""), "{}", run.all());
    let data = lab.orch(&["--json", "data", "list"]).ok().json();
    assert!(data.as_array().unwrap().is_empty(), "{data}");
}

#[test]
fn an_expired_ticket_fails_the_sync_with_a_hint_to_authenticate() {
    let lab = lab();
    lab.orch(&["run", "sync-fleet"]).ok();
    lab.sim.expire_tickets();
    let run = lab.orch(&["model", "run", "fleet", "sync"]).code(1);
    assert!(
        run.all().contains("denied") && run.all().contains("auth"),
        "{}",
        run.all()
    );
    lab.orch(&["run", "sync-fleet"]).ok();
}

#[test]
fn destructive_calls_without_or_with_a_wrong_vmid_are_refused_before_the_api_sees_them() {
    let lab = lab();
    lab.orch(&["run", "sync-fleet"]).ok();
    lab.orch(&["model", "run", "keebDev02", "auth"]).ok();
    let before = lab.sim.requests().len();
    let run = lab
        .orch(&[
            "model",
            "run",
            "fleet",
            "stop",
            "--input",
            "vmName=allthemons",
        ])
        .code(1);
    assert!(run.all().contains("expectVmid"), "{}", run.all());
    let run = lab
        .orch(&[
            "model",
            "run",
            "fleet",
            "stop",
            "--input",
            "vmName=allthemons",
            "--input",
            "expectVmid=101",
        ])
        .code(1);
    assert!(
        run.all().contains("refusing") && run.all().contains("108"),
        "{}",
        run.all()
    );
    let run = lab
        .orch(&[
            "run",
            "delete-vm",
            "--input",
            "vmName=allthemons",
            "--input",
            "expectVmid=101",
        ])
        .code(1);
    assert!(run.all().contains("refusing"), "{}", run.all());
    let writes: Vec<String> = lab.sim.requests()[before..]
        .iter()
        .filter(|r| !r.starts_with("GET") && !r.contains("/access/ticket"))
        .cloned()
        .collect();
    assert!(writes.is_empty(), "requests reached the API: {writes:?}");
    assert_eq!(lab.sim.vm_status("allthemons").as_deref(), Some("running"));
    lab.orch(&[
        "run",
        "stop-vm",
        "--input",
        "vmName=allthemons",
        "--input",
        "expectVmid=108",
    ])
    .ok();
    assert_eq!(lab.sim.vm_status("allthemons").as_deref(), Some("stopped"));
}

#[test]
fn a_pinned_certificate_is_accepted_and_a_wrong_pin_is_refused() {
    let lab = lab();
    let pinned = format!(
        "type: proxmox/node\nglobalArguments:\n  apiUrl: ${{{{ env.PROXMOX_API_URL }}}}\n  username: root\n  password: ${{{{ vault.get(\"proxmox-vault\", \"password\") }}}}\n  node: keeb-dev-02\n  fingerprint: \"{}\"\n",
        lab.sim.cert_sha256()
    );
    lab.repo.write("models/keebDev02.yaml", &pinned);
    lab.orch(&["model", "run", "keebDev02", "auth"]).ok();
    lab.repo.write(
        "models/keebDev02.yaml",
        &pinned.replace(&lab.sim.cert_sha256(), &"00".repeat(32)),
    );
    let run = lab.orch(&["model", "run", "keebDev02", "auth"]).code(1);
    assert!(run.all().contains("pinned"), "{}", run.all());
    lab.repo.write(
        "models/keebDev02.yaml",
        &pinned.replace(
            &format!("  fingerprint: \"{}\"\n", lab.sim.cert_sha256()),
            "",
        ),
    );
    let run = lab.orch(&["model", "run", "keebDev02", "auth"]).code(1);
    assert!(
        run.all().contains("certificate"),
        "verification is on by default: {}",
        run.all()
    );
}

#[test]
fn the_vault_password_never_reaches_output_data_or_runs() {
    let lab = lab();
    let run = lab.orch(&["-vv", "--json", "run", "sync-fleet"]).ok();
    assert!(!run.all().contains(PASSWORD));
    assert!(!support::contains_bytes(
        &lab.repo.orch_dir_bytes(),
        PASSWORD
    ));
}

#[test]
fn a_dry_run_reads_but_calls_nothing_that_changes_the_node() {
    let lab = lab();
    lab.orch(&["run", "sync-fleet"]).ok();
    let before = lab.sim.requests().len();
    let record = lab
        .orch(&[
            "--json",
            "run",
            "start-vm",
            "--input",
            "vmName=atm10",
            "--dry-run",
        ])
        .ok()
        .json();
    assert_eq!(record["status"], "succeeded", "{record}");
    let events = record["events"].to_string();
    assert!(
        events.contains(r#"dry run: would call fleet.start({\"vmName\":\"atm10\"})"#),
        "{events}"
    );
    assert_eq!(lab.sim.vm_status("atm10").as_deref(), Some("stopped"));
    assert_eq!(
        lab.sim.requests()[before..].len(),
        0,
        "auth and start are actions: neither is sent"
    );

    // A list step (the sync) runs: it only reads the node.
    lab.orch(&["run", "sync-fleet", "--dry-run"]).ok();
    let sent: Vec<String> = lab.sim.requests()[before..].to_vec();
    assert!(!sent.is_empty());
    assert!(
        sent.iter().all(|r| r.starts_with("GET ")),
        "only reads: {sent:?}"
    );
}

/// The store holds the node's session ticket (a `writeOnly` attribute, masked in every output
/// but read by expressions), so only its owner may read the file.
#[cfg(unix)]
#[test]
fn the_data_store_holding_the_session_ticket_is_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let lab = lab();
    lab.orch(&["run", "sync-fleet"]).ok();
    let path = lab.repo.path().join(".orch/data.redb");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{}: {mode:o}", path.display());
}
