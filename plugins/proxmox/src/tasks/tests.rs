//! Tasks against a scripted Proxmox.

use super::*;
use crate::pve::fake::{self, FakePve};
use orch_plugin_sdk::json;

fn globals(node: &str) -> VmGlobals {
    serde_json::from_value(json!({"apiUrl": "https://pve:8006", "node": node, "ticket": "t"}))
        .unwrap()
}

fn no_warn(_: &str) {}

/// A UPID of `node` started at `start`.
pub(crate) fn upid(node: &str, start: u64) -> String {
    format!("UPID:{node}:0000{start:04X}:00ABCDEF:{start:08X}:qmstart:100:root@pam:")
}

/// A task list entry; finished with `status` when given.
pub(crate) fn entry(node: &str, start: u64, status: Option<&str>) -> Value {
    let mut e = json!({
        "upid": upid(node, start), "node": node, "pid": 1, "pstart": 2,
        "starttime": start, "type": "qmstart", "id": "100", "user": "root@pam"
    });
    if let Some(s) = status {
        e["status"] = json!(s);
        e["endtime"] = json!(start + 5);
    }
    e
}

fn failed<T: std::fmt::Debug>(result: Result<T>) -> String {
    match result {
        Err(Error::Failed(m)) => m,
        other => panic!("expected Failed, got {other:?}"),
    }
}

#[test]
fn statuses_are_classified() {
    assert_eq!(classify(None), "running");
    assert_eq!(classify(Some("OK")), "ok");
    assert_eq!(classify(Some("WARNINGS: 2")), "warning");
    assert_eq!(
        classify(Some("command 'qmstart 105' failed: exit code 1")),
        "error"
    );
    assert_eq!(
        upid_starttime(&upid("pve1", 0x6819_A3C2)),
        Some(0x6819_A3C2)
    );
    assert_eq!(upid_starttime("UPID:x"), None);
}

#[test]
fn a_nodes_list_is_read_with_the_limit_and_every_status() {
    let fake = FakePve::new(|_, path, _| {
        assert_eq!(path, "/nodes/pve1/tasks?start=0&limit=3");
        fake::ok(json!([
            entry("pve1", 300, None),
            entry("pve1", 200, Some("WARNINGS: 2")),
            {"upid": upid("pve1", 100), "starttime": "100", "endtime": "105",
             "status": "command 'qmstart 105' failed: exit code 1"}
        ]))
    });
    let t = Tasks::new(&fake, &globals("pve1"), &no_warn, |_| {}).unwrap();
    let listing = t.list(3).unwrap();
    let got = &listing.nodes[0].tasks;
    let statuses: Vec<_> = got.iter().map(|t| t.status.as_str()).collect();
    assert_eq!(statuses, ["running", "warning", "error"]);
    assert_eq!(got[0].exitstatus, None);
    assert_eq!(got[0].endtime, None);
    // Fields missing from the entry come from the UPID.
    let third = &got[2];
    assert_eq!(
        (
            third.node.as_str(),
            third.task_type.as_str(),
            third.id.as_str(),
            third.user.as_str()
        ),
        ("pve1", "qmstart", "100", "root@pam")
    );
    assert_eq!((third.starttime, third.endtime), (Some(100), Some(105)));
    assert_eq!(listing.windows().get("pve1"), Some(&100));
}

#[test]
fn the_retirement_window_starts_after_the_oldest_listed_task() {
    let listing = TaskListing {
        nodes: vec![
            NodeTasks {
                node: "pve1".into(),
                tasks: parse_tasks("GET /t", &json!([entry("pve1", 200, Some("OK"))]), "pve1")
                    .unwrap(),
            },
            NodeTasks {
                node: "pve3".into(),
                tasks: Vec::new(),
            },
        ],
        unreachable: vec![("pve2".into(), "timeout".into())],
    };
    let w = listing.windows();
    assert!(TaskListing::covers(&w, &upid("pve1", 201)));
    assert!(
        !TaskListing::covers(&w, &upid("pve1", 200)),
        "same second as the oldest"
    );
    assert!(
        !TaskListing::covers(&w, &upid("pve1", 150)),
        "fell out of the window"
    );
    assert!(
        !TaskListing::covers(&w, &upid("pve2", 999)),
        "node not read"
    );
    assert!(
        !TaskListing::covers(&w, &upid("pve3", 999)),
        "node listed nothing"
    );
    assert!(!TaskListing::covers(&w, "not a upid"));
}

