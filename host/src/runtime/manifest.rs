//! `plugin.toml`: who a plugin is, what it asks for, and the limits it runs under.

use serde::Deserialize;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// The WIT package versions this host can load.
pub const SUPPORTED_API_VERSIONS: &[&str] = &["0.1.0"];

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

/// Per-call limits; every field has a safe default.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct Limits {
    /// Linear memory cap.
    pub memory_mb: u64,
    /// Wall-clock cap for one call.
    pub timeout_ms: u64,
    /// Largest HTTP response body the host will hand over.
    pub max_response_bytes: u64,
    /// Log lines kept per call; the rest are dropped with one warning.
    pub max_log_lines: u32,
    /// Resource writes allowed per call.
    pub max_writes: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_mb: 64,
            timeout_ms: 30_000,
            max_response_bytes: 16 * 1024 * 1024,
            max_log_lines: 10_000,
            max_writes: 100_000,
        }
    }
}

fn default_wasm() -> String {
    "plugin.wasm".to_string()
}

/// Why a manifest could not be used.
#[derive(Debug, Error)]
pub enum ManifestError {
    /// The file could not be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The manifest path.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
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
        let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
            path: path.to_path_buf(),
            source,
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
        let l = &manifest.limits;
        if l.memory_mb == 0 || l.memory_mb > 4096 {
            return Err(invalid(
                "limits.memory-mb",
                format!("{} is outside 1..=4096", l.memory_mb),
            ));
        }
        if l.timeout_ms == 0 || l.timeout_ms > 3_600_000 {
            return Err(invalid(
                "limits.timeout-ms",
                format!("{} is outside 1..=3600000", l.timeout_ms),
            ));
        }
        for (i, rule) in manifest.capabilities.http.iter().enumerate() {
            crate::capabilities::grants::HttpRule::check_syntax(rule)
                .map_err(|m| invalid(&format!("capabilities.http[{i}]"), m))?;
        }
        for (i, rule) in manifest.capabilities.ssh.iter().enumerate() {
            crate::capabilities::grants::SshRule::check_syntax(rule)
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
}
