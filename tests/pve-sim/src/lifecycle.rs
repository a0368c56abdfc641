//! Templates, clones and snapshots of guests, with PVE 8's checks and messages
//! (`PVE::API2::Qemu`, `PVE::API2::LXC`, `PVE::API2::LXC::Snapshot`).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::{Api, ApiError, Params, Reply, data, parse_bool, parse_id};
use crate::auth::{Principal, unix_now};
use crate::guest::{self, Guest, GuestKind};
use crate::tasks::{Task, TaskAction, Upid};

/// Parameters of `POST …/qemu/{vmid}/clone`.
const QEMU_CLONE_PARAMS: &[&str] = &[
    "bwlimit",
    "description",
    "format",
    "full",
    "name",
    "newid",
    "node",
    "pool",
    "snapname",
    "storage",
    "target",
    "vmid",
];

/// Parameters of `POST …/lxc/{vmid}/clone`.
const LXC_CLONE_PARAMS: &[&str] = &[
    "bwlimit",
    "description",
    "full",
    "hostname",
    "newid",
    "node",
    "pool",
    "snapname",
    "storage",
    "target",
    "vmid",
];

/// Parameters of `POST …/snapshot` (`vmstate` is qemu only).
const SNAPSHOT_PARAMS: &[&str] = &["description", "node", "snapname", "vmid"];

/// Rejects parameters outside `allowed`, as PVE's `additionalProperties => 0` does.
fn only(params: &Params, allowed: &[&str]) -> Result<(), ApiError> {
    let errors: BTreeMap<String, String> = params
        .0
        .keys()
        .filter(|key| !allowed.contains(&key.as_str()))
        .map(|key| {
            (
                key.clone(),
                "property is not defined in schema and the schema does not allow additional properties"
                    .to_string(),
            )
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::parameters(errors))
    }
}

/// PVE's `pve-snapshot-name` format: a letter, then letters, digits, `_` or `-`, at most 40.
pub(super) fn check_snapname(name: &str) -> Result<(), ApiError> {
    let mut chars = name.chars();
    let valid = name.len() <= 40
        && chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if valid {
        Ok(())
    } else {
        Err(ApiError::parameter(
            "snapname",
            format!("invalid format - invalid configuration ID '{name}'"),
        ))
    }
}

/// Whether `vm` may become a template; the error is PVE's.
pub(super) fn check_template(vm: &Guest) -> Result<(), String> {
    let (label, running) = match vm.kind {
        GuestKind::Qemu => ("VM", "you can't convert a VM to template if VM is running"),
        GuestKind::Lxc => (
            "CT",
            "you can't convert a CT to template if the CT is running",
        ),
    };
    if !vm.snapshots.is_empty() {
        return Err(format!(
            "unable to create template, because {label} contains snapshots"
        ));
    }
    if vm.is_template() {
        return Err("you can't convert a template to a template".to_string());
    }
    if vm.is_running() {
        return Err(running.to_string());
    }
    Ok(())
}

/// One row of `GET …/snapshot`.
#[derive(Serialize)]
struct SnapshotEntry<'a> {
    name: &'a str,
    description: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    snaptime: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    vmstate: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    running: Option<u8>,
}

impl Api {
    /// `POST …/{qemu|lxc}/{vmid}/template`. Checked at once (500); a VM converts in a
    /// `qmtemplate` task, a container at once (PVE answers `null` and runs `vztemplate` in the
    /// background, so a finished task is recorded).
    pub(super) fn template(
        &mut self,
        who: &Principal,
        node: usize,
        vmid: u32,
    ) -> Result<Reply, ApiError> {
        let vm = self.vm(vmid)?;
        check_template(vm).map_err(ApiError::server)?;
        let kind = vm.kind;
        if kind == GuestKind::Qemu {
            return self.spawn_task(who, node, vmid, kind, TaskAction::Template);
        }
        if let Some(ct) = self.guests.get_mut(&vmid) {
            ct.make_template();
        }
        let now = unix_now();
        let upid = Upid {
            node: self.nodes[node].name.clone(),
            pid: self.next_pid(),
            pstart: self.pstart(),
            starttime: now,
            kind: "vztemplate".to_string(),
            id: vmid.to_string(),
            user: who.user().to_string(),
        };
        let mut task = Task::finished(upid, "OK".to_string(), now);
        task.vmid = vmid;
        self.nodes[node].tasks.push(task);
        data(&Value::Null)
    }

