//! The whole proxy under load, side by side with what users compare it to, in one run on
//! loopback: requests sent directly to a fast fake upstream, through a no-op hudsucker proxy on
//! the same CA and connector (the floor of Tollgate's own stack), through the Tollgate binary
//! with its defaults (masking and recording on, an approval rule loaded that does not trigger),
//! through Tollgate with recording off, and through mitmproxy when a `mitmdump` is given.
//!
//! Each request is an Anthropic Messages POST answered with a streamed (SSE) answer. For every
//! path, request size, connection mode (kept-alive tunnels, or a new CONNECT and TLS handshake
//! per request) and concurrency it measures requests/s, latency p50/p99, and the time to the
//! first SSE event; then Tollgate's memory idle and with many streams open at once. It prints a
//! table and writes the figures as JSON for `scripts/bench-report`.
//!
//! Run it through `scripts/bench`, which builds the release binary first.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::{Value, json};
use std::convert::Infallible;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

const USAGE: &str = "usage: bench [--paths direct,noop,tollgate,unrecorded,postgres,mitmproxy] \
[--concurrency 1,4,20,64] [--modes keepalive,new] [--sizes 10240,204800] [--seconds S] \
[--streams N] [--bin PATH] [--mitmdump PATH] [--postgres URL] [--out FILE] [--keep DIR]";

const HOST: &str = "api.anthropic.com";

struct Options {
    paths: Vec<String>,
    concurrency: Vec<usize>,
    modes: Vec<Mode>,
    sizes: Vec<usize>,
    seconds: f64,
    /// Streams held open at once for the memory figure (0: skip it).
    streams: usize,
    bin: PathBuf,
    mitmdump: Option<PathBuf>,
    /// A PostgreSQL database for the `postgres` path (Tollgate recording there, not to SQLite).
    postgres: Option<String>,
    out: Option<PathBuf>,
    keep: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    KeepAlive,
    NewConnection,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::KeepAlive => "keepalive",
            Mode::NewConnection => "new",
        }
    }
}

fn list<T>(v: &str, parse: impl Fn(&str) -> Result<T, String>) -> Result<Vec<T>, String> {
    v.split(',')
        .filter(|s| !s.is_empty())
        .map(|s| parse(s.trim()))
        .collect()
}

/// Every path the benchmark knows, in the order its table shows them.
const PATHS: [&str; 6] = [
    "direct",
    "noop",
    "tollgate",
    "unrecorded",
    "postgres",
    "mitmproxy",
];

fn options() -> Result<Options, String> {
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/target")));
    let mut o = Options {
        paths: PATHS.map(String::from).to_vec(),
        concurrency: vec![1, 4, 20, 64],
        modes: vec![Mode::KeepAlive, Mode::NewConnection],
        sizes: vec![10 * 1024, 200 * 1024],
        seconds: 3.0,
        streams: 1000,
        bin: target.join("release/tollgate"),
        mitmdump: None,
        postgres: None,
        out: None,
        keep: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))
        };
        let number = |s: &str| {
            s.parse::<usize>()
                .map_err(|_| format!("{flag}: not a number: {s}"))
        };
        match flag.as_str() {
            "--paths" => o.paths = list(&value()?, |s| Ok(s.to_owned()))?,
            "--concurrency" => o.concurrency = list(&value()?, number)?,
            "--sizes" => o.sizes = list(&value()?, number)?,
            "--modes" => {
                o.modes = list(&value()?, |s| match s {
                    "keepalive" => Ok(Mode::KeepAlive),
                    "new" => Ok(Mode::NewConnection),
                    _ => Err(format!("--modes: keepalive or new, not {s}")),
                })?
            }
            "--seconds" => {
                let v = value()?;
                o.seconds = v
                    .parse()
                    .map_err(|_| format!("--seconds: not a number: {v}"))?
            }
            "--streams" => o.streams = number(&value()?)?,
            "--bin" => o.bin = PathBuf::from(value()?),
            "--mitmdump" => o.mitmdump = Some(PathBuf::from(value()?)),
            "--postgres" => o.postgres = Some(value()?),
            "--out" => o.out = Some(PathBuf::from(value()?)),
            "--keep" => o.keep = Some(PathBuf::from(value()?)),
            // Internal: the no-op hudsucker proxy, run as its own process.
            "--serve-noop" => {
                let ca_dir = PathBuf::from(value()?);
                let port = number(&value()?)?;
                serve_noop(&ca_dir, port as u16);
            }
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    for p in &o.paths {
        if !PATHS.contains(&p.as_str()) {
            return Err(format!("--paths: unknown path {p}"));
        }
    }
    if o.mitmdump.is_none() {
        o.paths.retain(|p| p != "mitmproxy");
    }
    if o.postgres.is_none() {
        o.paths.retain(|p| p != "postgres");
    }
    if o.concurrency.contains(&0) || o.seconds <= 0.0 {
        return Err("concurrency and --seconds must be positive".into());
    }
    Ok(o)
}

