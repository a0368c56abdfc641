//! `ssh/host`: run a command, upload a file, wait until a machine answers. The logic talks
//! through [`Connector`]/[`Remote`] so it runs natively against a fake session.

use crate::base64;
use crate::remote::{self, Connector, Output, Remote, SshSettings};
use orch_plugin_sdk::{Error, JsonSchema, Result, error};
use serde::{Deserialize, Serialize};
use std::time::Duration;

remote::ssh_globals! {
    /// Global arguments of `ssh/host`: only the connection.
    pub struct HostGlobals {}
}

/// Arguments of `exec`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExecArgs {
    /// Shell command to run, e.g. `apk add --no-cache docker`.
    pub command: String,
    /// Text fed to the command's standard input.
    #[serde(default)]
    pub stdin: Option<String>,
    /// Stop the command after this many milliseconds (the host also caps it).
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub timeout_ms: Option<u32>,
    /// Fail the method when the command exits non-zero (default false: the exit code is data).
    #[serde(default)]
    pub check: bool,
}

/// What `exec` returns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecOutput {
    /// The command's exit code.
    pub exit_code: i32,
    /// Standard output (invalid UTF-8 replaced).
    pub stdout: String,
    /// Standard error (invalid UTF-8 replaced).
    pub stderr: String,
}

/// Attributes of the `exec` resource (instance `last`).
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecResource {
    /// The command that ran.
    pub command: String,
    /// `user@host:port` it ran on.
    pub target: String,
    /// Its exit code.
    pub exit_code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// When it finished (RFC 3339, UTC).
    pub timestamp: String,
}

/// A permission mode as written in YAML.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Mode {
    /// The numeric value itself: 420 is 0o644.
    Number(u32),
    /// Octal text: `"0644"`, `"644"` or `"0o644"`.
    Text(String),
}

/// Arguments of `upload`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UploadArgs {
    /// Path of the file to write on the host (absolute, or relative to the user's home).
    pub path: String,
    /// The file's contents as text.
    #[serde(default)]
    pub content: Option<String>,
    /// The file's contents as standard base64, for binary files; instead of `content`.
    #[serde(default)]
    pub content_base64: Option<String>,
    /// Permission bits, default `"0644"`. Write it as an octal string: YAML reads `0644` as 644.
    #[serde(default)]
    pub mode: Option<Mode>,
}

/// What `upload` returns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UploadOutput {
    /// The path written.
    pub path: String,
    /// How many bytes.
    pub bytes: usize,
    /// The mode as octal text, e.g. `0644`.
    pub mode: String,
}

fn default_attempts() -> u32 {
    30
}

fn default_initial_delay_ms() -> u64 {
    500
}

/// Arguments of `waitForConnection`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WaitArgs {
    /// Connection attempts before giving up (default 30, at most 60).
    #[serde(default = "default_attempts")]
    #[schemars(range(min = 1, max = 60))]
    pub max_attempts: u32,
    /// Pause after the first failed attempt (default 500 ms); it doubles each time, up to 10 s.
    #[serde(default = "default_initial_delay_ms")]
    #[schemars(range(max = 10000))]
    pub initial_delay_ms: u64,
}

/// What `waitForConnection` returns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WaitOutput {
    /// True: the host answered.
    pub connected: bool,
    /// Attempts it took (1 = at once).
    pub attempts: u32,
    /// Time spent pausing between attempts.
    pub waited_ms: u64,
}

/// The longest pause between connection attempts.
pub const MAX_DELAY: Duration = Duration::from_secs(10);
/// The most attempts `waitForConnection` makes, whatever it is asked.
pub const MAX_ATTEMPTS: u32 = 60;
/// Connect timeout of each attempt, so a silent address costs bounded time.
pub const ATTEMPT_CONNECT_TIMEOUT_MS: u32 = 10_000;

/// Runs `exec`: one command, its output, and a failure only when `check` is set.
pub fn exec<C: Connector>(
    connector: &C,
    settings: &SshSettings,
    model: &str,
    args: &ExecArgs,
) -> Result<ExecOutput> {
    if args.command.trim().is_empty() {
        return Err(error::invalid("command must not be empty"));
    }
    let session = remote::connect(connector, settings, model)?;
    let result = session.exec_with(
        &args.command,
        args.stdin.as_deref().map(str::as_bytes),
        args.timeout_ms,
    )?;
    let out = Output::from(result);
    if args.check && !out.success() {
        return Err(error::failed(format!(
            "the command exited with {} on {}: {}",
            out.exit_code,
            settings.describe(),
            out.reason()
        )));
    }
    Ok(ExecOutput {
        exit_code: out.exit_code,
        stdout: out.stdout,
        stderr: out.stderr,
    })
}

/// Reads a mode: numbers as they are, strings as octal; at most 0o7777.
pub fn parse_mode(mode: Option<&Mode>) -> Result<u32> {
    let value = match mode {
        None => 0o644,
        Some(Mode::Number(n)) => *n,
        Some(Mode::Text(text)) => {
            let t = text.trim();
            let digits = t.strip_prefix("0o").unwrap_or(t);
            u32::from_str_radix(digits, 8).map_err(|_| {
                error::invalid(format!(
                    "mode {text:?} is not an octal permission such as \"0644\""
                ))
            })?
        }
    };
    if value > 0o7777 {
        return Err(error::invalid(format!(
            "mode {value:#o} has bits beyond 0o7777; write the mode as an octal string, e.g. \"0644\""
        )));
    }
    Ok(value)
}

