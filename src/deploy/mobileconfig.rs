//! A macOS/iOS configuration profile that installs Tollgate's root CA as trusted
//! (`com.apple.security.root`) and, when asked, points the device's global HTTP proxy at
//! Tollgate (`com.apple.proxy.http.global`).
//!
//! The profile is unsigned: Jamf, Kandji and Intune sign what they deliver, and a signed profile
//! can no longer be edited in their consoles. Identifiers and UUIDs derive from the CA's
//! certificate (and the proxy), so exporting again yields the same profile, which an MDM then
//! updates in place rather than installing beside the old one.

use plist::{Dictionary, Value};

/// Where the profile points the device's proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProfileProxy {
    /// `ProxyType = Manual`: every HTTP(S) connection goes through `host:port`.
    Manual { host: String, port: u16 },
    /// `ProxyType = Auto`: the device fetches the PAC file at this URL (Tollgate serves one at
    /// `/proxy.pac` on its admin listener).
    Pac(String),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProxyUrlError {
    #[error(
        "`{0}` is not a proxy URL: write http://HOST:PORT, or the http(s) URL of a PAC file ending in .pac"
    )]
    Malformed(String),
    #[error(
        "the proxy URL carries credentials: a profile is readable by anyone who holds it; use a PAC file or per-user HTTPS_PROXY for tokens"
    )]
    Credentials,
}

impl ProfileProxy {
    /// `http://host:port` (port defaults to 8080) or an `http(s)://…/….pac` URL.
    pub fn parse(url: &str) -> Result<Self, ProxyUrlError> {
        let malformed = || ProxyUrlError::Malformed(url.to_owned());
        let uri: http::Uri = url.parse().map_err(|_| malformed())?;
        let authority = uri.authority().ok_or_else(malformed)?;
        if authority.as_str().contains('@') {
            return Err(ProxyUrlError::Credentials);
        }
        let scheme = uri.scheme_str().ok_or_else(malformed)?;
        if uri.path().ends_with(".pac") && (scheme == "http" || scheme == "https") {
            return Ok(ProfileProxy::Pac(url.to_owned()));
        }
        if scheme != "http" || !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(malformed());
        }
        Ok(ProfileProxy::Manual {
            host: authority.host().trim_matches(['[', ']']).to_owned(),
            port: authority.port_u16().unwrap_or(8080),
        })
    }
}

/// The profile for the CA certificate `ca_der` (named `ca_name` on the device), as an XML plist.
pub fn profile(ca_der: &[u8], ca_name: &str, proxy: Option<&ProfileProxy>) -> Vec<u8> {
    let fingerprint = ring::digest::digest(&ring::digest::SHA256, ca_der);
    let base = "io.tollgate.profile";
    let mut payloads = vec![payload(
        "com.apple.security.root",
        &format!("{base}.ca"),
        &uuid(&[fingerprint.as_ref(), b"ca"]),
        ca_name,
        [
            (
                "PayloadCertificateFileName",
                Value::String("tollgate-ca.cer".into()),
            ),
            ("PayloadContent", Value::Data(ca_der.to_vec())),
        ],
    )];
    if let Some(proxy) = proxy {
        let mut settings = vec![
            ("ProxyCaptiveLoginAllowed", Value::Boolean(true)),
            ("ProxyPACFallbackAllowed", Value::Boolean(false)),
        ];
        let (id_part, description) = match proxy {
            ProfileProxy::Manual { host, port } => {
                settings.push(("ProxyType", Value::String("Manual".into())));
                settings.push(("ProxyServer", Value::String(host.clone())));
                settings.push(("ProxyServerPort", Value::Integer(u64::from(*port).into())));
                (
                    format!("{host}:{port}"),
                    format!("Tollgate proxy {host}:{port}"),
                )
            }
            ProfileProxy::Pac(url) => {
                settings.push(("ProxyType", Value::String("Auto".into())));
                settings.push(("ProxyPACURL", Value::String(url.clone())));
                (url.clone(), format!("Tollgate proxy ({url})"))
            }
        };
        payloads.push(payload(
            "com.apple.proxy.http.global",
            &format!("{base}.proxy"),
            &uuid(&[fingerprint.as_ref(), b"proxy", id_part.as_bytes()]),
            &description,
            settings,
        ));
    }
    let mut top = Dictionary::new();
    top.insert("PayloadContent".into(), Value::Array(payloads));
    top.insert(
        "PayloadDescription".into(),
        Value::String(
            "Trusts the Tollgate certificate authority that signs the LLM API hosts the company proxy inspects."
                .into(),
        ),
    );
    top.insert(
        "PayloadDisplayName".into(),
        Value::String(format!("Tollgate: {ca_name}")),
    );
    top.insert("PayloadIdentifier".into(), Value::String(base.into()));
    top.insert(
        "PayloadOrganization".into(),
        Value::String("Tollgate".into()),
    );
    top.insert("PayloadScope".into(), Value::String("System".into()));
    top.insert("PayloadType".into(), Value::String("Configuration".into()));
    top.insert(
        "PayloadUUID".into(),
        Value::String(uuid(&[fingerprint.as_ref(), b"profile"])),
    );
    top.insert("PayloadVersion".into(), Value::Integer(1.into()));
    let mut out = Vec::new();
    Value::Dictionary(top)
        .to_writer_xml(&mut out)
        .expect("a plist of strings, data and numbers serialises");
    out.push(b'\n');
    out
}

