//! The audit store: one row per exchange, tunnel and refused CONNECT, in SQLite (WAL), written by
//! one thread that batches transactions so no request ever waits on the disk. Rows are
//! hash-chained (SHA-256): each row's hash covers its fields and the previous row's hash, and a
//! head row remembers the last one, so altering, deleting or truncating shows up in `verify`.
//! The writer also signs the head now and then ([`checkpoint`]), in the store and in a file
//! outside it, so that a chain rewritten or cut short by someone who can write the database
//! shows too.

mod canonical;
pub mod checkpoint;
mod har;
pub mod originals;
pub mod replay;
mod store;

pub use har::har;

pub use store::{
    Batch, ChainBreak, HashVersion, Head, PurgeReport, SessionSummary, Store, StoreError, row_hash,
};

use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;

/// What kind of thing a record describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RecordKind {
    /// A request and its response (intercepted or forwarded plain HTTP), refused ones included.
    Exchange,
    /// A blind tunnel to a host Tollgate does not inspect.
    Tunnel,
    /// A CONNECT Tollgate refused.
    ConnectRefused,
    /// Retention ran: what it removed (the record of the removal stays).
    Purge,
}

impl RecordKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordKind::Exchange => "exchange",
            RecordKind::Tunnel => "tunnel",
            RecordKind::ConnectRefused => "connect-refused",
            RecordKind::Purge => "purge",
        }
    }
}

/// One audit record. Metadata only: never a header value, a query string or a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    /// The conversation this exchange belongs to (see [`session_id`]).
    pub session_id: String,
    pub model: Option<String>,
    /// Time until the upstream's response headers arrived.
    pub ttfb_ms: Option<u64>,
    /// The policy rule that refused it, where one did.
    pub rule: Option<String>,
    /// Token usage as the provider reported it (JSON).
    pub usage: Option<String>,
    // Fields added after the first schema are left out of the JSON when empty: rows hashed in
    // version 1 (the record's JSON) and written before them must hash as they did. Version 2
    // rows use an explicit form instead (see `store.rs`), and a new field there is a new version.
    /// Where the request was headed: its regions, comma-separated (`eu-central-1,eu`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The jurisdictions of those regions (`eu`, `us`, `?` where unknown).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jurisdiction: Option<String>,
    /// The authenticated user's groups, comma-separated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub groups: Option<String>,
    /// How the user authenticated: the token's name, or `oidc`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// The access profile that applied (`default` or a group entry of policy.yaml).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// For SSE answers: the text of the stream's deltas, joined. Derived from the response
    /// body and purged with it, so not covered by the chain itself.
    #[serde(skip)]
    pub response_text: Option<String>,
    /// The request body exactly as sent upstream (masked, possibly compressed).
    #[serde(skip)]
    pub request_body: Vec<u8>,
    /// The response body exactly as the upstream sent it (placeholders not restored).
    #[serde(skip)]
    pub response_body: Vec<u8>,
    /// The unmasked request body, sealed (see [`originals`]); empty unless policy keeps them.
    #[serde(skip)]
    pub original_body: Vec<u8>,
}

impl Record {
    /// A record with the given kind and place and nothing else known yet.
    pub fn new(kind: RecordKind, client: &str, scope: &str, mode: &str, host: &str) -> Self {
        Record {
            kind,
            started_at: now(),
            duration_ms: 0,
            client: client.into(),
            scope: scope.into(),
            mode: mode.into(),
            provider: None,
            host: host.into(),
            method: None,
            path: None,
            status: None,
            outcome: String::new(),
            bytes_up: 0,
            bytes_down: 0,
            findings: "[]".into(),
            session_id: session_id(scope, None, None),
            model: None,
            ttfb_ms: None,
            rule: None,
            usage: None,
            region: None,
            jurisdiction: None,
            groups: None,
            token: None,
            profile: None,
            response_text: None,
            request_body: Vec::new(),
            response_body: Vec::new(),
            original_body: Vec::new(),
        }
    }
}

impl Record {
    /// Notes who sent it: groups and token, when authentication is on.
    pub fn set_identity(&mut self, identity: Option<&crate::identity::Identity>) {
        if let Some(identity) = identity {
            self.groups = (!identity.groups.is_empty()).then(|| identity.groups.join(","));
            self.token = Some(identity.token.to_string());
        }
    }
}

