//! The web console for approvers and auditors, served by the admin listener under `/console`:
//! server-rendered pages (maud), one small script of its own and one stylesheet, both embedded, no
//! build step and nothing fetched from elsewhere.
//!
//! Sign-in takes the same credentials as the admin API (a token from identity.yaml, or a JWT from
//! the identity provider) and keeps them only in memory, in a session named by an `HttpOnly;
//! Secure; SameSite=Strict` cookie; every page checks them again, so a reload that revokes a token
//! or takes a role away applies at once. While authentication is off the console is open on
//! loopback like the API, and still needs a session, so that every form carries a CSRF token.
//! Roles decide what is shown: approvers see approvals and their context, auditors the records,
//! the audit chain and the policy; admins everything.
//!
//! | route | role | what |
//! |---|---|---|
//! | `GET /console/approvals` | approver | pending requests, refreshed as they come, and grants in force |
//! | `GET /console/approvals/{id}` | approver | the masked request as it would leave; approve, approve for a window, deny |
//! | `GET /console/exchanges` | auditor | records, filtered and paginated; exchanges in flight on top |
//! | `GET /console/exchanges/{id}` | auditor | one exchange: prompt, answer, findings, timing; raw bodies |
//! | `GET /console/sessions/{id}` | auditor | a conversation turn by turn; as HAR |
//! | `GET /console/audit` | auditor | the chain's last verification (and a button to run it), retention |
//! | `GET /console/policy` | auditor | the policy in force, its last reload, and `policy explain` |

mod page;

use super::{AdminState, Caller, host_is_loopback};
use crate::identity::Role;
use axum::extract::{Form, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tracing::{info, warn};

// `__Host-` cookies: Secure, for this host only and for every path, so that no other site on the
// same host (another port) or domain can plant one that shadows them.
const COOKIE: &str = "__Host-tollgate_console";
/// Names the sign-in form's own CSRF token, before there is a session.
const LOGIN_COOKIE: &str = "__Host-tollgate_console_login";
/// Binds a sign-in through the identity provider to the browser that started it.
const OIDC_COOKIE: &str = "__Host-tollgate_console_oidc";
/// A session ends this long after sign-in, or after this long unused.
const SESSION_LIFETIME: Duration = Duration::from_secs(8 * 3600);
const SESSION_IDLE: Duration = Duration::from_secs(3600);
/// Sessions kept at most; past it the oldest go first.
const MAX_SESSIONS: usize = 10_000;

const CSS: &str = include_str!("console.css");
const JS: &str = include_str!("console.js");

/// The strictest policy the pages work under: nothing inline, nothing from elsewhere.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The console's own state: its sessions and the last verification of the audit chain.
#[derive(Default)]
pub struct Console {
    sessions: Mutex<HashMap<String, Session>>,
    /// Sign-ins sent to the identity provider, by their `state`: the PKCE verifier and nonce.
    logins: Mutex<HashMap<String, ProviderLogin>>,
    last_verify: Mutex<Option<page::Verification>>,
}

struct ProviderLogin {
    verifier: String,
    nonce: String,
    started: Instant,
}

/// How long a browser may take at the identity provider; sign-ins kept waiting at most.
const PROVIDER_LOGIN_WAIT: Duration = Duration::from_secs(600);
const MAX_PROVIDER_LOGINS: usize = 10_000;

#[derive(Clone)]
struct Session {
    /// What was signed in with (`None` while authentication is off): checked again on every
    /// page. Memory only.
    credential: Option<String>,
    csrf: String,
    created: Instant,
    used: Instant,
}

/// Who is looking, and the token their forms must carry.
#[derive(Clone)]
pub(super) struct Viewer {
    pub caller: Caller,
    pub csrf: String,
}

impl Viewer {
    pub fn may(&self, any_of: &[Role]) -> bool {
        self.caller.may(any_of)
    }

    pub fn name(&self) -> String {
        self.caller.identity.as_ref().map_or_else(
            || "local (authentication off)".to_owned(),
            |i| i.user.to_string(),
        )
    }
}

fn random_hex() -> String {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 32];
    // The system's generator does not fail on the platforms Tollgate runs on; if it ever does,
    // a session id of zeros would be guessable, so refuse to make one.
    if ring::rand::SystemRandom::new().fill(&mut bytes).is_err() {
        return String::new();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether two tokens are equal, in time that does not depend on where they differ.
fn same(a: &str, b: &str) -> bool {
    !a.is_empty()
        && a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The cookie `name`; none when it comes more than once (one of them planted).
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let mut found = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(k, _)| *k == name)
        .map(|(_, v)| v);
    let first = found.next();
    if found.next().is_some() {
        return None;
    }
    first
}

fn set_cookie(name: &str, value: &str, max_age: Duration) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age={}",
        max_age.as_secs()
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("invalid=; Path=/"))
}

