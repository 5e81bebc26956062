//! The PostgreSQL side of the audit store, for several replicas sharing one database: the same
//! rows, chain and in-flight records as the SQLite engine, written through a pool of
//! connections (tokio-postgres with deadpool-postgres).
//!
//! - **One chain for all replicas.** A batch that appends records takes a transaction-scoped
//!   advisory lock ([`CHAIN_LOCK`]) before it reads the head, so writers take turns: ids stay
//!   contiguous, every row links to the one before it whichever replica wrote it, and
//!   `audit verify` walks one chain and names its first broken row, as on SQLite. A batch holds
//!   the lock for one transaction (milliseconds), so replicas do not wait on each other's
//!   exchanges, only on each other's commits.
//! - **In-flight rows belong to a replica** (`pending.replica`): a replica that restarts
//!   closes its own as `interrupted` and never another's live exchanges;
//!   `tollgate store recover --replica ID` closes those of one that never comes back.
//! - **Blocking callers.** The store's interface is synchronous (the writer thread, the admin
//!   API's blocking pool, the command line), so its queries run on a small runtime of their own
//!   and the caller waits for the answer; that works from any thread, async ones included.

use super::Record;
use super::checkpoint::Checkpoint;
use super::store::{
    Bases, Batch, COLUMNS, ChainBreak, ChainWalk, Codec, Delta, ExchangeFilter, GENESIS,
    HashVersion, Head, Packer, PurgeReport, SessionSummary, StoreError, StoredRow, assemble,
    digest, link_hash, unpack,
};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::types::ToSql;

/// The advisory lock writers take, per transaction, to extend the chain one at a time.
pub const CHAIN_LOCK: i64 = 0x746f_6c6c_6761_7465; // "tollgate"
/// The advisory lock migrations run under, so replicas starting together migrate once.
const MIGRATE_LOCK: i64 = CHAIN_LOCK + 1;

/// How recently a replica built for an older schema must have sent a heartbeat to hold back
/// deltas: its writer beats every 2 s, so one silent this long has stopped (or lost the
/// database for as long).
const OLDER_REPLICA_ALIVE: Duration = Duration::from_secs(600);

/// The environment variable that may hold the database password.
pub const PASSWORD_ENV: &str = "TOLLGATE_DB_PASSWORD";

/// Each migration takes the schema from its index to the next version (kept in
/// `tollgate_schema`). The columns are SQLite's, in PostgreSQL's types.
const MIGRATIONS: &[&str] = &[
    r#"
    CREATE TABLE records (
        id              BIGINT  PRIMARY KEY,
        kind            TEXT    NOT NULL,
        started_at      TEXT    NOT NULL,
        duration_ms     BIGINT  NOT NULL,
        client          TEXT    NOT NULL,
        scope           TEXT    NOT NULL,
        mode            TEXT    NOT NULL,
        provider        TEXT,
        host            TEXT    NOT NULL,
        method          TEXT,
        path            TEXT,
        status          INTEGER,
        outcome         TEXT    NOT NULL,
        bytes_up        BIGINT  NOT NULL,
        bytes_down      BIGINT  NOT NULL,
        findings        TEXT    NOT NULL,
        session_id      TEXT    NOT NULL,
        model           TEXT,
        ttfb_ms         BIGINT,
        rule            TEXT,
        usage           TEXT,
        response_text   TEXT,
        request_body    BYTEA   NOT NULL,
        response_body   BYTEA   NOT NULL,
        prev_hash       BYTEA   NOT NULL,
        hash            BYTEA   NOT NULL,
        request_digest  BYTEA   NOT NULL,
        response_digest BYTEA   NOT NULL,
        bodies_purged   BOOLEAN NOT NULL DEFAULT false,
        original_body   BYTEA   NOT NULL DEFAULT '\x',
        region          TEXT,
        jurisdiction    TEXT,
        groups          TEXT,
        token           TEXT,
        profile         TEXT,
        hash_version    INTEGER NOT NULL,
        approval        TEXT,
        bodies_codec    INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX records_started_at ON records (started_at);
    CREATE INDEX records_scope ON records (scope, started_at);
    CREATE INDEX records_session ON records (session_id, id);
    CREATE INDEX records_scope_id ON records (scope, id);
    CREATE INDEX records_outcome_id ON records (outcome, id);
    CREATE INDEX records_decision_id ON records ((approval::jsonb ->> 'decision'), id);
    CREATE TABLE chain_head (
        one       INTEGER PRIMARY KEY CHECK (one = 1),
        last_id   BIGINT  NOT NULL,
        hash      BYTEA   NOT NULL,
        first_id  BIGINT  NOT NULL DEFAULT 1,
        base_hash BYTEA
    );
    -- Exchanges in flight, each owned by the replica that wrote it.
    CREATE TABLE pending (
        key           TEXT PRIMARY KEY,
        replica       TEXT NOT NULL,
        since         TIMESTAMPTZ NOT NULL DEFAULT now(),
        record        TEXT NOT NULL,
        request_body  BYTEA NOT NULL,
        original_body BYTEA NOT NULL
    );
    CREATE INDEX pending_replica ON pending (replica);
    -- Each replica's last sign of life (its writer's heartbeat).
    CREATE TABLE replicas (
        replica   TEXT PRIMARY KEY,
        started   TIMESTAMPTZ NOT NULL DEFAULT now(),
        last_seen TIMESTAMPTZ NOT NULL DEFAULT now()
    );
    -- The approval queue replicas share (see `approval/shared.rs`): one row per request
    -- waiting or decided, its masked request as approvers see it (JSON), the verdict once
    -- there is one (JSON), and for `retry` whether the approval was used.
    CREATE TABLE approvals (
        id           TEXT PRIMARY KEY,
        replica      TEXT NOT NULL,
        mode         TEXT NOT NULL,
        request_hash TEXT NOT NULL,
        pending      TEXT NOT NULL,
        deadline     TIMESTAMPTZ NOT NULL,
        verdict      TEXT,
        approved     BOOLEAN,
        holds_until  TIMESTAMPTZ,
        consumed     BOOLEAN NOT NULL DEFAULT false
    );
    CREATE INDEX approvals_hash ON approvals (request_hash);
    -- One open retry approval per request.
    CREATE UNIQUE INDEX approvals_open_retry ON approvals (request_hash)
        WHERE verdict IS NULL AND mode = 'retry';
    CREATE TABLE grants (
        id       TEXT PRIMARY KEY,
        "user"   TEXT NOT NULL,
        rule     TEXT NOT NULL,
        provider TEXT NOT NULL,
        by       TEXT NOT NULL,
        until    TEXT NOT NULL,
        ends     TIMESTAMPTZ NOT NULL
    );
    CREATE TABLE checkpoints (
        id        BIGSERIAL PRIMARY KEY,
        version   INTEGER NOT NULL,
        last_id   BIGINT  NOT NULL,
        hash      BYTEA   NOT NULL,
        records   BIGINT  NOT NULL,
        first_id  BIGINT  NOT NULL,
        base_hash BYTEA   NOT NULL,
        at        TEXT    NOT NULL,
        key_id    TEXT    NOT NULL,
        signature BYTEA   NOT NULL
    );
"#,
    r#"
    -- A request body stored as what it adds to an earlier one of its session (see `Bases`):
    -- the first `request_prefix` and last `request_suffix` bytes of row `request_base`'s
    -- request, with `request_body` between them. Digests cover the body whole.
    ALTER TABLE records ADD COLUMN request_base BIGINT;
    ALTER TABLE records ADD COLUMN request_prefix BIGINT;
    ALTER TABLE records ADD COLUMN request_suffix BIGINT;
"#,
    r#"
    -- The schema each replica was built for (NULL: before this column). Turns are stored as
    -- deltas only once no replica built for an older one is alive: its retention would take a
    -- base's body without storing the turns against it whole first.
    ALTER TABLE replicas ADD COLUMN schema INTEGER;
"#,
];

