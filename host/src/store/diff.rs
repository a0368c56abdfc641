//! Field-level differences between two attribute documents, for `orch data diff` and
//! `orch data changes`.
//!
//! Nested objects compare field by field under dotted paths (`config.net0`); arrays and
//! scalars compare as whole values. Top-level attributes the spec declares volatile (e.g. a
//! sync's `timestamp`) are left out, as the data capability leaves them out when it decides
//! whether a write is a change.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

/// The path under which a document that is not an object is compared as a whole.
const WHOLE: &str = "(value)";

/// What `orch data` shows instead of a sensitive attribute's value.
pub const SENSITIVE: &str = "(sensitive)";

/// Whether `path` (dotted) is a sensitive top-level attribute or lies under one.
fn is_sensitive(path: &str, sensitive: &[String]) -> bool {
    sensitive.iter().any(|s| {
        path.strip_prefix(s.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
    })
}

/// Replaces the values of the `sensitive` top-level attributes of `attributes` with
/// [`SENSITIVE`], keeping the keys, so output shows that they are there but not what they hold.
pub fn mask_sensitive(attributes: &mut Value, sensitive: &[String]) {
    if let Some(fields) = attributes.as_object_mut() {
        for name in sensitive {
            if let Some(v) = fields.get_mut(name) {
                *v = Value::String(SENSITIVE.into());
            }
        }
    }
}

/// What differs between two versions' attributes, by dotted path.
#[derive(Serialize, Clone, Debug, Default, PartialEq)]
pub struct FieldDiff {
    /// Paths only the newer version has, with its value.
    pub added: BTreeMap<String, Value>,
    /// Paths only the older version has, with its value.
    pub removed: BTreeMap<String, Value>,
    /// Paths both have with different values: (older, newer).
    pub changed: BTreeMap<String, (Value, Value)>,
}

impl FieldDiff {
    /// Whether nothing differs.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }

    /// `{"added": {..}, "removed": {..}, "changed": {path: {"from", "to"}}}`.
    pub fn to_json(&self) -> serde_json::Map<String, Value> {
        let mut out = serde_json::Map::new();
        out.insert("added".into(), map_json(&self.added));
        out.insert("removed".into(), map_json(&self.removed));
        let changed = self
            .changed
            .iter()
            .map(|(k, (from, to))| (k.clone(), serde_json::json!({"from": from, "to": to})))
            .collect();
        out.insert("changed".into(), Value::Object(changed));
        out
    }

    /// Every path in one map: `{"from": old}` for a removed one, `{"to": new}` for an added one,
    /// both for a changed one.
    pub fn fields_json(&self) -> Value {
        let mut out = serde_json::Map::new();
        for (k, v) in &self.removed {
            out.insert(k.clone(), serde_json::json!({ "from": v }));
        }
        for (k, v) in &self.added {
            out.insert(k.clone(), serde_json::json!({ "to": v }));
        }
        for (k, (from, to)) in &self.changed {
            out.insert(k.clone(), serde_json::json!({"from": from, "to": to}));
        }
        Value::Object(out)
    }

    /// The same differences with the values of sensitive attributes (and of paths under them)
    /// replaced by [`SENSITIVE`]: a changed ticket still shows as changed.
    pub fn mask(&mut self, sensitive: &[String]) {
        let hide = Value::String(SENSITIVE.into());
        for (path, v) in self.added.iter_mut().chain(self.removed.iter_mut()) {
            if is_sensitive(path, sensitive) {
                *v = hide.clone();
            }
        }
        for (path, (from, to)) in self.changed.iter_mut() {
            if is_sensitive(path, sensitive) {
                (*from, *to) = (hide.clone(), hide.clone());
            }
        }
    }

    /// One line per path, sorted: `~ path: old → new`, `+ path: new`, `- path: old`.
    pub fn lines(&self) -> Vec<String> {
        let mut lines: Vec<(&str, String)> = Vec::new();
        for (k, (from, to)) in &self.changed {
            lines.push((k, format!("~ {k}: {from} → {to}")));
        }
        for (k, v) in &self.added {
            lines.push((k, format!("+ {k}: {v}")));
        }
        for (k, v) in &self.removed {
            lines.push((k, format!("- {k}: {v}")));
        }
        lines.sort_by(|a, b| a.0.cmp(b.0));
        lines.into_iter().map(|(_, l)| l).collect()
    }
}

fn map_json(map: &BTreeMap<String, Value>) -> Value {
    Value::Object(map.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
}

/// The differences from `old` to `new`, leaving out the top-level attributes in `volatile`.
pub fn diff_attributes(old: &Value, new: &Value, volatile: &[String]) -> FieldDiff {
    let old = flatten(old, volatile);
    let new = flatten(new, volatile);
    let mut diff = FieldDiff::default();
    for (path, before) in &old {
        match new.get(path) {
            None => {
                diff.removed.insert(path.clone(), (*before).clone());
            }
            Some(after) if after != before => {
                diff.changed
                    .insert(path.clone(), ((*before).clone(), (*after).clone()));
            }
            Some(_) => {}
        }
    }
    for (path, after) in new {
        if !old.contains_key(&path) {
            diff.added.insert(path, after.clone());
        }
    }
    diff
}

/// Path → leaf value; an empty object is a leaf, so `{}` shows as a value of its own.
fn flatten<'a>(doc: &'a Value, volatile: &[String]) -> BTreeMap<String, &'a Value> {
    let mut out = BTreeMap::new();
    match doc.as_object() {
        Some(fields) => {
            for (k, v) in fields {
                if !volatile.contains(k) {
                    walk(k.clone(), v, &mut out);
                }
            }
        }
        None => {
            out.insert(WHOLE.to_string(), doc);
        }
    }
    out
}

