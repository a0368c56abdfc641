//! The data behind one scope, and the per-evaluation view the interpreter sees.
//!
//! Models are loaded on first access and memoized in the scope. During one evaluation the
//! interpreter borrows model data straight from the memo (through `OnceLock` slots, which
//! hand out references without holding a lock), so `model.fleet.resource.vm[...]` copies
//! nothing. `vault.get` and `data.latest` must be `'static` CEL functions; they reach the
//! evaluation through a hidden variable whose name no expression can spell.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use cel::common::traits::{Container, Indexer};
use cel::common::types::{CelInt, CelMap, CelNull, CelString, Type};
use cel::common::value::{CowVal, StaticVal, Val};
use cel::context::VariableResolver;
use cel::{Context, ExecutionError, FunctionContext};

use super::ResourceData;
use super::bounds::{JOIN, METER, MeterKind, REPLACE};
use super::budget::{Budget, cost_of, replace_size};
use super::convert::{OwnedVal, check_depth, json_to_val, map_get, string_map, u64_to_val};
use super::error::ExprErrorKind;

/// Variable the CEL functions look up to reach the evaluation; not a valid CEL identifier.
const HANDLE: &str = "orch#eval";

/// How many distinct models one evaluation can borrow; more are copied instead.
const SLOTS: usize = 8;

/// CEL type of the `model` root, so messages and diagnostics can recognise it.
pub(super) static MODELS_TYPE: Type = Type::new_unspecified_type("orch.models");
static FN_CALL_TYPE: Type = Type::new_unspecified_type("orch.call");

/// Locks a mutex, tolerating poisoning: the data behind it stays consistent per entry.
pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What loading a model produced, memoized per scope.
#[derive(Debug)]
pub(super) enum ModelState {
    Loaded(LoadedModel),
    Unknown,
    NoData,
    Failed(String),
}

/// A model's latest resources, converted once for CEL.
#[derive(Debug)]
pub(super) struct LoadedModel {
    pub name: String,
    /// `{"resource": {spec: {instance: {...}}}}`.
    pub value: CelMap<'static>,
    /// spec → instance → written_at, for `data.latest` and messages.
    pub instances: BTreeMap<String, BTreeMap<String, String>>,
    /// (spec, instance) → who retired it and when, for instances whose latest version is a
    /// tombstone: expressions cannot see them and say why.
    pub retired: BTreeMap<(String, String), String>,
}

impl LoadedModel {
    fn build(name: &str, resources: Vec<ResourceData>) -> Self {
        let mut by_spec: BTreeMap<String, BTreeMap<String, ResourceData>> = BTreeMap::new();
        for r in resources {
            let instances = by_spec.entry(r.spec.clone()).or_default();
            let newer = instances
                .get(&r.name)
                .is_none_or(|old| old.version < r.version);
            if newer {
                instances.insert(r.name.clone(), r);
            }
        }
        let mut retired = BTreeMap::new();
        for (spec, instances) in &mut by_spec {
            instances.retain(|name, r| match &r.retired {
                Some(why) => {
                    retired.insert((spec.clone(), name.clone()), why.clone());
                    false
                }
                None => true,
            });
        }
        let mut instances_index = BTreeMap::new();
        let mut specs: Vec<(String, OwnedVal)> = Vec::with_capacity(by_spec.len());
        for (spec, instances) in by_spec {
            let mut entries: Vec<(String, OwnedVal)> = Vec::with_capacity(instances.len() + 2);
            // Shorthand `resource.<spec>.attributes` for single-instance specs, unless an
            // instance is itself called `attributes` (or `version`), which must stay reachable.
            if let Some(own) = instances.get(&spec)
                && !instances.contains_key("attributes")
            {
                entries.push(("attributes".to_string(), json_to_val(&own.attributes)));
                if !instances.contains_key("version") {
                    entries.push(("version".to_string(), u64_to_val(own.version)));
                }
            }
            let mut index = BTreeMap::new();
            for (instance, r) in instances {
                index.insert(instance.clone(), r.written_at.clone());
                entries.push((instance, Box::new(instance_map(&r))));
            }
            instances_index.insert(spec.clone(), index);
            specs.push((spec, Box::new(string_map(entries))));
        }
        let resource: OwnedVal = Box::new(string_map(specs));
        LoadedModel {
            name: name.to_string(),
            value: string_map([("resource".to_string(), resource)]),
            instances: instances_index,
            retired,
        }
    }

