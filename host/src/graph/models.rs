//! The converge order of models, from the `${{ }}` references between their definitions.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use super::order::topological;
use super::render::{Format, dot_id, mermaid_ids, mermaid_label, text_line};
use crate::repo::{
    Definition, Diagnostic, MODELS_DIR, Repo, RepoError, closest, join_index, join_key,
    sort_diagnostics, unknown_name,
};
use crate::workflow::find_cycles;

/// Why a graph could not be built.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    /// Files that could not be loaded, references to models that are not defined, or an
    /// invalid workflow: every problem, each naming its file, line and field.
    #[error("{}", join_lines(.0))]
    Invalid(Vec<Diagnostic>),
    /// Definitions that read each other in a loop, so no order converges them.
    #[error("{}", join_lines(.0))]
    Cycle(Vec<ModelLoop>),
    /// A model or workflow asked for by name that does not exist or whose file is broken.
    #[error(transparent)]
    Repo(#[from] RepoError),
}

fn join_lines<T: fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// One loop of definitions, in reading order: each step's model reads the next one's, and
/// the last reads the first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ModelLoop {
    /// The models of the loop, starting with the smallest name.
    pub steps: Vec<LoopStep>,
}

/// One model on a loop and the reference that leads to the next.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LoopStep {
    /// The model whose definition reads the next one.
    pub model: String,
    /// Its file, relative to the repository root.
    pub file: PathBuf,
    /// The field holding the expression, e.g. `globalArguments.ticket`.
    pub via: String,
    /// The line of that field.
    pub line: Option<usize>,
    /// The model it reads.
    pub reads: String,
}

impl fmt::Display for ModelLoop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<&str> = self.steps.iter().map(|s| s.model.as_str()).collect();
        names.extend(self.steps.first().map(|s| s.model.as_str()));
        write!(
            f,
            "model definitions read each other in a loop: {}; no converge order exists, remove \
             one of these references:",
            names.join(" → ")
        )?;
        for step in &self.steps {
            write!(f, "\n  {}", step.file.display())?;
            if let Some(line) = step.line {
                write!(f, ":{line}")?;
            }
            write!(f, ": {}: reads model `{}`", step.via, step.reads)?;
        }
        Ok(())
    }
}

/// One reference: the definition of `to` reads model `from` in field `via`, so `from` is
/// converged first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Edge {
    /// The model read, converged first.
    pub from: String,
    /// The model whose definition reads it.
    pub to: String,
    /// The dotted field of `to`'s definition holding the expression.
    pub via: String,
    /// The line of `via` in `to`'s file.
    #[serde(skip)]
    pub line: Option<usize>,
}

/// Every model definition and which ones read which, validated: every reference names a
/// defined model and no definitions read each other in a loop.
#[derive(Clone, Debug)]
pub struct ModelGraph {
    /// Model names, sorted.
    names: Vec<String>,
    /// Each model's file.
    files: Vec<PathBuf>,
    /// `deps[i]`: the models model `i` reads, as indices, each once.
    deps: Vec<Vec<usize>>,
    /// Every reference, one per field, in converge order of the reader.
    edges: Vec<Edge>,
    /// Converge order, as indices.
    order: Vec<usize>,
}

impl ModelGraph {
    /// The graph of every definition in `repo`. Fails with every problem at once: broken
    /// model files, and references to undefined models (file, line and field); or, when
    /// those are fine, with every loop.
    ///
    /// References are found by parsing the `${{ }}` expressions of `globalArguments` and of
    /// every method's `arguments` ([`crate::expr::referenced_models`]): `model.B`,
    /// `model["B"]` and `data.latest("B", …)`. Text outside `${{ }}` is never a reference.
    pub fn of(repo: &Repo) -> Result<ModelGraph, GraphError> {
        let every: BTreeSet<&str> = repo
            .models
            .keys()
            .chain(repo.broken.models.keys())
            .map(String::as_str)
            .collect();
        ModelGraph::build(repo, &every)
    }

