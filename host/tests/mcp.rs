//! `orch mcp` driven by a real MCP client: the official Python SDK (`mcp` on PyPI, pinned),
//! installed once per machine into a virtualenv under `~/.cache/orch-mcp-venv`, runs
//! `host/tests/mcp/client.py`, which starts the real `orch mcp` over stdio, initializes, lists
//! the tools, makes the calls it is given and prints what it got as JSON.

mod support;

use pve_sim::SimConfig;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use support::lab::{Lab, PASSWORD};

/// The pinned SDK version.
const MCP_SDK: &str = "mcp==2.3.0";

/// The virtualenv holding the SDK, made once (beside its final place, then renamed into it, so
/// a half install is never used).
fn venv() -> PathBuf {
    static ONE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = ONE.lock().unwrap_or_else(|e| e.into_inner());
    let home = std::env::var_os("HOME").expect("HOME");
    let root = Path::new(&home).join(".cache/orch-mcp-venv");
    let venv = root.join(MCP_SDK.replace("==", "-"));
    if venv.join(".complete").is_file() {
        return venv;
    }
    std::fs::create_dir_all(&root).unwrap();
    let tmp = root.join(format!("tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    // Debian's python3 with python3-venv (cargo xtask test installs it), not a user's pyenv.
    let made = Command::new("/usr/bin/python3")
        .args(["-m", "venv"])
        .arg(&tmp)
        .output()
        .expect("run /usr/bin/python3 (install python3 and python3-venv)");
    assert!(
        made.status.success(),
        "python3 -m venv failed (install python3-venv): {}",
        String::from_utf8_lossy(&made.stderr)
    );
    let pip = Command::new(tmp.join("bin/python"))
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            MCP_SDK,
        ])
        .output()
        .expect("run pip");
    assert!(
        pip.status.success(),
        "pip install {MCP_SDK} failed: {}{}",
        String::from_utf8_lossy(&pip.stdout),
        String::from_utf8_lossy(&pip.stderr)
    );
    std::fs::write(tmp.join(".complete"), MCP_SDK).unwrap();
    if std::fs::rename(&tmp, &venv).is_err() {
        // Another test process finished first: use its install.
        let _ = std::fs::remove_dir_all(&tmp);
    }
    assert!(
        venv.join(".complete").is_file(),
        "no venv at {}",
        venv.display()
    );
    venv
}

/// What one MCP session saw, and `orch mcp`'s stderr.
struct Session {
    out: Value,
    stdout: String,
    stderr: String,
}

impl Session {
    fn tool_names(&self) -> Vec<&str> {
        self.out["tools"]
            .as_array()
            .expect("tools")
            .iter()
            .map(|t| t["name"].as_str().expect("name"))
            .collect()
    }

    /// Call `i`: whether it was a tool error, and its text.
    fn call(&self, i: usize) -> (bool, &str) {
        let c = &self.out["calls"][i];
        (
            c["isError"].as_bool().expect("isError"),
            c["text"].as_str().expect("text"),
        )
    }

    /// Call `i`'s result, which must not be a tool error, as JSON.
    fn ok(&self, i: usize) -> Value {
        let (is_error, text) = self.call(i);
        assert!(!is_error, "call {i} failed: {text}");
        serde_json::from_str(text).unwrap_or_else(|e| panic!("call {i} is not JSON ({e}): {text}"))
    }
}

/// Runs one MCP session against `orch mcp ARGS` in the lab's repository.
fn session(lab: &Lab, args: &[&str], calls: Value) -> Session {
    let venv = venv();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mcp/client.py");
    let out = Command::new(venv.join("bin/python"))
        .arg(script)
        .arg(calls.to_string())
        .arg(env!("CARGO_BIN_EXE_orch"))
        .arg("mcp")
        .args(args)
        .current_dir(lab.repo.path())
        .env("PROXMOX_API_URL", lab.sim.url())
        .env("NO_COLOR", "1")
        .env_remove("ORCH_VAULT_KEY")
        .env_remove("ORCH_REPO")
        .output()
        .expect("run the MCP client");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(
        out.status.success(),
        "the MCP client failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{stdout}\nstderr:\n{stderr}"));
    Session {
        out: value,
        stdout,
        stderr,
    }
}

const ALL_TOOLS: [&str; 16] = [
    "list_types",
    "describe_type",
    "list_models",
    "show_model",
    "list_workflows",
    "show_workflow",
    "run_workflow",
    "run_method",
    "get_run",
    "data_list",
    "data_get",
    "data_versions",
    "data_diff",
    "data_changes",
    "eval",
    "plan",
];