pub(super) fn routes() -> axum::Router<AdminState> {
    axum::Router::new()
        .route("/console", get(|| async { Redirect::to("/console/") }))
        .route("/console/", get(home))
        .route(
            "/console/assets/console.css",
            get(|| async { asset("text/css", CSS) }),
        )
        .route(
            "/console/assets/console.js",
            get(|| async { asset("text/javascript", JS) }),
        )
        .route("/console/login", get(login_page).post(login))
        .route("/console/logout", post(logout))
        .route("/console/oidc/start", get(provider_start))
        .route("/console/oidc/callback", get(provider_callback))
        .route("/console/approvals", get(approvals))
        .route("/console/approvals/rows", get(approval_rows))
        .route("/console/approvals/{id}", get(approval))
        .route("/console/approvals/{id}/decide", post(decide))
        .route("/console/grants/{id}/revoke", post(revoke))
        .route("/console/exchanges", get(exchanges))
        .route("/console/exchanges/{id}", get(exchange))
        .route("/console/exchanges/{id}/{part}", get(exchange_body))
        .route("/console/sessions/{id}", get(session))
        .route("/console/sessions/{id}/har", get(session_har))
        .route("/console/audit", get(audit))
        .route("/console/audit/verify", post(verify))
        .route("/console/policy", get(policy))
        .route("/console/policy/explain", post(explain))
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// Every console response gets these: no framing, no sniffing, no caching of what may be
/// confidential, and the content security policy.
fn harden(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        // `same-origin`, not `no-referrer`: under the latter browsers send `Origin: null` even
        // with the console's own forms, and the origin check needs the real one.
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

/// Whether a request's `Origin` is the host it was sent to (`Origin: null` and a missing one are
/// not: browsers send one with every POST).
fn same_origin(req: &Request) -> bool {
    let (Some(origin), Some(host)) = (
        req.headers()
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok()),
        req.headers()
            .get(header::HOST)
            .and_then(|v| v.to_str().ok()),
    ) else {
        return false;
    };
    let origin = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
        .unwrap_or("");
    !host.is_empty() && origin.eq_ignore_ascii_case(host)
}

/// The console's gate, called by the admin listener's for every `/console` path: the session
/// (and its credential checked again), or the sign-in page.
pub(super) async fn gate(state: AdminState, mut req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let auth_on = state.policy.current().auth().is_enabled();
    if !auth_on && !host_is_loopback(&req) {
        return harden(page::error(
            StatusCode::FORBIDDEN,
            "While authentication is off the console answers only on localhost, 127.0.0.1 or [::1].",
        ));
    }
    // Forms come from the console's own pages: a browser names the page's origin on every POST,
    // and one from another origin (another site, another port of this host) is refused, before
    // and besides the CSRF token.
    if req.method() == axum::http::Method::POST && !same_origin(&req) {
        return harden(page::error(
            StatusCode::FORBIDDEN,
            "This form was not sent from the console's own pages.",
        ));
    }
    if path.starts_with("/console/assets/")
        || path.starts_with("/console/oidc/")
        || path == "/console/login"
        || path == "/console"
        || path == "/"
    {
        return harden(next.run(req).await);
    }
    match viewer(&state, req.headers()).await {
        Ok(viewer) => {
            req.extensions_mut().insert(viewer);
            harden(next.run(req).await)
        }
        Err(why) => {
            let res = if req.method() == axum::http::Method::GET && !path.ends_with("/rows") {
                Redirect::to(&format!("/console/login?why={why}")).into_response()
            } else {
                page::error(
                    StatusCode::UNAUTHORIZED,
                    "Your session has ended: sign in again.",
                )
            };
            harden(res)
        }
    }
}

/// The viewer a request's session cookie names, with roles as the policy in force gives them.
async fn viewer(state: &AdminState, headers: &HeaderMap) -> Result<Viewer, &'static str> {
    let id = cookie(headers, COOKIE).ok_or("signed-out")?;
    let session = {
        let mut sessions = state
            .console
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let Some(s) = sessions.get_mut(id) else {
            return Err("expired");
        };
        if now.duration_since(s.created) > SESSION_LIFETIME
            || now.duration_since(s.used) > SESSION_IDLE
        {
            sessions.remove(id);
            return Err("expired");
        }
        s.used = now;
        s.clone()
    };
    let policy = state.policy.current();
    let auth = policy.auth();
    let caller = match (&session.credential, auth.is_enabled()) {
        (None, false) => Caller {
            identity: None,
            roles: vec![Role::Admin],
        },
        // Signed in while authentication was off, and it is on now (or the other way round).
        (None, true) | (Some(_), false) => return Err("expired"),
        (Some(credential), true) => {
            let header = format!("Bearer {credential}");
            let identity = auth
                .authenticate_admin(Some(&header), &*state.fetcher)
                .await
                .map_err(|_| "rejected")?;
            let roles = auth.admin_roles().of(&identity);
            if roles.is_empty() {
                return Err("no-role");
            }
            Caller {
                identity: Some(identity),
                roles,
            }
        }
    };
    Ok(Viewer {
        caller,
        csrf: session.csrf,
    })
}

fn viewer_of(req: &Request) -> Option<Viewer> {
    req.extensions().get::<Viewer>().cloned()
}

/// The viewer of a request the gate let through (it always has one) if they hold `role`
/// (admins hold every role), or the page that says why not.
// The error is the handler's answer, returned once: boxing it would buy nothing.
#[allow(clippy::result_large_err)]
fn allowed(req: &Request, role: Option<Role>) -> Result<Viewer, Response> {
    let viewer =
        viewer_of(req).ok_or_else(|| page::error(StatusCode::UNAUTHORIZED, "Sign in first."))?;
    match role {
        Some(role) if !viewer.may(&[role]) => {
            let name = match role {
                Role::Admin => "admin",
                Role::Auditor => "auditor",
                Role::Approver => "approver",
            };
            Err(page::error(
                StatusCode::FORBIDDEN,
                &format!("This page needs the {name} role (admin.roles in identity.yaml)."),
            ))
        }
        _ => Ok(viewer),
    }
}

/// `let viewer = allow!(req, Role::Auditor);` returns the refusal page from the handler.
macro_rules! allow {
    ($req:expr, $role:expr) => {
        match allowed(&$req, $role) {
            Ok(v) => v,
            Err(res) => return res,
        }
    };
}

fn bad_csrf() -> Response {
    page::error(
        StatusCode::FORBIDDEN,
        "This form is out of date or did not come from the console: reload the page and try again.",
    )
}

async fn home(req: Request) -> Response {
    let viewer = allow!(req, None);
    if viewer.may(&[Role::Approver]) {
        Redirect::to("/console/approvals").into_response()
    } else {
        Redirect::to("/console/exchanges").into_response()
    }
}

#[derive(serde::Deserialize, Default)]
struct LoginQuery {
    why: Option<String>,
}

async fn login_page(State(state): State<AdminState>, Query(q): Query<LoginQuery>) -> Response {
    let nonce = random_hex();
    let auth_on = state.policy.current().auth().is_enabled();
    let provider = provider_name(&state);
    let mut res =
        page::login(auth_on, provider.as_deref(), &nonce, q.why.as_deref(), None).into_response();
    res.headers_mut().insert(
        header::SET_COOKIE,
        set_cookie(LOGIN_COOKIE, &nonce, Duration::from_secs(3600)),
    );
    res
}

#[derive(serde::Deserialize)]
struct LoginForm {
    csrf: String,
    #[serde(default)]
    credential: String,
}

