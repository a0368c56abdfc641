//! Builds a TypeScript plugin (a directory with `package.json`) into a wasm component with
//! componentize-js, using the SDK in `plugins/sdk-ts` (embedded in this binary).
//!
//! The toolchain (typescript, rolldown and componentize-js at the versions pinned by the SDK's
//! `package-lock.json`) is installed once per SDK content hash with `npm ci` under the cache
//! directory, and each built component is kept there by the hash of its sources, the SDK and the
//! WIT, so an unchanged plugin is never rebuilt.

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The WIT the component is built against: the one place to change when it moves.
const WIT: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../wit/v0.1/plugin.wit"
));

/// What `npm ci` installs from: the SDK's pinned dependencies. A toolchain directory is keyed by
/// these alone, so editing the SDK's sources does not reinstall it.
const TOOLCHAIN_FILES: &[(&str, &str)] = &[
    (
        "package.json",
        include_str!("../../../plugins/sdk-ts/package.json"),
    ),
    (
        "package-lock.json",
        include_str!("../../../plugins/sdk-ts/package-lock.json"),
    ),
];

/// The SDK's sources and the WIT, written beside a link to the toolchain's node_modules.
const SDK_FILES: &[(&str, &str)] = &[
    (
        "scripts/build.mjs",
        include_str!("../../../plugins/sdk-ts/scripts/build.mjs"),
    ),
    (
        "src/index.ts",
        include_str!("../../../plugins/sdk-ts/src/index.ts"),
    ),
    (
        "src/wit.d.ts",
        include_str!("../../../plugins/sdk-ts/src/wit.d.ts"),
    ),
    ("wit/plugin.wit", WIT),
];

/// Directories of a plugin that are not its sources.
const SKIPPED_DIRS: &[&str] = &["node_modules", "dist", ".git", ".orch"];

/// Why a TypeScript plugin did not build.
#[derive(Debug, thiserror::Error)]
pub enum TsBuildError {
    /// `node` or `npm` is not on PATH.
    #[error(
        "`{tool}` was not found on PATH ({message}): TypeScript plugins are built with Node.js 20 or newer and npm; install them (Debian: apt-get install nodejs npm) and retry"
    )]
    ToolMissing {
        /// `node` or `npm`.
        tool: &'static str,
        /// What running it said.
        message: String,
    },
    /// The directory is not a TypeScript plugin.
    #[error("{}: not a TypeScript plugin: {what}", dir.display())]
    NotAPlugin {
        /// The plugin directory.
        dir: PathBuf,
        /// What is missing.
        what: String,
    },
    /// `npm ci` of the pinned toolchain failed.
    #[error("installing the TypeScript toolchain into {} failed: {output}\nCheck network access to the npm registry and retry", dir.display())]
    Install {
        /// The toolchain directory.
        dir: PathBuf,
        /// npm's output.
        output: String,
    },
    /// Bundling or componentize-js failed (a syntax error, an unknown import, ...).
    #[error("{}: the TypeScript build failed:\n{output}", dir.display())]
    Build {
        /// The plugin directory.
        dir: PathBuf,
        /// The build's output.
        output: String,
    },
    /// `bundle.toml` is missing or wrong, or the bundle could not be written.
    #[error(transparent)]
    Pack(#[from] super::PackError),
    /// Reading or writing files.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TsBuildError + '_ {
    move |source| TsBuildError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Where toolchains and built components are kept: `$ORCH_TS_CACHE`, else
/// `$XDG_CACHE_HOME/orch-ts`, else `~/.cache/orch-ts`.
pub fn cache_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("ORCH_TS_CACHE") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(dir).join("orch-ts");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| ".".into());
    PathBuf::from(home).join(".cache/orch-ts")
}

fn files_hash(sets: &[&[(&str, &str)]]) -> String {
    let mut h = Sha256::new();
    for (path, text) in sets.iter().flat_map(|set| set.iter()) {
        h.update(path.as_bytes());
        h.update([0]);
        h.update(text.as_bytes());
        h.update([0]);
    }
    hex::encode(h.finalize())[..16].to_string()
}

fn sdk_hash() -> String {
    files_hash(&[TOOLCHAIN_FILES, SDK_FILES])
}

/// A directory name unique to this process and call, for writing beside the final place.
fn scratch(root: &Path, name: &str) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    root.join(format!("{name}.tmp-{}-{n}", std::process::id()))
}

fn write_files(dir: &Path, files: &[(&str, &str)]) -> Result<(), TsBuildError> {
    for (rel, text) in files {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap_or(dir)).map_err(io(&path))?;
        std::fs::write(&path, text).map_err(io(&path))?;
    }
    Ok(())
}

