//! OIDC identity: `Bearer` JWTs from the company's identity provider (or a JWT in the password of
//! Basic credentials, for clients that can only send Basic). The signature is checked against the
//! provider's JWKS (RS256/384/512, PS256, ES256/384 or EdDSA, through jsonwebtoken on ring), and
//! the issuer, audience, `exp` and `nbf` (with a small leeway) against the configuration.
//!
//! The JWKS comes from a file or an HTTPS URL. It is cached; refreshed in the background when
//! older than `refresh`; and fetched again at once when a token names a key it does not hold (a
//! rotation), at most once per `min_refresh`. A refresh that fails keeps the keys already held.

use super::Identity;
use jsonwebtoken::jwk::{Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, errors::ErrorKind};
use serde::Deserialize;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// Algorithms accepted: asymmetric only (a shared-secret HS256 key would let anyone holding the
/// JWKS mint tokens).
const ALGORITHMS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Fetches a JWKS over HTTPS; the proxy provides one that trusts the same roots as upstreams.
pub trait Fetch: Send + Sync {
    fn fetch<'a>(
        &'a self,
        url: &'a http::Uri,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<u8>, String>> + Send + 'a>>;

    /// Posts a form (`application/x-www-form-urlencoded`) and returns the answer's body: the
    /// console's exchange of an authorization code for tokens.
    fn post_form<'a>(
        &'a self,
        url: &'a http::Uri,
        form: String,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<u8>, String>> + Send + 'a>> {
        let _ = form;
        Box::pin(async move { Err(format!("{url}: this fetcher cannot post")) })
    }
}

/// Why a JWT was not accepted. Never carries the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("the token is not a well-formed JWT")]
    Malformed,
    #[error("the token is signed with {0:?}, which is not accepted")]
    Algorithm(Algorithm),
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token is for another audience")]
    Audience,
    #[error("the token is from another issuer")]
    Issuer,
    #[error("the token's signature does not verify")]
    Signature,
    #[error("the token is signed with a key the identity provider does not publish")]
    UnknownKey,
    #[error("the token lacks the `{0}` claim")]
    MissingClaim(String),
    /// The keys could not be had at all: not the client's fault.
    #[error("the identity provider's keys cannot be fetched: {0}")]
    KeysUnavailable(String),
}

/// `oidc:` in identity.yaml.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// The `iss` tokens must carry.
    pub issuer: String,
    /// The `aud` tokens must carry (one of them).
    #[serde(deserialize_with = "one_or_many")]
    pub audience: Vec<String>,
    /// An `https://` URL, or a file (relative to the policy directory).
    pub jwks: String,
    /// The claim that names the user.
    #[serde(default = "default_user_claim")]
    pub user_claim: String,
    /// The claim that lists the user's groups (an array of strings, or one string).
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
    /// Clock skew allowed on `exp` and `nbf`.
    #[serde(default = "default_leeway", with = "humantime_serde")]
    pub leeway: Duration,
    /// Keys older than this are fetched again.
    #[serde(default = "default_refresh", with = "humantime_serde")]
    pub refresh: Duration,
    /// Least time between two fetches (unknown keys in tokens cannot force more).
    #[serde(default = "default_min_refresh", with = "humantime_serde")]
    pub min_refresh: Duration,
    /// Signing in to the web console through the provider (authorization code with PKCE).
    #[serde(default)]
    pub console: Option<ConsoleLogin>,
}

/// `oidc.console:` the web console as a public client of the identity provider: the browser is
/// sent to its authorization endpoint and back with a code, which the console exchanges (with
/// its PKCE verifier) for an ID token, checked like any JWT.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleLogin {
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub client_id: String,
    /// Where the provider sends the browser back: this listener's `/console/oidc/callback`, as
    /// the browser reaches it (and as registered with the provider).
    pub redirect_uri: String,
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
}

fn default_scopes() -> Vec<String> {
    vec!["openid".into(), "profile".into(), "email".into()]
}

