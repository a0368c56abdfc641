//! The datastore: one store test suite run against both backends, the embedded redb file and
//! a real PostgreSQL (Debian's `postgresql`, started by `support::postgres` in a temporary
//! directory), plus what only PostgreSQL has (schema migrations, masked passwords).

mod support;

use std::collections::BTreeMap;

use orch::store::{
    ChangeWindow, KeepRule, PendingWrite, Provenance, ResourceStore, RunOwner, RunRecord,
    RunStatus, StoreError, StoreOptions, Tags, new_run_id, now_rfc3339,
};
use serde_json::{Value, json};
use support::postgres;

/// A database under test: `open` makes another store on the same data (another process's view).
struct Db {
    open: Box<dyn Fn() -> ResourceStore + Send + Sync>,
    _dir: Option<tempfile::TempDir>,
}

impl Db {
    fn store(&self) -> ResourceStore {
        (self.open)()
    }
}

fn redb() -> Db {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(".orch/data.redb");
    Db {
        open: Box::new(move || ResourceStore::new(path.clone(), options())),
        _dir: Some(dir),
    }
}

fn pg() -> Db {
    let url = postgres::fresh_database();
    let db = Db {
        open: Box::new(move || ResourceStore::postgres(&url, Some(postgres::PASSWORD), options())),
        _dir: None,
    };
    assert_eq!(
        db.store().migrate().expect("migrate"),
        (0, orch::store::SCHEMA_VERSION)
    );
    db
}

fn options() -> StoreOptions {
    StoreOptions {
        lock_wait: std::time::Duration::from_secs(60),
    }
}

fn provenance(step: &str) -> Provenance {
    Provenance {
        run_id: "0193a2b4-0000-7000-8000-000000000000".to_string(),
        step: step.to_string(),
        method: "sync".to_string(),
        time: now_rfc3339(),
    }
}

fn at(run: &str, time: &str) -> Provenance {
    Provenance {
        run_id: run.to_string(),
        step: "sync".to_string(),
        method: "sync".to_string(),
        time: time.to_string(),
    }
}

fn write(spec: &str, name: &str, attributes: Value) -> PendingWrite {
    PendingWrite::new(spec, name, attributes)
}

/// Each suite function becomes one test per backend: `redb_NAME` and `postgres_NAME`.
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod redb_backend {
            $( #[test] fn $name() { super::$name(&super::redb()); } )*
        }
        mod postgres_backend {
            $( #[test] fn $name() { super::$name(&super::pg()); } )*
        }
    };
}

both_backends!(
    versions_are_numbered_from_one_per_resource,
    old_versions_stay_intact_after_new_writes,
    a_batch_with_two_writes_to_one_name_gets_consecutive_versions,
    a_rejected_batch_writes_nothing,
    latest_for_models_and_list_return_the_newest_per_model,
    a_retired_resource_is_a_tombstone_that_latest_shows,
    tags_are_kept_per_version,
    two_stores_on_one_database_see_each_others_data,
    concurrent_writers_from_eight_threads_leave_versions_contiguous,
    sightings_move_last_seen_and_changes_give_appeared_changed_retired,
    runs_are_recorded_found_by_prefix_transitioned_and_collected,
    gc_keeps_the_latest_and_the_sighted_version,
);

fn versions_are_numbered_from_one_per_resource(db: &Db) {
    let store = db.store();
    for expected in 1..=3u64 {
        let got = store
            .commit_writes(
                "fleet",
                &provenance("sync"),
                &[write("vm", "web", json!({"n": expected}))],
            )
            .expect("commit");
        assert_eq!(got, vec![expected]);
    }
    let other = store
        .commit_writes(
            "fleet",
            &provenance("sync"),
            &[write("vm", "db", json!({}))],
        )
        .expect("commit");
    assert_eq!(other, vec![1], "each resource counts on its own");
    let latest = store.latest("fleet", "vm", "web").expect("latest").unwrap();
    assert_eq!((latest.version, latest.attributes), (3, json!({"n": 3})));
    assert_eq!(store.latest("fleet", "vm", "nope").expect("latest"), None);
}

fn old_versions_stay_intact_after_new_writes(db: &Db) {
    let store = db.store();
    let first = provenance("first");
    store
        .commit_writes(
            "fleet",
            &first,
            &[write("vm", "web", json!({"ip": "10.0.0.1"}))],
        )
        .expect("commit 1");
    store
        .commit_writes(
            "fleet",
            &provenance("second"),
            &[write("vm", "web", json!({"ip": "10.0.0.2"}))],
        )
        .expect("commit 2");
    let v1 = store
        .version("fleet", "vm", "web", 1)
        .expect("read")
        .unwrap();
    assert_eq!(v1.attributes, json!({"ip": "10.0.0.1"}));
    assert_eq!(v1.provenance, first);
    let all = store.versions("fleet", "vm", "web").expect("versions");
    let numbers: Vec<u64> = all.iter().map(|v| v.version).collect();
    assert_eq!(numbers, vec![1, 2]);
    assert_eq!(store.version("fleet", "vm", "web", 3).expect("read"), None);
}

