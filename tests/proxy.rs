//! The proxy core end to end: the real proxy on loopback, the fake upstream posing as LLM hosts,
//! real clients.

mod common;

use bytes::Bytes;
use common::*;
use futures_util::StreamExt;
use http::{Request, StatusCode, Version};
use http_body_util::Full;
use rustls_pki_types::pem::PemObject;
use std::time::Duration;

const CHAT: &str = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#;

#[tokio::test]
async fn intercepted_request_is_served_with_a_leaf_from_tollgate_ca() {
    let upstream = Upstream::start().await;
    let proxy = ProxySetup::new(&upstream).start().await;

    let res = client(&proxy)
        .post("https://api.openai.com/v1/chat/completions")
        .header("content-type", "application/json")
        .header("authorization", "Bearer sk-test")
        .body(CHAT)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "Hello from upstream"
    );

    let leaf = peer_certificate(&proxy, "api.openai.com", &proxy.ca_pem()).await;
    let (_, cert) = x509_parser::parse_x509_certificate(&leaf).unwrap();
    assert!(
        cert.issuer().to_string().contains("Tollgate Root CA"),
        "{}",
        cert.issuer()
    );

    let received = upstream.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].path, "/v1/chat/completions");
    assert_eq!(received[0].body, CHAT);
    assert_eq!(received[0].headers["authorization"], "Bearer sk-test");
    assert!(received[0].tls);
}

/// The certificate a client sees for `host` through the proxy (DER).
async fn peer_certificate(proxy: &TestProxy, host: &str, root_pem: &str) -> Vec<u8> {
    let io = connect(proxy.addr(), &format!("{host}:443"), &[])
        .await
        .open();
    let tls = tls_over(io, host, root_pem, &[b"http/1.1"]).await;
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

#[tokio::test]
async fn client_trusting_only_the_upstream_ca_cannot_talk_to_an_intercepted_host() {
    let upstream = Upstream::start().await;
    let proxy = ProxySetup::new(&upstream).start().await;
    let client = client_trusting(&proxy, &[&upstream_ca_pem()])
        .build()
        .unwrap();
    let err = client
        .get("https://api.openai.com/v1/models")
        .send()
        .await
        .unwrap_err();
    assert!(err.is_connect() || err.is_request(), "{err:?}");
    assert!(upstream.received().is_empty());
}

#[tokio::test]
async fn tunneled_host_shows_the_upstreams_own_certificate() {
    let upstream = Upstream::start().await;
    let proxy = ProxySetup::new(&upstream).start().await;
    // Trusts only the upstream's CA: a Tollgate leaf would be rejected.
    let client = client_trusting(&proxy, &[&upstream_ca_pem()])
        .build()
        .unwrap();
    let res = client
        .get("https://tunneled.example/anything")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let leaf = peer_certificate(&proxy, "tunneled.example", &upstream_ca_pem()).await;
    let fixture =
        rustls_pki_types::CertificateDer::from_pem_file(format!("{FIXTURES}/upstream.crt"));
    assert_eq!(leaf, fixture.unwrap().to_vec());
    assert_eq!(upstream.received()[0].path, "/anything");
}

#[tokio::test]
async fn denied_host_gets_403_naming_the_rule() {
    let upstream = Upstream::start().await;
    let proxy = ProxySetup::new(&upstream)
        .policy("hosts:\n  deny: ['*.example', api.anthropic.com]\n")
        .start()
        .await;

    let (status, headers, body) = connect(proxy.addr(), "tunneled.example:443", &[])
        .await
        .refused();
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(headers["x-tollgate-reason"], "host-denied");
    assert_eq!(headers["x-tollgate-rule"], "hosts.deny: *.example");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("tunneled.example")
    );

    // A denied provider host answers in that provider's own error shape.
    let (status, _, body) = connect(proxy.addr(), "api.anthropic.com:443", &[])
        .await
        .refused();
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "permission_error");
    assert!(upstream.received().is_empty());
}

