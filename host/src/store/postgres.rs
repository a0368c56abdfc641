//! The PostgreSQL backend of [`ResourceStore`] (`datastore: { postgres: … }` in orch.yaml).
//!
//! It keeps the guarantees of the redb store (see the module documentation of `store`):
//!
//! - **Where the client runs.** The store's API is synchronous and is called both from plain
//!   threads and from inside tokio tasks, so the blocking client (`postgres`, which drives
//!   `tokio-postgres` on a runtime of its own) lives on threads of its own, one connection
//!   each (a store and its clones start with one and grow to [`MAX_CONNECTIONS`] while all are
//!   busy); an operation sends a job and waits for the answer on a channel. The caller's
//!   runtime is never blocked on, so nothing can deadlock on it.
//! - **All or nothing.** Each method's writes are one transaction. A version number is
//!   allocated inside it by an upsert of the resource's `orch_latest` row, which holds that
//!   row's lock until the commit: two processes never get the same number, and a transaction
//!   that rolls back gives its number back, so versions stay contiguous. A deadlock or
//!   serialization failure between two writers runs the whole transaction again.
//! - **Schema.** `schema_version` holds the version of the tables; [`migrate`](PgBackend::migrate)
//!   (`orch datastore migrate`) applies the missing migrations in one transaction under an
//!   advisory lock. An operation on a database older than this orch asks for the migration; one
//!   on a newer database refuses with "upgrade orch".
//! - **Secrets.** The password comes from the caller (the environment or the vault), never
//!   from a file orch writes; errors name the URL with any password masked.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use postgres::error::SqlState;
use postgres::{Client, IsolationLevel, NoTls, Transaction};

use super::error::StoreError;
use super::gc::{DeletedVersion, KeepRule};
use super::resources::{VersionRecord, describe};
use super::types::{
    ChangeWindow, LastSeen, PendingWrite, Provenance, QueueClaim, ResourceChange, ResourceKey,
    ResourceSummary, ResourceVersion, RunOwner, RunRecord, RunStatus, RunSummary, Tags,
};

/// The schema version this orch reads and writes.
pub const SCHEMA_VERSION: i32 = 2;

/// Shorter run id prefixes are too likely to match by accident (as in the redb store).
const MIN_PREFIX_LEN: usize = 6;
const AMBIGUOUS_SHOWN: usize = 5;
/// How many times a transaction that lost a deadlock or serialization race is run again.
const RETRIES: usize = 20;
/// The advisory lock `migrate` holds, so two processes never migrate at once.
const MIGRATE_LOCK: i64 = 0x006f_7263_686d_6967;

/// Migration N brings the schema from version N-1 to N.
const MIGRATIONS: &[&str] = &[
    // 1: versions, the latest index, sightings and runs.
    r#"
    CREATE TABLE orch_resource_versions (
        model text COLLATE "C" NOT NULL,
        spec text COLLATE "C" NOT NULL,
        name text COLLATE "C" NOT NULL,
        version bigint NOT NULL CHECK (version > 0),
        time text COLLATE "C" NOT NULL,
        run_id text COLLATE "C" NOT NULL,
        retired boolean NOT NULL,
        record text NOT NULL,
        PRIMARY KEY (model, spec, name, version)
    );
    CREATE INDEX orch_resource_versions_by_time
        ON orch_resource_versions (time, model, spec, name, version);
    CREATE TABLE orch_latest (
        model text COLLATE "C" NOT NULL,
        spec text COLLATE "C" NOT NULL,
        name text COLLATE "C" NOT NULL,
        version bigint NOT NULL,
        PRIMARY KEY (model, spec, name)
    );
    CREATE TABLE orch_last_seen (
        model text COLLATE "C" NOT NULL,
        spec text COLLATE "C" NOT NULL,
        name text COLLATE "C" NOT NULL,
        run_id text NOT NULL,
        step text NOT NULL,
        time text NOT NULL,
        version bigint NOT NULL,
        PRIMARY KEY (model, spec, name)
    );
    CREATE TABLE orch_runs (
        id text COLLATE "C" PRIMARY KEY,
        rev bigint NOT NULL,
        record text NOT NULL,
        summary text NOT NULL,
        owner text
    );
    "#,
    // 2: the worker queue (`crate::worker`). Before, the queue created these tables itself
    // with a version table of its own; a database that has them keeps their rows.
    r#"
    CREATE TABLE IF NOT EXISTS orch_workers (
        name text COLLATE "C" PRIMARY KEY,
        labels text[] NOT NULL,
        concurrency integer NOT NULL,
        host text NOT NULL,
        pid integer NOT NULL,
        lease_seconds integer NOT NULL,
        started_at timestamptz NOT NULL DEFAULT now(),
        heartbeat timestamptz NOT NULL DEFAULT now(),
        stopped boolean NOT NULL DEFAULT false
    );
    CREATE TABLE IF NOT EXISTS orch_queue (
        id bigserial PRIMARY KEY,
        run_id text NOT NULL,
        step text NOT NULL,
        model text NOT NULL,
        method text NOT NULL,
        kind text NOT NULL,
        labels text[] NOT NULL,
        plugin text NOT NULL,
        plugin_version text NOT NULL,
        call text NOT NULL,
        state text NOT NULL DEFAULT 'ready',
        worker text,
        lost_workers text[] NOT NULL DEFAULT '{}',
        lease_until timestamptz,
        attempts integer NOT NULL DEFAULT 0,
        result text,
        error text,
        created_at timestamptz NOT NULL DEFAULT now(),
        finished_at timestamptz
    );
    ALTER TABLE orch_queue ADD COLUMN IF NOT EXISTS logs text;
    DROP INDEX IF EXISTS orch_queue_ready;
    DROP INDEX IF EXISTS orch_queue_by_worker;
    CREATE INDEX orch_queue_ready ON orch_queue (id) WHERE state = 'ready';
    CREATE INDEX orch_queue_by_worker ON orch_queue (worker)
        WHERE state IN ('running', 'committed');
    CREATE INDEX orch_queue_by_run ON orch_queue (run_id);
    CREATE TABLE orch_coordinators (
        run_id text COLLATE "C" PRIMARY KEY,
        host text NOT NULL,
        pid integer NOT NULL,
        lease_seconds integer NOT NULL,
        started_at timestamptz NOT NULL DEFAULT now(),
        heartbeat timestamptz NOT NULL DEFAULT now()
    );
    DROP TABLE IF EXISTS orch_queue_schema;
    "#,
];

