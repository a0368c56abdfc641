//! `orch plugin new`: writes a Rust plugin crate that builds, tests and runs as generated.
//!
//! The crate depends on the SDK (`orch-plugin-sdk`) by path. The SDK is found, in order: the
//! `--sdk PATH` flag, the `ORCH_SDK_PATH` environment variable, then `plugins/sdk` of the
//! checkout this `orch` was compiled from, if it still exists.

use std::path::{Path, PathBuf};
use thiserror::Error;

/// The environment variable naming the SDK directory when `--sdk` is not given.
pub const SDK_ENV: &str = "ORCH_SDK_PATH";

/// Where `orch-plugin-sdk` was when this binary was compiled.
const BUILT_SDK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../plugins/sdk");

/// What to generate.
#[derive(Debug, Clone)]
pub struct ScaffoldOptions {
    /// The new crate's directory (created; must be empty or absent).
    pub dir: PathBuf,
    /// The model type, `namespace/name`; default `example/<dir name>`.
    pub type_name: Option<String>,
    /// The SDK directory; default from [`SDK_ENV`] or the source checkout.
    pub sdk: Option<PathBuf>,
}

/// Why the plugin was not generated.
#[derive(Debug, Error)]
pub enum ScaffoldError {
    /// The directory has files in it.
    #[error("{0}: the directory is not empty; choose a new directory (nothing was written)")]
    NotEmpty(PathBuf),
    /// The directory name cannot be a plugin id.
    #[error(
        "{0}: the directory name must start with a letter and hold only letters, digits, `-` and `_`: it becomes the plugin id and crate name"
    )]
    BadName(PathBuf),
    /// `--type` is not `namespace/name`.
    #[error(
        "--type `{0}`: expected `namespace/name` in lower case letters, digits and `-`, e.g. `acme/hello`"
    )]
    BadType(String),
    /// No SDK directory could be found.
    #[error(
        "cannot find the Rust plugin SDK (orch-plugin-sdk): {0}; pass --sdk PATH or set {SDK_ENV} to the plugins/sdk directory of an orch checkout"
    )]
    NoSdk(String),
    /// A file could not be written.
    #[error("{path}: {message}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        message: String,
    },
}

/// The files of a new plugin, relative to its directory.
#[derive(Debug)]
pub struct GeneratedPlugin {
    /// Plugin id (the bundle's directory name).
    pub id: String,
    /// The model type it provides.
    pub type_name: String,
    /// The SDK it depends on by path (Rust); none when the SDK is built into orch (TypeScript).
    pub sdk: Option<PathBuf>,
    /// Files written.
    pub files: Vec<PathBuf>,
}

fn valid_type(name: &str) -> bool {
    let part = |s: &str| {
        !s.is_empty()
            && s.starts_with(|c: char| c.is_ascii_lowercase())
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    };
    matches!(name.split_once('/'), Some((ns, n)) if part(ns) && part(n))
}

/// The SDK directory to depend on, checked to hold `orch-plugin-sdk`.
pub fn find_sdk(flag: Option<&Path>) -> Result<PathBuf, ScaffoldError> {
    let (dir, from) = match (flag, std::env::var_os(SDK_ENV)) {
        (Some(p), _) => (p.to_path_buf(), "--sdk".to_string()),
        (None, Some(p)) => (PathBuf::from(p), SDK_ENV.to_string()),
        (None, None) => (
            PathBuf::from(BUILT_SDK),
            "the source checkout orch was built from".to_string(),
        ),
    };
    let manifest = dir.join("Cargo.toml");
    let is_sdk =
        std::fs::read_to_string(&manifest).is_ok_and(|t| t.contains("name = \"orch-plugin-sdk\""));
    if !is_sdk {
        return Err(ScaffoldError::NoSdk(format!(
            "{} (from {from}) holds no orch-plugin-sdk Cargo.toml",
            dir.display()
        )));
    }
    dir.canonicalize().map_err(|e| ScaffoldError::Io {
        path: dir,
        message: e.to_string(),
    })
}

/// Checks `options` before anything is written: the directory is empty or absent, its name can
/// be a plugin id, and the model type is `namespace/name`. Returns the id and the type.
pub(crate) fn check_options(options: &ScaffoldOptions) -> Result<(String, String), ScaffoldError> {
    let dir = &options.dir;
    if let Ok(mut entries) = std::fs::read_dir(dir)
        && entries.next().is_some()
    {
        return Err(ScaffoldError::NotEmpty(dir.clone()));
    }
    if dir.exists() && !dir.is_dir() {
        return Err(ScaffoldError::NotEmpty(dir.clone()));
    }
    let id = dir
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    if !id.starts_with(|c: char| c.is_ascii_alphabetic())
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(ScaffoldError::BadName(dir.clone()));
    }
    let type_name = options
        .type_name
        .clone()
        .unwrap_or_else(|| format!("example/{}", id.to_ascii_lowercase().replace('_', "-")));
    if !valid_type(&type_name) {
        return Err(ScaffoldError::BadType(type_name));
    }
    Ok((id, type_name))
}

