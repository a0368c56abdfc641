//! `proxmox/storage`: the storage pools of a node (`pool` resources) and the volumes of one pool
//! (`volume` resources, named by volid).

use crate::encode;
use crate::fields;
use crate::pve::{Pve, Transport};
use crate::vm::{self, ALL_NODES, VmGlobals};
use orch_plugin_sdk::{JsonSchema, Result, error};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Attributes of a `pool` resource (from `GET /nodes/{node}/storage`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PoolResource {
    /// The storage id, e.g. `local-lvm`; also the resource's name.
    pub storage: String,
    /// The node whose view this is.
    pub node: String,
    /// Storage type: `dir`, `lvmthin`, `zfspool`, `nfs`, ….
    #[serde(rename = "type")]
    pub storage_type: String,
    /// Content types it holds: `images`, `rootdir`, `iso`, `vztmpl`, `backup`, ….
    pub content: Vec<String>,
    /// Shared between nodes.
    pub shared: bool,
    /// Enabled in the storage configuration.
    pub enabled: bool,
    /// Usable on this node right now.
    pub active: bool,
    /// Size in bytes (absent when the storage is disabled or inactive).
    pub total: Option<u64>,
    /// Bytes used.
    pub used: Option<u64>,
    /// Bytes available.
    pub avail: Option<u64>,
    /// When this was observed (RFC 3339, UTC).
    pub timestamp: String,
}

/// Attributes of a `volume` resource (from `GET /nodes/{node}/storage/{storage}/content`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VolumeResource {
    /// The volume id, e.g. `local:iso/debian-12.iso`; also the resource's name.
    pub volid: String,
    /// The pool it is on.
    pub storage: String,
    /// The node whose view this is.
    pub node: String,
    /// Content type: `images`, `rootdir`, `iso`, `vztmpl`, `backup`, ….
    pub content: Option<String>,
    /// Format: `raw`, `qcow2`, `iso`, `tzst`, `subvol`, ….
    pub format: Option<String>,
    /// Size in bytes.
    pub size: Option<u64>,
    /// The guest owning it, for disks and backups.
    pub vmid: Option<u64>,
    /// Creation time (Unix seconds), when Proxmox knows it.
    pub ctime: Option<u64>,
    /// When this was observed (RFC 3339, UTC).
    pub timestamp: String,
}

/// Arguments of `content`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContentArgs {
    /// The storage id whose volumes to record, e.g. `local`.
    pub storage: String,
}

/// What `sync` and `content` return.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListSummary {
    /// Things seen.
    pub count: usize,
    /// Their names.
    pub names: Vec<String>,
    /// Resources retired because Proxmox no longer lists them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub retired: Vec<String>,
}

/// Parses the `data` of `GET /nodes/{node}/storage`.
pub fn parse_pools(
    what: &str,
    data: &orch_plugin_sdk::Value,
    node: &str,
    timestamp: &str,
) -> Result<Vec<PoolResource>> {
    let mut pools = Vec::new();
    for entry in fields::entries(what, data)? {
        pools.push(PoolResource {
            storage: entry.req_str("storage")?,
            node: node.to_string(),
            storage_type: entry.str("type")?.unwrap_or_default(),
            content: entry.list("content", &[','])?,
            shared: entry.bool("shared")?.unwrap_or(false),
            enabled: entry.bool("enabled")?.unwrap_or(true),
            active: entry.bool("active")?.unwrap_or(false),
            total: entry.u64("total")?,
            used: entry.u64("used")?,
            avail: entry.u64("avail")?,
            timestamp: timestamp.to_string(),
        });
    }
    pools.sort_by(|a, b| a.storage.cmp(&b.storage));
    Ok(pools)
}

/// Parses the `data` of `GET /nodes/{node}/storage/{storage}/content`; a volid of another pool
/// is an error (it would escape the pool's retirement scope).
pub fn parse_volumes(
    what: &str,
    data: &orch_plugin_sdk::Value,
    node: &str,
    storage: &str,
    timestamp: &str,
) -> Result<Vec<VolumeResource>> {
    let mut volumes = Vec::new();
    let prefix = format!("{storage}:");
    for entry in fields::entries(what, data)? {
        let volid = entry.req_str("volid")?;
        if !volid.starts_with(&prefix) {
            return Err(error::failed(format!(
                "{what}: volid {volid:?} does not belong to storage {storage:?}"
            )));
        }
        volumes.push(VolumeResource {
            volid,
            storage: storage.to_string(),
            node: node.to_string(),
            content: entry.str("content")?,
            format: entry.str("format")?,
            size: entry.u64("size")?,
            vmid: entry.u64("vmid")?,
            ctime: entry.u64("ctime")?,
            timestamp: timestamp.to_string(),
        });
    }
    volumes.sort_by(|a, b| a.volid.cmp(&b.volid));
    Ok(volumes)
}

/// The storage of one node: every read of `proxmox/storage`.
pub struct Storage<'a> {
    pve: Pve<'a>,
    node: String,
    timestamp: String,
}

impl<'a> Storage<'a> {
    /// A client from the model's globals; `node` must name one node.
    pub fn new(
        transport: &'a dyn Transport,
        globals: &VmGlobals,
        warn: &'a dyn Fn(&str),
        sleep: fn(Duration),
        timestamp: String,
    ) -> Result<Self> {
        let (pve, node) = vm::client(transport, globals, warn, sleep)?;
        if node == ALL_NODES {
            return Err(error::invalid(
                "proxmox/storage reads one node's view of its pools, but globalArguments.node is \"*\"; name a node (proxmox/cluster sync records every node's storage)",
            ));
        }
        Ok(Storage {
            pve,
            node,
            timestamp,
        })
    }

