//! Rows against the Proxmox simulator: B2 (orch vs a bare program vs peers, interleaved),
//! B3 (10,000 VMs), history independence (the 100th 1,000-VM sync vs the first) with
//! `data changes` over that history, discovery of a generated 3-node cluster, and plan / no-op
//! apply over 1,000 declared guests.

use super::{median, per_op, row, scaled};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The simulator's root password, in the bench repositories' vault.
pub const PASSWORD: &str = "bench-password";
const NODE: &str = "keeb-dev-02";

/// A copy of the homelab example wired to a simulator, with the password in its vault.
pub fn homelab(bin: &Path, dist: &Path, dir: &Path) -> PathBuf {
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
    // The types the bundle claims, when it has them (a cold run need not compile to learn them).
    let _ = std::fs::copy(dist.join("proxmox/types.json"), dst.join("types.json"));
    let mut put = Command::new(bin)
        .args(["vault", "put", "proxmox-vault", "password"])
        .current_dir(dir)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    put.stdin
        .take()
        .unwrap()
        .write_all(PASSWORD.as_bytes())
        .unwrap();
    assert!(put.wait().unwrap().success());
    dir.to_path_buf()
}

/// Runs `cmd` under GNU time; returns the wall time and the child's peak RSS in KiB (0 when GNU
/// time is missing).
///
/// The RSS comes from `/usr/bin/time`, not from our own `wait4`: Linux charges a child's
/// `ru_maxrss` with its parent's peak at the moment of `exec`, and this bench process is large
/// after compiling the TypeScript component, which once made orch look 4x its real size. The
/// wall time then includes GNU time's own start (about 2 ms here), so this is only for rows
/// that take hundreds of milliseconds; B2 and the other short rows use [`timed`], since the
/// wrapper, added to both sides, once made B2's ratio read 4.7x where it was 6.0x.
fn timed_with_rss(cmd: Command, stdin: Option<&str>) -> (Duration, i64) {
    const GNU_TIME: &str = "/usr/bin/time";
    if !Path::new(GNU_TIME).is_file() {
        return (timed(cmd, stdin), 0);
    }
    let rss_file = tempfile::NamedTempFile::new().unwrap();
    let mut run = Command::new(GNU_TIME);
    run.args(["-f", "%M", "-o"])
        .arg(rss_file.path())
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (key, value) in cmd.get_envs() {
        match value {
            Some(v) => run.env(key, v),
            None => run.env_remove(key),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        run.current_dir(dir);
    }
    let wall = timed(run, stdin);
    let rss = std::fs::read_to_string(rss_file.path())
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0);
    (wall, rss)
}

/// Runs `run` to completion, spawned directly, with `stdin` written to it and output discarded;
/// asserts success and returns its wall time, from spawn to reaped.
fn timed(mut run: Command, stdin: Option<&str>) -> Duration {
    let started = Instant::now();
    let mut child = run
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    let status = child.wait().unwrap();
    let wall = started.elapsed();
    assert!(status.success(), "{run:?} failed");
    wall
}

fn sync_fleet(bin: &Path, repo: &Path, url: &str) -> Command {
    let mut cmd = Command::new(bin);
    cmd.args(["run", "sync-fleet"])
        .current_dir(repo)
        .env("PROXMOX_API_URL", url);
    cmd
}

/// Builds the command for one peer sync against a URL, writing into a directory.
pub type PeerCommand = Box<dyn Fn(&str, &Path) -> Command>;

/// A peer of `orch run sync-fleet` that `--peers` compares with.
pub struct Peer {
    /// The row's name.
    pub name: &'static str,
    /// Builds the command for one sync against `url`, writing into `out`.
    pub command: PeerCommand,
    /// What the peer reads on stdin (the password), if anything.
    pub stdin: Option<String>,
    /// In how many of B2's rounds it runs (the slow ones run in the first few only).
    pub rounds: usize,
}

