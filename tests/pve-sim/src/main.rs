//! `pve-sim`: runs the Proxmox VE API simulator until SIGTERM or SIGINT.
//!
//! Prints exactly one line to stdout, the base URL, then serves. Exit codes: 0 after a signal,
//! 1 if the server cannot start, 2 for usage errors.

use std::io::Write as _;
use std::process::ExitCode;

use clap::Parser;
use pve_sim::{Fleet, SimConfig, Simulator};

/// Command-line options.
#[derive(Parser)]
#[command(
    name = "pve-sim",
    version,
    about = "Proxmox VE API simulator over HTTPS on 127.0.0.1"
)]
struct Cli {
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// `reference` for the 10-VM keeb-dev-02 fleet, or a number of generated VMs.
    #[arg(long, default_value = "reference", value_parser = parse_fleet)]
    fleet: Fleet,
    /// The 3-node test cluster (keeb-dev-02, -03, -04) instead of the single reference node.
    #[arg(long, conflicts_with_all = ["fleet", "guests", "nodes"])]
    cluster: bool,
    /// A generated world of this many nodes (with `--guests`).
    #[arg(long, requires = "guests", value_parser = clap::value_parser!(u16).range(1..=999))]
    nodes: Option<u16>,
    /// A generated world with this many guests (VMs and containers) spread over `--nodes`.
    #[arg(long, conflicts_with = "fleet")]
    guests: Option<usize>,
    /// How many finished tasks to seed, spread over the nodes (default: 60 for the reference
    /// node, 90 for the cluster, 0 for a generated world).
    #[arg(long)]
    tasks: Option<usize>,
    /// Password of the login user.
    #[arg(long)]
    password: Option<String>,
    /// Node name.
    #[arg(long)]
    node: Option<String>,
    /// An API token, `USER@REALM!TOKENID=SECRET`; repeatable.
    #[arg(long = "token", value_parser = parse_token)]
    tokens: Vec<(String, String)>,
    /// Add the templates VM 9000 `debian-12-template` and CT 9001 `debian-12-ct-template` to
    /// the first node.
    #[arg(long)]
    templates: bool,
    /// Address requests a freshly booted guest answers without an address (default 0).
    #[arg(long, default_value_t = 0)]
    agent_warmup: u32,
    /// Log one line per request to stderr.
    #[arg(short, long)]
    verbose: bool,
}

fn parse_fleet(text: &str) -> Result<Fleet, String> {
    if text == "reference" {
        return Ok(Fleet::reference());
    }
    text.parse::<usize>()
        .map(Fleet::generated)
        .map_err(|_| format!("expected `reference` or a number of VMs, got `{text}`"))
}

fn parse_token(text: &str) -> Result<(String, String), String> {
    let (id, secret) = text
        .split_once('=')
        .filter(|(id, secret)| !secret.is_empty() && id.contains('@') && id.contains('!'))
        .ok_or_else(|| format!("expected USER@REALM!TOKENID=SECRET, got `{text}`"))?;
    Ok((id.to_string(), secret.to_string()))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let defaults = if cli.cluster {
        SimConfig::test_cluster()
    } else if let Some(guests) = cli.guests {
        SimConfig::generated(usize::from(cli.nodes.unwrap_or(1)), guests, 0)
    } else {
        SimConfig {
            fleet: cli.fleet,
            ..SimConfig::default()
        }
    };
    let defaults = if cli.templates {
        defaults.with_templates()
    } else {
        defaults
    };
    let config = SimConfig {
        node: cli.node.unwrap_or(defaults.node.clone()),
        agent_warmup: cli.agent_warmup,
        password: cli.password.unwrap_or(defaults.password.clone()),
        api_tokens: cli.tokens,
        tasks: cli.tasks.unwrap_or(defaults.tasks),
        port: cli.port,
        ..defaults
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("pve-sim: cannot start the async runtime: {error}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(run(config, cli.verbose))
}

async fn run(config: SimConfig, verbose: bool) -> ExitCode {
    // Install the handlers before announcing the URL: a caller may signal as soon as it reads it.
    let signals = match Signals::install() {
        Ok(signals) => signals,
        Err(error) => {
            eprintln!("pve-sim: cannot install signal handlers: {error}");
            return ExitCode::from(1);
        }
    };
    let port = config.port;
    let simulator = match Simulator::start(config).await {
        Ok(simulator) => simulator,
        Err(error) => {
            eprintln!("pve-sim: cannot listen on 127.0.0.1:{port}: {error}");
            return ExitCode::from(1);
        }
    };
    simulator.log_requests(verbose);
    let mut stdout = std::io::stdout().lock();
    if writeln!(stdout, "{}", simulator.url())
        .and_then(|()| stdout.flush())
        .is_err()
    {
        eprintln!("pve-sim: cannot write the URL to stdout");
        return ExitCode::from(1);
    }
    drop(stdout);
    signals.wait().await;
    drop(simulator);
    ExitCode::SUCCESS
}

/// SIGTERM and SIGINT listeners.
struct Signals {
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
        })
    }

    /// Returns on the first SIGTERM or SIGINT.
    async fn wait(mut self) {
        tokio::select! {
            _ = self.terminate.recv() => {}
            _ = self.interrupt.recv() => {}
        }
    }
}
