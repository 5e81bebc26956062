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
    pub fn new(value: &str) -> Self {
        Self(value.into())
    }

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
/// [`MIN_KNOWN_LEN`] bytes mixing two of letters, digits and symbols, 12 letters mixing cases,
/// or 16 bytes of anything (a passphrase). A word such as `postgres` or `same-origin` is not:
/// matching it everywhere would mask ordinary text.
pub fn is_distinctive(value: &str) -> bool {
    let letters = value.bytes().any(|b| b.is_ascii_alphabetic());
    let digits = value.bytes().any(|b| b.is_ascii_digit());
    let symbols = value
        .bytes()
        .any(|b| !b.is_ascii_alphanumeric() && !matches!(b, b'-' | b'_' | b'.' | b' '));
    let classes = letters as u8 + digits as u8 + symbols as u8;
    let cases = value.bytes().any(|b| b.is_ascii_uppercase())
        && value.bytes().any(|b| b.is_ascii_lowercase());
    (value.len() >= MIN_KNOWN_LEN && classes >= 2)
        || value.len() >= 16
        || (value.len() >= 12 && cases)
}
/// Values remembered per scope for matching out of context; the oldest go first beyond this
/// many, or beyond this many bytes of values.
const MAX_KNOWN_PER_SCOPE: usize = 4096;
const MAX_KNOWN_BYTES_PER_SCOPE: usize = 1 << 20;
/// Values masked since the scope's main automaton was built that are matched by a second, small
/// one; past this many, the main one is rebuilt with all of them. A scope that keeps meeting new
/// values (a CI runner reading many files) so rebuilds the main automaton once per this many new
/// values, not once per request.
const RECENT_KNOWN: u64 = 64;
/// What one vault entry costs beyond its strings (keys, cache bookkeeping), for the byte budget.
const ENTRY_OVERHEAD: usize = 160;

/// The vault: placeholder ↔ value, per scope (identity).
pub struct Vault {
    key: hmac::Key,
    entries: Cache<(Arc<str>, Arc<str>), Entry>,
    /// Per scope: the values masked so far, to find again wherever they reappear.
    scopes: Cache<Arc<str>, Arc<Mutex<ScopeIndex>>>,
    /// Resent elements' masking, used again ([`super::recall`]); `None` masks every element
    /// of every request afresh.
    recall: Option<super::recall::Recall>,
    ttl: Duration,
}

/// The bytes of resent elements remembered, at most, beside the vault (unless told otherwise).
const RECALL_BYTES: u64 = 8 << 20;

/// Numbers every known set ever built, so that a remembered element's masking is used again
/// only under the set it was made with.
static GENERATIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

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
    /// Oldest first.
    values: std::collections::VecDeque<KnownValue>,
    /// Bytes of the values held.
    bytes: usize,
    seen: HashSet<(Arc<str>, Arc<str>)>,
    /// Values ever added, and how many had been when `main` was built.
    added: u64,
    main_upto: u64,
    /// The automaton of every value up to `main_upto` (evicted ones linger until it is rebuilt).
    main: Option<Arc<Tier>>,
    /// What requests use now: `main` and, when values came after it, a small tier of those.
    built: Option<Arc<Known>>,
}

impl ScopeIndex {
    fn known(&mut self) -> Option<Arc<Known>> {
        if self.values.is_empty() {
            return None;
        }
        if let Some(built) = &self.built {
            return Some(built.clone());
        }
        let recent = self.added - self.main_upto;
        if self.main.is_none() || recent > RECENT_KNOWN {
            self.main = Tier::build(self.values.iter().cloned().collect()).map(Arc::new);
            self.main_upto = self.added;
        }
        let mut tiers: Vec<Arc<Tier>> = self.main.iter().cloned().collect();
        let recent = (self.added - self.main_upto) as usize;
        if recent > 0 {
            let skip = self.values.len().saturating_sub(recent);
            let newest = self.values.iter().skip(skip).cloned().collect();
            tiers.extend(Tier::build(newest).map(Arc::new));
        }
        let generation = GENERATIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.built = Some(Arc::new(Known { tiers, generation }));
        self.built.clone()
    }
}

/// Every value a scope has had masked: a value once masked is found again anywhere in that
/// scope's later requests (out of the context that first gave it away, in another JSON level,
/// after a round trip through the client), and gets its same placeholder.
pub struct Known {
    tiers: Vec<Arc<Tier>>,
    generation: u64,
}