    /// `POST …/{qemu|lxc}/{vmid}/clone`: checks as PVE does before forking, reserves `newid`
    /// at once, and returns a `qmclone`/`vzclone` UPID (on the source's node, with the
    /// source's vmid); the copy appears when that task is first seen stopped.
    pub(super) fn clone_guest(
        &mut self,
        who: &Principal,
        node: usize,
        vmid: u32,
        params: &Params,
    ) -> Result<Reply, ApiError> {
        let source = self.vm(vmid)?;
        let kind = source.kind;
        let (allowed, name_key) = match kind {
            GuestKind::Qemu => (QEMU_CLONE_PARAMS, "name"),
            GuestKind::Lxc => (LXC_CLONE_PARAMS, "hostname"),
        };
        only(params, allowed)?;
        let newid = parse_id("newid", params.require("newid")?)?;
        if let Some(name) = params.get(name_key) {
            guest::validate_config_value(kind, name_key, name)
                .map_err(|problem| ApiError::parameter(name_key, problem))?;
        }
        let full = params
            .get("full")
            .map(|v| parse_bool("full", v))
            .transpose()?;
        let target = match params.get("target") {
            None | Some("localhost") => None,
            Some(target) if target == self.nodes[node].name => None,
            Some(target) => Some(
                self.node_index(target)
                    .ok_or_else(|| ApiError::server(format!("no such cluster node '{target}'")))?,
            ),
        };
        let storage = params.get("storage");
        if let Some(id) = storage {
            let pool = self
                .storages
                .iter()
                .find(|s| s.id() == id)
                .ok_or_else(|| ApiError::server(format!("storage '{id}' does not exist")))?;
            if !pool.seed.enabled {
                return Err(ApiError::server(format!("storage '{id}' is disabled")));
            }
            if target.is_some() && !pool.seed.shared {
                return Err(ApiError::server(format!(
                    "can't clone to non-shared storage '{id}'"
                )));
            }
        }
        let source = self.vm(vmid)?;
        // PVE's containers take the new config's lock first, so a taken newid fails first.
        if kind == GuestKind::Lxc {
            self.check_newid_free(kind, node, newid)?;
        }
        if let Some(snapname) = params.get("snapname")
            && source.snapshot(snapname).is_none()
        {
            return Err(ApiError::server(format!(
                "snapshot '{snapname}' does not exist"
            )));
        }
        let full = full.unwrap_or(!source.is_template());
        if storage.is_some() && !full {
            return Err(ApiError::server(
                "parameter 'storage' not allowed for linked clones",
            ));
        }
        if params.get("format").is_some() && !full {
            return Err(ApiError::server(
                "parameter 'format' not allowed for linked clones",
            ));
        }
        let mut shared = true;
        for (key, volume) in source.disk_volumes() {
            let pool = volume.split(':').next().unwrap_or_default();
            shared &= self
                .storages
                .iter()
                .any(|s| s.id() == pool && s.seed.shared);
            let base = volume
                .split(':')
                .nth(1)
                .is_some_and(|name| name.starts_with("base-") && !name.contains('/'));
            match kind {
                GuestKind::Lxc
                    if full && source.is_running() && params.get("snapname").is_none() =>
                {
                    return Err(ApiError::server(
                        "Full clone of a running container is only possible from a snapshot",
                    ));
                }
                GuestKind::Lxc if !full && !base => {
                    return Err(ApiError::server(format!(
                        "Linked clone feature for '{volume}' is not available"
                    )));
                }
                GuestKind::Qemu if !full && !base => {
                    return Err(ApiError::server(format!(
                        "Linked clone feature is not supported for '{volume}' ({key})"
                    )));
                }
                _ => {}
            }
        }
        if let Some(target) = target
            && !shared
        {
            let label = kind.label();
            return Err(ApiError::server(format!(
                "can't clone {label} to node '{}' ({label} uses local storage)",
                self.nodes[target].name
            )));
        }
        if kind == GuestKind::Qemu {
            self.check_newid_free(kind, node, newid)?;
        }
        let source = self.vm(vmid)?;
        let mut copy = source.clone_as(newid, target.unwrap_or(node), full, storage);
        match (kind, params.get(name_key)) {
            (_, Some(name)) => copy.rename(name),
            (GuestKind::Qemu, None) => {
                let old = source
                    .config
                    .get("name")
                    .cloned()
                    .unwrap_or_else(|| vmid.to_string());
                copy.rename(&format!("Copy-of-VM-{old}"));
            }
            (GuestKind::Lxc, None) => {}
        }
        if let Some(description) = params.get("description").filter(|d| !d.is_empty()) {
            copy.config
                .insert("description".to_string(), description.to_string());
        }
        self.reserved.insert(newid, target.unwrap_or(node));
        self.spawn_task(who, node, vmid, kind, TaskAction::Clone(Box::new(copy)))
    }

