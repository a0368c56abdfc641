//! `orch plan` and `orch apply`: declarative converge over the repository's models.

use super::{CliError, CmdResult, Ctx};
use crate::converge::{self, ModelPlan};
use serde_json::{Map, Value, json};
use std::io::{BufRead, IsTerminal, Write};

/// Arguments of `orch plan`.
#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// Models to plan (and what they depend on); default: every model with a converge method.
    models: Vec<String>,
    /// Exit 0 when nothing would change, 2 when changes are pending, 1 on error (a drift check).
    #[arg(long)]
    detailed_exitcode: bool,
}

/// Arguments of `orch apply`.
#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    /// Models to converge (and what they depend on); default: every model with a converge method.
    models: Vec<String>,
    /// Apply without asking (required when stdin is not a terminal).
    #[arg(long)]
    yes: bool,
    /// Allow the plan to delete things (passed to converge methods as `allowDestroy: true`).
    #[arg(long)]
    allow_destroy: bool,
}

/// The models to converge, in dependency order: the named ones and everything they read, or
/// every model.
fn ordered(env: &crate::run::RunEnv, models: &[String]) -> Result<Vec<String>, CliError> {
    for m in models {
        env.repo.model(m).map_err(CliError::usage)?;
    }
    // Named models: only they and what they read are checked, so a broken file elsewhere
    // does not block them.
    let graph = if models.is_empty() {
        crate::graph::ModelGraph::of(&env.repo)
    } else {
        crate::graph::ModelGraph::of_models(&env.repo, models)
    }
    .map_err(CliError::usage)?;
    let order = if models.is_empty() {
        graph.order()
    } else {
        graph.order_of(models).map_err(CliError::usage)?
    };
    Ok(order.into_iter().map(String::from).collect())
}

fn arguments(allow_destroy: bool) -> Map<String, Value> {
    let mut args = Map::new();
    if allow_destroy {
        args.insert("allowDestroy".into(), Value::Bool(true));
    }
    args
}

fn failed(plans: &[ModelPlan]) -> bool {
    plans.iter().any(|p| p.error.is_some())
}

/// `orch plan`: every converge-capable model's plan, in converge order.
pub async fn plan(args: PlanArgs, ctx: &Ctx) -> CmdResult {
    let env = ctx.run_env_for_method().await?;
    let order = ordered(&env, &args.models)?;
    let plans = converge::plan(&env, &order, &Map::new()).await;
    let pending = plans.iter().any(|p| p.pending().next().is_some());
    let value = json!({ "order": order, "models": plans, "pending": pending });
    let verbose = ctx.printer.verbose() > 0;
    ctx.printer
        .result(&value, || converge::render(&plans, verbose));
    Ok(if failed(&plans) {
        1
    } else if args.detailed_exitcode && pending {
        2
    } else {
        0
    })
}

/// The plan of `models` (every converge-capable model when empty) as `orch plan --json` gives
/// it; also `orch mcp`'s `plan`.
pub(crate) async fn plan_value(
    env: &crate::run::RunEnv,
    models: &[String],
) -> Result<Value, CliError> {
    let order = ordered(env, models)?;
    let plans = converge::plan(env, &order, &Map::new()).await;
    let pending = plans.iter().any(|p| p.pending().next().is_some());
    Ok(json!({ "order": order, "models": plans, "pending": pending }))
}

/// `orch apply`: plans, shows the plan, asks (or takes `--yes`), then converges.
pub async fn apply(args: ApplyArgs, ctx: &Ctx) -> CmdResult {
    let env = ctx.run_env_for_method().await?;
    let order = ordered(&env, &args.models)?;
    let plans = converge::plan(&env, &order, &Map::new()).await;
    // The plan, and that nothing was applied: what every refusal below prints.
    let unapplied = || {
        ctx.printer.result(
            &json!({ "order": order, "models": plans, "applied": [] }),
            || converge::render(&plans, false),
        );
    };
    if failed(&plans) {
        unapplied();
        return Err(CliError::failed(
            "the plan could not be made for every model; nothing was applied",
        ));
    }
    if !plans.iter().any(|p| p.pending().next().is_some()) {
        ctx.printer.result(
            &json!({ "order": order, "models": plans, "applied": [] }),
            || {
                "Nothing to do: every model already matches its declaration; no change was sent."
                    .to_string()
            },
        );
        return Ok(0);
    }
    if let Some(p) = plans.iter().find(|p| p.deletes())
        && !args.allow_destroy
    {
        unapplied();
        return Err(CliError::usage(format!(
            "the plan of `{}` deletes something; review it and pass --allow-destroy to apply it",
            p.model
        )));
    }
    if !args.yes {
        if !std::io::stdin().is_terminal() {
            unapplied();
            return Err(CliError::usage(
                "stdin is not a terminal, so orch cannot ask; review the plan and pass --yes to apply it",
            ));
        }
        crate::output::progress::flush();
        eprintln!("{}", converge::render(&plans, false));
        eprint!("Apply this plan? [y/N] ");
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        let _ = std::io::stdin().lock().read_line(&mut answer);
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            return Err(CliError::failed("not applied"));
        }
    }
    let applied = converge::apply(&env, &plans, &arguments(args.allow_destroy)).await;
    let ok = applied.iter().all(|a| a.succeeded);
    ctx.printer.result(
        &json!({ "order": order, "models": plans, "applied": applied }),
        || {
            let mut out = vec![converge::render(&plans, false)];
            for a in &applied {
                out.push(match &a.error {
                    None => format!("applied {} (run {})", a.model, a.run_id),
                    Some(e) => format!("failed {} (run {}): {e}", a.model, a.run_id),
                });
            }
            out.join("\n")
        },
    );
    Ok(if ok { 0 } else { 1 })
}
