//! Who may send what where (`access:` in policy.yaml): which providers, regions and models a
//! user may reach. `default` applies to everyone; an entry under `groups` applies to the users and
//! groups it names (the first matching entry wins) and inherits whatever it does not set.

use crate::identity::Identity;
use crate::providers::Catalog;
use crate::providers::residency::{Location, Place};
use regex::Regex;
use serde::Deserialize;
use std::collections::BTreeMap;

/// The rules that apply to one user: the default ones, or a group's.
#[derive(Debug)]
pub struct Profile {
    /// `default`, or the group entry's name.
    pub name: String,
    /// Where it is written (`access.groups[0]`), for refusals.
    pub field: String,
    /// Provider ids allowed; `None` allows every provider of the catalog.
    providers: Option<Vec<String>>,
    /// Provider id (or `*`) → the regions and jurisdictions allowed.
    regions: BTreeMap<String, Vec<RegionRule>>,
    models_allow: Vec<Glob>,
    models_deny: Vec<Glob>,
    /// Masking lists and rule actions that differ from masking.yaml, if any.
    pub masking: Option<MaskingOverride>,
}

pub use crate::mask::MaskingOverride;

/// Why a request is not allowed: the rule and a sentence for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    pub kind: DeniedKind,
    pub rule: String,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeniedKind {
    Provider,
    Region,
    Model,
}

#[derive(Debug)]
struct RegionRule {
    text: String,
    glob: Option<Regex>,
}

impl RegionRule {
    fn new(text: &str) -> Self {
        let text = text.to_ascii_lowercase();
        let glob = text.contains('*').then(|| glob_regex(&text));
        Self { text, glob }
    }

    fn allows(&self, place: &Place) -> bool {
        self.text == "*"
            || self.text == place.region
            || place.jurisdictions().contains(&self.text.as_str())
            || self
                .glob
                .as_ref()
                .is_some_and(|g| g.is_match(&place.region))
    }
}

#[derive(Debug)]
struct Glob {
    text: String,
    regex: Regex,
}

impl Glob {
    fn new(text: &str) -> Self {
        Self {
            text: text.to_owned(),
            regex: glob_regex(&text.to_ascii_lowercase()),
        }
    }
}

/// `*` matches any run of characters; everything else literally, ignoring case.
fn glob_regex(text: &str) -> Regex {
    let body = text
        .split('*')
        .map(regex::escape)
        .collect::<Vec<_>>()
        .join(".*");
    Regex::new(&format!("(?i)^{body}$")).expect("escaped globs compile")
}

impl Profile {
    /// Whether this profile lets requests reach `provider` at all.
    pub fn check_provider(&self, provider: &str) -> Result<(), Denied> {
        match &self.providers {
            Some(list) if !list.iter().any(|p| p == provider) => Err(Denied {
                kind: DeniedKind::Provider,
                rule: format!("{}.providers", self.field),
                message: format!(
                    "{} may use only these providers: {}; not {provider}",
                    self.who(),
                    list.join(", ")
                ),
            }),
            _ => Ok(()),
        }
    }

    /// Whether every place the request goes to is allowed for `provider`.
    pub fn check_location(&self, provider: &str, location: &Location) -> Result<(), Denied> {
        let (key, rules) = match self.regions.get(provider) {
            Some(rules) => (provider, rules),
            None => match self.regions.get("*") {
                Some(rules) => ("*", rules),
                None => return Ok(()),
            },
        };
        if rules.iter().any(|r| r.text == "*") {
            return Ok(());
        }
        let allowed: Vec<&str> = rules.iter().map(|r| r.text.as_str()).collect();
        let denied = |seen: String| Denied {
            kind: DeniedKind::Region,
            rule: format!("{}.regions.{key}", self.field),
            message: format!(
                "{} may send {provider} requests only to {}; this one would go to {seen}",
                self.who(),
                allowed.join(", ")
            ),
        };
        if location.is_unknown() {
            return Err(denied(
                "an unknown region (nothing in the host, path or body says where)".into(),
            ));
        }
        for place in &location.places {
            if !rules.iter().any(|r| r.allows(place)) {
                let jurisdiction = place
                    .jurisdictions()
                    .first()
                    .map_or_else(|| "unknown jurisdiction".to_owned(), |j| j.to_string());
                return Err(denied(format!("{place}, jurisdiction {jurisdiction}")));
            }
        }
        Ok(())
    }

