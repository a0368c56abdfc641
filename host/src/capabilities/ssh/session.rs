//! SSH connections for one run: connect (with host-key verification against the repository's
//! known-hosts store), authenticate, run commands over exec channels, and keep one connection
//! per (target, credentials) for the rest of the run.

use super::known_hosts::{HostKeyStatus, KnownHosts, KnownKey, fingerprint};
use crate::capabilities::egress::{self, AddressPolicy, ResolveError, Resolver};
use crate::capabilities::ssh::grant::SshTarget;
use russh::client::{self, Handle};
use russh::keys::{Algorithm, PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};
use russh::{ChannelMsg, Sig};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::time::Instant;

/// Channels open at once on one connection; OpenSSH's `MaxSessions` defaults to 10.
const MAX_CHANNELS_PER_CONNECTION: usize = 8;

/// Longest part of a command shown in messages.
const SHOWN_COMMAND_CHARS: usize = 120;

/// A failure of the SSH capability, by WIT error variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SshError {
    /// Bad input from the plugin.
    InvalidArguments(String),
    /// Policy: grant, host key, or the server refused the credentials.
    Denied(String),
    /// The remote file does not exist.
    NotFound(String),
    /// May pass if retried: network, timeouts.
    Transient(String),
    /// Anything else.
    Failed(String),
}

impl SshError {
    /// The message.
    pub fn message(&self) -> &str {
        match self {
            SshError::InvalidArguments(m)
            | SshError::Denied(m)
            | SshError::NotFound(m)
            | SshError::Transient(m)
            | SshError::Failed(m) => m,
        }
    }
}

impl std::fmt::Display for SshError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

/// How to log in. `Debug` never shows the secret.
#[derive(Clone)]
pub enum SshAuth {
    /// An OpenSSH or PEM private key, possibly encrypted.
    PrivateKey {
        /// The key file's text.
        key: String,
        /// Its passphrase.
        passphrase: Option<String>,
    },
    /// A password.
    Password(String),
}

impl std::fmt::Debug for SshAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SshAuth::PrivateKey { .. } => f.write_str("PrivateKey(***)"),
            SshAuth::Password(_) => f.write_str("Password(***)"),
        }
    }
}

impl SshAuth {
    /// Every secret string in this credential, for the run's redaction set: the whole key,
    /// each line of its body (so a re-wrapped or partial copy is caught too), the passphrase
    /// and the password.
    pub fn secrets(&self) -> Vec<String> {
        match self {
            SshAuth::Password(p) => vec![p.clone()],
            SshAuth::PrivateKey { key, passphrase } => {
                let mut out = vec![key.trim().to_string()];
                out.extend(
                    key.lines()
                        .map(str::trim)
                        .filter(|l| l.len() >= 16 && !l.starts_with("-----"))
                        .map(str::to_string),
                );
                out.extend(passphrase.clone());
                out
            }
        }
    }

    fn digest(&self, salt: &[u8]) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(salt);
        match self {
            SshAuth::PrivateKey { key, passphrase } => {
                h.update(b"key\0");
                h.update(key.trim().as_bytes());
                h.update(b"\0");
                h.update(passphrase.as_deref().unwrap_or("").as_bytes());
            }
            SshAuth::Password(p) => {
                h.update(b"password\0");
                h.update(p.as_bytes());
            }
        }
        h.finalize().into()
    }
}

/// Everything needed to open (or reuse) a session.
#[derive(Debug, Clone)]
pub struct OpenRequest {
    /// Where, as whom.
    pub target: SshTarget,
    /// With which credentials.
    pub auth: SshAuth,
    /// Record an unknown host key instead of refusing it.
    pub trust_on_first_use: bool,
    /// Bound on TCP connect, handshake and authentication together.
    pub connect_timeout: Duration,
    /// Which loopback, link-local or metadata addresses the target may resolve to.
    pub addresses: AddressPolicy,
}

/// What a remote command did.
#[derive(Debug, Clone, Default)]
pub struct ExecOutput {
    /// Exit status (128 + signal number when killed by a signal).
    pub exit_code: i32,
    /// Standard output.
    pub stdout: Vec<u8>,
    /// Standard error.
    pub stderr: Vec<u8>,
}

