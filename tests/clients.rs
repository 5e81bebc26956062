//! Real clients through the real proxy: curl, Python's strict TLS, Node, and the official
//! openai/anthropic Python SDKs. A client that is not installed is reported and skipped, and CI
//! installs them all so none is skipped there.

mod common;

use common::*;
use std::process::Output;
use tokio::process::Command;

const CLIENTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients");

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn skip(client: &str) -> bool {
    if std::env::var_os("TOLLGATE_REQUIRE_CLIENTS").is_some() {
        panic!("{client} is required (TOLLGATE_REQUIRE_CLIENTS) but not installed");
    }
    eprintln!("SKIPPED: {client} is not installed");
    true
}

/// Runs a client script that CONNECTs through the proxy itself; returns what it printed.
async fn run_script(program: &str, script: &str, proxy: &TestProxy) -> String {
    let out = Command::new(program)
        .arg(format!("{CLIENTS}/{script}"))
        .arg("127.0.0.1")
        .arg(proxy.addr().port().to_string())
        .arg(proxy.ca_path())
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        stdout(&out),
        String::from_utf8_lossy(&out.stderr)
    );
    stdout(&out)
}

async fn curl(proxy: &TestProxy, args: &[&str]) -> Output {
    Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "20",
            "--noproxy",
            "",
            "-x",
            &proxy.url(),
        ])
        .args(args)
        .output()
        .await
        .unwrap()
}

#[tokio::test]
async fn curl_through_intercepted_and_tunneled_hosts() {
    if !have("curl") && skip("curl") {
        return;
    }
    let upstream = Upstream::start().await;
    let proxy = ProxySetup::new(&upstream).start().await;
    let ca = proxy.ca_path();
    let ca = ca.to_str().unwrap();
    let body = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#;

    for version in ["--http1.1", "--http2"] {
        let out = curl(
            &proxy,
            &[
                version,
                "--cacert",
                ca,
                "-w",
                "\n%{http_version} %{http_code}",
                "-H",
                "content-type: application/json",
                "-d",
                body,
                "https://api.openai.com/v1/chat/completions",
            ],
        )
        .await;
        let text = stdout(&out);
        assert!(
            out.status.success(),
            "{version}: {text} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let expected = if version == "--http2" {
            "2 200"
        } else {
            "1.1 200"
        };
        assert!(text.ends_with(expected), "{version}: {text}");
        assert!(text.contains("Hello from upstream"), "{text}");
    }

    let upstream_ca = format!("{FIXTURES}/upstream-ca.crt");
    let out = curl(
        &proxy,
        &[
            "--cacert",
            &upstream_ca,
            "https://tunneled.example/via-tunnel",
        ],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout(&out).contains("/via-tunnel"));
    assert_eq!(upstream.received().len(), 3);
}

#[tokio::test]
async fn python_strict_x509_accepts_the_leaf() {
    if !have("python3") && skip("python3") {
        return;
    }
    let upstream = Upstream::start().await;
    let proxy = ProxySetup::new(&upstream).start().await;
    let out = run_script("python3", "python_strict.py", &proxy).await;
    assert!(out.starts_with("200 "), "{out}");
}

#[tokio::test]
async fn node_tls_accepts_the_leaf() {
    if !have("node") && skip("node") {
        return;
    }
    let upstream = Upstream::start().await;
    let proxy = ProxySetup::new(&upstream).start().await;
    let out = run_script("node", "node_tls.js", &proxy).await;
    assert_eq!(out.trim(), "HTTP/1.1 200 OK");
}

#[tokio::test]
async fn official_python_sdks_work_through_the_proxy() {
    let sdks = Command::new("python3")
        .args(["-c", "import openai, anthropic"])
        .output()
        .await
        .is_ok_and(|o| o.status.success());
    if !sdks && skip("the openai and anthropic Python SDKs") {
        return;
    }
    let upstream = Upstream::start().await;
    let proxy = ProxySetup::new(&upstream).start().await;
    let out = Command::new("python3")
        .arg(format!("{CLIENTS}/sdks.py"))
        .env("HTTPS_PROXY", proxy.url())
        .env("SSL_CERT_FILE", proxy.ca_path())
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .env_remove("ALL_PROXY")
        .output()
        .await
        .unwrap();
    let text = stdout(&out);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("openai: Hello from upstream"), "{text}");
    assert!(
        text.contains("openai-stream: Hello from upstream"),
        "{text}"
    );
    assert!(
        text.contains("anthropic-stream: Hello from Claude"),
        "{text}"
    );
    assert!(
        text.contains("refused: 421") && text.contains("Tollgate refused this request"),
        "the SDK shows Tollgate's reason: {text}"
    );
    let received = upstream.received();
    assert_eq!(received.len(), 3, "the refused request never left");
    assert_eq!(received[0].headers["authorization"], "Bearer sk-test-key");
}
