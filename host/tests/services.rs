//! The service plugins through the real `orch` binary over real SSH (OpenSSH on loopback):
//! minecraft/server driving tmux, nginx/stream driving a real nginx, docker/compose driving a
//! recording `docker` shim (no Docker engine runs on these machines).

mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use support::TestRepo;
use support::sshd::{Sshd, TestHost};

/// A repo with `plugins` installed, the user key in the vault and the host key trusted.
fn repo_for(sshd: &Sshd, plugins: &[&str]) -> TestRepo {
    let repo = TestRepo::new(plugins);
    repo.orch_stdin(
        &["vault", "put", "ssh-vault", "private-key"],
        &sshd.user_key(),
    )
    .ok();
    repo.orch(&["ssh", "trust", &format!("{}:{}", sshd.listen, sshd.port)])
        .ok();
    repo
}

fn ssh_globals(sshd: &Sshd) -> String {
    format!(
        "  sshHost: {}\n  sshPort: {}\n  sshUser: {}\n  sshKey: ${{{{ vault.get(\"ssh-vault\", \"private-key\") }}}}\n",
        sshd.listen, sshd.port, sshd.user
    )
}

fn run(repo: &TestRepo, model: &str, method: &str, inputs: &[&str]) -> support::Run {
    let mut args = vec!["--json", "model", "run", model, method];
    for i in inputs {
        args.push("--input");
        args.push(i);
    }
    repo.orch(&args)
}

const CONSOLE: &str = r#"#!/bin/sh
# A stand-in Minecraft console: reads commands from the tmux pane, logs real console lines.
mkdir -p logs
log=logs/latest.log
echo "[12:00:00] [Server thread/INFO]: Done (3.2s)! For help, type \"help\"" >> "$log"
while IFS= read -r line; do
  case "$line" in
    list) echo "[12:00:01] [Server thread/INFO]: There are 2 of a max of 20 players online: alice, bob" >> "$log" ;;
    "say "*) echo "[12:00:01] [Server thread/INFO]: [Server] ${line#say }" >> "$log" ;;
    "op "*) echo "[12:00:01] [Server thread/INFO]: Made ${line#op } a server operator" >> "$log" ;;
    "deop "*) echo "[12:00:01] [Server thread/INFO]: Made ${line#deop } no longer a server operator" >> "$log" ;;
    stop) echo "[12:00:02] [Server thread/INFO]: Stopping the server" >> "$log"; exit 0 ;;
    *) echo "[12:00:01] [Server thread/INFO]: Unknown or incomplete command" >> "$log" ;;
  esac
done
"#;

fn tmux_has(session: &str) -> bool {
    Command::new("tmux")
        .args(["has-session", "-t", &format!("={session}")])
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

#[test]
fn minecraft_start_status_op_say_and_stop_through_tmux() {
    let sshd = Sshd::start();
    let repo = repo_for(&sshd, &["minecraft"]);
    let server = tempfile::tempdir().unwrap();
    let script = server.path().join("start.sh");
    std::fs::write(&script, CONSOLE).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let session = format!("orch-test-{}", std::process::id());
    let log = server.path().join("logs/latest.log");
    repo.write(
        "models/mc.yaml",
        &format!(
            "type: minecraft/server\nglobalArguments:\n{}  tmuxSession: {session}\n  serverDir: {}\n  startScript: ./start.sh\n  logPath: {}\n",
            ssh_globals(&sshd),
            server.path().display(),
            log.display()
        ),
    );
    let _cleanup = KillTmux(session.clone());
    run(&repo, "mc", "startMinecraftServer", &[]).ok();
    assert!(tmux_has(&session), "the tmux session runs");
    let status = run(&repo, "mc", "status", &[]).ok().json()["output"].clone();
    assert_eq!(status["online"], true, "{status}");
    assert_eq!(status["players"], 2);
    assert_eq!(status["maxPlayers"], 20);
    assert_eq!(status["names"], serde_json::json!(["alice", "bob"]));
    run(&repo, "mc", "op", &["player=alice"]).ok();
    run(&repo, "mc", "say", &["message=hello from orch"]).ok();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("Made alice a server operator"), "{text}");
    assert!(text.contains("[Server] hello from orch"), "{text}");
    run(&repo, "mc", "stopMinecraftServer", &[]).ok();
    assert!(!tmux_has(&session), "stop waits for the session to end");
    let offline = run(&repo, "mc", "status", &[]).ok().json()["output"].clone();
    assert_eq!(offline["online"], false, "{offline}");
}

