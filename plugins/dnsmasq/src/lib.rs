//! `dns/dnsmasq`: host names aggregated from other models (usually the declared guests) and
//! served by dnsmasq on an SSH host.
//!
//! The text (validation, rendering, comparison) lives in [`zone`], the converge logic and its
//! plan in [`converge`], written against [`remote::Connector`]. This file only wires them to
//! the host (SSH import, the `zone` resource, logs).

mod converge;
mod zone;

use orch_plugin_sdk::clock;
// Public because each SSH plugin uses a different part of the shared module (and of its test
// fake); private, the unused parts would trip the dead-code lint.
pub use orch_plugin_sdk::remote;

use converge::{Action, DnsmasqGlobals, ZoneResource};
use orch_plugin_sdk::{Ctx, ModelType, NoArgs, PlannedChange, Plugin, Result, Value, json};
use remote::HostSsh;

/// CalVer of the model type.
const VERSION: &str = "2026.11.30.1";

fn run_converge(ctx: &Ctx<DnsmasqGlobals>, _: NoArgs) -> Result<Value> {
    if ctx.dry_run {
        // The host asks `plan` for a converge dry run; this answers a plain dry execute alike.
        let changes = converge::plan(&HostSsh, &ctx.globals, &ctx.model_name)?;
        let summaries: Vec<&str> = changes.iter().map(|c| c.summary.as_str()).collect();
        return Ok(json!({"dryRun": true, "plan": summaries}));
    }
    let zone = converge::apply(
        &HostSsh,
        &ctx.globals,
        &ctx.model_name,
        &clock::now_rfc3339(),
    )?;
    ctx.write_resource("zone", "zone", &zone)?;
    ctx.info(match zone.action {
        Action::None => format!(
            "{} already serves these {} host(s); nothing written, dnsmasq not reloaded",
            zone.path, zone.host_count
        ),
        Action::Reload => format!(
            "{} now serves {} host(s); dnsmasq reloaded",
            zone.path, zone.host_count
        ),
        Action::Restart => format!(
            "{} now serves {} host(s) through {}; dnsmasq restarted",
            zone.path, zone.host_count, zone.conf_path
        ),
    });
    serde_json::to_value(&zone)
        .map_err(|e| orch_plugin_sdk::error::failed(format!("cannot serialize the output: {e}")))
}

fn run_plan(ctx: &Ctx<DnsmasqGlobals>, _: NoArgs) -> Result<Vec<PlannedChange>> {
    converge::plan(&HostSsh, &ctx.globals, &ctx.model_name)
}

/// The plugin: the `dns/dnsmasq` model type.
struct DnsmasqPlugin;

impl Plugin for DnsmasqPlugin {
    fn types() -> Vec<ModelType> {
        vec![
            ModelType::new::<DnsmasqGlobals>(
                "dns/dnsmasq",
                VERSION,
                "dnsmasq on an SSH host serving the names in `hosts` (an addn-hosts file, so a \
                 change needs only a reload)",
            )
            .resource::<ZoneResource>(
                "zone",
                "The names served: path, confPath, sha256, hostCount, records, changed, action",
            )
            .volatile(&["timestamp", "changed", "action"])
            .converge_method(
                "converge",
                "Render `hosts` into hostsFile and an addn-hosts line into <confDir>/<fileName>; \
                 when either differs, stage both as dotfiles, run testCommand, move them into \
                 place and reload (restart when the conf file changed). Unchanged: no write, no \
                 reload",
                run_converge,
                run_plan,
            ),
        ]
    }
}

orch_plugin_sdk::export_plugin!(DnsmasqPlugin);

#[cfg(test)]
mod tests;
