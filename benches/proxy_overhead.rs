//! The proxy's own cost, side by side in one run on loopback: the same chat-completion request
//! sent directly to the fake upstream, through a no-op hudsucker proxy built on the same
//! connector and CA, and through Tollgate. Each both over a kept-alive tunnel and with a new
//! CONNECT (and TLS handshake) per request, the way Claude Code connects.

#[path = "../tests/common/upstream.rs"]
#[allow(dead_code)]
mod upstream;

use criterion::{Criterion, criterion_group, criterion_main};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tollgate::config::{ProxyConfig, Timeouts};
use tollgate::policy::Policy;
use tollgate::proxy::dial::Dialer;
use tollgate::tls::ca::{LeafIssuer, RootCa};
use upstream::{FIXTURES, Upstream};

const BODY: &str = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hello"}]}"#;

struct Setup {
    upstream: Upstream,
    tollgate: SocketAddr,
    unrecorded: SocketAddr,
    noop: SocketAddr,
    ca_pem: String,
    _dir: tempfile::TempDir,
    _proxies: [tollgate::proxy::RunningProxy; 2],
}

async fn setup() -> Setup {
    tollgate::tls::install_default_provider();
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let connect_to = format!("api.openai.com:443:127.0.0.1:{}", upstream.tls_addr.port());
    let upstream_ca = PathBuf::from(format!("{FIXTURES}/upstream-ca.crt"));
    let config = ProxyConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        ca_dir: dir.path().join("ca"),
        policies: None,
        db: dir.path().join("t.db"),
        postgres: None,
        upstream_ca: vec![upstream_ca.clone()],
        connect_to: vec![connect_to.parse().unwrap()],
        timeouts: Timeouts::default(),
        limits: Default::default(),
        leaf_cache_size: 1000,
        originals_key: None,
        placeholder_key: None,
        open: false,
        admin: None,
    };
    let proxy = tollgate::proxy::start(&config).await.unwrap();

    // The same proxy with recording off: what recording costs.
    let policies = dir.path().join("policies-unrecorded");
    std::fs::create_dir_all(&policies).unwrap();
    std::fs::write(
        policies.join("recording.yaml"),
        "retention: { bodies: 30d, records: 400d }\nenabled: false\n",
    )
    .unwrap();
    let unrecorded_config = ProxyConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        policies: Some(policies),
        db: dir.path().join("unused.db"),
        ..config.clone()
    };
    let unrecorded = tollgate::proxy::start(&unrecorded_config).await.unwrap();

    // A no-op hudsucker proxy on the same CA, connector and dialer: the floor Tollgate adds to.
    let ca = RootCa::load(&dir.path().join("ca")).unwrap();
    let leaves = LeafIssuer::new(ca, 1000, tollgate::tls::provider()).unwrap();
    let policy = Arc::new(arc_swap::ArcSwap::from_pointee(Policy::load(None).unwrap()));
    let dialer = Dialer::new(config.connect_to.clone(), policy, Duration::from_secs(10));
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tollgate::tls::upstream::client_config(&[upstream_ca]).unwrap())
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(dialer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let noop = listener.local_addr().unwrap();
    let noop_proxy = hudsucker::Proxy::builder()
        .with_listener(listener)
        .with_ca(leaves)
        .with_http_connector(connector)
        .build()
        .unwrap();
    tokio::spawn(noop_proxy.start());

    Setup {
        ca_pem: proxy.ca_cert_pem().to_owned(),
        tollgate: proxy.addr(),
        unrecorded: unrecorded.addr(),
        noop,
        upstream,
        _dir: dir,
        _proxies: [proxy, unrecorded],
    }
}

fn direct_client(s: &Setup) -> reqwest::Client {
    let ca = std::fs::read(format!("{FIXTURES}/upstream-ca.crt")).unwrap();
    reqwest::Client::builder()
        .use_rustls_tls()
        .no_proxy()
        .resolve("api.openai.com", s.upstream.tls_addr)
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .build()
        .unwrap()
}

fn proxied_client(s: &Setup, proxy: SocketAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .use_rustls_tls()
        .proxy(reqwest::Proxy::all(format!("http://{proxy}")).unwrap())
        .add_root_certificate(reqwest::Certificate::from_pem(s.ca_pem.as_bytes()).unwrap())
        .build()
        .unwrap()
}

async fn one(client: &reqwest::Client) {
    let res = client
        .post("https://api.openai.com/v1/chat/completions")
        .body(BODY)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.bytes().await.unwrap();
}

fn proxy_overhead(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let s = rt.block_on(setup());
    type MakeClient = Box<dyn Fn(&Setup) -> reqwest::Client>;
    let paths: [(&str, MakeClient); 4] = [
        ("direct", Box::new(direct_client)),
        ("hudsucker no-op", Box::new(|s| proxied_client(s, s.noop))),
        (
            "tollgate, recording off",
            Box::new(|s| proxied_client(s, s.unrecorded)),
        ),
        ("tollgate", Box::new(|s| proxied_client(s, s.tollgate))),
    ];

    let mut group = c.benchmark_group("request kept-alive");
    for (name, make) in &paths {
        let client = make(&s);
        group.bench_function(*name, |b| b.to_async(&rt).iter(|| one(&client)));
    }
    group.finish();

    let mut group = c.benchmark_group("request new connection");
    for (name, make) in &paths {
        group.bench_function(*name, |b| {
            b.to_async(&rt).iter(|| async {
                let client = make(&s);
                one(&client).await
            })
        });
    }
    group.finish();
}

criterion_group!(benches, proxy_overhead);
criterion_main!(benches);
