//! `tollgate doctor`: checks, from the machine a developer or a CI job runs on, that its clients
//! really go through Tollgate and trust it, and says what to fix when they do not.
//!
//! In order: the environment the client families read (proxy variables, the CA files each one
//! trusts), whether the proxy accepts connections, whether an intercepted host gets a leaf issued
//! by Tollgate's CA and a tunneled host its own certificate, and whether each family's roots
//! verify the intercepted leaf. Then the clients that are installed (curl, Python, Node) make the
//! same TLS handshake themselves, each with its own TLS library and the environment as it is.
//! Nothing is sent upstream except curl's one `HEAD /`.

use super::client_env::LOCAL_NAMES;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How a check came out. Only `Fail` makes `tollgate doctor` exit non-zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
    /// Not checked (a client that is not installed, or a check that needs an earlier one).
    Skip,
}

/// One check's outcome, and what to do about it.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub status: Status,
    pub check: String,
    pub said: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Finding {
    fn new(status: Status, check: impl Into<String>, said: impl Into<String>) -> Self {
        Finding {
            status,
            check: check.into(),
            said: said.into(),
            fix: None,
        }
    }

    fn fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }
}

/// The fix for a client that does not trust the CA, or is not pointed at the proxy.
const ENV_FIX: &str = "eval \"$(tollgate env)\" (fish: tollgate env --shell fish | source), then start the client again";

/// Where the proxy's address came from.
#[derive(Debug, Clone)]
pub struct ProxySource {
    pub url: String,
    /// `--proxy`, `HTTPS_PROXY`, or the configured listen address.
    pub from: String,
}

/// What `tollgate doctor` was asked to check.
#[derive(Debug, Clone)]
pub struct Options {
    pub proxy: ProxySource,
    /// Tollgate's CA (DER) and where it was read from, when known.
    pub ca: Option<(Vec<u8>, PathBuf)>,
    /// A host the proxy should intercept.
    pub intercepted: String,
    /// A host the proxy should tunnel untouched.
    pub tunneled: String,
    /// The deadline of each network step and of each client run.
    pub timeout: Duration,
    /// Run curl, Python and Node when installed.
    pub run_clients: bool,
}

/// The environment as the clients see it (read once, by the caller).
pub type Env = BTreeMap<String, String>;

fn var<'a>(env: &'a Env, name: &str) -> Option<&'a str> {
    env.get(name).map(String::as_str).filter(|v| !v.is_empty())
}

/// A proxy URL, `http://[NAME:TOKEN@]host[:port]`, split for connecting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyUrl {
    pub host: String,
    pub port: u16,
    /// The `Proxy-Authorization` value the URL's credentials make.
    pub authorization: Option<String>,
    /// The URL with the token replaced by `***`, for printing.
    pub shown: String,
    /// The token, to scrub from anything a client prints.
    secret: Option<String>,
}

/// Parses a proxy URL as curl and the SDKs read `HTTPS_PROXY` (no scheme means `http://`).
pub fn parse_proxy(url: &str) -> Result<ProxyUrl, String> {
    let rest = match url.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
        Some((scheme, _)) => {
            return Err(format!(
                "the proxy URL's scheme is `{scheme}`: Tollgate takes CONNECT over plain HTTP, write http://host:port"
            ));
        }
        None => url,
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(':') && !p.contains(']') => {
            let port = p
                .parse::<u16>()
                .map_err(|_| format!("`{p}` in the proxy URL is not a port"))?;
            (h, port)
        }
        _ => (hostport, 80),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err("the proxy URL names no host".to_owned());
    }
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    let (authorization, secret, shown_user) = match userinfo {
        Some(u) => {
            let (user, pass) = u.split_once(':').unwrap_or((u, ""));
            let (user, pass) = (decode(user), decode(pass));
            use base64::Engine as _;
            let basic = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
            let secret = (!pass.is_empty()).then_some(pass);
            (
                Some(format!("Basic {basic}")),
                secret,
                format!("{user}:***@"),
            )
        }
        None => (None, None, String::new()),
    };
    let host_shown = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    Ok(ProxyUrl {
        host: host.to_owned(),
        port,
        authorization,
        shown: format!("http://{shown_user}{host_shown}:{port}"),
        secret,
    })
}

impl ProxyUrl {
    /// `text` with the proxy's token removed.
    fn scrub(&self, text: &str) -> String {
        match &self.secret {
            Some(s) if !s.is_empty() => text.replace(s.as_str(), "***"),
            _ => text.to_owned(),
        }
    }
}

/// Whether `NO_PROXY` sends `host` direct, as curl, Python and Node read it: `*`, the host
/// itself, or a domain it ends in (with or without the leading dot).
pub fn bypasses(no_proxy: &str, host: &str) -> bool {
    let host = host.to_ascii_lowercase();
    no_proxy
        .split([',', ' '])
        .map(|e| e.trim().to_ascii_lowercase())
        .filter(|e| !e.is_empty())
        .any(|e| {
            let e = e.split(':').next().unwrap_or_default();
            let domain = e.trim_start_matches("*.").trim_start_matches('.');
            e == "*" || host == domain || host.ends_with(&format!(".{domain}"))
        })
}

