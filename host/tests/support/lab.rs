//! The home-lab example repository (`workflows/homelab`) wired to a Proxmox VE simulator.

use super::{Run, TestRepo};
use pve_sim::{SimConfig, Simulator};
use serde_json::Value;
use std::path::Path;

/// The password the simulator accepts and the vault holds.
pub const PASSWORD: &str = "s3cret-pve-password";

/// A repository holding the homelab models and workflows, and the simulator they talk to.
pub struct Lab {
    /// The repository.
    pub repo: TestRepo,
    /// The Proxmox VE simulator.
    pub sim: Simulator,
}

impl Lab {
    /// A lab whose simulator starts from `config` (its password is replaced by [`PASSWORD`]).
    pub fn with_config(config: SimConfig) -> Self {
        let sim = Simulator::start_blocking(SimConfig {
            password: PASSWORD.into(),
            ..config
        })
        .expect("simulator");
        let repo = TestRepo::new(&["proxmox"]);
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../workflows/homelab");
        for dir in ["models", "workflows"] {
            for e in std::fs::read_dir(example.join(dir)).unwrap().flatten() {
                std::fs::copy(e.path(), repo.path().join(dir).join(e.file_name())).unwrap();
            }
        }
        std::fs::copy(example.join("orch.yaml"), repo.path().join("orch.yaml")).unwrap();
        repo.orch_stdin(&["vault", "put", "proxmox-vault", "password"], PASSWORD)
            .ok();
        Lab { repo, sim }
    }

    /// Runs `orch` in the repository against the simulator.
    pub fn orch(&self, args: &[&str]) -> Run {
        let mut cmd = self.repo.command(args);
        cmd.env("PROXMOX_API_URL", self.sim.url());
        Run::from_output(cmd.output().unwrap())
    }

    /// The attributes of `model`'s resource `name` (latest version).
    pub fn resource(&self, model: &str, name: &str) -> Value {
        self.orch(&["--json", "data", "get", model, name])
            .ok()
            .json()["attributes"]
            .clone()
    }
}
