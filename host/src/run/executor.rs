//! Runs workflow steps for the scheduler: guard, forEach, model methods and nested workflows.

use super::RunState;
use crate::expr::{ExprError, SharedInputs, Vars};
use crate::method::{MethodCall, StoreDataSource};
use crate::output::Event;
use crate::store::{RecordedOutcome, StepRecord, WaitingStep, now_rfc3339};
use crate::workflow::{
    self, Job, Preloaded, Step, StepExecutor, StepOutcome, StepRef, StepStatus, Task, Workflow,
};
use serde_json::{Map, Value};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

/// Deepest nesting of workflows, so a runaway recursion stops with a message.
const MAX_DEPTH: usize = 16;

mod assert;

/// Executes the steps of one workflow (nested workflows get their own executor).
pub(crate) struct Executor {
    state: Arc<RunState>,
    workflow: Arc<Workflow>,
    /// The workflow's inputs, converted for CEL at most once for all its steps and items.
    inputs: SharedInputs,
    prefix: String,
    depth: usize,
}

/// Runs `f` as a recorded step: events, timing, step record. Returns (error, output).
pub(crate) async fn run_recorded(
    state: &RunState,
    step: &str,
    target: Option<(&str, &str)>,
    f: impl AsyncFnOnce() -> Result<crate::method::MethodOutput, String>,
) -> (Option<String>, Option<Value>) {
    let events = &state.runner.events;
    events.emit(Event::StepStarted {
        step: step.to_string(),
        model: target.map(|t| t.0.to_string()),
        method: target.map(|t| t.1.to_string()),
    });
    let started_at = now_rfc3339();
    let started = Instant::now();
    let mut unfinished = Unfinished {
        state,
        step,
        target,
        started_at: Some(started_at.clone()),
        started,
    };
    let result = f().await;
    unfinished.started_at = None;
    let duration_ms = started.elapsed().as_millis() as u64;
    let (status, error, output, resources) = match result {
        Ok(out) => ("succeeded", None, Some(out.output), out.resources),
        Err(e) => ("failed", Some(e), None, Vec::new()),
    };
    events.emit(Event::StepFinished {
        step: step.to_string(),
        status: status.to_string(),
        duration_ms,
        error: error.clone(),
    });
    let (job, name) = step.split_once('.').unwrap_or(("", step));
    if let Ok(mut steps) = state.steps.lock() {
        steps.push(StepRecord {
            job: job.to_string(),
            name: name.to_string(),
            model: target.map(|t| t.0.to_string()),
            method: target.map(|t| t.1.to_string()),
            status: status.to_string(),
            started_at: Some(started_at),
            duration_ms: Some(duration_ms),
            error: error.clone(),
            resources,
            ..Default::default()
        });
    }
    (error, output)
}

/// Notes on `label`'s step record which worker ran it, and `outcome: unknown` if it was lost.
fn note_worker(state: &RunState, label: &str, worker: String, unknown: bool) {
    let (job, name) = label.split_once('.').unwrap_or(("", label));
    if let Ok(mut steps) = state.steps.lock()
        && let Some(record) = steps
            .iter_mut()
            .rev()
            .find(|r| r.job == job && r.name == name)
    {
        record.worker = Some(worker);
        record.outcome = unknown.then(|| "unknown".to_string());
    }
}

/// A step whose future is dropped before it finished (the run was cancelled) records itself
/// `cancelled`: its plugin call was interrupted, and its writes, kept in memory until the call
/// returns, were never committed.
struct Unfinished<'a> {
    state: &'a RunState,
    step: &'a str,
    target: Option<(&'a str, &'a str)>,
    /// Set while the step runs.
    started_at: Option<String>,
    started: Instant,
}

