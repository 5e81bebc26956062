//! Recording end to end: every exchange and refusal lands in the hash-chained store, with the
//! bodies exactly as they crossed the wire, grouped into sessions, and readable with the CLI.

mod common;

use common::*;
use serde_json::json;
use tollgate::record::RecordKind;

const GITHUB: &str = "ghp_aB3cD4eF5gH6iJ7kL8mN9oP0qR1sT2uVwXyZ";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_one_of_many_concurrent_streams_is_recorded() {
    let upstream = Upstream::start().await;
    let proxy = ProxySetup::new(&upstream).start().await;
    let client = client(&proxy);
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let client = client.clone();
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
    let (store, _dir) = proxy.stop_and_open_store().await;
    assert_eq!(store.count().unwrap(), 200);
    assert_eq!(
        store.pending_count().unwrap(),
        0,
        "every in-flight record was replaced"
    );
    assert_eq!(store.verify().unwrap(), None);
    for id in 1..=200 {
        let r = store.get(id).unwrap().unwrap();
        assert_eq!(r.kind, RecordKind::Exchange);
        assert_eq!(r.outcome, "complete");
        assert_eq!(r.status, Some(200));
        assert_eq!(r.model.as_deref(), Some("gpt-4o"));
        assert_eq!(r.answer_text().as_deref(), Some("Hello from upstream"));
        assert!(r.ttfb_ms.is_some());
    }
}

#[tokio::test]
async fn recorded_bodies_are_exactly_what_crossed_the_wire() {
    let upstream = Upstream::start().await;
    let proxy = ProxySetup::new(&upstream).start().await;
    let body = json!({"model": "claude", "stream": true, "messages": [{"role": "user", "content": format!("use {GITHUB}")}]}).to_string();
    let res = client(&proxy)
        .post("https://api.anthropic.com/v1/messages")
        .header("x-test-echo", "1")
        .body(body)
        .send()
        .await
        .unwrap();
    let answer = res.text().await.unwrap();
    assert!(answer.contains("ghp_"), "restored for the client");
    let (store, _dir) = proxy.stop_and_open_store().await;
    let record = store.get(1).unwrap().unwrap();
    let received = &upstream.received()[0];
    assert!(
        record.request_body == received.body,
        "request as sent upstream"
    );
    let raw = String::from_utf8(record.response_body.clone()).unwrap();
    assert!(
        raw.contains("event: message_stop") && !raw.contains(GITHUB),
        "response as received"
    );
    let text = record.answer_text().unwrap();
    assert!(
        text.contains("TOLLGATE_GITHUB_PAT_"),
        "the stream's text, joined: {text}"
    );
    assert!(
        record.findings.contains("github-pat"),
        "{}",
        record.findings
    );
    assert!(!record.findings.contains(GITHUB));
    assert_eq!(record.provider.as_deref(), Some("anthropic"));
}

