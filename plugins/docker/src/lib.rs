//! `docker/compose`: a Docker Compose project on an SSH host (start, stop, update, status).
//!
//! Commands and output parsing live in [`compose`], written against [`remote::Connector`] so
//! they are unit-tested natively with a fake session. This file only wires them to the host
//! (SSH import, resources, logs).

mod compose;

use orch_plugin_sdk::clock;
// Public because each SSH plugin uses a different part of the shared module (and of its test
// fake); private, the unused parts would trip the dead-code lint.
pub use orch_plugin_sdk::remote;

use compose::{ActionOutput, ComposeGlobals, NoArgs, StatusResource};
use orch_plugin_sdk::{Ctx, MethodKind, ModelType, Plugin, Result, Value, json};
use remote::HostSsh;

/// CalVer of the model type.
const VERSION: &str = "2026.11.21.1";

fn to_value(output: impl serde::Serialize) -> Result<Value> {
    serde_json::to_value(output)
        .map_err(|e| orch_plugin_sdk::error::failed(format!("cannot serialize the output: {e}")))
}

/// A dry run checks the definition and lists the commands, without connecting.
fn dry_run(ctx: &Ctx<ComposeGlobals>, steps: &[&[&str]]) -> Result<Value> {
    let settings = ctx.globals.ssh();
    settings.target(&ctx.model_name)?;
    let commands = steps
        .iter()
        .map(|args| ctx.globals.command(args))
        .collect::<Result<Vec<_>>>()?;
    Ok(json!({ "dryRun": true, "target": settings.describe(), "wouldRun": commands }))
}

fn action(
    ctx: &Ctx<ComposeGlobals>,
    steps: &[&[&str]],
    run: fn(&HostSsh, &ComposeGlobals, &str) -> Result<ActionOutput>,
) -> Result<Value> {
    if ctx.dry_run {
        return dry_run(ctx, steps);
    }
    let out = run(&HostSsh, &ctx.globals, &ctx.model_name)?;
    for command in &out.commands {
        ctx.info(format!("ran `{command}`"));
    }
    to_value(out)
}

fn start(ctx: &Ctx<ComposeGlobals>, _: NoArgs) -> Result<Value> {
    action(ctx, &[compose::UP], compose::start)
}

fn stop(ctx: &Ctx<ComposeGlobals>, _: NoArgs) -> Result<Value> {
    action(ctx, &[compose::DOWN], compose::stop)
}

fn update(ctx: &Ctx<ComposeGlobals>, _: NoArgs) -> Result<Value> {
    action(ctx, &[compose::PULL, compose::UP], compose::update)
}

fn status(ctx: &Ctx<ComposeGlobals>, _: NoArgs) -> Result<Value> {
    if ctx.dry_run {
        return dry_run(ctx, &[compose::PS]);
    }
    let resource = compose::status(
        &HostSsh,
        &ctx.globals,
        &ctx.model_name,
        &clock::now_rfc3339(),
    )?;
    ctx.write_resource("status", "status", &resource)?;
    ctx.info(format!(
        "{} of {} container(s) running in {}",
        resource.running, resource.total, resource.project_dir
    ));
    to_value(resource)
}

/// The plugin: the `docker/compose` model type.
struct DockerPlugin;

impl Plugin for DockerPlugin {
    fn types() -> Vec<ModelType> {
        vec![
            ModelType::new::<ComposeGlobals>(
                "docker/compose",
                VERSION,
                "A Docker Compose project on an SSH host: start, stop, update, status",
            )
            .resource::<StatusResource>(
                "status",
                "The project's containers (instance `status`): services with state and health",
            )
            .method("start", MethodKind::Action, "docker compose up -d", start)
            .method(
                "stop",
                MethodKind::Action,
                "docker compose down (containers go; volumes stay)",
                stop,
            )
            .method(
                "update",
                MethodKind::Action,
                "docker compose pull, then up -d",
                update,
            )
            .method(
                "status",
                MethodKind::Read,
                "docker compose ps: each service's state, status, health and ports; records \
                 resource status/status",
                status,
            ),
        ]
    }
}

orch_plugin_sdk::export_plugin!(DockerPlugin);

#[cfg(test)]
mod schema_tests {
    use super::*;

    #[test]
    fn docker_compose_is_described_with_its_methods() {
        let types: Vec<_> = DockerPlugin::types().iter().map(ModelType::info).collect();
        assert_eq!(types[0].name, "docker/compose");
        assert_eq!(types[0].version, VERSION);
        let methods: Vec<_> = types[0].methods.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(methods, ["start", "stop", "update", "status"]);
        assert!(types[0].methods.iter().all(|m| !m.destructive));
        let g: Value = serde_json::from_str(&types[0].global_arguments_schema).unwrap();
        assert_eq!(g["required"], json!(["projectDir"]));
        for key in [
            "sshHost",
            "sshPort",
            "projectDir",
            "composeFile",
            "dockerBin",
        ] {
            assert!(g["properties"][key].is_object(), "{key}");
        }
        assert_eq!(g["properties"]["dockerBin"]["default"], json!("docker"));
    }
}