/// Values in one automaton.
struct Tier {
    automaton: AhoCorasick,
    /// Pattern index → index in `values`.
    owner: Vec<usize>,
    values: Vec<KnownValue>,
}

impl Known {
    /// This set's number: no other set, built before or after, has the same (0 is no set).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Every occurrence of a known value in `text` that is not glued to more letters or digits:
    /// (start, end, value), leftmost-longest and not overlapping.
    pub fn find<'k>(&'k self, text: &str) -> Vec<(usize, usize, &'k KnownValue)> {
        match self.tiers.as_slice() {
            [] => Vec::new(),
            [one] => one.find(text),
            tiers => {
                let mut all: Vec<_> = tiers.iter().flat_map(|t| t.find(text)).collect();
                all.sort_by_key(|&(start, end, _)| (start, std::cmp::Reverse(end)));
                let mut kept: Vec<(usize, usize, &KnownValue)> = Vec::with_capacity(all.len());
                for m in all {
                    if kept.last().is_none_or(|&(_, end, _)| m.0 >= end) {
                        kept.push(m);
                    }
                }
                kept
            }
        }
    }
}

impl Tier {
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

    fn find<'k>(&'k self, text: &str) -> Vec<(usize, usize, &'k KnownValue)> {
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

/// The key placeholders are HMACs under (32 bytes). Shared by replicas behind one load
/// balancer, so that one conversation's turns get the same placeholders wherever they land.
#[derive(Clone)]
pub struct PlaceholderKey([u8; 32]);

impl PlaceholderKey {
    pub fn new(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }
}

impl std::fmt::Debug for PlaceholderKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PlaceholderKey(***)")
    }
}

impl Vault {
    /// A vault whose entries take at most about `budget_bytes` (values, placeholders and
    /// bookkeeping); past it, the least used entries go first. Each scope's known values are
    /// bounded apart ([`MAX_KNOWN_PER_SCOPE`] values, 1 MiB).
    pub fn new(ttl: Duration, budget_bytes: u64) -> Self {
        Self::with_key(ttl, budget_bytes, None)
    }

