//! Runs a workflow's steps as a DAG on tokio, as parallel as dependencies and the concurrency
//! limits allow (the global one, and the `concurrency` caps of the workflow and of each job).
//!
//! One coordinator owns all state and is the only place that decides what starts; steps run as
//! spawned tasks and report back through a `JoinSet`. Nothing depends on timing: every
//! decision follows from which steps have finished, in the order they finished.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde::Serialize;
use tokio::task::JoinSet;

use super::condition::{Condition, StepStatus};
use super::graph::find_cycles;
use super::schema::{Job, Step, Workflow};

/// How one step ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StepOutcome {
    /// Succeeded, failed or skipped.
    pub status: StepStatus,
    /// Why it failed, for failed steps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl StepOutcome {
    /// A successful outcome.
    pub fn succeeded() -> StepOutcome {
        StepOutcome {
            status: StepStatus::Succeeded,
            error: None,
        }
    }

    /// A failed outcome with its error message.
    pub fn failed(error: impl Into<String>) -> StepOutcome {
        StepOutcome {
            status: StepStatus::Failed,
            error: Some(error.into()),
        }
    }

    /// A skipped outcome (guard false, or conditions not met).
    pub fn skipped() -> StepOutcome {
        StepOutcome {
            status: StepStatus::Skipped,
            error: None,
        }
    }

    /// A `manual_approval` step waiting for its decision.
    pub fn waiting() -> StepOutcome {
        StepOutcome {
            status: StepStatus::Waiting,
            error: None,
        }
    }
}

/// Outcomes recorded by an earlier part of a run, by (job name, step name): such a step is
/// not run again, its outcome counts as if it had just finished (resuming a waiting run, or
/// `orch runs resume --from`).
pub type Preloaded = HashMap<(String, String), StepOutcome>;

/// One step of a shared workflow, by position: moving it into a step's task copies two
/// indices and an `Arc`, never the job's steps (which made a run quadratic in its steps).
#[derive(Clone, Debug)]
pub struct StepRef {
    workflow: Arc<Workflow>,
    job: usize,
    step: usize,
}

impl StepRef {
    /// The workflow the step belongs to.
    pub fn workflow(&self) -> &Arc<Workflow> {
        &self.workflow
    }

    /// The step's job.
    pub fn job(&self) -> &Job {
        &self.workflow.jobs[self.job]
    }

    /// The step itself.
    pub fn step(&self) -> &Step {
        &self.job().steps[self.step]
    }

    /// Where the step is in the workflow file, e.g. `jobs[0].steps[2]`.
    pub fn path(&self) -> String {
        format!("jobs[{}].steps[{}]", self.job, self.step)
    }
}

/// Runs steps for the scheduler; it owns guards, forEach, nested workflows and events.
pub trait StepExecutor: Send + Sync + 'static {
    /// Runs one step (the executor handles guard, forEach expansion, nested workflows and events).
    fn run_step(&self, step: StepRef) -> Pin<Box<dyn Future<Output = StepOutcome> + Send + '_>>;
    /// Called when a step is skipped because its conditions were not met (so the executor can record it).
    fn step_skipped(&self, job: &Job, step: &Step, reason: &str);
    /// Resolves when the run is cancelled: steps in flight are then dropped (and their
    /// tasks awaited) and no further step starts. Never resolves by default.
    fn cancelled(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(std::future::pending())
    }
}

/// How a whole workflow run ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WorkflowOutcome {
    /// Waiting if some step waits for approval (what depends on it has not started); else
    /// Failed iff some step failed without `allowFailure`; otherwise Succeeded.
    pub status: StepStatus,
    /// Every job, in file order.
    pub jobs: Vec<JobOutcome>,
}

/// How one job ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct JobOutcome {
    /// The job's name.
    pub name: String,
    /// Skipped if its conditions were not met; Failed if a step failed without `allowFailure`.
    pub status: StepStatus,
    /// Every step with its outcome, in file order.
    pub steps: Vec<(String, StepOutcome)>,
}

/// Runs `wf` to completion with at most `concurrency` steps in flight (0 counts as 1), and
/// fewer where the workflow or a job sets its own `concurrency`.
pub async fn run_workflow(
    wf: Arc<Workflow>,
    exec: Arc<dyn StepExecutor>,
    concurrency: usize,
) -> WorkflowOutcome {
    run_workflow_preloaded(wf, exec, concurrency, &Preloaded::new()).await
}

