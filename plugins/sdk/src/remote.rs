//! SSH plumbing shared by the `ssh`, `minecraft`, `nginx` and `docker` plugins: the common
//! global arguments, the target they describe, and small traits over the host's SSH session so
//! method logic runs in native unit tests against a fake.
//!
//! Plugin crates re-export it at their root (`pub use orch_plugin_sdk::remote;`) so that
//! `crate::remote::…` names it; [`ssh_globals!`] expands to paths through the SDK.

use orch_plugin_sdk::ssh::{Auth, ExecResult, PrivateKey, Session, Target};
use orch_plugin_sdk::{Result, error};

/// The port `sshPort` defaults to.
pub fn default_ssh_port() -> u16 {
    22
}

/// The user `sshUser` defaults to.
pub fn default_ssh_user() -> String {
    "root".to_string()
}

/// Declares a model type's global arguments: the common SSH fields, then the type's own.
///
/// Every SSH model type takes the same connection fields, so they are written once here; the
/// macro also adds `fn ssh(&self) -> SshSettings`. The serde defaults name the SDK by its crate
/// name `orch_plugin_sdk` (serde's `default = "…"` paths are plain strings and cannot use
/// `$crate`), so a plugin must depend on the SDK under that name.
#[doc(hidden)]
#[macro_export]
macro_rules! __ssh_globals {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $(
                $(#[$field_meta:meta])*
                pub $field:ident : $ty:ty
            ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        // No Debug: the struct carries the private key and password.
        #[derive(Clone, serde::Deserialize, orch_plugin_sdk::JsonSchema)]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        pub struct $name {
            /// Address to connect to, usually `${{ model.fleet.resource.vm["name"].attributes.ip }}`;
            /// null while the VM is stopped, and then methods fail before connecting.
            #[serde(default)]
            pub ssh_host: Option<String>,
            /// SSH port (default 22). Write it in the definition anyway: the plugin's grant
            /// `{{ globalArguments.sshHost }}:{{ globalArguments.sshPort }}` is dropped when it is absent.
            #[serde(default = "orch_plugin_sdk::remote::default_ssh_port")]
            #[schemars(range(min = 1))]
            pub ssh_port: u16,
            /// Login user (default `root`).
            #[serde(default = "orch_plugin_sdk::remote::default_ssh_user")]
            pub ssh_user: String,
            /// OpenSSH private key text, usually `${{ vault.get("vault", "key") }}`; used before sshPassword.
            #[serde(default)]
            pub ssh_key: Option<String>,
            /// Password, when there is no key.
            #[serde(default)]
            pub ssh_password: Option<String>,
            /// Record an unknown host key on first contact instead of refusing it (default false).
            #[serde(default)]
            pub trust_on_first_use: bool,
            $(
                $(#[$field_meta])*
                pub $field: $ty,
            )*
        }

        impl $name {
            /// The connection settings of this definition.
            pub fn ssh(&self) -> $crate::remote::SshSettings {
                $crate::remote::SshSettings {
                    host: self.ssh_host.clone(),
                    port: self.ssh_port,
                    user: self.ssh_user.clone(),
                    key: self.ssh_key.clone(),
                    password: self.ssh_password.clone(),
                    trust_on_first_use: self.trust_on_first_use,
                }
            }
        }
    };
}
pub use crate::__ssh_globals as ssh_globals;

/// Where and how to connect, as the definition's globals say.
#[derive(Clone, Default)]
pub struct SshSettings {
    /// `sshHost`; None while the VM is stopped.
    pub host: Option<String>,
    /// `sshPort`.
    pub port: u16,
    /// `sshUser`.
    pub user: String,
    /// `sshKey`.
    pub key: Option<String>,
    /// `sshPassword`.
    pub password: Option<String>,
    /// `trustOnFirstUse`.
    pub trust_on_first_use: bool,
}

fn non_blank(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|v| !v.is_empty())
}

