//! `cargo xtask bench`: the runtime's numbers, printed as one table. Measurements, not
//! assertions: machines are noisy, so compare ratios taken in the same run.
//!
//! Usage: bench <plugins/dist dir>

use orch::capabilities::http::grant::HttpGrant;
use orch::capabilities::{DataCapability, HttpCapability, LogCapability, SshCapability};
use orch::expr::{DataSource, Evaluator, ResourceData, Vars};
use orch::runtime::wit::v0_2::Call;
use orch::runtime::{CallCapabilities, PluginRuntime};
use orch::store::{ResourceStore, StoreOptions};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn row(name: &str, value: String, target: &str) {
    println!("| {name:<46} | {value:>16} | {target:<14} |");
}

fn per_op(total: Duration, n: u32) -> String {
    let us = total.as_secs_f64() * 1e6 / n as f64;
    if us < 1000.0 {
        format!("{us:.1} µs")
    } else {
        format!("{:.2} ms", us / 1000.0)
    }
}

struct Fleet;

impl DataSource for Fleet {
    fn model_exists(&self, model: &str) -> bool {
        model == "fleet"
    }
    fn model_names(&self) -> Vec<String> {
        vec!["fleet".into()]
    }
    fn model_resources(&self, _: &str) -> Result<Vec<ResourceData>, String> {
        Ok((0..10)
            .map(|i| ResourceData {
                spec: "vm".into(),
                name: format!("vm-{i}"),
                version: 1,
                written_at: "2026-11-21T00:00:00Z".into(),
                attributes: json!({"vmid": 100 + i, "ip": format!("10.0.0.{i}"), "status": "running"}),
                retired: None,
            })
            .collect())
    }
    fn vault_get(&self, _: &str, _: &str) -> Result<Option<String>, String> {
        Ok(None)
    }
}

fn caps(store: &ResourceStore) -> CallCapabilities {
    CallCapabilities {
        log: LogCapability::new(Arc::new(|_, _| {}), 100),
        data: DataCapability::for_model(
            "bench",
            "test/echo",
            vec!["item".into()],
            store.clone(),
            10,
        ),
        http: HttpCapability::new(HttpGrant::none(), 0, Duration::from_secs(1)),
        ssh: SshCapability::none(),
    }
}

fn noop_call() -> Call {
    Call {
        type_name: "test/echo".into(),
        method: "noop".into(),
        model_name: "bench".into(),
        global_arguments: "{}".into(),
        arguments: "{}".into(),
        dry_run: false,
    }
}

/// B6 and B1 for a TypeScript plugin (componentize-js, SpiderMonkey inside, about 12 MB).
async fn typescript_rows(cache: &Path, tmp: &Path, store: &ResourceStore) {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ts/sandbox");
    let bundle = tmp.join("ts-sandbox");
    if let Err(e) = orch::plugin_dev::typescript::pack_bundle(&source, &bundle) {
        row("TS plugin rows", format!("not built: {e}"), "-");
        return;
    }
    let rt = PluginRuntime::new(Some(cache.to_path_buf())).unwrap();
    let cold = rt.load(&bundle).unwrap();
    let rt2 = PluginRuntime::new(Some(cache.to_path_buf())).unwrap();
    let mut hits = Duration::ZERO;
    for _ in 0..5 {
        let warm = rt2.load(&bundle).unwrap();
        assert!(warm.cache_hit);
        hits += warm.load_time;
    }
    row(
        "B6 TS plugin compile (Cranelift, no cache)",
        per_op(cold.load_time, 1),
        "-",
    );
    row("B6 TS plugin load, cache hit", per_op(hits, 5), "-");
    let call = || Call {
        type_name: "ts/sandbox".into(),
        global_arguments: "{\"url\":\"http://127.0.0.1:1\"}".into(),
        ..noop_call()
    };
    for _ in 0..5 {
        rt.execute(&cold, call(), caps(store))
            .await
            .unwrap()
            .result
            .unwrap();
    }
    let n = 200;
    let started = Instant::now();
    for _ in 0..n {
        rt.execute(&cold, call(), caps(store))
            .await
            .unwrap()
            .result
            .unwrap();
    }
    row(
        "B1 TS instantiate + no-op call (warm)",
        per_op(started.elapsed(), n),
        "-",
    );
}

