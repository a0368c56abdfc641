//! Assert steps, `orch run --junit`, forEach concurrency caps, and `orch workflow|model
//! evaluate`, through the real binary.

mod support;

use serde_json::Value;
use support::TestRepo;

const SECRET: &str = "s3cret-evaluate-horse-battery";

/// A repo with model `box` (test/echo) and a workflow `seed` that writes items a, b and c one
/// at a time (`concurrency: 1` on the forEach step).
fn repo() -> TestRepo {
    let repo = TestRepo::new(&["testplug"]);
    repo.write("models/box.yaml", "type: test/echo\n");
    repo.write(
        "workflows/seed.yaml",
        r#"jobs:
  - name: seed
    steps:
      - name: write-${{ self.item }}
        forEach: { item: item, in: [a, b, c] }
        concurrency: 1
        task:
          type: model_method
          modelIdOrName: box
          methodName: write
          inputs: { name: '${{ self.item }}', attributes: { n: 1 } }
"#,
    );
    repo
}

/// A workflow that seeds, then checks the seeded items with one assert of `severity`.
fn gate(repo: &TestRepo, expression: &str, severity: &str) {
    repo.write(
        "workflows/gate.yaml",
        &format!(
            r#"jobs:
  - name: seed
    steps:
      - name: seed
        task: {{ type: workflow, workflowIdOrName: seed }}
  - name: verify
    dependsOn: [ {{ job: seed }} ]
    steps:
      - name: enough-items
        task:
          type: assert
          expression: '{expression}'
          message: "the box holds at least 5 items"
          severity: {severity}
      - name: after
        dependsOn: [ {{ step: enough-items }} ]
        task: {{ type: model_method, modelIdOrName: box, methodName: list }}
"#
        ),
    );
}

fn junit(repo: &TestRepo) -> String {
    std::fs::read_to_string(repo.path().join("report.xml")).expect("report.xml written")
}

/// (name, failure message, failure text, skipped, system-out) of every test case.
type Case = (String, Option<String>, Option<String>, bool, Option<String>);

fn cases(xml: &str) -> Vec<Case> {
    let doc = roxmltree::Document::parse(xml).unwrap_or_else(|e| panic!("bad XML ({e}):\n{xml}"));
    doc.descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .map(|n| {
            let child = |tag: &str| n.children().find(|c| c.has_tag_name(tag));
            let failure = child("failure");
            (
                n.attribute("name").unwrap_or("").to_string(),
                failure
                    .and_then(|f| f.attribute("message"))
                    .map(String::from),
                failure.and_then(|f| f.text()).map(String::from),
                child("skipped").is_some(),
                child("system-out").and_then(|c| c.text()).map(String::from),
            )
        })
        .collect()
}

#[test]
fn a_failing_error_assert_fails_the_run_and_is_a_junit_failure_with_its_message() {
    let repo = repo();
    gate(&repo, "size(model.box.resource.item) >= 5", "error");
    let run = repo
        .orch(&["--json", "run", "gate", "--junit", "report.xml"])
        .code(1);
    let record = run.json();
    let steps = record["steps"].as_array().unwrap();
    let assert_step = steps
        .iter()
        .find(|s| s["name"] == "enough-items")
        .expect("assert recorded");
    assert_eq!(assert_step["status"], "failed");
    assert_eq!(assert_step["model"], Value::Null);
    assert!(
        assert_step["error"]
            .as_str()
            .unwrap()
            .contains("the box holds at least 5 items"),
        "{assert_step}"
    );
    let cases = cases(&junit(&repo));
    let failed = cases
        .iter()
        .find(|c| c.0 == "enough-items")
        .expect("a case for the assert");
    assert_eq!(failed.1.as_deref(), Some("the box holds at least 5 items"));
    assert!(
        failed.2.as_deref().unwrap().contains("is false"),
        "{failed:?}"
    );
    let after = cases.iter().find(|c| c.0 == "after").unwrap();
    assert!(after.3, "the dependent step is skipped: {after:?}");
}

