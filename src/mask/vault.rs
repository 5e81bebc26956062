//! Placeholders and the in-memory vault that maps them back to the values they stand for.
//!
//! A placeholder reads `TOLLGATE_<KIND>_<TAG>`: upper-case letters, digits and `_` only, so it
//! survives inside code, quotes, URLs, shell commands, JSON and YAML, and models copy it like any
//! constant. `TAG` is an HMAC of the value under a key made at start-up, scoped by identity: the
//! same value gets the same placeholder in every message and every turn of that identity's
//! conversation (which also keeps provider prompt caches warm), and nothing about the value can
//! be learned from it. The vault lives in memory only, each entry dropped after the TTL without use.

use aho_corasick::{AhoCorasick, MatchKind};
use moka::sync::Cache;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What every placeholder starts with.
pub const PREFIX: &str = "TOLLGATE_";
/// Length of the tag that ends a placeholder.
const TAG_LEN: usize = 10;
/// No placeholder is longer than this (prefix, kind and tag).
pub const MAX_LEN: usize = 96;

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// A value taken out of a request. Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<str>);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[derive(Clone, Debug)]
struct Entry {
    value: Secret,
    restore: bool,
}

/// Values shorter than this are not looked for out of context (see [`Known`]): short strings
/// occur by chance in ordinary text.
pub const MIN_KNOWN_LEN: usize = 6;

/// Whether a value is distinctive enough to be looked for out of context: at least
/// [`MIN_KNOWN_LEN`] bytes mixing two of letters, digits and symbols, or 16 bytes of anything
/// (a passphrase). A word such as `postgres` or `same-origin` is not: matching it everywhere
/// would mask ordinary text.
pub fn is_distinctive(value: &str) -> bool {
    let letters = value.bytes().any(|b| b.is_ascii_alphabetic());
    let digits = value.bytes().any(|b| b.is_ascii_digit());
    let symbols = value
        .bytes()
        .any(|b| !b.is_ascii_alphanumeric() && !matches!(b, b'-' | b'_' | b'.' | b' '));
    let classes = letters as u8 + digits as u8 + symbols as u8;
    (value.len() >= MIN_KNOWN_LEN && classes >= 2) || value.len() >= 16
}
/// Values remembered per scope for matching out of context; the oldest go first beyond this.
const MAX_KNOWN_PER_SCOPE: usize = 4096;

/// The vault: placeholder ↔ value, per scope (identity).
pub struct Vault {
    key: hmac::Key,
    entries: Cache<(Arc<str>, Arc<str>), Entry>,
    /// Per scope: the values masked so far, to find again wherever they reappear.
    scopes: Cache<Arc<str>, Arc<Mutex<ScopeIndex>>>,
}

/// One value the vault holds, as the known-value matcher needs it.
#[derive(Debug, Clone)]
pub struct KnownValue {
    pub kind: Arc<str>,
    pub category: Arc<str>,
    pub value: Secret,
    pub restore: bool,
}

#[derive(Default)]
struct ScopeIndex {
    values: Vec<KnownValue>,
    seen: HashSet<(Arc<str>, Arc<str>)>,
    built: Option<Arc<Known>>,
}

/// Every value a scope has had masked, in one automaton: a value once masked is found again
/// anywhere in that scope's later requests (out of the context that first gave it away, in
/// another JSON level, after a round trip through the client), and gets its same placeholder.
pub struct Known {
    automaton: AhoCorasick,
    /// Pattern index → index in `values`.
    owner: Vec<usize>,
    values: Vec<KnownValue>,
}

