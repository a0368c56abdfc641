use std::sync::Arc;

use chrono::{DateTime, FixedOffset, Utc};
use serde_json::{Map, Value, json};
use tokio::sync::{mpsc, oneshot};

use super::*;
use crate::triggers::{BoxFuture, Launched, ManualClock};

fn at(text: &str) -> DateTime<Utc> {
    parse_time(text).unwrap()
}

fn zone() -> Zone {
    // UTC+2, so a test that read the schedule in UTC would fire two hours off.
    Zone::Fixed(FixedOffset::east_opt(2 * 3600).unwrap())
}

fn inputs() -> Map<String, Value> {
    json!({"vmName": "a"}).as_object().unwrap().clone()
}

/// One launch as the test sees it: the workflow, why, and the sender of the run's end.
type Launch = (String, Origin, oneshot::Sender<RunStatus>);

/// Records every launch and hands the test the sender of each run's end.
struct FakeLauncher {
    launches: mpsc::UnboundedSender<Launch>,
    next_id: std::sync::atomic::AtomicU64,
}

impl FakeLauncher {
    fn new() -> (Arc<FakeLauncher>, mpsc::UnboundedReceiver<Launch>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            Arc::new(FakeLauncher {
                launches: tx,
                next_id: Default::default(),
            }),
            rx,
        )
    }
}

impl Launcher for FakeLauncher {
    fn launch(
        &self,
        workflow: &str,
        _inputs: Map<String, Value>,
        origin: Origin,
    ) -> BoxFuture<'static, Result<Launched, String>> {
        let n = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let (done_tx, done) = oneshot::channel();
        let _ = self.launches.send((workflow.to_string(), origin, done_tx));
        Box::pin(async move {
            Ok(Launched {
                id: format!("run-{n}"),
                done,
            })
        })
    }
}

#[test]
fn cron_fires_at_the_local_time_of_its_zone() {
    let s = Scheduler::in_memory(&[("w", "30 3 * * *", inputs())], zone()).unwrap();
    let t = &s.inner.triggers[0];
    // 03:30 at UTC+2 is 01:30 UTC.
    assert_eq!(
        s.next_after(t, at("2026-01-10T00:00:00Z")),
        Some(at("2026-01-10T01:30:00Z"))
    );
    assert_eq!(
        s.next_after(t, at("2026-01-10T01:30:00Z")),
        Some(at("2026-01-11T01:30:00Z"))
    );
    assert_eq!(
        s.next_after(t, at("2026-01-10T01:29:59.750Z")),
        Some(at("2026-01-10T01:30:00Z")),
        "whole minutes, whatever the fraction of now"
    );
    let every2 = Scheduler::in_memory(&[("w", "*/2 * * * *", inputs())], zone()).unwrap();
    assert_eq!(
        every2.next_after(&every2.inner.triggers[0], at("2026-01-10T00:01:10Z")),
        Some(at("2026-01-10T00:02:00Z"))
    );
}

#[test]
fn a_schedule_is_due_at_its_minute_and_not_again_after_it_fired() {
    let s = Scheduler::in_memory(&[("w", "*/2 * * * *", inputs())], zone()).unwrap();
    assert!(s.due(at("2026-01-10T00:01:30Z")).is_empty(), "odd minute");
    let due = s.due(at("2026-01-10T00:02:20Z"));
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].at, "2026-01-10T00:02:00.000Z");
    assert_eq!(due[0].missed, None);
    // Handled: not due again within the same minute.
    lock(&s.inner.state)
        .triggers
        .entry(due[0].key.clone())
        .or_default()
        .last_fire = Some(due[0].at.clone());
    assert!(s.due(at("2026-01-10T00:02:50Z")).is_empty());
}

