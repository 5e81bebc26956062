//! The request's life, written down once. The proxy runs these stages in this order for every
//! request, and `tollgate policy explain` runs the same functions for one hypothetical request
//! without sending it; a stage passes the request on, answers it (a [`Refusal`]), or holds it
//! (approval).
//!
//! | stage | what | where |
//! |---|---|---|
//! | authenticate | `Proxy-Authorization`: a token or a JWT | [`crate::identity`] |
//! | target | inside a tunnel opened under an earlier policy, its credentials and host judged again; the request must target the tunnel's host; no upgrades; the store must take its record | [`judge_again`], [`check_target`], [`refuse_upgrades`], [`admit_to_recording`] |
//! | decide | the host: refused (denied host, then a provider the profile does not allow), tunneled, or intercepted | [`decide`] |
//! | mask | secrets and identifiers become placeholders | [`crate::mask`] |
//! | place | model and regions; the profile's providers, regions and models | [`place`] |
//! | approval | a rule of approvals.yaml asks for a person: a grant lets it through, `hold` waits, `retry` refuses with an id | [`approval_rule`], [`approval`] |
//! | forward | through the verified upstream client | hudsucker |
//! | restore | placeholders back in the answer, streams event by event | [`crate::mask::restore`] |
//! | record | every exchange, refused and failed ones too | [`crate::record`] |

use super::Shared;
use super::refusal::{Reason, Refusal};
use crate::approval::rules::{ApprovalRule, Facts};
use crate::identity::Identity;
use crate::mask::{Finding, RequestFacts};
use crate::policy::access::Profile;
use crate::policy::hosts::normalize_host;
use crate::policy::{AccessError, Action, Policy, StoreFailure};
use crate::providers::Provider;
use crate::providers::residency::{Location, RequestView};
use http::uri::{Authority, Scheme};
use http::{Request, Uri, Version};
use hudsucker::Body;
use std::sync::Arc;
use std::time::Instant;
use tracing::info;

/// An intercepted tunnel: the CONNECT target and who owns it.
pub(super) struct TunnelCtx {
    pub(super) id: u64,
    pub(super) host: String,
    pub(super) port: u16,
    /// `host:port` as the client gave it, what upstream requests are sent to.
    pub(super) authority: Authority,
    pub(super) provider: Arc<Provider>,
}

/// Inside a tunnel, the request must go to the tunnel's host: hudsucker routes h2 requests by
/// their own `:authority`, which would let a client escape the policy decided at CONNECT.
/// Once checked, the URI is pinned to the tunnel's authority. Outside a tunnel, a plain-HTTP
/// request is decided by its host like a CONNECT.
pub(super) fn check_target(
    tunnel: Option<&TunnelCtx>,
    sni: Option<&str>,
    policy: &Policy,
    req: &mut Request<Body>,
) -> Result<(), Refusal> {
    let Some(tunnel) = tunnel else {
        return check_plain_http_target(policy, req);
    };
    if req.uri().scheme() != Some(&Scheme::HTTPS) {
        return Err(Refusal::new(
            Reason::PlaintextToProvider,
            format!(
                "plain HTTP inside a tunnel to {} is refused; use TLS",
                tunnel.host
            ),
        ));
    }
    let mismatch = |seen: &str| {
        Refusal::new(
            Reason::HostMismatch,
            format!(
                "this tunnel was opened to {}:{}, but the request targets {seen}",
                tunnel.host, tunnel.port
            ),
        )
    };
    // HTTP/1 requests carry hudsucker's copy of the CONNECT authority (see `on_connect`);
    // what the client said is in `Host`. h2 requests carry the client's own `:authority`.
    if req.version() == Version::HTTP_2 {
        let (host, port) = req
            .uri()
            .authority()
            .map(host_port)
            .ok_or_else(not_a_proxy_request)?;
        if host != tunnel.host || port != tunnel.port {
            return Err(mismatch(&format!("{host}:{port}")));
        }
    }
    if let Some(host_header) = req.headers().get(http::header::HOST) {
        let seen = host_header.to_str().unwrap_or("(not text)");
        let matches = seen.parse::<Authority>().is_ok_and(|a| {
            let (h, p) = host_port(&a);
            h == tunnel.host && (a.port_u16().is_none() || p == tunnel.port)
        });
        if !matches {
            return Err(mismatch(seen));
        }
    } else if req.version() != Version::HTTP_2 {
        return Err(mismatch("no Host header"));
    }
    if let Some(sni) = sni
        && *sni != *tunnel.host
    {
        return Err(mismatch(&format!("TLS server name {sni}")));
    }
    let mut parts = req.uri().clone().into_parts();
    parts.authority = Some(tunnel.authority.clone());
    *req.uri_mut() = Uri::from_parts(parts).map_err(|_| not_a_proxy_request())?;
    Ok(())
}