#[tokio::test]
async fn unknown_hosts_can_be_denied_by_policy() {
    let upstream = Upstream::start().await;
    let proxy = ProxySetup::new(&upstream)
        .policy("hosts:\n  unknown: deny\n")
        .start()
        .await;
    let (status, headers, _) = connect(proxy.addr(), "tunneled.example:443", &[])
        .await
        .refused();
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(headers["x-tollgate-rule"], "hosts.unknown: deny");
    // Catalog hosts are still intercepted.
    let res = client(&proxy)
        .get("https://api.openai.com/v1/models")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn internal_addresses_are_refused_unless_allowlisted() {
    let upstream = Upstream::start().await;
    let target = format!("127.0.0.1:{}", upstream.tls_addr.port());

    let proxy = ProxySetup::bare().start().await;
    let (status, headers, body) = connect(proxy.addr(), &target, &[]).await.refused();
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(headers["x-tollgate-reason"], "internal-address");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("allow_internal")
    );
    for metadata in [
        "169.254.169.254:80",
        "localhost:22",
        "[::1]:443",
        "10.0.0.1:443",
    ] {
        let (status, headers, _) = connect(proxy.addr(), metadata, &[]).await.refused();
        assert_eq!(status, StatusCode::FORBIDDEN, "{metadata}");
        assert_eq!(
            headers["x-tollgate-reason"], "internal-address",
            "{metadata}"
        );
    }

    let allowed = ProxySetup::bare()
        .policy("hosts:\n  allow_internal: ['127.0.0.1']\n")
        .start()
        .await;
    assert!(matches!(
        connect(allowed.addr(), &target, &[]).await,
        Tunnel::Open(_)
    ));
}

#[tokio::test]
async fn h2_on_both_sides() {
    let upstream = Upstream::start().await;
    let proxy = ProxySetup::new(&upstream).start().await;
    let res = client(&proxy)
        .post("https://api.openai.com/v1/chat/completions")
        .body(CHAT)
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.version(),
        Version::HTTP_2,
        "client side negotiates h2 with Tollgate"
    );
    assert_eq!(res.status(), 200);
    assert_eq!(
        upstream.received()[0].version,
        Version::HTTP_2,
        "upstream side speaks h2"
    );
}

#[tokio::test]
async fn http1_on_both_sides() {
    let upstream = Upstream::start_with(UpstreamOptions {
        h1_only: true,
        ..Default::default()
    })
    .await;
    let proxy = ProxySetup::new(&upstream).start().await;
    let res = client_trusting(&proxy, &[&proxy.ca_pem()])
        .http1_only()
        .build()
        .unwrap()
        .post("https://api.openai.com/v1/chat/completions")
        .body(CHAT)
        .send()
        .await
        .unwrap();
    assert_eq!(res.version(), Version::HTTP_11);
    assert_eq!(res.status(), 200);
    assert_eq!(upstream.received()[0].version, Version::HTTP_11);
}

#[tokio::test]
async fn h2_request_for_another_host_inside_a_tunnel_is_refused() {
    let upstream = Upstream::start().await;
    let proxy = ProxySetup::new(&upstream).start().await;
    let tls = intercepted_tls(&proxy, "api.openai.com", "api.openai.com", b"h2").await;
    let req = Request::post("https://api.anthropic.com/v1/messages")
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    let res = h2_request(tls, req).await;
    assert_eq!(res.status(), StatusCode::MISDIRECTED_REQUEST);
    assert_eq!(res.headers()["x-tollgate-reason"], "host-mismatch");
    let body = json(res.body());
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("api.anthropic.com")
    );
    assert!(upstream.received().is_empty(), "nothing may leave");
}

/// A refusal of a HEAD carries no content: over h2, DATA frames after its headers are a
/// protocol error that curl reports instead of the refusal.
#[tokio::test]
async fn a_refused_head_request_over_h2_has_no_body() {
    let upstream = Upstream::start().await;
    let proxy = ProxySetup::new(&upstream).start().await;
    let tls = intercepted_tls(&proxy, "api.openai.com", "api.openai.com", b"h2").await;
    let req = Request::head("https://api.anthropic.com/")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let res = h2_request(tls, req).await;
    assert_eq!(res.status(), StatusCode::MISDIRECTED_REQUEST);
    assert_eq!(res.headers()["x-tollgate-reason"], "host-mismatch");
    assert!(res.body().is_empty(), "{:?}", res.body());
    assert!(!res.headers().contains_key("content-length"));
    assert!(upstream.received().is_empty(), "nothing may leave");
}

