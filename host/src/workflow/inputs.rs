//! Workflow `inputs`: the JSON Schema itself, and the values passed with `--input`.

use std::path::Path;

use jsonschema::ValidationError;
use jsonschema::error::ValidationErrorKind;
use jsonschema::paths::{Location, LocationSegment};
use serde_json::Value;

use super::schema::Workflow;
use crate::excerpt::{clip_message, excerpt, json_excerpt};
use crate::repo::{Diagnostic, LineIndex, closest, did_you_mean, join_index, join_key, list_names};

/// Most schema violations reported for one set of inputs.
const MAX_PROBLEMS: usize = 20;

const JSON_TYPES: [&str; 7] = [
    "array", "boolean", "integer", "null", "number", "object", "string",
];

/// Problems with the `inputs` schema of a workflow file (it must compile).
pub(crate) fn schema_diagnostics(
    schema: &Value,
    file: &Path,
    lines: &LineIndex,
) -> Vec<Diagnostic> {
    let Err(err) = jsonschema::validator_for(schema) else {
        return Vec::new();
    };
    let field = dotted("inputs", err.instance_path());
    let message = match (err.instance_path().iter().last(), err.instance().as_ref()) {
        (Some(LocationSegment::Property(key)), Value::String(ty)) if key == "type" => {
            let hint = did_you_mean(ty, JSON_TYPES);
            format!(
                "unknown JSON Schema type `{ty}`{hint} (types: {})",
                JSON_TYPES.join(", ")
            )
        }
        _ => format!(
            "invalid JSON Schema: {err}; see https://json-schema.org/understanding-json-schema/"
        ),
    };
    vec![Diagnostic::at(file, lines, field, message)]
}

/// Fills inputs the caller left out from the schema's top-level `properties.<name>.default`.
pub fn apply_input_defaults(wf: &Workflow, inputs: &mut serde_json::Map<String, Value>) {
    let Some(props) = wf
        .inputs
        .as_ref()
        .and_then(|s| s.get("properties"))
        .and_then(Value::as_object)
    else {
        return;
    };
    for (name, prop) in props {
        if let Some(default) = prop.get("default")
            && !inputs.contains_key(name)
        {
            inputs.insert(name.clone(), default.clone());
        }
    }
}

/// Checks `--input` values against the workflow's schema; messages name the input.
pub fn validate_inputs(wf: &Workflow, inputs: &Value) -> Result<(), Vec<String>> {
    let empty = Value::Object(Default::default());
    let inputs = if inputs.is_null() { &empty } else { inputs };
    let Some(schema) = &wf.inputs else {
        return match inputs.as_object() {
            Some(map) if !map.is_empty() => Err(vec![format!(
                "workflow `{}` takes no inputs, but got {}; remove them, or declare them under \
                 `inputs:` in {}",
                wf.name,
                shown_names(map.keys()),
                wf.file.display()
            )]),
            _ => Ok(()),
        };
    };
    let validator = jsonschema::validator_for(schema).map_err(|e| {
        vec![format!(
            "the inputs schema of workflow `{}` is invalid ({e}); fix `inputs` in {}",
            wf.name,
            wf.file.display()
        )]
    })?;
    let mut errors = undeclared_inputs(schema, inputs);
    errors.extend(
        validator
            .iter_errors(inputs)
            .take(MAX_PROBLEMS)
            .flat_map(|e| describe(&e, schema)),
    );
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// The names a schema declares at the top level, when it declares a closed list: `properties`
/// without `additionalProperties` or `patternProperties`. A schema that says what to do with
/// other names (`additionalProperties: true`, a pattern) is left to JSON Schema.
pub(crate) fn declared_names(schema: &Value) -> Option<Vec<&str>> {
    let props = schema.get("properties")?.as_object()?;
    if schema.get("additionalProperties").is_some() || schema.get("patternProperties").is_some() {
        return None;
    }
    Some(props.keys().map(String::as_str).collect())
}

/// "unknown input `x`; did you mean `y`?" for every top-level input the schema does not
/// declare: a misspelled input would otherwise be silently ignored.
fn undeclared_inputs(schema: &Value, inputs: &Value) -> Vec<String> {
    let (Some(declared), Some(given)) = (declared_names(schema), inputs.as_object()) else {
        return Vec::new();
    };
    given
        .keys()
        .filter(|name| !declared.contains(&name.as_str()))
        .map(|name| unknown_input(name, &declared))
        .collect()
}

/// "unknown input `x`; did you mean `y`?", or the list of declared names.
pub(crate) fn unknown_input(name: &str, declared: &[&str]) -> String {
    let shown = excerpt(name);
    match closest(name, declared.iter().copied()) {
        Some(best) => format!("unknown input `{shown}`; did you mean `{best}`?"),
        None => format!(
            "unknown input `{shown}`; declared inputs: {} (declare it under `inputs.properties` \
             to accept it)",
            list_names(declared.iter().copied())
        ),
    }
}

/// Names cut short and listed, for messages.
fn shown_names<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let shown: Vec<String> = names.map(|n| excerpt(n).into_owned()).collect();
    list_names(shown.iter().map(String::as_str))
}

