//! The console's pages, rendered with maud (every value escaped). Conversations are read from the
//! providers' request shapes into turns, and placeholders are highlighted with the rule that made
//! them; nothing here ever holds a secret (the store and the approval queue hold none).

use super::{Filters, Viewer};
use crate::approval::{Grant, Pending, Verdict};
use crate::identity::Role;
use crate::record::{Record, RecordKind};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};
use serde_json::Value;

/// Rows per page of the exchanges list.
pub const PAGE: usize = 50;

/// The last run of `audit verify` from the console.
#[derive(Debug, Clone)]
pub struct Verification {
    pub at: String,
    pub by: String,
    pub rows: i64,
    /// The first broken row and why, if the chain does not hold.
    pub broken: Option<String>,
    pub took_ms: u64,
}

/// The `policy explain` form.
#[derive(Debug, Default, Clone, serde::Deserialize)]
#[serde(default)]
pub struct ExplainForm {
    pub csrf: String,
    pub host: String,
    pub path: String,
    pub user: String,
    pub groups: String,
    pub body: String,
}

/// A rendered page.
pub struct Page(StatusCode, Markup);

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        (self.0, Html(self.1.into_string())).into_response()
    }
}

/// Every page's head: its title, the stylesheet and script, and where it goes on by itself.
fn head(title: &str, go_on_to: Option<&str>) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            @if let Some(url) = go_on_to { meta http-equiv="refresh" content={ "0;url=" (url) }; }
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · Tollgate" }
            link rel="stylesheet" href="/console/assets/console.css";
            script src="/console/assets/console.js" defer {}
        }
    }
}

fn layout(viewer: Option<&Viewer>, title: &str, current: &str, body: Markup) -> Page {
    let nav: &[(&str, &str, &[Role])] = &[
        ("approvals", "Approvals", &[Role::Approver]),
        ("exchanges", "Exchanges", &[Role::Auditor]),
        ("audit", "Audit", &[Role::Auditor]),
        ("policy", "Policy", &[Role::Auditor]),
    ];
    Page(
        StatusCode::OK,
        html! {
            (DOCTYPE)
            html lang="en" {
                (head(title, None))
                body {
                    header.top {
                        a.brand href="/console/" { "Tollgate" }
                        @if let Some(v) = viewer {
                            nav {
                                @for (slug, label, roles) in nav {
                                    @if v.may(roles) {
                                        a href={ "/console/" (slug) } aria-current=[(current == *slug).then_some("page")] { (label) }
                                    }
                                }
                            }
                            form.who method="post" action="/console/logout" {
                                span { (v.name()) }
                                input type="hidden" name="csrf" value=(v.csrf);
                                button.link type="submit" { "Sign out" }
                            }
                        }
                    }
                    main { (body) }
                }
            }
        },
    )
}

/// An error page (also for the signed-out, so it has no navigation).
pub fn error(status: StatusCode, message: &str) -> Response {
    let mut page = layout(
        None,
        status.canonical_reason().unwrap_or("Error"),
        "",
        html! {
            section.card {
                h1 { (status.as_u16()) " " (status.canonical_reason().unwrap_or("")) }
                p { (message) }
                p { a href="/console/" { "Back to the console" } }
            }
        },
    );
    page.0 = status;
    page.into_response()
}

