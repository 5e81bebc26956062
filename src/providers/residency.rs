//! Where a request to a provider will be processed: the places a request goes to, read from the
//! host (`eu.api.openai.com`, `bedrock-runtime.eu-central-1.amazonaws.com`), the path (Vertex
//! `/locations/{loc}/`), the model id (Bedrock cross-region profiles `eu.` / `us.` / `global.`),
//! a body field (Anthropic `inference_geo`), or configuration where the host says nothing (an
//! Azure OpenAI resource's region and its deployments' types).
//!
//! A request may touch more than one place (a Bedrock endpoint in `eu-central-1` running a `us.`
//! profile receives the request in Frankfurt and runs it in the US): policy must allow every one.

use super::regions;
use crate::policy::hosts::HostPattern;
use regex::Regex;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;

/// What told Tollgate about a place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Host,
    Path,
    Model,
    Body,
    Config,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Host => "host",
            Origin::Path => "path",
            Origin::Model => "model id",
            Origin::Body => "body",
            Origin::Config => "configuration",
        }
    }
}

/// One place a request goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    /// A cloud region (`eu-central-1`) or a geography (`eu`, `global`).
    pub region: String,
    pub origin: Origin,
    /// What exactly said so (`bedrock-runtime.eu-central-1.amazonaws.com`, `inference_geo`).
    pub evidence: String,
}

impl Place {
    pub fn jurisdictions(&self) -> &'static [&'static str] {
        regions::jurisdictions(&self.region)
    }
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (from the {} {})",
            self.region,
            self.origin.as_str(),
            self.evidence
        )
    }
}

/// Every place a request goes to; empty when nothing says where.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Location {
    pub places: Vec<Place>,
}

impl Location {
    pub fn is_unknown(&self) -> bool {
        self.places.is_empty()
    }

    /// The regions, comma-separated, as records keep them.
    pub fn regions(&self) -> Option<String> {
        (!self.places.is_empty()).then(|| {
            self.places
                .iter()
                .map(|p| p.region.as_str())
                .collect::<Vec<_>>()
                .join(",")
        })
    }

    /// The most specific jurisdiction of each place, comma-separated (`?` where unknown).
    pub fn jurisdictions(&self) -> Option<String> {
        (!self.places.is_empty()).then(|| {
            let mut seen: Vec<&str> = Vec::new();
            for place in &self.places {
                let j = place.jurisdictions().first().copied().unwrap_or("?");
                if !seen.contains(&j) {
                    seen.push(j);
                }
            }
            seen.join(",")
        })
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.places.is_empty() {
            return f.write_str("an unknown region");
        }
        let parts: Vec<String> = self.places.iter().map(Place::to_string).collect();
        f.write_str(&parts.join(" and "))
    }
}

/// A request whose host and path disagree about the region.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the host {host} serves {host_region}, but the path names location {path_region}; the two must agree"
)]
pub struct Mismatch {
    pub host: String,
    pub host_region: String,
    pub path_region: String,
}

/// Where the configuration places a host whose name says nothing (an Azure OpenAI resource).
/// Read strictly: a misspelt key must not make a Global deployment count as in-region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Configured {
    /// `host: region`
    Region(String),
    /// `host: { region, deployments: { name: global | eu | { region, model } } }`
    Detailed {
        region: String,
        /// The resource's deployments: where each may run (Azure Global and Data Zone
        /// deployments run beyond the resource's region) and which model it serves.
        deployments: BTreeMap<String, Deployment>,
    },
}

/// One Azure deployment in `locations`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deployment {
    /// Where it runs when not in the resource's region (`global`, `eu`, …).
    #[serde(default)]
    pub region: Option<String>,
    /// The model it serves, for the model lists of policy.yaml.
    #[serde(default)]
    pub model: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDetailed {
    region: String,
    #[serde(default)]
    deployments: BTreeMap<String, RawDeployment>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawDeployment {
    Region(String),
    Detailed(Deployment),
}

impl<'de> Deserialize<'de> for Configured {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let value = serde_yaml::Value::deserialize(d)?;
        match value {
            serde_yaml::Value::String(region) => Ok(Configured::Region(region)),
            serde_yaml::Value::Mapping(_) => {
                let raw: RawDetailed = serde_yaml::from_value(value).map_err(D::Error::custom)?;
                let mut deployments = BTreeMap::new();
                for (name, d) in raw.deployments {
                    let d = match d {
                        RawDeployment::Region(region) => Deployment {
                            region: Some(region),
                            model: None,
                        },
                        RawDeployment::Detailed(d) => d,
                    };
                    deployments.insert(name, d);
                }
                Ok(Configured::Detailed {
                    region: raw.region,
                    deployments,
                })
            }
            _ => Err(D::Error::custom(
                "expected a region, or { region, deployments }",
            )),
        }
    }
}

