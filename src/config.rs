//! Run-time configuration: defaults, overlaid by a `tollgate.yaml` file, overlaid by command-line
//! flags, validated into [`ProxyConfig`]. Policy (what may leave) lives in `policy`, not here.

pub use crate::net::{ConnectTo, ConnectToError};
use crate::source::{LoadError, Source};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The config file read from the working directory when `--config` is not given.
pub const DEFAULT_CONFIG_FILE: &str = "tollgate.yaml";

/// Everything the proxy needs to start.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    pub listen: SocketAddr,
    pub ca_dir: PathBuf,
    /// Directory of policy files; `None` uses the embedded defaults.
    pub policies: Option<PathBuf>,
    /// The SQLite store's file (unused while `postgres` is set).
    pub db: PathBuf,
    /// The PostgreSQL database replicas share, when `--db` or `store.url` names one.
    pub postgres: Option<std::sync::Arc<crate::record::postgres::PgSettings>>,
    pub upstream_ca: Vec<PathBuf>,
    pub connect_to: Vec<ConnectTo>,
    pub timeouts: Timeouts,
    pub limits: Limits,
    /// How many hosts' leaf certificates stay cached.
    pub leaf_cache_size: u64,
    /// The key that seals unmasked originals, when policy keeps them.
    pub originals_key: Option<std::sync::Arc<crate::record::originals::OriginalsKey>>,
    /// The key placeholders are derived under, shared by replicas; random per process if `None`.
    pub placeholder_key: Option<crate::mask::vault::PlaceholderKey>,
    /// Serve without authentication on a non-loopback address (deliberately open).
    pub open: bool,
    /// Where the admin API listens; `None` turns it off.
    pub admin: Option<SocketAddr>,
}

/// Where the admin API listens unless told otherwise.
pub const DEFAULT_ADMIN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9090);

/// `--admin ADDR`, `--admin off` (or `admin:` in the config file).
pub fn parse_admin(value: &str) -> Result<Option<SocketAddr>, String> {
    if value.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    value
        .parse()
        .map(Some)
        .map_err(|_| format!("`{value}` is neither an address (127.0.0.1:9090) nor `off`"))
}

/// The environment variable that may hold the originals key (64 hex characters).
pub const ORIGINALS_KEY_ENV: &str = "TOLLGATE_ORIGINALS_KEY";
/// The environment variable that may hold the placeholder key (64 hex characters).
pub const PLACEHOLDER_KEY_ENV: &str = "TOLLGATE_PLACEHOLDER_KEY";

/// 32 bytes written as 64 hex characters (surrounding whitespace ignored).
fn hex32(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut bytes = [0u8; 32];
    for (i, pair) in text.as_bytes().chunks(2).enumerate() {
        let pair = std::str::from_utf8(pair).ok()?;
        bytes[i] = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(bytes)
}

/// Every bound on time the proxy applies. None limits a whole stream: an LLM answer may run for
/// many minutes, so only silence is timed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Timeouts {
    /// Opening a TCP connection upstream.
    #[serde(with = "humantime_serde")]
    pub connect: Duration,
    /// A client's request line and headers must arrive within this.
    #[serde(with = "humantime_serde")]
    pub header_read: Duration,
    /// Each phase of a connection before its first request (the request head, the first bytes
    /// after CONNECT, the TLS handshake, the first request inside a tunnel) must end within this.
    #[serde(with = "humantime_serde")]
    pub handshake: Duration,
    /// Longest silence inside a request or response body before the exchange is cut.
    #[serde(with = "humantime_serde")]
    pub body_idle: Duration,
    /// Longest silence on a blind tunnel before it is closed.
    #[serde(with = "humantime_serde")]
    pub tunnel_idle: Duration,
    /// On SIGINT/SIGTERM, how long in-flight streams may run before the proxy exits anyway.
    #[serde(with = "humantime_serde")]
    pub drain: Duration,
    /// Longest wait for the upstream's response head once a request is sent. Generous: models
    /// think before the first byte, and a non-streamed answer's head comes only when it is done.
    #[serde(with = "humantime_serde")]
    pub response_header: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            header_read: Duration::from_secs(30),
            handshake: Duration::from_secs(10),
            body_idle: Duration::from_secs(300),
            tunnel_idle: Duration::from_secs(900),
            drain: Duration::from_secs(30),
            response_header: Duration::from_secs(600),
        }
    }
}