impl Drop for Unfinished<'_> {
    fn drop(&mut self) {
        let Some(started_at) = self.started_at.take() else {
            return;
        };
        let error = "cancelled before it finished; nothing it was writing was stored".to_string();
        let duration_ms = self.started.elapsed().as_millis() as u64;
        self.state.runner.events.emit(Event::StepFinished {
            step: self.step.to_string(),
            status: "cancelled".to_string(),
            duration_ms,
            error: Some(error.clone()),
        });
        let (job, name) = self.step.split_once('.').unwrap_or(("", self.step));
        if let Ok(mut steps) = self.state.steps.lock() {
            steps.push(StepRecord {
                job: job.to_string(),
                name: name.to_string(),
                model: self.target.map(|t| t.0.to_string()),
                method: self.target.map(|t| t.1.to_string()),
                status: "cancelled".to_string(),
                started_at: Some(started_at),
                duration_ms: Some(duration_ms),
                error: Some(error),
                resources: Vec::new(),
                ..Default::default()
            });
        }
    }
}

fn locate(wf: &Workflow, err: &ExprError, base: &str) -> String {
    let line_of = |f: &str| wf.line_of(f).map(|l| format!(":{l}")).unwrap_or_default();
    if err.field.is_empty() {
        // A bare expression (guard): the error has no field of its own.
        return format!("{}{}: {base}: {err}", wf.file.display(), line_of(base));
    }
    let field = if err.field.starts_with('[') {
        format!("{base}{}", err.field)
    } else {
        format!("{base}.{}", err.field)
    };
    format!(
        "{}{}: {}",
        wf.file.display(),
        line_of(&field),
        err.to_string().replacen(&err.field, &field, 1)
    )
}

impl Executor {
    pub(crate) fn new(
        state: Arc<RunState>,
        workflow: Arc<Workflow>,
        inputs: Map<String, Value>,
        prefix: String,
        depth: usize,
    ) -> Arc<Self> {
        Arc::new(Executor {
            state,
            workflow,
            inputs: SharedInputs::new(inputs),
            prefix,
            depth,
        })
    }

    /// Runs the whole workflow; `Err` names the failed steps.
    pub(crate) async fn run(self: Arc<Self>) -> Result<(), String> {
        self.run_preloaded(&Preloaded::new()).await
    }

    /// Runs the workflow, taking the `preloaded` outcomes instead of running those steps; a
    /// run that stops at waiting steps is `Ok` (the run's record says what waits).
    pub(crate) async fn run_preloaded(
        self: Arc<Self>,
        preloaded: &Preloaded,
    ) -> Result<(), String> {
        let concurrency = self.state.runner.repo.config.concurrency.max(1);
        let wf = self.workflow.clone();
        let outcome =
            workflow::run_workflow_preloaded(wf, self.clone(), concurrency, preloaded).await;
        if matches!(outcome.status, StepStatus::Succeeded | StepStatus::Waiting) {
            return Ok(());
        }
        let prefix = &self.prefix;
        let failed: Vec<String> = outcome
            .jobs
            .iter()
            .flat_map(|j| {
                j.steps
                    .iter()
                    .filter(|(_, o)| o.status == StepStatus::Failed)
                    .map(move |(s, _)| format!("{prefix}{}.{s}", j.name))
            })
            .collect();
        Err(format!(
            "workflow `{}` failed at step(s): {}",
            self.workflow.name,
            failed.join(", ")
        ))
    }

    /// Variables for a scope over the shared workflow inputs (see `Evaluator::scope_over`).
    fn vars(&self, self_vars: &Map<String, Value>) -> Vars {
        Vars {
            inputs: Map::new(),
            env: self.state.runner.repo.env_values(),
            run_id: self.state.runner.run_id.clone(),
            self_: self_vars.clone(),
        }
    }

    fn data(&self) -> StoreDataSource {
        let r = &self.state.runner;
        StoreDataSource::new(r.store.clone(), r.vault.clone(), &r.repo).in_run(&r.run_id)
    }

