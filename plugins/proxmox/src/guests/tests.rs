//! Desired guests against a small stateful Proxmox that answers in PVE 8's shapes and records
//! every request.

use super::*;
use crate::pve::fake::{self, FakePve};
use orch_plugin_sdk::HttpRequest;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

const TS: &str = "2026-11-30T11:00:00Z";
const NODE: &str = "pve1";

/// One guest of the fake node.
#[derive(Clone, Debug)]
struct SimGuest {
    kind: &'static str,
    node: String,
    status: String,
    template: bool,
    config: BTreeMap<String, String>,
    snapshots: Vec<String>,
    version: u32,
}

impl SimGuest {
    fn name(&self) -> String {
        let key = if self.kind == "lxc" {
            "hostname"
        } else {
            "name"
        };
        self.config.get(key).cloned().unwrap_or_default()
    }
    fn digest(&self, vmid: u64) -> String {
        format!("{vmid:020}{:020}", self.version)
    }
}

type SimState = Rc<RefCell<BTreeMap<u64, SimGuest>>>;

fn guest(kind: &'static str, name: &str, status: &str, config: &[(&str, &str)]) -> SimGuest {
    let key = if kind == "lxc" { "hostname" } else { "name" };
    let mut map: BTreeMap<String, String> = config
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    map.insert(key.into(), name.into());
    SimGuest {
        kind,
        node: NODE.into(),
        status: status.into(),
        template: false,
        config: map,
        snapshots: Vec::new(),
        version: 1,
    }
}

