//! The API behaviour without sockets: the same `Api` the server drives, called directly.

use super::*;
use crate::{Fleet, VmSeed};

pub(crate) const NODE: &str = "/api2/json/nodes/keeb-dev-02";

/// An `Api` plus a logged-in ticket, calling it the way the server would.
pub(crate) struct Node {
    pub(crate) api: Api,
    ticket: String,
    csrf: String,
}

pub(crate) struct Call<'a> {
    pub(crate) method: &'a str,
    pub(crate) path: &'a str,
    pub(crate) body: &'a str,
    pub(crate) json: bool,
    pub(crate) cookie: Option<String>,
    pub(crate) csrf: Option<String>,
    pub(crate) authorization: Option<&'a str>,
}

impl Node {
    pub(crate) fn with(config: SimConfig) -> Node {
        let mut api = Api::new(&config, "ab01");
        let body = format!("username={}&password={}", config.username, config.password);
        let reply = api.handle(&ApiRequest {
            method: "POST",
            path: "/api2/json/access/ticket",
            query: None,
            content_type: Some("application/x-www-form-urlencoded"),
            cookies: vec![],
            authorization: None,
            csrf_token: None,
            body: body.as_bytes(),
        });
        assert_eq!(reply.status, 200);
        let value: Value = serde_json::from_slice(&reply.body).unwrap();
        Node {
            api,
            ticket: value["data"]["ticket"].as_str().unwrap().to_string(),
            csrf: value["data"]["CSRFPreventionToken"]
                .as_str()
                .unwrap()
                .to_string(),
        }
    }

    pub(crate) fn new() -> Node {
        Node::with(SimConfig::default())
    }

    pub(crate) fn call(&self, method: &'static str, path: &'static str) -> Call<'static> {
        Call {
            method,
            path,
            body: "",
            json: false,
            cookie: Some(format!("PVEAuthCookie={}", self.ticket)),
            csrf: Some(self.csrf.clone()),
            authorization: None,
        }
    }

    pub(crate) fn send(&mut self, call: &Call<'_>) -> (u16, Value) {
        let (path, query) = match call.path.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (call.path, None),
        };
        let reply = self.api.handle(&ApiRequest {
            method: call.method,
            path,
            query,
            content_type: Some(if call.json {
                "application/json"
            } else {
                "application/x-www-form-urlencoded"
            }),
            cookies: call.cookie.iter().map(String::as_str).collect(),
            authorization: call.authorization,
            csrf_token: call.csrf.as_deref(),
            body: call.body.as_bytes(),
        });
        let value = serde_json::from_slice(&reply.body).unwrap();
        (reply.status, value)
    }

    pub(crate) fn get(&mut self, path: &str) -> (u16, Value) {
        let mut call = self.call("GET", "");
        call.path = path;
        self.send(&call)
    }

    pub(crate) fn write(&mut self, method: &'static str, path: &str, body: &str) -> (u16, Value) {
        let mut call = self.call(method, "");
        call.path = path;
        call.body = body;
        self.send(&call)
    }

    /// Polls a task until it stops, returning its exitstatus and how many polls it took.
    pub(crate) fn finish(&mut self, upid: &Value) -> (String, usize) {
        let path = format!("{NODE}/tasks/{}/status", upid.as_str().unwrap());
        for polls in 1..=5 {
            let (status, body) = self.get(&path);
            assert_eq!(status, 200, "{body}");
            if body["data"]["status"] == "stopped" {
                return (
                    body["data"]["exitstatus"].as_str().unwrap().to_string(),
                    polls,
                );
            }
        }
        panic!("task never stopped");
    }
}

pub(crate) fn message(body: &Value) -> &str {
    body["message"].as_str().unwrap_or_default()
}

#[test]
fn login_accepts_a_json_body_with_separate_realm() {
    let mut node = Node::new();
    let mut call = node.call("POST", "/api2/json/access/ticket");
    call.body = r#"{"username":"root","realm":"pam","password":"simulator-password"}"#;
    call.json = true;
    call.cookie = None;
    let (status, body) = node.send(&call);
    assert_eq!(status, 200);
    assert_eq!(body["data"]["username"], "root@pam");
    assert!(
        body["data"]["ticket"]
            .as_str()
            .unwrap()
            .starts_with("PVE:root@pam:")
    );
    assert_eq!(body["data"]["cap"], json!({}));
}