    /// The instance map at `resource.<spec>.<instance>`.
    fn instance(&self, spec: &str, instance: &str) -> Option<&(dyn Val + 'static)> {
        let resource = map_get(&self.value, "resource")?.downcast_ref::<CelMap>()?;
        let instances = map_get(resource, spec)?.downcast_ref::<CelMap>()?;
        map_get(instances, instance)
    }

    /// Who retired `spec`/`instance` and when, if its latest version is a tombstone.
    pub fn retired(&self, spec: &str, instance: &str) -> Option<&str> {
        self.retired
            .get(&(spec.to_string(), instance.to_string()))
            .map(String::as_str)
    }

    /// True when `resource.<spec>.attributes` is the single-instance shorthand.
    pub fn has_shorthand(&self, spec: &str) -> bool {
        self.instances
            .get(spec)
            .is_some_and(|i| i.contains_key(spec) && !i.contains_key("attributes"))
    }
}

/// One instance as CEL sees it: `attributes`, `version`, `name`, `writtenAt`.
fn instance_map(r: &ResourceData) -> CelMap<'static> {
    string_map([
        ("attributes".to_string(), json_to_val(&r.attributes)),
        ("version".to_string(), u64_to_val(r.version)),
        (
            "name".to_string(),
            Box::new(CelString::from(r.name.clone())) as OwnedVal,
        ),
        (
            "writtenAt".to_string(),
            Box::new(CelString::from(r.written_at.clone())) as OwnedVal,
        ),
    ])
}

/// A scope's `inputs`: its own, converted when the scope is made; or a run's shared inputs,
/// converted at most once for all its scopes; or a call's inputs over the shared ones, merged
/// only when an expression reads `inputs`. Sharing keeps a forEach over N items from
/// converting the workflow's inputs N times.
pub(super) enum Inputs {
    Own(CelMap<'static>),
    Shared(super::SharedInputs),
    Over {
        base: super::SharedInputs,
        over: serde_json::Map<String, serde_json::Value>,
        merged: OnceLock<CelMap<'static>>,
    },
}

impl Inputs {
    /// The `inputs` map as expressions see it.
    pub fn get(&self) -> &CelMap<'static> {
        match self {
            Inputs::Own(map) => map,
            Inputs::Shared(base) => base.cel(),
            Inputs::Over { base, over, merged } => merged.get_or_init(|| {
                let under = base
                    .cel()
                    .inner()
                    .iter()
                    .filter(|(k, _)| !over.contains_key(&super::convert::key_text(k)))
                    .map(|(k, v)| (super::convert::key_text(k), v.as_ref().clone_as_boxed()));
                let mine = over
                    .iter()
                    .map(|(k, v)| (k.clone(), super::convert::json_to_val(v)));
                string_map(under.chain(mine))
            }),
        }
    }
}

/// Everything one scope knows: variables converted once, and memoized loads.
pub(super) struct ScopeCore<'a> {
    pub data: &'a dyn super::DataSource,
    pub secrets: &'a Mutex<Vec<String>>,
    pub inputs: Inputs,
    pub env: CelMap<'static>,
    pub run: CelMap<'static>,
    pub self_: CelMap<'static>,
    /// Why the variables cannot be used, found when the scope was made.
    pub invalid: Option<ExprErrorKind>,
    /// Extra top-level names, shadowing the variables above (see `Evaluator::scope_with_bindings`).
    bindings: HashMap<String, OwnedVal>,
    models: Mutex<HashMap<String, Arc<ModelState>>>,
    vault: Mutex<HashMap<(String, String), String>>,
}

