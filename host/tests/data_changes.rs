//! `orch data changes`, `orch data diff` and last-seen, through the real binary and the
//! `testplug` plugin's `syncHosts` (writes the hosts it is given, retires the others; `seenAt`
//! is volatile).

mod support;

use serde_json::{Value, json};
use support::TestRepo;

fn fleet() -> TestRepo {
    let repo = TestRepo::new(&["testplug"]);
    repo.write(
        "models/fleet.yaml",
        "type: test/echo\nglobalArguments:\n  greeting: hi\n",
    );
    repo
}

/// Runs `syncHosts` with `hosts` and returns the run id.
fn sync(repo: &TestRepo, hosts: Value) -> String {
    let input = json!({ "hosts": hosts }).to_string();
    let out = repo
        .orch(&[
            "--json",
            "model",
            "run",
            "fleet",
            "syncHosts",
            "--input",
            &input,
        ])
        .ok()
        .json();
    out["run"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no run id in {out}"))
        .to_string()
}

fn changes(repo: &TestRepo, since: &str) -> Value {
    repo.orch(&["--json", "data", "changes", "--since", since])
        .ok()
        .json()
}

/// (name, kind, version) of every change, in the order shown.
fn kinds(changes: &Value) -> Vec<(String, String, u64)> {
    changes
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|m| m["changes"].as_array().cloned().unwrap_or_default())
        .map(|c| {
            (
                c["name"].as_str().unwrap_or_default().to_string(),
                c["kind"].as_str().unwrap_or_default().to_string(),
                c["version"].as_u64().unwrap_or_default(),
            )
        })
        .collect()
}

/// When version `version` of host `name` was written.
fn written_at(repo: &TestRepo, name: &str, version: u64) -> String {
    let v = repo
        .orch(&[
            "--json",
            "data",
            "get",
            "fleet",
            name,
            "--version",
            &version.to_string(),
        ])
        .ok()
        .json();
    v["provenance"]["time"]
        .as_str()
        .unwrap_or_else(|| panic!("no time in {v}"))
        .to_string()
}

fn entry(name: &str, kind: &str, version: u64, run: &str, time: &str, fields: Value) -> Value {
    json!({
        "spec": "host", "name": name, "kind": kind, "version": version,
        "run": run, "step": "fleet.syncHosts", "time": time, "fields": fields,
    })
}

fn host(status: &str, net0: &str, seen_at: u64) -> Value {
    json!({"status": status, "config": {"net0": net0, "cores": 2}, "seenAt": seen_at})
}

