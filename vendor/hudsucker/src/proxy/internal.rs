use crate::{
    HttpContext,
    HttpHandler,
    RequestOrResponse,
    WebSocketContext,
    WebSocketHandler,
    body::Body,
    certificate_authority::CertificateAuthority,
    rewind::{ArrayPrefix, Rewind},
    tee::Tee,
};
use futures::{Sink, Stream, StreamExt};
use http::uri::{Authority, Scheme};
use hyper::{
    Method,
    Request,
    Response,
    StatusCode,
    Uri,
    body::Incoming,
    header::Entry,
    service::service_fn,
    upgrade::Upgraded,
};
use hyper_util::{
    client::legacy::{Client, connect::Connect},
    rt::{TokioExecutor, TokioIo},
    server::conn::auto::Builder as ServerBuilder,
};
use std::{convert::Infallible, error::Error as StdError, io, net::SocketAddr, sync::Arc};
use tokio::{io::AsyncReadExt, net::TcpStream, task::JoinHandle};
use tokio_rustls::{LazyConfigAcceptor, StartHandshake};
use tokio_tungstenite::{
    Connector,
    WebSocketStream,
    tungstenite::{self, Message},
};
use tracing::{Instrument, Span, debug, error, info_span, instrument, warn};

fn bad_request() -> Response<Body> {
    Response::builder()
        .status(StatusCode::BAD_REQUEST)
        .body(Body::empty())
        .expect("Failed to build response")
}

fn error_chain_contains<E: StdError + 'static>(
    err: &(dyn StdError + 'static),
    f: impl Fn(&E) -> bool,
) -> bool {
    let mut source = Some(err);
    while let Some(err) = source {
        if err.downcast_ref::<E>().is_some_and(&f) {
            return true;
        }
        source = err.source();
    }
    false
}

