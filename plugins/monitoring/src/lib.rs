//! `monitoring/agent` (node_exporter on a VM, over SSH) and `monitoring/hub` (Prometheus: its
//! HTTP API, and its file_sd file over SSH).
//!
//! The methods live in [`agent`] and [`hub`], written against [`remote::Connector`] and
//! [`hub::Api`] so they are unit-tested natively; this file wires them to the host.

mod agent;
mod hub;

// Public because each SSH plugin uses a different part of the shared module (and of its test
// fake); private, the unused parts would trip the dead-code lint.
pub use orch_plugin_sdk::remote;

use agent::{AgentGlobals, ConfigureArgs, FlagsOutput, NoArgs, TextfileArgs};
use hub::{HubGlobals, RegisterArgs, TargetResource};
use orch_plugin_sdk::{Ctx, HttpRequest, MethodKind, ModelType, Plugin, Result, Value, json};
use remote::HostSsh;
use std::collections::HashSet;

/// CalVer of the model types.
const VERSION: &str = "2026.11.30.1";

fn to_value(output: impl serde::Serialize) -> Result<Value> {
    serde_json::to_value(output)
        .map_err(|e| orch_plugin_sdk::error::failed(format!("cannot serialize the output: {e}")))
}

fn dry(ctx: &Ctx<AgentGlobals>, would: String) -> Result<Value> {
    let settings = ctx.globals.ssh();
    settings.target(&ctx.model_name)?;
    Ok(json!({ "dryRun": true, "target": settings.describe(), "would": would }))
}

fn install(ctx: &Ctx<AgentGlobals>, _: NoArgs) -> Result<Value> {
    if ctx.dry_run {
        return dry(
            ctx,
            format!(
                "run `{}` unless {} is installed",
                ctx.globals.install_command, ctx.globals.exporter_bin
            ),
        );
    }
    let out = agent::install(&HostSsh, &ctx.globals, &ctx.model_name)?;
    ctx.info(if out.changed {
        format!("node_exporter installed at {}", out.path)
    } else {
        format!("node_exporter already installed at {}", out.path)
    });
    to_value(out)
}

fn report_flags(ctx: &Ctx<AgentGlobals>, out: FlagsOutput) -> Result<Value> {
    ctx.info(if out.changed {
        format!(
            "{} now has ARGS=\"{}\"; node_exporter restarted",
            out.flags_file,
            out.args.join(" ")
        )
    } else {
        format!("{} already matches; nothing to do", out.flags_file)
    });
    to_value(out)
}

fn configure(ctx: &Ctx<AgentGlobals>, args: ConfigureArgs) -> Result<Value> {
    if ctx.dry_run {
        return dry(
            ctx,
            format!(
                "set --web.listen-address={}:{} in {}",
                args.listen_address, args.port, ctx.globals.flags_file
            ),
        );
    }
    let out = agent::configure(&HostSsh, &ctx.globals, &ctx.model_name, &args)?;
    report_flags(ctx, out)
}

fn enable_textfile_collector(ctx: &Ctx<AgentGlobals>, args: TextfileArgs) -> Result<Value> {
    if ctx.dry_run {
        return dry(
            ctx,
            format!(
                "create {} and set --collector.textfile.directory in {}",
                args.dir, ctx.globals.flags_file
            ),
        );
    }
    let out = agent::enable_textfile_collector(&HostSsh, &ctx.globals, &ctx.model_name, &args)?;
    report_flags(ctx, out)
}

/// Prometheus's API through the host's `http` import.
struct HostApi(orch_plugin_sdk::Http);

impl hub::Api for HostApi {
    fn send(&self, method: &str, url: &str) -> Result<(u16, String)> {
        let response = self.0.send(HttpRequest {
            method: method.into(),
            url: url.into(),
            headers: Vec::new(),
            body: None,
        })?;
        Ok((response.status, response.text()))
    }
}

fn api(ctx: &Ctx<HubGlobals>) -> HostApi {
    let mut http = ctx.http();
    http.timeout_ms = Some(10_000);
    HostApi(http)
}

