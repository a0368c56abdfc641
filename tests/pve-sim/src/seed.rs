//! Seeds beyond VMs: containers, further nodes, storage pools and their volumes, and the
//! reference, test-cluster and generated worlds built from them.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Instant;

use crate::fleet::{Fleet, VmSeed};
use crate::guest::{Guest, GuestKind};
use crate::network;

/// One LXC container as it exists when the simulator starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CtSeed {
    /// The vmid, unique in the cluster (a VM seed with the same vmid wins).
    pub vmid: u32,
    /// The container's hostname, which PVE lists as its name.
    pub hostname: String,
    /// Whether the container runs at start.
    pub running: bool,
    /// A static IPv4 on `net0` (`ip=X/24`); `None` is `ip=manual`, so it reports no IPv4.
    pub ip: Option<Ipv4Addr>,
    /// CPU cores.
    pub cores: u32,
    /// Memory in MiB.
    pub memory_mib: u64,
    /// Swap in MiB.
    pub swap_mib: u64,
    /// Root disk size in GiB, on `local-lvm`.
    pub disk_gib: u64,
    /// `tags` (`a;b`), or `None` for none.
    pub tags: Option<String>,
    /// `ip=dhcp` on `net0` (it then reports the address derived from its vmid); wins over `ip`.
    pub dhcp: bool,
    /// Whether the container is a template (`template: 1`, root disk a base image, never
    /// running).
    pub template: bool,
}

impl CtSeed {
    /// A stopped container without IPv4: 1 core, 512 MiB, 512 MiB swap, 8 GiB disk.
    pub fn new(vmid: u32, hostname: &str) -> CtSeed {
        CtSeed {
            vmid,
            hostname: hostname.to_string(),
            running: false,
            ip: None,
            cores: 1,
            memory_mib: 512,
            swap_mib: 512,
            disk_gib: 8,
            tags: None,
            dhcp: false,
            template: false,
        }
    }

    /// This seed with `ip=dhcp` on `net0`.
    pub fn with_dhcp(mut self) -> CtSeed {
        self.dhcp = true;
        self
    }

    /// This seed as a template (stopped: a template never runs).
    pub fn as_template(mut self) -> CtSeed {
        self.template = true;
        self.running = false;
        self
    }

    /// This seed with a static IPv4 address.
    pub fn with_ip(mut self, ip: Ipv4Addr) -> CtSeed {
        self.ip = Some(ip);
        self
    }

    /// This seed, running.
    pub fn running(mut self) -> CtSeed {
        self.running = true;
        self
    }

    /// This seed with the given cores and memory.
    pub fn sized(mut self, cores: u32, memory_mib: u64) -> CtSeed {
        self.cores = cores;
        self.memory_mib = memory_mib;
        self
    }

    /// This seed with `tags` (`dns;infra`).
    pub fn tagged(mut self, tags: &str) -> CtSeed {
        self.tags = Some(tags.to_string());
        self
    }

    /// The container this seed describes, on node index `node`.
    pub(crate) fn guest(&self, node: usize, pid: u32, now: Instant) -> Guest {
        let vmid = self.vmid;
        let mac = network::format_mac_upper(network::default_mac(vmid, 0));
        let ip = match self.ip {
            _ if self.dhcp => "ip=dhcp".to_string(),
            Some(ip) => format!("ip={ip}/24,gw=10.0.0.1"),
            None => "ip=manual".to_string(),
        };
        let mut config = BTreeMap::new();
        for (key, value) in [
            ("arch", "amd64".to_string()),
            ("cores", self.cores.to_string()),
            ("hostname", self.hostname.clone()),
            ("memory", self.memory_mib.to_string()),
            (
                "net0",
                format!("name=eth0,bridge=vmbr0,hwaddr={mac},{ip},type=veth"),
            ),
            ("onboot", u8::from(self.running).to_string()),
            ("ostype", "debian".to_string()),
            (
                "rootfs",
                format!("local-lvm:vm-{vmid}-disk-0,size={}G", self.disk_gib),
            ),
            ("swap", self.swap_mib.to_string()),
            ("unprivileged", "1".to_string()),
        ] {
            config.insert(key.to_string(), value);
        }
        if let Some(tags) = &self.tags {
            config.insert("tags".to_string(), tags.clone());
        }
        let mut guest = Guest {
            vmid,
            kind: GuestKind::Lxc,
            node,
            config,
            guest_ip: self.ip.unwrap_or_else(|| network::default_ipv4(vmid)),
            guest_agent_installed: false,
            power: None,
            snapshots: Vec::new(),
        };
        if self.template {
            guest.make_template();
        } else if self.running {
            guest.boot_seeded(pid, now);
        }
        guest
    }
}