fn check_tool(tool: &'static str) -> Result<(), TsBuildError> {
    match Command::new(tool).arg("--version").output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(TsBuildError::ToolMissing {
            tool,
            message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        }),
        Err(e) => Err(TsBuildError::ToolMissing {
            tool,
            message: e.to_string(),
        }),
    }
}

/// Installs the pinned toolchain (npm ci) and writes the SDK under `root` unless already there;
/// returns the SDK directory (its `node_modules` links to the toolchain's).
pub fn ensure_toolchain(root: &Path) -> Result<PathBuf, TsBuildError> {
    // One install at a time in this process (tests build several plugins in parallel).
    static INSTALLING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = INSTALLING.lock().unwrap_or_else(|e| e.into_inner());
    let sdk = root.join(format!("sdk-{}", sdk_hash()));
    if sdk.join(".complete").is_file() {
        return Ok(sdk);
    }
    let toolchain = root.join(format!("toolchain-{}", files_hash(&[TOOLCHAIN_FILES])));
    if !toolchain.join(".complete").is_file() {
        check_tool("node")?;
        check_tool("npm")?;
        // Installed beside the final place and renamed into it, so a half install is never used.
        let tmp = scratch(root, "toolchain");
        let _ = std::fs::remove_dir_all(&tmp);
        write_files(&tmp, TOOLCHAIN_FILES)?;
        let out = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&tmp)
            .output()
            .map_err(io(&tmp))?;
        if !out.status.success() {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(TsBuildError::Install {
                dir: toolchain,
                output: format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ),
            });
        }
        std::fs::write(tmp.join(".complete"), b"").map_err(io(&tmp))?;
        if std::fs::rename(&tmp, &toolchain).is_err() {
            // Another process finished first; its copy is identical.
            let _ = std::fs::remove_dir_all(&tmp);
        }
    }
    let tmp = scratch(root, "sdk");
    let _ = std::fs::remove_dir_all(&tmp);
    write_files(&tmp, SDK_FILES)?;
    let link = tmp.join("node_modules");
    std::os::unix::fs::symlink(toolchain.join("node_modules"), &link).map_err(io(&link))?;
    std::fs::write(tmp.join(".complete"), b"").map_err(io(&tmp))?;
    if std::fs::rename(&tmp, &sdk).is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    Ok(sdk)
}

/// The hash of a plugin's sources (every file outside node_modules, dist, .git), its toolchain
/// and the WIT: the name of its built component in the cache.
pub fn source_hash(plugin_dir: &Path) -> Result<String, TsBuildError> {
    let mut files = Vec::new();
    collect_sources(plugin_dir, plugin_dir, &mut files)?;
    files.sort();
    let mut h = Sha256::new();
    h.update(sdk_hash().as_bytes());
    for (rel, path) in &files {
        let bytes = std::fs::read(path).map_err(io(path))?;
        h.update(rel.as_bytes());
        h.update([0]);
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(&bytes);
    }
    Ok(hex::encode(h.finalize()))
}

fn collect_sources(
    root: &Path,
    dir: &Path,
    out: &mut Vec<(String, PathBuf)>,
) -> Result<(), TsBuildError> {
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let path = entry.path();
        let kind = entry.file_type().map_err(io(&path))?;
        let name = entry.file_name();
        if kind.is_dir() {
            if !SKIPPED_DIRS.iter().any(|s| name == *s) {
                collect_sources(root, &path, out)?;
            }
        } else if kind.is_file() {
            let rel = path.strip_prefix(root).unwrap_or(&path);
            out.push((rel.to_string_lossy().into_owned(), path));
        }
    }
    Ok(())
}

/// Builds the TypeScript plugin in `plugin_dir` into wasm component bytes, from the cache when
/// its sources are unchanged.
pub fn build_typescript(plugin_dir: &Path) -> Result<Vec<u8>, TsBuildError> {
    build_typescript_in(plugin_dir, &cache_root())
}

