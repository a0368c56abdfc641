//! Certificate pinning: accept exactly the server certificate with a given SHA-256 fingerprint.
//! Proxmox nodes ship self-signed certificates; pinning is the safe alternative to
//! `insecure-tls`, which accepts anything.

use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// Parses a fingerprint written as hex, with or without colons (as `openssl x509 -fingerprint`
/// and the Proxmox UI show it).
pub fn parse_fingerprint(text: &str) -> Result<[u8; 32], String> {
    let hex_only: String = text
        .chars()
        .filter(|c| *c != ':' && !c.is_whitespace())
        .collect();
    let bytes = hex::decode(&hex_only)
        .map_err(|_| format!("certificate fingerprint {text:?} is not hex"))?;
    bytes
        .try_into()
        .map_err(|_| format!("certificate fingerprint {text:?} is not a SHA-256 (32 bytes)"))
}

/// Accepts only the end-entity certificate whose SHA-256 is pinned; signatures are still checked.
#[derive(Debug)]
pub struct PinnedCertVerifier {
    sha256: [u8; 32],
    provider: Arc<CryptoProvider>,
}

impl PinnedCertVerifier {
    /// A verifier for this fingerprint.
    pub fn new(sha256: [u8; 32]) -> Self {
        PinnedCertVerifier {
            sha256,
            provider: Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
        }
    }

    /// A rustls client configuration that trusts only the pinned certificate.
    pub fn client_config(sha256: [u8; 32]) -> Result<rustls::ClientConfig, String> {
        let verifier = Arc::new(Self::new(sha256));
        let config = rustls::ClientConfig::builder_with_provider(verifier.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(config)
    }
}

impl ServerCertVerifier for PinnedCertVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let actual: [u8; 32] = Sha256::digest(end_entity.as_ref()).into();
        if actual == self.sha256 {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "the server's certificate has SHA-256 {} but {} is pinned",
                hex::encode(actual),
                hex::encode(self.sha256)
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::parse_fingerprint;

    #[test]
    fn fingerprints_parse_with_or_without_colons() {
        let plain = "ab".repeat(32);
        let colons = vec!["AB"; 32].join(":");
        assert_eq!(
            parse_fingerprint(&plain).unwrap(),
            parse_fingerprint(&colons).unwrap()
        );
        assert!(parse_fingerprint("abcd").is_err());
        assert!(parse_fingerprint("zz").is_err());
    }
}