fn payload<'a>(
    kind: &str,
    identifier: &str,
    uuid: &str,
    display: &str,
    content: impl IntoIterator<Item = (&'a str, Value)>,
) -> Value {
    let mut d = Dictionary::new();
    d.insert("PayloadType".into(), Value::String(kind.into()));
    d.insert("PayloadIdentifier".into(), Value::String(identifier.into()));
    d.insert("PayloadUUID".into(), Value::String(uuid.into()));
    d.insert("PayloadDisplayName".into(), Value::String(display.into()));
    d.insert("PayloadVersion".into(), Value::Integer(1.into()));
    for (k, v) in content {
        d.insert(k.into(), v);
    }
    Value::Dictionary(d)
}

/// A version-4-shaped UUID (upper case, as Apple writes them) derived from `parts`.
fn uuid(parts: &[&[u8]]) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for p in parts {
        ctx.update(&(p.len() as u64).to_be_bytes());
        ctx.update(p);
    }
    let digest = ctx.finish();
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest.as_ref()[..16]);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02X}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_urls() {
        assert_eq!(
            ProfileProxy::parse("http://proxy.corp:3128").unwrap(),
            ProfileProxy::Manual {
                host: "proxy.corp".into(),
                port: 3128
            }
        );
        assert_eq!(
            ProfileProxy::parse("http://proxy.corp/").unwrap(),
            ProfileProxy::Manual {
                host: "proxy.corp".into(),
                port: 8080
            }
        );
        assert_eq!(
            ProfileProxy::parse("https://admin.corp:9090/proxy.pac").unwrap(),
            ProfileProxy::Pac("https://admin.corp:9090/proxy.pac".into())
        );
        assert_eq!(
            ProfileProxy::parse("http://ci:tok@proxy.corp:8080"),
            Err(ProxyUrlError::Credentials)
        );
        for bad in [
            "proxy.corp:8080",
            "https://proxy.corp:8080",
            "http://p/x",
            "nonsense",
        ] {
            assert!(ProfileProxy::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn stable_ids_and_the_der() {
        let der = b"not really DER, but bytes";
        let a = profile(der, "Tollgate Root CA", None);
        assert_eq!(a, profile(der, "Tollgate Root CA", None));
        let v = Value::from_reader_xml(&a[..]).unwrap();
        let top = v.as_dictionary().unwrap();
        let payloads = top["PayloadContent"].as_array().unwrap();
        assert_eq!(payloads.len(), 1);
        let ca = payloads[0].as_dictionary().unwrap();
        assert_eq!(
            ca["PayloadType"].as_string(),
            Some("com.apple.security.root")
        );
        assert_eq!(ca["PayloadContent"].as_data(), Some(&der[..]));
        let other = profile(b"another CA", "Tollgate Root CA", None);
        assert_ne!(a, other);
        let uuid = top["PayloadUUID"].as_string().unwrap();
        assert_eq!(uuid.len(), 36);
        assert_eq!(&uuid[14..15], "4");
    }
}