/// [`build_typescript`] with an explicit cache directory.
pub fn build_typescript_in(plugin_dir: &Path, cache: &Path) -> Result<Vec<u8>, TsBuildError> {
    if !plugin_dir.join("package.json").is_file() {
        return Err(TsBuildError::NotAPlugin {
            dir: plugin_dir.to_path_buf(),
            what: "no package.json (create one with \"main\": \"src/plugin.ts\")".into(),
        });
    }
    let built = cache.join("components");
    let wasm = built.join(format!("{}.wasm", source_hash(plugin_dir)?));
    if let Ok(bytes) = std::fs::read(&wasm) {
        return Ok(bytes);
    }
    let toolchain = ensure_toolchain(cache)?;
    // node runs in the toolchain directory: the plugin's path must not be relative.
    let plugin_dir = &std::fs::canonicalize(plugin_dir).map_err(io(plugin_dir))?;
    std::fs::create_dir_all(&built).map_err(io(&built))?;
    let tmp = scratch(
        &built,
        &wasm.file_stem().unwrap_or_default().to_string_lossy(),
    );
    let out = Command::new("node")
        .arg(toolchain.join("scripts/build.mjs"))
        .arg(plugin_dir)
        .arg(toolchain.join("wit/plugin.wit"))
        .arg(toolchain.join("src/index.ts"))
        .arg(&tmp)
        .current_dir(&toolchain)
        .output()
        .map_err(|e| TsBuildError::ToolMissing {
            tool: "node",
            message: e.to_string(),
        })?;
    let _ = std::fs::remove_file(PathBuf::from(format!("{}.bundle.js", tmp.display())));
    if !out.status.success() {
        let _ = std::fs::remove_file(&tmp);
        return Err(TsBuildError::Build {
            dir: plugin_dir.to_path_buf(),
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
            .trim()
            .to_string(),
        });
    }
    std::fs::rename(&tmp, &wasm).map_err(io(&wasm))?;
    std::fs::read(&wasm).map_err(io(&wasm))
}

/// Builds the plugin in `plugin_dir` and writes a bundle into `out_dir` with the host's one
/// packer: `plugin.wasm` and `plugin.toml` (the plugin's `bundle.toml` with `wasm` and `sha256`
/// filled in).
pub fn pack_bundle(plugin_dir: &Path, out_dir: &Path) -> Result<(), TsBuildError> {
    let bytes = build_typescript(plugin_dir)?;
    super::pack::write_bundle(plugin_dir, &bytes, out_dir, "orch plugin build")
        .map_err(TsBuildError::Pack)
}

/// `orch plugin build` for a package.json plugin: builds it into `<plugin_dir>/dist/<id>/`.
pub fn build_bundle(plugin_dir: &Path) -> Result<PathBuf, super::BuildError> {
    let id = super::pack::bundle_id(plugin_dir)?;
    let out = plugin_dir.join(super::build::DIST_DIR).join(id);
    pack_bundle(plugin_dir, &out).map_err(|e| super::BuildError::TypeScript(Box::new(e)))?;
    Ok(out)
}

/// Writes a new TypeScript plugin package (`orch plugin new --lang ts`) into `options.dir`.
/// The SDK is built into orch, so `options.sdk` is not used.
pub fn scaffold_typescript_plugin(
    options: &super::ScaffoldOptions,
) -> Result<super::scaffold::GeneratedPlugin, super::ScaffoldError> {
    let (id, type_name) = super::scaffold::check_options(options)?;
    let fill = |template: &str| {
        template
            .replace("{{id}}", &id)
            .replace("{{type}}", &type_name)
            // The TypeScript SDK builds `orch:plugin@0.1.0` components.
            .replace("{{api}}", "0.1.0")
            .replace(
                "{{limits}}",
                "# The JavaScript engine (SpiderMonkey) needs more than a Rust plugin's 64 MB.\nmemory-mb = 256\n",
            )
    };
    let files = vec![
        ("package.json", fill(TS_PACKAGE_JSON)),
        ("bundle.toml", fill(super::scaffold::BUNDLE_TOML)),
        ("src/plugin.ts", fill(TS_PLUGIN_TS)),
        ("README.md", fill(TS_README)),
        (".gitignore", "/node_modules\n/dist\n".to_string()),
    ];
    let written = super::scaffold::write_files(&options.dir, files)?;
    Ok(super::scaffold::GeneratedPlugin {
        id,
        type_name,
        sdk: None,
        files: written,
    })
}

const TS_PACKAGE_JSON: &str = r#"{
  "name": "orch-plugin-{{id}}",
  "version": "0.1.0",
  "private": true,
  "type": "module",
  "main": "src/plugin.ts"
}
"#;

const TS_PLUGIN_TS: &str = r#"// `{{type}}`: greets someone and remembers how many greetings were sent.
import { definePlugin } from '@orch/plugin-sdk';

/** The definition's `globalArguments`. */
interface Globals {
  /** Who to greet. */
  name: string;
}

/** The `greeting` resource: the last greeting and how many were sent. */
interface Greeting {
  message: string;
  count: number;
}

