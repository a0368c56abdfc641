use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, KeyInit, Nonce};
use serde::{Deserialize, Serialize};

use super::error::VaultError;
use super::key::{self, KEY_ENV};

const VAULTS_DIR: &str = "vaults";
const VAULT_SUFFIX: &str = ".json";
// Held while a vault file is read, changed and replaced, so two writers cannot lose each other's keys.
const LOCK_FILE: &str = ".lock";
const NONCE_LEN: usize = 12;
const MAX_NAME_LEN: usize = 128;
// Binds each ciphertext to its vault and key, so a value moved to another key fails to decrypt.
const AAD_PREFIX: &str = "orch-vault-v1:";

/// One encrypted value as stored in a vault file.
#[derive(Serialize, Deserialize)]
struct Sealed {
    nonce: String,
    ciphertext: String,
}

/// Encrypted secret store under `<orch_dir>/vaults/`, one JSON file per vault.
pub struct LocalVault {
    dir: PathBuf,
    cipher: ChaCha20Poly1305,
}

impl std::fmt::Debug for LocalVault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The cipher holds the key, so only the location is shown.
        f.debug_struct("LocalVault")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl LocalVault {
    /// Key from env ORCH_VAULT_KEY (64 hex chars or base64 of 32 bytes) if set, else `<orch_dir>/vault.key` (created with 32 random bytes, mode 0600, if missing).
    pub fn open(orch_dir: &Path) -> Result<Self, VaultError> {
        Self::open_with_key(orch_dir, std::env::var_os(KEY_ENV))
    }

    /// Like [`LocalVault::open`], with the value of `ORCH_VAULT_KEY` passed in rather than read from the environment.
    pub fn open_with_key(
        orch_dir: &Path,
        env_key: Option<std::ffi::OsString>,
    ) -> Result<Self, VaultError> {
        let key = key::load(orch_dir, env_key)?;
        Ok(Self {
            dir: orch_dir.join(VAULTS_DIR),
            cipher: ChaCha20Poly1305::new(Key::from_slice(&key.0)),
        })
    }

    /// Stores `value` under `vault`/`key`, replacing any previous value.
    pub fn put(&self, vault: &str, key: &str, value: &str) -> Result<(), VaultError> {
        validate_name("vault", vault)?;
        validate_name("key", key)?;
        self.create_dir()?;
        let _lock = self.lock()?;
        let path = self.vault_path(vault);
        let mut entries = read_entries(&path)?;
        entries.insert(key.to_string(), self.seal(vault, key, value)?);
        write_entries(&path, &entries)
    }

    /// The value under `vault`/`key`, or `None` if the vault or key does not exist.
    pub fn get(&self, vault: &str, key: &str) -> Result<Option<String>, VaultError> {
        validate_name("vault", vault)?;
        validate_name("key", key)?;
        let path = self.vault_path(vault);
        // Writers replace the file by rename, so a reader always sees a whole file without the lock.
        let entries = read_entries(&path)?;
        match entries.get(key) {
            Some(sealed) => self.open_sealed(&path, vault, key, sealed).map(Some),
            None => Ok(None),
        }
    }

    /// The key names in `vault`, sorted; the values are not decrypted.
    pub fn list(&self, vault: &str) -> Result<Vec<String>, VaultError> {
        validate_name("vault", vault)?;
        Ok(read_entries(&self.vault_path(vault))?.into_keys().collect())
    }

    /// The names of all vaults, sorted.
    pub fn vaults(&self) -> Result<Vec<String>, VaultError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(VaultError::Io {
                    action: "list",
                    path: self.dir.clone(),
                    source,
                });
            }
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| VaultError::Io {
                action: "list",
                path: self.dir.clone(),
                source,
            })?;
            let file_name = entry.file_name();
            // Temp files, the lock file and anything foreign are not vaults.
            if let Some(name) = file_name
                .to_str()
                .and_then(|n| n.strip_suffix(VAULT_SUFFIX))
                .filter(|n| validate_name("vault", n).is_ok())
            {
                names.push(name.to_string());
            }
        }
        names.sort();
        Ok(names)
    }

    /// `vault` re-encrypted for the machine whose key is in `target_key_file`: a vault file (the
    /// same JSON format) that only that key opens, for `orch vault import` there. No plaintext is
    /// written anywhere; the values are decrypted in memory only to be sealed again.
    pub fn export_for(&self, vault: &str, target_key_file: &Path) -> Result<Vec<u8>, VaultError> {
        self.export_sealed(vault, || key::load_file(target_key_file))
    }

    /// Like [`LocalVault::export_for`], with the other machine's key file contents in memory
    /// (read from it over SSH, never written here); `shown` names where they came from.
    pub fn export_for_key_bytes(
        &self,
        vault: &str,
        key_file_bytes: &[u8],
        shown: &Path,
    ) -> Result<Vec<u8>, VaultError> {
        self.export_sealed(vault, || key::parse_file(shown, key_file_bytes))
    }

    /// The export, with the target key read only once the vault is known to exist.
    fn export_sealed(
        &self,
        vault: &str,
        target: impl FnOnce() -> Result<key::VaultKey, VaultError>,
    ) -> Result<Vec<u8>, VaultError> {
        validate_name("vault", vault)?;
        let path = self.vault_path(vault);
        let entries = read_entries(&path)?;
        if entries.is_empty() {
            return Err(VaultError::Missing {
                vault: vault.to_string(),
                path,
            });
        }
        let target = target()?;
        let target = Self {
            dir: self.dir.clone(),
            cipher: ChaCha20Poly1305::new(Key::from_slice(&target.0)),
        };
        let mut sealed = BTreeMap::new();
        for (name, entry) in &entries {
            let value = self.open_sealed(&path, vault, name, entry)?;
            sealed.insert(name.clone(), target.seal(vault, name, &value)?);
        }
        encode_entries(&path, &sealed)
    }

    /// Installs the entries of an exported vault file (`bytes`, read from `source`) into `vault`,
    /// replacing keys of the same name. Every entry must open with this machine's key before
    /// anything is written, so a bundle made for another key changes nothing. Returns the key names.
    pub fn import(
        &self,
        vault: &str,
        bytes: &[u8],
        source: &Path,
    ) -> Result<Vec<String>, VaultError> {
        validate_name("vault", vault)?;
        let incoming = parse_entries(source, bytes)?;
        for (name, entry) in &incoming {
            validate_name("key", name)?;
            self.open_sealed(source, vault, name, entry)?;
        }
        self.create_dir()?;
        let _lock = self.lock()?;
        let path = self.vault_path(vault);
        let mut entries = read_entries(&path)?;
        let names: Vec<String> = incoming.keys().cloned().collect();
        entries.extend(incoming);
        write_entries(&path, &entries)?;
        Ok(names)
    }

    fn vault_path(&self, vault: &str) -> PathBuf {
        self.dir.join(format!("{vault}{VAULT_SUFFIX}"))
    }

    fn create_dir(&self) -> Result<(), VaultError> {
        let mut builder = fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        builder.create(&self.dir).map_err(|source| VaultError::Io {
            action: "create the directory",
            path: self.dir.clone(),
            source,
        })
    }

    /// Takes the cross-process write lock; it is released when the returned file is dropped.
    fn lock(&self) -> Result<File, VaultError> {
        let path = self.dir.join(LOCK_FILE);
        let io_error = |action, source| VaultError::Io {
            action,
            path: path.clone(),
            source,
        };
        let mut options = OpenOptions::new();
        options.write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let file = options.open(&path).map_err(|e| io_error("open", e))?;
        file.lock().map_err(|e| io_error("lock", e))?;
        Ok(file)
    }

    fn seal(&self, vault: &str, key: &str, value: &str) -> Result<Sealed, VaultError> {
        let mut nonce = [0u8; NONCE_LEN];
        key::random_bytes(&mut nonce)?;
        let aad = associated_data(vault, key);
        let ciphertext = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: value.as_bytes(),
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| VaultError::Encrypt {
                vault: vault.to_string(),
                key: key.to_string(),
            })?;
        Ok(Sealed {
            nonce: STANDARD.encode(nonce),
            ciphertext: STANDARD.encode(ciphertext),
        })
    }

    fn open_sealed(
        &self,
        path: &Path,
        vault: &str,
        key: &str,
        sealed: &Sealed,
    ) -> Result<String, VaultError> {
        let corrupt = |reason: String| VaultError::Corrupt {
            path: path.to_path_buf(),
            reason,
        };
        let nonce = STANDARD
            .decode(&sealed.nonce)
            .map_err(|e| corrupt(format!("the nonce of {key:?} is not base64 ({e})")))?;
        if nonce.len() != NONCE_LEN {
            return Err(corrupt(format!(
                "the nonce of {key:?} is {} bytes, not {NONCE_LEN}",
                nonce.len()
            )));
        }
        let ciphertext = STANDARD
            .decode(&sealed.ciphertext)
            .map_err(|e| corrupt(format!("the ciphertext of {key:?} is not base64 ({e})")))?;
        let aad = associated_data(vault, key);
        let plaintext = self
            .cipher
            .decrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &ciphertext,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| VaultError::WrongKey {
                vault: vault.to_string(),
                key: key.to_string(),
                path: path.to_path_buf(),
            })?;
        String::from_utf8(plaintext)
            .map_err(|_| corrupt(format!("the value of {key:?} is not UTF-8 text")))
    }
}

