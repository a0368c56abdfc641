//! Cron schedules of workflows: which are due, firing them one run at a time per trigger, and
//! reporting the times missed while nothing ran the schedules (reported, never replayed).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, FixedOffset, Local, TimeDelta, TimeZone, Timelike, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

use super::state::{InFlight, ScheduleState, TriggerState};
use super::{Clock, Launcher, Origin, parse_time, rfc3339};
use crate::repo::Repo;
use crate::run::{Liveness, current_owner, liveness};
use crate::store::RunStatus;
use crate::workflow::{Trigger, parse_cron};

/// A scheduled time fires only if it is found within this long after it; an older one is
/// missed (a late `run-due`, a server that was down) and reported instead of run late.
const GRACE: TimeDelta = TimeDelta::seconds(60);

/// At most this many missed times are counted per trigger and look (an every-minute schedule
/// left for a year would otherwise be walked half a million times).
const MAX_COUNTED: u64 = 10_000;

/// The time zone schedules are read in.
#[derive(Clone, Copy, Debug)]
pub enum Zone {
    /// The machine's local time zone (what users mean by "at 3 o'clock").
    Local,
    /// A fixed offset (tests, or a server told to use one).
    Fixed(FixedOffset),
}

/// One schedule of one workflow.
#[derive(Clone, Debug)]
struct ScheduleTrigger {
    /// `<workflow>/triggers[<i>]`: the key of its state.
    key: String,
    workflow: String,
    /// `triggers[<i>]`.
    trigger: String,
    schedule: String,
    cron: croner::Cron,
    inputs: Map<String, Value>,
}

/// A schedule due now, with the times it missed before.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Due {
    /// The workflow to run.
    pub workflow: String,
    /// The trigger, e.g. `triggers[0]`.
    pub trigger: String,
    /// The scheduled time that fires (RFC 3339).
    pub at: String,
    /// The trigger's inputs.
    pub inputs: Map<String, Value>,
    /// Earlier times that were missed and are not run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missed: Option<MissedFires>,
    #[serde(skip)]
    key: String,
}

/// Scheduled times of one trigger that passed while nothing ran the schedules.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MissedFires {
    /// The workflow.
    pub workflow: String,
    /// The trigger, e.g. `triggers[0]`.
    pub trigger: String,
    /// How many times were missed (at least this many when `more` is set).
    pub count: u64,
    /// The first missed time (RFC 3339).
    pub first: String,
    /// The last missed time (RFC 3339).
    pub last: String,
    /// More were missed than were counted.
    pub more: bool,
}

/// How a due schedule was handled.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    tag = "outcome"
)]
pub enum FiredOutcome {
    /// A run started.
    Started {
        /// Its id.
        run_id: String,
    },
    /// The previous run of the trigger was still going; nothing started.
    Skipped {
        /// That run's id, when known.
        #[serde(skip_serializing_if = "Option::is_none")]
        running: Option<String>,
    },
    /// The run could not start.
    Failed {
        /// Why.
        error: String,
    },
}

/// A due schedule, handled.
#[derive(Debug)]
pub struct Fired {
    /// What was due.
    pub due: Due,
    /// What happened.
    pub outcome: FiredOutcome,
    /// For a started run: resolves with its final status once it has been recorded.
    pub finished: Option<tokio::task::JoinHandle<RunStatus>>,
}

/// One schedule as `GET /api/v1/schedules` and `orch triggers list --json` show it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleStatus {
    /// The workflow.
    pub workflow: String,
    /// The trigger, e.g. `triggers[0]`.
    pub trigger: String,
    /// The cron expression.
    pub schedule: String,
    /// When the last run was scheduled (RFC 3339).
    pub last_run: Option<String>,
    /// The last run's id.
    pub last_run_id: Option<String>,
    /// The last run's status (`running` while it goes on).
    pub last_status: Option<String>,
    /// The next scheduled time (RFC 3339).
    pub next_run: Option<String>,
    /// Fires skipped because the previous run was still going.
    pub skipped: u64,
    /// The last skipped fire (RFC 3339).
    pub last_skipped: Option<String>,
    /// Scheduled times missed while nothing ran the schedules.
    pub missed: u64,
}

/// Looks up a run's status (the store, in practice), to tell whether a run is still going.
pub type RunLookup = Arc<dyn Fn(&str) -> Option<RunStatus> + Send + Sync>;

