//! `minecraft/server`: control a Minecraft server that runs in tmux on an SSH host;
//! `minecraft/installer`: put a server pack on a host (Java, zip, eula, server.properties).
//!
//! Console commands, name checks and log parsing live in [`console`]; the methods in
//! [`server`], written against [`remote::Connector`] so they are unit-tested natively with a
//! fake session. This file only wires them to the host (SSH import, resources, logs).

mod console;
mod installer;
mod metrics;
mod server;

use orch_plugin_sdk::clock;
// Public because each SSH plugin uses a different part of the shared module (and of its test
// fake); private, the unused parts would trip the dead-code lint.
pub use orch_plugin_sdk::remote;

use orch_plugin_sdk::{Ctx, MethodKind, ModelType, Plugin, Result, Value, json};
use remote::HostSsh;
use serde::Serialize;
use server::{
    CollectArgs, MetricsResource, NoArgs, PlayerArgs, SayArgs, Server, ServerGlobals, StopArgs,
    WarnArgs,
};

/// CalVer of the model type.
const VERSION: &str = "2026.11.21.1";

fn server(ctx: &Ctx<ServerGlobals>) -> Server<'_, HostSsh> {
    Server::new(&HostSsh, &ctx.globals, &ctx.model_name, &std::thread::sleep)
}

fn to_value(output: impl Serialize) -> Result<Value> {
    serde_json::to_value(output)
        .map_err(|e| orch_plugin_sdk::error::failed(format!("cannot serialize the output: {e}")))
}

/// A dry run checks the definition and says what would be sent, without connecting.
fn dry_run(ctx: &Ctx<ServerGlobals>, would: &str) -> Result<Value> {
    let session = ctx.globals.session()?;
    let settings = ctx.globals.ssh();
    settings.target(&ctx.model_name)?;
    Ok(json!({
        "dryRun": true,
        "target": settings.describe(),
        "session": session,
        "would": would,
    }))
}

fn start(ctx: &Ctx<ServerGlobals>, _: NoArgs) -> Result<Value> {
    if ctx.dry_run {
        return dry_run(ctx, "start the tmux session unless it runs");
    }
    let out = server(ctx).start()?;
    ctx.info(if out.started {
        format!(
            "started `{}` in tmux session {}",
            ctx.globals.label(),
            out.session
        )
    } else {
        format!("tmux session {} already runs; nothing to do", out.session)
    });
    to_value(out)
}

fn stop(ctx: &Ctx<ServerGlobals>, args: StopArgs) -> Result<Value> {
    if ctx.dry_run {
        return dry_run(ctx, "send `stop` and wait for the session to end");
    }
    let out = server(ctx).stop(&args)?;
    ctx.info(match (out.was_running, out.killed) {
        (false, _) => format!("tmux session {} was not running", out.session),
        (true, false) => format!("{} stopped after {} s", out.session, out.waited_seconds),
        (true, true) => format!("{} killed after {} s", out.session, out.waited_seconds),
    });
    to_value(out)
}

fn warn_shutdown(ctx: &Ctx<ServerGlobals>, args: WarnArgs) -> Result<Value> {
    if ctx.dry_run {
        let messages: Vec<_> = server::countdown(args.seconds)
            .into_iter()
            .map(|(left, _)| server::warning_text(left))
            .collect();
        let mut plan = dry_run(ctx, "say a shutdown countdown")?;
        plan["messages"] = json!(messages);
        return Ok(plan);
    }
    let out = server(ctx).warn(&args)?;
    if !out.warned {
        ctx.info("the server is not running; nobody to warn");
    }
    to_value(out)
}

fn status(ctx: &Ctx<ServerGlobals>, _: NoArgs) -> Result<Value> {
    if ctx.dry_run {
        return dry_run(ctx, "send `list` and read the answer from the log");
    }
    let out = server(ctx).status()?;
    ctx.info(match &out.reason {
        None => format!(
            "{}: {} of {} players online",
            ctx.globals.label(),
            out.players,
            out.max_players.unwrap_or_default()
        ),
        Some(reason) => format!("{}: {reason}", ctx.globals.label()),
    });
    to_value(out)
}

fn say(ctx: &Ctx<ServerGlobals>, args: SayArgs) -> Result<Value> {
    if ctx.dry_run {
        return dry_run(ctx, "say the message");
    }
    to_value(server(ctx).say(&args)?)
}

fn op(ctx: &Ctx<ServerGlobals>, args: PlayerArgs) -> Result<Value> {
    if ctx.dry_run {
        return dry_run(ctx, "op the player");
    }
    to_value(server(ctx).op(&args, true)?)
}