fn check_plain_http_target(policy: &Policy, req: &Request<Body>) -> Result<(), Refusal> {
    let (host, _) = req
        .uri()
        .authority()
        .map(host_port)
        .ok_or_else(not_a_proxy_request)?;
    let decision = policy.decide(&host);
    match decision.action {
        Action::Deny { rule } => Err(Refusal::host_denied(&host, rule)),
        Action::Intercept => Err(Refusal::new(
            Reason::PlaintextToProvider,
            format!(
                "plain HTTP to {host} is refused: LLM APIs are HTTPS-only and plaintext would bypass inspection; use https://"
            ),
        )),
        Action::Tunnel => Ok(()),
    }
}

pub(super) fn not_a_proxy_request() -> Refusal {
    Refusal::new(
        Reason::NotAProxyRequest,
        "this is a proxy: send CONNECT host:port or an absolute-form http:// request",
    )
}

/// Host (normalized) and port (443 when absent) of an authority.
pub(super) fn host_port(authority: &Authority) -> (String, u16) {
    (
        normalize_host(authority.host()),
        authority.port_u16().unwrap_or(443),
    )
}

/// What [`decide`] made of a host.
#[derive(Debug, Clone)]
pub enum Route {
    /// Its bytes pass through uninspected.
    Tunnel,
    /// An LLM API host: intercepted and inspected.
    Intercept(Arc<Provider>),
}

/// Decide: a denied host is refused whoever asks; then a provider the user's profile does not
/// allow; otherwise the host is tunneled or intercepted as the policy says.
pub fn decide(policy: &Policy, host: &str, identity: Option<&Identity>) -> Result<Route, Refusal> {
    let decision = policy.decide(host);
    if let Action::Deny { rule } = decision.action {
        return Err(Refusal::host_denied(host, rule));
    }
    if let Some(provider) = &decision.provider
        && let Err(denied) = policy
            .access()
            .profile(identity)
            .check_provider(&provider.id)
    {
        return Err(Refusal::access(AccessError::Denied(denied)));
    }
    match (decision.action, decision.provider) {
        (Action::Intercept, Some(provider)) => Ok(Route::Intercept(provider)),
        // Interception needs a provider; a host without one is only ever tunneled or denied.
        _ => Ok(Route::Tunnel),
    }
}

/// Inside a tunnel opened under an earlier policy: its credentials must still be accepted as
/// they are (a revoked or changed token gets 407, reconnect) and its host decided the same way.
pub fn judge_again(
    policy: &Policy,
    host: &str,
    identity: Option<&Identity>,
) -> Result<(), Refusal> {
    let auth = policy.auth();
    let stale = match identity {
        None => auth.is_enabled(),
        Some(identity) => !auth.still_accepts(identity),
    };
    if stale {
        return Err(Refusal::new(
            Reason::ProxyAuthRequired,
            "the credentials this connection was opened with are no longer accepted (identity.yaml changed); reconnect with current ones",
        )
        .with_rule("identity.yaml")
        .with_bearer_challenge(auth.oidc().is_some()));
    }
    decide(policy, host, identity).map(|_| ())
}

/// WebSocket upgrades are refused at once (426), so clients such as Codex CLI fall back to
/// HTTP+SSE without a retry loop. Forwarding them would bypass inspection (and hudsucker dials
/// WebSocket upstreams itself, outside the dialer's rules).
pub(super) fn refuse_upgrades(
    req: &http::Request<hudsucker::Body>,
    host: &str,
) -> Result<(), Refusal> {
    let upgrade = req.headers().contains_key(http::header::UPGRADE)
        || req.extensions().get::<hyper::ext::Protocol>().is_some();
    if upgrade {
        return Err(Refusal::new(
            Reason::WebSocketRefused,
            format!(
                "protocol upgrades (WebSocket) to {} are not inspected and so not allowed; use HTTPS with server-sent events",
                host
            ),
        ));
    }
    Ok(())
}

/// The audit store must be able to take this exchange's record. Under `refuse` a failing store
/// refuses at once (under `continue` the request goes on unrecorded). A full queue is the writer
/// falling behind, not failing: under either policy the request waits until the writer frees room
/// (back-pressure, at most `timeouts.header_read`, and under `refuse` only while the store takes
/// writes) and is refused if none comes.
pub(super) async fn admit_to_recording(shared: &Shared, policy: &Policy) -> Result<(), Refusal> {
    let recorder = &shared.recorder;
    let must_record = policy.recording().on_store_failure == StoreFailure::Refuse;
    let refused = if must_record && !recorder.is_writable() {
        Some("recording.on_store_failure: refuse")
    } else if !recorder.is_full()
        || recorder
            .wait_for_room(shared.timeouts.header_read, must_record)
            .await
    {
        None
    } else if must_record && !recorder.is_writable() {
        Some("recording.on_store_failure: refuse")
    } else {
        Some("limits.audit_queue_records/audit_queue_bytes")
    };
    match refused {
        None => Ok(()),
        Some(rule) => Err(Refusal::new(
            Reason::StoreUnavailable,
            "the audit store cannot take this request's record right now, and policy does not let requests leave unrecorded; retry shortly",
        )
        .with_rule(rule)),
    }
}

