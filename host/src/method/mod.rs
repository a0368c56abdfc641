//! The method runner: resolves a model's `${{ }}` arguments against the data as it is now,
//! validates them against the type's schemas, runs the plugin with the capabilities granted for
//! this call, and commits what it wrote.

mod confirm;
mod data_source;
mod repo_file;
mod validate;

pub use data_source::StoreDataSource;
pub use repo_file::{MAX_REPO_FILE_BYTES, read_repo_file};

use crate::capabilities::http::grant::HttpGrant;
use crate::capabilities::ssh::grant::SshGrant;
use crate::capabilities::{
    DataCapability, HttpCapability, LogCapability, LogLevel, SshCapability, SshSessionPool,
};
use crate::expr::{Evaluator, ExprError, SharedInputs, Vars};
use crate::output::{Event, EventSink};
use crate::repo::{Definition, Repo};
use crate::runtime::wit::v0_2::{Call, PluginError};
use crate::runtime::{CallCapabilities, PluginRegistry, RuntimeError};
use crate::store::{Provenance, ResourceStore, StoreError, now_rfc3339};
use crate::vault::LocalVault;
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;

/// Why a method run failed.
#[derive(Debug, Error)]
pub enum MethodError {
    /// The model, type or method does not exist.
    #[error("{0}")]
    Unknown(String),
    /// A `${{ }}` expression could not be resolved (message carries file:line and field).
    #[error("{0}")]
    Expression(String),
    /// Arguments do not match the type's schema (message carries file:line and field).
    #[error("{0}")]
    InvalidArguments(String),
    /// The host refused the call before it reached the plugin.
    #[error("{0}")]
    Refused(String),
    /// The plugin returned a typed error.
    #[error("{model}.{method}: {provider} returned {kind}: {message}")]
    Plugin {
        /// Model name.
        model: String,
        /// Method name.
        method: String,
        /// Who ran it: "plugin `proxmox` 0.1.0", or "built-in type `orch/repo`".
        provider: String,
        /// The error variant.
        kind: &'static str,
        /// The plugin's message.
        message: String,
    },
    /// The runtime could not complete the call (trap, time or memory limit).
    #[error("{model}.{method}: {source}")]
    Runtime {
        /// Model name.
        model: String,
        /// Method name.
        method: String,
        /// What happened.
        source: RuntimeError,
    },
    /// A write held a secret; nothing from the call was stored.
    #[error(
        "{model}.{method}: plugin `{plugin}` {version} tried to store {secret} in resource {spec}/{name}, at {field}; nothing from this call was stored. orch never stores secrets, and never alters what a plugin writes. If the value is not secret, do not take it from the vault; otherwise the plugin must store a reference to the secret (such as its vault key name), not the secret: report it to the plugin's author"
    )]
    SecretInWrite {
        /// Model name.
        model: String,
        /// Method name.
        method: String,
        /// Plugin id.
        plugin: String,
        /// Plugin version.
        version: String,
        /// Resource spec.
        spec: String,
        /// Instance name (redacted when the name itself holds the secret).
        name: String,
        /// Where: `name`, or `attributes.<path>` (keys holding the secret are redacted).
        field: String,
        /// What kind of secret (never the secret itself).
        secret: crate::vault::SecretSource,
    },
    /// The data store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One method call, as a workflow step or `orch model run` asks for it.
#[derive(Debug, Clone, Default)]
pub struct MethodCall {
    /// Model (definition) name.
    pub model: String,
    /// Method name.
    pub method: String,
    /// `job.step` (or `model.method` for a direct run), recorded as provenance.
    pub step: String,
    /// Step inputs (already resolved): they override method arguments of the same name and are
    /// visible to the definition's expressions as `inputs.*`, over the workflow's inputs.
    pub inputs: Map<String, Value>,
    /// The workflow's inputs, shared by its steps (`inputs` are laid over them).
    pub workflow_inputs: SharedInputs,
    /// `self.*` variables (forEach items).
    pub self_vars: Map<String, Value>,
    /// Ask the plugin not to change anything.
    pub dry_run: bool,
    /// The workflow's `tags`, laid over the definition's on the versions written.
    pub tags: crate::store::Tags,
}

