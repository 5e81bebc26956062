//! Just-in-time approvals: requests a rule of `approvals.yaml` says a person must let through.
//!
//! - `hold`: the request waits here until an approver decides or its time runs out;
//! - `retry`: the request is refused at once with an approval id; once approved, the same
//!   request (same canonical hash of host, path, model, masked body and user) goes through once;
//! - a decision may grant a window: the same user's requests under the same rule and provider
//!   go through unheld until it ends (at most the rule's `max_grant`), revocable.
//!
//! Approvers see what would leave (the masked body, the findings by rule and place), never a
//! secret: the queue holds only masked bodies. Nobody approves their own request unless they
//! are in a `break_glass` group, and such a decision says so.
//!
//! The queue lives in memory, per process, unless the store is PostgreSQL: then replicas share
//! it through the database ([`shared`]). It outlives policy reloads (a held request keeps the
//! rule it was held under).

pub mod rules;
mod shared;

use bytes::Bytes;
use rules::{ApprovalRule, Mode};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// A request waiting for a decision, as approvers see it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Pending {
    pub id: String,
    pub rule: String,
    pub mode: Mode,
    /// When it arrived (RFC 3339, UTC).
    pub created_at: String,
    #[serde(skip)]
    pub created: Instant,
    #[serde(skip)]
    pub deadline: Instant,
    pub user: String,
    pub groups: Vec<String>,
    pub provider: String,
    pub model: Option<String>,
    pub region: Option<String>,
    pub host: String,
    pub path: String,
    pub findings: Vec<FindingView>,
    /// The request body as it would leave: masked.
    #[serde(skip)]
    pub body: Bytes,
    pub body_bytes: usize,
    /// Groups whose members may decide (empty: anyone with the approver role).
    pub approvers: Vec<String>,
    #[serde(with = "humantime_serde")]
    pub max_grant: Duration,
    #[serde(skip)]
    pub wait: Duration,
    #[serde(skip)]
    request_hash: String,
}

impl Pending {
    /// Seconds it has waited, and seconds left before it times out.
    pub fn times(&self) -> (u64, u64) {
        let now = Instant::now();
        (
            now.duration_since(self.created).as_secs(),
            self.deadline.saturating_duration_since(now).as_secs(),
        )
    }
}

/// One finding as approvers see it: rule, category and place, never the value.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct FindingView {
    pub rule: String,
    pub category: String,
    pub path: String,
}

/// Who decides.
#[derive(Debug, Clone)]
pub struct Approver {
    /// `None` while authentication is off (the admin API is then open on loopback).
    pub user: Option<String>,
    pub groups: Vec<String>,
    /// Holds the admin role: may decide under any rule (never on their own requests).
    pub admin: bool,
}

/// What an approver decided.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Verdict {
    pub approved: bool,
    pub by: String,
    pub reason: Option<String>,
    /// When (RFC 3339, UTC).
    pub at: String,
    /// The approver approved their own request, as a member of a `break_glass` group.
    pub break_glass: bool,
    /// The grant the approval opened, if it opened one.
    pub grant: Option<String>,
}

/// A window in which one user's requests under one rule and provider go through unheld.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Grant {
    pub id: String,
    pub user: String,
    pub rule: String,
    pub provider: String,
    pub by: String,
    /// Until when (RFC 3339, UTC).
    pub until: String,
    #[serde(skip)]
    ends: Instant,
}

/// Why a decision was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecideError {
    #[error("no pending approval {0} (decided, timed out, or abandoned by its client)")]
    NotFound(String),
    #[error(
        "{user} sent this request and cannot approve it (only members of a break_glass group may)"
    )]
    SelfApproval { user: String },
    #[error("rule {rule} is decided by members of {groups}")]
    NotAnApprover { rule: String, groups: String },
    #[error("rule {rule} grants at most {max}")]
    GrantTooLong { rule: String, max: String },
    #[error("a denial needs a reason")]
    ReasonRequired,
    #[error("the shared approval queue cannot be reached right now; try again")]
    Unavailable,
}