#[test]
fn an_agent_lists_the_tools_syncs_the_fleet_and_reads_a_vms_ip() {
    let lab = Lab::with_config(SimConfig::default());
    let s = session(
        &lab,
        &[],
        json!([
            {"name": "run_workflow", "arguments": {"workflow": "sync-fleet"}},
            {"name": "data_get", "arguments": {"model": "fleet", "name": "gold-image"}},
            {"name": "eval", "arguments": {"expression": "model.fleet.resource.vm[\"gold-image\"].attributes.ip"}},
            {"name": "show_workflow", "arguments": {"name": "delete-vm"}},
            {"name": "list_models"},
            {"name": "show_model", "arguments": {"name": "keebDev02"}},
            {"name": "data_list", "arguments": {"model": "fleet"}},
            {"name": "list_types"},
            {"name": "describe_type", "arguments": {"name": "proxmox/vm"}},
            {"name": "list_workflows"},
            {"name": "show_workflow", "arguments": {"name": "no-such-workflow"}},
            {"name": "data_get", "arguments": {"model": "fleet"}},
            {"name": "eval", "arguments": {"expression": "vault.get(\"proxmox-vault\", \"password\")"}},
        ]),
    );
    assert_eq!(s.out["server"]["name"], "orch");
    assert_eq!(s.tool_names(), ALL_TOOLS);
    for t in s.out["tools"].as_array().unwrap() {
        assert_eq!(t["inputSchema"]["type"], "object", "{t}");
        assert!(!t["description"].as_str().unwrap().is_empty(), "{t}");
    }
    let run_tool = &s.out["tools"][6];
    assert_eq!(run_tool["inputSchema"]["required"], json!(["workflow"]));
    assert!(
        run_tool["description"]
            .as_str()
            .unwrap()
            .contains("CHANGES INFRASTRUCTURE")
    );
    assert_eq!(run_tool["annotations"]["destructiveHint"], true);

    let run = s.ok(0);
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["target"], "sync-fleet");
    assert!(
        run["steps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|st| st["status"] == "succeeded"),
        "{run}"
    );
    let vm = s.ok(1);
    assert_eq!(vm["attributes"]["ip"], "10.0.0.143", "{vm}");
    assert_eq!(vm["attributes"]["vmid"], 109);
    assert_eq!(s.ok(2), json!({"value": "10.0.0.143"}));
    let delete = s.ok(3);
    assert!(
        delete["inputs"]["properties"].get("expectVmid").is_some(),
        "the workflow's own inputs schema: {delete}"
    );
    assert!(
        s.ok(4)
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["name"] == "fleet")
    );
    assert_eq!(s.ok(5)["type"], "proxmox/node");
    assert_eq!(s.ok(6).as_array().unwrap().len(), 10);
    assert!(s.ok(7).to_string().contains("proxmox/vm"));
    assert!(s.ok(8).to_string().contains("expectVmid"));
    assert!(
        s.ok(9)
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w["name"] == "sync-fleet")
    );
    let (is_error, text) = s.call(10);
    assert!(is_error && text.contains("no-such-workflow"), "{text}");
    let (is_error, text) = s.call(11);
    assert_eq!(
        (is_error, text),
        (true, "data_get: argument `name` is required (a string)")
    );
    let (is_error, text) = s.call(12);
    assert!(!is_error, "{text}");
    assert!(
        !s.stdout.contains(PASSWORD) && !s.stderr.contains(PASSWORD),
        "a vault secret reached a tool result or the log:\n{}\n{}",
        s.stdout,
        s.stderr
    );

    // The run the agent started is recorded; get_run shows it in full.
    let id = run["id"].as_str().unwrap();
    let s = session(
        &lab,
        &["--read-only"],
        json!([
            {"name": "get_run", "arguments": {"id": id}},
            {"name": "data_versions", "arguments": {"model": "fleet", "name": "gold-image"}},
            {"name": "data_changes", "arguments": {"model": "fleet", "since": "1h"}},
            {"name": "plan", "arguments": {"models": ["fleet"]}},
            {"name": "data_diff", "arguments": {"model": "fleet", "name": "gold-image"}},
        ]),
    );
    let record = s.ok(0);
    assert_eq!(record["id"], id);
    assert_eq!(record["status"], "succeeded");
    let versions = s.ok(1);
    assert_eq!(versions.as_array().unwrap().len(), 1, "{versions}");
    assert_eq!(versions[0]["attributes"]["vmid"], 109);
    assert!(s.ok(2).to_string().contains("gold-image"));
    let plan = s.ok(3);
    assert_eq!(plan["order"], json!(["keebDev02", "fleet"]), "{plan}");
    assert_eq!(plan["pending"], false);
    let (is_error, text) = s.call(4);
    assert!(
        is_error && text.contains("fleet/vm/gold-image has only version 1"),
        "{text}"
    );
    assert!(!s.stdout.contains(PASSWORD) && !s.stderr.contains(PASSWORD));
}

