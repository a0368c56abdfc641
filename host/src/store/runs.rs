use redb::{ReadableTable, TableDefinition, WriteTransaction};

use super::access::{RUNS, ResourceStore};
use super::error::StoreError;
use super::types::{RunOwner, RunRecord, RunStatus, RunSummary};

/// Run id → JSON of a `RunSummary`, written with every run record, so listing runs decodes a
/// few hundred bytes per run instead of the whole record with its steps and events.
pub(super) const RUN_SUMMARIES: TableDefinition<&str, &[u8]> =
    TableDefinition::new("run_summaries");

/// Runs recorded as `running`, with their owner: a small index, so finding abandoned runs does
/// not read every run record.
pub(super) const ACTIVE_RUNS: TableDefinition<&str, &[u8]> = TableDefinition::new("active_runs");

/// Shorter prefixes are too likely to match by accident, so they must be exact ids.
const MIN_PREFIX_LEN: usize = 6;
/// How many candidates an ambiguity error lists.
const AMBIGUOUS_SHOWN: usize = 5;

impl ResourceStore {
    /// Insert or replace a run record by its id.
    pub fn put_run(&self, run: &RunRecord) -> Result<(), StoreError> {
        if let Some(pg) = self.pg_backend() {
            return pg.put_run(run);
        }
        let bytes = serde_json::to_vec(run).map_err(|source| StoreError::Encode {
            record: format!("run {}", run.id),
            source,
        })?;
        let owner =
            match (&run.status, &run.owner) {
                (RunStatus::Running, owner) => Some(serde_json::to_vec(owner).map_err(
                    |source| StoreError::Encode {
                        record: format!("owner of run {}", run.id),
                        source,
                    },
                )?),
                _ => None,
            };
        let summary = self.encode_summary(run)?;
        self.write(|txn| {
            let mut runs = txn.open_table(RUNS).map_err(|e| self.database_error(e))?;
            runs.insert(run.id.as_str(), bytes.as_slice())
                .map_err(|e| self.database_error(e))?;
            self.put_summary(txn, &run.id, &summary)?;
            let mut active = txn
                .open_table(ACTIVE_RUNS)
                .map_err(|e| self.database_error(e))?;
            match &owner {
                Some(owner) => active.insert(run.id.as_str(), owner.as_slice()),
                None => active.remove(run.id.as_str()),
            }
            .map_err(|e| self.database_error(e))?;
            Ok(())
        })
    }

    /// Runs recorded as `running` by a process that noted itself, with that process.
    pub fn active_runs(&self) -> Result<Vec<(String, Option<RunOwner>)>, StoreError> {
        if let Some(pg) = self.pg_backend() {
            return pg.active_runs();
        }
        self.read(Vec::new, |txn| {
            let Some(active) = self.read_table(txn, ACTIVE_RUNS)? else {
                return Ok(Vec::new());
            };
            let mut out = Vec::new();
            for entry in active.iter().map_err(|e| self.database_error(e))? {
                let (key, value) = entry.map_err(|e| self.database_error(e))?;
                let id = key.value().to_string();
                let owner = self.decode(value.value(), || format!("owner of run {id}"))?;
                out.push((id, owner));
            }
            Ok(out)
        })
    }

    /// Marks a run `abandoned` with `reason`, but only if it is still `running` with `owner`:
    /// a run that finished, or was taken over, in the meantime is left as it is. Returns the
    /// record as it now stands.
    pub fn abandon_run(
        &self,
        id: &str,
        owner: Option<&RunOwner>,
        finished_at: &str,
        reason: &str,
    ) -> Result<Option<RunRecord>, StoreError> {
        if let Some(pg) = self.pg_backend() {
            return pg.abandon_run(id, owner, finished_at, reason);
        }
        self.write(|txn| {
            let mut runs = txn.open_table(RUNS).map_err(|e| self.database_error(e))?;
            let current = match runs.get(id).map_err(|e| self.database_error(e))? {
                Some(bytes) => bytes.value().to_vec(),
                None => return Ok(None),
            };
            let mut record: RunRecord = self.decode(&current, || format!("run {id}"))?;
            if record.status == RunStatus::Running && record.owner.as_ref() == owner {
                record.status = RunStatus::Abandoned;
                record.finished_at = Some(finished_at.to_string());
                record.error = Some(reason.to_string());
                let bytes = serde_json::to_vec(&record).map_err(|source| StoreError::Encode {
                    record: format!("run {id}"),
                    source,
                })?;
                runs.insert(id, bytes.as_slice())
                    .map_err(|e| self.database_error(e))?;
                self.put_summary(txn, id, &self.encode_summary(&record)?)?;
            }
            if record.status != RunStatus::Running {
                let mut active = txn
                    .open_table(ACTIVE_RUNS)
                    .map_err(|e| self.database_error(e))?;
                active.remove(id).map_err(|e| self.database_error(e))?;
            }
            Ok(Some(record))
        })
    }

