//! `plugin.toml`: who a plugin is, what it asks for, and the limits it runs under.

use serde::Deserialize;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// The WIT package versions this host can load.
pub const SUPPORTED_API_VERSIONS: &[&str] = &["0.1.0", "0.2.0"];

/// A parsed `plugin.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginManifest {
    /// Unique plugin id, e.g. `proxmox`.
    pub id: String,
    /// The plugin's own version.
    pub version: String,
    /// The `orch:plugin` WIT version it was built against.
    pub api: String,
    /// One-line description.
    #[serde(default)]
    pub description: String,
    /// The component file, relative to the manifest.
    #[serde(default = "default_wasm")]
    pub wasm: String,
    /// Hex SHA-256 of the component file; verified at load.
    pub sha256: String,
    /// What the plugin asks to reach.
    #[serde(default)]
    pub capabilities: Capabilities,
    /// Resource limits per call.
    #[serde(default)]
    pub limits: Limits,
}

/// Capability requests in a manifest.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Capabilities {
    /// HTTP origins as `scheme://host:port`; `*` wildcards and `{{ globalArguments.x }}` allowed.
    #[serde(default)]
    pub http: Vec<String>,
    /// SSH targets as `[user@]host:port`; `*` wildcards and `{{ globalArguments.x }}` allowed.
    #[serde(default)]
    pub ssh: Vec<String>,
}

/// Per-call limits; every field has a safe default and a host maximum ([`HOST_MAXIMUMS`]).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct Limits {
    /// Cap on all linear memories and tables of one call, together.
    pub memory_mb: u64,
    /// Wall-clock cap for one call.
    pub timeout_ms: u64,
    /// Largest HTTP response body (or SSH output) the host will hand over.
    pub max_response_bytes: u64,
    /// Log lines kept per call; the rest are dropped with one warning.
    pub max_log_lines: u64,
    /// Resource writes allowed per call.
    pub max_writes: u64,
    /// Bytes of resource attributes buffered per call, all writes together.
    pub max_write_bytes: u64,
    /// Largest JSON output a method may return.
    pub max_output_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_mb: 64,
            timeout_ms: 30_000,
            max_response_bytes: 16 * 1024 * 1024,
            max_log_lines: 10_000,
            max_writes: 100_000,
            max_write_bytes: 64 * 1024 * 1024,
            max_output_bytes: 16 * 1024 * 1024,
        }
    }
}

/// The most the host allows for each limit, whatever a plugin asks or orch.yaml says.
pub const HOST_MAXIMUMS: Limits = Limits {
    memory_mb: 4096,
    timeout_ms: 3_600_000,
    max_response_bytes: 256 * 1024 * 1024,
    max_log_lines: 100_000,
    max_writes: 1_000_000,
    max_write_bytes: 1024 * 1024 * 1024,
    max_output_bytes: 256 * 1024 * 1024,
};

/// The smallest value each limit may take (a zero time or memory cap makes no sense).
const HOST_MINIMUMS: Limits = Limits {
    memory_mb: 1,
    timeout_ms: 1,
    max_response_bytes: 0,
    max_log_lines: 0,
    max_writes: 0,
    max_write_bytes: 0,
    max_output_bytes: 0,
};

/// One limit: its plugin.toml name, its orch.yaml name and how to read or set it.
pub struct LimitField {
    /// The key in plugin.toml's `[limits]` (kebab-case).
    pub toml: &'static str,
    /// The key in orch.yaml's `limits:` (camelCase).
    pub yaml: &'static str,
    get: fn(&Limits) -> u64,
    set: fn(&mut Limits, u64),
    cap: fn(&LimitCaps) -> Option<u64>,
}

