//! JSON Schemas come from plugins, so the host bounds the work they can make it do: size, depth,
//! and the size they reach once every `$ref` is followed (a chain of `$ref`s that each double
//! makes validation exponential). Only local `$ref`s are allowed, patterns use a linear-time
//! regex engine, and every schema the host validates against is compiled here.

use serde_json::Value;
use std::collections::HashMap;

/// Largest schema (as JSON text) a plugin may declare.
pub const MAX_SCHEMA_BYTES: usize = 256 * 1024;
/// Deepest nesting of a schema document.
pub const MAX_SCHEMA_DEPTH: usize = 64;
/// Most JSON values in one schema document.
pub const MAX_SCHEMA_NODES: usize = 20_000;
/// Most schema nodes validation may visit once every `$ref` is followed.
pub const MAX_EXPANDED_NODES: usize = 200_000;
/// Deepest chain of `$ref`s followed from one place.
pub const MAX_REF_NESTING: usize = 32;
/// Largest compiled form of one `pattern`.
const MAX_REGEX_BYTES: usize = 1024 * 1024;

/// Keywords whose values are data, not subschemas: a `"$ref"` key inside them means nothing.
const DATA_KEYWORDS: &[&str] = &["const", "default", "enum", "examples"];

/// Keywords that change how `$ref` resolves; allowed only at the root.
const BASE_KEYWORDS: &[&str] = &["$id", "$anchor", "$dynamicAnchor", "$recursiveAnchor"];

/// Checks the bounds above; the message says which bound and where.
pub fn check_bounds(schema: &Value) -> Result<(), String> {
    let mut nodes = 0usize;
    shape(schema, 0, true, "", &mut nodes)?;
    let mut expander = Expander {
        root: schema,
        sizes: HashMap::new(),
        stack: Vec::new(),
    };
    let total = expander.size(schema)?;
    if total > MAX_EXPANDED_NODES {
        return Err(expanded_too_large());
    }
    Ok(())
}

/// Checks the bounds and compiles a validator.
pub fn compile(schema: &Value) -> Result<jsonschema::Validator, String> {
    check_bounds(schema)?;
    jsonschema::options()
        .with_pattern_options(jsonschema::PatternOptions::regex().size_limit(MAX_REGEX_BYTES))
        .build(schema)
        .map_err(|e| format!("does not compile: {e}"))
}

fn expanded_too_large() -> String {
    format!(
        "expands to more than {MAX_EXPANDED_NODES} nodes once its $refs are followed \
         (a $ref that is used many times over, or doubles at each level); inline less or \
         simplify the schema"
    )
}

/// Walks the document once: size, depth, and keywords the host refuses.
fn shape(v: &Value, depth: usize, root: bool, path: &str, nodes: &mut usize) -> Result<(), String> {
    *nodes += 1;
    if *nodes > MAX_SCHEMA_NODES {
        return Err(format!("has more than {MAX_SCHEMA_NODES} JSON values"));
    }
    if depth > MAX_SCHEMA_DEPTH {
        return Err(format!(
            "nests deeper than {MAX_SCHEMA_DEPTH} levels (at {path})"
        ));
    }
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                let here = format!("{path}/{k}");
                if child.is_string() {
                    if k == "$ref" {
                        let r = child.as_str().unwrap_or_default();
                        if !r.starts_with('#') {
                            return Err(format!(
                                "has a non-local $ref `{r}` at {here}; plugin schemas may only \
                                 refer inside themselves (`#/$defs/...`)"
                            ));
                        }
                    }
                    if k == "$dynamicRef" || k == "$recursiveRef" {
                        return Err(format!(
                            "uses {k} at {here}, which orch does not allow in plugin schemas"
                        ));
                    }
                    if !root && BASE_KEYWORDS.contains(&k.as_str()) {
                        return Err(format!(
                            "sets {k} below the root (at {here}), which would change what \
                             its $refs mean; orch allows it only at the root"
                        ));
                    }
                }
                if DATA_KEYWORDS.contains(&k.as_str()) {
                    count_data(child, depth + 1, &here, nodes)?;
                } else {
                    shape(child, depth + 1, false, &here, nodes)?;
                }
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                shape(child, depth + 1, false, &format!("{path}/{i}"), nodes)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Counts a data value (an `enum`, a `default`) toward the size and depth bounds only.
fn count_data(v: &Value, depth: usize, path: &str, nodes: &mut usize) -> Result<(), String> {
    *nodes += 1;
    if *nodes > MAX_SCHEMA_NODES {
        return Err(format!("has more than {MAX_SCHEMA_NODES} JSON values"));
    }
    if depth > MAX_SCHEMA_DEPTH {
        return Err(format!(
            "nests deeper than {MAX_SCHEMA_DEPTH} levels (at {path})"
        ));
    }
    match v {
        Value::Object(map) => map
            .values()
            .try_for_each(|c| count_data(c, depth + 1, path, nodes)),
        Value::Array(items) => items
            .iter()
            .try_for_each(|c| count_data(c, depth + 1, path, nodes)),
        _ => Ok(()),
    }
}

/// Sizes with every `$ref` replaced by what it points to, memoized per target.
struct Expander<'a> {
    root: &'a Value,
    sizes: HashMap<String, usize>,
    stack: Vec<String>,
}