/// Runs every check, in order.
pub async fn run(opts: &Options, env: &Env) -> Vec<Finding> {
    let mut out = Vec::new();
    let proxy = match parse_proxy(&opts.proxy.url) {
        Ok(p) => p,
        Err(e) => {
            out.push(
                Finding::new(
                    Status::Fail,
                    "proxy",
                    format!("{} ({})", e, opts.proxy.from),
                )
                .fix("pass --proxy http://host:port, or fix HTTPS_PROXY"),
            );
            return out;
        }
    };
    proxy_variables(opts, &proxy, env, &mut out);

    let reached = match tokio::time::timeout(
        opts.timeout,
        tokio::net::TcpStream::connect((proxy.host.as_str(), proxy.port)),
    )
    .await
    {
        Ok(Ok(_)) => {
            out.push(Finding::new(
                Status::Ok,
                "proxy",
                format!("{} accepts connections ({})", proxy.shown, opts.proxy.from),
            ));
            true
        }
        Ok(Err(e)) => {
            out.push(unreachable(&proxy, &opts.proxy.from, &e.to_string()));
            false
        }
        Err(_) => {
            out.push(unreachable(&proxy, &opts.proxy.from, "no answer in time"));
            false
        }
    };

    let leaf = if reached {
        intercepted(opts, &proxy, &mut out).await
    } else {
        None
    };
    if reached {
        tunneled(opts, &proxy, env, &mut out).await;
    }
    for family in FAMILIES {
        out.push(trust(family, opts, leaf.as_deref(), env));
    }
    // The clients' own handshakes say something only once the proxy has opened a tunnel and
    // presented a leaf; before that, each would fail for the reason already reported.
    if opts.run_clients && leaf.is_some() {
        for client in CLIENTS {
            out.push(run_client(client, opts, &proxy, env).await);
        }
    }
    out
}

fn unreachable(proxy: &ProxyUrl, from: &str, why: &str) -> Finding {
    Finding::new(
        Status::Fail,
        "proxy",
        format!("cannot connect to {} ({from}): {why}", proxy.shown),
    )
    .fix("start Tollgate there (tollgate run), or point --proxy / HTTPS_PROXY at where it listens")
}

/// The variables that send clients through the proxy.
fn proxy_variables(opts: &Options, proxy: &ProxyUrl, env: &Env, out: &mut Vec<Finding>) {
    let upper = var(env, "HTTPS_PROXY");
    let lower = var(env, "https_proxy");
    match (upper, lower) {
        (None, None) => out.push(
            Finding::new(
                Status::Fail,
                "HTTPS_PROXY",
                "not set: clients connect to the LLM APIs directly, not through Tollgate",
            )
            .fix(ENV_FIX),
        ),
        (Some(a), Some(b)) if a != b => out.push(
            Finding::new(
                Status::Warn,
                "HTTPS_PROXY",
                "HTTPS_PROXY and https_proxy differ: curl and Python read the lower-case one first, Node the upper-case one",
            )
            .fix(ENV_FIX),
        ),
        (Some(set), _) | (None, Some(set)) if parse_proxy(set).is_err() => {
            let why = parse_proxy(set).err().unwrap_or_default();
            out.push(
                Finding::new(
                    Status::Fail,
                    "HTTPS_PROXY",
                    format!("clients cannot use it: {why}"),
                )
                .fix(ENV_FIX),
            );
        }
        (Some(set), _) | (None, Some(set)) => {
            let same = parse_proxy(set).is_ok_and(|p| p.host == proxy.host && p.port == proxy.port);
            out.push(if same || opts.proxy.from != "--proxy" {
                Finding::new(
                    Status::Ok,
                    "HTTPS_PROXY",
                    format!(
                        "set: clients go through {}",
                        parse_proxy(set).map_or_else(|_| "it".to_owned(), |p| p.shown)
                    ),
                )
            } else {
                Finding::new(
                    Status::Warn,
                    "HTTPS_PROXY",
                    format!(
                        "clients go through {}, not the {} checked here",
                        parse_proxy(set).map_or_else(|_| "another proxy".to_owned(), |p| p.shown),
                        proxy.shown
                    ),
                )
            });
        }
    }
    for name in ["NO_PROXY", "no_proxy"] {
        if let Some(list) = var(env, name)
            && bypasses(list, &opts.intercepted)
        {
            out.push(
                Finding::new(
                    Status::Fail,
                    name,
                    format!(
                        "sends {} directly, past Tollgate: `{list}`",
                        opts.intercepted
                    ),
                )
                .fix(format!(
                    "take the entry that matches {} out of {name} (Tollgate's own list is {LOCAL_NAMES})",
                    opts.intercepted
                )),
            );
        }
    }
    if var(env, "NODE_USE_ENV_PROXY") != Some("1") {
        out.push(
            Finding::new(
                Status::Warn,
                "NODE_USE_ENV_PROXY",
                "not 1: Node's own fetch and https ignore HTTPS_PROXY (Claude Code and Codex read it themselves)",
            )
            .fix("export NODE_USE_ENV_PROXY=1 (tollgate env sets it)"),
        );
    }
}