// ---------------------------------------------------------------------------------------------
// The fake upstream: HTTPS (h2 and HTTP/1.1) on loopback, answering every POST with the same
// streamed Anthropic answer, sent event by event as fast as the connection takes it.

fn answer_events() -> Vec<Bytes> {
    let mut events = vec![
        format!(
            "event: message_start\ndata: {}\n\n",
            json!({"type":"message_start","message":{"id":"msg_bench","type":"message",
                "role":"assistant","model":"claude-sonnet-4-5","content":[],
                "usage":{"input_tokens":2500,"output_tokens":1}}})
        ),
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n".to_owned(),
    ];
    for i in 0..20 {
        events.push(format!(
            "event: content_block_delta\ndata: {}\n\n",
            json!({"type":"content_block_delta","index":0,
                "delta":{"type":"text_delta","text":format!("The function at line {i} reads the configuration and ")}})
        ));
    }
    events.push(
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n"
            .to_owned(),
    );
    events.push("event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":240}}\n\n".to_owned());
    events.push("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n".to_owned());
    events.into_iter().map(Bytes::from).collect()
}

/// Held answers (requests with `x-bench-hold`) send their first event, then wait until this
/// turns true.
fn release() -> &'static tokio::sync::watch::Sender<bool> {
    static RELEASE: std::sync::OnceLock<tokio::sync::watch::Sender<bool>> =
        std::sync::OnceLock::new();
    RELEASE.get_or_init(|| tokio::sync::watch::channel(false).0)
}

async fn start_upstream() -> SocketAddr {
    let certs = CertificateDer::pem_file_iter(format!("{FIXTURES}/upstream.crt"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(format!("{FIXTURES}/upstream.key")).unwrap();
    let mut config = rustls::ServerConfig::builder_with_provider(tollgate::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let events: Arc<[Bytes]> = answer_events().into();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let events = events.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let events = events.clone();
                    async move {
                        let held = req.headers().contains_key("x-bench-hold");
                        // Read the whole request, as a model API does before answering.
                        let _ = req.into_body().collect().await;
                        let frames = futures_util::stream::unfold(0, move |i| {
                            let events = events.clone();
                            async move {
                                if i == 1 && held {
                                    let mut released = release().subscribe();
                                    let _ = released.wait_for(|r| *r).await;
                                }
                                let event = events.get(i)?.clone();
                                Some((Ok::<_, Infallible>(Frame::data(event)), i + 1))
                            }
                        });
                        Ok::<_, Infallible>(
                            http::Response::builder()
                                .header("content-type", "text/event-stream")
                                .header("cache-control", "no-cache")
                                .body(StreamBody::new(frames))
                                .unwrap(),
                        )
                    }
                });
                // Held answers stay open until all are in: a real API's limit of concurrent
                // streams per connection (hyper's default is 200) would starve the rest.
                let mut builder =
                    hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                builder.http2().max_concurrent_streams(100_000);
                let _ = builder.serve_connection(TokioIo::new(tls), service).await;
            });
        }
    });
    addr
}

/// Source files a tool read: real code (this project's own), so that masking scans text as it
/// meets it and the store compresses bodies as it would compress an agent's. None of them holds
/// a secret: the common case, where masking looks at everything and replaces nothing.
const SOURCES: &[&str] = &[
    include_str!("../src/proxy/handler.rs"),
    include_str!("../src/proxy/pipeline.rs"),
    include_str!("../src/proxy/body.rs"),
    include_str!("../src/proxy/tunnel.rs"),
    include_str!("../src/record/store.rs"),
    include_str!("../src/record/mod.rs"),
    include_str!("../src/policy/mod.rs"),
    include_str!("../src/mask/json.rs"),
    include_str!("../src/mask/restore.rs"),
    include_str!("../src/mask/engine.rs"),
];

/// `n` bytes of the source files, cut at a character boundary, starting `skip` bytes in.
fn code(skip: usize, n: usize) -> String {
    let mut code = String::new();
    let mut skip = skip;
    for source in SOURCES.iter().cycle().take(SOURCES.len() * 4) {
        if code.len() >= n {
            break;
        }
        if skip >= source.len() {
            skip -= source.len();
            continue;
        }
        let mut from = skip;
        while !source.is_char_boundary(from) {
            from += 1;
        }
        skip = 0;
        let mut end = source.len().min(from + n - code.len());
        while !source.is_char_boundary(end) {
            end -= 1;
        }
        code.push_str(&source[from..end]);
    }
    code
}