fn error_is_shutdown(err: &(dyn StdError + 'static)) -> bool {
    error_chain_contains::<hyper::Error>(err, |err| err.is_shutdown())
}

fn error_is_unexpected_eof(err: &(dyn StdError + 'static)) -> bool {
    error_chain_contains::<io::Error>(err, |err| err.kind() == io::ErrorKind::UnexpectedEof)
}

/// A client that closed its connection mid-message or reset it (it gave up on an answer): the
/// client's choice, not the proxy's error (Tollgate patch).
fn error_is_client_gone(err: &(dyn StdError + 'static)) -> bool {
    error_chain_contains::<hyper::Error>(err, |err| err.is_incomplete_message())
        || error_chain_contains::<io::Error>(err, |err| {
            matches!(
                err.kind(),
                io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
            )
        })
}

fn spawn_with_trace<T: Send + Sync + 'static>(
    fut: impl Future<Output = T> + Send + 'static,
    span: Span,
) -> JoinHandle<T> {
    tokio::spawn(fut.instrument(span))
}

pub(crate) struct InternalProxy<C, CA, H, W> {
    pub ca: Arc<CA>,
    pub client: Client<C, Body>,
    pub server: ServerBuilder<TokioExecutor>,
    pub http_handler: H,
    pub websocket_handler: W,
    pub websocket_connector: Option<Connector>,
    pub client_addr: SocketAddr,
    /// Deadline for each phase of a tunnel before its first request (Tollgate patch).
    pub handshake: std::time::Duration,
    pub response_header: std::time::Duration,
}

impl<C, CA, H, W> Clone for InternalProxy<C, CA, H, W>
where
    C: Clone,
    H: Clone,
    W: Clone,
{
    fn clone(&self) -> Self {
        InternalProxy {
            ca: Arc::clone(&self.ca),
            client: self.client.clone(),
            server: self.server.clone(),
            http_handler: self.http_handler.clone(),
            websocket_handler: self.websocket_handler.clone(),
            websocket_connector: self.websocket_connector.clone(),
            client_addr: self.client_addr,
            handshake: self.handshake,
            response_header: self.response_header,
        }
    }
}

impl<C, CA, H, W> InternalProxy<C, CA, H, W>
where
    C: Connect + Clone + Send + Sync + 'static,
    CA: CertificateAuthority,
    H: HttpHandler,
    W: WebSocketHandler,
{
    fn context(&self) -> HttpContext {
        HttpContext {
            client_addr: self.client_addr,
        }
    }

    #[instrument(
        skip_all,
        fields(
            version = ?req.version(),
            method = %req.method(),
            uri=%req.uri(),
            client_addr = %self.client_addr,
        )
    )]
    pub(crate) async fn proxy(
        mut self,
        req: Request<Incoming>,
    ) -> Result<Response<Body>, Infallible> {
        let ctx = self.context();

        let req = match self
            .http_handler
            .handle_request(&ctx, req.map(Body::from))
            .instrument(info_span!("handle_request"))
            .await
        {
            RequestOrResponse::Request(req) => req,
            RequestOrResponse::Response(res) => return Ok(res),
        };

        if req.method() == Method::CONNECT {
            Ok(self.process_connect(req))
        } else if hyper_tungstenite::is_upgrade_request(&req) {
            Ok(self.upgrade_websocket(req))
        } else {
            let res = tokio::time::timeout(
                self.response_header,
                self.client
                    .request(normalize_request(req))
                    .instrument(info_span!("proxy_request")),
            )
            .await;

            match res {
                Err(_) => Ok(self
                    .http_handler
                    .handle_response_timeout(&ctx, self.response_header)
                    .instrument(info_span!("handle_response_timeout"))
                    .await),
                Ok(Ok(res)) => Ok(self
                    .http_handler
                    .handle_response(&ctx, res.map(Body::from))
                    .instrument(info_span!("handle_response"))
                    .await),
                Ok(Err(err)) => Ok(self
                    .http_handler
                    .handle_error(&ctx, err)
                    .instrument(info_span!("handle_error"))
                    .await),
            }
        }
    }

    fn process_connect(mut self, mut req: Request<Body>) -> Response<Body> {
        match req.uri().authority().cloned() {
            Some(authority) => {
                let span = info_span!("process_connect");
                let fut = async move {
                    match hyper::upgrade::on(&mut req).await {
                        Ok(upgraded) => {
                            let mut upgraded = TokioIo::new(upgraded);
                            let mut buffer = [0; 4];
                            let first = tokio::time::timeout(self.handshake, upgraded.read(&mut buffer));
                            let bytes_read = match first.await {
                                Err(_) => {
                                    warn!(client = %self.client_addr, "tunnel closed: nothing sent after CONNECT within the handshake deadline");
                                    return;
                                }
                                Ok(Ok(bytes_read)) => bytes_read,
                                Ok(Err(e)) => {
                                    error!(
                                        error = &e as &dyn StdError,
                                        "Failed to read from upgraded connection"
                                    );
                                    return;
                                }
                            };

                            let prefix = ArrayPrefix::new(buffer, bytes_read);
                            let mut upgraded = Rewind::new(prefix, upgraded);

                            if self
                                .http_handler
                                .should_intercept_connect(&self.context(), &req)
                                .await
                            {
                                if buffer == *b"GET " {
                                    if let Err(e) = self
                                        .serve_stream(
                                            TokioIo::new(upgraded),
                                            Scheme::HTTP,
                                            authority,
                                        )
                                        .await
                                    {
                                        error!(error = &e, "WebSocket connect error");
                                    }

                                    return;
                                } else if buffer[..2] == *b"\x16\x03" {
                                    let upgraded = Tee::new(upgraded);

                                    let hello = LazyConfigAcceptor::new(
                                        tokio_rustls::rustls::server::Acceptor::default(),
                                        upgraded,
                                    );
                                    let start = match tokio::time::timeout(self.handshake, hello).await
                                    {
                                        Err(_) => {
                                            warn!(client = %self.client_addr, "tunnel closed: no whole TLS ClientHello within the handshake deadline");
                                            return;
                                        }
                                        Ok(Ok(start)) => start,
                                        Ok(Err(e)) => {
                                            error!(
                                                error = &e as &dyn StdError,
                                                "Failed to read TLS client hello"
                                            );
                                            return;
                                        }
                                    };

                                    // A leaf only for the host the tunnel was opened to: a
                                    // ClientHello naming another is refused before any leaf
                                    // for that name is minted.
                                    if let Some(sni) = start.client_hello().server_name()
                                        && !sni.eq_ignore_ascii_case(authority.host())
                                    {
                                        warn!(client = %self.client_addr, "tunnel closed: the TLS server name differs from the CONNECT host");
                                        return;
                                    }
                                    if !self
                                        .http_handler
                                        .should_intercept_tls(&self.context(), start.client_hello())
                                        .await
                                    {
                                        let mut server =
                                            match TcpStream::connect(authority.as_ref()).await {
                                                Ok(server) => server,
                                                Err(e) => {
                                                    error!(
                                                        error = &e as &dyn StdError,
                                                        "Failed to connect to {}", authority
                                                    );
                                                    return;
                                                }
                                            };

                                        if let Err(e) = tokio::io::copy_bidirectional(
                                            &mut start.io.rewind(),
                                            &mut server,
                                        )
                                        .await
                                        {
                                            error!(
                                                error = &e as &dyn StdError,
                                                "Failed to tunnel to {}", authority
                                            );
                                        }

                                        return;
                                    }

                                    let server_config = self
                                        .ca
                                        .gen_server_config(&authority)
                                        .instrument(info_span!("gen_server_config"))
                                        .await;

                                    let handshake = StartHandshake::from_parts(
                                        start.accepted,
                                        start.io.into_inner(),
                                    )
                                    .into_stream(server_config);
                                    let stream = match tokio::time::timeout(self.handshake, handshake).await
                                    {
                                        Err(_) => {
                                            warn!(client = %self.client_addr, "tunnel closed: TLS handshake not done within the handshake deadline");
                                            return;
                                        }
                                        Ok(Ok(stream)) => TokioIo::new(stream),
                                        Ok(Err(e)) => {
                                            error!(
                                                error = &e as &dyn StdError,
                                                "Failed to establish TLS connection"
                                            );
                                            return;
                                        }
                                    };

                                    if let Err(e) =
                                        self.serve_stream(stream, Scheme::HTTPS, authority).await
                                    {
                                        if error_is_client_gone(e.as_ref()) {
                                            debug!(error = &e, "client left mid-message");
                                        } else if !error_is_shutdown(e.as_ref())
                                            && !error_is_unexpected_eof(e.as_ref())
                                        {
                                            error!(error = &e, "HTTPS connect error");
                                        }
                                    }

                                    return;
                                } else {
                                    warn!(
                                        "Unknown protocol, read '{:02X?}' from upgraded connection",
                                        &buffer[..bytes_read]
                                    );
                                }
                            }

                            let mut server = match TcpStream::connect(authority.as_ref()).await {
                                Ok(server) => server,
                                Err(e) => {
                                    error!(
                                        error = &e as &dyn StdError,
                                        "Failed to connect to {}", authority
                                    );
                                    return;
                                }
                            };

                            if let Err(e) =
                                tokio::io::copy_bidirectional(&mut upgraded, &mut server).await
                            {
                                error!(
                                    error = &e as &dyn StdError,
                                    "Failed to tunnel to {}", authority
                                );
                            }
                        }
                        Err(e) => error!(error = &e as &dyn StdError, "Upgrade error"),
                    };
                };

                spawn_with_trace(fut, span);
                Response::new(Body::empty())
            }
            None => bad_request(),
        }
    }

    #[instrument(skip_all)]
    fn upgrade_websocket(self, req: Request<Body>) -> Response<Body> {
        let mut req = {
            let (mut parts, _) = req.into_parts();

            parts.uri = {
                let mut parts = parts.uri.into_parts();

                parts.scheme = if parts.scheme.unwrap_or(Scheme::HTTP) == Scheme::HTTP {
                    Some("ws".try_into().expect("Failed to convert scheme"))
                } else {
                    Some("wss".try_into().expect("Failed to convert scheme"))
                };

                match Uri::from_parts(parts) {
                    Ok(uri) => uri,
                    Err(_) => {
                        return bad_request();
                    }
                }
            };

            Request::from_parts(parts, ())
        };

        match hyper_tungstenite::upgrade(&mut req, None) {
            Ok((res, websocket)) => {
                let span = info_span!("websocket");
                let fut = async move {
                    match websocket.await {
                        Ok(ws) => {
                            if let Err(e) = self.handle_websocket(ws, req).await {
                                error!(error = &e as &dyn StdError, "Failed to handle WebSocket");
                            }
                        }
                        Err(e) => {
                            error!(
                                error = &e as &dyn StdError,
                                "Failed to upgrade to WebSocket"
                            );
                        }
                    }
                };

                spawn_with_trace(fut, span);
                res.map(Body::from)
            }
            Err(_) => bad_request(),
        }
    }

    #[instrument(skip_all)]
    async fn handle_websocket(
        self,
        client_socket: WebSocketStream<TokioIo<Upgraded>>,
        req: Request<()>,
    ) -> Result<(), tungstenite::Error> {
        let uri = req.uri().clone();

        #[cfg(any(feature = "rustls-client", feature = "native-tls-client"))]
        let (server_socket, _) = tokio_tungstenite::connect_async_tls_with_config(
            req,
            None,
            false,
            self.websocket_connector,
        )
        .await?;

        #[cfg(not(any(feature = "rustls-client", feature = "native-tls-client")))]
        let (server_socket, _) = tokio_tungstenite::connect_async(req).await?;

        let (server_sink, server_stream) = server_socket.split();
        let (client_sink, client_stream) = client_socket.split();

        let InternalProxy {
            websocket_handler, ..
        } = self;

        spawn_message_forwarder(
            server_stream,
            client_sink,
            websocket_handler.clone(),
            WebSocketContext::ServerToClient {
                src: uri.clone(),
                dst: self.client_addr,
            },
        );

        spawn_message_forwarder(
            client_stream,
            server_sink,
            websocket_handler,
            WebSocketContext::ClientToServer {
                src: self.client_addr,
                dst: uri,
            },
        );

        Ok(())
    }

    #[instrument(skip_all)]
    async fn serve_stream<I>(
        self,
        stream: I,
        scheme: Scheme,
        authority: Authority,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
    where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let started = std::sync::atomic::AtomicBool::new(false);
        let service = service_fn(|mut req: Request<Incoming>| {
            started.store(true, std::sync::atomic::Ordering::Relaxed);
            let this = self.clone();
            let scheme = scheme.clone();
            let authority = authority.clone();
            async move {
                if req.version() == hyper::Version::HTTP_10
                    || req.version() == hyper::Version::HTTP_11
                {
                    let (mut parts, body) = req.into_parts();
                    // An authority-form or asterisk-form target (`GET host:443`, `CONNECT
                    // x:443`, `OPTIONS *`) has no path to put under the tunnel's scheme and
                    // authority: answered 400 rather than a panic.
                    let mut uri = parts.uri.into_parts();
                    uri.scheme = Some(scheme);
                    uri.authority = Some(authority);
                    let Some(uri) = uri
                        .path_and_query
                        .as_ref()
                        .filter(|p| p.path().starts_with('/'))
                        .is_some()
                        .then(|| Uri::from_parts(uri).ok())
                        .flatten()
                    else {
                        return Ok(bad_request());
                    };
                    parts.uri = uri;
                    req = Request::from_parts(parts, body);
                }
                this.proxy(req).await
            }
        });
        let serving = self.server.serve_connection_with_upgrades(stream, service);
        let mut serving = std::pin::pin!(serving);
        // The first request inside the tunnel must come within the handshake deadline.
        let no_request = async {
            tokio::time::sleep(self.handshake).await;
            if started.load(std::sync::atomic::Ordering::Relaxed) {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            r = serving.as_mut() => r,
            _ = no_request => {
                warn!(client = %self.client_addr, "tunnel closed: no request within the handshake deadline");
                Ok(())
            }
        }
    }
}

fn spawn_message_forwarder(
    stream: impl Stream<Item = Result<Message, tungstenite::Error>> + Unpin + Send + 'static,
    sink: impl Sink<Message, Error = tungstenite::Error> + Unpin + Send + 'static,
    handler: impl WebSocketHandler,
    ctx: WebSocketContext,
) {
    let span = info_span!("message_forwarder", context = ?ctx);
    let fut = handler.handle_websocket(ctx, stream, sink);
    spawn_with_trace(fut, span);
}

#[instrument(skip_all)]
fn normalize_request<T>(mut req: Request<T>) -> Request<T> {
    // Hyper will automatically add a Host header if needed.
    req.headers_mut().remove(hyper::header::HOST);

    // HTTP/2 supports multiple cookie headers, but HTTP/1.x only supports one.
    if let Entry::Occupied(mut cookies) = req.headers_mut().entry(hyper::header::COOKIE) {
        let joined_cookies = bstr::join(b"; ", cookies.iter());
        cookies.insert(joined_cookies.try_into().expect("Failed to join cookies"));
    }

    *req.version_mut() = hyper::Version::HTTP_11;
    req
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper_util::client::legacy::connect::HttpConnector;
    use tokio_rustls::rustls::ServerConfig;

    struct CA;

    impl CertificateAuthority for CA {
        async fn gen_server_config(&self, _authority: &Authority) -> Arc<ServerConfig> {
            unimplemented!();
        }
    }

    fn build_proxy() -> InternalProxy<HttpConnector, CA, crate::NoopHandler, crate::NoopHandler> {
        InternalProxy {
            ca: Arc::new(CA),
            client: Client::builder(TokioExecutor::new()).build(HttpConnector::new()),
            server: ServerBuilder::new(TokioExecutor::new()),
            http_handler: crate::NoopHandler::new(),
            websocket_handler: crate::NoopHandler::new(),
            websocket_connector: None,
            client_addr: "127.0.0.1:8080".parse().unwrap(),
        }
    }

    mod bad_request {
        use super::*;

        #[test]
        fn correct_status() {
            let res = bad_request();
            assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        }
    }

    mod normalize_request {
        use super::*;

        #[test]
        fn removes_host_header() {
            let req = Request::builder()
                .uri("http://example.com/")
                .header(hyper::header::HOST, "example.com")
                .body(())
                .unwrap();

            let req = normalize_request(req);

            assert_eq!(req.headers().get(hyper::header::HOST), None);
        }

        #[test]
        fn joins_cookies() {
            let req = Request::builder()
                .uri("http://example.com/")
                .header(hyper::header::COOKIE, "foo=bar")
                .header(hyper::header::COOKIE, "baz=qux")
                .body(())
                .unwrap();

            let req = normalize_request(req);

            assert_eq!(
                req.headers().get_all(hyper::header::COOKIE).iter().count(),
                1
            );

            assert_eq!(
                req.headers().get(hyper::header::COOKIE),
                Some(&"foo=bar; baz=qux".parse().unwrap())
            );
        }
    }

    mod process_connect {
        use super::*;

        #[test]
        fn returns_bad_request_if_missing_authority() {
            let proxy = build_proxy();

            let req = Request::builder()
                .uri("/foo/bar?baz")
                .body(Body::empty())
                .unwrap();

            let res = proxy.process_connect(req);

            assert_eq!(res.status(), StatusCode::BAD_REQUEST)
        }
    }

    mod upgrade_websocket {
        use super::*;

        #[test]
        fn returns_bad_request_if_missing_authority() {
            let proxy = build_proxy();

            let req = Request::builder()
                .uri("/foo/bar?baz")
                .body(Body::empty())
                .unwrap();

            let res = proxy.upgrade_websocket(req);

            assert_eq!(res.status(), StatusCode::BAD_REQUEST)
        }

        #[test]
        fn returns_bad_request_if_missing_headers() {
            let proxy = build_proxy();

            let req = Request::builder()
                .uri("http://example.com/foo/bar?baz")
                .body(Body::empty())
                .unwrap();

            let res = proxy.upgrade_websocket(req);

            assert_eq!(res.status(), StatusCode::BAD_REQUEST)
        }
    }
}
