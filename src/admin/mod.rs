//! The admin listener (`run --admin ADDR`, default `127.0.0.1:9090`): health, metrics, the policy
//! in force and its reload, as JSON over HTTP (axum).
//!
//! Everything but `/livez` is authenticated: `Authorization: Bearer <token or JWT>`, the same
//! tokens and OIDC provider as the proxy (identity.yaml), with roles given by the caller's groups
//! (`admin.roles`). While authentication is off altogether (no token, no OIDC), the admin API is
//! open like the proxy, and only on loopback.
//!
//! | route | role | what |
//! |---|---|---|
//! | `GET /livez` | none | 200 while the process serves |
//! | `GET /readyz` | any | 200 when the store takes writes and policy and CA are loaded; 503 while draining or when the store fails |
//! | `GET /metrics` | any | Prometheus text format |
//! | `GET /api/policy` | auditor, admin | the policy in force: files, fingerprint, last reload |
//! | `POST /api/reload` | admin | reload the policy now; 200 with the report, 422 with the error |
//! | `GET /api/approvals` | approver | pending requests, newest first |
//! | `GET /api/approvals/{id}` | approver | one, with its masked body |
//! | `POST /api/approvals/{id}/approve` | approver | `{"for": "30m"?, "reason": "…"?}` |
//! | `POST /api/approvals/{id}/deny` | approver | `{"reason": "…"}` |
//! | `GET /api/grants`, `DELETE /api/grants/{id}` | approver | open grants; revoke one |
//! | `GET /api/exchanges` | auditor | records, newest first, filtered and paginated, without bodies |
//! | `GET /api/exchanges/{id}` | auditor | one record with its bodies as stored (masked) |
//! | `GET /api/sessions`, `GET /api/sessions/{id}` | auditor | conversations; one's exchanges |
//! | `GET /console/…` | by page | the web console ([`console`]), on a session of its own |

pub mod console;

use crate::approval::{Approvals, Approver, Ask, DecideError, Pending};
use crate::identity::oidc::Fetch;
use crate::identity::{AuthError, Identity, Role};
use crate::metrics::Metrics;
use crate::reload::{PolicyState, Trigger};
use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tracing::{info, warn};

/// Whether the proxy can take requests now, as `/readyz` reports it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Readiness {
    pub draining: bool,
    /// Whether the audit store takes writes and its queue has room (true when recording is off).
    pub store_writable: bool,
    pub recording: bool,
}

impl Readiness {
    pub fn is_ready(&self) -> bool {
        !self.draining && self.store_writable
    }
}

/// What the admin API reads from the running proxy.
#[derive(Clone)]
pub struct AdminState {
    pub policy: Arc<PolicyState>,
    pub metrics: Arc<Metrics>,
    pub readiness: Arc<dyn Fn() -> Readiness + Send + Sync>,
    /// Fetches the identity provider's keys, to check JWTs.
    pub fetcher: Arc<dyn Fetch>,
    pub approvals: Arc<Approvals>,
    /// The audit store, when recording is on.
    pub db: Option<crate::record::StoreLocation>,
    /// The web console's sessions and state.
    pub console: Arc<console::Console>,
    /// The proxy's own listener, for the PAC file.
    pub proxy_addr: SocketAddr,
}

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(
        "cannot listen on {addr} for the admin API: {source}; pass --admin ADDR, or --admin off"
    )]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(
        "the admin API on {0} is not on loopback and no token or OIDC provider is configured (identity.yaml), so anyone who reaches it could reload the policy; configure authentication or listen on 127.0.0.1"
    )]
    Open(SocketAddr),
}