export const { describe, execute } = definePlugin({
  types: {
    '{{type}}': {
      version: '2026.1.1.1',
      description: 'Greets someone',
      globalArguments: {
        type: 'object',
        properties: { name: { type: 'string', description: 'Who to greet' } },
        required: ['name'],
        additionalProperties: false,
      },
      resources: {
        greeting: {
          description: 'The last greeting and how many were sent',
          schema: {
            type: 'object',
            properties: { message: { type: 'string' }, count: { type: 'integer' } },
            required: ['message', 'count'],
          },
        },
      },
      methods: {
        show: {
          description: 'Show the last greeting',
          kind: 'read',
          execute: (_args: {}, context) =>
            context.readResource<Greeting>('greeting', 'greeting') ?? null,
        },
        greet: {
          description: 'Greet and count',
          kind: 'action',
          arguments: {
            type: 'object',
            properties: {
              punctuation: { type: 'string', description: 'Ends the greeting (default `!`)' },
            },
            additionalProperties: false,
          },
          execute: ({ punctuation }: { punctuation?: string }, context) => {
            const globals = context.globalArgs as Globals;
            const previous = context.readResource<Greeting>('greeting', 'greeting');
            const greeting: Greeting = {
              message: `Hello, ${globals.name}${punctuation ?? '!'}`,
              count: (previous?.count ?? 0) + 1,
            };
            context.log.info(greeting.message);
            if (!context.dryRun) {
              context.writeResource('greeting', 'greeting', greeting);
            }
            return greeting;
          },
        },
      },
    },
  },
});
"#;

const TS_README: &str = r#"# {{id}}: an orch plugin in TypeScript providing `{{type}}`

Generated by `orch plugin new --lang ts`. `src/plugin.ts` holds the model type: its global
arguments, the `greeting` resource it writes, a read method (`show`) and an action method
(`greet`). The SDK (`@orch/plugin-sdk`) is built into orch: there is nothing to `npm install`.

```sh
orch plugin build .                # type-checks, bundles and componentizes; packs dist/{{id}}/
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

Building needs Node.js 20 or newer and npm on PATH; the first build installs the pinned
toolchain (TypeScript, rolldown, componentize-js) once under `~/.cache/orch-ts`.
Methods must be synchronous; there is no `fetch()`: use `http.request` from the SDK.
`bundle.toml` lists what the plugin may reach (`[capabilities]`) and its limits.
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_source_hash_ignores_node_modules_and_follows_sources() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("package.json"), "{}").unwrap();
        let first = source_hash(dir.path()).unwrap();
        std::fs::create_dir_all(dir.path().join("node_modules/x")).unwrap();
        std::fs::write(dir.path().join("node_modules/x/a.js"), "1").unwrap();
        assert_eq!(source_hash(dir.path()).unwrap(), first);
        std::fs::create_dir_all(dir.path().join("src")).unwrap();
        std::fs::write(dir.path().join("src/plugin.ts"), "export {}").unwrap();
        assert_ne!(source_hash(dir.path()).unwrap(), first);
    }

    #[test]
    fn a_missing_node_is_named_with_what_to_install() {
        let err = check_tool("orch-test-no-such-node")
            .unwrap_err()
            .to_string();
        assert!(err.contains("orch-test-no-such-node"), "{err}");
        assert!(err.contains("install"), "{err}");
    }

    #[test]
    fn new_writes_the_type_into_a_typescript_package() {
        let dir = tempfile::tempdir().unwrap();
        let made = scaffold_typescript_plugin(&crate::plugin_dev::ScaffoldOptions {
            dir: dir.path().join("hello"),
            type_name: Some("acme/hello".into()),
            sdk: None,
        })
        .unwrap();
        assert_eq!(made.id, "hello");
        let plugin = std::fs::read_to_string(dir.path().join("hello/src/plugin.ts")).unwrap();
        assert!(plugin.contains("'acme/hello': {"), "{plugin}");
        let bundle = std::fs::read_to_string(dir.path().join("hello/bundle.toml")).unwrap();
        assert!(bundle.contains("id = \"hello\""), "{bundle}");
        for f in &made.files {
            let text = std::fs::read_to_string(f).unwrap();
            assert!(
                !text.contains("{{id}}") && !text.contains("{{type}}"),
                "{}",
                f.display()
            );
        }
    }

    #[test]
    fn new_typescript_refuses_a_non_empty_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("keep.txt"), "mine").unwrap();
        let err = scaffold_typescript_plugin(&crate::plugin_dev::ScaffoldOptions {
            dir: dir.path().to_path_buf(),
            type_name: None,
            sdk: None,
        })
        .unwrap_err();
        assert!(
            matches!(err, crate::plugin_dev::ScaffoldError::NotEmpty(_)),
            "{err}"
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_directory_without_package_json_is_not_a_plugin() {
        let dir = tempfile::tempdir().unwrap();
        let err = build_typescript_in(dir.path(), dir.path()).unwrap_err();
        assert!(err.to_string().contains("package.json"), "{err}");
    }
}
