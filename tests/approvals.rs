//! Just-in-time approvals end to end: held requests released by the admin API and by the CLI,
//! denials and timeouts in the provider's error shape, `retry` mode's once-only pass, no
//! self-approval, grants, abandoned requests, the record of every decision, and real clients
//! (curl, the official Python SDKs) waiting through a hold.

mod common;

use common::*;
use std::time::Duration;

const GITHUB: &str = "ghp_aB3cD4eF5gH6iJ7kL8mN9oP0qR1sT2uVwXyZ";

fn chat(content: &str) -> String {
    serde_json::json!({"model": "gpt-4o", "messages": [{"role": "user", "content": content}]})
        .to_string()
}

/// A chat completion through the proxy, sent from a task (it may be held): its status.
fn spawn_chat(
    client: reqwest::Client,
    content: String,
) -> tokio::task::JoinHandle<reqwest::StatusCode> {
    tokio::spawn(async move {
        client
            .post("https://api.openai.com/v1/chat/completions")
            .body(chat(&content))
            .send()
            .await
            .unwrap()
            .status()
    })
}

fn rule(mode: &str, wait: &str) -> String {
    format!(
        "rules:\n  - name: tokens-leave-with-approval\n    when: {{ findings: [github-pat] }}\n    approvers: [security]\n    mode: {mode}\n    wait: {wait}\n    max_grant: 30m\nbreak_glass: [oncall]\n"
    )
}

/// The pending approvals, once `n` are there.
async fn pending(proxy: &TestProxy, token: Option<&str>, n: usize) -> Vec<serde_json::Value> {
    let admin = admin_client();
    let url = format!("{}/api/approvals", proxy.admin_url());
    eventually(
        Duration::from_secs(10),
        Duration::from_millis(20),
        "the request never reached the approval queue",
        async || {
            let mut req = admin.get(&url);
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            let v: serde_json::Value = req.send().await.ok()?.json().await.ok()?;
            let list = v["pending"].as_array()?.clone();
            (list.len() >= n).then_some(list)
        },
    )
    .await
}

async fn decide(
    proxy: &TestProxy,
    token: Option<&str>,
    id: &str,
    verb: &str,
    body: serde_json::Value,
) -> reqwest::Response {
    let mut req = admin_client()
        .post(format!("{}/api/approvals/{id}/{verb}", proxy.admin_url()))
        .json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap()
}

fn approval_of(record: &tollgate::record::Record) -> serde_json::Value {
    serde_json::from_str(
        record
            .approval
            .as_deref()
            .expect("an approval in the record"),
    )
    .unwrap()
}

