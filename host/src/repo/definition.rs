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
    /// Tags stored on every resource version this model writes (under the workflow's and the
    /// command line's).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// Retention and lifetime per resource spec (`resources.<spec>`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub resources: BTreeMap<String, ResourcePolicy>,
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

/// `resources.<spec>` in a definition: how long its versions are kept and how long it resolves.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourcePolicy {
    /// Which old versions `orch data gc` deletes; `None` keeps every version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub garbage_collection: Option<Retention>,
    /// How long the resource resolves in expressions; `None` is forever.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lifetime: Option<Lifetime>,
}

/// `garbageCollection` of a resource spec.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Retention {
    /// Keep the newest N versions of each resource.
    KeepVersions(u64),
    /// Keep versions younger than this many seconds (the newest is always kept).
    OlderThan(u64),
}

/// `lifetime` of a resource spec.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Lifetime {
    /// Resolves only within the run that wrote its latest version.
    Ephemeral,
    /// Resolves while its latest version is younger than this many seconds.
    Seconds(u64),
}

impl Lifetime {
    /// Whether a resource whose latest version run `writer` wrote at `written_at` (RFC 3339)
    /// is dead, seen from run `current` (`None` outside any run) at `now`.
    pub fn ended(
        &self,
        written_at: &str,
        writer: &str,
        current: Option<&str>,
        now: time::OffsetDateTime,
    ) -> bool {
        match self {
            Lifetime::Ephemeral => current != Some(writer),
            Lifetime::Seconds(secs) => {
                let format = &time::format_description::well_known::Rfc3339;
                match time::OffsetDateTime::parse(written_at, format) {
                    Ok(at) => now - at >= time::Duration::seconds(*secs as i64),
                    // A time orch did not write cannot be aged: keep the resource alive.
                    Err(_) => false,
                }
            }
        }
    }

    /// `ephemeral`, or the duration in its largest whole unit (`2h`, `90m`, `0s`).
    pub fn describe(&self) -> String {
        match self {
            Lifetime::Ephemeral => "ephemeral".to_string(),
            Lifetime::Seconds(secs) => [(604_800, 'w'), (86_400, 'd'), (3600, 'h'), (60, 'm')]
                .into_iter()
                .find(|(unit, _)| *secs > 0 && secs % unit == 0)
                .map(|(unit, letter)| format!("{}{letter}", secs / unit))
                .unwrap_or_else(|| format!("{secs}s")),
        }
    }
}

