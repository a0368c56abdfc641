//! `orch type list|describe`.

use super::{CliError, CmdResult, Ctx};

/// `orch type` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Cmd {
    /// List model types from installed plugins.
    List,
    /// Describe one type: arguments, resources and methods with their schemas.
    Describe {
        /// Type name, e.g. proxmox/vm.
        name: String,
    },
}

/// Runs an `orch type` subcommand.
pub async fn exec(cmd: Cmd, ctx: &Ctx) -> CmdResult {
    let repo = ctx.repo()?;
    let registry = ctx.registry(&repo).await?;
    for p in registry.problems() {
        ctx.printer.warn(p);
    }
    match cmd {
        Cmd::List => {
            let list = list(&registry);
            ctx.printer.result(&list, || {
                registry
                    .types()
                    .map(|t| {
                        format!(
                            "{:<24} {:<14} {}",
                            t.description.name, t.description.version, t.description.description
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
            Ok(0)
        }
        Cmd::Describe { name } => {
            let t = registry.get(&name).map_err(CliError::usage)?;
            let d = &t.description;
            let value = describe(&registry, &name)?;
            ctx.printer.result(&value, || {
                let mut out = format!(
                    "{} {} — {}\nplugin {} {}\n",
                    d.name,
                    d.version,
                    d.description,
                    t.plugin.manifest.id,
                    t.plugin.manifest.version
                );
                out.push_str(&format!("globalArguments: {}\n", d.global_arguments_schema));
                out.push_str("resources:\n");
                for r in &d.resources {
                    out.push_str(&format!("  {:<16} {}\n", r.name, r.description));
                }
                out.push_str("methods:\n");
                for m in &d.methods {
                    let flag = if m.destructive { " (destructive)" } else { "" };
                    out.push_str(&format!(
                        "  {:<16} {:<7} {}{flag}\n",
                        m.name, m.kind, m.description
                    ));
                }
                out
            });
            Ok(0)
        }
    }
}

/// `orch type list --json`: every installed type.
pub(crate) fn list(registry: &crate::runtime::PluginRegistry) -> Vec<serde_json::Value> {
    registry
        .types()
        .map(|t| {
            serde_json::json!({
                "name": t.description.name,
                "version": t.description.version,
                "description": t.description.description,
                "plugin": t.plugin.manifest.id,
            })
        })
        .collect()
}

/// `orch type describe --json`: one type with its plugin.
pub(crate) fn describe(
    registry: &crate::runtime::PluginRegistry,
    name: &str,
) -> Result<serde_json::Value, CliError> {
    let t = registry.get(name).map_err(CliError::usage)?;
    Ok(serde_json::json!({
        "plugin": {
            "id": t.plugin.manifest.id,
            "version": t.plugin.manifest.version,
            "api": t.plugin.manifest.api,
            "dir": t.plugin.dir,
            "limits": t.plugin.limits.values,
        },
        "type": t.description.as_ref(),
    }))
}