    /// Changes a run in one transaction, but only if it is still `from`: `change` edits the
    /// record (its status included). Returns the record as it now stands, and whether it was
    /// changed; `None` if there is no run `id` (a full id).
    pub fn transition_run(
        &self,
        id: &str,
        from: RunStatus,
        change: impl FnOnce(&mut RunRecord),
    ) -> Result<Option<(RunRecord, bool)>, StoreError> {
        if let Some(pg) = self.pg_backend() {
            return self.transition_run_pg(pg, id, from, change);
        }
        let mut change = Some(change);
        self.write(|txn| {
            let mut runs = txn.open_table(RUNS).map_err(|e| self.database_error(e))?;
            let current = match runs.get(id).map_err(|e| self.database_error(e))? {
                Some(bytes) => bytes.value().to_vec(),
                None => return Ok(None),
            };
            let mut record: RunRecord = self.decode(&current, || format!("run {id}"))?;
            if record.status != from {
                return Ok(Some((record, false)));
            }
            if let Some(change) = change.take() {
                change(&mut record);
            }
            let bytes = serde_json::to_vec(&record).map_err(|source| StoreError::Encode {
                record: format!("run {id}"),
                source,
            })?;
            runs.insert(id, bytes.as_slice())
                .map_err(|e| self.database_error(e))?;
            self.put_summary(txn, id, &self.encode_summary(&record)?)?;
            let mut active = txn
                .open_table(ACTIVE_RUNS)
                .map_err(|e| self.database_error(e))?;
            if record.status == RunStatus::Running {
                let owner =
                    serde_json::to_vec(&record.owner).map_err(|source| StoreError::Encode {
                        record: format!("owner of run {id}"),
                        source,
                    })?;
                active.insert(id, owner.as_slice())
            } else {
                active.remove(id)
            }
            .map_err(|e| self.database_error(e))?;
            Ok(Some((record, true)))
        })
    }

    /// [`ResourceStore::transition_run`] on PostgreSQL: `change` runs on the caller's thread
    /// (it need not be `Send`), and the changed record is stored only if nobody changed the
    /// run since it was read (a revision check); if somebody did, the run is read again and,
    /// when it is still `from`, the change fails with a message to retry.
    fn transition_run_pg(
        &self,
        pg: &super::postgres::PgBackend,
        id: &str,
        from: RunStatus,
        change: impl FnOnce(&mut RunRecord),
    ) -> Result<Option<(RunRecord, bool)>, StoreError> {
        let Some((mut record, rev)) = pg.run_for_change(id)? else {
            return Ok(None);
        };
        if record.status != from {
            return Ok(Some((record, false)));
        }
        change(&mut record);
        if pg.replace_run_if(&record, rev)? {
            return Ok(Some((record, true)));
        }
        match pg.run_for_change(id)? {
            None => Ok(None),
            Some((now, _)) if now.status != from => Ok(Some((now, false))),
            Some(_) => Err(StoreError::Postgres {
                url: pg.url().to_string(),
                message: format!("run {id} was changed by another process at the same time; retry"),
            }),
        }
    }

    /// A run by its full id, or by a prefix of at least 6 characters that matches exactly one run.
    pub fn get_run(&self, id: &str) -> Result<Option<RunRecord>, StoreError> {
        if let Some(pg) = self.pg_backend() {
            return pg.get_run(id);
        }
        self.read(
            || None,
            |txn| {
                let Some(runs) = self.read_table(txn, RUNS)? else {
                    return Ok(None);
                };
                if let Some(value) = runs.get(id).map_err(|e| self.database_error(e))? {
                    return self.decode(value.value(), || format!("run {id}")).map(Some);
                }
                if id.len() < MIN_PREFIX_LEN {
                    return Ok(None);
                }
                let mut matches = Vec::new();
                for entry in runs.range(id..).map_err(|e| self.database_error(e))? {
                    let (key, value) = entry.map_err(|e| self.database_error(e))?;
                    let key = key.value();
                    if !key.starts_with(id) {
                        break;
                    }
                    matches.push((key.to_string(), value.value().to_vec()));
                    if matches.len() > AMBIGUOUS_SHOWN {
                        break;
                    }
                }
                match matches.as_slice() {
                    [] => Ok(None),
                    [(key, bytes)] => self.decode(bytes, || format!("run {key}")).map(Some),
                    _ => Err(StoreError::AmbiguousRunId {
                        path: self.path().to_path_buf(),
                        prefix: id.to_string(),
                        matches: matches
                            .into_iter()
                            .take(AMBIGUOUS_SHOWN)
                            .map(|(key, _)| key)
                            .collect(),
                    }),
                }
            },
        )
    }

