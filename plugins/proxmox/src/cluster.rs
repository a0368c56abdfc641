//! `proxmox/cluster`: one sync over `GET /cluster/resources` records every guest, node and
//! storage of the cluster, so a fleet is not limited to one node.

use crate::fields::{self, Entry};
use crate::pve::Transport;
use crate::vm::{self, ALL_NODES, VmGlobals};
use orch_plugin_sdk::{JsonSchema, Result, Value};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Global arguments of `proxmox/cluster`: like `proxmox/vm`'s without `node` (any node of the
/// cluster answers for all of them).
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterGlobals {
    /// Base URL of any node's API, e.g. `https://10.0.0.4:8006`.
    pub api_url: String,
    /// Login ticket: `${{ model.keebDev02.resource.node.node.attributes.ticket }}`.
    #[serde(default)]
    pub ticket: Option<String>,
    /// CSRF token (unused by the read-only sync, accepted for symmetry with the other types).
    #[serde(default)]
    pub csrf_token: Option<String>,
    /// API token `USER@REALM!ID=SECRET`, used instead of the ticket when set.
    #[serde(default)]
    pub api_token: Option<String>,
    /// Accept the node's self-signed certificate.
    #[serde(default)]
    pub insecure_tls: bool,
    /// SHA-256 fingerprint (hex) of the node's certificate, pinned on every request.
    #[serde(default)]
    pub fingerprint: Option<String>,
}

impl ClusterGlobals {
    /// The same access as fleet globals for every node.
    pub fn as_fleet(&self) -> VmGlobals {
        VmGlobals {
            api_url: self.api_url.clone(),
            node: ALL_NODES.into(),
            ticket: self.ticket.clone(),
            csrf_token: self.csrf_token.clone(),
            api_token: self.api_token.clone(),
            insecure_tls: self.insecure_tls,
            fingerprint: self.fingerprint.clone(),
        }
    }
}

/// Attributes of a `guest` resource, named by its cluster id (`qemu/100`, `lxc/101`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GuestResource {
    /// `qemu` (a VM) or `lxc` (a container).
    #[serde(rename = "type")]
    pub guest_type: String,
    /// Its vmid.
    pub vmid: u64,
    /// Its name (`VM <vmid>` / `CT <vmid>` when it has none).
    pub name: String,
    /// The node it lives on.
    pub node: String,
    /// `running`, `stopped`, or `unknown` when its node is offline.
    pub status: String,
    /// A template, not a guest that runs.
    pub template: bool,
    /// Proxmox tags.
    pub tags: Vec<String>,
    /// CPUs it may use.
    pub maxcpu: Option<u64>,
    /// Memory it may use, bytes.
    pub maxmem: Option<u64>,
    /// Its root disk size, bytes.
    pub maxdisk: Option<u64>,
    /// CPU load now (fraction of maxcpu); live counter.
    pub cpu: Option<f64>,
    /// Memory used now, bytes; live counter.
    pub mem: Option<u64>,
    /// Disk used now, bytes; live counter.
    pub disk: Option<u64>,
    /// Seconds since start; live counter.
    pub uptime: Option<u64>,
    /// When this was observed (RFC 3339, UTC).
    pub timestamp: String,
}

/// Attributes of a `node` resource, named by the node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeInfo {
    /// `online`, `offline` or `unknown`.
    pub status: String,
    /// CPUs.
    pub maxcpu: Option<u64>,
    /// Memory, bytes.
    pub maxmem: Option<u64>,
    /// Root file system size, bytes.
    pub maxdisk: Option<u64>,
    /// Support subscription level (empty when none).
    pub level: Option<String>,
    /// CPU load now; live counter.
    pub cpu: Option<f64>,
    /// Memory used now, bytes; live counter.
    pub mem: Option<u64>,
    /// Root file system used now, bytes; live counter.
    pub disk: Option<u64>,
    /// Seconds since boot; live counter.
    pub uptime: Option<u64>,
    /// When this was observed (RFC 3339, UTC).
    pub timestamp: String,
}

/// Attributes of a `storage` resource, named `node/storage`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterStorage {
    /// The node whose view this is.
    pub node: String,
    /// The storage id.
    pub storage: String,
    /// Storage type (`dir`, `lvmthin`, `nfs`, …).
    pub plugintype: Option<String>,
    /// Content types it holds.
    pub content: Vec<String>,
    /// Shared between nodes.
    pub shared: bool,
    /// `available` or `unknown`.
    pub status: String,
    /// Size, bytes (`maxdisk`).
    pub total: Option<u64>,
    /// Bytes used (`disk`); a filling pool is a real change.
    pub used: Option<u64>,
    /// When this was observed (RFC 3339, UTC).
    pub timestamp: String,
}

