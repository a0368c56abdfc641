//! `proxmox/lxc`: the containers of a node (or of the cluster with `node: "*"`), one named `ct`
//! resource per container, keyed by the container's name like the VM fleet.

use crate::agent::{usable_v4, usable_v6};
use crate::encode;
use crate::fields::{self, Entry};
use crate::pve::{Pve, Transport};
use crate::vm::{
    self, ALL_NODES, Vm, VmGlobals, check_expected, config_form, find_kind, message_of,
};
use orch_plugin_sdk::{Error, HttpResponse, JsonSchema, Result, Value, error, json};
use serde::{Deserialize, Serialize};
use serde_json::Map;
use std::collections::HashSet;
use std::net::IpAddr;
use std::time::Duration;

/// Attributes of a `ct` resource.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CtResource {
    /// Proxmox container id.
    pub vmid: u64,
    /// The container's name (its hostname); also the resource's instance name.
    pub name: String,
    /// `running`, `stopped`, … as Proxmox reports it, or `deleted` after `delete`.
    pub status: String,
    /// The node the container lives on.
    pub node: String,
    /// CPU cores (config `cores`, else the list's `cpus`).
    pub cores: Option<u64>,
    /// Memory in MiB (config `memory`, else the list's `maxmem`).
    pub memory: Option<u64>,
    /// The root disk as configured, e.g. `local-lvm:vm-101-disk-0,size=8G`.
    pub rootfs: Option<String>,
    /// Usable addresses from `/interfaces` while running (no loopback or link-local), IPv4 first.
    pub ips: Vec<String>,
    /// Proxmox tags.
    pub tags: Vec<String>,
    /// When this was observed (RFC 3339, UTC).
    pub timestamp: String,
    /// The container's configuration as re-read after `setConfig`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<Map<String, Value>>,
}

/// Arguments naming one container.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CtNameArgs {
    /// The container's name as Proxmox shows it.
    pub name: String,
}

/// Arguments of the destructive `stop` and `delete`: `expectVmid` must equal the `vmid` of
/// this model's `ct` resource named `name` (see [`confirm_rule`]).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CtConfirmedArgs {
    /// The container's name.
    pub name: String,
    /// The vmid you checked (`orch data get <model> "<name>"`); must match the node's.
    #[serde(default)]
    pub expect_vmid: Option<u64>,
}

/// How `stop` and `delete` are confirmed: `expectVmid` must equal `ct[name].vmid`.
pub fn confirm_rule() -> orch_plugin_sdk::ConfirmRule {
    orch_plugin_sdk::ConfirmRule::new("expectVmid", "ct", "name", "vmid")
}

/// Arguments of `create`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CtCreateArgs {
    /// Name (hostname) of the new container; must not be taken on the node.
    pub name: String,
    /// The template volume, e.g. `local:vztmpl/debian-12-standard_12.2-1_amd64.tar.zst`.
    pub ostemplate: String,
    /// Container id; by default the cluster's next free id.
    #[serde(default)]
    #[schemars(range(min = 100))]
    pub vmid: Option<u64>,
    /// CPU cores.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub cores: Option<u32>,
    /// Memory in MiB.
    #[serde(default)]
    #[schemars(range(min = 16))]
    pub memory: Option<u64>,
    /// Root disk, e.g. `local-lvm:8` (8 GiB on local-lvm).
    #[serde(default)]
    pub rootfs: Option<String>,
    /// First network interface, e.g. `name=eth0,bridge=vmbr0,ip=dhcp`.
    #[serde(default)]
    pub net0: Option<String>,
    /// Start the container once created.
    #[serde(default)]
    pub start: bool,
    /// More Proxmox config keys, e.g. `{"unprivileged": 1, "swap": 512}`.
    #[serde(default)]
    pub config: Option<Map<String, Value>>,
}

/// Arguments of `setConfig`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CtSetConfigArgs {
    /// The container's name.
    pub name: String,
    /// Proxmox config keys to set (`{"memory": 2048, "cores": 2}`); null deletes a key.
    pub config: Map<String, Value>,
}

/// One container from the list.
#[derive(Clone, Debug, PartialEq)]
pub struct Ct {
    /// Its id, name and status.
    pub guest: Vm,
    /// The node it lives on.
    pub node: String,
    /// `cpus` (or the cluster list's `maxcpu`).
    pub cpus: Option<u64>,
    /// `maxmem` in bytes.
    pub maxmem: Option<u64>,
    /// Tags from the list.
    pub tags: Vec<String>,
}

