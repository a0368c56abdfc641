//! The describe() schema lint of `orch plugin validate`: advice for plugin authors.
//!
//! Load-time checks (runtime/types.rs) refuse what the host cannot use. A lint finds what the
//! host can use but a user will trip over: a confirm rule that can never pass, a volatile name
//! that matches no attribute, an undocumented argument (descriptions are what `orch type
//! describe` and AI agents show). Lints never change `ok` or the exit code.

use super::TypeDescription;
use serde::Serialize;
use serde_json::Value;

/// One piece of advice about a described type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lint {
    /// The model type concerned.
    #[serde(rename = "type")]
    pub type_name: String,
    /// Where in the type (`method stop, argument vmName`).
    pub place: String,
    /// What is wrong and what to do.
    pub message: String,
}

/// Lints every type of one describe() answer, in a stable order.
pub fn lint(types: &[TypeDescription]) -> Vec<Lint> {
    let mut out = Vec::new();
    for t in types {
        let mut add = |place: String, message: String| {
            out.push(Lint {
                type_name: t.name.clone(),
                place,
                message,
            })
        };
        if t.description.trim().is_empty() {
            add(
                "the type".into(),
                "has no description; give ModelType one line".into(),
            );
        }
        for (field, documented) in undocumented(&t.global_arguments_schema) {
            if !documented {
                add(
                    format!("global argument `{field}`"),
                    "has no description; add a doc comment to the field".into(),
                );
            }
        }
        for r in &t.resources {
            if r.description.trim().is_empty() {
                add(
                    format!("resource `{}`", r.name),
                    "has no description".into(),
                );
            }
            let attributes = properties(&r.schema);
            for v in &r.volatile {
                if let Some(names) = &attributes
                    && !names.iter().any(|n| n == v)
                {
                    add(
                        format!("resource `{}`, volatile `{v}`", r.name),
                        format!(
                            "names no attribute of the resource (it has {}); change detection would never ignore it",
                            names.join(", ")
                        ),
                    );
                }
            }
        }
        for m in &t.methods {
            let place = format!("method `{}`", m.name);
            if m.description.trim().is_empty() {
                add(place.clone(), "has no description".into());
            }
            for (field, documented) in undocumented(&m.arguments_schema) {
                if !documented {
                    add(
                        format!("{place}, argument `{field}`"),
                        "has no description; add a doc comment to the field".into(),
                    );
                }
            }
            match (m.destructive, m.kind.as_str()) {
                (true, "read" | "list") => add(
                    place.clone(),
                    format!(
                        "is a {} method marked destructive; reads never need confirmation",
                        m.kind
                    ),
                ),
                (false, "delete") => add(
                    place.clone(),
                    "deletes but is not destructive, so it runs without confirmation; declare it destructive"
                        .into(),
                ),
                _ => {}
            }
            if let Some(rule) = m.arguments_schema.get("x-orch-confirm") {
                for problem in confirm_problems(t, &m.arguments_schema, rule) {
                    add(format!("{place}, confirm rule"), problem);
                }
            }
        }
    }
    out
}

/// The top-level property names of an object schema; `None` when it declares none.
fn properties(schema: &Value) -> Option<Vec<String>> {
    let props = schema.get("properties")?.as_object()?;
    Some(props.keys().cloned().collect())
}

/// Every top-level property and whether it (or the definition it refers to) is described.
fn undocumented(schema: &Value) -> Vec<(String, bool)> {
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return Vec::new();
    };
    props
        .iter()
        .map(|(name, prop)| (name.clone(), described(schema, prop)))
        .collect()
}

fn described(root: &Value, prop: &Value) -> bool {
    if prop.get("description").is_some_and(|d| d.is_string()) {
        return true;
    }
    // schemars puts a field's doc on the property, but a `$ref` to a documented type counts.
    let target = prop.get("$ref").or_else(|| {
        prop.get("allOf")
            .and_then(|a| a.get(0))
            .and_then(|a| a.get("$ref"))
    });
    target
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix('#'))
        .and_then(|pointer| root.pointer(pointer))
        .is_some_and(|def| def.get("description").is_some_and(|d| d.is_string()))
}

