use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::time::{Duration, Instant};

use redb::{
    Builder, ConcurrencyMode, Database, DatabaseError, ReadOnlyDatabase, ReadOnlyTable,
    ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition, TableError, TableHandle,
    TransactionError, WriteTransaction,
};

use super::error::StoreError;

/// Resource versions: `(model, spec, name, version)` → JSON of a `ResourceVersion`.
pub(super) const RESOURCES: TableDefinition<(&str, &str, &str, u64), &[u8]> =
    TableDefinition::new("resources");
/// Newest version per resource: `(model, spec, name)` → version.
pub(super) const LATEST: TableDefinition<(&str, &str, &str), u64> = TableDefinition::new("latest");
/// Run records: run id → JSON of a `RunRecord`.
pub(super) const RUNS: TableDefinition<&str, &[u8]> = TableDefinition::new("runs");
/// When each resource was last seen: `(model, spec, name)` → `(run id, step, time, version)`,
/// overwritten by every write of it, including those that change only volatile attributes and
/// store no version.
pub(super) const LAST_SEEN: TableDefinition<ResourceName, Sighting> =
    TableDefinition::new("last_seen");
/// `(model, spec, name)`.
pub(super) type ResourceName = (&'static str, &'static str, &'static str);
/// `(run id, step, time, version)` of the write that last saw a resource.
pub(super) type Sighting = (&'static str, &'static str, &'static str, u64);
/// Every stored version by commit time: `(time, model, spec, name, version)` → run id, so
/// `orch data changes` reads only the versions of its window.
pub(super) const VERSIONS_BY_TIME: TableDefinition<TimeKey, &str> =
    TableDefinition::new("versions_by_time");
/// `(commit time, model, spec, name, version)`.
pub(super) type TimeKey = (&'static str, &'static str, &'static str, &'static str, u64);
/// Bookkeeping such as the layout version.
pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

pub(super) const LAYOUT_KEY: &str = "layout_version";
/// Bumped whenever the tables or record shapes change. 1: resources, latest, runs, active_runs.
/// 2: adds `run_summaries`, which an open of a layout-1 file fills from `runs` in place.
/// 3: adds `last_seen` and `versions_by_time`, which an open of an older file fills from
/// `resources` in place.
pub(super) const LAYOUT_VERSION: u64 = 3;

/// How long an operation waits for another process by default.
pub const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(30);
const FIRST_BACKOFF: Duration = Duration::from_millis(2);
const MAX_BACKOFF: Duration = Duration::from_millis(50);
// Short waits are normal when two runs overlap; only a long one deserves the user's attention.
const WARN_AFTER: Duration = Duration::from_secs(1);
// The handle lives for the whole process now, but one command touches a few MiB at most.
const CACHE_BYTES: usize = 32 * 1024 * 1024;

/// Tunables for a [`ResourceStore`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreOptions {
    /// How long one operation waits for another process to release the file before failing with [`StoreError::Busy`].
    pub lock_wait: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            lock_wait: DEFAULT_LOCK_WAIT,
        }
    }
}

/// Handle to the data store file; cheap to clone, and opens the file once per process, on the first operation.
#[derive(Clone, Debug)]
pub struct ResourceStore {
    path: PathBuf,
    options: StoreOptions,
    // Shared by every store on the same path in this process: one open database, and one queue
    // of writers so threads wait here instead of spinning against the writer lock.
    shared: Arc<Shared>,
    /// The PostgreSQL backend, when the repository's datastore is PostgreSQL; `None` is redb.
    pg: Option<Arc<super::postgres::PgBackend>>,
}

