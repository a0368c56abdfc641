//! Bad input end to end through the real `orch` binary: one broken file must not stop commands
//! that do not use it, hostile YAML and inputs get clear errors instead of crashes, and huge
//! values are never repeated whole.

mod support;

use support::TestRepo;

const STEP_SOURCE_NOOP: &str = "jobs:\n  - name: main\n    steps:\n      - name: a\n        task: { type: model_method, modelIdOrName: source, methodName: noop }\n";

fn repo() -> TestRepo {
    let repo = TestRepo::new(&["testplug"]);
    repo.write("models/source.yaml", "type: test/echo\n")
        .write("workflows/ok.yaml", STEP_SOURCE_NOOP);
    repo
}

/// The exit code is 2 (validation), not a crash (101, or -1 for a signal).
fn assert_clean_refusal(run: &support::Run) {
    assert_eq!(
        run.code, 2,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
}

#[test]
fn an_unrelated_broken_file_is_a_warning_naming_the_file() {
    let repo = repo();
    repo.write("models/typo.yaml", "type: test/echo\nglobalArgs: {}\n")
        .write("workflows/other.yaml", "jobs: [\n");
    let run = repo.orch(&["run", "ok"]).ok();
    assert!(
        run.stderr
            .contains("warning: models/typo.yaml:2: globalArgs: unknown field")
            && run.stderr.contains("warning: workflows/other.yaml:"),
        "{}",
        run.stderr
    );
    repo.orch(&["model", "run", "source", "noop"]).ok();
    // Commands that use no file in particular work and warn.
    let listed = repo.orch(&["model", "list"]).ok();
    assert!(listed.stdout.contains("source"), "{}", listed.stdout);
    assert!(
        listed.stderr.contains("models/typo.yaml:2"),
        "{}",
        listed.stderr
    );
    repo.orch(&["data", "list"]).ok();
    repo.orch(&["runs", "list"]).ok();
    repo.orch(&["eval", "1 + 1"]).ok();
}

#[test]
fn a_broken_file_the_workflow_uses_fails_it_naming_file_and_line() {
    let repo = repo();
    repo.write(
        "models/source.yaml",
        "type: test/echo\nglobalArguments:\n  greeting: [\n",
    );
    let run = repo.orch(&["run", "ok"]);
    assert_clean_refusal(&run);
    assert!(
        run.stderr.contains("error: models/source.yaml:4"),
        "{}",
        run.stderr
    );
    let run = repo.orch(&["model", "run", "source", "noop"]);
    assert_clean_refusal(&run);
    assert!(
        run.stderr.contains("models/source.yaml:4"),
        "{}",
        run.stderr
    );
    // A model only read through CEL counts too.
    repo.write("models/source.yaml", "type: test/echo\n")
        .write("models/broken.yaml", "type: test/echo\n  bad: indent\n")
        .write(
            "models/reader.yaml",
            "type: test/echo\nglobalArguments:\n  greeting: '${{ model.broken.resource.item.x.attributes.y }}'\n",
        );
    let run = repo.orch(&["model", "run", "reader", "noop"]);
    assert_clean_refusal(&run);
    assert!(
        run.stderr.contains("error: models/broken.yaml:2"),
        "{}",
        run.stderr
    );
}

#[test]
fn orch_check_lists_every_problem_and_fails() {
    let repo = repo();
    repo.orch(&["check"]).ok();
    repo.write("models/typo.yaml", "type: test/echo\nglobalArgs: {}\n")
        .write("models/orphan.yaml", "type: nowhere/missing\n")
        .write("workflows/other.yaml", "jobs: [\n")
        .write(
            "workflows/uses-typo.yaml",
            "jobs:\n  - name: main\n    steps:\n      - name: a\n        task: { type: model_method, modelIdOrName: typo, methodName: noop }\n",
        );
    let run = repo.orch(&["check"]);
    assert_clean_refusal(&run);
    for expected in [
        "models/orphan.yaml:1: type: unknown model type `nowhere/missing`",
        "models/typo.yaml:2: globalArgs: unknown field",
        "workflows/other.yaml:2",
        "workflows/uses-typo.yaml:5: jobs[0].steps[0].task.modelIdOrName: model `typo` is defined in models/typo.yaml",
        "4 problem(s) found",
    ] {
        assert!(run.stderr.contains(expected), "{expected}\n{}", run.stderr);
    }
    let report = repo.orch(&["--json", "check"]);
    assert_clean_refusal(&report);
    let report = report.json();
    assert_eq!(report["ok"], false);
    let problems = report["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 4, "{problems:#?}");
    assert_eq!(problems[0]["file"], "models/orphan.yaml");
    assert_eq!(problems[0]["line"], 1);
    // `workflow validate` with no name is just as strict; with a name, only what it uses counts.
    assert_clean_refusal(&repo.orch(&["workflow", "validate"]));
    repo.orch(&["workflow", "validate", "ok"]).ok();
}

#[test]
fn a_broken_orch_yaml_stops_every_command() {
    let repo = repo();
    repo.write("orch.yaml", "concurency: 2\n");
    for args in [&["run", "ok"][..], &["data", "list"], &["check"]] {
        let run = repo.orch(args);
        assert_clean_refusal(&run);
        assert!(
            run.stderr.contains("orch.yaml:1: concurency"),
            "{}",
            run.stderr
        );
    }
}

#[test]
fn deep_nesting_is_a_clear_error_not_a_crash() {
    let repo = repo();
    // 6 KB of brackets, and 6 KB of compact block sequences.
    repo.write(
        "models/flow.yaml",
        &format!(
            "type: test/echo\nglobalArguments:\n  a: {}\n",
            "[".repeat(6000)
        ),
    )
    .write(
        "workflows/block.yaml",
        &format!("jobs:\n  - {}\n", "- ".repeat(3000)),
    );
    let run = repo.orch(&["model", "run", "flow", "noop"]);
    assert_clean_refusal(&run);
    assert!(
        run.stderr.contains("models/flow.yaml:3:") && run.stderr.contains("deeper than 64 levels"),
        "{}",
        run.stderr
    );
    let run = repo.orch(&["run", "block"]);
    assert_clean_refusal(&run);
    assert!(
        run.stderr.contains("workflows/block.yaml:2:"),
        "{}",
        run.stderr
    );
    // Everything else keeps working.
    repo.orch(&["data", "list"]).ok();
    repo.orch(&["run", "ok"]).ok();
}

#[test]
fn special_and_oversized_input_files_are_refused() {
    let repo = repo();
    let run = repo.orch(&["run", "ok", "--input-file", "/dev/zero"]);
    assert_clean_refusal(&run);
    assert!(
        run.stderr.contains("/dev/zero: not a regular file"),
        "{}",
        run.stderr
    );

    let big = repo.path().join("big.json");
    std::fs::write(
        &big,
        format!("{{\"blob\": \"{}\"}}", "x".repeat(2 * 1024 * 1024)),
    )
    .unwrap();
    let run = repo.orch(&["run", "ok", "--input-file", big.to_str().unwrap()]);
    assert_clean_refusal(&run);
    assert!(
        run.stderr.contains("more than the 1024 KiB"),
        "{}",
        run.stderr
    );
}

#[test]
fn undeclared_inputs_are_refused_with_the_closest_name() {
    let repo = repo();
    repo.write(
        "workflows/typed.yaml",
        &format!("inputs:\n  type: object\n  properties:\n    vmName: {{ type: string }}\n{STEP_SOURCE_NOOP}"),
    );
    repo.orch(&["run", "typed", "--input", "vmName=a"]).ok();
    let run = repo.orch(&["run", "typed", "--input", "vmNmae=a"]);
    assert_clean_refusal(&run);
    assert!(
        run.stderr
            .contains("unknown input `vmNmae`; did you mean `vmName`?"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_byte_order_mark_is_accepted_everywhere() {
    let repo = repo();
    repo.write("orch.yaml", "\u{feff}concurrency: 2\n")
        .write("models/source.yaml", "\u{feff}type: test/echo\n")
        .write("workflows/ok.yaml", &format!("\u{feff}{STEP_SOURCE_NOOP}"));
    repo.orch(&["run", "ok"]).ok();
    repo.orch(&["check"]).ok();
    // Lines stay right after a BOM.
    repo.write(
        "models/source.yaml",
        "\u{feff}type: test/echo\nglobalArgs: {}\n",
    );
    let run = repo.orch(&["check"]);
    assert!(
        run.stderr.contains("models/source.yaml:2: globalArgs"),
        "{}",
        run.stderr
    );
}

#[test]
fn invalid_utf8_names_line_column_and_offset() {
    let repo = repo();
    std::fs::write(
        repo.path().join("models/latin1.yaml"),
        b"type: test/echo\ndescription: caf\xe9\n",
    )
    .unwrap();
    let run = repo.orch(&["check"]);
    assert_clean_refusal(&run);
    assert!(
        run.stderr
            .contains("models/latin1.yaml:2:17: invalid UTF-8 (byte 0xe9 at byte offset 32)"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_huge_value_is_never_repeated_whole() {
    let repo = repo();
    let huge = "9".repeat(3 * 1024 * 1024);
    repo.write(
        "models/huge.yaml",
        &format!("type: test/echo\nglobalArguments:\n  sshPort: \"{huge}\"\n"),
    );
    let run = repo.orch(&["model", "run", "huge", "noop"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("models/huge.yaml:3"),
        "{}",
        &run.stderr[..run.stderr.len().min(2000)]
    );
    assert!(
        run.all().len() < 20_000,
        "{} bytes of output",
        run.all().len()
    );
    let shown = repo.orch(&["--json", "runs", "list"]).ok();
    assert!(
        shown.stdout.len() < 50_000,
        "{} bytes in the run list",
        shown.stdout.len()
    );
}
