//! The simulator over real HTTPS, driven by reqwest the way orch's Proxmox plugin drives PVE.

mod common;

use common::{NODE, Session, client, form, post_login, read};
use pve_sim::{Fleet, SimConfig, Simulator};
use serde_json::{Value, json};

async fn simulator() -> Simulator {
    Simulator::start(SimConfig::default())
        .await
        .expect("simulator starts")
}

#[tokio::test]
async fn login_returns_ticket_csrf_and_cookie_that_authenticate_later_calls() {
    let sim = simulator().await;
    let response = post_login(&sim.url(), "root@pam", "simulator-password").await;
    let cookie = response
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap()
        .to_string();
    let (status, body) = read(response).await;
    assert_eq!(status, 200);
    let ticket = body["data"]["ticket"].as_str().unwrap();
    let csrf = body["data"]["CSRFPreventionToken"].as_str().unwrap();
    assert!(ticket.starts_with("PVE:root@pam:"), "{ticket}");
    assert_eq!(csrf.split(':').next(), ticket.split(':').nth(2));
    assert_eq!(body["data"]["username"], "root@pam");
    assert!(
        cookie.starts_with(&format!("PVEAuthCookie={ticket};")),
        "{cookie}"
    );

    // The cookie alone authenticates reads; the CSRF token makes writes pass.
    let cookie_pair = cookie.split(';').next().unwrap().to_string();
    let nodes = client()
        .get(format!("{}/api2/json/nodes", sim.url()))
        .header("Cookie", &cookie_pair)
        .send()
        .await
        .unwrap();
    let (status, body) = read(nodes).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"][0]["node"], NODE);
    assert_eq!(body["data"][0]["status"], "online");
    let start = client()
        .post(format!(
            "{}/api2/json/nodes/{NODE}/qemu/101/status/start",
            sim.url()
        ))
        .header("Cookie", &cookie_pair)
        .header("CSRFPreventionToken", csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(start.status().as_u16(), 200);
}

#[tokio::test]
async fn login_with_json_body_and_realm_field() {
    let sim = simulator().await;
    let response = client()
        .post(format!("{}/api2/json/access/ticket", sim.url()))
        .json(&json!({"username": "root", "realm": "pam", "password": "simulator-password"}))
        .send()
        .await
        .unwrap();
    let (status, body) = read(response).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["username"], "root@pam");
}

#[tokio::test]
async fn wrong_password_is_401_authentication_failure() {
    let sim = simulator().await;
    let response = post_login(&sim.url(), "root@pam", "hunter2").await;
    assert!(response.headers().get("set-cookie").is_none());
    let (status, body) = read(response).await;
    assert_eq!(status, 401);
    assert_eq!(
        body,
        json!({"data": null, "message": "authentication failure\n"})
    );
}

#[tokio::test]
async fn expired_ticket_is_401_no_ticket() {
    let sim = simulator().await;
    let session = Session::login(&sim).await;
    assert_eq!(session.get("/nodes").await.0, 200);
    sim.expire_tickets();
    let (status, body) = session.get("/nodes").await;
    assert_eq!(status, 401);
    assert_eq!(body, json!({"data": null, "message": "No ticket\n"}));
    // Logging in again recovers, as orch's re-auth path expects.
    let again = Session::login(&sim).await;
    assert_eq!(again.get("/nodes").await.0, 200);
}

#[tokio::test]
async fn missing_credentials_are_401_no_ticket() {
    let sim = simulator().await;
    let response = client()
        .get(format!("{}/api2/json/nodes/{NODE}/qemu", sim.url()))
        .send()
        .await
        .unwrap();
    let (status, body) = read(response).await;
    assert_eq!(status, 401);
    assert_eq!(body["message"], "No ticket\n");
}

#[tokio::test]
async fn write_without_csrf_token_is_401_and_changes_nothing() {
    let sim = simulator().await;
    let session = Session::login(&sim).await;
    let response = session
        .client
        .post(format!(
            "{}/api2/json/nodes/{NODE}/qemu/101/status/start",
            sim.url()
        ))
        .header("Cookie", format!("PVEAuthCookie={}", session.ticket))
        .send()
        .await
        .unwrap();
    let (status, body) = read(response).await;
    assert_eq!(status, 401);
    assert_eq!(
        body,
        json!({"data": null, "message": "Permission check failed (invalid csrf token)\n"})
    );
    assert_eq!(sim.vm_status("atm10").as_deref(), Some("stopped"));
}