/// A running admin listener; dropping it stops it.
pub struct RunningAdmin {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl RunningAdmin {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for RunningAdmin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Binds `addr` and serves the admin API.
pub async fn serve(addr: SocketAddr, state: AdminState) -> Result<RunningAdmin, AdminError> {
    if !addr.ip().is_loopback() && !state.policy.current().auth().is_enabled() {
        return Err(AdminError::Open(addr));
    }
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| AdminError::Bind { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| AdminError::Bind { addr, source })?;
    let app = router(state);
    let task = tokio::spawn(accept(listener, app));
    info!("admin API on http://{bound}");
    if !bound.ip().is_loopback() {
        warn!(
            "the admin listener on {bound} speaks plain HTTP: the web console's cookies are Secure, so browsers on other machines reach it only through TLS in front of it (an ingress or a reverse proxy)"
        );
    }
    Ok(RunningAdmin { addr: bound, task })
}

/// Connections the admin listener serves at once, at most; more wait to be accepted.
const MAX_CONNECTIONS: usize = 256;
/// A request head must arrive within this, and an idle connection closes after it.
const HEADER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves `app` on `listener` with bounds: at most [`MAX_CONNECTIONS`] at once, request heads
/// within [`HEADER_TIMEOUT`] (a client that trickles bytes cannot hold file descriptors the proxy
/// needs).
async fn accept(listener: TcpListener, app: Router) {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(HEADER_TIMEOUT));
    let builder = Arc::new(builder);
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let (tcp, _) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                warn!("admin listener: cannot accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let builder = builder.clone();
        tokio::spawn(async move {
            let _ = builder.serve_connection(TokioIo::new(tcp), service).await;
            drop(slot);
        });
    }
}

fn router(state: AdminState) -> Router {
    // Every route but /livez, and the fallback, sit behind `authenticate`: a route added here is
    // authenticated unless it is exempted there.
    Router::new()
        .route("/livez", get(|| async { "ok\n" }))
        .route("/proxy.pac", get(proxy_pac))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/policy", get(policy))
        .route("/api/reload", post(reload))
        .route("/api/approvals", get(approvals_list))
        .route("/api/approvals/{id}", get(approval_show))
        .route("/api/approvals/{id}/approve", post(approval_approve))
        .route("/api/approvals/{id}/deny", post(approval_deny))
        .route("/api/grants", get(grants_list))
        .route("/api/grants/{id}", delete(grant_revoke))
        .route("/api/exchanges", get(exchanges_list))
        .route("/api/exchanges/{id}", get(exchange_show))
        .route("/api/sessions", get(sessions_list))
        .route("/api/sessions/{id}", get(session_show))
        .route(
            "/",
            get(|| async { axum::response::Redirect::to("/console/") }),
        )
        .merge(console::routes())
        .fallback(|| async { problem(StatusCode::NOT_FOUND, "not-found", "no such route") })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            authenticate,
        ))
        .with_state(state)
}