impl Configured {
    fn region(&self) -> &str {
        match self {
            Configured::Region(r) | Configured::Detailed { region: r, .. } => r,
        }
    }

    fn deployment(&self, name: &str) -> Option<&Deployment> {
        match self {
            Configured::Region(_) => None,
            Configured::Detailed { deployments, .. } => deployments.get(name),
        }
    }

    /// The model served by the Azure deployment a request path names, as configured.
    pub fn deployment_model(&self, path: &str) -> Option<&str> {
        self.deployment(deployment(path)?)?.model.as_deref()
    }
}

/// How one provider of the catalog says where a request goes (`residency:` in providers.yaml).
#[derive(Debug, Clone, Default)]
pub struct Residency {
    /// Exact hosts and their region.
    exact: BTreeMap<String, String>,
    /// Host patterns with a `{region}` part, and the region they give.
    patterns: Vec<(Regex, String)>,
    /// Vertex: `/locations/{loc}/` in the path must agree with the host.
    path_locations: bool,
    /// Bedrock: model id prefix (`eu.`) → where a cross-region profile may run.
    model_prefixes: BTreeMap<String, String>,
    /// Anthropic: a top-level body field naming where inference runs.
    body_field: Option<String>,
}

/// `residency:` of a provider as written in providers.yaml.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawResidency {
    #[serde(default)]
    hosts: BTreeMap<String, String>,
    #[serde(default)]
    path_locations: bool,
    #[serde(default)]
    model_prefixes: BTreeMap<String, String>,
    #[serde(default)]
    body_field: Option<String>,
}

/// What of a request residency looks at.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestView<'a> {
    pub host: &'a str,
    pub path: &'a str,
    /// The model, from the body or the URL (percent-decoded).
    pub model: Option<&'a str>,
    /// Top-level string fields of the JSON body (name, value).
    pub body_fields: &'a [(String, String)],
    /// Whether the request carries a body (a request for inference names its model there or
    /// in its path; a `GET /v1/models` names none).
    pub has_body: bool,
}

impl Residency {
    /// Validates the raw spec; the error names the field under `residency`.
    pub fn parse(raw: RawResidency) -> Result<Self, (String, String)> {
        let mut exact = BTreeMap::new();
        let mut patterns = Vec::new();
        for (host, region) in raw.hosts {
            let field = format!("hosts.{host}");
            let probe = host.replace("{region}", "x");
            HostPattern::parse(&probe).map_err(|e| (field.clone(), e.to_string()))?;
            if host.contains('*') {
                return Err((
                    field,
                    "use `{region}` for the part that names the region".into(),
                ));
            }
            if host.contains("{region}") {
                let regex = format!(
                    "^{}$",
                    regex::escape(&host).replace(r"\{region\}", "(?P<region>[a-z0-9-]+)")
                );
                let regex = Regex::new(&regex).map_err(|e| (field, e.to_string()))?;
                patterns.push((regex, region));
            } else {
                exact.insert(host.to_ascii_lowercase(), region);
            }
        }
        Ok(Self {
            exact,
            patterns,
            path_locations: raw.path_locations,
            model_prefixes: raw.model_prefixes,
            body_field: raw.body_field,
        })
    }

    /// The body field this provider reads its region from, if any.
    pub fn body_field(&self) -> Option<&str> {
        self.body_field.as_deref()
    }

    fn host_region(&self, host: &str) -> Option<String> {
        if let Some(region) = self.exact.get(host) {
            return Some(region.clone());
        }
        self.patterns.iter().find_map(|(regex, template)| {
            let caps = regex.captures(host)?;
            Some(template.replace("{region}", &caps["region"]))
        })
    }

