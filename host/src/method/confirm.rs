//! Destructive methods run only when the caller names what they destroy.
//!
//! A destructive method's argument schema may carry
//! `"x-orch-confirm": {"input": "expectVmid", "spec": "vm", "nameArgument": "vmName", "attribute": "vmid"}`:
//! the call must pass `expectVmid`, equal to attribute `vmid` of the model's stored `vm`
//! resource named by `vmName`. Without that extension the call must pass `confirm=true`.
//! Either way the check happens in the host, before the plugin (and so the API) is reached.

use crate::store::ResourceStore;
use serde::Deserialize;
use serde_json::{Map, Value};

/// The schema extension that says how to confirm a destructive call.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfirmRule {
    /// The argument that carries the expected value.
    pub input: String,
    /// The resource spec holding the real value.
    pub spec: String,
    /// The argument naming the resource instance.
    pub name_argument: String,
    /// The attribute compared with the expected value.
    pub attribute: String,
}

fn same(a: &Value, b: &Value) -> bool {
    let norm = |v: &Value| match v {
        Value::String(s) => s.trim().to_string(),
        other => other.to_string(),
    };
    a == b || norm(a) == norm(b)
}

/// `Ok` when the call may proceed; otherwise why it is refused and what to pass.
pub fn check(
    target: &str,
    model: &str,
    schema: &Value,
    args: &Map<String, Value>,
    inputs: &Map<String, Value>,
    store: &ResourceStore,
) -> Result<(), String> {
    let get = |k: &str| {
        args.get(k)
            .or_else(|| inputs.get(k))
            .filter(|v| !v.is_null())
    };
    let Some(rule) = schema.get("x-orch-confirm") else {
        return match get("confirm") {
            Some(Value::Bool(true)) => Ok(()),
            _ => Err(format!(
                "{target} is destructive: pass --input confirm=true (or `confirm: true` in the step's inputs) to run it"
            )),
        };
    };
    let rule: ConfirmRule = serde_json::from_value(rule.clone()).map_err(|e| {
        format!(
            "{target}: the type's x-orch-confirm rule is malformed ({e}); the plugin must fix it"
        )
    })?;
    let name = match get(&rule.name_argument) {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => {
            return Err(format!(
                "{target} is destructive and needs `{}` to say which {} it acts on",
                rule.name_argument, rule.spec
            ));
        }
    };
    let stored = store
        .latest(model, &rule.spec, &name)
        .map_err(|e| e.to_string())?
        .and_then(|v| v.attributes.get(&rule.attribute).cloned());
    let Some(stored) = stored else {
        return Err(format!(
            "{target} is destructive and model `{model}` has no stored {}/{name} to verify it against; \
             run the method that records it first (for a fleet: its sync or lookup), then pass --input {}=<{}>",
            rule.spec, rule.input, rule.attribute
        ));
    };
    match get(&rule.input) {
        None => Err(format!(
            "{target} is destructive: pass --input {}=<{}> after checking it (`orch data get {model} \"{name}\"` shows {} {stored})",
            rule.input, rule.attribute, rule.attribute
        )),
        Some(expected) if !same(expected, &stored) => Err(format!(
            "refusing {target} on {}/{name}: {} is {expected} but the stored {} is {stored}",
            rule.spec, rule.input, rule.attribute
        )),
        Some(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::same;
    use serde_json::json;

    #[test]
    fn numbers_and_numeric_text_compare_equal() {
        assert!(same(&json!(108), &json!("108")));
        assert!(same(&json!(108), &json!(108)));
        assert!(!same(&json!(108), &json!(101)));
    }
}
