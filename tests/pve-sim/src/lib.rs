//! A Proxmox VE API simulator: real `/api2/json` paths and shapes over HTTPS, state in memory.
//!
//! It simulates a cluster of one or more nodes. It issues tickets and CSRF tokens, checks them
//! (or API tokens) on every call, lists and changes VMs and containers, lists storage pools and
//! their content and task histories, and runs tasks whose status is `running` on the first poll
//! and `stopped` from the second on — deterministic, never time-based. A task's change (guest
//! started, created, deleted, reconfigured) becomes visible when the task is first reported
//! stopped. Tests change the world between two syncs, or inject malformed answers, with
//! `Simulator::change` (or `POST /_sim/change`). This is the Proxmox part of "Testing with real
//! parts" in `DESIGN.md`.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use pve_sim::{Fleet, SimConfig, Simulator};
//!
//! let sim = Simulator::start(SimConfig { fleet: Fleet::generated(100), ..SimConfig::default() }).await?;
//! println!("{} pinned by {}", sim.url(), sim.cert_sha256());
//! # Ok(()) }
//! ```
//!
//! From synchronous code, `Simulator::start_blocking` runs the server on its own thread.

#![warn(missing_docs)]

mod api;
mod auth;
mod change;
mod fleet;
mod guest;
mod network;
mod seed;
mod server;
mod storage;
mod tasks;

pub use change::{Fault, WorldChange};
pub use fleet::{Fleet, VmSeed};
pub use seed::{CtSeed, NodeSeed, StorageSeed, VolumeSeed};
pub use server::Simulator;

/// How to start a simulator (its `Debug` output hides the password and token secrets).
#[derive(Clone)]
pub struct SimConfig {
    /// The node name, as in `/nodes/{node}` and in UPIDs.
    pub node: String,
    /// The one user that can log in, with its realm: `root@pam`.
    pub username: String,
    /// That user's password.
    pub password: String,
    /// API tokens as (`USER@REALM!TOKENID`, secret).
    pub api_tokens: Vec<(String, String)>,
    /// The VMs the first node starts with.
    pub fleet: Fleet,
    /// The containers the first node starts with.
    pub containers: Vec<CtSeed>,
    /// The cluster's further nodes, after `node`, each with its own guests.
    pub nodes: Vec<NodeSeed>,
    /// The storage pools of `storage.cfg`.
    pub storage: Vec<StorageSeed>,
    /// How many finished tasks to seed, spread round-robin over the nodes (about one in ten
    /// ends with `WARNINGS: N`, one in thirteen with an error).
    pub tasks: usize,
    /// The port to bind on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// How many address requests after a guest boots (by a start, reboot or `create
    /// start=1` task, or a `start_guest` change) answer as if it were still booting: a VM's
    /// guest-agent calls fail with `QEMU guest agent is not running`, a container's
    /// `/interfaces` list `eth0` without `inet`. 0 (the default): the address is there at once.
    pub agent_warmup: u32,
}

impl std::fmt::Debug for SimConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let token_ids: Vec<&str> = self.api_tokens.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("SimConfig")
            .field("node", &self.node)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("api_tokens", &token_ids)
            .field("fleet", &format_args!("{} VMs", self.fleet.len()))
            .field("containers", &self.containers.len())
            .field(
                "nodes",
                &self
                    .nodes
                    .iter()
                    .map(|n| n.name.as_str())
                    .collect::<Vec<_>>(),
            )
            .field("storage", &self.storage.len())
            .field("tasks", &self.tasks)
            .field("port", &self.port)
            .field("agent_warmup", &self.agent_warmup)
            .finish()
    }
}

impl Default for SimConfig {
    /// The reference home lab: node keeb-dev-02 with the 10 reference VMs, containers pihole
    /// (900, running, 10.0.0.53) and wiki (901, stopped), pools `local`, `local-lvm` and
    /// `nfs-backup`, and 60 finished tasks.
    fn default() -> SimConfig {
        SimConfig {
            node: "keeb-dev-02".to_string(),
            username: "root@pam".to_string(),
            password: "simulator-password".to_string(),
            api_tokens: Vec::new(),
            fleet: Fleet::reference(),
            containers: seed::reference_containers(),
            nodes: Vec::new(),
            storage: seed::reference_storage(),
            tasks: 60,
            port: 0,
            agent_warmup: 0,
        }
    }
}

impl SimConfig {
    /// This config plus two templates on the first node: VM 9000 `debian-12-template`
    /// (`agent: 1`, `net0`, 2 cores, 2048 MiB, disk `local-lvm:base-9000-disk-0`) and
    /// container 9001 `debian-12-ct-template` (`ip=dhcp`, 1 core, 512 MiB). Not part of
    /// `default()`, whose 10 VMs and 2 containers tests count.
    pub fn with_templates(mut self) -> SimConfig {
        let (vm, ct) = seed::reference_templates();
        self.fleet = self.fleet.with(vm);
        self.containers.push(ct);
        self
    }

    /// A 3-node cluster: keeb-dev-02 as in `default()`, plus keeb-dev-03 (VMs 200–202,
    /// containers mqtt 300 with 10.0.0.80 and scratch 301 running without IPv4) and keeb-dev-04
    /// (VMs 210–211, container grafana 310 with 10.0.0.91); the same 3 pools; 90 tasks.
    pub fn test_cluster() -> SimConfig {
        SimConfig {
            nodes: seed::test_cluster_nodes(),
            tasks: 90,
            ..SimConfig::default()
        }
    }

    /// A generated world for benchmarks: `nodes` nodes (`keeb-dev-02`, `keeb-dev-03`, …),
    /// `guests` guests spread round-robin over them (vmids from 1000, every fifth a container,
    /// every other one running), the 3 reference pools and `tasks` finished tasks.
    pub fn generated(nodes: usize, guests: usize, tasks: usize) -> SimConfig {
        let first = SimConfig::default().node;
        let nodes = nodes.max(1);
        let mut others: Vec<NodeSeed> = (1..nodes)
            .map(|index| NodeSeed {
                name: format!("keeb-dev-{:02}", index + 2),
                fleet: Fleet::empty(),
                containers: Vec::new(),
            })
            .collect();
        let mut fleet = Fleet::empty();
        let mut containers = Vec::new();
        for index in 0..guests {
            let node = index % nodes;
            match (seed::generated_guest(index), node) {
                (seed::GeneratedGuest::Vm(vm), 0) => fleet = fleet.with(vm),
                (seed::GeneratedGuest::Ct(ct), 0) => containers.push(ct),
                (seed::GeneratedGuest::Vm(vm), n) => {
                    let other = &mut others[n - 1];
                    other.fleet = std::mem::take(&mut other.fleet).with(vm);
                }
                (seed::GeneratedGuest::Ct(ct), n) => others[n - 1].containers.push(ct),
            }
        }
        SimConfig {
            node: first,
            fleet,
            containers,
            nodes: others,
            tasks,
            ..SimConfig::default()
        }
    }
}
