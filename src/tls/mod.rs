//! TLS on both sides of the proxy: the root CA and the leaves it issues towards clients
//! ([`ca`]), and the verified client configuration towards upstreams ([`upstream`]).

pub mod ca;
pub mod upstream;

use rustls::crypto::CryptoProvider;
use std::sync::Arc;

/// The crypto provider every TLS configuration of Tollgate uses (ring).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Installs ring as rustls' process-wide default. Dependencies compile in aws-lc-rs too, and
/// rustls refuses to guess between two providers; call this before any TLS is set up.
pub fn install_default_provider() {
    // An error means a provider is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
