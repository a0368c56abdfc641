//! `cargo xtask demo`: the main job, end to end, against the bundled Proxmox VE simulator.

use crate::root;
use anyhow::{Context, Result, bail};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// Stops the simulator however the demo ends.
struct Sim(Child);

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn orch(bin: &Path, repo: &Path, url: &str, args: &[&str]) -> Result<String> {
    eprintln!("\n$ orch {}", args.join(" "));
    let out = Command::new(bin)
        .args(args)
        .current_dir(repo)
        .env("PROXMOX_API_URL", url)
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {}", bin.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!("orch {} failed ({}):\n{stdout}", args.join(" "), out.status);
    }
    Ok(stdout)
}

/// Runs the demo with binaries from `bin_dir`.
pub fn run_demo(bin_dir: &Path) -> Result<()> {
    let orch_bin = bin_dir.join("orch");
    let repo = root().join("workflows").join("homelab");
    // A fresh password per demo: it only ever lives in the simulator and the encrypted vault.
    let password = format!("demo-{:016x}", rand_u64());
    let (sim, url) = start_sim(bin_dir, &password, &["--fleet", "reference"])?;
    eprintln!("Proxmox VE simulator (reference fleet) listening on {url}");
    vault_put(&orch_bin, &repo, &password)?;

    orch(&orch_bin, &repo, &url, &["run", "sync-fleet"])?;
    orch(
        &orch_bin,
        &repo,
        &url,
        &["run", "start-vm", "--input", "vmName=atm10"],
    )?;
    orch(&orch_bin, &repo, &url, &["run", "sync-fleet"])?;
    let ip = orch(
        &orch_bin,
        &repo,
        &url,
        &[
            "eval",
            r#"model.fleet.resource.vm["gold-image"].attributes.ip"#,
        ],
    )?;
    println!("{}", ip.trim());

    let list: serde_json::Value = serde_json::from_str(&orch(
        &orch_bin,
        &repo,
        &url,
        &["--json", "data", "list", "fleet"],
    )?)?;
    println!(
        "\n{:<16} {:>5}  {:<9} {:<15} versions",
        "VM", "vmid", "status", "ip"
    );
    for entry in list.as_array().into_iter().flatten() {
        let name = entry["name"].as_str().unwrap_or_default();
        let got = Command::new(&orch_bin)
            .args(["--json", "data", "get", "fleet", name])
            .current_dir(&repo)
            .output()?;
        let v: serde_json::Value = serde_json::from_slice(&got.stdout).unwrap_or_default();
        let a = &v["attributes"];
        println!(
            "{:<16} {:>5}  {:<9} {:<15} {}",
            name,
            a["vmid"],
            a["status"].as_str().unwrap_or("?"),
            a["ip"].as_str().unwrap_or("-"),
            entry["latest"]
        );
    }

    serve(&orch_bin, &repo, &url)?;

    // Discovery: VMs, containers, storage pools and tasks in one run; then what changed.
    let first: serde_json::Value = serde_json::from_str(&orch(
        &orch_bin,
        &repo,
        &url,
        &["--json", "run", "sync-all"],
    )?)?;
    let first_id = first["id"]
        .as_str()
        .context("sync-all printed no run id")?
        .to_string();
    orch(
        &orch_bin,
        &repo,
        &url,
        &[
            "run",
            "stop-vm",
            "--input",
            "vmName=atm10",
            "--input",
            "expectVmid=101",
        ],
    )?;
    orch(&orch_bin, &repo, &url, &["run", "sync-all"])?;
    print!(
        "{}",
        orch(
            &orch_bin,
            &repo,
            &url,
            &["data", "changes", "--since", &first_id]
        )?
    );
    println!(
        "\nThe data stays in workflows/homelab/.orch: try `orch data versions fleet atm10` or \
         `orch data diff fleet atm10` there."
    );
    drop(sim);
    phoenix(bin_dir, &orch_bin, &password)
}

