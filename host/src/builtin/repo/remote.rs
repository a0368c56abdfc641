//! One SSH session to the deployment target, through the call's SSH capability (so the grant,
//! the known-hosts check and the redaction of credentials are the ones plugins get).

use super::Globals;
use crate::capabilities::SshCapability;
use crate::runtime::wit::v0_2::PluginError;
use crate::runtime::wit::v0_2::orch::plugin::ssh::{
    Auth, ExecResult, HostSession, PrivateKey, Session, Target,
};
use wasmtime::component::Resource;

/// An open session to the target, and how it is shown in messages.
pub(super) struct Remote<'a> {
    ssh: &'a mut SshCapability,
    rep: u32,
    /// `user@host:port`.
    pub(super) shown: String,
}

fn trap(e: wasmtime::Error) -> PluginError {
    PluginError::Failed(format!("ssh: {e}"))
}

/// Quotes a string for a POSIX shell.
pub(super) fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The trimmed start of a command's stderr, for messages.
fn excerpt(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    match text.char_indices().nth(500) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

impl<'a> Remote<'a> {
    /// Opens a session to the target the global arguments name. A target orch.yaml does not
    /// grant comes back `denied`, with the grant to add.
    pub(super) async fn open(
        ssh: &'a mut SshCapability,
        g: &Globals,
    ) -> Result<Remote<'a>, PluginError> {
        let target = Target {
            host: g.host.clone(),
            port: g.port,
            user: g.user.clone(),
            auth: Auth::PrivateKey(PrivateKey {
                key: g.ssh_key.clone(),
                passphrase: g.ssh_key_passphrase.clone(),
            }),
            trust_on_first_use: false,
            connect_timeout_ms: None,
        };
        let shown = format!("{}@{}:{}", g.user, g.host, g.port);
        match HostSession::open(ssh, target).await.map_err(trap)? {
            Ok(session) => Ok(Remote {
                rep: session.rep(),
                ssh,
                shown,
            }),
            Err(PluginError::Denied(why)) => Err(PluginError::Denied(format!(
                "{why}. orch/repo deploys orch itself (its files, binary and vaults), so it reaches \
                 only targets the operator grants: add `grants: {{ orch: {{ ssh: [\"{shown}\"] }} }}` \
                 to orch.yaml"
            ))),
            Err(e) => Err(e),
        }
    }

    fn session(&self) -> Resource<Session> {
        Resource::new_borrow(self.rep)
    }

    /// Runs `command`; a non-zero exit is a result.
    pub(super) async fn exec(
        &mut self,
        command: &str,
        stdin: Option<Vec<u8>>,
    ) -> Result<ExecResult, PluginError> {
        let session = self.session();
        HostSession::exec(self.ssh, session, command.to_string(), stdin, None)
            .await
            .map_err(trap)?
    }

    /// Runs `command` and returns its stdout; a non-zero exit fails with its stderr, saying
    /// `what` was being done.
    pub(super) async fn run(
        &mut self,
        what: &str,
        command: &str,
        stdin: Option<Vec<u8>>,
    ) -> Result<Vec<u8>, PluginError> {
        let out = self.exec(command, stdin).await?;
        if out.exit_code != 0 {
            return Err(PluginError::Failed(format!(
                "ssh {}: {what} failed (exit {}): {}",
                self.shown,
                out.exit_code,
                excerpt(&out.stderr)
            )));
        }
        Ok(out.stdout)
    }

    /// Writes `contents` to `path` through a temporary file beside it and a rename.
    pub(super) async fn upload(
        &mut self,
        path: &str,
        contents: Vec<u8>,
        mode: u32,
    ) -> Result<(), PluginError> {
        let session = self.session();
        HostSession::upload(self.ssh, session, path.to_string(), contents, mode)
            .await
            .map_err(trap)?
    }

    /// The contents of `path`.
    pub(super) async fn download(&mut self, path: &str) -> Result<Vec<u8>, PluginError> {
        let session = self.session();
        HostSession::download(self.ssh, session, path.to_string())
            .await
            .map_err(trap)?
    }

    /// Gives the session handle back (the connection stays in the run's pool).
    pub(super) async fn close(self) {
        let _ = HostSession::drop(self.ssh, Resource::new_own(self.rep)).await;
    }
}
