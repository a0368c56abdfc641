//! Containers, storage, task lists, several nodes, world changes and faults, called directly.

use serde_json::{Value, json};

use super::tests::{NODE, Node, message};
use crate::{Fault, SimConfig, WorldChange};

const N3: &str = "/api2/json/nodes/keeb-dev-03";

fn cluster() -> Node {
    Node::with(SimConfig::test_cluster())
}

fn rows(body: &Value) -> &Vec<Value> {
    body["data"].as_array().expect("data is a list")
}

fn vmids(body: &Value) -> Vec<u64> {
    rows(body)
        .iter()
        .map(|r| r["vmid"].as_u64().unwrap())
        .collect()
}

#[test]
fn nodes_lists_every_node_and_each_serves_its_own_guests() {
    let mut node = cluster();
    let (_, nodes) = node.get("/api2/json/nodes");
    let names: Vec<&str> = rows(&nodes)
        .iter()
        .map(|n| n["node"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["keeb-dev-02", "keeb-dev-03", "keeb-dev-04"]);
    assert_eq!(rows(&nodes)[1]["id"], "node/keeb-dev-03");
    assert_eq!(rows(&nodes)[1]["status"], "online");
    assert_eq!(vmids(&node.get(&format!("{N3}/qemu")).1), [200, 201, 202]);
    assert_eq!(vmids(&node.get(&format!("{N3}/lxc")).1), [300, 301]);
    assert_eq!(vmids(&node.get(&format!("{NODE}/qemu")).1).len(), 10);
    // A guest is only found on its own node.
    let (status, body) = node.get(&format!("{NODE}/qemu/200/config"));
    assert_eq!(status, 500);
    assert_eq!(
        message(&body),
        "Configuration file 'nodes/keeb-dev-02/qemu-server/200.conf' does not exist\n"
    );
    // A container is not a VM.
    let (_, body) = node.get(&format!("{N3}/qemu/300/status/current"));
    assert_eq!(
        message(&body),
        "Configuration file 'nodes/keeb-dev-03/qemu-server/300.conf' does not exist\n"
    );
    // vmids are unique cluster-wide.
    let (status, body) = node.write("POST", &format!("{N3}/qemu"), "vmid=100&name=dup");
    assert_eq!(status, 500);
    assert_eq!(
        message(&body),
        "VM 100 already exists on node 'keeb-dev-02'\n"
    );
    // UPIDs carry their node, and the task is found under that node only.
    let (_, upid) = node.write("POST", &format!("{N3}/qemu/202/status/start"), "");
    let upid = upid["data"].as_str().unwrap().to_string();
    assert!(upid.starts_with("UPID:keeb-dev-03:"), "{upid}");
    assert_eq!(node.get(&format!("{NODE}/tasks/{upid}/status")).0, 500);
    assert_eq!(node.get(&format!("{N3}/tasks/{upid}/status")).0, 200);
}

#[test]
fn lxc_list_status_and_config_have_pve_shapes() {
    let mut node = Node::new();
    let (status, list) = node.get(&format!("{NODE}/lxc"));
    assert_eq!(status, 200);
    assert_eq!(vmids(&list), [900, 901]);
    let pihole = &rows(&list)[0];
    assert_eq!(pihole["name"], "pihole");
    assert_eq!(pihole["status"], "running");
    assert_eq!(pihole["type"], "lxc");
    assert_eq!(pihole["cpus"], 2);
    assert_eq!(pihole["maxmem"], 1_073_741_824_u64);
    assert_eq!(pihole["maxdisk"], 8_u64 << 30);
    assert_eq!(pihole["maxswap"], 512_u64 << 20);
    assert_eq!(pihole["tags"], "dns;infra");
    assert!(pihole["uptime"].as_u64().unwrap() > 0);
    let wiki = &rows(&list)[1];
    assert_eq!(wiki["status"], "stopped");
    assert!(wiki.get("tags").is_none() && wiki.get("lock").is_none());

    let (_, current) = node.get(&format!("{NODE}/lxc/900/status/current"));
    let current = &current["data"];
    assert_eq!(current["type"], "lxc");
    assert_eq!(current["status"], "running");
    assert_eq!(current["ha"], json!({"managed": 0}));
    assert_eq!(current["maxmem"], 1_073_741_824_u64);

    let (_, config) = node.get(&format!("{NODE}/lxc/900/config"));
    let config = &config["data"];
    assert_eq!(config["hostname"], "pihole");
    assert_eq!(config["memory"], 1024);
    assert_eq!(config["cores"], 2);
    assert_eq!(config["swap"], 512);
    assert_eq!(config["unprivileged"], 1);
    assert_eq!(config["onboot"], 1);
    assert_eq!(config["arch"], "amd64");
    assert_eq!(config["rootfs"], "local-lvm:vm-900-disk-0,size=8G");
    assert_eq!(
        config["net0"],
        "name=eth0,bridge=vmbr0,hwaddr=BC:24:11:00:03:84,ip=10.0.0.53/24,gw=10.0.0.1,type=veth"
    );
    assert_eq!(config["digest"].as_str().unwrap().len(), 40);

    let (status, body) = node.get(&format!("{NODE}/lxc/999/config"));
    assert_eq!(status, 500);
    assert_eq!(
        message(&body),
        "Configuration file 'nodes/keeb-dev-02/lxc/999.conf' does not exist\n"
    );
}

#[test]
fn lxc_interfaces_list_ipv4_only_when_the_container_has_one() {
    let mut node = cluster();
    let (_, body) = node.get(&format!("{NODE}/lxc/900/interfaces"));
    assert_eq!(
        body["data"],
        json!([
            {"name": "lo", "hwaddr": "00:00:00:00:00:00", "inet": "127.0.0.1/8", "inet6": "::1/128"},
            {"name": "eth0", "hwaddr": "bc:24:11:00:03:84", "inet": "10.0.0.53/24",
             "inet6": "fe80::be24:11ff:fe00:384/64"}
        ])
    );
    let (status, body) = node.get(&format!("{NODE}/lxc/901/interfaces"));
    assert_eq!(status, 500);
    assert_eq!(message(&body), "CT 901 not running\n");
    let (_, body) = node.get(&format!("{N3}/lxc/301/interfaces"));
    let eth0 = &rows(&body)[1];
    assert_eq!(eth0["name"], "eth0");
    assert!(eth0.get("inet").is_none(), "{eth0}");
    assert!(eth0["inet6"].is_string());
}

#[test]
fn lxc_power_is_a_task_whose_change_shows_when_first_seen_stopped() {
    let mut node = Node::new();
    let (status, upid) = node.write("POST", &format!("{NODE}/lxc/900/status/shutdown"), "");
    assert_eq!(status, 200);
    assert!(upid["data"].as_str().unwrap().contains(":vzshutdown:900:"));
    assert_eq!(node.api.guest_status(900).as_deref(), Some("running"));
    assert_eq!(node.finish(&upid["data"]), ("OK".to_string(), 2));
    assert_eq!(node.api.guest_status(900).as_deref(), Some("stopped"));
    let (status, body) = node.write("POST", &format!("{NODE}/lxc/900/status/reboot"), "");
    assert_eq!((status, message(&body)), (500, "CT 900 not running\n"));
    let (_, upid) = node.write("POST", &format!("{NODE}/lxc/900/status/start"), "");
    assert!(upid["data"].as_str().unwrap().contains(":vzstart:900:"));
    node.finish(&upid["data"]);
    let (_, upid) = node.write("POST", &format!("{NODE}/lxc/900/status/start"), "");
    assert_eq!(node.finish(&upid["data"]).0, "CT 900 already running");
    let (_, upid) = node.write("POST", &format!("{NODE}/lxc/900/status/stop"), "");
    assert!(upid["data"].as_str().unwrap().contains(":vzstop:900:"));
    node.finish(&upid["data"]);
    assert_eq!(node.api.guest_status(900).as_deref(), Some("stopped"));
}

#[test]
fn lxc_create_put_config_and_delete() {
    let mut node = Node::new();
    let body = "vmid=150&ostemplate=local%3Avztmpl%2Fdebian-12-standard_12.7-1_amd64.tar.zst\
                &hostname=new-ct&cores=2&memory=1024&rootfs=local-lvm%3A8\
                &net0=name%3Deth0%2Cbridge%3Dvmbr0%2Cip%3Ddhcp&start=1";
    let (status, upid) = node.write("POST", &format!("{NODE}/lxc"), body);
    assert_eq!(status, 200, "{upid}");
    assert!(upid["data"].as_str().unwrap().contains(":vzcreate:150:"));
    let (status, again) = node.write("POST", &format!("{NODE}/lxc"), body);
    assert_eq!(status, 500);
    assert_eq!(
        message(&again),
        "CT 150 already exists on node 'keeb-dev-02'\n"
    );
    assert_eq!(node.get(&format!("{NODE}/lxc/150/config")).0, 500);
    node.finish(&upid["data"]);
    let (_, config) = node.get(&format!("{NODE}/lxc/150/config"));
    assert_eq!(config["data"]["rootfs"], "local-lvm:vm-150-disk-0,size=8G");
    assert_eq!(config["data"]["ostype"], "debian");
    let (_, interfaces) = node.get(&format!("{NODE}/lxc/150/interfaces"));
    assert_eq!(rows(&interfaces)[1]["inet"], "10.1.0.152/24");

    let (status, body) = node.write("PUT", &format!("{NODE}/lxc/150/config"), "cores=4&tags=new");
    assert_eq!((status, &body["data"]), (200, &Value::Null));
    let (_, config) = node.get(&format!("{NODE}/lxc/150/config"));
    assert_eq!(config["data"]["cores"], 4);
    let (status, body) = node.write("PUT", &format!("{NODE}/lxc/150/config"), "scsi0=x");
    assert_eq!(status, 400);
    assert!(body["errors"]["scsi0"].is_string());
    let (status, _) = node.write("POST", &format!("{NODE}/lxc/150/config"), "cores=2");
    assert_eq!(status, 501, "containers have no asynchronous config");

    let (status, body) = node.write("DELETE", &format!("{NODE}/lxc/150"), "");
    assert_eq!(
        (status, message(&body)),
        (500, "CT 150 is running - destroy failed\n")
    );
    let (_, upid) = node.write("POST", &format!("{NODE}/lxc/150/status/stop"), "");
    node.finish(&upid["data"]);
    let (_, upid) = node.write("DELETE", &format!("{NODE}/lxc/150"), "");
    assert!(upid["data"].as_str().unwrap().contains(":vzdestroy:150:"));
    assert_eq!(node.finish(&upid["data"]).0, "OK");
    assert_eq!(node.api.guest_status(150), None);
    let (status, missing) = node.write("POST", &format!("{NODE}/lxc"), "vmid=151");
    assert_eq!(status, 400);
    assert!(missing["errors"]["ostemplate"].is_string());
}

#[test]
fn storage_config_node_usage_and_content() {
    let mut node = cluster();
    let (_, config) = node.get("/api2/json/storage");
    let config = rows(&config);
    assert_eq!(config.len(), 3);
    assert_eq!(config[0]["storage"], "local");
    assert_eq!(config[0]["type"], "dir");
    assert_eq!(config[0]["content"], "iso,vztmpl,backup");
    assert_eq!(config[0]["path"], "/var/lib/vz");
    assert!(config[0].get("shared").is_none() && config[0].get("disable").is_none());
    assert_eq!(config[1]["type"], "lvmthin");
    assert_eq!(config[2]["storage"], "nfs-backup");
    assert_eq!(config[2]["shared"], 1);

    let (_, pools) = node.get(&format!("{N3}/storage"));
    let pools = rows(&pools);
    assert_eq!(pools.len(), 3);
    let local = &pools[0];
    assert_eq!(
        (local["enabled"].as_u64(), local["active"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(local["shared"], 0);
    assert_eq!(
        local["total"].as_u64().unwrap(),
        local["used"].as_u64().unwrap() + local["avail"].as_u64().unwrap()
    );
    assert!((local["used_fraction"].as_f64().unwrap() - 0.24).abs() < 1e-9);

    let (_, content) = node.get(&format!("{NODE}/storage/local/content"));
    let volids: Vec<&str> = rows(&content)
        .iter()
        .map(|v| v["volid"].as_str().unwrap())
        .collect();
    assert!(
        volids.contains(&"local:iso/debian-12.7.0-amd64-netinst.iso"),
        "{volids:?}"
    );
    let iso = &rows(&content)[0];
    assert_eq!(
        (iso["content"].as_str(), iso["format"].as_str()),
        (Some("iso"), Some("iso"))
    );
    assert!(iso["size"].is_u64() && iso["ctime"].is_u64());
    let (_, isos) = node.get(&format!("{NODE}/storage/local/content?content=vztmpl"));
    assert_eq!(rows(&isos).len(), 1);

    // Guest disks: VMs as images, containers as rootdir, each node its own local-lvm.
    let (_, lvm) = node.get(&format!("{NODE}/storage/local-lvm/content"));
    let disk = rows(&lvm)
        .iter()
        .find(|v| v["volid"] == "local-lvm:vm-100-disk-0")
        .unwrap();
    assert_eq!(disk["content"], "images");
    assert_eq!(disk["vmid"], 100);
    assert_eq!(disk["size"], 32_u64 << 30);
    assert!(
        rows(&lvm)
            .iter()
            .any(|v| v["volid"] == "local-lvm:vm-900-disk-0" && v["content"] == "rootdir")
    );
    let (_, lvm3) = node.get(&format!("{N3}/storage/local-lvm/content"));
    let vmids = vmids(&lvm3);
    assert!(vmids.contains(&200) && !vmids.contains(&100), "{vmids:?}");
    let (_, backups) = node.get(&format!("{N3}/storage/nfs-backup/content?vmid=108"));
    assert_eq!(
        rows(&backups).len(),
        2,
        "a shared pool shows the same content everywhere"
    );

    let (status, body) = node.get(&format!("{NODE}/storage/ceph/content"));
    assert_eq!(
        (status, message(&body)),
        (500, "storage 'ceph' does not exist\n")
    );
}

#[test]
fn task_list_pages_newest_first_with_total_and_filters() {
    let mut node = Node::new();
    let (status, body) = node.get(&format!("{NODE}/tasks"));
    assert_eq!(status, 200);
    assert_eq!(body["total"], 60);
    let tasks = rows(&body);
    assert_eq!(tasks.len(), 50, "default limit");
    let starts: Vec<u64> = tasks
        .iter()
        .map(|t| t["starttime"].as_u64().unwrap())
        .collect();
    assert!(starts.windows(2).all(|w| w[0] >= w[1]), "newest first");
    for task in tasks {
        assert_eq!(task["node"], "keeb-dev-02");
        assert!(
            task["upid"]
                .as_str()
                .unwrap()
                .starts_with("UPID:keeb-dev-02:")
        );
        assert!(task["pid"].is_u64() && task["pstart"].is_u64() && task["endtime"].is_u64());
        assert!(task["status"].is_string() && task["user"] == "root@pam");
    }
    let statuses: Vec<&str> = tasks
        .iter()
        .map(|t| t["status"].as_str().unwrap())
        .collect();
    assert!(statuses.contains(&"OK"));
    assert!(statuses.iter().any(|s| s.starts_with("WARNINGS: ")));
    assert!(statuses.iter().any(|s| s.contains("failed")));

    let (_, page) = node.get(&format!("{NODE}/tasks?start=55&limit=10"));
    assert_eq!((rows(&page).len(), page["total"].as_u64()), (5, Some(60)));
    let (_, full) = node.get(&format!("{NODE}/tasks?limit=60"));
    assert_eq!(rows(&page)[0]["upid"], rows(&full)[55]["upid"]);
    let (_, errors) = node.get(&format!("{NODE}/tasks?errors=1&limit=100"));
    assert!(rows(&errors).iter().all(|t| t["status"] != "OK"));
    assert!(errors["total"].as_u64().unwrap() >= 8);
    let (_, typed) = node.get(&format!("{NODE}/tasks?typefilter=vzdump&limit=100"));
    assert!(rows(&typed).iter().all(|t| t["type"] == "vzdump"));
    assert_eq!(typed["total"], 8);

    // A task the API spawns is listed at once, running (no status, no endtime), then finished.
    let (_, upid) = node.write("POST", &format!("{NODE}/qemu/101/status/start"), "");
    let (_, listed) = node.get(&format!("{NODE}/tasks?limit=1"));
    let newest = &rows(&listed)[0];
    assert_eq!(newest["upid"], upid["data"]);
    assert!(newest.get("status").is_none() && newest.get("endtime").is_none());
    assert_eq!(listed["total"], 61);
    node.finish(&upid["data"]);
    let (_, listed) = node.get(&format!("{NODE}/tasks?limit=1&vmid=101"));
    assert_eq!(rows(&listed)[0]["status"], "OK");
    assert!(rows(&listed)[0]["endtime"].is_u64());
}

#[test]
fn task_list_source_and_user_filters_and_guest_indexes() {
    let mut node = Node::new();
    let (_, upid) = node.write("POST", &format!("{NODE}/lxc/901/status/start"), "");
    let (_, active) = node.get(&format!("{NODE}/tasks?source=active"));
    assert_eq!(active["total"], 1);
    assert_eq!(rows(&active)[0]["upid"], upid["data"]);
    let (_, archive) = node.get(&format!("{NODE}/tasks?source=archive"));
    assert_eq!(archive["total"], 60);
    let (_, nobody) = node.get(&format!("{NODE}/tasks?userfilter=alice"));
    assert_eq!(nobody["total"], 0);
    assert_eq!(node.get(&format!("{NODE}/tasks?source=old")).0, 400);
    let (_, index) = node.get(&format!("{NODE}/lxc/901"));
    assert!(rows(&index).iter().any(|r| r["subdir"] == "interfaces"));
    let (_, index) = node.get(&format!("{NODE}/lxc/901/status"));
    assert!(rows(&index).iter().any(|r| r["subdir"] == "current"));
    let (_, index) = node.get(NODE);
    assert!(rows(&index).iter().any(|r| r["name"] == "lxc"));
    assert!(rows(&index).iter().any(|r| r["name"] == "storage"));
}

#[test]
fn filling_a_shared_pool_shows_on_every_node() {
    let mut node = cluster();
    let fill = WorldChange::FillStorage {
        storage: "nfs-backup".to_string(),
        node: None,
        used: Some(u64::MAX),
        used_fraction: None,
    };
    node.api.change(fill).unwrap();
    for name in ["keeb-dev-02", "keeb-dev-04"] {
        let (_, pools) = node.get(&format!("/api2/json/nodes/{name}/storage"));
        let nfs = &rows(&pools)[2];
        assert_eq!(nfs["storage"], "nfs-backup");
        assert_eq!(
            nfs["used"], nfs["total"],
            "capped at the capacity on {name}"
        );
        assert_eq!(nfs["avail"], 0);
        assert_eq!(nfs["used_fraction"], 1.0);
    }
    let unknown = WorldChange::FillStorage {
        storage: "ceph".to_string(),
        node: None,
        used: Some(1),
        used_fraction: None,
    };
    assert!(node.api.change(unknown).unwrap_err().contains("'ceph'"));
}

#[test]
fn seeded_task_logs_end_like_pve() {
    let mut node = Node::new();
    let (_, body) = node.get(&format!("{NODE}/tasks?limit=100"));
    let find = |prefix: &str| {
        rows(&body)
            .iter()
            .find(|t| t["status"].as_str().unwrap().starts_with(prefix))
            .map(|t| {
                (
                    t["upid"].as_str().unwrap().to_string(),
                    t["status"].as_str().unwrap().to_string(),
                )
            })
            .unwrap()
    };
    let (upid, status) = find("WARNINGS: ");
    let (_, log) = node.get(&format!("{NODE}/tasks/{upid}/log"));
    let count: usize = status["WARNINGS: ".len()..].parse().unwrap();
    assert_eq!(log["total"], count + 1);
    assert_eq!(rows(&log).last().unwrap()["t"], format!("TASK {status}"));
    let (_, tail) = node.get(&format!("{NODE}/tasks/{upid}/log?start={count}&limit=5"));
    assert_eq!(rows(&tail).len(), 1);
    assert_eq!(rows(&tail)[0]["n"], count + 1);
    let (_, status_body) = node.get(&format!("{NODE}/tasks/{upid}/status"));
    assert_eq!(status_body["data"]["status"], "stopped");
    assert_eq!(status_body["data"]["exitstatus"], status);
    let (upid, status) = find("command ");
    let (_, log) = node.get(&format!("{NODE}/tasks/{upid}/log"));
    assert_eq!(
        rows(&log).last().unwrap()["t"],
        format!("TASK ERROR: {status}")
    );
}

#[test]
fn cluster_tasks_and_resources_cover_every_node() {
    let mut node = cluster();
    let (_, tasks) = node.get("/api2/json/cluster/tasks");
    let tasks = rows(&tasks);
    assert_eq!(tasks.len(), 90, "30 per node, under the 50 per node cap");
    for name in ["keeb-dev-02", "keeb-dev-03", "keeb-dev-04"] {
        assert!(tasks.iter().any(|t| t["node"] == name), "{name}");
    }
    let (_, all) = node.get("/api2/json/cluster/resources");
    // 3 nodes, 15 VMs, 5 containers, 3 pools on each node.
    assert_eq!(rows(&all).len(), 3 + 15 + 5 + 9);
    let (_, storage) = node.get("/api2/json/cluster/resources?type=storage");
    let storage = rows(&storage);
    assert_eq!(storage.len(), 9);
    let nfs = storage
        .iter()
        .find(|s| s["id"] == "storage/keeb-dev-04/nfs-backup")
        .unwrap();
    assert_eq!(nfs["type"], "storage");
    assert_eq!(nfs["plugintype"], "nfs");
    assert_eq!(nfs["shared"], 1);
    assert_eq!(nfs["status"], "available");
    assert!(nfs["maxdisk"].is_u64() && nfs["disk"].is_u64());
    let (_, vms) = node.get("/api2/json/cluster/resources?type=vm");
    let ct = rows(&vms).iter().find(|r| r["id"] == "lxc/300").unwrap();
    assert_eq!(
        (ct["type"].as_str(), ct["node"].as_str()),
        (Some("lxc"), Some("keeb-dev-03"))
    );
    let (_, nodes) = node.get("/api2/json/cluster/resources?type=node");
    assert_eq!(rows(&nodes).len(), 3);
}

#[test]
fn world_changes_apply_at_once() {
    let mut node = cluster();
    let api = &mut node.api;
    assert_eq!(api.change(WorldChange::DeleteGuest { vmid: 105 }), Ok(()));
    assert_eq!(api.guest_status(105), None);
    assert_eq!(api.change(WorldChange::StopGuest { vmid: 300 }), Ok(()));
    assert_eq!(api.guest_status(300).as_deref(), Some("stopped"));
    assert_eq!(api.change(WorldChange::StartGuest { vmid: 101 }), Ok(()));
    assert_eq!(api.guest_status(101).as_deref(), Some("running"));
    let rename = WorldChange::RenameGuest {
        vmid: 106,
        name: "factorio-2".to_string(),
    };
    assert_eq!(api.change(rename), Ok(()));
    assert_eq!(api.guest_name(106).as_deref(), Some("factorio-2"));
    let moved = WorldChange::MoveGuest {
        vmid: 901,
        node: "keeb-dev-04".to_string(),
    };
    assert_eq!(api.change(moved), Ok(()));
    let fill = WorldChange::FillStorage {
        storage: "local-lvm".to_string(),
        node: Some("keeb-dev-03".to_string()),
        used: None,
        used_fraction: Some(0.95),
    };
    assert_eq!(api.change(fill), Ok(()));
    let task = WorldChange::AddTask {
        node: "keeb-dev-04".to_string(),
        kind: "vzdump".to_string(),
        id: "210".to_string(),
        status: "job errors".to_string(),
    };
    assert_eq!(api.change(task), Ok(()));
    assert!(api.guest_kind(901).is_some());

    let (_, list) = node.get(&format!("{NODE}/qemu"));
    assert!(!vmids(&list).contains(&105));
    let (_, factorio) = node.get(&format!("{NODE}/qemu/106/config"));
    assert_eq!(factorio["data"]["name"], "factorio-2");
    assert_eq!(
        vmids(&node.get("/api2/json/nodes/keeb-dev-04/lxc").1),
        [310, 901]
    );
    let (_, pools) = node.get(&format!("{N3}/storage"));
    assert!((rows(&pools)[1]["used_fraction"].as_f64().unwrap() - 0.95).abs() < 1e-6);
    let (_, pools) = node.get(&format!("{NODE}/storage"));
    assert!(
        rows(&pools)[1]["used_fraction"].as_f64().unwrap() < 0.5,
        "only keeb-dev-03 filled"
    );
    let (_, tasks) = node.get("/api2/json/nodes/keeb-dev-04/tasks?limit=1");
    assert_eq!(rows(&tasks)[0]["status"], "job errors");
    assert_eq!(rows(&tasks)[0]["id"], "210");

    let api = &mut node.api;
    let error = api
        .change(WorldChange::DeleteGuest { vmid: 105 })
        .unwrap_err();
    assert!(error.contains("105"), "{error}");
    let error = api
        .change(WorldChange::MoveGuest {
            vmid: 100,
            node: "pve9".to_string(),
        })
        .unwrap_err();
    assert!(error.contains("no node 'pve9'"), "{error}");
    let both = WorldChange::FillStorage {
        storage: "local".to_string(),
        node: None,
        used: Some(1),
        used_fraction: Some(0.5),
    };
    assert!(api.change(both).unwrap_err().contains("exactly one"));
}

#[test]
fn world_changes_read_from_tagged_json() {
    let change: WorldChange =
        serde_json::from_str(r#"{"change": "delete_guest", "vmid": 105}"#).unwrap();
    assert_eq!(change, WorldChange::DeleteGuest { vmid: 105 });
    let change: WorldChange = serde_json::from_str(
        r#"{"change": "fault", "method": "GET", "path": "/nodes/*/lxc",
            "fault": {"kind": "string_field", "field": "maxmem", "value": "lots"}}"#,
    )
    .unwrap();
    assert!(matches!(
        change,
        WorldChange::Fault {
            fault: Fault::StringField { .. },
            ..
        }
    ));
    let change: WorldChange = serde_json::from_str(
        r#"{"change": "add_task", "node": "n", "type": "vzdump", "status": "OK"}"#,
    )
    .unwrap();
    assert!(matches!(change, WorldChange::AddTask { .. }));
    assert!(serde_json::from_str::<WorldChange>(r#"{"change": "explode"}"#).is_err());
}

fn fault(node: &mut Node, method: Option<&str>, path: &str, fault: Fault) {
    let change = WorldChange::Fault {
        method: method.map(str::to_string),
        path: path.to_string(),
        fault,
    };
    node.api.change(change).unwrap();
}

/// Status, content type and raw body of a GET.
fn raw(node: &mut Node, path: &str) -> (u16, &'static str, String) {
    let (status, _, content_type, body) = raw_with_reason(node, path);
    (status, content_type, body)
}

/// Status, reason phrase, content type and raw body of a GET.
fn raw_with_reason(node: &mut Node, path: &str) -> (u16, String, &'static str, String) {
    let mut call = node.call("GET", "");
    call.path = path;
    let (path, query) = match call.path.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (call.path, None),
    };
    let cookie = call.cookie.clone().unwrap();
    let reply = node.api.handle(&super::ApiRequest {
        method: "GET",
        path,
        query,
        content_type: None,
        cookies: vec![cookie.as_str()],
        authorization: None,
        csrf_token: None,
        body: b"",
    });
    (
        reply.status,
        reply.reason,
        reply.content_type,
        String::from_utf8(reply.body).unwrap(),
    )
}

#[test]
fn faults_spoil_matching_answers_until_cleared() {
    let mut node = Node::new();
    let lxc = format!("{NODE}/lxc");
    fault(
        &mut node,
        None,
        "/nodes/keeb-dev-02/lxc",
        Fault::MissingData,
    );
    assert_eq!(raw(&mut node, &lxc), (200, super::JSON, "{}".to_string()));
    // The same path of another method, and other paths, are untouched.
    assert_eq!(node.get(&format!("{NODE}/qemu")).0, 200);

    fault(
        &mut node,
        Some("GET"),
        "/api2/json/nodes/*/lxc",
        Fault::StringField {
            field: "maxmem".to_string(),
            value: "lots".to_string(),
        },
    );
    let (_, body) = node.get(&lxc);
    assert_eq!(rows(&body)[0]["maxmem"], "lots");
    assert_eq!(rows(&body)[0]["vmid"], 900);

    fault(
        &mut node,
        None,
        "/nodes/keeb-dev-02/lxc",
        Fault::WrongDataType,
    );
    let (_, body) = node.get(&lxc);
    assert!(body["data"].is_object());
    fault(
        &mut node,
        None,
        "/nodes/keeb-dev-02/lxc/900/config",
        Fault::WrongDataType,
    );
    assert!(node.get(&format!("{NODE}/lxc/900/config")).1["data"].is_array());

    fault(
        &mut node,
        None,
        "/nodes/keeb-dev-02/storage",
        Fault::Html { status: 500 },
    );
    let (status, content_type, body) = raw(&mut node, &format!("{NODE}/storage"));
    assert_eq!((status, content_type), (500, "text/html; charset=utf-8"));
    assert!(body.contains("<html>"));

    fault(&mut node, None, "/nodes/keeb-dev-02/tasks", Fault::Timeout);
    let mut call = node.call("GET", "");
    let path = format!("{NODE}/tasks");
    call.path = &path;
    let (status, body) = node.send(&call);
    assert_eq!(status, 596);
    assert!(body["data"].is_null());
    let (_, reason, _, _) = raw_with_reason(&mut node, &path);
    assert_eq!(reason, "Connection timed out");

    // A faulted write changes nothing.
    fault(
        &mut node,
        Some("POST"),
        "/nodes/keeb-dev-02/qemu/*/status/start",
        Fault::Timeout,
    );
    assert_eq!(
        node.write("POST", &format!("{NODE}/qemu/101/status/start"), "")
            .0,
        596
    );
    assert_eq!(node.api.guest_status(101).as_deref(), Some("stopped"));
    assert_eq!(node.get(&format!("{NODE}/tasks?limit=1")).0, 596);

    node.api.change(WorldChange::ClearFaults).unwrap();
    assert_eq!(vmids(&node.get(&lxc).1), [900, 901]);
    assert_eq!(node.get(&format!("{NODE}/tasks")).0, 200);
    let error = node
        .api
        .change(WorldChange::Fault {
            method: None,
            path: "/x".to_string(),
            fault: Fault::Html { status: 42 },
        })
        .unwrap_err();
    assert!(error.contains("42"), "{error}");
}

#[test]
fn generated_world_spreads_guests_and_tasks_over_nodes() {
    let mut node = Node::with(SimConfig::generated(3, 1_000, 3_000));
    let (_, nodes) = node.get("/api2/json/nodes");
    assert_eq!(rows(&nodes).len(), 3);
    let mut guests = 0;
    for name in ["keeb-dev-02", "keeb-dev-03", "keeb-dev-04"] {
        let (_, vms) = node.get(&format!("/api2/json/nodes/{name}/qemu"));
        let (_, cts) = node.get(&format!("/api2/json/nodes/{name}/lxc"));
        guests += rows(&vms).len() + rows(&cts).len();
        assert!(!rows(&cts).is_empty());
        let (_, tasks) = node.get(&format!("/api2/json/nodes/{name}/tasks"));
        assert_eq!(tasks["total"], 1_000);
    }
    assert_eq!(guests, 1_000);
    let (_, vms) = node.get("/api2/json/cluster/resources?type=vm");
    assert_eq!(rows(&vms).len(), 1_000);
    assert_eq!(rows(&vms)[4]["id"], "lxc/1004");
    assert_eq!(rows(&vms)[4]["name"], "ct-00005");
    assert_eq!(rows(&vms)[1]["node"], "keeb-dev-03");
}
