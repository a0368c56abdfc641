//! A simulated guest (QEMU VM or LXC container): its config file, its power state and the
//! addresses it reports. The two kinds share this structure; only their config schema, names
//! and address sources differ.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Instant;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::fleet::VmSeed;
use crate::network;

/// Whether a guest is a QEMU VM or an LXC container.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum GuestKind {
    /// A QEMU virtual machine (`/nodes/{node}/qemu`).
    Qemu,
    /// An LXC container (`/nodes/{node}/lxc`).
    Lxc,
}

impl GuestKind {
    /// The kind a path segment (`qemu` or `lxc`) names.
    pub(crate) fn from_segment(segment: &str) -> Option<GuestKind> {
        match segment {
            "qemu" => Some(GuestKind::Qemu),
            "lxc" => Some(GuestKind::Lxc),
            _ => None,
        }
    }

    /// `qemu` or `lxc`, as in paths, resource ids and the `type` field.
    pub(crate) fn segment(self) -> &'static str {
        match self {
            GuestKind::Qemu => "qemu",
            GuestKind::Lxc => "lxc",
        }
    }

    /// `VM` or `CT`, as PVE's messages call them.
    pub(crate) fn label(self) -> &'static str {
        match self {
            GuestKind::Qemu => "VM",
            GuestKind::Lxc => "CT",
        }
    }

    /// The directory of the config file under `nodes/{node}/`.
    pub(crate) fn config_dir(self) -> &'static str {
        match self {
            GuestKind::Qemu => "qemu-server",
            GuestKind::Lxc => "lxc",
        }
    }

    fn integer_keys(self) -> &'static [&'static str] {
        match self {
            GuestKind::Qemu => INTEGER_KEYS,
            GuestKind::Lxc => LXC_INTEGER_KEYS,
        }
    }
}

/// LXC config keys PVE types as integers.
const LXC_INTEGER_KEYS: &[&str] = &[
    "console",
    "cores",
    "cpuunits",
    "memory",
    "onboot",
    "protection",
    "swap",
    "template",
    "tty",
    "unprivileged",
];

/// Plain LXC config keys the simulator accepts (a subset of pve-container's schema).
const LXC_PLAIN_KEYS: &[&str] = &[
    "arch",
    "cmode",
    "console",
    "cores",
    "cpulimit",
    "cpuunits",
    "debug",
    "description",
    "features",
    "hookscript",
    "hostname",
    "lock",
    "memory",
    "nameserver",
    "onboot",
    "ostype",
    "protection",
    "rootfs",
    "searchdomain",
    "startup",
    "swap",
    "tags",
    "template",
    "timezone",
    "tty",
    "unprivileged",
];

/// Numbered LXC config keys and the highest index PVE allows for each.
const LXC_INDEXED_KEYS: &[(&str, u32)] = &[("dev", 255), ("mp", 255), ("net", 31), ("unused", 255)];

/// Config keys PVE types as integers (or booleans, which PVE's JSON also writes as 0/1).
const INTEGER_KEYS: &[&str] = &[
    "acpi",
    "autostart",
    "balloon",
    "cores",
    "cpuunits",
    "kvm",
    "localtime",
    "numa",
    "onboot",
    "protection",
    "reboot",
    "shares",
    "sockets",
    "tablet",
    "template",
    "vcpus",
];

/// Plain config keys the simulator accepts (a subset of PVE's qemu-server schema).
const PLAIN_KEYS: &[&str] = &[
    "acpi",
    "affinity",
    "agent",
    "args",
    "audio0",
    "autostart",
    "balloon",
    "bios",
    "boot",
    "bootdisk",
    "cicustom",
    "cipassword",
    "citype",
    "ciuser",
    "cores",
    "cpu",
    "cpulimit",
    "cpuunits",
    "description",
    "efidisk0",
    "freeze",
    "hookscript",
    "hotplug",
    "keyboard",
    "kvm",
    "localtime",
    "lock",
    "machine",
    "memory",
    "meta",
    "name",
    "nameserver",
    "numa",
    "onboot",
    "ostype",
    "protection",
    "reboot",
    "rng0",
    "scsihw",
    "searchdomain",
    "shares",
    "smbios1",
    "sockets",
    "sshkeys",
    "startdate",
    "startup",
    "tablet",
    "tags",
    "tdf",
    "template",
    "tpmstate0",
    "vcpus",
    "vga",
    "vmgenid",
    "watchdog",
];

