//! Deploying an orch repository to another machine: its vaults travel re-encrypted for the
//! remote's key (`orch vault export --for` here, `orch vault import` there), never as plaintext;
//! and the built-in type `orch/repo` with the homelab's `deploy-bot` workflow deploys the
//! repository, the orch binary and the vaults to slate (a test host running a real sshd), where
//! `sync-fleet` then runs with the uploaded binary against the Proxmox simulator.

mod support;

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;
use support::sshd::{Sshd, TestHost};
use support::{Run, TestRepo, contains_bytes};

const SECRET: &str = "pve-password-correct-horse-42";

/// A repository with the vault `proxmox` holding `SECRET`, and a second (the remote) with its own key.
fn local_and_remote() -> (TestRepo, TestRepo) {
    let local = TestRepo::new(&[]);
    local
        .orch_stdin(
            &["vault", "put", "proxmox", "password"],
            &format!("{SECRET}\n"),
        )
        .ok();
    local
        .orch_stdin(&["vault", "put", "proxmox", "user"], "root@pam\n")
        .ok();
    let remote = TestRepo::new(&[]);
    // The remote's key is created on its first vault use, as on a fresh machine.
    remote
        .orch_stdin(&["vault", "put", "local-only", "x"], "y\n")
        .ok();
    (local, remote)
}

#[test]
fn an_exported_vault_imports_on_the_remote_and_no_plaintext_is_written() {
    let (local, remote) = local_and_remote();
    let remote_key = remote.path().join(".orch/vault.key");
    let bundle = local.path().join("proxmox.sealed.json");
    let out = local
        .orch(&[
            "--json",
            "vault",
            "export",
            "proxmox",
            "--for",
            remote_key.to_str().unwrap(),
            "--out",
            bundle.to_str().unwrap(),
        ])
        .ok();
    assert!(!out.all().contains(SECRET), "{}", out.all());
    let sealed = std::fs::read(&bundle).unwrap();
    assert!(!contains_bytes(&sealed, SECRET));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&bundle).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // Over stdin, as `ssh remote orch vault import proxmox -` receives it.
    let sealed_text = String::from_utf8(sealed).unwrap();
    let imported = remote
        .orch_stdin(&["--json", "vault", "import", "proxmox", "-"], &sealed_text)
        .ok();
    assert_eq!(
        imported.json()["keys"],
        serde_json::json!(["password", "user"])
    );
    assert!(!imported.all().contains(SECRET));
    let listed = remote.orch(&["--json", "vault", "list", "proxmox"]).ok();
    assert_eq!(
        listed.json()["keys"],
        serde_json::json!(["password", "user"])
    );
    assert!(!contains_bytes(&remote.orch_dir_bytes(), SECRET));
}

#[test]
fn a_bundle_sealed_for_another_key_is_refused_and_changes_nothing() {
    let (local, remote) = local_and_remote();
    // Sealed for the local machine's own key, so the remote cannot open it.
    let own_key = local.path().join(".orch/vault.key");
    let bundle = local.path().join("wrong.json");
    local
        .orch(&[
            "vault",
            "export",
            "proxmox",
            "--for",
            own_key.to_str().unwrap(),
            "--out",
            bundle.to_str().unwrap(),
        ])
        .ok();
    let refused = remote
        .orch(&["vault", "import", "proxmox", bundle.to_str().unwrap()])
        .code(1);
    assert!(refused.stderr.contains("wrong.json"), "{}", refused.stderr);
    assert!(
        refused.stderr.contains("cannot decrypt"),
        "{}",
        refused.stderr
    );
    let listed = remote.orch(&["--json", "vault", "list", "proxmox"]).ok();
    assert_eq!(listed.json()["keys"], serde_json::json!([]));
}

/// The Proxmox password the simulator accepts and the local vault `proxmox-vault` holds.
const PVE_PASSWORD: &str = "pve-deploy-bot-password-1618";

fn homelab() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../workflows/homelab")
}

fn sha256_file(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

/// Every file's bytes under `dir`, but its top-level `bin/` (the orch binary), for leak checks.
fn tree_bytes(dir: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p == dir.join("bin") {
                continue;
            }
            if p.is_dir() {
                pending.push(p);
            } else if let Ok(b) = std::fs::read(&p) {
                all.extend(b);
            }
        }
    }
    all
}

