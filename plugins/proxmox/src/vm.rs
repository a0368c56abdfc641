//! `proxmox/vm`: the fleet model. Every VM on the node is one named `vm` resource, keyed by the
//! VM's name, so other models reach it as `model.fleet.resource.vm["calamity"].attributes.ip`.

use crate::agent::{self, AgentInterfaces};
use crate::encode;
use crate::names;
use crate::pve::{self, Auth, Pve, Transport};
use orch_plugin_sdk::{Error, HttpResponse, JsonSchema, Result, Value, error, json};
use serde::{Deserialize, Serialize};
use serde_json::Map;
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// Global arguments of `proxmox/vm`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VmGlobals {
    /// Base URL of the node's API, e.g. `https://10.0.0.4:8006`.
    pub api_url: String,
    /// The node the VMs live on, e.g. `keeb-dev-02`; `*` means every node of the cluster.
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
}

/// Attributes of a `vm` resource.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VmResource {
    /// Proxmox VM id.
    pub vmid: u64,
    /// The VM's name; also the resource's instance name.
    pub vm_name: String,
    /// `running`, `stopped`, … as Proxmox reports it, or `deleted` after `delete`.
    pub status: String,
    /// The address the guest agent reports (first global IPv4); null when stopped or unknown.
    pub ip: Option<String>,
    /// The node the VM lives on.
    pub node: String,
    /// When this was observed (RFC 3339, UTC).
    pub timestamp: String,
    /// The VM's configuration as re-read after `setConfig` / `setBootOrder`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<Map<String, Value>>,
}

/// No arguments (the SDK's).
pub use orch_plugin_sdk::NoArgs;

/// Arguments naming one VM.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NameArgs {
    /// The VM's name as Proxmox shows it (may contain spaces, e.g. `VM 102`).
    pub vm_name: String,
}

/// Arguments of `create`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateArgs {
    /// Name of the new VM (a DNS-style name); must not be taken on the node.
    pub vm_name: String,
    /// VM id; by default the cluster's next free id.
    #[serde(default)]
    #[schemars(range(min = 100))]
    pub vmid: Option<u64>,
    /// Memory in MiB.
    #[serde(default)]
    #[schemars(range(min = 16))]
    pub memory: Option<u64>,
    /// CPU cores.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub cores: Option<u32>,
    /// More Proxmox config keys for the new VM, e.g. `{"net0": "virtio,bridge=vmbr0", "agent": 1}`.
    #[serde(default)]
    pub config: Option<Map<String, Value>>,
}

/// Arguments of `start`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StartArgs {
    /// The VM's name.
    pub vm_name: String,
    /// How long to ask the guest agent for an address after starting (default 30; 0 = once).
    #[serde(default)]
    #[schemars(range(max = 110))]
    pub wait_for_ip_seconds: Option<u32>,
}

/// Arguments of the destructive `stop` and `delete`: the host refuses the call unless
/// `expectVmid` equals the `vmid` stored in this model's `vm` resource named `vmName`. The rule
/// itself is [`confirm_rule`], given to the host typed in `describe()`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfirmedArgs {
    /// The VM's name.
    pub vm_name: String,
    /// The vmid you checked (`orch data get <model> "<vmName>"`); must match the node's.
    #[serde(default)]
    pub expect_vmid: Option<u64>,
}

/// How `stop` and `delete` are confirmed: `expectVmid` must equal `vm[vmName].vmid`.
pub fn confirm_rule() -> orch_plugin_sdk::ConfirmRule {
    orch_plugin_sdk::ConfirmRule::new("expectVmid", "vm", "vmName", "vmid")
}

/// Arguments of `setConfig`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetConfigArgs {
    /// The VM's name.
    pub vm_name: String,
    /// Proxmox config keys to set (`{"memory": 4096, "agent": 1}`); null deletes a key.
    pub config: Map<String, Value>,
}

/// Arguments of `setBootOrder`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetBootOrderArgs {
    /// The VM's name.
    pub vm_name: String,
    /// Boot devices in order, e.g. `["net0", "scsi0"]`.
    pub order: Vec<String>,
}

