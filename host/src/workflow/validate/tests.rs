use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::*;
use crate::repo::{Definition, RepoConfig};

/// Knows `keebDev02` (auth) and `fleet` (sync, lookup, start); `orphan` has an uninstalled type.
#[derive(Default)]
struct FakeCatalog {
    checked: Mutex<Vec<String>>,
}

impl Catalog for FakeCatalog {
    fn method_names(&self, model: &str) -> Option<Vec<String>> {
        let names: &[&str] = match model {
            "keebDev02" => &["auth"],
            "fleet" => &["sync", "lookup", "start"],
            _ => return None,
        };
        Some(names.iter().map(|s| s.to_string()).collect())
    }

    fn check_template(&self, text: &str) -> Result<(), String> {
        self.checked.lock().unwrap().push(text.to_string());
        if text.contains("${{") && !text.contains("}}") {
            return Err("unclosed `${{`; end the expression with `}}`".into());
        }
        if text.contains("nope.") {
            return Err("unknown variable `nope`; did you mean `inputs`?".into());
        }
        Ok(())
    }
}

fn repo(workflows: &[(&str, &str)]) -> Repo {
    let mut models = BTreeMap::new();
    for (name, ty) in [
        ("keebDev02", "proxmox/node"),
        ("fleet", "proxmox/vm"),
        ("orphan", "acme/thing"),
    ] {
        let file = PathBuf::from(format!("models/{name}.yaml"));
        models.insert(
            name.to_string(),
            Definition::parse(&format!("type: {ty}\n"), &file).unwrap(),
        );
    }
    let mut wfs = BTreeMap::new();
    for (name, text) in workflows {
        let file = PathBuf::from(format!("workflows/{name}.yaml"));
        wfs.insert(name.to_string(), Workflow::parse(text, &file).unwrap());
    }
    Repo {
        root: PathBuf::from("/repo"),
        config: RepoConfig::default(),
        models,
        workflows: wfs,
        broken: Default::default(),
    }
}

fn check(text: &str) -> Vec<String> {
    check_with(text, &[])
}

fn check_with(text: &str, others: &[(&str, &str)]) -> Vec<String> {
    let wf = Workflow::parse(text, Path::new("workflows/sync-fleet.yaml")).unwrap();
    let repo = repo(others);
    validate(&wf, &repo, &FakeCatalog::default())
        .iter()
        .map(ToString::to_string)
        .collect()
}

const VALID: &str = r#"name: sync-fleet
inputs:
  type: object
  properties: { vmName: { type: string } }
jobs:
  - name: sync
    steps:
      - name: auth
        task: { type: model_method, modelIdOrName: keebDev02, methodName: auth }
      - name: sync
        task:
          type: model_method
          modelIdOrName: fleet
          methodName: sync
          inputs: { vm: '${{ inputs.vmName }}' }
        dependsOn: [ { step: auth } ]
        guard: 'inputs.vmName != ""'
  - name: report
    dependsOn: [ { job: sync, condition: { type: completed } } ]
    steps:
      - name: lookup
        task: { type: model_method, modelIdOrName: fleet, methodName: lookup }
"#;

#[test]
fn valid_workflow_has_no_diagnostics() {
    assert_eq!(check(VALID), Vec::<String>::new());
}

#[test]
fn unknown_step_dependency_suggests_the_closest() {
    let text = VALID.replace("{ step: auth }", "{ step: auht }");
    assert_eq!(
        check(&text),
        [
            "workflows/sync-fleet.yaml:16: jobs[0].steps[1].dependsOn[0].step: unknown step `auht`; did you mean `auth`? (steps of job `sync`: auth, sync)"
        ]
    );
}

#[test]
fn dependency_on_a_step_of_another_job_explains_job_dependencies() {
    let text = VALID.replace("{ step: auth }", "{ step: lookup }");
    let diags = check(&text);
    assert_eq!(diags.len(), 1, "{diags:#?}");
    assert!(
        diags[0].contains("step `lookup` belongs to job `report`"),
        "{}",
        diags[0]
    );
    assert!(
        diags[0].contains("make job `sync` depend on job `report`"),
        "{}",
        diags[0]
    );
}

#[test]
fn unknown_job_dependency_suggests_the_closest() {
    let text = VALID.replace("{ job: sync,", "{ job: synk,");
    assert_eq!(
        check(&text),
        [
            "workflows/sync-fleet.yaml:19: jobs[1].dependsOn[0].job: unknown job `synk`; did you mean `sync`? (jobs: sync, report)"
        ]
    );
}

