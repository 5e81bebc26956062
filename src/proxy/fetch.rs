//! HTTPS fetches the proxy makes on its own behalf (an identity provider's JWKS), with the same
//! trusted roots and `--connect-to` rules as upstream connections, a timeout and a size cap.

use super::dial::Dialer;
use crate::identity::oidc::Fetch;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// Largest document fetched.
const MAX_BYTES: usize = 1 << 20;
const TIMEOUT: Duration = Duration::from_secs(10);

pub struct HttpsFetcher {
    client: Client<hyper_rustls::HttpsConnector<Dialer>, Full<Bytes>>,
}

impl HttpsFetcher {
    pub fn new(dialer: Dialer, tls: rustls::ClientConfig) -> Self {
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only()
            .enable_http1()
            .enable_http2()
            .wrap_connector(dialer);
        Self {
            client: Client::builder(TokioExecutor::new()).build(connector),
        }
    }

    async fn get(&self, url: &http::Uri) -> Result<Vec<u8>, String> {
        let response = self
            .client
            .get(url.clone())
            .await
            .map_err(|e| format!("{}: {}", url, crate::net::describe_error(&e)))?;
        Self::body(url, response).await
    }

    async fn post(&self, url: &http::Uri, form: String) -> Result<Vec<u8>, String> {
        let request = http::Request::post(url.clone())
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(http::header::ACCEPT, "application/json")
            .body(Full::new(Bytes::from(form)))
            .map_err(|e| format!("{url}: {e}"))?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| format!("{}: {}", url, crate::net::describe_error(&e)))?;
        Self::body(url, response).await
    }

    async fn body(
        url: &http::Uri,
        response: http::Response<hyper::body::Incoming>,
    ) -> Result<Vec<u8>, String> {
        if !response.status().is_success() {
            return Err(format!("{url}: HTTP {}", response.status()));
        }
        let body = Limited::new(response.into_body(), MAX_BYTES)
            .collect()
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        Ok(body.to_bytes().to_vec())
    }
}

impl Fetch for HttpsFetcher {
    fn fetch<'a>(
        &'a self,
        url: &'a http::Uri,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<u8>, String>> + Send + 'a>> {
        Box::pin(async move {
            tokio::time::timeout(TIMEOUT, self.get(url))
                .await
                .unwrap_or_else(|_| Err(format!("{url}: no answer within {TIMEOUT:?}")))
        })
    }

    fn post_form<'a>(
        &'a self,
        url: &'a http::Uri,
        form: String,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<u8>, String>> + Send + 'a>> {
        Box::pin(async move {
            tokio::time::timeout(TIMEOUT, self.post(url, form))
                .await
                .unwrap_or_else(|_| Err(format!("{url}: no answer within {TIMEOUT:?}")))
        })
    }
}
