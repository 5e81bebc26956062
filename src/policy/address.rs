//! Which destination addresses are internal (loopback, private, link-local, …) and the policy's
//! allowlist of internal destinations an egress proxy may still reach.

use super::hosts::{HostPattern, HostPatternError, HostSet, normalize_host};
use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// True for addresses an egress proxy must not open a door to: loopback, RFC 1918 private,
/// link-local (cloud metadata at 169.254.169.254), carrier-grade NAT, unspecified, multicast,
/// broadcast, IPv6 unique-local and link-local, and IPv6 forms that carry or reach IPv4:
/// IPv4-mapped, IPv4-compatible and 6to4 addresses are judged by the IPv4 address they embed;
/// Teredo and NAT64 addresses are always internal.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_internal_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = embedded_v4(v6) {
                return is_internal_v4(v4);
            }
            let seg = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (seg[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (seg[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
                // Teredo 2001:0::/32 tunnels to whichever IPv4 host its relay is told (the client
                // address is the last 32 bits XOR 0xffffffff), so no prefix of it is safe to reach.
                || (seg[0] == 0x2001 && seg[1] == 0)
                // NAT64: the well-known 64:ff9b::/96 and the local-use 64:ff9b:1::/48 (RFC 8215)
                // both lie in 64:ff9b::/32 and translate to any IPv4 address the operator routes.
                || (seg[0] == 0x64 && seg[1] == 0xff9b)
        }
    }
}

/// The IPv4 address an IPv6 address stands for, in the forms whose destination is that IPv4
/// address: IPv4-mapped `::ffff:a.b.c.d`, the deprecated IPv4-compatible `::a.b.c.d` (`::` and
/// `::1` excepted, they are IPv6's own) and 6to4 `2002:aabb:ccdd::/48`.
fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    let seg = v6.segments();
    let [.., a, b, c, d] = v6.octets();
    if seg[..6].iter().all(|&s| s == 0) && !v6.is_unspecified() && !v6.is_loopback() {
        return Some(Ipv4Addr::new(a, b, c, d));
    }
    if seg[0] == 0x2002 {
        let [_, _, a, b, c, d, ..] = v6.octets();
        return Some(Ipv4Addr::new(a, b, c, d));
    }
    None
}

fn is_internal_v4(v4: Ipv4Addr) -> bool {
    let [a, b, ..] = v4.octets();
    v4.is_loopback()
        || v4.is_private()
        || v4.is_link_local()
        || v4.is_unspecified()
        || v4.is_broadcast()
        || v4.is_multicast()
        || (a == 100 && (64..128).contains(&b)) // carrier-grade NAT 100.64.0.0/10
        || a == 0
        || a >= 240 // reserved
}

/// Internal destinations the policy allows anyway.
#[derive(Debug, Clone)]
pub struct InternalAllowlist {
    nets: Vec<IpNet>,
    hosts: HostSet,
    ports: Vec<Option<u16>>,
}

impl Default for InternalAllowlist {
    fn default() -> Self {
        Self {
            nets: Vec::new(),
            hosts: HostSet::empty(),
            ports: Vec::new(),
        }
    }
}

