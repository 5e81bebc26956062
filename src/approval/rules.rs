//! `approvals.yaml`: which requests wait for a person's approval, who may give it, for how
//! long a request may wait, and how (`hold` or `retry`). First matching rule wins; a masking
//! rule whose action is `approve` asks for the `default` rule when no rule here matches.

use crate::source::{LoadError, Source};
use regex::Regex;
use serde::Deserialize;
use std::time::Duration;

/// How a request that needs approval waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The request itself waits until approved, denied or timed out.
    #[default]
    Hold,
    /// The request is refused at once with an approval id; once approved, the same request
    /// retried goes through once.
    Retry,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Hold => "hold",
            Mode::Retry => "retry",
        }
    }
}

/// Where a rule's pending approvals are announced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    pub url: http::Uri,
    /// Where the HMAC-SHA256 key the body is signed with is kept (read at each send, so a
    /// rotated key takes effect without a reload).
    pub key: Option<WebhookKey>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookKey {
    /// An environment variable.
    Env(String),
    /// A file (relative paths are relative to approvals.yaml); surrounding whitespace is not
    /// part of the key.
    File(std::path::PathBuf),
}

impl WebhookKey {
    /// The key, or why it cannot be read.
    pub fn read(&self) -> Result<Vec<u8>, String> {
        match self {
            WebhookKey::Env(var) => std::env::var(var)
                .map(|k| k.trim().as_bytes().to_vec())
                .map_err(|_| format!("{var} is not set")),
            WebhookKey::File(path) => std::fs::read_to_string(path)
                .map(|k| k.trim().as_bytes().to_vec())
                .map_err(|e| format!("{}: {e}", path.display())),
        }
    }
}

/// One rule of approvals.yaml, validated.
#[derive(Debug)]
pub struct ApprovalRule {
    pub name: String,
    when: When,
    /// Groups whose members may decide (empty: anyone with the approver role).
    pub approvers: Vec<String>,
    pub mode: Mode,
    /// How long a held request waits, and how long a `retry` approval stays valid.
    pub wait: Duration,
    /// The longest window an approval may grant (zero: no grants).
    pub max_grant: Duration,
    pub webhook: Option<Webhook>,
}

#[derive(Debug, Default)]
struct When {
    findings: Vec<String>,
    providers: Vec<String>,
    models: Vec<Regex>,
    regions: Vec<String>,
    users: Vec<String>,
    groups: Vec<String>,
    min_body_bytes: Option<u64>,
}

impl When {
    fn is_empty(&self) -> bool {
        self.findings.is_empty()
            && self.providers.is_empty()
            && self.models.is_empty()
            && self.regions.is_empty()
            && self.users.is_empty()
            && self.groups.is_empty()
            && self.min_body_bytes.is_none()
    }
}

