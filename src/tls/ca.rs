//! Tollgate's root certificate authority (created once, kept in `ca/`), the names it may vouch for
//! ([`NameScope`], written into it as name constraints), and the leaf certificates it issues per
//! intercepted host, cached so a new tunnel to a known host costs no signing.

use crate::policy::hosts::HostPattern;
use crate::providers::Catalog;
use moka::sync::Cache;
use rcgen::{
    BasicConstraints, CertificateParams, CidrSubnet, CustomExtension, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, GeneralSubtree, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    NameConstraints, PublicKeyData, SanType, SerialNumber,
};
use ring::rand::{SecureRandom, SystemRandom};
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::{ProducesTickets, ServerSessionMemoryCache, StoresServerSessions};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;

/// File name of the root certificate (PEM) inside the CA directory.
pub const CERT_FILE: &str = "tollgate-ca.crt";
/// File name of the root's private key (PEM, mode 0600) inside the CA directory.
pub const KEY_FILE: &str = "tollgate-ca.key";

const CA_VALIDITY: time::Duration = time::Duration::days(3650);
const CA_BACKDATE: time::Duration = time::Duration::days(2);
const LEAF_VALIDITY: time::Duration = time::Duration::days(7);
/// Leaves start a day early so clients whose clocks run behind still accept them.
const LEAF_BACKDATE: time::Duration = time::Duration::days(1);
/// A cached leaf is replaced well before it expires.
const LEAF_CACHE_TTL: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a usable {what}: {message}")]
    Parse {
        path: PathBuf,
        what: &'static str,
        message: String,
    },
    #[error(
        "{path} exists but {missing} does not; restore it, or remove both and run `tollgate ca init`"
    )]
    HalfPresent { path: PathBuf, missing: PathBuf },
    /// A CA file or directory other users could read or change (Unix permission bits).
    #[error("{path} has mode {mode:03o}: {problem}; run `chmod {fix} {path}`")]
    UnsafeMode {
        path: PathBuf,
        mode: u32,
        problem: &'static str,
        fix: &'static str,
    },
    /// A host pattern no DNS name constraint can hold.
    #[error(
        "`{0}` cannot be written as a name constraint (an IP address, or no fixed domain after its last `*`); name DNS hosts, or create the CA with `tollgate ca init --unconstrained`"
    )]
    NotConstrainable(String),
    /// Name constraints that would permit nothing, which X.509 reads as permitting every name.
    #[error(
        "the provider catalog names no host for the CA's name constraints; add `--permit DOMAIN`, or create the CA with `tollgate ca init --unconstrained`"
    )]
    NothingToPermit,
    /// A leaf asked for a host the root's name constraints exclude: clients would refuse it.
    #[error(
        "{0} is outside the CA's name constraints, so clients would refuse a leaf for it; add it to the provider catalog and make a new CA (`tollgate ca init`), or make one with --unconstrained"
    )]
    OutsideNameConstraints(String),
    #[error("{0} already holds a CA; remove it first to make a new one")]
    AlreadyExists(PathBuf),
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("TLS configuration failed: {0}")]
    Tls(#[from] rustls::Error),
}

/// The names a root may vouch for, written into it as a critical NameConstraints extension.
///
/// A constrained root is worth less to a thief: clients that honour name constraints (rustls,
/// OpenSSL, Go and the platform verifiers) accept its leaves only for the permitted domains, so a
/// stolen key cannot impersonate a bank to them. The price is that intercepting a host outside them
/// takes a new CA, distributed again to every client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameScope {
    /// No NameConstraints extension: leaves for any name verify.
    Unconstrained,
    /// Leaves only for these DNS domains and the names under them, and never for an IP address.
    Domains(Vec<String>),
}

impl NameScope {
    /// The domains of every host pattern of `catalog`, whatever the provider's mode (policy.yaml
    /// may switch a tunneled provider to intercept without a new CA), and of `permit`. Fails on a
    /// pattern no domain holds (an IP address, `*`), rather than make a root that cannot serve it.
    pub fn for_catalog(catalog: &Catalog, permit: &[HostPattern]) -> Result<Self, CaError> {
        Self::covering(
            catalog
                .host_patterns()
                .map(|(_, pattern)| pattern)
                .chain(permit),
        )
    }

