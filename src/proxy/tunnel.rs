//! Blind tunnels for hosts Tollgate does not inspect. Tollgate dials them itself (hudsucker's own
//! passthrough ignores the connector, so `--connect-to`, the internal-address rule and the connect
//! timeout would not apply), answers the CONNECT only once the upstream is reached, then copies
//! bytes both ways until either side closes or the tunnel falls silent.

use super::Shared;
use super::refusal::Refusal;
use crate::record::{Record, RecordKind};
use http::{Request, Response};
use hudsucker::Body;
use hyper_util::rt::TokioIo;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;
use tracing::info;

/// Dials `host:port` and, once connected, answers 200 and splices the client to it.
/// A failure to dial is answered with the refusal that explains it.
pub async fn open(
    shared: Arc<Shared>,
    client: SocketAddr,
    identity: Option<&crate::identity::Identity>,
    id: u64,
    host: String,
    port: u16,
    mut req: Request<Body>,
) -> Result<Response<Body>, Refusal> {
    let started = Instant::now();
    let upstream = shared
        .dialer
        .dial(&host, port)
        .await
        .map_err(|e| Refusal::from_upstream_error(&host, &e))?;
    let on_upgrade = hyper::upgrade::on(&mut req);
    let guard = shared.inflight.enter();
    let idle = shared.timeouts.tunnel_idle;
    let recorder = shared.recorder.clone();
    let scope = super::handler::scope_of(identity, client);
    let mut record = Record::new(
        RecordKind::Tunnel,
        &client.to_string(),
        &scope,
        "tunneled",
        &host,
    );
    record.set_identity(identity);
    record.method = Some("CONNECT".into());
    record.status = Some(200);
    record.outcome = "in-flight".into();
    // Tunnels can last hours: should the process die meanwhile, this is what is kept.
    let pending = recorder.open(record.clone());
    tokio::spawn(async move {
        let _guard = guard;
        let (outcome, up, down) = match on_upgrade.await {
            Ok(upgraded) => splice(TokioIo::new(upgraded), upstream, idle).await,
            Err(_) => ("upgrade-failed", 0, 0),
        };
        let ms = started.elapsed().as_millis() as u64;
        record.duration_ms = ms;
        record.outcome = outcome.into();
        record.bytes_up = up;
        record.bytes_down = down;
        recorder.close(pending, record);
        info!(
            target: "tollgate::tunnel",
            id,
            %client,
            user = %scope,
            host = %host,
            port,
            mode = "tunneled",
            bytes_up = up,
            bytes_down = down,
            ms,
            outcome,
            "tunnel closed"
        );
    });
    Ok(Response::new(Body::empty()))
}

/// Copies both ways; returns how it ended and the bytes sent up and down.
async fn splice<C, U>(client: C, mut upstream: U, idle: Duration) -> (&'static str, u64, u64)
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let activity = Arc::new(Activity::new());
    let mut client = Watched {
        inner: client,
        activity: activity.clone(),
    };
    let copy = tokio::io::copy_bidirectional(&mut client, &mut upstream);
    tokio::select! {
        result = copy => match result {
            Ok((up, down)) => ("closed", up, down),
            Err(_) => ("reset", activity.up.load(Ordering::Relaxed), activity.down.load(Ordering::Relaxed)),
        },
        _ = activity.silence(idle) => {
            ("idle-timeout", activity.up.load(Ordering::Relaxed), activity.down.load(Ordering::Relaxed))
        }
    }
}

/// When the client side last moved bytes, and how many.
struct Activity {
    start: Instant,
    last_ms: AtomicU64,
    up: AtomicU64,
    down: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
            up: AtomicU64::new(0),
            down: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        self.last_ms
            .store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// Resolves once nothing has moved for `idle`.
    async fn silence(&self, idle: Duration) {
        loop {
            let last = self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let deadline = last + idle;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// The client side of a tunnel, noting activity on every read and write.
struct Watched<T> {
    inner: T,
    activity: Arc<Activity>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            self.activity.up.fetch_add(n as u64, Ordering::Relaxed);
            self.activity.touch();
        }
        poll
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = poll
            && n > 0
        {
            self.activity.down.fetch_add(n as u64, Ordering::Relaxed);
            self.activity.touch();
        }
        poll
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, duplex};

    #[tokio::test]
    async fn splices_both_ways_and_counts_bytes() {
        let (client, mut client_end) = duplex(1024);
        let (upstream, mut upstream_end) = duplex(1024);
        let task = tokio::spawn(splice(client, upstream, Duration::from_secs(5)));
        client_end.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        upstream_end.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        upstream_end.write_all(b"pong!").await.unwrap();
        let mut buf = [0u8; 5];
        client_end.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"pong!");
        drop(client_end);
        drop(upstream_end);
        assert_eq!(task.await.unwrap(), ("closed", 4, 5));
    }

    #[tokio::test(start_paused = true)]
    async fn closes_a_silent_tunnel() {
        let (client, _client_end) = duplex(1024);
        let (upstream, _upstream_end) = duplex(1024);
        let (outcome, _, _) = splice(client, upstream, Duration::from_secs(60)).await;
        assert_eq!(outcome, "idle-timeout");
    }
}