/// One VM from `GET /nodes/{node}/qemu`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vm {
    /// Proxmox VM id.
    pub vmid: u64,
    /// Its name; `VM <vmid>` when Proxmox has none (as the Proxmox UI shows it).
    pub name: String,
    /// `running`, `stopped`, ….
    pub status: String,
}

impl Vm {
    fn is_running(&self) -> bool {
        self.status == "running"
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum NumberOrText {
    Number(u64),
    Text(String),
}

impl NumberOrText {
    fn to_u64(&self) -> Option<u64> {
        match self {
            NumberOrText::Number(n) => Some(*n),
            NumberOrText::Text(t) => t.trim().parse().ok(),
        }
    }
}

#[derive(Deserialize)]
struct QemuEntry {
    vmid: NumberOrText,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    status: Option<String>,
}

/// Parses the qemu list (`data` of `GET /nodes/{node}/qemu`), sorted by vmid.
pub fn parse_vm_list(what: &str, body: &[u8]) -> Result<Vec<Vm>> {
    let entries: Vec<QemuEntry> = pve::parse_data(what, body)?;
    let mut vms = Vec::with_capacity(entries.len());
    for entry in entries {
        let vmid = entry.vmid.to_u64().ok_or_else(|| {
            error::failed(format!(
                "{what}: Proxmox listed a VM whose vmid is not a number"
            ))
        })?;
        let name = match entry.name {
            Some(n) if !n.trim().is_empty() => n,
            _ => format!("VM {vmid}"),
        };
        vms.push(Vm {
            vmid,
            name,
            status: entry.status.unwrap_or_else(|| "unknown".into()),
        });
    }
    vms.sort_unstable_by_key(|v| v.vmid);
    Ok(vms)
}

/// The one VM called `name`; NotFound (with close names) or Conflict (duplicate names).
pub fn find<'v>(vms: &'v [Vm], name: &str, node: &str) -> Result<&'v Vm> {
    find_kind(vms, name, node, "VM")
}

/// [`find`] for guests of any kind: `noun` is `VM` or `container` in the messages.
pub fn find_kind<'v>(vms: &'v [Vm], name: &str, node: &str, noun: &str) -> Result<&'v Vm> {
    let mut matches = vms.iter().filter(|v| v.name == name);
    let Some(first) = matches.next() else {
        let close = names::close_names(name, vms.iter().map(|v| v.name.as_str()), 5);
        let hint = if close.is_empty() {
            format!(
                "the node has {} {noun}s; `sync` records them all with their names",
                vms.len()
            )
        } else {
            let quoted: Vec<String> = close.iter().map(|n| format!("{n:?}")).collect();
            format!("close names: {}", quoted.join(", "))
        };
        return Err(Error::NotFound(format!(
            "no {noun} named {name:?} on node {node}; {hint}"
        )));
    };
    let others: Vec<u64> = matches.map(|v| v.vmid).collect();
    if !others.is_empty() {
        let ids: Vec<String> = std::iter::once(first.vmid)
            .chain(others)
            .map(|id| id.to_string())
            .collect();
        return Err(Error::Conflict(format!(
            "{} {noun}s on node {node} are named {name:?} (vmids {}); rename all but one in Proxmox so the name identifies one {noun}",
            ids.len(),
            ids.join(", ")
        )));
    }
    Ok(first)
}

/// Refuses a destructive call unless `expect` is the live vmid; runs before any write.
pub fn check_expected(verb: &str, vm: &Vm, expect: Option<u64>) -> Result<()> {
    match expect {
        None => Err(error::invalid(format!(
            "refusing to {verb} {}: pass expectVmid (the vmid you checked with `orch data get <model> {:?}`)",
            vm.name, vm.name
        ))),
        Some(expected) if expected != vm.vmid => Err(Error::Conflict(format!(
            "refusing to {verb} {}: expected vmid {expected} but the node says {}",
            vm.name, vm.vmid
        ))),
        Some(_) => Ok(()),
    }
}

fn config_value(key: &str, value: &Value) -> Result<String> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(if *b { "1" } else { "0" }.to_string()),
        _ => Err(error::invalid(format!(
            "config.{key}: Proxmox config values are strings, numbers or booleans, not {value}"
        ))),
    }
}

