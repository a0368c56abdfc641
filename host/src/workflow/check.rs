//! Checks before anything runs, at three sizes: what one workflow run uses, what one model run
//! uses, and the whole repository (`orch check`, `orch workflow validate` with no name).
//!
//! A run checks only the files it uses, so a broken file elsewhere does not stop it; the whole
//! repository check reports every problem, for CI.

use serde_json::Value;

use super::validate::{Catalog, validate};
use crate::repo::{Definition, Diagnostic, Repo, RepoError, Usage, join_index, join_key};

/// Before `orch run <name>`: every problem in the files the run uses (the workflow, its nested
/// workflows, the models they call or read), and in what those files say. Returns what the run
/// uses, so the caller can show problems elsewhere as warnings.
pub fn check_workflow(repo: &Repo, catalog: &dyn Catalog, name: &str) -> Result<Usage, RepoError> {
    let usage = repo.usage_of_workflow(name);
    repo.require(&usage)?;
    repo.workflow(name)?;
    let mut diags = Vec::new();
    for wf in usage.workflows.iter().filter_map(|w| repo.workflows.get(w)) {
        diags.extend(validate(wf, repo, catalog));
    }
    for def in usage.called.iter().filter_map(|m| repo.models.get(m)) {
        diags.extend(definition_problems(def, catalog));
    }
    fail_on(diags).map(|()| usage)
}

/// Before `orch model run <name>`: the model's file and the files of the models it reads.
pub fn check_model(repo: &Repo, name: &str) -> Result<Usage, RepoError> {
    let usage = repo.usage_of_model(name);
    repo.require(&usage)?;
    repo.model(name)?;
    Ok(usage)
}

/// Every problem in the repository: broken files, every workflow and every definition.
/// `orch.yaml` is not here: a broken one already failed [`Repo::load`].
pub fn check_repository(repo: &Repo, catalog: &dyn Catalog) -> Vec<Diagnostic> {
    let mut diags = repo.problems();
    for wf in repo.workflows.values() {
        diags.extend(validate(wf, repo, catalog));
    }
    for def in repo.models.values() {
        diags.extend(definition_problems(def, catalog));
    }
    crate::repo::sort_diagnostics(&mut diags);
    diags
}

fn fail_on(mut diags: Vec<Diagnostic>) -> Result<(), RepoError> {
    if diags.is_empty() {
        return Ok(());
    }
    crate::repo::sort_diagnostics(&mut diags);
    diags.dedup();
    Err(RepoError::Invalid(diags))
}

