//! `orch workflow evaluate` and `orch model evaluate`: resolve every expression of a workflow
//! or a definition against the current data and print the results, running nothing.
//!
//! Each value is shown as `{"value": …}` or `{"error": …}`, so one broken expression does not
//! hide the others. Vault values read along the way are shown as `***`, in text and `--json`.

use serde_json::{Map, Value, json};

use super::inputs::InputArgs;
use super::{CliError, CmdResult, Ctx};
use crate::expr::{Evaluator, ExprError, Scope, Vars};
use crate::method::StoreDataSource;
use crate::repo::{Definition, Repo};
use crate::vault::Redactor;
use crate::workflow::{Step, Task, Workflow};

/// `{"value": v}` or `{"error": e}`.
fn outcome(result: Result<Value, String>) -> Value {
    match result {
        Ok(v) => json!({ "value": v }),
        Err(e) => json!({ "error": e }),
    }
}

/// Where an expression error is in a workflow file: `file:line: field: message`.
fn locate_in(wf: &Workflow, err: &ExprError, base: &str) -> String {
    let field = match err.field.as_str() {
        "" => base.to_string(),
        f if f.starts_with('[') => format!("{base}{f}"),
        f => format!("{base}.{f}"),
    };
    let line = wf
        .line_of(&field)
        .map(|l| format!(":{l}"))
        .unwrap_or_default();
    let message = if err.field.is_empty() {
        format!("{field}: {err}")
    } else {
        err.to_string().replacen(&err.field, &field, 1)
    };
    format!("{}{line}: {message}", wf.file.display())
}

fn bare(scope: &Scope<'_>, wf: &Workflow, expression: &str, field: &str) -> Result<Value, String> {
    scope
        .eval_expr(expression)
        .map_err(|e| locate_in(wf, &e, field))
}

/// Redacts the values the evaluator saw come from the vault, then prints.
fn print(ctx: &Ctx, evaluator: &Evaluator, mut value: Value, text: impl FnOnce(&Value) -> String) {
    let redactor = Redactor::default();
    for s in evaluator.secrets() {
        redactor.add(&s);
    }
    redactor.redact_json(&mut value);
    ctx.printer.result(&value, || text(&value));
}

/// Runs `orch workflow evaluate <name>`.
pub fn workflow(name: &str, inputs: &InputArgs, ctx: &Ctx) -> CmdResult {
    let repo = ctx.repo()?;
    let wf = repo.workflow(name).map_err(CliError::usage)?;
    let mut given = inputs.collect()?;
    crate::workflow::apply_input_defaults(wf, &mut given);
    let problems = crate::workflow::validate_inputs(wf, &Value::Object(given.clone()))
        .err()
        .unwrap_or_default();
    let store = ctx.store(&repo);
    let vault = ctx.vault(&repo)?;
    let data = StoreDataSource::new(store, vault, &repo);
    let evaluator = Evaluator::new();
    let vars = |self_: Map<String, Value>| Vars {
        inputs: given.clone(),
        env: repo.env_values(),
        run_id: String::new(),
        self_,
    };
    let mut jobs = Vec::new();
    for (ji, job) in wf.jobs.iter().enumerate() {
        let mut steps = Vec::new();
        for (si, step) in job.steps.iter().enumerate() {
            let path = format!("jobs[{ji}].steps[{si}]");
            let scope = evaluator.scope(&data, vars(Map::new()));
            let mut shown = json!({ "name": step.name, "task": task_label(step) });
            let items: Vec<Map<String, Value>> = match &step.for_each {
                None => vec![Map::new()],
                Some(fe) => {
                    let field = format!("{path}.forEach.in");
                    let resolved = scope
                        .resolve_value(&fe.items, "")
                        .map_err(|e| locate_in(wf, &e, &field));
                    let items = match &resolved {
                        Ok(Value::Array(list)) => list
                            .iter()
                            .map(|v| Map::from_iter([(fe.item.clone(), v.clone())]))
                            .collect(),
                        Ok(Value::Object(map)) => map
                            .iter()
                            .map(|(k, v)| {
                                Map::from_iter([(fe.item.clone(), json!({ "key": k, "value": v }))])
                            })
                            .collect(),
                        _ => Vec::new(),
                    };
                    let resolved = match resolved {
                        Ok(v @ (Value::Array(_) | Value::Object(_))) => Ok(v),
                        Ok(other) => Err(format!(
                            "{}: {field}: expected a list or map, got {other}",
                            wf.file.display()
                        )),
                        Err(e) => Err(e),
                    };
                    shown["forEach"] = outcome(resolved);
                    items
                }
            };
            let instances: Vec<Value> = items
                .into_iter()
                .map(|self_vars| {
                    let scope = evaluator.scope(&data, vars(self_vars.clone()));
                    instance(&scope, wf, step, &path, self_vars)
                })
                .collect();
            shown["instances"] = Value::Array(instances);
            steps.push(shown);
        }
        jobs.push(json!({ "name": job.name, "steps": steps }));
    }
    let value = json!({
        "workflow": wf.name,
        "inputs": given,
        "inputProblems": problems,
        "jobs": jobs,
    });
    print(ctx, &evaluator, value, workflow_text);
    Ok(0)
}

