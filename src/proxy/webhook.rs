//! Announcing approvals to a rule's webhook: a JSON POST with a Slack-compatible `text` and the
//! approval's details, signed `X-Tollgate-Signature: sha256=<hex HMAC-SHA256 of the body>` with
//! the key in the rule's `secret_env` or `secret_file`, retried with backoff. A webhook that fails never releases
//! a request: it only tells people there is something to decide.

use super::dial::Dialer;
use crate::approval::Pending;
use crate::approval::rules::Webhook;
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::time::Duration;
use tracing::{debug, warn};

/// Attempts at most, and the wait before the second (doubled each time).
const ATTEMPTS: u32 = 4;
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const TIMEOUT: Duration = Duration::from_secs(10);
/// The signature header.
pub const SIGNATURE_HEADER: &str = "x-tollgate-signature";

#[derive(Clone)]
pub struct Webhooks {
    client: Client<hyper_rustls::HttpsConnector<Dialer>, Full<Bytes>>,
}

impl Webhooks {
    pub fn new(dialer: Dialer, tls: rustls::ClientConfig) -> Self {
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(dialer);
        Self {
            client: Client::builder(TokioExecutor::new()).build(connector),
        }
    }

    /// Posts `pending` to `webhook` in the background. `link` is where an approver opens it.
    pub fn announce(&self, webhook: &Webhook, pending: &Pending, link: Option<String>) {
        let findings: Vec<&str> = pending.findings.iter().map(|f| f.rule.as_str()).collect();
        let text = format!(
            "Tollgate: {user}'s request to {provider}{model}{region} waits for approval under rule {rule} ({mode}){findings}. Decide with `tollgate approvals approve {id}` or `deny {id} --reason …`{link}",
            user = pending.user,
            provider = pending.provider,
            model = pending
                .model
                .as_deref()
                .map(|m| format!(" ({m})"))
                .unwrap_or_default(),
            region = pending
                .region
                .as_deref()
                .map(|r| format!(" in {r}"))
                .unwrap_or_default(),
            rule = pending.rule,
            mode = pending.mode.as_str(),
            findings = if findings.is_empty() {
                String::new()
            } else {
                format!("; found: {}", findings.join(", "))
            },
            id = pending.id,
            link = link
                .as_deref()
                .map(|l| format!(" — {l}"))
                .unwrap_or_default(),
        );
        let body = serde_json::json!({
            "text": text,
            "approval": pending,
            "url": link,
        })
        .to_string();
        let signature = match &webhook.key {
            Some(key) => match key.read() {
                Ok(key) => Some(sign(&key, body.as_bytes())),
                Err(why) => {
                    // Unsigned, a receiver that checks signatures would reject it anyway.
                    warn!(
                        approval = %pending.id,
                        "webhook of rule {} not sent: its signing key cannot be read ({why})",
                        pending.rule
                    );
                    return;
                }
            },
            None => None,
        };
        let client = self.client.clone();
        let url = webhook.url.clone();
        let id = pending.id.clone();
        tokio::spawn(async move {
            let host = url.host().unwrap_or("").to_owned();
            let mut backoff = FIRST_BACKOFF;
            for attempt in 1..=ATTEMPTS {
                let mut req =
                    http::Request::post(url.clone()).header("content-type", "application/json");
                if let Some(sig) = &signature {
                    req = req.header(SIGNATURE_HEADER, format!("sha256={sig}"));
                }
                let Ok(req) = req.body(Full::new(Bytes::from(body.clone()))) else {
                    return;
                };
                // The URL's path may itself be a secret (Slack's are): only its host is logged.
                match tokio::time::timeout(TIMEOUT, client.request(req)).await {
                    Ok(Ok(res)) if res.status().is_success() => {
                        debug!(approval = %id, %host, "webhook delivered");
                        return;
                    }
                    Ok(Ok(res)) => {
                        warn!(approval = %id, %host, attempt, status = res.status().as_u16(), "webhook refused")
                    }
                    Ok(Err(e)) => {
                        warn!(approval = %id, %host, attempt, "webhook failed: {}", crate::net::describe_error(&e))
                    }
                    Err(_) => warn!(approval = %id, %host, attempt, "webhook timed out"),
                }
                if attempt < ATTEMPTS {
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                }
            }
        });
    }
}

/// Hex HMAC-SHA256 of `body` under `key`.
pub fn sign(key: &[u8], body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    ring::hmac::sign(&key, body)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
