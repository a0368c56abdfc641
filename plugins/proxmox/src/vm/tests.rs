//! The fleet's behaviour against a scripted Proxmox.

use super::*;
use crate::pve::fake::{self, FakePve, assert_error};
use orch_plugin_sdk::HttpResponse;
use std::cell::RefCell;
use std::rc::Rc;

const NODE: &str = "keeb-dev-02";
const TS: &str = "2026-02-11T05:40:47Z";

fn globals() -> VmGlobals {
    serde_json::from_value(json!({
        "apiUrl": "https://10.0.0.4:8006",
        "node": NODE,
        "ticket": "PVE:root@pam:6819A3C2::sig",
        "csrfToken": "6819A3C2:csrf",
        "insecureTls": true
    }))
    .expect("globals")
}

/// The reference fleet from sync-fleet-data-flow.md.
fn reference_list() -> Value {
    json!([
        {"vmid": 108, "name": "allthemons", "status": "running"},
        {"vmid": 101, "name": "atm10", "status": "stopped"},
        {"vmid": 107, "name": "calamity", "status": "running"},
        {"vmid": 106, "name": "factorio", "status": "stopped"},
        {"vmid": 109, "name": "gold-image", "status": "running"},
        {"vmid": 105, "name": "meatballcraft", "status": "stopped"},
        {"vmid": 104, "name": "satisfactory", "status": "stopped"},
        {"vmid": 100, "name": "slate", "status": "running"},
        {"vmid": 103, "name": "tftp-server", "status": "running"},
        {"vmid": 102, "status": "stopped"}
    ])
}

fn agent_answer(ip: &str) -> HttpResponse {
    fake::ok(json!({"result": [
        {"name": "lo", "ip-addresses": [{"ip-address-type": "ipv4", "ip-address": "127.0.0.1", "prefix": 8}]},
        {"name": "eth0", "ip-addresses": [
            {"ip-address-type": "ipv6", "ip-address": "fe80::1%eth0", "prefix": 64},
            {"ip-address-type": "ipv4", "ip-address": ip, "prefix": 24}
        ]}
    ]}))
}

fn reference_agent(vmid: u64) -> HttpResponse {
    match vmid {
        108 => agent_answer("10.0.0.96"),
        107 => agent_answer("10.0.0.208"),
        109 => agent_answer("10.0.0.143"),
        100 => agent_answer("10.0.0.33"),
        _ => fake::fail(500, "QEMU guest agent is not running"),
    }
}

const UPID: &str = "UPID:keeb-dev-02:0001A2B3:0012D687:6819A3C2:qmtask:108:root@pam:";

/// A Proxmox with `list`, whose agent answers with `agent(vmid)`; writes start a task that is
/// done at the first poll; config reads answer `{"boot": "order=net0;scsi0"}`.
fn node(list: Value, agent: impl Fn(u64) -> HttpResponse + 'static) -> FakePve {
    node_with(list, agent, |_, _, _| None)
}

fn node_with(
    list: Value,
    agent: impl Fn(u64) -> HttpResponse + 'static,
    overrides: impl Fn(&str, &str, &orch_plugin_sdk::HttpRequest) -> Option<HttpResponse> + 'static,
) -> FakePve {
    FakePve::new(move |method, path, req| {
        if let Some(answer) = overrides(method, path, req) {
            return answer;
        }
        let rest = path.strip_prefix("/nodes/keeb-dev-02").unwrap_or("");
        match (method, rest) {
            ("GET", "/qemu") => fake::ok(list.clone()),
            ("GET", r) if r.ends_with("/agent/network-get-interfaces") => {
                let vmid = r
                    .trim_start_matches("/qemu/")
                    .split('/')
                    .next()
                    .and_then(|id| id.parse().ok())
                    .unwrap_or(0);
                agent(vmid)
            }
            ("GET", r) if r.starts_with("/tasks/") => {
                fake::ok(json!({"status": "stopped", "exitstatus": "OK", "upid": UPID}))
            }
            ("GET", r) if r.ends_with("/config") => {
                fake::ok(json!({"boot": "order=net0;scsi0", "memory": "4096", "name": "x"}))
            }
            ("POST" | "PUT" | "DELETE", _) => fake::ok(json!(UPID)),
            _ => fake::fail(501, &format!("Method '{method} {path}' not implemented")),
        }
    })
}

