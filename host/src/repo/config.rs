//! `orch.yaml`: repository settings.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::diagnostic::Diagnostic;
use super::lines::{LineIndex, join_key};
use super::yaml::{null_default, parse_yaml};
use crate::runtime::LimitCaps;

/// Settings from `orch.yaml`, with defaults filled in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepoConfig {
    /// Directories searched for plugin bundles, relative to the repo root.
    pub plugin_path: Vec<String>,
    /// Maximum number of steps running at once.
    pub concurrency: usize,
    /// How long to wait for another orch process holding the data store.
    pub lock_wait_seconds: u64,
    /// Variables exposed to CEL as `env.NAME`.
    pub env: BTreeMap<String, EnvVar>,
    /// Per-plugin narrowing of capabilities and limits, keyed by plugin id.
    pub grants: BTreeMap<String, Grant>,
    /// Caps on every plugin's limits (`limits:`); a plugin runs under the smaller of what its
    /// plugin.toml asks, these, its own `grants.<id>.limits` and the host's maximum.
    pub limits: Option<LimitCaps>,
    /// Which plugin id provides a type that several installed bundles claim (`providers:`).
    pub providers: BTreeMap<String, String>,
    /// Chat-ops (`chat:`): the Discord interactions endpoint of `orch serve`.
    pub chat: crate::chat::config::ChatConfig,
    /// Where resources and runs are stored (`datastore:`); `None` is the redb file in `.orch/`.
    pub datastore: Option<DatastoreConfig>,
}

/// `datastore: { postgres: URL, password: ${{ vault.get(VAULT, KEY) }} }` in orch.yaml.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatastoreConfig {
    /// The PostgreSQL URL (`postgres://user@host:port/db`), which holds no password.
    pub postgres: String,
    /// The vault and key holding the password; without them the password is `PGPASSWORD`.
    pub password_vault: Option<(String, String)>,
    /// How long a coordinator's queued steps outlive its last heartbeat (`coordinatorLeaseSeconds`):
    /// after that, workers treat the run as dead and drop its steps that no worker took.
    pub coordinator_lease_seconds: u64,
}

/// Default for `datastore.coordinatorLeaseSeconds`.
pub const DEFAULT_COORDINATOR_LEASE_SECONDS: u64 = 30;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDatastore {
    postgres: String,
    #[serde(default)]
    password: Option<String>,
    #[serde(default, rename = "coordinatorLeaseSeconds")]
    coordinator_lease_seconds: Option<u64>,
}

