//! Finds installed plugin bundles and maps type names to plugins.
//!
//! Loading the registry reads manifests and the cached describe() results, else the types a
//! bundle ships in `types.json` (verified by a real describe() before the plugin first runs);
//! a plugin is compiled when one of its types is run, or once per wasm to learn its types when
//! its bundle has no usable `types.json`. A cached type's description is kept as JSON text
//! until the type is first used (see [`super::listing`]). A type claimed
//! by two bundles is refused unless orch.yaml pins its provider, because the plugin that runs
//! receives the model's global arguments, secrets included.

use super::bundle_types::{self, BundleTypes};
use super::listing::{Held, Listing};
use super::{
    EffectiveLimits, LimitCaps, LoadedPlugin, PluginManifest, PluginRuntime, RuntimeError,
    TypeDescription,
};
use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

/// What orch.yaml says about plugins.
#[derive(Debug, Clone, Default)]
pub struct RegistrySettings {
    /// Caps for every plugin (`limits:`).
    pub limits: Option<LimitCaps>,
    /// Caps per plugin id (`grants.<id>.limits`).
    pub plugin_limits: BTreeMap<String, LimitCaps>,
    /// Which plugin id provides a type that several bundles claim (`providers:`).
    pub providers: BTreeMap<String, String>,
}

/// One installed bundle: its manifest and limits; compiled on first use.
pub struct InstalledPlugin {
    /// Its manifest.
    pub manifest: PluginManifest,
    /// Its bundle directory.
    pub dir: PathBuf,
    /// The limits its calls run under.
    pub limits: EffectiveLimits,
    /// Built into the host (see [`crate::builtin`]): nothing to compile, run by the host itself.
    pub builtin: bool,
    compiled: OnceLock<Result<Arc<LoadedPlugin>, RuntimeError>>,
    /// The types its bundle's `types.json` claimed, when the registry took them from there:
    /// checked against a real describe() before the plugin first runs.
    claimed: OnceLock<Listing>,
}

impl InstalledPlugin {
    fn describe_where(&self) -> String {
        format!("plugin `{}` ({})", self.manifest.id, self.dir.display())
    }
}

/// One model type and the plugin that provides it.
#[derive(Clone)]
pub struct ProvidedType {
    /// The plugin.
    pub plugin: Arc<InstalledPlugin>,
    /// What describe() said about the type.
    pub description: Arc<TypeDescription>,
}

/// A usable type: its plugin, and its description, decoded the first time it is asked for.
struct Slot {
    plugin: Arc<InstalledPlugin>,
    held: Held,
    provided: OnceLock<Result<ProvidedType, String>>,
}

impl Slot {
    fn new(plugin: Arc<InstalledPlugin>, held: Held) -> Slot {
        Slot {
            plugin,
            held,
            provided: OnceLock::new(),
        }
    }

    /// The type, or why its cached description could not be read.
    fn provided(&self, name: &str) -> Result<&ProvidedType, String> {
        self.provided
            .get_or_init(|| {
                let description = self.held.decode(name).map_err(|e| {
                    format!(
                        "type `{name}` of {}: {e}; delete the repo's `.orch/describe` to describe the plugin again",
                        self.plugin.describe_where()
                    )
                })?;
                Ok(ProvidedType {
                    plugin: self.plugin.clone(),
                    description,
                })
            })
            .as_ref()
            .map_err(Clone::clone)
    }
}

/// Every plugin found on the repo's plugin path.
pub struct PluginRegistry {
    /// The shared runtime.
    pub runtime: Arc<PluginRuntime>,
    plugins: Vec<Arc<InstalledPlugin>>,
    types: BTreeMap<String, Slot>,
    refused: BTreeMap<String, String>,
    problems: Vec<String>,
}

