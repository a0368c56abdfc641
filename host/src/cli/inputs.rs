//! `--input k=v`, `--input '{json}'` and `--input-file f.json`.

use super::CliError;
use serde_json::{Map, Value};
use std::path::PathBuf;

/// Input flags shared by `run`, `model run` and `eval`.
#[derive(Debug, clap::Args)]
pub struct InputArgs {
    /// An input as `name=value` (a JSON value, or else text), or a whole JSON object.
    #[arg(long = "input", short = 'i', value_name = "NAME=VALUE")]
    pub input: Vec<String>,
    /// A JSON file holding an object of inputs (flags given with --input win).
    #[arg(long = "input-file", value_name = "FILE")]
    pub input_file: Option<PathBuf>,
}

/// Parses one `name=value`: valid JSON stays typed (`108`, `true`), anything else is text.
pub fn parse_pair(s: &str) -> Result<(String, Value), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("--input `{s}`: expected NAME=VALUE or a JSON object"))?;
    let k = k.trim();
    if k.is_empty() {
        return Err(format!("--input `{s}`: the name is empty"));
    }
    let value = serde_json::from_str::<Value>(v).unwrap_or_else(|_| Value::String(v.to_string()));
    Ok((k.to_string(), value))
}

impl InputArgs {
    /// All inputs as one JSON object.
    pub fn collect(&self) -> Result<Map<String, Value>, CliError> {
        let mut map = Map::new();
        if let Some(path) = &self.input_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| CliError::usage(format!("{}: cannot read: {e}", path.display())))?;
            match serde_json::from_str::<Value>(&text) {
                Ok(Value::Object(m)) => map.extend(m),
                Ok(_) => {
                    return Err(CliError::usage(format!(
                        "{}: must hold a JSON object",
                        path.display()
                    )));
                }
                Err(e) => {
                    return Err(CliError::usage(format!(
                        "{}:{}:{}: {e}",
                        path.display(),
                        e.line(),
                        e.column()
                    )));
                }
            }
        }
        for raw in &self.input {
            if raw.trim_start().starts_with('{') {
                match serde_json::from_str::<Value>(raw) {
                    Ok(Value::Object(m)) => map.extend(m),
                    _ => {
                        return Err(CliError::usage(format!(
                            "--input `{raw}`: not a JSON object"
                        )));
                    }
                }
            } else {
                let (k, v) = parse_pair(raw).map_err(CliError::usage)?;
                map.insert(k, v);
            }
        }
        Ok(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_stay_numbers_and_words_stay_text() {
        assert_eq!(parse_pair("expectVmid=108").unwrap().1, Value::from(108));
        assert_eq!(parse_pair("vmName=atm10").unwrap().1, Value::from("atm10"));
        assert_eq!(parse_pair("name=VM 102").unwrap().1, Value::from("VM 102"));
        assert!(parse_pair("novalue").is_err());
    }
}
