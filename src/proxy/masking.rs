//! The masking stage of the pipeline and its mirror on the way back: request bodies to
//! intercepted hosts are decoded and masked before they leave; responses have their
//! placeholders restored, JSON bodies whole and SSE streams event by event.

use super::Shared;
use super::refusal::{Reason, Refusal};
use crate::mask::decode::{self, DecodeError};
use crate::mask::restore::{Restorer, SseRestorer};
use crate::mask::{Finding, MaskError, MaskPolicy, Masker, RequestFacts};
use bytes::Bytes;
use http::header::{ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderValue, Request, Response};
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Limited};
use hudsucker::Body;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Largest non-streamed response body restored in memory.
const MAX_RESTORED_RESPONSE: usize = 64 << 20;

/// A request ready to leave.
pub struct MaskedRequest {
    pub req: Request<Body>,
    pub findings: Vec<Finding>,
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
            facts: RequestFacts::default(),
            sent: Bytes::new(),
            original: None,
        });
    }
    let bytes = match Limited::new(body, masking.max_body).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            return Err(Refusal::masking(MaskError::Decode(DecodeError::TooLarge {
                limit: masking.max_body,
            })));
        }
        Err(e) => {
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
            return Err(Refusal::new(
                Reason::SignedBody,
                format!(
                    "the request contains values that must be masked ({}), but its body is signed (AWS SigV4) and a rewritten body would fail the signature; remove them, or use a bearer API key",
                    crate::mask::summarize(&masked.findings)
                ),
            ));
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

/// Restores placeholders in the response of an exchange whose scope has any.
pub async fn restore_response(
    restorer: Restorer,
    res: Response<Body>,
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
    if content_type.starts_with("text/event-stream") && encoded.is_none() {
        let (mut parts, body) = res.into_parts();
        parts.headers.remove(CONTENT_LENGTH);
        let body = RestoringSse {
            inner: body,
            sse: SseRestorer::new(restorer),
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
    let bytes = Limited::new(body, MAX_RESTORED_RESPONSE)
        .collect()
        .await
        .map_err(|e| {
            Refusal::new(
                Reason::UpstreamFailed,
                format!("the response could not be read to restore it: {e}"),
            )
        })?
        .to_bytes();
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

/// An SSE body with placeholders restored as events pass.
struct RestoringSse {
    inner: Body,
    sse: SseRestorer,
    ended: bool,
}

impl HttpBody for RestoringSse {
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
                        let out = this.sse.feed(&data);
                        if !out.is_empty() {
                            return Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))));
                        }
                    }
                    Err(trailers) => return Poll::Ready(Some(Ok(trailers))),
                },
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => {
                    this.ended = true;
                    let out = this.sse.finish();
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