/// A random number that tells this run's pending keys from any earlier run's.
fn run_nonce() -> u64 {
    let mut bytes = [0u8; 8];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .expect("the system random source works");
    u64::from_be_bytes(bytes)
}

/// Sessions group what an auditor thinks of as one conversation: the same identity, the same
/// provider, and the same first message. Agents resend the whole history on every turn, so the
/// first message stays the same from turn to turn. Calls without messages (model lists, token
/// counts) fall into one session per identity and provider.
pub fn session_id(scope: &str, provider: Option<&str>, first_message: Option<&str>) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for part in [scope, provider.unwrap_or(""), first_message.unwrap_or("")] {
        ctx.update(&(part.len() as u64).to_be_bytes());
        ctx.update(part.as_bytes());
    }
    ctx.finish().as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The current time as RFC 3339 UTC, as records store it.
pub fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .expect("UTC times format")
}

/// The token usage a provider reported in a response body (JSON or SSE): the last `usage` or
/// `usageMetadata` object in it.
pub fn usage_of(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let at = ["\"usage\":", "\"usageMetadata\":"]
        .iter()
        .filter_map(|key| text.rfind(key).map(|i| i + key.len()))
        .max()?;
    let mut values = serde_json::Deserializer::from_str(text[at..].trim_start())
        .into_iter::<serde_json::Value>();
    match values.next() {
        Some(Ok(v)) if v.is_object() => Some(v.to_string()),
        _ => None,
    }
}

/// The text of an SSE answer's deltas, joined: what the model said, readable in the audit.
/// Read with the providers' one SSE reader and stream shapes ([`crate::providers::stream`]).
pub fn sse_text(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let mut out = String::new();
    for event in crate::providers::sse::events(text) {
        let Some(data) = event.data else {
            continue;
        };
        let Ok(value) = serde_json::from_str::<serde_json::Value>(&data) else {
            continue;
        };
        for (_, _, piece) in crate::providers::stream::pieces(&value, event.event) {
            out.push_str(piece);
        }
    }
    Some(out)
}

/// What the writer thread is sent.
enum Entry {
    /// A finished record.
    Done(Record),
    /// An exchange that started, under a key: kept aside in case the process dies before it ends.
    Open(String, Record),
    /// The record of an exchange that ended, replacing what was kept under its key.
    Close(String, Record),
}

