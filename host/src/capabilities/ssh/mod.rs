//! `orch:plugin/ssh`: remote commands over SSH (russh), checked against the call's grant on
//! every open, with host keys verified against the repository's known-hosts store.
//!
//! Connections come from the run's [`SshSessionPool`], so steps of one run that open the same
//! target with the same credentials share one connection. Uploads and downloads run `sh`/`cat`
//! over exec channels rather than SFTP: every OpenSSH server has them, and there is no
//! subsystem to enable. An upload writes a temporary file beside the destination, sets its
//! mode and renames it into place, so readers never see half a file.

pub mod grant;
mod known_hosts;
mod session;

use crate::capabilities::ssh::grant::{SshGrant, SshTarget};
use crate::runtime::wit::v0_2::orch::plugin::{ssh as wit, types::Error as WitError};
use crate::vault::{Redactor, SecretSource};
pub use known_hosts::{
    HostKeyStatus, KNOWN_HOSTS_FILE, KnownHosts, KnownHostsError, KnownKey, fingerprint,
};
pub use session::{
    ExecOutput, OpenRequest, SshAuth, SshConnection, SshError, SshSessionPool, probe_host_key,
};
use std::sync::Arc;
use std::time::Duration;
use wasmtime::component::{Resource, ResourceTable};

/// Connect timeout when the target names none.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The host's bound on any connect timeout.
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Session handles one call may hold at once.
const MAX_SESSIONS_PER_CALL: usize = 256;
/// Longest remote path accepted.
const MAX_PATH_BYTES: usize = 4096;

/// Per-call SSH state.
pub struct SshCapability {
    access: Option<SshAccess>,
    sessions: ResourceTable,
    open_sessions: usize,
}

struct SshAccess {
    grant: SshGrant,
    pool: SshSessionPool,
    redactor: Redactor,
    max_output_bytes: u64,
    max_timeout: Duration,
}

/// What a guest's `session` handle stands for.
struct SessionEntry {
    connection: Arc<SshConnection>,
}

impl SshCapability {
    /// SSH under `grant`, through the run's `pool`. Credentials join `redactor` (the run's
    /// redaction set) once a session to a granted target has been opened with them. Output is capped at `max_output_bytes` and no
    /// timeout exceeds `max_timeout` (the call's own limit).
    pub fn new(
        grant: SshGrant,
        pool: SshSessionPool,
        redactor: Redactor,
        max_output_bytes: u64,
        max_timeout: Duration,
    ) -> Self {
        SshCapability {
            access: Some(SshAccess {
                grant,
                pool,
                redactor,
                max_output_bytes,
                max_timeout,
            }),
            sessions: ResourceTable::new(),
            open_sessions: 0,
        }
    }

    /// No SSH at all (used for `describe`).
    pub fn none() -> Self {
        SshCapability {
            access: None,
            sessions: ResourceTable::new(),
            open_sessions: 0,
        }
    }

    fn access(&self) -> Result<&SshAccess, WitError> {
        self.access
            .as_ref()
            .ok_or_else(|| WitError::Denied("ssh is not available during describe".into()))
    }

    async fn open(&mut self, target: wit::Target) -> Result<Arc<SshConnection>, WitError> {
        let access = self.access()?;
        let auth = match target.auth {
            wit::Auth::PrivateKey(k) => SshAuth::PrivateKey {
                key: k.key,
                passphrase: k.passphrase,
            },
            wit::Auth::Password(p) => SshAuth::Password(p),
        };
        let redact = |e: SshError| to_wit(e, &access.redactor);
        let ssh_target = SshTarget::new(&target.host, target.port, &target.user)
            .map_err(SshError::InvalidArguments)
            .map_err(redact)?;
        access
            .grant
            .check(&ssh_target)
            .map_err(|why| SshError::Denied(format!("ssh {why}")))
            .map_err(redact)?;
        if self.open_sessions >= MAX_SESSIONS_PER_CALL {
            return Err(redact(SshError::Denied(format!(
                "ssh {ssh_target}: a call may hold at most {MAX_SESSIONS_PER_CALL} sessions; drop the ones no longer needed"
            ))));
        }
        let connect_timeout = target
            .connect_timeout_ms
            .map(|ms| Duration::from_millis(ms.into()))
            .unwrap_or(DEFAULT_CONNECT_TIMEOUT)
            .min(MAX_CONNECT_TIMEOUT)
            .min(access.max_timeout);
        let request = OpenRequest {
            addresses: access.grant.named_addresses(&ssh_target),
            target: ssh_target,
            auth,
            trust_on_first_use: target.trust_on_first_use,
            connect_timeout,
        };
        let connection = access.pool.open(&request).await.map_err(redact)?;
        // Only now, with the target granted and the server having accepted them, are these
        // credentials known to be real secrets. Before, any string a plugin passed as a
        // "password" would have joined the run's redaction set, and writes containing it
        // would be refused (it used to rewrite other models' data).
        for secret in request.auth.secrets() {
            access
                .redactor
                .add_from(&secret, SecretSource::SshCredential);
        }
        Ok(connection)
    }

