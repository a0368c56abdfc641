//! `orch token create|list|revoke`: bearer tokens for `orch serve`.

use super::{CliError, CmdResult, Ctx};
use crate::tokens::{Scope, TokenError, TokenStore};

/// `orch token` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Cmd {
    /// Make a token and print it once (only its SHA-256 is stored, in .orch/tokens.json).
    Create {
        /// A name for the token (who uses it, e.g. chat-bot).
        name: String,
        /// read: every GET; run: read plus starting and cancelling runs; admin: everything.
        #[arg(long)]
        scope: Scope,
        /// With --scope run: the only workflows it may start (comma-separated); no method runs.
        #[arg(long, value_delimiter = ',', value_name = "A,B")]
        workflows: Option<Vec<String>>,
    },
    /// List the tokens (names and scopes; never a token or its hash).
    List,
    /// Revoke a token: requests with it are refused from now on, also by a running server.
    Revoke {
        /// The token's name.
        name: String,
    },
}

fn to_cli(e: TokenError) -> CliError {
    match e {
        TokenError::Invalid(_) | TokenError::NotFound(_) => CliError::usage(e),
        _ => CliError::failed(e),
    }
}

/// Runs an `orch token` subcommand.
pub fn exec(cmd: Cmd, ctx: &Ctx) -> CmdResult {
    let root = ctx.repo_root()?;
    let store = TokenStore::in_dir(&root.join(crate::repo::STATE_DIR));
    match cmd {
        Cmd::Create {
            name,
            scope,
            workflows,
        } => {
            let (entry, token) = store.create(&name, scope, workflows).map_err(to_cli)?;
            let mut value = entry.public_json();
            value["token"] = serde_json::Value::String(token.clone());
            ctx.printer.result(&value, || {
                format!(
                    "{token}\ntoken `{}` (scope {}) created; it is shown only this once: store it now",
                    entry.name,
                    entry.scope.as_str()
                )
            });
            Ok(0)
        }
        Cmd::List => {
            let tokens = store.list().map_err(to_cli)?;
            let value: Vec<serde_json::Value> = tokens.iter().map(|t| t.public_json()).collect();
            ctx.printer.result(&value, || {
                if tokens.is_empty() {
                    return "no tokens (make one with `orch token create NAME --scope read`)"
                        .to_string();
                }
                tokens
                    .iter()
                    .map(|t| {
                        let limit = t
                            .workflows
                            .as_ref()
                            .map(|w| format!("  workflows {}", w.join(",")))
                            .unwrap_or_default();
                        format!(
                            "{:<20} {:<6} {}{limit}",
                            t.name,
                            t.scope.as_str(),
                            t.created_at
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
            Ok(0)
        }
        Cmd::Revoke { name } => {
            let entry = store.revoke(&name).map_err(to_cli)?;
            let value = serde_json::json!({"revoked": entry.name});
            ctx.printer
                .result(&value, || format!("token `{}` revoked", entry.name));
            Ok(0)
        }
    }
}
