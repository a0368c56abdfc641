use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock, Weak};
use std::time::{Duration, Instant};

use redb::{
    Builder, Database, DatabaseError, ReadOnlyDatabase, ReadOnlyTable, ReadTransaction,
    ReadableDatabase, ReadableTable, StorageError, TableDefinition, TableError, WriteTransaction,
};

use super::error::StoreError;

/// Resource versions: `(model, spec, name, version)` → JSON of a `ResourceVersion`.
pub(super) const RESOURCES: TableDefinition<(&str, &str, &str, u64), &[u8]> =
    TableDefinition::new("resources");
/// Newest version per resource: `(model, spec, name)` → version.
pub(super) const LATEST: TableDefinition<(&str, &str, &str), u64> = TableDefinition::new("latest");
/// Run records: run id → JSON of a `RunRecord`.
pub(super) const RUNS: TableDefinition<&str, &[u8]> = TableDefinition::new("runs");
/// Bookkeeping such as the layout version.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

const LAYOUT_KEY: &str = "layout_version";
/// Bumped whenever the tables or record shapes change incompatibly.
const LAYOUT_VERSION: u64 = 1;

/// How long an operation waits for another process by default.
pub const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(30);
const FIRST_BACKOFF: Duration = Duration::from_millis(2);
const MAX_BACKOFF: Duration = Duration::from_millis(50);
// Short waits are normal when two runs overlap; only a long one deserves the user's attention.
const WARN_AFTER: Duration = Duration::from_secs(1);
// redb's default 1 GiB cache suits a long-lived handle; ours lives for one transaction.
const CACHE_BYTES: usize = 16 * 1024 * 1024;

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

/// Handle to the data store file; cheap to clone, and opens the file only for the length of one operation.
#[derive(Clone, Debug)]
pub struct ResourceStore {
    path: PathBuf,
    options: StoreOptions,
    // Shared by every store on the same path in this process, so threads queue here instead of
    // spinning against each other's file locks; reads can share because read-only handles do.
    in_process: Arc<RwLock<()>>,
}

impl ResourceStore {
    /// A store for the database at `path`; nothing is opened or created until the first operation.
    pub fn new(path: impl Into<PathBuf>, options: StoreOptions) -> Self {
        let path = path.into();
        let in_process = in_process_lock(&path);
        Self {
            path,
            options,
            in_process,
        }
    }

    /// The database file this store reads and writes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The options this store was made with.
    pub fn options(&self) -> StoreOptions {
        self.options
    }