#[test]
fn login_without_password_is_a_parameter_error() {
    let mut node = Node::new();
    let mut call = node.call("POST", "/api2/json/access/ticket");
    call.body = "username=root@pam";
    let (status, body) = node.send(&call);
    assert_eq!(status, 400);
    assert_eq!(message(&body), "Parameter verification failed.\n");
    assert!(body["errors"]["password"].is_string());
}

#[test]
fn login_reply_sets_the_auth_cookie() {
    let mut api = Api::new(&SimConfig::default(), "00");
    let reply = api.handle(&ApiRequest {
        method: "POST",
        path: "/api2/json/access/ticket",
        query: None,
        content_type: None,
        cookies: vec![],
        authorization: None,
        csrf_token: None,
        body: b"username=root%40pam&password=simulator-password",
    });
    assert_eq!(reply.status, 200);
    let cookie = reply.set_cookie.unwrap();
    assert!(
        cookie.starts_with("PVEAuthCookie=PVE:root@pam:"),
        "{cookie}"
    );
}

#[test]
fn unknown_paths_are_not_implemented_even_without_a_ticket() {
    let mut node = Node::new();
    let mut call = node.call("GET", "/api2/json/nodes/keeb-dev-02/ceph/status");
    call.cookie = None;
    let (status, body) = node.send(&call);
    assert_eq!(status, 501);
    assert_eq!(
        message(&body),
        "Method 'GET /nodes/keeb-dev-02/ceph/status' not implemented\n"
    );
    let (status, body) = node.get("/index.html");
    assert_eq!(status, 404);
    assert!(body["data"].is_null());
    let (status, _) = node.write("PATCH", &format!("{NODE}/qemu"), "");
    assert_eq!(status, 501);
    let (status, _) = node.write("POST", &format!("{NODE}/qemu/108/status/hibernate"), "");
    assert_eq!(status, 501);
}

#[test]
fn requests_without_credentials_get_no_ticket() {
    let mut node = Node::new();
    let mut call = node.call("GET", "/api2/json/nodes");
    call.cookie = Some("PVEAuthCookie=PVE:root@pam:00000000::forged".to_string());
    let (status, body) = node.send(&call);
    assert_eq!(status, 401);
    assert_eq!(body, json!({"data": null, "message": "No ticket\n"}));
    call.cookie = None;
    assert_eq!(node.send(&call).0, 401);
}

#[test]
fn expired_tickets_are_refused_and_new_logins_work() {
    let mut node = Node::new();
    assert_eq!(node.get("/api2/json/nodes").0, 200);
    node.api.expire_tickets();
    let (status, body) = node.get("/api2/json/nodes");
    assert_eq!((status, message(&body)), (401, "No ticket\n"));
    let fresh = Node::with(SimConfig::default());
    node.ticket = fresh.ticket.clone();
    assert_eq!(
        node.get("/api2/json/nodes").0,
        401,
        "tickets are per simulator"
    );
}

#[test]
fn writes_need_the_csrf_token_issued_with_the_ticket() {
    let mut node = Node::new();
    for csrf in [None, Some("6819A3C2:not-the-token".to_string())] {
        let mut call = node.call("POST", "/api2/json/nodes/keeb-dev-02/qemu/101/status/start");
        call.csrf = csrf;
        let (status, body) = node.send(&call);
        assert_eq!(status, 401);
        assert_eq!(
            message(&body),
            "Permission check failed (invalid csrf token)\n"
        );
    }
    // Reads need no CSRF token.
    let mut call = node.call("GET", "/api2/json/nodes");
    call.csrf = None;
    assert_eq!(node.send(&call).0, 200);
}

