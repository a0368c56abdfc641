//! Cancelling runs. Each run holds its own [`CancelToken`], so cancelling one run leaves the
//! others of the process (and later ones) alone. The first SIGINT or SIGTERM (Ctrl-C, `orch
//! runs cancel`) cancels every run in flight; a second one ends the process at once.

use std::sync::{Arc, LazyLock, Mutex, Weak};
use tokio::sync::watch;

/// The exit code of a process whose run was cancelled (128 + SIGINT, as shells report Ctrl-C).
pub const CANCELLED_EXIT_CODE: i32 = 130;

/// The tokens of the runs in flight, so a signal reaches each of them. Weak: a token that no
/// run holds any more is skipped and pruned.
#[derive(Default)]
struct InFlight(Mutex<Vec<Weak<watch::Sender<bool>>>>);

impl InFlight {
    /// A new token, registered here.
    fn token(&self) -> CancelToken {
        let sender = Arc::new(watch::channel(false).0);
        let mut in_flight = self.0.lock().unwrap_or_else(|p| p.into_inner());
        in_flight.retain(|w| w.strong_count() > 0);
        in_flight.push(Arc::downgrade(&sender));
        CancelToken(sender)
    }

    /// Cancels every token registered here that a run still holds.
    fn cancel_all(&self) {
        let live: Vec<_> = {
            let mut in_flight = self.0.lock().unwrap_or_else(|p| p.into_inner());
            in_flight.retain(|w| w.strong_count() > 0);
            in_flight.iter().filter_map(Weak::upgrade).collect()
        };
        for sender in live {
            sender.send_replace(true);
        }
    }
}

/// The runs of this process in flight.
static IN_FLIGHT: LazyLock<InFlight> = LazyLock::new(InFlight::default);

/// Whether one run is cancelled: held by the run's state, cancelled by a signal (through
/// [`cancel_runs`]) or by whoever holds a clone.
#[derive(Clone, Debug)]
pub struct CancelToken(Arc<watch::Sender<bool>>);

impl CancelToken {
    /// A token for a new run, reached by [`cancel_runs`] for as long as a clone of it lives.
    pub fn new() -> CancelToken {
        IN_FLIGHT.token()
    }

    /// Cancels this run: steps in flight are dropped, no other step starts.
    pub fn cancel(&self) {
        self.0.send_replace(true);
    }

    /// Whether this run was cancelled.
    pub fn is_cancelled(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once this run is cancelled (at once if it already is).
    pub async fn cancelled(&self) {
        let mut rx = self.0.subscribe();
        let _ = rx.wait_for(|c| *c).await;
    }
}

impl Default for CancelToken {
    fn default() -> Self {
        CancelToken::new()
    }
}

/// Cancels every run of this process in flight; runs started later are not affected.
pub fn cancel_runs() {
    IN_FLIGHT.cancel_all();
}

/// Makes SIGINT and SIGTERM cancel this process's runs in flight; a second signal exits with
/// [`CANCELLED_EXIT_CODE`] without waiting. Needs a tokio runtime; installs the handler once
/// however often it is called.
pub fn cancel_on_signals() {
    #[cfg(unix)]
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    #[cfg(unix)]
    INSTALLED.call_once(|| {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            tracing::warn!("cannot listen for SIGINT/SIGTERM; Ctrl-C ends the run abruptly");
            return;
        };
        tokio::spawn(async move {
            let mut seen = 0;
            loop {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
                seen += 1;
                crate::output::progress::flush();
                if seen > 1 {
                    std::process::exit(CANCELLED_EXIT_CODE);
                }
                eprintln!("cancelling the run (a second Ctrl-C ends orch at once)");
                cancel_runs();
            }
        });
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancelling_one_run_leaves_a_later_run_of_the_process_alone() {
        let first = CancelToken::new();
        first.cancel();
        assert!(first.is_cancelled());
        let later = CancelToken::new();
        assert!(!later.is_cancelled(), "a later run starts uncancelled");
    }

    #[test]
    fn cancelling_one_run_leaves_another_in_flight_alone() {
        let one = CancelToken::new();
        let other = CancelToken::new();
        one.cancel();
        assert!(one.is_cancelled());
        assert!(!other.is_cancelled());
    }

    #[test]
    fn a_signal_cancels_every_run_in_flight_but_not_the_next_one() {
        // A registry of its own: the process's one would cancel other tests' runs.
        let in_flight = InFlight::default();
        let (a, b) = (in_flight.token(), in_flight.token());
        let a_clone = a.clone();
        in_flight.cancel_all();
        assert!(a.is_cancelled() && b.is_cancelled() && a_clone.is_cancelled());
        let next = in_flight.token();
        assert!(!next.is_cancelled(), "a run started after the signal runs");
    }

    #[test]
    fn a_finished_run_is_no_longer_held_in_flight() {
        let in_flight = InFlight::default();
        let token = in_flight.token();
        let weak = Arc::downgrade(&token.0);
        drop(token);
        assert!(
            weak.upgrade().is_none(),
            "the registry holds no strong reference"
        );
        in_flight.cancel_all();
        assert_eq!(in_flight.0.lock().unwrap().len(), 0, "pruned");
    }

    #[tokio::test]
    async fn cancelled_resolves_once_the_run_is_cancelled() {
        let token = CancelToken::new();
        let waiter = tokio::spawn({
            let token = token.clone();
            async move { token.cancelled().await }
        });
        token.cancel();
        waiter.await.expect("the waiter ended");
        // And at once when it already is.
        token.cancelled().await;
    }
}