/// Runs `wf` like [`run_workflow`], except that the steps in `preloaded` are not run: they
/// take their recorded outcome when their turn comes (a preloaded `Waiting` step keeps
/// waiting).
pub async fn run_workflow_preloaded(
    wf: Arc<Workflow>,
    exec: Arc<dyn StepExecutor>,
    concurrency: usize,
    preloaded: &Preloaded,
) -> WorkflowOutcome {
    let limit = cap(wf.concurrency).min(concurrency.max(1));
    let job_caps: Vec<usize> = wf.jobs.iter().map(|j| cap(j.concurrency)).collect();
    let mut job_running = vec![0usize; wf.jobs.len()];
    let mut state = State::new(&wf);
    state.preload(&wf, preloaded);
    state.begin(&wf, exec.as_ref());

    let mut running: JoinSet<StepOutcome> = JoinSet::new();
    let mut in_flight: HashMap<tokio::task::Id, (usize, usize)> = HashMap::new();
    // Ready steps whose job is at its cap, per job; one goes back to `ready` (same priority)
    // each time a step of that job finishes, so a capped job costs no rescans.
    let mut held: Vec<ReadyQueue> = wf.jobs.iter().map(|_| BinaryHeap::new()).collect();
    loop {
        if already(exec.cancelled()) {
            // Cancelled between two steps: start nothing more.
            running.shutdown().await;
            break;
        }
        while running.len() < limit {
            let Some(entry) = state.ready.pop() else {
                break;
            };
            let Reverse((_, _, j, s)) = entry;
            if job_running[j] >= job_caps[j] {
                held[j].push(entry);
                continue;
            }
            job_running[j] += 1;
            let step = StepRef {
                workflow: Arc::clone(&wf),
                job: j,
                step: s,
            };
            let exec = Arc::clone(&exec);
            let handle = running.spawn(async move { exec.run_step(step).await });
            in_flight.insert(handle.id(), (j, s));
        }
        if running.is_empty() && held.iter().any(|h| !h.is_empty()) {
            // Cannot happen (a step is held only while one of its job runs, and each finish
            // releases one), but a held step must never be left behind.
            for h in &mut held {
                state.ready.extend(h.drain());
            }
            continue;
        }
        if running.is_empty() {
            if state.waiting > 0 {
                // What is left depends on a step waiting for approval: the run stops here
                // and goes on when that step is decided.
                break;
            }
            // Nothing runs and nothing is ready: either done, or the rest waits on a loop
            // that validation would have rejected. Skip what is stuck so the run ends.
            if state.unstick(&wf, exec.as_ref()) {
                continue;
            }
            break;
        }
        let joined = tokio::select! {
            joined = running.join_next_with_id() => joined,
            () = exec.cancelled() => {
                // Dropping each step's future interrupts its plugin call; waiting for the
                // tasks to end lets each record itself as cancelled before the run ends.
                running.shutdown().await;
                break;
            }
        };
        let (id, outcome) = match joined {
            Some(Ok((id, outcome))) => (id, outcome),
            Some(Err(err)) => {
                let reason = if err.is_panic() {
                    "the step panicked; this is a bug in orch, please report it"
                } else {
                    "the step was cancelled"
                };
                (err.id(), StepOutcome::failed(reason))
            }
            None => continue,
        };
        let Some((j, s)) = in_flight.remove(&id) else {
            continue;
        };
        job_running[j] -= 1;
        if let Some(next) = held[j].pop() {
            state.ready.push(next);
        }
        state.batch += 1;
        state.record_step(&wf, j, s, outcome);
        state.drain(&wf, exec.as_ref());
    }
    state.outcome(&wf)
}

#[derive(Debug)]
enum Work {
    ConsiderJob(usize),
    ConsiderStep(usize, usize),
}

#[derive(Default)]
struct JobState {
    /// Dependency jobs not yet finished.
    pending: usize,
    /// Steps of this job not yet finished.
    remaining: usize,
    started: bool,
    failed: bool,
    status: Option<StepStatus>,
    /// A dependsOn entry naming no job: the job can never run.
    broken: Option<String>,
    deps: Vec<(usize, usize)>,
    dependents: Vec<usize>,
}

#[derive(Default)]
struct StepState {
    pending: usize,
    outcome: Option<StepOutcome>,
    /// The outcome an earlier part of the run recorded: taken instead of running the step.
    preloaded: Option<StepOutcome>,
    broken: Option<String>,
    /// (step index, dependsOn index)
    deps: Vec<(usize, usize)>,
    dependents: Vec<usize>,
}