#[test]
fn minecraft_with_a_null_host_fails_cleanly_and_status_says_offline() {
    let sshd = Sshd::start();
    let repo = repo_for(&sshd, &["minecraft"]);
    repo.write(
        "models/mc.yaml",
        "type: minecraft/server\nglobalArguments:\n  sshHost: null\n  sshPort: 22\n  tmuxSession: mc\n  serverDir: /srv/mc\n  startScript: ./start.sh\n  logPath: /srv/mc/logs/latest.log\n",
    );
    let logins = sshd.logins();
    let failed = run(&repo, "mc", "startMinecraftServer", &[]).code(1);
    assert!(failed.all().contains("no IP"), "{}", failed.all());
    let status = run(&repo, "mc", "status", &[]).ok().json()["output"].clone();
    assert_eq!(status["online"], false);
    assert_eq!(sshd.logins(), logins, "no connection was attempted");
}

struct KillTmux(String);

impl Drop for KillTmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &format!("={}", self.0)])
            .status();
    }
}

/// nginx as a child process with its own prefix and configuration on loopback.
struct Nginx {
    child: Child,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM lets the master stop its workers; SIGKILL would orphan them.
        // SAFETY: signals our own child by its pid.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let _ = self.child.wait();
    }
}

const STREAM_MODULE: &str = "/usr/lib/nginx/modules/ngx_stream_module.so";