#[tokio::main]
async fn main() {
    let dist = PathBuf::from(
        std::env::args()
            .nth(1)
            .expect("usage: bench <plugins/dist>"),
    );
    let bundle = dist.join("testplug");
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let store = ResourceStore::new(tmp.path().join("data.redb"), StoreOptions::default());

    println!(
        "| {:<46} | {:>16} | {:<14} |",
        "benchmark", "measured", "target"
    );
    println!("|{}|{}|{}|", "-".repeat(48), "-".repeat(18), "-".repeat(16));

    // B6: first compile against a cache hit, in fresh runtimes.
    let rt = PluginRuntime::new(Some(cache.clone())).unwrap();
    let cold = rt.load(&bundle).unwrap();
    assert!(!cold.cache_hit);
    let mut hits = Duration::ZERO;
    for _ in 0..10 {
        let rt2 = PluginRuntime::new(Some(cache.clone())).unwrap();
        let warm = rt2.load(&bundle).unwrap();
        assert!(warm.cache_hit);
        hits += warm.load_time;
    }
    row(
        "B6 plugin compile (Cranelift, no cache)",
        per_op(cold.load_time, 1),
        "-",
    );
    row("B6 plugin load, cache hit", per_op(hits, 10), "-");
    row(
        "B6 ratio compile / cache hit",
        format!(
            "{:.0}x",
            cold.load_time.as_secs_f64() / (hits.as_secs_f64() / 10.0)
        ),
        "-",
    );

    // B1: instantiate + no-op call, warm.
    let plugin = rt.load(&bundle).unwrap();
    for _ in 0..50 {
        rt.execute(&plugin, noop_call(), caps(&store))
            .await
            .unwrap()
            .result
            .unwrap();
    }
    let n = 2000;
    let started = Instant::now();
    for _ in 0..n {
        rt.execute(&plugin, noop_call(), caps(&store))
            .await
            .unwrap()
            .result
            .unwrap();
    }
    row(
        "B1 instantiate + no-op call (warm)",
        per_op(started.elapsed(), n),
        "≤ 50 µs",
    );

    typescript_rows(&cache, tmp.path(), &store).await;

    // B5: CEL resolutions.
    let evaluator = Evaluator::new();
    let template = json!("${{ model.fleet.resource.vm[inputs.vmName].attributes.ip }}");
    let vars = Vars {
        inputs: json!({"vmName": "vm-7"}).as_object().unwrap().clone(),
        ..Default::default()
    };
    let scope = evaluator.scope(&Fleet, vars);
    assert_eq!(
        scope.resolve_value(&template, "x").unwrap(),
        json!("10.0.0.7")
    );
    let n = 10_000;
    let started = Instant::now();
    for _ in 0..n {
        std::hint::black_box(scope.resolve_value(&template, "x").unwrap());
    }
    let total = started.elapsed();
    row(
        "B5 10,000 CEL resolutions (one scope)",
        format!("{:.1} ms", total.as_secs_f64() * 1e3),
        "≤ 50 ms",
    );

    // One orch process, start to exit, for a one-step workflow.
    let repo = tmp.path().join("repo");
    let bin = std::env::var("ORCH_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/orch"));
    if !bin.is_file() {
        row(
            "process: one-step workflow",
            "skipped (set ORCH_BIN)".into(),
            "-",
        );
        return;
    }
    Command::new(&bin).arg("init").arg(&repo).output().unwrap();
    let dst = repo.join("plugins/testplug");
    std::fs::create_dir_all(&dst).unwrap();
    for f in ["plugin.toml", "plugin.wasm"] {
        std::fs::copy(bundle.join(f), dst.join(f)).unwrap();
    }
    std::fs::write(repo.join("models/m.yaml"), "type: test/echo\n").unwrap();
    std::fs::write(
        repo.join("workflows/one.yaml"),
        "name: one\njobs:\n  - name: main\n    steps:\n      - name: noop\n        task: { type: model_method, modelIdOrName: m, methodName: noop }\n",
    )
    .unwrap();
    let run = || {
        let out = Command::new(&bin)
            .args(["--repo", repo.to_str().unwrap(), "run", "one"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run();
    let n = 20;
    let mut times: Vec<Duration> = (0..n)
        .map(|_| {
            let s = Instant::now();
            run();
            s.elapsed()
        })
        .collect();
    times.sort();
    row(
        "process: `orch run` one-step workflow (median)",
        per_op(times[n / 2], 1),
        "-",
    );

    proxmox_benches(&bin, &dist, tmp.path()).await;
}

/// A copy of the homelab example wired to a simulator, with the password in its vault.
fn homelab(bin: &Path, dist: &Path, dir: &Path, password: &str) -> PathBuf {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../workflows/homelab");
    Command::new(bin).arg("init").arg(dir).output().unwrap();
    for sub in ["models", "workflows"] {
        for e in std::fs::read_dir(example.join(sub)).unwrap().flatten() {
            std::fs::copy(e.path(), dir.join(sub).join(e.file_name())).unwrap();
        }
    }
    std::fs::copy(example.join("orch.yaml"), dir.join("orch.yaml")).unwrap();
    let dst = dir.join("plugins/proxmox");
    std::fs::create_dir_all(&dst).unwrap();
    for f in ["plugin.toml", "plugin.wasm"] {
        std::fs::copy(dist.join("proxmox").join(f), dst.join(f)).unwrap();
    }
    let mut put = Command::new(bin)
        .args(["vault", "put", "proxmox-vault", "password"])
        .current_dir(dir)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    put.stdin
        .take()
        .unwrap()
        .write_all(password.as_bytes())
        .unwrap();
    assert!(put.wait().unwrap().success());
    dir.to_path_buf()
}

/// Runs `orch run sync-fleet`; returns wall time and the child's peak RSS in KiB.
// The child is reaped by `wait4` (for its rusage), which clippy cannot see.
#[allow(clippy::zombie_processes)]
fn timed_sync(bin: &Path, repo: &Path, url: &str) -> (Duration, i64) {
    let started = Instant::now();
    let child = Command::new(bin)
        .args(["run", "sync-fleet"])
        .current_dir(repo)
        .env("PROXMOX_API_URL", url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: rusage is plain old data; zero is a valid value for every field.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child; both out-pointers are valid for the call.
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = started.elapsed();
    assert!(
        rc == pid && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "sync-fleet failed"
    );
    (wall, usage.ru_maxrss)
}

/// The same requests sync-fleet makes, from a bare reqwest client.
async fn bare_sync(client: &reqwest::Client, url: &str, password: &str) -> usize {
    let login: serde_json::Value = client
        .post(format!("{url}/api2/json/access/ticket"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("username=root%40pam&password={password}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ticket = login["data"]["ticket"].as_str().unwrap().to_string();
    let cookie = format!("PVEAuthCookie={ticket}");
    let list: serde_json::Value = client
        .get(format!("{url}/api2/json/nodes/keeb-dev-02/qemu"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut n = 0;
    for vm in list["data"].as_array().unwrap() {
        if vm["status"] == "running" {
            let _ = client
                .get(format!(
                    "{url}/api2/json/nodes/keeb-dev-02/qemu/{}/agent/network-get-interfaces",
                    vm["vmid"]
                ))
                .header("cookie", &cookie)
                .send()
                .await
                .unwrap()
                .bytes()
                .await;
        }
        n += 1;
    }
    n
}

async fn proxmox_benches(bin: &Path, dist: &Path, tmp: &Path) {
    if !dist.join("proxmox/plugin.toml").is_file() {
        row("B2/B3 Proxmox", "skipped (no proxmox bundle)".into(), "-");
        return;
    }
    let password = "bench-password";
    let sim = pve_sim::Simulator::start(pve_sim::SimConfig {
        password: password.into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let repo = homelab(bin, dist, &tmp.join("lab10"), password);
    timed_sync(bin, &repo, &sim.url());
    let n = 10;
    let mut orch_times: Vec<Duration> = (0..n)
        .map(|_| timed_sync(bin, &repo, &sim.url()).0)
        .collect();
    orch_times.sort();
    // The bare client is a fresh process's worth of work too: a new client (TLS setup) per sync.
    let mut bare_times = Vec::new();
    for _ in 0..n {
        let s = Instant::now();
        let client = reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .build()
            .unwrap();
        bare_sync(&client, &sim.url(), password).await;
        bare_times.push(s.elapsed());
    }
    bare_times.sort();
    let (o, b) = (orch_times[n / 2], bare_times[n / 2]);
    row(
        "B2 `orch run sync-fleet`, 10 VMs (median)",
        per_op(o, 1),
        "-",
    );
    row("B2 bare reqwest, same requests (median)", per_op(b, 1), "-");
    row(
        "B2 ratio orch / bare",
        format!("{:.1}x", o.as_secs_f64() / b.as_secs_f64()),
        "-",
    );
    drop(sim);

    let big = pve_sim::Simulator::start(pve_sim::SimConfig {
        password: password.into(),
        fleet: pve_sim::Fleet::generated(10_000),
        ..Default::default()
    })
    .await
    .unwrap();
    let repo = homelab(bin, dist, &tmp.join("lab10k"), password);
    let (wall, rss_kib) = timed_sync(bin, &repo, &big.url());
    row("B3 sync of 10,000 VMs: wall", per_op(wall, 1), "≤ 2 s");
    row(
        "B3 sync of 10,000 VMs: peak RSS",
        format!("{} MiB", rss_kib / 1024),
        "≤ 200 MB",
    );
    row(
        "B3 versions written per second",
        format!("{:.0}", 10_000.0 / wall.as_secs_f64()),
        "-",
    );
}
