//! The command line: one file per command group, each with one `exec` entry point.
//!
//! Exit codes: 0 ok, 1 the run or operation failed, 2 usage or validation error.

mod chat;
mod check;
pub mod context;
pub(crate) mod data;
mod datastore;
pub(crate) mod eval;
mod evaluate;
mod graph;
mod import;
mod init;
mod inputs;
mod mcp;
pub(crate) mod model;
pub(crate) mod plan;
mod plugin;
mod run;
pub(crate) mod runs;
mod serve;
mod ssh;
mod token;
mod triggers;
pub(crate) mod type_;
mod vault;
mod worker;
pub(crate) mod workflow;

use crate::output::{ColorChoice, Printer};
use clap::{Parser, Subcommand};
use context::Ctx;
use std::path::PathBuf;

/// An error on its way to the user, with the exit code it means.
#[derive(Debug)]
pub struct CliError {
    /// 1 = failed, 2 = usage or validation.
    pub code: i32,
    /// The message (already names file, line and field where there is one).
    pub message: String,
}

impl CliError {
    /// A usage or validation error (exit 2).
    pub fn usage(message: impl std::fmt::Display) -> Self {
        CliError {
            code: 2,
            message: message.to_string(),
        }
    }
    /// An operation that failed (exit 1).
    pub fn failed(message: impl std::fmt::Display) -> Self {
        CliError {
            code: 1,
            message: message.to_string(),
        }
    }
}

/// Result of a command: the exit code to use on success paths that still fail (a failed run).
pub type CmdResult = Result<i32, CliError>;

/// orch: automate infrastructure with sandboxed WebAssembly model plugins.
#[derive(Debug, Parser)]
#[command(name = "orch", version, about, long_about = None)]
pub struct Cli {
    /// The repository (default: the nearest directory upward holding orch.yaml).
    #[arg(long, global = true, env = "ORCH_REPO")]
    repo: Option<PathBuf>,
    /// Print machine-readable JSON on stdout.
    #[arg(long, global = true)]
    json: bool,
    /// More output (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Never colour output.
    #[arg(long, global = true)]
    no_color: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create an orch repository here (or in DIR).
    Init(init::Args),
    /// Run a workflow.
    Run(run::Args),
    /// Check the whole repository (for CI): every file, workflow and plugin; exit 2 on any problem.
    Check(check::Args),
    /// List, show and validate workflows.
    #[command(subcommand)]
    Workflow(workflow::Cmd),
    /// List, show and run models (definitions).
    #[command(subcommand)]
    Model(model::Cmd),
    /// The order in which models are converged, from the models their definitions read.
    Graph(graph::Args),
    /// What converging the declarative models would change, in converge order (changes nothing).
    Plan(plan::PlanArgs),
    /// Converge the declarative models: show the plan, confirm, then make the changes.
    Apply(plan::ApplyArgs),
    /// List and describe model types from installed plugins.
    #[command(subcommand, name = "type")]
    Type(type_::Cmd),
    /// Inspect versioned resource data.
    #[command(subcommand)]
    Data(data::Cmd),
    /// Inspect recorded runs.
    #[command(subcommand)]
    Runs(runs::Cmd),
    /// The PostgreSQL datastore: apply schema migrations, show the schema version.
    #[command(subcommand)]
    Datastore(datastore::Cmd),
    /// Evaluate a CEL expression against the current data.
    Eval(eval::Args),
    /// Store and list secrets in the local encrypted vault.
    #[command(subcommand)]
    Vault(vault::Cmd),
    /// Check plugin bundles (for plugin authors' CI).
    #[command(subcommand)]
    Plugin(plugin::Cmd),
    /// Manage SSH host keys trusted by this repository.
    #[command(subcommand)]
    Ssh(ssh::Cmd),
    /// Bring another tool's repository over (`orch import swamp <dir>`).
    #[command(subcommand)]
    Import(import::Cmd),
    /// Workflow schedules and webhooks: list them, fire the schedules due now.
    #[command(subcommand)]
    Triggers(triggers::Cmd),
    /// Bearer tokens for `orch serve` (create, list, revoke).
    #[command(subcommand)]
    Token(token::Cmd),
    /// Serve the HTTP API (runs, data, live events) until SIGTERM; see `orch token` for access.
    Serve(serve::Args),
    /// Chat-ops: register the Discord slash commands (`orch serve` answers them).
    #[command(subcommand)]
    Chat(chat::Cmd),
    /// Serve the Model Context Protocol on stdin/stdout for AI agents (tools: orch's commands).
    Mcp(mcp::Args),
    /// Take steps with `runsOn` from the PostgreSQL queue and run them; `orch worker list`.
    Worker(worker::Args),
}

