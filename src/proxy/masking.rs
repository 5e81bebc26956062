//! The masking stage of the pipeline and its mirror on the way back: request bodies to
//! intercepted hosts are decoded and masked before they leave; responses have their
//! placeholders restored, JSON bodies whole and SSE streams event by event.

use super::Shared;
use super::body::ObservedBody;
use super::refusal::{Reason, Refusal};
use crate::mask::decode::{self, DecodeError};
use crate::mask::restore::{EventStreamRestorer, Restorer, SseRestorer, StreamRestore};
use crate::mask::stream_decode::StreamDecoder;
use crate::mask::{Attachment, Finding, MaskError, MaskPolicy, Masker, RequestFacts};
use bytes::Bytes;
use http::header::{ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderValue, Request, Response};
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Limited};
use hudsucker::Body;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// Largest non-streamed response body restored in memory.
const MAX_RESTORED_RESPONSE: usize = 64 << 20;

/// Why a body could not be read whole.
enum Collect {
    TooLarge,
    /// Nothing arrived for `timeouts.body_idle`.
    Idle(Duration),
    Failed(String),
}

/// Reads a body whole, at most `limit` bytes, with no silence longer than `idle` (the deadline
/// streamed bodies get), so a peer that stops mid-body cannot hold the exchange forever.
async fn collect(body: Body, limit: usize, idle: Duration) -> Result<Bytes, Collect> {
    let observed = ObservedBody::wrap(body, idle, Box::new(|_, _| {}));
    match Limited::new(observed, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(Collect::TooLarge)
        }
        Err(e) => match e.downcast_ref::<hudsucker::Error>() {
            Some(hudsucker::Error::Io(io)) if io.kind() == std::io::ErrorKind::TimedOut => {
                Err(Collect::Idle(idle))
            }
            _ => Err(Collect::Failed(e.to_string())),
        },
    }
}

/// A request ready to leave.
pub struct MaskedRequest {
    pub req: Request<Body>,
    pub findings: Vec<Finding>,
    /// Attachments that could not be inspected (media type, size), for the record.
    pub attachments: Vec<Attachment>,
    pub facts: RequestFacts,
    /// The body exactly as it is sent upstream.
    pub sent: Bytes,
    /// The body as the client sent it, when masking changed it.
    pub original: Option<Bytes>,
}

/// Masks the request body. Returns the request to forward and what was found, or the refusal.
pub async fn mask_request(
    shared: &Shared,
    masking: &MaskPolicy,
    scope: &str,
    req: Request<Body>,
) -> Result<MaskedRequest, Refusal> {
    let (mut parts, body) = req.into_parts();
    // Responses come back uncompressed so placeholders can be restored as they stream.
    parts
        .headers
        .insert(ACCEPT_ENCODING, HeaderValue::from_static("identity"));
    if body.is_end_stream() {
        return Ok(MaskedRequest {
            req: Request::from_parts(parts, body),
            findings: Vec::new(),
            attachments: Vec::new(),
            facts: RequestFacts::default(),
            sent: Bytes::new(),
            original: None,
        });
    }
    let bytes = match collect(body, masking.max_body, shared.timeouts.body_idle).await {
        Ok(bytes) => bytes,
        Err(Collect::TooLarge) => {
            return Err(Refusal::masking(MaskError::Decode(DecodeError::TooLarge {
                limit: masking.max_body,
            })));
        }
        Err(Collect::Idle(idle)) => {
            return Err(Refusal::new(
                Reason::RequestTimeout,
                format!(
                    "the request body stopped arriving: nothing for {}s",
                    idle.as_secs()
                ),
            )
            .with_rule("timeouts.body_idle"));
        }
        Err(Collect::Failed(e)) => {
            return Err(Refusal::new(
                Reason::UndecodableBody,
                format!("the request body could not be read: {e}"),
            ));
        }
    };
    let header = |name| {
        parts
            .headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let masker = Masker {
        policy: masking,
        vault: &shared.vault,
        scope,
    };
    let masked = masker
        .mask_body(
            header(CONTENT_TYPE),
            header(CONTENT_ENCODING),
            bytes.clone(),
        )
        .map_err(Refusal::masking)?;
    let original = masked.body.is_some().then(|| bytes.clone());
    let body = match masked.body {
        Some(_) if is_signed(&parts.headers) => {
            let message = if masked.findings.is_empty() {
                "the request body is compressed and signed (AWS SigV4): only the decoded content the proxy inspected may leave, and that would fail the signature; send the body uncompressed".to_owned()
            } else {
                format!(
                    "the request contains values that must be masked ({}), but its body is signed (AWS SigV4) and a rewritten body would fail the signature; remove them, or use a bearer API key",
                    crate::mask::summarize(&masked.findings)
                )
            };
            return Err(Refusal::new(Reason::SignedBody, message));
        }
        Some(new) => {
            parts.headers.remove(CONTENT_ENCODING);
            parts
                .headers
                .insert(CONTENT_LENGTH, HeaderValue::from(new.len()));
            new
        }
        None => bytes,
    };
    Ok(MaskedRequest {
        req: Request::from_parts(parts, Body::from(body.clone())),
        findings: masked.findings,
        attachments: masked.attachments,
        facts: masked.facts,
        sent: body,
        original,
    })
}

/// AWS SigV4 covers the body's hash unless the client declared it unsigned.
fn is_signed(headers: &http::HeaderMap) -> bool {
    let sigv4 = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("AWS4-HMAC-SHA256"));
    let unsigned_payload = headers
        .get("x-amz-content-sha256")
        .is_some_and(|v| v.as_bytes().starts_with(b"UNSIGNED-PAYLOAD"));
    sigv4 && !unsigned_payload
}

