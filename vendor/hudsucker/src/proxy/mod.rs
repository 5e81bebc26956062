mod internal;

pub mod builder;

use crate::{
    Error,
    HttpHandler,
    WebSocketHandler,
    builder::ProxyBuilder,
    certificate_authority::CertificateAuthority,
};
use builder::{AddrOrListener, WantsAddr};
use hyper::service::service_fn;
use hyper_util::{
    client::legacy::{Builder as ClientBuilder, Client, connect::Connect},
    rt::{TokioExecutor, TokioIo},
    server::conn::auto::Builder as ServerBuilder,
};
use internal::InternalProxy;
use std::{
    collections::HashMap,
    error::Error as StdError,
    net::IpAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};
use tokio::{net::TcpListener, sync::Semaphore};
use tokio_graceful::Shutdown;
use tokio_tungstenite::Connector;
use tracing::{error, warn};

/// Bounds on connections and on each phase before a request arrives (a Tollgate patch): a peer
/// without credentials must not be able to hold the proxy open.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// Deadline for each phase before a request: the first request head on a connection, the
    /// first bytes after CONNECT, the TLS handshake, the first request inside a tunnel.
    pub handshake: Duration,
    /// Open client connections in total; more are closed at once.
    pub max_connections: usize,
    /// Open client connections from one IP address; more are closed at once.
    pub max_connections_per_client: usize,
    /// Deadline for the upstream's response head once a request is sent; past it the handler's
    /// `handle_response_timeout` answers instead.
    pub response_header: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            handshake: Duration::from_secs(10),
            max_connections: 10_000,
            max_connections_per_client: 1_000,
            response_header: Duration::from_secs(600),
        }
    }
}

/// Open connections per client address; each accepted one holds a [`ClientSlot`].
#[derive(Default)]
struct PerClient(Mutex<HashMap<IpAddr, usize>>);

struct ClientSlot {
    table: Arc<PerClient>,
    ip: IpAddr,
}

impl PerClient {
    fn take(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<ClientSlot> {
        let mut table = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = table.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(ClientSlot {
            table: Arc::clone(self),
            ip,
        })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut table = self.table.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = table.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                table.remove(&self.ip);
            }
        }
    }
}

/// Logs a repeated event at most once per interval, with how many were suppressed.
struct Throttled {
    last: Option<Instant>,
    suppressed: u64,
}

impl Throttled {
    const INTERVAL: Duration = Duration::from_secs(5);

    fn new() -> Self {
        Self {
            last: None,
            suppressed: 0,
        }
    }

