//! Issue 14, part "engine": the homelab's Docker Engine workflows and models (`setup-docker`,
//! `slateDocker`), `destroy-slate` and `guest-agent-test` through the real `orch` binary. The
//! Docker host is a test host of its own (a network namespace) with a real sshd whose logins
//! see a shim directory first on PATH: `apt-get` and `docker` stand-ins that record every call
//! (there is no Docker daemon here); the fleet and its IPs come from the Proxmox simulator.

mod support;

use pve_sim::{Fleet, SimConfig, VmSeed};
use std::path::{Path, PathBuf};
use std::process::Command;
use support::lab::Lab;
use support::sshd::{Sshd, TestHost};
use support::{Run, TestRepo, contains_bytes};

const PVE_PASSWORD: &str = "pve-engine-e2e";
const SLATE_VMID: u32 = 100;
/// A secret container environment value; it must reach docker only through the env file.
const BOT_TOKEN: &str = "bot-token-7f3e9c1d";
/// The vault's bot token: a value of its own, since the ps snapshot sees every process on the
/// machine, including the orch run of another test that passes BOT_TOKEN as a literal input.
const VAULT_TOKEN: &str = "vault-bot-token-2b8d41aa";

/// apt-get: records its arguments; installing docker.io puts the docker shim on PATH, installing
/// Java puts a `java17` (the test's javaBin) that records its arguments.
const APT_SHIM: &str = r#"#!/bin/sh
d=$(cd "$(dirname "$0")" && pwd)
echo "apt-get $*" >> "$d/commands.log"
case "$*" in
  "install -y docker.io") cp "$d/docker.pkg" "$d/docker"; chmod 755 "$d/docker" ;;
  "install -y openjdk-17-jre-headless unzip")
    printf '#!/bin/sh\necho "java17 $*" >> "%s/commands.log"\necho "openjdk version \\"17.0.13\\"" >&2\n' "$d" > "$d/java17"
    chmod 755 "$d/java17" ;;
esac
exit 0
"#;

/// curl: records its arguments (`-fsSL -o OUT URL`) and serves URL's last path segment from
/// ./www, or fails like curl does on a 404.
const CURL_SHIM: &str = r#"#!/bin/sh
d=$(cd "$(dirname "$0")" && pwd)
echo "curl $*" >> "$d/commands.log"
out=$3; name=${4##*/}
if [ ! -f "$d/www/$name" ]; then
  echo "curl: (22) The requested URL returned error: 404" >&2
  exit 22
fi
cp "$d/www/$name" "$out"
"#;

/// docker: records its arguments and keeps containers as files (`containers/NAME` holds the
/// state, `NAME.image` the image); `build` fails with BuildKit's message while ./fail-build
/// exists; `run --env-file F` keeps F's mode and text, and a `ps` snapshot taken while it runs.
const DOCKER_SHIM: &str = r#"#!/bin/sh
d=$(cd "$(dirname "$0")" && pwd)
echo "docker $*" >> "$d/commands.log"
c="$d/containers"; mkdir -p "$c"
missing() { echo "Error response from daemon: No such container: $1" >&2; exit 1; }
case "$1" in
  build)
    if [ -e "$d/fail-build" ]; then
      echo "ERROR: failed to solve: failed to read dockerfile: open Dockerfile: no such file or directory" >&2
      exit 1
    fi
    echo "naming to docker.io/library/$3 done" ;;
  run)
    shift; name=; envf=
    while [ $# -gt 1 ]; do
      case "$1" in
        -d) shift ;;
        --name) name=$2; shift 2 ;;
        --env-file) envf=$2; shift 2 ;;
        *) shift 2 ;;
      esac
    done
    if [ -n "$envf" ]; then stat -c %a "$envf" > "$d/envfile.mode"; cat "$envf" > "$d/envfile.seen"; fi
    ps -eo args > "$d/ps.during-run"
    echo "$1" > "$c/$name.image"; echo running > "$c/$name"; echo 3f9a1c0ffee ;;
  container)
    shift 2
    if [ "$1" = --format ]; then
      [ -e "$c/$3" ] || missing "$3"
      if [ "$(cat "$c/$3")" = running ]; then echo true; else echo false; fi
      exit 0
    fi
    [ -e "$c/$1" ] || missing "$1"
    st=$(cat "$c/$1"); up=false; [ "$st" = running ] && up=true
    printf '[{"Id":"3f9a1c0ffee","Name":"/%s","State":{"Status":"%s","Running":%s,"ExitCode":0},"Config":{"Image":"%s"},"HostConfig":{"RestartPolicy":{"Name":"unless-stopped"}},"NetworkSettings":{"Ports":{"80/tcp":[{"HostIp":"0.0.0.0","HostPort":"8080"}]}}}]\n' "$1" "$st" "$up" "$(cat "$c/$1.image")" ;;
  start) [ -e "$c/$2" ] || missing "$2"; echo running > "$c/$2"; echo "$2" ;;
  stop) [ -e "$c/$2" ] || missing "$2"; echo exited > "$c/$2"; echo "$2" ;;
  exec) shift 2; exec "$@" ;;
