//! Test certificates, made fresh by rcgen for each test run: a CA that the
//! server trusts for client certificates, the server's certificate, client
//! certificates good and bad, a second CA nobody trusts, and a CRL. Nothing
//! here is committed or reused.

use std::path::{Path, PathBuf};

use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    RevokedCertParams, SerialNumber,
};

/// A certificate and its key, as PEM files.
pub struct Identity {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Every file a TLS test needs, in one directory.
pub struct Pki {
    /// The CA that signs the server's and the good clients' certificates.
    pub ca: PathBuf,
    pub server: Identity,
    /// Signed by `ca`, for client authentication, valid now.
    pub client: Identity,
    /// Signed by a CA the server does not trust.
    pub untrusted: Identity,
    /// Signed by `ca`, but expired in 2001.
    pub expired: Identity,
    /// Signed by `ca`, but for server authentication only.
    pub server_usage_only: Identity,
    /// Signed by `ca`, then revoked in `crl`.
    pub revoked: Identity,
    /// `ca`'s revocation list naming `revoked`.
    pub crl: PathBuf,
    /// `ca`'s revocation list naming no certificate.
    pub crl_empty: PathBuf,
}

const REVOKED_SERIAL: u64 = 0x5EC15;

fn ca_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.distinguished_name.push(DnType::CommonName, name);
    params
}

fn leaf_params(name: &str, usage: ExtendedKeyUsagePurpose) -> CertificateParams {
    let mut params = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.extended_key_usages = vec![usage];
    params
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn issue(
    dir: &Path,
    name: &str,
    params: &CertificateParams,
    issuer: &Issuer<'_, KeyPair>,
) -> Identity {
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, issuer).unwrap();
    Identity {
        cert: write(dir, &format!("{name}.pem"), &cert.pem()),
        key: write(dir, &format!("{name}.key"), &key.serialize_pem()),
    }
}

impl Pki {
    pub fn new(dir: &Path) -> Pki {
        use ExtendedKeyUsagePurpose::{ClientAuth, ServerAuth};
        let ca_key = KeyPair::generate().unwrap();
        let params = ca_params("veltrix test CA");
        let ca_cert = params.self_signed(&ca_key).unwrap();
        let ca = write(dir, "ca.pem", &ca_cert.pem());
        let issuer = Issuer::new(params, ca_key);

        let other_key = KeyPair::generate().unwrap();
        let other = Issuer::new(ca_params("someone else's CA"), other_key);

        let mut expired = leaf_params("expired client", ClientAuth);
        expired.not_before = date_time_ymd(2000, 1, 1);
        expired.not_after = date_time_ymd(2001, 1, 1);
        let mut revoked = leaf_params("revoked client", ClientAuth);
        revoked.serial_number = Some(SerialNumber::from(REVOKED_SERIAL));

        let crl_naming = |revoked_certs: Vec<RevokedCertParams>| {
            CertificateRevocationListParams {
                this_update: date_time_ymd(2020, 1, 1),
                next_update: date_time_ymd(4000, 1, 1),
                crl_number: SerialNumber::from(1_u64),
                issuing_distribution_point: None,
                revoked_certs,
                key_identifier_method: KeyIdMethod::Sha256,
            }
            .signed_by(&issuer)
            .unwrap()
        };
        let crl = crl_naming(vec![RevokedCertParams {
            serial_number: SerialNumber::from(REVOKED_SERIAL),
            revocation_time: date_time_ymd(2024, 1, 1),
            reason_code: None,
            invalidity_date: None,
        }]);
        let crl_empty = crl_naming(Vec::new());

        Pki {
            ca,
            server: issue(dir, "server", &leaf_params("veltrixd", ServerAuth), &issuer),
            client: issue(dir, "client", &leaf_params("client", ClientAuth), &issuer),
            untrusted: issue(
                dir,
                "untrusted",
                &leaf_params("stranger", ClientAuth),
                &other,
            ),
            expired: issue(dir, "expired", &expired, &issuer),
            server_usage_only: issue(
                dir,
                "server-usage",
                &leaf_params("not a client", ServerAuth),
                &issuer,
            ),
            revoked: issue(dir, "revoked", &revoked, &issuer),
            crl: write(dir, "ca.crl", &crl.pem().unwrap()),
            crl_empty: write(dir, "ca-empty.crl", &crl_empty.pem().unwrap()),
        }
    }
}