fn a_batch_with_two_writes_to_one_name_gets_consecutive_versions(db: &Db) {
    let store = db.store();
    store
        .commit_writes("fleet", &provenance("a"), &[write("vm", "web", json!(0))])
        .expect("commit");
    let got = store
        .commit_writes(
            "fleet",
            &provenance("b"),
            &[
                write("vm", "web", json!(1)),
                write("vm", "db", json!(1)),
                write("vm", "web", json!(2)),
            ],
        )
        .expect("commit");
    assert_eq!(got, vec![2, 1, 3]);
    let latest = store.latest("fleet", "vm", "web").expect("latest").unwrap();
    assert_eq!((latest.version, latest.attributes), (3, json!(2)));
}

fn a_rejected_batch_writes_nothing(db: &Db) {
    let store = db.store();
    let err = store
        .commit_writes(
            "fleet",
            &provenance("a"),
            &[write("vm", "web", json!(1)), write("vm", "", json!(2))],
        )
        .expect_err("empty name");
    assert!(matches!(err, StoreError::InvalidWrite { .. }), "{err:?}");
    assert_eq!(store.latest("fleet", "vm", "web").expect("latest"), None);
    assert!(store.list(None).expect("list").is_empty());
    assert!(
        store
            .commit_writes("fleet", &provenance("a"), &[])
            .expect("empty")
            .is_empty()
    );
}

fn latest_for_models_and_list_return_the_newest_per_model(db: &Db) {
    let store = db.store();
    let p = provenance("sync");
    store
        .commit_writes(
            "fleet",
            &p,
            &[
                write("vm", "web", json!(1)),
                write("vm", "db", json!(1)),
                write("dns", "web", json!(1)),
            ],
        )
        .expect("commit");
    store
        .commit_writes("fleet", &p, &[write("vm", "web", json!(2))])
        .expect("commit");
    store
        .commit_writes("fleet-b", &p, &[write("vm", "x", json!(1))])
        .expect("commit");
    let got = store
        .latest_for_models(&["fleet", "nothing"])
        .expect("latest_for_models");
    assert_eq!(got.keys().collect::<Vec<_>>(), vec!["fleet", "nothing"]);
    let fleet: Vec<(&str, &str, u64)> = got["fleet"]
        .iter()
        .map(|v| (v.spec.as_str(), v.name.as_str(), v.version))
        .collect();
    assert_eq!(
        fleet,
        vec![("dns", "web", 1), ("vm", "db", 1), ("vm", "web", 2)]
    );
    assert!(got["nothing"].is_empty());
    let numbers = store.latest_versions_of("fleet").expect("numbers");
    assert_eq!(numbers[&("vm".to_string(), "web".to_string())], 2);
    assert_eq!(numbers.len(), 3);
    let found = store.find_by_name("fleet", "web").expect("find");
    let specs: Vec<&str> = found.iter().map(|k| k.spec.as_str()).collect();
    assert_eq!(specs, vec!["dns", "vm"]);
    let listed = store.list(Some("fleet")).expect("list");
    assert_eq!(listed.len(), 3);
    assert!(listed.iter().all(|s| s.written_at == p.time));
    assert_eq!(store.list(None).expect("list all").len(), 4);
    assert_eq!(store.latest_live(None).expect("live").len(), 4);
}

fn a_retired_resource_is_a_tombstone_that_latest_shows(db: &Db) {
    let store = db.store();
    let p = provenance("s");
    store
        .commit_writes("m", &p, &[write("vm", "a", json!({"id": 1}))])
        .unwrap();
    let tombstone = PendingWrite::retire("vm", "a");
    assert_eq!(store.commit_writes("m", &p, &[tombstone]).unwrap(), vec![2]);
    let latest = store.latest("m", "vm", "a").unwrap().unwrap();
    assert!(latest.retired && latest.attributes.is_null() && latest.version == 2);
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
    let live: Vec<String> = store
        .latest_live(Some("m"))
        .unwrap()
        .into_iter()
        .map(|v| v.name)
        .collect();
    assert_eq!(live, vec!["b".to_string()]);
}

fn tags_are_kept_per_version(db: &Db) {
    let store = db.store();
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
}

