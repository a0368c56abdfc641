//! Containers against a scripted Proxmox.

use super::*;
use crate::pve::fake::{self, FakePve};
use std::cell::RefCell;

const TS: &str = "2026-11-30T10:00:00Z";

fn globals(node: &str) -> VmGlobals {
    serde_json::from_value(json!({
        "apiUrl": "https://10.0.0.4:8006",
        "node": node,
        "ticket": "PVE:root@pam:6819A3C2::sig",
        "csrfToken": "6819A3C2:csrf"
    }))
    .expect("globals")
}

const UPID: &str = "UPID:pve1:0001A2B3:0012D687:6819A3C2:vztask:101:root@pam:";

fn list() -> Value {
    json!([
        {"vmid": 101, "name": "pihole", "status": "running", "type": "lxc", "cpus": 2,
         "maxmem": 1073741824u64, "mem": 5000, "uptime": 77, "tags": "dns;infra"},
        {"vmid": "102", "name": "build", "status": "stopped", "type": "lxc", "cpus": "1",
         "maxmem": "536870912"}
    ])
}

fn config(vmid: &str) -> HttpResponse {
    match vmid {
        "101" => fake::ok(json!({"cores": 2, "memory": 1024, "hostname": "pihole",
            "rootfs": "local-lvm:vm-101-disk-0,size=8G", "tags": "dns;infra", "onboot": 1})),
        _ => fake::ok(
            json!({"cores": "1", "memory": "512", "rootfs": "local-lvm:vm-102-disk-0,size=4G"}),
        ),
    }
}

fn interfaces() -> HttpResponse {
    fake::ok(json!([
        {"name": "lo", "hwaddr": "00:00:00:00:00:00", "inet": "127.0.0.1/8", "inet6": "::1/128"},
        {"name": "eth0", "hwaddr": "bc:24:11:00:00:01", "inet": "10.0.0.53/24", "inet6": "fe80::be24:11ff:fe00:1/64"},
        {"name": "eth1", "hwaddr": "bc:24:11:00:00:02", "inet6": "2001:db8::53/64"},
        {"name": "eth2", "inet": "169.254.1.1/16"}
    ]))
}

/// A node `pve1` with [`list`]; `overrides` answers first.
fn pve1(overrides: impl Fn(&str, &str) -> Option<HttpResponse> + 'static) -> FakePve {
    FakePve::new(move |method, path, _| {
        if let Some(answer) = overrides(method, path) {
            return answer;
        }
        let rest = path.strip_prefix("/nodes/pve1").unwrap_or(path);
        let parts: Vec<&str> = rest.split('/').collect();
        match (method, parts.as_slice()) {
            ("GET", ["", "lxc"]) => fake::ok(list()),
            ("GET", ["", "lxc", id, "config"]) => config(id),
            ("GET", ["", "lxc", _, "interfaces"]) => interfaces(),
            ("GET", ["", "tasks", _, "status"]) => {
                fake::ok(json!({"status": "stopped", "exitstatus": "OK"}))
            }
            ("GET", ["", "cluster", "nextid"]) => fake::ok(json!("150")),
            ("POST" | "PUT" | "DELETE", _) => fake::ok(json!(UPID)),
            _ => fake::fail(404, &format!("no route {method} {path}")),
        }
    })
}

fn run<T>(
    fake: &FakePve,
    node: &str,
    dry_run: bool,
    f: impl FnOnce(&Containers) -> Result<T>,
) -> (Result<T>, Vec<String>) {
    let warnings = RefCell::new(Vec::new());
    let warn = |m: &str| warnings.borrow_mut().push(m.to_string());
    let result = Containers::new(fake, &globals(node), &warn, |_| {}, TS.into(), dry_run)
        .and_then(|c| f(&c));
    (result, warnings.into_inner())
}

fn failed<T: std::fmt::Debug>(result: Result<T>) -> String {
    match result {
        Err(Error::Failed(m)) => m,
        other => panic!("expected Failed, got {other:?}"),
    }
}

