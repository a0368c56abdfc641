use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Barrier;

use super::*;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Event {
    Started(String),
    Finished(String),
    Skipped(String, String),
}

/// Records what the scheduler asks for. Steps are named uniquely across jobs in these tests.
#[derive(Default)]
struct Fake {
    outcomes: HashMap<String, StepStatus>,
    barrier: Option<Arc<Barrier>>,
    barrier_steps: Option<Vec<String>>,
    panics: Vec<String>,
    log: Mutex<Vec<Event>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

impl Fake {
    fn with(outcomes: &[(&str, StepStatus)]) -> Fake {
        Fake {
            outcomes: outcomes.iter().map(|(n, s)| (n.to_string(), *s)).collect(),
            ..Fake::default()
        }
    }

    fn events(&self) -> Vec<Event> {
        self.log.lock().unwrap().clone()
    }

    fn started(&self) -> Vec<String> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                Event::Started(n) => Some(n),
                _ => None,
            })
            .collect()
    }

    fn skipped(&self) -> Vec<(String, String)> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                Event::Skipped(n, r) => Some((n, r)),
                _ => None,
            })
            .collect()
    }

    fn position(&self, event: &Event) -> usize {
        self.events()
            .iter()
            .position(|e| e == event)
            .unwrap_or_else(|| panic!("{event:?} never happened: {:?}", self.events()))
    }
}

impl StepExecutor for Fake {
    fn run_step(&self, step: StepRef) -> Pin<Box<dyn Future<Output = StepOutcome> + Send + '_>> {
        let name = step.step().name.clone();
        Box::pin(async move {
            self.log.lock().unwrap().push(Event::Started(name.clone()));
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.max_in_flight.fetch_max(now, Ordering::SeqCst);
            if self.panics.contains(&name) {
                panic!("fake executor told to panic in {name}");
            }
            let waits = match &self.barrier_steps {
                Some(names) => names.contains(&name),
                None => true,
            };
            if let (Some(barrier), true) = (&self.barrier, waits) {
                barrier.wait().await;
            }
            // Give other tasks a chance to interleave, so overlap would be observed if allowed.
            for _ in 0..3 {
                tokio::task::yield_now().await;
            }
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            self.log.lock().unwrap().push(Event::Finished(name.clone()));
            match self
                .outcomes
                .get(&name)
                .copied()
                .unwrap_or(StepStatus::Succeeded)
            {
                StepStatus::Succeeded => StepOutcome::succeeded(),
                StepStatus::Failed => StepOutcome::failed(format!("{name} broke")),
                StepStatus::Skipped => StepOutcome::skipped(),
                StepStatus::Waiting => StepOutcome::waiting(),
            }
        })
    }

    fn step_skipped(&self, _job: &Job, step: &Step, reason: &str) {
        self.log
            .lock()
            .unwrap()
            .push(Event::Skipped(step.name.clone(), reason.to_string()));
    }
}

fn workflow(text: &str) -> Arc<Workflow> {
    Arc::new(Workflow::parse(text, Path::new("workflows/t.yaml")).unwrap())
}

/// YAML for one job. `deps` is `job[:'condition'],…`; each step is
/// `name[ field:value…][<-dep[:'condition'];…]`.
fn job(name: &str, deps: &str, steps: &[&str]) -> String {
    let mut out = format!("  - name: {name}\n");
    if !deps.is_empty() {
        out.push_str("    dependsOn:\n");
        for dep in deps.split(',') {
            let (job, cond) = dep.split_once(':').unwrap_or((dep, ""));
            out.push_str(&format!("      - job: {job}\n"));
            if !cond.is_empty() {
                out.push_str(&format!("        condition: {}\n", cond.trim_matches('\'')));
            }
        }
    }
    out.push_str("    steps:\n");
    for spec in steps {
        let (step, deps) = spec.split_once("<-").unwrap_or((spec, ""));
        let (step, extra) = step.split_once(' ').unwrap_or((step, ""));
        out.push_str(&format!(
            "      - name: {step}\n        task: {{ type: model_method, modelIdOrName: m, methodName: x }}\n"
        ));
        for field in extra.split(' ').filter(|f| !f.is_empty()) {
            out.push_str(&format!("        {}\n", field.replacen(':', ": ", 1)));
        }
        if !deps.is_empty() {
            out.push_str("        dependsOn:\n");
            for dep in deps.split(';') {
                let (dep, cond) = dep.split_once(':').unwrap_or((dep, ""));
                out.push_str(&format!("          - step: {dep}\n"));
                if !cond.is_empty() {
                    out.push_str(&format!(
                        "            condition: {}\n",
                        cond.trim_matches('\'')
                    ));
                }
            }
        }
    }
    out
}

