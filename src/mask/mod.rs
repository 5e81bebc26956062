//! Masking: secrets and protected identifiers are replaced by placeholders before a request
//! leaves, and put back in the response before the client sees it.
//!
//! - [`rules`] and [`detect`]: the built-in detectors and custom identifier lists;
//! - [`assign`]: secrets known by the name they are assigned to;
//! - [`engine`]: how a body is taken apart (nested JSON, credential keys, base64, text);
//! - [`normalize`]: disguises undone for detection;
//! - [`json`]: the JSON string walker every rewrite goes through;
//! - [`printed`]: values a secret-revealing command printed;
//! - [`vault`]: placeholders and the in-memory map back to values;
//! - [`decode`] and [`stream_decode`]: content-encodings, under a size cap;
//! - [`restore`]: responses, JSON and SSE.

pub(crate) mod assign;
pub mod decode;
pub(crate) mod detect;
pub(crate) mod engine;
pub mod json;
pub(crate) mod normalize;
mod printed;
pub(crate) mod recall;
pub mod restore;
pub(crate) mod rules;
pub mod stream_decode;
pub mod vault;

use crate::source::{LoadError, Source};
use bytes::Bytes;
use detect::{BuiltinOverride, CustomSpec, Detector, RuleAction};
use serde::Deserialize;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use vault::Vault;

/// One finding: which rule, where; never the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub rule: Arc<str>,
    pub category: Arc<str>,
    /// JSON path of the string (`messages[2].content`), or `body` for text bodies.
    pub path: String,
    /// Byte offset of the value inside that string.
    pub offset: usize,
    /// Found by a rule whose action is `approve`: masked, and the request waits for a person
    /// (approvals.yaml).
    pub needs_approval: bool,
}

/// Why a request body could not be masked; each refuses the request.
#[derive(Debug, thiserror::Error)]
pub enum MaskError {
    #[error(
        "the request contains a value matched by rule `{rule}` ({category}) at {path}, which policy blocks"
    )]
    Blocked {
        rule: Arc<str>,
        category: Arc<str>,
        path: String,
    },
    #[error(
        "the request carries an attachment ({media_type}) at {path} that cannot be inspected, and policy refuses uninspected attachments (masking.yaml: attachments: refuse)"
    )]
    Attachment { media_type: String, path: String },
    #[error(transparent)]
    Decode(#[from] decode::DecodeError),
    #[error("a {content_type} body cannot be inspected (not UTF-8 text), so it may not leave")]
    Uninspectable { content_type: String },
    #[error(
        "the request body is declared as {charset}; only UTF-8 bodies can be inspected, so it may not leave (send UTF-8, as the provider's API expects)"
    )]
    Charset { charset: String },
    #[error(
        "the request body contains a NUL byte at byte {at}; text bodies may not, and one that does could hide what the proxy reads"
    )]
    NulByte { at: usize },
    #[error(
        "the request body is JSON (by its type or its first character) but not strict JSON ({0}); it may not leave, since a lenient parser upstream could read what the proxy could not"
    )]
    NotStrictJson(json::JsonError),
    #[error(
        "the request body names the top-level key `{0}` twice; parsers disagree on which one counts, so it may not leave"
    )]
    DuplicateKey(String),
}

/// Why masking.yaml with a group's changes could not be compiled.
#[derive(Debug, thiserror::Error)]
pub enum OverrideError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("{field}: {message}")]
    Unknown { field: String, message: String },
}

/// The masking part of the policy (`masking.yaml`), compiled.
#[derive(Debug)]
pub struct MaskPolicy {
    pub detector: Detector,
    pub max_body: usize,
    pub vault_ttl: Duration,
    /// What happens to attachments that are not text (images, PDFs), which cannot be inspected.
    pub attachments: AttachmentPolicy,
    /// Different for every policy compiled: a resent element's masking is used again only
    /// under the policy that made it ([`recall`]).
    id: u64,
}

