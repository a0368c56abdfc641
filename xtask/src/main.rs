//! `cargo xtask build | test | demo | bench`: the project's own build steps, in Rust so they
//! work the same on every machine.

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

mod bundle;
mod demo;

const USAGE: &str = "usage: cargo xtask <build | test | demo | bench>
  build   build the orch binary and every plugin; bundles land in plugins/dist/<id>/
          and in each example repository's plugins/
  test    install what the tests need (wasm32-wasip2, openssh-server, nginx, dnsmasq), build the
          plugins, check formatting and run every test
  demo    build everything, start the Proxmox VE simulator with the reference fleet, then run
          sync-fleet and start-vm in workflows/homelab, print the fleet, then sync-all twice
          around a stop-vm and show `orch data changes`
  bench   build release and print the benchmark table (B1-B6, start-up, history);
          `bench --peers` also runs the same sync with Python requests and Ansible
          (bench/peers/setup.sh makes their virtualenv first)";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("build") => build().map(|_| ()),
        Some("test") => test(&args[1..]),
        Some("demo") => demo(),
        Some("bench") => bench(args[1..].iter().any(|a| a == "--peers")),
        _ => {
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    };
    if let Err(e) = result {
        eprintln!("xtask: error: {e:#}");
        std::process::exit(1);
    }
}

/// The workspace root, found at run time: a binary shared through one target directory by two
/// checkouts must work on the checkout it was started in, not the one that compiled it. Cargo
/// sets `CARGO_MANIFEST_DIR` for `cargo run`; otherwise the nearest ancestor of the current
/// directory holding `xtask/Cargo.toml` is the root.
pub fn root() -> PathBuf {
    static ROOT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    ROOT.get_or_init(|| {
        let from_cargo = std::env::var_os("CARGO_MANIFEST_DIR")
            .map(PathBuf::from)
            .and_then(|xtask| xtask.parent().map(Path::to_path_buf));
        let from_cwd = || {
            let cwd = std::env::current_dir().ok()?;
            cwd.ancestors()
                .find(|d| d.join("xtask/Cargo.toml").is_file() && d.join("Cargo.toml").is_file())
                .map(Path::to_path_buf)
        };
        match from_cargo.filter(|r| r.join("xtask/Cargo.toml").is_file()).or_else(from_cwd) {
            Some(root) => root,
            None => {
                eprintln!(
                    "xtask: cannot find the workspace root (no xtask/Cargo.toml above the current directory); run `cargo xtask` inside the orch checkout"
                );
                std::process::exit(2);
            }
        }
    })
    .clone()
}

/// The cargo target directory in use.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

/// Runs a command, failing with its name if it fails.
pub fn run(cmd: &mut Command) -> Result<()> {
    let shown = format!("{cmd:?}");
    eprintln!("xtask: $ {shown}");
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {shown}"))?;
    if !status.success() {
        bail!("{shown} failed with {status}");
    }
    Ok(())
}

fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program} >/dev/null 2>&1")])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn ensure_wasm_target() -> Result<()> {
    let out = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output();
    if let Ok(out) = out
        && String::from_utf8_lossy(&out.stdout)
            .lines()
            .any(|l| l.trim() == "wasm32-wasip2")
    {
        return Ok(());
    }
    run(Command::new("rustup").args(["target", "add", "wasm32-wasip2"]))
}

/// Debian packages the end-to-end tests drive for real.
const TEST_PACKAGES: &[(&str, &str)] = &[
    ("/usr/sbin/sshd", "openssh-server"),
    ("/usr/bin/ssh-keygen", "openssh-client"),
    ("/usr/sbin/nginx", "nginx"),
    (
        "/usr/lib/nginx/modules/ngx_stream_module.so",
        "libnginx-mod-stream",
    ),
    ("/usr/bin/tmux", "tmux"),
    // The PostgreSQL datastore (host/tests/datastore.rs) runs its own server from a temp dir.
    ("/usr/lib/postgresql/15/bin/initdb", "postgresql"),
    // minecraft/installer (host/tests/provision_engine.rs): real unzip on the test host, zip to make packs.
    ("/usr/bin/unzip", "unzip"),
    ("/usr/bin/zip", "zip"),
    // dns/dnsmasq (host/tests/dnsmasq.rs) runs its own dnsmasq; dnsmasq-base is the binary
    // without the system service, which would start a resolver on port 53.
    ("/usr/sbin/dnsmasq", "dnsmasq-base"),
    // TypeScript plugins (host/tests/typescript.rs): the host runs `npm ci` of the SDK's
    // pinned toolchain into ~/.cache/orch-ts itself, so nothing is installed globally.
    ("/usr/bin/node", "nodejs"),
    ("/usr/bin/npm", "npm"),
    // monitoring/agent and monitoring/hub (host/tests/monitoring.rs) run their own on loopback.
    ("/usr/bin/prometheus", "prometheus"),
    (
        "/usr/bin/prometheus-node-exporter",
        "prometheus-node-exporter",
    ),
    // The tailscale shim of host/tests/provision_tailscale.rs snapshots `ps -eo args`.
    ("/usr/bin/ps", "procps"),
    // alpine/overlay (host/tests/provision_alpine.rs) serves PXE files from its own on loopback.
    ("/usr/sbin/lighttpd", "lighttpd"),
    ("/usr/sbin/in.tftpd", "tftpd-hpa"),
    // The dashboard test (host/tests/dashboard.rs) drives headless Chromium over WebDriver.
    ("/usr/bin/chromium", "chromium"),
    ("/usr/bin/chromedriver", "chromium-driver"),
    // orch mcp (host/tests/mcp.rs): the official Python MCP SDK, pip-installed into a venv
    // under ~/.cache/orch-mcp-venv by the test itself.
    ("/usr/lib/python3.11/ensurepip/__init__.py", "python3-venv"),
];