/// Bundle directories (holding `plugin.toml`) directly under each search directory. A directory
/// reached twice (a repeated `pluginPath` entry, a symlink) is listed once.
pub fn find_bundles(search: &[PathBuf]) -> Vec<PathBuf> {
    let mut seen_search = HashSet::new();
    let mut seen = HashSet::new();
    let mut found = Vec::new();
    for dir in search {
        let canonical = dir.canonicalize().unwrap_or_else(|_| dir.clone());
        if !seen_search.insert(canonical) {
            continue;
        }
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        let mut dirs: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.join("plugin.toml").symlink_metadata().is_ok())
            .collect();
        dirs.sort();
        for d in dirs {
            let canonical = d.canonicalize().unwrap_or_else(|_| d.clone());
            if seen.insert(canonical) {
                found.push(d);
            }
        }
    }
    found
}

/// Claims on one type name: (plugin, its description or why the host refused it).
type Claims = Vec<(Arc<InstalledPlugin>, Result<Held, String>)>;

impl PluginRegistry {
    /// Reads every bundle under `search`. A broken bundle does not stop the others; its
    /// problem is kept and shown when one of its types is needed.
    pub async fn load(
        runtime: Arc<PluginRuntime>,
        search: &[PathBuf],
        settings: &RegistrySettings,
    ) -> Self {
        let mut registry = PluginRegistry {
            runtime,
            plugins: Vec::new(),
            types: BTreeMap::new(),
            refused: BTreeMap::new(),
            problems: Vec::new(),
        };
        let mut found: Vec<Arc<InstalledPlugin>> = Vec::new();
        for dir in find_bundles(search) {
            match PluginManifest::load(&dir.join("plugin.toml")) {
                Ok(manifest) => {
                    let limits = EffectiveLimits::new(
                        &manifest.id,
                        &manifest.limits,
                        settings.limits.as_ref(),
                        settings.plugin_limits.get(&manifest.id),
                    );
                    found.push(Arc::new(InstalledPlugin {
                        manifest,
                        dir,
                        limits,
                        builtin: false,
                        compiled: OnceLock::new(),
                        claimed: OnceLock::new(),
                    }));
                }
                Err(e) => registry.problems.push(e.to_string()),
            }
        }
        let mut by_id: BTreeMap<&str, Vec<&InstalledPlugin>> = BTreeMap::new();
        for p in &found {
            by_id.entry(p.manifest.id.as_str()).or_default().push(p);
        }
        for (id, bundles) in &by_id {
            if bundles.len() > 1 {
                // orch.yaml grants and limits are keyed by id: a second bundle with the same id
                // would receive what the operator granted the first.
                registry.problems.push(format!(
                    "plugin id `{id}` is installed {} times ({}); none of them is loaded. Remove all but one",
                    bundles.len(),
                    bundles
                        .iter()
                        .map(|b| b.dir.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
        if let Some(bundles) = by_id.get(crate::builtin::BUILTIN_PLUGIN_ID) {
            // orch.yaml's grants.orch belong to the built-in types.
            registry.problems.push(format!(
                "plugin id `{}` is reserved for the types built into orch; {} is not loaded. Give it another id",
                crate::builtin::BUILTIN_PLUGIN_ID,
                bundles
                    .iter()
                    .map(|b| b.dir.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        let unique: Vec<Arc<InstalledPlugin>> = found
            .iter()
            .filter(|p| by_id[p.manifest.id.as_str()].len() == 1)
            .filter(|p| p.manifest.id != crate::builtin::BUILTIN_PLUGIN_ID)
            .cloned()
            .collect();
        registry.plugins = unique;
        let mut claims: BTreeMap<String, Claims> = BTreeMap::new();
        for (plugin, described) in registry.describe_all().await {
            let described = match described {
                Ok(d) => d,
                Err(e) => {
                    registry.problems.push(e.to_string());
                    continue;
                }
            };
            for (name, held) in described.types {
                claims
                    .entry(name)
                    .or_default()
                    .push((plugin.clone(), Ok(held)));
            }
            for (name, problem) in described.rejected {
                claims
                    .entry(name)
                    .or_default()
                    .push((plugin.clone(), Err(problem)));
            }
        }
        for (name, claims) in claims {
            match choose(&name, claims, settings.providers.get(&name)) {
                Ok(t) => {
                    registry.types.insert(name, t);
                }
                Err(why) => {
                    registry.problems.push(why.clone());
                    registry.refused.insert(name, why);
                }
            }
        }
        registry.add_builtins(settings);
        for (name, pinned) in &settings.providers {
            if !registry.types.contains_key(name) && !registry.refused.contains_key(name) {
                registry.problems.push(format!(
                    "orch.yaml providers.{name} pins plugin `{pinned}`, but no installed plugin provides type `{name}`"
                ));
            }
        }
        registry
    }

    /// Lists the types built into the host beside the plugins' (see [`crate::builtin`]); a
    /// plugin type of the same name gives way, with a problem saying so.
    fn add_builtins(&mut self, settings: &RegistrySettings) {
        let manifest = crate::builtin::manifest();
        let limits = EffectiveLimits::new(
            &manifest.id,
            &manifest.limits,
            settings.limits.as_ref(),
            settings.plugin_limits.get(&manifest.id),
        );
        let plugin = Arc::new(InstalledPlugin {
            manifest,
            dir: PathBuf::from(crate::builtin::BUILTIN_DIR),
            limits,
            builtin: true,
            compiled: OnceLock::new(),
            claimed: OnceLock::new(),
        });
        for description in crate::builtin::descriptions() {
            let name = description.name.clone();
            if let Some(shadowed) = self.types.get(&name) {
                self.problems.push(format!(
                    "type `{name}` is built into orch; the one {} declares is not used",
                    shadowed.plugin.describe_where()
                ));
            }
            self.refused.remove(&name);
            let held = Held::Decoded(Arc::new(description));
            self.types.insert(name, Slot::new(plugin.clone(), held));
        }
    }

    /// Each plugin's types: from the describe cache, else from its bundle's `types.json`
    /// (checked like a live answer, verified before the plugin first runs), else by compiling
    /// and describing it (all such plugins at once, so slow ones cost one bound, not one each).
    async fn describe_all(&self) -> Vec<(Arc<InstalledPlugin>, Result<Listing, RuntimeError>)> {
        let mut out = Vec::new();
        let mut pending = tokio::task::JoinSet::new();
        for (index, plugin) in self.plugins.iter().enumerate() {
            if let Some(d) = self
                .runtime
                .cached_description(&plugin.manifest.id, &plugin.manifest.sha256)
            {
                out.push((index, Ok(d)));
                continue;
            }
            if let Some(d) = bundle_claim(&self.runtime, plugin) {
                let _ = plugin.claimed.set(d.clone());
                out.push((index, Ok(d)));
                continue;
            }
            let runtime = self.runtime.clone();
            let plugin = plugin.clone();
            pending.spawn(async move {
                let result = match compiled(&runtime, &plugin) {
                    Ok(loaded) => runtime.describe(&loaded).await.map(|described| {
                        runtime.cache_description(&loaded.sha256, &described);
                        Listing::decoded(described)
                    }),
                    Err(e) => Err(e),
                };
                (index, result)
            });
        }
        while let Some(done) = pending.join_next().await {
            if let Ok((index, result)) = done {
                out.push((index, result));
            }
        }
        out.sort_by_key(|(i, _)| *i);
        out.into_iter()
            .map(|(i, r)| (self.plugins[i].clone(), r))
            .collect()
    }

    /// The compiled form of an installed plugin (compiled on first use, then kept).
    pub fn compiled(&self, plugin: &InstalledPlugin) -> Result<Arc<LoadedPlugin>, RuntimeError> {
        compiled(&self.runtime, plugin)
    }

    /// The type named `name`, or an error that says why it is unusable, or lists what is
    /// installed and what failed to load.
    pub fn get(&self, name: &str) -> Result<&ProvidedType, String> {
        if let Some(slot) = self.types.get(name) {
            return slot.provided(name);
        }
        if let Some(why) = self.refused.get(name) {
            return Err(why.clone());
        }
        let mut msg = format!("unknown model type `{name}`");
        if let Some(best) = crate::suggest::closest(name, self.types.keys().map(String::as_str)) {
            msg.push_str(&format!("; did you mean `{best}`?"));
        }
        if self.types.values().all(|t| t.plugin.builtin) {
            msg.push_str(" (no plugins are installed: build them with `cargo xtask build` or copy a bundle into plugins/)");
        } else {
            msg.push_str(&format!(
                " (installed: {})",
                self.types.keys().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
        for p in &self.problems {
            msg.push_str(&format!("\n  a plugin failed to load: {p}"));
        }
        Err(msg)
    }

    /// All usable types, by name: the plugins' first, then those built into orch. A type
    /// whose cached description cannot be read is left out, with a warning.
    pub fn types(&self) -> impl Iterator<Item = &ProvidedType> {
        let usable = |builtin: bool| {
            self.types
                .iter()
                .filter(move |(_, slot)| slot.plugin.builtin == builtin)
                .filter_map(|(name, slot)| {
                    slot.provided(name)
                        .inspect_err(|e| tracing::warn!("{e}"))
                        .ok()
                })
        };
        usable(false).chain(usable(true))
    }

    /// All installed plugins (each with a unique id).
    pub fn plugins(&self) -> &[Arc<InstalledPlugin>] {
        &self.plugins
    }

    /// Bundles and types that could not be loaded, with why.
    pub fn problems(&self) -> &[String] {
        &self.problems
    }
}

fn compiled(
    runtime: &PluginRuntime,
    plugin: &InstalledPlugin,
) -> Result<Arc<LoadedPlugin>, RuntimeError> {
    if plugin.builtin {
        return Err(RuntimeError::Wasm {
            plugin: plugin.manifest.id.clone(),
            message: "built-in types are run by the host; there is nothing to compile".into(),
        });
    }
    plugin
        .compiled
        .get_or_init(|| {
            let loaded = runtime
                .compile(plugin.manifest.clone(), &plugin.dir, plugin.limits.clone())
                .map(Arc::new)?;
            if let Some(claimed) = plugin.claimed.get() {
                verify_claim(runtime, plugin, &loaded, claimed)?;
            }
            Ok(loaded)
        })
        .clone()
}

/// The types a bundle's `types.json` claims for its wasm, after the host's checks on a
/// describe() answer; None (with a warning) when the file is missing, stale or malformed, so
/// the plugin is compiled and described instead.
fn bundle_claim(runtime: &PluginRuntime, plugin: &InstalledPlugin) -> Option<Listing> {
    let path = plugin.dir.join(bundle_types::TYPES_FILE);
    let sha256 = &plugin.manifest.sha256;
    // Checking a claim compiles every schema in it; an earlier process's check is reused.
    let digest = bundle_types::digest(&plugin.dir);
    if let Some(d) = digest
        .as_ref()
        .and_then(|t| runtime.cached_claim(sha256, t))
    {
        return Some(d);
    }
    let why = match bundle_types::read(&plugin.dir, sha256) {
        BundleTypes::Claimed(infos) => match super::check_described(&plugin.manifest.id, infos) {
            Ok(d) => {
                if let Some(t) = &digest {
                    runtime.cache_claim(sha256, t, &d);
                }
                return Some(Listing::decoded(d));
            }
            Err(e) => e.to_string(),
        },
        BundleTypes::Missing => "there is none (a bundle built by an older orch)".to_string(),
        BundleTypes::Unusable(why) => why,
    };
    tracing::warn!(
        "plugin `{}`: not using {}: {why}; compiling it to learn its types (rebuild the bundle with `orch plugin build` to skip this)",
        plugin.manifest.id,
        path.display()
    );
    None
}

/// Describes a plugin whose types came from its bundle and refuses it, before anything of it
/// runs, when the answer differs from the claim; a matching answer goes into the describe cache.
fn verify_claim(
    runtime: &PluginRuntime,
    plugin: &InstalledPlugin,
    loaded: &LoadedPlugin,
    claimed: &Listing,
) -> Result<(), RuntimeError> {
    let claimed = claimed.described().map_err(|message| RuntimeError::BundleClaim {
        path: plugin.dir.join(bundle_types::TYPES_FILE),
        message: format!(
            "plugin `{}`: the checked copy of its claim cannot be read ({message}); delete the repo's `.orch/describe` and run again",
            plugin.manifest.id
        ),
    })?;
    // Compiling is blocking work already; describe() is async, so it gets a runtime of its own
    // on a helper thread (this may be called from inside a tokio worker).
    let actual = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_time()
                    .build()
                    .map_err(|e| RuntimeError::Wasm {
                        plugin: plugin.manifest.id.clone(),
                        message: format!("cannot start a runtime to describe the plugin: {e}"),
                    })?
                    .block_on(runtime.describe(loaded))
            })
            .join()
            .unwrap_or_else(|_| {
                Err(RuntimeError::Wasm {
                    plugin: plugin.manifest.id.clone(),
                    message: "describing the plugin panicked".into(),
                })
            })
    })?;
    if let Some(difference) = bundle_types::differences(&claimed, &actual) {
        return Err(RuntimeError::BundleClaim {
            path: plugin.dir.join(bundle_types::TYPES_FILE),
            message: format!(
                "plugin `{}`: {difference}: rebuild the bundle with `orch plugin build` (or `cargo xtask build`); none of its methods was run",
                plugin.manifest.id
            ),
        });
    }
    runtime.cache_description(&loaded.sha256, &actual);
    Ok(())
}

/// The one provider of `name`, or why the type is refused.
fn choose(name: &str, claims: Claims, pinned: Option<&String>) -> Result<Slot, String> {
    let listing = || {
        claims
            .iter()
            .map(|(p, _)| p.describe_where())
            .collect::<Vec<_>>()
            .join(" and ")
    };
    let chosen = match pinned {
        Some(id) => claims
            .iter()
            .position(|(p, _)| &p.manifest.id == id)
            .ok_or_else(|| {
                format!(
                    "type `{name}`: orch.yaml providers.{name} pins plugin `{id}`, but it is provided by {}; fix the pin or install `{id}`",
                    listing()
                )
            })?,
        None if claims.len() > 1 => {
            return Err(format!(
                "type `{name}` is provided by {}; orch refuses it rather than hand a model's globalArguments (secrets included) to the wrong one. Remove one bundle, or pin the provider in orch.yaml: `providers: {{ {name}: <plugin id> }}`",
                listing()
            ));
        }
        None => 0,
    };
    // The chosen claim is moved out, not copied: a type's description holds all its schemas.
    let Some((plugin, description)) = claims.into_iter().nth(chosen) else {
        return Err(format!("type `{name}`: no plugin provides it"));
    };
    match description {
        Ok(held) => Ok(Slot::new(plugin, held)),
        Err(problem) => Err(format!(
            "{} declares type `{name}`, but its describe() output was refused: {problem}",
            plugin.describe_where()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_type_whose_cached_text_is_unreadable_is_refused_when_used_naming_what_to_do() {
        let manifest = crate::builtin::manifest();
        let limits = EffectiveLimits::new(&manifest.id, &manifest.limits, None, None);
        let plugin = Arc::new(InstalledPlugin {
            manifest,
            dir: PathBuf::from("/repo/plugins/x"),
            limits,
            builtin: false,
            compiled: OnceLock::new(),
            claimed: OnceLock::new(),
        });
        let slot = Slot::new(plugin, Held::Text(Arc::from(&b"{\"name\": 1}"[..]), 0..11));
        let err = slot.provided("x/y").err().unwrap();
        assert!(
            err.starts_with("type `x/y` of plugin `orch` (/repo/plugins/x)"),
            "{err}"
        );
        assert!(err.contains("does not decode"), "{err}");
        assert!(err.contains("delete the repo's `.orch/describe`"), "{err}");
        // Asked again, the same answer, without decoding again.
        assert_eq!(slot.provided("x/y").err().unwrap(), err);
    }

    #[test]
    fn a_directory_reached_twice_is_listed_once() {
        let dir = tempfile::tempdir().unwrap();
        let plugins = dir.path().join("plugins");
        std::fs::create_dir_all(plugins.join("a")).unwrap();
        std::fs::write(plugins.join("a/plugin.toml"), "").unwrap();
        let again = dir.path().join("plugins/../plugins");
        let found = find_bundles(&[plugins.clone(), again, plugins]);
        assert_eq!(found.len(), 1, "{found:?}");
    }
}