/// What a request is judged on: everything the stages before approval learned.
#[derive(Debug, Default)]
pub struct Facts<'a> {
    /// (rule id, category) of every finding.
    pub findings: Vec<(&'a str, &'a str)>,
    /// Whether a masking rule whose action is `approve` found something.
    pub masking_asks: bool,
    pub provider: &'a str,
    pub model: Option<&'a str>,
    /// Every region the request goes to, and their jurisdictions.
    pub places: Vec<(&'a str, &'static [&'static str])>,
    pub user: &'a str,
    pub groups: &'a [String],
    pub body_bytes: u64,
}

impl ApprovalRule {
    /// Whether every condition the rule sets holds for `facts` (each list: any of its items).
    fn matches(&self, f: &Facts<'_>) -> bool {
        let w = &self.when;
        (w.findings.is_empty()
            || f.findings.iter().any(|(rule, category)| {
                w.findings
                    .iter()
                    .any(|x| x == "*" || x == rule || x == category)
            }))
            && (w.providers.is_empty() || w.providers.iter().any(|p| p == f.provider))
            && (w.models.is_empty()
                || f.model
                    .is_some_and(|m| w.models.iter().any(|g| g.is_match(m))))
            && (w.regions.is_empty()
                || f.places.iter().any(|(region, jurisdictions)| {
                    w.regions
                        .iter()
                        .any(|r| r == region || jurisdictions.contains(&r.as_str()))
                }))
            && (w.users.is_empty() || w.users.iter().any(|u| u == f.user))
            && (w.groups.is_empty() || f.groups.iter().any(|g| w.groups.contains(g)))
            && w.min_body_bytes.is_none_or(|min| f.body_bytes >= min)
    }
}

/// approvals.yaml, validated.
#[derive(Debug)]
pub struct ApprovalPolicy {
    pub rules: Vec<ApprovalRule>,
    /// For masking's `approve` action when no rule matches.
    pub default: ApprovalRule,
    /// Groups whose members may approve their own requests (the decision says so).
    pub break_glass: Vec<String>,
}

impl Default for ApprovalPolicy {
    fn default() -> Self {
        Self {
            rules: Vec::new(),
            default: default_rule(RuleFile::default_for_masking()),
            break_glass: Vec::new(),
        }
    }
}

fn default_rule(file: RuleFile) -> ApprovalRule {
    ApprovalRule {
        name: "default".into(),
        when: When::default(),
        approvers: file.approvers,
        mode: file.mode,
        wait: file.wait,
        max_grant: file.max_grant,
        webhook: None,
    }
}

impl ApprovalPolicy {
    /// The rule that asks for approval of this request, if any.
    pub fn rule_for(&self, facts: &Facts<'_>) -> Option<&ApprovalRule> {
        self.rules
            .iter()
            .find(|r| r.matches(facts))
            .or(facts.masking_asks.then_some(&self.default))
    }

    /// The rule named `name` (`default` included).
    pub fn rule(&self, name: &str) -> Option<&ApprovalRule> {
        self.rules
            .iter()
            .chain(std::iter::once(&self.default))
            .find(|r| r.name == name)
    }

    /// Parses approvals.yaml. `known_findings` are the masking rule ids and categories, and
    /// `providers` the catalog's ids: a rule naming one that does not exist is an error.
    pub fn parse(
        source: &Source,
        known_findings: &[String],
        providers: &[String],
    ) -> Result<Self, LoadError> {
        let file: ApprovalsFile = source.deserialize()?;
        let mut rules = Vec::new();
        for (i, r) in file.rules.into_iter().enumerate() {
            let at = |field: &str| format!("rules[{i}].{field}");
            if r.name.trim().is_empty() {
                return Err(source.invalid(at("name"), "a rule needs a name"));
            }
            if r.name == "default" || rules.iter().any(|x: &ApprovalRule| x.name == r.name) {
                return Err(source.invalid(at("name"), format!("`{}` is taken", r.name)));
            }
            check_wait(source, &at("wait"), r.rule.wait)?;
            check_grant(source, &at("max_grant"), r.rule.max_grant)?;
            for (j, f) in r.when.findings.iter().enumerate() {
                if f != "*" && !known_findings.contains(f) {
                    return Err(source.invalid(
                        at(&format!("when.findings[{j}]")),
                        format!("`{f}` is neither a masking rule nor a category (masking.yaml, built-in rules)"),
                    ));
                }
            }
            for (j, region) in r.when.regions.iter().enumerate() {
                if !crate::providers::regions::is_known(&region.to_ascii_lowercase()) {
                    return Err(source.invalid(
                        at(&format!("when.regions[{j}]")),
                        format!("`{region}` is neither a region nor a jurisdiction Tollgate knows"),
                    ));
                }
            }
            for (j, p) in r.when.providers.iter().enumerate() {
                if !providers.contains(p) {
                    return Err(source.invalid(
                        at(&format!("when.providers[{j}]")),
                        format!("`{p}` is not a provider of providers.yaml"),
                    ));
                }
            }
            let webhook = match r.webhook {
                Some(w) => Some(parse_webhook(source, &at("webhook.url"), w)?),
                None => None,
            };
            let when = When {
                findings: r.when.findings,
                providers: r.when.providers,
                models: r.when.models.iter().map(|m| glob(m)).collect(),
                regions: r
                    .when
                    .regions
                    .iter()
                    .map(|x| x.to_ascii_lowercase())
                    .collect(),
                users: r.when.users,
                groups: r.when.groups,
                min_body_bytes: r.when.min_body_bytes,
            };
            if when.is_empty() {
                return Err(source.invalid(
                    at("when"),
                    "a rule needs at least one condition (findings, providers, models, regions, users, groups, min_body_bytes); one with none would hold every request",
                ));
            }
            rules.push(ApprovalRule {
                name: r.name,
                when,
                approvers: r.rule.approvers,
                mode: r.rule.mode,
                wait: r.rule.wait,
                max_grant: r.rule.max_grant,
                webhook,
            });
        }
        check_wait(source, "default.wait", file.default.wait)?;
        check_grant(source, "default.max_grant", file.default.max_grant)?;
        Ok(Self {
            rules,
            default: default_rule(file.default),
            break_glass: file.break_glass,
        })
    }
}

fn check_wait(source: &Source, field: &str, wait: Duration) -> Result<(), LoadError> {
    if wait.is_zero() || wait > Duration::from_secs(24 * 3600) {
        return Err(source.invalid(field, "must be more than 0 and at most 24h"));
    }
    Ok(())
}

fn check_grant(source: &Source, field: &str, max: Duration) -> Result<(), LoadError> {
    if max > Duration::from_secs(30 * 24 * 3600) {
        return Err(source.invalid(field, "at most 30 days (0s: no grants)"));
    }
    Ok(())
}

fn parse_webhook(source: &Source, field: &str, w: WebhookFile) -> Result<Webhook, LoadError> {
    let url: http::Uri = w
        .url
        .parse()
        .map_err(|_| source.invalid(field, "not a URL"))?;
    if !matches!(url.scheme_str(), Some("https" | "http")) || url.host().is_none() {
        return Err(source.invalid(field, "an http:// or https:// URL with a host"));
    }
    let key = match (w.secret_env, w.secret_file) {
        (Some(_), Some(_)) => {
            return Err(source.invalid(
                field.replace(".url", ".secret_file"),
                "give secret_env or secret_file, not both",
            ));
        }
        (Some(var), None) => Some(WebhookKey::Env(var)),
        (None, Some(file)) => Some(WebhookKey::File(match source.dir() {
            Some(dir) if file.is_relative() => dir.join(file),
            _ => file,
        })),
        (None, None) => None,
    };
    Ok(Webhook { url, key })
}

/// `*` matches any run of characters; everything else literally, ignoring case.
fn glob(text: &str) -> Regex {
    let body = text
        .split('*')
        .map(regex::escape)
        .collect::<Vec<_>>()
        .join(".*");
    Regex::new(&format!("(?i)^{body}$")).unwrap_or_else(|_| Regex::new("^$").expect("valid"))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApprovalsFile {
    #[serde(default)]
    break_glass: Vec<String>,
    #[serde(default = "RuleFile::default_for_masking")]
    default: RuleFile,
    #[serde(default)]
    rules: Vec<NamedRuleFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NamedRuleFile {
    name: String,
    when: WhenFile,
    #[serde(flatten)]
    rule: RuleFile,
    #[serde(default)]
    webhook: Option<WebhookFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    #[serde(default)]
    approvers: Vec<String>,
    #[serde(default)]
    mode: Mode,
    #[serde(default = "default_wait", with = "humantime_serde")]
    wait: Duration,
    #[serde(default = "default_max_grant", with = "humantime_serde")]
    max_grant: Duration,
}

impl RuleFile {
    fn default_for_masking() -> Self {
        Self {
            approvers: Vec::new(),
            mode: Mode::Hold,
            wait: default_wait(),
            max_grant: default_max_grant(),
        }
    }
}

fn default_wait() -> Duration {
    Duration::from_secs(120)
}

fn default_max_grant() -> Duration {
    Duration::from_secs(3600)
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct WhenFile {
    #[serde(default)]
    findings: Vec<String>,
    #[serde(default)]
    providers: Vec<String>,
    #[serde(default)]
    models: Vec<String>,
    #[serde(default)]
    regions: Vec<String>,
    #[serde(default)]
    users: Vec<String>,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    min_body_bytes: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookFile {
    url: String,
    #[serde(default)]
    secret_env: Option<String>,
    #[serde(default)]
    secret_file: Option<std::path::PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<ApprovalPolicy, LoadError> {
        ApprovalPolicy::parse(
            &Source::inline("approvals.yaml", yaml),
            &["private-key".into(), "credential".into()],
            &["openai".into(), "anthropic".into()],
        )
    }

    #[test]
    fn the_first_matching_rule_wins_and_masking_falls_back_to_the_default() {
        let p = parse(
            "rules:\n  - name: keys\n    when: { findings: [private-key] }\n    approvers: [sec]\n  - name: big-openai\n    when: { providers: [openai], min_body_bytes: 1000 }\n    mode: retry\n    wait: 10m\n",
        )
        .unwrap();
        let facts = |findings, provider, bytes, asks| Facts {
            findings,
            provider,
            body_bytes: bytes,
            masking_asks: asks,
            ..Facts::default()
        };
        let key = [("private-key", "credential")];
        assert_eq!(
            p.rule_for(&facts(key.to_vec(), "openai", 5000, false))
                .unwrap()
                .name,
            "keys"
        );
        let big = p.rule_for(&facts(vec![], "openai", 5000, false)).unwrap();
        assert_eq!((big.name.as_str(), big.mode), ("big-openai", Mode::Retry));
        assert_eq!(big.wait, Duration::from_secs(600));
        assert!(p.rule_for(&facts(vec![], "openai", 10, false)).is_none());
        assert!(
            p.rule_for(&facts(vec![], "anthropic", 5000, false))
                .is_none()
        );
        let asked = p.rule_for(&facts(vec![], "anthropic", 5, true)).unwrap();
        assert_eq!(
            (asked.name.as_str(), asked.wait),
            ("default", Duration::from_secs(120))
        );
    }

    #[test]
    fn errors_name_the_file_and_the_field() {
        for (yaml, field) in [
            ("rules:\n  - name: x\n    when: {}\n", "rules[0].when"),
            (
                "rules:\n  - name: x\n    when: { findings: [nope] }\n",
                "rules[0].when.findings[0]",
            ),
            (
                "rules:\n  - name: x\n    when: { providers: [mistral] }\n",
                "rules[0].when.providers[0]",
            ),
            (
                "rules:\n  - name: x\n    when: { regions: [eu, atlantis] }\n",
                "rules[0].when.regions[1]",
            ),
            (
                "rules:\n  - name: x\n    when: { users: [a] }\n    mode: later\n",
                "rules[0]",
            ),
            (
                "rules:\n  - name: x\n    when: { users: [a] }\n    wait: 0s\n",
                "rules[0].wait",
            ),
            (
                "rules:\n  - name: x\n    when: { users: [a] }\n  - name: x\n    when: { users: [b] }\n",
                "rules[1].name",
            ),
            (
                "rules:\n  - name: x\n    when: { users: [a] }\n    webhook: { url: 'ftp://x' }\n",
                "rules[0].webhook.url",
            ),
        ] {
            let err = parse(yaml).unwrap_err().to_string();
            assert!(err.starts_with("approvals.yaml"), "{err}");
            assert!(err.contains(field), "{field} in {err}");
        }
    }
}