/// One forEach item (or the step itself): its name, guard, inputs and assert value.
fn instance(
    scope: &Scope<'_>,
    wf: &Workflow,
    step: &Step,
    path: &str,
    self_vars: Map<String, Value>,
) -> Value {
    let mut shown = Map::new();
    if !self_vars.is_empty() {
        shown.insert("self".into(), Value::Object(self_vars));
    }
    let name = scope
        .resolve_value(&Value::String(step.name.clone()), "")
        .map_err(|e| locate_in(wf, &e, &format!("{path}.name")));
    shown.insert("name".into(), outcome(name));
    if let Some(guard) = &step.guard {
        let field = format!("{path}.guard");
        shown.insert("guard".into(), outcome(bare(scope, wf, guard, &field)));
    }
    match &step.task {
        Task::Assert { expression, .. } => {
            let field = format!("{path}.task.expression");
            shown.insert(
                "assert".into(),
                outcome(bare(scope, wf, expression, &field)),
            );
        }
        task => {
            let field = format!("{path}.task.inputs");
            let inputs = scope
                .resolve_value(task.inputs(), "")
                .map_err(|e| locate_in(wf, &e, &field));
            shown.insert("inputs".into(), outcome(inputs));
        }
    }
    Value::Object(shown)
}

fn task_label(step: &Step) -> String {
    match &step.task {
        Task::ModelMethod {
            model_id_or_name,
            method_name,
            ..
        } => format!("{model_id_or_name}.{method_name}"),
        Task::Workflow {
            workflow_id_or_name,
            ..
        } => format!("workflow {workflow_id_or_name}"),
        Task::Assert {
            message, severity, ..
        } => {
            let severity = serde_json::to_value(severity).unwrap_or_default();
            let severity = severity.as_str().unwrap_or("error");
            match message {
                Some(m) => format!("assert ({severity}): {m}"),
                None => format!("assert ({severity})"),
            }
        }
        Task::ManualApproval { message } => match message {
            Some(m) => format!("manual approval: {m}"),
            None => "manual approval".to_string(),
        },
    }
}

/// `value` or `error: …`, on one line.
fn one_line(outcome: &Value) -> String {
    match (outcome.get("value"), outcome.get("error")) {
        (Some(v), _) => v.to_string(),
        (_, Some(Value::String(e))) => format!("error: {e}"),
        _ => outcome.to_string(),
    }
}