impl Known {
    fn build(values: Vec<KnownValue>) -> Option<Self> {
        let mut patterns: Vec<String> = Vec::new();
        let mut owner = Vec::new();
        for (i, v) in values.iter().enumerate() {
            let plain = v.value.expose();
            patterns.push(plain.to_owned());
            owner.push(i);
            // The same value as it reads inside a JSON string literal that was not decoded
            // (a multi-line key pasted into a command).
            let quoted = serde_json::to_string(plain).unwrap_or_default();
            let escaped = quoted.get(1..quoted.len().saturating_sub(1)).unwrap_or("");
            if escaped != plain && !escaped.is_empty() {
                patterns.push(escaped.to_owned());
                owner.push(i);
            }
        }
        let automaton = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(&patterns)
            .ok()?;
        Some(Self {
            automaton,
            owner,
            values,
        })
    }

    /// Every occurrence of a known value in `text` that is not glued to more letters or digits:
    /// (start, end, value).
    pub fn find<'k>(&'k self, text: &str) -> Vec<(usize, usize, &'k KnownValue)> {
        let bytes = text.as_bytes();
        self.automaton
            .find_iter(text)
            .filter_map(|m| {
                let value = &self.values[self.owner[m.pattern().as_usize()]];
                let v = value.value.expose().as_bytes();
                // A long random value counts even glued to a flag (`-pXk9…`); a shorter one must
                // stand on its own.
                let strong = v.len() >= 10 && super::assign::looks_random(value.value.expose());
                let glued_before = !strong
                    && m.start() > 0
                    && v.first().is_some_and(u8::is_ascii_alphanumeric)
                    && bytes[m.start() - 1].is_ascii_alphanumeric();
                let glued_after = !strong
                    && m.end() < bytes.len()
                    && v.last().is_some_and(u8::is_ascii_alphanumeric)
                    && bytes[m.end()].is_ascii_alphanumeric();
                (!glued_before && !glued_after).then_some((m.start(), m.end(), value))
            })
            .collect()
    }
}

impl Vault {
    pub fn new(ttl: Duration, capacity: u64) -> Self {
        let mut key = [0u8; 32];
        SystemRandom::new()
            .fill(&mut key)
            .expect("the system random source works");
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, &key),
            entries: Cache::builder()
                .max_capacity(capacity)
                .time_to_idle(ttl)
                .build(),
            scopes: Cache::builder()
                .max_capacity(capacity)
                .time_to_idle(ttl)
                .build(),
        }
    }

    /// The placeholder for `value` of `kind` (a rule id or category) in `scope`, remembered so it
    /// can be restored. `restore: false` keeps the placeholder in responses.
    pub fn placeholder(&self, scope: &str, kind: &str, value: &str, restore: bool) -> String {
        self.remember(scope, kind, kind, value, restore, false)
    }

    /// As [`Vault::placeholder`], and the value is also looked for in the scope's later
    /// requests wherever it appears (see [`Known`]), when it is long enough to match safely.
    pub fn placeholder_known(
        &self,
        scope: &str,
        kind: &str,
        category: &str,
        value: &str,
        restore: bool,
    ) -> String {
        self.remember(scope, kind, category, value, restore, true)
    }

    /// The values of `scope` to look for in a new request, if it has any.
    pub fn known(&self, scope: &str) -> Option<Arc<Known>> {
        let index = self.scopes.get(scope)?;
        let mut index = index.lock().ok()?;
        if index.values.is_empty() {
            return None;
        }
        if index.built.is_none() {
            index.built = Known::build(index.values.clone()).map(Arc::new);
        }
        index.built.clone()
    }

    fn remember(
        &self,
        scope: &str,
        kind: &str,
        category: &str,
        value: &str,
        restore: bool,
        known: bool,
    ) -> String {
        let mut ctx = hmac::Context::with_key(&self.key);
        for part in [scope, kind, value] {
            ctx.update(&(part.len() as u64).to_be_bytes());
            ctx.update(part.as_bytes());
        }
        let tag = ctx.sign();
        let tag: String = tag.as_ref()[..TAG_LEN]
            .iter()
            .map(|b| BASE32[(b & 31) as usize] as char)
            .collect();
        let placeholder = format!("{PREFIX}{}_{tag}", kind_slug(kind));
        let scope: Arc<str> = scope.into();
        self.entries.insert(
            (scope.clone(), placeholder.as_str().into()),
            Entry {
                value: Secret(value.into()),
                restore,
            },
        );
        let index = self
            .scopes
            .get_with(scope, || Arc::new(Mutex::new(ScopeIndex::default())));
        if known
            && is_distinctive(value)
            && let Ok(mut index) = index.lock()
            && index.seen.insert((kind.into(), value.into()))
        {
            if index.values.len() >= MAX_KNOWN_PER_SCOPE {
                let old = index.values.remove(0);
                index.seen.remove(&(old.kind.clone(), old.value.0.clone()));
            }
            index.values.push(KnownValue {
                kind: kind.into(),
                category: category.into(),
                value: Secret(value.into()),
                restore,
            });
            index.built = None;
        }
        placeholder
    }

    /// The value behind `placeholder` in `scope`, if it is one and may be restored.
    pub fn restore(&self, scope: &str, placeholder: &str) -> Option<Secret> {
        self.entries
            .get(&(Arc::from(scope), Arc::from(placeholder)))
            .filter(|e| e.restore)
            .map(|e| e.value)
    }

    /// Whether `scope` has any placeholder that could appear in a response.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.contains_key(scope)
    }
}

