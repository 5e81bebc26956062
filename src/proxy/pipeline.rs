//! The request's life, written down once. The proxy runs these stages in this order for every
//! request, and `tollgate policy explain` runs the same functions for one hypothetical request
//! without sending it; a stage passes the request on, answers it (a [`Refusal`]), or holds it
//! (approval).
//!
//! | stage | what | where |
//! |---|---|---|
//! | authenticate | `Proxy-Authorization`: a token or a JWT | [`crate::identity`] |
//! | target | inside a tunnel, the request must target the tunnel's host; no upgrades | handler |
//! | decide | the host: refused (denied host, then a provider the profile does not allow), tunneled, or intercepted | [`decide`] |
//! | mask | secrets and identifiers become placeholders | [`crate::mask`] |
//! | place | model and regions; the profile's providers, regions and models | [`place`] |
//! | approval | a rule of approvals.yaml asks for a person | [`approval_rule`] |
//! | forward | through the verified upstream client | hudsucker |
//! | restore | placeholders back in the answer, streams event by event | [`crate::mask::restore`] |
//! | record | every exchange, refused and failed ones too | [`crate::record`] |

use super::refusal::Refusal;
use crate::approval::rules::{ApprovalRule, Facts};
use crate::identity::Identity;
use crate::mask::{Finding, RequestFacts};
use crate::policy::access::Profile;
use crate::policy::{AccessError, Action, Policy};
use crate::providers::Provider;
use crate::providers::residency::{Location, RequestView};
use std::sync::Arc;

/// The stages, in order.
pub const STAGES: [&str; 9] = [
    "authenticate",
    "target",
    "decide",
    "mask",
    "place",
    "approval",
    "forward",
    "restore",
    "record",
];

/// What [`decide`] made of a host.
#[derive(Debug, Clone)]
pub enum Route {
    /// Its bytes pass through uninspected.
    Tunnel,
    /// An LLM API host: intercepted and inspected.
    Intercept(Arc<Provider>),
}

/// Decide: a denied host is refused whoever asks; then a provider the user's profile does not
/// allow; otherwise the host is tunneled or intercepted as the policy says.
pub fn decide(policy: &Policy, host: &str, identity: Option<&Identity>) -> Result<Route, Refusal> {
    let decision = policy.decide(host);
    if let Action::Deny { rule } = decision.action {
        return Err(Refusal::host_denied(host, rule));
    }
    if let Some(provider) = &decision.provider
        && let Err(denied) = policy
            .access()
            .profile(identity)
            .check_provider(&provider.id)
    {
        return Err(Refusal::access(AccessError::Denied(denied)));
    }
    match (decision.action, decision.provider) {
        (Action::Intercept, Some(provider)) => Ok(Route::Intercept(provider)),
        // Interception needs a provider; a host without one is only ever tunneled or denied.
        _ => Ok(Route::Tunnel),
    }
}

/// What [`place`] found: the model asked for and where the request goes.
#[derive(Debug, Default)]
pub struct Placement {
    pub model: Option<String>,
    pub location: Option<Location>,
}

/// The request as the place stage sees it.
pub struct PlaceInput<'a> {
    pub host: &'a str,
    pub path: &'a str,
    pub facts: &'a RequestFacts,
    pub has_body: bool,
}

/// Place: the model the request asks for and every place it goes to, checked against the
/// profile's providers, regions and models.
pub fn place(
    policy: &Policy,
    profile: &Profile,
    provider: &Provider,
    input: PlaceInput<'_>,
) -> (Placement, Result<(), Refusal>) {
    let model = policy.request_model(input.host, input.path, input.facts.model.as_deref());
    let view = RequestView {
        host: input.host,
        path: input.path,
        model: model.as_deref(),
        body_fields: &input.facts.fields,
        has_body: input.has_body,
    };
    let (location, result) = policy.check_request(profile, provider, view);
    (
        Placement { model, location },
        result.map_err(Refusal::access),
    )
}

/// What the approval stage judges a request on.
pub struct ApprovalInput<'a> {
    pub findings: &'a [Finding],
    pub provider: &'a str,
    pub placement: &'a Placement,
    pub user: &'a str,
    pub groups: &'a [String],
    pub body_bytes: u64,
}

/// Approval: the rule of approvals.yaml that asks for a person (or the default rule, when a
/// masking rule whose action is `approve` found something), if any.
pub fn approval_rule<'p>(
    policy: &'p Policy,
    input: &ApprovalInput<'_>,
) -> Option<&'p ApprovalRule> {
    let places: Vec<(&str, &'static [&'static str])> = input
        .placement
        .location
        .iter()
        .flat_map(|l| l.places.iter())
        .map(|p| (p.region.as_str(), p.jurisdictions()))
        .collect();
    let facts = Facts {
        findings: input
            .findings
            .iter()
            .map(|f| (&*f.rule, &*f.category))
            .collect(),
        masking_asks: input.findings.iter().any(|f| f.needs_approval),
        provider: input.provider,
        model: input.placement.model.as_deref(),
        places,
        user: input.user,
        groups: input.groups,
        body_bytes: input.body_bytes,
    };
    policy.approvals().rule_for(&facts)
}