/// What answered a CONNECT through the proxy.
enum Tunnel {
    Open(TokioIo<hyper::upgrade::Upgraded>),
    Refused { status: u16, said: String },
    Broken(String),
}

/// `CONNECT host:443`, with the URL's credentials.
async fn open_tunnel(proxy: &ProxyUrl, host: &str, timeout: Duration) -> Tunnel {
    let steps = async {
        let tcp = tokio::net::TcpStream::connect((proxy.host.as_str(), proxy.port))
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| format!("HTTP: {e}"))?;
        tokio::spawn(conn.with_upgrades());
        let target = format!("{host}:443");
        let mut req = http::Request::connect(target.as_str()).header(http::header::HOST, &target);
        if let Some(auth) = &proxy.authorization {
            req = req.header(http::header::PROXY_AUTHORIZATION, auth);
        }
        let req = req
            .body(Empty::<Bytes>::new())
            .map_err(|e| format!("CONNECT {target}: {e}"))?;
        let res = sender
            .send_request(req)
            .await
            .map_err(|e| format!("CONNECT {target}: {e}"))?;
        if res.status() == http::StatusCode::OK {
            let io = hyper::upgrade::on(res)
                .await
                .map_err(|e| format!("CONNECT {target}: {e}"))?;
            return Ok(Tunnel::Open(TokioIo::new(io)));
        }
        let status = res.status().as_u16();
        let reason = res
            .headers()
            .get("x-tollgate-reason")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = res
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let mut said = refusal_message(&body);
        if let Some(reason) = reason {
            said = format!("{said} [{reason}]");
        }
        Ok(Tunnel::Refused { status, said })
    };
    match tokio::time::timeout(timeout, steps).await {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => Tunnel::Broken(e),
        Err(_) => Tunnel::Broken(format!("CONNECT {host}:443: no answer in time")),
    }
}

/// The sentence of a refusal's body, whichever provider's error shape it has.
fn refusal_message(body: &[u8]) -> String {
    let text = || {
        String::from_utf8_lossy(&body[..body.len().min(300)])
            .trim()
            .to_owned()
    };
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(body) else {
        return text();
    };
    [
        json.pointer("/error/message"),
        json.pointer("/message"),
        json.pointer("/0/error/message"),
    ]
    .into_iter()
    .flatten()
    .find_map(|m| m.as_str().map(str::to_owned))
    .unwrap_or_else(text)
}