    /// `Some(suppressed)` when this occurrence should be logged.
    fn tick(&mut self) -> Option<u64> {
        let now = Instant::now();
        match self.last {
            Some(last) if now.duration_since(last) < Self::INTERVAL => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

/// A proxy server. This must be constructed with a [`ProxyBuilder`].
///
/// # Examples
///
/// ```rust
/// use hudsucker::Proxy;
/// # use hudsucker::{
/// #     certificate_authority::RcgenAuthority,
/// #     rcgen::{Issuer, KeyPair},
/// #     rustls::crypto::aws_lc_rs,
/// # };
/// #
/// # #[cfg(all(feature = "rcgen-ca", feature = "rustls-client"))]
/// # #[tokio::main]
/// # async fn main() {
/// # let key_pair = include_str!("../../examples/ca/hudsucker.key");
/// # let ca_cert = include_str!("../../examples/ca/hudsucker.cer");
/// # let key_pair = KeyPair::from_pem(key_pair).expect("Failed to parse private key");
/// # let issuer =
/// #     Issuer::from_ca_cert_pem(ca_cert, key_pair).expect("Failed to parse CA certificate");
/// #
/// # let ca = RcgenAuthority::new(issuer, 1_000, aws_lc_rs::default_provider());
///
/// // let ca = ...;
///
/// let (stop, done) = tokio::sync::oneshot::channel();
///
/// let proxy = Proxy::builder()
///     .with_addr(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
///     .with_ca(ca)
///     .with_rustls_connector(aws_lc_rs::default_provider())
///     .with_graceful_shutdown(async {
///         done.await.unwrap_or_default();
///     })
///     .build()
///     .expect("Failed to create proxy");
///
/// tokio::spawn(proxy.start());
///
/// // Do something else...
///
/// stop.send(()).unwrap();
/// # }
/// #
/// # #[cfg(not(all(feature = "rcgen-ca", feature = "rustls-client")))]
/// # fn main() {}
/// ```
pub struct Proxy<C, CA, H, W, F> {
    al: AddrOrListener,
    ca: Arc<CA>,
    http_connector: C,
    client: Option<ClientBuilder>,
    http_handler: H,
    websocket_handler: W,
    websocket_connector: Option<Connector>,
    server: Option<ServerBuilder<TokioExecutor>>,
    graceful_shutdown: F,
    limits: ConnectionLimits,
}

impl Proxy<(), (), (), (), ()> {
    /// Create a new [`ProxyBuilder`].
    pub fn builder() -> ProxyBuilder<WantsAddr> {
        ProxyBuilder::new()
    }
}

impl<C, CA, H, W, F> Proxy<C, CA, H, W, F>
where
    C: Connect + Clone + Send + Sync + 'static,
    CA: CertificateAuthority,
    H: HttpHandler,
    W: WebSocketHandler,
    F: Future<Output = ()> + Send + 'static,
{
    /// Attempts to start the proxy server.
    ///
    /// # Errors
    ///
    /// This will return an error if the proxy server is unable to be started.
    /// Bounds the connections and the phases before a request (see [`ConnectionLimits`]).
    pub fn with_connection_limits(mut self, limits: ConnectionLimits) -> Self {
        self.limits = limits;
        self
    }

    pub async fn start(self) -> Result<(), Error> {
        let client = self
            .client
            .unwrap_or_else(|| {
                let mut builder = Client::builder(TokioExecutor::new());
                builder
                    .http1_title_case_headers(true)
                    .http1_preserve_header_case(true);
                builder
            })
            .build(self.http_connector);

        let server = self.server.unwrap_or_else(|| {
            let mut builder = ServerBuilder::new(TokioExecutor::new());
            builder
                .http1()
                .title_case_headers(true)
                .preserve_header_case(true);
            builder
        });

        let listener = match self.al {
            AddrOrListener::Addr(addr) => TcpListener::bind(addr).await?,
            AddrOrListener::Listener(listener) => listener,
        };

        let shutdown = Shutdown::new(self.graceful_shutdown);
        let guard = shutdown.guard_weak();
        let limits = self.limits.clone();
        let total = Arc::new(Semaphore::new(limits.max_connections));
        let per_client = Arc::new(PerClient::default());
        // Accept errors (out of file descriptors, above all) are retried after a pause that
        // doubles up to a second, and logged once per interval, instead of spinning.
        let mut backoff = Duration::ZERO;
        let mut accept_errors = Throttled::new();
        let mut refusals = Throttled::new();

        loop {
            tokio::select! {
                res = listener.accept() => {
                    let (tcp, client_addr) = match res {
                        Ok((tcp, client_addr)) => {
                            backoff = Duration::ZERO;
                            (tcp, client_addr)
                        }
                        Err(e) => {
                            backoff = (backoff * 2).clamp(Duration::from_millis(5), Duration::from_secs(1));
                            if let Some(suppressed) = accept_errors.tick() {
                                error!(error = &e as &dyn StdError, suppressed, "Failed to accept incoming connection; retrying after a pause");
                            }
                            tokio::time::sleep(backoff).await;
                            continue;
                        }
                    };
                    let Ok(permit) = Arc::clone(&total).try_acquire_owned() else {
                        if let Some(suppressed) = refusals.tick() {
                            warn!(client = %client_addr, suppressed, limit = limits.max_connections, "connection closed: the proxy holds its maximum of open connections");
                        }
                        drop(tcp);
                        continue;
                    };
                    let Some(slot) = per_client.take(client_addr.ip(), limits.max_connections_per_client) else {
                        if let Some(suppressed) = refusals.tick() {
                            warn!(client = %client_addr, suppressed, limit = limits.max_connections_per_client, "connection closed: this client holds its maximum of open connections");
                        }
                        drop(tcp);
                        continue;
                    };

                    let client = client.clone();
                    let server = server.clone();
                    let ca = Arc::clone(&self.ca);
                    let http_handler = self.http_handler.clone();
                    let websocket_handler = self.websocket_handler.clone();
                    let websocket_connector = self.websocket_connector.clone();
                    let handshake = limits.handshake;
                    let response_header = limits.response_header;

                    shutdown.spawn_task_fn(move |guard| async move {
                        let _held = (permit, slot);
                        let started = Arc::new(AtomicBool::new(false));
                        let conn = server.serve_connection_with_upgrades(
                            TokioIo::new(tcp),
                            service_fn(|req| {
                                started.store(true, Ordering::Relaxed);
                                InternalProxy {
                                    ca: Arc::clone(&ca),
                                    client: client.clone(),
                                    server: server.clone(),
                                    http_handler: http_handler.clone(),
                                    websocket_handler: websocket_handler.clone(),
                                    websocket_connector: websocket_connector.clone(),
                                    client_addr,
                                    handshake,
                                    response_header,
                                }
                                .proxy(req)
                            }),
                        );

                        let mut conn = std::pin::pin!(conn);

                        // A connection that has not sent a whole request head by the deadline
                        // is closed (silent TCP, a partial HTTP/2 preface, a slow head).
                        let no_request = async {
                            tokio::time::sleep(handshake).await;
                            if started.load(Ordering::Relaxed) {
                                std::future::pending::<()>().await;
                            }
                        };

                        if let Err(err) = tokio::select! {
                            conn = conn.as_mut() => conn,
                            _ = no_request => {
                                warn!(client = %client_addr, "connection closed: no request within the handshake deadline");
                                return;
                            }
                            _ = guard.cancelled() => {
                                conn.as_mut().graceful_shutdown();
                                conn.await
                            }
                        } {
                            error!(error = &err, "Error serving connection");
                        }
                    });
                }
                _ = guard.cancelled() => {
                    break;
                }
            }
        }

        shutdown.shutdown().await;

        Ok(())
    }
}