fn associated_data(vault: &str, key: &str) -> String {
    // Neither name may contain '/', so the pair is unambiguous.
    format!("{AAD_PREFIX}{vault}/{key}")
}

fn validate_name(kind: &'static str, name: &str) -> Result<(), VaultError> {
    let valid = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if valid {
        Ok(())
    } else {
        Err(VaultError::InvalidName {
            kind,
            name: name.to_string(),
        })
    }
}

fn read_entries(path: &Path) -> Result<BTreeMap<String, Sealed>, VaultError> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(source) => {
            return Err(VaultError::Io {
                action: "read",
                path: path.to_path_buf(),
                source,
            });
        }
    };
    parse_entries(path, &bytes)
}

fn parse_entries(path: &Path, bytes: &[u8]) -> Result<BTreeMap<String, Sealed>, VaultError> {
    serde_json::from_slice(bytes).map_err(|e| VaultError::Corrupt {
        path: path.to_path_buf(),
        reason: format!("it is not a JSON object of {{nonce, ciphertext}} entries ({e})"),
    })
}

fn encode_entries(path: &Path, entries: &BTreeMap<String, Sealed>) -> Result<Vec<u8>, VaultError> {
    serde_json::to_vec_pretty(entries).map_err(|e| VaultError::Corrupt {
        path: path.to_path_buf(),
        reason: format!("it could not be encoded ({e})"),
    })
}