    /// The graph of the named models and every model they read, at any depth, as
    /// [`ModelGraph::of`] would give it after [`ModelGraph::restrict`]; but only those
    /// definitions are checked, so a broken or looping model they do not read blocks nothing.
    /// An unknown name fails with the closest existing one.
    pub fn of_models<S: AsRef<str>>(repo: &Repo, models: &[S]) -> Result<ModelGraph, GraphError> {
        let mut queue: Vec<String> = Vec::new();
        for name in models {
            let name = name.as_ref();
            if !repo.broken.models.contains_key(name) {
                repo.model(name)?;
            }
            queue.push(name.to_string());
        }
        let mut closure: BTreeSet<String> = BTreeSet::new();
        while let Some(name) = queue.pop() {
            if let Some(def) = repo.models.get(&name)
                && !closure.contains(&name)
            {
                for (_, text) in templated_fields(def) {
                    queue.extend(crate::expr::referenced_models(text));
                }
            }
            closure.insert(name);
        }
        let closure: BTreeSet<&str> = closure.iter().map(String::as_str).collect();
        ModelGraph::build(repo, &closure)
    }

    /// The graph over `include` (every name it reads must be in it), checked.
    fn build(repo: &Repo, include: &BTreeSet<&str>) -> Result<ModelGraph, GraphError> {
        let mut diags: Vec<Diagnostic> = repo.broken.other.clone();
        for name in include {
            diags.extend(repo.broken.models.get(*name).into_iter().flatten().cloned());
        }
        let names: Vec<String> = include
            .iter()
            .filter(|n| repo.models.contains_key(**n))
            .map(|n| n.to_string())
            .collect();
        let index: BTreeMap<&str, usize> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), i))
            .collect();
        let mut deps: Vec<Vec<usize>> = vec![Vec::new(); names.len()];
        let mut edges = Vec::new();
        for (i, def) in names.iter().filter_map(|n| repo.models.get(n)).enumerate() {
            for (field, text) in templated_fields(def) {
                for read in crate::expr::referenced_models(text) {
                    if let Some(&j) = index.get(read.as_str()) {
                        if !deps[i].contains(&j) {
                            deps[i].push(j);
                        }
                        edges.push(Edge {
                            from: read,
                            to: def.name.clone(),
                            line: def.line_of(&field),
                            via: field.clone(),
                        });
                    } else if !repo.broken.models.contains_key(&read) {
                        // A broken file's own problems are listed already.
                        let available: Vec<String> = repo.models.keys().cloned().collect();
                        let suggestion = closest(&read, available.iter().map(String::as_str));
                        let message =
                            unknown_name("model", MODELS_DIR, &read, suggestion, &available);
                        diags.push(Diagnostic::at(&def.file, &def.lines, &field, message));
                    }
                }
            }
        }
        if !diags.is_empty() {
            sort_diagnostics(&mut diags);
            diags.dedup();
            return Err(GraphError::Invalid(diags));
        }
        for list in &mut deps {
            list.sort_unstable();
        }
        let files = names
            .iter()
            .filter_map(|n| repo.models.get(n))
            .map(|d| d.file.clone())
            .collect();
        let mut graph = ModelGraph {
            names,
            files,
            deps,
            edges,
            order: Vec::new(),
        };
        let loops = graph.loops();
        if !loops.is_empty() {
            return Err(GraphError::Cycle(loops));
        }
        graph.order = topological(&graph.deps, |i| i);
        graph.sort_edges();
        Ok(graph)
    }

    fn loops(&self) -> Vec<ModelLoop> {
        let adjacency: Vec<Vec<(usize, usize)>> = self
            .deps
            .iter()
            .map(|list| list.iter().map(|&j| (j, 0)).collect())
            .collect();
        let mut loops: Vec<ModelLoop> = find_cycles(&adjacency)
            .into_iter()
            .map(|(cycle, _)| {
                let body = &cycle[..cycle.len() - 1];
                // Start at the smallest name (the smallest index), so a loop reads the same
                // whichever model the search entered it by.
                let start = (0..body.len()).min_by_key(|&k| body[k]).unwrap_or(0);
                let rotated: Vec<usize> = body[start..]
                    .iter()
                    .chain(&body[..start])
                    .copied()
                    .collect();
                let steps = (0..rotated.len())
                    .map(|k| {
                        let (model, reads) = (rotated[k], rotated[(k + 1) % rotated.len()]);
                        let edge = self
                            .edges
                            .iter()
                            .find(|e| e.to == self.names[model] && e.from == self.names[reads]);
                        LoopStep {
                            model: self.names[model].clone(),
                            file: self.files[model].clone(),
                            via: edge.map(|e| e.via.clone()).unwrap_or_default(),
                            line: edge.and_then(|e| e.line),
                            reads: self.names[reads].clone(),
                        }
                    })
                    .collect();
                ModelLoop { steps }
            })
            .collect();
        loops.sort_by(|a, b| {
            a.steps
                .first()
                .map(|s| &s.model)
                .cmp(&b.steps.first().map(|s| &s.model))
        });
        loops
    }

    fn sort_edges(&mut self) {
        let edges = std::mem::take(&mut self.edges);
        let mut position = vec![0; self.names.len()];
        for (p, &i) in self.order.iter().enumerate() {
            position[i] = p;
        }
        let pos = |name: &str| {
            self.names
                .binary_search_by(|n| n.as_str().cmp(name))
                .map(|i| position[i])
                .unwrap_or(usize::MAX)
        };
        let mut keyed: Vec<((usize, usize), Edge)> = edges
            .into_iter()
            .map(|e| ((pos(&e.to), pos(&e.from)), e))
            .collect();
        keyed.sort_by(|(ka, a), (kb, b)| ka.cmp(kb).then_with(|| a.via.cmp(&b.via)));
        self.edges = keyed.into_iter().map(|(_, e)| e).collect();
    }

    /// Every model, in converge order: each after every model it reads; ties by name.
    pub fn order(&self) -> Vec<&str> {
        self.order.iter().map(|&i| self.names[i].as_str()).collect()
    }

    /// The named models and every model they read (at any depth), in converge order. An
    /// unknown name fails with the closest existing one.
    pub fn order_of<S: AsRef<str>>(&self, models: &[S]) -> Result<Vec<&str>, GraphError> {
        let wanted = self.closure(models)?;
        Ok(self
            .order
            .iter()
            .filter(|&&i| wanted[i])
            .map(|&i| self.names[i].as_str())
            .collect())
    }

    /// The part of the graph [`ModelGraph::order_of`] covers: the named models and
    /// everything they read, with the references between them.
    pub fn restrict<S: AsRef<str>>(&self, models: &[S]) -> Result<ModelGraph, GraphError> {
        let wanted = self.closure(models)?;
        let mut new_index = vec![usize::MAX; self.names.len()];
        let kept: Vec<usize> = (0..self.names.len()).filter(|&i| wanted[i]).collect();
        for (k, &i) in kept.iter().enumerate() {
            new_index[i] = k;
        }
        Ok(ModelGraph {
            names: kept.iter().map(|&i| self.names[i].clone()).collect(),
            files: kept.iter().map(|&i| self.files[i].clone()).collect(),
            deps: kept
                .iter()
                .map(|&i| self.deps[i].iter().map(|&j| new_index[j]).collect())
                .collect(),
            edges: self
                .edges
                .iter()
                .filter(|e| self.index(&e.to).is_some_and(|i| wanted[i]))
                .cloned()
                .collect(),
            order: self
                .order
                .iter()
                .filter(|&&i| wanted[i])
                .map(|&i| new_index[i])
                .collect(),
        })
    }

    /// `wanted[i]`: model `i` is named or read by a named model, at any depth.
    fn closure<S: AsRef<str>>(&self, models: &[S]) -> Result<Vec<bool>, GraphError> {
        let mut wanted = vec![false; self.names.len()];
        let mut stack = Vec::new();
        for name in models {
            let name = name.as_ref();
            let i = self.index(name).ok_or_else(|| RepoError::UnknownModel {
                name: name.to_string(),
                suggestion: closest(name, self.names.iter().map(String::as_str)).map(String::from),
                available: self.names.clone(),
            })?;
            stack.push(i);
        }
        while let Some(i) = stack.pop() {
            if !wanted[i] {
                wanted[i] = true;
                stack.extend(&self.deps[i]);
            }
        }
        Ok(wanted)
    }

    fn index(&self, name: &str) -> Option<usize> {
        self.names.binary_search_by(|n| n.as_str().cmp(name)).ok()
    }

    /// The models `model` reads directly, in converge order (empty for an unknown name).
    pub fn dependencies(&self, model: &str) -> Vec<&str> {
        let Some(i) = self.index(model) else {
            return Vec::new();
        };
        self.order
            .iter()
            .filter(|&&j| self.deps[i].contains(&j))
            .map(|&j| self.names[j].as_str())
            .collect()
    }

    /// Every reference, one per field, ordered by the reader's place in converge order.
    pub fn edges(&self) -> &[Edge] {
        &self.edges
    }

    /// The file of `model`, relative to the repository root.
    pub fn file(&self, model: &str) -> Option<&Path> {
        self.index(model).map(|i| self.files[i].as_path())
    }

    /// `{"order": [...], "edges": [{"from", "to", "via"}]}` for `--json`.
    pub fn to_json(&self) -> Value {
        serde_json::json!({ "order": self.order(), "edges": self.edges })
    }

    /// The graph drawn in `format`.
    pub fn render(&self, format: Format) -> String {
        let order = self.order();
        // Each pair once, in edge order (a model may read another in several fields).
        let mut pairs: Vec<(&str, &str)> = Vec::new();
        for e in &self.edges {
            if !pairs.contains(&(e.from.as_str(), e.to.as_str())) {
                pairs.push((e.from.as_str(), e.to.as_str()));
            }
        }
        let mut out = String::new();
        match format {
            Format::Text => {
                let width = order.iter().map(|n| n.chars().count()).max().unwrap_or(0);
                for name in &order {
                    out.push_str(&text_line(name, width, &self.dependencies(name)));
                    out.push('\n');
                }
            }
            Format::Mermaid => {
                out.push_str("graph TD\n");
                let ids = mermaid_ids(&order);
                let id_of: BTreeMap<&str, &str> = order
                    .iter()
                    .zip(&ids)
                    .map(|(n, (id, _))| (*n, id.as_str()))
                    .collect();
                for (name, (id, labelled)) in order.iter().zip(&ids) {
                    let label = if *labelled {
                        mermaid_label(name)
                    } else {
                        String::new()
                    };
                    out.push_str(&format!("  {id}{label}\n"));
                }
                for (from, to) in pairs {
                    out.push_str(&format!("  {} --> {}\n", id_of[from], id_of[to]));
                }
            }
            Format::Dot => {
                out.push_str("digraph models {\n");
                for name in &order {
                    out.push_str(&format!("  {};\n", dot_id(name)));
                }
                for (from, to) in pairs {
                    out.push_str(&format!("  {} -> {};\n", dot_id(from), dot_id(to)));
                }
                out.push_str("}\n");
            }
        }
        out
    }
}

/// Every string of `def` that holds a `${{ }}` template, with its dotted field path, in
/// document order.
fn templated_fields(def: &Definition) -> Vec<(String, &str)> {
    let mut roots: Vec<(String, &Value)> = def
        .global_arguments
        .iter()
        .map(|(k, v)| (join_key("globalArguments", k), v))
        .collect();
    for (method, args) in &def.methods {
        let base = format!("methods.{method}.arguments");
        roots.extend(args.arguments.iter().map(|(k, v)| (join_key(&base, k), v)));
    }
    let mut out = Vec::new();
    // Iterative: the values come from the user's file.
    let mut stack: Vec<(String, &Value)> = roots.into_iter().rev().collect();
    while let Some((field, value)) = stack.pop() {
        match value {
            Value::String(s) if crate::expr::contains_template(s) => out.push((field, s.as_str())),
            Value::Array(items) => stack.extend(
                items
                    .iter()
                    .enumerate()
                    .rev()
                    .map(|(i, v)| (join_index(&field, i), v)),
            ),
            Value::Object(map) => {
                stack.extend(map.iter().rev().map(|(k, v)| (join_key(&field, k), v)))
            }
            _ => {}
        }
    }
    out
}
