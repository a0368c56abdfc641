//! A real OpenSSH `sshd` on 127.0.0.1 at a free high port, with a generated host key and a
//! generated user key, for as long as the value lives.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SSHD: &str = "/usr/sbin/sshd";

/// A running sshd; killed by PID when dropped.
pub struct Sshd {
    pub port: u16,
    pub user: String,
    pub dir: tempfile::TempDir,
    /// The address sshd listens on (127.0.0.1, or a test host's address in its own netns).
    pub listen: String,
    netns: Option<String>,
    /// More sshd_config lines (e.g. `SetEnv`), appended to the generated ones.
    extra_config: String,
    child: Option<Child>,
}

/// A network namespace of the test's own, joined to this one by a veth pair: a "remote" test
/// host with a non-loopback address that only this machine can reach. Deleted on drop.
pub struct TestHost {
    /// Namespace name.
    pub name: String,
    /// The host's address inside the namespace.
    pub addr: String,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl TestHost {
    /// Creates the namespace, the veth pair and the addresses (10.213.N.1 here, .2 there).
    pub fn create() -> TestHost {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        // Several test binaries (and other worktrees' runs) build hosts at once: claim a free
        // number by creating its namespace, never by deleting someone else's.
        let first = (std::process::id() % 2000) * 20 + NEXT.fetch_add(1, Ordering::SeqCst) % 20;
        let (n, name, here, there) = (0..400)
            .map(|i| (first + i * 7) % 60_000)
            .find_map(|n| {
                let name = format!("orcht{n}");
                let (here, there) = (format!("ov{n}a"), format!("ov{n}b"));
                ip(&["netns", "add", &name]).ok()?;
                if ip(&["link", "add", &here, "type", "veth", "peer", "name", &there]).is_err() {
                    let _ = ip(&["netns", "del", &name]);
                    return None;
                }
                Some((n, name, here, there))
            })
            .unwrap_or_else(|| {
                panic!("cannot build the test host network (needs root and iproute2): no free name")
            });
        let (a, b) = (n / 256 % 256, n % 256);
        let host_addr = format!("10.214.{a}.{b}");
        let ns_addr = format!("10.215.{a}.{b}");
        let run = |args: Vec<&str>| {
            ip(&args).unwrap_or_else(|e| {
                panic!("cannot build the test host network (needs root and iproute2): {e}")
            })
        };
        run(vec!["link", "set", &there, "netns", &name]);
        run(vec![
            "addr",
            "add",
            &format!("{host_addr}/32"),
            "dev",
            &here,
        ]);
        run(vec!["link", "set", &here, "up"]);
        run(vec![
            "netns",
            "exec",
            &name,
            "ip",
            "addr",
            "add",
            &format!("{ns_addr}/32"),
            "dev",
            &there,
        ]);
        run(vec![
            "netns", "exec", &name, "ip", "link", "set", &there, "up",
        ]);
        run(vec![
            "netns", "exec", &name, "ip", "link", "set", "lo", "up",
        ]);
        run(vec!["route", "add", &format!("{ns_addr}/32"), "dev", &here]);
        run(vec![
            "netns",
            "exec",
            &name,
            "ip",
            "route",
            "add",
            &format!("{host_addr}/32"),
            "dev",
            &there,
        ]);
        TestHost {
            name,
            addr: ns_addr,
        }
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.name]);
    }
}

