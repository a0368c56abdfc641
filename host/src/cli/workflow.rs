//! `orch workflow list|show|validate`.

use super::{CliError, CmdResult, Ctx};
use crate::expr::Evaluator;
use crate::repo::Repo;
use crate::run::RunEnv;
use crate::runtime::PluginRegistry;
use crate::workflow::{Catalog, Workflow};

/// `orch workflow` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Cmd {
    /// List workflows.
    List,
    /// Show one workflow's jobs and steps.
    Show {
        /// Workflow name.
        name: String,
    },
    /// Check workflows (all, or one) without running anything.
    Validate {
        /// Workflow name (default: all).
        name: Option<String>,
    },
}

struct RegistryCatalog<'a> {
    repo: &'a Repo,
    registry: &'a PluginRegistry,
    evaluator: Evaluator,
}

impl Catalog for RegistryCatalog<'_> {
    fn method_names(&self, model: &str) -> Option<Vec<String>> {
        let def = self.repo.models.get(model)?;
        match self.registry.get(&def.type_name) {
            Ok(t) => Some(
                t.description
                    .methods
                    .iter()
                    .map(|m| m.name.clone())
                    .collect(),
            ),
            // The model exists but its type is missing: reported separately, accept any method.
            Err(_) => Some(Vec::new()),
        }
    }

    fn check_template(&self, text: &str) -> Result<(), String> {
        if !crate::expr::contains_template(text) {
            return Ok(());
        }
        self.evaluator.check_syntax(text).map_err(|e| e.to_string())
    }
}

/// Models called by a workflow's steps, following nested workflows.
fn used_models(repo: &Repo, wf: &Workflow) -> std::collections::BTreeSet<String> {
    let mut models = std::collections::BTreeSet::new();
    let mut seen = std::collections::BTreeSet::new();
    let mut queue = vec![wf];
    while let Some(w) = queue.pop() {
        if !seen.insert(w.name.clone()) {
            continue;
        }
        for step in w.jobs.iter().flat_map(|j| &j.steps) {
            match &step.task {
                crate::workflow::Task::ModelMethod {
                    model_id_or_name, ..
                } => {
                    models.insert(model_id_or_name.clone());
                }
                crate::workflow::Task::Workflow {
                    workflow_id_or_name,
                    ..
                } => {
                    if let Some(nested) = repo.workflows.get(workflow_id_or_name) {
                        queue.push(nested);
                    }
                }
            }
        }
    }
    models
}

/// Validates one workflow (with the definitions it uses) or all of them (with every definition).
pub fn validate_all(env: &RunEnv, only: Option<&Workflow>) -> Result<(), CliError> {
    let catalog = RegistryCatalog {
        repo: &env.repo,
        registry: &env.registry,
        evaluator: Evaluator::new(),
    };
    let mut problems = Vec::new();
    let workflows: Vec<&Workflow> = match only {
        Some(w) => vec![w],
        None => env.repo.workflows.values().collect(),
    };
    for wf in workflows {
        for d in crate::workflow::validate(wf, &env.repo, &catalog) {
            problems.push(d.to_string());
        }
    }
    // Running one workflow checks only the definitions it (and its nested workflows) call, so a
    // model whose plugin is missing does not block unrelated workflows.
    let used = only.map(|wf| used_models(&env.repo, wf));
    for def in env.repo.models.values() {
        if used.as_ref().is_some_and(|u| !u.contains(&def.name)) {
            continue;
        }
        if let Err(e) = env.registry.get(&def.type_name) {
            let line = def
                .lines
                .line_of("type")
                .map(|l| format!(":{l}"))
                .unwrap_or_default();
            problems.push(format!("{}{line}: type: {e}", def.file.display()));
        }
        let mut bad = catalog.evaluator.check_templates(
            &serde_json::Value::Object(def.global_arguments.clone()),
            "globalArguments",
        );
        for (m, args) in &def.methods {
            bad.extend(catalog.evaluator.check_templates(
                &serde_json::Value::Object(args.arguments.clone()),
                &format!("methods.{m}.arguments"),
            ));
        }
        for e in bad {
            let line = def
                .lines
                .line_of(&e.field)
                .map(|l| format!(":{l}"))
                .unwrap_or_default();
            problems.push(format!("{}{line}: {e}", def.file.display()));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(CliError::usage(problems.join("\n")))
    }
}

/// Runs an `orch workflow` subcommand.
pub async fn exec(cmd: Cmd, ctx: &Ctx) -> CmdResult {
    match cmd {
        Cmd::List => {
            let repo = ctx.repo()?;
            let list: Vec<serde_json::Value> = repo
                .workflows
                .values()
                .map(|w| serde_json::json!({ "name": w.name, "description": w.description, "file": w.file }))
                .collect();
            ctx.printer.result(&list, || {
                repo.workflows
                    .values()
                    .map(|w| format!("{:<24} {}", w.name, w.description.as_deref().unwrap_or("")))
                    .collect::<Vec<_>>()
                    .join("\n")
            });
            Ok(0)
        }
        Cmd::Show { name } => {
            let repo = ctx.repo()?;
            let wf = repo.workflow(&name).map_err(CliError::usage)?;
            ctx.printer.result(wf, || {
                let mut out = format!(
                    "{} — {}\n",
                    wf.name,
                    wf.description.as_deref().unwrap_or("")
                );
                for job in &wf.jobs {
                    out.push_str(&format!("job {}\n", job.name));
                    for step in &job.steps {
                        let task = match &step.task {
                            crate::workflow::Task::ModelMethod {
                                model_id_or_name,
                                method_name,
                                ..
                            } => {
                                format!("{model_id_or_name}.{method_name}")
                            }
                            crate::workflow::Task::Workflow {
                                workflow_id_or_name,
                                ..
                            } => {
                                format!("workflow {workflow_id_or_name}")
                            }
                        };
                        let deps: Vec<&str> =
                            step.depends_on.iter().map(|d| d.step.as_str()).collect();
                        let after = if deps.is_empty() {
                            String::new()
                        } else {
                            format!("  (after {})", deps.join(", "))
                        };
                        out.push_str(&format!("  {:<24} {task}{after}\n", step.name));
                    }
                }
                out
            });
            Ok(0)
        }
        Cmd::Validate { name } => {
            let env = ctx.run_env().await?;
            let only = match &name {
                Some(n) => Some(env.repo.workflow(n).map_err(CliError::usage)?),
                None => None,
            };
            validate_all(&env, only)?;
            let count = if only.is_some() {
                1
            } else {
                env.repo.workflows.len()
            };
            ctx.printer.result(
                &serde_json::json!({ "valid": true, "workflows": count }),
                || format!("{count} workflow(s) valid"),
            );
            Ok(0)
        }
    }
}
