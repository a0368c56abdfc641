//! Two (here eight) orch processes on one repository all succeed, and no write is lost.

mod support;

use support::TestRepo;

#[test]
fn eight_processes_writing_at_once_all_succeed_and_keep_every_version() {
    let repo = TestRepo::new(&["testplug"]);
    repo.write("models/counter.yaml", "type: test/echo\n");
    let children: Vec<_> = (0..8)
        .map(|i| {
            repo.command(&[
                "model",
                "run",
                "counter",
                "write",
                "--input",
                "name=shared",
                "--input",
                &format!("attributes={{\"writer\":{i}}}"),
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn")
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "a process failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let versions = repo
        .orch(&["--json", "data", "versions", "counter", "shared"])
        .ok()
        .json();
    let versions = versions.as_array().unwrap();
    assert_eq!(versions.len(), 8, "one version per process");
    let mut writers: Vec<i64> = versions
        .iter()
        .map(|v| v["attributes"]["writer"].as_i64().unwrap())
        .collect();
    writers.sort();
    assert_eq!(writers, (0..8).collect::<Vec<_>>());
    let numbers: Vec<u64> = versions
        .iter()
        .map(|v| v["version"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, (1..=8).collect::<Vec<_>>());
    let runs = repo.orch(&["--json", "runs", "list"]).ok().json();
    assert_eq!(runs.as_array().unwrap().len(), 8, "every run is recorded");
}
