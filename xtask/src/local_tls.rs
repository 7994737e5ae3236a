//! A certificate authority made for one run, and the certificate it issues to 127.0.0.1 and
//! `localhost`: what lets a local proxy serve HTTPS that the functions verify as they verify
//! DynamoDB's own endpoint, with nothing trusted beyond the run.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::{self, ServerConfig};

use crate::Result;

/// The CA's certificate, written as PEM to [`LocalTls::ca_file`] (removed on drop), and a TLS 1.3
/// acceptor presenting the certificate it issued.
pub struct LocalTls {
    pub ca_file: PathBuf,
    pub acceptor: TlsAcceptor,
}

impl LocalTls {
    /// Generates the CA (ECDSA P-256) and its leaf, and writes the CA to a file of `dir`.
    pub fn generate(dir: &Path) -> Result<Self> {
        let mut ca = CertificateParams::new(Vec::<String>::new())?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        ca.distinguished_name
            .push(DnType::CommonName, "users-service local CA");
        let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate()?)?;

        let leaf_key = KeyPair::generate()?;
        let mut leaf =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])?;
        leaf.distinguished_name
            .push(DnType::CommonName, "localhost");
        let leaf = leaf.signed_by(&leaf_key, &ca)?;

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
            )?;

        let ca_file = dir.join(format!("users-local-ca-{}.pem", std::process::id()));
        std::fs::write(&ca_file, ca.pem())?;
        Ok(Self {
            ca_file,
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }
}

impl Drop for LocalTls {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.ca_file);
    }
}
