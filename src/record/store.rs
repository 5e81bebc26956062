//! The SQLite side: schema migrations, appending hash-chained rows, and verifying the chain.

use super::Record;
use super::canonical::Canonical;
use super::checkpoint::Checkpoint;
use ring::digest::{Context, SHA256};
use rusqlite::{Connection, OptionalExtension, params};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    /// The PostgreSQL store refused or failed; `at` names the database (never a password).
    #[error("{at}: {message}")]
    Postgres { at: String, message: String },
    /// What `store.url` or `--db` says cannot be used.
    #[error("the store's settings: {0}")]
    Settings(String),
    /// The operation exists on the other engine only.
    #[error("{0}")]
    Unsupported(&'static str),
    #[error("{path}: written by a newer Tollgate (schema {found}, this one knows up to {known})")]
    TooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("cannot start the audit writer: {0}")]
    Thread(std::io::Error),
}

/// Where the chain first fails to hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBreak {
    /// The first row whose hash or link does not match (the head, if rows are missing at the end).
    pub row: i64,
    pub reason: String,
}

/// What the writer puts in one transaction.
#[derive(Debug, Default)]
pub struct Batch {
    /// Finished records, appended to the chain.
    pub records: Vec<Record>,
    /// Exchanges that started: kept aside until they end, by key.
    pub opened: Vec<(String, Record)>,
    /// Keys of started exchanges that ended (their records are in `records`).
    pub closed: Vec<String>,
}

/// Each migration takes the schema from its index to the next version.
const MIGRATIONS: &[&str] = &[
    r#"
    CREATE TABLE records (
        id           INTEGER PRIMARY KEY,
        kind         TEXT    NOT NULL,
        started_at   TEXT    NOT NULL,
        duration_ms  INTEGER NOT NULL,
        client       TEXT    NOT NULL,
        scope        TEXT    NOT NULL,
        mode         TEXT    NOT NULL,
        provider     TEXT,
        host         TEXT    NOT NULL,
        method       TEXT,
        path         TEXT,
        status       INTEGER,
        outcome      TEXT    NOT NULL,
        bytes_up     INTEGER NOT NULL,
        bytes_down   INTEGER NOT NULL,
        findings     TEXT    NOT NULL,
        session_id   TEXT    NOT NULL,
        model        TEXT,
        ttfb_ms      INTEGER,
        rule         TEXT,
        usage        TEXT,
        response_text TEXT,
        request_body BLOB    NOT NULL,
        response_body BLOB   NOT NULL,
        prev_hash    BLOB    NOT NULL,
        hash         BLOB    NOT NULL,
        request_digest  BLOB NOT NULL,
        response_digest BLOB NOT NULL,
        bodies_purged   INTEGER NOT NULL DEFAULT 0,
        original_body   BLOB NOT NULL DEFAULT x''
    );
    CREATE INDEX records_started_at ON records (started_at);
    CREATE INDEX records_scope ON records (scope, started_at);
    CREATE INDEX records_session ON records (session_id, id);
    CREATE TABLE chain_head (
        one       INTEGER PRIMARY KEY CHECK (one = 1),
        last_id   INTEGER NOT NULL,
        hash      BLOB    NOT NULL,
        -- After a purge: the first row kept, and the hash it links to.
        first_id  INTEGER NOT NULL DEFAULT 1,
        base_hash BLOB
    );
"#,
    r#"
    ALTER TABLE records ADD COLUMN region TEXT;
    ALTER TABLE records ADD COLUMN jurisdiction TEXT;
    ALTER TABLE records ADD COLUMN groups TEXT;
    ALTER TABLE records ADD COLUMN token TEXT;
    ALTER TABLE records ADD COLUMN profile TEXT;
"#,
    r#"
    -- Exchanges in flight: written when they start, replaced by their record when they end.
    -- What a crash leaves here becomes an `interrupted` record at the next start.
    CREATE TABLE pending (
        key           TEXT PRIMARY KEY,
        record        TEXT NOT NULL,
        request_body  BLOB NOT NULL,
        original_body BLOB NOT NULL
    );
"#,
    r#"
    -- How each row's hash is computed (see `HashVersion`); rows written before are version 1.
    ALTER TABLE records ADD COLUMN hash_version INTEGER NOT NULL DEFAULT 1;
"#,
    r#"
    -- Signed statements of the chain's head (see `checkpoint.rs`), also appended to a file
    -- outside the store when policy names one.
    CREATE TABLE checkpoints (
        id        INTEGER PRIMARY KEY,
        version   INTEGER NOT NULL,
        last_id   INTEGER NOT NULL,
        hash      BLOB    NOT NULL,
        records   INTEGER NOT NULL,
        first_id  INTEGER NOT NULL,
        base_hash BLOB    NOT NULL,
        at        TEXT    NOT NULL,
        key_id    TEXT    NOT NULL,
        signature BLOB    NOT NULL
    );
"#,
    r#"
    -- What approval a rule asked for and what became of it (JSON), hashed from version 3.
    ALTER TABLE records ADD COLUMN approval TEXT;
"#,
    r#"
    -- Which bodies are stored zstd-compressed (see `Codec`); digests cover them uncompressed.
    ALTER TABLE records ADD COLUMN bodies_codec INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE pending ADD COLUMN bodies_codec INTEGER NOT NULL DEFAULT 0;
"#,
    r#"
    -- The console's lists, newest first, by user, by outcome (refusals) and by approval
    -- decision: each an ordered walk of an index instead of a scan of the rows (whose bodies
    -- sit before the columns these filters read).
    CREATE INDEX records_scope_id ON records (scope, id);
    CREATE INDEX records_outcome_id ON records (outcome, id);
    CREATE INDEX records_decision_id ON records (json_extract(approval, '$.decision'), id);
"#,
    r#"
    -- A request body stored as what it adds to an earlier one of its session (see `Bases`):
    -- the first `request_prefix` and last `request_suffix` bytes of row `request_base`'s
    -- request, with `request_body` between them. Digests cover the body whole.
    ALTER TABLE records ADD COLUMN request_base INTEGER;
    ALTER TABLE records ADD COLUMN request_prefix INTEGER;
    ALTER TABLE records ADD COLUMN request_suffix INTEGER;
"#,
];

/// How a row's bodies are stored: bits of its `bodies_codec` column. A body is compressed when
/// that saves at least an eighth of it; digests and hashes always cover the body as sent.
pub(super) struct Codec;

impl Codec {
    pub(super) const REQUEST_ZSTD: i64 = 1;
    pub(super) const RESPONSE_ZSTD: i64 = 2;
    /// zstd's fastest regular level: several hundred MB/s, and code and JSON shrink 3-4x.
    const LEVEL: i32 = 1;
    /// Bodies shorter than this are stored as they are.
    const MIN: usize = 256;
}

/// Compresses bodies for the store, reusing one zstd context.
pub(super) struct Packer {
    zstd: zstd::bulk::Compressor<'static>,
}

impl Packer {
    pub(super) fn new() -> Self {
        Packer {
            zstd: zstd::bulk::Compressor::new(Codec::LEVEL).expect("zstd level 1 is valid"),
        }
    }

    /// The body as stored, and whether it is compressed.
    pub(super) fn pack<'a>(&mut self, body: &'a [u8]) -> (std::borrow::Cow<'a, [u8]>, bool) {
        if body.len() >= Codec::MIN
            && let Ok(packed) = self.zstd.compress(body)
            && packed.len() <= body.len() - body.len() / 8
        {
            return (packed.into(), true);
        }
        (body.into(), false)
    }

    /// Both bodies of a record as stored, and their `bodies_codec`.
    pub(super) fn pack_bodies<'a>(
        &mut self,
        request: &'a [u8],
        response: &'a [u8],
    ) -> (std::borrow::Cow<'a, [u8]>, std::borrow::Cow<'a, [u8]>, i64) {
        let (request, req_zstd) = self.pack(request);
        let (response, resp_zstd) = self.pack(response);
        let codec = if req_zstd { Codec::REQUEST_ZSTD } else { 0 }
            | if resp_zstd { Codec::RESPONSE_ZSTD } else { 0 };
        (request, response, codec)
    }
}

/// A request stored as a delta: what it shares with its base row's request.
pub(super) struct Delta {
    pub prefix: i64,
    pub suffix: i64,
    /// The base row's request body, `None` if that row is gone.
    pub base: Option<Vec<u8>>,
}

/// A request body as it was sent, from what is stored of it. A delta whose base is missing or
/// too short is returned as stored, so that `audit verify` reports it as not matching its
/// digest.
pub(super) fn assemble(stored: Vec<u8>, delta: Option<Delta>) -> Vec<u8> {
    let Some(Delta {
        prefix,
        suffix,
        base: Some(base),
    }) = delta
    else {
        return stored;
    };
    let (Ok(prefix), Ok(suffix)) = (usize::try_from(prefix), usize::try_from(suffix)) else {
        return stored;
    };
    if prefix
        .checked_add(suffix)
        .is_none_or(|shared| shared > base.len())
    {
        return stored;
    }
    let mut body = Vec::with_capacity(prefix + stored.len() + suffix);
    body.extend_from_slice(&base[..prefix]);
    body.extend_from_slice(&stored);
    body.extend_from_slice(&base[base.len() - suffix..]);
    body
}

/// The request bodies later turns of a session are stored against: each session's last
/// request stored whole (8 MiB of them at most). Agents resend a conversation's history every turn, so a turn mostly
/// repeats the one before; it is stored as the bytes it shares with its session's base at the
/// start and at the end, and what is between them. A turn that shares less than three quarters
/// of itself is stored whole and becomes the base.
///
/// A base also keeps its SHA-256 state after every [`MARK`] bytes, so that a turn's digest
/// starts from the last state inside what it shares with the base rather than from its first
/// byte: hashing was the writer's largest cost on long conversations.
pub(super) struct Bases {
    by_session: std::collections::HashMap<String, Base, foldhash::fast::RandomState>,
    /// Sessions in the order their bases were set, to forget the oldest past the budget.
    order: std::collections::VecDeque<(String, i64)>,
    bytes: usize,
}

/// A session's base: its row, its request body, and the digest's state after each whole
/// [`MARK`] bytes of that body.
struct Base {
    id: i64,
    /// Its request's digest: the row checked before a turn is stored against it is this one
    /// (ids come again after a database is restored from an older copy).
    digest: [u8; 32],
    body: Box<[u8]>,
    marks: Vec<Context>,
}

/// Bytes between the saved digest states of a base.
const MARK: usize = 1 << 10;

/// `body`'s digest, and the digest's state after each whole [`MARK`] bytes of it.
fn marked_digest(body: &[u8]) -> ([u8; 32], Vec<Context>) {
    let mut ctx = Context::new(&SHA256);
    let mut marks = Vec::with_capacity(body.len() / MARK);
    for chunk in body.chunks(MARK) {
        ctx.update(chunk);
        if chunk.len() == MARK {
            marks.push(ctx.clone());
        }
    }
    (finish(ctx), marks)
}

impl Bases {
    /// Requests shorter than this are stored whole.
    const MIN: usize = 4096;
    /// Bytes of bases held in memory, at most.
    const BUDGET: usize = 8 << 20;

