//! `proxmox/task`: recent tasks of a node (or every node) as `task` resources named by UPID, and
//! the status and log of one task.

use crate::encode;
use crate::fields::{self, Entry};
use crate::pve::{Pve, Transport};
use crate::task::{self, Upid};
use crate::vm::{self, ALL_NODES, VmGlobals, message_of};
use orch_plugin_sdk::{Error, JsonSchema, Result, Value, error};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::time::Duration;

/// Attributes of a `task` resource.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskResource {
    /// The task id; also the resource's name.
    pub upid: String,
    /// The node that ran it.
    pub node: String,
    /// Task type: `qmstart`, `vzdump`, `vzcreate`, ….
    #[serde(rename = "type")]
    pub task_type: String,
    /// The object it worked on (a vmid, a storage, …); empty when none.
    pub id: String,
    /// Who started it (`root@pam`, `root@pam!token`).
    pub user: String,
    /// `running`, `ok`, `warning` (finished with warnings) or `error`.
    pub status: String,
    /// Proxmox's exit status of a finished task (`OK`, `WARNINGS: 2`, or the error text).
    pub exitstatus: Option<String>,
    /// Start time (Unix seconds).
    pub starttime: Option<u64>,
    /// End time (Unix seconds) of a finished task.
    pub endtime: Option<u64>,
}

/// Arguments of `sync`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskSyncArgs {
    /// How many of the newest tasks to read per node (default 500).
    #[serde(default)]
    #[schemars(range(min = 1, max = 100000))]
    pub limit: Option<u32>,
}

/// Arguments naming one task.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpidArgs {
    /// The task id, `UPID:node:pid:pstart:starttime:type:id:user:`.
    pub upid: String,
}

/// Arguments of `log`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LogArgs {
    /// The task id, `UPID:node:pid:pstart:starttime:type:id:user:`.
    pub upid: String,
    /// First line to return (0-based; default 0).
    #[serde(default)]
    pub start: Option<u64>,
    /// Most lines to return (default 500).
    #[serde(default)]
    #[schemars(range(min = 1, max = 100000))]
    pub limit: Option<u32>,
}

/// Default tasks per node for `sync`.
pub const DEFAULT_LIMIT: u32 = 500;

/// `running`, `ok`, `warning` or `error` from a list entry's `status` (absent while running).
pub fn classify(exit: Option<&str>) -> &'static str {
    match exit.map(str::trim) {
        None => "running",
        Some("OK") => "ok",
        Some(w) if w.starts_with("WARNINGS") => "warning",
        Some(_) => "error",
    }
}

/// The start time encoded in a UPID (its fifth field, hex), if it has one.
pub fn upid_starttime(upid: &str) -> Option<u64> {
    let field = upid.split(':').nth(4)?;
    u64::from_str_radix(field, 16).ok()
}

/// Parses one entry of `GET /nodes/{node}/tasks`.
fn parse_task(entry: &Entry, node: &str) -> Result<TaskResource> {
    let raw = entry.req_str("upid")?;
    let upid = task::parse_upid(&raw)
        .map_err(|e| entry.wrong("upid", &format!("a UPID ({})", message_of(&e))))?;
    let exit = entry.str("status")?;
    let starttime = match entry.u64("starttime")? {
        Some(t) => Some(t),
        None => upid_starttime(&raw),
    };
    Ok(TaskResource {
        node: entry.str("node")?.unwrap_or_else(|| {
            if upid.node.is_empty() {
                node.to_string()
            } else {
                upid.node.clone()
            }
        }),
        task_type: entry.str("type")?.unwrap_or(upid.task_type),
        id: entry.str("id")?.unwrap_or(upid.id),
        user: entry.str("user")?.unwrap_or(upid.user),
        status: classify(exit.as_deref()).to_string(),
        exitstatus: exit,
        starttime,
        endtime: entry.u64("endtime")?,
        upid: raw,
    })
}