/// Numbers compiled policies.
static POLICIES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// `attachments:` in masking.yaml.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttachmentPolicy {
    /// They leave as they are, and the exchange's record lists each (media type, size).
    #[default]
    Pass,
    /// A request carrying one is refused.
    Refuse,
}

/// An attachment that could not be inspected: where, what, how big; never its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub path: String,
    pub media_type: String,
    pub bytes: usize,
}

/// A group's changes to masking.yaml (`masking:` of an `access.groups` entry in policy.yaml).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MaskingOverride {
    /// Names of masking.yaml `identifiers` lists that apply; all of them when absent.
    #[serde(default)]
    pub lists: Option<Vec<String>>,
    /// Rule or list id → action (`mask`, `block`, `approve`, `off`) in place of masking.yaml's.
    #[serde(default)]
    pub rules: BTreeMap<String, RuleAction>,
}

impl MaskPolicy {
    pub fn parse(source: &Source) -> Result<Self, LoadError> {
        Self::parse_for(source, None).map_err(|e| match e {
            OverrideError::Load(e) => e,
            OverrideError::Unknown { field, message } => source.invalid(field, message),
        })
    }

    /// masking.yaml with a group's changes applied. Unknown list or rule names in the changes
    /// come back as [`OverrideError::Unknown`], for the caller to place in its own file.
    pub fn parse_for(
        source: &Source,
        over: Option<&MaskingOverride>,
    ) -> Result<Self, OverrideError> {
        let mut file: MaskingFile = source.deserialize()?;
        let known: HashSet<&str> = rules::RULES.iter().map(|r| r.id).collect();
        for id in file.rules.keys() {
            if !known.contains(id.as_str()) {
                return Err(source
                    .invalid(format!("rules.{id}"), format!("no built-in rule `{id}`"))
                    .into());
            }
        }
        if let Some(over) = over {
            if let Some(lists) = &over.lists {
                if let Some((i, name)) = lists
                    .iter()
                    .enumerate()
                    .find(|(_, n)| !file.identifiers.iter().any(|l| &l.name == *n))
                {
                    return Err(OverrideError::Unknown {
                        field: format!("masking.lists[{i}]"),
                        message: format!("no identifiers list `{name}` in {}", source.name()),
                    });
                }
                file.identifiers.retain(|l| lists.contains(&l.name));
            }
            for (id, action) in &over.rules {
                if let Some(list) = file.identifiers.iter_mut().find(|l| &l.name == id) {
                    list.action = *action;
                } else if known.contains(id.as_str()) {
                    file.rules
                        .entry(id.clone())
                        .or_insert(RuleOverride {
                            action: None,
                            restore: None,
                        })
                        .action = Some(*action);
                } else {
                    return Err(OverrideError::Unknown {
                        field: format!("masking.rules.{id}"),
                        message: format!("no built-in rule or applied identifiers list `{id}`"),
                    });
                }
            }
        }
        Ok(Self::compile(source, file)?)
    }