/// A definition's type must be installed and its templates must parse.
fn definition_problems(def: &Definition, catalog: &dyn Catalog) -> Vec<Diagnostic> {
    let mut diags = Vec::new();
    if let Some(problem) = catalog.type_problem(&def.type_name) {
        diags.push(Diagnostic::at(&def.file, &def.lines, "type", problem));
    }
    if let Some(refresh) = &def.refresh
        && let Some(names) = catalog.method_names(&def.name)
        && !names.contains(refresh)
    {
        diags.push(Diagnostic::at(
            &def.file,
            &def.lines,
            "refresh",
            format!(
                "`refresh` names `{refresh}`, which type `{}` does not have; name one of its methods ({})",
                def.type_name,
                names.join(", ")
            ),
        ));
    }
    let mut values: Vec<(String, &Value)> = def
        .global_arguments
        .iter()
        .map(|(k, v)| (join_key("globalArguments", k), v))
        .collect();
    for (method, args) in &def.methods {
        let base = format!("methods.{method}.arguments");
        values.extend(args.arguments.iter().map(|(k, v)| (join_key(&base, k), v)));
    }
    // Iterative: the values come from the user's file.
    while let Some((field, value)) = values.pop() {
        match value {
            Value::String(text) => {
                if let Err(message) = catalog.check_template(text) {
                    diags.push(Diagnostic::at(&def.file, &def.lines, field, message));
                }
            }
            Value::Array(items) => values.extend(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (join_index(&field, i), v)),
            ),
            Value::Object(map) => {
                values.extend(map.iter().map(|(k, v)| (join_key(&field, k), v)));
            }
            _ => {}
        }
    }
    diags
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::path::Path;

    use super::*;

    /// Every type but `missing/type` is installed; templates containing `bad` do not parse.
    struct Fake;

    impl Catalog for Fake {
        fn method_names(&self, _model: &str) -> Option<Vec<String>> {
            Some(vec!["m".to_string()])
        }
        fn check_template(&self, text: &str) -> Result<(), String> {
            if text.contains("${{") && text.contains("bad") {
                Err("syntax error in `bad`".to_string())
            } else {
                Ok(())
            }
        }
        fn type_problem(&self, type_name: &str) -> Option<String> {
            (type_name == "missing/type").then(|| "unknown model type `missing/type`".to_string())
        }
    }

    fn write(root: &Path, file: &str, text: &str) {
        let path = root.join(file);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    fn step(model: &str) -> String {
        format!(
            "jobs:\n  - name: j\n    steps:\n      - name: s\n        task: {{ type: model_method, modelIdOrName: {model}, methodName: m }}\n"
        )
    }

    fn sample() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "orch.yaml", "");
        write(root, "models/good.yaml", "type: t/a\n");
        write(root, "models/orphan.yaml", "type: missing/type\n");
        write(
            root,
            "models/badtpl.yaml",
            "type: t/a\nmethods:\n  m:\n    arguments:\n      deep: [{ x: '${{ bad }}' }]\n",
        );
        write(root, "models/typo.yaml", "type: t/a\nglobalArgs: {}\n");
        write(root, "workflows/ok.yaml", &step("good"));
        write(root, "workflows/uses-typo.yaml", &step("typo"));
        write(root, "workflows/uses-badtpl.yaml", &step("badtpl"));
        dir
    }

    fn shown(err: RepoError) -> String {
        err.to_string()
    }

    #[test]
    fn a_run_ignores_problems_it_does_not_use() {
        let dir = sample();
        let repo = Repo::load(dir.path()).unwrap();
        let usage = check_workflow(&repo, &Fake, "ok").unwrap();
        assert_eq!(usage.workflows.iter().collect::<Vec<_>>(), ["ok"]);
        assert_eq!(repo.problems_outside(&usage).len(), 1);
    }

    #[test]
    fn a_run_fails_on_a_broken_file_it_uses() {
        let dir = sample();
        let repo = Repo::load(dir.path()).unwrap();
        let err = shown(check_workflow(&repo, &Fake, "uses-typo").unwrap_err());
        assert_eq!(
            err,
            "models/typo.yaml:2: globalArgs: unknown field `globalArgs`; did you mean `globalArguments`?"
        );
    }

    #[test]
    fn a_run_checks_the_definitions_it_calls() {
        let dir = sample();
        let repo = Repo::load(dir.path()).unwrap();
        let err = shown(check_workflow(&repo, &Fake, "uses-badtpl").unwrap_err());
        assert_eq!(
            err,
            "models/badtpl.yaml:5: methods.m.arguments.deep[0].x: syntax error in `bad`"
        );
    }

    #[test]
    fn an_unknown_workflow_is_suggested() {
        let dir = sample();
        let repo = Repo::load(dir.path()).unwrap();
        let err = shown(check_workflow(&repo, &Fake, "okk").unwrap_err());
        assert!(
            err.starts_with("unknown workflow `okk`; did you mean `ok`?"),
            "{err}"
        );
    }

    #[test]
    fn a_model_run_needs_only_its_own_file() {
        let dir = sample();
        let repo = Repo::load(dir.path()).unwrap();
        assert!(check_model(&repo, "good").is_ok());
        let err = shown(check_model(&repo, "typo").unwrap_err());
        assert!(err.starts_with("models/typo.yaml:2:"), "{err}");
    }

    #[test]
    fn the_repository_check_lists_every_problem() {
        let dir = sample();
        let repo = Repo::load(dir.path()).unwrap();
        let all: Vec<String> = check_repository(&repo, &Fake)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            all,
            [
                "models/badtpl.yaml:5: methods.m.arguments.deep[0].x: syntax error in `bad`",
                "models/orphan.yaml:1: type: unknown model type `missing/type`",
                "models/typo.yaml:2: globalArgs: unknown field `globalArgs`; did you mean `globalArguments`?",
                "workflows/uses-typo.yaml:5: jobs[0].steps[0].task.modelIdOrName: model `typo` is defined in models/typo.yaml, which has errors (listed with that file); fix them first",
            ]
        );
    }
}