/// Form pairs for `PUT …/config` or `POST …/qemu`: null values become one `delete=a,b`.
pub fn config_form(config: &Map<String, Value>) -> Result<Vec<(String, String)>> {
    let mut pairs = Vec::with_capacity(config.len() + 1);
    let mut deletes: Vec<String> = Vec::new();
    for (key, value) in config {
        let valid = !key.is_empty()
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid {
            return Err(error::invalid(format!(
                "config key {key:?} is not a Proxmox config key"
            )));
        }
        match key.as_str() {
            "vmid" => {
                return Err(error::invalid(
                    "config cannot change `vmid`; it identifies the VM",
                ));
            }
            "name" => {
                return Err(error::invalid(
                    "config cannot rename the VM: its name is its identity in the fleet (the resource's name); create a new VM instead",
                ));
            }
            _ => {}
        }
        match (key.as_str(), value) {
            (_, Value::Null) => deletes.push(key.clone()),
            ("delete", Value::String(list)) => deletes.extend(
                list.split(',')
                    .map(str::trim)
                    .filter(|k| !k.is_empty())
                    .map(String::from),
            ),
            _ => pairs.push((key.clone(), config_value(key, value)?)),
        }
    }
    if !deletes.is_empty() {
        pairs.push(("delete".into(), deletes.join(",")));
    }
    Ok(pairs)
}

/// The form for `setBootOrder`: `boot=order=net0;scsi0`.
pub fn boot_order_form(order: &[String]) -> Result<Vec<(String, String)>> {
    if order.is_empty() {
        return Err(error::invalid(
            "order is empty; list boot devices such as [\"net0\", \"scsi0\"]",
        ));
    }
    for device in order {
        if device.is_empty() || !device.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(error::invalid(format!(
                "boot device {device:?} is not a device name such as net0 or scsi0"
            )));
        }
    }
    Ok(vec![("boot".into(), format!("order={}", order.join(";")))])
}

/// What `sync` returns.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncSummary {
    /// VMs on the node.
    pub count: usize,
    /// How many of them are running.
    pub running: usize,
    /// Every VM, by vmid.
    pub vms: Vec<VmBrief>,
    /// Names used by more than one VM; only the lowest vmid is recorded under such a name.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub duplicate_names: Vec<String>,
    /// `vm` resources retired because their VM is gone (filled in by the plugin's sync).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub retired: Vec<String>,
}

/// One line of the sync summary.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VmBrief {
    /// The VM's name.
    pub vm_name: String,
    /// Its vmid.
    pub vmid: u64,
    /// Its status.
    pub status: String,
    /// Its address, if known.
    pub ip: Option<String>,
}

/// The result of `sync`: resources to write and the summary to return.
#[derive(Debug)]
pub struct Synced {
    /// One resource per distinct VM name.
    pub resources: Vec<VmResource>,
    /// The method's output.
    pub summary: SyncSummary,
}

/// The result of a single-VM method.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    /// The VM's state now; `changed` is false when it already was as asked.
    Done {
        /// The resource to write.
        resource: VmResource,
        /// Whether Proxmox was asked to change anything.
        changed: bool,
    },
    /// A dry run: what would have been sent.
    Planned {
        /// `METHOD path`.
        request: String,
        /// The VM's name.
        vm_name: String,
        /// The VM's (current or would-be) vmid.
        vmid: u64,
        /// Its current status.
        status: String,
    },
}

impl Outcome {
    /// The resource to write, if any.
    pub fn resource(&self) -> Option<&VmResource> {
        match self {
            Outcome::Done { resource, .. } => Some(resource),
            Outcome::Planned { .. } => None,
        }
    }

    /// The method's JSON output.
    pub fn output(&self) -> Value {
        match self {
            Outcome::Done { resource, changed } => {
                let mut value = serde_json::to_value(resource).unwrap_or(Value::Null);
                if let Value::Object(map) = &mut value {
                    map.insert("changed".into(), Value::Bool(*changed));
                }
                value
            }
            Outcome::Planned {
                request,
                vm_name,
                vmid,
                status,
            } => json!({
                "dryRun": true,
                "wouldSend": request,
                "vmName": vm_name,
                "vmid": vmid,
                "status": status,
            }),
        }
    }
}

