//! `orch import swamp`: converts a swamp repository (definitions, workflows, vault references)
//! into an orch repository. The swamp repository is only ever read.
//!
//! swamp keeps definitions as `models/{type}/{name}.yaml` (e.g.
//! `models/@user/proxmox/vm/fleet.yaml`); older repositories keep them as
//! `.swamp/definitions/{type}/{id}.yaml` with `models/{name}/` holding symlinked views, and some
//! hand-made ones as flat `models/{name}.yaml`. All three are read; symlinks are skipped so a view
//! is not imported twice. Workflows are `workflows/{name}.yaml`, `workflows/{name}/workflow.yaml`
//! or the older `.swamp/workflows/…`. swamp's own vault files are never opened.

mod expr;
mod report;
mod secrets;
mod swamp;
mod types;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::repo::{Diagnostic, LineIndex};

pub use report::{ImportReport, Problem, SecretReplaced, TypeMapped, Unmapped, VaultKey, Written};
pub use types::{TYPE_TABLE, TypeMapping};

use swamp::{SwampDefinition, SwampRepo, SwampWorkflow};

/// What `orch import swamp` was asked to do.
#[derive(Clone, Debug)]
pub struct ImportOptions {
    /// The swamp repository.
    pub source: PathBuf,
    /// The orch repository to write (default `<source>-orch`).
    pub into: Option<PathBuf>,
    /// Report without writing.
    pub dry_run: bool,
    /// Write into an existing orch repository.
    pub force: bool,
}

/// Why nothing was imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The source is not a swamp repository.
    #[error(
        "{}: not a swamp repository (no .swamp.yaml, .swamp/, models/ or workflows/); give the directory `swamp repo init` created",
        .0.display()
    )]
    NotSwamp(PathBuf),
    /// The target holds files and is not an orch repository.
    #[error(
        "{}: the directory is not empty and is not an orch repository; choose another --into directory or empty this one",
        .0.display()
    )]
    TargetNotEmpty(PathBuf),
    /// The target is an orch repository and `--force` was not given.
    #[error(
        "{}: already an orch repository; add --force to write the imported files into it (files of the same name are replaced)",
        .0.display()
    )]
    TargetIsRepo(PathBuf),
    /// The target is the swamp repository or inside it.
    #[error(
        "{}: inside the swamp repository {}; import never writes into the swamp repository, choose a directory outside it",
        .into.display(), .swamp.display()
    )]
    TargetInsideSource {
        /// The target.
        into: PathBuf,
        /// The swamp repository.
        swamp: PathBuf,
    },
    /// Reading or writing a file failed.
    #[error("{}: {message}", .path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What failed and what to do.
        message: String,
    },
}

/// The default target: `<source>-orch` beside the swamp repository.
pub fn default_target(source: &Path) -> PathBuf {
    let name = source
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "swamp".to_string());
    source.with_file_name(format!("{name}-orch"))
}

/// Imports a swamp repository; problems in single files are in the report, not errors.
pub fn import_swamp(options: &ImportOptions) -> Result<ImportReport, ImportError> {
    let source = fs::canonicalize(&options.source)
        .map_err(|_| ImportError::NotSwamp(options.source.clone()))?;
    if !swamp::looks_like_swamp(&source) {
        return Err(ImportError::NotSwamp(options.source.clone()));
    }
    let into = options
        .into
        .clone()
        .unwrap_or_else(|| default_target(&source));
    let into = absolute(&into);
    if into.starts_with(&source) {
        return Err(ImportError::TargetInsideSource {
            into,
            swamp: source.clone(),
        });
    }
    check_target(&into, options.force)?;

    let repo = SwampRepo::read(&source);
    let mut import = Import::new(&repo);
    let mut report = ImportReport {
        source: source.clone(),
        into: into.clone(),
        dry_run: options.dry_run,
        errors: repo.errors.iter().cloned().map(Problem::from).collect(),
        notes: repo.notes.iter().cloned().map(Problem::from).collect(),
        ..ImportReport::default()
    };
    let mut files: Vec<(PathBuf, String)> = Vec::new();
    for def in &repo.definitions {
        if let Some(text) = import.definition(def, &mut report) {
            files.push((
                PathBuf::from("models").join(format!("{}.yaml", def.name)),
                text,
            ));
        }
    }
    for wf in &repo.workflows {
        if let Some(text) = import.workflow(wf, &mut report) {
            files.push((
                PathBuf::from("workflows").join(format!("{}.yaml", wf.name)),
                text,
            ));
        }
    }
    import.finish(&mut report, &source);
    files.push(("orch.yaml".into(), import.orch_yaml()));
    files.push(("plugins.txt".into(), import.plugins_txt()));
    files.push((".gitignore".into(), ".orch/\nplugins/\n".to_string()));
    if !options.dry_run {
        write_files(&into, &files)?;
    }
    Ok(report)
}

