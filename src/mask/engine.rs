//! How a request body is taken apart to be masked, level by level.
//!
//! Every string of a JSON body is looked at where it sits:
//! - a string that is itself a JSON document (tool-call `arguments`, MCP results, pasted config)
//!   is walked like the body, its escapes decoded, to any depth up to [`MAX_NESTING`];
//! - a value under a key that names a credential (`"password": "…"`) is judged as the value of
//!   an assignment ([`super::assign`]);
//! - base64 that carries text (data URLs, `data`/`file_data`/`bytes` fields, long base64 runs in
//!   text) is decoded, masked and encoded again; base64 that is not text is an uninspected
//!   attachment, recorded and passed or refused by policy;
//! - everything else is text: the scope's known values first (a value once masked is masked
//!   wherever it reappears), then the detectors, on the text and on a copy with its disguises
//!   undone ([`super::normalize`]).
//!
//! An element of a top-level array that an earlier request already had, byte for byte (a
//! conversation's history, resent every turn), is not walked again: what masking it did then is
//! done again ([`super::recall`]).
//!
//! Every change is an [`Edit`] of the original bytes: a placeholder (or re-encoded base64) put
//! in place of exactly the bytes that spelled the secret, at whatever level of escaping it sat.
//! Placeholders and base64 need no escaping in JSON, so every other byte of the body stays as it
//! was and a body sent back in the next turn masks to the same bytes.

use super::assign::{self, Context};
use super::detect::Rule;
use super::normalize::normalize;
use super::vault::{Known, Vault, is_placeholder_token};
use super::{
    Attachment, AttachmentPolicy, Finding, MaskError, MaskPolicy, RequestFacts, json, recall,
};
use base64::Engine as _;
use std::sync::Arc;

/// Levels of JSON-in-a-string or base64-in-a-string looked into, at most.
pub const MAX_NESTING: usize = 6;
/// Shortest base64 run in text worth decoding (12 bytes of content).
const MIN_BASE64_RUN: usize = 16;

/// A change to the text being masked: bytes `start..end` become `text`.
#[derive(Debug, Clone)]
pub struct Edit {
    pub start: usize,
    pub end: usize,
    pub text: String,
}

/// Object keys that name what a sibling `value` holds.
const PAIR_NAMES: &[&str] = &[
    "name",
    "Name",
    "key",
    "Key",
    "label",
    "Label",
    "id",
    "purpose",
    "ParameterName",
    "SecretId",
    "field",
    "variable",
];
/// Keys whose arrays of strings are a command's words (Codex's `command`, a container's `args`).
const ARGV_KEYS: &[&str] = &[
    "command",
    "cmd",
    "args",
    "argv",
    "arguments",
    "entrypoint",
    "run",
    "exec",
];
/// An array's string longer than this is no command word: it is masked on its own only.
const ARGV_WORD: usize = 512;

/// The members of a JSON Web Key (RFC 7517/7518) that hold private key material.
const JWK_PRIVATE: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "k"];
/// Object keys that hold the value a sibling names.
const PAIR_VALUES: &[&str] = &[
    "value",
    "Value",
    "SecretString",
    "secret_value",
    "plaintext",
];

/// The path of the object a member belongs to: `env[2].value` → `env[2]`. Compared by its
/// segments: a key spelled `env[2]` is not the object at `env[2]`.
fn parent(path: &json::JsonPath<'_>) -> Vec<json::Segment<'static>> {
    let upto = path.0.len().saturating_sub(1);
    path.0[..upto]
        .iter()
        .cloned()
        .map(json::Segment::into_owned)
        .collect()
}

/// An edit's text as it must be written inside a JSON string literal (placeholders and base64
/// need nothing; a quoted placeholder for a number does).
fn escape_for_string(text: String) -> String {
    if text.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
        let quoted = serde_json::to_string(&text).unwrap_or_default();
        quoted[1..quoted.len().saturating_sub(1).max(1)].to_owned()
    } else {
        text
    }
}

/// `text` with `edits` (sorted, not overlapping) applied.
pub fn apply(text: &str, edits: &[Edit]) -> String {
    let mut out = String::with_capacity(text.len() + edits.len() * 16);
    let mut at = 0;
    for e in edits {
        if e.start < at || e.end > text.len() {
            continue;
        }
        out.push_str(&text[at..e.start]);
        out.push_str(&e.text);
        at = e.end;
    }
    out.push_str(&text[at..]);
    out
}

/// One request being masked: what it found so far.
pub struct Scan<'a> {
    policy: &'a MaskPolicy,
    vault: &'a Vault,
    scope: &'a str,
    known: Option<Arc<Known>>,
    pub findings: Vec<Finding>,
    pub attachments: Vec<Attachment>,
    pub facts: RequestFacts,
    /// While a body's resent elements are remembered: every placeholder asked for, and where
    /// in the body each finding, attachment and placeholder came from.
    log: Option<Log>,
    /// Whether resent elements are looked up and remembered ([`recall`]).
    recall: bool,
}

/// What masking a body did, and where, for [`recall`](super::recall).
#[derive(Default)]
struct Log {
    calls: Vec<recall::Call>,
    /// Body offsets of the string that gave each finding, attachment and call.
    findings_at: Vec<usize>,
    attachments_at: Vec<usize>,
    calls_at: Vec<usize>,
}

/// The resent elements of one body: those already known, and those walked.
struct Resent<'r> {
    recall: &'r recall::Recall,
    scope: &'r str,
    policy: u64,
    known: u64,
    /// The start of the element being walked.
    current: &'r std::cell::Cell<usize>,
    place: String,
    found: Vec<(usize, Arc<recall::Entry>)>,
    walked: Vec<(String, usize, usize)>,
}

impl json::Elements for Resent<'_> {
    fn known(&mut self, path: &json::JsonPath<'_>, at: usize, rest: &str) -> Option<usize> {
        self.place = path.to_string();
        let place = recall::Place {
            scope: self.scope,
            policy: self.policy,
            known: self.known,
            place: &self.place,
        };
        if let Some(entry) = self.recall.find(&place, rest) {
            let len = entry.len();
            self.found.push((at, entry));
            return Some(len);
        }
        self.current.set(at);
        None
    }

    fn walked(&mut self, _: &json::JsonPath<'_>, start: usize, end: usize) {
        if end - start >= recall::MIN_ELEMENT {
            self.walked
                .push((std::mem::take(&mut self.place), start, end));
        }
    }
}

/// Where a candidate span came from.
#[derive(Clone, Copy)]
enum Source<'k> {
    Known(&'k super::vault::KnownValue),
    /// A known value found in the decoded copy whose original spelling around it holds more
    /// of a secret: masked under its kind, with the wider span as its value.
    KnownWider(&'k super::vault::KnownValue),
    Rule(usize),
}

/// A hit of the decoded copy, mapped back to `start..end` of `text`, widened to what the
/// detectors find in the original spelling around it that overlaps it. `seen` keeps the
/// windows already scanned, so that a text with many hits is scanned once per stretch.
fn widened<'k>(
    detector: &super::detect::Detector,
    text: &str,
    start: usize,
    end: usize,
    source: Source<'k>,
    seen: &mut Vec<(usize, usize, Vec<super::detect::Hit>)>,
) -> (usize, usize, Source<'k>) {
    const AROUND: usize = 512;
    if start >= end || !text.is_char_boundary(start) || !text.is_char_boundary(end) {
        return (start, end, source);
    }
    let window = match seen.iter().position(|&(s, e, _)| s <= start && end <= e) {
        Some(i) => i,
        None => {
            let line_start = text[..start].rfind('\n').map_or(0, |n| n + 1);
            let line_end = text[end..].find('\n').map_or(text.len(), |n| end + n);
            let mut s = line_start.max(start.saturating_sub(AROUND));
            while !text.is_char_boundary(s) {
                s -= 1;
            }
            let mut e = line_end.min(end + AROUND);
            while !text.is_char_boundary(e) {
                e += 1;
            }
            let hits = detector.scan(&text[s..e]);
            seen.push((s, e, hits));
            seen.len() - 1
        }
    };
    let (offset, hits) = (seen[window].0, &seen[window].2);
    let (mut ws, mut we, mut rule) = (start, end, None);
    for hit in hits {
        let (hs, he) = (offset + hit.start, offset + hit.end);
        if hs < end && start < he && (hs < ws || he > we) {
            ws = ws.min(hs);
            we = we.max(he);
            rule = Some(hit.rule);
        }
    }
    match (rule, source) {
        (None, _) => (start, end, source),
        (Some(_), Source::Rule(r)) => (ws, we, Source::Rule(r)),
        (Some(r), Source::KnownWider(_)) => (ws, we, Source::Rule(r)),
        (Some(_), Source::Known(k)) => (ws, we, Source::KnownWider(k)),
    }
}

