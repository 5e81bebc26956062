//! The hudsucker handler: where each CONNECT is decided and each request's pipeline runs, in order.
//!
//! hudsucker clones the handler that saw a CONNECT for every request inside that tunnel, so the
//! tunnel's host, provider and TLS name ride along in [`TunnelCtx`]; `handle_request` and
//! `handle_response` of one request share one instance, so the exchange rides in [`Exchange`].

use super::Shared;
use super::body::{Capture, ObservedBody, Outcome, TeeBody};
use super::drain::InflightGuard;
use super::headers::strip_hop_by_hop;
use super::masking;
use super::pipeline::{self, PlaceInput, Route, TunnelCtx, host_port, not_a_proxy_request};
use super::refusal::{Reason, Refusal};
use super::tunnel;
use crate::identity::{AuthError, Identity};
use crate::mask::restore::Restorer;
use crate::policy::hosts::normalize_host;
use crate::providers::ErrorFormat;
use crate::providers::residency::Location;
use crate::record::{Record, RecordKind, Recorder};
use bytes::Bytes;
use http::{Method, Request, Response, Uri};
use hudsucker::{Body, HttpContext, HttpHandler, RequestOrResponse};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tracing::{debug, info, warn};

pub struct Handler {
    shared: Arc<Shared>,
    /// Who opened this tunnel (when authentication is on).
    identity: Option<Identity>,
    tunnel: Option<Arc<TunnelCtx>>,
    /// The server name the client asked for in its TLS hello, inside an intercepted tunnel.
    sni: Option<Arc<str>>,
    exchange: Option<Exchange>,
}

/// hudsucker clones the handler for every request; a clone starts with no exchange of its own.
impl Clone for Handler {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            identity: self.identity.clone(),
            tunnel: self.tunnel.clone(),
            sni: self.sni.clone(),
            exchange: None,
        }
    }
}

/// How a request travels: inside an intercepted tunnel, or as a plain-HTTP proxy request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Intercepted,
    Forwarded,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Mode::Intercepted => "intercepted",
            Mode::Forwarded => "forwarded",
        }
    }
}

/// One request/response pair in flight. It ends exactly once: with a response, a refusal, or
/// (when dropped before either, because the client went away) as `client-gone`.
struct Exchange {
    id: u64,
    /// The intercepted tunnel it travelled in.
    tunnel: Option<u64>,
    client: SocketAddr,
    method: Method,
    host: String,
    /// Path without the query string (queries may carry keys, e.g. Gemini's `?key=`).
    path: String,
    mode: Mode,
    errors: ErrorFormat,
    started: Instant,
    /// Whose placeholders these are (the client address until proxy authentication exists).
    scope: Arc<str>,
    /// What masking found: rule, category and place, never a value.
    findings: Vec<crate::mask::Finding>,
    /// Attachments masking could not look into.
    attachments: Vec<crate::mask::Attachment>,
    provider: Option<String>,
    /// Wall-clock start, for the audit record.
    started_at: String,
    /// Request body bytes sent upstream, where known.
    bytes_up: u64,
    recorder: Recorder,
    metrics: Arc<crate::metrics::Metrics>,
    /// Set once the request's first message is known; otherwise derived at the end.
    session_id: Option<String>,
    model: Option<String>,
    ttfb_ms: Option<u64>,
    /// The policy rule that refused it, if one did.
    rule: Option<String>,
    /// The request body exactly as sent upstream (intercepted exchanges).
    request_body: Bytes,
    /// The upstream's response body as it arrives (intercepted exchanges).
    capture: Option<Arc<Capture>>,
    /// The unmasked request body, sealed, when policy keeps originals (empty otherwise).
    sealed_original: Vec<u8>,
    /// Who sent it, when authentication is on.
    identity: Option<Identity>,
    /// The access profile that applied (`default` or a group entry's name).
    profile: Option<String>,
    /// Where the request was headed, once known.
    location: Option<Location>,
    /// What approval it needed and got, if a rule asked.
    approval: Option<crate::approval::ApprovalRecord>,
    /// The key its in-flight record is kept under until it ends.
    pending: Option<String>,
    /// Holds a drain open until this exchange's record is queued.
    _inflight: InflightGuard,
    /// Whether its record was queued.
    finished: bool,
    /// Whether its answer is being passed to the client (counted in the active streams).
    streaming: bool,
}

