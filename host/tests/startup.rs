//! What a run loads before its first step: only the workflow it runs (other workflow files are
//! checked, not kept, and not parsed again once known to be clean), and plugins compiled for
//! lack of cached code are announced once.

mod support;

use support::TestRepo;

const STEP_SOURCE_NOOP: &str = "jobs:\n  - name: main\n    steps:\n      - name: a\n        task: { type: model_method, modelIdOrName: source, methodName: noop }\n";

fn repo() -> TestRepo {
    let repo = TestRepo::new(&["testplug"]);
    repo.write("models/source.yaml", "type: test/echo\n")
        .write("workflows/ok.yaml", STEP_SOURCE_NOOP);
    repo
}

/// A bundle whose wasm is missing: it can never load.
fn install_absent_plugin(repo: &TestRepo) {
    repo.write(
        "plugins/ghost/plugin.toml",
        "id = \"ghost\"\nversion = \"0.1.0\"\napi = \"0.1.0\"\nsha256 = \"00\"\n",
    );
}

#[test]
fn a_run_survives_a_broken_unrelated_workflow_and_an_unused_absent_plugin_that_check_reports() {
    let repo = repo();
    repo.write("workflows/other.yaml", "jobs: [\n")
        .write("models/orphan.yaml", "type: nowhere/missing\n");
    install_absent_plugin(&repo);
    let run = repo.orch(&["run", "ok"]).ok();
    assert!(
        run.stderr.contains("warning: workflows/other.yaml:"),
        "{}",
        run.stderr
    );
    let check = repo.orch(&["check"]).code(2);
    assert!(
        check.stderr.contains("workflows/other.yaml:")
            && check.stderr.contains("models/orphan.yaml:1")
            && check.stderr.contains("nowhere/missing")
            && check.stderr.contains("ghost"),
        "{}",
        check.stderr
    );
}

/// Runs `workflow`, then reads `.orch/parsed-workflows`: the workflow files known to be clean.
fn known_after_running(repo: &TestRepo, workflow: &str) -> String {
    repo.orch(&["run", workflow]).ok();
    let list = repo.path().join(".orch/parsed-workflows");
    std::fs::read_to_string(&list).expect("the list of clean workflow files")
}

#[test]
fn a_clean_unrelated_workflow_is_parsed_once_then_known_by_its_content() {
    let repo = repo();
    repo.write("workflows/big.yaml", STEP_SOURCE_NOOP);
    let known = known_after_running(&repo, "ok");
    assert_eq!(
        known.lines().count(),
        2,
        "big.yaml, which the run does not use, and ok.yaml, which it ran"
    );
    // Broken after it was known clean: its content changed, so it is parsed and reported.
    repo.write("workflows/big.yaml", "jobs: [\n");
    let run = repo.orch(&["run", "ok"]).ok();
    assert!(
        run.stderr.contains("warning: workflows/big.yaml:"),
        "{}",
        run.stderr
    );
    let list = repo.path().join(".orch/parsed-workflows");
    assert_eq!(
        std::fs::read_to_string(&list).unwrap().lines().count(),
        1,
        "only ok.yaml"
    );
}

#[test]
fn a_workflow_that_ran_is_known_clean_so_a_run_of_another_does_not_parse_it_again() {
    let repo = repo();
    repo.write("workflows/big.yaml", STEP_SOURCE_NOOP);
    let after_big = known_after_running(&repo, "big");
    let after_ok = known_after_running(&repo, "ok");
    // Both files are on the list after either run: the one run and the one checked.
    assert_eq!(after_big.lines().count(), 2, "{after_big}");
    assert_eq!(after_ok, after_big, "no file was found anew");
}

#[test]
fn a_run_still_names_and_suggests_an_unknown_workflow() {
    let repo = repo();
    repo.write("workflows/other.yaml", STEP_SOURCE_NOOP);
    let run = repo.orch(&["run", "okk"]).code(2);
    assert!(
        run.stderr.contains("unknown workflow `okk`") && run.stderr.contains("did you mean `ok`"),
        "{}",
        run.stderr
    );
}

#[test]
fn the_first_run_announces_the_plugin_it_compiles_and_the_second_does_not() {
    let repo = repo();
    let first = repo.orch(&["--json", "run", "ok"]).ok();
    assert_eq!(
        first
            .stderr
            .matches("compiling plugin testplug (first run)")
            .count(),
        1,
        "{}",
        first.stderr
    );
    assert_eq!(first.json()["status"], "succeeded", "stdout stays JSON");
    let second = repo.orch(&["run", "ok"]).ok();
    assert!(
        !second.stderr.contains("compiling plugin"),
        "{}",
        second.stderr
    );
}

/// `ORCH_LOG=trace` during a first compile once wrote gigabytes of the compiler's own trace to
/// stderr (a run looked hung); the compiler's crates stay quiet unless named.
#[test]
fn orch_log_trace_during_a_first_compile_does_not_flood_stderr() {
    let repo = repo();
    let out = repo
        .command(&["run", "ok"])
        .env("ORCH_LOG", "trace")
        .output()
        .expect("run orch");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.len() < 1_000_000,
        "stderr is {} bytes; it starts: {}",
        out.stderr.len(),
        String::from_utf8_lossy(&out.stderr[..out.stderr.len().min(2000)])
    );
}