async fn login(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    if !cookie(&headers, LOGIN_COOKIE).is_some_and(|nonce| same(nonce, &form.csrf)) {
        return bad_csrf();
    }
    let policy = state.policy.current();
    let auth = policy.auth();
    let credential = form.credential.trim().to_owned();
    let retry = |message: &str| {
        let nonce = random_hex();
        let provider = provider_name(&state);
        let mut res = page::login(
            auth.is_enabled(),
            provider.as_deref(),
            &nonce,
            None,
            Some(message),
        )
        .into_response();
        *res.status_mut() = StatusCode::UNAUTHORIZED;
        res.headers_mut().insert(
            header::SET_COOKIE,
            set_cookie(LOGIN_COOKIE, &nonce, Duration::from_secs(3600)),
        );
        res
    };
    let (credential, user) = if auth.is_enabled() {
        let header = format!("Bearer {credential}");
        match auth
            .authenticate_admin(Some(&header), &*state.fetcher)
            .await
        {
            Ok(identity) if !auth.admin_roles().of(&identity).is_empty() => {
                (Some(credential), identity.user.to_string())
            }
            Ok(identity) => {
                return retry(&format!(
                    "{} holds no admin role: give one of its groups a role under admin.roles in identity.yaml.",
                    identity.user
                ));
            }
            Err(e) => {
                warn!("console sign-in refused: {e}");
                return retry(
                    "Those credentials were not accepted: paste an admin token from identity.yaml, or a JWT from your identity provider.",
                );
            }
        }
    } else {
        (None, "(open)".to_owned())
    };
    start_session(&state, credential, &user)
}

/// A new session for `credential` (`None` while authentication is off), and the browser sent
/// to the console with its cookie.
fn start_session(state: &AdminState, credential: Option<String>, user: &str) -> Response {
    start_session_then(state, credential, user, false)
}

/// As [`start_session`]; with `by_page`, the browser goes on to the console from a page rather
/// than a redirect: back from the identity provider the navigation is cross-site, and a
/// `SameSite=Strict` cookie set on a redirect there would not come with the next request.
fn start_session_then(
    state: &AdminState,
    credential: Option<String>,
    user: &str,
    by_page: bool,
) -> Response {
    let id = random_hex();
    let csrf = random_hex();
    if id.is_empty() || csrf.is_empty() {
        return page::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "No random numbers to make a session with.",
        );
    }
    {
        let mut sessions = state
            .console
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        sessions.retain(|_, s| {
            now.duration_since(s.created) < SESSION_LIFETIME
                && now.duration_since(s.used) < SESSION_IDLE
        });
        if sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, s)| s.used)
                .map(|(k, _)| k.clone())
        {
            sessions.remove(&oldest);
        }
        sessions.insert(
            id.clone(),
            Session {
                credential,
                csrf,
                created: now,
                used: now,
            },
        );
    }
    info!(%user, "console sign-in");
    let mut res = if by_page {
        page::signed_in(user).into_response()
    } else {
        Redirect::to("/console/").into_response()
    };
    let h = res.headers_mut();
    h.append(
        header::SET_COOKIE,
        set_cookie(COOKIE, &id, SESSION_LIFETIME),
    );
    h.append(
        header::SET_COOKIE,
        set_cookie(LOGIN_COOKIE, "", Duration::ZERO),
    );
    res
}

/// The identity provider the sign-in page offers, when `oidc.console` is configured.
fn provider_name(state: &AdminState) -> Option<String> {
    let policy = state.policy.current();
    let oidc = policy.auth().oidc()?;
    oidc.console().map(|_| oidc.issuer().to_owned())
}

fn base64url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Sends the browser to the identity provider (authorization code with PKCE, S256), with a
/// `state` bound to this browser by a cookie and a nonce the ID token must carry back.
async fn provider_start(State(state): State<AdminState>) -> Response {
    let policy = state.policy.current();
    let Some(login) = policy.auth().oidc().and_then(|o| o.console()) else {
        return page::error(
            StatusCode::NOT_FOUND,
            "Signing in through the identity provider is not configured (oidc.console in identity.yaml).",
        );
    };
    let (key, verifier, nonce) = (random_hex(), random_hex(), random_hex());
    if key.is_empty() || verifier.is_empty() || nonce.is_empty() {
        return page::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "No random numbers to sign in with.",
        );
    }
    let challenge =
        base64url(ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes()).as_ref());
    {
        let mut logins = state
            .console
            .logins
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        logins.retain(|_, l| l.started.elapsed() < PROVIDER_LOGIN_WAIT);
        // Full (a flood of starts, which need no credentials): the oldest make room.
        while logins.len() >= MAX_PROVIDER_LOGINS {
            let Some(oldest) = logins
                .iter()
                .min_by_key(|(_, l)| l.started)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            logins.remove(&oldest);
        }
        logins.insert(
            key.clone(),
            ProviderLogin {
                verifier,
                nonce: nonce.clone(),
                started: Instant::now(),
            },
        );
    }
    let scope = login.scopes.join(" ");
    let query = serde_urlencoded::to_string([
        ("response_type", "code"),
        ("client_id", login.client_id.as_str()),
        ("redirect_uri", login.redirect_uri.as_str()),
        ("scope", scope.as_str()),
        ("state", key.as_str()),
        ("nonce", nonce.as_str()),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ])
    .unwrap_or_default();
    let sep = if login.authorization_endpoint.contains('?') {
        '&'
    } else {
        '?'
    };
    let mut res =
        Redirect::to(&format!("{}{sep}{query}", login.authorization_endpoint)).into_response();
    // Lax, not Strict: the provider's redirect back is a cross-site navigation, and the cookie
    // must come with it so that the callback can tell this browser started the sign-in.
    res.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&format!(
            "{OIDC_COOKIE}={key}; Path=/; HttpOnly; Secure; SameSite=Lax; Max-Age={}",
            PROVIDER_LOGIN_WAIT.as_secs()
        ))
        .unwrap_or_else(|_| HeaderValue::from_static("invalid=; Path=/")),
    );
    res
}

