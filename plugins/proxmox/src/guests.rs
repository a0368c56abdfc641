//! `proxmox/guests`: desired guests. One definition declares many VMs and containers; `converge`
//! makes the live Proxmox match them in dependency order (Phoenix's state machine: ensure
//! defined by clone or create → apply only the config fields that differ → start → wait for the
//! guest agent's address → snapshot), and its plan says what it would do without writing.

use crate::cluster::{self, GuestResource as Listed};
use crate::encode;
use crate::fields::{self, Entry};
use crate::lxc::{self, Containers};
use crate::names;
use crate::pve::{Pve, Transport};
use crate::vm::{self, ALL_NODES, Fleet, Vm, VmGlobals};
use orch_plugin_sdk::{Error, error};
use orch_plugin_sdk::{
    HttpResponse, JsonSchema, PlannedAction, PlannedChange, Result, Value, json,
};
use serde::{Deserialize, Serialize};
use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap, HashSet};
use std::time::Duration;

/// What kind of guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A QEMU virtual machine.
    Qemu,
    /// An LXC container.
    Lxc,
}

impl Kind {
    /// `qemu` or `lxc`, as in API paths.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Qemu => "qemu",
            Kind::Lxc => "lxc",
        }
    }

    /// The config key holding the guest's name.
    fn name_key(self) -> &'static str {
        match self {
            Kind::Qemu => "name",
            Kind::Lxc => "hostname",
        }
    }
}

/// The template a guest is cloned from: its vmid, or its name.
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum TemplateRef {
    /// The template's vmid (e.g. 9000).
    Vmid(u64),
    /// The template's name (e.g. `debian-12-cloud`).
    Name(String),
}

fn yes() -> bool {
    true
}

/// One declared guest.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GuestSpec {
    /// The guest's name (VM name or container hostname); also its `guest` resource's name.
    pub name: String,
    /// `qemu` (a VM) or `lxc` (a container).
    pub kind: Kind,
    /// Its vmid; this is how the live guest is found.
    #[schemars(range(min = 100))]
    pub vmid: u64,
    /// Template (name or vmid) to clone it from when it does not exist.
    #[serde(default)]
    pub clone: Option<TemplateRef>,
    /// lxc only: the template volume to create it from without clone
    /// (`local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst`).
    #[serde(default)]
    pub ostemplate: Option<String>,
    /// lxc only: the root disk when created from ostemplate (`local-lvm:8`).
    #[serde(default)]
    pub rootfs: Option<String>,
    /// CPU cores.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub cores: Option<u64>,
    /// Memory in MiB.
    #[serde(default)]
    #[schemars(range(min = 16))]
    pub memory: Option<u64>,
    /// First network interface (`virtio,bridge=vmbr0` / `name=eth0,bridge=vmbr0,ip=dhcp`);
    /// compared without the MAC address the node assigned, which is kept on update.
    #[serde(default)]
    pub net0: Option<String>,
    /// Proxmox tags, compared as a set.
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    /// Keep it running (default true); a stopped guest is started, a running one never stopped.
    #[serde(default = "yes")]
    pub start: bool,
    /// qemu only: after starting, wait (bounded, 60 s) for the guest agent's address.
    #[serde(default)]
    pub wait_for_agent: bool,
    /// A snapshot to take once, when the guest has none of that name.
    #[serde(default)]
    pub snapshot: Option<String>,
    /// Names of declared guests converged before this one.
    #[serde(default)]
    pub depends_on: Vec<String>,
}

/// Global arguments of `proxmox/guests`: the connection of `proxmox/vm` plus the declaration.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GuestsGlobals {
    /// Base URL of the node's API, e.g. `https://10.0.0.4:8006`.
    pub api_url: String,
    /// The node new guests are created on (one node; `*` is refused).
    pub node: String,
    /// Login ticket: `${{ model.keebDev02.resource.node.node.attributes.ticket }}`.
    #[serde(default)]
    pub ticket: Option<String>,
    /// CSRF token for writes: `${{ model.keebDev02.resource.node.node.attributes.csrfToken }}`.
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
    /// The declared guests.
    pub guests: Vec<GuestSpec>,
    /// Delete guests on the node that are not declared (templates never); converge then needs
    /// `allowDestroy: true`.
    #[serde(default)]
    pub prune: bool,
}

impl GuestsGlobals {
    /// The connection as `proxmox/vm` globals for `node`.
    pub fn connection(&self, node: &str) -> VmGlobals {
        VmGlobals {
            api_url: self.api_url.clone(),
            node: node.to_string(),
            ticket: self.ticket.clone(),
            csrf_token: self.csrf_token.clone(),
            api_token: self.api_token.clone(),
            insecure_tls: self.insecure_tls,
            fingerprint: self.fingerprint.clone(),
        }
    }
}

/// Arguments of `converge` (and of its plan).
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConvergeArgs {
    /// Allow deleting the undeclared guests `prune: true` plans to delete
    /// (`orch apply --allow-destroy`).
    #[serde(default)]
    pub allow_destroy: bool,
}

