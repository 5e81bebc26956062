//! A fake upstream posing as the LLM hosts: HTTPS (its own test CA, h2 and HTTP/1.1) and plain
//! HTTP on loopback, answering OpenAI chat completions (JSON and SSE), Anthropic messages (SSE),
//! and a few test routes. It records every request exactly as it arrived.

use bytes::Bytes;
use futures_util::{StreamExt, stream};
use http::{HeaderMap, Request, Response, StatusCode, Version};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc};

pub const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

/// The hosts the fake upstream's certificate names.
pub const UPSTREAM_HOSTS: &[&str] = &[
    "api.openai.com",
    "eu.api.openai.com",
    "us.api.openai.com",
    "api.anthropic.com",
    "generativelanguage.googleapis.com",
    "aiplatform.googleapis.com",
    "europe-west4-aiplatform.googleapis.com",
    "us-central1-aiplatform.googleapis.com",
    "bedrock-runtime.eu-central-1.amazonaws.com",
    "bedrock-runtime.us-east-1.amazonaws.com",
    "api.mistral.ai",
    "api.eu.mistral.ai",
    "contoso-eu.openai.azure.com",
    "contoso-us.openai.azure.com",
    "idp.example",
    "tunneled.example",
    "other.example",
];

/// One request as the upstream received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub version: Version,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub tls: bool,
}

/// A scripted model: given the request as it arrived (masked), the answer to send.
pub type ModelFn = Arc<dyn Fn(&Received) -> Answer + Send + Sync>;

/// A scripted answer: headers, and the body in the chunks it is sent in.
pub struct Answer {
    pub content_type: &'static str,
    pub content_encoding: Option<&'static str>,
    pub chunks: Vec<Vec<u8>>,
    /// How long the upstream waits before each chunk (a model generating tokens).
    pub pause: std::time::Duration,
}

impl Answer {
    pub fn json(v: &serde_json::Value) -> Self {
        Self {
            content_type: "application/json",
            content_encoding: None,
            chunks: vec![v.to_string().into_bytes()],
            pause: std::time::Duration::ZERO,
        }
    }

    /// The same answer, with `pause` before each chunk.
    pub fn paced(self, pause: std::time::Duration) -> Self {
        Self { pause, ..self }
    }

    /// SSE events (each already `event:`/`data:` lines without the blank line), sent one
    /// chunk per event.
    pub fn sse(events: Vec<String>) -> Self {
        Self {
            content_type: "text/event-stream",
            content_encoding: None,
            chunks: events
                .into_iter()
                .map(|e| format!("{e}\n\n").into_bytes())
                .collect(),
            pause: std::time::Duration::ZERO,
        }
    }
}

struct State {
    model: Mutex<Option<ModelFn>>,
    received: Mutex<Vec<Received>>,
    tls_connections: AtomicUsize,
    gate: Semaphore,
    /// What `/test/jwks` serves (an identity provider's keys), and how often it was asked.
    jwks: Mutex<String>,
    jwks_fetches: AtomicUsize,
    /// What `/test/token` answers (an identity provider's token endpoint), and the forms it got.
    token: Mutex<String>,
    token_forms: Mutex<Vec<String>>,
}

pub struct Upstream {
    pub tls_addr: SocketAddr,
    pub http_addr: SocketAddr,
    state: Arc<State>,
}

#[derive(Clone, Copy, Default)]
pub struct UpstreamOptions {
    pub h1_only: bool,
    /// Present the self-signed certificate nobody trusts.
    pub untrusted_cert: bool,
}

impl Upstream {
    pub async fn start() -> Self {
        Self::start_with(UpstreamOptions::default()).await
    }

