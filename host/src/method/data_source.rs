//! The CEL evaluator's view of the data: latest resources from the store, secrets from the vault.

use crate::expr::{DataSource, ResourceData};
use crate::repo::Repo;
use crate::store::ResourceStore;
use crate::vault::LocalVault;
use std::sync::Arc;

/// Reads the store and vault for expression evaluation.
pub struct StoreDataSource {
    store: ResourceStore,
    vault: Arc<LocalVault>,
    models: Vec<String>,
}

impl StoreDataSource {
    /// A data source over the repo's store and vault.
    pub fn new(store: ResourceStore, vault: Arc<LocalVault>, repo: &Repo) -> Self {
        StoreDataSource {
            store,
            vault,
            models: repo.models.keys().cloned().collect(),
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
            .map(|v| ResourceData {
                spec: v.spec,
                name: v.name,
                version: v.version,
                retired: v.retired.then(|| {
                    format!(
                        "by run {} at {} (step `{}`, method `{}`)",
                        v.provenance.run_id,
                        v.provenance.time,
                        v.provenance.step,
                        v.provenance.method
                    )
                }),
                written_at: v.provenance.time,
                attributes: v.attributes,
            })
            .collect())
    }

    fn vault_get(&self, vault: &str, key: &str) -> Result<Option<String>, String> {
        self.vault.get(vault, key).map_err(|e| e.to_string())
    }
}
