//! `${{ }}` templates: parse them, build the CEL context lazily, evaluate to typed JSON.
//!
//! A string that is exactly one template keeps the CEL type of its value; templates inside
//! longer strings are interpolated as text. The CEL context offers `model`, `inputs`, `env`,
//! `run`, `self`, `vault.get(vault, key)`, `data.latest(model, name)`,
//! `data.findByTag(key, value)`, `file.contents(path)` and `file.json(path)`.
//!
//! Data is pulled, not pushed: a [`Scope`] (one per step start) asks the [`DataSource`] for
//! a model only when an expression touches it, and remembers the answer for the rest of the
//! scope. Compiled expressions are cached in the [`Evaluator`] for the whole run.

mod bounds;
mod budget;
mod convert;
mod diagnose;
mod error;
mod state;
mod template;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, OnceLock, RwLock};

use cel::common::types::CelMap;
use cel::parser::{Expression, ParseErrors};
use cel::{Context, Env, Value as CelValue, extensions};
use serde_json::{Map, Value};

pub use self::bounds::{MAX_COMPREHENSION_NESTING, MAX_DEPTH, MAX_EXPR_BYTES};
pub use self::budget::{MAX_EVAL_BYTES, MAX_EVAL_STEPS, MAX_EVAL_TIME};
pub use self::error::{ExprError, ExprErrorKind};
pub use self::template::{contains_template, templates_in};

use self::state::{EvalState, ScopeCore, lock};
use self::template::{Segment, index_path, key_path};

/// Beyond this many distinct expressions the compile cache starts over, bounding memory.
const MAX_PROGRAMS: usize = 16_384;

/// Where data comes from; implemented by the host over its redb store and vault.
pub trait DataSource: Send + Sync {
    /// True when a model definition with this name exists.
    fn model_exists(&self, model: &str) -> bool;
    /// Names of every defined model, used to suggest a name for a misspelt one.
    fn model_names(&self) -> Vec<String>;
    /// Latest version of every resource of `model`: (spec, instance name, version, written_at RFC3339, attributes).
    fn model_resources(&self, model: &str) -> Result<Vec<ResourceData>, String>;
    /// Secret from a vault; Ok(None) when vault or key is missing.
    fn vault_get(&self, vault: &str, key: &str) -> Result<Option<String>, String>;
    /// `data.findByTag(key, value)`: the latest live version of every resource (of any model)
    /// whose latest version carries that tag, as (model, resource). None by default.
    fn find_by_tag(&self, key: &str, value: &str) -> Result<Vec<(String, ResourceData)>, String> {
        let _ = (key, value);
        Ok(Vec::new())
    }
    /// `file.contents(path)`: the text of a file, relative to the repository root. Refused by default.
    fn file_contents(&self, path: &str) -> Result<String, String> {
        let _ = path;
        Err("file.contents is not available here (no repository)".to_string())
    }
}

/// The latest version of one resource instance, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceData {
    /// The spec (resource type) the instance belongs to, e.g. `vm`.
    pub spec: String,
    /// The instance name, e.g. `web1`.
    pub name: String,
    /// The version number of this record.
    pub version: u64,
    /// When this version was written, RFC 3339.
    pub written_at: String,
    /// The resource's attributes document.
    pub attributes: Value,
    /// Set when this version is a tombstone: who removed the resource and when (`by run R at T …`), for the error
    /// an expression that uses it gets.
    pub retired: Option<String>,
}

/// Caller-supplied variables.
#[derive(Debug, Default, Clone)]
pub struct Vars {
    /// `inputs.<name>`: workflow or method inputs.
    pub inputs: Map<String, Value>,
    /// `env.<NAME>`: environment variables made available to expressions.
    pub env: BTreeMap<String, String>,
    /// `run.id`: the id of the current run.
    pub run_id: String,
    /// `self.<x>`: the current definition or forEach item.
    pub self_: Map<String, Value>,
}

/// Inputs shared by many scopes (a workflow's inputs, seen by every step and forEach item):
/// checked once, converted for CEL at most once, and cloned by reference.
#[derive(Clone, Default)]
pub struct SharedInputs(Arc<SharedInputsData>);

#[derive(Default)]
struct SharedInputsData {
    json: Map<String, Value>,
    too_deep: Option<String>,
    cel: OnceLock<CelMap<'static>>,
}

