//! Workflow schedules end to end: `orch triggers run-due --now …` runs a scheduled workflow
//! against the Proxmox VE simulator, once per scheduled time, reports missed times without
//! running them late; `orch check` names a bad cron's file, line and field.

mod support;

use pve_sim::SimConfig;
use serde_json::Value;
use support::Run;
use support::lab::Lab;

const SCHEDULE: &str = "triggers:\n  - schedule: \"*/2 * * * *\"\n";

/// The homelab lab without its own `collect-game-metrics` schedule (its game plugins are not
/// installed in the lab), so the fires these tests count are their own.
fn quiet_lab() -> Lab {
    let lab = Lab::with_config(SimConfig::default());
    let path = lab.repo.path().join("workflows/collect-game-metrics.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let own = "triggers:\n  - schedule: \"*/2 * * * *\"\n";
    assert!(text.contains(own), "the homelab schedule changed:\n{text}");
    std::fs::write(&path, text.replace(own, "")).unwrap();
    lab
}

/// The homelab lab with `sync-fleet` scheduled every two minutes.
fn lab() -> Lab {
    let lab = quiet_lab();
    let path = lab.repo.path().join("workflows/sync-fleet.yaml");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(SCHEDULE);
    std::fs::write(&path, text).unwrap();
    lab
}

/// `orch ARGS` against the simulator, in UTC so `--now` times read as the schedule's.
fn orch(lab: &Lab, args: &[&str]) -> Run {
    let mut cmd = lab.repo.command(args);
    cmd.env("PROXMOX_API_URL", lab.sim.url()).env("TZ", "UTC");
    Run::from_output(cmd.output().unwrap())
}

fn run_due(lab: &Lab, now: &str) -> Value {
    orch(lab, &["--json", "triggers", "run-due", "--now", now])
        .ok()
        .json()
}

#[test]
fn run_due_runs_a_scheduled_workflow_once_per_scheduled_time() {
    let lab = lab();
    let first = run_due(&lab, "2026-01-10T12:00:20Z");
    let fired = first["fired"].as_array().unwrap();
    assert_eq!(fired.len(), 1, "{first}");
    assert_eq!(fired[0]["workflow"], "sync-fleet");
    assert_eq!(fired[0]["at"], "2026-01-10T12:00:00.000Z");
    assert_eq!(fired[0]["outcome"], "started", "{first}");
    assert_eq!(fired[0]["status"], "succeeded", "{first}");
    let run_id = fired[0]["runId"].as_str().unwrap().to_string();
    let shown = orch(&lab, &["--json", "runs", "show", &run_id]).ok().json();
    assert_eq!(shown["status"], "succeeded");
    assert_eq!(shown["target"], "sync-fleet");
    // The run synced the simulator's VMs into the store.
    let listed = orch(&lab, &["--json", "data", "list", "fleet"]).ok().json();
    assert!(listed.as_array().is_some_and(|l| !l.is_empty()), "{listed}");

    // Same minute again: already fired, nothing runs.
    let again = run_due(&lab, "2026-01-10T12:00:50Z");
    assert_eq!(again["fired"], serde_json::json!([]), "{again}");
    // An odd minute is not a scheduled time.
    let odd = run_due(&lab, "2026-01-10T12:01:10Z");
    assert_eq!(odd["fired"], serde_json::json!([]), "{odd}");

    let runs = orch(&lab, &["--json", "runs", "list"]).ok().json();
    let count = runs
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["target"] == "sync-fleet")
        .count();
    assert_eq!(count, 1, "{runs}");

    let list = orch(&lab, &["--json", "triggers", "list"]).ok().json();
    let schedule = &list["schedules"][0];
    assert_eq!(schedule["workflow"], "sync-fleet");
    assert_eq!(schedule["trigger"], "triggers[0]");
    assert_eq!(schedule["schedule"], "*/2 * * * *");
    assert_eq!(schedule["lastRunId"], run_id.as_str());
    assert_eq!(schedule["lastStatus"], "succeeded");
    assert_eq!(schedule["lastRun"], "2026-01-10T12:00:00.000Z");
    assert_eq!(schedule["skipped"], 0);
    assert!(schedule["nextRun"].is_string(), "{list}");
}

#[test]
fn times_missed_while_nothing_ran_are_reported_and_not_run_late() {
    let lab = lab();
    run_due(&lab, "2026-01-10T12:00:05Z");
    // Nothing ran the schedules from 12:01 to 12:09: 12:02 … 12:08 are missed.
    let late = run_due(&lab, "2026-01-10T12:09:10Z");
    assert_eq!(late["fired"], serde_json::json!([]), "{late}");
    let missed = &late["missed"][0];
    assert_eq!(missed["workflow"], "sync-fleet");
    assert_eq!(missed["count"], 4, "{late}");
    assert_eq!(missed["first"], "2026-01-10T12:02:00.000Z");
    assert_eq!(missed["last"], "2026-01-10T12:08:00.000Z");
    // Reported once; the next time fires as usual.
    let next = run_due(&lab, "2026-01-10T12:10:05Z");
    assert_eq!(next["missed"], serde_json::json!([]), "{next}");
    assert_eq!(next["fired"][0]["at"], "2026-01-10T12:10:00.000Z", "{next}");
    assert_eq!(next["fired"][0]["status"], "succeeded", "{next}");
    let human = orch(
        &lab,
        &["triggers", "run-due", "--now", "2026-01-10T12:15:00Z"],
    )
    .ok();
    assert!(
        human.stdout.contains(
            "sync-fleet triggers[0]: missed 2 scheduled time(s) from 2026-01-10T12:12:00.000Z to 2026-01-10T12:14:00.000Z (not run late)"
        ),
        "{}",
        human.all()
    );
}

