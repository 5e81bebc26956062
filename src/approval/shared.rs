//! The approval queue shared by replicas through the PostgreSQL store.
//!
//! - A request held on replica A is written to `approvals` as approvers see it (masked) and
//!   announced with `NOTIFY tollgate_approvals`; every replica keeps a copy of what waits,
//!   refreshed on each notification and every [`POLL`] (the fallback when a notification is
//!   lost, e.g. while the listening connection reconnects). The held request's waiter stays on
//!   A, in memory.
//! - A decision taken on replica B is one conditional `UPDATE` (`WHERE verdict IS NULL`): two
//!   approvers racing on two replicas cannot both decide. Its `NOTIFY` wakes A, which reads the
//!   verdict and releases its request at once; A's poll finds it too if the notification is lost.
//! - Grants are rows in `grants`, copied to every replica the same way, so the request path reads
//!   memory, never the database.
//! - A `retry` approval is used by one conditional `UPDATE … SET consumed = true`: whichever
//!   replica the retried request lands on, it goes through once.
//!
//! Masked bodies only: the queue never holds a secret, here as in memory.

use super::{Approvals, Approver, Ask, DecideError, FindingView, Grant, Pending, Retry, Verdict};
use crate::record::StoreError;
use crate::record::postgres::{PgHandle, on_db, spawn_on_db};
use bytes::Bytes;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The channel replicas announce changes on.
const CHANNEL: &str = "tollgate_approvals";
/// How often each replica re-reads the queue whatever it heard.
const POLL: Duration = Duration::from_secs(1);

pub(super) struct Shared {
    db: PgHandle,
}

/// A pending request as the database keeps it: what [`Pending`] shows, and what it skips.
#[derive(serde::Serialize, serde::Deserialize)]
struct Stored {
    id: String,
    rule: String,
    mode: super::Mode,
    created_at: String,
    /// Milliseconds since the Unix epoch.
    created_ms: u64,
    deadline_ms: u64,
    user: String,
    groups: Vec<String>,
    provider: String,
    model: Option<String>,
    region: Option<String>,
    host: String,
    path: String,
    findings: Vec<FindingView>,
    /// The masked body, as text where it is UTF-8 (JSON bodies are), else lossy.
    body: String,
    body_bytes: usize,
    approvers: Vec<String>,
    max_grant_ms: u64,
    wait_ms: u64,
    request_hash: String,
}

fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The wall-clock time of monotonic instant `at`.
fn wall(at: Instant) -> u64 {
    let now = Instant::now();
    let sys = SystemTime::now();
    let then = if at <= now {
        sys - now.duration_since(at)
    } else {
        sys + at.duration_since(now)
    };
    unix_ms(then)
}

/// The monotonic instant of wall-clock milliseconds `ms`.
fn instant(ms: u64) -> Instant {
    let now_ms = unix_ms(SystemTime::now());
    let now = Instant::now();
    if ms <= now_ms {
        now.checked_sub(Duration::from_millis(now_ms - ms))
            .unwrap_or(now)
    } else {
        now + Duration::from_millis(ms - now_ms)
    }
}

impl Stored {
    fn of(p: &Pending) -> Self {
        Stored {
            id: p.id.clone(),
            rule: p.rule.clone(),
            mode: p.mode,
            created_at: p.created_at.clone(),
            created_ms: wall(p.created),
            deadline_ms: wall(p.deadline),
            user: p.user.clone(),
            groups: p.groups.clone(),
            provider: p.provider.clone(),
            model: p.model.clone(),
            region: p.region.clone(),
            host: p.host.clone(),
            path: p.path.clone(),
            findings: p.findings.clone(),
            body: String::from_utf8_lossy(&p.body).into_owned(),
            body_bytes: p.body_bytes,
            approvers: p.approvers.clone(),
            max_grant_ms: p.max_grant.as_millis() as u64,
            wait_ms: p.wait.as_millis() as u64,
            request_hash: p.request_hash.clone(),
        }
    }

    fn pending(self) -> Pending {
        Pending {
            id: self.id,
            rule: self.rule,
            mode: self.mode,
            created_at: self.created_at,
            created: instant(self.created_ms),
            deadline: instant(self.deadline_ms),
            user: self.user,
            groups: self.groups,
            provider: self.provider,
            model: self.model,
            region: self.region,
            host: self.host,
            path: self.path,
            findings: self.findings,
            body: Bytes::from(self.body),
            body_bytes: self.body_bytes,
            approvers: self.approvers,
            max_grant: Duration::from_millis(self.max_grant_ms),
            wait: Duration::from_millis(self.wait_ms),
            request_hash: self.request_hash,
        }
    }
}

fn mode_text(mode: super::Mode) -> &'static str {
    match mode {
        super::Mode::Hold => "hold",
        super::Mode::Retry => "retry",
    }
}

