//! `terraria/server`: control a Terraria server that runs in tmux inside a Docker container on
//! an SSH host (`docker exec <container> tmux …`).
//!
//! Console scripts and the parsing of `playing` live in [`console`]; the methods in [`server`],
//! written against [`remote::Connector`] so they are unit-tested natively with a fake session.
//! This file only wires them to the host (SSH import, resources, logs).
//!
//! The metrics textfile and player log line are the SDK's (`orch_plugin_sdk::game`), shared with
//! `minecraft/server`; Terraria adds a `game` label.

mod console;
mod metrics;
mod server;

use orch_plugin_sdk::clock;
// Public because each SSH plugin uses a different part of the shared module (and of its test
// fake); private, the unused parts would trip the dead-code lint.
pub use orch_plugin_sdk::remote;

use orch_plugin_sdk::{Ctx, MethodKind, ModelType, Plugin, Result, Value, json};
use remote::HostSsh;
use serde::Serialize;
use server::{CollectArgs, MetricsResource, NoArgs, Server, ServerGlobals, StatusOutput, WarnArgs};

/// CalVer of the model type.
const VERSION: &str = "2026.11.30.1";

fn server(ctx: &Ctx<ServerGlobals>) -> Server<'_, HostSsh> {
    Server::new(&HostSsh, &ctx.globals, &ctx.model_name, &std::thread::sleep)
}

fn to_value(output: impl Serialize) -> Result<Value> {
    serde_json::to_value(output)
        .map_err(|e| orch_plugin_sdk::error::failed(format!("cannot serialize the output: {e}")))
}

/// A dry run checks the definition and says what would be sent, without connecting.
fn dry_run(ctx: &Ctx<ServerGlobals>, would: &str) -> Result<Value> {
    let place = ctx.globals.place()?;
    let settings = ctx.globals.ssh();
    settings.target(&ctx.model_name)?;
    Ok(json!({
        "dryRun": true,
        "target": settings.describe(),
        "container": place.container,
        "session": place.session,
        "would": would,
    }))
}

fn warn_shutdown(ctx: &Ctx<ServerGlobals>, args: WarnArgs) -> Result<Value> {
    if ctx.dry_run {
        return dry_run(ctx, "say the shutdown warning, then wait `seconds`");
    }
    let out = server(ctx).warn(&args)?;
    if !out.warned {
        ctx.info("the server is not running; nobody to warn");
    }
    to_value(out)
}

fn status(ctx: &Ctx<ServerGlobals>, _: NoArgs) -> Result<Value> {
    if ctx.dry_run {
        return dry_run(ctx, "send `playing` and read the answer from the pane");
    }
    let session = ctx.globals.session()?.to_string();
    let out: StatusOutput = server(ctx).status()?;
    ctx.info(match &out.reason {
        None => format!("{}: {} players online", out.server, out.players),
        Some(reason) => format!("{}: {reason}", out.server),
    });
    ctx.write_resource("status", &session, &out)?;
    to_value(out)
}

fn collect_metrics(ctx: &Ctx<ServerGlobals>, args: CollectArgs) -> Result<Value> {
    if ctx.dry_run {
        return dry_run(ctx, "read the player count and write the metrics files");
    }
    let session = ctx.globals.session()?.to_string();
    let resource: MetricsResource = server(ctx).collect(&args, &clock::now_rfc3339())?;
    ctx.write_resource("metrics", &session, &resource)?;
    to_value(resource)
}

/// The plugin: the `terraria/server` model type.
struct TerrariaPlugin;

impl Plugin for TerrariaPlugin {
    fn types() -> Vec<ModelType> {
        vec![
            ModelType::new::<ServerGlobals>(
                "terraria/server",
                VERSION,
                "A Terraria server in tmux inside a Docker container on an SSH host: warn, players, metrics",
            )
            .resource::<StatusOutput>(
                "status",
                "Players online from status, one instance per tmux session",
            )
            .resource::<MetricsResource>(
                "metrics",
                "Player metrics from collectMetrics, one instance per tmux session",
            )
            .method(
                "warnShutdown",
                MethodKind::Action,
                "Say a shutdown warning in the console, then wait `seconds` (default 0)",
                warn_shutdown,
            )
            .method(
                "status",
                MethodKind::Read,
                "Players online from the console's answer to `playing`: online, players, names; \
                 a VM without IP is {online: false, reason: \"offline\"}; records resource \
                 status/<tmuxSession>",
                status,
            )
            .method(
                "collectMetrics",
                MethodKind::Action,
                "Status, then write node_exporter's textfile and the JSON player log on the host, \
                 and record resource metrics/<tmuxSession>",
                collect_metrics,
            ),
        ]
    }
}

orch_plugin_sdk::export_plugin!(TerrariaPlugin);

#[cfg(test)]
mod schema_tests {
    use super::*;

    #[test]
    fn terraria_server_is_described_with_its_methods() {
        let types: Vec<_> = TerrariaPlugin::types()
            .iter()
            .map(ModelType::info)
            .collect();
        assert_eq!(types[0].name, "terraria/server");
        let methods: Vec<_> = types[0].methods.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(methods, ["warnShutdown", "status", "collectMetrics"]);
        let g: Value = serde_json::from_str(&types[0].global_arguments_schema).unwrap();
        for key in [
            "sshHost",
            "sshPort",
            "sshUser",
            "sshKey",
            "container",
            "tmuxSession",
            "dockerBin",
            "serverName",
        ] {
            assert!(g["properties"][key].is_object(), "{key}");
        }
    }
}