/// Parses the container list of `GET /nodes/{node}/lxc` (entries without `node`, which is
/// `node`) or of `GET /cluster/resources?type=vm` (only `type: lxc` entries), by vmid.
pub fn parse_ct_list(what: &str, data: &Value, node: Option<&str>) -> Result<Vec<Ct>> {
    let mut cts = Vec::new();
    for entry in fields::entries(what, data)? {
        if node.is_none() && entry.str("type")?.as_deref() != Some("lxc") {
            continue;
        }
        let vmid = entry.req_u64("vmid")?;
        let name = match entry.str("name")? {
            Some(n) if !n.trim().is_empty() => n,
            _ => format!("CT {vmid}"),
        };
        let home = match node {
            Some(n) => n.to_string(),
            None => entry.req_str("node")?,
        };
        let cpus = match entry.u64("cpus")? {
            Some(c) => Some(c),
            None => entry.u64("maxcpu")?,
        };
        cts.push(Ct {
            guest: Vm {
                vmid,
                name,
                status: entry.str("status")?.unwrap_or_else(|| "unknown".into()),
            },
            node: home,
            cpus,
            maxmem: entry.u64("maxmem")?,
            tags: entry.list("tags", &[';', ',', ' '])?,
        });
    }
    cts.sort_unstable_by_key(|c| c.guest.vmid);
    Ok(cts)
}

/// Usable addresses from the `data` of `GET …/lxc/{vmid}/interfaces`: no `lo`, no loopback or
/// link-local; IPv4 first, then global IPv6, each in interface order.
pub fn parse_interfaces(what: &str, data: &Value) -> Result<Vec<String>> {
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    for entry in fields::entries(what, data)? {
        if entry.str("name")?.as_deref() == Some("lo") {
            continue;
        }
        for field in ["inet", "inet6"] {
            let Some(text) = entry.str(field)? else {
                continue;
            };
            let address = text.split('/').next().unwrap_or("").trim();
            match address.parse::<IpAddr>() {
                Ok(IpAddr::V4(ip)) if usable_v4(ip) => v4.push(ip.to_string()),
                Ok(IpAddr::V6(ip)) if usable_v6(ip) => v6.push(ip.to_string()),
                _ => {}
            }
        }
    }
    v4.extend(v6);
    v4.dedup();
    Ok(v4)
}

/// What the container's config says about the fields of the resource.
#[derive(Debug, Default, PartialEq)]
struct CtConfig {
    cores: Option<u64>,
    memory: Option<u64>,
    rootfs: Option<String>,
    tags: Option<Vec<String>>,
}

fn parse_config(what: &str, data: &Value) -> Result<CtConfig> {
    let entry = Entry::new(what, data, None)?;
    Ok(CtConfig {
        cores: entry.u64("cores")?,
        memory: entry.u64("memory")?,
        rootfs: entry.str("rootfs")?,
        tags: entry
            .raw("tags")
            .map(|_| entry.list("tags", &[';', ',', ' ']))
            .transpose()?,
    })
}

/// What `sync` returns.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CtSyncSummary {
    /// Containers seen.
    pub count: usize,
    /// How many of them are running.
    pub running: usize,
    /// Names used by more than one container; the lowest vmid keeps the name.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub duplicate_names: Vec<String>,
    /// `ct` resources retired because their container is gone.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub retired: Vec<String>,
}

/// The result of `sync`.
#[derive(Debug)]
pub struct CtSynced {
    /// One resource per distinct container name.
    pub resources: Vec<CtResource>,
    /// The method's output.
    pub summary: CtSyncSummary,
}

/// The result of a single-container method: the resource to write (none in a dry run) and the
/// output.
#[derive(Debug)]
pub struct CtOutcome {
    /// The resource to write.
    pub resource: Option<CtResource>,
    /// The method's output.
    pub output: Value,
}

impl CtOutcome {
    fn done(resource: CtResource, changed: bool) -> Self {
        let mut output = serde_json::to_value(&resource).unwrap_or(Value::Null);
        if let Value::Object(map) = &mut output {
            map.insert("changed".into(), Value::Bool(changed));
        }
        CtOutcome {
            resource: Some(resource),
            output,
        }
    }

    fn planned(method: &str, path: &str, ct: &Ct) -> Self {
        CtOutcome {
            resource: None,
            output: json!({
                "dryRun": true,
                "wouldSend": format!("{method} {path}"),
                "name": ct.guest.name,
                "vmid": ct.guest.vmid,
                "status": ct.guest.status,
            }),
        }
    }
}

/// Requests in flight at once during a sync.
const CONCURRENCY: u32 = 16;
/// Containers whose config and interfaces are fetched as one batch.
const CHUNK: usize = 256;