#[test]
fn a_bad_cron_expression_is_named_by_orch_check_with_file_line_and_field() {
    let lab = quiet_lab();
    let path = lab.repo.path().join("workflows/sync-fleet.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let line = text.lines().count() + 2;
    std::fs::write(
        &path,
        format!("{text}triggers:\n  - schedule: \"*/2 25 * * *\"\n"),
    )
    .unwrap();
    let out = orch(&lab, &["check"]).code(2);
    let expected = format!(
        "workflows/sync-fleet.yaml:{line}: triggers[0].schedule: invalid cron expression `*/2 25 * * *`"
    );
    assert!(out.stderr.contains(&expected), "{}", out.all());
    let out = orch(&lab, &["workflow", "validate", "sync-fleet"]).code(2);
    assert!(out.stderr.contains(&expected), "{}", out.all());
    // run-due leaves the broken schedule alone instead of guessing.
    let due = orch(
        &lab,
        &[
            "--json",
            "triggers",
            "run-due",
            "--now",
            "2026-01-10T12:00:00Z",
        ],
    )
    .ok()
    .json();
    assert_eq!(due["fired"], serde_json::json!([]));
}

#[test]
fn a_webhook_secret_never_reaches_the_output_or_the_state() {
    let lab = quiet_lab();
    lab.repo
        .orch_stdin(
            &["vault", "put", "hooks", "github"],
            "wh-s3cret-never-shown",
        )
        .ok();
    lab.repo.write(
        "workflows/on-push.yaml",
        "inputs:\n  type: object\n  properties:\n    body: {}\njobs: []\ntriggers:\n  - webhook: { path: github/push, secret: \"${{ vault.get('hooks', 'github') }}\" }\n  - schedule: \"* * * * *\"\n",
    );
    let checked = orch(&lab, &["--json", "check"]).json();
    let problems = checked["problems"].as_array().unwrap();
    assert!(
        !problems
            .iter()
            .any(|p| p["file"] == "workflows/on-push.yaml"),
        "{checked}"
    );
    let list = orch(&lab, &["--json", "triggers", "list"]).ok();
    assert_eq!(list.json()["webhooks"][0]["path"], "/hooks/github/push");
    let due = orch(
        &lab,
        &[
            "--json",
            "triggers",
            "run-due",
            "--now",
            "2026-01-10T12:00:00Z",
        ],
    )
    .ok();
    assert_eq!(
        due.json()["fired"][0]["status"],
        "succeeded",
        "{}",
        due.all()
    );
    for out in [list.all(), due.all()] {
        assert!(!out.contains("wh-s3cret-never-shown"));
    }
    assert!(!support::contains_bytes(
        &lab.repo.orch_dir_bytes(),
        "wh-s3cret-never-shown"
    ));
}

#[test]
fn a_fire_while_the_previous_run_still_runs_is_skipped_and_a_killed_run_does_not_block() {
    let lab = quiet_lab();
    let path = lab.repo.path().join("workflows/sync-fleet.yaml");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("triggers:\n  - schedule: \"* * * * *\"\n");
    std::fs::write(&path, text).unwrap();

    // A Proxmox endpoint that accepts and never answers: the first run hangs in its auth step.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hang_url = format!("https://{}", listener.local_addr().unwrap());
    let (connected, accepted) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        if let Ok((stream, _)) = listener.accept() {
            let _ = connected.send(stream);
        }
    });
    let mut first = lab.repo.command(&[
        "--json",
        "triggers",
        "run-due",
        "--now",
        "2026-01-10T12:00:00Z",
    ]);
    first
        .env("PROXMOX_API_URL", &hang_url)
        .env("TZ", "UTC")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut first = first.spawn().unwrap();
    // A safety net only: the run connects as soon as it starts.
    let held = match accepted.recv_timeout(std::time::Duration::from_secs(120)) {
        Ok(stream) => stream,
        Err(_) => {
            let _ = first.kill();
            let out = first.wait_with_output().unwrap();
            panic!(
                "the first run never reached the endpoint:\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    };

    let second = run_due(&lab, "2026-01-10T12:01:00Z");
    assert_eq!(second["fired"][0]["outcome"], "skipped", "{second}");
    let list = orch(&lab, &["--json", "triggers", "list"]).ok().json();
    assert_eq!(list["schedules"][0]["skipped"], 1, "{list}");
    assert_eq!(
        list["schedules"][0]["lastSkipped"],
        "2026-01-10T12:01:00.000Z"
    );

    // The first run's process dies: its trigger is free again.
    first.kill().unwrap();
    first.wait().unwrap();
    drop(held);
    let third = run_due(&lab, "2026-01-10T12:02:00Z");
    assert_eq!(third["fired"][0]["outcome"], "started", "{third}");
    assert_eq!(third["fired"][0]["status"], "succeeded", "{third}");
}