    /// The full id and start time of a run given by its id or a prefix of at least 6
    /// characters, read from the run summaries (not the records).
    pub fn run_start(&self, id: &str) -> Result<Option<(String, String)>, StoreError> {
        if let Some(pg) = self.pg_backend() {
            return pg.run_start(id);
        }
        self.read(
            || None,
            |txn| {
                let Some(summaries) = self.read_table(txn, RUN_SUMMARIES)? else {
                    return Ok(None);
                };
                let started = |key: &str, bytes: &[u8]| -> Result<_, StoreError> {
                    let summary: RunSummary =
                        self.decode(bytes, || format!("summary of run {key}"))?;
                    Ok(Some((summary.id, summary.started_at)))
                };
                if let Some(value) = summaries.get(id).map_err(|e| self.database_error(e))? {
                    return started(id, value.value());
                }
                if id.len() < MIN_PREFIX_LEN {
                    return Ok(None);
                }
                let mut matches = Vec::new();
                for entry in summaries.range(id..).map_err(|e| self.database_error(e))? {
                    let (key, value) = entry.map_err(|e| self.database_error(e))?;
                    if !key.value().starts_with(id) || matches.len() > AMBIGUOUS_SHOWN {
                        break;
                    }
                    matches.push((key.value().to_string(), value.value().to_vec()));
                }
                match matches.as_slice() {
                    [] => Ok(None),
                    [(key, bytes)] => started(key, bytes),
                    _ => Err(StoreError::AmbiguousRunId {
                        path: self.path().to_path_buf(),
                        prefix: id.to_string(),
                        matches: matches
                            .into_iter()
                            .take(AMBIGUOUS_SHOWN)
                            .map(|(key, _)| key)
                            .collect(),
                    }),
                }
            },
        )
    }

    /// Up to `limit` run summaries, newest first, without reading the run records themselves.
    pub fn list_run_summaries(&self, limit: usize) -> Result<Vec<RunSummary>, StoreError> {
        if let Some(pg) = self.pg_backend() {
            return pg.list_run_summaries(limit);
        }
        self.newest(RUN_SUMMARIES, limit, "summary of run")
    }

    /// Up to `limit` decoded values of `table` (keyed by run id), newest first: run ids are
    /// uuid v7, so key order is start order. `what` names a value in errors.
    fn newest<T: serde::de::DeserializeOwned>(
        &self,
        table: TableDefinition<&str, &[u8]>,
        limit: usize,
        what: &str,
    ) -> Result<Vec<T>, StoreError> {
        self.read(Vec::new, |txn| {
            let Some(rows) = self.read_table(txn, table)? else {
                return Ok(Vec::new());
            };
            let mut out = Vec::new();
            for entry in rows
                .iter()
                .map_err(|e| self.database_error(e))?
                .rev()
                .take(limit)
            {
                let (key, value) = entry.map_err(|e| self.database_error(e))?;
                out.push(self.decode(value.value(), || format!("{what} {}", key.value()))?);
            }
            Ok(out)
        })
    }

    /// Writes the summary of every run record again, from the records (the upgrade to layout 2).
    /// A record that does not decode keeps its place in `runs` and gets no summary.
    pub(super) fn rebuild_run_summaries(&self, txn: &WriteTransaction) -> Result<(), StoreError> {
        let runs = txn.open_table(RUNS).map_err(|e| self.database_error(e))?;
        let mut summaries = txn
            .open_table(RUN_SUMMARIES)
            .map_err(|e| self.database_error(e))?;
        for entry in runs.iter().map_err(|e| self.database_error(e))? {
            let (key, value) = entry.map_err(|e| self.database_error(e))?;
            let id = key.value();
            match self.decode::<RunRecord>(value.value(), || format!("run {id}")) {
                Ok(record) => {
                    let summary = self.encode_summary(&record)?;
                    summaries
                        .insert(id, summary.as_slice())
                        .map_err(|e| self.database_error(e))?;
                }
                Err(error) => {
                    tracing::warn!(%error, "run {id} is left out of `orch runs list`");
                }
            }
        }
        Ok(())
    }