/// Numbered config keys (`net0`, `scsi1`, …) and the highest index PVE allows for each.
const INDEXED_KEYS: &[(&str, u32)] = &[
    ("hostpci", 15),
    ("ide", 3),
    ("ipconfig", 31),
    ("net", 31),
    ("numa", 7),
    ("parallel", 2),
    ("sata", 5),
    ("scsi", 30),
    ("serial", 3),
    ("unused", 255),
    ("usb", 14),
    ("virtio", 15),
];

/// NIC models PVE accepts as the first element of a `netN` value.
const NIC_MODELS: &[&str] = &["e1000", "e1000e", "rtl8139", "virtio", "vmxnet3"];

/// Whether `key` is a config option the simulator knows for guests of `kind`.
pub(crate) fn is_config_key(kind: GuestKind, key: &str) -> bool {
    let (plain, indexed) = match kind {
        GuestKind::Qemu => (PLAIN_KEYS, INDEXED_KEYS),
        GuestKind::Lxc => (LXC_PLAIN_KEYS, LXC_INDEXED_KEYS),
    };
    if plain.contains(&key) {
        return true;
    }
    indexed.iter().any(|(prefix, max)| {
        key.strip_prefix(prefix)
            .filter(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|digits| digits.parse::<u32>().ok())
            .is_some_and(|index| index <= *max)
    })
}

/// Checks one config value the way PVE's schema would; the error is the per-field message.
pub(crate) fn validate_config_value(kind: GuestKind, key: &str, value: &str) -> Result<(), String> {
    if key == "name" || key == "hostname" {
        return if is_dns_name(value) {
            Ok(())
        } else {
            Err("invalid format - value does not look like a valid DNS name".to_string())
        };
    }
    if key == "memory" {
        let amount = value.strip_prefix("current=").unwrap_or(value);
        return match amount.parse::<u64>() {
            Ok(mib) if mib >= 16 => Ok(()),
            Ok(_) => Err("value must have a minimum value of 16".to_string()),
            Err(_) => Err(format!("type check ('integer') failed - got '{value}'")),
        };
    }
    if kind.integer_keys().contains(&key) {
        let number = value
            .parse::<i64>()
            .map_err(|_| format!("type check ('integer') failed - got '{value}'"))?;
        let minimum = match key {
            "cores" | "sockets" | "vcpus" => 1,
            _ => 0,
        };
        if number < minimum {
            return Err(format!("value must have a minimum value of {minimum}"));
        }
    }
    Ok(())
}

/// PVE's `dns-name` format: dot-separated labels of letters, digits and inner hyphens.
fn is_dns_name(value: &str) -> bool {
    !value.is_empty()
        && value.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// Whether a PVE boolean-ish value means "on".
fn truthy(value: &str) -> bool {
    matches!(value, "1" | "on" | "yes" | "true")
}

/// Changes to a VM config: keys to set, then keys to delete.
#[derive(Clone, Debug, Default)]
pub(crate) struct ConfigChange {
    /// Keys and their new values.
    pub set: Vec<(String, String)>,
    /// Keys to remove.
    pub delete: Vec<String>,
}

/// What a running VM's process looks like.
#[derive(Clone, Debug)]
pub(crate) struct Running {
    /// The QEMU process id.
    pub pid: u32,
    /// When the simulator started counting this VM's uptime.
    pub since: Instant,
    /// Uptime the VM already had at `since` (seeded VMs have been up for a while).
    pub uptime_offset: u64,
    /// Whether qemu-guest-agent answers inside the guest.
    pub agent_running: bool,
    /// How many more address requests (agent calls of a VM, `/interfaces` of a container)
    /// answer as if the guest were still booting.
    pub warmup: u32,
}

/// One snapshot of a guest, as `GET …/snapshot` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Snapshot {
    /// Its name (`snapname`).
    pub name: String,
    /// Its description (empty if none was given).
    pub description: String,
    /// When it was taken, seconds since the Unix epoch.
    pub snaptime: u32,
    /// Whether the VM's RAM was saved (qemu, running VMs only).
    pub vmstate: bool,
    /// The snapshot it was taken on top of.
    pub parent: Option<String>,
}

