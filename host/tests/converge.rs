//! Declarative converge end to end: `orch plan` / `orch apply` drive a `proxmox/guests` model
//! against the Proxmox VE simulator (with its templates), and the simulator's request log shows
//! what was sent.

mod support;

use pve_sim::{SimConfig, WorldChange};
use support::lab::Lab;

const GUESTS: &str = r#"type: proxmox/guests
description: The declared guests
globalArguments:
  apiUrl: ${{ env.PROXMOX_API_URL }}
  node: ${{ env.PROXMOX_NODE }}
  ticket: ${{ model.keebDev02.resource.node.node.attributes.ticket }}
  csrfToken: ${{ model.keebDev02.resource.node.node.attributes.csrfToken }}
  insecureTls: true
  guests:
    - { name: app1, kind: qemu, vmid: 2101, clone: debian-12-template, dependsOn: [docker] }
    - { name: docker, kind: qemu, vmid: 2001, clone: debian-12-template, cores: 4, memory: 8192, dependsOn: [dns] }
    - { name: dns, kind: lxc, vmid: 1001, clone: debian-12-ct-template, cores: 1, memory: 512 }
"#;

fn lab() -> Lab {
    let lab = Lab::with_config(SimConfig::default().with_templates());
    lab.repo.write("models/guests.yaml", GUESTS);
    lab.orch(&["model", "run", "keebDev02", "auth"]).ok();
    lab
}