/// The containers of one node (or all nodes): every operation of `proxmox/lxc`.
pub struct Containers<'a> {
    pve: Pve<'a>,
    node: String,
    timestamp: String,
    dry_run: bool,
}

fn ct_path(ct: &Ct) -> String {
    format!(
        "/nodes/{}/lxc/{}",
        encode::path_segment(&ct.node),
        ct.guest.vmid
    )
}

impl<'a> Containers<'a> {
    /// A client from the model's globals.
    pub fn new(
        transport: &'a dyn Transport,
        globals: &VmGlobals,
        warn: &'a dyn Fn(&str),
        sleep: fn(Duration),
        timestamp: String,
        dry_run: bool,
    ) -> Result<Self> {
        let (pve, node) = vm::client(transport, globals, warn, sleep)?;
        Ok(Containers {
            pve,
            node,
            timestamp,
            dry_run,
        })
    }

    /// Every container of the node (or the cluster with `node: "*"`), by vmid.
    pub fn list(&self) -> Result<Vec<Ct>> {
        if self.node == ALL_NODES {
            let path = "/cluster/resources?type=vm";
            let data = self.pve.get_data(path)?;
            return parse_ct_list(&format!("GET {path}"), &data, None);
        }
        let path = format!("/nodes/{}/lxc", encode::path_segment(&self.node));
        let data = self.pve.get_data(&path)?;
        parse_ct_list(&format!("GET {path}"), &data, Some(&self.node))
    }

