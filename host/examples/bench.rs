//! `cargo xtask bench`: the runtime's numbers, printed as one table. Measurements, not
//! assertions: machines are noisy, so compare ratios taken in the same run.
//!
//! Usage: bench <plugins/dist dir>

use orch::capabilities::grants::HttpGrant;
use orch::capabilities::{DataCapability, HttpCapability, LogCapability};
use orch::expr::{DataSource, Evaluator, ResourceData, Vars};
use orch::runtime::bindings::Call;
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
}
