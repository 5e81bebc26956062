//! The detector: one Aho-Corasick pass over a text finds every rule keyword and every custom
//! literal; each rule's regex then runs only in windows around its keywords. Custom regexes,
//! which have no keyword, run over the whole text.

use super::rules::{Check, RULES, RuleSpec, is_generic};
use aho_corasick::automaton::Automaton;
use aho_corasick::dfa::DFA;
use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use regex_automata::meta::Regex;
use regex_automata::util::captures::Captures;
use regex_automata::{Anchored, Input};
use std::sync::Arc;

/// What to do when a rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum RuleAction {
    /// Replace the value with a placeholder (and restore it in responses).
    #[default]
    Mask,
    /// Refuse the request, naming the rule.
    Block,
    /// Hold for a person's approval; until approvals exist this refuses like `block`.
    Approve,
    /// Do not run the rule.
    Off,
}

/// A detector rule ready to run.
#[derive(Debug)]
pub struct Rule {
    pub id: Arc<str>,
    pub category: Arc<str>,
    pub action: RuleAction,
    /// Whether placeholders of this rule are put back in responses.
    pub restore: bool,
    /// `None` for literal lists, which the automaton matches on its own.
    regex: Option<Regex>,
    check: Check,
    reach: usize,
    generic: bool,
    /// The secret begins with the keyword (`ghp_…`, `AKIA…`): its window starts there.
    prefix: bool,
}

impl Rule {
    /// Whether this is a custom list's literals, which the automaton matches on its own.
    pub fn is_literal_list(&self) -> bool {
        self.regex.is_none() && self.check == Check::None
    }
}

/// A custom literal: matched by the shared automaton, then checked for word boundaries.
#[derive(Debug)]
struct Literal {
    rule: usize,
    whole_word: bool,
}

/// One match: the byte span of the secret inside the scanned text and the rule that found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    pub start: usize,
    pub end: usize,
    pub rule: usize,
}

/// The compiled detector. Built once per policy load; scanning takes `&self`.
#[derive(Debug)]
pub struct Detector {
    rules: Vec<Rule>,
    /// Every distinct keyword and case-insensitive custom literal (see [`keyword_starts`]).
    keywords: DFA,
    /// For each automaton pattern, what a match of it means (see [`Detector::new`]).
    targets: Vec<Targets>,
    /// Case-sensitive custom literals.
    exact: Option<(AhoCorasick, Vec<Literal>)>,
    /// Custom regexes without keywords: (rule index).
    unanchored: Vec<usize>,
    /// The rule for values under credential keys ([`Detector::field_rule`]).
    field: Option<usize>,
}

#[derive(Debug, Clone, Copy)]
enum Target {
    Window(usize),
    Literal {
        rule: usize,
        whole_word: bool,
    },
    /// A keyword that may be part of a credential's name: look for what is assigned to it.
    Assignment(usize),
}

/// What one matched pattern stands for: every target whose pattern occurs inside it, with the
/// offset of that occurrence. The search reports only the longest pattern at each position, so
/// a shorter pattern hidden inside it (`sk-` in `sk-ant-`) is answered from here.
#[derive(Debug, Default)]
struct Targets(Vec<(Target, usize, usize)>);

/// A custom identifier list from policy, already validated.
#[derive(Debug, Clone)]
pub struct CustomSpec {
    pub id: String,
    pub category: String,
    pub action: RuleAction,
    pub restore: bool,
    pub literals: Vec<String>,
    pub case_insensitive: bool,
    pub whole_word: bool,
    /// Regexes (`regex` syntax); domain suffixes arrive here already turned into regexes.
    pub regexes: Vec<String>,
    /// Keywords that anchor `regexes` (empty: they run over the whole text).
    pub anchors: Vec<String>,
}

/// Overrides of a built-in rule from policy.
#[derive(Debug, Clone, Copy, Default)]
pub struct BuiltinOverride {
    pub action: Option<RuleAction>,
    pub restore: Option<bool>,
}