/// A job for the client thread.
type Job = Box<dyn FnOnce(&mut Session) + Send>;

/// The client thread's side: the configuration and, once connected, the client.
struct Session {
    /// The connection settings, or why there are none (a bad URL, a password not found).
    config: Result<postgres::Config, String>,
    url: String,
    client: Option<Client>,
    /// How long a statement waits for another transaction's lock (`lockWaitSeconds`).
    lock_wait: std::time::Duration,
    /// Whether the connected database's schema was found current.
    checked: bool,
}

/// One PostgreSQL connection on a thread of its own, shared by a store and its clones.
pub(super) struct PgBackend {
    url: String,
    jobs: mpsc::Sender<Job>,
    pool: Arc<Pool>,
}

/// The client threads of one backend: a new one (with its own connection) starts when every
/// thread is busy, up to [`MAX_CONNECTIONS`], so `orch serve`'s concurrent readers do not queue
/// behind one connection while a CLI command keeps just one.
struct Pool {
    queue: Mutex<mpsc::Receiver<Job>>,
    config: Result<postgres::Config, String>,
    url: String,
    lock_wait: std::time::Duration,
    threads: AtomicUsize,
    /// Jobs sent and not yet finished.
    pending: AtomicUsize,
}

/// The most connections one store (and its clones) opens.
const MAX_CONNECTIONS: usize = 4;

impl Pool {
    /// Starts one more client thread; false if the system refused.
    fn grow(self: &Arc<Self>) -> bool {
        let pool = self.clone();
        let mut session = Session {
            config: self.config.clone(),
            url: self.url.clone(),
            client: None,
            lock_wait: self.lock_wait,
            checked: false,
        };
        let started = std::thread::Builder::new()
            .name("orch-postgres".to_string())
            .spawn(move || {
                loop {
                    // Ends when the last store holding the sender is dropped.
                    let job = match pool.queue.lock() {
                        Ok(queue) => queue.recv(),
                        Err(_) => return,
                    };
                    let Ok(job) = job else { return };
                    job(&mut session);
                    pool.pending.fetch_sub(1, Ordering::SeqCst);
                }
            })
            .is_ok();
        if started {
            self.threads.fetch_add(1, Ordering::SeqCst);
        }
        started
    }
}

impl std::fmt::Debug for PgBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgBackend")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// `url` with any password replaced by `***`, for messages.
pub fn mask_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_string(),
        },
        None => {
            // A `password=` query parameter is a password too.
            if tail.contains("password=") {
                format!("{scheme}://{authority}?(parameters masked)")
            } else {
                url.to_string()
            }
        }
    }
}

fn pg_error(url: &str, e: &postgres::Error) -> StoreError {
    let message = match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                text.push_str(": ");
                text.push_str(&s.to_string());
                source = s.source();
            }
            text
        }
    };
    StoreError::Postgres {
        url: url.to_string(),
        message,
    }
}

fn is_retryable(e: &postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(c) if *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE
    )
}

