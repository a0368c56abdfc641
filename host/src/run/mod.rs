//! A run: one execution of a workflow or a single method, recorded in the store with its steps,
//! timings and events (redacted). The run record is written when the run starts and again when
//! it ends. It names the process running it, so a run whose process died is found (by the next
//! run, `runs list` or `runs show`) and marked `abandoned` instead of staying `running`.

mod cancel;
mod executor;
mod lifecycle;
mod owner;
mod start;

pub use cancel::{CANCELLED_EXIT_CODE, CancelToken, cancel_on_signals, cancel_runs};
pub use lifecycle::{WAITING_EXIT_CODE, cancel_waiting, find_waiting_step};
pub use owner::{Liveness, current_owner, liveness, reap_abandoned, settle};
pub use start::StartRecord;

use crate::capabilities::{KnownHosts, SshSessionPool};
use crate::expr::Evaluator;
use crate::method::{MethodCall, MethodRunner};
use crate::output::{Event, EventSink, Printer};
use crate::repo::Repo;
use crate::runtime::PluginRegistry;
use crate::store::{
    RecordedOutcome, ResourceStore, RunRecord, RunStatus, StepRecord, WaitingStep, new_run_id,
    now_rfc3339,
};
use crate::vault::{LocalVault, Redactor};
use crate::workflow;
use executor::Executor;
use serde_json::{Map, Value};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// What a run needs from the process: the repo, its plugins, store and vault.
#[derive(Clone)]
pub struct RunEnv {
    /// The repository.
    pub repo: Arc<Repo>,
    /// Installed plugins.
    pub registry: Arc<PluginRegistry>,
    /// The data store.
    pub store: ResourceStore,
    /// The vault.
    pub vault: Arc<LocalVault>,
    /// Where live events are shown.
    pub printer: Printer,
    /// `--tag k=v` of the command line, stored on every version the run writes.
    pub tags: crate::store::Tags,
    /// Also shown every event of the runs of this env, redacted, as the JSON of `--json`
    /// (`orch serve` keeps them for live streams).
    pub observer: Option<EventObserver>,
}

/// Receives each event of a run as it happens: the run id and the event's JSON (redacted).
pub type EventObserver = Arc<dyn Fn(&str, &Value) + Send + Sync>;

/// Told once whether a run's start record was committed: `None`, or why it could not be.
pub type OnRecorded = Arc<dyn Fn(Option<String>) + Send + Sync>;

/// A run a caller starts under an id it made beforehand ([`new_run_id`]), cancelled by
/// `cancel`: the caller can hand out the id before the run is recorded, or wait for
/// `on_recorded` to hand it out only once `orch runs show` finds it.
#[derive(Clone)]
pub struct RunHandle {
    /// The run's id.
    pub id: String,
    /// Cancels this run alone.
    pub cancel: CancelToken,
    /// Called once the run's start record is committed, or could not be.
    pub on_recorded: Option<OnRecorded>,
}

impl std::fmt::Debug for RunHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunHandle")
            .field("id", &self.id)
            .field("cancel", &self.cancel)
            .field("on_recorded", &self.on_recorded.is_some())
            .finish()
    }
}

impl RunHandle {
    /// A handle with a new run id and a new cancel token.
    pub fn new() -> RunHandle {
        RunHandle {
            id: new_run_id(),
            cancel: CancelToken::new(),
            on_recorded: None,
        }
    }
}

impl Default for RunHandle {
    fn default() -> Self {
        RunHandle::new()
    }
}

/// Shared state of one run: the runner, the step records.
pub(crate) struct RunState {
    pub runner: MethodRunner,
    pub steps: Mutex<Vec<StepRecord>>,
    /// `orch run --dry-run`: converge steps plan, read steps run, other steps only say what
    /// they would call.
    pub dry_run: bool,
    /// Method calls and asserts in flight across the whole run (nested workflows and forEach
    /// items included) stay within `orch.yaml`'s `concurrency`.
    pub call_slots: tokio::sync::Semaphore,
    /// How each top-level step ended (preloaded ones included).
    pub outcomes: Mutex<Vec<RecordedOutcome>>,
    /// The `manual_approval` steps waiting for a decision.
    pub waiting: Mutex<Vec<WaitingStep>>,
    /// Events recorded by the earlier part of a run that waited, kept before this part's.
    pub prior_events: Vec<Value>,
    /// Cancels this run only (a signal cancels every run in flight).
    pub cancel: CancelToken,
    /// The queue connection for steps with `runsOn`, made when the first one starts.
    pub queue: crate::worker::QueueSlot,
}