impl SshSettings {
    /// The host, or the conflict every method reports for a stopped VM.
    pub fn host(&self, model: &str) -> Result<&str> {
        non_blank(self.host.as_deref()).ok_or_else(|| {
            error::conflict(format!(
                "model `{model}` has no IP (is the VM running?): sshHost is null"
            ))
        })
    }

    /// The SSH target, checked without connecting.
    pub fn target(&self, model: &str) -> Result<Target> {
        let host = self.host(model)?;
        // A host that looks like an option or holds spaces is a wiring mistake, not an address.
        if host.starts_with('-') || host.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(error::invalid(format!(
                "sshHost {host:?} is not a host name or IP address"
            )));
        }
        if self.port == 0 {
            return Err(error::invalid("sshPort must be between 1 and 65535"));
        }
        let user = self.user.trim();
        if user.is_empty() {
            return Err(error::invalid("sshUser must not be empty"));
        }
        // Keys are pasted from vaults with stray whitespace; the key text itself is kept as is.
        let auth = if self.key.as_deref().is_some_and(|k| !k.trim().is_empty()) {
            Auth::PrivateKey(PrivateKey {
                key: self.key.clone().unwrap_or_default(),
                passphrase: None,
            })
        } else if let Some(password) = self.password.as_deref().filter(|p| !p.is_empty()) {
            Auth::Password(password.to_string())
        } else {
            return Err(error::invalid(format!(
                "model `{model}` has neither sshKey nor sshPassword; set sshKey, e.g. \
                 ${{{{ vault.get(\"vault\", \"ssh-key\") }}}}"
            )));
        };
        Ok(Target {
            host: host.to_string(),
            port: self.port,
            user: user.to_string(),
            auth,
            trust_on_first_use: self.trust_on_first_use,
            connect_timeout_ms: None,
        })
    }

    /// `user@host:port`, for messages (never the credentials).
    pub fn describe(&self) -> String {
        format!(
            "{}@{}:{}",
            self.user.trim(),
            self.host.as_deref().unwrap_or("<no IP>"),
            self.port
        )
    }
}

/// What a remote command did, with its output as (lossy) text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Output {
    /// The exit code; non-zero is a result, not an error.
    pub exit_code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Output {
    /// True when the command exited 0.
    pub fn success(&self) -> bool {
        self.exit_code == 0
    }

    /// A short reason for a failure: stderr, else stdout, trimmed and bounded.
    pub fn reason(&self) -> String {
        let text = if self.stderr.trim().is_empty() {
            self.stdout.trim()
        } else {
            self.stderr.trim()
        };
        bounded(text, 2000)
    }
}

impl From<ExecResult> for Output {
    fn from(r: ExecResult) -> Self {
        Output {
            exit_code: r.exit_code,
            stdout: String::from_utf8_lossy(&r.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&r.stderr).into_owned(),
        }
    }
}

