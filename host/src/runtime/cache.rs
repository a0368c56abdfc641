//! The on-disk caches of `.orch/`: precompiled code (`cache/`) and describe() results
//! (`describe/`), both keyed by the plugin wasm's SHA-256.
//!
//! Precompiled code is native code that wasmtime loads without checking, so each file carries an
//! HMAC-SHA256, under a random per-repository key (`.orch/cache.key`, mode 0600), over the
//! wasm's digest, the engine's compatibility hash and the bytes. A file copied from another
//! plugin, edited, or written by anything but this host fails the check and is recompiled.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Length of the MAC that starts every cache file.
const MAC_LEN: usize = 32;
/// Length of the key.
const KEY_LEN: usize = 32;
/// Largest describe() cache file read back.
const MAX_DESCRIBE_CACHE_BYTES: u64 = 64 * 1024 * 1024;

/// What reading a cache entry found.
#[derive(Debug)]
pub enum CacheRead {
    /// No entry (or no cache).
    Missing,
    /// An entry this host wrote for this wasm.
    Valid(Vec<u8>),
    /// An entry that is not to be trusted, and why.
    Invalid(String),
}

/// The caches of one repository.
pub struct Caches {
    compiled_dir: PathBuf,
    describe_dir: PathBuf,
    key: [u8; KEY_LEN],
}

impl Caches {
    /// The caches under `compiled_dir` (`.orch/cache`), with `.orch/describe` and the key
    /// `.orch/cache.key` beside it. None when the key can neither be read nor created (the
    /// host then compiles every time rather than trust unauthenticated files).
    pub fn open(compiled_dir: &Path) -> Option<Caches> {
        let parent = compiled_dir.parent()?;
        let key_path = parent.join("cache.key");
        match load_or_create_key(parent, &key_path) {
            Ok(key) => Some(Caches {
                compiled_dir: compiled_dir.to_path_buf(),
                describe_dir: parent.join("describe"),
                key,
            }),
            Err(e) => {
                tracing::warn!(
                    "compile cache disabled: {}: {e}; plugins are compiled on every run",
                    key_path.display()
                );
                None
            }
        }
    }

    /// Where the compiled code of the wasm with digest `sha256` lives for engine `engine`.
    pub fn compiled_path(&self, sha256: &str, engine: &str) -> PathBuf {
        self.compiled_dir.join(format!("{sha256}-{engine}.cwasm"))
    }

    fn describe_path(&self, sha256: &str, host: &str) -> PathBuf {
        self.describe_dir.join(format!("{sha256}-{host}.json"))
    }

    /// The compiled code for this wasm and engine, if this host wrote it.
    pub fn read_compiled(&self, sha256: &str, engine: &str) -> CacheRead {
        let path = self.compiled_path(sha256, engine);
        self.read(
            &path,
            &["compiled", sha256, engine],
            super::files::MAX_CWASM_BYTES,
        )
    }

    /// Stores compiled code (atomically; failures only cost a recompile next time).
    pub fn write_compiled(&self, sha256: &str, engine: &str, code: &[u8]) {
        let path = self.compiled_path(sha256, engine);
        self.write(&path, &["compiled", sha256, engine], code);
    }

    /// The describe() result stored for this wasm by this host version.
    pub fn read_describe(&self, sha256: &str, host: &str) -> CacheRead {
        let path = self.describe_path(sha256, host);
        self.read(&path, &["describe", sha256, host], MAX_DESCRIBE_CACHE_BYTES)
    }

    /// Stores a describe() result.
    pub fn write_describe(&self, sha256: &str, host: &str, body: &[u8]) {
        let path = self.describe_path(sha256, host);
        self.write(&path, &["describe", sha256, host], body);
    }