pub fn login(
    auth_on: bool,
    provider: Option<&str>,
    nonce: &str,
    why: Option<&str>,
    failure: Option<&str>,
) -> Page {
    let why = match why {
        Some("expired") => Some("Your session ended: sign in again."),
        Some("rejected") => Some("Your credentials are no longer accepted: sign in again."),
        Some("no-role") => Some("Your identity no longer holds an admin role."),
        Some("signed-out") => Some("Signed out."),
        _ => None,
    };
    let mut page = layout(
        None,
        "Sign in",
        "",
        html! {
            section.card.narrow {
                h1 { "Sign in" }
                @if let Some(w) = why { p.note { (w) } }
                @if let Some(f) = failure { p.alert role="alert" { (f) } }
                @if let (true, Some(p)) = (auth_on, provider) {
                    p { a.button.primary #provider href="/console/oidc/start" { "Sign in with " (p) } }
                    p.hint { "Or paste a token:" }
                }
                form method="post" action="/console/login" {
                    input type="hidden" name="csrf" value=(nonce);
                    @if auth_on {
                        label for="credential" { "Admin token or JWT" }
                        textarea #credential name="credential" rows="3" autocomplete="off" spellcheck="false" required autofocus {}
                        p.hint { "A token from identity.yaml whose groups hold an admin role, or a JWT from your identity provider. It is kept in this process's memory only, for this session." }
                    } @else {
                        p { "Authentication is off (no token or identity provider in identity.yaml): the console is open to this machine only." }
                    }
                    button.primary type="submit" { @if auth_on { "Sign in" } @else { "Continue" } }
                }
            }
        },
    );
    if failure.is_some() {
        page.0 = StatusCode::UNAUTHORIZED;
    }
    page
}

/// Back from the identity provider, signed in: on to the console from this page (a refresh,
/// and a link for browsers that do not follow it).
pub fn signed_in(user: &str) -> Page {
    Page(
        StatusCode::OK,
        html! {
            (DOCTYPE)
            html lang="en" {
                (head("Signed in", Some("/console/")))
                body { main { section.card.narrow {
                    h1 { "Signed in" }
                    p { "Signed in as " (user) ". " a #continue href="/console/" { "Continue to the console" } }
                } } }
            }
        },
    )
}

fn seconds(s: u64) -> String {
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m {:02}s", s / 60, s % 60),
        _ => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// The rows of the pending list, newest first; also what the page fetches to refresh itself.
pub fn approval_rows(pending: &[Pending]) -> Page {
    let mut pending: Vec<&Pending> = pending.iter().collect();
    pending.sort_by(|a, b| b.created_at.cmp(&a.created_at));
    Page(
        StatusCode::OK,
        html! {
            @if pending.is_empty() {
                tr.empty { td colspan="8" { "Nothing is waiting for a decision." } }
            }
            @for p in &pending {
                @let (waited, left) = p.times();
                tr data-id=(p.id) {
                    td data-label="Request" { a href={ "/console/approvals/" (p.id) } { strong { (p.id) } } }
                    td data-label="User" { (p.user) @if !p.groups.is_empty() { br; small { (p.groups.join(", ")) } } }
                    td data-label="Provider" { (p.provider) }
                    td data-label="Region" { (p.region.as_deref().unwrap_or("—")) }
                    td data-label="Model" { (p.model.as_deref().unwrap_or("—")) }
                    td data-label="Rule" { code { (p.rule) } " " small { (p.mode.as_str()) } }
                    td data-label="Waiting" { (seconds(waited)) }
                    td data-label="Left" { span.countdown data-left=(left) { (seconds(left)) } }
                }
            }
        },
    )
}

pub fn approvals(viewer: &Viewer, pending: &[Pending], grants: &[Grant]) -> Page {
    let rows = approval_rows(pending).1;
    layout(
        Some(viewer),
        "Approvals",
        "approvals",
        html! {
            h1 { "Waiting for a decision " span.badge #pending-count { (pending.len()) } }
            table.list #approvals data-refresh="/console/approvals/rows" {
                thead { tr { th { "Request" } th { "User" } th { "Provider" } th { "Region" } th { "Model" } th { "Rule" } th { "Waiting" } th { "Left" } } }
                tbody { (rows) }
            }
            p.hint { "New requests appear here by themselves. Open one to see what would leave; on its page, " kbd { "a" } " approves and " kbd { "d" } " denies." }
            h2 { "Grants in force" }
            @if grants.is_empty() {
                p.note { "No grant is open." }
            } @else {
                table.list {
                    thead { tr { th { "Grant" } th { "User" } th { "Rule" } th { "Provider" } th { "By" } th { "Until" } th {} } }
                    tbody {
                        @for g in grants {
                            tr {
                                td data-label="Grant" { code { (g.id) } }
                                td data-label="User" { (g.user) }
                                td data-label="Rule" { code { (g.rule) } }
                                td data-label="Provider" { (g.provider) }
                                td data-label="By" { (g.by) }
                                td data-label="Until" { time { (g.until) } }
                                td {
                                    form method="post" action={ "/console/grants/" (g.id) "/revoke" } {
                                        input type="hidden" name="csrf" value=(viewer.csrf);
                                        button.danger type="submit" { "Revoke" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

pub fn approval(viewer: &Viewer, p: &Pending, _no_break_glass: bool) -> Page {
    let (waited, left) = p.times();
    let max_grant = p.max_grant.as_secs();
    let windows: Vec<(&str, u64)> = [
        ("15m", 900),
        ("1h", 3600),
        ("8h", 8 * 3600),
        ("24h", 86_400),
    ]
    .into_iter()
    .filter(|(_, s)| *s <= max_grant)
    .collect();
    let can_decide = viewer.may(&[Role::Approver]);
    layout(
        Some(viewer),
        &format!("Approval {}", p.id),
        "approvals",
        html! {
            p { a href="/console/approvals" { "← All waiting requests" } }
            h1 { "Request " code { (p.id) } }
            dl.facts {
                dt { "User" } dd { (p.user) }
                dt { "Groups" } dd { (if p.groups.is_empty() { "—".to_owned() } else { p.groups.join(", ") }) }
                dt { "Provider" } dd { (p.provider) " · " code { (p.host) (p.path) } }
                dt { "Region" } dd { (p.region.as_deref().unwrap_or("—")) }
                dt { "Model" } dd { (p.model.as_deref().unwrap_or("—")) }
                dt { "Rule" } dd { code { (p.rule) } " (" (p.mode.as_str()) ")" }
                dt { "Waiting" } dd { (seconds(waited)) ", " span.countdown data-left=(left) { (seconds(left)) } " left" }
                dt { "Size" } dd { (p.body_bytes) " bytes" }
                @if !p.approvers.is_empty() { dt { "Approvers" } dd { (p.approvers.join(", ")) } }
            }
            @if can_decide {
                section.decide {
                    form #approve method="post" action={ "/console/approvals/" (p.id) "/decide" } {
                        input type="hidden" name="csrf" value=(viewer.csrf);
                        input type="hidden" name="decision" value="approve";
                        label for="window" { "Approve" }
                        select #window name="window" {
                            option value="once" { "this request only" }
                            @for (w, _) in &windows { option value=(w) { "and the user's requests under this rule for " (w) } }
                        }
                        input type="text" name="reason" placeholder="Reason (optional)" aria-label="Reason for approving";
                        button.primary #approve-button type="submit" accesskey="a" { "Approve " kbd { "a" } }
                    }
                    form #deny method="post" action={ "/console/approvals/" (p.id) "/decide" } {
                        input type="hidden" name="csrf" value=(viewer.csrf);
                        input type="hidden" name="decision" value="deny";
                        label for="deny-reason" { "Deny" }
                        input #deny-reason type="text" name="reason" placeholder="Reason, shown to the user" required;
                        button.danger #deny-button type="submit" { "Deny " kbd { "d" } }
                    }
                }
            }
            h2 { "Findings" }
            @if p.findings.is_empty() {
                p.note { "No masking findings." }
            } @else {
                table.list {
                    thead { tr { th { "Rule" } th { "Category" } th { "Where" } } }
                    tbody { @for f in &p.findings { tr { td data-label="Rule" { code { (f.rule) } } td data-label="Category" { (f.category) } td data-label="Where" { code { (f.path) } } } } }
                }
            }
            h2 { "The request as it would leave (masked)" }
            (conversation(&p.body))
        },
    )
}

pub fn decided(viewer: &Viewer, id: &str, verdict: Option<&Verdict>) -> Page {
    layout(
        Some(viewer),
        &format!("Approval {id}"),
        "approvals",
        html! {
            section.card {
                @match verdict {
                    Some(v) if v.approved => {
                        h1 { "Approved" }
                        p.ok role="status" { "Request " code { (id) } " was approved by " (v.by)
                            @if let Some(g) = &v.grant { ", with grant " code { (g) } } "." }
                    }
                    Some(v) => {
                        h1 { "Denied" }
                        p.alert role="status" { "Request " code { (id) } " was denied by " (v.by)
                            @if let Some(r) = &v.reason { ": " (r) } "." }
                    }
                    None => {
                        h1 { "Already decided" }
                        p { "Request " code { (id) } " is no longer waiting: it was decided, timed out, or its client gave up." }
                    }
                }
                p { a href="/console/approvals" { "← All waiting requests" } }
            }
        },
    )
}

// --- Conversations ---------------------------------------------------------------------------

/// One turn of a conversation as the console shows it.
struct Turn {
    role: String,
    parts: Vec<Part>,
}

enum Part {
    Text(String),
    /// A tool call, tool result or other structured block: a label and its JSON.
    Block(String, String),
}

fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Array(items) => {
            let texts: Vec<String> = items
                .iter()
                .filter_map(|i| {
                    i.get("text")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                        .or_else(|| i.as_str().map(str::to_owned))
                })
                .collect();
            (!texts.is_empty()).then(|| texts.join("\n"))
        }
        _ => v.get("text").and_then(Value::as_str).map(str::to_owned),
    }
}

fn pretty(v: &Value) -> String {
    // A JSON string that itself holds JSON (OpenAI's tool arguments) is shown parsed.
    if let Some(s) = v.as_str()
        && let Ok(inner) = serde_json::from_str::<Value>(s)
        && inner.is_object()
    {
        return serde_json::to_string_pretty(&inner).unwrap_or_default();
    }
    serde_json::to_string_pretty(v).unwrap_or_default()
}

/// The parts of one message's content, whichever provider's blocks it holds.
fn parts(content: &Value) -> Vec<Part> {
    let blocks = match content {
        Value::String(s) => return vec![Part::Text(s.clone())],
        Value::Array(blocks) => blocks,
        Value::Null => return Vec::new(),
        other => return vec![Part::Block("content".into(), pretty(other))],
    };
    blocks
        .iter()
        .map(|b| {
            let kind = b.get("type").and_then(Value::as_str).unwrap_or("");
            if let Some(t) = b.get("text").and_then(Value::as_str) {
                return Part::Text(t.to_owned());
            }
            if let Some(s) = b.as_str() {
                return Part::Text(s.to_owned());
            }
            match kind {
                "tool_use" | "server_tool_use" => Part::Block(
                    format!(
                        "tool call: {}",
                        b.get("name").and_then(Value::as_str).unwrap_or("?")
                    ),
                    pretty(b.get("input").unwrap_or(&Value::Null)),
                ),
                "tool_result" => match b.get("content") {
                    Some(c) => match text_of(c) {
                        Some(t) => Part::Block("tool result".into(), t),
                        None => Part::Block("tool result".into(), pretty(c)),
                    },
                    None => Part::Block("tool result".into(), String::new()),
                },
                _ => {
                    if let Some(call) = b.get("functionCall") {
                        Part::Block(
                            format!(
                                "tool call: {}",
                                call.get("name").and_then(Value::as_str).unwrap_or("?")
                            ),
                            pretty(call.get("args").unwrap_or(&Value::Null)),
                        )
                    } else if let Some(r) = b.get("functionResponse") {
                        Part::Block(
                            format!(
                                "tool result: {}",
                                r.get("name").and_then(Value::as_str).unwrap_or("?")
                            ),
                            pretty(r.get("response").unwrap_or(&Value::Null)),
                        )
                    } else {
                        Part::Block(
                            if kind.is_empty() {
                                "block".into()
                            } else {
                                kind.to_owned()
                            },
                            pretty(b),
                        )
                    }
                }
            }
        })
        .collect()
}

/// The turns of a request body: Anthropic Messages, OpenAI Chat Completions and Responses,
/// Gemini, Bedrock Converse. `None` when the body is not one of those shapes.
fn turns(body: &Value) -> Option<Vec<Turn>> {
    let mut out = Vec::new();
    let system = body
        .get("system")
        .or_else(|| body.get("instructions"))
        .or_else(|| {
            body.get("systemInstruction")
                .or_else(|| body.get("system_instruction"))
        });
    if let Some(system) = system {
        let parts = match system.get("parts") {
            Some(p) => parts(p),
            None => parts(system),
        };
        if !parts.is_empty() {
            out.push(Turn {
                role: "system".into(),
                parts,
            });
        }
    }
    let messages = body
        .get("messages")
        .or_else(|| body.get("contents"))
        .or_else(|| body.get("input"))?;
    let messages = match messages {
        Value::String(s) => {
            out.push(Turn {
                role: "user".into(),
                parts: vec![Part::Text(s.clone())],
            });
            return Some(out);
        }
        Value::Array(m) => m,
        _ => return None,
    };
    for m in messages {
        let role = m
            .get("role")
            .and_then(Value::as_str)
            .unwrap_or_else(|| m.get("type").and_then(Value::as_str).unwrap_or("item"));
        let mut p = match m.get("content").or_else(|| m.get("parts")) {
            Some(c) => parts(c),
            None => Vec::new(),
        };
        // OpenAI: tool calls beside the content, tool outputs and function calls as items.
        if let Some(calls) = m.get("tool_calls").and_then(Value::as_array) {
            for c in calls {
                let f = c.get("function").unwrap_or(c);
                p.push(Part::Block(
                    format!(
                        "tool call: {}",
                        f.get("name").and_then(Value::as_str).unwrap_or("?")
                    ),
                    pretty(f.get("arguments").unwrap_or(&Value::Null)),
                ));
            }
        }
        match m.get("type").and_then(Value::as_str) {
            Some("function_call") => p.push(Part::Block(
                format!(
                    "tool call: {}",
                    m.get("name").and_then(Value::as_str).unwrap_or("?")
                ),
                pretty(m.get("arguments").unwrap_or(&Value::Null)),
            )),
            Some("function_call_output") => p.push(Part::Block(
                "tool result".into(),
                m.get("output")
                    .map(|o| o.as_str().map_or_else(|| pretty(o), str::to_owned))
                    .unwrap_or_default(),
            )),
            _ => {}
        }
        out.push(Turn {
            role: role.to_owned(),
            parts: p,
        });
    }
    Some(out)
}

/// `text` with every placeholder marked, titled with the kind of value it stands for.
fn highlighted(text: &str) -> Markup {
    const PREFIX: &str = "TOLLGATE_";
    // (plain text before, the placeholder and its rule)
    let mut pieces: Vec<(&str, Option<(&str, String)>)> = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(PREFIX) {
        let end = at
            + PREFIX.len()
            + rest[at + PREFIX.len()..]
                .bytes()
                .take_while(|b| crate::mask::vault::is_placeholder_byte(*b))
                .count();
        let candidate = &rest[at..end];
        if crate::mask::vault::is_placeholder_token(candidate) {
            let kind = &candidate[PREFIX.len()..candidate.len() - 11];
            let rule = kind.to_ascii_lowercase().replace('_', "-");
            pieces.push((&rest[..at], Some((candidate, rule))));
        } else {
            pieces.push((&rest[..end], None));
        }
        rest = &rest[end..];
    }
    pieces.push((rest, None));
    html! {
        @for (plain, ph) in &pieces {
            (plain)
            @if let Some((ph, rule)) = ph { mark.ph title={ "masked: " (rule) } { (ph) } }
        }
    }
}

/// A request body as a conversation (placeholders highlighted), with the raw JSON a click away.
pub fn conversation(body: &[u8]) -> Markup {
    let text = String::from_utf8_lossy(body);
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let turns = parsed.as_ref().and_then(turns);
    let raw = parsed
        .as_ref()
        .and_then(|v| serde_json::to_string_pretty(v).ok())
        .unwrap_or_else(|| text.clone().into_owned());
    html! {
        @if let Some(turns) = turns {
            ol.conversation {
                @for t in &turns {
                    li class={ "turn " (t.role.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').collect::<String>()) } {
                        div.role { (t.role) }
                        @for p in &t.parts {
                            @match p {
                                Part::Text(s) => div.text { (highlighted(s)) },
                                Part::Block(label, json) => details.block open {
                                    summary { (label) }
                                    pre { (highlighted(json)) }
                                },
                            }
                        }
                    }
                }
            }
        }
        details.raw open[turns_missing(&parsed)] {
            summary { "Raw JSON" }
            pre { (highlighted(&raw)) }
        }
    }
}

fn turns_missing(parsed: &Option<Value>) -> bool {
    parsed.as_ref().and_then(turns).is_none()
}

/// The answer of an exchange: the stream's text, or the JSON answer's text, placeholders marked.
fn answer(r: &Record) -> Markup {
    let text = r.answer_text().or_else(|| {
        let v: Value = serde_json::from_slice(&r.response_body).ok()?;
        // Anthropic content blocks, OpenAI choices, Responses output, Gemini candidates.
        let t = v
            .get("content")
            .and_then(text_of)
            .or_else(|| {
                v.pointer("/choices/0/message/content")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .or_else(|| {
                v.get("output_text")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .or_else(|| {
                v.get("output").and_then(Value::as_array).map(|items| {
                    items
                        .iter()
                        .filter_map(|i| i.get("content").and_then(text_of))
                        .collect::<Vec<_>>()
                        .join("\n")
                })
            })
            .or_else(|| v.pointer("/candidates/0/content/parts").and_then(text_of))?;
        (!t.is_empty()).then_some(t)
    });
    html! {
        @if let Some(t) = text {
            div.text.answer { (highlighted(&t)) }
        } @else if r.response_body.is_empty() {
            p.note { "No answer body." }
        } @else {
            pre { (highlighted(&String::from_utf8_lossy(&r.response_body))) }
        }
    }
}

// --- Records ----------------------------------------------------------------------------------

fn status_class(r: &Record) -> &'static str {
    match (r.outcome.as_str(), r.status) {
        ("complete", Some(s)) if s < 400 => "ok",
        ("complete", _) => "warn",
        ("client-gone" | "upstream-gone" | "interrupted", _) => "warn",
        _ => "bad",
    }
}

fn findings_of(r: &Record) -> Vec<Value> {
    serde_json::from_str::<Vec<Value>>(&r.findings).unwrap_or_default()
}

fn decision_of(r: &Record) -> Option<String> {
    let a: Value = serde_json::from_str(r.approval.as_deref()?).ok()?;
    a.get("decision").and_then(Value::as_str).map(str::to_owned)
}

fn record_row(id: Option<i64>, r: &Record) -> Markup {
    let live = id.is_none();
    let findings = findings_of(r).len();
    html! {
        tr {
            td data-label="#" { @if let Some(id) = id { a href={ "/console/exchanges/" (id) } { (id) } } @else { "—" } }
            td data-label="Started" { time { (r.started_at.get(..19).unwrap_or(&r.started_at).replace('T', " ")) } }
            td data-label="User" { (r.scope) @if let Some(g) = &r.groups { br; small { (g) } } }
            td data-label="Provider" { (r.provider.as_deref().unwrap_or(&r.host)) @if let Some(reg) = &r.region { br; small { (reg) } } }
            td data-label="Model" { (r.model.as_deref().unwrap_or("—")) }
            td data-label="Outcome" {
                @if live { span.pill.live { "streaming" } }
                @else {
                    span class={ "pill " (status_class(r)) } { (r.outcome) }
                    @if let Some(s) = r.status { " " small { (s) } }
                }
            }
            td data-label="Findings" { @if findings > 0 { span.pill.warn { (findings) } } @else { "—" } }
            td data-label="Approval" { (decision_of(r).unwrap_or_else(|| "—".into())) }
        }
    }
}

pub fn exchanges(viewer: &Viewer, f: &Filters, rows: &[(i64, Record)], live: &[Record]) -> Page {
    let next = (rows.len() == PAGE)
        .then(|| rows.last().map(|(id, _)| *id))
        .flatten();
    let mut older = f.clone();
    older.before_id = next;
    let older = serde_urlencoded::to_string(&older).unwrap_or_default();
    let field = |name: &str, label: &str, value: &str, kind: &str| {
        html! { label { span { (label) } input type=(kind) name=(name) value=(value); } }
    };
    layout(
        Some(viewer),
        "Exchanges",
        "exchanges",
        html! {
            h1 { "Exchanges" }
            form.filters method="get" action="/console/exchanges" {
                (field("since", "From (UTC)", &f.since, "datetime-local"))
                (field("until", "Until (UTC)", &f.until, "datetime-local"))
                (field("user", "User", &f.user, "text"))
                (field("group", "Group", &f.group, "text"))
                (field("provider", "Provider", &f.provider, "text"))
                (field("region", "Region", &f.region, "text"))
                (field("model", "Model", &f.model, "text"))
                (field("status", "Status", &f.status, "text"))
                (field("outcome", "Outcome or refusal", &f.outcome, "text"))
                label { span { "Findings" }
                    select name="findings" {
                        option value="" selected[f.findings.is_empty()] { "any" }
                        option value="yes" selected[f.findings == "yes"] { "with findings" }
                        option value="no" selected[f.findings == "no"] { "without" }
                    }
                }
                label { span { "Approval" }
                    select name="approval" {
                        @for (v, l) in [("", "any"), ("approved", "approved"), ("denied", "denied"), ("timeout", "timed out"), ("abandoned", "abandoned"), ("granted", "by a grant")] {
                            option value=(v) selected[f.approval == v] { (l) }
                        }
                    }
                }
                label { span { "Kind" }
                    select name="kind" {
                        @for (v, l) in [("", "any"), ("exchange", "exchanges"), ("tunnel", "tunnels"), ("connect-refused", "refused CONNECTs"), ("purge", "purges")] {
                            option value=(v) selected[f.kind == v] { (l) }
                        }
                    }
                }
                div.actions { button.primary type="submit" { "Filter" } " " a href="/console/exchanges" { "Clear" } }
            }
            table.list #exchanges {
                thead { tr { th { "#" } th { "Started" } th { "User" } th { "Provider" } th { "Model" } th { "Outcome" } th { "Findings" } th { "Approval" } } }
                tbody {
                    @for r in live { (record_row(None, r)) }
                    @if rows.is_empty() && live.is_empty() { tr.empty { td colspan="8" { "No records match." } } }
                    @for (id, r) in rows { (record_row(Some(*id), r)) }
                }
            }
            nav.pages {
                @if f.before_id.is_some() { a href="/console/exchanges" { "← Newest" } }
                @if next.is_some() { a href={ "/console/exchanges?" (older) } { "Older →" } }
            }
        },
    )
}

fn usage_line(r: &Record) -> Option<String> {
    let u: Value = serde_json::from_str(r.usage.as_deref()?).ok()?;
    let get = |keys: &[&str]| keys.iter().find_map(|k| u.get(*k).and_then(Value::as_u64));
    let input = get(&[
        "input_tokens",
        "prompt_tokens",
        "promptTokenCount",
        "inputTokens",
    ]);
    let output = get(&[
        "output_tokens",
        "completion_tokens",
        "candidatesTokenCount",
        "outputTokens",
    ]);
    Some(match (input, output) {
        (Some(i), Some(o)) => format!("{i} in, {o} out"),
        _ => u.to_string(),
    })
}

pub fn exchange(viewer: &Viewer, id: i64, r: &Record) -> Page {
    let findings = findings_of(r);
    let approval: Option<Value> = r
        .approval
        .as_deref()
        .and_then(|a| serde_json::from_str(a).ok());
    layout(
        Some(viewer),
        &format!("Exchange {id}"),
        "exchanges",
        html! {
            p { a href="/console/exchanges" { "← Exchanges" } " · " a href={ "/console/sessions/" (r.session_id) } { "Its session" } }
            h1 { "Exchange " (id) " " span class={ "pill " (status_class(r)) } { (r.outcome) } }
            dl.facts {
                dt { "Started" } dd { time { (r.started_at) } }
                dt { "User" } dd { (r.scope) @if let Some(g) = &r.groups { " (" (g) ")" } @if let Some(t) = &r.token { " · token " code { (t) } } }
                dt { "Where" } dd { (r.method.as_deref().unwrap_or("")) " " code { (r.host) (r.path.as_deref().unwrap_or("")) } " · " (r.mode) }
                dt { "Provider" } dd { (r.provider.as_deref().unwrap_or("—")) }
                dt { "Region" } dd { (r.region.as_deref().unwrap_or("—")) @if let Some(j) = &r.jurisdiction { " (" (j) ")" } }
                dt { "Model" } dd { (r.model.as_deref().unwrap_or("—")) }
                dt { "Status" } dd { (r.status.map_or("—".to_owned(), |s| s.to_string())) @if let Some(rule) = &r.rule { " · rule " code { (rule) } } }
                dt { "Timing" } dd { "first byte " (r.ttfb_ms.map_or("—".to_owned(), |t| format!("{t} ms"))) ", total " (r.duration_ms) " ms" }
                dt { "Bytes" } dd { (r.bytes_up) " up, " (r.bytes_down) " down" }
                @if let Some(u) = usage_line(r) { dt { "Tokens" } dd { (u) } }
                @if let Some(p) = &r.profile { dt { "Profile" } dd { (p) } }
            }
            @if let Some(a) = &approval {
                section.card.inline {
                    h2 { "Approval" }
                    p {
                        "Rule " code { (a.get("rule").and_then(Value::as_str).unwrap_or("?")) } ": "
                        strong { (a.get("decision").and_then(Value::as_str).unwrap_or("?")) }
                        @if let Some(by) = a.get("by").and_then(Value::as_str) { " by " (by) }
                        @if let Some(reason) = a.get("reason").and_then(Value::as_str) { " — " (reason) }
                        @if let Some(ms) = a.get("waited_ms").and_then(Value::as_u64) { " after " (ms) " ms" }
                        @if a.get("break_glass").and_then(Value::as_bool) == Some(true) { " " span.pill.bad { "break-glass" } }
                    }
                }
            }
            nav.downloads {
                a href={ "/console/exchanges/" (id) "/request" } download { "Request as sent" }
                a href={ "/console/exchanges/" (id) "/response" } download { "Response as received" }
                a href={ "/console/sessions/" (r.session_id) "/har" } download { "Session as HAR" }
            }
            p { "Replay it: " code.copy { "tollgate replay " (id) } " (" code { "--send" } " sends it again through the proxy)" }
            h2 { "Findings" }
            @if findings.is_empty() { p.note { "No masking findings." } } @else {
                table.list {
                    thead { tr { th { "Rule" } th { "Category" } th { "Where" } } }
                    tbody {
                        @for f in &findings {
                            tr {
                                td data-label="Rule" { code { (f.get("rule").and_then(Value::as_str).unwrap_or("?")) } }
                                td data-label="Category" { (f.get("category").and_then(Value::as_str).unwrap_or("")) }
                                td data-label="Where" { code { (f.get("path").and_then(Value::as_str).unwrap_or("")) } }
                            }
                        }
                    }
                }
            }
            h2 { "Prompt, as sent (masked)" }
            @if r.request_body.is_empty() { p.note { "No request body (or retention has cleared it)." } } @else { (conversation(&r.request_body)) }
            h2 { "Answer, as received" }
            (answer(r))
        },
    )
}

pub fn session(
    viewer: &Viewer,
    id: &str,
    rows: &[(i64, Record)],
    earlier: i64,
    paged: bool,
) -> Page {
    let user = rows
        .first()
        .map(|(_, r)| r.scope.clone())
        .unwrap_or_default();
    let first_id = rows.first().map_or(0, |(i, _)| *i);
    let total = earlier + rows.len() as i64;
    layout(
        Some(viewer),
        "Session",
        "exchanges",
        html! {
            p { a href="/console/exchanges" { "← Exchanges" } " · " a href={ "/console/sessions/" (id) "/har" } download { "Download as HAR" } }
            h1 { "Session " code { (id.get(..12).unwrap_or(id)) } }
            p {
                "Exchanges by " (user) ": turns " (earlier + 1) "–" (total)
                @if paged { " · " a href={ "/console/sessions/" (id) } { "latest turns" } }
            }
            @if earlier > 0 {
                p { a href={ "/console/sessions/" (id) "?before_id=" (first_id) } { "← Earlier turns (" (earlier) ")" } }
            }
            ol.turns {
                @for (n, (rid, r)) in rows.iter().enumerate().map(|(n, row)| (n as i64 + earlier, row)) {
                    li.card {
                        h2 {
                            "Turn " (n + 1) " · " a href={ "/console/exchanges/" (rid) } { "exchange " (rid) } " "
                            span class={ "pill " (status_class(r)) } { (r.outcome) }
                        }
                        p.meta {
                            time { (r.started_at.get(..19).unwrap_or(&r.started_at).replace('T', " ")) } " · "
                            (r.model.as_deref().unwrap_or("—")) " · first byte "
                            (r.ttfb_ms.map_or("—".to_owned(), |t| format!("{t} ms"))) ", total " (r.duration_ms) " ms"
                            @if let Some(u) = usage_line(r) { " · " (u) }
                            @if let Some(d) = decision_of(r) { " · approval: " strong { (d) } }
                            @if let Some(rule) = &r.rule { " · rule " code { (rule) } }
                        }
                        @if r.kind == RecordKind::Exchange && !r.request_body.is_empty() {
                            details.prompt {
                                summary { "Prompt as sent" }
                                (conversation(&r.request_body))
                            }
                        }
                        h3 { "Answer" }
                        (answer(r))
                    }
                }
            }
        },
    )
}

pub fn audit(
    viewer: &Viewer,
    last: Option<&Verification>,
    recording: &crate::policy::RecordingPolicy,
    purge: Option<&(i64, Record)>,
    count: i64,
) -> Page {
    layout(
        Some(viewer),
        "Audit",
        "audit",
        html! {
            h1 { "Audit chain" }
            section.card {
                @match last {
                    None => p.note { "Not verified from the console since this process started." },
                    Some(v) => {
                        @if let Some(b) = &v.broken {
                            p.alert role="status" { "Broken: " (b) }
                        } @else {
                            p.ok role="status" { "Intact: " (v.rows) " records verified." }
                        }
                        p.meta { "Verified " time { (v.at) } " by " (v.by) " in " (v.took_ms) " ms." }
                    }
                }
                form method="post" action="/console/audit/verify" {
                    input type="hidden" name="csrf" value=(viewer.csrf);
                    button.primary type="submit" { "Verify now" }
                }
                p.hint { "Every row's hash, its link to the one before, and the head, as " code { "tollgate audit verify" } " checks them; the command also checks the signed checkpoints against the audit key." }
            }
            h2 { "Retention in force" }
            dl.facts {
                dt { "Records" } dd { (count) " in the store" }
                dt { "Bodies kept" } dd { (humantime::format_duration(recording.bodies)) }
                dt { "Records kept" } dd { (humantime::format_duration(recording.records)) }
                dt { "Store failure" } dd { (format!("{:?}", recording.on_store_failure).to_lowercase()) }
                dt { "Last purge" } dd {
                    @match purge {
                        Some((id, r)) => { a href={ "/console/exchanges/" (id) } { time { (r.started_at) } } }
                        None => "none yet",
                    }
                }
            }
        },
    )
}

pub fn policy(
    viewer: &Viewer,
    state: &crate::reload::PolicyState,
    explained: Option<&crate::explain::Explanation>,
    form: &ExplainForm,
) -> Page {
    let policy = state.current();
    let last = state.last();
    // As in the API: file texts may hold credentials (webhook URLs), so only admins see them.
    let full = viewer.caller.roles.contains(&Role::Admin);
    layout(
        Some(viewer),
        "Policy",
        "policy",
        html! {
            h1 { "Policy in force" }
            dl.facts {
                dt { "Fingerprint" } dd { code { (policy.fingerprint()) } }
                dt { "Directory" } dd { (state.dir().map_or("(embedded defaults)".to_owned(), |d| d.display().to_string())) }
                dt { "Last reload" } dd {
                    @if last.ok { span.pill.ok { "ok" } } @else { span.pill.bad { "refused" } }
                    " " time { (last.at) } " (" (format!("{:?}", last.trigger).to_lowercase()) ")"
                    @if let Some(e) = &last.error { p.alert { (e) } }
                }
            }
            pre.summary { (policy.summary()) }
            h2 { "Explain a request" }
            form.explain method="post" action="/console/policy/explain" {
                input type="hidden" name="csrf" value=(viewer.csrf);
                label { span { "Host" } input type="text" name="host" value=(form.host) placeholder="api.anthropic.com" required; }
                label { span { "Path" } input type="text" name="path" value=(form.path) placeholder="/v1/messages"; }
                label { span { "User" } input type="text" name="user" value=(form.user); }
                label { span { "Groups" } input type="text" name="groups" value=(form.groups) placeholder="eng, contractors"; }
                label.wide { span { "Body (JSON)" } textarea name="body" rows="6" spellcheck="false" { (form.body) } }
                div.actions { button.primary type="submit" { "Explain" } }
            }
            @if let Some(e) = explained {
                section.card #explanation {
                    h3 { "Verdict: " span class={ "pill " (if e.is_allowed() { "ok" } else { "bad" }) } { (e.verdict) } }
                    pre { (e.to_string()) }
                    p.hint { "The body is not shown again: it may hold the values the explanation is about." }
                }
            }
            h2 { "Files" }
            @for (name, text) in policy.files() {
                details.file {
                    summary { code { (name) } " " small { (sha256(text)) } }
                    @if full { pre { (text) } } @else { p.note { "Only admins see the files' text (it may hold credentials such as webhook URLs)." } }
                }
            }
        },
    )
}

fn sha256(text: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_marked_with_their_rule_and_everything_is_escaped() {
        let html = highlighted("key <b>TOLLGATE_GITHUB_PAT_K7Q2MD3XAB</b> and TOLLGATE_NOPE")
            .into_string();
        assert_eq!(
            html,
            "key &lt;b&gt;<mark class=\"ph\" title=\"masked: github-pat\">TOLLGATE_GITHUB_PAT_K7Q2MD3XAB</mark>&lt;/b&gt; and TOLLGATE_NOPE"
        );
    }

    #[test]
    fn conversations_of_each_provider_become_turns() {
        let anthropic = serde_json::json!({"system": "be brief", "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": [{"type": "tool_use", "name": "Read", "input": {"file_path": "a"}}]},
            {"role": "user", "content": [{"type": "tool_result", "content": "file text"}]}
        ]});
        let t = turns(&anthropic).unwrap();
        assert_eq!(
            t.iter().map(|t| t.role.as_str()).collect::<Vec<_>>(),
            ["system", "user", "assistant", "user"]
        );
        assert!(matches!(&t[2].parts[0], Part::Block(l, _) if l == "tool call: Read"));
        let openai = serde_json::json!({"messages": [{"role": "assistant", "content": null, "tool_calls": [{"function": {"name": "f", "arguments": "{\"a\":1}"}}]}]});
        let t = turns(&openai).unwrap();
        assert!(matches!(&t[0].parts[0], Part::Block(_, j) if j.contains("\"a\": 1")));
        let gemini =
            serde_json::json!({"contents": [{"role": "user", "parts": [{"text": "hello"}]}]});
        assert!(matches!(&turns(&gemini).unwrap()[0].parts[0], Part::Text(t) if t == "hello"));
        let responses = serde_json::json!({"instructions": "x", "input": [{"type": "function_call_output", "output": "42"}]});
        assert_eq!(turns(&responses).unwrap().len(), 2);
        assert!(turns(&serde_json::json!({"prompt": "x"})).is_none());
    }
}
