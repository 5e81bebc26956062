//! The shared test harness: start the fake upstream, start the real proxy on `127.0.0.1:0` with a
//! policy, build clients that go through it, and open raw tunnels when a test needs full control.
#![allow(dead_code)]

pub mod pg;
pub mod running;
pub mod upstream;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::upgrade::Upgraded;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tempfile::TempDir;
use tokio::net::TcpStream;
use tollgate::config::{ProxyConfig, Timeouts};
use tollgate::proxy::RunningProxy;
#[allow(unused_imports)]
pub use upstream::{FIXTURES, Upstream, UpstreamOptions};

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
}

/// The real proxy, with its own CA and policy directory in a temporary folder.
pub struct TestProxy {
    pub proxy: RunningProxy,
    pub dir: TempDir,
    /// Where its audit store is (SQLite in `dir`, or a PostgreSQL database).
    pub store: tollgate::record::StoreLocation,
    /// The PostgreSQL database's URL, when the store is one.
    pub pg_url: Option<String>,
}

/// The audit store refusing writes until [`Outage::end`]: another process holds the SQLite
/// file locked, or the PostgreSQL tables refuse every change.
pub enum Outage {
    Sqlite(rusqlite::Connection),
    Postgres(String),
}

const OUTAGE_TABLES: [&str; 3] = ["records", "pending", "replicas"];

impl Outage {
    pub async fn end(self) {
        match self {
            Outage::Sqlite(lock) => lock.execute_batch("ROLLBACK").unwrap(),
            Outage::Postgres(url) => {
                let mut sql = String::new();
                for t in OUTAGE_TABLES {
                    sql.push_str(&format!("DROP TRIGGER outage ON {t};"));
                }
                pg_execute(&url, &sql).await;
            }
        }
    }
}

/// Every row of the store's tables as text (byte strings in hex).
pub async fn pg_dump(url: &str) -> String {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let task = tokio::spawn(conn);
    let mut out = String::new();
    for table in ["records", "pending", "checkpoints"] {
        for row in client
            .query(&format!("SELECT t::text FROM {table} t"), &[])
            .await
            .unwrap()
        {
            out.push_str(row.get::<_, &str>(0));
            out.push('\n');
        }
    }
    drop(client);
    let _ = task.await;
    out
}

async fn pg_execute(url: &str, sql: &str) {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let task = tokio::spawn(conn);
    client.batch_execute(sql).await.unwrap();
    drop(client);
    let _ = task.await;
}

impl TestProxy {
    pub fn addr(&self) -> SocketAddr {
        self.proxy.addr()
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr())
    }

    pub fn ca_pem(&self) -> String {
        self.proxy.ca_cert_pem().to_owned()
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("tollgate.db")
    }

    /// Drains the proxy (so every record is written) and opens its audit store.
    pub async fn stop_and_open_store(self) -> (tollgate::record::Store, TempDir) {
        let TestProxy {
            proxy, dir, store, ..
        } = self;
        proxy.shutdown().await;
        (tollgate::record::Store::connect(&store).unwrap(), dir)
    }

    /// Opens its audit store while it runs.
    pub fn open_store(&self) -> tollgate::record::Store {
        tollgate::record::Store::connect(&self.store).unwrap()
    }

    /// What `--db` takes for its store: the SQLite file or the database URL.
    pub fn db_arg(&self) -> String {
        self.pg_url
            .clone()
            .unwrap_or_else(|| self.db_path().display().to_string())
    }

    /// Makes the store refuse every write until the outage ends.
    pub async fn store_outage(&self) -> Outage {
        match &self.pg_url {
            None => {
                let lock = rusqlite::Connection::open(self.db_path()).unwrap();
                lock.execute_batch("BEGIN EXCLUSIVE").unwrap();
                Outage::Sqlite(lock)
            }
            Some(url) => {
                let mut sql = String::from(
                    "CREATE OR REPLACE FUNCTION outage() RETURNS trigger AS $$
                     BEGIN RAISE EXCEPTION 'the test store is down'; END $$ LANGUAGE plpgsql;",
                );
                for t in OUTAGE_TABLES {
                    sql.push_str(&format!(
                        "CREATE TRIGGER outage BEFORE INSERT OR UPDATE OR DELETE ON {t}
                         FOR EACH STATEMENT EXECUTE FUNCTION outage();"
                    ));
                }
                pg_execute(url, &sql).await;
                Outage::Postgres(url.clone())
            }
        }
    }

    /// The admin API's base URL (`http://127.0.0.1:PORT`).
    pub fn admin_url(&self) -> String {
        format!("http://{}", self.proxy.admin_addr().expect("admin API on"))
    }

    /// The proxy's policy directory (tests rewrite files there to reload).
    pub fn policies_dir(&self) -> PathBuf {
        self.dir.path().join("policies")
    }

    pub fn ca_path(&self) -> PathBuf {
        self.dir.path().join("ca").join("tollgate-ca.crt")
    }
}

