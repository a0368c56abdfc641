//! Conversions between JSON and CEL values.
//!
//! The interpreter works on `dyn Val` trees; going through `cel::Value` would deep-copy
//! every map on each evaluation, so data is converted once into the built-in `Val` types.

use std::collections::HashMap;

use cel::common::types::{
    CelBool, CelBytes, CelDouble, CelDuration, CelInt, CelList, CelMap, CelMapKey, CelNull,
    CelOptional, CelString, CelTimestamp, CelType, CelUInt,
};
use cel::common::value::Val;
use serde_json::{Map, Number, Value};

/// A CEL value owning all its data.
pub(super) type OwnedVal = Box<dyn Val + 'static>;

/// Deepest nesting of a value converted between JSON and CEL; conversion recurses once per
/// level, so deeper data is refused instead of overflowing the stack.
pub const MAX_VALUE_DEPTH: usize = 256;

/// Refuses JSON nested deeper than [`MAX_VALUE_DEPTH`], checked without recursing; data must
/// pass this before [`json_to_val`] converts it.
pub(super) fn check_depth(value: &Value) -> Result<(), String> {
    let mut stack = vec![(value, 1usize)];
    while let Some((v, depth)) = stack.pop() {
        if depth > MAX_VALUE_DEPTH {
            return Err(format!(
                "the data nests more than {MAX_VALUE_DEPTH} levels deep"
            ));
        }
        match v {
            Value::Array(items) => stack.extend(items.iter().map(|i| (i, depth + 1))),
            Value::Object(map) => stack.extend(map.values().map(|i| (i, depth + 1))),
            _ => {}
        }
    }
    Ok(())
}

/// Converts JSON to CEL. JSON integers become `int`, or `uint` above `i64::MAX`. The value
/// must have passed [`check_depth`].
pub(super) fn json_to_val(value: &Value) -> OwnedVal {
    match value {
        Value::Null => Box::new(CelNull),
        Value::Bool(b) => Box::new(CelBool::from(*b)),
        Value::Number(n) => number_to_val(n),
        Value::String(s) => Box::new(CelString::from(s.clone())),
        Value::Array(items) => Box::new(CelList::from(
            items.iter().map(json_to_val).collect::<Vec<_>>(),
        )),
        Value::Object(map) => Box::new(object_to_map(map)),
    }
}

fn number_to_val(n: &Number) -> OwnedVal {
    if let Some(i) = n.as_i64() {
        Box::new(CelInt::from(i))
    } else if let Some(u) = n.as_u64() {
        Box::new(CelUInt::from(u))
    } else {
        Box::new(CelDouble::from(n.as_f64().unwrap_or(f64::NAN)))
    }
}

/// A JSON object as a CEL map with string keys.
pub(super) fn object_to_map(map: &Map<String, Value>) -> CelMap<'static> {
    string_map(map.iter().map(|(k, v)| (k.clone(), json_to_val(v))))
}

/// A CEL map from string keys.
pub(super) fn string_map(entries: impl IntoIterator<Item = (String, OwnedVal)>) -> CelMap<'static> {
    let map: HashMap<CelMapKey<'static>, OwnedVal> = entries
        .into_iter()
        .map(|(k, v)| (CelMapKey::from(k), v))
        .collect();
    CelMap::from(map)
}

/// A CEL `int` for a u64 that fits, else a `uint`.
pub(super) fn u64_to_val(n: u64) -> OwnedVal {
    match i64::try_from(n) {
        Ok(i) => Box::new(CelInt::from(i)),
        Err(_) => Box::new(CelUInt::from(n)),
    }
}

/// The text of a map key as it appears in JSON and in messages.
pub(super) fn key_text(key: &CelMapKey<'_>) -> String {
    match key {
        CelMapKey::String(s) => s.inner().to_string(),
        CelMapKey::Int(i) => i.inner().to_string(),
        CelMapKey::UInt(u) => u.inner().to_string(),
        CelMapKey::Bool(b) => b.inner().to_string(),
    }
}

/// The text of a value used as an index, for messages and key paths.
pub(super) fn index_text(value: &dyn Val) -> String {
    if let Some(s) = value.downcast_ref::<CelString>() {
        s.inner().to_string()
    } else {
        match val_to_json(value) {
            Ok(json) => json.to_string(),
            Err(_) => format!("<{}>", value.get_type().name()),
        }
    }
}