#[test]
fn token_writes_need_no_csrf_and_tasks_run_as_the_token() {
    let mut node = Node::with(SimConfig {
        api_tokens: vec![("root@pam!ci".to_string(), "s3cret".to_string())],
        ..SimConfig::default()
    });
    let mut call = node.call("POST", "/api2/json/nodes/keeb-dev-02/qemu/101/status/start");
    call.cookie = None;
    call.csrf = None;
    call.authorization = Some("PVEAPIToken=root@pam!ci=s3cret");
    let (status, body) = node.send(&call);
    assert_eq!(status, 200, "{body}");
    assert!(
        body["data"]
            .as_str()
            .unwrap()
            .ends_with(":qmstart:101:root@pam!ci:")
    );
}

#[test]
fn unknown_node_fails_like_a_proxy_lookup() {
    let mut node = Node::new();
    let (status, body) = node.get("/api2/json/nodes/pve-9/qemu");
    assert_eq!(status, 500);
    assert_eq!(
        message(&body),
        "hostname lookup 'pve-9' failed - failed to get address info for: pve-9: Name or service not known\n"
    );
    assert_eq!(node.get("/api2/json/nodes/localhost/qemu").0, 200);
}

#[test]
fn unknown_and_malformed_vmids() {
    let mut node = Node::new();
    let (status, body) = node.get(&format!("{NODE}/qemu/999/status/current"));
    assert_eq!(status, 500);
    assert_eq!(
        message(&body),
        "Configuration file 'nodes/keeb-dev-02/qemu-server/999.conf' does not exist\n"
    );
    let (status, body) = node.get(&format!("{NODE}/qemu/abc/config"));
    assert_eq!(status, 400);
    assert_eq!(
        body["errors"]["vmid"],
        "type check ('integer') failed - got 'abc'"
    );
    let (status, _) = node.get(&format!("{NODE}/qemu/99/config"));
    assert_eq!(status, 400);
}

#[test]
fn qemu_list_has_pve_fields_and_unnamed_vms() {
    let mut node = Node::new();
    let (status, body) = node.get(&format!("{NODE}/qemu"));
    assert_eq!(status, 200);
    let rows = body["data"].as_array().unwrap();
    assert_eq!(rows.len(), 10);
    let row = |vmid: u64| rows.iter().find(|r| r["vmid"] == vmid).unwrap();
    let allthemons = row(108);
    assert_eq!(allthemons["name"], "allthemons");
    assert_eq!(allthemons["status"], "running");
    assert_eq!(allthemons["cpus"], 4);
    assert_eq!(allthemons["maxmem"], 16_u64 * 1024 * 1024 * 1024);
    assert!(allthemons["mem"].as_u64().unwrap() > 0);
    assert!(allthemons["uptime"].as_u64().unwrap() > 0);
    assert!(allthemons["pid"].is_u64());
    let unnamed = row(102);
    assert_eq!(unnamed["name"], "VM 102");
    assert_eq!(unnamed["uptime"], 0);
    assert!(unnamed.get("pid").is_none());
}

#[test]
fn status_current_reports_agent_and_qmp_status() {
    let mut node = Node::new();
    let (_, body) = node.get(&format!("{NODE}/qemu/108/status/current"));
    let data = &body["data"];
    assert_eq!(data["vmid"], 108);
    assert_eq!(data["name"], "allthemons");
    assert_eq!(
        (data["status"].as_str(), data["qmpstatus"].as_str()),
        (Some("running"), Some("running"))
    );
    assert_eq!(data["agent"], 1);
    assert!(data["pid"].is_u64());
    let (_, body) = node.get(&format!("{NODE}/qemu/101/status/current"));
    assert_eq!(body["data"]["status"], "stopped");
    assert_eq!(body["data"]["uptime"], 0);
    assert!(body["data"].get("pid").is_none());
}

#[test]
fn config_get_has_typed_values_and_a_digest() {
    let mut node = Node::new();
    let (_, body) = node.get(&format!("{NODE}/qemu/108/config"));
    let data = &body["data"];
    assert_eq!(data["name"], "allthemons");
    assert_eq!(data["cores"], 4);
    assert_eq!(data["memory"], "16384");
    assert_eq!(data["boot"], "order=scsi0;net0");
    assert_eq!(data["agent"], "1");
    assert_eq!(data["net0"], "virtio=BC:24:11:00:00:6C,bridge=vmbr0");
    assert_eq!(data["digest"].as_str().unwrap().len(), 40);
    let (_, body) = node.get(&format!("{NODE}/qemu/102/config"));
    assert!(body["data"].get("name").is_none());
}

