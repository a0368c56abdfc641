//! A real PostgreSQL server from Debian's binaries, one per test binary, in a temporary
//! directory: `initdb` and `postgres` run as the `postgres` user (initdb refuses root), listen on
//! a private Unix socket directory and on 127.0.0.1 at a free port, and are stopped when the test
//! binary exits (an `atexit` hook, which runs after failed tests too) or dies (the server gets
//! SIGKILL when its parent thread ends). Each test takes a fresh database of its own.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

const BIN: &str = "/usr/lib/postgresql/15/bin";
/// The login role tests connect as; it signs in over TCP with [`PASSWORD`].
pub const ROLE: &str = "orch";
/// The test role's password (scram-sha-256 over TCP; the socket trusts the superuser).
pub const PASSWORD: &str = "pg-test-secret-7f3a9c";

/// The running server.
pub struct Postgres {
    /// The data and socket directories live here.
    pub dir: PathBuf,
    /// The Unix socket directory.
    pub socket_dir: PathBuf,
    /// The TCP port on 127.0.0.1.
    pub port: u16,
}

static SERVER: OnceLock<Postgres> = OnceLock::new();
static NEXT_DB: AtomicU32 = AtomicU32::new(0);

/// The server of this test binary, started on first use.
pub fn server() -> &'static Postgres {
    SERVER.get_or_init(start)
}

/// A fresh, empty database owned by [`ROLE`]; returns its URL without the password
/// (`postgres://orch@127.0.0.1:PORT/t_N`).
pub fn fresh_database() -> String {
    let server = server();
    let name = format!("t_{}", NEXT_DB.fetch_add(1, Ordering::SeqCst));
    server.psql(&format!("CREATE DATABASE {name} OWNER {ROLE}"));
    server.url(&name)
}

impl Postgres {
    /// The URL of database `db` as [`ROLE`], without the password.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://{ROLE}@127.0.0.1:{}/{db}", self.port)
    }

    /// Runs one SQL command as the superuser over the socket; panics with psql's error.
    pub fn psql(&self, sql: &str) -> String {
        self.psql_in("postgres", sql)
    }

    /// Runs one SQL command in database `db` as the superuser; returns its unaligned output.
    pub fn psql_in(&self, db: &str, sql: &str) -> String {
        let out = Command::new(format!("{BIN}/psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(&self.socket_dir)
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                db,
                "-c",
                sql,
            ])
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "psql {sql:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A plain-SQL dump of database `db` (for greps over everything stored).
    pub fn dump(&self, db: &str) -> String {
        let out = Command::new(format!("{BIN}/pg_dump"))
            .arg("-h")
            .arg(&self.socket_dir)
            .args(["-p", &self.port.to_string(), "-U", "postgres", db])
            .output()
            .expect("run pg_dump");
        assert!(
            out.status.success(),
            "pg_dump failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

fn as_postgres(program: impl AsRef<Path>) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.args([
        "--reuid=postgres",
        "--regid=postgres",
        "--clear-groups",
        "--pdeathsig=KILL",
    ])
    .arg(program.as_ref());
    cmd
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn start() -> Postgres {
    assert!(
        Path::new(BIN).join("initdb").is_file(),
        "PostgreSQL 15 is missing: apt-get install -y postgresql (cargo xtask test installs it)"
    );
    let dir = tempfile::Builder::new()
        .prefix("orch-pg-")
        .tempdir()
        .expect("tempdir")
        .keep();
    let (data, socket_dir) = (dir.join("data"), dir.join("sock"));
    std::fs::create_dir_all(&socket_dir).expect("socket dir");
    let chown = Command::new("chown")
        .args(["-R", "postgres:postgres"])
        .arg(&dir)
        .status()
        .expect("chown");
    assert!(chown.success(), "chown of {} failed", dir.display());
    let init = as_postgres(format!("{BIN}/initdb"))
        .args(["-U", "postgres", "-A", "trust", "--no-sync", "-D"])
        .arg(&data)
        .output()
        .expect("run initdb");
    assert!(
        init.status.success(),
        "initdb failed: {}",
        String::from_utf8_lossy(&init.stderr)
    );
    std::fs::write(
        data.join("pg_hba.conf"),
        "local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n",
    )
    .expect("pg_hba.conf");
    let port = free_port();
    // Started from a thread that never ends, so `--pdeathsig` fires only when the process dies.
    let (tx, rx) = std::sync::mpsc::channel();
    let (data2, sock2) = (data.clone(), socket_dir.clone());
    std::thread::spawn(move || {
        let child = as_postgres(format!("{BIN}/postgres"))
            .arg("-D")
            .arg(&data2)
            .arg("-k")
            .arg(&sock2)
            .args([
                "-p",
                &port.to_string(),
                "-h",
                "127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "max_connections=200",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let _ = tx.send(child.map(|c| c.id()));
        loop {
            std::thread::park();
        }
    });
    let pid = rx.recv().expect("starter").expect("spawn postgres");
    STOP.get_or_init(|| (pid, dir.clone()));
    // SAFETY: registers a plain `extern "C"` function with no captured state.
    unsafe { libc::atexit(stop_at_exit) };
    let server = Postgres {
        dir,
        socket_dir,
        port,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = Command::new(format!("{BIN}/pg_isready"))
            .arg("-h")
            .arg(&server.socket_dir)
            .args(["-p", &port.to_string(), "-q"])
            .status()
            .expect("run pg_isready");
        if ready.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "PostgreSQL did not start in 60 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    server.psql(&format!(
        "CREATE ROLE {ROLE} LOGIN CREATEDB PASSWORD '{PASSWORD}'"
    ));
    server
}

static STOP: OnceLock<(u32, PathBuf)> = OnceLock::new();

extern "C" fn stop_at_exit() {
    if let Some((pid, dir)) = STOP.get() {
        // SAFETY: kill(2) on the server this binary started.
        unsafe { libc::kill(*pid as i32, libc::SIGQUIT) };
        // SAFETY: reaps our own child; SIGQUIT is PostgreSQL's immediate shutdown.
        unsafe { libc::waitpid(*pid as i32, std::ptr::null_mut(), 0) };
        let _ = std::fs::remove_dir_all(dir);
    }
}
