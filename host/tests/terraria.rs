//! terraria/server through the real `orch` binary over real SSH (OpenSSH on loopback): the
//! plugin runs `docker exec <container> tmux …`; a `docker` shim records each call and runs the
//! rest of it on the host, where a real tmux session holds a stand-in Terraria console that
//! prints the real vanilla server's lines.

mod support;

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use support::TestRepo;
use support::sshd::Sshd;

/// Records every call, then does what `docker exec <container> <cmd…>` would do in a running
/// container: runs `<cmd…>` (here, on the host).
const DOCKER_SHIM: &str = r#"#!/bin/sh
echo "$*" >> "$(dirname "$0")/docker.log"
[ "$1" = exec ] || exit 0
shift 2
exec "$@"
"#;

/// A stand-in Terraria console: the vanilla dedicated server's prompt and answers. Players come
/// from ./players (one name a line); with ./garbage present, `playing` gets nonsense. Every line
/// typed is kept in ./input.log.
const CONSOLE: &str = r#"#!/bin/sh
cd "$(dirname "$0")"
while :; do
  printf ': '
  IFS= read -r line || exit 0
  echo "$line" >> input.log
  case "$line" in
    playing)
      if [ -e garbage ]; then echo "Segmentation fault (core dumped)"; continue; fi
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

/// The game VM: a directory with the docker shim and the console, and the tmux session
/// running it (killed on drop).
struct GameVm {
    dir: tempfile::TempDir,
    session: String,
}

impl GameVm {
    fn start(tag: &str, players: &[&str]) -> GameVm {
        let dir = tempfile::tempdir().unwrap();
        use std::os::unix::fs::PermissionsExt;
        for (name, text) in [("docker", DOCKER_SHIM), ("console.sh", CONSOLE)] {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let mut list = players.join("\n");
        list.push('\n');
        std::fs::write(dir.path().join("players"), list).unwrap();
        let session = format!("orch-terraria-{}-{tag}", std::process::id());
        let started = Command::new("tmux")
            .args(["new-session", "-d", "-s", &session])
            .arg(dir.path().join("console.sh"))
            .stderr(Stdio::inherit())
            .status()
            .expect("tmux");
        assert!(started.success(), "tmux new-session");
        GameVm { dir, session }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap_or_default()
    }
}

impl Drop for GameVm {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &format!("={}", self.session)])
            .status();
    }
}

/// A repo with the terraria plugin, the user key in the vault, the host key trusted, and model
/// `calamityTerraria` for `vm` (or with a null sshHost when `vm` is None).
fn repo_for(sshd: &Sshd, vm: Option<&GameVm>) -> TestRepo {
    let repo = TestRepo::new(&["terraria"]);
    repo.orch_stdin(
        &["vault", "put", "ssh-vault", "private-key"],
        &sshd.user_key(),
    )
    .ok();
    repo.orch(&["ssh", "trust", &format!("{}:{}", sshd.listen, sshd.port)])
        .ok();
    let model = match vm {
        Some(vm) => format!(
            "type: terraria/server\nglobalArguments:\n  sshHost: {}\n  sshPort: {}\n  sshUser: {}\n  sshKey: ${{{{ vault.get(\"ssh-vault\", \"private-key\") }}}}\n  container: calamity-terraria-1\n  tmuxSession: {}\n  dockerBin: {}\n  serverName: calamity\n",
            sshd.listen,
            sshd.port,
            sshd.user,
            vm.session,
            vm.path("docker").display()
        ),
        None => "type: terraria/server\nglobalArguments:\n  sshHost: null\n  sshPort: 22\n  container: calamity-terraria-1\n  serverName: calamity\n".to_string(),
    };
    repo.write("models/calamityTerraria.yaml", &model);
    repo
}

fn run(repo: &TestRepo, method: &str, inputs: &[&str]) -> support::Run {
    let mut args = vec!["--json", "model", "run", "calamityTerraria", method];
    for i in inputs {
        args.push("--input");
        args.push(i);
    }
    repo.orch(&args)
}

fn resource(repo: &TestRepo, spec: &str, name: &str) -> Value {
    repo.orch(&[
        "--json",
        "data",
        "get",
        "calamityTerraria",
        name,
        "--spec",
        spec,
    ])
    .ok()
    .json()["attributes"]
        .clone()
}

#[test]
fn status_with_two_players_reads_names_through_docker_exec_tmux() {
    let sshd = Sshd::start();
    let vm = GameVm::start("two", &["alice", "Dark Knight"]);
    let repo = repo_for(&sshd, Some(&vm));
    let status = run(&repo, "status", &[]).ok().json()["output"].clone();
    assert_eq!(
        status,
        json!({"server": "calamity", "online": true, "players": 2, "maxPlayers": null,
               "names": ["alice", "Dark Knight"]})
    );
    assert_eq!(resource(&repo, "status", &vm.session), status);
    assert!(vm.read("input.log").lines().any(|l| l == "playing"));
    let docker = vm.read("docker.log");
    assert!(
        docker.contains(&format!(
            "exec calamity-terraria-1 tmux send-keys -t ={}: -l playing",
            vm.session
        )),
        "{docker}"
    );
}

