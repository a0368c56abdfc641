//! Versioned, immutable resources and run records in one redb file (`.orch/data.redb`), or in
//! PostgreSQL when orch.yaml says `datastore: { postgres: … }`.
//!
//! [`ResourceStore`] is the one interface; every public method delegates to the PostgreSQL
//! backend (`postgres.rs`, which keeps the same guarantees listed below, see there) when the
//! store was made with [`ResourceStore::postgres`], and otherwise works on the redb file.
//!
//! This is the only module that touches the database file. How it is held:
//!
//! - **One open per process.** The first operation on a path opens the file and every store on
//!   that path in the process shares the handle until the last store is dropped. An open is
//!   the expensive part (the header is written and synced, the allocator state loaded, and in
//!   the exclusive mode the close writes that state back with two more syncs), so opening per
//!   operation made a run's cost grow with the number of operations and the size of the file
//!   A process that has only read so far uses a read-only handle (no header sync, no allocator
//!   state), so `orch runs list` and friends stay cheap; its first write opens the writable one
//!   (measured: 8 opens and 25 fdatasync per 10-VM sync before, 2 and 14 after; a debug build's
//!   redb also walks every page of the file on each writable open, ~7,800 page reads per open
//!   after fifty 1,000-VM syncs, which is now paid once per process).
//! - **Two processes both succeed.** The file is opened in redb's `ConcurrencyMode::MultiWriter`:
//!   any number of `orch` processes keep it open at once, reads never wait, and one write
//!   transaction runs at a time across them (a byte-range lock). A write that finds another
//!   process's transaction running retries with a short backoff up to
//!   [`StoreOptions::lock_wait`] and then fails with [`StoreError::Busy`]; so does an open that
//!   finds the whole file locked by an `orch` from before this mode.
//! - **All or nothing, and durable.** Each method's writes are one transaction; every commit is
//!   `Durability::Immediate` with two-phase commit and quick repair (the only kind the
//!   multi-writer mode allows), so a commit that returned survives `kill -9` and a killed
//!   writer leaves the last commit intact for the next transaction, which reloads the
//!   allocator state the commit recorded. Intermediate run records are not made non-durable:
//!   redb keeps such commits in one process's memory, which other processes cannot see.
//! - **Layout.** The `meta` table records the layout version; an open of an older file
//!   upgrades it in place in one transaction (layout 2 added the run summaries, layout 3 the
//!   last-seen table and the commit-time index of versions that `orch data changes` reads).

mod access;
mod changes;
mod copy;
mod diff;
mod error;
mod gc;
mod postgres;
mod resources;
mod runs;
mod types;

pub use self::access::{DEFAULT_LOCK_WAIT, ResourceStore, StoreOptions};
pub use self::copy::{CopyCount, ResourceHistory};
pub use self::diff::{FieldDiff, SENSITIVE, diff_attributes, mask_sensitive};
pub use self::error::StoreError;
pub use self::gc::{DeletedVersion, KeepRule};
pub use self::postgres::{SCHEMA_VERSION, mask_url};
pub use self::types::{
    ChangeKind, ChangeWindow, Decision, LastSeen, PendingWrite, Provenance, QueueClaim,
    RecordedOutcome, ResourceChange, ResourceKey, ResourceSummary, ResourceVersion, RunOwner,
    RunRecord, RunStatus, RunSummary, StepRecord, Tags, WaitingStep, new_run_id, now_rfc3339,
    rfc3339,
};

/// For tests that kill a process mid-write: the child side is an ignored test of the same binary.
#[cfg(test)]
pub(crate) mod kill_test {
    use std::io::{BufRead, BufReader, Lines};
    use std::process::{Child, ChildStdout, Command, Stdio};

    /// Runs this test binary's ignored test `name` in a child process with `key` set to `value`;
    /// returns the child and the lines of its stdout.
    pub fn spawn_child(
        name: &str,
        key: &str,
        value: &std::path::Path,
    ) -> (Child, Lines<BufReader<ChildStdout>>) {
        let exe = std::env::current_exe().expect("test binary");
        let mut child = Command::new(exe)
            .args([
                "--exact",
                name,
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(key, value)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the child");
        let stdout = child.stdout.take().expect("child stdout");
        (child, BufReader::new(stdout).lines())
    }

    /// Kills the child with SIGKILL and reaps it.
    pub fn kill_9(mut child: Child) {
        // SAFETY: kill(2) on the child this test spawned; no memory is involved.
        assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGKILL) }, 0);
        child.wait().expect("reap the child");
    }
}
