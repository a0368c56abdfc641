//! Finds installed plugin bundles, loads them once and maps type names to plugins.

use super::{LoadedPlugin, PluginRuntime, RuntimeError, TypeDescription};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One model type and the plugin that provides it.
#[derive(Clone)]
pub struct ProvidedType {
    /// The plugin.
    pub plugin: Arc<LoadedPlugin>,
    /// What describe() said about the type.
    pub description: Arc<TypeDescription>,
}

/// Every plugin found on the repo's plugin path.
pub struct PluginRegistry {
    /// The shared runtime.
    pub runtime: Arc<PluginRuntime>,
    plugins: Vec<Arc<LoadedPlugin>>,
    types: BTreeMap<String, ProvidedType>,
    problems: Vec<String>,
}

/// Bundle directories (holding `plugin.toml`) directly under each search directory.
pub fn find_bundles(search: &[PathBuf]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for dir in search {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        let mut dirs: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.join("plugin.toml").is_file())
            .collect();
        dirs.sort();
        found.extend(dirs);
    }
    found
}

impl PluginRegistry {
    /// Loads and describes every bundle under `search`. A broken bundle does not stop the
    /// others; its problem is kept and shown when one of its types is needed.
    pub async fn load(runtime: Arc<PluginRuntime>, search: &[PathBuf]) -> Self {
        let mut registry = PluginRegistry {
            runtime,
            plugins: Vec::new(),
            types: BTreeMap::new(),
            problems: Vec::new(),
        };
        for dir in find_bundles(search) {
            if let Err(e) = registry.add(&dir).await {
                registry.problems.push(e.to_string());
            }
        }
        registry
    }

    /// Loads one bundle and registers its types.
    pub async fn add(&mut self, dir: &Path) -> Result<Arc<LoadedPlugin>, RuntimeError> {
        let plugin = Arc::new(self.runtime.load(dir)?);
        let types = self.runtime.describe(&plugin).await?;
        for t in types {
            if let Some(existing) = self.types.get(&t.name) {
                return Err(RuntimeError::Describe {
                    plugin: plugin.manifest.id.clone(),
                    message: format!(
                        "type `{}`, which plugin `{}` already provides; remove one of the two bundles",
                        t.name, existing.plugin.manifest.id
                    ),
                });
            }
            self.types.insert(
                t.name.clone(),
                ProvidedType {
                    plugin: plugin.clone(),
                    description: Arc::new(t),
                },
            );
        }
        self.plugins.push(plugin.clone());
        Ok(plugin)
    }

    /// The type named `name`, or an error that lists what is installed and what failed to load.
    pub fn get(&self, name: &str) -> Result<&ProvidedType, String> {
        if let Some(t) = self.types.get(name) {
            return Ok(t);
        }
        let mut msg = format!("unknown model type `{name}`");
        if let Some(best) = crate::suggest::closest(name, self.types.keys().map(String::as_str)) {
            msg.push_str(&format!("; did you mean `{best}`?"));
        }
        if self.types.is_empty() {
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

    /// All types, by name.
    pub fn types(&self) -> impl Iterator<Item = &ProvidedType> {
        self.types.values()
    }

    /// All loaded plugins.
    pub fn plugins(&self) -> &[Arc<LoadedPlugin>] {
        &self.plugins
    }

    /// Bundles that failed to load, with why.
    pub fn problems(&self) -> &[String] {
        &self.problems
    }
}