impl fmt::Debug for SharedInputs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SharedInputs").field(&self.0.json).finish()
    }
}

impl SharedInputs {
    /// Shares `json`; its depth is checked here, once.
    pub fn new(json: Map<String, Value>) -> SharedInputs {
        let too_deep = json.values().find_map(|v| convert::check_depth(v).err());
        SharedInputs(Arc::new(SharedInputsData {
            json,
            too_deep,
            cel: OnceLock::new(),
        }))
    }

    /// The inputs as JSON.
    pub fn json(&self) -> &Map<String, Value> {
        &self.0.json
    }

    /// Why the inputs cannot be converted, if they nest too deep.
    fn too_deep(&self) -> Option<&str> {
        self.0.too_deep.as_deref()
    }

    /// The inputs as a CEL map, converted on first use (empty when too deep).
    fn cel(&self) -> &CelMap<'static> {
        self.0.cel.get_or_init(|| match self.0.too_deep {
            Some(_) => convert::string_map([]),
            None => convert::object_to_map(&self.0.json),
        })
    }
}

/// A parsed expression that passed the bounds, with the budget's meters in it.
#[derive(Debug)]
struct Program {
    expr: Expression,
    /// Levels of the instrumented tree: how deep evaluating it recurses.
    depth: usize,
}

type Compiled = Result<Arc<Program>, ExprErrorKind>;

/// Expressions at most this long, and nesting at most [`INLINE_PARSE_NESTING`] brackets and
/// conditionals deep, are parsed on the caller's stack; others on a thread with a stack of
/// [`OWN_STACK_BYTES`]. The parser recurses once per operator in a chain (under 1 KiB each)
/// and once per nesting level (about 8 KiB each in a debug build).
const INLINE_PARSE_BYTES: usize = 256;
/// See [`INLINE_PARSE_BYTES`].
const INLINE_PARSE_NESTING: usize = 16;
/// Trees at most this deep are evaluated on the caller's stack; deeper ones on a thread with a
/// stack of [`OWN_STACK_BYTES`]. The interpreter recurses once per level, and its frame is
/// about 1.6 KiB optimized but 50 KiB in a debug build (its `#[inline(always)]` evaluator is
/// compiled into this crate): 8 levels then take 400 KiB of a runtime worker's 2 MiB.
const INLINE_EVAL_DEPTH: usize = 8;
/// The stack of a thread that parses or evaluates a large expression: enough for the largest
/// expression the bounds admit (about 130 instrumented levels of 50 KiB in a debug build, or a
/// 4 KiB operator chain for the parser), with room to spare; only the pages used are committed.
const OWN_STACK_BYTES: usize = 64 * 1024 * 1024;

/// Runs `f` on a thread of its own with a known, large stack, borrowing from the caller.
fn on_own_stack<R: Send>(f: impl FnOnce() -> R + Send) -> Result<R, ExprErrorKind> {
    std::thread::scope(|s| {
        let handle = std::thread::Builder::new()
            .name("orch-expr".to_string())
            .stack_size(OWN_STACK_BYTES)
            .spawn_scoped(s, f)
            .map_err(|e| {
                ExprErrorKind::Eval(format!("could not start a thread to evaluate on: {e}"))
            })?;
        handle.join().map_err(|_| {
            ExprErrorKind::Eval("the CEL interpreter failed on this expression".to_string())
        })
    })
}

/// The standard library plus the string, list, math and base64 extensions, built once.
static ENV: LazyLock<Arc<Env>> = LazyLock::new(|| {
    let mut env = Env::stdlib();
    let added = env
        .add_extension(extensions::strings)
        .and_then(|()| env.add_extension(extensions::lists))
        .and_then(|()| env.add_extension(extensions::math))
        .and_then(|()| env.add_extension(extensions::encoders));
    if let Err(e) = added {
        tracing::warn!(error = %e, "a CEL extension could not be added");
    }
    Arc::new(env)
});

/// Shared across a run: the compiled-program cache and the redaction set.
pub struct Evaluator {
    env: Arc<Env>,
    /// Holds the CEL functions; each evaluation runs in a child of it.
    root: Context<'static, 'static>,
    programs: RwLock<HashMap<Box<str>, Compiled>>,
    compiles: AtomicU64,
    secrets: Mutex<Vec<String>>,
}

