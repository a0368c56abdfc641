//! A run's life past one process: `manual_approval` steps suspend a run (`waiting`, exit 3),
//! `orch runs approve|reject` take it up in another process under the same id, `orch runs
//! cancel` ends a waiting or running run (a running one through SIGTERM, exit 130), and
//! `orch runs resume --from` runs a failed run again from a step without calling the steps
//! before it.

mod support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};

use serde_json::Value;
use support::{Run, TestRepo, TinyHttp};

/// A `write` step of the `w` model writing `item/<name>`: a new version in every run.
fn write_step(name: &str, extra: &str) -> String {
    format!(
        "      - name: {name}\n        task:\n          type: model_method\n          \
         modelIdOrName: w\n          methodName: write\n          inputs:\n            \
         name: {name}\n            attributes: {{ run: \"${{{{ run.id }}}}\" }}\n{extra}"
    )
}

/// `build` → `gate` (approval) → `ship` (on approval) / `rollback` (on rejection), and an
/// independent `side` step.
fn approval_repo() -> TestRepo {
    let repo = TestRepo::new(&["testplug"]);
    repo.write("models/w.yaml", "type: test/echo\n");
    let workflow = format!(
        "name: deploy\njobs:\n  - name: main\n    steps:\n{}{}{}{}{}",
        write_step("build", ""),
        "      - name: gate\n        task:\n          type: manual_approval\n          \
         message: Deploy to production?\n        dependsOn:\n          - step: build\n",
        write_step("ship", "        dependsOn:\n          - step: gate\n"),
        write_step(
            "rollback",
            "        dependsOn:\n          - step: gate\n            condition:\n              \
             type: failed\n"
        ),
        write_step("side", ""),
    );
    repo.write("workflows/deploy.yaml", &workflow);
    repo
}

fn as_ann(repo: &TestRepo, args: &[&str]) -> Run {
    Run::from_output(
        repo.command(args)
            .env("USER", "ann")
            .output()
            .expect("run orch"),
    )
}

fn step<'a>(record: &'a Value, name: &str) -> &'a Value {
    record["steps"]
        .as_array()
        .and_then(|steps| steps.iter().find(|s| s["name"] == name))
        .unwrap_or_else(|| panic!("no step {name} in {record}"))
}

/// The latest version of `item/<name>` of model `w`, if written.
fn latest(repo: &TestRepo, name: &str) -> Option<u64> {
    let listed = repo.orch(&["--json", "data", "list", "w"]).ok().json();
    listed
        .as_array()?
        .iter()
        .find(|r| r["name"] == name)
        .and_then(|r| r["latest"].as_u64())
}

