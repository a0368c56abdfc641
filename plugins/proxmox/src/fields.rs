//! Tolerant reading of PVE answers: integers may arrive as strings of digits, booleans as 0/1,
//! `true`/`false` or `"0"`/`"1"`; anything else is a typed error that names the endpoint and the
//! field, never a panic.

use orch_plugin_sdk::{Error, HttpResponse, Result, Value, error};
use serde_json::Map;

/// The `data` of a 2xx answer to `what` (`GET /nodes/pve/lxc`), refusing HTML pages, bodies
/// that are not JSON and envelopes without `data`.
pub fn data(what: &str, response: &HttpResponse) -> Result<Value> {
    let html = response
        .header("content-type")
        .is_some_and(|c| c.to_ascii_lowercase().contains("text/html"))
        || response
            .body
            .iter()
            .find(|b| !b.is_ascii_whitespace())
            .is_some_and(|&b| b == b'<');
    if html {
        return Err(error::failed(format!(
            "{what}: Proxmox answered an HTML page (HTTP {}), not JSON; check apiUrl points at the API (port 8006) and not at a proxy's error page",
            response.status
        )));
    }
    let mut value: Value = serde_json::from_slice(&response.body).map_err(|e| {
        error::failed(format!(
            "{what}: Proxmox's answer is not JSON ({e}); it starts {:?}",
            String::from_utf8_lossy(&response.body)
                .chars()
                .take(120)
                .collect::<String>()
        ))
    })?;
    match value.as_object_mut().and_then(|o| o.remove("data")) {
        Some(data) => Ok(data),
        None => Err(error::failed(format!(
            "{what}: Proxmox's answer has no `data` field; every PVE answer is {{\"data\": …}}"
        ))),
    }
}

/// The entries of a list answer, each an object.
pub fn entries<'v>(what: &'v str, data: &'v Value) -> Result<Vec<Entry<'v>>> {
    let list = data.as_array().ok_or_else(|| {
        error::failed(format!(
            "{what}: field `data` is {}, not a list",
            kind_of(data)
        ))
    })?;
    list.iter()
        .enumerate()
        .map(|(i, item)| Entry::new(what, item, Some(i)))
        .collect()
}

/// One JSON object of an answer, read field by field.
#[derive(Clone, Copy)]
pub struct Entry<'v> {
    what: &'v str,
    index: Option<usize>,
    map: &'v Map<String, Value>,
}

/// A short description of a JSON value's type for error messages.
pub fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn shown(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 60 {
        format!("{}…", text.chars().take(60).collect::<String>())
    } else {
        text
    }
}

impl<'v> Entry<'v> {
    /// `value` as an object of the answer to `what` (entry `index` of a list, if any).
    pub fn new(what: &'v str, value: &'v Value, index: Option<usize>) -> Result<Self> {
        let map = value.as_object().ok_or_else(|| {
            let place = index.map_or("field `data`".to_string(), |i| format!("entry {i}"));
            error::failed(format!(
                "{what}: {place} is {}, not an object",
                kind_of(value)
            ))
        })?;
        Ok(Entry { what, index, map })
    }

    /// The raw field, `None` when absent or null.
    pub fn raw(&self, field: &str) -> Option<&'v Value> {
        self.map.get(field).filter(|v| !v.is_null())
    }

    /// The error for a field of the wrong type.
    pub fn wrong(&self, field: &str, expected: &str) -> Error {
        let value = self.map.get(field).unwrap_or(&Value::Null);
        let place = match self.index {
            Some(i) => format!("field `{field}` of entry {i}"),
            None => format!("field `{field}`"),
        };
        error::failed(format!(
            "{}: {place} is {} ({}), not {expected}",
            self.what,
            kind_of(value),
            shown(value)
        ))
    }

    /// The error for a missing field.
    pub fn missing(&self, field: &str) -> Error {
        let place = match self.index {
            Some(i) => format!("entry {i}"),
            None => "the answer".to_string(),
        };
        error::failed(format!("{}: {place} has no `{field}` field", self.what))
    }

    /// An unsigned integer (or a string of digits, or an integral float).
    pub fn u64(&self, field: &str) -> Result<Option<u64>> {
        let Some(value) = self.raw(field) else {
            return Ok(None);
        };
        let parsed = match value {
            Value::Number(n) => n.as_u64().or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < 1.8e19)
                    .map(|f| f as u64)
            }),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        };
        parsed
            .map(Some)
            .ok_or_else(|| self.wrong(field, "a non-negative integer"))
    }

    /// A required unsigned integer.
    pub fn req_u64(&self, field: &str) -> Result<u64> {
        self.u64(field)?.ok_or_else(|| self.missing(field))
    }

    /// A number (integer or fraction, or a string of one).
    pub fn f64(&self, field: &str) -> Result<Option<f64>> {
        let Some(value) = self.raw(field) else {
            return Ok(None);
        };
        let parsed = match value {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        };
        parsed
            .filter(|f: &f64| f.is_finite())
            .map(Some)
            .ok_or_else(|| self.wrong(field, "a number"))
    }

    /// A PVE boolean: 0/1, `true`/`false`, or those as strings.
    pub fn bool(&self, field: &str) -> Result<Option<bool>> {
        let Some(value) = self.raw(field) else {
            return Ok(None);
        };
        let parsed = match value {
            Value::Bool(b) => Some(*b),
            Value::Number(n) => match n.as_u64() {
                Some(0) => Some(false),
                Some(1) => Some(true),
                _ => None,
            },
            Value::String(s) => match s.trim() {
                "0" | "false" => Some(false),
                "1" | "true" => Some(true),
                _ => None,
            },
            _ => None,
        };
        parsed
            .map(Some)
            .ok_or_else(|| self.wrong(field, "a boolean (0/1)"))
    }

    /// A string (a number is accepted and shown as text).
    pub fn str(&self, field: &str) -> Result<Option<String>> {
        match self.raw(field) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(_) => Err(self.wrong(field, "a string")),
        }
    }

    /// A required, non-empty string.
    pub fn req_str(&self, field: &str) -> Result<String> {
        self.str(field)?
            .filter(|s| !s.is_empty())
            .ok_or_else(|| self.missing(field))
    }

    /// A PVE list in one string (`"a;b"`, `"iso,backup"`), split on any of `separators`.
    pub fn list(&self, field: &str, separators: &[char]) -> Result<Vec<String>> {
        Ok(split_list(
            self.str(field)?.as_deref().unwrap_or(""),
            separators,
        ))
    }
}

