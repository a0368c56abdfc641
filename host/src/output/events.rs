//! Run events. Every message is redacted when the event is made, so no view or record can leak
//! a vault value.

use crate::capabilities::LogLevel;
use crate::vault::Redactor;
use serde::Serialize;
use serde_json::Value;
use std::sync::{Arc, Mutex};

/// Something that happened during a run.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "camelCase")]
pub enum Event {
    /// A run began.
    #[serde(rename_all = "camelCase")]
    RunStarted {
        /// Run id.
        run_id: String,
        /// `workflow` or `method`.
        kind: String,
        /// Workflow name or `model.method`.
        target: String,
    },
    /// A step began.
    #[serde(rename_all = "camelCase")]
    StepStarted {
        /// `job.step` (with the forEach item, if any).
        step: String,
        /// Model name.
        model: Option<String>,
        /// Method name.
        method: Option<String>,
    },
    /// A plugin log line.
    #[serde(rename_all = "camelCase")]
    Log {
        /// `job.step`.
        step: String,
        /// Severity.
        level: LogLevel,
        /// The line (redacted).
        message: String,
    },
    /// A resource version was committed.
    #[serde(rename_all = "camelCase")]
    ResourceWritten {
        /// `job.step`.
        step: String,
        /// Model name.
        model: String,
        /// Resource spec.
        spec: String,
        /// Instance name.
        name: String,
        /// Version number.
        version: u64,
    },
    /// A step ended.
    #[serde(rename_all = "camelCase")]
    StepFinished {
        /// `job.step`.
        step: String,
        /// succeeded, failed or skipped.
        status: String,
        /// Wall time.
        duration_ms: u64,
        /// Why it failed or was skipped (redacted).
        error: Option<String>,
    },
    /// A run ended.
    #[serde(rename_all = "camelCase")]
    RunFinished {
        /// Run id.
        run_id: String,
        /// succeeded or failed.
        status: String,
        /// Wall time.
        duration_ms: u64,
    },
}

impl Event {
    fn redact(&mut self, r: &Redactor) {
        match self {
            Event::Log { message, .. } => *message = r.redact(message),
            Event::StepFinished { error: Some(e), .. } => *e = r.redact(e),
            _ => {}
        }
    }
}

type Listener = Arc<dyn Fn(&Event) + Send + Sync>;

/// Collects a run's events, redacts them and hands each to a live listener (the printer).
#[derive(Clone)]
pub struct EventSink {
    events: Arc<Mutex<Vec<Event>>>,
    redactor: Redactor,
    listener: Listener,
}

impl EventSink {
    /// A sink that redacts with `redactor` and shows each event to `listener`.
    pub fn new(redactor: Redactor, listener: Listener) -> Self {
        EventSink {
            events: Arc::default(),
            redactor,
            listener,
        }
    }

    /// Records an event.
    pub fn emit(&self, mut event: Event) {
        event.redact(&self.redactor);
        (self.listener)(&event);
        if let Ok(mut events) = self.events.lock() {
            events.push(event);
        }
    }

    /// All events so far, as JSON (for the run record).
    pub fn to_json(&self) -> Vec<Value> {
        let events = self.events.lock().map(|e| e.clone()).unwrap_or_default();
        events
            .iter()
            .filter_map(|e| serde_json::to_value(e).ok())
            .map(|mut v| {
                self.redactor.redact_json(&mut v);
                v
            })
            .collect()
    }

    /// The redactor in use.
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }
}