#[derive(serde::Deserialize)]
struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// The browser back from the identity provider: the code exchanged for an ID token (with the
/// PKCE verifier), the token checked like any JWT and its nonce against the one sent.
async fn provider_callback(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Query(back): Query<Callback>,
) -> Response {
    let refuse = |message: &str| page::error(StatusCode::UNAUTHORIZED, message);
    // Nothing the link carries is shown before it is known to answer this browser's sign-in:
    // anyone can send a victim to this address with words of their choosing.
    let Some(key) = back.state else {
        return refuse(
            "The identity provider sent no state back: start again from the sign-in page.",
        );
    };
    if !cookie(&headers, OIDC_COOKIE).is_some_and(|c| same(c, &key)) {
        return refuse(
            "This sign-in did not start in this browser: start again from the sign-in page.",
        );
    }
    if let Some(error) = back.error {
        // An OAuth error code is a short lower-case word; the description goes to the log only.
        let code = Some(error.as_str())
            .filter(|e| e.len() <= 64 && e.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
            .unwrap_or("error");
        warn!(error = %code, description = ?back.error_description.as_deref().map(|d| d.chars().take(200).collect::<String>()), "console sign-in refused by the identity provider");
        state
            .console
            .logins
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key);
        return refuse(&format!(
            "The identity provider did not sign you in ({code})."
        ));
    }
    let Some(code) = back.code else {
        return refuse("The identity provider sent no code back.");
    };
    let Some(login) = state
        .console
        .logins
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&key)
        .filter(|l| l.started.elapsed() < PROVIDER_LOGIN_WAIT)
    else {
        return refuse("This sign-in has expired or was already used: start again.");
    };
    let policy = state.policy.current();
    let auth = policy.auth();
    let Some(console) = auth.oidc().and_then(|o| o.console()) else {
        return refuse("Signing in through the identity provider is no longer configured.");
    };
    let Ok(token_endpoint) = console.token_endpoint.parse::<axum::http::Uri>() else {
        return refuse("oidc.console.token_endpoint is not a URL.");
    };
    let form = serde_urlencoded::to_string([
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", console.redirect_uri.as_str()),
        ("client_id", console.client_id.as_str()),
        ("code_verifier", login.verifier.as_str()),
    ])
    .unwrap_or_default();
    let answer = match state.fetcher.post_form(&token_endpoint, form).await {
        Ok(body) => body,
        Err(e) => {
            warn!("console sign-in: the token endpoint failed: {e}");
            return page::error(
                StatusCode::BAD_GATEWAY,
                "The identity provider's token endpoint did not answer: try again.",
            );
        }
    };
    let id_token = serde_json::from_slice::<serde_json::Value>(&answer)
        .ok()
        .and_then(|v| {
            v.get("id_token")
                .and_then(|t| t.as_str())
                .map(str::to_owned)
        });
    let Some(id_token) = id_token else {
        return refuse("The identity provider's answer held no ID token.");
    };
    let identity = match auth
        .authenticate_admin(Some(&format!("Bearer {id_token}")), &*state.fetcher)
        .await
    {
        Ok(identity) => identity,
        Err(e) => {
            warn!("console sign-in: the ID token was refused: {e}");
            return refuse("The identity provider's ID token was not accepted.");
        }
    };
    if nonce_of(&id_token).is_none_or(|n| !same(&n, &login.nonce)) {
        return refuse("The ID token does not answer this sign-in (its nonce differs).");
    }
    if auth.admin_roles().of(&identity).is_empty() {
        return refuse(&format!(
            "{} holds no admin role: give one of its groups a role under admin.roles in identity.yaml.",
            identity.user
        ));
    }
    let mut res = start_session_then(&state, Some(id_token), &identity.user, true);
    res.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "__Host-tollgate_console_oidc=; Path=/; HttpOnly; Secure; SameSite=Lax; Max-Age=0",
        ),
    );
    res
}

/// The `nonce` claim of a JWT whose signature was checked already.
fn nonce_of(jwt: &str) -> Option<String> {
    use base64::Engine;
    let payload = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("nonce")?.as_str().map(str::to_owned)
}

#[derive(serde::Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn logout(State(state): State<AdminState>, headers: HeaderMap, req: Request) -> Response {
    if let Err(res) = posted::<CsrfForm>(&state, req, None).await {
        return res;
    }
    if let Some(id) = cookie(&headers, COOKIE) {
        state
            .console
            .sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }
    let mut res = Redirect::to("/console/login?why=signed-out").into_response();
    res.headers_mut()
        .insert(header::SET_COOKIE, set_cookie(COOKIE, "", Duration::ZERO));
    res
}

use axum::extract::FromRequest;

/// A form posted by a viewer, its CSRF token checked.
async fn posted<T: serde::de::DeserializeOwned + HasCsrf>(
    state: &AdminState,
    req: Request,
    role: Option<Role>,
) -> Result<(Viewer, T), Response> {
    let viewer = allowed(&req, role)?;
    let Form(form) = Form::<T>::from_request(req, state).await.map_err(|e| {
        page::error(
            StatusCode::BAD_REQUEST,
            &format!("That form could not be read: {}", e.body_text()),
        )
    })?;
    if !same(form.csrf(), &viewer.csrf) {
        return Err(bad_csrf());
    }
    Ok((viewer, form))
}

trait HasCsrf {
    fn csrf(&self) -> &str;
}

impl HasCsrf for CsrfForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

async fn approvals(State(state): State<AdminState>, req: Request) -> Response {
    let viewer = allow!(req, Some(Role::Approver));
    page::approvals(&viewer, &state.approvals.list(), &state.approvals.grants()).into_response()
}

async fn approval_rows(State(state): State<AdminState>, req: Request) -> Response {
    allow!(req, Some(Role::Approver));
    page::approval_rows(&state.approvals.list()).into_response()
}

async fn approval(
    State(state): State<AdminState>,
    Path(id): Path<String>,
    req: Request,
) -> Response {
    let viewer = allow!(req, Some(Role::Approver));
    match state.approvals.get(&id) {
        Some(p) => {
            let policy = state.policy.current();
            page::approval(&viewer, &p, policy.approvals().break_glass.is_empty()).into_response()
        }
        None => page::decided(&viewer, &id, None).into_response(),
    }
}

#[derive(serde::Deserialize)]
struct DecideForm {
    csrf: String,
    decision: String,
    /// `once`, or a window such as `30m`.
    #[serde(default)]
    window: String,
    #[serde(default)]
    reason: String,
}