/// What every store on one path in this process shares.
#[derive(Default)]
struct Shared {
    /// The open database, once an operation has opened it; dropped with the last store.
    handle: Mutex<Option<Arc<Database>>>,
    /// A read-only handle, for a process that only reads: it neither syncs the header nor loads
    /// the allocator state, so `orch runs list` costs no more than before.
    reader: Mutex<Option<Arc<ReadOnlyDatabase>>>,
    /// Writers of this process queue here.
    writers: Mutex<()>,
    /// How many times this process opened the file (for tests: it must not grow with use).
    opens: AtomicU64,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("opens", &self.opens.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl ResourceStore {
    /// A store for the database at `path`; nothing is opened or created until the first operation.
    pub fn new(path: impl Into<PathBuf>, options: StoreOptions) -> Self {
        let path = path.into();
        let shared = shared_for(&path);
        Self {
            path,
            options,
            shared,
            pg: None,
        }
    }

    /// A store on the PostgreSQL database at `url` (`postgres://user@host:port/db`), signing
    /// in with `password` if given; nothing connects until the first operation, which is also
    /// where a malformed URL is reported. Its [`path`](Self::path) is the URL with any
    /// password masked.
    pub fn postgres(url: &str, password: Option<&str>, options: StoreOptions) -> Self {
        Self::postgres_with(url, Ok(password.map(str::to_string)), options)
    }

    /// [`ResourceStore::postgres`] with the password, or why it could not be found (every
    /// operation then fails with that reason).
    pub(crate) fn postgres_with(
        url: &str,
        password: Result<Option<String>, String>,
        options: StoreOptions,
    ) -> Self {
        let backend = super::postgres::PgBackend::new(url, password, options.lock_wait);
        Self {
            path: PathBuf::from(backend.url()),
            options,
            shared: Arc::new(Shared::default()),
            pg: Some(Arc::new(backend)),
        }
    }

    /// Whether this store is on PostgreSQL (otherwise on a redb file).
    pub fn is_postgres(&self) -> bool {
        self.pg.is_some()
    }

    /// Brings a PostgreSQL database to this orch's schema (`orch datastore migrate`); returns
    /// the schema version before and after. A redb store upgrades itself on open: `(0, 0)`.
    pub fn migrate(&self) -> Result<(i32, i32), StoreError> {
        match &self.pg {
            Some(pg) => pg.migrate(),
            None => Ok((0, 0)),
        }
    }

    /// The schema version of a PostgreSQL database (0 before the first migration); `None` on redb.
    pub fn schema_version(&self) -> Result<Option<i32>, StoreError> {
        self.pg.as_ref().map(|pg| pg.schema_version()).transpose()
    }

    /// The PostgreSQL backend, if this store is on PostgreSQL.
    pub(super) fn pg_backend(&self) -> Option<&super::postgres::PgBackend> {
        self.pg.as_deref()
    }

    /// The database file this store reads and writes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The options this store was made with.
    pub fn options(&self) -> StoreOptions {
        self.options
    }

    /// Forgets this process's open handles, so they close once no operation holds them (a
    /// compaction needs the file to itself).
    pub(super) fn close_handles(&self) {
        *lock(&self.shared.handle) = None;
        *lock(&self.shared.reader) = None;
    }

    /// Opens the database for writing on a thread of its own, for a process about to write (a
    /// run's start record): the open then overlaps the run's other preparations, and the reads
    /// before that first commit use the same handle instead of opening the file read-only
    /// first. An error is left for the first operation, which opens again and reports it.
    /// Returns the opening thread, which a caller need not wait for. It only opens a file that
    /// exists: redb writes a new file's magic number last, so a process that exits (a check
    /// that failed) or dies while this thread creates one would leave a file no open accepts.
    /// A new file is created by the first write, which the process waits for.
    pub fn open_for_writing_soon(&self) -> Option<std::thread::JoinHandle<()>> {
        if self.pg.is_some() || lock(&self.shared.handle).is_some() {
            return None;
        }
        let store = self.clone();
        std::thread::Builder::new()
            .name("orch-store-open".into())
            .spawn(move || {
                // One try: if another process holds the file, the first operation waits for it
                // as usual, rather than after this thread has waited as long.
                let mut once = Wait {
                    lock_wait: Duration::ZERO,
                    ..Wait::new(&store)
                };
                let _ = store.handle(&mut once, false);
            })
            .ok()
    }

    /// How many times this process has opened the database file (shared by every store on the path).
    pub fn opens(&self) -> u64 {
        self.shared.opens.load(Ordering::Relaxed)
    }

    /// Runs `body` in one read transaction, or returns `empty()` when the file does not exist yet.
    pub(super) fn read<T>(
        &self,
        empty: impl FnOnce() -> T,
        body: impl FnOnce(&ReadTransaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut wait = Wait::new(self);
        // A writable handle, if this process has one, serves reads too.
        let writable = lock(&self.shared.handle).clone();
        let txn = match writable {
            Some(db) => db.begin_read(),
            None => match self.read_only(&mut wait)? {
                ReadVia::Nothing => return Ok(empty()),
                ReadVia::ReadOnly(db) => db.begin_read(),
                ReadVia::Writable(db) => db.begin_read(),
            },
        }
        .map_err(|e| self.database_error(e))?;
        body(&txn)
    }

    /// Whether the file holds anything to read: a missing file does not, and neither does an
    /// empty one, which is what a creator leaves if it dies before writing the header.
    fn has_data(&self) -> Result<bool, StoreError> {
        match std::fs::metadata(&self.path) {
            Ok(meta) => Ok(meta.len() > 0),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(StoreError::Io {
                path: self.path.clone(),
                source,
            }),
        }
    }

    /// The handle a read uses when this process has not written: read-only, unless the file
    /// needs a repair or a layout upgrade, which only a writable open does.
    fn read_only(&self, wait: &mut Wait) -> Result<ReadVia, StoreError> {
        let mut slot = lock(&self.shared.reader);
        if let Some(db) = slot.as_ref() {
            return Ok(ReadVia::ReadOnly(db.clone()));
        }
        if !self.has_data()? {
            return Ok(ReadVia::Nothing);
        }
        let builder = builder();
        let db = loop {
            match builder.open_read_only(&self.path) {
                Ok(db) => break db,
                Err(DatabaseError::DatabaseAlreadyOpen | DatabaseError::LockProtocolMismatch) => {
                    wait.sleep()?
                }
                // A writer crashed mid-transaction; a read-only handle may not repair.
                Err(DatabaseError::RepairAborted) => return self.writable_for_read(wait),
                Err(source) => {
                    return Err(StoreError::Open {
                        path: self.path.clone(),
                        source,
                    });
                }
            }
        };
        self.shared.opens.fetch_add(1, Ordering::Relaxed);
        let txn = db.begin_read().map_err(|e| self.database_error(e))?;
        if self.layout_in(&txn)? < LAYOUT_VERSION {
            drop(txn);
            drop(db);
            return self.writable_for_read(wait);
        }
        drop(txn);
        let db = Arc::new(db);
        *slot = Some(db.clone());
        Ok(ReadVia::ReadOnly(db))
    }

    fn writable_for_read(&self, wait: &mut Wait) -> Result<ReadVia, StoreError> {
        Ok(match self.handle(wait, false)? {
            Some(db) => ReadVia::Writable(db),
            None => ReadVia::Nothing,
        })
    }

    /// Runs `body` in one write transaction and commits it, creating the file if needed.
    pub(super) fn write<T>(
        &self,
        body: impl FnOnce(&WriteTransaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut wait = Wait::new(self);
        let _queue = lock(&self.shared.writers);
        let db = self
            .handle(&mut wait, true)?
            .expect("a writing open creates the file");
        // Durability stays at redb's default, Immediate (the multi-writer mode has no other):
        // the data is an audit trail, and a commit that returned must survive a crash.
        let txn = self.begin_write(&db, &mut wait)?;
        self.check_layout(&txn)?;
        // An error here drops `txn`, which aborts the transaction.
        let out = body(&txn)?;
        txn.commit().map_err(|e| self.failed(&db, e))?;
        Ok(out)
    }

    /// Opens `table` in a read transaction, or `None` if no write has created it yet.
    pub(super) fn read_table<K: redb::Key + 'static, V: redb::Value + 'static>(
        &self,
        txn: &ReadTransaction,
        table: TableDefinition<K, V>,
    ) -> Result<Option<ReadOnlyTable<K, V>>, StoreError> {
        match txn.open_table(table) {
            Ok(table) => Ok(Some(table)),
            Err(TableError::TableDoesNotExist(_)) => Ok(None),
            Err(e) => Err(self.database_error(e)),
        }
    }

    /// Wraps any redb failure with this store's path.
    pub(super) fn database_error(&self, source: impl Into<redb::Error>) -> StoreError {
        StoreError::Database {
            path: self.path.clone(),
            source: source.into(),
        }
    }

    /// Parses a stored JSON record, naming it in the error.
    pub(super) fn decode<T: serde::de::DeserializeOwned>(
        &self,
        bytes: &[u8],
        record: impl FnOnce() -> String,
    ) -> Result<T, StoreError> {
        serde_json::from_slice(bytes).map_err(|source| StoreError::Decode {
            path: self.path.clone(),
            record: record(),
            source,
        })
    }

    /// The process's open database, opening it first if needed. `None` when reading a file
    /// that does not exist yet; a writer creates it.
    fn handle(&self, wait: &mut Wait, create: bool) -> Result<Option<Arc<Database>>, StoreError> {
        let mut slot = lock(&self.shared.handle);
        if let Some(db) = slot.as_ref() {
            return Ok(Some(db.clone()));
        }
        if create {
            if let Some(parent) = self.path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(|source| StoreError::Io {
                    path: parent.to_path_buf(),
                    source,
                })?;
            }
            if matches!(std::fs::symlink_metadata(&self.path), Err(e) if e.kind() == io::ErrorKind::NotFound)
            {
                create_whole(&self.path)?;
            }
        } else {
            if !self.has_data()? {
                return Ok(None);
            }
        }
        let builder = builder();
        let db = loop {
            let opened = if create {
                builder.create(&self.path)
            } else {
                builder.open(&self.path)
            };
            match opened {
                Ok(db) => break db,
                // Another process holds the whole file: an orch from before the multi-writer
                // mode, or any redb handle in the exclusive mode.
                Err(DatabaseError::DatabaseAlreadyOpen | DatabaseError::LockProtocolMismatch) => {
                    wait.sleep()?
                }
                Err(source) => {
                    return Err(StoreError::Open {
                        path: self.path.clone(),
                        source,
                    });
                }
            }
        };
        self.shared.opens.fetch_add(1, Ordering::Relaxed);
        restrict_to_owner(&self.path);
        let db = Arc::new(db);
        self.upgrade(&db, wait)?;
        *slot = Some(db.clone());
        Ok(Some(db))
    }

    /// Begins a write transaction, waiting for another process's to end.
    fn begin_write(
        &self,
        db: &Arc<Database>,
        wait: &mut Wait,
    ) -> Result<WriteTransaction, StoreError> {
        loop {
            match db.try_begin_write() {
                Ok(txn) => return Ok(txn),
                Err(TransactionError::WouldBlock) => wait.sleep()?,
                Err(e) => return Err(self.failed(db, e)),
            }
        }
    }

    /// Reports a failed transaction and forgets the handle, so the next operation opens the
    /// file afresh (and repairs it if needed) instead of reusing a handle redb may have poisoned.
    fn failed(&self, db: &Arc<Database>, source: impl Into<redb::Error>) -> StoreError {
        let mut slot = lock(&self.shared.handle);
        if slot.as_ref().is_some_and(|held| Arc::ptr_eq(held, db)) {
            *slot = None;
        }
        self.database_error(source)
    }

    /// Brings a file written by an older layout up to this one, in place and in one transaction.
    fn upgrade(&self, db: &Database, wait: &mut Wait) -> Result<(), StoreError> {
        if self.layout_of(db)? >= LAYOUT_VERSION {
            return Ok(());
        }
        let txn = loop {
            match db.try_begin_write() {
                Ok(txn) => break txn,
                Err(TransactionError::WouldBlock) => wait.sleep()?,
                Err(e) => return Err(self.database_error(e)),
            }
        };
        // Another process may have upgraded it meanwhile; the check below sees that.
        let found = txn
            .open_table(META)
            .map_err(|e| self.database_error(e))?
            .get(LAYOUT_KEY)
            .map_err(|e| self.database_error(e))?
            .map(|v| v.value());
        let from = match found {
            Some(found) if found >= LAYOUT_VERSION => return Ok(()),
            // A file that was created but never written has nothing to upgrade.
            None if !self.has_table(&txn, RUNS)? => return Ok(()),
            Some(found) => found,
            None => 1,
        };
        if from < 2 {
            self.rebuild_run_summaries(&txn)?;
        }
        if from < 3 {
            self.rebuild_change_index(&txn)?;
        }
        txn.open_table(META)
            .map_err(|e| self.database_error(e))?
            .insert(LAYOUT_KEY, LAYOUT_VERSION)
            .map_err(|e| self.database_error(e))?;
        txn.commit().map_err(|e| self.database_error(e))?;
        tracing::info!(path = %self.path.display(), "upgraded the data store from layout {from} to {LAYOUT_VERSION}");
        Ok(())
    }

    /// The layout version recorded in the file; a file with none has the current one if it has
    /// no tables at all (nothing written yet), and layout 1 otherwise.
    fn layout_of(&self, db: &Database) -> Result<u64, StoreError> {
        let txn = db.begin_read().map_err(|e| self.database_error(e))?;
        self.layout_in(&txn)
    }

    fn layout_in(&self, txn: &ReadTransaction) -> Result<u64, StoreError> {
        let recorded = match self.read_table(txn, META)? {
            Some(meta) => meta
                .get(LAYOUT_KEY)
                .map_err(|e| self.database_error(e))?
                .map(|v| v.value()),
            None => None,
        };
        Ok(match recorded {
            Some(found) => found,
            None if self.read_table(txn, RUNS)?.is_none() => LAYOUT_VERSION,
            None => 1,
        })
    }

    fn has_table(
        &self,
        txn: &WriteTransaction,
        table: TableDefinition<&str, &[u8]>,
    ) -> Result<bool, StoreError> {
        Ok(txn
            .list_tables()
            .map_err(|e| self.database_error(e))?
            .any(|t| t.name() == table.name()))
    }

    fn check_layout(&self, txn: &WriteTransaction) -> Result<(), StoreError> {
        let mut meta = txn.open_table(META).map_err(|e| self.database_error(e))?;
        let found = meta
            .get(LAYOUT_KEY)
            .map_err(|e| self.database_error(e))?
            .map(|v| v.value());
        match found {
            Some(found) if found > LAYOUT_VERSION => Err(StoreError::NewerLayout {
                path: self.path.clone(),
                found,
                supported: LAYOUT_VERSION,
            }),
            Some(_) => Ok(()),
            None => {
                meta.insert(LAYOUT_KEY, LAYOUT_VERSION)
                    .map_err(|e| self.database_error(e))?;
                Ok(())
            }
        }
    }
}

/// Which handle a read runs on.
enum ReadVia {
    /// The file does not exist yet.
    Nothing,
    ReadOnly(Arc<ReadOnlyDatabase>),
    Writable(Arc<Database>),
}

/// The lock wait of one operation: backs off while another process holds the file or its
/// writer lock, and gives up with [`StoreError::Busy`] after [`StoreOptions::lock_wait`].
struct Wait {
    path: PathBuf,
    started: Instant,
    lock_wait: Duration,
    backoff: Duration,
    warned: bool,
}

impl Wait {
    fn new(store: &ResourceStore) -> Self {
        Self {
            path: store.path.clone(),
            started: Instant::now(),
            lock_wait: store.options.lock_wait,
            backoff: FIRST_BACKOFF,
            warned: false,
        }
    }

    fn sleep(&mut self) -> Result<(), StoreError> {
        let waited = self.started.elapsed();
        if waited >= self.lock_wait {
            return Err(StoreError::Busy {
                path: self.path.clone(),
                waited,
            });
        }
        if !self.warned && waited >= WARN_AFTER {
            self.warned = true;
            tracing::warn!(
                "waiting for another orch process to release {}",
                self.path.display()
            );
        }
        std::thread::sleep(self.backoff.min(self.lock_wait - waited));
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        Ok(())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Creates a new database file whole. redb writes a new file's magic number last, so a process
/// killed while redb creates a file in place leaves one that no open accepts. The file is built
/// under a name of this process's own and linked into place only once complete; if another
/// process linked its own first, that one stays. Where the file system has no hard links, the
/// caller creates the file in place as before.
fn create_whole(path: &Path) -> Result<(), StoreError> {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".new-{}", std::process::id()));
    let building = path.with_file_name(name);
    // Left by an earlier process that had this id and was killed building it.
    let _ = std::fs::remove_file(&building);
    let db = builder()
        .create(&building)
        .map_err(|source| StoreError::Open {
            path: building.clone(),
            source,
        })?;
    drop(db);
    // Linked, or another process's file is there already, or no hard links: all go on to open.
    let _ = std::fs::hard_link(&building, path);
    let _ = std::fs::remove_file(&building);
    Ok(())
}

/// Takes group and other permissions off the database file. It holds resource attributes that
/// are `writeOnly` in their schema (a Proxmox session ticket, for one), which every output masks
/// but which expressions read, so no other local user may read the file. A file made by an orch
/// from before this rule (0644), and a new one, which redb creates 0644 and which holds nothing
/// yet, are tightened by the writable open, before its first write; one this user cannot
/// change (another user's) is left as it is, with a warning.
fn restrict_to_owner(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let Ok(meta) = std::fs::metadata(path) else {
            return;
        };
        let mode = meta.permissions().mode();
        if mode & 0o077 == 0 {
            return;
        }
        let owner_only = std::fs::Permissions::from_mode(mode & 0o700);
        if let Err(e) = std::fs::set_permissions(path, owner_only) {
            tracing::warn!(
                path = %path.display(),
                "other users can read the data store (mode {:o}), which holds session tickets: {e}; \
                 run `chmod 600` on it as its owner",
                mode & 0o777
            );
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

fn builder() -> Builder {
    let mut builder = Builder::new();
    builder.set_cache_size(CACHE_BYTES);
    builder.set_concurrency_mode(ConcurrencyMode::MultiWriter);
    builder
}

/// What every store on one database path in this process shares.
fn shared_for(path: &Path) -> Arc<Shared> {
    type Registry = Mutex<HashMap<PathBuf, Weak<Shared>>>;
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    // Two spellings of one file would get two handles; the multi-writer locks keep them
    // correct, they merely wait for each other like two processes.
    let key = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut registry = lock(REGISTRY.get_or_init(Registry::default));
    if let Some(shared) = registry.get(&key).and_then(Weak::upgrade) {
        return shared;
    }
    registry.retain(|_, shared| shared.strong_count() > 0);
    let shared = Arc::new(Shared::default());
    registry.insert(key, Arc::downgrade(&shared));
    shared
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_in(dir: &tempfile::TempDir, lock_wait: Duration) -> ResourceStore {
        ResourceStore::new(
            dir.path().join(".orch/data.redb"),
            StoreOptions { lock_wait },
        )
    }

    /// A directory whose store file exists and is closed again.
    fn dir_with_data() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        store_in(&dir, DEFAULT_LOCK_WAIT)
            .write(|_| Ok(()))
            .expect("a file with data");
        dir
    }

    /// A second handle as another orch process of this version holds it.
    fn peer(path: &Path) -> Database {
        builder().create(path).expect("open a peer handle")
    }

    #[cfg(unix)]
    fn mode_of(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path)
            .expect("metadata")
            .permissions()
            .mode()
            & 0o777
    }

    #[cfg(unix)]
    #[test]
    fn a_new_file_is_readable_by_its_owner_only() {
        let dir = dir_with_data();
        assert_eq!(mode_of(&dir.path().join(".orch/data.redb")), 0o600);
    }

    #[cfg(unix)]
    #[test]
    fn a_world_readable_file_from_before_is_tightened_by_the_first_writable_open() {
        use std::os::unix::fs::PermissionsExt;
        let dir = dir_with_data();
        let path = dir.path().join(".orch/data.redb");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let store = store_in(&dir, DEFAULT_LOCK_WAIT);
        // A read alone leaves it: a read-only handle changes nothing on disk.
        store.read(|| (), |_| Ok(())).expect("read");
        assert_eq!(mode_of(&path), 0o644);
        store.write(|_| Ok(())).expect("write");
        assert_eq!(mode_of(&path), 0o600);
    }

    #[test]
    fn new_does_not_create_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store_in(&dir, DEFAULT_LOCK_WAIT);
        assert!(!store.path().exists());
        assert!(!dir.path().join(".orch").exists());
    }

    #[test]
    fn a_write_creates_the_file_and_its_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store_in(&dir, DEFAULT_LOCK_WAIT);
        store.write(|_| Ok(())).expect("write");
        assert!(store.path().is_file());
    }

    #[test]
    fn busy_when_another_handle_holds_the_database_past_the_wait() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store_in(&dir, Duration::from_millis(60));
        store.write(|_| Ok(())).expect("first write");
        // The last store on the path closes the file.
        drop(store);
        // An orch from before the multi-writer mode holds the whole file while it is open.
        let held = Database::open(dir.path().join(".orch/data.redb")).expect("hold the database");
        let store = store_in(&dir, Duration::from_millis(60));

        let started = Instant::now();
        let err = store
            .read(|| (), |_| Ok(()))
            .expect_err("read must time out");
        assert!(started.elapsed() >= Duration::from_millis(60));
        let StoreError::Busy { path, waited } = &err else {
            panic!("expected Busy, got {err:?}");
        };
        assert_eq!(path, store.path());
        assert!(*waited >= Duration::from_millis(60));
        let message = err.to_string();
        assert!(
            message.contains("another orch process holds the data store"),
            "{message}"
        );
        assert!(message.contains("lockWaitSeconds"), "{message}");
        assert!(
            message.contains(&store.path().display().to_string()),
            "{message}"
        );

        let err = store.write(|_| Ok(())).expect_err("write must time out");
        assert!(matches!(err, StoreError::Busy { .. }), "{err:?}");

        drop(held);
        store.write(|_| Ok(())).expect("write after release");
    }

