//! Checks a workflow against the repository and the installed types before anything runs.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use super::graph::find_cycles;
use super::inputs::{declared_names, schema_diagnostics, unknown_input};
use super::schema::{Step, Task, Workflow};
use crate::repo::{
    Diagnostic, MODELS_DIR, Repo, WORKFLOWS_DIR, closest, did_you_mean, join_index, join_key,
    list_names, unknown_name,
};

/// What validation needs to know about installed plugins and the expression language.
pub trait Catalog {
    /// Method names of the model's type; `None` when the model (or its type) is unknown.
    fn method_names(&self, model: &str) -> Option<Vec<String>>;
    /// Checks a string that may contain `${{ … }}` templates; the error is shown to the user.
    fn check_template(&self, text: &str) -> Result<(), String>;
    /// Why no installed plugin provides `type_name`, or None when one does.
    fn type_problem(&self, _type_name: &str) -> Option<String> {
        None
    }
}

/// Every problem in `wf`, each pointing at its file, line and field. Empty means valid.
pub fn validate(wf: &Workflow, repo: &Repo, catalog: &dyn Catalog) -> Vec<Diagnostic> {
    let mut v = Validator {
        wf,
        repo,
        catalog,
        diags: Vec::new(),
    };
    if let Some(schema) = &wf.inputs {
        v.diags
            .extend(schema_diagnostics(schema, &wf.file, &wf.lines));
    }
    v.jobs();
    if wf.concurrency == Some(0) {
        v.report("concurrency", ZERO_CONCURRENCY);
    }
    for (ji, job) in wf.jobs.iter().enumerate() {
        if job.concurrency == Some(0) {
            v.report(
                join_key(&join_index("jobs", ji), "concurrency"),
                ZERO_CONCURRENCY,
            );
        }
        v.steps_of_job(ji);
        for (si, step) in job.steps.iter().enumerate() {
            v.step(&step_path(ji, si), step);
        }
    }
    v.nested_cycles();
    v.diags
        .extend(super::triggers::trigger_diagnostics(wf, repo, catalog));
    crate::repo::sort_diagnostics(&mut v.diags);
    v.diags
}

/// `concurrency: 0` would never start anything.
const ZERO_CONCURRENCY: &str =
    "concurrency must be at least 1 (0 would never start anything); remove it for no cap";

fn step_path(ji: usize, si: usize) -> String {
    format!("jobs[{ji}].steps[{si}]")
}

struct Validator<'a> {
    wf: &'a Workflow,
    repo: &'a Repo,
    catalog: &'a dyn Catalog,
    diags: Vec<Diagnostic>,
}

impl<'a> Validator<'a> {
    fn report(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.diags.push(Diagnostic::at(
            &self.wf.file,
            &self.wf.lines,
            field,
            message,
        ));
    }

