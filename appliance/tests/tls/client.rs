//! A rustls client for the tests: RESP and native-protocol calls over TLS,
//! returning errors instead of panicking, so a refusal can be asserted.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use appliance::resp::{encode, parse_reply, Reply};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use crate::pki::Identity;

#[expect(
    deprecated,
    reason = "the daemon uses ring too (see appliance/src/tls/load.rs)"
)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client that trusts `ca` for the server and presents `identity`, if any.
pub fn config(ca: &Path, identity: Option<&Identity>) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots);
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some(id) => {
            let chain = CertificateDer::pem_file_iter(&id.cert)
                .unwrap()
                .map(Result::unwrap)
                .collect();
            let key = PrivateKeyDer::from_pem_file(&id.key).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
    };
    Arc::new(config)
}

pub type Stream = StreamOwned<ClientConnection, TcpStream>;

pub fn connect(port: u16, config: &Arc<ClientConfig>) -> Stream {
    let socket = TcpStream::connect(("127.0.0.1", port)).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let connection = ClientConnection::new(Arc::clone(config), name).unwrap();
    StreamOwned::new(connection, socket)
}

/// One RESP command and its reply; any TLS or socket error, or the server
/// closing, is an `Err`.
pub fn call(stream: &mut Stream, args: &[&[u8]]) -> io::Result<Reply> {
    let mut out = Vec::new();
    encode::command(&mut out, args);
    stream.write_all(&out)?;
    stream.flush()?;
    let mut buf = Vec::new();
    loop {
        if let Some((reply, _)) = parse_reply(&buf).map_err(io::Error::other)? {
            return Ok(reply);
        }
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk)? {
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// One HTTP/1.0 GET over TLS: the whole response (head and body).
pub fn https_get(port: u16, config: &Arc<ClientConfig>, path: &str) -> io::Result<String> {
    let mut stream = connect(port, config);
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
    stream.flush()?;
    let mut response = Vec::new();
    match stream.read_to_end(&mut response) {
        Ok(_) => {}
        // The relay ends with close_notify; a bare close still delimits
        // an HTTP/1.0 response.
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && !response.is_empty() => {}
        Err(e) => return Err(e),
    }
    Ok(String::from_utf8_lossy(&response).into_owned())
}