/// How to reach the database, from `store.url` / `--db` and the settings beside it.
#[derive(Clone)]
pub struct PgSettings {
    /// The URL without its password, for messages.
    pub shown: String,
    config: tokio_postgres::Config,
    tls: Arc<rustls::ClientConfig>,
    /// Connections in the pool, per process.
    pub pool_size: usize,
    /// Each statement's limit (`statement_timeout`), and the wait for a pooled connection.
    pub statement_timeout: Duration,
    /// This process's name among the replicas: it owns the in-flight rows it writes.
    pub replica: String,
}

impl std::fmt::Debug for PgSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgSettings")
            .field("url", &self.shown)
            .field("pool_size", &self.pool_size)
            .field("statement_timeout", &self.statement_timeout)
            .field("replica", &self.replica)
            .finish_non_exhaustive()
    }
}

/// Whether `text` names a PostgreSQL database rather than a SQLite file.
pub fn is_url(text: &str) -> bool {
    text.starts_with("postgres://") || text.starts_with("postgresql://")
}

impl PgSettings {
    /// Reads a `postgres://user@host:port/db?sslmode=…` URL. The password never comes in the
    /// URL (it would sit in shell histories, process lists and config repositories): it is
    /// `password`, read by the caller from [`PASSWORD_ENV`] or a file. `sslmode` is `disable` or
    /// `verify-full` (the server's certificate checked against `tls`'s roots and its name);
    /// without one, loopback and socket connections are plain and every other is
    /// `verify-full`.
    pub fn parse(
        url: &str,
        password: Option<String>,
        tls: rustls::ClientConfig,
        pool_size: usize,
        statement_timeout: Duration,
        replica: String,
    ) -> Result<Self, StoreError> {
        let bad = |m: String| StoreError::Settings(m);
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut sslmode = None;
        let mut rest = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("sslmode", mode)) => sslmode = Some(mode.to_owned()),
                _ => rest.push(pair),
            }
        }
        let rebuilt = if rest.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", rest.join("&"))
        };
        let mut config: tokio_postgres::Config = rebuilt
            .parse()
            .map_err(|e| bad(format!("`{}` is not a PostgreSQL URL: {e}", shown_url(url))))?;
        if config.get_password().is_some() {
            return Err(bad(format!(
                "the database URL carries a password; give it in {PASSWORD_ENV} or store.password_file instead"
            )));
        }
        if config.get_hosts().is_empty() {
            return Err(bad("the database URL names no host".into()));
        }
        let local = config.get_hosts().iter().all(|h| match h {
            Host::Tcp(name) => {
                name == "localhost"
                    || name
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback())
            }
            Host::Unix(_) => true,
        });
        let mode = match sslmode.as_deref() {
            Some("disable") => SslMode::Disable,
            Some("verify-full") => SslMode::Require,
            None if local => SslMode::Disable,
            None => SslMode::Require,
            Some(other) => {
                return Err(bad(format!(
                    "sslmode={other} is not supported: use verify-full (the server's certificate and name are checked), or disable on loopback"
                )));
            }
        };
        config.ssl_mode(mode);
        if let Some(password) = password {
            config.password(password.trim_end_matches(['\r', '\n']));
        }
        if config.get_application_name().is_none() {
            config.application_name(format!("tollgate {replica}"));
        }
        config.options(format!(
            "-c statement_timeout={}",
            statement_timeout.as_millis().max(1)
        ));
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        let shown = match mode {
            SslMode::Disable => format!("{} (no TLS)", shown_url(url)),
            _ => format!("{} (TLS, verify-full)", shown_url(url)),
        };
        Ok(PgSettings {
            shown,
            config,
            tls: Arc::new(tls),
            pool_size: pool_size.max(1),
            statement_timeout,
            replica,
        })
    }

    /// Settings parsed once share a pool; any two parsed apart (other roots, perhaps) do not.
    fn pool_key(&self) -> String {
        format!(
            "{:?}|{}|{}|{:p}",
            self.config,
            self.pool_size,
            self.replica,
            Arc::as_ptr(&self.tls)
        )
    }
}

/// The URL as messages show it: without a password, if one was given anyway.
fn shown_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((user, host)) => {
                let user = user.split(':').next().unwrap_or("");
                format!("{scheme}://{user}@{host}")
            }
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// The runtime the store's queries run on, whoever calls.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("tollgate-db")
            .enable_all()
            .build()
            .expect("a one-thread runtime starts")
    })
}

/// Runs `work` on the store's runtime and waits for its answer; callable from any thread.
pub(crate) fn block<T: Send + 'static>(
    work: impl Future<Output = Result<T, StoreError>> + Send + 'static,
) -> Result<T, StoreError> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    runtime().spawn(async move {
        let _ = tx.send(work.await);
    });
    rx.recv().unwrap_or_else(|_| {
        Err(StoreError::Postgres {
            at: "the database task".into(),
            message: "stopped before it answered".into(),
        })
    })
}