/// A [`RunLookup`] over the store: a `running` run whose process is gone counts as abandoned
/// (and is marked so), never as still going.
pub fn store_lookup(store: crate::store::ResourceStore) -> RunLookup {
    Arc::new(move |id: &str| {
        let record = store.get_run(id).ok().flatten()?;
        Some(crate::run::settle(&store, record).status)
    })
}

struct Inner {
    triggers: Vec<ScheduleTrigger>,
    zone: Zone,
    state: Mutex<ScheduleState>,
    /// Where the state is kept; `None` keeps it in memory (tests).
    path: Option<PathBuf>,
    /// Triggers whose run this process started and has not seen end.
    running: Mutex<BTreeSet<String>>,
    lookup: Option<RunLookup>,
}

/// The schedules of a repository, with their state. Cloning shares it.
#[derive(Clone)]
pub struct Scheduler {
    inner: Arc<Inner>,
}

impl Scheduler {
    /// The schedules of every workflow in `repo`, with the state kept in `.orch/schedules.json`.
    /// Schedules whose cron does not parse are left out (`orch check` reports them).
    pub fn load(repo: &Repo, zone: Zone) -> Result<Scheduler, String> {
        let path = repo.orch_dir().join(super::STATE_FILE);
        let state = ScheduleState::load(&path)?;
        Ok(Scheduler::build(
            repo_schedules(repo),
            zone,
            state,
            Some(path),
        ))
    }

    /// Schedules kept in memory only: `(workflow, cron, inputs)` in trigger order.
    pub fn in_memory(
        schedules: &[(&str, &str, Map<String, Value>)],
        zone: Zone,
    ) -> Result<Scheduler, String> {
        let mut triggers = Vec::new();
        for (i, (workflow, schedule, inputs)) in schedules.iter().enumerate() {
            triggers.push(schedule_trigger(workflow, i, schedule, inputs.clone())?);
        }
        Ok(Scheduler::build(
            triggers,
            zone,
            ScheduleState::default(),
            None,
        ))
    }

    fn build(
        triggers: Vec<ScheduleTrigger>,
        zone: Zone,
        state: ScheduleState,
        path: Option<PathBuf>,
    ) -> Scheduler {
        Scheduler {
            inner: Arc::new(Inner {
                triggers,
                zone,
                state: Mutex::new(state),
                path,
                running: Mutex::new(BTreeSet::new()),
                lookup: None,
            }),
        }
    }

    /// Tells the scheduler how to look a run up, so a run started by another process (an
    /// earlier `run-due`, a server) that is still `running` skips the next fire.
    pub fn with_run_lookup(self, lookup: RunLookup) -> Scheduler {
        let inner = Arc::try_unwrap(self.inner).unwrap_or_else(|shared| Inner {
            triggers: shared.triggers.clone(),
            zone: shared.zone,
            state: Mutex::new(lock(&shared.state).clone()),
            path: shared.path.clone(),
            running: Mutex::new(lock(&shared.running).clone()),
            lookup: None,
        });
        Scheduler {
            inner: Arc::new(Inner {
                lookup: Some(lookup),
                ..inner
            }),
        }
    }

    /// How many schedules there are.
    pub fn len(&self) -> usize {
        self.inner.triggers.len()
    }

    /// Whether there are no schedules.
    pub fn is_empty(&self) -> bool {
        self.inner.triggers.is_empty()
    }

    /// The schedules due at `now`: each fires its latest scheduled time since its last fire if
    /// that time is under a minute old; older ones come along as missed. A schedule never
    /// handled before starts one minute before `now`, so it never catches up on history.
    pub fn due(&self, now: DateTime<Utc>) -> Vec<Due> {
        self.refresh();
        let state = lock(&self.inner.state);
        self.inner
            .triggers
            .iter()
            .filter_map(|t| {
                let (fire, missed) = self.look(t, state.triggers.get(&t.key), now);
                fire.map(|at| Due {
                    workflow: t.workflow.clone(),
                    trigger: t.trigger.clone(),
                    at: rfc3339(at),
                    inputs: t.inputs.clone(),
                    missed,
                    key: t.key.clone(),
                })
            })
            .collect()
    }