#[test]
fn duplicate_names_are_reported_with_the_first_line() {
    let text = VALID
        .replace("- name: sync\n        task:", "- name: auth\n        task:")
        .replace("- name: report", "- name: sync");
    let diags = check(&text);
    assert!(
        diags.contains(&"workflows/sync-fleet.yaml:10: jobs[0].steps[1].name: duplicate step name `auth` (first defined at line 8); step names must be unique, rename one".to_string()),
        "{diags:#?}"
    );
    assert!(
        diags.contains(&"workflows/sync-fleet.yaml:18: jobs[1].name: duplicate job name `sync` (first defined at line 6); job names must be unique, rename one".to_string()),
        "{diags:#?}"
    );
}

#[test]
fn cycle_is_reported_with_the_loop() {
    let text = r#"jobs:
  - name: j
    steps:
      - name: a
        task: { type: model_method, modelIdOrName: fleet, methodName: sync }
        dependsOn: [ { step: b } ]
      - name: b
        task: { type: model_method, modelIdOrName: fleet, methodName: sync }
        dependsOn: [ { step: c } ]
      - name: c
        task: { type: model_method, modelIdOrName: fleet, methodName: sync }
        dependsOn:
          - step: a
"#;
    assert_eq!(
        check(text),
        [
            "workflows/sync-fleet.yaml:6: jobs[0].steps[0].dependsOn[0].step: steps depend on each other in a loop: a → b → c → a (each waits for the next); remove one of these dependsOn entries"
        ]
    );
}

#[test]
fn step_depending_on_itself_is_a_loop() {
    let text = VALID.replace("{ step: auth }", "{ step: sync }");
    let diags = check(&text);
    assert_eq!(diags.len(), 1, "{diags:#?}");
    assert!(diags[0].contains("loop: sync → sync"), "{}", diags[0]);
}

#[test]
fn job_cycle_is_reported_with_the_loop() {
    let text = VALID.replace(
        "  - name: sync\n    steps:",
        "  - name: sync\n    dependsOn: [ { job: report } ]\n    steps:",
    );
    assert_eq!(
        check(&text),
        [
            "workflows/sync-fleet.yaml:7: jobs[0].dependsOn[0].job: jobs depend on each other in a loop: sync → report → sync (each waits for the next); remove one of these dependsOn entries"
        ]
    );
}

#[test]
fn unknown_model_suggests_and_lists_models() {
    let text = VALID.replace("modelIdOrName: fleet\n", "modelIdOrName: flet\n");
    assert_eq!(
        check(&text),
        [
            "workflows/sync-fleet.yaml:13: jobs[0].steps[1].task.modelIdOrName: unknown model `flet`; did you mean `fleet`? (models/ has: fleet, keebDev02, orphan)"
        ]
    );
}

#[test]
fn model_whose_type_is_not_installed_says_so() {
    let text = VALID.replace("modelIdOrName: fleet\n", "modelIdOrName: orphan\n");
    let diags = check(&text);
    assert_eq!(diags.len(), 1);
    assert!(
        diags[0]
            .contains("model `orphan` has type `acme/thing`, which no installed plugin provides"),
        "{}",
        diags[0]
    );
    assert!(diags[0].contains("models/orphan.yaml"), "{}", diags[0]);
}

#[test]
fn unknown_method_suggests_the_closest() {
    let text = VALID.replace("methodName: sync", "methodName: synk");
    assert_eq!(
        check(&text),
        [
            "workflows/sync-fleet.yaml:14: jobs[0].steps[1].task.methodName: unknown method `synk` for model `fleet` (type `proxmox/vm`); did you mean `sync`? (methods: sync, lookup, start)"
        ]
    );
}

const NESTED: &str = r#"jobs:
  - name: j
    steps:
      - name: run
        task: { type: workflow, workflowIdOrName: start-vm, inputs: { vmName: x } }
"#;

#[test]
fn unknown_nested_workflow_suggests_the_closest() {
    let diags = check_with(
        &NESTED.replace("start-vm", "start-mv"),
        &[("start-vm", "jobs: []\n")],
    );
    assert_eq!(
        diags,
        [
            "workflows/sync-fleet.yaml:5: jobs[0].steps[0].task.workflowIdOrName: unknown workflow `start-mv`; did you mean `start-vm`? (workflows/ has: start-vm)"
        ]
    );
}