/// Records the chain a server presents and lets the handshake finish (signatures are still
/// checked); whether the chain is trusted is judged afterwards, against each set of roots.
#[derive(Debug)]
struct Capture {
    chain: Mutex<Vec<CertificateDer<'static>>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Capture {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let mut chain = vec![end_entity.clone().into_owned()];
        chain.extend(intermediates.iter().map(|c| c.clone().into_owned()));
        if let Ok(mut seen) = self.chain.lock() {
            *seen = chain;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The certificate chain `host` presents through the tunnel.
async fn server_chain(
    io: TokioIo<hyper::upgrade::Upgraded>,
    host: &str,
    timeout: Duration,
) -> Result<Vec<CertificateDer<'static>>, String> {
    let capture = Arc::new(Capture {
        chain: Mutex::new(Vec::new()),
        provider: provider(),
    });
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(capture.clone())
        .with_no_client_auth();
    let name = ServerName::try_from(host.to_owned()).map_err(|e| format!("{host}: {e}"))?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    match tokio::time::timeout(timeout, connector.connect(name, io)).await {
        Ok(Ok(mut tls)) => {
            use tokio::io::AsyncWriteExt as _;
            let _ = tls.shutdown().await;
        }
        Ok(Err(e)) => return Err(format!("TLS handshake: {e}")),
        Err(_) => return Err("TLS handshake: no answer in time".to_owned()),
    }
    let chain = capture.chain.lock().map(|c| c.clone()).unwrap_or_default();
    if chain.is_empty() {
        return Err("the server presented no certificate".to_owned());
    }
    Ok(chain)
}

/// Whether `chain` verifies for `host` against `roots`, as a browser would check it (webpki).
fn verify(
    roots: &[CertificateDer<'_>],
    chain: &[CertificateDer<'_>],
    host: &str,
) -> Result<(), String> {
    let mut store = RootCertStore::empty();
    let (added, _) = store.add_parsable_certificates(roots.iter().map(|c| c.clone().into_owned()));
    if added == 0 {
        return Err("no usable certificate among the roots".to_owned());
    }
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider())
        .build()
        .map_err(|e| e.to_string())?;
    let name = ServerName::try_from(host.to_owned()).map_err(|e| e.to_string())?;
    let (leaf, rest) = chain.split_first().ok_or("no certificate")?;
    verifier
        .verify_server_cert(leaf, rest, &name, &[], UnixTime::now())
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// The issuer of a certificate, as a distinguished name.
fn issuer(cert: &CertificateDer<'_>) -> String {
    x509_parser::parse_x509_certificate(cert)
        .map(|(_, c)| c.issuer().to_string())
        .unwrap_or_else(|_| "an unreadable issuer".to_owned())
}

/// The intercepted host: Tollgate's leaf, which the trust checks then verify.
async fn intercepted(
    opts: &Options,
    proxy: &ProxyUrl,
    out: &mut Vec<Finding>,
) -> Option<Vec<CertificateDer<'static>>> {
    let host = &opts.intercepted;
    let check = format!("intercepted {host}");
    let chain = match open_tunnel(proxy, host, opts.timeout).await {
        Tunnel::Open(io) => match server_chain(io, host, opts.timeout).await {
            Ok(chain) => chain,
            Err(e) => {
                out.push(Finding::new(Status::Fail, check, e));
                return None;
            }
        },
        Tunnel::Refused { status: 407, said } => {
            out.push(
                Finding::new(Status::Fail, check, format!("the proxy wants credentials (407): {said}"))
                    .fix("put the token in the proxy URL: HTTPS_PROXY=http://NAME:TOKEN@host:port (an admin makes one with `tollgate token create NAME`)"),
            );
            return None;
        }
        Tunnel::Refused { status, said } => {
            out.push(
                Finding::new(
                    Status::Fail,
                    check,
                    format!("the proxy refused the tunnel ({status}): {said}"),
                )
                .fix(format!(
                    "ask the proxy's admins: `tollgate policy explain --host {host}` shows the rule"
                )),
            );
            return None;
        }
        Tunnel::Broken(e) => {
            out.push(Finding::new(Status::Fail, check, e));
            return None;
        }
    };
    let from = issuer(&chain[0]);
    let finding = match &opts.ca {
        Some((ca, path)) => match verify(&[CertificateDer::from(ca.as_slice())], &chain, host) {
            Ok(()) => Finding::new(
                Status::Ok,
                check,
                format!("Tollgate's CA ({}) issued its certificate ({from})", path.display()),
            ),
            Err(e) => Finding::new(
                Status::Fail,
                check,
                format!(
                    "its certificate is not from Tollgate's CA at {}: issued by {from} ({e})",
                    path.display()
                ),
            )
            .fix(format!(
                "the proxy tunnels {host} instead of intercepting it, another TLS-inspecting proxy is in between, or --ca names another CA; `tollgate policy explain --host {host}` says which rule applies"
            )),
        },
        None => Finding::new(
            Status::Warn,
            check,
            format!("its certificate is issued by {from}; no CA at hand to tell whether that is Tollgate's"),
        )
        .fix("pass --ca with Tollgate's CA certificate"),
    };
    out.push(finding);
    Some(chain)
}

/// A host outside the catalog: its own certificate, or a refusal when unknown hosts are denied.
async fn tunneled(opts: &Options, proxy: &ProxyUrl, env: &Env, out: &mut Vec<Finding>) {
    let host = &opts.tunneled;
    let check = format!("tunneled {host}");
    let chain = match open_tunnel(proxy, host, opts.timeout).await {
        Tunnel::Open(io) => match server_chain(io, host, opts.timeout).await {
            Ok(chain) => chain,
            Err(e) => {
                out.push(Finding::new(
                    Status::Warn,
                    check,
                    format!("the tunnel opened but {e}: the proxy may have no route to {host}"),
                ));
                return;
            }
        },
        Tunnel::Refused { status: 403, said } => {
            out.push(Finding::new(
                Status::Ok,
                check,
                format!("refused by the proxy's policy (403): {said}"),
            ));
            return;
        }
        Tunnel::Refused { status, said } => {
            out.push(Finding::new(
                if status == 407 {
                    Status::Fail
                } else {
                    Status::Warn
                },
                check,
                format!("the proxy refused the tunnel ({status}): {said}"),
            ));
            return;
        }
        Tunnel::Broken(e) => {
            out.push(Finding::new(Status::Warn, check, e));
            return;
        }
    };
    let from = issuer(&chain[0]);
    if let Some((ca, _)) = &opts.ca
        && verify(&[CertificateDer::from(ca.as_slice())], &chain, host).is_ok()
    {
        out.push(
            Finding::new(
                Status::Fail,
                check,
                "got a certificate from Tollgate's CA: the proxy intercepts it",
            )
            .fix(format!(
                "name a host the proxy tunnels with --tunneled, or check `tollgate policy explain --host {host}`"
            )),
        );
        return;
    }
    // Its own certificate: say whether the roots the clients use would accept it.
    let (roots, whose) = match var(env, "SSL_CERT_FILE") {
        Some(file) => (
            load_certs(Path::new(file)).unwrap_or_default(),
            format!("SSL_CERT_FILE={file}"),
        ),
        None => (
            rustls_native_certs::load_native_certs().certs,
            "the system's roots".to_owned(),
        ),
    };
    out.push(match verify(&roots, &chain, host) {
        Ok(()) => Finding::new(
            Status::Ok,
            check,
            format!("tunneled untouched: its own certificate ({from}), which {whose} accept"),
        ),
        Err(e) => Finding::new(
            Status::Warn,
            check,
            format!("tunneled untouched, but its certificate ({from}) does not verify against {whose}: {e}"),
        ),
    });
}

/// Every certificate in a PEM file, or the one in a DER file.
fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    use rustls_pki_types::pem::PemObject;
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read it: {e}"))?;
    let pem: Vec<_> = CertificateDer::pem_slice_iter(&bytes)
        .filter_map(Result::ok)
        .collect();
    if !pem.is_empty() {
        return Ok(pem);
    }
    match x509_parser::parse_x509_certificate(&bytes) {
        Ok(_) => Ok(vec![CertificateDer::from(bytes)]),
        Err(_) => Err("it holds no certificate".to_owned()),
    }
}

/// Where a client family takes its roots from when none of its variables is set.
#[derive(Debug, Clone, Copy)]
enum Fallback {
    /// The operating system's store.
    System,
    /// A bundle shipped with the client (certifi, Node's Mozilla copy): never Tollgate's CA.
    Bundled(&'static str),
}

/// A client family: the variables it reads for its roots, first set wins, each with whether
/// the file *replaces* the client's roots (rather than adding to them).
struct Family {
    name: &'static str,
    vars: &'static [(&'static str, bool)],
    fallback: Fallback,
    /// A variable that, set to 1, makes the client trust the system's roots as well.
    system_switch: Option<&'static str>,
}

