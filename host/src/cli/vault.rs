//! `orch vault put|list`.

use super::{CliError, CmdResult, Ctx};
use std::io::Read;

/// `orch vault` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Cmd {
    /// Store a secret read from stdin (never from the command line, which shells record).
    Put {
        /// Vault name.
        vault: String,
        /// Key name.
        key: String,
    },
    /// List a vault's keys (never values).
    List {
        /// Vault name.
        vault: String,
    },
}

/// Runs an `orch vault` subcommand.
pub fn exec(cmd: Cmd, ctx: &Ctx) -> CmdResult {
    let repo = ctx.repo()?;
    let vault = ctx.vault(&repo)?;
    match cmd {
        Cmd::Put { vault: name, key } => {
            let mut value = String::new();
            std::io::stdin()
                .read_to_string(&mut value)
                .map_err(|e| CliError::failed(format!("cannot read the secret from stdin: {e}")))?;
            // A trailing newline from `echo` is not part of the secret.
            let value = value.strip_suffix('\n').unwrap_or(&value);
            let value = value.strip_suffix('\r').unwrap_or(value);
            if value.is_empty() {
                return Err(CliError::usage(
                    "the secret on stdin is empty; pipe it in: `printf %s \"$SECRET\" | orch vault put VAULT KEY`",
                ));
            }
            vault.put(&name, &key, value).map_err(CliError::failed)?;
            ctx.printer.result(
                &serde_json::json!({"vault": name, "key": key, "stored": true}),
                || format!("stored {name}/{key}"),
            );
            Ok(0)
        }
        Cmd::List { vault: name } => {
            let keys = vault.list(&name).map_err(CliError::failed)?;
            ctx.printer
                .result(&serde_json::json!({"vault": name, "keys": keys}), || {
                    keys.join("\n")
                });
            Ok(0)
        }
    }
}
