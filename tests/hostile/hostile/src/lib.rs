//! `hostile/plugin`: each method breaks one host limit. The host must stop each with a clear
//! error, never crash, and never let a failed call change stored data.

use orch_plugin_sdk::{Ctx, JsonSchema, MethodKind, ModelType, Plugin, Result, Value, json};
use serde::Deserialize;

mod grants;
mod isolation;
mod limits;

struct Hostile;

/// Global arguments.
#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)] // only the manifest's grant template reads it
pub struct Globals {
    /// The only origin the manifest grants.
    #[serde(default)]
    allowed_url: Option<String>,
}

#[derive(Deserialize, JsonSchema)]
struct Args {
    /// A URL, for the HTTP methods.
    #[serde(default)]
    url: Option<String>,
}

#[derive(serde::Serialize, JsonSchema)]
struct Item {
    n: u64,
}

fn spin(_: &Ctx<Globals>, _: Args) -> Result<Value> {
    let mut x: u64 = 0;
    loop {
        x = std::hint::black_box(x.wrapping_add(1));
    }
}

fn alloc(_: &Ctx<Globals>, _: Args) -> Result<Value> {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        hoard.push(vec![1u8; 1 << 20]);
        std::hint::black_box(&hoard);
    }
}

#[allow(unconditional_recursion)]
fn deep(n: u64) -> u64 {
    std::hint::black_box(deep(std::hint::black_box(n + 1)) + 1)
}

fn recurse(_: &Ctx<Globals>, _: Args) -> Result<Value> {
    Ok(json!(deep(0)))
}

fn panic(_: &Ctx<Globals>, _: Args) -> Result<Value> {
    panic!("this plugin panics on purpose")
}

fn fetch(ctx: &Ctx<Globals>, args: Args) -> Result<Value> {
    let url = args.url.unwrap_or_default();
    let response = ctx.http().get(&url)?;
    Ok(json!({ "status": response.status, "bytes": response.body.len() }))
}

fn flood(ctx: &Ctx<Globals>, _: Args) -> Result<Value> {
    for i in 0..100_000 {
        ctx.info(format!("flood line {i}"));
    }
    Ok(json!({}))
}

fn write_many(ctx: &Ctx<Globals>, _: Args) -> Result<Value> {
    for n in 0..1000 {
        ctx.write_resource("item", &format!("item-{n}"), &Item { n })?;
    }
    Ok(json!({}))
}

fn write_undeclared(ctx: &Ctx<Globals>, _: Args) -> Result<Value> {
    ctx.write_resource("somebody-elses", "x", &Item { n: 1 })?;
    Ok(json!({}))
}

fn write_then_spin(ctx: &Ctx<Globals>, args: Args) -> Result<Value> {
    ctx.write_resource("item", "before-spin", &Item { n: 1 })?;
    spin(ctx, args)
}

impl Plugin for Hostile {
    fn types() -> Vec<ModelType> {
        vec![
            ModelType::new::<Globals>("hostile/plugin", "2026.11.21.1", "Breaks every limit")
                .resource::<Item>("item", "An item")
                .method("spin", MethodKind::Action, "Loops forever", spin)
                .method("alloc", MethodKind::Action, "Allocates without end", alloc)
                .method(
                    "recurse",
                    MethodKind::Action,
                    "Recurses without end",
                    recurse,
                )
                .method("panic", MethodKind::Action, "Panics", panic)
                .method("fetch", MethodKind::Read, "GETs any URL", fetch)
                .method("flood", MethodKind::Action, "Logs 100,000 lines", flood)
                .method(
                    "writeMany",
                    MethodKind::Create,
                    "Writes 1,000 resources",
                    write_many,
                )
                .method(
                    "writeUndeclared",
                    MethodKind::Create,
                    "Writes a spec it did not declare",
                    write_undeclared,
                )
                .method(
                    "writeThenSpin",
                    MethodKind::Create,
                    "Writes, then loops forever",
                    write_then_spin,
                )
                .method(
                    "logEscapes",
                    MethodKind::Action,
                    "Logs and fails with terminal controls",
                    grants::log_escapes,
                )
                .method(
                    "sshPoison",
                    MethodKind::Action,
                    "Passes a string off as an SSH password to a denied target",
                    grants::ssh_poison,
                )
                .method(
                    "writeBig",
                    MethodKind::Create,
                    "Buffers 2 MiB of writes",
                    limits::write_big,
                )
                .method(
                    "bigOutput",
                    MethodKind::Read,
                    "Returns 1 MiB of output",
                    limits::big_output,
                )
                .method(
                    "snoop",
                    MethodKind::Read,
                    "Fails when memory holds an earlier call's writes",
                    isolation::snoop,
                ),
            limits::schema_bomb_type(),
        ]
    }
}

orch_plugin_sdk::export_plugin!(Hostile);