struct Candidate<'k> {
    start: usize,
    end: usize,
    source: Source<'k>,
}

/// A hit that runs over several lines of a file shown with line numbers (a private key in a
/// Read tool's output) is masked line by line, each line's text without its number: the model
/// still sees the file's lines, and when it writes the file (without the numbers) each line
/// comes back as it was.
fn split_at_gutters<'k>(text: &str, found: Vec<Candidate<'k>>) -> Vec<Candidate<'k>> {
    if !found.iter().any(|c| text[c.start..c.end].contains('\n')) {
        return found;
    }
    let mut out = Vec::with_capacity(found.len());
    for c in found {
        let span = &text[c.start..c.end];
        let numbered = span.contains('\n')
            && matches!(c.source, Source::Rule(_))
            && span
                .split('\n')
                .skip(1)
                .all(|line| assign::gutter_len(line) > 0);
        if !numbered {
            out.push(c);
            continue;
        }
        let mut at = c.start;
        for line in span.split('\n') {
            let skip = if at == c.start {
                0
            } else {
                assign::gutter_len(line)
            };
            let piece = line[skip..].trim_end_matches('\r');
            if !piece.is_empty() {
                out.push(Candidate {
                    start: at + skip,
                    end: at + skip + piece.len(),
                    source: c.source,
                });
            }
            at += line.len() + 1;
        }
    }
    out
}