/// Everything one `GET /cluster/resources` listed.
#[derive(Debug, Default)]
pub struct ClusterView {
    /// (`qemu/100`, guest) pairs.
    pub guests: Vec<(String, GuestResource)>,
    /// (node, node info) pairs.
    pub nodes: Vec<(String, NodeInfo)>,
    /// (`node/storage`, storage) pairs.
    pub storages: Vec<(String, ClusterStorage)>,
}

/// What `sync` returns.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSummary {
    /// Guests (VMs and containers).
    pub guests: usize,
    /// Nodes, and how many of them are online.
    pub nodes: usize,
    /// Online nodes.
    pub online_nodes: usize,
    /// Storages, one per node that sees it.
    pub storages: usize,
    /// Resources retired because the cluster no longer lists them, as `spec/name`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub retired: Vec<String>,
}

fn guest(entry: &Entry, kind: &str, timestamp: &str) -> Result<(String, GuestResource)> {
    let vmid = entry.req_u64("vmid")?;
    let name = match entry.str("name")? {
        Some(n) if !n.trim().is_empty() => n,
        _ if kind == "lxc" => format!("CT {vmid}"),
        _ => format!("VM {vmid}"),
    };
    let id = match entry.str("id")? {
        Some(id) if !id.is_empty() => id,
        _ => format!("{kind}/{vmid}"),
    };
    Ok((
        id,
        GuestResource {
            guest_type: kind.to_string(),
            vmid,
            name,
            node: entry.req_str("node")?,
            status: entry.str("status")?.unwrap_or_else(|| "unknown".into()),
            template: entry.bool("template")?.unwrap_or(false),
            tags: entry.list("tags", &[';', ',', ' '])?,
            maxcpu: entry.u64("maxcpu")?,
            maxmem: entry.u64("maxmem")?,
            maxdisk: entry.u64("maxdisk")?,
            cpu: entry.f64("cpu")?,
            mem: entry.u64("mem")?,
            disk: entry.u64("disk")?,
            uptime: entry.u64("uptime")?,
            timestamp: timestamp.to_string(),
        },
    ))
}

/// Parses the `data` of `GET /cluster/resources`; other entry types (pool, sdn) are skipped.
pub fn parse_resources(what: &str, data: &Value, timestamp: &str) -> Result<ClusterView> {
    let mut view = ClusterView::default();
    for entry in fields::entries(what, data)? {
        let kind = entry.req_str("type")?;
        match kind.as_str() {
            "qemu" | "lxc" => view.guests.push(guest(&entry, &kind, timestamp)?),
            "node" => {
                let node = entry.req_str("node")?;
                view.nodes.push((
                    node,
                    NodeInfo {
                        status: entry.str("status")?.unwrap_or_else(|| "unknown".into()),
                        maxcpu: entry.u64("maxcpu")?,
                        maxmem: entry.u64("maxmem")?,
                        maxdisk: entry.u64("maxdisk")?,
                        level: entry.str("level")?,
                        cpu: entry.f64("cpu")?,
                        mem: entry.u64("mem")?,
                        disk: entry.u64("disk")?,
                        uptime: entry.u64("uptime")?,
                        timestamp: timestamp.to_string(),
                    },
                ));
            }
            "storage" => {
                let node = entry.req_str("node")?;
                let storage = entry.req_str("storage")?;
                view.storages.push((
                    format!("{node}/{storage}"),
                    ClusterStorage {
                        node,
                        storage,
                        plugintype: entry.str("plugintype")?,
                        content: entry.list("content", &[','])?,
                        shared: entry.bool("shared")?.unwrap_or(false),
                        status: entry.str("status")?.unwrap_or_else(|| "unknown".into()),
                        total: entry.u64("maxdisk")?,
                        used: entry.u64("disk")?,
                        timestamp: timestamp.to_string(),
                    },
                ));
            }
            _ => {}
        }
    }
    view.guests
        .sort_by(|a, b| a.1.vmid.cmp(&b.1.vmid).then(a.0.cmp(&b.0)));
    view.nodes.sort_by(|a, b| a.0.cmp(&b.0));
    view.storages.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(view)
}

