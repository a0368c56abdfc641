use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use time::macros::format_description;

/// A worker's hold on a queued step (PostgreSQL datastore): a commit made under it goes
/// through only while the step is still this worker's, in the same transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueClaim {
    /// The step's row in the queue.
    pub id: i64,
    /// The worker that took it.
    pub worker: String,
}

/// Who wrote a resource version: the run, step and method, and when.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Provenance {
    /// The run that wrote the version (a uuid v7 string).
    pub run_id: String,
    /// The workflow step, or the method name for a single method run.
    pub step: String,
    /// The model method that produced the attributes.
    pub method: String,
    /// When the write was committed, RFC 3339 in UTC.
    pub time: String,
}

/// One resource write a method asks for, before it has a version.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PendingWrite {
    /// The resource spec, e.g. `vm`.
    pub spec: String,
    /// The instance name within the spec.
    pub name: String,
    /// The resource document.
    pub attributes: Value,
    /// A tombstone: the plugin saw this resource gone (`data.retire-resource`); attributes are null.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retired: bool,
    /// Set to the stored version a write matched except for the spec's volatile attributes: no
    /// version is stored, the commit only records that the resource was seen (attributes are null).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unchanged: Option<u64>,
}

impl PendingWrite {
    /// A write of `attributes` to `spec`/`name`.
    pub fn new(spec: impl Into<String>, name: impl Into<String>, attributes: Value) -> Self {
        Self {
            spec: spec.into(),
            name: name.into(),
            attributes,
            retired: false,
            unchanged: None,
        }
    }

    /// A tombstone for `spec`/`name`.
    pub fn retire(spec: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            retired: true,
            ..Self::new(spec, name, Value::Null)
        }
    }

    /// A sighting of `spec`/`name` whose stored `version` still stands.
    pub fn seen(spec: impl Into<String>, name: impl Into<String>, version: u64) -> Self {
        Self {
            unchanged: Some(version),
            ..Self::new(spec, name, Value::Null)
        }
    }
}

/// When a resource was last seen by a write (one that stored a version, or one that changed
/// only volatile attributes and stored none). A tombstone does not count as a sighting.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct LastSeen {
    /// The run whose write saw it.
    pub run_id: String,
    /// The step (or method, for a method run) of that write.
    pub step: String,
    /// When that write was committed, RFC 3339 in UTC.
    pub time: String,
    /// The version that stood after the write.
    pub version: u64,
}

/// What one stored version did to its resource, for `orch data changes`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    /// The first version, or the first live one after a tombstone.
    Appeared,
    /// A live version after a live one.
    Changed,
    /// A tombstone.
    Retired,
}

impl ChangeKind {
    /// The lowercase name used in `--json` output.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Appeared => "appeared",
            ChangeKind::Changed => "changed",
            ChangeKind::Retired => "retired",
        }
    }
}

/// One version written in a window, with the attributes of the version before it.
#[derive(Clone, Debug, PartialEq)]
pub struct ResourceChange {
    /// The version.
    pub version: ResourceVersion,
    /// What it did.
    pub kind: ChangeKind,
    /// The attributes of the version before it, for a change.
    pub previous: Option<Value>,
}

/// Which versions `orch data changes` looks at: those committed at or after `since` (RFC 3339,
/// UTC, millisecond width), and, when `after_run` is set, only those written by runs started
/// after that run (run ids are uuid v7, so they sort by start).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ChangeWindow {
    /// The earliest commit time, as stored (`2026-11-30T09:15:02.041Z`); empty for all history.
    pub since: String,
    /// Leave out the writes of this run and of runs started before it.
    pub after_run: Option<String>,
    /// Only this model's resources.
    pub model: Option<String>,
}

/// One stored, immutable version of a resource.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ResourceVersion {
    /// The model that owns the resource.
    pub model: String,
    /// The resource spec.
    pub spec: String,
    /// The instance name.
    pub name: String,
    /// 1 for the first write, then one more per write.
    pub version: u64,
    /// The resource document.
    pub attributes: Value,
    /// Who wrote this version.
    pub provenance: Provenance,
    /// A tombstone: the resource was retired by this version's writer.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retired: bool,
    /// The tags of the definition, workflow and command line that wrote it (versions written
    /// before tags existed have none).
    #[serde(default, skip_serializing_if = "Tags::is_empty")]
    pub tags: Tags,
}

/// Tags on a resource version: key → value.
pub type Tags = std::collections::BTreeMap<String, String>;