/// Attributes of a `guest` resource: the live result of converging one declared guest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GuestState {
    /// The declared name; also the resource's instance name.
    pub name: String,
    /// Its vmid.
    pub vmid: u64,
    /// `qemu` or `lxc`.
    pub kind: Kind,
    /// The node it lives on.
    pub node: String,
    /// `running`, `stopped`, … as Proxmox reports it.
    pub status: String,
    /// Its address (qemu: the guest agent's; lxc: its first usable interface address); null
    /// when stopped or unknown.
    pub ip: Option<String>,
    /// The `digest` of its config after converging.
    pub config_digest: Option<String>,
    /// The declared snapshot, once it exists.
    pub snapshot: Option<String>,
    /// When this was observed (RFC 3339, UTC).
    pub timestamp: String,
}

/// What `converge` returns: guest names per thing done.
#[derive(Debug, Default, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConvergeSummary {
    /// Guests cloned or created.
    pub created: Vec<String>,
    /// Existing guests whose config was changed.
    pub updated: Vec<String>,
    /// Guests started.
    pub started: Vec<String>,
    /// Guests snapshotted.
    pub snapshotted: Vec<String>,
    /// Undeclared guests deleted (`prune`).
    pub deleted: Vec<String>,
    /// Declared guests that already matched.
    pub unchanged: Vec<String>,
    /// Guests on the node that are not declared (and not deleted).
    pub undeclared: Vec<String>,
    /// True when nothing was changed because the call was a dry run.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
}

/// Checks the declaration and returns the guests in converge order: dependencies first, ties by
/// declaration order. Errors name the guest's index and field.
pub fn validate(guests: &[GuestSpec]) -> Result<Vec<usize>> {
    let mut by_name: HashMap<&str, usize> = HashMap::with_capacity(guests.len());
    let mut by_vmid: HashMap<u64, usize> = HashMap::with_capacity(guests.len());
    for (i, g) in guests.iter().enumerate() {
        let at = |field: &str| format!("guests[{i}].{field}");
        if g.name.trim().is_empty() || g.name.trim() != g.name {
            return Err(error::invalid(format!(
                "{}: {:?} is not a guest name; give a name without surrounding spaces",
                at("name"),
                g.name
            )));
        }
        if let Some(j) = by_name.insert(&g.name, i) {
            return Err(error::invalid(format!(
                "{}: {:?} is also the name of guests[{j}]; names identify guests, so give each its own",
                at("name"),
                g.name
            )));
        }
        if g.vmid < 100 {
            return Err(error::invalid(format!(
                "{}: {} is below 100, the lowest vmid Proxmox accepts",
                at("vmid"),
                g.vmid
            )));
        }
        if let Some(j) = by_vmid.insert(g.vmid, i) {
            return Err(error::invalid(format!(
                "{}: {} is also the vmid of guests[{j}] ({:?}); give each guest its own vmid",
                at("vmid"),
                g.vmid,
                guests[j].name
            )));
        }
        check_source(g, &at)?;
        if g.kind == Kind::Lxc && g.wait_for_agent {
            return Err(error::invalid(format!(
                "{}: only qemu guests have a guest agent; remove it from lxc guest {:?}",
                at("waitForAgent"),
                g.name
            )));
        }
        if g.cores == Some(0) {
            return Err(error::invalid(format!(
                "{}: must be at least 1",
                at("cores")
            )));
        }
        if g.memory.is_some_and(|m| m < 16) {
            return Err(error::invalid(format!(
                "{}: must be at least 16 (MiB)",
                at("memory")
            )));
        }
        if let Some(snap) = &g.snapshot {
            let valid = snap.starts_with(|c: char| c.is_ascii_alphabetic())
                && snap
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                && snap.len() <= 40
                && snap != "current";
            if !valid {
                return Err(error::invalid(format!(
                    "{}: {snap:?} is not a Proxmox snapshot name (a letter, then letters, digits, _ or -; not `current`)",
                    at("snapshot")
                )));
            }
        }
        for (t, tag) in g.tags.iter().flatten().enumerate() {
            let valid = !tag.is_empty()
                && tag
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-+.".contains(c));
            if !valid {
                return Err(error::invalid(format!(
                    "{}: {tag:?} is not a Proxmox tag (letters, digits, _ - + .)",
                    at(&format!("tags[{t}]"))
                )));
            }
        }
    }
    let mut deps: Vec<Vec<usize>> = Vec::with_capacity(guests.len());
    for (i, g) in guests.iter().enumerate() {
        let mut mine = Vec::with_capacity(g.depends_on.len());
        for (d, name) in g.depends_on.iter().enumerate() {
            let Some(&j) = by_name.get(name.as_str()) else {
                let close = names::close_names(name, guests.iter().map(|g| g.name.as_str()), 3);
                let hint = if close.is_empty() {
                    String::new()
                } else {
                    format!(" (close: {})", close.join(", "))
                };
                return Err(error::invalid(format!(
                    "guests[{i}].dependsOn[{d}]: {name:?} is not a declared guest{hint}"
                )));
            };
            mine.push(j);
        }
        deps.push(mine);
    }
    order(guests, &deps)
}

/// Checks how a guest that does not exist would be made.
fn check_source(g: &GuestSpec, at: &dyn Fn(&str) -> String) -> Result<()> {
    if g.clone.is_some() && g.ostemplate.is_some() {
        return Err(error::invalid(format!(
            "{}: guest {:?} gives both clone and ostemplate; keep one",
            at("ostemplate"),
            g.name
        )));
    }
    if let Some(TemplateRef::Name(n)) = &g.clone
        && n.trim().is_empty()
    {
        return Err(error::invalid(format!(
            "{}: empty; give a template's name or vmid",
            at("clone")
        )));
    }
    match g.kind {
        Kind::Qemu if g.ostemplate.is_some() || g.rootfs.is_some() => Err(error::invalid(format!(
            "{}: only lxc guests are created from an ostemplate and rootfs; qemu guest {:?} is cloned (clone) or created empty",
            at(if g.ostemplate.is_some() {
                "ostemplate"
            } else {
                "rootfs"
            }),
            g.name
        ))),
        Kind::Lxc if g.clone.is_none() && g.ostemplate.is_none() => Err(error::invalid(format!(
            "{}: lxc guest {:?} needs clone (a template's name or vmid) or ostemplate (e.g. local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst) to be created",
            at("ostemplate"),
            g.name
        ))),
        _ => Ok(()),
    }
}