fn default_user_claim() -> String {
    "sub".into()
}
fn default_groups_claim() -> String {
    "groups".into()
}
fn default_leeway() -> Duration {
    Duration::from_secs(60)
}
fn default_refresh() -> Duration {
    Duration::from_secs(3600)
}
fn default_min_refresh() -> Duration {
    Duration::from_secs(30)
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

/// Where the keys come from.
#[derive(Debug, Clone)]
pub enum JwksSource {
    File(PathBuf),
    Url(http::Uri),
}

/// One usable key of the JWKS.
struct Key {
    kid: Option<String>,
    key: DecodingKey,
}

#[derive(Clone, Default)]
struct Keys {
    keys: Arc<Vec<Key>>,
    /// When the keys were last fetched successfully.
    fetched: Option<Instant>,
    /// When a fetch was last tried.
    tried: Option<Instant>,
    /// Why the last fetch failed, if it did.
    failure: Option<String>,
}

/// The OIDC verifier: configuration plus the cached keys.
pub struct Oidc {
    config: OidcConfig,
    source: JwksSource,
    keys: Mutex<Keys>,
    /// One fetch at a time; others wait for its result.
    fetching: tokio::sync::Mutex<()>,
}

impl Oidc {
    /// How the console signs in through the provider, when configured.
    pub fn console(&self) -> Option<&ConsoleLogin> {
        self.config.console.as_ref()
    }

    pub fn issuer(&self) -> &str {
        &self.config.issuer
    }
}

impl std::fmt::Debug for Oidc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Oidc")
            .field("issuer", &self.config.issuer)
            .field("source", &self.source)
            .finish()
    }
}

impl Oidc {
    /// The JWKS file the keys come from, when they come from a file.
    pub fn jwks_file(&self) -> Option<&std::path::Path> {
        match &self.source {
            JwksSource::File(path) => Some(path),
            _ => None,
        }
    }

    /// Validates the configuration; a JWKS file is read now, so a bad one stops the start.
    /// Errors are (field, message).
    pub fn new(
        config: OidcConfig,
        base: Option<&std::path::Path>,
    ) -> Result<Self, (String, String)> {
        if config.audience.is_empty() {
            return Err(("oidc.audience".into(), "name at least one audience".into()));
        }
        if let Some(console) = &config.console {
            for (field, url) in [
                (
                    "oidc.console.authorization_endpoint",
                    &console.authorization_endpoint,
                ),
                ("oidc.console.token_endpoint", &console.token_endpoint),
            ] {
                if !url.starts_with("https://") || url.parse::<http::Uri>().is_err() {
                    return Err((field.into(), format!("{url:?} is not an https:// URL")));
                }
            }
            if !console.redirect_uri.ends_with("/console/oidc/callback")
                || console.redirect_uri.parse::<http::Uri>().is_err()
            {
                return Err((
                    "oidc.console.redirect_uri".into(),
                    "name this listener's /console/oidc/callback, as browsers reach it".into(),
                ));
            }
            if console.client_id.is_empty() {
                return Err(("oidc.console.client_id".into(), "must not be empty".into()));
            }
        }
        let source = if config.jwks.starts_with("https://") {
            let uri: http::Uri = config
                .jwks
                .parse()
                .map_err(|e| ("oidc.jwks".to_owned(), format!("not a URL: {e}")))?;
            JwksSource::Url(uri)
        } else if config.jwks.contains("://") {
            return Err((
                "oidc.jwks".into(),
                "keys are fetched over https:// only (or read from a file)".into(),
            ));
        } else {
            let path = PathBuf::from(&config.jwks);
            JwksSource::File(match base {
                Some(base) if path.is_relative() => base.join(path),
                _ => path,
            })
        };
        let oidc = Self {
            config,
            source,
            keys: Mutex::new(Keys::default()),
            fetching: tokio::sync::Mutex::new(()),
        };
        if let JwksSource::File(path) = &oidc.source {
            let bytes = std::fs::read(path)
                .map_err(|e| ("oidc.jwks".to_owned(), format!("{}: {e}", path.display())))?;
            let keys = parse_jwks(&bytes).map_err(|e| ("oidc.jwks".to_owned(), e))?;
            oidc.store(keys);
        }
        Ok(oidc)
    }

