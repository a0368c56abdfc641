//! Workflow files, with swamp's field names.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use super::condition::{Condition, DEFAULT_CONDITION};
use crate::repo::{Diagnostic, LineIndex, deserialize_via, null_default, parse_yaml};

/// A parsed workflow file.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Workflow {
    /// The workflow's name: the file stem.
    pub name: String,
    /// Free text for humans and agents.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON Schema for the values given with `--input`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inputs: Option<Value>,
    /// The jobs, in file order.
    pub jobs: Vec<Job>,
    /// At most this many steps of this workflow in flight (`None`: the global limit).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u64>,
    /// Tags stored on every resource version its steps write (over the definitions' tags,
    /// under `--tag`).
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub tags: std::collections::BTreeMap<String, String>,
    /// Cron schedules and webhooks that start this workflow (`orch triggers`, `orch serve`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub triggers: Vec<super::triggers::Trigger>,
    /// The file, relative to the repository root.
    #[serde(skip)]
    pub file: PathBuf,
    /// Where each field is written, for diagnostics.
    #[serde(skip)]
    pub lines: LineIndex,
}

/// A group of steps; jobs depend on other jobs as a whole.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Job {
    /// Unique within the workflow.
    pub name: String,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Jobs that must finish first, each with the condition it must meet.
    #[serde(default, deserialize_with = "null_default")]
    pub depends_on: Vec<JobDependency>,
    /// The steps, in file order.
    #[serde(default, deserialize_with = "null_default")]
    pub steps: Vec<Step>,
    /// At most this many steps of this job in flight (`None`: unlimited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u64>,
}

/// One `dependsOn` entry of a job.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct JobDependency {
    /// Name of the job depended on.
    pub job: String,
    /// Defaults to `succeeded`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<Condition>,
}

/// One `dependsOn` entry of a step; only steps of the same job can be named.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StepDependency {
    /// Name of the step depended on.
    pub step: String,
    /// Defaults to `succeeded`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<Condition>,
}

/// One step: a method call or a nested workflow.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Step {
    /// Unique within the job; may contain `${{ self.<item> }}` under `forEach`.
    pub name: String,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// What the step runs.
    pub task: Task,
    /// Steps of the same job that must finish first.
    #[serde(default, deserialize_with = "null_default")]
    pub depends_on: Vec<StepDependency>,
    /// Among steps ready at the same time, lower weights start first.
    #[serde(default)]
    pub weight: i64,
    /// A failure is recorded but does not fail the job or workflow.
    #[serde(default)]
    pub allow_failure: bool,
    /// Bare CEL expression; when false the step is skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guard: Option<String>,
    /// Runs one instance of the step per item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub for_each: Option<ForEach>,
    /// At most this many forEach items in flight (`None`: up to the global limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u64>,
    /// `runsOn: [site-b]`: an `orch worker` whose labels include all of these runs the step's
    /// method call (`[]`: any worker); needs the PostgreSQL datastore. Unset: runs here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runs_on: Option<Vec<String>>,
}

/// `forEach: { item: env, in: '${{ inputs.environments }}' }`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ForEach {
    /// Name under which each item is visible, as `self.<item>`.
    pub item: String,
    /// A list, or a template that evaluates to one.
    #[serde(rename = "in")]
    pub items: Value,
}