/// The string keys of a CEL map, or None when `value` is not a built-in map.
pub(super) fn map_keys(value: &dyn Val) -> Option<Vec<String>> {
    let map = value.downcast_ref::<CelMap>()?;
    Some(map.inner().keys().map(key_text).collect())
}

/// Looks a string key up in a built-in map, borrowing the value.
pub(super) fn map_get<'m>(map: &'m CelMap<'static>, key: &str) -> Option<&'m (dyn Val + 'static)> {
    map.inner()
        .get(&CelMapKey::from(key.to_string()))
        .map(|v| v.as_ref())
}

/// Converts a CEL result to JSON, keeping its type. Map keys come out sorted, since CEL maps
/// are unordered and stable output matters more than any particular order.
pub(super) fn val_to_json(value: &dyn Val) -> Result<Value, String> {
    val_to_json_at(value, 1)
}

fn val_to_json_at(value: &dyn Val, depth: usize) -> Result<Value, String> {
    if depth > MAX_VALUE_DEPTH {
        return Err(format!(
            "the value nests more than {MAX_VALUE_DEPTH} levels deep"
        ));
    }
    if value.downcast_ref::<CelNull>().is_some() {
        return Ok(Value::Null);
    }
    if let Some(b) = value.downcast_ref::<CelBool>() {
        return Ok(Value::Bool(*b.inner()));
    }
    if let Some(i) = value.downcast_ref::<CelInt>() {
        return Ok(Value::from(*i.inner()));
    }
    if let Some(u) = value.downcast_ref::<CelUInt>() {
        return Ok(Value::from(*u.inner()));
    }
    if let Some(d) = value.downcast_ref::<CelDouble>() {
        let d = *d.inner();
        return Number::from_f64(d)
            .map(Value::Number)
            .ok_or_else(|| format!("the double {d} has no JSON representation"));
    }
    if let Some(s) = value.downcast_ref::<CelString>() {
        return Ok(Value::String(s.inner().to_string()));
    }
    if let Some(list) = value.downcast_ref::<CelList>() {
        return list
            .inner()
            .iter()
            .map(|item| val_to_json_at(item.as_ref(), depth + 1))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array);
    }
    if let Some(map) = value.downcast_ref::<CelMap>() {
        let mut entries: Vec<(String, &dyn Val)> = map
            .inner()
            .iter()
            .map(|(k, v)| (key_text(k), v.as_ref() as &dyn Val))
            .collect();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out = Map::with_capacity(entries.len());
        for (k, v) in entries {
            out.insert(k, val_to_json_at(v, depth + 1)?);
        }
        return Ok(Value::Object(out));
    }
    if let Some(opt) = value.downcast_ref::<CelOptional>() {
        return match opt.option() {
            Some(inner) => val_to_json_at(inner, depth + 1),
            None => Ok(Value::Null),
        };
    }
    if let Some(bytes) = value.downcast_ref::<CelBytes>() {
        return std::str::from_utf8(bytes.inner())
            .map(|s| Value::String(s.to_string()))
            .map_err(|_| "bytes that are not UTF-8 have no JSON representation".to_string());
    }
    if let Some(ts) = value.downcast_ref::<CelTimestamp>() {
        return Ok(Value::String(ts.inner().to_rfc3339()));
    }
    if let Some(d) = value.downcast_ref::<CelDuration>() {
        let d = d.inner();
        return Ok(Value::String(duration_text(
            d.num_seconds(),
            d.subsec_nanos(),
        )));
    }
    if let Some(t) = value.downcast_ref::<CelType>() {
        return Ok(Value::String(t.name().to_string()));
    }
    if value.get_type().name() == super::state::MODELS_TYPE.name() {
        return Err("`model` itself is not a value; select one, e.g. `model.<name>`".to_string());
    }
    Err(format!(
        "a value of type `{}` cannot be used as data",
        value.get_type().name()
    ))
}

/// Formats a duration the way CEL's `string(duration)` does, e.g. `90s` or `1.5s`.
fn duration_text(secs: i64, nanos: i32) -> String {
    if nanos == 0 {
        return format!("{secs}s");
    }
    let sign = if secs < 0 || nanos < 0 { "-" } else { "" };
    let frac = format!("{:09}", nanos.unsigned_abs());
    format!(
        "{sign}{}.{}s",
        secs.unsigned_abs(),
        frac.trim_end_matches('0')
    )
}