/// Writes `files` (paths relative to `dir`), creating directories; returns the paths written.
pub(crate) fn write_files(
    dir: &Path,
    files: Vec<(&str, String)>,
) -> Result<Vec<PathBuf>, ScaffoldError> {
    let mut written = Vec::new();
    for (name, text) in files {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| ScaffoldError::Io {
                path: parent.to_path_buf(),
                message: e.to_string(),
            })?;
        }
        std::fs::write(&path, text).map_err(|e| ScaffoldError::Io {
            path: path.clone(),
            message: e.to_string(),
        })?;
        written.push(path);
    }
    Ok(written)
}

/// Writes a new Rust plugin crate into `options.dir`.
pub fn scaffold_rust_plugin(options: &ScaffoldOptions) -> Result<GeneratedPlugin, ScaffoldError> {
    let (id, type_name) = check_options(options)?;
    let sdk = find_sdk(options.sdk.as_deref())?;
    let fill = |template: &str| {
        template
            .replace("{{id}}", &id)
            .replace("{{type}}", &type_name)
            .replace("{{sdk}}", &sdk.display().to_string().replace('\\', "/"))
            .replace("{{limits}}", "memory-mb = 64\n")
            // The Rust SDK builds `orch:plugin@0.2.0` components.
            .replace("{{api}}", "0.2.0")
    };
    let files = vec![
        ("Cargo.toml", fill(CARGO_TOML)),
        ("bundle.toml", fill(BUNDLE_TOML)),
        ("src/lib.rs", fill(LIB_RS)),
        ("README.md", fill(README)),
        (".gitignore", "/target\n/dist\n".to_string()),
    ];
    let written = write_files(&options.dir, files)?;
    Ok(GeneratedPlugin {
        id,
        type_name,
        sdk: Some(sdk),
        files: written,
    })
}

const CARGO_TOML: &str = r#"[package]
name = "{{id}}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
crate-type = ["cdylib", "rlib"]

[dependencies]
# The orch Rust plugin SDK. A git dependency works too:
# orch-plugin-sdk = { git = "https://example.org/orch.git" }
orch-plugin-sdk = { path = "{{sdk}}" }
serde = { version = "1.0", features = ["derive"] }
schemars = "1.0"

# A standalone crate, not part of any enclosing workspace.
[workspace]

# `orch plugin build` uses this profile: small, stripped components.
[profile.plugin]
inherits = "release"
debug = false
strip = true
opt-level = "s"
"#;

/// The bundle template both scaffolds write; `{{limits}}` is the language's memory line(s) and
/// `{{api}}` the `orch:plugin` version its SDK builds against.
pub(super) const BUNDLE_TOML: &str = r#"# Bundle manifest template: `orch plugin build` adds wasm and sha256 and writes dist/{{id}}/.
id = "{{id}}"
version = "0.1.0"
api = "{{api}}"
description = "Provides {{type}}"

# What the plugin may reach. The operator can narrow it further in orch.yaml `grants:`.
[capabilities]
# http = ["https://api.example.com:443", "{{ globalArguments.baseUrl }}"]
# ssh = ["root@{{ globalArguments.host }}:22"]

[limits]
{{limits}}timeout-ms = 10000
"#;

const LIB_RS: &str = r#"//! `{{type}}`: greets someone and remembers how many greetings were sent.

use orch_plugin_sdk::{Ctx, JsonSchema, MethodKind, ModelType, NoArgs, Plugin, Result};
use serde::{Deserialize, Serialize};

/// The model type this plugin provides.
const TYPE: &str = "{{type}}";

/// Global arguments of every `{{type}}` model (its definition's `globalArguments`).
#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Globals {
    /// Who to greet.
    name: String,
}

/// The `greeting` resource: the last greeting and how many were sent.
#[derive(Serialize, Deserialize, JsonSchema)]
struct Greeting {
    /// The text of the last greeting.
    message: String,
    /// Greetings sent so far.
    count: u64,
}

/// Arguments of `greet`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct GreetArgs {
    /// Ends the greeting (default `!`).
    #[serde(default)]
    punctuation: Option<String>,
}

fn message(name: &str, punctuation: &str) -> String {
    format!("Hello, {name}{punctuation}")
}

/// Read: the last greeting, or null before the first `greet`.
fn show(ctx: &Ctx<Globals>, _: NoArgs) -> Result<Option<Greeting>> {
    ctx.read_resource("greeting", "greeting")
}