/// The advisory lock key of one resource: FNV-1a over its names, stable across processes
/// and builds (every orch that writes the database must agree on it).
fn resource_lock(model: &str, spec: &str, name: &str) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in [model, spec, name] {
        for byte in part.bytes().chain([0]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    hash as i64
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Records that resource `key` was seen at `version`, a later sighting of it replacing an
/// earlier one in place (so each resource is upserted once, at its first position).
fn see<'a>(
    seen: &mut Vec<((&'a str, &'a str), u64)>,
    at: &mut HashMap<(&'a str, &'a str), usize>,
    key: (&'a str, &'a str),
    version: u64,
) {
    match at.get(&key) {
        Some(&i) => seen[i] = (key, version),
        None => {
            at.insert(key, seen.len());
            seen.push((key, version));
        }
    }
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

impl Session {
    fn client(&mut self) -> Result<&mut Client, StoreError> {
        if self.client.as_ref().is_some_and(Client::is_closed) {
            self.client = None;
            self.checked = false;
        }
        if self.client.is_none() {
            let config = self
                .config
                .as_ref()
                .map_err(|message| StoreError::Postgres {
                    url: self.url.clone(),
                    message: message.clone(),
                })?;
            let mut client = config.connect(NoTls).map_err(|e| pg_error(&self.url, &e))?;
            // Like the redb store's lock wait: a writer held up longer fails instead of hanging.
            client
                .batch_execute(&format!(
                    "SET lock_timeout = {}",
                    self.lock_wait.as_millis().max(1)
                ))
                .map_err(|e| pg_error(&self.url, &e))?;
            self.client = Some(client);
        }
        Ok(self.client.as_mut().expect("connected above"))
    }

    /// The client, after checking once per connection that the schema is this orch's.
    fn current(&mut self) -> Result<&mut Client, StoreError> {
        let url = self.url.clone();
        let checked = self.checked;
        let client = self.client()?;
        if !checked {
            let found = schema_version(client, &url)?;
            if found > SCHEMA_VERSION {
                return Err(StoreError::SchemaTooNew {
                    url,
                    found,
                    supported: SCHEMA_VERSION,
                });
            }
            if found < SCHEMA_VERSION {
                return Err(StoreError::SchemaTooOld {
                    url,
                    found,
                    supported: SCHEMA_VERSION,
                });
            }
            self.checked = true;
        }
        Ok(self.client.as_mut().expect("connected above"))
    }
}

fn schema_version(client: &mut Client, url: &str) -> Result<i32, StoreError> {
    let exists = client
        .query_one("SELECT to_regclass('schema_version') IS NOT NULL", &[])
        .map_err(|e| pg_error(url, &e))?
        .get::<_, bool>(0);
    if !exists {
        return Ok(0);
    }
    let row = client
        .query_opt("SELECT max(version) FROM schema_version", &[])
        .map_err(|e| pg_error(url, &e))?;
    Ok(row.and_then(|r| r.get::<_, Option<i32>>(0)).unwrap_or(0))
}

impl PgBackend {
    /// A backend for `url` (a `postgres://` URL or key=value string), with `password` if given
    /// (it overrides any in the URL), or the reason there is no password. Nothing connects
    /// until the first operation, and a bad URL or a missing password is that operation's error.
    pub(super) fn new(
        url: &str,
        password: Result<Option<String>, String>,
        lock_wait: std::time::Duration,
    ) -> Self {
        let masked = mask_url(url);
        let config = postgres::Config::from_str(url)
            .map_err(|e| format!("not a PostgreSQL connection URL: {e}"))
            .and_then(|mut config| {
                if let Some(password) = password? {
                    config.password(password);
                }
                if config.get_application_name().is_none() {
                    config.application_name("orch");
                }
                Ok(config)
            });
        let (jobs, queue) = mpsc::channel::<Job>();
        let pool = Arc::new(Pool {
            queue: Mutex::new(queue),
            config,
            url: masked.clone(),
            lock_wait,
            threads: AtomicUsize::new(0),
            pending: AtomicUsize::new(0),
        });
        Self {
            url: masked,
            jobs,
            pool,
        }
    }

    /// The URL with its password masked.
    pub(super) fn url(&self) -> &str {
        &self.url
    }

    fn path(&self) -> PathBuf {
        PathBuf::from(&self.url)
    }

    fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Session) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = mpsc::sync_channel(1);
        let job: Job = Box::new(move |session| {
            let _ = tx.send(job(session));
        });
        let gone = || StoreError::Postgres {
            url: self.url.clone(),
            message: "the client thread ended, or could not start".to_string(),
        };
        let pending = self.pool.pending.fetch_add(1, Ordering::SeqCst) + 1;
        let threads = self.pool.threads.load(Ordering::SeqCst);
        if pending > threads && threads < MAX_CONNECTIONS && !self.pool.grow() && threads == 0 {
            self.pool.pending.fetch_sub(1, Ordering::SeqCst);
            return Err(gone());
        }
        self.jobs.send(job).map_err(|_| gone())?;
        rx.recv().map_err(|_| gone())?
    }

    /// Runs `body` in one transaction on a current schema, again when it loses a deadlock or
    /// serialization race; `read_only` reads one snapshot.
    fn transaction<T: Send + 'static>(
        &self,
        read_only: bool,
        body: impl Fn(&mut Transaction<'_>, &str) -> Result<T, TxError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.run(move |session| {
            let url = session.url.clone();
            let mut attempt = 0;
            loop {
                attempt += 1;
                let client = session.current()?;
                let mut builder = client.build_transaction();
                if read_only {
                    builder = builder
                        .isolation_level(IsolationLevel::RepeatableRead)
                        .read_only(true);
                }
                let mut txn = builder.start().map_err(|e| pg_error(&url, &e))?;
                let out = body(&mut txn, &url).and_then(|out| {
                    txn.commit()?;
                    Ok(out)
                });
                match out {
                    Ok(out) => return Ok(out),
                    Err(TxError::Pg(e)) if is_retryable(&e) && attempt < RETRIES => continue,
                    Err(TxError::Pg(e)) => return Err(pg_error(&url, &e)),
                    Err(TxError::Store(e)) => return Err(e),
                }
            }
        })
    }

    /// Applies every missing migration; returns the schema version before and after.
    pub(super) fn migrate(&self) -> Result<(i32, i32), StoreError> {
        self.run(|session| {
            let url = session.url.clone();
            let client = session.client()?;
            let pg = |e: postgres::Error| pg_error(&url, &e);
            let mut txn = client.transaction().map_err(pg)?;
            txn.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATE_LOCK])
                .map_err(pg)?;
            txn.batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())")
                .map_err(pg)?;
            let found: i32 = txn
                .query_one("SELECT coalesce(max(version), 0) FROM schema_version", &[])
                .map_err(pg)?
                .get(0);
            if found > SCHEMA_VERSION {
                return Err(StoreError::SchemaTooNew {
                    url,
                    found,
                    supported: SCHEMA_VERSION,
                });
            }
            for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
                txn.batch_execute(sql).map_err(pg)?;
                let version = i as i32 + 1;
                txn.execute(
                    "INSERT INTO schema_version (version) VALUES ($1)",
                    &[&version],
                )
                .map_err(pg)?;
            }
            txn.commit().map_err(pg)?;
            session.checked = false;
            Ok((found, SCHEMA_VERSION))
        })
    }

    /// The schema version of the database (0 before the first migration).
    pub(super) fn schema_version(&self) -> Result<i32, StoreError> {
        self.run(|session| {
            let url = session.url.clone();
            schema_version(session.client()?, &url)
        })
    }

    pub(super) fn commit_writes(
        &self,
        model: &str,
        provenance: &Provenance,
        tags: &Tags,
        writes: &[PendingWrite],
        claim: Option<QueueClaim>,
    ) -> Result<Vec<u64>, StoreError> {
        let (model, provenance, tags, writes) = (
            model.to_string(),
            provenance.clone(),
            tags.clone(),
            writes.to_vec(),
        );
        let path = self.path();
        self.transaction(false, move |txn, _| {
            // A worker's step: only while the step is still its own. The row lock this takes
            // holds off the coordinator's lease expiry until the commit, and after it the row
            // is `committed`, which the coordinator never hands to another worker.
            if let Some(claim) = &claim {
                let held = txn.execute(
                    "UPDATE orch_queue SET state = 'committed' \
                     WHERE id = $1 AND worker = $2 AND state = 'running'",
                    &[&claim.id, &claim.worker],
                )?;
                if held == 0 {
                    return Err(TxError::Store(StoreError::LeaseLost {
                        worker: claim.worker.clone(),
                        id: claim.id,
                    }));
                }
            }
            let (run, step, time) = (&provenance.run_id, &provenance.step, &provenance.time);
            // Every writer of a resource first takes its advisory lock, all in one global
            // order (sorted hashes), so two batches that share resources queue instead of
            // deadlocking on the rows they update in batch order.
            let mut locks: Vec<i64> = writes
                .iter()
                .map(|w| resource_lock(&model, &w.spec, &w.name))
                .collect();
            locks.sort_unstable();
            locks.dedup();
            txn.execute(
                "SELECT count(pg_advisory_xact_lock(k)) FROM unnest($1::bigint[]) AS k",
                &[&locks],
            )?;
            // A few set-based statements per batch, whatever its size: a round trip per write
            // made a 10,000-VM sync take seconds.
            let mut assigned = vec![0u64; writes.len()];
            // Versions to store per resource, in the order resources first appear.
            let mut counts: Vec<((&str, &str), i64)> = Vec::new();
            let mut slot_of: HashMap<(&str, &str), usize> = HashMap::new();
            for w in writes.iter().filter(|w| w.unchanged.is_none()) {
                let key = (w.spec.as_str(), w.name.as_str());
                let i = *slot_of.entry(key).or_insert_with(|| {
                    counts.push((key, 0));
                    counts.len() - 1
                });
                counts[i].1 += 1;
            }
            // Each resource's `latest` moves by its count; the row lock this upsert takes is
            // held until the commit, so no other writer takes the same numbers, and a
            // rollback gives them back.
            let mut next: HashMap<(String, String), u64> = HashMap::new();
            if !counts.is_empty() {
                let specs: Vec<&str> = counts.iter().map(|((s, _), _)| *s).collect();
                let names: Vec<&str> = counts.iter().map(|((_, n), _)| *n).collect();
                let adds: Vec<i64> = counts.iter().map(|(_, c)| *c).collect();
                let rows = txn.query(
                    "INSERT INTO orch_latest (model, spec, name, version)
                     SELECT $1, s, n, c FROM unnest($2::text[], $3::text[], $4::bigint[])
                       AS t(s, n, c)
                     ON CONFLICT (model, spec, name)
                     DO UPDATE SET version = orch_latest.version + EXCLUDED.version
                     RETURNING spec, name, version",
                    &[&model, &specs, &names, &adds],
                )?;
                for row in rows {
                    let (spec, name, last): (String, String, i64) =
                        (row.get(0), row.get(1), row.get(2));
                    let count = slot_of
                        .get(&(spec.as_str(), name.as_str()))
                        .map_or(1, |&i| counts[i].1);
                    next.insert((spec, name), to_u64(last - count + 1));
                }
            }
            let mut specs = Vec::new();
            let mut names = Vec::new();
            let mut versions = Vec::new();
            let mut retired = Vec::new();
            let mut records = Vec::new();
            // When each resource was last seen: sightings first, then stored versions in batch
            // order, so a stored version of the same resource in this batch wins.
            let mut seen: Vec<((&str, &str), u64)> = Vec::new();
            let mut seen_at: HashMap<(&str, &str), usize> = HashMap::new();
            for (slot, write) in assigned.iter_mut().zip(&writes) {
                if let Some(version) = write.unchanged {
                    see(&mut seen, &mut seen_at, (&write.spec, &write.name), version);
                    *slot = version;
                }
            }
            for (slot, write) in assigned.iter_mut().zip(&writes) {
                if write.unchanged.is_some() {
                    continue;
                }
                let (spec, name) = (write.spec.as_str(), write.name.as_str());
                let Some(counter) = next.get_mut(&(spec.to_string(), name.to_string())) else {
                    return Err(TxError::Store(StoreError::Postgres {
                        url: path.display().to_string(),
                        message: format!("no version was numbered for {spec}/{name}"),
                    }));
                };
                let version = *counter;
                *counter += 1;
                let record = VersionRecord {
                    model: &model,
                    spec,
                    name,
                    version,
                    attributes: &write.attributes,
                    provenance: &provenance,
                    retired: write.retired,
                    tags: &tags,
                };
                let text = serde_json::to_string(&record).map_err(|source| StoreError::Encode {
                    record: describe(&model, spec, name, version),
                    source,
                })?;
                specs.push(spec);
                names.push(name);
                versions.push(to_i64(version));
                retired.push(write.retired);
                records.push(text);
                if !write.retired {
                    see(&mut seen, &mut seen_at, (spec, name), version);
                }
                *slot = version;
            }
            if !specs.is_empty() {
                let stored = txn.query(
                    "INSERT INTO orch_resource_versions
                       (model, spec, name, version, time, run_id, retired, record)
                     SELECT $1, s, n, v, $5, $6, r, rec
                       FROM unnest($2::text[], $3::text[], $4::bigint[], $7::bool[], $8::text[])
                       AS t(s, n, v, r, rec)
                     ON CONFLICT DO NOTHING
                     RETURNING spec, name, version",
                    &[
                        &model, &specs, &names, &versions, time, run, &retired, &records,
                    ],
                )?;
                if stored.len() < specs.len() {
                    let made: std::collections::HashSet<(String, String, i64)> = stored
                        .iter()
                        .map(|r| (r.get(0), r.get(1), r.get(2)))
                        .collect();
                    let i = (0..specs.len())
                        .find(|&i| {
                            !made.contains(&(
                                specs[i].to_string(),
                                names[i].to_string(),
                                versions[i],
                            ))
                        })
                        .unwrap_or(0);
                    return Err(TxError::Store(StoreError::VersionExists {
                        path: path.clone(),
                        record: describe(&model, specs[i], names[i], to_u64(versions[i])),
                    }));
                }
            }
            if !seen.is_empty() {
                let specs: Vec<&str> = seen.iter().map(|((s, _), _)| *s).collect();
                let names: Vec<&str> = seen.iter().map(|((_, n), _)| *n).collect();
                let versions: Vec<i64> = seen.iter().map(|(_, v)| to_i64(*v)).collect();
                txn.execute(
                    "INSERT INTO orch_last_seen (model, spec, name, run_id, step, time, version)
                     SELECT $1, s, n, $4, $5, $6, v
                       FROM unnest($2::text[], $3::text[], $7::bigint[]) AS t(s, n, v)
                     ON CONFLICT (model, spec, name) DO UPDATE SET run_id = EXCLUDED.run_id,
                       step = EXCLUDED.step, time = EXCLUDED.time, version = EXCLUDED.version",
                    &[&model, &specs, &names, run, step, time, &versions],
                )?;
            }
            Ok(assigned)
        })
    }

    fn decode<T: serde::de::DeserializeOwned>(
        url: &str,
        text: &str,
        record: impl FnOnce() -> String,
    ) -> Result<T, StoreError> {
        serde_json::from_str(text).map_err(|source| StoreError::Decode {
            path: PathBuf::from(url),
            record: record(),
            source,
        })
    }

    fn version_rows(
        txn: &mut Transaction<'_>,
        url: &str,
        sql: &str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<Vec<ResourceVersion>, TxError> {
        let mut out = Vec::new();
        for row in txn.query(sql, params)? {
            let (model, spec, name, version): (String, String, String, i64) =
                (row.get(0), row.get(1), row.get(2), row.get(3));
            let record: String = row.get(4);
            out.push(Self::decode(url, &record, || {
                describe(&model, &spec, &name, to_u64(version))
            })?);
        }
        Ok(out)
    }

    pub(super) fn latest(
        &self,
        model: &str,
        spec: &str,
        name: &str,
    ) -> Result<Option<ResourceVersion>, StoreError> {
        let key = [model.to_string(), spec.to_string(), name.to_string()];
        self.transaction(true, move |txn, url| {
            Ok(Self::version_rows(
                txn,
                url,
                "SELECT v.model, v.spec, v.name, v.version, v.record
                 FROM orch_latest l JOIN orch_resource_versions v
                   USING (model, spec, name, version)
                 WHERE l.model = $1 AND l.spec = $2 AND l.name = $3",
                &[&key[0], &key[1], &key[2]],
            )?
            .pop())
        })
    }

    /// The latest version of every resource of `model` (or all), in key order.
    fn latest_rows(
        txn: &mut Transaction<'_>,
        url: &str,
        model: Option<&str>,
    ) -> Result<Vec<ResourceVersion>, TxError> {
        Self::version_rows(
            txn,
            url,
            "SELECT v.model, v.spec, v.name, v.version, v.record
             FROM orch_latest l JOIN orch_resource_versions v USING (model, spec, name, version)
             WHERE $1::text IS NULL OR l.model = $1
             ORDER BY l.model, l.spec, l.name",
            &[&model],
        )
    }

    pub(super) fn latest_for_models(
        &self,
        models: &[&str],
    ) -> Result<BTreeMap<String, Vec<ResourceVersion>>, StoreError> {
        let models: Vec<String> = models.iter().map(|m| (*m).to_string()).collect();
        self.transaction(true, move |txn, url| {
            let mut out = BTreeMap::new();
            for model in &models {
                out.insert(model.clone(), Self::latest_rows(txn, url, Some(model))?);
            }
            Ok(out)
        })
    }

    pub(super) fn latest_versions_of(
        &self,
        model: &str,
    ) -> Result<HashMap<(String, String), u64>, StoreError> {
        let model = model.to_string();
        self.transaction(true, move |txn, _| {
            Ok(txn
                .query(
                    "SELECT spec, name, version FROM orch_latest WHERE model = $1",
                    &[&model],
                )?
                .into_iter()
                .map(|r| ((r.get(0), r.get(1)), to_u64(r.get(2))))
                .collect())
        })
    }

    pub(super) fn version(
        &self,
        model: &str,
        spec: &str,
        name: &str,
        version: u64,
    ) -> Result<Option<ResourceVersion>, StoreError> {
        let key = [model.to_string(), spec.to_string(), name.to_string()];
        let version = to_i64(version);
        self.transaction(true, move |txn, url| {
            Ok(Self::version_rows(
                txn,
                url,
                "SELECT model, spec, name, version, record FROM orch_resource_versions
                 WHERE model = $1 AND spec = $2 AND name = $3 AND version = $4",
                &[&key[0], &key[1], &key[2], &version],
            )?
            .pop())
        })
    }

    pub(super) fn versions(
        &self,
        model: &str,
        spec: &str,
        name: &str,
    ) -> Result<Vec<ResourceVersion>, StoreError> {
        let key = [model.to_string(), spec.to_string(), name.to_string()];
        self.transaction(true, move |txn, url| {
            Self::version_rows(
                txn,
                url,
                "SELECT model, spec, name, version, record FROM orch_resource_versions
                 WHERE model = $1 AND spec = $2 AND name = $3 ORDER BY version",
                &[&key[0], &key[1], &key[2]],
            )
        })
    }

    pub(super) fn find_by_name(
        &self,
        model: &str,
        name: &str,
    ) -> Result<Vec<ResourceKey>, StoreError> {
        let (model, name) = (model.to_string(), name.to_string());
        self.transaction(true, move |txn, _| {
            Ok(txn
                .query(
                    "SELECT model, spec, name, version FROM orch_latest
                     WHERE model = $1 AND name = $2 ORDER BY spec",
                    &[&model, &name],
                )?
                .into_iter()
                .map(|r| ResourceKey {
                    model: r.get(0),
                    spec: r.get(1),
                    name: r.get(2),
                    latest: to_u64(r.get(3)),
                })
                .collect())
        })
    }

    pub(super) fn list(&self, model: Option<&str>) -> Result<Vec<ResourceSummary>, StoreError> {
        let model = model.map(str::to_string);
        self.transaction(true, move |txn, url| {
            Ok(Self::latest_rows(txn, url, model.as_deref())?
                .into_iter()
                .map(|v| ResourceSummary {
                    model: v.model,
                    spec: v.spec,
                    name: v.name,
                    latest: v.version,
                    written_at: v.provenance.time,
                    retired: v.retired,
                    tags: v.tags,
                })
                .collect())
        })
    }

    pub(super) fn latest_live(
        &self,
        model: Option<&str>,
    ) -> Result<Vec<ResourceVersion>, StoreError> {
        let model = model.map(str::to_string);
        self.transaction(true, move |txn, url| {
            let mut all = Self::latest_rows(txn, url, model.as_deref())?;
            all.retain(|v| !v.retired);
            Ok(all)
        })
    }

    pub(super) fn last_seen(
        &self,
        model: &str,
        spec: &str,
        name: &str,
    ) -> Result<Option<LastSeen>, StoreError> {
        let key = [model.to_string(), spec.to_string(), name.to_string()];
        self.transaction(true, move |txn, _| {
            Ok(txn
                .query_opt(
                    "SELECT run_id, step, time, version FROM orch_last_seen
                     WHERE model = $1 AND spec = $2 AND name = $3",
                    &[&key[0], &key[1], &key[2]],
                )?
                .map(|r| LastSeen {
                    run_id: r.get(0),
                    step: r.get(1),
                    time: r.get(2),
                    version: to_u64(r.get(3)),
                }))
        })
    }

    pub(super) fn changes(&self, window: &ChangeWindow) -> Result<Vec<ResourceChange>, StoreError> {
        let window = window.clone();
        self.transaction(true, move |txn, url| {
            let rows = txn.query(
                "SELECT model, spec, name, version, record, run_id FROM orch_resource_versions
                 WHERE time >= $1 AND ($2::text IS NULL OR model = $2)
                   AND ($3::text IS NULL OR run_id > $3)
                 ORDER BY time, model, spec, name, version",
                &[&window.since, &window.model, &window.after_run],
            )?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                let (model, spec, name, version): (String, String, String, i64) =
                    (row.get(0), row.get(1), row.get(2), row.get(3));
                let found: ResourceVersion = Self::decode(url, row.get(4), || {
                    describe(&model, &spec, &name, to_u64(version))
                })?;
                // The nearest older version: `orch data gc` may have deleted the one just before.
                let previous = Self::version_rows(
                    txn,
                    url,
                    "SELECT model, spec, name, version, record FROM orch_resource_versions
                     WHERE model = $1 AND spec = $2 AND name = $3 AND version < $4
                     ORDER BY version DESC LIMIT 1",
                    &[&model, &spec, &name, &version],
                )?
                .pop();
                out.push(super::changes::change_of(found, previous));
            }
            out.reverse();
            Ok(out)
        })
    }

    fn encode_run(run: &RunRecord) -> Result<(String, String, Option<String>), StoreError> {
        let encode = |what: String, e| StoreError::Encode {
            record: what,
            source: e,
        };
        let record =
            serde_json::to_string(run).map_err(|e| encode(format!("run {}", run.id), e))?;
        let summary = serde_json::to_string(&RunSummary::of(run))
            .map_err(|e| encode(format!("summary of run {}", run.id), e))?;
        let owner = match run.status {
            RunStatus::Running => Some(
                serde_json::to_string(&run.owner)
                    .map_err(|e| encode(format!("owner of run {}", run.id), e))?,
            ),
            _ => None,
        };
        Ok((record, summary, owner))
    }

    pub(super) fn put_run(&self, run: &RunRecord) -> Result<(), StoreError> {
        let id = run.id.clone();
        let (record, summary, owner) = Self::encode_run(run)?;
        self.transaction(false, move |txn, _| {
            txn.execute(
                "INSERT INTO orch_runs (id, rev, record, summary, owner) VALUES ($1, 1, $2, $3, $4)
                 ON CONFLICT (id) DO UPDATE SET rev = orch_runs.rev + 1, record = EXCLUDED.record,
                   summary = EXCLUDED.summary, owner = EXCLUDED.owner",
                &[&id, &record, &summary, &owner],
            )?;
            Ok(())
        })
    }

    pub(super) fn active_runs(&self) -> Result<Vec<(String, Option<RunOwner>)>, StoreError> {
        self.transaction(true, |txn, url| {
            let mut out = Vec::new();
            for row in txn.query(
                "SELECT id, owner FROM orch_runs WHERE owner IS NOT NULL ORDER BY id",
                &[],
            )? {
                let id: String = row.get(0);
                let owner = Self::decode(url, row.get(1), || format!("owner of run {id}"))?;
                out.push((id, owner));
            }
            Ok(out)
        })
    }

    fn run_with_rev(
        txn: &mut Transaction<'_>,
        url: &str,
        id: &str,
        lock: bool,
    ) -> Result<Option<(RunRecord, i64)>, TxError> {
        let sql = if lock {
            "SELECT record, rev FROM orch_runs WHERE id = $1 FOR UPDATE"
        } else {
            "SELECT record, rev FROM orch_runs WHERE id = $1"
        };
        match txn.query_opt(sql, &[&id])? {
            Some(row) => Ok(Some((
                Self::decode(url, row.get(0), || format!("run {id}"))?,
                row.get(1),
            ))),
            None => Ok(None),
        }
    }

    fn store_run(txn: &mut Transaction<'_>, run: &RunRecord) -> Result<(), TxError> {
        let (record, summary, owner) = Self::encode_run(run)?;
        txn.execute(
            "UPDATE orch_runs SET rev = rev + 1, record = $2, summary = $3, owner = $4 WHERE id = $1",
            &[&run.id, &record, &summary, &owner],
        )?;
        Ok(())
    }

    pub(super) fn abandon_run(
        &self,
        id: &str,
        owner: Option<&RunOwner>,
        finished_at: &str,
        reason: &str,
    ) -> Result<Option<RunRecord>, StoreError> {
        let (id, owner, finished_at, reason) = (
            id.to_string(),
            owner.cloned(),
            finished_at.to_string(),
            reason.to_string(),
        );
        self.transaction(false, move |txn, url| {
            let Some((mut record, _)) = Self::run_with_rev(txn, url, &id, true)? else {
                return Ok(None);
            };
            if record.status == RunStatus::Running && record.owner == owner {
                record.status = RunStatus::Abandoned;
                record.finished_at = Some(finished_at.clone());
                record.error = Some(reason.clone());
                Self::store_run(txn, &record)?;
            }
            Ok(Some(record))
        })
    }

    /// Reads run `id` and its revision, for a change made on the caller's thread.
    pub(super) fn run_for_change(&self, id: &str) -> Result<Option<(RunRecord, i64)>, StoreError> {
        let id = id.to_string();
        self.transaction(true, move |txn, url| {
            Self::run_with_rev(txn, url, &id, false)
        })
    }

    /// Stores `run` if its revision is still `rev`; returns whether it did.
    pub(super) fn replace_run_if(&self, run: &RunRecord, rev: i64) -> Result<bool, StoreError> {
        let (record, summary, owner) = Self::encode_run(run)?;
        let id = run.id.clone();
        self.transaction(false, move |txn, _| {
            Ok(txn.execute(
                "UPDATE orch_runs SET rev = rev + 1, record = $2, summary = $3, owner = $4
                 WHERE id = $1 AND rev = $5",
                &[&id, &record, &summary, &owner, &rev],
            )? == 1)
        })
    }

    /// Rows whose id is `id` or starts with it (at most one more than can be shown), exact first.
    fn by_prefix(
        txn: &mut Transaction<'_>,
        column: &str,
        id: &str,
    ) -> Result<Vec<(String, String)>, TxError> {
        let exact = txn.query_opt(
            &format!("SELECT id, {column} FROM orch_runs WHERE id = $1"),
            &[&id],
        )?;
        if let Some(row) = exact {
            return Ok(vec![(row.get(0), row.get(1))]);
        }
        if id.len() < MIN_PREFIX_LEN {
            return Ok(Vec::new());
        }
        let limit = (AMBIGUOUS_SHOWN + 1) as i64;
        Ok(txn
            .query(
                &format!(
                    "SELECT id, {column} FROM orch_runs WHERE starts_with(id, $1) ORDER BY id LIMIT $2"
                ),
                &[&id, &limit],
            )?
            .into_iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
    }

    fn one_of(
        &self,
        prefix: &str,
        matches: Vec<(String, String)>,
    ) -> Result<Option<(String, String)>, StoreError> {
        match matches.len() {
            0 => Ok(None),
            1 => Ok(matches.into_iter().next()),
            _ => Err(StoreError::AmbiguousRunId {
                path: self.path(),
                prefix: prefix.to_string(),
                matches: matches
                    .into_iter()
                    .take(AMBIGUOUS_SHOWN)
                    .map(|(id, _)| id)
                    .collect(),
            }),
        }
    }

    pub(super) fn get_run(&self, id: &str) -> Result<Option<RunRecord>, StoreError> {
        let prefix = id.to_string();
        let matches =
            self.transaction(true, move |txn, _| Self::by_prefix(txn, "record", &prefix))?;
        match self.one_of(id, matches)? {
            Some((key, text)) => Self::decode(&self.url, &text, || format!("run {key}")).map(Some),
            None => Ok(None),
        }
    }

    pub(super) fn run_start(&self, id: &str) -> Result<Option<(String, String)>, StoreError> {
        let prefix = id.to_string();
        let matches =
            self.transaction(true, move |txn, _| Self::by_prefix(txn, "summary", &prefix))?;
        match self.one_of(id, matches)? {
            Some((key, text)) => {
                let summary: RunSummary =
                    Self::decode(&self.url, &text, || format!("summary of run {key}"))?;
                Ok(Some((summary.id, summary.started_at)))
            }
            None => Ok(None),
        }
    }

    fn newest<T: serde::de::DeserializeOwned + Send + 'static>(
        &self,
        column: &'static str,
        limit: usize,
        what: &'static str,
    ) -> Result<Vec<T>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.transaction(true, move |txn, url| {
            let mut out = Vec::new();
            for row in txn.query(
                &format!("SELECT id, {column} FROM orch_runs ORDER BY id DESC LIMIT $1"),
                &[&limit],
            )? {
                let id: String = row.get(0);
                out.push(Self::decode(url, row.get(1), || format!("{what} {id}"))?);
            }
            Ok(out)
        })
    }

    pub(super) fn list_run_summaries(&self, limit: usize) -> Result<Vec<RunSummary>, StoreError> {
        self.newest("summary", limit, "summary of run")
    }

    pub(super) fn list_runs(&self, limit: usize) -> Result<Vec<RunRecord>, StoreError> {
        self.newest("record", limit, "run")
    }

    pub(super) fn gc_versions(
        &self,
        rules: &BTreeMap<(String, String), KeepRule>,
        dry_run: bool,
    ) -> Result<Vec<DeletedVersion>, StoreError> {
        let rules = rules.clone();
        self.transaction(dry_run, move |txn, url| {
            let mut doomed = Vec::new();
            for ((model, spec), rule) in &rules {
                // Never the latest version, nor the one the last sighting points to.
                let rows = txn.query(
                    "SELECT v.name, v.version, v.record FROM orch_resource_versions v
                     JOIN orch_latest l USING (model, spec, name)
                     LEFT JOIN orch_last_seen s USING (model, spec, name)
                     WHERE v.model = $1 AND v.spec = $2 AND v.version < l.version
                       AND (s.version IS NULL OR v.version <> s.version)
                       AND ($3::bigint IS NULL OR v.version + $3 <= l.version)
                     ORDER BY v.name, v.version",
                    &[
                        model,
                        spec,
                        &match rule {
                            KeepRule::Versions(n) => Some(to_i64(*n)),
                            KeepRule::Since(_) => None,
                        },
                    ],
                )?;
                for row in rows {
                    let (name, version): (String, i64) = (row.get(0), row.get(1));
                    let stored: ResourceVersion = Self::decode(url, row.get(2), || {
                        describe(model, spec, &name, to_u64(version))
                    })?;
                    if let KeepRule::Since(cutoff) = rule
                        && stored.provenance.time >= *cutoff
                    {
                        continue;
                    }
                    doomed.push(DeletedVersion {
                        model: model.clone(),
                        spec: spec.clone(),
                        name,
                        version: to_u64(version),
                        time: stored.provenance.time,
                    });
                }
            }
            if !dry_run {
                for d in &doomed {
                    txn.execute(
                        "DELETE FROM orch_resource_versions
                         WHERE model = $1 AND spec = $2 AND name = $3 AND version = $4",
                        &[&d.model, &d.spec, &d.name, &to_i64(d.version)],
                    )?;
                }
            }
            Ok(doomed)
        })
    }

    pub(super) fn gc_runs(
        &self,
        cutoff: &str,
        dry_run: bool,
    ) -> Result<Vec<RunSummary>, StoreError> {
        let cutoff = cutoff.to_string();
        self.transaction(dry_run, move |txn, url| {
            let lock = if dry_run { "" } else { " FOR UPDATE" };
            let mut deleted = Vec::new();
            for row in txn.query(
                &format!(
                    "SELECT id, summary FROM orch_runs WHERE owner IS NULL ORDER BY id DESC{lock}"
                ),
                &[],
            )? {
                let id: String = row.get(0);
                let summary: RunSummary =
                    Self::decode(url, row.get(1), || format!("summary of run {id}"))?;
                let finished = matches!(
                    summary.status,
                    RunStatus::Succeeded
                        | RunStatus::Failed
                        | RunStatus::Abandoned
                        | RunStatus::Cancelled
                ) && summary
                    .finished_at
                    .as_deref()
                    .is_some_and(|at| at < cutoff.as_str());
                if !finished {
                    continue;
                }
                if !dry_run {
                    txn.execute("DELETE FROM orch_runs WHERE id = $1", &[&id])?;
                }
                deleted.push(summary);
            }
            Ok(deleted)
        })
    }
}