/// The hint attached to a 401 from the fleet's API calls.
fn denied_hint(using_token: bool) -> &'static str {
    if using_token {
        "the API token is wrong, expired or lacks privileges; check apiToken"
    } else {
        "the ticket is missing or expired: run the proxmox/node model's `auth` method first \
         (e.g. `keebDev02.auth`; the sync-fleet workflow does it first)"
    }
}

/// Chooses how the fleet authenticates: an API token wins, else the ticket.
pub fn fleet_auth(globals: &VmGlobals) -> Result<Auth> {
    if let Some(token) = globals
        .api_token
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        pve::parse_api_token(token)?;
        return Ok(Auth::Token(token.to_string()));
    }
    match globals.ticket.as_deref().filter(|t| !t.is_empty()) {
        Some(ticket) => Ok(Auth::Ticket {
            ticket: ticket.to_string(),
            csrf: globals.csrf_token.clone(),
        }),
        None => Err(Error::Denied(format!(
            "globalArguments.ticket is empty: {}",
            denied_hint(false)
        ))),
    }
}

/// The `node` value that means every node of the cluster.
pub const ALL_NODES: &str = "*";

/// The API client for these globals and the trimmed node name (checked non-empty).
pub fn client<'a>(
    transport: &'a dyn Transport,
    globals: &VmGlobals,
    warn: &'a dyn Fn(&str),
    sleep: fn(Duration),
) -> Result<(Pve<'a>, String)> {
    let api_url = pve::normalize_api_url(&globals.api_url)?;
    let auth = fleet_auth(globals)?;
    let hint = denied_hint(matches!(auth, Auth::Token(_)));
    let node = globals.node.trim().to_string();
    if node.is_empty() {
        return Err(error::invalid(
            "globalArguments.node is empty; name the node (e.g. keeb-dev-02) or use \"*\" for every node",
        ));
    }
    Ok((Pve::new(transport, &api_url, auth, hint, sleep, warn), node))
}

/// Every VM of the cluster from `GET /cluster/resources?type=vm` (containers are skipped),
/// by vmid, with the node each lives on.
pub fn cluster_vms(pve: &Pve) -> Result<(Vec<Vm>, HashMap<u64, String>)> {
    let path = "/cluster/resources?type=vm";
    let what = format!("GET {path}");
    let data = pve.get_data(path)?;
    let mut vms = Vec::new();
    let mut homes = HashMap::new();
    for entry in crate::fields::entries(&what, &data)? {
        if entry.str("type")?.as_deref() != Some("qemu") {
            continue;
        }
        let vmid = entry.req_u64("vmid")?;
        let node = entry.req_str("node")?;
        let name = match entry.str("name")? {
            Some(n) if !n.trim().is_empty() => n,
            _ => format!("VM {vmid}"),
        };
        vms.push(Vm {
            vmid,
            name,
            status: entry.str("status")?.unwrap_or_else(|| "unknown".into()),
        });
        homes.insert(vmid, node);
    }
    vms.sort_unstable_by_key(|v| v.vmid);
    Ok((vms, homes))
}

/// Guest-agent requests of one sync in flight at once (the host caps it at 16 too).
const AGENT_CONCURRENCY: u32 = 16;

/// VMs whose agent answers are fetched as one batch, which bounds a sync's memory.
const AGENT_CHUNK: usize = 512;

/// The fleet of one node: every operation of `proxmox/vm`, over any [`Transport`].
pub struct Fleet<'a> {
    pve: Pve<'a>,
    node: String,
    node_path: String,
    /// True for `node: "*"`: the fleet is every node's VMs.
    all_nodes: bool,
    /// vmid → node, learnt from the cluster-wide list when `all_nodes`.
    homes: RefCell<HashMap<u64, String>>,
    timestamp: String,
    dry_run: bool,
}

