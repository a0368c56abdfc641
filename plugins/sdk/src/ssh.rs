//! Remote commands through the host's `ssh` import.

use crate::bindings::orch::plugin::ssh as wit;
use crate::{Result, error};

pub use wit::{Auth, ExecResult, PrivateKey, Target};

/// An SSH session to one target; the host reuses connections per target within a run.
pub struct Session(crate::host::SessionHandle);

impl Session {
    /// Connects to `target` (the host checks the plugin's grant and the host key first).
    pub fn open(target: &Target) -> Result<Session> {
        crate::host::ssh_open(target).map(Session)
    }

    /// Runs a command; a non-zero exit code is returned, not an error.
    pub fn exec(&self, command: &str) -> Result<ExecResult> {
        crate::host::ssh_exec(&self.0, command, None, None)
    }

    /// Runs a command with stdin and an optional timeout.
    pub fn exec_with(
        &self,
        command: &str,
        stdin: Option<&[u8]>,
        timeout_ms: Option<u32>,
    ) -> Result<ExecResult> {
        crate::host::ssh_exec(&self.0, command, stdin, timeout_ms)
    }

    /// Runs a command and returns its stdout, failing with its stderr on a non-zero exit.
    pub fn exec_ok(&self, command: &str) -> Result<String> {
        let r = self.exec(command)?;
        if r.exit_code == 0 {
            Ok(String::from_utf8_lossy(&r.stdout).into_owned())
        } else {
            let mut stderr = String::from_utf8_lossy(&r.stderr).trim().to_string();
            stderr.truncate(500);
            Err(error::failed(format!(
                "`{command}` exited with {}: {stderr}",
                r.exit_code
            )))
        }
    }

    /// Writes a file with the given permission bits.
    pub fn upload(&self, path: &str, contents: &[u8], mode: u32) -> Result<()> {
        crate::host::ssh_upload(&self.0, path, contents, mode)
    }

    /// Reads a file.
    pub fn download(&self, path: &str) -> Result<Vec<u8>> {
        crate::host::ssh_download(&self.0, path)
    }
}

/// Quotes a string for a POSIX shell.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}
