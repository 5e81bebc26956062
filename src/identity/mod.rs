//! Who is using the proxy, from `policies/identity.yaml`, checked on every CONNECT and
//! plain-HTTP request (`Proxy-Authorization`):
//!
//! - `Basic user:token` with tokens stored only as SHA-256 hashes (`tollgate token create NAME`
//!   makes one and prints the line to add), for CI runners and service accounts;
//! - `Bearer <JWT>` from an OIDC identity provider ([`oidc`]), or the JWT as the Basic password.

pub mod oidc;

use crate::source::{LoadError, Source};
use base64::Engine;
use oidc::{Fetch, JwtError, Oidc, OidcConfig};
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
    /// The token's name, for the audit trail (`oidc` for a JWT).
    pub token: Arc<str>,
    /// When the credentials stop being valid (a JWT's `exp`, plus the leeway).
    pub expires: Option<std::time::SystemTime>,
}

impl Identity {
    /// Whether the credentials have expired since they were checked.
    pub fn is_expired(&self) -> bool {
        self.expires
            .is_some_and(|at| std::time::SystemTime::now() > at)
    }
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
                expires: None,
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

    /// The identity of a token whose user is `user` (for `policy explain`).
    pub fn find_user(&self, user: &str) -> Option<Identity> {
        let mut found: Vec<&Identity> =
            self.by_hash.values().filter(|i| &*i.user == user).collect();
        found.sort_by(|a, b| a.token.cmp(&b.token));
        found.first().map(|i| (*i).clone())
    }

    /// The identity a token proves, if any.
    pub fn lookup(&self, token: &str) -> Option<Identity> {
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
    #[serde(default)]
    oidc: Option<OidcConfig>,
    #[serde(default)]
    admin: AdminFile,
}

/// `admin:` in identity.yaml: which groups hold which role on the admin API.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct AdminFile {
    #[serde(default)]
    roles: AdminRolesFile,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct AdminRolesFile {
    #[serde(default)]
    admin: Vec<String>,
    #[serde(default)]
    auditor: Vec<String>,
    #[serde(default)]
    approver: Vec<String>,
}

/// What a caller of the admin API may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, reload included.
    Admin,
    /// Read exchanges, sessions, the policy and the metrics.
    Auditor,
    /// Decide approvals.
    Approver,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Auditor => "auditor",
            Role::Approver => "approver",
        }
    }
}

/// The groups that hold each admin role.
#[derive(Debug, Default)]
pub struct AdminRoles {
    by_role: Vec<(Role, Vec<String>)>,
}

impl AdminRoles {
    /// The roles `identity`'s groups hold.
    pub fn of(&self, identity: &Identity) -> Vec<Role> {
        self.by_role
            .iter()
            .filter(|(_, groups)| identity.groups.iter().any(|g| groups.contains(g)))
            .map(|(role, _)| *role)
            .collect()
    }

    /// Whether any group holds any role.
    pub fn is_empty(&self) -> bool {
        self.by_role.iter().all(|(_, groups)| groups.is_empty())
    }
}

/// Why credentials were not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("this proxy needs credentials")]
    Missing,
    #[error("the proxy credentials were not accepted: {0}")]
    Rejected(String),
    /// The credentials could not be checked right now (the identity provider is unreachable).
    #[error("the proxy credentials cannot be checked right now: {0}")]
    Unavailable(String),
}

/// Everything identity.yaml configures: tokens and an OIDC provider.
#[derive(Debug, Default)]
pub struct Authenticator {
    tokens: Tokens,
    oidc: Option<Arc<Oidc>>,
    admin: AdminRoles,
}

impl Authenticator {
    pub fn parse(source: &Source) -> Result<Self, LoadError> {
        let tokens = Tokens::parse(source)?;
        let file: IdentityFile = source.deserialize()?;
        let oidc = file
            .oidc
            .map(|config| Oidc::new(config, source.dir()))
            .transpose()
            .map_err(|(field, message)| source.invalid(field, message))?
            .map(Arc::new);
        let roles = file.admin.roles;
        let admin = AdminRoles {
            by_role: vec![
                (Role::Admin, roles.admin),
                (Role::Auditor, roles.auditor),
                (Role::Approver, roles.approver),
            ],
        };
        Ok(Self {
            tokens,
            oidc,
            admin,
        })
    }