const FAMILIES: &[Family] = &[
    Family {
        name: "curl",
        vars: &[("CURL_CA_BUNDLE", true), ("SSL_CERT_FILE", true)],
        fallback: Fallback::System,
        system_switch: None,
    },
    // openai 3.x and anthropic 2.x (httpx2): SSL_CERT_FILE, else the system's store.
    Family {
        name: "Python SDKs",
        vars: &[("SSL_CERT_FILE", true)],
        fallback: Fallback::System,
        system_switch: None,
    },
    Family {
        name: "Python requests",
        vars: &[("REQUESTS_CA_BUNDLE", true), ("CURL_CA_BUNDLE", true)],
        fallback: Fallback::Bundled("the roots of certifi's bundle"),
        system_switch: None,
    },
    Family {
        name: "Node",
        vars: &[("NODE_EXTRA_CA_CERTS", false)],
        fallback: Fallback::Bundled("Node's built-in Mozilla roots"),
        system_switch: Some("NODE_USE_SYSTEM_CA"),
    },
    Family {
        name: "Claude Code",
        vars: &[("NODE_EXTRA_CA_CERTS", false), ("SSL_CERT_FILE", true)],
        fallback: Fallback::Bundled("its built-in Mozilla roots"),
        system_switch: Some("NODE_USE_SYSTEM_CA"),
    },
    Family {
        name: "Codex CLI",
        vars: &[("CODEX_CA_CERTIFICATE", true), ("SSL_CERT_FILE", true)],
        fallback: Fallback::System,
        system_switch: None,
    },
];