/// One simulated guest.
#[derive(Clone, Debug)]
pub(crate) struct Guest {
    /// The Proxmox vmid, unique in the cluster.
    pub vmid: u32,
    /// VM or container.
    pub kind: GuestKind,
    /// Index of the node it lives on.
    pub node: usize,
    /// The config file, key by key, as PVE stores it.
    pub config: BTreeMap<String, String>,
    /// The IPv4 address the guest takes on its first NIC when it boots (by DHCP for a
    /// container).
    pub guest_ip: Ipv4Addr,
    /// Whether qemu-guest-agent is installed in the guest.
    pub guest_agent_installed: bool,
    /// The running process, or `None` when stopped.
    pub power: Option<Running>,
    /// Its snapshots, oldest first.
    pub snapshots: Vec<Snapshot>,
}

impl Guest {
    /// Builds the VM a fleet seed describes; `pid` is used if the seed is running.
    pub(crate) fn from_seed(seed: &VmSeed, node: usize, pid: u32, now: Instant) -> Guest {
        let mut config = BTreeMap::new();
        if let Some(name) = &seed.name {
            config.insert("name".to_string(), name.clone());
        }
        let mac = network::format_mac_upper(network::default_mac(seed.vmid, 0));
        let vmid = seed.vmid;
        for (key, value) in [
            (
                "agent",
                if seed.agent_enabled { "1" } else { "0" }.to_string(),
            ),
            ("boot", "order=scsi0;net0".to_string()),
            ("cores", seed.cores.to_string()),
            ("memory", seed.memory_mib.to_string()),
            ("net0", format!("virtio={mac},bridge=vmbr0")),
            ("ostype", "l26".to_string()),
            (
                "scsi0",
                format!("local-lvm:vm-{vmid}-disk-0,iothread=1,size=32G"),
            ),
            ("scsihw", "virtio-scsi-single".to_string()),
            ("sockets", "1".to_string()),
        ] {
            config.insert(key.to_string(), value);
        }
        let mut vm = Guest {
            vmid,
            kind: GuestKind::Qemu,
            node,
            config,
            guest_ip: seed.ip.unwrap_or_else(|| network::default_ipv4(vmid)),
            guest_agent_installed: seed.guest_agent_installed,
            power: None,
            snapshots: Vec::new(),
        };
        if seed.template {
            vm.make_template();
        } else if seed.running {
            vm.boot_seeded(pid, now);
        }
        vm
    }

    /// Boots a seeded guest, which looks as if it booted a while ago (the offset varies).
    pub(crate) fn boot_seeded(&mut self, pid: u32, now: Instant) {
        let offset = 86_400 + u64::from(self.vmid % 97) * 3_601;
        self.boot(pid, now, offset);
    }

    /// Builds a guest created through the API, from already validated config values.
    pub(crate) fn created(
        kind: GuestKind,
        node: usize,
        vmid: u32,
        settings: &[(String, String)],
    ) -> Guest {
        let mut vm = Guest {
            vmid,
            kind,
            node,
            config: BTreeMap::new(),
            guest_ip: network::default_ipv4(vmid),
            guest_agent_installed: true,
            power: None,
            snapshots: Vec::new(),
        };
        vm.apply(&ConfigChange {
            set: settings.to_vec(),
            delete: Vec::new(),
        });
        vm
    }