    /// Fails as PVE does when `newid` is taken by a guest or a pending create or clone.
    fn check_newid_free(&self, kind: GuestKind, node: usize, newid: u32) -> Result<(), ApiError> {
        let owner = self
            .guests
            .get(&newid)
            .map(|g| (g.kind.label(), g.node))
            .or_else(|| self.reserved.get(&newid).map(|n| (kind.label(), *n)));
        let Some((label, owner)) = owner else {
            return Ok(());
        };
        // qemu-server finds the config file on its own node; elsewhere pmxcfs refuses it.
        if kind == GuestKind::Qemu && owner == node {
            return Err(ApiError::server(format!(
                "unable to create VM {newid}: config file already exists"
            )));
        }
        Err(ApiError::server(format!(
            "{label} {newid} already exists on node '{}'",
            self.nodes[owner].name
        )))
    }

    /// `GET …/snapshot`: the snapshots, oldest first, then `current` (with the config
    /// `digest`, `running` and `parent`), as PVE lists them.
    pub(super) fn snapshot_list(&self, vmid: u32) -> Result<Reply, ApiError> {
        let vm = self.vm(vmid)?;
        let qemu = vm.kind == GuestKind::Qemu;
        let mut rows: Vec<SnapshotEntry<'_>> = vm
            .snapshots
            .iter()
            .map(|snap| SnapshotEntry {
                name: &snap.name,
                description: &snap.description,
                snaptime: Some(snap.snaptime),
                vmstate: qemu.then_some(u8::from(snap.vmstate)),
                parent: snap.parent.as_deref(),
                digest: None,
                running: None,
            })
            .collect();
        rows.push(SnapshotEntry {
            name: "current",
            description: "You are here!",
            snaptime: None,
            vmstate: None,
            parent: vm.config.get("parent").map(String::as_str),
            digest: Some(vm.digest()),
            running: Some(u8::from(vm.is_running())),
        });
        data(&rows)
    }

    /// `POST …/snapshot`: `snapname` (not `current`), `description`, `vmstate` (qemu). The
    /// `qmsnapshot`/`vzsnapshot` task fails with `snapshot name 'x' already used` for a
    /// duplicate, as PVE checks that in the worker.
    pub(super) fn snapshot_create(
        &mut self,
        who: &Principal,
        node: usize,
        vmid: u32,
        params: &Params,
    ) -> Result<Reply, ApiError> {
        let kind = self.vm(vmid)?.kind;
        let vmstate = match kind {
            GuestKind::Qemu => {
                let mut allowed = SNAPSHOT_PARAMS.to_vec();
                allowed.push("vmstate");
                only(params, &allowed)?;
                params
                    .get("vmstate")
                    .map_or(Ok(false), |v| parse_bool("vmstate", v))?
            }
            GuestKind::Lxc => {
                only(params, SNAPSHOT_PARAMS)?;
                false
            }
        };
        let name = params.require("snapname")?;
        check_snapname(name)?;
        let reserved = match kind {
            GuestKind::Qemu => name == "current" || name.eq_ignore_ascii_case("pending"),
            GuestKind::Lxc => name == "current" || name == "vzdump",
        };
        if reserved {
            return Err(ApiError::server(format!(
                "unable to use snapshot name '{name}' (reserved name)"
            )));
        }
        let action = TaskAction::Snapshot {
            name: name.to_string(),
            description: params.get("description").unwrap_or_default().to_string(),
            vmstate,
        };
        self.spawn_task(who, node, vmid, kind, action)
    }
}