/// Whether a family's roots accept the intercepted leaf (or, with no leaf, hold the CA).
fn trust(
    family: &Family,
    opts: &Options,
    leaf: Option<&[CertificateDer<'static>]>,
    env: &Env,
) -> Finding {
    let check = format!("{} trusts", family.name);
    let judge = |roots: &[CertificateDer<'_>]| -> Option<Result<(), String>> {
        match (leaf, &opts.ca) {
            (Some(chain), _) => Some(verify(roots, chain, &opts.intercepted)),
            (None, Some((ca, _))) => Some(if roots.iter().any(|r| r.as_ref() == ca.as_slice()) {
                Ok(())
            } else {
                Err("Tollgate's CA is not among them".to_owned())
            }),
            (None, None) => None,
        }
    };
    let names = || {
        family
            .vars
            .iter()
            .map(|(v, _)| *v)
            .collect::<Vec<_>>()
            .join(" or ")
    };
    let set = family
        .vars
        .iter()
        .find_map(|(v, replaces)| var(env, v).map(|f| (*v, f, *replaces)));
    let Some((name, file, replaces)) = set else {
        let system = family
            .system_switch
            .is_some_and(|v| var(env, v) == Some("1"));
        return match (family.fallback, system) {
            (Fallback::System, _) | (_, true) => {
                let roots = rustls_native_certs::load_native_certs().certs;
                match judge(&roots) {
                    Some(Ok(())) => Finding::new(
                        Status::Ok,
                        check,
                        format!(
                            "Tollgate's leaf for {} through the system's roots",
                            opts.intercepted
                        ),
                    ),
                    Some(Err(e)) => Finding::new(
                        Status::Fail,
                        check,
                        format!(
                            "{} is not set, and the system's roots do not accept Tollgate's leaf: {e}",
                            names()
                        ),
                    )
                    .fix(ENV_FIX),
                    None => Finding::new(
                        Status::Skip,
                        check,
                        "no leaf and no CA to check the system's roots against",
                    ),
                }
            }
            (Fallback::Bundled(bundle), false) => Finding::new(
                Status::Fail,
                check,
                format!(
                    "{} is not set: it uses {bundle}, which do not include Tollgate's CA",
                    names()
                ),
            )
            .fix(ENV_FIX),
        };
    };
    let shown = format!("{name}={file}");
    let roots = match load_certs(Path::new(file)) {
        Ok(roots) => roots,
        Err(e) => return Finding::new(Status::Fail, check, format!("{shown}: {e}")).fix(ENV_FIX),
    };
    let only_ca = opts
        .ca
        .as_ref()
        .is_some_and(|(ca, _)| roots.iter().all(|r| r.as_ref() == ca.as_slice()));
    match judge(&roots) {
        Some(Ok(())) if replaces && (only_ca || roots.len() == 1) => Finding::new(
            Status::Warn,
            check,
            format!("Tollgate's leaf ({shown}), but that file replaces its roots and holds one certificate: every other HTTPS host stops verifying for it"),
        )
        .fix(format!("point {name} at the ca-bundle.pem `tollgate env` writes (the system's roots plus Tollgate's CA)")),
        Some(Ok(())) => Finding::new(Status::Ok, check, format!("Tollgate's leaf for {} ({shown}, {} certificate{})", opts.intercepted, roots.len(), if roots.len() == 1 { "" } else { "s" })),
        Some(Err(e)) => Finding::new(Status::Fail, check, format!("{shown} does not accept Tollgate's leaf: {e}")).fix(ENV_FIX),
        None => Finding::new(Status::Skip, check, format!("{shown}: no leaf and no CA to check it against")),
    }
}

/// A client run for real, with the environment as it is (its own TLS library and roots).
struct Client {
    name: &'static str,
    program: &'static str,
    args: &'static [&'static str],
}

/// Python: the SDKs' own context when httpx2 is installed (SSL_CERT_FILE, else the system's
/// store), else the standard library's default context. A handshake only.
const PYTHON_STEPS: &str = r#"
import base64, os, socket, ssl, sys
host, port, target = os.environ["TG_PROXY_HOST"], int(os.environ["TG_PROXY_PORT"]), os.environ["TG_TARGET"]
try:
    import httpx2
    ctx, how = httpx2.create_ssl_context(), "httpx2"
except ImportError:
    ctx, how = ssl.create_default_context(), "ssl"
s = socket.create_connection((host, port), timeout=float(os.environ["TG_TIMEOUT"]))
req = "CONNECT %s:443 HTTP/1.1\r\nHost: %s:443\r\n" % (target, target)
if os.environ.get("TG_AUTH"):
    req += "Proxy-Authorization: %s\r\n" % os.environ["TG_AUTH"]
s.sendall((req + "\r\n").encode())
head = b""
while b"\r\n\r\n" not in head:
    chunk = s.recv(4096)
    if not chunk:
        break
    head += chunk
status = head.split(b"\r\n", 1)[0].decode("latin-1")
if " 200" not in status:
    print("CONNECT: " + status)
    sys.exit(3)
try:
    ctx.wrap_socket(s, server_hostname=target).close()
except ssl.SSLError as e:
    print("%s (%s)" % (e, how))
    sys.exit(2)
print("handshake verified (%s)" % how)
"#;

/// [`PYTHON_STEPS`] with any error it meets said on one line.
const PYTHON: &str = r#"
import sys
try:
    exec(compile(sys.argv[1], "doctor", "exec"))
except SystemExit:
    raise
except BaseException as e:
    print("%s: %s" % (type(e).__name__, e))
    sys.exit(3)
"#;

/// Node: `tls.connect` over a CONNECT tunnel; Node reads NODE_EXTRA_CA_CERTS at start.
const NODE: &str = r#"
const http = require('http'), tls = require('tls');
const e = process.env, target = e.TG_TARGET;
const headers = { host: target + ':443' };
if (e.TG_AUTH) headers['proxy-authorization'] = e.TG_AUTH;
const req = http.request({ host: e.TG_PROXY_HOST, port: +e.TG_PROXY_PORT, method: 'CONNECT', path: target + ':443', headers });
req.on('connect', (res, socket) => {
  if (res.statusCode !== 200) { console.log('CONNECT: ' + res.statusCode); process.exit(3); }
  const t = tls.connect({ socket, servername: target }, () => { console.log('handshake verified'); t.destroy(); process.exit(0); });
  t.on('error', (err) => { console.log((err.code || '') + ' ' + err.message); process.exit(2); });
});
req.on('error', (err) => { console.log(err.message); process.exit(3); });
process.on('uncaughtException', (err) => { console.log(String(err && err.message || err)); process.exit(3); });
req.end();
"#;