    pub(super) fn new() -> Self {
        Self {
            by_session: Default::default(),
            order: Default::default(),
            bytes: 0,
        }
    }

    /// The base `body` can be stored against and what they share (base id, prefix, suffix).
    pub(super) fn delta(&self, session: &str, body: &[u8]) -> Option<(i64, usize, usize)> {
        if body.len() < Self::MIN {
            return None;
        }
        let base = self.by_session.get(session)?;
        let prefix = common_prefix(&base.body, body);
        let suffix = common_suffix(&base.body[prefix..], &body[prefix..]);
        let between = body.len() - prefix - suffix;
        (between * 4 <= body.len()).then_some((base.id, prefix, suffix))
    }

    /// The digest of `body`, which shares its first `prefix` bytes with `session`'s base:
    /// hashed on from the base's last digest state within those bytes.
    pub(super) fn digest_sharing(&self, session: &str, body: &[u8], prefix: usize) -> [u8; 32] {
        let marks = self.by_session.get(session).map_or(&[][..], |b| &b.marks);
        let shared = (prefix.min(body.len()) / MARK).min(marks.len());
        let Some(mark) = shared.checked_sub(1).map(|k| &marks[k]) else {
            return digest(body);
        };
        debug_assert!(
            self.by_session
                .get(session)
                .is_some_and(|b| { b.body.get(..shared * MARK) == body.get(..shared * MARK) })
        );
        let mut ctx = mark.clone();
        ctx.update(&body[shared * MARK..]);
        finish(ctx)
    }

    /// What of `body` is stored, against `delta` (base, prefix, suffix) or whole, and its
    /// digest; for a body stored whole also its digest's states, for it to become `session`'s
    /// base once written.
    pub(super) fn stored_part<'a>(
        &self,
        session: &str,
        body: &'a [u8],
        delta: Option<(i64, usize, usize)>,
    ) -> (&'a [u8], [u8; 32], Option<Vec<Context>>) {
        match delta {
            Some((_, prefix, suffix)) => (
                &body[prefix..body.len() - suffix],
                self.digest_sharing(session, body, prefix),
                None,
            ),
            None => {
                let (digest, marks) = marked_digest(body);
                (body, digest, Some(marks))
            }
        }
    }

    /// Makes `body` (row `id`, whose digest's states are `marks`) `session`'s base.
    pub(super) fn set(
        &mut self,
        session: &str,
        id: i64,
        body: &[u8],
        digest: [u8; 32],
        marks: Vec<Context>,
    ) {
        if body.len() < Self::MIN || body.len() > Self::BUDGET / 4 {
            return;
        }
        let base = Base {
            id,
            digest,
            body: Box::from(body),
            marks,
        };
        let size = Self::size(&base);
        if let Some(old) = self.by_session.insert(session.to_owned(), base) {
            self.bytes -= Self::size(&old);
        }
        self.bytes += size;
        self.order.push_back((session.to_owned(), id));
        while self.bytes > Self::BUDGET
            && let Some((session, id)) = self.order.pop_front()
        {
            if self.by_session.get(&session).is_some_and(|b| b.id == id)
                && let Some(old) = self.by_session.remove(&session)
            {
                self.bytes -= Self::size(&old);
            }
        }
        // Entries left behind by sessions whose base moved on.
        if self.order.len() > 4 * self.by_session.len() + 64 {
            let by_session = &self.by_session;
            self.order
                .retain(|(s, i)| by_session.get(s).is_some_and(|b| b.id == *i));
        }
    }

    /// What a base costs in memory, for the budget.
    fn size(base: &Base) -> usize {
        base.body.len() + base.marks.len() * std::mem::size_of::<Context>()
    }

    /// The digest of `session`'s base's request.
    pub(super) fn digest_of(&self, session: &str) -> Option<[u8; 32]> {
        self.by_session.get(session).map(|b| b.digest)
    }

    /// Forgets the bases that are these rows (another process purged their bodies).
    pub(super) fn forget(&mut self, ids: &[i64]) {
        let mut freed = 0;
        self.by_session.retain(|_, base| {
            let gone = ids.contains(&base.id);
            if gone {
                freed += Self::size(base);
            }
            !gone
        });
        self.bytes -= freed;
    }

    /// Forgets every base (after a purge, whose rows may have been among them).
    pub(super) fn clear(&mut self) {
        *self = Self::new();
    }
}

/// How many leading bytes `a` and `b` share.
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    let n = a.len().min(b.len());
    let mut i = 0;
    while i + 64 <= n && a[i..i + 64] == b[i..i + 64] {
        i += 64;
    }
    while i < n && a[i] == b[i] {
        i += 1;
    }
    i
}

/// How many trailing bytes `a` and `b` share.
fn common_suffix(a: &[u8], b: &[u8]) -> usize {
    let n = a.len().min(b.len());
    let (a, b) = (&a[a.len() - n..], &b[b.len() - n..]);
    let mut i = 0;
    while i + 64 <= n && a[n - i - 64..n - i] == b[n - i - 64..n - i] {
        i += 64;
    }
    while i < n && a[n - i - 1] == b[n - i - 1] {
        i += 1;
    }
    i
}

/// A stored body as it was sent. One that does not decompress is returned as stored, so that
/// `audit verify` reports it as not matching its digest.
pub(super) fn unpack(stored: Vec<u8>, codec: i64, bit: i64) -> Vec<u8> {
    if codec & bit == 0 || stored.is_empty() {
        return stored;
    }
    match zstd::stream::decode_all(stored.as_slice()) {
        Ok(body) => body,
        Err(error) => {
            tracing::warn!(%error, "a stored body does not decompress");
            stored
        }
    }
}

/// What the first row links to.
pub(crate) const GENESIS: [u8; 32] = [0; 32];

/// The chain's head: its last row and, after a purge, where the chain now starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub last_id: i64,
    pub hash: Vec<u8>,
    /// The first row kept (1 until a purge deletes rows).
    pub first_id: i64,
    /// The hash the first kept row links to ([`GENESIS`] until a purge deletes rows).
    pub base: Vec<u8>,
}

/// How a row's hash is computed. Each row keeps the version it was written with (`hash_version`),
/// so a form is never changed once rows use it: a record field added later means a new version,
/// and the rows before it verify as they always did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum HashVersion {
    /// The record as `serde_json` printed it (its field order, empty later fields left out), as
    /// the first stores wrote it. Kept only to verify those rows.
    V1 = 1,
    /// The explicit canonical form of [`link_hash_v2`].
    V2 = 2,
    /// Version 2's form and the approval ([`link_hash_v3`]).
    V3 = 3,
}

impl HashVersion {
    /// The version new rows are written with.
    pub const CURRENT: HashVersion = HashVersion::V3;

    pub(super) fn from_column(value: i64) -> Option<Self> {
        match value {
            1 => Some(Self::V1),
            2 => Some(Self::V2),
            3 => Some(Self::V3),
            _ => None,
        }
    }
}

/// Where the audit store is: a SQLite file (the embedded default) or a PostgreSQL database that
/// several replicas share.
#[derive(Debug, Clone)]
pub enum StoreLocation {
    Sqlite(PathBuf),
    Postgres(std::sync::Arc<super::postgres::PgSettings>),
}

impl std::fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreLocation::Sqlite(path) => write!(f, "{}", path.display()),
            StoreLocation::Postgres(settings) => write!(f, "{}", settings.shown),
        }
    }
}

impl StoreLocation {
    /// Whether there is a store there already (a PostgreSQL database is always taken to be).
    pub fn exists(&self) -> bool {
        match self {
            StoreLocation::Sqlite(path) => path.exists(),
            StoreLocation::Postgres(_) => true,
        }
    }

    /// The SQLite file, if that is the engine.
    pub fn sqlite_path(&self) -> Option<&Path> {
        match self {
            StoreLocation::Sqlite(path) => Some(path),
            StoreLocation::Postgres(_) => None,
        }
    }
}

/// The audit store, on either engine. Every method means the same on both; the engine decides
/// only how rows are kept and how writers take turns on the chain.
pub struct Store {
    engine: Engine,
}

enum Engine {
    Sqlite(Sqlite),
    Postgres(super::postgres::Postgres),
}

/// Calls the same method on whichever engine the store is.
macro_rules! on_engine {
    ($store:expr, $e:ident => $call:expr) => {
        match $store {
            Engine::Sqlite($e) => $call,
            Engine::Postgres($e) => $call,
        }
    };
}