/// An Anthropic Messages request of about `size` bytes, as an agent sends a conversation's next
/// turn: a system prompt, tool definitions and the history so far (a tool result carrying source
/// files), which every request repeats byte for byte, then a new tool result of about an eighth
/// of the size that no request before it carried.
struct Conversation {
    /// The body up to the new tool result's text, and after it.
    head: Bytes,
    tail: Bytes,
    /// New results' texts (different code each), escaped for a JSON string; requests take
    /// them in turn and number them.
    new: Vec<String>,
}

/// Different new tool results the requests take in turn.
const NEW_RESULTS: usize = 16;

impl Conversation {
    fn new(size: usize) -> Self {
        const MARK: &str = "\\u0000NEW\\u0000";
        let want = size.saturating_sub(1800);
        let body = json!({
            "model": "claude-sonnet-4-5",
            "max_tokens": 4096,
            "stream": true,
            "system": [{"type":"text","text":"You are an interactive CLI tool that helps users with software engineering tasks. Use the tools available to you."}],
            "tools": [
                {"name":"Read","description":"Reads a file from the local filesystem.","input_schema":{"type":"object","properties":{"file_path":{"type":"string"}},"required":["file_path"]}},
                {"name":"Edit","description":"Performs exact string replacements in files.","input_schema":{"type":"object","properties":{"file_path":{"type":"string"},"old_string":{"type":"string"},"new_string":{"type":"string"}},"required":["file_path","old_string","new_string"]}},
                {"name":"Bash","description":"Executes a given bash command.","input_schema":{"type":"object","properties":{"command":{"type":"string"}},"required":["command"]}}
            ],
            "messages": [
                {"role":"user","content":[{"type":"text","text":"Why does loading the settings fail when the file has a blank line?"}]},
                {"role":"assistant","content":[{"type":"tool_use","id":"toolu_01","name":"Read","input":{"file_path":"src/settings.rs"}}]},
                {"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_01","content":code(0, want - want / 8)}]},
                {"role":"assistant","content":[{"type":"tool_use","id":"toolu_02","name":"Read","input":{"file_path":"src/loader.rs"}}]},
                {"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_02","content":"\u{0}NEW\u{0}"}]}
            ]
        });
        let text = serde_json::to_string(&body).unwrap();
        let (head, tail) = text.split_once(MARK).expect("the mark is in the body");
        let new = (0..NEW_RESULTS)
            .map(|k| {
                let new = serde_json::to_string(&code(want + k * (want / 8), want / 8)).unwrap();
                new[1..new.len() - 1].to_owned()
            })
            .collect();
        Self {
            head: Bytes::copy_from_slice(head.as_bytes()),
            tail: Bytes::copy_from_slice(tail.as_bytes()),
            new,
        }
    }

    /// A request's length (they differ by a few bytes, as their new results do): the first's.
    fn len(&self) -> usize {
        self.head.len() + 13 + self.new[0].len() + self.tail.len()
    }

    /// The body of request `n`: its number takes 12 digits and a space.
    fn turn(&self, n: u64) -> Bytes {
        let number = format!("{n:>12} ");
        let new = &self.new[n as usize % NEW_RESULTS];
        let mut body =
            Vec::with_capacity(self.head.len() + number.len() + new.len() + self.tail.len());
        body.extend_from_slice(&self.head);
        body.extend_from_slice(number.as_bytes());
        body.extend_from_slice(new.as_bytes());
        body.extend_from_slice(&self.tail);
        Bytes::from(body)
    }
}

/// Requests sent so far, numbering each one's new turn.
static TURNS: AtomicU64 = AtomicU64::new(0);

// ---------------------------------------------------------------------------------------------
// The paths under test.

struct Path_ {
    name: String,
    /// The proxy's address; `None` for direct.
    proxy: Option<SocketAddr>,
    /// Roots the client trusts for `HOST` on this path.
    roots: Arc<rustls::ClientConfig>,
    child: Option<Child>,
}

fn client_config(ca_pem: &[u8]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(tollgate::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// Starts `cmd`, and waits for a line on its stderr or stdout that contains `marker`; returns
/// the text after it.
fn start_child(
    mut cmd: Command,
    marker: &'static str,
    log: PathBuf,
) -> Result<(Child, String), String> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
    let (tx, rx) = std::sync::mpsc::channel();
    let file = Arc::new(std::sync::Mutex::new(std::fs::File::create(&log).ok()));
    let out: Box<dyn std::io::Read + Send> = Box::new(child.stdout.take().unwrap());
    let err: Box<dyn std::io::Read + Send> = Box::new(child.stderr.take().unwrap());
    for stream in [out, err] {
        let tx = tx.clone();
        let file = file.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if let Some(rest) = line.split(marker).nth(1)
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(rest.trim().to_owned());
                }
                if let Some(f) = file.lock().unwrap().as_mut() {
                    use std::io::Write;
                    let _ = writeln!(f, "{line}");
                }
            }
        });
    }
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(rest) => Ok((child, rest)),
        Err(_) => {
            let _ = child.kill();
            Err(format!("{cmd:?} did not start; see {}", log.display()))
        }
    }
}