/// At most `max` bytes of `text`, cut on a character boundary, marked when cut.
pub fn bounded(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// A remote shell: the part of an SSH session that method logic uses.
pub trait Remote {
    /// Runs a command with optional stdin and timeout; a non-zero exit is a result.
    fn exec_with(
        &self,
        command: &str,
        stdin: Option<&[u8]>,
        timeout_ms: Option<u32>,
    ) -> Result<ExecResult>;

    /// Writes a file with the given permission bits.
    fn upload(&self, path: &str, contents: &[u8], mode: u32) -> Result<()>;

    /// Runs a command and returns its output as text.
    fn run(&self, command: &str) -> Result<Output> {
        self.exec_with(command, None, None).map(Output::from)
    }

    /// A file's content, or `None` when it does not exist (`[ -e f ] || exit 3; cat f`).
    fn read_file(&self, path: &str) -> Result<Option<String>> {
        const MISSING: i32 = 3;
        let quoted = crate::ssh::shell_quote(path);
        let out = self.run(&format!("[ -e {quoted} ] || exit {MISSING}; cat {quoted}"))?;
        match out.exit_code {
            0 => Ok(Some(out.stdout)),
            MISSING => Ok(None),
            code => Err(error::failed(format!(
                "reading {path} failed (exit {code}): {}",
                out.reason()
            ))),
        }
    }

    /// Runs a command and returns its stdout; a non-zero exit fails with `what` and stderr.
    fn run_ok(&self, command: &str, what: &str) -> Result<String> {
        let out = self.run(command)?;
        if out.success() {
            Ok(out.stdout)
        } else {
            Err(error::failed(format!(
                "{what} failed (exit {}): {}",
                out.exit_code,
                out.reason()
            )))
        }
    }
}

impl<R: Remote + ?Sized> Remote for &R {
    fn exec_with(
        &self,
        command: &str,
        stdin: Option<&[u8]>,
        timeout_ms: Option<u32>,
    ) -> Result<ExecResult> {
        (**self).exec_with(command, stdin, timeout_ms)
    }

    fn upload(&self, path: &str, contents: &[u8], mode: u32) -> Result<()> {
        (**self).upload(path, contents, mode)
    }
}

impl Remote for Session {
    fn exec_with(
        &self,
        command: &str,
        stdin: Option<&[u8]>,
        timeout_ms: Option<u32>,
    ) -> Result<ExecResult> {
        Session::exec_with(self, command, stdin, timeout_ms)
    }

    fn upload(&self, path: &str, contents: &[u8], mode: u32) -> Result<()> {
        Session::upload(self, path, contents, mode)
    }
}

/// Opens sessions: the host's SSH import in the plugin, a fake in tests.
pub trait Connector {
    /// The session type this connector opens.
    type Session<'a>: Remote
    where
        Self: 'a;

    /// Connects to `target`.
    fn open(&self, target: &Target) -> Result<Self::Session<'_>>;
}

/// The host's SSH import (grant and host-key checks happen in the host).
pub struct HostSsh;

impl Connector for HostSsh {
    type Session<'a> = Session;

    fn open(&self, target: &Target) -> Result<Session> {
        Session::open(target)
    }
}

/// Checks the settings and connects; a stopped VM fails here without any connection attempt.
pub fn connect<'c, C: Connector>(
    connector: &'c C,
    settings: &SshSettings,
    model: &str,
) -> Result<C::Session<'c>> {
    let target = settings.target(model)?;
    connector.open(&target)
}

/// A fake remote for unit tests: scripted replies, recorded commands and uploads.
#[cfg(not(target_arch = "wasm32"))]
pub mod fake {
    use super::{Connector, Remote};
    use orch_plugin_sdk::ssh::{ExecResult, Target};
    use orch_plugin_sdk::{Error, Result};
    use std::cell::{Cell, RefCell};