/// An answer to a HEAD reaches an h2 client as headers only, whatever the upstream sends
/// after them.
#[tokio::test]
async fn a_head_answer_over_h2_has_no_body() {
    let upstream = Upstream::start().await;
    let proxy = ProxySetup::new(&upstream).start().await;
    let tls = intercepted_tls(&proxy, "api.anthropic.com", "api.anthropic.com", b"h2").await;
    let req = Request::head("https://api.anthropic.com/")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let res = h2_request(tls, req).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.body().is_empty(), "{:?}", res.body());
    assert_eq!(upstream.received()[0].method, "HEAD");
}

#[tokio::test]
async fn http1_host_header_for_another_host_inside_a_tunnel_is_refused() {
    let upstream = Upstream::start().await;
    let proxy = ProxySetup::new(&upstream).start().await;
    let tls = intercepted_tls(&proxy, "api.openai.com", "api.openai.com", b"http/1.1").await;
    let req = Request::post("/v1/chat/completions")
        .header("host", "api.anthropic.com")
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    let res = h1_request(tls, req).await;
    assert_eq!(res.status(), StatusCode::MISDIRECTED_REQUEST);
    assert!(upstream.received().is_empty());
}

#[tokio::test]
async fn tls_name_for_another_host_is_refused_at_the_handshake_without_a_leaf() {
    let upstream = Upstream::start().await;
    let proxy = ProxySetup::new(&upstream).start().await;
    // api.anthropic.com is intercepted too, so a leaf for it would verify: the handshake can only
    // fail because none was minted for the name in the hello.
    let io = connect(proxy.addr(), "api.openai.com:443", &[])
        .await
        .open();
    let handshake = tokio::time::timeout(
        Duration::from_secs(10),
        try_tls_over(io, "api.anthropic.com", &proxy.ca_pem(), &[b"http/1.1"]),
    )
    .await
    .expect("the handshake ends promptly");
    assert!(handshake.is_err(), "a hello naming another host got a leaf");
    assert!(upstream.received().is_empty());
}