    /// Whether the model a request names is allowed. Under an allowlist, a request with a body
    /// that names no model (or none that could be read) is refused; one without a body (listing
    /// models, fetching a file) asks for no inference and passes.
    pub fn check_model(&self, model: Option<&str>, has_body: bool) -> Result<(), Denied> {
        let Some(model) = model else {
            if has_body && !self.models_allow.is_empty() {
                let allowed: Vec<&str> =
                    self.models_allow.iter().map(|g| g.text.as_str()).collect();
                return Err(Denied {
                    kind: DeniedKind::Model,
                    rule: format!("{}.models.allow", self.field),
                    message: format!(
                        "{} may use only models matching {}, and this request names no model the proxy can read (for an Azure deployment, give its model in policy.yaml: locations.HOST.deployments.NAME.model)",
                        self.who(),
                        allowed.join(", ")
                    ),
                });
            }
            return Ok(());
        };
        if let Some(g) = self.models_deny.iter().find(|g| g.regex.is_match(model)) {
            return Err(Denied {
                kind: DeniedKind::Model,
                rule: format!("{}.models.deny: {}", self.field, g.text),
                message: format!("{} may not use model {model}", self.who()),
            });
        }
        if !self.models_allow.is_empty()
            && !self.models_allow.iter().any(|g| g.regex.is_match(model))
        {
            let allowed: Vec<&str> = self.models_allow.iter().map(|g| g.text.as_str()).collect();
            return Err(Denied {
                kind: DeniedKind::Model,
                rule: format!("{}.models.allow", self.field),
                message: format!(
                    "{} may use only models matching {}; not {model}",
                    self.who(),
                    allowed.join(", ")
                ),
            });
        }
        Ok(())
    }

    /// Who the rule binds, as refusals name it.
    fn who(&self) -> String {
        if self.name == "default" {
            "users of this proxy".to_owned()
        } else {
            format!("group `{}`", self.name)
        }
    }

    /// The allowlist that applies to `provider`, as text, for `policy explain`.
    pub fn regions_for(&self, provider: &str) -> Option<Vec<String>> {
        self.regions
            .get(provider)
            .or_else(|| self.regions.get("*"))
            .map(|rules| rules.iter().map(|r| r.text.clone()).collect())
    }
}

/// Every profile, in the order they are matched.
#[derive(Debug)]
pub struct Access {
    default: Profile,
    groups: Vec<(Matcher, Profile)>,
}

#[derive(Debug)]
struct Matcher {
    groups: Vec<String>,
    users: Vec<String>,
}

impl Default for Access {
    fn default() -> Self {
        Self {
            default: Profile {
                name: "default".into(),
                field: "access.default".into(),
                providers: None,
                regions: BTreeMap::new(),
                models_allow: Vec::new(),
                models_deny: Vec::new(),
                masking: None,
            },
            groups: Vec::new(),
        }
    }
}

impl Access {
    /// The profile for `identity`: the first group entry naming its user or one of its groups,
    /// else the default. Without authentication everyone gets the default.
    pub fn profile(&self, identity: Option<&Identity>) -> &Profile {
        let Some(identity) = identity else {
            return &self.default;
        };
        self.groups
            .iter()
            .find(|(m, _)| {
                m.users.iter().any(|u| **u == *identity.user)
                    || m.groups.iter().any(|g| identity.groups.contains(g))
            })
            .map_or(&self.default, |(_, p)| p)
    }

    /// Every profile, default first.
    pub fn profiles(&self) -> impl Iterator<Item = &Profile> {
        std::iter::once(&self.default).chain(self.groups.iter().map(|(_, p)| p))
    }