#[test]
fn nested_workflow_cycle_is_reported_with_the_loop() {
    let start_vm = r#"jobs:
  - name: j
    steps:
      - name: back
        task: { type: workflow, workflowIdOrName: sync-fleet }
"#;
    let diags = check_with(NESTED, &[("start-vm", start_vm), ("sync-fleet", NESTED)]);
    assert_eq!(
        diags,
        [
            "workflows/sync-fleet.yaml:5: jobs[0].steps[0].task.workflowIdOrName: nested workflows run each other in a loop: sync-fleet → start-vm → sync-fleet; a run would never finish, remove one of these workflow steps"
        ]
    );
}

#[test]
fn nested_workflow_running_itself_is_a_loop() {
    let diags = check_with(&NESTED.replace("start-vm", "sync-fleet"), &[]);
    assert_eq!(diags.len(), 1, "{diags:#?}");
    assert!(
        diags[0].contains("loop: sync-fleet → sync-fleet"),
        "{}",
        diags[0]
    );
}

#[test]
fn nested_workflow_missing_a_required_input_is_reported() {
    let start_vm = "inputs:\n  type: object\n  required: [vmName, node]\njobs: []\n";
    let diags = check_with(NESTED, &[("start-vm", start_vm)]);
    assert_eq!(
        diags,
        [
            "workflows/sync-fleet.yaml:5: jobs[0].steps[0].task.inputs: workflow `start-vm` requires input `node`; add `node: …` under this step's `inputs`"
        ]
    );
}

#[test]
fn nested_workflow_given_an_undeclared_input_is_reported_with_the_closest() {
    let start_vm =
        "inputs:\n  type: object\n  properties: { vmNmae: { type: string } }\njobs: []\n";
    let diags = check_with(NESTED, &[("start-vm", start_vm)]);
    assert_eq!(
        diags,
        [
            "workflows/sync-fleet.yaml:5: jobs[0].steps[0].task.inputs.vmName: unknown input `vmName`; did you mean `vmNmae`? (workflow `start-vm` does not declare it)"
        ]
    );
    // A schema that accepts other names is respected.
    let open = "inputs:\n  properties: { a: {} }\n  additionalProperties: true\njobs: []\n";
    assert!(check_with(NESTED, &[("start-vm", open)]).is_empty());
}

#[test]
fn a_step_using_a_broken_model_names_its_file() {
    let mut repo = repo(&[]);
    repo.broken.models.insert(
        "typo".into(),
        vec![Diagnostic::file("models/typo.yaml", "bad")],
    );
    let text = "jobs:\n  - name: j\n    steps:\n      - name: s\n        task: { type: model_method, modelIdOrName: typo, methodName: m }\n";
    let wf = Workflow::parse(text, Path::new("workflows/w.yaml")).unwrap();
    let diags: Vec<String> = validate(&wf, &repo, &FakeCatalog::default())
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        diags,
        [
            "workflows/w.yaml:5: jobs[0].steps[0].task.modelIdOrName: model `typo` is defined in models/typo.yaml, which has errors (listed with that file); fix them first"
        ]
    );
}

