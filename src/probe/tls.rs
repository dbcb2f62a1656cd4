//! TLS client settings for `https://` probes (the http probe and the NATS
//! monitor URL): rustls with the ring provider, as redis (`rediss://`) and
//! async-nats use it, trusting the system's roots or, when given, the CA
//! certificates of a PEM file instead (a stack's own CA).

use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};

/// The client settings for `https://` with the system's roots only (loaded
/// once per process: reading the system store takes milliseconds).
pub(crate) fn system_roots() -> Result<Arc<ClientConfig>, String> {
    static CONFIG: OnceLock<Result<Arc<ClientConfig>, String>> = OnceLock::new();
    CONFIG.get_or_init(|| build(None)).clone()
}

/// The client settings trusting exactly the certificates in `ca_file` (PEM),
/// as `curl --cacert` and `redis-cli --cacert` do.
pub(crate) fn with_ca_file(ca_file: &Path) -> Result<Arc<ClientConfig>, String> {
    build(Some(ca_file))
}

/// The PEM text of a CA file, checked to hold at least one certificate (for
/// clients that take PEM bytes themselves, like redis's).
pub(crate) fn read_ca_file(ca_file: &Path) -> Result<Vec<u8>, String> {
    let pem = std::fs::read(ca_file)
        .map_err(|e| format!("cannot read CA file {}: {e}", ca_file.display()))?;
    let mut found = 0;
    for cert in CertificateDer::pem_slice_iter(&pem) {
        cert.map_err(|e| format!("CA file {}: {e}", ca_file.display()))?;
        found += 1;
    }
    if found == 0 {
        return Err(format!(
            "CA file {} holds no PEM certificate",
            ca_file.display()
        ));
    }
    Ok(pem)
}

fn build(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    if ca_file.is_none() {
        let native = rustls_native_certs::load_native_certs();
        for e in &native.errors {
            tracing::debug!(error = %e, "tls: a system certificate could not be read");
        }
        let (added, _ignored) = roots.add_parsable_certificates(native.certs);
        tracing::debug!(added, "tls: system roots loaded");
    }
    if let Some(path) = ca_file {
        let pem = read_ca_file(path)?;
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| format!("CA file {}: {e}", path.display()))?;
            roots
                .add(cert)
                .map_err(|e| format!("CA file {}: {e}", path.display()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