    fn connection(&self, session: &Resource<wit::Session>) -> wasmtime::Result<Arc<SshConnection>> {
        let entry: &SessionEntry = self
            .sessions
            .get(&Resource::<SessionEntry>::new_borrow(session.rep()))?;
        Ok(entry.connection.clone())
    }

    fn command_timeout(access: &SshAccess, timeout_ms: Option<u32>) -> Duration {
        timeout_ms
            .map(|ms| Duration::from_millis(ms.into()))
            .unwrap_or(access.max_timeout)
            .min(access.max_timeout)
    }
}

/// The WIT error for an SSH failure, with any credential replaced by `***`.
fn to_wit(e: SshError, redactor: &Redactor) -> WitError {
    match e {
        SshError::InvalidArguments(m) => WitError::InvalidArguments(redactor.redact(&m)),
        SshError::Denied(m) => WitError::Denied(redactor.redact(&m)),
        SshError::NotFound(m) => WitError::NotFound(redactor.redact(&m)),
        SshError::Transient(m) => WitError::Transient(redactor.redact(&m)),
        SshError::Failed(m) => WitError::Failed(redactor.redact(&m)),
    }
}

/// Quotes a string for a POSIX shell.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn check_path(path: &str) -> Result<(), SshError> {
    if path.is_empty() || path.len() > MAX_PATH_BYTES || path.contains('\0') {
        return Err(SshError::InvalidArguments(format!(
            "remote path {:?} must be 1 to {MAX_PATH_BYTES} bytes without NUL",
            session::shown_command(path)
        )));
    }
    Ok(())
}

