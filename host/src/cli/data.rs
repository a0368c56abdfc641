//! `orch data list|get|versions`.

use super::{CliError, CmdResult, Ctx};
use crate::store::{ResourceKey, ResourceStore};

/// `orch data` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Cmd {
    /// List resources (of one model, or all); retired ones only with --all.
    List {
        /// Model name.
        model: Option<String>,
        /// Also list resources whose latest version retired them (marked `retired`).
        #[arg(long)]
        all: bool,
    },
    /// Show a resource's latest version (or --version N).
    Get {
        /// Model name.
        model: String,
        /// Resource (instance) name.
        name: String,
        /// A specific version.
        #[arg(long)]
        version: Option<u64>,
        /// The resource spec, when the name exists under several.
        #[arg(long)]
        spec: Option<String>,
    },
    /// List every version of a resource.
    Versions {
        /// Model name.
        model: String,
        /// Resource (instance) name.
        name: String,
        /// The resource spec, when the name exists under several.
        #[arg(long)]
        spec: Option<String>,
    },
}

fn find_spec(
    store: &ResourceStore,
    model: &str,
    name: &str,
    spec: Option<String>,
) -> Result<String, CliError> {
    if let Some(s) = spec {
        return Ok(s);
    }
    let keys: Vec<ResourceKey> = store.find_by_name(model, name).map_err(CliError::failed)?;
    match keys.len() {
        0 => Err(CliError::failed(format!(
            "model `{model}` has no resource named `{name}` (see `orch data list {model}`)"
        ))),
        1 => Ok(keys[0].spec.clone()),
        _ => Err(CliError::usage(format!(
            "`{name}` exists under several specs of `{model}` ({}); pass --spec",
            keys.iter()
                .map(|k| k.spec.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// Runs an `orch data` subcommand.
pub fn exec(cmd: Cmd, ctx: &Ctx) -> CmdResult {
    let repo = ctx.repo()?;
    let store = ctx.store(&repo);
    match cmd {
        Cmd::List { model, all } => {
            if let Some(m) = &model {
                repo.model(m).map_err(CliError::usage)?;
            }
            let mut list = store.list(model.as_deref()).map_err(CliError::failed)?;
            if !all {
                list.retain(|r| !r.retired);
            }
            let value: Vec<serde_json::Value> = list
                .iter()
                .map(|r| serde_json::json!({"model": r.model, "spec": r.spec, "name": r.name, "latest": r.latest, "writtenAt": r.written_at, "retired": r.retired}))
                .collect();
            ctx.printer.result(&value, || {
                list.iter()
                    .map(|r| {
                        let line = format!(
                            "{:<16} {:<10} {:<24} v{:<4} {}",
                            r.model, r.spec, r.name, r.latest, r.written_at
                        );
                        if r.retired {
                            format!("{line}  retired")
                        } else {
                            line
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
            Ok(0)
        }
        Cmd::Get {
            model,
            name,
            version,
            spec,
        } => {
            let spec = find_spec(&store, &model, &name, spec)?;
            let found = match version {
                Some(v) => store.version(&model, &spec, &name, v),
                None => store.latest(&model, &spec, &name),
            }
            .map_err(CliError::failed)?;
            let Some(rv) = found else {
                return Err(CliError::failed(format!(
                    "{model}/{spec}/{name} has no version {}",
                    version.map(|v| v.to_string()).unwrap_or_default()
                )));
            };
            ctx.printer.result(&rv, || {
                serde_json::to_string_pretty(&rv).unwrap_or_default()
            });
            Ok(0)
        }
        Cmd::Versions { model, name, spec } => {
            let spec = find_spec(&store, &model, &name, spec)?;
            let versions = store
                .versions(&model, &spec, &name)
                .map_err(CliError::failed)?;
            ctx.printer.result(&versions, || {
                versions
                    .iter()
                    .map(|v| {
                        let what = if v.retired {
                            "retired (the plugin saw it gone)".to_string()
                        } else {
                            v.attributes.to_string()
                        };
                        format!(
                            "v{:<4} {}  run {}  step {}  {what}",
                            v.version, v.provenance.time, v.provenance.run_id, v.provenance.step,
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
            Ok(0)
        }
    }
}