/// Replaces the vault file atomically: a temp file in the same directory, then a rename.
fn write_entries(path: &Path, entries: &BTreeMap<String, Sealed>) -> Result<(), VaultError> {
    let json = encode_entries(path, entries)?;
    let mut suffix = [0u8; 8];
    key::random_bytes(&mut suffix)?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = path.with_file_name(format!(".{file_name}.{}.tmp", hex::encode(suffix)));
    key::write_private_file(&temp, &json)?;
    if let Err(source) = fs::rename(&temp, path) {
        let _ = fs::remove_file(&temp);
        return Err(VaultError::Io {
            action: "replace",
            path: path.to_path_buf(),
            source,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    const KEY_B: &str = "ff0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    fn vault_with(dir: &tempfile::TempDir, key: &str) -> LocalVault {
        LocalVault::open_with_key(dir.path(), Some(key.into())).expect("open vault")
    }

    #[test]
    fn an_exported_vault_opens_only_with_the_target_key_and_imports_there() {
        let local_dir = tempfile::tempdir().expect("tempdir");
        let remote_dir = tempfile::tempdir().expect("tempdir");
        let local = vault_with(&local_dir, KEY_A);
        local.put("proxmox", "password", "s3cr3t-pw").expect("put");
        local.put("proxmox", "user", "root@pam").expect("put");
        let remote_key = remote_dir.path().join("remote.key");
        fs::write(&remote_key, format!("{KEY_B}\n")).expect("write key");

        let bundle = local.export_for("proxmox", &remote_key).expect("export");
        let text = String::from_utf8(bundle.clone()).expect("utf8");
        assert!(
            !text.contains("s3cr3t-pw") && !text.contains("root@pam"),
            "{text}"
        );

        // The local key cannot open it: it is sealed for the remote only.
        let wrong = local.import("proxmox", &bundle, Path::new("bundle.json"));
        assert!(
            matches!(wrong, Err(VaultError::WrongKey { .. })),
            "{wrong:?}"
        );

        let remote = vault_with(&remote_dir, KEY_B);
        remote.put("proxmox", "remote-only", "kept").expect("put");
        let names = remote
            .import("proxmox", &bundle, Path::new("bundle.json"))
            .expect("import");
        assert_eq!(names, ["password", "user"]);
        assert_eq!(
            remote.get("proxmox", "password").expect("get").as_deref(),
            Some("s3cr3t-pw")
        );
        assert_eq!(
            remote
                .get("proxmox", "remote-only")
                .expect("get")
                .as_deref(),
            Some("kept")
        );
    }

    #[test]
    fn a_bundle_for_another_key_changes_nothing_and_names_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let local = vault_with(&dir, KEY_A);
        local.put("proxmox", "password", "old").expect("put");
        let other = tempfile::tempdir().expect("tempdir");
        let other_key = other.path().join("other.key");
        fs::write(&other_key, KEY_B).expect("write key");
        let bundle = local.export_for("proxmox", &other_key).expect("export");
        let err = local
            .import("proxmox", &bundle, Path::new("/tmp/bundle.json"))
            .expect_err("wrong key");
        assert!(err.to_string().contains("/tmp/bundle.json"), "{err}");
        assert_eq!(
            local.get("proxmox", "password").expect("get").as_deref(),
            Some("old")
        );
    }

    #[test]
    fn a_key_read_over_ssh_seals_like_its_file_and_a_bad_one_names_where_it_came_from() {
        let local_dir = tempfile::tempdir().expect("tempdir");
        let remote_dir = tempfile::tempdir().expect("tempdir");
        let local = vault_with(&local_dir, KEY_A);
        local.put("proxmox", "password", "s3cr3t-pw").expect("put");
        let shown = Path::new("root@slate:22:/opt/orch-bot/.orch/vault.key");
        let bundle = local
            .export_for_key_bytes("proxmox", format!("{KEY_B}\n").as_bytes(), shown)
            .expect("export");
        let remote = vault_with(&remote_dir, KEY_B);
        remote
            .import("proxmox", &bundle, Path::new("<stdin>"))
            .expect("import");
        assert_eq!(
            remote.get("proxmox", "password").expect("get").as_deref(),
            Some("s3cr3t-pw")
        );
        let err = local
            .export_for_key_bytes("proxmox", b"not a key", shown)
            .expect_err("bad key");
        assert!(
            err.to_string().contains("root@slate:22:/opt/orch-bot"),
            "{err}"
        );
    }

    #[test]
    fn exporting_a_missing_vault_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let local = vault_with(&dir, KEY_A);
        let err = local
            .export_for("nothing", Path::new("/nonexistent.key"))
            .expect_err("missing");
        assert!(matches!(err, VaultError::Missing { .. }), "{err}");
    }

    #[test]
    fn a_value_round_trips() {
        let dir = tempfile::tempdir().expect("tempdir");
        let vault = vault_with(&dir, KEY_A);
        vault
            .put("proxmox", "password", "s3cr3t ünïcode")
            .expect("put");
        assert_eq!(
            vault.get("proxmox", "password").expect("get").as_deref(),
            Some("s3cr3t ünïcode")
        );
        vault
            .put("proxmox", "password", "rotated")
            .expect("replace");
        assert_eq!(
            vault.get("proxmox", "password").expect("get").as_deref(),
            Some("rotated")
        );
        assert_eq!(vault.get("proxmox", "missing").expect("get"), None);
        assert_eq!(vault.get("no-such-vault", "password").expect("get"), None);
        vault.put("proxmox", "empty", "").expect("empty value");
        assert_eq!(
            vault.get("proxmox", "empty").expect("get").as_deref(),
            Some("")
        );
    }

    #[test]
    fn the_file_at_rest_holds_no_plaintext_and_is_private() {
        let dir = tempfile::tempdir().expect("tempdir");
        let vault = vault_with(&dir, KEY_A);
        vault
            .put("proxmox", "password", "hunter2-plaintext")
            .expect("put");
        let path = dir.path().join("vaults/proxmox.json");
        let text = fs::read_to_string(&path).expect("read");
        assert!(!text.contains("hunter2"), "{text}");
        let parsed: serde_json::Value = serde_json::from_str(&text).expect("json");
        assert!(parsed["password"]["nonce"].is_string());
        assert!(parsed["password"]["ciphertext"].is_string());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).expect("metadata").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn the_same_value_encrypts_differently_each_time() {
        let dir = tempfile::tempdir().expect("tempdir");
        let vault = vault_with(&dir, KEY_A);
        vault.put("v", "a", "same").expect("put");
        vault.put("v", "b", "same").expect("put");
        let entries = read_entries(&dir.path().join("vaults/v.json")).expect("read");
        assert_ne!(entries["a"].nonce, entries["b"].nonce);
        assert_ne!(entries["a"].ciphertext, entries["b"].ciphertext);
    }

    #[test]
    fn a_different_key_gives_a_clear_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        vault_with(&dir, KEY_A)
            .put("proxmox", "password", "s3cr3t")
            .expect("put");
        let err = vault_with(&dir, KEY_B)
            .get("proxmox", "password")
            .expect_err("wrong key");
        assert!(matches!(err, VaultError::WrongKey { .. }), "{err:?}");
        let message = err.to_string();
        assert!(
            message.starts_with(
                "cannot decrypt proxmox/password: the vault key does not match (ORCH_VAULT_KEY or .orch/vault.key)"
            ),
            "{message}"
        );
        assert!(!message.contains("s3cr3t"));
    }

    #[test]
    fn a_value_moved_to_another_key_does_not_decrypt() {
        let dir = tempfile::tempdir().expect("tempdir");
        let vault = vault_with(&dir, KEY_A);
        vault.put("v", "user", "admin").expect("put");
        vault.put("v", "password", "s3cr3t").expect("put");
        let path = dir.path().join("vaults/v.json");
        let mut entries = read_entries(&path).expect("read");
        let password = entries.remove("password").expect("present");
        entries.insert("user".to_string(), password);
        fs::remove_file(&path).expect("remove");
        write_entries(&path, &entries).expect("write swapped");
        let err = vault.get("v", "user").expect_err("swapped value");
        assert!(matches!(err, VaultError::WrongKey { .. }), "{err:?}");
    }

    #[test]
    fn list_shows_key_names_only_sorted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let vault = vault_with(&dir, KEY_A);
        vault.put("proxmox", "token", "value-one").expect("put");
        vault.put("proxmox", "api.user", "value-two").expect("put");
        vault.put("minecraft", "rcon", "value-three").expect("put");
        let keys = vault.list("proxmox").expect("list");
        assert_eq!(keys, vec!["api.user", "token"]);
        assert!(keys.iter().all(|k| !k.starts_with("value")));
        assert!(vault.list("nothing").expect("list").is_empty());
        assert_eq!(
            vault.vaults().expect("vaults"),
            vec!["minecraft", "proxmox"]
        );
    }

    #[test]
    fn vaults_is_empty_before_anything_is_stored() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(vault_with(&dir, KEY_A).vaults().expect("vaults").is_empty());
    }

    #[test]
    fn bad_names_are_refused_and_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let vault = vault_with(&dir, KEY_A);
        let long = "a".repeat(129);
        for (v, k, bad) in [
            ("../etc", "k", "../etc"),
            ("", "k", ""),
            ("v", "a/b", "a/b"),
            ("v", "with space", "with space"),
            ("v", long.as_str(), long.as_str()),
        ] {
            let err = vault.put(v, k, "x").expect_err("bad name");
            let VaultError::InvalidName { name, .. } = &err else {
                panic!("expected InvalidName, got {err:?}");
            };
            assert_eq!(name, bad);
            assert!(err.to_string().contains("1 to 128 characters"), "{err}");
            assert!(vault.get(v, k).is_err());
        }
        assert!(vault.list("a b").is_err());
        vault
            .put(&"a".repeat(128), "k.e_y-1", "x")
            .expect("longest valid name");
    }

    #[test]
    fn a_damaged_vault_file_names_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let vault = vault_with(&dir, KEY_A);
        vault.put("v", "k", "x").expect("put");
        fs::write(dir.path().join("vaults/v.json"), "[1, 2]").expect("damage");
        let err = vault.get("v", "k").expect_err("damaged");
        assert!(matches!(err, VaultError::Corrupt { .. }), "{err:?}");
        assert!(err.to_string().contains("v.json"), "{err}");
    }

    #[test]
    fn concurrent_puts_keep_every_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let vault = vault_with(&dir, KEY_A);
                std::thread::spawn(move || {
                    for i in 0..10 {
                        vault.put("shared", &format!("k{t}-{i}"), "v")?;
                    }
                    Ok::<_, VaultError>(())
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("thread panicked").expect("put");
        }
        let vault = vault_with(&dir, KEY_A);
        assert_eq!(vault.list("shared").expect("list").len(), 40);
    }

    #[test]
    fn debug_output_does_not_show_the_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let shown = format!("{:?}", vault_with(&dir, KEY_A));
        assert!(shown.contains("LocalVault"));
        assert!(!shown.contains("cipher"));
    }
}