    /// Resolves a value from the workflow file (step inputs, forEach.in, names).
    fn resolve(
        &self,
        value: &Value,
        field: &str,
        self_vars: &Map<String, Value>,
    ) -> Result<Value, String> {
        let data = self.data();
        let scope =
            self.state
                .runner
                .evaluator
                .scope_over(&data, &self.inputs, self.vars(self_vars));
        let r = scope
            .resolve_value(value, "")
            .map_err(|e| locate(&self.workflow, &e, field));
        for s in self.state.runner.evaluator.secrets() {
            self.state.runner.events.redactor().add(&s);
        }
        r
    }

    fn eval_guard(
        &self,
        guard: &str,
        field: &str,
        self_vars: &Map<String, Value>,
    ) -> Result<bool, String> {
        let data = self.data();
        let scope =
            self.state
                .runner
                .evaluator
                .scope_over(&data, &self.inputs, self.vars(self_vars));
        match scope.eval_expr(guard) {
            Ok(Value::Bool(b)) => Ok(b),
            Ok(other) => Err(format!(
                "{}: {field}: guard `{guard}` gave {other}, not a bool",
                self.workflow.file.display()
            )),
            Err(e) => Err(locate(&self.workflow, &e, field)),
        }
    }

    async fn run_one(&self, at: StepRef) -> StepOutcome {
        let (job, step) = (at.job(), at.step());
        let field = at.path();
        if let Task::ManualApproval { message } = &step.task {
            return self.wait_for_approval(job, step, &field, message.as_deref());
        }
        // forEach: one instance per item, visible as self.<item>.
        let items: Vec<Map<String, Value>> = match &step.for_each {
            None => vec![Map::new()],
            Some(fe) => {
                match self.resolve(&fe.items, &format!("{field}.forEach.in"), &Map::new()) {
                    Err(e) => return self.fail_now(job, step, e),
                    Ok(Value::Array(list)) => list
                        .into_iter()
                        .map(|v| Map::from_iter([(fe.item.clone(), v)]))
                        .collect(),
                    Ok(Value::Object(map)) => map
                        .into_iter()
                        .map(|(k, v)| {
                            Map::from_iter([(
                                fe.item.clone(),
                                serde_json::json!({"key": k, "value": v}),
                            )])
                        })
                        .collect(),
                    Ok(other) => {
                        return self.fail_now(
                            job,
                            step,
                            format!(
                                "{}: {field}.forEach.in: expected a list or map, got {other}",
                                self.workflow.file.display()
                            ),
                        );
                    }
                }
            }
        };
        // Items run side by side up to the step's `concurrency` (default: the global limit,
        // which `call_slots` also holds across the whole run).
        let global = self.state.runner.repo.config.concurrency.max(1);
        let cap = step.concurrency.map_or(global, |n| {
            usize::try_from(n).unwrap_or(usize::MAX).min(global)
        });
        let results = workflow::run_capped(items, cap, |self_vars| {
            self.run_item(job, step, &field, self_vars)
        })
        .await;
        let mut failures = Vec::new();
        let mut ran_any = false;
        for result in results {
            match result {
                None => {}
                Some(Ok(())) => ran_any = true,
                Some(Err(e)) => {
                    ran_any = true;
                    failures.push(e);
                }
            }
        }
        if !failures.is_empty() {
            StepOutcome {
                status: StepStatus::Failed,
                error: Some(failures.join("\n")),
            }
        } else if !ran_any {
            StepOutcome {
                status: StepStatus::Skipped,
                error: None,
            }
        } else {
            StepOutcome {
                status: StepStatus::Succeeded,
                error: None,
            }
        }
    }