/// What a step runs.
// Read through `RawTask` rather than serde's tagged-enum support: that buffers the mapping and
// loses the path and line of any error inside it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(
    tag = "type",
    rename_all = "snake_case",
    rename_all_fields = "camelCase"
)]
pub enum Task {
    /// Calls a method of a model.
    ModelMethod {
        /// The model (definition) name.
        model_id_or_name: String,
        /// The method to call.
        method_name: String,
        /// Arguments overriding the definition's; always a JSON object.
        inputs: Value,
    },
    /// Runs another workflow.
    Workflow {
        /// The nested workflow's name.
        workflow_id_or_name: String,
        /// The nested workflow's inputs; always a JSON object.
        inputs: Value,
    },
    /// Checks a CEL predicate; a false one fails the step (`error`) or records a warning.
    Assert {
        /// Bare CEL expression over the step's variables; must give a bool.
        expression: String,
        /// What the assertion claims, for humans and JUnit.
        #[serde(skip_serializing_if = "Option::is_none")]
        message: Option<String>,
        /// `error` (default) or `warn`.
        severity: Severity,
    },
    /// Suspends the run until `orch runs approve` or `orch runs reject` decides.
    ManualApproval {
        /// What the approver is asked, e.g. "Deploy to production?".
        #[serde(skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
}

/// How a false `assert` counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// The step fails.
    #[default]
    Error,
    /// The step succeeds with a warning recorded.
    Warn,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum TaskType {
    ModelMethod,
    Workflow,
    Assert,
    ManualApproval,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawTask {
    #[serde(rename = "type")]
    kind: TaskType,
    #[serde(default)]
    model_id_or_name: Option<String>,
    #[serde(default)]
    method_name: Option<String>,
    #[serde(default)]
    workflow_id_or_name: Option<String>,
    #[serde(default = "empty_object", deserialize_with = "object")]
    inputs: Value,
    #[serde(default)]
    expression: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    severity: Option<Severity>,
}

impl<'de> Deserialize<'de> for Task {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_via::<D, RawTask, Task>(deserializer, "a mapping with a `type` field")
    }
}

impl TryFrom<RawTask> for Task {
    type Error = String;
    fn try_from(raw: RawTask) -> Result<Task, String> {
        let required = |value: Option<String>, field: &str, kind: &str| {
            value.ok_or_else(|| {
                format!("missing field `{field}`; a `type: {kind}` task needs `{field}: …`")
            })
        };
        let misplaced = |field: &str, kind: &str, other: &str| {
            format!(
                "`{field}` does not belong in a `type: {kind}` task; remove it or use `type: {other}`"
            )
        };
        let kind = match raw.kind {
            TaskType::ModelMethod => "model_method",
            TaskType::Workflow => "workflow",
            TaskType::Assert => "assert",
            TaskType::ManualApproval => "manual_approval",
        };
        if !matches!(raw.kind, TaskType::Assert) {
            for (field, present) in [
                ("expression", raw.expression.is_some()),
                ("severity", raw.severity.is_some()),
            ] {
                if present {
                    return Err(misplaced(field, kind, "assert"));
                }
            }
        }
        if raw.message.is_some() && matches!(raw.kind, TaskType::ModelMethod | TaskType::Workflow) {
            return Err(misplaced(
                "message",
                kind,
                "assert` or `type: manual_approval",
            ));
        }
        match raw.kind {
            TaskType::Assert => {
                for (field, present) in [
                    ("modelIdOrName", raw.model_id_or_name.is_some()),
                    ("methodName", raw.method_name.is_some()),
                    ("workflowIdOrName", raw.workflow_id_or_name.is_some()),
                    (
                        "inputs",
                        raw.inputs.as_object().is_some_and(|m| !m.is_empty()),
                    ),
                ] {
                    if present {
                        return Err(format!(
                            "`{field}` does not belong in a `type: assert` task; an assert only \
                             has `expression`, `message` and `severity`"
                        ));
                    }
                }
                Ok(Task::Assert {
                    expression: required(raw.expression, "expression", "assert")?,
                    message: raw.message,
                    severity: raw.severity.unwrap_or_default(),
                })
            }
            TaskType::ModelMethod => {
                if raw.workflow_id_or_name.is_some() {
                    return Err(misplaced("workflowIdOrName", "model_method", "workflow"));
                }
                Ok(Task::ModelMethod {
                    model_id_or_name: required(
                        raw.model_id_or_name,
                        "modelIdOrName",
                        "model_method",
                    )?,
                    method_name: required(raw.method_name, "methodName", "model_method")?,
                    inputs: raw.inputs,
                })
            }
            TaskType::Workflow => {
                if raw.model_id_or_name.is_some() {
                    return Err(misplaced("modelIdOrName", "workflow", "model_method"));
                }
                if raw.method_name.is_some() {
                    return Err(misplaced("methodName", "workflow", "model_method"));
                }
                Ok(Task::Workflow {
                    workflow_id_or_name: required(
                        raw.workflow_id_or_name,
                        "workflowIdOrName",
                        "workflow",
                    )?,
                    inputs: raw.inputs,
                })
            }
            TaskType::ManualApproval => {
                for (field, present) in [
                    ("modelIdOrName", raw.model_id_or_name.is_some()),
                    ("methodName", raw.method_name.is_some()),
                    ("workflowIdOrName", raw.workflow_id_or_name.is_some()),
                    (
                        "inputs",
                        raw.inputs.as_object().is_some_and(|m| !m.is_empty()),
                    ),
                ] {
                    if present {
                        let other = if field == "workflowIdOrName" {
                            "workflow"
                        } else {
                            "model_method"
                        };
                        return Err(misplaced(field, "manual_approval", other));
                    }
                }
                Ok(Task::ManualApproval {
                    message: raw.message,
                })
            }
        }
    }
}

impl Task {
    /// The task's inputs (a JSON object; empty for an assert).
    pub fn inputs(&self) -> &Value {
        static NONE: std::sync::LazyLock<Value> = std::sync::LazyLock::new(empty_object);
        match self {
            Task::ModelMethod { inputs, .. } | Task::Workflow { inputs, .. } => inputs,
            Task::Assert { .. } | Task::ManualApproval { .. } => &NONE,
        }
    }
}

fn empty_object() -> Value {
    Value::Object(Map::new())
}

/// Accepts only a mapping (or nothing), so a list or scalar is caught with its line.
fn object<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Value, D::Error> {
    let map: Option<Map<String, Value>> = Option::deserialize(deserializer)?;
    Ok(Value::Object(map.unwrap_or_default()))
}

impl JobDependency {
    /// The condition, `succeeded` when omitted.
    pub fn condition(&self) -> &Condition {
        self.condition.as_ref().unwrap_or(&DEFAULT_CONDITION)
    }
}

impl StepDependency {
    /// The condition, `succeeded` when omitted.
    pub fn condition(&self) -> &Condition {
        self.condition.as_ref().unwrap_or(&DEFAULT_CONDITION)
    }
}

impl Job {
    /// The first step called `name`.
    pub fn step(&self, name: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.name == name)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWorkflow {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    inputs: Option<Value>,
    jobs: Vec<Job>,
    #[serde(default)]
    concurrency: Option<u64>,
    #[serde(default, deserialize_with = "null_default")]
    tags: std::collections::BTreeMap<String, String>,
    #[serde(default, deserialize_with = "null_default")]
    triggers: Vec<super::triggers::Trigger>,
}

impl Workflow {
    /// Parses a workflow; `file` is relative to the repo root and its stem is the name.
    pub fn parse(text: &str, file: &Path) -> Result<Workflow, Vec<Diagnostic>> {
        let lines = LineIndex::parse(text);
        let stem = file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let raw: RawWorkflow = parse_yaml(text, file, &lines).map_err(|d| vec![d])?;
        if let Some(name) = &raw.name
            && *name != stem
        {
            return Err(vec![Diagnostic::at(
                file,
                &lines,
                "name",
                format!(
                    "name `{name}` does not match the file name; rename the file to \
                     `workflows/{name}.yaml` or set `name: {stem}` (or remove `name`)"
                ),
            )]);
        }
        Ok(Workflow {
            name: stem,
            description: raw.description,
            inputs: raw.inputs.filter(|v| !v.is_null()),
            jobs: raw.jobs,
            concurrency: raw.concurrency,
            tags: raw.tags,
            triggers: raw.triggers,
            file: file.to_path_buf(),
            lines,
        })
    }