#[test]
fn templates_everywhere_are_checked_with_their_lines() {
    let text = r#"jobs:
  - name: j
    steps:
      - name: deploy-${{ self.env
        forEach:
          item: env
          in: '${{ nope.list }}'
        guard: nope.flag
        task:
          type: model_method
          modelIdOrName: fleet
          methodName: start
          inputs:
            deep: { list: [ok, '${{ nope.x }}'] }
"#;
    assert_eq!(
        check(text),
        [
            "workflows/sync-fleet.yaml:4: jobs[0].steps[0].name: unclosed `${{`; end the expression with `}}`",
            "workflows/sync-fleet.yaml:7: jobs[0].steps[0].forEach.in: unknown variable `nope`; did you mean `inputs`?",
            "workflows/sync-fleet.yaml:8: jobs[0].steps[0].guard: unknown variable `nope`; did you mean `inputs`?",
            "workflows/sync-fleet.yaml:14: jobs[0].steps[0].task.inputs.deep.list[1]: unknown variable `nope`; did you mean `inputs`?",
        ]
    );
}

#[test]
fn guard_is_checked_as_a_wrapped_expression() {
    let wf = Workflow::parse(VALID, Path::new("workflows/sync-fleet.yaml")).unwrap();
    let catalog = FakeCatalog::default();
    validate(&wf, &repo(&[]), &catalog);
    let checked = catalog.checked.lock().unwrap();
    assert!(
        checked.contains(&"${{ inputs.vmName != \"\" }}".to_string()),
        "{checked:?}"
    );
    assert!(checked.contains(&"${{ inputs.vmName }}".to_string()));
    assert!(checked.contains(&"auth".to_string()));
}

#[test]
fn guard_written_as_a_template_is_rejected() {
    let text = VALID.replace(
        "guard: 'inputs.vmName != \"\"'",
        "guard: '${{ inputs.vmName }}'",
    );
    let diags = check(&text);
    assert_eq!(diags.len(), 1);
    assert!(
        diags[0].contains(":17: jobs[0].steps[1].guard: a guard is a bare expression"),
        "{}",
        diags[0]
    );
}

#[test]
fn for_each_item_must_be_an_identifier() {
    let text = NESTED.replace(
        "      - name: run\n",
        "      - name: run\n        forEach: { item: my-env, in: [a, b] }\n",
    );
    let diags = check_with(&text, &[("start-vm", "jobs: []\n")]);
    assert_eq!(
        diags,
        [
            "workflows/sync-fleet.yaml:5: jobs[0].steps[0].forEach.item: `my-env` cannot be used as `self.my-env`; use letters, digits and `_`"
        ]
    );
}

#[test]
fn invalid_inputs_schema_is_reported() {
    let text = VALID.replace("{ type: string }", "{ type: strin }");
    assert_eq!(
        check(&text),
        [
            "workflows/sync-fleet.yaml:4: inputs.properties.vmName.type: unknown JSON Schema type `strin`; did you mean `string`? (types: array, boolean, integer, null, number, object, string)"
        ]
    );
}

#[test]
fn every_problem_is_reported_not_just_the_first() {
    let text = VALID
        .replace("methodName: auth", "methodName: ath")
        .replace("{ step: auth }", "{ step: auht }")
        .replace("{ job: sync,", "{ job: snyc,");
    assert_eq!(check(&text).len(), 3);
}

const ASSERTS: &str = r#"name: sync-fleet
concurrency: 2
jobs:
  - name: checks
    concurrency: 1
    steps:
      - name: enough
        task: { type: assert, expression: 'size(model.fleet.resource.vm) >= 3', message: "at least 3 VMs", severity: warn }
      - name: each
        forEach: { item: n, in: [1, 2] }
        concurrency: 1
        task:
          type: assert
          expression: 'self.n > 0'
"#;

#[test]
fn assert_steps_and_concurrency_caps_are_valid() {
    assert_eq!(check(ASSERTS), Vec::<String>::new());
    let wf = Workflow::parse(ASSERTS, Path::new("workflows/sync-fleet.yaml")).unwrap();
    assert_eq!(wf.concurrency, Some(2));
    assert_eq!(wf.jobs[0].concurrency, Some(1));
    assert_eq!(wf.jobs[0].steps[1].concurrency, Some(1));
    assert_eq!(
        wf.jobs[0].steps[0].task,
        Task::Assert {
            expression: "size(model.fleet.resource.vm) >= 3".into(),
            message: Some("at least 3 VMs".into()),
            severity: crate::workflow::Severity::Warn,
        }
    );
    assert_eq!(
        wf.jobs[0].steps[1].task,
        Task::Assert {
            expression: "self.n > 0".into(),
            message: None,
            severity: crate::workflow::Severity::Error,
        }
    );
}

#[test]
fn assert_expression_is_checked_with_its_line() {
    let text = ASSERTS.replace("'self.n > 0'", "'nope.n > 0'");
    assert_eq!(
        check(&text),
        [
            "workflows/sync-fleet.yaml:14: jobs[0].steps[1].task.expression: unknown variable `nope`; did you mean `inputs`?"
        ]
    );
    let text = ASSERTS.replace("'self.n > 0'", "'${{ self.n > 0 }}'");
    let diags = check(&text);
    assert!(
        diags[0].contains(":14: jobs[0].steps[1].task.expression: an assert is a bare expression"),
        "{diags:?}"
    );
}

#[test]
fn assert_severity_must_be_error_or_warn() {
    let text = ASSERTS.replace("severity: warn", "severity: warning");
    let errs = Workflow::parse(&text, Path::new("workflows/sync-fleet.yaml")).unwrap_err();
    assert_eq!(errs[0].line, Some(8));
    assert!(errs[0].message.contains("`warn`"), "{}", errs[0]);
}

#[test]
fn assert_without_expression_or_with_method_fields_is_refused() {
    let text = ASSERTS.replace(
        "          expression: 'self.n > 0'\n",
        "          message: hi\n",
    );
    let errs = Workflow::parse(&text, Path::new("workflows/sync-fleet.yaml")).unwrap_err();
    assert_eq!(
        errs[0].field.as_deref(),
        Some("jobs[0].steps[1].task.expression")
    );
    assert!(
        errs[0].message.contains("needs `expression: …`"),
        "{}",
        errs[0]
    );
    let text = ASSERTS.replace(
        "type: assert, expression",
        "type: assert, methodName: x, expression",
    );
    let errs = Workflow::parse(&text, Path::new("workflows/sync-fleet.yaml")).unwrap_err();
    assert!(
        errs[0].message.contains("`methodName` does not belong"),
        "{}",
        errs[0]
    );
}

#[test]
fn zero_concurrency_is_reported_at_each_level() {
    let text = ASSERTS
        .replace("concurrency: 2", "concurrency: 0")
        .replace("    concurrency: 1\n", "    concurrency: 0\n")
        .replace("        concurrency: 1\n", "        concurrency: 0\n");
    let diags = check(&text);
    assert_eq!(diags.len(), 3, "{diags:?}");
    assert!(
        diags[0].starts_with(
            "workflows/sync-fleet.yaml:2: concurrency: concurrency must be at least 1"
        ),
        "{diags:?}"
    );
    assert!(
        diags[1].contains(":5: jobs[0].concurrency: concurrency must be at least 1"),
        "{diags:?}"
    );
    assert!(
        diags[2].contains(":11: jobs[0].steps[1].concurrency: concurrency must be at least 1"),
        "{diags:?}"
    );
}

#[test]
fn a_manual_approval_step_is_valid_but_not_with_for_each() {
    let approval = "jobs:\n  - name: j\n    steps:\n      - name: gate\n        task: { type: manual_approval, message: Go? }\n";
    assert_eq!(check(approval), Vec::<String>::new());
    let text = approval.replace(
        "      - name: gate\n",
        "      - name: gate\n        forEach: { item: env, in: [a, b] }\n",
    );
    let diags = check(&text);
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert!(
        diags[0].starts_with("workflows/sync-fleet.yaml:5: jobs[0].steps[0].forEach: a `manual_approval` step asks once"),
        "{}",
        diags[0]
    );
}

const RUNS_ON: &str = r#"name: sync-fleet
jobs:
  - name: sync
    steps:
      - name: auth
        runsOn: [site-b]
        task: { type: model_method, modelIdOrName: keebDev02, methodName: auth }
      - name: enough
        runsOn: []
        task: { type: assert, expression: 'true' }
"#;

#[test]
fn runs_on_needs_the_postgres_datastore_and_a_model_method_step() {
    let wf = Workflow::parse(RUNS_ON, Path::new("workflows/sync-fleet.yaml")).unwrap();
    let mut repo = repo(&[]);
    let got: Vec<String> = validate(&wf, &repo, &FakeCatalog::default())
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(got.len(), 2, "{got:#?}");
    assert!(
        got[0].starts_with("workflows/sync-fleet.yaml:6: jobs[0].steps[0].runsOn:")
            && got[0].contains("PostgreSQL datastore"),
        "{got:#?}"
    );
    assert!(
        got[1].starts_with("workflows/sync-fleet.yaml:9: jobs[0].steps[1].runsOn:")
            && got[1].contains("only a `model_method` step"),
        "{got:#?}"
    );

    repo.config.datastore = Some(crate::repo::DatastoreConfig {
        postgres: "postgres://orch@127.0.0.1:5432/orch".into(),
        password_vault: None,
        coordinator_lease_seconds: 30,
    });
    let got: Vec<String> = validate(&wf, &repo, &FakeCatalog::default())
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        got.len(),
        1,
        "with a datastore only the assert's runsOn is wrong: {got:#?}"
    );
    assert!(got[0].contains("only a `model_method` step"), "{got:#?}");
}