    /// The fewest domains that hold every host of `patterns`.
    pub fn covering<'a>(
        patterns: impl IntoIterator<Item = &'a HostPattern>,
    ) -> Result<Self, CaError> {
        let mut domains = patterns
            .into_iter()
            .map(|p| {
                p.domain()
                    .map(str::to_owned)
                    .ok_or_else(|| CaError::NotConstrainable(p.as_str().to_owned()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        domains.sort();
        domains.dedup();
        // A domain under another adds nothing: `githubcopilot.com` already holds
        // `api.githubcopilot.com`.
        let kept: Vec<String> = domains
            .iter()
            .filter(|d| !domains.iter().any(|other| is_under(d, other)))
            .cloned()
            .collect();
        if kept.is_empty() {
            return Err(CaError::NothingToPermit);
        }
        Ok(Self::Domains(kept))
    }

    /// Whether a leaf for `host` (normalized) is valid under this scope. IP addresses are never
    /// permitted by a constrained root.
    pub fn permits(&self, host: &str) -> bool {
        match self {
            Self::Unconstrained => true,
            Self::Domains(domains) => {
                host.parse::<IpAddr>().is_err()
                    && domains.iter().any(|d| host == d || is_under(host, d))
            }
        }
    }

    /// Whether every host `pattern` matches is permitted.
    pub fn covers(&self, pattern: &HostPattern) -> bool {
        match self {
            Self::Unconstrained => true,
            Self::Domains(_) => pattern.domain().is_some_and(|d| self.permits(d)),
        }
    }

    /// The extension to write, `None` for an unconstrained root. Permitting DNS subtrees alone
    /// would leave IP addresses unconstrained (RFC 5280 constrains only the name forms listed),
    /// so every IPv4 and IPv6 address is excluded outright.
    fn to_extension(&self) -> Option<NameConstraints> {
        let Self::Domains(domains) = self else {
            return None;
        };
        Some(NameConstraints {
            permitted_subtrees: domains
                .iter()
                .map(|d| GeneralSubtree::DnsName(d.clone()))
                .collect(),
            excluded_subtrees: vec![
                GeneralSubtree::IpAddress(CidrSubnet::V4([0; 4], [0; 4])),
                GeneralSubtree::IpAddress(CidrSubnet::V6([0; 16], [0; 16])),
            ],
        })
    }

    /// What a root's NameConstraints extension permits. Only the DNS subtrees are kept: a
    /// constrained root is taken to permit no IP address and nothing outside them, which may be
    /// narrower than the extension says but never wider.
    fn from_certificate(
        cert: &x509_parser::certificate::X509Certificate<'_>,
    ) -> Result<Self, String> {
        use x509_parser::extensions::GeneralName;
        let Some(constraints) = cert.name_constraints().map_err(|e| e.to_string())? else {
            return Ok(Self::Unconstrained);
        };
        let domains = constraints
            .value
            .permitted_subtrees
            .iter()
            .flatten()
            .filter_map(|subtree| match subtree.base {
                GeneralName::DNSName(name) => Some(name.to_ascii_lowercase()),
                _ => None,
            })
            .collect();
        Ok(Self::Domains(domains))
    }
}

impl std::fmt::Display for NameScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unconstrained => f.write_str("any name (no name constraints)"),
            Self::Domains(domains) if domains.is_empty() => f.write_str("no name"),
            Self::Domains(domains) => write!(f, "{} and names under them", domains.join(", ")),
        }
    }
}

/// Whether `name` lies strictly under `domain` (`a.b.example` under `b.example`).
fn is_under(name: &str, domain: &str) -> bool {
    name.len() > domain.len()
        && name.ends_with(domain)
        && name.as_bytes()[name.len() - domain.len() - 1] == b'.'
}

/// The root CA: its certificate and the issuer that signs leaves.
pub struct RootCa {
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
    not_after: OffsetDateTime,
    scope: NameScope,
}

impl RootCa {
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// The names this root may vouch for.
    pub fn scope(&self) -> &NameScope {
        &self.scope
    }

    /// Loads the CA from `dir`, creating it first, limited to the names `scope` gives, if the
    /// directory holds none (`scope` is only asked then). Returns whether it was created.
    pub fn load_or_create<E: From<CaError>>(
        dir: &Path,
        scope: impl FnOnce() -> Result<NameScope, E>,
    ) -> Result<(Self, bool), E> {
        let (cert, key) = paths(dir);
        match (cert.exists(), key.exists()) {
            (true, true) => Ok((Self::load(dir)?, false)),
            (false, false) => Ok((Self::create(dir, &scope()?)?, true)),
            (true, false) => Err(CaError::HalfPresent {
                path: cert,
                missing: key,
            }
            .into()),
            (false, true) => Err(CaError::HalfPresent {
                path: key,
                missing: cert,
            }
            .into()),
        }
    }

    pub fn load(dir: &Path) -> Result<Self, CaError> {
        let (cert_path, key_path) = paths(dir);
        let read = |p: &Path| {
            fs::read_to_string(p).map_err(|source| CaError::Io {
                path: p.to_owned(),
                source,
            })
        };
        check_modes(dir, &cert_path, &key_path)?;
        let cert_pem = read(&cert_path)?;
        let key_pem = read(&key_path)?;
        let key = KeyPair::from_pem(&key_pem).map_err(|e| CaError::Parse {
            path: key_path.clone(),
            what: "private key",
            message: e.to_string(),
        })?;
        let parse_err = |message: String| CaError::Parse {
            path: cert_path.clone(),
            what: "CA certificate",
            message,
        };
        let cert_der = CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .map_err(|e| parse_err(e.to_string()))?;
        let (_, parsed) =
            x509_parser::parse_x509_certificate(&cert_der).map_err(|e| parse_err(e.to_string()))?;
        if parsed.public_key().raw != key.subject_public_key_info().as_slice() {
            return Err(parse_err(format!(
                "it does not belong to the key in {}",
                key_path.display()
            )));
        }
        let not_after = parsed.validity().not_after.to_datetime();
        let scope = NameScope::from_certificate(&parsed).map_err(parse_err)?;
        let issuer =
            Issuer::from_ca_cert_der(&cert_der, key).map_err(|e| parse_err(e.to_string()))?;
        Ok(Self {
            cert_pem,
            cert_der,
            issuer,
            not_after,
            scope,
        })
    }