/// What an earlier part of a run left for this one: step records, outcomes, waiting steps.
#[derive(Default)]
pub(crate) struct Prior {
    /// Step records so far.
    pub steps: Vec<StepRecord>,
    /// Outcomes of the top-level steps that finished.
    pub outcomes: Vec<RecordedOutcome>,
    /// Steps still waiting for a decision.
    pub waiting: Vec<WaitingStep>,
    /// The run's events so far.
    pub events: Vec<Value>,
}

impl RunEnv {
    fn start(
        &self,
        kind: &str,
        target: &str,
        inputs: &Map<String, Value>,
        dry_run: bool,
        handle: RunHandle,
    ) -> (Arc<RunState>, RunRecord, Instant) {
        let RunHandle {
            id,
            cancel,
            on_recorded,
        } = handle;
        let record = RunRecord {
            id,
            kind: kind.to_string(),
            target: target.to_string(),
            status: RunStatus::Running,
            started_at: now_rfc3339(),
            finished_at: None,
            duration_ms: None,
            inputs: Value::Object(inputs.clone()),
            steps: Vec::new(),
            events: Vec::new(),
            error: None,
            owner: Some(current_owner()),
            outcomes: Vec::new(),
            waiting: Vec::new(),
            resumed_from: None,
        };
        let started = StartRecord::spawn(self.store.clone(), record.clone(), on_recorded);
        self.begin(record, started, dry_run, Prior::default(), cancel)
    }

    /// Sets up the state of a run whose record is (being) stored as `running`; `cancel`
    /// cancels it.
    fn begin(
        &self,
        record: RunRecord,
        started: StartRecord,
        dry_run: bool,
        prior: Prior,
        cancel: CancelToken,
    ) -> (Arc<RunState>, RunRecord, Instant) {
        let run_id = record.id.clone();
        let (kind, target) = (record.kind.clone(), record.target.clone());
        let redactor = Redactor::default();
        let printer = self.printer.clone();
        let observer = self.observer.clone();
        let (observed_id, observed_redactor) = (run_id.clone(), redactor.clone());
        let events = EventSink::new(
            redactor,
            Arc::new(move |e: &Event| {
                printer.event(e);
                if let (Some(observer), Ok(mut json)) = (&observer, serde_json::to_value(e)) {
                    observed_redactor.redact_json(&mut json);
                    observer(&observed_id, &json);
                }
            }),
        );
        let runner = MethodRunner {
            started,
            repo: self.repo.clone(),
            registry: self.registry.clone(),
            store: self.store.clone(),
            evaluator: Arc::new(Evaluator::new()),
            vault: self.vault.clone(),
            events: events.clone(),
            run_id: run_id.clone(),
            ssh: SshSessionPool::new(KnownHosts::in_dir(&self.repo.orch_dir())),
            tags: self.tags.clone(),
            claim: None,
        };
        events.emit(Event::RunStarted {
            run_id: run_id.clone(),
            kind,
            target,
        });
        // A continued run counts the time its earlier part took.
        let earlier = std::time::Duration::from_millis(record.duration_ms.unwrap_or(0));
        let now = Instant::now();
        (
            Arc::new(RunState {
                runner,
                steps: Mutex::new(prior.steps),
                dry_run,
                call_slots: tokio::sync::Semaphore::new(self.repo.config.concurrency.max(1)),
                outcomes: Mutex::new(prior.outcomes),
                waiting: Mutex::new(prior.waiting),
                prior_events: prior.events,
                cancel,
                queue: Default::default(),
            }),
            record,
            now.checked_sub(earlier).unwrap_or(now),
        )
    }