/// `(action, name)` of every change of `guests`' plan, in order.
fn planned(lab: &Lab, exit: i32) -> Vec<(String, String)> {
    let plan = lab
        .orch(&["--json", "plan", "guests", "--detailed-exitcode"])
        .code(exit)
        .json();
    let model = plan["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["model"] == "guests")
        .unwrap_or_else(|| panic!("no plan for guests: {plan}"))
        .clone();
    model["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["action"] != "none")
        .map(|c| {
            (
                c["action"].as_str().unwrap().to_string(),
                c["name"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn pair(action: &str, name: &str) -> (String, String) {
    (action.to_string(), name.to_string())
}

/// The writes sent since `from`, without task polls.
fn writes_since(lab: &Lab, from: usize) -> Vec<String> {
    lab.sim.writes()[from..].to_vec()
}

#[test]
fn apply_creates_in_dependency_order_then_changes_nothing_and_repairs_drift() {
    let lab = lab();
    let plan = planned(&lab, 2);
    let creates: Vec<&str> = plan
        .iter()
        .filter(|(a, _)| a == "create")
        .map(|(_, n)| n.as_str())
        .collect();
    assert_eq!(
        creates,
        ["dns", "docker", "app1"],
        "dependencies first: {plan:?}"
    );
    assert!(lab.sim.writes().is_empty(), "a plan sends no write");

    // Not a terminal, no --yes: refused, nothing sent.
    let refused = lab.orch(&["apply", "guests"]).code(2);
    assert!(refused.all().contains("--yes"), "{}", refused.all());
    assert!(lab.sim.writes().is_empty());

    let applied = lab
        .orch(&["--json", "apply", "guests", "--yes"])
        .ok()
        .json();
    assert_eq!(applied["applied"][0]["succeeded"], true, "{applied}");
    let clones: Vec<String> = lab
        .sim
        .writes()
        .into_iter()
        .filter(|w| w.ends_with("/clone"))
        .collect();
    assert_eq!(
        clones,
        [
            "POST /api2/json/nodes/keeb-dev-02/lxc/9001/clone",
            "POST /api2/json/nodes/keeb-dev-02/qemu/9000/clone",
            "POST /api2/json/nodes/keeb-dev-02/qemu/9000/clone",
        ]
    );
    for vmid in [1001, 2001, 2101] {
        assert_eq!(
            lab.sim.guest_status(vmid).as_deref(),
            Some("running"),
            "{vmid}"
        );
    }
    let docker = lab.sim.guest_config(2001).unwrap();
    assert_eq!(docker.get("memory").map(String::as_str), Some("8192"));

    // Right after: nothing to do, and nothing is sent.
    let sent = lab.sim.writes().len();
    assert_eq!(planned(&lab, 0), []);
    let again = lab.orch(&["apply", "guests", "--yes"]).ok();
    assert!(again.all().contains("Nothing to do"), "{}", again.all());
    assert_eq!(writes_since(&lab, sent), Vec::<String>::new());

    // Drift: memory changed behind orch's back is exactly one update.
    lab.sim
        .change(WorldChange::SetConfig {
            vmid: 2001,
            key: "memory".into(),
            value: Some("4096".into()),
        })
        .unwrap();
    assert_eq!(planned(&lab, 2), [pair("update", "docker")]);
    let plan = lab.orch(&["plan", "guests"]).ok();
    assert!(
        plan.all().contains("/memory: 4096 → 8192"),
        "{}",
        plan.all()
    );
    lab.orch(&["apply", "guests", "--yes"]).ok();
    assert_eq!(
        lab.sim
            .guest_config(2001)
            .unwrap()
            .get("memory")
            .map(String::as_str),
        Some("8192")
    );

    // A guest deleted on the node is planned and recreated.
    lab.sim
        .change(WorldChange::DeleteGuest { vmid: 2101 })
        .unwrap();
    assert!(planned(&lab, 2).contains(&pair("create", "app1")));
    lab.orch(&["apply", "guests", "--yes"]).ok();
    assert_eq!(lab.sim.guest_status(2101).as_deref(), Some("running"));
    assert_eq!(planned(&lab, 0), []);

    // The reference VMs are not declared: reported, never touched.
    let full = lab.orch(&["--json", "plan", "guests"]).ok().json();
    let undeclared = full
        .to_string()
        .matches("not declared (left alone)")
        .count();
    assert!(undeclared >= 10, "{full}");
    assert!(
        !lab.sim
            .writes()
            .iter()
            .any(|w| w.contains("/qemu/10") && !w.contains("/qemu/100/")),
        "no write reached a reference VM"
    );
}

#[test]
fn loops_are_refused_before_any_request() {
    let lab = lab();
    let before = lab.sim.requests().len();
    lab.repo.write(
        "models/guests.yaml",
        &GUESTS.replace(
            "clone: debian-12-ct-template, cores: 1",
            "clone: debian-12-ct-template, dependsOn: [app1], cores: 1",
        ),
    );
    let failed = lab.orch(&["plan", "guests"]).code(1);
    assert!(
        failed.all().contains("app1 → docker → dns → app1"),
        "{}",
        failed.all()
    );
    assert_eq!(lab.sim.requests().len(), before, "no request was sent");

    // A loop between definitions is refused by the graph, naming the files.
    lab.repo.write("models/guests.yaml", GUESTS);
    lab.repo.write(
        "models/keebDev02.yaml",
        &std::fs::read_to_string(lab.repo.path().join("models/keebDev02.yaml"))
            .unwrap()
            .replace(
                "realm: pam",
                "realm: ${{ model.guests.resource.guest.dns.attributes.name }}",
            ),
    );
    let looped = lab.orch(&["plan"]).code(2);
    let text = looped.all();
    assert!(
        text.contains("keebDev02") && text.contains("guests"),
        "{text}"
    );
}

/// A definition's `refresh` method runs before the plan: with it, no prior login is needed;
/// when it fails, the plan stops before calling anything with a stale ticket; an unknown one is
/// reported by `orch check`.
#[test]
fn refresh_logs_in_before_the_plan_and_a_failed_refresh_stops_it() {
    let lab = Lab::with_config(SimConfig::default().with_templates());
    lab.repo.write("models/guests.yaml", GUESTS);
    let node = std::fs::read_to_string(lab.repo.path().join("models/keebDev02.yaml")).unwrap();
    lab.repo
        .write("models/keebDev02.yaml", &format!("refresh: auth\n{node}"));
    let plan = planned(&lab, 2);
    let creates = plan.iter().filter(|(action, _)| action == "create").count();
    assert_eq!(creates, 3, "planned without `model run auth`: {plan:?}");

    lab.repo
        .write("models/keebDev02.yaml", &format!("refresh: login\n{node}"));
    let check = lab.orch(&["check"]).code(2);
    assert!(
        check
            .all()
            .contains("models/keebDev02.yaml:1: refresh: `refresh` names `login`"),
        "{}",
        check.all()
    );

    lab.repo
        .write("models/keebDev02.yaml", &format!("refresh: auth\n{node}"));
    lab.repo
        .orch_stdin(&["vault", "put", "proxmox-vault", "password"], "wrong")
        .ok();
    let before = lab.sim.requests().len();
    let failed = lab.orch(&["plan", "guests"]).code(1);
    assert!(
        failed
            .all()
            .contains("refreshing `keebDev02` (its `refresh: auth`) failed"),
        "{}",
        failed.all()
    );
    let sent = lab.sim.requests()[before..].to_vec();
    assert!(
        sent.iter().all(|r| r.contains("/access/ticket")),
        "only the failed login was sent: {sent:?}"
    );
}

/// The `workflows/phoenix` example: its models, graph and declared guests against the
/// simulator, and the DNS records and gateway proxies its aggregation would render.
#[test]
fn the_phoenix_example_converges_its_six_guests_and_aggregates_them() {
    let sim = pve_sim::Simulator::start_blocking(SimConfig {
        password: support::lab::PASSWORD.into(),
        ..SimConfig::default().with_templates()
    })
    .expect("simulator");
    let repo = support::TestRepo::new(&["proxmox", "dnsmasq", "nginx"]);
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../workflows/phoenix");
    for dir in ["models", "workflows"] {
        for e in std::fs::read_dir(example.join(dir)).unwrap().flatten() {
            std::fs::copy(e.path(), repo.path().join(dir).join(e.file_name())).unwrap();
        }
    }
    std::fs::copy(example.join("orch.yaml"), repo.path().join("orch.yaml")).unwrap();
    repo.orch_stdin(
        &["vault", "put", "proxmox-vault", "password"],
        support::lab::PASSWORD,
    )
    .ok();
    let orch = |args: &[&str]| {
        let mut cmd = repo.command(args);
        cmd.env("PROXMOX_API_URL", sim.url());
        support::Run::from_output(cmd.output().unwrap())
    };
    orch(&["check"]).ok();
    let order = orch(&["--json", "graph"]).ok().json();
    assert_eq!(
        order["order"],
        serde_json::json!(["pve", "guests", "dns", "gateway"])
    );

    // No `orch model run pve auth` first: pve's `refresh: auth` logs in before the plan.
    orch(&["apply", "guests", "--yes"]).ok();
    for vmid in [1001, 1002, 2001, 2101, 2102, 2103] {
        assert_eq!(sim.guest_status(vmid).as_deref(), Some("running"), "{vmid}");
    }
    let again = orch(&["plan", "guests", "--detailed-exitcode"]).ok();
    assert!(
        again.all().contains("Plan: 0 to create, 0 to update"),
        "{}",
        again.all()
    );

    // What dnsmasq and the gateway would be given: every guest with an address.
    let dns = orch(&["--json", "model", "show", "dns"]).ok().json();
    let expression = dns["globalArguments"]["hosts"].as_str().unwrap();
    let expression = expression
        .trim()
        .strip_prefix("${{")
        .and_then(|e| e.strip_suffix("}}"))
        .unwrap_or_else(|| panic!("hosts is one expression: {expression}"));
    let hosts = orch(&["--json", "eval", expression]).ok().json();
    let mut names: Vec<&str> = hosts
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "app1.lab",
            "app2.lab",
            "app3.lab",
            "dns.lab",
            "docker.lab",
            "gateway.lab"
        ]
    );
    let app1 = orch(&[
        "--json",
        "eval",
        "model.guests.resource.guest.app1.attributes.ip",
    ])
    .ok()
    .json();
    assert!(
        app1.as_str().is_some_and(|ip| ip.starts_with("10.")),
        "{app1}"
    );
}

#[test]
fn a_plan_that_deletes_needs_allow_destroy() {
    let lab = lab();
    lab.repo.write(
        "models/guests.yaml",
        &GUESTS.replace("  guests:\n", "  prune: true\n  guests:\n"),
    );
    let plan = lab.orch(&["plan", "guests"]).ok();
    assert!(
        plan.all().contains("- delete  guest/atm10"),
        "{}",
        plan.all()
    );
    let refused = lab.orch(&["apply", "guests", "--yes"]).code(2);
    assert!(
        refused.all().contains("pass --allow-destroy"),
        "{}",
        refused.all()
    );
    assert!(lab.sim.writes().is_empty(), "nothing was sent");
}