/// `/proxy.pac`: the policy's governed hosts through the proxy. The proxy's host is the one the
/// client reached the admin listener by (its `Host`), with the proxy listener's port; where
/// clients reach the proxy by another name, serve them a copy of this file instead.
async fn proxy_pac(State(state): State<AdminState>, req: Request) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .unwrap_or_else(|| state.proxy_addr.ip().to_string());
    let Some(proxy) = crate::deploy::pac::proxy_host(&host, state.proxy_addr.port()) else {
        return problem(
            StatusCode::BAD_REQUEST,
            "bad-host",
            "the Host header is not a DNS name or an IP address",
        );
    };
    let policy = state.policy.current();
    let patterns: Vec<&str> = policy
        .catalog()
        .host_patterns()
        .map(|(_, p)| p.as_str())
        .chain(policy.denied_host_patterns())
        .collect();
    let script = crate::deploy::pac::script(&proxy, patterns, policy.denies_unknown_hosts());
    (
        [
            (header::CONTENT_TYPE, "application/x-ns-proxy-autoconfig"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        script,
    )
        .into_response()
}

/// Whether a request's `Host` names this machine's loopback (what a browser sends to a page
/// served from 127.0.0.1, and never for a DNS-rebound name).
fn host_is_loopback(req: &Request) -> bool {
    let Some(host) = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    matches!(name, "localhost" | "127.0.0.1" | "[::1]")
}

/// Who is calling, and with which roles (every role while authentication is off).
#[derive(Debug, Clone)]
pub struct Caller {
    pub identity: Option<Identity>,
    pub roles: Vec<Role>,
}

impl Caller {
    fn may(&self, any_of: &[Role]) -> bool {
        self.roles
            .iter()
            .any(|r| *r == Role::Admin || any_of.contains(r))
    }
}

/// An error as the admin API answers it: `{"error": {"type": …, "message": …}}`.
fn problem(status: StatusCode, kind: &str, message: impl Into<String>) -> Response {
    let body = json!({"error": {"type": kind, "message": message.into()}});
    (status, axum::Json(body)).into_response()
}

async fn authenticate(State(state): State<AdminState>, mut req: Request, next: Next) -> Response {
    // Systems fetch a PAC file without credentials; it holds nothing but the policy's host
    // patterns and the proxy's address.
    if matches!(req.uri().path(), "/livez" | "/proxy.pac") {
        return next.run(req).await;
    }
    // The console (and `/`, which sends a browser there) signs in with a session of its own.
    let path = req.uri().path();
    if path == "/" || path == "/console" || path.starts_with("/console/") {
        return console::gate(state, req, next).await;
    }
    let policy = state.policy.current();
    let auth = policy.auth();
    let caller = if !auth.is_enabled() {
        // Open (authentication is off, so the listener is on loopback): only what names
        // loopback as its host, so a web page cannot reach it through a rebound DNS name; and
        // changes only as JSON, which a page cannot send elsewhere without the browser asking
        // first.
        if !host_is_loopback(&req) {
            return problem(
                StatusCode::FORBIDDEN,
                "host-not-loopback",
                "while authentication is off the admin API answers only requests to localhost, 127.0.0.1 or [::1]",
            );
        }
        let json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        // (A cross-site DELETE needs the browser to ask first, as a JSON POST does.)
        let simple = matches!(
            *req.method(),
            axum::http::Method::POST | axum::http::Method::PUT | axum::http::Method::PATCH
        );
        if simple && !json {
            return problem(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "json-required",
                "send changes as `Content-Type: application/json`",
            );
        }
        Caller {
            identity: None,
            roles: vec![Role::Admin],
        }
    } else {
        let header = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        match auth.authenticate_admin(header, &*state.fetcher).await {
            Ok(identity) => {
                let roles = auth.admin_roles().of(&identity);
                if roles.is_empty() {
                    return problem(
                        StatusCode::FORBIDDEN,
                        "no-admin-role",
                        format!(
                            "{} holds no admin role: give one of its groups a role under admin.roles in identity.yaml",
                            identity.user
                        ),
                    );
                }
                Caller {
                    identity: Some(identity),
                    roles,
                }
            }
            Err(e) => {
                let (status, kind) = match e {
                    AuthError::Unavailable(_) => {
                        (StatusCode::SERVICE_UNAVAILABLE, "identity-unavailable")
                    }
                    _ => (StatusCode::UNAUTHORIZED, "unauthenticated"),
                };
                let message = match e {
                    AuthError::Missing => {
                        "send `Authorization: Bearer <token or JWT>` (a token from identity.yaml whose groups hold an admin role)".to_owned()
                    }
                    e => e.to_string(),
                };
                let mut res = problem(status, kind, message);
                res.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                return res;
            }
        }
    };
    req.extensions_mut().insert(caller);
    next.run(req).await
}

fn caller(req: &Request) -> Caller {
    req.extensions().get::<Caller>().cloned().unwrap_or(Caller {
        identity: None,
        roles: Vec::new(),
    })
}

fn forbidden(needs: &str) -> Response {
    problem(
        StatusCode::FORBIDDEN,
        "forbidden",
        format!("this needs the {needs} role"),
    )
}

async fn readyz(State(state): State<AdminState>) -> Response {
    let readiness = (state.readiness)();
    let status = if readiness.is_ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "ready": readiness.is_ready(),
        "draining": readiness.draining,
        "store_writable": readiness.store_writable,
        "recording": readiness.recording,
        "policy": state.policy.current().fingerprint(),
    });
    (status, axum::Json(body)).into_response()
}

async fn metrics(State(state): State<AdminState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
        .into_response()
}