#[derive(Debug, thiserror::Error)]
#[error("{id}: {message}")]
pub struct DetectorError {
    pub id: String,
    pub message: String,
}

impl Detector {
    /// Compiles the built-in rules (with overrides by id) and the custom lists.
    pub fn new(
        overrides: &dyn Fn(&str) -> BuiltinOverride,
        customs: &[CustomSpec],
    ) -> Result<Self, DetectorError> {
        let mut rules = Vec::new();
        let mut patterns: Vec<String> = Vec::new();
        let mut targets = Vec::new();
        let mut exact_patterns = Vec::new();
        let mut exact_targets = Vec::new();
        let mut unanchored = Vec::new();

        for spec in RULES {
            let o = overrides(spec.id);
            let action = o.action.unwrap_or_default();
            if action == RuleAction::Off {
                continue;
            }
            let index = rules.len();
            rules.push(compile_builtin(spec, action, o.restore.unwrap_or(true))?);
            let target = match spec.check {
                Check::Assignment => Target::Assignment(index),
                _ => Target::Window(index),
            };
            for kw in spec.keywords {
                patterns.push((*kw).to_owned());
                targets.push(target);
            }
        }
        for custom in customs {
            if custom.action == RuleAction::Off {
                continue;
            }
            let err = |message: String| DetectorError {
                id: custom.id.clone(),
                message,
            };
            if !custom.literals.is_empty() {
                let index = rules.len();
                rules.push(custom_rule(custom, None));
                for literal in &custom.literals {
                    if custom.case_insensitive {
                        patterns.push(literal.clone());
                        targets.push(Target::Literal {
                            rule: index,
                            whole_word: custom.whole_word,
                        });
                    } else {
                        exact_patterns.push(literal.clone());
                        exact_targets.push(Literal {
                            rule: index,
                            whole_word: custom.whole_word,
                        });
                    }
                }
            }
            for source in &custom.regexes {
                let source = if custom.case_insensitive {
                    format!("(?i){source}")
                } else {
                    source.clone()
                };
                let regex = Regex::new(&source).map_err(|e| err(e.to_string()))?;
                let index = rules.len();
                rules.push(custom_rule(custom, Some(regex)));
                if custom.anchors.is_empty() {
                    unanchored.push(index);
                } else {
                    for anchor in &custom.anchors {
                        patterns.push(anchor.clone());
                        targets.push(Target::Window(index));
                    }
                }
            }
        }
        let (patterns, targets) = contained_targets(&patterns, &targets);
        let keywords = aho_corasick::dfa::Builder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .prefilter(false)
            .build(&patterns)
            .map_err(|e| DetectorError {
                id: "keywords".into(),
                message: e.to_string(),
            })?;
        let exact = if exact_patterns.is_empty() {
            None
        } else {
            let ac = AhoCorasickBuilder::new()
                .match_kind(MatchKind::LeftmostLongest)
                .build(&exact_patterns)
                .map_err(|e| DetectorError {
                    id: "literals".into(),
                    message: e.to_string(),
                })?;
            Some((ac, exact_targets))
        };
        Ok(Self {
            field: rules.iter().position(|r| r.check == Check::Field),
            rules,
            keywords,
            targets,
            exact,
            unanchored,
        })
    }

    /// The built-in rules with no overrides and no custom lists.
    pub fn builtin() -> Self {
        Self::new(&|_| BuiltinOverride::default(), &[]).expect("built-in rules compile")
    }

    pub fn rule(&self, index: usize) -> &Rule {
        &self.rules[index]
    }

