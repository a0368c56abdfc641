//! `test/echo`: a plugin that exercises every import of `orch:plugin` (0.2.0, through the SDK).
//! The host's tests drive it through the real `orch` binary.

use orch_plugin_sdk::{
    ConfirmRule, Ctx, Error, JsonSchema, MethodKind, ModelType, Plugin, Result, Value, error, json,
    ssh,
};
use serde::{Deserialize, Serialize};

struct TestPlugin;

/// Global arguments of `test/echo`.
#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Globals {
    /// A greeting echoed by `echo`.
    #[serde(default)]
    greeting: Option<String>,
    /// A value that may come from a vault; `leak` tries to log and store it.
    #[serde(default)]
    secret: Option<String>,
    /// Any extra value (wired by CEL in tests).
    #[serde(default)]
    extra: Option<Value>,
    /// The origin `fetch` may reach (the manifest grants `{{ globalArguments.baseUrl }}`).
    #[serde(default)]
    base_url: Option<String>,
    /// SSH host for the `ssh*` methods (the manifest grants `sshHost:sshPort`).
    #[serde(default)]
    ssh_host: Option<String>,
    /// SSH port.
    #[serde(default)]
    ssh_port: Option<u16>,
    /// SSH login user.
    #[serde(default)]
    ssh_user: Option<String>,
    /// OpenSSH private key text (usually from a vault).
    #[serde(default)]
    ssh_key: Option<String>,
    /// Passphrase of `sshKey`.
    #[serde(default)]
    ssh_passphrase: Option<String>,
    /// Password, used when there is no `sshKey`.
    #[serde(default)]
    ssh_password: Option<String>,
    /// Record an unknown host key instead of refusing it.
    #[serde(default)]
    ssh_trust_on_first_use: bool,
    /// Connect timeout.
    #[serde(default)]
    ssh_connect_timeout_ms: Option<u32>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct NoArgs {}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct EchoArgs {
    /// Anything; returned as is.
    #[serde(default)]
    value: Option<Value>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct WriteArgs {
    /// Resource name.
    name: String,
    /// Attributes to store.
    attributes: Value,
    /// Spec to write (default `item`).
    #[serde(default)]
    spec: Option<String>,
    /// Fail after writing (to prove a failed method moves nothing).
    #[serde(default)]
    fail_after: bool,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct NameArgs {
    /// Resource name.
    name: String,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct FetchArgs {
    /// URL to GET.
    url: String,
    /// Accept a self-signed certificate.
    #[serde(default)]
    insecure_tls: bool,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct FailArgs {
    /// One of invalid, denied, not-found, conflict, transient, failed.
    kind: String,
    /// The message.
    message: String,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RemoveArgs {
    /// Resource name.
    name: String,
    /// The id the caller expects to remove (the host checks it against the stored item).
    #[serde(default)]
    expect_id: Option<u64>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SshExecArgs {
    /// The remote command.
    command: String,
    /// Text fed to its stdin.
    #[serde(default)]
    stdin: Option<String>,
    /// Command timeout.
    #[serde(default)]
    timeout_ms: Option<u32>,
    /// Run the command this many times on one session (for benchmarks); the last result is returned.
    #[serde(default)]
    repeat: Option<u32>,
    /// Connect here instead of `sshHost` (to test grants).
    #[serde(default)]
    host: Option<String>,
    /// Connect to this port instead of `sshPort` (to test grants).
    #[serde(default)]
    port: Option<u16>,
    /// A second command run on the same session after the first, even if the first failed.
    #[serde(default)]
    then: Option<String>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct SshUploadArgs {
    /// Remote path.
    path: String,
    /// File contents (text).
    contents: String,
    /// Permission bits (default 0o644).
    #[serde(default)]
    mode: Option<u32>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct SshDownloadArgs {
    /// Remote path.
    path: String,
}

/// Arguments of `syncHosts`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct SyncHostsArgs {
    /// Host name → attributes: each is written as a `host` resource; stored hosts not named
    /// here are retired, as a discovery sync does.
    hosts: serde_json::Map<String, Value>,
}

/// The attributes of an `item` resource (free-form).
#[derive(Serialize, Deserialize, JsonSchema)]
struct Item(Value);

fn noop(_: &Ctx<Globals>, _: NoArgs) -> Result<Value> {
    Ok(json!({}))
}

fn echo(ctx: &Ctx<Globals>, args: EchoArgs) -> Result<Value> {
    ctx.info(format!("echo from model {}", ctx.model_name));
    Ok(json!({
        "greeting": ctx.globals.greeting,
        "extra": ctx.globals.extra,
        "baseUrl": ctx.globals.base_url,
        "value": args.value,
        "dryRun": ctx.dry_run,
    }))
}

fn write(ctx: &Ctx<Globals>, args: WriteArgs) -> Result<Value> {
    let spec = args.spec.as_deref().unwrap_or("item");
    let version = ctx.write_resource(spec, &args.name, &args.attributes)?;
    ctx.info(format!("wrote {spec}/{} version {version}", args.name));
    if args.fail_after {
        return Err(error::failed("failing after the write, as asked"));
    }
    Ok(json!({ "version": version }))
}

fn sync_hosts(ctx: &Ctx<Globals>, args: SyncHostsArgs) -> Result<Value> {
    let mut versions = serde_json::Map::new();
    for (name, attributes) in &args.hosts {
        let version = ctx.write_resource("host", name, attributes)?;
        versions.insert(name.clone(), json!(version));
    }
    let mut retired = Vec::new();
    for name in ctx.list_resources("host")? {
        if !args.hosts.contains_key(&name) {
            ctx.retire_resource("host", &name)?;
            retired.push(name);
        }
    }
    Ok(json!({ "versions": versions, "retired": retired }))
}

fn read(ctx: &Ctx<Globals>, args: NameArgs) -> Result<Value> {
    let value: Option<Value> = ctx.read_resource("item", &args.name)?;
    Ok(json!({ "attributes": value }))
}

fn list(ctx: &Ctx<Globals>, _: NoArgs) -> Result<Value> {
    Ok(json!({ "names": ctx.list_resources("item")? }))
}

fn fetch(ctx: &Ctx<Globals>, args: FetchArgs) -> Result<Value> {
    let http = orch_plugin_sdk::Http {
        insecure_tls: args.insecure_tls,
        ..Default::default()
    };
    let response = http.get(&args.url)?;
    let out = json!({ "status": response.status, "body": response.text() });
    ctx.write_resource("response", "last", &out)?;
    Ok(out)
}

fn fail(_: &Ctx<Globals>, args: FailArgs) -> Result<Value> {
    let m = args.message;
    Err(match args.kind.as_str() {
        "invalid" => Error::InvalidArguments(m),
        "denied" => Error::Denied(m),
        "not-found" => Error::NotFound(m),
        "conflict" => Error::Conflict(m),
        "transient" => Error::Transient(m),
        _ => Error::Failed(m),
    })
}

fn leak(ctx: &Ctx<Globals>, _: NoArgs) -> Result<Value> {
    let secret = ctx.globals.secret.clone().unwrap_or_default();
    ctx.info(format!("the secret is {secret}"));
    ctx.write_resource("item", "leak", &json!({ "secret": secret }))?;
    Ok(json!({ "secret": secret }))
}

fn remove(ctx: &Ctx<Globals>, args: RemoveArgs) -> Result<Value> {
    ctx.info(format!(
        "removing {} (expected id {:?})",
        args.name, args.expect_id
    ));
    ctx.write_resource("item", &args.name, &json!({ "removed": true }))?;
    Ok(json!({ "removed": args.name }))
}

fn ssh_session(g: &Globals, host: Option<&str>, port: Option<u16>) -> Result<ssh::Session> {
    let missing = |what: &str| error::invalid(format!("globalArguments.{what} is required"));
    let auth = match (&g.ssh_key, &g.ssh_password) {
        (Some(key), _) => ssh::Auth::PrivateKey(ssh::PrivateKey {
            key: key.clone(),
            passphrase: g.ssh_passphrase.clone(),
        }),
        (None, Some(password)) => ssh::Auth::Password(password.clone()),
        (None, None) => return Err(missing("sshKey")),
    };
    let target = ssh::Target {
        host: host
            .map(str::to_string)
            .or_else(|| g.ssh_host.clone())
            .ok_or_else(|| missing("sshHost"))?,
        port: port.or(g.ssh_port).unwrap_or(22),
        user: g.ssh_user.clone().ok_or_else(|| missing("sshUser"))?,
        auth,
        trust_on_first_use: g.ssh_trust_on_first_use,
        connect_timeout_ms: g.ssh_connect_timeout_ms,
    };
    ssh::Session::open(&target)
}

fn exec_json(r: &ssh::ExecResult) -> Value {
    json!({
        "exitCode": r.exit_code,
        "stdout": String::from_utf8_lossy(&r.stdout),
        "stderr": String::from_utf8_lossy(&r.stderr),
    })
}

fn error_json(e: &Error) -> Value {
    let (kind, message) = match e {
        Error::InvalidArguments(m) => ("invalid-arguments", m),
        Error::Denied(m) => ("denied", m),
        Error::NotFound(m) => ("not-found", m),
        Error::Conflict(m) => ("conflict", m),
        Error::Transient(m) => ("transient", m),
        Error::Failed(m) => ("failed", m),
    };
    json!({ "kind": kind, "message": message })
}

fn ssh_exec(ctx: &Ctx<Globals>, args: SshExecArgs) -> Result<Value> {
    let session = ssh_session(&ctx.globals, args.host.as_deref(), args.port)?;
    let stdin = args.stdin.as_deref().map(str::as_bytes);
    let run = || session.exec_with(&args.command, stdin, args.timeout_ms);
    let Some(then) = &args.then else {
        let mut last = run()?;
        for _ in 1..args.repeat.unwrap_or(1).max(1) {
            last = run()?;
        }
        return Ok(exec_json(&last));
    };
    let first = match run() {
        Ok(r) => exec_json(&r),
        Err(e) => json!({ "error": error_json(&e) }),
    };
    let second = session.exec(then)?;
    Ok(json!({ "first": first, "then": exec_json(&second) }))
}

fn ssh_upload(ctx: &Ctx<Globals>, args: SshUploadArgs) -> Result<Value> {
    let session = ssh_session(&ctx.globals, None, None)?;
    session.upload(
        &args.path,
        args.contents.as_bytes(),
        args.mode.unwrap_or(0o644),
    )?;
    Ok(json!({ "uploaded": args.path, "bytes": args.contents.len() }))
}

fn ssh_download(ctx: &Ctx<Globals>, args: SshDownloadArgs) -> Result<Value> {
    let session = ssh_session(&ctx.globals, None, None)?;
    let bytes = session.download(&args.path)?;
    Ok(json!({ "path": args.path, "contents": String::from_utf8_lossy(&bytes) }))
}

impl Plugin for TestPlugin {
    fn types() -> Vec<ModelType> {
        vec![
            ModelType::new::<Globals>("test/echo", "2026.11.21.1", "Exercises every host import")
                .resource::<Item>("item", "A free-form item")
                .resource::<Item>("response", "The last HTTP response")
                .resource::<Item>("host", "A discovered host; `seenAt` is volatile")
                .volatile(&["seenAt"])
                .method("noop", MethodKind::Action, "Does nothing", noop)
                .method(
                    "echo",
                    MethodKind::Read,
                    "Returns its arguments and globals",
                    echo,
                )
                .method("write", MethodKind::Create, "Writes an item", write)
                .method("read", MethodKind::Read, "Reads an item", read)
                .method(
                    "syncHosts",
                    MethodKind::Action,
                    "Writes the given hosts and retires the others",
                    sync_hosts,
                )
                .method("list", MethodKind::List, "Lists item names", list)
                .method(
                    "fetch",
                    MethodKind::Read,
                    "GETs a URL through the host",
                    fetch,
                )
                .method(
                    "fail",
                    MethodKind::Action,
                    "Fails with the given error",
                    fail,
                )
                .method(
                    "leak",
                    MethodKind::Action,
                    "Tries to log and store its secret",
                    leak,
                )
                .method(
                    "sshExec",
                    MethodKind::Action,
                    "Runs a command over SSH",
                    ssh_exec,
                )
                .method(
                    "sshUpload",
                    MethodKind::Action,
                    "Writes a file over SSH",
                    ssh_upload,
                )
                .method(
                    "sshDownload",
                    MethodKind::Read,
                    "Reads a file over SSH",
                    ssh_download,
                )
                .destructive_method(
                    "remove",
                    MethodKind::Delete,
                    "Marks an item removed",
                    remove,
                )
                .confirm(ConfirmRule::new("expectId", "item", "name", "id")),
        ]
    }
}

orch_plugin_sdk::export_plugin!(TestPlugin);