    #[test]
    fn a_writer_waits_for_another_process_write_and_reports_busy_past_the_wait() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store_in(&dir, Duration::from_millis(60));
        store.write(|_| Ok(())).expect("first write");
        // Both handles stay open, as two orch processes do; only one may write at a time.
        let other = peer(store.path());
        let writing = other.begin_write().expect("the other process writes");

        let err = store.write(|_| Ok(())).expect_err("write must time out");
        let StoreError::Busy { waited, .. } = &err else {
            panic!("expected Busy, got {err:?}");
        };
        assert!(*waited >= Duration::from_millis(60));
        assert!(err.to_string().contains("lockWaitSeconds"), "{err}");
        // Readers are not held up by a writer.
        store
            .read(|| (), |_| Ok(()))
            .expect("read during the write");

        writing.commit().expect("the other commit");
        store
            .write(|_| Ok(()))
            .expect("write after the other commit");
        assert_eq!(store.opens(), 1, "the handle survives a Busy");
    }

    #[test]
    fn a_waiting_operation_succeeds_once_the_other_handle_closes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store_in(&dir, Duration::from_secs(10));
        store.write(|_| Ok(())).expect("first write");
        drop(store);
        let held = Database::open(dir.path().join(".orch/data.redb")).expect("hold the database");
        let store = store_in(&dir, Duration::from_secs(10));
        let releaser = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            drop(held);
        });
        let started = Instant::now();
        store.write(|_| Ok(())).expect("write waits and succeeds");
        assert!(started.elapsed() >= Duration::from_millis(90));
        releaser.join().expect("releaser thread");
    }

    #[test]
    fn stores_on_one_path_share_one_handle() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = store_in(&dir, DEFAULT_LOCK_WAIT);
        let b = store_in(&dir, DEFAULT_LOCK_WAIT);
        assert!(Arc::ptr_eq(&a.shared, &b.shared));
        let other = tempfile::tempdir().expect("tempdir");
        let c = store_in(&other, DEFAULT_LOCK_WAIT);
        assert!(!Arc::ptr_eq(&a.shared, &c.shared));
    }

    #[test]
    fn the_file_is_opened_once_however_many_operations_run() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store_in(&dir, DEFAULT_LOCK_WAIT);
        assert_eq!(store.read(|| 0, |_| Ok(1)).expect("read"), 0, "no file yet");
        assert_eq!(store.opens(), 0, "a read does not create the file");
        for i in 0..200u64 {
            store
                .write(|txn| {
                    let mut meta = txn.open_table(META).map_err(|e| store.database_error(e))?;
                    meta.insert("counter", i)
                        .map_err(|e| store.database_error(e))?;
                    Ok(())
                })
                .expect("write");
            store.read(|| (), |_| Ok(())).expect("read");
        }
        let clone = store_in(&dir, DEFAULT_LOCK_WAIT);
        clone.read(|| (), |_| Ok(())).expect("read");
        assert_eq!(store.opens(), 1);
    }

    #[test]
    fn a_store_opened_for_writing_ahead_serves_reads_and_writes_from_that_one_open() {
        let dir = dir_with_data();
        let store = store_in(&dir, DEFAULT_LOCK_WAIT);
        assert_eq!(store.opens(), 0, "a new process has not opened it yet");
        store
            .open_for_writing_soon()
            .expect("an opening thread")
            .join()
            .expect("opened");
        assert_eq!(store.opens(), 1);
        assert!(store.open_for_writing_soon().is_none(), "already open");
        // Without the early open, this read would open the file read-only first.
        store.read(|| (), |_| Ok(())).expect("read");
        store.write(|_| Ok(())).expect("write");
        assert_eq!(store.opens(), 1, "one open for the read and the write");
    }

    /// The child side of `a_store_killed_while_it_is_created_is_absent_or_whole`: creates store
    /// after store (each with one write, each kept open) until it is killed, printing each
    /// number once created.
    #[test]
    #[ignore = "run by a_store_killed_while_it_is_created_is_absent_or_whole in a child process"]
    fn kill_9_child_creator() {
        use std::io::Write;
        let Some(dir) = std::env::var_os("ORCH_KILL_TEST_DIR") else {
            return;
        };
        let mut stdout = std::io::stdout();
        // Each store stays open, so what follows a printed number is the next creation.
        let mut open = Vec::new();
        for n in 0u64.. {
            let path = PathBuf::from(&dir).join(format!("{n}.redb"));
            let store = ResourceStore::new(path, StoreOptions::default());
            store.write(|_| Ok(())).expect("create");
            open.push(store);
            writeln!(stdout, "created {n}").expect("stdout");
            stdout.flush().expect("flush");
        }
    }

    #[test]
    fn a_store_killed_while_it_is_created_is_absent_or_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        for round in 0..50u64 {
            let sub = dir.path().join(round.to_string());
            std::fs::create_dir_all(&sub).expect("dir");
            let (child, mut lines) = crate::store::kill_test::spawn_child(
                "store::access::tests::kill_9_child_creator",
                "ORCH_KILL_TEST_DIR",
                &sub,
            );
            // Killed after a varying number of stores, once the next one's file has grown: redb
            // has sized the new file and is writing its header, the magic number last.
            let mut created = 0;
            while created < 1 + round as usize % 3 {
                let line = lines.next().expect("the child ended early").expect("line");
                created += usize::from(line.starts_with("created "));
            }
            // The file, or whatever the store builds it under first (`{n}.redb.*`).
            let next = format!("{created}.redb");
            let begun = || {
                std::fs::read_dir(&sub).expect("list").flatten().any(|e| {
                    e.file_name().to_string_lossy().starts_with(&next)
                        && e.metadata().is_ok_and(|m| m.len() > 0)
                })
            };
            let deadline = Instant::now() + Duration::from_secs(60);
            while !begun() {
                assert!(Instant::now() < deadline, "the child never began {next}");
                std::hint::spin_loop();
            }
            crate::store::kill_test::kill_9(child);
            for entry in std::fs::read_dir(&sub).expect("list") {
                let path = entry.expect("entry").path();
                if path.extension().is_some_and(|e| e == "redb") {
                    let store = ResourceStore::new(&path, StoreOptions::default());
                    store
                        .read(|| (), |_| Ok(()))
                        .unwrap_or_else(|e| panic!("{} does not open: {e}", path.display()));
                }
            }
        }
    }

    #[test]
    fn an_early_open_never_creates_the_file_so_an_exit_cannot_leave_half_of_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store_in(&dir, DEFAULT_LOCK_WAIT);
        store
            .open_for_writing_soon()
            .expect("an opening thread")
            .join()
            .expect("done");
        assert!(!store.path().exists(), "the early open created the file");
        assert_eq!(store.opens(), 0);
        store.write(|_| Ok(())).expect("the first write creates it");
        assert_eq!(store.opens(), 1);
    }

    #[test]
    fn an_early_open_tries_once_leaving_the_wait_for_a_held_file_to_the_first_operation() {
        let dir = dir_with_data();
        let held = Database::open(dir.path().join(".orch/data.redb")).expect("hold the database");
        let store = store_in(&dir, Duration::from_secs(3600));
        let opening = store.open_for_writing_soon().expect("an opening thread");
        // The holder keeps the file until the thread is done: a thread that waited out the
        // hour-long lock wait would never be done.
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || done.send(opening.join().is_ok()));
        assert_eq!(
            finished.recv_timeout(Duration::from_secs(120)),
            Ok(true),
            "the early open gave up at once"
        );
        assert_eq!(store.opens(), 0);
        drop(held);
        store.write(|_| Ok(())).expect("the first write opens it");
        assert_eq!(store.opens(), 1);
    }

    #[test]
    fn a_file_from_a_newer_layout_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store_in(&dir, DEFAULT_LOCK_WAIT);
        store.write(|_| Ok(())).expect("first write");
        // Force the newer layout in with another handle, as a newer orch would have written it.
        {
            let db = peer(store.path());
            let txn = db.begin_write().expect("txn");
            txn.open_table(META)
                .expect("meta")
                .insert(LAYOUT_KEY, LAYOUT_VERSION + 1)
                .expect("insert");
            txn.commit().expect("commit");
        }
        let err = store.write(|_| Ok(())).expect_err("newer layout");
        assert!(
            matches!(err, StoreError::NewerLayout { found, .. } if found == LAYOUT_VERSION + 1),
            "{err:?}"
        );
        assert!(err.to_string().contains("upgrade orch"));
    }

    #[test]
    fn a_new_file_records_the_current_layout() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store_in(&dir, DEFAULT_LOCK_WAIT);
        store.write(|_| Ok(())).expect("write");
        let layout = store
            .read(
                || None,
                |txn| {
                    let meta = store.read_table(txn, META)?.expect("meta table");
                    Ok(meta
                        .get(LAYOUT_KEY)
                        .map_err(|e| store.database_error(e))?
                        .map(|v| v.value()))
                },
            )
            .expect("read");
        assert_eq!(layout, Some(LAYOUT_VERSION));
    }
}
