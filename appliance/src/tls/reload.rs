//! Certificates and CRLs that change without a restart. Every server
//! configuration holds the two parts that can change, each behind a lock:
//! the server's certificate and key ([`CurrentCert`]) and the client
//! verifier with its CA and CRLs ([`CurrentVerifier`]). [`Reloader::reload`]
//! reads the files again and swaps both, or, if anything fails, neither:
//! a bad file at reload keeps the previous certificates in service (still
//! TLS), it never drops a port to plain text. Handshakes in progress finish
//! with what they started with; ports keep their modes.

use std::sync::{Arc, RwLock};

use firmware_config::Tls;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

/// The server's certificate chain and key in service.
#[derive(Debug)]
pub struct CurrentCert(RwLock<Arc<CertifiedKey>>);

impl CurrentCert {
    pub fn new(key: CertifiedKey) -> Arc<CurrentCert> {
        Arc::new(CurrentCert(RwLock::new(Arc::new(key))))
    }

    fn get(&self) -> Arc<CertifiedKey> {
        Arc::clone(&self.0.read().expect("TLS certificate lock is poisoned"))
    }

    fn set(&self, key: CertifiedKey) {
        *self.0.write().expect("TLS certificate lock is poisoned") = Arc::new(key);
    }
}

impl ResolvesServerCert for CurrentCert {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.get())
    }
}

/// The client-certificate verifier in service (CA bundle and CRLs).
#[derive(Debug)]
pub struct CurrentVerifier(RwLock<Arc<dyn ClientCertVerifier>>);

impl CurrentVerifier {
    pub fn new(verifier: Arc<dyn ClientCertVerifier>) -> Arc<CurrentVerifier> {
        Arc::new(CurrentVerifier(RwLock::new(verifier)))
    }

    fn get(&self) -> Arc<dyn ClientCertVerifier> {
        Arc::clone(&self.0.read().expect("TLS verifier lock is poisoned"))
    }

    fn set(&self, verifier: Arc<dyn ClientCertVerifier>) {
        *self.0.write().expect("TLS verifier lock is poisoned") = verifier;
    }
}

impl ClientCertVerifier for CurrentVerifier {
    fn offer_client_auth(&self) -> bool {
        self.get().offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.get().client_auth_mandatory()
    }

    /// No hints: the CA's names would have to outlive a reload that
    /// replaces them. Hints are optional in TLS 1.3; a client with one
    /// certificate sends it either way.
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.get()
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.get().verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.get().verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.get().supported_verify_schemes()
    }
}

/// Reads `[tls]`'s files again into the parts in service.
#[derive(Debug)]
pub struct Reloader {
    pub(super) tls: Tls,
    pub(super) provider: Arc<CryptoProvider>,
    pub(super) cert: Arc<CurrentCert>,
    /// `None` when no port is in mode `mtls`.
    pub(super) verifier: Option<Arc<CurrentVerifier>>,
}

impl Reloader {
    /// Re-reads the certificate, key, CA bundle and CRLs; swaps them in
    /// only if all of them load. An error names the setting, as at start.
    pub fn reload(&self) -> anyhow::Result<()> {
        let key = super::load::certified_key(&self.tls, &self.provider)?;
        let verifier = match &self.verifier {
            Some(_) => Some(super::load::client_verifier(&self.tls, &self.provider)?),
            None => None,
        };
        self.cert.set(key);
        if let (Some(current), Some(verifier)) = (&self.verifier, verifier) {
            current.set(verifier);
        }
        Ok(())
    }
}
