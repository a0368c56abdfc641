//! `grafana-sim`: runs the Grafana API simulator until interrupted.

use clap::Parser;
use grafana_sim::{SimConfig, Simulator};

/// A Grafana HTTP API simulator (dashboards, alerting provisioning, annotations) on 127.0.0.1.
#[derive(Parser)]
struct Args {
    /// The port to listen on (0: a free one, printed at start).
    #[arg(long, default_value_t = 3000)]
    port: u16,
    /// The service-account token to accept (Authorization: Bearer TOKEN).
    #[arg(
        long,
        env = "GRAFANA_SIM_TOKEN",
        default_value = "glsa_simulator_token"
    )]
    token: String,
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let sim = Simulator::start_blocking(SimConfig {
        token: args.token,
        port: args.port,
    })?;
    println!("grafana-sim listening on {}", sim.url());
    loop {
        std::thread::park();
    }
}