#[test]
fn agent_errors_come_in_pve_order() {
    let mut node = Node::with(SimConfig {
        fleet: Fleet::reference().with(VmSeed {
            agent_enabled: false,
            ..VmSeed::new(110, "no-agent").running_at(std::net::Ipv4Addr::new(10, 0, 0, 5))
        }),
        ..SimConfig::default()
    });
    let interfaces = |vmid: u32| format!("{NODE}/qemu/{vmid}/agent/network-get-interfaces");
    let (status, body) = node.get(&interfaces(101));
    assert_eq!((status, message(&body)), (500, "VM 101 is not running\n"));
    let (status, body) = node.get(&interfaces(103));
    assert_eq!(
        (status, message(&body)),
        (500, "QEMU guest agent is not running\n")
    );
    let (status, body) = node.get(&interfaces(110));
    assert_eq!(
        (status, message(&body)),
        (500, "No QEMU guest agent configured\n")
    );
    let (status, body) = node.get(&format!("{NODE}/qemu/109/agent/get-host-name"));
    assert_eq!(status, 200);
    assert_eq!(body["data"]["result"]["host-name"], "gold-image");
    let (status, _) = node.write("POST", &format!("{NODE}/qemu/109/agent/ping"), "");
    assert_eq!(status, 200);
}

#[test]
fn interfaces_list_lo_first_then_link_local_before_ipv4() {
    let mut node = Node::new();
    let (status, body) = node.get(&format!("{NODE}/qemu/107/agent/network-get-interfaces"));
    assert_eq!(status, 200);
    let result = body["data"]["result"].as_array().unwrap();
    assert_eq!(result[0]["name"], "lo");
    assert_eq!(result[0]["ip-addresses"][0]["ip-address"], "127.0.0.1");
    assert_eq!(result[1]["name"], "eth0");
    let addresses = result[1]["ip-addresses"].as_array().unwrap();
    assert_eq!(addresses[0]["ip-address-type"], "ipv6");
    assert!(
        addresses[0]["ip-address"]
            .as_str()
            .unwrap()
            .starts_with("fe80::")
    );
    assert_eq!(addresses[1]["ip-address-type"], "ipv4");
    assert_eq!(addresses[1]["ip-address"], "10.0.0.208");
    assert_eq!(addresses[1]["prefix"], 24);
}

#[test]
fn start_takes_effect_when_the_task_is_first_reported_stopped() {
    let mut node = Node::new();
    let (status, body) = node.write("POST", &format!("{NODE}/qemu/105/status/start"), "");
    assert_eq!(status, 200);
    let upid = body["data"].clone();
    assert!(upid.as_str().unwrap().starts_with("UPID:keeb-dev-02:"));
    assert_eq!(
        node.api.vm_status("meatballcraft").as_deref(),
        Some("stopped")
    );
    let (_, first) = node.get(&format!("{NODE}/tasks/{}/status", upid.as_str().unwrap()));
    assert_eq!(first["data"]["status"], "running");
    assert!(first["data"].get("exitstatus").is_none());
    assert_eq!(
        node.api.vm_status("meatballcraft").as_deref(),
        Some("stopped")
    );
    let (exit, _) = node.finish(&upid);
    assert_eq!(exit, "OK");
    assert_eq!(
        node.api.vm_status("meatballcraft").as_deref(),
        Some("running")
    );
    assert_eq!(
        node.api.vm_ip("meatballcraft").as_deref(),
        Some("10.1.0.107")
    );
}

#[test]
fn starting_a_running_vm_fails_inside_the_task() {
    let mut node = Node::new();
    let (status, body) = node.write("POST", &format!("{NODE}/qemu/108/status/start"), "");
    assert_eq!(status, 200);
    assert_eq!(node.finish(&body["data"]).0, "VM 108 already running");
    let log_path = format!("{NODE}/tasks/{}/log", body["data"].as_str().unwrap());
    let (_, log) = node.get(&log_path);
    assert_eq!(log["total"], 2);
    assert_eq!(log["data"][1]["t"], "TASK ERROR: VM 108 already running");
}