/// Runs `deploy` to its approval step; returns the waiting run's id.
fn run_to_the_gate(repo: &TestRepo) -> String {
    let run = repo.orch(&["--json", "run", "deploy"]).code(3);
    let record = run.json();
    assert_eq!(record["status"], "waiting", "{record}");
    assert_eq!(
        record["waiting"][0]["message"], "Deploy to production?",
        "{record}"
    );
    assert_eq!(step(&record, "gate")["status"], "waiting", "{record}");
    assert_eq!(
        step(&record, "side")["status"],
        "succeeded",
        "independent steps run on: {record}"
    );
    assert!(
        record["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .all(|s| s["name"] != "ship" && s["name"] != "rollback"),
        "steps after the gate do not start: {record}"
    );
    record["id"].as_str().expect("id").to_string()
}

#[test]
fn an_approval_in_a_second_process_runs_the_rest_under_the_same_id() {
    let repo = approval_repo();
    // A dry run does not stop at the gate: it shows what would follow an approval.
    let dry = repo
        .orch(&["--json", "run", "deploy", "--dry-run"])
        .ok()
        .json();
    assert_eq!(dry["status"], "succeeded", "{dry}");
    assert_eq!(step(&dry, "gate")["status"], "succeeded", "{dry}");
    assert_eq!(step(&dry, "ship")["status"], "succeeded", "{dry}");
    assert_eq!(latest(&repo, "build"), None, "a dry run writes nothing");

    let human = repo.orch(&["run", "deploy"]).code(3);
    assert!(
        human.stdout.contains("orch runs approve") && human.stdout.contains("orch runs reject"),
        "says how to go on: {}",
        human.all()
    );
    // The first run waits; start a second one that is decided below (the first process has
    // long exited by then).
    let id = run_to_the_gate(&repo);
    let listed = repo.orch(&["runs", "list"]).ok();
    assert!(
        listed.stdout.contains("waiting") && listed.stdout.contains("Deploy to production?"),
        "{}",
        listed.all()
    );
    let shown = repo
        .orch(&["--json", "runs", "show", &id[..18]])
        .ok()
        .json();
    assert_eq!(shown["status"], "waiting", "{shown}");
    assert!(
        shown.get("owner").is_none(),
        "a waiting run holds no process: {shown}"
    );
    assert_eq!(
        latest(&repo, "build"),
        Some(2),
        "one version per run so far"
    );

    let approved = as_ann(
        &repo,
        &["--json", "runs", "approve", &id[..18], "--comment", "go"],
    )
    .ok()
    .json();
    assert_eq!(approved["id"], id.as_str(), "{approved}");
    assert_eq!(approved["status"], "succeeded", "{approved}");
    let gate = step(&approved, "gate");
    assert_eq!(gate["status"], "succeeded", "{approved}");
    assert_eq!(gate["decision"]["approved"], true, "{approved}");
    assert_eq!(gate["decision"]["by"], "ann", "{approved}");
    assert_eq!(gate["decision"]["comment"], "go", "{approved}");
    assert_eq!(step(&approved, "ship")["status"], "succeeded", "{approved}");
    assert_eq!(
        step(&approved, "rollback")["status"],
        "skipped",
        "{approved}"
    );
    assert_eq!(
        latest(&repo, "build"),
        Some(2),
        "the steps before the gate were not run again"
    );
    assert_eq!(latest(&repo, "side"), Some(2));
    assert_eq!(latest(&repo, "ship"), Some(1));
    assert_eq!(latest(&repo, "rollback"), None);

    // Approving it again is refused, naming its status.
    let again = as_ann(&repo, &["runs", "approve", &id]).code(1);
    assert!(
        again.stderr.contains("is succeeded, not waiting"),
        "{}",
        again.all()
    );
}

#[test]
fn a_rejection_fails_the_step_and_the_failed_path_runs() {
    let repo = approval_repo();
    let id = run_to_the_gate(&repo);
    let wrong = as_ann(&repo, &["runs", "reject", &id, "--step", "nope"]).code(1);
    assert!(
        wrong.stderr.contains("no waiting step `nope`") && wrong.stderr.contains("main.gate"),
        "{}",
        wrong.all()
    );
    let rejected = as_ann(
        &repo,
        &[
            "--json",
            "runs",
            "reject",
            &id,
            "--step",
            "main.gate",
            "--comment",
            "not today",
        ],
    )
    .code(1)
    .json();
    assert_eq!(rejected["status"], "failed", "{rejected}");
    let gate = step(&rejected, "gate");
    assert_eq!(gate["status"], "failed", "{rejected}");
    assert_eq!(gate["error"], "rejected by ann: not today", "{rejected}");
    assert_eq!(
        step(&rejected, "rollback")["status"],
        "succeeded",
        "{rejected}"
    );
    assert_eq!(step(&rejected, "ship")["status"], "skipped", "{rejected}");
    assert_eq!(latest(&repo, "ship"), None);
    assert_eq!(latest(&repo, "rollback"), Some(1));
}

#[test]
fn a_waiting_run_is_cancelled_directly_and_cannot_be_approved_after() {
    let repo = approval_repo();
    let id = run_to_the_gate(&repo);
    let cancelled = as_ann(&repo, &["--json", "runs", "cancel", &id])
        .ok()
        .json();
    assert_eq!(cancelled["status"], "cancelled", "{cancelled}");
    assert_eq!(
        step(&cancelled, "gate")["status"],
        "cancelled",
        "{cancelled}"
    );
    let shown = repo.orch(&["--json", "runs", "show", &id]).ok().json();
    assert_eq!(shown["status"], "cancelled", "{shown}");
    assert!(
        shown["error"]
            .as_str()
            .unwrap_or_default()
            .contains("cancelled by ann"),
        "{shown}"
    );
    let approve = repo.orch(&["runs", "approve", &id]).code(1);
    assert!(
        approve.stderr.contains("is cancelled, not waiting"),
        "{}",
        approve.all()
    );
    let twice = repo.orch(&["runs", "cancel", &id]).code(1);
    assert!(twice.stderr.contains("is cancelled"), "{}", twice.all());
}

/// Answers every request on `listener` with `ok`; returns how many connections it took.
fn serve(listener: TcpListener) -> Arc<AtomicUsize> {
    let count = Arc::new(AtomicUsize::new(0));
    let counted = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            counted.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
        }
    });
    count
}

