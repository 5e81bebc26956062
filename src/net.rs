//! What every layer shares about the network: `--connect-to` rules and how an error chain reads.
//! Nothing here depends on policy, the proxy or the store.

use crate::policy::hosts::normalize_host;
use std::str::FromStr;

/// One `--connect-to HOST:PORT:HOST2:PORT2` rule (curl's semantics): connections for HOST:PORT
/// go to HOST2:PORT2 while TLS names and certificate checks still use HOST. An empty HOST or PORT
/// matches any; an empty HOST2 or PORT2 keeps the original.
///
/// ```
/// use tollgate::config::ConnectTo;
///
/// let rule: ConnectTo = "api.openai.com:443:127.0.0.1:8443".parse().unwrap();
/// assert!("api.openai.com:443".parse::<ConnectTo>().is_err());
/// # let _ = rule;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectTo {
    pub(crate) host: Option<String>,
    pub(crate) port: Option<u16>,
    pub(crate) to_host: Option<String>,
    pub(crate) to_port: Option<u16>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("`{input}`: {reason} (expected HOST:PORT:HOST2:PORT2)")]
pub struct ConnectToError {
    input: String,
    reason: &'static str,
}

impl FromStr for ConnectTo {
    type Err = ConnectToError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let err = |reason| ConnectToError {
            input: input.to_owned(),
            reason,
        };
        let mut rest = input;
        let mut fields = Vec::with_capacity(4);
        for i in 0..4 {
            let is_host = i % 2 == 0;
            let (field, tail) = if is_host && rest.starts_with('[') {
                let end = rest.find(']').ok_or_else(|| err("unclosed `[`"))?;
                (&rest[1..end], &rest[end + 1..])
            } else if i == 3 {
                (rest, "")
            } else {
                let end = rest.find(':').ok_or_else(|| err("too few fields"))?;
                (&rest[..end], &rest[end..])
            };
            if i < 3 {
                rest = tail
                    .strip_prefix(':')
                    .ok_or_else(|| err("too few fields"))?;
            } else if !tail.is_empty() {
                return Err(err("too many fields"));
            }
            fields.push(field);
        }
        let port = |s: &str| -> Result<Option<u16>, ConnectToError> {
            if s.is_empty() {
                Ok(None)
            } else {
                s.parse().map(Some).map_err(|_| err("bad port"))
            }
        };
        let host = |s: &str| (!s.is_empty()).then(|| normalize_host(s));
        Ok(Self {
            host: host(fields[0]),
            port: port(fields[1])?,
            to_host: host(fields[2]),
            to_port: port(fields[3])?,
        })
    }
}

impl ConnectTo {
    pub(crate) fn apply(&self, host: &str, port: u16) -> Option<(String, u16)> {
        let host_ok = self.host.as_deref().is_none_or(|h| h == host);
        let port_ok = self.port.is_none_or(|p| p == port);
        (host_ok && port_ok).then(|| {
            (
                self.to_host.clone().unwrap_or_else(|| host.to_owned()),
                self.to_port.unwrap_or(port),
            )
        })
    }
}

/// An error and its sources, joined: `a: b: c`.
pub fn describe_error(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![err.to_string()];
    let mut next = err.source();
    while let Some(e) = next {
        parts.push(e.to_string());
        next = e.source();
    }
    parts.join(": ")
}
