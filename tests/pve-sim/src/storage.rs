//! Storage pools: `storage.cfg` entries, per-node usage and the volumes on them.

use serde::Serialize;

use crate::guest::{Guest, GuestKind};
use crate::seed::{StorageSeed, VolumeSeed};

/// Config keys whose values are disks of a guest of each kind.
fn is_disk_key(kind: GuestKind, key: &str) -> bool {
    let indexed = |prefixes: &[&str]| {
        prefixes.iter().any(|prefix| {
            key.strip_prefix(prefix).is_some_and(|digits| {
                !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
            })
        })
    };
    match kind {
        GuestKind::Qemu => {
            matches!(key, "efidisk0" | "tpmstate0") || indexed(&["scsi", "virtio", "sata", "ide"])
        }
        GuestKind::Lxc => key == "rootfs" || indexed(&["mp"]),
    }
}

/// One storage pool and its usage on each node.
#[derive(Debug)]
pub(crate) struct Storage {
    /// What `storage.cfg` says about it.
    pub seed: StorageSeed,
    /// Bytes used, per node index (a shared pool uses index 0 for every node).
    pub used: Vec<u64>,
}

/// One row of `GET /nodes/{node}/storage`.
#[derive(Serialize)]
pub(crate) struct NodeStorageEntry<'a> {
    storage: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    content: &'a str,
    shared: u8,
    enabled: u8,
    active: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    total: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    used: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    avail: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    used_fraction: Option<f64>,
}

/// One row of `GET /nodes/{node}/storage/{storage}/content`.
#[derive(Serialize)]
pub(crate) struct ContentEntry {
    volid: String,
    content: &'static str,
    format: String,
    size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    vmid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ctime: Option<u64>,
}

impl ContentEntry {
    /// The guest the volume belongs to.
    pub(crate) fn vmid(&self) -> Option<u32> {
        self.vmid
    }
}

impl Storage {
    /// The pool a seed describes, on a cluster of `nodes` nodes.
    pub(crate) fn new(seed: StorageSeed, nodes: usize) -> Storage {
        let used = vec![seed.used; if seed.shared { 1 } else { nodes.max(1) }];
        Storage { seed, used }
    }

    /// The id, e.g. `local-lvm`.
    pub(crate) fn id(&self) -> &str {
        &self.seed.id
    }

    fn slot(&self, node: usize) -> usize {
        if self.seed.shared { 0 } else { node }
    }

    /// Bytes used on `node`.
    pub(crate) fn used(&self, node: usize) -> u64 {
        self.used.get(self.slot(node)).copied().unwrap_or(0)
    }

    /// Sets the bytes used on `node` (on every node for a shared pool), at most the capacity.
    pub(crate) fn set_used(&mut self, node: usize, used: u64) {
        let slot = self.slot(node);
        let total = self.seed.total;
        if let Some(entry) = self.used.get_mut(slot) {
            *entry = used.min(total);
        }
    }

    /// The `GET /storage` row: `storage.cfg` as PVE returns it.
    pub(crate) fn config_entry(&self) -> serde_json::Value {
        let seed = &self.seed;
        let mut row = serde_json::json!({
            "storage": seed.id,
            "type": seed.kind,
            "content": seed.content,
        });
        if let serde_json::Value::Object(map) = &mut row {
            if let Some(path) = &seed.path {
                map.insert("path".to_string(), path.as_str().into());
            }
            if seed.shared {
                map.insert("shared".to_string(), 1.into());
            }
            if !seed.enabled {
                map.insert("disable".to_string(), 1.into());
            }
            match seed.kind.as_str() {
                "lvmthin" => {
                    map.insert("thinpool".to_string(), "data".into());
                    map.insert("vgname".to_string(), "pve".into());
                }
                "nfs" => {
                    map.insert("server".to_string(), "10.0.0.5".into());
                    map.insert("export".to_string(), format!("/srv/{}", seed.id).into());
                    map.insert("options".to_string(), "vers=4.2".into());
                }
                _ => {}
            }
            map.insert(
                "digest".to_string(),
                "5b1c2a3f9e0d4c7b8a6f1e2d3c4b5a69788f7e6d".into(),
            );
        }
        row
    }

    /// The `GET /nodes/{node}/storage` row on `node`.
    pub(crate) fn node_entry(&self, node: usize) -> NodeStorageEntry<'_> {
        let seed = &self.seed;
        let enabled = seed.enabled;
        let used = self.used(node);
        #[allow(clippy::cast_precision_loss)] // byte counts far below 2^52
        let fraction = used as f64 / seed.total.max(1) as f64;
        NodeStorageEntry {
            storage: &seed.id,
            kind: &seed.kind,
            content: &seed.content,
            shared: u8::from(seed.shared),
            enabled: u8::from(enabled),
            active: u8::from(enabled),
            total: enabled.then_some(seed.total),
            used: enabled.then_some(used),
            avail: enabled.then_some(seed.total - used),
            used_fraction: enabled.then_some(fraction),
        }
    }

    /// Whether the pool holds `content` (`iso`, `images`, …).
    pub(crate) fn holds(&self, content: &str) -> bool {
        self.seed.content.split(',').any(|c| c == content)
    }

    /// The volumes on this pool as seen from `node`: seeded files, then the disks of the guests
    /// that `on_node` accepts (all nodes' guests for a shared pool), optionally of one type.
    pub(crate) fn content<'a>(
        &self,
        guests: impl Iterator<Item = &'a Guest>,
        node: usize,
        filter: Option<&str>,
    ) -> Vec<ContentEntry> {
        let id = &self.seed.id;
        let wanted = |content: &str| filter.is_none_or(|f| f == content);
        let mut rows: Vec<ContentEntry> = self
            .seed
            .volumes
            .iter()
            .filter(|v| wanted(&v.content))
            .map(|v: &VolumeSeed| ContentEntry {
                volid: format!("{id}:{}", v.volume),
                content: content_name(&v.content),
                format: v.format.clone(),
                size: v.size,
                vmid: v.vmid,
                ctime: Some(v.ctime),
            })
            .collect();
        let prefix = format!("{id}:");
        for guest in guests {
            if !self.seed.shared && guest.node != node {
                continue;
            }
            let content = match guest.kind {
                GuestKind::Qemu => "images",
                GuestKind::Lxc => "rootdir",
            };
            if !self.holds(content) || !wanted(content) {
                continue;
            }
            for (key, value) in &guest.config {
                if !is_disk_key(guest.kind, key) || value.contains("media=cdrom") {
                    continue;
                }
                let Some(volume) = value
                    .split(',')
                    .next()
                    .and_then(|v| v.strip_prefix(&prefix))
                else {
                    continue;
                };
                rows.push(ContentEntry {
                    volid: format!("{prefix}{volume}"),
                    content,
                    format: "raw".to_string(),
                    size: crate::guest::size_option(value).unwrap_or(0),
                    vmid: Some(guest.vmid),
                    ctime: None,
                });
            }
        }
        rows
    }
}

/// The static name of a content type (unknown types are listed as `iso`).
fn content_name(content: &str) -> &'static str {
    match content {
        "vztmpl" => "vztmpl",
        "backup" => "backup",
        "images" => "images",
        "rootdir" => "rootdir",
        "snippets" => "snippets",
        _ => "iso",
    }
}
