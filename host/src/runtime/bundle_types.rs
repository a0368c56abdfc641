//! `types.json` in a bundle: the plugin's describe() answer as the packer received it, bound to
//! the wasm's SHA-256, so a cold registry learns a plugin's types without compiling it.
//!
//! The file holds the raw `type-info` records, so the host runs on them exactly the checks it
//! runs on a live describe(). It is a claim, not a proof: before the plugin first runs, the host
//! describes it for real and refuses it if the two differ (see [`differences`]).

use super::Described;
use super::wit::v0_2::MethodKind;
use super::wit::v0_2::orch::plugin::types::{ConfirmRule, MethodInfo, ResourceSpec, TypeInfo};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::Path;

/// The file's name beside `plugin.toml`.
pub const TYPES_FILE: &str = "types.json";

/// The layout written by this host; another number is read as unusable.
const FORMAT: u32 = 1;

/// Largest `types.json` read: a describe() answer at its limit, with room for JSON escaping.
const MAX_TYPES_FILE_BYTES: u64 = 3 * super::types::MAX_DESCRIBE_BYTES as u64;

/// The whole file.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TypesFile {
    format: u32,
    /// SHA-256 of the wasm whose describe() this is.
    sha256: String,
    types: Vec<ClaimedType>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ClaimedType {
    name: String,
    version: String,
    description: String,
    global_arguments_schema: String,
    resources: Vec<ClaimedResource>,
    methods: Vec<ClaimedMethod>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ClaimedResource {
    name: String,
    description: String,
    schema: String,
    #[serde(default)]
    volatile: Vec<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ClaimedMethod {
    name: String,
    description: String,
    kind: String,
    destructive: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    confirm: Option<ClaimedConfirm>,
    arguments_schema: String,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ClaimedConfirm {
    input: String,
    spec: String,
    name_argument: String,
    attribute: String,
}

const KINDS: [(&str, MethodKind); 7] = [
    ("create", MethodKind::Create),
    ("read", MethodKind::Read),
    ("update", MethodKind::Update),
    ("delete", MethodKind::Delete),
    ("list", MethodKind::List),
    ("action", MethodKind::Action),
    ("converge", MethodKind::Converge),
];

fn kind_text(kind: MethodKind) -> &'static str {
    KINDS
        .iter()
        .find(|(_, k)| *k == kind)
        .map(|(t, _)| *t)
        .unwrap_or("action")
}

impl ClaimedType {
    fn from_wit(t: &TypeInfo) -> Self {
        ClaimedType {
            name: t.name.clone(),
            version: t.version.clone(),
            description: t.description.clone(),
            global_arguments_schema: t.global_arguments_schema.clone(),
            resources: t
                .resources
                .iter()
                .map(|r| ClaimedResource {
                    name: r.name.clone(),
                    description: r.description.clone(),
                    schema: r.schema.clone(),
                    volatile: r.volatile.clone(),
                })
                .collect(),
            methods: t
                .methods
                .iter()
                .map(|m| ClaimedMethod {
                    name: m.name.clone(),
                    description: m.description.clone(),
                    kind: kind_text(m.kind).to_string(),
                    destructive: m.destructive,
                    confirm: m.confirm.as_ref().map(|c| ClaimedConfirm {
                        input: c.input.clone(),
                        spec: c.spec.clone(),
                        name_argument: c.name_argument.clone(),
                        attribute: c.attribute.clone(),
                    }),
                    arguments_schema: m.arguments_schema.clone(),
                })
                .collect(),
        }
    }

    fn into_wit(self) -> Result<TypeInfo, String> {
        let mut methods = Vec::new();
        for m in self.methods {
            let Some((_, kind)) = KINDS.iter().find(|(t, _)| *t == m.kind) else {
                return Err(format!(
                    "type `{}` method `{}`: kind `{}` is not one of create, read, update, delete, list, action, converge",
                    self.name, m.name, m.kind
                ));
            };
            methods.push(MethodInfo {
                name: m.name,
                description: m.description,
                kind: *kind,
                destructive: m.destructive,
                confirm: m.confirm.map(|c| ConfirmRule {
                    input: c.input,
                    spec: c.spec,
                    name_argument: c.name_argument,
                    attribute: c.attribute,
                }),
                arguments_schema: m.arguments_schema,
            });
        }
        Ok(TypeInfo {
            name: self.name,
            version: self.version,
            description: self.description,
            global_arguments_schema: self.global_arguments_schema,
            resources: self
                .resources
                .into_iter()
                .map(|r| ResourceSpec {
                    name: r.name,
                    description: r.description,
                    schema: r.schema,
                    volatile: r.volatile,
                })
                .collect(),
            methods,
        })
    }
}

/// The text of `types.json` for the wasm with digest `sha256` whose describe() returned `infos`.
pub fn encode(sha256: &str, infos: &[TypeInfo]) -> String {
    let file = TypesFile {
        format: FORMAT,
        sha256: sha256.to_ascii_lowercase(),
        types: infos.iter().map(ClaimedType::from_wit).collect(),
    };
    let mut text = serde_json::to_string_pretty(&file).unwrap_or_default();
    text.push('\n');
    text
}

/// What a bundle's `types.json` says about the wasm with digest `sha256`.
#[derive(Debug)]
pub enum BundleTypes {
    /// The bundle has no `types.json`.
    Missing,
    /// It has one, but it is for another wasm, or unreadable; why, in words.
    Unusable(String),
    /// The raw describe() answer it claims for this wasm.
    Claimed(Vec<TypeInfo>),
}

/// Reads `<dir>/types.json` and checks that it is bound to the wasm with digest `sha256`.
pub fn read(dir: &Path, sha256: &str) -> BundleTypes {
    let path = dir.join(TYPES_FILE);
    if path.symlink_metadata().is_err() {
        return BundleTypes::Missing;
    }
    match super::files::read_regular(&path, MAX_TYPES_FILE_BYTES) {
        Ok(bytes) => decode(&bytes, sha256),
        Err(why) => BundleTypes::Unusable(why),
    }
}

/// Hex SHA-256 of `<dir>/types.json`, if it is a readable regular file of bounded size.
pub fn digest(dir: &Path) -> Option<String> {
    use sha2::{Digest, Sha256};
    let bytes = super::files::read_regular(&dir.join(TYPES_FILE), MAX_TYPES_FILE_BYTES).ok()?;
    Some(hex::encode(Sha256::digest(&bytes)))
}

/// Parses the text of a `types.json` and checks its binding to `sha256`.
fn decode(bytes: &[u8], sha256: &str) -> BundleTypes {
    let file: TypesFile = match serde_json::from_slice(bytes) {
        Ok(f) => f,
        Err(e) => return BundleTypes::Unusable(format!("is not valid: {e}")),
    };
    if file.format != FORMAT {
        return BundleTypes::Unusable(format!(
            "has format {}, this orch reads format {FORMAT}",
            file.format
        ));
    }
    if !file.sha256.eq_ignore_ascii_case(sha256) {
        return BundleTypes::Unusable(format!(
            "is for the wasm with SHA-256 {}, but plugin.toml says {sha256} (stale: the wasm was rebuilt without it)",
            file.sha256
        ));
    }
    let mut infos = Vec::new();
    for t in file.types {
        match t.into_wit() {
            Ok(info) => infos.push(info),
            Err(why) => return BundleTypes::Unusable(why),
        }
    }
    BundleTypes::Claimed(infos)
}

/// The first way in which what a bundle claimed differs from what the plugin described, in
/// words ("type `x/y`: bundle types.json claims …, the plugin describes …"), or None.
pub fn differences(claimed: &Described, actual: &Described) -> Option<String> {
    let index = |d: &Described| {
        let mut m = std::collections::BTreeMap::new();
        for t in &d.types {
            m.insert(
                t.name.clone(),
                serde_json::to_value(t).unwrap_or(Value::Null),
            );
        }
        for (name, problem) in &d.rejected {
            m.insert(
                name.clone(),
                serde_json::json!({ "refusedBecause": problem }),
            );
        }
        m
    };
    let (claimed, actual) = (index(claimed), index(actual));
    for (name, claim) in &claimed {
        let Some(real) = actual.get(name) else {
            return Some(format!(
                "bundle types.json claims type `{name}`, the plugin describes no such type"
            ));
        };
        if let Some((at, c, r)) = first_difference(claim, real, String::new()) {
            return Some(format!(
                "type `{name}`: bundle types.json claims {} = {}, the plugin describes {}",
                if at.is_empty() { "/" } else { &at },
                shorten(&c),
                shorten(&r)
            ));
        }
    }
    actual
        .keys()
        .find(|n| !claimed.contains_key(*n))
        .map(|name| {
            format!("bundle types.json does not claim type `{name}`, the plugin describes it")
        })
}

/// The JSON pointer of the first place `a` and `b` differ, with both values there.
fn first_difference(a: &Value, b: &Value, at: String) -> Option<(String, Value, Value)> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            keys.into_iter().find_map(|k| {
                let (xv, yv) = (
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                );
                if x.contains_key(k) != y.contains_key(k) {
                    return Some((format!("{at}/{k}"), xv.clone(), yv.clone()));
                }
                first_difference(xv, yv, format!("{at}/{k}"))
            })
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (xv, yv))| first_difference(xv, yv, format!("{at}/{i}"))),
        _ if a == b => None,
        _ => Some((at, a.clone(), b.clone())),
    }
}

