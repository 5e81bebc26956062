//! Several replicas sharing one PostgreSQL store, as behind a load balancer: a request held on
//! one is approved through the other, grants and `retry` approvals hold across them, streams
//! split across both are all recorded on one chain that verifies, and a replica killed
//! mid-stream leaves the other serving, the database verifying, and its exchange to
//! `store recover --replica`.
//!
//! Each test makes its own database on the test cluster (`common::pg`).

mod common;

use common::running::Running;
use common::*;
use serde_json::json;
use std::time::{Duration, Instant};

const GITHUB: &str = "ghp_aB3cD4eF5gH6iJ7kL8mN9oP0qR1sT2uVwXyZ";
const KEY: [u8; 32] = [7; 32];

fn rule(mode: &str) -> String {
    format!(
        "rules:\n  - name: tokens-leave-with-approval\n    when: {{ findings: [github-pat] }}\n    mode: {mode}\n    wait: 30s\n    max_grant: 30m\n"
    )
}

fn chat(content: &str) -> String {
    json!({"model": "gpt-4o", "messages": [{"role": "user", "content": content}]}).to_string()
}

/// Two replicas of one deployment: the same policy and placeholder key, one database.
async fn two_replicas(upstream: &Upstream, url: &str, approvals: &str) -> (TestProxy, TestProxy) {
    let replica = |name: &str| {
        ProxySetup::new(upstream)
            .postgres(url, name)
            .placeholder_key(KEY)
            .file("approvals.yaml", approvals)
    };
    (
        replica("replica-a").start().await,
        replica("replica-b").start().await,
    )
}

async fn pending_on(proxy: &TestProxy, n: usize) -> Vec<serde_json::Value> {
    let admin = admin_client();
    let url = format!("{}/api/approvals", proxy.admin_url());
    eventually(
        Duration::from_secs(10),
        Duration::from_millis(20),
        "the request never reached this replica's view of the queue",
        async || {
            let v: serde_json::Value = admin.get(&url).send().await.ok()?.json().await.ok()?;
            let list = v["pending"].as_array()?.clone();
            (list.len() == n).then_some(list)
        },
    )
    .await
}

/// The open grants one replica knows, once there are `n`.
async fn grants_on(proxy: &TestProxy, n: usize, what: &str) -> Vec<serde_json::Value> {
    let url = format!("{}/api/grants", proxy.admin_url());
    eventually(
        Duration::from_secs(10),
        Duration::from_millis(20),
        what,
        async || {
            let v = get_json(&admin_client(), &url).await?;
            let list = v["grants"].as_array()?.clone();
            (list.len() == n).then_some(list)
        },
    )
    .await
}

