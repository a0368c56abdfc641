//! `orch model list|show|run`.

use super::inputs::InputArgs;
use super::{CliError, CmdResult, Ctx};

/// `orch model` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Cmd {
    /// List definitions.
    List,
    /// Show one definition (its arguments as written, not its data; see `orch data get`).
    Show {
        /// Model name.
        name: String,
    },
    /// Run one method of a model (exit 0 succeeded, 1 failed, 130 cancelled by Ctrl-C,
    /// SIGTERM or `orch runs cancel`).
    Run {
        /// Model name.
        model: String,
        /// Method name.
        method: String,
        #[command(flatten)]
        inputs: InputArgs,
        /// Ask the plugin not to change anything.
        #[arg(long)]
        dry_run: bool,
        /// A tag stored on every resource version the method writes (repeatable; over the
        /// definition's `tags`).
        #[arg(long = "tag", value_name = "KEY=VALUE")]
        tags: Vec<String>,
    },
    /// Resolve a definition's globalArguments and method arguments against the current data
    /// and print them, running nothing; secrets show as `***`.
    Evaluate {
        /// Model name.
        model: String,
        /// Only this method's arguments (default: every method the definition sets).
        #[arg(long)]
        method: Option<String>,
        #[command(flatten)]
        inputs: InputArgs,
    },
}

/// Runs an `orch model` subcommand.
pub async fn exec(cmd: Cmd, ctx: &Ctx) -> CmdResult {
    match cmd {
        Cmd::List => {
            let repo = ctx.repo()?;
            let list = list(&repo);
            ctx.printer.result(&list, || {
                repo.models
                    .values()
                    .map(|d| format!("{:<24} {}", d.name, d.type_name))
                    .collect::<Vec<_>>()
                    .join("\n")
            });
            Ok(0)
        }
        Cmd::Show { name } => {
            let repo = ctx.load_repo()?;
            let value = show(&repo, &name)?;
            ctx.printer.result(&value, || {
                serde_json::to_string_pretty(&value).unwrap_or_default()
            });
            Ok(0)
        }
        Cmd::Evaluate {
            model,
            method,
            inputs,
        } => super::evaluate::model(&model, method.as_deref(), &inputs, ctx),
        Cmd::Run {
            model,
            method,
            inputs,
            dry_run,
            tags,
        } => {
            let tags = super::data::parse_tags(&tags)?;
            let mut env = ctx.run_env_for_method().await?;
            env.tags = tags;
            let inputs = inputs.collect()?;
            let usage = crate::workflow::check_model(&env.repo, &model).map_err(CliError::usage)?;
            ctx.warn_skipped(&env.repo.problems_outside(&usage));
            // Ctrl-C or SIGTERM (`orch runs cancel`) interrupts the call and records the run
            // `cancelled`, as `orch run` does.
            crate::run::cancel_on_signals();
            let (record, output) = env.run_method(&model, &method, inputs, dry_run).await;
            env.leave_plugins_to_exit();
            let value = serde_json::json!({ "run": record, "output": output });
            ctx.printer
                .result(&value, || match (&output, &record.error) {
                    (Some(o), _) => serde_json::to_string_pretty(o).unwrap_or_default(),
                    (None, Some(e)) => e.clone(),
                    _ => String::new(),
                });
            Ok(super::run::exit_code(record.status))
        }
    }
}

/// `orch model list --json`: every definition.
pub(crate) fn list(repo: &crate::repo::Repo) -> Vec<serde_json::Value> {
    repo.models
        .values()
        .map(|d| serde_json::json!({ "name": d.name, "type": d.type_name, "file": d.file }))
        .collect()
}

/// `orch model show --json`: one definition as written (expressions unresolved).
pub(crate) fn show(repo: &crate::repo::Repo, name: &str) -> Result<serde_json::Value, CliError> {
    let d = repo.model(name).map_err(CliError::usage)?;
    Ok(serde_json::json!({
        "name": d.name,
        "type": d.type_name,
        "description": d.description,
        "file": d.file,
        "globalArguments": d.global_arguments,
        "methods": d.methods.iter().map(|(k, v)| (k.clone(), serde_json::json!({"arguments": v.arguments}))).collect::<serde_json::Map<_, _>>(),
    }))
}