/// Identifies a resource and its newest version.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ResourceKey {
    /// The model that owns the resource.
    pub model: String,
    /// The resource spec.
    pub spec: String,
    /// The instance name.
    pub name: String,
    /// The newest version number.
    pub latest: u64,
}

/// One line of `orch data list`: a resource, its newest version, when that was written and
/// whether it retired the resource.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ResourceSummary {
    /// The model that owns the resource.
    pub model: String,
    /// The resource spec.
    pub spec: String,
    /// The instance name.
    pub name: String,
    /// The newest version number.
    pub latest: u64,
    /// When the newest version was written, RFC 3339 in UTC.
    pub written_at: String,
    /// Whether the newest version is a tombstone (`data.retire-resource`).
    #[serde(default)]
    pub retired: bool,
    /// The newest version's tags.
    #[serde(default, skip_serializing_if = "Tags::is_empty")]
    pub tags: Tags,
}

/// The record of one workflow or method run.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RunRecord {
    /// A uuid v7 string, so ids sort by start time.
    pub id: String,
    /// `workflow` or `method`.
    pub kind: String,
    /// The workflow name, or `model.method` for a method run.
    pub target: String,
    /// Where the run stands.
    pub status: RunStatus,
    /// RFC 3339 start time in UTC.
    pub started_at: String,
    /// RFC 3339 end time in UTC, once finished.
    pub finished_at: Option<String>,
    /// Wall time in milliseconds, once finished.
    pub duration_ms: Option<u64>,
    /// The run's inputs, secrets already redacted.
    pub inputs: Value,
    /// One record per step.
    pub steps: Vec<StepRecord>,
    /// The run's event stream, secrets already redacted.
    pub events: Vec<Value>,
    /// Why the run failed, if it did.
    pub error: Option<String>,
    /// The process that ran it, so a later command can tell a live run from one whose process died.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<RunOwner>,
    /// How each top-level step of a workflow run ended, by workflow step name: what a resumed
    /// or approved run takes instead of running those steps again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outcomes: Vec<RecordedOutcome>,
    /// The `manual_approval` steps a `waiting` run waits on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waiting: Vec<WaitingStep>,
    /// The run this one resumed (`orch runs resume <id> --from <step>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resumed_from: Option<String>,
}

/// How one top-level workflow step ended, as the scheduler saw it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RecordedOutcome {
    /// The job's name.
    pub job: String,
    /// The step's name as written in the workflow (before any forEach expansion).
    pub step: String,
    /// `succeeded`, `failed`, `skipped`, `waiting` or `cancelled`.
    pub status: String,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A `manual_approval` step waiting for `orch runs approve` or `orch runs reject`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct WaitingStep {
    /// The job's name.
    pub job: String,
    /// The step's name.
    pub step: String,
    /// What the approver is asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When the step started waiting, RFC 3339 in UTC.
    pub since: String,
}

/// The decision on a `manual_approval` step.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    /// Approved (the step succeeds) or rejected (it fails).
    pub approved: bool,
    /// Who decided (`$USER`).
    pub by: String,
    /// When, RFC 3339 in UTC.
    pub at: String,
    /// The decider's comment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// What `orch runs list` shows of a run: stored beside the record, so listing does not decode
/// steps and events.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RunSummary {
    /// The run id (uuid v7).
    pub id: String,
    /// `workflow` or `method`.
    pub kind: String,
    /// The workflow name, or `model.method`.
    pub target: String,
    /// Where the run stands.
    pub status: RunStatus,
    /// RFC 3339 start time in UTC.
    pub started_at: String,
    /// RFC 3339 end time in UTC, once finished.
    pub finished_at: Option<String>,
    /// Wall time in milliseconds, once finished.
    pub duration_ms: Option<u64>,
    /// How many steps the record holds.
    pub steps: u64,
    /// How many of them failed.
    pub failed_steps: u64,
    /// The process that ran it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<RunOwner>,
    /// The steps a `waiting` run waits on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waiting: Vec<WaitingStep>,
}

impl RunSummary {
    /// The summary of a full record.
    pub fn of(run: &RunRecord) -> Self {
        Self {
            id: run.id.clone(),
            kind: run.kind.clone(),
            target: run.target.clone(),
            status: run.status,
            started_at: run.started_at.clone(),
            finished_at: run.finished_at.clone(),
            duration_ms: run.duration_ms,
            steps: run.steps.len() as u64,
            failed_steps: run.steps.iter().filter(|s| s.status == "failed").count() as u64,
            owner: run.owner.clone(),
            waiting: run.waiting.clone(),
        }
    }
}

