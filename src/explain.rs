//! `tollgate policy explain`: what the proxy would do with one request, and why, without sending
//! anything. It runs the proxy's own stages ([`crate::proxy::pipeline`]) in their order: decide
//! the host (a denied host, then a provider the profile does not allow), mask the body, place
//! the request and check its regions and model, and find the approval rule that would ask.

use crate::identity::Identity;
use crate::mask::vault::Vault;
use crate::mask::{Masker, RequestFacts};
use crate::policy::{Action, Policy};
use crate::providers::residency::Location;
use crate::proxy::pipeline::{self, ApprovalInput, PlaceInput, Route};
use crate::proxy::refusal::Refusal;
use serde::Serialize;
use std::fmt;
use std::time::Duration;

/// The request to explain.
#[derive(Debug, Clone, Default)]
pub struct Question {
    pub host: String,
    pub path: String,
    /// The user; their groups come from identity.yaml's tokens, plus `groups`.
    pub user: Option<String>,
    pub groups: Vec<String>,
    /// The request body (JSON, as the client would send it).
    pub body: Option<Vec<u8>>,
}

/// What the proxy would do, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    pub host: String,
    pub path: String,
    pub provider: Option<String>,
    /// `intercept`, `tunnel` or `deny`, as decided for the host.
    pub handling: &'static str,
    pub user: Option<String>,
    pub groups: Vec<String>,
    /// Where the user's identity comes from.
    pub identity: String,
    /// The access profile that applies, and where it is written.
    pub profile: String,
    pub profile_rule: String,
    pub model: Option<String>,
    pub places: Vec<PlaceView>,
    /// The regions the profile allows this provider, if it restricts them.
    pub allowed_regions: Option<Vec<String>>,
    /// Masking findings by rule (`github-pat:1`), never values.
    pub masked: String,
    /// The approval rule that would ask for a person, and how.
    pub approval: Option<ApprovalView>,
    /// `allowed`, `needs-approval`, `tunneled` or `refused`.
    pub verdict: &'static str,
    pub status: u16,
    pub reason: Option<&'static str>,
    pub rule: Option<String>,
    pub why: String,
}

/// The approval a request would wait for.
#[derive(Debug, Clone, Serialize)]
pub struct ApprovalView {
    pub rule: String,
    pub mode: &'static str,
    #[serde(with = "humantime_serde")]
    pub wait: Duration,
    pub approvers: Vec<String>,
}

/// One place the request would go to.
#[derive(Debug, Clone, Serialize)]
pub struct PlaceView {
    pub region: String,
    pub jurisdictions: Vec<&'static str>,
    pub source: &'static str,
    pub evidence: String,
}

impl Explanation {
    pub fn is_allowed(&self) -> bool {
        self.verdict != "refused"
    }

    fn refuse(&mut self, refusal: Refusal) {
        self.verdict = "refused";
        self.status = refusal.status().as_u16();
        self.reason = Some(refusal.reason.slug());
        self.rule = refusal.rule;
        self.why = refusal.message;
    }

    fn place(&mut self, location: &Location) {
        self.places = location
            .places
            .iter()
            .map(|p| PlaceView {
                region: p.region.clone(),
                jurisdictions: p.jurisdictions().to_vec(),
                source: p.origin.as_str(),
                evidence: p.evidence.clone(),
            })
            .collect();
    }
}

/// Explains `question` under `policy`.
pub fn explain(policy: &Policy, question: &Question) -> Explanation {
    let host = crate::policy::hosts::normalize_host(&question.host);
    let decision = policy.decide(&host);
    let identity = identity_of(policy, question);
    let profile = policy.access().profile(identity.as_ref().map(|(i, _)| i));
    let mut out = Explanation {
        host: host.clone(),
        path: question.path.clone(),
        provider: decision.provider.as_ref().map(|p| p.id.clone()),
        handling: match decision.action {
            Action::Intercept => "intercept",
            Action::Tunnel => "tunnel",
            Action::Deny { .. } => "deny",
        },
        user: identity.as_ref().map(|(i, _)| i.user.to_string()),
        groups: identity
            .as_ref()
            .map(|(i, _)| i.groups.to_vec())
            .unwrap_or_default(),
        identity: identity
            .as_ref()
            .map_or_else(|| "none given".to_owned(), |(_, from)| from.clone()),
        profile: profile.name.clone(),
        profile_rule: format!("policy.yaml: {}", profile.field),
        model: None,
        places: Vec::new(),
        allowed_regions: None,
        masked: "nothing".into(),
        approval: None,
        verdict: "allowed",
        status: 200,
        reason: None,
        rule: None,
        why: String::new(),
    };
    // Decide, as at CONNECT.
    let provider = match pipeline::decide(policy, &host, identity.as_ref().map(|(i, _)| i)) {
        Err(refusal) => {
            out.refuse(refusal);
            return out;
        }
        Ok(Route::Tunnel) => {
            out.verdict = "tunneled";
            out.why = "the host is not intercepted: its bytes pass through uninspected".into();
            return out;
        }
        Ok(Route::Intercept(provider)) => provider,
    };
    out.allowed_regions = profile.regions_for(&provider.id);

    let mut facts = RequestFacts::default();
    let mut findings = Vec::new();
    if let Some(body) = &question.body {
        let vault = Vault::new(Duration::from_secs(60), 16 << 20);
        let masker = Masker {
            policy: policy.masking_for(profile),
            vault: &vault,
            scope: "explain",
        };
        let content_type = serde_json::from_slice::<serde_json::Value>(body)
            .is_ok()
            .then_some("application/json");
        match masker.mask_body(content_type, None, body.clone().into()) {
            Ok(masked) => {
                out.masked = crate::mask::summarize(&masked.findings);
                facts = masked.facts;
                findings = masked.findings;
            }
            Err(err) => {
                out.refuse(Refusal::masking(err));
                return out;
            }
        }
    }
    let body_bytes = question.body.as_ref().map_or(0, Vec::len);
    let (placement, placed) = pipeline::place(
        policy,
        profile,
        &provider,
        PlaceInput {
            host: &host,
            path: &question.path,
            facts: &facts,
            has_body: body_bytes > 0,
        },
    );
    out.model = placement.model.clone();
    if let Some(location) = &placement.location {
        out.place(location);
    }
    if let Err(refusal) = placed {
        out.refuse(refusal);
        return out;
    }
    out.why = match &out.allowed_regions {
        Some(allowed) => format!(
            "every place the request goes to is allowed ({})",
            allowed.join(", ")
        ),
        None => "the profile does not restrict regions for this provider".into(),
    };
    let no_groups = Vec::new();
    let user = out.user.clone().unwrap_or_else(|| "(any)".into());
    let rule = pipeline::approval_rule(
        policy,
        &ApprovalInput {
            findings: &findings,
            provider: &provider.id,
            placement: &placement,
            user: &user,
            groups: identity
                .as_ref()
                .map_or(&no_groups[..], |(i, _)| &i.groups[..]),
            body_bytes: body_bytes as u64,
        },
    );
    if let Some(rule) = rule {
        out.verdict = "needs-approval";
        out.rule = Some(format!("approvals.yaml: {}", rule.name));
        out.why = format!(
            "{}; then it waits for a person: {}",
            out.why,
            match rule.mode {
                crate::approval::rules::Mode::Hold => format!(
                    "held up to {} for an approver",
                    humantime_serde::re::humantime::format_duration(rule.wait)
                ),
                crate::approval::rules::Mode::Retry => {
                    "refused with an approval id until approved, then let through once".to_owned()
                }
            }
        );
        out.approval = Some(ApprovalView {
            rule: rule.name.clone(),
            mode: rule.mode.as_str(),
            wait: rule.wait,
            approvers: rule.approvers.clone(),
        });
    }
    out
}