impl Command {
    /// For a command that runs plugins, how many plugin calls its instance pool holds at once
    /// (None: the runtime's default).
    fn plugin_calls(&self) -> Option<u32> {
        match self {
            Command::Run(_) | Command::Plan(_) | Command::Apply(_) => {
                Some(crate::runtime::ONE_RUN_CONCURRENT_CALLS)
            }
            Command::Worker(_) => Some(crate::runtime::MAX_CONCURRENT_CALLS),
            _ => None,
        }
    }
}

/// Runs the CLI and returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    init_tracing(cli.verbose);
    // A panic's message comes after the progress that led to it.
    let panic_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        crate::output::progress::flush_unless_busy();
        panic_hook(info);
    }));
    if let Some(calls) = cli.command.plugin_calls() {
        crate::runtime::size_pool(calls);
    }
    let color = if cli.no_color {
        ColorChoice::Never
    } else {
        ColorChoice::Auto
    };
    let printer = Printer::new(cli.json, color, cli.verbose);
    let ctx = Ctx::new(printer.clone(), cli.repo.clone());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            printer.error(&format!("cannot start the async runtime: {e}"), 1);
            return 1;
        }
    };
    let result = runtime.block_on(dispatch(cli.command, &ctx));
    // The command is done and has closed what it opened: the worker threads are left to the
    // process's exit rather than joined one by one.
    runtime.shutdown_background();
    crate::output::progress::flush();
    match result {
        Ok(code) => code,
        Err(e) => {
            printer.error(&e.message, e.code);
            e.code
        }
    }
}

async fn dispatch(command: Command, ctx: &Ctx) -> CmdResult {
    match command {
        Command::Init(a) => init::exec(a, ctx),
        Command::Run(a) => run::exec(a, ctx).await,
        Command::Check(a) => check::exec(a, ctx).await,
        Command::Workflow(c) => workflow::exec(c, ctx).await,
        Command::Model(c) => model::exec(c, ctx).await,
        Command::Graph(a) => graph::exec(a, ctx),
        Command::Plan(a) => plan::plan(a, ctx).await,
        Command::Apply(a) => plan::apply(a, ctx).await,
        Command::Type(c) => type_::exec(c, ctx).await,
        Command::Data(c) => data::exec(c, ctx).await,
        Command::Runs(c) => runs::exec(c, ctx).await,
        Command::Datastore(c) => datastore::exec(c, ctx),
        Command::Eval(a) => eval::exec(a, ctx),
        Command::Vault(c) => vault::exec(c, ctx),
        Command::Plugin(c) => plugin::exec(c, ctx).await,
        Command::Ssh(c) => ssh::exec(c, ctx).await,
        Command::Import(c) => import::exec(c, ctx),
        Command::Triggers(c) => triggers::exec(c, ctx).await,
        Command::Token(c) => token::exec(c, ctx),
        Command::Serve(a) => serve::exec(a, ctx).await,
        Command::Chat(c) => chat::exec(c, ctx).await,
        Command::Mcp(a) => mcp::exec(a, ctx).await,
        Command::Worker(a) => worker::exec(a, ctx).await,
    }
}

/// Crates whose debug and trace output is the plugin compiler's own work, with the level they are
/// held at: `ORCH_LOG=trace` at a plugin's first compile wrote gigabytes a minute from them and
/// looked like a hang.
const COMPILER_TARGETS: &[(&str, &str)] = &[
    ("wasmtime", "info"),
    ("cranelift", "warn"),
    ("regalloc2", "warn"),
];

/// The filter for `ORCH_LOG=spec`: the spec, with the compiler's crates held back unless the
/// spec names them itself.
fn log_filter(spec: &str) -> String {
    let mut filter = spec.trim().to_string();
    for (target, level) in COMPILER_TARGETS {
        if !spec.contains(target) {
            if !filter.is_empty() {
                filter.push(',');
            }
            filter.push_str(&format!("{target}={level}"));
        }
    }
    filter
}

fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "warn,orch=info",
        _ => "debug",
    };
    let filter = std::env::var("ORCH_LOG")
        .ok()
        .and_then(|spec| tracing_subscriber::EnvFilter::try_new(log_filter(&spec)).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Progress held for a moment is written first, so a log line never comes before it.
        .with_writer(|| {
            crate::output::progress::flush();
            std::io::stderr()
        })
        .without_time()
        .with_target(false)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::log_filter;

    #[test]
    fn orch_log_keeps_the_compiler_quiet_unless_named() {
        assert_eq!(
            log_filter("trace"),
            "trace,wasmtime=info,cranelift=warn,regalloc2=warn"
        );
        assert_eq!(
            log_filter("orch=debug,cranelift_codegen=trace"),
            "orch=debug,cranelift_codegen=trace,wasmtime=info,regalloc2=warn"
        );
        assert_eq!(
            log_filter(" wasmtime=trace "),
            "wasmtime=trace,cranelift=warn,regalloc2=warn"
        );
    }
}