    /// Creates a new ECDSA P-256 root in `dir` for the names of `scope`; refuses to overwrite an
    /// existing one.
    pub fn create(dir: &Path, scope: &NameScope) -> Result<Self, CaError> {
        let (cert_path, key_path) = paths(dir);
        if cert_path.exists() || key_path.exists() {
            return Err(CaError::AlreadyExists(dir.to_owned()));
        }
        create_private_dir(dir)?;
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let now = OffsetDateTime::now_utc();
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(
            DnType::CommonName,
            format!("Tollgate Root CA {}", now.date()),
        );
        dn.push(DnType::OrganizationName, "Tollgate");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = now - CA_BACKDATE;
        params.not_after = now + CA_VALIDITY;
        params.serial_number = Some(random_serial());
        params.name_constraints = scope.to_extension();
        let cert = params.self_signed(&key)?;

        write_new(&key_path, key.serialize_pem().as_bytes(), KEY_MODE)?;
        write_new(&cert_path, cert.pem().as_bytes(), CERT_MODE)?;
        Ok(Self {
            cert_pem: cert.pem(),
            cert_der: cert.der().clone(),
            issuer: Issuer::new(params.clone(), key),
            not_after: params.not_after,
            scope: scope.clone(),
        })
    }
}

fn paths(dir: &Path) -> (PathBuf, PathBuf) {
    (dir.join(CERT_FILE), dir.join(KEY_FILE))
}

fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system random source works");
    bytes[0] &= 0x7f; // a positive INTEGER
    bytes[0] |= 0x01; // and no leading zero byte to strip
    SerialNumber::from_slice(&bytes)
}

/// The key is the owner's alone; the certificate is public (clients install it). Other private
/// and public files kept in the CA directory (the audit signing key) use the same modes.
pub(crate) const KEY_MODE: u32 = 0o600;
pub(crate) const CERT_MODE: u32 = 0o644;
const DIR_MODE: u32 = 0o700;

/// Creates `dir` owner-only if it does not exist; an existing one must not be writable by others,
/// since whoever can write there can swap the CA before the next start.
pub(crate) fn create_private_dir(dir: &Path) -> Result<(), CaError> {
    let io_err = |source| CaError::Io {
        path: dir.to_owned(),
        source,
    };
    if dir.is_dir() {
        return check_dir_mode(dir);
    }
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, DIR_MODE);
    builder.create(dir).map_err(io_err)?;
    set_mode(dir, DIR_MODE)
}

/// Writes a file that must not exist yet with exactly `mode`, whatever the umask.
pub(crate) fn write_new(path: &Path, contents: &[u8], mode: u32) -> Result<(), CaError> {
    let io_err = |source| CaError::Io {
        path: path.to_owned(),
        source,
    };
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    // The mode at creation keeps the key private from its first byte; the umask can only
    // narrow it, so it is set again below (a public certificate must stay readable).
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    let mut file = options.open(path).map_err(io_err)?;
    set_mode(path, mode)?;
    file.write_all(contents).map_err(io_err)?;
    file.sync_all().map_err(io_err)
}

fn set_mode(path: &Path, mode: u32) -> Result<(), CaError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(|source| {
            CaError::Io {
                path: path.to_owned(),
                source,
            }
        })?;
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
    Ok(())
}

/// Refuses a CA that other users could read (the key) or replace (the directory, the
/// certificate, the key): a proxy that intercepts TLS must not run on a CA it cannot trust.
fn check_modes(dir: &Path, cert: &Path, key: &Path) -> Result<(), CaError> {
    check_dir_mode(dir)?;
    check_mode(
        key,
        0o077,
        "the CA private key is readable or writable by other users",
        "600",
    )?;
    check_mode(
        cert,
        0o022,
        "the CA certificate is writable by other users",
        "go-w",
    )
}

pub(crate) fn check_dir_mode(dir: &Path) -> Result<(), CaError> {
    check_mode(
        dir,
        0o022,
        "the CA directory is writable by other users",
        "go-w",
    )
}

/// Fails when `path` has any of the permission bits in `forbidden`.
pub(crate) fn check_mode(
    path: &Path,
    forbidden: u32,
    problem: &'static str,
    fix: &'static str,
) -> Result<(), CaError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(path)
            .map_err(|source| CaError::Io {
                path: path.to_owned(),
                source,
            })?
            .permissions()
            .mode()
            & 0o7777;
        if mode & forbidden != 0 {
            return Err(CaError::UnsafeMode {
                path: path.to_owned(),
                mode,
                problem,
                fix,
            });
        }
    }
    #[cfg(not(unix))]
    let _ = (path, forbidden, problem, fix);
    Ok(())
}