impl Store {
    /// Opens (creating and migrating) the SQLite store at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Ok(Store {
            engine: Engine::Sqlite(Sqlite::open(path)?),
        })
    }

    /// Opens the store at `location`, creating and migrating it as needed.
    pub fn connect(location: &StoreLocation) -> Result<Self, StoreError> {
        Ok(Store {
            engine: match location {
                StoreLocation::Sqlite(path) => Engine::Sqlite(Sqlite::open(path)?),
                StoreLocation::Postgres(settings) => {
                    Engine::Postgres(super::postgres::Postgres::open(settings.clone())?)
                }
            },
        })
    }

    /// Where it is, for messages (a database URL without its password).
    pub fn location(&self) -> String {
        match &self.engine {
            Engine::Sqlite(s) => s.path.display().to_string(),
            Engine::Postgres(p) => p.shown().to_owned(),
        }
    }

    /// The SQLite file, if that is the engine.
    pub fn sqlite_path(&self) -> Option<&Path> {
        match &self.engine {
            Engine::Sqlite(s) => Some(&s.path),
            Engine::Postgres(_) => None,
        }
    }

    /// Appends records in one transaction, extending the chain.
    pub fn append(&mut self, records: &[Record]) -> Result<(), StoreError> {
        self.write(&Batch {
            records: records.to_vec(),
            ..Batch::default()
        })
    }

    /// Writes a batch in one transaction: records (extending the chain), exchanges that started
    /// (kept aside as in flight), and in-flight ones that ended.
    pub fn write(&mut self, batch: &Batch) -> Result<(), StoreError> {
        on_engine!(&mut self.engine, e => e.write(batch))
    }

    /// Exchanges started but not finished (by any replica).
    pub fn pending_count(&self) -> Result<i64, StoreError> {
        on_engine!(&self.engine, e => e.pending_count())
    }

    /// The exchanges in flight now (written aside when they started), oldest first: what they
    /// were when they started, without bodies.
    pub fn in_flight(&self) -> Result<Vec<Record>, StoreError> {
        on_engine!(&self.engine, e => e.in_flight())
    }

    /// Turns what this process's previous run left in flight into `interrupted` records, in
    /// one transaction; on PostgreSQL only the rows this replica wrote. Returns how many.
    pub fn recover_pending(&mut self) -> Result<usize, StoreError> {
        on_engine!(&mut self.engine, e => e.recover_pending())
    }

    /// Closes what replica `replica` left in flight, as `interrupted` records (PostgreSQL: for a
    /// replica that will not come back). Returns how many.
    pub fn recover_replica(&mut self, replica: &str) -> Result<usize, StoreError> {
        match &mut self.engine {
            Engine::Sqlite(_) => Err(StoreError::Unsupported(
                "a SQLite store has one writer: its in-flight exchanges are recovered when it starts",
            )),
            Engine::Postgres(p) => p.recover_replica(replica),
        }
    }

    /// The replicas that wrote to this store, with their last heartbeat and exchanges in
    /// flight (a SQLite store has one writer, shown as `local`).
    pub fn replicas(&self) -> Result<Vec<ReplicaInfo>, StoreError> {
        match &self.engine {
            Engine::Sqlite(s) => Ok(vec![ReplicaInfo {
                name: "local".into(),
                seen_secs_ago: None,
                in_flight: s.pending_count()?,
            }]),
            Engine::Postgres(p) => p.replicas(),
        }
    }

    /// This process's name among replicas (`local` on SQLite).
    pub fn replica(&self) -> &str {
        match &self.engine {
            Engine::Sqlite(_) => "local",
            Engine::Postgres(p) => p.replica(),
        }
    }

    /// Checks the store answers; on PostgreSQL also tells the other replicas this one is alive.
    pub fn heartbeat(&self) -> Result<(), StoreError> {
        match &self.engine {
            Engine::Sqlite(s) => s.pending_count().map(drop),
            Engine::Postgres(p) => p.heartbeat(),
        }
    }

    pub fn count(&self) -> Result<i64, StoreError> {
        on_engine!(&self.engine, e => e.count())
    }

    /// The record with this id (what `replay` and `sessions show` call an exchange id).
    pub fn get(&self, id: i64) -> Result<Option<Record>, StoreError> {
        on_engine!(&self.engine, e => e.get(id))
    }

    /// Every record, in order, with its id.
    pub fn all(&self) -> Result<Vec<(i64, Record)>, StoreError> {
        on_engine!(&self.engine, e => e.all())
    }

    /// The records of one session, in order, with their ids.
    pub fn session(&self, session_id: &str) -> Result<Vec<(i64, Record)>, StoreError> {
        on_engine!(&self.engine, e => e.session(session_id))
    }

    /// A session's turns, `limit` at most, the latest before `before_id` (all when `None`), in
    /// order and with their bodies; and how many of its turns come before the first returned.
    pub fn session_page(
        &self,
        session_id: &str,
        before_id: Option<i64>,
        limit: u32,
    ) -> Result<(Vec<(i64, Record)>, i64), StoreError> {
        on_engine!(&self.engine, e => e.session_page(session_id, before_id, limit))
    }

    /// Records matching `filter`, newest first, without their bodies (the admin API's list).
    pub fn exchanges(&self, filter: &ExchangeFilter) -> Result<Vec<(i64, Record)>, StoreError> {
        on_engine!(&self.engine, e => e.exchanges(filter))
    }

    /// Sessions with exchanges, newest first; `since` is an RFC 3339 time, `scope` an identity.
    pub fn sessions(
        &self,
        since: Option<&str>,
        scope: Option<&str>,
    ) -> Result<Vec<SessionSummary>, StoreError> {
        on_engine!(&self.engine, e => e.sessions(since, scope))
    }

    /// Clears bodies of records started before `bodies_before` and deletes records started before
    /// `records_before` (both RFC 3339). The chain stays verifiable: bodies are covered by their
    /// digests, and the first kept row's link becomes the chain's base.
    pub fn purge(
        &mut self,
        bodies_before: &str,
        records_before: &str,
    ) -> Result<PurgeReport, StoreError> {
        on_engine!(&mut self.engine, e => e.purge(bodies_before, records_before))
    }

    /// The chain's head, `None` while the store holds no row yet.
    pub fn head(&self) -> Result<Option<Head>, StoreError> {
        on_engine!(&self.engine, e => e.head())
    }

    /// The hash row `id` holds, if the row exists.
    pub fn hash_at(&self, id: i64) -> Result<Option<Vec<u8>>, StoreError> {
        on_engine!(&self.engine, e => e.hash_at(id))
    }

    /// Keeps a signed checkpoint.
    pub fn add_checkpoint(&self, c: &Checkpoint) -> Result<(), StoreError> {
        on_engine!(&self.engine, e => e.add_checkpoint(c))
    }

    /// The checkpoints kept in the store, oldest first, each with its row id.
    pub fn checkpoints(&self) -> Result<Vec<(i64, Checkpoint)>, StoreError> {
        on_engine!(&self.engine, e => e.checkpoints())
    }

    /// The last row the newest stored checkpoint covers (0 when none was made).
    pub fn last_checkpointed(&self) -> Result<i64, StoreError> {
        on_engine!(&self.engine, e => e.last_checkpointed())
    }

    /// Walks the chain; `None` if every row and the head hold, else the first break.
    pub fn verify(&self) -> Result<Option<ChainBreak>, StoreError> {
        on_engine!(&self.engine, e => e.verify())
    }

    /// The SQLite connection, for tests that tamper with rows.
    #[cfg(test)]
    pub(super) fn conn(&self) -> &Connection {
        match &self.engine {
            Engine::Sqlite(s) => &s.conn,
            Engine::Postgres(_) => panic!("not a SQLite store"),
        }
    }
}

/// One replica as the store knows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReplicaInfo {
    pub name: String,
    /// Seconds since its last heartbeat; `None` when it never sent one (or on SQLite).
    pub seen_secs_ago: Option<i64>,
    pub in_flight: i64,
}

/// The embedded engine: one SQLite file in WAL mode.
pub(super) struct Sqlite {
    conn: Connection,
    packer: Packer,
    /// Boxed: the store is one of two engines, and the other is small.
    bases: Box<Bases>,
    path: PathBuf,
}

impl Sqlite {
    /// Opens the database, creating it and applying migrations as needed.
    pub(super) fn open(path: &Path) -> Result<Self, StoreError> {
        let err = |source| StoreError::Sqlite {
            path: path.to_owned(),
            source,
        };
        let conn = Connection::open(path).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(err)?;
        let mut store = Sqlite {
            conn,
            packer: Packer::new(),
            bases: Box::new(Bases::new()),
            path: path.to_owned(),
        };
        store.migrate()?;
        Ok(store)
    }

    fn err(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        let version: i64 = self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(|e| self.err(e))?;
        let known = MIGRATIONS.len() as i64;
        if version > known {
            return Err(StoreError::TooNew {
                path: self.path.clone(),
                found: version,
                known,
            });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = self.conn.transaction().map_err(|e| StoreError::Sqlite {
                path: self.path.clone(),
                source: e,
            })?;
            tx.execute_batch(sql)
                .and_then(|_| tx.pragma_update(None, "user_version", i as i64 + 1))
                .and_then(|_| tx.commit())
                .map_err(|e| StoreError::Sqlite {
                    path: self.path.clone(),
                    source: e,
                })?;
        }
        Ok(())
    }

    /// Exchanges started but not finished (what a crash would leave).
    pub(super) fn pending_count(&self) -> Result<i64, StoreError> {
        self.conn
            .query_row("SELECT count(*) FROM pending", [], |r| r.get(0))
            .map_err(|e| self.err(e))
    }