impl Default for Evaluator {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Evaluator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Evaluator")
            .field("compiles", &self.compile_count())
            .field("secrets", &lock(&self.secrets).len())
            .finish_non_exhaustive()
    }
}

impl Evaluator {
    /// A new evaluator with an empty cache and redaction set.
    pub fn new() -> Self {
        let env = Arc::clone(&ENV);
        let mut root = Context::with_env(Arc::clone(&env));
        if let Err(e) = state::register_functions(&mut root) {
            tracing::error!(error = %e, "CEL functions could not be registered");
        }
        Evaluator {
            env,
            root,
            programs: RwLock::new(HashMap::new()),
            compiles: AtomicU64::new(0),
            secrets: Mutex::new(Vec::new()),
        }
    }

    /// Starts a scope (one step start): models it loads are remembered until it is dropped.
    pub fn scope<'a>(&'a self, data: &'a dyn DataSource, vars: Vars) -> Scope<'a> {
        Scope {
            evaluator: self,
            core: ScopeCore::new(data, &self.secrets, &vars, None),
        }
    }

    /// Starts a scope whose `inputs` are `base` with `vars.inputs` laid over it. `base` is
    /// converted for CEL at most once however many scopes share it.
    pub fn scope_over<'a>(
        &'a self,
        data: &'a dyn DataSource,
        base: &SharedInputs,
        vars: Vars,
    ) -> Scope<'a> {
        Scope {
            evaluator: self,
            core: ScopeCore::new(data, &self.secrets, &vars, Some(base)),
        }
    }

    /// Starts a scope whose top-level names also include `bindings` (e.g. `attributes` for
    /// `orch data query`), which shadow the usual variables of the same name.
    pub fn scope_with_bindings<'a>(
        &'a self,
        data: &'a dyn DataSource,
        vars: Vars,
        bindings: &Map<String, Value>,
    ) -> Scope<'a> {
        let mut core = ScopeCore::new(data, &self.secrets, &vars, None);
        core.bind(bindings);
        Scope {
            evaluator: self,
            core,
        }
    }

    /// Every vault value returned so far (the redaction set).
    pub fn secrets(&self) -> Vec<String> {
        lock(&self.secrets).clone()
    }

    /// Replaces every known secret in `text` with `[redacted]`, e.g. before logging it.
    pub fn redact(&self, text: &str) -> String {
        error::scrub(text.to_string(), &lock(&self.secrets))
    }

    /// How many times an expression was actually compiled (cache misses).
    pub fn compile_count(&self) -> u64 {
        self.compiles.load(Ordering::Relaxed)
    }

    /// For validation before a run: parses every `${{ }}` in a string, or the string itself
    /// as bare CEL when it holds no template.
    pub fn check_syntax(&self, template_or_expr: &str) -> Result<(), ExprError> {
        self.check_str(template_or_expr, "")
    }

    /// For validation before a run: checks every template in a JSON tree, naming the field of the first bad one.
    pub fn check_value(&self, value: &Value, field: &str) -> Result<(), ExprError> {
        let mut first = Ok(());
        template::walk(value, field, &mut |path, s| {
            if first.is_ok() && contains_template(s) {
                first = self.check_str(s, path);
            }
        });
        first
    }

    /// For validation before a run: every bad template in a JSON tree, each naming its field.
    pub fn check_templates(&self, value: &Value, field: &str) -> Vec<ExprError> {
        let mut problems = Vec::new();
        template::walk(value, field, &mut |path, s| {
            if contains_template(s)
                && let Err(e) = self.check_str(s, path)
            {
                problems.push(e);
            }
        });
        problems
    }

    fn check_str(&self, s: &str, field: &str) -> Result<(), ExprError> {
        if !contains_template(s) {
            let expr = s.trim();
            return self
                .compile(expr)
                .map(|_| ())
                .map_err(|kind| expr_error(field, expr, false, kind));
        }
        let segments =
            template::parse(s).map_err(|e| syntax_error(field, &e.text, false, e.message))?;
        for segment in segments {
            if let Segment::Expr(expr) = segment {
                self.compile(expr)
                    .map_err(|kind| expr_error(field, expr, true, kind))?;
            }
        }
        Ok(())
    }

    /// The parsed expression, from the cache when this text was seen before.
    fn compile(&self, src: &str) -> Compiled {
        if let Some(found) = self
            .programs
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(src)
        {
            return found.clone();
        }
        let compiled = compile_program(&self.env, src).map(Arc::new);
        self.compiles.fetch_add(1, Ordering::Relaxed);
        let mut programs = self.programs.write().unwrap_or_else(|e| e.into_inner());
        if programs.len() >= MAX_PROGRAMS {
            programs.clear();
        }
        programs.entry(src.into()).or_insert(compiled).clone()
    }

    fn scrub_kind(&self, kind: ExprErrorKind) -> ExprErrorKind {
        let secrets = lock(&self.secrets);
        if secrets.is_empty() {
            return kind;
        }
        kind.map_text(|text| error::scrub(text, &secrets))
    }
}