impl HasCsrf for DecideForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

async fn decide(State(state): State<AdminState>, Path(id): Path<String>, req: Request) -> Response {
    let (viewer, form) = match posted::<DecideForm>(&state, req, Some(Role::Approver)).await {
        Ok(v) => v,
        Err(res) => return res,
    };
    let approve = match form.decision.as_str() {
        "approve" => true,
        "deny" => false,
        _ => return page::error(StatusCode::BAD_REQUEST, "Choose approve or deny."),
    };
    let grant = match form.window.trim() {
        "" | "once" => None,
        w => match humantime::parse_duration(w) {
            Ok(d) => Some(d),
            Err(_) => {
                return page::error(
                    StatusCode::BAD_REQUEST,
                    &format!("{w:?} is not a duration such as 30m or 2h."),
                );
            }
        },
    };
    let reason = Some(form.reason.trim().to_owned()).filter(|r| !r.is_empty());
    let ask = crate::approval::Ask {
        approve,
        reason,
        grant: if approve { grant } else { None },
    };
    let break_glass = state.policy.current().approvals().break_glass.clone();
    let approver = super::approver(&viewer.caller);
    match state
        .approvals
        .decide(&id, &approver, ask, &break_glass)
        .await
    {
        Ok(verdict) => {
            info!(approval = %id, by = %verdict.by, approved = verdict.approved, break_glass = verdict.break_glass, "approval decided in the console");
            page::decided(&viewer, &id, Some(&verdict)).into_response()
        }
        Err(e) => {
            let status = match e {
                crate::approval::DecideError::NotFound(_) => StatusCode::NOT_FOUND,
                crate::approval::DecideError::SelfApproval { .. }
                | crate::approval::DecideError::NotAnApprover { .. } => StatusCode::FORBIDDEN,
                crate::approval::DecideError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::UNPROCESSABLE_ENTITY,
            };
            page::error(status, &e.to_string())
        }
    }
}

async fn revoke(State(state): State<AdminState>, Path(id): Path<String>, req: Request) -> Response {
    let (viewer, _) = match posted::<CsrfForm>(&state, req, Some(Role::Approver)).await {
        Ok(v) => v,
        Err(res) => return res,
    };
    match state.approvals.revoke(&id).await {
        Ok(true) => info!(grant = %id, by = %viewer.name(), "grant revoked in the console"),
        Ok(false) => {}
        Err(e) => {
            warn!("revoking a grant in the shared queue failed: {e}");
            return page::error(
                StatusCode::SERVICE_UNAVAILABLE,
                "The shared approval queue cannot be reached right now; try again.",
            );
        }
    }
    Redirect::to("/console/approvals").into_response()
}

/// Reads the audit store off the async workers.
async fn read_store<T: Send + 'static>(
    state: &AdminState,
    f: impl FnOnce(&crate::record::Store) -> Result<T, crate::record::StoreError> + Send + 'static,
) -> Result<T, Response> {
    let Some(db) = state.db.clone() else {
        return Err(page::error(
            StatusCode::NOT_FOUND,
            "Recording is off (recording.yaml: enabled: false): there are no records.",
        ));
    };
    let answer = tokio::task::spawn_blocking(move || {
        let store = crate::record::Store::connect(&db)?;
        f(&store)
    })
    .await;
    match answer {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => {
            warn!("console: reading the audit store failed: {e}");
            Err(page::error(
                StatusCode::SERVICE_UNAVAILABLE,
                "The audit store cannot be read right now.",
            ))
        }
        Err(_) => Err(page::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Reading the store did not finish.",
        )),
    }
}

/// The exchanges page's filters, as the form sends them (empty fields mean no filter).
#[derive(Debug, Default, Clone, serde::Deserialize, serde::Serialize)]
#[serde(default)]
pub(super) struct Filters {
    pub since: String,
    pub until: String,
    pub user: String,
    pub group: String,
    pub provider: String,
    pub region: String,
    pub model: String,
    pub status: String,
    pub outcome: String,
    pub findings: String,
    pub approval: String,
    pub kind: String,
    pub before_id: Option<i64>,
}

impl Filters {
    fn to_filter(&self) -> Result<crate::record::ExchangeFilter, String> {
        let text = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
        let time = |s: &str, field: &str| -> Result<Option<String>, String> {
            match text(s) {
                None => Ok(None),
                // The form's datetime-local fields: minutes, no zone; taken as UTC.
                Some(t) if t.len() == 16 && t.as_bytes().get(10) == Some(&b'T') => {
                    Ok(Some(format!("{t}:00Z")))
                }
                Some(t) if humantime::parse_rfc3339(&t).is_ok() => Ok(Some(t)),
                Some(t) => Err(format!("{field}: {t:?} is not a time (2026-12-01T09:30)")),
            }
        };
        Ok(crate::record::ExchangeFilter {
            since: time(&self.since, "from")?,
            until: time(&self.until, "until")?,
            user: text(&self.user),
            group: text(&self.group),
            provider: text(&self.provider),
            region: text(&self.region),
            model: text(&self.model),
            status: match text(&self.status) {
                None => None,
                Some(s) => Some(
                    s.parse()
                        .map_err(|_| format!("status: {s:?} is not an HTTP status"))?,
                ),
            },
            outcome: text(&self.outcome),
            approval: text(&self.approval),
            kind: text(&self.kind),
            has_findings: match self.findings.as_str() {
                "yes" => Some(true),
                "no" => Some(false),
                _ => None,
            },
            before_id: self.before_id,
            limit: page::PAGE as u32,
            session: None,
        })
    }
}

async fn exchanges(
    State(state): State<AdminState>,
    Query(filters): Query<Filters>,
    req: Request,
) -> Response {
    let viewer = allow!(req, Some(Role::Auditor));
    let filter = match filters.to_filter() {
        Ok(f) => f,
        Err(e) => return page::error(StatusCode::BAD_REQUEST, &e),
    };
    let first_page = filters.before_id.is_none();
    let found = read_store(&state, move |store| {
        let rows = store.exchanges(&filter)?;
        let live = if first_page {
            store.in_flight()?
        } else {
            Vec::new()
        };
        Ok((rows, live))
    })
    .await;
    match found {
        Ok((rows, live)) => page::exchanges(&viewer, &filters, &rows, &live).into_response(),
        Err(res) => res,
    }
}