    /// The rule (or identifiers list) with this id.
    pub fn rule_named(&self, id: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| *r.id == *id)
    }

    /// The index of the rule with this id, if policy kept it.
    pub fn rule_index(&self, id: &str) -> Option<usize> {
        self.rules.iter().position(|r| *r.id == *id)
    }

    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    /// The rule for values under credential keys of structured data, unless policy turned it off.
    pub fn field_rule(&self) -> Option<usize> {
        self.field
    }

    /// Finds every secret and identifier in `text`: non-overlapping spans, in order. Where two
    /// rules claim overlapping spans, a specific rule beats a generic one, then the longer wins.
    pub fn scan(&self, text: &str) -> Vec<Hit> {
        let mut hits = Vec::new();
        // Windows per rule, merged as they come (keyword hits arrive in text order).
        let mut windows: Vec<(usize, usize, usize)> = Vec::new();
        let mut last_window: Option<Vec<Option<usize>>> = None;
        // Per prefix rule, where its last match ended (keywords inside it are not tried again).
        let mut prefix_end: Option<Vec<usize>> = None;
        for (m_start, pattern) in keyword_starts(&self.keywords, text.as_bytes()) {
            for &(target, offset, len) in &self.targets[pattern].0 {
                let (t_start, t_end) = (m_start + offset, m_start + offset + len);
                match target {
                    // A rule whose secret begins with its keyword is tried right there.
                    Target::Window(rule) if self.rules[rule].prefix => {
                        let r = &self.rules[rule];
                        let last = prefix_end.get_or_insert_with(|| vec![0; self.rules.len()]);
                        if t_start >= last[rule] {
                            let end = ceil_char(text, (t_end + r.reach).min(text.len()));
                            if let Some(e) = self.run_anchored(text, rule, t_start, end, &mut hits)
                            {
                                last[rule] = e;
                            }
                        }
                    }
                    Target::Window(rule) => {
                        let r = &self.rules[rule];
                        let start = floor_char(text, t_start.saturating_sub(128));
                        let end = ceil_char(text, (t_end + r.reach).min(text.len()));
                        let last = last_window.get_or_insert_with(|| vec![None; self.rules.len()]);
                        match last[rule].map(|i| &mut windows[i]) {
                            Some(w) if start <= w.2 => w.2 = w.2.max(end),
                            _ => {
                                last[rule] = Some(windows.len());
                                windows.push((rule, start, end));
                            }
                        }
                    }
                    Target::Assignment(rule) => {
                        if let Some((start, end)) =
                            super::assign::assigned_value(text, t_start, t_end)
                        {
                            hits.push(Hit { start, end, rule });
                        } else {
                            for (start, end) in super::assign::column_values(text, t_start, t_end) {
                                hits.push(Hit { start, end, rule });
                            }
                        }
                    }
                    Target::Literal { rule, whole_word } => {
                        if text.is_char_boundary(t_start)
                            && text.is_char_boundary(t_end)
                            && (!whole_word || is_word_bounded(text, t_start, t_end))
                        {
                            hits.push(Hit {
                                start: t_start,
                                end: t_end,
                                rule,
                            });
                        }
                    }
                }
            }
        }
        for (rule, start, end) in windows {
            self.run_regex(text, rule, start, end, &mut hits);
        }
        if let Some((ac, literals)) = &self.exact {
            for m in ac.find_iter(text) {
                let lit = &literals[m.pattern().as_usize()];
                if !lit.whole_word || is_word_bounded(text, m.start(), m.end()) {
                    hits.push(Hit {
                        start: m.start(),
                        end: m.end(),
                        rule: lit.rule,
                    });
                }
            }
        }
        for &rule in &self.unanchored {
            self.run_regex(text, rule, 0, text.len(), &mut hits);
        }
        self.resolve_overlaps(hits)
    }

    fn run_regex(&self, text: &str, index: usize, start: usize, end: usize, hits: &mut Vec<Hit>) {
        let Some(regex) = &self.rules[index].regex else {
            return;
        };
        let mut caps = captures_for(regex);
        let mut at = start;
        while at <= end {
            regex.search_captures(&Input::new(text).span(at..end), &mut caps);
            let Some(whole) = caps.get_match() else {
                break;
            };
            self.confirm(text, index, &caps, hits);
            at = if whole.end() > whole.start() {
                whole.end()
            } else {
                ceil_char(text, whole.end() + 1)
            };
        }
    }

    /// Tries a prefix rule's regex anchored at a keyword; the end of its match, if any.
    fn run_anchored(
        &self,
        text: &str,
        index: usize,
        start: usize,
        end: usize,
        hits: &mut Vec<Hit>,
    ) -> Option<usize> {
        let regex = self.rules[index].regex.as_ref()?;
        let mut caps = captures_for(regex);
        let input = Input::new(text).span(start..end).anchored(Anchored::Yes);
        regex.search_captures(&input, &mut caps);
        let whole = caps.get_match()?;
        self.confirm(text, index, &caps, hits);
        Some(whole.end())
    }

    /// Checks one regex match and keeps its secret: the first group that took part in the
    /// match, else the whole match.
    fn confirm(&self, text: &str, index: usize, caps: &Captures, hits: &mut Vec<Hit>) {
        let rule = &self.rules[index];
        let Some(whole) = caps.get_group(0) else {
            return;
        };
        let secret = (1..caps.group_len())
            .find_map(|g| caps.get_group(g))
            .unwrap_or(whole);
        let value = &text[secret.range()];
        let ok = if rule.check == Check::UrlPassword {
            // A URL's scheme: `\b[a-zA-Z][a-zA-Z0-9+.-]{1,20}` right before its `://`.
            if text[whole.start..].starts_with("://") && !has_scheme_before(text, whole.start) {
                return;
            }
            // The user is what stands between `://` (or the start) and `:password`.
            let before = &text[whole.start..secret.start.saturating_sub(1)];
            let user = before
                .rsplit(['/', ' ', '\'', '"', '='])
                .next()
                .unwrap_or("");
            let host = text[secret.end..whole.end].trim_start_matches('@');
            url_password_ok(value, user) && !is_documentation_host(host)
        } else {
            passes(rule.check, value)
        };
        if ok && secret.start < secret.end {
            hits.push(Hit {
                start: secret.start,
                end: secret.end,
                rule: index,
            });
        }
    }

    fn resolve_overlaps(&self, mut hits: Vec<Hit>) -> Vec<Hit> {
        if hits.len() < 2 {
            return hits;
        }
        // Best first: specific before generic, then longer, then earlier.
        hits.sort_by_key(|h| {
            (
                self.rules[h.rule].generic,
                std::cmp::Reverse(h.end - h.start),
                h.start,
            )
        });
        let mut kept: Vec<Hit> = Vec::with_capacity(hits.len());
        for h in hits {
            if kept.iter().all(|k| h.end <= k.start || h.start >= k.end) {
                kept.push(h);
            }
        }
        kept.sort_by_key(|h| h.start);
        kept
    }
}