/// `${{ vault.get("VAULT", "KEY") }}` → (VAULT, KEY).
fn vault_reference(text: &str) -> Option<(String, String)> {
    let inner = text.trim().strip_prefix("${{")?.strip_suffix("}}")?.trim();
    let args = inner.strip_prefix("vault.get(")?.strip_suffix(')')?;
    let (vault, key) = args.split_once(',')?;
    let unquote = |s: &str| {
        let s = s.trim();
        s.strip_prefix('"')
            .and_then(|s| s.strip_suffix('"'))
            .or_else(|| s.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')))
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    Some((unquote(vault)?, unquote(key)?))
}

fn datastore(
    raw: Option<RawDatastore>,
    file: &Path,
    lines: &LineIndex,
    diags: &mut Vec<Diagnostic>,
) -> Option<DatastoreConfig> {
    let raw = raw?;
    let at = |field: &str, message: String| {
        Diagnostic::at(file, lines, join_key("datastore", field), message)
    };
    let before = diags.len();
    let url = raw.postgres.trim();
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        diags.push(at(
            "postgres",
            "must be a URL like postgres://user@host:5432/db".to_string(),
        ));
    } else {
        match postgres::Config::from_str(url) {
            Err(e) => diags.push(at(
                "postgres",
                format!(
                    "is not a PostgreSQL connection URL ({e}); write postgres://user@host:5432/db"
                ),
            )),
            Ok(config) if config.get_password().is_some() => diags.push(at(
                "postgres",
                "holds a password; remove it from the URL and set PGPASSWORD, or \
                 `password: ${{ vault.get(\"VAULT\", \"KEY\") }}`"
                    .to_string(),
            )),
            Ok(_) => {}
        }
    }
    let password_vault = match &raw.password {
        None => None,
        Some(text) => match vault_reference(text) {
            Some(reference) => Some(reference),
            None => {
                diags.push(at(
                    "password",
                    "must be a vault reference, `${{ vault.get(\"VAULT\", \"KEY\") }}` \
                     (store it with `orch vault set`), never the password itself; or remove it \
                     and set PGPASSWORD"
                        .to_string(),
                ));
                None
            }
        },
    };
    let coordinator_lease_seconds = raw
        .coordinator_lease_seconds
        .unwrap_or(DEFAULT_COORDINATOR_LEASE_SECONDS);
    if coordinator_lease_seconds < 3 {
        diags.push(at(
            "coordinatorLeaseSeconds",
            format!(
                "is {coordinator_lease_seconds}; it must be at least 3 (the coordinator renews \
                 it every third of it)"
            ),
        ));
    }
    (diags.len() == before).then(|| DatastoreConfig {
        postgres: url.to_string(),
        password_vault,
        coordinator_lease_seconds,
    })
}

impl Default for RepoConfig {
    fn default() -> Self {
        RepoConfig {
            plugin_path: vec!["plugins".to_string()],
            concurrency: DEFAULT_CONCURRENCY,
            lock_wait_seconds: DEFAULT_LOCK_WAIT_SECONDS,
            env: BTreeMap::new(),
            grants: BTreeMap::new(),
            limits: None,
            providers: BTreeMap::new(),
            chat: Default::default(),
            datastore: None,
        }
    }
}

/// Default for `concurrency`; steps mostly wait on the network, so this exceeds the core count.
pub const DEFAULT_CONCURRENCY: usize = 8;
/// Default for `lockWaitSeconds`.
pub const DEFAULT_LOCK_WAIT_SECONDS: u64 = 30;

/// One `env` entry: `NAME: value` or `NAME: { default, description }`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EnvVar {
    /// Used when the process environment does not set the variable.
    pub default: Option<String>,
    /// Shown by `orch` when listing variables.
    pub description: Option<String>,
}

/// What one plugin may reach and use; `None` leaves the manifest's request unnarrowed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    /// URL prefixes the plugin may call over HTTP.
    #[serde(default)]
    pub http: Option<Vec<String>>,
    /// SSH targets (`user@host:port` patterns) the plugin may open.
    #[serde(default)]
    pub ssh: Option<Vec<String>>,
    /// Caps on this plugin's limits (camelCase names: `memoryMb`, `maxWrites`, …).
    #[serde(default)]
    pub limits: Option<LimitCaps>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawConfig {
    #[serde(default)]
    plugin_path: Option<Vec<String>>,
    #[serde(default)]
    concurrency: Option<usize>,
    #[serde(default)]
    lock_wait_seconds: Option<u64>,
    #[serde(default, deserialize_with = "null_default")]
    env: BTreeMap<String, EnvVar>,
    #[serde(default, deserialize_with = "null_default")]
    grants: BTreeMap<String, Grant>,
    #[serde(default)]
    limits: Option<LimitCaps>,
    #[serde(default, deserialize_with = "null_default")]
    providers: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "null_default")]
    chat: crate::chat::config::ChatConfig,
    #[serde(default)]
    datastore: Option<RawDatastore>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FullEnvVar {
    #[serde(default)]
    default: Option<Scalar>,
    #[serde(default)]
    description: Option<String>,
}

/// A YAML scalar read as text, so `PORT: 8006` gives "8006" rather than a type error.
struct Scalar(String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ScalarVisitor).map(Scalar)
    }
}

struct ScalarVisitor;

impl Visitor<'_> for ScalarVisitor {
    type Value = String;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string, number or boolean")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<String, E> {
        Ok(v.to_string())
    }
}

impl<'de> Deserialize<'de> for EnvVar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(EnvVarVisitor)
    }
}