#[test]
fn a_warn_assert_passes_the_run_and_records_the_warning() {
    let repo = repo();
    gate(&repo, "size(model.box.resource.item) >= 5", "warn");
    let run = repo
        .orch(&["--json", "run", "gate", "--junit", "report.xml"])
        .ok();
    let record = run.json();
    let steps = record["steps"].as_array().unwrap();
    let assert_step = steps.iter().find(|s| s["name"] == "enough-items").unwrap();
    assert_eq!(assert_step["status"], "succeeded");
    assert!(
        assert_step["warning"]
            .as_str()
            .unwrap()
            .contains("the box holds at least 5 items"),
        "{assert_step}"
    );
    let after = steps.iter().find(|s| s["name"] == "after").unwrap();
    assert_eq!(
        after["status"], "succeeded",
        "a warning counts as succeeded"
    );
    let cases = cases(&junit(&repo));
    let warned = cases.iter().find(|c| c.0 == "enough-items").unwrap();
    assert_eq!(warned.1, None, "a warning is not a failure");
    assert!(
        warned.4.as_deref().unwrap().contains("at least 5 items"),
        "{warned:?}"
    );
}

#[test]
fn the_junit_file_parses_and_has_one_case_per_recorded_step() {
    let repo = repo();
    gate(&repo, "size(model.box.resource.item) == 3", "error");
    let record = repo
        .orch(&["--json", "run", "gate", "--junit", "report.xml"])
        .ok()
        .json();
    let xml = junit(&repo);
    let cases = cases(&xml);
    let recorded: Vec<&str> = record["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    let names: Vec<&str> = cases.iter().map(|c| c.0.as_str()).collect();
    let mut sorted_recorded = recorded.clone();
    sorted_recorded.sort();
    let mut sorted_names = names.clone();
    sorted_names.sort();
    assert_eq!(sorted_names, sorted_recorded, "{xml}");
    // The nested workflow's forEach items are cases of their own, named as in the record.
    for item in ["a", "b", "c"] {
        assert!(
            names.contains(&format!("seed/seed.write-{item}").as_str()),
            "{names:?}"
        );
    }
    assert!(cases.iter().all(|c| c.1.is_none() && !c.3), "{cases:?}");
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let suites: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testsuite"))
        .map(|n| n.attribute("name").unwrap())
        .collect();
    assert_eq!(suites, ["seed", "verify"]);
}

#[test]
fn the_junit_file_is_written_when_a_step_fails_and_an_unwritable_path_stops_the_run_first() {
    let repo = repo();
    let out = repo
        .orch(&["run", "seed", "--junit", "missing-dir/report.xml"])
        .code(2);
    assert!(
        out.stderr.contains("missing-dir/report.xml") && out.stderr.contains("cannot write"),
        "{}",
        out.all()
    );
    let runs = repo.orch(&["--json", "runs", "list"]).ok().json();
    assert_eq!(runs.as_array().unwrap().len(), 0, "nothing ran");
}

/// The most `seed.write-*` items in flight at once, from the run's event stream.
fn max_items_in_flight(record: &Value) -> i32 {
    max_in_flight(record, "seed.write-", 3)
}

/// The most steps named `prefix…` in flight at once; `expected` of them must have started.
fn max_in_flight(record: &Value, prefix: &str, expected: usize) -> i32 {
    let mut in_flight = 0i32;
    let mut max = 0;
    let mut started = 0;
    for event in record["events"].as_array().unwrap() {
        let step = event["step"].as_str().unwrap_or("");
        if !step.starts_with(prefix) {
            continue;
        }
        match event["event"].as_str().unwrap_or("") {
            "stepStarted" => {
                in_flight += 1;
                started += 1;
                max = max.max(in_flight);
            }
            "stepFinished" => in_flight -= 1,
            _ => {}
        }
    }
    assert_eq!(started, expected, "{}", record["events"]);
    max
}

#[test]
fn a_concurrency_cap_of_one_on_a_for_each_step_keeps_one_item_in_flight() {
    let repo = repo();
    let record = repo.orch(&["--json", "run", "seed"]).ok().json();
    assert_eq!(max_items_in_flight(&record), 1);
}

#[test]
fn for_each_items_without_a_cap_stay_within_the_global_concurrency_across_steps() {
    // Two forEach steps side by side, three items each, no caps of their own: with
    // `concurrency: 2` in orch.yaml, at most two calls are in flight in the whole run.
    let repo = repo();
    repo.write(
        "workflows/wide.yaml",
        r#"jobs:
  - name: wide
    steps:
      - name: left-${{ self.item }}
        forEach: { item: item, in: [a, b, c] }
        task: { type: model_method, modelIdOrName: box, methodName: write, inputs: { name: 'l${{ self.item }}', attributes: {} } }
      - name: right-${{ self.item }}
        forEach: { item: item, in: [a, b, c] }
        task: { type: model_method, modelIdOrName: box, methodName: write, inputs: { name: 'r${{ self.item }}', attributes: {} } }
"#,
    );
    let config = std::fs::read_to_string(repo.path().join("orch.yaml")).unwrap();
    assert!(config.contains("concurrency: 8"), "{config}");
    repo.write(
        "orch.yaml",
        &config.replace("concurrency: 8", "concurrency: 2"),
    );
    let record = repo.orch(&["--json", "run", "wide"]).ok().json();
    assert!(
        max_in_flight(&record, "wide.", 6) <= 2,
        "{}",
        record["events"]
    );
}

#[test]
fn zero_concurrency_is_a_validation_error_naming_the_line() {
    let repo = repo();
    let text = std::fs::read_to_string(repo.path().join("workflows/seed.yaml")).unwrap();
    repo.write(
        "workflows/seed.yaml",
        &text.replace("concurrency: 1", "concurrency: 0"),
    );
    let out = repo.orch(&["workflow", "validate", "seed"]).code(2);
    assert!(
        out.stderr.contains(
            "workflows/seed.yaml:6: jobs[0].steps[0].concurrency: concurrency must be at least 1"
        ),
        "{}",
        out.all()
    );
}

/// A repo whose model reads a vault secret and whose workflow reads the data and the model.
fn secret_repo() -> TestRepo {
    let repo = repo();
    repo.orch_stdin(&["vault", "put", "ops", "token"], &format!("{SECRET}\n"))
        .ok();
    repo.write(
        "models/keyed.yaml",
        r#"type: test/echo
globalArguments:
  greeting: 'hello ${{ vault.get("ops", "token") }}'
  extra: '${{ size(model.box.resource.item) }}'
methods:
  echo:
    arguments: { value: '${{ inputs.who }}' }
"#,
    );
    repo.write(
        "workflows/inspect.yaml",
        r#"inputs:
  type: object
  properties: { who: { type: string, default: ops } }
jobs:
  - name: look
    steps:
      - name: greet-${{ self.n }}
        forEach: { item: n, in: [a, b, c] }
        guard: 'self.n != "b"'
        task:
          type: model_method
          modelIdOrName: keyed
          methodName: echo
          inputs: { value: '${{ inputs.who }}-${{ vault.get("ops", "token") }}' }
      - name: three
        task: { type: assert, expression: 'size(model.box.resource.item) == 3', message: three items }
"#,
    );
    repo.orch(&["run", "seed"]).ok();
    repo
}

#[test]
fn workflow_evaluate_prints_resolved_values_and_stars_for_a_secret() {
    let repo = secret_repo();
    let text = repo.orch(&["workflow", "evaluate", "inspect"]).ok();
    let json = repo
        .orch(&[
            "--json", "workflow", "evaluate", "inspect", "--input", "who=me",
        ])
        .ok();
    for out in [&text, &json] {
        assert!(!out.all().contains(SECRET), "secret shown:\n{}", out.all());
    }
    assert!(text.stdout.contains("greet-a"), "{}", text.stdout);
    assert!(text.stdout.contains("ops-***"), "{}", text.stdout);
    let v = json.json();
    let steps = &v["jobs"][0]["steps"];
    let greet = &steps[0];
    assert_eq!(
        greet["forEach"]["value"],
        serde_json::json!(["a", "b", "c"])
    );
    let instances = greet["instances"].as_array().unwrap();
    assert_eq!(instances.len(), 3);
    assert_eq!(instances[0]["name"]["value"], "greet-a");
    assert_eq!(instances[0]["guard"]["value"], true);
    assert_eq!(instances[1]["guard"]["value"], false);
    assert_eq!(instances[0]["inputs"]["value"]["value"], "me-***");
    assert_eq!(steps[1]["instances"][0]["assert"]["value"], true);
    // Nothing ran: the only recorded run is the seed.
    let runs = repo.orch(&["--json", "runs", "list"]).ok().json();
    assert_eq!(runs.as_array().unwrap().len(), 1);
}

#[test]
fn model_evaluate_prints_resolved_arguments_and_stars_for_a_secret() {
    let repo = secret_repo();
    let text = repo.orch(&["model", "evaluate", "keyed"]).ok();
    let json = repo
        .orch(&[
            "--json", "model", "evaluate", "keyed", "--method", "echo", "--input", "who=me",
        ])
        .ok();
    for out in [&text, &json] {
        assert!(!out.all().contains(SECRET), "secret shown:\n{}", out.all());
    }
    assert!(text.stdout.contains("hello ***"), "{}", text.stdout);
    let v = json.json();
    assert_eq!(v["globalArguments"]["value"]["greeting"], "hello ***");
    assert_eq!(v["globalArguments"]["value"]["extra"], 3);
    assert_eq!(v["methods"]["echo"]["value"]["value"], "me");
}

#[test]
fn evaluate_shows_an_expression_error_with_file_line_and_field() {
    let repo = secret_repo();
    repo.write(
        "workflows/broken.yaml",
        r#"jobs:
  - name: look
    steps:
      - name: three
        task: { type: assert, expression: 'model.box.resource.item["zzz"].attributes.n == 1' }
"#,
    );
    let v = repo
        .orch(&["--json", "workflow", "evaluate", "broken"])
        .ok()
        .json();
    let err = v["jobs"][0]["steps"][0]["instances"][0]["assert"]["error"]
        .as_str()
        .unwrap_or_else(|| panic!("{v}"));
    assert!(
        err.starts_with("workflows/broken.yaml:5: jobs[0].steps[0].task.expression"),
        "{err}"
    );
}

#[test]
fn an_assert_that_gives_a_secret_fails_without_showing_it_anywhere() {
    let repo = secret_repo();
    repo.write(
        "workflows/leaky.yaml",
        r#"jobs:
  - name: j
    steps:
      - name: not-a-bool
        task: { type: assert, expression: 'vault.get("ops", "token")', message: the token }
"#,
    );
    let run = repo
        .orch(&["-v", "run", "leaky", "--junit", "report.xml"])
        .code(1);
    assert!(run.all().contains("not a bool"), "{}", run.all());
    assert!(!run.all().contains(SECRET), "{}", run.all());
    let xml = junit(&repo);
    assert!(xml.contains("***") && !xml.contains(SECRET), "{xml}");
    assert!(
        !support::contains_bytes(&repo.orch_dir_bytes(), SECRET),
        "the secret is in the run record or another .orch file"
    );
}

#[test]
fn a_dry_run_runs_asserts() {
    let repo = repo();
    repo.orch(&["run", "seed"]).ok();
    repo.write(
        "workflows/only-check.yaml",
        r#"jobs:
  - name: j
    steps:
      - name: four
        task: { type: assert, expression: 'size(model.box.resource.item) == 4', message: four items }
"#,
    );
    let run = repo.orch(&["run", "only-check", "--dry-run"]).code(1);
    assert!(
        run.all().contains("assertion failed: four items"),
        "{}",
        run.all()
    );
}
