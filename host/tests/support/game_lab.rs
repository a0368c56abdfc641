//! The game-server test rig (moved from `game_ops.rs`, shared with `chat.rs`): the homelab
//! repository, the Proxmox simulator's game VMs each on a test host of its own with a real
//! sshd, tmux consoles standing in for the game servers, and the Grafana simulator.

use super::Run;
use super::TestRepo;
use super::prometheus::free_port;
use super::sshd::{Sshd, TestHost};
use pve_sim::{Fleet, SimConfig, VmSeed};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub const PVE_PASSWORD: &str = "pve-game-ops";
pub const GRAFANA_TOKEN: &str = "glsa_game_ops_token_1312";
pub const CALAMITY_VMID: u32 = 107;
pub const ALLTHEMONS_VMID: u32 = 108;
pub const INFINITY_VMID: u32 = 110;

/// A stand-in docker CLI on the calamity VM. Records every call; `compose up -d` and `compose
/// down` start and stop the container (here: the tmux session `terraria` running the console);
/// `compose pull` pulls nothing; `exec <container> <cmd…>` runs `<cmd…>` as the container would.
pub const DOCKER_SHIM: &str = r#"#!/bin/sh
d=$(cd "$(dirname "$0")" && pwd)
echo "$*" >> "$d/docker.log"
running() { tmux has-session -t =terraria 2>/dev/null; }
case "$1" in
  exec) shift 2; exec "$@" ;;
  compose) ;;
  *) exit 0 ;;
esac
case "$*" in
  *"up -d"*) running || tmux new-session -d -s terraria "$d/console.sh" ;;
  *down*) if running; then tmux kill-session -t =terraria; fi ;;
esac
exit 0
"#;

/// A stand-in Terraria console: the vanilla dedicated server's prompt and answers; players
/// come from ./players (one name a line); every line typed is kept in ./input.log.
pub const TERRARIA_CONSOLE: &str = r#"#!/bin/sh
cd "$(dirname "$0")"
while :; do
  printf ': '
  IFS= read -r line || exit 0
  echo "$line" >> input.log
  case "$line" in
    playing)
      n=0
      while IFS= read -r p; do
        [ -n "$p" ] || continue
        n=$((n + 1)); echo "$p (127.0.0.1:5000$n)"
      done < players
      case $n in
        0) echo "No players connected." ;;
        1) echo "1 player connected." ;;
        *) echo "$n players connected." ;;
      esac ;;
    "say "*) echo "<Server> ${line#say }" ;;
    exit) echo "Saving world..."; exit 0 ;;
    *) echo "Invalid command." ;;
  esac
done
"#;

/// A stand-in Minecraft console (the server's run.sh): reads commands from the tmux pane and
/// logs the real console lines to logs/latest.log (`list`, `op`, `deop`, `stop`); players come
/// from ./players.
pub const MINECRAFT_CONSOLE: &str = r#"#!/bin/sh
cd "$(dirname "$0")"
mkdir -p logs
log=logs/latest.log
echo "[12:00:00] [Server thread/INFO]: Done (3.2s)! For help, type \"help\"" >> "$log"
while IFS= read -r line; do
  case "$line" in
    list)
      n=$(grep -c . players)
      names=$(grep . players | paste -sd, - | sed 's/,/, /g')
      echo "[12:00:01] [Server thread/INFO]: There are $n of a max of 20 players online: $names" >> "$log" ;;
    stop) echo "[12:00:02] [Server thread/INFO]: Stopping the server" >> "$log"; exit 0 ;;
    "op "*) echo "[12:00:01] [Server thread/INFO]: Made ${line#op } a server operator" >> "$log" ;;
    "deop "*) echo "[12:00:01] [Server thread/INFO]: Made ${line#deop } no longer a server operator" >> "$log" ;;
    *) echo "[12:00:01] [Server thread/INFO]: Unknown or incomplete command" >> "$log" ;;
  esac
done
"#;

/// The game VMs, in the order their test hosts are made.
pub const SERVERS: [(&str, u32); 3] = [
    ("calamity", CALAMITY_VMID),
    ("allthemons", ALLTHEMONS_VMID),
    ("infinity", INFINITY_VMID),
];

/// The homelab repository with the game plugins, the Proxmox simulator (calamity, allthemons
/// and infinity running, each on its own test host with its own sshd on one shared port), the
/// Grafana simulator, and the game VMs' files (one filesystem): one directory per server, the
/// textfile collector directory, the player log, and the tmux server every SSH login uses
/// (sshd sets TMUX_TMPDIR), killed on drop.
pub struct GameLab {
    pub repo: TestRepo,
    pub pve: pve_sim::Simulator,
    pub grafana: grafana_sim::Simulator,
    pub sshds: Vec<Sshd>,
    pub dir: tempfile::TempDir,
    _hosts: Vec<TestHost>,
}