    /// Every place the request goes to. `configured` is what policy.yaml says of this host.
    pub fn locate(
        &self,
        view: RequestView<'_>,
        configured: Option<&Configured>,
    ) -> Result<Location, Mismatch> {
        let mut places = Vec::new();
        let host_place = match configured {
            Some(c) => Some(Place {
                region: c.region().to_owned(),
                origin: Origin::Config,
                evidence: format!("locations.{}", view.host),
            }),
            None => self.host_region(view.host).map(|region| Place {
                region,
                origin: Origin::Host,
                evidence: view.host.to_owned(),
            }),
        };
        places.extend(host_place);

        if self.path_locations
            && let Some(location) = path_location(view.path)
        {
            match places.first() {
                Some(host) if host.region != location => {
                    return Err(Mismatch {
                        host: view.host.to_owned(),
                        host_region: host.region.clone(),
                        path_region: location.to_owned(),
                    });
                }
                Some(_) => {}
                None => places.push(Place {
                    region: location.to_owned(),
                    origin: Origin::Path,
                    evidence: format!("/locations/{location}/"),
                }),
            }
        }

        // The body names where inference runs, in place of the host's default.
        if let Some(field) = &self.body_field
            && let Some((_, value)) = view.body_fields.iter().find(|(k, _)| k == field)
        {
            places = vec![Place {
                region: value.to_ascii_lowercase(),
                origin: Origin::Body,
                evidence: field.clone(),
            }];
        }

        // A cross-region profile runs the request anywhere in its geography, beyond the host's.
        if !self.model_prefixes.is_empty()
            && let Some(model) = view.model
        {
            let id = bedrock_model_id(model);
            if let Some(place) = self.profile_place(id) {
                places.push(place);
            }
        }

        // Azure: Global and Data Zone deployments run beyond the resource's region.
        if let Some(c) = configured
            && let Some(name) = deployment(view.path).or(view.model)
            && let Some(region) = c.deployment(name).and_then(|d| d.region.as_deref())
        {
            places.push(Place {
                region: region.to_owned(),
                origin: Origin::Config,
                evidence: format!("locations.{}.deployments.{name}", view.host),
            });
        }
        Ok(Location { places })
    }

    fn profile_place(&self, id: &str) -> Option<Place> {
        // An application inference profile can point anywhere: its place is not known.
        if id.starts_with("application-inference-profile/") {
            return Some(Place {
                region: "application-inference-profile".into(),
                origin: Origin::Model,
                evidence: id.to_owned(),
            });
        }
        let id = id
            .strip_prefix("inference-profile/")
            .or_else(|| id.strip_prefix("foundation-model/"))
            .unwrap_or(id);
        let (prefix, _) = id.split_once('.')?;
        let region = self.model_prefixes.get(prefix)?;
        Some(Place {
            region: region.clone(),
            origin: Origin::Model,
            evidence: format!("{prefix}. prefix of {id}"),
        })
    }
}

/// `/v1/projects/p/locations/europe-west4/publishers/...` → `europe-west4`.
fn path_location(path: &str) -> Option<&str> {
    let (_, rest) = path.split_once("/locations/")?;
    let location = rest.split('/').next()?;
    let location = location.split(':').next()?;
    (!location.is_empty()).then_some(location)
}

/// Azure `/openai/deployments/{name}/...` → `name`.
fn deployment(path: &str) -> Option<&str> {
    let (_, rest) = path.split_once("/deployments/")?;
    rest.split('/').next().filter(|s| !s.is_empty())
}