    /// One forEach item (or the step itself): `None` if its guard skipped it.
    async fn run_item(
        &self,
        job: &Job,
        step: &Step,
        field: &str,
        self_vars: Map<String, Value>,
    ) -> Option<Result<(), String>> {
        let name = match self.resolve(
            &Value::String(step.name.clone()),
            &format!("{field}.name"),
            &self_vars,
        ) {
            Ok(Value::String(s)) => s,
            Ok(other) => other.to_string(),
            Err(e) => return Some(Err(e)),
        };
        let label = format!("{}{}.{name}", self.prefix, job.name);
        if let Some(guard) = &step.guard {
            match self.eval_guard(guard, &format!("{field}.guard"), &self_vars) {
                Ok(true) => {}
                Ok(false) => {
                    self.record_skip(&label, "guard is false");
                    return None;
                }
                Err(e) => {
                    self.fail_recorded(&label, e.clone());
                    return Some(Err(e));
                }
            }
        }
        // Only leaf calls take a slot: a nested workflow holding one while its own steps wait
        // for slots could deadlock the run.
        let _slot = match step.task {
            Task::Workflow { .. } => None,
            _ => self.state.call_slots.acquire().await.ok(),
        };
        Some(self.run_task(&label, step, field, &self_vars).await)
    }

    async fn run_task(
        &self,
        label: &str,
        step: &Step,
        field: &str,
        self_vars: &Map<String, Value>,
    ) -> Result<(), String> {
        match &step.task {
            Task::Assert {
                expression,
                message,
                severity,
            } => self.run_assert(
                label,
                field,
                expression,
                message.as_deref(),
                *severity,
                self_vars,
            ),
            Task::ModelMethod {
                model_id_or_name,
                method_name,
                inputs,
            } => {
                let state = &self.state;
                // Which worker ran a `runsOn` step, and whether its outcome is unknown.
                let remote: std::sync::Mutex<Option<(String, bool)>> = Default::default();
                let (error, _) = run_recorded(
                    state,
                    label,
                    Some((model_id_or_name, method_name)),
                    async || {
                        let inputs =
                            self.resolve(inputs, &format!("{field}.task.inputs"), self_vars)?;
                        let kind = state
                            .dry_run
                            .then(|| state.runner.kind_of(model_id_or_name, method_name))
                            .flatten();
                        if let Some(kind) = kind.as_deref()
                            && !matches!(kind, "read" | "list" | "converge")
                        {
                            return Ok(self.would_call(
                                label,
                                model_id_or_name,
                                method_name,
                                inputs,
                            ));
                        }
                        let call = MethodCall {
                            model: model_id_or_name.clone(),
                            method: method_name.clone(),
                            step: label.to_string(),
                            inputs: inputs.as_object().cloned().unwrap_or_default(),
                            workflow_inputs: self.inputs.clone(),
                            self_vars: self_vars.clone(),
                            // A converge step of a dry run returns its plan.
                            dry_run: kind.as_deref() == Some("converge"),
                            tags: self.workflow.tags.clone(),
                        };
                        if let Some(labels) = step.runs_on.as_ref().filter(|_| !state.dry_run) {
                            if state.runner.repo.config.datastore.is_none() {
                                let at = format!("{field}.runsOn");
                                let line = self
                                    .workflow
                                    .line_of(&at)
                                    .map(|l| format!(":{l}"))
                                    .unwrap_or_default();
                                return Err(format!(
                                    "{}{line}: {at}: steps with runsOn run on `orch worker` \
                                     processes, which need the PostgreSQL datastore: add \
                                     `datastore: {{ postgres: … }}` to orch.yaml, or remove runsOn \
                                     to run the step here",
                                    self.workflow.file.display()
                                ));
                            }
                            let out = crate::worker::run_remote(
                                &state.runner,
                                &state.queue,
                                labels,
                                &call,
                            )
                            .await;
                            if let (Some(worker), Ok(mut remote)) = (out.worker, remote.lock()) {
                                *remote = Some((worker, out.unknown));
                            }
                            return out.result;
                        }
                        state.runner.run(&call).await.map_err(|e| e.to_string())
                    },
                )
                .await;
                if let Some((worker, unknown)) = remote.into_inner().ok().flatten() {
                    note_worker(state, label, worker, unknown);
                }
                error.map_or(Ok(()), Err)
            }
            Task::ManualApproval { .. } => Err(format!(
                "{}: {field}: a `manual_approval` step cannot run here",
                self.workflow.file.display()
            )),
            Task::Workflow {
                workflow_id_or_name,
                inputs,
            } => {
                let state = self.state.clone();
                let (error, _) = run_recorded(&state, label, None, async || {
                    if self.depth + 1 > MAX_DEPTH {
                        return Err(format!(
                            "workflows nest deeper than {MAX_DEPTH} levels at {label}"
                        ));
                    }
                    let inputs =
                        self.resolve(inputs, &format!("{field}.task.inputs"), self_vars)?;
                    let mut nested = state
                        .runner
                        .repo
                        .workflow(workflow_id_or_name)
                        .map_err(|e| e.to_string())?
                        .clone();
                    // The calling workflow's tags lie over the nested one's, as --tag over both.
                    nested.tags.extend(self.workflow.tags.clone());
                    let mut inputs = inputs.as_object().cloned().unwrap_or_default();
                    workflow::apply_input_defaults(&nested, &mut inputs);
                    let inputs = Value::Object(inputs);
                    workflow::validate_inputs(&nested, &inputs).map_err(|problems| {
                        format!(
                            "{}: inputs of nested workflow `{}`: {}",
                            self.workflow.file.display(),
                            nested.name,
                            problems.join("; ")
                        )
                    })?;
                    let exec = Executor::new(
                        state.clone(),
                        Arc::new(nested),
                        inputs.as_object().cloned().unwrap_or_default(),
                        format!("{label}/"),
                        self.depth + 1,
                    );
                    Box::pin(exec.run()).await?;
                    Ok(crate::method::MethodOutput {
                        output: Value::Null,
                        resources: Vec::new(),
                    })
                })
                .await;
                error.map_or(Ok(()), Err)
            }
        }
    }

