//! The environment every client family reads to go through Tollgate and trust its CA, and the
//! CA bundle some of them need: tools that take `SSL_CERT_FILE`, `REQUESTS_CA_BUNDLE` or
//! `CURL_CA_BUNDLE` *replace* their roots with that file, so it must hold the system's roots
//! too, or everything else on the internet stops verifying for them.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The shells whose syntax `tollgate env` can print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
    Powershell,
}

impl Shell {
    /// The shell `$SHELL` names, else bash (PowerShell on Windows).
    pub fn detect() -> Self {
        let shell = std::env::var("SHELL").unwrap_or_default();
        match Path::new(&shell).file_name().and_then(|n| n.to_str()) {
            Some("zsh") => Shell::Zsh,
            Some("fish") => Shell::Fish,
            Some("bash") => Shell::Bash,
            _ if cfg!(windows) => Shell::Powershell,
            _ => Shell::Bash,
        }
    }
}

/// Names that must never go through the proxy, before those the user adds.
pub const LOCAL_NAMES: &str = "localhost,127.0.0.1,::1";

/// The variables, in the order printed: (name, value, which clients read it).
pub fn variables(
    proxy: &str,
    ca_pem_file: &Path,
    bundle: &Path,
    no_proxy: &[String],
) -> Vec<(&'static str, String, &'static str)> {
    let ca = ca_pem_file.display().to_string();
    let bundle = bundle.display().to_string();
    let mut no = LOCAL_NAMES.to_owned();
    for n in no_proxy {
        no.push(',');
        no.push_str(n);
    }
    vec![
        (
            "HTTPS_PROXY",
            proxy.to_owned(),
            "curl, Python, Node (undici), Claude Code, Codex",
        ),
        (
            "https_proxy",
            proxy.to_owned(),
            "tools that read only the lower-case name",
        ),
        ("NO_PROXY", no.clone(), "what goes direct"),
        ("no_proxy", no, "what goes direct (lower case)"),
        (
            "NODE_USE_ENV_PROXY",
            "1".to_owned(),
            "Node 24+ and 22.21+: fetch and https honour HTTPS_PROXY",
        ),
        (
            "NODE_EXTRA_CA_CERTS",
            ca,
            "Node, Claude Code (adds to Node's own roots)",
        ),
        (
            "SSL_CERT_FILE",
            bundle.clone(),
            "Python SDKs (httpx2), OpenSSL-based tools, Codex",
        ),
        (
            "REQUESTS_CA_BUNDLE",
            bundle.clone(),
            "Python requests (replaces certifi)",
        ),
        ("CURL_CA_BUNDLE", bundle.clone(), "curl"),
        ("CODEX_CA_CERTIFICATE", bundle.clone(), "Codex CLI"),
        ("AWS_CA_BUNDLE", bundle, "AWS SDKs and CLI (Bedrock)"),
    ]
}

/// The lines that set `vars` in `shell`, each value quoted so the shell takes it literally.
pub fn render(shell: Shell, vars: &[(&'static str, String, &'static str)]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Tollgate: {}",
        match shell {
            Shell::Bash | Shell::Zsh => "eval \"$(tollgate env)\"",
            Shell::Fish => "tollgate env --shell fish | source",
            Shell::Powershell => "tollgate env --shell powershell | Invoke-Expression",
        }
    );
    for (name, value, _) in vars {
        let _ = match shell {
            Shell::Bash | Shell::Zsh => {
                writeln!(out, "export {name}='{}'", value.replace('\'', "'\\''"))
            }
            Shell::Fish => writeln!(
                out,
                "set -gx {name} '{}'",
                value.replace('\\', "\\\\").replace('\'', "\\'")
            ),
            Shell::Powershell => {
                writeln!(out, "$env:{name} = '{}'", value.replace('\'', "''"))
            }
        };
    }
    out
}

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("{path}: neither a PEM nor a DER certificate")]
    NotACertificate { path: PathBuf },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// One certificate's DER from a PEM or DER file's bytes.
