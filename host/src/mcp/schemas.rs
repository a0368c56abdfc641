//! The tools `orch mcp` offers: their names, descriptions, argument schemas, whether they
//! change infrastructure, and the parsing of a call's arguments.

use serde_json::{Map, Value, json};

/// One tool as it is listed.
#[derive(Debug, Clone, Copy)]
pub struct ToolSpec {
    /// The tool's name (what the agent calls).
    pub name: &'static str,
    /// What it does; mutating tools say that they change infrastructure.
    pub description: &'static str,
    /// True when calling it may change infrastructure or stored data (hidden by `--read-only`).
    pub mutating: bool,
    /// Builds its arguments' JSON Schema.
    schema: fn() -> Value,
}

impl ToolSpec {
    /// The JSON Schema of the tool's arguments (always an object schema).
    pub fn input_schema(&self) -> Map<String, Value> {
        match (self.schema)() {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }
}

fn object(properties: Value, required: &[&str]) -> Value {
    json!({
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    })
}

fn none() -> Value {
    object(json!({}), &[])
}

fn name_only(what: &'static str) -> impl Fn() -> Value {
    move || {
        object(
            json!({"name": {"type": "string", "description": what}}),
            &["name"],
        )
    }
}

fn type_name() -> Value {
    name_only("the type, e.g. proxmox/vm (see list_types)")()
}

fn model_name() -> Value {
    name_only("the model (definition) name, e.g. fleet (see list_models)")()
}

fn workflow_name() -> Value {
    name_only("the workflow's name (see list_workflows)")()
}

fn run_workflow() -> Value {
    object(
        json!({
            "workflow": {"type": "string", "description": "the workflow's name (see list_workflows)"},
            "inputs": {"type": "object", "description": "the workflow's inputs; show_workflow gives their JSON Schema", "additionalProperties": true},
        }),
        &["workflow"],
    )
}

fn run_method() -> Value {
    object(
        json!({
            "model": {"type": "string", "description": "the model (definition) name (see list_models)"},
            "method": {"type": "string", "description": "the method, one of its type's methods (see describe_type)"},
            "inputs": {"type": "object", "description": "the method's inputs; a destructive method needs its confirm input, e.g. {\"vmName\": \"web\", \"expectVmid\": 108} read from data_get first", "additionalProperties": true},
        }),
        &["model", "method"],
    )
}

fn get_run() -> Value {
    object(
        json!({"id": {"type": "string", "description": "the run id a run tool returned"}}),
        &["id"],
    )
}

fn data_list() -> Value {
    object(
        json!({
            "model": {"type": "string", "description": "only this model's resources (default: every model)"},
            "all": {"type": "boolean", "description": "include retired resources"},
        }),
        &[],
    )
}

fn resource(extra: Value) -> Value {
    let mut properties = json!({
        "model": {"type": "string", "description": "the model holding the resource, e.g. fleet"},
        "name": {"type": "string", "description": "the resource's name, e.g. a VM's name"},
        "spec": {"type": "string", "description": "the resource spec, e.g. vm (needed only when the name is in several specs)"},
    });
    if let (Some(p), Value::Object(extra)) = (properties.as_object_mut(), extra) {
        p.extend(extra);
    }
    object(properties, &["model", "name"])
}

fn data_get() -> Value {
    resource(
        json!({"version": {"type": "integer", "minimum": 1, "description": "this version (default: the latest)"}}),
    )
}

fn data_versions() -> Value {
    resource(json!({}))
}

fn data_diff() -> Value {
    resource(json!({
        "from": {"type": "integer", "minimum": 1, "description": "the older version (default: the one before `to`)"},
        "to": {"type": "integer", "minimum": 1, "description": "the newer version (default: the latest)"},
    }))
}

fn data_changes() -> Value {
    object(
        json!({
            "since": {"type": "string", "description": "a duration back from now (e.g. 1h, 7d) or an RFC 3339 time (default: 24h)"},
            "model": {"type": "string", "description": "only this model"},
        }),
        &[],
    )
}

fn eval() -> Value {
    object(
        json!({
            "expression": {"type": "string", "description": "a CEL expression, e.g. model.fleet.resource.vm[\"web\"].attributes.ip"},
            "inputs": {"type": "object", "description": "values for inputs.* in the expression", "additionalProperties": true},
        }),
        &["expression"],
    )
}

fn plan() -> Value {
    object(
        json!({"models": {"type": "array", "items": {"type": "string"}, "description": "plan only these models (and what they read); default: every model with a converge method"}}),
        &[],
    )
}

/// Every tool, in the order they are listed.
pub const TOOLS: &[ToolSpec] = &[
    ToolSpec {
        name: "list_types",
        description: "List the model types the installed plugins provide (name, plugin, kind).",
        mutating: false,
        schema: none,
    },
    ToolSpec {
        name: "describe_type",
        description: "Describe one model type: its global arguments, resource specs and methods, each with its JSON Schema and whether it is destructive (and how to confirm it).",
        mutating: false,
        schema: type_name,
    },
    ToolSpec {
        name: "list_models",
        description: "List the repository's models (definitions): name, type and file.",
        mutating: false,
        schema: none,
    },
    ToolSpec {
        name: "show_model",
        description: "Show one model's definition as written: globalArguments and method arguments with their CEL expressions unresolved (its data: data_list/data_get).",
        mutating: false,
        schema: model_name,
    },
    ToolSpec {
        name: "list_workflows",
        description: "List the workflows: name, description and the JSON Schema of their inputs.",
        mutating: false,
        schema: none,
    },
    ToolSpec {
        name: "show_workflow",
        description: "Show one workflow: jobs, steps, their order, triggers and the JSON Schema of its inputs (what run_workflow's `inputs` must match).",
        mutating: false,
        schema: workflow_name,
    },
    ToolSpec {
        name: "run_workflow",
        description: "Run a workflow to its end and return the run (id, status, each step's outcome). CHANGES INFRASTRUCTURE: its steps call the models' methods. Destructive steps need their confirm inputs (e.g. expectVmid, read with data_get first) and are refused without them.",
        mutating: true,
        schema: run_workflow,
    },
    ToolSpec {
        name: "run_method",
        description: "Run one method of one model to its end and return the run and the method's output. CHANGES INFRASTRUCTURE unless the method only reads. A destructive method is refused unless its confirm input is given (e.g. expectVmid equal to the stored vmid: verify it with data_get first, never guess).",
        mutating: true,
        schema: run_method,
    },
    ToolSpec {
        name: "get_run",
        description: "Show a recorded run: status, steps with their outcome and error, events (secrets redacted).",
        mutating: false,
        schema: get_run,
    },
    ToolSpec {
        name: "data_list",
        description: "List stored resources (model, spec, name, latest version), of one model or all.",
        mutating: false,
        schema: data_list,
    },
    ToolSpec {
        name: "data_get",
        description: "Get a stored resource's attributes (latest version, or one version), e.g. a VM's vmid and IP; sensitive attributes are masked.",
        mutating: false,
        schema: data_get,
    },
    ToolSpec {
        name: "data_versions",
        description: "List every stored version of a resource, and when it was last seen.",
        mutating: false,
        schema: data_versions,
    },
    ToolSpec {
        name: "data_diff",
        description: "What changed in a resource's attributes between two versions.",
        mutating: false,
        schema: data_diff,
    },
    ToolSpec {
        name: "data_changes",
        description: "Resources created, changed or retired within a time window (default: the last 24h).",
        mutating: false,
        schema: data_changes,
    },
    ToolSpec {
        name: "eval",
        description: "Evaluate a CEL expression against the current data (the wiring language of definitions and workflows); vault values come back redacted.",
        mutating: false,
        schema: eval,
    },
    ToolSpec {
        name: "plan",
        description: "What converging the declarative models would change, model by model in converge order; changes nothing.",
        mutating: false,
        schema: plan,
    },
];

/// The tools listed in this mode: all of them, or the non-mutating ones with `read_only`.
pub fn listed(read_only: bool) -> impl Iterator<Item = &'static ToolSpec> {
    TOOLS.iter().filter(move |t| !read_only || !t.mutating)
}

