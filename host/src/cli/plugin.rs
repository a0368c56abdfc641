//! `orch plugin new | build | validate | install | list`: the plugin author's loop.

use super::{CliError, CmdResult, Ctx};
use crate::plugin_dev::{self, BuildOptions, ScaffoldOptions};
use crate::runtime::PluginRuntime;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// `orch plugin` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Cmd {
    /// Create a plugin crate in DIR: one model type with a read and an action method, a
    /// resource, a unit test and a README. DIR must be empty or absent.
    New {
        /// The new plugin's directory; its name becomes the plugin id.
        dir: PathBuf,
        /// Language: `rust` (or `ts`, when this build supports it).
        #[arg(long, default_value = "rust")]
        lang: String,
        /// The model type to generate, `namespace/name` (default `example/<dir name>`).
        #[arg(long = "type")]
        type_name: Option<String>,
        /// The orch-plugin-sdk directory to depend on (default: $ORCH_SDK_PATH, else the
        /// plugins/sdk of the checkout orch was built from). Rust only (refused with --lang ts:
        /// the TypeScript SDK is built into orch).
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
    /// Compile the plugin in DIR (default: here) and pack its bundle into DIR/dist/<id>/.
    Build {
        /// The plugin's directory (Cargo.toml + bundle.toml).
        dir: Option<PathBuf>,
    },
    /// Check a bundle directory or a .wasm: manifest, hash, imports and describe() schemas, plus
    /// a lint of the schemas (advice, printed as `! lint`; it does not change the exit code).
    /// Exits 0 when valid, 2 when not; `--json` prints the full report.
    Validate {
        /// A bundle directory (plugin.toml + wasm) or a component .wasm file.
        path: PathBuf,
    },
    /// Validate a bundle (a directory or a .tar of one) and install it into the repository's
    /// plugins/<id>/. Nothing is installed when it is refused.
    Install {
        /// The bundle directory or .tar archive.
        source: PathBuf,
        /// Replace an installed bundle with the same id.
        #[arg(long)]
        replace: bool,
    },
    /// List installed bundles with their version, API version and model types.
    List,
}

/// Runs an `orch plugin` subcommand.
pub async fn exec(cmd: Cmd, ctx: &Ctx) -> CmdResult {
    match cmd {
        Cmd::New {
            dir,
            lang,
            type_name,
            sdk,
        } => new(dir, &lang, type_name, sdk, ctx),
        Cmd::Build { dir } => build(dir, ctx),
        Cmd::Validate { path } => validate(path, ctx).await,
        Cmd::Install { source, replace } => install(source, replace, ctx).await,
        Cmd::List => list(ctx).await,
    }
}

fn new(
    dir: PathBuf,
    lang: &str,
    type_name: Option<String>,
    sdk: Option<PathBuf>,
    ctx: &Ctx,
) -> CmdResult {
    let is_ts = matches!(lang, "ts" | "typescript");
    if is_ts && sdk.is_some() {
        return Err(CliError::usage(
            "--sdk names the Rust SDK and does not apply to --lang ts (the TypeScript SDK is \
             built into orch); drop --sdk",
        ));
    }
    let options = ScaffoldOptions {
        dir,
        type_name,
        sdk,
    };
    let made = match lang {
        "rust" | "rs" => plugin_dev::scaffold_rust_plugin(&options),
        "ts" | "typescript" => plugin_dev::typescript::scaffold_typescript_plugin(&options),
        other => {
            return Err(CliError::usage(format!(
                "--lang `{other}`: expected `rust` or `ts`"
            )));
        }
    }
    .map_err(CliError::usage)?;
    let dir = &options.dir;
    ctx.printer.result(
        &serde_json::json!({
            "dir": dir, "id": made.id, "type": made.type_name, "sdk": made.sdk,
            "files": made.files,
        }),
        || {
            format!(
                "Created plugin `{}` providing {} in {}\n  next: cd {} && {}orch plugin build",
                made.id,
                made.type_name,
                dir.display(),
                dir.display(),
                if made.sdk.is_some() {
                    "cargo test && "
                } else {
                    ""
                }
            )
        },
    );
    Ok(0)
}