fn overlaps(c: &[Candidate<'_>], start: usize, end: usize) -> bool {
    c.iter().any(|k| start < k.end && k.start < end)
}

impl<'a> Scan<'a> {
    pub fn new(policy: &'a MaskPolicy, vault: &'a Vault, scope: &'a str) -> Self {
        Self {
            policy,
            vault,
            scope,
            known: vault.known(scope),
            findings: Vec::new(),
            attachments: Vec::new(),
            facts: RequestFacts::default(),
            log: None,
            recall: true,
        }
    }

    /// A scan that neither uses nor makes [`recall`] entries: for a body masked once already.
    pub fn without_recall(mut self) -> Self {
        self.recall = false;
        self
    }

    /// Whether the scope's known values changed since this scan began: this body held values
    /// to look for that were not known yet, and they may also stand elsewhere in it.
    pub fn learned(&self) -> bool {
        let generation = |k: &Option<Arc<Known>>| k.as_ref().map_or(0, |k| k.generation());
        generation(&self.vault.known(self.scope)) != generation(&self.known)
    }

    /// The placeholder for `value`, from the vault, noted when a body's elements are
    /// remembered.
    fn placeholder(
        &mut self,
        known: bool,
        kind: &Arc<str>,
        category: &Arc<str>,
        value: &str,
        restore: bool,
    ) -> String {
        if let Some(log) = &mut self.log {
            log.calls.push(recall::Call {
                known,
                kind: kind.clone(),
                category: category.clone(),
                value: super::vault::Secret::new(value),
                restore,
            });
        }
        ask(
            self.vault, self.scope, known, kind, category, value, restore,
        )
    }

    /// Notes that what was found since the last note came from the string at `at`.
    fn note(&mut self, at: usize) {
        if let Some(log) = &mut self.log {
            log.findings_at.resize(self.findings.len(), at);
            log.attachments_at.resize(self.attachments.len(), at);
            log.calls_at.resize(log.calls.len(), at);
        }
    }

    /// Masks a JSON document; `None` when `doc` is not one. `prefix` names the string it sits
    /// in, for findings (`input[1].arguments>`).
    pub fn document(
        &mut self,
        doc: &str,
        prefix: &str,
        depth: usize,
    ) -> Result<Result<Vec<Edit>, json::JsonError>, MaskError> {
        let mut edits = Vec::new();
        // Name/value pairs (`{"name": "DB_PASSWORD", "value": "…"}`, secret stores, 1Password
        // fields): values seen, and the objects whose name field names a credential.
        // (object, span, value, whether it is a number, whose placeholder needs quotes)
        let mut pair_values: Vec<(Vec<json::Segment<'static>>, usize, usize, String, bool)> =
            Vec::new();
        let mut named: Vec<(Vec<json::Segment<'static>>, String)> = Vec::new();
        // Cookies as browsers save them (`{"name": "sid", "value": "…", "domain": …}`): the
        // objects with a cookie's attributes, and those with a name that is not a credential's.
        let mut cookie_objects: Vec<Vec<json::Segment<'static>>> = Vec::new();
        let mut cookie_names: Vec<Vec<json::Segment<'static>>> = Vec::new();
        // JSON Web Keys: objects with a `kty`, and the members that hold private key material.
        let mut jwk_objects: Vec<Vec<json::Segment<'static>>> = Vec::new();
        let mut jwk_members: Vec<(Vec<json::Segment<'static>>, usize, usize, String)> = Vec::new();
        // Strings of arrays (an argv: `["mysql", "-u", "root", "--password", "…"]`): a flag and
        // its value are two strings, seen together only as the command line they make.
        // (array, raw start, raw length, text)
        let mut words: Vec<(Vec<json::Segment<'static>>, usize, usize, String)> = Vec::new();
        // Tool calls that print a secret, and their answers (`op read …` and what it printed).
        let mut calls = super::printed::Calls::default();
        // A body's resent elements (`messages[0..n]`, `tools`): those masked before are not
        // walked again, and those walked are remembered for the next turn.
        let current = std::cell::Cell::new(usize::MAX);
        let vault: &'a Vault = self.vault;
        let mut resent = match vault.recall() {
            Some(recall) if self.recall && depth == 0 && prefix.is_empty() => {
                self.log = Some(Log::default());
                Some(Resent {
                    recall,
                    scope: self.scope,
                    policy: self.policy.id,
                    known: self.known.as_ref().map_or(0, |k| k.generation()),
                    current: &current,
                    place: String::new(),
                    found: Vec::new(),
                    walked: Vec::new(),
                })
            }
            _ => None,
        };
        let remembering = resent.is_some();
        // Each walked element's first message text: (element start, offset, text).
        let mut firsts: Vec<(usize, usize, String)> = Vec::new();
        let mut last_at = 0;
        let elements = resent.as_mut().map(|r| r as &mut dyn json::Elements);
        let walked = json::walk_values_with(
            doc,
            |s| -> Result<(), MaskError> {
                if remembering {
                    self.note(last_at);
                    last_at = s.raw_start;
                }
                let path = || format!("{prefix}{}", s.path);
                if s.is_number {
                    // `"pin": 48213377`: a number under a credential key is one too.
                    if let Some(key) = s.key_through_arrays()
                        && let Some(rule) = self.policy.detector.field_rule()
                        && s.text.len() >= 6
                        && s.text.bytes().all(|b| b.is_ascii_digit())
                        && assign::is_credential_key(key)
                    {
                        let mut e = self.replace(rule, s.text, 0, s.text.len(), &path)?;
                        e.text = format!("\"{}\"", e.text);
                        edits.push(Edit {
                            start: s.raw_start,
                            end: s.raw_start + s.raw.len(),
                            text: e.text,
                        });
                    } else if let Some(k) = s.key()
                        && PAIR_VALUES.contains(&k)
                        && s.text.len() >= 6
                        && s.text.bytes().all(|b| b.is_ascii_digit())
                    {
                        // `{"name": "DB_PASSWORD", "value": 48213377}`: judged with its name.
                        let end = s.raw_start + s.raw.len();
                        let text = s.text.to_owned();
                        pair_values.push((parent(s.path), s.raw_start, end, text, true));
                    }
                    return Ok(());
                }
                if depth == 0 {
                    if !s.is_key {
                        calls.notice(&s);
                        self.facts.notice(s.path, s.text, s.raw_start);
                        if remembering
                            && firsts.last().is_none_or(|f| f.0 != current.get())
                            && RequestFacts::holds_a_message(s.path)
                        {
                            firsts.push((current.get(), s.raw_start, s.text.to_owned()));
                        }
                    } else if let [json::Segment::Key(k)] = s.path.0.as_slice() {
                        self.facts.notice_key(k);
                    }
                }
                let local = if s.is_key {
                    self.text(s.text, &path, depth)?
                } else {
                    if matches!(s.path.0.last(), Some(json::Segment::Index(_))) {
                        let word = if s.text.len() > ARGV_WORD || s.text.contains('\n') {
                            String::new()
                        } else {
                            s.text.to_owned()
                        };
                        words.push((parent(s.path), s.raw_start, s.raw.len(), word));
                    }
                    if let Some(k) = s.key() {
                        if k == "kty" {
                            jwk_objects.push(parent(s.path));
                        } else if JWK_PRIVATE.contains(&k) && s.text.len() >= 16 {
                            let (start, end) = s.raw_span(0, s.text.len());
                            jwk_members.push((parent(s.path), start, end, s.text.to_owned()));
                        }
                        if PAIR_NAMES.contains(&k) || (k == "type" && s.text == "CONCEALED") {
                            let name = s.text.rsplit(['/', '.', ':']).next().unwrap_or(s.text);
                            if k == "type" || assign::is_credential_key(name) {
                                named.push((parent(s.path), name.to_owned()));
                            } else if matches!(k, "name" | "Name") {
                                cookie_names.push(parent(s.path));
                            }
                        } else if PAIR_VALUES.contains(&k) {
                            let (start, end) = s.raw_span(0, s.text.len());
                            let text = s.text.to_owned();
                            let object = parent(s.path);
                            // `"db_password": {"sensitive": true, "value": "…"}` (`terraform
                            // output -json`): the object's own name names its value.
                            if let [.., json::Segment::Key(name), json::Segment::Key(_)] =
                                s.path.0.as_slice()
                                && assign::is_credential_key(name)
                            {
                                named.push((object.clone(), name.to_string()));
                            }
                            pair_values.push((object, start, end, text, false));
                        } else if matches!(k, "domain" | "sameSite" | "samesite") {
                            cookie_objects.push(parent(s.path));
                        }
                    }
                    self.value(
                        s.text,
                        host_keyed_token(&s.path.0).or(s.key_through_arrays()),
                        &path,
                        depth,
                    )?
                };
                for e in local {
                    let (start, end) = s.raw_span(e.start, e.end);
                    edits.push(Edit {
                        start,
                        end,
                        text: escape_for_string(e.text),
                    });
                }
                Ok(())
            },
            elements,
        );
        // A failure leaves the log as it is: at the top it refuses the request, and a nested
        // document that fails is read as text, the rest of the body still noted.
        match walked {
            Err(e) => return Ok(Err(e)),
            Ok(Err(e)) => return Err(e),
            Ok(Ok(())) if remembering => self.note(last_at),
            Ok(Ok(())) => {}
        }
        let cookie_rule = self.policy.detector.rule_index("cookie-header");
        if let Some(rule) = self.policy.detector.field_rule() {
            for (object, start, end, value, number) in pair_values {
                let Some((_, name)) = named.iter().find(|(o, _)| *o == object) else {
                    if let Some(rule) = cookie_rule
                        && cookie_objects.contains(&object)
                        && cookie_names.contains(&object)
                        && !edits.iter().any(|e| e.start < end && start < e.end)
                        && !is_placeholder_token(&value)
                        && assign::has_secret_cookie(&value)
                    {
                        let path = || format!("{prefix}{}.value", json::JsonPath(object.clone()));
                        edits.push(self.mask_member(
                            rule,
                            &value,
                            start,
                            end,
                            &path,
                            remembering,
                        )?);
                    }
                    continue;
                };
                if edits.iter().any(|e| e.start < end && start < e.end)
                    || !assign::judge(name, &value, Context::Literal)
                {
                    continue;
                }
                let path = || match object.is_empty() {
                    true => format!("{prefix}.value"),
                    false => format!("{prefix}{}.value", json::JsonPath(object.clone())),
                };
                let e = self.replace(rule, &value, 0, value.len(), &path);
                if remembering {
                    self.note(start);
                }
                let text = e?.text;
                edits.push(Edit {
                    start,
                    end,
                    text: if number { format!("\"{text}\"") } else { text },
                });
            }
            edits.sort_by_key(|e| e.start);
        }
        if let Some(rule) = self.policy.detector.rule_index("jwk-private-key") {
            let mut added = false;
            for (object, start, end, value) in jwk_members {
                if !jwk_objects.contains(&object)
                    || edits.iter().any(|e| e.start < end && start < e.end)
                {
                    continue;
                }
                let path = || format!("{prefix}{}", json::JsonPath(object.clone()));
                edits.push(self.mask_member(rule, &value, start, end, &path, remembering)?);
                added = true;
            }
            if added {
                edits.sort_by_key(|e| e.start);
            }
        }
        self.command_lines(doc, prefix, depth, &words, &mut edits, remembering)?;
        self.printed(doc, &calls, &mut edits, remembering)?;
        if let Some(resent) = resent {
            self.settle(doc, resent, &firsts, &mut edits);
            edits.sort_by_key(|e| e.start);
        }
        Ok(Ok(edits))
    }

    /// Masks a member's `value`, which stands at `start..end` of the document, with `rule`
    /// (finding, placeholder, edit), noting where it was found when elements are remembered.
    fn mask_member(
        &mut self,
        rule: usize,
        value: &str,
        start: usize,
        end: usize,
        path: &dyn Fn() -> String,
        remembering: bool,
    ) -> Result<Edit, MaskError> {
        let e = self.replace(rule, value, 0, value.len(), path);
        if remembering {
            self.note(start);
        }
        Ok(Edit {
            start,
            end,
            text: e?.text,
        })
    }

    /// Masks what the arrays of strings that are a command's words hold as the command line
    /// they make (`["docker", "login", "-p", "…"]`), where nothing masked it in its own string.
    /// An array counts when it sits under a command's key or one of its words is a flag.
    fn command_lines(
        &mut self,
        doc: &str,
        prefix: &str,
        depth: usize,
        words: &[(Vec<json::Segment<'static>>, usize, usize, String)],
        edits: &mut Vec<Edit>,
        remembering: bool,
    ) -> Result<(), MaskError> {
        let is_flag = |w: &str| {
            w.len() >= 2 && w.starts_with('-') && w.as_bytes()[1].is_ascii_alphanumeric()
                || w.starts_with("--")
        };
        let mut added = false;
        for array in words.chunk_by(|a, b| a.0 == b.0) {
            if array.len() < 2 {
                continue;
            }
            // A name and its value as a pair (`"headers": [["X-API-Key", "…"]]`).
            if array.len() == 2
                && assign::is_credential_key(&array[0].3)
                && let Some(rule) = self.policy.detector.field_rule()
            {
                let (_, raw_start, raw_len, value) = &array[1];
                let from = assign::strip_scheme(value);
                let (start, end) = (*raw_start, raw_start + raw_len);
                if from < value.len()
                    && assign::judge(&array[0].3, &value[from..], Context::Literal)
                    && !edits.iter().any(|x| x.start < end && start < x.end)
                {
                    let path = || format!("{prefix}{}", json::JsonPath(array[1].0.clone()));
                    let e = self.replace(rule, &value[from..], from, value.len(), &path)?;
                    let (s, t) = json::raw_span_in(&doc[start..end], from, value.len());
                    if remembering {
                        self.note(start);
                    }
                    edits.push(Edit {
                        start: start + s,
                        end: start + t,
                        text: escape_for_string(e.text),
                    });
                    added = true;
                    continue;
                }
            }
            let under_a_command_key = array[0].0.iter().rev().find_map(|seg| match seg {
                json::Segment::Key(k) => Some(ARGV_KEYS.contains(&k.as_ref())),
                json::Segment::Index(_) => None,
            });
            if under_a_command_key != Some(true) && !array.iter().any(|w| is_flag(&w.3)) {
                continue;
            }
            // The words joined by spaces; a word too long for one stands as `_`.
            let mut line = String::new();
            let mut starts = Vec::with_capacity(array.len());
            // A word masked in its own string already stands in the line as masked, so it is
            // neither found nor counted twice.
            let mut masked = vec![false; array.len()];
            for (i, (_, raw_start, raw_len, word)) in array.iter().enumerate() {
                if !line.is_empty() {
                    line.push(' ');
                }
                starts.push(line.len());
                let (from, to) = (*raw_start, raw_start + raw_len);
                let inside: Vec<Edit> = edits
                    .iter()
                    .filter(|e| e.start < to && from < e.end)
                    .map(|e| Edit {
                        start: e.start.saturating_sub(from),
                        end: (e.end - from).min(*raw_len),
                        text: e.text.clone(),
                    })
                    .collect();
                if word.is_empty() || (!inside.is_empty() && doc[from..to].contains('\\')) {
                    line.push('_');
                    masked[i] = !inside.is_empty();
                } else if inside.is_empty() {
                    line.push_str(word);
                } else {
                    line.push_str(&apply(word, &inside));
                    masked[i] = true;
                }
            }
            let path = || format!("{prefix}{}", json::JsonPath(array[0].0.clone()));
            let before = self.findings.len();
            for e in self.text(&line, &path, depth)? {
                let Some(i) = starts.iter().rposition(|&at| at <= e.start) else {
                    continue;
                };
                let (_, raw_start, raw_len, word) = &array[i];
                let (a, b) = (e.start - starts[i], e.end - starts[i]);
                if b > word.len() {
                    // A hit across words (a key whose lines are words of their own): the part
                    // of each word it covers is masked, each under a placeholder of its own.
                    let finding = self.findings[before..]
                        .iter()
                        .find(|f| f.offset == e.start)
                        .map(|f| (f.rule.clone(), f.category.clone()));
                    let Some((kind, category)) = finding else {
                        continue;
                    };
                    let restore = self
                        .policy
                        .detector
                        .rule_named(&kind)
                        .is_none_or(|r| r.restore);
                    for (k, (_, raw_start, raw_len, word)) in array.iter().enumerate().skip(i) {
                        let at = starts[k];
                        if at >= e.end {
                            break;
                        }
                        let (a, b) = (e.start.max(at) - at, (e.end - at).min(word.len()));
                        if masked[k] || a >= b || word.is_empty() {
                            continue;
                        }
                        let piece = &word[a..b];
                        added |= self.edit_in_string(
                            doc,
                            (*raw_start, *raw_len),
                            (a, b),
                            edits,
                            remembering,
                            |m| m.placeholder(false, &kind, &category, piece, restore),
                        );
                    }
                    continue;
                }
                if word.is_empty() || masked[i] {
                    continue;
                }
                added |= self.edit_in_string(
                    doc,
                    (*raw_start, *raw_len),
                    (a, b),
                    edits,
                    remembering,
                    |_| e.text,
                );
            }
        }
        if added {
            edits.sort_by_key(|e| e.start);
        }
        Ok(())
    }

    /// Puts what `text` makes (a placeholder) in place of `a..b` of a decoded string that stands
    /// at `raw` (start, length) in `doc`, unless an edit is there already: whether it did.
    fn edit_in_string(
        &mut self,
        doc: &str,
        (raw_start, raw_len): (usize, usize),
        (a, b): (usize, usize),
        edits: &mut Vec<Edit>,
        remembering: bool,
        text: impl FnOnce(&mut Self) -> String,
    ) -> bool {
        let (s, t) = json::raw_span_in(&doc[raw_start..raw_start + raw_len], a, b);
        let (start, end) = (raw_start + s, raw_start + t);
        if edits.iter().any(|x| x.start < end && start < x.end) {
            return false;
        }
        if remembering {
            self.note(raw_start);
        }
        let text = escape_for_string(text(self));
        edits.push(Edit { start, end, text });
        true
    }

    /// Masks what tool calls that print a secret printed (the one-word lines of their
    /// answers), where nothing else masked it.
    fn printed(
        &mut self,
        doc: &str,
        calls: &super::printed::Calls,
        edits: &mut Vec<Edit>,
        remembering: bool,
    ) -> Result<(), MaskError> {
        let answers = calls.answers();
        let Some(rule) = self.policy.detector.rule_index("command-output") else {
            return Ok(());
        };
        let mut added = false;
        for (at, raw_start, raw_end, text) in answers {
            let raw = &doc[raw_start..raw_end];
            for (start, end, value) in super::printed::printed_values(text) {
                let (s, e) = json::raw_span_in(raw, start, end);
                let (start, end) = (raw_start + s, raw_start + e);
                if edits.iter().any(|e| e.start < end && start < e.end) {
                    continue;
                }
                let path = || json::JsonPath(at.to_vec()).to_string();
                edits.push(self.mask_member(rule, &value, start, end, &path, remembering)?);
                added = true;
            }
        }
        if added {
            edits.sort_by_key(|e| e.start);
        }
        Ok(())
    }

    /// Remembers what masking each walked element did, and does what the known ones did when
    /// they were walked: their edits, findings, attachments, placeholders and first message.
    fn settle(
        &mut self,
        doc: &str,
        resent: Resent<'_>,
        firsts: &[(usize, usize, String)],
        edits: &mut Vec<Edit>,
    ) {
        let log = self.log.take().unwrap_or_default();
        let policy = resent.policy;
        for (place, start, end) in resent.walked {
            let within = |at: &&usize| (start..end).contains(*at);
            let at = recall::Place {
                scope: self.scope,
                policy,
                known: resent.known,
                place: &place,
            };
            let of = |e: &Edit| Edit {
                start: e.start - start,
                end: e.end - start,
                text: e.text.clone(),
            };
            resent.recall.remember(
                &at,
                &doc[start..end],
                edits
                    .iter()
                    .filter(|e| e.start >= start && e.end <= end)
                    .map(of)
                    .collect(),
                pick(&self.findings, &log.findings_at, within),
                pick(&self.attachments, &log.attachments_at, within),
                pick(&log.calls, &log.calls_at, within),
                firsts
                    .iter()
                    .find(|f| f.0 == start && (start..end).contains(&f.1))
                    .map(|f| (f.1 - start, f.2.clone())),
            );
        }
        for (start, entry) in resent.found {
            edits.extend(entry.edits.iter().map(|e| Edit {
                start: start + e.start,
                end: start + e.end,
                text: e.text.clone(),
            }));
            self.findings.extend(entry.findings.iter().cloned());
            self.attachments.extend(entry.attachments.iter().cloned());
            for c in &entry.calls {
                let _ = ask(
                    self.vault,
                    self.scope,
                    c.known,
                    &c.kind,
                    &c.category,
                    c.value.expose(),
                    c.restore,
                );
            }
            if let Some((offset, text)) = &entry.first_message {
                self.facts.notice_message(text, start + offset);
            }
        }
    }

    /// One JSON string value (or a decoded payload): nested JSON, attachment, text, and the
    /// meaning its key gives it.
    fn value(
        &mut self,
        text: &str,
        key: Option<&str>,
        path: &dyn Fn() -> String,
        depth: usize,
    ) -> Result<Vec<Edit>, MaskError> {
        if depth < MAX_NESTING {
            let t = text.trim_start();
            if t.starts_with('{') || t.starts_with('[') {
                let noted = (self.findings.len(), self.attachments.len());
                match self.document(text, &format!("{}>", path()), depth + 1)? {
                    Ok(edits) => return Ok(edits),
                    // Not a document after all: what the walk noted before it failed was never
                    // masked, so it is not reported; the string is read as text below.
                    Err(_) => {
                        self.findings.truncate(noted.0);
                        self.attachments.truncate(noted.1);
                    }
                }
            }
            if let Some(edits) = self.attachment(text, key, path, depth)? {
                return Ok(edits);
            }
        }
        let edits = self.text(text, path, depth)?;
        if edits.is_empty()
            && let Some(key) = key
            && let Some(rule) = self.policy.detector.field_rule()
            && assign::is_credential_key(key)
        {
            let start = text.len() - text.trim_start().len();
            let start = start + assign::strip_scheme(&text[start..]);
            let end = text.trim_end().len();
            if start < end && assign::judge(key, &text[start..end], Context::Literal) {
                return Ok(vec![self.replace(
                    rule,
                    &text[start..end],
                    start,
                    end,
                    path,
                )?]);
            }
        }
        Ok(edits)
    }

    /// A data URL, or a base64 payload under a key that holds file contents.
    fn attachment(
        &mut self,
        text: &str,
        key: Option<&str>,
        path: &dyn Fn() -> String,
        depth: usize,
    ) -> Result<Option<Vec<Edit>>, MaskError> {
        if let Some(rest) = text.strip_prefix("data:")
            && let Some((meta, _)) = rest.split_once(',')
            && meta.to_ascii_lowercase().ends_with(";base64")
        {
            let media = meta.split(';').next().unwrap_or("").to_ascii_lowercase();
            let offset = "data:".len() + meta.len() + 1;
            return self
                .base64_payload(text, offset, Some(media), path, depth)
                .map(Some);
        }
        if matches!(key, Some("data" | "file_data" | "bytes" | "content_base64"))
            && text.len() >= MIN_BASE64_RUN
            && base64_alphabet(text.as_bytes()).is_some()
        {
            return self.base64_payload(text, 0, None, path, depth).map(Some);
        }
        Ok(None)
    }

    /// Decodes `text[offset..]`; text is masked and encoded again, anything else is recorded as
    /// an attachment that could not be inspected.
    fn base64_payload(
        &mut self,
        text: &str,
        offset: usize,
        media: Option<String>,
        path: &dyn Fn() -> String,
        depth: usize,
    ) -> Result<Vec<Edit>, MaskError> {
        let payload = &text[offset..];
        let Some((bytes, engine)) = decode_base64(payload) else {
            return self.text(text, path, depth);
        };
        if let Some((decoded, form)) = as_text(&bytes, media.as_deref()) {
            let inner_path = || format!("{}>base64", path());
            let inner = self.value(&decoded, None, &inner_path, depth + 1)?;
            if inner.is_empty() {
                return Ok(Vec::new());
            }
            return Ok(vec![Edit {
                start: offset,
                end: text.len(),
                text: engine.encode(encode_masked(&decoded, &inner, form, &bytes)),
            }]);
        }
        // Not base64 of text: maybe not base64 at all (`{"data": "xoxb-…"}`), so read it as text
        // too; only what holds nothing is counted as an attachment.
        let as_plain = self.text(text, path, depth)?;
        if !as_plain.is_empty() {
            return Ok(as_plain);
        }
        if payload.len() < 64 {
            return Ok(Vec::new());
        }
        let media_type = media
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| sniff(&bytes).to_owned());
        self.attachments.push(Attachment {
            path: path(),
            media_type: media_type.clone(),
            bytes: bytes.len(),
        });
        if self.policy.attachments == AttachmentPolicy::Refuse {
            return Err(MaskError::Attachment {
                media_type,
                path: path(),
            });
        }
        Ok(Vec::new())
    }

    /// Text: known values, detectors (on the text and on its normalized copy), base64 runs.
    pub fn text(
        &mut self,
        text: &str,
        path: &dyn Fn() -> String,
        depth: usize,
    ) -> Result<Vec<Edit>, MaskError> {
        if text.is_empty() {
            return Ok(Vec::new());
        }
        let policy: &'a MaskPolicy = self.policy;
        let detector = &policy.detector;
        let known = self.known.clone();
        let mut found: Vec<Candidate<'_>> = Vec::new();
        match normalize(text) {
            // Nothing disguised: the text as it is.
            None => {
                if let Some(known) = &known {
                    for (start, end, value) in known.find(text) {
                        found.push(Candidate {
                            start,
                            end,
                            source: Source::Known(value),
                        });
                    }
                }
                for hit in detector.scan(text) {
                    if !overlaps(&found, hit.start, hit.end) {
                        found.push(Candidate {
                            start: hit.start,
                            end: hit.end,
                            source: Source::Rule(hit.rule),
                        });
                    } else {
                        // A blocking rule refuses even where a known value overlaps its hit.
                        refuse_if_blocked(detector.rule(hit.rule), path)?;
                    }
                }
            }
            // Escapes, percent-encoding, invisible or full-width characters: the decoded copy
            // is what a reader (or a lenient parser upstream) sees, so that is what is scanned;
            // what is found is masked in the original's spelling.
            Some(n) => {
                let mut escaped_spans = Vec::new();
                let mut copy: Vec<(usize, usize, Source<'_>)> = Vec::new();
                if let Some(known) = &known {
                    for (s, e, value) in known.find(&n.text) {
                        copy.push((s, e, Source::Known(value)));
                    }
                }
                for hit in detector.scan(&n.text) {
                    if !copy.iter().any(|&(s, e, _)| hit.start < e && s < hit.end) {
                        copy.push((hit.start, hit.end, Source::Rule(hit.rule)));
                    } else {
                        // A blocking rule refuses even where a known value overlaps its hit.
                        refuse_if_blocked(detector.rule(hit.rule), path)?;
                    }
                }
                for (s, e, source) in copy {
                    let (start, end) = n.original_span(s, e);
                    // What decoding turned into a line break or a quote may also be part of
                    // the value as written (`pw=ab\ncd`): the original spelling is scanned
                    // around the hit too, and the wider span is masked.
                    let (start, end, source) =
                        widened(detector, text, start, end, source, &mut escaped_spans);
                    if start < end
                        && text.is_char_boundary(start)
                        && text.is_char_boundary(end)
                        && !overlaps(&found, start, end)
                    {
                        // The decoded spelling is remembered too (`p%40ss` in a URL, `p@ss`
                        // later in prose), under a placeholder of its own.
                        if let Source::Rule(rule) = source
                            && n.text[s..e] != text[start..end]
                        {
                            let r = detector.rule(rule);
                            if !r.is_literal_list() && r.action == super::detect::RuleAction::Mask {
                                self.placeholder(
                                    true,
                                    &r.id,
                                    &r.category,
                                    &n.text[s..e],
                                    r.restore,
                                );
                            }
                        }
                        found.push(Candidate { start, end, source });
                    }
                }
                // Decoding also changes what an escape inside a value meant as written
                // (`PASSWORD="q\"uo…"`, `PASSWORD=q\ne…` in a dotenv file, `%2F` in a URL's
                // password): each line holding a backslash or a percent escape is scanned as
                // written too.
                let b = text.as_bytes();
                let mut at = 0;
                while let Some(n) = memchr::memchr2(b'\\', b'%', &b[at..]) {
                    if b[at + n] == b'%'
                        && !b
                            .get(at + n + 1..at + n + 3)
                            .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
                    {
                        at += n + 1;
                        continue;
                    }
                    let ls = text[..at + n].rfind('\n').map_or(0, |p| p + 1);
                    let le = text[at + n..].find('\n').map_or(text.len(), |p| at + n + p);
                    for hit in detector.scan(&text[ls..le]) {
                        let (start, end) = (ls + hit.start, ls + hit.end);
                        if !overlaps(&found, start, end) {
                            found.push(Candidate {
                                start,
                                end,
                                source: Source::Rule(hit.rule),
                            });
                        }
                    }
                    at = le;
                }
            }
        }
        // Lists of quoted words written in code, YAML or HCL (`["docker", "login", "-p", "…"]`),
        // and YAML's block sequences (`- --requirepass` and `- …` on the next line): a flag and
        // its value are two items, seen together as the command line they make.
        for list in quoted_word_lists(text)
            .into_iter()
            .chain(yaml_block_lists(text))
        {
            for hit in detector.scan(&list.line) {
                // Each word's part of the hit (most hits lie within one word; a key whose
                // lines are items of their own spans several).
                for &(at, from, len) in &list.words {
                    let (a, b) = (hit.start.max(at), hit.end.min(at + len));
                    if a >= b {
                        continue;
                    }
                    let (start, end) = (from + a - at, from + b - at);
                    if !overlaps(&found, start, end) {
                        found.push(Candidate {
                            start,
                            end,
                            source: Source::Rule(hit.rule),
                        });
                    }
                }
            }
        }
        found.sort_by_key(|c| c.start);
        let found = split_at_gutters(text, found);
        let mut edits = Vec::with_capacity(found.len());
        for c in &found {
            let value = &text[c.start..c.end];
            if is_placeholder_token(value) {
                continue;
            }
            let edit = match c.source {
                Source::Known(known) | Source::KnownWider(known) => {
                    // Found again by its value, it is what its rule says now: refused if the
                    // rule blocks, held for a person if it asks for approval. Found within a
                    // wider span of the original spelling, that span is what it stands for.
                    let rule = detector.rule_named(&known.kind);
                    if let Some(r) = rule {
                        refuse_if_blocked(r, path)?;
                    }
                    self.findings.push(Finding {
                        rule: known.kind.clone(),
                        category: known.category.clone(),
                        path: path(),
                        offset: c.start,
                        needs_approval: rule
                            .is_some_and(|r| r.action == super::detect::RuleAction::Approve),
                    });
                    let stands_for = match c.source {
                        Source::KnownWider(_) => value,
                        _ => known.value.expose(),
                    };
                    Edit {
                        start: c.start,
                        end: c.end,
                        text: self.placeholder(
                            true,
                            &known.kind,
                            &known.category,
                            stands_for,
                            known.restore,
                        ),
                    }
                }
                Source::Rule(rule) => self.replace(rule, value, c.start, c.end, path)?,
            };
            edits.push(edit);
        }
        if depth < MAX_NESTING {
            self.base64_runs(text, &mut edits, path, depth)?;
        }
        Ok(edits)
    }

    /// The placeholder edit for a rule's hit, or the refusal its action asks for.
    fn replace(
        &mut self,
        rule_index: usize,
        value: &str,
        start: usize,
        end: usize,
        path: &dyn Fn() -> String,
    ) -> Result<Edit, MaskError> {
        let policy: &'a MaskPolicy = self.policy;
        let rule: &Rule = policy.detector.rule(rule_index);
        refuse_if_blocked(rule, path)?;
        self.findings.push(Finding {
            rule: rule.id.clone(),
            category: rule.category.clone(),
            path: path(),
            offset: start,
            needs_approval: rule.action == super::detect::RuleAction::Approve,
        });
        // Generic rules judge by context, so what they find is looked for out of context only
        // when it could not be anything but a secret.
        let remember = !rule.is_literal_list()
            && (!super::rules::is_generic(&rule.id) || assign::is_distinctive_secret(value));
        // Custom literals are matched as their list says (word or substring), not out of
        // context.
        let (kind, category) = if remember {
            (&rule.id, &rule.category)
        } else {
            (&rule.id, &rule.id)
        };
        let text = self.placeholder(remember, kind, category, value, rule.restore);
        Ok(Edit { start, end, text })
    }

    /// Base64 runs in text that decode to text (a `.env` pasted as base64, a Kubernetes Secret's
    /// `data:` values): masked inside and encoded again.
    fn base64_runs(
        &mut self,
        text: &str,
        edits: &mut Vec<Edit>,
        path: &dyn Fn() -> String,
        depth: usize,
    ) -> Result<(), MaskError> {
        let b = text.as_bytes();
        // `i` always follows a byte that cannot be in a run (or is 0), so a run of at least
        // MIN_BASE64_RUN bytes starting at or after `i` must cover the probe byte: most of a
        // text is skipped MIN_BASE64_RUN bytes at a time.
        let mut i = 0;
        let mut added = false;
        while i + MIN_BASE64_RUN <= b.len() {
            let probe = i + MIN_BASE64_RUN - 1;
            if !is_b64_any(b[probe]) {
                i = probe + 1;
                continue;
            }
            let mut run_end = probe + 1;
            while run_end < b.len() && is_b64_any(b[run_end]) {
                run_end += 1;
            }
            // Most runs in text are words and identifiers, too short to be base64 even if they
            // began at `i`: skipped without looking back.
            if run_end - i < MIN_BASE64_RUN || !is_b64_any(b[run_end - MIN_BASE64_RUN]) {
                i = run_end + 1;
                continue;
            }
            let mut start = probe;
            while start > i && is_b64_any(b[start - 1]) {
                start -= 1;
            }
            // Wrapped base64 (`base64` wraps at 76 columns, PEM at 64): lines of one width
            // continue the run.
            let width = run_end - start;
            let mut lines = 1;
            if (width == 76 || width == 64) && b.get(run_end) == Some(&b'\n') {
                loop {
                    let next = run_end + 1;
                    let mut e = next;
                    while e < b.len() && is_b64_any(b[e]) {
                        e += 1;
                    }
                    let len = e - next;
                    if len == 0 || len > width {
                        break;
                    }
                    run_end = e;
                    lines += 1;
                    if len < width || b.get(run_end) != Some(&b'\n') {
                        break;
                    }
                }
            }
            let mut end = run_end;
            while end < b.len() && end - run_end < 2 && b[end] == b'=' {
                end += 1;
            }
            i = end + 1;
            let run = &text[start..end];
            let joined: std::borrow::Cow<'_, str> = if lines > 1 {
                run.replace('\n', "").into()
            } else {
                run.into()
            };
            // Base64 of text mixes upper and lower case and, but for the shortest, digits;
            // identifiers and words do not.
            let jb = joined.as_bytes();
            let mixed = jb.iter().any(u8::is_ascii_uppercase)
                && jb.iter().any(u8::is_ascii_lowercase)
                && (jb.len() >= 40 || jb.iter().any(u8::is_ascii_digit));
            if !mixed {
                continue;
            }
            let url_safe = joined.contains(['-', '_']);
            if joined.len() < MIN_BASE64_RUN
                || (joined.len() % 4 != 0 && !url_safe)
                || (url_safe && joined.contains(['+', '/']))
                || edits.iter().any(|e| start < e.end && e.start < end)
            {
                continue;
            }
            let Some((bytes, engine)) = decode_base64(&joined) else {
                continue;
            };
            let Some((decoded, form)) = as_text(&bytes, None) else {
                continue;
            };
            let inner_path = || format!("{}>base64", path());
            let inner = self.value(&decoded, None, &inner_path, depth + 1)?;
            if !inner.is_empty() {
                let mut encoded = engine.encode(encode_masked(&decoded, &inner, form, &bytes));
                if lines > 1 {
                    encoded = wrap(&encoded, width);
                }
                edits.push(Edit {
                    start,
                    end,
                    text: encoded,
                });
                added = true;
            }
        }
        if added {
            edits.sort_by_key(|e| e.start);
        }
        Ok(())
    }
}

static B64: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = b.is_ascii_alphanumeric() || b == b'+' || b == b'/';
        i += 1;
    }
    t
};

/// A token keyed by the host it is for, as Composer's `auth.json` keeps them
/// (`"github-oauth": {"github.com": "…"}`, `"bearer": {"repo.corp.io": "…"}`): `token` when the
/// value's parent object is one of those.
fn host_keyed_token(path: &[json::Segment<'_>]) -> Option<&'static str> {
    let [.., json::Segment::Key(parent), json::Segment::Key(_)] = path else {
        return None;
    };
    matches!(
        parent.as_ref(),
        "github-oauth" | "gitlab-oauth" | "gitlab-token" | "bitbucket-oauth" | "bearer"
    )
    .then_some("token")
}

/// A list of words written in text (quoted on one line, or a YAML block sequence), joined by
/// spaces.
struct WordList {
    line: String,
    /// Each word: where it starts in `line`, where in the text, and its length.
    words: Vec<(usize, usize, usize)>,
}

impl WordList {
    /// The words of `text` at each (start, length), joined by spaces.
    fn joining(text: &str, words: Vec<(usize, usize)>) -> Self {
        let mut line = String::new();
        let mut joined = Vec::with_capacity(words.len());
        for (start, len) in words {
            if !line.is_empty() {
                line.push(' ');
            }
            joined.push((line.len(), start, len));
            line.push_str(&text[start..start + len]);
        }
        WordList {
            line,
            words: joined,
        }
    }
}

/// The lists of two or more quoted words on one line (`["mysql", "-p", "…"]`) that hold a
/// flag: an argv written in code, YAML or HCL.
fn quoted_word_lists(text: &str) -> Vec<WordList> {
    let b = text.as_bytes();
    let mut lists = Vec::new();
    let mut at = 0;
    while let Some(n) = memchr::memchr(b'[', &b[at..]) {
        let open = at + n;
        at = open + 1;
        let mut i = open + 1;
        let mut words: Vec<(usize, usize)> = Vec::new();
        let closed = loop {
            while matches!(b.get(i), Some(b' ' | b'\t')) {
                i += 1;
            }
            let Some(&q) = b.get(i).filter(|&&q| q == b'"' || q == b'\'') else {
                break b.get(i) == Some(&b']');
            };
            let start = i + 1;
            let Some(len) = b[start..]
                .iter()
                .position(|&c| c == q || c == b'\n' || c == b'\\')
                .filter(|&len| b[start + len] == q)
            else {
                break false;
            };
            words.push((start, len));
            i = start + len + 1;
            while matches!(b.get(i), Some(b' ' | b'\t')) {
                i += 1;
            }
            match b.get(i) {
                Some(b',') => i += 1,
                Some(b']') => break true,
                _ => break false,
            }
        };
        if !closed || words.len() < 2 || !words.iter().any(|&(s, _)| b[s] == b'-') {
            continue;
        }
        at = i;
        lists.push(WordList::joining(text, words));
    }
    lists
}

/// The YAML block sequences of two or more scalars, one item a line, that hold a flag (a
/// container's `command:` or `args:`, a compose file's `entrypoint:`):
///
/// ```yaml
/// command:
///   - redis-server
///   - --requirepass
///   - "…"
/// ```
///
/// Items may be quoted; the lines may carry a tool's line-number gutter. A sequence with a
/// mapping among its items (`- name: x`) is not an argv.
fn yaml_block_lists(text: &str) -> Vec<WordList> {
    let mut lists = Vec::new();
    let finder = |needle: &str| memchr::memmem::find(text.as_bytes(), needle.as_bytes());
    if finder("- -").is_none() && finder("- \"-").is_none() && finder("- '-").is_none() {
        return lists;
    }
    // The run being read: its indent and its items (start in the text, length).
    let mut run: Option<(usize, Vec<(usize, usize)>)> = None;
    let mut close = |run: &mut Option<(usize, Vec<(usize, usize)>)>| {
        let Some((_, words)) = run.take() else {
            return;
        };
        let b = text.as_bytes();
        if words.len() < 2
            || !words.iter().any(|&(s, len)| {
                len >= 2 && b[s] == b'-' && (b[s + 1] == b'-' || b[s + 1].is_ascii_alphanumeric())
            })
        {
            return;
        }
        lists.push(WordList::joining(text, words));
    };
    let mut at = 0;
    for raw in text.split_inclusive('\n') {
        let line_at = at;
        at += raw.len();
        let line = raw.trim_end_matches(['\n', '\r']);
        let gutter = assign::gutter_len(line);
        let body = &line[gutter..];
        let indent = body.len() - body.trim_start_matches(' ').len();
        let Some(item) = body[indent..].strip_prefix("- ") else {
            close(&mut run);
            continue;
        };
        let item_at = line_at + gutter + indent + 2 + (item.len() - item.trim_start().len());
        let item = item.trim();
        let item = match item.find(" #") {
            Some(n) => item[..n].trim_end(),
            None => item,
        };
        let word = match item.as_bytes().first() {
            Some(&q @ (b'"' | b'\''))
                if item.len() >= 2
                    && item.ends_with(q as char)
                    && !item[1..item.len() - 1].contains([q as char, '\\']) =>
            {
                Some((item_at + 1, item.len() - 2))
            }
            Some(b'"' | b'\'' | b'{' | b'[' | b'&' | b'*' | b'|' | b'>') | None => None,
            Some(_) if item.contains(": ") || item.ends_with(':') => None,
            Some(_) => Some((item_at, item.len())),
        };
        match (word, &mut run) {
            (Some(w), Some((ind, words))) if *ind == indent => words.push(w),
            (Some(w), _) => {
                close(&mut run);
                run = Some((indent, vec![w]));
            }
            (None, _) => {
                // A mapping among the items: the whole sequence is not an argv.
                if let Some((ind, words)) = &mut run
                    && *ind == indent
                {
                    words.clear();
                }
                close(&mut run);
            }
        }
    }
    close(&mut run);
    lists
}

fn refuse_if_blocked(rule: &Rule, path: &dyn Fn() -> String) -> Result<(), MaskError> {
    if rule.action == super::detect::RuleAction::Block {
        return Err(MaskError::Blocked {
            rule: rule.id.clone(),
            category: rule.category.clone(),
            path: path(),
        });
    }
    Ok(())
}

/// The items whose body offset `within` accepts.
fn pick<T: Clone>(items: &[T], at: &[usize], within: impl Fn(&&usize) -> bool) -> Vec<T> {
    items
        .iter()
        .zip(at)
        .filter(|(_, at)| within(at))
        .map(|(item, _)| item.clone())
        .collect()
}

/// The vault's placeholder for `value`: one also found out of context when `known`.
fn ask(
    vault: &Vault,
    scope: &str,
    known: bool,
    kind: &str,
    category: &str,
    value: &str,
    restore: bool,
) -> String {
    if known {
        vault.placeholder_known(scope, kind, category, value, restore)
    } else {
        vault.placeholder(scope, kind, value, restore)
    }
}

fn is_b64(b: u8) -> bool {
    B64[b as usize]
}

static B64_ANY: [bool; 256] = {
    let mut t = B64;
    t[b'-' as usize] = true;
    t[b'_' as usize] = true;
    t
};

/// Either alphabet: standard or URL-safe.
fn is_b64_any(b: u8) -> bool {
    B64_ANY[b as usize]
}

/// `encoded` broken into lines of `width`, as it came.
fn wrap(encoded: &str, width: usize) -> String {
    let mut out = String::with_capacity(encoded.len() + encoded.len() / width + 1);
    for (i, chunk) in encoded.as_bytes().chunks(width).enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(std::str::from_utf8(chunk).unwrap_or(""));
    }
    out
}

/// Text back to bytes in the encoding it came in.
fn encode_text(text: &str, utf16: bool) -> Vec<u8> {
    if utf16 {
        text.encode_utf16().flat_map(u16::to_le_bytes).collect()
    } else {
        text.as_bytes().to_vec()
    }
}

/// Which base64 alphabet `bytes` is written in, if it is base64 at all.
fn base64_alphabet(bytes: &[u8]) -> Option<bool> {
    let body = bytes
        .strip_suffix(b"==")
        .or_else(|| bytes.strip_suffix(b"="))
        .unwrap_or(bytes);
    let standard = body.iter().all(|&b| is_b64(b));
    let url = body
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if standard {
        Some(true)
    } else if url {
        Some(false)
    } else {
        None
    }
}

/// Decodes base64 in whichever alphabet and padding it uses; returns the engine that encodes it
/// back the same way.
fn decode_base64(payload: &str) -> Option<(Vec<u8>, base64::engine::GeneralPurpose)> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let trimmed = payload.trim_end_matches(['\n', '\r']);
    if trimmed.len() != payload.len() {
        return None;
    }
    let padded = payload.ends_with('=');
    let engine = match (base64_alphabet(payload.as_bytes())?, padded) {
        (true, true) => STANDARD,
        (true, false) if payload.len() % 4 == 0 => STANDARD,
        (true, false) => STANDARD_NO_PAD,
        (false, true) => URL_SAFE,
        (false, false) if payload.len() % 4 == 0 => URL_SAFE,
        (false, false) => URL_SAFE_NO_PAD,
    };
    engine.decode(payload).ok().map(|b| (b, engine))
}

/// How decoded bytes were read as text, to write them back the same way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TextForm {
    Utf8,
    /// UTF-16LE, as PowerShell's `-EncodedCommand`.
    Utf16,
    /// Text that is not clean UTF-8 (a Latin-1 letter, a stray control byte): read byte for
    /// byte, every byte above ASCII as a space, and written back as the original bytes with
    /// only the masked spans replaced.
    Bytes,
}

/// The bytes as text, when they are UTF-8 or UTF-16LE without the control characters binary
/// data has; or, when they are text all the same (declared so by `media`, or nearly all
/// printable, and no known binary format), byte for byte ([`TextForm::Bytes`]).
fn as_text(bytes: &[u8], media: Option<&str>) -> Option<(String, TextForm)> {
    if bytes.is_empty() {
        return None;
    }
    let texty = |t: &str| {
        t.bytes()
            .all(|b| b >= 0x20 && b != 0x7F || matches!(b, b'\n' | b'\r' | b'\t' | 0x0C))
    };
    if let Ok(text) = std::str::from_utf8(bytes)
        && texty(text)
    {
        return Some((text.to_owned(), TextForm::Utf8));
    }
    if bytes.len() % 2 == 0
        && bytes.len() >= 8
        && bytes.iter().skip(1).step_by(2).filter(|&&b| b == 0).count() * 4 >= bytes.len()
    {
        let units: Vec<u16> = bytes
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        if let Ok(text) = String::from_utf16(&units)
            && texty(&text)
        {
            return Some((text, TextForm::Utf16));
        }
    }
    let printable = bytes
        .iter()
        .filter(|&&b| (0x20..0x7F).contains(&b) || matches!(b, b'\n' | b'\r' | b'\t' | 0x0C | 0x1B))
        .count();
    let declared = media.is_some_and(is_text_media);
    let binary = sniff(bytes) != "application/octet-stream";
    if !binary && (declared || printable * 10 >= bytes.len() * 9) {
        let view = bytes
            .iter()
            .map(|&b| if b < 0x80 { b as char } else { ' ' })
            .collect();
        return Some((view, TextForm::Bytes));
    }
    None
}

/// Media types that are text, whatever bytes they hold.
fn is_text_media(media: &str) -> bool {
    let m = media.trim().to_ascii_lowercase();
    m.starts_with("text/")
        || [
            "json",
            "xml",
            "yaml",
            "toml",
            "javascript",
            "x-sh",
            "x-python",
            "csv",
            "x-env",
        ]
        .iter()
        .any(|t| m.contains(t))
}

/// Masked text written back in the form it was read in.
fn encode_masked(view: &str, edits: &[Edit], form: TextForm, original: &[u8]) -> Vec<u8> {
    match form {
        TextForm::Utf8 => apply(view, edits).into_bytes(),
        TextForm::Utf16 => encode_text(&apply(view, edits), true),
        TextForm::Bytes => {
            let mut out = Vec::with_capacity(original.len());
            let mut at = 0;
            for e in edits {
                if e.start < at {
                    continue;
                }
                out.extend_from_slice(&original[at..e.start]);
                out.extend_from_slice(e.text.as_bytes());
                at = e.end;
            }
            out.extend_from_slice(&original[at..]);
            out
        }
    }
}

/// A media type from a payload's first bytes, for the record of what was not inspected.
fn sniff(bytes: &[u8]) -> &'static str {
    const MAGIC: &[(&[u8], &str)] = &[
        (b"\x89PNG", "image/png"),
        (b"\xFF\xD8\xFF", "image/jpeg"),
        (b"GIF8", "image/gif"),
        (b"%PDF", "application/pdf"),
        (b"PK\x03\x04", "application/zip"),
        (b"\x1F\x8B", "application/gzip"),
        (b"RIFF", "image/webp"),
        (b"\x28\xB5\x2F\xFD", "application/zstd"),
    ];
    MAGIC
        .iter()
        .find(|(m, _)| bytes.starts_with(m))
        .map_or("application/octet-stream", |(_, t)| t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_keeps_its_alphabet_and_padding() {
        for s in [
            "aGVsbG8gd29ybGQ=",
            "aGVsbG8gd29ybGQ",
            "Pz8_Pz8-",
            "Pz8/Pz8+",
        ] {
            let (bytes, engine) = decode_base64(s).unwrap();
            assert_eq!(engine.encode(&bytes), s);
        }
        assert!(decode_base64("not base64!").is_none());
        assert_eq!(
            as_text(b"KEY=v\n", None),
            Some(("KEY=v\n".to_owned(), TextForm::Utf8))
        );
        assert_eq!(as_text(b"\x89PNG\r\n\x1a\n", None), None);
        assert_eq!(
            as_text(b"caf\xe9 KEY=v\n", None),
            Some(("caf  KEY=v\n".to_owned(), TextForm::Bytes))
        );
        assert_eq!(sniff(b"%PDF-1.7"), "application/pdf");
    }
}