#[test]
fn sync_records_config_addresses_and_tags_and_asks_stopped_ones_no_interfaces() {
    let fake = pve1(|_, _| None);
    let (synced, warnings) = run(&fake, "pve1", false, |c| c.sync());
    let synced = synced.unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!((synced.summary.count, synced.summary.running), (2, 1));
    assert_eq!(
        synced.resources[0],
        CtResource {
            vmid: 101,
            name: "pihole".into(),
            status: "running".into(),
            node: "pve1".into(),
            cores: Some(2),
            memory: Some(1024),
            rootfs: Some("local-lvm:vm-101-disk-0,size=8G".into()),
            ips: vec!["10.0.0.53".into(), "2001:db8::53".into()],
            tags: vec!["dns".into(), "infra".into()],
            timestamp: TS.into(),
            config: None,
        }
    );
    let build = &synced.resources[1];
    assert_eq!(
        (
            build.vmid,
            build.cores,
            build.memory,
            build.ips.len(),
            build.tags.len()
        ),
        (102, Some(1), Some(512), 0, 0)
    );
    assert_eq!(
        fake.calls(),
        [
            "GET /nodes/pve1/lxc",
            "GET /nodes/pve1/lxc/101/config",
            "GET /nodes/pve1/lxc/101/interfaces",
            "GET /nodes/pve1/lxc/102/config",
        ]
    );
}

#[test]
fn a_container_whose_config_fails_keeps_the_lists_values_with_a_warning() {
    let fake =
        pve1(|_, p| (p == "/nodes/pve1/lxc/102/config").then(|| fake::fail(500, "got timeout")));
    let (synced, warnings) = run(&fake, "pve1", false, |c| c.sync());
    let build = synced.unwrap().resources.remove(1);
    assert_eq!(
        (build.cores, build.memory, build.rootfs),
        (Some(1), Some(512), None)
    );
    assert_eq!(warnings.len(), 1);
    assert!(warnings[0].contains("build") && warnings[0].contains("got timeout"));
}

#[test]
fn a_container_that_stopped_meanwhile_has_no_addresses_and_no_warning() {
    let fake = pve1(|_, p| {
        p.ends_with("/interfaces")
            .then(|| fake::fail(500, "CT 101 not running"))
    });
    let (synced, warnings) = run(&fake, "pve1", false, |c| c.sync());
    assert!(synced.unwrap().resources[0].ips.is_empty());
    assert!(warnings.is_empty(), "{warnings:?}");
}

#[test]
fn forbidden_config_or_interfaces_fail_the_sync() {
    for target in ["/config", "/interfaces"] {
        let fake = pve1(move |_, p| {
            (p.starts_with("/nodes/pve1/lxc/101") && p.ends_with(target))
                .then(|| fake::fail(403, "Permission check failed"))
        });
        let (synced, _) = run(&fake, "pve1", false, |c| c.sync());
        assert!(
            matches!(synced, Err(Error::Denied(_))),
            "{target}: {synced:?}"
        );
    }
}

#[test]
fn malformed_answers_are_typed_errors_naming_endpoint_and_field() {
    let cases: Vec<(&str, HttpResponse, &str)> = vec![
        (
            "/nodes/pve1/lxc",
            fake::ok(json!([{"vmid": 101, "name": "x", "maxmem": "lots"}])),
            "GET /nodes/pve1/lxc: field `maxmem` of entry 0 is a string (\"lots\")",
        ),
        (
            "/nodes/pve1/lxc",
            fake::ok(json!({"vmid": 101})),
            "GET /nodes/pve1/lxc: field `data` is an object, not a list",
        ),
        (
            "/nodes/pve1/lxc/101/config",
            fake::ok(json!({"cores": [2]})),
            "GET /nodes/pve1/lxc/101/config: field `cores` is a list",
        ),
        (
            "/nodes/pve1/lxc/101/config",
            fake::ok(json!("cores: 2")),
            "GET /nodes/pve1/lxc/101/config: field `data` is a string, not an object",
        ),
        (
            "/nodes/pve1/lxc/101/interfaces",
            fake::ok(json!([{"name": "eth0", "inet": 10}, {"name": "eth1", "inet": {}}])),
            "GET /nodes/pve1/lxc/101/interfaces: field `inet` of entry 1 is an object",
        ),
    ];
    for (target, answer, expected) in cases {
        let answer = RefCell::new(Some(answer));
        let fake = pve1(move |_, p| (p == target).then(|| answer.borrow_mut().take()).flatten());
        let m = failed(run(&fake, "pve1", false, |c| c.sync()).0);
        assert!(m.starts_with(expected), "{target}: {m}");
    }
}

