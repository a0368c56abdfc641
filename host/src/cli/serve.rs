//! `orch serve`: the HTTP API over this repository (see [`crate::serve`]).

use super::{CliError, CmdResult, Ctx};
use crate::serve::ServeOptions;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Arguments of `orch serve`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The address to listen on (IP:PORT; port 0 picks a free one, printed on stderr).
    #[arg(long, default_value = "127.0.0.1:7420", value_name = "IP:PORT")]
    listen: String,
    /// PEM certificate chain: serve HTTPS (with --tls-key).
    #[arg(long, requires = "tls_key", value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert", value_name = "FILE")]
    tls_key: Option<PathBuf>,
    /// Allow plain HTTP on an address other than loopback (tokens then cross the network in
    /// clear text).
    #[arg(long)]
    insecure_http: bool,
    /// After SIGTERM/SIGINT, how long runs in flight may go on before they are cancelled.
    #[arg(long, default_value = "30s", value_name = "DURATION")]
    grace: String,
    /// Fire no schedules (`GET /api/v1/schedules` still lists them): another server or
    /// `orch triggers run-due` fires them. Webhooks are served either way.
    #[arg(long)]
    no_schedules: bool,
}

/// Loads the repository and its plugins once, then serves until SIGTERM/SIGINT.
pub async fn exec(args: Args, ctx: &Ctx) -> CmdResult {
    let listen: SocketAddr = args.listen.parse().map_err(|_| {
        CliError::usage(format!(
            "--listen {:?}: give IP:PORT, e.g. 127.0.0.1:7420 or 0.0.0.0:7420",
            args.listen
        ))
    })?;
    let tls = args.tls_cert.zip(args.tls_key);
    if !listen.ip().is_loopback() && tls.is_none() && !args.insecure_http {
        return Err(CliError::usage(format!(
            "--listen {listen} is reachable from other machines, and bearer tokens would cross the network in clear text: \
             give --tls-cert FILE --tls-key FILE, or --insecure-http if the network is trusted"
        )));
    }
    let grace = crate::repo::parse_duration(&args.grace)
        .or_else(|| (args.grace == "0" || args.grace == "0s").then_some(0))
        .map(Duration::from_secs)
        .ok_or_else(|| {
            CliError::usage(format!(
                "--grace {:?}: give a duration such as 30s, 5m or 0s",
                args.grace
            ))
        })?;
    let repo = ctx.repo()?;
    let registry = ctx.registry_with_notices(&repo).await?;
    for p in registry.problems() {
        ctx.printer.warn(p);
    }
    let served = Ctx::preloaded(ctx.printer.clone(), repo, registry);
    let env = served.run_env().await?;
    let options = ServeOptions {
        listen,
        tls,
        grace,
        json: ctx.printer.is_json(),
        schedules: !args.no_schedules,
    };
    crate::serve::serve(options, served, env)
        .await
        .map_err(CliError::failed)?;
    Ok(0)
}