/// What happened to the server's host key during the handshake.
#[derive(Debug, Clone)]
enum HostKeyVerdict {
    Known,
    Recorded(PublicKey),
    Unknown(PublicKey),
    Changed {
        presented: PublicKey,
        recorded: Vec<KnownKey>,
    },
    Revoked {
        presented: PublicKey,
        line: usize,
    },
    Certificate,
    Captured(PublicKey),
    StoreError(String),
}

/// What to do with the server's host key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HostKeyPolicy {
    /// Only keys in the store.
    Strict,
    /// Keys in the store; record the key of a host with none.
    TrustOnFirstUse,
    /// Remember the key and stop (`orch ssh trust`).
    Capture,
}

/// The russh client handler: verifies the host key and nothing else.
struct HostKeyCheck {
    host: String,
    port: u16,
    known_hosts: KnownHosts,
    policy: HostKeyPolicy,
    verdict: Arc<Mutex<Option<HostKeyVerdict>>>,
}

impl HostKeyCheck {
    fn decide(&self, presented: &PublicKeyOrCertificate) -> HostKeyVerdict {
        let key = match presented {
            PublicKeyOrCertificate::PublicKey { key, .. } => key.clone(),
            PublicKeyOrCertificate::Certificate(_) => return HostKeyVerdict::Certificate,
        };
        if self.policy == HostKeyPolicy::Capture {
            return HostKeyVerdict::Captured(key);
        }
        match self.known_hosts.check(&self.host, self.port, &key) {
            Err(e) => HostKeyVerdict::StoreError(e.to_string()),
            Ok(HostKeyStatus::Known) => HostKeyVerdict::Known,
            Ok(HostKeyStatus::Revoked { line }) => HostKeyVerdict::Revoked {
                presented: key,
                line,
            },
            Ok(HostKeyStatus::Changed { recorded }) => HostKeyVerdict::Changed {
                presented: key,
                recorded,
            },
            Ok(HostKeyStatus::Unknown) if self.policy == HostKeyPolicy::TrustOnFirstUse => {
                match self.known_hosts.record(&self.host, self.port, &key) {
                    Ok(()) => HostKeyVerdict::Recorded(key),
                    Err(e) => HostKeyVerdict::StoreError(e.to_string()),
                }
            }
            Ok(HostKeyStatus::Unknown) => HostKeyVerdict::Unknown(key),
        }
    }
}

impl client::Handler for HostKeyCheck {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        server_public_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let verdict = self.decide(server_public_key);
        let accept = matches!(verdict, HostKeyVerdict::Known | HostKeyVerdict::Recorded(_));
        *self.verdict.lock().unwrap_or_else(PoisonError::into_inner) = Some(verdict);
        Ok(accept)
    }
}

/// The russh configuration for one host: OpenSSH's habit of asking first for the host-key
/// algorithms already recorded for it, so a host with several keys presents the known one.
fn client_config(recorded: &[KnownKey]) -> Arc<client::Config> {
    let defaults = russh::Preferred::default();
    let mut keys: Vec<Algorithm> = Vec::new();
    for r in recorded.iter().filter(|r| !r.revoked) {
        let family: Vec<Algorithm> = if r.key.algorithm().is_rsa() {
            defaults
                .key
                .iter()
                .filter(|a| matches!(a, Algorithm::Rsa { .. }))
                .cloned()
                .collect()
        } else {
            vec![r.key.algorithm()]
        };
        for a in family {
            if !keys.contains(&a) {
                keys.push(a);
            }
        }
    }
    for a in defaults.key.iter() {
        if !keys.contains(a) {
            keys.push(a.clone());
        }
    }
    Arc::new(client::Config {
        nodelay: true,
        preferred: russh::Preferred {
            key: keys.into(),
            ..defaults
        },
        ..Default::default()
    })
}