#[test]
fn a_destructive_call_without_the_vmid_is_refused_and_nothing_is_deleted() {
    let lab = Lab::with_config(SimConfig::default());
    lab.orch(&["run", "sync-fleet"]).ok();
    let before = lab.sim.requests().len();
    let s = session(
        &lab,
        &[],
        json!([
            {"name": "run_method", "arguments": {"model": "fleet", "method": "stop", "inputs": {"vmName": "allthemons"}}},
            {"name": "run_workflow", "arguments": {"workflow": "delete-vm", "inputs": {"vmName": "allthemons"}}},
            {"name": "run_method", "arguments": {"model": "fleet", "method": "stop", "inputs": {"vmName": "allthemons", "expectVmid": 101}}},
        ]),
    );
    let (is_error, text) = s.call(0);
    assert!(is_error, "{text}");
    let refused: Value = serde_json::from_str(text).unwrap();
    assert_eq!(refused["run"]["status"], "failed");
    assert!(
        refused.to_string().contains("expectVmid"),
        "orch's own message names the confirm input: {refused}"
    );
    let (is_error, text) = s.call(1);
    assert!(
        is_error && text.contains("delete-vm.yaml") && text.contains("expectVmid"),
        "{text}"
    );
    let (is_error, text) = s.call(2);
    assert!(
        is_error && text.contains("refusing") && text.contains("108"),
        "{text}"
    );
    let writes: Vec<String> = lab.sim.requests()[before..]
        .iter()
        .filter(|r| !r.starts_with("GET") && !r.contains("/access/ticket"))
        .cloned()
        .collect();
    assert!(writes.is_empty(), "requests reached the API: {writes:?}");
    assert_eq!(lab.sim.vm_status("allthemons").as_deref(), Some("running"));
    assert!(!s.stdout.contains(PASSWORD) && !s.stderr.contains(PASSWORD));

    // With the vmid the agent read (data_get), the same call goes through.
    let s = session(
        &lab,
        &[],
        json!([
            {"name": "data_get", "arguments": {"model": "fleet", "name": "allthemons"}},
            {"name": "run_method", "arguments": {"model": "fleet", "method": "stop", "inputs": {"vmName": "allthemons", "expectVmid": 108}}},
        ]),
    );
    assert_eq!(s.ok(0)["attributes"]["vmid"], 108);
    let stopped = s.ok(1);
    assert_eq!(stopped["run"]["status"], "succeeded", "{stopped}");
    assert_eq!(lab.sim.vm_status("allthemons").as_deref(), Some("stopped"));
}

#[test]
fn stdout_carries_only_the_protocol_even_while_a_workflow_runs() {
    use std::io::Write;
    let lab = Lab::with_config(SimConfig::default());
    let mut child = lab
        .repo
        .command(&["-v", "mcp"])
        .env("PROXMOX_API_URL", lab.sim.url())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let requests = [
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}}}),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "run_workflow", "arguments": {"workflow": "sync-fleet"}}}),
    ];
    let mut stdin = child.stdin.take().unwrap();
    for r in &requests {
        writeln!(stdin, "{r}").unwrap();
    }
    // The client hangs up only after the run's answer: read stdout until then.
    let stdout = child.stdout.take().unwrap();
    let mut lines = Vec::new();
    for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
        let line = line.unwrap();
        let done = line.contains("\"id\":2");
        lines.push(line);
        if done {
            break;
        }
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        lines.len(),
        2,
        "one answer per request:\n{lines:#?}\nstderr:\n{stderr}"
    );
    for line in &lines {
        let message: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON-RPC message ({e}): {line}"));
        assert_eq!(message["jsonrpc"], "2.0", "{line}");
    }
    let answer: Value = serde_json::from_str(&lines[1]).unwrap();
    assert_eq!(answer["result"]["isError"], false, "{answer}");
    assert!(
        stderr.contains("sync-fleet"),
        "run progress goes to stderr:\n{stderr}"
    );
}

#[test]
fn read_only_lists_no_mutating_tool_and_refuses_one() {
    let lab = Lab::with_config(SimConfig::default());
    let s = session(
        &lab,
        &["--read-only"],
        json!([
            {"name": "run_workflow", "arguments": {"workflow": "sync-fleet"}},
            {"name": "run_method", "arguments": {"model": "fleet", "method": "sync"}},
            {"name": "list_models"},
        ]),
    );
    let names = s.tool_names();
    assert_eq!(names.len(), 14, "{names:?}");
    assert!(!names.contains(&"run_workflow") && !names.contains(&"run_method"));
    for t in s.out["tools"].as_array().unwrap() {
        assert_eq!(t["annotations"]["readOnlyHint"], true, "{t}");
    }
    for i in [0, 1] {
        let (is_error, text) = s.call(i);
        assert!(is_error && text.contains("read-only"), "{text}");
    }
    s.ok(2);
    assert!(
        lab.sim.requests().is_empty(),
        "a read-only server called the API: {:?}",
        lab.sim.requests()
    );
    let runs = lab.orch(&["--json", "runs", "list"]).ok().json();
    assert_eq!(runs, json!([]), "no run was started");
}

#[test]
fn init_agent_writes_the_agent_guide_into_a_new_repository() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_orch"))
        .args(["--json", "init", "--agent"])
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .env_remove("ORCH_REPO")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let guide = std::fs::read_to_string(dir.path().join("AGENTS.md")).unwrap();
    let shipped =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/agents.md"))
            .unwrap();
    assert_eq!(guide, shipped, "the guide is docs/agents.md");
    for must in [
        "orch mcp",
        "Models over shell commands",
        "expectVmid",
        "CEL",
        "--json",
    ] {
        assert!(guide.contains(must), "the guide says nothing of {must}");
    }
    let value: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(value["agentGuide"].as_str().unwrap().ends_with("AGENTS.md"));
}
