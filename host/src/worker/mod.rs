//! Workers: `orch worker` processes that take method calls from a queue in the PostgreSQL
//! datastore, and the coordinator side that queues the steps with `runsOn`.

pub mod coordinator;
pub mod process;
pub mod queue;

pub use coordinator::{QueueSlot, RemoteOutcome, run_remote};
pub use process::{WorkerOptions, default_name};