/// What [`place`] found: the model asked for and where the request goes.
#[derive(Debug, Default)]
pub struct Placement {
    pub model: Option<String>,
    pub location: Option<Location>,
}

/// The request as the place stage sees it.
pub struct PlaceInput<'a> {
    pub host: &'a str,
    pub path: &'a str,
    pub facts: &'a RequestFacts,
    pub has_body: bool,
}

/// Place: the model the request asks for and every place it goes to, checked against the
/// profile's providers, regions and models.
pub fn place(
    policy: &Policy,
    profile: &Profile,
    provider: &Provider,
    input: PlaceInput<'_>,
) -> (Placement, Result<(), Refusal>) {
    let model = policy.request_model(input.host, input.path, input.facts.model.as_deref());
    let view = RequestView {
        host: input.host,
        path: input.path,
        model: model.as_deref(),
        body_fields: &input.facts.fields,
        has_body: input.has_body,
    };
    let (location, result) = policy.check_request(profile, provider, view);
    (
        Placement { model, location },
        result.map_err(Refusal::access),
    )
}

/// What the approval stage judges a request on.
pub struct ApprovalInput<'a> {
    pub findings: &'a [Finding],
    pub provider: &'a str,
    pub placement: &'a Placement,
    pub user: &'a str,
    pub groups: &'a [String],
    pub body_bytes: u64,
}

/// Approval: the rule of approvals.yaml that asks for a person (or the default rule, when a
/// masking rule whose action is `approve` found something), if any.
pub fn approval_rule<'p>(
    policy: &'p Policy,
    input: &ApprovalInput<'_>,
) -> Option<&'p ApprovalRule> {
    // Most deployments have no rule, and most requests nothing masking asks about: nothing to
    // gather on the hot path then.
    if policy.approvals().rules.is_empty() && !input.findings.iter().any(|f| f.needs_approval) {
        return None;
    }
    let places: Vec<(&str, &'static [&'static str])> = input
        .placement
        .location
        .iter()
        .flat_map(|l| l.places.iter())
        .map(|p| (p.region.as_str(), p.jurisdictions()))
        .collect();
    let facts = Facts {
        findings: input
            .findings
            .iter()
            .map(|f| (&*f.rule, &*f.category))
            .collect(),
        masking_asks: input.findings.iter().any(|f| f.needs_approval),
        provider: input.provider,
        model: input.placement.model.as_deref(),
        places,
        user: input.user,
        groups: input.groups,
        body_bytes: input.body_bytes,
    };
    policy.approvals().rule_for(&facts)
}

/// The request an approval stage asks about: what the stages before it learned.
pub(super) struct Asking<'a> {
    /// The exchange's id, for the log.
    pub exchange: u64,
    pub user: &'a str,
    pub groups: &'a [String],
    pub provider: &'a str,
    pub host: &'a str,
    pub path: &'a str,
    pub findings: &'a [Finding],
    pub placement: &'a Placement,
    /// The body as it would leave: masked.
    pub body: &'a bytes::Bytes,
}

