//! A body wrapper that passes every frame on as soon as it arrives (nothing is buffered), cuts the
//! stream after too long a silence, and reports how the exchange ended, also when the client
//! went away (hyper drops a body it stops polling).

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::combinators::BoxBody;
use hudsucker::Body;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// How a body stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Complete,
    /// The peer we read from sent an error or reset.
    SourceFailed,
    /// Nothing arrived within the idle timeout.
    IdleTimeout,
    /// The reader (the client, for a response) stopped before the end.
    Abandoned,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Complete => "complete",
            Outcome::SourceFailed => "upstream-error",
            Outcome::IdleTimeout => "idle-timeout",
            Outcome::Abandoned => "client-gone",
        }
    }
}

/// Called once when the body ends, with the outcome and the bytes that passed.
pub type OnEnd = Box<dyn FnOnce(Outcome, u64) + Send + Sync>;

pub struct ObservedBody {
    inner: Body,
    idle: Duration,
    sleep: Pin<Box<Sleep>>,
    bytes: u64,
    on_end: Option<OnEnd>,
}

impl ObservedBody {
    /// Wraps `inner` and returns it as a hudsucker body.
    pub fn wrap(inner: Body, idle: Duration, on_end: OnEnd) -> Body {
        let observed = ObservedBody {
            inner,
            idle,
            sleep: Box::pin(tokio::time::sleep(idle)),
            bytes: 0,
            on_end: Some(on_end),
        };
        Body::from(BoxBody::new(observed))
    }

    fn finish(&mut self, outcome: Outcome) {
        if let Some(on_end) = self.on_end.take() {
            on_end(outcome, self.bytes);
        }
    }
}

impl HttpBody for ObservedBody {
    type Data = Bytes;
    type Error = hudsucker::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.bytes += data.len() as u64;
                }
                let deadline = Instant::now() + this.idle;
                this.sleep.as_mut().reset(deadline);
                if this.inner.is_end_stream() {
                    this.finish(Outcome::Complete);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.finish(Outcome::SourceFailed);
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                this.finish(Outcome::Complete);
                Poll::Ready(None)
            }
            Poll::Pending => {
                if this.sleep.as_mut().poll(cx).is_ready() {
                    this.finish(Outcome::IdleTimeout);
                    let err = std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("no data for {}s", this.idle.as_secs()),
                    );
                    return Poll::Ready(Some(Err(hudsucker::Error::Io(err))));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for ObservedBody {
    fn drop(&mut self) {
        let outcome = if self.inner.is_end_stream() {
            Outcome::Complete
        } else {
            Outcome::Abandoned
        };
        self.finish(outcome);
    }
}

/// The upstream's response body as it passed, kept for the audit record (up to a cap).
#[derive(Default)]
pub struct Capture {
    buf: std::sync::Mutex<Vec<u8>>,
}

/// Response bytes kept per exchange at most; the rest is counted, not kept.
const CAPTURE_LIMIT: usize = 16 << 20;
/// Room a capture starts with: a short answer's whole stream, arriving as many small events,
/// is kept without growing the buffer again and again.
const CAPTURE_START: usize = 4 << 10;

impl Capture {
    fn push(&self, data: &[u8]) {
        let mut buf = self.buf.lock().expect("capture lock");
        if buf.capacity() == 0 {
            buf.reserve(data.len().clamp(CAPTURE_START, CAPTURE_LIMIT));
        }
        let room = CAPTURE_LIMIT.saturating_sub(buf.len());
        buf.extend_from_slice(&data[..data.len().min(room)]);
    }

    /// What was captured; the capture is empty afterwards.
    pub fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.buf.lock().expect("capture lock"))
    }
}

/// Copies every data frame into a [`Capture`] as it passes.
pub struct TeeBody {
    inner: Body,
    capture: std::sync::Arc<Capture>,
}

impl TeeBody {
    pub fn wrap(inner: Body, capture: std::sync::Arc<Capture>) -> Body {
        Body::from(BoxBody::new(TeeBody { inner, capture }))
    }
}

impl HttpBody for TeeBody {
    type Data = Bytes;
    type Error = hudsucker::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let poll = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &poll
            && let Some(data) = frame.data_ref()
        {
            self.capture.push(data);
        }
        poll
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::{StreamExt, stream};
    use http_body_util::{BodyExt, StreamBody};
    use std::sync::{Arc, Mutex};

    type Slot = Arc<Mutex<Option<(Outcome, u64)>>>;

    fn recorder() -> (Slot, OnEnd) {
        let slot = Arc::new(Mutex::new(None));
        let s = slot.clone();
        (
            slot,
            Box::new(move |o, n| *s.lock().unwrap() = Some((o, n))),
        )
    }

    #[tokio::test]
    async fn reports_complete_with_byte_count() {
        let (slot, on_end) = recorder();
        let body = ObservedBody::wrap(Body::from("hello"), Duration::from_secs(5), on_end);
        let bytes = body.collect().await.unwrap().to_bytes();
        assert_eq!(bytes, "hello");
        assert_eq!(*slot.lock().unwrap(), Some((Outcome::Complete, 5)));
    }

    #[tokio::test]
    async fn reports_abandoned_when_dropped_early() {
        let (slot, on_end) = recorder();
        let chunks = stream::iter(vec![
            Ok::<_, std::io::Error>(Frame::data(Bytes::from("a"))),
            Ok(Frame::data(Bytes::from("b"))),
        ])
        .chain(stream::pending());
        let inner = Body::from(BoxBody::new(StreamBody::new(futures_util::StreamExt::map(
            chunks,
            |r| r.map_err(hudsucker::Error::Io),
        ))));
        let mut body = ObservedBody::wrap(inner, Duration::from_secs(5), on_end);
        body.frame().await.unwrap().unwrap();
        drop(body);
        assert_eq!(*slot.lock().unwrap(), Some((Outcome::Abandoned, 1)));
    }

    #[tokio::test(start_paused = true)]
    async fn cuts_a_silent_stream_after_the_idle_timeout() {
        let (slot, on_end) = recorder();
        let inner = Body::from(BoxBody::new(StreamBody::new(stream::pending::<
            Result<Frame<Bytes>, hudsucker::Error>,
        >())));
        let mut body = ObservedBody::wrap(inner, Duration::from_secs(3), on_end);
        let err = body.frame().await.unwrap().unwrap_err();
        assert!(err.to_string().contains("io"), "{err}");
        assert_eq!(*slot.lock().unwrap(), Some((Outcome::IdleTimeout, 0)));
    }
}