/// The trimmed start of a command's stderr, for messages.
fn stderr_excerpt(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let text = text.trim();
    match text.char_indices().nth(500) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

/// Writes stdin to a temporary file beside `$1`, sets its mode and renames it into place.
const UPLOAD_SCRIPT: &str = r#"set -e; f=$1; t="$f.orch-upload.$$"; trap 'rm -f "$t"' EXIT; (umask 077; cat > "$t"); chmod "$2" "$t"; mv -f "$t" "$f"; trap - EXIT"#;

async fn upload(
    access: &SshAccess,
    connection: &SshConnection,
    path: &str,
    contents: &[u8],
    mode: u32,
) -> Result<(), SshError> {
    check_path(path)?;
    if mode > 0o7777 {
        return Err(SshError::InvalidArguments(format!(
            "mode {mode:#o} is not a permission (0 to 0o7777)"
        )));
    }
    let command = format!(
        "sh -c {} orch-upload {} {mode:o}",
        shell_quote(UPLOAD_SCRIPT),
        shell_quote(path)
    );
    let out = connection
        .exec(
            &command,
            Some(contents),
            access.max_timeout,
            access.max_output_bytes,
        )
        .await
        .map_err(|e| rename_command(e, &command, &format!("upload to {path}")))?;
    if out.exit_code != 0 {
        return Err(SshError::Failed(format!(
            "ssh {}: upload to {path} failed (exit {}): {}",
            connection.target(),
            out.exit_code,
            stderr_excerpt(&out.stderr)
        )));
    }
    Ok(())
}

async fn download(
    access: &SshAccess,
    connection: &SshConnection,
    path: &str,
) -> Result<Vec<u8>, SshError> {
    check_path(path)?;
    let command = format!("cat -- {}", shell_quote(path));
    let out = connection
        .exec(&command, None, access.max_timeout, access.max_output_bytes)
        .await?;
    if out.exit_code == 0 {
        return Ok(out.stdout);
    }
    let why = stderr_excerpt(&out.stderr);
    let message = format!(
        "ssh {}: download of {path} failed (exit {}): {why}",
        connection.target(),
        out.exit_code
    );
    if why.contains("No such file or directory") {
        Err(SshError::NotFound(message))
    } else {
        Err(SshError::Failed(message))
    }
}

/// Messages about the upload script name the upload instead of the script.
fn rename_command(e: SshError, command: &str, what: &str) -> SshError {
    let shown = session::shown_command(command);
    let fix = |m: String| m.replace(&format!("`{shown}`"), what);
    match e {
        SshError::InvalidArguments(m) => SshError::InvalidArguments(fix(m)),
        SshError::Denied(m) => SshError::Denied(fix(m)),
        SshError::NotFound(m) => SshError::NotFound(fix(m)),
        SshError::Transient(m) => SshError::Transient(fix(m)),
        SshError::Failed(m) => SshError::Failed(fix(m)),
    }
}

impl wit::Host for SshCapability {}

impl wit::HostSession for SshCapability {
    async fn open(
        &mut self,
        target: wit::Target,
    ) -> wasmtime::Result<Result<Resource<wit::Session>, WitError>> {
        let connection = match SshCapability::open(self, target).await {
            Ok(c) => c,
            Err(e) => return Ok(Err(e)),
        };
        let entry = self.sessions.push(SessionEntry { connection })?;
        self.open_sessions += 1;
        Ok(Ok(Resource::new_own(entry.rep())))
    }

    async fn exec(
        &mut self,
        session: Resource<wit::Session>,
        command: String,
        stdin: Option<Vec<u8>>,
        timeout_ms: Option<u32>,
    ) -> wasmtime::Result<Result<wit::ExecResult, WitError>> {
        let connection = self.connection(&session)?;
        let access = match self.access() {
            Ok(a) => a,
            Err(e) => return Ok(Err(e)),
        };
        let limit = Self::command_timeout(access, timeout_ms);
        let result = connection
            .exec(&command, stdin.as_deref(), limit, access.max_output_bytes)
            .await
            .map(|out| wit::ExecResult {
                exit_code: out.exit_code,
                stdout: out.stdout,
                stderr: out.stderr,
            })
            .map_err(|e| to_wit(e, &access.redactor));
        Ok(result)
    }

    async fn upload(
        &mut self,
        session: Resource<wit::Session>,
        path: String,
        contents: Vec<u8>,
        mode: u32,
    ) -> wasmtime::Result<Result<(), WitError>> {
        let connection = self.connection(&session)?;
        let access = match self.access() {
            Ok(a) => a,
            Err(e) => return Ok(Err(e)),
        };
        Ok(upload(access, &connection, &path, &contents, mode)
            .await
            .map_err(|e| to_wit(e, &access.redactor)))
    }

    async fn download(
        &mut self,
        session: Resource<wit::Session>,
        path: String,
    ) -> wasmtime::Result<Result<Vec<u8>, WitError>> {
        let connection = self.connection(&session)?;
        let access = match self.access() {
            Ok(a) => a,
            Err(e) => return Ok(Err(e)),
        };
        Ok(download(access, &connection, &path)
            .await
            .map_err(|e| to_wit(e, &access.redactor)))
    }

    async fn drop(&mut self, session: Resource<wit::Session>) -> wasmtime::Result<()> {
        self.sessions
            .delete(Resource::<SessionEntry>::new_own(session.rep()))?;
        self.open_sessions = self.open_sessions.saturating_sub(1);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_quotes_and_spaces() {
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn bad_paths_are_invalid_arguments() {
        assert!(matches!(check_path(""), Err(SshError::InvalidArguments(_))));
        assert!(matches!(
            check_path("a\0b"),
            Err(SshError::InvalidArguments(_))
        ));
        assert!(check_path("/etc/nginx/conf.d/x.conf").is_ok());
    }
}