const CLIENTS: &[Client] = &[
    Client {
        name: "curl",
        program: "curl",
        args: &[],
    },
    Client {
        name: "python3",
        program: "python3",
        args: &["-c", PYTHON, PYTHON_STEPS],
    },
    Client {
        name: "node",
        program: "node",
        args: &["-e", NODE],
    },
];

/// Whether `program` is on `PATH`.
fn on_path(program: &str, env: &Env) -> bool {
    var(env, "PATH").is_some_and(|path| {
        std::env::split_paths(path).any(|dir| {
            let p = dir.join(program);
            p.is_file() || p.with_extension("exe").is_file()
        })
    })
}

async fn run_client(client: &Client, opts: &Options, proxy: &ProxyUrl, env: &Env) -> Finding {
    let check = format!("{} run", client.name);
    if !on_path(client.program, env) {
        return Finding::new(
            Status::Skip,
            check,
            format!("{} is not installed", client.program),
        );
    }
    let mut cmd = tokio::process::Command::new(client.program);
    cmd.args(client.args)
        .env_clear()
        .envs(env)
        // The proxy goes through the environment, never the command line (where `ps` shows
        // its token), and nothing may send the check around it.
        .env("TG_PROXY_HOST", &proxy.host)
        .env("TG_PROXY_PORT", proxy.port.to_string())
        .env("TG_TARGET", &opts.intercepted)
        .env("TG_TIMEOUT", opts.timeout.as_secs().max(1).to_string())
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    if let Some(auth) = &proxy.authorization {
        cmd.env("TG_AUTH", auth);
    }
    if client.program == "curl" {
        let url = match &proxy.authorization {
            Some(_) => opts.proxy.url.clone(),
            None => format!("http://{}:{}", proxy.host, proxy.port),
        };
        cmd.env("HTTPS_PROXY", &url)
            .env("https_proxy", &url)
            .args(["-sS", "-I", "-w", "%{http_code}", "-o"])
            .arg(if cfg!(windows) { "NUL" } else { "/dev/null" })
            .arg("--max-time")
            .arg(opts.timeout.as_secs().max(1).to_string())
            .arg(format!("https://{}/", opts.intercepted));
    }
    let output =
        match tokio::time::timeout(opts.timeout + Duration::from_secs(2), cmd.output()).await {
            Ok(Ok(o)) => o,
            Ok(Err(e)) => {
                return Finding::new(
                    Status::Warn,
                    check,
                    format!("cannot run {}: {e}", client.program),
                );
            }
            Err(_) => return Finding::new(Status::Fail, check, "no answer in time"),
        };
    // curl says what went wrong on its first line of standard error (standard output has
    // only `000`); the scripts below print one line of their own.
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let first_err = stderr.lines().map(str::trim).find(|l| !l.is_empty());
    let last_out = stdout.lines().map(str::trim).rfind(|l| !l.is_empty());
    let said = proxy.scrub(
        match (client.program, output.status.success()) {
            ("curl", false) => first_err.or(last_out),
            _ => last_out.or(first_err),
        }
        .unwrap_or("(nothing printed)"),
    );
    if output.status.success() {
        let said = if client.program == "curl" {
            format!(
                "HEAD https://{}/ through the proxy: HTTP {said}",
                opts.intercepted
            )
        } else {
            format!("{} through the proxy: {said}", opts.intercepted)
        };
        return Finding::new(Status::Ok, check, said);
    }
    Finding::new(
        Status::Fail,
        check,
        format!("{} through the proxy failed: {said}", opts.intercepted),
    )
    .fix(ENV_FIX)
}

/// The findings as lines for a terminal, and a last line that counts them.
pub fn render(header: &str, findings: &[Finding]) -> String {
    use std::fmt::Write as _;
    let mut out = format!("{header}\n");
    let width = findings.iter().map(|f| f.check.len()).max().unwrap_or(0);
    for f in findings {
        let tag = match f.status {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
            Status::Skip => "skip",
        };
        let _ = writeln!(out, "{tag:<5} {:<width$}  {}", f.check, f.said);
        if let Some(fix) = &f.fix {
            let _ = writeln!(out, "{:<5} {:<width$}  fix: {fix}", "", "");
        }
    }
    let failed = failures(findings);
    let warned = findings.iter().filter(|f| f.status == Status::Warn).count();
    let _ = writeln!(
        out,
        "{}",
        match (failed, warned) {
            (0, 0) => "Everything checked is in order.".to_owned(),
            (0, w) => format!("Nothing failed; {w} warning(s)."),
            (f, w) => format!("{f} check(s) failed, {w} warning(s)."),
        }
    );
    out
}