/// B2: orch, the bare program and any peers, each a process of its own, run in turn.
pub fn b2_rows(bin: &Path, dist: &Path, bare: Option<&Path>, peers: &[Peer], tmp: &Path) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let sim = runtime
        .block_on(pve_sim::Simulator::start(pve_sim::SimConfig {
            password: PASSWORD.into(),
            ..Default::default()
        }))
        .unwrap();
    let url = sim.url();
    let repo = homelab(bin, dist, &tmp.join("lab10"));
    timed(sync_fleet(bin, &repo, &url), None);
    let n = 11;
    let mut orch_times = Vec::new();
    let mut bare_times = Vec::new();
    let mut peer_times: Vec<Vec<Duration>> = peers.iter().map(|_| Vec::new()).collect();
    for i in 0..n {
        orch_times.push(timed(sync_fleet(bin, &repo, &url), None));
        if let Some(bare) = bare {
            let mut cmd = Command::new(bare);
            cmd.args([url.as_str(), NODE]);
            bare_times.push(timed(cmd, Some(PASSWORD)));
        }
        for (peer, times) in peers.iter().zip(&mut peer_times) {
            if i >= peer.rounds {
                continue;
            }
            let out = tmp.join(format!("peer-out-{i}"));
            let _ = std::fs::remove_dir_all(&out);
            std::fs::create_dir_all(&out).unwrap();
            times.push(timed((peer.command)(&url, &out), peer.stdin.as_deref()));
        }
    }
    let o = median(orch_times);
    row(
        "B2 `orch run sync-fleet`, 10 VMs (median)",
        per_op(o, 1),
        "-",
    );
    match bare {
        Some(_) => {
            let b = median(bare_times);
            row("B2 bare reqwest process (median)", per_op(b, 1), "-");
            row(
                "B2 ratio orch / bare",
                format!("{:.1}x", o.as_secs_f64() / b.as_secs_f64()),
                "≤ 4x",
            );
        }
        None => row(
            "B2 bare reqwest process",
            "skipped (set BARE_SYNC_BIN)".into(),
            "-",
        ),
    }
    for (peer, times) in peers.iter().zip(peer_times) {
        let p = median(times);
        row(&format!("peer: {} (median)", peer.name), per_op(p, 1), "-");
        row(
            &format!("peer: {} / orch", peer.name),
            format!("{:.1}x", p.as_secs_f64() / o.as_secs_f64()),
            "-",
        );
    }
}

/// A Proxmox simulator of a generated fleet of `count` VMs, with the bench password.
pub fn simulator(runtime: &tokio::runtime::Runtime, count: usize) -> pve_sim::Simulator {
    runtime
        .block_on(pve_sim::Simulator::start(pve_sim::SimConfig {
            password: PASSWORD.into(),
            fleet: pve_sim::Fleet::generated(count),
            ..Default::default()
        }))
        .unwrap()
}

/// B3 (10,000 VMs once) and history: 100 syncs of 1,000 VMs, the last five against the first five.
pub fn fleet_rows(bin: &Path, dist: &Path, tmp: &Path) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let start = |count| simulator(&runtime, count);
    let big = start(scaled(10_000));
    let repo = homelab(bin, dist, &tmp.join("lab10k"));
    // A 10-VM sync first compiles the plugin, so B3 times the sync, not the first compile.
    let small = start(10);
    timed(sync_fleet(bin, &repo, &small.url()), None);
    drop(small);
    let (wall, rss_kib) = timed_with_rss(sync_fleet(bin, &repo, &big.url()), None);
    row("B3 sync of 10,000 VMs: wall", per_op(wall, 1), "≤ 0.7 s");
    row(
        "B3 sync of 10,000 VMs: peak RSS",
        if rss_kib > 0 {
            format!("{} MiB", rss_kib / 1024)
        } else {
            "no /usr/bin/time".into()
        },
        "≤ 150 MB",
    );
    drop(big);

    let vms = scaled(1_000);
    let sim = start(vms);
    let repo = homelab(bin, dist, &tmp.join("lab1k"));
    let syncs = scaled(100);
    // Between two syncs one VM stops and another starts, so the history holds real changes.
    let times: Vec<Duration> = (0..syncs)
        .map(|i| {
            // Generated fleets number their VMs from 1000.
            let vmid = 1_000 + (i % vms) as u32;
            let toggle = if i % 2 == 0 {
                pve_sim::WorldChange::StopGuest { vmid }
            } else {
                pve_sim::WorldChange::StartGuest { vmid }
            };
            sim.change(toggle).unwrap();
            timed(sync_fleet(bin, &repo, &sim.url()), None)
        })
        .collect();
    let (first, last) = (
        median(times[..5].to_vec()),
        median(times[syncs - 5..].to_vec()),
    );
    row(
        "history: 1,000-VM sync, syncs 1-5 (median)",
        per_op(first, 1),
        "-",
    );
    row("history: the last 5 syncs (median)", per_op(last, 1), "-");
    row(
        "history: last / first",
        format!("{:.2}x", last.as_secs_f64() / first.as_secs_f64()),
        "≤ 1.1x",
    );
    let size = std::fs::metadata(repo.join(".orch/data.redb"))
        .map(|m| m.len())
        .unwrap_or(0);
    row(
        "history: data.redb after 100 syncs",
        format!("{:.1} MiB", size as f64 / 1048576.0),
        "-",
    );
    let runs: serde_json::Value = serde_json::from_slice(&super::process::orch(
        bin,
        &repo,
        &["--json", "runs", "list"],
    ))
    .unwrap();
    let oldest = runs.as_array().unwrap().last().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let changes = |since: &str| {
        let mut cmd = Command::new(bin);
        cmd.args(["--json", "data", "changes", "--since", since])
            .current_dir(&repo);
        timed(cmd, None)
    };
    row(
        "data changes: the whole 100-sync history",
        per_op(changes(&oldest), 1),
        "-",
    );
    row(
        "data changes: the last 24h (same history)",
        per_op(changes("24h"), 1),
        "-",
    );
}

