//! Host-side view of what a plugin's `describe()` returned, with schemas parsed.

use super::bindings::{MethodKind, TypeInfo};
use serde::Serialize;
use serde_json::Value;

/// A model type as the host understands it.
#[derive(Debug, Clone, Serialize)]
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
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceSpecInfo {
    /// e.g. `vm`.
    pub name: String,
    /// One line.
    pub description: String,
    /// JSON Schema of its attributes.
    pub schema: Value,
}

/// One method.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MethodInfo {
    /// e.g. `sync`.
    pub name: String,
    /// One line.
    pub description: String,
    /// create, read, update, delete, list or action.
    pub kind: &'static str,
    /// Refused unless the caller confirms the target.
    pub destructive: bool,
    /// JSON Schema of its arguments.
    pub arguments_schema: Value,
}

fn parse_schema(what: &str, text: &str) -> Result<Value, String> {
    let v: Value = serde_json::from_str(text)
        .map_err(|e| format!("an invalid JSON Schema for {what}: {e}"))?;
    if !v.is_object() && !v.is_boolean() {
        return Err(format!(
            "a JSON Schema for {what} that is neither an object nor a boolean"
        ));
    }
    jsonschema::validator_for(&v)
        .map_err(|e| format!("a JSON Schema for {what} that does not compile: {e}"))?;
    Ok(v)
}

fn kind_name(kind: MethodKind) -> &'static str {
    match kind {
        MethodKind::Create => "create",
        MethodKind::Read => "read",
        MethodKind::Update => "update",
        MethodKind::Delete => "delete",
        MethodKind::List => "list",
        MethodKind::Action => "action",
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
    /// Checks and converts one `type-info`.
    pub fn from_wit(info: TypeInfo) -> Result<Self, String> {
        let name = info.name;
        if name.is_empty() || !name.contains('/') {
            return Err(format!(
                "a type named `{name}`; type names look like `vendor/kind`"
            ));
        }
        if !is_calver(&info.version) {
            return Err(format!(
                "version `{}` for `{name}`; versions are CalVer YYYY.MM.DD.MICRO",
                info.version
            ));
        }
        let mut methods = Vec::new();
        for m in info.methods {
            if methods.iter().any(|x: &MethodInfo| x.name == m.name) {
                return Err(format!("method `{}` twice for `{name}`", m.name));
            }
            methods.push(MethodInfo {
                arguments_schema: parse_schema(
                    &format!("{name}.{} arguments", m.name),
                    &m.arguments_schema,
                )?,
                name: m.name,
                description: m.description,
                kind: kind_name(m.kind),
                destructive: m.destructive,
            });
        }
        let mut resources = Vec::new();
        for r in info.resources {
            resources.push(ResourceSpecInfo {
                schema: parse_schema(&format!("{name} resource `{}`", r.name), &r.schema)?,
                name: r.name,
                description: r.description,
            });
        }
        Ok(TypeDescription {
            global_arguments_schema: parse_schema(
                &format!("{name} globalArguments"),
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
    use super::is_calver;

    #[test]
    fn calver_is_four_numeric_parts() {
        assert!(is_calver("2026.02.11.1"));
        assert!(!is_calver("1.0.0"));
        assert!(!is_calver("2026.02.11.x"));
    }
}