#[test]
fn html_missing_data_and_596_are_typed_errors() {
    let html = HttpResponse {
        status: 500,
        headers: vec![("content-type".into(), "text/html".into())],
        body: b"<html><body>Internal error</body></html>".to_vec(),
    };
    let html200 = HttpResponse {
        status: 200,
        ..html.clone()
    };
    let no_data = HttpResponse {
        status: 200,
        headers: vec![("content-type".into(), "application/json".into())],
        body: br#"{"total": 2}"#.to_vec(),
    };
    let answers = RefCell::new(vec![
        fake::fail(596, "Connection timed out"),
        no_data,
        html200,
        html,
    ]);
    let fake = pve1(move |_, p| {
        (p == "/nodes/pve1/lxc")
            .then(|| answers.borrow_mut().pop())
            .flatten()
    });
    let m = failed(run(&fake, "pve1", false, |c| c.sync()).0);
    assert!(
        m == "GET /nodes/pve1/lxc: an HTML page instead of PVE's JSON (HTTP 500)",
        "{m}"
    );
    let m = failed(run(&fake, "pve1", false, |c| c.sync()).0);
    assert!(
        m.starts_with("GET /nodes/pve1/lxc: Proxmox answered an HTML page"),
        "{m}"
    );
    let m = failed(run(&fake, "pve1", false, |c| c.sync()).0);
    assert!(m.contains("no `data` field"), "{m}");
    let e = run(&fake, "pve1", false, |c| c.sync()).0.unwrap_err();
    assert!(
        matches!(e, Error::Transient(ref m) if m == "GET /nodes/pve1/lxc: Connection timed out (HTTP 596)"),
        "{e:?}"
    );
}

#[test]
fn stop_is_confirmed_by_vmid_before_any_write() {
    let fake = pve1(|_, _| None);
    let args = |expect| CtConfirmedArgs {
        name: "pihole".into(),
        expect_vmid: expect,
    };
    assert!(matches!(
        run(&fake, "pve1", false, |c| c.stop(&args(None))).0,
        Err(Error::InvalidArguments(_))
    ));
    assert!(matches!(
        run(&fake, "pve1", false, |c| c.stop(&args(Some(999)))).0,
        Err(Error::Conflict(_))
    ));
    assert!(fake.calls().iter().all(|c| c.starts_with("GET")));
    let out = run(&fake, "pve1", false, |c| c.stop(&args(Some(101))))
        .0
        .unwrap();
    let resource = out.resource.unwrap();
    assert_eq!(
        (resource.status.as_str(), resource.ips.len()),
        ("stopped", 0)
    );
    assert_eq!(out.output["changed"], true);
    let calls = fake.calls();
    assert!(
        calls.contains(&"POST /nodes/pve1/lxc/101/status/stop".to_string()),
        "{calls:?}"
    );
    assert!(
        calls.iter().any(|c| c.contains("/tasks/UPID")),
        "waits for the task"
    );
}

#[test]
fn start_of_a_stopped_container_posts_start_and_records_it_running() {
    let fake = pve1(|_, _| None);
    let out = run(&fake, "pve1", false, |c| c.start("build")).0.unwrap();
    assert_eq!(out.resource.unwrap().status, "running");
    assert!(
        fake.calls()
            .contains(&"POST /nodes/pve1/lxc/102/status/start".to_string())
    );
    let (noop, _) = run(&fake, "pve1", false, |c| c.start("pihole"));
    assert_eq!(noop.unwrap().output["changed"], false);
}

#[test]
fn unknown_names_suggest_close_container_names() {
    let fake = pve1(|_, _| None);
    let e = run(&fake, "pve1", false, |c| c.lookup("pihol"))
        .0
        .unwrap_err();
    assert!(
        matches!(e, Error::NotFound(ref m) if m.contains("no container named \"pihol\"") && m.contains("\"pihole\"")),
        "{e:?}"
    );
}

