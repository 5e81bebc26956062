//! Proxy authentication with tokens: 407 without good credentials, the identity carried into
//! records, and no open proxy on a non-loopback address by accident.

mod common;

use common::*;
use http::StatusCode;

async fn proxy_with_token(upstream: &Upstream) -> (TestProxy, String) {
    let (token, hash) = tollgate::identity::new_token();
    let proxy = ProxySetup::new(upstream)
        .identity(&format!(
            "tokens:\n  - {{ name: laptop-7, sha256: {hash}, user: alice, groups: [dev] }}\n"
        ))
        .start()
        .await;
    (proxy, token)
}

#[tokio::test]
async fn connect_needs_a_good_token() {
    let upstream = Upstream::start().await;
    let (proxy, token) = proxy_with_token(&upstream).await;

    let (status, headers, body) = connect(proxy.addr(), "api.openai.com:443", &[])
        .await
        .refused();
    assert_eq!(status, StatusCode::PROXY_AUTHENTICATION_REQUIRED);
    assert!(
        headers["proxy-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic realm=")
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("credentials")
    );

    let wrong = basic("alice", "tg_not-the-token");
    let (status, _, _) = connect(
        proxy.addr(),
        "api.openai.com:443",
        &[("proxy-authorization", &wrong)],
    )
    .await
    .refused();
    assert_eq!(status, StatusCode::PROXY_AUTHENTICATION_REQUIRED);

    let good = basic("anything", &token);
    assert!(matches!(
        connect(
            proxy.addr(),
            "api.openai.com:443",
            &[("proxy-authorization", &good)]
        )
        .await,
        Tunnel::Open(_)
    ));
    assert!(upstream.received().is_empty());
}

#[tokio::test]
async fn the_identity_reaches_the_records_and_credentials_never_the_upstream() {
    let upstream = Upstream::start().await;
    let (proxy, token) = proxy_with_token(&upstream).await;
    let client = client_as(&proxy, "laptop-7", &token);
    let res = client
        .post("https://api.openai.com/v1/chat/completions")
        .body(r#"{"messages":[]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.text().await.unwrap();
    // Plain HTTP carries credentials on every request; they are checked, then stripped.
    let plain = client
        .get("http://tunneled.example/plain")
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 200);
    let anonymous = reqwest::Client::builder()
        .proxy(reqwest::Proxy::http(proxy.url()).unwrap())
        .build()
        .unwrap()
        .get("http://tunneled.example/plain")
        .send()
        .await
        .unwrap();
    assert_eq!(
        anonymous.status(),
        StatusCode::PROXY_AUTHENTICATION_REQUIRED
    );

    for r in upstream.received() {
        assert!(!r.headers.contains_key("proxy-authorization"));
    }
    let (store, _dir) = proxy.stop_and_open_store().await;
    let first = store.get(1).unwrap().unwrap();
    assert_eq!(first.scope, "alice");
    assert_eq!(store.get(2).unwrap().unwrap().scope, "alice");
}

#[test]
fn no_open_proxy_on_a_public_address_by_accident() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["run", "--listen", "0.0.0.0:0"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not a loopback address") && err.contains("--open"),
        "{err}"
    );
}

#[test]
fn token_create_prints_the_token_once_and_the_line_to_add() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["token", "create", "ci-runner"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let token = text.lines().nth(1).unwrap().trim();
    assert!(token.starts_with("tg_") && token.len() > 40, "{text}");
    let line = text.lines().find(|l| l.contains("sha256:")).unwrap();
    assert!(line.contains("name: ci-runner"), "{line}");
    assert!(!line.contains(token), "the token itself is never stored");
    // The printed line, pasted into identity.yaml, accepts the printed token.
    let yaml = format!("tokens:\n{line}\n");
    let tokens = tollgate::identity::Tokens::parse(&tollgate::policy::Source::inline(
        "identity.yaml",
        &yaml,
    ))
    .unwrap();
    assert!(tokens.lookup(token).is_some());
}
