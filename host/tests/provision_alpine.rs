//! The homelab's Alpine provisioning through the real `orch` binary: `deploy-apkovl` publishes
//! the gold image's overlay to a real lighttpd (and boot files to a real tftpd-hpa), both on
//! loopback ports started here; `create-stateful-vm` creates a VM on the Proxmox simulator, lets
//! it "PXE boot", installs Alpine over real SSH and reboots it from disk. The hosts are real sshd
//! in test network namespaces; `lbu`, `setup-alpine`, `mount`, `chroot` and `umount` are
//! command-recording shims first on their PATH.

mod support;

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use support::prometheus::{free_port, poll};
use support::sshd::{Sshd, TestHost};
use support::{Run, TestRepo};

const LIGHTTPD: &str = "/usr/sbin/lighttpd";
const TFTPD: &str = "/usr/sbin/in.tftpd";

fn homelab() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../workflows/homelab")
}

/// Copies the homelab repository's orch.yaml, models, workflows and config into `repo`.
fn copy_homelab(repo: &TestRepo) {
    let example = homelab();
    for dir in ["models", "workflows", "config"] {
        std::fs::create_dir_all(repo.path().join(dir)).unwrap();
        for e in std::fs::read_dir(example.join(dir)).unwrap().flatten() {
            std::fs::copy(e.path(), repo.path().join(dir).join(e.file_name())).unwrap();
        }
    }
    std::fs::copy(example.join("orch.yaml"), repo.path().join("orch.yaml")).unwrap();
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn write_exec(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn real(command: &str) -> String {
    let out = Command::new("sh")
        .args(["-c", &format!("command -v {command}")])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A directory of shims that append `name args` to `log` and fail with the text of
/// `fail-<name>` on stderr when that file exists.
struct Shims {
    dir: tempfile::TempDir,
}

impl Shims {
    fn new() -> Shims {
        let dir = tempfile::tempdir().unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        Shims { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A recording shim that then runs `body` (shell text; `$@` are its arguments).
    fn add(&self, name: &str, body: &str) -> &Self {
        let d = self.dir.path().display();
        write_exec(
            &self.path(name),
            &format!(
                "#!/bin/sh\nprintf '%s\\n' \"{name} $*\" >> {d}/log\n\
                 if [ -e {d}/fail-{name} ]; then cat {d}/fail-{name} >&2; exit 1; fi\n{body}\n"
            ),
        );
        self
    }

    fn log(&self) -> Vec<String> {
        std::fs::read_to_string(self.path("log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// sshd_config text that puts the shims first on every session's PATH.
    fn sshd_config(&self) -> String {
        format!(
            "SetEnv PATH={}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n",
            self.dir.path().display()
        )
    }
}

/// A real lighttpd and tftpd-hpa on loopback ports, serving `http/` and `tftp/` of a temp dir.
/// lighttpd's stat cache is off: the tests replace the served overlay several times within a
/// second, and a cached entry once served the previous file after the third deploy.
struct Pxe {
    dir: tempfile::TempDir,
    http_port: u16,
    tftp_port: u16,
    children: Vec<Child>,
}

impl Pxe {
    fn start() -> Pxe {
        for bin in [LIGHTTPD, TFTPD] {
            assert!(
                Path::new(bin).is_file(),
                "{bin} is missing: install lighttpd and tftpd-hpa (cargo xtask test does)"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("http")).unwrap();
        std::fs::create_dir_all(d.join("tftp")).unwrap();
        let (http_port, tftp_port) = (free_port(), free_port());
        std::fs::write(
            d.join("lighttpd.conf"),
            format!(
                "server.document-root = \"{root}\"\nserver.bind = \"127.0.0.1\"\n\
                 server.port = {http_port}\nserver.errorlog = \"{log}\"\n\
                 server.stat-cache-engine = \"disable\"\n",
                root = d.join("http").display(),
                log = d.join("lighttpd.log").display()
            ),
        )
        .unwrap();
        let lighttpd = Command::new(LIGHTTPD)
            .arg("-D")
            .arg("-f")
            .arg(d.join("lighttpd.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start lighttpd");
        let tftpd = Command::new(TFTPD)
            .args(["--foreground", "--address"])
            .arg(format!("127.0.0.1:{tftp_port}"))
            .args(["--secure", "--user", "root"])
            .arg(d.join("tftp"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start in.tftpd");
        let pxe = Pxe {
            dir,
            http_port,
            tftp_port,
            children: vec![lighttpd, tftpd],
        };
        std::fs::write(pxe.http_dir().join("ready"), "ready").unwrap();
        std::fs::write(pxe.tftp_dir().join("ready"), "ready").unwrap();
        assert!(
            poll(100, || pxe.http("ready")).is_some(),
            "lighttpd does not answer"
        );
        assert!(
            poll(100, || pxe.tftp("ready")).is_some(),
            "tftpd does not answer"
        );
        pxe
    }

    fn http_dir(&self) -> PathBuf {
        self.dir.path().join("http")
    }

    fn tftp_dir(&self) -> PathBuf {
        self.dir.path().join("tftp")
    }

    fn fetch(url: &str) -> Option<Vec<u8>> {
        let out = Command::new("curl")
            .args(["-sf", "--max-time", "10", url])
            .output()
            .ok()?;
        out.status.success().then_some(out.stdout)
    }

    /// A file served over HTTP, or None.
    fn http(&self, name: &str) -> Option<Vec<u8>> {
        Self::fetch(&format!("http://127.0.0.1:{}/{name}", self.http_port))
    }

    /// A file served over TFTP, or None.
    fn tftp(&self, name: &str) -> Option<Vec<u8>> {
        Self::fetch(&format!("tftp://127.0.0.1:{}/{name}", self.tftp_port))
    }
}

impl Drop for Pxe {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The IP the simulator's guest agent reports for a VM it created (its `default_ipv4`).
fn simulator_ip(vmid: u32) -> String {
    format!("10.1.{}.{}", (vmid / 250) % 256, vmid % 250 + 2)
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Gives a test host a second address, reachable from here (the veth pair's routes).
fn add_address(host: &TestHost, addr: &str) {
    let n = host.name.strip_prefix("orcht").unwrap();
    let (here, there) = (format!("ov{n}a"), format!("ov{n}b"));
    ip(&[
        "netns",
        "exec",
        &host.name,
        "ip",
        "addr",
        "add",
        &format!("{addr}/32"),
        "dev",
        &there,
    ]);
    ip(&["route", "add", &format!("{addr}/32"), "dev", &here]);
}

/// The homelab with the proxmox and alpine plugins: the gold image, the PXE server and (for
/// create-stateful-vm) a new VM are test hosts with their own sshd and shims.
struct Lab {
    repo: TestRepo,
    pve: pve_sim::Simulator,
    pxe: Pxe,
    port: u16,
    user: String,
    gold: Shims,
    server: Shims,
    vm: Shims,
    vm_addr: String,
    vmid: u32,
    /// The gold image's files (the overlay lbu packages, the boot files).
    files: tempfile::TempDir,
    _sshd: Vec<Sshd>,
    _hosts: Vec<TestHost>,
}

impl Lab {
    fn new() -> Lab {
        let hosts = [TestHost::create(), TestHost::create(), TestHost::create()];
        let (gold_host, server_host, vm_host) = (&hosts[0], &hosts[1], &hosts[2]);
        // A vmid (so an address) of this lab's own: the simulator picks the address from it.
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let vmid = 2000 + (std::process::id() % 5000) * 8 + NEXT.fetch_add(1, Ordering::SeqCst) % 8;
        let vm_addr = simulator_ip(vmid);
        add_address(vm_host, &vm_addr);
        let port = free_port();
        let files = tempfile::tempdir().unwrap();
        let f = files.path().display();

        let gold = Shims::new();
        gold.add("lbu", &format!("cp {f}/overlay.tar.gz \"$2\""));
        let server = Shims::new();
        for cmd in ["mkdir", "sha256sum", "mv"] {
            server.add(cmd, &format!("exec {} \"$@\"", real(cmd)));
        }
        // `cat` without arguments is the upload's copy of stdin: with the `interrupt` file it
        // copies a little and is killed half-way, as a dropped session would leave it.
        write_exec(
            &server.path("cat"),
            &format!(
                "#!/bin/sh\nif [ $# -eq 0 ] && [ -e {d}/interrupt ]; then head -c 100; kill -9 $$; fi\n\
                 exec {cat} \"$@\"\n",
                d = server.dir.path().display(),
                cat = real("cat")
            ),
        );
        let vm = Shims::new();
        let v = vm.dir.path().display();
        // setup-alpine keeps a copy of the answer file it was given, with its mode.
        vm.add(
            "setup-alpine",
            &format!(
                "echo \"ERASE_DISKS=$ERASE_DISKS\" >> {v}/log\ncp \"$3\" {v}/answers\nstat -c %a \"$3\" > {v}/answers-mode"
            ),
        );
        for cmd in ["mount", "umount", "chroot"] {
            vm.add(cmd, "true");
        }

        let sshd: Vec<Sshd> = [(gold_host, &gold), (server_host, &server)]
            .into_iter()
            .map(|(h, s)| Sshd::start_on_with_config(h, port, &s.sshd_config()))
            .chain(std::iter::once(Sshd::start_on_with_config(
                vm_host,
                port,
                &format!("ListenAddress {vm_addr}\n{}", vm.sshd_config()),
            )))
            .collect();
        for other in &sshd[1..] {
            other.authorize(&sshd[0].path("user_key.pub"));
        }
        let pve = pve_sim::Simulator::start_blocking(pve_sim::SimConfig {
            password: "pve-pass".into(),
            fleet: pve_sim::Fleet::empty().with(
                pve_sim::VmSeed::new(109, "gold-image").running_at(gold_host.addr.parse().unwrap()),
            ),
            ..Default::default()
        })
        .unwrap();
        let repo = TestRepo::new(&["proxmox", "alpine"]);
        copy_homelab(&repo);
        repo.orch_stdin(&["vault", "put", "proxmox-vault", "password"], "pve-pass")
            .ok();
        repo.orch_stdin(
            &["vault", "put", "ssh-vault", "private-key"],
            &sshd[0].user_key(),
        )
        .ok();
        for addr in [&gold_host.addr, &server_host.addr, &vm_addr] {
            repo.orch(&["ssh", "trust", &format!("{addr}:{port}")]).ok();
        }
        let pxe = Pxe::start();
        let user = sshd[0].user.clone();
        let server_addr = server_host.addr.clone();
        let lab = Lab {
            repo,
            pve,
            pxe,
            port,
            user,
            gold,
            server,
            vm,
            vm_addr,
            vmid,
            files,
            _sshd: sshd,
            _hosts: hosts.into(),
        };
        std::fs::write(lab.server.path("server-addr"), server_addr).unwrap();
        lab
    }

    fn orch(&self, args: &[&str]) -> Run {
        let mut cmd = self.repo.command(args);
        let server = std::fs::read_to_string(self.server.path("server-addr")).unwrap();
        cmd.env("PROXMOX_API_URL", self.pve.url())
            .env("SSH_PORT", self.port.to_string())
            .env("SSH_USER", &self.user)
            .env("PXE_SERVER_HOST", server)
            .env("PXE_SSH_PORT", self.port.to_string())
            .env("PXE_HTTP_DIR", self.pxe.http_dir())
            .env("PXE_TFTP_DIR", self.pxe.tftp_dir())
            .env(
                "ALPINE_ANSWERS_PATH",
                self.files.path().join("setup-alpine.answers"),
            );
        Run::from_output(cmd.output().unwrap())
    }

    /// Makes the next `lbu package` produce `contents` as the overlay.
    fn set_overlay(&self, contents: &[u8]) {
        std::fs::write(self.files.path().join("overlay.tar.gz"), contents).unwrap();
    }
}

/// Overlay bytes: more than the interrupted copy lets through.
fn overlay(tag: &str) -> Vec<u8> {
    format!("apkovl {tag}\n").repeat(500).into_bytes()
}

fn hidden_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.') || n.contains("orch-upload"))
        .collect()
}

#[test]
fn deploy_apkovl_serves_the_overlay_over_http_and_boot_files_over_tftp_and_an_interrupted_upload_keeps_the_old_one()
 {
    let lab = Lab::new();
    lab.orch(&["run", "sync-fleet"]).ok();
    let boot = lab.files.path().join("boot");
    std::fs::create_dir_all(&boot).unwrap();
    std::fs::write(boot.join("vmlinuz-lts"), b"kernel image 6.6").unwrap();
    std::fs::write(boot.join("initramfs-lts"), b"initramfs 6.6").unwrap();
    let boot_files = format!(
        r#"{{"bootFiles": ["{}", "{}"]}}"#,
        boot.join("vmlinuz-lts").display(),
        boot.join("initramfs-lts").display()
    );

    // First deploy: the overlay and the boot files are published.
    let first = overlay("one");
    lab.set_overlay(&first);
    let run = lab
        .orch(&["--json", "run", "deploy-apkovl", "--input", &boot_files])
        .ok()
        .json();
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(lab.gold.log(), ["lbu package /tmp/alpine.apkovl.tar.gz"]);
    let http = lab.pxe.http_dir().display().to_string();
    let tftp = lab.pxe.tftp_dir().display().to_string();
    let tmp = format!("{http}/.alpine.apkovl.tar.gz.orch-tmp");
    // The server's commands on the PXE directories (the login shell's own mkdirs and the SSH
    // upload's internal rename of its `.orch-upload.PID` file aside).
    let root = lab.pxe.dir.path().display().to_string();
    let on_pxe: Vec<String> = lab
        .server
        .log()
        .into_iter()
        .filter(|l| l.contains(&root) && !l.contains(".orch-upload."))
        .collect();
    assert_eq!(
        on_pxe,
        [
            format!("mkdir -p {http}"),
            format!("sha256sum {tmp}"),
            format!("mv -f {tmp} {http}/alpine.apkovl.tar.gz"),
            format!("mkdir -p {tftp}"),
            format!("sha256sum {tftp}/.vmlinuz-lts.orch-tmp"),
            format!("mv -f {tftp}/.vmlinuz-lts.orch-tmp {tftp}/vmlinuz-lts"),
            format!("mkdir -p {tftp}"),
            format!("sha256sum {tftp}/.initramfs-lts.orch-tmp"),
            format!("mv -f {tftp}/.initramfs-lts.orch-tmp {tftp}/initramfs-lts"),
        ]
    );
    let served = lab
        .pxe
        .http("alpine.apkovl.tar.gz")
        .expect("overlay served");
    assert_eq!(sha256(&served), sha256(&first));
    assert_eq!(
        lab.pxe.tftp("vmlinuz-lts").expect("kernel over tftp"),
        b"kernel image 6.6"
    );
    assert_eq!(
        lab.pxe.tftp("initramfs-lts").expect("initramfs over tftp"),
        b"initramfs 6.6"
    );
    let data = lab
        .orch(&["--json", "data", "get", "goldImageOverlay", "overlay"])
        .ok()
        .json();
    assert!(data.to_string().contains(&sha256(&first)), "{data}");

    // Second deploy, killed half-way through the copy: the served file is still the first.
    let second = overlay("two");
    lab.set_overlay(&second);
    std::fs::write(lab.server.path("interrupt"), "").unwrap();
    let run = lab.orch(&["--json", "run", "deploy-apkovl"]);
    assert_ne!(run.code, 0, "{}", run.all());
    assert!(
        run.all().contains("served file is unchanged"),
        "{}",
        run.all()
    );
    let served = lab
        .pxe
        .http("alpine.apkovl.tar.gz")
        .expect("overlay served");
    assert_eq!(sha256(&served), sha256(&first));
    assert_eq!(hidden_files(&lab.pxe.http_dir()), Vec::<String>::new());

    // Third deploy, uninterrupted: the new overlay replaces it.
    std::fs::remove_file(lab.server.path("interrupt")).unwrap();
    lab.orch(&["run", "deploy-apkovl"]).ok();
    let served = lab
        .pxe
        .http("alpine.apkovl.tar.gz")
        .expect("overlay served");
    assert_eq!(sha256(&served), sha256(&second));
}

#[test]
fn start_gold_image_starts_it_and_deploy_apkovl_stops_at_a_failing_lbu_with_its_stderr() {
    let lab = Lab::new();
    lab.pve
        .change(pve_sim::WorldChange::StopGuest { vmid: 109 })
        .unwrap();
    assert_eq!(lab.pve.vm_status("gold-image").as_deref(), Some("stopped"));
    let run = lab.orch(&["--json", "run", "start-gold-image"]).ok().json();
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(lab.pve.vm_status("gold-image").as_deref(), Some("running"));
    std::fs::write(
        lab.gold.path("fail-lbu"),
        "lbu: /media/usb is not mounted\n",
    )
    .unwrap();
    let run = lab.orch(&["--json", "run", "deploy-apkovl"]);
    assert_ne!(run.code, 0, "{}", run.all());
    assert!(
        run.all().contains("lbu: /media/usb is not mounted"),
        "{}",
        run.all()
    );
    assert_eq!(lab.server.log(), Vec::<String>::new());
    assert!(lab.pxe.http("alpine.apkovl.tar.gz").is_none());
}

#[test]
fn create_stateful_vm_pxe_boots_installs_alpine_to_disk_and_boots_from_disk() {
    let lab = Lab::new();
    let vmid = lab.vmid.to_string();
    let inputs = format!(r#"{{"vmName": "slate", "vmid": {vmid}}}"#);
    let run = lab
        .orch(&["--json", "run", "create-stateful-vm", "--input", &inputs])
        .ok()
        .json();
    assert_eq!(run["status"], "succeeded", "{run}");
    let answers = lab.files.path().join("setup-alpine.answers");
    let a = answers.display();
    assert_eq!(
        lab.vm.log(),
        [
            format!("setup-alpine -e -f {a}"),
            "ERASE_DISKS=/dev/sda".to_string(),
            "mount /dev/sda3 /mnt".to_string(),
            "mount -t proc proc /mnt/proc".to_string(),
            "mount --bind /dev /mnt/dev".to_string(),
            "chroot /mnt /bin/sh -c apk add qemu-guest-agent".to_string(),
            "chroot /mnt /bin/sh -c rc-update add qemu-guest-agent default".to_string(),
            "umount /mnt/dev /mnt/proc /mnt".to_string(),
        ]
    );
    // setup-alpine got the repository's answer file, 0600; it is gone afterwards.
    let given = std::fs::read_to_string(lab.vm.path("answers")).unwrap();
    assert_eq!(
        given,
        std::fs::read_to_string(homelab().join("config/setup-alpine.conf")).unwrap()
    );
    assert_eq!(
        std::fs::read_to_string(lab.vm.path("answers-mode"))
            .unwrap()
            .trim(),
        "600"
    );
    assert!(!answers.exists());
    // The VM was created to boot its disk first, and runs again after the install.
    let vm = lab
        .orch(&["--json", "data", "get", "fleet", "slate"])
        .ok()
        .json();
    let text = vm.to_string();
    assert!(text.contains("running"), "{vm}");
    assert!(text.contains(&lab.vm_addr), "{vm}");
    let config = lab.pve.guest_config(lab.vmid).expect("slate's config");
    assert_eq!(
        config.get("boot").map(String::as_str),
        Some("order=scsi0;net0"),
        "{config:?}"
    );
    assert_eq!(lab.pve.vm_status("slate").as_deref(), Some("running"));
    let power: Vec<String> = lab
        .pve
        .writes()
        .into_iter()
        .filter(|w| w.contains(&format!("/{vmid}/status/")))
        .collect();
    assert_eq!(power.len(), 3, "{power:?}");
    assert!(power[0].ends_with("/status/start"), "{power:?}");
    assert!(power[1].ends_with("/status/stop"), "{power:?}");
    assert!(power[2].ends_with("/status/start"), "{power:?}");
}

#[test]
fn create_stateful_vm_stops_at_a_failing_post_install_step_with_its_stderr() {
    let lab = Lab::new();
    std::fs::write(
        lab.vm.path("fail-chroot"),
        "ERROR: unable to select packages: qemu-guest-agent (no such package)\n",
    )
    .unwrap();
    let inputs = format!(r#"{{"vmName": "slate", "vmid": {}}}"#, lab.vmid);
    let run = lab.orch(&["--json", "run", "create-stateful-vm", "--input", &inputs]);
    assert_ne!(run.code, 0, "{}", run.all());
    assert!(
        run.all().contains("unable to select packages"),
        "{}",
        run.all()
    );
    // The first post-install command failed; nothing after it ran but the unmount.
    let log = lab.vm.log();
    assert_eq!(
        log[log.len() - 2..],
        [
            "chroot /mnt /bin/sh -c apk add qemu-guest-agent",
            "umount /mnt/dev /mnt/proc /mnt"
        ],
        "{log:?}"
    );
    // The run stopped there: the VM was not stopped to boot from disk.
    let stops: Vec<String> = lab
        .pve
        .writes()
        .into_iter()
        .filter(|w| w.ends_with("/status/stop"))
        .collect();
    assert_eq!(stops, Vec::<String>::new());
    assert_eq!(lab.pve.vm_status("slate").as_deref(), Some("running"));
    assert!(!lab.files.path().join("setup-alpine.answers").exists());
}