    fn compile(source: &Source, file: MaskingFile) -> Result<Self, LoadError> {
        let known: HashSet<&str> = rules::RULES.iter().map(|r| r.id).collect();
        let mut customs = Vec::new();
        let mut names = HashSet::new();
        for (i, list) in file.identifiers.iter().enumerate() {
            let at = |field: &str| format!("identifiers[{i}].{field}");
            if !names.insert(list.name.clone()) || known.contains(list.name.as_str()) {
                return Err(source.invalid(at("name"), format!("`{}` is already used", list.name)));
            }
            if list.literals.is_empty() && list.domains.is_empty() && list.regexes.is_empty() {
                return Err(source.invalid(at("literals"), "give literals, domains or regexes"));
            }
            if let Some(j) = list.literals.iter().position(|l| l.trim().len() < 2) {
                return Err(source.invalid(
                    at(&format!("literals[{j}]")),
                    "a literal needs at least 2 characters",
                ));
            }
            let mut regexes = list.regexes.clone();
            let mut anchors = Vec::new();
            for (j, domain) in list.domains.iter().enumerate() {
                let (regex, anchor) = domain_regex(domain).ok_or_else(|| {
                    source.invalid(
                        at(&format!("domains[{j}]")),
                        format!("`{domain}` is not a domain or `*.domain`"),
                    )
                })?;
                regexes.push(regex);
                anchors.push(anchor);
            }
            let has_unanchored = !list.regexes.is_empty();
            customs.push(CustomSpec {
                id: list.name.clone(),
                category: list.category.clone().unwrap_or_else(|| list.name.clone()),
                action: list.action,
                restore: list.restore,
                literals: list.literals.clone(),
                case_insensitive: list.case_insensitive,
                whole_word: match list.matching {
                    Some(Matching::Word) => true,
                    Some(Matching::Substring) => false,
                    None => list.whole_word,
                },
                // Anchors only help when every regex of the list has one.
                anchors: if has_unanchored { Vec::new() } else { anchors },
                regexes,
            });
        }
        let overrides = |id: &str| {
            file.rules
                .get(id)
                .map(|o| BuiltinOverride {
                    action: o.action,
                    restore: o.restore,
                })
                .unwrap_or_default()
        };
        let detector = Detector::new(&overrides, &customs).map_err(|e| {
            let field = file
                .identifiers
                .iter()
                .position(|l| l.name == e.id)
                .map(|i| format!("identifiers[{i}].regexes"))
                .unwrap_or_else(|| format!("rules.{}", e.id));
            source.invalid(field, e.message)
        })?;
        Ok(Self {
            detector,
            max_body: file.limits.max_body_bytes,
            vault_ttl: file.vault_ttl,
            attachments: file.attachments,
            id: POLICIES.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        })
    }
}

