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
pub mod postgres;
mod store;

pub use har::har;

pub use store::{
    Batch, ChainBreak, ExchangeFilter, HashVersion, Head, PurgeReport, ReplicaInfo, SessionSummary,
    Store, StoreError, StoreLocation, row_hash,
};

use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

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
    /// The approval a rule asked for and what became of it (JSON: id, rule, mode, decision,
    /// by, reason, at, waited_ms, break_glass, grant). Hashed from row version 3 on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval: Option<String>,
    /// For SSE answers: the text of the stream's deltas, joined. Derived from the response
    /// body and purged with it, so not covered by the chain itself. Rows written since bodies
    /// are compressed leave it empty: [`Record::answer_text`] derives it when read.
    #[serde(skip)]
    pub response_text: Option<String>,
    /// The request body exactly as sent upstream (masked, possibly compressed). The proxy
    /// shares it with the in-flight record rather than copying it (and with the final record
    /// when it is long).
    #[serde(skip)]
    pub request_body: bytes::Bytes,
    /// The response body exactly as the upstream sent it (placeholders not restored).
    #[serde(skip)]
    pub response_body: Vec<u8>,
    /// The unmasked request body, sealed (see [`originals`]); empty unless policy keeps them.
    #[serde(skip)]
    pub original_body: Vec<u8>,
}

impl Record {
    /// What the model said in a streamed answer: the stored text, or the text of the response
    /// body's SSE deltas. `None` when the answer is not a stream with text.
    pub fn answer_text(&self) -> Option<String> {
        self.response_text
            .clone()
            .or_else(|| sse_text(&self.response_body).filter(|t| !t.is_empty()))
    }

    /// A record with the given kind and place and nothing else known yet, started now.
    pub fn new(kind: RecordKind, client: &str, scope: &str, mode: &str, host: &str) -> Self {
        let session = session_id(scope, None, None);
        Self::started(kind, client, scope, mode, host, now(), session)
    }