async fn policy(State(state): State<AdminState>, req: Request) -> Response {
    let who = caller(&req);
    if !who.may(&[Role::Auditor]) {
        return forbidden("auditor or admin");
    }
    // The files' text holds what only admins may read (webhook URLs, which are credentials;
    // the identifier lists masking hides): auditors see each file's digest instead.
    let full = who.roles.contains(&Role::Admin);
    let policy = state.policy.current();
    let files: Vec<_> = policy
        .files()
        .iter()
        .map(|(name, text)| {
            let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
            let sha256: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
            if full {
                json!({"name": name, "sha256": sha256, "text": text})
            } else {
                json!({"name": name, "sha256": sha256})
            }
        })
        .collect();
    axum::Json(json!({
        "fingerprint": policy.fingerprint(),
        "directory": state.policy.dir().map(|d| d.display().to_string()),
        "summary": policy.summary(),
        "files": files,
        "last_reload": state.policy.last(),
    }))
    .into_response()
}

async fn reload(State(state): State<AdminState>, req: Request) -> Response {
    let who = caller(&req);
    if !who.may(&[]) {
        return forbidden("admin");
    }
    let user = who
        .identity
        .as_ref()
        .map_or_else(|| "(open)".to_owned(), |i| i.user.to_string());
    info!(%user, "policy reload asked through the admin API");
    let policy = state.policy.clone();
    match tokio::task::spawn_blocking(move || policy.reload(Trigger::Api)).await {
        Ok(Ok(report)) => axum::Json(report).into_response(),
        Ok(Err(e)) => problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "policy-invalid",
            format!("the running policy stays in force: {e}"),
        ),
        Err(_) => problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "reload-failed",
            "the reload did not finish",
        ),
    }
}

/// A pending request as the list shows it: everything but the full body, with a preview.
fn pending_json(p: &Pending, full_body: bool) -> serde_json::Value {
    const PREVIEW: usize = 2048;
    let text = String::from_utf8_lossy(&p.body);
    let preview: String = text.chars().take(PREVIEW).collect();
    let (waited, left) = p.times();
    let mut v = serde_json::to_value(p).unwrap_or_default();
    v["waited_s"] = json!(waited);
    v["left_s"] = json!(left);
    v["preview"] = json!(preview);
    if full_body {
        v["body"] = json!(text);
    }
    v
}

fn approver(caller: &Caller) -> Approver {
    Approver {
        user: caller.identity.as_ref().map(|i| i.user.to_string()),
        groups: caller
            .identity
            .as_ref()
            .map(|i| i.groups.to_vec())
            .unwrap_or_default(),
        admin: caller.roles.contains(&Role::Admin),
    }
}

async fn approvals_list(State(state): State<AdminState>, req: Request) -> Response {
    if !caller(&req).may(&[Role::Approver]) {
        return forbidden("approver or admin");
    }
    let list: Vec<_> = state
        .approvals
        .list()
        .iter()
        .map(|p| pending_json(p, false))
        .collect();
    axum::Json(json!({ "pending": list })).into_response()
}

