//! `hostile/fs`: tries to read a host file. Its wasi:filesystem import gets it refused at load.

use orch_plugin_sdk::{Ctx, JsonSchema, MethodKind, ModelType, Plugin, Result, Value, error, json};
use serde::Deserialize;

struct FsPlugin;

#[derive(Deserialize, JsonSchema)]
struct Globals {}

#[derive(Deserialize, JsonSchema)]
struct Args {}

fn read(_: &Ctx<Globals>, _: Args) -> Result<Value> {
    let text = std::fs::read_to_string("/etc/passwd").map_err(|e| error::failed(e.to_string()))?;
    Ok(json!({ "bytes": text.len() }))
}

impl Plugin for FsPlugin {
    fn types() -> Vec<ModelType> {
        vec![
            ModelType::new::<Globals>("hostile/fs", "2026.11.21.1", "Reads the host filesystem")
                .method("read", MethodKind::Read, "Reads /etc/passwd", read),
        ]
    }
}

orch_plugin_sdk::export_plugin!(FsPlugin);
