//! The console's pages over a store of many exchanges: fills a store (100,000 exchanges by
//! default, `TOLLGATE_BENCH_EXCHANGES` to change it) with bodies the size agents send, starts the
//! proxy on it, signs in to the console and times each page over HTTP, as a browser loads it.
//! Prints the median and slowest of several loads per page.
//!
//! `cargo bench --bench console`

use std::time::{Duration, Instant};
use tollgate::config::{ProxyConfig, Timeouts};
use tollgate::record::{Record, RecordKind, Store};

const SOURCE: &str = include_str!("../src/mask/engine.rs");

fn record(n: u64) -> Record {
    let mut r = Record::new(
        RecordKind::Exchange,
        "10.0.0.1:5000",
        &format!("user{}", n % 50),
        "intercepted",
        "api.anthropic.com",
    );
    let providers = ["anthropic", "openai", "gemini"];
    r.provider = Some(providers[(n % 3) as usize].into());
    r.model = Some(["claude-sonnet-4-5", "gpt-4o", "gemini-2.5-pro"][(n % 3) as usize].into());
    r.region = Some(if n % 40 == 0 { "eu-west-1" } else { "global" }.into());
    r.groups = Some(if n % 2 == 0 { "eng,platform" } else { "eng" }.into());
    r.method = Some("POST".into());
    r.path = Some("/v1/messages".into());
    r.session_id = format!("s{:06}", n / 20);
    r.started_at = format!(
        "2026-11-{:02}T{:02}:{:02}:{:02}.000000Z",
        1 + (n / 4000) % 28,
        (n / 3600) % 24,
        (n / 60) % 60,
        n % 60
    );
    if n % 100 == 7 {
        r.outcome = "region-not-allowed".into();
        r.status = Some(403);
    } else {
        r.outcome = "complete".into();
        r.status = Some(200);
    }
    if n % 50 == 3 {
        r.findings = r#"[{"rule":"github-pat","category":"source-hosting","path":"messages[1].content","offset":10}]"#.into();
    }
    if n % 200 == 11 {
        r.approval = Some(
            r#"{"id":"apr_x","rule":"tokens","mode":"hold","decision":"denied","by":"lead","reason":"no","waited_ms":900}"#.into(),
        );
    }
    // A turn of a coding agent's conversation: ~30 KB of source as a tool result.
    let mut code = String::new();
    while code.len() < 30_000 {
        code.push_str(&SOURCE[..SOURCE.len().min(30_000 - code.len())]);
    }
    r.request_body = serde_json::to_vec(&serde_json::json!({
        "model": r.model, "max_tokens": 4096,
        "messages": [{"role": "user", "content": format!("turn {n}: explain this")},
                     {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": code}]}],
    }))
    .unwrap()
    .into();
    r.response_body = format!("event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"answer {n}\"}}}}\n\n").into_bytes();
    r.bytes_up = r.request_body.len() as u64;
    r.bytes_down = r.response_body.len() as u64;
    r.duration_ms = 800;
    r.ttfb_ms = Some(300);
    r
}

fn fill(db: &std::path::Path, n: u64) {
    let mut store = Store::open(db).unwrap();
    let started = Instant::now();
    let mut batch = Vec::with_capacity(1000);
    for i in 0..n {
        batch.push(record(i));
        if batch.len() == 1000 {
            store.append(&batch).unwrap();
            batch.clear();
        }
    }
    store.append(&batch).unwrap();
    let size = std::fs::metadata(db).map(|m| m.len()).unwrap_or(0)
        + std::fs::metadata(db.with_extension("db-wal"))
            .map(|m| m.len())
            .unwrap_or(0);
    println!(
        "filled {n} exchanges in {:.1} s: {:.0} MiB on disk",
        started.elapsed().as_secs_f64(),
        size as f64 / 1048576.0
    );
}

fn main() {
    let n: u64 = std::env::var("TOLLGATE_BENCH_EXCHANGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tollgate.db");
    fill(&db, n);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let config = ProxyConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            ca_dir: dir.path().join("ca"),
            policies: None,
            db: db.clone(),
            postgres: None,
            upstream_ca: Vec::new(),
            connect_to: Vec::new(),
            timeouts: Timeouts::default(),
            limits: Default::default(),
            leaf_cache_size: 100,
            open: false,
            admin: Some("127.0.0.1:0".parse().unwrap()),
            originals_key: None,
            placeholder_key: None,
        };
        let proxy = tollgate::proxy::start(&config).await.unwrap();
        let base = format!("http://127.0.0.1:{}", proxy.admin_addr().unwrap().port());
        let http = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        // Sign in (authentication is off: the sign-in form only makes the session).
        let login = http
            .get(format!("{base}/console/login"))
            .send()
            .await
            .unwrap();
        let nonce_cookie = cookie(&login, "__Host-tollgate_console_login");
        let nonce = nonce_cookie.split_once('=').unwrap().1.to_owned();
        let res = http
            .post(format!("{base}/console/login"))
            .header("cookie", &nonce_cookie)
            .header("origin", &base)
            .form(&[("csrf", nonce.as_str())])
            .send()
            .await
            .unwrap();
        let session = cookie(&res, "__Host-tollgate_console");
        let pages = [
            ("newest 50", "/console/exchanges".to_owned()),
            ("one user", "/console/exchanges?user=user7".to_owned()),
            (
                "one provider and model",
                "/console/exchanges?provider=gemini&model=gemini-2.5-pro".to_owned(),
            ),
            (
                "a rare region (1 in 40)",
                "/console/exchanges?region=eu-west-1".to_owned(),
            ),
            (
                "refusals (1 in 100)",
                "/console/exchanges?outcome=region-not-allowed".to_owned(),
            ),
            (
                "denied approvals (1 in 200)",
                "/console/exchanges?approval=denied".to_owned(),
            ),
            (
                "with findings (1 in 50)",
                "/console/exchanges?findings=yes".to_owned(),
            ),
            (
                "one day",
                "/console/exchanges?since=2026-11-10T00:00&until=2026-11-11T00:00".to_owned(),
            ),
            (
                "a page deep in the past",
                "/console/exchanges?before_id=1000".to_owned(),
            ),
            (
                "an unknown user",
                "/console/exchanges?user=nobody".to_owned(),
            ),
            (
                "a region no exchange went to (every row read)",
                "/console/exchanges?region=ap-south-2".to_owned(),
            ),
            (
                "a decision no exchange had (every row read)",
                "/console/exchanges?approval=approved".to_owned(),
            ),
            ("one exchange", format!("/console/exchanges/{}", n / 2)),
            (
                "one session (20 turns)",
                "/console/sessions/s000100".to_owned(),
            ),
            ("audit", "/console/audit".to_owned()),
        ];
        println!("| page | median ms | slowest ms |\n|---|---|---|");
        for (name, path) in pages {
            let mut times = Vec::new();
            for _ in 0..9 {
                let started = Instant::now();
                let res = http
                    .get(format!("{base}{path}"))
                    .header("cookie", &session)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), 200, "{path}");
                let _ = res.bytes().await.unwrap();
                times.push(started.elapsed());
            }
            times.sort();
            println!(
                "| {name} | {:.1} | {:.1} |",
                ms(times[times.len() / 2]),
                ms(times[times.len() - 1])
            );
        }
        drop(proxy);
    });
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn cookie(res: &reqwest::Response, name: &str) -> String {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .and_then(|v| v.split(';').next())
        .unwrap_or_default()
        .to_owned()
}