#[tokio::test]
async fn a_fire_while_the_previous_run_goes_on_is_skipped_and_counted() {
    let s = Scheduler::in_memory(&[("w", "* * * * *", inputs())], zone()).unwrap();
    let (launcher, mut launches) = FakeLauncher::new();
    let mut first = s
        .fire(s.due(at("2026-01-10T00:00:00Z")), launcher.clone())
        .await;
    assert_eq!(
        first[0].outcome,
        FiredOutcome::Started {
            run_id: "run-0".into()
        }
    );
    let (_, _, first_done) = launches.recv().await.unwrap();

    let fired = s
        .fire(s.due(at("2026-01-10T00:01:00Z")), launcher.clone())
        .await;
    assert_eq!(
        fired[0].outcome,
        FiredOutcome::Skipped {
            running: Some("run-0".into())
        }
    );
    assert!(launches.try_recv().is_err(), "nothing launched");
    let status = &s.status(at("2026-01-10T00:01:00Z"))[0];
    assert_eq!(status.skipped, 1);
    assert_eq!(
        status.last_skipped.as_deref(),
        Some("2026-01-10T00:01:00.000Z")
    );
    assert_eq!(status.last_status.as_deref(), Some("running"));

    first_done.send(RunStatus::Succeeded).unwrap();
    let ended = first[0].finished.take().unwrap().await.unwrap();
    assert_eq!(ended, RunStatus::Succeeded);
    let fired = s.fire(s.due(at("2026-01-10T00:02:00Z")), launcher).await;
    assert_eq!(
        fired[0].outcome,
        FiredOutcome::Started {
            run_id: "run-1".into()
        }
    );
    let status = &s.status(at("2026-01-10T00:02:00Z"))[0];
    assert_eq!(status.last_run_id.as_deref(), Some("run-1"));
    assert_eq!(status.skipped, 1);
}

#[tokio::test]
async fn a_finished_run_records_its_status() {
    let s = Scheduler::in_memory(&[("w", "* * * * *", inputs())], zone()).unwrap();
    let (launcher, mut launches) = FakeLauncher::new();
    let mut fired = s.fire(s.due(at("2026-01-10T00:00:00Z")), launcher).await;
    let (_, _, done) = launches.recv().await.unwrap();
    done.send(RunStatus::Failed).unwrap();
    let status = fired[0].finished.take().unwrap().await.unwrap();
    assert_eq!(status, RunStatus::Failed);
    let shown = &s.status(at("2026-01-10T00:00:30Z"))[0];
    assert_eq!(shown.last_status.as_deref(), Some("failed"));
    assert_eq!(shown.last_run.as_deref(), Some("2026-01-10T00:00:00.000Z"));
    assert_eq!(shown.next_run.as_deref(), Some("2026-01-10T00:01:00.000Z"));
}

#[tokio::test]
async fn missed_times_are_reported_once_and_never_run() {
    let s = Scheduler::in_memory(&[("w", "*/10 * * * *", inputs())], zone()).unwrap();
    let (launcher, mut launches) = FakeLauncher::new();
    s.fire(s.due(at("2026-01-10T00:00:00Z")), launcher.clone())
        .await;
    let (_, _, done) = launches.recv().await.unwrap();
    done.send(RunStatus::Succeeded).unwrap();
    // Down from 00:05 to 01:05: 00:10 … 01:00 passed unrun.
    let missed = s.missed_at_start(at("2026-01-10T01:05:00Z"));
    assert_eq!(
        missed,
        [MissedFires {
            workflow: "w".into(),
            trigger: "triggers[0]".into(),
            count: 6,
            first: "2026-01-10T00:10:00.000Z".into(),
            last: "2026-01-10T01:00:00.000Z".into(),
            more: false,
        }]
    );
    assert!(s.due(at("2026-01-10T01:05:00Z")).is_empty(), "not replayed");
    assert!(
        s.missed_at_start(at("2026-01-10T01:05:00Z")).is_empty(),
        "reported once"
    );
    assert_eq!(s.status(at("2026-01-10T01:05:00Z"))[0].missed, 6);
    // The next time fires as usual.
    assert_eq!(s.due(at("2026-01-10T01:10:05Z")).len(), 1);
}

#[test]
fn a_due_time_after_missed_ones_fires_and_carries_them() {
    let s = Scheduler::in_memory(&[("w", "* * * * *", inputs())], zone()).unwrap();
    lock(&s.inner.state)
        .triggers
        .entry("w/triggers[0]".into())
        .or_default()
        .last_fire = Some("2026-01-10T00:00:00.000Z".into());
    let due = s.due(at("2026-01-10T00:05:10Z"));
    assert_eq!(due[0].at, "2026-01-10T00:05:00.000Z");
    let missed = due[0].missed.as_ref().unwrap();
    assert_eq!(
        (missed.count, missed.first.as_str(), missed.last.as_str()),
        (4, "2026-01-10T00:01:00.000Z", "2026-01-10T00:04:00.000Z")
    );
}

