//! The admin listener end to end: health, metrics scraped and parsed, roles, and policy reloads
//! (by the API and by a change in the policy directory) while a stream runs.

mod common;

use common::*;
use futures_util::StreamExt;
use std::collections::BTreeMap;
use std::time::Duration;

const GITHUB: &str = "ghp_aB3cD4eF5gH6iJ7kL8mN9oP0qR1sT2uVwXyZ";

/// The samples of a Prometheus text exposition: `name{labels}` → value. Comment lines are
/// skipped; every other line must be a sample.
fn parse_metrics(text: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("a sample line");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line}"));
        out.insert(series.to_owned(), value);
    }
    out
}

async fn scrape(proxy: &TestProxy) -> BTreeMap<String, f64> {
    let res = admin_client()
        .get(format!("{}/metrics", proxy.admin_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    parse_metrics(&res.text().await.unwrap())
}

#[tokio::test]
async fn health_and_metrics_count_what_went_through() {
    let upstream = Upstream::start().await;
    let proxy = ProxySetup::new(&upstream).start().await;
    let admin = admin_client();
    let live = admin
        .get(format!("{}/livez", proxy.admin_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), 200);
    let ready = admin
        .get(format!("{}/readyz", proxy.admin_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let ready: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(ready["ready"], true);
    assert_eq!(ready["store_writable"], true);

    let res = client(&proxy)
        .post("https://api.openai.com/v1/chat/completions")
        .header("content-type", "application/json")
        .body(
            serde_json::json!({"model": "gpt-4o", "messages": [{"role": "user", "content": format!("deploy with {GITHUB}")}]})
                .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.text().await.unwrap();

    let metrics = eventually(
        Duration::from_secs(10),
        Duration::from_millis(20),
        "the exchange never reached the metrics",
        async || {
            let m = scrape(&proxy).await;
            m.contains_key(
                r#"tollgate_exchanges_total{provider="openai",status="200",outcome="complete"}"#,
            )
            .then_some(m)
        },
    )
    .await;
    let expect = [
        (
            r#"tollgate_exchanges_total{provider="openai",status="200",outcome="complete"}"#,
            1.0,
        ),
        (r#"tollgate_connects_total{mode="intercepted"}"#, 1.0),
        (r#"tollgate_findings_total{rule="github-pat"}"#, 1.0),
        (
            r#"tollgate_upstream_tokens_total{provider="openai",kind="input"}"#,
            5.0,
        ),
        (
            r#"tollgate_upstream_tokens_total{provider="openai",kind="output"}"#,
            3.0,
        ),
        (
            r#"tollgate_exchange_duration_seconds_count{provider="openai"}"#,
            1.0,
        ),
        (
            r#"tollgate_time_to_first_byte_seconds_count{provider="openai"}"#,
            1.0,
        ),
        ("tollgate_audit_store_writable", 1.0),
        ("tollgate_active_streams", 0.0),
        ("tollgate_audit_store_errors_total", 0.0),
        ("tollgate_policy_reload_failures_total", 0.0),
    ];
    for (series, value) in expect {
        assert_eq!(
            metrics.get(series),
            Some(&value),
            "{series} in {metrics:#?}"
        );
    }
    assert!(metrics["tollgate_policy_reload_success_timestamp_seconds"] > 1.7e9);
    // No label names a user, a path or a host.
    for series in metrics.keys() {
        for label in ["user=", "path=", "host=", "client="] {
            assert!(!series.contains(label), "{series}");
        }
    }
}

#[tokio::test]
async fn the_admin_api_needs_a_token_whose_groups_hold_a_role() {
    let (admin_token, admin_hash) = tollgate::identity::new_token();
    let (auditor_token, auditor_hash) = tollgate::identity::new_token();
    let (dev_token, dev_hash) = tollgate::identity::new_token();
    let upstream = Upstream::start().await;
    let proxy = ProxySetup::new(&upstream)
        .identity(&format!(
            "tokens:\n  - {{ name: ops, sha256: {admin_hash}, groups: [platform] }}\n  - {{ name: sec, sha256: {auditor_hash}, groups: [security] }}\n  - {{ name: dev, sha256: {dev_hash}, groups: [developers] }}\nadmin:\n  roles:\n    admin: [platform]\n    auditor: [security]\n"
        ))
        .start()
        .await;
    let admin = admin_client();
    let url = |path: &str| format!("{}{path}", proxy.admin_url());
    assert_eq!(
        admin.get(url("/livez")).send().await.unwrap().status(),
        200,
        "liveness needs no credentials"
    );
    let anonymous = admin.get(url("/readyz")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(anonymous.headers()["www-authenticate"], "Bearer");
    let body: serde_json::Value = anonymous.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Authorization: Bearer"),
        "{body}"
    );
    let wrong = admin
        .get(url("/metrics"))
        .bearer_auth("tg_not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let dev = admin
        .get(url("/readyz"))
        .bearer_auth(&dev_token)
        .send()
        .await
        .unwrap();
    assert_eq!(dev.status(), 403);
    let body: serde_json::Value = dev.json().await.unwrap();
    assert_eq!(body["error"]["type"], "no-admin-role");

    let policy = admin
        .get(url("/api/policy"))
        .bearer_auth(&auditor_token)
        .send()
        .await
        .unwrap();
    assert_eq!(policy.status(), 200);
    let policy: serde_json::Value = policy.json().await.unwrap();
    assert_eq!(policy["fingerprint"].as_str().unwrap().len(), 64);
    let files = policy["files"].as_array().unwrap();
    assert!(
        files
            .iter()
            .any(|f| f["name"].as_str().unwrap().ends_with("identity.yaml")),
        "{policy}"
    );
    assert!(
        files
            .iter()
            .all(|f| f.get("text").is_none() && f["sha256"].is_string()),
        "auditors see digests, not the files' text: {policy}"
    );
    let full: serde_json::Value = admin
        .get(url("/api/policy"))
        .bearer_auth(&admin_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(full["files"][0]["text"].is_string(), "admins see the text");
    // Every route but /livez needs credentials, unknown ones included.
    for (method, path) in [
        ("GET", "/metrics"),
        ("GET", "/api/policy"),
        ("POST", "/api/reload"),
        ("GET", "/api/approvals"),
        ("GET", "/api/approvals/apr_1"),
        ("POST", "/api/approvals/apr_1/approve"),
        ("POST", "/api/approvals/apr_1/deny"),
        ("GET", "/api/grants"),
        ("DELETE", "/api/grants/grt_1"),
        ("GET", "/api/exchanges"),
        ("GET", "/api/exchanges/1"),
        ("GET", "/api/sessions"),
        ("GET", "/api/sessions/x"),
        ("GET", "/no/such/route"),
    ] {
        let res = admin
            .request(method.parse().unwrap(), url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401, "{method} {path}");
    }
    let reload = admin
        .post(url("/api/reload"))
        .bearer_auth(&auditor_token)
        .send()
        .await
        .unwrap();
    assert_eq!(reload.status(), 403, "auditors cannot reload");
    let reload = admin
        .post(url("/api/reload"))
        .bearer_auth(&admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(reload.status(), 200);
    let report: serde_json::Value = reload.json().await.unwrap();
    assert_eq!(report["ok"], true);
    assert_eq!(report["changed"], false);
    assert_eq!(report["trigger"], "api");
}

#[tokio::test]
async fn readiness_turns_to_503_while_the_proxy_drains() {
    let upstream = Upstream::start().await;
    let proxy = ProxySetup::new(&upstream).start().await;
    let admin_url = proxy.admin_url();
    let client = client(&proxy);
    let request = tokio::spawn(async move {
        client
            .post("https://api.openai.com/test/gated-json")
            .body("{}")
            .send()
            .await
            .unwrap()
            .status()
    });
    eventually(
        Duration::from_secs(10),
        Duration::from_millis(10),
        "the request never arrived",
        async || (!upstream.received().is_empty()).then_some(()),
    )
    .await;
    let TestProxy {
        proxy, dir: _dir, ..
    } = proxy;
    let shutdown = tokio::spawn(proxy.shutdown());
    let admin = admin_client();
    let body = eventually(
        Duration::from_secs(10),
        Duration::from_millis(10),
        "readiness never reported the drain",
        async || {
            let res = admin.get(format!("{admin_url}/readyz")).send().await.ok()?;
            (res.status() == 503).then_some(res.json::<serde_json::Value>().await.ok()?)
        },
    )
    .await;
    assert_eq!(body["draining"], true);
    assert_eq!(body["ready"], false);
    upstream.release();
    assert_eq!(request.await.unwrap(), 200);
    assert!(shutdown.await.unwrap().drained);
}

#[tokio::test]
async fn a_reload_swaps_a_valid_set_in_and_keeps_the_running_one_on_an_invalid_set() {
    let upstream = Upstream::start().await;
    let proxy = ProxySetup::new(&upstream).start().await;
    let admin = admin_client();
    let client = client(&proxy);
    // The upstream holds the rest of this stream until released, so it is still running at
    // every check below however slow the machine.
    let stream = client
        .post("https://api.openai.com/test/gated-sse")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let mut body = stream.bytes_stream();
    let first = body.next().await.unwrap().unwrap();
    assert_eq!(first, "data: {\"n\":1}\n\n");

    // A valid set: Anthropic is now refused.
    std::fs::write(
        proxy.policies_dir().join("policy.yaml"),
        "hosts:\n  deny: [api.anthropic.com]\n",
    )
    .unwrap();
    let res = admin
        .post(format!("{}/api/reload", proxy.admin_url()))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let report: serde_json::Value = res.json().await.unwrap();
    // (The directory watch may have reloaded the same files first: `changed` is then false.)
    assert_eq!(report["ok"], true);
    let (status, headers, _) = connect(proxy.addr(), "api.anthropic.com:443", &[])
        .await
        .refused();
    assert_eq!(status, 403);
    assert_eq!(headers["x-tollgate-rule"], "hosts.deny: api.anthropic.com");

    // An invalid set: refused whole, the running policy stays.
    std::fs::write(
        proxy.policies_dir().join("masking.yaml"),
        "rules:\n  github-pat: { action: shout }\n",
    )
    .unwrap();
    let res = admin
        .post(format!("{}/api/reload", proxy.admin_url()))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    let error: serde_json::Value = res.json().await.unwrap();
    let message = error["error"]["message"].as_str().unwrap();
    assert!(message.contains("masking.yaml"), "{message}");
    assert!(message.contains("github-pat"), "{message}");
    let (status, _, _) = connect(proxy.addr(), "api.anthropic.com:443", &[])
        .await
        .refused();
    assert_eq!(status, 403, "the last valid set is still in force");
    let policy: serde_json::Value = admin
        .get(format!("{}/api/policy", proxy.admin_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(policy["last_reload"]["ok"], false);
    assert!(
        policy["last_reload"]["error"]
            .as_str()
            .unwrap()
            .contains("masking.yaml")
    );
    assert_eq!(
        policy["fingerprint"], policy["last_reload"]["fingerprint"],
        "the fingerprint shown is the policy in force"
    );
    let metrics = scrape(&proxy).await;
    assert_eq!(
        metrics["tollgate_active_streams"], 1.0,
        "the SSE answer still runs"
    );
    // Once by the API, and once more if the directory watch got there too.
    assert!(metrics["tollgate_policy_reload_failures_total"] >= 1.0);
    assert!(
        metrics["tollgate_policy_reload_attempt_timestamp_seconds"]
            >= metrics["tollgate_policy_reload_success_timestamp_seconds"]
    );

    // The stream that began before both reloads runs to its end.
    upstream.release();
    let mut rest = Vec::new();
    while let Some(chunk) = body.next().await {
        rest.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(
        String::from_utf8(rest).unwrap(),
        "data: {\"n\":2}\n\ndata: {\"n\":3}\n\ndata: [DONE]\n\n"
    );
}

#[tokio::test]
async fn a_change_in_the_policy_directory_is_reloaded_by_itself() {
    let upstream = Upstream::start().await;
    let proxy = ProxySetup::new(&upstream).start().await;
    let admin = admin_client();
    let policy_url = format!("{}/api/policy", proxy.admin_url());
    let before: serde_json::Value = admin
        .get(&policy_url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    std::fs::write(
        proxy.policies_dir().join("policy.yaml"),
        "hosts:\n  deny: ['*.example']\n",
    )
    .unwrap();
    let after = eventually(
        Duration::from_secs(20),
        Duration::from_millis(50),
        "the change was never reloaded",
        async || {
            let now = get_json(&admin, &policy_url).await?;
            (now["fingerprint"] != before["fingerprint"]).then_some(now)
        },
    )
    .await;
    assert_eq!(after["last_reload"]["trigger"], "file-change");
    assert_eq!(after["last_reload"]["ok"], true);
    let (status, headers, _) = connect(proxy.addr(), "files.example:443", &[])
        .await
        .refused();
    assert_eq!(status, 403);
    assert_eq!(headers["x-tollgate-rule"], "hosts.deny: *.example");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_turns_to_503_while_the_store_refuses_writes_and_back() {
    let upstream = Upstream::start().await;
    let proxy = ProxySetup::new(&upstream).start().await;
    let admin = admin_client();
    let ready_url = format!("{}/readyz", proxy.admin_url());
    // Another process holds the database: every write waits, then fails.
    let lock = rusqlite::Connection::open(proxy.db_path()).unwrap();
    lock.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let client = client(&proxy);
    let res = client
        .post("https://api.openai.com/v1/chat/completions")
        .body(r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body = eventually(
        Duration::from_secs(30),
        Duration::from_millis(100),
        "readiness never reported the failing store",
        async || {
            let res = admin.get(&ready_url).send().await.ok()?;
            (res.status() == 503).then_some(res.json::<serde_json::Value>().await.ok()?)
        },
    )
    .await;
    assert_eq!(body["store_writable"], false);
    assert_eq!(body["draining"], false);
    let metrics = scrape(&proxy).await;
    assert!(metrics["tollgate_audit_store_errors_total"] >= 1.0);
    assert_eq!(metrics["tollgate_audit_store_writable"], 0.0);

    lock.execute_batch("ROLLBACK").unwrap();
    drop(lock);
    eventually(
        Duration::from_secs(30),
        Duration::from_millis(100),
        "readiness never came back",
        async || {
            let res = admin.get(&ready_url).send().await.ok()?;
            (res.status() == 200).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn exchanges_and_sessions_are_listed_filtered_paginated_and_shown() {
    let upstream = Upstream::start().await;
    let proxy = ProxySetup::new(&upstream)
        .policy("hosts:\n  deny: [api.mistral.ai]\n")
        .start()
        .await;
    let client = client(&proxy);
    for content in ["first".to_owned(), format!("second {GITHUB}")] {
        let res = client
            .post("https://api.openai.com/v1/chat/completions")
            .body(
                serde_json::json!({"model": "gpt-4o", "messages": [{"role": "user", "content": content}]})
                    .to_string(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        res.text().await.unwrap();
    }
    let _ = connect(proxy.addr(), "api.mistral.ai:443", &[])
        .await
        .refused();
    let admin = admin_client();
    let get = async |path: &str| -> (u16, serde_json::Value) {
        let res = admin
            .get(format!("{}{path}", proxy.admin_url()))
            .send()
            .await
            .unwrap();
        (res.status().as_u16(), res.json().await.unwrap())
    };
    let all = eventually(
        Duration::from_secs(10),
        Duration::from_millis(20),
        "the records never reached the store",
        async || {
            let (_, v) = get("/api/exchanges").await;
            (v["exchanges"].as_array()?.len() >= 3).then_some(v)
        },
    )
    .await;
    let list = all["exchanges"].as_array().unwrap();
    assert_eq!(list[0]["kind"], "connect-refused", "newest first");
    assert!(
        list.iter().all(|r| r.get("request_body").is_none()),
        "no bodies in lists"
    );

    let (_, openai) = get("/api/exchanges?provider=openai&kind=exchange").await;
    assert_eq!(openai["exchanges"].as_array().unwrap().len(), 2);
    let (_, found) = get("/api/exchanges?has_findings=true").await;
    let found = found["exchanges"].as_array().unwrap().clone();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["findings"][0]["rule"], "github-pat");
    let (_, page) = get("/api/exchanges?kind=exchange&limit=1").await;
    assert_eq!(page["exchanges"].as_array().unwrap().len(), 1);
    let next = page["next_before_id"].as_i64().unwrap();
    let (_, rest) = get(&format!(
        "/api/exchanges?kind=exchange&limit=1&before_id={next}"
    ))
    .await;
    assert_ne!(rest["exchanges"][0]["id"], page["exchanges"][0]["id"]);
    let (status, bad) = get("/api/exchanges?colour=red").await;
    assert_eq!(status, 400, "{bad}");

    let id = found[0]["id"].as_i64().unwrap();
    let (status, one) = get(&format!("/api/exchanges/{id}")).await;
    assert_eq!(status, 200);
    let body = one["request_body"].as_str().unwrap();
    assert!(body.contains("second ") && !body.contains(GITHUB), "{body}");
    assert!(
        one["response_body"]
            .as_str()
            .unwrap()
            .contains("Hello from upstream")
    );
    let (status, _) = get("/api/exchanges/999999").await;
    assert_eq!(status, 404);

    let (_, sessions) = get("/api/sessions").await;
    let session = sessions["sessions"][0]["id"].as_str().unwrap().to_owned();
    let (status, shown) = get(&format!("/api/sessions/{session}")).await;
    assert_eq!(status, 200);
    assert!(!shown["exchanges"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn the_open_admin_api_answers_only_loopback_names_and_changes_only_as_json() {
    let upstream = Upstream::start().await;
    let proxy = ProxySetup::new(&upstream).start().await;
    let admin = admin_client();
    let rebound = admin
        .get(format!("{}/api/policy", proxy.admin_url()))
        .header("host", "attacker.example")
        .send()
        .await
        .unwrap();
    assert_eq!(rebound.status(), 403, "a DNS-rebound page gets nothing");
    let form = admin
        .post(format!("{}/api/reload", proxy.admin_url()))
        .header("content-type", "text/plain")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 415, "a cross-site form post changes nothing");
    let json = admin
        .post(format!("{}/api/reload", proxy.admin_url()))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(json.status(), 200);
}

#[tokio::test]
async fn a_reload_never_turns_authentication_off_and_open_tunnels_follow_the_new_policy() {
    let (keep, keep_hash) = tollgate::identity::new_token();
    let (gone, gone_hash) = tollgate::identity::new_token();
    let upstream = Upstream::start().await;
    let identity = |tokens: &str| format!("tokens:\n{tokens}admin:\n  roles:\n    admin: [ops]\n");
    let keep_line = format!("  - {{ name: keep, sha256: {keep_hash}, groups: [ops] }}\n");
    let gone_line = format!("  - {{ name: gone, sha256: {gone_hash} }}\n");
    let proxy = ProxySetup::new(&upstream)
        .identity(&identity(&format!("{keep_line}{gone_line}")))
        .start()
        .await;
    let admin = admin_client();
    let reload = async || {
        admin
            .post(format!("{}/api/reload", proxy.admin_url()))
            .bearer_auth(&keep)
            .send()
            .await
            .unwrap()
    };
    let send = async |client: &reqwest::Client| {
        let res = client
            .post("https://api.openai.com/v1/chat/completions")
            .body(r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#)
            .send()
            .await
            .unwrap();
        let reason = reason_of(&res);
        (res.status().as_u16(), reason)
    };
    // One client each, kept alive: their requests ride the tunnels opened now.
    let kept = client_as(&proxy, "keep", &keep);
    let revoked = client_as(&proxy, "gone", &gone);
    assert_eq!(send(&kept).await.0, 200);
    assert_eq!(send(&revoked).await.0, 200);

    // An identity.yaml emptied (or half-written) would turn authentication off: refused whole.
    std::fs::write(proxy.policies_dir().join("identity.yaml"), "").unwrap();
    let res = reload().await;
    assert_eq!(res.status(), 422);
    let message = res.json::<serde_json::Value>().await.unwrap()["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.contains("identity.yaml") && message.contains("authentication off"),
        "{message}"
    );
    let anonymous = reqwest::Client::builder()
        .use_rustls_tls()
        .proxy(reqwest::Proxy::all(proxy.url()).unwrap())
        .add_root_certificate(reqwest::Certificate::from_pem(proxy.ca_pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    assert!(
        anonymous
            .post("https://api.openai.com/v1/chat/completions")
            .send()
            .await
            .is_err(),
        "still no way in without credentials"
    );

    // A token revoked and a host denied by a reload apply to tunnels already open.
    std::fs::write(
        proxy.policies_dir().join("identity.yaml"),
        identity(&keep_line),
    )
    .unwrap();
    std::fs::write(
        proxy.policies_dir().join("policy.yaml"),
        "access:\n  default:\n    models: { deny: ['gpt-4o'] }\n",
    )
    .unwrap();
    assert_eq!(reload().await.status(), 200);
    assert_eq!(
        send(&revoked).await,
        (407, Some("proxy-auth-required".to_owned()))
    );
    assert_eq!(
        send(&kept).await,
        (403, Some("model-not-allowed".to_owned()))
    );
}