type Warnings = Rc<RefCell<Vec<String>>>;

fn run<T>(
    fake: &FakePve,
    dry_run: bool,
    f: impl FnOnce(&Fleet) -> Result<T>,
) -> (Result<T>, Vec<String>) {
    run_globals(fake, &globals(), dry_run, f)
}

fn run_globals<T>(
    fake: &FakePve,
    globals: &VmGlobals,
    dry_run: bool,
    f: impl FnOnce(&Fleet) -> Result<T>,
) -> (Result<T>, Vec<String>) {
    let warnings: Warnings = Rc::default();
    let sink = warnings.clone();
    let warn = move |m: &str| sink.borrow_mut().push(m.to_string());
    fn no_sleep(_: Duration) {}
    let result =
        Fleet::new(fake, globals, &warn, no_sleep, TS.into(), dry_run).and_then(|fl| f(&fl));
    let seen = warnings.borrow().clone();
    (result, seen)
}

fn writes(fake: &FakePve) -> Vec<String> {
    fake.calls()
        .into_iter()
        .filter(|c| !c.starts_with("GET "))
        .collect()
}

fn named<'r>(resources: &'r [VmResource], name: &str) -> &'r VmResource {
    resources.iter().find(|r| r.vm_name == name).expect(name)
}

#[test]
fn sync_fleet_writes_one_resource_per_vm_with_agent_ips() {
    let fake = node(reference_list(), reference_agent);
    let (synced, warnings) = run(&fake, false, |f| f.sync());
    let synced = synced.expect("sync");
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(synced.resources.len(), 10);
    assert_eq!(synced.summary.count, 10);
    assert_eq!(synced.summary.running, 5);
    let allthemons = named(&synced.resources, "allthemons");
    assert_eq!(
        serde_json::to_value(allthemons).unwrap(),
        json!({"vmid": 108, "vmName": "allthemons", "status": "running", "ip": "10.0.0.96",
               "node": NODE, "timestamp": TS})
    );
    assert_eq!(named(&synced.resources, "atm10").ip, None);
    // Running, but its agent is not running: null, not an error.
    assert_eq!(named(&synced.resources, "tftp-server").status, "running");
    assert_eq!(named(&synced.resources, "tftp-server").ip, None);
    // No name in Proxmox: named as the Proxmox UI shows it.
    assert_eq!(named(&synced.resources, "VM 102").vmid, 102);
    // The summary lists VMs by vmid.
    let summary = serde_json::to_value(&synced.summary).unwrap();
    assert_eq!(
        summary["vms"][0],
        json!({"vmName": "slate", "vmid": 100, "status": "running", "ip": "10.0.0.33"})
    );
    assert!(summary.get("duplicateNames").is_none());
}

#[test]
fn sync_asks_the_agent_only_about_running_vms_and_writes_nothing_to_proxmox() {
    let fake = node(reference_list(), reference_agent);
    run(&fake, false, |f| f.sync()).0.expect("sync");
    let calls = fake.calls();
    assert_eq!(calls[0], "GET /nodes/keeb-dev-02/qemu");
    let agent_calls: Vec<_> = calls.iter().filter(|c| c.contains("/agent/")).collect();
    assert_eq!(agent_calls.len(), 5);
    assert!(
        agent_calls
            .iter()
            .all(|c| !c.contains("/101/") && !c.contains("/102/"))
    );
    assert!(writes(&fake).is_empty());
}

