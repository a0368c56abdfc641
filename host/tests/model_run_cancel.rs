//! `orch model run` is cancelled like `orch run`: Ctrl-C (SIGINT) or `orch runs cancel`
//! (SIGTERM) interrupts the plugin call, the run is recorded `cancelled` (never left `running`
//! or `abandoned`), nothing the call was writing is stored, and orch exits 130.

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
    let listed = repo.orch(&["--json", "runs", "list"]).ok().json();
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