    /// One thing the code under test did to the remote.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub enum Op {
        /// A command, with stdin as text.
        Exec(String, Option<String>),
        /// An upload: path, contents as text, mode.
        Upload(String, String, u32),
    }

    type Reply = Box<dyn Fn(&str) -> Result<ExecResult>>;
    type UploadCheck = Box<dyn Fn(&str) -> Result<()>>;

    /// A remote whose command replies come from a closure.
    pub struct FakeRemote {
        reply: Reply,
        upload_check: UploadCheck,
        ops: RefCell<Vec<Op>>,
    }

    /// A successful reply with `stdout`.
    pub fn ok(stdout: &str) -> Result<ExecResult> {
        exit(0, stdout, "")
    }

    /// A reply with an exit code, stdout and stderr.
    pub fn exit(code: i32, stdout: &str, stderr: &str) -> Result<ExecResult> {
        Ok(ExecResult {
            exit_code: code,
            stdout: stdout.as_bytes().to_vec(),
            stderr: stderr.as_bytes().to_vec(),
        })
    }

    impl FakeRemote {
        /// A remote answering every command with `reply(command)`; uploads succeed.
        pub fn new(reply: impl Fn(&str) -> Result<ExecResult> + 'static) -> Self {
            FakeRemote {
                reply: Box::new(reply),
                upload_check: Box::new(|_| Ok(())),
                ops: RefCell::new(Vec::new()),
            }
        }

        /// Makes uploads answer with `check(path)`.
        pub fn with_uploads(mut self, check: impl Fn(&str) -> Result<()> + 'static) -> Self {
            self.upload_check = Box::new(check);
            self
        }

        /// Everything done so far, in order.
        pub fn ops(&self) -> Vec<Op> {
            self.ops.borrow().clone()
        }

        /// The commands run so far.
        pub fn commands(&self) -> Vec<String> {
            self.ops()
                .into_iter()
                .filter_map(|op| match op {
                    Op::Exec(c, _) => Some(c),
                    Op::Upload(..) => None,
                })
                .collect()
        }

        /// The uploads so far: (path, contents, mode).
        pub fn uploads(&self) -> Vec<(String, String, u32)> {
            self.ops()
                .into_iter()
                .filter_map(|op| match op {
                    Op::Upload(p, c, m) => Some((p, c, m)),
                    Op::Exec(..) => None,
                })
                .collect()
        }
    }

    impl Remote for FakeRemote {
        fn exec_with(
            &self,
            command: &str,
            stdin: Option<&[u8]>,
            _timeout_ms: Option<u32>,
        ) -> Result<ExecResult> {
            self.ops.borrow_mut().push(Op::Exec(
                command.to_string(),
                stdin.map(|s| String::from_utf8_lossy(s).into_owned()),
            ));
            (self.reply)(command)
        }

        fn upload(&self, path: &str, contents: &[u8], mode: u32) -> Result<()> {
            self.ops.borrow_mut().push(Op::Upload(
                path.to_string(),
                String::from_utf8_lossy(contents).into_owned(),
                mode,
            ));
            (self.upload_check)(path)
        }
    }

    type OpenCheck = Box<dyn Fn(u32) -> Option<Error>>;

    /// A connector handing out one fake remote and counting connection attempts.
    pub struct FakeConnector {
        /// The remote every session talks to.
        pub remote: FakeRemote,
        opens: Cell<u32>,
        targets: RefCell<Vec<String>>,
        open_check: OpenCheck,
    }

    impl FakeConnector {
        /// A connector whose opens all succeed.
        pub fn new(remote: FakeRemote) -> Self {
            FakeConnector {
                remote,
                opens: Cell::new(0),
                targets: RefCell::new(Vec::new()),
                open_check: Box::new(|_| None),
            }
        }

        /// Makes attempt `n` (1-based) fail with `check(n)` when it returns an error.
        pub fn failing(mut self, check: impl Fn(u32) -> Option<Error> + 'static) -> Self {
            self.open_check = Box::new(check);
            self
        }

        /// How many connections were attempted.
        pub fn opens(&self) -> u32 {
            self.opens.get()
        }

        /// `user@host:port` of every attempt.
        pub fn targets(&self) -> Vec<String> {
            self.targets.borrow().clone()
        }
    }

    impl Connector for FakeConnector {
        type Session<'a> = &'a FakeRemote;

        fn open(&self, target: &Target) -> Result<&FakeRemote> {
            let n = self.opens.get() + 1;
            self.opens.set(n);
            self.targets
                .borrow_mut()
                .push(format!("{}@{}:{}", target.user, target.host, target.port));
            match (self.open_check)(n) {
                Some(e) => Err(e),
                None => Ok(&self.remote),
            }
        }
    }

    /// Settings for a reachable test host with a key.
    pub fn settings() -> super::SshSettings {
        super::SshSettings {
            host: Some("10.0.0.96".to_string()),
            port: 22,
            user: "root".to_string(),
            key: Some("-----BEGIN OPENSSH PRIVATE KEY-----\n…".to_string()),
            password: None,
            trust_on_first_use: false,
        }
    }
}
