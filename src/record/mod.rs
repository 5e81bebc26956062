//! The audit store: one row per exchange, tunnel and refused CONNECT, in SQLite (WAL), written by
//! one thread that batches transactions so no request ever waits on the disk. Rows are
//! hash-chained (SHA-256): each row's hash covers its fields and the previous row's hash, and a
//! head row remembers the last one, so altering, deleting or truncating shows up in `verify`.

mod store;

pub use store::{ChainBreak, Store, StoreError};

use serde::Serialize;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;

/// What kind of thing a record describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RecordKind {
    /// A request and its response (intercepted or forwarded plain HTTP), refused ones included.
    Exchange,
    /// A blind tunnel to a host Tollgate does not inspect.
    Tunnel,
    /// A CONNECT Tollgate refused.
    ConnectRefused,
}

impl RecordKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordKind::Exchange => "exchange",
            RecordKind::Tunnel => "tunnel",
            RecordKind::ConnectRefused => "connect-refused",
        }
    }
}

/// One audit record. Metadata only: never a header value, a query string or a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Record {
    pub kind: RecordKind,
    /// When it started, RFC 3339 UTC.
    pub started_at: String,
    pub duration_ms: u64,
    pub client: String,
    /// Whose it is (the client address until proxy authentication exists).
    pub scope: String,
    /// `intercepted`, `forwarded` or `tunneled`.
    pub mode: String,
    pub provider: Option<String>,
    pub host: String,
    pub method: Option<String>,
    /// Path without its query string.
    pub path: Option<String>,
    pub status: Option<u16>,
    /// How it ended: `complete`, `client-gone`, a refusal reason, …
    pub outcome: String,
    pub bytes_up: u64,
    pub bytes_down: u64,
    /// Masking findings as JSON (`[{"rule","category","path","offset"}]`), never values.
    pub findings: String,
}

/// The current time as RFC 3339 UTC, as records store it.
pub fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .expect("UTC times format")
}

/// Sends records to the writer thread. Cheap to clone; never blocks the caller.
#[derive(Clone)]
pub struct Recorder {
    tx: Arc<Mutex<Option<mpsc::SyncSender<Record>>>>,
    dropped: Arc<AtomicU64>,
}

/// The writer thread; join it on shutdown so every queued record reaches the disk.
pub struct Writer {
    handle: Option<JoinHandle<()>>,
    recorder: Recorder,
}

/// Records queued at most before new ones are counted as dropped rather than waited for.
const QUEUE: usize = 65_536;
/// Records written per transaction at most.
const BATCH: usize = 512;

impl Recorder {
    /// Opens (creating and migrating) the store at `path` and starts its writer.
    pub fn start(path: &Path) -> Result<(Recorder, Writer), StoreError> {
        let mut store = Store::open(path)?;
        let (tx, rx) = mpsc::sync_channel::<Record>(QUEUE);
        let recorder = Recorder {
            tx: Arc::new(Mutex::new(Some(tx))),
            dropped: Arc::new(AtomicU64::new(0)),
        };
        let handle = std::thread::Builder::new()
            .name("tollgate-recorder".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut batch = vec![first];
                    while batch.len() < BATCH {
                        match rx.try_recv() {
                            Ok(r) => batch.push(r),
                            Err(_) => break,
                        }
                    }
                    if let Err(error) = store.append(&batch) {
                        tracing::error!(%error, lost = batch.len(), "cannot write audit records");
                    }
                }
            })
            .map_err(StoreError::Thread)?;
        Ok((
            recorder.clone(),
            Writer {
                handle: Some(handle),
                recorder,
            },
        ))
    }

    /// Queues a record for the writer.
    pub fn record(&self, record: Record) {
        let tx = self.tx.lock().expect("recorder lock");
        let sent = match tx.as_ref() {
            Some(tx) => tx.try_send(record).is_ok(),
            None => false,
        };
        if !sent {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::error!(dropped = n, "audit queue full or closed; a record was lost");
        }
    }

    /// Records that could not be queued.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl Writer {
    /// Stops taking records and waits until every queued one is written.
    pub fn finish(mut self) {
        self.recorder.tx.lock().expect("recorder lock").take();
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn record(n: u64) -> Record {
        Record {
            kind: RecordKind::Exchange,
            started_at: "2026-11-24T00:00:00Z".into(),
            duration_ms: n,
            client: "127.0.0.1:5000".into(),
            scope: "127.0.0.1".into(),
            mode: "intercepted".into(),
            provider: Some("openai".into()),
            host: "api.openai.com".into(),
            method: Some("POST".into()),
            path: Some("/v1/chat/completions".into()),
            status: Some(200),
            outcome: "complete".into(),
            bytes_up: 10,
            bytes_down: 20,
            findings: "[]".into(),
        }
    }

    #[test]
    fn writer_persists_every_queued_record_before_finishing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let (recorder, writer) = Recorder::start(&path).unwrap();
        for n in 0..2000 {
            recorder.record(record(n));
        }
        writer.finish();
        let store = Store::open(&path).unwrap();
        assert_eq!(store.count().unwrap(), 2000);
        assert_eq!(store.verify().unwrap(), None);
        assert_eq!(recorder.dropped(), 0);
    }
}
