use std::ffi::OsString;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use rand::TryRngCore;
use rand::rngs::OsRng;

use super::error::VaultError;

/// The environment variable that overrides the key file.
pub const KEY_ENV: &str = "ORCH_VAULT_KEY";
/// The key file's name inside the orch directory.
pub const KEY_FILE: &str = "vault.key";

const KEY_LEN: usize = 32;

/// The 32-byte vault key; deliberately not `Debug`, so it cannot end up in a log.
pub(super) struct VaultKey(pub(super) [u8; KEY_LEN]);

/// The key from `env_value` (the value of `ORCH_VAULT_KEY`) if given, else from the key file, creating it if missing.
pub(super) fn load(orch_dir: &Path, env_value: Option<OsString>) -> Result<VaultKey, VaultError> {
    if let Some(value) = env_value {
        let text = value.into_string().map_err(|_| VaultError::BadEnvKey {
            reason: "it is not valid UTF-8".to_string(),
        })?;
        return parse_text(&text)
            .map(VaultKey)
            .map_err(|reason| VaultError::BadEnvKey { reason });
    }
    let path = orch_dir.join(KEY_FILE);
    match fs::read(&path) {
        Ok(bytes) => parse_file(&path, &bytes),
        Err(e) if e.kind() == io::ErrorKind::NotFound => create_key_file(orch_dir, &path),
        Err(source) => Err(VaultError::Io {
            action: "read",
            path,
            source,
        }),
    }
}

/// The key held in the key file at `path` (another machine's `vault.key`, for re-encrypting a vault for it); never created.
pub(super) fn load_file(path: &Path) -> Result<VaultKey, VaultError> {
    let bytes = fs::read(path).map_err(|source| VaultError::Io {
        action: "read",
        path: path.to_path_buf(),
        source,
    })?;
    parse_file(path, &bytes)
}

/// Fills `buf` from the operating system's generator.
pub(super) fn random_bytes(buf: &mut [u8]) -> Result<(), VaultError> {
    OsRng.try_fill_bytes(buf).map_err(|e| VaultError::Random {
        reason: e.to_string(),
    })
}

/// Accepts 64 hex characters or base64 (standard or URL-safe, padded or not) of 32 bytes.
fn parse_text(text: &str) -> Result<[u8; KEY_LEN], String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("it is empty".to_string());
    }
    if text.len() == 2 * KEY_LEN && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        let mut key = [0u8; KEY_LEN];
        hex::decode_to_slice(text, &mut key).map_err(|e| e.to_string())?;
        return Ok(key);
    }
    let decoded = [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(text).ok());
    match decoded {
        Some(bytes) => <[u8; KEY_LEN]>::try_from(bytes.as_slice()).map_err(|_| {
            format!(
                "it decodes as base64 to {} bytes, not {KEY_LEN}",
                bytes.len()
            )
        }),
        None => Err(format!(
            "it is {} characters long and neither 64 hex characters nor base64",
            text.chars().count()
        )),
    }
}

pub(super) fn parse_file(path: &Path, bytes: &[u8]) -> Result<VaultKey, VaultError> {
    // Raw bytes are accepted too, for key files made with `head -c 32 /dev/urandom`; no text
    // form of a key is 32 bytes long, so the length alone tells them apart.
    if let Ok(raw) = <[u8; KEY_LEN]>::try_from(bytes) {
        return Ok(VaultKey(raw));
    }
    let text = std::str::from_utf8(bytes).map_err(|_| VaultError::BadKeyFile {
        path: path.to_path_buf(),
        reason: format!(
            "it holds {} bytes of binary data, not {KEY_LEN}",
            bytes.len()
        ),
    })?;
    parse_text(text)
        .map(VaultKey)
        .map_err(|reason| VaultError::BadKeyFile {
            path: path.to_path_buf(),
            reason,
        })
}