    pub async fn start_with(options: UpstreamOptions) -> Self {
        let state = Arc::new(State {
            model: Mutex::new(None),
            received: Mutex::new(Vec::new()),
            tls_connections: AtomicUsize::new(0),
            gate: Semaphore::new(0),
            jwks: Mutex::new(String::from(r#"{"keys":[]}"#)),
            jwks_fetches: AtomicUsize::new(0),
            token: Mutex::new(String::from(r#"{"error":"invalid_grant"}"#)),
            token_forms: Mutex::new(Vec::new()),
        });
        let (cert, key) = if options.untrusted_cert {
            ("untrusted.crt", "untrusted.key")
        } else {
            ("upstream.crt", "upstream.key")
        };
        let certs = CertificateDer::pem_file_iter(format!("{FIXTURES}/{cert}"))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(format!("{FIXTURES}/{key}")).unwrap();
        let mut config = rustls::ServerConfig::builder_with_provider(tollgate::tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        config.alpn_protocols = if options.h1_only {
            vec![b"http/1.1".to_vec()]
        } else {
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        };
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));

        let tls_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let http_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let tls_addr = tls_listener.local_addr().unwrap();
        let http_addr = http_listener.local_addr().unwrap();

        let tls_state = state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = tls_listener.accept().await else {
                    continue;
                };
                let _ = tcp.set_nodelay(true);
                let acceptor = acceptor.clone();
                let state = tls_state.clone();
                tokio::spawn(async move {
                    if let Ok(tls) = acceptor.accept(tcp).await {
                        state.tls_connections.fetch_add(1, Ordering::SeqCst);
                        serve(TokioIo::new(tls), state, true).await;
                    }
                });
            }
        });
        let http_state = state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = http_listener.accept().await else {
                    continue;
                };
                let _ = tcp.set_nodelay(true);
                tokio::spawn(serve(TokioIo::new(tcp), http_state.clone(), false));
            }
        });
        Self {
            tls_addr,
            http_addr,
            state,
        }
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    /// TLS connections accepted so far.
    pub fn tls_connections(&self) -> usize {
        self.state.tls_connections.load(Ordering::SeqCst)
    }

    /// Sets the JWKS `/test/jwks` serves.
    pub fn set_jwks(&self, jwks: &str) {
        *self.state.jwks.lock().unwrap() = jwks.to_owned();
    }

    /// Sets what the token endpoint `/test/token` answers.
    pub fn set_token_answer(&self, json: &str) {
        *self.state.token.lock().unwrap() = json.to_owned();
    }

    /// The forms posted to `/test/token`.
    pub fn token_forms(&self) -> Vec<String> {
        self.state.token_forms.lock().unwrap().clone()
    }

    /// How many times `/test/jwks` was fetched.
    pub fn jwks_fetches(&self) -> usize {
        self.state.jwks_fetches.load(Ordering::SeqCst)
    }

    /// Answers requests carrying `x-test-model` with `model`.
    pub fn set_model(&self, model: impl Fn(&Received) -> Answer + Send + Sync + 'static) {
        *self.state.model.lock().unwrap() = Some(Arc::new(model));
    }

    /// Lets one held stream (`/test/gated-sse`) send the rest of its events.
    pub fn release(&self) {
        self.state.gate.add_permits(1);
    }
}

async fn serve<I>(io: I, state: Arc<State>, tls: bool)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = service_fn(move |req| route(state.clone(), req, tls));
    let _ = auto::Builder::new(TokioExecutor::new())
        .serve_connection(io, service)
        .await;
}

type Out = BoxBody<Bytes, Infallible>;

fn full(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Out> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(body.into()).boxed())
        .unwrap()
}

/// An SSE response fed by a channel, so the route controls when each event leaves.
fn sse(rx: mpsc::Receiver<Bytes>) -> Response<Out> {
    let events = stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
    });
    Response::builder()
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache")
        .body(BodyExt::boxed(StreamBody::new(events)))
        .unwrap()
}