/// Why the handshake stopped, in words the operator can act on.
fn host_key_refusal(target: &str, verdict: &HostKeyVerdict, store: &KnownHosts) -> SshError {
    let file = store.path().display();
    match verdict {
        HostKeyVerdict::Unknown(key) => SshError::Denied(format!(
            "ssh {target}: the host key is not known ({}); check it, then run `orch ssh trust {target}` to record it in {file} (or set trust-on-first-use on the target)",
            fingerprint(key)
        )),
        HostKeyVerdict::Changed {
            presented,
            recorded,
        } => {
            let old: Vec<String> = recorded
                .iter()
                .map(|r| format!("{} ({file}:{})", fingerprint(&r.key), r.line))
                .collect();
            SshError::Denied(format!(
                "ssh {target}: THE HOST KEY HAS CHANGED. The server presented {} but {} records {}. Someone may be intercepting the connection, or the host was reinstalled; verify the new key out of band, then run `orch ssh trust {target} --replace`",
                fingerprint(presented),
                file,
                old.join(", ")
            ))
        }
        HostKeyVerdict::Revoked { presented, line } => SshError::Denied(format!(
            "ssh {target}: the host key {} is marked @revoked in {file}:{line}",
            fingerprint(presented)
        )),
        HostKeyVerdict::Certificate => SshError::Denied(format!(
            "ssh {target}: the server presented a host certificate; orch accepts only plain host keys recorded in {file}"
        )),
        HostKeyVerdict::StoreError(e) => {
            SshError::Failed(format!("ssh {target}: cannot check the host key: {e}"))
        }
        HostKeyVerdict::Known | HostKeyVerdict::Recorded(_) | HostKeyVerdict::Captured(_) => {
            SshError::Failed(format!("ssh {target}: the handshake failed"))
        }
    }
}

/// The handshake's outcome: the connection (or russh's error) and what the host key check saw.
type Handshake = (
    Result<Handle<HostKeyCheck>, russh::Error>,
    Option<HostKeyVerdict>,
);

/// Where to connect and how: the resolver, the address check and the deadline.
struct Route<'a> {
    resolver: &'a dyn Resolver,
    addresses: &'a AddressPolicy,
    deadline: Instant,
    limit: Duration,
}

/// TCP connect and SSH handshake, before the route's deadline. The outer error is a network
/// failure, a refused address or the deadline; the verdict explains a refused host key.
async fn handshake(
    host: &str,
    port: u16,
    known_hosts: &KnownHosts,
    policy: HostKeyPolicy,
    route: &Route<'_>,
) -> Result<Handshake, SshError> {
    let (deadline, limit) = (route.deadline, route.limit);
    let shown = crate::capabilities::ssh::grant::host_port(host, port);
    let recorded = known_hosts.keys_for(host, port).unwrap_or_default();
    let verdict = Arc::new(Mutex::new(None));
    let handler = HostKeyCheck {
        host: host.to_string(),
        port,
        known_hosts: known_hosts.clone(),
        policy,
        verdict: verdict.clone(),
    };
    let timed_out = || {
        SshError::Transient(format!(
            "ssh {shown}: no SSH session within {} ms (connect-timeout-ms)",
            limit.as_millis()
        ))
    };
    // Resolved and checked here, then connected to exactly the checked addresses.
    let addrs = tokio::time::timeout_at(
        deadline,
        egress::resolve_checked(route.resolver, host, port, route.addresses),
    )
    .await
    .map_err(|_| timed_out())?
    .map_err(|e| match e {
        ResolveError::Denied(why) => SshError::Denied(format!("ssh {shown}: {why}")),
        ResolveError::Lookup(why) => SshError::Transient(format!("ssh {shown}: {why}")),
    })?;
    let stream = tokio::time::timeout_at(deadline, tokio::net::TcpStream::connect(&addrs[..]))
        .await
        .map_err(|_| timed_out())?
        .map_err(|e| SshError::Transient(format!("ssh {shown}: cannot connect: {e}")))?;
    let _ = stream.set_nodelay(true);
    let connected = tokio::time::timeout_at(
        deadline,
        client::connect_stream(client_config(&recorded), stream, handler),
    )
    .await
    .map_err(|_| timed_out())?;
    let verdict = verdict
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    Ok((connected, verdict))
}

/// Connects to `host:port` and returns the host key it presents, without checking or
/// recording it and without logging in (for `orch ssh trust`).
pub async fn probe_host_key(
    host: &str,
    port: u16,
    known_hosts: &KnownHosts,
    limit: Duration,
) -> Result<PublicKey, SshError> {
    let shown = crate::capabilities::ssh::grant::host_port(host, port);
    // The operator names this host on the command line; no plugin is involved.
    let route = Route {
        resolver: &egress::SystemResolver,
        addresses: &AddressPolicy::unrestricted(),
        deadline: Instant::now() + limit,
        limit,
    };
    match handshake(host, port, known_hosts, HostKeyPolicy::Capture, &route).await? {
        (_, Some(HostKeyVerdict::Captured(key))) => Ok(key),
        (_, Some(HostKeyVerdict::Certificate)) => Err(SshError::Denied(format!(
            "ssh {shown}: the server presented a host certificate; orch records only plain host keys"
        ))),
        (Err(e), _) => Err(SshError::Transient(format!(
            "ssh {shown}: the SSH handshake failed: {e}"
        ))),
        (Ok(_), _) => Err(SshError::Failed(format!(
            "ssh {shown}: the server's host key was never presented"
        ))),
    }
}

