//! The cluster-wide parts of the API: cluster resources and tasks, node task lists, storage
//! content, seeded tasks, world changes and injected faults.

use std::time::Instant;

use serde::Serialize;
use serde_json::{Value, json};

use super::{
    Api, ApiError, ClusterVmEntry, FaultRule, JSON, Params, Reply, data, parse_bool, parse_count,
    parse_vmid, percent_decode, usage, with_total,
};
use crate::auth::unix_now;
use crate::change::{Fault, WorldChange};
#[cfg(test)]
use crate::guest::GuestKind;
use crate::tasks::{self, Task, Upid};
#[cfg(test)]
use std::borrow::Cow;

/// How many tasks of each node `GET /cluster/tasks` returns.
const CLUSTER_TASKS_PER_NODE: usize = 50;

/// One row of a task list (`/nodes/{node}/tasks`, `/cluster/tasks`).
#[derive(Serialize)]
struct TaskEntry<'a> {
    upid: String,
    node: &'a str,
    pid: u32,
    pstart: u32,
    starttime: u32,
    #[serde(rename = "type")]
    kind: &'a str,
    id: &'a str,
    user: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    endtime: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<&'a str>,
}

fn task_entry(task: &Task) -> TaskEntry<'_> {
    TaskEntry {
        upid: task.upid.to_string(),
        node: &task.upid.node,
        pid: task.upid.pid,
        pstart: task.upid.pstart,
        starttime: task.upid.starttime,
        kind: &task.upid.kind,
        id: &task.upid.id,
        user: &task.upid.user,
        endtime: task.endtime,
        status: task.exitstatus.as_deref(),
    }
}

/// One storage row of `GET /cluster/resources`.
#[derive(Serialize)]
struct ClusterStorageEntry<'a> {
    id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    node: &'a str,
    storage: &'a str,
    plugintype: &'a str,
    content: &'a str,
    shared: u8,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    maxdisk: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    disk: Option<u64>,
}

