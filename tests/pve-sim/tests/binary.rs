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

#[test]
fn bad_arguments_exit_with_usage_code_two() {
    for args in [
        &["--fleet", "lots"][..],
        &["--token", "no-secret"][..],
        &["--port", "http"][..],
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