async fn approve_on(proxy: &TestProxy, id: &str, body: serde_json::Value) -> reqwest::Response {
    admin_client()
        .post(format!("{}/api/approvals/{id}/approve", proxy.admin_url()))
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_held_on_one_replica_is_released_by_an_approval_through_the_other() {
    let Some(server) = pg::server() else { return };
    let url = server.fresh_database().await;
    let upstream = Upstream::start().await;
    let (a, b) = two_replicas(&upstream, &url, &rule("hold")).await;

    let client_a = client(&a);
    let held = tokio::spawn(async move {
        let res = client_a
            .post("https://api.openai.com/v1/chat/completions")
            .body(chat(&format!("push with {GITHUB}")))
            .send()
            .await
            .unwrap();
        (res.status(), res.text().await.unwrap())
    });
    // B's approvers see A's request, masked.
    let list = pending_on(&b, 1).await;
    let id = list[0]["id"].as_str().unwrap().to_owned();
    assert!(!list[0].to_string().contains(GITHUB));
    let shown: serde_json::Value = admin_client()
        .get(format!("{}/api/approvals/{id}", b.admin_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(shown["body"].as_str().unwrap().contains("push with "));
    assert!(!shown.to_string().contains(GITHUB));
    assert!(upstream.received().is_empty(), "nothing leaves while held");

    // Approved through B, with a grant: A releases it.
    let started = Instant::now();
    let res = approve_on(&b, &id, json!({"reason": "release", "for": "20m"})).await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    let (status, text) = held.await.unwrap();
    eprintln!(
        "released on the other replica after {:?}",
        started.elapsed()
    );
    assert_eq!(status, 200, "{text}");
    assert_eq!(upstream.received().len(), 1);
    // Decided once: a second approval of the same request, on either replica, finds nothing.
    assert_eq!(approve_on(&a, &id, json!({})).await.status(), 404);
    pending_on(&a, 0).await;

    // The grant made on B lets the same user's next request through A unheld.
    let grants = grants_on(&a, 1, "the grant never reached replica A").await;
    let grant = grants[0]["id"].as_str().unwrap().to_owned();
    let res = client(&a)
        .post("https://api.openai.com/v1/chat/completions")
        .body(chat(&format!("again {GITHUB}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // Revoked through A: B holds the next one again.
    let res = admin_client()
        .delete(format!("{}/api/grants/{grant}", a.admin_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    grants_on(&b, 0, "the revocation never reached replica B").await;
    let client_b = client(&b);
    let again = tokio::spawn(async move {
        client_b
            .post("https://api.openai.com/v1/chat/completions")
            .body(chat(&format!("third {GITHUB}")))
            .send()
            .await
            .unwrap()
            .status()
    });
    let list = pending_on(&a, 1).await;
    let res = approve_on(&a, list[0]["id"].as_str().unwrap(), json!({})).await;
    assert_eq!(res.status(), 200);
    assert_eq!(again.await.unwrap(), 200);

    let (store, _dir) = a.stop_and_open_store().await;
    b.proxy.shutdown().await;
    assert_eq!(store.verify().unwrap(), None);
    let decisions: Vec<String> = store
        .all()
        .unwrap()
        .iter()
        .filter_map(|(_, r)| r.approval.clone())
        .map(|a| serde_json::from_str::<serde_json::Value>(&a).unwrap()["decision"].to_string())
        .collect();
    assert_eq!(
        decisions,
        ["\"approved\"", "\"granted\"", "\"approved\""],
        "each replica recorded its own exchanges' approvals"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_approval_is_used_once_whichever_replica_the_retry_lands_on() {
    let Some(server) = pg::server() else { return };
    let url = server.fresh_database().await;
    let upstream = Upstream::start().await;
    let (a, b) = two_replicas(&upstream, &url, &rule("retry")).await;
    let send = |proxy: &TestProxy| {
        let client = client(proxy);
        async move {
            client
                .post("https://api.openai.com/v1/chat/completions")
                .body(chat(&format!("deploy {GITHUB}")))
                .send()
                .await
                .unwrap()
        }
    };
    // The same request on either replica is the same approval: the placeholder key is shared,
    // so its masked body (and hash) is the same.
    let first = send(&a).await;
    assert_eq!(first.status(), 403);
    assert_eq!(reason_of(&first).as_deref(), Some("approval-pending"));
    let second = send(&b).await;
    assert_eq!(reason_of(&second).as_deref(), Some("approval-pending"));
    let list = pending_on(&b, 1).await;
    let id = list[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(approve_on(&b, &id, json!({})).await.status(), 200);
    // Retried on A: through once; again on B: a new approval is needed.
    assert_eq!(send(&a).await.status(), 200);
    let after = send(&b).await;
    assert_eq!(after.status(), 403);
    assert_eq!(reason_of(&after).as_deref(), Some("approval-pending"));
    assert_eq!(upstream.received().len(), 1, "exactly one went through");
    a.proxy.shutdown().await;
    b.proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_streams_split_across_two_replicas_are_all_recorded_on_one_chain() {
    let Some(server) = pg::server() else { return };
    let url = server.fresh_database().await;
    let upstream = Upstream::start().await;
    let (a, b) = two_replicas(&upstream, &url, "rules: []\n").await;
    let (client_a, client_b) = (client(&a), client(&b));
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let client = if i % 2 == 0 {
                client_a.clone()
            } else {
                client_b.clone()
            };
            tokio::spawn(async move {
                let res = client
                    .post("https://api.openai.com/v1/chat/completions")
                    .body(json!({"model": "gpt-4o", "stream": true, "messages": [{"role": "user", "content": format!("n{i}")}]}).to_string())
                    .send()
                    .await
                    .unwrap();
                res.text().await.unwrap()
            })
        })
        .collect();
    for t in tasks {
        assert!(t.await.unwrap().ends_with("data: [DONE]\n\n"));
    }
    let (store, _dir) = a.stop_and_open_store().await;
    b.proxy.shutdown().await;
    assert_eq!(store.count().unwrap(), 200);
    assert_eq!(store.pending_count().unwrap(), 0);
    assert_eq!(store.verify().unwrap(), None, "one chain, both writers");
    let records = store.all().unwrap();
    let ids: Vec<i64> = records.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, (1..=200).collect::<Vec<_>>(), "ids without gaps");
    let mut asked: Vec<String> = records
        .iter()
        .map(|(_, r)| {
            assert_eq!(r.outcome, "complete");
            assert_eq!(r.answer_text().as_deref(), Some("Hello from upstream"));
            let body: serde_json::Value = serde_json::from_slice(&r.request_body).unwrap();
            body["messages"][0]["content"].as_str().unwrap().to_owned()
        })
        .collect();
    asked.sort();
    let mut expected: Vec<String> = (0..200).map(|i| format!("n{i}")).collect();
    expected.sort();
    assert_eq!(asked, expected, "each stream exactly once");
    let replicas = store.replicas().unwrap();
    let names: Vec<&str> = replicas.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["replica-a", "replica-b"]);
}

/// `tollgate run` as replica `name` on database `url`, sending the fixture hosts to `upstream`.
fn run_replica(
    dir: &std::path::Path,
    upstream: &Upstream,
    url: &str,
    name: &str,
) -> (Running, String) {
    let connect_to = format!("api.openai.com:443:127.0.0.1:{}", upstream.tls_addr.port());
    let upstream_ca = format!("{FIXTURES}/upstream-ca.crt");
    let ca = dir.join("ca");
    Running::start_with(
        dir,
        &[
            "--listen",
            "127.0.0.1:0",
            "--ca-dir",
            ca.to_str().unwrap(),
            "--db",
            url,
            "--connect-to",
            &connect_to,
            "--upstream-ca",
            &upstream_ca,
        ],
        &[("TOLLGATE_REPLICA", name)],
    )
}

fn through(addr: &str, ca_pem: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .use_rustls_tls()
        .proxy(reqwest::Proxy::all(format!("http://{addr}")).unwrap())
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_mid_stream_leaves_the_other_serving_and_the_database_verifying() {
    let Some(server) = pg::server() else { return };
    let url = server.fresh_database().await;
    let upstream = Upstream::start().await;
    // One CA directory for both, as a mounted secret would be.
    let dir = tempfile::tempdir().unwrap();
    let (a, addr_a) = run_replica(dir.path(), &upstream, &url, "replica-a");
    let (b, addr_b) = run_replica(dir.path(), &upstream, &url, "replica-b");
    let ca = std::fs::read_to_string(dir.path().join("ca/tollgate-ca.crt")).unwrap();

    // A stream through A that the upstream holds after its first event.
    let res = through(&addr_a, &ca)
        .post("https://api.openai.com/test/gated-sse")
        .body(json!({"model": "gpt-4o", "stream": true, "messages": []}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let mut stream = res.bytes_stream();
    let first = futures_util::StreamExt::next(&mut stream)
        .await
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&first).contains("\"n\":1"));
    // Its in-flight row is in the database, owned by A.
    let store = tollgate::record::Store::connect(&tollgate::record::StoreLocation::Postgres(
        pg::settings(&url, "tester"),
    ))
    .unwrap();
    eventually(
        Duration::from_secs(10),
        Duration::from_millis(20),
        "the stream was never written aside as in flight",
        async || (store.pending_count().unwrap() == 1).then_some(()),
    )
    .await;

    let mut killed = a.kill();
    let _ = killed.wait();
    drop(stream);

    // B serves on, and records.
    let res = through(&addr_b, &ca)
        .post("https://api.openai.com/v1/chat/completions")
        .body(chat("still here"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.text().await.unwrap();
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_tollgate"))
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (code, said) = cli(&["audit", "verify", "--db", &url]);
    assert_eq!(code, Some(0), "{said}");
    eventually(
        Duration::from_secs(10),
        Duration::from_millis(50),
        "B's exchange was never recorded",
        async || (store.count().unwrap() >= 1).then_some(()),
    )
    .await;
    // A's exchange is still A's: B never claimed it.
    let replicas = store.replicas().unwrap();
    let of = |name: &str| replicas.iter().find(|r| r.name == name).unwrap().in_flight;
    assert_eq!(of("replica-a"), 1);
    assert_eq!(of("replica-b"), 0);
    // A's heartbeat is seconds old: recovering it needs --force, or waiting until it is stale.
    let (code, said) = cli(&["store", "recover", "--replica", "replica-a", "--db", &url]);
    assert_ne!(code, Some(0));
    assert!(said.contains("looks alive"), "{said}");
    let (code, said) = cli(&[
        "store",
        "recover",
        "--replica",
        "replica-a",
        "--force",
        "--db",
        &url,
    ]);
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains("closed 1 exchanges"), "{said}");
    let interrupted: Vec<_> = store
        .all()
        .unwrap()
        .into_iter()
        .filter(|(_, r)| r.outcome == "interrupted")
        .collect();
    assert_eq!(interrupted.len(), 1);
    assert_eq!(interrupted[0].1.path.as_deref(), Some("/test/gated-sse"));
    assert_eq!(store.pending_count().unwrap(), 0);
    let (code, said) = cli(&["audit", "verify", "--db", &url]);
    assert_eq!(code, Some(0), "{said}");
    let (status, log) = b.terminate();
    assert!(status.success(), "{log}");
    assert!(!log.contains(GITHUB));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_to_the_database_is_verified_against_the_trusted_roots() {
    let Some(server) = pg::server() else { return };
    let url = server.fresh_database().await;
    // The server's certificate is issued by the fixture CA for localhost.
    let tls_url = format!(
        "{}?sslmode=verify-full",
        url.replace("127.0.0.1", "localhost")
    );
    let settings = |roots: &[std::path::PathBuf]| {
        tollgate::record::postgres::PgSettings::parse(
            &tls_url,
            None,
            tollgate::tls::upstream::client_config(roots).unwrap(),
            2,
            Duration::from_secs(5),
            "tls".into(),
        )
        .unwrap()
    };
    let trusted = settings(&[format!("{FIXTURES}/upstream-ca.crt").into()]);
    assert!(trusted.shown.contains("verify-full"), "{}", trusted.shown);
    let store = tollgate::record::Store::connect(&tollgate::record::StoreLocation::Postgres(
        std::sync::Arc::new(trusted),
    ))
    .unwrap();
    assert_eq!(store.count().unwrap(), 0);
    // The same server with only the public roots: refused, and the error says why.
    let untrusted = tollgate::record::Store::connect(&tollgate::record::StoreLocation::Postgres(
        std::sync::Arc::new(settings(&[])),
    ));
    let error = untrusted
        .err()
        .expect("an unknown issuer is refused")
        .to_string();
    assert!(error.to_lowercase().contains("certificate"), "{error}");
    // Modes that would not check the server are not taken.
    for mode in ["prefer", "require", "allow", "verify-ca"] {
        let e = tollgate::record::postgres::PgSettings::parse(
            &format!("{url}?sslmode={mode}"),
            None,
            tollgate::tls::upstream::client_config(&[]).unwrap(),
            2,
            Duration::from_secs(5),
            "x".into(),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("verify-full"), "{e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_password_comes_from_the_environment_or_a_file_never_the_command_line() {
    let Some(server) = pg::server() else { return };
    const PASSWORD: &str = "pw-Zq81vX0aLr";
    let url = server.database_with_password(PASSWORD).await;
    let dir = tempfile::tempdir().unwrap();
    let cli = |args: &[&str], env: &[(&str, &str)]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_tollgate"))
            .args(args)
            .current_dir(dir.path())
            .env_remove("TOLLGATE_DB_PASSWORD")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            !said.contains(PASSWORD),
            "the password is never echoed: {said}"
        );
        (out.status.code(), said)
    };
    // In the URL: refused before anything connects.
    let with_password = url.replace("pwuser@", &format!("pwuser:{PASSWORD}@"));
    let (code, said) = cli(&["store", "recover", "--db", &with_password], &[]);
    assert_eq!(code, Some(64), "{said}");
    assert!(said.contains("TOLLGATE_DB_PASSWORD"), "{said}");
    // None given, or a wrong one: the server says no.
    let (code, said) = cli(&["store", "recover", "--db", &url], &[]);
    assert_ne!(code, Some(0), "{said}");
    let (code, said) = cli(
        &["store", "recover", "--db", &url],
        &[("TOLLGATE_DB_PASSWORD", "wrong")],
    );
    assert_ne!(code, Some(0), "{said}");
    assert!(said.contains("password authentication failed"), "{said}");
    // From the environment.
    let (code, said) = cli(
        &["store", "recover", "--db", &url],
        &[("TOLLGATE_DB_PASSWORD", PASSWORD)],
    );
    assert_eq!(code, Some(0), "{said}");
    // From a file the config names, with the URL in the config too.
    std::fs::write(dir.path().join("db-password"), format!("{PASSWORD}\n")).unwrap();
    std::fs::write(
        dir.path().join("tollgate.yaml"),
        format!("store:\n  url: {url}\n  password_file: db-password\n  pool_size: 2\n  statement_timeout: 3s\n"),
    )
    .unwrap();
    let (code, said) = cli(&["audit", "verify"], &[]);
    assert_eq!(code, Some(0), "{said}");
    assert!(
        said.contains("pwuser@"),
        "names the database it verified: {said}"
    );
}