async fn approval_show(
    State(state): State<AdminState>,
    Path(id): Path<String>,
    req: Request,
) -> Response {
    if !caller(&req).may(&[Role::Approver]) {
        return forbidden("approver or admin");
    }
    match state.approvals.get(&id) {
        Some(p) => axum::Json(pending_json(&p, true)).into_response(),
        None => problem(
            StatusCode::NOT_FOUND,
            "approval-not-found",
            DecideError::NotFound(id).to_string(),
        ),
    }
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct DecisionBody {
    /// Approve for a window (`30m`): the user's next requests under the rule go through.
    #[serde(default, rename = "for", with = "humantime_serde")]
    window: Option<std::time::Duration>,
    #[serde(default)]
    reason: Option<String>,
}

async fn decide(state: AdminState, id: String, req: Request, approve: bool) -> Response {
    let who = caller(&req);
    if !who.may(&[Role::Approver]) {
        return forbidden("approver or admin");
    }
    let bytes = match axum::body::to_bytes(req.into_body(), 64 << 10).await {
        Ok(b) => b,
        Err(_) => return problem(StatusCode::BAD_REQUEST, "bad-body", "unreadable body"),
    };
    let body: DecisionBody = if bytes.iter().all(u8::is_ascii_whitespace) {
        DecisionBody::default()
    } else {
        match serde_json::from_slice(&bytes) {
            Ok(b) => b,
            Err(e) => {
                return problem(
                    StatusCode::BAD_REQUEST,
                    "bad-body",
                    format!("expected {{\"for\": \"30m\", \"reason\": \"…\"}}: {e}"),
                );
            }
        }
    };
    let ask = Ask {
        approve,
        reason: body.reason,
        grant: body.window,
    };
    let break_glass = state.policy.current().approvals().break_glass.clone();
    let approver = approver(&who);
    match state
        .approvals
        .decide(&id, &approver, ask, &break_glass)
        .await
    {
        Ok(verdict) => {
            info!(approval = %id, by = %verdict.by, approved = verdict.approved, break_glass = verdict.break_glass, "approval decided");
            axum::Json(verdict).into_response()
        }
        Err(e) => {
            let (status, kind) = match e {
                DecideError::NotFound(_) => (StatusCode::NOT_FOUND, "approval-not-found"),
                DecideError::SelfApproval { .. } => (StatusCode::FORBIDDEN, "self-approval"),
                DecideError::NotAnApprover { .. } => (StatusCode::FORBIDDEN, "not-an-approver"),
                DecideError::GrantTooLong { .. } | DecideError::ReasonRequired => {
                    (StatusCode::UNPROCESSABLE_ENTITY, "bad-decision")
                }
                DecideError::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "store-unavailable"),
            };
            problem(status, kind, e.to_string())
        }
    }
}

async fn approval_approve(
    State(state): State<AdminState>,
    Path(id): Path<String>,
    req: Request,
) -> Response {
    decide(state, id, req, true).await
}

async fn approval_deny(
    State(state): State<AdminState>,
    Path(id): Path<String>,
    req: Request,
) -> Response {
    decide(state, id, req, false).await
}

async fn grants_list(State(state): State<AdminState>, req: Request) -> Response {
    if !caller(&req).may(&[Role::Approver]) {
        return forbidden("approver or admin");
    }
    axum::Json(json!({ "grants": state.approvals.grants() })).into_response()
}

async fn grant_revoke(
    State(state): State<AdminState>,
    Path(id): Path<String>,
    req: Request,
) -> Response {
    let who = caller(&req);
    if !who.may(&[Role::Approver]) {
        return forbidden("approver or admin");
    }
    match state.approvals.revoke(&id).await {
        Ok(true) => {
            info!(grant = %id, by = ?who.identity.as_ref().map(|i| i.user.to_string()), "grant revoked");
            StatusCode::NO_CONTENT.into_response()
        }
        Ok(false) => problem(
            StatusCode::NOT_FOUND,
            "grant-not-found",
            format!("no open grant {id}"),
        ),
        Err(e) => {
            warn!("revoking a grant in the shared queue failed: {e}");
            problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "store-unavailable",
                "the shared approval queue cannot be reached right now; try again",
            )
        }
    }
}

/// A problem found off the async workers, answered as [`problem`].
struct Problem(StatusCode, &'static str, String);

/// Runs `f` on the audit store, off the async workers: its JSON answer, or the problem.
async fn with_store(
    state: &AdminState,
    f: impl FnOnce(&crate::record::Store) -> Result<serde_json::Value, Problem> + Send + 'static,
) -> Response {
    let Some(db) = state.db.clone() else {
        return problem(
            StatusCode::NOT_FOUND,
            "recording-off",
            "recording is off (recording.yaml: enabled: false): there are no records",
        );
    };
    let answer = tokio::task::spawn_blocking(move || {
        let store = crate::record::Store::connect(&db).map_err(store_failed)?;
        f(&store)
    })
    .await;
    match answer {
        Ok(Ok(value)) => axum::Json(value).into_response(),
        Ok(Err(Problem(status, kind, message))) => problem(status, kind, message),
        Err(_) => problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "store-read-failed",
            "reading the store did not finish",
        ),
    }
}