/// What a successful call produced.
#[derive(Debug, Clone)]
pub struct MethodOutput {
    /// The method's JSON output (redacted).
    pub output: Value,
    /// Resource versions written, as `spec/name@vN`.
    pub resources: Vec<String>,
}

/// Everything a method run needs, shared by the steps of a run.
pub struct MethodRunner {
    /// The repository.
    pub repo: Arc<Repo>,
    /// Installed plugins.
    pub registry: Arc<PluginRegistry>,
    /// The data store.
    pub store: ResourceStore,
    /// CEL evaluator (compiled-expression cache, vault values seen).
    pub evaluator: Arc<Evaluator>,
    /// The repo's vault.
    pub vault: Arc<LocalVault>,
    /// The run's event stream.
    pub events: EventSink,
    /// The run id.
    pub run_id: String,
    /// The run's SSH connections, reused by its steps.
    pub ssh: SshSessionPool,
    /// The run's start record; resource writes wait until it is committed.
    pub started: crate::run::StartRecord,
    /// `--tag k=v` of the command line, laid over the workflow's and definition's tags.
    pub tags: crate::store::Tags,
    /// A worker's hold on the queued step it runs: writes commit only while it still holds it.
    pub claim: Option<crate::store::QueueClaim>,
}

fn plugin_error_kind(e: &PluginError) -> (&'static str, String) {
    match e {
        PluginError::InvalidArguments(m) => ("invalid-arguments", m.clone()),
        PluginError::Denied(m) => ("denied", m.clone()),
        PluginError::NotFound(m) => ("not-found", m.clone()),
        PluginError::Conflict(m) => ("conflict", m.clone()),
        PluginError::Transient(m) => ("transient", m.clone()),
        PluginError::Failed(m) => ("failed", m.clone()),
    }
}

/// A grant that cannot be built for this call, located at the global argument it names (a
/// template value that is not one literal origin or target).
fn grant_error(
    file: &std::path::Path,
    def: &Definition,
    globals: &Map<String, Value>,
    plugin: &str,
    kind: &str,
    why: &str,
) -> MethodError {
    let field = globals
        .keys()
        .map(|k| format!("globalArguments.{k}"))
        .find(|f| why.contains(&format!("{f} ")) || why.contains(&format!("{f} }}")));
    let line = field
        .as_deref()
        .and_then(|f| def.lines.line_of(f))
        .map(|l| format!(":{l}"))
        .unwrap_or_default();
    MethodError::Refused(format!(
        "{}{line}: plugin `{plugin}` {kind} grant: {why}",
        file.display()
    ))
}

/// Prefixes an expression error with the definition's file and the line of its field.
pub fn locate(
    def_file: &std::path::Path,
    lines: &crate::repo::LineIndex,
    err: &ExprError,
) -> String {
    match lines.line_of(&err.field) {
        Some(line) => format!("{}:{line}: {err}", def_file.display()),
        None => format!("{}: {err}", def_file.display()),
    }
}

impl MethodRunner {
    /// The tags stored on this call's writes: the definition's, under the workflow's, under
    /// the command line's.
    pub fn tags_for(&self, call: &MethodCall) -> crate::store::Tags {
        let mut tags = self
            .repo
            .model(&call.model)
            .map(|d| d.tags.clone())
            .unwrap_or_default();
        tags.extend(call.tags.clone());
        tags.extend(self.tags.clone());
        tags
    }

    /// The variables a definition's expressions see for this call, over the workflow's
    /// inputs (`call.workflow_inputs`, see `Evaluator::scope_over`).
    pub fn vars(&self, call: &MethodCall) -> Vars {
        let inputs = call.inputs.clone();
        let mut self_ = call.self_vars.clone();
        self_.insert("name".into(), Value::String(call.model.clone()));
        Vars {
            inputs,
            env: self.repo.env_values(),
            run_id: self.run_id.clone(),
            self_,
        }
    }