#[test]
fn status_with_no_players_is_online_with_zero() {
    let sshd = Sshd::start();
    let vm = GameVm::start("zero", &[]);
    let repo = repo_for(&sshd, Some(&vm));
    let status = run(&repo, "status", &[]).ok().json()["output"].clone();
    assert_eq!(status["online"], true, "{status}");
    assert_eq!(status["players"], 0);
    assert_eq!(status["names"], json!([]));
}

#[test]
fn collect_metrics_writes_the_textfile_the_player_log_and_the_resource() {
    let sshd = Sshd::start();
    let vm = GameVm::start("metrics", &["alice", "bob"]);
    let repo = repo_for(&sshd, Some(&vm));
    let prom = vm.path("textfile_collector/game_terraria.prom");
    let log = vm.path("game-players.log");
    let output = run(
        &repo,
        "collectMetrics",
        &[
            &format!("promPath={}", prom.display()),
            &format!("playerLogPath={}", log.display()),
        ],
    )
    .ok()
    .json()["output"]
        .clone();
    let text = std::fs::read_to_string(&prom).unwrap();
    for line in [
        "# TYPE game_players_online gauge",
        "game_players_online{server=\"calamity\",game=\"terraria\"} 2",
        "game_server_up{server=\"calamity\",game=\"terraria\"} 1",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
    }
    assert!(
        !Path::new(&format!("{}.orch-tmp", prom.display())).exists(),
        "the temporary file was renamed"
    );
    let lines: Vec<Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["server"], "calamity");
    assert_eq!(lines[0]["game"], "terraria");
    assert_eq!(lines[0]["players"], 2);
    assert_eq!(lines[0]["names"], json!(["alice", "bob"]));
    let stored = resource(&repo, "metrics", &vm.session);
    assert_eq!(stored, output);
    assert_eq!(stored["players"], 2);
    assert_eq!(stored["promPath"], prom.display().to_string());
}

#[test]
fn a_null_ssh_host_is_offline_without_connecting_and_collect_fails_cleanly() {
    let sshd = Sshd::start();
    let repo = repo_for(&sshd, None);
    let logins = sshd.logins();
    let status = run(&repo, "status", &[]).ok().json()["output"].clone();
    assert_eq!(status["online"], false, "{status}");
    assert_eq!(status["reason"], "offline");
    assert_eq!(resource(&repo, "status", "terraria")["online"], false);
    let failed = run(&repo, "collectMetrics", &[]).code(1);
    assert!(failed.all().contains("no IP"), "{}", failed.all());
    assert_eq!(sshd.logins(), logins, "no connection was attempted");
}

#[test]
fn a_console_printing_garbage_gives_a_clear_parse_error() {
    let sshd = Sshd::start();
    let vm = GameVm::start("garbage", &[]);
    std::fs::write(vm.path("garbage"), "").unwrap();
    let repo = repo_for(&sshd, Some(&vm));
    let failed = run(&repo, "status", &[]).code(1);
    let all = failed.all();
    assert!(
        all.contains("cannot read the answer to `playing`")
            && all.contains("Segmentation fault (core dumped)")
            && all.contains(&vm.session),
        "{all}"
    );
}

#[test]
fn warn_shutdown_says_the_warning_in_the_console() {
    let sshd = Sshd::start();
    let vm = GameVm::start("warn", &[]);
    let repo = repo_for(&sshd, Some(&vm));
    let out = run(
        &repo,
        "warnShutdown",
        &["message=Restarting for an update, back in 5 minutes"],
    )
    .ok()
    .json()["output"]
        .clone();
    assert_eq!(out["warned"], true, "{out}");
    // The console reads its input in order: once `playing` is answered, the warning was read.
    run(&repo, "status", &[]).ok();
    let input = vm.read("input.log");
    assert!(
        input
            .lines()
            .any(|l| l == "say Restarting for an update, back in 5 minutes"),
        "{input}"
    );
}

#[test]
fn a_stopped_console_is_offline_and_nobody_is_warned() {
    let sshd = Sshd::start();
    let vm = GameVm::start("stopped", &[]);
    let repo = repo_for(&sshd, Some(&vm));
    let killed = Command::new("tmux")
        .args(["kill-session", "-t", &format!("={}", vm.session)])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = run(&repo, "status", &[]).ok().json()["output"].clone();
    assert_eq!(status["online"], false, "{status}");
    assert_eq!(status["reason"], "not running");
    let warned = run(&repo, "warnShutdown", &[]).ok().json()["output"].clone();
    assert_eq!(warned["warned"], false, "{warned}");
}
