//! `docker/compose`: a Docker Compose project on an SSH host (start, stop, update, status);
//! `docker/engine`: the Docker Engine itself (install, build, run, stop, inspect, exec).
//!
//! Commands and output parsing live in [`compose`] and [`engine`], written against [`remote::Connector`] so
//! they are unit-tested natively with a fake session. This file only wires them to the host
//! (SSH import, resources, logs).

mod compose;
mod engine;

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

fn engine_value<A>(
    ctx: &Ctx<engine::EngineGlobals>,
    args: A,
    run: impl Fn(&HostSsh, &engine::EngineGlobals, &str, &A) -> Result<engine::ActionOutput>,
) -> Result<Value> {
    if ctx.dry_run {
        ctx.globals.ssh().target(&ctx.model_name)?;
        return Ok(json!({ "dryRun": true, "target": ctx.globals.ssh().describe() }));
    }
    let out = run(&HostSsh, &ctx.globals, &ctx.model_name, &args)?;
    for command in &out.commands {
        ctx.info(format!("ran `{command}`"));
    }
    to_value(out)
}

fn engine_install(ctx: &Ctx<engine::EngineGlobals>, _: NoArgs) -> Result<Value> {
    engine_value(ctx, (), |c, g, m, _| engine::install(c, g, m))
}

fn engine_build(ctx: &Ctx<engine::EngineGlobals>, args: engine::BuildArgs) -> Result<Value> {
    engine_value(ctx, args, engine::build)
}

fn engine_run(ctx: &Ctx<engine::EngineGlobals>, args: engine::RunArgs) -> Result<Value> {
    engine_value(ctx, args, engine::run)
}

fn engine_stop(ctx: &Ctx<engine::EngineGlobals>, args: engine::NameArgs) -> Result<Value> {
    engine_value(ctx, args, engine::stop)
}

fn engine_inspect(ctx: &Ctx<engine::EngineGlobals>, args: engine::NameArgs) -> Result<Value> {
    if ctx.dry_run {
        return engine_value(ctx, args, |_, _, _, _| Ok(engine::ActionOutput::default()));
    }
    let resource = engine::inspect(
        &HostSsh,
        &ctx.globals,
        &ctx.model_name,
        &args,
        &clock::now_rfc3339(),
    )?;
    ctx.write_resource("container", &resource.name, &resource)?;
    ctx.info(format!(
        "container {} is {}",
        resource.name, resource.status
    ));
    to_value(resource)
}

fn engine_exec(ctx: &Ctx<engine::EngineGlobals>, args: engine::ExecArgs) -> Result<Value> {
    if ctx.dry_run {
        return engine_value(ctx, args, |_, _, _, _| Ok(engine::ActionOutput::default()));
    }
    let out = engine::exec(&HostSsh, &ctx.globals, &ctx.model_name, &args)?;
    ctx.info(format!("ran `{}`", out.command));
    to_value(out)
}

/// The plugin: the `docker/compose` and `docker/engine` model types.
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
            ModelType::new::<engine::EngineGlobals>(
                "docker/engine",
                VERSION,
                "The Docker Engine on an SSH host: install, build, run, stop, inspect, exec",
            )
            .resource::<engine::ContainerResource>(
                "container",
                "One container (instance: its name): image, state, restart policy, ports",
            )
            .method(
                "install",
                MethodKind::Action,
                "Installs Docker (get.docker.com or apt) unless `docker` is on the host already",
                engine_install,
            )
            .method("build", MethodKind::Action, "docker build -t tag [-f dockerfile] context", engine_build)
            .method(
                "run",
                MethodKind::Action,
                "docker run -d by name (nothing when it runs, docker start when stopped); env in a 0600 file",
                engine_run,
            )
            .method("stop", MethodKind::Action, "docker stop name", engine_stop)
            .method(
                "inspect",
                MethodKind::Read,
                "docker container inspect name; records resource container/<name>",
                engine_inspect,
            )
            .method("exec", MethodKind::Action, "docker exec name command…", engine_exec),
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
        assert_eq!(types[1].name, "docker/engine");
        let methods: Vec<_> = types[1].methods.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(
            methods,
            ["install", "build", "run", "stop", "inspect", "exec"]
        );
    }
}