    fn finish(
        &self,
        state: &RunState,
        mut record: RunRecord,
        started: Instant,
        error: Option<String>,
    ) -> RunRecord {
        let redactor = state.runner.events.redactor().clone();
        for s in state.runner.evaluator.secrets() {
            redactor.add(&s);
        }
        let duration_ms = started.elapsed().as_millis() as u64;
        let waiting = state.waiting.lock().map(|w| w.clone()).unwrap_or_default();
        // A method run is cancelled only if its call was interrupted: one that returned before
        // the signal wrote what it returned.
        let cancelled = state.cancel.is_cancelled()
            && (record.kind == "workflow"
                || state
                    .steps
                    .lock()
                    .is_ok_and(|s| s.iter().any(|s| s.status == "cancelled")));
        let (status, error) = if cancelled {
            let why = "cancelled (SIGINT/SIGTERM: Ctrl-C or `orch runs cancel`) before it \
                       finished; steps in flight were interrupted and wrote nothing";
            (RunStatus::Cancelled, Some(why.to_string()))
        } else if !waiting.is_empty() {
            (RunStatus::Waiting, error)
        } else if error.is_none() {
            (RunStatus::Succeeded, None)
        } else {
            (RunStatus::Failed, error)
        };
        state.runner.events.emit(Event::RunFinished {
            run_id: record.id.clone(),
            status: status.as_str().into(),
            duration_ms,
        });
        record.status = status;
        record.finished_at = (status != RunStatus::Waiting).then(now_rfc3339);
        record.duration_ms = Some(duration_ms);
        record.steps = state.steps.lock().map(|s| s.clone()).unwrap_or_default();
        record.outcomes = state.outcomes.lock().map(|o| o.clone()).unwrap_or_default();
        if status == RunStatus::Cancelled {
            // Nothing waits in a cancelled run.
            record.waiting = Vec::new();
            for step in record.steps.iter_mut().filter(|s| s.status == "waiting") {
                step.status = "cancelled".to_string();
            }
        } else {
            record.waiting = waiting;
        }
        record.events = state.prior_events.clone();
        record.events.extend(state.runner.events.to_json());
        if status == RunStatus::Waiting {
            // A waiting run holds no process: nothing may take it for a live run.
            record.owner = None;
        }
        record.error = error.map(|e| redactor.redact(&e));
        redactor.redact_json(&mut record.inputs);
        for step in &mut record.steps {
            if let Some(e) = &mut step.error {
                *e = redactor.redact(e);
            }
            if let Some(w) = &mut step.warning {
                *w = redactor.redact(w);
            }
        }
        for outcome in &mut record.outcomes {
            if let Some(e) = &mut outcome.error {
                *e = redactor.redact(e);
            }
        }
        // The end record replaces the start record, so it must not be committed before it.
        if let Some(e) = state.runner.started.wait() {
            self.printer.warn(&e);
        }
        if let Err(e) = self.store.put_run(&record) {
            self.printer
                .warn(&format!("cannot record the run's end: {e}"));
        }
        record
    }

    /// Compiles the plugins of these models' types that have no compiled form yet, all at
    /// once, so a first run waits for the slowest compile rather than for their sum. A plugin
    /// that fails is left for the step that needs it to report, except one whose bundle's
    /// `types.json` its real describe() contradicts: those refusals are returned, so a caller
    /// can refuse the whole run before any step.
    pub async fn precompile(&self, models: &BTreeSet<String>) -> Vec<String> {
        let mut ids = BTreeSet::new();
        let mut compiles = tokio::task::JoinSet::new();
        for model in models {
            let Ok(def) = self.repo.model(model) else {
                continue;
            };
            let Ok(provided) = self.registry.get(&def.type_name) else {
                continue;
            };
            if !ids.insert(provided.plugin.manifest.id.clone()) {
                continue;
            }
            let (registry, plugin) = (self.registry.clone(), provided.plugin.clone());
            compiles.spawn_blocking(move || match registry.compiled(&plugin) {
                Err(e @ crate::runtime::RuntimeError::BundleClaim { .. }) => Some(e.to_string()),
                _ => None,
            });
        }
        let mut refused = Vec::new();
        while let Some(done) = compiles.join_next().await {
            if let Ok(Some(why)) = done {
                refused.push(why);
            }
        }
        refused.sort();
        refused
    }

    /// [`RunEnv::precompile`], then an error naming every needed bundle whose `types.json` its
    /// plugin contradicts, so the run is refused before any step.
    pub async fn prepare_plugins(&self, models: &BTreeSet<String>) -> Result<(), String> {
        let refused = self.precompile(models).await;
        match refused.is_empty() {
            true => Ok(()),
            false => Err(refused.join("\n")),
        }
    }

