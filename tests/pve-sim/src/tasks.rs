//! PVE worker tasks: UPID strings and the deterministic running → stopped life of a task.

use std::fmt;

use crate::vm::{ConfigChange, Vm};

/// A parsed UPID: `UPID:{node}:{pid}:{pstart}:{starttime}:{type}:{id}:{user}:`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Upid {
    /// The node that runs the task.
    pub node: String,
    /// The worker's process id.
    pub pid: u32,
    /// The worker's start time in clock ticks since boot.
    pub pstart: u32,
    /// The task's start time, seconds since the Unix epoch.
    pub starttime: u32,
    /// The task type, such as `qmstart`.
    pub kind: String,
    /// The object the task works on, here the vmid.
    pub id: String,
    /// Who started the task: `root@pam` or a token id `root@pam!ci`.
    pub user: String,
}

impl Upid {
    /// Parses a UPID; `None` if it is not one (hex fields must be 8 digits, as PVE writes them).
    pub(crate) fn parse(text: &str) -> Option<Upid> {
        let rest = text.strip_prefix("UPID:")?;
        let fields: Vec<&str> = rest.split(':').collect();
        let [node, pid, pstart, starttime, kind, id, user, ""] = fields.as_slice() else {
            return None;
        };
        let hex = |field: &str| {
            (field.len() == 8)
                .then(|| u32::from_str_radix(field, 16).ok())
                .flatten()
        };
        if node.is_empty() || kind.is_empty() || user.is_empty() {
            return None;
        }
        Some(Upid {
            node: (*node).to_string(),
            pid: hex(pid)?,
            pstart: hex(pstart)?,
            starttime: hex(starttime)?,
            kind: (*kind).to_string(),
            id: (*id).to_string(),
            user: (*user).to_string(),
        })
    }
}

impl fmt::Display for Upid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "UPID:{}:{:08X}:{:08X}:{:08X}:{}:{}:{}:",
            self.node, self.pid, self.pstart, self.starttime, self.kind, self.id, self.user
        )
    }
}

/// The state change a task makes when it finishes.
#[derive(Debug)]
pub(crate) enum TaskAction {
    /// `qmstart`.
    Start,
    /// `qmstop`.
    Stop,
    /// `qmshutdown`.
    Shutdown,
    /// `qmreboot`.
    Reboot,
    /// `qmcreate`, optionally starting the new VM afterwards.
    Create {
        /// The VM to add.
        vm: Box<Vm>,
        /// Whether `start=1` was given.
        start: bool,
    },
    /// `qmdestroy`.
    Destroy,
    /// `qmconfig` (the asynchronous `POST …/config`).
    Configure(ConfigChange),
}

impl TaskAction {
    /// The PVE task type this action runs as.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            TaskAction::Start => "qmstart",
            TaskAction::Stop => "qmstop",
            TaskAction::Shutdown => "qmshutdown",
            TaskAction::Reboot => "qmreboot",
            TaskAction::Create { .. } => "qmcreate",
            TaskAction::Destroy => "qmdestroy",
            TaskAction::Configure(_) => "qmconfig",
        }
    }
}

/// One task: running until its first status poll has been answered, then stopped.
#[derive(Debug)]
pub(crate) struct Task {
    /// The task's identity.
    pub upid: Upid,
    /// The VM it works on.
    pub vmid: u32,
    /// The change still to make; `None` once made.
    pub action: Option<TaskAction>,
    /// How many times `…/status` was asked for.
    pub polls: u32,
    /// `OK` or the error text, once the task has stopped.
    pub exitstatus: Option<String>,
}

impl Task {
    /// The task log lines PVE would show at this point.
    pub(crate) fn log_lines(&self) -> Vec<String> {
        match &self.exitstatus {
            None => vec!["no content".to_string()],
            Some(status) if status == "OK" => vec!["TASK OK".to_string()],
            Some(error) => vec![error.clone(), format!("TASK ERROR: {error}")],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upid_round_trips_in_pve_format() {
        let upid = Upid {
            node: "keeb-dev-02".to_string(),
            pid: 0xABCD,
            pstart: 0x1F00D,
            starttime: 0x6819_A3C2,
            kind: "qmstart".to_string(),
            id: "108".to_string(),
            user: "root@pam".to_string(),
        };
        let text = upid.to_string();
        assert_eq!(
            text,
            "UPID:keeb-dev-02:0000ABCD:0001F00D:6819A3C2:qmstart:108:root@pam:"
        );
        assert_eq!(Upid::parse(&text), Some(upid));
    }

    #[test]
    fn malformed_upids_are_rejected() {
        for text in [
            "",
            "UPID:",
            "UPID:keeb-dev-02:ABCD:0001F00D:6819A3C2:qmstart:108:root@pam:",
            "UPID:keeb-dev-02:0000ABCD:0001F00D:6819A3C2:qmstart:108:root@pam",
            "UPID:keeb-dev-02:0000ABCD:0001F00D:6819A3C2:qmstart:108:root@pam:extra:",
            "PID:keeb-dev-02:0000ABCD:0001F00D:6819A3C2:qmstart:108:root@pam:",
        ] {
            assert_eq!(Upid::parse(text), None, "{text}");
        }
    }
}