fn deop(ctx: &Ctx<ServerGlobals>, args: PlayerArgs) -> Result<Value> {
    if ctx.dry_run {
        return dry_run(ctx, "deop the player");
    }
    to_value(server(ctx).op(&args, false)?)
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

fn installer_value<A>(
    ctx: &Ctx<installer::InstallerGlobals>,
    args: A,
    run: impl Fn(&HostSsh, &installer::InstallerGlobals, &str, &A) -> Result<installer::InstallOutput>,
) -> Result<Value> {
    if ctx.dry_run {
        let settings = ctx.globals.ssh();
        settings.target(&ctx.model_name)?;
        return Ok(json!({ "dryRun": true, "target": settings.describe() }));
    }
    let out = run(&HostSsh, &ctx.globals, &ctx.model_name, &args)?;
    for command in &out.commands {
        ctx.info(format!("ran `{command}`"));
    }
    to_value(out)
}

fn install_deps(ctx: &Ctx<installer::InstallerGlobals>, _: NoArgs) -> Result<Value> {
    installer_value(ctx, (), |c, g, m, _| installer::install_deps(c, g, m))
}

fn upload(ctx: &Ctx<installer::InstallerGlobals>, args: installer::UploadArgs) -> Result<Value> {
    installer_value(ctx, args, installer::upload)
}

fn extract(ctx: &Ctx<installer::InstallerGlobals>, args: installer::ExtractArgs) -> Result<Value> {
    installer_value(ctx, args, installer::extract)
}

fn configure(
    ctx: &Ctx<installer::InstallerGlobals>,
    args: installer::ConfigureArgs,
) -> Result<Value> {
    installer_value(ctx, args, installer::configure)
}

/// The plugin: the `minecraft/server` and `minecraft/installer` model types.
struct MinecraftPlugin;

impl Plugin for MinecraftPlugin {
    fn types() -> Vec<ModelType> {
        vec![
            ModelType::new::<ServerGlobals>(
                "minecraft/server",
                VERSION,
                "A Minecraft server in a tmux session on an SSH host: start, stop, players, chat",
            )
            .resource::<MetricsResource>(
                "metrics",
                "Player metrics from collectMetrics, one instance per tmux session",
            )
            .method(
                "startMinecraftServer",
                MethodKind::Action,
                "Start startScript in serverDir in a detached tmux session, unless it already runs",
                start,
            )
            .method(
                "stopMinecraftServer",
                MethodKind::Action,
                "Send `stop` to the console and wait (bounded by timeoutSeconds) for the session to end",
                stop,
            )
            .method(
                "warnShutdown",
                MethodKind::Action,
                "Announce a shutdown countdown in chat over `seconds` and return at zero",
                warn_shutdown,
            )
            .method(
                "status",
                MethodKind::Read,
                "Players online from the console's answer to `list`: online, players, maxPlayers, \
                 names; a VM without IP is {online: false, reason: \"offline\"}",
                status,
            )
            .method("say", MethodKind::Action, "Broadcast a chat message", say)
            .method(
                "op",
                MethodKind::Action,
                "Make a player an operator",
                op,
            )
            .method(
                "deop",
                MethodKind::Action,
                "Take operator status from a player",
                deop,
            )
            .method(
                "collectMetrics",
                MethodKind::Action,
                "Status, then write node_exporter's textfile and the JSON player log on the host, \
                 and record resource metrics/<tmuxSession>",
                collect_metrics,
            ),
            ModelType::new::<installer::InstallerGlobals>(
                "minecraft/installer",
                VERSION,
                "Install a Minecraft server pack on an SSH host: Java, the zip, its files, eula, \
                 server.properties",
            )
            .method(
                "installDeps",
                MethodKind::Action,
                "apt-get install Java (javaPackage) and unzip, unless java and unzip are there",
                install_deps,
            )
            .method(
                "upload",
                MethodKind::Action,
                "The host downloads the pack from url with curl to zip.part, checks sha256 when \
                 given, and renames it to zip",
                upload,
            )
            .method(
                "extract",
                MethodKind::Action,
                "unzip -t (a corrupt zip fails, nothing unpacked), then unzip into serverDir",
                extract,
            )
            .method(
                "configure",
                MethodKind::Action,
                "eula.txt (eula must be true) and server.properties merged key by key; writes \
                 only what changes",
                configure,
            ),
        ]
    }
}

orch_plugin_sdk::export_plugin!(MinecraftPlugin);

#[cfg(test)]
mod schema_tests {
    use super::*;

    #[test]
    fn minecraft_server_is_described_with_its_methods() {
        let types: Vec<_> = MinecraftPlugin::types()
            .iter()
            .map(ModelType::info)
            .collect();
        assert_eq!(types[0].name, "minecraft/server");
        assert_eq!(types[0].version, VERSION);
        let methods: Vec<_> = types[0].methods.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(
            methods,
            [
                "startMinecraftServer",
                "stopMinecraftServer",
                "warnShutdown",
                "status",
                "say",
                "op",
                "deop",
                "collectMetrics"
            ]
        );
        assert!(types[0].methods.iter().all(|m| !m.destructive));
        assert_eq!(types[1].name, "minecraft/installer");
        let installer: Vec<_> = types[1].methods.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(installer, ["installDeps", "upload", "extract", "configure"]);
        let g: Value = serde_json::from_str(&types[0].global_arguments_schema).unwrap();
        for key in [
            "sshHost",
            "sshPort",
            "sshUser",
            "sshKey",
            "sshPassword",
            "trustOnFirstUse",
            "tmuxSession",
            "serverDir",
            "startScript",
            "logPath",
            "serverName",
        ] {
            assert!(g["properties"][key].is_object(), "{key}");
        }
        assert_eq!(g["properties"]["sshPort"]["default"], json!(22));
    }
}
