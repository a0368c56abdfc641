//! `hostile/slow-describe`: generating its global-arguments schema never finishes, so describe()
//! never returns (execute() never generates schemas and would be quick).

use orch_plugin_sdk::{Ctx, MethodKind, ModelType, Plugin, Result, Value, json};
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::Deserialize;
use std::borrow::Cow;

struct SlowDescribe;

#[derive(Deserialize)]
struct Globals {}

impl JsonSchema for Globals {
    fn schema_name() -> Cow<'static, str> {
        "Globals".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let mut x: u64 = 0;
        loop {
            x = std::hint::black_box(x.wrapping_add(1));
        }
    }
}

#[derive(Deserialize, JsonSchema)]
struct Args {}

fn noop(_: &Ctx<Globals>, _: Args) -> Result<Value> {
    Ok(json!({}))
}

impl Plugin for SlowDescribe {
    fn types() -> Vec<ModelType> {
        vec![
            ModelType::new::<Globals>("hostile/slow-describe", "2026.11.21.1", "Never describes")
                .method("noop", MethodKind::Action, "Does nothing", noop),
        ]
    }
}

orch_plugin_sdk::export_plugin!(SlowDescribe);