async fn exchange(State(state): State<AdminState>, Path(id): Path<i64>, req: Request) -> Response {
    let viewer = allow!(req, Some(Role::Auditor));
    match read_store(&state, move |store| store.get(id)).await {
        Ok(Some(r)) => page::exchange(&viewer, id, &r).into_response(),
        Ok(None) => page::error(StatusCode::NOT_FOUND, &format!("There is no record {id}.")),
        Err(res) => res,
    }
}

async fn exchange_body(
    State(state): State<AdminState>,
    Path((id, part)): Path<(i64, String)>,
    req: Request,
) -> Response {
    allow!(req, Some(Role::Auditor));
    let request = match part.as_str() {
        "request" => true,
        "response" => false,
        _ => return page::error(StatusCode::NOT_FOUND, "No such part: request or response."),
    };
    match read_store(&state, move |store| store.get(id)).await {
        Ok(Some(r)) => {
            let body = if request {
                r.request_body.into()
            } else {
                r.response_body
            };
            let name = format!("exchange-{id}-{part}.txt");
            (
                [
                    (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
                    (
                        header::CONTENT_DISPOSITION,
                        format!("attachment; filename=\"{name}\""),
                    ),
                ],
                body,
            )
                .into_response()
        }
        Ok(None) => page::error(StatusCode::NOT_FOUND, &format!("There is no record {id}.")),
        Err(res) => res,
    }
}

#[derive(serde::Deserialize, Default)]
struct SessionQuery {
    before_id: Option<i64>,
}

/// Turns of a session shown on one page (with their bodies).
const SESSION_PAGE: u32 = 20;
/// A session exported as HAR from the console at most: exchanges, and bytes of bodies.
const HAR_EXCHANGES: u32 = 1000;
const HAR_BYTES: usize = 64 << 20;

async fn session(
    State(state): State<AdminState>,
    Path(id): Path<String>,
    Query(q): Query<SessionQuery>,
    req: Request,
) -> Response {
    let viewer = allow!(req, Some(Role::Auditor));
    let key = id.clone();
    let found = read_store(&state, move |store| {
        store.session_page(&key, q.before_id, SESSION_PAGE)
    })
    .await;
    match found {
        Ok((rows, _)) if rows.is_empty() => {
            page::error(StatusCode::NOT_FOUND, "There is no such session.")
        }
        Ok((rows, earlier)) => {
            page::session(&viewer, &id, &rows, earlier, q.before_id.is_some()).into_response()
        }
        Err(res) => res,
    }
}

async fn session_har(
    State(state): State<AdminState>,
    Path(id): Path<String>,
    req: Request,
) -> Response {
    allow!(req, Some(Role::Auditor));
    let key = id.clone();
    let found = read_store(&state, move |store| {
        let (rows, earlier) = store.session_page(&key, None, HAR_EXCHANGES)?;
        let bytes: usize = rows
            .iter()
            .map(|(_, r)| r.request_body.len() + r.response_body.len())
            .sum();
        Ok((rows, earlier, bytes))
    })
    .await;
    match found {
        Ok((rows, _, _)) if rows.is_empty() => {
            page::error(StatusCode::NOT_FOUND, "There is no such session.")
        }
        Ok((_, earlier, bytes)) if earlier > 0 || bytes > HAR_BYTES => page::error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!(
                "This session is too large to export from the console (more than {HAR_EXCHANGES} exchanges or {} MiB of bodies): use `tollgate export --har FILE --session {id}` on the proxy's host.",
                HAR_BYTES >> 20
            ),
        ),
        Ok((rows, _, _)) => {
            let har = crate::record::har(&rows);
            let name: String = id
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
                .take(64)
                .collect();
            (
                [
                    (header::CONTENT_TYPE, "application/json".to_owned()),
                    (
                        header::CONTENT_DISPOSITION,
                        format!("attachment; filename=\"session-{name}.har\""),
                    ),
                ],
                serde_json::to_vec_pretty(&har).unwrap_or_default(),
            )
                .into_response()
        }
        Err(res) => res,
    }
}

async fn audit(State(state): State<AdminState>, req: Request) -> Response {
    let viewer = allow!(req, Some(Role::Auditor));
    let last = state
        .console
        .last_verify
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let policy = state.policy.current();
    let recording = policy.recording();
    let purge = read_store(&state, |store| {
        let filter = crate::record::ExchangeFilter {
            kind: Some("purge".into()),
            limit: 1,
            ..Default::default()
        };
        Ok((store.exchanges(&filter)?.into_iter().next(), store.count()?))
    })
    .await;
    let (purge, count) = match purge {
        Ok(v) => v,
        Err(res) => return res,
    };
    page::audit(&viewer, last.as_ref(), recording, purge.as_ref(), count).into_response()
}

async fn verify(State(state): State<AdminState>, req: Request) -> Response {
    let (viewer, _) = match posted::<CsrfForm>(&state, req, Some(Role::Auditor)).await {
        Ok(v) => v,
        Err(res) => return res,
    };
    let started = Instant::now();
    let result = read_store(&state, |store| Ok((store.verify()?, store.count()?))).await;
    let verification = match result {
        Ok((broken, rows)) => page::Verification {
            at: crate::record::now(),
            by: viewer.name(),
            rows,
            broken: broken.map(|b| format!("row {}: {}", b.row, b.reason)),
            took_ms: started.elapsed().as_millis() as u64,
        },
        Err(res) => return res,
    };
    info!(by = %viewer.name(), intact = verification.broken.is_none(), "audit chain verified from the console");
    *state
        .console
        .last_verify
        .lock()
        .unwrap_or_else(|e| e.into_inner()) = Some(verification);
    Redirect::to("/console/audit").into_response()
}

async fn policy(State(state): State<AdminState>, req: Request) -> Response {
    let viewer = allow!(req, Some(Role::Auditor));
    page::policy(&viewer, &state.policy, None, &page::ExplainForm::default()).into_response()
}

impl HasCsrf for page::ExplainForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