/// Why a private key cannot be used. Never shows the key or the passphrase, only what kind of
/// problem it is.
fn key_problem(target: &SshTarget, e: &russh::keys::Error, has_passphrase: bool) -> SshError {
    use russh::keys::Error as K;
    let why = match e {
        K::KeyIsEncrypted if !has_passphrase => {
            "the private key is encrypted and no passphrase was given".to_string()
        }
        K::KeyIsEncrypted => "the passphrase does not decrypt the private key".to_string(),
        K::UnsupportedKeyType { .. } => "the private key's type is not supported".to_string(),
        _ if has_passphrase => {
            "the private key cannot be read (wrong passphrase, or not an OpenSSH/PEM private key)"
                .to_string()
        }
        _ => "the private key cannot be read (not an OpenSSH or PEM private key?)".to_string(),
    };
    SshError::InvalidArguments(format!("ssh {target}: {why}"))
}

/// One authenticated connection.
pub struct SshConnection {
    handle: Handle<HostKeyCheck>,
    target: SshTarget,
    channels: tokio::sync::Semaphore,
    broken: AtomicBool,
}

impl SshConnection {
    async fn open(
        request: &OpenRequest,
        known_hosts: &KnownHosts,
        resolver: &dyn Resolver,
    ) -> Result<Self, SshError> {
        let target = &request.target;
        let shown = target.host_port();
        let deadline = Instant::now() + request.connect_timeout;
        let policy = if request.trust_on_first_use {
            HostKeyPolicy::TrustOnFirstUse
        } else {
            HostKeyPolicy::Strict
        };
        let route = Route {
            resolver,
            addresses: &request.addresses,
            deadline,
            limit: request.connect_timeout,
        };
        let (connected, verdict) =
            handshake(&target.host, target.port, known_hosts, policy, &route).await?;
        let mut handle = match (connected, verdict) {
            (Ok(handle), Some(HostKeyVerdict::Known)) => handle,
            (Ok(handle), Some(HostKeyVerdict::Recorded(key))) => {
                tracing::info!(
                    "ssh {shown}: trusted on first use, recorded {} in {}",
                    fingerprint(&key),
                    known_hosts.path().display()
                );
                handle
            }
            (_, Some(v)) => return Err(host_key_refusal(&shown, &v, known_hosts)),
            (Err(e), None) => {
                return Err(SshError::Transient(format!(
                    "ssh {shown}: the SSH handshake failed: {e}"
                )));
            }
            (Ok(_), None) => {
                return Err(SshError::Failed(format!(
                    "ssh {shown}: the server's host key was never checked"
                )));
            }
        };
        let timed_out = || {
            SshError::Transient(format!(
                "ssh {target}: not logged in within {} ms (connect-timeout-ms)",
                request.connect_timeout.as_millis()
            ))
        };
        let net = |e: russh::Error| {
            SshError::Transient(format!("ssh {target}: authentication was interrupted: {e}"))
        };
        match &request.auth {
            SshAuth::PrivateKey { key, passphrase } => {
                let key = russh::keys::decode_secret_key(key, passphrase.as_deref())
                    .map_err(|e| key_problem(target, &e, passphrase.is_some()))?;
                let public = fingerprint(key.public_key());
                let hash = if key.algorithm().is_rsa() {
                    tokio::time::timeout_at(deadline, handle.best_supported_rsa_hash())
                        .await
                        .map_err(|_| timed_out())?
                        .map_err(net)?
                        .flatten()
                } else {
                    None
                };
                let key = PrivateKeyWithHashAlg::new(Arc::new(key), hash);
                let result = tokio::time::timeout_at(
                    deadline,
                    handle.authenticate_publickey(target.user.clone(), key),
                )
                .await
                .map_err(|_| timed_out())?
                .map_err(net)?;
                if !result.success() {
                    return Err(SshError::Denied(format!(
                        "ssh {target}: the server refused the private key ({public}) for user `{}`; add its public key to that user's authorized_keys, or check the user name",
                        target.user
                    )));
                }
            }
            SshAuth::Password(password) => {
                let result = tokio::time::timeout_at(
                    deadline,
                    handle.authenticate_password(target.user.clone(), password.clone()),
                )
                .await
                .map_err(|_| timed_out())?
                .map_err(net)?;
                if !result.success() {
                    return Err(SshError::Denied(format!(
                        "ssh {target}: the server refused the password for user `{}`",
                        target.user
                    )));
                }
            }
        }
        Ok(SshConnection {
            handle,
            target: target.clone(),
            channels: tokio::sync::Semaphore::new(MAX_CHANNELS_PER_CONNECTION),
            broken: AtomicBool::new(false),
        })
    }