/// `path` made absolute with every existing part resolved (symlinks, `..`), so no spelling of
/// the target can land inside the swamp repository unnoticed. Parts that do not exist yet are
/// joined as they will be created.
fn absolute(path: &Path) -> PathBuf {
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    };
    let mut out = PathBuf::new();
    for part in joined.components() {
        match part {
            // `out` is canonical wherever it exists, so its parent is what `..` reaches.
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => {
                out.push(other);
                if let Ok(real) = fs::canonicalize(&out) {
                    out = real;
                }
            }
        }
    }
    out
}

fn check_target(into: &Path, force: bool) -> Result<(), ImportError> {
    let Ok(mut entries) = fs::read_dir(into) else {
        if into.exists() {
            return Err(ImportError::TargetNotEmpty(into.to_path_buf()));
        }
        return Ok(());
    };
    if entries.next().is_none() {
        return Ok(());
    }
    if into.join(crate::repo::CONFIG_FILE).is_file() {
        return if force {
            Ok(())
        } else {
            Err(ImportError::TargetIsRepo(into.to_path_buf()))
        };
    }
    Err(ImportError::TargetNotEmpty(into.to_path_buf()))
}

fn write_files(into: &Path, files: &[(PathBuf, String)]) -> Result<(), ImportError> {
    let io = |path: &Path, what: &str, e: std::io::Error| ImportError::Io {
        path: path.to_path_buf(),
        message: format!("cannot {what}: {e}; check the directory's permissions"),
    };
    for dir in ["models", "workflows", "plugins", ".orch"] {
        let d = into.join(dir);
        fs::create_dir_all(&d).map_err(|e| io(&d, "create the directory", e))?;
    }
    for (rel, text) in files {
        let path = into.join(rel);
        fs::write(&path, text).map_err(|e| io(&path, "write the file", e))?;
    }
    Ok(())
}

/// State shared while converting one repository.
struct Import {
    /// swamp ids (models and workflows) → names.
    ids: BTreeMap<String, String>,
    env: BTreeSet<String>,
    vault: BTreeSet<(String, String)>,
    plugins: BTreeSet<&'static str>,
    mapped: BTreeMap<String, TypeMapped>,
    unmapped: BTreeMap<String, Vec<String>>,
}

/// Where a converted value sits, for diagnostics and vault key names.
struct Place<'a> {
    file: &'a Path,
    lines: &'a LineIndex,
    /// The vault a literal secret moves to.
    vault: &'a str,
}

impl Import {
    fn new(repo: &SwampRepo) -> Self {
        let mut ids = BTreeMap::new();
        for d in &repo.definitions {
            if let Some(id) = &d.id {
                ids.insert(id.clone(), d.name.clone());
            }
        }
        for w in &repo.workflows {
            if let Some(id) = &w.id {
                ids.insert(id.clone(), w.name.clone());
            }
        }
        Import {
            ids,
            env: BTreeSet::new(),
            vault: BTreeSet::new(),
            plugins: BTreeSet::new(),
            mapped: BTreeMap::new(),
            unmapped: BTreeMap::new(),
        }
    }