impl<'a> Fleet<'a> {
    /// A fleet client from the model's globals.
    pub fn new(
        transport: &'a dyn Transport,
        globals: &VmGlobals,
        warn: &'a dyn Fn(&str),
        sleep: fn(Duration),
        timestamp: String,
        dry_run: bool,
    ) -> Result<Self> {
        let (pve, node) = client(transport, globals, warn, sleep)?;
        Ok(Fleet {
            pve,
            node_path: format!("/nodes/{}", encode::path_segment(&node)),
            all_nodes: node == ALL_NODES,
            node,
            homes: RefCell::new(HashMap::new()),
            timestamp,
            dry_run,
        })
    }

    /// The node VM `vmid` lives on: its listed node with `node: "*"`, else the model's node.
    fn node_of(&self, vmid: u64) -> String {
        self.homes
            .borrow()
            .get(&vmid)
            .cloned()
            .unwrap_or_else(|| self.node.clone())
    }

    fn vm_path(&self, vmid: u64) -> String {
        format!(
            "/nodes/{}/qemu/{vmid}",
            encode::path_segment(&self.node_of(vmid))
        )
    }

    fn resource(&self, vm: &Vm, status: &str, ip: Option<String>) -> VmResource {
        VmResource {
            vmid: vm.vmid,
            vm_name: vm.name.clone(),
            status: status.to_string(),
            ip,
            node: self.node_of(vm.vmid),
            timestamp: self.timestamp.clone(),
            config: None,
        }
    }

    fn planned(&self, method: &str, path: &str, vm: &Vm) -> Outcome {
        Outcome::Planned {
            request: format!("{method} {path}"),
            vm_name: vm.name.clone(),
            vmid: vm.vmid,
            status: vm.status.clone(),
        }
    }

    /// Every VM on the node (or of the cluster with `node: "*"`), by vmid.
    pub fn list(&self) -> Result<Vec<Vm>> {
        if self.all_nodes {
            let (vms, homes) = cluster_vms(&self.pve)?;
            *self.homes.borrow_mut() = homes;
            return Ok(vms);
        }
        let path = format!("{}/qemu", self.node_path);
        let what = format!("GET {path}");
        let response = self.pve.check(&what, self.pve.send("GET", &path, None)?)?;
        parse_vm_list(&what, &response.body)
    }

    /// The guest agent's address for a VM; `None` when the agent cannot say.
    pub fn agent_ip(&self, vm: &Vm) -> Result<Option<String>> {
        let response = self.pve.send("GET", &self.agent_path(vm), None)?;
        self.agent_ip_from(vm, response)
    }

    fn agent_path(&self, vm: &Vm) -> String {
        format!("{}/agent/network-get-interfaces", self.vm_path(vm.vmid))
    }

    fn agent_reply(&self, vm: &Vm) -> Result<AgentReply> {
        let response = self.pve.send("GET", &self.agent_path(vm), None)?;
        self.read_agent_reply(vm, response)
    }

    /// The address in the guest agent's answer about `vm` (sent by the caller, e.g. in a
    /// batch); `None` when the agent cannot say.
    pub(crate) fn agent_ip_from(&self, vm: &Vm, response: HttpResponse) -> Result<Option<String>> {
        Ok(match self.read_agent_reply(vm, response)? {
            AgentReply::Address(ip) => ip,
            AgentReply::NotConfigured => None,
        })
    }

    /// Interprets the guest agent's answer about `vm`, tolerating agents that cannot say.
    fn read_agent_reply(&self, vm: &Vm, response: HttpResponse) -> Result<AgentReply> {
        let what = format!("GET {}", self.agent_path(vm));
        match response.status {
            200..=299 => match pve::parse_data::<AgentInterfaces>(&what, &response.body) {
                Ok(interfaces) => Ok(AgentReply::Address(agent::pick_ip(&interfaces))),
                Err(e) => {
                    self.pve.warn(&format!(
                        "{}: ignoring the guest agent's answer: {}",
                        vm.name,
                        message_of(&e)
                    ));
                    Ok(AgentReply::Address(None))
                }
            },
            // PVE's answer when the VM is off or its agent is not (yet) running or installed;
            // only "No QEMU guest agent configured" means waiting cannot help.
            500 => {
                let message = pve::pve_message(&response.body).to_ascii_lowercase();
                Ok(if message.contains("no qemu guest agent configured") {
                    AgentReply::NotConfigured
                } else {
                    AgentReply::Address(None)
                })
            }
            // Credentials fail for every VM alike, so stop instead of warning 10,000 times.
            401 | 403 => Err(self.pve.error(&what, &response)),
            _ => {
                self.pve.warn(&format!(
                    "{}: no address from the guest agent: {}",
                    vm.name,
                    message_of(&self.pve.error(&what, &response))
                ));
                Ok(AgentReply::Address(None))
            }
        }
    }

