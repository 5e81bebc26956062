//! Placeholders and the in-memory vault that maps them back to the values they stand for.
//!
//! A placeholder reads `TOLLGATE_<KIND>_<TAG>`: upper-case letters, digits and `_` only, so it
//! survives inside code, quotes, URLs, shell commands, JSON and YAML, and models copy it like any
//! constant. `TAG` is an HMAC of the value under a key made at start-up, scoped by identity: the
//! same value gets the same placeholder in every message and every turn of that identity's
//! conversation (which also keeps provider prompt caches warm), and nothing about the value can
//! be learned from it. The vault lives in memory only, each entry dropped after the TTL without use.

use moka::sync::Cache;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use std::fmt;
use std::sync::Arc;
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

/// The vault: placeholder ↔ value, per scope (identity).
pub struct Vault {
    key: hmac::Key,
    entries: Cache<(Arc<str>, Arc<str>), Entry>,
    /// Scopes that hold at least one entry, so responses of the others skip restoring.
    scopes: Cache<Arc<str>, ()>,
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
        self.scopes.insert(scope, ());
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