/// The bytes to upload from exactly one of `content` and `contentBase64`.
pub fn upload_contents(args: &UploadArgs) -> Result<Vec<u8>> {
    match (&args.content, &args.content_base64) {
        (Some(text), None) => Ok(text.as_bytes().to_vec()),
        (None, Some(encoded)) => base64::decode(encoded)
            .map_err(|e| error::invalid(format!("contentBase64 is not valid base64: {e}"))),
        (Some(_), Some(_)) => Err(error::invalid(
            "give either content or contentBase64, not both",
        )),
        (None, None) => Err(error::invalid("give content or contentBase64")),
    }
}

/// Checks `upload`'s arguments without connecting: (path, bytes, mode).
pub fn plan_upload(args: &UploadArgs) -> Result<(String, Vec<u8>, u32)> {
    let path = args.path.trim();
    if path.is_empty() || path.contains('\0') {
        return Err(error::invalid("path must be a non-empty file path"));
    }
    if path.ends_with('/') {
        return Err(error::invalid(format!(
            "path {path:?} names a directory; give the file's path"
        )));
    }
    let contents = upload_contents(args)?;
    let mode = parse_mode(args.mode.as_ref())?;
    Ok((path.to_string(), contents, mode))
}

/// Runs `upload`.
pub fn upload<C: Connector>(
    connector: &C,
    settings: &SshSettings,
    model: &str,
    args: &UploadArgs,
) -> Result<UploadOutput> {
    let (path, contents, mode) = plan_upload(args)?;
    let session = remote::connect(connector, settings, model)?;
    session.upload(&path, &contents, mode)?;
    Ok(UploadOutput {
        path,
        bytes: contents.len(),
        mode: format!("{mode:04o}"),
    })
}

/// The pauses after each failed attempt but the last: `initial`, doubling, capped at 10 s.
pub fn backoff_delays(max_attempts: u32, initial_delay_ms: u64) -> Vec<Duration> {
    let attempts = max_attempts.clamp(1, MAX_ATTEMPTS);
    let mut delay = Duration::from_millis(initial_delay_ms).min(MAX_DELAY);
    let mut delays = Vec::with_capacity(attempts as usize - 1);
    for _ in 1..attempts {
        delays.push(delay);
        delay = (delay * 2).min(MAX_DELAY);
    }
    delays
}

/// Whether a failed attempt is worth repeating: not when the grant, the host key or the
/// arguments are the problem, because waiting does not change those.
pub fn retryable(e: &Error) -> bool {
    matches!(e, Error::Transient(_) | Error::Failed(_))
}

fn probe<C: Connector>(connector: &C, target: &orch_plugin_sdk::ssh::Target) -> Result<()> {
    let session = connector.open(target)?;
    let out = session.run("true")?;
    if out.success() {
        Ok(())
    } else {
        Err(error::failed(format!(
            "`true` exited with {}: {}",
            out.exit_code,
            out.reason()
        )))
    }
}

/// Runs `waitForConnection`: open + `true` until it answers, a bounded number of times.
pub fn wait_for_connection<C: Connector>(
    connector: &C,
    settings: &SshSettings,
    model: &str,
    args: &WaitArgs,
    sleep: &dyn Fn(Duration),
    note: &dyn Fn(&str),
) -> Result<WaitOutput> {
    let mut target = settings.target(model)?;
    target.connect_timeout_ms = Some(ATTEMPT_CONNECT_TIMEOUT_MS);
    let delays = backoff_delays(args.max_attempts, args.initial_delay_ms);
    let attempts = delays.len() as u32 + 1;
    let mut waited = Duration::ZERO;
    let mut last = String::new();
    for attempt in 1..=attempts {
        match probe(connector, &target) {
            Ok(()) => {
                return Ok(WaitOutput {
                    connected: true,
                    attempts: attempt,
                    waited_ms: waited.as_millis() as u64,
                });
            }
            Err(e) if !retryable(&e) => return Err(e),
            Err(e) => last = message(&e),
        }
        if let Some(delay) = delays.get(attempt as usize - 1) {
            note(&format!(
                "{} not answering yet (attempt {attempt}/{attempts}: {last}); retrying in {} ms",
                settings.describe(),
                delay.as_millis()
            ));
            sleep(*delay);
            waited += *delay;
        }
    }
    Err(error::transient(format!(
        "{} did not answer over SSH after {attempts} attempts ({} s): {last}",
        settings.describe(),
        waited.as_secs()
    )))
}

fn message(e: &Error) -> String {
    match e {
        Error::InvalidArguments(m)
        | Error::Denied(m)
        | Error::NotFound(m)
        | Error::Conflict(m)
        | Error::Transient(m)
        | Error::Failed(m) => m.clone(),
    }
}

#[cfg(test)]
mod tests;
