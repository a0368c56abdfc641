//! `alpine/install` and `alpine/overlay`: Alpine disk installs and the PXE gold-image overlay.
//!
//! The method logic lives in [`install`] and [`overlay`], written against [`remote::Connector`]
//! so it is unit-tested natively with a fake session; this file wires it to the host.

mod install;
mod overlay;
#[cfg(test)]
mod tests;

use orch_plugin_sdk::clock;
// Public because each SSH plugin uses a different part of the shared module.
pub use orch_plugin_sdk::remote;

use install::{InstallArgs, InstallGlobals, InstallOutput};
use orch_plugin_sdk::{Ctx, MethodKind, ModelType, NoArgs, Plugin, Result, Value, json};
use overlay::{OverlayGlobals, OverlayResource};
use remote::HostSsh;

/// CalVer of the model types.
const VERSION: &str = "2026.11.30.1";

fn to_value(output: impl serde::Serialize) -> Result<Value> {
    serde_json::to_value(output)
        .map_err(|e| orch_plugin_sdk::error::failed(format!("cannot serialize the output: {e}")))
}

fn install(ctx: &Ctx<InstallGlobals>, args: InstallArgs) -> Result<Value> {
    if ctx.dry_run {
        let commands = install::plan(&ctx.globals)?;
        let settings = ctx.globals.ssh();
        settings.target(&ctx.model_name)?;
        return Ok(json!({
            "dryRun": true,
            "target": settings.describe(),
            "answersPath": ctx.globals.answers_path,
            "commands": commands,
            "reboot": args.reboot,
        }));
    }
    let out: InstallOutput = install::install(&HostSsh, &ctx.globals, &ctx.model_name, &args)?;
    ctx.info(format!(
        "Alpine installed to {} ({} commands){}",
        out.disk,
        out.commands.len(),
        if out.rebooted { "; rebooting" } else { "" }
    ));
    to_value(out)
}

fn deploy_apkovl(ctx: &Ctx<OverlayGlobals>, _: NoArgs) -> Result<Value> {
    if ctx.dry_run {
        ctx.globals.check()?;
        let (gold, server) = (ctx.globals.ssh(), ctx.globals.server());
        gold.target(&ctx.model_name)?;
        server.target(&ctx.model_name)?;
        return Ok(json!({
            "dryRun": true,
            "target": gold.describe(),
            "server": server.describe(),
            "would": format!(
                "run `lbu package {}` and publish it as {}/{}",
                ctx.globals.overlay_path, ctx.globals.http_dir, ctx.globals.overlay_name
            ),
        }));
    }
    let resource: OverlayResource = overlay::deploy(
        &HostSsh,
        &ctx.globals,
        &ctx.model_name,
        &clock::now_rfc3339(),
    )?;
    ctx.write_resource("overlay", "overlay", &resource)?;
    ctx.info(format!(
        "{} published ({} bytes, sha256 {}), {} boot file(s)",
        resource.overlay.path,
        resource.overlay.bytes,
        resource.overlay.sha256,
        resource.boot_files.len()
    ));
    to_value(resource)
}

/// The plugin: the `alpine/install` and `alpine/overlay` model types.
struct AlpinePlugin;

impl Plugin for AlpinePlugin {
    fn types() -> Vec<ModelType> {
        vec![
            ModelType::new::<InstallGlobals>(
                "alpine/install",
                VERSION,
                "Alpine disk install over SSH on a PXE-booted VM: setup-alpine from an answer \
                 file, then post-install commands in a chroot",
            )
            .method(
                "install",
                MethodKind::Action,
                "Upload the answer file (0600), run `setup-alpine -e -f` with ERASE_DISKS, mount \
                 the new root and run postInstall in a chroot; the first failure stops with its \
                 stderr; the answer file is removed either way",
                install,
            ),
            ModelType::new::<OverlayGlobals>(
                "alpine/overlay",
                VERSION,
                "The diskless gold image's overlay (lbu package) published on the PXE HTTP server, \
                 with optional boot files on its TFTP directory",
            )
            .resource::<OverlayResource>(
                "overlay",
                "The last published overlay and boot files: path, sha256, bytes",
            )
            .volatile(&["timestamp"])
            .method(
                "deployApkovl",
                MethodKind::Action,
                "`lbu package` on the gold image, then upload to a temporary name on the server, \
                 check its sha256 and rename it over httpDir/overlayName (bootFiles likewise into \
                 tftpDir); an interrupted copy leaves the served file as it was",
                deploy_apkovl,
            ),
        ]
    }
}

orch_plugin_sdk::export_plugin!(AlpinePlugin);
