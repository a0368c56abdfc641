//! Cancelling the runs of this process: the first SIGINT or SIGTERM (Ctrl-C, `orch runs
//! cancel`) cancels them, a second one ends the process at once.

use std::sync::LazyLock;
use tokio::sync::watch;

/// The exit code of a process whose run was cancelled (128 + SIGINT, as shells report Ctrl-C).
pub const CANCELLED_EXIT_CODE: i32 = 130;

static CANCEL: LazyLock<watch::Sender<bool>> = LazyLock::new(|| watch::channel(false).0);

/// Cancels every run of this process: steps in flight are dropped, no other step starts.
pub fn cancel_runs() {
    CANCEL.send_replace(true);
}

/// Whether this process's runs were cancelled.
pub fn is_cancelled() -> bool {
    *CANCEL.borrow()
}

/// Resolves once this process's runs are cancelled (at once if they already are).
pub async fn cancelled() {
    let mut rx = CANCEL.subscribe();
    let _ = rx.wait_for(|c| *c).await;
}

/// Makes SIGINT and SIGTERM cancel this process's runs; a second signal exits with
/// [`CANCELLED_EXIT_CODE`] without waiting. Needs a tokio runtime.
pub fn cancel_on_signals() {
    #[cfg(unix)]
    {
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
                if seen > 1 {
                    std::process::exit(CANCELLED_EXIT_CODE);
                }
                eprintln!("cancelling the run (a second Ctrl-C ends orch at once)");
                cancel_runs();
            }
        });
    }
}
