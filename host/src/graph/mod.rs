//! Dependency graphs of a repository, validated and drawn.
//!
//! [`ModelGraph`] is the order in which models are converged: a definition whose `${{ }}`
//! expressions read `model.B…` comes after B. [`WorkflowGraph`] is one workflow's job and step
//! DAG. Both render as text, Mermaid or Graphviz dot ([`Format`]) for `orch graph` and
//! `orch workflow graph`.

mod models;
mod order;
mod render;
mod workflow;

pub use models::{Edge, GraphError, LoopStep, ModelGraph, ModelLoop};
pub use render::Format;
pub use workflow::{JobNode, StepNode, WorkflowGraph};

#[cfg(test)]
mod tests;