/// A rule for one custom list: its literals (`regex: None`) or one of its regexes.
fn custom_rule(custom: &CustomSpec, regex: Option<Regex>) -> Rule {
    Rule {
        id: custom.id.as_str().into(),
        category: custom.category.as_str().into(),
        action: custom.action,
        restore: custom.restore,
        regex,
        check: Check::None,
        reach: 256,
        generic: false,
        prefix: false,
    }
}

/// Merges equal patterns (ignoring ASCII case) and gives each distinct pattern every target
/// whose own pattern occurs inside it, with its offset and length.
/// Every position where a keyword starts, with the longest keyword starting there, in text
/// order: (start, pattern).
///
/// The automaton's next state depends on the one before, so walking it byte by byte waits on a
/// memory load per byte. Long texts are cut into [`LANES`] stretches walked side by side, whose
/// loads overlap; each stretch runs on past its end by the longest keyword less one byte, and
/// keeps only the matches that start inside it.
fn keyword_starts(dfa: &DFA, text: &[u8]) -> Vec<(usize, usize)> {
    const LANES: usize = 4;
    let mut found = Vec::new();
    if text.len() >= 1024 {
        walk::<LANES>(dfa, text, &mut found);
    } else {
        walk::<1>(dfa, text, &mut found);
    }
    // Within a stretch, matches come in the order they end: put them in start order, the
    // longest first at each start, and keep that one.
    found.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    found.dedup_by_key(|m| m.0);
    found
        .into_iter()
        .map(|(start, _, pattern)| (start, pattern))
        .collect()
}