fn template(kind: &'static str, name: &str, config: &[(&str, &str)]) -> SimGuest {
    SimGuest {
        template: true,
        ..guest(kind, name, "stopped", config)
    }
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap());
            i += 3;
        } else {
            out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

fn form(req: &HttpRequest) -> BTreeMap<String, String> {
    fake::body(req)
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// What PVE does to a net0 without a MAC address: assigns one.
fn assign_mac(kind: &str, value: &str, vmid: u64) -> String {
    let mac = format!("BC:24:11:00:{:02X}:{:02X}", vmid / 256 % 256, vmid % 256);
    if kind == "lxc" {
        let mut out = value.to_string();
        if !out.contains("hwaddr=") {
            out.push_str(&format!(",hwaddr={mac}"));
        }
        if !out.contains("type=") {
            out.push_str(",type=veth");
        }
        out
    } else {
        let mut parts: Vec<String> = value.split(',').map(String::from).collect();
        if !parts[0].contains('=') {
            parts[0] = format!("{}={mac}", parts[0]);
        }
        parts.join(",")
    }
}

fn upid(node: &str, kind: &str, vmid: &str) -> HttpResponse {
    fake::ok(json!(format!(
        "UPID:{node}:0001A2B3:0012D687:6819A3C2:{kind}:{vmid}:root@pam:"
    )))
}

/// A node `pve1` holding `guests`; unknown routes answer 501.
fn sim(guests: Vec<(u64, SimGuest)>) -> (FakePve, SimState) {
    let state: SimState = Rc::new(RefCell::new(guests.into_iter().collect()));
    let s = state.clone();
    let fake = FakePve::new(move |method, path, req| answer(&s, method, path, req));
    (fake, state)
}

fn answer(state: &SimState, method: &str, path: &str, req: &HttpRequest) -> HttpResponse {
    let mut guests = state.borrow_mut();
    if (method, path) == ("GET", "/cluster/resources?type=vm") {
        let list: Vec<Value> = guests
            .iter()
            .map(|(vmid, g)| {
                json!({"id": format!("{}/{vmid}", g.kind), "type": g.kind, "vmid": vmid,
                       "name": g.name(), "node": g.node, "status": g.status,
                       "template": u8::from(g.template), "maxmem": 1073741824u64})
            })
            .collect();
        return fake::ok(json!(list));
    }
    let parts: Vec<&str> = path.split('/').collect();
    match (method, &parts[1..]) {
        ("GET", ["nodes", _, "tasks", _, "status"]) => {
            fake::ok(json!({"status": "stopped", "exitstatus": "OK"}))
        }
        ("POST", ["nodes", node, kind @ ("qemu" | "lxc")]) => {
            let f = form(req);
            let vmid: u64 = f["vmid"].parse().unwrap();
            if guests.contains_key(&vmid) {
                return fake::fail(500, &format!("VM {vmid} already exists on node '{node}'"));
            }
            let kind: &'static str = if *kind == "qemu" { "qemu" } else { "lxc" };
            let mut config: BTreeMap<String, String> = f
                .into_iter()
                .filter(|(k, _)| !["vmid", "ostemplate", "rootfs"].contains(&k.as_str()))
                .collect();
            if let Some(net) = config.get_mut("net0") {
                *net = assign_mac(kind, net, vmid);
            }
            guests.insert(
                vmid,
                SimGuest {
                    kind,
                    node: node.to_string(),
                    status: "stopped".into(),
                    template: false,
                    config,
                    snapshots: Vec::new(),
                    version: 1,
                },
            );
            let task = if kind == "qemu" {
                "qmcreate"
            } else {
                "vzcreate"
            };
            upid(node, task, &vmid.to_string())
        }
        (_, ["nodes", node, kind, vmid, rest @ ..]) => {
            let Ok(vmid) = vmid.parse::<u64>() else {
                return fake::fail(400, "bad vmid");
            };
            let Some(g) = guests.get(&vmid).cloned() else {
                return fake::fail(
                    500,
                    &format!(
                        "Configuration file 'nodes/{node}/qemu-server/{vmid}.conf' does not exist"
                    ),
                );
            };
            assert_eq!((g.kind, g.node.as_str()), (*kind, *node), "{method} {path}");
            let task = |q: &str, l: &str| {
                if *kind == "qemu" {
                    q.to_string()
                } else {
                    l.to_string()
                }
            };
            match (method, rest) {
                ("GET", ["config"]) => {
                    let mut config: serde_json::Map<String, Value> = g
                        .config
                        .iter()
                        .map(|(k, v)| (k.clone(), json!(v)))
                        .collect();
                    config.insert("digest".into(), json!(g.digest(vmid)));
                    fake::ok(Value::Object(config))
                }
                ("PUT", ["config"]) => {
                    let f = form(req);
                    if f.get("digest") != Some(&g.digest(vmid)) {
                        return fake::fail(
                            500,
                            "detected modified configuration - file changed by other user? Try again.",
                        );
                    }
                    let g = guests.get_mut(&vmid).unwrap();
                    for (k, v) in f.into_iter().filter(|(k, _)| k != "digest") {
                        let v = if k == "net0" {
                            assign_mac(g.kind, &v, vmid)
                        } else {
                            v
                        };
                        g.config.insert(k, v);
                    }
                    g.version += 1;
                    fake::ok(Value::Null)
                }
                ("POST", ["clone"]) => {
                    let f = form(req);
                    let newid: u64 = f["newid"].parse().unwrap();
                    let mut copy = g.clone();
                    copy.template = false;
                    copy.status = "stopped".into();
                    copy.snapshots.clear();
                    copy.version = 1;
                    let key = if g.kind == "lxc" { "hostname" } else { "name" };
                    copy.config.insert(key.into(), f[key].clone());
                    if let Some(target) = f.get("target") {
                        copy.node = target.clone();
                    }
                    if let Some(net) = copy.config.get_mut("net0") {
                        let bare: Vec<&str> = net
                            .split(',')
                            .filter(|p| !p.starts_with("hwaddr="))
                            .map(|p| match p.split_once('=') {
                                Some((model, mac)) if mac.matches(':').count() == 5 => model,
                                _ => p,
                            })
                            .collect();
                        *net = assign_mac(g.kind, &bare.join(","), newid);
                    }
                    guests.insert(newid, copy);
                    upid(node, &task("qmclone", "vzclone"), &vmid.to_string())
                }
                ("POST", ["status", "start"]) => {
                    guests.get_mut(&vmid).unwrap().status = "running".into();
                    upid(node, &task("qmstart", "vzstart"), &vmid.to_string())
                }
                ("POST", ["status", "stop"]) => {
                    guests.get_mut(&vmid).unwrap().status = "stopped".into();
                    upid(node, &task("qmstop", "vzstop"), &vmid.to_string())
                }
                ("DELETE", []) => {
                    if g.status == "running" {
                        return fake::fail(500, &format!("VM {vmid} is running - destroy failed"));
                    }
                    guests.remove(&vmid);
                    upid(node, &task("qmdestroy", "vzdestroy"), &vmid.to_string())
                }
                ("GET", ["snapshot"]) => {
                    let mut list: Vec<Value> = g
                        .snapshots
                        .iter()
                        .map(|s| json!({"name": s, "snaptime": 1700000000, "description": ""}))
                        .collect();
                    list.push(json!({"name": "current", "description": "You are here!", "running": u8::from(g.status == "running")}));
                    fake::ok(json!(list))
                }
                ("POST", ["snapshot"]) => {
                    let name = form(req)["snapname"].clone();
                    guests.get_mut(&vmid).unwrap().snapshots.push(name);
                    upid(node, &task("qmsnapshot", "vzsnapshot"), &vmid.to_string())
                }
                ("GET", ["agent", "network-get-interfaces"]) if g.status == "running" => {
                    fake::ok(json!({"result": [
                        {"name": "lo", "ip-addresses": [{"ip-address-type": "ipv4", "ip-address": "127.0.0.1"}]},
                        {"name": "eth0", "ip-addresses": [{"ip-address-type": "ipv4", "ip-address": format!("10.0.0.{}", vmid % 250)}]}
                    ]}))
                }
                ("GET", ["agent", "network-get-interfaces"]) => {
                    fake::fail(500, &format!("VM {vmid} is not running"))
                }
                ("GET", ["interfaces"]) => fake::ok(json!([
                    {"name": "lo", "inet": "127.0.0.1/8"},
                    {"name": "eth0", "inet": format!("10.0.1.{}/24", vmid % 250), "hwaddr": "bc:24:11:00:00:01"}
                ])),
                _ => fake::fail(501, &format!("Method '{method} {path}' not implemented")),
            }
        }
        _ => fake::fail(501, &format!("Method '{method} {path}' not implemented")),
    }
}

fn globals(guests: Value, prune: bool) -> GuestsGlobals {
    serde_json::from_value(json!({
        "apiUrl": "https://10.0.0.4:8006",
        "node": NODE,
        "ticket": "PVE:root@pam:6819A3C2::sig",
        "csrfToken": "6819A3C2:csrf",
        "guests": guests,
        "prune": prune
    }))
    .expect("globals")
}

fn with_client<T>(
    fake: &FakePve,
    globals: &GuestsGlobals,
    f: impl FnOnce(&Guests) -> Result<T>,
) -> Result<T> {
    let warn = |_: &str| {};
    Guests::new(fake, globals, &warn, |_| {}, TS.into()).and_then(|g| f(&g))
}

fn plan(fake: &FakePve, globals: &GuestsGlobals) -> Result<Vec<PlannedChange>> {
    with_client(fake, globals, |g| Ok(g.plan()?.changes(&globals.guests)))
}

fn converge(
    fake: &FakePve,
    globals: &GuestsGlobals,
    allow_destroy: bool,
) -> Result<(Vec<GuestState>, ConvergeSummary)> {
    with_client(fake, globals, |g| g.apply(&g.plan()?, allow_destroy))
}

fn writes(fake: &FakePve) -> Vec<String> {
    fake.calls()
        .into_iter()
        .filter(|c| !c.starts_with("GET "))
        .collect()
}

fn invalid(result: Result<impl std::fmt::Debug>) -> String {
    match result {
        Err(Error::InvalidArguments(m)) => m,
        other => panic!("expected InvalidArguments, got {other:?}"),
    }
}

/// The Phoenix-style declaration: a DNS container, a gateway container, a Docker VM cloned from
/// a template and an app VM depending on them, declared app first.
fn phoenix() -> Value {
    json!([
        {"name": "app1", "kind": "qemu", "vmid": 1101, "clone": "debian-12-cloud",
         "cores": 2, "memory": 2048, "net0": "virtio,bridge=vmbr0", "tags": ["app"],
         "dependsOn": ["docker", "dns"], "waitForAgent": true},
        {"name": "docker", "kind": "qemu", "vmid": 1001, "clone": 9000, "cores": 4,
         "memory": 8192, "snapshot": "baseline", "dependsOn": ["dns"]},
        {"name": "dns", "kind": "lxc", "vmid": 101,
         "ostemplate": "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst",
         "rootfs": "local-lvm:4", "cores": 1, "memory": 512,
         "net0": "name=eth0,bridge=vmbr0,ip=dhcp", "tags": ["infra", "dns"]},
        {"name": "gateway", "kind": "lxc", "vmid": 102, "clone": "nginx-tmpl", "memory": 256}
    ])
}

fn templates() -> Vec<(u64, SimGuest)> {
    vec![
        (
            9000,
            template(
                "qemu",
                "debian-12-cloud",
                &[
                    ("cores", "1"),
                    ("memory", "1024"),
                    ("net0", "virtio=BC:24:11:AA:00:01,bridge=vmbr0"),
                    ("agent", "1"),
                ],
            ),
        ),
        (
            9100,
            template(
                "lxc",
                "nginx-tmpl",
                &[
                    ("cores", "1"),
                    ("memory", "512"),
                    (
                        "net0",
                        "name=eth0,bridge=vmbr0,hwaddr=BC:24:11:AA:00:02,ip=dhcp,type=veth",
                    ),
                ],
            ),
        ),
    ]
}

#[test]
fn a_dependency_cycle_is_refused_before_any_request_and_named_in_order() {
    let (fake, _) = sim(templates());
    let g = globals(
        json!([
            {"name": "a", "kind": "qemu", "vmid": 200, "dependsOn": ["b"]},
            {"name": "b", "kind": "qemu", "vmid": 201, "dependsOn": ["c"]},
            {"name": "c", "kind": "qemu", "vmid": 202, "dependsOn": ["a"]},
            {"name": "d", "kind": "qemu", "vmid": 203, "dependsOn": ["a"]}
        ]),
        false,
    );
    assert_eq!(
        invalid(plan(&fake, &g)),
        "guests[0].dependsOn: the guests depend on each other in a loop: a → b → c → a; remove one of these dependencies"
    );
    let self_loop = globals(
        json!([{"name": "a", "kind": "qemu", "vmid": 200, "dependsOn": ["a"]}]),
        false,
    );
    assert!(
        invalid(plan(&fake, &self_loop)).ends_with("loop: a → a; remove one of these dependencies")
    );
    assert!(fake.calls().is_empty(), "{:?}", fake.calls());
}

#[test]
fn unknown_dependencies_duplicates_and_missing_sources_name_the_index_and_field() {
    let (fake, _) = sim(templates());
    let cases = [
        (
            json!([{"name": "web", "kind": "qemu", "vmid": 200, "dependsOn": ["dsn"]},
                   {"name": "dns", "kind": "qemu", "vmid": 201}]),
            "guests[0].dependsOn[0]: \"dsn\" is not a declared guest (close: dns)",
        ),
        (
            json!([{"name": "web", "kind": "qemu", "vmid": 200},
                   {"name": "web", "kind": "qemu", "vmid": 201}]),
            "guests[1].name: \"web\" is also the name of guests[0]; names identify guests, so give each its own",
        ),
        (
            json!([{"name": "web", "kind": "qemu", "vmid": 200},
                   {"name": "db", "kind": "qemu", "vmid": 200}]),
            "guests[1].vmid: 200 is also the vmid of guests[0] (\"web\"); give each guest its own vmid",
        ),
        (
            json!([{"name": "ct", "kind": "lxc", "vmid": 200}]),
            "guests[0].ostemplate: lxc guest \"ct\" needs clone",
        ),
        (
            json!([{"name": "vm", "kind": "qemu", "vmid": 200, "ostemplate": "local:vztmpl/x"}]),
            "guests[0].ostemplate: only lxc guests",
        ),
        (
            json!([{"name": "vm", "kind": "qemu", "vmid": 99}]),
            "guests[0].vmid: 99 is below 100",
        ),
        (
            json!([{"name": "vm", "kind": "qemu", "vmid": 200, "snapshot": "current"}]),
            "guests[0].snapshot: \"current\" is not a Proxmox snapshot name",
        ),
        (
            json!([{"name": "ct", "kind": "lxc", "vmid": 200, "clone": 9100, "waitForAgent": true}]),
            "guests[0].waitForAgent: only qemu guests have a guest agent",
        ),
    ];
    for (declared, expected) in cases {
        let message = invalid(plan(&fake, &globals(declared, false)));
        assert!(
            message.starts_with(expected),
            "{message}\nexpected: {expected}"
        );
    }
    assert!(fake.calls().is_empty());
}

#[test]
fn an_empty_node_plans_creates_in_dependency_order_then_declaration_order() {
    let (fake, _) = sim(templates());
    let g = globals(phoenix(), false);
    let changes = plan(&fake, &g).unwrap();
    let actions: Vec<(PlannedAction, &str)> = changes
        .iter()
        .map(|c| (c.action, c.name.as_str()))
        .collect();
    use PlannedAction::{Create, Start, Update};
    assert_eq!(
        actions,
        [
            (Create, "dns"),
            (Start, "dns"),
            (Create, "docker"),
            (Start, "docker"),
            (Update, "docker"),
            (Create, "app1"),
            (Start, "app1"),
            (Create, "gateway"),
            (Start, "gateway"),
        ]
    );
    assert_eq!(
        changes[2].summary,
        "create qemu docker (vmid 1001) as a clone of debian-12-cloud (vmid 9000)"
    );
    assert_eq!(
        changes[0].summary,
        "create lxc dns (vmid 101) from local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"
    );
    assert_eq!(
        changes[4].summary,
        "take snapshot baseline of qemu docker (vmid 1001)"
    );
    assert_eq!(
        changes[6].summary,
        "start qemu app1 (vmid 1101) and wait for its guest agent's address"
    );
    let fields: Vec<&str> = changes[5].changes.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(fields, ["/vmid", "/cores", "/memory", "/net0", "/tags"]);
    assert_eq!(changes[5].changes[4].after, Some(json!(["app"])));
    assert!(writes(&fake).is_empty(), "a plan only reads");
    assert_eq!(fake.calls(), ["GET /cluster/resources?type=vm"]);
}

#[test]
fn converge_creates_in_dependency_order_and_a_second_converge_sends_no_write() {
    let (fake, state) = sim(templates());
    let g = globals(phoenix(), false);
    let (states, summary) = converge(&fake, &g, false).unwrap();
    assert_eq!(
        writes(&fake),
        [
            "POST /nodes/pve1/lxc",
            "POST /nodes/pve1/lxc/101/status/start",
            "POST /nodes/pve1/qemu/9000/clone",
            "PUT /nodes/pve1/qemu/1001/config",
            "POST /nodes/pve1/qemu/1001/status/start",
            "POST /nodes/pve1/qemu/1001/snapshot",
            "POST /nodes/pve1/qemu/9000/clone",
            "PUT /nodes/pve1/qemu/1101/config",
            "POST /nodes/pve1/qemu/1101/status/start",
            "POST /nodes/pve1/lxc/9100/clone",
            "PUT /nodes/pve1/lxc/102/config",
            "POST /nodes/pve1/lxc/102/status/start",
        ]
    );
    let seen = fake.seen.borrow().clone();
    let sent = |url_tail: &str, method: &str| {
        seen.iter()
            .find(|r| r.method == method && r.url.ends_with(url_tail))
            .map(form)
            .unwrap()
    };
    let clone = sent("/qemu/9000/clone", "POST");
    assert_eq!(
        (
            clone["newid"].as_str(),
            clone["name"].as_str(),
            clone["full"].as_str()
        ),
        ("1001", "docker", "1")
    );
    let ct_clone = sent("/lxc/9100/clone", "POST");
    assert_eq!(
        (ct_clone["newid"].as_str(), ct_clone["hostname"].as_str()),
        ("102", "gateway")
    );
    let put = sent("/qemu/1001/config", "PUT");
    assert_eq!(
        put.keys().collect::<Vec<_>>(),
        ["cores", "digest", "memory"]
    );
    let create = sent("/nodes/pve1/lxc", "POST");
    assert_eq!(create["tags"], "infra;dns");
    assert_eq!(
        create["ostemplate"],
        "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"
    );
    assert_eq!(sent("/qemu/1001/snapshot", "POST")["snapname"], "baseline");
    assert_eq!(
        summary,
        ConvergeSummary {
            created: vec![
                "dns".into(),
                "docker".into(),
                "app1".into(),
                "gateway".into()
            ],
            started: vec![
                "dns".into(),
                "docker".into(),
                "app1".into(),
                "gateway".into()
            ],
            snapshotted: vec!["docker".into()],
            ..ConvergeSummary::default()
        }
    );
    let app = states.iter().find(|s| s.name == "app1").unwrap();
    assert_eq!(
        (app.status.as_str(), app.ip.as_deref(), app.node.as_str()),
        ("running", Some("10.0.0.101"), "pve1")
    );
    assert_eq!(app.config_digest, Some(state.borrow()[&1101].digest(1101)));
    let dns = states.iter().find(|s| s.name == "dns").unwrap();
    assert_eq!(
        (dns.kind, dns.ip.as_deref()),
        (Kind::Lxc, Some("10.0.1.101"))
    );
    assert_eq!(
        states
            .iter()
            .find(|s| s.name == "docker")
            .unwrap()
            .snapshot
            .as_deref(),
        Some("baseline")
    );
    // The MAC the node assigned is not a difference.
    assert!(state.borrow()[&1101].config["net0"].starts_with("virtio=BC:24:11"));

    let before = fake.calls().len();
    let (again, summary) = converge(&fake, &g, false).unwrap();
    let second: Vec<String> = fake.calls()[before..].to_vec();
    assert!(second.iter().all(|c| c.starts_with("GET ")), "{second:?}");
    assert_eq!(summary.unchanged, ["dns", "docker", "app1", "gateway"]);
    assert_eq!(
        again.iter().map(|s| s.ip.clone()).collect::<Vec<_>>(),
        states.iter().map(|s| s.ip.clone()).collect::<Vec<_>>()
    );
    let noop = plan(&fake, &g).unwrap();
    assert!(
        noop.iter().all(|c| c.action == PlannedAction::None),
        "{noop:?}"
    );
}

#[test]
fn one_changed_memory_plans_and_sends_exactly_one_update() {
    let (fake, state) = sim(templates());
    let g = globals(phoenix(), false);
    converge(&fake, &g, false).unwrap();
    {
        let mut guests = state.borrow_mut();
        let docker = guests.get_mut(&1001).unwrap();
        docker.config.insert("memory".into(), "4096".into());
        docker.version += 1;
    }
    let changes = plan(&fake, &g).unwrap();
    let real: Vec<&PlannedChange> = changes
        .iter()
        .filter(|c| c.action != PlannedAction::None)
        .collect();
    assert_eq!(real.len(), 1, "{changes:?}");
    assert_eq!(
        (
            real[0].action,
            real[0].name.as_str(),
            real[0].summary.as_str()
        ),
        (
            PlannedAction::Update,
            "docker",
            "update qemu docker (vmid 1001): memory"
        )
    );
    assert_eq!(
        real[0].changes,
        [orch_plugin_sdk::FieldChange {
            path: "/memory".into(),
            before: Some(json!(4096)),
            after: Some(json!(8192))
        }]
    );
    let before = fake.calls().len();
    let (_, summary) = converge(&fake, &g, false).unwrap();
    let sent: Vec<String> = fake.calls()[before..]
        .iter()
        .filter(|c| !c.starts_with("GET "))
        .cloned()
        .collect();
    assert_eq!(sent, ["PUT /nodes/pve1/qemu/1001/config"]);
    let put = form(
        fake.seen
            .borrow()
            .iter()
            .rev()
            .find(|r| r.method == "PUT")
            .unwrap(),
    );
    assert_eq!(put["memory"], "8192");
    assert_eq!(put["digest"], format!("{:020}{:020}", 1001, 3));
    assert_eq!(summary.updated, ["docker"]);
}

#[test]
fn net0_tags_and_snapshots_are_compared_the_way_pve_stores_them() {
    let (fake, _) = sim(vec![
        (
            300,
            guest(
                "qemu",
                "web",
                "running",
                &[
                    ("net0", "virtio=BC:24:11:00:01:2C,bridge=vmbr0,firewall=1"),
                    ("tags", "b;a"),
                ],
            ),
        ),
        (
            301,
            guest(
                "lxc",
                "ct",
                "running",
                &[(
                    "net0",
                    "name=eth0,bridge=vmbr0,hwaddr=BC:24:11:00:01:2D,ip=dhcp,type=veth",
                )],
            ),
        ),
    ]);
    let g = globals(
        json!([
            {"name": "web", "kind": "qemu", "vmid": 300, "net0": "virtio,firewall=1,bridge=vmbr0", "tags": ["a", "b"]},
            {"name": "ct", "kind": "lxc", "vmid": 301, "clone": 9100, "net0": "name=eth0,bridge=vmbr1,ip=dhcp", "snapshot": "s1"}
        ]),
        false,
    );
    let changes = plan(&fake, &g).unwrap();
    assert_eq!(changes[0].action, PlannedAction::None, "{changes:?}");
    assert_eq!(
        changes[0].summary,
        "qemu web (vmid 300) matches its declaration"
    );
    assert_eq!(changes[1].action, PlannedAction::Update);
    assert_eq!(changes[1].changes[0].path, "/net0");
    assert_eq!(changes[2].summary, "take snapshot s1 of lxc ct (vmid 301)");
    assert_eq!(
        fake.calls(),
        [
            "GET /cluster/resources?type=vm",
            "GET /nodes/pve1/qemu/300/config",
            "GET /nodes/pve1/lxc/301/config",
            "GET /nodes/pve1/lxc/301/snapshot"
        ]
    );
    converge(&fake, &g, false).unwrap();
    let put = form(
        fake.seen
            .borrow()
            .iter()
            .find(|r| r.method == "PUT")
            .unwrap(),
    );
    // The bridge changes, the MAC stays.
    assert_eq!(
        put["net0"],
        "name=eth0,bridge=vmbr1,ip=dhcp,hwaddr=BC:24:11:00:01:2D"
    );
    assert_eq!(
        with_mac(
            "virtio,bridge=vmbr1",
            Some("virtio=BC:24:11:00:01:2C,bridge=vmbr0"),
            Kind::Qemu
        ),
        "virtio=BC:24:11:00:01:2C,bridge=vmbr1"
    );
    assert_eq!(
        net_parts("virtio=BC:24:11:00:01:2C,bridge=vmbr0", Kind::Qemu),
        net_parts("bridge=vmbr0,virtio", Kind::Qemu)
    );
}

#[test]
fn undeclared_guests_are_left_alone_unless_prune_and_prune_needs_allow_destroy() {
    let existing = || {
        let mut guests = templates();
        guests.push((500, guest("qemu", "old", "running", &[])));
        guests.push((501, guest("lxc", "scratch", "stopped", &[])));
        let mut elsewhere = guest("qemu", "other-node", "running", &[]);
        elsewhere.node = "pve2".into();
        guests.push((502, elsewhere));
        guests
    };
    let declared =
        json!([{"name": "web", "kind": "qemu", "vmid": 300, "clone": 9000, "start": false}]);
    let (fake, _) = sim(existing());
    let changes = plan(&fake, &globals(declared.clone(), false)).unwrap();
    let undeclared: Vec<(PlannedAction, &str)> = changes[1..]
        .iter()
        .map(|c| (c.action, c.summary.as_str()))
        .collect();
    assert_eq!(
        undeclared,
        [
            (
                PlannedAction::None,
                "qemu old (vmid 500) on pve1: not declared (left alone)"
            ),
            (
                PlannedAction::None,
                "lxc scratch (vmid 501) on pve1: not declared (left alone)"
            ),
        ]
    );
    let (_, summary) = converge(&fake, &globals(declared.clone(), false), false).unwrap();
    assert_eq!(summary.undeclared, ["old", "scratch"]);
    assert_eq!(writes(&fake), ["POST /nodes/pve1/qemu/9000/clone"]);

    let (fake, state) = sim(existing());
    let pruning = globals(declared, true);
    let changes = plan(&fake, &pruning).unwrap();
    assert_eq!(changes[1].action, PlannedAction::Delete);
    assert_eq!(
        changes[1].summary,
        "stop and delete undeclared qemu old (vmid 500) on pve1 (prune; converge needs allowDestroy)"
    );
    let refused = invalid(converge(&fake, &pruning, false));
    assert!(
        refused.starts_with("refusing to converge: prune would delete 2 undeclared guest(s) on pve1: old (vmid 500), scratch (vmid 501); pass allowDestroy: true"),
        "{refused}"
    );
    assert!(writes(&fake).is_empty(), "refused before any write");
    let (_, summary) = converge(&fake, &pruning, true).unwrap();
    assert_eq!(summary.deleted, ["old", "scratch"]);
    assert_eq!(
        writes(&fake),
        [
            "POST /nodes/pve1/qemu/9000/clone",
            "POST /nodes/pve1/qemu/500/status/stop",
            "DELETE /nodes/pve1/qemu/500",
            "DELETE /nodes/pve1/lxc/501",
        ]
    );
    assert!(
        state.borrow().contains_key(&502),
        "other nodes are not pruned"
    );
    assert!(
        state.borrow().contains_key(&9000),
        "templates are never pruned"
    );
}

#[test]
fn a_live_guest_that_is_not_the_declared_one_is_a_conflict() {
    let (fake, _) = sim(vec![
        (300, guest("qemu", "web", "running", &[])),
        (301, guest("qemu", "db", "running", &[])),
    ]);
    let cases = [
        (
            json!([{"name": "www", "kind": "qemu", "vmid": 300}]),
            "guests[0].name: vmid 300 is named \"web\"",
        ),
        (
            json!([{"name": "web", "kind": "lxc", "vmid": 300, "clone": 1}]),
            "guests[0].vmid: 300 is a guest of type qemu",
        ),
        (
            json!([{"name": "db", "kind": "qemu", "vmid": 310}]),
            "guests[0].vmid: 310 does not exist, but qemu 301 is already named \"db\"",
        ),
    ];
    for (declared, expected) in cases {
        match plan(&fake, &globals(declared, false)) {
            Err(Error::Conflict(m)) => assert!(m.starts_with(expected), "{m}"),
            other => panic!("{other:?}"),
        }
    }
    let missing = globals(
        json!([{"name": "x", "kind": "qemu", "vmid": 320, "clone": "nope"}]),
        false,
    );
    match plan(&fake, &missing) {
        Err(Error::NotFound(m)) => assert_eq!(
            m,
            "guests[0].clone: no qemu template \"nope\" in the cluster to create \"x\" from; qemu templates: none"
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn malformed_answers_are_typed_errors_naming_the_endpoint_and_field() {
    let declared =
        json!([{"name": "web", "kind": "qemu", "vmid": 300, "cores": 2, "snapshot": "s"}]);
    let cases: Vec<(Value, Value, Value, &str)> = vec![
        (
            json!([{"type": "qemu", "vmid": "lots", "node": "pve1", "name": "web"}]),
            json!({}),
            json!([]),
            "GET /cluster/resources?type=vm: field `vmid` of entry 0",
        ),
        (
            json!([{"type": "qemu", "vmid": 300, "node": "pve1", "name": "web", "status": "running"}]),
            json!({"cores": "many", "digest": "d"}),
            json!([]),
            "GET /nodes/pve1/qemu/300/config: field `cores` is a string (\"many\")",
        ),
        (
            json!([{"type": "qemu", "vmid": 300, "node": "pve1", "name": "web", "status": "running"}]),
            json!(["not", "an", "object"]),
            json!([]),
            "GET /nodes/pve1/qemu/300/config: field `data` is a list, not an object",
        ),
        (
            json!([{"type": "qemu", "vmid": 300, "node": "pve1", "name": "web", "status": "running"}]),
            json!({"cores": 2}),
            json!({"name": "current"}),
            "GET /nodes/pve1/qemu/300/snapshot: field `data` is an object, not a list",
        ),
    ];
    for (list, config, snapshots, expected) in cases {
        let fake = FakePve::new(move |_, path, _| match path {
            "/cluster/resources?type=vm" => fake::ok(list.clone()),
            p if p.ends_with("/config") => fake::ok(config.clone()),
            _ => fake::ok(snapshots.clone()),
        });
        match plan(&fake, &globals(declared.clone(), false)) {
            Err(Error::Failed(m)) => assert!(m.starts_with(expected), "{m}\nexpected: {expected}"),
            other => panic!("{other:?}"),
        }
    }
    let denied = FakePve::new(|_, _, _| fake::fail(401, "authentication failure"));
    assert!(matches!(
        plan(&denied, &globals(declared, false)),
        Err(Error::Denied(_))
    ));
}

#[test]
fn node_star_is_refused_for_desired_guests() {
    let (fake, _) = sim(vec![]);
    let mut g = globals(json!([]), false);
    g.node = "*".into();
    assert!(invalid(plan(&fake, &g)).contains("creates guests on one node"));
}

mod through_the_host {
    use crate::ProxmoxPlugin;
    use orch_plugin_sdk::testing::FakeHost;
    use orch_plugin_sdk::{Error, PlannedAction, Plugin, Value, json};

    const API: &str = "https://10.0.0.4:8006/api2/json";

    fn globals(prune: bool) -> Value {
        json!({
            "apiUrl": "https://10.0.0.4:8006", "node": "pve1", "ticket": "PVE:t", "csrfToken": "c",
            "prune": prune,
            "guests": [{"name": "dns", "kind": "lxc", "vmid": 101, "ostemplate": "local:vztmpl/d.tar.zst", "memory": 512}]
        })
    }

    /// dns exists and matches; `old` is undeclared.
    fn host() -> FakeHost {
        FakeHost::new()
            .with_http(
                "GET",
                &format!("{API}/cluster/resources?type=vm"),
                200,
                json!({"data": [
                    {"id": "lxc/101", "type": "lxc", "vmid": 101, "name": "dns", "node": "pve1", "status": "running", "template": 0},
                    {"id": "qemu/500", "type": "qemu", "vmid": 500, "name": "old", "node": "pve1", "status": "stopped", "template": 0}
                ]}),
            )
            .with_http(
                "GET",
                &format!("{API}/nodes/pve1/lxc/101/config"),
                200,
                json!({"data": {"hostname": "dns", "memory": 512, "digest": "abc"}}),
            )
            .with_http(
                "GET",
                &format!("{API}/nodes/pve1/lxc/101/interfaces"),
                200,
                json!({"data": [{"name": "eth0", "inet": "10.0.0.53/24"}]}),
            )
    }

    #[test]
    fn converge_writes_one_guest_resource_per_declared_guest_and_retires_undeclared_ones() {
        let host = host().with_resource("guest", "removed", json!({"vmid": 1}));
        let out = host
            .call::<ProxmoxPlugin>("proxmox/guests", "converge", globals(false), json!({}))
            .unwrap();
        assert_eq!(
            out,
            json!({"created": [], "updated": [], "started": [], "snapshotted": [], "deleted": [],
                   "unchanged": ["dns"], "undeclared": ["old"]})
        );
        let dns = host.latest("guest", "dns").unwrap();
        assert_eq!(
            dns,
            json!({"name": "dns", "vmid": 101, "kind": "lxc", "node": "pve1", "status": "running",
                   "ip": "10.0.0.53", "configDigest": "abc", "snapshot": null,
                   "timestamp": dns["timestamp"]})
        );
        assert_eq!(host.list("guest"), ["dns"]);
        assert!(host.requests().iter().all(|r| r.method == "GET"));
    }

    #[test]
    fn the_plan_export_reads_only_and_a_pruning_converge_needs_allow_destroy() {
        let host = host();
        let plan = host
            .plan::<ProxmoxPlugin>("proxmox/guests", "converge", globals(true), json!({}))
            .unwrap();
        let actions: Vec<_> = plan.iter().map(|c| (c.action, c.name.as_str())).collect();
        assert_eq!(
            actions,
            [(PlannedAction::None, "dns"), (PlannedAction::Delete, "old")]
        );
        let err = host
            .call::<ProxmoxPlugin>("proxmox/guests", "converge", globals(true), json!({}))
            .unwrap_err();
        assert!(
            matches!(err, Error::InvalidArguments(ref m) if m.contains("allowDestroy")),
            "{err:?}"
        );
        assert!(host.requests().iter().all(|r| r.method == "GET"));
        assert!(host.list("guest").is_empty());
        let dry = host
            .dry_run::<ProxmoxPlugin>("proxmox/guests", "converge", globals(true), json!({}))
            .unwrap();
        assert_eq!(
            (dry["dryRun"].clone(), dry["deleted"].clone()),
            (json!(true), json!(["old"]))
        );
    }

    #[test]
    fn the_type_is_described_with_a_converge_method_and_a_volatile_timestamp() {
        let types = ProxmoxPlugin::types();
        let info = types
            .iter()
            .find(|t| t.name() == "proxmox/guests")
            .unwrap()
            .info();
        assert_eq!(info.methods.len(), 1);
        assert!(matches!(
            info.methods[0].kind,
            orch_plugin_sdk::bindings::orch::plugin::types::MethodKind::Converge
        ));
        let args: Value = serde_json::from_str(&info.methods[0].arguments_schema).unwrap();
        assert!(args["properties"]["allowDestroy"].is_object());
        let globals: Value = serde_json::from_str(&info.global_arguments_schema).unwrap();
        for key in [
            "apiUrl",
            "node",
            "ticket",
            "csrfToken",
            "apiToken",
            "insecureTls",
            "fingerprint",
            "guests",
            "prune",
        ] {
            assert!(globals["properties"][key].is_object(), "{key}");
        }
        assert_eq!(info.resources[0].volatile, ["timestamp"]);
    }
}

/// [`sim`] whose answers `overrides` may replace.
fn sim_with(
    guests: Vec<(u64, SimGuest)>,
    overrides: impl Fn(&str, &str) -> Option<HttpResponse> + 'static,
) -> FakePve {
    let state: SimState = Rc::new(RefCell::new(guests.into_iter().collect()));
    FakePve::new(move |method, path, req| {
        overrides(method, path).unwrap_or_else(|| answer(&state, method, path, req))
    })
}

#[test]
fn a_failing_step_names_the_guest_and_what_was_done_before_it() {
    let fake = sim_with(templates(), |method, path| {
        (method == "POST" && path == "/nodes/pve1/qemu/9000/clone")
            .then(|| fake::fail(500, "clone failed: no space left on device"))
    });
    let err = converge(&fake, &globals(phoenix(), false), false).unwrap_err();
    match err {
        Error::Failed(m) => assert_eq!(
            m,
            "converging guest \"docker\": POST /nodes/pve1/qemu/9000/clone: clone failed: no space left on device (HTTP 500); done before it: created [dns], updated [], started [dns]"
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        writes(&fake).last().map(String::as_str),
        Some("POST /nodes/pve1/qemu/9000/clone"),
        "nothing after the failed step"
    );
}

#[test]
fn wait_for_agent_polls_until_the_address_appears() {
    let polls = Rc::new(std::cell::Cell::new(0));
    let counter = polls.clone();
    let fake = sim_with(templates(), move |method, path| {
        if method == "GET" && path.ends_with("/agent/network-get-interfaces") {
            counter.set(counter.get() + 1);
            if counter.get() < 3 {
                return Some(fake::fail(500, "QEMU guest agent is not running"));
            }
        }
        None
    });
    let g = globals(
        json!([{"name": "web", "kind": "qemu", "vmid": 300, "clone": 9000, "waitForAgent": true}]),
        false,
    );
    let (states, _) = converge(&fake, &g, false).unwrap();
    assert_eq!(states[0].ip.as_deref(), Some("10.0.0.50"));
    assert_eq!(
        polls.get(),
        3,
        "polled until the agent answered, then not again"
    );
}

#[test]
fn a_thousand_matching_guests_cost_one_list_one_config_and_one_address_read_each() {
    let live: Vec<(u64, SimGuest)> = (0..1000u64)
        .map(|i| {
            let name = format!("g{i}");
            (
                1000 + i,
                guest(
                    "qemu",
                    &name,
                    "running",
                    &[("cores", "2"), ("memory", "1024")],
                ),
            )
        })
        .collect();
    // Each guest depends on the next one, so the converge order is the reverse of the
    // declaration: a 1,000-long chain, resolved without recursion.
    let declared: Vec<Value> = (0..1000u64)
        .map(|i| {
            let mut g = json!({"name": format!("g{i}"), "kind": "qemu", "vmid": 1000 + i,
                               "cores": 2, "memory": 1024});
            if i < 999 {
                g["dependsOn"] = json!([format!("g{}", i + 1)]);
            }
            g
        })
        .collect();
    let (fake, _) = sim(live);
    let (states, summary) = converge(&fake, &globals(json!(declared), false), false).unwrap();
    let calls = fake.calls();
    assert_eq!(calls.len(), 1 + 1000 + 1000, "list, configs, addresses");
    assert!(calls.iter().all(|c| c.starts_with("GET ")));
    assert_eq!(calls[1], "GET /nodes/pve1/qemu/1999/config");
    assert_eq!(calls[1000], "GET /nodes/pve1/qemu/1000/config");
    assert_eq!(summary.unchanged.len(), 1000);
    assert_eq!(summary.unchanged[0], "g999");
    assert_eq!(states.len(), 1000);
}

#[test]
fn a_guest_deleted_behind_orchs_back_is_planned_and_converged_again() {
    let (fake, state) = sim(templates());
    let g = globals(phoenix(), false);
    converge(&fake, &g, false).unwrap();
    state.borrow_mut().remove(&102);
    let changes = plan(&fake, &g).unwrap();
    let real: Vec<(PlannedAction, &str)> = changes
        .iter()
        .filter(|c| c.action != PlannedAction::None)
        .map(|c| (c.action, c.name.as_str()))
        .collect();
    assert_eq!(
        real,
        [
            (PlannedAction::Create, "gateway"),
            (PlannedAction::Start, "gateway")
        ]
    );
    let before = fake.calls().len();
    let (_, summary) = converge(&fake, &g, false).unwrap();
    let sent: Vec<String> = fake.calls()[before..]
        .iter()
        .filter(|c| !c.starts_with("GET "))
        .cloned()
        .collect();
    assert_eq!(
        sent,
        [
            "POST /nodes/pve1/lxc/9100/clone",
            "PUT /nodes/pve1/lxc/102/config",
            "POST /nodes/pve1/lxc/102/status/start"
        ]
    );
    assert_eq!(
        (summary.created, summary.unchanged),
        (
            vec!["gateway".to_string()],
            vec!["dns".to_string(), "docker".into(), "app1".into()]
        )
    );
}

#[test]
fn a_config_changed_between_plan_and_apply_is_a_conflict_not_an_overwrite() {
    let (fake, state) = sim(vec![(
        300,
        guest("qemu", "web", "running", &[("memory", "512")]),
    )]);
    let g = globals(
        json!([{"name": "web", "kind": "qemu", "vmid": 300, "memory": 1024}]),
        false,
    );
    let err = with_client(&fake, &g, |client| {
        let plan = client.plan()?;
        state.borrow_mut().get_mut(&300).unwrap().version += 1;
        client.apply(&plan, false)
    })
    .unwrap_err();
    match err {
        Error::Conflict(m) => assert!(
            m.starts_with("converging guest \"web\": PUT /nodes/pve1/qemu/300/config: detected modified configuration"),
            "{m}"
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(state.borrow()[&300].config["memory"], "512");
}
