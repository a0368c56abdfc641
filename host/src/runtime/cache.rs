//! The on-disk caches of `.orch/`: precompiled code (`cache/`) and describe() results
//! (`describe/`), both keyed by the plugin wasm's SHA-256.
//!
//! Entries carry an HMAC-SHA256 under a random per-repository key (`.orch/cache.key`, mode
//! 0600). A describe() entry's HMAC covers the wasm's digest, this host's checks and the bytes.
//!
//! Precompiled code is native code that wasmtime loads without checking. It is stored as it is
//! (so wasmtime maps the file instead of copying it) with a seal beside it (`<name>.seal`): an
//! HMAC over the wasm's digest, the engine's compatibility hash and the identity of the file
//! this host wrote (device, inode, size, modification and change times). The file is written
//! 0600, synced, then renamed into place and sealed; it is used only while it is still that
//! file, owned by this user and writable by nobody else. A file copied from another plugin,
//! replaced, edited, or written by anything but this host fails the check and is recompiled,
//! without reading and hashing a megabyte of code on every run. A process running as the same
//! user can read the key, so neither check holds against it.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Length of the MAC that starts every cache file.
const MAC_LEN: usize = 32;
/// Length of the key.
const KEY_LEN: usize = 32;
/// Largest describe() cache file read back.
const MAX_DESCRIBE_CACHE_BYTES: u64 = 64 * 1024 * 1024;
/// Largest seal read back (it holds one line).
const MAX_SEAL_BYTES: u64 = 4096;

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

/// What looking up compiled code found.
#[derive(Debug)]
pub enum CompiledRead {
    /// No entry (or no cache).
    Missing,
    /// The compiled code this host wrote for this wasm, opened: still the file it sealed.
    Valid(std::fs::File),
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

    /// The compiled code for this wasm and engine, opened, if this host wrote it and it is
    /// still the file it sealed.
    pub fn read_compiled(&self, sha256: &str, engine: &str) -> CompiledRead {
        let path = self.compiled_path(sha256, engine);
        let sealed = match self.read(
            &seal_path(&path),
            &["compiled-seal", sha256, engine],
            MAX_SEAL_BYTES,
        ) {
            CacheRead::Missing => return CompiledRead::Missing,
            CacheRead::Invalid(why) => return CompiledRead::Invalid(why),
            CacheRead::Valid(body) => body,
        };
        if path.symlink_metadata().is_err() {
            return CompiledRead::Missing;
        }
        let (file, meta) = match super::files::open_regular(&path, super::files::MAX_CWASM_BYTES) {
            Ok(opened) => opened,
            Err(e) => return CompiledRead::Invalid(format!("{}: {e}", path.display())),
        };
        match identity(&meta) {
            Ok(id) if id.as_bytes() == sealed.as_slice() => CompiledRead::Valid(file),
            Ok(_) => CompiledRead::Invalid(format!(
                "{} is not the file this host compiled for this plugin (it was replaced or changed since; its seal does not match)",
                path.display()
            )),
            Err(why) => CompiledRead::Invalid(format!("{}: {why}", path.display())),
        }
    }

    /// Stores compiled code: written 0600 and synced under a temporary name, renamed into
    /// place, then sealed. Failures only cost a recompile next time.
    pub fn write_compiled(&self, sha256: &str, engine: &str, code: &[u8]) {
        let path = self.compiled_path(sha256, engine);
        let seal = seal_path(&path);
        let Some(dir) = path.parent() else { return };
        if std::fs::create_dir_all(dir).is_err() {
            return;
        }
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let written = create_private(&tmp).and_then(|mut f| {
            f.write_all(code)?;
            // A seal must never outlive the bytes it vouches for (a power cut).
            f.sync_data()?;
            Ok(f)
        });
        // The old seal goes first: in between, a reader finds no entry rather than a stale one.
        let _ = std::fs::remove_file(&seal);
        let file = match written {
            Ok(f) if std::fs::rename(&tmp, &path).is_ok() => f,
            _ => {
                let _ = std::fs::remove_file(&tmp);
                return;
            }
        };
        // The identity after the rename (it updates the change time).
        if let Ok(id) = file
            .metadata()
            .map_err(|e| e.to_string())
            .and_then(|m| identity(&m))
        {
            self.write(&seal, &["compiled-seal", sha256, engine], id.as_bytes());
        }
    }

    /// The SHA-256 an earlier process computed for the plugin wasm at `path`, if the file
    /// opened now (`meta`, taken before reading it) is still the one it sealed: a warm run
    /// then neither reads nor hashes the wasm. Any change to the file (its inode, size or
    /// times) means it is hashed again, so "changed after it was built" is still caught.
    pub fn sealed_digest(&self, path: &Path, meta: &std::fs::Metadata) -> Option<String> {
        let body = match self.read(
            &self.digest_seal_path(path),
            &["wasm-digest", &path.to_string_lossy()],
            MAX_SEAL_BYTES,
        ) {
            CacheRead::Valid(body) => String::from_utf8(body).ok()?,
            _ => return None,
        };
        let (id, sha256) = body.rsplit_once(' ')?;
        (identity_with(meta, true).ok()? == id).then(|| sha256.to_string())
    }

    /// Remembers that the wasm at `path`, as opened with `meta` (taken before it was read), has
    /// digest `sha256`. Nothing is kept for a file another user (but root) could change.
    pub fn seal_digest(&self, path: &Path, meta: &std::fs::Metadata, sha256: &str) {
        if let Ok(id) = identity_with(meta, true) {
            self.write(
                &self.digest_seal_path(path),
                &["wasm-digest", &path.to_string_lossy()],
                format!("{id} {sha256}").as_bytes(),
            );
        }
    }