/// Generates an ed25519 key pair at `path` (and `path.pub`).
pub fn keygen(path: &Path, passphrase: &str) {
    let _ = std::fs::remove_file(path);
    let _ = std::fs::remove_file(path.with_extension("pub"));
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-C", "", "-N", passphrase, "-f"])
        .arg(path)
        .output()
        .expect("run ssh-keygen");
    assert!(
        out.status.success(),
        "ssh-keygen failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `SHA256:…` of a public key file, as ssh-keygen prints it.
pub fn fingerprint(pub_path: &Path) -> String {
    let out = Command::new("ssh-keygen")
        .args(["-l", "-E", "sha256", "-f"])
        .arg(pub_path)
        .output()
        .expect("run ssh-keygen -l");
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("no fingerprint in {text:?}"))
        .to_string()
}

fn current_user() -> String {
    let out = Command::new("id").arg("-un").output().expect("run id -un");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Sshd {
    /// Starts sshd with a new host key and a user key authorized for the current user.
    pub fn start() -> Sshd {
        Self::start_as(&current_user())
    }

    /// Starts sshd with a user key authorized for `user` (an existing, unlocked account).
    pub fn start_as(user: &str) -> Sshd {
        assert!(
            Path::new(SSHD).is_file(),
            "{SSHD} is missing: install openssh-server (cargo xtask test does)"
        );
        // sshd insists on its privilege-separation directory.
        std::fs::create_dir_all("/run/sshd").expect("create /run/sshd");
        let dir = tempfile::tempdir().expect("tempdir");
        keygen(&dir.path().join("host_key"), "");
        keygen(&dir.path().join("user_key"), "");
        std::fs::copy(
            dir.path().join("user_key.pub"),
            dir.path().join("authorized_keys"),
        )
        .unwrap();
        // sshd reads authorized_keys as the login user.
        use std::os::unix::fs::PermissionsExt;
        let readable = std::fs::Permissions::from_mode(0o755);
        std::fs::set_permissions(dir.path(), readable).unwrap();
        let mut sshd = Sshd {
            port: free_port(),
            user: user.to_string(),
            dir,
            listen: "127.0.0.1".into(),
            netns: None,
            extra_config: String::new(),
            child: None,
        };
        sshd.spawn();
        sshd
    }

    /// Starts sshd inside a test host's namespace, listening on its address.
    pub fn start_on(host: &TestHost) -> Sshd {
        let mut sshd = Self::start();
        sshd.stop();
        sshd.listen = host.addr.clone();
        sshd.netns = Some(host.name.clone());
        sshd.spawn();
        sshd
    }

    /// Starts sshd inside a test host's namespace on `port` (each namespace has its own ports,
    /// so several test hosts can share one), with `extra` appended to its sshd_config, e.g.
    /// `SetEnv TMUX_TMPDIR=/tmp/x` so every login's tmux uses the test's own server.
    pub fn start_on_with_config(host: &TestHost, port: u16, extra: &str) -> Sshd {
        let mut sshd = Self::start();
        sshd.stop();
        sshd.port = port;
        sshd.listen = host.addr.clone();
        sshd.netns = Some(host.name.clone());
        sshd.extra_config = extra.to_string();
        sshd.spawn();
        sshd
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The authorized user key (OpenSSH private key text).
    pub fn user_key(&self) -> String {
        std::fs::read_to_string(self.path("user_key")).unwrap()
    }

    /// The host key's `SHA256:…` fingerprint.
    pub fn host_fingerprint(&self) -> String {
        fingerprint(&self.path("host_key.pub"))
    }

    /// Adds another public key to authorized_keys.
    pub fn authorize(&self, pub_path: &Path) {
        let mut keys = std::fs::read_to_string(self.path("authorized_keys")).unwrap();
        keys.push_str(&std::fs::read_to_string(pub_path).unwrap());
        std::fs::write(self.path("authorized_keys"), keys).unwrap();
    }

    /// sshd's log (it runs with `-e`, so this is its stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.path("sshd.log")).unwrap_or_default()
    }

    /// How many logins sshd accepted so far.
    pub fn logins(&self) -> usize {
        self.log().matches("Accepted publickey").count()
    }

    /// Stops sshd and starts it again on the same port with a newly generated host key.
    pub fn restart_with_new_host_key(&mut self) {
        self.stop();
        keygen(&self.path("host_key"), "");
        self.spawn();
    }

    fn spawn(&mut self) {
        let d = self.dir.path().display();
        let config = format!(
            "Port {port}\nListenAddress {listen}\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\n\
             UsePAM no\nPermitRootLogin prohibit-password\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nPubkeyAuthentication yes\n\
             AuthorizedKeysFile {d}/authorized_keys\nStrictModes no\nLogLevel VERBOSE\n\
             MaxStartups 100\nMaxSessions 20\nPrintMotd no\n",
            port = self.port,
            listen = self.listen
        ) + &self.extra_config;
        std::fs::write(self.path("sshd_config"), config).unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path("sshd.log"))
            .unwrap();
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, SSHD]);
                c
            }
            None => Command::new(SSHD),
        };
        let mut child = cmd
            .args(["-D", "-e", "-f"])
            .arg(self.path("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start sshd");
        // Ready when the port accepts a connection; bounded, and fails fast if sshd exits.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("sshd exited with {status}:\n{}", self.log());
            }
            if TcpStream::connect((self.listen.as_str(), self.port)).is_ok() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "sshd did not listen on port {} within 10 s:\n{}",
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child = Some(child);
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.stop();
    }
}