/// `orch serve` on a free loopback port: a read token, the fleet over the HTTP API, then SIGTERM
/// (schedules off, so the homelab's `*/2` metrics schedule does not fire into the demo).
fn serve(orch_bin: &Path, repo: &Path, url: &str) -> Result<()> {
    let _ = orch(orch_bin, repo, url, &["token", "revoke", "demo"]);
    let made: serde_json::Value = serde_json::from_str(&orch(
        orch_bin,
        repo,
        url,
        &["--json", "token", "create", "demo", "--scope", "read"],
    )?)?;
    let token = made["token"]
        .as_str()
        .context("no token printed")?
        .to_string();
    eprintln!("\n$ orch serve --listen 127.0.0.1:0 --no-schedules");
    let mut server = Command::new(orch_bin)
        .args(["serve", "--listen", "127.0.0.1:0", "--no-schedules"])
        .current_dir(repo)
        .env("PROXMOX_API_URL", url)
        .stderr(Stdio::piped())
        .spawn()
        .context("starting orch serve")?;
    let stderr = server.stderr.take().context("orch serve stderr")?;
    let mut lines = BufReader::new(stderr).lines();
    let addr = loop {
        let line = lines
            .next()
            .context("orch serve ended before listening")??;
        eprintln!("{line}");
        if let Some(at) = line.strip_prefix("listening on http://") {
            break at.to_string();
        }
    };
    eprintln!("$ curl -H 'Authorization: Bearer …' http://{addr}/api/v1/data/fleet");
    let mut stream = std::net::TcpStream::connect(&addr)?;
    write!(
        stream,
        "GET /api/v1/data/fleet HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut stream, &mut answer)?;
    let status = answer.lines().next().unwrap_or_default().to_string();
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let fleet: serde_json::Value = serde_json::from_str(body.trim()).unwrap_or_default();
    println!(
        "{status}: {} resources of model fleet (the dashboard is at http://{addr}/ while it runs)",
        fleet.as_array().map_or(0, Vec::len)
    );
    Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()?;
    let ended = server.wait()?;
    orch(orch_bin, repo, url, &["token", "revoke", "demo"])?;
    if !status.contains(" 200 ") || !ended.success() {
        bail!("orch serve: {status}, exit {ended}");
    }
    Ok(())
}

/// Phoenix, declaratively: six declared guests planned and converged in dependency order
/// against a simulator that has the templates they are cloned from; a second apply has
/// nothing to do.
fn phoenix(bin_dir: &Path, orch_bin: &Path, password: &str) -> Result<()> {
    let repo = root().join("workflows").join("phoenix");
    let (sim, url) = start_sim(bin_dir, password, &["--templates", "--agent-warmup", "2"])?;
    eprintln!("\nProxmox VE simulator (with templates 9000 and 9001) listening on {url}");
    vault_put(orch_bin, &repo, password)?;
    print!("{}", orch(orch_bin, &repo, &url, &["graph"])?);
    print!("{}", orch(orch_bin, &repo, &url, &["plan", "guests"])?);
    print!(
        "{}",
        orch(orch_bin, &repo, &url, &["apply", "guests", "--yes"])?
    );
    print!(
        "{}",
        orch(orch_bin, &repo, &url, &["apply", "guests", "--yes"])?
    );
    println!(
        "\nThe declared guests' data stays in workflows/phoenix/.orch: try `orch data list guests` there."
    );
    drop(sim);
    Ok(())
}

/// Starts `pve-sim` with `args`; returns it (stopped when dropped) and its URL.
fn start_sim(bin_dir: &Path, password: &str, args: &[&str]) -> Result<(Sim, String)> {
    let mut child = Command::new(bin_dir.join("pve-sim"))
        .args(args)
        .args(["--password", password])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting pve-sim")?;
    let stdout = child.stdout.take().context("simulator stdout")?;
    let sim = Sim(child);
    let mut url = String::new();
    BufReader::new(stdout).read_line(&mut url)?;
    let url = url.trim().to_string();
    if !url.starts_with("https://") {
        bail!("the simulator did not print its URL (got {url:?})");
    }
    Ok((sim, url))
}

/// Stores the simulator's password in `repo`'s vault, as a user would.
fn vault_put(orch_bin: &Path, repo: &Path, password: &str) -> Result<()> {
    eprintln!("\n$ printf %s \"$PASSWORD\" | orch vault put proxmox-vault password");
    let mut put = Command::new(orch_bin)
        .args(["vault", "put", "proxmox-vault", "password"])
        .current_dir(repo)
        .stdin(Stdio::piped())
        .spawn()?;
    put.stdin
        .take()
        .context("stdin")?
        .write_all(password.as_bytes())?;
    if !put.wait()?.success() {
        bail!("orch vault put failed");
    }
    Ok(())
}

fn rand_u64() -> u64 {
    let mut bytes = [0u8; 8];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut bytes);
    }
    u64::from_le_bytes(bytes) ^ std::process::id() as u64
}
