//! A YAML file as policy and configuration are read: its text, the name errors give it, and
//! [`LoadError`], which names the file and the field at fault. Below every module that reads
//! YAML (policy, identity, masking, providers, configuration).

use serde::de::DeserializeOwned;
use std::borrow::Cow;
use std::path::{Path, PathBuf};

/// File name of the provider catalog inside a policy directory.
pub const CATALOG_FILE: &str = "providers.yaml";
/// File name of the policy proper inside a policy directory.
pub const POLICY_FILE: &str = "policy.yaml";
/// File name of the masking rules inside a policy directory.
pub const MASKING_FILE: &str = "masking.yaml";
/// File name of the recording rules (retention) inside a policy directory.
pub const RECORDING_FILE: &str = "recording.yaml";
/// File name of the proxy's users (tokens) inside a policy directory.
pub const IDENTITY_FILE: &str = "identity.yaml";
/// File name of the approval rules inside a policy directory.
pub const APPROVALS_FILE: &str = "approvals.yaml";

const EMBEDDED_CATALOG: &str = include_str!("../policies/providers.yaml");
const EMBEDDED_POLICY: &str = include_str!("../policies/policy.yaml");
const EMBEDDED_MASKING: &str = include_str!("../policies/masking.yaml");
const EMBEDDED_RECORDING: &str = include_str!("../policies/recording.yaml");
const EMBEDDED_IDENTITY: &str = include_str!("../policies/identity.yaml");
const EMBEDDED_APPROVALS: &str = include_str!("../policies/approvals.yaml");

/// A policy or configuration file that could not be used; it names the file and the field.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}: {field}: {message}")]
    Invalid {
        file: String,
        field: String,
        message: String,
    },
    #[error("{file}: {message}")]
    Syntax { file: String, message: String },
    #[error(
        "{file}: not a policy file{suggestion}; the YAML files of a policy directory are {known} (one with another name would be ignored, and the defaults used instead)"
    )]
    UnknownFile {
        file: String,
        /// `, did you mean policy.yaml?` or nothing.
        suggestion: String,
        known: String,
    },
}

/// The text of one YAML file and the name errors should give it.
#[derive(Debug, Clone)]
pub struct Source {
    name: String,
    text: Cow<'static, str>,
    /// The file it was read from, if any.
    path: Option<PathBuf>,
}

impl Source {
    pub fn embedded_catalog() -> Self {
        Self {
            name: format!("(embedded) {CATALOG_FILE}"),
            path: None,
            text: Cow::Borrowed(EMBEDDED_CATALOG),
        }
    }

    pub fn embedded_policy() -> Self {
        Self {
            name: format!("(embedded) {POLICY_FILE}"),
            path: None,
            text: Cow::Borrowed(EMBEDDED_POLICY),
        }
    }

    pub fn embedded_masking() -> Self {
        Self {
            name: format!("(embedded) {MASKING_FILE}"),
            path: None,
            text: Cow::Borrowed(EMBEDDED_MASKING),
        }
    }

    pub fn embedded_recording() -> Self {
        Self {
            name: format!("(embedded) {RECORDING_FILE}"),
            path: None,
            text: Cow::Borrowed(EMBEDDED_RECORDING),
        }
    }

    pub fn embedded_approvals() -> Self {
        Self {
            name: format!("(embedded) {APPROVALS_FILE}"),
            path: None,
            text: Cow::Borrowed(EMBEDDED_APPROVALS),
        }
    }

    pub fn embedded_identity() -> Self {
        Self {
            name: format!("(embedded) {IDENTITY_FILE}"),
            path: None,
            text: Cow::Borrowed(EMBEDDED_IDENTITY),
        }
    }

    pub fn inline(name: &str, text: &str) -> Self {
        Self {
            name: name.to_owned(),
            text: Cow::Owned(text.to_owned()),
            path: None,
        }
    }

    pub fn read(path: &Path) -> Result<Self, LoadError> {
        let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
            file: path.display().to_string(),
            source,
        })?;
        Ok(Self {
            name: path.display().to_string(),
            text: Cow::Owned(text),
            path: Some(path.to_owned()),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The file's text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The directory of the file it was read from: what relative paths inside are relative to.
    pub fn dir(&self) -> Option<&Path> {
        self.path.as_deref().and_then(Path::parent)
    }

    /// Reads the YAML into `T`, naming the field that failed (`hosts.deny[2]`) and its line.
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T, LoadError> {
        let de = serde_yaml::Deserializer::from_str(&self.text);
        serde_path_to_error::deserialize(de).map_err(|err| {
            let field = err.path().to_string();
            let mut message = err.into_inner().to_string();
            if self.name.ends_with(IDENTITY_FILE) {
                // identity.yaml may hold a token pasted where its hash belongs: serde quotes the
                // value it could not take, and the message reaches logs and the admin API.
                message = redact_quoted(&message);
            }
            if field == "." || field.is_empty() {
                LoadError::Syntax {
                    file: self.name.clone(),
                    message,
                }
            } else {
                LoadError::Invalid {
                    file: self.name.clone(),
                    field,
                    message,
                }
            }
        })
    }

    pub fn invalid(&self, field: impl Into<String>, message: impl Into<String>) -> LoadError {
        LoadError::Invalid {
            file: self.name.clone(),
            field: field.into(),
            message: message.into(),
        }
    }
}

/// `message` with every quoted value (`"…"`, `` `…` ``) replaced by `"…"`.
fn redact_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut open: Option<char> = None;
    for c in message.chars() {
        match open {
            Some(q) if c == q => {
                out.push('…');
                out.push(c);
                open = None;
            }
            Some(_) => {}
            None => {
                out.push(c);
                if c == '"' || c == '`' {
                    open = Some(c);
                }
            }
        }
    }
    if open.is_some() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_errors_never_repeat_the_value_they_refused() {
        // A token pasted where its entry belongs: serde would quote it back.
        let secret = "tg_pAsTeDtOkEnInsteadOfItsHash";
        let err = crate::identity::Tokens::parse(&Source::inline(
            IDENTITY_FILE,
            &format!("tokens: [{secret}]\n"),
        ))
        .unwrap_err()
        .to_string();
        assert!(!err.contains(secret), "{err}");
        assert!(
            err.contains("identity.yaml") && err.contains("tokens[0]"),
            "{err}"
        );
        assert_eq!(
            redact_quoted(r#"unknown field `tg_x`, expected "a""#),
            "unknown field `…`, expected \"…\""
        );
    }
}
