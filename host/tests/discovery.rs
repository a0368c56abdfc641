//! Discovery and change detection end to end: the real `orch` binary runs the homelab's
//! `sync-all` against a 3-node Proxmox VE simulator over HTTPS, the test changes the simulated
//! world, and `orch data changes` / `orch data diff` must tell exactly what happened.

mod support;

use pve_sim::{Fault, SimConfig, WorldChange};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use support::lab::Lab;

/// The homelab with VMs, containers and tasks read from every node (`node: "*"`); storage is
/// one node's view of its pools.
fn cluster_lab() -> Lab {
    let lab = Lab::with_config(SimConfig::test_cluster());
    for model in ["fleet", "containers", "tasks"] {
        let path = lab.repo.path().join(format!("models/{model}.yaml"));
        let text = std::fs::read_to_string(&path).unwrap();
        let all = text.replace("node: ${{ env.PROXMOX_NODE }}", "node: \"*\"");
        assert_ne!(all, text, "models/{model}.yaml names its node");
        std::fs::write(path, all).unwrap();
    }
    lab
}

fn names(lab: &Lab, model: &str, all: bool) -> BTreeSet<String> {
    let mut args = vec!["--json", "data", "list", model];
    if all {
        args.push("--all");
    }
    lab.orch(&args)
        .ok()
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect()
}

/// `(model, spec/name, kind)` of every change `data changes` reports, and the changed fields
/// of each changed resource.
fn changes(lab: &Lab, since: &str) -> (BTreeSet<(String, String, String)>, Value) {
    let report = lab
        .orch(&["--json", "data", "changes", "--since", since])
        .ok()
        .json();
    let mut seen = BTreeSet::new();
    let mut fields = serde_json::Map::new();
    for group in report.as_array().unwrap() {
        let model = group["model"].as_str().unwrap();
        for c in group["changes"].as_array().unwrap() {
            let key = format!(
                "{}/{}",
                c["spec"].as_str().unwrap(),
                c["name"].as_str().unwrap()
            );
            seen.insert((
                model.to_string(),
                key.clone(),
                c["kind"].as_str().unwrap().to_string(),
            ));
            if c["kind"] == "changed" {
                let names: Vec<&String> = c["fields"].as_object().unwrap().keys().collect();
                fields.insert(format!("{model}/{key}"), json!(names));
            }
        }
    }
    (seen, Value::Object(fields))
}

fn change(kind: &str, model: &str, what: &str) -> (String, String, String) {
    (model.to_string(), what.to_string(), kind.to_string())
}