    /// The exchanges in flight now (written aside when they started), oldest first: what they
    /// were when they started, without bodies.
    pub(super) fn in_flight(&self) -> Result<Vec<Record>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT record FROM pending ORDER BY rowid LIMIT 1000")
            .map_err(|e| self.err(e))?;
        let rows: Vec<String> = stmt
            .query_map([], |r| r.get(0))
            .and_then(Iterator::collect)
            .map_err(|e| self.err(e))?;
        Ok(rows
            .iter()
            .filter_map(|json| serde_json::from_str(json).ok())
            .collect())
    }

    /// Turns what a previous run left in flight into `interrupted` records, in one transaction.
    /// Returns how many there were.
    pub(super) fn recover_pending(&mut self) -> Result<usize, StoreError> {
        type Row = (String, String, Vec<u8>, Vec<u8>, i64);
        let rows: Vec<Row> = {
            let mut stmt = self
                .conn
                .prepare(
                    "SELECT key, record, request_body, original_body, bodies_codec FROM pending
                     ORDER BY rowid",
                )
                .map_err(|e| self.err(e))?;
            stmt.query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .and_then(Iterator::collect)
            .map_err(|e| self.err(e))?
        };
        let mut batch = Batch::default();
        for (key, json, request_body, original_body, codec) in rows {
            if let Ok(mut record) = serde_json::from_str::<Record>(&json) {
                record.outcome = "interrupted".into();
                record.request_body = unpack(request_body, codec, Codec::REQUEST_ZSTD).into();
                record.original_body = original_body;
                batch.records.push(record);
            }
            batch.closed.push(key);
        }
        let n = batch.closed.len();
        if n > 0 {
            self.write(&batch)?;
        }
        Ok(n)
    }

    /// Writes a batch in one transaction: records (extending the chain), exchanges that started
    /// (pending), and pending ones that ended.
    pub(super) fn write(&mut self, batch: &Batch) -> Result<(), StoreError> {
        let records = &batch.records;
        let path = self.path.clone();
        let err = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(err)?;
        // Statements run once per batch are kept prepared: parsing them again was a visible
        // share of the writer's time when batches are small (one request at a time).
        let head: Option<(i64, Vec<u8>)> = tx
            .prepare_cached("SELECT last_id, hash FROM chain_head WHERE one = 1")
            .and_then(|mut s| s.query_row([], |r| Ok((r.get(0)?, r.get(1)?))).optional())
            .map_err(err)?;
        let (mut id, mut prev) = head.unwrap_or((0, GENESIS.to_vec()));
        let first = id + 1;
        // Records stored whole, to become their session's base once committed.
        let mut new_bases = Vec::new();
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO records (id, kind, started_at, duration_ms, client, scope, mode, provider, host,
                     method, path, status, outcome, bytes_up, bytes_down, findings, session_id, model, ttfb_ms,
                     rule, usage, response_text, request_body, response_body, prev_hash, hash,
                     request_digest, response_digest, original_body, region, jurisdiction, groups, token,
                     profile, hash_version, approval, bodies_codec, request_base, request_prefix,
                     request_suffix)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,
                     ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31, ?32, ?33, ?34, ?35,
                     ?36, ?37, ?38, ?39, ?40)",
                )
                .map_err(err)?;
            // A base still holds its body: a purge (by another process, too) may have cleared it.
            let mut kept = tx
                .prepare_cached(
                    "SELECT bodies_purged = 0 AND request_digest = ?2 FROM records WHERE id = ?1",
                )
                .map_err(err)?;
            for (i, r) in records.iter().enumerate() {
                id += 1;
                let delta = match self.bases.delta(&r.session_id, &r.request_body) {
                    Some(d @ (base, _, _)) => {
                        let digest = self.bases.digest_of(&r.session_id);
                        let intact: Option<bool> = kept
                            .query_row(params![base, digest], |row| row.get(0))
                            .optional()
                            .map_err(err)?;
                        (intact == Some(true)).then_some(d)
                    }
                    None => None,
                };
                let (stored, req_digest, marks) =
                    self.bases
                        .stored_part(&r.session_id, &r.request_body, delta);
                if let Some(marks) = marks {
                    new_bases.push((i, req_digest, marks));
                }
                let resp_digest = digest(&r.response_body);
                let hash = link_hash(
                    HashVersion::CURRENT,
                    id,
                    &prev,
                    r,
                    &req_digest,
                    &resp_digest,
                );
                let (request_body, response_body, codec) =
                    self.packer.pack_bodies(stored, &r.response_body);
                insert
                    .execute(params![
                        id,
                        r.kind.as_str(),
                        r.started_at,
                        r.duration_ms as i64,
                        r.client,
                        r.scope,
                        r.mode,
                        r.provider,
                        r.host,
                        r.method,
                        r.path,
                        r.status,
                        r.outcome,
                        r.bytes_up as i64,
                        r.bytes_down as i64,
                        r.findings,
                        r.session_id,
                        r.model,
                        r.ttfb_ms.map(|v| v as i64),
                        r.rule,
                        r.usage,
                        r.response_text,
                        request_body,
                        response_body,
                        prev,
                        hash,
                        req_digest,
                        resp_digest,
                        r.original_body,
                        r.region,
                        r.jurisdiction,
                        r.groups,
                        r.token,
                        r.profile,
                        HashVersion::CURRENT as i64,
                        r.approval,
                        codec,
                        delta.map(|d| d.0),
                        delta.map(|d| d.1 as i64),
                        delta.map(|d| d.2 as i64),
                    ])
                    .map_err(err)?;
                prev = hash.to_vec();
            }
            let mut open = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO pending (key, record, request_body, original_body,
                     bodies_codec) VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .map_err(err)?;
            for (key, r) in &batch.opened {
                let json = serde_json::to_string(r).expect("records serialize");
                // Kept aside only until the exchange ends: not worth compressing.
                open.execute(params![key, json, &r.request_body[..], r.original_body, 0])
                    .map_err(err)?;
            }
            let mut close = tx
                .prepare_cached("DELETE FROM pending WHERE key = ?1")
                .map_err(err)?;
            for key in &batch.closed {
                close.execute([key]).map_err(err)?;
            }
        }
        if records.is_empty() {
            return tx.commit().map_err(err);
        }
        tx.prepare_cached(
            "INSERT INTO chain_head (one, last_id, hash, first_id) VALUES (1, ?1, ?2, 1)
             ON CONFLICT (one) DO UPDATE SET last_id = excluded.last_id, hash = excluded.hash",
        )
        .and_then(|mut s| s.execute(params![id, prev]))
        .map_err(err)?;
        tx.commit().map_err(err)?;
        for (i, digest, marks) in new_bases {
            let r = &records[i];
            self.bases.set(
                &r.session_id,
                first + i as i64,
                &r.request_body,
                digest,
                marks,
            );
        }
        Ok(())
    }

    pub(super) fn count(&self) -> Result<i64, StoreError> {
        self.conn
            .query_row("SELECT count(*) FROM records", [], |r| r.get(0))
            .map_err(|e| self.err(e))
    }

    /// The record with this id (what `replay` and `sessions show` call an exchange id).
    pub(super) fn get(&self, id: i64) -> Result<Option<Record>, StoreError> {
        self.conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM records WHERE id = ?1"),
                [id],
                row_to_record,
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Every record, in order, with its id.
    pub(super) fn all(&self) -> Result<Vec<(i64, Record)>, StoreError> {
        self.records_where("1 = 1", [])
    }

    /// The records of one session, in order, with their ids.
    pub(super) fn session(&self, session_id: &str) -> Result<Vec<(i64, Record)>, StoreError> {
        self.records_where("session_id = ?1", [session_id])
    }

    /// A session's turns, `limit` at most, the latest before `before_id` (all when `None`), in
    /// order and with their bodies; and how many of its turns come before the first returned.
    pub(super) fn session_page(
        &self,
        session_id: &str,
        before_id: Option<i64>,
        limit: u32,
    ) -> Result<(Vec<(i64, Record)>, i64), StoreError> {
        let before = before_id.unwrap_or(i64::MAX);
        let mut rows = self.records_where(
            &format!(
                "id IN (SELECT id FROM records WHERE session_id = ?1 AND id < ?2 ORDER BY id DESC LIMIT {})",
                limit.clamp(1, 1000)
            ),
            rusqlite::params![session_id, before],
        )?;
        rows.sort_by_key(|(id, _)| *id);
        let first = rows.first().map_or(before, |(id, _)| *id);
        let earlier: i64 = self
            .conn
            .query_row(
                "SELECT count(*) FROM records WHERE session_id = ?1 AND id < ?2",
                rusqlite::params![session_id, first],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))?;
        Ok((rows, earlier))
    }

    fn records_where<P: rusqlite::Params>(
        &self,
        condition: &str,
        params: P,
    ) -> Result<Vec<(i64, Record)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {COLUMNS} FROM records WHERE {condition} ORDER BY id"
            ))
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params, |row| Ok((row.get(0)?, row_to_record(row)?)))
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Records matching `filter`, newest first, without their bodies (the admin API's list).
    pub(super) fn exchanges(
        &self,
        filter: &ExchangeFilter,
    ) -> Result<Vec<(i64, Record)>, StoreError> {
        let mut conditions: Vec<&str> = Vec::new();
        let mut params: Vec<rusqlite::types::Value> = Vec::new();
        let mut text = |condition: &'static str, value: &Option<String>| {
            if let Some(v) = value {
                conditions.push(condition);
                params.push(rusqlite::types::Value::Text(v.clone()));
            }
        };
        text("started_at >= ?", &filter.since);
        text("started_at < ?", &filter.until);
        text("scope = ?", &filter.user);
        text("provider = ?", &filter.provider);
        text("outcome = ?", &filter.outcome);
        text("model = ?", &filter.model);
        text("kind = ?", &filter.kind);
        text("session_id = ?", &filter.session);
        if let Some(status) = filter.status {
            conditions.push("status = ?");
            params.push(rusqlite::types::Value::Integer(i64::from(status)));
        }
        if let Some(before) = filter.before_id {
            conditions.push("id < ?");
            params.push(rusqlite::types::Value::Integer(before));
        }
        match filter.has_findings {
            Some(true) => conditions.push("findings != '[]'"),
            Some(false) => conditions.push("findings = '[]'"),
            None => {}
        }
        if let Some(region) = &filter.region {
            conditions.push("(',' || region || ',') LIKE ?");
            params.push(rusqlite::types::Value::Text(format!(
                "%,{},%",
                region.replace(['%', '_'], "")
            )));
        }
        if let Some(decision) = &filter.approval {
            conditions.push("json_extract(approval, '$.decision') = ?");
            params.push(rusqlite::types::Value::Text(decision.clone()));
        }
        if let Some(group) = &filter.group {
            // Groups are kept comma-separated.
            conditions.push("(',' || groups || ',') LIKE ?");
            params.push(rusqlite::types::Value::Text(format!(
                "%,{},%",
                group.replace(['%', '_'], "")
            )));
        }
        let condition = if conditions.is_empty() {
            "1 = 1".to_owned()
        } else {
            conditions.join(" AND ")
        };
        let limit = filter.limit.clamp(1, 1000);
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {SUMMARY_COLUMNS} FROM records WHERE {condition} ORDER BY id DESC LIMIT {limit}"
            ))
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(params), |row| {
                Ok((row.get(0)?, row_to_record(row)?))
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Sessions with exchanges, newest first; `since` is an RFC 3339 time, `scope` an identity.
    pub(super) fn sessions(
        &self,
        since: Option<&str>,
        scope: Option<&str>,
    ) -> Result<Vec<SessionSummary>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT session_id, scope, max(provider), min(started_at), max(started_at), count(*),
                        sum(CASE WHEN status >= 400 THEN 1 ELSE 0 END)
                 FROM records
                 WHERE kind = 'exchange' AND (?1 IS NULL OR started_at >= ?1) AND (?2 IS NULL OR scope = ?2)
                 GROUP BY session_id, scope ORDER BY max(started_at) DESC",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(rusqlite::params![since, scope], |r| {
                Ok(SessionSummary {
                    id: r.get(0)?,
                    scope: r.get(1)?,
                    provider: r.get(2)?,
                    first_at: r.get(3)?,
                    last_at: r.get(4)?,
                    exchanges: r.get(5)?,
                    refused: r.get(6)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Clears bodies of records started before `bodies_before` and deletes records started before
    /// `records_before` (both RFC 3339). The chain stays verifiable: bodies are covered by their
    /// digests, and the first kept row's link becomes the chain's base.
    pub(super) fn purge(
        &mut self,
        bodies_before: &str,
        records_before: &str,
    ) -> Result<PurgeReport, StoreError> {
        let path = self.path.clone();
        let err = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(err)?;
        // Requests stored against a base that loses its body (or its row) here, while they
        // keep theirs, are stored whole first.
        let first_kept: i64 = tx
            .query_row(
                "SELECT id FROM records WHERE started_at >= ?1 ORDER BY id LIMIT 1",
                [records_before],
                |r| r.get(0),
            )
            .optional()
            .map_err(err)?
            .unwrap_or(i64::MAX);
        let dependents: Vec<i64> = tx
            .prepare(
                "SELECT d.id FROM records d JOIN records b ON b.id = d.request_base
                 WHERE d.bodies_purged = 0 AND d.started_at >= ?1 AND d.id >= ?2
                   AND (b.started_at < ?1 OR b.id < ?2 OR b.bodies_purged = 1)",
            )
            .and_then(|mut s| {
                s.query_map(params![bodies_before, first_kept], |r| r.get(0))?
                    .collect()
            })
            .map_err(err)?;
        for id in dependents {
            let record = tx
                .query_row(
                    &format!("SELECT {COLUMNS} FROM records WHERE id = ?1"),
                    [id],
                    row_to_record,
                )
                .map_err(err)?;
            let (body, zstd) = self.packer.pack(&record.request_body);
            tx.execute(
                "UPDATE records SET request_body = ?1, bodies_codec = (bodies_codec & ~?2) | ?3,
                 request_base = NULL, request_prefix = NULL, request_suffix = NULL WHERE id = ?4",
                params![
                    body,
                    Codec::REQUEST_ZSTD,
                    if zstd { Codec::REQUEST_ZSTD } else { 0 },
                    id
                ],
            )
            .map_err(err)?;
        }
        let bodies = tx
            .execute(
                "UPDATE records SET request_body = x'', response_body = x'', response_text = NULL,
                 original_body = x'', bodies_purged = 1, bodies_codec = 0, request_base = NULL,
                 request_prefix = NULL, request_suffix = NULL
                 WHERE started_at < ?1 AND bodies_purged = 0",
                [bodies_before],
            )
            .map_err(err)?;
        // Statements run once per batch are kept prepared: parsing them again was a visible
        // share of the writer's time when batches are small (one request at a time).
        let head: Option<(i64, Vec<u8>)> = tx
            .prepare_cached("SELECT last_id, hash FROM chain_head WHERE one = 1")
            .and_then(|mut s| s.query_row([], |r| Ok((r.get(0)?, r.get(1)?))).optional())
            .map_err(err)?;
        let mut records = 0;
        if let Some((last_id, last_hash)) = head {
            // Records are deleted from the oldest up to the first one young enough to keep.
            let keep: Option<(i64, Vec<u8>)> = tx
                .query_row(
                    "SELECT id, prev_hash FROM records WHERE started_at >= ?1 ORDER BY id LIMIT 1",
                    [records_before],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(err)?;
            let (first_id, base) = keep.unwrap_or((last_id + 1, last_hash));
            records = tx
                .execute("DELETE FROM records WHERE id < ?1", [first_id])
                .map_err(err)?;
            if records > 0 {
                tx.execute(
                    "UPDATE chain_head SET first_id = ?1, base_hash = ?2 WHERE one = 1",
                    params![first_id, base],
                )
                .map_err(err)?;
            }
        }
        tx.commit().map_err(err)?;
        self.bases.clear();
        Ok(PurgeReport { bodies, records })
    }

    /// The chain's head, `None` while the store holds no row yet.
    pub(super) fn head(&self) -> Result<Option<Head>, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT last_id, hash, first_id, base_hash FROM chain_head WHERE one = 1",
            )
            .and_then(|mut s| {
                s.query_row([], |r| {
                    Ok(Head {
                        last_id: r.get(0)?,
                        hash: r.get(1)?,
                        first_id: r.get(2)?,
                        base: r
                            .get::<_, Option<Vec<u8>>>(3)?
                            .unwrap_or_else(|| GENESIS.to_vec()),
                    })
                })
                .optional()
            })
            .map_err(|e| self.err(e))
    }

    /// The hash row `id` holds, if the row exists.
    pub(super) fn hash_at(&self, id: i64) -> Result<Option<Vec<u8>>, StoreError> {
        self.conn
            .query_row("SELECT hash FROM records WHERE id = ?1", [id], |r| r.get(0))
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Keeps a signed checkpoint.
    pub(super) fn add_checkpoint(&self, c: &Checkpoint) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO checkpoints (version, last_id, hash, records, first_id, base_hash, at,
                 key_id, signature) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    c.version,
                    c.last_id,
                    c.hash,
                    c.records,
                    c.first_id,
                    c.base,
                    c.at,
                    c.key_id,
                    c.signature
                ],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// The checkpoints kept in the store, oldest first, each with its row id.
    pub(super) fn checkpoints(&self) -> Result<Vec<(i64, Checkpoint)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, version, last_id, hash, records, first_id, base_hash, at, key_id,
                 signature FROM checkpoints ORDER BY id",
            )
            .map_err(|e| self.err(e))?;
        stmt.query_map([], |r| {
            Ok((
                r.get(0)?,
                Checkpoint {
                    version: r.get(1)?,
                    last_id: r.get(2)?,
                    hash: r.get(3)?,
                    records: r.get(4)?,
                    first_id: r.get(5)?,
                    base: r.get(6)?,
                    at: r.get(7)?,
                    key_id: r.get(8)?,
                    signature: r.get(9)?,
                },
            ))
        })
        .and_then(Iterator::collect)
        .map_err(|e| self.err(e))
    }

    /// The last row the newest stored checkpoint covers (0 when none was made).
    pub(super) fn last_checkpointed(&self) -> Result<i64, StoreError> {
        self.conn
            .query_row(
                "SELECT coalesce(max(last_id), 0) FROM checkpoints",
                [],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))
    }

    /// Walks the chain; `None` if every row and the head hold, else the first break.
    pub(super) fn verify(&self) -> Result<Option<ChainBreak>, StoreError> {
        let (first_id, base): (i64, Option<Vec<u8>>) = self
            .conn
            .query_row(
                "SELECT first_id, base_hash FROM chain_head WHERE one = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| self.err(e))?
            .unwrap_or((1, None));
        let mut walk = ChainWalk::new(first_id, base);
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT {COLUMNS} FROM records ORDER BY id"))
            .map_err(|e| self.err(e))?;
        let mut rows = stmt.query([]).map_err(|e| self.err(e))?;
        while let Some(row) = rows.next().map_err(|e| self.err(e))? {
            let stored = StoredRow {
                id: row.get(0).map_err(|e| self.err(e))?,
                record: row_to_record(row).map_err(|e| self.err(e))?,
                kind: row.get(1).map_err(|e| self.err(e))?,
                prev: row.get(16).map_err(|e| self.err(e))?,
                hash: row.get(17).map_err(|e| self.err(e))?,
                version: row.get(35).map_err(|e| self.err(e))?,
                request_digest: row.get(26).map_err(|e| self.err(e))?,
                response_digest: row.get(27).map_err(|e| self.err(e))?,
                purged: row.get(28).map_err(|e| self.err(e))?,
            };
            if let Some(brk) = walk.step(stored) {
                return Ok(Some(brk));
            }
        }
        let head: Option<(i64, Vec<u8>)> = self
            .conn
            .query_row(
                "SELECT last_id, hash FROM chain_head WHERE one = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        Ok(walk.end(head))
    }
}

/// A stored row as the chain's walk reads it.
pub(super) struct StoredRow {
    pub id: i64,
    pub record: Record,
    /// The `kind` column as stored (the record's kind is parsed from it, leniently).
    pub kind: String,
    pub prev: Vec<u8>,
    pub hash: Vec<u8>,
    pub version: i64,
    pub request_digest: Vec<u8>,
    pub response_digest: Vec<u8>,
    pub purged: bool,
}

/// The walk `audit verify` makes along the chain, the same on every engine: rows in id order,
/// then the head.
pub(super) struct ChainWalk {
    expected_id: i64,
    prev: Vec<u8>,
    newest_version: HashVersion,
}

impl ChainWalk {
    /// A walk from the chain's first kept row and the hash it links to (genesis before purges).
    pub(super) fn new(first_id: i64, base: Option<Vec<u8>>) -> Self {
        ChainWalk {
            expected_id: first_id,
            prev: base.unwrap_or_else(|| GENESIS.to_vec()),
            newest_version: HashVersion::V1,
        }
    }

    /// The next row: `Some` where the chain breaks there.
    pub(super) fn step(&mut self, row: StoredRow) -> Option<ChainBreak> {
        let id = row.id;
        let brk = |reason: &str| {
            Some(ChainBreak {
                row: id,
                reason: reason.into(),
            })
        };
        if id != self.expected_id {
            return brk(&format!("row {} is missing (deleted)", self.expected_id));
        }
        let Some(version) = HashVersion::from_column(row.version) else {
            return brk(&format!(
                "its hash version {} is unknown to this Tollgate",
                row.version
            ));
        };
        // Versions only ever go up: an older form after a newer one was written by hand.
        if version < self.newest_version {
            return brk(&format!(
                "it is hashed in version {} after rows hashed in version {} (rewritten)",
                version as i64, self.newest_version as i64
            ));
        }
        self.newest_version = version;
        if row.prev != self.prev {
            return brk(
                "its link to the previous row does not match (a row before it was altered or replaced)",
            );
        }
        let record = &row.record;
        if !row.purged
            && (digest(&record.request_body) != row.request_digest.as_slice()
                || digest(&record.response_body) != row.response_digest.as_slice())
        {
            return brk("its bodies do not match their digests (altered)");
        }
        if row.kind != record.kind.as_str()
            || link_hash(
                version,
                id,
                &self.prev,
                record,
                &row.request_digest,
                &row.response_digest,
            )
            .as_slice()
                != row.hash
        {
            return brk("its contents do not match its hash (altered)");
        }
        self.prev = row.hash;
        self.expected_id += 1;
        None
    }

    /// The last row of the walk (0 before the first).
    pub(super) fn last(&self) -> i64 {
        self.expected_id - 1
    }

    /// After the last row: whether the head (its last id and hash) matches where the walk ended.
    pub(super) fn end(self, head: Option<(i64, Vec<u8>)>) -> Option<ChainBreak> {
        let last = self.last();
        match head {
            None if last == 0 => None,
            Some((head_id, head_hash)) if head_id == last && head_hash == self.prev => None,
            Some((head_id, _)) if head_id > last => Some(ChainBreak {
                row: last + 1,
                reason: format!(
                    "rows {} to {head_id} are missing (deleted at the end)",
                    last + 1
                ),
            }),
            _ => Some(ChainBreak {
                row: last,
                reason: "the chain head does not match the last row (altered)".into(),
            }),
        }
    }
}

/// [`COLUMNS`] with the bodies left out (empty), for lists.
pub(super) const SUMMARY_COLUMNS: &str =
    "id, kind, started_at, duration_ms, client, scope, mode, provider, host, method, path,
     status, outcome, bytes_up, bytes_down, findings, prev_hash, hash, session_id, model, ttfb_ms,
     rule, usage, NULL, x'', x'', request_digest, response_digest,
     bodies_purged, x'', region, jurisdiction, groups, token, profile, hash_version,
     approval, 0, NULL, NULL, NULL, NULL, NULL";

macro_rules! columns {
    () => {
        "id, kind, started_at, duration_ms, client, scope, mode, provider, host, method, path,
     status, outcome, bytes_up, bytes_down, findings, prev_hash, hash, session_id, model, ttfb_ms,
     rule, usage, response_text, request_body, response_body, request_digest, response_digest,
     bodies_purged, original_body, region, jurisdiction, groups, token, profile, hash_version,
     approval, bodies_codec"
    };
}

/// A record's columns, in the order [`row_to_record`] reads them (both stores), and what a
/// request stored as a delta needs: its base row's request body.
pub(super) const COLUMNS: &str = concat!(
    columns!(),
    ", request_base, request_prefix, request_suffix,
     (SELECT b.request_body FROM records b WHERE b.id = records.request_base),
     (SELECT b.bodies_codec FROM records b WHERE b.id = records.request_base)"
);

fn row_to_record(row: &rusqlite::Row<'_>) -> rusqlite::Result<Record> {
    let text = |i: usize| -> rusqlite::Result<String> { row.get(i) };
    Ok(Record {
        kind: match text(1)?.as_str() {
            "tunnel" => super::RecordKind::Tunnel,
            "connect-refused" => super::RecordKind::ConnectRefused,
            "purge" => super::RecordKind::Purge,
            _ => super::RecordKind::Exchange,
        },
        started_at: text(2)?,
        duration_ms: row.get::<_, i64>(3)? as u64,
        client: text(4)?,
        scope: text(5)?,
        mode: text(6)?,
        provider: row.get(7)?,
        host: text(8)?,
        method: row.get(9)?,
        path: row.get(10)?,
        status: row.get(11)?,
        outcome: text(12)?,
        bytes_up: row.get::<_, i64>(13)? as u64,
        bytes_down: row.get::<_, i64>(14)? as u64,
        findings: text(15)?,
        session_id: text(18)?,
        model: row.get(19)?,
        ttfb_ms: row.get::<_, Option<i64>>(20)?.map(|v| v as u64),
        rule: row.get(21)?,
        usage: row.get(22)?,
        region: row.get(30)?,
        jurisdiction: row.get(31)?,
        groups: row.get(32)?,
        token: row.get(33)?,
        profile: row.get(34)?,
        approval: row.get(36)?,
        response_text: row.get(23)?,
        request_body: assemble(
            unpack(row.get(24)?, row.get(37)?, Codec::REQUEST_ZSTD),
            row.get::<_, Option<i64>>(38)?
                .map(|_| -> rusqlite::Result<_> {
                    Ok(Delta {
                        prefix: row.get::<_, Option<i64>>(39)?.unwrap_or(0),
                        suffix: row.get::<_, Option<i64>>(40)?.unwrap_or(0),
                        base: row.get::<_, Option<Vec<u8>>>(41)?.map(|b| {
                            let codec = row.get::<_, Option<i64>>(42).ok().flatten().unwrap_or(0);
                            unpack(b, codec, Codec::REQUEST_ZSTD)
                        }),
                    })
                })
                .transpose()?,
        )
        .into(),
        response_body: unpack(row.get(25)?, row.get(37)?, Codec::RESPONSE_ZSTD),
        original_body: row.get(29)?,
    })
}

/// What a purge removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PurgeReport {
    /// Records whose bodies were cleared.
    pub bodies: usize,
    /// Records deleted.
    pub records: usize,
}