/// Approval: when a rule of approvals.yaml (or a masking rule whose action is `approve`)
/// asks for a person, the request goes through under an open grant, waits for a decision
/// (`hold`), or is refused with an approval id until approved (`retry`). Approvers see the
/// masked body only.
pub(super) async fn approval(
    shared: &Shared,
    policy: &Policy,
    asking: Asking<'_>,
    slot: &mut Option<crate::approval::ApprovalRecord>,
) -> Result<(), Refusal> {
    use crate::approval::rules::Mode;
    use crate::approval::{ApprovalRecord, FindingView, NewRequest, Retry, Verdict};
    let user = asking.user.to_owned();
    let groups = asking.groups;
    let Some(rule) = approval_rule(
        policy,
        &ApprovalInput {
            findings: asking.findings,
            provider: asking.provider,
            placement: asking.placement,
            user: &user,
            groups,
            body_bytes: asking.body.len() as u64,
        },
    ) else {
        return Ok(());
    };
    let rule_name = format!("approvals.yaml: {}", rule.name);
    let mut record = ApprovalRecord {
        id: None,
        rule: rule.name.clone(),
        mode: rule.mode,
        decision: "abandoned",
        by: None,
        reason: None,
        at: None,
        waited_ms: 0,
        break_glass: false,
        grant: None,
    };
    let metrics = &shared.metrics;
    if let Some(grant) = shared
        .approvals
        .grant_for(&user, &rule.name, asking.provider)
    {
        record.decision = "granted";
        record.by = Some(grant.by);
        record.grant = Some(grant.id);
        *slot = Some(record);
        metrics.approval("granted", None);
        return Ok(());
    }
    let request = NewRequest {
        user: user.clone(),
        groups: groups.to_vec(),
        provider: asking.provider.to_owned(),
        model: asking.placement.model.clone(),
        region: asking
            .placement
            .location
            .as_ref()
            .and_then(Location::regions),
        host: asking.host.to_owned(),
        path: asking.path.to_owned(),
        findings: asking
            .findings
            .iter()
            .map(|f| FindingView {
                rule: f.rule.to_string(),
                category: f.category.to_string(),
                path: f.path.clone(),
            })
            .collect(),
        body: asking.body.clone(),
    };
    let decided = |record: &mut ApprovalRecord, v: &Verdict| {
        record.by = Some(v.by.clone());
        record.reason = v.reason.clone();
        record.at = Some(v.at.clone());
        record.break_glass = v.break_glass;
        record.grant = v.grant.clone();
    };
    let denied = |id: &str, v: &Verdict| {
        Refusal::new(
            Reason::ApprovalDenied,
            format!(
                "approval {id} was denied by {}: {}",
                v.by,
                v.reason.as_deref().unwrap_or("no reason given")
            ),
        )
        .with_rule(rule_name.clone())
    };
    match rule.mode {
        Mode::Hold => {
            let started = Instant::now();
            let mut held = shared.approvals.hold(rule, request).await;
            let id = held.id.clone();
            record.id = Some(id.clone());
            announce(shared, rule, &id);
            // Dropped while waiting (the client left), the exchange's record says so.
            *slot = Some(record.clone());
            info!(id = asking.exchange, approval = %id, rule = %rule.name, user = %user, "held for approval");
            let verdict = held.decision(rule.wait).await;
            drop(held);
            record.waited_ms = started.elapsed().as_millis() as u64;
            let result = match &verdict {
                Some(v) if v.approved => {
                    record.decision = "approved";
                    decided(&mut record, v);
                    Ok(())
                }
                Some(v) => {
                    record.decision = "denied";
                    decided(&mut record, v);
                    Err(denied(&id, v))
                }
                None => {
                    record.decision = "timeout";
                    Err(Refusal::new(
                        Reason::ApprovalTimeout,
                        format!(
                            "approval {id} was not decided within {}; ask an approver (`tollgate approvals approve {id}`) and send the request again",
                            humantime_serde::re::humantime::format_duration(rule.wait)
                        ),
                    )
                    .with_rule(rule_name.clone()))
                }
            };
            metrics.approval(record.decision, Some(started.elapsed()));
            *slot = Some(record);
            result
        }
        Mode::Retry => {
            let outcome = match shared.approvals.retry(rule, request).await {
                Ok(outcome) => outcome,
                Err(error) => {
                    tracing::error!(%error, "the shared approval queue cannot be reached");
                    record.decision = "pending";
                    *slot = Some(record);
                    return Err(Refusal::new(
                        Reason::StoreUnavailable,
                        "the approval this request needs cannot be checked right now (the shared approval queue does not answer); try again shortly",
                    )
                    .with_rule(rule_name.clone()));
                }
            };
            let result = match &outcome {
                Retry::Approved(v) => {
                    record.decision = "approved";
                    decided(&mut record, v);
                    Ok(())
                }
                Retry::Denied(v) => {
                    record.decision = "denied";
                    decided(&mut record, v);
                    Err(denied("for this request", v))
                }
                Retry::Pending { id, new } => {
                    if *new {
                        announce(shared, rule, id);
                    }
                    record.decision = "pending";
                    record.id = Some(id.clone());
                    Err(Refusal::new(
                        Reason::ApprovalPending,
                        format!(
                            "this request needs approval ({rule_name}); approval id {id}. Once an approver approves it (`tollgate approvals approve {id}`), send the same request again: it goes through once"
                        ),
                    )
                    .with_rule(rule_name.clone()))
                }
            };
            metrics.approval(record.decision, None);
            *slot = Some(record);
            result
        }
    }
}

/// Tells the rule's webhook, if it has one, that approval `id` waits.
fn announce(shared: &Shared, rule: &ApprovalRule, id: &str) {
    if let Some(webhook) = &rule.webhook
        && let Some(pending) = shared.approvals.get(id)
    {
        let link = shared
            .admin_url
            .get()
            .map(|base| format!("{base}/api/approvals/{id}"));
        shared.webhooks.announce(webhook, &pending, link);
    }
}
