//! The VMs a simulator starts with: the reference fleet, generated fleets, or hand-made ones.

use std::net::Ipv4Addr;

/// One VM as it exists when the simulator starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmSeed {
    /// The Proxmox vmid (100 and up).
    pub vmid: u32,
    /// The configured name; `None` is an unnamed VM, which PVE lists as `VM <vmid>`.
    pub name: Option<String>,
    /// Whether the VM is running at start.
    pub running: bool,
    /// The IPv4 address the guest agent reports while the VM runs; `None` derives one from the vmid.
    pub ip: Option<Ipv4Addr>,
    /// Whether the VM config says `agent: 1`.
    pub agent_enabled: bool,
    /// Whether qemu-guest-agent is installed in the guest, so it answers once the VM boots.
    pub guest_agent_installed: bool,
    /// Virtual CPU cores (one socket).
    pub cores: u32,
    /// Memory in MiB.
    pub memory_mib: u64,
    /// Whether the VM is a template (`template: 1`, disks as base images, never running).
    pub template: bool,
}

impl VmSeed {
    /// A stopped VM with an agent configured and installed, 2 cores and 2 GiB.
    pub fn new(vmid: u32, name: &str) -> VmSeed {
        VmSeed {
            vmid,
            name: Some(name.to_string()),
            running: false,
            ip: None,
            agent_enabled: true,
            guest_agent_installed: true,
            cores: 2,
            memory_mib: 2048,
            template: false,
        }
    }

    /// This seed as a template (stopped: a template never runs).
    pub fn as_template(mut self) -> VmSeed {
        self.template = true;
        self.running = false;
        self
    }

    /// This seed, running, reporting `ip` through its guest agent.
    pub fn running_at(mut self, ip: Ipv4Addr) -> VmSeed {
        self.running = true;
        self.ip = Some(ip);
        self
    }

    /// This seed with the given cores and memory.
    pub fn sized(mut self, cores: u32, memory_mib: u64) -> VmSeed {
        self.cores = cores;
        self.memory_mib = memory_mib;
        self
    }

    /// The name PVE shows for this VM: its configured name or `VM <vmid>`.
    pub fn display_name(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("VM {}", self.vmid))
    }
}

/// The set of VMs a simulator starts with; a later seed with the same vmid replaces an earlier one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fleet {
    vms: Vec<VmSeed>,
}

impl Fleet {
    /// A fleet with no VMs.
    pub fn empty() -> Fleet {
        Fleet::default()
    }

    /// The 10 VMs of keeb-dev-02 described in `sync-fleet-data-flow.md`.
    pub fn reference() -> Fleet {
        let ip = |last: u8| Ipv4Addr::new(10, 0, 0, last);
        let unnamed = VmSeed {
            name: None,
            ..VmSeed::new(102, "")
        }
        .sized(1, 2048);
        // tftp-server runs without qemu-guest-agent installed, so PVE answers "QEMU guest agent
        // is not running" and sync records no IP for it. Its real address is 10.0.0.191.
        let tftp = VmSeed {
            guest_agent_installed: false,
            ..VmSeed::new(103, "tftp-server")
                .running_at(ip(191))
                .sized(1, 512)
        };
        Fleet {
            vms: vec![
                VmSeed::new(100, "slate").running_at(ip(33)).sized(2, 4096),
                VmSeed::new(101, "atm10").sized(4, 16384),
                unnamed,
                tftp,
                VmSeed::new(104, "satisfactory").sized(4, 16384),
                VmSeed::new(105, "meatballcraft").sized(4, 12288),
                VmSeed::new(106, "factorio").sized(2, 4096),
                VmSeed::new(107, "calamity")
                    .running_at(ip(208))
                    .sized(4, 8192),
                VmSeed::new(108, "allthemons")
                    .running_at(ip(96))
                    .sized(4, 16384),
                VmSeed::new(109, "gold-image")
                    .running_at(ip(143))
                    .sized(1, 1024),
            ],
        }
    }

    /// `count` VMs for benchmarks: vmids from 1000, names `vm-0001`…, odd-numbered ones running.
    pub fn generated(count: usize) -> Fleet {
        let vms = (0..count)
            .map(|index| {
                let vmid = 1000 + u32::try_from(index).unwrap_or(u32::MAX - 1000);
                let seed = VmSeed::new(vmid, &format!("vm-{:04}", index + 1));
                if index % 2 == 0 {
                    let ip = crate::network::default_ipv4(vmid);
                    seed.running_at(ip)
                } else {
                    seed
                }
            })
            .collect();
        Fleet { vms }
    }

    /// This fleet plus `seed`.
    pub fn with(mut self, seed: VmSeed) -> Fleet {
        self.vms.push(seed);
        self
    }

    /// The seeds, in the order they were added.
    pub fn vms(&self) -> &[VmSeed] {
        &self.vms
    }

    /// How many seeds the fleet holds.
    pub fn len(&self) -> usize {
        self.vms.len()
    }

    /// Whether the fleet holds no seeds.
    pub fn is_empty(&self) -> bool {
        self.vms.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_fleet_matches_sync_fleet_data_flow() {
        let fleet = Fleet::reference();
        let mut rows: Vec<(String, u32, bool, Option<String>)> = fleet
            .vms()
            .iter()
            .map(|vm| {
                let reported = (vm.running && vm.agent_enabled && vm.guest_agent_installed)
                    .then(|| vm.ip.map(|ip| ip.to_string()))
                    .flatten();
                (vm.display_name(), vm.vmid, vm.running, reported)
            })
            .collect();
        rows.sort();
        let s = |t: &str| Some(t.to_string());
        let expected = vec![
            ("VM 102".to_string(), 102, false, None),
            ("allthemons".to_string(), 108, true, s("10.0.0.96")),
            ("atm10".to_string(), 101, false, None),
            ("calamity".to_string(), 107, true, s("10.0.0.208")),
            ("factorio".to_string(), 106, false, None),
            ("gold-image".to_string(), 109, true, s("10.0.0.143")),
            ("meatballcraft".to_string(), 105, false, None),
            ("satisfactory".to_string(), 104, false, None),
            ("slate".to_string(), 100, true, s("10.0.0.33")),
            ("tftp-server".to_string(), 103, true, None),
        ];
        assert_eq!(rows, expected);
    }

    #[test]
    fn generated_fleet_alternates_running_and_stopped() {
        let fleet = Fleet::generated(4);
        let names: Vec<String> = fleet.vms().iter().map(VmSeed::display_name).collect();
        assert_eq!(names, ["vm-0001", "vm-0002", "vm-0003", "vm-0004"]);
        assert_eq!(fleet.vms()[0].vmid, 1000);
        assert!(fleet.vms()[0].running && fleet.vms()[0].ip.is_some());
        assert!(!fleet.vms()[1].running && fleet.vms()[1].ip.is_none());
        assert_eq!(
            Fleet::generated(10_000).vms()[9_999].display_name(),
            "vm-10000"
        );
    }
}