/// Topological order (Kahn's algorithm, smallest declaration index first); a cycle is an error
/// naming the loop `a → b → a` (read "a depends on b").
fn order(guests: &[GuestSpec], deps: &[Vec<usize>]) -> Result<Vec<usize>> {
    let n = guests.len();
    let mut waiting: Vec<usize> = deps.iter().map(Vec::len).collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, mine) in deps.iter().enumerate() {
        for &j in mine {
            dependents[j].push(i);
        }
    }
    let mut ready: BinaryHeap<Reverse<usize>> =
        (0..n).filter(|&i| waiting[i] == 0).map(Reverse).collect();
    let mut out = Vec::with_capacity(n);
    while let Some(Reverse(i)) = ready.pop() {
        out.push(i);
        for &k in &dependents[i] {
            waiting[k] -= 1;
            if waiting[k] == 0 {
                ready.push(Reverse(k));
            }
        }
    }
    if out.len() == n {
        return Ok(out);
    }
    // Every guest left waits for another guest left: follow the first such dependency from the
    // first guest left until a guest repeats; that stretch is the loop.
    let start = (0..n).find(|&i| waiting[i] > 0).unwrap_or(0);
    let mut path = vec![start];
    let mut at = start;
    loop {
        let next = deps[at]
            .iter()
            .copied()
            .find(|&j| waiting[j] > 0)
            .unwrap_or(start);
        if let Some(pos) = path.iter().position(|&p| p == next) {
            let mut cycle: Vec<&str> = path[pos..]
                .iter()
                .map(|&i| guests[i].name.as_str())
                .collect();
            cycle.push(&guests[next].name);
            return Err(error::invalid(format!(
                "guests[{}].dependsOn: the guests depend on each other in a loop: {}; remove one of these dependencies",
                path[pos],
                cycle.join(" → ")
            )));
        }
        path.push(next);
        at = next;
    }
}

/// A declared guest's live side, as read before converging.
#[derive(Clone, Debug)]
struct Existing {
    node: String,
    status: String,
    digest: Option<String>,
    /// Config fields that differ from the declaration.
    diffs: Vec<Diff>,
    /// Snapshot names (only read when a snapshot is declared).
    snapshots: Vec<String>,
}

/// One config field that differs.
#[derive(Clone, Debug, PartialEq)]
struct Diff {
    key: &'static str,
    before: Option<Value>,
    after: Value,
    /// The value sent in `PUT …/config`.
    form: String,
}

/// How a missing guest is made.
#[derive(Clone, Debug)]
enum Creation {
    /// `POST /nodes/{node}/{kind}/{vmid}/clone` of a template.
    Clone {
        vmid: u64,
        name: String,
        node: String,
    },
    /// `POST /nodes/{node}/{kind}`.
    Create,
}

/// What converge does for one declared guest.
#[derive(Clone, Debug)]
struct Step {
    index: usize,
    existing: Option<Existing>,
    creation: Option<Creation>,
    start: bool,
    snapshot: Option<String>,
}

/// A guest on the node that is not declared.
#[derive(Clone, Debug)]
struct Undeclared {
    name: String,
    vmid: u64,
    kind: Kind,
    node: String,
    status: String,
}

/// Everything converge would do, in order.
#[derive(Clone, Debug)]
pub struct Plan {
    steps: Vec<Step>,
    undeclared: Vec<Undeclared>,
    prune: bool,
}

fn spec_fields(g: &GuestSpec) -> Vec<(&'static str, Value)> {
    let mut fields = vec![("vmid", json!(g.vmid))];
    if let Some(c) = g.cores {
        fields.push(("cores", json!(c)));
    }
    if let Some(m) = g.memory {
        fields.push(("memory", json!(m)));
    }
    if let Some(n) = &g.net0 {
        fields.push(("net0", json!(n)));
    }
    if let Some(t) = &g.tags {
        fields.push(("tags", json!(t)));
    }
    fields
}

