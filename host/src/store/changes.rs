//! When a resource was last seen, and which versions a window of time or runs wrote: the two
//! indexes `commit_writes` keeps beside the versions (layout 3).

use redb::{ReadableTable, WriteTransaction};
use serde::Deserialize;

use super::access::{LAST_SEEN, RESOURCES, ResourceStore, VERSIONS_BY_TIME};
use super::error::StoreError;
use super::resources::describe;
use super::types::{
    ChangeKind, ChangeWindow, LastSeen, Provenance, ResourceChange, ResourceVersion,
};

/// The part of a stored version the index rebuild needs; the attributes are skipped, not kept.
#[derive(Deserialize)]
struct VersionHeader {
    provenance: Provenance,
    #[serde(default)]
    retired: bool,
}

impl ResourceStore {
    /// When `model`'s `spec`/`name` was last seen by a write, if ever.
    pub fn last_seen(
        &self,
        model: &str,
        spec: &str,
        name: &str,
    ) -> Result<Option<LastSeen>, StoreError> {
        if let Some(pg) = self.pg_backend() {
            return pg.last_seen(model, spec, name);
        }
        self.read(
            || None,
            |txn| {
                let Some(seen) = self.read_table(txn, LAST_SEEN)? else {
                    return Ok(None);
                };
                Ok(seen
                    .get((model, spec, name))
                    .map_err(|e| self.database_error(e))?
                    .map(|v| {
                        let (run_id, step, time, version) = v.value();
                        LastSeen {
                            run_id: run_id.to_string(),
                            step: step.to_string(),
                            time: time.to_string(),
                            version,
                        }
                    }))
            },
        )
    }

    /// Every version the window holds, newest first, each with what it did and the attributes
    /// of the version before it. Reads the commit-time index from `window.since` on, and only
    /// the versions it names (and their predecessors).
    pub fn changes(&self, window: &ChangeWindow) -> Result<Vec<ResourceChange>, StoreError> {
        if let Some(pg) = self.pg_backend() {
            return pg.changes(window);
        }
        self.read(Vec::new, |txn| {
            let (Some(index), Some(resources)) = (
                self.read_table(txn, VERSIONS_BY_TIME)?,
                self.read_table(txn, RESOURCES)?,
            ) else {
                return Ok(Vec::new());
            };
            let mut out = Vec::new();
            let range = index
                .range((window.since.as_str(), "", "", "", 0)..)
                .map_err(|e| self.database_error(e))?;
            for entry in range {
                let (key, run) = entry.map_err(|e| self.database_error(e))?;
                let (_, model, spec, name, version) = key.value();
                if window.model.as_deref().is_some_and(|m| m != model) {
                    continue;
                }
                if let Some(after) = &window.after_run
                    && run.value() <= after.as_str()
                {
                    continue;
                }
                let Some(found) = self.version_in(&resources, model, spec, name, version)? else {
                    continue;
                };
                // The nearest older version: `orch data gc` may have deleted the one just before.
                let previous = match resources
                    .range((model, spec, name, 0)..(model, spec, name, version))
                    .map_err(|e| self.database_error(e))?
                    .next_back()
                {
                    Some(entry) => {
                        let (key, value) = entry.map_err(|e| self.database_error(e))?;
                        let v = key.value().3;
                        Some(
                            self.decode::<super::types::ResourceVersion>(value.value(), || {
                                super::resources::describe(model, spec, name, v)
                            })?,
                        )
                    }
                    None => None,
                };
                out.push(super::changes::change_of(found, previous));
            }
            out.reverse();
            Ok(out)
        })
    }