/// `github-pat` → `GITHUB_PAT`; anything but letters and digits becomes `_`.
fn kind_slug(kind: &str) -> String {
    let slug: String = kind
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .take(48)
        .collect();
    if slug.is_empty() {
        "VALUE".into()
    } else {
        slug
    }
}

/// Whether `s` is, exactly and entirely, a placeholder by its grammar:
/// `TOLLGATE_<KIND>_<TAG>`, KIND of `A-Z0-9_` (at most 48), TAG 10 base32 characters.
pub fn is_placeholder_token(s: &str) -> bool {
    let Some(rest) = s.strip_prefix(PREFIX) else {
        return false;
    };
    let b = rest.as_bytes();
    if b.len() < TAG_LEN + 2 || b.len() > 48 + 1 + TAG_LEN {
        return false;
    }
    let (kind, tag) = b.split_at(b.len() - TAG_LEN);
    tag.iter().all(|c| BASE32.contains(c))
        && kind.last() == Some(&b'_')
        && kind.len() >= 2
        && kind.iter().all(|&c| is_placeholder_byte(c))
}

/// Whether `b` can be part of a placeholder after its prefix.
pub fn is_placeholder_byte(b: u8) -> bool {
    b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_value_same_placeholder_per_scope() {
        let v = Vault::new(Duration::from_secs(60), 100);
        let a = v.placeholder("alice", "github-pat", "ghp_x", true);
        assert_eq!(a, v.placeholder("alice", "github-pat", "ghp_x", true));
        assert_ne!(a, v.placeholder("bob", "github-pat", "ghp_x", true));
        assert_ne!(a, v.placeholder("alice", "github-pat", "ghp_y", true));
        assert!(a.starts_with("TOLLGATE_GITHUB_PAT_"), "{a}");
        assert!(a.bytes().skip(PREFIX.len()).all(is_placeholder_byte));
        assert!(a.len() <= MAX_LEN);
    }

    #[test]
    fn restores_only_in_its_own_scope() {
        let v = Vault::new(Duration::from_secs(60), 100);
        let p = v.placeholder("alice", "project", "Falcon", true);
        assert_eq!(v.restore("alice", &p).unwrap().expose(), "Falcon");
        assert!(v.restore("bob", &p).is_none());
        assert!(v.has_scope("alice") && !v.has_scope("bob"));
        let kept = v.placeholder("alice", "jwt", "eyJ...", false);
        assert!(v.restore("alice", &kept).is_none());
        assert_eq!(format!("{:?}", v.restore("alice", &p).unwrap()), "***");
    }
}