impl<'a> ScopeCore<'a> {
    /// A scope's variables; `base` (shared inputs) lies under `vars.inputs` when given.
    pub fn new(
        data: &'a dyn super::DataSource,
        secrets: &'a Mutex<Vec<String>>,
        vars: &super::Vars,
        base: Option<&super::SharedInputs>,
    ) -> Self {
        let base_too_deep = base
            .and_then(|b| b.too_deep())
            .map(|e| ExprErrorKind::Type(format!("`inputs`: {e}")));
        let invalid = base_too_deep.or_else(|| {
            [("inputs", &vars.inputs), ("self", &vars.self_)]
                .into_iter()
                .find_map(|(name, map)| {
                    map.values()
                        .find_map(|v| check_depth(v).err())
                        .map(|e| ExprErrorKind::Type(format!("`{name}`: {e}")))
                })
        });
        if invalid.is_some() {
            // Too deep to convert safely: the scope offers empty variables and every
            // evaluation fails with `invalid`.
            return ScopeCore {
                data,
                secrets,
                inputs: Inputs::Own(string_map([])),
                env: string_map([]),
                run: string_map([]),
                self_: string_map([]),
                invalid,
                bindings: HashMap::new(),
                models: Mutex::new(HashMap::new()),
                vault: Mutex::new(HashMap::new()),
            };
        }
        ScopeCore {
            data,
            secrets,
            inputs: match base {
                None => Inputs::Own(super::convert::object_to_map(&vars.inputs)),
                Some(base) if vars.inputs.is_empty() => Inputs::Shared(base.clone()),
                Some(base) => Inputs::Over {
                    base: base.clone(),
                    over: vars.inputs.clone(),
                    merged: OnceLock::new(),
                },
            },
            env: string_map(
                vars.env
                    .iter()
                    .map(|(k, v)| (k.clone(), Box::new(CelString::from(v.clone())) as OwnedVal)),
            ),
            run: string_map([(
                "id".to_string(),
                Box::new(CelString::from(vars.run_id.clone())) as OwnedVal,
            )]),
            self_: super::convert::object_to_map(&vars.self_),
            invalid: None,
            bindings: HashMap::new(),
            models: Mutex::new(HashMap::new()),
            vault: Mutex::new(HashMap::new()),
        }
    }

    /// Adds top-level names; a value nesting too deep makes every evaluation fail instead.
    pub fn bind(&mut self, bindings: &serde_json::Map<String, serde_json::Value>) {
        for (name, value) in bindings {
            if let Err(e) = check_depth(value) {
                self.invalid
                    .get_or_insert(ExprErrorKind::Type(format!("`{name}`: {e}")));
                continue;
            }
            self.bindings.insert(name.clone(), json_to_val(value));
        }
    }

    /// `data.findByTag(key, value)`: a list of the tagged resources, each as
    /// `model.<m>.resource.<spec>.<name>` gives it, plus its `model` and `spec`.
    fn find_by_tag(&self, key: &str, value: &str) -> Result<OwnedVal, ExprErrorKind> {
        let found = self
            .data
            .find_by_tag(key, value)
            .map_err(|e| ExprErrorKind::DataSource(format!("data.findByTag: {e}")))?;
        let mut items = Vec::with_capacity(found.len());
        for (model, r) in found {
            check_depth(&r.attributes).map_err(|e| {
                ExprErrorKind::DataSource(format!("resource {}/{}: {e}", r.spec, r.name))
            })?;
            items.push(serde_json::json!({
                "model": model,
                "spec": r.spec,
                "name": r.name,
                "version": r.version,
                "writtenAt": r.written_at,
                "attributes": r.attributes,
            }));
        }
        Ok(json_to_val(&serde_json::Value::Array(items)))
    }

    /// The model's state, loading it on first use. The lock is held while loading so that
    /// concurrent evaluations in one scope load a model only once.
    pub fn model(&self, name: &str) -> Arc<ModelState> {
        let mut models = lock(&self.models);
        if let Some(state) = models.get(name) {
            return Arc::clone(state);
        }
        let state = Arc::new(if !self.data.model_exists(name) {
            ModelState::Unknown
        } else {
            match self.data.model_resources(name) {
                Err(e) => ModelState::Failed(e),
                Ok(resources) if resources.is_empty() => ModelState::NoData,
                Ok(resources) => match resources.iter().find_map(|r| {
                    check_depth(&r.attributes)
                        .err()
                        .map(|e| format!("resource {}/{}: {e}", r.spec, r.name))
                }) {
                    Some(too_deep) => ModelState::Failed(too_deep),
                    None => {
                        tracing::trace!(model = name, count = resources.len(), "loaded model");
                        ModelState::Loaded(LoadedModel::build(name, resources))
                    }
                },
            }
        });
        models.insert(name.to_string(), Arc::clone(&state));
        state
    }