/// Parses the `data` of `GET /nodes/{node}/tasks`.
pub fn parse_tasks(what: &str, data: &Value, node: &str) -> Result<Vec<TaskResource>> {
    fields::entries(what, data)?
        .iter()
        .map(|entry| parse_task(entry, node))
        .collect()
}

/// Nodes that could not be read, with why.
pub type Unreachable = Vec<(String, String)>;

/// One node's listing.
#[derive(Debug)]
pub struct NodeTasks {
    /// The node.
    pub node: String,
    /// Its newest tasks.
    pub tasks: Vec<TaskResource>,
}

/// What the sync saw: complete listings per node, and the nodes it could not read.
#[derive(Debug)]
pub struct TaskListing {
    /// Nodes that answered.
    pub nodes: Vec<NodeTasks>,
    /// Nodes that did not (offline or unreachable), with why; nothing of theirs is retired.
    pub unreachable: Unreachable,
}

impl TaskListing {
    /// For each node that answered with at least one task: the oldest start time it listed.
    /// Only recorded tasks of that node started strictly later can be known gone.
    pub fn windows(&self) -> HashMap<String, u64> {
        self.nodes
            .iter()
            .filter_map(|n| {
                let oldest = n.tasks.iter().filter_map(|t| t.starttime).min()?;
                Some((n.node.clone(), oldest))
            })
            .collect()
    }

    /// Whether a recorded task `upid` falls inside a window that was listed completely.
    pub fn covers(windows: &HashMap<String, u64>, upid: &str) -> bool {
        let Ok(parsed) = task::parse_upid(upid) else {
            return false;
        };
        match (windows.get(&parsed.node), upid_starttime(upid)) {
            (Some(&oldest), Some(start)) => start > oldest,
            _ => false,
        }
    }
}

/// What `sync` returns.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskSyncSummary {
    /// Tasks seen.
    pub count: usize,
    /// Per status (`running`, `ok`, `warning`, `error`): how many.
    pub by_status: std::collections::BTreeMap<String, usize>,
    /// Nodes that could not be read; their tasks were neither recorded nor retired.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unreachable_nodes: Vec<String>,
    /// Resources retired because their task is no longer listed within the window.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub retired: Vec<String>,
}

/// The tasks of one node or of all nodes.
pub struct Tasks<'a> {
    pve: Pve<'a>,
    node: String,
}

impl<'a> Tasks<'a> {
    /// A client from the model's globals.
    pub fn new(
        transport: &'a dyn Transport,
        globals: &VmGlobals,
        warn: &'a dyn Fn(&str),
        sleep: fn(Duration),
    ) -> Result<Self> {
        let (pve, node) = vm::client(transport, globals, warn, sleep)?;
        Ok(Tasks { pve, node })
    }

    /// The nodes to read: the model's node, or every online node of `GET /nodes` for `*`
    /// (offline ones are returned as unreachable).
    fn nodes(&self) -> Result<(Vec<String>, Unreachable)> {
        if self.node != ALL_NODES {
            return Ok((vec![self.node.clone()], Vec::new()));
        }
        let path = "/nodes";
        let what = format!("GET {path}");
        let data = self.pve.get_data(path)?;
        let mut online = Vec::new();
        let mut offline = Vec::new();
        for entry in fields::entries(&what, &data)? {
            let node = entry.req_str("node")?;
            match entry.str("status")?.as_deref() {
                Some("online") | None => online.push(node),
                Some(other) => offline.push((node, format!("node is {other}"))),
            }
        }
        online.sort();
        Ok((online, offline))
    }