    /// Fills `last_seen` and `versions_by_time` from every stored version (the upgrade to
    /// layout 3). A version that does not decode is left out of both, with a warning.
    pub(super) fn rebuild_change_index(&self, txn: &WriteTransaction) -> Result<(), StoreError> {
        let resources = txn
            .open_table(RESOURCES)
            .map_err(|e| self.database_error(e))?;
        let mut seen = txn
            .open_table(LAST_SEEN)
            .map_err(|e| self.database_error(e))?;
        let mut by_time = txn
            .open_table(VERSIONS_BY_TIME)
            .map_err(|e| self.database_error(e))?;
        let mut indexed = 0u64;
        for entry in resources.iter().map_err(|e| self.database_error(e))? {
            let (key, value) = entry.map_err(|e| self.database_error(e))?;
            let (model, spec, name, version) = key.value();
            let header: VersionHeader =
                match self.decode(value.value(), || describe(model, spec, name, version)) {
                    Ok(header) => header,
                    Err(error) => {
                        tracing::warn!(%error, "left out of `orch data changes`");
                        continue;
                    }
                };
            let p = &header.provenance;
            by_time
                .insert(
                    (p.time.as_str(), model, spec, name, version),
                    p.run_id.as_str(),
                )
                .map_err(|e| self.database_error(e))?;
            // Versions come oldest first, so the last live one is the last sighting.
            if !header.retired {
                seen.insert(
                    (model, spec, name),
                    (p.run_id.as_str(), p.step.as_str(), p.time.as_str(), version),
                )
                .map_err(|e| self.database_error(e))?;
            }
            indexed += 1;
        }
        tracing::info!("indexed {indexed} resource versions by commit time");
        Ok(())
    }
}

