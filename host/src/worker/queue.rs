//! The step queue in PostgreSQL: connections that receive `LISTEN/NOTIFY` wake-ups, and what
//! the coordinator and the workers share. Its tables are part of the datastore's schema
//! (`store/postgres.rs`, migration 2), applied by `orch datastore migrate`.

use crate::repo::Repo;
use crate::vault::LocalVault;
use futures_util::StreamExt;
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;
use tokio_postgres::{AsyncMessage, Client, NoTls};

/// Channel a coordinator notifies when it queues a step (workers listen).
pub const READY_CHANNEL: &str = "orch_queue_ready";
/// Channel a worker notifies when it finished a step (coordinators listen).
pub const DONE_CHANNEL: &str = "orch_queue_done";

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

/// Connects, listening to `channels`, once the datastore's schema (the queue's tables) is current.
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
    check_schema(&client).await?;
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

/// Refuses a database whose schema is not this orch's: the queue's tables are part of the
/// datastore's schema, created and upgraded by `orch datastore migrate`.
async fn check_schema(client: &Client) -> Result<(), String> {
    let found: i32 = client
        .query_one(
            "SELECT CASE WHEN to_regclass('schema_version') IS NULL THEN 0 \
             ELSE (SELECT coalesce(max(version), 0) FROM schema_version) END",
            &[],
        )
        .await
        .map_err(|e| format!("cannot read the datastore's schema version: {e}"))?
        .get(0);
    let supported = crate::store::SCHEMA_VERSION;
    match found.cmp(&supported) {
        std::cmp::Ordering::Equal => Ok(()),
        std::cmp::Ordering::Less => Err(format!(
            "the PostgreSQL datastore's schema is version {found}, older than this orch \
             ({supported}), and the worker queue needs it current: run `orch datastore migrate`"
        )),
        std::cmp::Ordering::Greater => Err(format!(
            "the PostgreSQL datastore's schema is version {found}, newer than this orch \
             ({supported}): upgrade orch"
        )),
    }
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