    pub fn source(&self) -> &JwksSource {
        &self.source
    }

    fn current(&self) -> Keys {
        self.keys.lock().expect("key cache lock").clone()
    }

    fn store(&self, keys: Vec<Key>) {
        let now = Instant::now();
        *self.keys.lock().expect("key cache lock") = Keys {
            keys: Arc::new(keys),
            fetched: Some(now),
            tried: Some(now),
            failure: None,
        };
    }

    /// A failed fetch keeps the keys held: it must not lock everyone out.
    fn note_failed_try(&self, failure: String) {
        let mut keys = self.keys.lock().expect("key cache lock");
        keys.tried = Some(Instant::now());
        keys.failure = Some(failure);
    }

    /// Fetches the keys again, unless another task just did or the last try is too recent.
    async fn refresh(&self, fetch: &dyn Fetch, seen: Option<Instant>) {
        let _one = self.fetching.lock().await;
        let now = self.current();
        if now.tried != seen {
            return; // someone else fetched (or tried) while we waited
        }
        if let Some(tried) = now.tried
            && tried.elapsed() < self.config.min_refresh
        {
            return;
        }
        let result = match &self.source {
            JwksSource::File(path) => {
                std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
            }
            JwksSource::Url(url) => fetch.fetch(url).await,
        };
        match result.and_then(|bytes| parse_jwks(&bytes)) {
            Ok(keys) => {
                info!(keys = keys.len(), "identity provider keys loaded");
                self.store(keys);
            }
            Err(e) => {
                warn!(error = %e, "identity provider keys could not be refreshed");
                self.note_failed_try(e);
            }
        }
    }

    /// Fetches the keys if none are held yet or they are older than `refresh`. The proxy calls
    /// it at start (so the first user does not wait) and then periodically, so no request ever
    /// waits on a routine refresh.
    pub async fn refresh_if_stale(&self, fetch: &dyn Fetch) {
        let keys = self.current();
        let stale = keys
            .fetched
            .is_none_or(|at| at.elapsed() >= self.config.refresh);
        if stale {
            self.refresh(fetch, keys.tried).await;
        }
    }

    /// How often [`Self::refresh_if_stale`] should be called.
    pub fn check_every(&self) -> Duration {
        self.config.min_refresh.max(Duration::from_secs(10))
    }