    /// As [`Vault::new`], with the key placeholders are derived under. Replicas given the same
    /// key give the same value the same placeholder; without one, a key is made at random.
    pub fn with_key(ttl: Duration, budget_bytes: u64, key: Option<&PlaceholderKey>) -> Self {
        let key = match key {
            Some(k) => k.0,
            None => {
                let mut key = [0u8; 32];
                SystemRandom::new()
                    .fill(&mut key)
                    .expect("the system random source works");
                key
            }
        };
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, &key),
            entries: Cache::builder()
                .weigher(
                    |(scope, placeholder): &(Arc<str>, Arc<str>), entry: &Entry| {
                        let bytes = scope.len() + placeholder.len() + entry.value.0.len();
                        u32::try_from(bytes + ENTRY_OVERHEAD).unwrap_or(u32::MAX)
                    },
                )
                .max_capacity(budget_bytes)
                // Least recently used first: TinyLFU (the default) would refuse to admit a new
                // placeholder at the budget, and the answer echoing it would not be restored.
                .eviction_policy(moka::policy::EvictionPolicy::lru())
                .time_to_idle(ttl)
                .build(),
            scopes: Cache::builder()
                .max_capacity((budget_bytes / MAX_KNOWN_BYTES_PER_SCOPE as u64).max(16))
                .eviction_policy(moka::policy::EvictionPolicy::lru())
                .time_to_idle(ttl)
                .build(),
            recall: Some(super::recall::Recall::new(ttl, RECALL_BYTES)),
            ttl,
        }
    }

    /// This vault, masking every element of every request afresh.
    pub fn without_recall(mut self) -> Self {
        self.recall = None;
        self
    }

    /// This vault, remembering at most `bytes` of resent elements' masking (none: 0).
    pub fn with_recall_budget(mut self, bytes: u64) -> Self {
        self.recall = (bytes > 0).then(|| super::recall::Recall::new(self.ttl, bytes));
        self
    }

    /// Resent elements' masking, if it is used again.
    pub fn recall(&self) -> Option<&super::recall::Recall> {
        self.recall.as_ref()
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
        index.known()
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
            while !index.values.is_empty()
                && (index.values.len() >= MAX_KNOWN_PER_SCOPE
                    || index.bytes + value.len() > MAX_KNOWN_BYTES_PER_SCOPE)
            {
                if let Some(old) = index.values.pop_front() {
                    index.bytes -= old.value.0.len();
                    index.seen.remove(&(old.kind.clone(), old.value.0.clone()));
                }
            }
            index.values.push_back(KnownValue {
                kind: kind.into(),
                category: category.into(),
                value: Secret(value.into()),
                restore,
            });
            index.bytes += value.len();
            index.added += 1;
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
    fn values_masked_after_the_main_automaton_are_found_with_it_and_it_is_rebuilt_only_now_and_then()
     {
        let v = Vault::new(Duration::from_secs(60), 64 << 20);
        let value = |i: u64| format!("Sekrit-{i:04}-x9Q");
        let mut rebuilt = 0;
        let mut last_main = None;
        for i in 0..300 {
            v.placeholder_known("ci", "password", "password", &value(i), true);
            let known = v.known("ci").unwrap();
            let main = v
                .scopes
                .get("ci")
                .unwrap()
                .lock()
                .unwrap()
                .main
                .clone()
                .unwrap();
            if last_main.as_ref().is_none_or(|m| !Arc::ptr_eq(m, &main)) {
                rebuilt += 1;
                last_main = Some(main);
            }
            // The oldest and the newest value are both found, each once.
            let text = format!("a {} b {} c", value(0), value(i));
            let found: Vec<_> = known
                .find(&text)
                .into_iter()
                .map(|(s, e, _)| &text[s..e])
                .collect();
            if i == 0 {
                assert_eq!(found, [value(0), value(0)]);
            } else {
                assert_eq!(found, [value(0), value(i)]);
            }
        }
        assert!(
            rebuilt <= 300 / RECENT_KNOWN as usize + 1,
            "{rebuilt} rebuilds"
        );
    }

    #[test]
    fn overlapping_matches_of_two_tiers_keep_the_longest() {
        let v = Vault::new(Duration::from_secs(60), 64 << 20);
        v.placeholder_known("s", "k", "k", "abcdef123456", true);
        v.known("s").unwrap();
        v.placeholder_known("s", "k", "k", "abcdef123456789xyz", true);
        let known = v.known("s").unwrap();
        let text = "x abcdef123456789xyz y";
        let found: Vec<_> = known
            .find(text)
            .into_iter()
            .map(|(s, e, _)| &text[s..e])
            .collect();
        assert_eq!(found, ["abcdef123456789xyz"]);
    }

    #[test]
    fn the_vault_stays_within_its_byte_budget() {
        let v = Vault::new(Duration::from_secs(600), 1 << 20);
        for i in 0..50_000 {
            let p = v.placeholder("alice", "aws-key", &format!("AKIA{i:016}"), true);
            // At the budget, a new placeholder is still taken in (the oldest go instead).
            if i % 100 == 0 {
                v.entries.run_pending_tasks();
                assert!(
                    v.restore("alice", &p).is_some(),
                    "placeholder {i} was not kept"
                );
            }
        }
        v.entries.run_pending_tasks();
        assert!(
            v.entries.weighted_size() <= 1 << 20,
            "{}",
            v.entries.weighted_size()
        );
        assert!(v.entries.entry_count() < 50_000);
        // Known values are bounded per scope in number and bytes.
        for i in 0..5_000 {
            v.placeholder_known("bob", "k", "k", &format!("{i:0>400}-Zz9"), true);
        }
        let index = v.scopes.get("bob").unwrap();
        let index = index.lock().unwrap();
        assert!(index.bytes <= MAX_KNOWN_BYTES_PER_SCOPE);
        assert!(index.values.len() <= MAX_KNOWN_PER_SCOPE);
    }

    #[test]
    fn same_value_same_placeholder_per_scope() {
        let v = Vault::new(Duration::from_secs(60), 1 << 20);
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
        let v = Vault::new(Duration::from_secs(60), 1 << 20);
        let p = v.placeholder("alice", "project", "Falcon", true);
        assert_eq!(v.restore("alice", &p).unwrap().expose(), "Falcon");
        assert!(v.restore("bob", &p).is_none());
        assert!(v.has_scope("alice") && !v.has_scope("bob"));
        let kept = v.placeholder("alice", "jwt", "eyJ...", false);
        assert!(v.restore("alice", &kept).is_none());
        assert_eq!(format!("{:?}", v.restore("alice", &p).unwrap()), "***");
    }
}