fn walk<'a>(path: String, value: &'a Value, out: &mut BTreeMap<String, &'a Value>) {
    match value.as_object() {
        Some(fields) if !fields.is_empty() => {
            for (k, v) in fields {
                walk(format!("{path}.{k}"), v, out);
            }
        }
        _ => {
            out.insert(path, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn nested_objects_compare_by_dotted_path_and_arrays_as_whole_values() {
        let old = json!({
            "status": "running",
            "config": {"net0": "virtio=AA", "cores": 2, "disk": {"size": 10}},
            "ips": ["10.0.0.1"],
            "gone": true
        });
        let new = json!({
            "status": "stopped",
            "config": {"net0": "virtio=BB", "cores": 2, "disk": {"size": 10, "ssd": 1}},
            "ips": ["10.0.0.1", "10.0.0.2"],
            "tags": "x"
        });
        let diff = diff_attributes(&old, &new, &[]);
        assert_eq!(
            diff.changed.keys().collect::<Vec<_>>(),
            vec!["config.net0", "ips", "status"]
        );
        assert_eq!(
            diff.changed["ips"],
            (json!(["10.0.0.1"]), json!(["10.0.0.1", "10.0.0.2"]))
        );
        assert_eq!(
            diff.added,
            BTreeMap::from([
                ("config.disk.ssd".to_string(), json!(1)),
                ("tags".to_string(), json!("x"))
            ])
        );
        assert_eq!(
            diff.removed,
            BTreeMap::from([("gone".to_string(), json!(true))])
        );
        assert_eq!(
            diff.lines(),
            vec![
                "+ config.disk.ssd: 1",
                "~ config.net0: \"virtio=AA\" → \"virtio=BB\"",
                "- gone: true",
                "~ ips: [\"10.0.0.1\"] → [\"10.0.0.1\",\"10.0.0.2\"]",
                "~ status: \"running\" → \"stopped\"",
                "+ tags: \"x\"",
            ]
        );
    }

    #[test]
    fn volatile_top_level_attributes_are_ignored_with_everything_under_them() {
        let old = json!({"status": "up", "timestamp": 1, "seen": {"at": 1}});
        let new = json!({"status": "up", "timestamp": 2, "seen": {"at": 2, "by": "x"}});
        let volatile = vec!["timestamp".to_string(), "seen".to_string()];
        assert!(diff_attributes(&old, &new, &volatile).is_empty());
        let diff = diff_attributes(&old, &new, &["timestamp".to_string()]);
        assert_eq!(diff.lines(), vec!["~ seen.at: 1 → 2", "+ seen.by: \"x\""]);
    }

    #[test]
    fn a_document_that_is_not_an_object_compares_as_one_value() {
        let diff = diff_attributes(&json!(1), &json!(2), &[]);
        assert_eq!(diff.changed[WHOLE], (json!(1), json!(2)));
        let diff = diff_attributes(&json!({"a": {}}), &json!({"a": {"b": 1}}), &[]);
        assert_eq!(diff.removed["a"], json!({}));
        assert_eq!(diff.added["a.b"], json!(1));
    }

    #[test]
    fn json_shapes_name_from_and_to() {
        let diff = diff_attributes(&json!({"a": 1, "b": 2}), &json!({"a": 3, "c": 4}), &[]);
        assert_eq!(
            Value::Object(diff.to_json()),
            json!({"added": {"c": 4}, "removed": {"b": 2}, "changed": {"a": {"from": 1, "to": 3}}})
        );
        assert_eq!(
            diff.fields_json(),
            json!({"a": {"from": 1, "to": 3}, "b": {"from": 2}, "c": {"to": 4}})
        );
    }

    #[test]
    fn sensitive_values_are_masked_but_their_changes_still_show() {
        let sensitive = vec!["ticket".to_string()];
        let mut d = diff_attributes(
            &json!({"ticket": "PVE:a", "tickets": 1, "user": "root"}),
            &json!({"ticket": "PVE:b", "tickets": 2, "user": "root", "auth": {"x": 1}}),
            &[],
        );
        d.mask(&sensitive);
        assert_eq!(
            d.changed["ticket"],
            (json!(SENSITIVE), json!(SENSITIVE)),
            "changed, value hidden"
        );
        assert_eq!(
            d.changed["tickets"],
            (json!(1), json!(2)),
            "a prefix is not a match"
        );
        let mut nested = diff_attributes(&json!({}), &json!({"ticket": {"id": "s"}}), &[]);
        nested.mask(&sensitive);
        assert_eq!(nested.added["ticket.id"], json!(SENSITIVE));
        let mut doc = json!({"ticket": "PVE:a", "user": "root"});
        mask_sensitive(&mut doc, &sensitive);
        assert_eq!(doc, json!({"ticket": SENSITIVE, "user": "root"}));
    }
}