#[test]
fn a_failed_run_resumed_from_the_failed_step_does_not_call_the_steps_before_it() {
    let first = TinyHttp::start("first");
    // Nothing listens on this port yet: `second` fails until a server is started there.
    let closed = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = closed.local_addr().expect("addr");
    drop(closed);
    let dead = format!("http://{addr}");
    let repo = TestRepo::new(&["testplug"]);
    repo.write(
        "models/one.yaml",
        &format!(
            "type: test/echo\nglobalArguments:\n  baseUrl: {}\n",
            first.url()
        ),
    );
    repo.write(
        "models/two.yaml",
        &format!("type: test/echo\nglobalArguments:\n  baseUrl: {dead}\n"),
    );
    repo.write(
        "workflows/pipeline.yaml",
        &format!(
            "name: pipeline\njobs:\n  - name: main\n    steps:\n      - name: first\n        task:\n          \
             type: model_method\n          modelIdOrName: one\n          methodName: fetch\n          \
             inputs:\n            url: {}/a\n      - name: second\n        task:\n          \
             type: model_method\n          modelIdOrName: two\n          methodName: fetch\n          \
             inputs:\n            url: {dead}/b\n        dependsOn:\n          - step: first\n",
            first.url()
        ),
    );
    let failed = repo.orch(&["--json", "run", "pipeline"]).code(1).json();
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(step(&failed, "second")["status"], "failed", "{failed}");
    assert_eq!(first.count(), 1);
    let id = failed["id"].as_str().expect("id").to_string();

    let bad = repo
        .orch(&["runs", "resume", &id, "--from", "secnd"])
        .code(1);
    assert!(
        bad.stderr.contains("no step `secnd`") && bad.stderr.contains("did you mean `second`"),
        "{}",
        bad.all()
    );
    assert!(
        bad.stderr.contains("workflows/pipeline.yaml"),
        "{}",
        bad.all()
    );

    // Fix the environment (the server `second` needs comes up), then resume from that step.
    let second = serve(TcpListener::bind(addr).expect("bind the same port again"));
    let resumed = repo
        .orch(&[
            "--json",
            "runs",
            "resume",
            &id[..18],
            "--from",
            "main.second",
        ])
        .ok()
        .json();
    assert_eq!(resumed["status"], "succeeded", "{resumed}");
    assert_ne!(resumed["id"], id.as_str(), "a new run: {resumed}");
    assert_eq!(resumed["resumedFrom"], id.as_str(), "{resumed}");
    assert_eq!(step(&resumed, "second")["status"], "succeeded", "{resumed}");
    assert_eq!(first.count(), 1, "`first` was not called again");
    assert_eq!(second.load(Ordering::SeqCst), 1);
    let old = repo.orch(&["--json", "runs", "show", &id]).ok().json();
    assert_eq!(old["status"], "failed", "the old run is history, unchanged");

    let not_failed = repo
        .orch(&[
            "runs",
            "resume",
            resumed["id"].as_str().expect("id"),
            "--from",
            "second",
        ])
        .code(1);
    assert!(
        not_failed.stderr.contains("is succeeded"),
        "{}",
        not_failed.all()
    );
}

