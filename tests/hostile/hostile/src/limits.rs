//! Methods and a type that make the host hold too much, or work too hard, on the plugin's
//! behalf: buffered write bytes, a huge method output, and a `$ref`-doubling schema.

use super::Globals;
use orch_plugin_sdk::{Ctx, MethodKind, ModelType, Result, Value, json};
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::Deserialize;
use std::borrow::Cow;

/// No arguments.
#[derive(Deserialize, JsonSchema)]
pub struct NoArgs {}

/// Writes 16 resources of 128 KiB each: 2 MiB buffered, over the 1 MiB max-write-bytes.
pub fn write_big(ctx: &Ctx<Globals>, _: NoArgs) -> Result<Value> {
    let blob = "x".repeat(128 * 1024);
    for n in 0..16 {
        ctx.write_resource(
            "item",
            &format!("big-{n}"),
            &json!({ "n": n, "blob": blob }),
        )?;
    }
    Ok(json!({}))
}

/// Returns 1 MiB of output, over the 64 KiB max-output-bytes.
pub fn big_output(_: &Ctx<Globals>, _: NoArgs) -> Result<Value> {
    Ok(json!({ "blob": "y".repeat(1024 * 1024) }))
}

/// Arguments whose schema is `d30`, where each `dN` is all of `d(N-1)` twice: 2^30 checks.
#[derive(Deserialize)]
pub struct BombArgs {}

impl JsonSchema for BombArgs {
    fn schema_name() -> Cow<'static, str> {
        "BombArgs".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let mut defs = serde_json::Map::new();
        defs.insert("d0".into(), json!({ "type": "object" }));
        for i in 1..=30 {
            let prev = format!("#/$defs/d{}", i - 1);
            defs.insert(
                format!("d{i}"),
                json!({ "allOf": [{ "$ref": prev }, { "$ref": prev }] }),
            );
        }
        Schema::try_from(json!({ "$defs": defs, "$ref": "#/$defs/d30" }))
            .expect("an object is a schema")
    }
}

fn detonate(_: &Ctx<Globals>, _: BombArgs) -> Result<Value> {
    Ok(json!({ "validated": true }))
}

/// `hostile/schema-bomb`: its one method's argument schema expands exponentially.
pub fn schema_bomb_type() -> ModelType {
    ModelType::new::<Globals>(
        "hostile/schema-bomb",
        "2026.11.21.1",
        "Declares a schema that doubles at each $ref",
    )
    .method(
        "detonate",
        MethodKind::Action,
        "Validating its arguments takes 2^30 steps",
        detonate,
    )
}
