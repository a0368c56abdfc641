//! Templates, clones, snapshots, container config digests, agent warm-up and the write log,
//! called directly.

use serde_json::{Value, json};

use super::tests::{NODE, Node, message};
use crate::{SimConfig, WorldChange};

fn templates() -> Node {
    Node::with(SimConfig::default().with_templates())
}

fn rows(body: &Value) -> &Vec<Value> {
    body["data"].as_array().expect("data is a list")
}

fn row(body: &Value, vmid: u64) -> Value {
    rows(body)
        .iter()
        .find(|r| r["vmid"] == vmid)
        .cloned()
        .unwrap_or_else(|| panic!("no row for {vmid} in {body}"))
}

/// Runs a write that answers a UPID and polls it to the end; returns its exitstatus.
fn run(node: &mut Node, method: &'static str, path: &str, body: &str) -> String {
    let (status, reply) = node.write(method, path, body);
    assert_eq!(status, 200, "{method} {path}: {reply}");
    node.finish(&reply["data"]).0
}

#[test]
fn templates_are_marked_in_lists_config_and_status() {
    let mut node = templates();
    let (_, qemu) = node.get(&format!("{NODE}/qemu"));
    assert_eq!(rows(&qemu).len(), 11);
    let template = row(&qemu, 9000);
    assert_eq!(template["name"], "debian-12-template");
    assert_eq!(template["template"], 1);
    assert_eq!(template["status"], "stopped");
    assert!(
        row(&qemu, 100).get("template").is_none(),
        "only templates carry it"
    );
    let (_, lxc) = node.get(&format!("{NODE}/lxc"));
    assert_eq!(row(&lxc, 9001)["template"], 1);
    assert_eq!(row(&lxc, 9001)["name"], "debian-12-ct-template");
    let (_, resources) = node.get("/api2/json/cluster/resources?type=vm");
    assert_eq!(row(&resources, 9000)["template"], 1);
    assert_eq!(row(&resources, 9001)["template"], 1);
    assert_eq!(row(&resources, 100)["template"], 0);
    let (_, config) = node.get(&format!("{NODE}/qemu/9000/config"));
    assert_eq!(config["data"]["template"], 1);
    assert_eq!(config["data"]["agent"], "1");
    assert_eq!(config["data"]["cores"], 2);
    assert_eq!(config["data"]["memory"], "2048");
    assert_eq!(
        config["data"]["scsi0"],
        "local-lvm:base-9000-disk-0,iothread=1,size=32G"
    );
    assert!(
        config["data"]["net0"]
            .as_str()
            .unwrap()
            .starts_with("virtio=")
    );
    let (_, config) = node.get(&format!("{NODE}/lxc/9001/config"));
    assert_eq!(
        config["data"]["rootfs"],
        "local-lvm:base-9001-disk-0,size=8G"
    );
    assert!(config["data"]["net0"].as_str().unwrap().contains("ip=dhcp"));
    let (_, status) = node.get(&format!("{NODE}/qemu/9000/status/current"));
    assert_eq!(status["data"]["template"], 1);
    // Templates do not change the seeded history or the next free vmid.
    let plain = Node::new();
    let history = |n: &Node| {
        n.api.nodes[0]
            .tasks
            .newest_first()
            .map(|t| t.upid.id.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(history(&node), history(&plain));
    assert_eq!(node.get("/api2/json/cluster/nextid").1["data"], "110");
}

#[test]
fn a_template_cannot_start() {
    let mut node = templates();
    let exit = run(
        &mut node,
        "POST",
        &format!("{NODE}/qemu/9000/status/start"),
        "",
    );
    assert_eq!(exit, "you can't start a vm if it's a template");
    assert_eq!(node.api.guest_status(9000).as_deref(), Some("stopped"));
    assert!(
        node.api
            .change(WorldChange::StartGuest { vmid: 9001 })
            .is_err()
    );
}

#[test]
fn a_stopped_vm_becomes_a_template_in_a_task_and_a_running_one_is_refused() {
    let mut node = Node::new();
    let (status, body) = node.write("POST", &format!("{NODE}/qemu/100/template"), "");
    assert_eq!(
        (status, message(&body)),
        (500, "you can't convert a VM to template if VM is running\n")
    );
    let (status, body) = node.write("POST", &format!("{NODE}/qemu/101/template"), "");
    assert_eq!(status, 200, "{body}");
    let upid = body["data"].clone();
    assert!(upid.as_str().unwrap().contains(":qmtemplate:101:root@pam:"));
    assert!(
        node.get(&format!("{NODE}/qemu/101/config")).1["data"]
            .get("template")
            .is_none()
    );
    assert_eq!(node.finish(&upid).0, "OK");
    let (_, config) = node.get(&format!("{NODE}/qemu/101/config"));
    assert_eq!(config["data"]["template"], 1);
    assert_eq!(
        config["data"]["scsi0"],
        "local-lvm:base-101-disk-0,iothread=1,size=32G"
    );
    let (status, body) = node.write("POST", &format!("{NODE}/qemu/101/template"), "");
    assert_eq!(
        (status, message(&body)),
        (500, "you can't convert a template to a template\n")
    );
}

#[test]
fn a_container_becomes_a_template_at_once() {
    let mut node = Node::new();
    let (status, body) = node.write("POST", &format!("{NODE}/lxc/900/template"), "");
    assert_eq!(
        (status, message(&body)),
        (
            500,
            "you can't convert a CT to template if the CT is running\n"
        )
    );
    let (status, body) = node.write("POST", &format!("{NODE}/lxc/901/template"), "");
    assert_eq!((status, body["data"].clone()), (200, Value::Null));
    let (_, config) = node.get(&format!("{NODE}/lxc/901/config"));
    assert_eq!(config["data"]["template"], 1);
    let (_, tasks) = node.get(&format!("{NODE}/tasks?typefilter=vztemplate"));
    assert_eq!(rows(&tasks).len(), 1);
    assert_eq!(rows(&tasks)[0]["status"], "OK");
}

#[test]
fn a_linked_clone_of_the_template_appears_stopped_when_its_task_stops() {
    let mut node = templates();
    let (status, body) = node.write(
        "POST",
        &format!("{NODE}/qemu/9000/clone"),
        "newid=120&name=web-01&description=made%20by%20orch",
    );
    assert_eq!(status, 200, "{body}");
    let upid = body["data"].clone();
    assert!(
        upid.as_str().unwrap().contains(":qmclone:9000:root@pam:"),
        "the task names the source: {upid}"
    );
    // newid is reserved at once, for clones and creates alike.
    let (status, body) = node.write("POST", &format!("{NODE}/qemu/9000/clone"), "newid=120");
    assert_eq!(
        (status, message(&body)),
        (500, "unable to create VM 120: config file already exists\n")
    );
    let (status, body) = node.write("POST", &format!("{NODE}/qemu"), "vmid=120&name=again");
    assert_eq!(
        (status, message(&body)),
        (500, "VM 120 already exists on node 'keeb-dev-02'\n")
    );
    assert_eq!(node.get("/api2/json/cluster/nextid").1["data"], "110");
    assert_eq!(node.get(&format!("{NODE}/qemu/120/config")).0, 500);
    assert_eq!(node.finish(&upid).0, "OK");
    let (_, config) = node.get(&format!("{NODE}/qemu/120/config"));
    let config = &config["data"];
    assert_eq!(config["name"], "web-01");
    assert_eq!(config["description"], "made by orch");
    assert_eq!(config["cores"], 2);
    assert_eq!(config["agent"], "1");
    assert!(config.get("template").is_none());
    assert_eq!(
        config["scsi0"],
        "local-lvm:base-9000-disk-0/vm-120-disk-0,iothread=1,size=32G"
    );
    assert_eq!(config["net0"], "virtio=BC:24:11:00:00:78,bridge=vmbr0");
    assert_eq!(node.api.guest_status(120).as_deref(), Some("stopped"));
    let (_, template) = node.get(&format!("{NODE}/qemu/9000/config"));
    assert_ne!(template["data"]["net0"], config["net0"], "a new MAC");
    // It boots like any VM and reports the address derived from its vmid.
    run(
        &mut node,
        "POST",
        &format!("{NODE}/qemu/120/status/start"),
        "",
    );
    assert_eq!(node.api.vm_ip("web-01").as_deref(), Some("10.1.0.122"));
}

#[test]
fn a_full_clone_of_a_vm_gets_its_own_disks_and_a_default_name() {
    let mut node = Node::new();
    let exit = run(
        &mut node,
        "POST",
        &format!("{NODE}/qemu/100/clone"),
        "newid=130&full=1",
    );
    assert_eq!(exit, "OK");
    let (_, config) = node.get(&format!("{NODE}/qemu/130/config"));
    assert_eq!(config["data"]["name"], "Copy-of-VM-slate");
    assert_eq!(
        config["data"]["scsi0"],
        "local-lvm:vm-130-disk-0,iothread=1,size=32G"
    );
    assert_eq!(node.api.guest_status(130).as_deref(), Some("stopped"));
    // Only templates can be linked.
    let (status, body) = node.write(
        "POST",
        &format!("{NODE}/qemu/101/clone"),
        "newid=131&full=0",
    );
    assert_eq!(
        (status, message(&body)),
        (
            500,
            "Linked clone feature is not supported for 'local-lvm:vm-101-disk-0' (scsi0)\n"
        )
    );
}

#[test]
fn clone_errors_come_before_the_task() {
    let mut node = templates();
    let clone = format!("{NODE}/qemu/9000/clone");
    let (status, body) = node.write("POST", &format!("{NODE}/qemu/555/clone"), "newid=140");
    assert_eq!(
        (status, message(&body)),
        (
            500,
            "Configuration file 'nodes/keeb-dev-02/qemu-server/555.conf' does not exist\n"
        )
    );
    let (status, body) = node.write("POST", &clone, "name=no-newid");
    assert_eq!(status, 400);
    assert!(body["errors"]["newid"].is_string(), "{body}");
    let (status, body) = node.write("POST", &clone, "newid=140&name=has%20space");
    assert_eq!(status, 400);
    assert!(body["errors"]["name"].is_string(), "{body}");
    let (status, body) = node.write("POST", &clone, "newid=140&colour=red");
    assert_eq!(status, 400);
    assert!(body["errors"]["colour"].is_string(), "{body}");
    let (status, body) = node.write("POST", &clone, "newid=108");
    assert_eq!(
        (status, message(&body)),
        (500, "unable to create VM 108: config file already exists\n")
    );
    let (status, body) = node.write("POST", &clone, "newid=140&target=nowhere");
    assert_eq!(
        (status, message(&body)),
        (500, "no such cluster node 'nowhere'\n")
    );
    let (status, body) = node.write("POST", &clone, "newid=140&snapname=nope");
    assert_eq!(
        (status, message(&body)),
        (500, "snapshot 'nope' does not exist\n")
    );
    let (status, body) = node.write("POST", &clone, "newid=140&storage=local-lvm");
    assert_eq!(
        (status, message(&body)),
        (500, "parameter 'storage' not allowed for linked clones\n")
    );
    assert!(
        node.api.reserved.is_empty(),
        "a refused clone reserves nothing"
    );
    assert!(
        node.api.writes().iter().all(|w| w.ends_with("/clone")),
        "{:?}",
        node.api.writes()
    );
}

#[test]
fn a_clone_to_another_node_needs_shared_storage() {
    let mut node = Node::with(SimConfig::test_cluster().with_templates());
    let (status, body) = node.write(
        "POST",
        &format!("{NODE}/qemu/9000/clone"),
        "newid=150&target=keeb-dev-03",
    );
    assert_eq!(
        (status, message(&body)),
        (
            500,
            "can't clone VM to node 'keeb-dev-03' (VM uses local storage)\n"
        )
    );
    // A VM whose disk is on the shared pool can go anywhere.
    node.api.guests.get_mut(&9000).unwrap().config.insert(
        "scsi0".to_string(),
        "nfs-backup:base-9000-disk-0,size=32G".to_string(),
    );
    let exit = run(
        &mut node,
        "POST",
        &format!("{NODE}/qemu/9000/clone"),
        "newid=150&target=keeb-dev-03&name=far",
    );
    assert_eq!(exit, "OK");
    assert_eq!(
        node.get("/api2/json/nodes/keeb-dev-03/qemu/150/config").0,
        200
    );
    assert_eq!(node.get(&format!("{NODE}/qemu/150/config")).0, 500);
}

#[test]
fn containers_clone_with_their_hostname_and_a_new_hwaddr() {
    let mut node = templates();
    let (status, body) = node.write(
        "POST",
        &format!("{NODE}/lxc/9001/clone"),
        "newid=160&hostname=cache-01",
    );
    assert_eq!(status, 200, "{body}");
    let upid = body["data"].clone();
    assert!(upid.as_str().unwrap().contains(":vzclone:9001:root@pam:"));
    let (status, body) = node.write(
        "POST",
        &format!("{NODE}/lxc/9001/clone"),
        "newid=160&hostname=again",
    );
    assert_eq!(
        (status, message(&body)),
        (500, "CT 160 already exists on node 'keeb-dev-02'\n")
    );
    assert_eq!(node.finish(&upid).0, "OK");
    let (_, config) = node.get(&format!("{NODE}/lxc/160/config"));
    assert_eq!(config["data"]["hostname"], "cache-01");
    assert_eq!(
        config["data"]["rootfs"],
        "local-lvm:base-9001-disk-0/vm-160-disk-0,size=8G"
    );
    assert!(
        config["data"]["net0"]
            .as_str()
            .unwrap()
            .contains("hwaddr=BC:24:11:00:00:A0")
    );
    // Without a hostname the copy keeps the source's, as pve-container does.
    let exit = run(
        &mut node,
        "POST",
        &format!("{NODE}/lxc/901/clone"),
        "newid=161",
    );
    assert_eq!(exit, "OK");
    assert_eq!(
        node.get(&format!("{NODE}/lxc/161/config")).1["data"]["hostname"],
        "wiki"
    );
    let (status, body) = node.write("POST", &format!("{NODE}/lxc/900/clone"), "newid=162");
    assert_eq!(
        (status, message(&body)),
        (
            500,
            "Full clone of a running container is only possible from a snapshot\n"
        )
    );
    // A clone that boots with ip=dhcp reports the address derived from its vmid.
    run(
        &mut node,
        "POST",
        &format!("{NODE}/lxc/160/status/start"),
        "",
    );
    let (_, interfaces) = node.get(&format!("{NODE}/lxc/160/interfaces"));
    assert_eq!(rows(&interfaces)[1]["inet"], "10.1.0.162/24");
}

#[test]
fn container_config_has_a_digest_that_guards_put() {
    let mut node = Node::new();
    let path = format!("{NODE}/lxc/901/config");
    let (_, config) = node.get(&path);
    let digest = config["data"]["digest"].as_str().unwrap().to_string();
    assert_eq!(digest.len(), 40);
    let (status, body) = node.write("PUT", &path, "memory=4096&digest=0000");
    assert_eq!(
        (status, message(&body)),
        (
            500,
            "detected modified configuration - file changed by other user? Try again.\n"
        )
    );
    let (status, _) = node.write(
        "PUT",
        &path,
        &format!("memory=4096&delete=tags&digest={digest}"),
    );
    assert_eq!(status, 200);
    let (_, after) = node.get(&path);
    assert_eq!(after["data"]["memory"], 4096);
    assert_ne!(after["data"]["digest"], json!(digest));
    // The old digest no longer matches.
    let (status, _) = node.write("PUT", &path, &format!("cores=2&digest={digest}"));
    assert_eq!(status, 500);
}

#[test]
fn snapshots_list_current_last_and_chain_their_parents() {
    let mut node = Node::new();
    let snapshots = format!("{NODE}/qemu/100/snapshot");
    let (_, list) = node.get(&snapshots);
    assert_eq!(rows(&list).len(), 1);
    assert_eq!(rows(&list)[0]["name"], "current");
    assert_eq!(rows(&list)[0]["description"], "You are here!");
    assert_eq!(rows(&list)[0]["running"], 1);
    assert!(rows(&list)[0].get("parent").is_none());
    let (status, body) = node.write(
        "POST",
        &snapshots,
        "snapname=before-upgrade&description=pre&vmstate=1",
    );
    assert_eq!(status, 200, "{body}");
    let upid = body["data"].clone();
    assert!(upid.as_str().unwrap().contains(":qmsnapshot:100:root@pam:"));
    assert_eq!(
        rows(&node.get(&snapshots).1).len(),
        1,
        "not before the task stops"
    );
    assert_eq!(node.finish(&upid).0, "OK");
    assert_eq!(run(&mut node, "POST", &snapshots, "snapname=after"), "OK");
    let (_, list) = node.get(&snapshots);
    let names: Vec<&str> = rows(&list)
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["before-upgrade", "after", "current"]);
    assert_eq!(rows(&list)[0]["vmstate"], 1);
    assert_eq!(rows(&list)[0]["description"], "pre");
    assert!(rows(&list)[0]["snaptime"].as_u64().unwrap() > 0);
    assert_eq!(rows(&list)[1]["parent"], "before-upgrade");
    assert_eq!(rows(&list)[2]["parent"], "after");
    let (_, config) = node.get(&format!("{NODE}/qemu/100/config"));
    assert_eq!(rows(&list)[2]["digest"], config["data"]["digest"]);
    // A duplicate name fails inside the task, as PVE checks it in the worker.
    assert_eq!(
        run(&mut node, "POST", &snapshots, "snapname=after"),
        "snapshot name 'after' already used"
    );
    let (status, body) = node.write("POST", &snapshots, "snapname=current");
    assert_eq!(
        (status, message(&body)),
        (
            500,
            "unable to use snapshot name 'current' (reserved name)\n"
        )
    );
    let (status, _) = node.write("POST", &snapshots, "snapname=1bad");
    assert_eq!(status, 400);
    // Deleting the middle of the chain re-links its child.
    let (status, body) = node.write("DELETE", &format!("{snapshots}/before-upgrade"), "");
    assert_eq!(status, 200);
    assert!(
        body["data"]
            .as_str()
            .unwrap()
            .contains(":qmdelsnapshot:100:")
    );
    assert_eq!(node.finish(&body["data"]).0, "OK");
    let (_, list) = node.get(&snapshots);
    assert_eq!(rows(&list).len(), 2);
    assert!(rows(&list)[0].get("parent").is_none());
    assert_eq!(
        run(&mut node, "DELETE", &format!("{snapshots}/nope"), ""),
        "snapshot 'nope' does not exist"
    );
    // A guest with snapshots cannot become a template.
    run(
        &mut node,
        "POST",
        &format!("{NODE}/qemu/101/snapshot"),
        "snapname=s1",
    );
    let (status, body) = node.write("POST", &format!("{NODE}/qemu/101/template"), "");
    assert_eq!(
        (status, message(&body)),
        (
            500,
            "unable to create template, because VM contains snapshots\n"
        )
    );
}

#[test]
fn container_snapshots_use_vz_tasks_and_have_no_vmstate() {
    let mut node = Node::new();
    let snapshots = format!("{NODE}/lxc/900/snapshot");
    let (status, body) = node.write("POST", &snapshots, "snapname=daily&vmstate=1");
    assert_eq!(status, 400, "{body}");
    let (status, body) = node.write("POST", &snapshots, "snapname=daily");
    assert_eq!(status, 200);
    assert!(body["data"].as_str().unwrap().contains(":vzsnapshot:900:"));
    assert_eq!(node.finish(&body["data"]).0, "OK");
    let (_, list) = node.get(&snapshots);
    assert_eq!(rows(&list)[0]["name"], "daily");
    assert!(rows(&list)[0].get("vmstate").is_none());
    assert_eq!(rows(&list)[1]["parent"], "daily");
    let (status, body) = node.write("DELETE", &format!("{snapshots}/daily"), "");
    assert_eq!(status, 200);
    assert!(
        body["data"]
            .as_str()
            .unwrap()
            .contains(":vzdelsnapshot:900:")
    );
}

#[test]
fn agent_answers_after_the_configured_warmup_calls() {
    let mut node = Node::with(SimConfig {
        agent_warmup: 2,
        ..SimConfig::default()
    });
    let agent = format!("{NODE}/qemu/101/agent/network-get-interfaces");
    run(
        &mut node,
        "POST",
        &format!("{NODE}/qemu/101/status/start"),
        "",
    );
    assert_eq!(node.api.vm_ip("atm10"), None, "still booting");
    for _ in 0..2 {
        let (status, body) = node.get(&agent);
        assert_eq!(
            (status, message(&body)),
            (500, "QEMU guest agent is not running\n")
        );
    }
    let (status, body) = node.get(&agent);
    assert_eq!(status, 200, "{body}");
    assert_eq!(node.api.vm_ip("atm10").as_deref(), Some("10.1.0.103"));
    // Seeded running guests answer at once; a stopped VM still says it is not running.
    assert_eq!(
        node.get(&format!("{NODE}/qemu/100/agent/network-get-interfaces"))
            .0,
        200
    );
    let (_, body) = node.get(&format!("{NODE}/qemu/104/agent/network-get-interfaces"));
    assert_eq!(message(&body), "VM 104 is not running\n");
    // Containers list eth0 without inet while booting.
    run(
        &mut node,
        "POST",
        &format!("{NODE}/lxc/901/status/start"),
        "",
    );
    let interfaces = format!("{NODE}/lxc/901/interfaces");
    for _ in 0..2 {
        let (_, body) = node.get(&interfaces);
        assert!(rows(&body)[1].get("inet").is_none(), "{body}");
    }
    assert_eq!(rows(&node.get(&interfaces).1)[1]["inet"], "10.0.0.54/24");
    // The warm-up can change at runtime, and applies to start_guest too.
    node.api
        .change(WorldChange::AgentWarmup { calls: 1 })
        .unwrap();
    node.api
        .change(WorldChange::StartGuest { vmid: 104 })
        .unwrap();
    let agent = format!("{NODE}/qemu/104/agent/network-get-interfaces");
    assert_eq!(node.get(&agent).0, 500);
    assert_eq!(node.get(&agent).0, 200);
}

#[test]
fn writes_list_every_change_in_order_without_reads_or_logins() {
    let mut node = templates();
    run(
        &mut node,
        "POST",
        &format!("{NODE}/qemu/9000/clone"),
        "newid=120&name=a",
    );
    node.write("PUT", &format!("{NODE}/qemu/120/config"), "memory=4096");
    run(
        &mut node,
        "POST",
        &format!("{NODE}/qemu/120/snapshot"),
        "snapname=s",
    );
    run(
        &mut node,
        "POST",
        &format!("{NODE}/qemu/120/status/start"),
        "",
    );
    assert_eq!(
        node.api.writes(),
        [
            "POST /api2/json/nodes/keeb-dev-02/qemu/9000/clone",
            "PUT /api2/json/nodes/keeb-dev-02/qemu/120/config",
            "POST /api2/json/nodes/keeb-dev-02/qemu/120/snapshot",
            "POST /api2/json/nodes/keeb-dev-02/qemu/120/status/start",
        ]
    );
    assert!(node.api.requests()[0].ends_with("/access/ticket"));
    assert!(node.api.requests().len() > node.api.writes().len() + 1);
}

#[test]
fn set_config_edits_a_guest_behind_the_api_and_moves_its_digest() {
    let mut node = Node::new();
    let path = format!("{NODE}/qemu/106/config");
    let before = node.get(&path).1["data"].clone();
    let change: WorldChange = serde_json::from_str(
        r#"{"change": "set_config", "vmid": 106, "key": "memory", "value": "8192"}"#,
    )
    .unwrap();
    node.api.change(change).unwrap();
    let after = node.get(&path).1["data"].clone();
    assert_eq!(after["memory"], "8192");
    assert_ne!(after["digest"], before["digest"]);
    let remove: WorldChange =
        serde_json::from_str(r#"{"change": "set_config", "vmid": 106, "key": "agent"}"#).unwrap();
    node.api.change(remove).unwrap();
    assert!(node.get(&path).1["data"].get("agent").is_none());
    assert!(
        node.api
            .change(WorldChange::SetConfig {
                vmid: 555,
                key: "memory".to_string(),
                value: None
            })
            .is_err()
    );
}