impl Plan {
    /// The typed plan, in converge order.
    pub fn changes(&self, guests: &[GuestSpec]) -> Vec<PlannedChange> {
        let mut out = Vec::new();
        for step in &self.steps {
            let g = &guests[step.index];
            let label = format!("{} {} (vmid {})", g.kind.as_str(), g.name, g.vmid);
            let mut changed = false;
            if let Some(creation) = &step.creation {
                let how = match creation {
                    Creation::Clone { vmid, name, .. } => {
                        format!("as a clone of {name} (vmid {vmid})")
                    }
                    Creation::Create if g.kind == Kind::Lxc => format!(
                        "from {}",
                        g.ostemplate.as_deref().unwrap_or("its ostemplate")
                    ),
                    Creation::Create => "empty".to_string(),
                };
                let mut change = PlannedChange::new(
                    PlannedAction::Create,
                    "guest",
                    &g.name,
                    format!("create {label} {how}"),
                );
                for (key, value) in spec_fields(g) {
                    change = change.field(&format!("/{key}"), None, Some(value));
                }
                out.push(change);
                changed = true;
            }
            if let Some(existing) = &step.existing
                && !existing.diffs.is_empty()
            {
                let keys: Vec<&str> = existing.diffs.iter().map(|d| d.key).collect();
                let mut change = PlannedChange::new(
                    PlannedAction::Update,
                    "guest",
                    &g.name,
                    format!("update {label}: {}", keys.join(", ")),
                );
                for d in &existing.diffs {
                    change = change.field(
                        &format!("/{}", d.key),
                        d.before.clone(),
                        Some(d.after.clone()),
                    );
                }
                out.push(change);
                changed = true;
            }
            if step.start {
                let wait = if g.wait_for_agent {
                    " and wait for its guest agent's address"
                } else {
                    ""
                };
                out.push(
                    PlannedChange::new(
                        PlannedAction::Start,
                        "guest",
                        &g.name,
                        format!("start {label}{wait}"),
                    )
                    .field(
                        "/status",
                        step.existing.as_ref().map(|e| json!(e.status)),
                        Some(json!("running")),
                    ),
                );
                changed = true;
            }
            if let Some(snap) = &step.snapshot {
                out.push(
                    PlannedChange::new(
                        PlannedAction::Update,
                        "guest",
                        &g.name,
                        format!("take snapshot {snap} of {label}"),
                    )
                    .field("/snapshot", None, Some(json!(snap))),
                );
                changed = true;
            }
            if !changed {
                out.push(PlannedChange::new(
                    PlannedAction::None,
                    "guest",
                    &g.name,
                    format!("{label} matches its declaration"),
                ));
            }
        }
        for u in &self.undeclared {
            let label = format!(
                "{} {} (vmid {}) on {}",
                u.kind.as_str(),
                u.name,
                u.vmid,
                u.node
            );
            out.push(if self.prune {
                let stop = if u.status == "running" {
                    "stop and "
                } else {
                    ""
                };
                PlannedChange::new(
                    PlannedAction::Delete,
                    "guest",
                    &u.name,
                    format!("{stop}delete undeclared {label} (prune; converge needs allowDestroy)"),
                )
            } else {
                PlannedChange::new(
                    PlannedAction::None,
                    "guest",
                    &u.name,
                    format!("{label}: not declared (left alone)"),
                )
            });
        }
        out
    }

    /// What a converge would report, without doing it (a dry run).
    pub fn summary(&self, guests: &[GuestSpec]) -> ConvergeSummary {
        let mut s = ConvergeSummary {
            dry_run: true,
            ..ConvergeSummary::default()
        };
        for step in &self.steps {
            let name = guests[step.index].name.clone();
            let updated = step.existing.as_ref().is_some_and(|e| !e.diffs.is_empty());
            if step.creation.is_some() {
                s.created.push(name.clone());
            }
            if updated {
                s.updated.push(name.clone());
            }
            if step.start {
                s.started.push(name.clone());
            }
            if step.snapshot.is_some() {
                s.snapshotted.push(name.clone());
            }
            if step.creation.is_none() && !updated && !step.start && step.snapshot.is_none() {
                s.unchanged.push(name);
            }
        }
        for u in &self.undeclared {
            if self.prune {
                s.deleted.push(u.name.clone());
            } else {
                s.undeclared.push(u.name.clone());
            }
        }
        s
    }
}

/// The part of a net0 value that is compared: its parts without the MAC address (qemu
/// `virtio=BC:…`, lxc `hwaddr=BC:…`) and without lxc's implied `type=veth`, sorted.
fn net_parts(value: &str, kind: Kind) -> BTreeSet<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .filter_map(|part| match part.split_once('=') {
            Some((k, _))
                if k.eq_ignore_ascii_case("hwaddr") || k.eq_ignore_ascii_case("macaddr") =>
            {
                None
            }
            Some(("type", "veth")) if kind == Kind::Lxc => None,
            Some((model, mac)) if kind == Kind::Qemu && is_mac(mac) => Some(model.to_string()),
            _ => Some(part.to_string()),
        })
        .collect()
}