#[tokio::test]
async fn tls_name_matching_the_connect_host_in_another_case_is_accepted() {
    let upstream = Upstream::start().await;
    let proxy = ProxySetup::new(&upstream).start().await;
    let tls = intercepted_tls(&proxy, "api.openai.com", "API.OpenAI.com", b"http/1.1").await;
    let req = Request::get("/v1/models")
        .header("host", "api.openai.com")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let res = h1_request(tls, req).await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn sse_first_event_reaches_the_client_while_the_upstream_is_still_sending() {
    let upstream = Upstream::start().await;
    let proxy = ProxySetup::new(&upstream).start().await;
    let res = client(&proxy)
        .post("https://api.openai.com/test/gated-sse")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let mut stream = res.bytes_stream();
    // The upstream holds every later event until released, so this first chunk can only arrive
    // if the proxy passes events on as they come.
    let first = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("first event must arrive before the upstream finishes")
        .unwrap()
        .unwrap();
    assert_eq!(first, "data: {\"n\":1}\n\n");
    upstream.release();
    let mut rest = Vec::new();
    while let Some(chunk) = stream.next().await {
        rest.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(
        String::from_utf8(rest).unwrap(),
        "data: {\"n\":2}\n\ndata: {\"n\":3}\n\ndata: [DONE]\n\n"
    );
}

#[tokio::test]
async fn openai_and_anthropic_streams_pass_intact() {
    let upstream = Upstream::start().await;
    let proxy = ProxySetup::new(&upstream).start().await;
    let client = client(&proxy);
    let openai = client
        .post("https://api.openai.com/v1/chat/completions")
        .body(r#"{"model":"gpt-4o","stream":true,"messages":[]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(openai.headers()["content-type"], "text/event-stream");
    let text = openai.text().await.unwrap();
    assert!(
        text.contains(r#""content":" upstream""#) && text.ends_with("data: [DONE]\n\n"),
        "{text}"
    );

    let anthropic = client
        .post("https://api.anthropic.com/v1/messages")
        .body(r#"{"model":"claude","stream":true,"messages":[]}"#)
        .send()
        .await
        .unwrap();
    let text = anthropic.text().await.unwrap();
    assert!(
        text.contains("Hello from Claude") && text.contains("event: message_stop"),
        "{text}"
    );
}

#[tokio::test]
async fn hop_by_hop_and_proxy_headers_are_stripped() {
    let upstream = Upstream::start().await;
    let proxy = ProxySetup::new(&upstream).start().await;

    // Inside an intercepted tunnel.
    let tls = intercepted_tls(&proxy, "api.openai.com", "api.openai.com", b"http/1.1").await;
    let req = Request::post("/v1/chat/completions")
        .header("host", "api.openai.com")
        .header("connection", "keep-alive, x-hop")
        .header("x-hop", "per-connection")
        .header("keep-alive", "timeout=5")
        .header("proxy-authorization", "Basic dXNlcjpzZWNyZXQ=")
        .header("proxy-connection", "keep-alive")
        .header("te", "trailers")
        .header("x-end-to-end", "kept")
        .body(Full::new(Bytes::from(CHAT)))
        .unwrap();
    let res = h1_request(tls, req).await;
    assert_eq!(res.status(), 200);

    // A plain-HTTP proxy request to a tunneled host, with Basic proxy credentials.
    let plain = reqwest::Client::builder()
        .proxy(reqwest::Proxy::http(format!("http://user:secret@{}", proxy.addr())).unwrap())
        .build()
        .unwrap()
        .get("http://tunneled.example/plain")
        .header("x-end-to-end", "kept")
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 200);

    let received = upstream.received();
    assert_eq!(received.len(), 2);
    for r in &received {
        for name in [
            "x-hop",
            "keep-alive",
            "proxy-authorization",
            "proxy-connection",
            "te",
        ] {
            assert!(
                !r.headers.contains_key(name),
                "{name} reached the upstream on {}",
                r.path
            );
        }
        assert_eq!(r.headers["x-end-to-end"], "kept");
    }
    assert!(!received[1].tls);
}

#[tokio::test]
async fn plain_http_to_an_llm_host_is_refused() {
    let upstream = Upstream::start().await;
    let proxy = ProxySetup::new(&upstream).start().await;
    let res = reqwest::Client::builder()
        .proxy(reqwest::Proxy::http(proxy.url()).unwrap())
        .build()
        .unwrap()
        .post("http://api.openai.com/v1/chat/completions")
        .body(CHAT)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(res.headers()["x-tollgate-reason"], "plaintext-to-provider");
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "plaintext_to_provider");
    assert!(upstream.received().is_empty());
}

#[tokio::test]
async fn websocket_upgrade_on_an_intercepted_host_is_refused_at_once() {
    let upstream = Upstream::start().await;
    let proxy = ProxySetup::new(&upstream).start().await;
    let tls = intercepted_tls(&proxy, "api.openai.com", "api.openai.com", b"http/1.1").await;
    let req = Request::get("/v1/responses")
        .header("host", "api.openai.com")
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let res = h1_request(tls, req).await;
    assert_eq!(res.status(), StatusCode::UPGRADE_REQUIRED);
    assert_eq!(res.headers()["x-tollgate-reason"], "websocket-refused");
    assert_eq!(json(res.body())["error"]["code"], "websocket_refused");
    assert!(upstream.received().is_empty());
}

#[tokio::test]
async fn non_tls_bytes_in_an_intercepted_tunnel_never_reach_any_upstream() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // An intercepted host that resolves, with a listener behind it: hudsucker's own passthrough
    // for unrecognised bytes would connect straight to it.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let proxy = ProxySetup::bare()
        .catalog("providers:\n  - id: local\n    hosts: [localhost]\n")
        .policy("hosts:\n  allow_internal: [localhost]\n")
        .start()
        .await;
    let mut io = connect(proxy.addr(), &format!("localhost:{port}"), &[])
        .await
        .open();
    io.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\nsecret payload")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), io.read_to_end(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "the tunnel must close: {read:?}"
    );
    let accepted = tokio::time::timeout(Duration::from_millis(300), listener.accept()).await;
    assert!(accepted.is_err(), "the bytes were spliced to the host");
}

fn short(header_read: u64, body_idle: u64) -> tollgate::config::Timeouts {
    tollgate::config::Timeouts {
        header_read: Duration::from_secs(header_read),
        body_idle: Duration::from_secs(body_idle),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_stream_that_falls_silent_is_cut_after_the_idle_timeout() {
    let upstream = Upstream::start().await;
    let proxy = ProxySetup::new(&upstream)
        .timeouts(short(30, 1))
        .start()
        .await;
    let res = client(&proxy)
        .post("https://api.openai.com/test/gated-sse")
        .body("{}")
        .send()
        .await
        .unwrap();
    let mut stream = res.bytes_stream();
    assert_eq!(stream.next().await.unwrap().unwrap(), "data: {\"n\":1}\n\n");
    // The upstream never sends the rest: the proxy must end the stream with an error.
    let next = tokio::time::timeout(Duration::from_secs(20), stream.next())
        .await
        .expect("the proxy must cut a silent stream");
    assert!(matches!(next, Some(Err(_)) | None), "{next:?}");
}

#[tokio::test]
async fn an_upstream_that_never_answers_gets_a_504_at_the_response_header_deadline_and_a_record() {
    let upstream = Upstream::start().await;
    let proxy = ProxySetup::new(&upstream)
        .timeouts(tollgate::config::Timeouts {
            response_header: Duration::from_secs(1),
            ..Default::default()
        })
        .start()
        .await;
    let res = tokio::time::timeout(
        Duration::from_secs(20),
        client(&proxy)
            .post("https://api.openai.com/test/silent")
            .body("{}")
            .send(),
    )
    .await
    .expect("the proxy must answer when the upstream does not")
    .unwrap();
    assert_eq!(res.status(), 504);
    assert_eq!(res.headers()["x-tollgate-reason"], "upstream-timeout");
    assert_eq!(res.headers()["x-tollgate-rule"], "timeouts.response_header");
    let body = res.text().await.unwrap();
    assert!(body.contains("no response within 1s"), "{body}");
    let (store, _dir) = proxy.stop_and_open_store().await;
    let records = store.all().unwrap();
    assert!(
        records
            .iter()
            .any(|(_, r)| r.path.as_deref() == Some("/test/silent")
                && r.outcome == "upstream-timeout"),
        "{records:?}"
    );
}

#[tokio::test]
async fn a_json_answer_that_stalls_while_read_for_restoring_is_cut_at_the_idle_deadline() {
    let upstream = Upstream::start().await;
    let proxy = ProxySetup::new(&upstream)
        .timeouts(short(30, 1))
        .start()
        .await;
    // A secret in the request makes the answer one that is read whole to restore it.
    let res = tokio::time::timeout(
        Duration::from_secs(20),
        client(&proxy)
            .post("https://api.openai.com/test/stalled-json")
            .header("content-type", "application/json")
            .body(
                serde_json::json!({"messages": [{"role": "user", "content": "key ghp_aB3cD4eF5gH6iJ7kL8mN9oP0qR1sT2uVwXyZ"}]})
                    .to_string(),
            )
            .send(),
    )
    .await
    .expect("the proxy must give up on a stalled answer")
    .unwrap();
    assert_eq!(res.status(), 504);
    assert_eq!(res.headers()["x-tollgate-reason"], "upstream-timeout");
    assert_eq!(res.headers()["x-tollgate-rule"], "timeouts.body_idle");
}

#[tokio::test]
async fn a_request_body_that_stops_arriving_while_read_for_masking_gets_a_408() {
    let upstream = Upstream::start().await;
    let proxy = ProxySetup::new(&upstream)
        .timeouts(short(30, 1))
        .start()
        .await;
    let first = futures_util::stream::once(async {
        Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"{\"messages\": ["))
    });
    let body = reqwest::Body::wrap_stream(first.chain(futures_util::stream::pending()));
    let res = tokio::time::timeout(
        Duration::from_secs(20),
        client(&proxy)
            .post("https://api.openai.com/v1/chat/completions")
            .header("content-type", "application/json")
            .body(body)
            .send(),
    )
    .await
    .expect("the proxy must give up on a stalled request body")
    .unwrap();
    assert_eq!(res.status(), 408);
    assert_eq!(res.headers()["x-tollgate-reason"], "request-timeout");
    assert!(upstream.received().is_empty(), "nothing may leave");
}

#[tokio::test]
async fn a_client_that_never_finishes_its_request_head_is_disconnected() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let upstream = Upstream::start().await;
    let proxy = ProxySetup::new(&upstream)
        .timeouts(short(1, 300))
        .start()
        .await;
    let mut tcp = tokio::net::TcpStream::connect(proxy.addr()).await.unwrap();
    tcp.write_all(b"CONNECT api.openai.com:443 HTTP/1.1\r\nHost: api.op")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), tcp.read_to_end(&mut buf))
        .await
        .expect("the proxy must hang up on a slow request head");
    assert!(
        read.is_err() || buf.is_empty() || buf.starts_with(b"HTTP/1.1 408"),
        "{buf:?}"
    );
}

