//! One workflow's DAG: jobs with their `dependsOn`, and in each job its steps with theirs.

use std::collections::BTreeMap;

use serde::Serialize;

use super::models::GraphError;
use super::order::topological;
use super::render::{Format, dot_id, dot_string, mermaid_label, text_line};
use crate::expr::Evaluator;
use crate::repo::Repo;
use crate::workflow::{Catalog, Task, Workflow, validate};

/// A validated workflow as a graph, jobs and steps in the order they can start.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowGraph {
    /// The workflow's name.
    pub name: String,
    /// Jobs in dependency order; ties in file order.
    pub jobs: Vec<JobNode>,
}

/// One job of a [`WorkflowGraph`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobNode {
    /// The job's name.
    pub name: String,
    /// The jobs it waits for.
    pub depends_on: Vec<String>,
    /// Its steps in dependency order; ties by weight, then file order, as the scheduler starts them.
    pub steps: Vec<StepNode>,
}

/// One step of a [`JobNode`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepNode {
    /// The step's name.
    pub name: String,
    /// What it runs: `model.method` or `workflow <name>`.
    pub task: String,
    /// The steps of its job it waits for.
    pub depends_on: Vec<String>,
}

/// Validation without plugins: every method a step calls is taken as existing (the graph
/// does not depend on it); everything else, templates included, is checked as before a run.
struct WithoutPlugins<'a> {
    workflow: &'a Workflow,
    evaluator: Evaluator,
}

impl Catalog for WithoutPlugins<'_> {
    fn method_names(&self, model: &str) -> Option<Vec<String>> {
        let called = self
            .workflow
            .jobs
            .iter()
            .flat_map(|j| &j.steps)
            .filter_map(|s| match &s.task {
                Task::ModelMethod {
                    model_id_or_name,
                    method_name,
                    ..
                } if model_id_or_name == model => Some(method_name.clone()),
                _ => None,
            });
        Some(called.collect())
    }

    fn check_template(&self, text: &str) -> Result<(), String> {
        if !crate::expr::contains_template(text) {
            return Ok(());
        }
        self.evaluator.check_syntax(text).map_err(|e| e.to_string())
    }
}

impl WorkflowGraph {
    /// The graph of workflow `name` in `repo`, after the checks `orch workflow validate` makes
    /// (names, `dependsOn`, loops, models, nested workflows, templates) except those that need
    /// the installed plugins. Fails with every problem, each naming file, line and field.
    pub fn of(repo: &Repo, name: &str) -> Result<WorkflowGraph, GraphError> {
        let wf = repo.workflow(name)?;
        let catalog = WithoutPlugins {
            workflow: wf,
            evaluator: Evaluator::new(),
        };
        let diags = validate(wf, repo, &catalog);
        if !diags.is_empty() {
            return Err(GraphError::Invalid(diags));
        }
        Ok(WorkflowGraph::of_valid(wf))
    }

    /// The graph of a workflow that passed validation (names unique, `dependsOn` resolved,
    /// no loops); an unresolved dependency is left out.
    pub fn of_valid(wf: &Workflow) -> WorkflowGraph {
        let job_index: BTreeMap<&str, usize> = wf
            .jobs
            .iter()
            .enumerate()
            .map(|(i, j)| (j.name.as_str(), i))
            .collect();
        let job_deps: Vec<Vec<usize>> = wf
            .jobs
            .iter()
            .map(|j| {
                j.depends_on
                    .iter()
                    .filter_map(|d| job_index.get(d.job.as_str()).copied())
                    .collect()
            })
            .collect();
        let jobs = topological(&job_deps, |i| i)
            .into_iter()
            .map(|ji| {
                let job = &wf.jobs[ji];
                let step_index: BTreeMap<&str, usize> = job
                    .steps
                    .iter()
                    .enumerate()
                    .map(|(i, s)| (s.name.as_str(), i))
                    .collect();
                let step_deps: Vec<Vec<usize>> = job
                    .steps
                    .iter()
                    .map(|s| {
                        s.depends_on
                            .iter()
                            .filter_map(|d| step_index.get(d.step.as_str()).copied())
                            .collect()
                    })
                    .collect();
                let steps = topological(&step_deps, |i| (job.steps[i].weight, i))
                    .into_iter()
                    .map(|si| {
                        let step = &job.steps[si];
                        StepNode {
                            name: step.name.clone(),
                            task: match &step.task {
                                Task::ModelMethod {
                                    model_id_or_name,
                                    method_name,
                                    ..
                                } => format!("{model_id_or_name}.{method_name}"),
                                Task::Workflow {
                                    workflow_id_or_name,
                                    ..
                                } => format!("workflow {workflow_id_or_name}"),
                                Task::Assert { expression, .. } => {
                                    format!("assert {expression}")
                                }
                                Task::ManualApproval { .. } => "manual approval".to_string(),
                            },
                            depends_on: step.depends_on.iter().map(|d| d.step.clone()).collect(),
                        }
                    })
                    .collect();
                JobNode {
                    name: job.name.clone(),
                    depends_on: job.depends_on.iter().map(|d| d.job.clone()).collect(),
                    steps,
                }
            })
            .collect();
        WorkflowGraph {
            name: wf.name.clone(),
            jobs,
        }
    }