    /// The VM's resource as it is now (asks the agent only when the VM runs).
    pub fn observe(&self, vm: &Vm) -> Result<VmResource> {
        let ip = if vm.is_running() {
            self.agent_ip(vm)?
        } else {
            None
        };
        Ok(self.resource(vm, &vm.status, ip))
    }

    /// Asks the guest agents of the running VMs among `vms` in one concurrent batch; the
    /// answers come back in the order of the running VMs.
    fn agent_ips(&self, vms: &[Vm]) -> Result<Vec<Result<HttpResponse>>> {
        let requests = vms
            .iter()
            .filter(|vm| vm.is_running())
            .map(|vm| self.pve.request("GET", &self.agent_path(vm), None))
            .collect::<Result<Vec<_>>>()?;
        let expected = requests.len();
        let mut replies = self.pve.send_batch(requests, AGENT_CONCURRENCY);
        if replies.len() != expected {
            return Err(error::failed(format!(
                "the host answered {} of {expected} guest-agent requests",
                replies.len()
            )));
        }
        replies.reverse();
        Ok(replies)
    }

    /// Lists the node and observes every VM: one agent call per running VM, nothing quadratic.
    /// The agent calls go out in concurrent batches; their answers are read in VM order, so
    /// warnings and the first error are the same as one call after another.
    pub fn sync(&self) -> Result<Synced> {
        let vms = self.list()?;
        let mut seen: HashSet<&str> = HashSet::with_capacity(vms.len());
        let mut duplicates: Vec<String> = Vec::new();
        let mut reported: HashSet<&str> = HashSet::new();
        let mut resources = Vec::with_capacity(vms.len());
        let mut briefs = Vec::with_capacity(vms.len());
        let mut running = 0;
        // Bounded chunks keep at most AGENT_CHUNK answers in memory on a 10,000-VM node.
        let mut replies = Vec::new();
        for (i, vm) in vms.iter().enumerate() {
            if i % AGENT_CHUNK == 0 {
                let end = (i + AGENT_CHUNK).min(vms.len());
                replies = self.agent_ips(&vms[i..end])?;
            }
            let ip = if vm.is_running() {
                running += 1;
                let reply = replies.pop().ok_or_else(|| {
                    error::failed("the host answered fewer guest-agent requests than sent")
                })??;
                match self.read_agent_reply(vm, reply)? {
                    AgentReply::Address(ip) => ip,
                    AgentReply::NotConfigured => None,
                }
            } else {
                None
            };
            let resource = self.resource(vm, &vm.status, ip);
            briefs.push(VmBrief {
                vm_name: vm.name.clone(),
                vmid: vm.vmid,
                status: vm.status.clone(),
                ip: resource.ip.clone(),
            });
            // The list is sorted by vmid, so the lowest vmid keeps a shared name.
            if seen.insert(vm.name.as_str()) {
                resources.push(resource);
            } else {
                if reported.insert(vm.name.as_str()) {
                    duplicates.push(vm.name.clone());
                }
                self.pve.warn(&format!(
                    "VM {} is also named {:?}; the resource keeps the lower vmid",
                    vm.vmid, vm.name
                ));
            }
        }
        Ok(Synced {
            resources,
            summary: SyncSummary {
                count: vms.len(),
                running,
                vms: briefs,
                duplicate_names: duplicates,
                retired: Vec::new(),
            },
        })
    }

    /// Finds one VM by name and observes it.
    pub fn lookup(&self, vm_name: &str) -> Result<VmResource> {
        let vms = self.list()?;
        let vm = find(&vms, vm_name, &self.node)?;
        self.observe(vm)
    }

