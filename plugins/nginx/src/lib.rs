//! `nginx/stream`: nginx stream (TCP/UDP) proxies on an SSH host.
//!
//! Config text (port maps, rendering, the nginx.conf include) lives in [`conf`]; the methods in
//! [`proxy`], written against [`remote::Connector`] so they are unit-tested natively with a
//! fake session. This file only wires them to the host (SSH import, resources, logs).

mod conf;
mod proxy;

use orch_plugin_sdk::clock;
// Public because each SSH plugin uses a different part of the shared module (and of its test
// fake); private, the unused parts would trip the dead-code lint.
pub use orch_plugin_sdk::remote;

use orch_plugin_sdk::{Ctx, MethodKind, ModelType, PlannedChange, Plugin, Result, Value, json};
use proxy::{ConfigureArgs, ConvergeArgs, NoArgs, ProxyResource, StreamGlobals};
use remote::HostSsh;

/// CalVer of the model type.
const VERSION: &str = "2026.11.30.1";

fn to_value(output: impl serde::Serialize) -> Result<Value> {
    serde_json::to_value(output)
        .map_err(|e| orch_plugin_sdk::error::failed(format!("cannot serialize the output: {e}")))
}

fn init(ctx: &Ctx<StreamGlobals>, _: NoArgs) -> Result<Value> {
    if ctx.dry_run {
        let paths = ctx.globals.paths()?;
        let settings = ctx.globals.ssh();
        settings.target(&ctx.model_name)?;
        return Ok(json!({
            "dryRun": true,
            "target": settings.describe(),
            "would": format!(
                "create {} and include {}/*.conf from the stream block of {}",
                paths.include_dir, paths.include_dir, paths.nginx_conf
            ),
        }));
    }
    let out = proxy::init(&HostSsh, &ctx.globals, &ctx.model_name)?;
    ctx.info(if out.changed {
        format!("{} now includes {}/*.conf", out.nginx_conf, out.include_dir)
    } else {
        format!(
            "{} already includes {}; nothing to do",
            out.nginx_conf, out.include_dir
        )
    });
    to_value(out)
}

fn configure(ctx: &Ctx<StreamGlobals>, args: ConfigureArgs) -> Result<Value> {
    if ctx.dry_run {
        let plan = proxy::plan_configure(&ctx.globals, &args)?;
        let settings = ctx.globals.ssh();
        settings.target(&ctx.model_name)?;
        return Ok(json!({
            "dryRun": true,
            "target": settings.describe(),
            "path": plan.path,
            "config": plan.content,
        }));
    }
    let resource = proxy::configure(
        &HostSsh,
        &ctx.globals,
        &ctx.model_name,
        &args,
        &clock::now_rfc3339(),
    )?;
    ctx.write_resource("proxy", &resource.name, &resource)?;
    ctx.info(if resource.changed {
        format!(
            "{} forwards {} port(s) to {}; nginx reloaded",
            resource.name,
            resource.ports.len(),
            resource.target_ip
        )
    } else {
        format!("{} is already configured; nothing to do", resource.name)
    });
    to_value(resource)
}

fn converge(ctx: &Ctx<StreamGlobals>, args: ConvergeArgs) -> Result<Value> {
    let resources = proxy::converge(
        &HostSsh,
        &ctx.globals,
        &ctx.model_name,
        &args,
        &clock::now_rfc3339(),
    )?;
    let (mut changed, mut unchanged) = (Vec::new(), Vec::new());
    for resource in &resources {
        ctx.write_resource("proxy", &resource.name, resource)?;
        if resource.changed {
            changed.push(resource.name.clone());
        } else {
            unchanged.push(resource.name.clone());
        }
    }
    ctx.info(format!(
        "{} proxy file(s) written and nginx reloaded, {} already matched",
        changed.len(),
        unchanged.len()
    ));
    Ok(json!({ "changed": changed, "unchanged": unchanged }))
}

fn plan_converge(ctx: &Ctx<StreamGlobals>, args: ConvergeArgs) -> Result<Vec<PlannedChange>> {
    proxy::plan_converge(&HostSsh, &ctx.globals, &ctx.model_name, &args)
}

/// The plugin: the `nginx/stream` model type.
struct NginxPlugin;

impl Plugin for NginxPlugin {
    fn types() -> Vec<ModelType> {
        vec![
            ModelType::new::<StreamGlobals>(
                "nginx/stream",
                VERSION,
                "nginx stream (TCP/UDP) proxies on an SSH host: one file per proxy in includeDir",
            )
            .resource::<ProxyResource>(
                "proxy",
                "One configured proxy, named like it: targetIp, ports, path, changed",
            )
            // Whether the last call rewrote the file, and when it ran, are not a change of
            // the proxy itself.
            .volatile(&["changed", "timestamp"])
            .method(
                "init",
                MethodKind::Create,
                "Create includeDir and add `stream { include <includeDir>/*.conf; }` to nginxConf \
                 unless it is there; checked with nginx -t and undone if rejected",
                init,
            )
            .method(
                "configure",
                MethodKind::Update,
                "Write <includeDir>/<name>.conf forwarding portMap to targetIp, run nginx -t, then \
                 reload; a rejected file is restored (or removed) and nginx's error returned",
                configure,
            )
            .converge_method(
                "converge",
                "Make includeDir hold exactly the declared proxies' files (each as `configure` \
                 writes it: nginx -t, then reload, or the old file back); files already right are \
                 neither tested nor reloaded. Its plan lists create/update/unchanged per proxy",
                converge,
                plan_converge,
            ),
        ]
    }
}

orch_plugin_sdk::export_plugin!(NginxPlugin);

#[cfg(test)]
mod schema_tests {
    use super::*;

    #[test]
    fn nginx_stream_is_described_with_its_methods() {
        let types: Vec<_> = NginxPlugin::types().iter().map(ModelType::info).collect();
        assert_eq!(types[0].name, "nginx/stream");
        assert_eq!(types[0].version, VERSION);
        let methods: Vec<_> = types[0].methods.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(methods, ["init", "configure", "converge"]);
        let g: Value = serde_json::from_str(&types[0].global_arguments_schema).unwrap();
        for key in [
            "sshHost",
            "sshPort",
            "includeDir",
            "nginxConf",
            "nginxBin",
            "reloadCommand",
        ] {
            assert!(g["properties"][key].is_object(), "{key}");
        }
        assert_eq!(
            g["properties"]["includeDir"]["default"],
            json!("/etc/nginx/stream.d")
        );
        let configure: Value = serde_json::from_str(&types[0].methods[1].arguments_schema).unwrap();
        for key in ["name", "targetIp", "portMap"] {
            assert!(configure["properties"][key].is_object(), "{key}");
        }
    }
}