/// What to decide.
#[derive(Debug, Clone)]
pub struct Ask {
    pub approve: bool,
    pub reason: Option<String>,
    /// Approve for this long: the user's next requests under the rule go through unheld.
    pub grant: Option<Duration>,
}

/// The outcome of a `retry`-mode request.
#[derive(Debug)]
pub enum Retry {
    /// Approved before: it goes through, once.
    Approved(Verdict),
    /// Waiting for a decision under this id; `new` when this request opened it.
    Pending { id: String, new: bool },
    /// Denied: the verdict stays on the request's hash until its approval would have expired.
    Denied(Verdict),
}

struct Entry {
    pending: Pending,
    /// The held request, waiting (hold mode).
    waiter: Option<oneshot::Sender<Verdict>>,
    /// In the shared queue (false while it is not shared, or when sharing it failed: then it
    /// is decided here, as an unshared queue would).
    shared: bool,
}

#[derive(Default)]
struct Inner {
    /// Requests that arrived here.
    pending: BTreeMap<String, Entry>,
    /// When shared: what waits on every replica, as the database last said.
    remote: BTreeMap<String, Pending>,
    /// Decided `retry` requests by request hash: the verdict, until when it holds.
    decided: BTreeMap<String, (Verdict, Instant)>,
    grants: Vec<Grant>,
    next: u64,
}

impl Inner {
    fn sweep(&mut self, now: Instant) {
        self.pending
            .retain(|_, e| e.pending.mode == Mode::Hold || e.pending.deadline > now);
        self.remote.retain(|_, p| p.deadline > now);
        self.decided.retain(|_, (_, until)| *until > now);
        self.grants.retain(|g| g.ends > now);
    }
}

/// The approval queue, grants and decided retries.
#[derive(Default)]
pub struct Approvals {
    inner: Mutex<Inner>,
    /// The queue the replicas share, when the store is PostgreSQL.
    shared: Option<shared::Shared>,
}

/// What a held request waits on; dropping it (the client left) withdraws the request.
pub struct Held<'a> {
    approvals: &'a Approvals,
    pub id: String,
    rx: Option<oneshot::Receiver<Verdict>>,
}

impl Held<'_> {
    /// Waits for the decision, at most `wait`; `None` when it timed out (the request is then
    /// withdrawn).
    pub async fn decision(&mut self, wait: Duration) -> Option<Verdict> {
        let rx = self.rx.take()?;
        match tokio::time::timeout(wait, rx).await {
            Ok(Ok(verdict)) => Some(verdict),
            _ => None,
        }
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        let entry = self.approvals.lock().pending.remove(&self.id);
        if let Some(shared) = &self.approvals.shared
            && entry.is_none_or(|e| e.shared)
        {
            shared.withdraw(&self.id);
        }
    }
}

/// A new pending request: what the stage knows of it.
pub struct NewRequest {
    pub user: String,
    pub groups: Vec<String>,
    pub provider: String,
    pub model: Option<String>,
    pub region: Option<String>,
    pub host: String,
    pub path: String,
    pub findings: Vec<FindingView>,
    pub body: Bytes,
}