fn start_tollgate(
    o: &Options,
    dir: &Path,
    name: &str,
    upstream: SocketAddr,
    recording: bool,
) -> Result<Path_, String> {
    let home = dir.join(name);
    let policies = home.join("policies");
    std::fs::create_dir_all(&policies).map_err(|e| e.to_string())?;
    // An approval rule that is loaded but never triggers: its cost is part of the defaults.
    std::fs::write(
        policies.join("approvals.yaml"),
        "rules:\n  - name: private-keys\n    when: { findings: [private-key] }\n    mode: hold\n    wait: 60s\n",
    )
    .map_err(|e| e.to_string())?;
    if !recording {
        std::fs::write(
            policies.join("recording.yaml"),
            "retention: { bodies: 30d, records: 400d }\nenabled: false\n",
        )
        .map_err(|e| e.to_string())?;
    }
    let mut cmd = Command::new(&o.bin);
    cmd.arg("run")
        .args(["--listen", "127.0.0.1:0", "--admin", "off"])
        .arg("--ca-dir")
        .arg(dir.join("ca"))
        .arg("--policies")
        .arg(&policies)
        .arg("--db")
        .arg(match (&o.postgres, name) {
            (Some(url), "postgres") => PathBuf::from(url),
            _ => home.join("tollgate.db"),
        })
        .arg("--upstream-ca")
        .arg(format!("{FIXTURES}/upstream-ca.crt"))
        .arg("--connect-to")
        .arg(format!("{HOST}:443:127.0.0.1:{}", upstream.port()))
        .env_remove("RUST_LOG");
    let (child, addr) = start_child(cmd, "listening on ", home.join("proxy.log"))
        .map_err(|e| format!("{e} (build it with `cargo build --release`)"))?;
    let ca = std::fs::read(dir.join("ca/tollgate-ca.crt")).map_err(|e| e.to_string())?;
    Ok(Path_ {
        name: name.to_owned(),
        proxy: Some(addr.parse().map_err(|e| format!("{addr}: {e}"))?),
        roots: client_config(&ca),
        child: Some(child),
    })
}

/// The no-op MITM proxy: hudsucker with its defaults, Tollgate's leaf issuer and CA, and
/// Tollgate's dialer and upstream TLS settings. Runs until killed.
fn serve_noop(ca_dir: &Path, upstream_port: u16) -> ! {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        tollgate::tls::install_default_provider();
        let ca = tollgate::tls::ca::RootCa::load(ca_dir).unwrap();
        let leaves =
            tollgate::tls::ca::LeafIssuer::new(ca, 1000, tollgate::tls::provider()).unwrap();
        let connect_to = format!("{HOST}:443:127.0.0.1:{upstream_port}");
        let dialer = tollgate::proxy::dial::Dialer::for_operator(
            vec![connect_to.parse().unwrap()],
            Duration::from_secs(10),
        );
        let upstream_ca = PathBuf::from(format!("{FIXTURES}/upstream-ca.crt"));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tollgate::tls::upstream::client_config(&[upstream_ca]).unwrap())
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(dialer);
        // With TCP_NODELAY, as Tollgate's listener has it (accepted connections inherit it):
        // otherwise Nagle's algorithm meets delayed ACKs and every answer waits ~40 ms.
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_nodelay(true).unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = socket.listen(1024).unwrap();
        eprintln!("listening on {}", listener.local_addr().unwrap());
        let proxy = hudsucker::Proxy::builder()
            .with_listener(listener)
            .with_ca(leaves)
            .with_http_connector(connector)
            .build()
            .unwrap();
        let _ = proxy.start().await;
    });
    std::process::exit(0)
}

fn start_noop(dir: &Path, upstream: SocketAddr) -> Result<Path_, String> {
    let mut cmd = Command::new(std::env::current_exe().map_err(|e| e.to_string())?);
    cmd.arg("--serve-noop")
        .arg(dir.join("ca"))
        .arg(upstream.port().to_string());
    let (child, addr) = start_child(cmd, "listening on ", dir.join("noop.log"))?;
    let ca = std::fs::read(dir.join("ca/tollgate-ca.crt")).map_err(|e| e.to_string())?;
    Ok(Path_ {
        name: "noop".into(),
        proxy: Some(addr.parse().map_err(|e| format!("{addr}: {e}"))?),
        roots: client_config(&ca),
        child: Some(child),
    })
}

