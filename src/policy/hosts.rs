//! Host patterns (`api.openai.com`, `*.api.openai.com`, `*-aiplatform.googleapis.com`) and sets of
//! them compiled into one `RegexSet`, so matching a host costs one pass whatever the list's length.

use regex::{RegexSet, RegexSetBuilder};
use std::fmt;

/// Why a host pattern was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HostPatternError {
    #[error("empty host pattern")]
    Empty,
    #[error("`{0}`: a host pattern holds only letters, digits, `-`, `_`, `.` and `*`")]
    BadCharacter(String),
    #[error("`{0}`: empty label (two dots in a row, or a leading or trailing dot)")]
    EmptyLabel(String),
    #[error("`{0}`: a host pattern names a host only, without a port or scheme")]
    NotAHost(String),
}

/// One validated host pattern.
///
/// - a leading `*.` matches one or more whole labels: `*.corp.example` matches `a.corp.example`
///   and `a.b.corp.example`, not `corp.example`;
/// - any other `*` matches one or more characters within a single label:
///   `*-aiplatform.googleapis.com`, `bedrock-runtime.*.amazonaws.com`;
/// - matching ignores case and a trailing dot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    text: String,
}

impl HostPattern {
    pub fn parse(input: &str) -> Result<Self, HostPatternError> {
        let text = normalize_host(input);
        if text.is_empty() {
            return Err(HostPatternError::Empty);
        }
        if text.parse::<std::net::Ipv6Addr>().is_ok() {
            return Ok(Self { text });
        }
        if text.contains(':') || text.contains('/') {
            return Err(HostPatternError::NotAHost(input.to_owned()));
        }
        if !text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'*'))
        {
            return Err(HostPatternError::BadCharacter(input.to_owned()));
        }
        let body = text.strip_prefix("*.").unwrap_or(&text);
        if body.split('.').any(str::is_empty) {
            return Err(HostPatternError::EmptyLabel(input.to_owned()));
        }
        Ok(Self { text })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The most specific DNS domain that holds every host this pattern matches: the labels after
    /// its last `*` (`*-aiplatform.googleapis.com` → `googleapis.com`), or the whole name when it
    /// has none. `None` for an IP address, and for a pattern whose last label holds a `*`.
    pub fn domain(&self) -> Option<&str> {
        if self.text.parse::<std::net::IpAddr>().is_ok() {
            return None;
        }
        match self.text.rfind('*') {
            None => Some(&self.text),
            Some(star) => {
                let after = &self.text[star + 1..];
                after.find('.').map(|dot| &after[dot + 1..])
            }
        }
    }

    fn to_regex(&self) -> String {
        let (prefix, body) = match self.text.strip_prefix("*.") {
            Some(body) => (r"(?:[a-z0-9_-]+\.)+", body),
            None => ("", self.text.as_str()),
        };
        let body = body
            .split('*')
            .map(regex::escape)
            .collect::<Vec<_>>()
            .join("[a-z0-9_-]+");
        format!("^{prefix}{body}$")
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Lower-cases a host and drops a trailing dot and IPv6 brackets, the form every lookup uses.
pub fn normalize_host(host: &str) -> String {
    let host = host.trim().trim_end_matches('.');
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    host.to_ascii_lowercase()
}

/// A list of host patterns matched together; answers which pattern matched first.
#[derive(Debug, Clone)]
pub struct HostSet {
    patterns: Vec<HostPattern>,
    set: RegexSet,
}

impl HostSet {
    pub fn new(patterns: Vec<HostPattern>) -> Self {
        let set = RegexSetBuilder::new(patterns.iter().map(HostPattern::to_regex))
            .size_limit(32 << 20)
            .build()
            .expect("host patterns are validated before they are compiled");
        Self { patterns, set }
    }

    pub fn empty() -> Self {
        Self::new(Vec::new())
    }

    /// Index of the first pattern that matches `host` (already normalized).
    pub fn first_match(&self, host: &str) -> Option<usize> {
        if self.patterns.is_empty() {
            return None;
        }
        self.set.matches(host).iter().next()
    }

    /// Indices of every pattern that matches `host` (already normalized).
    pub fn matches(&self, host: &str) -> impl Iterator<Item = usize> + '_ {
        let hits = if self.patterns.is_empty() {
            None
        } else {
            Some(self.set.matches(host).into_iter())
        };
        hits.into_iter().flatten()
    }

    pub fn pattern(&self, index: usize) -> &HostPattern {
        &self.patterns[index]
    }

    pub fn patterns(&self) -> &[HostPattern] {
        &self.patterns
    }

    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.patterns.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_answers_which_pattern_matched_first() {
        let set = HostSet::new(vec![
            HostPattern::parse("api.openai.com").unwrap(),
            HostPattern::parse("*.api.openai.com").unwrap(),
        ]);
        assert_eq!(set.first_match("eu.api.openai.com"), Some(1));
        assert_eq!(set.first_match("api.openai.com.evil.example"), None);
    }

    fn set(patterns: &[&str]) -> HostSet {
        HostSet::new(
            patterns
                .iter()
                .map(|p| HostPattern::parse(p).unwrap())
                .collect(),
        )
    }

    #[test]
    fn exact_pattern_matches_only_that_host() {
        let s = set(&["api.openai.com"]);
        assert_eq!(s.first_match("api.openai.com"), Some(0));
        assert_eq!(s.first_match("xapi.openai.com"), None);
        assert_eq!(s.first_match("api.openai.com.evil.net"), None);
        assert_eq!(s.first_match("api-openai.com"), None, "dots are literal");
    }

    #[test]
    fn leading_wildcard_matches_any_subdomain_depth_but_not_the_apex() {
        let s = set(&["*.corp.example"]);
        assert_eq!(s.first_match("a.corp.example"), Some(0));
        assert_eq!(s.first_match("a.b.corp.example"), Some(0));
        assert_eq!(s.first_match("corp.example"), None);
        assert_eq!(s.first_match("evilcorp.example"), None);
    }

    #[test]
    fn inner_wildcard_stays_within_one_label() {
        let s = set(&[
            "*-aiplatform.googleapis.com",
            "bedrock-runtime.*.amazonaws.com",
        ]);
        assert_eq!(
            s.first_match("europe-west4-aiplatform.googleapis.com"),
            Some(0)
        );
        assert_eq!(s.first_match("aiplatform.googleapis.com"), None);
        assert_eq!(s.first_match("x.y-aiplatform.googleapis.com"), None);
        assert_eq!(
            s.first_match("bedrock-runtime.eu-central-1.amazonaws.com"),
            Some(1)
        );
        assert_eq!(s.first_match("bedrock-runtime.a.b.amazonaws.com"), None);
    }

    #[test]
    fn domain_is_what_follows_the_last_wildcard_label() {
        let domain = |p: &str| HostPattern::parse(p).unwrap().domain().map(str::to_owned);
        assert_eq!(domain("API.OpenAI.com").as_deref(), Some("api.openai.com"));
        assert_eq!(
            domain("*.api.openai.com").as_deref(),
            Some("api.openai.com")
        );
        assert_eq!(
            domain("*-aiplatform.googleapis.com").as_deref(),
            Some("googleapis.com")
        );
        assert_eq!(
            domain("bedrock-runtime.*.amazonaws.com").as_deref(),
            Some("amazonaws.com")
        );
        assert_eq!(domain("localhost").as_deref(), Some("localhost"));
        for none in ["*", "api.*", "10.0.0.5", "::1"] {
            assert_eq!(domain(none), None, "{none}");
        }
    }

    #[test]
    fn first_listed_pattern_wins() {
        let s = set(&["*.api.openai.com", "eu.api.openai.com"]);
        assert_eq!(s.first_match("eu.api.openai.com"), Some(0));
    }

    #[test]
    fn normalizes_case_trailing_dot_and_brackets() {
        assert_eq!(normalize_host("API.OpenAI.com."), "api.openai.com");
        assert_eq!(normalize_host("[::1]"), "::1");
        let s = set(&["API.OPENAI.COM"]);
        assert_eq!(s.first_match(&normalize_host("Api.OpenAI.Com.")), Some(0));
    }

    #[test]
    fn rejects_malformed_patterns() {
        assert_eq!(HostPattern::parse(""), Err(HostPatternError::Empty));
        assert!(matches!(
            HostPattern::parse("a..b"),
            Err(HostPatternError::EmptyLabel(_))
        ));
        assert!(matches!(
            HostPattern::parse("exa mple.com"),
            Err(HostPatternError::BadCharacter(_))
        ));
        assert!(matches!(
            HostPattern::parse("https://x.com/"),
            Err(HostPatternError::NotAHost(_))
        ));
        assert!(matches!(
            HostPattern::parse("pastebin.com:443"),
            Err(HostPatternError::NotAHost(_))
        ));
        assert!(HostPattern::parse("::1").is_ok());
    }
}