impl NewRequest {
    /// The canonical hash `retry` mode matches a retried request by: SHA-256 over host, path,
    /// model, masked body and user, each length-prefixed (`tollgate-approval/1`).
    fn hash(&self) -> String {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        for part in [
            b"tollgate-approval/1".as_slice(),
            self.host.as_bytes(),
            self.path.as_bytes(),
            self.model.as_deref().unwrap_or("").as_bytes(),
            &self.body,
            self.user.as_bytes(),
        ] {
            ctx.update(&(part.len() as u64).to_be_bytes());
            ctx.update(part);
        }
        hex(ctx.finish().as_ref())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn rfc3339_in(d: Duration) -> String {
    let at = time::OffsetDateTime::now_utc() + d;
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

impl Approvals {
    /// A queue shared with the other replicas through the PostgreSQL store: requests held here
    /// are listed and decided on any replica, grants apply everywhere, and a `retry` approval
    /// is consumed once across all of them (see [`shared`]).
    pub fn shared(db: crate::record::postgres::PgHandle) -> std::sync::Arc<Approvals> {
        let approvals = std::sync::Arc::new(Approvals {
            inner: Mutex::default(),
            shared: Some(shared::Shared::new(db)),
        });
        shared::Shared::start(&approvals);
        approvals
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn entry(inner: &mut Inner, rule: &ApprovalRule, req: NewRequest, hash: String) -> Pending {
        inner.next += 1;
        let now = Instant::now();
        // Unguessable ids: an approval id in an agent's output must not let others guess
        // the next one.
        let mut random = [0u8; 8];
        let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut random);
        Pending {
            id: format!("apr_{}{}", inner.next, hex(&random)),
            rule: rule.name.clone(),
            mode: rule.mode,
            created_at: rfc3339_in(Duration::ZERO),
            created: now,
            deadline: now + rule.wait,
            user: req.user,
            groups: req.groups,
            provider: req.provider,
            model: req.model,
            region: req.region,
            host: req.host,
            path: req.path,
            findings: req.findings,
            body_bytes: req.body.len(),
            body: req.body,
            approvers: rule.approvers.clone(),
            max_grant: rule.max_grant,
            wait: rule.wait,
            request_hash: hash,
        }
    }

    /// The grant that lets `user`'s request under `rule` to `provider` through, if one is open.
    pub fn grant_for(&self, user: &str, rule: &str, provider: &str) -> Option<Grant> {
        let mut inner = self.lock();
        inner.sweep(Instant::now());
        inner
            .grants
            .iter()
            .find(|g| g.user == user && g.rule == rule && g.provider == provider)
            .cloned()
    }

    /// Queues a `hold` request; the caller waits on what is returned. When the queue is
    /// shared, the request is in the database (where every replica's approvers see it) before
    /// this returns.
    pub async fn hold(&self, rule: &ApprovalRule, req: NewRequest) -> Held<'_> {
        let hash = req.hash();
        let (tx, rx) = oneshot::channel();
        let pending = Self::entry(&mut self.lock(), rule, req, hash);
        let id = pending.id.clone();
        let shared = match &self.shared {
            Some(shared) => shared.publish(&pending).await,
            None => false,
        };
        self.lock().pending.insert(
            id.clone(),
            Entry {
                pending,
                waiter: Some(tx),
                shared,
            },
        );
        Held {
            approvals: self,
            id,
            rx: Some(rx),
        }
    }

    /// A `retry` request: through once if approved, refused if denied, pending otherwise. Fails
    /// only when the queue is shared and the database cannot say.
    pub async fn retry(
        &self,
        rule: &ApprovalRule,
        req: NewRequest,
    ) -> Result<Retry, crate::record::StoreError> {
        let hash = req.hash();
        if let Some(shared) = &self.shared {
            let pending = Self::entry(&mut self.lock(), rule, req, hash);
            return shared.retry(pending).await;
        }
        let mut inner = self.lock();
        inner.sweep(Instant::now());
        if let Some((verdict, _)) = inner.decided.get(&hash) {
            if !verdict.approved {
                return Ok(Retry::Denied(verdict.clone()));
            }
            let Some((verdict, _)) = inner.decided.remove(&hash) else {
                return Ok(Retry::Pending {
                    id: String::new(),
                    new: false,
                });
            };
            return Ok(Retry::Approved(verdict));
        }
        if let Some(entry) = inner
            .pending
            .values()
            .find(|e| e.pending.request_hash == hash)
        {
            return Ok(Retry::Pending {
                id: entry.pending.id.clone(),
                new: false,
            });
        }
        let pending = Self::entry(&mut inner, rule, req, hash);
        let id = pending.id.clone();
        inner.pending.insert(
            id.clone(),
            Entry {
                pending,
                waiter: None,
                shared: false,
            },
        );
        Ok(Retry::Pending { id, new: true })
    }

    /// How many requests wait (on every replica, when shared).
    pub fn pending_count(&self) -> usize {
        self.list().len()
    }

    /// Pending requests, newest first (on every replica, when shared).
    pub fn list(&self) -> Vec<Pending> {
        let mut inner = self.lock();
        inner.sweep(Instant::now());
        let mut out: Vec<Pending> = inner.pending.values().map(|e| e.pending.clone()).collect();
        out.extend(
            inner
                .remote
                .values()
                .filter(|p| !inner.pending.contains_key(&p.id))
                .cloned(),
        );
        out.sort_by_key(|p| std::cmp::Reverse(p.created));
        out
    }

    pub fn get(&self, id: &str) -> Option<Pending> {
        let mut inner = self.lock();
        inner.sweep(Instant::now());
        inner
            .pending
            .get(id)
            .map(|e| e.pending.clone())
            .or_else(|| inner.remote.get(id).cloned())
    }

    /// Open grants.
    pub fn grants(&self) -> Vec<Grant> {
        let mut inner = self.lock();
        inner.sweep(Instant::now());
        inner.grants.clone()
    }

    /// Ends a grant; false if there was none by that id.
    pub async fn revoke(&self, id: &str) -> Result<bool, crate::record::StoreError> {
        let here = {
            let mut inner = self.lock();
            let before = inner.grants.len();
            inner.grants.retain(|g| g.id != id);
            inner.grants.len() != before
        };
        match &self.shared {
            Some(shared) => shared.revoke(id).await,
            None => Ok(here),
        }
    }

    /// Whether `who` may decide `p` as asked: the name the decision goes under, and whether it
    /// is a break-glass decision.
    fn check(
        p: &Pending,
        who: &Approver,
        ask: &Ask,
        break_glass: &[String],
    ) -> Result<(String, bool), DecideError> {
        let by = who
            .user
            .clone()
            .unwrap_or_else(|| "(open admin API)".into());
        // A break_glass member may decide what they otherwise could not (their own request, or
        // a rule whose approvers they are not among); such a decision is marked.
        let own = who.user.as_deref() == Some(p.user.as_str());
        let member = who.groups.iter().any(|g| break_glass.contains(g));
        if own && !member {
            return Err(DecideError::SelfApproval { user: by });
        }
        let in_group = p.approvers.is_empty() || who.groups.iter().any(|g| p.approvers.contains(g));
        let entitled = who.admin || in_group || who.user.is_none();
        if !entitled && !member {
            return Err(DecideError::NotAnApprover {
                rule: p.rule.clone(),
                groups: p.approvers.join(", "),
            });
        }
        if !ask.approve && ask.reason.as_deref().is_none_or(|r| r.trim().is_empty()) {
            return Err(DecideError::ReasonRequired);
        }
        if let Some(window) = ask.grant
            && (window > p.max_grant || window.is_zero())
        {
            return Err(DecideError::GrantTooLong {
                rule: p.rule.clone(),
                max: humantime_serde::re::humantime::format_duration(p.max_grant).to_string(),
            });
        }
        Ok((by, own || !entitled))
    }

    fn grant_id(inner: &mut Inner) -> String {
        inner.next += 1;
        let mut random = [0u8; 4];
        let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut random);
        format!("grt_{}{}", inner.next, hex(&random))
    }

    /// Decides pending request `id`. `break_glass` are the groups that may approve their own.
    /// When the queue is shared, the request may wait on another replica: the decision is
    /// taken in the database, once, and that replica releases it.
    pub async fn decide(
        &self,
        id: &str,
        who: &Approver,
        ask: Ask,
        break_glass: &[String],
    ) -> Result<Verdict, DecideError> {
        let here_only = self
            .lock()
            .pending
            .get(id)
            .is_some_and(|entry| !entry.shared);
        if let Some(shared) = self.shared.as_ref().filter(|_| !here_only) {
            let verdict = shared.decide(self, id, who, ask, break_glass).await?;
            self.deliver(id, &verdict);
            return Ok(verdict);
        }
        let mut inner = self.lock();
        inner.sweep(Instant::now());
        let entry = inner
            .pending
            .get(id)
            .ok_or_else(|| DecideError::NotFound(id.to_owned()))?;
        let (by, glass) = Self::check(&entry.pending, who, &ask, break_glass)?;
        let Some(entry) = inner.pending.remove(id) else {
            return Err(DecideError::NotFound(id.to_owned()));
        };
        let p = entry.pending;
        let grant = match ask.grant.filter(|_| ask.approve) {
            Some(window) => {
                let grant = Grant {
                    id: Self::grant_id(&mut inner),
                    user: p.user.clone(),
                    rule: p.rule.clone(),
                    provider: p.provider.clone(),
                    by: by.clone(),
                    until: rfc3339_in(window),
                    ends: Instant::now() + window,
                };
                let id = grant.id.clone();
                inner.grants.push(grant);
                Some(id)
            }
            None => None,
        };
        let verdict = Verdict {
            approved: ask.approve,
            by,
            reason: ask.reason,
            at: rfc3339_in(Duration::ZERO),
            break_glass: glass,
            grant,
        };
        match entry.waiter {
            Some(waiter) => {
                // The held request may have just left; the decision is recorded anyway.
                let _ = waiter.send(verdict.clone());
            }
            None => {
                inner.decided.insert(
                    p.request_hash.clone(),
                    (verdict.clone(), Instant::now() + p.wait),
                );
            }
        }
        Ok(verdict)
    }

    /// Releases request `id` if it is held here (the decision came from the shared queue).
    fn deliver(&self, id: &str, verdict: &Verdict) {
        let mut inner = self.lock();
        inner.remote.remove(id);
        if let Some(entry) = inner.pending.remove(id)
            && let Some(waiter) = entry.waiter
        {
            let _ = waiter.send(verdict.clone());
        }
    }
}

/// What an exchange's record keeps of its approval (JSON in the record's `approval` field, part
/// of the hash chain).
#[derive(Debug, Clone, serde::Serialize)]
pub struct ApprovalRecord {
    pub id: Option<String>,
    pub rule: String,
    pub mode: Mode,
    /// `approved`, `denied`, `timeout`, `pending` (retry refused for now), `granted` (went
    /// through under a grant), `abandoned` (the client left while held).
    pub decision: &'static str,
    pub by: Option<String>,
    pub reason: Option<String>,
    pub at: Option<String>,
    pub waited_ms: u64,
    pub break_glass: bool,
    pub grant: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::Source;

