//! Policy: the YAML files in `policies/` (embedded in the binary as defaults), validated once at
//! load time into types the proxy consults per connection without further checks.
//!
//! - `providers.yaml`: the catalog of LLM API hosts ([`crate::providers::Catalog`]);
//! - `policy.yaml`: what to do with hosts outside the catalog, hosts to refuse, internal
//!   destinations to allow, per-provider overrides of the catalog's mode, where hosts whose name
//!   says nothing are (`locations`), and who may reach which providers, regions and models
//!   (`access`, see [`access`]);
//! - `masking.yaml`, `recording.yaml`, `identity.yaml`: see their modules.

pub mod access;
pub(crate) mod address;
pub(crate) mod hosts;

use crate::mask::{MaskPolicy, OverrideError};
use crate::providers::residency::{Configured, Location, Mismatch, RequestView};
use crate::providers::{Catalog, ErrorFormat, HostMode, Provider};
use access::{Access, Profile};
use address::InternalAllowlist;
use hosts::{HostPattern, HostSet, normalize_host};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use crate::source::{
    APPROVALS_FILE, CATALOG_FILE, IDENTITY_FILE, LoadError, MASKING_FILE, POLICY_FILE,
    RECORDING_FILE, Source,
};

/// The validated policy the proxy consults. Cheap to share: the proxy holds it in an `Arc` and
/// swaps the whole of it on reload.
#[derive(Debug)]
pub struct Policy {
    catalog: Catalog,
    masking: MaskPolicy,
    /// masking.yaml with a group's changes, by profile name.
    group_masking: BTreeMap<String, MaskPolicy>,
    access: Access,
    locations: BTreeMap<String, Configured>,
    recording: RecordingPolicy,
    auth: crate::identity::Authenticator,
    unknown_hosts: HostMode,
    deny: HostSet,
    allow_internal: InternalAllowlist,
    sources: Vec<String>,
    /// Each file as read (name, text), for the admin API and the fingerprint.
    files: Vec<(String, String)>,
    approvals: crate::approval::rules::ApprovalPolicy,
}

/// Why the access rules refused a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessError {
    /// The host and the path name different regions.
    Mismatch { mismatch: Mismatch, rule: String },
    /// A rule of policy.yaml `access` refused it.
    Denied(access::Denied),
}

/// What the policy says about a CONNECT or plain-HTTP request to a host.
#[derive(Debug, Clone)]
pub struct Decision {
    /// The catalog provider the host belongs to, if any.
    pub provider: Option<Arc<Provider>>,
    pub action: Action,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Intercept,
    Tunnel,
    /// Refused; `rule` names the policy entry that refused it.
    Deny {
        rule: String,
    },
}

impl Decision {
    /// The error format refusals for this host should use.
    pub fn error_format(&self) -> ErrorFormat {
        self.provider.as_ref().map(|p| p.errors).unwrap_or_default()
    }
}

/// Every file a policy directory may hold.
pub const POLICY_FILES: [&str; 6] = [
    CATALOG_FILE,
    POLICY_FILE,
    MASKING_FILE,
    RECORDING_FILE,
    IDENTITY_FILE,
    APPROVALS_FILE,
];

/// A misnamed file (`identity.yml`, `polcy.yaml`) would be skipped and the embedded default used
/// in its place (with no tokens, authentication off), so any YAML file but the five is an error.
/// Other files may sit beside them (a JWKS file identity.yaml names); hidden entries are skipped
/// (Kubernetes mounts a ConfigMap with `..data` links beside the files).
fn refuse_unknown_files(dir: &Path) -> Result<(), LoadError> {
    let entries = std::fs::read_dir(dir).map_err(|source| LoadError::Read {
        file: dir.display().to_string(),
        source,
    })?;
    let mut unknown = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let lower = name.to_ascii_lowercase();
        let yaml = lower.ends_with(".yaml") || lower.ends_with(".yml");
        if name.starts_with('.') || !yaml || POLICY_FILES.contains(&name.as_str()) {
            continue;
        }
        if entry.path().is_dir() {
            continue;
        }
        unknown.push(name);
    }
    unknown.sort();
    let Some(name) = unknown.first() else {
        return Ok(());
    };
    let suggestion = POLICY_FILES
        .iter()
        .map(|known| (strsim::damerau_levenshtein(name, known), known))
        .filter(|(d, _)| *d <= 3)
        .min()
        .map(|(_, known)| format!(", did you mean {known}?"))
        .unwrap_or_default();
    Err(LoadError::UnknownFile {
        file: dir.join(name).display().to_string(),
        suggestion,
        known: POLICY_FILES.join(", "),
    })
}