    fn encode_summary(&self, run: &RunRecord) -> Result<Vec<u8>, StoreError> {
        serde_json::to_vec(&RunSummary::of(run)).map_err(|source| StoreError::Encode {
            record: format!("summary of run {}", run.id),
            source,
        })
    }

    fn put_summary(
        &self,
        txn: &WriteTransaction,
        id: &str,
        bytes: &[u8],
    ) -> Result<(), StoreError> {
        txn.open_table(RUN_SUMMARIES)
            .map_err(|e| self.database_error(e))?
            .insert(id, bytes)
            .map_err(|e| self.database_error(e))?;
        Ok(())
    }

    /// Up to `limit` runs, newest first (run ids are uuid v7, so key order is start order).
    pub fn list_runs(&self, limit: usize) -> Result<Vec<RunRecord>, StoreError> {
        if let Some(pg) = self.pg_backend() {
            return pg.list_runs(limit);
        }
        self.newest(RUNS, limit, "run")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::access::StoreOptions;
    use super::super::types::{RunStatus, RunSummary, StepRecord, new_run_id, now_rfc3339};
    use super::*;

    fn store_in(dir: &tempfile::TempDir) -> ResourceStore {
        ResourceStore::new(dir.path().join(".orch/data.redb"), StoreOptions::default())
    }

    fn run(id: &str, target: &str) -> RunRecord {
        RunRecord {
            id: id.to_string(),
            kind: "workflow".to_string(),
            target: target.to_string(),
            status: RunStatus::Running,
            started_at: now_rfc3339(),
            finished_at: None,
            duration_ms: None,
            inputs: json!({"node": "pve1"}),
            steps: vec![StepRecord {
                job: "sync".to_string(),
                name: "list-vms".to_string(),
                model: Some("fleet".to_string()),
                method: Some("sync".to_string()),
                status: "succeeded".to_string(),
                started_at: Some(now_rfc3339()),
                duration_ms: Some(12),
                error: None,
                resources: vec!["vm/web@v3".to_string()],
                ..Default::default()
            }],
            events: vec![json!({"type": "step_started", "step": "list-vms"})],
            error: None,
            owner: Some(owner(4242)),
            outcomes: Vec::new(),
            waiting: Vec::new(),
            resumed_from: None,
        }
    }

    fn owner(pid: u32) -> RunOwner {
        RunOwner {
            pid,
            host: "box".to_string(),
            start_ticks: Some(77),
            boot_id: None,
        }
    }

    #[test]
    fn running_runs_are_indexed_until_they_end() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store_in(&dir);
        assert!(store.active_runs().expect("empty store").is_empty());
        let id = new_run_id();
        let mut record = run(&id, "sync-fleet");
        store.put_run(&record).expect("put");
        assert_eq!(
            store.active_runs().expect("active"),
            vec![(id.clone(), Some(owner(4242)))]
        );
        record.status = RunStatus::Failed;
        store.put_run(&record).expect("finish");
        assert!(store.active_runs().expect("active").is_empty());
    }

    #[test]
    fn only_a_run_still_running_under_the_same_owner_is_abandoned() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store_in(&dir);
        let id = new_run_id();
        let mut record = run(&id, "sync-fleet");
        store.put_run(&record).expect("put");

        let other = store
            .abandon_run(&id, Some(&owner(1)), "t", "gone")
            .expect("abandon")
            .expect("record");
        assert_eq!(
            other.status,
            RunStatus::Running,
            "another owner's run is left alone"
        );

        let abandoned = store
            .abandon_run(&id, Some(&owner(4242)), "t", "process 4242 ended")
            .expect("abandon")
            .expect("record");
        assert_eq!(abandoned.status, RunStatus::Abandoned);
        assert_eq!(abandoned.error.as_deref(), Some("process 4242 ended"));
        assert_eq!(store.get_run(&id).expect("get"), Some(abandoned));
        assert!(store.active_runs().expect("active").is_empty());