impl Timeouts {
    /// Every bound by name, for validation.
    fn named(&self) -> [(&'static str, Duration); 7] {
        [
            ("connect", self.connect),
            ("header_read", self.header_read),
            ("handshake", self.handshake),
            ("body_idle", self.body_idle),
            ("tunnel_idle", self.tunnel_idle),
            ("drain", self.drain),
            ("response_header", self.response_header),
        ]
    }
}

/// Bounds on connections, so a peer without credentials cannot hold the proxy open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Open client connections in total; more are closed at once.
    pub max_connections: usize,
    /// Open client connections from one IP address (a NAT or a CI runner pool shares one).
    pub max_connections_per_client: usize,
    /// Audit records waiting for the writer at most; at this bound new requests wait for room.
    pub audit_queue_records: usize,
    /// Bytes of audit records (bodies included) waiting for the writer at most.
    pub audit_queue_bytes: usize,
    /// Size of a request head at most (request line or pseudo-headers and headers), the same
    /// for the CONNECT that opens a tunnel and for every request inside it, HTTP/1 and h2.
    pub max_header_bytes: usize,
    /// Header fields in a request head at most (HTTP/1; h2 is bounded by size).
    pub max_headers: usize,
    /// Memory the placeholder vault may take (values, placeholders, bookkeeping); past it the
    /// least used placeholders are forgotten first (an answer that echoes one keeps it as is).
    pub vault_bytes: usize,
    /// Memory for the masking of resent conversation history, used again instead of masking it
    /// again each turn; 0 masks every request whole.
    pub masked_history_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            max_connections_per_client: 1_000,
            audit_queue_records: 65_536,
            audit_queue_bytes: 64 << 20,
            max_header_bytes: 64 << 10,
            max_headers: 100,
            vault_bytes: 128 << 20,
            masked_history_bytes: 8 << 20,
        }
    }
}

/// What the command line says; `None` and empty lists defer to the file, then the defaults.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub config: Option<PathBuf>,
    pub listen: Option<SocketAddr>,
    pub ca_dir: Option<PathBuf>,
    pub policies: Option<PathBuf>,
    pub db: Option<PathBuf>,
    pub upstream_ca: Vec<PathBuf>,
    pub connect_to: Vec<String>,
    pub open: bool,
    /// `--admin`: an address or `off`.
    pub admin: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    listen: Option<SocketAddr>,
    ca_dir: Option<PathBuf>,
    policies: Option<PathBuf>,
    db: Option<PathBuf>,
    #[serde(default)]
    upstream_ca: Vec<PathBuf>,
    #[serde(default)]
    connect_to: Vec<String>,
    #[serde(default)]
    timeouts: Timeouts,
    #[serde(default)]
    limits: Limits,
    leaf_cache_size: Option<u64>,
    /// A file holding the originals key (64 hex characters); the environment variable wins.
    originals_key_file: Option<PathBuf>,
    /// A file holding the placeholder key (64 hex characters); the environment variable wins.
    placeholder_key_file: Option<PathBuf>,
    #[serde(default)]
    open: bool,
    /// An address or `off`.
    admin: Option<String>,
    #[serde(default)]
    store: StoreFile,
}

/// `store:` in the config file: a PostgreSQL database shared by replicas.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreFile {
    /// `postgres://user@host:port/db?sslmode=verify-full` (no password).
    url: Option<String>,
    /// A file holding the database password; `TOLLGATE_DB_PASSWORD` wins.
    password_file: Option<PathBuf>,
    /// Connections per replica (default 8).
    pool_size: Option<usize>,
    /// Each statement's limit (default 5s).
    #[serde(default, with = "humantime_serde")]
    statement_timeout: Option<Duration>,
    /// This replica's name (default: `TOLLGATE_REPLICA`, else the host name).
    replica: Option<String>,
}

/// The environment variable that names this replica (it owns the in-flight rows it writes).
pub const REPLICA_ENV: &str = "TOLLGATE_REPLICA";