#[tokio::test]
async fn a_held_request_leaves_masked_once_approved_and_the_record_says_who() {
    let upstream = Upstream::start().await;
    let proxy = ProxySetup::new(&upstream)
        .file("approvals.yaml", &rule("hold", "30s"))
        .start()
        .await;
    let client = client(&proxy);
    let request = tokio::spawn(async move {
        let res = client
            .post("https://api.openai.com/v1/chat/completions")
            .header("content-type", "application/json")
            .body(chat(&format!("push with {GITHUB}")))
            .send()
            .await
            .unwrap();
        (res.status(), res.text().await.unwrap())
    });
    let list = pending(&proxy, None, 1).await;
    assert!(upstream.received().is_empty(), "nothing leaves while held");
    let p = &list[0];
    assert_eq!(p["rule"], "tokens-leave-with-approval");
    assert_eq!(p["mode"], "hold");
    assert_eq!(p["provider"], "openai");
    assert_eq!(p["findings"][0]["rule"], "github-pat");
    let id = p["id"].as_str().unwrap().to_owned();
    let shown: serde_json::Value = admin_client()
        .get(format!("{}/api/approvals/{id}", proxy.admin_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let body = shown["body"].as_str().unwrap();
    assert!(body.contains("push with "), "{body}");
    assert!(
        !body.contains(GITHUB) && !shown.to_string().contains(GITHUB),
        "approvers never see the secret: {shown}"
    );

    let res = decide(
        &proxy,
        None,
        &id,
        "approve",
        serde_json::json!({"reason": "release build"}),
    )
    .await;
    assert_eq!(res.status(), 200);
    let (status, text) = request.await.unwrap();
    assert_eq!(status, 200, "{text}");
    let received = upstream.received();
    assert_eq!(received.len(), 1);
    let sent = String::from_utf8_lossy(&received[0].body);
    assert!(!sent.contains(GITHUB), "forwarded as masked: {sent}");
    assert!(pending(&proxy, None, 0).await.is_empty());

    let (store, _dir) = proxy.stop_and_open_store().await;
    let records = store.all().unwrap();
    let (_, r) = records
        .iter()
        .find(|(_, r)| r.path.as_deref() == Some("/v1/chat/completions"))
        .unwrap();
    assert_eq!(r.outcome, "complete");
    let a = approval_of(r);
    assert_eq!(a["id"], id.as_str());
    assert_eq!(a["decision"], "approved");
    assert_eq!(a["mode"], "hold");
    assert_eq!(a["reason"], "release build");
    assert!(a["waited_ms"].as_u64().is_some());
    assert_eq!(
        store.verify().unwrap(),
        None,
        "the decision is in the chain"
    );
}

#[tokio::test]
async fn denied_and_timed_out_holds_answer_in_the_providers_error_shape() {
    let upstream = Upstream::start().await;
    let proxy = ProxySetup::new(&upstream)
        .file("approvals.yaml", &rule("hold", "1s"))
        .start()
        .await;
    let send = |content: String| {
        let client = client(&proxy);
        tokio::spawn(async move {
            let res = client
                .post("https://api.openai.com/v1/chat/completions")
                .body(chat(&content))
                .send()
                .await
                .unwrap();
            let status = res.status();
            let reason = res.headers()["x-tollgate-reason"]
                .to_str()
                .unwrap()
                .to_owned();
            (
                status,
                reason,
                res.json::<serde_json::Value>().await.unwrap(),
            )
        })
    };
    let timed_out = send(format!("one {GITHUB}"));
    let (status, reason, body) = timed_out.await.unwrap();
    assert_eq!(status, 504);
    assert_eq!(reason, "approval-timeout");
    assert_eq!(body["error"]["code"], "approval_timeout");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not decided within 1s"),
        "{body}"
    );

    let denied = send(format!("two {GITHUB}"));
    let list = pending(&proxy, None, 1).await;
    let id = list[0]["id"].as_str().unwrap().to_owned();
    let no_reason = decide(&proxy, None, &id, "deny", serde_json::json!({})).await;
    assert_eq!(no_reason.status(), 422, "a denial needs a reason");
    let res = decide(
        &proxy,
        None,
        &id,
        "deny",
        serde_json::json!({"reason": "that token is production's"}),
    )
    .await;
    assert_eq!(res.status(), 200);
    let (status, reason, body) = denied.await.unwrap();
    assert_eq!(status, 403);
    assert_eq!(reason, "approval-denied");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("that token is production's"), "{message}");
    assert!(upstream.received().is_empty());

    let (store, _dir) = proxy.stop_and_open_store().await;
    let decisions: Vec<String> = store
        .all()
        .unwrap()
        .iter()
        .filter(|(_, r)| r.approval.is_some())
        .map(|(_, r)| approval_of(r)["decision"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(decisions, ["timeout", "denied"]);
}

#[tokio::test]
async fn an_approved_retry_goes_through_once_and_a_changed_request_needs_its_own() {
    let upstream = Upstream::start().await;
    let proxy = ProxySetup::new(&upstream)
        .file("approvals.yaml", &rule("retry", "10m"))
        .start()
        .await;
    let client = client(&proxy);
    let send = async |content: &str| {
        let res = client
            .post("https://api.openai.com/v1/chat/completions")
            .body(chat(content))
            .send()
            .await
            .unwrap();
        let status = res.status();
        (status, res.json::<serde_json::Value>().await.unwrap())
    };
    let prompt = format!("deploy {GITHUB}");
    let (status, body) = send(&prompt).await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["code"], "approval_pending");
    let message = body["error"]["message"].as_str().unwrap().to_owned();
    let list = pending(&proxy, None, 1).await;
    let id = list[0]["id"].as_str().unwrap().to_owned();
    assert!(
        message.contains(&id),
        "the agent shows the approval id: {message}"
    );
    let (_, again) = send(&prompt).await;
    assert!(
        again["error"]["message"].as_str().unwrap().contains(&id),
        "the same request waits on the same approval"
    );
    assert_eq!(
        decide(&proxy, None, &id, "approve", serde_json::json!({}))
            .await
            .status(),
        200
    );
    let (status, changed) = send(&format!("deploy {GITHUB} now")).await;
    assert_eq!(status, 403, "a changed request needs its own approval");
    assert!(!changed["error"]["message"].as_str().unwrap().contains(&id));
    let (status, _) = send(&prompt).await;
    assert_eq!(status, 200, "the approved request goes through");
    let (status, _) = send(&prompt).await;
    assert_eq!(status, 403, "once");
    assert_eq!(upstream.received().len(), 1);
}

#[tokio::test]
async fn nobody_approves_their_own_request_and_break_glass_is_marked() {
    let (alice, alice_hash) = tollgate::identity::new_token();
    let (bob, bob_hash) = tollgate::identity::new_token();
    let (dana, dana_hash) = tollgate::identity::new_token();
    let (carol, carol_hash) = tollgate::identity::new_token();
    let upstream = Upstream::start().await;
    let proxy = ProxySetup::new(&upstream)
        .identity(&format!(
            "tokens:\n  - {{ name: alice, sha256: {alice_hash}, user: alice, groups: [security, platform] }}\n  - {{ name: bob, sha256: {bob_hash}, user: bob, groups: [security] }}\n  - {{ name: dana, sha256: {dana_hash}, user: dana, groups: [oncall] }}\n  - {{ name: carol, sha256: {carol_hash}, user: carol, groups: [dev] }}\nadmin:\n  roles:\n    admin: [platform]\n    approver: [security, oncall, dev]\n"
        ))
        .file("approvals.yaml", &rule("hold", "30s"))
        .start()
        .await;
    let held = |user: &'static str, secret: String| {
        let client = client_as(&proxy, user, &secret);
        tokio::spawn(async move {
            let res = client
                .post("https://api.openai.com/v1/chat/completions")
                .body(chat(&format!("from {user}: {GITHUB}")))
                .send()
                .await
                .unwrap();
            (res.status(), res.text().await.unwrap())
        })
    };
    let alices = held("alice", alice.clone());
    let list = pending(&proxy, Some(&bob), 1).await;
    let id = list[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(list[0]["user"], "alice");
    let own = decide(&proxy, Some(&alice), &id, "approve", serde_json::json!({})).await;
    assert_eq!(own.status(), 403, "admins included");
    let body: serde_json::Value = own.json().await.unwrap();
    assert_eq!(body["error"]["type"], "self-approval");
    let outsider = decide(&proxy, Some(&carol), &id, "approve", serde_json::json!({})).await;
    assert_eq!(outsider.status(), 403, "carol is no approver of this rule");
    let res = decide(&proxy, Some(&bob), &id, "approve", serde_json::json!({})).await;
    assert_eq!(res.status(), 200);
    let (status, body) = alices.await.unwrap();
    assert_eq!(status, 200, "{body}");

    let danas = held("dana", dana.clone());
    let list = pending(&proxy, Some(&bob), 1).await;
    let id = list[0]["id"].as_str().unwrap().to_owned();
    let res = decide(
        &proxy,
        Some(&dana),
        &id,
        "approve",
        serde_json::json!({"reason": "incident 42"}),
    )
    .await;
    assert_eq!(res.status(), 200);
    let verdict: serde_json::Value = res.json().await.unwrap();
    assert_eq!(verdict["break_glass"], true);
    let (status, body) = danas.await.unwrap();
    assert_eq!(status, 200, "{body}");
    let (store, _dir) = proxy.stop_and_open_store().await;
    let marks: Vec<(String, bool)> = store
        .all()
        .unwrap()
        .iter()
        .filter(|(_, r)| r.approval.is_some())
        .map(|(_, r)| {
            let a = approval_of(r);
            (
                a["by"].as_str().unwrap().to_owned(),
                a["break_glass"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        marks,
        [("bob".to_owned(), false), ("dana".to_owned(), true)]
    );
}

#[tokio::test]
async fn a_grant_lets_the_next_requests_through_until_it_is_revoked() {
    let upstream = Upstream::start().await;
    let proxy = ProxySetup::new(&upstream)
        .file("approvals.yaml", &rule("hold", "30s"))
        .start()
        .await;
    let send = |n: usize| spawn_chat(client(&proxy), format!("turn {n}: {GITHUB}"));
    let first = send(1);
    let list = pending(&proxy, None, 1).await;
    let id = list[0]["id"].as_str().unwrap().to_owned();
    let too_long = decide(
        &proxy,
        None,
        &id,
        "approve",
        serde_json::json!({"for": "2h"}),
    )
    .await;
    assert_eq!(too_long.status(), 422, "capped by max_grant");
    let res = decide(
        &proxy,
        None,
        &id,
        "approve",
        serde_json::json!({"for": "10m"}),
    )
    .await;
    assert_eq!(res.status(), 200);
    let grant = res.json::<serde_json::Value>().await.unwrap()["grant"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(first.await.unwrap(), 200);
    assert_eq!(
        send(2).await.unwrap(),
        200,
        "the grant lets it through unheld"
    );
    let grants: serde_json::Value = admin_client()
        .get(format!("{}/api/grants", proxy.admin_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(grants["grants"][0]["id"], grant.as_str());
    let revoked = admin_client()
        .delete(format!("{}/api/grants/{grant}", proxy.admin_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 204);
    let third = send(3);
    pending(&proxy, None, 1).await;
    assert!(!third.is_finished(), "held again once the grant is gone");
    third.abort();
    let (store, _dir) = proxy.stop_and_open_store().await;
    let decisions: Vec<String> = store
        .all()
        .unwrap()
        .iter()
        .filter(|(_, r)| r.approval.is_some())
        .map(|(_, r)| approval_of(r)["decision"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(decisions[..2], ["approved", "granted"]);
}

#[tokio::test]
async fn a_client_that_leaves_while_held_is_recorded_and_leaves_the_queue() {
    let upstream = Upstream::start().await;
    let proxy = ProxySetup::new(&upstream)
        .file("approvals.yaml", &rule("hold", "30s"))
        .start()
        .await;
    let client = client(&proxy);
    let request = tokio::spawn(async move {
        let _ = client
            .post("https://api.openai.com/v1/chat/completions")
            .body(chat(&format!("x {GITHUB}")))
            .send()
            .await;
    });
    pending(&proxy, None, 1).await;
    request.abort();
    let admin = admin_client();
    let url = format!("{}/api/approvals", proxy.admin_url());
    eventually(
        Duration::from_secs(10),
        Duration::from_millis(20),
        "the abandoned request stayed in the queue",
        async || {
            let v: serde_json::Value = admin.get(&url).send().await.ok()?.json().await.ok()?;
            v["pending"].as_array()?.is_empty().then_some(())
        },
    )
    .await;
    let (store, _dir) = proxy.stop_and_open_store().await;
    let records = store.all().unwrap();
    let (_, r) = records.iter().find(|(_, r)| r.approval.is_some()).unwrap();
    assert_eq!(r.outcome, "client-gone");
    assert_eq!(approval_of(r)["decision"], "abandoned");
}

#[tokio::test]
async fn the_cli_lists_and_approves_through_the_admin_api() {
    let (ops, ops_hash) = tollgate::identity::new_token();
    let (dev, dev_hash) = tollgate::identity::new_token();
    let upstream = Upstream::start().await;
    let proxy = ProxySetup::new(&upstream)
        .identity(&format!(
            "tokens:\n  - {{ name: ops, sha256: {ops_hash}, user: ops, groups: [security] }}\n  - {{ name: dev, sha256: {dev_hash}, user: dev, groups: [dev] }}\nadmin:\n  roles:\n    approver: [security]\n"
        ))
        .file("approvals.yaml", &rule("hold", "30s"))
        .start()
        .await;
    let request = spawn_chat(client_as(&proxy, "dev", &dev), format!("cli {GITHUB}"));
    let list = pending(&proxy, Some(&ops), 1).await;
    let id = list[0]["id"].as_str().unwrap().to_owned();
    // (tokio's process API: the admin API answers from this test's own runtime.)
    let cli = async |args: &[&str], token: Option<&str>| {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_tollgate"));
        cmd.arg("approvals")
            .args(args)
            .args(["--admin", &proxy.admin_url()])
            .env_remove("TOLLGATE_ADMIN_TOKEN");
        if let Some(t) = token {
            cmd.env("TOLLGATE_ADMIN_TOKEN", t);
        }
        cmd.output().await.unwrap()
    };
    let out = cli(&["list"], None).await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("401") && err.contains("TOLLGATE_ADMIN_TOKEN"),
        "{err}"
    );
    let out = cli(&["list"], Some(&ops)).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains(&id) && text.contains("github-pat"), "{text}");
    let out = cli(&["show", &id], Some(&ops)).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("masked request body") && !text.contains(GITHUB),
        "{text}"
    );
    let out = cli(&["approve", &id, "--reason", "ok"], Some(&ops)).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(request.await.unwrap(), 200);
}

#[tokio::test]
async fn curl_and_the_python_sdks_wait_through_a_hold() {
    let have = |program: &str, arg: &str| {
        std::process::Command::new(program)
            .arg(arg)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let required = std::env::var_os("TOLLGATE_REQUIRE_CLIENTS").is_some();
    let sdks = have("python3", "--version") && {
        std::process::Command::new("python3")
            .args(["-c", "import openai, anthropic"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let curl = have("curl", "--version");
    if !(curl && sdks) {
        assert!(!required, "curl and the Python SDKs are required");
        eprintln!("SKIPPED: curl or the openai/anthropic Python SDKs are not installed");
        return;
    }
    let upstream = Upstream::start().await;
    let proxy = ProxySetup::new(&upstream)
        .file(
            "approvals.yaml",
            "rules:\n  - name: everything\n    when: { providers: [openai, anthropic] }\n    wait: 60s\n",
        )
        .start()
        .await;
    let curl = tokio::process::Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "60",
            "--noproxy",
            "",
            "-x",
            &proxy.url(),
        ])
        .arg("--cacert")
        .arg(proxy.ca_path())
        .args([
            "-H",
            "content-type: application/json",
            "-d",
            &chat("from curl"),
            "https://api.openai.com/v1/chat/completions",
        ])
        .output();
    let script = r#"
import openai, anthropic
o = openai.OpenAI(api_key="sk-test", max_retries=0)
r = o.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
print("openai:", r.choices[0].message.content)
a = anthropic.Anthropic(api_key="sk-ant-test", max_retries=0)
events = a.messages.create(model="claude-x", max_tokens=10, messages=[{"role": "user", "content": "hi"}], stream=True)
print("anthropic:", "".join(e.delta.text for e in events if e.type == "content_block_delta" and e.delta.type == "text_delta"))
"#;
    let python = tokio::process::Command::new("python3")
        .args(["-c", script])
        .env("HTTPS_PROXY", proxy.url())
        .env("SSL_CERT_FILE", proxy.ca_path())
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .env_remove("ALL_PROXY")
        .output();
    let clients = tokio::spawn(async move { tokio::join!(curl, python) });
    // Approve each request as it arrives: curl's, then the two SDKs' one after the other.
    let mut approved = 0;
    while approved < 3 {
        let list = pending(&proxy, None, 1).await;
        for p in list {
            let res = decide(
                &proxy,
                None,
                p["id"].as_str().unwrap(),
                "approve",
                serde_json::json!({}),
            )
            .await;
            if res.status() == 200 {
                approved += 1;
            }
        }
    }
    let (curl, python) = clients.await.unwrap();
    let curl = curl.unwrap();
    let python = python.unwrap();
    let text = String::from_utf8_lossy(&curl.stdout);
    assert!(text.contains("Hello from upstream"), "curl: {text}");
    let text = String::from_utf8_lossy(&python.stdout);
    assert!(
        python.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&python.stderr)
    );
    assert!(text.contains("openai: Hello from upstream"), "{text}");
    assert!(text.contains("anthropic: Hello from Claude"), "{text}");
}

/// Deliveries a webhook receiver saw: signature header and body.
type Deliveries = std::sync::Arc<std::sync::Mutex<Vec<(Option<String>, bytes::Bytes)>>>;

/// A webhook receiver on loopback: refuses the first delivery (so the retry shows), then takes
/// them; keeps each one's signature header and body.
async fn webhook_receiver() -> (std::net::SocketAddr, Deliveries) {
    use http_body_util::BodyExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Deliveries = Default::default();
    let store = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let store = store.clone();
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let store = store.clone();
                        async move {
                            let sig = req
                                .headers()
                                .get("x-tollgate-signature")
                                .map(|v| v.to_str().unwrap().to_owned());
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            let mut seen = store.lock().unwrap();
                            seen.push((sig, body));
                            let status = if seen.len() == 1 { 500 } else { 200 };
                            Ok::<_, std::convert::Infallible>(
                                http::Response::builder()
                                    .status(status)
                                    .body(http_body_util::Full::new(bytes::Bytes::new()))
                                    .unwrap(),
                            )
                        }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    (addr, seen)
}

#[tokio::test]
async fn a_rules_webhook_is_signed_retried_and_never_releases_the_request() {
    let (hook, seen) = webhook_receiver().await;
    let upstream = Upstream::start().await;
    let key = "webhook-signing-key-for-tests";
    let proxy = ProxySetup::new(&upstream)
        .file("webhook.key", &format!("{key}\n"))
        .file(
            "approvals.yaml",
            &format!(
                "rules:\n  - name: tokens\n    when: {{ findings: [github-pat] }}\n    wait: 30s\n    webhook:\n      url: http://{hook}/hook\n      secret_file: webhook.key\n"
            ),
        )
        .start()
        .await;
    let request = spawn_chat(client(&proxy), format!("hook {GITHUB}"));
    let list = pending(&proxy, None, 1).await;
    let id = list[0]["id"].as_str().unwrap().to_owned();
    let deliveries = eventually(
        Duration::from_secs(15),
        Duration::from_millis(20),
        "the webhook was not delivered after a refusal",
        async || {
            let seen = seen.lock().unwrap().clone();
            (seen.len() >= 2).then_some(seen)
        },
    )
    .await;
    assert!(
        !request.is_finished(),
        "a webhook never releases the request"
    );
    for (signature, body) in &deliveries {
        let expected = format!(
            "sha256={}",
            tollgate::proxy::webhook::sign(key.as_bytes(), body)
        );
        assert_eq!(signature.as_deref(), Some(expected.as_str()));
        let v: serde_json::Value = serde_json::from_slice(body).unwrap();
        let text = v["text"].as_str().unwrap();
        assert!(text.contains(&id) && text.contains("github-pat"), "{text}");
        assert_eq!(v["approval"]["id"], id.as_str());
        assert!(
            v["url"]
                .as_str()
                .unwrap()
                .ends_with(&format!("/api/approvals/{id}")),
            "{v}"
        );
        assert!(!String::from_utf8_lossy(body).contains(GITHUB));
    }
    decide(&proxy, None, &id, "approve", serde_json::json!({})).await;
    assert_eq!(request.await.unwrap(), 200);
}

#[tokio::test]
async fn a_grant_ends_when_its_window_does() {
    let upstream = Upstream::start().await;
    let proxy = ProxySetup::new(&upstream)
        .file("approvals.yaml", &rule("hold", "30s"))
        .start()
        .await;
    let send = |n: usize| spawn_chat(client(&proxy), format!("turn {n}: {GITHUB}"));
    let first = send(1);
    let id = pending(&proxy, None, 1).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = decide(
        &proxy,
        None,
        &id,
        "approve",
        serde_json::json!({"for": "1s"}),
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(first.await.unwrap(), 200);
    assert_eq!(send(2).await.unwrap(), 200, "inside the window");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let third = send(3);
    pending(&proxy, None, 1).await;
    assert!(
        !third.is_finished(),
        "held again once the window has passed"
    );
    third.abort();
}
