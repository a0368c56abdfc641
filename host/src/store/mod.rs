//! Versioned, immutable resources and run records in one redb file (`.orch/data.redb`).
//!
//! This is the only module that touches the database file. redb holds an exclusive OS lock on
//! the file for as long as a `Database` is open, and two `orch` processes on one repository must
//! both succeed, so no handle is kept: every public operation opens the file, runs one short
//! transaction and closes it again. An open that finds the file held by another process retries
//! with a short backoff up to [`StoreOptions::lock_wait`] and then fails with
//! [`StoreError::Busy`].

mod access;
mod error;
mod resources;
mod runs;
mod types;

pub use self::access::{DEFAULT_LOCK_WAIT, ResourceStore, StoreOptions};
pub use self::error::StoreError;
pub use self::types::{
    PendingWrite, Provenance, ResourceKey, ResourceSummary, ResourceVersion, RunOwner, RunRecord,
    RunStatus, StepRecord, new_run_id, now_rfc3339,
};