    /// The scheduled times that passed, unrun, while nothing ran the schedules (at a server's
    /// start): logged, counted and marked handled, so they are reported once and never run.
    /// The time due now, if any, is left to fire.
    pub fn missed_at_start(&self, now: DateTime<Utc>) -> Vec<MissedFires> {
        self.update(|state| {
            let mut reports = Vec::new();
            for t in &self.inner.triggers {
                let (_, missed) = self.look(t, state.triggers.get(&t.key), now);
                let Some(missed) = missed else { continue };
                let entry = state.triggers.entry(t.key.clone()).or_default();
                entry.missed += missed.count;
                entry.last_fire = Some(missed.last.clone());
                log_missed(&missed);
                reports.push(missed);
            }
            reports
        })
    }

    /// Fires `due` (from [`Scheduler::due`]): a trigger whose previous run is still going is
    /// skipped and counted; the others start through `launcher`, all at once. A time another
    /// process has handled meanwhile is dropped. Returns once every run has started (or failed
    /// to); each started run's `finished` resolves when it ends and its status is recorded.
    pub async fn fire(&self, due: Vec<Due>, launcher: Arc<dyn Launcher>) -> Vec<Fired> {
        let mut launches = Vec::new();
        let mut fired = Vec::new();
        for d in due {
            let decision = self.update(|state| {
                let entry = state.triggers.entry(d.key.clone()).or_default();
                let handled = entry
                    .last_fire
                    .as_deref()
                    .and_then(|t| parse_time(t).ok())
                    .zip(parse_time(&d.at).ok())
                    .is_some_and(|(last, at)| last >= at);
                if handled {
                    return None;
                }
                // Times handled here, fired or not, are never fired again.
                if let Some(missed) = &d.missed {
                    entry.missed += missed.count;
                    log_missed(missed);
                }
                entry.last_fire = Some(d.at.clone());
                let running = self.still_running(&d.key, entry);
                match &running {
                    Some(id) => {
                        entry.skipped += 1;
                        entry.last_skipped = Some(d.at.clone());
                        tracing::warn!(
                            workflow = %d.workflow,
                            trigger = %d.trigger,
                            at = %d.at,
                            running = id.as_deref().unwrap_or("?"),
                            "schedule skipped: the previous run of this trigger is still going"
                        );
                    }
                    None => {
                        entry.in_flight = Some(InFlight {
                            owner: current_owner(),
                            run_id: None,
                        });
                        lock(&self.inner.running).insert(d.key.clone());
                    }
                }
                Some(running)
            });
            match decision {
                None => {}
                Some(Some(id)) => fired.push(Fired {
                    due: d,
                    outcome: FiredOutcome::Skipped { running: id },
                    finished: None,
                }),
                Some(None) => {
                    let origin = Origin::Schedule {
                        trigger: d.trigger.clone(),
                        at: d.at.clone(),
                    };
                    let launch = launcher.launch(&d.workflow, d.inputs.clone(), origin);
                    launches.push(async move { (d, launch.await) });
                }
            }
        }
        for (d, result) in futures_util::future::join_all(launches).await {
            fired.push(self.started(d, result));
        }
        fired
    }

    /// Records how a launch went and, for a run, waits for its end in the background.
    fn started(&self, d: Due, result: Result<super::Launched, String>) -> Fired {
        match result {
            Err(error) => {
                self.update(|state| {
                    let entry = state.triggers.entry(d.key.clone()).or_default();
                    entry.last_run = Some(d.at.clone());
                    entry.in_flight = None;
                    entry.last_run_id = None;
                    entry.last_status = Some(format!("not started: {error}"));
                });
                lock(&self.inner.running).remove(&d.key);
                tracing::warn!(workflow = %d.workflow, trigger = %d.trigger, %error, "scheduled run could not start");
                Fired {
                    due: d,
                    outcome: FiredOutcome::Failed { error },
                    finished: None,
                }
            }
            Ok(launched) => {
                self.update(|state| {
                    let entry = state.triggers.entry(d.key.clone()).or_default();
                    entry.last_run = Some(d.at.clone());
                    entry.last_run_id = Some(launched.id.clone());
                    entry.last_status = Some(RunStatus::Running.as_str().to_string());
                    if let Some(flight) = &mut entry.in_flight {
                        flight.run_id = Some(launched.id.clone());
                    }
                });
                let this = self.clone();
                let (key, id) = (d.key.clone(), launched.id.clone());
                let finished = tokio::spawn(async move {
                    let status = launched.done.await.unwrap_or(RunStatus::Failed);
                    this.ended(&key, &id, status);
                    status
                });
                Fired {
                    due: d,
                    outcome: FiredOutcome::Started {
                        run_id: launched.id,
                    },
                    finished: Some(finished),
                }
            }
        }
    }