/// The change `found` makes, given the nearest older version still stored (`orch data gc` may
/// have deleted the one just before): retired, changed from a live version, or appeared.
pub(super) fn change_of(
    found: ResourceVersion,
    previous: Option<ResourceVersion>,
) -> ResourceChange {
    let (kind, previous) = match previous {
        _ if found.retired => (ChangeKind::Retired, None),
        Some(p) if !p.retired => (ChangeKind::Changed, Some(p.attributes)),
        _ => (ChangeKind::Appeared, None),
    };
    ResourceChange {
        version: found,
        kind,
        previous,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::super::access::{LAYOUT_KEY, LAYOUT_VERSION, META};
    use super::super::types::PendingWrite;
    use super::super::{StoreOptions, now_rfc3339};
    use super::*;

    fn store_in(dir: &tempfile::TempDir) -> ResourceStore {
        ResourceStore::new(dir.path().join(".orch/data.redb"), StoreOptions::default())
    }

    fn provenance(run: &str, step: &str, time: &str) -> Provenance {
        Provenance {
            run_id: run.to_string(),
            step: step.to_string(),
            method: "sync".to_string(),
            time: time.to_string(),
        }
    }

    fn write(name: &str, attributes: Value) -> PendingWrite {
        PendingWrite::new("vm", name, attributes)
    }

    fn seen_of(store: &ResourceStore, name: &str) -> Option<(String, String, u64)> {
        store
            .last_seen("fleet", "vm", name)
            .expect("last seen")
            .map(|s| (s.run_id, s.time, s.version))
    }

    #[test]
    fn every_write_overwrites_last_seen_and_a_sighting_stores_no_version() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store_in(&dir);
        assert_eq!(seen_of(&store, "a"), None);
        let t1 = "2026-11-30T10:00:00.000Z";
        store
            .commit_writes(
                "fleet",
                &provenance("r1", "sync", t1),
                &[write("a", json!({"s": 1}))],
            )
            .expect("first");
        assert_eq!(seen_of(&store, "a"), Some(("r1".into(), t1.into(), 1)));
        // A sync that saw it unchanged: no version, but the sighting moves.
        let t2 = "2026-11-30T11:00:00.000Z";
        let got = store
            .commit_writes(
                "fleet",
                &provenance("r2", "sync", t2),
                &[PendingWrite::seen("vm", "a", 1), write("b", json!(1))],
            )
            .expect("sighting");
        assert_eq!(got, vec![1, 1]);
        assert_eq!(
            store.versions("fleet", "vm", "a").expect("versions").len(),
            1
        );
        assert_eq!(seen_of(&store, "a"), Some(("r2".into(), t2.into(), 1)));
        // A sighting and a version of the same resource in one batch: the version wins,
        // whatever the order.
        let t3 = "2026-11-30T12:00:00.000Z";
        let got = store
            .commit_writes(
                "fleet",
                &provenance("r3", "sync", t3),
                &[
                    write("a", json!({"s": 2})),
                    PendingWrite::seen("vm", "a", 1),
                ],
            )
            .expect("both");
        assert_eq!(got, vec![2, 1]);
        assert_eq!(seen_of(&store, "a"), Some(("r3".into(), t3.into(), 2)));
        // A tombstone is not a sighting.
        store
            .commit_writes(
                "fleet",
                &provenance("r4", "sync", "2026-11-30T13:00:00.000Z"),
                &[PendingWrite::retire("vm", "a")],
            )
            .expect("retire");
        assert_eq!(seen_of(&store, "a"), Some(("r3".into(), t3.into(), 2)));
    }

    /// a: appears (r1), changes (r2), is retired (r3), comes back (r4); b appears in r2.
    fn history(store: &ResourceStore) {
        let at = |h: u32| format!("2026-11-30T{h:02}:00:00.000Z");
        let commit = |run: &str, h: u32, writes: &[PendingWrite]| {
            store
                .commit_writes("fleet", &provenance(run, "sync", &at(h)), writes)
                .expect("commit");
        };
        commit("r1", 1, &[write("a", json!({"ip": "10.0.0.1"}))]);
        commit(
            "r2",
            2,
            &[write("a", json!({"ip": "10.0.0.2"})), write("b", json!({}))],
        );
        commit("r3", 3, &[PendingWrite::retire("vm", "a")]);
        commit("r4", 4, &[write("a", json!({"ip": "10.0.0.3"}))]);
        store
            .commit_writes(
                "other",
                &provenance("r4", "sync", &at(4)),
                &[write("x", json!(1))],
            )
            .expect("other model");
    }

    fn kinds(changes: &[ResourceChange]) -> Vec<(String, u64, &'static str)> {
        changes
            .iter()
            .map(|c| (c.version.name.clone(), c.version.version, c.kind.as_str()))
            .collect()
    }

    #[test]
    fn the_index_gives_appeared_changed_and_retired_newest_first_within_the_window() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store_in(&dir);
        history(&store);
        let fleet = |since: &str, after: Option<&str>| ChangeWindow {
            since: since.to_string(),
            after_run: after.map(String::from),
            model: Some("fleet".to_string()),
        };
        let all = store.changes(&fleet("", None)).expect("changes");
        assert_eq!(
            kinds(&all),
            vec![
                ("a".into(), 4, "appeared"),
                ("a".into(), 3, "retired"),
                ("b".into(), 1, "appeared"),
                ("a".into(), 2, "changed"),
                ("a".into(), 1, "appeared"),
            ]
        );
        assert_eq!(all[3].previous, Some(json!({"ip": "10.0.0.1"})));
        let since = store
            .changes(&fleet("2026-11-30T02:30:00.000Z", None))
            .expect("by time");
        assert_eq!(
            kinds(&since),
            vec![("a".into(), 4, "appeared"), ("a".into(), 3, "retired")]
        );
        // After run r2: only what runs started later wrote, however far back the time bound.
        let after = store.changes(&fleet("", Some("r2"))).expect("by run");
        assert_eq!(kinds(&after), kinds(&since));
        let everything = store
            .changes(&ChangeWindow::default())
            .expect("every model");
        assert_eq!(everything.len(), 6);
        assert_eq!(everything[0].version.model, "other");
    }

    #[test]
    fn an_old_layout_store_is_upgraded_in_place_with_both_indexes_built() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store_in(&dir);
        history(&store);
        let expected = kinds(&store.changes(&ChangeWindow::default()).expect("changes"));
        let expected_seen = seen_of(&store, "a");
        let path = store.path().to_path_buf();
        drop(store);
        // Make it a layout-2 file: no indexes, layout 2 recorded.
        {
            let db = redb::Database::create(&path).expect("open");
            let txn = db.begin_write().expect("txn");
            txn.delete_table(LAST_SEEN).expect("drop last_seen");
            txn.delete_table(VERSIONS_BY_TIME).expect("drop index");
            txn.open_table(META)
                .expect("meta")
                .insert(LAYOUT_KEY, 2)
                .expect("layout");
            txn.commit().expect("commit");
        }
        let store = ResourceStore::new(&path, StoreOptions::default());
        assert_eq!(
            kinds(&store.changes(&ChangeWindow::default()).expect("changes")),
            expected
        );
        assert_eq!(seen_of(&store, "a"), expected_seen);
        assert_eq!(
            expected_seen.map(|s| s.2),
            Some(4),
            "the last live version is the last sighting"
        );
        let layout = store
            .read(
                || None,
                |txn| {
                    let meta = store.read_table(txn, META)?.expect("meta");
                    Ok(meta
                        .get(LAYOUT_KEY)
                        .map_err(|e| store.database_error(e))?
                        .map(|v| v.value()))
                },
            )
            .expect("layout");
        assert_eq!(layout, Some(LAYOUT_VERSION));
        // And the store keeps working: a new write is indexed.
        store
            .commit_writes(
                "fleet",
                &provenance("r5", "sync", &now_rfc3339()),
                &[write("c", json!(1))],
            )
            .expect("write after upgrade");
        let after = store
            .changes(&ChangeWindow {
                after_run: Some("r4".into()),
                ..ChangeWindow::default()
            })
            .expect("changes");
        assert_eq!(kinds(&after), vec![("c".into(), 1, "appeared")]);
    }

    /// Prints what last-seen costs a sync and what `changes` costs over a long history:
    /// 100 syncs of 1,000 resources, 10 of which change each time.
    #[test]
    #[ignore = "measurement, run with --ignored --nocapture"]
    fn measure_changes_over_a_hundred_syncs_of_a_thousand() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store_in(&dir);
        let doc = |i: usize, sync: usize| {
            json!({"vmid": i, "status": if i % 100 == sync % 100 { "stopped" } else { "running" },
                   "sync": if i % 100 == sync % 100 { sync } else { 0 }, "pad": "x".repeat(200)})
        };
        let seed: Vec<PendingWrite> = (0..1000)
            .map(|i| write(&format!("vm-{i}"), doc(i, 1000)))
            .collect();
        let run_id = |n: usize| format!("01900000-0000-7000-8000-{n:012}");
        store
            .commit_writes(
                "fleet",
                &provenance(&run_id(0), "sync", &now_rfc3339()),
                &seed,
            )
            .expect("seed");
        let mut sync_time = std::time::Duration::ZERO;
        let mut versions_only = std::time::Duration::ZERO;
        for sync in 1..=100usize {
            let writes: Vec<PendingWrite> = (0..1000)
                .map(|i| {
                    if i % 100 == sync % 100 || i % 100 == (sync + 99) % 100 {
                        write(&format!("vm-{i}"), doc(i, sync))
                    } else {
                        PendingWrite::seen("vm", format!("vm-{i}"), 1)
                    }
                })
                .collect();
            let p = provenance(&run_id(sync), "sync", &now_rfc3339());
            let started = std::time::Instant::now();
            store.commit_writes("fleet", &p, &writes).expect("sync");
            sync_time += started.elapsed();
            // The same sync's versions alone, as a store without sightings committed them.
            let changed: Vec<PendingWrite> = writes
                .into_iter()
                .filter(|w| w.unchanged.is_none())
                .collect();
            let started = std::time::Instant::now();
            store
                .commit_writes("other", &p, &changed)
                .expect("versions only");
            versions_only += started.elapsed();
        }
        eprintln!(
            "commit of the same sync's ~20 versions alone: {:?}",
            versions_only / 100
        );
        let started = std::time::Instant::now();
        let last = store
            .changes(&ChangeWindow {
                since: String::new(),
                after_run: Some(run_id(99)),
                model: Some("fleet".into()),
            })
            .expect("changes");
        let last_run = started.elapsed();
        let started = std::time::Instant::now();
        let all = store
            .changes(&ChangeWindow {
                model: Some("fleet".into()),
                ..ChangeWindow::default()
            })
            .expect("changes");
        let whole = started.elapsed();
        eprintln!(
            "commit of one sync (about 20 versions + 980 sightings): {:?}",
            sync_time / 100
        );
        eprintln!(
            "changes after run 99 (time bound from start): {} versions in {last_run:?}",
            last.len()
        );
        eprintln!(
            "changes over the whole history: {} versions in {whole:?}",
            all.len()
        );
    }
}
