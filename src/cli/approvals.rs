//! `tollgate approvals list|show|approve|deny|grants|revoke`: a client of a running Tollgate's
//! admin API. The token comes from `TOLLGATE_ADMIN_TOKEN` only (never a flag: command lines are
//! visible to every user of the machine).

use bytes::Bytes;
use clap::Subcommand;
use http_body_util::{BodyExt, Full};
use std::time::Duration;

/// The environment variable holding the admin API token (or JWT).
pub const TOKEN_ENV: &str = "TOLLGATE_ADMIN_TOKEN";
const DEFAULT_ADMIN: &str = "http://127.0.0.1:9090";

#[derive(Debug, Subcommand)]
pub enum ApprovalsCommand {
    /// Requests waiting for a decision, newest first.
    List {
        #[arg(long)]
        json: bool,
    },
    /// One request: who, where, the rule that asked, its findings and the masked body.
    Show { id: String },
    /// Let it through (and, with --for, the same user's next requests under the rule).
    Approve {
        id: String,
        /// Approve for a window, e.g. 30m (at most the rule's max_grant).
        #[arg(long = "for", value_name = "DURATION", value_parser = humantime_serde::re::humantime::parse_duration)]
        window: Option<Duration>,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Refuse it; the client is told the reason.
    Deny {
        id: String,
        #[arg(long)]
        reason: String,
    },
    /// Open grants.
    Grants,
    /// End a grant.
    Revoke { id: String },
}

/// A call to the admin API that did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum AdminCallError {
    #[error("{url} is not a URL of the admin API (http://HOST:PORT)")]
    BadUrl { url: String },
    #[error("cannot reach the admin API at {url}: {message}")]
    Unreachable { url: String, message: String },
    #[error("the admin API answered {status}: {message}")]
    Refused { status: u16, message: String },
}

async fn call(
    base: &str,
    method: http::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> Result<serde_json::Value, AdminCallError> {
    let url = format!("{}{path}", base.trim_end_matches('/'));
    let uri: http::Uri = url
        .parse()
        .map_err(|_| AdminCallError::BadUrl { url: url.clone() })?;
    if uri.scheme_str() != Some("http") {
        return Err(AdminCallError::BadUrl { url });
    }
    let mut req = http::Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json");
    if let Ok(token) = std::env::var(TOKEN_ENV) {
        req = req.header("authorization", format!("Bearer {}", token.trim()));
    }
    let payload = body.map(|b| b.to_string()).unwrap_or_default();
    let req = req
        .body(Full::new(Bytes::from(payload)))
        .map_err(|_| AdminCallError::BadUrl { url: url.clone() })?;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let unreachable = |message: String| AdminCallError::Unreachable {
        url: base.to_owned(),
        message,
    };
    let res = tokio::time::timeout(Duration::from_secs(30), client.request(req))
        .await
        .map_err(|_| unreachable("no answer within 30 s".into()))?
        .map_err(|e| unreachable(crate::net::describe_error(&e)))?;
    let status = res.status();
    let bytes = res
        .into_body()
        .collect()
        .await
        .map_err(|e| unreachable(e.to_string()))?
        .to_bytes();
    let value: serde_json::Value = if bytes.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(
            |_| serde_json::json!({"error": {"message": String::from_utf8_lossy(&bytes)}}),
        )
    };
    if !status.is_success() {
        let mut message = value["error"]["message"]
            .as_str()
            .unwrap_or("no message")
            .to_owned();
        if status == 401 && std::env::var(TOKEN_ENV).is_err() {
            message.push_str(&format!(" (set {TOKEN_ENV})"));
        }
        return Err(AdminCallError::Refused {
            status: status.as_u16(),
            message,
        });
    }
    Ok(value)
}

/// Runs one `approvals` subcommand against `admin` (default `http://127.0.0.1:9090`).
pub async fn run(
    command: ApprovalsCommand,
    admin: Option<String>,
) -> Result<(), super::CommandError> {
    let base = admin.unwrap_or_else(|| DEFAULT_ADMIN.to_owned());
    let get = http::Method::GET;
    let post = http::Method::POST;
    match command {
        ApprovalsCommand::List { json } => {
            let v = call(&base, get, "/api/approvals", None).await?;
            let pending = v["pending"].as_array().cloned().unwrap_or_default();
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&pending).unwrap_or_default()
                );
            } else if pending.is_empty() {
                println!("nothing waits for approval");
            } else {
                println!(
                    "{:<22} {:<16} {:<6} {:<24} {:<10} {:>7} {:>6}  findings",
                    "ID", "RULE", "MODE", "USER", "PROVIDER", "WAITED", "LEFT"
                );
                for p in pending {
                    let findings: Vec<&str> = p["findings"]
                        .as_array()
                        .map(|f| f.iter().filter_map(|x| x["rule"].as_str()).collect())
                        .unwrap_or_default();
                    println!(
                        "{:<22} {:<16} {:<6} {:<24} {:<10} {:>6}s {:>5}s  {}",
                        p["id"].as_str().unwrap_or(""),
                        p["rule"].as_str().unwrap_or(""),
                        p["mode"].as_str().unwrap_or(""),
                        p["user"].as_str().unwrap_or(""),
                        p["provider"].as_str().unwrap_or(""),
                        p["waited_s"],
                        p["left_s"],
                        findings.join(", ")
                    );
                }
            }
        }
        ApprovalsCommand::Show { id } => {
            let v = call(&base, get, &format!("/api/approvals/{id}"), None).await?;
            let body = v["body"].as_str().unwrap_or("").to_owned();
            let mut head = v.clone();
            if let Some(o) = head.as_object_mut() {
                o.remove("body");
                o.remove("preview");
            }
            println!(
                "{}",
                serde_json::to_string_pretty(&head).unwrap_or_default()
            );
            println!("--- masked request body, as it would leave ---");
            println!("{body}");
        }
        ApprovalsCommand::Approve { id, window, reason } => {
            let mut body = serde_json::json!({ "reason": reason });
            if let Some(window) = window {
                body["for"] = serde_json::json!(
                    humantime_serde::re::humantime::format_duration(window).to_string()
                );
            }
            let v = call(
                &base,
                post,
                &format!("/api/approvals/{id}/approve"),
                Some(body),
            )
            .await?;
            match v["grant"].as_str() {
                Some(grant) => println!("approved {id}; grant {grant} is open"),
                None => println!("approved {id}"),
            }
        }
        ApprovalsCommand::Deny { id, reason } => {
            call(
                &base,
                post,
                &format!("/api/approvals/{id}/deny"),
                Some(serde_json::json!({ "reason": reason })),
            )
            .await?;
            println!("denied {id}");
        }
        ApprovalsCommand::Grants => {
            let v = call(&base, get, "/api/grants", None).await?;
            println!(
                "{}",
                serde_json::to_string_pretty(&v["grants"]).unwrap_or_default()
            );
        }
        ApprovalsCommand::Revoke { id } => {
            call(
                &base,
                http::Method::DELETE,
                &format!("/api/grants/{id}"),
                None,
            )
            .await?;
            println!("revoked {id}");
        }
    }
    Ok(())
}
