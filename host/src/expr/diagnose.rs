//! Turning CEL's terse errors into messages that say exactly what is missing.
//!
//! CEL reports a missing key as "No such key: x". To say *which* `x` (an instance of a
//! spec of a model, an attribute, an input) we walk the failed expression again, find the
//! innermost access whose operand evaluates but whose key does not exist, and describe it
//! by its path from the root variable.

use cel::common::ast::{Expr, LiteralValue, operators};
use cel::common::types::{CelBool, CelString};
use cel::common::value::CowVal;
use cel::parser::Expression;
use cel::{Context, ExecutionError, Value as CelValue};

use super::bounds::{METER, children};
use super::convert::{index_text, map_keys};
use super::error::ExprErrorKind;
use super::state::{EvalState, MODELS_TYPE, ModelState};

/// The variables every scope provides, for "did you mean".
const ROOT_NAMES: [&str; 5] = ["model", "inputs", "env", "run", "self"];

/// Explains a failed evaluation as precisely as the expression allows.
pub(super) fn explain(
    err: ExecutionError,
    expr: &Expression,
    ctx: &Context<'_, '_>,
    state: &EvalState<'_>,
) -> ExprErrorKind {
    match err {
        ExecutionError::FunctionError { ref function, .. }
            if function == "vault.get"
                || function == "data.latest"
                || function == "file.contents"
                || function == "file.json"
                || function == METER =>
        {
            state
                .take_fn_error()
                .unwrap_or_else(|| ExprErrorKind::Eval(err.to_string()))
        }
        ExecutionError::NoSuchKey(key) => match find(expr, ctx) {
            Some(found) => describe(found, state),
            None => ExprErrorKind::missing(format!("key `{key}`"), &key, []),
        },
        ExecutionError::UndeclaredReference(name) if calls_function(expr, &name) => {
            ExprErrorKind::missing(format!("function `{name}`"), &name, [])
        }
        ExecutionError::UndeclaredReference(name) => ExprErrorKind::missing(
            format!("variable or function `{name}`"),
            &name,
            ROOT_NAMES.iter().map(|s| s.to_string()),
        ),
        ExecutionError::NoSuchOverload(_)
        | ExecutionError::UnexpectedType { .. }
        | ExecutionError::UnsupportedBinaryOperator(..)
        | ExecutionError::ValuesNotComparable(..)
        | ExecutionError::UnsupportedKeyType(_)
        | ExecutionError::UnsupportedIndex(..) => ExprErrorKind::Type(err.to_string()),
        other => ExprErrorKind::Eval(other.to_string()),
    }
}

/// An access whose key is missing.
struct Found {
    /// Keys from the root variable to the operand, when the operand is a plain path.
    base_path: Option<Vec<String>>,
    key: String,
    base_is_models: bool,
    available: Vec<String>,
}

enum Key<'e> {
    Field(&'e str),
    Expr(&'e Expression),
}

fn eval<'e, 'p, 'v>(
    e: &'e Expression,
    ctx: &'e Context<'p, 'v>,
) -> Result<CowVal<'e, 'v>, ExecutionError> {
    CelValue::resolve_val(e, ctx)
}

fn find(e: &Expression, ctx: &Context<'_, '_>) -> Option<Found> {
    match &e.expr {
        Expr::Select(sel) if !sel.test => access(&sel.operand, Key::Field(&sel.field), ctx),
        Expr::Call(call)
            if call.target.is_none()
                && call.args.len() == 2
                && call.func_name == operators::INDEX =>
        {
            access(&call.args[0], Key::Expr(&call.args[1]), ctx)
        }
        Expr::Call(call)
            if call.target.is_none()
                && call.args.len() == 3
                && call.func_name == operators::CONDITIONAL =>
        {
            let Ok(cond) = eval(&call.args[0], ctx) else {
                return find(&call.args[0], ctx);
            };
            match cond.downcast_ref::<CelBool>().map(|b| *b.inner()) {
                Some(true) => find(&call.args[1], ctx),
                Some(false) => find(&call.args[2], ctx),
                None => None,
            }
        }
        _ => children(e)
            .into_iter()
            .filter(|c| eval(c, ctx).is_err())
            .find_map(|c| find(c, ctx)),
    }
}