    /// The name PVE lists: the configured name (`hostname` for a container), or
    /// `VM <vmid>` / `CT <vmid>` for an unnamed guest.
    pub(crate) fn name(&self) -> Cow<'_, str> {
        let key = match self.kind {
            GuestKind::Qemu => "name",
            GuestKind::Lxc => "hostname",
        };
        match self.config.get(key) {
            Some(name) => Cow::Borrowed(name),
            None => Cow::Owned(format!("{} {}", self.kind.label(), self.vmid)),
        }
    }

    /// Sets the name PVE lists (`name` or `hostname`).
    pub(crate) fn rename(&mut self, name: &str) {
        let key = match self.kind {
            GuestKind::Qemu => "name",
            GuestKind::Lxc => "hostname",
        };
        self.config.insert(key.to_string(), name.to_string());
    }

    /// Disk size in bytes: 32 GiB for every VM, the `rootfs` size for a container.
    pub(crate) fn maxdisk(&self) -> u64 {
        match self.kind {
            GuestKind::Qemu => 32 * 1024 * 1024 * 1024,
            GuestKind::Lxc => self
                .config
                .get("rootfs")
                .and_then(|rootfs| size_option(rootfs))
                .unwrap_or(8 * 1024 * 1024 * 1024),
        }
    }

    /// Configured swap in bytes (containers; PVE's default is 512 MiB).
    pub(crate) fn maxswap(&self) -> u64 {
        self.integer("swap").unwrap_or(512) * 1024 * 1024
    }

    /// The `tags` config value, if any.
    pub(crate) fn tags(&self) -> Option<&str> {
        self.config.get("tags").map(String::as_str)
    }

    /// The `lock` config value, if any.
    pub(crate) fn lock(&self) -> Option<&str> {
        self.config.get("lock").map(String::as_str)
    }

    /// Whether the VM's process is running.
    pub(crate) fn is_running(&self) -> bool {
        self.power.is_some()
    }

    /// `running` or `stopped`, as PVE reports it.
    pub(crate) fn status(&self) -> &'static str {
        if self.is_running() {
            "running"
        } else {
            "stopped"
        }
    }

    fn integer(&self, key: &str) -> Option<u64> {
        self.config.get(key).and_then(|v| v.parse().ok())
    }

    /// Virtual CPUs: `vcpus` if set, else cores × sockets (PVE defaults both to 1).
    pub(crate) fn cpus(&self) -> u64 {
        self.integer("vcpus").unwrap_or_else(|| {
            self.integer("cores").unwrap_or(1) * self.integer("sockets").unwrap_or(1)
        })
    }

    /// Configured memory in bytes (PVE's default is 512 MiB).
    pub(crate) fn maxmem(&self) -> u64 {
        let mib = self
            .config
            .get("memory")
            .map(|v| v.strip_prefix("current=").unwrap_or(v))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(512);
        mib * 1024 * 1024
    }

    /// Memory in use: a stable share of `maxmem` while running, 0 when stopped.
    pub(crate) fn mem(&self) -> u64 {
        if self.is_running() {
            self.maxmem() / 100 * (35 + u64::from(self.vmid % 40))
        } else {
            0
        }
    }

    /// Seconds since boot, 0 when stopped.
    pub(crate) fn uptime(&self) -> u64 {
        self.power
            .as_ref()
            .map_or(0, |run| run.uptime_offset + run.since.elapsed().as_secs())
    }

    /// The QEMU pid while running.
    pub(crate) fn pid(&self) -> Option<u32> {
        self.power.as_ref().map(|run| run.pid)
    }

    /// Whether the config enables the guest agent (`agent: 1` or `agent: enabled=1,…`).
    pub(crate) fn agent_enabled(&self) -> bool {
        let Some(value) = self.config.get("agent") else {
            return false;
        };
        for part in value.split(',') {
            match part.split_once('=') {
                Some(("enabled", flag)) => return truthy(flag),
                Some(_) => {}
                None => return truthy(part),
            }
        }
        false
    }

    /// Whether the guest agent answers right now (not while the guest is still booting).
    pub(crate) fn agent_running(&self) -> bool {
        self.power
            .as_ref()
            .is_some_and(|run| run.agent_running && run.warmup == 0)
    }

    /// Whether the guest is still booting: its next address request answers without one.
    pub(crate) fn warming_up(&self) -> bool {
        self.power.as_ref().is_some_and(|run| run.warmup > 0)
    }

    /// Counts one address request against the boot warm-up.
    pub(crate) fn spend_warmup_call(&mut self) {
        if let Some(run) = self.power.as_mut() {
            run.warmup = run.warmup.saturating_sub(1);
        }
    }

    /// Makes the next `calls` address requests answer as if the guest were still booting.
    pub(crate) fn set_warmup(&mut self, calls: u32) {
        if let Some(run) = self.power.as_mut() {
            run.warmup = calls;
        }
    }

    /// Whether the config says `template: 1`.
    pub(crate) fn is_template(&self) -> bool {
        self.config.get("template").is_some_and(|v| truthy(v))
    }

    /// Turns the guest into a template: `template: 1`, and its disks renamed to base images
    /// (`local-lvm:vm-9000-disk-0` → `local-lvm:base-9000-disk-0`), as PVE does on LVM-thin.
    pub(crate) fn make_template(&mut self) {
        let from = format!(":vm-{}-disk-", self.vmid);
        let to = format!(":base-{}-disk-", self.vmid);
        for value in self.config.values_mut() {
            if value.contains(&from) {
                *value = value.replace(&from, &to);
            }
        }
        self.config.insert("template".to_string(), "1".to_string());
    }

    /// The snapshot called `name`.
    pub(crate) fn snapshot(&self, name: &str) -> Option<&Snapshot> {
        self.snapshots.iter().find(|s| s.name == name)
    }

    /// Takes snapshot `name` on top of the current one (`parent` in the config).
    pub(crate) fn take_snapshot(&mut self, name: &str, description: &str, vmstate: bool, now: u32) {
        let parent = self.config.get("parent").cloned();
        self.snapshots.push(Snapshot {
            name: name.to_string(),
            description: description.to_string(),
            snaptime: now,
            vmstate: vmstate && self.is_running() && self.kind == GuestKind::Qemu,
            parent,
        });
        self.config.insert("parent".to_string(), name.to_string());
    }

    /// Removes snapshot `name`; its children (and the current state) move to its parent.
    pub(crate) fn delete_snapshot(&mut self, name: &str) -> Result<(), String> {
        let index = self
            .snapshots
            .iter()
            .position(|s| s.name == name)
            .ok_or_else(|| format!("snapshot '{name}' does not exist"))?;
        let removed = self.snapshots.remove(index);
        for child in &mut self.snapshots {
            if child.parent.as_deref() == Some(name) {
                child.parent.clone_from(&removed.parent);
            }
        }
        if self.config.get("parent").map(String::as_str) == Some(name) {
            match removed.parent {
                Some(parent) => self.config.insert("parent".to_string(), parent),
                None => self.config.remove("parent"),
            };
        }
        Ok(())
    }

    /// The guest `newid` a clone of this one becomes, on node `node`: the config without
    /// snapshot data, `template` or `unusedN`, every NIC with a new MAC, and the disks copied
    /// (`full`) or linked to this template's base images.
    pub(crate) fn clone_as(
        &self,
        newid: u32,
        node: usize,
        full: bool,
        storage: Option<&str>,
    ) -> Guest {
        let mut config = BTreeMap::new();
        let vm_disk = format!("vm-{}-disk-", self.vmid);
        let base_disk = format!("base-{}-disk-", self.vmid);
        let new_disk = format!("vm-{newid}-disk-");
        for (key, value) in &self.config {
            let skip = matches!(key.as_str(), "parent" | "template" | "lock" | "vmstate")
                || key.starts_with("unused");
            if skip {
                continue;
            }
            let nic = key.strip_prefix("net").and_then(|i| i.parse::<u8>().ok());
            let value = if let Some(index) = nic {
                replace_mac(self.kind, value, network::default_mac(newid, index))
            } else if let Some((volume, options)) = disk_volume(value, &vm_disk, &base_disk) {
                let (pool, name) = volume.split_once(':').unwrap_or(("", volume));
                let index = name.rsplit('-').next().unwrap_or("0");
                let pool = storage.filter(|_| full).unwrap_or(pool);
                let target = if full || !name.starts_with("base-") {
                    format!("{pool}:{new_disk}{index}")
                } else {
                    format!("{pool}:{name}/{new_disk}{index}")
                };
                format!("{target}{options}")
            } else {
                value.clone()
            };
            config.insert(key.clone(), value);
        }
        Guest {
            vmid: newid,
            kind: self.kind,
            node,
            config,
            guest_ip: network::default_ipv4(newid),
            guest_agent_installed: self.guest_agent_installed,
            power: None,
            snapshots: Vec::new(),
        }
    }

    /// The disk volumes of this guest (`local-lvm:vm-101-disk-0`), by config key.
    pub(crate) fn disk_volumes(&self) -> Vec<(&str, &str)> {
        let vm_disk = format!("vm-{}-disk-", self.vmid);
        let base_disk = format!("base-{}-disk-", self.vmid);
        self.config
            .iter()
            .filter_map(|(key, value)| {
                disk_volume(value, &vm_disk, &base_disk).map(|(volume, _)| (key.as_str(), volume))
            })
            .collect()
    }

    /// The MAC of `net0`, if the VM has a first NIC.
    pub(crate) fn net0_mac(&self) -> Option<[u8; 6]> {
        let value = self.config.get("net0")?;
        value.split(',').find_map(|part| {
            let (key, mac) = part.split_once('=')?;
            (NIC_MODELS.contains(&key) || key == "macaddr" || key == "hwaddr")
                .then(|| network::parse_mac(mac))
                .flatten()
        })
    }

    /// The IPv4 address the guest agent reports, if it reports one.
    /// A VM reports it through its guest agent; a running container reports the `ip=` of its
    /// `net0` (its `guest_ip` for `ip=dhcp`, nothing for `ip=manual` or no `ip=`).
    pub(crate) fn reported_ip(&self) -> Option<(Ipv4Addr, u8)> {
        match self.kind {
            GuestKind::Qemu => {
                (self.agent_running() && self.net0_mac().is_some()).then_some((self.guest_ip, 24))
            }
            GuestKind::Lxc => {
                if !self.is_running() || self.warming_up() {
                    return None;
                }
                let net0 = self.config.get("net0")?;
                let ip = net0.split(',').find_map(|part| part.strip_prefix("ip="))?;
                if ip == "dhcp" {
                    return Some((self.guest_ip, 24));
                }
                let (address, prefix) = ip.split_once('/')?;
                Some((address.parse().ok()?, prefix.parse().ok()?))
            }
        }
    }

    /// Boots the VM: a new process, uptime from `offset`, agent up if configured and installed.
    pub(crate) fn boot(&mut self, pid: u32, now: Instant, offset: u64) {
        self.power = Some(Running {
            pid,
            since: now,
            uptime_offset: offset,
            agent_running: self.agent_enabled() && self.guest_agent_installed,
            warmup: 0,
        });
    }

    /// Stops the VM's process.
    pub(crate) fn halt(&mut self) {
        self.power = None;
    }

    /// The config digest PVE returns and checks (40 hex digits, as SHA-1 would give).
    pub(crate) fn digest(&self) -> String {
        let mut hasher = Sha256::new();
        for (key, value) in &self.config {
            hasher.update(key.as_bytes());
            hasher.update(b": ");
            hasher.update(value.as_bytes());
            hasher.update(b"\n");
        }
        let mut digest = hex::encode(hasher.finalize());
        digest.truncate(40);
        digest
    }

    /// The config as `GET …/config` returns it, integers typed, plus `digest`.
    pub(crate) fn config_json(&self) -> Map<String, Value> {
        let mut out = Map::new();
        for (key, value) in &self.config {
            let typed = if self.kind.integer_keys().contains(&key.as_str()) {
                value
                    .parse::<i64>()
                    .map_or_else(|_| Value::from(value.as_str()), Value::from)
            } else {
                Value::from(value.as_str())
            };
            out.insert(key.clone(), typed);
        }
        out.insert("digest".to_string(), Value::from(self.digest()));
        out
    }

    /// Applies validated changes, giving new NICs a MAC as PVE does.
    pub(crate) fn apply(&mut self, change: &ConfigChange) {
        for (key, value) in &change.set {
            let index = key.strip_prefix("net").and_then(|i| i.parse::<u8>().ok());
            let value = match (index, self.kind) {
                (Some(index), GuestKind::Qemu) => {
                    with_mac(value, network::default_mac(self.vmid, index))
                }
                (Some(index), GuestKind::Lxc) => {
                    with_hwaddr(value, network::default_mac(self.vmid, index))
                }
                (None, _) => value.clone(),
            };
            self.config.insert(key.clone(), value);
        }
        for key in &change.delete {
            self.config.remove(key);
        }
    }
}

