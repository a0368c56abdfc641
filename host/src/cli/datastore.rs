//! `orch datastore migrate|status`: the PostgreSQL datastore's schema.

use serde_json::json;

use super::{CliError, CmdResult, Ctx};
use crate::store::SCHEMA_VERSION;

/// `orch datastore` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Cmd {
    /// Bring the PostgreSQL database of orch.yaml's `datastore:` to this orch's schema (safe to
    /// run again; two at once take turns).
    Migrate,
    /// Where the data is stored and, on PostgreSQL, the database's schema version.
    Status,
}

/// Runs an `orch datastore` subcommand.
pub fn exec(cmd: Cmd, ctx: &Ctx) -> CmdResult {
    let repo = ctx.repo()?;
    let store = ctx.store(&repo);
    let location = store.path().display().to_string();
    match cmd {
        Cmd::Migrate => {
            if !store.is_postgres() {
                return Err(CliError::usage(
                    "orch.yaml has no `datastore: { postgres: … }`: the embedded redb store \
                     upgrades itself and needs no migration",
                ));
            }
            let (from, to) = store.migrate().map_err(CliError::failed)?;
            let value = json!({"datastore": location, "from": from, "to": to});
            ctx.printer.result(&value, || {
                if from == to {
                    format!("{location}: schema {to} is current; nothing to do")
                } else {
                    format!("{location}: migrated schema {from} → {to}")
                }
            });
            Ok(0)
        }
        Cmd::Status => {
            let found = store.schema_version().map_err(CliError::failed)?;
            let value = json!({
                "backend": if store.is_postgres() { "postgres" } else { "redb" },
                "datastore": location,
                "schema": found,
                "supported": SCHEMA_VERSION,
            });
            ctx.printer.result(&value, || match found {
                None => format!("redb file {location}"),
                Some(found) if found == SCHEMA_VERSION => {
                    format!("PostgreSQL {location}: schema {found} (current)")
                }
                Some(found) if found < SCHEMA_VERSION => format!(
                    "PostgreSQL {location}: schema {found}, this orch needs {SCHEMA_VERSION}; run \
                     `orch datastore migrate`"
                ),
                Some(found) => format!(
                    "PostgreSQL {location}: schema {found} is newer than this orch \
                     ({SCHEMA_VERSION}); upgrade orch"
                ),
            });
            Ok(0)
        }
    }
}