fn access(operand: &Expression, key: Key<'_>, ctx: &Context<'_, '_>) -> Option<Found> {
    let Ok(base) = eval(operand, ctx) else {
        return find(operand, ctx);
    };
    let key_val: CowVal<'_, '_> = match key {
        Key::Field(f) => CowVal::owned(CelString::from(f.to_string())),
        Key::Expr(k) => match eval(k, ctx) {
            Ok(v) => v,
            Err(_) => return find(k, ctx),
        },
    };
    let indexer = base.as_indexer()?;
    match indexer.get(key_val.as_ref()) {
        Err(ExecutionError::NoSuchKey(_)) => Some(Found {
            base_path: key_path(operand, ctx),
            key: index_text(key_val.as_ref()),
            base_is_models: base.get_type().name() == MODELS_TYPE.name(),
            available: map_keys(base.as_ref()).unwrap_or_default(),
        }),
        _ => None,
    }
}

/// The keys from the root variable to `e`, e.g. `["model", "fleet", "resource", "vm"]`.
fn key_path(e: &Expression, ctx: &Context<'_, '_>) -> Option<Vec<String>> {
    match &e.expr {
        Expr::Ident(name) => Some(vec![name.clone()]),
        Expr::Select(sel) if !sel.test => {
            let mut path = key_path(&sel.operand, ctx)?;
            path.push(sel.field.clone());
            Some(path)
        }
        Expr::Call(call)
            if call.target.is_none()
                && call.args.len() == 2
                && call.func_name == operators::INDEX =>
        {
            let mut path = key_path(&call.args[0], ctx)?;
            let key = eval(&call.args[1], ctx).ok()?;
            path.push(index_text(key.as_ref()));
            Some(path)
        }
        _ => None,
    }
}

fn describe(found: Found, state: &EvalState<'_>) -> ExprErrorKind {
    let core = state.core();
    if found.base_is_models {
        let model = core.model(&found.key);
        if let Some(kind) = core.model_error(&found.key, &model) {
            return kind;
        }
    }
    if let Some([root, m, resource, spec]) = found.base_path.as_deref()
        && root == "model"
        && resource == "resource"
        && let Some(by) = retired(state, m, spec, &found.key)
    {
        let key = &found.key;
        return ExprErrorKind::Retired {
            resource: format!("{spec}/{key} of model {m}"),
            by: format!("{by}; its history stays in `orch data versions {m} {key}`"),
        };
    }
    let missing = match &found.base_path {
        Some(path) => describe_missing(path, &found.key, state),
        None => format!("key `{}`", found.key),
    };
    ExprErrorKind::missing(missing, &found.key, found.available)
}

fn describe_missing(path: &[String], key: &str, state: &EvalState<'_>) -> String {
    let p: Vec<&str> = path.iter().map(String::as_str).collect();
    let dotted = |rest: &[&str]| {
        let mut parts: Vec<&str> = rest.to_vec();
        parts.push(key);
        parts.join(".")
    };
    match p.as_slice() {
        ["model", m] => format!("key `{key}` of model `{m}`"),
        ["model", m, "resource"] => format!("spec `{key}` in model `{m}`"),
        ["model", m, "resource", spec] => {
            format!("instance `{key}` of spec `{spec}` in model `{m}`")
        }
        ["model", m, "resource", spec, "attributes", rest @ ..] if shorthand(state, m, spec) => {
            format!(
                "attribute `{}` of resource `{spec}` in model `{m}`",
                dotted(rest)
            )
        }
        ["model", m, "resource", spec, inst] => {
            format!("field `{key}` of instance `{inst}` of spec `{spec}` in model `{m}`")
        }
        ["model", m, "resource", spec, inst, "attributes", rest @ ..] => format!(
            "attribute `{}` of instance `{inst}` of spec `{spec}` in model `{m}`",
            dotted(rest)
        ),
        ["inputs", rest @ ..] => format!("input `{}`", dotted(rest)),
        ["env"] => format!("environment variable `{key}`"),
        ["self", rest @ ..] => format!("`self.{}`", dotted(rest)),
        ["run", rest @ ..] => format!("`run.{}`", dotted(rest)),
        _ => format!("key `{key}` in `{}`", render_path(&p)),
    }
}