impl Drop for Exchange {
    fn drop(&mut self) {
        if !self.finished {
            // The client left before a response or refusal reached it (hyper drops the
            // request's future): the exchange still gets its final record.
            self.finish(None, Outcome::Abandoned.as_str(), 0);
        }
    }
}

/// Request bodies this long are shared with the audit record rather than copied.
const SHARED_FROM: usize = 64 << 10;

impl Exchange {
    /// Logs the exchange's line and queues its audit record (`status` is `None` when no response
    /// was sent).
    fn finish(&mut self, status: Option<u16>, outcome: &str, bytes: u64) {
        self.finished = true;
        if std::mem::take(&mut self.streaming) {
            self.metrics.stream_closed();
        }
        let ms = self.started.elapsed().as_millis() as u64;
        // The exchange is over: its body moves into the record. A short one may be a slice of
        // the connection's read buffer (tens of KiB), which the record, waiting in the audit
        // queue, must not keep alive: it gets a copy of its own. A long one fills most of its
        // buffer and is shared.
        let body = std::mem::take(&mut self.request_body);
        let body = if self.recorder.is_enabled() && body.len() < SHARED_FROM {
            Bytes::copy_from_slice(&body)
        } else {
            body
        };
        let mut record = self.record_so_far(body);
        record.duration_ms = ms;
        record.status = status;
        record.outcome = outcome.into();
        record.bytes_down = bytes;
        record.ttfb_ms = self.ttfb_ms;
        let mut tokens = Vec::new();
        if let Some(capture) = &self.capture {
            record.response_body = capture.take();
            if let Some(usage) = crate::record::usage_value(&record.response_body) {
                tokens = crate::providers::token_counts(&usage);
                record.usage = Some(usage.to_string());
            }
        }
        self.count(status, outcome, &tokens);
        self.recorder.close(self.pending.take(), record);
        info!(
            target: "tollgate::exchange",
            id = self.id,
            tunnel = self.tunnel,
            client = %self.client,
            user = %self.scope,
            groups = %self.identity.as_ref().map(|i| i.groups.join(",")).unwrap_or_default(),
            method = %self.method,
            host = %self.host,
            path = %self.path,
            status = status.unwrap_or(0),
            ms,
            bytes,
            mode = self.mode.as_str(),
            masked = %crate::mask::summarize(&self.findings),
            region = self.location.as_ref().and_then(Location::regions).as_deref().unwrap_or("-"),
            outcome,
            "exchange"
        );
    }

    /// The exchange in the metrics.
    fn count(&self, status: Option<u16>, outcome: &str, tokens: &[(&str, u64)]) {
        let rules: Vec<&str> = self.findings.iter().map(|f| &*f.rule).collect();
        self.metrics.exchange(&crate::metrics::ExchangeEnd {
            provider: self.provider.as_deref(),
            status,
            outcome,
            duration: self.started.elapsed(),
            ttfb: self.ttfb_ms.map(std::time::Duration::from_millis),
            findings: &rules,
            tokens,
        });
    }

    /// The record as far as the request goes: everything but the response, with `body` as the
    /// request body.
    fn record_so_far(&self, body: Bytes) -> Record {
        let session = self.session_id.clone().unwrap_or_else(|| {
            crate::record::session_id(&self.scope, self.provider.as_deref(), None)
        });
        let mut record = Record::started(
            RecordKind::Exchange,
            &self.client.to_string(),
            &self.scope,
            self.mode.as_str(),
            &self.host,
            self.started_at.clone(),
            session,
        );
        record.provider = self.provider.clone();
        record.method = Some(self.method.to_string());
        record.path = Some(self.path.clone());
        record.bytes_up = self.bytes_up;
        record.findings = findings_json(&self.findings, &self.attachments);
        record.model = self
            .model
            .clone()
            .or_else(|| crate::providers::model_in_path(&self.path));
        record.rule = self.rule.clone();
        record.set_identity(self.identity.as_ref());
        record.profile = self.profile.clone();
        record.approval = self
            .approval
            .as_ref()
            .and_then(|a| serde_json::to_string(a).ok());
        if let Some(location) = &self.location {
            record.region = location.regions();
            record.jurisdiction = location.jurisdictions();
        }
        record.request_body = body;
        record.original_body = self.sealed_original.clone();
        record.outcome = "in-flight".into();
        record
    }

