//! A run after its first process: a waiting run approved, rejected or cancelled, and a failed
//! run resumed from a step. Each takes the recorded outcome of every finished step instead of
//! running it again; the data those steps wrote is already in the store.

use super::{CancelToken, Prior, RunEnv, StartRecord, current_owner};
use crate::store::{
    Decision, RecordedOutcome, ResourceStore, RunRecord, RunStatus, WaitingStep, new_run_id,
    now_rfc3339,
};
use crate::vault::REDACTED;
use crate::workflow::{Preloaded, StepOutcome, Workflow};
use serde_json::{Map, Value};
use std::collections::{BTreeSet, VecDeque};

/// The exit code of `orch run` (and `runs approve`) when the run stops at `manual_approval`
/// steps: not a failure, but not done either, so a script does not carry on as if it were.
pub const WAITING_EXIT_CODE: i32 = 3;

/// The waiting step `step` names (`job.step` or a step name), or the only one if `None`.
pub fn find_waiting_step<'a>(
    record: &'a RunRecord,
    step: Option<&str>,
) -> Result<&'a WaitingStep, String> {
    if record.status != RunStatus::Waiting {
        return Err(format!(
            "run {} is {}, not waiting: only a waiting run has a step to approve or reject \
             (see `orch runs show {}`)",
            record.id,
            record.status.as_str(),
            record.id
        ));
    }
    let names = || {
        record
            .waiting
            .iter()
            .map(|w| format!("{}.{}", w.job, w.step))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let Some(step) = step else {
        return match record.waiting.as_slice() {
            [only] => Ok(only),
            [] => Err(format!("run {} records no waiting step", record.id)),
            _ => Err(format!(
                "run {} waits on several steps ({}); name one with `--step`",
                record.id,
                names()
            )),
        };
    };
    let matching: Vec<&WaitingStep> = record
        .waiting
        .iter()
        .filter(|w| format!("{}.{}", w.job, w.step) == step || w.step == step)
        .collect();
    match matching.as_slice() {
        [only] => Ok(only),
        [] => Err(format!(
            "run {} has no waiting step `{step}`; it waits on: {}",
            record.id,
            names()
        )),
        _ => Err(format!(
            "`{step}` names several waiting steps of run {} ({}); write it as `job.step`",
            record.id,
            names()
        )),
    }
}

/// Marks a waiting run `cancelled`, its waiting steps too. Returns the record as stored.
pub fn cancel_waiting(store: &ResourceStore, id: &str, by: &str) -> Result<RunRecord, String> {
    let reason = format!("cancelled by {by} while waiting for approval");
    let changed = store
        .transition_run(id, RunStatus::Waiting, |r| {
            r.status = RunStatus::Cancelled;
            r.finished_at = Some(now_rfc3339());
            r.error = Some(reason.clone());
            for w in std::mem::take(&mut r.waiting) {
                for s in r
                    .steps
                    .iter_mut()
                    .filter(|s| s.job == w.job && s.name == w.step && s.status == "waiting")
                {
                    s.status = "cancelled".to_string();
                    s.error = Some(reason.clone());
                }
                for o in r
                    .outcomes
                    .iter_mut()
                    .filter(|o| o.job == w.job && o.step == w.step)
                {
                    o.status = "cancelled".to_string();
                }
            }
        })
        .map_err(|e| e.to_string())?;
    match changed {
        Some((record, true)) => Ok(record),
        Some((record, false)) => Err(format!(
            "run {} is now {}, no longer waiting; nothing was changed",
            record.id,
            record.status.as_str()
        )),
        None => Err(format!("no run `{id}`")),
    }
}

/// The inputs a run was started with, unless a secret among them was stored redacted.
fn stored_inputs(record: &RunRecord, what: &str) -> Result<Map<String, Value>, String> {
    let inputs = record.inputs.as_object().cloned().unwrap_or_default();
    for (name, value) in &inputs {
        if holds_redacted(value) {
            return Err(format!(
                "run {}'s input `{name}` was stored redacted (`{REDACTED}`: it held a secret), \
                 so orch cannot {what} with the value it had; start a new run with \
                 `orch run {} --input {name}=…`",
                record.id, record.target
            ));
        }
    }
    Ok(inputs)
}