/// mitmdump with its defaults, told to send `HOST` to the fake upstream and to trust its CA.
fn start_mitmproxy(mitmdump: &Path, dir: &Path, upstream: SocketAddr) -> Result<Path_, String> {
    let confdir = dir.join("mitmproxy");
    std::fs::create_dir_all(&confdir).map_err(|e| e.to_string())?;
    let addon = confdir.join("to_upstream.py");
    std::fs::write(
        &addon,
        format!(
            "def server_connect(data):\n    if data.server.address[0] == '{HOST}':\n        data.server.address = ('127.0.0.1', {})\n",
            upstream.port()
        ),
    )
    .map_err(|e| e.to_string())?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let mut cmd = Command::new(mitmdump);
    cmd.args([
        "--listen-host",
        "127.0.0.1",
        "--listen-port",
        &port.to_string(),
    ])
    .args(["--set", &format!("confdir={}", confdir.display())])
    .args([
        "--set",
        &format!("ssl_verify_upstream_trusted_ca={FIXTURES}/upstream-ca.crt"),
    ])
    .args(["--set", "flow_detail=0", "-s"])
    .arg(&addon);
    let (child, _) = start_child(cmd, "listening at", dir.join("mitmproxy.log"))?;
    let ca = std::fs::read(confdir.join("mitmproxy-ca-cert.pem")).map_err(|e| e.to_string())?;
    Ok(Path_ {
        name: "mitmproxy".into(),
        proxy: Some(SocketAddr::from(([127, 0, 0, 1], port))),
        roots: client_config(&ca),
        child: Some(child),
    })
}

// ---------------------------------------------------------------------------------------------
// The load generator: HTTP/1.1 over TLS, through a CONNECT tunnel when the path has a proxy.

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(path: &Path_, upstream: SocketAddr) -> Result<Sender, String> {
    let tcp = TcpStream::connect(path.proxy.unwrap_or(upstream))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    let mut tcp = tcp;
    if path.proxy.is_some() {
        tcp.write_all(
            format!("CONNECT {HOST}:443 HTTP/1.1\r\nHost: {HOST}:443\r\n\r\n").as_bytes(),
        )
        .await
        .map_err(|e| format!("CONNECT: {e}"))?;
        let mut head = Vec::with_capacity(128);
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if tcp
                .read(&mut byte)
                .await
                .map_err(|e| format!("CONNECT: {e}"))?
                == 0
            {
                return Err("CONNECT: the proxy closed the connection".into());
            }
            head.push(byte[0]);
            if head.len() > 8192 {
                return Err("CONNECT: answer head too long".into());
            }
        }
        if !head.starts_with(b"HTTP/1.1 200") && !head.starts_with(b"HTTP/1.0 200") {
            return Err(format!(
                "CONNECT: {}",
                String::from_utf8_lossy(&head).trim()
            ));
        }
    }
    let tls = tokio_rustls::TlsConnector::from(path.roots.clone())
        .connect(ServerName::try_from(HOST).unwrap(), tcp)
        .await
        .map_err(|e| format!("TLS: {e}"))?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| format!("HTTP: {e}"))?;
    tokio::spawn(conn);
    Ok(sender)
}

/// One exchange's timings, in microseconds since its request began.
struct Timing {
    first_event: u32,
    total: u32,
}

async fn exchange(sender: &mut Sender, body: Bytes) -> Result<Timing, String> {
    let start = Instant::now();
    let req = http::Request::post("/v1/messages")
        .header("host", HOST)
        .header("content-type", "application/json")
        .header("x-api-key", "sk-ant-api03-bench")
        .header("anthropic-version", "2023-06-01")
        .body(Full::new(body))
        .unwrap();
    sender.ready().await.map_err(|e| format!("HTTP: {e}"))?;
    let res = sender
        .send_request(req)
        .await
        .map_err(|e| format!("HTTP: {e}"))?;
    if res.status() != 200 {
        let status = res.status();
        let text = res
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        return Err(format!(
            "status {status}: {}",
            String::from_utf8_lossy(&text)
        ));
    }
    let mut body = res.into_body();
    let mut first_event = None;
    let mut bytes = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("answer: {e}"))?;
        if let Some(data) = frame.data_ref() {
            bytes += data.len();
            if first_event.is_none() && memchr::memmem::find(data, b"\n\n").is_some() {
                first_event = Some(start.elapsed());
            }
        }
    }
    let total = start.elapsed();
    if bytes == 0 {
        return Err("empty answer".into());
    }
    Ok(Timing {
        first_event: first_event.unwrap_or(total).as_micros() as u32,
        total: total.as_micros() as u32,
    })
}

struct Run {
    requests: usize,
    errors: usize,
    first_error: Option<String>,
    seconds: f64,
    totals: Vec<u32>,
    first_events: Vec<u32>,
}