fn syntax_error(field: &str, expr: &str, templated: bool, message: String) -> ExprError {
    expr_error(field, expr, templated, ExprErrorKind::Syntax(message))
}

fn expr_error(field: &str, expr: &str, templated: bool, kind: ExprErrorKind) -> ExprError {
    ExprError {
        field: field.to_string(),
        expr: expr.to_string(),
        templated,
        kind,
    }
}

/// Parses one expression, checks it against the bounds and instruments it for the budget.
/// A long expression is parsed on a stack of its own, and a tree that is too deep is dropped
/// there too, since both recurse once per level.
fn compile_program(env: &Env, src: &str) -> Result<Program, ExprErrorKind> {
    bounds::check_length(src)?;
    let build = || {
        let expr = parse_expr(env, src).map_err(ExprErrorKind::Syntax)?;
        bounds::check_shape(bounds::measure(&expr))?;
        let expr = bounds::instrument(expr);
        let depth = bounds::eval_depth(&expr);
        Ok(Program { expr, depth })
    };
    if src.len() <= INLINE_PARSE_BYTES && bounds::parse_nesting(src) <= INLINE_PARSE_NESTING {
        build()
    } else {
        on_own_stack(build)?
    }
}

/// Parses one CEL expression. The parser is generated code; a panic in it must not take
/// the host down with it.
fn parse_expr(env: &Env, src: &str) -> Result<Expression, String> {
    if src.trim().is_empty() {
        return Err("empty expression".to_string());
    }
    let parser = env.parser().enable_ident_escape_syntax(true);
    match catch_unwind(AssertUnwindSafe(|| parser.parse(src))) {
        Ok(Ok(expr)) => Ok(expr),
        Ok(Err(errors)) => Err(parse_message(&errors)),
        Err(_) => Err("the expression could not be parsed".to_string()),
    }
}

/// `column 7: unexpected ')'`, without CEL's `<input>` framing and token lists; the first
/// few distinct errors only, as later ones usually follow from the first.
fn parse_message(errors: &ParseErrors) -> String {
    let mut lines: Vec<String> = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    for e in &errors.errors {
        let msg = clean_parse_message(&e.msg);
        let (line, col) = e.pos;
        let text = match (line > 1, col > 0) {
            (true, true) => format!("line {line}, column {col}: {msg}"),
            (false, true) => format!("column {col}: {msg}"),
            (true, false) => format!("line {line}: {msg}"),
            (false, false) => msg.clone(),
        };
        if !seen.contains(&msg) {
            seen.push(msg);
            lines.push(text);
        }
        if lines.len() == 3 {
            break;
        }
    }
    if lines.is_empty() {
        "invalid expression".to_string()
    } else {
        lines.join("; ")
    }
}

fn clean_parse_message(msg: &str) -> String {
    // Nested parser errors arrive as their Debug text; keep only their message.
    let msg = match msg.find("msg: \"") {
        Some(i) => msg[i + 6..].split('"').next().unwrap_or(msg),
        None => msg,
    };
    let msg = msg.strip_prefix("Syntax error: ").unwrap_or(msg);
    let msg = msg.find(" expecting ").map_or(msg, |i| &msg[..i]);
    msg.replace("mismatched input '<EOF>'", "unexpected end of expression")
        .replace("mismatched input", "unexpected")
}

/// One step's view of the data: memoizes loaded models and vault values.
pub struct Scope<'a> {
    evaluator: &'a Evaluator,
    core: ScopeCore<'a>,
}

impl fmt::Debug for Scope<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scope").finish_non_exhaustive()
    }
}