/// [`keyword_starts`]' walk over `L` stretches: (start, length, pattern) in any order.
fn walk<const L: usize>(dfa: &DFA, text: &[u8], found: &mut Vec<(usize, usize, usize)>) {
    let Ok(start) = dfa.start_state(aho_corasick::Anchored::No) else {
        return;
    };
    let stride = text.len().div_ceil(L);
    let overrun = dfa.max_pattern_len().saturating_sub(1);
    let from = |lane: usize| (lane * stride).min(text.len());
    let to = |lane: usize| ((lane + 1) * stride + overrun).min(text.len());
    let mut note = |sid, at: usize, lane: usize| {
        for i in 0..dfa.match_len(sid) {
            let pattern = dfa.match_pattern(sid, i);
            let len = dfa.pattern_len(pattern);
            // The stretch began in the start state, so the match lies inside it.
            let begins = at + 1 - len;
            if begins < (lane + 1) * stride {
                found.push((begins, len, pattern.as_usize()));
            }
        }
    };
    let next = |sid, byte| dfa.next_state(aho_corasick::Anchored::No, sid, byte);
    let matched = |sid| dfa.is_special(sid) && dfa.is_match(sid);
    let mut state = [start; L];
    // The steps every stretch has, side by side; then what is left of each, one by one.
    let common = (0..L).map(|k| to(k) - from(k)).min().unwrap_or(0);
    let lanes: [&[u8]; L] = std::array::from_fn(|k| &text[from(k)..from(k) + common]);
    // One index walks the L stretches in lockstep (what makes their loads overlap).
    #[allow(clippy::needless_range_loop)]
    for step in 0..common {
        for lane in 0..L {
            let sid = next(state[lane], lanes[lane][step]);
            state[lane] = sid;
            if matched(sid) {
                note(sid, from(lane) + step, lane);
            }
        }
    }
    for (lane, sid) in state.iter_mut().enumerate() {
        let rest = from(lane) + common..to(lane);
        for (at, &byte) in text[rest.clone()].iter().enumerate() {
            let at = rest.start + at;
            *sid = next(*sid, byte);
            if matched(*sid) {
                note(*sid, at, lane);
            }
        }
    }
}

fn contained_targets(patterns: &[String], targets: &[Target]) -> (Vec<String>, Vec<Targets>) {
    let mut distinct: Vec<String> = Vec::new();
    for p in patterns {
        let lower = p.to_ascii_lowercase();
        if !distinct.contains(&lower) {
            distinct.push(lower);
        }
    }
    let mut out: Vec<Targets> = distinct.iter().map(|_| Targets::default()).collect();
    for (i, outer) in distinct.iter().enumerate() {
        for (p, &target) in patterns.iter().zip(targets) {
            let inner = p.to_ascii_lowercase();
            let mut from = 0;
            while let Some(off) = outer[from..].find(&inner) {
                out[i].0.push((target, from + off, inner.len()));
                // Windows need one entry per pattern; literals one per occurrence.
                if matches!(target, Target::Window(_)) {
                    break;
                }
                from += off + 1;
            }
        }
    }
    (distinct, out)
}

fn compile_builtin(
    spec: &RuleSpec,
    action: RuleAction,
    restore: bool,
) -> Result<Rule, DetectorError> {
    let regex = if spec.pattern.is_empty() {
        None
    } else {
        Some(Regex::new(spec.pattern).map_err(|e| DetectorError {
            id: spec.id.to_owned(),
            message: e.to_string(),
        })?)
    };
    Ok(Rule {
        id: spec.id.into(),
        category: spec.category.into(),
        action,
        restore,
        regex,
        check: spec.check,
        reach: spec.reach,
        generic: is_generic(spec.id),
        prefix: starts_with_keyword(spec),
    })
}