/// A subjectKeyIdentifier extension for `key`: RFC 7093 method 1, the leftmost 160 bits of the
/// SHA-256 of the public key bits. rcgen writes one only alongside basicConstraints.
fn subject_key_identifier(key: &KeyPair) -> CustomExtension {
    const SUBJECT_KEY_IDENTIFIER: &[u64] = &[2, 5, 29, 14];
    let digest = ring::digest::digest(&ring::digest::SHA256, key.public_key_raw());
    // KeyIdentifier ::= OCTET STRING, 20 bytes long.
    let mut content = vec![0x04, 20];
    content.extend_from_slice(&digest.as_ref()[..20]);
    CustomExtension::from_oid_content(SUBJECT_KEY_IDENTIFIER, content)
}

/// `provider` with its AES-128-GCM/SHA-256 suites first. Clients (rustls, OpenSSL, Node) list
/// AES-256-GCM/SHA-384 first, whose transcript hash and key schedule run SHA-512 in software on
/// most CPUs, where SHA-256 has instructions of its own: a new tunnel's handshake costs less,
/// and AES-128-GCM is no weaker a choice for a connection on the client's own machine or LAN.
fn prefer_sha256_suites(provider: &CryptoProvider) -> CryptoProvider {
    let mut provider = provider.clone();
    provider
        .cipher_suites
        .sort_by_key(|suite| !is_aes128_sha256(suite.suite()));
    provider
}

fn is_aes128_sha256(suite: rustls::CipherSuite) -> bool {
    use rustls::CipherSuite::*;
    matches!(
        suite,
        TLS13_AES_128_GCM_SHA256
            | TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
            | TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
    )
}

/// Issues and caches one TLS server configuration per intercepted host.
///
/// Every leaf is signed by the root directly (clients get no chain to assemble) and shares one
/// P-256 key made at start-up, distinct from the root's key. The configurations share a session
/// cache and a ticketer, so a client that opens a new tunnel per request can resume TLS.
pub struct LeafIssuer {
    issuer: Issuer<'static, KeyPair>,
    ca_not_after: OffsetDateTime,
    /// The root's name constraints: no leaf is signed for a host outside them.
    scope: NameScope,
    leaf_key: KeyPair,
    /// The leaves' subjectKeyIdentifier extension, the same for all since they share one key.
    leaf_key_id: CustomExtension,
    cache: Cache<String, Arc<ServerConfig>>,
    provider: Arc<CryptoProvider>,
    sessions: Arc<dyn StoresServerSessions>,
    ticketer: Arc<dyn ProducesTickets>,
}

impl LeafIssuer {
    pub fn new(
        ca: RootCa,
        cache_size: u64,
        provider: Arc<CryptoProvider>,
    ) -> Result<Self, CaError> {
        let leaf_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        Ok(Self {
            issuer: ca.issuer,
            ca_not_after: ca.not_after,
            scope: ca.scope,
            leaf_key_id: subject_key_identifier(&leaf_key),
            leaf_key,
            cache: Cache::builder()
                .max_capacity(cache_size)
                .time_to_live(LEAF_CACHE_TTL)
                .build(),
            provider: Arc::new(prefer_sha256_suites(&provider)),
            sessions: ServerSessionMemoryCache::new(4096),
            ticketer: rustls::crypto::ring::Ticketer::new()?,
        })
    }

    /// The server configuration for `host` (a DNS name or an IP literal), issued on first use.
    pub fn server_config(&self, host: &str) -> Arc<ServerConfig> {
        let host = crate::policy::hosts::normalize_host(host);
        self.cache.get_with_by_ref(&host, || match self.build(&host) {
            Ok(config) => Arc::new(config),
            Err(error) => {
                tracing::error!(%host, %error, "cannot issue a leaf certificate; the handshake will fail");
                Arc::new(self.refusing_config())
            }
        })
    }

    /// Signs a fresh leaf for `host`, bypassing the cache (what a cache miss costs). A host
    /// outside the root's name constraints gets an error, not a leaf clients would refuse.
    pub fn issue(&self, host: &str) -> Result<CertificateDer<'static>, CaError> {
        let host = crate::policy::hosts::normalize_host(host);
        let host = host.as_str();
        if !self.scope.permits(host) {
            return Err(CaError::OutsideNameConstraints(host.to_owned()));
        }
        let mut params = CertificateParams::default();
        let san = match host.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(host.try_into()?),
        };
        params.subject_alt_names = vec![san];
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, host);
        dn.push(DnType::OrganizationName, "Tollgate");
        params.distinguished_name = dn;
        // No basicConstraints at all: rcgen's `ExplicitNoCa` spells out `cA FALSE`, a DEFAULT
        // value DER forbids encoding, and strict parsers (pyca/cryptography) refuse the leaf.
        // Without the extension a certificate is not a CA, which is what a leaf must say.
        params.is_ca = IsCa::NoCa;
        params.custom_extensions = vec![self.leaf_key_id.clone()];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let now = OffsetDateTime::now_utc();
        params.not_before = now - LEAF_BACKDATE;
        params.not_after = (now + LEAF_VALIDITY).min(self.ca_not_after);
        params.serial_number = Some(random_serial());
        Ok(params
            .signed_by(&self.leaf_key, &self.issuer)?
            .der()
            .clone())
    }

    fn build(&self, host: &str) -> Result<ServerConfig, CaError> {
        let cert = self.issue(host)?;
        let key = PrivateKeyDer::from(PrivatePkcs8KeyDer::from(self.leaf_key.serialize_der()));
        let mut config = ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        // The leaves' suites in their order (AES-128-GCM with SHA-256 first), not the client's.
        config.ignore_client_order = true;
        config.session_storage = self.sessions.clone();
        config.ticketer = self.ticketer.clone();
        Ok(config)
    }

    fn refusing_config(&self) -> ServerConfig {
        #[derive(Debug)]
        struct NoCertificate;
        impl rustls::server::ResolvesServerCert for NoCertificate {
            fn resolve(
                &self,
                _: rustls::server::ClientHello<'_>,
            ) -> Option<Arc<rustls::sign::CertifiedKey>> {
                None
            }
        }
        ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .expect("the provider supports the default protocol versions")
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(NoCertificate))
    }
}

