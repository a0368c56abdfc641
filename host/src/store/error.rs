use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong reading or writing the data store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Another process kept the database file locked for longer than the configured wait.
    #[error(
        "another orch process holds the data store {} (waited {waited:.1?}); retry when it \
         finishes, or raise lockWaitSeconds in orch.yaml",
        .path.display()
    )]
    Busy {
        /// The database file.
        path: PathBuf,
        /// How long this operation waited before giving up.
        waited: Duration,
    },

    /// A compaction found another process holding the file open.
    #[error(
        "another process has the data store {} open, and compacting it needs the file to \
         itself; wait for the other orch (a run, `orch serve`) to end and run the command \
         again (nothing was lost: the deletions are committed)",
        .path.display()
    )]
    InUse {
        /// The database file.
        path: PathBuf,
    },

    /// redb refused to open the file for a reason other than another process holding it.
    #[error(
        "cannot open the data store {}: {source}; if the file is damaged, move it aside and \
         orch will start a new one",
        .path.display()
    )]
    Open {
        /// The database file.
        path: PathBuf,
        /// What redb reported.
        #[source]
        source: redb::DatabaseError,
    },

    /// A transaction, table or commit failed after the file was open.
    #[error(
        "the data store {} failed: {source}; retry, and if it keeps failing check the disk and \
         the file's permissions",
        .path.display()
    )]
    Database {
        /// The database file.
        path: PathBuf,
        /// What redb reported.
        #[source]
        source: redb::Error,
    },

    /// The file or its directory could not be inspected or created.
    #[error("cannot access {}: {source}; check that the directory exists and is writable", .path.display())]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// What the operating system reported.
        #[source]
        source: std::io::Error,
    },

    /// A stored record is not the JSON this version of orch expects.
    #[error(
        "{record} in {} cannot be read: {source}; it may have been written by a newer orch, so \
         upgrade orch or move the file aside",
        .path.display()
    )]
    Decode {
        /// The database file.
        path: PathBuf,
        /// Which record, e.g. `resource vm/vm/web@v3` or `run 0193…`.
        record: String,
        /// What serde_json reported.
        #[source]
        source: serde_json::Error,
    },

    /// A record could not be turned into JSON before storing it.
    #[error("cannot encode {record} as JSON: {source}; this is a bug in orch, please report it")]
    Encode {
        /// Which record.
        record: String,
        /// What serde_json reported.
        #[source]
        source: serde_json::Error,
    },

    /// The version about to be written already exists, which would rewrite history.
    #[error(
        "refusing to overwrite {record} in {}: versions are immutable and the latest-version \
         index disagrees with the stored versions; move the file aside and report this as a bug",
        .path.display()
    )]
    VersionExists {
        /// The database file.
        path: PathBuf,
        /// The resource version that already exists.
        record: String,
    },

    /// A write names no model, spec or instance.
    #[error(
        "cannot write a resource of model {model:?}: {reason}; give every write a non-empty name"
    )]
    InvalidWrite {
        /// The model the write was for.
        model: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A run id prefix matches more than one run.
    #[error(
        "run id prefix {prefix:?} matches several runs in {} ({}); give more characters of the id",
        .path.display(),
        .matches.join(", ")
    )]
    AmbiguousRunId {
        /// The database file.
        path: PathBuf,
        /// The prefix asked for.
        prefix: String,
        /// Some of the ids it matches.
        matches: Vec<String>,
    },

    /// The file was written with a newer layout than this orch understands.
    #[error(
        "the data store {} has layout version {found}, newer than the {supported} this orch \
         understands; upgrade orch",
        .path.display()
    )]
    NewerLayout {
        /// The database file.
        path: PathBuf,
        /// The layout version found in the file.
        found: u64,
        /// The newest layout version this build reads and writes.
        supported: u64,
    },

    /// A worker lost a queued step (its lease ran out) before it committed the step's writes.
    #[error(
        "worker `{worker}` no longer holds queued step {id}: its lease ran out and the \
         coordinator took the step back, so none of this call's writes was committed (the \
         coordinator runs a read, list or converge step again elsewhere, and marks any other \
         step outcome unknown)"
    )]
    LeaseLost {
        /// The worker.
        worker: String,
        /// The step's row in the queue.
        id: i64,
    },

    /// PostgreSQL refused a connection or a statement.
    #[error(
        "the PostgreSQL datastore {url} failed: {message}; check that the server is reachable, \
         the URL in orch.yaml (datastore.postgres) and the password (PGPASSWORD)"
    )]
    Postgres {
        /// The database URL, its password masked.
        url: String,
        /// What PostgreSQL or the client reported.
        message: String,
    },

    /// The database was migrated by a newer orch.
    #[error(
        "database schema {found} is newer than this orch ({supported}); upgrade orch (datastore {url})"
    )]
    SchemaTooNew {
        /// The database URL, its password masked.
        url: String,
        /// The schema version found in the database.
        found: i32,
        /// The newest schema version this orch knows.
        supported: i32,
    },

    /// The database has not been migrated to this orch's schema yet.
    #[error(
        "database schema {found} is older than this orch ({supported}); run `orch datastore \
         migrate` (datastore {url})"
    )]
    SchemaTooOld {
        /// The database URL, its password masked.
        url: String,
        /// The schema version found in the database (0: never migrated).
        found: i32,
        /// The schema version this orch needs.
        supported: i32,
    },

    /// A copy's destination already holds data.
    #[error(
        "the destination {} already holds resources or runs; copy only into an empty store (a \
         new database, or move the redb file aside)",
        .path.display()
    )]
    NotEmpty {
        /// The destination (file, or URL with the password masked).
        path: PathBuf,
    },
}