/// How many checks failed.
pub fn failures(findings: &[Finding]) -> usize {
    findings.iter().filter(|f| f.status == Status::Fail).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_urls_parse_as_clients_read_them() {
        let p = parse_proxy("http://ci:s3cr%2Ft@127.0.0.1:8080/").unwrap();
        assert_eq!((p.host.as_str(), p.port), ("127.0.0.1", 8080));
        use base64::Engine as _;
        let basic = base64::engine::general_purpose::STANDARD.encode("ci:s3cr/t");
        assert_eq!(p.authorization, Some(format!("Basic {basic}")));
        assert_eq!(p.shown, "http://ci:***@127.0.0.1:8080");
        assert_eq!(p.scrub("bad s3cr/t here"), "bad *** here");
        let p = parse_proxy("proxy.corp:3128").unwrap();
        assert_eq!(
            (p.host.as_str(), p.port, p.authorization),
            ("proxy.corp", 3128, None)
        );
        let p = parse_proxy("http://[::1]:8080").unwrap();
        assert_eq!((p.host.as_str(), p.port), ("::1", 8080));
        assert_eq!(parse_proxy("http://proxy.corp").unwrap().port, 80);
        assert!(parse_proxy("https://proxy.corp:443").is_err());
        assert!(parse_proxy("http://proxy.corp:http").is_err());
        assert!(parse_proxy("http://:8080").is_err());
    }

    fn options(proxy: &str, from: &str) -> Options {
        Options {
            proxy: ProxySource {
                url: proxy.to_owned(),
                from: from.to_owned(),
            },
            ca: None,
            intercepted: "api.anthropic.com".to_owned(),
            tunneled: "github.com".to_owned(),
            timeout: Duration::from_secs(1),
            run_clients: false,
        }
    }

    fn variables_say(opts: &Options, env: &[(&str, &str)]) -> Vec<(Status, String)> {
        let env: Env = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let proxy = parse_proxy(&opts.proxy.url).unwrap();
        let mut out = Vec::new();
        proxy_variables(opts, &proxy, &env, &mut out);
        out.into_iter().map(|f| (f.status, f.check)).collect()
    }

    #[test]
    fn proxy_variables_are_judged_as_clients_read_them() {
        let checked = options("http://127.0.0.1:8080", "--proxy");
        let node = ("NODE_USE_ENV_PROXY", "1");
        let good = ("HTTPS_PROXY", "http://127.0.0.1:8080");
        assert_eq!(
            variables_say(&checked, &[good, node]),
            [(Status::Ok, "HTTPS_PROXY".to_owned())]
        );
        for bad in ["https://127.0.0.1:8080", "http://127.0.0.1:80a"] {
            assert_eq!(
                variables_say(&checked, &[("https_proxy", bad), node]),
                [(Status::Fail, "HTTPS_PROXY".to_owned())],
                "{bad}"
            );
        }
        assert_eq!(
            variables_say(&checked, &[("HTTPS_PROXY", "http://10.0.0.1:3128"), node])[0].0,
            Status::Warn,
            "clients go elsewhere than the proxy checked"
        );
        let said = variables_say(&checked, &[good, ("no_proxy", "*")]);
        assert!(
            said.contains(&(Status::Fail, "no_proxy".to_owned())),
            "{said:?}"
        );
        assert!(
            said.contains(&(Status::Warn, "NODE_USE_ENV_PROXY".to_owned())),
            "{said:?}"
        );
    }

    #[test]
    fn no_proxy_matches_as_curl_does() {
        for list in [
            "*",
            "api.anthropic.com",
            ".anthropic.com",
            "anthropic.com",
            "localhost, *.anthropic.com",
            "anthropic.com:443",
        ] {
            assert!(bypasses(list, "api.anthropic.com"), "{list}");
        }
        for list in [
            "localhost,127.0.0.1,::1",
            "openai.com",
            "pi.anthropic.com",
            "",
        ] {
            assert!(!bypasses(list, "api.anthropic.com"), "{list}");
        }
    }

    #[test]
    fn refusal_messages_come_from_each_error_shape() {
        assert_eq!(
            refusal_message(br#"{"type":"error","error":{"type":"x","message":"denied"}}"#),
            "denied"
        );
        assert_eq!(
            refusal_message(br#"[{"error":{"message":"gemini says no"}}]"#),
            "gemini says no"
        );
        assert_eq!(refusal_message(b"plain words"), "plain words");
    }

    #[test]
    fn render_counts_failures_and_prints_fixes() {
        let findings = vec![
            Finding::new(Status::Ok, "proxy", "up"),
            Finding::new(Status::Fail, "curl trusts", "no").fix("do this"),
        ];
        let text = render("Tollgate doctor", &findings);
        assert!(text.contains("FAIL  curl trusts  no\n"), "{text}");
        assert!(text.contains("fix: do this"), "{text}");
        assert!(
            text.ends_with("1 check(s) failed, 0 warning(s).\n"),
            "{text}"
        );
        assert_eq!(failures(&findings), 1);
    }
}
