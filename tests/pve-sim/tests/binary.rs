//! The `pve-sim` binary: one URL line on stdout, serving until SIGTERM, exit codes.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

const BINARY: &str = env!("CARGO_BIN_EXE_pve-sim");

/// Kills the child if a test fails before it is stopped on purpose.
struct Running(Option<Child>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn terminate(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn binary_prints_only_the_url_serves_and_exits_zero_on_sigterm() {
    let mut running = Running(Some(
        Command::new(BINARY)
            .args([
                "--fleet",
                "3",
                "--node",
                "pve-test",
                "--token",
                "root@pam!ci=s3cret",
                "-v",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    ));
    let child = running.0.as_mut().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let url = line.trim_end().to_string();
    assert!(url.starts_with("https://127.0.0.1:"), "{line:?}");

    let response = common::client()
        .get(format!("{url}/api2/json/nodes/pve-test/qemu"))
        .header("Authorization", "PVEAPIToken=root@pam!ci=s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["data"].as_array().unwrap().len(), 3);

    terminate(child);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "", "stdout holds the URL line only");
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(
        stderr.contains("GET /api2/json/nodes/pve-test/qemu -> 200"),
        "{stderr}"
    );
    running.0 = None;
}

#[tokio::test]
async fn binary_is_quiet_on_stderr_without_verbose() {
    let mut running = Running(Some(
        Command::new(BINARY)
            .args(["--password", "pw"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    ));
    let child = running.0.as_mut().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line.trim_end();
    let response = common::post_login(url, "root@pam", "pw").await;
    assert_eq!(response.status().as_u16(), 200);
    terminate(child);
    assert_eq!(child.wait().unwrap().code(), Some(0));
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(stderr, "");
    running.0 = None;
}

#[tokio::test]
async fn binary_generates_a_world_and_takes_changes_over_http() {
    let mut running = Running(Some(
        Command::new(BINARY)
            .args(["--nodes", "3", "--guests", "30", "--tasks", "90"])
            .args(["--token", "root@pam!ci=s3cret"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    ));
    let child = running.0.as_mut().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line.trim_end().to_string();
    let client = common::client();
    let get = |path: &str| {
        client
            .get(format!("{url}/api2/json{path}"))
            .header("Authorization", "PVEAPIToken=root@pam!ci=s3cret")
            .send()
    };
    let (_, nodes) = common::read(get("/nodes").await.unwrap()).await;
    assert_eq!(nodes["data"].as_array().unwrap().len(), 3);
    let (_, tasks) = common::read(get("/nodes/keeb-dev-04/tasks").await.unwrap()).await;
    assert_eq!(tasks["total"], 30);
    let (_, guests) = common::read(get("/cluster/resources?type=vm").await.unwrap()).await;
    assert_eq!(guests["data"].as_array().unwrap().len(), 30);

    let change = |body: &'static str| {
        client
            .post(format!("{url}/_sim/change"))
            .header("Content-Type", "application/json")
            .body(body)
            .send()
    };
    let (status, body) = common::read(
        change(r#"{"change": "delete_guest", "vmid": 1000}"#)
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, &body["data"]), (200, &Value::Null));
    let (_, guests) = common::read(get("/cluster/resources?type=vm").await.unwrap()).await;
    assert_eq!(guests["data"].as_array().unwrap().len(), 29);
    let (status, body) = common::read(
        change(r#"{"change": "delete_guest", "vmid": 1000}"#)
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body["message"].as_str().unwrap().contains("vmid 1000"),
        "{body}"
    );
    let (status, _) = common::read(change(r#"{"change": "nonsense"}"#).await.unwrap()).await;
    assert_eq!(status, 400);
    let list =
        r#"[{"change": "stop_guest", "vmid": 1002}, {"change": "delete_guest", "vmid": 1001}]"#;
    assert_eq!(change(list).await.unwrap().status().as_u16(), 200);
    let (_, guests) = common::read(get("/cluster/resources?type=vm").await.unwrap()).await;
    let guests = guests["data"].as_array().unwrap();
    assert_eq!(guests.len(), 28);
    let stopped = guests.iter().find(|g| g["vmid"] == 1002).unwrap();
    assert_eq!(stopped["status"], "stopped");
    let fault = r#"{"change": "fault", "path": "/nodes", "fault": {"kind": "timeout"}}"#;
    assert_eq!(change(fault).await.unwrap().status().as_u16(), 200);
    let timed_out = get("/nodes").await.unwrap();
    assert_eq!(timed_out.status().as_u16(), 596);
    let html =
        r#"{"change": "fault", "path": "/storage", "fault": {"kind": "html", "status": 500}}"#;
    assert_eq!(change(html).await.unwrap().status().as_u16(), 200);
    let page = get("/storage").await.unwrap();
    assert_eq!(page.status().as_u16(), 500);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    assert!(page.text().await.unwrap().contains("<html>"));
    assert_eq!(
        change(r#"{"change": "clear_faults"}"#)
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    assert_eq!(get("/nodes").await.unwrap().status().as_u16(), 200);
    let wrong_method = client
        .get(format!("{url}/_sim/change"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_method.status().as_u16(), 405);

    terminate(child);
    assert_eq!(child.wait().unwrap().code(), Some(0));
    running.0 = None;
}

#[test]
fn bad_arguments_exit_with_usage_code_two() {
    for args in [
        &["--fleet", "lots"][..],
        &["--token", "no-secret"][..],
        &["--port", "http"][..],
        &["--nodes", "3"][..],
        &["--cluster", "--fleet", "3"][..],
        &["--guests", "10", "--fleet", "3"][..],
        &["--nodes", "0", "--guests", "10"][..],
    ] {
        let output = Command::new(BINARY).args(args).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(output.stdout.is_empty());
    }
}

#[test]
fn a_port_in_use_exits_with_one() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let output = Command::new(BINARY)
        .args(["--port", &port])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty());
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot listen"));
}

#[tokio::test]
async fn binary_seeds_templates_and_agent_warmup_on_request() {
    let mut running = Running(Some(
        Command::new(BINARY)
            .args(["--templates", "--agent-warmup", "2"])
            .args(["--token", "root@pam!ci=s3cret"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    ));
    let child = running.0.as_mut().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line.trim_end().to_string();
    let response = common::client()
        .get(format!("{url}/api2/json/cluster/resources?type=vm"))
        .header("Authorization", "PVEAPIToken=root@pam!ci=s3cret")
        .send()
        .await
        .unwrap();
    let (status, body) = common::read(response).await;
    assert_eq!(status, 200);
    let templates: Vec<(u64, &str)> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["template"] == 1)
        .map(|r| (r["vmid"].as_u64().unwrap(), r["name"].as_str().unwrap()))
        .collect();
    assert_eq!(
        templates,
        [
            (9000, "debian-12-template"),
            (9001, "debian-12-ct-template")
        ]
    );
    terminate(child);
    assert_eq!(child.wait().unwrap().code(), Some(0));
    running.0 = None;
}
