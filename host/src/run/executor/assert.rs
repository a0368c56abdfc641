//! `assert` steps: a CEL predicate checked against the current data, recorded as a step.

use super::{Executor, locate};
use crate::capabilities::LogLevel;
use crate::output::Event;
use crate::store::{StepRecord, now_rfc3339};
use crate::workflow::Severity;
use serde_json::{Map, Value};
use std::time::Instant;

impl Executor {
    /// Evaluates an assert and records it as a step: a false `error` assert fails it, a false
    /// `warn` assert succeeds with the warning recorded.
    pub(super) fn run_assert(
        &self,
        label: &str,
        field: &str,
        expression: &str,
        message: Option<&str>,
        severity: Severity,
        self_vars: &Map<String, Value>,
    ) -> Result<(), String> {
        let events = &self.state.runner.events;
        events.emit(Event::StepStarted {
            step: label.to_string(),
            model: None,
            method: None,
        });
        let started_at = now_rfc3339();
        let started = Instant::now();
        let claim = message.unwrap_or(expression);
        let field = format!("{field}.task.expression");
        let data = self.data();
        let scope =
            self.state
                .runner
                .evaluator
                .scope_over(&data, &self.inputs, self.vars(self_vars));
        let result = scope.eval_expr(expression);
        for s in self.state.runner.evaluator.secrets() {
            events.redactor().add(&s);
        }
        let (error, warning) = match result {
            Ok(Value::Bool(true)) => (None, None),
            Ok(Value::Bool(false)) => {
                let text = format!("assertion failed: {claim} (`{expression}` is false)");
                match severity {
                    Severity::Error => (Some(text), None),
                    Severity::Warn => (None, Some(text)),
                }
            }
            Ok(other) => {
                let line = self
                    .workflow
                    .line_of(&field)
                    .map(|l| format!(":{l}"))
                    .unwrap_or_default();
                (
                    Some(format!(
                        "{}{line}: {field}: assert `{expression}` gave {other}, not a bool; \
                         write a predicate such as `size(…) >= 3`",
                        self.workflow.file.display()
                    )),
                    None,
                )
            }
            Err(e) => (Some(locate(&self.workflow, &e, &field)), None),
        };
        // A failure shows in the step's finished event; a held or warned assert says so here.
        let note = match (&error, &warning) {
            (None, None) => Some((LogLevel::Info, format!("assert held: {claim}"))),
            (_, Some(w)) => Some((LogLevel::Warn, format!("warning: {w}"))),
            (Some(_), None) => None,
        };
        if let Some((level, message)) = note {
            events.emit(Event::Log {
                step: label.to_string(),
                level,
                message,
            });
        }
        let duration_ms = started.elapsed().as_millis() as u64;
        let status = if error.is_some() {
            "failed"
        } else {
            "succeeded"
        };
        events.emit(Event::StepFinished {
            step: label.to_string(),
            status: status.to_string(),
            duration_ms,
            error: error.clone(),
        });
        let (job, name) = label.split_once('.').unwrap_or(("", label));
        if let Ok(mut steps) = self.state.steps.lock() {
            steps.push(StepRecord {
                job: job.to_string(),
                name: name.to_string(),
                status: status.to_string(),
                started_at: Some(started_at),
                duration_ms: Some(duration_ms),
                error: error.clone(),
                warning,
                assertion: Some(claim.to_string()),
                ..Default::default()
            });
        }
        error.map_or(Ok(()), Err)
    }
}