/// Action: greets and writes a new version of the `greeting` resource.
fn greet(ctx: &Ctx<Globals>, args: GreetArgs) -> Result<Greeting> {
    let previous: Option<Greeting> = ctx.read_resource("greeting", "greeting")?;
    let punctuation = args.punctuation.as_deref().unwrap_or("!");
    let greeting = Greeting {
        message: message(&ctx.globals.name, punctuation),
        count: previous.map_or(1, |g| g.count + 1),
    };
    ctx.info(&greeting.message);
    if !ctx.dry_run {
        ctx.write_resource("greeting", "greeting", &greeting)?;
    }
    Ok(greeting)
}

struct ThisPlugin;

impl Plugin for ThisPlugin {
    fn types() -> Vec<ModelType> {
        vec![
            ModelType::new::<Globals>(TYPE, "2026.1.1.1", "Greets someone")
                .resource::<Greeting>("greeting", "The last greeting and how many were sent")
                .method("show", MethodKind::Read, "Show the last greeting", show)
                .method("greet", MethodKind::Action, "Greet and count", greet),
        ]
    }
}

orch_plugin_sdk::export_plugin!(ThisPlugin);

#[cfg(test)]
mod tests {
    use super::*;
    use orch_plugin_sdk::json;
    use orch_plugin_sdk::testing::FakeHost;

    #[test]
    fn the_greeting_names_who_is_greeted() {
        assert_eq!(message("Ada", "!"), "Hello, Ada!");
    }

    /// Runs the real methods against the SDK's fake host: no wasm, no orch needed.
    #[test]
    fn greet_counts_and_records_each_greeting() {
        let host = FakeHost::new();
        let globals = json!({"name": "Ada"});
        host.call::<ThisPlugin>(TYPE, "greet", globals.clone(), json!({}))
            .unwrap();
        let args = json!({"punctuation": "?"});
        let out = host.call::<ThisPlugin>(TYPE, "greet", globals.clone(), args);
        let out = out.unwrap();
        assert_eq!(out, json!({"message": "Hello, Ada?", "count": 2}));
        assert_eq!(host.versions("greeting", "greeting").len(), 2);
        assert_eq!(host.logs()[0], "info: Hello, Ada!");
        let shown = host.call::<ThisPlugin>(TYPE, "show", globals, json!({}));
        assert_eq!(shown.unwrap()["count"], 2);
    }
}
"#;

const README: &str = r#"# {{id}}: an orch plugin providing `{{type}}`

Generated by `orch plugin new`. `src/lib.rs` holds the model type: its global arguments, the
`greeting` resource it writes, a read method (`show`) and an action method (`greet`).

```sh
cargo test                         # the unit tests, natively
orch plugin build .                # compiles for wasm32-wasip2, packs dist/{{id}}/
orch plugin validate dist/{{id}}   # what the host checks at load
cd my-repo && orch plugin install /path/to/{{id}}/dist/{{id}}
```

A definition using it, `models/hello.yaml` in an orch repository:

```yaml
type: {{type}}
name: hello
globalArguments:
  name: world
```

Then `orch model run hello greet` and `orch model run hello show`.

Building needs the wasm target once: `rustup target add wasm32-wasip2`. The SDK dependency in
`Cargo.toml` points at {{sdk}}; change it to a git dependency to share the crate.
`bundle.toml` lists what the plugin may reach (`[capabilities]`) and its limits.
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_refuses_a_non_empty_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("keep.txt"), "mine").unwrap();
        let err = scaffold_rust_plugin(&ScaffoldOptions {
            dir: dir.path().to_path_buf(),
            type_name: None,
            sdk: None,
        })
        .unwrap_err();
        assert!(matches!(err, ScaffoldError::NotEmpty(_)), "{err}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn new_refuses_a_type_without_a_namespace() {
        let dir = tempfile::tempdir().unwrap();
        let err = scaffold_rust_plugin(&ScaffoldOptions {
            dir: dir.path().join("hello"),
            type_name: Some("hello".into()),
            sdk: None,
        })
        .unwrap_err();
        assert!(matches!(err, ScaffoldError::BadType(_)), "{err}");
    }

    #[test]
    fn new_writes_the_type_and_the_sdk_path_into_the_crate() {
        let dir = tempfile::tempdir().unwrap();
        let made = scaffold_rust_plugin(&ScaffoldOptions {
            dir: dir.path().join("hello"),
            type_name: Some("acme/hello".into()),
            sdk: Some(PathBuf::from(BUILT_SDK)),
        })
        .unwrap();
        assert_eq!(made.id, "hello");
        let lib = std::fs::read_to_string(dir.path().join("hello/src/lib.rs")).unwrap();
        assert!(lib.contains("const TYPE: &str = \"acme/hello\";"));
        assert!(!lib.contains("{{"), "unfilled placeholder in lib.rs");
        let cargo = std::fs::read_to_string(dir.path().join("hello/Cargo.toml")).unwrap();
        assert!(cargo.contains(&made.sdk.unwrap().display().to_string()));
    }
}