    /// A record with the given kind and place, started at `started_at` (RFC 3339) in session
    /// `session_id`.
    pub fn started(
        kind: RecordKind,
        client: &str,
        scope: &str,
        mode: &str,
        host: &str,
        started_at: String,
        session_id: String,
    ) -> Self {
        Record {
            kind,
            started_at,
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
            session_id,
            model: None,
            ttfb_ms: None,
            rule: None,
            usage: None,
            region: None,
            jurisdiction: None,
            groups: None,
            token: None,
            profile: None,
            approval: None,
            response_text: None,
            request_body: Default::default(),
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
pub fn usage_value(body: &[u8]) -> Option<serde_json::Value> {
    let text = std::str::from_utf8(body).ok()?;
    let at = ["\"usage\":", "\"usageMetadata\":"]
        .iter()
        .filter_map(|key| text.rfind(key).map(|i| i + key.len()))
        .max()?;
    let mut values = serde_json::Deserializer::from_str(text[at..].trim_start())
        .into_iter::<serde_json::Value>();
    match values.next() {
        Some(Ok(v)) if v.is_object() => Some(v),
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
    /// Write what is queued, then stop.
    Stop,
}

impl Entry {
    /// What it holds in memory while it waits, roughly: its bodies and fields.
    fn size(&self) -> usize {
        match self {
            Entry::Done(r) | Entry::Open(_, r) | Entry::Close(_, r) => Self::open_size(r),
            Entry::Stop => 0,
        }
    }

    /// What a record holds in memory, roughly: its bodies and fields.
    fn open_size(r: &Record) -> usize {
        256 + r.request_body.len()
            + r.response_body.len()
            + r.original_body.len()
            + r.findings.len()
            + r.response_text.as_ref().map_or(0, String::len)
            + r.usage.as_ref().map_or(0, String::len)
    }

    fn record(&self) -> Option<&Record> {
        match self {
            Entry::Done(r) | Entry::Close(_, r) => Some(r),
            Entry::Open(..) | Entry::Stop => None,
        }
    }
}

/// How much may wait in memory for the writer. At these bounds the queue is *full*: the proxy
/// holds new LLM requests until there is room. Records of exchanges already under way always join;
/// past twice these bounds other records (refusals, tunnels) are dropped, counted and logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLimits {
    pub records: usize,
    pub bytes: usize,
}

impl Default for QueueLimits {
    fn default() -> Self {
        Self {
            records: 65_536,
            bytes: 64 << 20,
        }
    }
}

/// What the recorder and its writer share.
struct Queue {
    limits: QueueLimits,
    records: AtomicUsize,
    bytes: AtomicUsize,
    /// Woken whenever the writer frees room.
    room: tokio::sync::Notify,
    /// False while the store refuses writes (disk full, locked, corrupt).
    writable: AtomicBool,
    /// Batches the store refused (each retried).
    store_errors: AtomicU64,
    dropped: AtomicU64,
    /// When a drop was last logged, so a flood of them logs once per interval.
    last_drop_log: Mutex<Option<Instant>>,
    /// Set by [`Writer::finish`]: past it, records the store still refuses are given up.
    give_up_at: Mutex<Option<Instant>>,
    /// Records given up at shutdown.
    unwritten: AtomicUsize,
}

impl Queue {
    fn new(limits: QueueLimits) -> Self {
        Queue {
            limits,
            records: AtomicUsize::new(0),
            bytes: AtomicUsize::new(0),
            room: tokio::sync::Notify::new(),
            writable: AtomicBool::new(true),
            store_errors: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            last_drop_log: Mutex::new(None),
            give_up_at: Mutex::new(None),
            unwritten: AtomicUsize::new(0),
        }
    }

    fn is_full(&self) -> bool {
        self.records.load(Ordering::Relaxed) >= self.limits.records
            || self.bytes.load(Ordering::Relaxed) >= self.limits.bytes
    }

    /// Past twice the bounds already queued. One record always joins a queue under them, so an
    /// exchange as large as the body limits allow is never dropped for its size alone.
    fn is_over_hard_bound(&self) -> bool {
        self.records.load(Ordering::Relaxed) >= 2 * self.limits.records
            || self.bytes.load(Ordering::Relaxed) >= 2 * self.limits.bytes
    }

    fn release(&self, records: usize, bytes: usize) {
        self.records.fetch_sub(records, Ordering::Relaxed);
        self.bytes.fetch_sub(bytes, Ordering::Relaxed);
        self.room.notify_waiters();
    }

    fn note_drop(&self, why: &str, record: Option<&Record>) {
        let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        let mut last = self.last_drop_log.lock().expect("drop log lock");
        if last.is_none_or(|at| at.elapsed() >= DROP_LOG_EVERY) {
            *last = Some(Instant::now());
            tracing::error!(
                dropped,
                kind = record.map(|r| r.kind.as_str()),
                host = record.map(|r| r.host.as_str()),
                started_at = record.map(|r| r.started_at.as_str()),
                "audit records lost: {why}"
            );
        }
    }

    fn give_up_passed(&self) -> bool {
        self.give_up_at
            .lock()
            .expect("give-up lock")
            .is_some_and(|at| Instant::now() >= at)
    }
}

/// Sends records to the writer thread. Cheap to clone; never blocks the caller.
#[derive(Clone)]
pub struct Recorder {
    tx: Option<mpsc::Sender<(Entry, usize)>>,
    queue: Arc<Queue>,
    /// Makes pending keys unique across runs.
    run: u64,
    next_key: Arc<AtomicU64>,
}

/// The recorder's queue and store, as the metrics show them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecorderStats {
    /// Records waiting for the writer.
    pub queued: usize,
    /// Batches the store refused.
    pub store_errors: u64,
    /// Records lost past the queue's bounds.
    pub dropped: u64,
    /// Whether the store takes writes.
    pub writable: bool,
}

/// The writer thread; finish it on shutdown so every queued record reaches the disk.
pub struct Writer {
    handle: Option<JoinHandle<()>>,
    recorder: Recorder,
}

/// What [`Writer::finish`] could not do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FinishReport {
    /// Records the store still refused when the deadline passed (each named in the log).
    pub unwritten: usize,
    /// Records lost while running because the queue was past its bounds.
    pub dropped: u64,
}

/// Exchanges that started in the writer's last batch and had not ended by its commit.
#[derive(Default)]
struct Held {
    /// Key, record so far, and its size in the queue's count.
    opens: Vec<(String, Record, usize)>,
    /// When the batch that left them here was written.
    since: Option<Instant>,
}

impl Held {
    /// When they are kept aside if nothing else arrives: one batch window after they were held.
    fn due(&self) -> Option<Instant> {
        self.since.map(|since| since + BATCH_WINDOW)
    }