fn jobs(parts: &[String]) -> Arc<Workflow> {
    workflow(&format!("jobs:\n{}", parts.concat()))
}

/// Runs with a generous safety timeout so a scheduling bug fails the test instead of hanging
/// it; no assertion depends on how long anything takes.
async fn run(wf: Arc<Workflow>, fake: Arc<Fake>, concurrency: usize) -> WorkflowOutcome {
    tokio::time::timeout(
        Duration::from_secs(60),
        run_workflow(wf, fake as Arc<dyn StepExecutor>, concurrency),
    )
    .await
    .expect("workflow run hung")
}

fn status_of(outcome: &WorkflowOutcome, step: &str) -> StepStatus {
    outcome
        .jobs
        .iter()
        .flat_map(|j| &j.steps)
        .find(|(n, _)| n == step)
        .map(|(_, o)| o.status)
        .unwrap_or_else(|| panic!("no step {step}"))
}

#[tokio::test]
async fn independent_steps_run_in_parallel() {
    let fake = Arc::new(Fake {
        barrier: Some(Arc::new(Barrier::new(2))),
        ..Fake::default()
    });
    // Each step waits at a two-party barrier: the run can only finish if both are in flight
    // at once.
    let out = run(jobs(&[job("j", "", &["a", "b"])]), fake.clone(), 4).await;
    assert_eq!(out.status, StepStatus::Succeeded);
    assert!(
        fake.position(&Event::Started("b".into())) < fake.position(&Event::Finished("a".into()))
    );
    assert!(
        fake.position(&Event::Started("a".into())) < fake.position(&Event::Finished("b".into()))
    );
}