/// The homelab repository with the proxmox plugin; the fleet's `slate` is a test host (its own
/// network namespace) running sshd, and "its" disk is a directory of this machine.
struct BotLab {
    local: TestRepo,
    pve: pve_sim::Simulator,
    sshd: Sshd,
    host: TestHost,
    /// slate's side: the deployment directory, the unit directory and the systemctl shim.
    remote: tempfile::TempDir,
}

impl BotLab {
    /// orch.yaml grants orch/repo slate's sshd.
    fn new() -> BotLab {
        Self::granting(|addr, port| format!("{addr}:{port}"))
    }

    /// orch.yaml grants orch/repo the SSH target `grant(address, port)`.
    fn granting(grant: impl Fn(&str, u16) -> String) -> BotLab {
        let host = TestHost::create();
        let fleet = pve_sim::Fleet::empty().with(
            pve_sim::VmSeed::new(100, "slate")
                .running_at(host.addr.parse().unwrap())
                .sized(2, 4096),
        );
        let pve = pve_sim::Simulator::start_blocking(pve_sim::SimConfig {
            password: PVE_PASSWORD.into(),
            fleet,
            ..Default::default()
        })
        .unwrap();
        let sshd = Sshd::start_on(&host);
        let local = TestRepo::new(&["proxmox"]);
        let example = homelab();
        for dir in ["models", "workflows", "dashboards", "alerts", "config"] {
            std::fs::create_dir_all(local.path().join(dir)).unwrap();
            for e in std::fs::read_dir(example.join(dir)).unwrap().flatten() {
                std::fs::copy(e.path(), local.path().join(dir).join(e.file_name())).unwrap();
            }
        }
        let config = std::fs::read_to_string(example.join("orch.yaml")).unwrap();
        let cut = config
            .find("\ngrants:\n")
            .expect("the homelab orch.yaml grants orch/repo");
        local.write(
            "orch.yaml",
            &format!(
                "{}\ngrants:\n  orch:\n    ssh: [\"{}\"]\n",
                &config[..cut],
                grant(&host.addr, sshd.port)
            ),
        );
        local
            .orch_stdin(&["vault", "put", "proxmox-vault", "password"], PVE_PASSWORD)
            .ok();
        local
            .orch_stdin(
                &["vault", "put", "ssh-vault", "private-key"],
                &sshd.user_key(),
            )
            .ok();
        local
            .orch(&["ssh", "trust", &format!("{}:{}", sshd.listen, sshd.port)])
            .ok();
        let remote = tempfile::tempdir().unwrap();
        let shim = remote.path().join("systemctl");
        std::fs::write(
            &shim,
            "#!/bin/sh\necho \"$*\" >> \"$(dirname \"$0\")/systemctl.log\"\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&shim, std::fs::Permissions::from_mode(0o755)).unwrap();
        let lab = BotLab {
            local,
            pve,
            sshd,
            host,
            remote,
        };
        lab.orch(&["run", "sync-fleet"]).ok();
        lab
    }

    /// The deployment directory on slate.
    fn dir(&self) -> PathBuf {
        self.remote.path().join("orch-bot")
    }

    /// Runs the local `orch`.
    fn orch(&self, args: &[&str]) -> Run {
        let mut cmd = self.local.command(args);
        cmd.env("PROXMOX_API_URL", self.pve.url())
            .env("SSH_PORT", self.sshd.port.to_string())
            .env("SSH_USER", &self.sshd.user)
            .env("ORCH_BOT_DIR", self.dir())
            .env("ORCH_BOT_UNIT_DIR", self.remote.path().join("units"))
            .env("ORCH_BOT_SYSTEMCTL", self.remote.path().join("systemctl"));
        Run::from_output(cmd.output().unwrap())
    }

    /// Runs the `orch` deployed on slate, in its directory.
    fn remote_orch(&self, args: &[&str]) -> Run {
        let out = Command::new(self.dir().join("bin/orch"))
            .args(args)
            .current_dir(self.dir())
            .env("NO_COLOR", "1")
            .env("PROXMOX_API_URL", self.pve.url())
            .env_remove("ORCH_VAULT_KEY")
            .env_remove("ORCH_REPO")
            .output()
            .unwrap();
        Run::from_output(out)
    }

    /// The attributes of orchRepo's resource `spec`.
    fn resource(&self, model: &str, spec: &str) -> serde_json::Value {
        self.orch(&["--json", "data", "get", model, spec])
            .ok()
            .json()["attributes"]
            .clone()
    }
}

#[test]
fn deploy_bot_deploys_the_repository_and_sync_fleet_runs_there_with_the_uploaded_binary() {
    let lab = BotLab::new();
    lab.orch(&["workflow", "validate", "deploy-bot"]).ok();
    let run = lab.orch(&["--json", "run", "deploy-bot"]).ok();
    assert_eq!(run.json()["status"], "succeeded", "{}", run.all());
    let dir = lab.dir();

    // The repository's files, and nothing of .orch/ (the local one holds data.redb).
    for f in [
        "orch.yaml",
        "models/orchRepo.yaml",
        "models/fleet.yaml",
        "workflows/deploy-bot.yaml",
        "workflows/sync-fleet.yaml",
        "plugins/proxmox/plugin.toml",
        "plugins/proxmox/plugin.wasm",
        "dashboards/game-servers.json",
    ] {
        assert_eq!(
            sha256_file(&dir.join(f)),
            sha256_file(&lab.local.path().join(f)),
            "{f}"
        );
    }
    assert!(lab.local.path().join(".orch/data.redb").is_file());
    assert!(!dir.join(".orch/data.redb").exists(), ".orch/ was copied");
    let code = lab.resource("orchRepo", "code");
    assert_eq!(code["removed"], 0, "{code}");
    assert_eq!(code["files"], code["uploaded"], "{code}");

    // The binary: the one that ran the deploy, executable, no upload left behind.
    let exe = Path::new(env!("CARGO_BIN_EXE_orch"));
    assert_eq!(sha256_file(&dir.join("bin/orch")), sha256_file(exe));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.join("bin/orch"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755);
    let bin: Vec<_> = std::fs::read_dir(dir.join("bin"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(bin.len(), 1, "{bin:?}");
    let binary = lab.resource("orchRepo", "binary");
    assert_eq!(binary["sha256"], sha256_file(exe));
    assert_eq!(binary["uploaded"], true, "{binary}");
    assert_eq!(binary["bytes"], std::fs::metadata(exe).unwrap().len());
    // The same binary is not sent again.
    lab.orch(&["model", "run", "orchRepo", "syncBinary"]).ok();
    assert_eq!(lab.resource("orchRepo", "binary")["uploaded"], false);

    // The service: the unit, then daemon-reload and enable --now through the shim.
    let unit = std::fs::read_to_string(lab.remote.path().join("units/orch-bot.service")).unwrap();
    assert!(
        unit.contains(&format!("\nExecStart={}/bin/orch serve\n", dir.display())),
        "{unit}"
    );
    let calls = std::fs::read_to_string(lab.remote.path().join("systemctl.log")).unwrap();
    assert_eq!(calls, "daemon-reload\nenable --now orch-bot.service\n");

    // The vault opens there with slate's own key, and sync-fleet runs with the uploaded binary.
    let keys = lab
        .remote_orch(&["--json", "vault", "list", "proxmox-vault"])
        .ok();
    assert_eq!(keys.json()["keys"], serde_json::json!(["password"]));
    let synced = lab.remote_orch(&["--json", "run", "sync-fleet"]).ok();
    assert_eq!(synced.json()["status"], "succeeded", "{}", synced.all());
    let slate = lab
        .remote_orch(&["--json", "data", "get", "fleet", "slate"])
        .ok()
        .json();
    assert_eq!(slate["attributes"]["ip"], lab.host.addr.as_str(), "{slate}");

    // No plaintext secret (the Proxmox password, the SSH key) on slate's disk, in the run
    // records or in any output.
    let ssh_key = lab.sshd.user_key();
    let key_line = ssh_key.lines().nth(2).expect("a line of the key");
    let id = run.json()["id"].as_str().unwrap().to_string();
    let shown = lab.orch(&["--json", "runs", "show", &id]).ok();
    assert_eq!(shown.json()["target"], "deploy-bot");
    let records = lab.orch(&["--json", "runs", "list"]).ok();
    for secret in [PVE_PASSWORD, key_line] {
        assert!(!contains_bytes(&tree_bytes(lab.remote.path()), secret));
        assert!(!contains_bytes(&lab.local.orch_dir_bytes(), secret));
        for out in [&run, &synced, &shown, &records] {
            assert!(!out.all().contains(secret), "{}", out.all());
        }
    }
}

#[test]
fn a_second_sync_code_uploads_nothing_and_a_file_removed_here_is_removed_there() {
    let lab = BotLab::new();
    lab.orch(&["model", "run", "orchRepo", "syncCode"]).ok();
    let dir = lab.dir();
    // slate's own files: its runtime directory and its binary directory are never touched.
    std::fs::create_dir_all(dir.join(".orch")).unwrap();
    std::fs::write(dir.join(".orch/keep"), "slate's").unwrap();
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::fs::write(dir.join("bin/keep"), "slate's").unwrap();

    lab.orch(&["model", "run", "orchRepo", "syncCode"]).ok();
    let second = lab.resource("orchRepo", "code");
    assert_eq!(second["uploaded"], 0, "{second}");
    assert_eq!(second["removed"], 0, "{second}");

    std::fs::remove_file(lab.local.path().join("dashboards/node-exporter.json")).unwrap();
    lab.local.write("alerts/extra.json", "{}\n");
    // A dry run says what would change, and changes nothing.
    let planned = lab
        .orch(&[
            "--json",
            "model",
            "run",
            "orchRepo",
            "syncCode",
            "--dry-run",
        ])
        .ok();
    for want in [
        "wouldRemove",
        "dashboards/node-exporter.json",
        "alerts/extra.json",
    ] {
        assert!(planned.stdout.contains(want), "{want}: {}", planned.all());
    }
    assert!(dir.join("dashboards/node-exporter.json").is_file());
    assert!(!dir.join("alerts/extra.json").exists());
    assert_eq!(lab.resource("orchRepo", "code"), second);
    lab.orch(&["model", "run", "orchRepo", "syncCode"]).ok();
    let third = lab.resource("orchRepo", "code");
    assert_eq!(third["uploaded"], 1, "{third}");
    assert_eq!(third["removed"], 1, "{third}");
    assert_eq!(
        third["removedFiles"],
        serde_json::json!(["dashboards/node-exporter.json"])
    );
    assert!(!dir.join("dashboards/node-exporter.json").exists());
    assert!(dir.join("dashboards/game-servers.json").is_file());
    assert_eq!(
        std::fs::read_to_string(dir.join("alerts/extra.json")).unwrap(),
        "{}\n"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join(".orch/keep")).unwrap(),
        "slate's"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("bin/keep")).unwrap(),
        "slate's"
    );
    assert_ne!(second["digest"], third["digest"]);
}

#[test]
fn sync_code_refuses_a_directory_holding_files_it_did_not_deploy() {
    let lab = BotLab::new();
    std::fs::create_dir_all(lab.dir()).unwrap();
    std::fs::write(lab.dir().join("precious.txt"), "not orch's").unwrap();
    let refused = lab.orch(&["model", "run", "orchRepo", "syncCode"]).code(1);
    for want in [
        "conflict",
        "did not deploy",
        "precious.txt",
        "globalArguments.dir",
    ] {
        assert!(refused.stderr.contains(want), "{want}: {}", refused.stderr);
    }
    assert_eq!(
        std::fs::read_to_string(lab.dir().join("precious.txt")).unwrap(),
        "not orch's"
    );
    assert!(!lab.dir().join("orch.yaml").exists());
}

#[test]
fn a_binary_corrupted_on_the_way_fails_the_sha256_check_and_is_removed() {
    let lab = BotLab::new();
    // A sha256 tool that first damages any upload in progress, as a bad disk or link would.
    let shim = lab.remote.path().join("damaging-sha256sum");
    std::fs::write(
        &shim,
        "#!/bin/sh\nfor f; do case \"$f\" in *.orch-upload.*) printf x >> \"$f\";; esac; done\nexec sha256sum \"$@\"\n",
    )
    .unwrap();
    let model = std::fs::read_to_string(lab.local.path().join("models/orchRepo.yaml")).unwrap();
    let model = model.replace(
        "  dir: ${{ env.ORCH_BOT_DIR }}\n",
        &format!(
            "  dir: ${{{{ env.ORCH_BOT_DIR }}}}\n  sha256Command: sh {}\n",
            shim.display()
        ),
    );
    assert!(model.contains("sha256Command"), "{model}");
    lab.local.write("models/orchRepoDamaged.yaml", &model);

    let failed = lab
        .orch(&["model", "run", "orchRepoDamaged", "syncBinary"])
        .code(1);
    assert!(failed.stderr.contains("sha256"), "{}", failed.stderr);
    assert!(
        failed.stderr.contains("the upload was removed"),
        "{}",
        failed.stderr
    );
    let bin: Vec<_> = std::fs::read_dir(lab.dir().join("bin"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(bin.is_empty(), "left on slate: {bin:?}");
    lab.orch(&["data", "get", "orchRepoDamaged", "binary"])
        .code(1);
}

#[test]
fn a_host_orch_yaml_does_not_grant_is_denied_before_connecting() {
    let lab = BotLab::granting(|addr, _| format!("{addr}:1"));
    let denied = lab.orch(&["model", "run", "orchRepo", "syncCode"]).code(1);
    assert!(denied.stderr.contains("denied"), "{}", denied.stderr);
    assert!(
        denied.stderr.contains("grants: { orch: { ssh:"),
        "{}",
        denied.stderr
    );
    assert!(!lab.dir().exists());
    assert_eq!(lab.sshd.logins(), 0, "{}", lab.sshd.log());
}

#[test]
fn orch_repo_is_a_built_in_type_that_type_describe_lists() {
    let repo = TestRepo::new(&[]);
    let described = repo
        .orch(&["--json", "type", "describe", "orch/repo"])
        .ok()
        .json();
    let text = described.to_string();
    for method in ["syncCode", "syncBinary", "syncSecrets", "installService"] {
        assert!(text.contains(method), "{method}: {described}");
    }
    let listed = repo.orch(&["type", "list"]).ok();
    assert!(listed.stdout.contains("orch/repo"), "{}", listed.stdout);
}

#[test]
fn a_plugin_cannot_take_the_built_in_id_and_so_its_grants() {
    // grants.orch in orch.yaml are orch/repo's: a bundle calling itself `orch` would get them.
    let repo = TestRepo::new(&["testplug"]);
    let toml = repo.path().join("plugins/testplug/plugin.toml");
    let text = std::fs::read_to_string(&toml).unwrap();
    std::fs::write(&toml, text.replace("id = \"testplug\"", "id = \"orch\"")).unwrap();
    let listed = repo.orch(&["--json", "type", "list"]).ok();
    assert!(
        listed.stderr.contains("plugin id `orch` is reserved"),
        "{}",
        listed.stderr
    );
    let names: Vec<String> = listed
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["orch/repo"]);
}

#[test]
fn excluded_paths_are_neither_uploaded_nor_removed_there() {
    let lab = BotLab::new();
    lab.local.write("target/debug/big.bin", "build output\n");
    lab.local.write("notes/private/plan.md", "mine\n");
    let model = std::fs::read_to_string(lab.local.path().join("models/orchRepo.yaml")).unwrap();
    let model = model.replace(
        "  dir: ${{ env.ORCH_BOT_DIR }}\n",
        "  dir: ${{ env.ORCH_BOT_DIR }}\n  exclude: [target, notes/private/]\n",
    );
    assert!(model.contains("exclude"), "{model}");
    lab.local.write("models/orchRepo.yaml", &model);
    lab.orch(&["model", "run", "orchRepo", "syncCode"]).ok();
    let dir = lab.dir();
    assert!(dir.join("orch.yaml").is_file());
    assert!(
        !dir.join("target").exists(),
        "an excluded directory was uploaded"
    );
    assert!(!dir.join("notes/private/plan.md").exists());
    // A file the remote keeps under an excluded path is not removed either.
    std::fs::create_dir_all(dir.join("target")).unwrap();
    std::fs::write(dir.join("target/remote-only"), "slate's").unwrap();
    lab.orch(&["model", "run", "orchRepo", "syncCode"]).ok();
    let code = lab.resource("orchRepo", "code");
    assert_eq!(code["uploaded"], 0, "{code}");
    assert_eq!(code["removed"], 0, "{code}");
    assert!(dir.join("target/remote-only").is_file());
    // A path leaving the repository is refused by the schema, naming the field.
    lab.local.write(
        "models/orchRepo.yaml",
        &model.replace("[target, notes/private/]", "[../elsewhere]"),
    );
    let refused = lab.orch(&["model", "run", "orchRepo", "syncCode"]).code(1);
    assert!(
        refused
            .stderr
            .contains("models/orchRepo.yaml:9: globalArguments.exclude[0]"),
        "{}",
        refused.all()
    );
}
