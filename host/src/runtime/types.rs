//! Host-side view of what a plugin's `describe()` returned, with schemas parsed.

use super::wit::v0_2::MethodKind;
use super::wit::v0_2::orch::plugin::types::TypeInfo;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A model type as the host understands it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TypeDescription {
    /// e.g. `proxmox/vm`.
    pub name: String,
    /// CalVer.
    pub version: String,
    /// One line.
    pub description: String,
    /// JSON Schema of `globalArguments`.
    pub global_arguments_schema: Value,
    /// Resource kinds it writes.
    pub resources: Vec<ResourceSpecInfo>,
    /// Its methods.
    pub methods: Vec<MethodInfo>,
}

/// One resource kind.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceSpecInfo {
    /// e.g. `vm`.
    pub name: String,
    /// One line.
    pub description: String,
    /// JSON Schema of its attributes.
    pub schema: Value,
    /// Top-level attributes whose changes alone are not a change (0.2 `volatile`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volatile: Vec<String>,
}

impl ResourceSpecInfo {
    /// Top-level attributes the schema marks `"writeOnly": true` (a session ticket, a token):
    /// `orch data` commands show that they are there and whether they changed, never their
    /// values. Expressions still read them.
    pub fn sensitive(&self) -> Vec<String> {
        self.schema
            .get("properties")
            .and_then(Value::as_object)
            .map(|props| {
                props
                    .iter()
                    .filter(|(_, p)| p.get("writeOnly") == Some(&Value::Bool(true)))
                    .map(|(name, _)| name.clone())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// One method.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MethodInfo {
    /// e.g. `sync`.
    pub name: String,
    /// One line.
    pub description: String,
    /// create, read, update, delete, list, action or converge.
    pub kind: String,
    /// Refused unless the caller confirms the target.
    pub destructive: bool,
    /// JSON Schema of its arguments.
    pub arguments_schema: Value,
}

/// Most bytes of text (names, descriptions, schemas) one describe() may return in total.
pub const MAX_DESCRIBE_BYTES: usize = 8 * 1024 * 1024;
/// Longest name or version string.
const MAX_NAME_BYTES: usize = 128;
/// Longest description.
const MAX_DESCRIPTION_BYTES: usize = 4 * 1024;

/// Checks the total size of a describe() answer before anything else is done with it.
pub fn check_describe_size(infos: &[TypeInfo]) -> Result<(), String> {
    let total: usize = infos
        .iter()
        .map(|t| {
            t.name.len()
                + t.version.len()
                + t.description.len()
                + t.global_arguments_schema.len()
                + t.resources
                    .iter()
                    .map(|r| r.name.len() + r.description.len() + r.schema.len())
                    .sum::<usize>()
                + t.methods
                    .iter()
                    .map(|m| m.name.len() + m.description.len() + m.arguments_schema.len())
                    .sum::<usize>()
        })
        .fold(0usize, usize::saturating_add);
    if total > MAX_DESCRIBE_BYTES {
        return Err(format!(
            "{total} bytes of type descriptions; the limit is {MAX_DESCRIBE_BYTES}"
        ));
    }
    Ok(())
}

fn parse_schema(what: &str, text: &str) -> Result<Value, String> {
    if text.len() > super::schema::MAX_SCHEMA_BYTES {
        return Err(format!(
            "{what}: the JSON Schema is {} bytes; the limit is {}",
            text.len(),
            super::schema::MAX_SCHEMA_BYTES
        ));
    }
    let v: Value = serde_json::from_str(text)
        .map_err(|e| format!("{what}: the JSON Schema is not valid JSON: {e}"))?;
    if !v.is_object() && !v.is_boolean() {
        return Err(format!(
            "{what}: the JSON Schema is neither an object nor a boolean"
        ));
    }
    super::schema::compile(&v).map_err(|e| format!("{what}: the JSON Schema {e}"))?;
    Ok(v)
}

fn check_text(what: &str, text: &str, max: usize) -> Result<(), String> {
    if text.len() > max {
        return Err(format!(
            "{what} is {} bytes; the limit is {max}",
            text.len()
        ));
    }
    Ok(())
}

fn kind_name(kind: MethodKind) -> &'static str {
    match kind {
        MethodKind::Create => "create",
        MethodKind::Read => "read",
        MethodKind::Update => "update",
        MethodKind::Delete => "delete",
        MethodKind::List => "list",
        MethodKind::Action => "action",
        MethodKind::Converge => "converge",
    }
}

fn is_calver(v: &str) -> bool {
    let parts: Vec<&str> = v.split('.').collect();
    parts.len() == 4
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
        && parts[0].len() == 4
}

impl TypeDescription {
    /// Checks and converts one `type-info`. Errors name the method or resource concerned
    /// (the caller adds the plugin and type).
    pub fn from_wit(info: TypeInfo) -> Result<Self, String> {
        let name = info.name;
        if name.is_empty() || !name.contains('/') || name.len() > MAX_NAME_BYTES {
            return Err(format!(
                "a type named `{}`; type names look like `vendor/kind` (at most {MAX_NAME_BYTES} bytes)",
                name.chars().take(MAX_NAME_BYTES).collect::<String>()
            ));
        }
        if !is_calver(&info.version) {
            return Err(format!(
                "version `{}`; versions are CalVer YYYY.MM.DD.MICRO",
                info.version
                    .chars()
                    .take(MAX_NAME_BYTES)
                    .collect::<String>()
            ));
        }
        check_text("the description", &info.description, MAX_DESCRIPTION_BYTES)?;
        let mut methods = Vec::new();
        for m in info.methods {
            check_text("a method name", &m.name, MAX_NAME_BYTES)?;
            if methods.iter().any(|x: &MethodInfo| x.name == m.name) {
                return Err(format!("method `{}` is declared twice", m.name));
            }
            check_text(
                &format!("method `{}`'s description", m.name),
                &m.description,
                MAX_DESCRIPTION_BYTES,
            )?;
            let mut arguments_schema = parse_schema(
                &format!("method `{}` arguments", m.name),
                &m.arguments_schema,
            )?;
            // A typed 0.2 confirm rule is checked by the same code as 0.1's schema extension.
            if let Some(rule) = m.confirm {
                let Some(schema) = arguments_schema.as_object_mut() else {
                    return Err(format!(
                        "method `{}` has a confirm rule but its arguments schema is not an object",
                        m.name
                    ));
                };
                schema.insert(
                    "x-orch-confirm".into(),
                    serde_json::json!({
                        "input": rule.input,
                        "spec": rule.spec,
                        "nameArgument": rule.name_argument,
                        "attribute": rule.attribute,
                    }),
                );
            }
            methods.push(MethodInfo {
                arguments_schema,
                name: m.name,
                description: m.description,
                kind: kind_name(m.kind).to_string(),
                destructive: m.destructive,
            });
        }
        let mut resources = Vec::new();
        for r in info.resources {
            check_text("a resource name", &r.name, MAX_NAME_BYTES)?;
            check_text(
                &format!("resource `{}`'s description", r.name),
                &r.description,
                MAX_DESCRIPTION_BYTES,
            )?;
            for v in &r.volatile {
                check_text(
                    &format!("resource `{}`'s volatile name", r.name),
                    v,
                    MAX_NAME_BYTES,
                )?;
            }
            resources.push(ResourceSpecInfo {
                schema: parse_schema(&format!("resource `{}`", r.name), &r.schema)?,
                volatile: r.volatile,
                name: r.name,
                description: r.description,
            });
        }
        Ok(TypeDescription {
            global_arguments_schema: parse_schema(
                "globalArguments",
                &info.global_arguments_schema,
            )?,
            name,
            version: info.version,
            description: info.description,
            resources,
            methods,
        })
    }

    /// The method named `name`.
    pub fn method(&self, name: &str) -> Option<&MethodInfo> {
        self.methods.iter().find(|m| m.name == name)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn write_only_properties_are_sensitive() {
        let spec = super::ResourceSpecInfo {
            name: "node".into(),
            description: String::new(),
            schema: serde_json::json!({"properties": {
                "ticket": {"type": "string", "writeOnly": true},
                "username": {"type": "string"},
                "csrf": {"writeOnly": "yes"},
            }}),
            volatile: Vec::new(),
        };
        assert_eq!(spec.sensitive(), ["ticket"]);
    }

    #[test]
    fn calver_is_four_numeric_parts() {
        assert!(is_calver("2026.02.11.1"));
        assert!(!is_calver("1.0.0"));
        assert!(!is_calver("2026.02.11.x"));
    }

    use super::*;
    use crate::runtime::wit::v0_2::orch::plugin::types::{
        ConfirmRule, MethodInfo as WitMethod, TypeInfo,
    };

    fn info(arguments_schema: String) -> TypeInfo {
        TypeInfo {
            name: "x/y".into(),
            version: "2026.01.01.1".into(),
            description: String::new(),
            global_arguments_schema: "{}".into(),
            resources: Vec::new(),
            methods: vec![WitMethod {
                name: "go".into(),
                description: String::new(),
                kind: MethodKind::Action,
                destructive: false,
                confirm: None,
                arguments_schema,
            }],
        }
    }

    #[test]
    fn a_ref_doubling_argument_schema_is_refused_naming_the_method() {
        let mut defs = serde_json::Map::new();
        defs.insert("d0".into(), serde_json::json!({"type": "object"}));
        for i in 1..=40 {
            let prev = format!("#/$defs/d{}", i - 1);
            defs.insert(
                format!("d{i}"),
                serde_json::json!({"allOf": [{"$ref": prev}, {"$ref": prev}]}),
            );
        }
        let schema = serde_json::json!({"$defs": defs, "$ref": "#/$defs/d40"});
        let err = TypeDescription::from_wit(info(schema.to_string())).unwrap_err();
        assert!(
            err.starts_with("method `go` arguments: the JSON Schema expands to more than"),
            "{err}"
        );
    }

    #[test]
    fn an_oversize_describe_answer_is_refused() {
        let big = info(format!(
            "{{\"description\": \"{}\"}}",
            "x".repeat(MAX_DESCRIBE_BYTES)
        ));
        assert!(
            check_describe_size(&[big])
                .unwrap_err()
                .contains("the limit is")
        );
        assert!(check_describe_size(&[info("{}".into())]).is_ok());
    }

    #[test]
    fn a_typed_confirm_rule_becomes_the_rule_the_host_checks_and_volatile_is_kept() {
        let mut t = info("{\"type\": \"object\"}".into());
        t.methods[0].destructive = true;
        t.methods[0].confirm = Some(ConfirmRule {
            input: "expectVmid".into(),
            spec: "vm".into(),
            name_argument: "vmName".into(),
            attribute: "vmid".into(),
        });
        t.resources.push(
            crate::runtime::wit::v0_2::orch::plugin::types::ResourceSpec {
                name: "vm".into(),
                description: String::new(),
                schema: "{}".into(),
                volatile: vec!["timestamp".into()],
            },
        );
        let d = TypeDescription::from_wit(t).unwrap();
        assert_eq!(
            d.methods[0].arguments_schema["x-orch-confirm"],
            serde_json::json!({"input": "expectVmid", "spec": "vm", "nameArgument": "vmName", "attribute": "vmid"})
        );
        assert_eq!(d.resources[0].volatile, vec!["timestamp".to_string()]);
    }
}