fn store_failed(e: crate::record::StoreError) -> Problem {
    warn!("admin API: reading the audit store failed: {e}");
    Problem(
        StatusCode::SERVICE_UNAVAILABLE,
        "store-unavailable",
        "the audit store cannot be read right now".into(),
    )
}

/// A record as JSON: its fields, with findings, usage and approval parsed.
fn record_json(id: i64, r: &crate::record::Record, bodies: bool) -> serde_json::Value {
    let parsed = |s: Option<&str>| {
        s.and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
            .unwrap_or(serde_json::Value::Null)
    };
    let mut v = serde_json::to_value(r).unwrap_or_default();
    v["id"] = json!(id);
    v["findings"] = parsed(Some(&r.findings));
    v["usage"] = parsed(r.usage.as_deref());
    v["approval"] = parsed(r.approval.as_deref());
    if bodies {
        v["request_body"] = json!(String::from_utf8_lossy(&r.request_body));
        v["response_body"] = json!(String::from_utf8_lossy(&r.response_body));
        v["response_text"] = json!(r.answer_text());
    }
    v
}

async fn exchanges_list(
    State(state): State<AdminState>,
    query: Result<Query<crate::record::ExchangeFilter>, axum::extract::rejection::QueryRejection>,
    req: Request,
) -> Response {
    if !caller(&req).may(&[Role::Auditor]) {
        return forbidden("auditor or admin");
    }
    let filter = match query {
        Ok(Query(filter)) => filter,
        Err(e) => return problem(StatusCode::BAD_REQUEST, "bad-filter", e.body_text()),
    };
    with_store(&state, move |store| {
        let rows = store.exchanges(&filter).map_err(store_failed)?;
        let next = (rows.len() == filter.limit.clamp(1, 1000) as usize)
            .then(|| rows.last().map(|(id, _)| *id))
            .flatten();
        let list: Vec<_> = rows
            .iter()
            .map(|(id, r)| record_json(*id, r, false))
            .collect();
        Ok(json!({ "exchanges": list, "next_before_id": next }))
    })
    .await
}

async fn exchange_show(
    State(state): State<AdminState>,
    Path(id): Path<i64>,
    req: Request,
) -> Response {
    if !caller(&req).may(&[Role::Auditor]) {
        return forbidden("auditor or admin");
    }
    with_store(&state, move |store| {
        match store.get(id).map_err(store_failed)? {
            Some(r) => Ok(record_json(id, &r, true)),
            None => Err(Problem(
                StatusCode::NOT_FOUND,
                "exchange-not-found",
                format!("no record {id}"),
            )),
        }
    })
    .await
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SessionQuery {
    since: Option<String>,
    user: Option<String>,
}

async fn sessions_list(
    State(state): State<AdminState>,
    query: Result<Query<SessionQuery>, axum::extract::rejection::QueryRejection>,
    req: Request,
) -> Response {
    if !caller(&req).may(&[Role::Auditor]) {
        return forbidden("auditor or admin");
    }
    let q = match query {
        Ok(Query(q)) => q,
        Err(e) => return problem(StatusCode::BAD_REQUEST, "bad-filter", e.body_text()),
    };
    with_store(&state, move |store| {
        let sessions = store
            .sessions(q.since.as_deref(), q.user.as_deref())
            .map_err(store_failed)?;
        Ok(json!({ "sessions": sessions }))
    })
    .await
}

async fn session_show(
    State(state): State<AdminState>,
    Path(id): Path<String>,
    req: Request,
) -> Response {
    if !caller(&req).may(&[Role::Auditor]) {
        return forbidden("auditor or admin");
    }
    with_store(&state, move |store| {
        let filter = crate::record::ExchangeFilter {
            session: Some(id.clone()),
            limit: 1000,
            ..Default::default()
        };
        let mut rows = store.exchanges(&filter).map_err(store_failed)?;
        if rows.is_empty() {
            return Err(Problem(
                StatusCode::NOT_FOUND,
                "session-not-found",
                format!("no session {id}"),
            ));
        }
        rows.reverse();
        let list: Vec<_> = rows
            .iter()
            .map(|(i, r)| record_json(*i, r, false))
            .collect();
        Ok(json!({ "id": id, "exchanges": list }))
    })
    .await
}