fn build(dir: Option<PathBuf>, ctx: &Ctx) -> CmdResult {
    let dir = match dir {
        Some(d) => d,
        None => std::env::current_dir()
            .map_err(|e| CliError::failed(format!("cannot read the current directory: {e}")))?,
    };
    let bundle = plugin_dev::build_plugin(&BuildOptions { dir }).map_err(|e| match e {
        // The compiler failed (or is missing): exit 1, like a failed run; a bad plugin
        // directory or template is a validation error: exit 2.
        plugin_dev::BuildError::CargoFailed { .. } | plugin_dev::BuildError::NoCargo(_) => {
            CliError::failed(e)
        }
        plugin_dev::BuildError::TypeScript(ref ts)
            if !matches!(
                **ts,
                plugin_dev::typescript::TsBuildError::Pack(_)
                    | plugin_dev::typescript::TsBuildError::NotAPlugin { .. }
            ) =>
        {
            CliError::failed(e)
        }
        _ => CliError::usage(e),
    })?;
    ctx.printer
        .result(&serde_json::json!({ "bundle": bundle }), || {
            format!(
                "Built bundle {}\n  next: orch plugin install {}",
                bundle.display(),
                bundle.display()
            )
        });
    Ok(0)
}

async fn validate(path: PathBuf, ctx: &Ctx) -> CmdResult {
    if !path.exists() {
        return Err(CliError::usage(format!(
            "{}: no such file or directory",
            path.display()
        )));
    }
    let runtime = PluginRuntime::new(None).map_err(CliError::failed)?;
    let report = crate::runtime::validate::validate(&runtime, &path).await;
    ctx.printer.result(&report, || {
        let mut out = String::new();
        for c in &report.checks {
            let mark = if c.ok { "✓" } else { "✗" };
            out.push_str(&format!("{mark} {:<10} {}\n", c.name, c.message));
        }
        for l in &report.lints {
            out.push_str(&format!(
                "! lint       {} {}: {}\n",
                l.type_name, l.place, l.message
            ));
        }
        out.push_str(if report.ok { "valid\n" } else { "invalid\n" });
        out
    });
    Ok(if report.ok { 0 } else { 2 })
}

async fn install(source: PathBuf, replace: bool, ctx: &Ctx) -> CmdResult {
    let repo = ctx.load_repo()?;
    let Some(plugins_dir) = repo.plugin_dirs().into_iter().next() else {
        return Err(CliError::usage(format!(
            "{}: pluginPath is empty; add `pluginPath: [plugins]`",
            repo.root.join("orch.yaml").display()
        )));
    };
    let runtime = PluginRuntime::new(None).map_err(CliError::failed)?;
    let installed = plugin_dev::install_bundle(&runtime, &source, &plugins_dir, replace)
        .await
        .map_err(|e| match e {
            plugin_dev::InstallError::Io { .. } => CliError::failed(e),
            _ => CliError::usage(e),
        })?;
    ctx.printer.result(&installed, || {
        format!(
            "{} plugin `{}` {} (orch:plugin {}) into {}\n  types: {}",
            if installed.replaced {
                "Replaced"
            } else {
                "Installed"
            },
            installed.id,
            installed.version,
            installed.api,
            installed.dir.display(),
            installed.types.join(", ")
        )
    });
    Ok(0)
}

async fn list(ctx: &Ctx) -> CmdResult {
    let repo = ctx.repo()?;
    let registry = ctx.registry(&repo).await?;
    for p in registry.problems() {
        ctx.printer.warn(p);
    }
    let mut types: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for t in registry.types() {
        types
            .entry(t.plugin.manifest.id.as_str())
            .or_default()
            .push(t.description.name.as_str());
    }
    let rows: Vec<serde_json::Value> = registry
        .plugins()
        .iter()
        .map(|p| {
            serde_json::json!({
                "id": p.manifest.id,
                "version": p.manifest.version,
                "api": p.manifest.api,
                "dir": p.dir,
                "description": p.manifest.description,
                "types": types.get(p.manifest.id.as_str()).cloned().unwrap_or_default(),
            })
        })
        .collect();
    ctx.printer.result(&rows, || {
        if rows.is_empty() {
            return "no plugins installed (orch plugin install <bundle>)".to_string();
        }
        let mut out = format!("{:<16} {:<10} {:<6} TYPES\n", "ID", "VERSION", "API");
        for p in registry.plugins() {
            let id = p.manifest.id.as_str();
            out.push_str(&format!(
                "{:<16} {:<10} {:<6} {}\n",
                id,
                p.manifest.version,
                p.manifest.api,
                types.get(id).map(|t| t.join(", ")).unwrap_or_default()
            ));
        }
        out.trim_end().to_string()
    });
    Ok(0)
}
