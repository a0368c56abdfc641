//! The step queue in PostgreSQL: its tables (with a version table of their own, apart from the
//! datastore's `schema_version`), connections that receive `LISTEN/NOTIFY` wake-ups, and the
//! statements the coordinator and the workers share.

use crate::repo::Repo;
use crate::vault::LocalVault;
use futures_util::StreamExt;
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;
use tokio_postgres::{AsyncMessage, Client, NoTls};

/// The version of the queue's tables this orch reads and writes.
pub const QUEUE_SCHEMA_VERSION: i32 = 1;
/// Channel a coordinator notifies when it queues a step (workers listen).
pub const READY_CHANNEL: &str = "orch_queue_ready";
/// Channel a worker notifies when it finished a step (coordinators listen).
pub const DONE_CHANNEL: &str = "orch_queue_done";
/// Held while the queue's tables are created, so two processes never race on it.
const SCHEMA_LOCK: i64 = 0x006f_7263_6871_7565;

/// Migration N brings the queue's tables from version N-1 to N.
const MIGRATIONS: &[&str] = &[r#"
    CREATE TABLE orch_workers (
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
    CREATE TABLE orch_queue (
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
    CREATE INDEX orch_queue_ready ON orch_queue (id) WHERE state = 'ready';
    CREATE INDEX orch_queue_by_worker ON orch_queue (worker) WHERE state = 'running';
"#];

/// The connection settings of the repository's PostgreSQL datastore (password from its vault
/// reference, else `PGPASSWORD`), or why there are none.
pub fn config(repo: &Repo, vault: &LocalVault) -> Result<tokio_postgres::Config, String> {
    let Some(datastore) = &repo.config.datastore else {
        return Err(
            "workers need the PostgreSQL datastore: add `datastore: { postgres: \
             postgres://user@host:5432/db }` to orch.yaml (see README, Workers)"
                .to_string(),
        );
    };
    let mut config = tokio_postgres::Config::from_str(&datastore.postgres)
        .map_err(|e| format!("orch.yaml datastore.postgres: not a PostgreSQL URL: {e}"))?;
    let password = match &datastore.password_vault {
        Some((name, key)) => Some(
            vault
                .get(name, key)
                .map_err(|e| format!("cannot read the datastore password from the vault: {e}"))?
                .ok_or_else(|| {
                    format!(
                        "orch.yaml datastore.password names vault {name:?} key {key:?}, which is \
                         not set; store it with `orch vault put {name} {key}`"
                    )
                })?,
        ),
        None => std::env::var("PGPASSWORD").ok().filter(|p| !p.is_empty()),
    };
    if let Some(password) = password {
        config.password(password);
    }
    config.application_name("orch-worker");
    Ok(config)
}

/// Who waits for a notification with a given payload (a queued step's id).
type Waiters = Arc<Mutex<HashMap<String, Arc<Notify>>>>;

/// One connection; a `NOTIFY` it receives on a channel it listens to wakes the waiter of its
/// payload ([`Connection::waiter`]), or else every task waiting on `wake`.
pub struct Connection {
    /// The client.
    pub client: Client,
    /// Notified on each notification no waiter claimed.
    pub wake: Arc<Notify>,
    waiters: Waiters,
}

impl Connection {
    /// A notify woken (with a stored permit, so none is lost) by notifications with `payload`.
    pub fn waiter(&self, payload: &str) -> Arc<Notify> {
        let mut waiters = self.waiters.lock().unwrap_or_else(|p| p.into_inner());
        waiters.entry(payload.to_string()).or_default().clone()
    }

    /// Stops waking the waiter of `payload`.
    pub fn forget(&self, payload: &str) {
        let mut waiters = self.waiters.lock().unwrap_or_else(|p| p.into_inner());
        waiters.remove(payload);
    }
}

/// Connects, listening to `channels`, and makes sure the queue's tables are current.
pub async fn connect(
    config: &tokio_postgres::Config,
    channels: &[&str],
) -> Result<Connection, String> {
    let (client, mut connection) = config
        .connect(NoTls)
        .await
        .map_err(|e| format!("cannot connect to the PostgreSQL datastore for the queue: {e}"))?;
    let wake = Arc::new(Notify::new());
    let waiters = Waiters::default();
    let notified = wake.clone();
    let claimed = waiters.clone();
    tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    let waiter = claimed
                        .lock()
                        .ok()
                        .and_then(|w| w.get(n.payload()).cloned());
                    match waiter {
                        Some(waiter) => waiter.notify_one(),
                        None => {
                            notified.notify_waiters();
                            notified.notify_one();
                        }
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "queue connection ended");
                    break;
                }
            }
        }
        // A closed connection wakes its waiters so they see the error at once.
        notified.notify_waiters();
        if let Ok(waiters) = claimed.lock() {
            waiters.values().for_each(|w| w.notify_one());
        }
    });
    migrate(&client).await?;
    for channel in channels {
        client
            .batch_execute(&format!("LISTEN {channel}"))
            .await
            .map_err(|e| format!("cannot listen for queue wake-ups: {e}"))?;
    }
    Ok(Connection {
        client,
        wake,
        waiters,
    })
}

/// Creates or upgrades the queue's tables (under an advisory lock; a newer version refuses).
async fn migrate(client: &Client) -> Result<(), String> {
    let pg = |e: tokio_postgres::Error| format!("cannot set up the queue tables: {e}");
    client.batch_execute("BEGIN").await.map_err(pg)?;
    let result = async {
        client
            .execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
            .await
            .map_err(pg)?;
        client
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS orch_queue_schema (version integer NOT NULL, \
                 applied_at timestamptz NOT NULL DEFAULT now())",
            )
            .await
            .map_err(pg)?;
        let found: i32 = client
            .query_one(
                "SELECT coalesce(max(version), 0) FROM orch_queue_schema",
                &[],
            )
            .await
            .map_err(pg)?
            .get(0);
        if found > QUEUE_SCHEMA_VERSION {
            return Err(format!(
                "the queue tables in this database are version {found}, newer than this orch \
                 (version {QUEUE_SCHEMA_VERSION}): upgrade orch"
            ));
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
            client.batch_execute(sql).await.map_err(pg)?;
            let version = i as i32 + 1;
            client
                .execute(
                    "INSERT INTO orch_queue_schema (version) VALUES ($1)",
                    &[&version],
                )
                .await
                .map_err(pg)?;
        }
        Ok(())
    }
    .await;
    let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
    client.batch_execute(end).await.map_err(pg)?;
    result
}

/// Whether a method of `kind` may run a second time after its worker was lost mid-call: reads,
/// lists and converges look before they change anything; creates, deletes, updates and actions
/// might do it twice.
pub fn safe_to_retry(kind: &str) -> bool {
    matches!(kind, "read" | "list" | "converge")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_read_list_and_converge_steps_run_again() {
        for kind in ["read", "list", "converge"] {
            assert!(safe_to_retry(kind), "{kind}");
        }
        for kind in ["create", "update", "delete", "action", ""] {
            assert!(!safe_to_retry(kind), "{kind}");
        }
    }
}
