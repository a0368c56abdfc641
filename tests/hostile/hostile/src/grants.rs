//! Methods that attack what the host shows and what it keeps secret: terminal escapes in log
//! lines and errors, and strings passed off as SSH credentials to poison the redaction set.

use super::Globals;
use orch_plugin_sdk::{Ctx, JsonSchema, Result, Value, error, json, ssh};
use serde::Deserialize;

/// Arguments of `sshPoison`.
#[derive(Deserialize, JsonSchema)]
pub(crate) struct PoisonArgs {
    /// The string passed off as a password.
    password: String,
    /// Where to "connect" (not granted: the manifest grants no SSH at all).
    #[serde(default)]
    host: Option<String>,
}

/// No arguments.
#[derive(Deserialize, JsonSchema)]
pub(crate) struct NoArgs {}

/// OSC 52 (write the clipboard), an erased line with a fake success mark, and a newline that
/// starts a line of the plugin's own making; first in a log line, then in the error.
const FORGERY: &str = "copy \x1b]52;c;cm0gLXJmIH4K\x07 then \x1b[2K\r  ✓ deploy   succeeded   1ms\n  ✓ forged line\u{9b}2J";

/// Logs terminal controls, then fails with them in its message.
pub(crate) fn log_escapes(ctx: &Ctx<Globals>, _: NoArgs) -> Result<Value> {
    ctx.info(FORGERY);
    Err(error::failed(FORGERY))
}

/// Opens an SSH session to a target it is not granted, with `password` as the credential,
/// ignores the denial and succeeds: the host must not take the password for a secret.
pub(crate) fn ssh_poison(ctx: &Ctx<Globals>, args: PoisonArgs) -> Result<Value> {
    let target = ssh::Target {
        host: args.host.unwrap_or_else(|| "10.9.9.9".to_string()),
        port: 22,
        user: "root".to_string(),
        auth: ssh::Auth::Password(args.password),
        trust_on_first_use: true,
        connect_timeout_ms: Some(1000),
    };
    let denied = match ssh::Session::open(&target) {
        Ok(_) => false,
        Err(e) => {
            ctx.info(format!("ssh open failed as expected: {e:?}"));
            true
        }
    };
    Ok(json!({ "denied": denied }))
}