#[test]
fn sync_sends_the_ticket_cookie_on_every_request() {
    let fake = node(reference_list(), reference_agent);
    run(&fake, false, |f| f.sync()).0.expect("sync");
    for req in fake.seen.borrow().iter() {
        assert_eq!(
            fake::header(req, "cookie"),
            Some("PVEAuthCookie=PVE:root@pam:6819A3C2::sig")
        );
        assert_eq!(
            req.url.split("/api2/json").next(),
            Some("https://10.0.0.4:8006")
        );
    }
}

#[test]
fn sync_of_ten_thousand_vms_makes_one_list_call_and_one_agent_call_per_running_vm() {
    let list: Vec<Value> = (0..10_000u64)
        .map(|i| {
            let status = if i % 2 == 0 { "running" } else { "stopped" };
            json!({"vmid": 100 + i, "name": format!("vm-{i}"), "status": status})
        })
        .collect();
    let fake = node(Value::Array(list), |vmid| {
        agent_answer(&format!(
            "10.{}.{}.{}",
            vmid >> 16,
            (vmid >> 8) & 255,
            vmid & 255
        ))
    });
    let started = std::time::Instant::now();
    let synced = run(&fake, false, |f| f.sync()).0.expect("sync");
    assert_eq!(synced.resources.len(), 10_000);
    assert_eq!(synced.summary.running, 5_000);
    assert_eq!(fake.calls().len(), 1 + 5_000);
    // Generous: catches accidental quadratic work, not machine noise.
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn duplicate_names_keep_the_lowest_vmid_and_are_reported() {
    let list = json!([
        {"vmid": 120, "name": "twin", "status": "stopped"},
        {"vmid": 110, "name": "twin", "status": "stopped"},
        {"vmid": 111, "name": "solo", "status": "stopped"}
    ]);
    let fake = node(list, reference_agent);
    let (synced, warnings) = run(&fake, false, |f| f.sync());
    let synced = synced.expect("sync");
    assert_eq!(synced.resources.len(), 2);
    assert_eq!(named(&synced.resources, "twin").vmid, 110);
    assert_eq!(synced.summary.duplicate_names, ["twin"]);
    assert_eq!(synced.summary.count, 3);
    assert_eq!(warnings.len(), 1);
    // A single-VM method refuses to guess.
    let (e, _) = run(&fake, false, |f| f.lookup("twin"));
    assert!(
        matches!(e, Err(Error::Conflict(ref m)) if m.contains("110, 120")),
        "{e:?}"
    );
}

#[test]
fn expired_ticket_is_denied_with_the_auth_hint() {
    let fake = FakePve::new(|_, _, _| fake::fail(401, "authentication failure"));
    let (e, _) = run(&fake, false, |f| f.sync());
    let Err(Error::Denied(text)) = e else {
        panic!("{e:?}")
    };
    assert!(
        text.contains("ticket is missing or expired") && text.contains("keebDev02.auth"),
        "{text}"
    );
}

#[test]
fn missing_ticket_is_denied_before_any_request() {
    let fake = node(reference_list(), reference_agent);
    let mut g = globals();
    g.ticket = None;
    let (e, _) = run_globals(&fake, &g, false, |f| f.sync());
    assert!(
        matches!(e, Err(Error::Denied(ref m)) if m.contains("keebDev02.auth")),
        "{e:?}"
    );
    assert!(fake.calls().is_empty());
}

#[test]
fn api_token_replaces_the_ticket() {
    let fake = node(reference_list(), reference_agent);
    let mut g = globals();
    g.ticket = None;
    g.csrf_token = None;
    g.api_token = Some("root@pam!orch=secret".into());
    run_globals(&fake, &g, false, |f| {
        f.stop(&ConfirmedArgs {
            vm_name: "slate".into(),
            expect_vmid: Some(100),
        })
    })
    .0
    .expect("stop");
    for req in fake.seen.borrow().iter() {
        assert_eq!(
            fake::header(req, "authorization"),
            Some("PVEAPIToken=root@pam!orch=secret")
        );
        assert_eq!(fake::header(req, "cookie"), None);
    }
}

#[test]
fn agent_denial_stops_the_sync_but_other_agent_errors_only_warn() {
    let fake = node(reference_list(), |_| {
        fake::fail(403, "Permission check failed (/vms/108, VM.Monitor)")
    });
    assert!(matches!(
        run(&fake, false, |f| f.sync()).0,
        Err(Error::Denied(_))
    ));

    let fake = node(reference_list(), |_| fake::fail(404, "no such endpoint"));
    let (synced, warnings) = run(&fake, false, |f| f.sync());
    assert!(
        synced
            .expect("sync")
            .resources
            .iter()
            .all(|r| r.ip.is_none())
    );
    assert_eq!(warnings.len(), 5);

    let fake = node(reference_list(), |_| fake::ok(json!("not an agent answer")));
    let (synced, warnings) = run(&fake, false, |f| f.sync());
    assert!(synced.is_ok());
    assert_eq!(warnings.len(), 5);
}

#[test]
fn lookup_finds_names_with_spaces_and_resolves_the_ip() {
    let fake = node(reference_list(), reference_agent);
    let vm = run(&fake, false, |f| f.lookup("VM 102")).0.expect("lookup");
    assert_eq!(
        (vm.vmid, vm.status.as_str(), vm.ip.as_deref()),
        (102, "stopped", None)
    );
    let vm = run(&fake, false, |f| f.lookup("calamity"))
        .0
        .expect("lookup");
    assert_eq!(vm.ip.as_deref(), Some("10.0.0.208"));
}

#[test]
fn lookup_of_an_unknown_name_lists_close_names() {
    let fake = node(reference_list(), reference_agent);
    let (e, _) = run(&fake, false, |f| f.lookup("atm11"));
    assert_error!(
        e.unwrap_err(),
        Error::NotFound(format!(
            "no VM named \"atm11\" on node {NODE}; close names: \"atm10\""
        ))
    );
    let (e, _) = run(&fake, false, |f| f.lookup("vm 102"));
    assert!(matches!(e, Err(Error::NotFound(ref m)) if m.contains("\"VM 102\"")));
}

#[test]
fn create_uses_the_next_id_posts_the_form_and_waits_for_the_task() {
    let fake = node_with(reference_list(), reference_agent, |method, path, _| {
        (method == "GET" && path == "/cluster/nextid").then(|| fake::ok(json!("110")))
    });
    let args = CreateArgs {
        vm_name: "new-box".into(),
        vmid: None,
        memory: Some(2048),
        cores: Some(2),
        config: Some(
            serde_json::from_value(json!({"agent": 1, "net0": "virtio,bridge=vmbr0"})).unwrap(),
        ),
    };
    let outcome = run(&fake, false, |f| f.create(&args)).0.expect("create");
    let calls = fake.calls();
    assert_eq!(calls[1], "GET /cluster/nextid");
    assert_eq!(calls[2], "POST /nodes/keeb-dev-02/qemu");
    assert!(calls[3].starts_with("GET /nodes/keeb-dev-02/tasks/UPID%3Akeeb-dev-02%3A"));
    let post = &fake.seen.borrow()[2];
    assert_eq!(
        fake::body(post),
        "vmid=110&name=new-box&memory=2048&cores=2&agent=1&net0=virtio%2Cbridge%3Dvmbr0"
    );
    assert_eq!(
        fake::header(post, "CSRFPreventionToken"),
        Some("6819A3C2:csrf")
    );
    assert_eq!(
        outcome.output(),
        json!({"vmid": 110, "vmName": "new-box", "status": "stopped", "ip": null,
               "node": NODE, "timestamp": TS, "changed": true})
    );
}

#[test]
fn create_falls_back_to_max_vmid_plus_one_without_nextid() {
    // The default fake answers 501 for /cluster/nextid.
    let fake = node(reference_list(), reference_agent);
    let args = CreateArgs {
        vm_name: "fresh".into(),
        vmid: None,
        memory: None,
        cores: None,
        config: None,
    };
    let outcome = run(&fake, false, |f| f.create(&args)).0.expect("create");
    assert_eq!(outcome.resource().unwrap().vmid, 110);
    assert_eq!(fake::body(&fake.seen.borrow()[2]), "vmid=110&name=fresh");
}

#[test]
fn create_refuses_taken_names_and_vmids_before_posting() {
    let fake = node(reference_list(), reference_agent);
    let args = CreateArgs {
        vm_name: "calamity".into(),
        vmid: None,
        memory: None,
        cores: None,
        config: None,
    };
    assert!(matches!(
        run(&fake, false, |f| f.create(&args)).0,
        Err(Error::Conflict(_))
    ));
    let args = CreateArgs {
        vm_name: "other".into(),
        vmid: Some(107),
        memory: None,
        cores: None,
        config: None,
    };
    let e = run(&fake, false, |f| f.create(&args)).0.unwrap_err();
    assert_error!(
        e,
        Error::Conflict(format!(
            "vmid 107 is already used by \"calamity\" on node {NODE}"
        ))
    );
    assert!(writes(&fake).is_empty());
}

#[test]
fn create_conflict_from_proxmox_is_typed() {
    let fake = node_with(reference_list(), reference_agent, |method, _, _| {
        (method == "POST").then(|| {
            fake::fail(
                500,
                "unable to create VM 200 - VM 200 already exists on node 'other'",
            )
        })
    });
    let args = CreateArgs {
        vm_name: "x".into(),
        vmid: Some(200),
        memory: None,
        cores: None,
        config: None,
    };
    assert!(
        matches!(run(&fake, false, |f| f.create(&args)).0, Err(Error::Conflict(m)) if m.contains("already exists"))
    );
}

#[test]
fn start_posts_waits_and_records_the_agent_ip() {
    let fake = node(reference_list(), |vmid| match vmid {
        101 => agent_answer("10.0.0.101"),
        _ => fake::fail(500, "VM is not running"),
    });
    let args = StartArgs {
        vm_name: "atm10".into(),
        wait_for_ip_seconds: None,
    };
    let outcome = run(&fake, false, |f| f.start(&args)).0.expect("start");
    assert_eq!(
        writes(&fake),
        ["POST /nodes/keeb-dev-02/qemu/101/status/start"]
    );
    let r = outcome.resource().unwrap();
    assert_eq!(
        (r.status.as_str(), r.ip.as_deref()),
        ("running", Some("10.0.0.101"))
    );
}

#[test]
fn start_polls_the_agent_a_bounded_number_of_times() {
    let fake = node(reference_list(), |_| {
        fake::fail(500, "QEMU guest agent is not running")
    });
    let args = StartArgs {
        vm_name: "atm10".into(),
        wait_for_ip_seconds: Some(3),
    };
    let (outcome, warnings) = run(&fake, false, |f| f.start(&args));
    assert_eq!(outcome.expect("start").resource().unwrap().ip, None);
    // Sleeps of 0.25 + 0.5 + 1 + 1 s fit in 3 s: five attempts, then a warning.
    let agent_calls = fake
        .calls()
        .iter()
        .filter(|c| c.contains("/agent/"))
        .count();
    assert_eq!(agent_calls, 5);
    assert_eq!(warnings.len(), 1);
}

#[test]
fn start_does_not_wait_for_a_vm_without_an_agent() {
    let fake = node(reference_list(), |_| {
        fake::fail(500, "No QEMU guest agent configured")
    });
    let args = StartArgs {
        vm_name: "atm10".into(),
        wait_for_ip_seconds: Some(60),
    };
    let (outcome, warnings) = run(&fake, false, |f| f.start(&args));
    assert_eq!(outcome.expect("start").resource().unwrap().ip, None);
    assert_eq!(
        fake.calls()
            .iter()
            .filter(|c| c.contains("/agent/"))
            .count(),
        1
    );
    assert!(warnings[0].contains("agent: 1"), "{warnings:?}");
}

#[test]
fn start_of_a_running_vm_changes_nothing() {
    let fake = node(reference_list(), reference_agent);
    let args = StartArgs {
        vm_name: "slate".into(),
        wait_for_ip_seconds: None,
    };
    let outcome = run(&fake, false, |f| f.start(&args)).0.expect("start");
    assert!(writes(&fake).is_empty());
    assert_eq!(outcome.output()["changed"], json!(false));
    assert_eq!(outcome.output()["ip"], json!("10.0.0.33"));
}

#[test]
fn stop_with_the_wrong_expected_vmid_is_refused_before_any_write() {
    let fake = node(reference_list(), reference_agent);
    let args = ConfirmedArgs {
        vm_name: "atm10".into(),
        expect_vmid: Some(108),
    };
    let e = run(&fake, false, |f| f.stop(&args)).0.unwrap_err();
    assert_error!(
        e,
        Error::Conflict("refusing to stop atm10: expected vmid 108 but the node says 101".into())
    );
    assert!(writes(&fake).is_empty());
}

#[test]
fn destructive_call_without_expected_vmid_is_refused() {
    let fake = node(reference_list(), reference_agent);
    let args = ConfirmedArgs {
        vm_name: "slate".into(),
        expect_vmid: None,
    };
    assert!(matches!(
        run(&fake, false, |f| f.delete(&args)).0,
        Err(Error::InvalidArguments(_))
    ));
    assert!(matches!(
        run(&fake, false, |f| f.stop(&args)).0,
        Err(Error::InvalidArguments(_))
    ));
    assert!(writes(&fake).is_empty());
}

#[test]
fn stop_sends_csrf_and_records_stopped_without_ip() {
    let fake = node(reference_list(), reference_agent);
    let args = ConfirmedArgs {
        vm_name: "allthemons".into(),
        expect_vmid: Some(108),
    };
    let outcome = run(&fake, false, |f| f.stop(&args)).0.expect("stop");
    assert_eq!(
        writes(&fake),
        ["POST /nodes/keeb-dev-02/qemu/108/status/stop"]
    );
    let post = fake
        .seen
        .borrow()
        .iter()
        .find(|r| r.method == "POST")
        .cloned()
        .unwrap();
    assert_eq!(
        fake::header(&post, "CSRFPreventionToken"),
        Some("6819A3C2:csrf")
    );
    let r = outcome.resource().unwrap();
    assert_eq!((r.status.as_str(), r.ip.as_deref()), ("stopped", None));
}

#[test]
fn stop_of_a_stopped_vm_changes_nothing() {
    let fake = node(reference_list(), reference_agent);
    let args = ConfirmedArgs {
        vm_name: "atm10".into(),
        expect_vmid: Some(101),
    };
    let outcome = run(&fake, false, |f| f.stop(&args)).0.expect("stop");
    assert!(writes(&fake).is_empty());
    assert_eq!(outcome.output()["changed"], json!(false));
}

#[test]
fn delete_sends_delete_and_records_deleted() {
    let fake = node(reference_list(), reference_agent);
    let args = ConfirmedArgs {
        vm_name: "VM 102".into(),
        expect_vmid: Some(102),
    };
    let outcome = run(&fake, false, |f| f.delete(&args)).0.expect("delete");
    assert_eq!(writes(&fake), ["DELETE /nodes/keeb-dev-02/qemu/102"]);
    let out = outcome.output();
    assert_eq!(out["status"], json!("deleted"));
    assert_eq!(out["ip"], Value::Null);
    assert_eq!(out["vmName"], json!("VM 102"));
}

#[test]
fn delete_of_a_running_vm_is_a_conflict() {
    let fake = node_with(reference_list(), reference_agent, |method, _, _| {
        (method == "DELETE").then(|| fake::fail(500, "VM 100 is running - destroy failed"))
    });
    let args = ConfirmedArgs {
        vm_name: "slate".into(),
        expect_vmid: Some(100),
    };
    assert!(matches!(
        run(&fake, false, |f| f.delete(&args)).0,
        Err(Error::Conflict(_))
    ));
}

#[test]
fn failed_task_fails_the_method_with_the_exit_status() {
    let fake = node_with(reference_list(), reference_agent, |method, path, _| {
        (method == "GET" && path.contains("/tasks/")).then(|| {
            fake::ok(
                json!({"status": "stopped", "exitstatus": "start failed: QEMU exited with code 1"}),
            )
        })
    });
    let args = StartArgs {
        vm_name: "atm10".into(),
        wait_for_ip_seconds: Some(0),
    };
    let e = run(&fake, false, |f| f.start(&args)).0.unwrap_err();
    assert!(
        matches!(e, Error::Failed(ref m) if m.contains("start failed: QEMU exited with code 1")),
        "{e:?}"
    );
}

#[test]
fn dry_runs_only_read() {
    let fake = node(reference_list(), reference_agent);
    let args = ConfirmedArgs {
        vm_name: "slate".into(),
        expect_vmid: Some(100),
    };
    let outcome = run(&fake, true, |f| f.delete(&args)).0.expect("dry run");
    assert!(writes(&fake).is_empty());
    assert_eq!(outcome.resource(), None);
    assert_eq!(
        outcome.output(),
        json!({"dryRun": true, "wouldSend": "DELETE /nodes/keeb-dev-02/qemu/100",
               "vmName": "slate", "vmid": 100, "status": "running"})
    );
    // The vmid check still applies in a dry run.
    let args = ConfirmedArgs {
        vm_name: "slate".into(),
        expect_vmid: Some(1),
    };
    assert!(matches!(
        run(&fake, true, |f| f.delete(&args)).0,
        Err(Error::Conflict(_))
    ));
}

#[test]
fn set_config_puts_the_form_and_records_the_reread_config() {
    let fake = node(reference_list(), reference_agent);
    let config: Map<String, Value> = serde_json::from_value(
        json!({"memory": 4096, "agent": true, "ide2": null, "description": "a b"}),
    )
    .unwrap();
    let form = config_form(&config).expect("form");
    let outcome = run(&fake, false, |f| f.set_config("gold-image", &form))
        .0
        .expect("setConfig");
    assert_eq!(writes(&fake), ["PUT /nodes/keeb-dev-02/qemu/109/config"]);
    let put = fake
        .seen
        .borrow()
        .iter()
        .find(|r| r.method == "PUT")
        .cloned()
        .unwrap();
    assert_eq!(
        fake::body(&put),
        "memory=4096&agent=1&description=a%20b&delete=ide2"
    );
    let calls = fake.calls();
    assert!(calls.contains(&"GET /nodes/keeb-dev-02/qemu/109/config".to_string()));
    let r = outcome.resource().unwrap();
    assert_eq!(
        r.config.as_ref().unwrap()["boot"],
        json!("order=net0;scsi0")
    );
    assert_eq!(r.ip.as_deref(), Some("10.0.0.143"));
}

#[test]
fn set_config_without_a_task_does_not_poll() {
    let fake = node_with(reference_list(), reference_agent, |method, _, _| {
        (method == "PUT").then(|| fake::ok(Value::Null))
    });
    let form = boot_order_form(&["net0".into(), "scsi0".into()]).unwrap();
    run(&fake, false, |f| f.set_config("atm10", &form))
        .0
        .expect("setBootOrder");
    assert!(!fake.calls().iter().any(|c| c.contains("/tasks/")));
    let put = fake
        .seen
        .borrow()
        .iter()
        .find(|r| r.method == "PUT")
        .cloned()
        .unwrap();
    assert_eq!(fake::body(&put), "boot=order%3Dnet0%3Bscsi0");
}

#[test]
fn config_values_are_converted_and_bad_ones_refused() {
    let ok: Map<String, Value> = serde_json::from_value(
        json!({"cores": 2, "numa": false, "cpu": "host", "delete": "ide0, sata1", "net1": null}),
    )
    .unwrap();
    assert_eq!(
        config_form(&ok).unwrap(),
        vec![
            ("cores".to_string(), "2".to_string()),
            ("numa".to_string(), "0".to_string()),
            ("cpu".to_string(), "host".to_string()),
            ("delete".to_string(), "ide0,sata1,net1".to_string()),
        ]
    );
    for bad in [
        json!({"net0": {"model": "virtio"}}),
        json!({"name": "rename"}),
        json!({"vmid": 5}),
        json!({"bad key": 1}),
        json!({"tags": [1]}),
    ] {
        let map: Map<String, Value> = serde_json::from_value(bad.clone()).unwrap();
        assert!(
            matches!(config_form(&map), Err(Error::InvalidArguments(_))),
            "{bad}"
        );
    }
}

#[test]
fn empty_config_and_bad_boot_orders_are_refused_without_requests() {
    let fake = node(reference_list(), reference_agent);
    assert!(matches!(
        run(&fake, false, |f| f.set_config("atm10", &[])).0,
        Err(Error::InvalidArguments(_))
    ));
    assert!(fake.calls().is_empty());
    assert!(boot_order_form(&[]).is_err());
    assert!(boot_order_form(&["net0;scsi0".into()]).is_err());
    assert!(boot_order_form(&[String::new()]).is_err());
}

#[test]
fn qemu_list_parsing_is_lenient_about_shapes_but_not_about_ids() {
    let vms = parse_vm_list(
        "GET /q",
        br#"{"data":[{"vmid":"105","name":"","status":"stopped"},{"vmid":100}]}"#,
    )
    .unwrap();
    assert_eq!(
        vms,
        vec![
            Vm {
                vmid: 100,
                name: "VM 100".into(),
                status: "unknown".into()
            },
            Vm {
                vmid: 105,
                name: "VM 105".into(),
                status: "stopped".into()
            },
        ]
    );
    assert!(matches!(
        parse_vm_list("GET /q", br#"{"data":[{"vmid":"abc"}]}"#),
        Err(Error::Failed(_))
    ));
    assert!(matches!(
        parse_vm_list("GET /q", br#"{"data":[{"name":"x"}]}"#),
        Err(Error::Failed(_))
    ));
    assert!(matches!(
        parse_vm_list("GET /q", br#"{"data":{}}"#),
        Err(Error::Failed(_))
    ));
    assert!(matches!(
        parse_vm_list("GET /q", b"<html>"),
        Err(Error::Failed(_))
    ));
}

#[test]
fn args_use_camel_case_and_refuse_unknown_fields() {
    let a: ConfirmedArgs =
        serde_json::from_value(json!({"vmName": "VM 102", "expectVmid": 102})).unwrap();
    assert_eq!((a.vm_name.as_str(), a.expect_vmid), ("VM 102", Some(102)));
    assert!(serde_json::from_value::<ConfirmedArgs>(json!({"vmName": "x", "vmid": 1})).is_err());
    let s: StartArgs =
        serde_json::from_value(json!({"vmName": "x", "waitForIpSeconds": 5})).unwrap();
    assert_eq!(s.wait_for_ip_seconds, Some(5));
    assert!(
        serde_json::from_value::<VmGlobals>(
            json!({"apiUrl": "https://x", "node": "n", "username": "root"})
        )
        .is_err()
    );
}

#[test]
fn create_refuses_config_keys_that_repeat_its_arguments() {
    let fake = node(reference_list(), reference_agent);
    let args = CreateArgs {
        vm_name: "box".into(),
        vmid: Some(150),
        memory: Some(1024),
        cores: None,
        config: Some(serde_json::from_value(json!({"memory": 2048})).unwrap()),
    };
    assert!(matches!(
        run(&fake, false, |f| f.create(&args)).0,
        Err(Error::InvalidArguments(m)) if m.contains("config.memory")
    ));
    assert!(writes(&fake).is_empty());
}