impl Scope<'_> {
    /// Resolve every template in a JSON tree; `field` is the dotted path of `value` used in errors (e.g. "globalArguments").
    pub fn resolve_value(&self, value: &Value, field: &str) -> Result<Value, ExprError> {
        // The tree comes from user files; its depth is checked before recursing into it.
        convert::check_depth(value)
            .map_err(|m| expr_error(field, "", false, ExprErrorKind::TooComplex(m)))?;
        self.resolve_tree(value, field)
    }

    fn resolve_tree(&self, value: &Value, field: &str) -> Result<Value, ExprError> {
        match value {
            Value::String(s) => self.resolve_str(s, field),
            Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, item)| self.resolve_tree(item, &index_path(field, i)))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array),
            Value::Object(map) => {
                let mut out = Map::with_capacity(map.len());
                for (key, item) in map {
                    out.insert(key.clone(), self.resolve_tree(item, &key_path(field, key))?);
                }
                Ok(Value::Object(out))
            }
            other => Ok(other.clone()),
        }
    }

    /// Resolve the templates in one string: typed when it is exactly one template, text otherwise.
    pub fn resolve_str(&self, s: &str, field: &str) -> Result<Value, ExprError> {
        if !contains_template(s) {
            return Ok(Value::String(s.to_string()));
        }
        let segments =
            template::parse(s).map_err(|e| syntax_error(field, &e.text, false, e.message))?;
        let fail = |expr: &str, kind| ExprError {
            field: field.to_string(),
            expr: expr.to_string(),
            templated: true,
            kind,
        };
        if let Some(expr) = template::whole_expr(&segments) {
            return self.eval(expr).map_err(|kind| fail(expr, kind));
        }
        let mut out = String::with_capacity(s.len());
        for segment in segments {
            match segment {
                Segment::Text(text) => out.push_str(text),
                Segment::Expr(expr) => {
                    let value = self.eval(expr).map_err(|kind| fail(expr, kind))?;
                    match value {
                        Value::String(text) => out.push_str(&text),
                        other => out.push_str(&other.to_string()),
                    }
                }
            }
        }
        Ok(Value::String(out))
    }

    /// Evaluate a bare CEL expression (no ${{ }}), e.g. for `orch eval` and workflow `guard`.
    pub fn eval_expr(&self, expr: &str) -> Result<Value, ExprError> {
        let expr = expr.trim();
        self.eval(expr).map_err(|kind| ExprError {
            field: String::new(),
            expr: expr.to_string(),
            templated: false,
            kind,
        })
    }

    fn eval(&self, src: &str) -> Result<Value, ExprErrorKind> {
        if let Some(invalid) = &self.core.invalid {
            return Err(invalid.clone());
        }
        let program = self.evaluator.compile(src)?;
        let run = || {
            catch_unwind(AssertUnwindSafe(|| self.eval_program(&program))).unwrap_or_else(|_| {
                Err(ExprErrorKind::Eval(
                    "the CEL interpreter failed on this expression".to_string(),
                ))
            })
        };
        let result = if program.depth <= INLINE_EVAL_DEPTH {
            run()
        } else {
            on_own_stack(run).and_then(|r| r)
        };
        result.map_err(|kind| self.evaluator.scrub_kind(kind))
    }

    fn eval_program(&self, program: &Program) -> Result<Value, ExprErrorKind> {
        let state = EvalState::new(&self.core);
        let root: &Context<'_, '_> = &self.evaluator.root;
        let mut ctx = root.new_inner_scope();
        ctx.set_variable_resolver(&state);
        match CelValue::resolve_val(&program.expr, &ctx) {
            Ok(value) => convert::val_to_json(value.as_ref()).map_err(ExprErrorKind::Type),
            Err(e) => Err(diagnose::explain(e, &program.expr, &ctx, &state)),
        }
    }
}

/// Models referenced as `model.<name>` in an expression (used for validation and laziness).
///
/// Also counts `model["name"]` and `data.latest("name", ..)` with literal names. Accepts a
/// bare expression or a string of `${{ }}` templates; text that does not parse names nothing.
pub fn referenced_models(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut scan = |src: &str| {
        if let Ok(program) = compile_program(&ENV, src) {
            diagnose::models_named(&program.expr, &mut out);
        }
    };
    if contains_template(expr) {
        if let Ok(segments) = template::parse(expr) {
            for segment in segments {
                if let Segment::Expr(e) = segment {
                    scan(e);
                }
            }
        }
    } else {
        scan(expr);
    }
    out
}

#[cfg(test)]
mod tests;
