//! `orch eval '<cel>'`: evaluate an expression against the current data, to debug wiring.

use super::inputs::InputArgs;
use super::{CliError, CmdResult, Ctx};
use crate::expr::{Evaluator, Vars};
use crate::method::StoreDataSource;

/// Arguments of `orch eval`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A CEL expression, e.g. model.fleet.resource.vm["gold-image"].attributes.ip
    expression: String,
    #[command(flatten)]
    inputs: InputArgs,
}

/// Evaluates and prints the value as JSON (vault values are redacted).
pub fn exec(args: Args, ctx: &Ctx) -> CmdResult {
    let repo = ctx.repo()?;
    let value = evaluate(ctx, &repo, &args.expression, args.inputs.collect()?)?;
    ctx.printer.result(&value, || {
        serde_json::to_string_pretty(&value).unwrap_or_default()
    });
    Ok(0)
}

/// Evaluates `expression` (with or without `${{ }}`) against the current data; vault values
/// in the value or the error are redacted.
pub(crate) fn evaluate(
    ctx: &Ctx,
    repo: &crate::repo::Repo,
    expression: &str,
    inputs: serde_json::Map<String, serde_json::Value>,
) -> Result<serde_json::Value, CliError> {
    let store = ctx.store(repo);
    let vault = ctx.vault(repo)?;
    let data = StoreDataSource::new(store, vault, repo);
    let evaluator = Evaluator::new();
    let vars = Vars {
        inputs,
        env: repo.env_values(),
        run_id: String::new(),
        self_: serde_json::Map::new(),
    };
    let scope = evaluator.scope(&data, vars);
    let expr = expression.trim();
    let expr = expr
        .strip_prefix("${{")
        .and_then(|e| e.strip_suffix("}}"))
        .unwrap_or(expr)
        .trim();
    let result = scope.eval_expr(expr);
    let redactor = crate::vault::Redactor::default();
    for s in evaluator.secrets() {
        redactor.add(&s);
    }
    match result {
        Ok(mut value) => {
            redactor.redact_json(&mut value);
            Ok(value)
        }
        Err(e) => Err(CliError::failed(redactor.redact(&e.to_string()))),
    }
}