impl GameLab {
    pub fn new() -> GameLab {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for sub in ["calamity", "allthemons", "infinity", "textfile", "tmux"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        for (file, text) in [
            ("calamity/docker", DOCKER_SHIM),
            ("calamity/console.sh", TERRARIA_CONSOLE),
            ("allthemons/run.sh", MINECRAFT_CONSOLE),
            ("infinity/run.sh", MINECRAFT_CONSOLE),
        ] {
            write_executable(&d.join(file), text);
        }
        let hosts: Vec<TestHost> = SERVERS.iter().map(|_| TestHost::create()).collect();
        let port = free_port();
        let tmux = format!("SetEnv TMUX_TMPDIR={}\n", d.join("tmux").display());
        let sshds: Vec<Sshd> = hosts
            .iter()
            .map(|host| Sshd::start_on_with_config(host, port, &tmux))
            .collect();
        // One key in the vault logs in everywhere.
        for sshd in &sshds[1..] {
            sshd.authorize(&sshds[0].path("user_key.pub"));
        }
        let mut fleet = Fleet::empty();
        for ((name, vmid), host) in SERVERS.iter().zip(&hosts) {
            fleet = fleet.with(VmSeed::new(*vmid, name).running_at(host.addr.parse().unwrap()));
        }
        let pve = pve_sim::Simulator::start_blocking(SimConfig {
            password: PVE_PASSWORD.into(),
            fleet,
            ..Default::default()
        })
        .expect("Proxmox simulator");
        let grafana = grafana_sim::Simulator::start_blocking(grafana_sim::SimConfig {
            token: GRAFANA_TOKEN.into(),
            port: 0,
        })
        .expect("Grafana simulator");
        let repo = TestRepo::new(&["proxmox", "minecraft", "terraria", "docker", "grafana"]);
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../workflows/homelab");
        for sub in ["models", "workflows"] {
            for e in std::fs::read_dir(example.join(sub)).unwrap().flatten() {
                std::fs::copy(e.path(), repo.path().join(sub).join(e.file_name())).unwrap();
            }
        }
        std::fs::copy(example.join("orch.yaml"), repo.path().join("orch.yaml")).unwrap();
        for (vault, key, secret) in [
            ("proxmox-vault", "password", PVE_PASSWORD.to_string()),
            ("ssh-vault", "private-key", sshds[0].user_key()),
            ("grafana-vault", "token", GRAFANA_TOKEN.to_string()),
        ] {
            repo.orch_stdin(&["vault", "put", vault, key], &secret).ok();
        }
        for sshd in &sshds {
            repo.orch(&["ssh", "trust", &format!("{}:{}", sshd.listen, sshd.port)])
                .ok();
        }
        GameLab {
            repo,
            pve,
            grafana,
            sshds,
            dir,
            _hosts: hosts,
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap_or_default()
    }

    /// Runs `orch ARGS` in the repository with the lab's environment.
    pub fn orch(&self, args: &[&str]) -> Run {
        Run::from_output(self.command(args).output().unwrap())
    }

    /// `orch ARGS` in the repository with the lab's environment, not yet run.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = self.repo.command(args);
        cmd.env("PROXMOX_API_URL", self.pve.url())
            .env("SSH_PORT", self.sshds[0].port.to_string())
            .env("SSH_USER", &self.sshds[0].user)
            .env("GRAFANA_URL", self.grafana.url())
            .env("CALAMITY_DIR", self.path("calamity"))
            .env("DOCKER_BIN", self.path("calamity/docker"))
            .env("ALLTHEMONS_DIR", self.path("allthemons"))
            .env("INFINITY_DIR", self.path("infinity"))
            .env("GAME_METRICS_DIR", self.path("textfile"))
            .env("GAME_PLAYER_LOG", self.path("game-players.log"));
        cmd
    }

    /// `tmux ARGS` on the lab's tmux server (the one the game VMs' logins use).
    pub fn tmux(&self, args: &[&str]) -> bool {
        Command::new("tmux")
            .args(args)
            .env("TMUX_TMPDIR", self.path("tmux"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }

    pub fn session_runs(&self, session: &str) -> bool {
        self.tmux(&["has-session", "-t", &format!("={session}")])
    }

    /// Writes `server`'s player list.
    pub fn players(&self, server: &str, names: &[&str]) {
        let mut list = names.join("\n");
        list.push('\n');
        std::fs::write(self.path(&format!("{server}/players")), list).unwrap();
    }

    /// Starts the Minecraft server `server` (its run.sh in tmux session `server`).
    pub fn start_minecraft(&self, server: &str) {
        let dir = self.path(server);
        let started = self.tmux(&[
            "new-session",
            "-d",
            "-s",
            server,
            "-c",
            dir.to_str().unwrap(),
            dir.join("run.sh").to_str().unwrap(),
        ]);
        assert!(started, "tmux new-session {server}");
    }

    /// Starts the calamity container the way Compose would (through the docker shim).
    pub fn start_calamity(&self) {
        let status = Command::new(self.path("calamity/docker"))
            .args(["compose", "up", "-d"])
            .env("TMUX_TMPDIR", self.path("tmux"))
            .status()
            .unwrap();
        assert!(status.success() && self.session_runs("terraria"));
    }
}

impl Drop for GameLab {
    fn drop(&mut self) {
        self.tmux(&["kill-server"]);
    }
}

/// Writes an executable script.
pub fn write_executable(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}
