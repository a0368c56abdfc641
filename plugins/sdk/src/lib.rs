#![warn(missing_docs)]
//! Write orch model plugins as plain Rust functions.
//!
//! A plugin lists its model types with [`ModelType`]; each method is a function that takes the
//! model's typed global arguments (through [`Ctx`]) and its own typed arguments, both
//! deserialized with serde. JSON Schemas come from `schemars`, never by hand.
//!
//! ```
//! use orch_plugin_sdk::serde::{Deserialize, Serialize};
//! use orch_plugin_sdk::{Ctx, JsonSchema, MethodKind, ModelType, NoArgs, Plugin, Result, json};
//!
//! /// Global arguments of every `demo/thing` model.
//! #[derive(Deserialize, JsonSchema)]
//! #[serde(crate = "orch_plugin_sdk::serde")]
//! #[schemars(crate = "orch_plugin_sdk::schemars")]
//! struct Globals {
//!     label: String,
//! }
//!
//! /// The `thing` resource.
//! #[derive(Serialize, JsonSchema)]
//! #[serde(crate = "orch_plugin_sdk::serde")]
//! #[schemars(crate = "orch_plugin_sdk::schemars")]
//! struct Thing {
//!     label: String,
//! }
//!
//! fn touch(ctx: &Ctx<Globals>, _: NoArgs) -> Result<Thing> {
//!     let thing = Thing { label: ctx.globals.label.clone() };
//!     ctx.write_resource("thing", "thing", &thing)?;
//!     Ok(thing)
//! }
//!
//! struct MyPlugin;
//! impl Plugin for MyPlugin {
//!     fn types() -> Vec<ModelType> {
//!         vec![ModelType::new::<Globals>("demo/thing", "2026.11.21.1", "A thing")
//!             .resource::<Thing>("thing", "One thing")
//!             .method("touch", MethodKind::Action, "Touch it", touch)]
//!     }
//! }
//! orch_plugin_sdk::export_plugin!(MyPlugin);
//!
//! // In native unit tests the same method runs against a fake host (see [`testing`]).
//! let host = orch_plugin_sdk::testing::FakeHost::new();
//! let out = host.call::<MyPlugin>("demo/thing", "touch", json!({"label": "a"}), json!({}));
//! assert_eq!(out.unwrap(), json!({"label": "a"}));
//! assert_eq!(host.latest("thing", "thing"), Some(json!({"label": "a"})));
//! ```

// Lets the generated bindings name this crate by its public path, so the export macro also
// works from plugin crates that do not depend on wit-bindgen themselves.
extern crate self as orch_plugin_sdk;

#[doc(hidden)]
pub use wit_bindgen;

/// Generated bindings for the `orch:plugin@0.2.0` world.
#[allow(clippy::too_many_arguments, missing_docs)] // generated code mirrors the WIT
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit/v0.2",
        world: "model-plugin",
        pub_export_macro: true,
        export_macro_name: "__export_model_plugin",
        default_bindings_module: "orch_plugin_sdk::bindings",
        runtime_path: "orch_plugin_sdk::wit_bindgen::rt",
    });
}

pub mod clock;
mod context;
pub mod game;
mod host;
mod http;
mod model;
pub mod remote;
pub mod ssh;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;

pub use context::Ctx;
pub use http::{Http, HttpRequest, HttpResponse};
pub use model::{
    ConfirmRule, FieldChange, MethodKind, ModelType, PlannedAction, PlannedChange, Plugin,
};
pub use schemars::{self, JsonSchema};
pub use serde;
pub use serde_json::{self, Value, json};

/// Arguments of a method that takes none (`{}`; unknown fields are refused).
#[derive(Debug, Default, serde::Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoArgs {}

/// The typed error every method returns; the host shows its variant and message.
pub type Error = bindings::orch::plugin::types::Error;

/// Result of a plugin method.
pub type Result<T> = std::result::Result<T, Error>;

/// Shorthand constructors for [`Error`].
pub mod error {
    use super::Error;

    /// The caller passed arguments the method cannot use.
    pub fn invalid(msg: impl Into<String>) -> Error {
        Error::InvalidArguments(msg.into())
    }
    /// Something the method needs does not exist.
    pub fn not_found(msg: impl Into<String>) -> Error {
        Error::NotFound(msg.into())
    }
    /// The outside world is not in a state that allows the operation.
    pub fn conflict(msg: impl Into<String>) -> Error {
        Error::Conflict(msg.into())
    }
    /// A failure that may pass if retried.
    pub fn transient(msg: impl Into<String>) -> Error {
        Error::Transient(msg.into())
    }
    /// Any other failure.
    pub fn failed(msg: impl Into<String>) -> Error {
        Error::Failed(msg.into())
    }
}

/// Exports a [`Plugin`] implementation as the component's `describe`, `execute` and `plan`.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        #[doc(hidden)]
        pub struct __OrchPluginExport;

        impl $crate::bindings::Guest for __OrchPluginExport {
            fn describe() -> ::std::vec::Vec<$crate::bindings::orch::plugin::types::TypeInfo> {
                $crate::__describe::<$plugin>()
            }
            fn execute(
                call: $crate::bindings::orch::plugin::types::Call,
            ) -> ::std::result::Result<::std::string::String, $crate::Error> {
                $crate::__execute::<$plugin>(call)
            }
            fn plan(
                call: $crate::bindings::orch::plugin::types::Call,
            ) -> ::std::result::Result<
                ::std::vec::Vec<$crate::bindings::orch::plugin::types::PlannedChange>,
                $crate::Error,
            > {
                $crate::__plan::<$plugin>(call)
            }
        }

        $crate::bindings::__export_model_plugin!(__OrchPluginExport with_types_in $crate::bindings);
    };
}

#[doc(hidden)]
pub fn __describe<P: Plugin>() -> Vec<bindings::orch::plugin::types::TypeInfo> {
    P::types().iter().map(ModelType::info).collect()
}

#[doc(hidden)]
pub fn __execute<P: Plugin>(call: bindings::orch::plugin::types::Call) -> Result<String> {
    let types = P::types();
    let model_type = types
        .iter()
        .find(|t| t.name() == call.type_name)
        .ok_or_else(|| {
            error::not_found(format!(
                "this plugin has no model type `{}`",
                call.type_name
            ))
        })?;
    model_type.execute(&call)
}

#[doc(hidden)]
pub fn __plan<P: Plugin>(
    call: bindings::orch::plugin::types::Call,
) -> Result<Vec<bindings::orch::plugin::types::PlannedChange>> {
    let types = P::types();
    match types.iter().find(|t| t.name() == call.type_name) {
        Some(model_type) => Ok(model_type
            .plan(&call)?
            .into_iter()
            .map(Into::into)
            .collect()),
        None => Err(error::not_found(format!(
            "this plugin has no model type `{}`",
            call.type_name
        ))),
    }
}