/// The tool called `name`, if there is one.
pub fn find(name: &str) -> Option<&'static ToolSpec> {
    TOOLS.iter().find(|t| t.name == name)
}

/// A call's arguments, read by name with errors that say which argument is wrong.
#[derive(Debug, Default)]
pub struct Arguments {
    tool: &'static str,
    values: Map<String, Value>,
}

impl Arguments {
    /// The arguments of a call of `tool`; names its schema does not know are refused.
    pub fn new(tool: &ToolSpec, values: Option<Map<String, Value>>) -> Result<Self, String> {
        let values = values.unwrap_or_default();
        let schema = tool.input_schema();
        let known = schema.get("properties").and_then(Value::as_object);
        if let Some(unknown) = values
            .keys()
            .find(|k| known.is_none_or(|p| !p.contains_key(*k)))
        {
            let names: Vec<&String> = known.map(|p| p.keys().collect()).unwrap_or_default();
            return Err(format!(
                "{}: unknown argument `{unknown}`; it takes {}",
                tool.name,
                if names.is_empty() {
                    "no arguments".to_string()
                } else {
                    names
                        .iter()
                        .map(|n| format!("`{n}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ));
        }
        Ok(Arguments {
            tool: tool.name,
            values,
        })
    }

    /// A required string argument.
    pub fn string(&self, name: &str) -> Result<String, String> {
        self.optional_string(name)?
            .ok_or_else(|| format!("{}: argument `{name}` is required (a string)", self.tool))
    }

    /// An optional string argument.
    pub fn optional_string(&self, name: &str) -> Result<Option<String>, String> {
        match self.values.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(format!(
                "{}: argument `{name}` must be a string, not {other}",
                self.tool
            )),
        }
    }

    /// An optional positive integer argument (a version number).
    pub fn optional_u64(&self, name: &str) -> Result<Option<u64>, String> {
        match self.values.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v.as_u64().filter(|n| *n > 0).map(Some).ok_or_else(|| {
                format!(
                    "{}: argument `{name}` must be a positive integer, not {v}",
                    self.tool
                )
            }),
        }
    }

    /// An optional boolean argument (false when absent).
    pub fn flag(&self, name: &str) -> Result<bool, String> {
        match self.values.get(name) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(other) => Err(format!(
                "{}: argument `{name}` must be true or false, not {other}",
                self.tool
            )),
        }
    }

    /// An optional object argument (empty when absent).
    pub fn object(&self, name: &str) -> Result<Map<String, Value>, String> {
        match self.values.get(name) {
            None | Some(Value::Null) => Ok(Map::new()),
            Some(Value::Object(m)) => Ok(m.clone()),
            Some(other) => Err(format!(
                "{}: argument `{name}` must be an object, not {other}",
                self.tool
            )),
        }
    }

    /// An optional list of strings (empty when absent).
    pub fn strings(&self, name: &str) -> Result<Vec<String>, String> {
        match self.values.get(name) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_str().map(String::from).ok_or_else(|| {
                        format!(
                            "{}: argument `{name}` must be a list of strings; {v} is not one",
                            self.tool
                        )
                    })
                })
                .collect(),
            Some(other) => Err(format!(
                "{}: argument `{name}` must be a list of strings, not {other}",
                self.tool
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAMES: [&str; 16] = [
        "list_types",
        "describe_type",
        "list_models",
        "show_model",
        "list_workflows",
        "show_workflow",
        "run_workflow",
        "run_method",
        "get_run",
        "data_list",
        "data_get",
        "data_versions",
        "data_diff",
        "data_changes",
        "eval",
        "plan",
    ];

    #[test]
    fn all_sixteen_tools_are_listed_with_an_object_schema() {
        let names: Vec<&str> = listed(false).map(|t| t.name).collect();
        assert_eq!(names, NAMES);
        for t in TOOLS {
            let schema = t.input_schema();
            assert_eq!(schema["type"], "object", "{}", t.name);
            for required in schema["required"].as_array().unwrap() {
                assert!(
                    schema["properties"]
                        .get(required.as_str().unwrap())
                        .is_some(),
                    "{}: required {required} is not a property",
                    t.name
                );
            }
        }
    }

    #[test]
    fn read_only_lists_no_tool_that_changes_infrastructure() {
        let names: Vec<&str> = listed(true).map(|t| t.name).collect();
        assert!(!names.contains(&"run_workflow") && !names.contains(&"run_method"));
        assert_eq!(names.len(), 14);
        for t in TOOLS.iter().filter(|t| t.mutating) {
            assert!(
                t.description.contains("CHANGES INFRASTRUCTURE"),
                "{}",
                t.name
            );
        }
    }

    fn args(tool: &str, values: Value) -> Result<Arguments, String> {
        Arguments::new(find(tool).unwrap(), values.as_object().cloned())
    }

    #[test]
    fn arguments_are_read_by_type_and_a_wrong_one_is_named() {
        let a = args(
            "data_get",
            json!({"model": "fleet", "name": "web", "version": 3}),
        )
        .unwrap();
        assert_eq!(a.string("model").unwrap(), "fleet");
        assert_eq!(a.optional_u64("version").unwrap(), Some(3));
        assert_eq!(a.optional_string("spec").unwrap(), None);
        let a = args("data_get", json!({"model": 7, "version": 0})).unwrap();
        assert_eq!(
            a.string("model").unwrap_err(),
            "data_get: argument `model` must be a string, not 7"
        );
        assert_eq!(
            a.string("name").unwrap_err(),
            "data_get: argument `name` is required (a string)"
        );
        assert!(a.optional_u64("version").unwrap_err().contains("positive"));
        let a = args("run_workflow", json!({"workflow": "w", "inputs": []})).unwrap();
        assert!(
            a.object("inputs")
                .unwrap_err()
                .contains("must be an object")
        );
        let a = args("plan", json!({"models": ["fleet", 1]})).unwrap();
        assert!(a.strings("models").unwrap_err().contains("1 is not one"));
    }

    #[test]
    fn an_unknown_argument_is_refused_with_the_ones_the_tool_takes() {
        let e = args("get_run", json!({"run": "x"})).err().unwrap();
        assert_eq!(e, "get_run: unknown argument `run`; it takes `id`");
        let e = args("list_types", json!({"x": 1})).err().unwrap();
        assert_eq!(e, "list_types: unknown argument `x`; it takes no arguments");
    }
}
