//! Rows that run the real `orch` binary: start-up, cold first runs, many steps, forEach.

use super::{median, per_op, row, scaled};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

/// The bundles a "5 plugins installed" repository holds besides testplug.
const OTHER_BUNDLES: [&str; 5] = ["proxmox", "minecraft", "nginx", "docker", "ssh"];

/// A fresh repository holding `bundles` from `dist`, a `test/echo` model `m` and no workflows.
pub fn repo_with(bin: &Path, dist: &Path, dir: &Path, bundles: &[&str]) -> PathBuf {
    let out = Command::new(bin).arg("init").arg(dir).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for id in bundles {
        let dst = dir.join("plugins").join(id);
        std::fs::create_dir_all(&dst).unwrap();
        for f in ["plugin.toml", "plugin.wasm"] {
            std::fs::copy(dist.join(id).join(f), dst.join(f)).unwrap();
        }
        // The types the bundle claims, so a cold run need not compile it to learn them.
        let types = dist.join(id).join("types.json");
        if types.is_file() {
            std::fs::copy(types, dst.join("types.json")).unwrap();
        }
    }
    std::fs::write(dir.join("models/m.yaml"), "type: test/echo\n").unwrap();
    dir.to_path_buf()
}

/// Runs `orch <args>` in `repo`; panics with its stderr when it fails. Returns stdout.
pub fn orch(bin: &Path, repo: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new(bin)
        .arg("--repo")
        .arg(repo)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "orch {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn timed(bin: &Path, repo: &Path, args: &[&str]) -> Duration {
    let started = Instant::now();
    orch(bin, repo, args);
    started.elapsed()
}

/// From spawning `orch --json run one` to the first step's recorded start.
fn exec_to_first_step(bin: &Path, repo: &Path) -> Duration {
    let spawned = SystemTime::now();
    let record: serde_json::Value =
        serde_json::from_slice(&orch(bin, repo, &["--json", "run", "one"])).unwrap();
    let started = record["steps"][0]["startedAt"]
        .as_str()
        .unwrap_or_else(|| panic!("no step startedAt in {record}"));
    let at = time::OffsetDateTime::parse(started, &time::format_description::well_known::Rfc3339)
        .unwrap();
    let spawned = time::OffsetDateTime::from(spawned);
    Duration::from_secs_f64((at - spawned).as_seconds_f64().max(0.0))
}

const ONE_STEP: &str = "name: one\njobs:\n  - name: main\n    steps:\n      - name: noop\n        task: { type: model_method, modelIdOrName: m, methodName: noop }\n";

/// One-step runs: whole process, exec to first step, with 1 and with 6 bundles installed, and
/// the first run after installing them (nothing compiled yet).
pub fn start_up_rows(bin: &Path, dist: &Path, tmp: &Path) {
    let one = repo_with(bin, dist, &tmp.join("one"), &["testplug"]);
    let mut all = vec!["testplug"];
    all.extend(OTHER_BUNDLES);
    if let Some(missing) = all
        .iter()
        .find(|id| !dist.join(id).join("plugin.toml").is_file())
    {
        row(
            "start-up rows",
            format!("skipped (no {missing} bundle)"),
            "-",
        );
        return;
    }
    let six = repo_with(bin, dist, &tmp.join("six"), &all);
    for repo in [&one, &six] {
        std::fs::write(repo.join("workflows/one.yaml"), ONE_STEP).unwrap();
        orch(bin, repo, &["run", "one"]);
    }
    let n = 20;
    let (mut whole, mut whole6, mut first6) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..n {
        whole.push(timed(bin, &one, &["run", "one"]));
        whole6.push(timed(bin, &six, &["run", "one"]));
        first6.push(exec_to_first_step(bin, &six));
    }
    row(
        "process: `orch run` one-step workflow (median)",
        per_op(median(whole), 1),
        "-",
    );
    row(
        "same, 5 more plugins installed (median)",
        per_op(median(whole6), 1),
        "-",
    );
    row(
        "start-up: exec → first step (6 plugins)",
        per_op(median(first6), 1),
        "≤ 5 ms",
    );
    let mut cold = Vec::new();
    let mut compiled = 0;
    for _ in 0..3 {
        for sub in ["cache", "describe"] {
            let _ = std::fs::remove_dir_all(six.join(".orch").join(sub));
        }
        cold.push(timed(bin, &six, &["run", "one"]));
        compiled = compiled_plugins(&six);
    }
    row(
        "cold: first run after installing 6 plugins",
        format!("{}, compiled {compiled}", per_op(median(cold), 1)),
        "compiles 1",
    );
}

/// How many plugins have compiled code in the repo's `.orch/cache`.
fn compiled_plugins(repo: &Path) -> usize {
    std::fs::read_dir(repo.join(".orch/cache"))
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".cwasm"))
                .count()
        })
        .unwrap_or(0)
}

fn parallel_steps(n: usize) -> String {
    let mut y = String::from("name: many\njobs:\n  - name: main\n    steps:\n");
    for i in 0..n {
        y.push_str(&format!(
            "      - name: s{i}\n        task: {{ type: model_method, modelIdOrName: m, methodName: noop }}\n"
        ));
    }
    y
}

const FOR_EACH: &str = "name: each\ninputs:\n  type: object\n  properties:\n    items: { type: array, items: { type: string } }\njobs:\n  - name: main\n    steps:\n      - name: noop-${{ self.item }}\n        forEach: { item: item, in: '${{ inputs.items }}' }\n        task: { type: model_method, modelIdOrName: m, methodName: noop }\n";

/// B4: N parallel no-op steps, and forEach over N items, for N = 1,000 and 10,000.
pub fn many_steps_rows(bin: &Path, dist: &Path, tmp: &Path) {
    let mut parallel = Vec::new();
    let mut for_each = Vec::new();
    for n in [scaled(1_000), scaled(10_000)] {
        let repo = repo_with(bin, dist, &tmp.join(format!("steps{n}")), &["testplug"]);
        std::fs::write(repo.join("workflows/many.yaml"), parallel_steps(n)).unwrap();
        std::fs::write(repo.join("workflows/each.yaml"), FOR_EACH).unwrap();
        // Compile and describe the plugin first: B4 measures steps, not the first load.
        orch(bin, &repo, &["model", "run", "m", "noop"]);
        parallel.push((n, timed(bin, &repo, &["run", "many"])));
        let items: Vec<String> = (0..n).map(|i| format!("i{i}")).collect();
        let input = serde_json::json!({ "items": items }).to_string();
        for_each.push((n, timed(bin, &repo, &["run", "each", "--input", &input])));
    }
    for (what, rows) in [
        ("parallel no-op steps", &parallel),
        ("forEach items", &for_each),
    ] {
        for (n, t) in rows.iter() {
            row(&format!("B4 {n} {what}"), per_op(*t, 1), "-");
        }
        let (small, big) = (rows[0].1, rows[1].1);
        row(
            &format!("B4 {what}: {} / {}", rows[1].0, rows[0].0),
            format!("{:.1}x", big.as_secs_f64() / small.as_secs_f64()),
            "≤ 12x",
        );
        row(
            &format!("B4 {what}: per step at {}", rows[1].0),
            per_op(big, rows[1].0 as u32),
            "≤ 100 µs",
        );
    }
}
