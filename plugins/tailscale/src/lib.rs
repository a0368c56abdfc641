//! `tailscale/node` (install Tailscale on a VM over SSH and join the tailnet) and `tailscale/net`
//! (the tailnet's machine inventory from the Tailscale API v2).
//!
//! The methods live in [`node`] and [`net`], written against [`remote::Connector`] and
//! [`net::Api`] so they are unit-tested natively; this file wires them to the host.

mod net;
mod node;

// Public because each SSH plugin uses a different part of the shared module (and of its test
// fake); private, the unused parts would trip the dead-code lint.
pub use orch_plugin_sdk::remote;

use net::{DeviceResource, NetGlobals, TailnetResource};
use node::{NodeGlobals, NodeResource};
use orch_plugin_sdk::{
    Ctx, HttpRequest, MethodKind, ModelType, NoArgs, Plugin, Result, Value, error, json,
};
use remote::HostSsh;
use std::collections::HashSet;

/// CalVer of the model types.
const VERSION: &str = "2026.11.30.1";

fn to_value(output: impl serde::Serialize) -> Result<Value> {
    serde_json::to_value(output)
        .map_err(|e| error::failed(format!("cannot serialize the output: {e}")))
}

fn install(ctx: &Ctx<NodeGlobals>, _: NoArgs) -> Result<Value> {
    if ctx.dry_run {
        let settings = ctx.globals.ssh();
        settings.target(&ctx.model_name)?;
        return Ok(json!({
            "dryRun": true,
            "target": settings.describe(),
            "would": node::would(&ctx.globals)?,
        }));
    }
    let out = node::install(&HostSsh, &ctx.globals, &ctx.model_name)?;
    ctx.write_resource("node", "node", &out.node)?;
    ctx.info(match (out.installed, out.joined) {
        (_, false) => format!(
            "Tailscale already up on {} ({}); no `tailscale up`",
            ctx.globals.ssh().describe(),
            out.node.tailscale_ip
        ),
        (true, true) => format!("Tailscale installed and joined: {}", out.node.tailscale_ip),
        (false, true) => format!("Tailscale joined: {}", out.node.tailscale_ip),
    });
    to_value(out)
}

/// The Tailscale API through the host's `http` import, with the key as a bearer token.
struct HostApi(orch_plugin_sdk::Http);

impl net::Api for HostApi {
    fn get(&self, url: &str) -> Result<(u16, String)> {
        let response = self.0.send(HttpRequest {
            method: "GET".into(),
            url: url.into(),
            headers: Vec::new(),
            body: None,
        })?;
        Ok((response.status, response.text()))
    }
}

fn api(ctx: &Ctx<NetGlobals>) -> HostApi {
    let mut http = ctx.http();
    http.timeout_ms = Some(30_000);
    http.headers = vec![
        (
            "authorization".into(),
            format!("Bearer {}", ctx.globals.api_key.trim()),
        ),
        ("accept".into(), "application/json".into()),
    ];
    HostApi(http)
}

/// Writes one `device` per device and retires the ones that are gone; the retired names.
fn record(ctx: &Ctx<NetGlobals>, devices: &[DeviceResource]) -> Result<Vec<String>> {
    let mut seen = HashSet::new();
    for d in devices {
        let name = d.resource_name();
        ctx.write_resource("device", &name, d)?;
        seen.insert(name);
    }
    let mut retired = Vec::new();
    for name in ctx.list_resources("device")? {
        if !seen.contains(&name) {
            ctx.retire_resource("device", &name)?;
            retired.push(name);
        }
    }
    Ok(retired)
}

fn inventory(ctx: &Ctx<NetGlobals>, all: bool) -> Result<Value> {
    if ctx.dry_run {
        ctx.globals.check()?;
        return Ok(json!({"dryRun": true}));
    }
    let devices = net::devices(&api(ctx), &ctx.globals, all)?;
    let retired = record(ctx, &devices)?;
    let summary = net::summary(&ctx.globals, &devices);
    if all {
        ctx.write_resource("tailnet", "tailnet", &summary)?;
    }
    ctx.info(format!(
        "{} device(s) in tailnet {}; {} retired",
        devices.len(),
        summary.tailnet,
        retired.len()
    ));
    Ok(json!({ "devices": devices, "retired": retired, "hosts": summary.hosts }))
}

fn discover(ctx: &Ctx<NetGlobals>, _: NoArgs) -> Result<Value> {
    inventory(ctx, false)
}

fn sync(ctx: &Ctx<NetGlobals>, _: NoArgs) -> Result<Value> {
    inventory(ctx, true)
}

/// The plugin: two model types.
pub struct TailscalePlugin;

impl Plugin for TailscalePlugin {
    fn types() -> Vec<ModelType> {
        vec![
            ModelType::new::<NodeGlobals>(
                "tailscale/node",
                VERSION,
                "Tailscale on an SSH host: installed and joined to the tailnet with an auth key \
                 that only ever travels on stdin",
            )
            .resource::<NodeResource>(
                "node",
                "The node after install: tailscaleIp, dnsName, backendState",
            )
            .method(
                "install",
                MethodKind::Action,
                "Install Tailscale unless `tailscale` is on the PATH, then `tailscale up \
                 --auth-key=file:/dev/stdin` with the key on stdin unless already Running",
                install,
            ),
            ModelType::new::<NetGlobals>(
                "tailscale/net",
                VERSION,
                "A tailnet's machine inventory from the Tailscale API v2",
            )
            .resource::<DeviceResource>(
                "device",
                "One machine of the tailnet, named by its machine name",
            )
            .volatile(&["lastSeen"])
            .resource::<TailnetResource>("tailnet", "The inventory: deviceCount and name → IPv4")
            .method(
                "discover",
                MethodKind::List,
                "Record every device (fields=default) as a `device`; retire those that are gone",
                discover,
            )
            .method(
                "sync",
                MethodKind::List,
                "Like discover with fields=all (advertised routes too), and write the `tailnet` \
                 summary",
                sync,
            ),
        ]
    }
}

orch_plugin_sdk::export_plugin!(TailscalePlugin);
