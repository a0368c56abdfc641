//! Proxmox tasks: UPID strings and `…/tasks/{upid}/status` answers.

use orch_plugin_sdk::{Result, Value, error};
use std::time::Duration;

/// Most status polls for one task; the host's call timeout is the wall-clock bound.
pub const MAX_POLLS: u32 = 600;

/// A parsed task id: `UPID:node:pid:pstart:starttime:type:id:user:`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upid {
    /// The whole string, sent back verbatim when polling.
    pub raw: String,
    /// The node running the task.
    pub node: String,
    /// The task type, e.g. `qmstart`.
    pub task_type: String,
    /// The object the task works on, e.g. the vmid.
    pub id: String,
    /// Who started it.
    pub user: String,
}

impl Upid {
    /// A short label for messages: `qmstart 108`.
    pub fn label(&self) -> String {
        if self.id.is_empty() {
            self.task_type.clone()
        } else {
            format!("{} {}", self.task_type, self.id)
        }
    }
}

/// Parses a UPID, refusing anything that does not look like one.
pub fn parse_upid(text: &str) -> Result<Upid> {
    let parts: Vec<&str> = text.split(':').collect();
    // PVE always ends a UPID with `:`, so there are at least 9 parts; accept 8 to tolerate a
    // missing trailing colon.
    if parts.len() < 8 || parts[0] != "UPID" || parts[1].is_empty() {
        return Err(error::failed(format!(
            "Proxmox answered {text:?} where a task id (UPID:node:…) was expected"
        )));
    }
    Ok(Upid {
        raw: text.to_string(),
        node: parts[1].to_string(),
        task_type: parts[5].to_string(),
        id: parts[6].to_string(),
        user: parts[7].to_string(),
    })
}

/// The task a write started, if its answer's `data` names one (`null` means it ran inline).
pub fn started_task(data: &Value) -> Result<Option<Upid>> {
    match data {
        Value::Null => Ok(None),
        Value::String(s) => parse_upid(s).map(Some),
        other => Err(error::failed(format!(
            "Proxmox answered {other} where a task id (UPID:node:…) was expected"
        ))),
    }
}

/// Where a task stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TaskState {
    /// Still running; poll again.
    Running,
    /// Finished with `OK`, or with `WARNINGS: n` (PVE counts that as success).
    Succeeded {
        /// The warning summary, if any.
        warnings: Option<String>,
    },
    /// Finished with any other exit status, which is PVE's error text.
    Failed(String),
}

/// Reads the `data` of `GET /nodes/{node}/tasks/{upid}/status`.
pub fn task_state(data: &Value) -> Result<TaskState> {
    let status = data.get("status").and_then(Value::as_str).ok_or_else(|| {
        error::failed(format!(
            "task status answer has no `status` field: {}",
            short(data)
        ))
    })?;
    match status {
        "running" => Ok(TaskState::Running),
        "stopped" => {
            let exit = data
                .get("exitstatus")
                .and_then(Value::as_str)
                .map(str::trim)
                .unwrap_or("");
            Ok(match exit {
                "OK" => TaskState::Succeeded { warnings: None },
                w if w.starts_with("WARNINGS") => TaskState::Succeeded {
                    warnings: Some(w.to_string()),
                },
                "" => TaskState::Failed("the task stopped without an exit status".into()),
                other => TaskState::Failed(other.to_string()),
            })
        }
        other => Err(error::failed(format!(
            "task status {other:?} is neither \"running\" nor \"stopped\""
        ))),
    }
}

/// How long to sleep before poll number `poll` (0-based): the first two polls go out at once
/// (most tasks finish in milliseconds), then 50 ms growing to 250 ms so a long task costs few
/// requests without ever blocking for long.
pub fn poll_delay(poll: u32) -> Option<Duration> {
    if poll < 2 {
        return None;
    }
    let ms = (u64::from(poll - 1) * 50).min(250);
    Some(Duration::from_millis(ms))
}

fn short(value: &Value) -> String {
    let mut text = value.to_string();
    if text.len() > 200 {
        let cut = (0..=200)
            .rev()
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(0);
        text.truncate(cut);
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use orch_plugin_sdk::{Error, json};

    #[test]
    fn upid_fields_are_read() {
        let upid = parse_upid("UPID:keeb-dev-02:000A1B2C:0012D687:6819A3C2:qmstart:108:root@pam:")
            .expect("valid");
        assert_eq!(upid.node, "keeb-dev-02");
        assert_eq!(upid.task_type, "qmstart");
        assert_eq!(upid.id, "108");
        assert_eq!(upid.user, "root@pam");
        assert_eq!(upid.label(), "qmstart 108");
    }

    #[test]
    fn upid_of_a_token_user_keeps_the_token_id() {
        let upid = parse_upid("UPID:pve:1:2:3:qmcreate:110:root@pam!orch:").expect("valid");
        assert_eq!(upid.user, "root@pam!orch");
    }

    #[test]
    fn things_that_are_not_upids_are_typed_errors() {
        for bad in [
            "",
            "OK",
            "UPID:",
            "UPID::1:2:3:qmstart:108:root@pam:",
            "TASK:a:b:c:d:e:f:g:",
        ] {
            assert!(matches!(parse_upid(bad), Err(Error::Failed(_))), "{bad:?}");
        }
    }

    #[test]
    fn write_answer_without_task_runs_inline() {
        assert_eq!(started_task(&Value::Null).expect("null ok"), None);
        assert!(
            started_task(&json!("UPID:n:1:2:3:qmstop:101:root@pam:"))
                .expect("upid")
                .is_some()
        );
        assert!(matches!(started_task(&json!(42)), Err(Error::Failed(_))));
    }

    #[test]
    fn task_states() {
        assert_eq!(
            task_state(&json!({"status": "running", "upid": "x"})).unwrap(),
            TaskState::Running
        );
        assert_eq!(
            task_state(&json!({"status": "stopped", "exitstatus": "OK"})).unwrap(),
            TaskState::Succeeded { warnings: None }
        );
        assert_eq!(
            task_state(&json!({"status": "stopped", "exitstatus": "WARNINGS: 2"})).unwrap(),
            TaskState::Succeeded {
                warnings: Some("WARNINGS: 2".into())
            }
        );
        assert_eq!(
            task_state(&json!({"status": "stopped", "exitstatus": "VM 108 already running"}))
                .unwrap(),
            TaskState::Failed("VM 108 already running".into())
        );
        assert!(matches!(
            task_state(&json!({"status": "stopped"})).unwrap(),
            TaskState::Failed(_)
        ));
    }

    #[test]
    fn malformed_task_status_is_a_typed_error() {
        assert!(matches!(task_state(&json!({})), Err(Error::Failed(_))));
        assert!(matches!(task_state(&json!(null)), Err(Error::Failed(_))));
        assert!(matches!(
            task_state(&json!({"status": "paused"})),
            Err(Error::Failed(_))
        ));
    }

    #[test]
    fn polling_starts_fast_and_stays_bounded() {
        assert_eq!(poll_delay(0), None);
        assert_eq!(poll_delay(1), None);
        assert_eq!(poll_delay(2), Some(Duration::from_millis(50)));
        assert_eq!(poll_delay(3), Some(Duration::from_millis(100)));
        assert_eq!(poll_delay(100), Some(Duration::from_millis(250)));
        let total: Duration = (0..MAX_POLLS).filter_map(poll_delay).sum();
        // Longer than the manifest's 120 s call timeout, so the host, not the plugin, gives up on
        // a task that really is slow; short enough that the loop can never spin forever.
        assert!(total > Duration::from_secs(120) && total < Duration::from_secs(200));
    }
}