        // A run that finished in the meantime keeps its status.
        record.id = new_run_id();
        record.status = RunStatus::Succeeded;
        store.put_run(&record).expect("put");
        let kept = store
            .abandon_run(&record.id, Some(&owner(4242)), "t", "gone")
            .expect("abandon")
            .expect("record");
        assert_eq!(kept.status, RunStatus::Succeeded);
        assert_eq!(
            store
                .abandon_run("missing", None, "t", "gone")
                .expect("none"),
            None
        );
    }

    #[test]
    fn a_run_round_trips_and_put_replaces_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store_in(&dir);
        let id = new_run_id();
        let mut record = run(&id, "sync-fleet");
        store.put_run(&record).expect("put");
        assert_eq!(store.get_run(&id).expect("get"), Some(record.clone()));

        record.status = RunStatus::Succeeded;
        record.finished_at = Some(now_rfc3339());
        record.duration_ms = Some(1500);
        store.put_run(&record).expect("replace");
        assert_eq!(store.get_run(&id).expect("get"), Some(record));
        assert_eq!(store.list_runs(10).expect("list").len(), 1);
    }

    #[test]
    fn a_unique_prefix_of_six_or_more_characters_finds_the_run() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store_in(&dir);
        store
            .put_run(&run("0193a2b4-aaaa-7000-8000-000000000001", "a"))
            .expect("put");
        store
            .put_run(&run("0193a2b4-bbbb-7000-8000-000000000002", "b"))
            .expect("put");
        store
            .put_run(&run("0193ffff-cccc-7000-8000-000000000003", "c"))
            .expect("put");

        let found = store.get_run("0193a2b4-b").expect("prefix").expect("found");
        assert_eq!(found.target, "b");
        assert_eq!(
            store.get_run("0193ff").expect("prefix").map(|r| r.target),
            Some("c".to_string())
        );
        assert_eq!(
            store.get_run("0193f").expect("short prefix"),
            None,
            "five characters are not enough"
        );
        assert_eq!(store.get_run("0193a2b5").expect("no match"), None);

        let err = store.get_run("0193a2b4").expect_err("ambiguous");
        let StoreError::AmbiguousRunId { matches, .. } = &err else {
            panic!("expected AmbiguousRunId, got {err:?}");
        };
        assert_eq!(matches.len(), 2);
        assert!(err.to_string().contains("give more characters"), "{err}");
    }

    #[test]
    fn runs_are_listed_newest_first_up_to_the_limit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store_in(&dir);
        let ids: Vec<String> = (0..5).map(|_| new_run_id()).collect();
        // Stored out of order, so the listing order must come from the ids.
        for i in [2, 0, 4, 1, 3] {
            store
                .put_run(&run(&ids[i], &format!("run-{i}")))
                .expect("put");
        }
        let listed: Vec<String> = store
            .list_runs(3)
            .expect("list")
            .into_iter()
            .map(|r| r.target)
            .collect();
        assert_eq!(listed, vec!["run-4", "run-3", "run-2"]);
        assert_eq!(store.list_runs(100).expect("list").len(), 5);
        assert!(store.list_runs(0).expect("list").is_empty());
    }

    #[test]
    fn summaries_are_written_with_the_record_and_listed_newest_first() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store_in(&dir);
        assert!(store.list_run_summaries(10).expect("empty").is_empty());
        let first = run(&new_run_id(), "first");
        let mut second = run(&new_run_id(), "second");
        second.steps[0].status = "failed".to_string();
        store.put_run(&first).expect("put");
        store.put_run(&second).expect("put");
        let listed = store.list_run_summaries(10).expect("list");
        assert_eq!(
            listed,
            vec![RunSummary::of(&second), RunSummary::of(&first)]
        );
        assert_eq!((listed[0].steps, listed[0].failed_steps), (1, 1));
        assert_eq!(listed[0].owner, Some(owner(4242)));
        assert_eq!(store.list_run_summaries(1).expect("limit").len(), 1);

        // Abandoning a run updates its summary too.
        store
            .abandon_run(&first.id, Some(&owner(4242)), "t", "gone")
            .expect("abandon");
        let listed = store.list_run_summaries(10).expect("list");
        assert_eq!(listed[1].status, RunStatus::Abandoned);
        assert_eq!(listed[1].finished_at.as_deref(), Some("t"));
    }

    #[test]
    fn a_layout_1_file_is_upgraded_in_place_and_keeps_every_record() {
        use redb::{Database, ReadableDatabase, ReadableTableMetadata};

        use super::super::access::{LATEST, LAYOUT_KEY, LAYOUT_VERSION, META, RESOURCES};

        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(".orch/data.redb");
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        let records: Vec<RunRecord> = (0..3)
            .map(|i| run(&new_run_id(), &format!("old-{i}")))
            .collect();
        // Written the way layout 1 wrote it: records, the active index, resources, no summaries.
        {
            let db = Database::create(&path).expect("create with the old layout");
            let txn = db.begin_write().expect("txn");
            {
                let mut runs = txn.open_table(RUNS).expect("runs");
                for r in &records {
                    let bytes = serde_json::to_vec(r).expect("json");
                    runs.insert(r.id.as_str(), bytes.as_slice())
                        .expect("insert");
                }
                runs.insert("0000-damaged", b"not json".as_slice())
                    .expect("insert");
                let mut active = txn.open_table(ACTIVE_RUNS).expect("active");
                let owner = serde_json::to_vec(&records[0].owner).expect("json");
                active
                    .insert(records[0].id.as_str(), owner.as_slice())
                    .expect("insert");
                txn.open_table(RESOURCES)
                    .expect("resources")
                    .insert(("fleet", "vm", "a", 1), b"{}".as_slice())
                    .expect("insert");
                txn.open_table(LATEST)
                    .expect("latest")
                    .insert(("fleet", "vm", "a"), 1)
                    .expect("insert");
                txn.open_table(META)
                    .expect("meta")
                    .insert(LAYOUT_KEY, 1)
                    .expect("insert");
            }
            txn.commit().expect("commit");
        }

        let store = store_in(&dir);
        let listed = store
            .list_run_summaries(10)
            .expect("list after the upgrade");
        let expected: Vec<RunSummary> = records.iter().rev().map(RunSummary::of).collect();
        assert_eq!(
            listed, expected,
            "the damaged record is left out, the rest listed"
        );
        for r in &records {
            assert_eq!(store.get_run(&r.id).expect("get").as_ref(), Some(r));
        }
        assert!(
            store.get_run("0000-damaged").is_err(),
            "still there, still damaged"
        );
        assert_eq!(store.active_runs().expect("active").len(), 1);
        assert_eq!(
            store.latest_versions_of("fleet").expect("numbers").len(),
            1,
            "resources are untouched"
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
        store.put_run(&run(&new_run_id(), "new")).expect("put");
        assert_eq!(store.list_run_summaries(10).expect("list").len(), 4);
        drop(store);
        // A second open finds nothing left to upgrade.
        let db = Database::open(&path).expect("reopen");
        let txn = db.begin_read().expect("read");
        assert_eq!(
            txn.open_table(RUN_SUMMARIES)
                .expect("summaries")
                .len()
                .expect("len"),
            4
        );
    }

    #[test]
    fn a_transition_applies_only_from_the_expected_status() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store_in(&dir);
        let id = new_run_id();
        let mut record = run(&id, "deploy");
        record.status = RunStatus::Waiting;
        store.put_run(&record).expect("put");
        assert!(
            store.active_runs().expect("active").is_empty(),
            "a waiting run holds nothing"
        );

        let (taken, changed) = store
            .transition_run(&id, RunStatus::Waiting, |r| r.status = RunStatus::Running)
            .expect("transition")
            .expect("run");
        assert!(changed);
        assert_eq!(taken.status, RunStatus::Running);
        assert_eq!(store.active_runs().expect("active").len(), 1);

        let (now, changed) = store
            .transition_run(&id, RunStatus::Waiting, |r| r.status = RunStatus::Cancelled)
            .expect("transition")
            .expect("run");
        assert!(!changed, "a second taker finds it running");
        assert_eq!(now.status, RunStatus::Running);
        assert_eq!(
            store.list_run_summaries(1).expect("list")[0].status,
            RunStatus::Running
        );
        assert_eq!(
            store
                .transition_run("missing", RunStatus::Waiting, |_| {})
                .expect("none"),
            None
        );
    }

    #[test]
    fn a_damaged_run_record_names_the_run_and_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store_in(&dir);
        store
            .write(|txn| {
                let mut runs = txn.open_table(RUNS).map_err(|e| store.database_error(e))?;
                runs.insert("0193a2b4-dead", b"not json".as_slice())
                    .map_err(|e| store.database_error(e))?;
                Ok(())
            })
            .expect("write raw");
        let err = store.get_run("0193a2b4-dead").expect_err("bad json");
        let message = err.to_string();
        assert!(message.contains("run 0193a2b4-dead"), "{message}");
        assert!(
            message.contains(&store.path().display().to_string()),
            "{message}"
        );
    }
}