impl Policy {
    /// Loads `providers.yaml` and `policy.yaml` from `dir`; a file missing there is taken from the
    /// embedded defaults. `None` uses the embedded defaults only.
    pub fn load(dir: Option<&Path>) -> Result<Self, LoadError> {
        let pick = |file: &str, embedded: fn() -> Source| -> Result<Source, LoadError> {
            match dir {
                Some(dir) => {
                    let path: PathBuf = dir.join(file);
                    if path.exists() {
                        Source::read(&path)
                    } else {
                        Ok(embedded())
                    }
                }
                None => Ok(embedded()),
            }
        };
        if let Some(dir) = dir
            && !dir.is_dir()
        {
            return Err(LoadError::Read {
                file: dir.display().to_string(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "policy directory not found",
                ),
            });
        }
        if let Some(dir) = dir {
            refuse_unknown_files(dir)?;
        }
        let catalog = pick(CATALOG_FILE, Source::embedded_catalog)?;
        let policy = pick(POLICY_FILE, Source::embedded_policy)?;
        let masking = pick(MASKING_FILE, Source::embedded_masking)?;
        let recording = pick(RECORDING_FILE, Source::embedded_recording)?;
        let identity = pick(IDENTITY_FILE, Source::embedded_identity)?;
        let approvals = pick(APPROVALS_FILE, Source::embedded_approvals)?;
        let mut loaded = Self::from_all_sources(&catalog, &policy, &masking)?;
        loaded.recording = RecordingPolicy::parse(&recording)?;
        loaded.auth = crate::identity::Authenticator::parse(&identity)?;
        let mut findings: Vec<String> = Vec::new();
        for masking in std::iter::once(&loaded.masking).chain(loaded.group_masking.values()) {
            let d = &masking.detector;
            for i in 0..d.rule_count() {
                for name in [&*d.rule(i).id, &*d.rule(i).category] {
                    if !findings.iter().any(|f| f == name) {
                        findings.push(name.to_owned());
                    }
                }
            }
        }
        let providers: Vec<String> = loaded
            .catalog
            .providers()
            .iter()
            .map(|p| p.id.clone())
            .collect();
        loaded.approvals =
            crate::approval::rules::ApprovalPolicy::parse(&approvals, &findings, &providers)?;
        // A JWKS file beside identity.yaml is part of the set: replacing it is a change.
        if let Some(file) = loaded.auth.oidc().and_then(|o| o.jwks_file()) {
            let text = std::fs::read_to_string(file).map_err(|source| LoadError::Read {
                file: file.display().to_string(),
                source,
            })?;
            loaded.files.push((file.display().to_string(), text));
        }
        for source in [&recording, &identity, &approvals] {
            loaded.sources.push(source.name().to_owned());
            loaded
                .files
                .push((source.name().to_owned(), source.text().to_owned()));
        }
        Ok(loaded)
    }

    /// Catalog and policy from these sources, masking from the embedded defaults.
    pub fn from_sources(catalog: &Source, policy: &Source) -> Result<Self, LoadError> {
        Self::from_all_sources(catalog, policy, &Source::embedded_masking())
    }

