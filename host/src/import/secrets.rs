//! Literal secrets in swamp files: found by the key they sit under (or by looking like a private
//! key) and replaced by a vault reference, so no plaintext secret reaches the orch repository.

/// Key fragments that mark a value as secret (compared without case, `-` and `_`).
const SECRET_KEY_PARTS: &[&str] = &[
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "apikey",
    "privatekey",
    "authkey",
    "accesskey",
    "credential",
    "sshkey",
];

/// True when a value under `key` must not be written in plaintext.
pub fn is_secret_key(key: &str) -> bool {
    let normal: String = key
        .chars()
        .filter(|c| *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect();
    SECRET_KEY_PARTS.iter().any(|part| normal.contains(part))
        && !NOT_SECRET_SUFFIXES.iter().any(|end| normal.ends_with(end))
}

/// Keys that name where a secret is, or which one, rather than holding it: `tokenUrl`,
/// `passwordFile`, `tokenId` (a Proxmox API token's id is `user@realm!name`, not the secret).
const NOT_SECRET_SUFFIXES: &[&str] = &["url", "path", "file", "name", "id", "ttl"];

/// True when `value` is a literal that must be replaced: a secret key holding text that is not
/// already a `${{ … }}` expression, or any value that is a PEM private key.
pub fn is_literal_secret(key: &str, value: &str) -> bool {
    let value = value.trim();
    if value.is_empty() || value.contains("${{") {
        return false;
    }
    is_secret_key(key) || looks_like_private_key(value)
}

fn looks_like_private_key(value: &str) -> bool {
    value.contains("-----BEGIN") && value.contains("PRIVATE KEY")
}

/// The template written in place of a literal secret.
pub fn vault_reference(vault: &str, key: &str) -> String {
    format!("${{{{ vault.get(\"{vault}\", \"{key}\") }}}}")
}

/// The command that stores the secret, reading it from stdin as `orch vault put` does.
pub fn vault_put_command(vault: &str, key: &str) -> String {
    format!("printf %s \"$SECRET\" | orch vault put {vault} {key}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_looking_keys_are_found_in_any_spelling() {
        for key in [
            "password",
            "sshPassword",
            "apiKey",
            "api_key",
            "privateKey",
            "PRIVATE-KEY",
            "authToken",
            "clientSecret",
            "authKey",
        ] {
            assert!(is_secret_key(key), "{key}");
        }
        for key in [
            "apiUrl",
            "tokenUrl",
            "passwordFile",
            "tokenId",
            "username",
            "node",
            "host",
            "tmuxSession",
            "keyboard",
        ] {
            assert!(!is_secret_key(key), "{key}");
        }
    }

    #[test]
    fn only_literals_are_replaced() {
        assert!(is_literal_secret("password", "hunter2"));
        assert!(!is_literal_secret(
            "password",
            "${{ vault.get(\"proxmox-vault\", \"password\") }}"
        ));
        // A CEL reference to another model's ticket is wiring, not a plaintext secret.
        assert!(!is_literal_secret(
            "csrfToken",
            "${{ model.keebDev02.resource.node.attributes.csrfToken }}"
        ));
        assert!(!is_literal_secret("password", "  "));
        assert!(!is_literal_secret("apiUrl", "https://10.0.0.4:8006"));
    }

    #[test]
    fn a_pem_private_key_is_a_secret_under_any_key() {
        let pem = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn\n-----END OPENSSH PRIVATE KEY-----";
        assert!(is_literal_secret("identity", pem));
    }

    #[test]
    fn replacement_is_a_vault_template_and_a_put_command() {
        assert_eq!(
            vault_reference("keebDev02", "password"),
            "${{ vault.get(\"keebDev02\", \"password\") }}"
        );
        assert_eq!(
            vault_put_command("keebDev02", "password"),
            "printf %s \"$SECRET\" | orch vault put keebDev02 password"
        );
    }
}