/// Sends records to the writer thread. Cheap to clone; never blocks the caller.
#[derive(Clone)]
pub struct Recorder {
    tx: Arc<Mutex<Option<mpsc::SyncSender<Entry>>>>,
    /// Makes pending keys unique across runs.
    run: u64,
    next_key: Arc<AtomicU64>,
    dropped: Arc<AtomicU64>,
    /// False while the store refuses writes (disk full, locked, corrupt).
    healthy: Arc<std::sync::atomic::AtomicBool>,
    /// False when policy turned recording off.
    enabled: bool,
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
/// How often retention runs while the proxy runs.
const PURGE_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// Applies `retention` to the store now, and records what it removed.
pub fn purge(
    store: &mut Store,
    retention: &crate::policy::RecordingPolicy,
) -> Result<PurgeReport, StoreError> {
    let cutoff = |age: std::time::Duration| {
        (time::OffsetDateTime::now_utc() - age)
            .format(&time::format_description::well_known::Rfc3339)
            .expect("UTC times format")
    };
    let report = store.purge(&cutoff(retention.bodies), &cutoff(retention.records))?;
    if report.bodies > 0 || report.records > 0 {
        let mut record = Record::new(RecordKind::Purge, "", "", "retention", "");
        record.outcome = format!(
            "cleared the bodies of {} records, deleted {} records",
            report.bodies, report.records
        );
        store.append(&[record])?;
        tracing::info!(
            bodies = report.bodies,
            records = report.records,
            "retention applied"
        );
    }
    Ok(report)
}

impl Recorder {
    /// Opens (creating and migrating) the store at `path` and starts its writer, which also
    /// applies `retention` at start and every hour, and signs the chain's head with
    /// `checkpoints` as they fall due and once more when it finishes.
    pub fn start(
        path: &Path,
        retention: crate::policy::RecordingPolicy,
        mut checkpoints: checkpoint::Checkpointer,
    ) -> Result<(Recorder, Writer), StoreError> {
        let mut store = Store::open(path)?;
        let interrupted = store.recover_pending()?;
        if interrupted > 0 {
            tracing::warn!(
                interrupted,
                "the previous run stopped mid-exchange; those exchanges are recorded as interrupted"
            );
        }
        let (tx, rx) = mpsc::sync_channel::<Entry>(QUEUE);
        let recorder = Recorder {
            tx: Arc::new(Mutex::new(Some(tx))),
            run: run_nonce(),
            next_key: Arc::new(AtomicU64::new(1)),
            dropped: Arc::new(AtomicU64::new(0)),
            healthy: Arc::new(std::sync::atomic::AtomicBool::new(true)),
            enabled: true,
        };
        let healthy = recorder.healthy.clone();
        let handle = std::thread::Builder::new()
            .name("tollgate-recorder".into())
            .spawn(move || {
                let mut next_purge = std::time::Instant::now();
                loop {
                    let wake = checkpoints.due().map_or(next_purge, |due| due.min(next_purge));
                    let wait = wake.saturating_duration_since(std::time::Instant::now());
                    match rx.recv_timeout(wait) {
                        Ok(first) => {
                            let mut batch = Batch::default();
                            let mut add = |entry| match entry {
                                Entry::Done(r) => batch.records.push(r),
                                Entry::Open(key, r) => batch.opened.push((key, r)),
                                Entry::Close(key, r) => {
                                    batch.records.push(r);
                                    batch.closed.push(key);
                                }
                            };
                            add(first);
                            for _ in 1..BATCH {
                                match rx.try_recv() {
                                    Ok(entry) => add(entry),
                                    Err(_) => break,
                                }
                            }
                            // A batch the store refuses is retried until it is written: while
                            // that lasts the recorder reports unhealthy, and the proxy (by
                            // default) refuses new LLM requests rather than lose their records.
                            while let Err(error) = store.write(&batch) {
                                if healthy.swap(false, Ordering::SeqCst) {
                                    tracing::error!(%error, waiting = batch.records.len(), "cannot write audit records; retrying");
                                }
                                std::thread::sleep(std::time::Duration::from_millis(500));
                            }
                            if !healthy.swap(true, Ordering::SeqCst) {
                                tracing::info!("audit store writable again");
                            }
                        }
                        Err(mpsc::RecvTimeoutError::Timeout) => {}
                        Err(mpsc::RecvTimeoutError::Disconnected) => break,
                    }
                    if std::time::Instant::now() >= next_purge {
                        if let Err(error) = purge(&mut store, &retention) {
                            tracing::error!(%error, "retention could not run");
                        }
                        next_purge = std::time::Instant::now() + PURGE_EVERY;
                    }
                    checkpoints.tick(&store);
                }
                checkpoints.finish(&store);
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

    /// A recorder that records nothing (`recording.yaml: enabled: false`).
    pub fn disabled() -> Recorder {
        Recorder {
            tx: Arc::new(Mutex::new(None)),
            run: 0,
            next_key: Arc::new(AtomicU64::new(1)),
            dropped: Arc::new(AtomicU64::new(0)),
            healthy: Arc::new(std::sync::atomic::AtomicBool::new(true)),
            enabled: false,
        }
    }

    /// Queues a finished record for the writer.
    pub fn record(&self, record: Record) {
        self.send(Entry::Done(record));
    }

    /// Notes that an exchange started (its record so far), so that it is not lost if the
    /// process dies before it ends. Returns the key to [`Recorder::close`] it with.
    pub fn open(&self, record: Record) -> Option<String> {
        if !self.enabled {
            return None;
        }
        let key = format!(
            "{:016x}-{}",
            self.run,
            self.next_key.fetch_add(1, Ordering::Relaxed)
        );
        self.send(Entry::Open(key.clone(), record));
        Some(key)
    }

    /// Queues the record of an exchange that ended, in place of what [`Recorder::open`] kept.
    pub fn close(&self, key: Option<String>, record: Record) {
        match key {
            Some(key) => self.send(Entry::Close(key, record)),
            None => self.record(record),
        }
    }

    fn send(&self, entry: Entry) {
        if !self.enabled {
            return;
        }
        let tx = self.tx.lock().expect("recorder lock");
        let sent = match tx.as_ref() {
            Some(tx) => tx.try_send(entry).is_ok(),
            None => false,
        };
        if !sent {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::error!(dropped = n, "audit queue full or closed; a record was lost");
        }
    }

    /// Whether anything is recorded at all.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// Whether records are reaching the store.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::SeqCst)
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

    #[test]
    fn fields_added_after_the_first_schema_leave_old_rows_hashing_as_before() {
        // Version 1 rows are hashed over the record's JSON: a row written before `region`
        // existed must serialize exactly as it did then, or upgraded stores would fail
        // `audit verify` (see also `store::tests::the_version_1_form_hashes_as_it_always_did`).
        let json = serde_json::to_value(record(1)).unwrap();
        for added in ["region", "jurisdiction", "groups", "token", "profile"] {
            assert!(json.get(added).is_none(), "{added}");
        }
        let mut r = record(1);
        r.region = Some("eu".into());
        assert_eq!(serde_json::to_value(r).unwrap()["region"], "eu");
    }

    pub fn record(n: u64) -> Record {
        let mut r = Record::new(
            RecordKind::Exchange,
            "127.0.0.1:5000",
            "127.0.0.1",
            "intercepted",
            "api.openai.com",
        );
        r.duration_ms = n;
        r.provider = Some("openai".into());
        r.method = Some("POST".into());
        r.path = Some("/v1/chat/completions".into());
        r.status = Some(200);
        r.outcome = "complete".into();
        r.request_body = format!("{{\"n\":{n}}}").into_bytes();
        r.response_body = b"data: {}\n\n".to_vec();
        r
    }

    #[test]
    fn usage_and_text_come_out_of_streams() {
        let sse = b"data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\ndata: {\"choices\":[{\"delta\":{\"content\":\"lo\"}}],\"usage\":{\"total_tokens\":7}}\n\ndata: [DONE]\n\n";
        assert_eq!(sse_text(sse).unwrap(), "Hello");
        assert_eq!(usage_of(sse).unwrap(), r#"{"total_tokens":7}"#);
        let anthropic = b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n";
        assert_eq!(sse_text(anthropic).unwrap(), "Hi");
        assert_eq!(usage_of(b"{\"id\":1}"), None);
    }

    #[test]
    fn sessions_follow_identity_provider_and_first_message() {
        let a = session_id("alice", Some("openai"), Some("fix the bug"));
        assert_eq!(a, session_id("alice", Some("openai"), Some("fix the bug")));
        assert_ne!(a, session_id("bob", Some("openai"), Some("fix the bug")));
        assert_ne!(a, session_id("alice", Some("openai"), Some("write docs")));
        assert_eq!(a.len(), 16);
    }

    #[test]
    fn writer_persists_every_queued_record_and_signs_the_head_before_finishing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let retention = crate::policy::RecordingPolicy {
            bodies: std::time::Duration::from_secs(3600),
            records: std::time::Duration::from_secs(7200),
            on_store_failure: crate::policy::StoreFailure::Refuse,
            store_originals: false,
            enabled: true,
            checkpoints: crate::policy::CheckpointPolicy::default(),
        };
        let checkpoints = checkpoint::Checkpointer::new(
            checkpoint::AuditKey::generate(),
            &retention.checkpoints,
            &path,
        )
        .unwrap();
        let (recorder, writer) = Recorder::start(&path, retention, checkpoints).unwrap();
        for n in 0..2000 {
            recorder.record(record(n));
        }
        writer.finish();
        let store = Store::open(&path).unwrap();
        assert_eq!(store.count().unwrap(), 2000);
        assert_eq!(store.verify().unwrap(), None);
        assert_eq!(recorder.dropped(), 0);
        // Signed at least every 1000 records, and the rest at the end.
        let signed: Vec<i64> = store
            .checkpoints()
            .unwrap()
            .iter()
            .map(|(_, c)| c.last_id)
            .collect();
        assert!(signed.len() >= 2, "{signed:?}");
        assert!(
            signed
                .windows(2)
                .all(|w| w[1] - w[0] <= 1000 + BATCH as i64),
            "{signed:?}"
        );
        assert_eq!(signed.last(), Some(&2000));
    }
}