    fn definition(&mut self, def: &SwampDefinition, report: &mut ImportReport) -> Option<String> {
        let file = &def.file.rel;
        let lines = &def.file.lines;
        let mapping = types::lookup(&def.type_name);
        let orch_type = match mapping {
            Some(m) => {
                self.plugins.insert(m.plugin);
                self.mapped
                    .entry(def.type_name.clone())
                    .or_insert_with(|| TypeMapped {
                        swamp: def.type_name.clone(),
                        orch: m.orch.to_string(),
                        plugin: m.plugin.to_string(),
                        models: Vec::new(),
                    })
                    .models
                    .push(def.name.clone());
                m.orch.to_string()
            }
            None => {
                let line = lines
                    .line_of("type")
                    .map_or(String::new(), |l| format!(":{l}"));
                self.unmapped
                    .entry(def.type_name.clone())
                    .or_default()
                    .push(format!("{}{line}", file.display()));
                types::strip_namespace(&def.type_name).to_string()
            }
        };
        let place = Place {
            file,
            lines,
            vault: &def.name,
        };
        let mut out = Map::new();
        out.insert("type".into(), Value::String(orch_type));
        for (key, value) in &def.file.value {
            match key.as_str() {
                "id" | "name" | "type" | "typeVersion" | "version" | "globalArguments"
                | "methods" => {}
                "description" => {
                    out.insert(key.clone(), value.clone());
                }
                "tags" => {
                    if let Some(tags) = tags(value, file, lines, report) {
                        out.insert(key.clone(), tags);
                    }
                }
                _ => report.notes.push(
                    Diagnostic::at(
                        file,
                        lines,
                        key.as_str(),
                        format!(
                            "`{key}` has no orch equivalent in a definition and was not written; \
                             carry it over by hand if it matters"
                        ),
                    )
                    .into(),
                ),
            }
        }
        let mut globals = Map::new();
        if let Some(Value::Object(args)) = def.file.value.get("globalArguments") {
            for (key, value) in args {
                let orch_key = mapping.map_or(key.as_str(), |m| m.rename(key)).to_string();
                let path = format!("globalArguments.{key}");
                let converted = self.value(value, &orch_key, &path, &orch_key, &place, report);
                globals.insert(orch_key, converted);
            }
        }
        if let Some(m) = mapping {
            for (name, value, why) in m.added_values() {
                if globals.contains_key(name) || globals.contains_key("fingerprint") {
                    continue;
                }
                globals.insert(name.to_string(), value);
                report.notes.push(
                    Diagnostic::at(
                        file,
                        lines,
                        "globalArguments",
                        format!("added `{name}` to the orch definition: {why}"),
                    )
                    .into(),
                );
            }
        }
        out.insert("globalArguments".into(), Value::Object(globals));
        if let Some(Value::Object(methods)) = def.file.value.get("methods") {
            let mut out_methods = Map::new();
            for (method, body) in methods {
                let mut args_out = Map::new();
                if let Some(Value::Object(args)) = body.get("arguments") {
                    for (key, value) in args {
                        let path = format!("methods.{method}.arguments.{key}");
                        let vault_key = format!("{method}-{key}");
                        let converted = self.value(value, key, &path, &vault_key, &place, report);
                        args_out.insert(key.clone(), converted);
                    }
                }
                let mut entry = Map::new();
                entry.insert("arguments".into(), Value::Object(args_out));
                out_methods.insert(method.clone(), Value::Object(entry));
            }
            if !out_methods.is_empty() {
                out.insert("methods".into(), Value::Object(out_methods));
            }
        }
        report.models.push(Written {
            name: def.name.clone(),
            from: file.clone(),
            to: PathBuf::from("models").join(format!("{}.yaml", def.name)),
            type_name: out.get("type").and_then(Value::as_str).map(str::to_string),
        });
        let text = yaml_file(&def.file.rel, def.id.as_deref(), &Value::Object(out));
        let target = PathBuf::from("models").join(format!("{}.yaml", def.name));
        if let Err(diags) = crate::repo::Definition::parse(&text, &target) {
            refused_by_orch(report, file, diags);
        }
        Some(text)
    }

    fn workflow(&mut self, wf: &SwampWorkflow, report: &mut ImportReport) -> Option<String> {
        let file = &wf.file.rel;
        let lines = &wf.file.lines;
        let place = Place {
            file,
            lines,
            vault: &wf.name,
        };
        let mut out = Map::new();
        out.insert("name".into(), Value::String(wf.name.clone()));
        for (key, value) in &wf.file.value {
            match key.as_str() {
                "id" | "name" | "version" => {}
                "description" | "inputs" | "concurrency" => {
                    out.insert(key.clone(), value.clone());
                }
                "tags" => {
                    if let Some(tags) = tags(value, file, lines, report) {
                        out.insert(key.clone(), tags);
                    }
                }
                "jobs" => {
                    let jobs = value.as_array().map(Vec::as_slice).unwrap_or_default();
                    let converted = jobs
                        .iter()
                        .enumerate()
                        .map(|(i, job)| self.job(job, &format!("jobs[{i}]"), &place, report))
                        .collect();
                    out.insert("jobs".into(), Value::Array(converted));
                }
                _ => dropped(report, &place, key, key, "a workflow"),
            }
        }
        report.workflows.push(Written {
            name: wf.name.clone(),
            from: file.clone(),
            to: PathBuf::from("workflows").join(format!("{}.yaml", wf.name)),
            type_name: None,
        });
        let text = yaml_file(&wf.file.rel, wf.id.as_deref(), &Value::Object(out));
        let target = PathBuf::from("workflows").join(format!("{}.yaml", wf.name));
        if let Err(diags) = crate::workflow::Workflow::parse(&text, &target) {
            refused_by_orch(report, file, diags);
        }
        Some(text)
    }

