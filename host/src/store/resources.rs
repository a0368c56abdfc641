use std::collections::{BTreeMap, HashMap};

use redb::{ReadOnlyTable, ReadableTable};
use serde::Serialize;
use serde_json::Value;

use super::access::{LAST_SEEN, LATEST, RESOURCES, ResourceStore, VERSIONS_BY_TIME};
use super::error::StoreError;
use super::types::{
    PendingWrite, Provenance, QueueClaim, ResourceKey, ResourceSummary, ResourceVersion, Tags,
};

pub(super) type ResourcesTable =
    ReadOnlyTable<(&'static str, &'static str, &'static str, u64), &'static [u8]>;
type LatestTable = ReadOnlyTable<(&'static str, &'static str, &'static str), u64>;

/// The stored shape of a `ResourceVersion` (in redb and in PostgreSQL alike), borrowed so
/// large attribute documents are not cloned to encode them.
#[derive(Serialize)]
pub(super) struct VersionRecord<'a> {
    pub(super) model: &'a str,
    pub(super) spec: &'a str,
    pub(super) name: &'a str,
    pub(super) version: u64,
    pub(super) attributes: &'a Value,
    pub(super) provenance: &'a Provenance,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub(super) retired: bool,
    #[serde(skip_serializing_if = "Tags::is_empty")]
    pub(super) tags: &'a Tags,
}

pub(super) fn describe(model: &str, spec: &str, name: &str, version: u64) -> String {
    format!("resource {model}/{spec}/{name}@v{version}")
}

impl ResourceStore {
    /// Commit a method's writes in one transaction; returns the versions assigned, in order. Several writes to the same (spec,name) in one batch get consecutive versions.
    ///
    /// Every write also records when its resource was last seen, in the same transaction, and
    /// a stored version is indexed by its commit time for `orch data changes`. A sighting
    /// ([`PendingWrite::seen`], a write that changed only volatile attributes) stores no
    /// version and returns the version it matched; a tombstone is not a sighting.
    pub fn commit_writes(
        &self,
        model: &str,
        provenance: &Provenance,
        writes: &[PendingWrite],
    ) -> Result<Vec<u64>, StoreError> {
        self.commit_tagged_writes(model, provenance, &Tags::new(), writes)
    }

    /// [`ResourceStore::commit_writes`], storing `tags` on every version written.
    pub fn commit_tagged_writes(
        &self,
        model: &str,
        provenance: &Provenance,
        tags: &Tags,
        writes: &[PendingWrite],
    ) -> Result<Vec<u64>, StoreError> {
        self.commit_claimed_writes(model, provenance, tags, writes, None)
    }

    /// [`ResourceStore::commit_tagged_writes`] for a worker's queued step: with a `claim`, the
    /// transaction first marks the step's queue row committed, and commits nothing
    /// ([`StoreError::LeaseLost`]) when the step is no longer the worker's. So a worker that
    /// lost its lease never adds versions beside the ones of the worker that ran the step again.
    pub fn commit_claimed_writes(
        &self,
        model: &str,
        provenance: &Provenance,
        tags: &Tags,
        writes: &[PendingWrite],
        claim: Option<&QueueClaim>,
    ) -> Result<Vec<u64>, StoreError> {
        if writes.is_empty() {
            return Ok(Vec::new());
        }
        validate_writes(model, writes)?;
        if let Some(pg) = self.pg_backend() {
            return pg.commit_writes(model, provenance, tags, writes, claim.cloned());
        }
        if claim.is_some() {
            return Err(StoreError::Postgres {
                url: self.path().display().to_string(),
                message: "a queued step's writes need the PostgreSQL datastore".to_string(),
            });
        }
        let (run, step, time) = (
            provenance.run_id.as_str(),
            provenance.step.as_str(),
            provenance.time.as_str(),
        );
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
            let mut assigned = vec![0; writes.len()];
            // Sightings first, so a stored version of the same resource in this batch wins.
            for (slot, write) in assigned.iter_mut().zip(writes) {
                if let Some(version) = write.unchanged {
                    seen.insert(
                        (model, write.spec.as_str(), write.name.as_str()),
                        (run, step, time, version),
                    )
                    .map_err(|e| self.database_error(e))?;
                    *slot = version;
                }
            }
            for (slot, write) in assigned.iter_mut().zip(writes) {
                if write.unchanged.is_some() {
                    continue;
                }
                let (spec, name) = (write.spec.as_str(), write.name.as_str());
                let current = latest
                    .get((model, spec, name))
                    .map_err(|e| self.database_error(e))?
                    .map_or(0, |v| v.value());
                // Assigned here, under the write lock, so concurrent writers can never pick the
                // same number.
                let version = current + 1;
                let record = VersionRecord {
                    model,
                    spec,
                    name,
                    version,
                    attributes: &write.attributes,
                    provenance,
                    retired: write.retired,
                    tags,
                };
                let bytes = serde_json::to_vec(&record).map_err(|source| StoreError::Encode {
                    record: describe(model, spec, name, version),
                    source,
                })?;
                let existed = resources
                    .insert((model, spec, name, version), bytes.as_slice())
                    .map_err(|e| self.database_error(e))?
                    .is_some();
                if existed {
                    // Returning drops the transaction uncommitted, so the old version survives.
                    return Err(StoreError::VersionExists {
                        path: self.path().to_path_buf(),
                        record: describe(model, spec, name, version),
                    });
                }
                latest
                    .insert((model, spec, name), version)
                    .map_err(|e| self.database_error(e))?;
                by_time
                    .insert((time, model, spec, name, version), run)
                    .map_err(|e| self.database_error(e))?;
                if !write.retired {
                    seen.insert((model, spec, name), (run, step, time, version))
                        .map_err(|e| self.database_error(e))?;
                }
                *slot = version;
            }
            Ok(assigned)
        })
    }

    /// The newest version of one resource, if it was ever written.
    pub fn latest(
        &self,
        model: &str,
        spec: &str,
        name: &str,
    ) -> Result<Option<ResourceVersion>, StoreError> {
        if let Some(pg) = self.pg_backend() {
            return pg.latest(model, spec, name);
        }
        self.read(
            || None,
            |txn| {
                let (Some(latest), Some(resources)) = (
                    self.read_table(txn, LATEST)?,
                    self.read_table(txn, RESOURCES)?,
                ) else {
                    return Ok(None);
                };
                let Some(version) = latest
                    .get((model, spec, name))
                    .map_err(|e| self.database_error(e))?
                    .map(|v| v.value())
                else {
                    return Ok(None);
                };
                self.version_in(&resources, model, spec, name, version)
            },
        )
    }

    /// Latest version of every resource of these models, in one open.
    ///
    /// Every requested model has an entry, empty when it has no resources yet.
    pub fn latest_for_models(
        &self,
        models: &[&str],
    ) -> Result<BTreeMap<String, Vec<ResourceVersion>>, StoreError> {
        if let Some(pg) = self.pg_backend() {
            return pg.latest_for_models(models);
        }
        let empty = || {
            models
                .iter()
                .map(|m| ((*m).to_string(), Vec::new()))
                .collect::<BTreeMap<_, _>>()
        };
        self.read(empty, |txn| {
            let mut out = empty();
            let (Some(latest), Some(resources)) = (
                self.read_table(txn, LATEST)?,
                self.read_table(txn, RESOURCES)?,
            ) else {
                return Ok(out);
            };
            for (model, versions) in &mut out {
                for key in self.keys_of_model(&latest, model)? {
                    if let Some(found) =
                        self.version_in(&resources, &key.model, &key.spec, &key.name, key.latest)?
                    {
                        versions.push(found);
                    }
                }
            }
            Ok(out)
        })
    }

    /// The newest version number of every resource of `model`, keyed by (spec, name), read from
    /// the index alone: no version record is read or decoded.
    pub fn latest_versions_of(
        &self,
        model: &str,
    ) -> Result<HashMap<(String, String), u64>, StoreError> {
        if let Some(pg) = self.pg_backend() {
            return pg.latest_versions_of(model);
        }
        self.read(HashMap::new, |txn| {
            let Some(latest) = self.read_table(txn, LATEST)? else {
                return Ok(HashMap::new());
            };
            Ok(self
                .keys_of_model(&latest, model)?
                .into_iter()
                .map(|k| ((k.spec, k.name), k.latest))
                .collect())
        })
    }

    /// One specific version of a resource.
    pub fn version(
        &self,
        model: &str,
        spec: &str,
        name: &str,
        version: u64,
    ) -> Result<Option<ResourceVersion>, StoreError> {
        if let Some(pg) = self.pg_backend() {
            return pg.version(model, spec, name, version);
        }
        self.read(
            || None,
            |txn| match self.read_table(txn, RESOURCES)? {
                Some(resources) => self.version_in(&resources, model, spec, name, version),
                None => Ok(None),
            },
        )
    }

    /// Every version of one resource, oldest first.
    pub fn versions(
        &self,
        model: &str,
        spec: &str,
        name: &str,
    ) -> Result<Vec<ResourceVersion>, StoreError> {
        if let Some(pg) = self.pg_backend() {
            return pg.versions(model, spec, name);
        }
        self.read(Vec::new, |txn| {
            let Some(resources) = self.read_table(txn, RESOURCES)? else {
                return Ok(Vec::new());
            };
            let range = resources
                .range((model, spec, name, 0)..=(model, spec, name, u64::MAX))
                .map_err(|e| self.database_error(e))?;
            let mut out = Vec::new();
            for entry in range {
                let (key, value) = entry.map_err(|e| self.database_error(e))?;
                let version = key.value().3;
                out.push(self.decode(value.value(), || describe(model, spec, name, version))?);
            }
            Ok(out)
        })
    }

    /// Resources by name across specs of a model (for `orch data get <model> <name>` where spec is not given).
    pub fn find_by_name(&self, model: &str, name: &str) -> Result<Vec<ResourceKey>, StoreError> {
        if let Some(pg) = self.pg_backend() {
            return pg.find_by_name(model, name);
        }
        self.read(Vec::new, |txn| {
            let Some(latest) = self.read_table(txn, LATEST)? else {
                return Ok(Vec::new());
            };
            let mut keys = self.keys_of_model(&latest, model)?;
            keys.retain(|key| key.name == name);
            Ok(keys)
        })
    }

    /// Every resource with its newest version and when it was written, for one model or all.
    pub fn list(&self, model: Option<&str>) -> Result<Vec<ResourceSummary>, StoreError> {
        if let Some(pg) = self.pg_backend() {
            return pg.list(model);
        }
        self.read(Vec::new, |txn| {
            let (Some(latest), Some(resources)) = (
                self.read_table(txn, LATEST)?,
                self.read_table(txn, RESOURCES)?,
            ) else {
                return Ok(Vec::new());
            };
            let keys = match model {
                Some(model) => self.keys_of_model(&latest, model)?,
                None => self.all_keys(&latest)?,
            };
            let mut out = Vec::with_capacity(keys.len());
            for key in keys {
                let (written_at, retired, tags) = self
                    .version_in(&resources, &key.model, &key.spec, &key.name, key.latest)?
                    .map(|v| (v.provenance.time, v.retired, v.tags))
                    .unwrap_or_default();
                out.push(ResourceSummary {
                    model: key.model,
                    spec: key.spec,
                    name: key.name,
                    latest: key.latest,
                    written_at,
                    retired,
                    tags,
                });
            }
            Ok(out)
        })
    }

    /// The latest version of every resource (of one model, or all) that is not retired.
    pub fn latest_live(&self, model: Option<&str>) -> Result<Vec<ResourceVersion>, StoreError> {
        if let Some(pg) = self.pg_backend() {
            return pg.latest_live(model);
        }
        self.read(Vec::new, |txn| {
            let (Some(latest), Some(resources)) = (
                self.read_table(txn, LATEST)?,
                self.read_table(txn, RESOURCES)?,
            ) else {
                return Ok(Vec::new());
            };
            let keys = match model {
                Some(model) => self.keys_of_model(&latest, model)?,
                None => self.all_keys(&latest)?,
            };
            let mut out = Vec::with_capacity(keys.len());
            for key in keys {
                if let Some(found) =
                    self.version_in(&resources, &key.model, &key.spec, &key.name, key.latest)?
                    && !found.retired
                {
                    out.push(found);
                }
            }
            Ok(out)
        })
    }

    pub(super) fn version_in(
        &self,
        resources: &ResourcesTable,
        model: &str,
        spec: &str,
        name: &str,
        version: u64,
    ) -> Result<Option<ResourceVersion>, StoreError> {
        let Some(value) = resources
            .get((model, spec, name, version))
            .map_err(|e| self.database_error(e))?
        else {
            return Ok(None);
        };
        self.decode(value.value(), || describe(model, spec, name, version))
            .map(Some)
    }

    fn keys_of_model(
        &self,
        latest: &LatestTable,
        model: &str,
    ) -> Result<Vec<ResourceKey>, StoreError> {
        // Tuple keys order by their first element first, so one model's resources are one
        // contiguous run starting at the smallest (spec, name).
        let range = latest
            .range((model, "", "")..)
            .map_err(|e| self.database_error(e))?;
        let mut out = Vec::new();
        for entry in range {
            let (key, value) = entry.map_err(|e| self.database_error(e))?;
            let (found_model, spec, name) = key.value();
            if found_model != model {
                break;
            }
            out.push(ResourceKey {
                model: found_model.to_string(),
                spec: spec.to_string(),
                name: name.to_string(),
                latest: value.value(),
            });
        }
        Ok(out)
    }

    fn all_keys(&self, latest: &LatestTable) -> Result<Vec<ResourceKey>, StoreError> {
        let mut out = Vec::new();
        for entry in latest.iter().map_err(|e| self.database_error(e))? {
            let (key, value) = entry.map_err(|e| self.database_error(e))?;
            let (model, spec, name) = key.value();
            out.push(ResourceKey {
                model: model.to_string(),
                spec: spec.to_string(),
                name: name.to_string(),
                latest: value.value(),
            });
        }
        Ok(out)
    }
}