    fn next_vmid(&self, vms: &[Vm]) -> Result<u64> {
        let path = "/cluster/nextid";
        let what = format!("GET {path}");
        let response = self.pve.send("GET", path, None)?;
        match response.status {
            200..=299 => {
                let id: NumberOrText = pve::parse_data(&what, &response.body)?;
                id.to_u64().ok_or_else(|| {
                    error::failed(format!("{what}: Proxmox's next id is not a number"))
                })
            }
            // Older or trimmed-down APIs lack the endpoint; one past the node's highest id is
            // free on this node, and a cluster-wide clash comes back as a Conflict.
            404 | 501 => Ok(vms.iter().map(|v| v.vmid + 1).max().unwrap_or(100).max(100)),
            _ => Err(self.pve.error(&what, &response)),
        }
    }

    /// Creates a VM; it is stopped and has no address yet.
    pub fn create(&self, args: &CreateArgs) -> Result<Outcome> {
        let name = args.vm_name.trim();
        if name.is_empty() {
            return Err(error::invalid("vmName is empty"));
        }
        if self.all_nodes {
            return Err(error::invalid(
                "create needs one node, but globalArguments.node is \"*\" (every node); use a model whose node names the node the VM should live on",
            ));
        }
        let extra = match &args.config {
            Some(config) => config_form(config)?,
            None => Vec::new(),
        };
        let vms = self.list()?;
        if let Some(existing) = vms.iter().find(|v| v.name == name) {
            return Err(Error::Conflict(format!(
                "a VM named {name:?} already exists on node {} (vmid {}); names identify VMs in the fleet",
                self.node, existing.vmid
            )));
        }
        let vmid = match args.vmid {
            Some(id) => {
                if let Some(taken) = vms.iter().find(|v| v.vmid == id) {
                    return Err(Error::Conflict(format!(
                        "vmid {id} is already used by {:?} on node {}",
                        taken.name, self.node
                    )));
                }
                id
            }
            None => self.next_vmid(&vms)?,
        };
        let vm = Vm {
            vmid,
            name: name.to_string(),
            status: "stopped".into(),
        };
        let mut form = vec![
            ("vmid".to_string(), vmid.to_string()),
            ("name".to_string(), vm.name.clone()),
        ];
        if let Some(memory) = args.memory {
            form.push(("memory".into(), memory.to_string()));
        }
        if let Some(cores) = args.cores {
            form.push(("cores".into(), cores.to_string()));
        }
        if let Some((key, _)) = extra.iter().find(|(k, _)| form.iter().any(|(f, _)| f == k)) {
            return Err(error::invalid(format!(
                "config.{key} repeats an argument of create; give it once"
            )));
        }
        form.extend(extra);
        let path = format!("{}/qemu", self.node_path);
        if self.dry_run {
            return Ok(self.planned("POST", &path, &vm));
        }
        self.pve
            .write_and_wait(&self.node, "POST", &path, Some(&form))?;
        Ok(Outcome::Done {
            resource: self.resource(&vm, "stopped", None),
            changed: true,
        })
    }

    /// Asks the agent for an address until it has one, for at most `wait_secs` of sleeping
    /// (250 ms, 500 ms, then 1 s apart), so the number of attempts is bounded.
    pub(crate) fn wait_for_ip(&self, vm: &Vm, wait_secs: u32) -> Result<Option<String>> {
        let budget = Duration::from_secs(wait_secs.into());
        let mut waited = Duration::ZERO;
        let mut step = Duration::from_millis(250);
        loop {
            match self.agent_reply(vm)? {
                AgentReply::Address(Some(ip)) => return Ok(Some(ip)),
                AgentReply::NotConfigured => {
                    self.pve.warn(&format!(
                        "{}: no QEMU guest agent configured (set `agent: 1`), so no address",
                        vm.name
                    ));
                    return Ok(None);
                }
                AgentReply::Address(None) => {}
            }
            if waited + step > budget {
                if wait_secs > 0 {
                    self.pve.warn(&format!(
                        "{}: the guest agent reported no address within {wait_secs} s",
                        vm.name
                    ));
                }
                return Ok(None);
            }
            self.pve.sleep(step);
            waited += step;
            step = (step * 2).min(Duration::from_secs(1));
        }
    }