    /// Settles a batch before it is written: an exchange that started and ended within it, or
    /// within the next one, needs nothing kept aside (its record is written in the transaction
    /// that would have kept it). What started in this batch waits here for the next one
    /// (unless the writer is stopping); what started in the previous one and is still going
    /// joins the batch to be kept aside now. `entries` and `bytes` are what the batch releases
    /// from the queue's count once written: held opens stay counted until they leave.
    fn settle(
        &mut self,
        batch: &mut Batch,
        stopping: bool,
        entries: &mut usize,
        bytes: &mut usize,
    ) {
        let earlier = std::mem::take(&mut self.opens);
        let closed: std::collections::HashSet<&str> =
            batch.closed.iter().map(String::as_str).collect();
        for (key, record) in std::mem::take(&mut batch.opened) {
            if closed.contains(key.as_str()) {
                continue;
            }
            if stopping {
                batch.opened.push((key, record));
            } else {
                let size = Entry::open_size(&record);
                *entries -= 1;
                *bytes -= size;
                self.opens.push((key, record, size));
            }
        }
        for (key, record, size) in earlier {
            *entries += 1;
            *bytes += size;
            if !closed.contains(key.as_str()) {
                batch.opened.push((key, record));
            }
        }
        self.since = (!self.opens.is_empty()).then(Instant::now);
    }
}

/// Records written per transaction at most.
const BATCH: usize = 512;
/// How long the writer gathers entries for one transaction after the first arrives.
const BATCH_WINDOW: Duration = Duration::from_millis(5);
/// How often retention runs while the proxy runs.
const PURGE_EVERY: Duration = Duration::from_secs(3600);
/// How often an idle writer checks that the store answers (and, on PostgreSQL, tells the other
/// replicas it is alive): readiness turns false within this long of the database going away.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(2);
/// How often a store that keeps refusing writes is retried.
const RETRY_EVERY: Duration = Duration::from_millis(500);
/// Lost records are logged at most this often (with the running count).
const DROP_LOG_EVERY: Duration = Duration::from_secs(10);
/// Unwritten records named one by one in the log at shutdown, at most.
const NAMED_AT_SHUTDOWN: usize = 100;

/// Applies `retention` to the store now, and records what it removed.
pub fn purge(
    store: &mut Store,
    retention: &crate::policy::RecordingPolicy,
) -> Result<PurgeReport, StoreError> {
    let cutoff = |age: Duration| {
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
        location: &StoreLocation,
        retention: crate::policy::RecordingPolicy,
        limits: QueueLimits,
        mut checkpoints: checkpoint::Checkpointer,
    ) -> Result<(Recorder, Writer), StoreError> {
        let mut store = Store::connect(location)?;
        let interrupted = store.recover_pending()?;
        if interrupted > 0 {
            tracing::warn!(
                interrupted,
                "the previous run stopped mid-exchange; those exchanges are recorded as interrupted"
            );
        }
        let (tx, rx) = mpsc::channel::<(Entry, usize)>();
        let recorder = Recorder {
            tx: Some(tx),
            queue: Arc::new(Queue::new(limits)),
            run: run_nonce(),
            next_key: Arc::new(AtomicU64::new(1)),
        };
        let queue = recorder.queue.clone();
        let handle = std::thread::Builder::new()
            .name("tollgate-recorder".into())
            .spawn(move || {
                if write_loop(&mut store, &rx, &retention, &queue, &mut checkpoints) {
                    checkpoints.finish(&store);
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

    /// A recorder that records nothing (`recording.yaml: enabled: false`).
    pub fn disabled() -> Recorder {
        Recorder {
            tx: None,
            queue: Arc::new(Queue::new(QueueLimits::default())),
            run: 0,
            next_key: Arc::new(AtomicU64::new(1)),
        }
    }

    /// Queues a finished record for the writer.
    pub fn record(&self, record: Record) {
        self.send(Entry::Done(record));
    }

    /// Notes that an exchange started (its record so far), so that it is not lost if the
    /// process dies before it ends. Returns the key to [`Recorder::close`] it with.
    pub fn open(&self, record: Record) -> Option<String> {
        self.tx.as_ref()?;
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
        let Some(tx) = &self.tx else {
            return;
        };
        let size = entry.size();
        // An exchange that was let through the admission gate (`pipeline::admit_to_recording`)
        // always has its records taken: its bodies are in memory already, and the gate holds
        // new ones while the queue is full. Everything else stops at twice the bounds.
        let admitted = matches!(&entry, Entry::Open(_, r) | Entry::Close(_, r) if r.kind == RecordKind::Exchange);
        if !admitted && self.queue.is_over_hard_bound() {
            self.queue.note_drop(
                "the audit queue is past its bounds (the store is failing or far behind)",
                entry.record(),
            );
            return;
        }
        self.queue.records.fetch_add(1, Ordering::Relaxed);
        self.queue.bytes.fetch_add(size, Ordering::Relaxed);
        if let Err(mpsc::SendError((entry, size))) = tx.send((entry, size)) {
            self.queue.release(1, size);
            self.queue
                .note_drop("the audit writer has stopped", entry.record());
        }
    }

    /// Whether anything is recorded at all.
    pub fn is_enabled(&self) -> bool {
        self.tx.is_some()
    }

    /// Whether records are reaching the store: it takes writes and the queue has room.
    pub fn is_healthy(&self) -> bool {
        self.queue.writable.load(Ordering::SeqCst) && !self.queue.is_full()
    }

    /// Whether the store takes writes (false while it refuses them: disk full, locked, corrupt).
    pub fn is_writable(&self) -> bool {
        self.queue.writable.load(Ordering::SeqCst)
    }

    /// Whether the queue is at its bounds (see [`QueueLimits`]).
    pub fn is_full(&self) -> bool {
        self.tx.is_some() && self.queue.is_full()
    }

    /// Waits until the queue has room, at most `limit`; false if it stayed full. With
    /// `while_writable`, also false as soon as the store refuses writes.
    pub async fn wait_for_room(&self, limit: Duration, while_writable: bool) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let room = self.queue.room.notified();
            if while_writable && !self.is_writable() {
                return false;
            }
            if !self.is_full() {
                return true;
            }
            if tokio::time::timeout_at(deadline, room).await.is_err() {
                return !self.is_full();
            }
        }
    }

    /// Records lost because the queue was past its bounds or the writer had stopped.
    pub fn dropped(&self) -> u64 {
        self.queue.dropped.load(Ordering::Relaxed)
    }

    /// The queue and the store now, for the metrics.
    pub fn stats(&self) -> RecorderStats {
        RecorderStats {
            queued: self.queue.records.load(Ordering::Relaxed),
            store_errors: self.queue.store_errors.load(Ordering::Relaxed),
            dropped: self.dropped(),
            writable: self.queue.writable.load(Ordering::SeqCst),
        }
    }
}

/// The writer thread's life: batches of entries in one transaction each, retried while the
/// store refuses them, retention every hour, checkpoints as they fall due; after
/// [`Entry::Stop`], what is left, then out. False if it gave up on a store refusing writes.
fn write_loop(
    store: &mut Store,
    rx: &mpsc::Receiver<(Entry, usize)>,
    retention: &crate::policy::RecordingPolicy,
    queue: &Queue,
    checkpoints: &mut checkpoint::Checkpointer,
) -> bool {
    let mut next_purge = Instant::now();
    let mut next_beat = Instant::now();
    let mut stopping = false;
    // Exchanges that started in the previous batch and had not ended by its commit: kept in
    // memory for one more batch, and written aside only if they have not ended by then.
    let mut held = Held::default();
    loop {
        let first = if stopping {
            match rx.try_recv() {
                Ok(first) => Some(first),
                Err(_) if held.opens.is_empty() => break,
                Err(_) => None,
            }
        } else {
            let mut wake = checkpoints
                .due()
                .map_or(next_purge, |due| due.min(next_purge))
                .min(next_beat);
            if let Some(due) = held.due() {
                wake = wake.min(due);
            }
            let wait = wake.saturating_duration_since(Instant::now());
            match rx.recv_timeout(wait) {
                Ok(first) => Some(first),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if held.due().is_some_and(|due| Instant::now() >= due) {
                        None
                    } else {
                        beat_if_due(store, queue, &mut next_beat);
                        purge_if_due(store, retention, &mut next_purge);
                        checkpoints.tick(store);
                        continue;
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) if held.opens.is_empty() => break,
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    stopping = true;
                    None
                }
            }
        };
        let mut batch = Batch::default();
        let (mut entries, mut bytes) = (0, 0);
        let window = Instant::now() + BATCH_WINDOW;
        let draining = stopping || first.is_none();
        let mut add = |(entry, size): (Entry, usize)| {
            match entry {
                Entry::Done(r) => batch.records.push(r),
                Entry::Open(key, r) => batch.opened.push((key, r)),
                Entry::Close(key, r) => {
                    batch.records.push(r);
                    batch.closed.push(key);
                }
                Entry::Stop => {
                    stopping = true;
                    return;
                }
            }
            entries += 1;
            bytes += size;
        };
        if let Some(first) = first {
            add(first);
        }
        // What arrives within a short window joins the transaction: one commit (and one pass
        // over the indexes and the chain head) for many exchanges, and an exchange that ends
        // within it is never kept aside at all.
        // The writer sleeps through the window rather than waiting on the channel, so that
        // senders do not wake it once per entry.
        if !draining {
            std::thread::sleep(window.saturating_duration_since(Instant::now()));
        }
        for _ in 1..BATCH {
            match rx.try_recv() {
                Ok(entry) => {
                    let stop = matches!(entry.0, Entry::Stop);
                    add(entry);
                    if stop {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        if entries == 0 && held.opens.is_empty() {
            continue;
        }
        // An exchange that started and ended within one batch, or within the next, needs
        // nothing kept aside: its record is written in the transaction that would have kept
        // it. What started in this batch waits for the next one (unless the writer is
        // stopping); what started in the previous one and is still going is kept aside now.
        held.settle(&mut batch, stopping, &mut entries, &mut bytes);
        if batch.records.is_empty() && batch.opened.is_empty() && batch.closed.is_empty() {
            queue.release(entries, bytes);
            continue;
        }
        // A batch the store refuses is retried until it is written: while that lasts the
        // recorder reports unhealthy, and the proxy (by default) refuses new LLM requests rather
        // than lose their records. Only a shutdown's deadline ends the retrying.
        while let Err(error) = store.write(&batch) {
            queue.store_errors.fetch_add(1, Ordering::Relaxed);
            if queue.writable.swap(false, Ordering::SeqCst) {
                // Requests waiting for room while the store must be writable give up now.
                queue.room.notify_waiters();
                tracing::error!(%error, waiting = batch.records.len(), "cannot write audit records; retrying");
            }
            if queue.give_up_passed() {
                give_up(batch, rx, queue, &error);
                return false;
            }
            std::thread::sleep(RETRY_EVERY);
        }
        if !queue.writable.swap(true, Ordering::SeqCst) {
            tracing::info!("audit store writable again");
        }
        queue.release(entries, bytes);
        beat_if_due(store, queue, &mut next_beat);
        purge_if_due(store, retention, &mut next_purge);
        checkpoints.tick(store);
    }
    true
}

/// The store's heartbeat: a store that stops answering makes the recorder unwritable (and the
/// proxy unready) before any write fails, and writable again when it answers.
///
/// A SQLite store is its own file on this host: its writes tell all there is to know.
fn beat_if_due(store: &Store, queue: &Queue, next_beat: &mut Instant) {
    if Instant::now() < *next_beat {
        return;
    }
    // Moved on for SQLite too (which needs no heartbeat): the writer sleeps until it.
    *next_beat = Instant::now() + HEARTBEAT_EVERY;
    if store.sqlite_path().is_some() {
        return;
    }
    match store.heartbeat() {
        Ok(()) => {
            if !queue.writable.swap(true, Ordering::SeqCst) {
                tracing::info!("audit store answering again");
            }
        }
        Err(error) => {
            queue.store_errors.fetch_add(1, Ordering::Relaxed);
            if queue.writable.swap(false, Ordering::SeqCst) {
                queue.room.notify_waiters();
                tracing::error!(%error, "the audit store does not answer");
            }
        }
    }
}

fn purge_if_due(
    store: &mut Store,
    retention: &crate::policy::RecordingPolicy,
    next_purge: &mut Instant,
) {
    if Instant::now() >= *next_purge {
        if let Err(error) = purge(store, retention) {
            tracing::error!(%error, "retention could not run");
        }
        *next_purge = Instant::now() + PURGE_EVERY;
    }
}

/// Shutdown's deadline passed with the store still refusing: names what is not written.
fn give_up(batch: Batch, rx: &mpsc::Receiver<(Entry, usize)>, queue: &Queue, error: &StoreError) {
    let rest = rx.try_iter().filter_map(|(entry, _)| match entry {
        Entry::Done(r) | Entry::Close(_, r) => Some(r),
        Entry::Open(..) | Entry::Stop => None,
    });
    let mut unwritten = 0;
    for record in batch.records.into_iter().chain(rest) {
        unwritten += 1;
        if unwritten <= NAMED_AT_SHUTDOWN {
            tracing::error!(
                kind = record.kind.as_str(),
                started_at = %record.started_at,
                host = %record.host,
                path = record.path.as_deref().unwrap_or(""),
                outcome = %record.outcome,
                "audit record not written"
            );
        }
    }
    tracing::error!(
        unwritten,
        %error,
        "the audit store still refuses writes at the shutdown deadline; these records are lost"
    );
    queue.unwritten.store(unwritten, Ordering::SeqCst);
}

impl Writer {
    /// Stops taking records and waits until every queued one is written, or until `deadline`
    /// while the store refuses writes: what is still unwritten then is named in the log and
    /// counted in the report.
    pub fn finish(mut self, deadline: Instant) -> FinishReport {
        *self.recorder.queue.give_up_at.lock().expect("give-up lock") = Some(deadline);
        if let Some(tx) = self.recorder.tx.take() {
            let _ = tx.send((Entry::Stop, 0));
        }
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
        FinishReport {
            unwritten: self.recorder.queue.unwritten.load(Ordering::SeqCst),
            dropped: self.recorder.dropped(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

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
        r.request_body = format!("{{\"n\":{n}}}").into();
        r.response_body = b"data: {}\n\n".to_vec();
        r
    }

    #[test]
    fn usage_and_text_come_out_of_streams() {
        let sse = b"data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\ndata: {\"choices\":[{\"delta\":{\"content\":\"lo\"}}],\"usage\":{\"total_tokens\":7}}\n\ndata: [DONE]\n\n";
        assert_eq!(sse_text(sse).unwrap(), "Hello");
        assert_eq!(
            usage_value(sse).unwrap().to_string(),
            r#"{"total_tokens":7}"#
        );
        let anthropic = b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n";
        assert_eq!(sse_text(anthropic).unwrap(), "Hi");
        assert_eq!(usage_value(b"{\"id\":1}"), None);
    }

    #[test]
    fn sessions_follow_identity_provider_and_first_message() {
        let a = session_id("alice", Some("openai"), Some("fix the bug"));
        assert_eq!(a, session_id("alice", Some("openai"), Some("fix the bug")));
        assert_ne!(a, session_id("bob", Some("openai"), Some("fix the bug")));
        assert_ne!(a, session_id("alice", Some("openai"), Some("write docs")));
        assert_eq!(a.len(), 16);
    }

    fn retention() -> crate::policy::RecordingPolicy {
        crate::policy::RecordingPolicy {
            bodies: std::time::Duration::from_secs(3600),
            records: std::time::Duration::from_secs(7200),
            on_store_failure: crate::policy::StoreFailure::Refuse,
            store_originals: false,
            enabled: true,
            checkpoints: crate::policy::CheckpointPolicy::default(),
        }
    }

    fn checkpointer(path: &std::path::Path) -> checkpoint::Checkpointer {
        checkpoint::Checkpointer::new(
            checkpoint::AuditKey::generate(),
            &crate::policy::CheckpointPolicy::default(),
            path,
        )
        .unwrap()
    }

    /// A recorder over a store that another connection holds locked: every write waits, then
    /// fails, until `COMMIT` on the returned connection.
    fn recorder_over_a_locked_store(
        limits: QueueLimits,
    ) -> (
        tempfile::TempDir,
        PathBuf,
        Recorder,
        Writer,
        rusqlite::Connection,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let (recorder, writer) = Recorder::start(
            &StoreLocation::Sqlite(path.clone()),
            retention(),
            limits,
            checkpointer(&path),
        )
        .unwrap();
        let lock = rusqlite::Connection::open(&path).unwrap();
        lock.execute_batch("BEGIN EXCLUSIVE").unwrap();
        (dir, path, recorder, writer, lock)
    }

    #[test]
    fn a_full_queue_is_a_store_failure_and_past_twice_its_bound_records_are_dropped_and_counted() {
        let limits = QueueLimits {
            records: 4,
            bytes: 1 << 20,
        };
        let (_dir, path, recorder, writer, lock) = recorder_over_a_locked_store(limits);
        for n in 0..3 {
            recorder.record(record(n));
        }
        assert!(!recorder.is_full());
        recorder.record(record(3));
        assert!(recorder.is_full());
        assert!(
            !recorder.is_healthy(),
            "a full queue counts as a failing store"
        );
        // Records of exchanges already under way still fit, up to twice the bound.
        for n in 4..8 {
            recorder.record(record(n));
        }
        assert_eq!(recorder.dropped(), 0);
        recorder.record(record(8));
        assert_eq!(recorder.dropped(), 1, "the ninth is dropped and counted");

        lock.execute_batch("COMMIT").unwrap();
        let report = writer.finish(Instant::now() + Duration::from_secs(60));
        assert_eq!(
            report,
            FinishReport {
                unwritten: 0,
                dropped: 1
            }
        );
        let store = Store::open(&path).unwrap();
        assert_eq!(store.count().unwrap(), 8);
        assert_eq!(store.verify().unwrap(), None);
    }

    #[test]
    fn the_queue_is_bounded_in_bytes_as_well_as_records() {
        let limits = QueueLimits {
            records: 1000,
            bytes: 64 << 10,
        };
        let (_dir, _path, recorder, writer, lock) = recorder_over_a_locked_store(limits);
        let mut big = record(0);
        big.request_body = vec![b'x'; 40 << 10].into();
        recorder.record(big.clone());
        assert!(!recorder.is_full());
        recorder.record(big.clone());
        assert!(recorder.is_full(), "80 KiB waiting is past 64 KiB");
        recorder.record(big.clone());
        recorder.record(big.clone());
        assert_eq!(
            recorder.dropped(),
            0,
            "under 128 KiB waiting, a record still joins"
        );
        recorder.record(big);
        assert_eq!(recorder.dropped(), 1, "past 128 KiB the record is dropped");
        lock.execute_batch("COMMIT").unwrap();
        assert_eq!(
            writer
                .finish(Instant::now() + Duration::from_secs(60))
                .unwritten,
            0
        );
    }

    #[test]
    fn past_twice_the_bound_an_admitted_exchange_still_joins_and_a_refusal_does_not() {
        let limits = QueueLimits {
            records: 2,
            bytes: 1 << 20,
        };
        let (_dir, path, recorder, writer, lock) = recorder_over_a_locked_store(limits);
        for n in 0..4 {
            recorder.record(record(n));
        }
        recorder.record(record(4));
        assert_eq!(
            recorder.dropped(),
            1,
            "a refusal's record past 2x is dropped"
        );
        let key = recorder.open(record(5));
        recorder.close(key, record(5));
        assert_eq!(
            recorder.dropped(),
            1,
            "an admitted exchange's records joined"
        );
        lock.execute_batch("COMMIT").unwrap();
        writer.finish(Instant::now() + Duration::from_secs(60));
        assert_eq!(Store::open(&path).unwrap().count().unwrap(), 5);
    }

    #[test]
    fn one_record_larger_than_the_queue_still_joins_it() {
        let limits = QueueLimits {
            records: 1000,
            bytes: 64 << 10,
        };
        let (_dir, path, recorder, writer, lock) = recorder_over_a_locked_store(limits);
        let mut huge = record(0);
        huge.request_body = vec![b'x'; 1 << 20].into();
        recorder.record(huge);
        assert_eq!(recorder.dropped(), 0);
        lock.execute_batch("COMMIT").unwrap();
        writer.finish(Instant::now() + Duration::from_secs(60));
        assert_eq!(Store::open(&path).unwrap().count().unwrap(), 1);
    }

    #[test]
    fn shutdown_gives_up_on_a_store_that_keeps_refusing_and_counts_what_was_not_written() {
        let (_dir, path, recorder, writer, lock) =
            recorder_over_a_locked_store(QueueLimits::default());
        for n in 0..3 {
            recorder.record(record(n));
        }
        let report = writer.finish(Instant::now() + Duration::from_millis(200));
        assert_eq!(report.unwritten, 3);
        drop(lock);
        assert_eq!(Store::open(&path).unwrap().count().unwrap(), 0);
        recorder.record(record(9));
        assert_eq!(
            recorder.dropped(),
            1,
            "after the writer stopped, a record is counted"
        );
    }

    #[tokio::test]
    async fn waiting_for_room_ends_when_the_writer_frees_some_or_at_the_limit() {
        let limits = QueueLimits {
            records: 2,
            bytes: 1 << 20,
        };
        let (_dir, _path, recorder, writer, lock) = recorder_over_a_locked_store(limits);
        recorder.record(record(0));
        recorder.record(record(1));
        assert!(
            !recorder
                .wait_for_room(Duration::from_millis(100), false)
                .await
        );
        let waiting = tokio::spawn({
            let recorder = recorder.clone();
            async move { recorder.wait_for_room(Duration::from_secs(60), false).await }
        });
        lock.execute_batch("COMMIT").unwrap();
        assert!(waiting.await.unwrap());
        assert!(!recorder.is_full());
        writer.finish(Instant::now() + Duration::from_secs(60));
    }

    fn keys(opened: &[(String, Record)]) -> Vec<&str> {
        opened.iter().map(|(k, _)| k.as_str()).collect()
    }

    #[test]
    fn an_exchange_is_kept_aside_only_if_it_outlasts_the_batch_after_its_start() {
        let size = Entry::open_size(&record(0));
        let mut held = Held::default();
        // Batch 1: a, b and c start; b ends too. Nothing is kept aside yet.
        let mut batch = Batch {
            records: vec![record(2)],
            opened: ["a", "b", "c"].map(|k| (k.to_string(), record(0))).into(),
            closed: vec!["b".into()],
        };
        let (mut entries, mut bytes) = (4, 3 * size + 1000);
        held.settle(&mut batch, false, &mut entries, &mut bytes);
        assert!(keys(&batch.opened).is_empty());
        assert_eq!((entries, bytes), (2, size + 1000), "a and c stay counted");
        assert!(held.due().is_some());
        // Batch 2: a ends, d starts. c is still going: kept aside now; d waits.
        let mut batch = Batch {
            records: vec![record(1)],
            opened: vec![("d".into(), record(0))],
            closed: vec!["a".into()],
        };
        let (mut entries, mut bytes) = (2, size + 1000);
        held.settle(&mut batch, false, &mut entries, &mut bytes);
        assert_eq!(keys(&batch.opened), ["c"]);
        assert_eq!(
            (entries, bytes),
            (3, 2 * size + 1000),
            "a and c leave the count"
        );
        assert_eq!(held.opens.len(), 1);
        // Stopping: d and what starts now are kept aside at once.
        let mut batch = Batch {
            records: vec![],
            opened: vec![("e".into(), record(0))],
            closed: vec![],
        };
        let (mut entries, mut bytes) = (1, size);
        held.settle(&mut batch, true, &mut entries, &mut bytes);
        assert_eq!(keys(&batch.opened), ["e", "d"]);
        assert_eq!((entries, bytes), (2, 2 * size));
        assert!(held.opens.is_empty() && held.due().is_none());
    }

    #[test]
    fn an_exchange_still_going_is_kept_aside_soon_and_replaced_when_it_ends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let (recorder, writer) = started(&path);
        let key = recorder.open(record(1));
        let store = Store::open(&path).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        // Written aside, it leaves the queue.
        while store.pending_count().unwrap() == 0 || recorder.stats().queued > 0 {
            assert!(Instant::now() < deadline, "never kept aside");
            std::thread::sleep(Duration::from_millis(5));
        }
        // One that ends right after it starts is written once, as its record.
        let quick = recorder.open(record(2));
        recorder.close(quick, record(2));
        recorder.close(key, record(1));
        assert_eq!(writer.finish(Instant::now()), FinishReport::default());
        assert_eq!(store.pending_count().unwrap(), 0);
        assert_eq!(store.count().unwrap(), 2);
        assert_eq!(store.verify().unwrap(), None);
    }

    #[test]
    fn exchanges_still_going_at_shutdown_are_kept_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let (recorder, writer) = started(&path);
        for n in 0..3 {
            recorder.open(record(n));
        }
        assert_eq!(writer.finish(Instant::now()), FinishReport::default());
        assert_eq!(Store::open(&path).unwrap().pending_count().unwrap(), 3);
    }

    /// A recorder with default limits over a new SQLite store at `path`.
    fn started(path: &std::path::Path) -> (Recorder, Writer) {
        Recorder::start(
            &StoreLocation::Sqlite(path.to_owned()),
            retention(),
            QueueLimits::default(),
            checkpointer(path),
        )
        .unwrap()
    }

    #[test]
    fn writer_persists_every_queued_record_and_signs_the_head_before_finishing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let (recorder, writer) = started(&path);
        for n in 0..2000 {
            recorder.record(record(n));
        }
        assert_eq!(writer.finish(Instant::now()), FinishReport::default());
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