/// Ready steps as a min-heap by (batch, weight, job, step).
type ReadyQueue = BinaryHeap<Reverse<(u64, i64, usize, usize)>>;

struct State {
    jobs: Vec<JobState>,
    steps: Vec<Vec<StepState>>,
    /// Min-heap by (batch, weight, job, step): earlier readiness first, then lower weight,
    /// then file order.
    ready: ReadyQueue,
    batch: u64,
    work: VecDeque<Work>,
    /// Steps waiting for approval.
    waiting: usize,
}

impl State {
    fn new(wf: &Workflow) -> State {
        let mut job_index: HashMap<&str, usize> = HashMap::new();
        for (j, job) in wf.jobs.iter().enumerate() {
            job_index.entry(job.name.as_str()).or_insert(j);
        }
        let mut jobs: Vec<JobState> = wf.jobs.iter().map(|_| JobState::default()).collect();
        let mut steps = Vec::with_capacity(wf.jobs.len());
        for (j, job) in wf.jobs.iter().enumerate() {
            for (d, dep) in job.depends_on.iter().enumerate() {
                match job_index.get(dep.job.as_str()) {
                    Some(&target) => {
                        jobs[j].deps.push((target, d));
                        jobs[j].pending += 1;
                        jobs[target].dependents.push(j);
                    }
                    None => jobs[j].broken = Some(format!("depends on unknown job `{}`", dep.job)),
                }
            }
            let mut step_index: HashMap<&str, usize> = HashMap::new();
            for (s, step) in job.steps.iter().enumerate() {
                step_index.entry(step.name.as_str()).or_insert(s);
            }
            let mut states: Vec<StepState> =
                job.steps.iter().map(|_| StepState::default()).collect();
            for (s, step) in job.steps.iter().enumerate() {
                for (d, dep) in step.depends_on.iter().enumerate() {
                    match step_index.get(dep.step.as_str()) {
                        Some(&target) => {
                            states[s].deps.push((target, d));
                            states[s].pending += 1;
                            states[target].dependents.push(s);
                        }
                        None => {
                            states[s].broken =
                                Some(format!("depends on unknown step `{}`", dep.step))
                        }
                    }
                }
            }
            jobs[j].remaining = job.steps.len();
            steps.push(states);
        }
        State {
            jobs,
            steps,
            ready: BinaryHeap::new(),
            batch: 0,
            work: VecDeque::new(),
            waiting: 0,
        }
    }

    fn preload(&mut self, wf: &Workflow, preloaded: &Preloaded) {
        if preloaded.is_empty() {
            return;
        }
        for (j, job) in wf.jobs.iter().enumerate() {
            for (s, step) in job.steps.iter().enumerate() {
                self.steps[j][s].preloaded = preloaded
                    .get(&(job.name.clone(), step.name.clone()))
                    .cloned();
            }
        }
    }

    fn begin(&mut self, wf: &Workflow, exec: &dyn StepExecutor) {
        for j in 0..self.jobs.len() {
            if self.jobs[j].pending == 0 {
                self.work.push_back(Work::ConsiderJob(j));
            }
        }
        self.drain(wf, exec);
    }

    /// Processes follow-on decisions until nothing more can be decided without a step finishing.
    /// A worklist rather than recursion, so a long skip cascade cannot overflow the stack.
    fn drain(&mut self, wf: &Workflow, exec: &dyn StepExecutor) {
        while let Some(work) = self.work.pop_front() {
            match work {
                Work::ConsiderJob(j) => {
                    if self.jobs[j].started || self.jobs[j].status.is_some() {
                        continue;
                    }
                    match self.job_blocker(wf, j) {
                        None => self.start_job(wf, j),
                        Some(reason) => self.skip_job(wf, exec, j, &reason),
                    }
                }
                Work::ConsiderStep(j, s) => {
                    if self.steps[j][s].outcome.is_some() {
                        continue;
                    }
                    if let Some(outcome) = self.steps[j][s].preloaded.clone() {
                        self.record_step(wf, j, s, outcome);
                        continue;
                    }
                    match self.step_blocker(wf, j, s) {
                        None => {
                            let weight = wf.jobs[j].steps[s].weight;
                            self.ready.push(Reverse((self.batch, weight, j, s)));
                        }
                        Some(reason) => {
                            exec.step_skipped(&wf.jobs[j], &wf.jobs[j].steps[s], &reason);
                            self.record_step(wf, j, s, StepOutcome::skipped());
                        }
                    }
                }
            }
        }
    }