    fn job(&mut self, job: &Value, path: &str, place: &Place, report: &mut ImportReport) -> Value {
        let Some(fields) = job.as_object() else {
            return job.clone();
        };
        let mut out = Map::new();
        for (key, value) in fields {
            let here = format!("{path}.{key}");
            match key.as_str() {
                "name" | "description" | "dependsOn" | "concurrency" => {
                    out.insert(key.clone(), value.clone());
                }
                "steps" => {
                    let steps = value.as_array().map(Vec::as_slice).unwrap_or_default();
                    let converted = steps
                        .iter()
                        .enumerate()
                        .flat_map(|(i, s)| self.step(s, &format!("{here}[{i}]"), place, report))
                        .collect();
                    out.insert(key.clone(), Value::Array(converted));
                }
                // Written below, once the steps are.
                "approval" => not_a_flag(value, place, &here, report),
                _ => dropped(report, place, &here, key, "a job"),
            }
        }
        if fields.get("approval") == Some(&Value::Bool(true)) {
            let job_name = fields.get("name").and_then(Value::as_str).unwrap_or("job");
            gate_job(&mut out, job_name);
        }
        Value::Object(out)
    }

    /// Converts one step; a step with `approval: true` comes back after the
    /// `manual_approval` step that gates it.
    fn step(
        &mut self,
        step: &Value,
        path: &str,
        place: &Place,
        report: &mut ImportReport,
    ) -> Vec<Value> {
        let Some(fields) = step.as_object() else {
            return vec![step.clone()];
        };
        let step_name = fields.get("name").and_then(Value::as_str).unwrap_or("step");
        let mut out = Map::new();
        for (key, value) in fields {
            let here = format!("{path}.{key}");
            match key.as_str() {
                "name" | "description" | "dependsOn" | "weight" | "allowFailure"
                | "concurrency" => {
                    out.insert(key.clone(), value.clone());
                }
                // Written below as a step of its own.
                "approval" => not_a_flag(value, place, &here, report),
                "forEach" => {
                    let v = self.value(value, key, &here, key, place, report);
                    out.insert(key.clone(), v);
                }
                // swamp's step `condition` is orch's `guard`: bare CEL that skips the step.
                "condition" | "guard" => {
                    let text = value
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| value.to_string());
                    let (rewritten, findings) = expr::rewrite(&text, &self.ids);
                    self.note_findings(&findings, place, &here, report);
                    out.insert("guard".into(), Value::String(expr::bare(&rewritten)));
                }
                "task" => {
                    let task = self.task(value, &here, step_name, place, report);
                    out.insert(key.clone(), task);
                }
                _ => dropped(report, place, &here, key, "a step"),
            }
        }
        if fields.get("approval") == Some(&Value::Bool(true)) {
            let gate = gate_step(&mut out, step_name);
            return vec![gate, Value::Object(out)];
        }
        vec![Value::Object(out)]
    }

    fn task(
        &mut self,
        task: &Value,
        path: &str,
        step: &str,
        place: &Place,
        report: &mut ImportReport,
    ) -> Value {
        let Some(fields) = task.as_object() else {
            return task.clone();
        };
        let mut out = Map::new();
        for (key, value) in fields {
            let here = format!("{path}.{key}");
            match key.as_str() {
                "type" | "methodName" => {
                    out.insert(key.clone(), value.clone());
                }
                // swamp's `manual_approval` asks its `prompt`; orch's asks its `message`.
                "prompt" | "message" => {
                    let v = self.value(value, key, &here, key, place, report);
                    out.insert("message".into(), v);
                }
                "timeout" if is_task(fields, "manual_approval") => note(
                    report,
                    place,
                    &here,
                    "`timeout` was not written: an orch approval waits until `orch runs \
                     approve`, `reject` or `cancel` decides it",
                ),
                // swamp's assert `expr` is orch's `expression` (bare CEL either way).
                "expr" | "expression" => {
                    let text = value
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| value.to_string());
                    let wrapped = format!("${{{{ {} }}}}", expr::bare(&text));
                    let (rewritten, findings) = expr::rewrite(&wrapped, &self.ids);
                    self.note_findings(&findings, place, &here, report);
                    out.insert("expression".into(), Value::String(expr::bare(&rewritten)));
                }
                "severity" => {
                    let (severity, why) = assert_severity(value);
                    if let Some(why) = why {
                        note(report, place, &here, &why);
                    }
                    out.insert(key.clone(), Value::String(severity.into()));
                }
                "modelIdOrName" | "workflowIdOrName" => {
                    let named = value
                        .as_str()
                        .and_then(|v| self.ids.get(v))
                        .map_or_else(|| value.clone(), |n| Value::String(n.clone()));
                    if named == *value && value.as_str().is_some_and(swamp::looks_like_id) {
                        report.notes.push(
                            Diagnostic::at(
                                place.file,
                                place.lines,
                                here.as_str(),
                                format!(
                                    "{value} looks like a swamp id but no imported definition or \
                                     workflow has it; write the name instead"
                                ),
                            )
                            .into(),
                        );
                    }
                    out.insert(key.clone(), named);
                }
                "inputs" => {
                    let mut inputs = Map::new();
                    if let Some(map) = value.as_object() {
                        for (k, v) in map {
                            let vault_key = format!("{step}-{k}");
                            let converted =
                                self.value(v, k, &format!("{here}.{k}"), &vault_key, place, report);
                            inputs.insert(k.clone(), converted);
                        }
                    }
                    out.insert(key.clone(), Value::Object(inputs));
                }
                _ => dropped(report, place, &here, key, "a task"),
            }
        }
        Value::Object(out)
    }

    /// Converts one value: literal secrets to vault references, ids in expressions to names.
    fn value(
        &mut self,
        value: &Value,
        key: &str,
        path: &str,
        vault_key: &str,
        place: &Place,
        report: &mut ImportReport,
    ) -> Value {
        match value {
            Value::String(text) => {
                if secrets::is_literal_secret(key, text) {
                    let reference = secrets::vault_reference(place.vault, vault_key);
                    self.vault
                        .insert((place.vault.to_string(), vault_key.to_string()));
                    let at = Diagnostic::at(place.file, place.lines, path, "").to_string();
                    report.secrets_replaced.push(SecretReplaced {
                        at: at.trim_end_matches(": ").to_string(),
                        vault: place.vault.to_string(),
                        key: vault_key.to_string(),
                        command: secrets::vault_put_command(place.vault, vault_key),
                    });
                    return Value::String(reference);
                }
                let (rewritten, findings) = expr::rewrite(text, &self.ids);
                self.note_findings(&findings, place, path, report);
                Value::String(rewritten)
            }
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| {
                        self.value(v, key, &format!("{path}[{i}]"), vault_key, place, report)
                    })
                    .collect(),
            ),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| {
                        let nested_key = format!("{vault_key}-{k}");
                        let converted =
                            self.value(v, k, &format!("{path}.{k}"), &nested_key, place, report);
                        (k.clone(), converted)
                    })
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    fn note_findings(
        &mut self,
        findings: &expr::Findings,
        place: &Place,
        path: &str,
        report: &mut ImportReport,
    ) {
        self.env.extend(findings.env.iter().cloned());
        self.vault.extend(findings.vault.iter().cloned());
        if !findings.unknown.is_empty() {
            report.not_converted.push(
                Diagnostic::at(
                    place.file,
                    place.lines,
                    path,
                    format!(
                        "expression uses {} which orch expressions do not provide (they have \
                         model, inputs, env, run, self, vault.get and data.latest); written \
                         unchanged, rewrite it by hand",
                        findings
                            .unknown
                            .iter()
                            .map(|u| format!("`{u}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
                .into(),
            );
        }
    }

    fn finish(&mut self, report: &mut ImportReport, source: &Path) {
        report.models.sort_by(|a, b| a.name.cmp(&b.name));
        report.workflows.sort_by(|a, b| a.name.cmp(&b.name));
        report.types_mapped = self.mapped.values().cloned().collect();
        report.unmapped_types = self
            .unmapped
            .iter()
            .map(|(swamp_type, definitions)| {
                let orch = types::strip_namespace(swamp_type).to_string();
                Unmapped {
                    swamp: swamp_type.clone(),
                    extension_source: swamp::extension_source(source, swamp_type),
                    hint: format!(
                        "orch has no plugin for it; port the extension to a plugin with orch's \
                         TypeScript SDK (`orch plugin new --lang ts <dir> --type {orch}`, see \
                         plugins/sdk-ts), then `orch plugin build` and `orch plugin install`; \
                         the definitions are already written for type `{orch}`"
                    ),
                    orch,
                    definitions: definitions.clone(),
                }
            })
            .collect();
        report.vault_keys = self
            .vault
            .iter()
            .map(|(vault, key)| VaultKey {
                vault: vault.clone(),
                key: key.clone(),
                command: secrets::vault_put_command(vault, key),
            })
            .collect();
        let cd = format!("cd {}", report.into.display());
        report.next_steps.push(cd);
        for plugin in &self.plugins {
            report.next_steps.push(format!(
                "orch plugin install <bundles>/{plugin}   # bundles: `cargo xtask build` in an orch checkout writes plugins/dist/"
            ));
        }
        for u in &report.unmapped_types {
            report.next_steps.push(format!(
                "orch plugin new --lang ts plugins-src/{} --type {}   # port {}",
                u.orch.replace('/', "-"),
                u.orch,
                u.extension_source
                    .as_ref()
                    .map_or(u.swamp.clone(), |p| p.display().to_string())
            ));
        }
        for v in &report.vault_keys {
            report.next_steps.push(v.command.clone());
        }
        report.next_steps.push("orch check".to_string());
    }

    fn orch_yaml(&self) -> String {
        let mut text = String::from(
            "# Imported from a swamp repository by `orch import swamp`.\n\
             # Directories searched for plugin bundles (plugin.toml + plugin.wasm).\n\
             pluginPath: [plugins]\n",
        );
        if !self.env.is_empty() {
            text.push_str("# Variables the swamp expressions read as env.NAME; set them in the environment.\nenv:\n");
            for name in &self.env {
                text.push_str(&format!(
                    "  {name}:\n    description: read by the imported swamp expressions\n"
                ));
            }
        }
        text
    }

    fn plugins_txt(&self) -> String {
        let mut text =
            String::from("# Plugin bundles this repository needs (from `orch import swamp`).\n");
        for p in &self.plugins {
            text.push_str(p);
            text.push('\n');
        }
        text
    }
}

/// The converted file does not load in orch: it is written for the user to mend, and the
/// import counts as incomplete.
fn refused_by_orch(report: &mut ImportReport, swamp_file: &Path, diags: Vec<Diagnostic>) {
    for d in diags {
        report.errors.push(
            Diagnostic::file(
                swamp_file,
                format!("converted, but orch refuses the result ({d}); fix it there"),
            )
            .into(),
        );
    }
}

/// swamp's `approval` is `true` or `false`; anything else is noted and not converted.
fn not_a_flag(value: &Value, place: &Place, path: &str, report: &mut ImportReport) {
    if !value.is_boolean() {
        note(
            report,
            place,
            path,
            "`approval` is not true or false and was not converted; add a `manual_approval` \
             step by hand if the step needs one",
        );
    }
}

/// Whether a task's `type` is `kind`.
fn is_task(task: &Map<String, Value>, kind: &str) -> bool {
    task.get("type").and_then(Value::as_str) == Some(kind)
}

/// The `manual_approval` step for swamp's `approval: true` on `step` (converted, in `out`):
/// it takes the step's `dependsOn` (and its guard, unless the step runs per item), and the
/// step now depends on its approval. A rejection fails the gate, so the step does not run.
fn gate_step(out: &mut Map<String, Value>, step_name: &str) -> Value {
    // The gate asks once, so a forEach step's `${{ self.… }}` cannot be in its name.
    let stem = step_name
        .split("${{")
        .next()
        .unwrap_or_default()
        .trim_end_matches(['-', '_', ' ']);
    let gate_name = if stem.is_empty() {
        "approval".to_string()
    } else {
        format!("{stem}-approval")
    };
    let mut gate = Map::new();
    gate.insert("name".into(), Value::String(gate_name.clone()));
    gate.insert(
        "description".into(),
        Value::String(format!("swamp's `approval: true` on step `{step_name}`")),
    );
    gate.insert(
        "task".into(),
        serde_json::json!({
            "type": "manual_approval",
            "message": format!("Run step `{step_name}`?"),
        }),
    );
    if let Some(deps) = out.remove("dependsOn") {
        gate.insert("dependsOn".into(), deps);
    }
    if !out.contains_key("forEach")
        && let Some(guard) = out.get("guard")
    {
        gate.insert("guard".into(), guard.clone());
    }
    out.insert("dependsOn".into(), depends_on(&gate_name));
    Value::Object(gate)
}

/// swamp's `approval: true` on a job: a `manual_approval` step first in the job, on which
/// every step that depended on nothing now depends.
fn gate_job(out: &mut Map<String, Value>, job_name: &str) {
    let gate_name = format!("{job_name}-approval");
    let mut steps = match out.remove("steps") {
        Some(Value::Array(steps)) => steps,
        _ => Vec::new(),
    };
    for step in steps.iter_mut().filter_map(Value::as_object_mut) {
        let free = match step.get("dependsOn") {
            None | Some(Value::Null) => true,
            Some(Value::Array(deps)) => deps.is_empty(),
            Some(_) => false,
        };
        if free {
            step.insert("dependsOn".into(), depends_on(&gate_name));
        }
    }
    steps.insert(
        0,
        serde_json::json!({
            "name": gate_name,
            "description": format!("swamp's `approval: true` on job `{job_name}`"),
            "task": {
                "type": "manual_approval",
                "message": format!("Run job `{job_name}`?"),
            },
        }),
    );
    out.insert("steps".into(), Value::Array(steps));
}

/// `dependsOn: [{step: NAME, condition: {type: succeeded}}]`.
fn depends_on(step: &str) -> Value {
    serde_json::json!([{ "step": step, "condition": { "type": "succeeded" } }])
}

/// orch's severity for a swamp assert's: swamp fails the step on every false assert whatever
/// its severity (`--fail-on` only changes the exit code), so all become `error`; `low` and
/// `medium` come with a note saying how to keep them from failing the run.
fn assert_severity(value: &Value) -> (&'static str, Option<String>) {
    match value.as_str().unwrap_or_default() {
        "error" | "high" | "critical" => ("error", None),
        "warn" | "warning" => ("warn", None),
        other => (
            "error",
            Some(format!(
                "swamp severity `{other}` became `error` (a false assert fails the step, as in \
                 swamp); write `severity: warn` to only record it, as `--fail-on` above \
                 `{other}` did"
            )),
        ),
    }
}

/// swamp `tags` as orch's: a mapping of text to text (numbers and booleans are written as
/// text); anything else is left out with a note.
fn tags(value: &Value, file: &Path, lines: &LineIndex, report: &mut ImportReport) -> Option<Value> {
    let mut out = Map::new();
    let bad = |report: &mut ImportReport, what: &str| {
        report.notes.push(
            Diagnostic::at(
                file,
                lines,
                "tags",
                format!(
                    "{what}: orch tags are `key: value` text pairs; the tags were not written, \
                     write them by hand"
                ),
            )
            .into(),
        );
    };
    let Some(map) = value.as_object() else {
        bad(report, "`tags` is not a mapping");
        return None;
    };
    for (k, v) in map {
        let text = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => {
                bad(report, &format!("tag `{k}` is not text"));
                return None;
            }
        };
        out.insert(k.clone(), Value::String(text));
    }
    Some(Value::Object(out))
}

fn note(report: &mut ImportReport, place: &Place, path: &str, message: &str) {
    report
        .notes
        .push(Diagnostic::at(place.file, place.lines, path, message.to_string()).into());
}

fn dropped(report: &mut ImportReport, place: &Place, path: &str, key: &str, what: &str) {
    report.notes.push(
        Diagnostic::at(
            place.file,
            place.lines,
            path,
            format!(
                "`{key}` has no orch equivalent in {what} and was not written; carry it over by \
                 hand if it matters"
            ),
        )
        .into(),
    );
}

fn yaml_file(from: &Path, id: Option<&str>, value: &Value) -> String {
    let id = id.map_or(String::new(), |id| format!(" (swamp id {id})"));
    let body = serde_yaml_ng::to_string(value).unwrap_or_default();
    format!(
        "# Imported by `orch import swamp` from {}{id}.\n{body}",
        from.display()
    )
}

#[cfg(test)]
mod tests;
