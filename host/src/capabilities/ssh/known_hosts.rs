//! The repository's known-hosts store, `.orch/known_hosts`, in OpenSSH's format so that lines
//! can be copied to and from `~/.ssh/known_hosts`.
//!
//! Read: plain and hashed (`|1|salt|hash`) host names, `[host]:port`, comma lists, `*`/`?`
//! patterns, `!` negations and the `@revoked` marker (`@cert-authority` lines are skipped: orch
//! does not accept host certificates). Written: one plain line per key, by `orch ssh trust` or
//! by trust-on-first-use.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use russh::keys::{HashAlg, PublicKey};
use sha1::Sha1;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use thiserror::Error;

/// The file name under `.orch/`.
pub const KNOWN_HOSTS_FILE: &str = "known_hosts";

/// Serializes this process's writes; appends from other processes are single `write` calls.
static WRITE_LOCK: Mutex<()> = Mutex::new(());

/// Why the store could not be read or written.
#[derive(Debug, Error)]
pub enum KnownHostsError {
    /// Reading failed.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The store.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// Writing failed.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The store.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// The key could not be encoded (should not happen for a key a server presented).
    #[error("cannot encode the host key: {0}")]
    Encode(String),
}

/// A key recorded for a host.
#[derive(Debug, Clone)]
pub struct KnownKey {
    /// 1-based line in the store.
    pub line: usize,
    /// The key.
    pub key: PublicKey,
    /// Marked `@revoked`.
    pub revoked: bool,
}

/// What the store says about a key a server presented.
#[derive(Debug, Clone)]
pub enum HostKeyStatus {
    /// The key is recorded for this host.
    Known,
    /// Nothing is recorded for this host.
    Unknown,
    /// Other keys are recorded for this host: the key changed (or someone is in the middle).
    Changed {
        /// What is recorded.
        recorded: Vec<KnownKey>,
    },
    /// The key is marked `@revoked`.
    Revoked {
        /// Its line.
        line: usize,
    },
}

/// `ssh-ed25519 SHA256:…`: the key's algorithm and SHA-256 fingerprint, as `ssh-keygen -l` shows it.
pub fn fingerprint(key: &PublicKey) -> String {
    format!("{} {}", key.algorithm(), key.fingerprint(HashAlg::Sha256))
}

/// The known-hosts store of one repository.
#[derive(Debug, Clone)]
pub struct KnownHosts {
    path: PathBuf,
}

/// The name OpenSSH uses for a host: `host` on port 22, `[host]:port` otherwise.
fn host_entry_name(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_ascii_lowercase()
    } else {
        format!("[{}]:{port}", host.to_ascii_lowercase())
    }
}

/// One parsed line.
struct Line<'a> {
    number: usize,
    marker: Option<&'a str>,
    hosts: &'a str,
    key: Option<PublicKey>,
}

fn parse_lines(text: &str) -> impl Iterator<Item = Line<'_>> {
    text.lines().enumerate().filter_map(|(i, raw)| {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            return None;
        }
        let mut fields = line.split_whitespace();
        let mut first = fields.next()?;
        let marker = if first.starts_with('@') {
            let m = first;
            first = fields.next()?;
            Some(m)
        } else {
            None
        };
        let algorithm = fields.next()?;
        let blob = fields.next()?;
        // A line orch cannot parse is skipped rather than failing every connection.
        let key = PublicKey::from_openssh(&format!("{algorithm} {blob}")).ok();
        Some(Line {
            number: i + 1,
            marker,
            hosts: first,
            key,
        })
    })
}

/// Whether a comma-separated host list (possibly hashed, with patterns) covers `name`.
fn hosts_match(list: &str, name: &str) -> bool {
    let mut matched = false;
    for entry in list.split(',') {
        if let Some(hashed) = entry.strip_prefix("|1|") {
            if hashed_matches(hashed, name) {
                matched = true;
            }
        } else if let Some(negated) = entry.strip_prefix('!') {
            if glob(&negated.to_ascii_lowercase(), name) {
                return false;
            }
        } else if glob(&entry.to_ascii_lowercase(), name) {
            matched = true;
        }
    }
    matched
}