enum Happened {
    /// The plugin connected: the step is in its call.
    Connected(std::net::TcpStream),
    /// `orch run` ended.
    Exited(Run),
}

/// A repo whose `hang` workflow writes `item/before`, then waits in a plugin call that never
/// gets an answer (`wait`), then would write `item/after`; `quick` writes `item/quick`.
fn hanging_repo() -> (TestRepo, TcpListener) {
    // A server that accepts and never answers keeps the step in its plugin call.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let repo = TestRepo::new(&["testplug"]);
    repo.write("models/w.yaml", "type: test/echo\n");
    repo.write(
        "models/web.yaml",
        &format!("type: test/echo\nglobalArguments:\n  baseUrl: {base}\n"),
    );
    repo.write(
        "workflows/hang.yaml",
        &format!(
            "name: hang\njobs:\n  - name: main\n    steps:\n{}      - name: wait\n        task:\n          \
             type: model_method\n          modelIdOrName: web\n          methodName: fetch\n          \
             inputs:\n            url: {base}/hang\n        dependsOn:\n          - step: before\n{}",
            write_step("before", ""),
            write_step("after", "        dependsOn:\n          - step: wait\n"),
        ),
    );
    repo.write(
        "workflows/quick.yaml",
        &format!(
            "name: quick\njobs:\n  - name: main\n    steps:\n{}",
            write_step("quick", "")
        ),
    );
    (repo, listener)
}

/// Progress lines are gathered for a moment before they are written, but a step's line still
/// shows while the run waits in its next step: the hanging `wait` keeps the process alive.
#[test]
fn a_finished_steps_line_shows_while_the_run_still_waits_in_the_next_step() {
    let (repo, listener) = hanging_repo();
    let mut child = repo
        .command(&["run", "hang"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn orch run");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr).lines() {
            if tx.send(line.expect("stderr line")).is_err() {
                break;
            }
        }
    });
    let (stream, _) = listener.accept().expect("the `wait` step connects");
    let seen = loop {
        // A liveness bound, not a speed goal: without the writer thread the line would only
        // come when the process exits, after `wait` runs into its time limit.
        match lines.recv_timeout(std::time::Duration::from_secs(60)) {
            Ok(line) if line.contains("main.before ") && line.contains("succeeded") => {
                break line;
            }
            Ok(_) => {}
            Err(e) => {
                let _ = child.kill();
                panic!("no line for `before` while `wait` hangs: {e}");
            }
        }
    };
    assert!(seen.contains('✓'), "{seen}");
    // SAFETY: kill(2) on the child this test spawned; no memory is involved.
    assert_eq!(
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) },
        0
    );
    let status = child.wait().expect("wait");
    drop(stream);
    assert_eq!(
        status.code(),
        Some(130),
        "cancelled while `wait` hung; any other exit means the line came only when the run \
         had ended by itself (`wait` runs into its time limit)"
    );
    let rest: Vec<String> = lines.iter().collect();
    assert!(
        rest.iter()
            .any(|l| l.contains("main.wait") && l.contains("cancelled")),
        "the lines held when the run was cancelled are written before it exits: {rest:?}"
    );
}

/// `orch --json run hang`, running until its `wait` step is in the plugin call.
struct Hanging {
    pid: libc::pid_t,
    events: mpsc::Receiver<Happened>,
    waiter: std::thread::JoinHandle<()>,
}

impl Hanging {
    /// Starts the run; returns once the plugin has connected (the connection is kept open).
    fn start(repo: &TestRepo, listener: TcpListener) -> (Hanging, std::net::TcpStream) {
        Self::start_workflow(repo, listener, "hang")
    }

