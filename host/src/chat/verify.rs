//! Discord's request signature: Ed25519 over `X-Signature-Timestamp` followed by the raw body,
//! checked against the application's public key; a timestamp too far from now is a replay.

use ed25519_dalek::{Signature, VerifyingKey};

/// How far a request's timestamp may be from now (seconds) before it counts as a replay.
pub const MAX_SKEW_SECONDS: i64 = 300;

/// Why a request was refused (said in the 401; names no key material).
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// A signature header is missing.
    Missing(&'static str),
    /// A header is not in the expected form.
    Malformed(&'static str),
    /// The signature does not match the body and timestamp.
    BadSignature,
    /// The timestamp is older (or newer) than [`MAX_SKEW_SECONDS`] from now.
    Stale,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Missing(h) => write!(f, "missing {h} header"),
            Refusal::Malformed(h) => write!(f, "malformed {h} header"),
            Refusal::BadSignature => f.write_str("invalid request signature"),
            Refusal::Stale => write!(
                f,
                "request timestamp is more than {MAX_SKEW_SECONDS}s from now (replayed?)"
            ),
        }
    }
}

/// Reads a hex Ed25519 public key (64 hex digits).
pub fn public_key(hex_key: &str) -> Result<VerifyingKey, String> {
    let bytes: [u8; 32] = hex::decode(hex_key.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or("the public key is not 64 hex digits")?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| "the public key is not an Ed25519 key".to_string())
}

/// Checks one request: `signature` (hex) and `timestamp` (unix seconds, as sent) over `body`,
/// at unix time `now`.
pub fn verify(
    key: &VerifyingKey,
    signature: Option<&str>,
    timestamp: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<(), Refusal> {
    let signature = signature.ok_or(Refusal::Missing("X-Signature-Ed25519"))?;
    let timestamp = timestamp.ok_or(Refusal::Missing("X-Signature-Timestamp"))?;
    let sig: [u8; 64] = hex::decode(signature.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or(Refusal::Malformed("X-Signature-Ed25519"))?;
    let at: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| Refusal::Malformed("X-Signature-Timestamp"))?;
    let mut message = Vec::with_capacity(timestamp.len() + body.len());
    message.extend_from_slice(timestamp.as_bytes());
    message.extend_from_slice(body);
    key.verify_strict(&message, &Signature::from_bytes(&sig))
        .map_err(|_| Refusal::BadSignature)?;
    // Checked after the signature, so the timestamp is the one Discord signed.
    if (now - at).abs() > MAX_SKEW_SECONDS {
        return Err(Refusal::Stale);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[7u8; 32])
    }

    fn sign(ts: &str, body: &[u8]) -> String {
        let mut m = ts.as_bytes().to_vec();
        m.extend_from_slice(body);
        hex::encode(key().sign(&m).to_bytes())
    }

    #[test]
    fn a_good_signature_within_the_window_passes() {
        let body = br#"{"type":1}"#;
        let vk = public_key(&hex::encode(key().verifying_key().to_bytes())).unwrap();
        let sig = sign("1000", body);
        assert_eq!(verify(&vk, Some(&sig), Some("1000"), body, 1000), Ok(()));
        assert_eq!(verify(&vk, Some(&sig), Some("1000"), body, 1300), Ok(()));
    }

    #[test]
    fn a_changed_body_or_timestamp_fails() {
        let vk = key().verifying_key();
        let sig = sign("1000", b"{\"type\":1}");
        assert_eq!(
            verify(&vk, Some(&sig), Some("1000"), b"{\"type\":2}", 1000),
            Err(Refusal::BadSignature)
        );
        assert_eq!(
            verify(&vk, Some(&sig), Some("1001"), b"{\"type\":1}", 1000),
            Err(Refusal::BadSignature)
        );
    }

    #[test]
    fn an_old_timestamp_is_a_replay() {
        let vk = key().verifying_key();
        let sig = sign("1000", b"{}");
        assert_eq!(
            verify(
                &vk,
                Some(&sig),
                Some("1000"),
                b"{}",
                1000 + MAX_SKEW_SECONDS + 1
            ),
            Err(Refusal::Stale)
        );
    }

    #[test]
    fn missing_or_malformed_headers_fail() {
        let vk = key().verifying_key();
        assert_eq!(
            verify(&vk, None, Some("1"), b"{}", 1),
            Err(Refusal::Missing("X-Signature-Ed25519"))
        );
        assert_eq!(
            verify(&vk, Some("zz"), Some("1"), b"{}", 1),
            Err(Refusal::Malformed("X-Signature-Ed25519"))
        );
        let sig = sign("x", b"{}");
        assert_eq!(
            verify(&vk, Some(&sig), Some("x"), b"{}", 1),
            Err(Refusal::Malformed("X-Signature-Timestamp"))
        );
        assert!(public_key("abcd").is_err());
    }
}
