//! `models/<name>.yaml`: one definition (a named instance of a model type).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::diagnostic::Diagnostic;
use super::lines::LineIndex;
use super::yaml::{null_default, parse_yaml};

/// A model definition; arguments are kept as JSON with `${{ … }}` templates untouched.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Definition {
    /// The model's name: the file stem.
    pub name: String,
    /// The model type, e.g. `proxmox/vm`.
    #[serde(rename = "type")]
    pub type_name: String,
    /// Free text for humans and agents.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Arguments shared by every method.
    pub global_arguments: Map<String, Value>,
    /// Per-method arguments, by method name.
    pub methods: BTreeMap<String, MethodArgs>,
    /// A method `orch plan` and `orch apply` run first, before converging the models that read
    /// this one (a login that renews the ticket they use).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh: Option<String>,
    /// The file, relative to the repository root.
    #[serde(skip)]
    pub file: PathBuf,
    /// Where each field is written, for diagnostics.
    #[serde(skip)]
    pub lines: LineIndex,
}

/// `methods.<name>` in a definition.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MethodArgs {
    /// Arguments for this method; a workflow step's inputs override them.
    #[serde(default, deserialize_with = "null_default")]
    pub arguments: Map<String, Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawDefinition {
    #[serde(default)]
    name: Option<String>,
    #[serde(rename = "type")]
    type_name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    global_arguments: Map<String, Value>,
    #[serde(default, deserialize_with = "null_default")]
    methods: BTreeMap<String, MethodArgs>,
    #[serde(default)]
    refresh: Option<String>,
}

impl Definition {
    /// Parses a definition; `file` is relative to the repo root and its stem is the model name.
    pub fn parse(text: &str, file: &Path) -> Result<Definition, Vec<Diagnostic>> {
        let lines = LineIndex::parse(text);
        let stem = file_stem(file);
        let raw: RawDefinition = parse_yaml(text, file, &lines).map_err(|d| vec![d])?;
        let mut diags = Vec::new();
        if let Some(name) = &raw.name
            && *name != stem
        {
            diags.push(Diagnostic::at(
                file,
                &lines,
                "name",
                format!(
                    "name `{name}` does not match the file name; rename the file to \
                     `models/{name}.yaml` or set `name: {stem}` (or remove `name`)"
                ),
            ));
        }
        if raw.type_name.trim().is_empty() {
            diags.push(Diagnostic::at(
                file,
                &lines,
                "type",
                "empty model type; set it to a type such as `proxmox/vm` (`orch type list` shows them)",
            ));
        }
        if !diags.is_empty() {
            return Err(diags);
        }
        Ok(Definition {
            name: stem,
            type_name: raw.type_name,
            description: raw.description,
            global_arguments: raw.global_arguments,
            methods: raw.methods,
            refresh: raw.refresh,
            file: file.to_path_buf(),
            lines,
        })
    }

    /// Line of a dotted field path in this definition's file (nearest ancestor if absent).
    pub fn line_of(&self, path: &str) -> Option<usize> {
        self.lines.line_of(path)
    }
}

/// The file name without its `.yaml`/`.yml` extension.
pub(crate) fn file_stem(file: &Path) -> String {
    file.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(text: &str) -> Result<Definition, Vec<Diagnostic>> {
        Definition::parse(text, Path::new("models/fleet.yaml"))
    }

    #[test]
    fn definition_keeps_types_and_templates() {
        let d = parse(
            "type: proxmox/vm\ndescription: all VMs\nglobalArguments:\n  apiUrl: https://x\n  port: 8006\n  \
             ticket: '${{ model.keebDev02.resource.node.node.attributes.ticket }}'\n\
             methods:\n  sync:\n    arguments:\n      node: ${{ env.PROXMOX_NODE }}\n      limit: 5\n  lookup: {}\n",
        )
        .unwrap();
        assert_eq!(d.name, "fleet");
        assert_eq!(d.type_name, "proxmox/vm");
        assert_eq!(d.global_arguments["port"], json!(8006));
        assert_eq!(
            d.global_arguments["ticket"],
            json!("${{ model.keebDev02.resource.node.node.attributes.ticket }}")
        );
        assert_eq!(
            d.methods["sync"].arguments["node"],
            json!("${{ env.PROXMOX_NODE }}")
        );
        assert_eq!(d.methods["sync"].arguments["limit"], json!(5));
        assert!(d.methods["lookup"].arguments.is_empty());
        assert_eq!(d.line_of("methods.sync.arguments.limit"), Some(11));
    }

    #[test]
    fn definition_serializes_with_file_field_names() {
        let d = parse("type: proxmox/vm\nglobalArguments: { a: 1 }\n").unwrap();
        assert_eq!(
            serde_json::to_value(&d).unwrap(),
            json!({"name": "fleet", "type": "proxmox/vm", "globalArguments": {"a": 1}, "methods": {}})
        );
    }

    #[test]
    fn empty_sections_are_allowed() {
        let d = parse("type: proxmox/vm\nglobalArguments:\nmethods:\n  sync:\n").unwrap();
        assert!(d.global_arguments.is_empty());
        assert!(d.methods["sync"].arguments.is_empty());
    }

    #[test]
    fn name_must_match_file_stem() {
        let errs = parse("name: flet\ntype: proxmox/vm\n").unwrap_err();
        assert_eq!(errs[0].line, Some(1));
        assert!(errs[0].message.contains("does not match the file name"));
        assert!(parse("name: fleet\ntype: proxmox/vm\n").is_ok());
    }

    #[test]
    fn missing_type_is_reported() {
        let errs = parse("description: x\n").unwrap_err();
        assert_eq!(errs[0].field.as_deref(), Some("type"));
        assert!(errs[0].message.contains("missing required field `type`"));
    }

    #[test]
    fn misspelled_method_arguments_key_is_suggested() {
        let errs = parse("type: proxmox/vm\nmethods:\n  sync:\n    argumnets: {}\n").unwrap_err();
        assert_eq!(
            errs[0].to_string(),
            "models/fleet.yaml:4: methods.sync.argumnets: unknown field `argumnets`; did you mean `arguments`?"
        );
    }

    #[test]
    fn global_arguments_must_be_a_mapping() {
        let errs = parse("type: proxmox/vm\nglobalArguments: [a]\n").unwrap_err();
        assert_eq!(errs[0].line, Some(2));
        assert!(errs[0].message.contains("expected a map"), "{}", errs[0]);
    }
}
