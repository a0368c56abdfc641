//! `dns/dnsmasq converge` through the real `orch` binary over real SSH (OpenSSH on loopback),
//! against a real dnsmasq started by the test on a free loopback UDP port, asked with real DNS
//! queries built by hand (no dig needed).

mod support;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use support::TestRepo;
use support::sshd::Sshd;

const DNSMASQ: &str = "/usr/sbin/dnsmasq";

/// A repo with the dnsmasq plugin installed, the user key in the vault and the host key trusted.
fn repo_for(sshd: &Sshd) -> TestRepo {
    let repo = TestRepo::new(&["dnsmasq"]);
    repo.orch_stdin(
        &["vault", "put", "ssh-vault", "private-key"],
        &sshd.user_key(),
    )
    .ok();
    repo.orch(&["ssh", "trust", &format!("{}:{}", sshd.listen, sshd.port)])
        .ok();
    repo
}

/// The test's dnsmasq: its files live in `dir`; reloads and restarts are counted in files.
struct Lab {
    dir: tempfile::TempDir,
    port: u16,
}

impl Lab {
    fn new() -> Lab {
        let dir = tempfile::tempdir().unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        // dnsmasq binds the port for UDP and for TCP (DNS over TCP): a port free for UDP alone
        // was once taken for TCP, and dnsmasq exited 2 (address in use).
        let port = (0..100)
            .find_map(|_| {
                let udp = UdpSocket::bind("127.0.0.1:0").ok()?;
                let port = udp.local_addr().ok()?.port();
                std::net::TcpListener::bind(("127.0.0.1", port)).ok()?;
                Some(port)
            })
            .expect("a loopback port free for UDP and TCP");
        Lab { dir, port }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Lines in a counter file the reload and restart commands append to.
    fn count(&self, name: &str) -> usize {
        std::fs::read_to_string(self.path(name))
            .unwrap_or_default()
            .lines()
            .count()
    }

    /// How often dnsmasq has (re)read the hosts file, from its log.
    fn hosts_reads(&self) -> usize {
        let needle = format!("read {}", self.path("orch.hosts").display());
        std::fs::read_to_string(self.path("dnsmasq.log"))
            .unwrap_or_default()
            .matches(&needle)
            .count()
    }

    /// The model: `hosts` is a CEL comprehension over (name, ip) pairs, as a repository's
    /// would be over the declared guests.
    fn model(&self, sshd: &Sshd, pairs: &[(&str, &str)], test_command: &str) -> String {
        let list: Vec<String> = pairs
            .iter()
            .map(|(n, ip)| format!("[\"{n}\", \"{ip}\"]"))
            .collect();
        let d = self.dir.path().display();
        format!(
            "type: dns/dnsmasq\nglobalArguments:\n  sshHost: {}\n  sshPort: {}\n  sshUser: {}\n  \
             sshKey: ${{{{ vault.get(\"ssh-vault\", \"private-key\") }}}}\n  \
             confDir: {d}/conf\n  hostsFile: {d}/orch.hosts\n  testCommand: {test_command}\n  \
             reloadCommand: echo reload >> {d}/reloads && kill -HUP $(cat {d}/dnsmasq.pid)\n  \
             restartCommand: echo restart >> {d}/restarts\n  \
             hosts: '${{{{ [{}].map(p, {{\"name\": p[0], \"ip\": p[1]}}) }}}}'\n",
            sshd.listen,
            sshd.port,
            sshd.user,
            list.join(", ")
        )
    }
}

/// dnsmasq in the foreground as the test's user, answering only from its conf dir's files.
struct Dnsmasq {
    child: Child,
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn current_user() -> String {
    let out = Command::new("id").arg("-un").output().expect("run id -un");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn start_dnsmasq(lab: &Lab) -> Dnsmasq {
    assert!(
        Path::new(DNSMASQ).is_file(),
        "{DNSMASQ} is missing: install dnsmasq-base (cargo xtask test does)"
    );
    let arg = |name: &str, file: &str| format!("--{name}={}", lab.path(file).display());
    let mut child = Command::new(DNSMASQ)
        .arg("--keep-in-foreground")
        .arg(format!("--port={}", lab.port))
        .args(["--listen-address=127.0.0.1", "--bind-interfaces"])
        .args(["--no-resolv", "--no-hosts"])
        .arg(format!("--user={}", current_user()))
        .arg(arg("conf-dir", "conf"))
        .arg(arg("pid-file", "dnsmasq.pid"))
        .arg(arg("log-facility", "dnsmasq.log"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start dnsmasq");
    // Ready when it answers a query (bounded; fails fast if dnsmasq exits).
    for _ in 0..200 {
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "dnsmasq exited with {status}:\n{}",
                std::fs::read_to_string(lab.path("dnsmasq.log")).unwrap_or_default()
            );
        }
        if query(lab.port, "ready.check", 1, Duration::from_millis(50)).is_some() {
            return Dnsmasq { child };
        }
    }
    panic!("dnsmasq did not answer on 127.0.0.1:{}", lab.port);
}

/// A DNS query for `name` of type `qtype` (1 = A, 28 = AAAA), built by hand.
fn dns_query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut q = Vec::new();
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]); // RD; one question
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&[0, 1]); // class IN
    q
}