/// Why a confirm rule can never pass, if it cannot.
fn confirm_problems(t: &TypeDescription, arguments: &Value, rule: &Value) -> Vec<String> {
    let field = |k: &str| rule.get(k).and_then(Value::as_str).unwrap_or_default();
    let mut problems = Vec::new();
    let args = properties(arguments);
    for key in ["input", "nameArgument"] {
        let name = field(key);
        if let Some(args) = &args
            && !args.iter().any(|a| a == name)
        {
            problems.push(format!(
                "{key} `{name}` is not an argument of the method; callers could never pass it"
            ));
        }
    }
    let spec = field("spec");
    match t.resources.iter().find(|r| r.name == spec) {
        None => problems.push(format!(
            "spec `{spec}` is not a resource of the type (it has {}); the check can never find the target",
            t.resources
                .iter()
                .map(|r| r.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
        Some(r) => {
            let attribute = field("attribute");
            if let Some(names) = properties(&r.schema)
                && !names.iter().any(|n| n == attribute)
            {
                problems.push(format!(
                    "attribute `{attribute}` is not an attribute of resource `{spec}`; the check would always refuse"
                ));
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::types::{MethodInfo, ResourceSpecInfo};
    use serde_json::json;

    fn documented_type() -> TypeDescription {
        TypeDescription {
            name: "acme/vm".into(),
            version: "2026.11.30.1".into(),
            description: "A VM".into(),
            global_arguments_schema: json!({"type": "object", "properties": {
                "node": {"type": "string", "description": "The node"},
            }}),
            resources: vec![ResourceSpecInfo {
                name: "vm".into(),
                description: "One VM".into(),
                schema: json!({"type": "object", "properties": {
                    "vmid": {"type": "integer"}, "timestamp": {"type": "string"},
                }}),
                volatile: vec!["timestamp".into()],
            }],
            methods: vec![MethodInfo {
                name: "stop".into(),
                description: "Stop it".into(),
                kind: "action".into(),
                destructive: true,
                arguments_schema: json!({
                    "type": "object",
                    "properties": {
                        "vmName": {"type": "string", "description": "Which VM"},
                        "expectVmid": {"$ref": "#/$defs/Vmid"},
                    },
                    "$defs": {"Vmid": {"type": "integer", "description": "Its vmid"}},
                    "x-orch-confirm": {"input": "expectVmid", "spec": "vm", "nameArgument": "vmName", "attribute": "vmid"},
                }),
            }],
        }
    }

    #[test]
    fn a_documented_type_with_a_consistent_confirm_rule_has_no_lints() {
        assert_eq!(lint(&[documented_type()]), vec![]);
    }

    #[test]
    fn a_confirm_rule_that_can_never_pass_is_named_part_by_part() {
        let mut t = documented_type();
        t.methods[0].arguments_schema["x-orch-confirm"] = json!({"input": "expectId", "spec": "vms", "nameArgument": "vmName", "attribute": "vmid"});
        let found = lint(&[t]);
        let messages: Vec<&str> = found.iter().map(|l| l.message.as_str()).collect();
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(messages[0].starts_with("input `expectId`"), "{messages:?}");
        assert!(messages[1].starts_with("spec `vms`"), "{messages:?}");
        assert_eq!(found[0].place, "method `stop`, confirm rule");

        let mut t = documented_type();
        t.methods[0].arguments_schema["x-orch-confirm"]["attribute"] = json!("id");
        let found = lint(&[t]);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].message.starts_with("attribute `id`"), "{found:?}");
    }

    #[test]
    fn volatile_names_must_be_attributes() {
        let mut t = documented_type();
        t.resources[0].volatile = vec!["timestamp".into(), "timestmap".into()];
        let found = lint(&[t]);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].place, "resource `vm`, volatile `timestmap`");
    }

    #[test]
    fn undocumented_fields_and_odd_destructive_kinds_are_reported() {
        let mut t = documented_type();
        t.description = " ".into();
        t.global_arguments_schema["properties"]["node"] = json!({"type": "string"});
        t.methods[0].kind = "read".into();
        t.methods.push(MethodInfo {
            name: "delete".into(),
            description: "Delete it".into(),
            kind: "delete".into(),
            destructive: false,
            arguments_schema: json!({"type": "object", "properties": {"vmName": {"type": "string"}}}),
        });
        let places: Vec<String> = lint(&[t]).into_iter().map(|l| l.place).collect();
        assert_eq!(
            places,
            vec![
                "the type",
                "global argument `node`",
                "method `stop`",
                "method `delete`, argument `vmName`",
                "method `delete`",
            ]
        );
    }
}