    /// For a command about to exit: the plugins' compiled code is left for the process's exit to
    /// unmap all at once, instead of being unmapped region by region when the env is dropped
    /// (the engine and its instance pool are the process's and never dropped). Call it once per
    /// process, never in a loop: each leaves the registry's plugins behind.
    pub fn leave_plugins_to_exit(&self) {
        std::mem::forget(self.registry.clone());
    }

    /// Runs a workflow by name with validated inputs.
    pub async fn run_workflow(&self, name: &str, inputs: Map<String, Value>) -> RunRecord {
        self.run_workflow_with(name, inputs, false).await
    }

    /// Runs a workflow; with `dry_run`, converge steps only plan, read and list steps run, and
    /// every other step is recorded as what it would call, without calling it.
    pub async fn run_workflow_with(
        &self,
        name: &str,
        inputs: Map<String, Value>,
        dry_run: bool,
    ) -> RunRecord {
        self.run_workflow_cancellable(name, inputs, dry_run, CancelToken::new())
            .await
    }

    /// Runs a workflow that `cancel` (or a signal) cancels; a caller running several runs
    /// keeps each run's token to cancel that run alone.
    pub async fn run_workflow_cancellable(
        &self,
        name: &str,
        inputs: Map<String, Value>,
        dry_run: bool,
        cancel: CancelToken,
    ) -> RunRecord {
        let handle = RunHandle {
            cancel,
            ..RunHandle::new()
        };
        self.run_workflow_as(handle, name, inputs, dry_run).await
    }

    /// Runs a workflow under the id and cancel token of `handle`.
    pub async fn run_workflow_as(
        &self,
        handle: RunHandle,
        name: &str,
        inputs: Map<String, Value>,
        dry_run: bool,
    ) -> RunRecord {
        let (state, record, started) = self.start("workflow", name, &inputs, dry_run, handle);
        self.drive(state, record, started, inputs, &workflow::Preloaded::new())
            .await
    }

    /// Runs the run's workflow from its state (the preloaded steps are not run) and records
    /// how it ended.
    async fn drive(
        &self,
        state: Arc<RunState>,
        record: RunRecord,
        started: Instant,
        inputs: Map<String, Value>,
        preloaded: &workflow::Preloaded,
    ) -> RunRecord {
        let error = match self.repo.workflow(&record.target) {
            Err(e) => Some(e.to_string()),
            Ok(wf) => {
                let exec = Executor::new(
                    state.clone(),
                    Arc::new(wf.clone()),
                    inputs,
                    String::new(),
                    0,
                );
                exec.run_preloaded(preloaded).await.err()
            }
        };
        state.runner.ssh.close().await;
        self.finish(&state, record, started, error)
    }

    /// Runs one method of one model as its own run.
    pub async fn run_method(
        &self,
        model: &str,
        method: &str,
        inputs: Map<String, Value>,
        dry_run: bool,
    ) -> (RunRecord, Option<Value>) {
        self.run_method_as(RunHandle::new(), model, method, inputs, dry_run)
            .await
    }

    /// Runs one method of one model as its own run, under the id and cancel token of `handle`.
    pub async fn run_method_as(
        &self,
        handle: RunHandle,
        model: &str,
        method: &str,
        inputs: Map<String, Value>,
        dry_run: bool,
    ) -> (RunRecord, Option<Value>) {
        let target = format!("{model}.{method}");
        let (state, record, started) = self.start("method", &target, &inputs, false, handle);
        let call = MethodCall {
            model: model.to_string(),
            method: method.to_string(),
            step: target.clone(),
            inputs: inputs.clone(),
            workflow_inputs: Default::default(),
            self_vars: Map::new(),
            dry_run,
            tags: Default::default(),
        };
        // Cancelling drops the recorded call: the step records itself `cancelled` and its
        // writes, held until the call returns, are never committed.
        let recorded = executor::run_recorded(&state, &target, Some((model, method)), async || {
            state.runner.run(&call).await.map_err(|e| e.to_string())
        });
        let (error, output) = tokio::select! {
            done = recorded => done,
            () = state.cancel.cancelled() => (Some("cancelled".to_string()), None),
        };
        state.runner.ssh.close().await;
        let record = self.finish(&state, record, started, error);
        (record, output)
    }
}

#[cfg(test)]
mod tests;
