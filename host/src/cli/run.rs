//! `orch run <workflow>`.

use super::inputs::InputArgs;
use super::workflow::check_before_run;
use super::{CliError, CmdResult, Ctx};
use crate::output::junit;
use crate::store::{RunRecord, RunStatus};

/// Arguments of `orch run`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The workflow's name (workflows/<name>.yaml).
    workflow: String,
    #[command(flatten)]
    inputs: InputArgs,
    /// Change nothing: converge steps print their plan, read and list steps run, every other
    /// step only says what it would call.
    #[arg(long)]
    dry_run: bool,
    /// Also write the finished run as JUnit XML to this file (one test case per step and
    /// assert), even when the run fails.
    #[arg(long, value_name = "FILE")]
    junit: Option<std::path::PathBuf>,
    /// A tag stored on every resource version the run writes (repeatable; over the workflow's
    /// and the definitions' `tags`).
    #[arg(long = "tag", value_name = "KEY=VALUE")]
    tags: Vec<String>,
}

/// Validates the workflow and its inputs, runs it, and prints the run.
pub async fn exec(args: Args, ctx: &Ctx) -> CmdResult {
    let tags = super::data::parse_tags(&args.tags)?;
    let mut env = ctx.run_env_for_workflow(&args.workflow).await?;
    env.tags = tags;
    let mut inputs = args.inputs.collect()?;
    let usage = check_before_run(ctx, &env, &args.workflow)?;
    let wf = env.repo.workflow(&args.workflow).map_err(CliError::usage)?;
    crate::workflow::apply_input_defaults(wf, &mut inputs);
    crate::workflow::validate_inputs(wf, &serde_json::Value::Object(inputs.clone())).map_err(
        |problems| {
            CliError::usage(format!(
                "{}: inputs: {}",
                wf.file.display(),
                problems.join("\n  ")
            ))
        },
    )?;
    if let Some(path) = &args.junit {
        junit::check_writable(path).map_err(CliError::usage)?;
    }
    // Refused before any step when a needed bundle lied about its types.
    env.prepare_plugins(&usage.called)
        .await
        .map_err(CliError::failed)?;
    crate::run::cancel_on_signals();
    let record = env
        .run_workflow_with(&args.workflow, inputs, args.dry_run)
        .await;
    env.leave_plugins_to_exit();
    print_record(ctx, &record);
    if let Some(path) = &args.junit {
        junit::write(path, &record).map_err(CliError::failed)?;
    }
    Ok(exit_code(record.status))
}

/// The exit code for a workflow run that ended so: 0 succeeded, 1 failed, 3 waiting for
/// approval, 130 cancelled.
pub fn exit_code(status: RunStatus) -> i32 {
    match status {
        RunStatus::Succeeded => 0,
        RunStatus::Waiting => crate::run::WAITING_EXIT_CODE,
        RunStatus::Cancelled => crate::run::CANCELLED_EXIT_CODE,
        RunStatus::Running | RunStatus::Failed | RunStatus::Abandoned => 1,
    }
}

/// Prints a finished run: the record in `--json`, a summary otherwise.
pub fn print_record(ctx: &Ctx, record: &RunRecord) {
    ctx.printer.result(record, || {
        let mut out = String::new();
        if let Some(e) = &record.error {
            out.push_str(&format!("{e}\n"));
        }
        if let Some(note) = allowed_failures(record) {
            out.push_str(&note);
        }
        for w in &record.waiting {
            out.push_str(&format!(
                "run {} is waiting for approval at {}.{}{}\n  approve: orch runs approve {} --step {}.{} [--comment …]\n  reject:  orch runs reject {} --step {}.{} [--comment …]\n",
                record.id,
                w.job,
                w.step,
                w.message.as_deref().map(|m| format!(": {m}")).unwrap_or_default(),
                record.id,
                w.job,
                w.step,
                record.id,
                w.job,
                w.step
            ));
        }
        out
    });
}

/// For a run that succeeded although some steps failed (`allowFailure`), the line naming them,
/// so that a green run never hides which part did not happen (e.g. a stopped game server in
/// `collect-game-metrics`).
pub fn allowed_failures(record: &RunRecord) -> Option<String> {
    if record.status != RunStatus::Succeeded {
        return None;
    }
    let failed: Vec<String> = record
        .steps
        .iter()
        .filter(|s| s.status == "failed")
        .map(|s| format!("{}.{}", s.job, s.name))
        .collect();
    if failed.is_empty() {
        return None;
    }
    let (count, verb) = if failed.len() == 1 {
        ("1 step".to_string(), "was")
    } else {
        (format!("{} steps", failed.len()), "were")
    };
    Some(format!(
        "{} succeeded, but {count} failed and {verb} allowed to (allowFailure): {}\n",
        record.target,
        failed.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StepRecord;

    fn step(name: &str, status: &str) -> StepRecord {
        StepRecord {
            job: "collect".into(),
            name: name.into(),
            status: status.into(),
            ..Default::default()
        }
    }

    fn record(status: RunStatus, steps: Vec<StepRecord>) -> RunRecord {
        RunRecord {
            id: "r1".into(),
            kind: "workflow".into(),
            target: "collect-game-metrics".into(),
            status,
            started_at: "2026-01-01T00:00:00.000Z".into(),
            finished_at: None,
            duration_ms: Some(2100),
            inputs: serde_json::json!({}),
            steps,
            events: Vec::new(),
            error: None,
            owner: None,
            outcomes: Vec::new(),
            waiting: Vec::new(),
            resumed_from: None,
        }
    }

    #[test]
    fn a_green_run_with_an_allowed_failure_names_the_failed_step() {
        let run = record(
            RunStatus::Succeeded,
            vec![step("calamity", "succeeded"), step("infinity", "failed")],
        );
        assert_eq!(
            allowed_failures(&run).as_deref(),
            Some(
                "collect-game-metrics succeeded, but 1 step failed and was allowed to (allowFailure): collect.infinity\n"
            )
        );
    }

    #[test]
    fn a_clean_run_or_a_failed_run_adds_no_note() {
        let clean = record(RunStatus::Succeeded, vec![step("calamity", "succeeded")]);
        assert_eq!(allowed_failures(&clean), None);
        let failed = record(RunStatus::Failed, vec![step("calamity", "failed")]);
        assert_eq!(allowed_failures(&failed), None);
    }
}
