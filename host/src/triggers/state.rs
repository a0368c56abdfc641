//! What the scheduler remembers between processes: per trigger, the last fire, the last run
//! and how it ended, and the fires skipped because the previous run was still going. Kept in
//! `.orch/schedules.json`, replaced atomically (temp file + rename), so a crash leaves the old
//! state or the new one, never half of either.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::store::RunOwner;

/// The state file, under `.orch/`.
pub const STATE_FILE: &str = "schedules.json";

/// The whole file.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ScheduleState {
    /// By trigger key (`<workflow>/triggers[<i>]`).
    #[serde(default)]
    pub triggers: BTreeMap<String, TriggerState>,
}

/// One schedule's memory.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TriggerState {
    /// The last scheduled time handled (fired, skipped or reported missed), RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_fire: Option<String>,
    /// When the last run started (its scheduled time), RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run: Option<String>,
    /// The last run's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run_id: Option<String>,
    /// The last run's status (`running` until it ends), or why it could not start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_status: Option<String>,
    /// Fires skipped because the previous run was still going.
    #[serde(default)]
    pub skipped: u64,
    /// The last skipped fire, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_skipped: Option<String>,
    /// Scheduled times that passed while nothing was running the schedule.
    #[serde(default)]
    pub missed: u64,
    /// A run of this trigger that has started and not yet ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_flight: Option<InFlight>,
}

/// A run in flight, written before it starts so another process sees it at once.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InFlight {
    /// The process running it.
    pub owner: RunOwner,
    /// Its id, once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
}

impl ScheduleState {
    /// Reads the file; a missing one is an empty state.
    pub fn load(path: &Path) -> Result<ScheduleState, String> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                format!(
                    "{}: cannot read the schedule state ({e}); delete the file to start afresh \
                     (schedules then fire from the next scheduled time)",
                    path.display()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ScheduleState::default()),
            Err(e) => Err(format!("{}: cannot read: {e}", path.display())),
        }
    }

    /// Replaces the file atomically.
    pub fn save(&self, path: &Path) -> Result<(), String> {
        let fail = |e: std::io::Error| format!("{}: cannot write: {e}", path.display());
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(fail)?;
        }
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| e.to_string())?;
        let tmp = path.with_extension(format!("json.tmp{}", std::process::id()));
        let mut file = std::fs::File::create(&tmp).map_err(fail)?;
        file.write_all(&bytes).map_err(fail)?;
        file.sync_all().map_err(fail)?;
        drop(file);
        std::fs::rename(&tmp, path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            fail(e)
        })
    }
}

/// An exclusive lock on the state, held while it is read, changed and written back: a
/// `flock` on `<state file>.lock`, released when dropped (or when the process dies).
pub(crate) struct FileLock(Option<std::fs::File>);

impl FileLock {
    /// Waits for the lock of `state_file`; without one (a file system that refuses locks) the
    /// change goes on unlocked rather than not at all.
    pub fn acquire(state_file: &Path) -> FileLock {
        use std::os::fd::AsRawFd;
        let path = state_file.with_extension("lock");
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path);
        match file {
            Ok(file) => {
                // SAFETY: flock on a descriptor this function owns; no memory is involved.
                let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0;
                if !locked {
                    tracing::warn!(path = %path.display(), "cannot lock the schedule state");
                }
                FileLock(Some(file))
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot lock the schedule state");
                FileLock(None)
            }
        }
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        use std::os::fd::AsRawFd;
        if let Some(file) = &self.0 {
            // SAFETY: as above; closing the file would release it too.
            unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_UN) };
        }
    }
}
