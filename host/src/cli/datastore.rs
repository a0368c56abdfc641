//! `orch datastore migrate|status|copy`: the PostgreSQL datastore's schema, and moving the
//! whole history between redb and PostgreSQL.

use serde_json::json;

use super::{CliError, CmdResult, Ctx};
use crate::store::{ResourceStore, SCHEMA_VERSION};

/// `orch datastore` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Cmd {
    /// Bring the PostgreSQL database of orch.yaml's `datastore:` to this orch's schema (safe to
    /// run again; two at once take turns).
    Migrate,
    /// Where the data is stored and, on PostgreSQL, the database's schema version.
    Status,
    /// Copy the whole history (versions, provenance, sightings, runs) into an empty store.
    /// Each side is `redb` (this repository's .orch/data.redb), `postgres` (orch.yaml's
    /// `datastore:`) or a postgres:// URL (password from PGPASSWORD).
    Copy {
        /// Where the data is now.
        #[arg(long, value_name = "redb|postgres|URL")]
        from: String,
        /// Where it goes; must be empty (a PostgreSQL database is migrated first).
        #[arg(long, value_name = "redb|postgres|URL")]
        to: String,
    },
}

/// The store `side` names (see [`Cmd::Copy`]).
fn endpoint(ctx: &Ctx, repo: &crate::repo::Repo, side: &str) -> Result<ResourceStore, CliError> {
    let options = ctx.store(repo).options();
    match side {
        "redb" => Ok(ResourceStore::new(
            repo.orch_dir().join("data.redb"),
            options,
        )),
        "postgres" => {
            let store = ctx.store(repo);
            if !store.is_postgres() {
                return Err(CliError::usage(
                    "`postgres` names orch.yaml's `datastore: { postgres: … }`, which this \
                     repository does not have; give a postgres:// URL instead",
                ));
            }
            Ok(store)
        }
        url if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            let password = std::env::var("PGPASSWORD").ok().filter(|p| !p.is_empty());
            Ok(ResourceStore::postgres(url, password.as_deref(), options))
        }
        other => Err(CliError::usage(format!(
            "{:?} is not a datastore; give redb, postgres or a postgres:// URL",
            crate::store::mask_url(other)
        ))),
    }
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
        Cmd::Copy { from, to } => copy(ctx, &repo, &from, &to),
    }
}

/// `orch datastore copy --from … --to …`.
fn copy(ctx: &Ctx, repo: &crate::repo::Repo, from: &str, to: &str) -> CmdResult {
    let (source, target) = (endpoint(ctx, repo, from)?, endpoint(ctx, repo, to)?);
    if source.path() == target.path() {
        return Err(CliError::usage("--from and --to name the same store"));
    }
    if target.is_postgres() {
        target.migrate().map_err(CliError::failed)?;
    }
    let count = source.copy_into(&target).map_err(CliError::failed)?;
    let (from, to) = (
        source.path().display().to_string(),
        target.path().display().to_string(),
    );
    let value = json!({"from": from, "to": to, "copied": count});
    ctx.printer.result(&value, || {
        format!(
            "copied {} resources ({} versions) and {} runs from {from} to {to}",
            count.resources, count.versions, count.runs
        )
    });
    Ok(0)
}