/// Reads the whole cluster in one request.
pub fn read(
    transport: &dyn Transport,
    globals: &ClusterGlobals,
    warn: &dyn Fn(&str),
    sleep: fn(Duration),
    timestamp: &str,
) -> Result<ClusterView> {
    let (pve, _) = vm::client(transport, &globals.as_fleet(), warn, sleep)?;
    let path = "/cluster/resources";
    let data = pve.get_data(path)?;
    parse_resources(&format!("GET {path}"), &data, timestamp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pve::fake::{self, FakePve};
    use orch_plugin_sdk::{Error, json};

    fn globals() -> ClusterGlobals {
        serde_json::from_value(json!({"apiUrl": "https://pve:8006", "ticket": "t"})).unwrap()
    }

    fn no_warn(_: &str) {}

    fn answer() -> Value {
        json!([
            {"id": "qemu/100", "type": "qemu", "node": "pve1", "vmid": 100, "name": "web",
             "status": "running", "template": 0, "maxmem": 2147483648u64, "mem": "1000",
             "maxdisk": 0, "disk": 0, "maxcpu": 2, "cpu": 0.25, "uptime": 60, "tags": "prod;web"},
            {"id": "lxc/101", "type": "lxc", "node": "pve2", "vmid": "101", "status": "stopped",
             "template": false},
            {"id": "node/pve1", "type": "node", "node": "pve1", "status": "online", "maxcpu": 8,
             "cpu": "0.5", "level": ""},
            {"id": "node/pve2", "type": "node", "node": "pve2", "status": "offline"},
            {"id": "storage/pve1/local", "type": "storage", "node": "pve1", "storage": "local",
             "plugintype": "dir", "content": "iso,vztmpl,backup", "shared": 0,
             "status": "available", "maxdisk": 100, "disk": "40"},
            {"id": "pool/dev", "type": "pool", "pool": "dev"}
        ])
    }

    #[test]
    fn guests_nodes_and_storages_are_read_tolerantly() {
        let fake = FakePve::new(|_, path, _| {
            assert_eq!(path, "/cluster/resources");
            fake::ok(answer())
        });
        let view = read(&fake, &globals(), &no_warn, |_| {}, "T").unwrap();
        let ids: Vec<_> = view.guests.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(ids, ["qemu/100", "lxc/101"]);
        let web = &view.guests[0].1;
        assert_eq!(
            (web.mem, web.cpu, web.tags.clone(), web.template),
            (
                Some(1000),
                Some(0.25),
                vec!["prod".to_string(), "web".into()],
                false
            )
        );
        let ct = &view.guests[1].1;
        assert_eq!(
            (ct.name.as_str(), ct.node.as_str(), ct.guest_type.as_str()),
            ("CT 101", "pve2", "lxc")
        );
        let nodes: Vec<_> = view
            .nodes
            .iter()
            .map(|(n, i)| (n.as_str(), i.status.as_str()))
            .collect();
        assert_eq!(nodes, [("pve1", "online"), ("pve2", "offline")]);
        assert_eq!(view.nodes[0].1.cpu, Some(0.5));
        let (name, local) = &view.storages[0];
        assert_eq!(name, "pve1/local");
        assert_eq!(
            (local.total, local.used, local.content.len(), local.shared),
            (Some(100), Some(40), 3, false)
        );
    }

    #[test]
    fn malformed_cluster_answers_name_the_field() {
        for (bad, expected) in [
            (
                json!([{"type": "qemu", "node": "a", "vmid": 1, "maxmem": "lots"}]),
                "field `maxmem` of entry 0 is a string (\"lots\")",
            ),
            (
                json!([{"type": "node", "node": "a", "cpu": "busy"}]),
                "field `cpu` of entry 0 is a string (\"busy\"), not a number",
            ),
            (
                json!([{"type": "storage", "node": "a", "storage": "s", "shared": "maybe"}]),
                "field `shared` of entry 0",
            ),
            (json!([{"node": "a"}]), "entry 0 has no `type` field"),
            (
                json!([{"type": "qemu", "vmid": 1}]),
                "entry 0 has no `node` field",
            ),
            (json!("nope"), "field `data` is a string, not a list"),
        ] {
            let fake = FakePve::new(move |_, _, _| fake::ok(bad.clone()));
            match read(&fake, &globals(), &no_warn, |_| {}, "T") {
                Err(Error::Failed(m)) => assert!(
                    m.starts_with(&format!("GET /cluster/resources: {expected}")),
                    "{m}"
                ),
                other => panic!("{other:?}"),
            }
        }
        let fake = FakePve::new(|_, _, _| fake::fail(596, "Connection timed out"));
        assert!(matches!(
            read(&fake, &globals(), &no_warn, |_| {}, "T"),
            Err(Error::Transient(_))
        ));
    }
}