/// Inserts a pending request (in `tx` or on its own).
async fn insert(
    client: &impl tokio_postgres::GenericClient,
    db: &PgHandle,
    p: &Pending,
) -> Result<u64, StoreError> {
    let json = serde_json::to_string(&Stored::of(p)).expect("pending requests serialize");
    let wait_ms = p
        .deadline
        .saturating_duration_since(Instant::now())
        .as_millis() as i64;
    client
        .execute(
            "INSERT INTO approvals (id, replica, mode, request_hash, pending, deadline)
             VALUES ($1, $2, $3, $4, $5, now() + $6::BIGINT * interval '1 millisecond')
             ON CONFLICT DO NOTHING",
            &[
                &p.id,
                &db.settings().replica,
                &mode_text(p.mode),
                &p.request_hash,
                &json,
                &wait_ms,
            ],
        )
        .await
        .map_err(|e| db.err(&e))
}

async fn notify(
    client: &impl tokio_postgres::GenericClient,
    db: &PgHandle,
) -> Result<(), StoreError> {
    client
        .execute(
            "SELECT pg_notify($1, $2)",
            &[&CHANNEL, &db.settings().replica],
        )
        .await
        .map(drop)
        .map_err(|e| db.err(&e))
}

impl Shared {
    pub(super) fn new(db: PgHandle) -> Self {
        Shared { db }
    }

    /// Starts keeping `approvals`' copy of the shared queue current, for as long as it lives.
    pub(super) fn start(approvals: &Arc<Approvals>) {
        let Some(shared) = &approvals.shared else {
            return;
        };
        let db = shared.db.clone();
        let weak = Arc::downgrade(approvals);
        spawn_on_db(follow(db, weak));
    }

    /// Puts a held request where the other replicas see it; false (said in the log) when the
    /// database refuses, and then only this replica's approvers see it.
    pub(super) async fn publish(&self, p: &Pending) -> bool {
        let db = self.db.clone();
        let pending = p.clone();
        let result = on_db(async move {
            let client = db.client().await?;
            insert(&**client, &db, &pending).await?;
            notify(&**client, &db).await
        })
        .await;
        match result {
            Ok(()) => true,
            Err(error) => {
                tracing::error!(%error, approval = %p.id, "cannot share a held request with the other replicas; only this replica's approvers see it");
                false
            }
        }
    }

    /// Takes a held request off the shared queue (it was released, timed out, or its client
    /// left).
    pub(super) fn withdraw(&self, id: &str) {
        let db = self.db.clone();
        let id = id.to_owned();
        spawn_on_db(async move {
            let result = async {
                let client = db.client().await?;
                client
                    .execute("DELETE FROM approvals WHERE id = $1", &[&id])
                    .await
                    .map_err(|e| db.err(&e))?;
                notify(&**client, &db).await
            }
            .await;
            if let Err(error) = result {
                tracing::warn!(%error, approval = %id, "cannot withdraw a held request from the shared queue; it expires there on its own");
            }
        });
    }