#[test]
fn stopping_a_stopped_vm_succeeds_and_shutdown_stops() {
    let mut node = Node::new();
    let (_, body) = node.write("POST", &format!("{NODE}/qemu/101/status/stop"), "");
    assert_eq!(node.finish(&body["data"]).0, "OK");
    let (_, body) = node.write("POST", &format!("{NODE}/qemu/100/status/shutdown"), "");
    assert_eq!(node.finish(&body["data"]).0, "OK");
    assert_eq!(node.api.vm_status("slate").as_deref(), Some("stopped"));
    assert_eq!(node.api.vm_ip("slate"), None);
}

#[test]
fn reboot_needs_a_running_vm_and_restarts_it() {
    let mut node = Node::new();
    let (status, body) = node.write("POST", &format!("{NODE}/qemu/101/status/reboot"), "");
    assert_eq!((status, message(&body)), (500, "VM 101 not running\n"));
    let (_, before) = node.get(&format!("{NODE}/qemu/100/status/current"));
    let (_, body) = node.write("POST", &format!("{NODE}/qemu/100/status/reboot"), "");
    assert_eq!(node.finish(&body["data"]).0, "OK");
    let (_, after) = node.get(&format!("{NODE}/qemu/100/status/current"));
    assert_eq!(after["data"]["status"], "running");
    assert_ne!(after["data"]["pid"], before["data"]["pid"]);
}

#[test]
fn create_reserves_the_vmid_and_adds_the_vm_when_done() {
    let mut node = Node::new();
    let qemu = format!("{NODE}/qemu");
    let (status, body) = node.write(
        "POST",
        &qemu,
        "vmid=120&name=test-vm&memory=1024&cores=2&net0=virtio%2Cbridge%3Dvmbr0&agent=1",
    );
    assert_eq!(status, 200, "{body}");
    let upid = body["data"].clone();
    assert!(upid.as_str().unwrap().contains(":qmcreate:120:root@pam:"));
    let (status, body) = node.write("POST", &qemu, "vmid=120&name=again");
    assert_eq!(
        (status, message(&body)),
        (500, "VM 120 already exists on node 'keeb-dev-02'\n")
    );
    assert_eq!(node.get(&format!("{NODE}/qemu/120/config")).0, 500);
    assert_eq!(node.finish(&upid).0, "OK");
    let (_, config) = node.get(&format!("{NODE}/qemu/120/config"));
    assert_eq!(config["data"]["name"], "test-vm");
    assert_eq!(
        config["data"]["net0"],
        "virtio=BC:24:11:00:00:78,bridge=vmbr0"
    );
    assert_eq!(node.api.vm_status("test-vm").as_deref(), Some("stopped"));
    let (status, body) = node.write("POST", &qemu, "vmid=108&name=dup");
    assert_eq!(
        (status, message(&body)),
        (500, "VM 108 already exists on node 'keeb-dev-02'\n")
    );
}

#[test]
fn create_with_start_boots_the_new_vm() {
    let mut node = Node::new();
    let (_, body) = node.write(
        "POST",
        &format!("{NODE}/qemu"),
        "vmid=121&name=booted&net0=virtio,bridge=vmbr0&agent=1&start=1",
    );
    assert_eq!(node.finish(&body["data"]).0, "OK");
    assert_eq!(node.api.vm_status("booted").as_deref(), Some("running"));
    assert_eq!(node.api.vm_ip("booted").as_deref(), Some("10.1.0.123"));
}

#[test]
fn create_checks_parameters_like_the_schema() {
    let mut node = Node::new();
    let qemu = format!("{NODE}/qemu");
    let (status, body) = node.write("POST", &qemu, "name=no-vmid");
    assert_eq!(status, 400);
    assert!(body["errors"]["vmid"].is_string());
    let (status, body) = node.write("POST", &qemu, "vmid=130&name=has%20space");
    assert_eq!(status, 400);
    assert_eq!(
        body["errors"]["name"],
        "invalid format - value does not look like a valid DNS name"
    );
    let (status, body) = node.write("POST", &qemu, "vmid=130&colour=blue&cores=x");
    assert_eq!(status, 400);
    assert!(body["errors"]["colour"].is_string());
    assert!(body["errors"]["cores"].is_string());
}

