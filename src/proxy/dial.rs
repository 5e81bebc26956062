//! Every upstream TCP connection Tollgate makes goes through [`Dialer`]: intercepted requests
//! (as a hyper connector) and blind tunnels alike. It applies `--connect-to` overrides, refuses
//! internal addresses the policy does not allow, and bounds the connect time.

use crate::net::ConnectTo;
use crate::policy::Policy;
use crate::policy::address::is_internal;
use crate::policy::hosts::normalize_host;
use arc_swap::ArcSwap;
use http::Uri;
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpStream;

#[derive(Debug, thiserror::Error)]
pub enum DialError {
    #[error(
        "{host}:{port} resolves only to internal addresses ({addr}); the policy does not allow them (hosts.allow_internal)"
    )]
    InternalAddress {
        host: String,
        port: u16,
        addr: IpAddr,
    },
    #[error("cannot resolve {host}: {source}")]
    Resolve {
        host: String,
        source: std::io::Error,
    },
    #[error("cannot connect to {host}:{port}: {source}")]
    Connect {
        host: String,
        port: u16,
        source: std::io::Error,
    },
    #[error("connecting to {host}:{port} timed out after {}s", after.as_secs())]
    Timeout {
        host: String,
        port: u16,
        after: Duration,
    },
    #[error("request URI has no host")]
    NoHost,
}

/// Opens upstream TCP connections. Cheap to clone.
#[derive(Clone)]
pub struct Dialer {
    inner: Arc<Inner>,
}

struct Inner {
    connect_to: Vec<ConnectTo>,
    /// Whose `allow_internal` decides which internal addresses may be reached; `None` for
    /// destinations the operator configured (an identity provider), which may be anywhere.
    policy: Option<Arc<ArcSwap<Policy>>>,
    timeout: Duration,
}

impl Dialer {
    pub fn new(
        connect_to: Vec<ConnectTo>,
        policy: Arc<ArcSwap<Policy>>,
        timeout: Duration,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                connect_to,
                policy: Some(policy),
                timeout,
            }),
        }
    }

    /// A dialer for destinations the operator configured, not a client: internal addresses
    /// are allowed. `--connect-to` rules still apply.
    pub fn for_operator(connect_to: Vec<ConnectTo>, timeout: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                connect_to,
                policy: None,
                timeout,
            }),
        }
    }

    /// Connects to `host:port`, or to where a `--connect-to` rule sends it.
    pub async fn dial(&self, host: &str, port: u16) -> Result<TcpStream, DialError> {
        let host = normalize_host(host);
        let timeout = self.inner.timeout;
        let attempt = async {
            let redirected = self
                .inner
                .connect_to
                .iter()
                .find_map(|r| r.apply(&host, port));
            let addrs = match &redirected {
                // The operator chose this destination: internal addresses are fine.
                Some((to_host, to_port)) => resolve(to_host, *to_port).await?,
                None => self.public_addrs(&host, port).await?,
            };
            let mut last = None;
            for addr in addrs {
                match TcpStream::connect(addr).await {
                    Ok(stream) => {
                        let _ = stream.set_nodelay(true);
                        return Ok(stream);
                    }
                    Err(e) => last = Some(e),
                }
            }
            let (host, port) = redirected.unwrap_or((host.clone(), port));
            Err(DialError::Connect {
                host,
                port,
                source: last.unwrap_or_else(|| std::io::ErrorKind::NotFound.into()),
            })
        };
        tokio::time::timeout(timeout, attempt)
            .await
            .unwrap_or_else(|_| {
                Err(DialError::Timeout {
                    host: host.clone(),
                    port,
                    after: timeout,
                })
            })
    }

    /// Resolves `host` and keeps the addresses the policy lets the proxy reach.
    async fn public_addrs(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, DialError> {
        let all = resolve(host, port).await?;
        let Some(policy) = &self.inner.policy else {
            return Ok(all);
        };
        let policy = policy.load();
        let allowed: Vec<_> = all
            .iter()
            .copied()
            .filter(|a| !is_internal(a.ip()) || policy.allow_internal().allows(host, port, a.ip()))
            .collect();
        match (allowed.is_empty(), all.first()) {
            (true, Some(first)) => Err(DialError::InternalAddress {
                host: host.to_owned(),
                port,
                addr: first.ip(),
            }),
            _ => Ok(allowed),
        }
    }
}