async fn route(
    state: Arc<State>,
    req: Request<Incoming>,
    tls: bool,
) -> Result<Response<Out>, Infallible> {
    let (parts, body) = req.into_parts();
    if parts.uri.path() == "/test/jwks" {
        // The identity provider's keys: not an LLM request, so not in `received`.
        state.jwks_fetches.fetch_add(1, Ordering::SeqCst);
        let jwks = state.jwks.lock().unwrap().clone();
        return Ok(full(StatusCode::OK, "application/json", jwks));
    }
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    if parts.uri.path() == "/test/token" {
        // The identity provider's token endpoint: not an LLM request either.
        let form = String::from_utf8_lossy(&body).into_owned();
        state.token_forms.lock().unwrap().push(form);
        let token = state.token.lock().unwrap().clone();
        return Ok(full(StatusCode::OK, "application/json", token));
    }
    let received = Received {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        version: parts.version,
        headers: parts.headers.clone(),
        body: body.clone(),
        tls,
    };
    state.received.lock().unwrap().push(received.clone());
    let model = state.model.lock().unwrap().clone();
    if let Some(model) = model.filter(|_| parts.headers.contains_key("x-test-model")) {
        let answer = model(&received);
        let pause = answer.pause;
        let chunks = stream::iter(answer.chunks).then(move |c| async move {
            if !pause.is_zero() {
                tokio::time::sleep(pause).await;
            }
            Ok::<_, Infallible>(Frame::data(Bytes::from(c)))
        });
        let mut res = Response::builder().header("content-type", answer.content_type);
        if let Some(enc) = answer.content_encoding {
            res = res.header("content-encoding", enc);
        }
        return Ok(res.body(BodyExt::boxed(StreamBody::new(chunks))).unwrap());
    }
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    if parts.headers.contains_key("x-test-echo") {
        return Ok(echo(parts.uri.path(), &json));
    }
    let response = match parts.uri.path() {
        "/v1/chat/completions" if json["stream"] == true => {
            let (tx, rx) = mpsc::channel(16);
            tokio::spawn(async move {
                for word in ["Hello", " from", " upstream"] {
                    let event = serde_json::json!({
                        "id": "chatcmpl-1", "object": "chat.completion.chunk",
                        "choices": [{"index": 0, "delta": {"content": word}}]
                    });
                    let _ = tx.send(Bytes::from(format!("data: {event}\n\n"))).await;
                }
                let _ = tx.send(Bytes::from_static(b"data: [DONE]\n\n")).await;
            });
            sse(rx)
        }
        "/v1/chat/completions" => full(
            StatusCode::OK,
            "application/json",
            serde_json::json!({
                "id": "chatcmpl-1", "object": "chat.completion",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello from upstream"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
            })
            .to_string(),
        ),
        "/v1/messages" => {
            let (tx, rx) = mpsc::channel(16);
            tokio::spawn(async move {
                let events = [
                    ("message_start", serde_json::json!({"type": "message_start", "message": {"id": "msg_1", "role": "assistant", "content": []}})),
                    ("content_block_start", serde_json::json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})),
                    ("content_block_delta", serde_json::json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello from Claude"}})),
                    ("content_block_stop", serde_json::json!({"type": "content_block_stop", "index": 0})),
                    ("message_stop", serde_json::json!({"type": "message_stop"})),
                ];
                for (name, data) in events {
                    let _ = tx
                        .send(Bytes::from(format!("event: {name}\ndata: {data}\n\n")))
                        .await;
                }
            });
            sse(rx)
        }
        "/test/gated-sse" => {
            let (tx, rx) = mpsc::channel(16);
            tokio::spawn(async move {
                let _ = tx.send(Bytes::from_static(b"data: {\"n\":1}\n\n")).await;
                // Hold the rest until the test has seen the first event.
                state.gate.acquire().await.unwrap().forget();
                for n in 2..=3 {
                    let _ = tx.send(Bytes::from(format!("data: {{\"n\":{n}}}\n\n"))).await;
                }
                let _ = tx.send(Bytes::from_static(b"data: [DONE]\n\n")).await;
            });
            sse(rx)
        }
        // Holds the whole answer (headers included) until the test releases it.
        "/test/gated-json" => {
            state.gate.acquire().await.unwrap().forget();
            full(StatusCode::OK, "application/json", r#"{"ok":true}"#)
        }
        "/test/echo" => full(StatusCode::OK, "application/octet-stream", body),
        // Takes the request and never answers.
        "/test/silent" => std::future::pending().await,
        // Sends the start of a JSON answer, then falls silent with the connection open.
        "/test/stalled-json" => {
            let (tx, rx) = mpsc::channel(1);
            tokio::spawn(async move {
                let _ = tx.send(Bytes::from_static(b"{\"choices\": [")).await;
                std::future::pending::<()>().await;
                drop(tx);
            });
            let mut res = sse(rx);
            res.headers_mut()
                .insert("content-type", "application/json".parse().unwrap());
            res
        }
        "/test/big" => {
            let n: usize = parts
                .uri
                .query()
                .and_then(|q| q.strip_prefix("n="))
                .and_then(|n| n.parse().ok())
                .unwrap_or(1024);
            full(StatusCode::OK, "application/octet-stream", pattern(n))
        }
        _ => full(
            StatusCode::OK,
            "application/json",
            serde_json::json!({"path": parts.uri.path()}).to_string(),
        ),
    };
    Ok(response)
}

/// Deterministic bytes for size tests.
pub fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

/// Pieces of 3 characters: every placeholder in an echo is split across events.
fn pieces(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    chars.chunks(3).map(|c| c.iter().collect()).collect()
}

fn sse_now(events: Vec<String>) -> Response<Out> {
    let (tx, rx) = mpsc::channel(events.len().max(1));
    for e in events {
        tx.try_send(Bytes::from(e)).unwrap();
    }
    sse(rx)
}