fn validate_writes(model: &str, writes: &[PendingWrite]) -> Result<(), StoreError> {
    let invalid = |reason: String| StoreError::InvalidWrite {
        model: model.to_string(),
        reason,
    };
    if model.is_empty() {
        return Err(invalid("the model name is empty".to_string()));
    }
    for write in writes {
        if write.spec.is_empty() {
            return Err(invalid(format!(
                "the write of instance {:?} has an empty spec",
                write.name
            )));
        }
        if write.name.is_empty() {
            return Err(invalid(format!(
                "a write of spec {:?} has an empty instance name",
                write.spec
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::path::PathBuf;
    use std::time::Duration;

    use serde_json::json;

    use super::super::access::StoreOptions;
    use super::super::types::now_rfc3339;
    use super::*;

    fn store_in(dir: &tempfile::TempDir) -> ResourceStore {
        ResourceStore::new(dir.path().join(".orch/data.redb"), StoreOptions::default())
    }

    fn provenance(step: &str) -> Provenance {
        Provenance {
            run_id: "0193a2b4-0000-7000-8000-000000000000".to_string(),
            step: step.to_string(),
            method: "sync".to_string(),
            time: now_rfc3339(),
        }
    }

    fn write(spec: &str, name: &str, attributes: Value) -> PendingWrite {
        PendingWrite::new(spec, name, attributes)
    }

    #[test]
    fn a_retired_resource_is_a_tombstone_version_that_latest_shows() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_in(&dir);
        let p = provenance("s");
        store
            .commit_writes("m", &p, &[write("vm", "a", json!({"id": 1}))])
            .unwrap();
        let tombstone = PendingWrite::retire("vm", "a");
        assert_eq!(store.commit_writes("m", &p, &[tombstone]).unwrap(), vec![2]);
        let latest = store.latest("m", "vm", "a").unwrap().unwrap();
        assert!(latest.retired && latest.attributes.is_null() && latest.version == 2);
        let earlier = store.latest_for_models(&["m"]).unwrap();
        assert!(earlier["m"][0].retired);
        store
            .commit_writes("m", &p, &[write("vm", "b", json!({"id": 2}))])
            .unwrap();
        let listed: Vec<(String, bool)> = store
            .list(Some("m"))
            .unwrap()
            .into_iter()
            .map(|r| (r.name, r.retired))
            .collect();
        assert_eq!(
            listed,
            vec![("a".to_string(), true), ("b".to_string(), false)]
        );
    }

    #[test]
    fn a_version_stored_before_tags_existed_reads_with_none_and_new_ones_keep_theirs() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_in(&dir);
        let p = provenance("s");
        store
            .commit_writes("m", &p, &[write("vm", "a", json!({"id": 1}))])
            .unwrap();
        let tags = Tags::from([("env".to_string(), "lab".to_string())]);
        store
            .commit_tagged_writes("m", &p, &tags, &[write("vm", "a", json!({"id": 2}))])
            .unwrap();
        let all = store.versions("m", "vm", "a").unwrap();
        assert!(all[0].tags.is_empty());
        assert_eq!(all[1].tags, tags);
        assert_eq!(store.list(Some("m")).unwrap()[0].tags, tags);
        let old = r#"{"model":"m","spec":"vm","name":"a","version":1,"attributes":{},
            "provenance":{"runId":"r","step":"s","method":"m","time":"t"}}"#;
        let read: ResourceVersion = serde_json::from_str(old).unwrap();
        assert!(read.tags.is_empty());
        assert!(!serde_json::to_string(&read).unwrap().contains("tags"));
    }

    // Version numbering, old versions, one batch and a rejected batch are in the store suite
    // that runs on redb and PostgreSQL alike (host/tests/datastore.rs).

    #[test]
    fn latest_for_models_returns_the_newest_of_each_resource_per_model() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store_in(&dir);
        let p = provenance("sync");
        store
            .commit_writes(
                "fleet",
                &p,
                &[write("vm", "web", json!(1)), write("vm", "db", json!(1))],
            )
            .expect("commit");
        store
            .commit_writes("fleet", &p, &[write("vm", "web", json!(2))])
            .expect("commit");
        store
            .commit_writes("fleet-b", &p, &[write("vm", "x", json!(1))])
            .expect("commit");
        store
            .commit_writes("proxy", &p, &[write("stream", "mc", json!(1))])
            .expect("commit");

        let got = store
            .latest_for_models(&["fleet", "proxy", "nothing"])
            .expect("latest_for_models");
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            vec!["fleet", "nothing", "proxy"]
        );
        let fleet: Vec<(&str, u64)> = got["fleet"]
            .iter()
            .map(|v| (v.name.as_str(), v.version))
            .collect();
        assert_eq!(
            fleet,
            vec![("db", 1), ("web", 2)],
            "fleet-b must not leak into fleet"
        );
        assert_eq!(got["proxy"].len(), 1);
        assert!(got["nothing"].is_empty());
    }

    #[test]
    fn find_by_name_and_list_cover_every_spec() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store_in(&dir);
        let p = provenance("sync");
        store
            .commit_writes(
                "fleet",
                &p,
                &[
                    write("vm", "web", json!(1)),
                    write("dns", "web", json!(1)),
                    write("vm", "db", json!(1)),
                ],
            )
            .expect("commit");
        store
            .commit_writes("proxy", &p, &[write("stream", "web", json!(1))])
            .expect("commit");

        let found = store.find_by_name("fleet", "web").expect("find");
        let specs: Vec<&str> = found.iter().map(|k| k.spec.as_str()).collect();
        assert_eq!(specs, vec!["dns", "vm"]);
        assert!(found.iter().all(|k| k.model == "fleet" && k.latest == 1));

        let fleet = store.list(Some("fleet")).expect("list");
        assert_eq!(fleet.len(), 3);
        assert!(fleet.iter().all(|s| s.written_at == p.time));
        assert_eq!(store.list(None).expect("list all").len(), 4);
    }

    #[test]
    fn reads_on_a_missing_file_are_empty_and_do_not_create_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store_in(&dir);
        assert_eq!(store.latest("m", "s", "n").expect("latest"), None);
        assert_eq!(store.version("m", "s", "n", 1).expect("version"), None);
        assert!(store.versions("m", "s", "n").expect("versions").is_empty());
        assert!(store.find_by_name("m", "n").expect("find").is_empty());
        assert!(store.list(None).expect("list").is_empty());
        let by_model = store.latest_for_models(&["m"]).expect("latest_for_models");
        assert!(by_model["m"].is_empty());
        assert!(store.list_runs(10).expect("runs").is_empty());
        assert_eq!(store.get_run("0193a2b4").expect("run"), None);
        assert!(!store.path().exists());
        assert!(!dir.path().join(".orch").exists());
    }

    #[test]
    fn concurrent_writers_to_one_resource_lose_no_version() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(".orch/data.redb");
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let store = ResourceStore::new(
                    path.clone(),
                    StoreOptions {
                        lock_wait: Duration::from_secs(60),
                    },
                );
                std::thread::spawn(move || {
                    let mut got = Vec::new();
                    for i in 0..25 {
                        let w = write("vm", "web", json!({"thread": t, "i": i}));
                        got.extend(store.commit_writes("fleet", &provenance("p"), &[w])?);
                    }
                    Ok::<_, StoreError>(got)
                })
            })
            .collect();
        let mut all: Vec<u64> = Vec::new();
        for thread in threads {
            all.extend(thread.join().expect("thread panicked").expect("commit"));
        }
        all.sort_unstable();
        assert_eq!(all, (1..=200).collect::<Vec<u64>>());

        let store = ResourceStore::new(path, StoreOptions::default());
        let stored = store.versions("fleet", "vm", "web").expect("versions");
        assert_eq!(stored.len(), 200);
        assert!(stored.iter().zip(1..).all(|(v, n)| v.version == n));
        assert_eq!(
            store
                .latest("fleet", "vm", "web")
                .expect("latest")
                .map(|v| v.version),
            Some(200)
        );
    }

    #[test]
    fn version_numbers_come_from_the_index_without_decoding_versions() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store_in(&dir);
        let p = provenance("sync");
        store
            .commit_writes(
                "fleet",
                &p,
                &[write("vm", "a", json!(1)), write("vm", "b", json!(2))],
            )
            .expect("seed");
        store
            .commit_writes("fleet", &p, &[write("vm", "a", json!(3))])
            .expect("second");
        store
            .commit_writes("other", &p, &[write("vm", "a", json!(4))])
            .expect("other model");
        // Damage the newest record of a: a decode of it would fail.
        store
            .write(|txn| {
                let mut resources = txn
                    .open_table(RESOURCES)
                    .map_err(|e| store.database_error(e))?;
                resources
                    .insert(("fleet", "vm", "a", 2), b"not json".as_slice())
                    .map_err(|e| store.database_error(e))?;
                Ok(())
            })
            .expect("damage");
        assert!(
            store.latest("fleet", "vm", "a").is_err(),
            "the record is damaged"
        );
        let numbers = store.latest_versions_of("fleet").expect("numbers");
        let expected: HashMap<(String, String), u64> = [
            (("vm".to_string(), "a".to_string()), 2),
            (("vm".to_string(), "b".to_string()), 1),
        ]
        .into_iter()
        .collect();
        assert_eq!(numbers, expected);
        assert!(store.latest_versions_of("none").expect("empty").is_empty());
    }

    /// The child side of `a_commit_that_returned_survives_kill_9`: commits batches of five
    /// writes until it is killed, printing each batch number once its commit returned.
    #[test]
    #[ignore = "run by a_commit_that_returned_survives_kill_9 in a child process"]
    fn kill_9_child_writer() {
        let Some(path) = std::env::var_os("ORCH_KILL_TEST_DB") else {
            return;
        };
        let store = ResourceStore::new(PathBuf::from(path), StoreOptions::default());
        let p = provenance("kill");
        let mut stdout = std::io::stdout();
        // Where the earlier, killed children left the versions.
        let base = store
            .latest_versions_of("fleet")
            .expect("numbers")
            .get(&("vm".to_string(), "r0".to_string()))
            .copied()
            .unwrap_or(0);
        for batch in 0u64.. {
            let mut writes: Vec<PendingWrite> = (0..5)
                .map(|i| {
                    write(
                        "vm",
                        &format!("r{i}"),
                        json!({"batch": batch, "pad": "x".repeat(500)}),
                    )
                })
                .collect();
            // A sighting rides in the same transaction: it must never land without the versions.
            writes.push(PendingWrite::seen("vm", "s", base + batch));
            store.commit_writes("fleet", &p, &writes).expect("commit");
            writeln!(stdout, "committed {batch}").expect("stdout");
            stdout.flush().expect("flush");
        }
    }

    #[test]
    fn a_commit_that_returned_survives_kill_9_and_no_batch_is_partial() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("data.redb");
        let mut returned = 0u64;
        for round in 0..100u64 {
            let (child, mut lines) = crate::store::kill_test::spawn_child(
                "store::resources::tests::kill_9_child_writer",
                "ORCH_KILL_TEST_DB",
                &path,
            );
            // Kill it after a varying number of returned commits, mid-way through the next.
            let mut seen = 0;
            while seen < 1 + round % 4 {
                let line = lines.next().expect("the child ended early").expect("line");
                if line.starts_with("committed ") {
                    seen += 1;
                }
            }
            crate::store::kill_test::kill_9(child);
            returned += seen;
        }
        let store = ResourceStore::new(&path, StoreOptions::default());
        let numbers = store
            .latest_versions_of("fleet")
            .expect("numbers after the kills");
        let versions: Vec<u64> = (0..5)
            .map(|i| numbers[&("vm".to_string(), format!("r{i}"))])
            .collect();
        assert!(
            versions.iter().all(|v| *v == versions[0]),
            "a batch was committed in part: {versions:?}"
        );
        assert!(
            versions[0] >= returned,
            "{returned} commits returned but only {} survived",
            versions[0]
        );
        for i in 0..5 {
            let all = store
                .versions("fleet", "vm", &format!("r{i}"))
                .expect("versions");
            assert_eq!(all.len() as u64, versions[0]);
            let seen = store
                .last_seen("fleet", "vm", &format!("r{i}"))
                .expect("last seen")
                .map(|s| s.version);
            assert_eq!(seen, Some(versions[0]), "last seen moved apart from r{i}");
        }
        // Each batch stores version n + 1 of every r and sights `s` at n.
        let sighted = store
            .last_seen("fleet", "vm", "s")
            .expect("last seen")
            .map(|s| s.version + 1);
        assert_eq!(sighted, Some(versions[0]), "a sighting committed in part");
        store
            .commit_writes(
                "fleet",
                &provenance("after"),
                &[write("vm", "r0", json!(0))],
            )
            .expect("a write after the kills");
    }

    /// Prints what one operation costs on the process-wide handle.
    #[test]
    #[ignore = "measurement, run with --ignored --nocapture"]
    fn measure_open_read_close_cost() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store_in(&dir);
        let p = provenance("sync");
        let writes: Vec<PendingWrite> = (0..100)
            .map(|i| {
                write(
                    "vm",
                    &format!("vm-{i}"),
                    json!({"vmid": i, "ip": "10.0.0.1", "status": "running"}),
                )
            })
            .collect();
        store.commit_writes("fleet", &p, &writes).expect("seed");

        let rounds = 500u32;
        let started = std::time::Instant::now();
        for i in 0..rounds {
            let name = format!("vm-{}", i % 100);
            store.latest("fleet", "vm", &name).expect("latest");
        }
        let read = started.elapsed() / rounds;

        let started = std::time::Instant::now();
        for _ in 0..rounds {
            store
                .latest_for_models(&["fleet"])
                .expect("latest_for_models");
        }
        let read_all = started.elapsed() / rounds;

        let started = std::time::Instant::now();
        let write_rounds = 100u32;
        for i in 0..write_rounds {
            store
                .commit_writes("fleet", &p, &[write("vm", "web", json!({"i": i}))])
                .expect("commit");
        }
        let commit = started.elapsed() / write_rounds;

        eprintln!("open + latest() + close:             {read:?} per call ({rounds} calls)");
        eprintln!("open + latest_for_models(100) + close: {read_all:?} per call ({rounds} calls)");
        eprintln!(
            "open + commit 1 write (fsync) + close:  {commit:?} per call ({write_rounds} calls)"
        );
    }
}