async fn load(
    path: Arc<Path_>,
    upstream: SocketAddr,
    mode: Mode,
    body: Arc<Conversation>,
    concurrency: usize,
    warmup: Duration,
    measure: Duration,
) -> Run {
    let started = Instant::now();
    let measuring_from = started + warmup;
    let until = measuring_from + measure;
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let path = path.clone();
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            let mut run = Run {
                requests: 0,
                errors: 0,
                first_error: None,
                seconds: 0.0,
                totals: Vec::new(),
                first_events: Vec::new(),
            };
            let mut sender: Option<Sender> = None;
            loop {
                let now = Instant::now();
                if now >= until {
                    break;
                }
                let begun = Instant::now();
                let result = async {
                    if mode == Mode::NewConnection || sender.is_none() {
                        sender = Some(connect(&path, upstream).await?);
                    }
                    exchange(
                        sender.as_mut().unwrap(),
                        body.turn(TURNS.fetch_add(1, Ordering::Relaxed)),
                    )
                    .await
                }
                .await;
                if begun < measuring_from || Instant::now() > until {
                    continue;
                }
                match result {
                    Ok(t) => {
                        run.requests += 1;
                        // A new connection's latency includes its CONNECT and handshake.
                        let setup = (begun.elapsed().as_micros() as u32).saturating_sub(t.total);
                        run.totals.push(t.total + setup);
                        run.first_events.push(t.first_event + setup);
                    }
                    Err(e) => {
                        run.errors += 1;
                        sender = None;
                        run.first_error.get_or_insert(e);
                    }
                }
            }
            run
        }));
    }
    let mut all = Run {
        requests: 0,
        errors: 0,
        first_error: None,
        seconds: measure.as_secs_f64(),
        totals: Vec::new(),
        first_events: Vec::new(),
    };
    for t in tasks {
        let r = t.await.unwrap();
        all.requests += r.requests;
        all.errors += r.errors;
        if all.first_error.is_none() {
            all.first_error = r.first_error;
        }
        all.totals.extend(r.totals);
        all.first_events.extend(r.first_events);
    }
    all
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

/// Waits until process `pid` has been nearly idle for 100 ms (at most a minute); how long it
/// was busy before that.
async fn quiet(pid: u32) -> Duration {
    let start = Instant::now();
    let mut before = cpu_seconds(pid);
    while start.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = cpu_seconds(pid);
        // Ticks are 10 ms: at most one in the last 100 ms is idle.
        if now - before <= 0.011 || now.is_nan() {
            break;
        }
        before = now;
    }
    start.elapsed().saturating_sub(Duration::from_millis(100))
}

/// CPU time `pid` has used so far (user and system), in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    // utime and stime are fields 14 and 15 of stat(5), 12 and 13 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

/// Resident memory of `pid` now, and its peak, in MiB.
fn rss(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map(|kb| kb / 1024.0)
            .unwrap_or(f64::NAN)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Holds `n` streams open through `path` at once (the upstream paces these answers), and returns
/// the proxy's RSS while they are all open, in MiB.
async fn open_streams(path: Arc<Path_>, upstream: SocketAddr, n: usize) -> Result<f64, String> {
    let pid = path.child.as_ref().map(|c| c.id()).ok_or("no process")?;
    let body = Conversation::new(10 * 1024).turn(0);
    let barrier = Arc::new(tokio::sync::Barrier::new(n + 1));
    let mut tasks = Vec::new();
    for _ in 0..n {
        let path = path.clone();
        let body = body.clone();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            let result = async {
                let mut sender = connect(&path, upstream).await?;
                let req = http::Request::post("/v1/messages")
                    .header("host", HOST)
                    .header("content-type", "application/json")
                    .header("x-api-key", "sk-ant-api03-bench")
                    .header("x-bench-hold", "1")
                    .body(Full::new(body))
                    .unwrap();
                let res = sender.send_request(req).await.map_err(|e| e.to_string())?;
                let mut answer = res.into_body();
                // The first event is in: the stream is open end to end.
                answer
                    .frame()
                    .await
                    .ok_or("no event")?
                    .map_err(|e| e.to_string())?;
                Ok::<_, String>(answer)
            }
            .await;
            barrier.wait().await;
            let answer = result?;
            // Read the rest, so the stream ends as a client would end it.
            let _ = answer.collect().await;
            Ok::<_, String>(())
        }));
    }
    tokio::time::timeout(Duration::from_secs(120), barrier.wait())
        .await
        .map_err(|_| {
            release().send_replace(true);
            format!("{n} streams were not all open after 120 s")
        })?;
    let (now, _) = rss(pid);
    release().send_replace(true);
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    Ok(now)
}

