//! TLS client settings for `https://` probes (the http probe and the NATS
//! monitor URL): rustls with the ring provider, as redis (`rediss://`) and
//! async-nats use it, trusting the system's roots and, when given, the CA
//! certificates of a PEM file (a stack's own CA).

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

/// The client settings with the system's roots plus every certificate in
/// `ca_file` (PEM).
pub(crate) fn with_ca_file(ca_file: &Path) -> Result<Arc<ClientConfig>, String> {
    build(Some(ca_file))
}

fn build(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for e in &native.errors {
        tracing::debug!(error = %e, "tls: a system certificate could not be read");
    }
    let (added, _ignored) = roots.add_parsable_certificates(native.certs);
    tracing::debug!(added, "tls: system roots loaded");
    if let Some(path) = ca_file {
        let mut found = 0;
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| format!("cannot read CA file {}: {e}", path.display()))?;
        for cert in certs {
            let cert = cert.map_err(|e| format!("CA file {}: {e}", path.display()))?;
            roots
                .add(cert)
                .map_err(|e| format!("CA file {}: {e}", path.display()))?;
            found += 1;
        }
        if found == 0 {
            return Err(format!(
                "CA file {} holds no PEM certificate",
                path.display()
            ));
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