/// A node of the cluster after the first one (`SimConfig.node`), with its own guests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeSeed {
    /// The node name, as in `/nodes/{node}` and in UPIDs.
    pub name: String,
    /// Its VMs.
    pub fleet: Fleet,
    /// Its containers.
    pub containers: Vec<CtSeed>,
}

/// One file on a storage pool (ISO, container template, backup) when the simulator starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolumeSeed {
    /// The volume name after `storage:`, e.g. `iso/debian-12.7.0-amd64-netinst.iso`.
    pub volume: String,
    /// `iso`, `vztmpl` or `backup`.
    pub content: String,
    /// `iso`, `tzst`, `vma.zst`, …
    pub format: String,
    /// Size in bytes.
    pub size: u64,
    /// Creation time, seconds since the Unix epoch.
    pub ctime: u64,
    /// The guest a backup belongs to.
    pub vmid: Option<u32>,
}

impl VolumeSeed {
    /// A volume of `content` type with format `format`.
    pub fn new(volume: &str, content: &str, format: &str, size: u64, ctime: u64) -> VolumeSeed {
        VolumeSeed {
            volume: volume.to_string(),
            content: content.to_string(),
            format: format.to_string(),
            size,
            ctime,
            vmid: None,
        }
    }

    /// A backup of guest `vmid`.
    pub fn backup(vmid: u32, kind: &str, ctime: u64, size: u64) -> VolumeSeed {
        let (format, ext) = if kind == "lxc" {
            ("tar.zst", "tar.zst")
        } else {
            ("vma.zst", "vma.zst")
        };
        VolumeSeed {
            volume: format!("backup/vzdump-{kind}-{vmid}-{ctime}.{ext}"),
            content: "backup".to_string(),
            format: format.to_string(),
            size,
            ctime,
            vmid: Some(vmid),
        }
    }
}

/// One storage pool of `storage.cfg`. A pool that is not shared exists on every node with its
/// own usage (starting at `used`) and a copy of `volumes`; a shared one is the same everywhere.
#[derive(Clone, Debug, PartialEq)]
pub struct StorageSeed {
    /// The storage id, e.g. `local-lvm`.
    pub id: String,
    /// The plugin type: `dir`, `lvmthin`, `nfs`, …
    pub kind: String,
    /// Content types, comma-separated: `iso,vztmpl,backup`.
    pub content: String,
    /// The mount path, for file-based pools.
    pub path: Option<String>,
    /// Whether every node sees the same pool.
    pub shared: bool,
    /// `false` is `disable: 1` in `storage.cfg`.
    pub enabled: bool,
    /// Capacity in bytes.
    pub total: u64,
    /// Bytes in use at start.
    pub used: u64,
    /// Files on the pool (guest disks are listed from the guests' configs, not from here).
    pub volumes: Vec<VolumeSeed>,
}

/// 1 GiB.
const GIB: u64 = 1024 * 1024 * 1024;

/// A fixed point in time for seeded volumes and tasks: 2024-11-14 22:13:20 UTC.
pub(crate) const SEED_EPOCH: u64 = 1_731_622_400;

/// The reference home lab's pools: `local` (dir), `local-lvm` (lvmthin), `nfs-backup` (shared
/// nfs), with ISOs, templates and backups of the reference guests.
pub(crate) fn reference_storage() -> Vec<StorageSeed> {
    let t = SEED_EPOCH;
    vec![
        StorageSeed {
            id: "local".to_string(),
            kind: "dir".to_string(),
            content: "iso,vztmpl,backup".to_string(),
            path: Some("/var/lib/vz".to_string()),
            shared: false,
            enabled: true,
            total: 100 * GIB,
            used: 24 * GIB,
            volumes: vec![
                VolumeSeed::new(
                    "iso/debian-12.7.0-amd64-netinst.iso",
                    "iso",
                    "iso",
                    658_505_728,
                    t - 86_400 * 30,
                ),
                VolumeSeed::new(
                    "iso/ubuntu-24.04.1-live-server-amd64.iso",
                    "iso",
                    "iso",
                    2_773_874_688,
                    t - 86_400 * 20,
                ),
                VolumeSeed::new(
                    "vztmpl/debian-12-standard_12.7-1_amd64.tar.zst",
                    "vztmpl",
                    "tzst",
                    126_083_328,
                    t - 86_400 * 10,
                ),
                VolumeSeed::backup(100, "qemu", t - 86_400, 3_221_225_472),
            ],
        },
        StorageSeed {
            id: "local-lvm".to_string(),
            kind: "lvmthin".to_string(),
            content: "images,rootdir".to_string(),
            path: None,
            shared: false,
            enabled: true,
            total: 1_800 * GIB,
            used: 420 * GIB,
            volumes: Vec::new(),
        },
        StorageSeed {
            id: "nfs-backup".to_string(),
            kind: "nfs".to_string(),
            content: "backup,iso".to_string(),
            path: Some("/mnt/pve/nfs-backup".to_string()),
            shared: true,
            enabled: true,
            total: 4_000 * GIB,
            used: 1_200 * GIB,
            volumes: vec![
                VolumeSeed::backup(108, "qemu", t - 86_400 * 2, 9_663_676_416),
                VolumeSeed::backup(108, "qemu", t - 86_400, 9_771_050_598),
                VolumeSeed::backup(900, "lxc", t - 86_400, 412_090_368),
            ],
        },
    ]
}