/// Runs `work` on the store's runtime, for async callers (whatever runtime they are on).
pub async fn on_db<T: Send + 'static>(
    work: impl Future<Output = Result<T, StoreError>> + Send + 'static,
) -> Result<T, StoreError> {
    runtime().spawn(work).await.unwrap_or_else(|_| {
        Err(StoreError::Postgres {
            at: "the database task".into(),
            message: "stopped before it answered".into(),
        })
    })
}

/// Starts `work` on the store's runtime, to run as long as it likes.
pub fn spawn_on_db(work: impl Future<Output = ()> + Send + 'static) {
    runtime().spawn(work);
}

/// One pool per database and settings, shared by every store opened on it in this process.
fn pool_for(settings: &PgSettings) -> Result<Pool, StoreError> {
    // Each entry keeps its settings' TLS configuration alive, so the address in its key is
    // never another configuration's.
    type Pools = HashMap<String, (Arc<rustls::ClientConfig>, Pool)>;
    static POOLS: OnceLock<Mutex<Pools>> = OnceLock::new();
    let mut pools = POOLS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let key = settings.pool_key();
    if let Some((_, pool)) = pools.get(&key) {
        return Ok(pool.clone());
    }
    let tls = tokio_postgres_rustls::MakeRustlsConnect::new((*settings.tls).clone());
    let manager = Manager::from_config(
        settings.config.clone(),
        tls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let wait = Some(settings.statement_timeout.max(Duration::from_secs(1)));
    let pool = Pool::builder(manager)
        .max_size(settings.pool_size)
        .wait_timeout(wait)
        .create_timeout(Some(Duration::from_secs(10)))
        .recycle_timeout(Some(Duration::from_secs(5)))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()
        .map_err(|e| StoreError::Settings(e.to_string()))?;
    pools.insert(key, (settings.tls.clone(), pool.clone()));
    Ok(pool)
}

/// What went wrong, in the server's words where it gave some.
fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{} ({})", db.message(), db.code().code());
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// A handle on the database for other parts of Tollgate (approvals shared by replicas).
#[derive(Clone)]
pub struct PgHandle {
    pool: Pool,
    settings: Arc<PgSettings>,
}

impl PgHandle {
    pub fn connect(settings: Arc<PgSettings>) -> Result<Self, StoreError> {
        Ok(PgHandle {
            pool: pool_for(&settings)?,
            settings,
        })
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    pub fn settings(&self) -> &PgSettings {
        &self.settings
    }

    /// A connection of its own, outside the pool (for `LISTEN`): the client, and the stream of
    /// what the server sends unasked (notifications), which must be polled for the client to
    /// work.
    pub async fn dedicated(
        &self,
    ) -> Result<
        (
            tokio_postgres::Client,
            tokio_postgres::Connection<
                tokio_postgres::Socket,
                <tokio_postgres_rustls::MakeRustlsConnect as tokio_postgres::tls::MakeTlsConnect<
                    tokio_postgres::Socket,
                >>::Stream,
            >,
        ),
        StoreError,
    > {
        let tls = tokio_postgres_rustls::MakeRustlsConnect::new((*self.settings.tls).clone());
        self.settings
            .config
            .connect(tls)
            .await
            .map_err(|e| self.err(&e))
    }

    pub fn err(&self, e: &tokio_postgres::Error) -> StoreError {
        StoreError::Postgres {
            at: self.settings.shown.clone(),
            message: describe(e),
        }
    }

    pub fn pool_err(&self, e: deadpool_postgres::PoolError) -> StoreError {
        let message = match &e {
            deadpool_postgres::PoolError::Backend(e) => describe(e),
            deadpool_postgres::PoolError::Timeout(_) => {
                "no connection to the database within the time allowed".into()
            }
            other => other.to_string(),
        };
        StoreError::Postgres {
            at: self.settings.shown.clone(),
            message,
        }
    }

    pub async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(|e| self.pool_err(e))
    }
}

/// The engine: a pool on the shared database.
pub(super) struct Postgres {
    db: PgHandle,
    packer: Packer,
    /// The request bodies this replica stores later turns against (see [`Bases`]): rows it
    /// wrote itself, checked in the writing transaction to still hold their bodies.
    bases: Bases,
    /// Whether turns may be stored as deltas: once no replica built for an older schema is
    /// alive, as its retention would purge a base without storing its turns whole first.
    deltas: AtomicBool,
}

type Params = Vec<Box<dyn ToSql + Sync + Send>>;

/// What one attempt at writing a batch did.
enum Written {
    /// Committed; the records' ids start at `first_id`, and these records (by index, with
    /// their digests' states) were stored whole.
    Committed {
        first_id: i64,
        bases: Vec<(usize, [u8; 32], Vec<ring::digest::Context>)>,
    },
    /// Nothing written: these bases had lost their bodies.
    BasesPurged(Vec<i64>),
}

fn refs(params: &Params) -> Vec<&(dyn ToSql + Sync)> {
    params
        .iter()
        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
        .collect()
}

impl Postgres {
    /// Connects and migrates.
    pub(super) fn open(settings: Arc<PgSettings>) -> Result<Self, StoreError> {
        let db = PgHandle::connect(settings)?;
        let store = Postgres {
            db,
            packer: Packer::new(),
            bases: Bases::new(),
            deltas: AtomicBool::new(false),
        };
        store.migrate()?;
        store.check_older_replicas()?;
        Ok(store)
    }

    pub(super) fn shown(&self) -> &str {
        &self.db.settings.shown
    }

    fn migrate(&self) -> Result<(), StoreError> {
        block(migrate(self.db.clone()))
    }

    /// Rows of `SELECT {columns} … {sql}`, as records with their ids.
    fn records(
        &self,
        columns: &'static str,
        sql: String,
        params: Params,
    ) -> Result<Vec<(i64, Record)>, StoreError> {
        let db = self.db.clone();
        block(async move {
            let client = db.client().await?;
            let rows = client
                .query(
                    &format!("SELECT {columns} FROM records {sql}"),
                    &refs(&params),
                )
                .await
                .map_err(|e| db.err(&e))?;
            Ok(rows.iter().map(|r| (r.get(0), row_to_record(r))).collect())
        })
    }

    fn one<T>(&self, sql: &'static str, params: Params) -> Result<Option<T>, StoreError>
    where
        T: for<'a> tokio_postgres::types::FromSql<'a> + Send + 'static,
    {
        let db = self.db.clone();
        block(async move {
            let client = db.client().await?;
            let row = client
                .query_opt(sql, &refs(&params))
                .await
                .map_err(|e| db.err(&e))?;
            Ok(row.map(|r| r.get(0)))
        })
    }

    pub(super) fn write(&mut self, batch: &Batch) -> Result<(), StoreError> {
        // A base whose body another replica purged since this one stored it is found in the
        // writing transaction, which then writes nothing: the batch is made again without it.
        loop {
            match self.write_once(batch)? {
                Written::Committed { first_id, bases } => {
                    for (i, digest, marks) in bases {
                        let r = &batch.records[i];
                        self.bases.set(
                            &r.session_id,
                            first_id + i as i64,
                            &r.request_body,
                            digest,
                            marks,
                        );
                    }
                    return Ok(());
                }
                Written::BasesPurged(ids) => self.bases.forget(&ids),
            }
        }
    }

    fn write_once(&mut self, batch: &Batch) -> Result<Written, StoreError> {
        // Bodies are compressed and rows serialised here, on the writer's thread; the database
        // task only sends them. A turn is stored as what it adds to its session's base, as on
        // SQLite (see `Bases`).
        struct Row {
            record: Record,
            request_body: Vec<u8>,
            response_body: Vec<u8>,
            codec: i32,
            request_digest: [u8; 32],
            response_digest: [u8; 32],
            delta: Option<(i64, usize, usize)>,
        }
        let mut rows = Vec::with_capacity(batch.records.len());
        // Rows stored whole, to become their session's base once committed.
        let mut new_bases = Vec::new();
        // The bases stored against, with their requests' digests.
        let mut bases_used: Vec<(i64, Vec<u8>)> = Vec::new();
        for (i, r) in batch.records.iter().enumerate() {
            let delta = if self.deltas.load(Ordering::Relaxed) {
                self.bases.delta(&r.session_id, &r.request_body)
            } else {
                None
            };
            let (stored, request_digest, marks) =
                self.bases
                    .stored_part(&r.session_id, &r.request_body, delta);
            if let Some(marks) = marks {
                new_bases.push((i, request_digest, marks));
            }
            let (request_body, response_body, codec) =
                self.packer.pack_bodies(stored, &r.response_body);
            let mut record = r.clone();
            record.request_body = Default::default();
            record.response_body = Vec::new();
            if let Some((base, _, _)) = delta
                && let Some(digest) = self.bases.digest_of(&r.session_id)
                && !bases_used.iter().any(|(id, _)| *id == base)
            {
                bases_used.push((base, digest.to_vec()));
            }
            rows.push(Row {
                request_digest,
                response_digest: digest(&r.response_body),
                request_body: request_body.into_owned(),
                response_body: response_body.into_owned(),
                codec: codec as i32,
                delta,
                record,
            });
        }
        let opened: Vec<(String, String, Vec<u8>, Vec<u8>)> = batch
            .opened
            .iter()
            .map(|(key, r)| {
                (
                    key.clone(),
                    serde_json::to_string(r).expect("records serialize"),
                    r.request_body.to_vec(),
                    r.original_body.clone(),
                )
            })
            .collect();
        let closed = batch.closed.clone();
        let db = self.db.clone();
        let written = block(async move {
            let mut client = db.client().await?;
            let tx = client.transaction().await.map_err(|e| db.err(&e))?;
            let e = |e: tokio_postgres::Error| db.err(&e);
            let mut first_id = 0;
            if !rows.is_empty() {
                tx.execute("SELECT pg_advisory_xact_lock($1)", &[&CHAIN_LOCK])
                    .await
                    .map_err(e)?;
                // Under the chain's lock no purge runs (it takes the same lock): a base that
                // holds its body now still holds it when this transaction commits.
                // The digest makes sure the row is the base (ids come again after a database is
                // restored from an older copy).
                if !bases_used.is_empty() {
                    let (ids, digests): (Vec<i64>, Vec<Vec<u8>>) = bases_used.into_iter().unzip();
                    let kept: Vec<i64> = tx
                        .query(
                            "SELECT r.id FROM records r
                             JOIN unnest($1::BIGINT[], $2::BYTEA[]) AS b (id, digest)
                               ON r.id = b.id AND r.request_digest = b.digest
                             WHERE NOT r.bodies_purged",
                            &[&ids, &digests],
                        )
                        .await
                        .map_err(e)?
                        .iter()
                        .map(|r| r.get(0))
                        .collect();
                    let purged: Vec<i64> =
                        ids.into_iter().filter(|id| !kept.contains(id)).collect();
                    if !purged.is_empty() {
                        // Dropped, the transaction rolls back.
                        return Ok(Err(purged));
                    }
                }
                let head = tx
                    .query_opt("SELECT last_id, hash FROM chain_head WHERE one = 1", &[])
                    .await
                    .map_err(e)?;
                let (mut id, mut prev): (i64, Vec<u8>) =
                    head.map_or((0, GENESIS.to_vec()), |r| (r.get(0), r.get(1)));
                first_id = id + 1;
                let insert = tx
                    .prepare_cached(
                        "INSERT INTO records (id, kind, started_at, duration_ms, client, scope, mode,
                         provider, host, method, path, status, outcome, bytes_up, bytes_down, findings,
                         session_id, model, ttfb_ms, rule, usage, response_text, request_body,
                         response_body, prev_hash, hash, request_digest, response_digest,
                         original_body, region, jurisdiction, groups, token, profile, hash_version,
                         approval, bodies_codec, request_base, request_prefix, request_suffix)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15,
                         $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30,
                         $31, $32, $33, $34, $35, $36, $37, $38, $39, $40)",
                    )
                    .await
                    .map_err(e)?;
                // Each row's hash needs the one before; the rows are then sent pipelined.
                let mut chained = Vec::with_capacity(rows.len());
                for row in &rows {
                    id += 1;
                    let hash = link_hash(
                        HashVersion::CURRENT,
                        id,
                        &prev,
                        &row.record,
                        &row.request_digest,
                        &row.response_digest,
                    );
                    chained.push((id, prev, hash.to_vec()));
                    prev = hash.to_vec();
                }
                let version = HashVersion::CURRENT as i32;
                let inserts = rows.iter().zip(&chained).map(|(row, (id, prev, hash))| {
                    let r = &row.record;
                    let values: Vec<Box<dyn ToSql + Sync + Send>> = vec![
                        Box::new(*id),
                        Box::new(r.kind.as_str()),
                        Box::new(r.started_at.clone()),
                        Box::new(r.duration_ms as i64),
                        Box::new(r.client.clone()),
                        Box::new(r.scope.clone()),
                        Box::new(r.mode.clone()),
                        Box::new(r.provider.clone()),
                        Box::new(r.host.clone()),
                        Box::new(r.method.clone()),
                        Box::new(r.path.clone()),
                        Box::new(r.status.map(i32::from)),
                        Box::new(r.outcome.clone()),
                        Box::new(r.bytes_up as i64),
                        Box::new(r.bytes_down as i64),
                        Box::new(r.findings.clone()),
                        Box::new(r.session_id.clone()),
                        Box::new(r.model.clone()),
                        Box::new(r.ttfb_ms.map(|v| v as i64)),
                        Box::new(r.rule.clone()),
                        Box::new(r.usage.clone()),
                        Box::new(r.response_text.clone()),
                        Box::new(row.request_body.clone()),
                        Box::new(row.response_body.clone()),
                        Box::new(prev.clone()),
                        Box::new(hash.clone()),
                        Box::new(row.request_digest.to_vec()),
                        Box::new(row.response_digest.to_vec()),
                        Box::new(r.original_body.clone()),
                        Box::new(r.region.clone()),
                        Box::new(r.jurisdiction.clone()),
                        Box::new(r.groups.clone()),
                        Box::new(r.token.clone()),
                        Box::new(r.profile.clone()),
                        Box::new(version),
                        Box::new(r.approval.clone()),
                        Box::new(row.codec),
                        Box::new(row.delta.map(|d| d.0)),
                        Box::new(row.delta.map(|d| d.1 as i64)),
                        Box::new(row.delta.map(|d| d.2 as i64)),
                    ];
                    let tx = &tx;
                    let insert = &insert;
                    async move { tx.execute(insert, &refs(&values)).await }
                });
                futures_util::future::try_join_all(inserts)
                    .await
                    .map_err(e)?;
                tx.execute(
                    "INSERT INTO chain_head (one, last_id, hash, first_id) VALUES (1, $1, $2, 1)
                     ON CONFLICT (one) DO UPDATE SET last_id = excluded.last_id, hash = excluded.hash",
                    &[&id, &prev],
                )
                .await
                .map_err(e)?;
            }
            if !opened.is_empty() {
                let open = tx
                    .prepare_cached(
                        "INSERT INTO pending (key, replica, record, request_body, original_body)
                         VALUES ($1, $2, $3, $4, $5)
                         ON CONFLICT (key) DO UPDATE SET record = excluded.record,
                         request_body = excluded.request_body, original_body = excluded.original_body",
                    )
                    .await
                    .map_err(e)?;
                let replica = &db.settings.replica;
                futures_util::future::try_join_all(opened.iter().map(|(key, json, body, orig)| {
                    let (tx, open) = (&tx, &open);
                    async move { tx.execute(open, &[key, replica, json, body, orig]).await }
                }))
                .await
                .map_err(e)?;
            }
            if !closed.is_empty() {
                tx.execute("DELETE FROM pending WHERE key = ANY($1)", &[&closed])
                    .await
                    .map_err(e)?;
            }
            tx.commit().await.map_err(e)?;
            Ok(Ok(first_id))
        })?;
        Ok(match written {
            Ok(first_id) => Written::Committed {
                first_id,
                bases: new_bases,
            },
            Err(purged) => Written::BasesPurged(purged),
        })
    }

    /// Says this replica is alive (and that the database answers).
    pub(super) fn heartbeat(&self) -> Result<(), StoreError> {
        let db = self.db.clone();
        block(async move {
            let client = db.client().await?;
            client
                .execute(
                    "INSERT INTO replicas (replica, schema) VALUES ($1, $2)
                     ON CONFLICT (replica) DO UPDATE SET last_seen = now(), schema = $2",
                    &[&db.settings.replica, &(MIGRATIONS.len() as i32)],
                )
                .await
                .map(drop)
                .map_err(|e| db.err(&e))
        })?;
        self.check_older_replicas()
    }

    /// Allows deltas once no other replica built for an older schema has been seen within
    /// [`OLDER_REPLICA_ALIVE`]. Such a replica cannot start against this schema, so once allowed
    /// they stay allowed.
    fn check_older_replicas(&self) -> Result<(), StoreError> {
        if self.deltas.load(Ordering::Relaxed) {
            return Ok(());
        }
        let older: i64 = self
            .one(
                "SELECT count(*) FROM replicas WHERE replica <> $1
                 AND (schema IS NULL OR schema < $2)
                 AND last_seen > now() - make_interval(secs => $3)",
                vec![
                    Box::new(self.db.settings.replica.clone()),
                    Box::new(MIGRATIONS.len() as i32),
                    Box::new(OLDER_REPLICA_ALIVE.as_secs_f64()),
                ],
            )?
            .unwrap_or(0);
        if older == 0 {
            self.deltas.store(true, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Every replica that wrote here: its name, seconds since its last heartbeat, and its
    /// exchanges in flight.
    pub(super) fn replicas(&self) -> Result<Vec<super::store::ReplicaInfo>, StoreError> {
        let db = self.db.clone();
        block(async move {
            let client = db.client().await?;
            let rows = client
                .query(
                    "SELECT r.replica, extract(epoch FROM now() - r.last_seen)::BIGINT,
                            (SELECT count(*) FROM pending p WHERE p.replica = r.replica)
                     FROM replicas r
                     UNION ALL
                     SELECT p.replica, NULL, count(*) FROM pending p
                     WHERE NOT EXISTS (SELECT 1 FROM replicas r WHERE r.replica = p.replica)
                     GROUP BY p.replica
                     ORDER BY 1",
                    &[],
                )
                .await
                .map_err(|e| db.err(&e))?;
            Ok(rows
                .iter()
                .map(|r| super::store::ReplicaInfo {
                    name: r.get(0),
                    seen_secs_ago: r.get(1),
                    in_flight: r.get(2),
                })
                .collect())
        })
    }

    pub(super) fn replica(&self) -> &str {
        &self.db.settings.replica
    }

    pub(super) fn pending_count(&self) -> Result<i64, StoreError> {
        Ok(self
            .one("SELECT count(*) FROM pending", Vec::new())?
            .unwrap_or(0))
    }

    pub(super) fn in_flight(&self) -> Result<Vec<Record>, StoreError> {
        let db = self.db.clone();
        let rows: Vec<String> = block(async move {
            let client = db.client().await?;
            let rows = client
                .query("SELECT record FROM pending ORDER BY since LIMIT 1000", &[])
                .await
                .map_err(|e| db.err(&e))?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })?;
        Ok(rows
            .iter()
            .filter_map(|json| serde_json::from_str(json).ok())
            .collect())
    }

    pub(super) fn recover_pending(&mut self) -> Result<usize, StoreError> {
        let replica = self.db.settings.replica.clone();
        self.recover_replica(&replica)
    }

    /// Closes replica `replica`'s in-flight rows as `interrupted` records, in one transaction.
    pub(super) fn recover_replica(&mut self, replica: &str) -> Result<usize, StoreError> {
        let db = self.db.clone();
        let owner = replica.to_owned();
        let rows: Vec<(String, String, Vec<u8>, Vec<u8>)> = block(async move {
            let client = db.client().await?;
            let rows = client
                .query(
                    "SELECT key, record, request_body, original_body FROM pending
                     WHERE replica = $1 ORDER BY since",
                    &[&owner],
                )
                .await
                .map_err(|e| db.err(&e))?;
            Ok(rows
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
                .collect())
        })?;
        let mut batch = Batch::default();
        for (key, json, request_body, original_body) in rows {
            if let Ok(mut record) = serde_json::from_str::<Record>(&json) {
                record.outcome = "interrupted".into();
                record.request_body = request_body.into();
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

    pub(super) fn count(&self) -> Result<i64, StoreError> {
        Ok(self
            .one("SELECT count(*) FROM records", Vec::new())?
            .unwrap_or(0))
    }

    pub(super) fn get(&self, id: i64) -> Result<Option<Record>, StoreError> {
        Ok(self
            .records(COLUMNS, "WHERE id = $1".into(), vec![Box::new(id)])?
            .pop()
            .map(|(_, r)| r))
    }

    pub(super) fn all(&self) -> Result<Vec<(i64, Record)>, StoreError> {
        self.records(COLUMNS, "ORDER BY id".into(), Vec::new())
    }

    pub(super) fn session(&self, session_id: &str) -> Result<Vec<(i64, Record)>, StoreError> {
        self.records(
            COLUMNS,
            "WHERE session_id = $1 ORDER BY id".into(),
            vec![Box::new(session_id.to_owned())],
        )
    }

    pub(super) fn session_page(
        &self,
        session_id: &str,
        before_id: Option<i64>,
        limit: u32,
    ) -> Result<(Vec<(i64, Record)>, i64), StoreError> {
        let before = before_id.unwrap_or(i64::MAX);
        let mut rows = self.records(
            COLUMNS,
            "WHERE session_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3".into(),
            vec![
                Box::new(session_id.to_owned()),
                Box::new(before),
                Box::new(i64::from(limit.clamp(1, 1000))),
            ],
        )?;
        rows.sort_by_key(|(id, _)| *id);
        let first = rows.first().map_or(before, |(id, _)| *id);
        let earlier = self
            .one(
                "SELECT count(*) FROM records WHERE session_id = $1 AND id < $2",
                vec![Box::new(session_id.to_owned()), Box::new(first)],
            )?
            .unwrap_or(0);
        Ok((rows, earlier))
    }

    pub(super) fn exchanges(
        &self,
        filter: &ExchangeFilter,
    ) -> Result<Vec<(i64, Record)>, StoreError> {
        let mut conditions: Vec<String> = Vec::new();
        let mut params: Params = Vec::new();
        let mut push = |condition: &str, value: Box<dyn ToSql + Sync + Send>| {
            params.push(value);
            conditions.push(condition.replace('?', &format!("${}", params.len())));
        };
        for (condition, value) in [
            ("started_at >= ?", &filter.since),
            ("started_at < ?", &filter.until),
            ("scope = ?", &filter.user),
            ("provider = ?", &filter.provider),
            ("outcome = ?", &filter.outcome),
            ("model = ?", &filter.model),
            ("kind = ?", &filter.kind),
            ("session_id = ?", &filter.session),
            ("(approval::jsonb ->> 'decision') = ?", &filter.approval),
        ] {
            if let Some(v) = value {
                push(condition, Box::new(v.clone()));
            }
        }
        if let Some(status) = filter.status {
            push("status = ?", Box::new(i32::from(status)));
        }
        if let Some(before) = filter.before_id {
            push("id < ?", Box::new(before));
        }
        // Lists are kept comma-separated.
        for (column, value) in [("region", &filter.region), ("groups", &filter.group)] {
            if let Some(v) = value {
                let pattern = format!("%,{},%", v.replace(['%', '_', '\\'], ""));
                push(
                    &format!("(',' || {column} || ',') LIKE ?"),
                    Box::new(pattern),
                );
            }
        }
        match filter.has_findings {
            Some(true) => conditions.push("findings != '[]'".into()),
            Some(false) => conditions.push("findings = '[]'".into()),
            None => {}
        }
        let condition = if conditions.is_empty() {
            "true".to_owned()
        } else {
            conditions.join(" AND ")
        };
        let limit = filter.limit.clamp(1, 1000);
        self.records(
            SUMMARY_COLUMNS_PG,
            format!("WHERE {condition} ORDER BY id DESC LIMIT {limit}"),
            params,
        )
    }

    pub(super) fn sessions(
        &self,
        since: Option<&str>,
        scope: Option<&str>,
    ) -> Result<Vec<SessionSummary>, StoreError> {
        let db = self.db.clone();
        let (since, scope) = (since.map(str::to_owned), scope.map(str::to_owned));
        block(async move {
            let client = db.client().await?;
            let rows = client
                .query(
                    "SELECT session_id, scope, max(provider), min(started_at), max(started_at),
                            count(*), sum(CASE WHEN status >= 400 THEN 1 ELSE 0 END)::BIGINT
                     FROM records
                     WHERE kind = 'exchange' AND ($1::TEXT IS NULL OR started_at >= $1)
                       AND ($2::TEXT IS NULL OR scope = $2)
                     GROUP BY session_id, scope ORDER BY max(started_at) DESC",
                    &[&since, &scope],
                )
                .await
                .map_err(|e| db.err(&e))?;
            Ok(rows
                .iter()
                .map(|r| SessionSummary {
                    id: r.get(0),
                    scope: r.get(1),
                    provider: r.get(2),
                    first_at: r.get(3),
                    last_at: r.get(4),
                    exchanges: r.get(5),
                    refused: r.get(6),
                })
                .collect())
        })
    }

    pub(super) fn purge(
        &mut self,
        bodies_before: &str,
        records_before: &str,
    ) -> Result<PurgeReport, StoreError> {
        let db = self.db.clone();
        let (bodies_before, records_before) = (bodies_before.to_owned(), records_before.to_owned());
        let report = block(async move {
            let mut client = db.client().await?;
            let tx = client.transaction().await.map_err(|e| db.err(&e))?;
            let e = |e: tokio_postgres::Error| db.err(&e);
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&CHAIN_LOCK])
                .await
                .map_err(e)?;
            // Requests stored against a base that loses its body (or its row) here, while they
            // keep theirs, are stored whole first.
            let first_kept: i64 = tx
                .query_opt(
                    "SELECT id FROM records WHERE started_at >= $1 ORDER BY id LIMIT 1",
                    &[&records_before],
                )
                .await
                .map_err(e)?
                .map_or(i64::MAX, |r| r.get(0));
            let dependents = tx
                .query(
                    "SELECT d.id FROM records d JOIN records b ON b.id = d.request_base
                     WHERE NOT d.bodies_purged AND d.started_at >= $1 AND d.id >= $2
                       AND (b.started_at < $1 OR b.id < $2 OR b.bodies_purged)",
                    &[&bodies_before, &first_kept],
                )
                .await
                .map_err(e)?;
            // In pages, each read in one query and rewritten in one statement: the chain lock
            // holds every replica's writer meanwhile.
            let ids: Vec<i64> = dependents.iter().map(|r| r.get(0)).collect();
            let mut packer = Packer::new();
            for page in ids.chunks(64) {
                let rows = tx
                    .query(
                        &format!("SELECT {COLUMNS} FROM records WHERE id = ANY($1)"),
                        &[&page],
                    )
                    .await
                    .map_err(e)?;
                let mut page_ids = Vec::with_capacity(rows.len());
                let mut bodies = Vec::with_capacity(rows.len());
                let mut codecs = Vec::with_capacity(rows.len());
                for row in &rows {
                    let record = row_to_record(row);
                    let (body, zstd) = packer.pack(&record.request_body);
                    page_ids.push(row.get::<_, i64>(0));
                    bodies.push(body.into_owned());
                    codecs.push(if zstd { Codec::REQUEST_ZSTD as i32 } else { 0 });
                }
                tx.execute(
                    "UPDATE records r SET request_body = w.body,
                     bodies_codec = (r.bodies_codec & ~($1::INTEGER)) | w.codec,
                     request_base = NULL, request_prefix = NULL, request_suffix = NULL
                     FROM unnest($2::BIGINT[], $3::BYTEA[], $4::INTEGER[]) AS w (id, body, codec)
                     WHERE r.id = w.id",
                    &[&(Codec::REQUEST_ZSTD as i32), &page_ids, &bodies, &codecs],
                )
                .await
                .map_err(e)?;
            }
            let bodies = tx
                .execute(
                    "UPDATE records SET request_body = '\\x', response_body = '\\x',
                     response_text = NULL, original_body = '\\x', bodies_purged = true,
                     bodies_codec = 0, request_base = NULL, request_prefix = NULL,
                     request_suffix = NULL WHERE started_at < $1 AND NOT bodies_purged",
                    &[&bodies_before],
                )
                .await
                .map_err(e)?;
            let head = tx
                .query_opt("SELECT last_id, hash FROM chain_head WHERE one = 1", &[])
                .await
                .map_err(e)?;
            let mut records = 0;
            if let Some(head) = head {
                let (last_id, last_hash): (i64, Vec<u8>) = (head.get(0), head.get(1));
                let keep = tx
                    .query_opt(
                        "SELECT id, prev_hash FROM records WHERE started_at >= $1 ORDER BY id LIMIT 1",
                        &[&records_before],
                    )
                    .await
                    .map_err(e)?;
                let (first_id, base): (i64, Vec<u8>) =
                    keep.map_or((last_id + 1, last_hash), |r| (r.get(0), r.get(1)));
                records = tx
                    .execute("DELETE FROM records WHERE id < $1", &[&first_id])
                    .await
                    .map_err(e)?;
                if records > 0 {
                    tx.execute(
                        "UPDATE chain_head SET first_id = $1, base_hash = $2 WHERE one = 1",
                        &[&first_id, &base],
                    )
                    .await
                    .map_err(e)?;
                }
            }
            tx.commit().await.map_err(e)?;
            Ok(PurgeReport {
                bodies: bodies as usize,
                records: records as usize,
            })
        })?;
        self.bases.clear();
        Ok(report)
    }

    pub(super) fn head(&self) -> Result<Option<Head>, StoreError> {
        let db = self.db.clone();
        block(async move {
            let client = db.client().await?;
            let row = client
                .query_opt(
                    "SELECT last_id, hash, first_id, base_hash FROM chain_head WHERE one = 1",
                    &[],
                )
                .await
                .map_err(|e| db.err(&e))?;
            Ok(row.map(|r| Head {
                last_id: r.get(0),
                hash: r.get(1),
                first_id: r.get(2),
                base: r
                    .get::<_, Option<Vec<u8>>>(3)
                    .unwrap_or_else(|| GENESIS.to_vec()),
            }))
        })
    }

    pub(super) fn hash_at(&self, id: i64) -> Result<Option<Vec<u8>>, StoreError> {
        self.one("SELECT hash FROM records WHERE id = $1", vec![Box::new(id)])
    }

    pub(super) fn add_checkpoint(&self, c: &Checkpoint) -> Result<(), StoreError> {
        let db = self.db.clone();
        let c = c.clone();
        block(async move {
            let client = db.client().await?;
            client
                .execute(
                    "INSERT INTO checkpoints (version, last_id, hash, records, first_id, base_hash,
                     at, key_id, signature) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                    &[
                        &(c.version as i32),
                        &c.last_id,
                        &c.hash,
                        &c.records,
                        &c.first_id,
                        &c.base,
                        &c.at,
                        &c.key_id,
                        &c.signature,
                    ],
                )
                .await
                .map(drop)
                .map_err(|e| db.err(&e))
        })
    }

    pub(super) fn checkpoints(&self) -> Result<Vec<(i64, Checkpoint)>, StoreError> {
        let db = self.db.clone();
        block(async move {
            let client = db.client().await?;
            let rows = client
                .query(
                    "SELECT id, version, last_id, hash, records, first_id, base_hash, at, key_id,
                     signature FROM checkpoints ORDER BY id",
                    &[],
                )
                .await
                .map_err(|e| db.err(&e))?;
            Ok(rows
                .iter()
                .map(|r| {
                    (
                        r.get(0),
                        Checkpoint {
                            version: r.get::<_, i32>(1) as u32,
                            last_id: r.get(2),
                            hash: r.get(3),
                            records: r.get(4),
                            first_id: r.get(5),
                            base: r.get(6),
                            at: r.get(7),
                            key_id: r.get(8),
                            signature: r.get(9),
                        },
                    )
                })
                .collect())
        })
    }

    pub(super) fn last_checkpointed(&self) -> Result<i64, StoreError> {
        Ok(self
            .one(
                "SELECT coalesce(max(last_id), 0)::BIGINT FROM checkpoints",
                Vec::new(),
            )?
            .unwrap_or(0))
    }

    /// Walks the chain in one snapshot (other replicas keep writing meanwhile: rows after the
    /// head it read are not its concern), a page of rows at a time.
    pub(super) fn verify(&self) -> Result<Option<ChainBreak>, StoreError> {
        const PAGE: i64 = 500;
        let db = self.db.clone();
        block(async move {
            let mut client = db.client().await?;
            let tx = client
                .build_transaction()
                .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await
                .map_err(|e| db.err(&e))?;
            let e = |e: tokio_postgres::Error| db.err(&e);
            let head = tx
                .query_opt(
                    "SELECT last_id, hash, first_id, base_hash FROM chain_head WHERE one = 1",
                    &[],
                )
                .await
                .map_err(e)?;
            let (first_id, base) = head
                .as_ref()
                .map_or((1, None), |r| (r.get::<_, i64>(2), r.get(3)));
            let mut walk = ChainWalk::new(first_id, base);
            let page = tx
                .prepare(&format!(
                    "SELECT {COLUMNS} FROM records WHERE id > $1 ORDER BY id LIMIT {PAGE}"
                ))
                .await
                .map_err(e)?;
            let mut after = i64::MIN;
            loop {
                let rows = tx.query(&page, &[&after]).await.map_err(e)?;
                for r in &rows {
                    let stored = StoredRow {
                        id: r.get(0),
                        record: row_to_record(r),
                        kind: r.get(1),
                        prev: r.get(16),
                        hash: r.get(17),
                        version: i64::from(r.get::<_, i32>(35)),
                        request_digest: r.get(26),
                        response_digest: r.get(27),
                        purged: r.get(28),
                    };
                    after = stored.id;
                    if let Some(brk) = walk.step(stored) {
                        return Ok(Some(brk));
                    }
                }
                if (rows.len() as i64) < PAGE {
                    break;
                }
            }
            Ok(walk.end(head.map(|r| (r.get(0), r.get(1)))))
        })
    }
}

/// Creates or upgrades the schema, once however many replicas start together.
pub async fn migrate(db: PgHandle) -> Result<(), StoreError> {
    let mut client = db.client().await?;
    let tx = client.transaction().await.map_err(|e| db.err(&e))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATE_LOCK])
        .await
        .map_err(|e| db.err(&e))?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS tollgate_schema (version INTEGER NOT NULL)")
        .await
        .map_err(|e| db.err(&e))?;
    let version: i32 = tx
        .query_opt("SELECT version FROM tollgate_schema", &[])
        .await
        .map_err(|e| db.err(&e))?
        .map_or(0, |r| r.get(0));
    let known = MIGRATIONS.len() as i32;
    if version > known {
        return Err(StoreError::Postgres {
            at: db.settings.shown.clone(),
            message: format!(
                "written by a newer Tollgate (schema {version}, this one knows up to {known})"
            ),
        });
    }
    for sql in MIGRATIONS.iter().skip(version as usize) {
        tx.batch_execute(sql).await.map_err(|e| db.err(&e))?;
    }
    if version < known {
        tx.execute("DELETE FROM tollgate_schema", &[])
            .await
            .map_err(|e| db.err(&e))?;
        tx.execute(
            "INSERT INTO tollgate_schema (version) VALUES ($1)",
            &[&known],
        )
        .await
        .map_err(|e| db.err(&e))?;
    }
    tx.commit().await.map_err(|e| db.err(&e))
}

/// [`SUMMARY_COLUMNS`] in PostgreSQL's spelling (its empty byte strings).
const SUMMARY_COLUMNS_PG: &str =
    "id, kind, started_at, duration_ms, client, scope, mode, provider, host, method, path,
     status, outcome, bytes_up, bytes_down, findings, prev_hash, hash, session_id, model, ttfb_ms,
     rule, usage, NULL::TEXT, '\\x'::BYTEA, '\\x'::BYTEA, request_digest, response_digest,
     bodies_purged, '\\x'::BYTEA, region, jurisdiction, groups, token, profile, hash_version,
     approval, 0, NULL::BIGINT, NULL::BIGINT, NULL::BIGINT, NULL::BYTEA, NULL::INTEGER";

fn row_to_record(row: &tokio_postgres::Row) -> Record {
    let codec = i64::from(row.get::<_, i32>(37));
    Record {
        kind: match row.get::<_, &str>(1) {
            "tunnel" => super::RecordKind::Tunnel,
            "connect-refused" => super::RecordKind::ConnectRefused,
            "purge" => super::RecordKind::Purge,
            _ => super::RecordKind::Exchange,
        },
        started_at: row.get(2),
        duration_ms: row.get::<_, i64>(3) as u64,
        client: row.get(4),
        scope: row.get(5),
        mode: row.get(6),
        provider: row.get(7),
        host: row.get(8),
        method: row.get(9),
        path: row.get(10),
        status: row
            .get::<_, Option<i32>>(11)
            .and_then(|s| u16::try_from(s).ok()),
        outcome: row.get(12),
        bytes_up: row.get::<_, i64>(13) as u64,
        bytes_down: row.get::<_, i64>(14) as u64,
        findings: row.get(15),
        session_id: row.get(18),
        model: row.get(19),
        ttfb_ms: row.get::<_, Option<i64>>(20).map(|v| v as u64),
        rule: row.get(21),
        usage: row.get(22),
        region: row.get(30),
        jurisdiction: row.get(31),
        groups: row.get(32),
        token: row.get(33),
        profile: row.get(34),
        approval: row.get(36),
        response_text: row.get(23),
        request_body: assemble(
            unpack(row.get(24), codec, Codec::REQUEST_ZSTD),
            row.get::<_, Option<i64>>(38).map(|_| Delta {
                prefix: row.get::<_, Option<i64>>(39).unwrap_or(0),
                suffix: row.get::<_, Option<i64>>(40).unwrap_or(0),
                base: row.get::<_, Option<Vec<u8>>>(41).map(|b| {
                    let codec = row.get::<_, Option<i32>>(42).map_or(0, i64::from);
                    unpack(b, codec, Codec::REQUEST_ZSTD)
                }),
            }),
        )
        .into(),
        response_body: unpack(row.get(25), codec, Codec::RESPONSE_ZSTD),
        original_body: row.get(29),
    }
}
