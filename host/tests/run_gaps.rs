//! Runs, continued (issue 12 follow-ups): `orch model run` is cancelled like `orch run` —
//! Ctrl-C (SIGINT) or `orch runs cancel` (SIGTERM) interrupts the plugin call, the run is
//! recorded `cancelled` (never left `running` or `abandoned`), nothing the call was writing is
//! stored, and orch exits 130 — and `orch runs show` prints warnings and approval decisions.

mod support;

use std::net::{TcpListener, TcpStream};
use std::process::Stdio;
use std::sync::mpsc;

use serde_json::Value;
use support::{Run, TestRepo};

/// A repo whose `web` model fetches from a server that accepts and never answers, so
/// `orch model run web fetch` stays in its plugin call until cancelled.
fn hanging_repo() -> (TestRepo, TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let repo = TestRepo::new(&["testplug"]);
    repo.write(
        "models/web.yaml",
        &format!("type: test/echo\nglobalArguments:\n  baseUrl: {base}\n"),
    );
    repo.write("models/w.yaml", "type: test/echo\n");
    (repo, listener, format!("{base}/hang"))
}

/// What happened first: the plugin connected, or orch ended.
enum Happened {
    Connected(TcpStream),
    Exited(Run),
}

/// `orch --json model run web fetch` in its plugin call.
struct Hanging {
    pid: libc::pid_t,
    events: mpsc::Receiver<Happened>,
    /// Kept open so the call goes on waiting.
    _stream: TcpStream,
}

impl Hanging {
    fn start(repo: &TestRepo, listener: TcpListener, url: &str) -> Hanging {
        let child = repo
            .command(&[
                "--json",
                "model",
                "run",
                "web",
                "fetch",
                "--input",
                &format!("url={url}"),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn orch model run");
        let pid = child.id() as libc::pid_t;
        let (tx, events) = mpsc::channel();
        let exited = tx.clone();
        std::thread::spawn(move || {
            let out = child.wait_with_output().expect("wait for orch");
            let _ = exited.send(Happened::Exited(Run::from_output(out)));
        });
        std::thread::spawn(move || {
            if let Ok((stream, _)) = listener.accept() {
                let _ = tx.send(Happened::Connected(stream));
            }
        });
        match events.recv().expect("an event") {
            Happened::Connected(stream) => Hanging {
                pid,
                events,
                _stream: stream,
            },
            Happened::Exited(run) => panic!("orch model run ended before its call:\n{}", run.all()),
        }
    }

    fn ended(self) -> Run {
        match self.events.recv().expect("orch ends") {
            Happened::Exited(run) => run,
            Happened::Connected(_) => panic!("a second connection"),
        }
    }
}

/// Asserts `run` is a `web.fetch` method run cancelled in its call, which wrote nothing.
fn assert_cancelled(repo: &TestRepo, run: &Run) -> String {
    assert_eq!(run.code, 130, "{}", run.all());
    let out = run.json();
    let record = &out["run"];
    assert_eq!(record["kind"], "method", "{out}");
    assert_eq!(record["status"], "cancelled", "{out}");
    assert_eq!(record["steps"][0]["status"], "cancelled", "{out}");
    assert_eq!(out["output"], Value::Null, "{out}");
    let id = record["id"].as_str().expect("id").to_string();
    let shown = repo.orch(&["--json", "runs", "show", &id]).ok().json();
    assert_eq!(shown["status"], "cancelled", "stays cancelled: {shown}");
    let web = repo.orch(&["--json", "data", "list", "web"]).ok().json();
    assert_eq!(
        web,
        serde_json::json!([]),
        "the interrupted call wrote nothing"
    );
    id
}

#[test]
fn ctrl_c_of_orch_model_run_cancels_the_run_with_exit_130() {
    let (repo, listener, url) = hanging_repo();
    let hanging = Hanging::start(&repo, listener, &url);
    // SAFETY: kill(2) on the child this test spawned; no memory is involved.
    assert_eq!(
        unsafe { libc::kill(hanging.pid, libc::SIGINT) },
        0,
        "kill -INT"
    );
    let run = hanging.ended();
    assert_cancelled(&repo, &run);
}

#[test]
fn orch_runs_cancel_ends_a_method_run_in_its_plugin_call() {
    let (repo, listener, url) = hanging_repo();
    let hanging = Hanging::start(&repo, listener, &url);
    // The start record is committed on its own thread, which the call does not wait for: ask
    // until it is there.
    let listed = (0..500)
        .map(|_| repo.orch(&["--json", "runs", "list"]).ok().json())
        .find(|l| l.as_array().is_some_and(|a| !a.is_empty()))
        .expect("the run's start record");
    assert_eq!(listed[0]["status"], "running", "{listed}");
    assert_eq!(listed[0]["target"], "web.fetch", "{listed}");
    let id = listed[0]["id"].as_str().expect("id").to_string();

    let cancelled = repo.orch(&["--json", "runs", "cancel", &id]).ok().json();
    assert_eq!(cancelled["status"], "cancelled", "{cancelled}");
    let run = hanging.ended();
    assert_eq!(assert_cancelled(&repo, &run), id);

    // The next method run is not cancelled by the earlier one.
    let next = repo
        .orch(&[
            "--json",
            "model",
            "run",
            "w",
            "write",
            "--input",
            "name=after",
            "--input",
            "attributes={\"n\": 1}",
        ])
        .ok()
        .json();
    assert_eq!(next["run"]["status"], "succeeded", "{next}");
}

#[test]
fn runs_show_prints_a_warn_asserts_warning_and_the_approval_decision() {
    let repo = TestRepo::new(&["testplug"]);
    repo.write(
        "workflows/check.yaml",
        "name: check
jobs:
  - name: main
    steps:
      - name: disk
        task:
          \
         type: assert
          expression: 1 > 2
          message: disk has room
          \
         severity: warn
      - name: gate
        task:
          type: manual_approval
          \
         message: Ship it?
        dependsOn:
          - step: disk
",
    );
    let waiting = repo.orch(&["--json", "run", "check"]).code(3).json();
    let id = waiting["id"].as_str().expect("id").to_string();
    let approved = Run::from_output(
        repo.command(&["runs", "approve", &id, "--comment", "looks fine"])
            .env("USER", "ann")
            .output()
            .expect("run orch"),
    );
    assert_eq!(approved.code, 0, "{}", approved.all());

    let shown = repo.orch(&["runs", "show", &id]).ok();
    let text = &shown.stdout;
    assert!(text.contains("warning: "), "{text}");
    assert!(text.contains("disk has room"), "{text}");
    assert!(text.contains("asks: Ship it?"), "{text}");
    assert!(text.contains("approved by ann at "), "{text}");
    assert!(text.contains(": looks fine"), "{text}");
    // --json has the same.
    let json = repo.orch(&["--json", "runs", "show", &id]).ok().json();
    let steps = json["steps"].as_array().expect("steps");
    let disk = steps.iter().find(|s| s["name"] == "disk").expect("disk");
    assert!(
        disk["warning"]
            .as_str()
            .is_some_and(|w| w.contains("disk has room")),
        "{json}"
    );
    let gate = steps.iter().find(|s| s["name"] == "gate").expect("gate");
    assert_eq!(gate["message"], "Ship it?", "{json}");
    assert_eq!(gate["decision"]["by"], "ann", "{json}");
    assert_eq!(gate["decision"]["comment"], "looks fine", "{json}");
}