    fn refuse(&mut self, refusal: Refusal) -> Response<Body> {
        self.rule = refusal.rule.clone();
        self.metrics.refusal(refusal.reason.slug());
        self.finish(Some(refusal.status().as_u16()), refusal.reason.slug(), 0);
        let response = refusal.into_response(self.errors);
        if self.method == Method::HEAD {
            // A HEAD answer has no content (RFC 9110 §9.3.2): over h2, DATA frames after it
            // are a protocol error that hides the refusal from the client.
            let (mut head, _) = response.into_parts();
            head.headers.remove(http::header::CONTENT_LENGTH);
            return Response::from_parts(head, Body::empty());
        }
        response
    }
}

impl Handler {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            identity: None,
            tunnel: None,
            sni: None,
            exchange: None,
        }
    }

    /// A CONNECT: refuse it, tunnel it blindly, or let hudsucker intercept it.
    async fn on_connect(&mut self, client: SocketAddr, req: Request<Body>) -> RequestOrResponse {
        let id = self.shared.next_id();
        let Some((host, port)) = req.uri().authority().map(host_port) else {
            return Refusal::new(Reason::NotAProxyRequest, "CONNECT needs a host:port target")
                .into_response(ErrorFormat::default())
                .into();
        };
        if self.tunnel.is_some() {
            return Refusal::new(
                Reason::NestedConnect,
                "CONNECT inside a tunnel is not supported",
            )
            .into_response(ErrorFormat::default())
            .into();
        }
        let policy = self.shared.policy.load();
        let decision = policy.decide(&host);
        let errors = decision.error_format();
        let started_at = crate::record::now();
        let identity = authenticate(&self.shared, &policy, &req).await;
        let provider = decision.provider.as_ref().map(|p| p.id.clone());
        let who = identity.as_ref().ok().cloned().flatten();
        let refuse = |refusal: Refusal| {
            let mut record = Record::new(
                RecordKind::ConnectRefused,
                &client.to_string(),
                &scope_of(who.as_ref(), client),
                "connect",
                &host,
            );
            record.set_identity(who.as_ref());
            record.started_at = started_at.clone();
            record.provider = provider.clone();
            record.method = Some("CONNECT".into());
            record.status = Some(refusal.status().as_u16());
            record.outcome = refusal.reason.slug().into();
            record.rule = refusal.rule.clone();
            self.shared.recorder.record(record);
            self.shared.metrics.connect("refused");
            self.shared.metrics.refusal(refusal.reason.slug());
            info!(
                target: "tollgate::tunnel",
                id,
                %client,
                host = %host,
                port,
                status = refusal.status().as_u16(),
                reason = refusal.reason.slug(),
                "CONNECT refused"
            );
            refusal.into_response(errors).into()
        };
        let identity = match identity {
            Ok(identity) => identity,
            Err(refusal) => return refuse(refusal),
        };
        let route = pipeline::decide(&policy, &host, identity.as_ref());
        self.identity = identity;
        match route {
            Err(refusal) => refuse(refusal),
            Ok(Route::Tunnel) => {
                if self.shared.inflight.is_draining() {
                    return refuse(Refusal::new(Reason::Draining, "the proxy is shutting down"));
                }
                match tunnel::open(
                    self.shared.clone(),
                    client,
                    self.identity.as_ref(),
                    id,
                    host.clone(),
                    port,
                    req,
                )
                .await
                {
                    Ok(response) => {
                        self.shared.metrics.connect("tunneled");
                        response.into()
                    }
                    Err(refusal) => refuse(refusal),
                }
            }
            Ok(Route::Intercept(provider)) => {
                let Some(authority) = req.uri().authority().cloned() else {
                    return refuse(not_a_proxy_request());
                };
                // hudsucker splices any tunnel whose first bytes are neither TLS nor HTTP straight
                // to the CONNECT authority, uninspected and outside the dialer. Port 0 makes that
                // connection fail at once; requests inside are pinned back to the real authority.
                let Ok(sentinel) = Uri::builder()
                    .authority(format!("{}:0", authority.host()))
                    .build()
                else {
                    return refuse(not_a_proxy_request());
                };
                let mut req = req;
                *req.uri_mut() = sentinel;
                debug!(id, %client, host = %host, port, provider = %provider.id, "intercepting tunnel");
                self.shared.metrics.connect("intercepted");
                self.tunnel = Some(Arc::new(TunnelCtx {
                    id,
                    host,
                    port,
                    authority,
                    provider,
                }));
                req.into()
            }
        }
    }

    /// The per-request pipeline, in order. Each stage passes the request on or refuses it.
    async fn pipeline(
        &self,
        exchange: &mut Exchange,
        mut req: Request<Body>,
    ) -> Result<Request<Body>, Refusal> {
        // One policy snapshot for every stage, even if a reload lands meanwhile.
        let policy = self.shared.policy.load_full();
        if self.tunnel.is_none() {
            // Plain-HTTP proxy requests carry their credentials on every request.
            if let Some(identity) = authenticate(&self.shared, &policy, &req).await? {
                exchange.scope = identity.user.clone();
                exchange.identity = Some(identity);
            }
        }
        // A tunnel can outlive the JWT that opened it: its requests cannot.
        if let Some(identity) = &exchange.identity
            && identity.is_expired()
        {
            return Err(Refusal::new(
                Reason::CredentialsExpired,
                "the proxy credentials this connection was opened with have expired; reconnect with fresh ones",
            )
            .with_rule("identity.yaml: oidc"));
        }
        if let Some(tunnel) = &self.tunnel {
            pipeline::judge_again(&policy, &tunnel.host, exchange.identity.as_ref())?;
        }
        pipeline::check_target(
            self.tunnel.as_deref(),
            self.sni.as_deref(),
            &policy,
            &mut req,
        )?;
        pipeline::refuse_upgrades(&req, &exchange.host)?;
        if self.shared.inflight.is_draining() {
            return Err(Refusal::new(
                Reason::Draining,
                "the proxy is shutting down; retry on a new connection",
            ));
        }
        strip_hop_by_hop(req.headers_mut());
        if exchange.mode == Mode::Intercepted {
            pipeline::admit_to_recording(&self.shared, &policy).await?;
        }
        if let Some(tunnel) = &self.tunnel {
            let profile = policy.access().profile(exchange.identity.as_ref());
            exchange.profile = Some(profile.name.clone());
            let masking = policy.masking_for(profile);
            let masked = masking::mask_request(&self.shared, masking, &exchange.scope, req).await?;
            exchange.findings = masked.findings;
            exchange.attachments = masked.attachments;
            exchange.bytes_up = masked.sent.len() as u64;
            exchange.request_body = masked.sent;
            let (placement, placed) = pipeline::place(
                &policy,
                profile,
                &tunnel.provider,
                PlaceInput {
                    host: &tunnel.host,
                    path: &exchange.path,
                    facts: &masked.facts,
                    has_body: !exchange.request_body.is_empty(),
                },
            );
            exchange.model = placement.model.clone();
            exchange.location = placement.location.clone();
            placed?;
            let groups = exchange
                .identity
                .as_ref()
                .map_or(&[][..], |i| &i.groups[..]);
            pipeline::approval(
                &self.shared,
                &policy,
                pipeline::Asking {
                    exchange: exchange.id,
                    user: &exchange.scope,
                    groups,
                    provider: &tunnel.provider.id,
                    host: &exchange.host,
                    path: &exchange.path,
                    findings: &exchange.findings,
                    placement: &placement,
                    body: &exchange.request_body,
                },
                &mut exchange.approval,
            )
            .await?;
            if policy.recording().store_originals
                && let (Some(original), Some(key)) = (masked.original, &self.shared.originals_key)
            {
                let context =
                    crate::record::originals::context(&exchange.started_at, &exchange.host);
                exchange.sealed_original = key.seal(&original, &context);
            }
            exchange.session_id = Some(crate::record::session_id(
                &exchange.scope,
                exchange.provider.as_deref(),
                masked.facts.first_message.as_deref(),
            ));
            req = masked.req;
        }
        // A client that stops sending mid-body must not hold an upstream connection forever.
        let idle = self.shared.timeouts.body_idle;
        Ok(req.map(|body| ObservedBody::wrap(body, idle, Box::new(|_, _| {}))))
    }

    fn begin_exchange(&self, client: SocketAddr, req: &Request<Body>) -> Exchange {
        let (host, mode, errors, provider) = match &self.tunnel {
            Some(t) => (
                t.host.clone(),
                Mode::Intercepted,
                t.provider.errors,
                Some(t.provider.id.clone()),
            ),
            None => {
                let host = req.uri().host().map(normalize_host).unwrap_or_default();
                let decision = self.shared.policy.load().decide(&host);
                let provider = decision.provider.as_ref().map(|p| p.id.clone());
                (host, Mode::Forwarded, decision.error_format(), provider)
            }
        };
        let scope = scope_of(self.identity.as_ref(), client);
        Exchange {
            id: self.shared.next_id(),
            tunnel: self.tunnel.as_ref().map(|t| t.id),
            client,
            method: req.method().clone(),
            host,
            path: req.uri().path().to_owned(),
            mode,
            errors,
            started: Instant::now(),
            scope: scope.as_str().into(),
            findings: Vec::new(),
            attachments: Vec::new(),
            provider,
            started_at: crate::record::now(),
            bytes_up: req
                .headers()
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            recorder: self.shared.recorder.clone(),
            metrics: self.shared.metrics.clone(),
            session_id: None,
            model: None,
            ttfb_ms: None,
            rule: None,
            request_body: Bytes::new(),
            capture: None,
            sealed_original: Vec::new(),
            identity: self.identity.clone(),
            profile: None,
            location: None,
            approval: None,
            pending: None,
            // From its first byte until its record is queued, a drain waits for it.
            _inflight: self.shared.inflight.enter(),
            finished: false,
            streaming: false,
        }
    }
}