    fn node_path(&self) -> String {
        format!("/nodes/{}", encode::path_segment(&self.node))
    }

    /// Every pool as the node sees it.
    pub fn pools(&self) -> Result<Vec<PoolResource>> {
        let path = format!("{}/storage", self.node_path());
        let data = self.pve.get_data(&path)?;
        parse_pools(&format!("GET {path}"), &data, &self.node, &self.timestamp)
    }

    /// Every volume of pool `storage`.
    pub fn content(&self, storage: &str) -> Result<Vec<VolumeResource>> {
        let storage = storage.trim();
        if storage.is_empty() {
            return Err(error::invalid(
                "storage is empty; name a pool such as local",
            ));
        }
        let path = format!(
            "{}/storage/{}/content",
            self.node_path(),
            encode::path_segment(storage)
        );
        let data = self.pve.get_data(&path)?;
        parse_volumes(
            &format!("GET {path}"),
            &data,
            &self.node,
            storage,
            &self.timestamp,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pve::fake::{self, FakePve};
    use orch_plugin_sdk::{Error, json};

    fn globals(node: &str) -> VmGlobals {
        serde_json::from_value(json!({"apiUrl": "https://pve:8006", "node": node, "ticket": "t"}))
            .unwrap()
    }

    fn no_warn(_: &str) {}

    fn storage(fake: &FakePve) -> Storage<'_> {
        Storage::new(fake, &globals("pve1"), &no_warn, |_| {}, "T".into()).unwrap()
    }

    fn failed<T: std::fmt::Debug>(result: Result<T>) -> String {
        match result {
            Err(Error::Failed(m)) => m,
            other => panic!("expected Failed, got {other:?}"),
        }
    }

    #[test]
    fn pools_read_pve_booleans_and_byte_counts_and_tolerate_disabled_ones() {
        let fake = FakePve::new(|_, path, _| {
            assert_eq!(path, "/nodes/pve1/storage");
            fake::ok(json!([
                {"storage": "local-lvm", "type": "lvmthin", "content": "images,rootdir", "shared": 0,
                 "enabled": 1, "active": 1, "total": "100000000000", "used": 40000000000u64,
                 "avail": 60000000000u64, "used_fraction": 0.4},
                {"storage": "backup", "type": "nfs", "content": "backup", "shared": true,
                 "enabled": 0, "active": 0}
            ]))
        });
        let pools = storage(&fake).pools().unwrap();
        assert_eq!(pools[0].storage, "backup");
        assert_eq!(
            (
                pools[0].shared,
                pools[0].enabled,
                pools[0].active,
                pools[0].total
            ),
            (true, false, false, None)
        );
        let lvm = &pools[1];
        assert_eq!(lvm.content, ["images", "rootdir"]);
        assert_eq!(
            (lvm.total, lvm.used, lvm.avail, lvm.storage_type.as_str()),
            (
                Some(100_000_000_000),
                Some(40_000_000_000),
                Some(60_000_000_000),
                "lvmthin"
            )
        );
        let json = serde_json::to_value(lvm).unwrap();
        assert_eq!(json["type"], "lvmthin");
    }

    #[test]
    fn malformed_pools_name_the_endpoint_and_field() {
        for (answer, expected) in [
            (
                json!([{"storage": "x", "used": "lots"}]),
                "field `used` of entry 0 is a string (\"lots\")",
            ),
            (
                json!([{"storage": "x", "shared": 2}]),
                "field `shared` of entry 0 is a number (2), not a boolean",
            ),
            (json!([{"type": "dir"}]), "entry 0 has no `storage` field"),
            (
                json!({"storage": "x"}),
                "field `data` is an object, not a list",
            ),
        ] {
            let fake = FakePve::new(move |_, _, _| fake::ok(answer.clone()));
            let m = failed(storage(&fake).pools());
            assert!(
                m.starts_with(&format!("GET /nodes/pve1/storage: {expected}")),
                "{m}"
            );
        }
    }

    #[test]
    fn content_reads_volumes_of_the_named_pool_only() {
        let fake = FakePve::new(|_, path, _| match path {
            "/nodes/pve1/storage/local/content" => fake::ok(json!([
                {"volid": "local:iso/debian-12.iso", "content": "iso", "format": "iso",
                 "size": 658505728, "ctime": 1700000000},
                {"volid": "local:backup/vzdump-lxc-101.tar.zst", "content": "backup",
                 "format": "tzst", "size": "1024", "vmid": "101"}
            ])),
            "/nodes/pve1/storage/other/content" => fake::ok(json!([{"volid": "local:iso/x.iso"}])),
            _ => fake::fail(500, "storage 'nope' does not exist"),
        });
        let s = storage(&fake);
        let volumes = s.content("local").unwrap();
        assert_eq!(volumes[0].volid, "local:backup/vzdump-lxc-101.tar.zst");
        assert_eq!(
            (volumes[0].vmid, volumes[0].size, volumes[0].ctime),
            (Some(101), Some(1024), None)
        );
        assert_eq!(volumes[1].ctime, Some(1_700_000_000));
        assert!(failed(s.content("other")).contains("does not belong to storage \"other\""));
        assert!(matches!(s.content("nope"), Err(Error::NotFound(_))));
        assert!(matches!(s.content(" "), Err(Error::InvalidArguments(_))));
    }

    #[test]
    fn all_nodes_is_refused_for_storage() {
        let fake = FakePve::new(|_, _, _| fake::ok(json!([])));
        assert!(matches!(
            Storage::new(&fake, &globals("*"), &no_warn, |_| {}, "T".into()),
            Err(Error::InvalidArguments(_))
        ));
    }
}