    /// Why a model cannot be used, as an error kind.
    pub fn model_error(&self, name: &str, state: &ModelState) -> Option<ExprErrorKind> {
        match state {
            ModelState::Loaded(_) => None,
            ModelState::Unknown => {
                let names = self.data.model_names();
                Some(ExprErrorKind::UnknownModel {
                    name: name.to_string(),
                    suggestion: super::error::suggest(name, names.iter().map(String::as_str)),
                })
            }
            ModelState::NoData => Some(ExprErrorKind::NoData {
                model: name.to_string(),
            }),
            ModelState::Failed(e) => Some(ExprErrorKind::DataSource(format!(
                "loading model `{name}`: {e}"
            ))),
        }
    }

    /// A vault secret, memoized per scope and added to the redaction set.
    fn vault_get(&self, vault: &str, key: &str) -> Result<String, ExprErrorKind> {
        let id = (vault.to_string(), key.to_string());
        if let Some(value) = lock(&self.vault).get(&id) {
            return Ok(value.clone());
        }
        match self.data.vault_get(vault, key) {
            Ok(Some(value)) => {
                {
                    let mut secrets = lock(self.secrets);
                    if !value.is_empty() && !secrets.contains(&value) {
                        secrets.push(value.clone());
                    }
                }
                lock(&self.vault).insert(id, value.clone());
                Ok(value)
            }
            Ok(None) => Err(ExprErrorKind::Vault {
                vault: vault.to_string(),
                key: key.to_string(),
            }),
            Err(e) => Err(ExprErrorKind::DataSource(format!("vault `{vault}`: {e}"))),
        }
    }

    /// `file.contents(path)`: a repository file's text.
    fn file_contents(&self, path: &str) -> Result<OwnedVal, ExprErrorKind> {
        self.data
            .file_contents(path)
            .map(|text| Box::new(CelString::from(text)) as OwnedVal)
            .map_err(|e| ExprErrorKind::DataSource(format!("file.contents(\"{path}\"): {e}")))
    }

    /// `file.json(path)`: a repository file parsed as JSON; a syntax error names file:line:column.
    fn file_json(&self, path: &str) -> Result<OwnedVal, ExprErrorKind> {
        let text = self
            .data
            .file_contents(path)
            .map_err(|e| ExprErrorKind::DataSource(format!("file.json(\"{path}\"): {e}")))?;
        let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
            let position = format!(" at line {} column {}", e.line(), e.column());
            let said = e.to_string();
            let said = said.strip_suffix(&position).unwrap_or(&said).to_string();
            ExprErrorKind::DataSource(format!(
                "file.json(\"{path}\"): {path}:{}:{}: not valid JSON: {said}; fix the file",
                e.line(),
                e.column()
            ))
        })?;
        check_depth(&value)
            .map_err(|e| ExprErrorKind::DataSource(format!("file.json(\"{path}\"): {e}")))?;
        Ok(json_to_val(&value))
    }

    /// `data.latest(model, name)`: the most recently written instance called `name`.
    fn latest(&self, model: &str, name: &str) -> Result<OwnedVal, ExprErrorKind> {
        let state = self.model(model);
        if let Some(kind) = self.model_error(model, &state) {
            return Err(kind);
        }
        let ModelState::Loaded(loaded) = &*state else {
            return Err(ExprErrorKind::Eval(format!(
                "model `{model}` is not loaded"
            )));
        };
        let found = loaded
            .instances
            .iter()
            .filter_map(|(spec, instances)| instances.get(name).map(|at| (at, spec)))
            .max_by(|a, b| a.0.cmp(b.0));
        match found.and_then(|(_, spec)| loaded.instance(spec, name)) {
            Some(instance) => Ok(instance.clone_as_boxed()),
            None => Err(ExprErrorKind::missing(
                match loaded.retired.iter().find(|((_, n), _)| n == name) {
                    Some(((spec, _), why)) => {
                        format!("resource `{name}` in model `{model}` (spec `{spec}` {why})")
                    }
                    None => format!("resource `{name}` in model `{model}`"),
                },
                name,
                loaded.instances.values().flat_map(|i| i.keys().cloned()),
            )),
        }
    }
}

