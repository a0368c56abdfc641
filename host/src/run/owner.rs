//! Which process runs a run. A run record names its process (pid, host, start time), so that
//! a later command can tell a run that is still going from one whose process was killed, and
//! mark the latter `abandoned` instead of showing it as `running` forever.

use std::sync::OnceLock;

use crate::store::{ResourceStore, RunOwner, RunRecord, RunStatus, StoreError, now_rfc3339};

/// Whether a run's process is alive, as far as this machine can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Liveness {
    /// The process is still running.
    Alive,
    /// The process is gone; says how that is known.
    Dead(String),
    /// The process is on another host, or this system offers no way to check.
    Unknown,
}

/// This process, as recorded in the runs it starts.
pub fn current_owner() -> RunOwner {
    static OWNER: OnceLock<RunOwner> = OnceLock::new();
    OWNER
        .get_or_init(|| {
            let pid = std::process::id();
            RunOwner {
                pid,
                host: host_name(),
                start_ticks: process_stat(pid).map(|s| s.start_ticks),
                boot_id: boot_id(),
            }
        })
        .clone()
}

/// Whether the process that recorded `owner` is still alive.
pub fn liveness(owner: Option<&RunOwner>) -> Liveness {
    let Some(owner) = owner else {
        // Only an orch from before owners were recorded writes a running run without one;
        // if that run were still going, its end would simply overwrite this verdict.
        return Liveness::Dead(
            "it was started by an older orch that did not record its process".to_string(),
        );
    };
    let me = current_owner();
    if owner.host != me.host {
        return Liveness::Unknown;
    }
    let who = format!("process {} on {}", owner.pid, owner.host);
    if let (Some(then), Some(now)) = (&owner.boot_id, &me.boot_id)
        && then != now
    {
        return Liveness::Dead(format!("{who} ended: the machine restarted since"));
    }
    if me.start_ticks.is_none() {
        // No /proc here: nothing to check against.
        return Liveness::Unknown;
    }
    match process_stat(owner.pid) {
        None => Liveness::Dead(format!("{who} ended")),
        Some(stat) if matches!(stat.state, 'Z' | 'X' | 'x') => {
            Liveness::Dead(format!("{who} ended"))
        }
        Some(stat) if owner.start_ticks.is_some_and(|t| t != stat.start_ticks) => Liveness::Dead(
            format!("{who} ended (its pid now belongs to another process)"),
        ),
        Some(_) => Liveness::Alive,
    }
}

/// A listed or shown run as it really stands: a `running` run whose process is gone is
/// marked `abandoned` in the store (and in the returned record).
pub fn settle(store: &ResourceStore, record: RunRecord) -> RunRecord {
    if record.status != RunStatus::Running {
        return record;
    }
    let Liveness::Dead(why) = liveness(record.owner.as_ref()) else {
        return record;
    };
    let reason = abandoned_reason(&why);
    let finished_at = now_rfc3339();
    match store.abandon_run(&record.id, record.owner.as_ref(), &finished_at, &reason) {
        Ok(Some(stored)) => stored,
        Ok(None) | Err(_) => {
            // The verdict stands even if it could not be stored now; the next look stores it.
            let mut shown = record;
            shown.status = RunStatus::Abandoned;
            shown.finished_at = Some(finished_at);
            shown.error = Some(reason);
            shown
        }
    }
}

/// Marks every `running` run whose process is gone as `abandoned`; returns how many.
pub fn reap_abandoned(store: &ResourceStore) -> Result<usize, StoreError> {
    let mut reaped = 0;
    for (id, owner) in store.active_runs()? {
        if let Liveness::Dead(why) = liveness(owner.as_ref()) {
            let reason = abandoned_reason(&why);
            let record = store.abandon_run(&id, owner.as_ref(), &now_rfc3339(), &reason)?;
            if record.is_some_and(|r| r.status == RunStatus::Abandoned) {
                reaped += 1;
            }
        }
    }
    Ok(reaped)
}

fn abandoned_reason(why: &str) -> String {
    format!(
        "abandoned: {why} before the run recorded its end (killed or crashed); \
         its steps may have done part of their work, so check the data it touches"
    )
}

