//! What one command needs from the repository, so that a broken file it does not need is a
//! warning instead of an error: a cron job running `sync-fleet` keeps working while someone
//! fixes a typo in an unrelated model.

use std::collections::BTreeSet;

use serde_json::Value;

use super::diagnostic::{Diagnostic, sort_diagnostics};
use super::{Repo, RepoError};
use crate::workflow::Task;

/// The workflows and models one command may load.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Workflow names: the one run and every workflow it nests, at any depth.
    pub workflows: BTreeSet<String>,
    /// Model names: those whose methods run, and those their expressions read.
    pub models: BTreeSet<String>,
    /// The models whose methods run (a subset of `models`): their definitions are evaluated,
    /// so their types must be installed and their templates must parse.
    pub called: BTreeSet<String>,
}

impl Repo {
    /// What running workflow `name` uses: the workflow, the workflows it nests (following
    /// nesting through every level), the models their steps call, and the models named in
    /// `${{ }}` expressions of those workflows and of the called models' definitions.
    ///
    /// Expression references are found by parsing the expressions ([`crate::expr::referenced_models`]):
    /// `model.<name>`, `model["<name>"]` and `data.latest("<name>", …)`. A model that is only
    /// read is not followed further, because reading its data does not evaluate its definition.
    pub fn usage_of_workflow(&self, name: &str) -> Usage {
        let mut usage = Usage::default();
        let mut called = BTreeSet::new();
        let mut queue = vec![name.to_string()];
        while let Some(current) = queue.pop() {
            if !usage.workflows.insert(current.clone()) {
                continue;
            }
            let Some(wf) = self.workflows.get(&current) else {
                continue;
            };
            for step in wf.jobs.iter().flat_map(|j| &j.steps) {
                // A step's name is text, read as CEL only inside `${{ }}` (a forEach's
                // `noop-${{ self.item }}`); its guard is an expression either way.
                let mut texts: Vec<&str> = step.guard.as_deref().into_iter().collect();
                if crate::expr::contains_template(&step.name) {
                    texts.push(&step.name);
                }
                let mut values = vec![step.task.inputs()];
                if let Some(each) = &step.for_each {
                    values.push(&each.items);
                }
                for text in texts {
                    usage.models.extend(crate::expr::referenced_models(text));
                }
                for value in values {
                    read_models(value, &mut usage.models);
                }
                match &step.task {
                    Task::ModelMethod {
                        model_id_or_name, ..
                    } => {
                        called.insert(model_id_or_name.clone());
                    }
                    Task::Workflow {
                        workflow_id_or_name,
                        ..
                    } => queue.push(workflow_id_or_name.clone()),
                    Task::Assert { expression, .. } => {
                        usage
                            .models
                            .extend(crate::expr::referenced_models(expression));
                    }
                    Task::ManualApproval { .. } => {}
                }
            }
        }
        for model in called {
            self.add_called_model(&model, &mut usage);
        }
        usage
    }

    /// What running a method of model `name` uses: the model and the models its definition's
    /// expressions read.
    pub fn usage_of_model(&self, name: &str) -> Usage {
        let mut usage = Usage::default();
        self.add_called_model(name, &mut usage);
        usage
    }

    fn add_called_model(&self, name: &str, usage: &mut Usage) {
        usage.models.insert(name.to_string());
        usage.called.insert(name.to_string());
        if let Some(def) = self.models.get(name) {
            for value in def.global_arguments.values() {
                read_models(value, &mut usage.models);
            }
            for args in def.methods.values().flat_map(|m| m.arguments.values()) {
                read_models(args, &mut usage.models);
            }
        }
    }

    /// Fails with every problem of the files `usage` needs (and of directories that could not
    /// be read, which may hide any of them). Names with no file at all are left to the caller,
    /// which reports them with suggestions.
    pub fn require(&self, usage: &Usage) -> Result<(), RepoError> {
        let mut diags: Vec<Diagnostic> = self.broken.other.clone();
        for name in &usage.models {
            diags.extend(self.broken.models.get(name).into_iter().flatten().cloned());
        }
        for name in &usage.workflows {
            diags.extend(
                self.broken
                    .workflows
                    .get(name)
                    .into_iter()
                    .flatten()
                    .cloned(),
            );
        }
        if diags.is_empty() {
            return Ok(());
        }
        sort_diagnostics(&mut diags);
        Err(RepoError::Invalid(diags))
    }

    /// Problems in files `usage` does not need: shown as warnings, they block nothing.
    pub fn problems_outside(&self, usage: &Usage) -> Vec<Diagnostic> {
        let mut diags: Vec<Diagnostic> = self
            .broken
            .models
            .iter()
            .filter(|(name, _)| !usage.models.contains(*name))
            .chain(
                self.broken
                    .workflows
                    .iter()
                    .filter(|(name, _)| !usage.workflows.contains(*name)),
            )
            .flat_map(|(_, d)| d.iter().cloned())
            .collect();
        sort_diagnostics(&mut diags);
        diags
    }
}