/// A Bedrock model id without its ARN wrapping:
/// `arn:aws:bedrock:eu-central-1:123:inference-profile/eu.anthropic.x` → `inference-profile/eu.anthropic.x`.
fn bedrock_model_id(model: &str) -> &str {
    if model.starts_with("arn:") {
        model.splitn(6, ':').nth(5).unwrap_or(model)
    } else {
        model
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> Residency {
        Residency::parse(serde_yaml::from_str(yaml).unwrap()).unwrap()
    }

    fn view<'a>(host: &'a str, path: &'a str, model: Option<&'a str>) -> RequestView<'a> {
        RequestView {
            host,
            path,
            model,
            body_fields: &[],
            has_body: true,
        }
    }

    fn regions(l: &Location) -> Vec<&str> {
        l.places.iter().map(|p| p.region.as_str()).collect()
    }

    #[test]
    fn host_names_the_region() {
        let r = spec("hosts: { api.openai.com: global, '{region}.api.openai.com': '{region}' }");
        let at = |host| r.locate(view(host, "/v1/x", None), None).unwrap();
        assert_eq!(regions(&at("eu.api.openai.com")), ["eu"]);
        assert_eq!(regions(&at("api.openai.com")), ["global"]);
        assert!(at("x.y.api.openai.com").is_unknown());
    }

    #[test]
    fn vertex_path_must_agree_with_host() {
        let r = spec(
            "hosts: { aiplatform.googleapis.com: global, '{region}-aiplatform.googleapis.com': '{region}' }\npath_locations: true",
        );
        let path =
            "/v1/projects/p/locations/europe-west4/publishers/google/models/g:generateContent";
        let ok = r
            .locate(
                view("europe-west4-aiplatform.googleapis.com", path, None),
                None,
            )
            .unwrap();
        assert_eq!(regions(&ok), ["europe-west4"]);
        let err = r
            .locate(
                view("us-central1-aiplatform.googleapis.com", path, None),
                None,
            )
            .unwrap_err();
        assert_eq!(err.path_region, "europe-west4");
        let global = "/v1/projects/p/locations/global/publishers/google/models/g:generateContent";
        assert_eq!(
            regions(
                &r.locate(view("aiplatform.googleapis.com", global, None), None)
                    .unwrap()
            ),
            ["global"]
        );
    }

    #[test]
    fn bedrock_profiles_add_their_geography() {
        let r = spec(
            "hosts: { 'bedrock-runtime.{region}.amazonaws.com': '{region}' }\nmodel_prefixes: { eu: eu, us: us, global: global }",
        );
        let host = "bedrock-runtime.eu-central-1.amazonaws.com";
        let at = |model| {
            r.locate(view(host, "/model/x/invoke", Some(model)), None)
                .unwrap()
        };
        assert_eq!(regions(&at("anthropic.claude-v2")), ["eu-central-1"]);
        assert_eq!(
            regions(&at("eu.anthropic.claude-sonnet-4")),
            ["eu-central-1", "eu"]
        );
        assert_eq!(
            regions(&at("us.anthropic.claude-sonnet-4")),
            ["eu-central-1", "us"]
        );
        assert_eq!(
            regions(&at(
                "arn:aws:bedrock:eu-central-1:123456789012:inference-profile/global.anthropic.x"
            )),
            ["eu-central-1", "global"]
        );
        let app = at("arn:aws:bedrock:eu-central-1:1:application-inference-profile/abc");
        assert!(app.places[1].jurisdictions().is_empty());
    }

    #[test]
    fn body_field_replaces_the_hosts_default() {
        let r = spec("hosts: { api.anthropic.com: global }\nbody_field: inference_geo");
        let fields = [("inference_geo".to_owned(), "us".to_owned())];
        let mut v = view("api.anthropic.com", "/v1/messages", None);
        assert_eq!(regions(&r.locate(v, None).unwrap()), ["global"]);
        v.body_fields = &fields;
        let l = r.locate(v, None).unwrap();
        assert_eq!(regions(&l), ["us"]);
        assert_eq!(l.places[0].origin, Origin::Body);
    }

    #[test]
    fn configuration_places_azure_resources_and_deployments() {
        let r = Residency::default();
        let c: Configured = serde_yaml::from_str(
            "{ region: swedencentral, deployments: { gpt-4o-global: global } }",
        )
        .unwrap();
        let host = "contoso.openai.azure.com";
        let standard = r
            .locate(
                view(host, "/openai/deployments/gpt-4o/chat/completions", None),
                Some(&c),
            )
            .unwrap();
        assert_eq!(regions(&standard), ["swedencentral"]);
        let global = r
            .locate(
                view(
                    host,
                    "/openai/deployments/gpt-4o-global/chat/completions",
                    None,
                ),
                Some(&c),
            )
            .unwrap();
        assert_eq!(regions(&global), ["swedencentral", "global"]);
        // A misspelt key is an error, not a deployment that silently counts as in-region.
        for bad in [
            "{ region: swedencentral, deployment: { gpt-4o-global: global } }",
            "{ region: swedencentral, deployments: { gpt-4o-global: { regoin: global } } }",
            "{ regoin: swedencentral }",
            "[swedencentral]",
        ] {
            let err = serde_yaml::from_str::<Configured>(bad)
                .unwrap_err()
                .to_string();
            assert!(!err.is_empty(), "{bad}");
        }
        let c: Configured = serde_yaml::from_str(
            "{ region: swedencentral, deployments: { chat: { model: gpt-4o }, g: { region: global, model: gpt-4o-mini } } }",
        )
        .unwrap();
        assert_eq!(
            c.deployment_model("/openai/deployments/chat/chat/completions"),
            Some("gpt-4o")
        );
        assert_eq!(
            c.deployment_model("/openai/deployments/g/chat/completions"),
            Some("gpt-4o-mini")
        );
        assert_eq!(c.deployment_model("/openai/deployments/other/x"), None);
        assert!(
            r.locate(view(host, "/openai/x", None), None)
                .unwrap()
                .is_unknown()
        );
    }

    #[test]
    fn bad_host_templates_are_refused() {
        let raw: RawResidency = serde_yaml::from_str("hosts: { '*.x.com': eu }").unwrap();
        assert!(Residency::parse(raw).is_err());
        let raw: RawResidency = serde_yaml::from_str("hosts: { 'a b': eu }").unwrap();
        assert!(Residency::parse(raw).is_err());
    }
}