/// A JSON value cut to a readable length.
fn shorten(v: &Value) -> String {
    let text = v.to_string();
    if text.chars().count() > 120 {
        format!("{}…", text.chars().take(120).collect::<String>())
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::TypeDescription;

    fn info() -> TypeInfo {
        TypeInfo {
            name: "x/y".into(),
            version: "2026.01.01.1".into(),
            description: "a thing".into(),
            global_arguments_schema: "{}".into(),
            resources: vec![ResourceSpec {
                name: "item".into(),
                description: String::new(),
                schema: "{\"type\": \"object\"}".into(),
                volatile: vec!["at".into()],
            }],
            methods: vec![MethodInfo {
                name: "stop".into(),
                description: String::new(),
                kind: MethodKind::Delete,
                destructive: true,
                confirm: Some(ConfirmRule {
                    input: "expectId".into(),
                    spec: "item".into(),
                    name_argument: "name".into(),
                    attribute: "id".into(),
                }),
                arguments_schema: "{\"type\": \"object\"}".into(),
            }],
        }
    }

    fn described(infos: Vec<TypeInfo>) -> Described {
        let mut d = Described::default();
        for i in infos {
            d.types.push(TypeDescription::from_wit(i).unwrap());
        }
        d
    }

    fn claimed(bytes: &[u8], sha: &str) -> Vec<TypeInfo> {
        match decode(bytes, sha) {
            BundleTypes::Claimed(infos) => infos,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_encoded_answer_reads_back_as_the_same_description() {
        let text = encode("ABCD", &[info()]);
        let back = claimed(text.as_bytes(), "abcd");
        assert_eq!(
            differences(&described(back), &described(vec![info()])),
            None
        );
    }

    #[test]
    fn a_file_for_another_wasm_is_stale() {
        let text = encode("abcd", &[info()]);
        let BundleTypes::Unusable(why) = decode(text.as_bytes(), "ef01") else {
            panic!("a stale file was used");
        };
        assert!(why.contains("abcd") && why.contains("ef01"), "{why}");
    }

    #[test]
    fn a_malformed_file_is_unusable_not_an_error() {
        for bad in [
            &b"{"[..],
            b"[]",
            b"{\"format\": 1, \"sha256\": \"abcd\"}",
            b"{\"format\": 2, \"sha256\": \"abcd\", \"types\": []}",
            b"{\"format\": 1, \"sha256\": \"abcd\", \"types\": [], \"extra\": 1}",
        ] {
            assert!(
                matches!(decode(bad, "abcd"), BundleTypes::Unusable(_)),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let text = encode("abcd", &[info()]).replace("\"delete\"", "\"explode\"");
        let BundleTypes::Unusable(why) = decode(text.as_bytes(), "abcd") else {
            panic!("an unknown kind was used");
        };
        assert!(why.contains("explode") && why.contains("stop"), "{why}");
    }

    #[test]
    fn a_missing_file_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(read(dir.path(), "abcd"), BundleTypes::Missing));
        std::fs::write(dir.path().join(TYPES_FILE), encode("abcd", &[info()])).unwrap();
        assert!(matches!(read(dir.path(), "abcd"), BundleTypes::Claimed(_)));
    }

    #[test]
    fn a_changed_schema_is_named_with_where_it_differs() {
        let mut other = info();
        other.methods[0].arguments_schema = "{\"type\": \"object\", \"required\": [\"id\"]}".into();
        let why = differences(&described(vec![other]), &described(vec![info()])).unwrap();
        assert!(
            why.contains("type `x/y`")
                && why.contains("/methods/0/argumentsSchema/required")
                && why.contains("[\"id\"]"),
            "{why}"
        );
    }

    #[test]
    fn a_type_claimed_but_not_described_and_the_reverse_are_named() {
        let mut extra = info();
        extra.name = "x/ghost".into();
        let why = differences(&described(vec![info(), extra]), &described(vec![info()])).unwrap();
        assert!(why.contains("claims type `x/ghost`"), "{why}");
        let mut extra = info();
        extra.name = "x/hidden".into();
        let why = differences(&described(vec![info()]), &described(vec![info(), extra])).unwrap();
        assert!(why.contains("does not claim type `x/hidden`"), "{why}");
    }

    #[test]
    fn a_destructive_flag_dropped_from_the_claim_is_a_difference() {
        let mut safe = info();
        safe.methods[0].destructive = false;
        safe.methods[0].confirm = None;
        let why = differences(&described(vec![safe]), &described(vec![info()])).unwrap();
        assert!(why.contains("/methods/0/"), "{why}");
    }
}
