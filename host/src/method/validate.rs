//! Arguments against the type's JSON Schemas, with errors that name the file, line and field.

use crate::excerpt::{clip_message, excerpt, json_excerpt};
use crate::repo::LineIndex;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

/// Most violations reported for one value; a list of a million wrong items reports this many.
pub const MAX_PROBLEMS: usize = 20;

/// One schema violation: the field path (dotted) and what is wrong.
pub struct Problem {
    /// Dotted path under the checked value (`apiUrl`, `ports[0]`); empty for the value itself.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

/// Validates `value` against `schema`; every violation is returned. Compiled validators are
/// kept per `key` (type and method) for the life of the process: a forEach over thousands of
/// items must not recompile the same schema each time.
pub fn check(key: &str, schema: &Value, value: &Value) -> Result<(), Vec<Problem>> {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<jsonschema::Validator>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Mutex::default);
    let cached = cache.lock().ok().and_then(|c| c.get(key).cloned());
    let validator = match cached {
        Some(v) => v,
        // The same bounded compile as at describe(): a schema from a plugin never runs unchecked.
        None => match crate::runtime::schema::compile(schema) {
            Ok(v) => {
                let v = Arc::new(v);
                if let Ok(mut c) = cache.lock() {
                    c.insert(key.to_string(), v.clone());
                }
                v
            }
            Err(e) => {
                return Err(vec![Problem {
                    path: String::new(),
                    message: format!("the type's schema ({key}) {e}"),
                }]);
            }
        },
    };
    let mut problems: Vec<Problem> = validator
        .iter_errors(value)
        .take(MAX_PROBLEMS + 1)
        .map(|e| Problem {
            path: pointer_to_path(&e.instance_path().to_string()),
            // The value is quoted cut short: a 5 MB argument must not make a 5 MB message.
            message: clip_message(
                &e.masked_with(json_excerpt(e.instance().as_ref()))
                    .to_string(),
            )
            .into_owned(),
        })
        .collect();
    if problems.len() > MAX_PROBLEMS {
        problems.truncate(MAX_PROBLEMS);
        problems.push(Problem {
            path: String::new(),
            message: format!("… and more problems; only the first {MAX_PROBLEMS} are shown"),
        });
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

fn pointer_to_path(pointer: &str) -> String {
    let mut out = String::new();
    for part in pointer.split('/').skip(1) {
        let part = part.replace("~1", "/").replace("~0", "~");
        if part.chars().all(|c| c.is_ascii_digit()) && !part.is_empty() {
            out.push_str(&format!("[{part}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&part);
        }
    }
    out
}

/// Renders problems as `file:line: field: message` lines.
pub fn describe(file: &Path, lines: &LineIndex, base: &str, problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| {
            let field = if p.path.is_empty() {
                base.to_string()
            } else if p.path.starts_with('[') {
                format!("{base}{}", p.path)
            } else {
                format!("{base}.{}", p.path)
            };
            let line = lines
                .line_of(&field)
                .map(|l| format!(":{l}"))
                .unwrap_or_default();
            format!(
                "{}{line}: {}: {}",
                file.display(),
                excerpt(&field),
                p.message
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Step inputs override method arguments of the same name, when the method's schema lists them.
/// Others stay visible only to expressions as `inputs.*`.
pub fn overlay_inputs(args: &mut Value, inputs: &Map<String, Value>, schema: &Value) {
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return;
    };
    let Some(obj) = args.as_object_mut() else {
        return;
    };
    for (k, v) in inputs {
        if props.contains_key(k) {
            obj.insert(k.clone(), v.clone());
        }
    }
}

/// Fills top-level properties the value lacks from the schema's `default`s.
pub fn apply_defaults(value: &mut Value, schema: &Value) {
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return;
    };
    let Some(obj) = value.as_object_mut() else {
        return;
    };
    for (k, prop) in props {
        if let Some(default) = prop.get("default")
            && !obj.contains_key(k)
        {
            obj.insert(k.clone(), default.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn violations_name_the_field() {
        let schema =
            json!({"type":"object","properties":{"port":{"type":"integer"}},"required":["port"]});
        let problems = check("test#port", &schema, &json!({"port": "x"})).unwrap_err();
        assert_eq!(problems[0].path, "port");
        let problems = check("test#port", &schema, &json!({})).unwrap_err();
        assert!(problems[0].message.contains("port"));
    }

    #[test]
    fn huge_values_are_quoted_cut_short() {
        let schema = json!({"type":"object","properties":{"port":{"type":"integer"}}});
        let big = "9".repeat(5_000_000);
        let problems = check("test#big", &schema, &json!({ "port": big })).unwrap_err();
        let message = &problems[0].message;
        assert!(message.len() < 400, "{}", message.len());
        assert!(message.contains("(5000002 bytes)"), "{message}");
        assert!(
            message.ends_with(r#"is not of type "integer""#),
            "{message}"
        );
    }

    #[test]
    fn a_flood_of_violations_is_capped() {
        let schema = json!({"type":"array","items":{"type":"integer"}});
        let value = Value::Array(vec![json!("x"); 10_000]);
        let problems = check("test#flood", &schema, &value).unwrap_err();
        assert_eq!(problems.len(), MAX_PROBLEMS + 1);
        assert!(problems[MAX_PROBLEMS].message.contains("and more problems"));
    }

    #[test]
    fn pointers_become_dotted_paths() {
        assert_eq!(pointer_to_path("/ports/0/name"), "ports[0].name");
        assert_eq!(pointer_to_path(""), "");
    }

    #[test]
    fn defaults_fill_missing_top_level_properties() {
        let schema = json!({"properties":{"sshPort":{"default":22},"sshUser":{"default":"root"}}});
        let mut v = json!({"sshUser": "admin"});
        apply_defaults(&mut v, &schema);
        assert_eq!(v, json!({"sshUser": "admin", "sshPort": 22}));
    }

    #[test]
    fn inputs_override_only_declared_arguments() {
        let schema = json!({"properties":{"vmName":{}}});
        let mut args = json!({"vmName": "a"});
        let inputs = json!({"vmName": "b", "other": 1});
        overlay_inputs(&mut args, inputs.as_object().unwrap(), &schema);
        assert_eq!(args, json!({"vmName": "b"}));
    }
}
