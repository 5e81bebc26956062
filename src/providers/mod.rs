//! The catalog of LLM API providers: which hosts belong to whom, whether Tollgate inspects them,
//! and how each one shapes its errors; and their wire formats, written down once: [`sse`] (the
//! one SSE reader), [`eventstream`] (AWS event-stream framing), [`stream`] (where each API puts
//! the model's output in its answers).

pub(crate) mod errors;
pub mod eventstream;
pub(crate) mod regions;
pub mod residency;
pub mod sse;
pub(crate) mod stream;

use crate::policy::hosts::{HostPattern, HostSet};
use crate::source::{LoadError, Source};
pub use errors::ErrorFormat;
use serde::Deserialize;
use std::collections::HashSet;
use std::sync::Arc;

/// What Tollgate does with a CONNECT to a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HostMode {
    /// Terminate TLS with a leaf from Tollgate's CA and inspect every request.
    Intercept,
    /// Pass the bytes through untouched; the client sees the upstream's own certificate.
    Tunnel,
    /// Refuse the CONNECT.
    Deny,
}

impl HostMode {
    pub fn as_str(self) -> &'static str {
        match self {
            HostMode::Intercept => "intercept",
            HostMode::Tunnel => "tunnel",
            HostMode::Deny => "deny",
        }
    }
}

/// One provider of the catalog.
#[derive(Debug, Clone)]
pub struct Provider {
    pub id: String,
    pub name: String,
    pub mode: HostMode,
    pub errors: ErrorFormat,
    /// How to tell where its requests go.
    pub residency: residency::Residency,
}

/// The validated catalog: providers and one host set to find them by.
#[derive(Debug, Clone)]
pub struct Catalog {
    providers: Vec<Arc<Provider>>,
    hosts: HostSet,
    /// `owner[i]` is the index in `providers` of the provider that host pattern `i` belongs to.
    owner: Vec<usize>,
}

impl Catalog {
    /// The provider whose host patterns match `host` (normalized), the first listed winning.
    pub fn lookup(&self, host: &str) -> Option<&Arc<Provider>> {
        self.hosts
            .first_match(host)
            .map(|i| &self.providers[self.owner[i]])
    }

    pub fn providers(&self) -> &[Arc<Provider>] {
        &self.providers
    }

    pub fn get_mut(&mut self, id: &str) -> Option<&mut Provider> {
        self.providers
            .iter_mut()
            .find(|p| p.id == id)
            .map(Arc::make_mut)
    }

    pub fn host_pattern_count(&self) -> usize {
        self.hosts.len()
    }

    /// Every host pattern of the catalog with the provider it belongs to, in listed order.
    pub fn host_patterns(&self) -> impl Iterator<Item = (&Provider, &HostPattern)> {
        self.owner
            .iter()
            .enumerate()
            .map(|(i, &owner)| (&*self.providers[owner], self.hosts.pattern(i)))
    }

    pub fn parse(source: &Source) -> Result<Self, LoadError> {
        let file: CatalogFile = source.deserialize()?;
        let mut providers = Vec::new();
        let mut patterns = Vec::new();
        let mut owner = Vec::new();
        let mut ids = HashSet::new();
        for (i, raw) in file.providers.into_iter().enumerate() {
            let at = |field: &str| format!("providers[{i}].{field}");
            if raw.id.is_empty()
                || !raw
                    .id
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            {
                return Err(source.invalid(
                    at("id"),
                    format!("`{}`: ids are lower-case letters, digits and `-`", raw.id),
                ));
            }
            if !ids.insert(raw.id.clone()) {
                return Err(source.invalid(at("id"), format!("`{}` is listed twice", raw.id)));
            }
            if raw.hosts.is_empty() {
                return Err(source.invalid(at("hosts"), "a provider needs at least one host"));
            }
            for (j, host) in raw.hosts.iter().enumerate() {
                let pattern = HostPattern::parse(host)
                    .map_err(|e| source.invalid(at(&format!("hosts[{j}]")), e.to_string()))?;
                patterns.push(pattern);
                owner.push(providers.len());
            }
            let residency =
                residency::Residency::parse(raw.residency).map_err(|(field, message)| {
                    source.invalid(at(&format!("residency.{field}")), message)
                })?;
            providers.push(Arc::new(Provider {
                name: raw.name.unwrap_or_else(|| raw.id.clone()),
                id: raw.id,
                mode: raw.mode,
                errors: raw.errors,
                residency,
            }));
        }
        Ok(Self {
            providers,
            hosts: HostSet::new(patterns),
            owner,
        })
    }
}