    fn ended(&self, key: &str, id: &str, status: RunStatus) {
        self.update(|state| {
            let entry = state.triggers.entry(key.to_string()).or_default();
            if entry.last_run_id.as_deref() == Some(id) {
                entry.last_status = Some(status.as_str().to_string());
                entry.in_flight = None;
            }
        });
        lock(&self.inner.running).remove(key);
    }

    /// Changes the state: under the state file's lock, re-read, changed and written back, so
    /// two processes (a server and a `run-due`, two `run-due`s) never undo each other's change.
    fn update<R>(&self, change: impl FnOnce(&mut ScheduleState) -> R) -> R {
        let mut cached = lock(&self.inner.state);
        let Some(path) = &self.inner.path else {
            return change(&mut cached);
        };
        let _held = super::state::FileLock::acquire(path);
        let mut state = ScheduleState::load(path).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "using the schedule state in memory");
            cached.clone()
        });
        let out = change(&mut state);
        if let Err(e) = state.save(path) {
            tracing::warn!(error = %e, "could not save the schedule state");
        }
        *cached = state;
        out
    }

    /// Re-reads the state file, for what other processes changed.
    fn refresh(&self) {
        let Some(path) = &self.inner.path else { return };
        if let Ok(state) = ScheduleState::load(path) {
            *lock(&self.inner.state) = state;
        }
    }

    /// `Some(run id if known)` when the trigger's previous run is still going.
    fn still_running(&self, key: &str, entry: &mut TriggerState) -> Option<Option<String>> {
        if lock(&self.inner.running).contains(key) {
            return Some(entry.last_run_id.clone());
        }
        let flight = entry.in_flight.clone()?;
        if flight.owner == current_owner() {
            // Our own runs are all in `running`: this one is from an earlier life of the pid.
            entry.in_flight = None;
            return None;
        }
        let going = match (&flight.run_id, &self.inner.lookup) {
            (Some(id), Some(lookup)) => lookup(id) == Some(RunStatus::Running),
            // The id is not known yet (the run is starting) or cannot be looked up: the
            // process that started it stands for it.
            _ => !matches!(liveness(Some(&flight.owner)), Liveness::Dead(_)),
        };
        if going {
            Some(flight.run_id)
        } else {
            entry.in_flight = None;
            None
        }
    }

    /// Every schedule with its last run, next run and skipped count.
    pub fn status(&self, now: DateTime<Utc>) -> Vec<ScheduleStatus> {
        self.refresh();
        let state = lock(&self.inner.state);
        self.inner
            .triggers
            .iter()
            .map(|t| {
                let s = state.triggers.get(&t.key).cloned().unwrap_or_default();
                ScheduleStatus {
                    workflow: t.workflow.clone(),
                    trigger: t.trigger.clone(),
                    schedule: t.schedule.clone(),
                    last_run: s.last_run,
                    last_run_id: s.last_run_id,
                    last_status: s.last_status,
                    next_run: self.next_after(t, now).map(rfc3339),
                    skipped: s.skipped,
                    last_skipped: s.last_skipped,
                    missed: s.missed,
                }
            })
            .collect()
    }

    /// Runs the schedules until `shutdown` resolves: reports the missed times, then fires each
    /// schedule at its time. Runs go on in the background; `shutdown` stops only the firing.
    pub async fn run(
        &self,
        launcher: Arc<dyn Launcher>,
        clock: Arc<dyn Clock>,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        self.missed_at_start(clock.now());
        loop {
            let now = clock.now();
            let due = self.due(now);
            if !due.is_empty() {
                self.fire(due, launcher.clone()).await;
            }
            let next = self
                .inner
                .triggers
                .iter()
                .filter_map(|t| self.next_after(t, now))
                .min();
            let Some(next) = next else {
                shutdown.await;
                return;
            };
            tokio::select! {
                () = clock.sleep_until(next) => {}
                () = &mut shutdown => return,
            }
        }
    }

    /// The time `t` fires now (if any) and the times it missed before, given its state.
    fn look(
        &self,
        t: &ScheduleTrigger,
        state: Option<&TriggerState>,
        now: DateTime<Utc>,
    ) -> (Option<DateTime<Utc>>, Option<MissedFires>) {
        let since = state
            .and_then(|s| s.last_fire.as_deref())
            .and_then(|s| parse_time(s).ok())
            .unwrap_or(now - GRACE);
        let mut times: Vec<DateTime<Utc>> = Vec::new();
        let mut count = 0u64;
        let mut more = false;
        let mut cursor = since;
        while let Some(next) = self.next_after(t, cursor) {
            if next > now {
                break;
            }
            if count == MAX_COUNTED {
                more = true;
                // Jump to the end: only the latest time can still fire.
                if let Some(latest) = self.latest_at_or_before(t, now) {
                    times.push(latest);
                }
                break;
            }
            count += 1;
            // Keep the first, the last and the one before it.
            if times.len() == 3 {
                times.remove(1);
            }
            times.push(next);
            cursor = next;
        }
        let Some(&latest) = times.last() else {
            return (None, None);
        };
        let fire = (now - latest < GRACE).then_some(latest);
        // With `more`, the latest time was not among those counted.
        let missed_count = if fire.is_some() && !more {
            count.saturating_sub(1)
        } else {
            count
        };
        let missed_times: Vec<DateTime<Utc>> = if fire.is_some() {
            times[..times.len() - 1].to_vec()
        } else {
            times.clone()
        };
        let missed = (missed_count > 0 && !missed_times.is_empty()).then(|| MissedFires {
            workflow: t.workflow.clone(),
            trigger: t.trigger.clone(),
            count: missed_count,
            first: rfc3339(missed_times[0]),
            last: rfc3339(*missed_times.last().unwrap_or(&missed_times[0])),
            more,
        });
        (fire, missed)
    }

    /// The first scheduled time of `t` strictly after `after`.
    fn next_after(&self, t: &ScheduleTrigger, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self.inner.zone {
            Zone::Local => next_in(&t.cron, after.with_timezone(&Local)),
            Zone::Fixed(offset) => next_in(&t.cron, after.with_timezone(&offset)),
        }
    }

    fn latest_at_or_before(&self, t: &ScheduleTrigger, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let found = match self.inner.zone {
            Zone::Local => t
                .cron
                .find_previous_occurrence(&at.with_timezone(&Local), true)
                .map(|d| d.with_timezone(&Utc)),
            Zone::Fixed(offset) => t
                .cron
                .find_previous_occurrence(&at.with_timezone(&offset), true)
                .map(|d| d.with_timezone(&Utc)),
        };
        found.ok()
    }
}