    /// Verifies a JWT and returns who it names.
    pub async fn verify(&self, token: &str, fetch: &dyn Fetch) -> Result<Identity, JwtError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| JwtError::Malformed)?;
        if !ALGORITHMS.contains(&header.alg) {
            return Err(JwtError::Algorithm(header.alg));
        }
        let mut keys = self.current();
        if keys.fetched.is_none() {
            self.refresh(fetch, keys.tried).await;
            keys = self.current();
        }
        let outcome = self.verify_with(&keys, token, header.alg, header.kid.as_deref());
        let outcome = match outcome {
            // A key we do not hold: the provider may have rotated. Look again.
            Err(JwtError::UnknownKey) => {
                self.refresh(fetch, keys.tried).await;
                keys = self.current();
                self.verify_with(&keys, token, header.alg, header.kid.as_deref())
            }
            other => other,
        };
        match outcome {
            Err(JwtError::UnknownKey) if keys.fetched.is_none() => Err(JwtError::KeysUnavailable(
                keys.failure
                    .unwrap_or_else(|| "no keys have been fetched yet".into()),
            )),
            other => other,
        }
    }

    fn verify_with(
        &self,
        keys: &Keys,
        token: &str,
        alg: Algorithm,
        kid: Option<&str>,
    ) -> Result<Identity, JwtError> {
        let candidates: Vec<&Key> = match kid {
            Some(kid) => keys
                .keys
                .iter()
                .filter(|k| k.kid.as_deref() == Some(kid))
                .collect(),
            None => keys.keys.iter().collect(),
        };
        if candidates.is_empty() {
            return Err(JwtError::UnknownKey);
        }
        let mut validation = Validation::new(alg);
        validation.leeway = self.config.leeway.as_secs();
        validation.validate_nbf = true;
        validation.set_audience(&self.config.audience);
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        let mut last = JwtError::UnknownKey;
        for key in candidates {
            match jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(
                token,
                &key.key,
                &validation,
            ) {
                Ok(data) => return self.identity(&data.claims),
                Err(e) => {
                    last = match e.kind() {
                        ErrorKind::ExpiredSignature => JwtError::Expired,
                        ErrorKind::ImmatureSignature => JwtError::NotYetValid,
                        ErrorKind::InvalidAudience => JwtError::Audience,
                        ErrorKind::InvalidIssuer => JwtError::Issuer,
                        ErrorKind::MissingRequiredClaim(c) => JwtError::MissingClaim(c.clone()),
                        // A key of another family (an EC key for an RS256 token): try the next.
                        ErrorKind::InvalidAlgorithm if kid.is_none() => continue,
                        ErrorKind::InvalidSignature
                        | ErrorKind::InvalidAlgorithm
                        | ErrorKind::InvalidEcdsaKey
                        | ErrorKind::InvalidRsaKey(_)
                        | ErrorKind::InvalidKeyFormat
                        | ErrorKind::Crypto(_) => JwtError::Signature,
                        _ => JwtError::Malformed,
                    };
                    if last != JwtError::Signature {
                        // The signature verified; the claims are what failed.
                        return Err(last);
                    }
                }
            }
        }
        Err(last)
    }

    fn identity(
        &self,
        claims: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Identity, JwtError> {
        let user = claims
            .get(&self.config.user_claim)
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| JwtError::MissingClaim(self.config.user_claim.clone()))?;
        let groups: Vec<String> = match claims.get(&self.config.groups_claim) {
            Some(serde_json::Value::Array(list)) => list
                .iter()
                .filter_map(|g| g.as_str().map(str::to_owned))
                .collect(),
            Some(serde_json::Value::String(one)) => vec![one.clone()],
            _ => Vec::new(),
        };
        let expires = claims
            .get("exp")
            .and_then(serde_json::Value::as_u64)
            .map(|exp| std::time::UNIX_EPOCH + Duration::from_secs(exp) + self.config.leeway);
        Ok(Identity {
            user: user.into(),
            groups: groups.into(),
            token: "oidc".into(),
            expires,
        })
    }
}

/// The signing keys of a JWKS document. Keys for encryption, of unknown types or symmetric are
/// skipped; a document with no usable key is an error.
fn parse_jwks(bytes: &[u8]) -> Result<Vec<Key>, String> {
    #[derive(Deserialize)]
    struct Doc {
        keys: Vec<serde_json::Value>,
    }
    let doc: Doc = serde_json::from_slice(bytes).map_err(|e| format!("not a JWKS: {e}"))?;
    let mut keys = Vec::new();
    for value in doc.keys {
        let Ok(jwk) = serde_json::from_value::<Jwk>(value) else {
            continue;
        };
        if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption))
            || matches!(
                jwk.algorithm,
                jsonwebtoken::jwk::AlgorithmParameters::OctetKey(_)
            )
        {
            continue;
        }
        if let Ok(key) = DecodingKey::from_jwk(&jwk) {
            keys.push(Key {
                kid: jwk.common.key_id.clone(),
                key,
            });
        }
    }
    if keys.is_empty() {
        return Err("the JWKS holds no usable signing key".into());
    }
    Ok(keys)
}
