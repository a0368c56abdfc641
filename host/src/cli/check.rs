//! `orch check`: every problem in the repository, for CI. Exit 2 when there is any.

use super::workflow::RegistryCatalog;
use super::{CliError, CmdResult, Ctx};
use crate::excerpt::clip_message;
use crate::repo::{Diagnostic, Repo, RepoError};
use serde_json::{Value, json};

/// Arguments of `orch check`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Checks `orch.yaml`, every definition, every workflow and every installed plugin.
pub async fn exec(_args: Args, ctx: &Ctx) -> CmdResult {
    let root = ctx.repo_root()?;
    let repo = match Repo::load(&root) {
        Ok(repo) => repo,
        // orch.yaml is broken: nothing else can be checked against it.
        Err(RepoError::Invalid(diags)) => {
            let problems = diags.iter().map(diagnostic_json).collect();
            return report(ctx, problems, 0, 0);
        }
        Err(e) => return Err(CliError::usage(e)),
    };
    let registry = ctx.registry(&repo).await?;
    let catalog = RegistryCatalog::new(&repo, &registry);
    let mut problems: Vec<Value> = crate::workflow::check_repository(&repo, &catalog)
        .iter()
        .map(diagnostic_json)
        .collect();
    // Definitions that read each other in a loop have no converge order (`orch graph`);
    // other graph problems (undefined models) are already reported above.
    if let Err(crate::graph::GraphError::Cycle(loops)) = crate::graph::ModelGraph::of(&repo) {
        problems.extend(loops.iter().map(|l| {
            let first = l.steps.first();
            json!({
                "file": first.map(|s| s.file.clone()),
                "line": first.and_then(|s| s.line),
                "column": null,
                "field": first.map(|s| s.via.clone()),
                "message": clip_message(&l.to_string()),
                "text": l.to_string(),
            })
        }));
    }
    problems.extend(registry.problems().iter().map(|p| {
        json!({ "file": null, "line": null, "column": null, "field": null, "message": clip_message(p) })
    }));
    report(
        ctx,
        problems,
        repo.models.len() + repo.broken.models.len(),
        repo.workflows.len() + repo.broken.workflows.len(),
    )
}

fn diagnostic_json(d: &Diagnostic) -> Value {
    json!({
        "file": d.file,
        "line": d.line,
        "column": d.column,
        "field": d.field,
        "message": clip_message(&d.message),
        "text": d.to_string(),
    })
}

fn report(ctx: &Ctx, problems: Vec<Value>, models: usize, workflows: usize) -> CmdResult {
    let ok = problems.is_empty();
    if ctx.printer.is_json() {
        let value =
            json!({ "ok": ok, "models": models, "workflows": workflows, "problems": problems });
        ctx.printer.result(&value, String::new);
        return Ok(if ok { 0 } else { 2 });
    }
    if ok {
        ctx.printer.result(&json!(null), || {
            format!("no problems: {models} model(s), {workflows} workflow(s)")
        });
        return Ok(0);
    }
    let mut lines: Vec<String> = problems
        .iter()
        .map(|p| match &p["text"] {
            Value::String(text) => text.clone(),
            _ => p["message"].as_str().unwrap_or_default().to_string(),
        })
        .collect();
    lines.push(format!("{} problem(s) found", problems.len()));
    Err(CliError::usage(lines.join("\n")))
}