    /// Runs `body` in one read transaction, or returns `empty()` when the file does not exist yet.
    pub(super) fn read<T>(
        &self,
        empty: impl FnOnce() -> T,
        body: impl FnOnce(&ReadTransaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let started = Instant::now();
        let _queue = self
            .in_process
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let Some(handle) = self.open_for_read(started)? else {
            return Ok(empty());
        };
        let txn = handle.begin_read().map_err(|e| self.database_error(e))?;
        let out = body(&txn)?;
        drop(txn);
        if let Err(error) = handle.close() {
            // The data is already read; a failed close only matters to the next open, which
            // reports its own error.
            tracing::warn!(path = %self.path.display(), %error, "closing the data store after a read failed");
        }
        Ok(out)
    }

    /// Runs `body` in one write transaction and commits it, creating the file if needed.
    pub(super) fn write<T>(
        &self,
        body: impl FnOnce(&WriteTransaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let started = Instant::now();
        let _queue = self
            .in_process
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(parent) = self.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| StoreError::Io {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        let builder = builder();
        let db = self.open_with_retry(started, || builder.create(&self.path))?;
        // Durability stays at redb's default, Immediate: the data is an audit trail, and a commit
        // that returned must survive a crash.
        let txn = db.begin_write().map_err(|e| self.database_error(e))?;
        self.check_layout(&txn)?;
        // An error here drops `txn` before `db`, which aborts the transaction and then closes.
        let out = body(&txn)?;
        txn.commit().map_err(|e| self.database_error(e))?;
        if let Err(error) = db.close() {
            tracing::warn!(path = %self.path.display(), %error, "closing the data store after a commit failed");
        }
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

    fn open_for_read(&self, started: Instant) -> Result<Option<ReadHandle>, StoreError> {
        match std::fs::metadata(&self.path) {
            // An empty file is what a creator leaves if it dies before writing the header.
            Ok(meta) if meta.len() == 0 => return Ok(None),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(StoreError::Io {
                    path: self.path.clone(),
                    source,
                });
            }
        }
        let builder = builder();
        match self.open_with_retry(started, || builder.open_read_only(&self.path)) {
            Ok(db) => Ok(Some(ReadHandle::ReadOnly(db))),
            // A writer crashed mid-transaction; a read-only handle may not repair, a writable
            // open does.
            Err(StoreError::Open {
                source: DatabaseError::RepairAborted,
                ..
            }) => {
                let db = self.open_with_retry(started, || builder.open(&self.path))?;
                Ok(Some(ReadHandle::Writable(db)))
            }
            Err(StoreError::Open {
                source: DatabaseError::Storage(StorageError::Io(e)),
                ..
            }) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn open_with_retry<D>(
        &self,
        started: Instant,
        mut open: impl FnMut() -> Result<D, DatabaseError>,
    ) -> Result<D, StoreError> {
        let mut backoff = FIRST_BACKOFF;
        let mut warned = false;
        loop {
            match open() {
                Ok(db) => return Ok(db),
                Err(DatabaseError::DatabaseAlreadyOpen | DatabaseError::LockProtocolMismatch) => {
                    let waited = started.elapsed();
                    if waited >= self.options.lock_wait {
                        return Err(StoreError::Busy {
                            path: self.path.clone(),
                            waited,
                        });
                    }
                    if !warned && waited >= WARN_AFTER {
                        warned = true;
                        tracing::warn!(
                            "waiting for another orch process to release {}",
                            self.path.display()
                        );
                    }
                    std::thread::sleep(backoff.min(self.options.lock_wait - waited));
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                Err(source) => {
                    return Err(StoreError::Open {
                        path: self.path.clone(),
                        source,
                    });
                }
            }
        }
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

/// A database opened for one read: read-only normally, writable when it needed a repair.
enum ReadHandle {
    ReadOnly(ReadOnlyDatabase),
    Writable(Database),
}

impl ReadHandle {
    fn begin_read(&self) -> Result<ReadTransaction, redb::TransactionError> {
        match self {
            Self::ReadOnly(db) => db.begin_read(),
            Self::Writable(db) => db.begin_read(),
        }
    }

    fn close(self) -> Result<(), DatabaseError> {
        match self {
            Self::ReadOnly(db) => db.close(),
            Self::Writable(db) => db.close(),
        }
    }
}

fn builder() -> Builder {
    let mut builder = Builder::new();
    builder.set_cache_size(CACHE_BYTES);
    builder
}

/// The in-process queue for one database path, shared by every store opened on it.
fn in_process_lock(path: &Path) -> Arc<RwLock<()>> {
    type Registry = Mutex<HashMap<PathBuf, Weak<RwLock<()>>>>;
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    // Two spellings of one file would get two queues; the file lock still keeps them correct,
    // they merely spin instead of queueing.
    let key = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut registry = REGISTRY
        .get_or_init(Registry::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(lock) = registry.get(&key).and_then(Weak::upgrade) {
        return lock;
    }
    registry.retain(|_, lock| lock.strong_count() > 0);
    let lock = Arc::new(RwLock::new(()));
    registry.insert(key, Arc::downgrade(&lock));
    lock
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
        let held = Database::open(store.path()).expect("hold the database");

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
    fn a_waiting_operation_succeeds_once_the_other_handle_closes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store_in(&dir, Duration::from_secs(10));
        store.write(|_| Ok(())).expect("first write");
        let held = Database::open(store.path()).expect("hold the database");
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
    fn stores_on_one_path_share_the_in_process_queue() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = store_in(&dir, DEFAULT_LOCK_WAIT);
        let b = store_in(&dir, DEFAULT_LOCK_WAIT);
        assert!(Arc::ptr_eq(&a.in_process, &b.in_process));
        let other = tempfile::tempdir().expect("tempdir");
        let c = store_in(&other, DEFAULT_LOCK_WAIT);
        assert!(!Arc::ptr_eq(&a.in_process, &c.in_process));
    }

    #[test]
    fn a_file_from_a_newer_layout_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store_in(&dir, DEFAULT_LOCK_WAIT);
        store.write(|_| Ok(())).expect("first write");
        // Force the newer layout in with a raw handle, as a newer orch would have written it.
        {
            let db = Database::create(store.path()).expect("open");
            let txn = db.begin_write().expect("txn");
            txn.open_table(META)
                .expect("meta")
                .insert(LAYOUT_KEY, LAYOUT_VERSION + 1)
                .expect("insert");
            txn.commit().expect("commit");
        }
        let err = store.write(|_| Ok(())).expect_err("newer layout");
        assert!(
            matches!(err, StoreError::NewerLayout { found: 2, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("upgrade orch"));
    }
}