/// A row of `GET /cluster/resources`, serialized without building a `Value` per guest.
#[derive(Serialize)]
#[serde(untagged)]
enum ResourceRow<'a> {
    Node(Value),
    Guest(ClusterVmEntry<'a>),
    Storage(ClusterStorageEntry<'a>),
}

/// Splits a path below `/api2/json` into decoded segments.
fn segments(path: &str) -> Vec<String> {
    let path = path.strip_prefix("/api2/json").unwrap_or(path);
    path.split('/')
        .filter(|segment| !segment.is_empty())
        .map(percent_decode)
        .collect()
}

/// The reply a fault gives instead of the real one, or `None` if it spoils the real one.
pub(super) fn fault_reply(fault: &Fault) -> Option<Reply> {
    let reply = |status: u16, reason: &str, body: &[u8], content_type| Reply {
        status,
        reason: reason.to_string(),
        body: body.to_vec(),
        set_cookie: None,
        content_type,
    };
    match fault {
        Fault::MissingData => Some(reply(200, "OK", b"{}", JSON)),
        Fault::Timeout => Some(reply(596, "Connection timed out", b"{\"data\":null}", JSON)),
        Fault::Html { status } => {
            let reason = if *status == 200 {
                "OK"
            } else {
                "Internal Server Error"
            };
            let body = format!(
                "<!DOCTYPE html>\n<html><head><title>{status} {reason}</title></head>\n<body><h1>{reason}</h1><p>pveproxy: upstream error</p></body></html>\n"
            );
            Some(reply(
                *status,
                reason,
                body.as_bytes(),
                "text/html; charset=utf-8",
            ))
        }
        Fault::StringField { .. } | Fault::WrongDataType => None,
    }
}

/// The real (successful) reply with its `data` spoiled as `fault` says.
pub(super) fn spoil(mut reply: Reply, fault: &Fault) -> Reply {
    if reply.status != 200 {
        return reply;
    }
    let Ok(Value::Object(mut body)) = serde_json::from_slice::<Value>(&reply.body) else {
        return reply;
    };
    let Some(payload) = body.get_mut("data") else {
        return reply;
    };
    match fault {
        Fault::StringField { field, value } => {
            let set = |row: &mut Value| {
                if let Value::Object(map) = row {
                    map.insert(field.clone(), Value::from(value.as_str()));
                }
            };
            match payload {
                Value::Array(rows) => rows.iter_mut().for_each(set),
                other => set(other),
            }
        }
        Fault::WrongDataType => {
            *payload = if payload.is_array() {
                json!({"unexpected": "object"})
            } else {
                json!([])
            };
        }
        Fault::MissingData | Fault::Timeout | Fault::Html { .. } => {}
    }
    if let Ok(bytes) = serde_json::to_vec(&body) {
        reply.body = bytes;
    }
    reply
}

impl Api {
    /// `GET /cluster/nextid`: the lowest vmid from 100 up that no VM or container holds or
    /// has reserved, as a string (as PVE sends it).
    pub(super) fn next_id(&self) -> String {
        (100u32..)
            .find(|id| !self.guests.contains_key(id) && !self.reserved.contains_key(id))
            .unwrap_or(u32::MAX)
            .to_string()
    }

    /// Seeds `count` finished tasks round-robin over the nodes, each on one of its node's
    /// guests when its type works on a guest.
    pub(super) fn seed_tasks(&mut self, count: usize) {
        let mut vmids: Vec<Vec<u32>> = vec![Vec::new(); self.nodes.len()];
        // Templates never ran anything, and leaving them out keeps the seeded history the
        // same with or without `SimConfig::with_templates`.
        for guest in self.guests.values().filter(|g| !g.is_template()) {
            vmids[guest.node].push(guest.vmid);
        }
        let newest_start = unix_now().saturating_sub(600);
        let nodes = self.nodes.len();
        for index in 0..count {
            let node = index % nodes;
            let on_node = &vmids[node];
            let vmid = (!on_node.is_empty()).then(|| on_node[(index / nodes) % on_node.len()]);
            let task = tasks::seeded_task(&self.nodes[node].name, index, count, newest_start, vmid);
            self.nodes[node].tasks.push(task);
        }
    }

    /// The config file of guest `vmid`, key by key, as PVE stores it (no `digest`).
    pub(crate) fn guest_config(
        &self,
        vmid: u32,
    ) -> Option<std::collections::BTreeMap<String, String>> {
        self.guests.get(&vmid).map(|g| g.config.clone())
    }

    /// `running`/`stopped` of guest `vmid`.
    pub(crate) fn guest_status(&self, vmid: u32) -> Option<String> {
        self.guests.get(&vmid).map(|g| g.status().to_string())
    }

    /// The fault matching `method` and the raw `path`, the last added winning.
    pub(super) fn fault_for(&self, method: &str, path: &str) -> Option<Fault> {
        if self.faults.is_empty() {
            return None;
        }
        let wanted = segments(path);
        self.faults
            .iter()
            .rev()
            .find(|rule| {
                rule.method
                    .as_deref()
                    .is_none_or(|m| m.eq_ignore_ascii_case(method))
                    && rule.segments.len() == wanted.len()
                    && rule
                        .segments
                        .iter()
                        .zip(&wanted)
                        .all(|(pattern, segment)| pattern == "*" || pattern == segment)
            })
            .map(|rule| rule.fault.clone())
    }

    pub(super) fn cluster_resources(&self, params: &Params) -> Result<Reply, ApiError> {
        let (nodes, guests, storage) = match params.get("type") {
            None => (true, true, true),
            Some("vm") => (false, true, false),
            Some("node") => (true, false, false),
            Some("storage") => (false, false, true),
            Some("sdn" | "pool") => (false, false, false),
            Some(other) => {
                return Err(ApiError::parameter(
                    "type",
                    format!(
                        "value '{other}' does not have a value in the enumeration 'vm, storage, node, sdn, pool'"
                    ),
                ));
            }
        };
        let mut rows: Vec<ResourceRow<'_>> = Vec::new();
        if nodes {
            rows.extend((0..self.nodes.len()).map(|n| ResourceRow::Node(self.node_entry(n))));
        }
        if guests {
            rows.extend(self.guests.values().map(|vm| {
                let usage = usage(vm);
                ResourceRow::Guest(ClusterVmEntry {
                    id: format!("{}/{}", vm.kind.segment(), vm.vmid),
                    kind: vm.kind.segment(),
                    node: &self.nodes[vm.node].name,
                    vmid: vm.vmid,
                    name: vm.name(),
                    status: vm.status(),
                    template: u8::from(vm.is_template()),
                    maxcpu: vm.cpus(),
                    cpu: usage.cpu,
                    maxmem: vm.maxmem(),
                    mem: vm.mem(),
                    maxdisk: vm.maxdisk(),
                    disk: super::lxc_disk(vm),
                    netin: usage.netin,
                    netout: usage.netout,
                    diskread: usage.diskread,
                    diskwrite: usage.diskwrite,
                    uptime: vm.uptime(),
                    tags: vm.tags(),
                })
            }));
        }
        if storage {
            for (node, state) in self.nodes.iter().enumerate() {
                for pool in &self.storages {
                    let enabled = pool.seed.enabled;
                    rows.push(ResourceRow::Storage(ClusterStorageEntry {
                        id: format!("storage/{}/{}", state.name, pool.id()),
                        kind: "storage",
                        node: &state.name,
                        storage: pool.id(),
                        plugintype: &pool.seed.kind,
                        content: &pool.seed.content,
                        shared: u8::from(pool.seed.shared),
                        status: if enabled { "available" } else { "unknown" },
                        maxdisk: enabled.then_some(pool.seed.total),
                        disk: enabled.then(|| pool.used(node)),
                    }));
                }
            }
        }
        data(&rows)
    }

    /// The newest tasks of every node, newest first.
    pub(super) fn cluster_tasks(&self) -> Result<Reply, ApiError> {
        let mut recent: Vec<&Task> = self
            .nodes
            .iter()
            .flat_map(|node| node.tasks.newest_first().take(CLUSTER_TASKS_PER_NODE))
            .collect();
        recent.sort_by_key(|task| std::cmp::Reverse(task.upid.starttime));
        let rows: Vec<TaskEntry<'_>> = recent.into_iter().map(task_entry).collect();
        data(&rows)
    }

    /// `GET /nodes/{node}/tasks`: newest first, filtered, then `start`/`limit`, with `total`.
    pub(super) fn task_list(&self, node: usize, params: &Params) -> Result<Reply, ApiError> {
        let start = parse_count(params, "start", 0)?;
        let limit = parse_count(params, "limit", 50)?;
        let errors = params
            .get("errors")
            .map_or(Ok(false), |v| parse_bool("errors", v))?;
        let vmid = params.get("vmid").map(parse_vmid).transpose()?;
        let vmid = vmid.map(|v| v.to_string());
        let typefilter = params.get("typefilter");
        let userfilter = params.get("userfilter");
        let (active, archive) = match params.get("source").unwrap_or("all") {
            "all" => (true, true),
            "active" => (true, false),
            "archive" => (false, true),
            other => {
                return Err(ApiError::parameter(
                    "source",
                    format!(
                        "value '{other}' does not have a value in the enumeration 'archive, active, all'"
                    ),
                ));
            }
        };
        let mut total = 0;
        let mut rows = Vec::new();
        for task in self.nodes[node].tasks.newest_first() {
            let finished = task.exitstatus.as_deref();
            let keep = match finished {
                None => active,
                Some(status) => archive && !(errors && status == "OK"),
            } && typefilter.is_none_or(|t| t == task.upid.kind)
                && userfilter.is_none_or(|u| task.upid.user.contains(u))
                && vmid.as_deref().is_none_or(|v| v == task.upid.id);
            if !keep {
                continue;
            }
            if total >= start && rows.len() < limit {
                rows.push(task_entry(task));
            }
            total += 1;
        }
        with_total(&rows, total)
    }

    /// `GET /nodes/{node}/storage/{storage}/content[?content=iso&vmid=N]`.
    pub(super) fn storage_content(
        &self,
        node: usize,
        storage: &str,
        params: &Params,
    ) -> Result<Reply, ApiError> {
        let pool = self
            .storages
            .iter()
            .find(|s| s.id() == storage)
            .ok_or_else(|| ApiError::server(format!("storage '{storage}' does not exist")))?;
        if !pool.seed.enabled {
            return Err(ApiError::server(format!("storage '{storage}' is disabled")));
        }
        let vmid = params.get("vmid").map(parse_vmid).transpose()?;
        let mut rows = pool.content(self.guests.values(), node, params.get("content"));
        if let Some(vmid) = vmid {
            rows.retain(|row| row.vmid() == Some(vmid));
        }
        data(&rows)
    }

    /// Applies a world change at once (no task).
    pub(crate) fn change(&mut self, change: WorldChange) -> Result<(), String> {
        let missing =
            |vmid: u32| format!("no guest has vmid {vmid}; list them with GET /cluster/resources");
        match change {
            WorldChange::DeleteGuest { vmid } => {
                self.guests.remove(&vmid).ok_or_else(|| missing(vmid))?;
            }
            WorldChange::StopGuest { vmid } => {
                self.guests
                    .get_mut(&vmid)
                    .ok_or_else(|| missing(vmid))?
                    .halt();
            }
            WorldChange::StartGuest { vmid } => {
                let pid = self.next_pid();
                let warmup = self.agent_warmup;
                let guest = self.guests.get_mut(&vmid).ok_or_else(|| missing(vmid))?;
                if guest.is_template() {
                    return Err(format!(
                        "start_guest: {vmid} is a template, which cannot run"
                    ));
                }
                if !guest.is_running() {
                    guest.boot(pid, Instant::now(), 0);
                    guest.set_warmup(warmup);
                }
            }
            WorldChange::RenameGuest { vmid, name } => {
                self.guests
                    .get_mut(&vmid)
                    .ok_or_else(|| missing(vmid))?
                    .rename(&name);
            }
            WorldChange::SetConfig { vmid, key, value } => {
                if key.is_empty() || key == "digest" {
                    return Err(format!("set_config: `{key}` is not a config key"));
                }
                let config = &mut self
                    .guests
                    .get_mut(&vmid)
                    .ok_or_else(|| missing(vmid))?
                    .config;
                match value {
                    Some(value) => config.insert(key, value),
                    None => config.remove(&key),
                };
            }
            WorldChange::MoveGuest { vmid, node } => {
                let index = self.node_named(&node)?;
                self.guests
                    .get_mut(&vmid)
                    .ok_or_else(|| missing(vmid))?
                    .node = index;
            }
            WorldChange::FillStorage {
                storage,
                node,
                used,
                used_fraction,
            } => {
                let node = node.as_deref().map(|n| self.node_named(n)).transpose()?;
                let nodes = self.nodes.len();
                let pool = self
                    .storages
                    .iter_mut()
                    .find(|s| s.id() == storage)
                    .ok_or_else(|| format!("fill_storage: no storage '{storage}'"))?;
                let total = pool.seed.total;
                let bytes = match (used, used_fraction) {
                    (Some(bytes), None) => bytes,
                    (None, Some(fraction)) if (0.0..=1.0).contains(&fraction) => {
                        #[allow(
                            clippy::cast_possible_truncation,
                            clippy::cast_sign_loss,
                            clippy::cast_precision_loss
                        )]
                        let bytes = (total as f64 * fraction).round() as u64;
                        bytes
                    }
                    _ => {
                        return Err(
                            "fill_storage: give exactly one of `used` (bytes) and `used_fraction` (0.0 to 1.0)"
                                .to_string(),
                        );
                    }
                };
                match node {
                    Some(node) => pool.set_used(node, bytes),
                    None => (0..nodes).for_each(|n| pool.set_used(n, bytes)),
                }
            }
            WorldChange::AddTask {
                node,
                kind,
                id,
                status,
            } => {
                let index = self.node_named(&node)?;
                if kind.is_empty() || kind.contains(':') || id.contains(':') || status.is_empty() {
                    return Err("add_task: `type` and `status` must be non-empty and `type`/`id` free of ':'".to_string());
                }
                let now = unix_now();
                let upid = Upid {
                    node: node.clone(),
                    pid: self.next_pid(),
                    pstart: self.pstart(),
                    starttime: now,
                    kind,
                    id,
                    user: "root@pam".to_string(),
                };
                let mut task = Task::finished(upid, status, now);
                task.vmid = task.upid.id.parse().unwrap_or(0);
                self.nodes[index].tasks.push(task);
            }
            WorldChange::Fault {
                method,
                path,
                fault,
            } => {
                if let Fault::Html { status } = fault
                    && !(200..=599).contains(&status)
                {
                    return Err(format!("fault: html status {status} is not an HTTP status"));
                }
                self.faults.push(FaultRule {
                    method,
                    segments: segments(path.split('?').next().unwrap_or_default()),
                    fault,
                });
            }
            WorldChange::ClearFaults => self.faults.clear(),
            WorldChange::AgentWarmup { calls } => self.agent_warmup = calls,
        }
        Ok(())
    }

    fn node_named(&self, node: &str) -> Result<usize, String> {
        self.node_index(node).ok_or_else(|| {
            let names: Vec<&str> = self.nodes.iter().map(|n| n.name.as_str()).collect();
            format!("no node '{node}'; the nodes are {}", names.join(", "))
        })
    }

    /// The kind of guest `vmid`, for tests.
    #[cfg(test)]
    pub(super) fn guest_kind(&self, vmid: u32) -> Option<GuestKind> {
        self.guests.get(&vmid).map(|g| g.kind)
    }

    /// The name of guest `vmid`, for tests.
    #[cfg(test)]
    pub(super) fn guest_name(&self, vmid: u32) -> Option<Cow<'_, str>> {
        self.guests.get(&vmid).map(crate::guest::Guest::name)
    }
}