    /// Validates `access:` against the catalog; errors are (field, message).
    pub fn parse(raw: RawAccess, catalog: &Catalog) -> Result<Self, (String, String)> {
        let default = build(
            "default".into(),
            "access.default".into(),
            raw.default,
            None,
            catalog,
        )?;
        let mut groups = Vec::new();
        let mut names = vec!["default".to_owned()];
        for (i, entry) in raw.groups.into_iter().enumerate() {
            let field = format!("access.groups[{i}]");
            if entry.groups.is_empty() && entry.users.is_empty() {
                return Err((
                    format!("{field}.groups"),
                    "name the groups (or users) this entry applies to".into(),
                ));
            }
            let name = entry.name.clone().unwrap_or_else(|| {
                entry
                    .groups
                    .first()
                    .or(entry.users.first())
                    .cloned()
                    .unwrap_or_default()
            });
            if names.contains(&name) {
                return Err((format!("{field}.name"), format!("`{name}` is already used")));
            }
            names.push(name.clone());
            let matcher = Matcher {
                groups: entry.groups.clone(),
                users: entry.users.clone(),
            };
            let rules = RawRules {
                providers: entry.providers,
                regions: entry.regions,
                models: entry.models,
                masking: entry.masking,
            };
            let profile = build(name, field, rules, Some(&default), catalog)?;
            groups.push((matcher, profile));
        }
        Ok(Self { default, groups })
    }
}

fn build(
    name: String,
    field: String,
    raw: RawRules,
    parent: Option<&Profile>,
    catalog: &Catalog,
) -> Result<Profile, (String, String)> {
    let known = |id: &str| catalog.providers().iter().any(|p| p.id == id);
    let providers = match raw.providers {
        Some(list) if list.iter().any(|p| p == "*") => None,
        Some(list) => {
            if let Some((i, p)) = list.iter().enumerate().find(|(_, p)| !known(p)) {
                return Err((
                    format!("{field}.providers[{i}]"),
                    format!("no provider `{p}` in the catalog"),
                ));
            }
            Some(list)
        }
        None => parent.and_then(|p| p.providers.clone()),
    };
    let regions = match raw.regions {
        Some(map) => {
            let mut out = BTreeMap::new();
            for (provider, list) in map {
                if provider != "*" && !known(&provider) {
                    return Err((
                        format!("{field}.regions.{provider}"),
                        format!("no provider `{provider}` in the catalog"),
                    ));
                }
                if list.is_empty() {
                    return Err((
                        format!("{field}.regions.{provider}"),
                        "an empty list allows nothing; to refuse the provider, leave it out of `providers`".into(),
                    ));
                }
                if let Some((i, bad)) = list.iter().enumerate().find(|(_, r)| {
                    !r.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'*')
                }) {
                    return Err((
                        format!("{field}.regions.{provider}[{i}]"),
                        format!("`{bad}` is not a region, a jurisdiction or a `*` pattern"),
                    ));
                }
                out.insert(provider, list.iter().map(|r| RegionRule::new(r)).collect());
            }
            out
        }
        None => parent.map_or_else(BTreeMap::new, |p| {
            p.regions
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.iter().map(|r| RegionRule::new(&r.text)).collect(),
                    )
                })
                .collect()
        }),
    };
    let globs = |list: &[String]| list.iter().map(|g| Glob::new(g)).collect::<Vec<_>>();
    let inherit = |own: Option<Vec<String>>, pick: fn(&Profile) -> &Vec<Glob>| match own {
        Some(list) => globs(&list),
        None => parent.map_or_else(Vec::new, |p| {
            pick(p).iter().map(|g| Glob::new(&g.text)).collect()
        }),
    };
    let (allow, deny) = match raw.models {
        Some(m) => (Some(m.allow), Some(m.deny)),
        None => (None, None),
    };
    Ok(Profile {
        name,
        field,
        providers,
        regions,
        models_allow: inherit(allow, |p| &p.models_allow),
        models_deny: inherit(deny, |p| &p.models_deny),
        masking: raw
            .masking
            .or_else(|| parent.and_then(|p| p.masking.clone())),
    })
}