/// A proxy builder that reads like the test: `ProxySetup::new(&upstream).policy("…").start()`.
#[derive(Default)]
pub struct ProxySetup {
    connect_to: Vec<String>,
    /// Policy files written into the proxy's policy directory: (file name, YAML).
    files: Vec<(&'static str, String)>,
    originals_key: Option<String>,
    placeholder_key: Option<[u8; 32]>,
    timeouts: Timeouts,
    limits: tollgate::config::Limits,
    /// A PostgreSQL store: its URL and this proxy's replica name.
    postgres: Option<(String, String)>,
}

impl ProxySetup {
    /// Sends every fixture host (HTTPS on 443, plain HTTP on 80) to the fake upstream.
    pub fn new(upstream: &Upstream) -> Self {
        let mut connect_to = Vec::new();
        for host in upstream::UPSTREAM_HOSTS {
            connect_to.push(format!("{host}:443:127.0.0.1:{}", upstream.tls_addr.port()));
            connect_to.push(format!("{host}:80:127.0.0.1:{}", upstream.http_addr.port()));
        }
        Self {
            connect_to,
            ..Self::default()
        }
    }

    /// A proxy with no `--connect-to` rules at all.
    pub fn bare() -> Self {
        Self::default()
    }

    /// Writes another file into the policy directory.
    pub fn file(mut self, name: &'static str, yaml: &str) -> Self {
        self.files.push((name, yaml.to_owned()));
        self
    }

    /// Adds a `--connect-to` rule.
    pub fn connect_to(mut self, rule: &str) -> Self {
        self.connect_to.push(rule.to_owned());
        self
    }

    /// Replaces the masking rules (`masking.yaml`).
    pub fn masking(self, yaml: &str) -> Self {
        self.file("masking.yaml", yaml)
    }

    /// Replaces the recording rules (`recording.yaml`).
    pub fn recording(self, yaml: &str) -> Self {
        self.file("recording.yaml", yaml)
    }

    /// Replaces the proxy's users (`identity.yaml`).
    pub fn identity(self, yaml: &str) -> Self {
        self.file("identity.yaml", yaml)
    }

    /// Gives the proxy a key to seal unmasked originals with (64 hex characters).
    /// The key placeholders are derived under (as `placeholder_key_file` gives it).
    pub fn placeholder_key(mut self, key: [u8; 32]) -> Self {
        self.placeholder_key = Some(key);
        self
    }

    pub fn originals_key(mut self, hex: &str) -> Self {
        self.originals_key = Some(hex.to_owned());
        self
    }

    /// Replaces the provider catalog (`providers.yaml`).
    pub fn catalog(self, yaml: &str) -> Self {
        self.file("providers.yaml", yaml)
    }

    pub fn policy(self, yaml: &str) -> Self {
        self.file("policy.yaml", yaml)
    }

    /// Records to the PostgreSQL database at `url`, as replica `replica`.
    pub fn postgres(mut self, url: &str, replica: &str) -> Self {
        self.postgres = Some((url.to_owned(), replica.to_owned()));
        self
    }

    pub fn limits(mut self, limits: tollgate::config::Limits) -> Self {
        self.limits = limits;
        self
    }

