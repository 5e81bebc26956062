//! HTTPS fetches the proxy makes on its own behalf (an identity provider's JWKS), with the same
//! trusted roots and `--connect-to` rules as upstream connections, a timeout and a size cap.

use super::dial::Dialer;
use crate::identity::oidc::Fetch;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// Largest document fetched.
const MAX_BYTES: usize = 1 << 20;
const TIMEOUT: Duration = Duration::from_secs(10);

pub struct HttpsFetcher {
    client: Client<hyper_rustls::HttpsConnector<Dialer>, Empty<Bytes>>,
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
}
