//! `test/echo`: a plugin that exercises every import of `orch:plugin@0.1.0`. The host's tests
//! drive it through the real `orch` binary.

use orch_plugin_sdk::{
    Ctx, Error, JsonSchema, MethodKind, ModelType, Plugin, Result, Value, error, json,
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
#[schemars(extend("x-orch-confirm" = {"input": "expectId", "spec": "item", "nameArgument": "name", "attribute": "id"}))]
struct RemoveArgs {
    /// Resource name.
    name: String,
    /// The id the caller expects to remove (the host checks it against the stored item).
    #[serde(default)]
    expect_id: Option<u64>,
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

impl Plugin for TestPlugin {
    fn types() -> Vec<ModelType> {
        vec![
            ModelType::new::<Globals>("test/echo", "2026.11.21.1", "Exercises every host import")
                .resource::<Item>("item", "A free-form item")
                .resource::<Item>("response", "The last HTTP response")
                .method("noop", MethodKind::Action, "Does nothing", noop)
                .method(
                    "echo",
                    MethodKind::Read,
                    "Returns its arguments and globals",
                    echo,
                )
                .method("write", MethodKind::Create, "Writes an item", write)
                .method("read", MethodKind::Read, "Reads an item", read)
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
                .destructive_method(
                    "remove",
                    MethodKind::Delete,
                    "Marks an item removed",
                    remove,
                ),
        ]
    }
}

orch_plugin_sdk::export_plugin!(TestPlugin);