    /// Where this connection goes.
    pub fn target(&self) -> &SshTarget {
        &self.target
    }

    /// False once the connection failed or the server closed it; the pool then reconnects.
    pub fn is_usable(&self) -> bool {
        !self.broken.load(Ordering::Relaxed) && !self.handle.is_closed()
    }

    /// Runs `command` with optional stdin. The whole exchange (waiting for a free channel
    /// included) is bounded by `limit`; output by `max_output` bytes. On timeout the command's
    /// channel is signalled and closed and the connection stays usable.
    pub async fn exec(
        &self,
        command: &str,
        stdin: Option<&[u8]>,
        limit: Duration,
        max_output: u64,
    ) -> Result<ExecOutput, SshError> {
        let target = &self.target;
        let shown = shown_command(command);
        let deadline = Instant::now() + limit;
        let timed_out = |what: &str| {
            SshError::Transient(format!(
                "ssh {target}: `{shown}` did not finish within {} ms (timeout-ms){what}",
                limit.as_millis()
            ))
        };
        let _permit = tokio::time::timeout_at(deadline, self.channels.acquire())
            .await
            .map_err(|_| timed_out("; every channel of the session was busy"))?
            .map_err(|_| SshError::Failed(format!("ssh {target}: the session was closed")))?;
        let channel = tokio::time::timeout_at(deadline, self.handle.channel_open_session())
            .await
            .map_err(|_| timed_out(""))?
            .map_err(|e| {
                self.broken.store(true, Ordering::Relaxed);
                SshError::Transient(format!(
                    "ssh {target}: cannot open a channel for `{shown}`: {e}; the session was dropped and the next open reconnects"
                ))
            })?;
        let (mut reader, writer) = channel.split();
        let run = async {
            writer.exec(true, command.as_bytes()).await.map_err(|e| {
                SshError::Transient(format!("ssh {target}: `{shown}`: connection lost: {e}"))
            })?;
            // Stdin is sent while output is read, so a command that echoes a large input
            // cannot deadlock on full windows. A send error (the command exited without
            // reading) is left for the reader to explain.
            let send = async {
                if let Some(input) = stdin {
                    writer.data(input).await?;
                }
                writer.eof().await
            };
            let recv = async {
                let mut out = ExecOutput::default();
                let mut status = None;
                let mut closed = false;
                while let Some(msg) = reader.wait().await {
                    match msg {
                        ChannelMsg::Data { data } => out.stdout.extend_from_slice(&data),
                        ChannelMsg::ExtendedData { data, ext: 1 } => {
                            out.stderr.extend_from_slice(&data)
                        }
                        ChannelMsg::ExitStatus { exit_status } => {
                            status = Some(i32::try_from(exit_status).unwrap_or(i32::MAX));
                        }
                        ChannelMsg::ExitSignal { signal_name, .. } => {
                            status = Some(128 + signal_number(&signal_name));
                        }
                        ChannelMsg::Failure => {
                            return Err(SshError::Failed(format!(
                                "ssh {target}: the server refused to run `{shown}`"
                            )));
                        }
                        ChannelMsg::Close => {
                            closed = true;
                            break;
                        }
                        _ => {}
                    }
                    if (out.stdout.len() + out.stderr.len()) as u64 > max_output {
                        let _ = writer.close().await;
                        return Err(SshError::Failed(format!(
                            "ssh {target}: the output of `{shown}` is larger than the plugin's limit of {max_output} bytes (limits.max-response-bytes)"
                        )));
                    }
                }
                match status {
                    Some(code) => {
                        out.exit_code = code;
                        Ok(out)
                    }
                    None if closed => Err(SshError::Failed(format!(
                        "ssh {target}: `{shown}` ended without an exit status"
                    ))),
                    None => {
                        self.broken.store(true, Ordering::Relaxed);
                        Err(SshError::Transient(format!(
                            "ssh {target}: the connection ended while `{shown}` ran"
                        )))
                    }
                }
            };
            tokio::pin!(send, recv);
            let mut sending = true;
            loop {
                tokio::select! {
                    sent = &mut send, if sending => {
                        sending = false;
                        if let Err(e) = sent {
                            tracing::debug!("ssh {target}: sending stdin to `{shown}`: {e}");
                        }
                    }
                    out = &mut recv => return out,
                }
            }
        };
        let outcome = tokio::time::timeout_at(deadline, run).await;
        match outcome {
            Ok(result) => result,
            Err(_) => {
                // Best effort, bounded: the command may ignore the signal, but its channel is
                // closed so the session is free for the next command.
                let _ = tokio::time::timeout(Duration::from_millis(500), async {
                    let _ = writer.signal(Sig::KILL).await;
                    let _ = writer.close().await;
                })
                .await;
                Err(timed_out("; it was sent SIGKILL and its channel closed"))
            }
        }
    }