fn two_stores_on_one_database_see_each_others_data(db: &Db) {
    // Two repositories (two machines) on one database.
    let (site_a, site_b) = (db.store(), db.store());
    site_a
        .commit_writes(
            "fleet",
            &provenance("a"),
            &[write("vm", "web", json!({"site": "a"}))],
        )
        .expect("a writes");
    let seen_by_b = site_b
        .latest("fleet", "vm", "web")
        .expect("b reads")
        .unwrap();
    assert_eq!(seen_by_b.attributes, json!({"site": "a"}));
    let got = site_b
        .commit_writes(
            "fleet",
            &provenance("b"),
            &[write("vm", "web", json!({"site": "b"}))],
        )
        .expect("b writes");
    assert_eq!(got, vec![2], "b continues a's numbering");
    let mut run = run_record(&new_run_id(), 1);
    run.status = RunStatus::Succeeded;
    site_b.put_run(&run).expect("b records a run");
    assert_eq!(site_a.get_run(&run.id).expect("a reads the run"), Some(run));
}

fn concurrent_writers_from_eight_threads_leave_versions_contiguous(db: &Db) {
    // Half the threads share one store (its clones share its connections), half have their own.
    let shared = db.store();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let store = if t % 4 < 2 {
                shared.clone()
            } else {
                db.store()
            };
            std::thread::spawn(move || {
                let mut got = Vec::new();
                for i in 0..25 {
                    // Two resources per batch, in an order that differs by thread, so
                    // transactions can also collide on the second.
                    let (first, second) = if t % 2 == 0 {
                        ("web", "db")
                    } else {
                        ("db", "web")
                    };
                    let writes = [
                        write("vm", first, json!({"thread": t, "i": i})),
                        write("vm", second, json!({"thread": t, "i": i})),
                    ];
                    let versions = store.commit_writes("fleet", &provenance("p"), &writes)?;
                    got.push(if t % 2 == 0 { versions[0] } else { versions[1] });
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
    assert_eq!(all, (1..=200).collect::<Vec<u64>>(), "web's versions");
    let store = db.store();
    for name in ["web", "db"] {
        let stored = store.versions("fleet", "vm", name).expect("versions");
        assert_eq!(stored.len(), 200);
        assert!(stored.iter().zip(1..).all(|(v, n)| v.version == n));
        assert_eq!(
            store
                .latest("fleet", "vm", name)
                .unwrap()
                .map(|v| v.version),
            Some(200)
        );
    }
}

fn sightings_move_last_seen_and_changes_give_appeared_changed_retired(db: &Db) {
    let store = db.store();
    let seen_of = |name: &str| {
        store
            .last_seen("fleet", "vm", name)
            .expect("last seen")
            .map(|s| (s.run_id, s.version))
    };
    let hour = |h: u32| format!("2026-11-30T{h:02}:00:00.000Z");
    let commit = |run: &str, h: u32, writes: &[PendingWrite]| {
        store
            .commit_writes("fleet", &at(run, &hour(h)), writes)
            .expect("commit")
    };
    commit("r1", 1, &[write("vm", "a", json!({"ip": "10.0.0.1"}))]);
    assert_eq!(seen_of("a"), Some(("r1".into(), 1)));
    // A sighting stores no version but moves last_seen, in the same transaction.
    let got = commit(
        "r2",
        2,
        &[
            PendingWrite::seen("vm", "a", 1),
            write("vm", "a", json!({"ip": "10.0.0.2"})),
            write("vm", "b", json!({})),
        ],
    );
    assert_eq!(got, vec![1, 2, 1]);
    assert_eq!(seen_of("a"), Some(("r2".into(), 2)), "the version wins");
    commit("r3", 3, &[PendingWrite::retire("vm", "a")]);
    assert_eq!(
        seen_of("a"),
        Some(("r2".into(), 2)),
        "a tombstone is no sighting"
    );
    commit("r4", 4, &[write("vm", "a", json!({"ip": "10.0.0.3"}))]);
    let window = |since: &str, after: Option<&str>| ChangeWindow {
        since: since.to_string(),
        after_run: after.map(String::from),
        model: Some("fleet".to_string()),
    };
    let kinds = |w: ChangeWindow| -> Vec<(String, u64, &'static str)> {
        store
            .changes(&w)
            .expect("changes")
            .iter()
            .map(|c| (c.version.name.clone(), c.version.version, c.kind.as_str()))
            .collect()
    };
    assert_eq!(
        kinds(window("", None)),
        vec![
            ("a".into(), 4, "appeared"),
            ("a".into(), 3, "retired"),
            ("b".into(), 1, "appeared"),
            ("a".into(), 2, "changed"),
            ("a".into(), 1, "appeared"),
        ]
    );
    let recent = vec![("a".into(), 4, "appeared"), ("a".into(), 3, "retired")];
    assert_eq!(kinds(window("2026-11-30T02:30:00.000Z", None)), recent);
    assert_eq!(kinds(window("", Some("r2"))), recent);
    let changed = store.changes(&window("", None)).expect("changes");
    assert_eq!(changed[3].previous, Some(json!({"ip": "10.0.0.1"})));
}

fn run_record(id: &str, pid: u32) -> RunRecord {
    RunRecord {
        id: id.to_string(),
        kind: "workflow".to_string(),
        target: "sync-fleet".to_string(),
        status: RunStatus::Running,
        started_at: now_rfc3339(),
        finished_at: None,
        duration_ms: None,
        inputs: json!({"node": "pve1"}),
        steps: Vec::new(),
        events: vec![json!({"type": "step_started", "step": "list-vms"})],
        error: None,
        owner: Some(owner(pid)),
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

fn runs_are_recorded_found_by_prefix_transitioned_and_collected(db: &Db) {
    let store = db.store();
    assert!(store.list_runs(10).expect("runs").is_empty());
    let (first, second) = (new_run_id(), new_run_id());
    store.put_run(&run_record(&first, 1)).expect("put");
    store.put_run(&run_record(&second, 2)).expect("put");
    let active: Vec<String> = store
        .active_runs()
        .expect("active")
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(active, vec![first.clone(), second.clone()]);
    // Newest first; a unique prefix finds a run, a shared one is ambiguous.
    let listed: Vec<String> = store
        .list_runs(10)
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(listed, vec![second.clone(), first.clone()]);
    assert_eq!(store.list_run_summaries(1).unwrap()[0].id, second);
    assert_eq!(store.get_run(&second[..30]).unwrap().unwrap().id, second);
    assert_eq!(store.run_start(&first).unwrap().unwrap().0, first);
    let shared = first
        .chars()
        .zip(second.chars())
        .take_while(|(a, b)| a == b)
        .count();
    if shared >= 6 {
        let err = store.get_run(&first[..shared]).expect_err("ambiguous");
        assert!(matches!(err, StoreError::AmbiguousRunId { .. }), "{err}");
    }
    assert_eq!(store.get_run("ffffffff").unwrap(), None);
    // Another owner's run is left alone; the owner's is abandoned.
    let kept = store
        .abandon_run(&first, Some(&owner(9)), "t", "gone")
        .unwrap()
        .unwrap();
    assert_eq!(kept.status, RunStatus::Running);
    let gone = store
        .abandon_run(&first, Some(&owner(1)), "2026-01-01T00:00:00.000Z", "gone")
        .unwrap()
        .unwrap();
    assert_eq!(gone.status, RunStatus::Abandoned);
    // A transition happens only from the stated status.
    let (same, changed) = store
        .transition_run(&first, RunStatus::Running, |r| r.status = RunStatus::Failed)
        .unwrap()
        .unwrap();
    assert!(!changed && same.status == RunStatus::Abandoned);
    let (now, changed) = store
        .transition_run(&second, RunStatus::Running, |r| {
            r.status = RunStatus::Succeeded;
            r.finished_at = Some("2026-01-01T00:00:00.000Z".to_string());
        })
        .unwrap()
        .unwrap();
    assert!(changed && now.status == RunStatus::Succeeded);
    assert_eq!(
        store.get_run(&second).unwrap().unwrap().status,
        RunStatus::Succeeded
    );
    assert!(store.active_runs().unwrap().is_empty());
    // Both finished before the cutoff: collected.
    let dry = store.gc_runs("2026-06-01T00:00:00.000Z", true).unwrap();
    assert_eq!(dry.len(), 2);
    assert_eq!(
        store.list_runs(10).unwrap().len(),
        2,
        "a dry run deletes nothing"
    );
    let deleted = store.gc_runs("2026-06-01T00:00:00.000Z", false).unwrap();
    assert_eq!(deleted.len(), 2);
    assert!(store.list_runs(10).unwrap().is_empty());
}

fn gc_keeps_the_latest_and_the_sighted_version(db: &Db) {
    let store = db.store();
    for i in 1..=5 {
        store
            .commit_writes("fleet", &provenance("p"), &[write("vm", "a", json!(i))])
            .unwrap();
    }
    // The last sighting points at version 2.
    store
        .commit_writes(
            "fleet",
            &provenance("p"),
            &[PendingWrite::seen("vm", "a", 2)],
        )
        .unwrap();
    let rules = BTreeMap::from([(
        ("fleet".to_string(), "vm".to_string()),
        KeepRule::Versions(1),
    )]);
    let dry: Vec<u64> = store
        .gc_versions(&rules, true)
        .unwrap()
        .into_iter()
        .map(|d| d.version)
        .collect();
    assert_eq!(dry, vec![1, 3, 4]);
    assert_eq!(store.versions("fleet", "vm", "a").unwrap().len(), 5);
    store.gc_versions(&rules, false).unwrap();
    assert!(store.file_size() > 0);
    store.compact().expect("compact");
    let left: Vec<u64> = store
        .versions("fleet", "vm", "a")
        .unwrap()
        .into_iter()
        .map(|v| v.version)
        .collect();
    assert_eq!(left, vec![2, 5]);
    let next = store
        .commit_writes("fleet", &provenance("p"), &[write("vm", "a", json!(6))])
        .unwrap();
    assert_eq!(next, vec![6], "numbering continues after a gc");
}

// ---- PostgreSQL only ----

#[test]
fn the_harness_serves_a_fresh_database_per_test_behind_a_password() {
    let url = postgres::fresh_database();
    let other = postgres::fresh_database();
    assert_ne!(url, other);
    let server = postgres::server();
    let db = url.rsplit('/').next().unwrap();
    server.psql_in(
        db,
        "SET ROLE orch; CREATE TABLE t (x int); INSERT INTO t VALUES (7)",
    );
    assert_eq!(server.psql_in(db, "SELECT x FROM t").trim(), "7");
    let wrong = ResourceStore::postgres(&url, Some("wrong"), options());
    let err = wrong.list(None).expect_err("a wrong password is refused");
    assert!(matches!(err, StoreError::Postgres { .. }), "{err:?}");
}

#[test]
fn an_unmigrated_database_asks_for_migrate_and_a_newer_one_refuses() {
    let url = postgres::fresh_database();
    let store = ResourceStore::postgres(&url, Some(postgres::PASSWORD), options());
    assert_eq!(store.schema_version().unwrap(), Some(0));
    let err = store.list(None).expect_err("not migrated");
    assert!(
        err.to_string()
            .contains("database schema 0 is older than this orch (2)")
            && err.to_string().contains("orch datastore migrate"),
        "{err}"
    );
    assert_eq!(store.migrate().unwrap(), (0, 2));
    assert_eq!(
        store.migrate().unwrap(),
        (2, 2),
        "a second migrate does nothing"
    );
    assert!(store.list(None).unwrap().is_empty());
    let db = url.rsplit('/').next().unwrap();
    postgres::server().psql_in(db, "INSERT INTO schema_version (version) VALUES (7)");
    let fresh = ResourceStore::postgres(&url, Some(postgres::PASSWORD), options());
    let err = fresh.list(None).expect_err("newer schema");
    assert!(
        err.to_string()
            .contains("database schema 7 is newer than this orch (2); upgrade orch"),
        "{err}"
    );
    let err = fresh.migrate().expect_err("no downgrade");
    assert!(err.to_string().contains("upgrade orch"), "{err}");
}

#[test]
fn migrate_brings_a_version_1_database_with_the_old_queue_tables_to_2_keeping_their_rows() {
    let url = postgres::fresh_database();
    let store = ResourceStore::postgres(&url, Some(postgres::PASSWORD), options());
    assert_eq!(store.migrate().unwrap(), (0, 2));
    // What the previous orch left: schema 1, and the queue's tables made by the queue itself,
    // with a version table of their own and no `logs` column or coordinators table.
    let db = url.rsplit('/').next().unwrap();
    postgres::server().psql_in(
        db,
        "SET ROLE orch; DELETE FROM schema_version WHERE version = 2; \
         DROP TABLE orch_coordinators; \
         DROP INDEX orch_queue_by_run; ALTER TABLE orch_queue DROP COLUMN logs; \
         CREATE TABLE orch_queue_schema (version integer NOT NULL); \
         INSERT INTO orch_queue_schema VALUES (1); \
         INSERT INTO orch_queue (run_id, step, model, method, kind, labels, plugin, \
           plugin_version, call) VALUES ('r1', 'fleet.s', 'm', 'noop', 'action', '{a}', 'p', \
           '1', '{}')",
    );
    let old = ResourceStore::postgres(&url, Some(postgres::PASSWORD), options());
    let err = old.list(None).expect_err("schema 1 is too old");
    assert!(err.to_string().contains("orch datastore migrate"), "{err}");
    assert_eq!(old.migrate().unwrap(), (1, 2));
    let server = postgres::server();
    assert_eq!(
        server
            .psql_in(
                db,
                "SELECT run_id || ' ' || coalesce(logs, '-') FROM orch_queue"
            )
            .trim(),
        "r1 -"
    );
    assert_eq!(
        server
            .psql_in(db, "SELECT to_regclass('orch_queue_schema') IS NULL")
            .trim(),
        "t"
    );
    assert_eq!(
        server
            .psql_in(db, "SELECT count(*) FROM orch_coordinators")
            .trim(),
        "0"
    );
}

#[test]
fn a_failed_method_commits_nothing_and_leaves_latest_where_it_was() {
    let db = pg();
    let store = db.store();
    store
        .commit_writes("fleet", &provenance("a"), &[write("vm", "b", json!(1))])
        .unwrap();
    // Plant version 2 of b behind the index's back: the next write of b collides with it.
    let name = db_name(&store);
    postgres::server().psql_in(
        &name,
        "INSERT INTO orch_resource_versions (model, spec, name, version, time, run_id, retired, record)
         VALUES ('fleet', 'vm', 'b', 2, 't', 'r', false, '{}')",
    );
    let err = store
        .commit_writes(
            "fleet",
            &provenance("b"),
            &[write("vm", "a", json!(1)), write("vm", "b", json!(2))],
        )
        .expect_err("the second write collides");
    assert!(matches!(err, StoreError::VersionExists { .. }), "{err:?}");
    assert_eq!(
        store.latest("fleet", "vm", "a").unwrap(),
        None,
        "a was rolled back"
    );
    assert_eq!(store.last_seen("fleet", "vm", "a").unwrap(), None);
    assert_eq!(store.latest_versions_of("fleet").unwrap().len(), 1);
    assert_eq!(
        store.latest_versions_of("fleet").unwrap()[&("vm".to_string(), "b".to_string())],
        1,
        "latest moves only with a successful method"
    );
}

fn db_name(store: &ResourceStore) -> String {
    store
        .path()
        .to_string_lossy()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn the_password_never_reaches_errors_or_the_database() {
    let url = postgres::fresh_database();
    let with_password = url.replace("orch@", &format!("orch:{}@", postgres::PASSWORD));
    let store = ResourceStore::postgres(&with_password, None, options());
    assert!(!store.path().to_string_lossy().contains(postgres::PASSWORD));
    store.migrate().expect("the password in the URL signs in");
    store
        .commit_writes("fleet", &provenance("a"), &[write("vm", "a", json!(1))])
        .unwrap();
    let unreachable = with_password.replace(&format!(":{}/", postgres::server().port), ":1/");
    let err = ResourceStore::postgres(&unreachable, None, options())
        .list(None)
        .expect_err("nothing listens on port 1");
    let shown = err.to_string();
    assert!(
        shown.contains("postgres://orch:***@127.0.0.1:1/"),
        "{shown}"
    );
    assert!(!shown.contains(postgres::PASSWORD), "{shown}");
    let dump = postgres::server().dump(&db_name(&store));
    assert!(dump.contains("orch_resource_versions"));
    assert!(!dump.contains(postgres::PASSWORD));
}

// ---- End to end: the real `orch` binary on a repository whose orch.yaml names PostgreSQL ----

/// Points `lab`'s orch.yaml at the PostgreSQL database `url` (no password in the file).
fn use_postgres(lab: &support::lab::Lab, url: &str) {
    let path = lab.repo.path().join("orch.yaml");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(&format!("datastore:\n  postgres: \"{url}\"\n"));
    std::fs::write(&path, text).unwrap();
}

/// `orch args` in `lab`'s repository against its simulator, with the PostgreSQL password in
/// `PGPASSWORD`.
fn orch_pg(lab: &support::lab::Lab, args: &[&str]) -> support::Run {
    let mut cmd = lab.repo.command(args);
    cmd.env("PROXMOX_API_URL", lab.sim.url())
        .env("PGPASSWORD", postgres::PASSWORD);
    support::Run::from_output(cmd.output().unwrap())
}

#[test]
fn sync_fleet_into_postgres_and_a_second_repository_reads_it_through_cel() {
    use support::lab::Lab;
    let url = postgres::fresh_database();
    let site_a = Lab::with_config(Default::default());
    use_postgres(&site_a, &url);
    // Before the migration every command says what to do.
    let early = orch_pg(&site_a, &["data", "list"]);
    assert_ne!(early.code, 0);
    assert!(
        early.all().contains("orch datastore migrate"),
        "{}",
        early.all()
    );
    let migrated = orch_pg(&site_a, &["--json", "datastore", "migrate"])
        .ok()
        .json();
    assert_eq!(
        (migrated["from"].as_i64(), migrated["to"].as_i64()),
        (Some(0), Some(2))
    );
    let status = orch_pg(&site_a, &["--json", "datastore", "status"])
        .ok()
        .json();
    assert_eq!(status["backend"], "postgres");
    assert_eq!(status["schema"], 2);

    orch_pg(&site_a, &["run", "sync-fleet"]).ok();
    let listed = orch_pg(&site_a, &["--json", "data", "list"]).ok().json();
    let rows = listed.as_array().expect("a list");
    let vm = rows
        .iter()
        .find(|r| r["model"] == "fleet")
        .unwrap_or_else(|| panic!("no fleet resource in {listed}"));
    assert!(rows.len() > 3, "{listed}");
    assert!(
        !site_a.repo.path().join(".orch/data.redb").exists(),
        "nothing went to the redb file"
    );
    let runs = orch_pg(&site_a, &["--json", "runs", "list"]).ok().json();
    assert_eq!(runs[0]["status"], "succeeded", "{runs}");

    // Site b: another directory (another machine) on the same database, which never synced;
    // its password is in its vault, not in the environment.
    let site_b = Lab::with_config(Default::default());
    use_postgres(&site_b, &url);
    let yaml = site_b.repo.path().join("orch.yaml");
    let text = std::fs::read_to_string(&yaml).unwrap();
    std::fs::write(
        &yaml,
        format!("{text}  password: ${{{{ vault.get(\"pg-vault\", \"password\") }}}}\n"),
    )
    .unwrap();
    let missing = site_b.orch(&["data", "list"]);
    assert_ne!(missing.code, 0);
    assert!(
        missing.all().contains("orch vault put pg-vault password"),
        "{}",
        missing.all()
    );
    site_b
        .repo
        .orch_stdin(
            &["vault", "put", "pg-vault", "password"],
            postgres::PASSWORD,
        )
        .ok();
    let expression = format!(
        "model.fleet.resource.{}[\"{}\"].attributes",
        vm["spec"].as_str().unwrap(),
        vm["name"].as_str().unwrap()
    );
    let from_b = site_b.orch(&["--json", "eval", &expression]).ok().json();
    let from_a = orch_pg(
        &site_a,
        &[
            "--json",
            "data",
            "get",
            "fleet",
            vm["name"].as_str().unwrap(),
        ],
    )
    .ok()
    .json();
    assert_eq!(from_b, from_a["attributes"], "b reads a's data through CEL");
    assert!(from_b.is_object(), "{from_b}");
    let runs_b = site_b.orch(&["--json", "runs", "list"]).ok().json();
    assert_eq!(runs_b, runs, "b sees a's runs");

    // No password of either kind in the database, and the PostgreSQL one in no output.
    let dump = postgres::server().dump(url.rsplit('/').next().unwrap());
    assert!(dump.contains(vm["name"].as_str().unwrap()));
    assert!(
        !dump.contains(postgres::PASSWORD),
        "the PostgreSQL password was stored"
    );
    assert!(
        !dump.contains(support::lab::PASSWORD),
        "the Proxmox password was stored"
    );
    let wrong = {
        let mut cmd = site_a.repo.command(&["data", "list"]);
        cmd.env("PGPASSWORD", "not-the-password");
        support::Run::from_output(cmd.output().unwrap())
    };
    assert_ne!(wrong.code, 0);
    assert!(wrong.all().contains("PGPASSWORD"), "{}", wrong.all());
    assert!(!wrong.all().contains("not-the-password"), "{}", wrong.all());
}

#[test]
fn orch_yaml_refuses_a_password_in_the_datastore_url() {
    let repo = support::TestRepo::new(&[]);
    std::fs::write(
        repo.path().join("orch.yaml"),
        "datastore:\n  postgres: postgres://orch:hunter2@127.0.0.1/orch\n",
    )
    .unwrap();
    let out = repo.orch(&["data", "list"]);
    assert_ne!(out.code, 0);
    assert!(out.all().contains("orch.yaml:2"), "{}", out.all());
    assert!(out.all().contains("datastore.postgres"), "{}", out.all());
    assert!(!out.all().contains("hunter2"), "{}", out.all());
}

/// Everything two stores hold must be the same: every version, sighting, change and run.
fn assert_same_history(a: &ResourceStore, b: &ResourceStore) {
    let keys = a.list(None).expect("list");
    assert!(!keys.is_empty());
    assert_eq!(keys, b.list(None).expect("list"));
    for k in &keys {
        assert_eq!(
            a.versions(&k.model, &k.spec, &k.name).unwrap(),
            b.versions(&k.model, &k.spec, &k.name).unwrap(),
            "{}/{}/{}",
            k.model,
            k.spec,
            k.name
        );
        assert_eq!(
            a.last_seen(&k.model, &k.spec, &k.name).unwrap(),
            b.last_seen(&k.model, &k.spec, &k.name).unwrap()
        );
    }
    let all = ChangeWindow::default();
    assert_eq!(a.changes(&all).unwrap(), b.changes(&all).unwrap());
    let runs = a.list_runs(usize::MAX).unwrap();
    assert!(!runs.is_empty());
    assert_eq!(runs, b.list_runs(usize::MAX).unwrap());
    assert_eq!(
        a.list_run_summaries(100).unwrap(),
        b.list_run_summaries(100).unwrap()
    );
}

#[test]
fn datastore_copy_moves_the_whole_history_from_redb_to_postgres_and_back() {
    use support::lab::Lab;
    let lab = Lab::with_config(Default::default());
    lab.orch(&["run", "sync-fleet"]).ok();
    lab.orch(&["run", "sync-fleet"]).ok();
    let listed = lab.orch(&["--json", "data", "list"]).ok().json();
    assert!(listed.as_array().is_some_and(|r| r.len() > 3), "{listed}");
    // A retired resource and a gap left by gc travel too.
    let redb = ResourceStore::new(lab.repo.path().join(".orch/data.redb"), options());
    for i in 0..4 {
        redb.commit_writes("extra", &provenance("p"), &[write("vm", "old", json!(i))])
            .unwrap();
    }
    redb.commit_writes(
        "extra",
        &provenance("p"),
        &[PendingWrite::retire("vm", "old")],
    )
    .unwrap();
    let rules = BTreeMap::from([(
        ("extra".to_string(), "vm".to_string()),
        KeepRule::Versions(2),
    )]);
    assert_eq!(redb.gc_versions(&rules, false).unwrap().len(), 3);
    let url = postgres::fresh_database();
    let copied = orch_pg(
        &lab,
        &[
            "--json",
            "datastore",
            "copy",
            "--from",
            "redb",
            "--to",
            &url,
        ],
    )
    .ok()
    .json();
    assert!(
        copied["copied"]["versions"].as_u64().unwrap() > 3,
        "{copied}"
    );
    assert_eq!(copied["copied"]["runs"], 2, "{copied}");
    let pg = ResourceStore::postgres(&url, Some(postgres::PASSWORD), options());
    assert_same_history(&redb, &pg);
    let kept: Vec<u64> = pg
        .versions("extra", "vm", "old")
        .unwrap()
        .iter()
        .map(|v| v.version)
        .collect();
    assert_eq!(kept, vec![4, 5]);
    assert!(pg.latest("extra", "vm", "old").unwrap().unwrap().retired);
    // Into a store that holds data: refused, nothing changes.
    let again = orch_pg(&lab, &["datastore", "copy", "--from", "redb", "--to", &url]);
    assert_ne!(again.code, 0);
    assert!(again.all().contains("already holds"), "{}", again.all());
    assert_same_history(&redb, &pg);

    // And back, into another repository's empty redb file.
    let other = support::TestRepo::new(&[]);
    let mut cmd = other.command(&["datastore", "copy", "--from", &url, "--to", "redb"]);
    cmd.env("PGPASSWORD", postgres::PASSWORD);
    support::Run::from_output(cmd.output().unwrap()).ok();
    let back = ResourceStore::new(other.path().join(".orch/data.redb"), options());
    assert_same_history(&pg, &back);
    let numbers = back.latest_versions_of("fleet").unwrap();
    let (spec_name, latest) = numbers.iter().next().unwrap();
    let next = back
        .commit_writes(
            "fleet",
            &provenance("after"),
            &[write(&spec_name.0, &spec_name.1, json!({}))],
        )
        .unwrap();
    assert_eq!(next, vec![latest + 1], "numbering continues after the copy");
}

#[test]
fn two_processes_syncing_into_one_database_at_once_both_succeed_with_contiguous_versions() {
    use support::lab::Lab;
    let url = postgres::fresh_database();
    let (site_a, site_b) = (
        Lab::with_config(Default::default()),
        Lab::with_config(Default::default()),
    );
    use_postgres(&site_a, &url);
    use_postgres(&site_b, &url);
    orch_pg(&site_a, &["datastore", "migrate"]).ok();
    // Both against one node (a cron host and a laptop): the node's auth ticket is shared data,
    // so two different nodes under the same model names would overwrite each other's ticket.
    let spawn = |lab: &Lab| {
        let mut cmd = lab.repo.command(&["run", "sync-fleet"]);
        cmd.env("PROXMOX_API_URL", site_a.sim.url())
            .env("PGPASSWORD", postgres::PASSWORD)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        cmd.spawn().expect("spawn orch")
    };
    let (a, b) = (spawn(&site_a), spawn(&site_b));
    for child in [a, b] {
        support::Run::from_output(child.wait_with_output().unwrap()).ok();
    }
    let store = ResourceStore::postgres(&url, Some(postgres::PASSWORD), options());
    let keys = store.list(None).unwrap();
    assert!(keys.len() > 3);
    for k in keys {
        let numbers: Vec<u64> = store
            .versions(&k.model, &k.spec, &k.name)
            .unwrap()
            .iter()
            .map(|v| v.version)
            .collect();
        assert_eq!(numbers, (1..=k.latest).collect::<Vec<u64>>(), "{k:?}");
    }
    assert_eq!(store.list_runs(10).unwrap().len(), 2);
}
