//! Running workflows from their `triggers:`: cron schedules ([`Scheduler`]) and signed
//! webhooks ([`Webhooks`]). Framework independent: `orch serve` supplies the clock, the way
//! runs start ([`Launcher`]) and the HTTP requests; `orch triggers run-due` uses it from the
//! command line.

mod schedule;
mod state;
mod webhook;

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::store::RunStatus;

pub use schedule::{
    Due, Fired, FiredOutcome, MissedFires, RunLookup, ScheduleStatus, Scheduler, Zone, store_lookup,
};
pub use state::{InFlight, STATE_FILE, TriggerState};
pub use webhook::{
    MAX_BODY_BYTES, SIGNATURE_HEADER, SignatureError, WebhookError, Webhooks, verify,
};

/// A boxed future that can be sent across threads.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where "now" comes from: the system clock in the server, a [`ManualClock`] in tests.
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
    /// Resolves once [`Clock::now`] has reached `at`.
    fn sleep_until(&self, at: DateTime<Utc>) -> BoxFuture<'static, ()>;
}

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
    fn sleep_until(&self, at: DateTime<Utc>) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            // Re-checked after waking: a suspended machine or a changed clock oversleeps or
            // undersleeps, and firing early would fire nothing (the time is not yet due).
            loop {
                let left = at - Utc::now();
                let Ok(left) = left.to_std() else { return };
                if left.is_zero() {
                    return;
                }
                tokio::time::sleep(left).await;
            }
        })
    }
}

/// A clock that only moves when told to, so schedule tests never depend on the wall clock.
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
    moved: tokio::sync::watch::Sender<DateTime<Utc>>,
}

impl ManualClock {
    /// A clock stopped at `at`.
    pub fn new(at: DateTime<Utc>) -> ManualClock {
        ManualClock {
            now: Mutex::new(at),
            moved: tokio::sync::watch::Sender::new(at),
        }
    }

    /// Moves the clock to `at` and wakes the sleepers it reaches.
    pub fn set(&self, at: DateTime<Utc>) {
        *self.now.lock().unwrap_or_else(|p| p.into_inner()) = at;
        self.moved.send_replace(at);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn sleep_until(&self, at: DateTime<Utc>) -> BoxFuture<'static, ()> {
        let mut moved = self.moved.subscribe();
        Box::pin(async move {
            let _ = moved.wait_for(|now| *now >= at).await;
        })
    }
}

/// Why a run was started, recorded by the launcher.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Origin {
    /// A cron schedule fired.
    Schedule {
        /// The trigger, e.g. `triggers[0]`.
        trigger: String,
        /// The scheduled time (RFC 3339, UTC).
        at: String,
    },
    /// A signed webhook request arrived.
    Webhook {
        /// The hook's path.
        path: String,
    },
}

/// A run that started: its id, and the receiver of its final status.
pub struct Launched {
    /// The run's id.
    pub id: String,
    /// Resolves with the run's final status (a dropped sender counts as failed).
    pub done: tokio::sync::oneshot::Receiver<RunStatus>,
}

/// Starts a workflow run in the background (the server's runner, or the CLI's).
pub trait Launcher: Send + Sync {
    /// Starts `workflow` with `inputs`; resolves once the run has an id.
    fn launch(
        &self,
        workflow: &str,
        inputs: Map<String, Value>,
        origin: Origin,
    ) -> BoxFuture<'static, Result<Launched, String>>;
}

/// `at` as the store writes times (RFC 3339, UTC, milliseconds).
pub fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Parses an RFC 3339 time into UTC.
pub fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            format!(
                "`{}` is not an RFC 3339 time ({e}); write e.g. 2026-01-31T12:00:00Z",
                crate::excerpt::excerpt(text)
            )
        })
}