    fn sync_secrets(&self) {
        for s in self.evaluator.secrets() {
            self.events.redactor().add(&s);
        }
    }

    /// The kind (`read`, `list`, `converge`, `create`, …) of `model`'s method `method`, when
    /// both are known.
    pub fn kind_of(&self, model: &str, method: &str) -> Option<String> {
        let def = self.repo.model(model).ok()?;
        let provided = self.registry.get(&def.type_name).ok()?;
        provided.description.method(method).map(|m| m.kind.clone())
    }

    /// Runs one method to completion and commits its writes.
    pub async fn run(&self, call: &MethodCall) -> Result<MethodOutput, MethodError> {
        let def: &Definition = self
            .repo
            .model(&call.model)
            .map_err(|e| MethodError::Unknown(e.to_string()))?;
        let shown_file = def.file.clone();
        let provided = self.registry.get(&def.type_name).map_err(|e| {
            let line = def
                .lines
                .line_of("type")
                .map(|l| format!(":{l}"))
                .unwrap_or_default();
            MethodError::Unknown(format!("{}{line}: type: {e}", shown_file.display()))
        })?;
        let description = provided.description.clone();
        let plugin = provided.plugin.clone();
        let method = description.method(&call.method).ok_or_else(|| {
            let names: Vec<&str> = description
                .methods
                .iter()
                .map(|m| m.name.as_str())
                .collect();
            let hint = crate::suggest::closest(&call.method, names.iter().copied())
                .map(|b| format!("; did you mean `{b}`?"))
                .unwrap_or_default();
            MethodError::Unknown(format!(
                "model `{}` (type {}) has no method `{}`{hint} (methods: {})",
                call.model,
                def.type_name,
                call.method,
                names.join(", ")
            ))
        })?;

        // Resolve lazily: now, against the data as it is at this step's start.
        let data = StoreDataSource::new(self.store.clone(), self.vault.clone(), &self.repo)
            .in_run(&self.run_id);
        let vars = self.vars(call);
        let scope = self
            .evaluator
            .scope_over(&data, &call.workflow_inputs, vars);
        let globals = Value::Object(def.global_arguments.clone());
        let globals = scope
            .resolve_value(&globals, "globalArguments")
            .map_err(|e| MethodError::Expression(locate(&shown_file, &def.lines, &e)));
        self.sync_secrets();
        let globals = globals?;
        let mut args = match def.methods.get(&call.method) {
            Some(m) => {
                let field = format!("methods.{}.arguments", call.method);
                let v = scope
                    .resolve_value(&Value::Object(m.arguments.clone()), &field)
                    .map_err(|e| MethodError::Expression(locate(&shown_file, &def.lines, &e)));
                self.sync_secrets();
                v?
            }
            None => Value::Object(Map::new()),
        };
        drop(scope);
        validate::overlay_inputs(&mut args, &call.inputs, &method.arguments_schema);
        // Schema defaults are filled in by the host so grants see them (e.g. `sshPort: 22`).
        let mut globals = globals;
        validate::apply_defaults(&mut globals, &description.global_arguments_schema);
        validate::apply_defaults(&mut args, &method.arguments_schema);

        validate::check(
            &format!("{}#globalArguments", description.name),
            &description.global_arguments_schema,
            &globals,
        )
        .map_err(|problems| {
            MethodError::InvalidArguments(validate::describe(
                &shown_file,
                &def.lines,
                "globalArguments",
                &problems,
            ))
        })?;
        validate::check(
            &format!("{}#{}", description.name, method.name),
            &method.arguments_schema,
            &args,
        )
        .map_err(|problems| {
            MethodError::InvalidArguments(validate::describe(
                &shown_file,
                &def.lines,
                &format!("methods.{}.arguments", call.method),
                &problems,
            ))
        })?;
        let global_map = globals.as_object().cloned().unwrap_or_default();
        if method.destructive {
            let target = format!("{}.{}", call.model, call.method);
            let store = self.store.clone();
            let (schema, arg_map, inputs, model) = (
                method.arguments_schema.clone(),
                args.as_object().cloned().unwrap_or_default(),
                call.inputs.clone(),
                call.model.clone(),
            );
            tokio::task::spawn_blocking(move || {
                confirm::check(&target, &model, &schema, &arg_map, &inputs, &store)
            })
            .await
            .map_err(|e| MethodError::Refused(format!("confirmation check failed: {e}")))?
            .map_err(MethodError::Refused)?;
        }

        let manifest = &plugin.manifest;
        let operator = self.repo.config.grants.get(&manifest.id);
        let grant = HttpGrant::new(
            &manifest.capabilities.http,
            operator.and_then(|g| g.http.as_deref()),
            &global_map,
        )
        .map_err(|e| grant_error(&shown_file, def, &global_map, &manifest.id, "http", &e))?;
        let operator_ssh = operator.and_then(|g| g.ssh.as_deref());
        // A built-in type deploys orch itself: it reaches only what orch.yaml grants it.
        let operator_ssh = match plugin.builtin {
            true => Some(operator_ssh.unwrap_or(&[])),
            false => operator_ssh,
        };
        let ssh_grant = SshGrant::new(&manifest.capabilities.ssh, operator_ssh, &global_map)
            .map_err(|e| grant_error(&shown_file, def, &global_map, &manifest.id, "ssh", &e))?;
        let step = call.step.clone();
        let events = self.events.clone();
        let sink = Arc::new(move |level: LogLevel, message: &str| {
            events.emit(Event::Log {
                step: step.clone(),
                level,
                message: message.to_string(),
            });
        });
        let limits = &plugin.limits;
        let caps = CallCapabilities {
            log: LogCapability::new(sink, limits.values.max_log_lines),
            data: DataCapability::for_model(
                &call.model,
                &description.name,
                description
                    .resources
                    .iter()
                    .map(|r| r.name.clone())
                    .collect(),
                self.store.clone(),
                limits.values.max_writes,
            )
            .with_volatile(
                description
                    .resources
                    .iter()
                    .map(|r| (r.name.as_str(), r.volatile.as_slice())),
            )
            .limited_by(limits),
            http: HttpCapability::new(
                grant,
                limits.values.max_response_bytes,
                Duration::from_millis(limits.values.timeout_ms),
            ),
            ssh: SshCapability::new(
                ssh_grant,
                self.ssh.clone(),
                self.events.redactor().clone(),
                limits.values.max_response_bytes,
                Duration::from_millis(limits.values.timeout_ms),
            ),
        };
        let wit_call = Call {
            type_name: description.name.clone(),
            method: call.method.clone(),
            model_name: call.model.clone(),
            global_arguments: globals.to_string(),
            arguments: args.to_string(),
            dry_run: call.dry_run,
        };
        let runtime_err = |source| MethodError::Runtime {
            model: call.model.clone(),
            method: call.method.clone(),
            source,
        };
        // Compiled on first use: a run compiles only the plugins its steps call.
        let compiled = match plugin.builtin {
            true => None,
            false => Some(self.registry.compiled(&plugin).map_err(runtime_err)?),
        };
        // Nothing outside is touched by a run the store does not show yet (a kill during this
        // call must leave a run `orch runs list` can report as abandoned).
        if self.started.pending() {
            let started = self.started.clone();
            let _ = tokio::task::spawn_blocking(move || started.wait()).await;
        }
        // The dry run of a converge method is its typed plan.
        let runtime = &self.registry.runtime;
        let redactor = self.events.redactor();
        let outcome = match &compiled {
            None => {
                let ctx = crate::builtin::BuiltinContext {
                    repo_root: &self.repo.root,
                    vault: &self.vault,
                    redactor,
                };
                crate::builtin::execute(ctx, wit_call, caps).await
            }
            Some(compiled) if call.dry_run && method.kind == "converge" => runtime
                .plan(compiled, wit_call, caps)
                .await
                .map_err(runtime_err)?,
            Some(compiled) => runtime
                .execute(compiled, wit_call, caps)
                .await
                .map_err(runtime_err)?,
        };
        let output = match outcome.result {
            Ok(text) => text,
            Err(e) => {
                let (kind, message) = plugin_error_kind(&e);
                return Err(MethodError::Plugin {
                    model: call.model.clone(),
                    method: call.method.clone(),
                    provider: match plugin.builtin {
                        true => format!("built-in type `{}`", def.type_name),
                        false => format!("plugin `{}` {}", manifest.id, manifest.version),
                    },
                    kind,
                    // One line, controls escaped: the message is embedded in orch's own
                    // messages wherever it goes (terminal, run record, --json).
                    message: crate::output::escape_line(&redactor.redact(&message)).into_owned(),
                });
            }
        };
        // Stored data is never altered: a write holding a secret fails the call instead, and
        // none of the call's writes is committed.
        let writes = outcome.writes;
        for w in &writes {
            let found = match redactor.find(&w.name) {
                Some(source) => Some(("name".to_string(), source)),
                None => redactor
                    .find_in_json(&w.attributes)
                    .map(|f| (format!("attributes{}", f.path), f.source)),
            };
            if let Some((field, source)) = found {
                return Err(MethodError::SecretInWrite {
                    model: call.model.clone(),
                    method: call.method.clone(),
                    plugin: manifest.id.clone(),
                    version: manifest.version.clone(),
                    spec: crate::output::escape_line(&redactor.redact(&w.spec)).into_owned(),
                    name: crate::output::escape_line(&redactor.redact(&w.name)).into_owned(),
                    field: crate::output::escape_line(&field).into_owned(),
                    secret: source,
                });
            }
        }
        let provenance = Provenance {
            run_id: self.run_id.clone(),
            step: call.step.clone(),
            method: call.method.clone(),
            time: now_rfc3339(),
        };
        let store = self.store.clone();
        let model = call.model.clone();
        let to_commit = writes.clone();
        let tags = self.tags_for(call);
        // Tags are stored beside the attributes, so the same rule holds for them.
        if let Some(key) = tags
            .iter()
            .filter(|_| !writes.is_empty())
            .find(|(_, value)| redactor.find(value).is_some())
            .map(|(key, _)| key)
        {
            return Err(MethodError::Refused(format!(
                "tag `{}` of {}.{} holds a secret this call used; tags are stored in plain \
                 text, so none of its writes was committed: remove the secret from the tag",
                crate::output::escape_line(key),
                call.model,
                call.method
            )));
        }
        let versions = if writes.is_empty() {
            Vec::new()
        } else {
            let started = self.started.clone();
            let claim = self.claim.clone();
            tokio::task::spawn_blocking(move || {
                // A version must never name a run the store has no record of.
                started.wait();
                store.commit_claimed_writes(&model, &provenance, &tags, &to_commit, claim.as_ref())
            })
            .await
            .map_err(|e| MethodError::Refused(format!("commit task failed: {e}")))??
        };
        let mut resources = Vec::new();
        for (w, v) in writes.iter().zip(versions) {
            // A sighting of an unchanged resource stored no version: nothing was written.
            if w.unchanged.is_some() {
                continue;
            }
            self.events.emit(Event::ResourceWritten {
                step: call.step.clone(),
                model: call.model.clone(),
                spec: w.spec.clone(),
                name: w.name.clone(),
                version: v,
            });
            resources.push(format!("{}/{}@v{v}", w.spec, w.name));
        }
        let mut output: Value = serde_json::from_str(&output).unwrap_or(Value::String(output));
        redactor.redact_json(&mut output);
        Ok(MethodOutput { output, resources })
    }
}