esac
exit 0
"#;

/// The homelab repository with the docker and proxmox plugins, the simulator's fleet putting
/// `slate` (and `builder`) on one test host, and that host's shim directory.
struct EngineLab {
    repo: TestRepo,
    pve: pve_sim::Simulator,
    sshd: Sshd,
    dir: tempfile::TempDir,
    _host: TestHost,
}

impl EngineLab {
    /// `docker_installed`: whether the docker shim is on PATH from the start.
    fn new(docker_installed: bool) -> EngineLab {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        write_executable(&bin.join("apt-get"), APT_SHIM);
        write_executable(&bin.join("curl"), CURL_SHIM);
        std::fs::create_dir_all(bin.join("www")).unwrap();
        write_executable(&bin.join("docker.pkg"), DOCKER_SHIM);
        if docker_installed {
            write_executable(&bin.join("docker"), DOCKER_SHIM);
        }
        // The shim directory only reads as PATH when sshd can reach it.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let host = TestHost::create();
        let path = format!(
            "SetEnv PATH={}:/usr/sbin:/usr/bin:/sbin:/bin\n",
            bin.display()
        );
        let sshd = Sshd::start_on_with_config(&host, support::prometheus::free_port(), &path);
        let ip = host.addr.parse().unwrap();
        let fleet = Fleet::empty()
            .with(VmSeed::new(SLATE_VMID, "slate").running_at(ip))
            .with(VmSeed::new(101, "builder").running_at(ip));
        let pve = pve_sim::Simulator::start_blocking(SimConfig {
            password: PVE_PASSWORD.into(),
            fleet,
            ..Default::default()
        })
        .expect("Proxmox simulator");
        let repo = TestRepo::new(&["proxmox", "docker", "minecraft"]);
        copy_homelab(&repo);
        for (vault, key, secret) in [
            ("proxmox-vault", "password", PVE_PASSWORD.to_string()),
            ("ssh-vault", "private-key", sshd.user_key()),
        ] {
            repo.orch_stdin(&["vault", "put", vault, key], &secret).ok();
        }
        repo.orch(&["ssh", "trust", &format!("{}:{}", sshd.listen, sshd.port)])
            .ok();
        let lab = EngineLab {
            repo,
            pve,
            sshd,
            dir,
            _host: host,
        };
        lab.orch(&["run", "sync-fleet"]).ok();
        lab
    }

    fn bin(&self, name: &str) -> PathBuf {
        self.dir.path().join("bin").join(name)
    }