impl hudsucker::certificate_authority::CertificateAuthority for LeafIssuer {
    async fn gen_server_config(&self, authority: &http::uri::Authority) -> Arc<ServerConfig> {
        self.server_config(authority.host())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::prelude::*;

    /// What `ca init` makes by default: the embedded catalog's domains.
    fn catalog_scope() -> NameScope {
        let catalog = Catalog::parse(&crate::source::Source::embedded_catalog()).unwrap();
        NameScope::for_catalog(&catalog, &[]).unwrap()
    }

    fn issuer_with(dir: &Path, scope: NameScope) -> LeafIssuer {
        let (ca, _) = RootCa::load_or_create(dir, || Ok::<_, CaError>(scope)).unwrap();
        LeafIssuer::new(ca, 100, crate::tls::provider()).unwrap()
    }

    fn issuer(dir: &Path) -> LeafIssuer {
        issuer_with(dir, catalog_scope())
    }

    #[test]
    fn creates_once_then_loads_the_same_ca() {
        let dir = tempfile::tempdir().unwrap();
        let (first, created) =
            RootCa::load_or_create(dir.path(), || Ok::<_, CaError>(catalog_scope())).unwrap();
        assert!(created);
        let (second, created) =
            RootCa::load_or_create(dir.path(), || Ok::<_, CaError>(catalog_scope())).unwrap();
        assert!(!created);
        assert_eq!(first.cert_der(), second.cert_der());
        assert!(matches!(
            RootCa::create(dir.path(), &NameScope::Unconstrained),
            Err(CaError::AlreadyExists(_))
        ));
    }

    #[cfg(unix)]
    fn mode_of(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[cfg(unix)]
    fn chmod(path: &Path, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn created_ca_has_an_owner_only_key_and_directory_and_a_public_certificate() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("state").join("ca");
        RootCa::create(&dir, &NameScope::Unconstrained).unwrap();
        assert_eq!(mode_of(&dir), 0o700);
        assert_eq!(mode_of(&dir.join(KEY_FILE)), 0o600);
        assert_eq!(mode_of(&dir.join(CERT_FILE)), 0o644);
    }

    #[cfg(unix)]
    #[test]
    fn key_readable_by_others_is_refused_naming_the_file_and_mode() {
        let dir = tempfile::tempdir().unwrap();
        RootCa::create(dir.path(), &NameScope::Unconstrained).unwrap();
        let key = dir.path().join(KEY_FILE);
        chmod(&key, 0o644);
        let err = RootCa::load(dir.path()).err().unwrap();
        assert!(
            matches!(&err, CaError::UnsafeMode { path, mode: 0o644, .. } if *path == key),
            "{err}"
        );
        let message = err.to_string();
        assert!(
            message.contains(&key.display().to_string()) && message.contains("644"),
            "{message}"
        );
        // Group-writable is as bad as world-readable; load_or_create refuses the same way.
        chmod(&key, 0o620);
        assert!(matches!(
            RootCa::load_or_create(dir.path(), || Ok::<_, CaError>(NameScope::Unconstrained)),
            Err(CaError::UnsafeMode { mode: 0o620, .. })
        ));
        chmod(&key, 0o400);
        RootCa::load(dir.path()).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn ca_directory_writable_by_others_is_refused() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("ca");
        RootCa::create(&dir, &NameScope::Unconstrained).unwrap();
        chmod(&dir, 0o777);
        let err = RootCa::load(&dir).err().unwrap();
        assert!(
            matches!(&err, CaError::UnsafeMode { path, mode: 0o777, .. } if *path == dir),
            "{err}"
        );
        assert!(err.to_string().contains("777"), "{err}");
        // Nor is a new CA written into such a directory.
        let open = parent.path().join("open");
        fs::create_dir(&open).unwrap();
        chmod(&open, 0o757);
        assert!(matches!(
            RootCa::create(&open, &NameScope::Unconstrained),
            Err(CaError::UnsafeMode { mode: 0o757, .. })
        ));
        assert!(!open.join(KEY_FILE).exists());
    }

    #[cfg(unix)]
    #[test]
    fn certificate_writable_by_others_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        RootCa::create(dir.path(), &NameScope::Unconstrained).unwrap();
        chmod(&dir.path().join(CERT_FILE), 0o666);
        assert!(matches!(
            RootCa::load(dir.path()),
            Err(CaError::UnsafeMode { mode: 0o666, .. })
        ));
    }

    #[test]
    fn half_present_ca_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        RootCa::create(dir.path(), &NameScope::Unconstrained).unwrap();
        fs::remove_file(dir.path().join(KEY_FILE)).unwrap();
        assert!(matches!(
            RootCa::load_or_create(dir.path(), || Ok::<_, CaError>(catalog_scope())),
            Err(CaError::HalfPresent { .. })
        ));
    }