/// Whether every match of the rule begins with one of its keywords (`\bghp_…`,
/// `(?:AKIA|ASIA)…`, `(?i)github…` do; `…secret_?key…=` does not): the prefixes the regex can
/// start with, as its syntax gives them, each begin with a keyword (ignoring ASCII case).
fn starts_with_keyword(spec: &RuleSpec) -> bool {
    use regex_syntax::hir::literal::{ExtractKind, Extractor};
    if spec.keywords.is_empty() || spec.pattern.is_empty() {
        return false;
    }
    let Ok(hir) = regex_syntax::parse(spec.pattern) else {
        return false;
    };
    let mut extractor = Extractor::new();
    extractor.kind(ExtractKind::Prefix).limit_total(4096);
    let prefixes = extractor.extract(&hir);
    let Some(literals) = prefixes.literals() else {
        return false;
    };
    !literals.is_empty()
        && literals.iter().all(|lit| {
            let bytes = lit.as_bytes();
            spec.keywords.iter().any(|kw| {
                bytes.len() >= kw.len() && bytes[..kw.len()].eq_ignore_ascii_case(kw.as_bytes())
            })
        })
}

fn passes(check: Check, secret: &str) -> bool {
    if is_filler(secret) {
        return false;
    }
    match check {
        Check::None | Check::Assignment | Check::Field => true,
        Check::UrlPassword => url_password_ok(secret, ""),
        Check::NotPlaceholder => !is_placeholder(secret),
        Check::Printed => super::printed::is_printed_value(secret),
        Check::Cookie => super::assign::has_secret_cookie(secret),
        Check::PemBody => pem_has_body(secret),
        Check::Random => {
            !is_placeholder(secret)
                && (super::assign::looks_random(secret) || super::assign::is_gibberish(secret))
        }
    }
}

/// Hosts reserved for documentation and tests (RFC 2606, RFC 6761): credentials there are examples.
fn is_documentation_host(host: &str) -> bool {
    let host = host
        .split([':', '/'])
        .next()
        .unwrap_or(host)
        .to_ascii_lowercase();
    ["example.com", "example.org", "example.net"]
        .iter()
        .any(|d| host == *d || host.ends_with(&format!(".{d}")))
        || [".example", ".test", ".invalid"]
            .iter()
            .any(|t| host.ends_with(t))
        || host == "example"
}

/// Captures for a rule's regex: only the whole match where it has no groups, so the search
/// needs no capturing engine.
fn captures_for(regex: &Regex) -> Captures {
    if regex.captures_len() == 1 {
        Captures::matches(regex.group_info().clone())
    } else {
        regex.create_captures()
    }
}

/// Whether a URL scheme ends at `at`: `\b[a-zA-Z][a-zA-Z0-9+.-]{1,20}` as a regex would find it.
fn has_scheme_before(text: &str, at: usize) -> bool {
    let b = &text.as_bytes()[..at];
    let is_word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let run = b
        .iter()
        .rev()
        .take(21)
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'.' | b'-'))
        .count();
    (2..=run).any(|len| {
        let start = at - len;
        b[start].is_ascii_alphabetic() && (start == 0 || !is_word(b[start - 1]))
    })
}