/// Every limit, in the order they are shown.
pub const LIMIT_FIELDS: &[LimitField] = &[
    LimitField {
        toml: "memory-mb",
        yaml: "memoryMb",
        get: |l| l.memory_mb,
        set: |l, v| l.memory_mb = v,
        cap: |c| c.memory_mb,
    },
    LimitField {
        toml: "timeout-ms",
        yaml: "timeoutMs",
        get: |l| l.timeout_ms,
        set: |l, v| l.timeout_ms = v,
        cap: |c| c.timeout_ms,
    },
    LimitField {
        toml: "max-response-bytes",
        yaml: "maxResponseBytes",
        get: |l| l.max_response_bytes,
        set: |l, v| l.max_response_bytes = v,
        cap: |c| c.max_response_bytes,
    },
    LimitField {
        toml: "max-log-lines",
        yaml: "maxLogLines",
        get: |l| l.max_log_lines,
        set: |l, v| l.max_log_lines = v,
        cap: |c| c.max_log_lines,
    },
    LimitField {
        toml: "max-writes",
        yaml: "maxWrites",
        get: |l| l.max_writes,
        set: |l, v| l.max_writes = v,
        cap: |c| c.max_writes,
    },
    LimitField {
        toml: "max-write-bytes",
        yaml: "maxWriteBytes",
        get: |l| l.max_write_bytes,
        set: |l, v| l.max_write_bytes = v,
        cap: |c| c.max_write_bytes,
    },
    LimitField {
        toml: "max-output-bytes",
        yaml: "maxOutputBytes",
        get: |l| l.max_output_bytes,
        set: |l, v| l.max_output_bytes = v,
        cap: |c| c.max_output_bytes,
    },
];

impl LimitField {
    /// This limit's value in `limits`.
    pub fn get(&self, limits: &Limits) -> u64 {
        (self.get)(limits)
    }

    /// The range a value of this limit must fall in.
    pub fn range(&self) -> std::ops::RangeInclusive<u64> {
        self.get(&HOST_MINIMUMS)..=self.get(&HOST_MAXIMUMS)
    }
}

/// Operator caps from orch.yaml (`limits:` for every plugin, `grants.<id>.limits` for one);
/// an absent field leaves the plugin's request as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LimitCaps {
    /// Caps `memory-mb`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<u64>,
    /// Caps `timeout-ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Caps `max-response-bytes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_response_bytes: Option<u64>,
    /// Caps `max-log-lines`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_log_lines: Option<u64>,
    /// Caps `max-writes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_writes: Option<u64>,
    /// Caps `max-write-bytes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_write_bytes: Option<u64>,
    /// Caps `max-output-bytes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_bytes: Option<u64>,
}

impl LimitCaps {
    /// Each cap outside the host's range, as (orch.yaml field name, message).
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        LIMIT_FIELDS
            .iter()
            .filter_map(|f| {
                let v = (f.cap)(self)?;
                let range = f.range();
                (!range.contains(&v)).then(|| {
                    (
                        f.yaml,
                        format!(
                            "{v} is outside {}..={}, the range this orch allows",
                            range.start(),
                            range.end()
                        ),
                    )
                })
            })
            .collect()
    }
}

/// The limits a call runs under, and where each came from (for error messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectiveLimits {
    /// The values.
    pub values: Limits,
    /// Per field of [`LIMIT_FIELDS`], in order: who set the value.
    origins: Vec<String>,
}

impl EffectiveLimits {
    /// min(what the plugin asks, the operator's caps for every plugin and for this one); the
    /// host maximum is enforced when the manifest and orch.yaml are read.
    pub fn new(
        plugin_id: &str,
        asked: &Limits,
        all: Option<&LimitCaps>,
        one: Option<&LimitCaps>,
    ) -> Self {
        let mut values = asked.clone();
        let mut origins = Vec::new();
        for f in LIMIT_FIELDS {
            let mut value = f.get(asked).min(f.get(&HOST_MAXIMUMS));
            let mut origin = format!("limits.{} in its plugin.toml", f.toml);
            if let Some(cap) = all.and_then(|c| (f.cap)(c))
                && cap < value
            {
                value = cap;
                origin = format!("limits.{} in orch.yaml", f.yaml);
            }
            if let Some(cap) = one.and_then(|c| (f.cap)(c))
                && cap < value
            {
                value = cap;
                origin = format!("grants.{plugin_id}.limits.{} in orch.yaml", f.yaml);
            }
            (f.set)(&mut values, value);
            origins.push(origin);
        }
        EffectiveLimits { values, origins }
    }

    /// The plugin's own request, unchanged.
    pub fn as_asked(asked: &Limits) -> Self {
        Self::new("", asked, None, None)
    }

    /// Where the limit named `toml` (e.g. `max-writes`) came from, e.g.
    /// `limits.max-writes in its plugin.toml`.
    pub fn origin(&self, toml: &str) -> &str {
        LIMIT_FIELDS
            .iter()
            .position(|f| f.toml == toml)
            .and_then(|i| self.origins.get(i))
            .map(String::as_str)
            .unwrap_or("its limits")
    }
}

