//! The run's start record, committed on its own thread: opening the store for writing and
//! committing costs several `fdatasync`s (milliseconds on an SSD, tens on an SD card), which
//! the first step should not wait for. Every later write of the run, and every plugin call,
//! waits for it first: the store never holds a version or an end record of a run whose start is
//! not recorded, and nothing outside is touched by a run `orch runs list` cannot show.

use super::reap_abandoned;
use crate::store::{ResourceStore, RunRecord};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Where the start record's commit stands.
enum State {
    /// Still committing on its thread.
    Pending(JoinHandle<Result<(), String>>),
    /// Committed, or failed with this error.
    Finished(Option<String>),
}

/// A handle on the start record's commit, shared by everything in the run that writes.
#[derive(Clone)]
pub struct StartRecord(Arc<Mutex<State>>);

impl StartRecord {
    /// Reaps abandoned runs and commits `record` on a new thread (inline if no thread can be
    /// started), then tells `on_recorded` how that went.
    pub(crate) fn spawn(
        store: ResourceStore,
        record: RunRecord,
        on_recorded: Option<super::OnRecorded>,
    ) -> StartRecord {
        let work = move || {
            // Runs whose process died are found here at the latest, so they never stay `running`.
            if let Err(e) = reap_abandoned(&store) {
                tracing::warn!(error = %e, "could not check for abandoned runs");
            }
            let result = store
                .put_run(&record)
                .map_err(|e| format!("cannot record the run's start: {e}"));
            if let Some(told) = on_recorded {
                told(result.as_ref().err().cloned());
            }
            result
        };
        let (tx, rx) = std::sync::mpsc::channel::<Box<dyn FnOnce() -> Result<(), String> + Send>>();
        let state = match std::thread::Builder::new()
            .name("orch-run-start".into())
            .spawn(move || rx.recv().map_or(Ok(()), |work| work()))
        {
            Ok(handle) => {
                let _ = tx.send(Box::new(work));
                State::Pending(handle)
            }
            Err(_) => State::Finished(work().err()),
        };
        StartRecord(Arc::new(Mutex::new(state)))
    }

    /// A handle for a run whose record is already stored (a waiting run taken up again).
    pub(crate) fn committed() -> StartRecord {
        StartRecord(Arc::new(Mutex::new(State::Finished(None))))
    }

    /// Whether the commit may still be running (a `wait` could block).
    pub fn pending(&self) -> bool {
        matches!(
            &*self.0.lock().unwrap_or_else(|p| p.into_inner()),
            State::Pending(_)
        )
    }

    /// Blocks until the start record is committed; returns why it could not be, if so.
    pub fn wait(&self) -> Option<String> {
        let mut state = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let State::Pending(_) = &*state {
            let State::Pending(handle) = std::mem::replace(&mut *state, State::Finished(None))
            else {
                unreachable!("matched above")
            };
            let error = match handle.join() {
                Ok(result) => result.err(),
                Err(_) => Some("cannot record the run's start: its thread panicked".into()),
            };
            *state = State::Finished(error);
        }
        match &*state {
            State::Finished(error) => error.clone(),
            State::Pending(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{RunStatus, StoreOptions, new_run_id, now_rfc3339};

    fn record(id: &str) -> RunRecord {
        RunRecord {
            id: id.to_string(),
            kind: "workflow".into(),
            target: "w".into(),
            status: RunStatus::Running,
            started_at: now_rfc3339(),
            finished_at: None,
            duration_ms: None,
            inputs: serde_json::json!({}),
            steps: Vec::new(),
            events: Vec::new(),
            error: None,
            owner: None,
            outcomes: Vec::new(),
            waiting: Vec::new(),
            resumed_from: None,
        }
    }

    #[test]
    fn after_wait_the_start_record_is_in_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = ResourceStore::new(dir.path().join("data.redb"), StoreOptions::default());
        let id = new_run_id();
        let started = StartRecord::spawn(store.clone(), record(&id), None);
        assert_eq!(started.clone().wait(), None);
        assert_eq!(started.wait(), None, "a second wait returns at once");
        let stored = store.get_run(&id).unwrap().expect("recorded");
        assert_eq!(stored.status, RunStatus::Running);
    }

    #[test]
    fn on_recorded_is_told_once_the_record_is_in_the_store_or_why_not() {
        let dir = tempfile::tempdir().unwrap();
        let store = ResourceStore::new(dir.path().join("data.redb"), StoreOptions::default());
        let id = new_run_id();
        let (tx, rx) = std::sync::mpsc::channel();
        let (seen, probe, probed) = (tx.clone(), store.clone(), id.clone());
        let told: crate::run::OnRecorded = Arc::new(move |why| {
            let found = probe.get_run(&probed).unwrap().is_some();
            seen.send((why, found)).unwrap();
        });
        StartRecord::spawn(store, record(&id), Some(told)).wait();
        let (why, found) = rx.recv().unwrap();
        assert_eq!(why, None);
        assert!(found, "told before the record was readable");

        let broken = dir.path().join("broken.redb");
        std::fs::create_dir(&broken).unwrap();
        let store = ResourceStore::new(broken, StoreOptions::default());
        let told: crate::run::OnRecorded = Arc::new(move |why| tx.send((why, false)).unwrap());
        StartRecord::spawn(store, record(&new_run_id()), Some(told)).wait();
        let (why, _) = rx.recv().unwrap();
        assert!(
            why.is_some_and(|w| w.starts_with("cannot record the run's start")),
            "the error is told"
        );
    }

    #[test]
    fn a_start_record_that_cannot_be_written_is_reported_to_every_waiter() {
        let dir = tempfile::tempdir().unwrap();
        // A directory where the store file should be: no open can succeed.
        let path = dir.path().join("data.redb");
        std::fs::create_dir(&path).unwrap();
        let store = ResourceStore::new(path, StoreOptions::default());
        let started = StartRecord::spawn(store, record(&new_run_id()), None);
        let first = started.wait().expect("an error");
        assert!(
            first.starts_with("cannot record the run's start"),
            "{first}"
        );
        assert_eq!(started.wait(), Some(first));
    }
}
