//! Host bindings for `orch:plugin@0.2.0`, generated from `wit/v0.2/`. The capabilities implement
//! these traits; 0.1 calls are mapped onto them ([`super::convert`]).

// The generated bindings mirror the WIT, whose doc comments are the documentation.
#![allow(missing_docs)]

wasmtime::component::bindgen!({
    path: "../wit/v0.2",
    world: "model-plugin",
    imports: { default: async | trappable },
    exports: { default: async },
});

pub use self::orch::plugin::types::{Error as PluginError, FieldChange, MethodKind, PlannedAction};
