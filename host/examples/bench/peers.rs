//! `--peers`: the same sync as `orch run sync-fleet` by a Python `requests` script and by
//! Ansible's Proxmox modules (bench/peers/, installed into a virtualenv by its setup.sh).

use super::proxmox::Peer;
use std::path::{Path, PathBuf};
use std::process::Command;

const NODE: &str = "keeb-dev-02";

fn peers_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/peers")
}

fn venv() -> PathBuf {
    std::env::var_os("ORCH_BENCH_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/orch-bench-venv")
        })
}

/// The peers, with the password in a 0600 file under `tmp` (never on a command line).
pub fn peers(tmp: &Path) -> Vec<Peer> {
    let password_file = tmp.join("peer-password");
    std::fs::write(&password_file, "bench-password").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&password_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let venv = venv();
    let python = {
        let (venv, file) = (venv.clone(), password_file.clone());
        move |url: &str, out: &Path| {
            let mut cmd = Command::new(venv.join("bin/python"));
            cmd.arg(peers_dir().join("sync_fleet.py"))
                .args(["--url", url, "--node", NODE, "--password-file"])
                .arg(&file)
                .arg("--out")
                .arg(out);
            cmd
        }
    };
    let ansible = {
        let (venv, file) = (venv.clone(), password_file.clone());
        move |url: &str, out: &Path| {
            let mut cmd = Command::new(venv.join("bin/ansible-playbook"));
            cmd.arg(peers_dir().join("sync_fleet.yml"))
                .env("PROXMOX_API_URL", url)
                .env("PROXMOX_NODE", NODE)
                .env("PROXMOX_PASSWORD_FILE", &file)
                .env("OUT_DIR", out)
                .env("ANSIBLE_LOCALHOST_WARNING", "False")
                .env("ANSIBLE_INVENTORY_UNPARSED_WARNING", "False");
            cmd
        }
    };
    vec![
        Peer {
            name: "Python requests",
            command: Box::new(python),
            stdin: None,
            rounds: usize::MAX,
        },
        Peer {
            name: "Ansible proxmox modules",
            command: Box::new(ansible),
            stdin: None,
            // Each module run is a Python process: ~30 s a sync on a loaded 2-core machine.
            rounds: 3,
        },
    ]
}
