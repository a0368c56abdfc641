//! The CEL evaluator's view of the data: latest resources from the store, secrets from the vault,
//! repository files.

use crate::expr::{DataSource, ResourceData};
use crate::repo::{Lifetime, Repo};
use crate::store::{ResourceStore, ResourceVersion};
use crate::vault::LocalVault;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

/// Reads the store and vault for expression evaluation.
pub struct StoreDataSource {
    store: ResourceStore,
    vault: Arc<LocalVault>,
    models: Vec<String>,
    /// (model, spec) → the definition's `lifetime` for it.
    lifetimes: BTreeMap<(String, String), Lifetime>,
    /// The run evaluating, for `ephemeral` resources.
    run_id: Option<String>,
    /// The repository root, for `file.contents`.
    root: PathBuf,
}

impl StoreDataSource {
    /// A data source over the repo's store and vault.
    pub fn new(store: ResourceStore, vault: Arc<LocalVault>, repo: &Repo) -> Self {
        StoreDataSource {
            store,
            vault,
            models: repo.models.keys().cloned().collect(),
            lifetimes: repo
                .models
                .values()
                .flat_map(|d| {
                    d.resources.iter().filter_map(|(spec, policy)| {
                        let lifetime = policy.lifetime.clone()?;
                        Some(((d.name.clone(), spec.clone()), lifetime))
                    })
                })
                .collect(),
            run_id: None,
            root: repo.root.clone(),
        }
    }

    /// The same source, as seen from inside run `run_id` (its `ephemeral` resources resolve).
    pub fn in_run(mut self, run_id: &str) -> Self {
        self.run_id = Some(run_id.to_string());
        self
    }

    /// Why `v` no longer resolves, if its spec's lifetime has ended.
    fn expired(&self, v: &ResourceVersion) -> Option<String> {
        let lifetime = self.lifetimes.get(&(v.model.clone(), v.spec.clone()))?;
        let now = time::OffsetDateTime::now_utc();
        let (time, run) = (&v.provenance.time, &v.provenance.run_id);
        if !lifetime.ended(time, run, self.run_id.as_deref(), now) {
            return None;
        }
        Some(match lifetime {
            Lifetime::Ephemeral => format!(
                "from expressions: it expired (lifetime `ephemeral`: it resolves only in run {run}, which wrote it at {time}); `orch data get` still shows it"
            ),
            Lifetime::Seconds(_) => format!(
                "from expressions: it expired (lifetime {}: its latest version was written at {time} by run {run}); `orch data get` still shows it",
                lifetime.describe()
            ),
        })
    }

    fn resource_data(&self, v: ResourceVersion) -> ResourceData {
        let expired = if v.retired { None } else { self.expired(&v) };
        ResourceData {
            retired: v
                .retired
                .then(|| {
                    format!(
                        "by run {} at {} (step `{}`, method `{}`)",
                        v.provenance.run_id,
                        v.provenance.time,
                        v.provenance.step,
                        v.provenance.method
                    )
                })
                .or(expired),
            spec: v.spec,
            name: v.name,
            version: v.version,
            written_at: v.provenance.time,
            attributes: v.attributes,
        }
    }
}

impl DataSource for StoreDataSource {
    fn model_exists(&self, model: &str) -> bool {
        self.models.iter().any(|m| m == model)
    }

    fn model_names(&self) -> Vec<String> {
        self.models.clone()
    }

    fn model_resources(&self, model: &str) -> Result<Vec<ResourceData>, String> {
        let mut loaded = self
            .store
            .latest_for_models(&[model])
            .map_err(|e| e.to_string())?;
        Ok(loaded
            .remove(model)
            .unwrap_or_default()
            .into_iter()
            .map(|v| self.resource_data(v))
            .collect())
    }

    fn find_by_tag(&self, key: &str, value: &str) -> Result<Vec<(String, ResourceData)>, String> {
        let live = self.store.latest_live(None).map_err(|e| e.to_string())?;
        Ok(live
            .into_iter()
            .filter(|v| v.tags.get(key).map(String::as_str) == Some(value))
            .map(|v| (v.model.clone(), self.resource_data(v)))
            .filter(|(_, r)| r.retired.is_none())
            .collect())
    }

    fn vault_get(&self, vault: &str, key: &str) -> Result<Option<String>, String> {
        self.vault.get(vault, key).map_err(|e| e.to_string())
    }

    fn file_contents(&self, path: &str) -> Result<String, String> {
        super::read_repo_file(&self.root, path, super::MAX_REPO_FILE_BYTES)
    }
}