async fn explain(State(state): State<AdminState>, req: Request) -> Response {
    let (viewer, form) = match posted::<page::ExplainForm>(&state, req, Some(Role::Auditor)).await {
        Ok(v) => v,
        Err(res) => return res,
    };
    let question = crate::explain::Question {
        host: form.host.trim().to_owned(),
        path: Some(form.path.trim().to_owned())
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "/".into()),
        user: Some(form.user.trim().to_owned()).filter(|u| !u.is_empty()),
        groups: form
            .groups
            .split(',')
            .map(|g| g.trim().to_owned())
            .filter(|g| !g.is_empty())
            .collect(),
        body: Some(form.body.clone().into_bytes()).filter(|b| !b.is_empty()),
    };
    let policy = state.policy.current();
    // Masking a large body is CPU work: off the async workers.
    let answer =
        tokio::task::spawn_blocking(move || crate::explain::explain(&policy, &question)).await;
    // The body is not shown again: it may hold the very secrets the explanation is about.
    let shown = page::ExplainForm {
        body: String::new(),
        ..form
    };
    match answer {
        Ok(answer) => page::policy(&viewer, &state.policy, Some(&answer), &shown).into_response(),
        Err(_) => page::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "The explanation did not finish.",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::{Readiness, router};
    use axum::body::Body;
    use tower::ServiceExt;

    struct NoFetch;
    impl crate::identity::oidc::Fetch for NoFetch {
        fn fetch<'a>(
            &'a self,
            _url: &'a axum::http::Uri,
        ) -> std::pin::Pin<Box<dyn Future<Output = Result<Vec<u8>, String>> + Send + 'a>> {
            Box::pin(async { Err("no identity provider in these tests".to_owned()) })
        }
    }

    fn state(dir: Option<&std::path::Path>) -> AdminState {
        let policy = crate::policy::Policy::load(dir).unwrap();
        let metrics = std::sync::Arc::new(crate::metrics::Metrics::new());
        AdminState {
            policy: std::sync::Arc::new(crate::reload::PolicyState::new(
                policy,
                dir.map(std::path::Path::to_owned),
                metrics.clone(),
                Box::new(|_| Ok(())),
            )),
            metrics,
            readiness: std::sync::Arc::new(|| Readiness {
                draining: false,
                store_writable: true,
                recording: false,
            }),
            fetcher: std::sync::Arc::new(NoFetch),
            approvals: Default::default(),
            db: None,
            console: Default::default(),
            proxy_addr: "127.0.0.1:8080".parse().unwrap(),
        }
    }

    /// A policy directory whose identity.yaml has an approver and an auditor.
    fn with_roles() -> (tempfile::TempDir, String, String) {
        let dir = tempfile::tempdir().unwrap();
        let (approver, approver_hash) = crate::identity::new_token();
        let (auditor, auditor_hash) = crate::identity::new_token();
        std::fs::write(
            dir.path().join("identity.yaml"),
            format!(
                "tokens:\n  - {{ name: appr, sha256: {approver_hash}, user: ann, groups: [security] }}\n  - {{ name: aud, sha256: {auditor_hash}, user: aud, groups: [audit] }}\nadmin:\n  roles:\n    approver: [security]\n    auditor: [audit]\n"
            ),
        )
        .unwrap();
        (dir, approver, auditor)
    }

    async fn send(state: &AdminState, req: axum::http::Request<Body>) -> Response {
        router(state.clone()).oneshot(req).await.unwrap()
    }

    fn get(path: &str, cookie: Option<&str>) -> axum::http::Request<Body> {
        let mut b = axum::http::Request::get(path).header(header::HOST, "127.0.0.1:9090");
        if let Some(c) = cookie {
            b = b.header(header::COOKIE, c);
        }
        b.body(Body::empty()).unwrap()
    }

    fn post(path: &str, cookie: &str, form: &str) -> axum::http::Request<Body> {
        axum::http::Request::post(path)
            .header(header::HOST, "127.0.0.1:9090")
            .header(header::ORIGIN, "http://127.0.0.1:9090")
            .header(header::COOKIE, cookie)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(form.to_owned()))
            .unwrap()
    }

    /// `name=value` of the response's cookie `name`, and its attributes.
    fn set_cookie_of(res: &Response, name: &str) -> Option<(String, String)> {
        res.headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with(&format!("{name}=")))
            .map(|v| {
                let (pair, attrs) = v.split_once(';').unwrap_or((v, ""));
                (pair.to_owned(), attrs.to_owned())
            })
    }

    async fn text(res: Response) -> String {
        let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
            .await
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    /// Signs in with `credential` (empty while authentication is off): the session cookie and
    /// the CSRF token its pages carry.
    async fn sign_in(state: &AdminState, credential: &str) -> (String, String) {
        let page = send(state, get("/console/login", None)).await;
        assert_eq!(page.status(), StatusCode::OK);
        let (login_cookie, attrs) = set_cookie_of(&page, LOGIN_COOKIE).unwrap();
        assert!(
            attrs.contains("HttpOnly")
                && attrs.contains("Secure")
                && attrs.contains("SameSite=Strict"),
            "{attrs}"
        );
        let nonce = login_cookie.split_once('=').unwrap().1.to_owned();
        let form =
            serde_urlencoded::to_string([("csrf", nonce.as_str()), ("credential", credential)])
                .unwrap();
        let res = send(state, post("/console/login", &login_cookie, &form)).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "sign-in failed");
        let (session, attrs) = set_cookie_of(&res, COOKIE).unwrap();
        assert!(
            attrs.contains("HttpOnly")
                && attrs.contains("Secure")
                && attrs.contains("SameSite=Strict"),
            "{attrs}"
        );
        let mut csrf = None;
        for page in ["/console/approvals", "/console/policy"] {
            let page = text(send(state, get(page, Some(&session))).await).await;
            csrf = csrf.or_else(|| {
                let rest = page.split("name=\"csrf\" value=\"").nth(1)?;
                rest.split('"').next().map(str::to_owned)
            });
        }
        let csrf = csrf.expect("a page with a form");
        (session, csrf)
    }

    #[tokio::test]
    async fn without_a_session_every_page_sends_the_browser_to_sign_in() {
        let state = state(None);
        for path in [
            "/console/approvals",
            "/console/exchanges",
            "/console/audit",
            "/console/policy",
        ] {
            let res = send(&state, get(path, None)).await;
            assert_eq!(res.status(), StatusCode::SEE_OTHER, "{path}");
            assert_eq!(
                res.headers()[header::LOCATION],
                "/console/login?why=signed-out"
            );
            assert!(
                res.headers()[header::CONTENT_SECURITY_POLICY]
                    .to_str()
                    .unwrap()
                    .contains("script-src 'self'")
            );
        }
        let res = send(
            &state,
            get("/console/approvals", Some("__Host-tollgate_console=forged")),
        )
        .await;
        assert_eq!(
            res.headers()[header::LOCATION],
            "/console/login?why=expired"
        );
        // The refresh of the pending list is fetched by script: it gets a 401, not a redirect.
        let res = send(&state, get("/console/approvals/rows", None)).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }

    #[tokio::test]
    async fn while_authentication_is_off_the_console_is_open_on_loopback_only_and_still_needs_a_session()
     {
        let state = state(None);
        let mut req = get("/console/login", None);
        req.headers_mut().insert(
            header::HOST,
            HeaderValue::from_static("tollgate.example.com"),
        );
        assert_eq!(send(&state, req).await.status(), StatusCode::FORBIDDEN);
        let (session, csrf) = sign_in(&state, "").await;
        let page = send(&state, get("/console/approvals", Some(&session))).await;
        assert_eq!(page.status(), StatusCode::OK);
        assert!(
            text(page)
                .await
                .contains("Nothing is waiting for a decision.")
        );
        // A form without the session's token, as another site could post it, is refused.
        let res = send(
            &state,
            post("/console/audit/verify", &session, "csrf=guess"),
        )
        .await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        // With the token but from another origin (another port of this host), or with none.
        for origin in [Some("http://127.0.0.1:3000"), Some("null"), None] {
            let mut req = post("/console/audit/verify", &session, &format!("csrf={csrf}"));
            match origin {
                Some(o) => {
                    req.headers_mut()
                        .insert(header::ORIGIN, HeaderValue::from_static(o));
                }
                None => {
                    req.headers_mut().remove(header::ORIGIN);
                }
            }
            assert_eq!(
                send(&state, req).await.status(),
                StatusCode::FORBIDDEN,
                "{origin:?}"
            );
        }
        // A second session cookie beside the real one (planted by another site on this host)
        // makes neither count.
        let both = format!("{session}; {COOKIE}=planted");
        let res = send(&state, get("/console/approvals", Some(&both))).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        let res = send(
            &state,
            post("/console/logout", &session, &format!("csrf={csrf}")),
        )
        .await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        let res = send(&state, get("/console/approvals", Some(&session))).await;
        assert_eq!(
            res.headers()[header::LOCATION],
            "/console/login?why=expired"
        );
    }

    #[tokio::test]
    async fn the_sign_in_form_needs_its_own_token_and_real_credentials() {
        let (dir, approver, _) = with_roles();
        let state = state(Some(dir.path()));
        let page = send(&state, get("/console/login", None)).await;
        let (login_cookie, _) = set_cookie_of(&page, LOGIN_COOKIE).unwrap();
        let form = format!("csrf=not-the-nonce&credential={approver}");
        assert_eq!(
            send(&state, post("/console/login", &login_cookie, &form))
                .await
                .status(),
            StatusCode::FORBIDDEN
        );
        let nonce = login_cookie.split_once('=').unwrap().1;
        let res = send(
            &state,
            post(
                "/console/login",
                &login_cookie,
                &format!("csrf={nonce}&credential=tg_wrong"),
            ),
        )
        .await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert!(set_cookie_of(&res, COOKIE).is_none());
        assert!(text(res).await.contains("were not accepted"));
    }

    #[tokio::test]
    async fn roles_decide_which_pages_a_viewer_sees() {
        let (dir, approver, auditor) = with_roles();
        let state = state(Some(dir.path()));
        let (approver, _) = sign_in(&state, &approver).await;
        let (auditor, auditor_csrf) = sign_in(&state, &auditor).await;
        // An auditor's own, valid form to decide an approval is still refused: not an approver.
        let res = send(
            &state,
            post(
                "/console/approvals/apr_000000000001/decide",
                &auditor,
                &format!("csrf={auditor_csrf}&decision=approve"),
            ),
        )
        .await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        assert!(text(res).await.contains("approver role"));
        let status =
            async |path: &str, who: &str| send(&state, get(path, Some(who))).await.status();
        assert_eq!(
            status("/console/approvals", &approver).await,
            StatusCode::OK
        );
        assert_eq!(
            status("/console/policy", &approver).await,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            status("/console/audit", &approver).await,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            status("/console/approvals", &auditor).await,
            StatusCode::FORBIDDEN
        );
        assert_eq!(status("/console/policy", &auditor).await, StatusCode::OK);
        let home = send(&state, get("/console/", Some(&approver))).await;
        assert_eq!(home.headers()[header::LOCATION], "/console/approvals");
        let home = send(&state, get("/console/", Some(&auditor))).await;
        assert_eq!(home.headers()[header::LOCATION], "/console/exchanges");
        // The auditor's navigation has no approvals; the policy files' text is for admins only.
        let page = text(send(&state, get("/console/policy", Some(&auditor))).await).await;
        assert!(!page.contains("href=\"/console/approvals\""));
        assert!(page.contains("Only admins see the files"));
        assert!(!page.contains("sha256: "), "no token hash is rendered");
    }

    #[tokio::test]
    async fn a_token_taken_away_by_a_reload_ends_its_sessions() {
        let (dir, approver, _) = with_roles();
        let state = state(Some(dir.path()));
        let (session, _) = sign_in(&state, &approver).await;
        std::fs::write(
            dir.path().join("identity.yaml"),
            "tokens: []\nadmin:\n  roles:\n    approver: [security]\n",
        )
        .unwrap();
        state.policy.reload(crate::reload::Trigger::Api).unwrap();
        let res = send(&state, get("/console/approvals", Some(&session))).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        assert!(
            res.headers()[header::LOCATION]
                .to_str()
                .unwrap()
                .starts_with("/console/login")
        );
    }
}