#[tokio::test]
async fn ten_megabyte_bodies_pass_intact_both_ways() {
    let upstream = Upstream::start().await;
    let proxy = ProxySetup::new(&upstream).start().await;
    let client = client(&proxy);
    // Requests to LLM hosts are inspected, so they must be text: a 10 MB JSON document.
    let line = "fn main() { println!(\"a line of a large source file, ünïcödé\"); }\n";
    let text = line.repeat(10 * 1024 * 1024 / line.len() + 1);
    let request = serde_json::json!({"model": "m", "input": text})
        .to_string()
        .into_bytes();
    assert!(request.len() > 10 * 1024 * 1024);

    let res = client
        .post("https://api.openai.com/test/echo")
        .header("content-type", "application/json")
        .body(request.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let echoed = res.bytes().await.unwrap();
    assert!(
        echoed == request,
        "echoed body differs ({} bytes)",
        echoed.len()
    );
    assert!(
        upstream.received()[0].body == request,
        "upstream got a different body"
    );

    // Responses may be anything, binary included.
    let big = upstream::pattern(10 * 1024 * 1024 + 17);
    let res = client
        .get(format!("https://api.openai.com/test/big?n={}", big.len()))
        .send()
        .await
        .unwrap();
    assert!(res.bytes().await.unwrap() == big);
}

#[tokio::test]
async fn upstream_with_an_untrusted_certificate_is_refused() {
    let upstream = Upstream::start_with(UpstreamOptions {
        untrusted_cert: true,
        ..Default::default()
    })
    .await;
    let proxy = ProxySetup::new(&upstream).start().await;
    let res = client(&proxy)
        .post("https://api.anthropic.com/v1/messages")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(res.headers()["x-tollgate-reason"], "upstream-tls");
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["type"], "error", "Anthropic's error shape");
    assert!(upstream.received().is_empty());
}