    /// A `retry` request against the shared queue; `fresh` is the pending request it opens if
    /// there is none for it yet.
    pub(super) async fn retry(&self, fresh: Pending) -> Result<Retry, StoreError> {
        let db = self.db.clone();
        on_db(async move {
            let mut client = db.client().await?;
            let tx = client.transaction().await.map_err(|e| db.err(&e))?;
            let e = |e: tokio_postgres::Error| db.err(&e);
            tx.execute(
                "DELETE FROM approvals WHERE (verdict IS NULL AND deadline < now())
                 OR (holds_until < now()) OR consumed",
                &[],
            )
            .await
            .map_err(e)?;
            let hash = &fresh.request_hash;
            // Approved and not used yet: used now, by this request only.
            if let Some(row) = tx
                .query_opt(
                    "UPDATE approvals SET consumed = true
                     WHERE id = (SELECT id FROM approvals WHERE request_hash = $1 AND approved
                                 AND NOT consumed AND holds_until > now()
                                 ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
                     RETURNING verdict",
                    &[hash],
                )
                .await
                .map_err(e)?
            {
                tx.commit().await.map_err(e)?;
                return Ok(Retry::Approved(verdict_of(&db, row.get(0))?));
            }
            if let Some(row) = tx
                .query_opt(
                    "SELECT verdict FROM approvals WHERE request_hash = $1 AND approved = false
                     AND holds_until > now() LIMIT 1",
                    &[hash],
                )
                .await
                .map_err(e)?
            {
                tx.commit().await.map_err(e)?;
                return Ok(Retry::Denied(verdict_of(&db, row.get(0))?));
            }
            let inserted = insert(&*tx, &db, &fresh).await?;
            let id: String = if inserted == 1 {
                fresh.id.clone()
            } else {
                // Another replica opened it a moment ago.
                tx.query_one(
                    "SELECT id FROM approvals WHERE request_hash = $1 AND verdict IS NULL
                     AND mode = 'retry'",
                    &[hash],
                )
                .await
                .map_err(e)?
                .get(0)
            };
            if inserted == 1 {
                notify(&*tx, &db).await?;
            }
            tx.commit().await.map_err(e)?;
            Ok(Retry::Pending {
                new: inserted == 1,
                id,
            })
        })
        .await
    }

    /// Decides request `id` wherever it waits: checked as [`Approvals::check`] does, then taken
    /// in one conditional update (with its grant, if it opens one) and announced.
    pub(super) async fn decide(
        &self,
        approvals: &Approvals,
        id: &str,
        who: &Approver,
        ask: Ask,
        break_glass: &[String],
    ) -> Result<Verdict, DecideError> {
        let db = self.db.clone();
        let unavailable = |e: StoreError| {
            tracing::error!(error = %e, "the shared approval queue cannot be read");
            DecideError::Unavailable
        };
        let owned = id.to_owned();
        let row: Option<String> = {
            let db = db.clone();
            on_db(async move {
                let client = db.client().await?;
                Ok(client
                    .query_opt(
                        "SELECT pending FROM approvals WHERE id = $1 AND verdict IS NULL
                         AND deadline > now()",
                        &[&owned],
                    )
                    .await
                    .map_err(|e| db.err(&e))?
                    .map(|r| r.get(0)))
            })
            .await
            .map_err(unavailable)?
        };
        let p = row
            .and_then(|json| serde_json::from_str::<Stored>(&json).ok())
            .map(Stored::pending)
            .ok_or_else(|| DecideError::NotFound(id.to_owned()))?;
        let (by, glass) = Approvals::check(&p, who, &ask, break_glass)?;
        let grant = ask.grant.filter(|_| ask.approve).map(|window| Grant {
            id: Approvals::grant_id(&mut approvals.lock()),
            user: p.user.clone(),
            rule: p.rule.clone(),
            provider: p.provider.clone(),
            by: by.clone(),
            until: super::rfc3339_in(window),
            ends: Instant::now() + window,
        });
        let verdict = Verdict {
            approved: ask.approve,
            by,
            reason: ask.reason,
            at: super::rfc3339_in(Duration::ZERO),
            break_glass: glass,
            grant: grant.as_ref().map(|g| g.id.clone()),
        };
        let json = serde_json::to_string(&verdict).expect("verdicts serialize");
        let (owned, approved, wait_ms) =
            (id.to_owned(), verdict.approved, p.wait.as_millis() as i64);
        let grant_row = grant.clone();
        let taken = on_db(async move {
            let mut client = db.client().await?;
            let tx = client.transaction().await.map_err(|e| db.err(&e))?;
            let e = |e: tokio_postgres::Error| db.err(&e);
            let n = tx
                .execute(
                    "UPDATE approvals SET verdict = $2, approved = $3,
                     holds_until = now() + $4::BIGINT * interval '1 millisecond'
                     WHERE id = $1 AND verdict IS NULL AND deadline > now()",
                    &[&owned, &json, &approved, &wait_ms],
                )
                .await
                .map_err(e)?;
            if n == 0 {
                return Ok(false);
            }
            if let Some(g) = &grant_row {
                let window = g.ends.saturating_duration_since(Instant::now()).as_millis() as i64;
                tx.execute(
                    "INSERT INTO grants (id, \"user\", rule, provider, by, until, ends)
                     VALUES ($1, $2, $3, $4, $5, $6, now() + $7::BIGINT * interval '1 millisecond')",
                    &[&g.id, &g.user, &g.rule, &g.provider, &g.by, &g.until, &window],
                )
                .await
                .map_err(e)?;
            }
            notify(&*tx, &db).await?;
            tx.commit().await.map_err(e)?;
            Ok(true)
        })
        .await
        .map_err(unavailable)?;
        if !taken {
            return Err(DecideError::NotFound(id.to_owned()));
        }
        if let Some(g) = grant {
            let mut inner = approvals.lock();
            inner.grants.retain(|x| x.id != g.id);
            inner.grants.push(g);
        }
        Ok(verdict)
    }

    /// Ends a grant on every replica; false if there was none by that id.
    pub(super) async fn revoke(&self, id: &str) -> Result<bool, StoreError> {
        let db = self.db.clone();
        let id = id.to_owned();
        on_db(async move {
            let client = db.client().await?;
            let n = client
                .execute("DELETE FROM grants WHERE id = $1", &[&id])
                .await
                .map_err(|e| db.err(&e))?;
            notify(&**client, &db).await?;
            Ok(n > 0)
        })
        .await
    }
}

fn verdict_of(db: &PgHandle, json: Option<String>) -> Result<Verdict, StoreError> {
    json.and_then(|j| serde_json::from_str(&j).ok())
        .ok_or_else(|| StoreError::Postgres {
            at: db.settings().shown.clone(),
            message: "an approval's verdict does not read back".into(),
        })
}

/// Keeps the copy current: listens for notifications on a connection of its own (reconnecting
/// when it drops) and re-reads the queue on each one and every [`POLL`]. Ends when the queue
/// it serves is gone.
async fn follow(db: PgHandle, approvals: Weak<Approvals>) {
    let (heard_tx, mut heard) = tokio::sync::mpsc::channel::<()>(16);
    let listener = {
        let db = db.clone();
        let approvals = approvals.clone();
        async move {
            while approvals.strong_count() > 0 {
                if let Err(error) = listen(&db, &heard_tx).await {
                    tracing::warn!(%error, "not listening for approval notifications; polling every second until it reconnects");
                }
                tokio::time::sleep(POLL).await;
            }
        }
    };
    let listening = tokio::spawn(listener);
    let mut failing = false;
    loop {
        let Some(strong) = approvals.upgrade() else {
            break;
        };
        match refresh(&db, &strong).await {
            Ok(()) => failing = false,
            Err(error) if !failing => {
                failing = true;
                tracing::error!(%error, "cannot read the shared approval queue; retrying");
            }
            Err(_) => {}
        }
        drop(strong);
        let _ = tokio::time::timeout(POLL, heard.recv()).await;
        // Several notifications at once make one refresh.
        while heard.try_recv().is_ok() {}
    }
    listening.abort();
}

/// `LISTEN`s until the connection ends, passing each notification on.
async fn listen(db: &PgHandle, heard: &tokio::sync::mpsc::Sender<()>) -> Result<(), StoreError> {
    let (client, mut connection) = db.dedicated().await?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = futures_util::StreamExt::next(&mut messages).await {
            match message {
                Ok(tokio_postgres::AsyncMessage::Notification(_)) => {
                    let _ = tx.send(());
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    });
    client
        .batch_execute(&format!("LISTEN {CHANNEL}"))
        .await
        .map_err(|e| db.err(&e))?;
    // Anything missed before the LISTEN took: one refresh now.
    let _ = heard.try_send(());
    while rx.recv().await.is_some() {
        let _ = heard.try_send(());
    }
    driver.abort();
    Err(StoreError::Postgres {
        at: db.settings().shown.clone(),
        message: "the listening connection closed".into(),
    })
}

/// Re-reads what waits and the open grants, and releases requests held here that were decided
/// elsewhere.
async fn refresh(db: &PgHandle, approvals: &Approvals) -> Result<(), StoreError> {
    let waiting: Vec<String> = approvals
        .lock()
        .pending
        .iter()
        .filter(|(_, e)| e.waiter.is_some())
        .map(|(id, _)| id.clone())
        .collect();
    let client = db.client().await?;
    let e = |e: tokio_postgres::Error| db.err(&e);
    let queue = client
        .query(
            "SELECT pending FROM approvals WHERE verdict IS NULL AND deadline > now()",
            &[],
        )
        .await
        .map_err(e)?;
    let grants = client
        .query(
            "SELECT id, \"user\", rule, provider, by, until,
                    (extract(epoch FROM ends - now()) * 1000)::BIGINT
             FROM grants WHERE ends > now()",
            &[],
        )
        .await
        .map_err(e)?;
    let decided = if waiting.is_empty() {
        Vec::new()
    } else {
        client
            .query(
                "SELECT id, verdict FROM approvals WHERE id = ANY($1) AND verdict IS NOT NULL",
                &[&waiting],
            )
            .await
            .map_err(e)?
    };
    drop(client);
    let remote = queue
        .iter()
        .filter_map(|r| serde_json::from_str::<Stored>(r.get::<_, &str>(0)).ok())
        .map(|s| {
            let p = s.pending();
            (p.id.clone(), p)
        })
        .collect();
    let grants = grants
        .iter()
        .map(|r| Grant {
            id: r.get(0),
            user: r.get(1),
            rule: r.get(2),
            provider: r.get(3),
            by: r.get(4),
            until: r.get(5),
            ends: Instant::now() + Duration::from_millis(r.get::<_, i64>(6).max(0) as u64),
        })
        .collect();
    {
        let mut inner = approvals.lock();
        inner.remote = remote;
        inner.grants = grants;
    }
    for row in decided {
        let id: String = row.get(0);
        if let Some(verdict) = row
            .get::<_, Option<String>>(1)
            .and_then(|j| serde_json::from_str::<Verdict>(&j).ok())
        {
            approvals.deliver(&id, &verdict);
        }
    }
    Ok(())
}
