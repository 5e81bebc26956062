//! Who is using the proxy: tokens from `policies/identity.yaml`, checked on every CONNECT and
//! plain-HTTP request (`Proxy-Authorization: Basic user:token`). Tokens are stored only as
//! SHA-256 hashes; `tollgate token create NAME` makes one and prints the line to add.

use crate::policy::{LoadError, Source};
use base64::Engine;
use ring::digest::{SHA256, digest};
use ring::rand::{SecureRandom, SystemRandom};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Arc;

/// An authenticated user of the proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user: Arc<str>,
    pub groups: Arc<[String]>,
    /// The token's name, for the audit trail.
    pub token: Arc<str>,
}

/// The tokens the proxy accepts, by the hex SHA-256 of the token.
#[derive(Debug, Default)]
pub struct Tokens {
    by_hash: HashMap<String, Identity>,
}

impl Tokens {
    pub fn parse(source: &Source) -> Result<Self, LoadError> {
        let file: IdentityFile = source.deserialize()?;
        let mut by_hash = HashMap::new();
        for (i, t) in file.tokens.into_iter().enumerate() {
            let hash = t.sha256.to_ascii_lowercase();
            if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(source.invalid(
                    format!("tokens[{i}].sha256"),
                    "64 hexadecimal characters, as `tollgate token create` prints them",
                ));
            }
            let identity = Identity {
                user: t.user.unwrap_or_else(|| t.name.clone()).into(),
                groups: t.groups.into(),
                token: t.name.into(),
            };
            if by_hash.insert(hash, identity).is_some() {
                return Err(source.invalid(format!("tokens[{i}].sha256"), "listed twice"));
            }
        }
        Ok(Self { by_hash })
    }

    /// Whether any token is configured (authentication on).
    pub fn is_enabled(&self) -> bool {
        !self.by_hash.is_empty()
    }

    /// The identity a `Proxy-Authorization` value proves, if any.
    pub fn authenticate(&self, header: Option<&str>) -> Option<Identity> {
        let encoded = header?.trim().strip_prefix("Basic ")?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        let (_, token) = decoded.split_once(':')?;
        self.by_hash.get(&hash_hex(token)).cloned()
    }

    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }
}

/// A new random token and its hash.
pub fn new_token() -> (String, String) {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system random source works");
    let token = format!(
        "tg_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    let hash = hash_hex(&token);
    (token, hash)
}

fn hash_hex(token: &str) -> String {
    digest(&SHA256, token.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct IdentityFile {
    #[serde(default)]
    tokens: Vec<TokenEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenEntry {
    name: String,
    sha256: String,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    groups: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user: &str, token: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{token}"))
        )
    }

    #[test]
    fn a_created_token_authenticates_and_others_do_not() {
        let (token, hash) = new_token();
        let tokens = Tokens::parse(&Source::inline(
            "identity.yaml",
            &format!("tokens:\n  - {{ name: ci, sha256: {hash}, user: ci-bot, groups: [ci] }}\n"),
        ))
        .unwrap();
        let id = tokens.authenticate(Some(&basic("anyone", &token))).unwrap();
        assert_eq!(&*id.user, "ci-bot");
        assert_eq!(&*id.token, "ci");
        assert!(
            tokens
                .authenticate(Some(&basic("ci", "tg_wrong")))
                .is_none()
        );
        assert!(tokens.authenticate(Some("Bearer x")).is_none());
        assert!(tokens.authenticate(None).is_none());
    }

    #[test]
    fn bad_hashes_name_the_field() {
        let err = Tokens::parse(&Source::inline(
            "identity.yaml",
            "tokens:\n  - { name: x, sha256: nothex }\n",
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("tokens[0].sha256"), "{err}");
    }
}