fn start_nginx(dir: &Path) -> Nginx {
    assert!(
        Path::new(STREAM_MODULE).is_file(),
        "{STREAM_MODULE} missing: install libnginx-mod-stream (cargo xtask test does)"
    );
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    std::fs::write(
        dir.join("nginx.conf"),
        format!(
            "load_module {STREAM_MODULE};\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/logs/error.log;\nevents {{ worker_connections 64; }}\n",
            d = dir.display()
        ),
    )
    .unwrap();
    let child = Command::new("nginx")
        .args(["-p", dir.to_str().unwrap(), "-c"])
        .arg(dir.join("nginx.conf"))
        .args(["-g", "daemon off;"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start nginx");
    // Ready when the master has written its pid file.
    for _ in 0..500 {
        if dir.join("nginx.pid").is_file() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Nginx { child }
}

/// Writes model `name`: `nginx/stream` over `sshd` for the nginx started in `dir`; returns its
/// nginx.conf.
fn nginx_model(repo: &TestRepo, sshd: &Sshd, dir: &Path, name: &str) -> std::path::PathBuf {
    let conf = dir.join("nginx.conf");
    repo.write(
        &format!("models/{name}.yaml"),
        &format!(
            "type: nginx/stream\nglobalArguments:\n{}  includeDir: {d}/stream.d\n  nginxConf: {c}\n  reloadCommand: nginx -p {d} -c {c} -s reload\n",
            ssh_globals(sshd),
            d = dir.display(),
            c = conf.display()
        ),
    );
    conf
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn echo_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut buf = [0u8; 1024];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 || stream.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    port
}

/// Sends `ping` through the proxy and expects it back; retries (bounded) while nginx reloads.
fn round_trip(port: u16) -> bool {
    for _ in 0..300 {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let mut buf = [0u8; 4];
            if s.write_all(b"ping").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"ping" {
                return true;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn nginx_configure_proxies_to_a_backend_and_a_bad_config_keeps_the_old_one_serving() {
    let sshd = Sshd::start();
    let repo = repo_for(&sshd, &["nginx"]);
    let dir = tempfile::tempdir().unwrap();
    let _nginx = start_nginx(dir.path());
    let conf = nginx_model(&repo, &sshd, dir.path(), "proxy");
    run(&repo, "proxy", "init", &[]).ok();
    run(&repo, "proxy", "init", &[]).ok();
    let text = std::fs::read_to_string(&conf).unwrap();
    assert_eq!(
        text.matches("stream.d").count(),
        1,
        "init is idempotent:\n{text}"
    );

    let backend = echo_server();
    let listen = free_port();
    let map = format!("portMap={{\"{listen}\":{backend}}}");
    run(
        &repo,
        "proxy",
        "configure",
        &["name=game", "targetIp=127.0.0.1", &map],
    )
    .ok();
    assert!(
        round_trip(listen),
        "a client through the proxy reaches the backend"
    );

    // A second proxy on the same listen port: `nginx -t` refuses it; the old config keeps serving.
    let failed = run(
        &repo,
        "proxy",
        "configure",
        &["name=clash", "targetIp=127.0.0.1", &map],
    )
    .code(1);
    assert!(failed.all().contains("nginx"), "{}", failed.all());
    assert!(
        !dir.path().join("stream.d/clash.conf").exists(),
        "the failed file is removed"
    );
    assert!(round_trip(listen), "the old configuration still serves");

    // An invalid port map is refused before anything is touched.
    let invalid = run(
        &repo,
        "proxy",
        "configure",
        &["name=game", "targetIp=127.0.0.1", "portMap={\"70000\":1}"],
    )
    .code(1);
    assert!(invalid.all().contains("70000"), "{}", invalid.all());
    assert!(round_trip(listen));
}

#[test]
fn nginx_converge_serves_the_declared_proxies_and_a_second_converge_touches_nothing() {
    let sshd = Sshd::start();
    let repo = repo_for(&sshd, &["nginx"]);
    let dir = tempfile::tempdir().unwrap();
    let _nginx = start_nginx(dir.path());
    nginx_model(&repo, &sshd, dir.path(), "gateway");
    run(&repo, "gateway", "init", &[]).ok();
    let (backend, a, b) = (echo_server(), free_port(), free_port());
    let proxies = format!(
        "proxies=[{{\"name\":\"a\",\"targetIp\":\"127.0.0.1\",\"portMap\":{{\"{a}\":{backend}}}}},\
         {{\"name\":\"b\",\"targetIp\":\"127.0.0.1\",\"portMap\":{{\"{b}\":{backend}}}}}]"
    );
    let plan = |repo: &TestRepo| -> Vec<(String, String)> {
        let out = repo
            .orch(&[
                "--json",
                "model",
                "run",
                "gateway",
                "converge",
                "--dry-run",
                "--input",
                &proxies,
            ])
            .ok()
            .json();
        out["output"]["plan"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["action"].as_str().unwrap().to_string(),
                    c["name"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let first = plan(&repo);
    assert_eq!(
        first,
        [("create".into(), "a".into()), ("create".into(), "b".into())]
    );
    assert!(
        !dir.path().join("stream.d/a.conf").exists(),
        "a plan writes nothing"
    );

    let out = run(&repo, "gateway", "converge", &[&proxies]).ok().json();
    assert_eq!(out["output"]["changed"], serde_json::json!(["a", "b"]));
    assert!(
        round_trip(a) && round_trip(b),
        "both declared proxies serve"
    );

    let written = std::fs::metadata(dir.path().join("stream.d/a.conf"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(
        plan(&repo),
        [("none".into(), "a".into()), ("none".into(), "b".into())]
    );
    let again = run(&repo, "gateway", "converge", &[&proxies]).ok().json();
    assert_eq!(again["output"]["changed"], serde_json::json!([]));
    assert_eq!(
        std::fs::metadata(dir.path().join("stream.d/a.conf"))
            .unwrap()
            .modified()
            .unwrap(),
        written,
        "an unchanged file is not rewritten"
    );
    let versions = repo
        .orch(&["--json", "data", "versions", "gateway", "a"])
        .ok()
        .json();
    assert_eq!(
        versions.as_array().unwrap().len(),
        1,
        "an unchanged proxy stores no new version: {versions}"
    );
}

#[test]
fn docker_compose_sends_the_right_commands_and_parses_ps() {
    let sshd = Sshd::start();
    let repo = repo_for(&sshd, &["docker"]);
    support::docker::compose_sends_the_right_commands_and_parses_ps(&repo, &sshd);
}

/// The homelab repository with every plugin, the simulator seeded with a game VM whose IP is
/// loopback (where the test's sshd listens), the SSH key in the vault and the host key trusted.
struct HomeLab {
    repo: TestRepo,
    sim: pve_sim::Simulator,
    sshd: Sshd,
    _host: TestHost,
}

impl HomeLab {
    fn new(game_vm_running: bool) -> HomeLab {
        // The game VM is a test host in a network namespace of this test's own: the fleet's
        // IP must be a real, non-loopback address for the plugin to use it.
        let host = TestHost::create();
        let mut seed = pve_sim::VmSeed::new(200, "mc-vm");
        if game_vm_running {
            seed = seed.running_at(host.addr.parse().unwrap());
        }
        let sim = pve_sim::Simulator::start_blocking(pve_sim::SimConfig {
            password: "pve-pass".into(),
            fleet: pve_sim::Fleet::reference().with(seed),
            ..Default::default()
        })
        .unwrap();
        let sshd = Sshd::start_on(&host);
        let repo = repo_for(&sshd, &["proxmox", "ssh", "minecraft"]);
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../workflows/homelab");
        for dir in ["models", "workflows"] {
            for e in std::fs::read_dir(example.join(dir)).unwrap().flatten() {
                std::fs::copy(e.path(), repo.path().join(dir).join(e.file_name())).unwrap();
            }
        }
        std::fs::copy(example.join("orch.yaml"), repo.path().join("orch.yaml")).unwrap();
        repo.orch_stdin(&["vault", "put", "proxmox-vault", "password"], "pve-pass")
            .ok();
        HomeLab {
            repo,
            sim,
            sshd,
            _host: host,
        }
    }

    fn orch(&self, args: &[&str]) -> support::Run {
        let mut cmd = self.repo.command(args);
        cmd.env("PROXMOX_API_URL", self.sim.url())
            .env("SSH_PORT", self.sshd.port.to_string())
            .env("SSH_USER", &self.sshd.user);
        support::Run::from_output(cmd.output().unwrap())
    }
}

#[test]
fn homelab_minecraft_workflows_start_report_and_stop_a_server_on_a_fleet_vm() {
    let lab = HomeLab::new(true);
    let server = tempfile::tempdir().unwrap();
    let script = server.path().join("start.sh");
    std::fs::write(&script, CONSOLE).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let session = format!("orch-lab-{}", std::process::id());
    let _cleanup = KillTmux(session.clone());
    let inputs = format!(
        r#"{{"vmName":"mc-vm","tmuxSession":"{session}","serverDir":"{d}","startScript":"./start.sh","logPath":"{d}/logs/latest.log"}}"#,
        d = server.path().display()
    );
    lab.orch(&["run", "sync-fleet"]).ok();
    let started = lab
        .orch(&["--json", "run", "start-minecraft", "--input", &inputs])
        .ok()
        .json();
    assert_eq!(started["status"], "succeeded", "{started}");
    assert!(tmux_has(&session));
    let status = lab
        .orch(&["--json", "run", "status-minecraft", "--input", &inputs])
        .ok()
        .json();
    assert_eq!(status["status"], "succeeded");
    let metrics_like = lab
        .orch(&[
            "--json",
            "model",
            "run",
            "minecraftGame",
            "status",
            "--input",
            &inputs,
        ])
        .ok()
        .json();
    assert_eq!(metrics_like["output"]["players"], 2, "{metrics_like}");
    let stopped = lab
        .orch(&[
            "--json",
            "run",
            "stop-minecraft",
            "--input",
            &inputs,
            "--input",
            "warnSeconds=0",
        ])
        .ok()
        .json();
    assert_eq!(stopped["status"], "succeeded", "{stopped}");
    assert!(!tmux_has(&session), "the server stopped");
    assert_eq!(
        lab.sim.vm_status("mc-vm").as_deref(),
        Some("stopped"),
        "and then its VM"
    );
}

#[test]
fn a_stopped_game_vm_reports_offline_without_connecting() {
    let lab = HomeLab::new(false);
    lab.orch(&["run", "sync-fleet"]).ok();
    let logins = lab.sshd.logins();
    let inputs = r#"{"vmName":"mc-vm","tmuxSession":"mc","serverDir":"/srv/mc","startScript":"./start.sh","logPath":"/srv/mc/logs/latest.log"}"#;
    let out = lab
        .orch(&[
            "--json",
            "model",
            "run",
            "minecraftGame",
            "status",
            "--input",
            inputs,
        ])
        .ok()
        .json();
    assert_eq!(out["output"]["online"], false, "{out}");
    assert_eq!(lab.sshd.logins(), logins);
}