    /// A dry run's stand-in for a step that would change something: it says what it would
    /// call, with its (redacted) arguments, and calls nothing.
    fn would_call(
        &self,
        label: &str,
        model: &str,
        method: &str,
        mut arguments: Value,
    ) -> crate::method::MethodOutput {
        let events = &self.state.runner.events;
        events.redactor().redact_json(&mut arguments);
        events.emit(crate::output::Event::Log {
            step: label.to_string(),
            level: crate::capabilities::LogLevel::Info,
            message: format!("dry run: would call {model}.{method}({arguments})"),
        });
        crate::method::MethodOutput {
            output: serde_json::json!({
                "dryRun": true,
                "wouldCall": format!("{model}.{method}"),
                "arguments": arguments,
            }),
            resources: Vec::new(),
        }
    }

    /// A `manual_approval` step: recorded `waiting` with its message; its dependents do not
    /// start until `orch runs approve` or `reject` decides.
    fn wait_for_approval(
        &self,
        job: &Job,
        step: &Step,
        field: &str,
        message: Option<&str>,
    ) -> StepOutcome {
        let label = format!("{}{}.{}", self.prefix, job.name, step.name);
        if let Some(guard) = &step.guard {
            match self.eval_guard(guard, &format!("{field}.guard"), &Map::new()) {
                Ok(true) => {}
                Ok(false) => {
                    self.record_skip(&label, "guard is false");
                    return StepOutcome::skipped();
                }
                Err(e) => return self.fail_now(job, step, e),
            }
        }
        if self.depth > 0 {
            return self.fail_now(
                job,
                step,
                format!(
                    "{}:{}: {field}.task: a `manual_approval` step must be in the workflow that \
                     `orch run` starts, not in the nested workflow `{}`; move it there",
                    self.workflow.file.display(),
                    self.workflow.line_of(&format!("{field}.task")).unwrap_or(0),
                    self.workflow.name
                ),
            );
        }
        let events = &self.state.runner.events;
        events.emit(Event::StepStarted {
            step: label.clone(),
            model: None,
            method: None,
        });
        if self.state.dry_run {
            // A dry run shows what would happen after an approval instead of stopping.
            events.emit(Event::Log {
                step: label.clone(),
                level: crate::capabilities::LogLevel::Info,
                message: "dry run: would wait for approval here, and goes on as if approved"
                    .to_string(),
            });
            self.record(&label, "succeeded", None);
            return StepOutcome::succeeded();
        }
        events.emit(Event::Log {
            step: label.clone(),
            level: crate::capabilities::LogLevel::Info,
            message: format!(
                "waiting for approval{}: `orch runs approve {} --step {}.{}` or `orch runs reject`",
                message.map(|m| format!(" ({m})")).unwrap_or_default(),
                self.state.runner.run_id,
                job.name,
                step.name
            ),
        });
        events.emit(Event::StepFinished {
            step: label.clone(),
            status: "waiting".to_string(),
            duration_ms: 0,
            error: None,
        });
        let since = now_rfc3339();
        if let Ok(mut steps) = self.state.steps.lock() {
            steps.push(StepRecord {
                job: job.name.clone(),
                name: step.name.clone(),
                model: None,
                method: None,
                status: "waiting".to_string(),
                started_at: Some(since.clone()),
                duration_ms: None,
                error: None,
                resources: Vec::new(),
                message: message.map(str::to_string),
                ..Default::default()
            });
        }
        if let Ok(mut waiting) = self.state.waiting.lock() {
            waiting.push(WaitingStep {
                job: job.name.clone(),
                step: step.name.clone(),
                message: message.map(str::to_string),
                since,
            });
        }
        StepOutcome::waiting()
    }