    /// Names map to their first index; later duplicates are reported.
    fn unique_names<'n>(
        &mut self,
        kind: &str,
        names: impl Iterator<Item = (String, &'n str)>,
    ) -> HashMap<&'n str, usize> {
        let mut first: HashMap<&'n str, (usize, String)> = HashMap::new();
        for (index, (path, name)) in names.enumerate() {
            let field = join_key(&path, "name");
            if name.trim().is_empty() {
                self.report(field, format!("empty {kind} name; give the {kind} a name"));
                continue;
            }
            if let Some((_, first_path)) = first.get(name) {
                let line = self
                    .wf
                    .lines
                    .line_of(&join_key(first_path, "name"))
                    .map(|l| format!(" (first defined at line {l})"))
                    .unwrap_or_default();
                self.report(
                    field,
                    format!("duplicate {kind} name `{name}`{line}; {kind} names must be unique, rename one"),
                );
                continue;
            }
            first.insert(name, (index, path));
        }
        first.into_iter().map(|(k, (i, _))| (k, i)).collect()
    }

    fn jobs(&mut self) {
        let wf = self.wf;
        let names = self.unique_names(
            "job",
            wf.jobs
                .iter()
                .enumerate()
                .map(|(i, j)| (join_index("jobs", i), j.name.as_str())),
        );
        let mut edges = vec![Vec::new(); wf.jobs.len()];
        for (ji, job) in wf.jobs.iter().enumerate() {
            for (di, dep) in job.depends_on.iter().enumerate() {
                let field = format!("jobs[{ji}].dependsOn[{di}].job");
                match names.get(dep.job.as_str()) {
                    Some(&target) => edges[ji].push((target, di)),
                    None => {
                        let hint = did_you_mean(&dep.job, wf.jobs.iter().map(|j| j.name.as_str()));
                        let listed = list_names(wf.jobs.iter().map(|j| j.name.as_str()));
                        self.report(
                            field,
                            format!("unknown job `{}`{hint} (jobs: {listed})", dep.job),
                        );
                    }
                }
            }
        }
        for (cycle, label) in find_cycles(&edges) {
            let first = cycle[0];
            let names: Vec<&str> = cycle.iter().map(|&i| wf.jobs[i].name.as_str()).collect();
            self.report(
                format!("jobs[{first}].dependsOn[{label}].job"),
                format!(
                    "jobs depend on each other in a loop: {} (each waits for the next); \
                     remove one of these dependsOn entries",
                    names.join(" → ")
                ),
            );
        }
    }

    fn steps_of_job(&mut self, ji: usize) {
        let wf = self.wf;
        let job = &wf.jobs[ji];
        let names = self.unique_names(
            "step",
            job.steps
                .iter()
                .enumerate()
                .map(|(si, s)| (step_path(ji, si), s.name.as_str())),
        );
        let mut edges = vec![Vec::new(); job.steps.len()];
        for (si, step) in job.steps.iter().enumerate() {
            for (di, dep) in step.depends_on.iter().enumerate() {
                let field = format!("{}.dependsOn[{di}].step", step_path(ji, si));
                if let Some(&target) = names.get(dep.step.as_str()) {
                    edges[si].push((target, di));
                    continue;
                }
                let elsewhere = wf
                    .jobs
                    .iter()
                    .find(|other| other.name != job.name && other.step(&dep.step).is_some());
                let message = match elsewhere {
                    Some(other) => format!(
                        "step `{}` belongs to job `{}`; a step can only depend on steps of its own \
                         job, so make job `{}` depend on job `{}` instead (dependsOn: [{{ job: {} }}])",
                        dep.step, other.name, job.name, other.name, other.name
                    ),
                    None => {
                        let hint =
                            did_you_mean(&dep.step, job.steps.iter().map(|s| s.name.as_str()));
                        let listed = list_names(job.steps.iter().map(|s| s.name.as_str()));
                        format!(
                            "unknown step `{}`{hint} (steps of job `{}`: {listed})",
                            dep.step, job.name
                        )
                    }
                };
                self.report(field, message);
            }
        }
        for (cycle, label) in find_cycles(&edges) {
            let first = cycle[0];
            let names: Vec<&str> = cycle.iter().map(|&i| job.steps[i].name.as_str()).collect();
            self.report(
                format!("{}.dependsOn[{label}].step", step_path(ji, first)),
                format!(
                    "steps depend on each other in a loop: {} (each waits for the next); \
                     remove one of these dependsOn entries",
                    names.join(" → ")
                ),
            );
        }
    }

    fn step(&mut self, path: &str, step: &Step) {
        self.template(&join_key(path, "name"), &step.name);
        if let Some(guard) = &step.guard {
            let field = join_key(path, "guard");
            if guard.contains("${{") {
                self.report(
                    field,
                    "a guard is a bare expression; remove the surrounding `${{ }}`",
                );
            } else if guard.trim().is_empty() {
                self.report(field, "empty guard; write an expression or remove `guard`");
            } else {
                self.template(&field, &format!("${{{{ {guard} }}}}"));
            }
        }
        if let Some(each) = &step.for_each {
            let item_path = join_key(path, "forEach.item");
            if !is_identifier(&each.item) {
                self.report(
                    item_path,
                    format!(
                        "`{}` cannot be used as `self.{}`; use letters, digits and `_`",
                        each.item, each.item
                    ),
                );
            }
            self.templates_in(&join_key(path, "forEach.in"), &each.items);
        }
        if step.runs_on.is_some() {
            let field = join_key(path, "runsOn");
            if !matches!(step.task, Task::ModelMethod { .. }) {
                self.report(
                    field,
                    "runsOn sends a method call to a worker; only a `model_method` step has                      one, so remove runsOn here",
                );
            } else if self.repo.config.datastore.is_none() {
                self.report(
                    field,
                    "steps with runsOn run on `orch worker` processes, which need the                      PostgreSQL datastore: add `datastore: { postgres: … }` to orch.yaml, or                      remove runsOn to run the step here",
                );
            }
        }
        let task_path = join_key(path, "task");
        self.templates_in(&join_key(&task_path, "inputs"), step.task.inputs());
        match &step.task {
            Task::ModelMethod {
                model_id_or_name,
                method_name,
                ..
            } => self.model_method(&task_path, model_id_or_name, method_name),
            Task::Workflow {
                workflow_id_or_name,
                inputs,
            } => self.nested_workflow(&task_path, workflow_id_or_name, inputs),
            Task::Assert { expression, .. } => {
                self.bare_expression(&join_key(&task_path, "expression"), "an assert", expression)
            }
            Task::ManualApproval { .. } => {
                if step.for_each.is_some() {
                    self.report(
                        join_key(path, "forEach"),
                        "a `manual_approval` step asks once; remove `forEach` \
                         (or put the approval in a step of its own before the forEach step)",
                    );
                }
            }
        }
        if step.concurrency == Some(0) {
            self.report(join_key(path, "concurrency"), ZERO_CONCURRENCY);
        }
    }

    /// A bare CEL expression (guard, assert): no `${{ }}`, not empty, and it parses.
    fn bare_expression(&mut self, field: &str, what: &str, expression: &str) {
        if expression.contains("${{") {
            self.report(
                field,
                format!("{what} is a bare expression; remove the surrounding `${{{{ }}}}`"),
            );
        } else if expression.trim().is_empty() {
            self.report(
                field,
                format!("empty expression; write {what}'s CEL expression"),
            );
        } else {
            self.template(field, &format!("${{{{ {expression} }}}}"));
        }
    }

    fn model_method(&mut self, task_path: &str, model: &str, method: &str) {
        if let Some(diags) = self.repo.broken.models.get(model) {
            self.report(
                join_key(task_path, "modelIdOrName"),
                broken_file("model", model, diags),
            );
            return;
        }
        let Some(def) = self.repo.models.get(model) else {
            let available: Vec<String> = self.repo.models.keys().cloned().collect();
            let suggestion = closest(model, available.iter().map(String::as_str));
            self.report(
                join_key(task_path, "modelIdOrName"),
                unknown_name("model", MODELS_DIR, model, suggestion, &available),
            );
            return;
        };
        match self.catalog.method_names(model) {
            None => self.report(
                join_key(task_path, "modelIdOrName"),
                format!(
                    "model `{model}` has type `{}`, which no installed plugin provides; install \
                     a plugin that provides it or fix `type` in {}",
                    def.type_name,
                    def.file.display()
                ),
            ),
            Some(methods) if !methods.iter().any(|m| m == method) => {
                let hint = did_you_mean(method, methods.iter().map(String::as_str));
                self.report(
                    join_key(task_path, "methodName"),
                    format!(
                        "unknown method `{method}` for model `{model}` (type `{}`){hint} \
                         (methods: {})",
                        def.type_name,
                        list_names(methods.iter().map(String::as_str))
                    ),
                );
            }
            Some(_) => {}
        }
    }

    fn nested_workflow(&mut self, task_path: &str, name: &str, inputs: &Value) {
        let field = join_key(task_path, "workflowIdOrName");
        let target = if name == self.wf.name {
            Some(self.wf)
        } else {
            self.repo.workflows.get(name)
        };
        if target.is_none()
            && let Some(diags) = self.repo.broken.workflows.get(name)
        {
            self.report(field, broken_file("workflow", name, diags));
            return;
        }
        let Some(target) = target else {
            let available: Vec<String> = self.repo.workflows.keys().cloned().collect();
            let suggestion = closest(name, available.iter().map(String::as_str));
            self.report(
                field,
                unknown_name("workflow", WORKFLOWS_DIR, name, suggestion, &available),
            );
            return;
        };
        // Values may be templates, so only names are checked here: required ones present,
        // none the nested workflow does not declare.
        if let Some(declared) = target.inputs.as_ref().and_then(declared_names) {
            let given: Vec<&String> = inputs
                .as_object()
                .into_iter()
                .flat_map(|m| m.keys())
                .collect();
            for key in given {
                if !declared.contains(&key.as_str()) {
                    let field = join_key(&join_key(task_path, "inputs"), key);
                    let message = format!(
                        "{} (workflow `{name}` does not declare it)",
                        unknown_input(key, &declared)
                    );
                    self.report(field, message);
                }
            }
        }
        let required = target
            .inputs
            .as_ref()
            .and_then(|s| s.get("required"))
            .and_then(Value::as_array);
        for input in required.into_iter().flatten().filter_map(Value::as_str) {
            if inputs.get(input).is_none() {
                self.report(
                    join_key(task_path, "inputs"),
                    format!(
                        "workflow `{name}` requires input `{input}`; add `{input}: …` under this step's `inputs`"
                    ),
                );
            }
        }
    }

    fn template(&mut self, field: &str, text: &str) {
        if let Err(message) = self.catalog.check_template(text) {
            self.report(field, message);
        }
    }

    fn templates_in(&mut self, field: &str, value: &Value) {
        // Iterative, in document order: the value comes from the user's file.
        let mut stack = vec![(field.to_string(), value)];
        while let Some((field, value)) = stack.pop() {
            match value {
                Value::String(s) => self.template(&field, s),
                Value::Array(items) => stack.extend(
                    items
                        .iter()
                        .enumerate()
                        .rev()
                        .map(|(i, item)| (join_index(&field, i), item)),
                ),
                Value::Object(map) => stack.extend(
                    map.iter()
                        .rev()
                        .map(|(k, item)| (join_key(&field, k), item)),
                ),
                _ => {}
            }
        }
    }

    /// Nested workflows that end up running themselves (A runs B runs A) would never finish.
    fn nested_cycles(&mut self) {
        let wf = self.wf;
        let mut done: HashSet<&str> = HashSet::new();
        let mut reported: HashSet<Vec<String>> = HashSet::new();
        for (ji, job) in wf.jobs.iter().enumerate() {
            for (si, step) in job.steps.iter().enumerate() {
                let Task::Workflow {
                    workflow_id_or_name: first,
                    ..
                } = &step.task
                else {
                    continue;
                };
                let mut path = vec![wf.name.as_str()];
                let mut cycles = Vec::new();
                self.walk(first, &mut path, &mut done, &mut cycles);
                for cycle in cycles {
                    if !reported.insert(canonical(&cycle)) {
                        continue;
                    }
                    self.report(
                        format!("{}.task.workflowIdOrName", step_path(ji, si)),
                        format!(
                            "nested workflows run each other in a loop: {}; a run would never \
                             finish, remove one of these workflow steps",
                            cycle.join(" → ")
                        ),
                    );
                }
            }
        }
    }

    /// Depth-first over workflow references; `path` holds the chain that led to `name`.
    fn walk<'w>(
        &self,
        name: &'w str,
        path: &mut Vec<&'w str>,
        done: &mut HashSet<&'w str>,
        cycles: &mut Vec<Vec<String>>,
    ) where
        'a: 'w,
    {
        if let Some(pos) = path.iter().position(|p| *p == name) {
            let mut cycle: Vec<String> = path[pos..].iter().map(|s| s.to_string()).collect();
            cycle.push(name.to_string());
            cycles.push(cycle);
            return;
        }
        // A chain longer than this cannot run anyway (runs stop nesting far sooner); stopping
        // here keeps a repository of thousands of chained workflows from exhausting the stack.
        if done.contains(name) || path.len() >= crate::repo::MAX_DEPTH {
            return;
        }
        let target = if name == self.wf.name {
            Some(self.wf)
        } else {
            self.repo.workflows.get(name)
        };
        let Some(target) = target else {
            return;
        };
        path.push(name);
        // Bounded: each workflow is expanded once (`done`), paths never repeat a name, and
        // their length is capped above.
        for next in target.nested_workflows() {
            self.walk(next, path, done, cycles);
        }
        path.pop();
        done.insert(name);
    }
}

/// "model `x` is defined in models/x.yaml, which has errors; fix it first (…)".
fn broken_file(kind: &str, name: &str, diags: &[Diagnostic]) -> String {
    let file = diags
        .first()
        .map(|d| d.file.display().to_string())
        .unwrap_or_else(|| name.to_string());
    format!(
        "{kind} `{name}` is defined in {file}, which has errors (listed with that file); fix \
         them first"
    )
}

/// The loop rotated to start at its smallest name, so one loop is reported once.
fn canonical(cycle: &[String]) -> Vec<String> {
    let body = &cycle[..cycle.len().saturating_sub(1)];
    let start = body
        .iter()
        .enumerate()
        .min_by_key(|(_, n)| n.as_str())
        .map(|(i, _)| i)
        .unwrap_or(0);
    body[start..]
        .iter()
        .chain(&body[..start])
        .cloned()
        .collect()
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests;