fn workflow_text(value: &Value) -> String {
    let mut out = format!("workflow {}\n", value["workflow"].as_str().unwrap_or(""));
    if let Some(problems) = value["inputProblems"].as_array()
        && !problems.is_empty()
    {
        for p in problems {
            out.push_str(&format!("input problem: {}\n", p.as_str().unwrap_or("")));
        }
    }
    for job in value["jobs"].as_array().into_iter().flatten() {
        out.push_str(&format!("job {}\n", job["name"].as_str().unwrap_or("")));
        for step in job["steps"].as_array().into_iter().flatten() {
            out.push_str(&format!(
                "  step {}  [{}]\n",
                step["name"].as_str().unwrap_or(""),
                step["task"].as_str().unwrap_or("")
            ));
            if let Some(fe) = step.get("forEach") {
                out.push_str(&format!("    forEach: {}\n", one_line(fe)));
            }
            for inst in step["instances"].as_array().into_iter().flatten() {
                out.push_str(&format!("    - {}\n", one_line(&inst["name"])));
                for key in ["guard", "inputs", "assert"] {
                    if let Some(v) = inst.get(key) {
                        out.push_str(&format!("        {key}: {}\n", one_line(v)));
                    }
                }
            }
        }
    }
    out.trim_end().to_string()
}

/// Runs `orch model evaluate <name> [--method M]`.
pub fn model(name: &str, method: Option<&str>, inputs: &InputArgs, ctx: &Ctx) -> CmdResult {
    let repo = ctx.repo()?;
    let def = repo.model(name).map_err(CliError::usage)?;
    let given = inputs.collect()?;
    if let Some(m) = method
        && !def.methods.contains_key(m)
    {
        // Not an error: a method without arguments in the definition takes the plugin's.
        ctx.printer.warn(&format!(
            "{}: model `{name}` sets no arguments for method `{m}`",
            def.file.display()
        ));
    }
    let store = ctx.store(&repo);
    let vault = ctx.vault(&repo)?;
    let data = StoreDataSource::new(store, vault, &repo);
    let evaluator = Evaluator::new();
    let value = resolve_model(&repo, def, method, given, &data, &evaluator);
    print(ctx, &evaluator, value, |value| {
        let mut out = format!("model {name} ({})\n", def.type_name);
        out.push_str(&format!(
            "globalArguments: {}\n",
            pretty(&value["globalArguments"])
        ));
        for (m, args) in value["methods"].as_object().into_iter().flatten() {
            out.push_str(&format!("method {m} arguments: {}\n", pretty(args)));
        }
        out.trim_end().to_string()
    });
    Ok(0)
}

fn pretty(outcome: &Value) -> String {
    match (outcome.get("value"), outcome.get("error")) {
        (Some(v), _) => serde_json::to_string_pretty(v).unwrap_or_default(),
        (_, Some(Value::String(e))) => format!("error: {e}"),
        _ => outcome.to_string(),
    }
}

fn resolve_model(
    repo: &Repo,
    def: &Definition,
    method: Option<&str>,
    inputs: Map<String, Value>,
    data: &StoreDataSource,
    evaluator: &Evaluator,
) -> Value {
    // The variables a method call sees (see `MethodRunner::vars`), outside any workflow.
    let self_ = Map::from_iter([("name".to_string(), Value::String(def.name.clone()))]);
    let scope = evaluator.scope(
        data,
        Vars {
            inputs,
            env: repo.env_values(),
            run_id: String::new(),
            self_,
        },
    );
    let locate = |e: ExprError| crate::method::locate(&def.file, &def.lines, &e);
    let globals = scope
        .resolve_value(
            &Value::Object(def.global_arguments.clone()),
            "globalArguments",
        )
        .map_err(locate);
    let mut methods = Map::new();
    let names: Vec<&str> = match method {
        Some(m) => vec![m],
        None => def.methods.keys().map(String::as_str).collect(),
    };
    for m in names {
        let arguments = def
            .methods
            .get(m)
            .map(|d| Value::Object(d.arguments.clone()))
            .unwrap_or_else(|| json!({}));
        let field = format!("methods.{m}.arguments");
        methods.insert(
            m.to_string(),
            outcome(scope.resolve_value(&arguments, &field).map_err(locate)),
        );
    }
    json!({
        "model": def.name,
        "type": def.type_name,
        "globalArguments": outcome(globals),
        "methods": methods,
    })
}