#[tokio::test]
async fn unreachable_upstream_gets_a_readable_502() {
    // Bound but not listening: the port stays ours (no other test can take it) and refuses.
    let closed = tokio::net::TcpSocket::new_v4().unwrap();
    closed.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = closed.local_addr().unwrap().port();
    // Only generativelanguage.googleapis.com is sent anywhere: to a closed port.
    let proxy = ProxySetup::bare()
        .connect_to(&format!(
            "generativelanguage.googleapis.com:443:127.0.0.1:{port}"
        ))
        .start()
        .await;
    let res = client(&proxy)
        .post("https://generativelanguage.googleapis.com/v1beta/models/gemini:generateContent")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(res.headers()["x-tollgate-reason"], "upstream-unreachable");
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], 502, "Google's error shape");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cannot connect")
    );

    // A tunneled host that cannot be reached is refused before the tunnel opens.
    let proxy = ProxySetup::bare()
        .connect_to(&format!("tunneled.example:443:127.0.0.1:{port}"))
        .start()
        .await;
    let (status, headers, _) = connect(proxy.addr(), "tunneled.example:443", &[])
        .await
        .refused();
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(headers["x-tollgate-reason"], "upstream-unreachable");
}

#[tokio::test]
async fn upstream_connections_are_reused_across_tunnels() {
    let upstream = Upstream::start().await;
    let proxy = ProxySetup::new(&upstream).start().await;
    // A fresh client per request: a new CONNECT each time, like Claude Code.
    for _ in 0..3 {
        let res = client(&proxy)
            .post("https://api.anthropic.com/v1/messages")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        res.text().await.unwrap();
    }
    assert_eq!(upstream.received().len(), 3);
    assert_eq!(
        upstream.tls_connections(),
        1,
        "one pooled upstream connection serves every tunnel"
    );
}