/// Restores placeholders in the response of an exchange whose scope has any. Streams (SSE,
/// AWS event streams) are restored as they pass, decompressed on the way when the upstream
/// compressed them anyway; other textual answers are read whole (up to
/// [`MAX_RESTORED_RESPONSE`]) and restored at once.
pub async fn restore_response(
    restorer: Restorer,
    res: Response<Body>,
    idle: Duration,
) -> Result<Response<Body>, Refusal> {
    if !restorer.is_active() {
        return Ok(res);
    }
    let content_type = res
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let encoded = res
        .headers()
        .get(CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.eq_ignore_ascii_case("identity"))
        .map(str::to_owned);
    let streamed: Option<Box<dyn StreamRestore>> = if content_type.starts_with("text/event-stream")
    {
        Some(Box::new(SseRestorer::new(restorer.clone())))
    } else if content_type.starts_with("application/vnd.amazon.eventstream") {
        Some(Box::new(EventStreamRestorer::new(restorer.clone())))
    } else {
        None
    };
    if let Some(stream) = streamed {
        let decoder = match &encoded {
            Some(coding) => StreamDecoder::new(coding, MAX_RESTORED_RESPONSE).map_err(|e| {
                Refusal::new(
                    Reason::UpstreamFailed,
                    format!("the streamed answer is encoded in a way Tollgate cannot read to restore it: {e}"),
                )
            })?,
            None => None,
        };
        let (mut parts, body) = res.into_parts();
        parts.headers.remove(CONTENT_LENGTH);
        parts.headers.remove(CONTENT_ENCODING);
        let body = RestoringStream {
            inner: body,
            decoder,
            stream,
            ended: false,
        };
        return Ok(Response::from_parts(parts, Body::from(BoxBody::new(body))));
    }
    let textual = content_type.is_empty()
        || content_type.contains("json")
        || content_type.starts_with("text/");
    if !textual {
        return Ok(res);
    }
    let (mut parts, body) = res.into_parts();
    let bytes = collect(body, MAX_RESTORED_RESPONSE, idle)
        .await
        .map_err(|e| match e {
            Collect::Idle(idle) => Refusal::new(
                Reason::UpstreamTimeout,
                format!(
                    "the upstream stopped sending its response: nothing for {}s",
                    idle.as_secs()
                ),
            )
            .with_rule("timeouts.body_idle"),
            Collect::TooLarge => Refusal::new(
                Reason::UpstreamFailed,
                format!(
                    "the response is over {} MiB, too large to restore",
                    MAX_RESTORED_RESPONSE >> 20
                ),
            ),
            Collect::Failed(e) => Refusal::new(
                Reason::UpstreamFailed,
                format!("the response could not be read to restore it: {e}"),
            ),
        })?;
    let decoded =
        decode::decode(encoded.as_deref(), bytes, MAX_RESTORED_RESPONSE).map_err(|e| {
            Refusal::new(
                Reason::UpstreamFailed,
                format!("the response could not be decoded to restore it: {e}"),
            )
        })?;
    let restored = std::str::from_utf8(&decoded.bytes).ok().and_then(|text| {
        if content_type.contains("json") {
            restorer.restore_json(text)
        } else {
            restorer.restore_text(text)
        }
    });
    let body = match restored {
        Some(text) => Bytes::from(text),
        None => decoded.bytes,
    };
    parts.headers.remove(CONTENT_ENCODING);
    parts
        .headers
        .insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
    Ok(Response::from_parts(parts, Body::from(body)))
}

/// A streamed body with placeholders restored as it passes (decoded first, if it came encoded).
struct RestoringStream {
    inner: Body,
    decoder: Option<StreamDecoder>,
    stream: Box<dyn StreamRestore>,
    ended: bool,
}

impl RestoringStream {
    fn decoded(&mut self, data: &[u8]) -> Result<Vec<u8>, hudsucker::Error> {
        match &mut self.decoder {
            Some(d) => d.push(data).map_err(decode_failed),
            None => Ok(data.to_vec()),
        }
    }
}

fn decode_failed(e: DecodeError) -> hudsucker::Error {
    hudsucker::Error::Io(std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("the upstream's encoded stream broke: {e}"),
    ))
}

impl HttpBody for RestoringStream {
    type Data = Bytes;
    type Error = hudsucker::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        loop {
            if this.ended {
                return Poll::Ready(None);
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        let decoded = match this.decoded(&data) {
                            Ok(d) => d,
                            Err(e) => {
                                this.ended = true;
                                return Poll::Ready(Some(Err(e)));
                            }
                        };
                        let out = this.stream.feed(&decoded);
                        if !out.is_empty() {
                            return Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))));
                        }
                    }
                    Err(trailers) => return Poll::Ready(Some(Ok(trailers))),
                },
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => {
                    this.ended = true;
                    let mut out = match this.decoder.as_mut().map(StreamDecoder::finish) {
                        Some(Ok(rest)) => this.stream.feed(&rest),
                        Some(Err(e)) => return Poll::Ready(Some(Err(decode_failed(e)))),
                        None => Vec::new(),
                    };
                    out.extend(this.stream.finish());
                    if !out.is_empty() {
                        return Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))));
                    }
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}