    /// Why the job cannot run, if a dependency's condition does not hold.
    fn job_blocker(&self, wf: &Workflow, j: usize) -> Option<String> {
        if let Some(broken) = &self.jobs[j].broken {
            return Some(broken.clone());
        }
        self.jobs[j].deps.iter().find_map(|&(target, d)| {
            let status = self.jobs[target].status?;
            let condition = wf.jobs[j].depends_on[d].condition();
            (!condition.holds(status))
                .then(|| unmet("job", &wf.jobs[target].name, status, condition))
        })
    }

    /// Why the step cannot run, if a dependency's condition does not hold.
    fn step_blocker(&self, wf: &Workflow, j: usize, s: usize) -> Option<String> {
        let state = &self.steps[j][s];
        if let Some(broken) = &state.broken {
            return Some(broken.clone());
        }
        let job = &wf.jobs[j];
        state.deps.iter().find_map(|&(target, d)| {
            let status = self.steps[j][target].outcome.as_ref()?.status;
            let condition = job.steps[s].depends_on[d].condition();
            (!condition.holds(status))
                .then(|| unmet("step", &job.steps[target].name, status, condition))
        })
    }

    fn start_job(&mut self, wf: &Workflow, j: usize) {
        self.jobs[j].started = true;
        if wf.jobs[j].steps.is_empty() {
            self.finish_job(j);
            return;
        }
        for s in 0..wf.jobs[j].steps.len() {
            let state = &self.steps[j][s];
            if state.pending == 0 || state.broken.is_some() {
                self.work.push_back(Work::ConsiderStep(j, s));
            }
        }
    }

    fn skip_job(&mut self, wf: &Workflow, exec: &dyn StepExecutor, j: usize, reason: &str) {
        let job = &wf.jobs[j];
        let reason = format!("job `{}` skipped: {reason}", job.name);
        for (s, step) in job.steps.iter().enumerate() {
            if self.steps[j][s].outcome.is_none() {
                let outcome = match self.steps[j][s].preloaded.clone() {
                    Some(recorded) => recorded,
                    None => {
                        exec.step_skipped(job, step, &reason);
                        StepOutcome::skipped()
                    }
                };
                self.steps[j][s].outcome = Some(outcome);
            }
        }
        self.jobs[j].remaining = 0;
        self.set_job_status(j, StepStatus::Skipped);
    }

    fn record_step(&mut self, wf: &Workflow, j: usize, s: usize, outcome: StepOutcome) {
        if self.steps[j][s].outcome.is_some() {
            return;
        }
        if outcome.status == StepStatus::Failed && !wf.jobs[j].steps[s].allow_failure {
            self.jobs[j].failed = true;
        }
        if outcome.status == StepStatus::Waiting {
            // Neither its dependents nor its job go on until the step is decided.
            self.waiting += 1;
            self.steps[j][s].outcome = Some(outcome);
            return;
        }
        self.steps[j][s].outcome = Some(outcome);
        for i in 0..self.steps[j][s].dependents.len() {
            let d = self.steps[j][s].dependents[i];
            let dependent = &mut self.steps[j][d];
            dependent.pending = dependent.pending.saturating_sub(1);
            if dependent.pending == 0 {
                self.work.push_back(Work::ConsiderStep(j, d));
            }
        }
        let job = &mut self.jobs[j];
        job.remaining = job.remaining.saturating_sub(1);
        if job.remaining == 0 {
            self.finish_job(j);
        }
    }

    fn finish_job(&mut self, j: usize) {
        let status = if self.jobs[j].failed {
            StepStatus::Failed
        } else {
            StepStatus::Succeeded
        };
        self.set_job_status(j, status);
    }

    fn set_job_status(&mut self, j: usize, status: StepStatus) {
        if self.jobs[j].status.is_some() {
            return;
        }
        self.jobs[j].status = Some(status);
        for i in 0..self.jobs[j].dependents.len() {
            let d = self.jobs[j].dependents[i];
            let dependent = &mut self.jobs[d];
            dependent.pending = dependent.pending.saturating_sub(1);
            if dependent.pending == 0 {
                self.work.push_back(Work::ConsiderJob(d));
            }
        }
    }