/// The reference home lab's containers on keeb-dev-02: pihole (running, 10.0.0.53) and wiki
/// (stopped).
pub(crate) fn reference_containers() -> Vec<CtSeed> {
    vec![
        CtSeed::new(900, "pihole")
            .with_ip(Ipv4Addr::new(10, 0, 0, 53))
            .running()
            .sized(2, 1024)
            .tagged("dns;infra"),
        CtSeed::new(901, "wiki")
            .with_ip(Ipv4Addr::new(10, 0, 0, 54))
            .sized(1, 2048),
    ]
}

/// The templates `SimConfig::with_templates` adds to the first node: VM 9000
/// `debian-12-template` (agent, `net0`, 2 cores, 2048 MiB) and container 9001
/// `debian-12-ct-template` (`ip=dhcp`, 1 core, 512 MiB).
pub(crate) fn reference_templates() -> (VmSeed, CtSeed) {
    (
        VmSeed::new(9000, "debian-12-template").as_template(),
        CtSeed::new(9001, "debian-12-ct-template")
            .with_dhcp()
            .as_template(),
    )
}

/// The other two nodes of the test cluster, with a few VMs and containers each.
pub(crate) fn test_cluster_nodes() -> Vec<NodeSeed> {
    let ip = |last: u8| Ipv4Addr::new(10, 0, 0, last);
    vec![
        NodeSeed {
            name: "keeb-dev-03".to_string(),
            fleet: Fleet::empty()
                .with(VmSeed::new(200, "gitlab").running_at(ip(70)).sized(4, 8192))
                .with(VmSeed::new(201, "runner-01").running_at(ip(71)))
                .with(VmSeed::new(202, "staging")),
            containers: vec![
                CtSeed::new(300, "mqtt")
                    .with_ip(ip(80))
                    .running()
                    .tagged("iot"),
                // Running, but net0 is `ip=manual`: interfaces list no IPv4.
                CtSeed::new(301, "scratch").running(),
            ],
        },
        NodeSeed {
            name: "keeb-dev-04".to_string(),
            fleet: Fleet::empty()
                .with(VmSeed::new(210, "nas-test").running_at(ip(90)))
                .with(VmSeed::new(211, "win11").sized(4, 8192)),
            containers: vec![CtSeed::new(310, "grafana").with_ip(ip(91)).running()],
        },
    ]
}

/// Guest `index` of a generated world: vmid 1000 + index, every fifth one a container, every
/// other one running; VMs are `vm-00001`…, containers `ct-00005`….
pub(crate) enum GeneratedGuest {
    /// A VM.
    Vm(VmSeed),
    /// A container.
    Ct(CtSeed),
}

/// The guest seed at `index` of a generated world.
pub(crate) fn generated_guest(index: usize) -> GeneratedGuest {
    let vmid = 1000 + u32::try_from(index).unwrap_or(u32::MAX - 1000);
    let running = index.is_multiple_of(2);
    let ip = network::default_ipv4(vmid);
    if index % 5 == 4 {
        let mut ct = CtSeed::new(vmid, &format!("ct-{:05}", index + 1)).with_ip(ip);
        ct.running = running;
        GeneratedGuest::Ct(ct)
    } else {
        let vm = VmSeed::new(vmid, &format!("vm-{:05}", index + 1));
        GeneratedGuest::Vm(if running { vm.running_at(ip) } else { vm })
    }
}