    /// The first job called `name`.
    pub fn job(&self, name: &str) -> Option<&Job> {
        self.jobs.iter().find(|j| j.name == name)
    }

    /// Line of a dotted field path in this workflow's file (nearest ancestor if absent).
    pub fn line_of(&self, path: &str) -> Option<usize> {
        self.lines.line_of(path)
    }

    /// Names of the workflows this one runs as steps, in file order (with repeats).
    pub fn nested_workflows(&self) -> impl Iterator<Item = &str> {
        self.jobs
            .iter()
            .flat_map(|j| &j.steps)
            .filter_map(|s| match &s.task {
                Task::Workflow {
                    workflow_id_or_name,
                    ..
                } => Some(workflow_id_or_name.as_str()),
                Task::ModelMethod { .. } | Task::Assert { .. } | Task::ManualApproval { .. } => {
                    None
                }
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) const SYNC_FLEET: &str = r#"name: sync-fleet
description: Auth + sync all VMs
inputs:
  type: object
  properties: { vmName: { type: string } }
  required: [vmName]
jobs:
  - name: sync
    description: the job
    steps:
      - name: auth
        description: get a ticket
        task: { type: model_method, modelIdOrName: keebDev02, methodName: auth, inputs: { } }
      - name: sync
        task: { type: model_method, modelIdOrName: fleet, methodName: sync }
        dependsOn: [ { step: auth, condition: { type: succeeded } } ]
        weight: 0
        allowFailure: false
        guard: 'inputs.vmName != ""'
      - name: deploy-${{ self.env }}
        forEach: { item: env, in: '${{ inputs.environments }}' }
        task: { type: workflow, workflowIdOrName: start-vm, inputs: { vmName: '${{ self.env }}', count: 2 } }
  - name: after
    dependsOn: [ { job: sync } ]
    steps: []
"#;

    fn parse(text: &str) -> Result<Workflow, Vec<Diagnostic>> {
        Workflow::parse(text, Path::new("workflows/sync-fleet.yaml"))
    }

    #[test]
    fn swamp_style_workflow_is_read() {
        let wf = parse(SYNC_FLEET).unwrap();
        assert_eq!(wf.name, "sync-fleet");
        assert_eq!(wf.inputs.as_ref().unwrap()["required"], json!(["vmName"]));
        let steps = &wf.jobs[0].steps;
        assert_eq!(steps.len(), 3);
        assert_eq!(
            steps[0].task,
            Task::ModelMethod {
                model_id_or_name: "keebDev02".into(),
                method_name: "auth".into(),
                inputs: json!({})
            }
        );
        assert_eq!(steps[1].depends_on[0].step, "auth");
        assert_eq!(steps[1].depends_on[0].condition(), &Condition::Succeeded);
        assert_eq!(steps[1].guard.as_deref(), Some("inputs.vmName != \"\""));
        let fe = steps[2].for_each.as_ref().unwrap();
        assert_eq!(fe.item, "env");
        assert_eq!(fe.items, json!("${{ inputs.environments }}"));
        assert_eq!(steps[2].task.inputs()["count"], json!(2));
        assert_eq!(wf.jobs[1].depends_on[0].condition(), &Condition::Succeeded);
        assert_eq!(wf.nested_workflows().collect::<Vec<_>>(), ["start-vm"]);
        assert_eq!(wf.line_of("jobs[0].steps[1].guard"), Some(19));
    }

    #[test]
    fn misspelled_task_field_points_at_its_line() {
        let text = SYNC_FLEET.replace("methodName: sync", "methodNme: sync");
        let errs = parse(&text).unwrap_err();
        assert_eq!(
            errs[0].to_string(),
            "workflows/sync-fleet.yaml:15: jobs[0].steps[1].task.methodNme: unknown field `methodNme`; did you mean `methodName`?"
        );
    }

    #[test]
    fn misspelled_step_field_is_suggested() {
        let text = SYNC_FLEET.replace("allowFailure", "allowFailures");
        let errs = parse(&text).unwrap_err();
        assert_eq!(
            errs[0].to_string(),
            "workflows/sync-fleet.yaml:18: jobs[0].steps[1].allowFailures: unknown field `allowFailures`; did you mean `allowFailure`?"
        );
    }

    #[test]
    fn unknown_task_type_is_suggested() {
        let text = SYNC_FLEET.replace("type: workflow", "type: workflw");
        let errs = parse(&text).unwrap_err();
        assert_eq!(errs[0].line, Some(22));
        assert_eq!(errs[0].field.as_deref(), Some("jobs[0].steps[2].task.type"));
        assert!(
            errs[0].message.contains("did you mean `workflow`?"),
            "{}",
            errs[0]
        );
    }

    #[test]
    fn a_manual_approval_step_has_an_optional_message_and_nothing_else() {
        let text = SYNC_FLEET.replace(
            "{ type: model_method, modelIdOrName: fleet, methodName: sync }",
            "{ type: manual_approval, message: \"Deploy to production?\" }",
        );
        let wf = parse(&text).expect("parses");
        assert_eq!(
            wf.jobs[0].steps[1].task,
            Task::ManualApproval {
                message: Some("Deploy to production?".into())
            }
        );
        assert_eq!(wf.jobs[0].steps[1].task.inputs(), &json!({}));
        let bare = SYNC_FLEET.replace(
            "{ type: model_method, modelIdOrName: fleet, methodName: sync }",
            "{ type: manual_approval }",
        );
        assert_eq!(
            parse(&bare).expect("parses").jobs[0].steps[1].task,
            Task::ManualApproval { message: None }
        );

        let misplaced = SYNC_FLEET.replace(
            "{ type: model_method, modelIdOrName: fleet, methodName: sync }",
            "{ type: manual_approval, modelIdOrName: fleet }",
        );
        let errs = parse(&misplaced).unwrap_err();
        assert_eq!(errs[0].line, Some(15));
        assert!(
            errs[0]
                .message
                .contains("`modelIdOrName` does not belong in a `type: manual_approval` task"),
            "{}",
            errs[0]
        );
        let message_elsewhere =
            SYNC_FLEET.replace("methodName: sync }", "methodName: sync, message: hi }");
        let errs = parse(&message_elsewhere).unwrap_err();
        assert!(
            errs[0].message.contains(
                "`message` does not belong in a `type: model_method` task; remove it or use `type: assert` or `type: manual_approval`"
            ),
            "{}",
            errs[0]
        );
    }

    #[test]
    fn misspelled_condition_type_is_suggested() {
        let text = SYNC_FLEET.replace("{ type: succeeded }", "{ type: succeded }");
        let errs = parse(&text).unwrap_err();
        assert_eq!(errs[0].line, Some(16));
        assert!(
            errs[0].message.contains("did you mean `succeeded`?"),
            "{}",
            errs[0]
        );
    }

    #[test]
    fn step_inputs_must_be_a_mapping() {
        let text = SYNC_FLEET.replace("inputs: { } }", "inputs: [a] }");
        let errs = parse(&text).unwrap_err();
        assert_eq!(errs[0].line, Some(13));
        assert!(errs[0].message.contains("mapping"), "{}", errs[0]);
    }

    #[test]
    fn name_must_match_the_file() {
        let errs = Workflow::parse(SYNC_FLEET, Path::new("workflows/other.yaml")).unwrap_err();
        assert_eq!(errs[0].line, Some(1));
        assert_eq!(errs[0].field.as_deref(), Some("name"));
    }

    #[test]
    fn missing_jobs_is_reported() {
        let errs = parse("name: sync-fleet\n").unwrap_err();
        assert!(
            errs[0].message.contains("missing required field `jobs`"),
            "{}",
            errs[0]
        );
    }

    #[test]
    fn step_without_task_is_reported_at_the_step() {
        let errs = parse("jobs:\n  - name: a\n    steps:\n      - name: s\n").unwrap_err();
        assert_eq!(
            errs[0].to_string(),
            "workflows/sync-fleet.yaml:4: jobs[0].steps[0].task: missing required field `task`; add `task: …` here"
        );
    }
}