/// The process running a run: enough to tell later whether it is still alive.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RunOwner {
    /// The process id.
    pub pid: u32,
    /// The machine's host name; a process on another host cannot be checked from here.
    pub host: String,
    /// The process's start time in clock ticks after boot (`/proc/<pid>/stat` field 22), which
    /// tells a reused pid from the original process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_ticks: Option<u64>,
    /// The kernel's boot id: after a reboot no process of the old boot is alive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
}

/// Where a run stands.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Started and not yet finished (or the process died before recording the end).
    Running,
    /// Finished without error.
    Succeeded,
    /// Finished with an error.
    Failed,
    /// Its process ended (killed, crashed, machine rebooted) before it recorded an end.
    Abandoned,
    /// Suspended at `manual_approval` steps: holds no process or lock, goes on when decided.
    Waiting,
    /// Cancelled (`orch runs cancel`, Ctrl-C, SIGTERM) before it finished.
    Cancelled,
}

impl RunStatus {
    /// The lowercase name used in `--json` output and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Abandoned => "abandoned",
            RunStatus::Waiting => "waiting",
            RunStatus::Cancelled => "cancelled",
        }
    }
}

/// The record of one step within a run.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct StepRecord {
    /// The job the step belongs to.
    pub job: String,
    /// The step name.
    pub name: String,
    /// The model the step called, for method steps.
    pub model: Option<String>,
    /// The method the step called, for method steps.
    pub method: Option<String>,
    /// `succeeded`, `failed`, `skipped`, and so on.
    pub status: String,
    /// RFC 3339 start time in UTC, if the step started.
    pub started_at: Option<String>,
    /// Wall time in milliseconds, if the step finished.
    pub duration_ms: Option<u64>,
    /// Why the step failed, if it did.
    pub error: Option<String>,
    /// Resources the step wrote, as `spec/name@vN`.
    pub resources: Vec<String>,
    /// A `warn` assert that did not hold: what it claimed (the step still succeeded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
    /// An assert's message (set on assert steps, held or not), for reports such as JUnit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assertion: Option<String>,
    /// What a `manual_approval` step asks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The decision on a `manual_approval` step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<Decision>,
    /// The `orch worker` that ran the step's method call (steps with `runsOn`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    /// `unknown`: the worker was lost mid-call and the method may or may not have taken effect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
}

/// The current time as RFC 3339 in UTC with millisecond precision, e.g. `2025-01-31T09:15:02.041Z`.
pub fn now_rfc3339() -> String {
    rfc3339(OffsetDateTime::now_utc())
}

/// `at` in UTC as the store writes times: RFC 3339 with milliseconds, fixed width, so stored
/// times sort as text and a bound made here compares with them.
pub fn rfc3339(at: OffsetDateTime) -> String {
    let format =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    let at = at.to_offset(time::UtcOffset::UTC);
    at.format(format)
        .unwrap_or_else(|_| at.unix_timestamp().to_string())
}

/// A new run id: a uuid v7 string, which sorts by creation time.
pub fn new_run_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn now_is_rfc3339_utc_with_milliseconds() {
        let now = now_rfc3339();
        assert_eq!(now.len(), "2025-01-31T09:15:02.041Z".len(), "{now}");
        assert!(now.ends_with('Z'));
        assert_eq!(&now[10..11], "T");
    }

    #[test]
    fn run_ids_sort_by_creation_time() {
        let ids: Vec<String> = (0..50).map(|_| new_run_id()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
    }

    #[test]
    fn run_status_is_stored_in_lowercase() {
        for status in [
            RunStatus::Running,
            RunStatus::Succeeded,
            RunStatus::Failed,
            RunStatus::Abandoned,
            RunStatus::Waiting,
            RunStatus::Cancelled,
        ] {
            let json = serde_json::to_string(&status).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", status.as_str()));
        }
    }

    #[test]
    fn a_record_written_before_owners_were_recorded_still_reads() {
        let old = r#"{"id":"x","kind":"workflow","target":"t","status":"running",
            "startedAt":"2025-01-01T00:00:00.000Z","finishedAt":null,"durationMs":null,
            "inputs":{},"steps":[],"events":[],"error":null}"#;
        let record: RunRecord = serde_json::from_str(old).expect("old record");
        assert_eq!(record.owner, None);
    }
}