fn hashed_matches(hashed: &str, name: &str) -> bool {
    let Some((salt, hash)) = hashed.split_once('|') else {
        return false;
    };
    let (Ok(salt), Ok(hash)) = (BASE64.decode(salt), BASE64.decode(hash)) else {
        return false;
    };
    let Ok(mac) = <Hmac<Sha1> as KeyInit>::new_from_slice(&salt) else {
        return false;
    };
    mac.chain_update(name.as_bytes())
        .verify_slice(&hash)
        .is_ok()
}

/// OpenSSH host patterns: `*` is any run of characters, `?` exactly one.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

impl KnownHosts {
    /// The store at `path`.
    pub fn new(path: PathBuf) -> Self {
        KnownHosts { path }
    }

    /// The store of the repository whose state directory is `orch_dir`.
    pub fn in_dir(orch_dir: &Path) -> Self {
        Self::new(orch_dir.join(KNOWN_HOSTS_FILE))
    }

    /// Where the store lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn read(&self) -> Result<String, KnownHostsError> {
        match std::fs::read_to_string(&self.path) {
            Ok(text) => Ok(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
            Err(source) => Err(KnownHostsError::Read {
                path: self.path.clone(),
                source,
            }),
        }
    }

    /// Every key recorded for `host:port` (revoked ones included, marked).
    pub fn keys_for(&self, host: &str, port: u16) -> Result<Vec<KnownKey>, KnownHostsError> {
        let text = self.read()?;
        let name = host_entry_name(host, port);
        Ok(parse_lines(&text)
            .filter(|l| l.marker.is_none_or(|m| m == "@revoked"))
            .filter(|l| hosts_match(l.hosts, &name))
            .filter_map(|l| {
                Some(KnownKey {
                    line: l.number,
                    key: l.key?,
                    revoked: l.marker == Some("@revoked"),
                })
            })
            .collect())
    }

    /// Checks the key `host:port` presented against the store.
    pub fn check(
        &self,
        host: &str,
        port: u16,
        key: &PublicKey,
    ) -> Result<HostKeyStatus, KnownHostsError> {
        let recorded = self.keys_for(host, port)?;
        if let Some(r) = recorded
            .iter()
            .find(|r| r.revoked && r.key.key_data() == key.key_data())
        {
            return Ok(HostKeyStatus::Revoked { line: r.line });
        }
        let trusted: Vec<KnownKey> = recorded.into_iter().filter(|r| !r.revoked).collect();
        if trusted.iter().any(|r| r.key.key_data() == key.key_data()) {
            Ok(HostKeyStatus::Known)
        } else if trusted.is_empty() {
            Ok(HostKeyStatus::Unknown)
        } else {
            Ok(HostKeyStatus::Changed { recorded: trusted })
        }
    }

    fn line_for(host: &str, port: u16, key: &PublicKey) -> Result<String, KnownHostsError> {
        let mut key = key.clone();
        key.set_comment("");
        let encoded = key
            .to_openssh()
            .map_err(|e| KnownHostsError::Encode(e.to_string()))?;
        Ok(format!(
            "{} {}\n",
            host_entry_name(host, port),
            encoded.trim()
        ))
    }

