//! Rows of `orch serve`: memory of an idle server, API latency under 50 concurrent clients, and
//! a served sync-fleet alone against the same sync while 1,000 reads a second arrive.
//!
//! With two or more cores the server runs pinned to core 0 and this process (load generator
//! and Proxmox simulator) to core 1, so the readers' own cost does not land on the server's
//! core. The reads are open-loop: one request leaves every millisecond whatever the answers
//! do, so a slow server cannot lower the offered rate (a closed loop of paced clients did, and
//! once reached only 424–785 reads/s).

use super::proxmox::{PASSWORD, homelab};
use super::{median, row};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Offered reads per second while a sync runs.
const READS_PER_SECOND: u64 = 1000;
/// Served syncs alone and under reads (interleaved, one of each per round).
const ROUNDS: usize = 30;

/// A running `orch serve`; killed when dropped.
struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn rss(&self) -> String {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .map_or_else(|| "?".into(), |v| v.trim().to_string())
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Pins every thread of this process (and the threads it starts later) to `cpus`.
fn pin_self(cpus: &str) {
    let _ = Command::new("taskset")
        .args(["-a", "-p", "-c", cpus, &std::process::id().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

fn start_server(bin: &Path, repo: &Path, sim_url: &str, pinned: bool) -> Server {
    let mut cmd = if pinned {
        let mut c = Command::new("taskset");
        c.args(["-c", "0"]).arg(bin);
        c
    } else {
        Command::new(bin)
    };
    // The homelab's collect-game-metrics schedule must not fire into the measurement.
    let mut child = cmd
        .args(["serve", "--listen", "127.0.0.1:0", "--no-schedules"])
        .current_dir(repo)
        .env("PROXMOX_API_URL", sim_url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn orch serve");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let base = loop {
        let line = lines
            .next()
            .expect("orch serve ended before listening")
            .unwrap();
        if let Some(addr) = line.strip_prefix("listening on ") {
            break addr.trim().to_string();
        }
    };
    // Keep draining its log so a full pipe never blocks it.
    std::thread::spawn(move || for _ in lines {});
    Server { child, base }
}

fn admin_token(bin: &Path, repo: &Path) -> String {
    let out = Command::new(bin)
        .args(["--json", "token", "create", "bench", "--scope", "admin"])
        .current_dir(repo)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["token"].as_str().expect("token in --json").to_string()
}

fn percentiles(mut times: Vec<Duration>) -> (f64, f64) {
    if times.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    times.sort();
    let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e3;
    (at(0.5), at(0.99))
}

/// `clients` concurrent clients each sending `each` requests one after another.
async fn closed_loop(
    clients: usize,
    each: usize,
    make: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder + Send + Sync + 'static,
) -> (Vec<Duration>, usize) {
    let make = Arc::new(make);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let make = make.clone();
        tasks.spawn(async move {
            let http = reqwest::Client::new();
            let (mut times, mut errors) = (Vec::new(), 0);
            for _ in 0..each {
                let started = Instant::now();
                let ok = match make(&http).send().await {
                    Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                if ok {
                    times.push(started.elapsed());
                } else {
                    errors += 1;
                }
            }
            (times, errors)
        });
    }
    let (mut all, mut errors) = (Vec::new(), 0);
    while let Some(done) = tasks.join_next().await {
        let (times, e) = done.unwrap();
        all.extend(times);
        errors += e;
    }
    (all, errors)
}

/// Starts `workflow` over the API and reads its event stream to the end; returns the wall
/// time from the request to the stream's end. Panics unless the run succeeded.
async fn served_run(
    http: &reqwest::Client,
    server: &Server,
    token: &str,
    workflow: &str,
) -> Duration {
    let started = Instant::now();
    let resp = http
        .post(server.url("/api/v1/runs"))
        .bearer_auth(token)
        .json(&json!({"workflow": workflow}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 202, "POST /api/v1/runs");
    let id = resp.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    http.get(server.url(&format!("/api/v1/runs/{id}/events")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let elapsed = started.elapsed();
    let record: Value = http
        .get(server.url(&format!("/api/v1/runs/{id}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(record["status"], "succeeded", "run {id}: {record}");
    elapsed
}

/// Reads the open-loop generator made while `window` was open: (answered at, latency, ok).
type Reads = Arc<Mutex<Vec<(Instant, Duration, bool)>>>;

/// Sends `GET url` every 1/READS_PER_SECOND s while `on` is set, each in a task of its own.
async fn open_loop(
    url: String,
    token: String,
    on: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    reads: Reads,
) {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()
        .unwrap();
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / READS_PER_SECOND));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    while !stop.load(Ordering::SeqCst) {
        tick.tick().await;
        if !on.load(Ordering::SeqCst) {
            continue;
        }
        let (http, url, token, reads) = (http.clone(), url.clone(), token.clone(), reads.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            let ok = match http.get(&url).bearer_auth(&token).send().await {
                Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                Err(_) => false,
            };
            reads
                .lock()
                .unwrap()
                .push((Instant::now(), started.elapsed(), ok));
        });
    }
}

/// The serve rows; see the module doc.
pub fn serve_rows(bin: &Path, dist: &Path, tmp: &Path) {
    let cores = cores();
    let pinned = cores >= 2 && Path::new("/usr/bin/taskset").is_file();
    if pinned {
        pin_self("1");
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let sim = runtime
        .block_on(pve_sim::Simulator::start(pve_sim::SimConfig {
            password: PASSWORD.into(),
            ..Default::default()
        }))
        .unwrap();
    let repo = homelab(bin, dist, &tmp.join("serve-lab"));
    std::fs::File::create(repo.join("workflows/one-step.yaml"))
        .unwrap()
        .write_all(
            b"name: one-step\njobs:\n  - name: main\n    steps:\n      - name: auth\n        \
              task: { type: model_method, modelIdOrName: keebDev02, methodName: auth }\n",
        )
        .unwrap();
    let token = admin_token(bin, &repo);
    // A first run compiles the plugin into the repository's cache, as a server that has run
    // before finds it; the idle memory is then the server's own, not Cranelift's.
    let warm = Command::new(bin)
        .args(["run", "sync-fleet"])
        .current_dir(&repo)
        .env("PROXMOX_API_URL", sim.url())
        .output()
        .unwrap();
    assert!(
        warm.status.success(),
        "{}",
        String::from_utf8_lossy(&warm.stderr)
    );
    let server = start_server(bin, &repo, &sim.url(), pinned);
    row(
        "serve: idle RSS after start (plugin cached)",
        server.rss(),
        "-",
    );
    runtime.block_on(async {
        let http = reqwest::Client::new();
        served_run(&http, &server, &token, "sync-fleet").await;

        let (url, t) = (server.url("/api/v1/data/fleet"), token.clone());
        let started = Instant::now();
        let (times, errors) = closed_loop(50, 40, move |h| h.get(&url).bearer_auth(&t)).await;
        let rate = times.len() as f64 / started.elapsed().as_secs_f64();
        let (p50, p99) = percentiles(times);
        row(
            "serve: GET data/fleet, 50 clients p50 / p99",
            format!("{p50:.1} / {p99:.1} ms"),
            "-",
        );
        row(
            "serve: GET data/fleet, 50 clients, req/s",
            format!("{rate:.0} ({errors} err)"),
            "-",
        );
        let (url, t) = (server.url("/api/v1/runs"), token.clone());
        let (times, errors) = closed_loop(50, 4, move |h| {
            h.post(&url)
                .bearer_auth(&t)
                .json(&json!({"workflow": "one-step"}))
        })
        .await;
        let (p50, p99) = percentiles(times);
        row(
            "serve: POST runs (1 step), 50 clients p50/p99",
            format!("{p50:.0} / {p99:.0} ms ({errors} err)"),
            "-",
        );

        let (on, stop) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        let reads: Reads = Arc::default();
        let generator = tokio::spawn(open_loop(
            server.url("/api/v1/data/fleet"),
            token.clone(),
            on.clone(),
            stop.clone(),
            reads.clone(),
        ));
        let (mut alone, mut loaded) = (Vec::new(), Vec::new());
        let mut windows = Vec::new();
        for _ in 0..ROUNDS {
            alone.push(served_run(&http, &server, &token, "sync-fleet").await);
            on.store(true, Ordering::SeqCst);
            // Let the offered rate settle before the sync starts.
            tokio::time::sleep(Duration::from_millis(300)).await;
            let from = Instant::now();
            loaded.push(served_run(&http, &server, &token, "sync-fleet").await);
            windows.push((from, Instant::now()));
            on.store(false, Ordering::SeqCst);
            // Let reads in flight end, so the next "alone" sync is alone.
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        stop.store(true, Ordering::SeqCst);
        let _ = generator.await;
        let reads = reads.lock().unwrap();
        let in_window = |at: &Instant| windows.iter().any(|(a, b)| at >= a && at <= b);
        let during: Vec<_> = reads.iter().filter(|(at, _, _)| in_window(at)).collect();
        let window_time: f64 = windows.iter().map(|(a, b)| (*b - *a).as_secs_f64()).sum();
        let errors = reads.iter().filter(|(_, _, ok)| !ok).count();
        let (p50, p99) = percentiles(during.iter().map(|(_, d, _)| *d).collect());
        let (a, l) = (median(alone), median(loaded));
        row(
            "serve: served sync-fleet alone (median)",
            format!("{:.1} ms", a.as_secs_f64() * 1e3),
            "-",
        );
        row(
            "serve: same, under 1,000 reads/s (median)",
            format!("{:.1} ms", l.as_secs_f64() * 1e3),
            "-",
        );
        row(
            "serve: sync under reads / alone",
            format!("{:.2}x", l.as_secs_f64() / a.as_secs_f64()),
            "≤ 2x",
        );
        row(
            "serve: reads answered during the syncs",
            format!(
                "{:.0}/s ({} in {:.0} ms)",
                during.len() as f64 / window_time,
                during.len(),
                window_time * 1e3
            ),
            "1,000/s",
        );
        row(
            "serve: read p50 / p99 during the syncs",
            format!("{p50:.1} / {p99:.1} ms"),
            "-",
        );
        row(
            "serve: failed reads (all rounds)",
            format!("{errors} of {}", reads.len()),
            "0",
        );
    });
    drop(server);
    if pinned {
        pin_self(&format!("0-{}", cores - 1));
    }
}