fn discover(ctx: &Ctx<HubGlobals>, _: NoArgs) -> Result<Value> {
    let targets = hub::discover(&api(ctx), &ctx.globals)?;
    let before = ctx.list_resources("target")?;
    let mut seen = HashSet::new();
    for target in &targets {
        let name = target.resource_name();
        ctx.write_resource("target", &name, target)?;
        seen.insert(name);
    }
    let mut retired = Vec::new();
    for name in before.into_iter().filter(|n| !seen.contains(n)) {
        ctx.retire_resource("target", &name)?;
        retired.push(name);
    }
    let up = targets.iter().filter(|t| t.health == "up").count();
    ctx.info(format!(
        "{} target(s), {up} up; {} retired",
        targets.len(),
        retired.len()
    ));
    Ok(json!({ "targets": targets, "retired": retired }))
}

fn register(ctx: &Ctx<HubGlobals>, args: RegisterArgs) -> Result<Value> {
    if ctx.dry_run {
        let group = hub::group_for(&args)?;
        ctx.globals.api()?;
        return Ok(json!({
            "dryRun": true,
            "fileSdPath": ctx.globals.file_sd_path,
            "group": { "targets": group.targets, "labels": group.labels },
        }));
    }
    let out = hub::register(
        &HostSsh,
        &api(ctx),
        &ctx.globals,
        &ctx.model_name,
        &args,
        &std::thread::sleep,
    )?;
    ctx.write_resource("target", &out.target.resource_name(), &out.target)?;
    ctx.info(if out.changed {
        format!(
            "{} ({}) added to {}; Prometheus reloaded, target {}",
            out.name, out.address, out.file_sd_path, out.target.health
        )
    } else {
        format!(
            "{} ({}) already in {}; target {}",
            out.name, out.address, out.file_sd_path, out.target.health
        )
    });
    to_value(out)
}

/// The plugin: `monitoring/agent` and `monitoring/hub`.
struct MonitoringPlugin;

impl Plugin for MonitoringPlugin {
    fn types() -> Vec<ModelType> {
        vec![
            ModelType::new::<AgentGlobals>(
                "monitoring/agent",
                VERSION,
                "node_exporter on a VM over SSH: install it, set its listen address and its \
                 textfile collector directory",
            )
            .method(
                "install",
                MethodKind::Create,
                "Run installCommand unless exporterBin is on the PATH",
                install,
            )
            .method(
                "configure",
                MethodKind::Update,
                "Set --web.listen-address=<listenAddress>:<port> in flagsFile; on a change, \
                 write it (temp file + rename) and run restartCommand, else touch nothing",
                configure,
            )
            .method(
                "enableTextfileCollector",
                MethodKind::Update,
                "Create dir and set --collector.textfile.directory=<dir> in flagsFile; restart \
                 only when the flag changed",
                enable_textfile_collector,
            ),
            ModelType::new::<HubGlobals>(
                "monitoring/hub",
                VERSION,
                "A Prometheus server: its scrape targets (HTTP API) and the file_sd file orch \
                 registers exporters in (over SSH)",
            )
            .resource::<TargetResource>(
                "target",
                "One active scrape target, named <job>/<instance>: health, lastError, labels",
            )
            .volatile(&["lastScrape"])
            .method(
                "discover",
                MethodKind::List,
                "List the active targets from /api/v1/targets as `target` resources; retire \
                 the ones Prometheus no longer has",
                discover,
            )
            .method(
                "register",
                MethodKind::Update,
                "Add {name, address, labels} to fileSdPath (unless already there), reload \
                 Prometheus and wait until /api/v1/targets lists it; an unreachable Prometheus \
                 fails before the file is touched, a failed reload puts the file back",
                register,
            ),
        ]
    }
}

orch_plugin_sdk::export_plugin!(MonitoringPlugin);

#[cfg(test)]
mod schema_tests {
    use super::*;

    #[test]
    fn both_types_are_described_with_their_methods() {
        let types: Vec<_> = MonitoringPlugin::types()
            .iter()
            .map(ModelType::info)
            .collect();
        let names: Vec<_> = types.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["monitoring/agent", "monitoring/hub"]);
        let methods =
            |i: usize| -> Vec<String> { types[i].methods.iter().map(|m| m.name.clone()).collect() };
        assert_eq!(
            methods(0),
            ["install", "configure", "enableTextfileCollector"]
        );
        assert_eq!(methods(1), ["discover", "register"]);
        let g: Value = serde_json::from_str(&types[0].global_arguments_schema).unwrap();
        for key in ["sshHost", "installCommand", "flagsFile", "restartCommand"] {
            assert!(g["properties"][key].is_object(), "{key}");
        }
        let g: Value = serde_json::from_str(&types[1].global_arguments_schema).unwrap();
        assert!(g["required"].as_array().unwrap().contains(&json!("apiUrl")));
    }
}