/// The fields of `/proc/<pid>/stat` that identify a process.
struct ProcStat {
    /// Field 3: R, S, D, Z (zombie), X (dead), ...
    state: char,
    /// Field 22: start time in clock ticks after boot.
    start_ticks: u64,
}

fn process_stat(pid: u32) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

/// Parses `pid (comm) state ppid ...`; `comm` may hold spaces and parentheses, so the fields
/// are counted from the last `)`.
fn parse_stat(text: &str) -> Option<ProcStat> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3, so field n is fields[n - 3].
    Some(ProcStat {
        state: fields.first()?.chars().next()?,
        start_ticks: fields.get(22 - 3)?.parse().ok()?,
    })
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let line = "4242 (orch (x) y) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 3 0 98765 \
                    1000 10 18446744073709551615";
        let stat = parse_stat(line).expect("parses");
        assert_eq!(stat.state, 'S');
        assert_eq!(stat.start_ticks, 98765);
        assert!(parse_stat("garbage").is_none());
    }

    #[test]
    fn this_process_is_alive_and_a_reused_pid_is_not() {
        let me = current_owner();
        assert_eq!(liveness(Some(&me)), Liveness::Alive);
        let reused = RunOwner {
            start_ticks: me.start_ticks.map(|t| t + 1),
            ..me.clone()
        };
        assert!(matches!(liveness(Some(&reused)), Liveness::Dead(_)));
        let elsewhere = RunOwner {
            host: format!("{}-elsewhere", me.host),
            ..me.clone()
        };
        assert_eq!(liveness(Some(&elsewhere)), Liveness::Unknown);
        let rebooted = RunOwner {
            boot_id: Some("another-boot".to_string()),
            ..me
        };
        assert!(matches!(liveness(Some(&rebooted)), Liveness::Dead(_)));
        assert!(matches!(liveness(None), Liveness::Dead(_)));
    }

    fn running(owner: RunOwner) -> RunRecord {
        RunRecord {
            id: crate::store::new_run_id(),
            kind: "workflow".to_string(),
            target: "sync".to_string(),
            status: RunStatus::Running,
            started_at: now_rfc3339(),
            finished_at: None,
            duration_ms: None,
            inputs: serde_json::json!({}),
            steps: Vec::new(),
            events: Vec::new(),
            error: None,
            owner: Some(owner),
            outcomes: Vec::new(),
            waiting: Vec::new(),
            resumed_from: None,
        }
    }

    #[test]
    fn the_next_run_marks_runs_of_dead_processes_abandoned_and_leaves_live_ones() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ResourceStore::new(
            dir.path().join(".orch/data.redb"),
            crate::store::StoreOptions::default(),
        );
        let me = current_owner();
        let live = running(me.clone());
        let dead = running(RunOwner {
            start_ticks: me.start_ticks.map(|t| t + 1),
            ..me.clone()
        });
        let remote = running(RunOwner {
            host: format!("{}-elsewhere", me.host),
            ..me
        });
        for r in [&live, &dead, &remote] {
            store.put_run(r).expect("put");
        }
        assert_eq!(reap_abandoned(&store).expect("reap"), 1);
        let status = |id: &str| store.get_run(id).expect("get").expect("run").status;
        assert_eq!(status(&dead.id), RunStatus::Abandoned);
        assert_eq!(status(&live.id), RunStatus::Running);
        assert_eq!(status(&remote.id), RunStatus::Running);
        let dead = store.get_run(&dead.id).expect("get").expect("run");
        assert!(
            dead.error
                .as_deref()
                .unwrap_or_default()
                .contains("killed or crashed"),
            "{dead:?}"
        );
        assert_eq!(reap_abandoned(&store).expect("again"), 0);

        // `runs list` and `runs show` settle what they display the same way.
        let shown = settle(
            &store,
            running(RunOwner {
                pid: u32::MAX,
                ..current_owner()
            }),
        );
        assert_eq!(shown.status, RunStatus::Abandoned);
        assert_eq!(settle(&store, live.clone()).status, RunStatus::Running);
    }
}