impl Definition {
    /// The `lifetime` of this model's resources of `spec`, if the definition sets one.
    pub fn lifetime_of(&self, spec: &str) -> Option<&Lifetime> {
        self.resources.get(spec)?.lifetime.as_ref()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawPolicy {
    #[serde(default)]
    garbage_collection: Option<RawRetention>,
    #[serde(default)]
    lifetime: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawRetention {
    #[serde(default)]
    keep_versions: Option<u64>,
    #[serde(default)]
    older_than: Option<String>,
}

/// `90s`, `30m`, `12h`, `30d`, `2w` in seconds; `None` when the text is not such a duration.
pub fn parse_duration(text: &str) -> Option<u64> {
    let text = text.trim();
    let unit = text.chars().last()?;
    let seconds: u64 = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        'w' => 604_800,
        _ => return None,
    };
    let digits = &text[..text.len() - 1];
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u64>().ok()?.checked_mul(seconds)
}

fn policy_of(
    spec: &str,
    raw: RawPolicy,
    file: &Path,
    lines: &LineIndex,
    diags: &mut Vec<Diagnostic>,
) -> ResourcePolicy {
    let mut out = ResourcePolicy::default();
    let bad_duration = |field: String, text: &str| {
        Diagnostic::at(
            file,
            lines,
            &field,
            format!(
                "`{text}` is not a duration; write a whole number and a unit, such as 90m, 12h or 30d"
            ),
        )
    };
    if let Some(gc) = raw.garbage_collection {
        let field = format!("resources.{spec}.garbageCollection");
        match (gc.keep_versions, gc.older_than) {
            (Some(0), _) => diags.push(Diagnostic::at(
                file,
                lines,
                format!("{field}.keepVersions"),
                "keepVersions must be at least 1 (the newest version is always kept)",
            )),
            (Some(n), None) => out.garbage_collection = Some(Retention::KeepVersions(n)),
            (None, Some(text)) => match parse_duration(&text) {
                Some(secs) => out.garbage_collection = Some(Retention::OlderThan(secs)),
                None => diags.push(bad_duration(format!("{field}.olderThan"), &text)),
            },
            (Some(_), Some(_)) | (None, None) => diags.push(Diagnostic::at(
                file,
                lines,
                &field,
                "give exactly one of `keepVersions: N` or `olderThan: <duration>`",
            )),
        }
    }
    if let Some(text) = raw.lifetime {
        if text.trim() == "ephemeral" {
            out.lifetime = Some(Lifetime::Ephemeral);
        } else {
            match parse_duration(&text) {
                Some(secs) => out.lifetime = Some(Lifetime::Seconds(secs)),
                None => diags.push(Diagnostic::at(
                    file,
                    lines,
                    format!("resources.{spec}.lifetime"),
                    format!(
                        "`{text}` is neither `ephemeral` nor a duration such as 90m, 12h or 30d"
                    ),
                )),
            }
        }
    }
    out
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
    #[serde(default, deserialize_with = "null_default")]
    tags: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "null_default")]
    resources: BTreeMap<String, RawPolicy>,
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
        let resources = raw
            .resources
            .into_iter()
            .map(|(spec, policy)| {
                let policy = policy_of(&spec, policy, file, &lines, &mut diags);
                (spec, policy)
            })
            .collect();
        if !diags.is_empty() {
            return Err(diags);
        }
        Ok(Definition {
            tags: raw.tags,
            resources,
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

    #[test]
    fn tags_retention_and_lifetime_are_read_per_spec() {
        let d = parse(
            "type: proxmox/vm\ntags:\n  env: lab\nresources:\n  vm:\n    garbageCollection: { keepVersions: 10 }\n  \
             node:\n    garbageCollection: { olderThan: 30d }\n    lifetime: 2h\n  session:\n    lifetime: ephemeral\n",
        )
        .unwrap();
        assert_eq!(d.tags["env"], "lab");
        assert_eq!(
            d.resources["vm"].garbage_collection,
            Some(Retention::KeepVersions(10))
        );
        assert_eq!(
            d.resources["node"].garbage_collection,
            Some(Retention::OlderThan(30 * 86_400))
        );
        assert_eq!(d.resources["node"].lifetime, Some(Lifetime::Seconds(7200)));
        assert_eq!(d.resources["session"].lifetime, Some(Lifetime::Ephemeral));
        let shown: Vec<String> = [7200, 5400, 0, 90, 86_400 * 30]
            .map(|s| Lifetime::Seconds(s).describe())
            .into();
        assert_eq!(shown, ["2h", "90m", "0s", "90s", "30d"]);
    }

    #[test]
    fn a_bad_duration_names_the_file_line_and_field() {
        let errs = parse(
            "type: proxmox/vm\nresources:\n  vm:\n    garbageCollection:\n      olderThan: 30 days\n",
        )
        .unwrap_err();
        assert_eq!(
            errs[0].to_string(),
            "models/fleet.yaml:5: resources.vm.garbageCollection.olderThan: `30 days` is not a \
             duration; write a whole number and a unit, such as 90m, 12h or 30d"
        );
        let errs = parse("type: proxmox/vm\nresources:\n  s:\n    lifetime: soon\n").unwrap_err();
        assert_eq!(errs[0].line, Some(4));
        assert!(
            errs[0].message.contains("neither `ephemeral`"),
            "{}",
            errs[0]
        );
        let errs = parse(
            "type: proxmox/vm\nresources:\n  s:\n    garbageCollection: { keepVersions: 0 }\n",
        )
        .unwrap_err();
        assert!(errs[0].message.contains("at least 1"), "{}", errs[0]);
    }
}