/// A call from a CEL function into the evaluation, passed as an index to the hidden handle.
#[derive(Debug, Clone)]
enum FnCall {
    Vault { vault: String, key: String },
    Latest { model: String, name: String },
    FindByTag { key: String, value: String },
    File { path: String },
    FileJson { path: String },
    Charge { steps: u64, bytes: u64 },
}

impl Val for FnCall {
    fn get_type(&self) -> &Type {
        &FN_CALL_TYPE
    }

    fn cel_type() -> &'static Type {
        &FN_CALL_TYPE
    }

    fn clone_as_boxed<'v>(&self) -> Box<dyn Val + 'v> {
        Box::new(self.clone())
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
}

impl StaticVal for FnCall {}

/// One evaluation: the variable resolver, the `model` root and the functions' handle.
pub(super) struct EvalState<'s> {
    core: &'s ScopeCore<'s>,
    slots: [OnceLock<Arc<ModelState>>; SLOTS],
    used: AtomicUsize,
    /// The precise error of a failed `vault.get` / `data.latest`, which CEL can only carry as text.
    fn_error: Mutex<Option<ExprErrorKind>>,
    /// What this evaluation may still spend.
    budget: Budget,
}

impl<'s> EvalState<'s> {
    pub fn new(core: &'s ScopeCore<'s>) -> Self {
        EvalState {
            core,
            slots: Default::default(),
            used: AtomicUsize::new(0),
            fn_error: Mutex::new(None),
            budget: Budget::new(),
        }
    }

    pub fn core(&self) -> &'s ScopeCore<'s> {
        self.core
    }

    /// Takes the error recorded by the last failing function call.
    pub fn take_fn_error(&self) -> Option<ExprErrorKind> {
        lock(&self.fn_error).take()
    }

    /// The loaded model, borrowed for the whole evaluation.
    fn loaded(&self, name: &str) -> Option<&LoadedModel> {
        let used = self.used.load(Ordering::Acquire).min(SLOTS);
        for slot in &self.slots[..used] {
            if let Some(state) = slot.get()
                && let ModelState::Loaded(m) = &**state
                && m.name == name
            {
                return Some(m);
            }
        }
        let state = self.core.model(name);
        if !matches!(*state, ModelState::Loaded(_)) {
            return None;
        }
        let index = self.used.fetch_add(1, Ordering::AcqRel);
        let slot = self.slots.get(index)?;
        let state = slot.get_or_init(|| state);
        match &**state {
            ModelState::Loaded(m) => Some(m),
            _ => None,
        }
    }

    fn call(&self, call: &FnCall) -> Result<OwnedVal, ExecutionError> {
        let (function, result) = match call {
            FnCall::Vault { vault, key } => (
                "vault.get",
                self.core
                    .vault_get(vault, key)
                    .map(|s| Box::new(CelString::from(s)) as OwnedVal),
            ),
            FnCall::Latest { model, name } => ("data.latest", self.core.latest(model, name)),
            FnCall::FindByTag { key, value } => {
                ("data.findByTag", self.core.find_by_tag(key, value))
            }
            FnCall::File { path } => ("file.contents", self.core.file_contents(path)),
            FnCall::FileJson { path } => ("file.json", self.core.file_json(path)),
            FnCall::Charge { steps, bytes } => (
                METER,
                self.budget
                    .charge(*steps, *bytes)
                    .map(|()| Box::new(CelNull) as OwnedVal),
            ),
        };
        result.map_err(|kind| {
            let message = kind.to_string();
            *lock(&self.fn_error) = Some(kind);
            ExecutionError::function_error(function, message)
        })
    }

    /// A model fetched for a value that outlives this evaluation's borrow: copied.
    fn model_copy(core: &ScopeCore<'_>, name: &str) -> Result<OwnedVal, ExecutionError> {
        match &*core.model(name) {
            ModelState::Loaded(m) => Ok(m.value.clone_as_boxed()),
            _ => Err(ExecutionError::no_such_key(name)),
        }
    }
}