    /// The newest `limit` tasks of every node. With `*`, a node that does not answer (596,
    /// 502…) is reported as unreachable and the others are still read; any other error fails.
    pub fn list(&self, limit: u32) -> Result<TaskListing> {
        let (nodes, mut unreachable) = self.nodes()?;
        let mut listed = Vec::with_capacity(nodes.len());
        for node in nodes {
            let path = format!(
                "/nodes/{}/tasks?start=0&limit={limit}",
                encode::path_segment(&node)
            );
            match self.pve.get_data(&path) {
                Ok(data) => {
                    let tasks = parse_tasks(&format!("GET {path}"), &data, &node)?;
                    listed.push(NodeTasks { node, tasks });
                }
                Err(Error::Transient(m)) if self.node == ALL_NODES => {
                    self.pve.warn(&format!(
                        "tasks of node {node} not read, nothing of it is retired: {m}"
                    ));
                    unreachable.push((node, m));
                }
                Err(e) => return Err(e),
            }
        }
        if listed.is_empty() && !unreachable.is_empty() {
            let why: Vec<String> = unreachable
                .iter()
                .map(|(n, m)| format!("{n}: {m}"))
                .collect();
            return Err(error::transient(format!(
                "no node of the cluster answered the task list ({})",
                why.join("; ")
            )));
        }
        Ok(TaskListing {
            nodes: listed,
            unreachable,
        })
    }

    fn parse_args_upid(text: &str) -> Result<Upid> {
        task::parse_upid(text.trim()).map_err(|_| {
            error::invalid(format!(
                "upid {text:?} is not a task id like UPID:node:pid:pstart:starttime:type:id:user:"
            ))
        })
    }

    fn task_path(upid: &Upid) -> String {
        format!(
            "/nodes/{}/tasks/{}",
            encode::path_segment(&upid.node),
            encode::path_segment(&upid.raw)
        )
    }

    /// The status of one task, as a `task` resource (no end time: the status endpoint has none).
    pub fn status(&self, upid: &str) -> Result<TaskResource> {
        let upid = Self::parse_args_upid(upid)?;
        let path = format!("{}/status", Self::task_path(&upid));
        let what = format!("GET {path}");
        let data = self.pve.get_data(&path)?;
        let entry = Entry::new(&what, &data, None)?;
        let state = entry.req_str("status")?;
        let exit = entry.str("exitstatus")?;
        let status = match state.as_str() {
            "running" => "running",
            "stopped" => match classify(exit.as_deref()) {
                "running" => "error",
                other => other,
            },
            _ => return Err(entry.wrong("status", "\"running\" or \"stopped\"")),
        };
        Ok(TaskResource {
            node: entry.str("node")?.unwrap_or_else(|| upid.node.clone()),
            task_type: entry.str("type")?.unwrap_or_else(|| upid.task_type.clone()),
            id: entry.str("id")?.unwrap_or_else(|| upid.id.clone()),
            user: entry.str("user")?.unwrap_or_else(|| upid.user.clone()),
            status: status.to_string(),
            exitstatus: if status == "running" { None } else { exit },
            starttime: match entry.u64("starttime")? {
                Some(t) => Some(t),
                None => upid_starttime(&upid.raw),
            },
            endtime: None,
            upid: upid.raw,
        })
    }

    /// Lines `start..start+limit` of a task's log, and the log's total line count.
    pub fn log(&self, args: &LogArgs) -> Result<Value> {
        let upid = Self::parse_args_upid(&args.upid)?;
        let start = args.start.unwrap_or(0);
        let limit = args.limit.unwrap_or(DEFAULT_LIMIT);
        let path = format!("{}/log?start={start}&limit={limit}", Self::task_path(&upid));
        let what = format!("GET {path}");
        let response = self.pve.check(&what, self.pve.send("GET", &path, None)?)?;
        let data = fields::data(&what, &response)?;
        let mut lines = Vec::new();
        for entry in fields::entries(&what, &data)? {
            lines.push(entry.str("t")?.unwrap_or_default());
        }
        // PVE puts the line count next to `data`.
        let total = serde_json::from_slice::<Value>(&response.body)
            .ok()
            .and_then(|v| v.get("total").cloned());
        let total = match total {
            None | Some(Value::Null) => None,
            Some(t) => {
                let wrapped = serde_json::json!({ "total": t });
                Entry::new(&what, &wrapped, None)?.u64("total")?
            }
        };
        Ok(serde_json::json!({
            "upid": upid.raw,
            "start": start,
            "lines": lines,
            "total": total,
        }))
    }
}

#[cfg(test)]
mod tests;