/// `*.corp.example` → a regex for any subdomain, anchored on `corp.example`; `corp.example` → it.
fn domain_regex(domain: &str) -> Option<(String, String)> {
    let (wild, base) = match domain.strip_prefix("*.") {
        Some(base) => (true, base),
        None => (false, domain),
    };
    let valid = !base.is_empty()
        && base.contains('.')
        && base
            .split('.')
            .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    if !valid {
        return None;
    }
    let escaped = regex::escape(base);
    let regex = if wild {
        format!(r"\b(?:[A-Za-z0-9\-]+\.)+{escaped}\b")
    } else {
        format!(r"\b{escaped}\b")
    };
    Some((regex, base.to_owned()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MaskingFile {
    #[serde(default)]
    rules: BTreeMap<String, RuleOverride>,
    #[serde(default)]
    identifiers: Vec<IdentifierList>,
    #[serde(default)]
    limits: Limits,
    #[serde(default = "default_ttl", with = "humantime_serde")]
    vault_ttl: Duration,
    #[serde(default)]
    attachments: AttachmentPolicy,
}

fn default_ttl() -> Duration {
    Duration::from_secs(24 * 3600)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleOverride {
    action: Option<RuleAction>,
    restore: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IdentifierList {
    name: String,
    category: Option<String>,
    #[serde(default)]
    literals: Vec<String>,
    #[serde(default)]
    domains: Vec<String>,
    #[serde(default)]
    regexes: Vec<String>,
    #[serde(default = "yes")]
    case_insensitive: bool,
    #[serde(default = "yes")]
    whole_word: bool,
    /// `word` (default): a literal matches as a whole word; `substring`: also inside compound
    /// identifiers (`NightjarService`, `nightjar_client`). Takes precedence over `whole_word`.
    #[serde(default, rename = "match")]
    matching: Option<Matching>,
    #[serde(default)]
    action: RuleAction,
    #[serde(default = "yes")]
    restore: bool,
}

fn yes() -> bool {
    true
}

/// How a custom literal must sit in the text to match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Matching {
    Word,
    Substring,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Limits {
    max_body_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 32 << 20,
        }
    }
}

/// A masked request body.
#[derive(Debug)]
pub struct Masked {
    /// The body to send instead, decoded and masked: `None` when nothing was found and the
    /// body was not compressed, so the original bytes can go as they are.
    pub body: Option<Bytes>,
    pub findings: Vec<Finding>,
    /// Attachments that could not be inspected.
    pub attachments: Vec<Attachment>,
    /// What the walk noticed on the way, for the audit record.
    pub facts: RequestFacts,
}

/// Facts about a JSON request body, noticed while masking it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RequestFacts {
    /// The top-level `model` field.
    pub model: Option<String>,
    /// The first message of the conversation (`messages`, `contents` or `input`), which agents
    /// resend unchanged on every turn: what ties the turns of one conversation together.
    pub first_message: Option<String>,
    /// Top-level string fields (`inference_geo`, `service_tier`, …), for policy checks.
    pub fields: Vec<(String, String)>,
    /// Top-level keys seen, to refuse a body that names one twice.
    keys: HashSet<String>,
    /// The first top-level key named twice: parsers disagree on which one counts.
    pub duplicate_key: Option<String>,
    /// Where `first_message` starts in the body.
    first_message_at: usize,
}

impl RequestFacts {
    fn notice_key(&mut self, key: &str) {
        if !self.keys.insert(key.to_owned()) && self.duplicate_key.is_none() {
            self.duplicate_key = Some(key.to_owned());
        }
    }

    /// A top-level string `text` at `path`, starting at byte `at` of the body.
    fn notice(&mut self, path: &json::JsonPath<'_>, text: &str, at: usize) {
        use json::Segment::Key;
        if let [Key(k)] = path.0.as_slice() {
            if k == "model" {
                self.model = Some(text.to_owned());
            }
            self.fields.push((k.to_string(), text.to_owned()));
        }
        if self.first_message.is_none() && Self::holds_a_message(path) {
            self.first_message = Some(text.to_owned());
            self.first_message_at = at;
        }
    }

    /// Whether a string at `path` is a message's text (`messages[0].content[0].text`).
    fn holds_a_message(path: &json::JsonPath<'_>) -> bool {
        use json::Segment::Key;
        let segs = &path.0;
        matches!(segs.first(), Some(Key(k)) if k == "messages" || k == "contents" || k == "input")
            && matches!(segs.last(), Some(Key(k)) if k == "content" || k == "text" || k == "input")
    }

    /// A message's text at byte `at` of the body, found without walking it: the first message
    /// if nothing before it was one.
    fn notice_message(&mut self, text: &str, at: usize) {
        if self.first_message.is_none() || at < self.first_message_at {
            self.first_message = Some(text.to_owned());
            self.first_message_at = at;
        }
    }
}

/// Masks request bodies for one scope (identity) with the current policy.
pub struct Masker<'a> {
    pub policy: &'a MaskPolicy,
    pub vault: &'a Vault,
    pub scope: &'a str,
}

impl Masker<'_> {
    /// Masks `text` as plain text; `path` names it in findings. Returns the new text if
    /// anything changed.
    pub fn mask_text(
        &self,
        text: &str,
        path: &dyn Fn() -> String,
        findings: &mut Vec<Finding>,
    ) -> Result<Option<String>, MaskError> {
        let mut scan = engine::Scan::new(self.policy, self.vault, self.scope);
        let edits = scan.text(text, path, 0)?;
        findings.append(&mut scan.findings);
        Ok((!edits.is_empty()).then(|| engine::apply(text, &edits)))
    }

    /// Masks a request body given its `Content-Type` and `Content-Encoding`. JSON bodies are
    /// masked inside each string, to any depth of JSON or base64 inside strings; other text
    /// bodies as text; a body that is not text is refused.
    pub fn mask_body(
        &self,
        content_type: Option<&str>,
        content_encoding: Option<&str>,
        body: Bytes,
    ) -> Result<Masked, MaskError> {
        if body.is_empty() {
            return Ok(Masked {
                body: None,
                findings: Vec::new(),
                attachments: Vec::new(),
                facts: RequestFacts::default(),
            });
        }
        if let Some(charset) = content_type.and_then(charset)
            && !matches!(charset.as_str(), "utf-8" | "utf8" | "us-ascii")
        {
            return Err(MaskError::Charset { charset });
        }
        let decoded = decode::decode(content_encoding, body, self.policy.max_body)?;
        let Ok(text) = std::str::from_utf8(&decoded.bytes) else {
            return Err(MaskError::Uninspectable {
                content_type: content_type.unwrap_or("untyped").to_owned(),
            });
        };
        // UTF-16 spelled in ASCII is valid UTF-8 with a NUL after every letter.
        if let Some(at) = memchr::memchr(0, text.as_bytes()) {
            return Err(MaskError::NulByte { at });
        }
        let json_typed = content_type.is_some_and(|t| {
            let t = t.to_ascii_lowercase();
            t.starts_with("application/json") || t.contains("+json")
        });
        // A byte-order mark is not JSON, but lenient parsers skip it.
        let looks_json = text
            .trim_start_matches(|c: char| c.is_whitespace() || c == '\u{feff}')
            .starts_with(['{', '[']);
        let json = json_typed || looks_json;
        let mask = |scan: &mut engine::Scan<'_>, text: &str| {
            if json {
                let edits = scan
                    .document(text, "", 0)?
                    .map_err(MaskError::NotStrictJson)?;
                if let Some(key) = scan.facts.duplicate_key.take() {
                    return Err(MaskError::DuplicateKey(key));
                }
                Ok(edits)
            } else {
                scan.text(text, &|| "body".into(), 0)
            }
        };
        let mut scan = engine::Scan::new(self.policy, self.vault, self.scope);
        let edits = mask(&mut scan, text)?;
        // What leaves is what was inspected: the original bytes only when nothing was found and
        // nothing had to be decoded (a compressed container may carry more than its content:
        // gzip name and comment fields, data after the last member, skippable frames).
        let mut body = (!edits.is_empty() || decoded.changed)
            .then(|| Bytes::from(engine::apply(text, &edits)));
        // A value this body made known (a `.env` in one message) may also stand bare elsewhere
        // in it (the model wrote it into a command two messages on, and the client restored
        // it): the masked body is looked through once more for the values it taught.
        if scan.learned()
            && let Some(once) = &body
        {
            let once = std::str::from_utf8(once).expect("masking keeps UTF-8");
            let mut again = engine::Scan::new(self.policy, self.vault, self.scope).without_recall();
            let edits = mask(&mut again, once)?;
            if !edits.is_empty() {
                scan.findings.append(&mut again.findings);
                body = Some(Bytes::from(engine::apply(once, &edits)));
            }
        }
        Ok(Masked {
            body,
            findings: scan.findings,
            attachments: scan.attachments,
            facts: scan.facts,
        })
    }
}

/// The `charset` parameter of a media type, lower-cased and unquoted.
fn charset(content_type: &str) -> Option<String> {
    content_type.split(';').skip(1).find_map(|param| {
        let (name, value) = param.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("charset")
            .then(|| value.trim().trim_matches('"').to_ascii_lowercase())
    })
}

/// Rule ids and counts of findings, for the exchange's log line: `github-pat:2,jwt:1`.
pub fn summarize(findings: &[Finding]) -> String {
    let mut counts: Vec<(Arc<str>, usize)> = Vec::new();
    for f in findings {
        match counts.iter_mut().find(|(r, _)| *r == f.rule) {
            Some((_, n)) => *n += 1,
            None => counts.push((f.rule.clone(), 1)),
        }
    }
    counts
        .iter()
        .map(|(r, n)| format!("{r}:{n}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The embedded default `masking.yaml`.
pub fn embedded_policy() -> Source {
    Source::embedded_masking()
}

#[cfg(test)]
mod recall_tests;
#[cfg(test)]
mod tests;
