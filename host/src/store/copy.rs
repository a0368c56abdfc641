//! `orch datastore copy`: the whole history of one store into another, empty one (redb to
//! PostgreSQL or back), every version with its number, provenance, tags and tombstones, the
//! last sightings and every run record.

use serde::Serialize;

use super::access::{LAST_SEEN, LATEST, RESOURCES, ResourceStore, VERSIONS_BY_TIME};
use super::error::StoreError;
use super::resources::describe;
use super::types::{LastSeen, ResourceVersion};

/// One resource's stored history: its versions, oldest first (with any gaps `orch data gc`
/// left), and its last sighting.
#[derive(Clone, Debug)]
pub struct ResourceHistory {
    /// Every stored version, oldest first; the last is the resource's latest.
    pub versions: Vec<ResourceVersion>,
    /// The last sighting, if any.
    pub last_seen: Option<LastSeen>,
}

/// What a copy moved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CopyCount {
    /// Resources.
    pub resources: u64,
    /// Versions.
    pub versions: u64,
    /// Run records.
    pub runs: u64,
}

impl ResourceStore {
    /// Copies everything this store holds into `to`, which must be empty. The resources go in
    /// one transaction, then the runs one by one; a copy that fails part-way leaves `to`
    /// non-empty, so empty it (a fresh database or file) before trying again.
    pub fn copy_into(&self, to: &ResourceStore) -> Result<CopyCount, StoreError> {
        if !to.list(None)?.is_empty() || !to.list_runs(1)?.is_empty() {
            return Err(StoreError::NotEmpty {
                path: to.path().to_path_buf(),
            });
        }
        let mut count = CopyCount::default();
        let mut histories = Vec::new();
        for key in self.list(None)? {
            let versions = self.versions(&key.model, &key.spec, &key.name)?;
            let last_seen = self.last_seen(&key.model, &key.spec, &key.name)?;
            count.resources += 1;
            count.versions += versions.len() as u64;
            histories.push(ResourceHistory {
                versions,
                last_seen,
            });
        }
        to.import_histories(&histories)?;
        let mut runs = self.list_runs(usize::MAX)?;
        runs.reverse();
        for run in &runs {
            to.put_run(run)?;
            count.runs += 1;
        }
        Ok(count)
    }

    /// Stores these histories as they are, in one transaction: version numbers, provenance
    /// and sightings are kept, and each resource's latest is its last version. For a copy into
    /// an empty store; a version that already exists fails the whole import.
    pub fn import_histories(&self, histories: &[ResourceHistory]) -> Result<(), StoreError> {
        if histories.iter().all(|h| h.versions.is_empty()) {
            return Ok(());
        }
        if let Some(pg) = self.pg_backend() {
            return pg.import_histories(histories);
        }
        self.write(|txn| {
            let mut latest = txn.open_table(LATEST).map_err(|e| self.database_error(e))?;
            let mut resources = txn
                .open_table(RESOURCES)
                .map_err(|e| self.database_error(e))?;
            let mut seen = txn
                .open_table(LAST_SEEN)
                .map_err(|e| self.database_error(e))?;
            let mut by_time = txn
                .open_table(VERSIONS_BY_TIME)
                .map_err(|e| self.database_error(e))?;
            for history in histories {
                let Some(newest) = history.versions.last() else {
                    continue;
                };
                let (model, spec, name) = (
                    newest.model.as_str(),
                    newest.spec.as_str(),
                    newest.name.as_str(),
                );
                for v in &history.versions {
                    let record = describe(model, spec, name, v.version);
                    let bytes = serde_json::to_vec(v).map_err(|source| StoreError::Encode {
                        record: record.clone(),
                        source,
                    })?;
                    let existed = resources
                        .insert((model, spec, name, v.version), bytes.as_slice())
                        .map_err(|e| self.database_error(e))?
                        .is_some();
                    if existed {
                        return Err(StoreError::VersionExists {
                            path: self.path().to_path_buf(),
                            record,
                        });
                    }
                    by_time
                        .insert(
                            (v.provenance.time.as_str(), model, spec, name, v.version),
                            v.provenance.run_id.as_str(),
                        )
                        .map_err(|e| self.database_error(e))?;
                }
                latest
                    .insert((model, spec, name), newest.version)
                    .map_err(|e| self.database_error(e))?;
                if let Some(s) = &history.last_seen {
                    seen.insert(
                        (model, spec, name),
                        (
                            s.run_id.as_str(),
                            s.step.as_str(),
                            s.time.as_str(),
                            s.version,
                        ),
                    )
                    .map_err(|e| self.database_error(e))?;
                }
            }
            Ok(())
        })
    }
}