impl fmt::Debug for EvalState<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("model")
    }
}

impl VariableResolver for EvalState<'_> {
    fn resolve<'b>(&'b self, variable: &str) -> Option<CowVal<'b, 'b>> {
        if let Some(bound) = self.core.bindings.get(variable) {
            return Some(CowVal::Borrowed(bound.as_ref()));
        }
        match variable {
            "inputs" => Some(CowVal::Borrowed(self.core.inputs.get())),
            "env" => Some(CowVal::Borrowed(&self.core.env)),
            "run" => Some(CowVal::Borrowed(&self.core.run)),
            "self" => Some(CowVal::Borrowed(&self.core.self_)),
            "model" | HANDLE => Some(CowVal::Borrowed(self)),
            _ => {
                // The interpreter asks for the longest dotted prefix first; answering
                // `model.<name>` directly skips a lookup through the root.
                let name = variable.strip_prefix("model.")?;
                if name.contains('.') {
                    return None;
                }
                self.loaded(name)
                    .map(|m| CowVal::Borrowed(&m.value as &dyn Val))
            }
        }
    }
}

impl Val for EvalState<'_> {
    fn get_type(&self) -> &Type {
        &MODELS_TYPE
    }

    fn cel_type() -> &'static Type {
        &MODELS_TYPE
    }

    fn as_indexer<'b, 'v>(&'b self) -> Option<&'b (dyn Indexer + 'v)>
    where
        Self: 'v,
    {
        Some(self)
    }

    fn as_container(&self) -> Option<&dyn Container> {
        Some(self)
    }

    fn clone_as_boxed<'v>(&self) -> Box<dyn Val + 'v>
    where
        Self: 'v,
    {
        Box::new(DetachedModels { core: self.core })
    }
}

impl Indexer for EvalState<'_> {
    fn get<'b, 'v>(&'b self, idx: &dyn Val) -> Result<CowVal<'b, 'v>, ExecutionError>
    where
        Self: 'v,
    {
        if let Some(name) = idx.downcast_ref::<CelString>() {
            let name = name.inner();
            if let Some(m) = self.loaded(name) {
                return Ok(CowVal::Borrowed(&m.value));
            }
            // Past the slots the model is loaded but has to be copied.
            if matches!(*self.core.model(name), ModelState::Loaded(_)) {
                return EvalState::model_copy(self.core, name).map(CowVal::Owned);
            }
            return Err(ExecutionError::no_such_key(name));
        }
        if let Some(call) = idx.downcast_ref::<FnCall>() {
            return self.call(call).map(CowVal::Owned);
        }
        Err(ExecutionError::UnexpectedType {
            got: idx.get_type().name().to_string(),
            want: "string".to_string(),
        })
    }

    fn steal<'v>(self: Box<Self>, idx: &dyn Val) -> Result<Box<dyn Val + 'v>, ExecutionError>
    where
        Self: 'v,
    {
        self.get(idx).map(CowVal::into_owned)
    }
}

impl Container for EvalState<'_> {
    fn contains(&self, key: &dyn Val) -> Result<bool, ExecutionError> {
        match key.downcast_ref::<CelString>() {
            Some(name) => Ok(matches!(
                *self.core.model(name.inner()),
                ModelState::Loaded(_)
            )),
            None => Ok(false),
        }
    }
}

/// The `model` root copied out of an evaluation (e.g. into a list): looks models up
/// through the scope and copies them.
struct DetachedModels<'s> {
    core: &'s ScopeCore<'s>,
}

impl fmt::Debug for DetachedModels<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("model")
    }
}

