//! TLS for the CLI's connections to the admin and native ports
//! (`--cacert`, `--cert`, `--key`): a rustls client configuration, and a
//! connected TLS stream.

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

/// How the CLI speaks TLS to the daemon.
#[derive(Clone, Debug)]
pub struct TlsClient {
    config: Arc<ClientConfig>,
    /// The name the server's certificate must carry; `None`: the address's IP.
    server_name: Option<String>,
}

/// A TLS stream over TCP, as the CLI uses it.
pub type TlsStream = StreamOwned<ClientConnection, TcpStream>;

impl TlsClient {
    /// Trusts the CA bundle `ca` for the server's certificate, and presents
    /// `cert` and `key` when given (mutual TLS). TLS 1.3 only, as the daemon.
    pub fn new(
        ca: &Path,
        identity: Option<(&Path, &Path)>,
        server_name: Option<String>,
    ) -> anyhow::Result<TlsClient> {
        let mut roots = RootCertStore::empty();
        let certs = CertificateDer::pem_file_iter(ca)
            .and_then(Iterator::collect::<Result<Vec<_>, _>>)
            .map_err(|e| anyhow!("--cacert {}: {e}", ca.display()))?;
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| anyhow!("--cacert {}: {e}", ca.display()))?;
        }
        let builder = ClientConfig::builder_with_provider(Arc::new(crate::tls::ring_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .context("the ring provider offers no TLS 1.3 cipher suite")?
            .with_root_certificates(roots);
        let config = match identity {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let chain = CertificateDer::pem_file_iter(cert)
                    .and_then(Iterator::collect::<Result<Vec<_>, _>>)
                    .map_err(|e| anyhow!("--cert {}: {e}", cert.display()))?;
                let key_der = PrivateKeyDer::from_pem_file(key)
                    .map_err(|e| anyhow!("--key {}: {e}", key.display()))?;
                builder
                    .with_client_auth_cert(chain, key_der)
                    .map_err(|e| anyhow!("--cert/--key: {e}"))?
            }
        };
        Ok(TlsClient {
            config: Arc::new(config),
            server_name,
        })
    }

    /// Connects to `addr` and starts the handshake (it completes with the
    /// first read or write).
    pub fn connect(&self, addr: SocketAddr, timeout: Duration) -> anyhow::Result<TlsStream> {
        let name = match &self.server_name {
            Some(name) => {
                ServerName::try_from(name.clone()).map_err(|e| anyhow!("--tls-name {name}: {e}"))?
            }
            None => ServerName::IpAddress(addr.ip().into()),
        };
        let socket = TcpStream::connect_timeout(&addr, timeout)
            .with_context(|| format!("cannot reach {addr}"))?;
        socket.set_read_timeout(Some(Duration::from_secs(120)))?;
        socket.set_write_timeout(Some(timeout))?;
        let _ = socket.set_nodelay(true);
        let connection = ClientConnection::new(Arc::clone(&self.config), name)?;
        Ok(StreamOwned::new(connection, socket))
    }
}
