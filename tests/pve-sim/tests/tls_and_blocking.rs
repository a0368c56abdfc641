//! The certificate a client can pin, and the synchronous start/stop used by non-async tests.

mod common;

use std::sync::{Arc, Mutex};

use common::{NODE, Session, post_login};
use pve_sim::{SimConfig, Simulator};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};

/// Accepts any certificate but remembers the leaf, so the test can compare fingerprints.
#[derive(Debug)]
struct LeafRecorder {
    leaf: Mutex<Option<Vec<u8>>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for LeafRecorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        *self.leaf.lock().unwrap() = Some(end_entity.to_vec());
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
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
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

async fn served_leaf(sim: &Simulator) -> Vec<u8> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let recorder = Arc::new(LeafRecorder {
        leaf: Mutex::new(None),
        provider: Arc::clone(&provider),
    });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(recorder.clone())
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", sim.port()))
        .await
        .unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = ServerName::try_from("localhost").unwrap();
    connector.connect(name, tcp).await.unwrap();
    recorder.leaf.lock().unwrap().clone().unwrap()
}

#[tokio::test]
async fn cert_sha256_is_the_fingerprint_of_the_served_leaf() {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let leaf = served_leaf(&sim).await;
    let fingerprint = sim.cert_sha256();
    assert_eq!(fingerprint.len(), 64);
    assert_eq!(hex::encode(Sha256::digest(&leaf)), fingerprint);
    // PVE reports the same fingerprint, colon-separated, as the node's ssl_fingerprint.
    let session = Session::login(&sim).await;
    let (_, nodes) = session.get("/nodes").await;
    let reported = nodes["data"][0]["ssl_fingerprint"].as_str().unwrap();
    assert_eq!(reported.replace(':', "").to_lowercase(), fingerprint);
}

#[tokio::test]
async fn trusting_the_certificate_verifies_both_localhost_and_127_0_0_1() {
    let sim = Simulator::start(SimConfig::default()).await.unwrap();
    let leaf = served_leaf(&sim).await;
    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_der(&leaf).unwrap()])
        .resolve("localhost", ([127, 0, 0, 1], sim.port()).into())
        .build()
        .unwrap();
    for base in [sim.url(), format!("https://localhost:{}", sim.port())] {
        let response = client
            .get(format!("{base}/api2/json/version"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{base}: {e:?}"));
        assert_eq!(response.status().as_u16(), 401, "{base}");
    }
}

#[tokio::test]
async fn each_simulator_has_its_own_certificate() {
    let a = Simulator::start(SimConfig::default()).await.unwrap();
    let b = Simulator::start(SimConfig::default()).await.unwrap();
    assert_ne!(a.cert_sha256(), b.cert_sha256());
    assert_ne!(a.url(), b.url());
}

#[test]
fn start_blocking_serves_synchronous_tests_and_shutdown_closes_the_port() {
    let sim = Simulator::start_blocking(SimConfig::default()).unwrap();
    assert!(sim.url().starts_with("https://127.0.0.1:"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let status = runtime.block_on(async {
        post_login(&sim.url(), "root@pam", "simulator-password")
            .await
            .status()
            .as_u16()
    });
    assert_eq!(status, 200);
    assert_eq!(sim.vm_status("slate").as_deref(), Some("running"));
    assert_eq!(sim.request_count(), 1);
    let port = sim.port();
    sim.shutdown();
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[test]
fn start_blocking_reports_a_port_in_use() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let error = Simulator::start_blocking(SimConfig {
        port,
        ..SimConfig::default()
    })
    .unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::AddrInUse);
}

#[tokio::test]
async fn a_configured_node_name_and_password_are_used() {
    let sim = Simulator::start(SimConfig {
        node: "pve-lab".to_string(),
        password: "other".to_string(),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    assert_eq!(
        post_login(&sim.url(), "root@pam", "simulator-password")
            .await
            .status()
            .as_u16(),
        401
    );
    let ok = post_login(&sim.url(), "root@pam", "other").await;
    assert_eq!(ok.status().as_u16(), 200);
    let body: serde_json::Value = ok.json().await.unwrap();
    let ticket = body["data"]["ticket"].as_str().unwrap();
    let response = common::client()
        .get(format!("{}/api2/json/nodes/{NODE}/qemu", sim.url()))
        .header("Cookie", format!("PVEAuthCookie={ticket}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status().as_u16(),
        500,
        "keeb-dev-02 is not this node"
    );
    let response = common::client()
        .get(format!("{}/api2/json/nodes/pve-lab/qemu", sim.url()))
        .header("Cookie", format!("PVEAuthCookie={ticket}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
}