#[test]
fn a_sync_that_finds_a_change_a_removal_and_a_return_is_what_changes_shows() {
    let repo = fleet();
    let r1 = sync(
        &repo,
        json!({"a": host("running", "AA", 1), "b": {"status": "running", "seenAt": 1}}),
    );
    // Only a's status and net0 moved; b moved only its volatile seenAt, which stores nothing.
    let r2 = sync(
        &repo,
        json!({"a": host("stopped", "BB", 2), "b": {"status": "running", "seenAt": 2}}),
    );
    let t = written_at(&repo, "a", 2);
    let expected = json!([{"model": "fleet", "changes": [entry("a", "changed", 2, &r2, &t, json!({
        "config.net0": {"from": "AA", "to": "BB"},
        "status": {"from": "running", "to": "stopped"},
    }))]}]);
    assert_eq!(changes(&repo, &r1), expected);
    // A unique prefix of the run id names the same window.
    assert_eq!(changes(&repo, &r1[..23]), expected);

    // b stored no version, but it was seen by r2: versions and get say so.
    let versions = repo
        .orch(&["--json", "data", "versions", "fleet", "b"])
        .ok()
        .json();
    let list = versions.as_array().expect("versions is an array");
    assert_eq!(list.len(), 1, "{versions}");
    assert_eq!(list[0]["lastSeen"]["runId"], json!(r2), "{versions}");
    assert_eq!(list[0]["lastSeen"]["version"], json!(1), "{versions}");
    assert_eq!(
        list[0]["lastSeen"]["step"],
        json!("fleet.syncHosts"),
        "{versions}"
    );
    let got = repo
        .orch(&["--json", "data", "get", "fleet", "b"])
        .ok()
        .json();
    assert_eq!(got["lastSeen"]["runId"], json!(r2), "{got}");
    let text = repo.orch(&["data", "versions", "fleet", "b"]).ok().stdout;
    let last = text.lines().last().unwrap_or_default().to_string();
    assert!(
        last.starts_with("last seen ")
            && last.ends_with(&format!("by run {r2} (step fleet.syncHosts)")),
        "{text}"
    );

    // b disappears.
    let r3 = sync(&repo, json!({"a": host("stopped", "BB", 3)}));
    let t = written_at(&repo, "b", 2);
    assert_eq!(
        changes(&repo, &r2),
        json!([{"model": "fleet", "changes": [entry("b", "retired", 2, &r3, &t, json!({}))]}])
    );
    let diff = repo
        .orch(&["--json", "data", "diff", "fleet", "b"])
        .ok()
        .json();
    assert_eq!(
        diff,
        json!({"model": "fleet", "spec": "host", "name": "b", "from": 1, "to": 2,
               "added": {}, "removed": {}, "changed": {}, "retired": true})
    );
    let text = repo.orch(&["data", "diff", "fleet", "b"]).ok().stdout;
    assert!(text.contains(&format!("retired by run {r3}")), "{text}");
    assert!(!text.contains("- status"), "{text}");
    // An expression that reads b now fails its step, naming who removed it and when.
    repo.write(
        "models/reader.yaml",
        "type: test/echo\nglobalArguments:\n  extra: ${{ model.fleet.resource.host.b.attributes.status }}\n",
    );
    let read = repo.orch(&["model", "run", "reader", "noop"]);
    assert_ne!(read.code, 0, "{}", read.all());
    assert!(
        read.all().contains(&format!(
            "host/b of model fleet was removed by run {r3} at {t}"
        )),
        "{}",
        read.all()
    );
    // Retiring is not a sighting: b was last seen by r2.
    let got = repo
        .orch(&["--json", "data", "get", "fleet", "b"])
        .ok()
        .json();
    assert_eq!(got["lastSeen"]["runId"], json!(r2), "{got}");

    // b comes back.
    let r4 = sync(
        &repo,
        json!({"a": host("stopped", "BB", 4), "b": {"status": "running", "seenAt": 4}}),
    );
    let t = written_at(&repo, "b", 3);
    assert_eq!(
        changes(&repo, &r3),
        json!([{"model": "fleet", "changes": [entry("b", "appeared", 3, &r4, &t, json!({}))]}])
    );
    // Newest first over the whole window; r1's own writes are not "after r1".
    assert_eq!(
        kinds(&changes(&repo, &r1)),
        vec![
            ("b".to_string(), "appeared".to_string(), 3),
            ("b".to_string(), "retired".to_string(), 2),
            ("a".to_string(), "changed".to_string(), 2),
        ]
    );
    // Nothing happened after the last run.
    assert_eq!(changes(&repo, &r4), json!([]));
    let text = repo.orch(&["data", "changes", "--since", &r4]).ok().stdout;
    assert!(text.starts_with("no changes"), "{text}");
    // The human view groups by model, one line per resource and one per field.
    let text = repo.orch(&["data", "changes", "--since", &r1]).ok().stdout;
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.get(1), Some(&"fleet"), "{text}");
    assert!(lines[2].starts_with("  + host/b v3  appeared"), "{text}");
    assert!(lines[3].starts_with("  - host/b v2  retired"), "{text}");
    assert!(lines[4].starts_with("  ~ host/a v2  changed"), "{text}");
    assert_eq!(lines[5].trim(), "~ config.net0: \"AA\" → \"BB\"", "{text}");
    assert_eq!(
        lines[6].trim(),
        "~ status: \"running\" → \"stopped\"",
        "{text}"
    );
}

#[test]
fn diff_compares_the_last_two_versions_or_the_ones_asked_for_ignoring_volatile_attributes() {
    let repo = fleet();
    sync(&repo, json!({"a": host("running", "AA", 1)}));
    sync(&repo, json!({"a": host("stopped", "AA", 2)}));
    sync(
        &repo,
        json!({"a": {"status": "stopped", "config": {"net0": "BB"}, "tags": "x", "seenAt": 3}}),
    );
    // Default: v2 → v3.
    let diff = repo
        .orch(&["--json", "data", "diff", "fleet", "a"])
        .ok()
        .json();
    assert_eq!(
        diff,
        json!({"model": "fleet", "spec": "host", "name": "a", "from": 2, "to": 3,
               "added": {"tags": "x"}, "removed": {"config.cores": 2},
               "changed": {"config.net0": {"from": "AA", "to": "BB"}}})
    );
    let text = repo.orch(&["data", "diff", "fleet", "a"]).ok().stdout;
    assert_eq!(
        text.lines().collect::<Vec<_>>(),
        vec![
            "fleet/host/a v2 → v3",
            "- config.cores: 2",
            "~ config.net0: \"AA\" → \"BB\"",
            "+ tags: \"x\"",
            "(volatile, not compared: seenAt)",
        ]
    );
    let diff = repo
        .orch(&[
            "--json", "data", "diff", "fleet", "a", "--from", "1", "--to", "2",
        ])
        .ok()
        .json();
    assert_eq!(
        diff,
        json!({"model": "fleet", "spec": "host", "name": "a", "from": 1, "to": 2,
               "added": {}, "removed": {},
               "changed": {"status": {"from": "running", "to": "stopped"}}})
    );
    let diff = repo
        .orch(&["--json", "data", "diff", "fleet", "a", "--from", "1"])
        .ok()
        .json();
    assert_eq!(
        (diff["from"].clone(), diff["to"].clone()),
        (json!(1), json!(3))
    );

    // Errors: a version that does not exist, a backwards range, an unknown name or model.
    let err = repo
        .orch(&["data", "diff", "fleet", "a", "--to", "9"])
        .code(2);
    assert!(
        err.stderr.contains("fleet/host/a has versions 1..3"),
        "{}",
        err.all()
    );
    let err = repo
        .orch(&["data", "diff", "fleet", "a", "--from", "3", "--to", "2"])
        .code(2);
    assert!(
        err.stderr.contains("must be older than --to 2"),
        "{}",
        err.all()
    );
    let err = repo.orch(&["data", "diff", "fleet", "zzz"]);
    assert_ne!(err.code, 0);
    assert!(
        err.stderr.contains("no resource named `zzz`"),
        "{}",
        err.all()
    );
    let err = repo.orch(&["data", "diff", "flet", "a"]).code(2);
    assert!(err.stderr.contains("fleet"), "{}", err.all());
}

