//! Test support: temporary orch repositories driven through the real `orch` binary.
#![allow(dead_code)]

pub mod browser;
pub mod docker;
pub mod game_lab;
pub mod lab;
pub mod postgres;
pub mod prometheus;
pub mod sshd;

use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The built plugin bundles (`cargo xtask build` writes them).
pub fn dist() -> PathBuf {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/dist");
    assert!(
        d.join("testplug/plugin.toml").is_file(),
        "plugin bundles are missing under {}: run `cargo xtask build` (or `cargo xtask test`)",
        d.display()
    );
    d
}

/// The result of one `orch` invocation.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Wraps a finished process.
    pub fn from_output(out: Output) -> Self {
        Self::from(out)
    }

    fn from(out: Output) -> Self {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// stdout parsed as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }

    /// Asserts success and returns self.
    pub fn ok(self) -> Self {
        assert_eq!(
            self.code, 0,
            "expected success\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// Asserts this exit code and returns self.
    pub fn code(self, code: i32) -> Self {
        assert_eq!(
            self.code, code,
            "expected exit {code}\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// stdout and stderr together.
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

/// A throwaway orch repository.
pub struct TestRepo {
    pub dir: tempfile::TempDir,
}

impl TestRepo {
    /// An initialised repo with the given plugin bundles installed.
    pub fn new(plugins: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = TestRepo { dir };
        repo.orch(&["init"]).ok();
        for p in plugins {
            repo.install(p);
        }
        repo
    }

    /// Installs built bundle `id` as `plugins/<id>`: every file `cargo xtask build` wrote for
    /// it (`plugin.toml`, `plugin.wasm`, `types.json`).
    pub fn install(&self, id: &str) {
        let src = dist().join(id);
        let dst = self.path().join("plugins").join(id);
        std::fs::create_dir_all(&dst).unwrap();
        for entry in std::fs::read_dir(&src).unwrap().flatten() {
            std::fs::copy(entry.path(), dst.join(entry.file_name())).unwrap();
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `orch plugin new` (type `acme/hello`) then `orch plugin build`, in a temporary directory:
    /// the directory (removed when dropped) and the generated crate in it, `hello`, whose built
    /// bundle is `dist/hello`.
    pub fn built_hello_plugin(&self) -> (tempfile::TempDir, PathBuf) {
        let work = tempfile::tempdir().unwrap();
        let dir = work.path().join("hello");
        let dir_s = dir.to_str().unwrap();
        self.orch(&["plugin", "new", dir_s, "--type", "acme/hello"])
            .ok();
        self.orch(&["plugin", "build", dir_s]).ok();
        (work, dir)
    }

    /// Writes a file relative to the repo.
    pub fn write(&self, rel: &str, text: &str) -> &Self {
        let p = self.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
        self
    }

    /// A command for the real binary, run in the repo.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_orch"));
        c.args(args)
            .current_dir(self.path())
            .env("NO_COLOR", "1")
            .env_remove("ORCH_VAULT_KEY")
            .env_remove("ORCH_REPO")
            .stdin(Stdio::null());
        c
    }

    /// Runs `orch ARGS` in the repo.
    pub fn orch(&self, args: &[&str]) -> Run {
        Run::from(self.command(args).output().expect("run orch"))
    }

    /// Runs `orch ARGS` with `stdin` fed in.
    pub fn orch_stdin(&self, args: &[&str], stdin: &str) -> Run {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn orch");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        Run::from(child.wait_with_output().unwrap())
    }

    /// Every file under .orch as bytes, for leak checks.
    pub fn orch_dir_bytes(&self) -> Vec<u8> {
        let mut all = Vec::new();
        collect(&self.path().join(".orch"), &mut all);
        all
    }
}

fn collect(dir: &Path, out: &mut Vec<u8>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect(&p, out);
        } else if let Ok(b) = std::fs::read(&p) {
            out.extend(b);
        }
    }
}

/// True when `needle` occurs in `hay`.
pub fn contains_bytes(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// A one-page HTTP server on loopback that counts connections; answers every request with
/// `body` until dropped.
pub struct TinyHttp {
    pub port: u16,
    pub connections: Arc<AtomicUsize>,
}

impl TinyHttp {
    pub fn start(body: &'static str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let c = connections.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                c.fetch_add(1, Ordering::SeqCst);
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf);
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(reply.as_bytes());
            }
        });
        TinyHttp { port, connections }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn count(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}