/// Installs the Debian packages of `wanted` (file that proves it is there, package) not there yet.
fn ensure_system_packages(wanted: &[(&str, &str)]) -> Result<()> {
    let missing: Vec<&str> = wanted
        .iter()
        .filter(|(path, _)| !Path::new(path).exists())
        .map(|(_, pkg)| *pkg)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !have("apt-get") {
        eprintln!(
            "xtask: warning: cannot install {missing:?} (no apt-get); tests that need them will fail"
        );
        return Ok(());
    }
    let sudo: &[&str] = if is_root() { &[] } else { &["sudo"] };
    let mut update = Command::new(sudo.first().copied().unwrap_or("apt-get"));
    if !sudo.is_empty() {
        update.arg("apt-get");
    }
    update.args(["-qq", "update"]);
    run(&mut update)?;
    let mut install = Command::new(sudo.first().copied().unwrap_or("apt-get"));
    if !sudo.is_empty() {
        install.arg("apt-get");
    }
    install
        .args(["-qq", "install", "-y", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive");
    run(&mut install)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Builds orch and every plugin, and installs the bundles.
fn build() -> Result<Vec<PathBuf>> {
    ensure_wasm_target()?;
    run(cargo().args(["build", "-p", "orch"]))?;
    let bundles = bundle::build_all()?;
    build_typescript_examples()?;
    Ok(bundles)
}

/// Builds each example repository's TypeScript plugin (`workflows/<repo>/plugin/`, with
/// package.json and bundle.toml) and installs its bundle into `workflows/<repo>/plugins/<id>/`.
/// This also installs the pinned TypeScript toolchain the tests use (npm ci into a cache).
fn build_typescript_examples() -> Result<()> {
    let Ok(entries) = std::fs::read_dir(root().join("workflows")) else {
        return Ok(());
    };
    for e in entries.flatten() {
        let plugin = e.path().join("plugin");
        if !plugin.join("package.json").is_file() || !plugin.join("bundle.toml").is_file() {
            continue;
        }
        if !have("node") || !have("npm") {
            eprintln!(
                "xtask: warning: node/npm missing, {} not built (cargo xtask test installs them)",
                plugin.display()
            );
            continue;
        }
        let template = std::fs::read_to_string(plugin.join("bundle.toml"))?;
        let manifest: toml::Table = template.parse()?;
        let Some(id) = manifest.get("id").and_then(|v| v.as_str()) else {
            bail!("{}/bundle.toml has no id", plugin.display());
        };
        let out = e.path().join("plugins").join(id);
        run(cargo()
            .args(["run", "-q", "-p", "orch", "--example", "ts_bundle", "--"])
            .arg(&plugin)
            .arg(&out))?;
    }
    Ok(())
}

fn test(extra: &[String]) -> Result<()> {
    ensure_wasm_target()?;
    ensure_system_packages(TEST_PACKAGES)?;
    run(cargo().args(["fmt", "--all", "--check"]))?;
    build()?;
    let mut cmd = cargo();
    cmd.args(["test", "--workspace", "--exclude", "orch-testplug"]);
    for hostile in bundle::hostile_crates()? {
        cmd.args(["--exclude", &hostile]);
    }
    cmd.args(extra);
    run(&mut cmd)
}

fn demo() -> Result<()> {
    build()?;
    run(cargo().args(["build", "-p", "pve-sim"]))?;
    demo::run_demo(&target_dir().join("debug"))
}

fn bench(peers: bool) -> Result<()> {
    // Numbers mean something only for an optimised build: the first run builds release (long).
    // GNU time measures a child's peak RSS without the bench process's own (see proxmox.rs).
    ensure_system_packages(&[("/usr/bin/time", "time")])?;
    build()?;
    run(cargo().args(["build", "--release", "-p", "orch", "--example", "bare_sync"]))?;
    run(cargo().args(["build", "--release", "-p", "orch"]))?;
    if peers {
        run(Command::new("bash").arg(root().join("bench/peers/setup.sh")))?;
    }
    let release = target_dir().join("release");
    let mut cmd = cargo();
    cmd.args(["run", "--release", "-p", "orch", "--example", "bench", "--"])
        .arg(bundle::dist_dir())
        .env("ORCH_BIN", release.join("orch"))
        .env("BARE_SYNC_BIN", release.join("examples/bare_sync"));
    if peers {
        cmd.arg("--peers");
    }
    run(&mut cmd)
}