fn describe(err: &ValidationError<'_>, schema: &Value) -> Vec<String> {
    let at = dotted("", err.instance_path());
    let subject = if at.is_empty() {
        "inputs".to_string()
    } else {
        format!("input `{}`", excerpt(&at))
    };
    let found = json_excerpt(err.instance().as_ref());
    match err.kind() {
        ValidationErrorKind::Required { property } => {
            let name = property.as_str().unwrap_or_default();
            let full = join_key(&at, name);
            let described = schema_at(schema, &full)
                .and_then(|s| s.get("description"))
                .and_then(Value::as_str)
                .map(|d| format!(" ({d})"))
                .unwrap_or_default();
            if at.is_empty() {
                vec![format!(
                    "missing required input `{name}`{described}; pass --input {name}=value"
                )]
            } else {
                vec![format!(
                    "{subject}: missing required field `{name}`{described}"
                )]
            }
        }
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            let known: Vec<String> = schema_at(schema, &at)
                .and_then(|s| s.get("properties"))
                .and_then(Value::as_object)
                .map(|p| p.keys().cloned().collect())
                .unwrap_or_default();
            unexpected
                .iter()
                .map(|name| {
                    let full = join_key(&at, name);
                    let full = excerpt(&full);
                    match closest(name, known.iter().map(String::as_str)) {
                        Some(best) => format!("unknown input `{full}`; did you mean `{best}`?"),
                        None => format!(
                            "unknown input `{full}`; expected one of: {}",
                            list_names(known.iter().map(String::as_str))
                        ),
                    }
                })
                .collect()
        }
        ValidationErrorKind::Type { .. } => {
            let expected = schema_at(schema, &at)
                .and_then(|s| s.get("type"))
                .map(|t| match t {
                    Value::Array(types) => types
                        .iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(" or "),
                    other => other.as_str().unwrap_or("another type").to_string(),
                })
                .unwrap_or_else(|| "another type".to_string());
            vec![format!("{subject}: expected {expected}, got {found}")]
        }
        ValidationErrorKind::Enum { options } => {
            let options: Vec<String> = options
                .as_array()
                .map(|a| a.iter().map(json_excerpt).collect())
                .unwrap_or_default();
            vec![format!(
                "{subject}: expected one of {}, got {found}",
                options.join(", ")
            )]
        }
        _ => vec![format!(
            "{subject}: {}",
            clip_message(&err.masked_with(found).to_string())
        )],
    }
}

/// `prefix.a[0].b` from a JSON pointer location.
fn dotted(prefix: &str, location: &Location) -> String {
    location
        .iter()
        .fold(prefix.to_string(), |path, seg| match seg {
            LocationSegment::Property(key) => join_key(&path, &key),
            LocationSegment::Index(i) => join_index(&path, i),
        })
}