    /// The commands the shims recorded, one a line.
    fn commands(&self) -> Vec<String> {
        std::fs::read_to_string(self.bin("commands.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn orch(&self, args: &[&str]) -> Run {
        let mut cmd: Command = self.repo.command(args);
        cmd.env("PROXMOX_API_URL", self.pve.url())
            .env("SSH_PORT", self.sshd.port.to_string())
            .env("SSH_USER", &self.sshd.user)
            .env("DOCKER_INSTALL_METHOD", "apt")
            .env("MINECRAFT_JAVA", "java17");
        Run::from_output(cmd.output().unwrap())
    }

    fn slate(&self, method: &str, inputs: &[&str]) -> Run {
        let mut args = vec!["--json", "model", "run", "slateDocker", method];
        for input in inputs {
            args.extend(["--input", input]);
        }
        self.orch(&args)
    }
}

fn copy_homelab(repo: &TestRepo) {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../workflows/homelab");
    for sub in ["models", "workflows"] {
        for e in std::fs::read_dir(example.join(sub)).unwrap().flatten() {
            std::fs::copy(e.path(), repo.path().join(sub).join(e.file_name())).unwrap();
        }
    }
    std::fs::copy(example.join("orch.yaml"), repo.path().join("orch.yaml")).unwrap();
}

fn write_executable(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn setup_docker_installs_with_apt_once_then_finds_docker_there() {
    let lab = EngineLab::new(false);
    let record = lab
        .orch(&["--json", "run", "setup-docker", "--input", "vmName=builder"])
        .ok()
        .json();
    assert_eq!(record["status"], "succeeded", "{record}");
    assert_eq!(
        lab.commands(),
        ["apt-get update", "apt-get install -y docker.io"]
    );
    assert!(lab.bin("docker").is_file());
    lab.orch(&["run", "setup-docker", "--input", "vmName=builder"])
        .ok();
    assert_eq!(lab.commands().len(), 2, "the second run installed again");
}

#[test]
fn a_failing_install_step_stops_the_workflow_with_the_remote_stderr() {
    let lab = EngineLab::new(false);
    let failing = "#!/bin/sh\necho \"apt-get $*\" >> \"$(dirname \"$0\")/commands.log\"\n\
                   echo 'E: Could not get lock /var/lib/dpkg/lock-frontend' >&2\nexit 100\n";
    write_executable(&lab.bin("apt-get"), failing);
    let run = lab
        .orch(&["run", "setup-docker", "--input", "vmName=builder"])
        .code(1);
    assert!(
        run.all().contains("Could not get lock") && run.all().contains("exit 100"),
        "{}",
        run.all()
    );
    assert_eq!(
        lab.commands(),
        ["apt-get update"],
        "it went on after a failure"
    );
}

#[test]
fn slate_docker_builds_runs_once_inspects_execs_and_stops() {
    let lab = EngineLab::new(true);
    lab.slate(
        "build",
        &[
            "context=/srv/bot",
            "tag=bot:latest",
            "dockerfile=Dockerfile",
        ],
    )
    .ok();
    let token = format!("env={{\"BOT_TOKEN\":\"{BOT_TOKEN}\",\"MODE\":\"prod\"}}");
    let run = |lab: &EngineLab| {
        lab.slate(
            "run",
            &[
                "image=bot:latest",
                "name=e2ebot",
                r#"ports=["8080:80"]"#,
                r#"volumes=["/srv/bot/data:/data"]"#,
                &token,
            ],
        )
        .ok()
        .json()
    };
    let first = run(&lab);
    assert_eq!(first["output"]["changed"], true, "{first}");
    let second = run(&lab);
    assert_eq!(second["output"]["changed"], false, "{second}");
    let inspected = lab.slate("inspect", &["name=e2ebot"]).ok().json();
    assert_eq!(inspected["output"]["running"], true, "{inspected}");
    let resource = lab
        .orch(&["--json", "data", "get", "slateDocker", "e2ebot"])
        .ok()
        .json();
    assert_eq!(resource["attributes"]["image"], "bot:latest", "{resource}");
    assert_eq!(
        resource["attributes"]["ports"]["80/tcp"][0], "0.0.0.0:8080",
        "{resource}"
    );
    let exec = lab
        .slate(
            "exec",
            &[r#"command=["echo","hello from e2ebot"]"#, "name=e2ebot"],
        )
        .ok()
        .json();
    assert_eq!(exec["output"]["stdout"], "hello from e2ebot\n", "{exec}");
    lab.slate("stop", &["name=e2ebot"]).ok();
    let env_file = "/tmp/.orch-env-e2ebot";
    assert_eq!(
        lab.commands(),
        [
            "docker build -t bot:latest -f Dockerfile /srv/bot",
            "docker container inspect --format {{.State.Running}} e2ebot",
            &format!(
                "docker run -d --name e2ebot --restart unless-stopped -p 8080:80 -v /srv/bot/data:/data --env-file {env_file} bot:latest"
            ),
            "docker container inspect --format {{.State.Running}} e2ebot",
            "docker container inspect e2ebot",
            "docker exec e2ebot echo hello from e2ebot",
            "docker stop e2ebot",
        ]
    );
    // The secret reached docker in a 0600 file that is gone now, never on a command line.
    let seen = std::fs::read_to_string(lab.bin("envfile.seen")).unwrap();
    assert_eq!(seen, format!("BOT_TOKEN={BOT_TOKEN}\nMODE=prod\n"));
    assert_eq!(
        std::fs::read_to_string(lab.bin("envfile.mode"))
            .unwrap()
            .trim(),
        "600"
    );
    assert!(
        !Path::new(env_file).exists(),
        "the env file was left behind"
    );
    assert!(!lab.commands().concat().contains(BOT_TOKEN));
    // A stopped container is started again by name, not created anew.
    let again = run(&lab);
    assert_eq!(again["output"]["changed"], true, "{again}");
    assert_eq!(lab.commands().last().unwrap(), "docker start e2ebot");
}

#[test]
fn a_failing_build_stops_with_the_remote_stderr() {
    let lab = EngineLab::new(true);
    std::fs::write(lab.bin("fail-build"), "").unwrap();
    let run = lab
        .slate("build", &["context=/srv/bot", "tag=bot:latest"])
        .code(1);
    assert!(
        run.all().contains("failed to read dockerfile") && run.all().contains("docker build"),
        "{}",
        run.all()
    );
}

fn pve_lab(agent_warmup: u32) -> Lab {
    let lab = Lab::with_config(SimConfig {
        agent_warmup,
        ..Default::default()
    });
    lab.orch(&["run", "sync-fleet"]).ok();
    lab
}

#[test]
fn destroy_slate_refuses_a_wrong_vmid_then_stops_and_deletes_slate() {
    let lab = pve_lab(0);
    let vmid = lab.resource("fleet", "slate")["vmid"].as_u64().unwrap();
    let wrong = (vmid + 1).to_string();
    let run = lab
        .orch(&[
            "run",
            "destroy-slate",
            "--input",
            &format!("expectVmid={wrong}"),
        ])
        .code(1);
    assert!(
        run.all().contains("refusing") && run.all().contains(&vmid.to_string()),
        "{}",
        run.all()
    );
    assert_eq!(lab.sim.vm_status("slate").as_deref(), Some("running"));
    let record = lab
        .orch(&[
            "--json",
            "run",
            "destroy-slate",
            "--input",
            &format!("expectVmid={vmid}"),
        ])
        .ok()
        .json();
    assert_eq!(record["status"], "succeeded", "{record}");
    assert_eq!(
        lab.sim.vm_status("slate"),
        None,
        "slate is still on the node"
    );
}

#[test]
fn guest_agent_test_waits_out_the_agent_warm_up_validates_the_ip_and_cleans_up() {
    let lab = pve_lab(2);
    let record = lab
        .orch(&[
            "--json",
            "run",
            "guest-agent-test",
            "--input",
            "vmName=agent-e2e",
        ])
        .ok()
        .json();
    assert_eq!(record["status"], "succeeded", "{record}");
    let versions = lab
        .orch(&["--json", "data", "versions", "fleet", "agent-e2e"])
        .ok()
        .json();
    let versions = versions.as_array().unwrap();
    let running = versions
        .iter()
        .find(|v| v["attributes"]["status"] == "running")
        .expect("a running version");
    let ip = running["attributes"]["ip"].as_str().unwrap_or_default();
    assert!(ip.parse::<std::net::Ipv4Addr>().is_ok(), "{running}");
    assert_eq!(
        versions.last().unwrap()["attributes"]["status"],
        "deleted",
        "{versions:?}"
    );
    assert_eq!(lab.sim.vm_status("agent-e2e"), None, "left on the node");
    // The warm-up was waited out: the agent was asked more than once for this VM.
    let vmid = running["attributes"]["vmid"].as_u64().unwrap();
    let asked = lab
        .sim
        .requests()
        .iter()
        .filter(|r| r.contains(&format!("/qemu/{vmid}/agent/network-get-interfaces")))
        .count();
    assert!(asked >= 3, "the agent was asked {asked} time(s)");
}

/// A server pack zip as packs ship them (mods, a default server.properties, a start script),
/// made with the real `zip`, under the curl shim's ./www; returns its sha256.
fn make_pack(lab: &EngineLab, name: &str) -> String {
    let src = lab.dir.path().join("pack-src");
    std::fs::create_dir_all(src.join("mods")).unwrap();
    std::fs::write(src.join("mods/allthemodium.jar"), "jar bytes").unwrap();
    std::fs::write(
        src.join("server.properties"),
        "#Minecraft server properties\nmotd=A Minecraft Server\nserver-port=25565\n",
    )
    .unwrap();
    write_executable(
        &src.join("startserver.sh"),
        "#!/bin/sh\nexec java -jar server.jar\n",
    );
    let zip = lab.bin("www").join(name);
    let status = Command::new("zip")
        .args(["-qr", zip.to_str().unwrap(), "."])
        .current_dir(&src)
        .status()
        .expect("zip (cargo xtask test installs it)");
    assert!(status.success());
    let out = Command::new("sha256sum").arg(&zip).output().unwrap();
    String::from_utf8(out.stdout).unwrap()[..64].to_string()
}

#[test]
fn minecraft_install_installs_java_downloads_extracts_and_configures_once() {
    let lab = EngineLab::new(false);
    let sha = make_pack(&lab, "atm10.zip");
    let server = lab.dir.path().join("srv/atm10");
    let zip = lab.dir.path().join("atm10.zip");
    let args = [
        "run".to_string(),
        "minecraft-install".into(),
        "--input".into(),
        "vmName=builder".into(),
        "--input".into(),
        "url=https://packs.example/atm10.zip".into(),
        "--input".into(),
        format!("sha256={sha}"),
        "--input".into(),
        format!("zip={}", zip.display()),
        "--input".into(),
        format!("serverDir={}", server.display()),
        "--input".into(),
        "eula=true".into(),
        "--input".into(),
        r#"properties={"motd":"ATM10 on orch","max-players":12}"#.into(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    lab.orch(&args).ok();
    assert_eq!(
        lab.commands(),
        [
            "apt-get update".to_string(),
            "apt-get install -y openjdk-17-jre-headless unzip".into(),
            "java17 -version".into(),
            format!(
                "curl -fsSL -o {}.part https://packs.example/atm10.zip",
                zip.display()
            ),
        ]
    );
    assert!(zip.is_file() && !Path::new(&format!("{}.part", zip.display())).exists());
    assert_eq!(
        std::fs::read_to_string(server.join("mods/allthemodium.jar")).unwrap(),
        "jar bytes"
    );
    assert_eq!(
        std::fs::read_to_string(server.join("eula.txt")).unwrap(),
        "eula=true\n"
    );
    let properties =
        "#Minecraft server properties\nmotd=ATM10 on orch\nserver-port=25565\nmax-players=12\n";
    assert_eq!(
        std::fs::read_to_string(server.join("server.properties")).unwrap(),
        properties
    );
    // Again: Java is there and the zip has the digest, so nothing is installed or downloaded,
    // and the properties come out the same.
    lab.orch(&args).ok();
    assert_eq!(lab.commands().len(), 4, "{:?}", lab.commands());
    assert_eq!(
        std::fs::read_to_string(server.join("server.properties")).unwrap(),
        properties
    );
}

#[test]
fn minecraft_install_refuses_a_corrupt_zip_and_without_the_eula() {
    let lab = EngineLab::new(false);
    std::fs::write(
        lab.bin("www/broken.zip"),
        "PK\x03\x04 this is not a zip archive",
    )
    .unwrap();
    let server = lab.dir.path().join("srv/broken");
    let run = |eula: &str| {
        lab.orch(&[
            "run",
            "minecraft-install",
            "--input",
            "vmName=builder",
            "--input",
            "url=https://packs.example/broken.zip",
            "--input",
            &format!("zip={}", lab.dir.path().join("broken.zip").display()),
            "--input",
            &format!("serverDir={}", server.display()),
            "--input",
            &format!("eula={eula}"),
        ])
        .code(1)
    };
    let refused = run("false");
    assert!(refused.all().contains("EULA"), "{}", refused.all());
    assert!(lab.commands().is_empty(), "{:?}", lab.commands());
    let corrupt = run("true");
    assert!(
        corrupt.all().contains("is not a readable zip archive"),
        "{}",
        corrupt.all()
    );
    assert!(!server.exists(), "a corrupt zip was unpacked");
}

#[test]
fn a_vault_secret_in_the_container_env_reaches_no_command_line_record_or_log() {
    let lab = EngineLab::new(true);
    lab.repo
        .orch_stdin(&["vault", "put", "bot-vault", "token"], VAULT_TOKEN)
        .ok();
    lab.repo.write(
        "workflows/run-bot.yaml",
        "name: run-bot\njobs:\n  - name: bot\n    steps:\n      - name: run\n        task:\n          \
         type: model_method\n          modelIdOrName: slateDocker\n          methodName: run\n          \
         inputs:\n            image: bot:latest\n            name: vaultbot\n            \
         env: { BOT_TOKEN: '${{ vault.get(\"bot-vault\", \"token\") }}' }\n",
    );
    let run = lab.orch(&["--json", "run", "run-bot"]).ok();
    assert!(!run.all().contains(VAULT_TOKEN), "{}", run.all());
    // docker got it, through the env file only.
    let seen = std::fs::read_to_string(lab.bin("envfile.seen")).unwrap();
    assert_eq!(seen, format!("BOT_TOKEN={VAULT_TOKEN}\n"));
    let ps = std::fs::read_to_string(lab.bin("ps.during-run")).unwrap();
    assert!(
        ps.contains("--env-file"),
        "the snapshot missed docker run: {ps}"
    );
    assert!(!ps.contains(VAULT_TOKEN), "{ps}");
    assert!(!lab.commands().concat().contains(VAULT_TOKEN));
    assert!(!Path::new("/tmp/.orch-env-vaultbot").exists());
    assert!(
        !contains_bytes(&lab.repo.orch_dir_bytes(), VAULT_TOKEN),
        "the token is stored in .orch (run records, data or logs)"
    );
}
