#![warn(missing_docs)]
//! orch: orchestrate infrastructure through sandboxed WebAssembly model plugins.
//!
//! Data flows one way: `cli` → `repo` → `workflow` → `run` → `method` (`expr` → `runtime` →
//! `capabilities`) → `store`. `store` and `capabilities` never call back up.

pub mod builtin;
pub mod capabilities;
pub mod chat;
pub mod cli;
pub mod converge;
pub mod excerpt;
pub mod expr;
pub mod graph;
pub mod import;
pub mod mcp;
pub mod method;
pub mod output;
pub mod plugin_dev;
pub mod repo;
pub mod run;
pub mod runtime;
pub mod serve;
pub mod store;
pub mod suggest;
pub mod tokens;
pub mod triggers;
pub mod vault;
pub mod worker;
pub mod workflow;