    /// Starts `workflow`, one of whose steps fetches from `listener`.
    fn start_workflow(
        repo: &TestRepo,
        listener: TcpListener,
        workflow: &str,
    ) -> (Hanging, std::net::TcpStream) {
        let child = repo
            .command(&["--json", "run", workflow])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn orch run");
        let pid = child.id() as libc::pid_t;
        let (tx, events) = mpsc::channel();
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
        let stream = match events.recv().expect("an event") {
            Happened::Connected(stream) => stream,
            Happened::Exited(run) => {
                panic!("orch run ended before it was cancelled:\n{}", run.all())
            }
        };
        (
            Hanging {
                pid,
                events,
                waiter,
            },
            stream,
        )
    }

    /// Waits for `orch run` to end.
    fn ended(self) -> Run {
        let run = match self.events.recv().expect("orch run ends") {
            Happened::Exited(run) => run,
            Happened::Connected(_) => panic!("a second connection"),
        };
        self.waiter.join().expect("waiter");
        run
    }
}

/// Asserts `record` is a `hang` run cancelled in its `wait` step, which wrote nothing.
fn assert_cancelled_in_wait(repo: &TestRepo, run: &Run) {
    assert_eq!(run.code, 130, "{}", run.all());
    let record = run.json();
    assert_eq!(record["status"], "cancelled", "{record}");
    assert_eq!(step(&record, "before")["status"], "succeeded", "{record}");
    assert_eq!(step(&record, "wait")["status"], "cancelled", "{record}");
    assert!(
        record["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .all(|s| s["name"] != "after"),
        "no step starts after the cancel: {record}"
    );
    let web = repo.orch(&["--json", "data", "list", "web"]).ok().json();
    assert_eq!(
        web,
        serde_json::json!([]),
        "the interrupted call wrote nothing"
    );
    let shown = repo
        .orch(&["--json", "runs", "show", record["id"].as_str().expect("id")])
        .ok()
        .json();
    assert_eq!(
        shown["status"], "cancelled",
        "the record stays cancelled: {shown}"
    );
}

#[test]
fn cancelling_a_run_in_a_long_plugin_call_interrupts_it_and_commits_nothing() {
    let (repo, listener) = hanging_repo();
    let (hanging, stream) = Hanging::start(&repo, listener);
    let listed = repo.orch(&["--json", "runs", "list"]).ok().json();
    assert_eq!(listed[0]["status"], "running", "{listed}");
    let id = listed[0]["id"].as_str().expect("id").to_string();

    let cancelled = repo.orch(&["--json", "runs", "cancel", &id]).ok().json();
    assert_eq!(cancelled["status"], "cancelled", "{cancelled}");
    let run = hanging.ended();
    drop(stream);
    assert_cancelled_in_wait(&repo, &run);

    // The next run works: nothing is left locked or half-written.
    let next = repo.orch(&["--json", "run", "quick"]).ok().json();
    assert_eq!(next["status"], "succeeded", "{next}");
    assert_eq!(latest(&repo, "quick"), Some(1));

    // A finished run cannot be cancelled.
    let done = repo
        .orch(&["runs", "cancel", next["id"].as_str().expect("id")])
        .code(1);
    assert!(done.stderr.contains("is succeeded"), "{}", done.all());
}

#[test]
fn ctrl_c_of_orch_run_cancels_the_run_with_exit_130() {
    let (repo, listener) = hanging_repo();
    let (hanging, stream) = Hanging::start(&repo, listener);
    // SAFETY: kill(2) on the child this test spawned; no memory is involved.
    assert_eq!(
        unsafe { libc::kill(hanging.pid, libc::SIGINT) },
        0,
        "kill -INT"
    );
    let run = hanging.ended();
    drop(stream);
    assert_cancelled_in_wait(&repo, &run);
    repo.orch(&["run", "quick"]).ok();
}

#[test]
fn an_approval_inside_a_nested_workflow_fails_and_says_where_it_must_be() {
    let repo = TestRepo::new(&["testplug"]);
    repo.write(
        "workflows/inner.yaml",
        "name: inner\njobs:\n  - name: j\n    steps:\n      - name: gate\n        task: { type: manual_approval }\n",
    );
    repo.write(
        "workflows/outer.yaml",
        "name: outer\njobs:\n  - name: main\n    steps:\n      - name: nested\n        task: { type: workflow, workflowIdOrName: inner }\n",
    );
    let run = repo.orch(&["--json", "run", "outer"]).code(1);
    let record = run.json();
    assert_eq!(record["status"], "failed", "{record}");
    let text = record.to_string();
    assert!(
        text.contains("workflows/inner.yaml:6: jobs[0].steps[0].task: a `manual_approval` step must be in the workflow that `orch run` starts"),
        "{text}"
    );
}

#[test]
fn a_run_on_another_host_is_not_cancelled_from_here() {
    let repo = TestRepo::new(&["testplug"]);
    let store = orch::store::ResourceStore::new(
        repo.path().join(".orch/data.redb"),
        orch::store::StoreOptions::default(),
    );
    let id = orch::store::new_run_id();
    let record = orch::store::RunRecord {
        id: id.clone(),
        kind: "workflow".into(),
        target: "sync".into(),
        status: orch::store::RunStatus::Running,
        started_at: orch::store::now_rfc3339(),
        finished_at: None,
        duration_ms: None,
        inputs: serde_json::json!({}),
        steps: Vec::new(),
        events: Vec::new(),
        error: None,
        owner: Some(orch::store::RunOwner {
            pid: 4242,
            host: "elsewhere.example".into(),
            start_ticks: None,
            boot_id: None,
        }),
        outcomes: Vec::new(),
        waiting: Vec::new(),
        resumed_from: None,
    };
    store.put_run(&record).expect("put");
    drop(store);
    let refused = repo.orch(&["runs", "cancel", &id]).code(1);
    assert!(
        refused
            .stderr
            .contains("runs on host elsewhere.example (pid 4242); cancel it there"),
        "{}",
        refused.all()
    );
    let shown = repo.orch(&["--json", "runs", "show", &id]).ok().json();
    assert_eq!(shown["status"], "running", "{shown}");
}

#[test]
fn a_busy_plugin_call_is_interrupted_too_and_its_pending_write_is_not_committed() {
    let (repo, listener) = hanging_repo();
    let dst = repo.path().join("plugins/hostile");
    std::fs::create_dir_all(&dst).expect("mkdir");
    for f in ["plugin.toml", "plugin.wasm"] {
        std::fs::copy(support::dist().join("hostile").join(f), dst.join(f)).expect("copy");
    }
    repo.write("models/h.yaml", "type: hostile/plugin\n");
    // `spin` writes a resource, then loops without calling the host until its 1.5 s limit;
    // it starts with `wait`, whose connection tells the test both are under way.
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    repo.write(
        "workflows/spin.yaml",
        &format!("name: spin\njobs:\n  - name: main\n    steps:\n      - name: wait\n        task:\n          \
         type: model_method\n          modelIdOrName: web\n          methodName: fetch\n          \
         inputs:\n            url: {base}/hang\n      \
         - name: spin\n        task: {{ type: model_method, modelIdOrName: h, methodName: writeThenSpin }}\n"),
    );
    let (hanging, stream) = Hanging::start_workflow(&repo, listener, "spin");
    // SAFETY: kill(2) on the child this test spawned; no memory is involved.
    assert_eq!(
        unsafe { libc::kill(hanging.pid, libc::SIGINT) },
        0,
        "kill -INT"
    );
    let run = hanging.ended();
    drop(stream);
    assert_eq!(run.code, 130, "{}", run.all());
    let record = run.json();
    assert_eq!(
        step(&record, "spin")["status"],
        "cancelled",
        "interrupted, not left to run into its time limit: {record}"
    );
    let h = repo.orch(&["--json", "data", "list", "h"]).ok().json();
    assert_eq!(
        h,
        serde_json::json!([]),
        "the write before the loop was not committed"
    );
}