    fn find<'c>(&self, cts: &'c [Ct], name: &str) -> Result<&'c Ct> {
        let guests: Vec<Vm> = cts.iter().map(|c| c.guest.clone()).collect();
        let found = find_kind(&guests, name, &self.node, "container")?;
        cts.iter()
            .find(|c| c.guest.vmid == found.vmid)
            .ok_or_else(|| error::failed("container vanished from its own list"))
    }

    fn resource(&self, ct: &Ct, status: &str, config: &CtConfig, ips: Vec<String>) -> CtResource {
        CtResource {
            vmid: ct.guest.vmid,
            name: ct.guest.name.clone(),
            status: status.to_string(),
            node: ct.node.clone(),
            cores: config.cores.or(ct.cpus),
            memory: config.memory.or(ct.maxmem.map(|b| b / (1024 * 1024))),
            rootfs: config.rootfs.clone(),
            ips,
            tags: config.tags.clone().unwrap_or_else(|| ct.tags.clone()),
            timestamp: self.timestamp.clone(),
            config: None,
        }
    }

    /// Reads the answer to `GET …/config`: credentials errors fail, other errors warn and fall
    /// back to the list's values, a malformed config fails naming the field.
    fn read_config(&self, ct: &Ct, reply: Result<HttpResponse>) -> Result<CtConfig> {
        let what = format!("GET {}/config", ct_path(ct));
        let response = reply?;
        match response.status {
            200..=299 => parse_config(&what, &fields::data(&what, &response)?),
            401 | 403 => Err(self.pve.error(&what, &response)),
            _ => {
                self.pve.warn(&format!(
                    "{}: no config, using the list's cores and memory: {}",
                    ct.guest.name,
                    message_of(&self.pve.error(&what, &response))
                ));
                Ok(CtConfig::default())
            }
        }
    }

    /// Reads the answer to `GET …/interfaces`: a container that is not running has none.
    pub(crate) fn read_interfaces(
        &self,
        ct: &Ct,
        reply: Result<HttpResponse>,
    ) -> Result<Vec<String>> {
        let what = format!("GET {}/interfaces", ct_path(ct));
        let response = reply?;
        match response.status {
            200..=299 => parse_interfaces(&what, &fields::data(&what, &response)?),
            401 | 403 => Err(self.pve.error(&what, &response)),
            500 if crate::pve::pve_message(&response.body)
                .to_ascii_lowercase()
                .contains("not running") =>
            {
                Ok(Vec::new())
            }
            _ => {
                self.pve.warn(&format!(
                    "{}: no addresses: {}",
                    ct.guest.name,
                    message_of(&self.pve.error(&what, &response))
                ));
                Ok(Vec::new())
            }
        }
    }

    /// Config (and interfaces of running ones) of `cts` in one concurrent batch.
    fn observe_all(&self, cts: &[Ct]) -> Result<Vec<CtResource>> {
        let mut requests = Vec::new();
        for ct in cts {
            requests.push(
                self.pve
                    .request("GET", &format!("{}/config", ct_path(ct)), None)?,
            );
            if ct.guest.status == "running" {
                requests.push(self.pve.request(
                    "GET",
                    &format!("{}/interfaces", ct_path(ct)),
                    None,
                )?);
            }
        }
        let expected = requests.len();
        let replies = self.pve.send_batch(requests, CONCURRENCY);
        if replies.len() != expected {
            return Err(error::failed(format!(
                "the host answered {} of {expected} container requests",
                replies.len()
            )));
        }
        let mut replies = replies.into_iter();
        let mut out = Vec::with_capacity(cts.len());
        for ct in cts {
            let config = self.read_config(ct, replies.next().unwrap_or_else(lost))?;
            let ips = if ct.guest.status == "running" {
                self.read_interfaces(ct, replies.next().unwrap_or_else(lost))?
            } else {
                Vec::new()
            };
            out.push(self.resource(ct, &ct.guest.status, &config, ips));
        }
        Ok(out)
    }

    /// Lists and observes every container; fails (and so retires nothing) unless the listing
    /// is complete.
    pub fn sync(&self) -> Result<CtSynced> {
        let cts = self.list()?;
        let mut resources = Vec::with_capacity(cts.len());
        let mut seen: HashSet<String> = HashSet::new();
        let mut duplicates = Vec::new();
        let running = cts.iter().filter(|c| c.guest.status == "running").count();
        for chunk in cts.chunks(CHUNK) {
            for resource in self.observe_all(chunk)? {
                if seen.insert(resource.name.clone()) {
                    resources.push(resource);
                } else {
                    self.pve.warn(&format!(
                        "CT {} is also named {:?}; the resource keeps the lower vmid",
                        resource.vmid, resource.name
                    ));
                    if !duplicates.contains(&resource.name) {
                        duplicates.push(resource.name);
                    }
                }
            }
        }
        Ok(CtSynced {
            resources,
            summary: CtSyncSummary {
                count: cts.len(),
                running,
                duplicate_names: duplicates,
                retired: Vec::new(),
            },
        })
    }

    fn observe(&self, ct: &Ct) -> Result<CtResource> {
        let mut all = self.observe_all(std::slice::from_ref(ct))?;
        all.pop()
            .ok_or_else(|| error::failed("no observation of the container"))
    }

    /// Finds one container by name and observes it.
    pub fn lookup(&self, name: &str) -> Result<CtResource> {
        let cts = self.list()?;
        let ct = self.find(&cts, name)?;
        self.observe(ct)
    }

    /// Starts a container (a no-op when it runs) and records it.
    pub fn start(&self, name: &str) -> Result<CtOutcome> {
        let cts = self.list()?;
        let ct = self.find(&cts, name)?;
        if ct.guest.status == "running" {
            return Ok(CtOutcome::done(self.observe(ct)?, false));
        }
        let path = format!("{}/status/start", ct_path(ct));
        if self.dry_run {
            return Ok(CtOutcome::planned("POST", &path, ct));
        }
        self.pve
            .write_and_wait(&ct.node, "POST", &path, Some(&[]))?;
        let mut now = ct.clone();
        now.guest.status = "running".into();
        Ok(CtOutcome::done(self.observe(&now)?, true))
    }

    /// Stops a container hard after checking `expectVmid` (a no-op when stopped).
    pub fn stop(&self, args: &CtConfirmedArgs) -> Result<CtOutcome> {
        let cts = self.list()?;
        let ct = self.find(&cts, &args.name)?;
        check_expected("stop", &ct.guest, args.expect_vmid)?;
        let mut now = ct.clone();
        now.guest.status = "stopped".into();
        if ct.guest.status == "stopped" {
            return Ok(CtOutcome::done(self.observe(&now)?, false));
        }
        let path = format!("{}/status/stop", ct_path(ct));
        if self.dry_run {
            return Ok(CtOutcome::planned("POST", &path, ct));
        }
        self.pve
            .write_and_wait(&ct.node, "POST", &path, Some(&[]))?;
        Ok(CtOutcome::done(self.observe(&now)?, true))
    }

    /// Deletes a container after checking `expectVmid`; Proxmox refuses running ones.
    pub fn delete(&self, args: &CtConfirmedArgs) -> Result<CtOutcome> {
        let cts = self.list()?;
        let ct = self.find(&cts, &args.name)?;
        check_expected("delete", &ct.guest, args.expect_vmid)?;
        let path = ct_path(ct);
        if self.dry_run {
            return Ok(CtOutcome::planned("DELETE", &path, ct));
        }
        self.pve.write_and_wait(&ct.node, "DELETE", &path, None)?;
        let resource = self.resource(ct, "deleted", &CtConfig::default(), Vec::new());
        Ok(CtOutcome::done(resource, true))
    }

    fn next_vmid(&self) -> Result<u64> {
        let path = "/cluster/nextid";
        let data = self.pve.get_data(path)?;
        let wrapped = json!({ "id": data });
        Entry::new(&format!("GET {path}"), &wrapped, None)?.req_u64("id")
    }

    /// Creates a container (and starts it when asked) and records it.
    pub fn create(&self, args: &CtCreateArgs) -> Result<CtOutcome> {
        let name = args.name.trim();
        if name.is_empty() {
            return Err(error::invalid("name is empty"));
        }
        if self.node == ALL_NODES {
            return Err(error::invalid(
                "create needs one node, but globalArguments.node is \"*\" (every node); use a model whose node names the node the container should live on",
            ));
        }
        let extra = match &args.config {
            Some(config) => ct_config_form(config)?,
            None => Vec::new(),
        };
        let cts = self.list()?;
        if let Some(existing) = cts.iter().find(|c| c.guest.name == name) {
            return Err(Error::Conflict(format!(
                "a container named {name:?} already exists on node {} (vmid {}); names identify containers",
                self.node, existing.guest.vmid
            )));
        }
        let vmid = match args.vmid {
            Some(id) => id,
            None if self.dry_run => 0,
            None => self.next_vmid()?,
        };
        let mut form = vec![
            ("vmid".to_string(), vmid.to_string()),
            ("hostname".to_string(), name.to_string()),
            ("ostemplate".to_string(), args.ostemplate.clone()),
        ];
        if let Some(cores) = args.cores {
            form.push(("cores".into(), cores.to_string()));
        }
        if let Some(memory) = args.memory {
            form.push(("memory".into(), memory.to_string()));
        }
        if let Some(rootfs) = &args.rootfs {
            form.push(("rootfs".into(), rootfs.clone()));
        }
        if let Some(net0) = &args.net0 {
            form.push(("net0".into(), net0.clone()));
        }
        if args.start {
            form.push(("start".into(), "1".into()));
        }
        if let Some((key, _)) = extra.iter().find(|(k, _)| form.iter().any(|(f, _)| f == k)) {
            return Err(error::invalid(format!(
                "config.{key} repeats an argument of create; give it once"
            )));
        }
        form.extend(extra);
        let ct = Ct {
            guest: Vm {
                vmid,
                name: name.to_string(),
                status: if args.start { "running" } else { "stopped" }.into(),
            },
            node: self.node.clone(),
            cpus: args.cores.map(u64::from),
            maxmem: args.memory.map(|m| m * 1024 * 1024),
            tags: Vec::new(),
        };
        let path = format!("/nodes/{}/lxc", encode::path_segment(&self.node));
        if self.dry_run {
            return Ok(CtOutcome::planned("POST", &path, &ct));
        }
        self.pve
            .write_and_wait(&self.node, "POST", &path, Some(&form))?;
        Ok(CtOutcome::done(self.observe(&ct)?, true))
    }

    /// Writes config keys, then re-reads the config into the resource.
    pub fn set_config(&self, name: &str, config: &Map<String, Value>) -> Result<CtOutcome> {
        let form = ct_config_form(config)?;
        if form.is_empty() {
            return Err(error::invalid(
                "config is empty; give at least one Proxmox config key",
            ));
        }
        let cts = self.list()?;
        let ct = self.find(&cts, name)?;
        let path = format!("{}/config", ct_path(ct));
        if self.dry_run {
            return Ok(CtOutcome::planned("PUT", &path, ct));
        }
        self.pve
            .write_and_wait(&ct.node, "PUT", &path, Some(&form))?;
        let mut resource = self.observe(ct)?;
        let reread: Map<String, Value> = self.pve.get(&path)?;
        resource.config = Some(reread);
        Ok(CtOutcome::done(resource, true))
    }
}

/// A lost batch answer (the host answered fewer than sent; checked before, so never seen).
fn lost() -> Result<HttpResponse> {
    Err(error::failed(
        "the host answered fewer container requests than sent",
    ))
}

/// [`config_form`] for containers, which also refuses renaming through `hostname`.
pub fn ct_config_form(config: &Map<String, Value>) -> Result<Vec<(String, String)>> {
    if config.contains_key("hostname") {
        return Err(error::invalid(
            "config cannot change `hostname`: it is the container's name and identity in the model; create a new container instead",
        ));
    }
    config_form(config)
}

#[cfg(test)]
mod tests;