    async fn disconnect(&self) {
        let _ = tokio::time::timeout(
            Duration::from_millis(500),
            self.handle
                .disconnect(russh::Disconnect::ByApplication, "", "en"),
        )
        .await;
    }
}

fn signal_number(sig: &Sig) -> i32 {
    match sig {
        Sig::HUP => 1,
        Sig::INT => 2,
        Sig::QUIT => 3,
        Sig::ILL => 4,
        Sig::ABRT => 6,
        Sig::FPE => 8,
        Sig::KILL => 9,
        Sig::USR1 => 10,
        Sig::SEGV => 11,
        Sig::PIPE => 13,
        Sig::ALRM => 14,
        Sig::TERM => 15,
        Sig::Custom(_) => 127,
    }
}

/// The command as shown in messages: one line, cut at a readable length.
pub fn shown_command(command: &str) -> String {
    let one_line = command.replace('\n', "⏎");
    match one_line.char_indices().nth(SHOWN_COMMAND_CHARS) {
        Some((cut, _)) => format!("{}…", &one_line[..cut]),
        None => one_line,
    }
}

/// Identifies a pooled connection: the target, a salted digest of the credentials, so a
/// session opened with one key is never handed to a caller holding different ones, and the
/// address policy, so a session reached under one grant's named addresses is never handed to
/// a call whose grant does not name them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PoolKey {
    target: SshTarget,
    credentials: [u8; 32],
    addresses: AddressPolicy,
}

type Slot = Arc<tokio::sync::Mutex<Option<Arc<SshConnection>>>>;

/// The SSH connections of one run, shared by its steps.
#[derive(Clone)]
pub struct SshSessionPool {
    inner: Arc<PoolInner>,
}

struct PoolInner {
    known_hosts: KnownHosts,
    resolver: Arc<dyn Resolver>,
    salt: [u8; 32],
    slots: Mutex<HashMap<PoolKey, Slot>>,
    connects: AtomicU64,
}

impl SshSessionPool {
    /// An empty pool verifying host keys against `known_hosts`.
    pub fn new(known_hosts: KnownHosts) -> Self {
        Self::with_resolver(known_hosts, egress::system_resolver())
    }

    /// An empty pool resolving host names with `resolver` (tests feed their own).
    pub fn with_resolver(known_hosts: KnownHosts, resolver: Arc<dyn Resolver>) -> Self {
        SshSessionPool {
            inner: Arc::new(PoolInner {
                known_hosts,
                resolver,
                salt: rand::random(),
                slots: Mutex::new(HashMap::new()),
                connects: AtomicU64::new(0),
            }),
        }
    }

    /// How many connections this pool has made (for tests and benchmarks).
    pub fn connections_made(&self) -> u64 {
        self.inner.connects.load(Ordering::Relaxed)
    }

