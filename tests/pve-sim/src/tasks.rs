//! PVE worker tasks: UPID strings and the deterministic running → stopped life of a task.

use std::collections::HashMap;
use std::fmt;

use crate::guest::{ConfigChange, Guest, GuestKind};

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
        vm: Box<Guest>,
        /// Whether `start=1` was given.
        start: bool,
    },
    /// `qmdestroy`.
    Destroy,
    /// `qmconfig` (the asynchronous `POST …/config`).
    Configure(ConfigChange),
    /// `qmtemplate`: the VM becomes a template.
    Template,
    /// `qmclone`/`vzclone`: the copy appears (the task's vmid is the source's).
    Clone(Box<Guest>),
    /// `qmsnapshot`/`vzsnapshot`.
    Snapshot {
        /// `snapname`.
        name: String,
        /// `description`.
        description: String,
        /// `vmstate` (qemu).
        vmstate: bool,
    },
    /// `qmdelsnapshot`/`vzdelsnapshot`.
    DeleteSnapshot(String),
}

impl TaskAction {
    /// The PVE task type this action runs as on a guest of `guest` kind.
    pub(crate) fn kind(&self, guest: GuestKind) -> &'static str {
        match (guest, self) {
            (GuestKind::Qemu, TaskAction::Start) => "qmstart",
            (GuestKind::Qemu, TaskAction::Stop) => "qmstop",
            (GuestKind::Qemu, TaskAction::Shutdown) => "qmshutdown",
            (GuestKind::Qemu, TaskAction::Reboot) => "qmreboot",
            (GuestKind::Qemu, TaskAction::Create { .. }) => "qmcreate",
            (GuestKind::Qemu, TaskAction::Destroy) => "qmdestroy",
            (GuestKind::Qemu, TaskAction::Configure(_)) => "qmconfig",
            (GuestKind::Qemu, TaskAction::Template) => "qmtemplate",
            (GuestKind::Qemu, TaskAction::Clone(_)) => "qmclone",
            (GuestKind::Qemu, TaskAction::Snapshot { .. }) => "qmsnapshot",
            (GuestKind::Qemu, TaskAction::DeleteSnapshot(_)) => "qmdelsnapshot",
            (GuestKind::Lxc, TaskAction::Template) => "vztemplate",
            (GuestKind::Lxc, TaskAction::Clone(_)) => "vzclone",
            (GuestKind::Lxc, TaskAction::Snapshot { .. }) => "vzsnapshot",
            (GuestKind::Lxc, TaskAction::DeleteSnapshot(_)) => "vzdelsnapshot",
            (GuestKind::Lxc, TaskAction::Start) => "vzstart",
            (GuestKind::Lxc, TaskAction::Stop) => "vzstop",
            (GuestKind::Lxc, TaskAction::Shutdown) => "vzshutdown",
            (GuestKind::Lxc, TaskAction::Reboot) => "vzreboot",
            (GuestKind::Lxc, TaskAction::Create { .. }) => "vzcreate",
            (GuestKind::Lxc, TaskAction::Destroy) => "vzdestroy",
            (GuestKind::Lxc, TaskAction::Configure(_)) => "vzconfig",
        }
    }
}

/// One task: running until its first status poll has been answered, then stopped.
#[derive(Debug)]
pub(crate) struct Task {
    /// The task's identity.
    pub upid: Upid,
    /// The guest it works on (0 for tasks on no guest).
    pub vmid: u32,
    /// The change still to make; `None` once made.
    pub action: Option<TaskAction>,
    /// How many times `…/status` was asked for.
    pub polls: u32,
    /// `OK`, `WARNINGS: N` or the error text, once the task has stopped.
    pub exitstatus: Option<String>,
    /// When it stopped, seconds since the Unix epoch.
    pub endtime: Option<u32>,
}

impl Task {
    /// A task that already finished with `exitstatus`.
    pub(crate) fn finished(upid: Upid, exitstatus: String, endtime: u32) -> Task {
        Task {
            upid,
            vmid: 0,
            action: None,
            polls: 0,
            exitstatus: Some(exitstatus),
            endtime: Some(endtime),
        }
    }