/// Token counts in a provider's `usage` object (OpenAI chat and Responses, Anthropic, Gemini's
/// `usageMetadata`, Bedrock Converse): (kind, count) with kinds `input`, `output`, `cache_read`,
/// `cache_write`.
pub fn token_counts(usage: &serde_json::Value) -> Vec<(&'static str, u64)> {
    const FIELDS: &[(&str, &str)] = &[
        ("input_tokens", "input"),
        ("prompt_tokens", "input"),
        ("promptTokenCount", "input"),
        ("inputTokens", "input"),
        ("output_tokens", "output"),
        ("completion_tokens", "output"),
        ("candidatesTokenCount", "output"),
        ("outputTokens", "output"),
        ("cache_read_input_tokens", "cache_read"),
        ("cachedContentTokenCount", "cache_read"),
        ("cacheReadInputTokens", "cache_read"),
        ("cache_creation_input_tokens", "cache_write"),
        ("cacheWriteInputTokens", "cache_write"),
    ];
    let mut out = Vec::new();
    for (field, kind) in FIELDS {
        if let Some(n) = usage.get(*field).and_then(serde_json::Value::as_u64) {
            out.push((*kind, n));
        }
    }
    // OpenAI reports cached prompt tokens inside the details object.
    if let Some(n) = usage
        .pointer("/prompt_tokens_details/cached_tokens")
        .or_else(|| usage.pointer("/input_tokens_details/cached_tokens"))
        .and_then(serde_json::Value::as_u64)
    {
        out.push(("cache_read", n));
    }
    out
}

/// The model named in a URL path: Gemini and Vertex `.../models/{model}:method`, Bedrock
/// `/model/{id}/...` (an id such as `anthropic.claude-v2:1`, or a percent-encoded ARN).
pub fn model_in_path(path: &str) -> Option<String> {
    let model = match path.split_once("/models/") {
        Some((_, rest)) => rest.split(['/', ':']).next()?,
        None => path.split_once("/model/")?.1.split('/').next()?,
    };
    let model = percent_encoding::percent_decode_str(model)
        .decode_utf8()
        .ok()?;
    (!model.is_empty()).then(|| model.into_owned())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    providers: Vec<RawProvider>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProvider {
    id: String,
    #[serde(default)]
    name: Option<String>,
    hosts: Vec<String>,
    #[serde(default = "default_mode")]
    mode: HostMode,
    #[serde(default)]
    errors: ErrorFormat,
    #[serde(default)]
    residency: residency::RawResidency,
}

fn default_mode() -> HostMode {
    HostMode::Intercept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn models_are_read_from_paths() {
        assert_eq!(
            crate::providers::model_in_path(
                "/v1beta/models/gemini-2.0-flash:streamGenerateContent"
            )
            .as_deref(),
            Some("gemini-2.0-flash")
        );
        assert_eq!(
            crate::providers::model_in_path(
                "/model/anthropic.claude-3-sonnet-20240229-v1:0/invoke"
            )
            .as_deref(),
            Some("anthropic.claude-3-sonnet-20240229-v1:0")
        );
        assert_eq!(
            crate::providers::model_in_path(
                "/model/arn%3Aaws%3Abedrock%3Aeu-central-1%3A1%3Ainference-profile%2Feu.anthropic.x/converse"
            )
            .as_deref(),
            Some("arn:aws:bedrock:eu-central-1:1:inference-profile/eu.anthropic.x")
        );
        assert_eq!(
            crate::providers::model_in_path("/v1/chat/completions"),
            None
        );
    }

    fn embedded() -> Catalog {
        Catalog::parse(&Source::embedded_catalog()).unwrap()
    }

    #[test]
    fn embedded_catalog_names_the_major_llm_hosts() {
        let c = embedded();
        for (host, id) in [
            ("api.openai.com", "openai"),
            ("eu.api.openai.com", "openai"),
            ("api.anthropic.com", "anthropic"),
            ("generativelanguage.googleapis.com", "gemini"),
            ("europe-west4-aiplatform.googleapis.com", "vertex"),
            ("aiplatform.googleapis.com", "vertex"),
            ("bedrock-runtime.eu-central-1.amazonaws.com", "bedrock"),
            ("myres.openai.azure.com", "azure-openai"),
            ("api.mistral.ai", "mistral"),
            ("api.eu.mistral.ai", "mistral"),
            ("api.githubcopilot.com", "copilot"),
        ] {
            let p = c
                .lookup(host)
                .unwrap_or_else(|| panic!("{host} not in catalog"));
            assert_eq!(p.id, id, "{host}");
            assert_eq!(p.mode, HostMode::Intercept, "{host}");
        }
        assert_eq!(c.lookup("api2.cursor.sh").unwrap().mode, HostMode::Tunnel);
        assert!(c.lookup("github.com").is_none());
        assert!(c.lookup("s3.amazonaws.com").is_none());
    }

    #[test]
    fn rejects_bad_host_and_names_the_field() {
        let src = Source::inline(
            "providers.yaml",
            "providers:\n  - id: x\n    hosts: [ok.example, 'bad host']\n",
        );
        let err = Catalog::parse(&src).unwrap_err().to_string();
        assert!(err.contains("providers.yaml"), "{err}");
        assert!(err.contains("providers[0].hosts[1]"), "{err}");
    }

    #[test]
    fn rejects_unknown_fields() {
        let src = Source::inline(
            "providers.yaml",
            "providers:\n  - id: x\n    hosts: [a.example]\n    hostz: []\n",
        );
        let err = Catalog::parse(&src).unwrap_err().to_string();
        assert!(err.contains("hostz"), "{err}");
    }
}