/// `access:` as written in policy.yaml.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAccess {
    #[serde(default)]
    default: RawRules,
    #[serde(default)]
    groups: Vec<RawGroup>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRules {
    /// Provider ids, or `["*"]`.
    #[serde(default)]
    providers: Option<Vec<String>>,
    #[serde(default)]
    regions: Option<BTreeMap<String, Vec<String>>>,
    #[serde(default)]
    models: Option<RawModels>,
    #[serde(default)]
    masking: Option<MaskingOverride>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModels {
    #[serde(default)]
    allow: Vec<String>,
    #[serde(default)]
    deny: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    users: Vec<String>,
    #[serde(default)]
    providers: Option<Vec<String>>,
    #[serde(default)]
    regions: Option<BTreeMap<String, Vec<String>>>,
    #[serde(default)]
    models: Option<RawModels>,
    #[serde(default)]
    masking: Option<MaskingOverride>,
}

#[cfg(test)]
mod tests {
    use crate::policy::{Policy, Source};

    fn policy(yaml: &str) -> Result<Policy, String> {
        Policy::from_sources(
            &Source::embedded_catalog(),
            &Source::inline("policy.yaml", yaml),
        )
        .map_err(|e| e.to_string())
    }

    #[test]
    fn mistakes_name_the_field() {
        for (yaml, field) in [
            (
                "access:\n  default:\n    providers: [nosuch]\n",
                "access.default.providers[0]",
            ),
            (
                "access:\n  default:\n    regions: { nosuch: [eu] }\n",
                "access.default.regions.nosuch",
            ),
            (
                "access:\n  default:\n    regions: { openai: [] }\n",
                "access.default.regions.openai",
            ),
            (
                "access:\n  default:\n    regions: { openai: ['e u'] }\n",
                "access.default.regions.openai[0]",
            ),
            (
                "access:\n  groups:\n    - { regions: {} }\n",
                "access.groups[0].groups",
            ),
            (
                "access:\n  groups:\n    - { groups: [a], masking: { lists: [nope] } }\n",
                "access.groups[0].masking.lists[0]",
            ),
            (
                "access:\n  groups:\n    - { groups: [a], masking: { rules: { nope: block } } }\n",
                "access.groups[0].masking.rules.nope",
            ),
            (
                "access:\n  groups:\n    - { groups: [a] }\n    - { groups: [a] }\n",
                "access.groups[1].name",
            ),
            ("locations:\n  '*.x.com': eu\n", "locations.*.x.com"),
        ] {
            let err = policy(yaml).unwrap_err();
            assert!(
                err.contains(&format!("policy.yaml: {field}:")),
                "{field}: {err}"
            );
        }
    }

    #[test]
    fn groups_inherit_what_they_do_not_set_and_the_first_match_wins() {
        let p = policy(
            "access:\n  default:\n    regions: { '*': [eu] }\n    models: { deny: [o1*] }\n  groups:\n    - { name: a, groups: [x], providers: [anthropic] }\n    - { name: b, groups: [x, y], regions: { '*': ['*'] } }\n",
        )
        .unwrap();
        let id = |groups: &[&str]| crate::identity::Identity {
            user: "u".into(),
            groups: groups
                .iter()
                .map(|g| g.to_string())
                .collect::<Vec<_>>()
                .into(),
            token: "t".into(),
            expires: None,
        };
        let access = p.access();
        assert_eq!(access.profile(None).name, "default");
        assert_eq!(access.profile(Some(&id(&["z"]))).name, "default");
        let a = access.profile(Some(&id(&["y", "x"])));
        assert_eq!(a.name, "a");
        assert_eq!(a.regions_for("openai"), Some(vec!["eu".to_owned()]));
        assert!(a.check_model(Some("o1-mini"), true).is_err());
        // A deny list has nothing to deny in a request that names no model.
        assert!(a.check_model(None, true).is_ok());
        assert!(a.check_provider("openai").is_err());
        assert!(a.check_provider("anthropic").is_ok());
        let b = access.profile(Some(&id(&["y"])));
        assert_eq!(b.name, "b");
        assert!(b.check_provider("openai").is_ok());
    }

    #[test]
    fn under_a_model_allowlist_a_request_that_names_no_model_is_refused() {
        let p = policy("access:\n  default:\n    models: { allow: [claude-*] }\n").unwrap();
        let d = p.access().profile(None);
        assert!(d.check_model(Some("claude-sonnet-4"), true).is_ok());
        assert!(d.check_model(Some("gpt-4o"), true).is_err());
        let err = d.check_model(None, true).unwrap_err();
        assert!(err.message.contains("names no model"), "{}", err.message);
        // Listing models (no body) asks for no inference.
        assert!(d.check_model(None, false).is_ok());
    }

    #[test]
    fn a_groups_masking_applies_only_its_lists_and_its_rule_actions() {
        use crate::mask::detect::RuleAction;
        let policy = Policy::from_all_sources(
            &Source::embedded_catalog(),
            &Source::inline(
                "policy.yaml",
                "access:\n  groups:\n    - { name: g, groups: [g], masking: { lists: [customers], rules: { customers: block, github-pat: approve } } }\n",
            ),
            &Source::inline(
                "masking.yaml",
                "identifiers:\n  - { name: customers, literals: [Globex] }\n  - { name: projects, literals: [Nightjar] }\n",
            ),
        )
        .unwrap();
        let text = "Globex wants Nightjar; token ghp_0123456789abcdefghijABCDEFGHIJ012345";
        let rules = |masking: &crate::mask::MaskPolicy| {
            let mut found: Vec<(String, RuleAction)> = masking
                .detector
                .scan(text)
                .iter()
                .map(|h| {
                    let rule = masking.detector.rule(h.rule);
                    (rule.id.to_string(), rule.action)
                })
                .collect();
            found.sort_by(|a, b| a.0.cmp(&b.0));
            found
        };
        let everyone = rules(policy.masking_for(policy.access().profile(None)));
        assert_eq!(
            everyone,
            [
                ("customers".to_owned(), RuleAction::Mask),
                ("github-pat".to_owned(), RuleAction::Mask),
                ("projects".to_owned(), RuleAction::Mask),
            ]
        );
        let member = crate::identity::Identity {
            user: "u".into(),
            groups: vec!["g".to_owned()].into(),
            token: "t".into(),
            expires: None,
        };
        let group = rules(policy.masking_for(policy.access().profile(Some(&member))));
        assert_eq!(
            group,
            [
                ("customers".to_owned(), RuleAction::Block),
                ("github-pat".to_owned(), RuleAction::Approve),
            ]
        );
    }

    mod properties {
        use crate::providers::regions::jurisdictions;
        use crate::providers::residency::{Location, Origin, Place};
        use proptest::prelude::*;

        const NAMES: &[&str] = &[
            "eu",
            "uk",
            "us",
            "europe",
            "americas",
            "apac",
            "global",
            "jp",
            "eu-central-1",
            "eu-west-2",
            "us-east-1",
            "europe-west4",
            "swedencentral",
            "ap-northeast-1",
            "eu-central-9",
            "mars-north1",
        ];

        proptest! {
            /// A request is allowed iff every place it goes to is allowed by name or by one of its
            /// jurisdictions; a request nothing places never is.
            #[test]
            fn allowed_iff_every_place_is_allowed(
                allowed in proptest::sample::subsequence(NAMES, 1..5),
                places in proptest::collection::vec(proptest::sample::select(NAMES), 0..4),
            ) {
                let yaml = format!("default:\n  regions: {{ bedrock: [{}] }}\n", allowed.join(", "));
                let catalog = crate::providers::Catalog::parse(&crate::policy::Source::embedded_catalog()).unwrap();
                let access = super::super::Access::parse(serde_yaml::from_str(&yaml).unwrap(), &catalog).unwrap();
                let profile = access.profile(None);
                let location = Location {
                    places: places
                        .iter()
                        .map(|r| Place { region: r.to_string(), origin: Origin::Host, evidence: String::new() })
                        .collect(),
                };
                let expected = !places.is_empty()
                    && places.iter().all(|p| {
                        allowed.contains(p) || jurisdictions(p).iter().any(|j| allowed.contains(j))
                    });
                prop_assert_eq!(profile.check_location("bedrock", &location).is_ok(), expected);
                // Providers without a list are not restricted.
                prop_assert!(profile.check_location("openai", &location).is_ok());
            }
        }
    }
}