impl InternalAllowlist {
    /// Parses the entries: an IP (`10.1.2.3`), a CIDR (`10.0.0.0/8`), a host (`git.internal`) or
    /// a host with a port (`git.internal:8443`); host entries may use `*.` patterns. A bad entry
    /// is reported with its index.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, (usize, HostPatternError)> {
        let mut nets = Vec::new();
        let mut patterns = Vec::new();
        let mut ports = Vec::new();
        for (i, entry) in entries.iter().enumerate() {
            let entry = entry.as_ref().trim();
            if let Ok(net) = entry.parse::<IpNet>() {
                nets.push(net);
                continue;
            }
            if let Ok(ip) = normalize_host(entry).parse::<IpAddr>() {
                nets.push(IpNet::from(ip));
                continue;
            }
            let (host, port) = match entry.rsplit_once(':') {
                Some((host, port)) => match port.parse::<u16>() {
                    Ok(port) => (host, Some(port)),
                    Err(_) => return Err((i, HostPatternError::NotAHost(entry.to_owned()))),
                },
                None => (entry, None),
            };
            patterns.push(HostPattern::parse(host).map_err(|e| (i, e))?);
            ports.push(port);
        }
        Ok(Self {
            nets,
            hosts: HostSet::new(patterns),
            ports,
        })
    }

    /// Whether a connection to `ip`, reached by the name `host` (normalized) and `port`, is allowed.
    pub fn allows(&self, host: &str, port: u16, ip: IpAddr) -> bool {
        self.nets.iter().any(|net| net.contains(&ip))
            || self
                .hosts
                .matches(host)
                .any(|i| self.ports[i].is_none_or(|p| p == port))
    }

    pub fn len(&self) -> usize {
        self.nets.len() + self.hosts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn internal_ranges_are_internal() {
        for a in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
        ] {
            assert!(is_internal(ip(a)), "{a}");
        }
    }

    #[test]
    fn public_addresses_are_not_internal() {
        for a in ["1.1.1.1", "104.18.7.192", "172.32.0.1", "2606:4700::1"] {
            assert!(!is_internal(ip(a)), "{a}");
        }
    }

    #[test]
    fn ipv4_compatible_addresses_are_judged_by_their_ipv4() {
        for a in [
            "::127.0.0.1",
            "::10.0.0.1",
            "::169.254.169.254",
            "::0.0.0.2",
        ] {
            assert!(is_internal(ip(a)), "{a}");
        }
        for a in ["::8.8.8.8", "::104.18.7.192"] {
            assert!(!is_internal(ip(a)), "{a}");
        }
    }

    #[test]
    fn six_to_four_addresses_are_judged_by_their_ipv4() {
        // 2002:AABB:CCDD::/48 carries AA.BB.CC.DD.
        for a in [
            "2002:7f00:1::",
            "2002:a00:1::1",
            "2002:a9fe:a9fe:1::1",
            "2002:c0a8:101::",
        ] {
            assert!(is_internal(ip(a)), "{a}");
        }
        for a in ["2002:808:808::", "2002:6812:7c0:ff::1"] {
            assert!(!is_internal(ip(a)), "{a}");
        }
    }

    #[test]
    fn teredo_addresses_are_internal_whatever_they_embed() {
        // Client 8.8.8.8 (obfuscated as f7f7:f7f7) and client 10.0.0.1 (f5ff:fffe).
        for a in [
            "2001:0:4136:e378:8000:63bf:f7f7:f7f7",
            "2001:0:4136:e378:8000:63bf:f5ff:fffe",
            "2001::1",
        ] {
            assert!(is_internal(ip(a)), "{a}");
        }
        // Just outside 2001:0::/32.
        assert!(!is_internal(ip("2001:1::1")));
    }

    #[test]
    fn nat64_addresses_are_internal_whatever_they_embed() {
        for a in [
            "64:ff9b::8.8.8.8",
            "64:ff9b::127.0.0.1",
            "64:ff9b:1::8.8.8.8",
            "64:ff9b:1:ffff::10.0.0.1",
        ] {
            assert!(is_internal(ip(a)), "{a}");
        }
    }

    #[test]
    fn allowlist_matches_nets_hosts_and_ports() {
        let list = InternalAllowlist::parse(&[
            "10.0.0.0/8",
            "192.168.1.7",
            "git.corp.example:8443",
            "*.svc.internal",
        ])
        .unwrap();
        assert!(list.allows("x", 1, ip("10.9.9.9")));
        assert!(list.allows("x", 1, ip("192.168.1.7")));
        assert!(!list.allows("x", 1, ip("192.168.1.8")));
        assert!(list.allows("git.corp.example", 8443, ip("172.16.0.5")));
        assert!(!list.allows("git.corp.example", 22, ip("172.16.0.5")));
        assert!(list.allows("a.svc.internal", 80, ip("172.16.0.5")));
        assert_eq!(
            InternalAllowlist::parse(&["10.0.0.0/8", "host:notaport"])
                .unwrap_err()
                .0,
            1
        );
    }
}