/// Creates the key file without ever replacing one another process created first.
fn create_key_file(orch_dir: &Path, path: &Path) -> Result<VaultKey, VaultError> {
    fs::create_dir_all(orch_dir).map_err(|source| VaultError::Io {
        action: "create the directory",
        path: orch_dir.to_path_buf(),
        source,
    })?;
    let mut key = [0u8; KEY_LEN];
    random_bytes(&mut key)?;
    // Hex text, so the file can be copied straight into ORCH_VAULT_KEY on another machine.
    let text = format!("{}\n", hex::encode(key));

    let mut suffix = [0u8; 8];
    random_bytes(&mut suffix)?;
    let temp = orch_dir.join(format!(".{KEY_FILE}.{}.tmp", hex::encode(suffix)));
    write_private_file(&temp, text.as_bytes())?;
    // A hard link fails if the target exists, so two processes racing to create the key agree
    // on the first one, and nobody ever sees a half-written file.
    let linked = fs::hard_link(&temp, path);
    let _ = fs::remove_file(&temp);
    match linked {
        Ok(()) => Ok(VaultKey(key)),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let bytes = fs::read(path).map_err(|source| VaultError::Io {
                action: "read",
                path: path.to_path_buf(),
                source,
            })?;
            parse_file(path, &bytes)
        }
        // Some filesystems have no hard links; create_new still never replaces a key.
        Err(_) => match write_private_file(path, text.as_bytes()) {
            Ok(()) => Ok(VaultKey(key)),
            Err(VaultError::Io { source, .. }) if source.kind() == io::ErrorKind::AlreadyExists => {
                let bytes = fs::read(path).map_err(|source| VaultError::Io {
                    action: "read",
                    path: path.to_path_buf(),
                    source,
                })?;
                parse_file(path, &bytes)
            }
            Err(e) => Err(e),
        },
    }
}

/// Writes a new file readable only by its owner; fails if `path` exists.
pub(super) fn write_private_file(path: &Path, bytes: &[u8]) -> Result<(), VaultError> {
    let io_error = |action, source| VaultError::Io {
        action,
        path: PathBuf::from(path),
        source,
    };
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|e| io_error("create", e))?;
    let written = file
        .write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| io_error("write", e));
    if written.is_err() {
        let _ = fs::remove_file(path);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX_KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    fn expected() -> [u8; KEY_LEN] {
        std::array::from_fn(|i| i as u8)
    }

    #[test]
    fn the_env_key_accepts_hex_and_base64() {
        let dir = tempfile::tempdir().expect("tempdir");
        let hex_key = load(dir.path(), Some(HEX_KEY.into())).expect("hex");
        assert_eq!(hex_key.0, expected());
        let b64 = STANDARD.encode(expected());
        let b64_key = load(dir.path(), Some(format!(" {b64}\n").into())).expect("base64");
        assert_eq!(b64_key.0, expected());
        let url = URL_SAFE_NO_PAD.encode(expected());
        assert_eq!(
            load(dir.path(), Some(url.into())).expect("url-safe").0,
            expected()
        );
        assert!(
            !dir.path().join(KEY_FILE).exists(),
            "an env key never creates the file"
        );
    }

    #[test]
    fn a_bad_env_key_is_refused_without_echoing_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        for bad in ["", "not-a-key-at-all!", &STANDARD.encode([7u8; 16])] {
            let err = load(dir.path(), Some(bad.into())).err().expect("must fail");
            let message = err.to_string();
            assert!(matches!(err, VaultError::BadEnvKey { .. }), "{err:?}");
            assert!(message.contains("ORCH_VAULT_KEY"), "{message}");
            if !bad.is_empty() {
                assert!(
                    !message.contains(bad),
                    "the message leaks the value: {message}"
                );
            }
        }
    }

    #[test]
    fn the_key_file_is_created_private_once_and_then_reused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let orch = dir.path().join(".orch");
        let first = load(&orch, None).expect("create");
        let path = orch.join(KEY_FILE);
        assert!(path.is_file());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).expect("metadata").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let second = load(&orch, None).expect("reuse");
        assert_eq!(first.0, second.0);
        let leftovers: Vec<_> = fs::read_dir(&orch)
            .expect("read_dir")
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(
            leftovers.is_empty(),
            "temp files left behind: {leftovers:?}"
        );
        // The file's text works as ORCH_VAULT_KEY elsewhere.
        let text = fs::read_to_string(&path).expect("read");
        assert_eq!(load(&orch, Some(text.into())).expect("as env").0, first.0);
    }

    #[test]
    fn a_raw_32_byte_key_file_is_accepted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut raw = [0xffu8; KEY_LEN];
        raw[0] = 0x80;
        fs::write(dir.path().join(KEY_FILE), raw).expect("write");
        assert_eq!(load(dir.path(), None).expect("raw").0, raw);
    }

    #[test]
    fn a_damaged_key_file_names_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join(KEY_FILE), "abc\n").expect("write");
        let err = load(dir.path(), None).err().expect("must fail");
        assert!(matches!(err, VaultError::BadKeyFile { .. }), "{err:?}");
        assert!(err.to_string().contains(KEY_FILE), "{err}");
    }
}
