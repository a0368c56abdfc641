//! `--input k=v`, `--input '{json}'` and `--input-file f.json`.

use super::CliError;
use crate::excerpt::excerpt;
use serde_json::{Map, Value};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Largest inputs accepted, all flags together. Inputs are parameters (names, ids, small
/// lists); bulk data belongs in resources. The run record stores them, so this also bounds it.
pub const MAX_INPUT_BYTES: usize = 1024 * 1024;

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
    let (k, v) = s.split_once('=').ok_or_else(|| {
        format!(
            "--input `{}`: expected NAME=VALUE or a JSON object",
            excerpt(s)
        )
    })?;
    let k = k.trim();
    if k.is_empty() {
        return Err(format!("--input `{}`: the name is empty", excerpt(s)));
    }
    let value = serde_json::from_str::<Value>(v).unwrap_or_else(|_| Value::String(v.to_string()));
    Ok((k.to_string(), value))
}

impl InputArgs {
    /// All inputs as one JSON object, at most [`MAX_INPUT_BYTES`] in all.
    pub fn collect(&self) -> Result<Map<String, Value>, CliError> {
        let total: usize = self.input.iter().map(String::len).sum();
        let mut map = Map::new();
        if let Some(path) = &self.input_file {
            let bytes = read_input_file(path, MAX_INPUT_BYTES.saturating_sub(total))?;
            let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(&bytes);
            match serde_json::from_slice::<Value>(bytes) {
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
        } else if total > MAX_INPUT_BYTES {
            return Err(CliError::usage(too_big("--input values", total)));
        }
        for raw in &self.input {
            if raw.trim_start().starts_with('{') {
                match serde_json::from_str::<Value>(raw) {
                    Ok(Value::Object(m)) => map.extend(m),
                    _ => {
                        return Err(CliError::usage(format!(
                            "--input `{}`: not a JSON object",
                            excerpt(raw)
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

/// Reads an `--input-file` of at most `limit` bytes: a regular file, so that `/dev/zero` or a
/// FIFO is refused instead of read forever.
fn read_input_file(path: &Path, limit: usize) -> Result<Vec<u8>, CliError> {
    let fail = |what: String| CliError::usage(format!("{}: {what}", path.display()));
    // Checked before opening: opening a FIFO blocks until someone writes to it.
    let meta = std::fs::metadata(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    if !meta.is_file() {
        return Err(fail(
            "not a regular file; --input-file reads a JSON file (for a pipe or device, save \
             its output to a file first)"
                .to_string(),
        ));
    }
    if meta.len() > limit as u64 {
        return Err(CliError::usage(too_big(
            &path.display().to_string(),
            meta.len() as usize,
        )));
    }
    let file = std::fs::File::open(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    let mut bytes = Vec::new();
    // Bounded again while reading: the file may grow after the check.
    file.take(limit as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| fail(format!("cannot read: {e}")))?;
    if bytes.len() > limit {
        return Err(CliError::usage(too_big(
            &path.display().to_string(),
            bytes.len(),
        )));
    }
    Ok(bytes)
}

fn too_big(what: &str, len: usize) -> String {
    format!(
        "{what}: {len} bytes of inputs is more than the {} KiB orch accepts; pass large data \
         as a resource (a model method can write it) and refer to it with `data.latest(…)`",
        MAX_INPUT_BYTES / 1024
    )
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

    fn with_file(path: &Path) -> InputArgs {
        InputArgs {
            input: Vec::new(),
            input_file: Some(path.to_path_buf()),
        }
    }

    #[test]
    fn input_file_must_be_a_regular_file() {
        let err = with_file(Path::new("/dev/zero")).collect().unwrap_err();
        assert_eq!(err.code, 2);
        assert!(
            err.message.starts_with("/dev/zero: not a regular file"),
            "{}",
            err.message
        );
    }

    #[test]
    fn oversized_inputs_are_refused_before_parsing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.json");
        let f = std::fs::File::create(&path).unwrap();
        f.set_len(MAX_INPUT_BYTES as u64 + 1).unwrap();
        let err = with_file(&path).collect().unwrap_err();
        assert!(
            err.message.contains("more than the 1024 KiB"),
            "{}",
            err.message
        );

        let flags = InputArgs {
            input: vec![format!("blob={}", "x".repeat(MAX_INPUT_BYTES))],
            input_file: None,
        };
        assert!(
            flags
                .collect()
                .unwrap_err()
                .message
                .contains("--input values")
        );
    }

    #[test]
    fn input_file_with_a_byte_order_mark_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.json");
        std::fs::write(&path, "\u{feff}{\"a\": 1}").unwrap();
        assert_eq!(with_file(&path).collect().unwrap()["a"], 1);
    }

    #[test]
    fn a_huge_malformed_flag_is_quoted_cut_short() {
        let err = parse_pair(&"y".repeat(100_000)).unwrap_err();
        assert!(err.len() < 300, "{err}");
    }
}