#[tokio::test]
async fn refusals_are_recorded_with_the_rule() {
    let upstream = Upstream::start().await;
    let proxy = ProxySetup::new(&upstream)
        .policy("hosts:\n  deny: [tunneled.example]\n")
        .masking("rules:\n  github-pat: { action: block }\n")
        .start()
        .await;
    connect(proxy.addr(), "tunneled.example:443", &[])
        .await
        .refused();
    let res = client(&proxy)
        .post("https://api.openai.com/v1/chat/completions")
        .body(json!({"messages": [{"role": "user", "content": GITHUB}]}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let (store, _dir) = proxy.stop_and_open_store().await;
    let connect = store.get(1).unwrap().unwrap();
    assert_eq!(connect.kind, RecordKind::ConnectRefused);
    assert_eq!(connect.outcome, "host-denied");
    assert_eq!(
        connect.rule.as_deref(),
        Some("hosts.deny: tunneled.example")
    );
    let blocked = store.get(2).unwrap().unwrap();
    assert_eq!(blocked.outcome, "secret-blocked");
    assert_eq!(blocked.status, Some(403));
    assert_eq!(blocked.rule.as_deref(), Some("masking.rules: github-pat"));
    assert!(blocked.request_body.is_empty(), "nothing was sent upstream");
    assert!(upstream.received().is_empty());
}

#[tokio::test]
async fn turns_of_one_conversation_share_a_session_and_the_cli_shows_them() {
    let upstream = Upstream::start().await;
    let proxy = ProxySetup::new(&upstream).start().await;
    let client = client(&proxy);
    let turn = |messages: serde_json::Value| {
        client
            .post("https://api.openai.com/v1/chat/completions")
            .body(json!({"model": "gpt-4o", "messages": messages}).to_string())
            .send()
    };
    let first = json!({"role": "user", "content": "refactor the parser"});
    turn(json!([first])).await.unwrap().text().await.unwrap();
    turn(json!([first, {"role": "assistant", "content": "done"}, {"role": "user", "content": "now tests"}]))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    turn(json!([{"role": "user", "content": "another task"}]))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let db = proxy.db_arg();
    let (store, dir) = proxy.stop_and_open_store().await;
    let one = store.get(1).unwrap().unwrap().session_id;
    assert_eq!(store.get(2).unwrap().unwrap().session_id, one);
    assert_ne!(store.get(3).unwrap().unwrap().session_id, one);
    drop(store);

    let cli = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_tollgate"))
            .args(args)
            .args(["--db", &db])
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    let list = cli(&["sessions", "list", "--json"]);
    assert!(
        list.status.success(),
        "{}",
        String::from_utf8_lossy(&list.stderr)
    );
    let sessions: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(sessions.as_array().unwrap().len(), 2);
    let show = cli(&["sessions", "show", &one]);
    let shown = String::from_utf8_lossy(&show.stdout);
    assert_eq!(shown.lines().count(), 2, "{shown}");
    assert!(
        shown.contains("/v1/chat/completions") && shown.contains("gpt-4o"),
        "{shown}"
    );

    // JSON output nests the fields kept as JSON text as the objects they are.
    let show = cli(&["sessions", "show", &one, "--json"]);
    let records: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    for record in records.as_array().unwrap() {
        assert!(record["findings"].is_array(), "{record}");
        assert!(
            record["usage"].is_object() || record["usage"].is_null(),
            "{record}"
        );
    }

    let har_path = dir.path().join("out.har");
    let export = cli(&["export", "--har", har_path.to_str().unwrap()]);
    assert!(
        export.status.success(),
        "{}",
        String::from_utf8_lossy(&export.stderr)
    );
    let har: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&har_path).unwrap()).unwrap();
    let entries = har["log"]["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 3);
    assert_eq!(
        entries[1]["request"]["postData"]["text"]
            .as_str()
            .unwrap()
            .as_bytes(),
        &upstream.received()[1].body[..]
    );

    let replay = cli(&["replay", "2", "--request"]);
    assert!(
        replay.stdout == upstream.received()[1].body,
        "replay prints the bytes sent"
    );
    let missing = cli(&["replay", "99"]);
    assert_eq!(missing.status.code(), Some(1));
}

/// One short chat completion through the proxy.
fn say_hi(
    client: &reqwest::Client,
) -> impl std::future::Future<Output = reqwest::Result<reqwest::Response>> + use<> {
    client
        .post("https://api.openai.com/v1/chat/completions")
        .body(json!({"messages": [{"role": "user", "content": "hi"}]}).to_string())
        .send()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn llm_requests_are_refused_while_the_store_cannot_record_them() {
    let upstream = Upstream::start().await;
    let proxy = ProxySetup::new(&upstream).start().await;
    let client = client(&proxy);
    let send = || say_hi(&client);
    assert_eq!(send().await.unwrap().status(), 200);

    // Another process holds the database: every write times out.
    let lock = proxy.store_outage().await;
    let refused = eventually(
        std::time::Duration::from_secs(30),
        std::time::Duration::from_millis(200),
        "never refused",
        async || Some(send().await.unwrap()).filter(|res| res.status() == 503),
    )
    .await;
    assert_eq!(refused.headers()["x-tollgate-reason"], "store-unavailable");
    assert_eq!(refused.headers()["x-should-retry"], "true");
    let sent_before = upstream.received().len();
    // Tunnels do not wait on the store.
    let tunneled = client_trusting(&proxy, &[&upstream_ca_pem()])
        .build()
        .unwrap();
    assert_eq!(
        tunneled
            .get("https://tunneled.example/x")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    drop(tunneled); // closes the tunnel, so shutdown need not wait for it

    lock.end().await;
    eventually(
        std::time::Duration::from_secs(30),
        std::time::Duration::from_millis(200),
        "never recovered",
        async || (send().await.unwrap().status() == 200).then_some(()),
    )
    .await;
    let (store, _dir) = proxy.stop_and_open_store().await;
    assert_eq!(store.verify().unwrap(), None);
    let exchanges = upstream.received().len();
    assert!(exchanges > sent_before);
    // Every exchange that reached the upstream was recorded, the refused ones too.
    assert!(store.count().unwrap() as usize > exchanges);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_continue_a_full_audit_queue_holds_requests_then_refuses_and_nothing_is_dropped() {
    let upstream = Upstream::start().await;
    let proxy = ProxySetup::new(&upstream)
        .recording("retention: {bodies: 1d, records: 2d}\non_store_failure: continue\n")
        .limits(tollgate::config::Limits {
            audit_queue_records: 3,
            ..Default::default()
        })
        .timeouts(tollgate::config::Timeouts {
            header_read: std::time::Duration::from_secs(1),
            ..Default::default()
        })
        .start()
        .await;
    let client = client(&proxy);
    let send = || say_hi(&client);
    let lock = proxy.store_outage().await;
    // Under `continue` requests go on while the store fails, their records waiting in memory,
    // until the queue is full: then a request waits for room, and is refused when none comes.
    let mut passed = 0;
    let refused = loop {
        let res = send().await.unwrap();
        if res.status() == 503 {
            break res;
        }
        assert_eq!(res.status(), 200);
        passed += 1;
        assert!(passed < 20, "a full queue never held a request back");
    };
    assert_eq!(refused.headers()["x-tollgate-reason"], "store-unavailable");
    assert!(passed >= 1);
    lock.end().await;
    eventually(
        std::time::Duration::from_secs(30),
        std::time::Duration::from_millis(200),
        "never recovered",
        async || (send().await.unwrap().status() == 200).then_some(()),
    )
    .await;
    let exchanges = upstream.received().len();
    let db = proxy.store.clone();
    let TestProxy {
        proxy, dir: _dir, ..
    } = proxy;
    let report = proxy.shutdown().await;
    assert_eq!(report.records_lost, 0);
    let store = tollgate::record::Store::connect(&db).unwrap();
    assert_eq!(store.verify().unwrap(), None);
    // Every exchange that reached the upstream was recorded, the refused ones too.
    assert!(store.count().unwrap() as usize > exchanges);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_past_the_audit_queue_bound_waits_for_the_writer_instead_of_being_refused() {
    let upstream = Upstream::start().await;
    // The default policy (`refuse`), and a queue of two entries: a burst of 40 requests fills it
    // many times over while the writer is healthy. They are held until it catches up, never
    // refused, and every one is recorded.
    let proxy = ProxySetup::new(&upstream)
        .limits(tollgate::config::Limits {
            audit_queue_records: 2,
            ..Default::default()
        })
        .start()
        .await;
    let client = client(&proxy);
    let burst: Vec<_> = (0..40).map(|_| tokio::spawn(say_hi(&client))).collect();
    for request in burst {
        let res = request.await.unwrap().unwrap();
        assert_eq!(res.status(), 200, "{:?}", reason_of(&res));
    }
    let db = proxy.store.clone();
    let TestProxy {
        proxy, dir: _dir, ..
    } = proxy;
    assert_eq!(proxy.shutdown().await.records_lost, 0);
    let store = tollgate::record::Store::connect(&db).unwrap();
    assert_eq!(store.verify().unwrap(), None);
    assert_eq!(store.count().unwrap(), 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_does_not_wait_forever_on_a_failing_store_and_reports_what_was_lost() {
    let upstream = Upstream::start().await;
    let proxy = ProxySetup::new(&upstream)
        .recording("retention: {bodies: 1d, records: 2d}\non_store_failure: continue\n")
        .timeouts(tollgate::config::Timeouts {
            drain: std::time::Duration::from_secs(1),
            ..Default::default()
        })
        .start()
        .await;
    let client = client(&proxy);
    let _outage = proxy.store_outage().await;
    for _ in 0..3 {
        let res = say_hi(&client).await.unwrap();
        assert_eq!(res.status(), 200);
    }
    drop(client);
    let TestProxy {
        proxy, dir: _dir, ..
    } = proxy;
    let report = proxy.shutdown().await;
    assert!(report.records_lost >= 3, "{report:?}");
}

const KEY: &str = "8f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";

#[tokio::test]
async fn originals_are_kept_sealed_only_when_policy_asks() {
    let upstream = Upstream::start().await;
    let proxy = ProxySetup::new(&upstream)
        .recording("retention: { bodies: 30d, records: 400d }\nstore_originals: true\n")
        .originals_key(KEY)
        .start()
        .await;
    let body = json!({"messages": [{"role": "user", "content": format!("deploy with {GITHUB}")}]})
        .to_string();
    client(&proxy)
        .post("https://api.openai.com/v1/chat/completions")
        .body(body.clone())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let (db, pg_url) = (proxy.db_path(), proxy.pg_url.clone());
    let db_arg = proxy.db_arg();
    let (store, dir) = proxy.stop_and_open_store().await;
    let record = store.get(1).unwrap().unwrap();
    assert!(!record.original_body.is_empty());
    drop(store);
    let (raw, wal) = match &pg_url {
        // Every row as text, its byte strings in hex: the secret in neither form.
        Some(url) => {
            let dump = common::pg_dump(url).await;
            let hex: String = GITHUB.bytes().map(|b| format!("{b:02x}")).collect();
            assert!(!dump.contains(&hex), "the secret is in the store in clear");
            (dump.into_bytes(), Vec::new())
        }
        None => (
            std::fs::read(&db).unwrap(),
            std::fs::read(db.with_extension("db-wal")).unwrap_or_default(),
        ),
    };
    for file in [&raw, &wal] {
        assert!(
            !file.windows(GITHUB.len()).any(|w| w == GITHUB.as_bytes()),
            "the secret is in the store in clear"
        );
    }
    let replay = |key: Option<&str>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_tollgate"));
        cmd.args(["replay", "1", "--original", "--db", &db_arg])
            .current_dir(dir.path())
            .env_remove("TOLLGATE_ORIGINALS_KEY");
        if let Some(key) = key {
            cmd.env("TOLLGATE_ORIGINALS_KEY", key);
        }
        cmd.output().unwrap()
    };
    let opened = replay(Some(KEY));
    assert!(
        opened.status.success(),
        "{}",
        String::from_utf8_lossy(&opened.stderr)
    );
    assert_eq!(opened.stdout, body.as_bytes());
    assert_eq!(replay(None).status.code(), Some(1));
}

#[tokio::test]
async fn keeping_originals_without_a_key_refuses_to_start() {
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("policies")).unwrap();
    std::fs::write(
        dir.path().join("policies/recording.yaml"),
        "retention: { bodies: 1d, records: 2d }\nstore_originals: true\n",
    )
    .unwrap();
    let _ = &upstream;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["run", "--listen", "127.0.0.1:0"])
        .current_dir(dir.path())
        .env_remove("TOLLGATE_ORIGINALS_KEY")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("store_originals"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_send_goes_through_the_running_proxy_and_shows_the_difference() {
    let upstream = Upstream::start().await;
    let proxy = ProxySetup::new(&upstream).start().await;
    client(&proxy)
        .post("https://api.openai.com/v1/chat/completions")
        .body(
            json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}).to_string(),
        )
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // Wait until the exchange is on disk.
    eventually(
        std::time::Duration::from_secs(20),
        std::time::Duration::from_millis(50),
        "the exchange was never recorded",
        async || {
            (tollgate::record::Store::connect(&proxy.store)
                .and_then(|s| s.count())
                .unwrap_or(0)
                >= 1)
                .then_some(())
        },
    )
    .await;
    let replay = |extra: &[&str]| {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_tollgate"));
        cmd.args(["replay", "1", "--send", "--proxy", &proxy.url()])
            .args(["--db", &proxy.db_arg()])
            .args(extra)
            .current_dir(proxy.dir.path());
        cmd.output()
    };
    let same = replay(&[]).await.unwrap();
    let said = String::from_utf8_lossy(&same.stdout).into_owned();
    assert!(
        same.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&same.stderr)
    );
    assert!(
        said.contains("recorded: 200 (complete); now: 200"),
        "{said}"
    );
    assert!(said.contains("the answers are the same"), "{said}");

    // The echo route answers differently: the difference is shown as a unified diff.
    let changed = replay(&["--header", "x-test-echo: 1"]).await.unwrap();
    let said = String::from_utf8_lossy(&changed.stdout).into_owned();
    assert!(
        said.contains("--- recorded") && said.contains("+++ now"),
        "{said}"
    );
    assert!(
        said.contains("-") && said.contains("Hello from upstream"),
        "{said}"
    );
    // Both re-sends went through the proxy's pipeline and were recorded.
    assert_eq!(upstream.received().len(), 3);
    assert_eq!(upstream.received()[2].headers["x-test-echo"], "1");
}

#[tokio::test]
async fn recording_can_be_turned_off() {
    let upstream = Upstream::start().await;
    let proxy = ProxySetup::new(&upstream)
        .recording("retention: { bodies: 30d, records: 400d }\nenabled: false\n")
        .start()
        .await;
    let res = client(&proxy)
        .post("https://api.openai.com/v1/chat/completions")
        .body(json!({"messages": []}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let db = proxy.db_path();
    let TestProxy {
        proxy, dir: _dir, ..
    } = proxy;
    proxy.shutdown().await;
    assert!(!db.exists(), "no store is created when recording is off");
}

#[tokio::test]
async fn the_writer_signs_the_head_every_so_many_records_and_soon_after_a_lone_one() {
    use tollgate::record::checkpoint::{self, PublicKey};
    let upstream = Upstream::start().await;
    let proxy = ProxySetup::new(&upstream)
        .recording(
            "retention: { bodies: 30d, records: 400d }\ncheckpoints: { every_records: 4, every_seconds: 1, file: checkpoints.jsonl }\n",
        )
        .start()
        .await;
    let client = client(&proxy);
    let send = || {
        client
            .post("https://api.openai.com/v1/chat/completions")
            .body(json!({"messages": []}).to_string())
            .send()
    };
    let db = proxy.store.clone();
    let signed = || {
        tollgate::record::Store::connect(&db)
            .and_then(|s| s.last_checkpointed())
            .unwrap_or(0)
    };
    // One record, then nothing: the writer wakes to sign it within a second or so.
    send().await.unwrap().text().await.unwrap();
    eventually(
        std::time::Duration::from_secs(20),
        std::time::Duration::from_millis(50),
        "the lone record was never signed",
        async || (signed() >= 1).then_some(()),
    )
    .await;
    for _ in 0..9 {
        send().await.unwrap().text().await.unwrap();
    }
    let ca = proxy.dir.path().join("ca");
    let (store, dir) = proxy.stop_and_open_store().await;
    assert_eq!(store.count().unwrap(), 10);
    let key = PublicKey::load(&ca.join(checkpoint::PUBLIC_KEY_FILE)).unwrap();
    let verified =
        checkpoint::verify(&store, &[key], Some(&dir.path().join("checkpoints.jsonl"))).unwrap();
    assert_eq!(verified.newest_external, Some(10), "signed at shutdown");
    assert_eq!(verified.unsigned, 0);
    // The lone record's checkpoint, then at least one covering record 10: the writer signs once
    // per batch that crosses the interval, so nine records written in one batch (as PostgreSQL's
    // slower commits gather them) give one checkpoint, and shutdown has nothing left to sign.
    assert!(verified.in_store >= 2, "{verified:?}");
    assert_eq!(verified.in_file, Some(verified.in_store));
}

#[tokio::test]
async fn a_client_that_leaves_before_the_response_head_is_recorded_as_gone() {
    let upstream = Upstream::start().await;
    let proxy = ProxySetup::new(&upstream).start().await;
    // The upstream never answers; the client gives up and closes its connection.
    let gave_up = client(&proxy)
        .post("https://api.openai.com/test/silent")
        .timeout(std::time::Duration::from_millis(500))
        .body("{}")
        .send()
        .await;
    assert!(gave_up.is_err());
    // The record is final while the proxy runs, not left in flight for the next start.
    let store = proxy.open_store();
    let (_, record) = eventually(
        std::time::Duration::from_secs(10),
        std::time::Duration::from_millis(50),
        "no record of the abandoned exchange",
        async || {
            store
                .all()
                .unwrap()
                .into_iter()
                .find(|(_, r)| r.path.as_deref() == Some("/test/silent"))
        },
    )
    .await;
    assert_eq!(record.outcome, "client-gone");
    assert_eq!(record.status, None);
    assert_eq!(record.kind, RecordKind::Exchange);
    drop(store);
    let (store, _dir) = proxy.stop_and_open_store().await;
    let silent: Vec<_> = store
        .all()
        .unwrap()
        .into_iter()
        .filter(|(_, r)| r.path.as_deref() == Some("/test/silent"))
        .collect();
    assert_eq!(silent.len(), 1, "one record, not a second at shutdown");
}