fn main() {
    let o = match options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let _ = rlimit::increase_nofile_limit(65_536);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let code = rt.block_on(run(o));
    std::process::exit(code)
}

async fn run(o: Options) -> i32 {
    tollgate::tls::install_default_provider();
    let temp = tempfile::tempdir().unwrap();
    let dir = o.keep.clone().unwrap_or_else(|| temp.path().to_owned());
    std::fs::create_dir_all(&dir).unwrap();
    let upstream = start_upstream().await;

    let mut paths = Vec::new();
    for name in &o.paths {
        let started = match name.as_str() {
            "direct" => Ok(Path_ {
                name: "direct".into(),
                proxy: None,
                roots: client_config(
                    &std::fs::read(format!("{FIXTURES}/upstream-ca.crt")).unwrap(),
                ),
                child: None,
            }),
            "tollgate" => start_tollgate(&o, &dir, "tollgate", upstream, true),
            "unrecorded" => start_tollgate(&o, &dir, "unrecorded", upstream, false),
            "postgres" => start_tollgate(&o, &dir, "postgres", upstream, true),
            "noop" => {
                // The no-op proxy shares Tollgate's CA; make it first when Tollgate is not run.
                if !dir.join("ca/tollgate-ca.crt").exists() {
                    let status = Command::new(&o.bin)
                        .args(["ca", "init", "--ca-dir"])
                        .arg(dir.join("ca"))
                        .status();
                    if !matches!(status, Ok(s) if s.success()) {
                        eprintln!("bench: `tollgate ca init` failed");
                        return 1;
                    }
                }
                start_noop(&dir, upstream)
            }
            "mitmproxy" => start_mitmproxy(o.mitmdump.as_deref().unwrap(), &dir, upstream),
            _ => unreachable!(),
        };
        match started {
            Ok(p) => paths.push(Arc::new(p)),
            Err(e) => {
                eprintln!("bench: {name}: {e}");
                return 1;
            }
        }
    }

    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    println!(
        "bench: {cores} cores; {} s per point after 0.5 s of warm-up; one Anthropic SSE answer of {} bytes in {} events",
        o.seconds,
        answer_events().iter().map(|e| e.len()).sum::<usize>(),
        answer_events().len()
    );
    let mut idle = std::collections::HashMap::new();
    for p in &paths {
        if let Some(child) = &p.child {
            let (now, _) = rss(child.id());
            println!("bench: {} idle RSS {now:.1} MiB", p.name);
            idle.insert(p.name.clone(), now);
        }
    }
    let mut results = Vec::<Value>::new();
    let failed = Arc::new(AtomicBool::new(false));
    println!(
        "\n{:<11} {:<9} {:>7} {:>5} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7}",
        "path",
        "mode",
        "size",
        "conc",
        "req/s",
        "p50 ms",
        "p99 ms",
        "TTFE ms",
        "CPU us/r",
        "errors"
    );
    for &mode in &o.modes {
        for &size in &o.sizes {
            let body = Arc::new(Conversation::new(size));
            for &concurrency in &o.concurrency {
                for p in &paths {
                    let cpu_before = p.child.as_ref().map(|c| cpu_seconds(c.id()));
                    let run = load(
                        p.clone(),
                        upstream,
                        mode,
                        body.clone(),
                        concurrency,
                        Duration::from_millis(500),
                        Duration::from_secs_f64(o.seconds),
                    )
                    .await;
                    // The proxy may still be working for requests it answered (the audit
                    // writer catching up with its queue): that time counts towards the cell's
                    // rate and CPU, and the next cell starts only once it is done.
                    let catch_up = match &p.child {
                        Some(c) => quiet(c.id()).await,
                        None => Duration::ZERO,
                    };
                    let mut totals = run.totals;
                    totals.sort_unstable();
                    let mut firsts = run.first_events;
                    firsts.sort_unstable();
                    let rps = run.requests as f64 / (run.seconds + catch_up.as_secs_f64());
                    let (p50, p99, ttfe) = (
                        percentile(&totals, 0.5),
                        percentile(&totals, 0.99),
                        percentile(&firsts, 0.5),
                    );
                    let peak = p.child.as_ref().map(|c| rss(c.id()).1);
                    // The proxy's CPU per request, warm-up included in both terms.
                    let cpu_us = p.child.as_ref().zip(cpu_before).map(|(c, before)| {
                        (cpu_seconds(c.id()) - before) * 1e6
                            / (run.requests as f64 * (1.0 + 0.5 / run.seconds))
                    });
                    println!(
                        "{:<11} {:<9} {:>7} {:>5} {:>9.0} {:>9.3} {:>9.3} {:>9.3} {:>9} {:>7}",
                        p.name,
                        mode.name(),
                        body.len(),
                        concurrency,
                        rps,
                        p50,
                        p99,
                        ttfe,
                        cpu_us.map_or("-".to_owned(), |c| format!("{c:.0}")),
                        run.errors
                    );
                    if let Some(e) = &run.first_error {
                        println!("    first error: {e}");
                        failed.store(true, Ordering::Relaxed);
                    }
                    results.push(json!({
                        "path": p.name, "mode": mode.name(), "bytes": body.len(),
                        "concurrency": concurrency, "requests_per_s": rps,
                        "p50_ms": p50, "p99_ms": p99, "ttfe_p50_ms": ttfe,
                        "errors": run.errors, "peak_rss_mib": peak, "cpu_us_per_request": cpu_us,
                        "catch_up_s": catch_up.as_secs_f64(),
                    }));
                }
            }
        }
    }
    let mut memory = Vec::new();
    if o.streams > 0 {
        for p in paths.iter().filter(|p| p.name == "tollgate") {
            match open_streams(p.clone(), upstream, o.streams).await {
                Ok(mib) => {
                    println!(
                        "\nbench: {} RSS with {} streams open: {mib:.1} MiB",
                        p.name, o.streams
                    );
                    memory.push(json!({"path": p.name, "streams": o.streams, "rss_mib": mib}));
                }
                Err(e) => {
                    println!("\nbench: {} streams: {e}", p.name);
                    failed.store(true, Ordering::Relaxed);
                }
            }
        }
    }
    let mut memory_by_path = Vec::new();
    for p in &paths {
        if let Some(child) = &p.child {
            let (now, peak) = rss(child.id());
            println!("bench: {} RSS now {now:.1} MiB, peak {peak:.1} MiB", p.name);
            memory_by_path.push(json!({
                "path": p.name, "idle_mib": idle.get(&p.name), "after_mib": now, "peak_mib": peak,
            }));
        }
    }
    let store = if paths.iter().any(|p| p.name == "tollgate") {
        match store_figures(&dir.join("tollgate").join("tollgate.db")) {
            Ok(figures) => figures,
            Err(e) => {
                println!("bench: the store could not be read: {e}");
                failed.store(true, Ordering::Relaxed);
                Value::Null
            }
        }
    } else {
        Value::Null
    };
    let out = o.out.clone().unwrap_or_else(|| dir.join("bench.json"));
    let doc = json!({
        "cores": cores, "seconds": o.seconds, "results": results, "memory": memory,
        "rss": memory_by_path, "store": store,
    });
    std::fs::write(&out, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    println!("bench: figures in {}", out.display());
    for p in paths {
        if let Ok(mut p) = Arc::try_unwrap(p)
            && let Some(mut child) = p.child.take()
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
    if failed.load(Ordering::Relaxed) { 1 } else { 0 }
}

/// Bytes on disk per exchange in the recorded path's store (pages in use, WAL included), and the
/// stored bodies per request size against the bodies as sent.
fn store_figures(db: &Path) -> Result<Value, String> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| e.to_string())?;
    let pragma = |name: &str| -> Result<i64, String> {
        conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))
            .map_err(|e| e.to_string())
    };
    let used = (pragma("page_count")? - pragma("freelist_count")?) * pragma("page_size")?;
    let mut query = conn
        .prepare(
            "SELECT bytes_up / 1024, count(*), avg(bytes_up + bytes_down), \
             avg(length(request_body) + length(response_body)) FROM records GROUP BY 1 ORDER BY 1",
        )
        .map_err(|e| e.to_string())?;
    let sizes: Vec<Value> = query
        .query_map([], |r| {
            Ok(json!({
                "request_kib": r.get::<_, i64>(0)?, "exchanges": r.get::<_, i64>(1)?,
                "sent_bytes": r.get::<_, f64>(2)?, "stored_body_bytes": r.get::<_, f64>(3)?,
            }))
        })
        .map_err(|e| e.to_string())?
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let exchanges: i64 = sizes
        .iter()
        .map(|s| s["exchanges"].as_i64().unwrap_or(0))
        .sum();
    let per_exchange = used as f64 / exchanges.max(1) as f64;
    println!(
        "bench: store {:.1} MiB for {exchanges} exchanges, {per_exchange:.0} bytes each on disk",
        used as f64 / 1048576.0
    );
    for s in &sizes {
        println!(
            "bench: store, {} KiB requests: {:.0} bytes of bodies sent and received, {:.0} stored",
            s["request_kib"],
            s["sent_bytes"].as_f64().unwrap_or(0.0),
            s["stored_body_bytes"].as_f64().unwrap_or(0.0)
        );
    }
    Ok(
        json!({"exchanges": exchanges, "bytes_on_disk": used, "bytes_per_exchange": per_exchange, "sizes": sizes}),
    )
}