/// Skips a (possibly compressed) name at `at`; returns the offset after it.
fn skip_name(msg: &[u8], mut at: usize) -> usize {
    loop {
        let len = msg[at] as usize;
        if len & 0xC0 == 0xC0 {
            return at + 2;
        }
        at += 1 + len;
        if len == 0 {
            return at;
        }
    }
}

/// The A/AAAA addresses in a reply to query `id`, sorted.
fn dns_answers(msg: &[u8], id: u16) -> Vec<IpAddr> {
    assert_eq!(
        u16::from_be_bytes([msg[0], msg[1]]),
        id,
        "reply to our query"
    );
    let questions = u16::from_be_bytes([msg[4], msg[5]]);
    let count = u16::from_be_bytes([msg[6], msg[7]]);
    let mut at = 12;
    for _ in 0..questions {
        at = skip_name(msg, at) + 4;
    }
    let mut out = Vec::new();
    for _ in 0..count {
        at = skip_name(msg, at);
        let rtype = u16::from_be_bytes([msg[at], msg[at + 1]]);
        let len = u16::from_be_bytes([msg[at + 8], msg[at + 9]]) as usize;
        let data = &msg[at + 10..at + 10 + len];
        match (rtype, len) {
            (1, 4) => out.push(IpAddr::V4(Ipv4Addr::new(
                data[0], data[1], data[2], data[3],
            ))),
            (28, 16) => out.push(IpAddr::V6(Ipv6Addr::from(
                <[u8; 16]>::try_from(data).unwrap(),
            ))),
            _ => {}
        }
        at += 10 + len;
    }
    out.sort();
    out
}

/// Asks dnsmasq; None when it did not answer within `wait`.
fn query(port: u16, name: &str, qtype: u16, wait: Duration) -> Option<Vec<IpAddr>> {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(wait)).unwrap();
    let id = 0x4f52 ^ qtype;
    socket
        .send_to(&dns_query(id, name, qtype), ("127.0.0.1", port))
        .unwrap();
    let mut buf = [0u8; 1500];
    let n = socket.recv(&mut buf).ok()?;
    Some(dns_answers(&buf[..n], id))
}

/// The addresses dnsmasq gives for `name`, as text.
fn resolve(port: u16, name: &str, qtype: u16) -> Vec<String> {
    query(port, name, qtype, Duration::from_secs(2))
        .unwrap_or_else(|| panic!("dnsmasq did not answer for {name}"))
        .iter()
        .map(IpAddr::to_string)
        .collect()
}