#[tokio::test]
async fn api_token_authenticates_reads_and_writes_without_csrf() {
    let sim = Simulator::start(SimConfig {
        api_tokens: vec![("root@pam!ci".to_string(), "0b5d6c1e-secret".to_string())],
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let auth = "PVEAPIToken=root@pam!ci=0b5d6c1e-secret";
    let list = client()
        .get(format!("{}/api2/json/nodes/{NODE}/qemu", sim.url()))
        .header("Authorization", auth)
        .send()
        .await
        .unwrap();
    let (status, body) = read(list).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"].as_array().unwrap().len(), 10);
    let start = client()
        .post(format!(
            "{}/api2/json/nodes/{NODE}/qemu/101/status/start",
            sim.url()
        ))
        .header("Authorization", auth)
        .send()
        .await
        .unwrap();
    let (status, body) = read(start).await;
    assert_eq!(status, 200);
    assert!(
        body["data"]
            .as_str()
            .unwrap()
            .ends_with(":qmstart:101:root@pam!ci:")
    );
    let wrong = client()
        .get(format!("{}/api2/json/nodes", sim.url()))
        .header("Authorization", "PVEAPIToken=root@pam!ci=wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
}

#[tokio::test]
async fn sync_of_the_reference_fleet_sees_the_documented_vms_and_ips() {
    let sim = simulator().await;
    let session = Session::login(&sim).await;
    let (status, body) = session.get(&format!("/nodes/{NODE}/qemu")).await;
    assert_eq!(status, 200);
    let mut synced = Vec::new();
    for vm in body["data"].as_array().unwrap() {
        let vmid = vm["vmid"].as_u64().unwrap();
        let mut ip = Value::Null;
        if vm["status"] == "running" {
            let path = format!("/nodes/{NODE}/qemu/{vmid}/agent/network-get-interfaces");
            let (status, body) = session.get(&path).await;
            if status == 200 {
                ip = body["data"]["result"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|iface| iface["name"] != "lo")
                    .flat_map(|iface| iface["ip-addresses"].as_array().unwrap().clone())
                    .find(|addr| addr["ip-address-type"] == "ipv4")
                    .map(|addr| addr["ip-address"].clone())
                    .unwrap_or(Value::Null);
            } else {
                assert_eq!(body["message"], "QEMU guest agent is not running\n");
            }
        }
        synced.push(json!({"name": vm["name"], "vmid": vmid, "status": vm["status"], "ip": ip}));
    }
    synced.sort_by_key(|vm| vm["name"].as_str().unwrap().to_string());
    assert_eq!(
        Value::from(synced),
        json!([
            {"name": "VM 102", "vmid": 102, "status": "stopped", "ip": null},
            {"name": "allthemons", "vmid": 108, "status": "running", "ip": "10.0.0.96"},
            {"name": "atm10", "vmid": 101, "status": "stopped", "ip": null},
            {"name": "calamity", "vmid": 107, "status": "running", "ip": "10.0.0.208"},
            {"name": "factorio", "vmid": 106, "status": "stopped", "ip": null},
            {"name": "gold-image", "vmid": 109, "status": "running", "ip": "10.0.0.143"},
            {"name": "meatballcraft", "vmid": 105, "status": "stopped", "ip": null},
            {"name": "satisfactory", "vmid": 104, "status": "stopped", "ip": null},
            {"name": "slate", "vmid": 100, "status": "running", "ip": "10.0.0.33"},
            {"name": "tftp-server", "vmid": 103, "status": "running", "ip": null},
        ])
    );
}

#[tokio::test]
async fn agent_interfaces_list_lo_first_and_link_local_before_ipv4() {
    let sim = simulator().await;
    let session = Session::login(&sim).await;
    let (status, body) = session
        .get(&format!(
            "/nodes/{NODE}/qemu/108/agent/network-get-interfaces"
        ))
        .await;
    assert_eq!(status, 200);
    let result = body["data"]["result"].as_array().unwrap();
    assert_eq!(result[0]["name"], "lo");
    assert_eq!(
        result[0]["ip-addresses"],
        json!([
            {"ip-address-type": "ipv4", "ip-address": "127.0.0.1", "prefix": 8},
            {"ip-address-type": "ipv6", "ip-address": "::1", "prefix": 128}
        ])
    );
    assert_eq!(result[1]["name"], "eth0");
    assert_eq!(result[1]["hardware-address"], "bc:24:11:00:00:6c");
    assert_eq!(
        result[1]["ip-addresses"],
        json!([
            {"ip-address-type": "ipv6", "ip-address": "fe80::be24:11ff:fe00:6c", "prefix": 64},
            {"ip-address-type": "ipv4", "ip-address": "10.0.0.96", "prefix": 24}
        ])
    );
}

#[tokio::test]
async fn agent_of_a_stopped_vm_is_500_not_running() {
    let sim = simulator().await;
    let session = Session::login(&sim).await;
    let (status, body) = session
        .get(&format!(
            "/nodes/{NODE}/qemu/101/agent/network-get-interfaces"
        ))
        .await;
    assert_eq!(status, 500);
    assert_eq!(
        body,
        json!({"data": null, "message": "VM 101 is not running\n"})
    );
}

#[tokio::test]
async fn unknown_vmid_node_and_path_have_pve_errors() {
    let sim = simulator().await;
    let session = Session::login(&sim).await;
    let (status, body) = session.get(&format!("/nodes/{NODE}/qemu/999/config")).await;
    assert_eq!(status, 500);
    assert_eq!(
        body["message"],
        "Configuration file 'nodes/keeb-dev-02/qemu-server/999.conf' does not exist\n"
    );
    let (status, body) = session.get("/nodes/other-node/qemu").await;
    assert_eq!(status, 500);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("hostname lookup 'other-node' failed")
    );
    let (status, body) = session.get("/storage/local").await;
    assert_eq!(status, 501);
    assert_eq!(
        body["message"],
        "Method 'GET /storage/local' not implemented\n"
    );
}

#[tokio::test]
async fn start_task_runs_then_stops_and_the_vm_comes_up_with_an_ip() {
    let sim = simulator().await;
    let session = Session::login(&sim).await;
    let (status, body) = session
        .write("POST", &format!("/nodes/{NODE}/qemu/101/status/start"), &[])
        .await;
    assert_eq!(status, 200);
    let upid = body["data"].as_str().unwrap();
    let fields: Vec<&str> = upid.split(':').collect();
    assert_eq!(fields.len(), 9, "{upid}");
    assert_eq!((fields[0], fields[1]), ("UPID", NODE));
    assert!(
        fields[2..5]
            .iter()
            .all(|f| f.len() == 8 && u32::from_str_radix(f, 16).is_ok())
    );
    assert_eq!(&fields[5..], ["qmstart", "101", "root@pam", ""]);

    let (seen, exit) = session.wait(&body["data"]).await;
    assert_eq!(seen, ["running", "stopped"]);
    assert_eq!(exit, "OK");
    assert_eq!(sim.vm_status("atm10").as_deref(), Some("running"));
    let (_, current) = session
        .get(&format!("/nodes/{NODE}/qemu/101/status/current"))
        .await;
    assert_eq!(current["data"]["status"], "running");
    let (status, agent) = session
        .get(&format!(
            "/nodes/{NODE}/qemu/101/agent/network-get-interfaces"
        ))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        agent["data"]["result"][1]["ip-addresses"][1]["ip-address"],
        "10.1.0.103"
    );
}

#[tokio::test]
async fn starting_a_running_vm_ends_with_already_running() {
    let sim = simulator().await;
    let session = Session::login(&sim).await;
    let (_, body) = session
        .write("POST", &format!("/nodes/{NODE}/qemu/108/status/start"), &[])
        .await;
    let (_, exit) = session.wait(&body["data"]).await;
    assert_eq!(exit, "VM 108 already running");
}

#[tokio::test]
async fn create_then_delete_a_vm() {
    let sim = simulator().await;
    let session = Session::login(&sim).await;
    let qemu = format!("/nodes/{NODE}/qemu");
    let (status, body) = session
        .write(
            "POST",
            &qemu,
            &[
                ("vmid", "150"),
                ("name", "lifecycle-test"),
                ("memory", "2048"),
                ("cores", "2"),
                ("net0", "virtio,bridge=vmbr0"),
                ("agent", "1"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["data"].as_str().unwrap().contains(":qmcreate:150:"));
    assert_eq!(session.wait(&body["data"]).await.1, "OK");
    let (_, list) = session.get(&qemu).await;
    assert!(
        list["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|vm| vm["name"] == "lifecycle-test")
    );

    let (status, body) = session
        .write("POST", &qemu, &[("vmid", "150"), ("name", "again")])
        .await;
    assert_eq!(status, 500);
    assert_eq!(
        body["message"],
        "VM 150 already exists on node 'keeb-dev-02'\n"
    );

    let (_, start) = session
        .write("POST", &format!("{qemu}/150/status/start"), &[])
        .await;
    assert_eq!(session.wait(&start["data"]).await.1, "OK");
    assert_eq!(sim.vm_ip("lifecycle-test").as_deref(), Some("10.1.0.152"));
    let (status, body) = session.write("DELETE", &format!("{qemu}/150"), &[]).await;
    assert_eq!(status, 500);
    assert_eq!(body["message"], "VM 150 is running - destroy failed\n");

    let (_, stop) = session
        .write("POST", &format!("{qemu}/150/status/stop"), &[])
        .await;
    assert_eq!(session.wait(&stop["data"]).await.1, "OK");
    let (status, body) = session.write("DELETE", &format!("{qemu}/150"), &[]).await;
    assert_eq!(status, 200);
    assert!(body["data"].as_str().unwrap().contains(":qmdestroy:150:"));
    assert_eq!(session.wait(&body["data"]).await.1, "OK");
    assert_eq!(sim.vm_status("lifecycle-test"), None);
    let (_, list) = session.get(&qemu).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 10);
}

#[tokio::test]
async fn config_put_is_synchronous_and_post_is_a_task() {
    let sim = simulator().await;
    let session = Session::login(&sim).await;
    let config = format!("/nodes/{NODE}/qemu/106/config");
    let (status, body) = session
        .write("PUT", &config, &[("boot", "order=net0;scsi0")])
        .await;
    assert_eq!((status, body), (200, json!({"data": null})));
    let (_, body) = session.get(&config).await;
    assert_eq!(body["data"]["boot"], "order=net0;scsi0");

    let (status, body) = session.write("POST", &config, &[("cores", "8")]).await;
    assert_eq!(status, 200);
    assert!(body["data"].as_str().unwrap().contains(":qmconfig:106:"));
    assert_eq!(session.wait(&body["data"]).await.1, "OK");
    let (_, body) = session.get(&config).await;
    assert_eq!(body["data"]["cores"], 8);
}

#[tokio::test]
async fn generated_fleet_of_ten_thousand_is_listed() {
    let sim = Simulator::start(SimConfig {
        fleet: Fleet::generated(10_000),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let session = Session::login(&sim).await;
    let (status, body) = session.get(&format!("/nodes/{NODE}/qemu")).await;
    assert_eq!(status, 200);
    let rows = body["data"].as_array().unwrap();
    assert_eq!(rows.len(), 10_000);
    assert_eq!(
        (rows[0]["vmid"].as_u64(), rows[0]["name"].as_str()),
        (Some(1000), Some("vm-0001"))
    );
    assert_eq!(rows[9_999]["name"], "vm-10000");
    let running = rows.iter().filter(|vm| vm["status"] == "running").count();
    assert_eq!(running, 5_000);
    let (status, body) = session
        .get(&format!(
            "/nodes/{NODE}/qemu/1000/agent/network-get-interfaces"
        ))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        body["data"]["result"][1]["ip-addresses"][1]["ip-address"],
        "10.1.4.2"
    );
}

#[tokio::test]
async fn request_log_records_method_and_path_without_secrets() {
    let sim = simulator().await;
    let session = Session::login(&sim).await;
    session.get(&format!("/nodes/{NODE}/qemu?full=1")).await;
    assert_eq!(sim.request_count(), 2);
    assert_eq!(
        sim.requests(),
        [
            "POST /api2/json/access/ticket".to_string(),
            format!("GET /api2/json/nodes/{NODE}/qemu"),
        ]
    );
    assert!(
        sim.requests()
            .iter()
            .all(|r| !r.contains("simulator-password"))
    );
}

#[tokio::test]
async fn form_body_with_percent_encoding_is_decoded() {
    let sim = simulator().await;
    let body = form(&[("username", "root@pam"), ("password", "simulator-password")]);
    assert!(body.contains("root%40pam"));
    let response = client()
        .post(format!("{}/api2/json/access/ticket", sim.url()))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
}

#[tokio::test]
async fn clone_of_the_template_then_start_with_agent_warmup_over_https() {
    let sim = Simulator::start(SimConfig::default().with_templates())
        .await
        .expect("simulator starts");
    let admin = client()
        .post(format!("{}/_sim/change", sim.url()))
        .body(r#"{"change": "agent_warmup", "calls": 1}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(admin.status().as_u16(), 200);
    let session = Session::login(&sim).await;
    let qemu = format!("/nodes/{NODE}/qemu");
    let (status, body) = session
        .write(
            "POST",
            &format!("{qemu}/9000/clone"),
            &[("newid", "120"), ("name", "web-01")],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["data"].as_str().unwrap().contains(":qmclone:9000:"));
    assert_eq!(sim.guest_config(120), None, "not before the task stops");
    assert_eq!(session.wait(&body["data"]).await.1, "OK");
    let config = sim.guest_config(120).expect("the clone exists");
    assert_eq!(config["name"], "web-01");
    assert_eq!(config["memory"], "2048");
    let (_, start) = session
        .write("POST", &format!("{qemu}/120/status/start"), &[])
        .await;
    assert_eq!(session.wait(&start["data"]).await.1, "OK");
    let agent = format!("{qemu}/120/agent/network-get-interfaces");
    let (status, body) = session.get(&agent).await;
    assert_eq!(
        (status, body["message"].clone()),
        (500, json!("QEMU guest agent is not running\n"))
    );
    assert_eq!(session.get(&agent).await.0, 200);
    assert_eq!(sim.vm_ip("web-01").as_deref(), Some("10.1.0.122"));
    assert_eq!(
        sim.writes(),
        [
            "POST /api2/json/nodes/keeb-dev-02/qemu/9000/clone",
            "POST /api2/json/nodes/keeb-dev-02/qemu/120/status/start",
        ]
    );
}
