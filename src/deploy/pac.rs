//! The PAC file the admin listener serves at `/proxy.pac`, for systems and tools that take
//! their proxy from one (macOS and Windows network settings, browsers, a profile's
//! `ProxyPACURL`).
//!
//! Every host the policy has an opinion about goes through the proxy: the catalog's hosts
//! whatever their mode (a denied provider must reach the proxy to be refused) and `hosts.deny`.
//! Other hosts go direct, unless `hosts.unknown: deny`, when everything but local names goes
//! through the proxy. There is no `DIRECT` fallback after `PROXY`: a proxy that does not answer
//! must not mean LLM traffic leaves ungoverned.

/// The PAC script sending `patterns` (catalog host patterns: lower case, `*` globs) to
/// `proxy` (`host:port`, already checked by [`proxy_host`]); everything else direct unless
/// `all_through_proxy`.
pub fn script<'a>(
    proxy: &str,
    patterns: impl IntoIterator<Item = &'a str>,
    all_through_proxy: bool,
) -> String {
    let mut list: Vec<&str> = patterns.into_iter().collect();
    list.sort_unstable();
    list.dedup();
    let quoted: Vec<String> = list.iter().map(|p| format!("    \"{p}\"")).collect();
    let otherwise = if all_through_proxy {
        "// hosts.unknown is `deny`: every other host goes through the proxy too, to be refused.\n  return proxy;"
    } else {
        "return \"DIRECT\";"
    };
    format!(
        r#"// Tollgate: the hosts its policy governs go through the proxy; served at /proxy.pac.
function FindProxyForURL(url, host) {{
  var proxy = "PROXY {proxy}";
  host = host.toLowerCase();
  if (isPlainHostName(host) || host == "localhost" || shExpMatch(host, "127.*") ||
      host == "::1" || host == "[::1]") {{
    return "DIRECT";
  }}
  var governed = [
{list}
  ];
  for (var i = 0; i < governed.length; i++) {{
    if (shExpMatch(host, governed[i])) {{
      return proxy;
    }}
  }}
  {otherwise}
}}
"#,
        list = quoted.join(",\n"),
    )
}

/// `host:port` for the PAC file, when `host` (from a request's `Host` header, or configured) is
/// a plain DNS name or IP literal: nothing that could break out of the script's string.
pub fn proxy_host(host: &str, port: u16) -> Option<String> {
    use std::net::Ipv6Addr;
    let v6 = |text: &str| {
        text.parse::<Ipv6Addr>()
            .ok()
            .map(|ip| format!("[{ip}]:{port}"))
    };
    if let Some(rest) = host.strip_prefix('[') {
        return v6(rest.split_once(']')?.0);
    }
    if host.matches(':').count() > 1 {
        return v6(host);
    }
    let name = match host.rsplit_once(':') {
        Some((name, p)) if p.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.'));
    ok.then(|| format!("{}:{port}", name.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_hosts() {
        assert_eq!(
            proxy_host("tollgate.corp:9090", 8080).as_deref(),
            Some("tollgate.corp:8080")
        );
        assert_eq!(
            proxy_host("10.0.0.5", 3128).as_deref(),
            Some("10.0.0.5:3128")
        );
        assert_eq!(
            proxy_host("[::1]:9090", 8080).as_deref(),
            Some("[::1]:8080")
        );
        assert_eq!(proxy_host("\"evil\";x", 8080), None);
        assert_eq!(proxy_host("a b", 8080), None);
        assert_eq!(proxy_host("", 8080), None);
    }

    #[test]
    fn script_lists_patterns_and_falls_back_as_told() {
        let s = script(
            "p:8080",
            ["api.openai.com", "*.anthropic.com", "api.openai.com"],
            false,
        );
        assert!(s.contains("var proxy = \"PROXY p:8080\";"));
        assert_eq!(s.matches("\"api.openai.com\"").count(), 1);
        assert!(s.contains("\"*.anthropic.com\""));
        assert!(s.contains("return \"DIRECT\";\n}"));
        let all = script("p:8080", ["api.openai.com"], true);
        assert!(all.contains("return proxy;\n}"));
    }
}