    fn rule(mode: &str) -> rules::ApprovalPolicy {
        rules::ApprovalPolicy::parse(
            &Source::inline(
                "approvals.yaml",
                &format!(
                    "break_glass: [oncall]\nrules:\n  - name: r\n    when: {{ providers: [openai] }}\n    approvers: [sec]\n    mode: {mode}\n    max_grant: 30m\n"
                ),
            ),
            &[],
            &["openai".into()],
        )
        .unwrap()
    }

    fn request(user: &str, body: &str) -> NewRequest {
        NewRequest {
            user: user.into(),
            groups: vec!["dev".into()],
            provider: "openai".into(),
            model: Some("gpt-4o".into()),
            region: None,
            host: "api.openai.com".into(),
            path: "/v1/chat/completions".into(),
            findings: vec![],
            body: Bytes::from(body.to_owned()),
        }
    }

    fn approver(user: &str, groups: &[&str]) -> Approver {
        Approver {
            user: Some(user.into()),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            admin: false,
        }
    }

    fn approve() -> Ask {
        Ask {
            approve: true,
            reason: None,
            grant: None,
        }
    }

    #[tokio::test]
    async fn a_held_request_gets_the_verdict_and_leaves_the_queue() {
        let policy = rule("hold");
        let approvals = Approvals::default();
        let mut held = approvals
            .hold(&policy.rules[0], request("alice", "{}"))
            .await;
        assert_eq!(approvals.list().len(), 1);
        let id = held.id.clone();
        let v = approvals
            .decide(&id, &approver("bob", &["sec"]), approve(), &[])
            .await
            .unwrap();
        assert!(v.approved);
        assert!(
            held.decision(Duration::from_secs(1))
                .await
                .unwrap()
                .approved
        );
        assert!(approvals.list().is_empty());
        drop(held);
        let mut gone = approvals
            .hold(&policy.rules[0], request("alice", "{}"))
            .await;
        assert!(gone.decision(Duration::from_millis(10)).await.is_none());
        drop(gone);
        assert!(
            approvals.list().is_empty(),
            "a timed-out or abandoned request leaves"
        );
    }