    /// Starts a VM (a no-op when it already runs) and records its address.
    pub fn start(&self, args: &StartArgs) -> Result<Outcome> {
        let vms = self.list()?;
        let vm = find(&vms, &args.vm_name, &self.node)?;
        if vm.is_running() {
            return Ok(Outcome::Done {
                resource: self.observe(vm)?,
                changed: false,
            });
        }
        let path = format!("{}/status/start", self.vm_path(vm.vmid));
        if self.dry_run {
            return Ok(self.planned("POST", &path, vm));
        }
        self.pve
            .write_and_wait(&self.node_of(vm.vmid), "POST", &path, Some(&[]))?;
        let ip = self.wait_for_ip(vm, args.wait_for_ip_seconds.unwrap_or(30).min(110))?;
        Ok(Outcome::Done {
            resource: self.resource(vm, "running", ip),
            changed: true,
        })
    }

    /// Stops a VM hard (a no-op when it is already stopped), after checking `expectVmid`.
    pub fn stop(&self, args: &ConfirmedArgs) -> Result<Outcome> {
        let vms = self.list()?;
        let vm = find(&vms, &args.vm_name, &self.node)?;
        check_expected("stop", vm, args.expect_vmid)?;
        if vm.status == "stopped" {
            return Ok(Outcome::Done {
                resource: self.resource(vm, "stopped", None),
                changed: false,
            });
        }
        let path = format!("{}/status/stop", self.vm_path(vm.vmid));
        if self.dry_run {
            return Ok(self.planned("POST", &path, vm));
        }
        self.pve
            .write_and_wait(&self.node_of(vm.vmid), "POST", &path, Some(&[]))?;
        Ok(Outcome::Done {
            resource: self.resource(vm, "stopped", None),
            changed: true,
        })
    }

    /// Deletes a VM after checking `expectVmid`; Proxmox refuses running VMs.
    pub fn delete(&self, args: &ConfirmedArgs) -> Result<Outcome> {
        let vms = self.list()?;
        let vm = find(&vms, &args.vm_name, &self.node)?;
        check_expected("delete", vm, args.expect_vmid)?;
        let path = self.vm_path(vm.vmid);
        if self.dry_run {
            return Ok(self.planned("DELETE", &path, vm));
        }
        self.pve
            .write_and_wait(&self.node_of(vm.vmid), "DELETE", &path, None)?;
        Ok(Outcome::Done {
            resource: self.resource(vm, "deleted", None),
            changed: true,
        })
    }

    /// Writes config keys, then re-reads the config into the resource.
    pub fn set_config(&self, vm_name: &str, form: &[(String, String)]) -> Result<Outcome> {
        if form.is_empty() {
            return Err(error::invalid(
                "config is empty; give at least one Proxmox config key",
            ));
        }
        let vms = self.list()?;
        let vm = find(&vms, vm_name, &self.node)?;
        let path = format!("{}/config", self.vm_path(vm.vmid));
        if self.dry_run {
            return Ok(self.planned("PUT", &path, vm));
        }
        self.pve
            .write_and_wait(&self.node_of(vm.vmid), "PUT", &path, Some(form))?;
        let config: Map<String, Value> = self.pve.get(&path)?;
        let mut resource = self.observe(vm)?;
        resource.config = Some(config);
        Ok(Outcome::Done {
            resource,
            changed: true,
        })
    }
}

/// What the guest agent endpoint said.
enum AgentReply {
    /// It answered (or is not up yet): the address, if one is usable.
    Address(Option<String>),
    /// The VM has no agent configured; polling cannot help.
    NotConfigured,
}

/// The text of any SDK error.
pub fn message_of(e: &Error) -> &str {
    match e {
        Error::InvalidArguments(m)
        | Error::Denied(m)
        | Error::NotFound(m)
        | Error::Conflict(m)
        | Error::Transient(m)
        | Error::Failed(m) => m,
    }
}

#[cfg(test)]
mod tests;