fn default_wasm() -> String {
    "plugin.wasm".to_string()
}

/// Why a manifest could not be used.
#[derive(Debug, Clone, Error)]
pub enum ManifestError {
    /// The file could not be read.
    #[error("{path}: {message}")]
    Read {
        /// The manifest path.
        path: PathBuf,
        /// Why it could not be read (missing, not a regular file, too large).
        message: String,
    },
    /// TOML syntax or an unknown/missing field.
    #[error("{path}: {message}")]
    Parse {
        /// The manifest path.
        path: PathBuf,
        /// What toml said, with line and column.
        message: String,
    },
    /// A field has a value the host cannot accept.
    #[error("{path}: field `{field}`: {message}")]
    Invalid {
        /// The manifest path.
        path: PathBuf,
        /// The offending field.
        field: String,
        /// What is wrong and what to do.
        message: String,
    },
}

impl PluginManifest {
    /// Reads and checks `plugin.toml`.
    pub fn load(path: &Path) -> Result<Self, ManifestError> {
        let read_err = |message| ManifestError::Read {
            path: path.to_path_buf(),
            message,
        };
        let bytes =
            super::files::read_regular(path, super::files::MAX_MANIFEST_BYTES).map_err(read_err)?;
        let text = String::from_utf8(bytes).map_err(|e| {
            read_err(format!(
                "is not UTF-8 text (byte {})",
                e.utf8_error().valid_up_to()
            ))
        })?;
        Self::parse(path, &text)
    }