/// The `size=` of a volume property string in bytes (`local-lvm:vm-101-disk-0,size=8G`).
pub(crate) fn size_option(value: &str) -> Option<u64> {
    let size = value
        .split(',')
        .find_map(|part| part.strip_prefix("size="))?;
    let (digits, unit) = size.split_at(size.find(|c: char| !c.is_ascii_digit())?);
    let factor: u64 = match unit {
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        "T" => 1 << 40,
        _ => return None,
    };
    digits.parse::<u64>().ok()?.checked_mul(factor)
}

/// The volume (`local-lvm:vm-101-disk-0`) and the options after it (`,size=32G`) of a disk
/// value that names one of this guest's own disks (`vm_disk` or `base_disk` prefix).
fn disk_volume<'a>(value: &'a str, vm_disk: &str, base_disk: &str) -> Option<(&'a str, &'a str)> {
    let end = value.find(',').unwrap_or(value.len());
    let (volume, options) = value.split_at(end);
    let (volume, options) = match volume.split_once('=') {
        // `volume=local-lvm:…` (a container `mpN`/`rootfs` may name it so).
        Some(("volume", rest)) => (rest, options),
        _ => (volume, options),
    };
    let name = volume.split_once(':')?.1;
    let name = name.rsplit('/').next().unwrap_or(name);
    (name.starts_with(vm_disk) || name.starts_with(base_disk)).then_some((volume, options))
}

