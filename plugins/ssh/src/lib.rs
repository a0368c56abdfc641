//! `ssh/host`: general-purpose SSH operations (`exec`, `upload`, `waitForConnection`).
//!
//! The method logic lives in [`host`] and talks through [`remote::Connector`], so it is
//! unit-tested natively with a fake session; this file only wires it to the host (SSH import,
//! resources, logs). `remote` is the SDK's, shared with the minecraft, nginx and docker
//! plugins.

mod base64;
use orch_plugin_sdk::clock;
mod host;
// Public because the other SSH plugins include this module and each uses a different part.
pub use orch_plugin_sdk::remote;

#[cfg(test)]
mod remote_tests;

use host::{ExecArgs, ExecOutput, ExecResource, HostGlobals, UploadArgs, WaitArgs};
use orch_plugin_sdk::{Ctx, MethodKind, ModelType, Plugin, Result, Value, json};
use remote::HostSsh;

/// CalVer of the model type.
const VERSION: &str = "2026.11.21.1";

fn to_value(output: impl serde::Serialize) -> Result<Value> {
    serde_json::to_value(output)
        .map_err(|e| orch_plugin_sdk::error::failed(format!("cannot serialize the output: {e}")))
}

fn exec(ctx: &Ctx<HostGlobals>, args: ExecArgs) -> Result<Value> {
    let settings = ctx.globals.ssh();
    if ctx.dry_run {
        settings.target(&ctx.model_name)?;
        return Ok(json!({
            "dryRun": true,
            "target": settings.describe(),
            "wouldRun": args.command,
        }));
    }
    let out: ExecOutput = host::exec(&HostSsh, &settings, &ctx.model_name, &args)?;
    ctx.info(format!(
        "`{}` exited with {} on {}",
        remote::bounded(&args.command, 200),
        out.exit_code,
        settings.describe()
    ));
    let resource = ExecResource {
        command: args.command,
        target: settings.describe(),
        exit_code: out.exit_code,
        stdout: out.stdout.clone(),
        stderr: out.stderr.clone(),
        timestamp: clock::now_rfc3339(),
    };
    ctx.write_resource("exec", "last", &resource)?;
    to_value(out)
}

fn upload(ctx: &Ctx<HostGlobals>, args: UploadArgs) -> Result<Value> {
    let settings = ctx.globals.ssh();
    if ctx.dry_run {
        settings.target(&ctx.model_name)?;
        let (path, contents, mode) = host::plan_upload(&args)?;
        return Ok(json!({
            "dryRun": true,
            "target": settings.describe(),
            "wouldWrite": { "path": path, "bytes": contents.len(), "mode": format!("{mode:04o}") },
        }));
    }
    let out = host::upload(&HostSsh, &settings, &ctx.model_name, &args)?;
    ctx.info(format!(
        "wrote {} ({} bytes, mode {}) on {}",
        out.path,
        out.bytes,
        out.mode,
        settings.describe()
    ));
    to_value(out)
}

fn wait_for_connection(ctx: &Ctx<HostGlobals>, args: WaitArgs) -> Result<Value> {
    let settings = ctx.globals.ssh();
    if ctx.dry_run {
        settings.target(&ctx.model_name)?;
        return Ok(json!({ "dryRun": true, "target": settings.describe() }));
    }
    let note = |m: &str| ctx.info(m);
    let out = host::wait_for_connection(
        &HostSsh,
        &settings,
        &ctx.model_name,
        &args,
        &std::thread::sleep,
        &note,
    )?;
    ctx.info(format!(
        "{} answered after {} attempt(s)",
        settings.describe(),
        out.attempts
    ));
    to_value(out)
}

/// The plugin: the `ssh/host` model type.
struct SshPlugin;

impl Plugin for SshPlugin {
    fn types() -> Vec<ModelType> {
        vec![
            ModelType::new::<HostGlobals>(
                "ssh/host",
                VERSION,
                "A machine reached over SSH: run commands, upload files, wait until it answers",
            )
            .resource::<ExecResource>(
                "exec",
                "The last command run by `exec` (instance `last`): command, exitCode, stdout, stderr",
            )
            .method(
                "exec",
                MethodKind::Action,
                "Run a shell command (optional stdin and timeoutMs); returns exitCode, stdout, \
                 stderr and records them as exec/last. A non-zero exit fails only with check: true",
                exec,
            )
            .method(
                "upload",
                MethodKind::Action,
                "Write a file from content (text) or contentBase64, with mode (default \"0644\")",
                upload,
            )
            .method(
                "waitForConnection",
                MethodKind::Action,
                "Retry connecting and running `true` until the host answers: maxAttempts \
                 (default 30), initialDelayMs (default 500) doubling up to 10 s",
                wait_for_connection,
            ),
        ]
    }
}

orch_plugin_sdk::export_plugin!(SshPlugin);

#[cfg(test)]
mod schema_tests {
    use super::*;

    fn schema(text: &str) -> Value {
        serde_json::from_str(text).expect("schema is JSON")
    }

    #[test]
    fn ssh_host_is_described_with_its_methods() {
        let types: Vec<_> = SshPlugin::types().iter().map(ModelType::info).collect();
        assert_eq!(types.len(), 1);
        assert_eq!(types[0].name, "ssh/host");
        assert_eq!(types[0].version, VERSION);
        let methods: Vec<_> = types[0].methods.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(methods, ["exec", "upload", "waitForConnection"]);
        assert!(types[0].methods.iter().all(|m| !m.destructive));
        assert_eq!(types[0].resources[0].name, "exec");
    }

    #[test]
    fn globals_schema_has_the_common_ssh_fields_and_a_nullable_host() {
        let types: Vec<_> = SshPlugin::types().iter().map(ModelType::info).collect();
        let g = schema(&types[0].global_arguments_schema);
        for key in [
            "sshHost",
            "sshPort",
            "sshUser",
            "sshKey",
            "sshPassword",
            "trustOnFirstUse",
        ] {
            assert!(g["properties"][key].is_object(), "{key}");
        }
        assert_eq!(g["properties"]["sshPort"]["default"], json!(22));
        assert_eq!(g["properties"]["sshUser"]["default"], json!("root"));
        let host_types = g["properties"]["sshHost"]["type"].to_string();
        assert!(host_types.contains("null"), "{host_types}");
        assert_eq!(g["additionalProperties"], json!(false));
        assert!(
            g.get("required")
                .is_none_or(|r| r.as_array().is_some_and(Vec::is_empty))
        );
    }

    #[test]
    fn method_schemas_name_their_arguments_in_camel_case() {
        let types: Vec<_> = SshPlugin::types().iter().map(ModelType::info).collect();
        let exec = schema(&types[0].methods[0].arguments_schema);
        assert_eq!(exec["required"], json!(["command"]));
        assert!(exec["properties"]["timeoutMs"].is_object());
        let upload = schema(&types[0].methods[1].arguments_schema);
        assert!(upload["properties"]["contentBase64"].is_object());
        let wait = schema(&types[0].methods[2].arguments_schema);
        assert_eq!(wait["properties"]["maxAttempts"]["default"], json!(30));
        assert_eq!(wait["properties"]["initialDelayMs"]["default"], json!(500));
    }
}