#[test]
fn destroy_refuses_a_running_vm_and_removes_a_stopped_one() {
    let mut node = Node::new();
    let (status, body) = node.write("DELETE", &format!("{NODE}/qemu/108"), "");
    assert_eq!(
        (status, message(&body)),
        (500, "VM 108 is running - destroy failed\n")
    );
    let (status, body) = node.write("DELETE", &format!("{NODE}/qemu/106"), "");
    assert_eq!(status, 200);
    assert!(body["data"].as_str().unwrap().contains(":qmdestroy:106:"));
    assert_eq!(node.api.vm_status("factorio").as_deref(), Some("stopped"));
    assert_eq!(node.finish(&body["data"]).0, "OK");
    assert_eq!(node.api.vm_status("factorio"), None);
    let (status, body) = node.get(&format!("{NODE}/qemu/106/status/current"));
    assert_eq!(status, 500);
    assert!(message(&body).contains("106.conf' does not exist"));
}

#[test]
fn destroy_fails_in_the_task_if_the_vm_was_started_meanwhile() {
    let mut node = Node::new();
    let (_, destroy) = node.write("DELETE", &format!("{NODE}/qemu/104"), "");
    let (_, start) = node.write("POST", &format!("{NODE}/qemu/104/status/start"), "");
    assert_eq!(node.finish(&start["data"]).0, "OK");
    assert_eq!(
        node.finish(&destroy["data"]).0,
        "VM 104 is running - destroy failed"
    );
    assert_eq!(
        node.api.vm_status("satisfactory").as_deref(),
        Some("running")
    );
}

#[test]
fn put_config_applies_at_once_and_checks_the_digest() {
    let mut node = Node::new();
    let config = format!("{NODE}/qemu/106/config");
    let (_, before) = node.get(&config);
    let digest = before["data"]["digest"].as_str().unwrap().to_string();
    let (status, body) = node.write(
        "PUT",
        &config,
        &format!("cores=6&boot=order%3Dnet0&delete=ostype&digest={digest}"),
    );
    assert_eq!((status, &body), (200, &json!({"data": null})));
    let (_, after) = node.get(&config);
    assert_eq!(after["data"]["cores"], 6);
    assert_eq!(after["data"]["boot"], "order=net0");
    assert!(after["data"].get("ostype").is_none());
    let (status, body) = node.write("PUT", &config, &format!("cores=2&digest={digest}"));
    assert_eq!(status, 500);
    assert!(message(&body).starts_with("detected modified configuration"));
    let (status, body) = node.write("PUT", &config, "");
    assert_eq!((status, message(&body)), (500, "no options specified\n"));
    let (status, _) = node.write("PUT", &config, "delete=bogus");
    assert_eq!(status, 400);
}

#[test]
fn post_config_applies_when_its_task_stops() {
    let mut node = Node::new();
    let config = format!("{NODE}/qemu/101/config");
    let (status, body) = node.write("POST", &config, "name=atm11&agent=0");
    assert_eq!(status, 200);
    assert!(body["data"].as_str().unwrap().contains(":qmconfig:101:"));
    assert_eq!(node.api.vm_status("atm10").as_deref(), Some("stopped"));
    assert_eq!(node.finish(&body["data"]).0, "OK");
    assert_eq!(node.api.vm_status("atm10"), None);
    let (_, after) = node.get(&config);
    assert_eq!(after["data"]["name"], "atm11");
    // With the agent configured off, a started VM reports no address.
    let (_, start) = node.write("POST", &format!("{NODE}/qemu/101/status/start"), "");
    assert_eq!(node.finish(&start["data"]).0, "OK");
    assert_eq!(node.api.vm_ip("atm11"), None);
}

