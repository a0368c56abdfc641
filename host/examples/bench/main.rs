//! `cargo xtask bench`: the runtime's numbers, printed as one table. Measurements, not
//! assertions: machines are noisy, so compare ratios taken in the same run.
//!
//! Usage: bench <plugins/dist dir> [--peers]. `ORCH_BIN` names the orch binary for the process
//! rows, `BARE_SYNC_BIN` the bare reqwest program B2 compares with (examples/bare_sync.rs),
//! `BENCH_ONLY=serve,b2` runs only the named groups of rows (see [`wanted`]).

use orch::capabilities::http::grant::HttpGrant;
use orch::capabilities::{DataCapability, HttpCapability, LogCapability, SshCapability};
use orch::expr::{DataSource, Evaluator, ResourceData, Vars};
use orch::runtime::wit::v0_2::Call;
use orch::runtime::{CallCapabilities, PluginRuntime};
use orch::store::{ResourceStore, StoreOptions};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod peers;
mod process;
mod proxmox;
mod serve;
mod workers;

/// `BENCH_QUICK=1` divides every size by 10: a smoke run of the bench itself, not numbers.
fn scaled(n: usize) -> usize {
    if std::env::var_os("BENCH_QUICK").is_some() {
        (n / 10).max(3)
    } else {
        n
    }
}

/// Whether the rows of `group` run: all of them, or those `BENCH_ONLY` names
/// (comma-separated: inprocess, startup, steps, b2, fleet, discovery, converge, serve; `workers`
/// runs only when named, as it needs a PostgreSQL).
fn wanted(group: &str) -> bool {
    std::env::var("BENCH_ONLY").map_or(true, |only| only.split(',').any(|g| g.trim() == group))
}

/// The middle of `times` (sorted here).
fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

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

fn main() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let with_peers = args.iter().any(|a| a == "--peers");
    let dist = PathBuf::from(
        args.iter()
            .find(|a| !a.starts_with("--"))
            .expect("usage: bench <plugins/dist> [--peers]"),
    );
    let tmp = tempfile::tempdir().unwrap();
    println!(
        "| {:<46} | {:>16} | {:<14} |",
        "benchmark", "measured", "target"
    );
    println!("|{}|{}|{}|", "-".repeat(48), "-".repeat(18), "-".repeat(16));
    if wanted("inprocess") {
        runtime.block_on(in_process_rows(&dist, tmp.path()));
    }
    drop(runtime);

    let Some(bin) = std::env::var_os("ORCH_BIN")
        .map(PathBuf::from)
        .filter(|b| b.is_file())
    else {
        row("process rows", "skipped (set ORCH_BIN)".into(), "-");
        return;
    };
    if wanted("startup") {
        process::start_up_rows(&bin, &dist, tmp.path());
    }
    if wanted("steps") {
        process::many_steps_rows(&bin, &dist, tmp.path());
    }
    if !dist.join("proxmox/plugin.toml").is_file() {
        row("B2/B3 Proxmox", "skipped (no proxmox bundle)".into(), "-");
        return;
    }
    let bare = std::env::var_os("BARE_SYNC_BIN").map(PathBuf::from);
    let peers = if with_peers && wanted("b2") {
        peers::peers(tmp.path())
    } else {
        Vec::new()
    };
    if wanted("b2") {
        proxmox::b2_rows(&bin, &dist, bare.as_deref(), &peers, tmp.path());
    }
    if wanted("fleet") {
        proxmox::fleet_rows(&bin, &dist, tmp.path());
    }
    if wanted("discovery") {
        proxmox::discovery_rows(&bin, &dist, tmp.path());
    }
    if wanted("converge") {
        proxmox::converge_rows(&bin, &dist, tmp.path());
    }
    if wanted("serve") {
        serve::serve_rows(&bin, &dist, tmp.path());
    }
    // The PostgreSQL queue rows need a PostgreSQL: only when named (`BENCH_ONLY=workers`).
    if std::env::var("BENCH_ONLY").is_ok_and(|only| only.split(',').any(|g| g.trim() == "workers"))
    {
        workers::rows(&bin, &dist, tmp.path());
        workers::datastore_rows(&bin, &dist, tmp.path());
    }
}

/// B6, B1 (Rust and TypeScript) and B5: in this process, no orch binary needed.
async fn in_process_rows(dist: &Path, tmp: &Path) {
    let bundle = dist.join("testplug");
    let cache = tmp.join("cache");
    let store = ResourceStore::new(tmp.join("data.redb"), StoreOptions::default());
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

    typescript_rows(&cache, tmp, &store).await;

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
}
