//! Host bindings for `orch:plugin@0.1.0`, generated from `wit/`.

// The generated bindings mirror the WIT, whose doc comments are the documentation.
#![allow(missing_docs)]

wasmtime::component::bindgen!({
    path: "../wit",
    world: "model-plugin",
    imports: { default: async | trappable },
    exports: { default: async },
});

pub use self::orch::plugin::types::{Error as PluginError, MethodKind};