#[test]
fn all_nodes_reads_every_online_node_and_reports_unreachable_ones() {
    let fake = FakePve::new(|_, path, _| match path {
        "/nodes" => fake::ok(json!([
            {"node": "pve2", "status": "online"},
            {"node": "pve1", "status": "online"},
            {"node": "pve3", "status": "offline"}
        ])),
        "/nodes/pve1/tasks?start=0&limit=500" => fake::ok(json!([entry("pve1", 10, Some("OK"))])),
        _ => fake::fail(596, "Connection timed out"),
    });
    let warnings = std::cell::RefCell::new(Vec::new());
    let warn = |m: &str| warnings.borrow_mut().push(m.to_string());
    let t = Tasks::new(&fake, &globals("*"), &warn, |_| {}).unwrap();
    let listing = t.list(DEFAULT_LIMIT).unwrap();
    assert_eq!(listing.nodes.len(), 1);
    let unreachable: Vec<_> = listing
        .unreachable
        .iter()
        .map(|(n, _)| n.as_str())
        .collect();
    assert_eq!(unreachable, ["pve3", "pve2"]);
    assert_eq!(warnings.borrow().len(), 1);
}

#[test]
fn a_single_node_that_times_out_fails_the_sync() {
    let fake = FakePve::new(|_, _, _| fake::fail(596, "Connection timed out"));
    let t = Tasks::new(&fake, &globals("pve1"), &no_warn, |_| {}).unwrap();
    assert!(matches!(t.list(5), Err(Error::Transient(_))));
    let t = Tasks::new(&fake, &globals("*"), &no_warn, |_| {}).unwrap();
    assert!(
        matches!(t.list(5), Err(Error::Transient(_))),
        "/nodes itself timed out"
    );
}

#[test]
fn malformed_task_lists_name_endpoint_and_field() {
    for (answer, expected) in [
        (
            json!([{"upid": "nope"}]),
            "field `upid` of entry 0 is a string (\"nope\"), not a UPID",
        ),
        (json!([{"starttime": 5}]), "entry 0 has no `upid` field"),
        (
            json!([{"upid": upid("pve1", 1), "endtime": "soon"}]),
            "field `endtime` of entry 0 is a string",
        ),
        (
            json!({"upid": "x"}),
            "field `data` is an object, not a list",
        ),
    ] {
        let fake = FakePve::new(move |_, _, _| fake::ok(answer.clone()));
        let t = Tasks::new(&fake, &globals("pve1"), &no_warn, |_| {}).unwrap();
        let m = failed(t.list(5));
        assert!(
            m.starts_with(&format!(
                "GET /nodes/pve1/tasks?start=0&limit=5: {expected}"
            )),
            "{m}"
        );
    }
}

#[test]
fn status_of_one_task_asks_its_own_node() {
    let id = upid("pve2", 0x10);
    let fake = FakePve::new(|_, path, _| {
        if path.ends_with("/status") && path.starts_with("/nodes/pve2/tasks/UPID%3Apve2") {
            fake::ok(
                json!({"status": "stopped", "exitstatus": "WARNINGS: 1", "type": "vzdump",
                "id": "101", "user": "root@pam", "starttime": 16, "node": "pve2"}),
            )
        } else {
            fake::fail(404, "no route")
        }
    });
    let t = Tasks::new(&fake, &globals("pve1"), &no_warn, |_| {}).unwrap();
    let r = t.status(&id).unwrap();
    assert_eq!(
        (
            r.status.as_str(),
            r.exitstatus.as_deref(),
            r.task_type.as_str(),
            r.starttime
        ),
        ("warning", Some("WARNINGS: 1"), "vzdump", Some(16))
    );
    assert!(matches!(
        t.status("UPID:bad"),
        Err(Error::InvalidArguments(_))
    ));
}

#[test]
fn status_errors_are_typed() {
    let fake = FakePve::new(|_, _, _| fake::ok(json!({"status": "paused"})));
    let t = Tasks::new(&fake, &globals("pve1"), &no_warn, |_| {}).unwrap();
    let m = failed(t.status(&upid("pve1", 1)));
    assert!(
        m.contains("/status: field `status` is a string (\"paused\")"),
        "{m}"
    );
    let fake = FakePve::new(|_, _, _| fake::ok(json!(null)));
    let t = Tasks::new(&fake, &globals("pve1"), &no_warn, |_| {}).unwrap();
    assert!(failed(t.status(&upid("pve1", 1))).contains("field `data` is null, not an object"));
}

#[test]
fn log_returns_the_lines_and_total() {
    let fake = FakePve::new(|_, path, _| {
        assert!(path.ends_with("/log?start=2&limit=2"), "{path}");
        orch_plugin_sdk::HttpResponse {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: br#"{"data":[{"n":3,"t":"starting"},{"n":4,"t":"TASK OK"}],"total":"4"}"#
                .to_vec(),
        }
    });
    let t = Tasks::new(&fake, &globals("pve1"), &no_warn, |_| {}).unwrap();
    let out = t
        .log(&LogArgs {
            upid: upid("pve1", 1),
            start: Some(2),
            limit: Some(2),
        })
        .unwrap();
    assert_eq!(out["lines"], json!(["starting", "TASK OK"]));
    assert_eq!(out["total"], 4);
}