/// Checks `Proxy-Authorization` when identity.yaml asks for credentials: `Ok(None)` when
/// authentication is off, the identity when the credentials are good, a 407 otherwise (a 503 when
/// they cannot be checked right now).
async fn authenticate(
    shared: &Shared,
    policy: &crate::policy::Policy,
    req: &Request<Body>,
) -> Result<Option<Identity>, Refusal> {
    let auth = policy.auth();
    if !auth.is_enabled() {
        return Ok(None);
    }
    let header = req
        .headers()
        .get(http::header::PROXY_AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let refusal = match auth.authenticate(header, &*shared.fetcher).await {
        Ok(identity) => return Ok(Some(identity)),
        Err(AuthError::Missing) => Refusal::new(
            Reason::ProxyAuthRequired,
            "this proxy needs credentials: put a token in the proxy URL, http://NAME:TOKEN@host:port, or send an OIDC bearer token",
        ),
        Err(e @ AuthError::Rejected(_)) => Refusal::new(Reason::ProxyAuthRequired, e.to_string()),
        Err(e @ AuthError::Unavailable(_)) => {
            Refusal::new(Reason::IdentityUnavailable, e.to_string())
        }
    };
    Err(refusal
        .with_rule("identity.yaml")
        .with_bearer_challenge(auth.oidc().is_some()))
}

/// Whose placeholders and records these are: the authenticated user, else the client address.
pub(super) fn scope_of(identity: Option<&crate::identity::Identity>, client: SocketAddr) -> String {
    identity.map_or_else(|| client.ip().to_string(), |i| i.user.to_string())
}

impl HttpHandler for Handler {
    async fn handle_request(&mut self, ctx: &HttpContext, req: Request<Body>) -> RequestOrResponse {
        if req.method() == Method::CONNECT {
            return self.on_connect(ctx.client_addr, req).await;
        }
        let mut exchange = self.begin_exchange(ctx.client_addr, &req);
        match self.pipeline(&mut exchange, req).await {
            Ok(req) => {
                // From here the request leaves: should the process die before the exchange
                // ends, this is what the audit trail keeps of it.
                if self.shared.recorder.is_enabled() {
                    let body = exchange.request_body.clone();
                    exchange.pending = self.shared.recorder.open(exchange.record_so_far(body));
                }
                self.exchange = Some(exchange);
                req.into()
            }
            Err(refusal) => exchange.refuse(refusal).into(),
        }
    }

    async fn handle_response(
        &mut self,
        _ctx: &HttpContext,
        mut res: Response<Body>,
    ) -> Response<Body> {
        strip_hop_by_hop(res.headers_mut());
        let Some(mut exchange) = self.exchange.take() else {
            return res;
        };
        exchange.ttfb_ms = Some(exchange.started.elapsed().as_millis() as u64);
        if exchange.method == Method::HEAD {
            // Whatever an upstream sends after a HEAD answer's headers is not content
            // (RFC 9110 §9.3.2); passed on over h2 it would be a protocol error.
            res = res.map(|_| Body::empty());
        }
        let res = if exchange.mode == Mode::Intercepted {
            // Keep the upstream's answer for the record, unless nothing is recorded.
            let res = if self.shared.recorder.is_enabled() {
                let capture = Arc::new(Capture::default());
                exchange.capture = Some(capture.clone());
                res.map(|body| TeeBody::wrap(body, capture))
            } else {
                res
            };
            let restorer = Restorer::new(self.shared.vault.clone(), &exchange.scope);
            match masking::restore_response(restorer, res, self.shared.timeouts.body_idle).await {
                Ok(res) => res,
                Err(refusal) => return exchange.refuse(refusal),
            }
        } else {
            res
        };
        let status = res.status().as_u16();
        let idle = self.shared.timeouts.body_idle;
        exchange.streaming = true;
        exchange.metrics.stream_opened();
        res.map(|body| {
            ObservedBody::wrap(
                body,
                idle,
                Box::new(move |outcome: Outcome, bytes| {
                    exchange.finish(Some(status), outcome.as_str(), bytes);
                }),
            )
        })
    }

    async fn handle_error(
        &mut self,
        _ctx: &HttpContext,
        err: hyper_util::client::legacy::Error,
    ) -> Response<Body> {
        let Some(mut exchange) = self.exchange.take() else {
            warn!(error = %err, "upstream request failed outside an exchange");
            return Refusal::from_upstream_error("upstream", &err)
                .into_response(ErrorFormat::default());
        };
        exchange.refuse(Refusal::from_upstream_error(&exchange.host, &err))
    }

    async fn handle_response_timeout(
        &mut self,
        _ctx: &HttpContext,
        after: std::time::Duration,
    ) -> Response<Body> {
        let refusal = |host: &str| {
            Refusal::new(
                Reason::UpstreamTimeout,
                format!(
                    "{host} sent no response within {}s of the request",
                    after.as_secs()
                ),
            )
            .with_rule("timeouts.response_header")
        };
        let Some(mut exchange) = self.exchange.take() else {
            warn!("upstream sent no response in time outside an exchange");
            return refusal("upstream").into_response(ErrorFormat::default());
        };
        let refusal = refusal(&exchange.host);
        exchange.refuse(refusal)
    }

    async fn should_intercept_connect(&mut self, _ctx: &HttpContext, _req: &Request<Body>) -> bool {
        // Only CONNECTs decided `Intercept` reach hudsucker; blind tunnels are ours.
        true
    }

    async fn should_intercept_tls(
        &mut self,
        _ctx: &HttpContext,
        hello: rustls::server::ClientHello<'_>,
    ) -> bool {
        self.sni = hello
            .server_name()
            .map(|name| Arc::from(normalize_host(name)));
        // hudsucker asks the CA for a leaf named after the hello's server name, not the CONNECT
        // host: a hello naming another host must get no leaf at all, or a client could make the
        // CA vouch for any name it likes. Refusing here is the only way hudsucker offers: false
        // makes it splice the tunnel to its copy of the CONNECT authority, whose port 0 (see
        // `on_connect`) fails at once, so the handshake ends without a certificate.
        if let (Some(sni), Some(tunnel)) = (&self.sni, &self.tunnel)
            && **sni != *tunnel.host
        {
            info!(
                target: "tollgate::tunnel",
                id = tunnel.id,
                host = %tunnel.host,
                sni = %sni,
                "TLS server name differs from the CONNECT host; handshake refused"
            );
            return false;
        }
        // Otherwise true: false would make hudsucker tunnel the bytes itself, uninspected.
        true
    }
}

/// Findings as the audit record keeps them: rule, category, place; never a value. Attachments
/// that could not be inspected are listed with them (rule `uninspected-attachment`), with their
/// media type and size, so an auditor sees what left unread.
fn findings_json(
    findings: &[crate::mask::Finding],
    attachments: &[crate::mask::Attachment],
) -> String {
    let list: Vec<serde_json::Value> = findings
        .iter()
        .map(|f| {
            serde_json::json!({
                "rule": &*f.rule,
                "category": &*f.category,
                "path": f.path,
                "offset": f.offset,
            })
        })
        .chain(attachments.iter().map(|a| {
            serde_json::json!({
                "rule": "uninspected-attachment",
                "category": "attachment",
                "path": a.path,
                "media_type": a.media_type,
                "bytes": a.bytes,
            })
        }))
        .collect();
    serde_json::Value::Array(list).to_string()
}