/// Who removed `model`'s `spec`/`instance` and when (`by run R at T …`), if it was retired.
fn retired(state: &EvalState<'_>, model: &str, spec: &str, instance: &str) -> Option<String> {
    match &*state.core().model(model) {
        ModelState::Loaded(m) => m.retired(spec, instance).map(str::to_string),
        _ => None,
    }
}

fn shorthand(state: &EvalState<'_>, model: &str, spec: &str) -> bool {
    match &*state.core().model(model) {
        ModelState::Loaded(m) => m.has_shorthand(spec),
        _ => false,
    }
}

/// `a.b["c-d"]`: dots for identifiers, brackets for anything else.
fn render_path(path: &[&str]) -> String {
    let mut out = String::new();
    for (i, key) in path.iter().enumerate() {
        let ident = !key.is_empty()
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !key.starts_with(|c: char| c.is_ascii_digit());
        if i == 0 {
            out.push_str(key);
        } else if ident {
            out.push('.');
            out.push_str(key);
        } else {
            out.push_str(&format!("[{key:?}]"));
        }
    }
    out
}

/// Calls `f` on every subexpression of `e`, `e` included.
fn visit(e: &Expression, f: &mut dyn FnMut(&Expression)) {
    let mut stack = vec![e];
    while let Some(node) = stack.pop() {
        f(node);
        let mut kids = children(node);
        kids.reverse();
        stack.extend(kids);
    }
}

/// Model names an expression names literally: `model.x`, `model["x"]`, `data.latest("x", ..)`.
pub(super) fn models_named(e: &Expression, out: &mut Vec<String>) {
    visit(e, &mut |node| {
        let name = match &node.expr {
            Expr::Select(sel) if is_ident(&sel.operand, "model") => Some(sel.field.clone()),
            Expr::Call(call)
                if call.target.is_none()
                    && call.args.len() == 2
                    && call.func_name == operators::INDEX
                    && is_ident(&call.args[0], "model") =>
            {
                string_literal(&call.args[1])
            }
            Expr::Call(call)
                if call.func_name == "latest"
                    && call.target.as_deref().is_some_and(|t| is_ident(t, "data")) =>
            {
                call.args.first().and_then(string_literal)
            }
            _ => None,
        };
        if let Some(name) = name
            && !out.contains(&name)
        {
            out.push(name);
        }
    });
}

/// True when `name` is called as a function somewhere in `e` rather than used as a variable.
fn calls_function(e: &Expression, name: &str) -> bool {
    let mut found = false;
    visit(e, &mut |node| {
        if let Expr::Call(call) = &node.expr
            && call.func_name == name
        {
            found = true;
        }
    });
    found
}

fn is_ident(e: &Expression, name: &str) -> bool {
    matches!(&e.expr, Expr::Ident(n) if n == name)
}

fn string_literal(e: &Expression) -> Option<String> {
    match &e.expr {
        Expr::Literal(LiteralValue::String(s)) => Some(s.inner().to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_paths_readably() {
        assert_eq!(
            render_path(&["model", "fleet", "resource", "vm", "gold-image"]),
            "model.fleet.resource.vm[\"gold-image\"]"
        );
        assert_eq!(render_path(&["inputs", "0"]), "inputs[\"0\"]");
    }
}