/// The identity to explain for: a token's user from identity.yaml, or the name as given (an OIDC
/// user), with any `--group` added.
fn identity_of(policy: &Policy, question: &Question) -> Option<(Identity, String)> {
    let user = question.user.as_deref();
    if user.is_none() && question.groups.is_empty() {
        return None;
    }
    let (mut identity, from) = match user.and_then(|u| policy.auth().tokens().find_user(u)) {
        Some(identity) => {
            let from = format!("identity.yaml token `{}`", identity.token);
            (identity, from)
        }
        None => (
            Identity {
                user: user.unwrap_or("(any)").into(),
                groups: Vec::new().into(),
                token: "explain".into(),
                expires: None,
            },
            "as given on the command line".to_owned(),
        ),
    };
    if !question.groups.is_empty() {
        let mut groups = identity.groups.to_vec();
        groups.extend(question.groups.iter().cloned());
        identity.groups = groups.into();
    }
    Some((identity, from))
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let line =
            |f: &mut fmt::Formatter<'_>, key: &str, value: &str| writeln!(f, "{key:<10} {value}");
        line(f, "request", &format!("{}{}", self.host, self.path))?;
        line(
            f,
            "provider",
            &format!(
                "{} ({})",
                self.provider.as_deref().unwrap_or("none"),
                self.handling
            ),
        )?;
        let user = match &self.user {
            Some(user) if self.groups.is_empty() => {
                format!("{user}, no groups ({})", self.identity)
            }
            Some(user) => format!(
                "{user}, groups {} ({})",
                self.groups.join(", "),
                self.identity
            ),
            None => "anyone (no --user or --group)".into(),
        };
        line(f, "user", &user)?;
        line(
            f,
            "profile",
            &format!("{} ({})", self.profile, self.profile_rule),
        )?;
        if let Some(model) = &self.model {
            line(f, "model", model)?;
        }
        for place in &self.places {
            let jurisdictions = if place.jurisdictions.is_empty() {
                "jurisdiction unknown".to_owned()
            } else {
                format!("jurisdiction {}", place.jurisdictions.join(" ⊂ "))
            };
            line(
                f,
                "region",
                &format!(
                    "{} ({jurisdictions}; from the {} {})",
                    place.region, place.source, place.evidence
                ),
            )?;
        }
        if self.handling == "intercept" && self.places.is_empty() && self.reason.is_none() {
            line(f, "region", "unknown")?;
        }
        if let Some(allowed) = &self.allowed_regions {
            line(f, "allowed", &allowed.join(", "))?;
        }
        if self.handling == "intercept" {
            line(f, "masked", &self.masked)?;
        }
        if let Some(a) = &self.approval {
            let approvers = if a.approvers.is_empty() {
                "anyone with the approver role".to_owned()
            } else {
                a.approvers.join(", ")
            };
            line(
                f,
                "approval",
                &format!(
                    "rule {} ({}, wait {}; approvers: {approvers})",
                    a.rule,
                    a.mode,
                    humantime_serde::re::humantime::format_duration(a.wait)
                ),
            )?;
        }
        let verdict = match self.reason {
            Some(reason) => format!("REFUSED {} {reason}", self.status),
            None => self.verdict.to_uppercase(),
        };
        line(f, "decision", &verdict)?;
        if let Some(rule) = &self.rule {
            line(f, "rule", rule)?;
        }
        line(f, "why", &self.why)
    }
}