/// Like [`resolve`], retried (bounded) until the answer is `expected`: dnsmasq handles the
/// SIGHUP of a reload on its own schedule.
fn resolve_after_reload(port: u16, name: &str, qtype: u16, expected: &[&str]) -> Vec<String> {
    let mut answer = Vec::new();
    for _ in 0..250 {
        answer = resolve(port, name, qtype);
        if answer == expected {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    answer
}

fn converge(repo: &TestRepo, dry_run: bool) -> support::Run {
    let mut args = vec!["--json", "model", "run", "dns", "converge"];
    if dry_run {
        args.push("--dry-run");
    }
    repo.orch(&args)
}

#[test]
fn converge_serves_the_declared_names_reloads_on_change_and_not_when_unchanged() {
    let sshd = Sshd::start();
    let repo = repo_for(&sshd);
    let lab = Lab::new();
    let test = "dnsmasq --test";
    let first = [("web.lab", "10.0.0.5"), ("db.lab", "10.0.0.6")];
    repo.write("models/dns.yaml", &lab.model(&sshd, &first, test));

    // The plan of a fresh host: create, both names, a restart for the new conf file.
    let plan = converge(&repo, true).ok().json()["output"]["plan"].clone();
    assert_eq!(plan[0]["action"], "create", "{plan}");
    let paths: Vec<&str> = plan[0]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["/hosts/db.lab", "/hosts/web.lab", "/confFile"]);
    assert!(!lab.path("orch.hosts").exists(), "a plan writes nothing");

    // The first converge writes both files and asks for a restart: dnsmasq reads conf files
    // only at start, so the test starts it now, as the restart would.
    let out = converge(&repo, false).ok().json()["output"].clone();
    assert_eq!(
        (&out["changed"], &out["action"], &out["hostCount"]),
        (&true.into(), &"restart".into(), &2.into()),
        "{out}"
    );
    assert_eq!((lab.count("restarts"), lab.count("reloads")), (1, 0));
    let conf = std::fs::read_to_string(lab.path("conf/orch-hosts.conf")).unwrap();
    assert!(
        conf.contains(&format!("addn-hosts={}", lab.path("orch.hosts").display())),
        "{conf}"
    );
    let _dnsmasq = start_dnsmasq(&lab);
    assert_eq!(resolve(lab.port, "web.lab", 1), ["10.0.0.5"]);
    assert_eq!(resolve(lab.port, "db.lab", 1), ["10.0.0.6"]);

    // Changed names: the plan lists them; converge rewrites only the hosts file and reloads.
    let second = [
        ("web.lab", "10.0.0.7"),
        ("gw.lab", "10.0.0.1"),
        ("gw.lab", "fd00::1"),
    ];
    repo.write("models/dns.yaml", &lab.model(&sshd, &second, test));
    let plan = converge(&repo, true).ok().json()["output"]["plan"].clone();
    assert_eq!(plan[0]["action"], "update", "{plan}");
    assert_eq!(
        plan[0]["changes"],
        serde_json::json!([
            {"path": "/hosts/db.lab", "before": "10.0.0.6", "after": null},
            {"path": "/hosts/gw.lab", "before": null, "after": ["10.0.0.1", "fd00::1"]},
            {"path": "/hosts/web.lab", "before": "10.0.0.5", "after": "10.0.0.7"},
        ]),
        "{plan}"
    );
    let out = converge(&repo, false).ok().json()["output"].clone();
    assert_eq!(out["action"], "reload", "{out}");
    assert_eq!((lab.count("restarts"), lab.count("reloads")), (1, 1));
    assert_eq!(
        resolve_after_reload(lab.port, "web.lab", 1, &["10.0.0.7"]),
        ["10.0.0.7"]
    );
    assert_eq!(resolve(lab.port, "gw.lab", 1), ["10.0.0.1"]);
    assert_eq!(resolve(lab.port, "gw.lab", 28), ["fd00::1"]);
    assert!(resolve(lab.port, "db.lab", 1).is_empty(), "db.lab is gone");
    let reads = lab.hosts_reads();
    assert_eq!(
        reads, 2,
        "dnsmasq read the hosts file at start and on the reload"
    );

    // Unchanged: no write, no reload; the plan says so too.
    let plan = converge(&repo, true).ok().json()["output"]["plan"].clone();
    assert_eq!(plan[0]["action"], "none", "{plan}");
    let out = converge(&repo, false).ok().json()["output"].clone();
    assert_eq!(
        (&out["changed"], &out["action"]),
        (&false.into(), &"none".into())
    );
    assert_eq!((lab.count("restarts"), lab.count("reloads")), (1, 1));
    assert_eq!(lab.hosts_reads(), reads);
    assert_eq!(resolve(lab.port, "web.lab", 1), ["10.0.0.7"]);
    let versions = repo
        .orch(&["--json", "data", "versions", "dns", "zone"])
        .ok();
    assert!(versions.stdout.contains("10.0.0.7"), "{}", versions.stdout);
}

#[test]
fn a_bad_entry_fails_before_ssh_and_a_failing_test_keeps_the_served_names() {
    let sshd = Sshd::start();
    let repo = repo_for(&sshd);
    let lab = Lab::new();
    let good = [("web.lab", "10.0.0.5")];
    repo.write(
        "models/dns.yaml",
        &lab.model(&sshd, &good, "dnsmasq --test"),
    );
    converge(&repo, false).ok();
    let _dnsmasq = start_dnsmasq(&lab);
    assert_eq!(resolve(lab.port, "web.lab", 1), ["10.0.0.5"]);
    let hosts_before = std::fs::read_to_string(lab.path("orch.hosts")).unwrap();

    // An address that is not one: refused naming the entry, without connecting.
    let logins = sshd.logins();
    let bad = [("web.lab", "10.0.0.5"), ("db.lab", "10.0.0.300")];
    repo.write("models/dns.yaml", &lab.model(&sshd, &bad, "dnsmasq --test"));
    let failed = converge(&repo, false);
    assert_ne!(failed.code, 0, "{}", failed.all());
    assert!(failed.all().contains("hosts[1].ip"), "{}", failed.all());
    assert_eq!(sshd.logins(), logins, "no SSH connection for a bad entry");

    // dnsmasq's own check fails (a broken file elsewhere in its config): nothing moves, no
    // reload, the old names keep being served and no staged file is left behind.
    std::fs::create_dir_all(lab.path("broken")).unwrap();
    std::fs::write(lab.path("broken/other.conf"), "no-such-option=1\n").unwrap();
    let test = format!("dnsmasq --test --conf-dir={}", lab.path("broken").display());
    let changed = [("web.lab", "10.0.0.9")];
    repo.write("models/dns.yaml", &lab.model(&sshd, &changed, &test));
    let failed = converge(&repo, false);
    assert_ne!(failed.code, 0, "{}", failed.all());
    assert!(
        failed.all().contains("bad option at line 1"),
        "{}",
        failed.all()
    );
    assert_eq!(
        std::fs::read_to_string(lab.path("orch.hosts")).unwrap(),
        hosts_before
    );
    assert_eq!(lab.count("reloads"), 0);
    assert!(!lab.path(".orch.hosts.orch-new").exists());
    assert_eq!(resolve(lab.port, "web.lab", 1), ["10.0.0.5"]);
}