impl Val for DetachedModels<'_> {
    fn get_type(&self) -> &Type {
        &MODELS_TYPE
    }

    fn cel_type() -> &'static Type {
        &MODELS_TYPE
    }

    fn as_indexer<'b, 'v>(&'b self) -> Option<&'b (dyn Indexer + 'v)>
    where
        Self: 'v,
    {
        Some(self)
    }

    fn clone_as_boxed<'v>(&self) -> Box<dyn Val + 'v>
    where
        Self: 'v,
    {
        Box::new(DetachedModels { core: self.core })
    }
}

impl Indexer for DetachedModels<'_> {
    fn get<'b, 'v>(&'b self, idx: &dyn Val) -> Result<CowVal<'b, 'v>, ExecutionError>
    where
        Self: 'v,
    {
        match idx.downcast_ref::<CelString>() {
            Some(name) => EvalState::model_copy(self.core, name.inner()).map(CowVal::Owned),
            None => Err(ExecutionError::UnexpectedType {
                got: idx.get_type().name().to_string(),
                want: "string".to_string(),
            }),
        }
    }

    fn steal<'v>(self: Box<Self>, idx: &dyn Val) -> Result<Box<dyn Val + 'v>, ExecutionError>
    where
        Self: 'v,
    {
        self.get(idx).map(CowVal::into_owned)
    }
}

/// The shape of a CEL function taking its arguments raw.
type CelFn = Box<
    dyn for<'c, 'k> Fn(&mut FunctionContext<'c, 'k>) -> Result<CowVal<'c, 'k>, ExecutionError>
        + Send
        + Sync,
>;

/// Adds `vault.get`, `data.latest`, `file.contents`, `file.json` and the budget's hidden functions to the evaluator's root context.
pub(super) fn register_functions(ctx: &mut Context<'static, 'static>) -> Result<(), String> {
    let meter: CelFn = Box::new(|ftx| {
        let mut args = std::mem::take(&mut ftx.args);
        let int = |i: usize| {
            args.get(i)
                .and_then(|a| a.downcast_ref::<CelInt>().map(|n| *n.inner()))
                .unwrap_or(1)
        };
        let (kind, cost) = (MeterKind::from_arg(int(1)), int(2));
        args.truncate(1);
        let value = args
            .pop()
            .ok_or_else(|| ExecutionError::function_error(METER, "expects a value"))?;
        let (steps, bytes) = cost_of(kind, cost, &value);
        charge(ftx, steps, bytes)?;
        Ok(value)
    });
    let replace: CelFn = Box::new(|ftx| {
        let this = ftx
            .this
            .as_ref()
            .and_then(|t| t.downcast_ref::<CelString>());
        let strings: Vec<&str> = ftx
            .args
            .iter()
            .take(2)
            .filter_map(|a| a.downcast_ref::<CelString>().map(|s| s.inner()))
            .collect();
        let n = match ftx.args.get(2) {
            None => None,
            Some(n) => Some(
                *n.downcast_ref::<CelInt>()
                    .ok_or_else(replace_usage)?
                    .inner(),
            ),
        };
        let (Some(this), [old, new], 2..=3) = (this, strings.as_slice(), ftx.args.len()) else {
            return Err(replace_usage());
        };
        let (size, limit) = replace_size(this.inner(), old, new, n);
        charge(ftx, 1, size)?;
        Ok(CowVal::owned(CelString::from(
            this.inner().replacen(old, new, limit),
        )))
    });
    let join: CelFn = Box::new(|ftx| {
        let usage = || {
            ExecutionError::function_error(
                "join",
                "expects a list of strings and an optional string separator",
            )
        };
        let sep = match ftx.args.as_slice() {
            [] => "",
            [sep] => sep.downcast_ref::<CelString>().ok_or_else(usage)?.inner(),
            _ => return Err(usage()),
        };
        let list = ftx
            .this
            .as_ref()
            .and_then(|t| t.as_iterable())
            .ok_or_else(usage)?;
        let mut parts: Vec<&str> = Vec::new();
        let mut items = list.iter();
        while let Some(item) = items.next() {
            parts.push(item.downcast_ref::<CelString>().ok_or_else(usage)?.inner());
        }
        let size = parts.iter().map(|p| p.len() as u64).sum::<u64>()
            + (parts.len().saturating_sub(1) as u64).saturating_mul(sep.len() as u64);
        charge(ftx, 1, size)?;
        Ok(CowVal::owned(CelString::from(parts.join(sep))))
    });
    for (name, f) in [(METER, meter), (REPLACE, replace), (JOIN, join)] {
        ctx.add_function::<CelFn, CelFn>(name, f)
            .map_err(|e| e.to_string())?;
    }
    let vault: CelFn = Box::new(|ftx| {
        let [vault, key] = string_args(ftx, "vault.get")?;
        dispatch(ftx, FnCall::Vault { vault, key })
    });
    let latest: CelFn = Box::new(|ftx| {
        let [model, name] = string_args(ftx, "data.latest")?;
        dispatch(ftx, FnCall::Latest { model, name })
    });
    let find_by_tag: CelFn = Box::new(|ftx| {
        let [key, value] = string_args(ftx, "data.findByTag")?;
        dispatch(ftx, FnCall::FindByTag { key, value })
    });
    let file_contents: CelFn = Box::new(|ftx| {
        let path = path_arg(ftx, "file.contents")?;
        let text = dispatch(ftx, FnCall::File { path })?;
        // The text is a value the expression builds: it counts against the byte budget.
        let size = text
            .downcast_ref::<CelString>()
            .map_or(0, |s| s.inner().len() as u64);
        charge(ftx, 1, size)?;
        Ok(text)
    });
    let file_json: CelFn = Box::new(|ftx| {
        let path = path_arg(ftx, "file.json")?;
        let value = dispatch(ftx, FnCall::FileJson { path })?;
        let (steps, bytes) = cost_of(MeterKind::Built, 1, &value);
        charge(ftx, steps, bytes)?;
        Ok(value)
    });
    ctx.add_function::<CelFn, CelFn>("vault.get", vault)
        .map_err(|e| e.to_string())?;
    ctx.add_function::<CelFn, CelFn>("file.contents", file_contents)
        .map_err(|e| e.to_string())?;
    ctx.add_function::<CelFn, CelFn>("file.json", file_json)
        .map_err(|e| e.to_string())?;
    ctx.add_function::<CelFn, CelFn>("data.findByTag", find_by_tag)
        .map_err(|e| e.to_string())?;
    ctx.add_function::<CelFn, CelFn>("data.latest", latest)
        .map_err(|e| e.to_string())
}

fn string_args(
    ftx: &FunctionContext<'_, '_>,
    function: &str,
) -> Result<[String; 2], ExecutionError> {
    let strings: Vec<String> = ftx
        .args
        .iter()
        .filter_map(|a| a.downcast_ref::<CelString>().map(|s| s.inner().to_string()))
        .collect();
    match <[String; 2]>::try_from(strings) {
        Ok(pair) if ftx.args.len() == 2 && ftx.this.is_none() => Ok(pair),
        _ => Err(ExecutionError::function_error(
            function,
            "expects two string arguments",
        )),
    }
}

/// The one string argument of `file.contents` / `file.json`.
fn path_arg(ftx: &FunctionContext<'_, '_>, function: &str) -> Result<String, ExecutionError> {
    match (ftx.args.as_slice(), &ftx.this) {
        ([path], None) => path
            .downcast_ref::<CelString>()
            .map(|s| s.inner().to_string()),
        _ => None,
    }
    .ok_or_else(|| {
        ExecutionError::function_error(
            function,
            "expects one string argument, a path relative to the repository root",
        )
    })
}

fn replace_usage() -> ExecutionError {
    ExecutionError::function_error(
        "replace",
        "expects string arguments: s.replace(old, new) or s.replace(old, new, n)",
    )
}

/// Charges the evaluation's budget from inside a CEL function.
fn charge(ftx: &FunctionContext<'_, '_>, steps: u64, bytes: u64) -> Result<(), ExecutionError> {
    dispatch(ftx, FnCall::Charge { steps, bytes }).map(|_| ())
}

fn dispatch<'c, 'k>(
    ftx: &FunctionContext<'c, 'k>,
    call: FnCall,
) -> Result<CowVal<'c, 'k>, ExecutionError> {
    let handle = ftx.ptx.get_variable(HANDLE).ok_or_else(|| {
        ExecutionError::function_error(ftx.name, "only available while resolving a scope")
    })?;
    let indexer = handle.as_indexer().ok_or_else(|| {
        ExecutionError::function_error(ftx.name, "only available while resolving a scope")
    })?;
    let value = indexer.get(&call)?.into_owned();
    Ok(CowVal::Owned(value))
}