/// What [`Store::exchanges`] selects; every field set narrows it.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExchangeFilter {
    /// RFC 3339 times: started at or after `since`, before `until`.
    pub since: Option<String>,
    pub until: Option<String>,
    /// The identity (`scope`).
    pub user: Option<String>,
    pub group: Option<String>,
    pub provider: Option<String>,
    pub status: Option<u16>,
    pub outcome: Option<String>,
    pub model: Option<String>,
    /// `exchange`, `tunnel`, `connect-refused`, `purge`.
    pub kind: Option<String>,
    pub session: Option<String>,
    pub has_findings: Option<bool>,
    /// One of the regions the request was headed to.
    pub region: Option<String>,
    /// What became of the approval a rule asked for: `approved`, `denied`, `timeout`,
    /// `abandoned`, `pending`, `granted`.
    pub approval: Option<String>,
    /// Pagination: only records with a smaller id (the last id of the page before).
    pub before_id: Option<i64>,
    /// At most this many (default 50, at most 1000).
    #[serde(default = "default_limit")]
    pub limit: u32,
}

fn default_limit() -> u32 {
    50
}

/// One session as `sessions list` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SessionSummary {
    pub id: String,
    pub scope: String,
    pub provider: Option<String>,
    pub first_at: String,
    pub last_at: String,
    pub exchanges: i64,
    pub refused: i64,
}