pub fn certificate_der(bytes: &[u8], path: &Path) -> Result<Vec<u8>, BundleError> {
    use rustls_pki_types::pem::PemObject;
    if let Ok(der) = rustls_pki_types::CertificateDer::from_pem_slice(bytes) {
        return Ok(der.to_vec());
    }
    match x509_parser::parse_x509_certificate(bytes) {
        Ok(_) => Ok(bytes.to_vec()),
        Err(_) => Err(BundleError::NotACertificate {
            path: path.to_owned(),
        }),
    }
}

/// A certificate as PEM.
pub fn pem(der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// What [`write_files`] wrote.
#[derive(Debug)]
pub struct Written {
    pub ca: PathBuf,
    pub bundle: PathBuf,
    /// How many of the system's roots the bundle holds beside Tollgate's CA.
    pub system_roots: usize,
    /// What went wrong reading the system's roots (the bundle holds what could be read).
    pub root_errors: Vec<String>,
}

/// Writes `tollgate-ca.pem` (the CA alone) and `ca-bundle.pem` (the system's roots, then the
/// CA; the CA once even when the system already trusts it) into `dir`, replacing each
/// atomically.
pub fn write_files(dir: &Path, ca_der: &[u8]) -> Result<Written, BundleError> {
    // Clients are started from other directories: the variables name absolute paths.
    let dir = &std::path::absolute(dir).map_err(|source| BundleError::Write {
        path: dir.to_owned(),
        source,
    })?;
    let roots = rustls_native_certs::load_native_certs();
    let mut bundle = String::new();
    let mut system_roots = 0;
    for cert in &roots.certs {
        if cert.as_ref() == ca_der {
            continue;
        }
        bundle.push_str(&pem(cert));
        system_roots += 1;
    }
    bundle.push_str("# Tollgate\n");
    bundle.push_str(&pem(ca_der));
    let ca = dir.join("tollgate-ca.pem");
    let bundle_path = dir.join("ca-bundle.pem");
    let write = |path: &Path, text: &str| -> Result<(), BundleError> {
        let err = |source| BundleError::Write {
            path: path.to_owned(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(err)?;
        let tmp = path.with_extension("pem.tmp");
        std::fs::write(&tmp, text).map_err(err)?;
        std::fs::rename(&tmp, path).map_err(err)
    };
    write(&ca, &pem(ca_der))?;
    write(&bundle_path, &bundle)?;
    Ok(Written {
        ca,
        bundle: bundle_path,
        system_roots,
        root_errors: roots.errors.iter().map(ToString::to_string).collect(),
    })
}

/// Where `tollgate env` keeps its files unless told: `$XDG_CONFIG_HOME/tollgate`,
/// `~/.config/tollgate`, or `%APPDATA%\tollgate` on Windows.
pub fn default_dir() -> Option<PathBuf> {
    let var = |name| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if cfg!(windows) {
        return var("APPDATA").map(|d| d.join("tollgate"));
    }
    var("XDG_CONFIG_HOME")
        .or_else(|| var("HOME").map(|h| h.join(".config")))
        .map(|d| d.join("tollgate"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_keeps_values_literal() {
        let vars = vec![("X", "a'b $c \\d".to_owned(), "")];
        assert!(render(Shell::Bash, &vars).contains("export X='a'\\''b $c \\d'\n"));
        assert!(render(Shell::Fish, &vars).contains("set -gx X 'a\\'b $c \\\\d'\n"));
        assert!(render(Shell::Powershell, &vars).contains("$env:X = 'a''b $c \\d'\n"));
    }

    #[test]
    fn pem_round_trips() {
        use rustls_pki_types::pem::PemObject;
        let der: Vec<u8> = (0..=255u8).cycle().take(700).collect();
        let back = rustls_pki_types::CertificateDer::from_pem_slice(pem(&der).as_bytes()).unwrap();
        assert_eq!(back.as_ref(), &der[..]);
    }
}