    #[test]
    fn root_is_a_constrained_ca_with_key_usages() {
        let dir = tempfile::tempdir().unwrap();
        let ca = RootCa::create(dir.path(), &catalog_scope()).unwrap();
        assert_strict_der(ca.cert_der());
        let (_, cert) = parse_x509_certificate(ca.cert_der()).unwrap();
        let bc = cert.basic_constraints().unwrap().unwrap();
        assert!(bc.critical && bc.value.ca);
        let ku = cert.key_usage().unwrap().unwrap();
        assert!(ku.value.key_cert_sign() && ku.value.crl_sign());
        assert!(
            cert.get_extension_unique(
                &x509_parser::oid_registry::OID_X509_EXT_SUBJECT_KEY_IDENTIFIER
            )
            .unwrap()
            .is_some()
        );
    }

    #[test]
    fn leaf_has_san_aki_ski_eku_and_backdated_validity() {
        let dir = tempfile::tempdir().unwrap();
        let leaves = issuer(dir.path());
        let der = leaves.issue("api.openai.com").unwrap();
        let (_, cert) = parse_x509_certificate(&der).unwrap();
        let san = cert.subject_alternative_name().unwrap().unwrap();
        assert_eq!(
            san.value.general_names,
            vec![GeneralName::DNSName("api.openai.com")]
        );
        assert!(
            cert.get_extension_unique(
                &x509_parser::oid_registry::OID_X509_EXT_AUTHORITY_KEY_IDENTIFIER
            )
            .unwrap()
            .is_some()
        );
        assert!(
            cert.get_extension_unique(
                &x509_parser::oid_registry::OID_X509_EXT_SUBJECT_KEY_IDENTIFIER
            )
            .unwrap()
            .is_some()
        );
        assert!(
            cert.extended_key_usage()
                .unwrap()
                .unwrap()
                .value
                .server_auth
        );
        assert!(cert.basic_constraints().unwrap().is_none());
        let not_before = cert.validity().not_before.to_datetime();
        assert!(not_before < OffsetDateTime::now_utc() - ::time::Duration::hours(12));
    }

    /// Parses `der` strictly: the whole input is one certificate, every extension is one the
    /// parser knows and parses cleanly, and basicConstraints (if any) does not spell out the
    /// DEFAULT `cA FALSE` (DER forbids it: `30 03 01 01 00`).
    fn assert_strict_der(der: &[u8]) {
        use x509_parser::nom::Parser;
        let (rest, cert) = X509CertificateParser::new()
            .with_deep_parse_extensions(true)
            .parse(der)
            .unwrap();
        assert!(rest.is_empty(), "trailing bytes after the certificate");
        assert!(!cert.extensions().is_empty());
        for ext in cert.extensions() {
            assert!(
                !matches!(
                    ext.parsed_extension(),
                    ParsedExtension::ParseError { .. }
                        | ParsedExtension::UnsupportedExtension { .. }
                ),
                "extension {} does not parse: {:?}",
                ext.oid,
                ext.parsed_extension()
            );
            if ext.oid == x509_parser::oid_registry::OID_X509_EXT_BASIC_CONSTRAINTS {
                let value = ext.value;
                assert!(
                    !(value.len() >= 5 && value[0] == 0x30 && value[2..5] == [0x01, 0x01, 0x00]),
                    "basicConstraints encodes the DEFAULT cA FALSE"
                );
            }
        }
    }

    #[test]
    fn leaves_are_strict_der_without_a_default_basic_constraints() {
        // DNS leaves from the default root; IP leaves need an unconstrained one.
        let constrained = tempfile::tempdir().unwrap();
        let unconstrained = tempfile::tempdir().unwrap();
        let kinds = [
            (
                issuer(constrained.path()),
                &["api.openai.com", "eu.api.openai.com"][..],
            ),
            (
                issuer_with(unconstrained.path(), NameScope::Unconstrained),
                &["api.openai.com", "127.0.0.1", "::1"][..],
            ),
        ];
        for (leaves, hosts) in &kinds {
            for host in *hosts {
                let der = leaves.issue(host).unwrap();
                assert_strict_der(&der);
                let (_, cert) = parse_x509_certificate(&der).unwrap();
                assert!(cert.basic_constraints().unwrap().is_none(), "{host}");
            }
        }
    }

