//! Encrypted local secret store (`.orch/vaults/`) and the redaction set that keeps secrets out of output.
//!
//! Each vault is one JSON file mapping key names to ChaCha20-Poly1305 ciphertexts. The 32-byte
//! key comes from `ORCH_VAULT_KEY` when set, else from `.orch/vault.key`, which is created on
//! first use.

mod error;
mod key;
mod local;
mod redact;

pub use self::error::VaultError;
pub use self::key::{KEY_ENV, KEY_FILE};
pub use self::local::LocalVault;
pub use self::redact::{MIN_SUBSTRING_CHARS, REDACTED, Redactor, SecretFound, SecretSource};