#[test]
fn create_posts_hostname_and_template_with_the_next_id() {
    let fake = pve1(|_, _| None);
    let args: CtCreateArgs = serde_json::from_value(json!({
        "name": "web", "ostemplate": "local:vztmpl/debian-12.tar.zst",
        "cores": 1, "memory": 256, "net0": "name=eth0,bridge=vmbr0,ip=dhcp",
        "config": {"unprivileged": true}
    }))
    .unwrap();
    let out = run(&fake, "pve1", false, |c| c.create(&args)).0.unwrap();
    let r = out.resource.unwrap();
    assert_eq!(
        (r.vmid, r.name.as_str(), r.status.as_str()),
        (150, "web", "stopped")
    );
    let seen = fake.seen.borrow();
    let post = seen.iter().find(|r| r.method == "POST").unwrap();
    assert_eq!(
        fake::body(post),
        "vmid=150&hostname=web&ostemplate=local%3Avztmpl%2Fdebian-12.tar.zst&cores=1&memory=256&net0=name%3Deth0%2Cbridge%3Dvmbr0%2Cip%3Ddhcp&unprivileged=1"
    );
    drop(seen);
    let taken: CtCreateArgs =
        serde_json::from_value(json!({"name": "pihole", "ostemplate": "t"})).unwrap();
    assert!(matches!(
        run(&fake, "pve1", false, |c| c.create(&taken)).0,
        Err(Error::Conflict(_))
    ));
}

#[test]
fn set_config_refuses_renames_and_records_the_reread_config() {
    let fake = pve1(|_, _| None);
    let rename: Map<String, Value> = serde_json::from_value(json!({"hostname": "x"})).unwrap();
    assert!(matches!(
        run(&fake, "pve1", false, |c| c.set_config("pihole", &rename)).0,
        Err(Error::InvalidArguments(_))
    ));
    let memory: Map<String, Value> = serde_json::from_value(json!({"memory": 2048})).unwrap();
    let out = run(&fake, "pve1", false, |c| c.set_config("pihole", &memory))
        .0
        .unwrap();
    assert!(out.resource.unwrap().config.is_some());
    assert!(
        fake.calls()
            .contains(&"PUT /nodes/pve1/lxc/101/config".to_string())
    );
}

#[test]
fn dry_runs_only_read() {
    let fake = pve1(|_, _| None);
    let args = CtConfirmedArgs {
        name: "pihole".into(),
        expect_vmid: Some(101),
    };
    let out = run(&fake, "pve1", true, |c| c.delete(&args)).0.unwrap();
    assert!(out.resource.is_none());
    assert_eq!(out.output["wouldSend"], "DELETE /nodes/pve1/lxc/101");
    assert!(fake.calls().iter().all(|c| c.starts_with("GET")));
}

#[test]
fn node_star_lists_the_clusters_containers_and_asks_each_on_its_node() {
    let fake = FakePve::new(|_, path, _| match path {
        "/cluster/resources?type=vm" => fake::ok(json!([
            {"id": "qemu/100", "type": "qemu", "node": "pve1", "vmid": 100, "name": "vm"},
            {"id": "lxc/201", "type": "lxc", "node": "pve2", "vmid": 201, "name": "dns",
             "status": "stopped", "maxcpu": 1, "maxmem": 268435456}
        ])),
        "/nodes/pve2/lxc/201/config" => fake::ok(json!({"rootfs": "local:201/vm-201-disk-0.raw"})),
        _ => fake::fail(404, "no route"),
    });
    let synced = run(&fake, "*", false, |c| c.sync()).0.unwrap();
    assert_eq!(synced.resources.len(), 1);
    let dns = &synced.resources[0];
    assert_eq!(
        (dns.node.as_str(), dns.cores, dns.memory),
        ("pve2", Some(1), Some(256))
    );
}

#[test]
fn interface_parsing_skips_loopback_and_link_local() {
    let ips = parse_interfaces(
        "GET /i",
        &json!([
            {"name": "lo", "inet": "10.9.9.9/8"},
            {"name": "eth0", "inet6": "fe80::1/64"},
            {"name": "eth1", "inet": "192.168.1.5/24"},
            {"name": "eth2", "inet": "not an ip"}
        ]),
    )
    .unwrap();
    assert_eq!(ips, ["192.168.1.5"]);
}