impl Expander<'_> {
    fn size(&mut self, v: &Value) -> Result<usize, String> {
        let mut total = 1usize;
        match v {
            Value::Object(map) => {
                for (k, child) in map {
                    if DATA_KEYWORDS.contains(&k.as_str()) {
                        continue;
                    }
                    if k == "$ref"
                        && let Some(r) = child.as_str()
                    {
                        total = total.saturating_add(self.follow(r)?);
                    } else {
                        total = total.saturating_add(self.size(child)?);
                    }
                    if total > MAX_EXPANDED_NODES {
                        return Err(expanded_too_large());
                    }
                }
            }
            Value::Array(items) => {
                for child in items {
                    total = total.saturating_add(self.size(child)?);
                    if total > MAX_EXPANDED_NODES {
                        return Err(expanded_too_large());
                    }
                }
            }
            _ => {}
        }
        Ok(total)
    }

    fn follow(&mut self, r: &str) -> Result<usize, String> {
        if let Some(size) = self.sizes.get(r) {
            return Ok(*size);
        }
        if self.stack.iter().any(|s| s == r) {
            return Err(format!(
                "has a recursive $ref `{r}` (via {}); orch does not allow recursive schemas \
                 for plugin arguments",
                self.stack.join(" → ")
            ));
        }
        if self.stack.len() >= MAX_REF_NESTING {
            return Err(format!(
                "follows more than {MAX_REF_NESTING} $refs inside each other (at `{r}`)"
            ));
        }
        let pointer = r.trim_start_matches('#');
        let target = self
            .root
            .pointer(pointer)
            .ok_or_else(|| format!("has a $ref `{r}` that points nowhere"))?;
        self.stack.push(r.to_string());
        let size = self.size(target);
        self.stack.pop();
        let size = size?;
        self.sizes.insert(r.to_string(), size);
        Ok(size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// `d{n}` is all of `d{n-1}` twice: 2^levels nodes once expanded.
    fn doubling(levels: usize) -> Value {
        let mut defs = serde_json::Map::new();
        defs.insert("d0".into(), json!({"type": "object"}));
        for i in 1..=levels {
            let prev = format!("#/$defs/d{}", i - 1);
            defs.insert(
                format!("d{i}"),
                json!({"allOf": [{"$ref": prev}, {"$ref": prev}]}),
            );
        }
        json!({"$defs": defs, "$ref": format!("#/$defs/d{levels}")})
    }

    #[test]
    fn a_doubling_ref_chain_is_refused_quickly() {
        let err = compile(&doubling(60)).unwrap_err();
        assert!(err.contains("expands to more than"), "{err}");
        // A few levels are fine.
        assert!(compile(&doubling(4)).is_ok());
    }

    #[test]
    fn recursive_and_remote_refs_are_refused() {
        let rec = json!({"$defs": {"n": {"properties": {"next": {"$ref": "#/$defs/n"}}}}, "$ref": "#/$defs/n"});
        assert!(check_bounds(&rec).unwrap_err().contains("recursive $ref"));
        let remote = json!({"$ref": "https://example.com/s.json"});
        assert!(
            check_bounds(&remote)
                .unwrap_err()
                .contains("non-local $ref")
        );
        let nested_id = json!({"properties": {"a": {"$id": "https://x/", "type": "string"}}});
        assert!(check_bounds(&nested_id).unwrap_err().contains("$id"));
    }

    #[test]
    fn deep_or_huge_schemas_are_refused() {
        let mut deep = json!({"type": "string"});
        for _ in 0..100 {
            deep = json!({"items": deep});
        }
        assert!(check_bounds(&deep).unwrap_err().contains("nests deeper"));
        let wide: serde_json::Map<String, Value> =
            (0..30_000).map(|i| (format!("p{i}"), json!(1))).collect();
        let huge = json!({"properties": wide});
        assert!(check_bounds(&huge).unwrap_err().contains("more than"));
    }

    #[test]
    fn property_names_and_data_that_look_like_keywords_are_fine() {
        let s = json!({
            "type": "object",
            "properties": {"id": {"type": "string"}, "$id": {"type": "string"}},
            "default": {"$id": "not a keyword here", "$ref": "nor here"}
        });
        assert!(compile(&s).is_ok());
    }

    #[test]
    fn patterns_use_a_linear_time_engine() {
        let v = compile(&json!({"type": "string", "pattern": "^(a+)+$"})).unwrap();
        let evil = format!("{}!", "a".repeat(50_000));
        assert!(!v.is_valid(&json!(evil)));
    }
}