/// A NIC value with its MAC replaced by `mac` (`virtio=…`/`macaddr=` for a VM, `hwaddr=` for a
/// container); a NIC without one gets one as on create.
fn replace_mac(kind: GuestKind, value: &str, mac: [u8; 6]) -> String {
    let text = network::format_mac_upper(mac);
    let mut replaced = false;
    let parts: Vec<String> = value
        .split(',')
        .map(|part| match part.split_once('=') {
            Some((key, _))
                if (kind == GuestKind::Qemu && (NIC_MODELS.contains(&key) || key == "macaddr"))
                    || (kind == GuestKind::Lxc && key == "hwaddr") =>
            {
                replaced = true;
                format!("{key}={text}")
            }
            _ => part.to_string(),
        })
        .collect();
    let joined = parts.join(",");
    match (replaced, kind) {
        (true, _) => joined,
        (false, GuestKind::Qemu) => with_mac(&joined, mac),
        (false, GuestKind::Lxc) => with_hwaddr(&joined, mac),
    }
}

/// Adds `hwaddr=MAC` (after `bridge=`, as PVE orders it) to a container NIC without one.
fn with_hwaddr(value: &str, mac: [u8; 6]) -> String {
    let mut parts: Vec<String> = value.split(',').map(str::to_string).collect();
    if parts.iter().any(|part| part.starts_with("hwaddr=")) {
        return value.to_string();
    }
    let at = parts
        .iter()
        .position(|part| part.starts_with("bridge="))
        .map_or(parts.len(), |index| index + 1);
    parts.insert(at, format!("hwaddr={}", network::format_mac_upper(mac)));
    if !parts.iter().any(|part| part.starts_with("type=")) {
        parts.push("type=veth".to_string());
    }
    parts.join(",")
}