async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, DialError> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    tokio::net::lookup_host((host, port))
        .await
        .map(Iterator::collect)
        .map_err(|source| DialError::Resolve {
            host: host.to_owned(),
            source,
        })
}

/// The dialer as a hyper connector: the TCP layer under hyper-rustls for intercepted requests.
impl tower_service::Service<Uri> for Dialer {
    type Response = TokioIo<TcpStream>;
    type Error = DialError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let dialer = self.clone();
        Box::pin(async move {
            let host = uri.host().ok_or(DialError::NoHost)?.to_owned();
            let default_port = if uri.scheme() == Some(&http::uri::Scheme::HTTP) {
                80
            } else {
                443
            };
            let port = uri.port_u16().unwrap_or(default_port);
            dialer.dial(&host, port).await.map(TokioIo::new)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(s: &str) -> ConnectTo {
        s.parse().unwrap()
    }

    #[test]
    fn parses_curl_style_rules() {
        assert_eq!(
            rule("api.openai.com:443:127.0.0.1:8443"),
            ConnectTo {
                host: Some("api.openai.com".into()),
                port: Some(443),
                to_host: Some("127.0.0.1".into()),
                to_port: Some(8443),
            }
        );
        assert_eq!(
            rule("::[::1]:9000"),
            ConnectTo {
                host: None,
                port: None,
                to_host: Some("::1".into()),
                to_port: Some(9000),
            }
        );
        assert_eq!(rule("[::1]:443::").host.as_deref(), Some("::1"));
        assert!("a:443:b".parse::<ConnectTo>().is_err());
        assert!("a:443:b:1:2".parse::<ConnectTo>().is_err());
        assert!("a:x:b:1".parse::<ConnectTo>().is_err());
    }

    #[test]
    fn rules_apply_to_matching_host_and_port_only() {
        let r = rule("api.openai.com:443:127.0.0.1:8443");
        assert_eq!(
            r.apply("api.openai.com", 443),
            Some(("127.0.0.1".into(), 8443))
        );
        assert_eq!(r.apply("api.openai.com", 80), None);
        assert_eq!(r.apply("api.anthropic.com", 443), None);
        let any = rule("::127.0.0.1:");
        assert_eq!(
            any.apply("x.example", 8080),
            Some(("127.0.0.1".into(), 8080))
        );
    }

    fn dialer(rules: Vec<ConnectTo>, policy: Policy) -> Dialer {
        Dialer::new(
            rules,
            Arc::new(ArcSwap::from_pointee(policy)),
            Duration::from_secs(5),
        )
    }

    #[tokio::test]
    async fn refuses_internal_addresses_unless_allowed() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let d = dialer(vec![], Policy::load(None).unwrap());
        let err = d.dial("127.0.0.1", port).await.unwrap_err();
        assert!(matches!(err, DialError::InternalAddress { .. }), "{err}");
        let err = d.dial("localhost", port).await.unwrap_err();
        assert!(matches!(err, DialError::InternalAddress { .. }), "{err}");

        let allowed = Policy::from_sources(
            &crate::source::Source::embedded_catalog(),
            &crate::source::Source::inline("p.yaml", "hosts:\n  allow_internal: [127.0.0.1]\n"),
        )
        .unwrap();
        dialer(vec![], allowed)
            .dial("127.0.0.1", port)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn connect_to_destinations_are_exempt() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let d = dialer(
            vec![rule(&format!("api.openai.com:443:127.0.0.1:{port}"))],
            Policy::load(None).unwrap(),
        );
        let stream = d.dial("api.openai.com", 443).await.unwrap();
        assert_eq!(stream.peer_addr().unwrap().port(), port);
    }
}
