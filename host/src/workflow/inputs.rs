//! Workflow `inputs`: the JSON Schema itself, and the values passed with `--input`.

use std::path::Path;

use jsonschema::ValidationError;
use jsonschema::error::ValidationErrorKind;
use jsonschema::paths::{Location, LocationSegment};
use serde_json::Value;

use super::schema::Workflow;
use crate::repo::{Diagnostic, LineIndex, closest, did_you_mean, join_index, join_key, list_names};

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
                list_names(map.keys().map(|k| k.as_str())),
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
    let errors: Vec<String> = validator
        .iter_errors(inputs)
        .flat_map(|e| describe(&e, schema))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

fn describe(err: &ValidationError<'_>, schema: &Value) -> Vec<String> {
    let at = dotted("", err.instance_path());
    let subject = if at.is_empty() {
        "inputs".to_string()
    } else {
        format!("input `{at}`")
    };
    let found = short_json(err.instance());
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
                .map(|a| a.iter().map(short_json).collect())
                .unwrap_or_default();
            vec![format!(
                "{subject}: expected one of {}, got {found}",
                options.join(", ")
            )]
        }
        _ => vec![format!("{subject}: {err}")],
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

/// JSON text of a value, cut short so one huge input does not flood the terminal.
fn short_json(value: &Value) -> String {
    const LIMIT: usize = 60;
    let text = value.to_string();
    if text.chars().count() <= LIMIT {
        text
    } else {
        let cut: String = text.chars().take(LIMIT).collect();
        format!("{cut}…")
    }
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