#[test]
fn unknown_and_malformed_upids_are_errors() {
    let mut node = Node::new();
    let (status, body) = node.get(&format!("{NODE}/tasks/not-a-upid/status"));
    assert_eq!(
        (status, message(&body)),
        (500, "unable to parse worker upid 'not-a-upid'\n")
    );
    let upid = "UPID:keeb-dev-02:0000ABCD:0001F00D:6819A3C2:qmstart:108:root@pam:";
    let (status, body) = node.get(&format!("{NODE}/tasks/{upid}/status"));
    assert_eq!(status, 500);
    assert!(message(&body).starts_with("unable to open file '/var/log/pve/tasks/2/UPID:"));
    assert_eq!(node.get(&format!("{NODE}/tasks/{upid}/log")).0, 500);
}

#[test]
fn task_paths_accept_a_percent_encoded_upid() {
    let mut node = Node::new();
    let (_, body) = node.write("POST", &format!("{NODE}/qemu/101/status/start"), "");
    let encoded = body["data"]
        .as_str()
        .unwrap()
        .replace(':', "%3A")
        .replace('@', "%40");
    let path = format!("{NODE}/tasks/{encoded}/status");
    assert_eq!(node.get(&path).1["data"]["status"], "running");
    assert_eq!(node.get(&path).1["data"]["status"], "stopped");
    let requests = node.api.requests();
    assert!(
        requests
            .last()
            .unwrap()
            .contains("/tasks/UPID:keeb-dev-02:")
    );
}

#[test]
fn task_log_before_the_end_has_no_content() {
    let mut node = Node::new();
    let (_, body) = node.write("POST", &format!("{NODE}/qemu/101/status/start"), "");
    let upid = body["data"].as_str().unwrap().to_string();
    let (_, log) = node.get(&format!("{NODE}/tasks/{upid}/log"));
    assert_eq!(log["data"], json!([{"n": 1, "t": "no content"}]));
    // Reading the log is not a status poll.
    assert_eq!(node.finish(&body["data"]), ("OK".to_string(), 2));
    let (_, log) = node.get(&format!("{NODE}/tasks/{upid}/log"));
    assert_eq!(log["data"], json!([{"n": 1, "t": "TASK OK"}]));
}

#[test]
fn cluster_resources_filter_by_type() {
    let mut node = Node::new();
    // 1 node, 10 VMs, 2 containers, 3 pools.
    let (_, all) = node.get("/api2/json/cluster/resources");
    assert_eq!(all["data"].as_array().unwrap().len(), 16);
    let (_, vms) = node.get("/api2/json/cluster/resources?type=vm");
    let vms = vms["data"].as_array().unwrap();
    assert_eq!(vms.len(), 12);
    assert_eq!(vms[0]["id"], "qemu/100");
    assert_eq!(vms[0]["node"], "keeb-dev-02");
    assert_eq!(vms[10]["id"], "lxc/900");
    assert_eq!(vms[10]["type"], "lxc");
    assert_eq!(vms[10]["tags"], "dns;infra");
    let (_, nodes) = node.get("/api2/json/cluster/resources?type=node");
    assert_eq!(nodes["data"][0]["ssl_fingerprint"], "AB:01");
    assert_eq!(node.get("/api2/json/cluster/resources?type=bogus").0, 400);
}

#[test]
fn request_log_keeps_method_and_path_only() {
    let mut node = Node::new();
    node.get("/api2/json/cluster/resources?type=vm");
    let requests = node.api.requests();
    assert_eq!(
        requests,
        [
            "POST /api2/json/access/ticket",
            "GET /api2/json/cluster/resources"
        ]
    );
    assert_eq!(node.api.request_count(), 2);
}

#[test]
fn next_id_skips_vms_containers_and_reserved_ids() {
    let mut node = Node::new();
    // Reference VMs are 100-109, so 110 is free; containers live at 900 and 901.
    let (status, next) = node.get("/api2/json/cluster/nextid");
    assert_eq!((status, next["data"].clone()), (200, json!("110")));
    // A create reserves its vmid at once, before its task ends.
    let (status, _) = node.write(
        "POST",
        &format!("{NODE}/lxc"),
        "vmid=110&ostemplate=local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst&hostname=ct110",
    );
    assert_eq!(status, 200);
    assert_eq!(node.get("/api2/json/cluster/nextid").1["data"], "111");
}