    pub fn timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    pub async fn start(self) -> TestProxy {
        init_tracing();
        let dir = tempfile::tempdir().unwrap();
        let policies = dir.path().join("policies");
        std::fs::create_dir_all(&policies).unwrap();
        for (name, yaml) in &self.files {
            std::fs::write(policies.join(name), yaml).unwrap();
        }
        // Under TOLLGATE_TEST_STORE=postgres every proxy records to a fresh database.
        let postgres = match self.postgres.clone() {
            Some(pg) => Some(pg),
            None if pg::suites_on_postgres() => {
                let server = pg::server().expect("TOLLGATE_TEST_STORE=postgres needs PostgreSQL");
                Some((server.fresh_database().await, "test".to_owned()))
            }
            None => None,
        };
        let config = ProxyConfig {
            postgres: postgres
                .as_ref()
                .map(|(url, replica)| pg::settings(url, replica)),
            listen: "127.0.0.1:0".parse().unwrap(),
            ca_dir: dir.path().join("ca"),
            policies: Some(policies),
            db: dir.path().join("tollgate.db"),
            upstream_ca: vec![PathBuf::from(format!("{FIXTURES}/upstream-ca.crt"))],
            connect_to: self.connect_to.iter().map(|r| r.parse().unwrap()).collect(),
            timeouts: self.timeouts,
            limits: self.limits,
            leaf_cache_size: 1000,
            open: false,
            admin: Some("127.0.0.1:0".parse().unwrap()),
            placeholder_key: self
                .placeholder_key
                .map(tollgate::mask::vault::PlaceholderKey::new),
            originals_key: self.originals_key.as_deref().map(|hex| {
                std::sync::Arc::new(
                    tollgate::record::originals::OriginalsKey::from_hex(hex).unwrap(),
                )
            }),
        };
        let proxy = tollgate::proxy::start(&config).await.unwrap();
        TestProxy {
            proxy,
            dir,
            store: config.store(),
            pg_url: postgres.map(|(url, _)| url),
        }
    }
}

/// The fake upstream's CA (PEM), for clients that must see the upstream's own certificate.
pub fn upstream_ca_pem() -> String {
    std::fs::read_to_string(format!("{FIXTURES}/upstream-ca.crt")).unwrap()
}

/// A reqwest client through the proxy that trusts only the given roots (PEM).
pub fn client_trusting(proxy: &TestProxy, roots: &[&str]) -> reqwest::ClientBuilder {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .proxy(reqwest::Proxy::all(proxy.url()).unwrap())
        .timeout(Duration::from_secs(30));
    for pem in roots {
        builder =
            builder.add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap());
    }
    builder
}

/// A reqwest client through the proxy with credentials in the proxy URL (sent as Basic proxy
/// credentials), trusting Tollgate's CA only.
pub fn client_as(proxy: &TestProxy, user: &str, secret: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .use_rustls_tls()
        .proxy(reqwest::Proxy::all(format!("http://{user}:{secret}@{}", proxy.addr())).unwrap())
        .add_root_certificate(reqwest::Certificate::from_pem(proxy.ca_pem().as_bytes()).unwrap())
        .build()
        .unwrap()
}

/// A `Proxy-Authorization: Basic` value.
pub fn basic(user: &str, secret: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{secret}"))
    )
}

/// A client for the proxy's admin API itself (no proxy in between).
pub fn admin_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// The JSON `client` gets from `url`, if it answers with JSON at all (for polling).
pub async fn get_json(client: &reqwest::Client, url: &str) -> Option<serde_json::Value> {
    client.get(url).send().await.ok()?.json().await.ok()
}

/// The refusal reason a response carries (`x-tollgate-reason`), if any.
pub fn reason_of(res: &reqwest::Response) -> Option<String> {
    res.headers()
        .get("x-tollgate-reason")
        .map(|v| v.to_str().unwrap().to_owned())
}

/// A reqwest client through the proxy that trusts Tollgate's CA only.
pub fn client(proxy: &TestProxy) -> reqwest::Client {
    client_trusting(proxy, &[&proxy.ca_pem()]).build().unwrap()
}

/// What answered a CONNECT: an open tunnel, or a refusal.
pub enum Tunnel {
    Open(TokioIo<Upgraded>),
    Refused {
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
    },
}