/// Splits a PVE list string, trimming and dropping empty parts.
pub fn split_list(text: &str, separators: &[char]) -> Vec<String> {
    text.split(|c| separators.contains(&c))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use orch_plugin_sdk::json;

    fn response(status: u16, content_type: &str, body: &str) -> HttpResponse {
        HttpResponse {
            status,
            headers: vec![("content-type".into(), content_type.into())],
            body: body.as_bytes().to_vec(),
        }
    }

    fn failed(result: Result<impl std::fmt::Debug>) -> String {
        match result {
            Err(Error::Failed(m)) => m,
            other => panic!("expected Failed, got {other:?}"),
        }
    }

    #[test]
    fn data_is_unwrapped() {
        let r = response(200, "application/json", r#"{"data":[1],"total":1}"#);
        assert_eq!(data("GET /x", &r).unwrap(), json!([1]));
    }

    #[test]
    fn html_pages_missing_data_and_garbage_are_typed_errors_naming_the_endpoint() {
        let html = response(200, "text/html", "<html><body>proxy</body></html>");
        assert!(
            failed(data("GET /nodes", &html))
                .starts_with("GET /nodes: Proxmox answered an HTML page")
        );
        let sniffed = response(200, "application/json", "  <!DOCTYPE html>");
        assert!(failed(data("GET /nodes", &sniffed)).contains("HTML page"));
        let no_data = response(200, "application/json", r#"{"errors":{}}"#);
        let m = failed(data("GET /nodes", &no_data));
        assert!(
            m.starts_with("GET /nodes:") && m.contains("no `data` field"),
            "{m}"
        );
        assert!(
            failed(data("GET /x", &response(200, "application/json", "[1]"))).contains("no `data`")
        );
        assert!(
            failed(data("GET /x", &response(200, "application/json", "nope"))).contains("not JSON")
        );
    }

    #[test]
    fn lists_must_be_lists_of_objects() {
        let object = json!({"a": 1});
        let m = failed(entries("GET /storage", &object).map(|e| e.len()));
        assert_eq!(m, "GET /storage: field `data` is an object, not a list");
        let mixed = json!([{"a": 1}, 7]);
        let m = failed(entries("GET /storage", &mixed).map(|e| e.len()));
        assert_eq!(m, "GET /storage: entry 1 is a number, not an object");
    }

    #[test]
    fn numbers_accept_digit_strings_and_name_the_field_otherwise() {
        let v = json!({"a": 5, "b": "16384", "c": "lots", "d": null, "e": 1.0, "f": -1, "g": [1]});
        let e = Entry::new("GET /q", &v, Some(3)).unwrap();
        assert_eq!(e.u64("a").unwrap(), Some(5));
        assert_eq!(e.u64("b").unwrap(), Some(16384));
        assert_eq!(e.u64("d").unwrap(), None);
        assert_eq!(e.u64("zz").unwrap(), None);
        assert_eq!(e.u64("e").unwrap(), Some(1));
        assert_eq!(
            failed(e.u64("c")),
            "GET /q: field `c` of entry 3 is a string (\"lots\"), not a non-negative integer"
        );
        assert!(failed(e.u64("f")).contains("field `f`"));
        assert!(failed(e.u64("g")).contains("is a list"));
        assert_eq!(failed(e.req_u64("zz")), "GET /q: entry 3 has no `zz` field");
        assert_eq!(e.f64("b").unwrap(), Some(16384.0));
        assert!(failed(e.f64("c")).contains("not a number"));
    }

    #[test]
    fn booleans_accept_pve_spellings() {
        let v = json!({"a": 0, "b": 1, "c": true, "d": "1", "e": "false", "f": 2, "g": "yes"});
        let e = Entry::new("GET /q", &v, None).unwrap();
        let got: Vec<_> = ["a", "b", "c", "d", "e", "zz"]
            .iter()
            .map(|f| e.bool(f).unwrap())
            .collect();
        assert_eq!(
            got,
            [
                Some(false),
                Some(true),
                Some(true),
                Some(true),
                Some(false),
                None
            ]
        );
        assert!(failed(e.bool("f")).starts_with("GET /q: field `f` is a number (2)"));
        assert!(failed(e.bool("g")).contains("not a boolean"));
    }

    #[test]
    fn strings_and_lists() {
        let v = json!({"s": "a;b; ;c", "n": 7, "o": {}, "e": ""});
        let e = Entry::new("GET /q", &v, None).unwrap();
        assert_eq!(e.list("s", &[';']).unwrap(), ["a", "b", "c"]);
        assert_eq!(e.list("missing", &[';']).unwrap(), Vec::<String>::new());
        assert_eq!(e.str("n").unwrap().as_deref(), Some("7"));
        assert!(failed(e.str("o")).contains("is an object"));
        assert_eq!(
            failed(e.req_str("e")),
            "GET /q: the answer has no `e` field"
        );
        assert!(Entry::new("GET /q", &json!("x"), None).is_err());
    }
}