/// This replica's name: `TOLLGATE_REPLICA`, `store.replica`, else the host's name.
fn replica_name(configured: Option<String>) -> String {
    std::env::var(REPLICA_ENV)
        .ok()
        .or(configured)
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .or_else(|| std::env::var("HOSTNAME").ok())
        })
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "tollgate".into())
}

impl ProxyConfig {
    /// Where the audit store is.
    pub fn store(&self) -> crate::record::StoreLocation {
        match &self.postgres {
            Some(settings) => crate::record::StoreLocation::Postgres(settings.clone()),
            None => crate::record::StoreLocation::Sqlite(self.db.clone()),
        }
    }

    /// Builds the configuration from the flags, the config file they name (or `tollgate.yaml` in
    /// the working directory, if present) and the defaults. Paths in the file are relative to it.
    pub fn resolve(flags: Overrides) -> Result<(Self, Option<PathBuf>), LoadError> {
        let file_path = flags.config.clone().or_else(|| {
            let default = PathBuf::from(DEFAULT_CONFIG_FILE);
            default.exists().then_some(default)
        });
        let (file, source) = match &file_path {
            Some(path) => {
                let source = Source::read(path)?;
                (source.deserialize::<ConfigFile>()?, Some(source))
            }
            None => (ConfigFile::default(), None),
        };
        let base = file_path
            .as_deref()
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let rel = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };

        let mut connect_to = Vec::new();
        for (i, rule) in file.connect_to.iter().enumerate() {
            let parsed = rule.parse().map_err(|e: crate::net::ConnectToError| {
                source
                    .as_ref()
                    .expect("file rules come from a file")
                    .invalid(format!("connect_to[{i}]"), e.to_string())
            })?;
            connect_to.push(parsed);
        }
        for rule in &flags.connect_to {
            connect_to.push(rule.parse().map_err(|e: crate::net::ConnectToError| {
                LoadError::Invalid {
                    file: "command line".into(),
                    field: "--connect-to".into(),
                    message: e.to_string(),
                }
            })?);
        }

        let policies = flags
            .policies
            .or_else(|| file.policies.map(rel))
            .or_else(|| {
                let default = PathBuf::from("policies");
                default.is_dir().then_some(default)
            });
        let mut upstream_ca: Vec<PathBuf> = file.upstream_ca.into_iter().map(rel).collect();
        upstream_ca.extend(flags.upstream_ca);

        // The only environment variables Tollgate reads besides RUST_LOG: keys, which do not
        // belong on a command line. Each names where it came from for its errors.
        let key_from =
            |env: &str, path: Option<PathBuf>| -> Result<Option<(String, String)>, LoadError> {
                Ok(match std::env::var(env) {
                    Ok(text) => Some((text, env.to_owned())),
                    Err(_) => match path {
                        Some(path) => Some((
                            std::fs::read_to_string(&path).map_err(|source| LoadError::Read {
                                file: path.display().to_string(),
                                source,
                            })?,
                            path.display().to_string(),
                        )),
                        None => None,
                    },
                })
            };
        let key_text = key_from(ORIGINALS_KEY_ENV, file.originals_key_file.clone().map(rel))?;
        let placeholder_key = match key_from(
            PLACEHOLDER_KEY_ENV,
            file.placeholder_key_file.clone().map(rel),
        )? {
            Some((text, from)) => Some(crate::mask::vault::PlaceholderKey::new(
                hex32(&text).ok_or_else(|| LoadError::Invalid {
                    file: from,
                    field: "placeholder key".into(),
                    message:
                        "must be 64 hex characters (32 bytes), e.g. from `openssl rand -hex 32`"
                            .into(),
                })?,
            )),
            None => None,
        };
        let originals_key = match key_text {
            Some((text, from)) => Some(std::sync::Arc::new(
                crate::record::originals::OriginalsKey::from_hex(&text).map_err(|e| {
                    LoadError::Invalid {
                        file: from,
                        field: "originals key".into(),
                        message: e.to_string(),
                    }
                })?,
            )),
            None => None,
        };