#[test]
fn a_cluster_is_discovered_in_one_run_and_its_changes_are_reported_exactly() {
    let lab = cluster_lab();
    let first = lab.orch(&["--json", "run", "sync-all"]).ok().json();
    assert_eq!(first["status"], "succeeded", "{first}");
    let first_id = first["id"].as_str().unwrap().to_string();

    // Every node's guests, the pools and the tasks, in one run.
    let vms = names(&lab, "fleet", false);
    assert_eq!(
        vms.len(),
        15,
        "10 reference VMs + 3 on -03 + 2 on -04: {vms:?}"
    );
    assert!(vms.contains("gitlab") && vms.contains("win11") && vms.contains("gold-image"));
    assert_eq!(lab.resource("fleet", "gitlab")["node"], "keeb-dev-03");
    let cts = names(&lab, "containers", false);
    assert_eq!(
        cts,
        ["grafana", "mqtt", "pihole", "scratch", "wiki"]
            .map(String::from)
            .into(),
    );
    let pihole = lab.resource("containers", "pihole");
    assert_eq!(pihole["status"], "running");
    assert_eq!(pihole["ips"], json!(["10.0.0.53"]));
    assert_eq!(
        lab.resource("containers", "scratch")["ips"],
        json!([]),
        "running, no IPv4"
    );
    assert_eq!(lab.resource("containers", "wiki")["status"], "stopped");
    assert_eq!(lab.resource("containers", "mqtt")["node"], "keeb-dev-03");
    assert_eq!(
        names(&lab, "storage", false),
        ["local", "local-lvm", "nfs-backup"]
            .map(String::from)
            .into()
    );
    let tasks = lab.orch(&["--json", "data", "list", "tasks"]).ok().json();
    let tasks = tasks.as_array().unwrap();
    assert!(tasks.len() >= 50, "{} tasks", tasks.len());
    let statuses: BTreeSet<String> = tasks
        .iter()
        .map(|t| {
            lab.resource("tasks", t["name"].as_str().unwrap())["status"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .take(30)
        .collect();
    assert!(
        statuses.contains("ok") && statuses.contains("warning") && statuses.contains("error"),
        "finished tasks end OK, with warnings and with errors: {statuses:?}"
    );

    // A second sync of an unchanged world is no change at all (the node's fresh ticket aside).
    let again = lab.orch(&["--json", "run", "sync-all"]).ok().json();
    let again_id = again["id"].as_str().unwrap().to_string();
    let (quiet, _) = changes(&lab, &first_id);
    assert_eq!(
        quiet,
        [change("changed", "keebDev02", "node/node")].into(),
        "only the login ticket changed"
    );

    // The login ticket changed, and `data` says so without printing it.
    let report = lab
        .orch(&["--json", "data", "changes", "--since", &first_id])
        .ok()
        .json();
    let node = &report[0]["changes"][0];
    assert_eq!(
        (&report[0]["model"], &node["fields"]["ticket"]),
        (
            &json!("keebDev02"),
            &json!({"from": "(sensitive)", "to": "(sensitive)"})
        ),
        "{report}"
    );
    let ticket = lab
        .orch(&[
            "--json",
            "eval",
            "model.keebDev02.resource.node.node.attributes.ticket",
        ])
        .ok()
        .json();
    let ticket = ticket.as_str().unwrap();
    assert!(ticket.starts_with("PVE:root@pam:"), "expressions read it");
    for args in [
        &["data", "changes", "--since", first_id.as_str()][..],
        &["data", "get", "keebDev02", "node"],
        &["--json", "data", "get", "keebDev02", "node"],
        &["data", "versions", "keebDev02", "node"],
        &["--json", "data", "diff", "keebDev02", "node"],
    ] {
        let out = lab.orch(args).ok().all();
        assert!(
            !out.contains(ticket),
            "orch {args:?} printed the ticket: {out}"
        );
        assert!(out.contains("(sensitive)"), "orch {args:?}: {out}");
    }

    // The world changes between two syncs.
    for c in [
        WorldChange::DeleteGuest { vmid: 200 },
        WorldChange::StopGuest { vmid: 300 },
        WorldChange::FillStorage {
            storage: "local-lvm".into(),
            node: None,
            used: None,
            used_fraction: Some(0.95),
        },
        WorldChange::RenameGuest {
            vmid: 210,
            name: "nas-prod".into(),
        },
    ] {
        lab.sim.change(c).unwrap();
    }
    let third = lab.orch(&["--json", "run", "sync-all"]).ok().json();
    assert_eq!(third["status"], "succeeded", "{third}");
    let third_id = third["id"].as_str().unwrap().to_string();

    let (found, fields) = changes(&lab, &again_id);
    assert_eq!(
        found,
        [
            change("retired", "fleet", "vm/gitlab"),
            change("retired", "fleet", "vm/nas-test"),
            change("appeared", "fleet", "vm/nas-prod"),
            change("changed", "containers", "ct/mqtt"),
            change("changed", "storage", "pool/local-lvm"),
            change("changed", "keebDev02", "node/node"),
        ]
        .into(),
        "{fields}"
    );
    assert_eq!(fields["containers/ct/mqtt"], json!(["ips", "status"]));
    assert_eq!(fields["storage/pool/local-lvm"], json!(["avail", "used"]));

    // Field-level diff of the stopped container, volatile `timestamp` left out.
    let diff = lab
        .orch(&["--json", "data", "diff", "containers", "mqtt"])
        .ok()
        .json();
    assert_eq!(
        diff["changed"],
        json!({
            "ips": {"from": ["10.0.0.80"], "to": []},
            "status": {"from": "running", "to": "stopped"},
        }),
        "{diff}"
    );
    assert_eq!(diff["added"], json!({}));
    assert_eq!(diff["removed"], json!({}));

    // The deleted VM is retired, not erased: hidden from the list, its history kept.
    assert!(!names(&lab, "fleet", false).contains("gitlab"));
    assert!(names(&lab, "fleet", true).contains("gitlab"));
    let versions = lab
        .orch(&["--json", "data", "versions", "fleet", "gitlab"])
        .ok()
        .json();
    let versions = versions.as_array().unwrap();
    assert_eq!(versions.len(), 2, "{versions:?}");
    assert_eq!(versions[0]["attributes"]["ip"], "10.0.0.70");
    assert_eq!(versions[1]["retired"], true);
    assert_eq!(versions[1]["provenance"]["runId"], third_id.as_str());

    // A step that still refers to it fails, saying who removed it and when.
    lab.repo.write(
        "workflows/lookup-gitlab.yaml",
        "name: lookup-gitlab\njobs:\n  - name: main\n    steps:\n      - name: lookup\n        task:\n          type: model_method\n          modelIdOrName: fleet\n          methodName: lookup\n          inputs: { vmName: '${{ model.fleet.resource.vm.gitlab.attributes.name }}' }\n",
    );
    let failed = lab.orch(&["run", "lookup-gitlab"]).code(1);
    let text = failed.all();
    assert!(
        text.contains(&format!(
            "vm/gitlab of model fleet was removed by run {third_id} at"
        )),
        "{text}"
    );
}

#[test]
fn malformed_answers_are_typed_errors_naming_endpoint_and_field_and_retire_nothing() {
    let lab = cluster_lab();
    lab.orch(&["run", "sync-all"]).ok();
    let before = names(&lab, "fleet", false);
    let cases = [
        (
            "containers",
            "/cluster/resources",
            Fault::MissingData,
            "GET /cluster/resources?type=vm: Proxmox's answer has no `data` field",
        ),
        (
            "fleet",
            "/cluster/resources",
            Fault::WrongDataType,
            "GET /cluster/resources?type=vm: field `data` is an object, not a list",
        ),
        (
            "storage",
            "/nodes/*/storage",
            Fault::StringField {
                field: "total".into(),
                value: "lots".into(),
            },
            "GET /nodes/keeb-dev-02/storage: field `total` of entry 0 is a string (\"lots\")",
        ),
        (
            "tasks",
            "/nodes/*/tasks",
            Fault::Html { status: 500 },
            "/tasks?start=0&limit=500: an HTML page titled \"500 Internal Server Error\" instead of PVE's JSON (HTTP 500)",
        ),
        (
            "fleet",
            "/cluster/resources",
            Fault::Timeout,
            "GET /cluster/resources?type=vm: a cluster node did not answer the proxy",
        ),
    ];
    for (model, path, fault, expected) in cases {
        lab.sim
            .change(WorldChange::Fault {
                method: None,
                path: path.into(),
                fault: fault.clone(),
            })
            .unwrap();
        let run = lab.orch(&["model", "run", model, "sync"]).code(1);
        let text = run.all();
        assert!(text.contains(expected), "{fault:?} on {path}: {text}");
        assert!(!text.contains("panicked"), "{text}");
        lab.sim.change(WorldChange::ClearFaults).unwrap();
    }
    assert_eq!(
        names(&lab, "fleet", false),
        before,
        "a failed listing retires nothing"
    );
}
