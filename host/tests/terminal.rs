//! What a plugin says reaches the terminal inert: log lines, error messages and `runs show`
//! carry its terminal controls escaped, it cannot start a line that reads as orch's own, and
//! `--json` stays valid JSON.

mod support;

use support::TestRepo;

const RAW_CONTROLS: [char; 5] = ['\x1b', '\x07', '\r', '\u{9b}', '\x00'];

fn hostile_repo() -> TestRepo {
    let repo = TestRepo::new(&["hostile"]);
    repo.write(
        "models/h.yaml",
        "type: hostile/plugin\nglobalArguments:\n  allowedUrl: http://127.0.0.1:9\n",
    );
    repo
}

fn assert_inert(what: &str, text: &str) {
    assert!(
        !text.contains(RAW_CONTROLS),
        "{what} lets a terminal control through:\n{}",
        text.escape_debug()
    );
    for line in text.lines() {
        let start = line.trim_start();
        assert!(
            !start.starts_with('✓'),
            "{what}: the plugin forged a line of orch's own: {line:?}"
        );
    }
}

#[test]
fn a_plugin_s_log_line_and_error_reach_stderr_escaped() {
    let repo = hostile_repo();
    let run = repo.orch(&["model", "run", "h", "logEscapes"]).code(1);
    assert_inert("stderr", &run.stderr);
    assert_inert("stdout", &run.stdout);
    // The log line, with its forged second line kept behind the step's prefix.
    assert!(
        run.stderr.contains(
            "h.logEscapes │ copy \\x1b]52;c;cm0gLXJmIH4K\\x07 then \\x1b[2K\\r  ✓ deploy"
        ),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("h.logEscapes │   ✓ forged line\\u{9b}2J"),
        "{}",
        run.stderr
    );
    // The error: one line, escaped.
    assert!(
        run.stderr
            .contains("returned failed: copy \\x1b]52;c;cm0gLXJmIH4K\\x07 then \\x1b[2K\\r  ✓ deploy   succeeded   1ms\\n  ✓ forged line\\u{9b}2J"),
        "{}",
        run.stderr
    );

    let runs = repo.orch(&["--json", "runs", "list"]).ok().json();
    let id = runs[0]["id"].as_str().unwrap().to_string();
    let shown = repo.orch(&["runs", "show", &id]).ok();
    assert_inert("runs show", &shown.all());
    assert!(shown.stdout.contains("\\x1b]52;c;"), "{}", shown.stdout);
}

#[test]
fn json_output_stays_valid_and_carries_no_raw_control() {
    let repo = hostile_repo();
    let run = repo
        .orch(&["-v", "--json", "model", "run", "h", "logEscapes"])
        .code(1);
    assert_inert("--json stdout", &run.stdout);
    assert_inert("--json stderr", &run.stderr);
    let record = run.json();
    let events = record["run"]["events"].as_array().unwrap();
    let logged = events
        .iter()
        .find(|e| e["event"] == "log")
        .and_then(|e| e["message"].as_str())
        .unwrap();
    // The log event keeps what the plugin said; only its rendering is escaped.
    assert!(logged.starts_with("copy \x1b]52;c;"), "{logged:?}");
}
