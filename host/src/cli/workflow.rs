//! `orch workflow list|show|validate|graph`.

use super::{CliError, CmdResult, Ctx};
use crate::expr::Evaluator;
use crate::graph::{Format, WorkflowGraph};
use crate::repo::Repo;
use crate::run::RunEnv;
use crate::runtime::PluginRegistry;
use crate::workflow::Catalog;

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
    /// Draw one workflow's jobs and steps with their dependsOn (checked first, without plugins).
    Graph {
        /// Workflow name.
        name: String,
        /// text: jobs and steps in the order they can start; mermaid or dot: a drawing
        /// where `B --> A` means A waits for B.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Resolve every expression of a workflow against the current data and print the results
    /// (inputs, guards, forEach items, asserts), running nothing; secrets show as `***`.
    Evaluate {
        /// Workflow name.
        name: String,
        #[command(flatten)]
        inputs: super::inputs::InputArgs,
    },
}

/// Installed types and the expression checker, as validation sees them.
pub struct RegistryCatalog<'a> {
    repo: &'a Repo,
    registry: &'a PluginRegistry,
    evaluator: Evaluator,
}

impl<'a> RegistryCatalog<'a> {
    /// The catalog of `repo` with the plugins in `registry`.
    pub fn new(repo: &'a Repo, registry: &'a PluginRegistry) -> Self {
        RegistryCatalog {
            repo,
            registry,
            evaluator: Evaluator::new(),
        }
    }
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

    fn type_problem(&self, type_name: &str) -> Option<String> {
        self.registry.get(type_name).err()
    }
}

/// Before running workflow `name`: fails on any problem in what the run uses; broken files it
/// does not use are shown as warnings.
pub fn check_before_run(
    ctx: &Ctx,
    env: &RunEnv,
    name: &str,
) -> Result<crate::repo::Usage, CliError> {
    let catalog = RegistryCatalog::new(&env.repo, &env.registry);
    let usage =
        crate::workflow::check_workflow(&env.repo, &catalog, name).map_err(CliError::usage)?;
    ctx.warn_skipped(&env.repo.problems_outside(&usage));
    Ok(usage)
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
            let repo = ctx.load_repo()?;
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
                            crate::workflow::Task::Assert { expression, .. } => {
                                format!("assert {expression}")
                            }
                            crate::workflow::Task::ManualApproval { .. } => {
                                "manual approval".to_string()
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
        Cmd::Validate { name: Some(name) } => {
            let env = ctx.run_env().await?;
            check_before_run(ctx, &env, &name)?;
            ctx.printer.result(
                &serde_json::json!({ "valid": true, "workflows": 1 }),
                || format!("workflow `{name}` is valid"),
            );
            Ok(0)
        }
        Cmd::Evaluate { name, inputs } => super::evaluate::workflow(&name, &inputs, ctx),
        Cmd::Graph { name, format } => {
            let repo = ctx.load_repo()?;
            let graph = WorkflowGraph::of(&repo, &name).map_err(CliError::usage)?;
            ctx.printer.result(&graph, || graph.render(format));
            Ok(0)
        }
        Cmd::Validate { name: None } => {
            let env = ctx.run_env().await?;
            let catalog = RegistryCatalog::new(&env.repo, &env.registry);
            let problems = crate::workflow::check_repository(&env.repo, &catalog);
            if !problems.is_empty() {
                let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
                return Err(CliError::usage(lines.join("\n")));
            }
            let count = env.repo.workflows.len();
            ctx.printer.result(
                &serde_json::json!({ "valid": true, "workflows": count }),
                || format!("{count} workflow(s) valid"),
            );
            Ok(0)
        }
    }
}