/// Whether a PEM block carries key material: 24 base64 characters or more besides its
/// armour lines, not one character repeated (`XXXX`).
fn pem_has_body(pem: &str) -> bool {
    let body: Vec<u8> = pem
        .split(['\n', '\r'])
        .flat_map(|line| line.split("\\n"))
        .filter(|line| !line.contains(": "))
        // Without its armour (`-----BEGIN … KEY-----`, `-----END … KEY-----`), wherever it
        // stands on the line: a key flattened onto one line keeps its body between them.
        .flat_map(|line| {
            let mut kept = Vec::new();
            let mut rest = line;
            while let Some(a) = rest.find("-----") {
                let Some(z) = rest[a + 5..].find("-----") else {
                    break;
                };
                kept.push(&rest[..a]);
                rest = &rest[a + 5 + z + 5..];
            }
            kept.push(rest);
            kept
        })
        .flat_map(str::bytes)
        .filter(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/'))
        .collect();
    let mut counts = [0usize; 256];
    for &b in &body {
        counts[b as usize] += 1;
    }
    body.len() >= 24 && counts.iter().max().is_some_and(|&m| m * 2 < body.len())
}

fn url_password_ok(password: &str, user: &str) -> bool {
    // CVS's `:pserver:user@host` names an access method, not a password.
    !password.starts_with("pserver:")
        && !password.eq_ignore_ascii_case(user)
        && !super::assign::is_placeholder_literal(password)
        && !password.starts_with(['$', '{', '%', '<'])
        && !password.contains("${")
}

/// A documentation's stand-in of a token's length (`ghp_xxxx…`, `sk-XXXX…`, `AKIA0000…`): one
/// character is four fifths of its letters and digits, or more. No generated token is.
fn is_filler(secret: &str) -> bool {
    let mut counts = [0usize; 128];
    let mut total = 0;
    for b in secret.bytes().filter(u8::is_ascii_alphanumeric) {
        counts[b as usize] += 1;
        total += 1;
    }
    total >= 12 && counts.iter().max().is_some_and(|&m| m * 5 >= total * 4)
}

/// Values that stand for a secret without being one.
pub fn is_placeholder(value: &str) -> bool {
    let v = value.trim_matches(|c| c == '"' || c == '\'');
    // A format field's contents (`{password!r}`, `{pwd:>8}`): a name and a conversion or spec.
    let format_spec = |spec: &str| {
        let body = spec.trim_end_matches(|c: char| c.is_ascii_alphabetic() || c == '%');
        spec.len() - body.len() <= 1 && body.bytes().all(|b| b"<>^=+-0123456789.,_ #".contains(&b))
    };
    let field = v.split_once(['!', ':']).is_some_and(|(name, spec)| {
        !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
            && (matches!(spec, "r" | "s" | "a")
                || (v.contains(':') && !spec.is_empty() && format_spec(spec)))
    });
    field
        || super::assign::is_placeholder_literal(v)
        || v.starts_with(['{', '<', '%', '[', '('])
        || is_variable(v)
        || v.ends_with(['}', '>', ')'])
        || is_dotted_identifier(v)
}

/// `$VAR`, `${VAR}`, `$(cmd)`, `$var`: shell, env and template references. A value that only
/// begins with `$` (`$ecretP4ss!`, `$2b$12$…`) is not one.
pub(super) fn is_variable(v: &str) -> bool {
    let Some(rest) = v.strip_prefix('$') else {
        return false;
    };
    if rest.is_empty() || rest.starts_with(['{', '(']) {
        return true;
    }
    // An element of a list (fish's `$argv[1]`, `$pipestatus[2]`).
    if let Some((name, index)) = rest.split_once('[')
        && !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && index.strip_suffix(']').is_some_and(|i| {
            i.bytes()
                .all(|b| b.is_ascii_digit() || b == b'-' || b == b'.')
        })
    {
        return true;
    }
    let ident = rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    let upper = rest
        .bytes()
        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
    let has_digit = rest.bytes().any(|b| b.is_ascii_digit());
    ident && (upper || !has_digit)
}

/// `config.api_key`, `self.token`, `settings.SECRET_KEY`: references, not values.
fn is_dotted_identifier(v: &str) -> bool {
    v.contains('.')
        && v.split('.').all(|part| {
            !part.is_empty()
                && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                && !part.as_bytes()[0].is_ascii_digit()
                && !looks_random(part)
        })
}

/// Letters and digits mixed with enough entropy to be generated, not typed as a name.
pub fn looks_random(v: &str) -> bool {
    let has_letter = v.bytes().any(|b| b.is_ascii_alphabetic());
    let has_digit = v.bytes().any(|b| b.is_ascii_digit());
    let needed = 3.0f64.min((v.len() as f64).log2() * 0.85);
    v.len() >= 8 && has_letter && has_digit && entropy(v) >= needed
}

/// Shannon entropy in bits per character.
pub fn entropy(s: &str) -> f64 {
    let mut counts = [0u32; 256];
    for b in s.bytes() {
        counts[b as usize] += 1;
    }
    let n = s.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum()
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn is_word_bounded(text: &str, start: usize, end: usize) -> bool {
    let bytes = text.as_bytes();
    (start == 0 || !is_word_byte(bytes[start - 1]))
        && (end == bytes.len() || !is_word_byte(bytes[end]))
}

fn floor_char(text: &str, mut i: usize) -> usize {
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_char(text: &str, mut i: usize) -> usize {
    i = i.min(text.len());
    while !text.is_char_boundary(i) {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const WORDS: &[&str] = &[
        "pass", "password", "PassWord", "api_key", "key", "sk-", "sk-ant-", "ghp_", "token", "x",
        " ", "\n", "é", "_", "=", "secret",
    ];

    fn automata(patterns: &[&str]) -> (DFA, AhoCorasick) {
        let dfa = aho_corasick::dfa::Builder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .build(patterns)
            .unwrap();
        let leftmost = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::LeftmostLongest)
            .build(patterns)
            .unwrap();
        (dfa, leftmost)
    }

    /// The plain way: the leftmost-longest match, then again from one byte past its start.
    fn restarting(ac: &AhoCorasick, text: &str) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        let mut at = 0;
        while let Some(m) = ac.find(aho_corasick::Input::new(text).span(at..text.len())) {
            out.push((m.start(), m.pattern().as_usize()));
            at = m.start() + 1;
        }
        out
    }

    proptest! {
        /// Walking the text in interleaved stretches finds exactly what restarting the
        /// leftmost-longest search after every match finds, wherever the stretches are cut.
        #[test]
        fn interleaved_walk_finds_what_restarting_finds(
            picks in proptest::collection::vec(0..WORDS.len(), 0..900),
        ) {
            let patterns = ["pass", "password", "api_key", "key", "sk-", "sk-ant-", "ghp_", "secret", "token"];
            let (dfa, leftmost) = automata(&patterns);
            let text: String = picks.iter().map(|&i| WORDS[i]).collect();
            prop_assert_eq!(keyword_starts(&dfa, text.as_bytes()), restarting(&leftmost, &text));
        }
    }

    #[test]
    fn matches_at_the_seams_of_the_stretches_are_found_once() {
        let (dfa, leftmost) = automata(&["password", "pass", "word"]);
        for len in [1024, 1025, 1027, 4096, 4099] {
            for at in (0..len - 8).step_by(7) {
                let mut text = "x".repeat(len);
                text.replace_range(at..at + 8, "PASSWORD");
                assert_eq!(
                    keyword_starts(&dfa, text.as_bytes()),
                    restarting(&leftmost, &text),
                    "len {len}, at {at}"
                );
            }
        }
    }

    /// A rule's compiled form stays small: a bounded repetition of a Unicode class
    /// (`[^\s'"]{4,128}`) compiles to one copy of the class's UTF-8 automaton per count, which
    /// once made two rules alone hold 35 MiB at start and 80 MiB more once searched. Values
    /// are bounded by what follows them instead (or not at all: masking a longer value whole is
    /// what it should do).
    #[test]
    fn every_rules_compiled_regex_stays_small() {
        const BUDGET: usize = 1 << 20;
        let mut over = Vec::new();
        for spec in crate::mask::rules::RULES {
            if spec.pattern.is_empty() {
                continue;
            }
            let regex = regex_automata::meta::Regex::new(spec.pattern).expect("rules compile");
            let used = regex.memory_usage();
            eprintln!("{:>9} {}", used, spec.id);
            if used > BUDGET {
                over.push((spec.id, used));
            }
        }
        assert!(
            over.is_empty(),
            "rules over {BUDGET} bytes compiled: {over:?}"
        );
    }
}