/// A SHA-256 context's digest.
fn finish(ctx: Context) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

pub(super) fn digest(body: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(ring::digest::digest(&SHA256, body).as_ref());
    out
}

/// The hash a row gets in the chain, in `version`'s form: its id, the previous row's hash, the
/// record's fields and its bodies' digests. Digests, not bodies: retention may clear bodies and
/// the chain still verifies.
pub(super) fn link_hash(
    version: HashVersion,
    id: i64,
    prev: &[u8],
    record: &Record,
    req_digest: &[u8],
    resp_digest: &[u8],
) -> [u8; 32] {
    match version {
        HashVersion::V1 => link_hash_v1(id, prev, record, req_digest, resp_digest),
        HashVersion::V2 => link_hash_v2(id, prev, record, req_digest, resp_digest),
        HashVersion::V3 => link_hash_v3(id, prev, record, req_digest, resp_digest),
    }
}

/// The hash a row holding `record` (bodies included) gets when it follows a row hashed `prev`.
/// For tools and tests that must compute the chain as the store does.
pub fn row_hash(version: HashVersion, id: i64, prev: &[u8], record: &Record) -> [u8; 32] {
    let (req, resp) = (digest(&record.request_body), digest(&record.response_body));
    link_hash(version, id, prev, record, &req, &resp)
}

/// Version 1: SHA-256 over the id (8 bytes big-endian), the previous hash, the record's
/// `serde_json` form and the two body digests, concatenated. The JSON depends on the struct's
/// field order and serde attributes, which is why later rows use [`link_hash_v2`]; this stays
/// exactly as it was for the rows written with it.
fn link_hash_v1(
    id: i64,
    prev: &[u8],
    record: &Record,
    req_digest: &[u8],
    resp_digest: &[u8],
) -> [u8; 32] {
    let mut ctx = Context::new(&SHA256);
    ctx.update(&id.to_be_bytes());
    ctx.update(prev);
    ctx.update(&serde_json::to_vec(record).expect("records serialize"));
    ctx.update(req_digest);
    ctx.update(resp_digest);
    finish(ctx)
}

/// Version 2: SHA-256 of the canonical encoding (see [`super::canonical`]) of, in this order:
///
/// 1. the tag `tollgate-row/2` (bytes);
/// 2. `id` (integer), then the previous row's hash (32 bytes, fixed);
/// 3. `kind` (text, as [`super::RecordKind::as_str`] spells it), `started_at`,
///    `duration_ms` (integer), `client`, `scope`, `mode`, `provider` (optional), `host`,
///    `method` (optional), `path` (optional), `status` (optional integer), `outcome`,
///    `bytes_up` (integer), `bytes_down` (integer), `findings`, `session_id`, `model` (optional),
///    `ttfb_ms` (optional integer), `rule` (optional), `usage` (optional), `region` (optional),
///    `jurisdiction` (optional), `groups` (optional), `token` (optional), `profile` (optional);
/// 4. the request body's and the response body's SHA-256 (32 bytes each, fixed).
///
/// Fields are text unless marked. Not covered: `response_text` (derived from the response body
/// and purged with it) and `original_body` (sealed; its AES-GCM tag protects it).
fn link_hash_v2(
    id: i64,
    prev: &[u8],
    r: &Record,
    req_digest: &[u8],
    resp_digest: &[u8],
) -> [u8; 32] {
    let mut c = Canonical::new(b"tollgate-row/2");
    fields_v2(&mut c, id, prev, r);
    c.fixed(req_digest).fixed(resp_digest);
    digest(&c.finish())
}

/// Version 2's values after its tag and before the digests (shared with version 3).
fn fields_v2(c: &mut Canonical, id: i64, prev: &[u8], r: &Record) {
    c.i64(id).fixed(prev);
    c.text(r.kind.as_str())
        .text(&r.started_at)
        .u64(r.duration_ms)
        .text(&r.client)
        .text(&r.scope)
        .text(&r.mode)
        .opt_text(r.provider.as_deref())
        .text(&r.host)
        .opt_text(r.method.as_deref())
        .opt_text(r.path.as_deref())
        .opt_u64(r.status.map(u64::from))
        .text(&r.outcome)
        .u64(r.bytes_up)
        .u64(r.bytes_down)
        .text(&r.findings)
        .text(&r.session_id)
        .opt_text(r.model.as_deref())
        .opt_u64(r.ttfb_ms)
        .opt_text(r.rule.as_deref())
        .opt_text(r.usage.as_deref())
        .opt_text(r.region.as_deref())
        .opt_text(r.jurisdiction.as_deref())
        .opt_text(r.groups.as_deref())
        .opt_text(r.token.as_deref())
        .opt_text(r.profile.as_deref());
}

/// Version 3: SHA-256 of the canonical encoding of the tag `tollgate-row/3`, then every value
/// of version 2 in its order (after its tag), then `approval` (optional text), then the two
/// body digests.
fn link_hash_v3(
    id: i64,
    prev: &[u8],
    r: &Record,
    req_digest: &[u8],
    resp_digest: &[u8],
) -> [u8; 32] {
    let mut c = Canonical::new(b"tollgate-row/3");
    fields_v2(&mut c, id, prev, r);
    c.opt_text(r.approval.as_deref());
    c.fixed(req_digest).fixed(resp_digest);
    digest(&c.finish())
}

#[cfg(test)]
mod tests {
    use super::super::tests::record;
    use super::*;

