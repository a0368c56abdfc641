//! Workflows: the schema (swamp's field names), validation before anything runs, and the
//! async scheduler that runs steps as a DAG.

mod check;
mod condition;
mod graph;
mod inputs;
mod scheduler;
mod schema;
mod triggers;
mod validate;

pub use check::{check_model, check_repository, check_workflow};
pub use condition::{Condition, DEFAULT_CONDITION, StepStatus};
pub use graph::find_cycles;
pub use inputs::{apply_input_defaults, validate_inputs};
pub use scheduler::{
    JobOutcome, Preloaded, StepExecutor, StepOutcome, StepRef, WorkflowOutcome, run_capped,
    run_workflow, run_workflow_preloaded,
};
pub use schema::{ForEach, Job, JobDependency, Severity, Step, StepDependency, Task, Workflow};
pub use triggers::{Trigger, WebhookTrigger, parse_cron};
pub use validate::{Catalog, validate};