struct EnvVarVisitor;

impl<'de> Visitor<'de> for EnvVarVisitor {
    type Value = EnvVar;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a default value or a mapping with `default` and `description`")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<EnvVar, E> {
        Ok(shorthand(v.to_string()))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<EnvVar, E> {
        Ok(shorthand(v.to_string()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<EnvVar, E> {
        Ok(shorthand(v.to_string()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<EnvVar, E> {
        Ok(shorthand(v.to_string()))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<EnvVar, E> {
        Ok(shorthand(v.to_string()))
    }
    fn visit_unit<E: de::Error>(self) -> Result<EnvVar, E> {
        Ok(EnvVar::default())
    }
    fn visit_none<E: de::Error>(self) -> Result<EnvVar, E> {
        Ok(EnvVar::default())
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<EnvVar, A::Error> {
        let full = FullEnvVar::deserialize(de::value::MapAccessDeserializer::new(map))?;
        Ok(EnvVar {
            default: full.default.map(|s| s.0),
            description: full.description,
        })
    }
}

fn shorthand(default: String) -> EnvVar {
    EnvVar {
        default: Some(default),
        description: None,
    }
}

/// CEL reads these as `env.NAME`, so they must be identifiers.
fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl RepoConfig {
    /// Parses `orch.yaml`'s text; `file` is the name used in diagnostics.
    pub fn parse(text: &str, file: &Path) -> Result<RepoConfig, Vec<Diagnostic>> {
        let lines = LineIndex::parse(text);
        let raw: Option<RawConfig> = parse_yaml(text, file, &lines).map_err(|d| vec![d])?;
        let Some(raw) = raw else {
            return Ok(RepoConfig::default());
        };
        let mut diags = Vec::new();
        if raw.concurrency == Some(0) {
            diags.push(Diagnostic::at(
                file,
                &lines,
                "concurrency",
                "must be at least 1; it is the number of steps that may run at once",
            ));
        }
        for name in raw.env.keys() {
            if !is_identifier(name) {
                diags.push(Diagnostic::at(
                    file,
                    &lines,
                    join_key("env", name),
                    format!(
                        "`{name}` is not a valid variable name; use letters, digits and `_` \
                         (not starting with a digit) so CEL can read it as `env.{name}`"
                    ),
                ));
            }
        }
        let mut limit_caps: Vec<(String, &LimitCaps)> = Vec::new();
        if let Some(caps) = &raw.limits {
            limit_caps.push(("limits".to_string(), caps));
        }
        for (id, grant) in &raw.grants {
            if let Some(caps) = &grant.limits {
                limit_caps.push((join_key(&join_key("grants", id), "limits"), caps));
            }
        }
        for (base, caps) in limit_caps {
            for (field, message) in caps.problems() {
                diags.push(Diagnostic::at(
                    file,
                    &lines,
                    join_key(&base, field),
                    format!("{message}; lower it or remove it"),
                ));
            }
        }
        for (index, dir) in raw.plugin_path.iter().flatten().enumerate() {
            if dir.trim().is_empty() {
                diags.push(Diagnostic::at(
                    file,
                    &lines,
                    format!("pluginPath[{index}]"),
                    "empty directory name; remove the entry or name a directory",
                ));
            }
        }
        for (field, message) in raw.chat.problems() {
            diags.push(Diagnostic::at(
                file,
                &lines,
                join_key("chat", &field),
                message,
            ));
        }
        let datastore = datastore(raw.datastore, file, &lines, &mut diags);
        if !diags.is_empty() {
            return Err(diags);
        }
        let defaults = RepoConfig::default();
        Ok(RepoConfig {
            plugin_path: raw.plugin_path.unwrap_or(defaults.plugin_path),
            concurrency: raw.concurrency.unwrap_or(defaults.concurrency),
            lock_wait_seconds: raw.lock_wait_seconds.unwrap_or(defaults.lock_wait_seconds),
            env: raw.env,
            grants: raw.grants,
            limits: raw.limits,
            providers: raw.providers,
            chat: raw.chat,
            datastore,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<RepoConfig, Vec<Diagnostic>> {
        RepoConfig::parse(text, Path::new("orch.yaml"))
    }

    #[test]
    fn empty_file_gives_defaults() {
        assert_eq!(parse("").unwrap(), RepoConfig::default());
        assert_eq!(parse("# only comments\n").unwrap(), RepoConfig::default());
    }

    #[test]
    fn full_config_is_read() {
        let cfg = parse(
            "pluginPath: [plugins, vendor/plugins]\nconcurrency: 3\nlockWaitSeconds: 5\n\
             env:\n  PROXMOX_API_URL: { default: \"https://10.0.0.4:8006\", description: API }\n\
             \x20 PROXMOX_NODE: keeb-dev-02\n  PORT: 8006\n  EMPTY:\n\
             grants:\n  proxmox:\n    http: [\"https://10.0.0.4:8006\"]\n",
        )
        .unwrap();
        assert_eq!(cfg.plugin_path, ["plugins", "vendor/plugins"]);
        assert_eq!(cfg.concurrency, 3);
        assert_eq!(cfg.lock_wait_seconds, 5);
        assert_eq!(
            cfg.env["PROXMOX_API_URL"],
            EnvVar {
                default: Some("https://10.0.0.4:8006".into()),
                description: Some("API".into())
            }
        );
        assert_eq!(
            cfg.env["PROXMOX_NODE"].default.as_deref(),
            Some("keeb-dev-02")
        );
        assert_eq!(cfg.env["PORT"].default.as_deref(), Some("8006"));
        assert_eq!(cfg.env["EMPTY"], EnvVar::default());
        assert_eq!(
            cfg.grants["proxmox"].http.as_deref(),
            Some(&["https://10.0.0.4:8006".to_string()][..])
        );
        assert_eq!(cfg.grants["proxmox"].ssh, None);
    }

    #[test]
    fn operator_limits_and_providers_are_read() {
        let cfg = parse(
            "limits:\n  memoryMb: 256\n  maxWrites: 1000\n\
             grants:\n  proxmox:\n    limits: { timeoutMs: 60000 }\n\
             providers:\n  proxmox/vm: proxmox\n",
        )
        .unwrap();
        let all = cfg.limits.unwrap();
        assert_eq!((all.memory_mb, all.max_writes), (Some(256), Some(1000)));
        let one = cfg.grants["proxmox"].limits.clone().unwrap();
        assert_eq!(one.timeout_ms, Some(60000));
        assert_eq!(cfg.providers["proxmox/vm"], "proxmox");
    }

    #[test]
    fn operator_limits_above_the_host_maximum_are_reported_at_their_line() {
        let errs = parse("limits:\n  maxWrites: 18446744073709551615\ngrants:\n  x:\n    limits:\n      memoryMb: 0\n").unwrap_err();
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert_eq!(errs[0].line, Some(2));
        assert_eq!(errs[0].field.as_deref(), Some("limits.maxWrites"));
        assert!(
            errs[0].message.contains("outside 0..=1000000"),
            "{}",
            errs[0]
        );
        assert_eq!(errs[1].line, Some(6));
        assert_eq!(errs[1].field.as_deref(), Some("grants.x.limits.memoryMb"));
    }

    #[test]
    fn unknown_limit_name_is_reported_with_suggestion() {
        let errs = parse("limits:\n  maxWrite: 3\n").unwrap_err();
        assert!(
            errs[0].message.contains("did you mean `maxWrites`?"),
            "{}",
            errs[0]
        );
    }

    #[test]
    fn unknown_setting_is_reported_with_suggestion() {
        let errs = parse("concurency: 4\n").unwrap_err();
        assert_eq!(
            errs[0].to_string(),
            "orch.yaml:1: concurency: unknown field `concurency`; did you mean `concurrency`?"
        );
    }

    #[test]
    fn unknown_env_field_is_reported_at_its_line() {
        let errs = parse("env:\n  A:\n    default: x\n    descripton: y\n").unwrap_err();
        assert_eq!(
            errs[0].to_string(),
            "orch.yaml:4: env.A.descripton: unknown field `descripton`; did you mean `description`?"
        );
    }

    #[test]
    fn unknown_grant_kind_is_reported() {
        let errs = parse("grants:\n  proxmox:\n    htp: []\n").unwrap_err();
        assert_eq!(errs[0].line, Some(3));
        assert!(
            errs[0].message.contains("did you mean `http`?"),
            "{}",
            errs[0]
        );
    }

    #[test]
    fn zero_concurrency_is_rejected() {
        let errs = parse("concurrency: 0\n").unwrap_err();
        assert_eq!(errs[0].line, Some(1));
        assert!(errs[0].message.contains("at least 1"));
    }

    #[test]
    fn env_names_must_be_cel_identifiers() {
        let errs = parse("env:\n  OK_1: a\n  not-ok: b\n").unwrap_err();
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].line, Some(3));
        assert_eq!(errs[0].field.as_deref(), Some("env.not-ok"));
    }

    #[test]
    fn negative_concurrency_is_a_type_error() {
        let errs = parse("concurrency: -2\n").unwrap_err();
        assert!(
            errs[0].message.contains("non-negative integer"),
            "{}",
            errs[0]
        );
    }

    #[test]
    fn a_postgres_datastore_takes_a_url_and_a_vault_reference_but_no_password() {
        let cfg = parse(
            "datastore:\n  postgres: postgres://orch@db.lan:5432/orch\n  password: ${{ vault.get(\"pg\", \"password\") }}\n",
        )
        .unwrap();
        let ds = cfg.datastore.unwrap();
        assert_eq!(ds.postgres, "postgres://orch@db.lan:5432/orch");
        assert_eq!(
            ds.password_vault,
            Some(("pg".to_string(), "password".to_string()))
        );
        assert_eq!(parse("concurrency: 2\n").unwrap().datastore, None);

        let errs =
            parse("datastore:\n  postgres: postgres://orch:hunter2@db.lan/orch\n").unwrap_err();
        assert_eq!(errs[0].line, Some(2));
        assert_eq!(errs[0].field.as_deref(), Some("datastore.postgres"));
        assert!(errs[0].message.contains("PGPASSWORD"), "{}", errs[0]);
        assert!(!errs[0].to_string().contains("hunter2"), "{}", errs[0]);

        let errs = parse("datastore:\n  postgres: postgres://orch@db/orch\n  password: hunter2\n")
            .unwrap_err();
        assert_eq!(errs[0].line, Some(3));
        assert_eq!(errs[0].field.as_deref(), Some("datastore.password"));
        assert!(!errs[0].to_string().contains("hunter2"), "{}", errs[0]);

        let errs = parse("datastore:\n  postgres: mysql://x\n").unwrap_err();
        assert!(errs[0].message.contains("postgres://"), "{}", errs[0]);
    }

    #[test]
    fn a_coordinator_lease_below_three_seconds_is_refused_at_its_line() {
        let ds = parse("datastore:\n  postgres: postgres://orch@db/orch\n")
            .unwrap()
            .datastore
            .unwrap();
        assert_eq!(
            ds.coordinator_lease_seconds,
            DEFAULT_COORDINATOR_LEASE_SECONDS
        );
        let ds = parse(
            "datastore:\n  postgres: postgres://orch@db/orch\n  coordinatorLeaseSeconds: 5\n",
        )
        .unwrap()
        .datastore
        .unwrap();
        assert_eq!(ds.coordinator_lease_seconds, 5);
        let errs = parse(
            "datastore:\n  postgres: postgres://orch@db/orch\n  coordinatorLeaseSeconds: 1\n",
        )
        .unwrap_err();
        assert_eq!(errs[0].line, Some(3));
        assert_eq!(
            errs[0].field.as_deref(),
            Some("datastore.coordinatorLeaseSeconds")
        );
        assert!(errs[0].message.contains("at least 3"), "{}", errs[0]);
    }
}