fn is_mac(text: &str) -> bool {
    let parts: Vec<&str> = text.split(':').collect();
    parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The live MAC address of a net0 value, if any.
fn live_mac(value: &str, kind: Kind) -> Option<String> {
    value.split(',').map(str::trim).find_map(|part| {
        let (k, v) = part.split_once('=')?;
        let found = match kind {
            Kind::Lxc => k.eq_ignore_ascii_case("hwaddr"),
            Kind::Qemu => k.eq_ignore_ascii_case("macaddr") || is_mac(v),
        };
        found.then(|| v.to_string())
    })
}

/// The declared net0 with the live MAC kept (so updating a bridge does not change the MAC).
fn with_mac(declared: &str, live: Option<&str>, kind: Kind) -> String {
    let Some(mac) = live.and_then(|l| live_mac(l, kind)) else {
        return declared.to_string();
    };
    if live_mac(declared, kind).is_some() {
        return declared.to_string();
    }
    match kind {
        Kind::Lxc => format!("{declared},hwaddr={mac}"),
        Kind::Qemu => {
            let mut parts: Vec<String> = declared.split(',').map(String::from).collect();
            if let Some(first) = parts.first_mut()
                && !first.contains('=')
            {
                *first = format!("{first}={mac}");
                return parts.join(",");
            }
            format!("{declared},macaddr={mac}")
        }
    }
}

/// The declared fields that differ from a guest's config (`data` of `GET …/config`).
fn diff(g: &GuestSpec, config: &Entry) -> Result<Vec<Diff>> {
    let mut out = Vec::new();
    for (key, declared) in [("cores", g.cores), ("memory", g.memory)] {
        if let Some(want) = declared {
            let live = config.u64(key)?;
            if live != Some(want) {
                out.push(Diff {
                    key,
                    before: live.map(|v| json!(v)),
                    after: json!(want),
                    form: want.to_string(),
                });
            }
        }
    }
    if let Some(want) = &g.net0 {
        let live = config.str("net0")?;
        let same = live
            .as_deref()
            .is_some_and(|l| net_parts(l, g.kind) == net_parts(want, g.kind));
        if !same {
            out.push(Diff {
                key: "net0",
                before: live.as_ref().map(|l| json!(l)),
                after: json!(want),
                form: with_mac(want, live.as_deref(), g.kind),
            });
        }
    }
    if let Some(want) = &g.tags {
        let live = config.list("tags", &[';', ',', ' '])?;
        let live_set: BTreeSet<&str> = live.iter().map(String::as_str).collect();
        let want_set: BTreeSet<&str> = want.iter().map(String::as_str).collect();
        if live_set != want_set {
            out.push(Diff {
                key: "tags",
                before: config.raw("tags").map(|_| json!(live)),
                after: json!(want),
                form: want.join(";"),
            });
        }
    }
    Ok(out)
}

/// Requests in flight at once while reading configs and addresses.
const CONCURRENCY: u32 = 16;
/// Guests whose config is read as one batch.
const CHUNK: usize = 256;
/// How long `waitForAgent` asks the guest agent for an address after a start.
const AGENT_WAIT_SECS: u32 = 60;

/// The desired guests of one definition against one Proxmox.
pub struct Guests<'a> {
    pve: Pve<'a>,
    transport: &'a dyn Transport,
    globals: &'a GuestsGlobals,
    warn: &'a dyn Fn(&str),
    sleep: fn(Duration),
    node: String,
    timestamp: String,
    order: Vec<usize>,
}

fn guest_path(node: &str, kind: Kind, vmid: u64) -> String {
    format!(
        "/nodes/{}/{}/{vmid}",
        encode::path_segment(node),
        kind.as_str()
    )
}

impl<'a> Guests<'a> {
    /// Checks the declaration (before any request) and builds the client.
    pub fn new(
        transport: &'a dyn Transport,
        globals: &'a GuestsGlobals,
        warn: &'a dyn Fn(&str),
        sleep: fn(Duration),
        timestamp: String,
    ) -> Result<Self> {
        let order = validate(&globals.guests)?;
        let (pve, node) = vm::client(transport, &globals.connection(&globals.node), warn, sleep)?;
        if node == ALL_NODES {
            return Err(error::invalid(
                "globalArguments.node is \"*\"; proxmox/guests creates guests on one node, so name it (e.g. pve1)",
            ));
        }
        Ok(Guests {
            pve,
            transport,
            globals,
            warn,
            sleep,
            node,
            timestamp,
            order,
        })
    }

    fn spec(&self, index: usize) -> &GuestSpec {
        &self.globals.guests[index]
    }

    /// Every guest of the cluster (`GET /cluster/resources?type=vm`).
    fn listing(&self) -> Result<Vec<Listed>> {
        let path = "/cluster/resources?type=vm";
        let data = self.pve.get_data(path)?;
        let view = cluster::parse_resources(&format!("GET {path}"), &data, &self.timestamp)?;
        Ok(view.guests.into_iter().map(|(_, g)| g).collect())
    }