#[tokio::test]
async fn steps_of_independent_jobs_run_in_parallel() {
    let fake = Arc::new(Fake {
        barrier: Some(Arc::new(Barrier::new(2))),
        ..Fake::default()
    });
    let wf = jobs(&[job("one", "", &["a"]), job("two", "", &["b"])]);
    let out = run(wf, fake.clone(), 4).await;
    assert_eq!(out.status, StepStatus::Succeeded);
    assert_eq!(fake.max_in_flight.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn dependencies_order_the_steps() {
    let fake = Arc::new(Fake::default());
    let wf = jobs(&[job("j", "", &["c<-b", "b<-a", "a", "d<-a;c"])]);
    let out = run(wf, fake.clone(), 8).await;
    assert_eq!(out.status, StepStatus::Succeeded);
    let before = |x: &str, y: &str| {
        fake.position(&Event::Finished(x.into())) < fake.position(&Event::Started(y.into()))
    };
    assert!(before("a", "b"));
    assert!(before("b", "c"));
    assert!(before("a", "d"));
    assert!(before("c", "d"));
    // Outcomes are listed in file order, not finishing order.
    let names: Vec<&str> = out.jobs[0].steps.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["c", "b", "a", "d"]);
}

#[tokio::test]
async fn every_condition_kind_decides_whether_the_dependent_runs() {
    use StepStatus::*;
    let conditions = [
        ("'{type: succeeded}'", [true, false, false]),
        ("'{type: failed}'", [false, true, false]),
        ("'{type: completed}'", [true, true, false]),
        ("'{type: always}'", [true, true, true]),
        ("'{type: skipped}'", [false, false, true]),
        (
            "'{type: and, conditions: [{type: completed}, {type: not, condition: {type: failed}}]}'",
            [true, false, false],
        ),
        (
            "'{type: or, conditions: [{type: failed}, {type: skipped}]}'",
            [false, true, true],
        ),
        (
            "'{type: not, condition: {type: succeeded}}'",
            [false, true, true],
        ),
    ];
    for (condition, expected) in conditions {
        for (status, should_run) in [Succeeded, Failed, Skipped].into_iter().zip(expected) {
            let fake = Arc::new(Fake::with(&[("dep", status)]));
            let wf = jobs(&[job(
                "j",
                "",
                &["dep allowFailure:true", &format!("after<-dep:{condition}")],
            )]);
            let out = run(wf, fake.clone(), 2).await;
            let ran = fake.started().contains(&"after".to_string());
            assert_eq!(ran, should_run, "{condition} with dep {status}");
            let expected_status = if should_run { Succeeded } else { Skipped };
            assert_eq!(
                status_of(&out, "after"),
                expected_status,
                "{condition} with dep {status}"
            );
        }
    }
}

#[tokio::test]
async fn missing_condition_means_succeeded() {
    let fake = Arc::new(Fake::with(&[("a", StepStatus::Failed)]));
    let out = run(jobs(&[job("j", "", &["a", "b<-a"])]), fake.clone(), 2).await;
    assert_eq!(status_of(&out, "b"), StepStatus::Skipped);
}

#[tokio::test]
async fn skips_cascade_through_succeeded_conditions() {
    let fake = Arc::new(Fake::with(&[("a", StepStatus::Failed)]));
    let wf = jobs(&[job(
        "j",
        "",
        &["a", "b<-a", "c<-b", "cleanup<-c:'{type: skipped}'"],
    )]);
    let out = run(wf, fake.clone(), 4).await;
    assert_eq!(fake.started(), ["a", "cleanup"]);
    assert_eq!(status_of(&out, "b"), StepStatus::Skipped);
    assert_eq!(status_of(&out, "c"), StepStatus::Skipped);
    assert_eq!(status_of(&out, "cleanup"), StepStatus::Succeeded);
    let skipped = fake.skipped();
    assert_eq!(skipped.len(), 2);
    assert_eq!(skipped[0].0, "b");
    assert_eq!(
        skipped[0].1,
        "condition `succeeded` on step `a` not met: it failed"
    );
    assert_eq!(
        skipped[1],
        (
            "c".to_string(),
            "condition `succeeded` on step `b` not met: it skipped".to_string()
        )
    );
    assert_eq!(out.status, StepStatus::Failed);
}

#[tokio::test]
async fn allowed_failure_stays_failed_for_conditions_but_not_for_the_workflow() {
    let fake = Arc::new(Fake::with(&[("flaky", StepStatus::Failed)]));
    let wf = jobs(&[job(
        "j",
        "",
        &[
            "flaky allowFailure:true",
            "next<-flaky",
            "onFail<-flaky:'{type: failed}'",
        ],
    )]);
    let out = run(wf, fake.clone(), 4).await;
    assert_eq!(status_of(&out, "flaky"), StepStatus::Failed);
    assert_eq!(out.jobs[0].steps[0].1.error.as_deref(), Some("flaky broke"));
    assert_eq!(status_of(&out, "next"), StepStatus::Skipped);
    assert_eq!(status_of(&out, "onFail"), StepStatus::Succeeded);
    assert_eq!(out.jobs[0].status, StepStatus::Succeeded);
    assert_eq!(out.status, StepStatus::Succeeded);
}

#[tokio::test]
async fn failure_without_allow_failure_fails_job_and_workflow() {
    let fake = Arc::new(Fake::with(&[("b", StepStatus::Failed)]));
    let wf = jobs(&[job("j", "", &["a", "b"]), job("k", "", &["c"])]);
    let out = run(wf, fake, 4).await;
    assert_eq!(out.jobs[0].status, StepStatus::Failed);
    assert_eq!(out.jobs[1].status, StepStatus::Succeeded);
    assert_eq!(out.status, StepStatus::Failed);
}

#[tokio::test]
async fn job_waits_for_its_dependencies_and_is_skipped_when_they_fail() {
    let fake = Arc::new(Fake::with(&[("build", StepStatus::Failed)]));
    let wf = jobs(&[
        job("compile", "", &["build", "lint"]),
        job("deploy", "compile", &["push", "notify<-push"]),
        job("rollback", "compile:'{type: failed}'", &["undo"]),
    ]);
    let out = run(wf, fake.clone(), 4).await;
    assert_eq!(out.jobs[0].status, StepStatus::Failed);
    assert_eq!(out.jobs[1].status, StepStatus::Skipped);
    assert_eq!(out.jobs[2].status, StepStatus::Succeeded);
    for step in ["push", "notify"] {
        assert_eq!(status_of(&out, step), StepStatus::Skipped);
    }
    let skipped = fake.skipped();
    assert_eq!(skipped.len(), 2);
    assert_eq!(
        skipped[0].1,
        "job `deploy` skipped: condition `succeeded` on job `compile` not met: it failed"
    );
    // The dependent job starts only after every step of its dependency finished.
    let undo = fake.position(&Event::Started("undo".into()));
    assert!(fake.position(&Event::Finished("build".into())) < undo);
    assert!(fake.position(&Event::Finished("lint".into())) < undo);
}

#[tokio::test]
async fn skipped_job_cascades_to_jobs_depending_on_it() {
    let fake = Arc::new(Fake::with(&[("a", StepStatus::Failed)]));
    let wf = jobs(&[
        job("one", "", &["a"]),
        job("two", "one", &["b"]),
        job("three", "two", &["c"]),
        job("four", "three:'{type: skipped}'", &["d"]),
    ]);
    let out = run(wf, fake.clone(), 4).await;
    let statuses: Vec<StepStatus> = out.jobs.iter().map(|j| j.status).collect();
    use StepStatus::*;
    assert_eq!(statuses, [Failed, Skipped, Skipped, Succeeded]);
    assert_eq!(fake.started(), ["a", "d"]);
}

#[tokio::test]
async fn lower_weight_starts_first_among_ready_steps() {
    let fake = Arc::new(Fake::default());
    let wf = jobs(&[job(
        "j",
        "",
        &[
            "heavy weight:5",
            "first weight:0",
            "mid weight:1",
            "second weight:0",
            "neg weight:-3",
        ],
    )]);
    run(wf, fake.clone(), 1).await;
    assert_eq!(fake.started(), ["neg", "first", "second", "mid", "heavy"]);
}

#[tokio::test]
async fn weight_orders_steps_across_jobs_by_file_order_on_ties() {
    let fake = Arc::new(Fake::default());
    let wf = jobs(&[job("one", "", &["a weight:2", "b"]), job("two", "", &["c"])]);
    run(wf, fake.clone(), 1).await;
    assert_eq!(fake.started(), ["b", "c", "a"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_bound_is_never_exceeded() {
    let fake = Arc::new(Fake {
        barrier: Some(Arc::new(Barrier::new(3))),
        ..Fake::default()
    });
    let steps: Vec<String> = (0..9).map(|i| format!("s{i}")).collect();
    let refs: Vec<&str> = steps.iter().map(String::as_str).collect();
    // With a three-party barrier the run only completes if three steps are in flight together,
    // and the counter shows it never went past three.
    let out = run(jobs(&[job("j", "", &refs)]), fake.clone(), 3).await;
    assert_eq!(out.status, StepStatus::Succeeded);
    assert_eq!(fake.max_in_flight.load(Ordering::SeqCst), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_is_shared_across_jobs() {
    let fake = Arc::new(Fake::default());
    let parts: Vec<String> = (0..5)
        .map(|j| {
            let steps: Vec<String> = (0..10).map(|s| format!("j{j}s{s}")).collect();
            let refs: Vec<&str> = steps.iter().map(String::as_str).collect();
            job(&format!("job{j}"), "", &refs)
        })
        .collect();
    let out = run(jobs(&parts), fake.clone(), 2).await;
    assert_eq!(out.status, StepStatus::Succeeded);
    assert!(fake.max_in_flight.load(Ordering::SeqCst) <= 2);
    assert_eq!(fake.started().len(), 50);
}

#[tokio::test]
async fn zero_concurrency_still_runs_one_at_a_time() {
    let fake = Arc::new(Fake::default());
    let out = run(jobs(&[job("j", "", &["a", "b", "c"])]), fake.clone(), 0).await;
    assert_eq!(out.status, StepStatus::Succeeded);
    assert_eq!(fake.max_in_flight.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_independent_steps_all_finish() {
    let fake = Arc::new(Fake::default());
    let steps: Vec<String> = (0..1000).map(|i| format!("s{i}")).collect();
    let refs: Vec<&str> = steps.iter().map(String::as_str).collect();
    let out = run(jobs(&[job("j", "", &refs)]), fake.clone(), 16).await;
    assert_eq!(out.status, StepStatus::Succeeded);
    assert_eq!(out.jobs[0].steps.len(), 1000);
    assert!(
        out.jobs[0]
            .steps
            .iter()
            .all(|(_, o)| o.status == StepStatus::Succeeded)
    );
    assert_eq!(fake.started().len(), 1000);
    assert!(fake.max_in_flight.load(Ordering::SeqCst) <= 16);
}

#[tokio::test]
async fn long_skip_cascade_does_not_overflow() {
    let fake = Arc::new(Fake::with(&[("s0", StepStatus::Failed)]));
    let mut steps = vec!["s0".to_string()];
    steps.extend((1..3000).map(|i| format!("s{i}<-s{}", i - 1)));
    let refs: Vec<&str> = steps.iter().map(String::as_str).collect();
    let out = run(jobs(&[job("j", "", &refs)]), fake.clone(), 4).await;
    assert_eq!(fake.skipped().len(), 2999);
    assert_eq!(status_of(&out, "s2999"), StepStatus::Skipped);
}

#[tokio::test]
async fn empty_workflow_and_empty_job_succeed() {
    let fake = Arc::new(Fake::default());
    let out = run(workflow("jobs: []\n"), fake.clone(), 2).await;
    assert_eq!(out.status, StepStatus::Succeeded);
    let wf = workflow(
        "jobs:\n  - name: empty\n  - name: after\n    dependsOn: [{job: empty}]\n    steps: []\n",
    );
    let out = run(wf, fake, 2).await;
    assert_eq!(out.jobs[0].status, StepStatus::Succeeded);
    assert_eq!(out.jobs[1].status, StepStatus::Succeeded);
}

#[tokio::test]
async fn unvalidated_loops_and_unknown_names_are_skipped_instead_of_hanging() {
    let fake = Arc::new(Fake::default());
    let wf = jobs(&[
        job(
            "j",
            "",
            &["a<-b", "b<-a", "c", "d<-nope", "e<-a:'{type: skipped}'"],
        ),
        job("x", "y", &["x1"]),
        job("y", "x", &["y1"]),
        job("z", "missing", &["z1"]),
    ]);
    let out = run(wf, fake.clone(), 2).await;
    assert_eq!(fake.started(), ["c", "e"]);
    for step in ["a", "b", "d", "x1", "y1", "z1"] {
        assert_eq!(status_of(&out, step), StepStatus::Skipped, "{step}");
    }
    let reasons: HashMap<String, String> = fake.skipped().into_iter().collect();
    assert_eq!(reasons["d"], "depends on unknown step `nope`");
    assert_eq!(
        reasons["a"],
        "it waits on a dependsOn loop and can never start"
    );
    assert!(
        reasons["z1"].contains("unknown job `missing`"),
        "{}",
        reasons["z1"]
    );
    assert_eq!(out.status, StepStatus::Succeeded);
}

#[tokio::test]
async fn panicking_executor_fails_the_step_without_hanging() {
    let fake = Arc::new(Fake {
        panics: vec!["boom".into()],
        ..Fake::default()
    });
    let out = run(jobs(&[job("j", "", &["boom", "after<-boom"])]), fake, 2).await;
    assert_eq!(status_of(&out, "boom"), StepStatus::Failed);
    assert_eq!(status_of(&out, "after"), StepStatus::Skipped);
    assert_eq!(out.status, StepStatus::Failed);
}

#[tokio::test]
async fn step_skipped_by_its_guard_counts_as_skipped() {
    let fake = Arc::new(Fake::with(&[("guarded", StepStatus::Skipped)]));
    let wf = jobs(&[job(
        "j",
        "",
        &[
            "guarded",
            "next<-guarded",
            "always<-guarded:'{type: always}'",
        ],
    )]);
    let out = run(wf, fake.clone(), 2).await;
    assert_eq!(status_of(&out, "next"), StepStatus::Skipped);
    assert_eq!(status_of(&out, "always"), StepStatus::Succeeded);
    assert_eq!(out.status, StepStatus::Succeeded);
}

#[test]
fn outcome_serializes_with_lowercase_statuses() {
    let out = WorkflowOutcome {
        status: StepStatus::Failed,
        jobs: vec![JobOutcome {
            name: "j".into(),
            status: StepStatus::Failed,
            steps: vec![("a".into(), StepOutcome::failed("boom"))],
        }],
    };
    assert_eq!(
        serde_json::to_string(&out).unwrap(),
        r#"{"status":"failed","jobs":[{"name":"j","status":"failed","steps":[["a",{"status":"failed","error":"boom"}]]}]}"#
    );
}

/// Checks that every step it is handed lies inside the workflow the run was started with.
struct SharedCheck {
    wf: Arc<Workflow>,
    copies: AtomicUsize,
    paths: Mutex<Vec<String>>,
}

impl StepExecutor for SharedCheck {
    fn run_step(&self, step: StepRef) -> Pin<Box<dyn Future<Output = StepOutcome> + Send + '_>> {
        let shared = Arc::ptr_eq(step.workflow(), &self.wf)
            && self
                .wf
                .jobs
                .iter()
                .flat_map(|j| &j.steps)
                .any(|s| std::ptr::eq(s, step.step()));
        if !shared {
            self.copies.fetch_add(1, Ordering::SeqCst);
        }
        self.paths.lock().unwrap().push(step.path());
        Box::pin(async { StepOutcome::succeeded() })
    }

    fn step_skipped(&self, _job: &Job, _step: &Step, _reason: &str) {}
}

#[tokio::test]
async fn steps_are_handed_out_by_position_in_the_shared_workflow_never_copied() {
    let wf = jobs(&[job("j", "", &["a", "b", "c<-a"]), job("k", "j", &["d"])]);
    let check = Arc::new(SharedCheck {
        wf: Arc::clone(&wf),
        copies: AtomicUsize::new(0),
        paths: Mutex::new(Vec::new()),
    });
    let out = run_workflow(wf, check.clone() as Arc<dyn StepExecutor>, 2).await;
    assert_eq!(out.status, StepStatus::Succeeded);
    assert_eq!(check.copies.load(Ordering::SeqCst), 0);
    let mut paths = check.paths.lock().unwrap().clone();
    paths.sort();
    assert_eq!(
        paths,
        [
            "jobs[0].steps[0]",
            "jobs[0].steps[1]",
            "jobs[0].steps[2]",
            "jobs[1].steps[0]"
        ]
    );
}

fn capped_job(name: &str, cap: u64, steps: &[&str]) -> String {
    job(name, "", steps).replacen(
        "    steps:\n",
        &format!("    concurrency: {cap}\n    steps:\n"),
        1,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflow_concurrency_caps_steps_in_flight_below_the_global_limit() {
    let fake = Arc::new(Fake {
        barrier: Some(Arc::new(Barrier::new(2))),
        ..Fake::default()
    });
    let steps: Vec<String> = (0..8).map(|i| format!("s{i}")).collect();
    let refs: Vec<&str> = steps.iter().map(String::as_str).collect();
    let wf = workflow(&format!("concurrency: 2\njobs:\n{}", job("j", "", &refs)));
    let out = run(wf, fake.clone(), 8).await;
    assert_eq!(out.status, StepStatus::Succeeded);
    assert_eq!(fake.max_in_flight.load(Ordering::SeqCst), 2);
    assert_eq!(fake.started().len(), 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_concurrency_caps_each_job_on_its_own() {
    // Two jobs capped at one each: the two-party barrier only opens with one step of each in
    // flight, and nothing more may start meanwhile.
    let fake = Arc::new(Fake {
        barrier: Some(Arc::new(Barrier::new(2))),
        ..Fake::default()
    });
    let wf = jobs(&[
        capped_job("a", 1, &["a0", "a1", "a2", "a3"]),
        capped_job("b", 1, &["b0", "b1", "b2", "b3"]),
    ]);
    let out = run(wf, fake.clone(), 16).await;
    assert_eq!(out.status, StepStatus::Succeeded);
    assert_eq!(fake.max_in_flight.load(Ordering::SeqCst), 2);
    assert_eq!(fake.started().len(), 8);
}

#[tokio::test]
async fn capped_job_still_orders_by_weight_and_does_not_block_other_jobs() {
    let fake = Arc::new(Fake::default());
    let wf = jobs(&[
        capped_job("a", 1, &["a0 weight:3", "a1 weight:1", "a2 weight:2"]),
        job("b", "", &["b0", "b1"]),
    ]);
    let out = run(wf, fake.clone(), 16).await;
    assert_eq!(out.status, StepStatus::Succeeded);
    let started = fake.started();
    let a: Vec<&String> = started.iter().filter(|n| n.starts_with('a')).collect();
    assert_eq!(a, ["a1", "a2", "a0"]);
    // Job b's steps start in the first wave, beside a1, not after job a.
    assert!(
        fake.position(&Event::Started("b1".into())) < fake.position(&Event::Finished("a1".into()))
    );
}

#[tokio::test]
async fn run_capped_keeps_at_most_the_cap_in_flight_and_returns_in_order() {
    for cap in [1usize, 3] {
        let in_flight = AtomicUsize::new(0);
        let max = AtomicUsize::new(0);
        let out = run_capped((0..10).collect(), cap, |i: usize| {
            let (in_flight, max) = (&in_flight, &max);
            async move {
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                max.fetch_max(now, Ordering::SeqCst);
                for _ in 0..3 {
                    tokio::task::yield_now().await;
                }
                in_flight.fetch_sub(1, Ordering::SeqCst);
                i * 2
            }
        })
        .await;
        assert_eq!(out, (0..10).map(|i| i * 2).collect::<Vec<_>>());
        assert_eq!(max.load(Ordering::SeqCst), cap, "cap {cap}");
    }
}

#[tokio::test]
async fn capped_job_with_dependencies_and_many_steps_runs_every_step() {
    let fake = Arc::new(Fake::default());
    let mut steps: Vec<String> = vec!["a".into(), "b<-a".into(), "c".into(), "d<-c;b".into()];
    steps.extend((0..2000).map(|i| format!("s{i}")));
    let refs: Vec<&str> = steps.iter().map(String::as_str).collect();
    let out = run(jobs(&[capped_job("j", 1, &refs)]), fake.clone(), 8).await;
    assert_eq!(out.status, StepStatus::Succeeded);
    assert_eq!(fake.started().len(), 2004);
    assert_eq!(fake.max_in_flight.load(Ordering::SeqCst), 1);
    assert!(
        fake.position(&Event::Finished("b".into())) < fake.position(&Event::Started("d".into()))
    );
}

#[tokio::test]
async fn a_waiting_step_holds_back_its_dependents_while_other_branches_run_on() {
    let fake = Arc::new(Fake::with(&[("approve", StepStatus::Waiting)]));
    let wf = jobs(&[
        job(
            "j",
            "",
            &["approve", "deploy<-approve", "lint", "docs<-lint"],
        ),
        job("k", "j", &["after"]),
    ]);
    let out = run(wf, fake.clone(), 2).await;
    assert_eq!(out.status, StepStatus::Waiting);
    assert_eq!(status_of(&out, "approve"), StepStatus::Waiting);
    assert_eq!(status_of(&out, "deploy"), StepStatus::Waiting);
    assert_eq!(status_of(&out, "docs"), StepStatus::Succeeded);
    let started = fake.started();
    assert!(started.contains(&"docs".to_string()), "{started:?}");
    assert!(!started.contains(&"deploy".to_string()), "{started:?}");
    assert!(!started.contains(&"after".to_string()), "{started:?}");
    assert!(
        fake.skipped().is_empty(),
        "nothing is skipped while it waits"
    );
}

#[tokio::test]
async fn preloaded_steps_are_not_run_again_and_their_outcomes_drive_the_conditions() {
    let fake = Arc::new(Fake::default());
    let wf = jobs(&[
        job(
            "j",
            "",
            &[
                "fetch",
                "approve<-fetch",
                "deploy<-approve",
                "rollback<-approve:'{type: failed}'",
                "lint",
            ],
        ),
        job("k", "j:'{type: always}'", &["report"]),
    ]);
    let preloaded: Preloaded = [
        ("fetch", StepOutcome::succeeded()),
        ("approve", StepOutcome::failed("rejected by ann")),
        ("lint", StepOutcome::succeeded()),
    ]
    .into_iter()
    .map(|(s, o)| (("j".to_string(), s.to_string()), o))
    .collect();
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        run_workflow_preloaded(wf, fake.clone() as Arc<dyn StepExecutor>, 2, &preloaded),
    )
    .await
    .expect("workflow run hung");
    assert_eq!(fake.started(), vec!["rollback", "report"]);
    assert_eq!(status_of(&out, "deploy"), StepStatus::Skipped);
    assert_eq!(status_of(&out, "approve"), StepStatus::Failed);
    assert_eq!(out.status, StepStatus::Failed);
}

/// Hangs in `slow` until the run is cancelled, which happens once `slow` has started.
struct Hangs {
    started: tokio::sync::watch::Sender<bool>,
    dropped: AtomicUsize,
    log: Mutex<Vec<String>>,
}

struct CountDrop<'a>(&'a AtomicUsize);

impl Drop for CountDrop<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl StepExecutor for Hangs {
    fn run_step(&self, step: StepRef) -> Pin<Box<dyn Future<Output = StepOutcome> + Send + '_>> {
        let name = step.step().name.clone();
        Box::pin(async move {
            self.log.lock().unwrap().push(name.clone());
            if name == "slow" {
                let _guard = CountDrop(&self.dropped);
                self.started.send_replace(true);
                std::future::pending::<()>().await;
            }
            StepOutcome::succeeded()
        })
    }

    fn step_skipped(&self, _job: &Job, _step: &Step, _reason: &str) {}

    fn cancelled(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        let mut started = self.started.subscribe();
        Box::pin(async move {
            let _ = started.wait_for(|s| *s).await;
        })
    }
}

#[tokio::test]
async fn a_cancelled_run_drops_the_steps_in_flight_and_starts_no_other() {
    let hangs = Arc::new(Hangs {
        started: tokio::sync::watch::channel(false).0,
        dropped: AtomicUsize::new(0),
        log: Mutex::new(Vec::new()),
    });
    let wf = jobs(&[
        job("j", "", &["slow", "next<-slow"]),
        job("k", "j", &["later"]),
    ]);
    tokio::time::timeout(
        Duration::from_secs(60),
        run_workflow(wf, hangs.clone() as Arc<dyn StepExecutor>, 1),
    )
    .await
    .expect("the cancelled run ended");
    assert_eq!(
        hangs.dropped.load(Ordering::SeqCst),
        1,
        "the step's future was dropped before the run returned"
    );
    assert_eq!(*hangs.log.lock().unwrap(), vec!["slow"]);
}