    /// Appends `key` for `host:port`.
    pub fn record(&self, host: &str, port: u16, key: &PublicKey) -> Result<(), KnownHostsError> {
        let line = Self::line_for(host, port, key)?;
        let _guard = WRITE_LOCK
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Another step may have recorded it while this one waited for the lock.
        if matches!(self.check(host, port, key)?, HostKeyStatus::Known) {
            return Ok(());
        }
        let write_err = |source| KnownHostsError::Write {
            path: self.path.clone(),
            source,
        };
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(write_err)?;
        }
        let existing = self.read()?;
        let text = if existing.is_empty() || existing.ends_with('\n') {
            line
        } else {
            format!("\n{line}")
        };
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(write_err)?;
        file.write_all(text.as_bytes()).map_err(write_err)
    }

    /// Removes every line that names `host:port` and records `key` instead; returns how many
    /// lines were removed.
    pub fn replace(
        &self,
        host: &str,
        port: u16,
        key: &PublicKey,
    ) -> Result<usize, KnownHostsError> {
        let line = Self::line_for(host, port, key)?;
        let name = host_entry_name(host, port);
        let _guard = WRITE_LOCK
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let existing = self.read()?;
        let drop: Vec<usize> = parse_lines(&existing)
            .filter(|l| l.marker.is_none() && hosts_match(l.hosts, &name))
            .map(|l| l.number)
            .collect();
        let mut text = String::with_capacity(existing.len() + line.len());
        for (i, l) in existing.lines().enumerate() {
            if !drop.contains(&(i + 1)) {
                text.push_str(l);
                text.push('\n');
            }
        }
        text.push_str(&line);
        let write_err = |source| KnownHostsError::Write {
            path: self.path.clone(),
            source,
        };
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(write_err)?;
        }
        let tmp = self
            .path
            .with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, text).map_err(write_err)?;
        std::fs::rename(&tmp, &self.path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            write_err(e)
        })?;
        Ok(drop.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED_A: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ";
    const ED_B: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICSt03bOPWlcf/warmnveV8IDSdh+FVWxKzUEyzlfCOk";

    fn key(text: &str) -> PublicKey {
        PublicKey::from_openssh(text).unwrap()
    }

    #[test]
    fn a_recorded_key_is_known_and_another_is_a_change() {
        let dir = tempfile::tempdir().unwrap();
        let store = KnownHosts::in_dir(dir.path());
        assert!(matches!(
            store.check("127.0.0.1", 2222, &key(ED_A)).unwrap(),
            HostKeyStatus::Unknown
        ));
        store.record("127.0.0.1", 2222, &key(ED_A)).unwrap();
        store.record("127.0.0.1", 2222, &key(ED_A)).unwrap();
        let text = std::fs::read_to_string(store.path()).unwrap();
        assert_eq!(text.lines().count(), 1, "recorded once: {text}");
        assert!(text.starts_with("[127.0.0.1]:2222 ssh-ed25519 "), "{text}");
        assert!(matches!(
            store.check("127.0.0.1", 2222, &key(ED_A)).unwrap(),
            HostKeyStatus::Known
        ));
        assert!(matches!(
            store.check("127.0.0.1", 22, &key(ED_A)).unwrap(),
            HostKeyStatus::Unknown
        ));
        match store.check("127.0.0.1", 2222, &key(ED_B)).unwrap() {
            HostKeyStatus::Changed { recorded } => assert_eq!(recorded[0].line, 1),
            other => panic!("{other:?}"),
        }
        assert_eq!(store.replace("127.0.0.1", 2222, &key(ED_B)).unwrap(), 1);
        assert!(matches!(
            store.check("127.0.0.1", 2222, &key(ED_B)).unwrap(),
            HostKeyStatus::Known
        ));
    }

    #[test]
    fn openssh_lines_are_understood() {
        let dir = tempfile::tempdir().unwrap();
        let store = KnownHosts::in_dir(dir.path());
        // `ssh-keygen -H` of "example.com" with this salt.
        let salt = [7u8; 20];
        let mac = <Hmac<Sha1> as KeyInit>::new_from_slice(&salt)
            .unwrap()
            .chain_update(b"example.com")
            .finalize()
            .into_bytes();
        let hashed = format!("|1|{}|{}", BASE64.encode(salt), BASE64.encode(mac));
        std::fs::write(
            store.path(),
            format!(
                "# comment\n{hashed} {ED_A}\n*.lan,!evil.lan {ED_A}\n@revoked bad.host {ED_B}\n@cert-authority * {ED_B}\nnot a key line\n"
            ),
        )
        .unwrap();
        assert!(matches!(
            store.check("example.com", 22, &key(ED_A)).unwrap(),
            HostKeyStatus::Known
        ));
        assert!(matches!(
            store.check("web.lan", 22, &key(ED_A)).unwrap(),
            HostKeyStatus::Known
        ));
        assert!(matches!(
            store.check("evil.lan", 22, &key(ED_A)).unwrap(),
            HostKeyStatus::Unknown
        ));
        assert!(matches!(
            store.check("bad.host", 22, &key(ED_B)).unwrap(),
            HostKeyStatus::Revoked { line: 4 }
        ));
    }

    #[test]
    fn fingerprints_read_like_ssh_keygen() {
        let fp = fingerprint(&key(ED_A));
        assert!(fp.starts_with("ssh-ed25519 SHA256:"), "{fp}");
    }
}