/// Rewrites a `netN` value without a MAC (`virtio,bridge=vmbr0`) to `virtio=MAC,bridge=vmbr0`.
fn with_mac(value: &str, mac: [u8; 6]) -> String {
    let mut parts: Vec<String> = value.split(',').map(str::to_string).collect();
    let has_mac = parts.iter().any(|part| {
        part.split_once('=')
            .is_some_and(|(key, _)| NIC_MODELS.contains(&key) || key == "macaddr")
    });
    if has_mac {
        return value.to_string();
    }
    let mac = network::format_mac_upper(mac);
    if let Some(first) = parts.first_mut() {
        if NIC_MODELS.contains(&first.as_str()) {
            *first = format!("{first}={mac}");
        } else if let Some(model) = first.strip_prefix("model=") {
            *first = format!("{model}={mac}");
        }
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seeded(seed: VmSeed) -> Guest {
        Guest::from_seed(&seed, 0, 4242, Instant::now())
    }

    #[test]
    fn config_keys_follow_the_qemu_server_schema() {
        for key in [
            "name", "cores", "net0", "net31", "scsi30", "agent", "unused0",
        ] {
            assert!(is_config_key(GuestKind::Qemu, key), "{key}");
        }
        for key in ["net", "net32", "netx", "scsi31", "colour", "vmid", "node"] {
            assert!(!is_config_key(GuestKind::Qemu, key), "{key}");
        }
    }

    #[test]
    fn values_are_checked_like_pve() {
        assert!(validate_config_value(GuestKind::Qemu, "name", "gold-image").is_ok());
        assert!(validate_config_value(GuestKind::Qemu, "name", "VM 102").is_err());
        assert!(validate_config_value(GuestKind::Qemu, "name", "-bad").is_err());
        assert!(validate_config_value(GuestKind::Qemu, "cores", "four").is_err());
        assert!(validate_config_value(GuestKind::Qemu, "cores", "0").is_err());
        assert!(validate_config_value(GuestKind::Qemu, "memory", "current=4096").is_ok());
        assert!(validate_config_value(GuestKind::Qemu, "memory", "8").is_err());
    }

    #[test]
    fn unnamed_vm_is_listed_as_vm_and_vmid() {
        let vm = seeded(VmSeed {
            name: None,
            ..VmSeed::new(102, "")
        });
        assert_eq!(vm.name(), "VM 102");
        assert!(!vm.config.contains_key("name"));
    }

    #[test]
    fn agent_flag_accepts_property_string_forms() {
        let mut vm = seeded(VmSeed::new(110, "x"));
        for (value, enabled) in [
            ("1", true),
            ("0", false),
            ("enabled=1,fstrim_cloned_disks=1", true),
            ("fstrim_cloned_disks=1,enabled=0", false),
            ("1,type=virtio", true),
        ] {
            vm.config.insert("agent".to_string(), value.to_string());
            assert_eq!(vm.agent_enabled(), enabled, "{value}");
        }
    }

    #[test]
    fn new_nic_without_mac_gets_one() {
        let vm = Guest::created(
            GuestKind::Qemu,
            0,
            300,
            &[("net0".to_string(), "virtio,bridge=vmbr0".to_string())],
        );
        assert_eq!(vm.config["net0"], "virtio=BC:24:11:00:01:2C,bridge=vmbr0");
        assert_eq!(vm.net0_mac(), Some(network::default_mac(300, 0)));
        let vm = Guest::created(
            GuestKind::Qemu,
            0,
            300,
            &[("net1".to_string(), "model=e1000,bridge=vmbr1".to_string())],
        );
        assert_eq!(vm.config["net1"], "e1000=BC:24:11:10:01:2C,bridge=vmbr1");
    }

    #[test]
    fn digest_changes_with_config() {
        let mut vm = seeded(VmSeed::new(110, "x"));
        let before = vm.digest();
        assert_eq!(before.len(), 40);
        vm.config.insert("cores".to_string(), "8".to_string());
        assert_ne!(vm.digest(), before);
        assert_eq!(vm.config_json()["cores"], Value::from(8));
        assert_eq!(vm.config_json()["memory"], Value::from("2048"));
    }

    #[test]
    fn guest_without_agent_reports_no_ip() {
        let vm = seeded(VmSeed {
            guest_agent_installed: false,
            ..VmSeed::new(103, "tftp-server").running_at(Ipv4Addr::new(10, 0, 0, 191))
        });
        assert!(vm.is_running() && vm.agent_enabled() && !vm.agent_running());
        assert_eq!(vm.reported_ip(), None);
    }

    #[test]
    fn container_reports_the_ip_of_its_net0_while_running() {
        let net = |ip: &str| {
            vec![
                ("hostname".to_string(), "pihole".to_string()),
                ("net0".to_string(), format!("name=eth0,bridge=vmbr0,{ip}")),
                (
                    "rootfs".to_string(),
                    "local-lvm:vm-120-disk-0,size=8G".to_string(),
                ),
            ]
        };
        let mut ct = Guest::created(GuestKind::Lxc, 0, 120, &net("ip=10.0.0.53/24,gw=10.0.0.1"));
        assert_eq!(
            ct.config["net0"],
            "name=eth0,bridge=vmbr0,hwaddr=BC:24:11:00:00:78,ip=10.0.0.53/24,gw=10.0.0.1,type=veth"
        );
        assert_eq!(ct.name(), "pihole");
        assert_eq!(ct.maxdisk(), 8 * 1024 * 1024 * 1024);
        assert_eq!(ct.reported_ip(), None, "stopped");
        ct.boot(1, Instant::now(), 0);
        assert_eq!(ct.reported_ip(), Some((Ipv4Addr::new(10, 0, 0, 53), 24)));
        let mut manual = Guest::created(GuestKind::Lxc, 0, 121, &net("ip=manual"));
        manual.boot(2, Instant::now(), 0);
        assert_eq!(manual.reported_ip(), None);
        let mut dhcp = Guest::created(GuestKind::Lxc, 0, 122, &net("ip=dhcp"));
        dhcp.boot(3, Instant::now(), 0);
        assert_eq!(dhcp.reported_ip(), Some((network::default_ipv4(122), 24)));
        assert!(is_config_key(GuestKind::Lxc, "rootfs") && !is_config_key(GuestKind::Lxc, "scsi0"));
    }
}
