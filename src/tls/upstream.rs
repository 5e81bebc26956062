//! The TLS client configuration towards upstreams: the webpki roots plus any operator-given roots
//! (`--upstream-ca`). Certificates are always verified; there is deliberately no switch to stop it.

use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum UpstreamTlsError {
    #[error("{path}: cannot read upstream CA bundle: {message}")]
    Read { path: PathBuf, message: String },
    #[error("{path}: holds no PEM certificate")]
    Empty { path: PathBuf },
    #[error("{path}: certificate rejected as a trust anchor: {source}")]
    BadRoot {
        path: PathBuf,
        source: rustls::Error,
    },
    #[error("TLS configuration failed: {0}")]
    Tls(#[from] rustls::Error),
}

/// Builds the verified client configuration; `extra_roots` are PEM bundles trusted on top of the
/// webpki roots. ALPN is set by the connector that uses it.
pub fn client_config(extra_roots: &[PathBuf]) -> Result<ClientConfig, UpstreamTlsError> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for path in extra_roots {
        for cert in read_bundle(path)? {
            roots
                .add(cert)
                .map_err(|source| UpstreamTlsError::BadRoot {
                    path: path.clone(),
                    source,
                })?;
        }
    }
    Ok(ClientConfig::builder_with_provider(super::provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

fn read_bundle(path: &Path) -> Result<Vec<CertificateDer<'static>>, UpstreamTlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| UpstreamTlsError::Read {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(UpstreamTlsError::Empty {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_bundle_is_rejected_with_its_path() {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), "not a certificate\n").unwrap();
        let err = client_config(&[file.path().to_owned()])
            .unwrap_err()
            .to_string();
        assert!(err.contains(&file.path().display().to_string()), "{err}");
    }

    #[test]
    fn missing_bundle_is_rejected() {
        assert!(client_config(&[PathBuf::from("/nonexistent/ca.pem")]).is_err());
    }
}