    #[tokio::test]
    async fn nobody_approves_their_own_request_but_break_glass_says_so() {
        let policy = rule("retry");
        let approvals = Approvals::default();
        let Retry::Pending { id, .. } = approvals
            .retry(&policy.rules[0], request("alice", "{}"))
            .await
            .unwrap()
        else {
            panic!("pending")
        };
        let mut admin = approver("alice", &["sec"]);
        admin.admin = true;
        assert!(matches!(
            approvals
                .decide(&id, &admin, approve(), &["oncall".into()])
                .await,
            Err(DecideError::SelfApproval { .. })
        ));
        assert!(matches!(
            approvals
                .decide(&id, &approver("carol", &["dev"]), approve(), &[])
                .await,
            Err(DecideError::NotAnApprover { .. })
        ));
        let v = approvals
            .decide(
                &id,
                &approver("alice", &["oncall"]),
                approve(),
                &["oncall".into()],
            )
            .await
            .unwrap();
        assert!(v.break_glass);
    }

    #[tokio::test]
    async fn an_approved_retry_goes_through_once_and_a_changed_body_needs_its_own() {
        let policy = rule("retry");
        let approvals = Approvals::default();
        let Retry::Pending { id, .. } = approvals
            .retry(&policy.rules[0], request("alice", "{\"a\":1}"))
            .await
            .unwrap()
        else {
            panic!("pending")
        };
        let Retry::Pending { id: again, .. } = approvals
            .retry(&policy.rules[0], request("alice", "{\"a\":1}"))
            .await
            .unwrap()
        else {
            panic!("pending")
        };
        assert_eq!(id, again, "the same request is the same approval");
        approvals
            .decide(&id, &approver("bob", &["sec"]), approve(), &[])
            .await
            .unwrap();
        assert!(matches!(
            approvals.retry(&policy.rules[0], request("alice", "{\"a\":2}")).await.unwrap(),
            Retry::Pending { id: other, .. } if other != id
        ));
        assert!(matches!(
            approvals
                .retry(&policy.rules[0], request("alice", "{\"a\":1}"))
                .await
                .unwrap(),
            Retry::Approved(_)
        ));
        assert!(
            matches!(
                approvals
                    .retry(&policy.rules[0], request("alice", "{\"a\":1}"))
                    .await
                    .unwrap(),
                Retry::Pending { .. }
            ),
            "once"
        );
    }

    #[tokio::test]
    async fn a_grant_is_capped_by_the_rule_and_revocable() {
        let policy = rule("retry");
        let approvals = Approvals::default();
        let Retry::Pending { id, .. } = approvals
            .retry(&policy.rules[0], request("alice", "{}"))
            .await
            .unwrap()
        else {
            panic!("pending")
        };
        let long = Ask {
            grant: Some(Duration::from_secs(7200)),
            ..approve()
        };
        assert!(matches!(
            approvals
                .decide(&id, &approver("bob", &["sec"]), long, &[])
                .await,
            Err(DecideError::GrantTooLong { .. })
        ));
        let ok = Ask {
            grant: Some(Duration::from_secs(600)),
            ..approve()
        };
        let v = approvals
            .decide(&id, &approver("bob", &["sec"]), ok, &[])
            .await
            .unwrap();
        let grant = approvals.grant_for("alice", "r", "openai").unwrap();
        assert_eq!(v.grant.as_deref(), Some(grant.id.as_str()));
        assert!(approvals.grant_for("mallory", "r", "openai").is_none());
        assert!(approvals.revoke(&grant.id).await.unwrap());
        assert!(approvals.grant_for("alice", "r", "openai").is_none());
    }
}
