//! The web console in a real headless Chromium (Debian's `chromium` and `chromium-driver`,
//! driven over WebDriver): sign in, see a held request appear, approve it and see the client's
//! request complete, deny one with a reason and see the client get it, filter the exchanges, open
//! a session and see the masked prompt with its placeholders highlighted, verify the audit chain,
//! explain a request. A screenshot of each page is saved under `target/console-screenshots/`.

mod common;

use common::*;
use fantoccini::{Client, ClientBuilder, Locator};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::time::Duration;

const GITHUB: &str = "ghp_aB3cD4eF5gH6iJ7kL8mN9oP0qR1sT2uVwXyZ";

/// chromedriver and the browser it drives; both end with it.
struct Browser {
    driver: std::process::Child,
    client: Client,
}

impl Drop for Browser {
    fn drop(&mut self) {
        // chromedriver leads a process group of its own, with every Chromium process it
        // started: killing it alone would leave those running after the tests.
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.driver.id())])
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn skip(what: &str) -> bool {
    if std::env::var_os("TOLLGATE_REQUIRE_CLIENTS").is_some() {
        panic!("{what} is required (TOLLGATE_REQUIRE_CLIENTS) but not installed");
    }
    eprintln!("SKIPPED: {what} is not installed");
    true
}

async fn browser(extra: &[&str]) -> Option<Browser> {
    if !have("chromedriver") && skip("chromedriver (Debian: chromium-driver)") {
        return None;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let driver = std::process::Command::new("chromedriver")
        .process_group(0)
        .arg(format!("--port={port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let mut caps = serde_json::Map::new();
    let mut args = vec![
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
        "--no-proxy-server",
    ];
    args.extend_from_slice(extra);
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({ "args": args }),
    );
    let url = format!("http://127.0.0.1:{port}");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let client = loop {
        // chromedriver listens on loopback in plain HTTP: no TLS for this connection.
        match ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps.clone())
            .connect(&url)
            .await
        {
            Ok(c) => break c,
            Err(e) => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "chromedriver did not start a browser: {e}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    Some(Browser { driver, client })
}

fn screenshots() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn screenshot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    std::fs::write(screenshots().join(format!("{name}.png")), png).unwrap();
}

/// Waits for an element the page may only show after a refresh or a navigation.
async fn wait_for(c: &Client, css: &str) -> fantoccini::elements::Element {
    c.wait()
        .at_most(Duration::from_secs(15))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css} never appeared: {e}"))
}

/// The text of `css` once it satisfies `want`. Polled: after a click that navigates, the first
/// match may still be the page before's (and go stale as it is read).
async fn text_when(c: &Client, css: &str, want: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let mut last = String::new();
    loop {
        if let Ok(e) = c.find(Locator::Css(css)).await
            && let Ok(text) = e.text().await
        {
            if want(&text) {
                return text;
            }
            last = text;
        }
        if std::time::Instant::now() >= deadline {
            let page = c.source().await.unwrap_or_default();
            panic!("{css} never showed what was expected; last: {last:?}; page: {page}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn text_is(c: &Client, css: &str, want: &str) {
    text_when(c, css, |t| t == want).await;
}

fn chat(content: &str) -> String {
    serde_json::json!({"model": "gpt-4o", "messages": [
        {"role": "system", "content": "You are a coding agent."},
        {"role": "user", "content": content},
    ]})
    .to_string()
}

/// A chat completion through the proxy, from a task (it is held): its status and body.
fn spawn_chat(
    client: reqwest::Client,
    content: String,
) -> tokio::task::JoinHandle<(u16, serde_json::Value)> {
    tokio::spawn(async move {
        let res = client
            .post("https://api.openai.com/v1/chat/completions")
            .body(chat(&content))
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or_default())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_real_browser_an_approver_decides_held_requests_and_an_auditor_reads_what_left() {
    let Some(browser) = browser(&[]).await else {
        return;
    };
    let c = &browser.client;
    let upstream = Upstream::start().await;
    let (lead, lead_hash) = tollgate::identity::new_token();
    let (dev, dev_hash) = tollgate::identity::new_token();
    let proxy = ProxySetup::new(&upstream)
        .identity(&format!(
            "tokens:\n  - {{ name: lead, sha256: {lead_hash}, user: lead, groups: [platform] }}\n  - {{ name: dev, sha256: {dev_hash}, user: dev, groups: [eng] }}\nadmin:\n  roles:\n    admin: [platform]\n"
        ))
        .file(
            "approvals.yaml",
            "rules:\n  - name: tokens-leave-with-approval\n    when: { findings: [github-pat] }\n    mode: hold\n    wait: 60s\n    max_grant: 8h\n",
        )
        .start()
        .await;
    let console = format!("{}/console/", proxy.admin_url());

    // Sign in with the admin token.
    c.goto(&console).await.unwrap();
    wait_for(c, "#credential").await;
    screenshot(c, "login").await;
    c.find(Locator::Css("#credential"))
        .await
        .unwrap()
        .send_keys(&lead)
        .await
        .unwrap();
    c.find(Locator::Css("button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    text_when(c, "h1", |t| t.starts_with("Waiting for a decision")).await;
    text_is(c, "#pending-count", "0").await;

    // A held request appears without reloading the page.
    let dev_client = client_as(&proxy, "dev", &dev);
    let first = spawn_chat(dev_client.clone(), format!("deploy with {GITHUB} please"));
    let row = wait_for(c, "#approvals tbody tr[data-id]").await;
    let row_text = row.text().await.unwrap();
    assert!(row_text.contains("dev"), "{row_text}");
    assert!(
        row_text.contains("tokens-leave-with-approval"),
        "{row_text}"
    );
    text_is(c, "#pending-count", "1").await;
    screenshot(c, "approvals").await;

    // Its page shows the request as it would leave: the token is a highlighted placeholder.
    row.find(Locator::Css("a"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let mark = wait_for(c, "li.turn.user mark.ph").await;
    let placeholder = mark.text().await.unwrap();
    assert!(
        placeholder.starts_with("TOLLGATE_GITHUB_PAT_"),
        "{placeholder}"
    );
    assert_eq!(
        mark.attr("title").await.unwrap().as_deref(),
        Some("masked: github-pat")
    );
    let page = c.source().await.unwrap();
    assert!(!page.contains(GITHUB), "the secret is never rendered");
    screenshot(c, "approval").await;

    // `a` approves (the keyboard shortcut); the client's request completes.
    c.find(Locator::Css("body"))
        .await
        .unwrap()
        .send_keys("a")
        .await
        .unwrap();
    text_is(c, "h1", "Approved").await;
    let (status, _) = first.await.unwrap();
    assert_eq!(status, 200, "the approved request went through");
    assert_eq!(upstream.received().len(), 1);

    // Deny the next one with a reason: the client gets it.
    c.goto(&format!("{console}approvals")).await.unwrap();
    let second = spawn_chat(dev_client.clone(), format!("again {GITHUB}"));
    wait_for(c, "#approvals tbody tr[data-id] a")
        .await
        .click()
        .await
        .unwrap();
    let reason = wait_for(c, "#deny-reason").await;
    reason
        .send_keys("production tokens stay inside")
        .await
        .unwrap();
    c.find(Locator::Css("#deny-button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    text_is(c, "h1", "Denied").await;
    let (status, body) = second.await.unwrap();
    assert_eq!(status, 403);
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("production tokens stay inside"), "{body}");

    // Exchanges, filtered by user: the two decisions and nothing else.
    let clean = dev_client
        .post("https://api.openai.com/v1/chat/completions")
        .body(chat("nothing secret"))
        .send()
        .await
        .unwrap();
    assert_eq!(clean.status(), 200);
    c.goto(&format!("{console}exchanges?user=dev&approval=denied"))
        .await
        .unwrap();
    wait_for(c, "#exchanges").await;
    let rows = c
        .find_all(Locator::Css("#exchanges tbody tr"))
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "one denied exchange");
    assert!(rows[0].text().await.unwrap().contains("denied"));
    c.goto(&format!("{console}exchanges?user=dev"))
        .await
        .unwrap();
    wait_for(c, "#exchanges").await;
    screenshot(c, "exchanges").await;
    let rows = eventually(
        Duration::from_secs(10),
        Duration::from_millis(200),
        "the three exchanges never all showed",
        async || {
            c.refresh().await.ok()?;
            let rows = c.find_all(Locator::Css("#exchanges tbody tr")).await.ok()?;
            (rows.len() == 3).then_some(rows)
        },
    )
    .await;
    // The oldest (the approved one), then its session.
    rows[2]
        .find(Locator::Css("a"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    text_when(c, "h1", |t| t.starts_with("Exchange")).await;
    let mark = wait_for(c, "li.turn.user mark.ph").await;
    assert_eq!(mark.text().await.unwrap(), placeholder);
    assert!(c.source().await.unwrap().contains("tollgate replay"));
    screenshot(c, "exchange").await;
    c.find(Locator::LinkText("Its session"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    text_when(c, "h1", |t| t.starts_with("Session")).await;
    // The first turn's prompt, opened: the masked token highlighted there too.
    c.find(Locator::Css("details.prompt summary"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let mark = wait_for(c, "details.prompt li.turn.user mark.ph").await;
    assert_eq!(mark.text().await.unwrap(), placeholder);
    screenshot(c, "session").await;

    // The audit chain, verified from the page.
    c.goto(&format!("{console}audit")).await.unwrap();
    c.find(Locator::Css("form[action='/console/audit/verify'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let verdict = text_when(c, "p.ok", |t| !t.is_empty()).await;
    assert!(verdict.starts_with("Intact"), "{verdict}");
    screenshot(c, "audit").await;

    // The policy, and `policy explain` for a request with a token.
    c.goto(&format!("{console}policy")).await.unwrap();
    let form = wait_for(c, "form.explain").await;
    form.find(Locator::Css("input[name=host]"))
        .await
        .unwrap()
        .send_keys("api.openai.com")
        .await
        .unwrap();
    form.find(Locator::Css("input[name=path]"))
        .await
        .unwrap()
        .send_keys("/v1/chat/completions")
        .await
        .unwrap();
    form.find(Locator::Css("textarea[name=body]"))
        .await
        .unwrap()
        .send_keys(&chat(&format!("use {GITHUB}")))
        .await
        .unwrap();
    form.find(Locator::Css("button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let explanation = text_when(c, "#explanation", |t| !t.is_empty()).await;
    assert!(explanation.contains("needs-approval"), "{explanation}");
    assert!(
        !c.source().await.unwrap().contains(GITHUB),
        "the explanation names findings, never values, and the body is not echoed"
    );
    screenshot(c, "policy").await;

    // A phone's width: the approvals list still reads.
    c.set_window_size(375, 800).await.unwrap();
    let third = spawn_chat(dev_client.clone(), format!("phone {GITHUB}"));
    c.goto(&format!("{console}approvals")).await.unwrap();
    wait_for(c, "#approvals tbody tr[data-id]").await;
    let width: serde_json::Value = c
        .execute("return document.documentElement.scrollWidth", vec![])
        .await
        .unwrap();
    assert!(
        width.as_u64().unwrap_or(0) <= 375,
        "the page scrolls sideways at 375 px: {width}"
    );
    screenshot(c, "approvals-375px").await;
    wait_for(c, "#approvals tbody tr[data-id] a")
        .await
        .click()
        .await
        .unwrap();
    wait_for(c, "#approve-button").await;
    screenshot(c, "approval-375px").await;
    // Approve for a window: the grant is listed, and revoked from the list.
    c.find(Locator::Css("#window option[value='1h']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.find(Locator::Css("#approve-button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    text_is(c, "h1", "Approved").await;
    assert_eq!(third.await.unwrap().0, 200);
    c.set_window_size(1280, 900).await.unwrap();
    c.goto(&format!("{console}approvals")).await.unwrap();
    let grant = text_when(c, "form[action$='/revoke']", |t| !t.is_empty()).await;
    assert!(grant.contains("Revoke"), "{grant}");
    c.find(Locator::Css("form[action$='/revoke'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    text_is(c, "h2 + p.note", "No grant is open.").await;

    // An answer still streaming is marked as such in the list.
    let stream = dev_client
        .post("https://api.openai.com/test/gated-sse")
        .body("{}")
        .send()
        .await
        .unwrap();
    let mut body = stream.bytes_stream();
    let _first = futures_util::StreamExt::next(&mut body).await;
    let live = eventually(
        Duration::from_secs(10),
        Duration::from_millis(100),
        "the open stream was never listed as streaming",
        async || {
            c.goto(&format!("{console}exchanges")).await.ok()?;
            let pill = c.find(Locator::Css("#exchanges .pill.live")).await.ok()?;
            pill.text().await.ok()
        },
    )
    .await;
    assert_eq!(live, "streaming");
    upstream.release();
    while futures_util::StreamExt::next(&mut body).await.is_some() {}
    drop(browser);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_follows_a_dark_system_theme() {
    // Blink's preferred colour scheme 0 is dark: what `prefers-color-scheme: dark` sees.
    let Some(browser) = browser(&["--blink-settings=preferredColorScheme=0"]).await else {
        return;
    };
    let c = &browser.client;
    let upstream = Upstream::start().await;
    let proxy = ProxySetup::new(&upstream).start().await;
    c.goto(&format!("{}/console/login", proxy.admin_url()))
        .await
        .unwrap();
    wait_for(c, "button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    text_when(c, "h1", |t| t.starts_with("Waiting for a decision")).await;
    let background: serde_json::Value = c
        .execute(
            "return getComputedStyle(document.body).backgroundColor",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(background, "rgb(20, 21, 23)", "the dark palette applies");
    screenshot(c, "approvals-dark").await;
    drop(browser);
}
