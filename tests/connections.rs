//! What an unauthenticated peer can do to the proxy's connections: odd request targets inside a
//! tunnel get a 400 (never a panic), every phase before a request has a deadline, and the number
//! of connections per client is bounded.

mod common;

use common::*;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn quick() -> tollgate::config::Timeouts {
    tollgate::config::Timeouts {
        handshake: Duration::from_millis(400),
        header_read: Duration::from_millis(400),
        ..Default::default()
    }
}

/// Reads until the peer closes; how long that took.
async fn closed_within<S: tokio::io::AsyncRead + Unpin>(s: &mut S, limit: Duration) -> Duration {
    let start = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(limit, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return start.elapsed(),
            Ok(Ok(_)) => continue,
            Err(_) => panic!("the proxy kept a silent connection open for {limit:?}"),
        }
    }
}

/// A request sent in time, through the same proxy, is served.
async fn still_serves(proxy: &TestProxy) {
    let res = client(proxy)
        .get("https://api.openai.com/v1/models")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn request_targets_without_a_path_inside_a_tunnel_get_400_not_a_panic() {
    let upstream = Upstream::start().await;
    let proxy = ProxySetup::new(&upstream).start().await;
    for target in [
        "GET api.openai.com:443 HTTP/1.1",
        "CONNECT x.example:443 HTTP/1.1",
        "OPTIONS * HTTP/1.1",
        "GET api.openai.com HTTP/1.1",
    ] {
        let mut tls =
            intercepted_tls(&proxy, "api.openai.com", "api.openai.com", b"http/1.1").await;
        tls.write_all(format!("{target}\r\nhost: api.openai.com\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut buf = vec![0u8; 256];
        let n = tokio::time::timeout(Duration::from_secs(5), tls.read(&mut buf))
            .await
            .expect("an answer, not a dead connection")
            .unwrap();
        let head = String::from_utf8_lossy(&buf[..n]);
        assert!(head.starts_with("HTTP/1.1 400"), "{target}: {head}");
    }
    still_serves(&proxy).await;
}

#[tokio::test]
async fn silent_and_half_finished_connections_are_closed_at_the_handshake_deadline() {
    let upstream = Upstream::start().await;
    let proxy = ProxySetup::new(&upstream).timeouts(quick()).start().await;
    let limit = Duration::from_secs(5);
    // TCP connected, nothing sent.
    let mut tcp = TcpStream::connect(proxy.addr()).await.unwrap();
    closed_within(&mut tcp, limit).await;
    // Half an HTTP/2 preface.
    let mut tcp = TcpStream::connect(proxy.addr()).await.unwrap();
    tcp.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
    closed_within(&mut tcp, limit).await;
    // CONNECT answered, then nothing.
    let mut tunnel = connect(proxy.addr(), "api.openai.com:443", &[])
        .await
        .open();
    closed_within(&mut tunnel, limit).await;
    // Half a ClientHello.
    let mut tunnel = connect(proxy.addr(), "api.openai.com:443", &[])
        .await
        .open();
    tunnel
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .await
        .unwrap();
    closed_within(&mut tunnel, limit).await;
    // TLS done, no request.
    let mut tls = intercepted_tls(&proxy, "api.openai.com", "api.openai.com", b"http/1.1").await;
    closed_within(&mut tls, limit).await;
    still_serves(&proxy).await;
}

#[tokio::test]
async fn connections_per_client_are_bounded() {
    let upstream = Upstream::start().await;
    let proxy = ProxySetup::new(&upstream)
        .limits(tollgate::config::Limits {
            max_connections: 100,
            max_connections_per_client: 3,
            ..Default::default()
        })
        .start()
        .await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(TcpStream::connect(proxy.addr()).await.unwrap());
    }
    // The fourth is accepted by the kernel and closed by the proxy at once.
    let mut fourth = TcpStream::connect(proxy.addr()).await.unwrap();
    let took = closed_within(&mut fourth, Duration::from_secs(5)).await;
    assert!(took < Duration::from_secs(5));
    drop(held);
    tokio::time::sleep(Duration::from_millis(100)).await;
    still_serves(&proxy).await;
}

/// Sends `head` (a whole request head) on `io` and returns the status line's code, if any came.
async fn status_of<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    io: &mut S,
    head: &[u8],
) -> Option<u16> {
    if io.write_all(head).await.is_err() {
        return None;
    }
    let mut buf = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(10), io.read(&mut buf))
        .await
        .ok()?
        .ok()?;
    std::str::from_utf8(&buf[..n])
        .ok()?
        .strip_prefix("HTTP/1.1 ")?
        .get(..3)?
        .parse()
        .ok()
}

fn padded(line: &str, pad: usize) -> Vec<u8> {
    format!("{line}x-pad: {}\r\n\r\n", "a".repeat(pad)).into_bytes()
}

#[tokio::test]
async fn the_connect_head_and_the_requests_inside_the_tunnel_have_the_same_size_limit() {
    let upstream = Upstream::start().await;
    let proxy = ProxySetup::new(&upstream)
        .limits(tollgate::config::Limits {
            max_header_bytes: 16 << 10,
            ..Default::default()
        })
        .start()
        .await;
    let connect = "CONNECT api.openai.com:443 HTTP/1.1\r\nHost: api.openai.com:443\r\n";
    let inner =
        "POST /v1/chat/completions HTTP/1.1\r\nHost: api.openai.com\r\ncontent-length: 0\r\n";

    // Outside: a CONNECT head over the limit is refused, one under it opens the tunnel.
    let mut tcp = TcpStream::connect(proxy.addr()).await.unwrap();
    let over = status_of(&mut tcp, &padded(connect, 20 << 10)).await;
    assert!(matches!(over, Some(431) | None), "{over:?}");
    let mut tcp = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(
        status_of(&mut tcp, &padded(connect, 12 << 10)).await,
        Some(200)
    );

    // Inside, HTTP/1.1: the same bounds.
    let tunnel = connect_tunnel(&proxy).await;
    let mut tls = tls_over(tunnel, "api.openai.com", &proxy.ca_pem(), &[b"http/1.1"]).await;
    let over = status_of(&mut tls, &padded(inner, 20 << 10)).await;
    assert!(matches!(over, Some(431) | None), "{over:?}");
    let tunnel = connect_tunnel(&proxy).await;
    let mut tls = tls_over(tunnel, "api.openai.com", &proxy.ca_pem(), &[b"http/1.1"]).await;
    assert_eq!(
        status_of(&mut tls, &padded(inner, 12 << 10)).await,
        Some(200)
    );

    // Inside, h2: a header list over the limit never reaches the upstream.
    let before = upstream.received().len();
    let tunnel = connect_tunnel(&proxy).await;
    let tls = tls_over(tunnel, "api.openai.com", &proxy.ca_pem(), &[b"h2"]).await;
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let req = http::Request::post("https://api.openai.com/v1/chat/completions")
        .header("x-pad", "a".repeat(20 << 10))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    // Refused with a 431, or at the framing level.
    if let Ok(res) = sender.send_request(req).await {
        assert_eq!(res.status(), 431);
    }
    assert_eq!(upstream.received().len(), before);
    still_serves(&proxy).await;
}

async fn connect_tunnel(proxy: &TestProxy) -> hyper_util::rt::TokioIo<hyper::upgrade::Upgraded> {
    connect(proxy.addr(), "api.openai.com:443", &[])
        .await
        .open()
}