    pub fn from_all_sources(
        catalog: &Source,
        policy: &Source,
        masking: &Source,
    ) -> Result<Self, LoadError> {
        let masking_parsed = MaskPolicy::parse(masking)?;
        let mut catalog_parsed = Catalog::parse(catalog)?;
        let file: PolicyFile = policy.deserialize()?;

        if file.hosts.unknown == HostMode::Intercept {
            return Err(policy.invalid(
                "hosts.unknown",
                "hosts outside the catalog can be `tunnel` or `deny`; to intercept a host, add it to a provider in providers.yaml",
            ));
        }
        let deny = file
            .hosts
            .deny
            .iter()
            .enumerate()
            .map(|(i, h)| {
                HostPattern::parse(h)
                    .map_err(|e| policy.invalid(format!("hosts.deny[{i}]"), e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let allow_internal =
            InternalAllowlist::parse(&file.hosts.allow_internal).map_err(|(i, e)| {
                policy.invalid(format!("hosts.allow_internal[{i}]"), e.to_string())
            })?;
        for (id, mode) in &file.providers {
            match catalog_parsed.get_mut(id) {
                Some(provider) => provider.mode = mode.mode,
                None => {
                    return Err(policy.invalid(
                        format!("providers.{id}"),
                        format!("no provider `{id}` in {}", catalog.name()),
                    ));
                }
            }
        }
        let access = Access::parse(file.access, &catalog_parsed)
            .map_err(|(field, message)| policy.invalid(field, message))?;
        let mut group_masking = BTreeMap::new();
        for profile in access.profiles() {
            let Some(over) = &profile.masking else {
                continue;
            };
            let compiled = MaskPolicy::parse_for(masking, Some(over)).map_err(|e| match e {
                OverrideError::Load(e) => e,
                OverrideError::Unknown { field, message } => {
                    policy.invalid(format!("{}.{field}", profile.field), message)
                }
            })?;
            group_masking.insert(profile.name.clone(), compiled);
        }
        let mut locations = BTreeMap::new();
        for (host, place) in file.locations {
            let field = format!("locations.{host}");
            let pattern =
                HostPattern::parse(&host).map_err(|e| policy.invalid(&field, e.to_string()))?;
            if pattern.as_str().contains('*') {
                return Err(policy.invalid(field, "name one host, without `*`"));
            }
            locations.insert(pattern.as_str().to_owned(), place);
        }
        Ok(Self {
            catalog: catalog_parsed,
            masking: masking_parsed,
            group_masking,
            access,
            locations,
            recording: RecordingPolicy::parse(&Source::embedded_recording())?,
            auth: crate::identity::Authenticator::default(),
            unknown_hosts: file.hosts.unknown,
            deny: HostSet::new(deny),
            allow_internal,
            sources: vec![
                catalog.name().to_owned(),
                policy.name().to_owned(),
                masking.name().to_owned(),
            ],
            approvals: crate::approval::rules::ApprovalPolicy::default(),
            files: [catalog, policy, masking]
                .iter()
                .map(|s| (s.name().to_owned(), s.text().to_owned()))
                .collect(),
        })
    }

    /// Decides what happens to a connection to `host` (any case, brackets or trailing dot).
    pub fn decide(&self, host: &str) -> Decision {
        let host = normalize_host(host);
        let provider = self.catalog.lookup(&host);
        let action = if let Some(i) = self.deny.first_match(&host) {
            Action::Deny {
                rule: format!("hosts.deny: {}", self.deny.pattern(i)),
            }
        } else {
            match provider.map(|p| p.mode) {
                Some(HostMode::Intercept) => Action::Intercept,
                Some(HostMode::Tunnel) => Action::Tunnel,
                Some(HostMode::Deny) => Action::Deny {
                    rule: format!("provider {} is denied", provider.map_or("", |p| &p.id)),
                },
                None => match self.unknown_hosts {
                    HostMode::Deny => Action::Deny {
                        rule: "hosts.unknown: deny".to_owned(),
                    },
                    _ => Action::Tunnel,
                },
            }
        };
        Decision {
            provider: provider.cloned(),
            action,
        }
    }

    pub fn allow_internal(&self) -> &InternalAllowlist {
        &self.allow_internal
    }

    pub fn masking(&self) -> &MaskPolicy {
        &self.masking
    }

    /// The masking rules for a profile: masking.yaml, with the group's changes if it has any.
    pub fn masking_for(&self, profile: &Profile) -> &MaskPolicy {
        self.group_masking
            .get(&profile.name)
            .unwrap_or(&self.masking)
    }

    pub fn access(&self) -> &Access {
        &self.access
    }

    /// Every place a request to `provider` goes to.
    pub fn locate(&self, provider: &Provider, view: RequestView<'_>) -> Result<Location, Mismatch> {
        provider
            .residency
            .locate(view, self.locations.get(view.host))
    }

    /// The access rules of `profile` against one request to `provider`: where it goes (when that
    /// can be told), and whether the provider, every place and the model are allowed.
    pub fn check_request(
        &self,
        profile: &Profile,
        provider: &Provider,
        view: RequestView<'_>,
    ) -> (Option<Location>, Result<(), AccessError>) {
        let location = match self.locate(provider, view) {
            Ok(location) => location,
            Err(mismatch) => {
                let rule = format!("providers.yaml: {}.residency.path_locations", provider.id);
                return (None, Err(AccessError::Mismatch { mismatch, rule }));
            }
        };
        let result = profile
            .check_provider(&provider.id)
            .and_then(|()| profile.check_location(&provider.id, &location))
            .and_then(|()| profile.check_model(view.model, view.has_body))
            .map_err(AccessError::Denied);
        (Some(location), result)
    }

    /// The model a request asks for: the body's `model`, else the one its path names (Gemini,
    /// Vertex, Bedrock), else the one configured for the Azure deployment it names.
    pub fn request_model(
        &self,
        host: &str,
        path: &str,
        body_model: Option<&str>,
    ) -> Option<String> {
        body_model
            .map(str::to_owned)
            .or_else(|| crate::providers::model_in_path(path))
            .or_else(|| {
                self.locations
                    .get(host)
                    .and_then(|c| c.deployment_model(path))
                    .map(str::to_owned)
            })
    }

    pub fn recording(&self) -> &RecordingPolicy {
        &self.recording
    }

    /// Who may use the proxy (identity.yaml).
    pub fn auth(&self) -> &crate::identity::Authenticator {
        &self.auth
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The patterns of `hosts.deny`.
    pub fn denied_host_patterns(&self) -> impl Iterator<Item = &str> {
        self.deny.patterns().iter().map(HostPattern::as_str)
    }

    /// Whether `hosts.unknown` is `deny`: hosts outside the catalog are refused.
    pub fn denies_unknown_hosts(&self) -> bool {
        self.unknown_hosts == HostMode::Deny
    }

    /// Keeps `running`'s recording rules: the audit store is set up at start, so a reload
    /// cannot change them (the reload reports them as needing a restart instead).
    pub fn keep_recording_of(&mut self, running: &Policy) {
        self.recording = running.recording.clone();
    }

    /// approvals.yaml.
    pub fn approvals(&self) -> &crate::approval::rules::ApprovalPolicy {
        &self.approvals
    }

    /// The files this policy was built from, as read: (name, text).
    pub fn files(&self) -> &[(String, String)] {
        &self.files
    }

    /// SHA-256 over every file's name and text, in load order (hex): two replicas, or a reload
    /// and the files on disk, hold the same policy when these agree.
    pub fn fingerprint(&self) -> String {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        for (name, text) in &self.files {
            for part in [name.as_bytes(), b"\0", text.as_bytes(), b"\0"] {
                ctx.update(part);
            }
        }
        ctx.finish()
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// One paragraph that says what was loaded, for `policy check` and the start-up log.
    pub fn summary(&self) -> String {
        let intercepted = self
            .catalog
            .providers()
            .iter()
            .filter(|p| p.mode == HostMode::Intercept)
            .count();
        format!(
            "{} providers ({} intercepted, {} host patterns); unknown hosts: {}; {} denied host patterns; {} internal destinations allowed; {} masking rules; {} access profiles; {} configured locations; from {}",
            self.catalog.providers().len(),
            intercepted,
            self.catalog.host_pattern_count(),
            self.unknown_hosts.as_str(),
            self.deny.len(),
            self.allow_internal.len(),
            self.masking.detector.rule_count(),
            self.access.profiles().count(),
            self.locations.len(),
            self.sources.join(", "),
        )
    }
}

/// How long the audit store keeps what (`recording.yaml`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingPolicy {
    /// Request and response bodies are cleared after this.
    pub bodies: std::time::Duration,
    /// Records are deleted after this.
    pub records: std::time::Duration,
    /// Whether LLM requests may go out while the store cannot record them.
    pub on_store_failure: StoreFailure,
    /// Whether unmasked request bodies are kept, sealed (the key comes from configuration).
    pub store_originals: bool,
    /// Whether anything is recorded at all.
    pub enabled: bool,
    /// When the chain's head is signed, and where the signatures go besides the store.
    pub checkpoints: CheckpointPolicy,
}

/// When the audit writer signs the chain's head (`recording.yaml: checkpoints`): after
/// `every_records` records or `every` time, whichever comes first, and at shutdown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointPolicy {
    /// Records written at most between two checkpoints (at least 1).
    pub every_records: u64,
    /// Time at most between a record and the checkpoint that covers it (at least a second).
    pub every: std::time::Duration,
    /// The external file checkpoints are appended to (JSON lines), besides the store; relative
    /// to the audit database's directory.
    pub file: Option<std::path::PathBuf>,
}

impl Default for CheckpointPolicy {
    fn default() -> Self {
        Self {
            every_records: 1000,
            every: std::time::Duration::from_secs(60),
            file: None,
        }
    }
}

/// What to do with LLM requests while the audit store cannot be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum StoreFailure {
    /// Refuse them (503, retryable): nothing leaves unrecorded.
    #[default]
    Refuse,
    /// Let them through; their records wait in memory until the store recovers.
    Continue,
}

impl RecordingPolicy {
    pub fn parse(source: &Source) -> Result<Self, LoadError> {
        let file: RecordingFile = source.deserialize()?;
        if file.retention.records < file.retention.bodies {
            return Err(source.invalid(
                "retention.records",
                "records cannot be kept for less time than their bodies",
            ));
        }
        let checkpoints = file.checkpoints;
        if checkpoints.every_records == 0 {
            return Err(source.invalid("checkpoints.every_records", "must be at least 1"));
        }
        if checkpoints.every_seconds == 0 {
            return Err(source.invalid("checkpoints.every_seconds", "must be at least 1"));
        }
        if checkpoints
            .file
            .as_ref()
            .is_some_and(|f| f.as_os_str().is_empty())
        {
            return Err(source.invalid("checkpoints.file", "must name a file"));
        }
        Ok(Self {
            bodies: file.retention.bodies,
            records: file.retention.records,
            on_store_failure: file.on_store_failure,
            store_originals: file.store_originals,
            enabled: file.enabled,
            checkpoints: CheckpointPolicy {
                every_records: checkpoints.every_records,
                every: std::time::Duration::from_secs(checkpoints.every_seconds),
                file: checkpoints.file,
            },
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordingFile {
    retention: Retention,
    #[serde(default)]
    on_store_failure: StoreFailure,
    #[serde(default)]
    store_originals: bool,
    #[serde(default = "enabled")]
    enabled: bool,
    #[serde(default)]
    checkpoints: CheckpointsSection,
}

fn enabled() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckpointsSection {
    #[serde(default = "default_every_records")]
    every_records: u64,
    #[serde(default = "default_every_seconds")]
    every_seconds: u64,
    #[serde(default)]
    file: Option<std::path::PathBuf>,
}

impl Default for CheckpointsSection {
    fn default() -> Self {
        Self {
            every_records: default_every_records(),
            every_seconds: default_every_seconds(),
            file: None,
        }
    }
}

fn default_every_records() -> u64 {
    CheckpointPolicy::default().every_records
}

fn default_every_seconds() -> u64 {
    CheckpointPolicy::default().every.as_secs()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Retention {
    #[serde(with = "humantime_serde")]
    bodies: std::time::Duration,
    #[serde(with = "humantime_serde")]
    records: std::time::Duration,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default)]
    hosts: HostsSection,
    #[serde(default)]
    providers: BTreeMap<String, ProviderOverride>,
    #[serde(default)]
    locations: BTreeMap<String, Configured>,
    #[serde(default)]
    access: access::RawAccess,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HostsSection {
    #[serde(default = "default_unknown")]
    unknown: HostMode,
    #[serde(default)]
    deny: Vec<String>,
    #[serde(default)]
    allow_internal: Vec<String>,
}

impl Default for HostsSection {
    fn default() -> Self {
        Self {
            unknown: default_unknown(),
            deny: Vec::new(),
            allow_internal: Vec::new(),
        }
    }
}

fn default_unknown() -> HostMode {
    HostMode::Tunnel
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProviderOverride {
    mode: HostMode,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(yaml: &str) -> Result<Policy, LoadError> {
        Policy::from_sources(
            &Source::embedded_catalog(),
            &Source::inline("policy.yaml", yaml),
        )
    }

    #[test]
    fn unknown_files_in_the_policy_directory_are_errors_that_name_them() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("policy.yaml"), "{}\n").unwrap();
        std::fs::create_dir(dir.path().join("..2026_12_01")).unwrap();
        std::fs::write(dir.path().join(".hidden"), "").unwrap();
        std::fs::write(dir.path().join("jwks.json"), "{}").unwrap();
        assert!(Policy::load(Some(dir.path())).is_ok());
        for (name, suggestion) in [
            ("identity.yml", Some("identity.yaml")),
            ("polcy.yaml", Some("policy.yaml")),
            ("bad.yaml", None),
        ] {
            let path = dir.path().join(name);
            std::fs::write(&path, "{}\n").unwrap();
            let err = Policy::load(Some(dir.path())).unwrap_err().to_string();
            assert!(err.contains(name), "{err}");
            match suggestion {
                Some(s) => assert!(err.contains(&format!("did you mean {s}?")), "{err}"),
                None => assert!(!err.contains("did you mean"), "{err}"),
            }
            std::fs::remove_file(path).unwrap();
        }
    }

    #[test]
    fn embedded_defaults_load() {
        let p = Policy::load(None).unwrap();
        assert_eq!(p.decide("api.openai.com").action, Action::Intercept);
        assert_eq!(p.decide("github.com").action, Action::Tunnel);
        assert!(p.summary().contains("unknown hosts: tunnel"));
    }

    #[test]
    fn denied_host_wins_over_catalog_and_names_the_rule() {
        let p = policy("hosts:\n  deny: ['*.pastebin.com', api.mistral.ai]\n").unwrap();
        let d = p.decide("API.Mistral.ai");
        assert_eq!(
            d.action,
            Action::Deny {
                rule: "hosts.deny: api.mistral.ai".into()
            }
        );
        assert_eq!(d.provider.unwrap().id, "mistral");
        assert!(matches!(
            p.decide("x.pastebin.com").action,
            Action::Deny { .. }
        ));
    }

    #[test]
    fn unknown_hosts_can_be_denied() {
        let p = policy("hosts:\n  unknown: deny\n").unwrap();
        assert!(matches!(
            p.decide("example.com").action,
            Action::Deny { .. }
        ));
        assert_eq!(p.decide("api.anthropic.com").action, Action::Intercept);
    }

    #[test]
    fn provider_mode_can_be_overridden() {
        let p =
            policy("providers:\n  anthropic: { mode: deny }\n  cursor: { mode: deny }\n").unwrap();
        assert!(matches!(
            p.decide("api.anthropic.com").action,
            Action::Deny { .. }
        ));
        assert!(matches!(
            p.decide("api2.cursor.sh").action,
            Action::Deny { .. }
        ));
    }

    #[test]
    fn errors_name_file_and_field() {
        let err = policy("hosts:\n  deny: [ok.example, 'a b']\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("policy.yaml: hosts.deny[1]:"), "{err}");

        let err = policy("hosts:\n  unknwon: deny\n").unwrap_err().to_string();
        assert!(
            err.contains("policy.yaml") && err.contains("unknwon"),
            "{err}"
        );

        let err = policy("providers:\n  nosuch: { mode: deny }\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("providers.nosuch"), "{err}");

        let err = policy("hosts:\n  unknown: intercept\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("hosts.unknown"), "{err}");

        let err = policy("hosts:\n  allow_internal: ['10.0.0.0/8', 'x:y']\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("hosts.allow_internal[1]"), "{err}");

        let err = policy("hosts: [\n").unwrap_err().to_string();
        assert!(err.starts_with("policy.yaml:"), "{err}");
    }

    #[test]
    fn checkpoints_default_to_every_1000_records_or_minute_and_are_checked_strictly() {
        let recording = |yaml: &str| {
            RecordingPolicy::parse(&Source::inline(
                "recording.yaml",
                &format!("retention: {{ bodies: 1d, records: 2d }}\n{yaml}"),
            ))
        };
        let defaults = recording("").unwrap().checkpoints;
        assert_eq!(defaults, CheckpointPolicy::default());
        assert_eq!(
            RecordingPolicy::parse(&Source::embedded_recording())
                .unwrap()
                .checkpoints
                .every_records,
            1000
        );
        let set = recording(
            "checkpoints: { every_records: 5, every_seconds: 2, file: /var/log/t.jsonl }\n",
        )
        .unwrap()
        .checkpoints;
        assert_eq!(set.every_records, 5);
        assert_eq!(set.every, std::time::Duration::from_secs(2));
        assert_eq!(
            set.file.as_deref(),
            Some(std::path::Path::new("/var/log/t.jsonl"))
        );
        for (yaml, field) in [
            (
                "checkpoints: { every_records: 0 }",
                "checkpoints.every_records",
            ),
            (
                "checkpoints: { every_seconds: 0 }",
                "checkpoints.every_seconds",
            ),
            ("checkpoints: { every_second: 5 }", "every_second"),
            ("checkpoints: { file: '' }", "checkpoints.file"),
            ("checkpoints: { webhook: 'https://x' }", "webhook"),
        ] {
            let err = recording(yaml).unwrap_err().to_string();
            assert!(
                err.contains("recording.yaml") && err.contains(field),
                "{yaml}: {err}"
            );
        }
    }
}