/// Answers with the text the upstream received, in the API's own shape, streamed in small
/// pieces when asked to stream: what the model would say back if it repeated the prompt.
fn echo(path: &str, json: &serde_json::Value) -> Response<Out> {
    use serde_json::json;
    let last = |v: &serde_json::Value| {
        v.as_array()
            .and_then(|a| a.last())
            .cloned()
            .unwrap_or_default()
    };
    let stream = json["stream"] == true || path.contains("stream");
    match path {
        "/v1/chat/completions" => {
            let text = last(&json["messages"])["content"]
                .as_str()
                .unwrap_or("")
                .to_owned();
            let args = json!({"command": text}).to_string();
            if !stream {
                return full(StatusCode::OK, "application/json", json!({
                    "id": "c", "object": "chat.completion",
                    "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text,
                        "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "bash", "arguments": args}}]}}]
                }).to_string());
            }
            let mut events: Vec<String> = pieces(&text)
                .into_iter()
                .map(|p| {
                    format!(
                        "data: {}\n\n",
                        json!({"choices": [{"index": 0, "delta": {"content": p}}]})
                    )
                })
                .collect();
            events.extend(pieces(&args).into_iter().map(|p| format!("data: {}\n\n", json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": p}}]}}]}))));
            events.push(format!(
                "data: {}\n\n",
                json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
            ));
            events.push("data: [DONE]\n\n".into());
            sse_now(events)
        }
        "/v1/messages" if !stream => {
            let text = last(&json["messages"])["content"]
                .as_str()
                .unwrap_or("")
                .to_owned();
            full(StatusCode::OK, "application/json", json!({
                "id": "msg_1", "type": "message", "role": "assistant", "model": "claude",
                "content": [{"type": "text", "text": text}, {"type": "tool_use", "id": "tu", "name": "bash", "input": {"command": text}}],
                "usage": {"input_tokens": 3, "output_tokens": 5}
            }).to_string())
        }
        "/v1/responses" if !stream => {
            let text = json["input"].as_str().unwrap_or("").to_owned();
            full(StatusCode::OK, "application/json", json!({
                "id": "resp_1", "object": "response", "status": "completed",
                "output": [{"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": text}]},
                           {"type": "function_call", "name": "bash", "arguments": json!({"command": text}).to_string()}]
            }).to_string())
        }
        p if p.contains(":generateContent") => {
            let text = last(&json["contents"])["parts"][0]["text"]
                .as_str()
                .unwrap_or("")
                .to_owned();
            full(StatusCode::OK, "application/json", json!({
                "candidates": [{"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": "STOP"}]
            }).to_string())
        }
        "/v1/messages" => {
            let text = last(&json["messages"])["content"]
                .as_str()
                .unwrap_or("")
                .to_owned();
            let input = json!({"command": text}).to_string();
            let ev =
                |name: &str, data: serde_json::Value| format!("event: {name}\ndata: {data}\n\n");
            let mut events = vec![
                ev(
                    "message_start",
                    json!({"type": "message_start", "message": {"id": "msg_01T", "role": "assistant", "content": [], "model": "claude-T"}}),
                ),
                ev(
                    "content_block_start",
                    json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
                ),
            ];
            for p in pieces(&text) {
                events.push(ev("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}})));
                events.push(ev("ping", json!({"type": "ping"})));
            }
            events.push(ev(
                "content_block_stop",
                json!({"type": "content_block_stop", "index": 0}),
            ));
            events.push(ev("content_block_start", json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "tu", "name": "bash", "input": {}}})));
            for p in pieces(&input) {
                events.push(ev("content_block_delta", json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": p}})));
            }
            events.push(ev(
                "content_block_stop",
                json!({"type": "content_block_stop", "index": 1}),
            ));
            events.push(ev("message_stop", json!({"type": "message_stop"})));
            sse_now(events)
        }
        "/v1/responses" => {
            let text = json["input"].as_str().unwrap_or("").to_owned();
            let ev = |data: serde_json::Value| {
                format!(
                    "event: {}\ndata: {data}\n\n",
                    data["type"].as_str().unwrap()
                )
            };
            let mut events: Vec<String> = pieces(&text).into_iter().map(|p| ev(json!({"type": "response.output_text.delta", "item_id": "msg_1", "output_index": 0, "content_index": 0, "delta": p}))).collect();
            events.push(ev(json!({"type": "response.output_text.done", "item_id": "msg_1", "output_index": 0, "content_index": 0, "text": text})));
            events.push(ev(json!({"type": "response.completed", "response": {"id": "resp_1", "status": "completed"}})));
            sse_now(events)
        }
        p if p.contains(":streamGenerateContent") => {
            let text = last(&json["contents"])["parts"][0]["text"]
                .as_str()
                .unwrap_or("")
                .to_owned();
            let mut events: Vec<String> = pieces(&text).into_iter().map(|p| format!("data: {}\r\n\r\n", json!({"candidates": [{"content": {"role": "model", "parts": [{"text": p}]}, "index": 0}]}))).collect();
            events.push(format!("data: {}\r\n\r\n", json!({"candidates": [{"content": {"role": "model", "parts": [{"text": ""}]}, "finishReason": "STOP", "index": 0}]})));
            sse_now(events)
        }
        _ => full(
            StatusCode::OK,
            "application/json",
            json!({"echo": json}).to_string(),
        ),
    }
}