    fn mac(&self, context: &[&str], body: &[u8]) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key)
            .expect("HMAC takes keys of any length");
        mac.update(b"orch cache v1\0");
        for part in context {
            mac.update(part.as_bytes());
            mac.update(b"\0");
        }
        mac.update(body);
        mac
    }

    fn read(&self, path: &Path, context: &[&str], max: u64) -> CacheRead {
        if path.symlink_metadata().is_err() {
            return CacheRead::Missing;
        }
        let bytes = match super::files::read_regular(path, max) {
            Ok(b) => b,
            Err(e) => return CacheRead::Invalid(format!("{}: {e}", path.display())),
        };
        if bytes.len() < MAC_LEN {
            return CacheRead::Invalid(format!("{}: truncated", path.display()));
        }
        let (tag, body) = bytes.split_at(MAC_LEN);
        match self.mac(context, body).verify_slice(tag) {
            Ok(()) => CacheRead::Valid(body.to_vec()),
            Err(_) => CacheRead::Invalid(format!(
                "{} was not written by this host for this plugin (its HMAC does not match)",
                path.display()
            )),
        }
    }

    fn write(&self, path: &Path, context: &[&str], body: &[u8]) {
        let Some(dir) = path.parent() else { return };
        if std::fs::create_dir_all(dir).is_err() {
            return;
        }
        let tag = self.mac(context, body).finalize().into_bytes();
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let written = std::fs::File::create(&tmp).and_then(|mut f| {
            f.write_all(&tag)?;
            f.write_all(body)
        });
        if written.is_err() || std::fs::rename(&tmp, path).is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
    }
}

/// Reads the key, or creates it (0600) without ever replacing one another process made first.
fn load_or_create_key(dir: &Path, path: &Path) -> Result<[u8; KEY_LEN], String> {
    if path.symlink_metadata().is_ok() {
        return read_key(path);
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut key = [0u8; KEY_LEN];
    rand::TryRngCore::try_fill_bytes(&mut rand::rngs::OsRng, &mut key)
        .map_err(|e| format!("no randomness for the key: {e}"))?;
    let tmp = dir.join(format!(".cache.key.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
        .open(&tmp)
        .and_then(|mut f| f.write_all(&key))
        .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    // A hard link fails if the key exists: two processes racing agree on the first key.
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(key),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read_key(path),
        Err(e) => Err(format!("cannot create: {e}")),
    }
}

fn read_key(path: &Path) -> Result<[u8; KEY_LEN], String> {
    let bytes = super::files::read_regular(path, KEY_LEN as u64)?;
    <[u8; KEY_LEN]>::try_from(bytes.as_slice()).map_err(|_| {
        format!(
            "holds {} bytes, not {KEY_LEN}; delete it and the cache directory to start afresh",
            bytes.len()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caches(dir: &Path) -> Caches {
        Caches::open(&dir.join(".orch/cache")).unwrap()
    }

    #[test]
    fn an_entry_reads_back_only_for_the_wasm_it_was_written_for() {
        let dir = tempfile::tempdir().unwrap();
        let c = caches(dir.path());
        c.write_compiled("aaaa", "e1", b"code of a");
        c.write_compiled("bbbb", "e1", b"code of b");
        assert!(matches!(c.read_compiled("aaaa", "e1"), CacheRead::Valid(b) if b == b"code of a"));
        // b's file moved into a's place: refused.
        std::fs::copy(c.compiled_path("bbbb", "e1"), c.compiled_path("aaaa", "e1")).unwrap();
        assert!(
            matches!(c.read_compiled("aaaa", "e1"), CacheRead::Invalid(m) if m.contains("HMAC"))
        );
        assert!(matches!(c.read_compiled("cccc", "e1"), CacheRead::Missing));
    }

    #[test]
    fn an_edited_entry_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let c = caches(dir.path());
        c.write_describe("aaaa", "h", b"[]");
        let path = c.describe_path("aaaa", "h");
        let mut bytes = std::fs::read(&path).unwrap();
        *bytes.last_mut().unwrap() = b'}';
        std::fs::write(&path, bytes).unwrap();
        assert!(matches!(
            c.read_describe("aaaa", "h"),
            CacheRead::Invalid(_)
        ));
    }

    #[test]
    fn the_key_is_private_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let a = caches(dir.path());
        let b = caches(dir.path());
        assert_eq!(a.key, b.key);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(".orch/cache.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