/// Discovery of a generated 3-node cluster: 10,000 guests and 100,000 tasks in one `sync-all`
/// with VMs, containers and tasks read from every node.
pub fn discovery_rows(bin: &Path, dist: &Path, tmp: &Path) {
    let (guests, tasks) = (scaled(10_000), scaled(100_000));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let sim = runtime
        .block_on(pve_sim::Simulator::start(pve_sim::SimConfig {
            password: PASSWORD.into(),
            ..pve_sim::SimConfig::generated(3, guests, tasks)
        }))
        .unwrap();
    let repo = homelab(bin, dist, &tmp.join("cluster"));
    for model in ["fleet", "containers", "tasks"] {
        let path = repo.join(format!("models/{model}.yaml"));
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(
            &path,
            text.replace("node: ${{ env.PROXMOX_NODE }}", "node: \"*\""),
        )
        .unwrap();
    }
    // Every task of every node: the per-node window covers a third of them and more.
    let all_tasks = tasks.div_ceil(3).max(1).to_string();
    let workflow = std::fs::read_to_string(repo.join("workflows/sync-all.yaml"))
        .unwrap()
        .replace(
            "modelIdOrName: tasks, methodName: sync }",
            &format!("modelIdOrName: tasks, methodName: sync, inputs: {{ limit: {all_tasks} }} }}"),
        );
    std::fs::write(repo.join("workflows/sync-all.yaml"), workflow).unwrap();
    let mut cmd = Command::new(bin);
    cmd.args(["run", "sync-all"])
        .current_dir(&repo)
        .env("PROXMOX_API_URL", sim.url());
    let (wall, rss_kib) = timed_with_rss(cmd, None);
    let versions = guests + tasks + 3 + 1;
    row(
        "discovery: 3 nodes, 10,000 guests, 100,000 tasks: wall",
        per_op(wall, 1),
        "-",
    );
    row(
        "discovery: peak RSS",
        if rss_kib > 0 {
            format!("{} MiB", rss_kib / 1024)
        } else {
            "no /usr/bin/time".into()
        },
        "-",
    );
    row(
        "discovery: versions written per second",
        format!("{:.0}/s", versions as f64 / wall.as_secs_f64()),
        "-",
    );
}

/// `orch plan` and a no-op `orch apply` over 1,000 declared guests that already match the node:
/// wall time and the requests each sends (apply must send no write).
pub fn converge_rows(bin: &Path, dist: &Path, tmp: &Path) {
    let count = scaled(1_000);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let sim = runtime
        .block_on(pve_sim::Simulator::start(pve_sim::SimConfig {
            password: PASSWORD.into(),
            ..pve_sim::SimConfig::generated(1, count, 0)
        }))
        .unwrap();
    let repo = homelab(bin, dist, &tmp.join("declared"));
    // The generated guests as they are (vmid 1000 + i, every fifth a container), declared
    // without a desired power state, so nothing is pending.
    let mut yaml = String::from(
        "type: proxmox/guests\nglobalArguments:\n  apiUrl: ${{ env.PROXMOX_API_URL }}\n  node: ${{ env.PROXMOX_NODE }}\n  ticket: ${{ model.keebDev02.resource.node.node.attributes.ticket }}\n  csrfToken: ${{ model.keebDev02.resource.node.node.attributes.csrfToken }}\n  insecureTls: true\n  guests:\n",
    );
    for i in 0..count {
        let vmid = 1_000 + i;
        if i % 5 == 4 {
            yaml.push_str(&format!(
                "    - {{ name: ct-{:05}, kind: lxc, vmid: {vmid}, ostemplate: \"local:vztmpl/debian-12.tar.zst\", start: false }}\n",
                i + 1
            ));
        } else {
            yaml.push_str(&format!(
                "    - {{ name: vm-{:05}, kind: qemu, vmid: {vmid}, start: false }}\n",
                i + 1
            ));
        }
    }
    std::fs::write(repo.join("models/guests.yaml"), yaml).unwrap();
    let run = |args: &[&str]| {
        let mut cmd = Command::new(bin);
        cmd.args(args)
            .current_dir(&repo)
            .env("PROXMOX_API_URL", sim.url());
        cmd
    };
    timed(run(&["model", "run", "keebDev02", "auth"]), None);
    for (what, args) in [
        ("plan", &["plan", "guests"][..]),
        ("no-op apply", &["apply", "guests", "--yes"][..]),
    ] {
        let (requests, writes) = (sim.request_count(), sim.writes().len());
        let wall = timed(run(args), None);
        row(
            &format!("converge: {what} of 1,000 declared guests"),
            per_op(wall, 1),
            "-",
        );
        row(
            &format!("converge: {what}: requests sent (writes)"),
            format!(
                "{} ({})",
                sim.request_count() - requests,
                sim.writes().len() - writes
            ),
            "apply: 0 writes",
        );
    }
}
