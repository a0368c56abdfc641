use std::path::PathBuf;

/// Everything that can go wrong with the local vault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VaultError {
    /// A vault or key name uses characters or a length that are not allowed.
    #[error(
        "invalid {kind} name {name:?}: use 1 to 128 characters from A-Z, a-z, 0-9, '.', '_' and '-'"
    )]
    InvalidName {
        /// `vault` or `key`.
        kind: &'static str,
        /// The name as given.
        name: String,
    },

    /// `ORCH_VAULT_KEY` is set but does not hold a 32-byte key.
    #[error(
        "ORCH_VAULT_KEY is not a usable vault key: {reason}; set it to 64 hex characters or the \
         base64 of 32 bytes (for example the output of `openssl rand -hex 32`), or unset it to \
         use .orch/vault.key"
    )]
    BadEnvKey {
        /// What is wrong with it (never the value itself).
        reason: String,
    },

    /// The key file exists but does not hold a 32-byte key.
    #[error(
        "the vault key file {} is not a usable key: {reason}; restore it from a backup, or set \
         ORCH_VAULT_KEY to the key the vaults were written with",
        .path.display()
    )]
    BadKeyFile {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it (never its content).
        reason: String,
    },

    /// A vault to export does not exist or holds no keys.
    #[error(
        "there is no vault {vault:?} to export ({} is missing or empty); store its secrets first with `orch vault put {vault} KEY`",
        .path.display()
    )]
    Missing {
        /// The vault name.
        vault: String,
        /// The vault file.
        path: PathBuf,
    },

    /// A value does not decrypt with the current key.
    #[error(
        "cannot decrypt {vault}/{key}: the vault key does not match (ORCH_VAULT_KEY or \
         .orch/vault.key); use the key {} was written with, or put the value again",
        .path.display()
    )]
    WrongKey {
        /// The vault name.
        vault: String,
        /// The key name.
        key: String,
        /// The vault file.
        path: PathBuf,
    },

    /// A vault file is not in the expected format.
    #[error(
        "the vault file {} is damaged: {reason}; restore it from a backup, or delete it and put \
         its secrets again",
        .path.display()
    )]
    Corrupt {
        /// The vault file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// Reading or writing a file failed.
    #[error("cannot {action} {}: {source}; check that the directory exists and is writable by you", .path.display())]
    Io {
        /// What was being done, e.g. `write`.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// What the operating system reported.
        #[source]
        source: std::io::Error,
    },

    /// The operating system's random number generator failed.
    #[error(
        "cannot get random bytes from the operating system: {reason}; retry, and check the system's entropy source"
    )]
    Random {
        /// What the generator reported.
        reason: String,
    },

    /// Encryption itself failed, which only happens for absurdly large values.
    #[error(
        "cannot encrypt {vault}/{key}: the value is too large to encrypt; store a smaller value"
    )]
    Encrypt {
        /// The vault name.
        vault: String,
        /// The key name.
        key: String,
    },
}