    /// The graph drawn in `format`. In Mermaid and dot each job is a subgraph (`j0`, `j1`, …
    /// in order) holding its steps (`j0s0`, …) labelled with their names; a job's `dependsOn`
    /// is an edge between subgraphs.
    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Text => self.text(),
            Format::Mermaid => self.mermaid(),
            Format::Dot => self.dot(),
        }
    }

    fn text(&self) -> String {
        let mut out = String::new();
        let job_width = self
            .jobs
            .iter()
            .map(|j| j.name.chars().count())
            .max()
            .unwrap_or(0);
        for job in &self.jobs {
            let deps: Vec<&str> = job.depends_on.iter().map(String::as_str).collect();
            out.push_str(&text_line(
                &format!("job {}", job.name),
                job_width + 4,
                &deps,
            ));
            out.push('\n');
            let width = job
                .steps
                .iter()
                .map(|s| s.name.chars().count())
                .max()
                .unwrap_or(0);
            for step in &job.steps {
                let deps: Vec<&str> = step.depends_on.iter().map(String::as_str).collect();
                out.push_str(&format!("  {}\n", text_line(&step.name, width, &deps)));
            }
        }
        out
    }

    /// Ids by job name (`j0`, …), and for each job ids by step name (`j0s0`, …).
    fn ids(&self) -> (BTreeMap<&str, String>, Vec<BTreeMap<&str, String>>) {
        let jobs = self
            .jobs
            .iter()
            .enumerate()
            .map(|(ji, j)| (j.name.as_str(), format!("j{ji}")))
            .collect();
        let steps = self
            .jobs
            .iter()
            .enumerate()
            .map(|(ji, j)| {
                j.steps
                    .iter()
                    .enumerate()
                    .map(|(si, s)| (s.name.as_str(), format!("j{ji}s{si}")))
                    .collect()
            })
            .collect();
        (jobs, steps)
    }

    fn mermaid(&self) -> String {
        let (job_ids, step_ids) = self.ids();
        let mut out = String::from("graph TD\n");
        for (ji, job) in self.jobs.iter().enumerate() {
            // No space before the title: the grammar is `subgraph id[title]`.
            out.push_str(&format!("  subgraph j{ji}{}\n", mermaid_label(&job.name)));
            for (si, step) in job.steps.iter().enumerate() {
                out.push_str(&format!("    j{ji}s{si}{}\n", mermaid_label(&step.name)));
            }
            if job.steps.is_empty() {
                out.push_str(&format!("    j{ji}e{}\n", mermaid_label("(no steps)")));
            }
            out.push_str("  end\n");
        }
        for (ji, job) in self.jobs.iter().enumerate() {
            for step in &job.steps {
                for dep in &step.depends_on {
                    if let Some(from) = step_ids[ji].get(dep.as_str()) {
                        out.push_str(&format!(
                            "  {from} --> {}\n",
                            step_ids[ji][step.name.as_str()]
                        ));
                    }
                }
            }
        }
        for job in &self.jobs {
            for dep in &job.depends_on {
                if let Some(from) = job_ids.get(dep.as_str()) {
                    out.push_str(&format!("  {from} --> {}\n", job_ids[job.name.as_str()]));
                }
            }
        }
        out
    }

    fn dot(&self) -> String {
        let (job_ids, step_ids) = self.ids();
        let mut out = format!("digraph {} {{\n  compound=true;\n", dot_id(&self.name));
        // The node an edge between two jobs is drawn from or to (clipped to the cluster).
        let mut anchor: BTreeMap<&str, String> = BTreeMap::new();
        for (ji, job) in self.jobs.iter().enumerate() {
            out.push_str(&format!("  subgraph cluster_j{ji} {{\n"));
            out.push_str(&format!("    label={};\n", dot_string(&job.name)));
            for (si, step) in job.steps.iter().enumerate() {
                out.push_str(&format!(
                    "    j{ji}s{si} [label={}];\n",
                    dot_string(&step.name)
                ));
            }
            let first = if job.steps.is_empty() {
                out.push_str(&format!(
                    "    j{ji}e [label=\"(no steps)\", shape=plaintext];\n"
                ));
                format!("j{ji}e")
            } else {
                format!("j{ji}s0")
            };
            anchor.insert(job.name.as_str(), first);
            out.push_str("  }\n");
        }
        for (ji, job) in self.jobs.iter().enumerate() {
            for step in &job.steps {
                for dep in &step.depends_on {
                    if let Some(from) = step_ids[ji].get(dep.as_str()) {
                        out.push_str(&format!(
                            "  {from} -> {};\n",
                            step_ids[ji][step.name.as_str()]
                        ));
                    }
                }
            }
        }
        for job in &self.jobs {
            for dep in &job.depends_on {
                if let (Some(from), Some(from_id)) =
                    (anchor.get(dep.as_str()), job_ids.get(dep.as_str()))
                {
                    let to = &anchor[job.name.as_str()];
                    let to_id = &job_ids[job.name.as_str()];
                    out.push_str(&format!(
                        "  {from} -> {to} [ltail=cluster_{from_id}, lhead=cluster_{to_id}];\n"
                    ));
                }
            }
        }
        out.push_str("}\n");
        out
    }
}