#[test]
fn an_unchanged_sync_moves_last_seen_and_shows_no_change() {
    let repo = fleet();
    let r1 = sync(&repo, json!({"a": host("running", "AA", 1)}));
    let r2 = sync(&repo, json!({"a": host("running", "AA", 2)}));
    assert_eq!(changes(&repo, &r1), json!([]));
    let versions = repo
        .orch(&["--json", "data", "versions", "fleet", "a"])
        .ok()
        .json();
    assert_eq!(versions.as_array().map(Vec::len), Some(1), "{versions}");
    assert_eq!(versions[0]["lastSeen"]["runId"], json!(r2), "{versions}");
    // The run records no resource written for it.
    let run = repo.orch(&["--json", "runs", "show", &r2]).ok().json();
    assert_eq!(run["steps"][0]["resources"], json!([]), "{run}");
}

#[test]
fn since_takes_a_time_or_a_duration_and_refuses_what_it_cannot_read() {
    let repo = fleet();
    sync(&repo, json!({"a": host("running", "AA", 1)}));
    let t = written_at(&repo, "a", 1);
    let appeared = vec![("a".to_string(), "appeared".to_string(), 1)];
    assert_eq!(kinds(&changes(&repo, &t)), appeared);
    assert_eq!(kinds(&changes(&repo, "1h")), appeared);
    assert_eq!(kinds(&changes(&repo, "2999-01-01T00:00:00Z")), vec![]);
    assert_eq!(kinds(&changes(&repo, "2999-01-01")), vec![]);
    assert_eq!(
        kinds(&changes(&repo, &t[..10])),
        appeared,
        "a date is midnight UTC"
    );
    // Without --since: the last 24 hours.
    let default = repo.orch(&["--json", "data", "changes"]).ok().json();
    assert_eq!(kinds(&default), appeared);
    // One model, or an unknown one.
    let one = repo
        .orch(&["--json", "data", "changes", "fleet", "--since", "7d"])
        .ok()
        .json();
    assert_eq!(kinds(&one), appeared);
    let err = repo.orch(&["data", "changes", "flet"]).code(2);
    assert!(err.stderr.contains("fleet"), "{}", err.all());

    // Hostile and malformed values: a duration longer than the clock goes back means the whole
    // history; anything unreadable is a usage error that says what to give.
    assert_eq!(
        kinds(&changes(&repo, "99999999999999999999999999d")),
        appeared
    );
    assert_eq!(kinds(&changes(&repo, "9223372036854775807s")), appeared);
    for bad in [
        "yesterday",
        "24",
        "-3h",
        "0193zz12-not-a-run",
        "2026-13-45T99:00:00Z",
    ] {
        let err = repo
            .orch(&["data", "changes", &format!("--since={bad}")])
            .code(2);
        assert!(
            err.stderr.contains("is not a run id, a time or a duration"),
            "{bad}: {}",
            err.all()
        );
    }
    let missing = "01934567-89ab-7def-8000-000000000000";
    let err = repo.orch(&["data", "changes", "--since", missing]).code(2);
    assert!(
        err.stderr.contains(missing) && err.stderr.contains("no run has that id"),
        "{}",
        err.all()
    );
    let long = "a".repeat(100_000);
    let err = repo.orch(&["data", "changes", "--since", &long]).code(2);
    assert!(err.stderr.len() < 2_000, "{}", err.stderr.len());
}