    fn store_with(n: u64) -> (tempfile::TempDir, PathBuf, Store) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let mut store = Store::open(&path).unwrap();
        let records: Vec<Record> = (0..n).map(record).collect();
        store.append(&records[..n as usize / 2]).unwrap();
        store.append(&records[n as usize / 2..]).unwrap();
        (dir, path, store)
    }

    #[test]
    fn an_untouched_chain_verifies() {
        let (_dir, _, store) = store_with(10);
        assert_eq!(store.count().unwrap(), 10);
        assert_eq!(store.verify().unwrap(), None);
    }

    #[test]
    fn an_altered_row_is_the_first_break() {
        let (_dir, _, store) = store_with(10);
        store
            .conn()
            .execute("UPDATE records SET status = 403 WHERE id = 4", [])
            .unwrap();
        let brk = store.verify().unwrap().unwrap();
        assert_eq!(brk.row, 4);
        assert!(brk.reason.contains("altered"), "{}", brk.reason);
    }

    #[test]
    fn an_altered_body_breaks_the_chain() {
        let (_dir, _, store) = store_with(4);
        store
            .conn()
            .execute("UPDATE records SET response_body = x'00' WHERE id = 2", [])
            .unwrap();
        assert_eq!(store.verify().unwrap().unwrap().row, 2);
    }

    /// A body that compresses (code as an agent sends it) and one that does not.
    fn bodies() -> (Vec<u8>, Vec<u8>) {
        let text: String = (0..400)
            .map(|i| format!("fn handler_{i}(req: Request) -> Response {{ route(req, {i}) }}\n"))
            .collect();
        let mut noise = vec![0u8; 8192];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut noise).unwrap();
        (text.into_bytes(), noise)
    }

    #[test]
    fn bodies_that_compress_are_stored_compressed_and_read_back_as_sent() {
        let (_dir, _, mut store) = store_with(0);
        let (text, noise) = bodies();
        let mut r = record(1);
        r.request_body = text.clone().into();
        r.response_body = noise.clone();
        store.append(&[r]).unwrap();
        let (codec, stored_request, stored_response): (i64, i64, i64) = store
            .conn()
            .query_row(
                "SELECT bodies_codec, length(request_body), length(response_body) FROM records",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!(
            codec,
            Codec::REQUEST_ZSTD,
            "only the text is worth compressing"
        );
        assert!(stored_request * 4 < text.len() as i64, "{stored_request}");
        assert_eq!(stored_response, noise.len() as i64);
        let back = store.get(1).unwrap().unwrap();
        assert!(back.request_body == text && back.response_body == noise);
        assert_eq!(store.verify().unwrap(), None);
    }

    /// Turn `n` of a conversation: the history of turns before it, a new message, and the
    /// same tools after them, as agents send it.
    fn turn(session: &str, n: usize, started_at: &str) -> Record {
        let messages: Vec<String> = (0..=n)
            .map(|i| {
                let lines: String = (0..100)
                    .map(|l| format!("let v{i}_{l} = read(\\\"cfg/{i}/{l}\\\");\\n"))
                    .collect();
                format!("{{\"role\":\"user\",\"content\":\"{lines}\"}}")
            })
            .collect();
        let tools = "{\"name\":\"Read\",\"description\":\"Reads a file.\"}".repeat(200);
        let mut r = record(n as u64);
        r.session_id = session.into();
        r.started_at = started_at.into();
        r.request_body = format!(
            "{{\"messages\":[{}],\"tools\":[{tools}],\"stream\":true}}",
            messages.join(",")
        )
        .into();
        r
    }

    /// Each row's stored request: (base, stored length).
    fn stored(store: &Store) -> Vec<(Option<i64>, i64)> {
        let mut stmt = store
            .conn()
            .prepare("SELECT request_base, length(request_body) FROM records ORDER BY id")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn a_turn_is_stored_as_what_it_adds_to_its_sessions_base_and_read_back_whole() {
        let (_dir, path, mut store) = store_with(0);
        let mut sent = Vec::new();
        for n in 0..8 {
            // Two conversations interleaved, one turn per batch or two turns in one.
            let batch = vec![
                turn("a", n, "2030-01-01T00:00:00Z"),
                turn("b", n, "2030-01-01T00:00:00Z"),
            ];
            sent.extend(batch.iter().map(|r| r.request_body.clone()));
            store.append(&batch).unwrap();
        }
        let rows = stored(&store);
        // The first turn of each is stored whole; later ones against a base of their own
        // session, until one adds more than a quarter of itself.
        assert_eq!(rows[0].0, None);
        assert_eq!(rows[1].0, None);
        assert_eq!(rows[2].0, Some(1));
        assert_eq!(rows[3].0, Some(2));
        assert!(
            rows.iter().filter(|r| r.0.is_some()).count() >= 8,
            "{rows:?}"
        );
        let whole: i64 = rows
            .iter()
            .filter(|r| r.0.is_none())
            .map(|r| r.1)
            .max()
            .unwrap();
        for (id, (base, len)) in rows.iter().enumerate() {
            if base.is_some() {
                assert!(len * 2 < whole, "row {}: {len} bytes stored", id + 1);
            }
        }
        // Every way of reading gives the request as sent, and the chain verifies.
        let all: Vec<Vec<u8>> = store
            .all()
            .unwrap()
            .into_iter()
            .map(|(_, r)| r.request_body.to_vec())
            .collect();
        assert_eq!(all, sent);
        for (i, body) in sent.iter().enumerate() {
            assert_eq!(
                &store.get(i as i64 + 1).unwrap().unwrap().request_body,
                body
            );
        }
        let of_a: Vec<Vec<u8>> = store
            .session("a")
            .unwrap()
            .into_iter()
            .map(|(_, r)| r.request_body.to_vec())
            .collect();
        assert_eq!(of_a, sent.iter().step_by(2).cloned().collect::<Vec<_>>());
        assert_eq!(store.verify().unwrap(), None);
        // As does another process opening the store.
        drop(store);
        let again = Store::open(&path).unwrap();
        assert_eq!(again.get(4).unwrap().unwrap().request_body, sent[3]);
        assert_eq!(again.verify().unwrap(), None);
    }

    #[test]
    fn a_turns_digest_hashed_on_from_its_base_is_its_digest() {
        let base: Vec<u8> = (0..5 * MARK + 100).map(|i| (i * 7 % 251) as u8).collect();
        let mut bases = Bases::new();
        let (whole, marks) = marked_digest(&base);
        assert_eq!(whole, digest(&base));
        assert_eq!(marks.len(), 5);
        bases.set("a", 1, &base, whole, marks);
        // Turns that leave the base at, around and between its marks; end inside it, at its
        // end, or past it.
        for at in [
            0,
            1,
            MARK - 1,
            MARK,
            MARK + 1,
            2 * MARK,
            3 * MARK + 5,
            5 * MARK,
            5 * MARK + 100,
        ] {
            for tail in [&b""[..], b"x", &[9u8; 40_000]] {
                let mut body = base[..at].to_vec();
                body.extend_from_slice(tail);
                let prefix = common_prefix(&base, &body);
                assert_eq!(
                    bases.digest_sharing("a", &body, prefix),
                    digest(&body),
                    "leaving at {at}, {} bytes after",
                    tail.len()
                );
            }
        }
        // A base of whole marks, and a turn that repeats it.
        let even = &base[..4 * MARK];
        bases.set("d", 3, even, digest(even), marked_digest(even).1);
        assert_eq!(bases.digest_sharing("d", even, even.len()), digest(even));
        // A session without a base, or with a short one, hashes from the start.
        assert_eq!(bases.digest_sharing("b", &base, base.len()), digest(&base));
        bases.set(
            "c",
            2,
            &base[..MARK / 2],
            digest(&base[..MARK / 2]),
            marked_digest(&base[..MARK / 2]).1,
        );
        assert_eq!(bases.digest_sharing("c", &base, MARK / 2), digest(&base));
    }

    #[test]
    fn long_turns_of_one_session_in_one_batch_keep_their_digests() {
        let (_dir, _path, mut store) = store_with(0);
        // Turns of several marks each; two of them in one batch, stored against the same base.
        let batches = [vec![12], vec![13, 14], vec![15]];
        let mut sent = Vec::new();
        for batch in batches {
            let batch: Vec<Record> = batch
                .into_iter()
                .map(|n| turn("a", n, "2030-01-01T00:00:00Z"))
                .collect();
            assert!(batch.iter().all(|r| r.request_body.len() > 3 * MARK));
            sent.extend(batch.iter().map(|r| r.request_body.to_vec()));
            store.append(&batch).unwrap();
        }
        let rows = stored(&store);
        assert_eq!(rows[0].0, None);
        assert!(rows[1..].iter().all(|r| r.0 == Some(1)), "{rows:?}");
        let mut stmt = store
            .conn()
            .prepare("SELECT request_digest FROM records ORDER BY id")
            .unwrap();
        let digests: Vec<Vec<u8>> = stmt
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let expected: Vec<Vec<u8>> = sent.iter().map(|b| digest(b).to_vec()).collect();
        assert_eq!(digests, expected);
        drop(stmt);
        assert_eq!(store.verify().unwrap(), None);
    }

    #[test]
    fn an_altered_base_or_delta_breaks_the_chain() {
        for forgery in [
            "UPDATE records SET request_body = x'00' WHERE id = 1",
            "UPDATE records SET request_prefix = request_prefix - 1 WHERE id = 2",
            "UPDATE records SET request_base = 99 WHERE id = 2",
            "DELETE FROM records WHERE id = 1",
        ] {
            let (_dir, _, mut store) = store_with(0);
            store
                .append(&[turn("a", 0, "2030-01-01T00:00:00Z")])
                .unwrap();
            store
                .append(&[turn("a", 1, "2030-01-01T00:00:00Z")])
                .unwrap();
            assert_eq!(stored(&store)[1].0, Some(1));
            store.conn().execute(forgery, []).unwrap();
            let brk = store.verify().unwrap();
            assert!(brk.is_some(), "{forgery} went unnoticed");
            if !forgery.starts_with("UPDATE records SET request_body")
                && !forgery.starts_with("DELETE")
            {
                assert_eq!(brk.unwrap().row, 2, "{forgery}");
            }
        }
    }

    #[test]
    fn purging_a_base_stores_the_turns_kept_whole_first() {
        for (bodies_before, records_before) in [
            // The base's body goes, its row stays.
            ("2020-06-01T00:00:00Z", "2000-01-01T00:00:00Z"),
            // The base's row goes.
            ("2020-06-01T00:00:00Z", "2020-06-01T00:00:00Z"),
        ] {
            let (_dir, _, mut store) = store_with(0);
            let old = turn("a", 0, "2020-01-01T00:00:00Z");
            let kept: Vec<Record> = (1..4)
                .map(|n| turn("a", n, "2021-01-01T00:00:00Z"))
                .collect();
            store.append(&[old]).unwrap();
            store.append(&kept).unwrap();
            assert_eq!(stored(&store)[1].0, Some(1));
            store.purge(bodies_before, records_before).unwrap();
            assert!(
                stored(&store).iter().all(|r| r.0.is_none()),
                "{:?}",
                stored(&store)
            );
            let back: Vec<Vec<u8>> = store
                .all()
                .unwrap()
                .into_iter()
                .filter(|(_, r)| r.started_at.starts_with("2021"))
                .map(|(_, r)| r.request_body.to_vec())
                .collect();
            assert_eq!(
                back,
                kept.iter()
                    .map(|r| r.request_body.clone())
                    .collect::<Vec<_>>()
            );
            assert_eq!(store.verify().unwrap(), None);
            // The next turn is not stored against a base without its body.
            store
                .append(&[turn("a", 4, "2021-01-01T00:00:00Z")])
                .unwrap();
            let last: i64 = store
                .conn()
                .query_row("SELECT max(id) FROM records", [], |r| r.get(0))
                .unwrap();
            assert_eq!(
                store.get(last).unwrap().unwrap().request_body,
                turn("a", 4, "").request_body
            );
            assert_eq!(store.verify().unwrap(), None);
        }
    }

    /// A turn stored against a base that began later (a retried request that finished first)
    /// loses its body to a purge that keeps the base's: it reads back purged, not as the base.
    #[test]
    fn a_purged_turn_reads_back_empty_though_its_base_keeps_its_body() {
        let (_dir, _, mut store) = store_with(0);
        store
            .append(&[turn("a", 1, "2021-01-01T00:00:00Z")])
            .unwrap();
        store
            .append(&[turn("a", 2, "2020-01-01T00:00:00Z")])
            .unwrap();
        assert_eq!(stored(&store)[1].0, Some(1));
        store
            .purge("2020-06-01T00:00:00Z", "2000-01-01T00:00:00Z")
            .unwrap();
        assert!(store.get(2).unwrap().unwrap().request_body.is_empty());
        assert_eq!(
            store.get(1).unwrap().unwrap().request_body,
            turn("a", 1, "").request_body
        );
        assert_eq!(store.verify().unwrap(), None);
    }

    #[test]
    fn a_base_purged_by_another_process_is_not_stored_against() {
        let (_dir, path, mut store) = store_with(0);
        store
            .append(&[turn("a", 0, "2020-01-01T00:00:00Z")])
            .unwrap();
        let other = rusqlite::Connection::open(&path).unwrap();
        other
            .execute(
                "UPDATE records SET request_body = x'', bodies_purged = 1 WHERE id = 1",
                [],
            )
            .unwrap();
        store
            .append(&[turn("a", 1, "2020-01-01T00:00:00Z")])
            .unwrap();
        assert_eq!(stored(&store)[1].0, None);
        assert_eq!(
            store.get(2).unwrap().unwrap().request_body,
            turn("a", 1, "").request_body
        );
    }

    #[test]
    fn a_base_whose_id_came_again_is_not_stored_against() {
        let (_dir, path, mut store) = store_with(0);
        store
            .append(&[turn("a", 0, "2020-01-01T00:00:00Z")])
            .unwrap();
        // The file is put back to an empty copy while the writer runs, and row 1 is written
        // again by another process, with a request of its own.
        let other = rusqlite::Connection::open(&path).unwrap();
        other
            .execute_batch("DELETE FROM records; DELETE FROM chain_head;")
            .unwrap();
        let mut another = Store::open(&path).unwrap();
        another
            .append(&[turn("b", 3, "2020-01-01T00:00:00Z")])
            .unwrap();
        store
            .append(&[turn("a", 1, "2020-01-01T00:00:00Z")])
            .unwrap();
        assert_eq!(stored(&store)[1].0, None);
        assert_eq!(
            store.get(2).unwrap().unwrap().request_body,
            turn("a", 1, "").request_body
        );
        assert_eq!(store.verify().unwrap(), None);
    }

    #[test]
    fn an_altered_compressed_body_breaks_the_chain() {
        let (_dir, _, mut store) = store_with(2);
        let mut r = record(3);
        r.request_body = bodies().0.into();
        store.append(&[r]).unwrap();
        // Another valid zstd frame, and then bytes that are no frame at all.
        let other = zstd::bulk::compress(b"something else entirely, long enough", 1).unwrap();
        for forged in [other, b"not zstd".to_vec()] {
            store
                .conn()
                .execute(
                    "UPDATE records SET request_body = ?1 WHERE id = 3",
                    [&forged],
                )
                .unwrap();
            let brk = store.verify().unwrap().unwrap();
            assert_eq!(brk.row, 3);
            assert!(brk.reason.contains("digests"), "{}", brk.reason);
        }
    }

    #[test]
    fn purging_keeps_the_chain_verifiable() {
        let (_dir, _, mut fresh) = store_with(0);
        let mut old: Vec<Record> = (0..6).map(record).collect();
        for r in old.iter_mut().take(4) {
            r.started_at = "2020-01-01T00:00:00Z".into();
        }
        fresh.append(&old).unwrap();
        let report = fresh
            .purge("2021-01-01T00:00:00Z", "2020-06-01T00:00:00Z")
            .unwrap();
        assert_eq!(
            report,
            PurgeReport {
                bodies: 4,
                records: 4
            }
        );
        assert_eq!(fresh.verify().unwrap(), None);
        assert_eq!(fresh.count().unwrap(), 2);
        fresh.append(&[record(7)]).unwrap();
        assert_eq!(fresh.verify().unwrap(), None);
        let report = fresh
            .purge("2100-01-01T00:00:00Z", "2100-01-01T00:00:00Z")
            .unwrap();
        assert_eq!(report.records, 3);
        assert_eq!(fresh.verify().unwrap(), None);
    }

    #[test]
    fn deleted_rows_are_found_in_the_middle_and_at_the_end() {
        let (_dir, _, store) = store_with(10);
        store
            .conn()
            .execute("DELETE FROM records WHERE id = 6", [])
            .unwrap();
        assert_eq!(store.verify().unwrap().unwrap().row, 7);
        let (_dir, _, store) = store_with(10);
        store
            .conn()
            .execute("DELETE FROM records WHERE id >= 9", [])
            .unwrap();
        let brk = store.verify().unwrap().unwrap();
        assert_eq!(brk.row, 9, "{}", brk.reason);
    }

    #[test]
    fn reopening_keeps_the_schema_and_extends_the_chain() {
        let (_dir, path, store) = store_with(4);
        drop(store);
        let mut store = Store::open(&path).unwrap();
        store.append(&[record(99)]).unwrap();
        assert_eq!(store.count().unwrap(), 5);
        assert_eq!(store.verify().unwrap(), None);
    }

    #[test]
    fn pending_exchanges_become_interrupted_records_and_ended_ones_leave_no_trace() {
        let (_dir, path, mut store) = store_with(0);
        let mut started = record(7);
        started.outcome = "in-flight".into();
        started.request_body = b"sent upstream"[..].into();
        store
            .write(&Batch {
                opened: vec![("a".into(), started.clone()), ("b".into(), started.clone())],
                ..Batch::default()
            })
            .unwrap();
        // `a` ends normally (even in the same batch as it started, the end wins).
        store
            .write(&Batch {
                records: vec![record(8)],
                opened: vec![("c".into(), started.clone())],
                closed: vec!["a".into(), "c".into()],
            })
            .unwrap();
        assert_eq!(store.pending_count().unwrap(), 1);
        drop(store);
        let mut store = Store::open(&path).unwrap();
        assert_eq!(store.recover_pending().unwrap(), 1);
        assert_eq!(store.pending_count().unwrap(), 0);
        let all = store.all().unwrap();
        assert_eq!(all.len(), 2);
        let (_, cut) = &all[1];
        assert_eq!(cut.outcome, "interrupted");
        assert_eq!(cut.request_body, &b"sent upstream"[..]);
        assert!(store.verify().unwrap().is_none());
        assert_eq!(store.recover_pending().unwrap(), 0);
    }

    /// Recomputes every row's hash and the head in `version`'s form, as someone with write
    /// access to the database could.
    fn rehash(conn: &Connection, version: HashVersion) {
        let rows: Vec<(i64, Record, Vec<u8>, Vec<u8>)> = {
            let mut stmt = conn
                .prepare(&format!("SELECT {COLUMNS} FROM records ORDER BY id"))
                .unwrap();
            stmt.query_map([], |row| {
                Ok((row.get(0)?, row_to_record(row)?, row.get(26)?, row.get(27)?))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
        };
        let mut prev = GENESIS.to_vec();
        for (id, record, req, resp) in rows {
            let hash = link_hash(version, id, &prev, &record, &req, &resp);
            conn.execute(
                "UPDATE records SET prev_hash = ?1, hash = ?2, hash_version = ?3 WHERE id = ?4",
                params![prev, hash, version as i64, id],
            )
            .unwrap();
            prev = hash.to_vec();
        }
        conn.execute("UPDATE chain_head SET hash = ?1", [prev])
            .unwrap();
    }

    /// A store as Tollgate left it before rows had a hash version: schema 3, rows in version 1.
    fn version_1_store(n: u64) -> (tempfile::TempDir, PathBuf) {
        let (dir, path, store) = store_with(n);
        rehash(store.conn(), HashVersion::V1);
        store
            .conn()
            .execute_batch(
                "DROP INDEX records_scope_id; DROP INDEX records_outcome_id; DROP INDEX records_decision_id;
                 ALTER TABLE records DROP COLUMN request_base; ALTER TABLE records DROP COLUMN request_prefix;
                 ALTER TABLE records DROP COLUMN request_suffix;
                 ALTER TABLE records DROP COLUMN bodies_codec; ALTER TABLE pending DROP COLUMN bodies_codec;
                 ALTER TABLE records DROP COLUMN approval; ALTER TABLE records DROP COLUMN hash_version;
                 DROP TABLE checkpoints; PRAGMA user_version = 3;",
            )
            .unwrap();
        (dir, path)
    }

    #[test]
    fn rows_hashed_in_version_1_still_verify_after_the_upgrade_and_new_rows_use_the_current_one() {
        let (_dir, path) = version_1_store(4);
        let mut store = Store::open(&path).unwrap();
        assert_eq!(store.verify().unwrap(), None);
        store.append(&[record(5), record(6)]).unwrap();
        assert_eq!(store.verify().unwrap(), None);
        let versions: Vec<i64> = store
            .conn()
            .prepare("SELECT hash_version FROM records ORDER BY id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let now = HashVersion::CURRENT as i64;
        assert_eq!(versions, [1, 1, 1, 1, now, now]);
        store
            .conn()
            .execute("UPDATE records SET outcome = 'x' WHERE id = 2", [])
            .unwrap();
        assert_eq!(store.verify().unwrap().unwrap().row, 2);
    }

    #[test]
    fn a_row_rehashed_in_an_older_version_after_newer_ones_is_a_break() {
        let (_dir, _, store) = store_with(4);
        // Row 3 rewritten in version 1 (a form whose JSON is easier to forge around), the rest
        // of the chain recomputed on top of it.
        let (_, r3) = &store.all().unwrap()[2];
        let prev: Vec<u8> = store
            .conn()
            .query_row("SELECT hash FROM records WHERE id = 2", [], |r| r.get(0))
            .unwrap();
        let hash = row_hash(HashVersion::V1, 3, &prev, r3);
        let r4 = store.get(4).unwrap().unwrap();
        let next = row_hash(HashVersion::CURRENT, 4, &hash, &r4);
        store
            .conn()
            .execute_batch(&format!(
                "UPDATE records SET hash = x'{}', hash_version = 1 WHERE id = 3;
                 UPDATE records SET prev_hash = x'{}', hash = x'{}' WHERE id = 4;
                 UPDATE chain_head SET hash = x'{}';",
                hex(&hash),
                hex(&hash),
                hex(&next),
                hex(&next)
            ))
            .unwrap();
        let brk = store.verify().unwrap().unwrap();
        assert_eq!(brk.row, 3, "{}", brk.reason);
        assert!(brk.reason.contains("version 1 after"), "{}", brk.reason);
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// A record whose every field is fixed, so its hash can be written down.
    fn pinned() -> Record {
        let mut r = record(3);
        r.started_at = "2026-01-02T03:04:05Z".into();
        r.session_id = "0123456789abcdef".into();
        r.ttfb_ms = Some(7);
        r.region = Some("eu".into());
        r.response_text = Some("not covered".into());
        r
    }

    #[test]
    fn the_version_1_form_hashes_as_it_always_did() {
        // Rows written by earlier Tollgates carry this hash: if serde's output for a record
        // changed (a field renamed, reordered or added without `skip_serializing_if`), this
        // test fails before any stored chain would.
        let mut r = pinned();
        r.region = None;
        assert_eq!(
            hex(&row_hash(HashVersion::V1, 1, &GENESIS, &r)),
            "b3f601f5ab56f74afe0a17a27fbc5362510d897639c3d7b0d75e5c1d36e69e20"
        );
    }

    #[test]
    fn the_version_2_form_is_fixed() {
        // Changing what version 2 covers or how it encodes it breaks every stored chain: add
        // a version instead.
        assert_eq!(
            hex(&row_hash(HashVersion::V2, 1, &GENESIS, &pinned())),
            "4bd356d972ecc4190bad87846351a651db333a125151a1a801f5ff634fab313d"
        );
        let mut other = pinned();
        other.response_text = None;
        other.original_body = b"sealed".to_vec();
        assert_eq!(
            row_hash(HashVersion::V2, 1, &GENESIS, &other),
            row_hash(HashVersion::V2, 1, &GENESIS, &pinned()),
            "derived and sealed fields are outside the hash"
        );
        other.region = None;
        assert_ne!(
            row_hash(HashVersion::V2, 1, &GENESIS, &other),
            row_hash(HashVersion::V2, 1, &GENESIS, &pinned())
        );
    }

    #[test]
    fn the_version_3_form_is_fixed_and_covers_the_approval() {
        assert_eq!(
            hex(&row_hash(HashVersion::V3, 1, &GENESIS, &pinned())),
            "ab2603ec752aa809125e480c71744280b4fb8112e1b1738ce09277dc0eaa2b4d"
        );
        let mut approved = pinned();
        approved.approval = Some(r#"{"decision":"approved"}"#.into());
        assert_ne!(
            row_hash(HashVersion::V3, 1, &GENESIS, &approved),
            row_hash(HashVersion::V3, 1, &GENESIS, &pinned())
        );
        assert_eq!(
            row_hash(HashVersion::V2, 1, &GENESIS, &approved),
            row_hash(HashVersion::V2, 1, &GENESIS, &pinned()),
            "version 2 rows hash as they always did"
        );
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let (_dir, path, store) = store_with(1);
        store
            .conn()
            .pragma_update(None, "user_version", 99)
            .unwrap();
        drop(store);
        assert!(matches!(Store::open(&path), Err(StoreError::TooNew { .. })));
    }
}
