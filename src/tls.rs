//! TLS client settings for `https://` probes (the http probe and the NATS
//! monitor URL) and webhooks, a leaf so that both can use it: rustls with the ring provider, as redis (`rediss://`) and
//! async-nats use it, trusting the system's roots or, when given, the CA
//! certificates of a PEM file instead (a stack's own CA), and presenting a
//! client certificate when the probe names one (mutual TLS).

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

/// A client certificate (chain) and its private key, read from a probe's
/// `cert_file` and `key_file`: for servers that ask the client for one
/// (Redis's default `tls-auth-clients yes`, nats-server's `verify: true`,
/// an HTTPS endpoint behind mTLS).
#[derive(Clone)]
pub(crate) struct ClientIdentity {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

impl ClientIdentity {
    /// From a probe's `cert_file` and `key_file`: both or neither; the files
    /// must hold a PEM certificate and a PEM private key. An error names the
    /// field it is about.
    pub(crate) fn from_fields(
        cert_file: Option<&str>,
        key_file: Option<&str>,
    ) -> Result<Option<ClientIdentity>, (&'static str, String)> {
        let (cert_file, key_file) = match (cert_file, key_file) {
            (None, None) => return Ok(None),
            (Some(_), None) => {
                return Err((
                    "key_file",
                    "cert_file needs key_file (the certificate's private key, PEM)".into(),
                ))
            }
            (None, Some(_)) => {
                return Err((
                    "cert_file",
                    "key_file needs cert_file (the client certificate, PEM)".into(),
                ))
            }
            (Some(c), Some(k)) => (Path::new(c), Path::new(k)),
        };
        let cert_pem = std::fs::read(cert_file).map_err(|e| {
            (
                "cert_file",
                format!("cannot read certificate file {}: {e}", cert_file.display()),
            )
        })?;
        certificates(&cert_pem, cert_file).map_err(|e| ("cert_file", e))?;
        let key_pem = std::fs::read(key_file).map_err(|e| {
            (
                "key_file",
                format!("cannot read key file {}: {e}", key_file.display()),
            )
        })?;
        private_key(&key_pem, key_file).map_err(|e| ("key_file", e))?;
        Ok(Some(ClientIdentity {
            cert_file: cert_file.to_path_buf(),
            key_file: key_file.to_path_buf(),
            cert_pem,
            key_pem,
        }))
    }

    /// For a pool key: probes share a connection only with the same identity.
    pub(crate) fn key(&self) -> String {
        format!("{}+{}", self.cert_file.display(), self.key_file.display())
    }
}

/// The certificates of a PEM file, at least one.
fn certificates(pem: &[u8], path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no PEM certificate", path.display()));
    }
    Ok(certs)
}

fn private_key(pem: &[u8], path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_slice(pem)
        .map_err(|e| format!("{} holds no PEM private key: {e}", path.display()))
}

/// The client settings for `https://`: trusting the system's roots, or
/// exactly the certificates in `ca_file` (PEM, as `curl --cacert`), and
/// presenting `identity` when given. The common case (system roots, no
/// client certificate) is built once per process: reading the system store
/// takes milliseconds. An error names the field it is about.
pub(crate) fn client_config(
    ca_file: Option<&Path>,
    identity: Option<&ClientIdentity>,
) -> Result<Arc<ClientConfig>, (&'static str, String)> {
    if ca_file.is_none() && identity.is_none() {
        static CONFIG: OnceLock<Result<Arc<ClientConfig>, String>> = OnceLock::new();
        return CONFIG
            .get_or_init(|| build(None, None).map_err(|(_, e)| e))
            .clone()
            .map_err(|e| ("url", e));
    }
    build(ca_file, identity)
}

/// Why a TLS handshake failed.
pub(crate) struct HandshakeError {
    /// `TLS handshake with host:port failed: …` (or a bad server name).
    pub text: String,
    /// The server's certificate was refused (unknown issuer, wrong name,
    /// expired): it will be the same on the next try.
    pub certificate_refused: bool,
}

/// TLS over `stream` to `host` (the name the certificate must carry);
/// `authority` (`host:port`) names the server in errors.
pub(crate) async fn handshake(
    config: &Arc<ClientConfig>,
    host: &str,
    authority: &str,
    stream: tokio::net::TcpStream,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, HandshakeError> {
    let name =
        rustls::pki_types::ServerName::try_from(host.to_string()).map_err(|e| HandshakeError {
            text: format!("TLS: bad server name {host:?}: {e}"),
            certificate_refused: false,
        })?;
    tokio_rustls::TlsConnector::from(config.clone())
        .connect(name, stream)
        .await
        .map_err(|e| HandshakeError {
            certificate_refused: e
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                .is_some_and(|tls| matches!(tls, rustls::Error::InvalidCertificate(_))),
            text: format!("TLS handshake with {authority} failed: {e}"),
        })
}

/// The PEM text of a CA file, checked to hold at least one certificate (for
/// clients that take PEM bytes themselves, like redis's).
pub(crate) fn read_ca_file(ca_file: &Path) -> Result<Vec<u8>, String> {
    read_ca(ca_file).map(|(pem, _)| pem)
}

/// A CA file's PEM text and its certificates (at least one).
fn read_ca(ca_file: &Path) -> Result<(Vec<u8>, Vec<CertificateDer<'static>>), String> {
    let pem = std::fs::read(ca_file)
        .map_err(|e| format!("cannot read CA file {}: {e}", ca_file.display()))?;
    let certs = certificates(&pem, ca_file).map_err(|e| format!("CA file {e}"))?;
    Ok((pem, certs))
}

fn build(
    ca_file: Option<&Path>,
    identity: Option<&ClientIdentity>,
) -> Result<Arc<ClientConfig>, (&'static str, String)> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        None => {
            let native = rustls_native_certs::load_native_certs();
            for e in &native.errors {
                tracing::debug!(error = %e, "tls: a system certificate could not be read");
            }
            let (added, _ignored) = roots.add_parsable_certificates(native.certs);
            tracing::debug!(added, "tls: system roots loaded");
        }
        Some(path) => {
            let (_, certs) = read_ca(path).map_err(|e| ("ca_file", e))?;
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| ("ca_file", format!("CA file {}: {e}", path.display())))?;
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ("url", format!("TLS setup: {e}")))?
        .with_root_certificates(roots);
    let mut config = match identity {
        None => builder.with_no_client_auth(),
        Some(id) => {
            let chain = certificates(&id.cert_pem, &id.cert_file).map_err(|e| ("cert_file", e))?;
            let key = private_key(&id.key_pem, &id.key_file).map_err(|e| ("key_file", e))?;
            builder.with_client_auth_cert(chain, key).map_err(|e| {
                (
                    "key_file",
                    format!(
                        "{} does not go with {}: {e}",
                        id.key_file.display(),
                        id.cert_file.display()
                    ),
                )
            })?
        }
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