fn holds_redacted(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains(REDACTED),
        Value::Array(items) => items.iter().any(holds_redacted),
        Value::Object(map) => map.values().any(holds_redacted),
        _ => false,
    }
}

/// Recorded outcomes as the scheduler takes them; a step cancelled or never finished is not
/// among them, so it runs.
fn preloaded(outcomes: &[RecordedOutcome]) -> Preloaded {
    outcomes
        .iter()
        .filter_map(|o| {
            let outcome = match o.status.as_str() {
                "succeeded" => StepOutcome::succeeded(),
                "failed" => StepOutcome::failed(o.error.clone().unwrap_or_default()),
                "skipped" => StepOutcome::skipped(),
                "waiting" => StepOutcome::waiting(),
                _ => return None,
            };
            Some(((o.job.clone(), o.step.clone()), outcome))
        })
        .collect()
}

/// The (job, step) indices `from` names: `job.step`, or a step name unique in the workflow.
fn resolve_step(wf: &Workflow, from: &str) -> Result<(usize, usize), String> {
    let all: Vec<(usize, usize, String)> = wf
        .jobs
        .iter()
        .enumerate()
        .flat_map(|(j, job)| {
            job.steps
                .iter()
                .enumerate()
                .map(move |(s, step)| (j, s, format!("{}.{}", job.name, step.name)))
        })
        .collect();
    if let Some((j, s, _)) = all.iter().find(|(_, _, full)| full == from) {
        return Ok((*j, *s));
    }
    let by_name: Vec<&(usize, usize, String)> = all
        .iter()
        .filter(|(j, s, _)| wf.jobs[*j].steps[*s].name == from)
        .collect();
    match by_name.as_slice() {
        [(j, s, _)] => Ok((*j, *s)),
        [] => {
            let hint = crate::suggest::closest(
                from,
                all.iter().map(|(_, _, full)| full.as_str()).chain(
                    all.iter()
                        .map(|(j, s, _)| wf.jobs[*j].steps[*s].name.as_str()),
                ),
            )
            .map(|c| format!("did you mean `{c}`? "))
            .unwrap_or_default();
            Err(format!(
                "{}: workflow `{}` has no step `{from}`; {hint}its steps are: {}",
                wf.file.display(),
                wf.name,
                all.iter()
                    .map(|(_, _, full)| full.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        }
        many => Err(format!(
            "{}: step `{from}` is in several jobs ({}); write it as `job.step`",
            wf.file.display(),
            many.iter()
                .map(|(_, _, full)| full.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// The step at (j, s), every step that depends on it (transitively), and every step of the
/// jobs that depend on its job (transitively), by (job name, step name).
fn rerun_set(wf: &Workflow, j: usize, s: usize) -> BTreeSet<(String, String)> {
    let job = &wf.jobs[j];
    let mut steps = BTreeSet::from([job.steps[s].name.clone()]);
    let mut queue = VecDeque::from([job.steps[s].name.clone()]);
    while let Some(name) = queue.pop_front() {
        for step in &job.steps {
            if step.depends_on.iter().any(|d| d.step == name) && steps.insert(step.name.clone()) {
                queue.push_back(step.name.clone());
            }
        }
    }
    let mut out: BTreeSet<(String, String)> =
        steps.into_iter().map(|s| (job.name.clone(), s)).collect();
    let mut jobs = BTreeSet::from([job.name.clone()]);
    let mut queue = VecDeque::from([job.name.clone()]);
    while let Some(name) = queue.pop_front() {
        for other in &wf.jobs {
            if other.depends_on.iter().any(|d| d.job == name) && jobs.insert(other.name.clone()) {
                queue.push_back(other.name.clone());
                out.extend(
                    other
                        .steps
                        .iter()
                        .map(|s| (other.name.clone(), s.name.clone())),
                );
            }
        }
    }
    out
}

impl RunEnv {
    /// Approves or rejects a waiting step of run `id` and runs the rest of the run in this
    /// process under the same id; the steps that finished before are not run again.
    pub async fn decide(
        &self,
        id: &str,
        step: Option<&str>,
        decision: Decision,
    ) -> Result<RunRecord, String> {
        let record = self
            .store
            .get_run(id)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("no run `{id}` (see `orch runs list`)"))?;
        let waiting = find_waiting_step(&record, step)?.clone();
        let inputs = stored_inputs(&record, "go on")?;
        let owner = current_owner();
        let taken = self
            .store
            .transition_run(&record.id, RunStatus::Waiting, |r| {
                r.status = RunStatus::Running;
                r.owner = Some(owner);
                r.finished_at = None;
            })
            .map_err(|e| e.to_string())?;
        let taken = match taken {
            Some((taken, true)) => taken,
            Some((now, false)) => {
                return Err(format!(
                    "run {} is now {}: another command took it up first",
                    now.id,
                    now.status.as_str()
                ));
            }
            None => return Err(format!("no run `{id}`")),
        };
        let (status, error) = if decision.approved {
            ("succeeded", None)
        } else {
            let comment = decision
                .comment
                .as_deref()
                .map(|c| format!(": {c}"))
                .unwrap_or_default();
            (
                "failed",
                Some(format!("rejected by {}{comment}", decision.by)),
            )
        };
        let mut prior = Prior {
            steps: taken.steps.clone(),
            outcomes: taken.outcomes.clone(),
            waiting: taken.waiting.clone(),
            events: taken.events.clone(),
        };
        let same = |job: &str, step: &str| job == waiting.job && step == waiting.step;
        prior.waiting.retain(|w| !same(&w.job, &w.step));
        for s in prior
            .steps
            .iter_mut()
            .filter(|s| same(&s.job, &s.name) && s.status == "waiting")
        {
            s.status = status.to_string();
            s.error = error.clone();
            s.decision = Some(decision.clone());
        }
        for o in prior.outcomes.iter_mut().filter(|o| same(&o.job, &o.step)) {
            o.status = status.to_string();
            o.error = error.clone();
        }
        let preloaded = preloaded(&prior.outcomes);
        let (state, record, started) = self.begin(
            taken,
            StartRecord::committed(),
            false,
            prior,
            CancelToken::new(),
        );
        let label = format!("{}.{}", waiting.job, waiting.step);
        let comment = decision
            .comment
            .as_deref()
            .map(|c| format!(": {c}"))
            .unwrap_or_default();
        let verdict = if decision.approved {
            "approved"
        } else {
            "rejected"
        };
        state.runner.events.emit(crate::output::Event::Log {
            step: label.clone(),
            level: crate::capabilities::LogLevel::Info,
            message: format!("{verdict} by {}{comment}", decision.by),
        });
        state
            .runner
            .events
            .emit(crate::output::Event::StepFinished {
                step: label,
                status: status.to_string(),
                duration_ms: 0,
                error,
            });
        Ok(self.drive(state, record, started, inputs, &preloaded).await)
    }

    /// Runs failed (or cancelled, or abandoned) run `id` again as a new run from step `from`:
    /// that step and everything after it run, the steps before it keep their recorded outcomes.
    pub async fn resume(&self, id: &str, from: &str) -> Result<RunRecord, String> {
        let old = self
            .store
            .get_run(id)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("no run `{id}` (see `orch runs list`)"))?;
        let old = super::settle(&self.store, old);
        if old.kind != "workflow" {
            return Err(format!(
                "run {} ran the method {}, not a workflow; run it again with `orch model run`",
                old.id, old.target
            ));
        }
        match old.status {
            RunStatus::Failed | RunStatus::Cancelled | RunStatus::Abandoned => {}
            RunStatus::Waiting => {
                return Err(format!(
                    "run {} is waiting for approval; decide it with `orch runs approve {}` or \
                     `orch runs reject {}`",
                    old.id, old.id, old.id
                ));
            }
            other => {
                return Err(format!(
                    "run {} is {}: only a failed, cancelled or abandoned run can be resumed",
                    old.id,
                    other.as_str()
                ));
            }
        }
        let wf = self.repo.workflow(&old.target).map_err(|e| e.to_string())?;
        let (j, s) = resolve_step(wf, from)?;
        if old.outcomes.is_empty() {
            return Err(format!(
                "run {} records no step outcomes (an older orch ran it), so nothing can be \
                 reused; start it again with `orch run {}`",
                old.id, old.target
            ));
        }
        let inputs = stored_inputs(&old, "resume it")?;
        let rerun = rerun_set(wf, j, s);
        let kept: Vec<RecordedOutcome> = old
            .outcomes
            .iter()
            .filter(|o| !rerun.contains(&(o.job.clone(), o.step.clone())))
            .filter(|o| matches!(o.status.as_str(), "succeeded" | "failed" | "skipped"))
            .cloned()
            .collect();
        let preloaded = preloaded(&kept);
        let prior = Prior {
            steps: old
                .steps
                .iter()
                .filter(|r| preloaded.contains_key(&(r.job.clone(), r.name.clone())))
                .cloned()
                .collect(),
            outcomes: kept,
            waiting: Vec::new(),
            events: Vec::new(),
        };
        let record = RunRecord {
            id: new_run_id(),
            kind: "workflow".to_string(),
            target: old.target.clone(),
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
            resumed_from: Some(old.id.clone()),
        };
        let started = StartRecord::spawn(self.store.clone(), record.clone(), None);
        let (state, record, started) =
            self.begin(record, started, false, prior, CancelToken::new());
        Ok(self.drive(state, record, started, inputs, &preloaded).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn wf() -> Workflow {
        let text = "jobs:
  - name: build
    steps:
      - name: fetch
        task: { type: model_method, modelIdOrName: m, methodName: x }
      - name: compile
        task: { type: model_method, modelIdOrName: m, methodName: x }
        dependsOn: [{ step: fetch }]
      - name: test
        task: { type: model_method, modelIdOrName: m, methodName: x }
        dependsOn: [{ step: compile }]
      - name: lint
        task: { type: model_method, modelIdOrName: m, methodName: x }
  - name: ship
    dependsOn: [{ job: build }]
    steps:
      - name: test
        task: { type: model_method, modelIdOrName: m, methodName: x }
";
        Workflow::parse(text, Path::new("workflows/w.yaml")).expect("parses")
    }

    #[test]
    fn resuming_from_a_step_reruns_it_its_dependents_and_later_jobs() {
        let wf = wf();
        let (j, s) = resolve_step(&wf, "compile").expect("found");
        let names: Vec<String> = rerun_set(&wf, j, s)
            .into_iter()
            .map(|(j, s)| format!("{j}.{s}"))
            .collect();
        assert_eq!(names, vec!["build.compile", "build.test", "ship.test"]);
    }

    #[test]
    fn a_step_is_named_as_job_step_or_by_a_unique_name() {
        let wf = wf();
        assert_eq!(resolve_step(&wf, "ship.test"), Ok((1, 0)));
        let ambiguous = resolve_step(&wf, "test").expect_err("in two jobs");
        assert!(ambiguous.contains("build.test, ship.test"), "{ambiguous}");
        let unknown = resolve_step(&wf, "compil").expect_err("no such step");
        assert!(unknown.contains("did you mean `compile`"), "{unknown}");
        assert!(unknown.starts_with("workflows/w.yaml"), "{unknown}");
    }

    #[test]
    fn a_redacted_input_is_refused_by_name() {
        let mut record = RunRecord {
            id: "r1".into(),
            kind: "workflow".into(),
            target: "deploy".into(),
            status: RunStatus::Failed,
            started_at: now_rfc3339(),
            finished_at: None,
            duration_ms: None,
            inputs: serde_json::json!({"env": "prod", "token": {"value": "***"}}),
            steps: Vec::new(),
            events: Vec::new(),
            error: None,
            owner: None,
            outcomes: Vec::new(),
            waiting: Vec::new(),
            resumed_from: None,
        };
        let err = stored_inputs(&record, "resume it").expect_err("redacted");
        assert!(err.contains("input `token`"), "{err}");
        record.inputs = serde_json::json!({"env": "prod"});
        assert_eq!(stored_inputs(&record, "resume it").expect("clean").len(), 1);
    }
}