#[tokio::test]
async fn shutdown_lets_running_streams_finish_and_refuses_new_work() {
    let upstream = Upstream::start().await;
    let proxy = ProxySetup::new(&upstream).start().await;
    let addr = proxy.addr();
    let client = client(&proxy);
    let res = client
        .post("https://api.openai.com/test/gated-sse")
        .body("{}")
        .send()
        .await
        .unwrap();
    let mut stream = res.bytes_stream();
    stream.next().await.unwrap().unwrap();

    let TestProxy {
        proxy, dir: _dir, ..
    } = proxy;
    let shutdown = tokio::spawn(proxy.shutdown());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!shutdown.is_finished(), "a stream is still running");
    // No new connections once draining (the listener closes as soon as the signal is seen).
    eventually(
        Duration::from_secs(10),
        Duration::from_millis(20),
        "still accepting",
        async || {
            tokio::net::TcpStream::connect(addr)
                .await
                .is_err()
                .then_some(())
        },
    )
    .await;
    assert!(!shutdown.is_finished(), "a stream is still running");

    upstream.release();
    let mut rest = Vec::new();
    while let Some(chunk) = stream.next().await {
        rest.extend_from_slice(&chunk.unwrap());
    }
    assert!(
        String::from_utf8(rest)
            .unwrap()
            .ends_with("data: [DONE]\n\n")
    );
    let report = tokio::time::timeout(Duration::from_secs(10), shutdown)
        .await
        .unwrap()
        .unwrap();
    assert!(report.drained);
}

#[tokio::test]
async fn shutdown_waits_for_an_exchange_whose_answer_has_not_begun() {
    let upstream = Upstream::start().await;
    let proxy = ProxySetup::new(&upstream).start().await;
    let client = client(&proxy);
    let request = tokio::spawn(async move {
        let res = client
            .post("https://api.openai.com/test/gated-json")
            .body("{}")
            .send()
            .await
            .unwrap();
        (res.status(), res.text().await.unwrap())
    });
    eventually(
        Duration::from_secs(10),
        Duration::from_millis(10),
        "the request never arrived",
        async || (!upstream.received().is_empty()).then_some(()),
    )
    .await;
    let db = proxy.db_path();
    let TestProxy {
        proxy, dir: _dir, ..
    } = proxy;
    let shutdown = tokio::spawn(proxy.shutdown());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !shutdown.is_finished(),
        "an exchange waiting on its upstream is still in flight"
    );
    upstream.release();
    let (status, body) = tokio::time::timeout(Duration::from_secs(10), request)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(body, r#"{"ok":true}"#);
    let report = tokio::time::timeout(Duration::from_secs(10), shutdown)
        .await
        .unwrap()
        .unwrap();
    assert!(report.drained);
    let store = tollgate::record::Store::open(&db).unwrap();
    let records = store.all().unwrap();
    assert!(
        records
            .iter()
            .any(|(_, r)| r.path.as_deref() == Some("/test/gated-json") && r.outcome == "complete"),
        "{records:?}"
    );
}
