//! `tollgate replay ID --send`: sends a recorded request again through a running Tollgate (so
//! under the policy in force now) and shows how the answer differs from the recorded one.

use crate::record::Record;
use bytes::Bytes;
use http::{Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::rt::TokioExecutor;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("the recorded request cannot be rebuilt: {0}")]
    Request(String),
    #[error("the CA certificate cannot be used: {0}")]
    Ca(String),
    #[error("the request through {proxy} failed: {message}")]
    Send { proxy: String, message: String },
}

/// The answer to a re-sent request.
pub struct Resent {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Sends `record`'s request (method, host, path, body as it was sent upstream) through the proxy
/// at `proxy`, trusting `ca_pem`, with `headers` added (credentials are never recorded).
pub async fn resend(
    record: &Record,
    proxy: &str,
    ca_pem: &str,
    headers: &[(String, String)],
) -> Result<Resent, ReplayError> {
    crate::tls::install_default_provider();
    let bad = |e: &dyn std::fmt::Display| ReplayError::Request(e.to_string());
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        let cert = cert.map_err(|e| ReplayError::Ca(e.to_string()))?;
        roots
            .add(cert)
            .map_err(|e| ReplayError::Ca(e.to_string()))?;
    }
    let tls = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| ReplayError::Ca(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let proxy_uri: Uri = proxy.parse().map_err(|e| bad(&e))?;
    let tunnel = Tunnel::new(proxy_uri, HttpConnector::new());
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .wrap_connector(tunnel);
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);

    let method: Method = record
        .method
        .as_deref()
        .unwrap_or("GET")
        .parse()
        .map_err(|e| bad(&e))?;
    let url = format!(
        "https://{}{}",
        record.host,
        record.path.as_deref().unwrap_or("/")
    );
    let mut req = Request::builder().method(method).uri(url);
    let body = &record.request_body;
    if let Some(encoding) = sniff_encoding(body) {
        req = req.header(http::header::CONTENT_ENCODING, encoding);
    } else if !body.is_empty() {
        req = req.header(http::header::CONTENT_TYPE, "application/json");
    }
    for (name, value) in headers {
        req = req.header(name.as_str(), value.as_str());
    }
    let req = req.body(Full::new(body.clone())).map_err(|e| bad(&e))?;
    let send_err = |message: String| ReplayError::Send {
        proxy: proxy.to_owned(),
        message,
    };
    let res = client
        .request(req)
        .await
        .map_err(|e| send_err(crate::net::describe_error(&e)))?;
    let status = res.status().as_u16();
    let body = res
        .into_body()
        .collect()
        .await
        .map_err(|e| send_err(e.to_string()))?
        .to_bytes()
        .to_vec();
    Ok(Resent { status, body })
}

/// zstd and gzip bodies were sent compressed; say so again.
fn sniff_encoding(body: &[u8]) -> Option<&'static str> {
    if body.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Some("zstd")
    } else if body.starts_with(&[0x1f, 0x8b]) {
        Some("gzip")
    } else {
        None
    }
}

/// A unified diff of the recorded answer and the new one (their text, for streams).
pub fn diff(recorded: &Record, new: &[u8]) -> Option<String> {
    let old = answer_text(&recorded.response_body);
    let new = answer_text(new);
    if old == new {
        return None;
    }
    Some(
        similar::TextDiff::from_lines(&old, &new)
            .unified_diff()
            .header("recorded", "now")
            .to_string(),
    )
}

fn answer_text(body: &[u8]) -> String {
    let raw = String::from_utf8_lossy(body);
    if raw.starts_with("data:") || raw.starts_with("event:") {
        crate::record::sse_text(body).unwrap_or_default()
    } else {
        match serde_json::from_slice::<serde_json::Value>(body) {
            Ok(v) => serde_json::to_string_pretty(&v).unwrap_or_default() + "\n",
            Err(_) => raw.into_owned(),
        }
    }
}