        // `--db` and `db:` take a file or a database URL; `store.url` only a URL.
        let flag_url = flags
            .db
            .as_deref()
            .and_then(Path::to_str)
            .filter(|t| crate::record::postgres::is_url(t))
            .map(str::to_owned);
        let file_db_url = file
            .db
            .as_deref()
            .and_then(Path::to_str)
            .filter(|t| crate::record::postgres::is_url(t))
            .map(str::to_owned);
        let (url, url_from) = match (&flag_url, &flags.db) {
            (Some(url), _) => (Some(url.clone()), "--db".to_owned()),
            (None, Some(_)) => (None, String::new()),
            (None, None) => match (&file.store.url, &file_db_url) {
                (Some(url), _) => (Some(url.clone()), "store.url".to_owned()),
                (None, Some(url)) => (Some(url.clone()), "db".to_owned()),
                (None, None) => (None, String::new()),
            },
        };
        let postgres = match url {
            Some(url) => {
                let invalid = |message: String| LoadError::Invalid {
                    file: source
                        .as_ref()
                        .filter(|_| url_from != "--db")
                        .map_or_else(|| "command line".into(), |s| s.name().to_owned()),
                    field: url_from.clone(),
                    message,
                };
                let password = key_from(
                    crate::record::postgres::PASSWORD_ENV,
                    file.store.password_file.clone().map(rel),
                )?
                .map(|(text, _)| text);
                let tls = crate::tls::upstream::client_config(&upstream_ca)
                    .map_err(|e| invalid(e.to_string()))?;
                let settings = crate::record::postgres::PgSettings::parse(
                    &url,
                    password,
                    tls,
                    file.store.pool_size.unwrap_or(8),
                    file.store
                        .statement_timeout
                        .unwrap_or(Duration::from_secs(5)),
                    replica_name(file.store.replica.clone()),
                )
                .map_err(|e| invalid(e.to_string()))?;
                Some(std::sync::Arc::new(settings))
            }
            None => None,
        };
        let config = ProxyConfig {
            postgres,
            listen: flags
                .listen
                .or(file.listen)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
            ca_dir: flags
                .ca_dir
                .or_else(|| file.ca_dir.map(rel))
                .unwrap_or_else(|| PathBuf::from("ca")),
            policies,
            db: flags
                .db
                .filter(|_| flag_url.is_none())
                .or_else(|| file.db.filter(|_| file_db_url.is_none()).map(rel))
                .unwrap_or_else(|| PathBuf::from("tollgate.db")),
            upstream_ca,
            connect_to,
            timeouts: file.timeouts,
            limits: file.limits,
            leaf_cache_size: file.leaf_cache_size.unwrap_or(10_000),
            originals_key,
            placeholder_key,
            open: flags.open || file.open,
            admin: match flags.admin.as_deref().or(file.admin.as_deref()) {
                Some(value) => parse_admin(value).map_err(|message| match &source {
                    Some(source) if flags.admin.is_none() => source.invalid("admin", message),
                    _ => LoadError::Invalid {
                        file: "command line".into(),
                        field: "--admin".into(),
                        message,
                    },
                })?,
                None => Some(DEFAULT_ADMIN),
            },
        };
        validate(&config, source.as_ref())?;
        Ok((config, file_path))
    }
}