    /// The run's connection for this target and these credentials, connecting if there is
    /// none (or the last one broke). Concurrent opens of one target share one connection.
    pub async fn open(&self, request: &OpenRequest) -> Result<Arc<SshConnection>, SshError> {
        let key = PoolKey {
            target: request.target.clone(),
            credentials: request.auth.digest(&self.inner.salt),
            addresses: request.addresses.clone(),
        };
        let slot = self
            .inner
            .slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key)
            .or_default()
            .clone();
        let mut slot = slot.lock().await;
        if let Some(conn) = slot.as_ref()
            && conn.is_usable()
        {
            return Ok(conn.clone());
        }
        *slot = None;
        let began = Instant::now();
        let conn = Arc::new(
            SshConnection::open(
                request,
                &self.inner.known_hosts,
                self.inner.resolver.as_ref(),
            )
            .await?,
        );
        self.inner.connects.fetch_add(1, Ordering::Relaxed);
        // The time to TCP connect, handshake and log in: what a run spends before its first
        // command on a host (`ORCH_LOG=orch=debug` shows it).
        tracing::debug!(
            "ssh {}: connected in {:.1} ms",
            request.target,
            began.elapsed().as_secs_f64() * 1000.0
        );
        *slot = Some(conn.clone());
        Ok(conn)
    }

    /// Disconnects every connection (at the end of the run).
    pub async fn close(&self) {
        let slots: Vec<Slot> = self
            .inner
            .slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain()
            .map(|(_, s)| s)
            .collect();
        for slot in slots {
            if let Some(conn) = slot.lock().await.take() {
                conn.disconnect().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_show_in_debug_output() {
        let auth = SshAuth::PrivateKey {
            key: "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n".into(),
            passphrase: Some("open sesame".into()),
        };
        let shown = format!("{auth:?}");
        assert!(
            !shown.contains("b3Blbn") && !shown.contains("sesame"),
            "{shown}"
        );
        let secrets = auth.secrets();
        assert!(secrets.iter().any(|s| s == "b3BlbnNzaC1rZXktdjEAAAAA"));
        assert!(secrets.iter().any(|s| s == "open sesame"));
    }

    #[test]
    fn pool_keys_differ_by_credentials() {
        let salt = [1u8; 32];
        let a = SshAuth::Password("one".into()).digest(&salt);
        let b = SshAuth::Password("two".into()).digest(&salt);
        assert_ne!(a, b);
        assert_ne!(a, SshAuth::Password("one".into()).digest(&[2u8; 32]));
    }

    #[tokio::test]
    async fn a_target_name_resolving_to_loopback_is_refused_unless_its_address_is_granted() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let dir = tempfile::tempdir().unwrap();
        let known_hosts = KnownHosts::in_dir(dir.path());
        let resolver = egress::StaticResolver::one("box.test", &["127.0.0.1"]);
        let request = |addresses| OpenRequest {
            target: SshTarget::new("box.test", port, "root").unwrap(),
            auth: SshAuth::Password("pw-123456".into()),
            trust_on_first_use: false,
            connect_timeout: Duration::from_secs(5),
            addresses,
        };
        let refused = SshConnection::open(
            &request(AddressPolicy::allowing([])),
            &known_hosts,
            resolver.as_ref(),
        )
        .await;
        match refused {
            Err(SshError::Denied(m)) => assert!(
                m.contains("`box.test` resolves to 127.0.0.1") && m.contains("loopback"),
                "{m}"
            ),
            Err(other) => panic!("want denied, got {other:?}"),
            Ok(_) => panic!("want denied, got a connection"),
        }
        // Nothing connected: the listener has no connection waiting.
        let pending = listener.accept();
        assert!(
            matches!(&pending, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
            "a refused address was connected to: {pending:?}"
        );
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();

        // With 127.0.0.1 granted literally, the TCP connection is made (the listener is no SSH
        // server, so the handshake then fails, which is not this test's concern).
        let allowed_request = request(AddressPolicy::allowing(["127.0.0.1".parse().unwrap()]));
        let allowed = SshConnection::open(&allowed_request, &known_hosts, resolver.as_ref());
        let (_, accepted) = tokio::join!(
            async {
                // Dropped as soon as the connection is accepted below.
                tokio::time::timeout(Duration::from_secs(5), allowed).await
            },
            async {
                let (stream, _) = listener.accept().await.unwrap();
                drop(stream);
            }
        );
        let () = accepted;
    }

    #[test]
    fn long_commands_are_cut_in_messages() {
        let shown = shown_command(&format!("echo {}\nrm -rf /tmp/x", "a".repeat(300)));
        assert!(shown.ends_with('…') && !shown.contains('\n'), "{shown}");
    }
}