    /// Reads the live state and works out what converge would do; sends only GETs.
    pub fn plan(&self) -> Result<Plan> {
        let listed = self.listing()?;
        let by_vmid: HashMap<u64, &Listed> = listed.iter().map(|g| (g.vmid, g)).collect();
        let mut present: Vec<(usize, &Listed)> = Vec::new();
        for &i in &self.order {
            let g = self.spec(i);
            if let Some(live) = by_vmid.get(&g.vmid) {
                check_identity(i, g, live)?;
                present.push((i, live));
            } else if let Some(other) = listed.iter().find(|l| l.name == g.name) {
                return Err(Error::Conflict(format!(
                    "guests[{i}].vmid: {} does not exist, but {} {} is already named {:?} on {}; declare its vmid or rename one of them",
                    g.vmid, other.guest_type, other.vmid, g.name, other.node
                )));
            }
        }
        let mut existing: HashMap<usize, Existing> = HashMap::with_capacity(present.len());
        for chunk in present.chunks(CHUNK) {
            for (i, e) in self.read_existing(chunk)? {
                existing.insert(i, e);
            }
        }
        let mut steps = Vec::with_capacity(self.order.len());
        for &i in &self.order {
            let g = self.spec(i);
            let existing = existing.remove(&i);
            let creation = match &existing {
                Some(_) => None,
                None => Some(self.creation(i, g, &listed)?),
            };
            let running = existing.as_ref().is_some_and(|e| e.status == "running");
            let has_snapshot = existing.as_ref().is_some_and(|e| {
                g.snapshot
                    .as_ref()
                    .is_some_and(|s| e.snapshots.iter().any(|n| n == s))
            });
            steps.push(Step {
                index: i,
                start: g.start && !running,
                snapshot: g.snapshot.clone().filter(|_| !has_snapshot),
                existing,
                creation,
            });
        }
        let declared: HashSet<u64> = self.globals.guests.iter().map(|g| g.vmid).collect();
        let undeclared = listed
            .iter()
            .filter(|l| !l.template && l.node == self.node && !declared.contains(&l.vmid))
            .map(|l| {
                Ok(Undeclared {
                    name: l.name.clone(),
                    vmid: l.vmid,
                    kind: kind_of(&l.guest_type)?,
                    node: l.node.clone(),
                    status: l.status.clone(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Plan {
            steps,
            undeclared,
            prune: self.globals.prune,
        })
    }

    /// The template (or ostemplate) a missing guest is made from.
    fn creation(&self, i: usize, g: &GuestSpec, listed: &[Listed]) -> Result<Creation> {
        let Some(source) = &g.clone else {
            return Ok(Creation::Create);
        };
        let same_kind = |l: &&Listed| l.guest_type == g.kind.as_str();
        let found = match source {
            TemplateRef::Vmid(id) => listed.iter().filter(same_kind).find(|l| l.vmid == *id),
            TemplateRef::Name(name) => {
                let mut named = listed
                    .iter()
                    .filter(same_kind)
                    .filter(|l| l.template && &l.name == name);
                let first = named.next();
                if let (Some(a), Some(b)) = (first, named.next()) {
                    return Err(Error::Conflict(format!(
                        "guests[{i}].clone: {} templates are named {name:?} (vmids {} and {}); clone by vmid instead",
                        g.kind.as_str(),
                        a.vmid,
                        b.vmid
                    )));
                }
                first
            }
        };
        match found {
            Some(t) => Ok(Creation::Clone {
                vmid: t.vmid,
                name: t.name.clone(),
                node: t.node.clone(),
            }),
            None => {
                let templates: Vec<&str> = listed
                    .iter()
                    .filter(same_kind)
                    .filter(|l| l.template)
                    .map(|l| l.name.as_str())
                    .collect();
                let shown = match source {
                    TemplateRef::Vmid(id) => format!("vmid {id}"),
                    TemplateRef::Name(n) => format!("{n:?}"),
                };
                Err(Error::NotFound(format!(
                    "guests[{i}].clone: no {} template {shown} in the cluster to create {:?} from; {} templates: {}",
                    g.kind.as_str(),
                    g.name,
                    g.kind.as_str(),
                    if templates.is_empty() {
                        "none".to_string()
                    } else {
                        templates.join(", ")
                    }
                )))
            }
        }
    }

    /// Config (and snapshot list, when a snapshot is declared) of existing guests, one batch.
    fn read_existing(&self, present: &[(usize, &Listed)]) -> Result<Vec<(usize, Existing)>> {
        let mut requests = Vec::new();
        for (i, live) in present {
            let g = self.spec(*i);
            let path = guest_path(&live.node, g.kind, g.vmid);
            requests.push(self.pve.request("GET", &format!("{path}/config"), None)?);
            if g.snapshot.is_some() {
                requests.push(self.pve.request("GET", &format!("{path}/snapshot"), None)?);
            }
        }
        let expected = requests.len();
        let replies = self.pve.send_batch(requests, CONCURRENCY);
        if replies.len() != expected {
            return Err(error::failed(format!(
                "the host answered {} of {expected} config requests",
                replies.len()
            )));
        }
        let mut replies = replies.into_iter();
        let mut out = Vec::with_capacity(present.len());
        for (i, live) in present {
            let g = self.spec(*i);
            let path = guest_path(&live.node, g.kind, g.vmid);
            let what = format!("GET {path}/config");
            let data = self.data(&what, replies.next())?;
            let config = Entry::new(&what, &data, None)?;
            let diffs = diff(g, &config)?;
            let digest = config.str("digest")?;
            let snapshots = if g.snapshot.is_some() {
                let what = format!("GET {path}/snapshot");
                let data = self.data(&what, replies.next())?;
                snapshot_names(&what, &data)?
            } else {
                Vec::new()
            };
            out.push((
                *i,
                Existing {
                    node: live.node.clone(),
                    status: live.status.clone(),
                    digest,
                    diffs,
                    snapshots,
                },
            ));
        }
        Ok(out)
    }

    /// The `data` of one batch answer.
    fn data(&self, what: &str, reply: Option<Result<HttpResponse>>) -> Result<Value> {
        let response = reply
            .unwrap_or_else(|| Err(error::failed("the host answered fewer requests than sent")))?;
        let response = self.pve.check(what, response)?;
        fields::data(what, &response)
    }

    /// Carries out `plan`: per guest in order create, set config, start, snapshot; then prune.
    /// Returns the `guest` resources to write and the summary.
    pub fn apply(
        &self,
        plan: &Plan,
        allow_destroy: bool,
    ) -> Result<(Vec<GuestState>, ConvergeSummary)> {
        if plan.prune && !plan.undeclared.is_empty() && !allow_destroy {
            let names: Vec<String> = plan
                .undeclared
                .iter()
                .map(|u| format!("{} (vmid {})", u.name, u.vmid))
                .collect();
            return Err(error::invalid(format!(
                "refusing to converge: prune would delete {} undeclared guest(s) on {}: {}; pass allowDestroy: true (orch apply --allow-destroy) after checking them, or declare them, or set prune: false",
                names.len(),
                self.node,
                names.join(", ")
            )));
        }
        let mut summary = ConvergeSummary::default();
        let mut states = Vec::with_capacity(plan.steps.len());
        for step in &plan.steps {
            let state = self
                .apply_step(step, &mut summary)
                .map_err(|e| about(&self.spec(step.index).name, &summary, e))?;
            states.push(state);
        }
        for u in &plan.undeclared {
            if plan.prune {
                let path = guest_path(&u.node, u.kind, u.vmid);
                if u.status == "running" {
                    self.pve.write_and_wait(
                        &u.node,
                        "POST",
                        &format!("{path}/status/stop"),
                        Some(&[]),
                    )?;
                }
                self.pve.write_and_wait(&u.node, "DELETE", &path, None)?;
                summary.deleted.push(u.name.clone());
            } else {
                summary.undeclared.push(u.name.clone());
            }
        }
        self.observe_ips(&mut states)?;
        Ok((states, summary))
    }

    fn apply_step(&self, step: &Step, summary: &mut ConvergeSummary) -> Result<GuestState> {
        let g = self.spec(step.index);
        let (node, mut status, mut digest, mut diffs) = match &step.existing {
            Some(e) => (
                e.node.clone(),
                e.status.clone(),
                e.digest.clone(),
                e.diffs.clone(),
            ),
            None => (self.node.clone(), "stopped".to_string(), None, Vec::new()),
        };
        let path = guest_path(&node, g.kind, g.vmid);
        let mut changed = false;
        if let Some(creation) = &step.creation {
            self.create(g, creation)?;
            summary.created.push(g.name.clone());
            changed = true;
            if matches!(creation, Creation::Clone { .. }) {
                // A clone has its template's config: set what the declaration says differently.
                let what = format!("GET {path}/config");
                let data = self.pve.get_data(&format!("{path}/config"))?;
                let config = Entry::new(&what, &data, None)?;
                diffs = diff(g, &config)?;
                digest = config.str("digest")?;
            }
        }
        if !diffs.is_empty() {
            let mut form: Vec<(String, String)> = diffs
                .iter()
                .map(|d| (d.key.to_string(), d.form.clone()))
                .collect();
            if let Some(d) = &digest {
                form.push(("digest".into(), d.clone()));
            }
            self.pve
                .write_and_wait(&node, "PUT", &format!("{path}/config"), Some(&form))?;
            if step.creation.is_none() {
                summary.updated.push(g.name.clone());
            }
            changed = true;
        }
        let mut ip = None;
        if step.start {
            self.pve
                .write_and_wait(&node, "POST", &format!("{path}/status/start"), Some(&[]))?;
            status = "running".into();
            summary.started.push(g.name.clone());
            changed = true;
            if g.kind == Kind::Qemu && g.wait_for_agent {
                let fleet = Fleet::new(
                    self.transport,
                    &self.globals.connection(&node),
                    self.warn,
                    self.sleep,
                    self.timestamp.clone(),
                    false,
                )?;
                let vm = Vm {
                    vmid: g.vmid,
                    name: g.name.clone(),
                    status: status.clone(),
                };
                ip = fleet.wait_for_ip(&vm, AGENT_WAIT_SECS)?;
            }
        }
        if let Some(snap) = &step.snapshot {
            self.pve.write_and_wait(
                &node,
                "POST",
                &format!("{path}/snapshot"),
                Some(&[("snapname".to_string(), snap.clone())]),
            )?;
            summary.snapshotted.push(g.name.clone());
            changed = true;
        }
        if !changed {
            summary.unchanged.push(g.name.clone());
        } else if step.creation.is_some() || !diffs.is_empty() {
            // The digest the config has now.
            let what = format!("GET {path}/config");
            let data = self.pve.get_data(&format!("{path}/config"))?;
            digest = Entry::new(&what, &data, None)?.str("digest")?;
        }
        Ok(GuestState {
            name: g.name.clone(),
            vmid: g.vmid,
            kind: g.kind,
            node,
            status,
            ip,
            config_digest: digest,
            snapshot: g.snapshot.clone(),
            timestamp: self.timestamp.clone(),
        })
    }

    /// Clones or creates a missing guest and waits for the task.
    fn create(&self, g: &GuestSpec, creation: &Creation) -> Result<()> {
        match creation {
            Creation::Clone { vmid, node, .. } => {
                let mut form = vec![("newid".to_string(), g.vmid.to_string())];
                match g.kind {
                    Kind::Qemu => {
                        form.push(("name".into(), g.name.clone()));
                        form.push(("full".into(), "1".into()));
                    }
                    Kind::Lxc => form.push(("hostname".into(), g.name.clone())),
                }
                if *node != self.node {
                    form.push(("target".into(), self.node.clone()));
                }
                let path = format!("{}/clone", guest_path(node, g.kind, *vmid));
                self.pve.write_and_wait(node, "POST", &path, Some(&form))
            }
            Creation::Create => {
                let mut form = vec![
                    ("vmid".to_string(), g.vmid.to_string()),
                    (g.kind.name_key().to_string(), g.name.clone()),
                ];
                if let Some(t) = &g.ostemplate {
                    form.push(("ostemplate".into(), t.clone()));
                }
                if let Some(r) = &g.rootfs {
                    form.push(("rootfs".into(), r.clone()));
                }
                if let Some(c) = g.cores {
                    form.push(("cores".into(), c.to_string()));
                }
                if let Some(m) = g.memory {
                    form.push(("memory".into(), m.to_string()));
                }
                if let Some(n) = &g.net0 {
                    form.push(("net0".into(), n.clone()));
                }
                if let Some(t) = &g.tags {
                    form.push(("tags".into(), t.join(";")));
                }
                let path = format!(
                    "/nodes/{}/{}",
                    encode::path_segment(&self.node),
                    g.kind.as_str()
                );
                self.pve
                    .write_and_wait(&self.node, "POST", &path, Some(&form))
            }
        }
    }

    /// Asks every running guest without a known address for one, in one batch (qemu: the
    /// guest agent; lxc: its interfaces). A guest that cannot say keeps a null address.
    fn observe_ips(&self, states: &mut [GuestState]) -> Result<()> {
        let wanted: Vec<usize> = (0..states.len())
            .filter(|&i| states[i].status == "running" && states[i].ip.is_none())
            .collect();
        for chunk in wanted.chunks(CHUNK) {
            let mut requests = Vec::with_capacity(chunk.len());
            for &i in chunk {
                let s = &states[i];
                let tail = match s.kind {
                    Kind::Qemu => "agent/network-get-interfaces",
                    Kind::Lxc => "interfaces",
                };
                let path = format!("{}/{tail}", guest_path(&s.node, s.kind, s.vmid));
                requests.push(self.pve.request("GET", &path, None)?);
            }
            let expected = requests.len();
            let replies = self.pve.send_batch(requests, CONCURRENCY);
            if replies.len() != expected {
                return Err(error::failed(format!(
                    "the host answered {} of {expected} address requests",
                    replies.len()
                )));
            }
            for (&i, reply) in chunk.iter().zip(replies) {
                let s = &mut states[i];
                let globals = self.globals.connection(&s.node);
                s.ip = match s.kind {
                    Kind::Qemu => {
                        let fleet = Fleet::new(
                            self.transport,
                            &globals,
                            self.warn,
                            self.sleep,
                            self.timestamp.clone(),
                            false,
                        )?;
                        let vm = Vm {
                            vmid: s.vmid,
                            name: s.name.clone(),
                            status: s.status.clone(),
                        };
                        fleet.agent_ip_from(&vm, reply?)?
                    }
                    Kind::Lxc => {
                        let containers = Containers::new(
                            self.transport,
                            &globals,
                            self.warn,
                            self.sleep,
                            self.timestamp.clone(),
                            false,
                        )?;
                        let ct = lxc::Ct {
                            guest: Vm {
                                vmid: s.vmid,
                                name: s.name.clone(),
                                status: s.status.clone(),
                            },
                            node: s.node.clone(),
                            cpus: None,
                            maxmem: None,
                            tags: Vec::new(),
                        };
                        containers.read_interfaces(&ct, reply)?.into_iter().next()
                    }
                };
            }
        }
        Ok(())
    }
}

/// `e` (same variant) saying which guest failed and what was done before it.
fn about(name: &str, done: &ConvergeSummary, e: Error) -> Error {
    let before = if done.created.is_empty() && done.updated.is_empty() && done.started.is_empty() {
        "nothing was changed before it".to_string()
    } else {
        format!(
            "done before it: created [{}], updated [{}], started [{}]",
            done.created.join(", "),
            done.updated.join(", "),
            done.started.join(", ")
        )
    };
    let say = |m: String| format!("converging guest {name:?}: {m}; {before}");
    match e {
        Error::InvalidArguments(m) => Error::InvalidArguments(say(m)),
        Error::Denied(m) => Error::Denied(say(m)),
        Error::NotFound(m) => Error::NotFound(say(m)),
        Error::Conflict(m) => Error::Conflict(say(m)),
        Error::Transient(m) => Error::Transient(say(m)),
        Error::Failed(m) => Error::Failed(say(m)),
    }
}

/// `qemu`/`lxc` from the cluster list's `type`.
fn kind_of(text: &str) -> Result<Kind> {
    match text {
        "qemu" => Ok(Kind::Qemu),
        "lxc" => Ok(Kind::Lxc),
        other => Err(error::failed(format!(
            "GET /cluster/resources?type=vm: a guest of type {other:?}, neither qemu nor lxc"
        ))),
    }
}

/// The declared guest and the live guest with its vmid must be the same thing.
fn check_identity(i: usize, g: &GuestSpec, live: &Listed) -> Result<()> {
    if live.guest_type != g.kind.as_str() || live.template {
        let what = if live.template {
            "a template"
        } else {
            "a guest"
        };
        return Err(Error::Conflict(format!(
            "guests[{i}].vmid: {} is {what} of type {} named {:?} on {}, but {:?} declares a {} guest; change the declared vmid",
            g.vmid,
            live.guest_type,
            live.name,
            live.node,
            g.name,
            g.kind.as_str()
        )));
    }
    if live.name != g.name {
        return Err(Error::Conflict(format!(
            "guests[{i}].name: vmid {} is named {:?} on {}, not {:?}; rename it in Proxmox or declare its name (converge never renames a guest)",
            g.vmid, live.name, live.node, g.name
        )));
    }
    Ok(())
}

/// The snapshot names of `GET …/snapshot` (PVE lists the `current` state too; it is skipped).
fn snapshot_names(what: &str, data: &Value) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in fields::entries(what, data)? {
        let name = entry.req_str("name")?;
        if name != "current" {
            names.push(name);
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests;
