//! What each tool does: the same functions `orch` commands and `orch serve` call, with the
//! same checks (a workflow checks clean and its inputs fit its schema before it runs; a
//! destructive method is confirmed by the run layer, exactly as for `orch run`).

use super::schemas::{Arguments, ToolSpec};
use crate::cli::{CliError, context::Ctx};
use crate::run::RunEnv;
use crate::serve::api::catalog;
use crate::store::{RunRecord, RunStatus};
use serde_json::{Map, Value, json};

/// A tool's answer: its JSON, and whether it reports a failure (a run that failed).
#[derive(Debug)]
pub struct Answer {
    /// The result.
    pub value: Value,
    /// True for a run that did not succeed: the summary says why, as a tool error.
    pub failed: bool,
}

impl From<Value> for Answer {
    fn from(value: Value) -> Self {
        Answer {
            value,
            failed: false,
        }
    }
}

/// Runs tool `tool` with `args`; `Err` is orch's own message, returned as a tool error.
pub async fn call(
    ctx: &Ctx,
    env: &RunEnv,
    tool: &ToolSpec,
    args: Arguments,
) -> Result<Answer, String> {
    match tool.name {
        "run_workflow" => {
            run_workflow(ctx, env, &args.string("workflow")?, args.object("inputs")?).await
        }
        "run_method" => {
            run_method(
                env,
                &args.string("model")?,
                &args.string("method")?,
                args.object("inputs")?,
            )
            .await
        }
        _ => read(ctx, env, tool, args).await.map(Answer::from),
    }
}

/// The tools that change nothing.
async fn read(ctx: &Ctx, env: &RunEnv, tool: &ToolSpec, args: Arguments) -> Result<Value, String> {
    let cli = |e: CliError| e.message;
    match tool.name {
        "list_types" => Ok(Value::Array(crate::cli::type_::list(&env.registry))),
        "describe_type" => {
            crate::cli::type_::describe(&env.registry, &args.string("name")?).map_err(cli)
        }
        "list_models" => Ok(Value::Array(crate::cli::model::list(&env.repo))),
        "show_model" => crate::cli::model::show(&env.repo, &args.string("name")?).map_err(cli),
        "list_workflows" => Ok(catalog::workflow_list(&env.repo)),
        "show_workflow" => {
            let name = args.string("name")?;
            let wf = env.repo.workflow(&name).map_err(|e| e.to_string())?;
            catalog::workflow_detail(&env.repo, wf)
        }
        "get_run" => {
            let run = crate::cli::runs::show(&env.store, &args.string("id")?).map_err(cli)?;
            serde_json::to_value(run).map_err(|e| e.to_string())
        }
        "data_list" => {
            let model = args.optional_string("model")?;
            crate::cli::data::list(
                &env.repo,
                &env.store,
                model.as_deref(),
                args.flag("all")?,
                &Default::default(),
            )
            .map(|s| s.value)
            .map_err(cli)
        }
        "data_get" => {
            let (model, name) = (args.string("model")?, args.string("name")?);
            let (version, spec) = (args.optional_u64("version")?, args.optional_string("spec")?);
            crate::cli::data::get(ctx, &env.repo, &env.store, &model, &name, version, spec)
                .await
                .map(|s| s.value)
                .map_err(cli)
        }
        "data_versions" => {
            let (model, name) = (args.string("model")?, args.string("name")?);
            let spec = args.optional_string("spec")?;
            crate::cli::data::versions(ctx, &env.repo, &env.store, &model, &name, spec)
                .await
                .map(|s| s.value)
                .map_err(cli)
        }
        "data_diff" => {
            let (model, name) = (args.string("model")?, args.string("name")?);
            let (from, to) = (args.optional_u64("from")?, args.optional_u64("to")?);
            let spec = args.optional_string("spec")?;
            crate::cli::data::diff(ctx, &env.repo, &env.store, &model, &name, from, to, spec)
                .await
                .map(|s| s.value)
                .map_err(cli)
        }
        "data_changes" => {
            let (model, since) = (
                args.optional_string("model")?,
                args.optional_string("since")?,
            );
            crate::cli::data::changes(ctx, &env.repo, &env.store, model, since)
                .await
                .map(|s| s.value)
                .map_err(cli)
        }
        "eval" => {
            let value = crate::cli::eval::evaluate(
                ctx,
                &env.repo,
                &args.string("expression")?,
                args.object("inputs")?,
            )
            .map_err(cli)?;
            Ok(json!({ "value": value }))
        }
        "plan" => crate::cli::plan::plan_value(env, &args.strings("models")?)
            .await
            .map_err(cli),
        other => Err(format!("no tool `{other}` (tools/list names them)")),
    }
}

/// `run_workflow`: the checks `orch run` makes, then the run to its end.
async fn run_workflow(
    ctx: &Ctx,
    env: &RunEnv,
    workflow: &str,
    mut inputs: Map<String, Value>,
) -> Result<Answer, String> {
    let wf = env.repo.workflow(workflow).map_err(|e| e.to_string())?;
    let usage =
        crate::cli::workflow::check_before_run(ctx, env, workflow).map_err(|e| e.message)?;
    crate::workflow::apply_input_defaults(wf, &mut inputs);
    crate::workflow::validate_inputs(wf, &Value::Object(inputs.clone()))
        .map_err(|problems| format!("{}: inputs: {}", wf.file.display(), problems.join("\n  ")))?;
    env.prepare_plugins(&usage.called).await?;
    let record = env.run_workflow(workflow, inputs).await;
    Ok(Answer {
        value: summary(&record),
        failed: failed(&record),
    })
}

/// `run_method`: the checks `orch model run` makes, then the call to its end; a destructive
/// method's confirmation is checked by the run layer before the plugin is reached.
async fn run_method(
    env: &RunEnv,
    model: &str,
    method: &str,
    inputs: Map<String, Value>,
) -> Result<Answer, String> {
    crate::workflow::check_model(&env.repo, model).map_err(|e| e.to_string())?;
    let (record, output) = env.run_method(model, method, inputs, false).await;
    Ok(Answer {
        value: json!({ "run": summary(&record), "output": output }),
        failed: failed(&record),
    })
}

/// A run that failed, was cancelled or abandoned (waiting for approval is not a failure).
fn failed(record: &RunRecord) -> bool {
    matches!(
        record.status,
        RunStatus::Failed | RunStatus::Cancelled | RunStatus::Abandoned
    )
}

/// A finished run as an agent needs it: how it ended and each step's outcome (the full
/// record, with its events: `get_run`). The record is redacted where it is made.
pub fn summary(record: &RunRecord) -> Value {
    let steps: Vec<Value> = record
        .steps
        .iter()
        .map(|s| {
            let mut step = json!({"job": s.job, "name": s.name, "status": s.status});
            let fields = step.as_object_mut().expect("an object");
            for (key, value) in [
                ("model", &s.model),
                ("method", &s.method),
                ("error", &s.error),
                ("warning", &s.warning),
            ] {
                if let Some(v) = value {
                    fields.insert(key.into(), json!(v));
                }
            }
            if !s.resources.is_empty() {
                fields.insert("resources".into(), json!(s.resources));
            }
            step
        })
        .collect();
    let mut value = json!({
        "id": record.id,
        "kind": record.kind,
        "target": record.target,
        "status": record.status,
        "durationMs": record.duration_ms,
        "steps": steps,
    });
    let fields = value.as_object_mut().expect("an object");
    if let Some(e) = &record.error {
        fields.insert("error".into(), json!(e));
    }
    if !record.waiting.is_empty() {
        fields.insert("waiting".into(), json!(record.waiting));
    }
    value
}