impl Tunnel {
    pub fn open(self) -> TokioIo<Upgraded> {
        match self {
            Tunnel::Open(io) => io,
            Tunnel::Refused { status, body, .. } => {
                panic!(
                    "CONNECT refused: {status} {}",
                    String::from_utf8_lossy(&body)
                )
            }
        }
    }

    pub fn refused(self) -> (StatusCode, HeaderMap, serde_json::Value) {
        match self {
            Tunnel::Open(_) => panic!("CONNECT was accepted"),
            Tunnel::Refused {
                status,
                headers,
                body,
            } => (status, headers, serde_json::from_slice(&body).unwrap()),
        }
    }
}

/// Sends `CONNECT target` to the proxy with `headers`.
pub async fn connect(proxy: SocketAddr, target: &str, headers: &[(&str, &str)]) -> Tunnel {
    let tcp = TcpStream::connect(proxy).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn.with_upgrades());
    let mut req = Request::connect(target).header("host", target);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = sender
        .send_request(req.body(Empty::<Bytes>::new()).unwrap())
        .await
        .unwrap();
    if res.status() == StatusCode::OK {
        Tunnel::Open(TokioIo::new(hyper::upgrade::on(res).await.unwrap()))
    } else {
        let status = res.status();
        let headers = res.headers().clone();
        let body = res.into_body().collect().await.unwrap().to_bytes();
        Tunnel::Refused {
            status,
            headers,
            body,
        }
    }
}

/// TLS over an open tunnel, trusting `root_pem`, offering `alpn`.
pub async fn tls_over(
    io: TokioIo<Upgraded>,
    server_name: &str,
    root_pem: &str,
    alpn: &[&[u8]],
) -> tokio_rustls::client::TlsStream<TokioIo<Upgraded>> {
    try_tls_over(io, server_name, root_pem, alpn).await.unwrap()
}

/// Like [`tls_over`], returning the handshake's error instead of panicking on it.
pub async fn try_tls_over(
    io: TokioIo<Upgraded>,
    server_name: &str,
    root_pem: &str,
    alpn: &[&[u8]],
) -> std::io::Result<tokio_rustls::client::TlsStream<TokioIo<Upgraded>>> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(root_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(tollgate::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from(server_name.to_owned()).unwrap(), io)
        .await
}

/// Opens an intercepted tunnel to `host:443` and speaks TLS in it as `server_name`, offering
/// `alpn`, trusting Tollgate's CA.
pub async fn intercepted_tls(
    proxy: &TestProxy,
    host: &str,
    server_name: &str,
    alpn: &[u8],
) -> tokio_rustls::client::TlsStream<TokioIo<Upgraded>> {
    let io = connect(proxy.addr(), &format!("{host}:443"), &[])
        .await
        .open();
    tls_over(io, server_name, &proxy.ca_pem(), &[alpn]).await
}

/// Sends one request over h2 on `io` and returns the response with its body collected.
pub async fn h2_request<I>(io: I, req: Request<Full<Bytes>>) -> Response<Bytes>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io))
            .await
            .unwrap();
    tokio::spawn(conn);
    let res = sender.send_request(req).await.unwrap();
    let (parts, body) = res.into_parts();
    Response::from_parts(parts, body.collect().await.unwrap().to_bytes())
}

/// Sends one request over HTTP/1.1 on `io` and returns the response with its body collected.
pub async fn h1_request<I>(io: I, req: Request<Full<Bytes>>) -> Response<Bytes>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .unwrap();
    tokio::spawn(conn.with_upgrades());
    let res = sender.send_request(req).await.unwrap();
    let (parts, body) = res.into_parts();
    Response::from_parts(parts, body.collect().await.unwrap().to_bytes())
}

pub fn json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(body)))
}

/// Polls `check` every `every` until it gives a value, and fails the test with `what` if it has
/// not within `within`.
pub async fn eventually<T>(
    within: std::time::Duration,
    every: std::time::Duration,
    what: &str,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = std::time::Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(std::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(every).await;
    }
}

/// Whether an external program is installed; tests that need one say so when it is missing.
pub fn have(program: &str) -> bool {
    std::process::Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}