/// Adds the models read by expressions anywhere in `value`.
fn read_models(value: &Value, out: &mut BTreeSet<String>) {
    // Iterative: values come from user files and must not drive recursion.
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        match v {
            Value::String(s) if crate::expr::contains_template(s) => {
                out.extend(crate::expr::referenced_models(s));
            }
            Value::Array(items) => stack.extend(items),
            Value::Object(map) => stack.extend(map.values()),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::path::Path;

    use super::*;

    fn write(root: &Path, file: &str, text: &str) {
        let path = root.join(file);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    fn names(set: &BTreeSet<String>) -> Vec<&str> {
        set.iter().map(String::as_str).collect()
    }

    /// `main` calls `source` and nests `inner`, which calls `sink`; `sink` reads `source` and
    /// `ref`; `ref` reads `far`. `other`, `unused` and `broken` are not used.
    fn repo() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "orch.yaml", "");
        write(root, "models/source.yaml", "type: t/a\n");
        write(
            root,
            "models/sink.yaml",
            "type: t/a\nglobalArguments:\n  a: '${{ model.source.resource.x.y.attributes.z }}'\nmethods:\n  m:\n    arguments:\n      b: ['x ${{ data.latest(\"ref\", \"i\") }}']\n",
        );
        write(
            root,
            "models/ref.yaml",
            "type: t/a\nglobalArguments:\n  a: '${{ model.far.resource.x.y.attributes.z }}'\n",
        );
        write(root, "models/far.yaml", "type: t/a\n");
        write(root, "models/unused.yaml", "type: t/a\n");
        write(root, "models/broken.yaml", "type: [\n");
        write(
            root,
            "workflows/main.yaml",
            "jobs:\n  - name: j\n    steps:\n      - name: a\n        guard: 'model[\"other\"].resource.x.y.attributes.z'\n        task: { type: model_method, modelIdOrName: source, methodName: m }\n      - name: b\n        task: { type: workflow, workflowIdOrName: inner }\n",
        );
        write(
            root,
            "workflows/inner.yaml",
            "jobs:\n  - name: j\n    steps:\n      - name: a\n        task: { type: model_method, modelIdOrName: sink, methodName: m }\n      - name: loop\n        task: { type: workflow, workflowIdOrName: main }\n",
        );
        write(root, "workflows/unrelated.yaml", "jobs: {\n");
        dir
    }

    #[test]
    fn workflow_usage_follows_nesting_calls_and_expression_reads() {
        let dir = repo();
        let repo = Repo::load(dir.path()).unwrap();
        let usage = repo.usage_of_workflow("main");
        assert_eq!(names(&usage.workflows), ["inner", "main"]);
        assert_eq!(names(&usage.models), ["other", "ref", "sink", "source"]);
        assert_eq!(names(&usage.called), ["sink", "source"]);
        assert_eq!(repo.require(&usage).map_err(|e| e.to_string()), Ok(()));
    }

    /// A plain step name is not an expression: `model.far` names a step, it reads nothing.
    /// In a template it is an expression like any other.
    #[test]
    fn a_step_name_reads_models_only_inside_a_template() {
        let dir = repo();
        write(
            dir.path(),
            "workflows/names.yaml",
            "jobs:\n  - name: j\n    steps:\n      - name: model.far\n        task: { type: model_method, modelIdOrName: source, methodName: m }\n      - name: 'n-${{ model.unused.resource.x.y.attributes.z }}'\n        task: { type: model_method, modelIdOrName: source, methodName: m }\n",
        );
        let repo = Repo::load(dir.path()).unwrap();
        let usage = repo.usage_of_workflow("names");
        assert_eq!(names(&usage.models), ["source", "unused"]);
    }

    #[test]
    fn model_usage_is_the_model_and_what_it_reads() {
        let dir = repo();
        let repo = Repo::load(dir.path()).unwrap();
        let usage = repo.usage_of_model("ref");
        assert_eq!(names(&usage.models), ["far", "ref"]);
        assert!(usage.workflows.is_empty());
    }

    #[test]
    fn unrelated_broken_files_are_only_problems_outside() {
        let dir = repo();
        let repo = Repo::load(dir.path()).unwrap();
        let usage = repo.usage_of_workflow("main");
        let outside: Vec<String> = repo
            .problems_outside(&usage)
            .iter()
            .map(|d| d.file.display().to_string())
            .collect();
        assert_eq!(outside, ["models/broken.yaml", "workflows/unrelated.yaml"]);
    }

    #[test]
    fn a_used_broken_file_fails_with_its_problems() {
        let dir = repo();
        write(dir.path(), "models/far.yaml", "type: t/a\nglobalArgs: {}\n");
        let repo = Repo::load(dir.path()).unwrap();
        assert!(repo.require(&repo.usage_of_workflow("main")).is_ok());
        let err = repo.require(&repo.usage_of_model("ref")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "models/far.yaml:2: globalArgs: unknown field `globalArgs`; did you mean `globalArguments`?"
        );
        let err = repo
            .require(&repo.usage_of_workflow("unrelated"))
            .unwrap_err();
        assert!(
            err.to_string().starts_with("workflows/unrelated.yaml:"),
            "{err}"
        );
    }
}