impl PgBackend {
    /// Bytes the orch tables take in the database, indexes included (0 if unreadable).
    pub(super) fn size(&self) -> u64 {
        self.transaction(true, |txn, _| {
            let bytes: i64 = txn
                .query_one(
                    "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint
                     FROM pg_class c WHERE c.relkind = 'r' AND c.relname LIKE 'orch\\_%'",
                    &[],
                )?
                .get(0);
            Ok(to_u64(bytes))
        })
        .unwrap_or(0)
    }

    /// `VACUUM` of the tables gc deletes from, so their space is reused (PostgreSQL keeps it in
    /// the files; an operator's `VACUUM FULL` gives it back to the file system).
    pub(super) fn vacuum(&self) -> Result<(), StoreError> {
        self.run(|session| {
            let url = session.url.clone();
            session
                .current()?
                .batch_execute("VACUUM orch_resource_versions, orch_runs")
                .map_err(|e| pg_error(&url, &e))
        })
    }

    pub(super) fn import_histories(
        &self,
        histories: &[super::copy::ResourceHistory],
    ) -> Result<(), StoreError> {
        let histories = histories.to_vec();
        let path = self.path();
        self.transaction(false, move |txn, _| {
            for history in &histories {
                let Some(newest) = history.versions.last() else {
                    continue;
                };
                let (model, spec, name) = (&newest.model, &newest.spec, &newest.name);
                for v in &history.versions {
                    let record = describe(model, spec, name, v.version);
                    let text = serde_json::to_string(v).map_err(|source| StoreError::Encode {
                        record: record.clone(),
                        source,
                    })?;
                    let inserted = txn.execute(
                        "INSERT INTO orch_resource_versions
                           (model, spec, name, version, time, run_id, retired, record)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
                        &[
                            model,
                            spec,
                            name,
                            &to_i64(v.version),
                            &v.provenance.time,
                            &v.provenance.run_id,
                            &v.retired,
                            &text,
                        ],
                    )?;
                    if inserted == 0 {
                        return Err(TxError::Store(StoreError::VersionExists {
                            path: path.clone(),
                            record,
                        }));
                    }
                }
                txn.execute(
                    "INSERT INTO orch_latest (model, spec, name, version) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (model, spec, name) DO UPDATE SET version = EXCLUDED.version",
                    &[model, spec, name, &to_i64(newest.version)],
                )?;
                if let Some(s) = &history.last_seen {
                    txn.execute(
                        "INSERT INTO orch_last_seen (model, spec, name, run_id, step, time, version)
                         VALUES ($1, $2, $3, $4, $5, $6, $7)
                         ON CONFLICT (model, spec, name) DO UPDATE SET run_id = EXCLUDED.run_id,
                           step = EXCLUDED.step, time = EXCLUDED.time, version = EXCLUDED.version",
                        &[model, spec, name, &s.run_id, &s.step, &s.time, &to_i64(s.version)],
                    )?;
                }
            }
            Ok(())
        })
    }
}

/// What a transaction body can fail with: PostgreSQL (maybe worth a retry) or the store.
pub(super) enum TxError {
    Pg(postgres::Error),
    Store(StoreError),
}

impl From<postgres::Error> for TxError {
    fn from(e: postgres::Error) -> Self {
        TxError::Pg(e)
    }
}

impl From<StoreError> for TxError {
    fn from(e: StoreError) -> Self {
        TxError::Store(e)
    }
}

#[cfg(test)]
mod tests {
    use super::mask_url;

    #[test]
    fn a_password_in_the_url_is_masked() {
        assert_eq!(
            mask_url("postgres://orch:s3cret@db.lan:5432/orch"),
            "postgres://orch:***@db.lan:5432/orch"
        );
        assert_eq!(
            mask_url("postgres://orch@db.lan/orch"),
            "postgres://orch@db.lan/orch"
        );
        assert!(!mask_url("postgres://db.lan/orch?user=o&password=s3cret").contains("s3cret"));
    }
}