    /// Verifies `leaf` for `host` as a rustls client trusting only `root` would.
    fn verify(
        root: &CertificateDer<'static>,
        leaf: &CertificateDer<'static>,
        host: &str,
    ) -> Result<(), rustls::Error> {
        use rustls::client::danger::ServerCertVerifier;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(root.clone()).unwrap();
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            crate::tls::provider(),
        )
        .build()
        .unwrap();
        let name = rustls_pki_types::ServerName::try_from(host.to_owned()).unwrap();
        verifier
            .verify_server_cert(leaf, &[], &name, &[], rustls_pki_types::UnixTime::now())
            .map(|_| ())
    }

    #[test]
    fn default_root_permits_the_catalog_domains_and_no_ip_address() {
        let dir = tempfile::tempdir().unwrap();
        let ca = RootCa::create(dir.path(), &catalog_scope()).unwrap();
        let (_, cert) = parse_x509_certificate(ca.cert_der()).unwrap();
        let constraints = cert.name_constraints().unwrap().unwrap();
        assert!(constraints.critical);
        let permitted: Vec<&str> = constraints
            .value
            .permitted_subtrees
            .iter()
            .flatten()
            .map(|subtree| match subtree.base {
                GeneralName::DNSName(name) => name,
                ref other => panic!("permits a non-DNS name: {other:?}"),
            })
            .collect();
        for domain in [
            "api.openai.com",
            "api.anthropic.com",
            "googleapis.com",
            "amazonaws.com",
            "openai.azure.com",
            "githubcopilot.com",
            "api.mistral.ai",
            "cursor.sh",
        ] {
            assert!(permitted.contains(&domain), "{domain} in {permitted:?}");
        }
        // Covered by githubcopilot.com already.
        assert!(!permitted.contains(&"api.githubcopilot.com"));
        let excluded: Vec<_> = constraints
            .value
            .excluded_subtrees
            .iter()
            .flatten()
            .map(|subtree| match subtree.base {
                GeneralName::IPAddress(range) => range.to_vec(),
                ref other => panic!("excludes a non-IP name: {other:?}"),
            })
            .collect();
        assert_eq!(
            excluded,
            vec![vec![0u8; 8], vec![0u8; 32]],
            "all of IPv4 and IPv6"
        );

        let catalog = Catalog::parse(&crate::source::Source::embedded_catalog()).unwrap();
        for (_, pattern) in catalog.host_patterns() {
            assert!(ca.scope().covers(pattern), "{pattern}");
        }
        // The same scope comes back when the root is loaded.
        assert_eq!(RootCa::load(dir.path()).unwrap().scope(), &catalog_scope());
    }

    #[test]
    fn leaves_verify_inside_the_name_constraints_and_are_refused_outside() {
        let dir = tempfile::tempdir().unwrap();
        let leaves = issuer(dir.path());
        let root = RootCa::load(dir.path()).unwrap().cert_der().clone();
        for host in [
            "api.openai.com",
            "eu.api.openai.com",
            "europe-west4-aiplatform.googleapis.com",
            "bedrock-runtime.us-east-1.amazonaws.com",
        ] {
            let leaf = leaves.issue(host).unwrap();
            verify(&root, &leaf, host).unwrap_or_else(|e| panic!("{host}: {e}"));
        }
        for host in ["evil.example", "openai.com.evil.example", "127.0.0.1"] {
            assert!(
                matches!(leaves.issue(host), Err(CaError::OutsideNameConstraints(h)) if h == host),
                "{host}"
            );
        }
        // Signed anyway, bypassing the check, a leaf for evil.example does not verify.
        let mut params = CertificateParams::default();
        params.subject_alt_names = vec![SanType::DnsName("evil.example".try_into().unwrap())];
        params.use_authority_key_identifier_extension = true;
        let forced = params
            .signed_by(&leaves.leaf_key, &leaves.issuer)
            .unwrap()
            .der()
            .clone();
        let err = verify(&root, &forced, "evil.example").unwrap_err();
        assert!(format!("{err:?}").contains("NameConstraint"), "{err:?}");
    }

    #[test]
    fn unconstrained_root_has_no_name_constraints() {
        let dir = tempfile::tempdir().unwrap();
        let leaves = issuer_with(dir.path(), NameScope::Unconstrained);
        let ca = RootCa::load(dir.path()).unwrap();
        let (_, cert) = parse_x509_certificate(ca.cert_der()).unwrap();
        assert!(cert.name_constraints().unwrap().is_none());
        assert_eq!(ca.scope(), &NameScope::Unconstrained);
        let leaf = leaves.issue("evil.example").unwrap();
        verify(ca.cert_der(), &leaf, "evil.example").unwrap();
    }

    #[test]
    fn scope_is_the_fewest_domains_and_refuses_what_no_domain_holds() {
        let patterns = |list: &[&str]| -> Vec<HostPattern> {
            list.iter()
                .map(|p| HostPattern::parse(p).unwrap())
                .collect()
        };
        let scope = NameScope::covering(&patterns(&[
            "api.corp.example",
            "*.corp.example",
            "corp.example",
            "other.example",
            "notcorp.example",
        ]))
        .unwrap();
        assert_eq!(
            scope,
            NameScope::Domains(vec![
                "corp.example".into(),
                "notcorp.example".into(),
                "other.example".into()
            ])
        );
        assert!(scope.permits("a.b.corp.example") && scope.permits("corp.example"));
        assert!(!scope.permits("xcorp.example") && !scope.permits("example"));
        let covers = |p: &str| scope.covers(&HostPattern::parse(p).unwrap());
        assert!(covers("*.corp.example") && covers("api-*.other.example"));
        assert!(!covers("*.example") && !covers("evil.example") && !covers("10.0.0.5"));
        for bad in ["10.0.0.5", "::1", "*"] {
            assert!(
                matches!(NameScope::covering(&patterns(&[bad])), Err(CaError::NotConstrainable(p)) if p == bad),
                "{bad}"
            );
        }
        assert!(matches!(
            NameScope::covering(&[]),
            Err(CaError::NothingToPermit)
        ));
    }

    #[test]
    fn ip_hosts_get_an_ip_san() {
        let dir = tempfile::tempdir().unwrap();
        let der = issuer_with(dir.path(), NameScope::Unconstrained)
            .issue("127.0.0.1")
            .unwrap();
        let (_, cert) = parse_x509_certificate(&der).unwrap();
        let san = cert.subject_alternative_name().unwrap().unwrap();
        assert!(
            matches!(san.value.general_names[0], GeneralName::IPAddress(b) if b == [127, 0, 0, 1])
        );
    }

    #[test]
    fn server_configs_are_cached_per_host() {
        let dir = tempfile::tempdir().unwrap();
        let leaves = issuer(dir.path());
        let a = leaves.server_config("api.openai.com");
        let b = leaves.server_config("API.OpenAI.com.");
        let c = leaves.server_config("api.anthropic.com");
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(a.alpn_protocols, vec![b"h2".to_vec(), b"http/1.1".to_vec()]);
    }

    /// A client of `version` alone that trusts the root in `dir`, with rustls' own suite order.
    fn client_of(
        dir: &Path,
        version: &'static rustls::SupportedProtocolVersion,
    ) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        let ca = fs::read(dir.join("tollgate-ca.crt")).unwrap();
        for cert in CertificateDer::pem_slice_iter(&ca) {
            roots.add(cert.unwrap()).unwrap();
        }
        Arc::new(
            rustls::ClientConfig::builder_with_provider(crate::tls::provider())
                .with_protocol_versions(&[version])
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    }

    /// A completed in-memory handshake of `client` with the leaf for api.openai.com.
    fn handshake(
        leaves: &LeafIssuer,
        client: Arc<rustls::ClientConfig>,
    ) -> rustls::ClientConnection {
        use rustls::pki_types::ServerName;
        let mut client =
            rustls::ClientConnection::new(client, ServerName::try_from("api.openai.com").unwrap())
                .unwrap();
        let mut server =
            rustls::ServerConnection::new(leaves.server_config("api.openai.com")).unwrap();
        while client.is_handshaking() || server.is_handshaking() {
            let mut wire = Vec::new();
            client.write_tls(&mut wire).unwrap();
            server.read_tls(&mut wire.as_slice()).unwrap();
            server.process_new_packets().unwrap();
            let mut wire = Vec::new();
            server.write_tls(&mut wire).unwrap();
            client.read_tls(&mut wire.as_slice()).unwrap();
            client.process_new_packets().unwrap();
        }
        // The tickets sent after the handshake.
        let mut wire = Vec::new();
        server.write_tls(&mut wire).unwrap();
        client.read_tls(&mut wire.as_slice()).unwrap();
        client.process_new_packets().unwrap();
        client
    }

    /// A client's second connection resumes its first session, in TLS 1.3 and 1.2.
    #[test]
    fn a_client_resumes_its_session_on_a_new_connection() {
        let dir = tempfile::tempdir().unwrap();
        let leaves = issuer(dir.path());
        for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
            let client = client_of(dir.path(), version);
            let first = handshake(&leaves, client.clone());
            assert_eq!(first.handshake_kind(), Some(rustls::HandshakeKind::Full));
            let second = handshake(&leaves, client);
            assert_eq!(
                second.handshake_kind(),
                Some(rustls::HandshakeKind::Resumed),
                "{version:?}"
            );
        }
    }

    /// A client that lists AES-256-GCM/SHA-384 first (rustls' and OpenSSL's order) gets
    /// AES-128-GCM/SHA-256, in TLS 1.3 and in TLS 1.2 alike.
    #[test]
    fn leaves_choose_sha256_suites_over_the_clients_order() {
        let dir = tempfile::tempdir().unwrap();
        let leaves = issuer(dir.path());
        for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
            let client = client_of(dir.path(), version);
            assert!(
                !is_aes128_sha256(client.crypto_provider().cipher_suites[0].suite()),
                "the client lists another suite first"
            );
            let client = handshake(&leaves, client);
            let suite = client.negotiated_cipher_suite().unwrap().suite();
            assert!(is_aes128_sha256(suite), "{version:?}: {suite:?}");
        }
    }
}
