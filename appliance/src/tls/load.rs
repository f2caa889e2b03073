//! From the `[tls]` section to rustls server configurations, failing closed.

use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context};
use firmware_config::{Tls, TlsMode};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};

use super::reload::{CurrentCert, CurrentVerifier, Reloader};

/// Each port's TLS configuration; `None` serves plain text.
#[derive(Clone, Debug, Default)]
pub struct PortsTls {
    /// The RESP port.
    pub resp: Option<Arc<ServerConfig>>,
    /// The native protocol port.
    pub native: Option<Arc<ServerConfig>>,
    /// The admin HTTP port.
    pub admin: Option<Arc<ServerConfig>>,
    /// Reads the files again into every configuration above; `None` when
    /// no port serves TLS.
    pub reloader: Option<Arc<Reloader>>,
}

/// Reads the files `[tls]` names and builds each port's configuration:
/// TLS 1.3 only, and for `mtls` ports a verifier that requires a client
/// certificate chaining to `client_ca_file` and not revoked by
/// `client_crl_file`. Any file that is missing, unreadable or does not
/// parse, or a key that does not match the certificate, is an error that
/// names its key. Nothing is read when every port is `off` and `enabled`
/// is false.
pub fn load(tls: &Tls) -> anyhow::Result<PortsTls> {
    let modes = [tls.resp, tls.native, tls.admin];
    if !tls.enabled && modes.iter().all(|&m| m == TlsMode::Off) {
        return Ok(PortsTls::default());
    }
    let provider = Arc::new(ring_provider());
    let cert = CurrentCert::new(certified_key(tls, &provider)?);
    let builder = || {
        ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .context("the ring provider offers no TLS 1.3 cipher suite")
    };
    let server_only = Arc::new(
        builder()?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(&cert) as Arc<dyn ResolvesServerCert>),
    );
    let verifier = if modes.contains(&TlsMode::Mutual) {
        Some(CurrentVerifier::new(client_verifier(tls, &provider)?))
    } else {
        None
    };
    let mutual = match &verifier {
        Some(verifier) => {
            let mut config = builder()?
                .with_client_cert_verifier(Arc::clone(verifier) as Arc<dyn ClientCertVerifier>)
                .with_cert_resolver(Arc::clone(&cert) as Arc<dyn ResolvesServerCert>);
            // No session resumption: a resumed session skips the client
            // certificate's verification, so a certificate revoked (or a
            // CA dropped) since would keep getting in.
            config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
            config.send_tls13_tickets = 0;
            Some(Arc::new(config))
        }
        None => None,
    };
    let reloader = Arc::new(Reloader {
        tls: tls.clone(),
        provider: Arc::clone(&provider),
        cert,
        verifier,
    });
    let pick = |mode: TlsMode| match mode {
        TlsMode::Off => None,
        TlsMode::Tls => Some(Arc::clone(&server_only)),
        TlsMode::Mutual => mutual.clone(),
    };
    Ok(PortsTls {
        resp: pick(tls.resp),
        native: pick(tls.native),
        admin: pick(tls.admin),
        reloader: Some(reloader),
    })
}

/// The server's certificate chain and key, checked to match.
pub(super) fn certified_key(
    tls: &Tls,
    provider: &Arc<CryptoProvider>,
) -> anyhow::Result<CertifiedKey> {
    let chain = certificates("cert_file", &tls.cert_file)?;
    let key = private_key("key_file", &tls.key_file)?;
    CertifiedKey::from_der(chain, key, provider).map_err(|e| {
        anyhow!(
            "[tls] key_file = {:?} cannot serve cert_file = {:?}: {e}",
            tls.key_file.as_str(),
            tls.cert_file.as_str()
        )
    })
}

/// rustls's ring provider: X25519, P-256 and P-384 key exchange with
/// AES-GCM and ChaCha20-Poly1305. rustls deprecates it for lacking
/// post-quantum key exchange (X25519MLKEM768, in its aws-lc provider); we
/// keep ring because it builds with the C compiler alone, where aws-lc-sys
/// is a much larger build. `docs/security.md` says so.
#[expect(
    deprecated,
    reason = "ring lacks post-quantum key exchange; chosen for its lean build, see above"
)]
pub fn ring_provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

pub(super) fn client_verifier(
    tls: &Tls,
    provider: &Arc<CryptoProvider>,
) -> anyhow::Result<Arc<dyn ClientCertVerifier>> {
    let mut roots = RootCertStore::empty();
    for certificate in certificates("client_ca_file", &tls.client_ca_file)? {
        roots.add(certificate).map_err(|e| {
            anyhow!(
                "[tls] client_ca_file = {:?}: not a CA certificate rustls accepts: {e}",
                tls.client_ca_file.as_str()
            )
        })?;
    }
    let crls = if tls.client_crl_file.is_empty() {
        Vec::new()
    } else {
        revocation_lists("client_crl_file", &tls.client_crl_file)?
    };
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(provider))
        .with_crls(crls)
        .build()
        .map_err(|e| {
            anyhow!(
                "[tls] client_ca_file = {:?} with client_crl_file = {:?}: {e}",
                tls.client_ca_file.as_str(),
                tls.client_crl_file.as_str()
            )
        })
}

/// The file's bytes, or an error naming the key and the path.
fn read(key: &str, path: &str) -> anyhow::Result<Vec<u8>> {
    if path.is_empty() {
        // The parser refuses this; checked again so no caller can skip it.
        bail!("[tls] {key} is required but not given");
    }
    std::fs::read(Path::new(path)).map_err(|e| anyhow!("[tls] {key} = {path:?}: cannot read: {e}"))
}

fn certificates(key: &str, path: &str) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let bytes = read(key, path)?;
    let chain = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow!("[tls] {key} = {path:?}: not PEM certificates: {e}"))?;
    if chain.is_empty() {
        bail!("[tls] {key} = {path:?}: holds no PEM certificate (\"BEGIN CERTIFICATE\")");
    }
    Ok(chain)
}

fn private_key(key: &str, path: &str) -> anyhow::Result<PrivateKeyDer<'static>> {
    let bytes = read(key, path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| {
        anyhow!("[tls] {key} = {path:?}: no PEM private key (PKCS#8, PKCS#1 or SEC1) in it: {e}")
    })
}

fn revocation_lists(
    key: &str,
    path: &str,
) -> anyhow::Result<Vec<CertificateRevocationListDer<'static>>> {
    let bytes = read(key, path)?;
    let lists = CertificateRevocationListDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow!("[tls] {key} = {path:?}: not PEM revocation lists: {e}"))?;
    if lists.is_empty() {
        bail!("[tls] {key} = {path:?}: holds no PEM revocation list (\"BEGIN X509 CRL\")");
    }
    Ok(lists)
}