    /// Notes how a top-level step ended, for a later approval or `runs resume`.
    fn note_outcome(&self, job: &Job, step: &Step, outcome: &StepOutcome) {
        if self.depth > 0 {
            return;
        }
        if let Ok(mut outcomes) = self.state.outcomes.lock() {
            outcomes.push(RecordedOutcome {
                job: job.name.clone(),
                step: step.name.clone(),
                status: outcome.status.to_string(),
                error: outcome.error.clone(),
            });
        }
    }

    fn fail_now(&self, job: &Job, step: &Step, error: String) -> StepOutcome {
        self.fail_recorded(
            &format!("{}{}.{}", self.prefix, job.name, step.name),
            error.clone(),
        );
        StepOutcome {
            status: StepStatus::Failed,
            error: Some(error),
        }
    }

    fn fail_recorded(&self, label: &str, error: String) {
        self.record(label, "failed", Some(error));
    }

    fn record_skip(&self, label: &str, reason: &str) {
        self.record(label, "skipped", Some(reason.to_string()));
    }

    fn record(&self, label: &str, status: &str, error: Option<String>) {
        self.state.runner.events.emit(Event::StepFinished {
            step: label.to_string(),
            status: status.to_string(),
            duration_ms: 0,
            error: error.clone(),
        });
        let (job, name) = label.split_once('.').unwrap_or(("", label));
        if let Ok(mut steps) = self.state.steps.lock() {
            steps.push(StepRecord {
                job: job.to_string(),
                name: name.to_string(),
                model: None,
                method: None,
                status: status.to_string(),
                started_at: None,
                duration_ms: Some(0),
                error,
                resources: Vec::new(),
                ..Default::default()
            });
        }
    }
}

impl StepExecutor for Executor {
    fn run_step(&self, step: StepRef) -> Pin<Box<dyn Future<Output = StepOutcome> + Send + '_>> {
        Box::pin(async move {
            let outcome = self.run_one(step.clone()).await;
            self.note_outcome(step.job(), step.step(), &outcome);
            outcome
        })
    }

    fn step_skipped(&self, job: &Job, step: &Step, reason: &str) {
        self.record_skip(
            &format!("{}{}.{}", self.prefix, job.name, step.name),
            reason,
        );
        self.note_outcome(job, step, &StepOutcome::skipped());
    }

    fn cancelled(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(self.state.cancel.cancelled())
    }
}
