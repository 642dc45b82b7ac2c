//! The egress policy: which addresses a browser (or a webhook) may connect to.
//!
//! Checked on *resolved* IP addresses at connect time, so DNS tricks cannot walk around it:
//! loopback, private (RFC 1918), link-local (cloud metadata at 169.254.169.254), CGNAT,
//! benchmarking, multicast, reserved and broadcast ranges, and their IPv6 counterparts
//! (including IPv4-mapped, NAT64 and 6to4 forms, whose embedded IPv4 address is checked too)
//! are refused unless an operator allow-list names them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// An IPv4 or IPv6 network in CIDR notation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    pub fn new(addr: IpAddr, prefix: u8) -> Option<Self> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (prefix <= max).then_some(Network { addr, prefix })
    }

    /// Parses `10.0.0.0/8`, `::1/128` or a bare address.
    pub fn parse(s: &str) -> Option<Self> {
        match s.split_once('/') {
            Some((a, p)) => Network::new(a.parse().ok()?, p.parse().ok()?),
            None => {
                let addr: IpAddr = s.parse().ok()?;
                Network::new(addr, if addr.is_ipv4() { 32 } else { 128 })
            }
        }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

const fn v4(a: u8, b: u8, c: u8, d: u8, prefix: u8) -> (IpAddr, u8) {
    (IpAddr::V4(Ipv4Addr::new(a, b, c, d)), prefix)
}

/// Ranges refused by default (SECURITY.md §25).
const DENIED_V4: &[(IpAddr, u8)] = &[
    v4(0, 0, 0, 0, 8),
    v4(10, 0, 0, 0, 8),
    v4(100, 64, 0, 0, 10),
    v4(127, 0, 0, 0, 8),
    v4(169, 254, 0, 0, 16),
    v4(172, 16, 0, 0, 12),
    v4(192, 0, 0, 0, 24),
    v4(192, 0, 2, 0, 24),
    v4(192, 168, 0, 0, 16),
    v4(198, 18, 0, 0, 15),
    v4(198, 51, 100, 0, 24),
    v4(203, 0, 113, 0, 24),
    v4(224, 0, 0, 0, 3),
    v4(255, 255, 255, 255, 32),
];

fn denied_v6(ip: Ipv6Addr) -> bool {
    let seg = ip.segments();
    ip.is_unspecified()
        || ip.is_loopback()
        || (seg[0] & 0xfe00) == 0xfc00 // fc00::/7 unique local
        || (seg[0] & 0xffc0) == 0xfe80 // fe80::/10 link-local
        || (seg[0] & 0xffc0) == 0xfec0 // fec0::/10 site-local (deprecated)
        || (seg[0] & 0xff00) == 0xff00 // ff00::/8 multicast
        || (seg[0] == 0x2001 && seg[1] == 0x0db8) // documentation
        || (seg[0] == 0x0100 && seg[1..4] == [0, 0, 0]) // 100::/64 discard
}

/// The IPv4 address embedded in an IPv6 one, for the forms that route to IPv4:
/// IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible `::a.b.c.d`, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let seg = ip.segments();
    let o = ip.octets();
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    if seg[..6] == [0, 0, 0, 0, 0, 0] && !ip.is_loopback() && !ip.is_unspecified() {
        return Some(Ipv4Addr::new(o[12], o[13], o[14], o[15]));
    }
    if seg[0] == 0x0064 && seg[1] == 0xff9b && seg[2..6] == [0, 0, 0, 0] {
        return Some(Ipv4Addr::new(o[12], o[13], o[14], o[15]));
    }
    if seg[0] == 0x2002 {
        return Some(Ipv4Addr::new(o[2], o[3], o[4], o[5]));
    }
    None
}

/// Which addresses may be reached.
#[derive(Clone, Debug, Default)]
pub struct EgressPolicy {
    allow: Vec<Network>,
}

impl EgressPolicy {
    /// The default deny list, minus the networks in `allow`.
    pub fn new(allow: Vec<Network>) -> Self {
        EgressPolicy { allow }
    }

    /// Whether a connection to `ip` is allowed.
    pub fn allows(&self, ip: IpAddr) -> bool {
        if self.allow.iter().any(|n| n.contains(ip)) {
            return true;
        }
        match ip {
            IpAddr::V4(v4) => !Self::denied_v4(v4),
            IpAddr::V6(v6) => {
                if let Some(inner) = embedded_v4(v6) {
                    // Allowed only if the IPv4 address it routes to is.
                    return self.allows(IpAddr::V4(inner));
                }
                !denied_v6(v6)
            }
        }
    }

    fn denied_v4(ip: Ipv4Addr) -> bool {
        DENIED_V4
            .iter()
            .any(|&(addr, prefix)| Network { addr, prefix }.contains(IpAddr::V4(ip)))
    }
}

/// Why a destination was refused by [`resolve`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("{host} resolves only to addresses the egress policy refuses")]
    Denied { host: String },
    #[error("{host} cannot be resolved")]
    Unresolvable { host: String },
}

/// Resolves `host` (a name, an IP address, or a bracketed IPv6 address) and keeps the addresses
/// `policy` allows. The one resolver behind the browsers' proxy, webhook deliveries and the
/// webhook URL check: a caller connects only to what this returns, so the check and the
/// connection cannot disagree.
pub async fn resolve(
    policy: &EgressPolicy,
    host: &str,
    port: u16,
) -> Result<Vec<SocketAddr>, Refusal> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => match tokio::net::lookup_host((bare, port)).await {
            Ok(it) => it.collect(),
            Err(_) => Vec::new(),
        },
    };
    if addrs.is_empty() {
        return Err(Refusal::Unresolvable {
            host: host.to_owned(),
        });
    }
    let allowed: Vec<SocketAddr> = addrs
        .into_iter()
        .filter(|a| policy.allows(a.ip()))
        .collect();
    if allowed.is_empty() {
        return Err(Refusal::Denied {
            host: host.to_owned(),
        });
    }
    Ok(allowed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn private_and_special_ranges_are_denied() {
        let policy = EgressPolicy::default();
        for bad in [
            "0.0.0.0",
            "10.1.2.3",
            "100.64.0.1",
            "127.0.0.1",
            "127.255.255.254",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "198.18.0.1",
            "224.0.0.1",
            "239.1.1.1",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
            "2002:a9fe:a9fe::1",
            "2001:db8::1",
        ] {
            assert!(!policy.allows(ip(bad)), "{bad} must be denied");
        }
        for good in [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.216.34",
            "172.32.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(policy.allows(ip(good)), "{good} must be allowed");
        }
    }

    #[test]
    fn the_allow_list_opens_exactly_its_networks() {
        let policy = EgressPolicy::new(vec![Network::parse("127.0.0.1/32").expect("net")]);
        assert!(policy.allows(ip("127.0.0.1")));
        assert!(
            policy.allows(ip("::ffff:127.0.0.1")),
            "the mapped form follows its IPv4 address"
        );
        assert!(!policy.allows(ip("127.0.0.2")));
        assert!(!policy.allows(ip("::1")));
        assert!(!policy.allows(ip("169.254.169.254")));
    }

    #[test]
    fn networks_parse_strictly() {
        assert!(Network::parse("10.0.0.0/8").is_some());
        assert!(Network::parse("::1").is_some());
        assert!(Network::parse("10.0.0.0/33").is_none());
        assert!(Network::parse("fe80::/129").is_none());
        assert!(Network::parse("localhost").is_none());
    }
}
