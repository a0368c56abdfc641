//! A real Prometheus for a test binary (started once, scraping every file_sd file each second)
//! and the small HTTP client the tests read its API with.

use serde_json::Value;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

/// Debian's Prometheus server.
pub const PROMETHEUS: &str = "/usr/bin/prometheus";
/// Debian's node_exporter.
pub const NODE_EXPORTER: &str = "/usr/bin/prometheus-node-exporter";

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A plain HTTP/1.0 request to 127.0.0.1:`port`: (status, body), or None when nothing answers.
pub fn http(port: u16, method: &str, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\n\r\n"
    )
    .ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_string()))
}

/// GET `path` from 127.0.0.1:`port`, expecting 200 and a JSON body.
pub fn get_json(port: u16, path: &str) -> Value {
    let (status, body) = http(port, "GET", path).expect("Prometheus answers");
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// Asks `check` up to `tries` times, pausing briefly in between, until it gives a value: the
/// bounded retry for what Prometheus does on its own schedule (scrapes, file_sd refreshes).
pub fn poll<T>(tries: u32, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    for _ in 0..tries {
        if let Some(v) = check() {
            return Some(v);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

/// The test binary's Prometheus: scrapes every file_sd file in `file_sd` each second.
pub struct Prometheus {
    /// Its directory (config, data, file_sd/).
    pub dir: PathBuf,
    /// Its HTTP port on loopback.
    pub port: u16,
    /// Its process id (for SIGHUP reloads).
    pub pid: u32,
    /// The watchdog shell; it outlives the test process only until its next check.
    _watchdog: std::process::Child,
}

impl Prometheus {
    /// The file_sd file `name`.json Prometheus watches.
    pub fn file_sd(&self, name: &str) -> PathBuf {
        self.dir.join("file_sd").join(format!("{name}.json"))
    }

    /// Its base URL.
    pub fn api_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Active targets whose `name` label is `name`.
    pub fn targets_named(&self, name: &str) -> Vec<Value> {
        get_json(self.port, "/api/v1/targets?state=active")["data"]["activeTargets"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["labels"]["name"] == name)
            .cloned()
            .collect()
    }

    /// The result vector of the instant query `query`.
    pub fn query(&self, query: &str) -> Vec<Value> {
        let path = format!(
            "/api/v1/query?{}",
            form_urlencoded::Serializer::new(String::new())
                .append_pair("query", query)
                .finish()
        );
        get_json(self.port, &path)["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

/// Started once per test binary; a watchdog shell stops it when this test process is gone.
pub fn prometheus() -> &'static Prometheus {
    static PROMETHEUS_ONCE: OnceLock<Prometheus> = OnceLock::new();
    PROMETHEUS_ONCE.get_or_init(|| {
        assert!(
            Path::new(PROMETHEUS).is_file(),
            "{PROMETHEUS} is missing: install prometheus (cargo xtask test does)"
        );
        let dir = tempfile::tempdir().unwrap().keep();
        std::fs::create_dir_all(dir.join("file_sd")).unwrap();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: node\n    \
             file_sd_configs:\n      - files: ['{}/file_sd/*.json']\n",
            dir.display()
        );
        std::fs::write(dir.join("prometheus.yml"), config).unwrap();
        let port = free_port();
        let script = format!(
            "{PROMETHEUS} --config.file={d}/prometheus.yml --storage.tsdb.path={d}/data \
             --web.listen-address=127.0.0.1:{port} --web.enable-lifecycle >{d}/prometheus.log 2>&1 & \
             p=$!; echo $p > {d}/prometheus.pid; \
             while kill -0 {me} 2>/dev/null && kill -0 $p 2>/dev/null; do sleep 1; done; kill $p; wait $p; rm -rf {d}",
            d = dir.display(),
            me = std::process::id()
        );
        let watchdog = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus");
        let ready = poll(300, || {
            http(port, "GET", "/-/ready").filter(|(status, _)| *status == 200)
        });
        assert!(
            ready.is_some(),
            "Prometheus did not get ready:\n{}",
            std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default()
        );
        let pid = std::fs::read_to_string(dir.join("prometheus.pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        Prometheus {
            dir,
            port,
            pid,
            _watchdog: watchdog,
        }
    })
}
