//! `BENCH_ONLY=workers`: steps through the PostgreSQL queue (`runsOn: []`) over 1, 2 and 4
//! `orch worker` processes, the added latency of one step through the queue vs in-process, and
//! a 10,000-VM `sync-fleet` into redb vs into PostgreSQL.
//! PostgreSQL comes from Debian's `postgresql`, started in a temporary directory by the same
//! harness as the tests.

use super::process::repo_with;
use super::proxmox::{homelab, simulator};
use super::{median, per_op, row, scaled};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[path = "../../tests/support/postgres.rs"]
#[allow(dead_code)]
mod pg;

/// Workflow `name`: `n` parallel no-op steps, each on any worker when `queued`.
fn steps(name: &str, n: usize, queued: bool) -> String {
    let runs_on = if queued { "        runsOn: []\n" } else { "" };
    let mut y = format!("name: {name}\njobs:\n  - name: main\n    steps:\n");
    for i in 0..n {
        y.push_str(&format!(
            "      - name: s{i}\n{runs_on}        task: {{ type: model_method, modelIdOrName: m, methodName: noop }}\n"
        ));
    }
    y
}

struct Workers(Vec<Child>);

impl Drop for Workers {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn start_workers(bin: &Path, repo: &Path, n: usize) -> Workers {
    Workers(
        (0..n)
            .map(|i| {
                Command::new(bin)
                    .arg("--repo")
                    .arg(repo)
                    .args([
                        "worker",
                        "--name",
                        &format!("bench-{i}"),
                        "--concurrency",
                        "8",
                    ])
                    .env("PGPASSWORD", pg::PASSWORD)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("start orch worker")
            })
            .collect(),
    )
}

fn timed_run(bin: &Path, repo: &Path, workflow: &str) -> Duration {
    let started = Instant::now();
    let out = Command::new(bin)
        .arg("--repo")
        .arg(repo)
        .args(["run", workflow])
        .env("PGPASSWORD", pg::PASSWORD)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "orch run {workflow}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    started.elapsed()
}

/// Points `repo` at a fresh PostgreSQL database and migrates it.
fn use_postgres(bin: &Path, repo: &Path, extra: &str) {
    let url = pg::fresh_database();
    let yaml = repo.join("orch.yaml");
    let text = std::fs::read_to_string(&yaml).unwrap();
    let mut text: String = text
        .lines()
        .filter(|l| !(extra.contains("concurrency:") && l.starts_with("concurrency:")))
        .map(|l| format!("{l}\n"))
        .collect();
    text.push_str(&format!("{extra}datastore:\n  postgres: \"{url}\"\n"));
    std::fs::write(&yaml, text).unwrap();
    let migrate = Command::new(bin)
        .arg("--repo")
        .arg(repo)
        .args(["datastore", "migrate"])
        .env("PGPASSWORD", pg::PASSWORD)
        .output()
        .unwrap();
    assert!(migrate.status.success(), "{migrate:?}");
}

/// One `orch --json run sync-fleet`: its wall time and the versions it stored.
fn sync(bin: &Path, repo: &Path, url: &str) -> (Duration, usize) {
    let started = Instant::now();
    let out = Command::new(bin)
        .arg("--repo")
        .arg(repo)
        .args(["--json", "run", "sync-fleet"])
        .env("PROXMOX_API_URL", url)
        .env("PGPASSWORD", pg::PASSWORD)
        .output()
        .unwrap();
    let wall = started.elapsed();
    assert!(
        out.status.success(),
        "sync-fleet: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let record: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let versions = record["steps"]
        .as_array()
        .map(|steps| {
            steps
                .iter()
                .map(|s| s["resources"].as_array().map_or(0, Vec::len))
                .sum()
        })
        .unwrap_or(0);
    (wall, versions)
}

/// A 10,000-VM `sync-fleet` into an empty store, then again with nothing changed, on redb and
/// on PostgreSQL (each warmed by a 10-VM sync that compiles the plugin).
pub fn datastore_rows(bin: &Path, dist: &Path, tmp: &Path) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let small = simulator(&runtime, 10);
    let big = simulator(&runtime, scaled(10_000));
    for backend in ["redb", "PostgreSQL"] {
        let repo = homelab(bin, dist, &tmp.join(format!("sync-{backend}")));
        if backend == "PostgreSQL" {
            use_postgres(bin, &repo, "");
        }
        sync(bin, &repo, &small.url());
        let (first, versions) = sync(bin, &repo, &big.url());
        row(
            &format!(
                "datastore: {}-VM sync into {backend}, empty store",
                scaled(10_000)
            ),
            format!(
                "{} ({versions} versions, {:.0} versions/s)",
                per_op(first, 1),
                versions as f64 / first.as_secs_f64()
            ),
            "-",
        );
        let (again, unchanged) = sync(bin, &repo, &big.url());
        row(
            &format!("datastore: the same sync again into {backend}, nothing changed"),
            format!("{} ({unchanged} new versions)", per_op(again, 1)),
            "-",
        );
    }
}

/// The workers rows.
pub fn rows(bin: &Path, dist: &Path, tmp: &Path) {
    let n = scaled(10_000);
    for workers in [1, 2, 4] {
        let repo = repo_with(
            bin,
            dist,
            &tmp.join(format!("workers{workers}")),
            &["testplug"],
        );
        // Enough steps in flight to keep every worker busy.
        use_postgres(bin, &repo, "concurrency: 64\n");
        std::fs::write(repo.join("workflows/many.yaml"), steps("many", n, true)).unwrap();
        std::fs::write(repo.join("workflows/one.yaml"), steps("one", 1, true)).unwrap();
        std::fs::write(repo.join("workflows/local.yaml"), steps("local", 1, false)).unwrap();
        let _started = start_workers(bin, &repo, workers);
        // The first queued run compiles the plugin in each worker.
        timed_run(bin, &repo, "one");
        let t = timed_run(bin, &repo, "many");
        row(
            &format!("workers: {n} no-op steps, {workers} worker(s)"),
            format!("{:.0} steps/s", n as f64 / t.as_secs_f64()),
            "-",
        );
        if workers == 1 {
            let queued = median((0..5).map(|_| timed_run(bin, &repo, "one")).collect());
            let local = median((0..5).map(|_| timed_run(bin, &repo, "local")).collect());
            row(
                "workers: one step through the queue (median)",
                per_op(queued, 1),
                "-",
            );
            row(
                "workers: same step in-process (median)",
                per_op(local, 1),
                "-",
            );
        }
    }
}