    /// Whether `identity`, checked when its connection opened, would still be accepted as it
    /// is: its token still listed with the same user and groups (or, for a JWT, OIDC still
    /// configured). A reload that revokes or changes a token ends its open tunnels' requests.
    pub fn still_accepts(&self, identity: &Identity) -> bool {
        if &*identity.token == "oidc" {
            return self.oidc.is_some();
        }
        self.tokens.by_hash.values().any(|i| {
            i.token == identity.token && i.user == identity.user && i.groups == identity.groups
        })
    }

    /// Which groups hold which admin role.
    pub fn admin_roles(&self) -> &AdminRoles {
        &self.admin
    }

    /// The identity an admin API `Authorization: Bearer` value proves: a token from
    /// identity.yaml or, when OIDC is configured, a JWT.
    pub async fn authenticate_admin(
        &self,
        header: Option<&str>,
        fetch: &dyn Fetch,
    ) -> Result<Identity, AuthError> {
        let header = header.map(str::trim).ok_or(AuthError::Missing)?;
        let (scheme, value) = header.split_once(' ').unwrap_or((header, ""));
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(AuthError::Rejected(format!(
                "the `{scheme}` scheme is not supported here; send `Authorization: Bearer <token or JWT>`"
            )));
        }
        self.prove(value.trim(), fetch).await
    }

    /// The identity a secret proves: a JWT when OIDC is configured and it looks like one, else
    /// a token of identity.yaml.
    async fn prove(&self, secret: &str, fetch: &dyn Fetch) -> Result<Identity, AuthError> {
        if self.oidc.is_some() && looks_like_jwt(secret) {
            return self.verify_jwt(secret, fetch).await;
        }
        self.tokens
            .lookup(secret)
            .ok_or_else(|| AuthError::Rejected("unknown token".into()))
    }

    /// Whether credentials are required (any token or an OIDC provider configured).
    pub fn is_enabled(&self) -> bool {
        self.tokens.is_enabled() || self.oidc.is_some()
    }

    pub fn tokens(&self) -> &Tokens {
        &self.tokens
    }

    pub fn oidc(&self) -> Option<&Arc<Oidc>> {
        self.oidc.as_ref()
    }

    /// The identity a `Proxy-Authorization` value proves.
    pub async fn authenticate(
        &self,
        header: Option<&str>,
        fetch: &dyn Fetch,
    ) -> Result<Identity, AuthError> {
        let header = header.map(str::trim).ok_or(AuthError::Missing)?;
        let (scheme, value) = header.split_once(' ').unwrap_or((header, ""));
        let value = value.trim();
        if scheme.eq_ignore_ascii_case("bearer") {
            return self.verify_jwt(value, fetch).await;
        }
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(AuthError::Rejected(format!(
                "the `{scheme}` scheme is not supported; use Basic or Bearer"
            )));
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(value)
            .ok()
            .and_then(|d| String::from_utf8(d).ok())
            .ok_or_else(|| AuthError::Rejected("Basic credentials are not valid base64".into()))?;
        let (_, secret) = decoded
            .split_once(':')
            .ok_or_else(|| AuthError::Rejected("Basic credentials lack a password".into()))?;
        self.prove(secret, fetch).await
    }

    async fn verify_jwt(&self, token: &str, fetch: &dyn Fetch) -> Result<Identity, AuthError> {
        let Some(oidc) = &self.oidc else {
            return Err(AuthError::Rejected(
                "bearer tokens are not accepted: no OIDC provider is configured".into(),
            ));
        };
        oidc.verify(token, fetch).await.map_err(|e| match e {
            JwtError::KeysUnavailable(_) => AuthError::Unavailable(e.to_string()),
            _ => AuthError::Rejected(e.to_string()),
        })
    }
}

/// A compact JWS: three base64url parts, the first a JSON header (`eyJ`).
fn looks_like_jwt(s: &str) -> bool {
    s.starts_with("eyJ") && s.bytes().filter(|&b| b == b'.').count() == 2
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

    #[test]
    fn a_created_token_authenticates_and_others_do_not() {
        let (token, hash) = new_token();
        let tokens = Tokens::parse(&Source::inline(
            "identity.yaml",
            &format!("tokens:\n  - {{ name: ci, sha256: {hash}, user: ci-bot, groups: [ci] }}\n"),
        ))
        .unwrap();
        let id = tokens.lookup(&token).unwrap();
        assert_eq!(&*id.user, "ci-bot");
        assert_eq!(&*id.token, "ci");
        assert!(tokens.lookup("tg_wrong").is_none());
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