#[test]
fn a_year_of_missed_minutes_is_counted_up_to_a_bound() {
    let s = Scheduler::in_memory(&[("w", "* * * * *", inputs())], zone()).unwrap();
    lock(&s.inner.state)
        .triggers
        .entry("w/triggers[0]".into())
        .or_default()
        .last_fire = Some("2025-01-10T00:00:00.000Z".into());
    let missed = s.missed_at_start(at("2026-01-10T00:00:30Z"));
    assert_eq!(missed[0].count, MAX_COUNTED);
    assert!(missed[0].more);
}

#[tokio::test]
async fn run_fires_each_time_the_manual_clock_reaches_and_stops_on_shutdown() {
    let s = Scheduler::in_memory(&[("w", "*/5 * * * *", inputs())], zone()).unwrap();
    let clock = Arc::new(ManualClock::new(at("2026-01-10T00:01:00Z")));
    let (launcher, mut launches) = FakeLauncher::new();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn({
        let (s, clock) = (s.clone(), clock.clone());
        async move {
            s.run(launcher, clock, async {
                let _ = stopped.await;
            })
            .await
        }
    });
    clock.set(at("2026-01-10T00:05:00Z"));
    let (workflow, origin, done) = launches.recv().await.unwrap();
    assert_eq!(workflow, "w");
    assert_eq!(
        origin,
        Origin::Schedule {
            trigger: "triggers[0]".into(),
            at: "2026-01-10T00:05:00.000Z".into()
        }
    );
    done.send(RunStatus::Succeeded).unwrap();
    clock.set(at("2026-01-10T00:10:00Z"));
    let (_, origin, _done) = launches.recv().await.unwrap();
    assert!(matches!(origin, Origin::Schedule { at, .. } if at == "2026-01-10T00:10:00.000Z"));
    stop.send(()).unwrap();
    task.await.unwrap();
}

#[test]
fn the_state_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("schedules.json");
    let mut state = ScheduleState::default();
    state.triggers.insert(
        "w/triggers[0]".into(),
        TriggerState {
            last_fire: Some("2026-01-10T00:00:00.000Z".into()),
            skipped: 2,
            ..Default::default()
        },
    );
    state.save(&path).unwrap();
    let loaded = ScheduleState::load(&path).unwrap();
    assert_eq!(loaded.triggers["w/triggers[0]"].skipped, 2);
    assert!(
        ScheduleState::load(&dir.path().join("none.json"))
            .unwrap()
            .triggers
            .is_empty()
    );
}

fn on_file(path: &std::path::Path) -> Scheduler {
    let trigger = schedule_trigger("w", 0, "* * * * *", inputs()).unwrap();
    Scheduler::build(
        vec![trigger],
        zone(),
        ScheduleState::load(path).unwrap(),
        Some(path.to_path_buf()),
    )
}

#[tokio::test]
async fn two_processes_on_one_state_file_fire_once_and_keep_each_others_counts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("schedules.json");
    let (a, b) = (on_file(&path), on_file(&path));
    let (launcher, mut launches) = FakeLauncher::new();
    let due_a = a.due(at("2026-01-10T00:00:00Z"));
    let due_b = b.due(at("2026-01-10T00:00:00Z"));
    let mut fired_a = a.fire(due_a, launcher.clone()).await;
    // B saw the time due before A fired it: the time is handled once.
    assert!(b.fire(due_b, launcher.clone()).await.is_empty());
    let (_, _, done) = launches.recv().await.unwrap();

    // B's skip of the next minute (A's run still going, by A's in-memory record) survives
    // A's write at the end of its run.
    b.update(|state| {
        let entry = state.triggers.get_mut("w/triggers[0]").unwrap();
        entry.skipped += 1;
    });
    done.send(RunStatus::Succeeded).unwrap();
    fired_a[0].finished.take().unwrap().await.unwrap();
    let shown = &b.status(at("2026-01-10T00:00:30Z"))[0];
    assert_eq!(shown.skipped, 1);
    assert_eq!(shown.last_status.as_deref(), Some("succeeded"));
}