    /// Skips steps (then jobs) that wait on each other in a loop. Only the loop itself is
    /// skipped; what depends on it is then decided by its conditions as usual. Returns false
    /// when everything has finished.
    fn unstick(&mut self, wf: &Workflow, exec: &dyn StepExecutor) -> bool {
        const LOOP: &str = "it waits on a dependsOn loop and can never start";
        let mut stuck_steps = Vec::new();
        for j in (0..self.jobs.len()).filter(|&j| self.jobs[j].started) {
            let open: Vec<usize> = (0..self.steps[j].len())
                .filter(|&s| self.steps[j][s].outcome.is_none())
                .collect();
            if open.is_empty() {
                continue;
            }
            let edges: Vec<Vec<(usize, usize)>> = (0..self.steps[j].len())
                .map(|s| {
                    self.steps[j][s]
                        .deps
                        .iter()
                        .filter(|&&(t, _)| self.steps[j][t].outcome.is_none())
                        .map(|&(t, d)| (t, d))
                        .collect()
                })
                .collect();
            stuck_steps.extend(on_cycles(&edges, &open).into_iter().map(|s| (j, s)));
        }
        if !stuck_steps.is_empty() {
            for (j, s) in stuck_steps {
                exec.step_skipped(&wf.jobs[j], &wf.jobs[j].steps[s], LOOP);
                self.record_step(wf, j, s, StepOutcome::skipped());
            }
            self.drain(wf, exec);
            return true;
        }
        let open: Vec<usize> = (0..self.jobs.len())
            .filter(|&j| self.jobs[j].status.is_none())
            .collect();
        if open.is_empty() {
            return false;
        }
        let edges: Vec<Vec<(usize, usize)>> = self
            .jobs
            .iter()
            .map(|job| {
                job.deps
                    .iter()
                    .filter(|&&(t, _)| self.jobs[t].status.is_none())
                    .copied()
                    .collect()
            })
            .collect();
        for j in on_cycles(&edges, &open) {
            self.skip_job(wf, exec, j, LOOP);
        }
        self.drain(wf, exec);
        true
    }

    fn outcome(&self, wf: &Workflow) -> WorkflowOutcome {
        // While a step waits, what has not started yet waits with it.
        let undecided = if self.waiting > 0 {
            StepStatus::Waiting
        } else {
            StepStatus::Skipped
        };
        let jobs: Vec<JobOutcome> = wf
            .jobs
            .iter()
            .enumerate()
            .map(|(j, job)| JobOutcome {
                name: job.name.clone(),
                status: self.jobs[j].status.unwrap_or(undecided),
                steps: job
                    .steps
                    .iter()
                    .enumerate()
                    .map(|(s, step)| {
                        let outcome = self.steps[j][s].outcome.clone().unwrap_or(StepOutcome {
                            status: undecided,
                            error: None,
                        });
                        (step.name.clone(), outcome)
                    })
                    .collect(),
            })
            .collect();
        let failed = jobs.iter().any(|j| j.status == StepStatus::Failed);
        WorkflowOutcome {
            status: if self.waiting > 0 {
                StepStatus::Waiting
            } else if failed {
                StepStatus::Failed
            } else {
                StepStatus::Succeeded
            },
            jobs,
        }
    }
}

/// A `concurrency:` setting as a count; unset means no cap of its own.
fn cap(setting: Option<u64>) -> usize {
    setting.map_or(usize::MAX, |n| {
        usize::try_from(n).unwrap_or(usize::MAX).max(1)
    })
}

/// Runs `f` on every item with at most `limit` in flight (0 counts as 1); results in item order.
pub async fn run_capped<T, R, F, Fut>(items: Vec<T>, limit: usize, f: F) -> Vec<R>
where
    F: FnMut(T) -> Fut,
    Fut: Future<Output = R>,
{
    use futures_util::StreamExt;
    futures_util::stream::iter(items)
        .map(f)
        .buffered(limit.max(1))
        .collect()
        .await
}

/// Whether `future` is ready at once (a cancellation that already happened).
fn already(future: Pin<Box<dyn Future<Output = ()> + Send + '_>>) -> bool {
    let mut future = future;
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    future.as_mut().poll(&mut cx).is_ready()
}

/// Nodes of `open` that lie on a loop; all of `open` if none does, so a stuck run always
/// makes progress.
fn on_cycles(edges: &[Vec<(usize, usize)>], open: &[usize]) -> Vec<usize> {
    let mut nodes: Vec<usize> = find_cycles(edges)
        .into_iter()
        .flat_map(|(cycle, _)| cycle)
        .collect();
    nodes.sort_unstable();
    nodes.dedup();
    if nodes.is_empty() {
        open.to_vec()
    } else {
        nodes
    }
}

fn unmet(kind: &str, name: &str, status: StepStatus, condition: &Condition) -> String {
    format!("condition `{condition}` on {kind} `{name}` not met: it {status}")
}

#[cfg(test)]
mod tests;