    /// Parses and checks manifest text (the path is only used in errors).
    pub fn parse(path: &Path, text: &str) -> Result<Self, ManifestError> {
        let manifest: PluginManifest = toml::from_str(text).map_err(|e| ManifestError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim().replace('\n', " "),
        })?;
        let invalid = |field: &str, message: String| ManifestError::Invalid {
            path: path.to_path_buf(),
            field: field.to_string(),
            message,
        };
        if manifest.id.is_empty()
            || !manifest
                .id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(invalid(
                "id",
                format!(
                    "`{}` must be non-empty and use only letters, digits, `-` and `_`",
                    manifest.id
                ),
            ));
        }
        if !SUPPORTED_API_VERSIONS.contains(&manifest.api.as_str()) {
            return Err(invalid(
                "api",
                format!(
                    "this orch supports orch:plugin {}; `{}` is not one of them (rebuild the plugin against a supported SDK)",
                    SUPPORTED_API_VERSIONS.join(", "),
                    manifest.api
                ),
            ));
        }
        if manifest.sha256.len() != 64 || !manifest.sha256.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(invalid(
                "sha256",
                "must be the 64-hex-digit SHA-256 of the wasm file (`cargo xtask build` writes it)"
                    .into(),
            ));
        }
        if manifest.wasm.contains("..") || Path::new(&manifest.wasm).is_absolute() {
            return Err(invalid(
                "wasm",
                format!("`{}` must be a file beside plugin.toml", manifest.wasm),
            ));
        }
        for f in LIMIT_FIELDS {
            let v = f.get(&manifest.limits);
            let range = f.range();
            if !range.contains(&v) {
                return Err(invalid(
                    &format!("limits.{}", f.toml),
                    format!(
                        "{v} is outside {}..={}, the range this orch allows",
                        range.start(),
                        range.end()
                    ),
                ));
            }
        }
        for (i, rule) in manifest.capabilities.http.iter().enumerate() {
            crate::capabilities::http::grant::HttpRule::check_syntax(rule)
                .map_err(|m| invalid(&format!("capabilities.http[{i}]"), m))?;
        }
        for (i, rule) in manifest.capabilities.ssh.iter().enumerate() {
            crate::capabilities::ssh::grant::SshRule::check_syntax(rule)
                .map_err(|m| invalid(&format!("capabilities.ssh[{i}]"), m))?;
        }
        Ok(manifest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<PluginManifest, ManifestError> {
        PluginManifest::parse(Path::new("plugins/x/plugin.toml"), text)
    }

    const SHA: &str = "0000000000000000000000000000000000000000000000000000000000000000";

    #[test]
    fn limits_default_when_absent() {
        let m = parse(&format!(
            "id = \"x\"\nversion = \"1\"\napi = \"0.1.0\"\nsha256 = \"{SHA}\"\n"
        ))
        .unwrap();
        assert_eq!(m.limits.memory_mb, 64);
        assert_eq!(m.wasm, "plugin.wasm");
    }

    #[test]
    fn unknown_field_is_rejected_with_its_name() {
        let err = parse(&format!(
            "id = \"x\"\nversion = \"1\"\napi = \"0.1.0\"\nsha256 = \"{SHA}\"\nmemory = 3\n"
        ))
        .unwrap_err();
        assert!(err.to_string().contains("memory"), "{err}");
    }

    #[test]
    fn unsupported_api_version_names_the_supported_ones() {
        let err = parse(&format!(
            "id = \"x\"\nversion = \"1\"\napi = \"9.0.0\"\nsha256 = \"{SHA}\"\n"
        ))
        .unwrap_err();
        assert!(
            err.to_string().contains("0.1.0") && err.to_string().contains("field `api`"),
            "{err}"
        );
    }

    #[test]
    fn loose_http_rule_is_an_error_at_load() {
        let err = parse(&format!(
            "id = \"x\"\nversion = \"1\"\napi = \"0.1.0\"\nsha256 = \"{SHA}\"\n[capabilities]\nhttp = [\"example.com/path\"]\n"
        ))
        .unwrap_err();
        assert!(err.to_string().contains("capabilities.http[0]"), "{err}");
    }

    #[test]
    fn loose_ssh_rule_is_an_error_at_load() {
        for rule in ["ssh://10.0.0.4:22", "10.0.0.4:22/root", "10.0.0.4"] {
            let err = parse(&format!(
                "id = \"x\"\nversion = \"1\"\napi = \"0.1.0\"\nsha256 = \"{SHA}\"\n[capabilities]\nssh = [\"{rule}\"]\n"
            ))
            .unwrap_err();
            assert!(err.to_string().contains("capabilities.ssh[0]"), "{err}");
        }
        let ok = parse(&format!(
            "id = \"x\"\nversion = \"1\"\napi = \"0.1.0\"\nsha256 = \"{SHA}\"\n[capabilities]\nssh = [\"{{{{ globalArguments.sshHost }}}}:22\", \"root@*.lan:*\"]\n"
        ))
        .unwrap();
        assert_eq!(ok.capabilities.ssh.len(), 2);
    }

    #[test]
    fn a_limit_above_the_host_maximum_is_refused_naming_the_field() {
        for (field, value) in [
            ("max-writes", "18446744073709551615"),
            ("max-log-lines", "4294967295"),
            ("max-response-bytes", "1099511627776"),
            ("memory-mb", "0"),
        ] {
            let err = parse(&format!(
                "id = \"x\"\nversion = \"1\"\napi = \"0.1.0\"\nsha256 = \"{SHA}\"\n[limits]\n{field} = {value}\n"
            ))
            .unwrap_err();
            assert!(
                err.to_string().contains(&format!("field `limits.{field}`"))
                    && err.to_string().contains("the range this orch allows"),
                "{err}"
            );
        }
    }

    #[test]
    fn effective_limits_are_the_smallest_and_say_who_set_them() {
        let asked = Limits {
            max_writes: 500,
            timeout_ms: 10_000,
            memory_mb: 32,
            ..Limits::default()
        };
        let all = LimitCaps {
            max_writes: Some(100),
            memory_mb: Some(128),
            ..LimitCaps::default()
        };
        let one = LimitCaps {
            max_writes: Some(10),
            timeout_ms: Some(5_000),
            ..LimitCaps::default()
        };
        let only_all = EffectiveLimits::new("p", &asked, Some(&all), None);
        assert_eq!(only_all.values.max_writes, 100);
        assert_eq!(
            only_all.origin("max-writes"),
            "limits.maxWrites in orch.yaml"
        );
        let both = EffectiveLimits::new("p", &asked, Some(&all), Some(&one));
        assert_eq!(both.values.max_writes, 10);
        assert_eq!(both.values.timeout_ms, 5_000);
        assert_eq!(
            both.origin("max-writes"),
            "grants.p.limits.maxWrites in orch.yaml"
        );
        // A cap above the request leaves the request.
        assert_eq!(both.values.memory_mb, 32);
        assert_eq!(
            both.origin("memory-mb"),
            "limits.memory-mb in its plugin.toml"
        );
    }
}