    /// The task log lines PVE would show at this point.
    pub(crate) fn log_lines(&self) -> Vec<String> {
        match &self.exitstatus {
            None => vec!["no content".to_string()],
            Some(status) if status == "OK" => vec!["TASK OK".to_string()],
            Some(status) if status.starts_with("WARNINGS: ") => {
                let count: usize = status["WARNINGS: ".len()..].parse().unwrap_or(1);
                let mut lines: Vec<String> = (1..=count)
                    .map(|n| format!("WARN: simulated warning {n}"))
                    .collect();
                lines.push(format!("TASK {status}"));
                lines
            }
            Some(error) => vec![error.clone(), format!("TASK ERROR: {error}")],
        }
    }
}

/// One node's tasks, oldest first, with an index by UPID text.
#[derive(Debug, Default)]
pub(crate) struct TaskList {
    tasks: Vec<Task>,
    index: HashMap<String, usize>,
}

impl TaskList {
    /// Appends a task (tasks arrive in start order); returns its UPID text.
    pub(crate) fn push(&mut self, task: Task) -> String {
        let key = task.upid.to_string();
        self.index.insert(key.clone(), self.tasks.len());
        self.tasks.push(task);
        key
    }

    /// The position of the task whose UPID is `key`.
    pub(crate) fn position(&self, key: &str) -> Option<usize> {
        self.index.get(key).copied()
    }

    /// The task at `position`.
    pub(crate) fn get(&self, position: usize) -> Option<&Task> {
        self.tasks.get(position)
    }

    /// The task at `position`, to change.
    pub(crate) fn get_mut(&mut self, position: usize) -> Option<&mut Task> {
        self.tasks.get_mut(position)
    }

    /// Newest first.
    pub(crate) fn newest_first(&self) -> impl Iterator<Item = &Task> {
        self.tasks.iter().rev()
    }
}

/// Task types the seeded history cycles through, with whether they work on a guest.
const SEEDED_KINDS: &[(&str, bool)] = &[
    ("qmstart", true),
    ("vzdump", true),
    ("qmshutdown", true),
    ("vzstart", true),
    ("aptupdate", false),
    ("qmsnapshot", true),
    ("vzstop", true),
    ("srvreload", false),
];

/// The exit status of seeded task `index`: mostly `OK`, one in ten `WARNINGS: 1..3`, one in
/// thirteen an error naming the command.
pub(crate) fn seeded_status(index: usize, kind: &str, id: &str) -> String {
    if index % 13 == 7 {
        match kind {
            "vzdump" => format!("job errors: backup of {id} failed"),
            "aptupdate" => "command 'apt-get update' failed: exit code 100".to_string(),
            _ => format!("command '{kind} {id}' failed: exit code 1"),
        }
    } else if index % 10 == 3 {
        format!("WARNINGS: {}", index % 3 + 1)
    } else {
        "OK".to_string()
    }
}

/// Seeded task `index` of `count` on `node`: started `count - index` minutes before
/// `newest_start`, on guest `vmid` if its type works on one (and `vmid` is given).
pub(crate) fn seeded_task(
    node: &str,
    index: usize,
    count: usize,
    newest_start: u32,
    vmid: Option<u32>,
) -> Task {
    let (kind, on_guest) = SEEDED_KINDS[index % SEEDED_KINDS.len()];
    let id = match (on_guest, vmid) {
        (true, Some(vmid)) => vmid.to_string(),
        _ => String::new(),
    };
    let minutes_ago = u32::try_from(count - index).unwrap_or(u32::MAX / 60);
    let starttime = newest_start.saturating_sub(minutes_ago.saturating_mul(60));
    let small = u32::try_from(index % 1_000_000).unwrap_or(0);
    let upid = Upid {
        node: node.to_string(),
        pid: 100_000 + small,
        pstart: 90_000 + small * 7,
        starttime,
        kind: kind.to_string(),
        id: id.clone(),
        user: "root@pam".to_string(),
    };
    let status = seeded_status(index, kind, &id);
    let mut task = Task::finished(upid, status, starttime + 3 + small % 50);
    task.vmid = vmid.filter(|_| on_guest).unwrap_or(0);
    task
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