    fn digest_seal_path(&self, path: &Path) -> PathBuf {
        let key = hex::encode(Sha256::digest(path.as_os_str().as_encoded_bytes()));
        self.compiled_dir
            .join("wasm")
            .join(format!("{}.seal", &key[..32]))
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

/// Where the seal of the compiled code at `path` lives.
fn seal_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".seal");
    PathBuf::from(name)
}

/// What a seal binds compiled code to: the file's device, inode, size and times. Refused for a
/// file another user owns or may write, since the seal cannot stop them changing it in place.
fn identity(meta: &std::fs::Metadata) -> Result<String, String> {
    identity_with(meta, false)
}

/// [`identity`], also for a file root owns when `root_ok` (a plugin installed system-wide).
#[cfg(unix)]
fn identity_with(meta: &std::fs::Metadata, root_ok: bool) -> Result<String, String> {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me && !(root_ok && meta.uid() == 0) {
        return Err(format!(
            "is owned by user {}, not by this user ({me}); delete it to recompile",
            meta.uid()
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!(
            "is writable by other users (mode {:o}); delete it to recompile",
            meta.mode() & 0o7777
        ));
    }
    Ok(format!(
        "v1 {} {} {} {}.{:09} {}.{:09}",
        meta.dev(),
        meta.ino(),
        meta.size(),
        meta.mtime(),
        meta.mtime_nsec(),
        meta.ctime(),
        meta.ctime_nsec()
    ))
}

/// Elsewhere compiled code is not kept: every run compiles.
#[cfg(not(unix))]
fn identity_with(_meta: &std::fs::Metadata, _root_ok: bool) -> Result<String, String> {
    Err("compiled code is cached only on Unix".into())
}

/// Creates `tmp` afresh (a leftover of a killed process is removed first), readable and
/// writable by this user only.
fn create_private(tmp: &Path) -> std::io::Result<std::fs::File> {
    let _ = std::fs::remove_file(tmp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(tmp)
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
    create_private(&tmp)
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

    /// The bytes of the compiled code found, or why there are none.
    fn compiled(c: &Caches, sha: &str) -> Result<Vec<u8>, String> {
        match c.read_compiled(sha, "e1") {
            CompiledRead::Valid(mut f) => {
                let mut bytes = Vec::new();
                std::io::Read::read_to_end(&mut f, &mut bytes).unwrap();
                Ok(bytes)
            }
            CompiledRead::Missing => Err("missing".into()),
            CompiledRead::Invalid(why) => Err(why),
        }
    }

    #[cfg(unix)]
    #[test]
    fn compiled_code_reads_back_only_while_it_is_the_file_this_host_sealed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let c = caches(dir.path());
        c.write_compiled("aaaa", "e1", b"code of a");
        c.write_compiled("bbbb", "e1", b"code of b");
        assert_eq!(compiled(&c, "aaaa").unwrap(), b"code of a");
        assert_eq!(compiled(&c, "cccc").unwrap_err(), "missing");
        let a = c.compiled_path("aaaa", "e1");
        let mode = std::fs::metadata(&a).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // b's code renamed into a's place: another file.
        std::fs::copy(c.compiled_path("bbbb", "e1"), dir.path().join("b")).unwrap();
        std::fs::rename(dir.path().join("b"), &a).unwrap();
        let err = compiled(&c, "aaaa").unwrap_err();
        assert!(err.contains("its seal does not match"), "{err}");
        // a's code edited in place (one byte more).
        c.write_compiled("aaaa", "e1", b"code of a");
        let mut f = std::fs::OpenOptions::new().append(true).open(&a).unwrap();
        std::io::Write::write_all(&mut f, b"!").unwrap();
        assert!(
            compiled(&c, "aaaa")
                .unwrap_err()
                .contains("its seal does not match")
        );
        // b's seal beside a's code: sealed for another wasm.
        c.write_compiled("aaaa", "e1", b"code of a");
        std::fs::copy(seal_path(&c.compiled_path("bbbb", "e1")), seal_path(&a)).unwrap();
        assert!(
            compiled(&c, "aaaa")
                .unwrap_err()
                .contains("HMAC does not match")
        );
        // Writable by other users: refused, whatever the seal says.
        c.write_compiled("aaaa", "e1", b"code of a");
        std::fs::set_permissions(&a, std::fs::Permissions::from_mode(0o666)).unwrap();
        let err = compiled(&c, "aaaa").unwrap_err();
        assert!(err.contains("writable by other users"), "{err}");
        // No seal (code left by an older orch): as if nothing were cached.
        c.write_compiled("aaaa", "e1", b"code of a");
        std::fs::remove_file(seal_path(&a)).unwrap();
        assert_eq!(compiled(&c, "aaaa").unwrap_err(), "missing");
    }

    #[cfg(unix)]
    #[test]
    fn a_wasm_digest_is_trusted_only_for_the_file_and_path_it_was_sealed_for() {
        let dir = tempfile::tempdir().unwrap();
        let c = caches(dir.path());
        let wasm = dir.path().join("plugin.wasm");
        std::fs::write(&wasm, b"wasm").unwrap();
        let meta = std::fs::metadata(&wasm).unwrap();
        assert_eq!(c.sealed_digest(&wasm, &meta), None);
        c.seal_digest(&wasm, &meta, "d1");
        assert_eq!(c.sealed_digest(&wasm, &meta).as_deref(), Some("d1"));
        // Another path: not sealed there, even for the same file's identity.
        assert_eq!(c.sealed_digest(&dir.path().join("other.wasm"), &meta), None);
        // Changed (one byte more): hashed again.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&wasm)
            .unwrap();
        std::io::Write::write_all(&mut f, b"!").unwrap();
        let meta = std::fs::metadata(&wasm).unwrap();
        assert_eq!(c.sealed_digest(&wasm, &meta), None);
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