fn next_in<Tz: TimeZone>(cron: &croner::Cron, after: DateTime<Tz>) -> Option<DateTime<Utc>> {
    // croner keeps the start's fraction of a second; schedules are whole minutes.
    let after = after.with_nanosecond(0)?;
    cron.find_next_occurrence(&after, false)
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

fn log_missed(missed: &MissedFires) {
    tracing::warn!(
        workflow = %missed.workflow,
        trigger = %missed.trigger,
        count = missed.count,
        first = %missed.first,
        last = %missed.last,
        "scheduled runs missed while nothing ran the schedules; they are not run late"
    );
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn schedule_trigger(
    workflow: &str,
    index: usize,
    schedule: &str,
    inputs: Map<String, Value>,
) -> Result<ScheduleTrigger, String> {
    let trigger = format!("triggers[{index}]");
    Ok(ScheduleTrigger {
        key: format!("{workflow}/{trigger}"),
        workflow: workflow.to_string(),
        trigger,
        schedule: schedule.to_string(),
        cron: parse_cron(schedule)?,
        inputs,
    })
}

/// Every parsable schedule of every loaded workflow, with the workflow's input defaults.
fn repo_schedules(repo: &Repo) -> Vec<ScheduleTrigger> {
    let mut out = Vec::new();
    for wf in repo.workflows.values() {
        for (i, trigger) in wf.triggers.iter().enumerate() {
            if let Trigger::Schedule { schedule, inputs } = trigger {
                let mut inputs = inputs.clone();
                crate::workflow::apply_input_defaults(wf, &mut inputs);
                if let Ok(t) = schedule_trigger(&wf.name, i, schedule, inputs) {
                    out.push(t);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
