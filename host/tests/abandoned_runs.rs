//! A run whose `orch` process is killed is never shown as `running` afterwards: the record names
//! its process, and `runs list` / `runs show` mark it `abandoned` once that process is gone.

mod support;

use std::net::TcpListener;
use std::process::Stdio;
use std::sync::mpsc;

use support::{Run, TestRepo};

enum Happened {
    /// The plugin connected: the step is running, so the run record exists.
    Connected(std::net::TcpStream),
    /// `orch run` ended by itself, which it must not before it is killed.
    Exited(Run),
}

#[test]
fn a_killed_run_is_listed_as_abandoned_never_as_running() {
    // A server that accepts and never answers keeps the step (and the run) going.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let repo = TestRepo::new(&["testplug"]);
    repo.write(
        "models/web.yaml",
        &format!("type: test/echo\nglobalArguments:\n  baseUrl: {base}\n"),
    );
    repo.write(
        "workflows/hang.yaml",
        &format!(
            "name: hang\njobs:\n  - name: main\n    steps:\n      - name: wait\n        task:\n          \
             type: model_method\n          modelIdOrName: web\n          methodName: fetch\n          \
             inputs:\n            url: {base}/hang\n"
        ),
    );
    let child = repo
        .command(&["run", "hang"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn orch run");
    let pid = child.id() as libc::pid_t;

    let (tx, rx) = mpsc::channel();
    let exited = tx.clone();
    let waiter = std::thread::spawn(move || {
        let out = child.wait_with_output().expect("wait for orch");
        let _ = exited.send(Happened::Exited(Run::from_output(out)));
    });
    std::thread::spawn(move || {
        if let Ok((stream, _)) = listener.accept() {
            let _ = tx.send(Happened::Connected(stream));
        }
    });
    let stream = match rx.recv().expect("an event") {
        Happened::Connected(stream) => stream,
        Happened::Exited(run) => panic!("orch run ended before it was killed:\n{}", run.all()),
    };

    let listed = repo.orch(&["--json", "runs", "list"]).ok().json();
    let runs = listed.as_array().expect("a list");
    assert_eq!(runs.len(), 1, "{listed}");
    assert_eq!(runs[0]["status"], "running", "the run is alive: {listed}");
    assert_eq!(runs[0]["pid"], pid, "{listed}");
    let id = runs[0]["id"].as_str().expect("id").to_string();

    // SAFETY: kill(2) on the child this test spawned; no memory is involved.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0, "kill -9");
    waiter.join().expect("waiter");
    drop(stream);

    let listed = repo.orch(&["--json", "runs", "list"]).ok().json();
    assert_eq!(listed[0]["id"], id.as_str(), "{listed}");
    assert_eq!(listed[0]["status"], "abandoned", "{listed}");

    let shown = repo.orch(&["--json", "runs", "show", &id]).ok().json();
    assert_eq!(shown["status"], "abandoned", "{shown}");
    let error = shown["error"].as_str().unwrap_or_default();
    assert!(
        error.contains(&format!("process {pid}")) && error.contains("killed or crashed"),
        "says which process ended: {error}"
    );
    assert!(shown["finishedAt"].is_string(), "{shown}");

    let human = repo.orch(&["runs", "list"]).ok();
    assert!(human.stdout.contains("abandoned"), "{}", human.all());
    assert!(!human.stdout.contains("running"), "{}", human.all());
}