/// The sub-schema describing the instance at dotted `path` (following `properties`/`items`).
fn schema_at<'s>(schema: &'s Value, path: &str) -> Option<&'s Value> {
    let mut current = schema;
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (key, indices) = match part.find('[') {
            Some(open) => (&part[..open], part[open..].matches('[').count()),
            None => (part, 0),
        };
        current = current.get("properties")?.get(key)?;
        for _ in 0..indices {
            current = current.get("items")?;
        }
    }
    Some(current)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn wf(schema: Option<Value>) -> Workflow {
        let mut wf = Workflow::parse("jobs: []\n", Path::new("workflows/start-vm.yaml")).unwrap();
        wf.inputs = schema;
        wf
    }

    fn vm_schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "vmName": { "type": "string", "description": "name of the VM" },
                "count": { "type": "integer" },
                "mode": { "enum": ["fast", "safe"] },
                "servers": { "type": "array", "items": { "type": "object",
                    "properties": { "port": { "type": "integer" } } } }
            },
            "required": ["vmName"],
            "additionalProperties": false
        })
    }

    #[test]
    fn valid_inputs_pass() {
        assert_eq!(
            validate_inputs(&wf(Some(vm_schema())), &json!({"vmName": "a", "count": 2})),
            Ok(())
        );
    }

    #[test]
    fn missing_required_input_says_how_to_pass_it() {
        let errs = validate_inputs(&wf(Some(vm_schema())), &json!({})).unwrap_err();
        assert_eq!(
            errs,
            ["missing required input `vmName` (name of the VM); pass --input vmName=value"]
        );
    }

    #[test]
    fn null_inputs_count_as_none_given() {
        let errs = validate_inputs(&wf(Some(vm_schema())), &Value::Null).unwrap_err();
        assert!(errs[0].starts_with("missing required input `vmName`"));
    }

    #[test]
    fn wrong_type_names_the_input_and_the_expected_type() {
        let errs = validate_inputs(&wf(Some(vm_schema())), &json!({"vmName": 5})).unwrap_err();
        assert_eq!(errs, ["input `vmName`: expected string, got 5"]);
    }

    #[test]
    fn nested_input_paths_are_dotted() {
        let errs = validate_inputs(
            &wf(Some(vm_schema())),
            &json!({"vmName": "a", "servers": [{"port": "x"}]}),
        )
        .unwrap_err();
        assert_eq!(
            errs,
            ["input `servers[0].port`: expected integer, got \"x\""]
        );
    }

    #[test]
    fn misspelled_input_is_suggested() {
        let errs = validate_inputs(&wf(Some(vm_schema())), &json!({"vmName": "a", "cuont": 1}))
            .unwrap_err();
        assert_eq!(errs, ["unknown input `cuont`; did you mean `count`?"]);
    }

    #[test]
    fn undeclared_input_is_refused_with_the_closest_declared_name() {
        let open =
            json!({"type": "object", "properties": {"vmName": {"type": "string"}, "count": {}}});
        let w = wf(Some(open));
        assert_eq!(validate_inputs(&w, &json!({"vmName": "a"})), Ok(()));
        assert_eq!(
            validate_inputs(&w, &json!({"vmNmae": "a"})).unwrap_err(),
            ["unknown input `vmNmae`; did you mean `vmName`?"]
        );
        let errs = validate_inputs(&w, &json!({"zzz": 1})).unwrap_err();
        assert!(
            errs[0].starts_with("unknown input `zzz`; declared inputs: vmName, count"),
            "{}",
            errs[0]
        );
    }

    #[test]
    fn a_schema_that_allows_other_names_is_respected() {
        for schema in [
            json!({"properties": {"a": {}}, "additionalProperties": true}),
            json!({"properties": {"a": {}}, "patternProperties": {"^x": {}}}),
            json!({"type": "object"}),
        ] {
            assert_eq!(
                validate_inputs(&wf(Some(schema)), &json!({"xb": 1})),
                Ok(())
            );
        }
    }

    #[test]
    fn huge_input_values_are_quoted_cut_short() {
        let big = "x".repeat(5_000_000);
        let errs = validate_inputs(
            &wf(Some(vm_schema())),
            &json!({"vmName": 1, "count": big, "mode": big}),
        )
        .unwrap_err();
        let total: usize = errs.iter().map(String::len).sum();
        assert!(total < 2_000, "{total}: {errs:?}");
        assert!(
            errs.iter().any(|e| e.contains("(5000002 bytes)")),
            "{errs:?}"
        );
    }

    #[test]
    fn enum_lists_the_allowed_values() {
        let errs = validate_inputs(&wf(Some(vm_schema())), &json!({"vmName": "a", "mode": "x"}))
            .unwrap_err();
        assert_eq!(
            errs,
            ["input `mode`: expected one of \"fast\", \"safe\", got \"x\""]
        );
    }

    #[test]
    fn workflow_without_schema_rejects_inputs() {
        let w = wf(None);
        assert_eq!(validate_inputs(&w, &json!({})), Ok(()));
        let errs = validate_inputs(&w, &json!({"vmName": "a"})).unwrap_err();
        assert!(errs[0].contains("takes no inputs"), "{}", errs[0]);
    }

    #[test]
    fn bad_schema_type_is_reported_at_its_line() {
        let text =
            "inputs:\n  type: object\n  properties:\n    vmName:\n      type: strng\njobs: []\n";
        let w = Workflow::parse(text, Path::new("workflows/x.yaml")).unwrap();
        let diags = schema_diagnostics(w.inputs.as_ref().unwrap(), &w.file, &w.lines);
        assert_eq!(
            diags[0].to_string(),
            "workflows/x.yaml:5: inputs.properties.vmName.type: unknown JSON Schema type `strng`; did you mean `string`? (types: array, boolean, integer, null, number, object, string)"
        );
    }

    #[test]
    fn valid_schema_has_no_diagnostics() {
        let lines = LineIndex::default();
        assert!(schema_diagnostics(&vm_schema(), Path::new("x"), &lines).is_empty());
    }
}

#[cfg(test)]
mod default_tests {
    use super::*;

    #[test]
    fn defaults_fill_only_missing_inputs() {
        let wf = Workflow::parse(
            "name: w\ninputs:\n  type: object\n  properties:\n    a: { type: string, default: x }\n    b: { type: string, default: y }\njobs: []\n",
            std::path::Path::new("workflows/w.yaml"),
        )
        .unwrap();
        let mut inputs = serde_json::Map::new();
        inputs.insert("b".into(), Value::from("given"));
        apply_input_defaults(&wf, &mut inputs);
        assert_eq!(inputs["a"], "x");
        assert_eq!(inputs["b"], "given");
    }
}
