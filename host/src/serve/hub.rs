//! Live events of the runs this server has in flight: for each, the events so far (replayed to
//! a stream that joins late) and a counter that wakes the streams when one is added. A run's
//! `runFinished` is held back until its record is stored, so a client that saw the stream end
//! reads the finished record; the run then leaves the hub (its record has the events).

use crate::run::CancelToken;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// One run in flight.
pub struct LiveRun {
    /// The workflow or `model.method` it runs.
    pub target: String,
    /// Cancels it.
    pub cancel: CancelToken,
    events: Mutex<Events>,
    /// The number of events so far (and whether the run ended), for waiting streams.
    changed: watch::Sender<(usize, bool)>,
}

#[derive(Default)]
struct Events {
    list: Vec<Value>,
    /// `runFinished`, held until the record is stored.
    finish: Option<Value>,
    ended: bool,
}

impl LiveRun {
    /// Events from index `from` on, and whether the run has ended (no more will come).
    pub fn events_from(&self, from: usize) -> (Vec<Value>, bool) {
        let events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        let list = events.list.get(from..).unwrap_or_default().to_vec();
        (list, events.ended)
    }

    /// Waits until there are more than `seen` events or the run ended.
    pub async fn wait_past(&self, seen: usize) {
        let mut rx = self.changed.subscribe();
        let _ = rx.wait_for(|(n, ended)| *n > seen || *ended).await;
    }

    fn push(&self, event: &Value) {
        let mut events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        if event.get("event").and_then(Value::as_str) == Some("runFinished") {
            events.finish = Some(event.clone());
            return;
        }
        events.list.push(event.clone());
        self.changed.send_replace((events.list.len(), events.ended));
    }

    fn end(&self) {
        let mut events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(finish) = events.finish.take() {
            events.list.push(finish);
        }
        events.ended = true;
        self.changed.send_replace((events.list.len(), true));
    }
}

/// The runs in flight of this server.
#[derive(Default, Clone)]
pub struct Hub {
    runs: Arc<Mutex<HashMap<String, Arc<LiveRun>>>>,
}

impl Hub {
    /// Registers a run before it starts, so its first event has somewhere to go.
    pub fn register(&self, id: &str, target: &str, cancel: CancelToken) -> Arc<LiveRun> {
        let run = Arc::new(LiveRun {
            target: target.to_string(),
            cancel,
            events: Mutex::default(),
            changed: watch::channel((0, false)).0,
        });
        self.lock().insert(id.to_string(), run.clone());
        run
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<LiveRun>>> {
        self.runs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds an event (JSON, redacted) of run `id`.
    pub fn publish(&self, id: &str, event: &Value) {
        let run = self.lock().get(id).cloned();
        if let Some(run) = run {
            run.push(event);
        }
    }

    /// Ends run `id` once its record is stored: streams get its `runFinished` and end.
    pub fn finish(&self, id: &str) {
        let run = self.lock().remove(id);
        if let Some(run) = run {
            run.end();
        }
    }

    /// The run `id`, while in flight.
    pub fn get(&self, id: &str) -> Option<Arc<LiveRun>> {
        self.lock().get(id).cloned()
    }

    /// The runs in flight.
    pub fn in_flight(&self) -> Vec<Arc<LiveRun>> {
        self.lock().values().cloned().collect()
    }

    /// How many runs are in flight.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no run is in flight.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn a_late_stream_gets_every_event_and_run_finished_only_after_the_record() {
        let hub = Hub::default();
        let run = hub.register("r1", "sync-fleet", CancelToken::new());
        hub.publish("r1", &json!({"event": "runStarted"}));
        hub.publish("r1", &json!({"event": "stepStarted"}));
        hub.publish("r1", &json!({"event": "runFinished"}));
        let (events, ended) = run.events_from(0);
        assert_eq!(events.len(), 2, "runFinished is held back: {events:?}");
        assert!(!ended);
        hub.finish("r1");
        run.wait_past(2).await;
        let (events, ended) = run.events_from(2);
        assert_eq!(events, vec![json!({"event": "runFinished"})]);
        assert!(ended);
        assert!(hub.get("r1").is_none(), "a finished run leaves the hub");
    }
}