/// Zero or absurd bounds are refused: a zero timeout would cut every connection, a week-long one
/// is no bound at all.
fn validate(config: &ProxyConfig, source: Option<&Source>) -> Result<(), LoadError> {
    const MAX: Duration = Duration::from_secs(24 * 3600);
    let invalid = |field: String, message: String| match source {
        Some(source) => source.invalid(field, message),
        None => LoadError::Invalid {
            file: "defaults".into(),
            field,
            message,
        },
    };
    for (name, value) in config.timeouts.named() {
        if value.is_zero() {
            return Err(invalid(
                format!("timeouts.{name}"),
                "must be more than 0".into(),
            ));
        }
        if value > MAX {
            return Err(invalid(
                format!("timeouts.{name}"),
                format!(
                    "{} is longer than the largest bound allowed, 24h",
                    humantime_serde::re::humantime::format_duration(value)
                ),
            ));
        }
    }
    for (name, value) in [
        ("max_connections", config.limits.max_connections),
        (
            "max_connections_per_client",
            config.limits.max_connections_per_client,
        ),
        ("audit_queue_records", config.limits.audit_queue_records),
        ("audit_queue_bytes", config.limits.audit_queue_bytes),
        ("max_headers", config.limits.max_headers),
        ("vault_bytes", config.limits.vault_bytes),
    ] {
        if value == 0 {
            return Err(invalid(
                format!("limits.{name}"),
                "must be at least 1".into(),
            ));
        }
    }
    if !(8 << 10..=16 << 20).contains(&config.limits.max_header_bytes) {
        return Err(invalid(
            "limits.max_header_bytes".into(),
            "must be between 8 KiB (8192) and 16 MiB".into(),
        ));
    }
    if config.leaf_cache_size == 0 {
        return Err(invalid(
            "leaf_cache_size".into(),
            "must be at least 1".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_file_and_file_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.yaml");
        std::fs::write(
            &path,
            "listen: 127.0.0.1:9999\nca_dir: myca\ntimeouts:\n  drain: 5s\nconnect_to: ['a:443:127.0.0.1:1']\n",
        )
        .unwrap();
        let (c, used) = ProxyConfig::resolve(Overrides {
            config: Some(path.clone()),
            listen: Some("127.0.0.1:0".parse().unwrap()),
            connect_to: vec!["b:443:127.0.0.1:2".into()],
            ..Default::default()
        })
        .unwrap();
        assert_eq!(used, Some(path));
        assert_eq!(c.listen.port(), 0);
        assert_eq!(c.ca_dir, dir.path().join("myca"));
        assert_eq!(c.timeouts.drain, Duration::from_secs(5));
        assert_eq!(c.timeouts.connect, Duration::from_secs(10));
        assert_eq!(c.connect_to.len(), 2);
    }

    #[test]
    fn a_placeholder_key_file_is_read_and_a_bad_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("t.yaml");
        std::fs::write(&config, "placeholder_key_file: placeholder.key\n").unwrap();
        let resolve = || {
            ProxyConfig::resolve(Overrides {
                config: Some(config.clone()),
                ..Default::default()
            })
        };
        std::fs::write(
            dir.path().join("placeholder.key"),
            format!("{}\n", "0a".repeat(32)),
        )
        .unwrap();
        let (c, _) = resolve().unwrap();
        assert!(c.placeholder_key.is_some());
        assert_eq!(
            format!("{:?}", c.placeholder_key.unwrap()),
            "PlaceholderKey(***)"
        );
        std::fs::write(dir.path().join("placeholder.key"), "not hex").unwrap();
        let err = resolve().unwrap_err().to_string();
        assert!(
            err.contains("placeholder.key") && err.contains("64 hex"),
            "{err}"
        );
        assert!(
            !err.contains("not hex"),
            "the key's text is never repeated: {err}"
        );
    }

    #[test]
    fn bad_config_names_file_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.yaml");
        std::fs::write(&path, "timeouts:\n  drain: soon\n").unwrap();
        let err = ProxyConfig::resolve(Overrides {
            config: Some(path.clone()),
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("t.yaml") && err.contains("timeouts.drain"),
            "{err}"
        );

        std::fs::write(&path, "connect_to: ['nonsense']\n").unwrap();
        let err = ProxyConfig::resolve(Overrides {
            config: Some(path),
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("connect_to[0]"), "{err}");
    }

    #[test]
    fn zero_or_absurd_bounds_are_refused_naming_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.yaml");
        for (yaml, field) in [
            ("timeouts:\n  handshake: 0s\n", "timeouts.handshake"),
            ("timeouts:\n  body_idle: 400days\n", "timeouts.body_idle"),
            (
                "limits:\n  max_connections_per_client: 0\n",
                "limits.max_connections_per_client",
            ),
            ("leaf_cache_size: 0\n", "leaf_cache_size"),
        ] {
            std::fs::write(&path, yaml).unwrap();
            let err = ProxyConfig::resolve(Overrides {
                config: Some(path.clone()),
                ..Default::default()
            })
            .unwrap_err()
            .to_string();
            assert!(
                err.contains(field) && err.contains("t.yaml"),
                "{yaml}: {err}"
            );
        }
    }
}
